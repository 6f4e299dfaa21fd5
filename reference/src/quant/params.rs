//! Run-time quantization of activations: the schemes, the range of a block, and the
//! code of one value. Everything here is `f32` arithmetic, as in ONNX Runtime's
//! `GetQuantizationParameter` (`onnxruntime/core/util/qmath.h`) and
//! `MlasQuantizeLinear` (`onnxruntime/core/mlas/lib/quantize.cpp`), so that an
//! implementation following these lines gets the same codes bit for bit.

/// How the left operand of every int8 product (the input `x`, the recurrent `h`, and
/// the second operands of a step: an LSTM projection's `o ⊙ tanh(c')`, a reset-before
/// GRU's `r ⊙ h`) is quantized to `uint8` at run time.
///
/// In every scheme a block `a` gets `lo = min(0, min a)`, `hi = max(0, max a)`,
/// `s = (hi − lo) / qmax` (1 if `hi = lo`), `zp = round(clamp(−lo / s, 0, qmax))` and
/// each value the code `q = clamp(round(a / s) + zp, 0, qmax)` (rounding half to even,
/// `a / s` an `f32` division). The schemes differ in what a block is and in `qmax`.
/// A block holding a NaN or an infinity gets a NaN scale: every product computed from
/// it is NaN.
///
/// **Error against `f32`.** Every value `a` of a finite block is within `B·s` of its
/// dequantized code `(q − zp)·s`, `B = ½ + 4u·qmax` (`u = 2⁻²⁴`; the zero point's
/// rounding puts the top of the range at most half a code above `qmax`, so the clamp
/// costs half a step too). An int8 product's output `n` is then within
/// `B·s·Σ_k |w[n,k]| + 5u·Σ_k (|a_k| + B·s)|w[n,k]|` of the exact product on the
/// dequantized weights `w`, in every scheme; [`error`](super::error) derives it, and
/// the test kit's `forward_dequantized` carries it through the cells as a rigorous
/// per-element bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ActivationQuant {
    /// One range per row: every row of `x` (one batch row of one step) and every row of
    /// a step's recurrent operand gets its own scale and zero point, codes in
    /// `[0, 255]`. This crate's default: a row's range never includes another row's
    /// outliers, so it is at least as accurate as a shared range at no cost.
    #[default]
    PerRow,
    /// [`PerRow`](Self::PerRow) with 7-bit codes `[0, 127]` (fbgemm's and PyTorch's
    /// `reduce_range`). Twice the activation step, but a pair of products
    /// `a₀w₀ + a₁w₁` then always fits in `i16`, so AVX2 (`vpmaddubsw`) runs at full
    /// speed for any int8 weights; with 8-bit codes it needs weights within about
    /// ±64 for that, else a slower exact path. Results are the same on every
    /// instruction set either way.
    PerRowReduced,
    /// ONNX Runtime's `com.microsoft.DynamicQuantizeLSTM`: codes in `[0, 255]`; `x`
    /// gets one range per call over every row of the steps `t < max(seq_lens)` (padding
    /// of shorter rows included), each step's recurrent operand one range over the
    /// whole batch (`h0` at a direction's first step; after it, a row whose sequence
    /// ended before the previous step contributes 0, one that ended at the previous
    /// step its last `h`). Rows then run aligned at their first step: the reverse
    /// direction of a row of length `len` starts at `len − 1`, as ONNX Runtime runs it.
    OnnxRuntime,
}

impl ActivationQuant {
    /// Every scheme.
    pub const ALL: [ActivationQuant; 3] = [
        ActivationQuant::PerRow,
        ActivationQuant::PerRowReduced,
        ActivationQuant::OnnxRuntime,
    ];

    /// The largest code: 255, or 127 for [`PerRowReduced`](Self::PerRowReduced).
    pub fn qmax(self) -> u8 {
        match self {
            ActivationQuant::PerRowReduced => 127,
            _ => 255,
        }
    }

    /// Whether every row is its own block (else a block spans the rows of a step, or of
    /// a whole call for `x`).
    pub fn per_row(self) -> bool {
        !matches!(self, ActivationQuant::OnnxRuntime)
    }

    /// A short name: `"per_row"`, `"per_row_reduced"` or `"onnxruntime"`.
    pub fn name(self) -> &'static str {
        match self {
            ActivationQuant::PerRow => "per_row",
            ActivationQuant::PerRowReduced => "per_row_reduced",
            ActivationQuant::OnnxRuntime => "onnxruntime",
        }
    }
}

/// The largest `k` (input width `I_l`, `H_out` or `H`) of an int8 product: every
/// integer sum `Σ (q − zp_a)(w − zp_w)`, at most `k · 255 · 255` in magnitude, then fits
/// in an `i32`, and every row sum `Σ q` (at most `k · 255`) is exact in `f32`.
pub const MAX_K: usize = 1 << 15;

/// Scale and zero point of a block of activations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockParams {
    /// `s`: NaN if the block holds a NaN or an infinity.
    pub scale: f32,
    /// `zp`, in `[0, qmax]`.
    pub zero_point: u8,
}

/// The smallest and largest value of `a` and whether all are finite. An empty block
/// gives `(0, 0, true)`.
pub fn block_range(a: impl IntoIterator<Item = f32>) -> (f32, f32, bool) {
    let (mut lo, mut hi, mut finite) = (0.0f32, 0.0f32, true);
    for v in a {
        finite &= v.is_finite();
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo, hi, finite)
}

/// The parameters of a block whose range is `(lo, hi, finite)` ([`block_range`]):
/// `lo` and `hi` are widened to include 0; `s = (hi − lo) / qmax`, or 1 when they are
/// equal; `zp = round_half_even(clamp(−lo / s, 0, qmax))`. All in `f32`, as ONNX
/// Runtime computes them.
pub fn block_params((lo, hi, finite): (f32, f32, bool), qmax: u8) -> BlockParams {
    if !finite {
        return BlockParams {
            scale: f32::NAN,
            zero_point: 0,
        };
    }
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let qmax_f = f32::from(qmax);
    let scale = if hi == lo { 1.0 } else { (hi - lo) / qmax_f };
    let zp = (-lo / scale).clamp(0.0, qmax_f).round_ties_even();
    BlockParams {
        scale,
        zero_point: zp as u8,
    }
}

/// The code of `a`: `clamp(round_half_even(a / s) + zp, 0, qmax)`, with `a / s` an
/// `f32` division (NaN, from a NaN scale, gives 0).
pub fn quantize(a: f32, p: BlockParams, qmax: u8) -> u8 {
    let zp = f32::from(p.zero_point);
    let v = (a / p.scale).clamp(-zp, f32::from(qmax) - zp);
    if v.is_nan() {
        0
    } else {
        (v.round_ties_even() + zp) as u8
    }
}

/// How far `a / s` lies from a rounding boundary `k + ½`, in code units: an
/// implementation whose `a` (or `s`) differs by a few roundings gets the same code as
/// long as its `a / s` moves by less than this. Infinite for a NaN scale.
pub fn tie_margin(a: f32, p: BlockParams) -> f64 {
    let v = f64::from(a / p.scale);
    if !v.is_finite() {
        return f64::INFINITY;
    }
    (v - v.floor() - 0.5).abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_follow_onnx_runtime() {
        // Range widened to include 0; s = range / 255; zp rounds -lo / s.
        let p = block_params(block_range([0.5f32, 1.5, 1.0]), 255);
        assert_eq!(p.scale, 1.5 / 255.0);
        assert_eq!(p.zero_point, 0);
        let p = block_params(block_range([-1.0f32, 1.0]), 255);
        assert_eq!(p.scale, 2.0 / 255.0);
        // -(-1) / f32(2/255) = 127.49999 in f32: zp 127, not 128.
        assert_eq!(p.zero_point, 127);
        assert_eq!(quantize(-1.0, p, 255), 0);
        assert_eq!(quantize(1.0, p, 255), 254); // round(127.49999) + 127
        assert_eq!(quantize(0.0, p, 255), 127);
        // All zeros: scale 1.
        let p = block_params(block_range([0.0f32; 3]), 255);
        assert_eq!((p.scale, p.zero_point), (1.0, 0));
        // 7-bit codes.
        let p = block_params(block_range([-2.0f32, 2.0]), 127);
        assert_eq!(quantize(2.0, p, 127), 127);
        assert_eq!(quantize(-2.0, p, 127), 0);
        // Non-finite blocks: NaN scale, code 0.
        let p = block_params(block_range([1.0f32, f32::INFINITY]), 255);
        assert!(p.scale.is_nan());
        assert_eq!(quantize(1.0, p, 255), 0);
        assert!(!block_range([f32::NAN]).2);
    }

    #[test]
    fn quantize_rounds_half_to_even_and_clamps() {
        let p = BlockParams {
            scale: 1.0,
            zero_point: 10,
        };
        assert_eq!(quantize(2.5, p, 255), 12);
        assert_eq!(quantize(3.5, p, 255), 14);
        assert_eq!(quantize(-100.0, p, 255), 0);
        assert_eq!(quantize(1000.0, p, 255), 255);
        assert_eq!(tie_margin(2.5, p), 0.0);
        assert_eq!(tie_margin(3.0, p), 0.5);
    }
}
