//! Weights packed once into the kernels' layout: [`PackedRnn`] for whole sequences and
//! [`PackedCell`](crate::PackedCell) for single steps share [`PackedDirection`].

use std::sync::OnceLock;

use rnn_reference::quant::{
    check_quantized_weights, import_dynamic_quantize_lstm, quantized_views, ActivationQuant,
    DynamicQuantizeLstmWeights, QuantizedLayerWeights, QuantizedMatrix, MAX_K,
};
use rnn_reference::{
    check_weights, import_onnx, views, Error, LayerWeights, OnnxWeights, OwnedLayerWeights,
    RnnConfig,
};

use crate::aligned::AlignedVec;
use crate::arch::DotFn;
use crate::cells::CellWeights;
use crate::dispatch::Kernels;
use crate::element::{Coded, Element, Storage, WeightType};
use crate::isa::Isa;
use crate::pack::{pack_vector, PairPanels, Panels};
use crate::Result;

/// One layer and direction, packed, weights stored as `W`.
#[derive(Clone)]
pub(crate) struct PackedDirection<W: Storage> {
    /// `W_ih`, all gates gate-interleaved per tile, four tiles per panel; `k = I_l`.
    pub(crate) w_ih: Panels<W, 4>,
    /// Biases folded into the input projection, aligned with `w_ih`'s columns.
    pub(crate) bias: AlignedVec,
    /// The recurrent part, packed by the cell's home.
    pub(crate) cell: CellWeights<W>,
    /// bf16 weights of the first layer on an AVX512-BF16 CPU: `w_ih` in row pairs for
    /// the `vdpbf16ps` product, built on the first call that feeds bf16 inputs (`None`
    /// if that product would not be exact for these weights).
    w_ih_pairs: OnceLock<Option<PairPanels<4>>>,
    /// No weight of this set is infinite once stored (matrices rounded to bf16; see
    /// [`no_infinite_weight`]).
    no_infinite_weight: bool,
}

impl<W: Storage> PackedDirection<W> {
    /// Packs one validated weight set of `layer`, rounding weights to `W`; biases and
    /// peepholes stay `f32`.
    pub(crate) fn pack<S: Element>(
        cfg: &RnnConfig,
        layer: usize,
        w: &LayerWeights<'_, S>,
    ) -> Result<Self> {
        let (g, h) = (cfg.gates(), cfg.hidden_size);
        let all: Vec<usize> = (0..g).collect();
        let w_ih = Panels::pack(w.w_ih, h, cfg.layer_input_size(layer), &all);
        let (cell, folded) = CellWeights::pack(cfg, w)?;
        let bias = pack_vector(&folded, h, &all, w_ih.cols());
        Ok(PackedDirection {
            w_ih,
            bias,
            cell,
            w_ih_pairs: OnceLock::new(),
            no_infinite_weight: no_infinite_weight(w),
        })
    }

    /// The `vdpbf16ps` input projection for inputs `x` with the table `k`, and `w_ih`
    /// in row pairs for it: only for bf16 weights and bf16 inputs on an ISA that has
    /// it, and only if no weight of `w_ih` is subnormal or infinite (see
    /// [`Panels::dot_products_exact`]). The pairs are built once, on first use (exact:
    /// the bf16 values are only rearranged). Callers also require
    /// [`no_infinite_weight`](Self::no_infinite_weight) of every set the flushed
    /// values reach.
    pub(crate) fn dot_input<T: Element>(
        &self,
        k: &Kernels<W>,
        x: &[T],
    ) -> Option<(DotFn, &PairPanels<4>)> {
        T::as_bf16(x)?;
        let f = k.dot_bf16?;
        let pairs = self.w_ih_pairs.get_or_init(|| {
            if self.w_ih.dot_products_exact() {
                self.w_ih.to_k_pairs()
            } else {
                None
            }
        });
        Some((f, pairs.as_ref()?))
    }

    /// No weight of this set is infinite. `vdpbf16ps` flushes a subnormal product or
    /// partial sum to zero; that changes values by less than 2^-126 per step, but an
    /// infinite weight downstream (`W_hh`, `W_hr`, a peephole, a later layer) turns
    /// the flushed zero into NaN where the exact tiny value gives ±inf.
    pub(crate) fn no_infinite_weight(&self) -> bool {
        self.no_infinite_weight
    }

    /// The row pairs, if a call built them.
    pub(crate) fn dot_pairs(&self) -> Option<&PairPanels<4>> {
        self.w_ih_pairs.get().and_then(Option::as_ref)
    }
}

/// Whether no weight of `w` is infinite as packed: matrices as rounded to bf16 (the
/// only storage that reaches `vdpbf16ps`; a large finite `f32` can round to ±inf),
/// the `f32` parts (biases, peepholes, layer-norm scales) as given.
fn no_infinite_weight<S: Element>(w: &LayerWeights<'_, S>) -> bool {
    let matrix = |m: &[S]| {
        m.iter()
            .all(|v| !half::bf16::from_f32(v.to_f32()).is_infinite())
    };
    let vector = |m: &[S]| m.iter().all(|v| !v.to_f32().is_infinite());
    matrix(w.w_ih)
        && matrix(w.w_hh)
        && w.w_hr.is_none_or(matrix)
        && [w.b_ih, w.b_hh, w.peephole, w.layer_norm]
            .into_iter()
            .flatten()
            .all(vector)
}

/// A whole network (every layer and direction) packed for the kernels, weights stored
/// as `W` (`f32`, `half::f16` or `half::bf16`). Build once, share freely
/// (`Send + Sync`), run with [`PackedRnn::forward`].
///
/// ```
/// use rnn_kernels::{CellKind, LayerWeights, PackedRnn, RnnConfig, SeqShape, SequenceInput,
///     SequenceOutputMut, Workspace};
/// let (i, h, t, b) = (3, 4, 5, 2);
/// let cfg = RnnConfig::new(CellKind::GRU, i, h);
/// let w_ih = vec![0.1f32; 3 * h * i];
/// let w_hh = vec![0.05f32; 3 * h * h];
/// let rnn = PackedRnn::from_pytorch(&cfg, &[LayerWeights::new(&w_ih, &w_hh)])?;
/// let x = vec![1.0f32; t * b * i];
/// let (mut y, mut h_n) = (vec![0.0; t * b * h], vec![0.0; b * h]);
/// let mut ws = Workspace::new();
/// rnn.forward(&mut ws, SeqShape::new(t, b), SequenceInput::new(&x),
///     SequenceOutputMut { y: &mut y, h_n: Some(&mut h_n), c_n: None })?;
/// assert!(y.iter().all(|v| v.is_finite()));
///
/// // The same network with bf16 weights, fed f16 inputs and writing f16 outputs.
/// use half::{bf16, f16};
/// let half_rnn = PackedRnn::<bf16>::pack(&cfg, &[LayerWeights::new(&w_ih, &w_hh)])?;
/// let x16 = vec![f16::ONE; t * b * i];
/// let mut y16 = vec![f16::ZERO; t * b * h];
/// half_rnn.forward(&mut ws, SeqShape::new(t, b), SequenceInput::new(&x16),
///     SequenceOutputMut { y: &mut y16, h_n: None, c_n: None })?;
/// # Ok::<(), rnn_kernels::Error>(())
/// ```
#[derive(Clone)]
pub struct PackedRnn<W: WeightType = f32> {
    pub(crate) cfg: RnnConfig,
    pub(crate) sets: Vec<PackedDirection<W>>,
    pub(crate) isa: Option<Isa>,
    /// How int8 products quantize their left operands (unused for float weights).
    pub(crate) act_quant: ActivationQuant,
}

impl PackedRnn<f32> {
    /// Validates and packs `f32` weights given in PyTorch layout, one set per layer and
    /// direction (index `layer * D + direction`). Same as `PackedRnn::<f32>::pack`.
    pub fn from_pytorch(cfg: &RnnConfig, weights: &[LayerWeights<'_, f32>]) -> Result<Self> {
        Self::pack(cfg, weights)
    }

    /// Validates and packs `f32` ONNX operator weights (`W`, `R`, `B`, `P`); see
    /// [`import_onnx`](rnn_reference::import_onnx) for the gate permutation.
    pub fn from_onnx(cfg: &RnnConfig, onnx: OnnxWeights<'_, f32>) -> Result<Self> {
        Self::pack_onnx(cfg, onnx)
    }
}

impl<W: WeightType> PackedRnn<W> {
    /// Validates and packs weights of any element type `S` (PyTorch layout, one set per
    /// layer and direction), storing them as `W`: values are rounded to nearest, ties to
    /// even, once, here (exact when `S == W`). Biases and peepholes are kept in `f32`.
    ///
    /// For `W = i8` every weight matrix is quantized symmetrically per output unit
    /// (per channel): `scale = max |w| / 127` over the unit's row, `code =
    /// round_half_even(w / scale)` (`rnn_reference::quant::quantize_matrix`, the same
    /// formula); activations are quantized at run time ([`ActivationQuant`], default
    /// [`PerRow`](ActivationQuant::PerRow)).
    pub fn pack<S: Element>(cfg: &RnnConfig, weights: &[LayerWeights<'_, S>]) -> Result<Self> {
        check_weights(cfg, weights)?;
        if W::QUANTIZED {
            check_int8_widths(cfg)?;
        }
        let d = cfg.num_directions();
        let sets = weights
            .iter()
            .enumerate()
            .map(|(k, w)| PackedDirection::pack(cfg, k / d, w))
            .collect::<Result<_>>()?;
        Ok(PackedRnn {
            cfg: *cfg,
            sets,
            isa: None,
            act_quant: ActivationQuant::default(),
        })
    }

    /// Like [`pack`](Self::pack) for ONNX operator weights.
    pub fn pack_onnx<S: Element>(cfg: &RnnConfig, onnx: OnnxWeights<'_, S>) -> Result<Self> {
        let owned = import_onnx(cfg, onnx)?;
        Self::pack(cfg, &views(&owned))
    }

    /// Forces an instruction set for every call on this object (an error if the CPU
    /// lacks it). `None` restores the process default ([`Isa::default_for_process`]).
    pub fn with_isa(mut self, isa: Option<Isa>) -> Result<Self> {
        Isa::resolve(isa)?;
        self.isa = isa;
        Ok(self)
    }

    /// The configuration the weights were packed for.
    pub fn config(&self) -> &RnnConfig {
        &self.cfg
    }

    /// The instruction set calls will use.
    pub fn isa(&self) -> Result<Isa> {
        Isa::resolve(self.isa)
    }
}

/// Int8 products sum at most [`MAX_K`] products per output (exact `i32` sums).
pub(crate) fn check_int8_widths(cfg: &RnnConfig) -> Result<()> {
    let widest = (0..cfg.num_layers)
        .map(|l| cfg.layer_input_size(l))
        .chain([cfg.hidden_size, cfg.output_size()])
        .max()
        .unwrap_or(0);
    if widest > MAX_K {
        return Err(Error::Invalid {
            arg: "cfg".into(),
            expected: format!(
                "input and hidden widths of at most {MAX_K} for int8 weights (i32 sums)"
            ),
            actual: widest.to_string(),
        });
    }
    Ok(())
}

/// One quantized matrix as [`Coded`] values (code, zero point and scale of each).
pub(crate) fn coded(m: &QuantizedMatrix<'_>, k: usize) -> Vec<Coded> {
    m.codes
        .iter()
        .enumerate()
        .map(|(e, &c)| {
            let (s, z) = m.row_params(e / k.max(1));
            Coded::weight(c, z, s)
        })
        .collect()
}

/// Float vectors as [`Coded`] values without codes.
pub(crate) fn plain(v: &[f32]) -> Vec<Coded> {
    v.iter().map(|&x| Coded::from_f32(x)).collect()
}

/// One validated quantized weight set of `layer` as [`Coded`] values, for the packing.
pub(crate) fn coded_set(
    cfg: &RnnConfig,
    layer: usize,
    w: &QuantizedLayerWeights<'_>,
) -> OwnedLayerWeights<Coded> {
    let (h, ho) = (cfg.hidden_size, cfg.output_size());
    OwnedLayerWeights {
        w_ih: coded(&w.w_ih, cfg.layer_input_size(layer)),
        w_hh: coded(&w.w_hh, ho),
        b_ih: w.b_ih.map(plain),
        b_hh: w.b_hh.map(plain),
        w_hr: w.w_hr.as_ref().map(|m| coded(m, h)),
        peephole: w.peephole.map(plain),
        layer_norm: w.layer_norm.map(plain),
    }
}

impl PackedRnn<i8> {
    /// Packs int8 weights as given (PyTorch layout, one set per layer and direction):
    /// codes kept exactly, with their per-tensor or per-unit scales and zero points
    /// (for example `torch.ao.nn.quantized.dynamic.LSTM`'s packed weights, or
    /// [`quantize_weights`](rnn_reference::quant::quantize_weights)' output). Biases
    /// and peepholes are `f32`.
    pub fn from_quantized(cfg: &RnnConfig, weights: &[QuantizedLayerWeights<'_>]) -> Result<Self> {
        check_quantized_weights(cfg, weights)?;
        let d = cfg.num_directions();
        let owned: Vec<OwnedLayerWeights<Coded>> = weights
            .iter()
            .enumerate()
            .map(|(n, w)| coded_set(cfg, n / d, w))
            .collect();
        Self::pack(cfg, &views(&owned))
    }

    /// Packs the weights of ONNX Runtime's `com.microsoft.DynamicQuantizeLSTM` (`W`,
    /// `R` int8 or uint8 `[D, I, 4H]` / `[D, H, 4H]`, their scales and zero points,
    /// `B`, `P`; see
    /// [`import_dynamic_quantize_lstm`](rnn_reference::quant::import_dynamic_quantize_lstm))
    /// and selects ONNX Runtime's activation scheme
    /// ([`ActivationQuant::OnnxRuntime`]), so [`forward`](Self::forward) computes
    /// what the operator computes.
    pub fn from_dynamic_quantize_lstm(
        cfg: &RnnConfig,
        weights: DynamicQuantizeLstmWeights<'_>,
    ) -> Result<Self> {
        let sets = import_dynamic_quantize_lstm(cfg, weights)?;
        Ok(Self::from_quantized(cfg, &quantized_views(&sets))?
            .with_activation_quant(ActivationQuant::OnnxRuntime))
    }

    /// Chooses how activations are quantized at run time (see [`ActivationQuant`]).
    pub fn with_activation_quant(mut self, scheme: ActivationQuant) -> Self {
        self.act_quant = scheme;
        self
    }

    /// The activation scheme calls use.
    pub fn activation_quant(&self) -> ActivationQuant {
        self.act_quant
    }
}
