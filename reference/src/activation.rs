//! ONNX's gate activation functions ([`Activation`]) and the functions of one
//! direction's slots ([`GateActivations`]): the `activations`, `activation_alpha` and
//! `activation_beta` attributes of ONNX `RNN`, `GRU` and `LSTM`.
//!
//! | name | `y =` | alpha, beta (ONNX default) |
//! |---|---|---|
//! | `Relu`, `Tanh`, `Sigmoid` | `max(0, x)`, `tanh(x)`, `1/(1 + e^−x)` | none |
//! | `Affine` | `alpha·x + beta` | 1, 0 |
//! | `LeakyRelu` | `x` if `x ≥ 0`, else `alpha·x` | 0.01 |
//! | `ThresholdedRelu` | `x` if `x > alpha`, else 0 | 1 |
//! | `ScaledTanh` | `alpha·tanh(beta·x)` | none defined |
//! | `HardSigmoid` | `max(0, min(1, alpha·x + beta))` | 0.2, 0.5 |
//! | `Elu` | `x` if `x ≥ 0`, else `alpha·(e^x − 1)` | 1 |
//! | `Softsign` | `x / (1 + abs(x))` | none |
//! | `Softplus` | `ln(1 + e^x)` | none |
//!
//! NaN in gives NaN out for every function.

use crate::cell_kind::{CellKind, RnnActivation, RnnVariant};
use crate::error::{Error, Result};
use crate::real::Real;

/// One of ONNX's activation functions, with its parameters (see the module table).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `alpha·x + beta`.
    Affine {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x` if `x ≥ 0`, else `alpha·x`.
    LeakyRelu {
        /// Slope below 0.
        alpha: f32,
    },
    /// `x` if `x > alpha`, else 0.
    ThresholdedRelu {
        /// Threshold.
        alpha: f32,
    },
    /// `alpha·tanh(beta·x)`.
    ScaledTanh {
        /// Output scale.
        alpha: f32,
        /// Input scale.
        beta: f32,
    },
    /// `max(0, min(1, alpha·x + beta))`.
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x` if `x ≥ 0`, else `alpha·(e^x − 1)`.
    Elu {
        /// Scale below 0.
        alpha: f32,
    },
    /// `x / (1 + |x|)`.
    Softsign,
    /// `ln(1 + e^x)`.
    Softplus,
}

impl Activation {
    /// Every ONNX name, in the order of the module table.
    pub const NAMES: [&'static str; 11] = [
        "Relu",
        "Tanh",
        "Sigmoid",
        "Affine",
        "LeakyRelu",
        "ThresholdedRelu",
        "ScaledTanh",
        "HardSigmoid",
        "Elu",
        "Softsign",
        "Softplus",
    ];

    /// The function ONNX names `name` (any case), with `alpha` and `beta` where it takes
    /// them (`None`: ONNX's default; `ScaledTanh` has none, so both are required).
    /// Parameters a function does not take must be `None`.
    ///
    /// ```
    /// use rnn_reference::Activation;
    /// let f = Activation::from_onnx("LeakyRelu", None, None).unwrap();
    /// assert_eq!(f, Activation::LeakyRelu { alpha: 0.01 });
    /// assert!(Activation::from_onnx("Swish", None, None).is_err());
    /// ```
    pub fn from_onnx(name: &str, alpha: Option<f32>, beta: Option<f32>) -> Result<Self> {
        Self::from_canonical_onnx(Self::canonical_onnx_name(name)?, alpha, beta)
    }

    /// [`from_onnx`](Self::from_onnx) once the name is known to be `canonical`.
    fn from_canonical_onnx(
        canonical: &'static str,
        alpha: Option<f32>,
        beta: Option<f32>,
    ) -> Result<Self> {
        let f = Self::with_onnx_defaults(canonical, alpha, beta)?;
        let extra = |given: Option<f32>, takes: bool, what: &str| match (given, takes) {
            (Some(v), false) => Err(Error::invalid(
                "activations",
                format!("no {what} for {canonical} (it takes none)"),
                v,
            )),
            _ => Ok(()),
        };
        extra(alpha, f.takes_alpha(), "alpha")?;
        extra(beta, f.takes_beta(), "beta")?;
        f.validate()?;
        Ok(f)
    }

    /// ONNX's spelling of the function `name` names (any case), or an error listing them.
    fn canonical_onnx_name(name: &str) -> Result<&'static str> {
        Self::NAMES
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
            .copied()
            .ok_or_else(|| {
                Error::invalid(
                    "activations",
                    format!("one of ONNX's functions ({})", Self::NAMES.join(", ")),
                    name,
                )
            })
    }

    /// The function `canonical` (one of [`NAMES`](Self::NAMES)) with `alpha` and `beta`,
    /// ONNX's defaults where `None` (an error where ONNX has none); values it does not
    /// take are ignored here and refused by [`from_onnx`](Self::from_onnx).
    fn with_onnx_defaults(
        canonical: &'static str,
        alpha: Option<f32>,
        beta: Option<f32>,
    ) -> Result<Self> {
        let need = |v: Option<f32>, what: &str| {
            v.ok_or_else(|| {
                Error::invalid(
                    "activations",
                    format!("an explicit {what} for {canonical} (ONNX defines no default)"),
                    "none",
                )
            })
        };
        Ok(match canonical {
            "Relu" => Activation::Relu,
            "Tanh" => Activation::Tanh,
            "Sigmoid" => Activation::Sigmoid,
            "Affine" => Activation::Affine {
                alpha: alpha.unwrap_or(1.0),
                beta: beta.unwrap_or(0.0),
            },
            "LeakyRelu" => Activation::LeakyRelu {
                alpha: alpha.unwrap_or(0.01),
            },
            "ThresholdedRelu" => Activation::ThresholdedRelu {
                alpha: alpha.unwrap_or(1.0),
            },
            "ScaledTanh" => Activation::ScaledTanh {
                alpha: need(alpha, "alpha")?,
                beta: need(beta, "beta")?,
            },
            "HardSigmoid" => Activation::HardSigmoid {
                alpha: alpha.unwrap_or(0.2),
                beta: beta.unwrap_or(0.5),
            },
            "Elu" => Activation::Elu {
                alpha: alpha.unwrap_or(1.0),
            },
            "Softsign" => Activation::Softsign,
            _ => Activation::Softplus,
        })
    }

    /// ONNX's name of the function.
    pub fn onnx_name(self) -> &'static str {
        match self {
            Activation::Relu => "Relu",
            Activation::Tanh => "Tanh",
            Activation::Sigmoid => "Sigmoid",
            Activation::Affine { .. } => "Affine",
            Activation::LeakyRelu { .. } => "LeakyRelu",
            Activation::ThresholdedRelu { .. } => "ThresholdedRelu",
            Activation::ScaledTanh { .. } => "ScaledTanh",
            Activation::HardSigmoid { .. } => "HardSigmoid",
            Activation::Elu { .. } => "Elu",
            Activation::Softsign => "Softsign",
            Activation::Softplus => "Softplus",
        }
    }

    /// Whether the function takes an `activation_alpha` value.
    pub fn takes_alpha(self) -> bool {
        self.alpha().is_some()
    }

    /// Whether the function takes an `activation_beta` value.
    pub fn takes_beta(self) -> bool {
        self.beta().is_some()
    }

    /// Its alpha, if it takes one.
    pub fn alpha(self) -> Option<f32> {
        match self {
            Activation::Affine { alpha, .. }
            | Activation::LeakyRelu { alpha }
            | Activation::ThresholdedRelu { alpha }
            | Activation::ScaledTanh { alpha, .. }
            | Activation::HardSigmoid { alpha, .. }
            | Activation::Elu { alpha } => Some(alpha),
            _ => None,
        }
    }

    /// Its beta, if it takes one.
    pub fn beta(self) -> Option<f32> {
        match self {
            Activation::Affine { beta, .. }
            | Activation::ScaledTanh { beta, .. }
            | Activation::HardSigmoid { beta, .. } => Some(beta),
            _ => None,
        }
    }

    /// Checks that every parameter is finite.
    pub fn validate(self) -> Result<()> {
        for v in [self.alpha(), self.beta()].into_iter().flatten() {
            if !v.is_finite() {
                return Err(Error::invalid(
                    "activations",
                    format!("finite parameters for {}", self.onnx_name()),
                    v,
                ));
            }
        }
        Ok(())
    }

    /// The largest `|a(x)|` over `|x| ≤ m` (`m ≥ 0`), an upper bound: 1 for the
    /// sigmoid, tanh, softsign and hard sigmoid, `|alpha|` for the scaled tanh, linear
    /// growth for the others (Softplus `m + ln 2`, Elu `max(m, |alpha|)`).
    pub fn bound(self, m: f64) -> f64 {
        let p = |v: f32| f64::from(v).abs();
        match self {
            Activation::Tanh | Activation::Sigmoid | Activation::Softsign => 1.0,
            Activation::HardSigmoid { .. } => 1.0,
            Activation::ScaledTanh { alpha, .. } => p(alpha),
            Activation::Relu | Activation::ThresholdedRelu { .. } => m,
            Activation::Affine { alpha, beta } => p(alpha) * m + p(beta),
            Activation::LeakyRelu { alpha } => m * p(alpha).max(1.0),
            Activation::Elu { alpha } => m.max(p(alpha)),
            Activation::Softplus => m + std::f64::consts::LN_2,
        }
    }

    /// Where the function or its slope jumps: `Relu`, `LeakyRelu`, `Elu` at 0,
    /// `ThresholdedRelu` at `alpha`, `HardSigmoid` where `alpha·x + beta` is 0 or 1;
    /// none for the smooth ones.
    pub fn kinks(self) -> Vec<f64> {
        let p = |v: f32| f64::from(v);
        match self {
            Activation::Relu | Activation::LeakyRelu { .. } | Activation::Elu { .. } => {
                vec![0.0]
            }
            Activation::ThresholdedRelu { alpha } => vec![p(alpha)],
            Activation::HardSigmoid { alpha, beta } if alpha != 0.0 => {
                vec![-p(beta) / p(alpha), (1.0 - p(beta)) / p(alpha)]
            }
            _ => Vec::new(),
        }
    }

    /// The function at `x`, in `f64` (the definition; [`Real::gate_activation`]
    /// evaluates it in the reference's own type). Softplus is evaluated as
    /// `max(x, 0) + ln(1 + e^−|x|)`, Elu below 0 with `exp_m1`, so neither overflows
    /// nor cancels.
    pub fn eval(self, x: f64) -> f64 {
        let p = |v: f32| f64::from(v);
        match self {
            Activation::Relu => {
                if x.is_nan() || x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Affine { alpha, beta } => p(alpha) * x + p(beta),
            Activation::LeakyRelu { alpha } => {
                if x.is_nan() || x >= 0.0 {
                    x
                } else {
                    p(alpha) * x
                }
            }
            Activation::ThresholdedRelu { alpha } => {
                if x.is_nan() || x > p(alpha) {
                    x
                } else {
                    0.0
                }
            }
            Activation::ScaledTanh { alpha, beta } => p(alpha) * (p(beta) * x).tanh(),
            Activation::HardSigmoid { alpha, beta } => {
                let v = p(alpha) * x + p(beta);
                if v.is_nan() {
                    v
                } else {
                    v.clamp(0.0, 1.0)
                }
            }
            Activation::Elu { alpha } => {
                if x.is_nan() || x >= 0.0 {
                    x
                } else {
                    p(alpha) * x.exp_m1()
                }
            }
            Activation::Softsign => x / (1.0 + x.abs()),
            Activation::Softplus => {
                if x.is_nan() {
                    x
                } else {
                    x.max(0.0) + (-x.abs()).exp().ln_1p()
                }
            }
        }
    }

    /// The derivative at `x` (`y` is the function's value there, which the sigmoid's
    /// and tanh's derivatives are computed from, as for the default gates), in `T`
    /// ([`Real::gate_slope`]). At a kink it is the derivative of the branch taken
    /// (`Relu`, `ThresholdedRelu` and `HardSigmoid` take the flat side, `LeakyRelu`
    /// and `Elu` the identity).
    pub fn derivative<T: Real>(self, x: T, y: T) -> T {
        x.gate_slope(self, y)
    }

    /// The largest `|a'(x)|` over all `x`: 1/4 for the sigmoid, `|alpha|` for the
    /// affine map and the hard sigmoid, `|alpha·beta|` for the scaled tanh,
    /// `max(1, |alpha|)` for LeakyRelu and Elu, 1 for the others.
    pub fn max_slope(self) -> f64 {
        let p = |v: f32| f64::from(v).abs();
        match self {
            Activation::Sigmoid => 0.25,
            Activation::Affine { alpha, .. } | Activation::HardSigmoid { alpha, .. } => p(alpha),
            Activation::ScaledTanh { alpha, beta } => p(alpha) * p(beta),
            Activation::LeakyRelu { alpha } | Activation::Elu { alpha } => p(alpha).max(1.0),
            _ => 1.0,
        }
    }

    /// [`derivative`](Self::derivative) from `x` alone, in `f64`.
    pub fn derivative_f64(self, x: f64) -> f64 {
        let p = |v: f32| f64::from(v);
        let step = |on: bool, slope: f64| if on { slope } else { 0.0 };
        if x.is_nan() {
            // Relu passes nothing at NaN (as the standard relu cell always has).
            return if self == Activation::Relu { 0.0 } else { x };
        }
        match self {
            Activation::Relu => step(x > 0.0, 1.0),
            Activation::Tanh => 1.0 - x.tanh().powi(2),
            Activation::Sigmoid => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 - s)
            }
            Activation::Affine { alpha, .. } => p(alpha),
            Activation::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    1.0
                } else {
                    p(alpha)
                }
            }
            Activation::ThresholdedRelu { alpha } => step(x > p(alpha), 1.0),
            Activation::ScaledTanh { alpha, beta } => {
                p(alpha) * p(beta) * (1.0 - (p(beta) * x).tanh().powi(2))
            }
            Activation::HardSigmoid { alpha, beta } => {
                let v = p(alpha) * x + p(beta);
                step(v > 0.0 && v < 1.0, p(alpha))
            }
            Activation::Elu { alpha } => {
                if x >= 0.0 {
                    1.0
                } else {
                    p(alpha) * x.exp()
                }
            }
            Activation::Softsign => 1.0 / (1.0 + x.abs()).powi(2),
            Activation::Softplus => 1.0 / (1.0 + (-x).exp()),
        }
    }
}

/// The activation functions of one direction, by ONNX slot: an RNN uses `f`
/// (`h' = f(…)`); a GRU `f` for z and r and `g` for n; an LSTM `f` for i, f and o, `g`
/// for the cell candidate and `h` for the output (`h' = o ⊙ h(c')`). Slots a cell does
/// not use are ignored.
///
/// ```
/// use rnn_reference::{Activation, CellKind, GateActivations};
/// let lstm = GateActivations::standard(CellKind::LSTM);
/// assert_eq!((lstm.f, lstm.g, lstm.h), (Activation::Sigmoid, Activation::Tanh, Activation::Tanh));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateActivations {
    /// ONNX's `f`: the RNN's function, the gates' (GRU z, r; LSTM i, f, o).
    pub f: Activation,
    /// ONNX's `g`: GRU n, LSTM cell candidate.
    pub g: Activation,
    /// ONNX's `h`: LSTM output `h(c')`.
    pub h: Activation,
}

impl GateActivations {
    /// The functions `cell` has without an `activations` attribute: RNN its
    /// [`RnnActivation`] (slots g, h unused: Tanh); GRU Sigmoid, Tanh; LSTM Sigmoid,
    /// Tanh, Tanh.
    pub fn standard(cell: CellKind) -> Self {
        let (s, t) = (Activation::Sigmoid, Activation::Tanh);
        match cell {
            CellKind::Rnn(RnnVariant {
                activation: RnnActivation::Relu,
            }) => GateActivations {
                f: Activation::Relu,
                g: t,
                h: t,
            },
            CellKind::Rnn(_) => GateActivations { f: t, g: t, h: t },
            _ => GateActivations { f: s, g: t, h: t },
        }
    }

    /// How many slots `cell` uses: RNN 1, GRU 2, LSTM 3.
    pub fn slots(cell: CellKind) -> usize {
        match cell {
            CellKind::Rnn(_) => 1,
            CellKind::Gru(_) => 2,
            CellKind::Lstm(_) => 3,
        }
    }

    /// The used slots, in ONNX's order (f, g, h) (no allocation: the kernels ask per
    /// step).
    pub fn used(&self, cell: CellKind) -> impl Iterator<Item = Activation> {
        [self.f, self.g, self.h].into_iter().take(Self::slots(cell))
    }

    /// Whether the slots `cell` uses equal its standard functions.
    pub fn is_standard(&self, cell: CellKind) -> bool {
        self.used(cell).eq(Self::standard(cell).used(cell))
    }

    /// Checks every used function's parameters.
    pub fn validate(&self, cell: CellKind) -> Result<()> {
        self.used(cell).try_for_each(|a| a.validate())
    }
}

/// ONNX's `activations`, `activation_alpha` and `activation_beta` attributes of a
/// `cell` node with `num_directions` directions, as the config's per-direction
/// functions: `names` holds [`GateActivations::slots`] names per direction (forward
/// first); the parameters are consumed in order (each function that takes an alpha
/// takes the next alpha, likewise beta), ONNX's defaults where a list runs short.
/// Errors name `activations` (a wrong count, an unknown name, a missing `ScaledTanh`
/// parameter) or `activation_alpha` / `activation_beta` (values left over).
///
/// ```
/// use rnn_reference::{onnx_activations, Activation, CellKind};
/// let acts = onnx_activations(CellKind::GRU, 1, &["HardSigmoid", "Affine"], &[0.25, 2.0], &[0.5]).unwrap();
/// assert_eq!(acts[0].f, Activation::HardSigmoid { alpha: 0.25, beta: 0.5 });
/// assert_eq!(acts[0].g, Activation::Affine { alpha: 2.0, beta: 0.0 });
/// ```
pub fn onnx_activations(
    cell: CellKind,
    num_directions: usize,
    names: &[&str],
    alpha: &[f32],
    beta: &[f32],
) -> Result<[GateActivations; 2]> {
    let per = GateActivations::slots(cell);
    if names.len() != per * num_directions {
        return Err(Error::invalid(
            "activations",
            format!(
                "{} names ({per} per direction for a {} with {num_directions} direction(s))",
                per * num_directions,
                cell.name()
            ),
            names.len(),
        ));
    }
    let (mut al, mut be) = (alpha.iter().copied(), beta.iter().copied());
    let mut out = [GateActivations::standard(cell); 2];
    for (d, chunk) in names.chunks(per).enumerate() {
        let mut slots = [Activation::Tanh; 3];
        for (slot, name) in slots.iter_mut().zip(chunk) {
            // Which parameters the named function takes decides what it consumes (with
            // both given, no function lacks one, so the probe cannot fail).
            let canonical = Activation::canonical_onnx_name(name)?;
            let probe = Activation::with_onnx_defaults(canonical, Some(1.0), Some(1.0))?;
            let a = probe.takes_alpha().then(|| al.next()).flatten();
            let b = probe.takes_beta().then(|| be.next()).flatten();
            *slot = Activation::from_canonical_onnx(canonical, a, b)?;
        }
        let std = GateActivations::standard(cell);
        out[d] = GateActivations {
            f: slots[0],
            g: if per > 1 { slots[1] } else { std.g },
            h: if per > 2 { slots[2] } else { std.h },
        };
    }
    if num_directions == 1 {
        out[1] = out[0];
    }
    for (arg, left) in [
        ("activation_alpha", al.count()),
        ("activation_beta", be.count()),
    ] {
        if left > 0 {
            return Err(Error::invalid(
                arg,
                "one value per function that takes one, in order",
                format!("{left} value(s) left over"),
            ));
        }
    }
    Ok(out)
}

/// The ONNX attributes of `acts` for a `cell` with `num_directions` directions:
/// `(activations, activation_alpha, activation_beta)`, the inverse of
/// [`onnx_activations`] (every parameter written explicitly).
pub fn onnx_activation_lists(
    cell: CellKind,
    num_directions: usize,
    acts: &[GateActivations; 2],
) -> (Vec<&'static str>, Vec<f32>, Vec<f32>) {
    let (mut names, mut alpha, mut beta) = (Vec::new(), Vec::new(), Vec::new());
    for d in acts.iter().take(num_directions) {
        for a in d.used(cell) {
            names.push(a.onnx_name());
            alpha.extend(a.alpha());
            beta.extend(a.beta());
        }
    }
    (names, alpha, beta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every function once, with parameters of both signs.
    const SAMPLES: [Activation; 11] = [
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Affine {
            alpha: -0.75,
            beta: 0.5,
        },
        Activation::LeakyRelu { alpha: 0.125 },
        Activation::ThresholdedRelu { alpha: -0.5 },
        Activation::ScaledTanh {
            alpha: 1.5,
            beta: -0.75,
        },
        Activation::HardSigmoid {
            alpha: 0.375,
            beta: 0.5,
        },
        Activation::Elu { alpha: 0.625 },
        Activation::Softsign,
        Activation::Softplus,
    ];

    #[test]
    fn values_by_hand() {
        let cases: &[(Activation, f64, f64)] = &[
            (Activation::Relu, -1.5, 0.0),
            (Activation::Relu, 1.5, 1.5),
            (
                Activation::Affine {
                    alpha: 2.0,
                    beta: -0.5,
                },
                1.25,
                2.0,
            ),
            (Activation::LeakyRelu { alpha: 0.25 }, -2.0, -0.5),
            (Activation::LeakyRelu { alpha: 0.25 }, 2.0, 2.0),
            (Activation::ThresholdedRelu { alpha: 1.0 }, 1.0, 0.0),
            (Activation::ThresholdedRelu { alpha: 1.0 }, 1.5, 1.5),
            (Activation::ThresholdedRelu { alpha: -1.0 }, -0.5, -0.5),
            (
                Activation::HardSigmoid {
                    alpha: 0.5,
                    beta: 0.25,
                },
                1.0,
                0.75,
            ),
            (
                Activation::HardSigmoid {
                    alpha: 0.5,
                    beta: 0.25,
                },
                4.0,
                1.0,
            ),
            (
                Activation::HardSigmoid {
                    alpha: 0.5,
                    beta: 0.25,
                },
                -4.0,
                0.0,
            ),
            (Activation::Softsign, -3.0, -0.75),
            (Activation::Elu { alpha: 2.0 }, 3.0, 3.0),
            (Activation::Elu { alpha: 2.0 }, -(2.0f64.ln()), -1.0),
            (Activation::Softplus, 0.0, std::f64::consts::LN_2),
            (Activation::Softplus, 3.0f64.ln(), 4.0f64.ln()),
            (Activation::Softplus, -(3.0f64.ln()), (4.0f64 / 3.0).ln()),
            (
                Activation::ScaledTanh {
                    alpha: 2.0,
                    beta: 0.5,
                },
                2.0,
                2.0 * 1.0f64.tanh(),
            ),
        ];
        for &(a, x, want) in cases {
            let got = a.eval(x);
            assert!(
                (got - want).abs() <= 1e-15,
                "{a:?}({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn softplus_and_elu_stay_accurate_at_the_extremes() {
        assert_eq!(Activation::Softplus.eval(1000.0), 1000.0);
        assert_eq!(Activation::Softplus.eval(-1000.0), 0.0);
        let tiny = Activation::Softplus.eval(-40.0);
        assert!((tiny / (-40.0f64).exp() - 1.0).abs() < 1e-15);
        let e = Activation::Elu { alpha: 1.0 }.eval(-1e-10);
        assert!((e / -1e-10 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn nan_propagates_and_infinities_saturate() {
        for name in Activation::NAMES {
            let (alpha, beta) = match name {
                "ScaledTanh" => (Some(1.5), Some(0.5)),
                _ => (None, None),
            };
            let a = Activation::from_onnx(name, alpha, beta).unwrap();
            assert!(a.eval(f64::NAN).is_nan(), "{name}");
            let d = a.derivative_f64(f64::NAN);
            assert!(d.is_nan() || (name == "Relu" && d == 0.0), "{name}");
        }
        assert_eq!(Activation::Softplus.eval(f64::INFINITY), f64::INFINITY);
        assert_eq!(Activation::Softplus.eval(f64::NEG_INFINITY), 0.0);
        assert_eq!(Activation::Elu { alpha: 0.5 }.eval(f64::NEG_INFINITY), -0.5);
        assert!(Activation::Softsign.eval(f64::NEG_INFINITY).is_nan());
    }

    #[test]
    fn derivatives_match_central_differences() {
        let fns = SAMPLES;
        for a in fns {
            for x in [-2.3, -0.7, -0.1, 0.2, 0.9, 1.7] {
                let h = 1e-6;
                let fd = (a.eval(x + h) - a.eval(x - h)) / (2.0 * h);
                let d = a.derivative_f64(x);
                assert!((fd - d).abs() < 1e-7, "{a:?}'({x}) = {d}, differences {fd}");
                assert!(d.abs() <= a.max_slope(), "{a:?}'({x}) = {d}");
                let y = a.eval(x);
                assert!((a.derivative(x, y) - d).abs() < 1e-12);
            }
        }
    }

    /// `max_slope` bounds every slope and is reached (or approached within 0.1%) on a
    /// sweep: a looser one would loosen the error bounds built on it.
    #[test]
    fn max_slopes_bound_and_are_reached() {
        let steep = [
            Activation::LeakyRelu { alpha: -1.5 },
            Activation::Elu { alpha: 2.5 },
        ];
        for a in SAMPLES.into_iter().chain(steep) {
            let mut most = 0.0f64;
            // Out to ±20 (the softplus's tail approaches its limit), and just left of 0
            // (Elu's slope approaches `alpha` there).
            let near_zero = [-1e-9, 1e-9].into_iter();
            for x in (-4000..=4000)
                .map(|k| f64::from(k) / 200.0)
                .chain(near_zero)
            {
                let d = a.derivative_f64(x).abs();
                assert!(d <= a.max_slope(), "{a:?}'({x}) = {d}");
                most = most.max(d);
            }
            assert!(most >= 0.999 * a.max_slope(), "{a:?}: at most {most}");
        }
    }

    /// At a kink the slope is the documented branch's: the flat side for `Relu`,
    /// `ThresholdedRelu` and `HardSigmoid`, the identity's for `LeakyRelu` and `Elu`.
    #[test]
    fn slopes_at_kinks_take_the_documented_branch() {
        let hs = Activation::HardSigmoid {
            alpha: 0.5,
            beta: 0.5,
        };
        let cases: &[(Activation, f64, f64)] = &[
            (Activation::Relu, 0.0, 0.0),
            (Activation::ThresholdedRelu { alpha: 0.75 }, 0.75, 0.0),
            (hs, -1.0, 0.0),
            (hs, 1.0, 0.0),
            (Activation::LeakyRelu { alpha: 0.125 }, 0.0, 1.0),
            (Activation::Elu { alpha: 0.625 }, 0.0, 1.0),
        ];
        for &(a, x, want) in cases {
            assert_eq!(a.derivative_f64(x), want, "{a:?} at {x}");
            assert_eq!(
                a.derivative(x, a.eval(x)),
                want,
                "{a:?} at {x} (derivative)"
            );
        }
    }

    #[test]
    fn onnx_names_defaults_and_refusals() {
        assert_eq!(
            Activation::from_onnx("hardsigmoid", None, Some(0.25)).unwrap(),
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.25
            }
        );
        assert_eq!(
            Activation::from_onnx("Affine", None, None).unwrap(),
            Activation::Affine {
                alpha: 1.0,
                beta: 0.0
            }
        );
        assert_eq!(
            Activation::from_onnx("ThresholdedRelu", None, None).unwrap(),
            Activation::ThresholdedRelu { alpha: 1.0 }
        );
        assert_eq!(
            Activation::from_onnx("Elu", None, None).unwrap(),
            Activation::Elu { alpha: 1.0 }
        );
        let err = |n, a, b| Activation::from_onnx(n, a, b).unwrap_err().to_string();
        assert!(err("ScaledTanh", Some(1.0), None).contains("beta"));
        assert!(err("Tanh", Some(1.0), None).contains("alpha"));
        assert!(err("LeakyRelu", None, Some(1.0)).contains("beta"));
        assert!(err("Elu", Some(f32::NAN), None).contains("finite"));
        assert!(err("Gelu", None, None).contains("Softplus"));
        for name in Activation::NAMES {
            let a = Activation::from_onnx(name, None, None)
                .or_else(|_| Activation::from_onnx(name, Some(0.5), Some(0.25)))
                .unwrap();
            assert_eq!(a.onnx_name(), name);
        }
    }

    #[test]
    fn bounds_hold_on_a_sweep() {
        let steep = [
            Activation::LeakyRelu { alpha: -1.5 },
            Activation::Elu { alpha: 2.5 },
        ];
        for a in SAMPLES.into_iter().chain(steep) {
            for m in [0.0, 0.5, 3.0, 40.0] {
                for k in -100..=100 {
                    let x = m * f64::from(k) / 100.0;
                    assert!(a.eval(x).abs() <= a.bound(m), "{a:?} at {x}, m = {m}");
                }
            }
        }
    }

    /// The piecewise-linear functions reach their bound at `x = ±m` (a bound that is
    /// merely safe, e.g. `|alpha| + m` for the affine map, would loosen every error
    /// bound built on it).
    #[test]
    fn linear_bounds_are_attained() {
        let linear = [
            Activation::Relu,
            Activation::Affine {
                alpha: -0.75,
                beta: 0.5,
            },
            Activation::Affine {
                alpha: 2.5,
                beta: -1.5,
            },
            Activation::LeakyRelu { alpha: -1.5 },
            Activation::LeakyRelu { alpha: 0.125 },
        ];
        for a in linear {
            for m in [0.5, 3.0, 40.0] {
                let reached = a.eval(m).abs().max(a.eval(-m).abs());
                assert_eq!(reached, a.bound(m), "{a:?}, m = {m}");
            }
        }
    }

    /// Each listed kink is where the slope jumps (one-sided difference quotients
    /// differ), the smooth functions list none, and a flat hard sigmoid has none.
    #[test]
    fn kinks_are_where_the_slope_jumps() {
        let h = 1e-6;
        let slope_jump = |a: Activation, x: f64| {
            let left = (a.eval(x) - a.eval(x - h)) / h;
            let right = (a.eval(x + h) - a.eval(x)) / h;
            (right - left).abs() > 1e-3
        };
        let expected: &[(Activation, &[f64])] = &[
            (Activation::Relu, &[0.0]),
            (Activation::LeakyRelu { alpha: 0.125 }, &[0.0]),
            (Activation::Elu { alpha: 0.625 }, &[0.0]),
            (Activation::ThresholdedRelu { alpha: -0.5 }, &[-0.5]),
            (Activation::ThresholdedRelu { alpha: 0.75 }, &[0.75]),
            (
                Activation::HardSigmoid {
                    alpha: 0.375,
                    beta: 0.5,
                },
                &[-0.5 / 0.375, 0.5 / 0.375],
            ),
            (
                Activation::HardSigmoid {
                    alpha: 0.0,
                    beta: 0.5,
                },
                &[],
            ),
            (Activation::Tanh, &[]),
            (Activation::Sigmoid, &[]),
            (Activation::Softplus, &[]),
            (Activation::Softsign, &[]),
        ];
        for &(a, want) in expected {
            let got = a.kinks();
            assert_eq!(got.len(), want.len(), "{a:?}: {got:?}");
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-12, "{a:?}: {got:?}");
                // ThresholdedRelu jumps in value, the others in slope: both show.
                assert!(slope_jump(a, *g), "{a:?}: no jump at {g}");
            }
        }
    }

    #[test]
    fn onnx_lists_consume_parameters_in_order() {
        let names = [
            "Sigmoid",
            "Affine",
            "HardSigmoid",
            "ScaledTanh",
            "Relu",
            "Elu",
        ];
        let acts = onnx_activations(
            CellKind::LSTM,
            2,
            &names,
            &[0.875, 0.375, 1.25, 0.5],
            &[-0.125, 0.5, 0.625],
        )
        .unwrap();
        assert_eq!(
            acts[0].g,
            Activation::Affine {
                alpha: 0.875,
                beta: -0.125
            }
        );
        assert_eq!(
            acts[0].h,
            Activation::HardSigmoid {
                alpha: 0.375,
                beta: 0.5
            }
        );
        assert_eq!(
            acts[1].f,
            Activation::ScaledTanh {
                alpha: 1.25,
                beta: 0.625
            }
        );
        assert_eq!(acts[1].h, Activation::Elu { alpha: 0.5 });
        let (n, a, b) = onnx_activation_lists(CellKind::LSTM, 2, &acts);
        assert_eq!(n, names);
        assert_eq!(a, [0.875, 0.375, 1.25, 0.5]);
        assert_eq!(b, [-0.125, 0.5, 0.625]);
        let err = |names: &[&str], a: &[f32]| {
            onnx_activations(CellKind::GRU, 1, names, a, &[])
                .unwrap_err()
                .to_string()
        };
        assert!(err(&["Sigmoid"], &[]).contains("2 names"));
        assert!(err(&["Sigmoid", "Tanh"], &[1.0]).contains("activation_alpha"));
        assert!(err(&["Sigmoid", "Swish"], &[]).contains("Swish"));
        // One direction: the reverse slot repeats the forward one.
        let one = onnx_activations(CellKind::RNN_TANH, 1, &["Softsign"], &[], &[]).unwrap();
        assert_eq!(one[1].f, Activation::Softsign);
    }

    #[test]
    fn standard_sets() {
        for cell in [
            CellKind::LSTM,
            CellKind::GRU,
            CellKind::RNN_TANH,
            CellKind::RNN_RELU,
        ] {
            assert!(GateActivations::standard(cell).is_standard(cell));
        }
        let relu = GateActivations::standard(CellKind::RNN_RELU);
        assert!(!relu.is_standard(CellKind::RNN_TANH));
        let mut gru = GateActivations::standard(CellKind::GRU);
        gru.h = Activation::Softsign; // unused by a GRU
        assert!(gru.is_standard(CellKind::GRU));
    }
}
