//! Instruction-set selection: the feature list of every path (one source for detection
//! and for the `#[target_feature]` attributes), detection once, an environment
//! override, and forcing.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use crate::Error;

/// A kernel path. Each is a complete implementation of every kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Isa {
    /// [`Isa::Avx512`] plus AVX512-BF16: the same kernels, except that with `bf16`
    /// weights *and* `bf16` inputs the first layer's input projection multiplies the
    /// stored bf16 pairs directly with `vdpbf16ps` (exact products, `f32` sums;
    /// subnormal bf16 operands and partial sums flush to zero there; not when a weight
    /// is infinite, where a flushed zero would become NaN). Everything else,
    /// including every recurrent product, is as on [`Isa::Avx512`].
    Avx512Bf16,
    /// AVX-512F/VL with FMA and F16C, 16-lane `zmm` registers (x86_64).
    Avx512,
    /// AVX2 with FMA and F16C, two 8-lane `ymm` registers per tile (x86_64).
    Avx2,
    /// Portable 128-bit code written with `wide` (SSE2 on x86_64, NEON on aarch64,
    /// scalar code elsewhere); builds for every target `std` supports.
    Portable,
}

/// Name of the environment variable that forces a path: `avx512bf16`, `avx512`, `avx2`
/// or `portable`.
pub const ISA_ENV: &str = "RNN_KERNELS_ISA";

/// The CPU features of each x86_64 path, the one list that both detection
/// ([`Isa::is_available`]) and the paths' `#[target_feature]` attributes are generated
/// from: `isa_features!(avx2, callback!(args))` expands to
/// `callback!(args ["avx2", "fma", "f16c"])`.
macro_rules! isa_features {
    (avx512bf16, $cb:ident!($($args:tt)*)) => {
        $cb! { $($args)* ["avx512f", "avx512vl", "fma", "f16c", "avx512bf16"] }
    };
    (avx512, $cb:ident!($($args:tt)*)) => {
        $cb! { $($args)* ["avx512f", "avx512vl", "fma", "f16c"] }
    };
    (avx2, $cb:ident!($($args:tt)*)) => {
        $cb! { $($args)* ["avx2", "fma", "f16c"] }
    };
}
// Used by the x86_64 backends only.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_imports))]
pub(crate) use isa_features;

/// `true` when every listed x86 feature is detected (a callback of [`isa_features`]).
#[cfg(target_arch = "x86_64")]
macro_rules! all_detected {
    ([$($f:tt),*]) => {
        true $(&& std::arch::is_x86_feature_detected!($f))*
    };
}

/// The feature names as a `&[&str]` (a callback of [`isa_features`]).
macro_rules! feature_names {
    ([$($f:tt),*]) => {
        &[$($f),*]
    };
}

impl Isa {
    /// Every path, fastest first.
    pub const ALL: &'static [Isa] = &[Isa::Avx512Bf16, Isa::Avx512, Isa::Avx2, Isa::Portable];

    /// `"avx512bf16"`, `"avx512"`, `"avx2"` or `"portable"`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512Bf16 => "avx512bf16",
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// The CPU features the path needs (`target_feature` names; empty for the portable
    /// path, which needs only the target's baseline).
    pub fn features(self) -> &'static [&'static str] {
        match self {
            Isa::Avx512Bf16 => isa_features!(avx512bf16, feature_names!()),
            Isa::Avx512 => isa_features!(avx512, feature_names!()),
            Isa::Avx2 => isa_features!(avx2, feature_names!()),
            Isa::Portable => &[],
        }
    }

    /// Whether this CPU (and this build) can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Bf16 => isa_features!(avx512bf16, all_detected!()),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => isa_features!(avx512, all_detected!()),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => isa_features!(avx2, all_detected!()),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The paths this CPU can run, fastest first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL
            .iter()
            .copied()
            .filter(|i| i.is_available())
            .collect()
    }

    /// The fastest available path.
    pub fn best() -> Isa {
        Isa::ALL
            .iter()
            .copied()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Portable)
    }

    /// Checks that the path can run here.
    pub fn check(self) -> Result<Isa, Error> {
        self.detected().map(Detected::isa)
    }

    /// The proof that the path can run here, which the dispatcher requires.
    pub(crate) fn detected(self) -> Result<Detected, Error> {
        if self.is_available() {
            Ok(Detected(self))
        } else {
            Err(Error::IsaUnavailable {
                requested: self.name().to_string(),
                reason: "this CPU lacks the instruction set (or this is not an x86_64 build)"
                    .to_string(),
            })
        }
    }

    /// `forced` if given (checked against this CPU), else the process default.
    pub(crate) fn resolve(forced: Option<Isa>) -> Result<Isa, Error> {
        match forced {
            Some(i) => i.check(),
            None => Isa::default_for_process(),
        }
    }

    /// The default path, decided once per process: `RNN_KERNELS_ISA` if set (an error
    /// if it names an unknown or unavailable path), else [`Isa::best`].
    pub fn default_for_process() -> Result<Isa, Error> {
        static DEFAULT: OnceLock<Result<Isa, Error>> = OnceLock::new();
        DEFAULT
            .get_or_init(|| match std::env::var(ISA_ENV) {
                Ok(v) if !v.trim().is_empty() => v.parse::<Isa>().and_then(Isa::check),
                _ => Ok(Isa::best()),
            })
            .clone()
    }
}

/// An [`Isa`] whose features were detected on this CPU: the only way to reach a
/// path's `#[target_feature]` code (see `arch::dispatch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Detected(Isa);

impl Detected {
    /// The path.
    pub(crate) fn isa(self) -> Isa {
        self.0
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isa {
    type Err = Error;

    fn from_str(s: &str) -> Result<Isa, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "avx512bf16" | "avx512-bf16" | "avx512_bf16" => Ok(Isa::Avx512Bf16),
            "avx512" | "avx-512" | "avx512f" => Ok(Isa::Avx512),
            "avx2" => Ok(Isa::Avx2),
            "portable" | "generic" => Ok(Isa::Portable),
            other => Err(Error::IsaUnavailable {
                requested: other.to_string(),
                reason: "unknown instruction set; expected avx512bf16, avx512, avx2 or portable"
                    .to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Detection follows the feature lists, and the lists nest: each AVX-512 path
    /// needs everything the one below it needs.
    #[test]
    fn detection_follows_the_feature_lists() {
        #[cfg(target_arch = "x86_64")]
        for &isa in Isa::ALL {
            let all = isa.features().iter().all(|f| match *f {
                "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
                "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
                "avx512bf16" => std::arch::is_x86_feature_detected!("avx512bf16"),
                "avx2" => std::arch::is_x86_feature_detected!("avx2"),
                "fma" => std::arch::is_x86_feature_detected!("fma"),
                "f16c" => std::arch::is_x86_feature_detected!("f16c"),
                other => panic!("feature {other} missing from this test"),
            });
            assert_eq!(isa.is_available(), all, "{isa}");
        }
        let avx512 = Isa::Avx512.features();
        assert!(avx512
            .iter()
            .all(|f| Isa::Avx512Bf16.features().contains(f)));
        assert!(Isa::Portable.is_available());
        assert!(Isa::Portable.features().is_empty());
    }
}
