//! Instruction-set selection: detection once, an environment override, and forcing.

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
    /// subnormal bf16 operands and partial sums flush to zero there). Everything else,
    /// including every recurrent product, is as on [`Isa::Avx512`].
    Avx512Bf16,
    /// AVX-512F/VL with FMA and F16C, 16-lane `zmm` registers (x86_64).
    Avx512,
    /// AVX2 with FMA and F16C, two 8-lane `ymm` registers per tile (x86_64).
    Avx2,
    /// Portable 128-bit code written with `wide` (SSE2 on x86_64, NEON on aarch64).
    Portable,
}

/// Name of the environment variable that forces a path: `avx512bf16`, `avx512`, `avx2`
/// or `portable`.
pub const ISA_ENV: &str = "RNN_KERNELS_ISA";

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

    /// Whether this CPU (and this build) can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Bf16 => {
                Isa::Avx512.is_available() && std::arch::is_x86_feature_detected!("avx512bf16")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
            }
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
        if self.is_available() {
            Ok(self)
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
