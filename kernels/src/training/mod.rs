//! Training: a forward pass that keeps what the backward needs, and backpropagation
//! through time, for every variant the forward runs.
//!
//! [`PackedRnn::forward_train`] computes exactly what [`PackedRnn::forward`] does and
//! keeps, in a [`TrainingWorkspace`], each layer's input, every state and (with
//! [`Activations::Keep`]) every gate's pre-activation. [`PackedRnn::backward`] then
//! takes the gradients of a loss with respect to the outputs ([`OutputGrads`]:
//! `∂L/∂y`, `∂L/∂h_n`, `∂L/∂c_n`) and writes those with respect to `x`, `h0`, `c0` and
//! every parameter ([`GradientsMut`]), in the layout and gate order of the weights
//! (PyTorch; [`PackedRnn::backward_onnx`] for ONNX's `W`, `R`, `B`, `P`). Conventions
//! are PyTorch autograd's and the reference's ([`rnn_reference::backward`]).
//!
//! The work is shaped like the forward's: per step, one product of the later step's
//! gate gradients with `W_hhᵀ` (packed once per call) whose epilogue finishes the
//! cell's elementwise backward in registers; after the time loop, `∂W_ih`, `∂W_hh`
//! (with their biases) and `∂x` as products over all `T·B` rows. Gradients are `f32`
//! whatever the weights' type.

mod backward;
mod forward;
mod kernels;
mod onnx;
mod profile;
mod weight_grads;
mod workspace;

pub use onnx::OnnxGradsMut;
pub use profile::BackwardProfile;
pub use rnn_reference::OutputGrads;
pub use workspace::{Activations, TrainingWorkspace};

use rnn_reference::{check_len, Error, OwnedLayerWeights, RnnConfig, SeqShape, SequenceInput};

use crate::element::Element;
use crate::packed::PackedRnn;
use crate::sequence::SequenceOutputMut;
use crate::Result;

/// Where [`PackedRnn::backward`] writes the gradients of one layer and direction
/// (PyTorch layout and gate order, like [`LayerWeights`](crate::LayerWeights)). Each
/// array is overwritten with the gradient summed over all steps and rows. The bias
/// arrays are optional (the gradient of either bias is the same sum of gate
/// gradients, except for the GRU's `b_hn` in the linear-before-reset form);
/// `dw_hr` is required for a projected LSTM and `dpeephole` for a peephole LSTM.
#[derive(Debug)]
pub struct LayerGradsMut<'a> {
    /// `[G*H, I_l]`.
    pub dw_ih: &'a mut [f32],
    /// `[G*H, H_out]`.
    pub dw_hh: &'a mut [f32],
    /// `[G*H]`.
    pub db_ih: Option<&'a mut [f32]>,
    /// `[G*H]`.
    pub db_hh: Option<&'a mut [f32]>,
    /// `[H_out, H]` (projected LSTM).
    pub dw_hr: Option<&'a mut [f32]>,
    /// `[3*H]` in order i, f, o (peephole LSTM; CIFG `[2*H]`, f, o), or `[2*H]` in
    /// order r, z (peephole GRU).
    pub dpeephole: Option<&'a mut [f32]>,
    /// `[G*H]`, the scales `γ` in the weights' gate order (layer-norm LSTM).
    pub dlayer_norm: Option<&'a mut [f32]>,
}

impl<'a> LayerGradsMut<'a> {
    /// Views an owned set of the same shape as the weights (e.g. a gradient buffer
    /// made by mapping the weights to zeros).
    pub fn from_owned(g: &'a mut OwnedLayerWeights<f32>) -> Self {
        LayerGradsMut {
            dw_ih: &mut g.w_ih,
            dw_hh: &mut g.w_hh,
            db_ih: g.b_ih.as_deref_mut(),
            db_hh: g.b_hh.as_deref_mut(),
            dw_hr: g.w_hr.as_deref_mut(),
            dpeephole: g.peephole.as_deref_mut(),
            dlayer_norm: g.layer_norm.as_deref_mut(),
        }
    }
}

/// Where [`PackedRnn::backward`] writes: `∂L/∂x` (shaped like `x`), `∂L/∂h0`
/// `[L*D, B, H_out]`, `∂L/∂c0` `[L*D, B, H]` (LSTM), the AUGRU's `∂L/∂a` (shaped like
/// the attention input), each optional, and one [`LayerGradsMut`] per layer and
/// direction (index `layer * D + direction`).
#[derive(Debug)]
pub struct GradientsMut<'a, 'b> {
    /// `∂L/∂x` (`None`: not computed, which saves the first layer's `∂x` product).
    pub dx: Option<&'a mut [f32]>,
    /// `∂L/∂h0`.
    pub dh0: Option<&'a mut [f32]>,
    /// `∂L/∂c0` (LSTM only).
    pub dc0: Option<&'a mut [f32]>,
    /// `∂L/∂a` of the AUGRU's attention `[T, B]` (or `[B, T]`, like `x`), summed over
    /// the layers and directions that read it; 0 at steps past a row's length (AUGRU
    /// only).
    pub dattention: Option<&'a mut [f32]>,
    /// Parameter gradients, `L * D` sets.
    pub weights: &'a mut [LayerGradsMut<'b>],
}

impl<W: Element> PackedRnn<W> {
    /// The forward pass of [`forward`](PackedRnn::forward) (same arguments, same
    /// results bit for bit, except that the first layer never takes the `vdpbf16ps`
    /// path), keeping what [`backward`](PackedRnn::backward) needs in `tws` (see
    /// [`Activations`] for what and how much). Allocates nothing once `tws` has grown
    /// to this shape.
    ///
    /// ```
    /// use rnn_kernels::{CellKind, GradientsMut, LayerGradsMut, LayerWeights, OutputGrads,
    ///     PackedRnn, RnnConfig, SeqShape, SequenceInput, SequenceOutputMut,
    ///     TrainingWorkspace};
    /// let (i, h, t, b) = (3, 4, 5, 2);
    /// let cfg = RnnConfig::new(CellKind::LSTM, i, h);
    /// let (w_ih, w_hh) = (vec![0.1f32; 4 * h * i], vec![0.05f32; 4 * h * h]);
    /// let rnn = PackedRnn::from_pytorch(&cfg, &[LayerWeights::new(&w_ih, &w_hh)])?;
    /// let x = vec![1.0f32; t * b * i];
    /// let mut y = vec![0.0; t * b * h];
    /// let mut tws = TrainingWorkspace::new();
    /// rnn.forward_train(&mut tws, SeqShape::new(t, b), SequenceInput::new(&x),
    ///     SequenceOutputMut { y: &mut y, h_n: None, c_n: None })?;
    /// // L = sum(y): dL/dy = 1.
    /// let dy = vec![1.0f32; y.len()];
    /// let (mut dx, mut dw_ih, mut dw_hh) = (vec![0.0; x.len()], vec![0.0; w_ih.len()],
    ///     vec![0.0; w_hh.len()]);
    /// let mut sets = [LayerGradsMut { dw_ih: &mut dw_ih, dw_hh: &mut dw_hh, db_ih: None,
    ///     db_hh: None, dw_hr: None, dpeephole: None, dlayer_norm: None }];
    /// rnn.backward(&mut tws, OutputGrads::new(&dy),
    ///     GradientsMut { dx: Some(&mut dx), dh0: None, dc0: None, dattention: None,
    ///         weights: &mut sets })?;
    /// assert!(dw_ih.iter().all(|g| *g > 0.0));
    /// # Ok::<(), rnn_kernels::Error>(())
    /// ```
    pub fn forward_train<T: Element>(
        &self,
        tws: &mut TrainingWorkspace,
        shape: SeqShape,
        input: SequenceInput<'_, T>,
        out: SequenceOutputMut<'_, T>,
    ) -> Result<()> {
        forward::run(self, tws, shape, input, out)
    }

    /// Backpropagation through time for the last
    /// [`forward_train`](PackedRnn::forward_train) in `tws` (of this network): given
    /// `∂L/∂y`, `∂L/∂h_n` and `∂L/∂c_n` (in `T`, like `y`), writes every gradient
    /// `out` asks for, in `f32`. Steps past a row's length contribute nothing (their
    /// `dy` is ignored, their `dx` is 0). Validates every length first; allocates
    /// nothing once `tws` has grown to this shape. Results are bit-identical for any
    /// thread count.
    pub fn backward<T: Element>(
        &self,
        tws: &mut TrainingWorkspace,
        grads: OutputGrads<'_, T>,
        mut out: GradientsMut<'_, '_>,
    ) -> Result<()> {
        let run = start_backward(tws, &self.cfg)?;
        check_grads(&self.cfg, run.shape, &grads, &mut out)?;
        backward::run(self, tws, grads, out)
    }
}

/// The start of every backward entry point: clears the last call's profile (a failed
/// call leaves none behind) and returns the run the workspace holds, if it belongs to
/// `cfg`.
fn start_backward(tws: &mut TrainingWorkspace, cfg: &RnnConfig) -> Result<workspace::Run> {
    tws.profile = BackwardProfile::default();
    match tws.run {
        Some(r) if r.cfg == *cfg => Ok(r),
        Some(r) => Err(Error::Invalid {
            arg: "tws".into(),
            expected: format!(
                "the training workspace of a forward_train of this network ({cfg:?})"
            ),
            actual: format!("one of {:?}", r.cfg),
        }),
        None => Err(Error::Invalid {
            arg: "tws".into(),
            expected: "a training workspace filled by forward_train".into(),
            actual: "no successful forward_train".into(),
        }),
    }
}

/// Checks the output gradients and the gradient buffers against the config and the
/// recorded shape.
fn check_grads<T>(
    cfg: &RnnConfig,
    shape: SeqShape,
    grads: &OutputGrads<'_, T>,
    out: &mut GradientsMut<'_, '_>,
) -> Result<()> {
    let dims = shape.dims(cfg)?;
    let lstm = cfg.cell.has_cell_state();
    check_len("dy", dims.y, grads.dy.len())?;
    let no_state = |arg: &str| Error::Invalid {
        arg: arg.into(),
        expected: format!("None (a {} has no cell state)", cfg.cell.name()),
        actual: "a slice".into(),
    };
    for (name, len, want) in [
        ("dh_n", grads.dh_n.map(<[T]>::len), Some(dims.h)),
        ("dc_n", grads.dc_n.map(<[T]>::len), lstm.then_some(dims.c)),
        ("dx", out.dx.as_deref().map(<[f32]>::len), Some(dims.x)),
        ("dh0", out.dh0.as_deref().map(<[f32]>::len), Some(dims.h)),
        (
            "dc0",
            out.dc0.as_deref().map(<[f32]>::len),
            lstm.then_some(dims.c),
        ),
    ] {
        match (len, want) {
            (Some(l), Some(w)) => check_len(name, w, l)?,
            (Some(_), None) => return Err(no_state(name)),
            _ => {}
        }
    }
    // Fits: `dx` has steps * batch * input_size elements.
    let rows = shape.steps * shape.batch;
    match (
        out.dattention.as_deref().map(<[f32]>::len),
        cfg.cell.has_attention(),
    ) {
        (Some(l), true) => check_len("dattention", rows, l)?,
        (Some(_), false) => {
            return Err(Error::Invalid {
                arg: "dattention".into(),
                expected: format!("None (a {} cell takes no attention input)", cfg.cell.name()),
                actual: "a slice".into(),
            })
        }
        _ => {}
    }
    if out.weights.len() != cfg.num_weight_sets() {
        return Err(Error::Length {
            arg: "weights (gradient sets, layer * directions)".into(),
            expected: cfg.num_weight_sets(),
            actual: out.weights.len(),
        });
    }
    for (k, g) in out.weights.iter().enumerate() {
        let lens = cfg.weight_lens(k / cfg.num_directions());
        // Names are only built for an error: checking allocates nothing.
        let name = |p: &str| format!("weights[{k}].{p}");
        let len = |p: &str, want: usize, got: usize| {
            if want == got {
                Ok(())
            } else {
                Err(Error::Length {
                    arg: name(p),
                    expected: want,
                    actual: got,
                })
            }
        };
        len("dw_ih", lens.w_ih, g.dw_ih.len())?;
        len("dw_hh", lens.w_hh, g.dw_hh.len())?;
        for (p, v) in [("db_ih", &g.db_ih), ("db_hh", &g.db_hh)] {
            if let Some(v) = v {
                len(p, lens.bias, v.len())?;
            }
        }
        for (p, v, want) in [
            ("dw_hr", &g.dw_hr, lens.w_hr),
            ("dpeephole", &g.dpeephole, lens.peephole),
            ("dlayer_norm", &g.dlayer_norm, lens.layer_norm),
        ] {
            match (v.as_deref().map(<[f32]>::len), want) {
                (Some(l), Some(w)) => len(p, w, l)?,
                (None, None) => {}
                (None, Some(w)) => {
                    return Err(Error::Invalid {
                        arg: name(p),
                        expected: format!("{w} elements (the cell has this parameter)"),
                        actual: "None".into(),
                    })
                }
                (Some(l), None) => {
                    return Err(Error::Invalid {
                        arg: name(p),
                        expected: "None (the cell has no such parameter)".into(),
                        actual: format!("{l} elements"),
                    })
                }
            }
        }
    }
    Ok(())
}
