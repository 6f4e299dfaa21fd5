//! Weights packed once into the kernels' layout: [`PackedRnn`] for whole sequences and
//! [`PackedCell`](crate::PackedCell) for single steps share [`PackedDirection`].

use std::any::{Any, TypeId};
use std::sync::OnceLock;

use rnn_reference::{
    check_weights, import_onnx, views, CellKind, LayerWeights, OnnxWeights, RnnConfig,
};

use crate::aligned::AlignedVec;
use crate::arch::{dot_bf16_kernel, DotGemmFn};
use crate::element::{Element, WeightLoad};
use crate::isa::Isa;
use crate::pack::{padded, PairPanels, Panels};
use crate::Result;

/// Panels of four 16-unit vectors: the plain-product width of every ISA.
pub(crate) const NP_PLAIN: usize = 4;

/// One layer and direction, packed, weights stored as `W`.
#[derive(Clone)]
pub(crate) struct PackedDirection<W: WeightLoad = f32> {
    /// `W_ih`, all gates gate-interleaved per tile; `k = I_l`.
    pub(crate) w_ih: Panels<W>,
    /// Biases folded into the input projection, aligned with `w_ih`'s columns.
    pub(crate) bias: AlignedVec,
    /// `W_hh`: all gates (RNN, LSTM, GRU linear-before-reset) or r and z (GRU
    /// original form); `k = H_out`.
    pub(crate) w_hh: Panels<W>,
    /// GRU original form: the n gate of `W_hh`, `k = H`.
    pub(crate) w_hn: Option<Panels<W>>,
    /// GRU linear-before-reset: `b_hn`, one padded row.
    pub(crate) b_hn: Option<AlignedVec>,
    /// LSTM projection `W_hr`, `k = H`.
    pub(crate) w_hr: Option<Panels<W>>,
    /// LSTM peephole, `[3][padded(H)]` in order i, f, o.
    pub(crate) peephole: Option<AlignedVec>,
    /// bf16 weights of the first layer on an AVX512-BF16 CPU: `w_ih` in row pairs for
    /// the `vdpbf16ps` product, built on the first call that feeds bf16 inputs (`None`
    /// if that product would not be exact for these weights).
    pub(crate) w_ih_pairs: OnceLock<Option<PairPanels>>,
}

impl<W: WeightLoad> PackedDirection<W> {
    /// Packs one validated weight set of `layer`, rounding weights to `W`; biases and
    /// peepholes stay `f32`.
    pub(crate) fn pack<S: Element>(cfg: &RnnConfig, layer: usize, w: &LayerWeights<'_, S>) -> Self {
        let (g, h, ho) = (cfg.gates(), cfg.hidden_size, cfg.output_size());
        let all: Vec<usize> = (0..g).collect();
        let w_ih = Panels::pack(w.w_ih, h, cfg.layer_input_size(layer), &all, NP_PLAIN);
        let lbr = matches!(
            cfg.cell,
            CellKind::Gru {
                linear_before_reset: true
            }
        );
        // Fold b_ih + b_hh, except b_hn of the linear-before-reset GRU, which must be
        // multiplied by r and stays apart.
        let mut folded = vec![0.0f32; g * h];
        for (k, v) in folded.iter_mut().enumerate() {
            let bi = w.b_ih.map_or(0.0, |b| b[k].to_f32());
            let bh = w.b_hh.map_or(0.0, |b| b[k].to_f32());
            *v = if lbr && k >= 2 * h { bi } else { bi + bh };
        }
        let bias = Panels::<W>::pack_vector(&folded, h, &all, w_ih.cols());
        let hs = padded(h);
        let row = |v: &[S]| {
            let mut out = AlignedVec::zeros(hs);
            for (o, x) in out.as_mut_slice().iter_mut().zip(v) {
                *o = x.to_f32();
            }
            out
        };
        let (w_hh, w_hn, b_hn) = match cfg.cell {
            CellKind::Gru {
                linear_before_reset: false,
            } => (
                Panels::pack(w.w_hh, h, ho, &[0, 1], 2),
                Some(Panels::pack(w.w_hh, h, ho, &[2], NP_PLAIN)),
                None,
            ),
            CellKind::Gru {
                linear_before_reset: true,
            } => {
                let zeros = vec![S::default(); h];
                let b_hn = w.b_hh.map_or(&zeros[..], |b| &b[2 * h..]);
                // Must match the table's `gru_lbr` panel width (two tiles for paired
                // storage).
                let np = if W::PAIRED { 6 } else { 3 };
                (Panels::pack(w.w_hh, h, ho, &all, np), None, Some(row(b_hn)))
            }
            CellKind::Lstm { .. } => (Panels::pack(w.w_hh, h, ho, &all, 4), None, None),
            CellKind::Rnn { .. } => (Panels::pack(w.w_hh, h, ho, &all, NP_PLAIN), None, None),
        };
        let w_hr = w.w_hr.map(|p| Panels::pack(p, ho, h, &[0], NP_PLAIN));
        let peephole = w.peephole.map(|p| {
            let mut out = AlignedVec::zeros(3 * hs);
            for k in 0..3 {
                for (o, x) in out.as_mut_slice()[k * hs..k * hs + h]
                    .iter_mut()
                    .zip(&p[k * h..(k + 1) * h])
                {
                    *o = x.to_f32();
                }
            }
            out
        });
        PackedDirection {
            w_ih,
            bias,
            w_hh,
            w_hn,
            b_hn,
            w_hr,
            peephole,
            w_ih_pairs: OnceLock::new(),
        }
    }

    /// The `vdpbf16ps` input projection for inputs of type `T` on `isa`, and `w_ih` in
    /// row pairs for it: only for bf16 weights and bf16 inputs on an ISA that has it,
    /// and only if no weight is subnormal or infinite (see
    /// [`Panels::dot_products_exact`]). The pairs are built once, on first use (exact:
    /// the bf16 values are only rearranged).
    pub(crate) fn dot_input<T: Element>(&self, isa: Isa) -> Option<(DotGemmFn, &PairPanels)> {
        if TypeId::of::<T>() != TypeId::of::<half::bf16>() {
            return None;
        }
        let f = dot_bf16_kernel(isa)?;
        let bf = (&self.w_ih as &dyn Any).downcast_ref::<Panels<half::bf16>>()?;
        let pairs = self
            .w_ih_pairs
            .get_or_init(|| bf.dot_products_exact().then(|| bf.to_k_pairs()));
        Some((f, pairs.as_ref()?))
    }

    /// Width of one row of the input projection buffer: `G * padded(H)`.
    pub(crate) fn pre_stride(cfg: &RnnConfig) -> usize {
        cfg.gates() * padded(cfg.hidden_size)
    }
}

/// A whole network (every layer and direction) packed for the kernels, weights stored
/// as `W` (`f32`, `half::f16` or `half::bf16`). Build once, share freely
/// (`Send + Sync`), run with [`PackedRnn::forward`].
///
/// ```
/// use rnn_kernels::{CellKind, LayerWeights, PackedRnn, RnnConfig, SeqShape, SequenceInput,
///     SequenceOutputMut, Workspace};
/// let (i, h, t, b) = (3, 4, 5, 2);
/// let cfg = RnnConfig::new(CellKind::Gru { linear_before_reset: true }, i, h);
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
pub struct PackedRnn<W: Element = f32> {
    pub(crate) cfg: RnnConfig,
    pub(crate) sets: Vec<PackedDirection<W>>,
    pub(crate) isa: Option<Isa>,
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

impl<W: Element> PackedRnn<W> {
    /// Validates and packs weights of any element type `S` (PyTorch layout, one set per
    /// layer and direction), storing them as `W`: values are rounded to nearest, ties to
    /// even, once, here (exact when `S == W`). Biases and peepholes are kept in `f32`.
    pub fn pack<S: Element>(cfg: &RnnConfig, weights: &[LayerWeights<'_, S>]) -> Result<Self> {
        check_weights(cfg, weights)?;
        let d = cfg.num_directions();
        let sets = weights
            .iter()
            .enumerate()
            .map(|(k, w)| PackedDirection::pack(cfg, k / d, w))
            .collect();
        Ok(PackedRnn {
            cfg: *cfg,
            sets,
            isa: None,
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
