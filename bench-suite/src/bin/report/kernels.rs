//! The kernels under test, per dtype and pass, and the reference they are checked
//! against.

use rnn_bench_suite::{reference_grads, sequence_input, to_f32, Problem, Trainer};
use rnn_kernels::half::{bf16, f16};
use rnn_kernels::{
    ActivationQuant, Activations, BackwardProfile, Element, Isa, PackedRnn, SeqShape,
    SequenceInput, SequenceOutputMut, WeightType, Workspace,
};
use rnn_reference::quant::{forward_quantized, quantize_weights, quantized_views};

use crate::options::{Dtype, Pass};

/// The rnn-kernels forward pass or training step on one problem, in one dtype.
pub(crate) trait KernelRun {
    /// Runs the first `steps` steps of the problem's input from zero states.
    fn run(&mut self, steps: usize) -> Result<(), String>;
    /// What the last `run(steps)` is checked on, widened to f32: `y` `[steps, B, H]`
    /// for the forward; `∂x` of those steps then `∂W_hh` for a training step.
    fn output(&self, steps: usize) -> Vec<f32>;
    /// The phases of the last run's backward (training steps only).
    fn profile(&self) -> Option<BackwardProfile> {
        None
    }
}

/// Weights packed as `W`, input `x` held in `T` (converted once, here), `y` in `T`.
pub(crate) struct Kernels<W: WeightType, T: Element> {
    pub(crate) batch: usize,
    pub(crate) step_in: usize,
    pub(crate) step_out: usize,
    pub(crate) rnn: PackedRnn<W>,
    pub(crate) ws: Workspace,
    pub(crate) x: Vec<T>,
    /// The AUGRU's attention `[T, B]` in `T` (empty for other cells).
    pub(crate) att: Vec<T>,
    pub(crate) y: Vec<T>,
}

impl<W: WeightType, T: Element> Kernels<W, T> {
    fn with(
        p: &Problem,
        isa: Isa,
        rnn: rnn_kernels::Result<PackedRnn<W>>,
        x: Vec<T>,
        att: Vec<T>,
    ) -> Result<Self, String> {
        let rnn = rnn
            .and_then(|r| r.with_isa(Some(isa)))
            .map_err(|e| e.to_string())?;
        let (b, s) = (p.shape.batch, p.shape.steps);
        Ok(Kernels {
            batch: b,
            step_in: b * p.shape.input,
            step_out: b * p.shape.hidden,
            rnn,
            ws: Workspace::new(),
            x,
            att,
            y: vec![T::default(); s * b * p.shape.hidden],
        })
    }
}

impl<T: Element> Kernels<T, T> {
    pub(crate) fn new(p: &Problem, isa: Isa) -> Result<Self, String> {
        // A framework holding T tensors: weights, biases, x (and attention) all in T.
        let tp = p.typed::<T>();
        let rnn = PackedRnn::<T>::pack(&p.cfg, &[tp.weights()]);
        Self::with(p, isa, rnn, tp.x, tp.att)
    }
}

/// int8 weights (symmetric per-channel quantization of the f32 weights, done by the
/// packing), activations quantized per row at run time; `x` and `y` in `f32`.
fn int8(p: &Problem, isa: Isa, scheme: ActivationQuant) -> Result<Kernels<i8, f32>, String> {
    let x = p.x_prefix(p.shape.steps).to_vec();
    let rnn =
        PackedRnn::<i8>::pack(&p.cfg, &[p.weights()]).map(|r| r.with_activation_quant(scheme));
    Kernels::with(p, isa, rnn, x, p.att.clone())
}

impl<W: WeightType, T: Element> KernelRun for Kernels<W, T> {
    fn run(&mut self, steps: usize) -> Result<(), String> {
        self.rnn
            .forward(
                &mut self.ws,
                SeqShape::new(steps, self.batch),
                sequence_input(
                    &self.x[..steps * self.step_in],
                    &self.att,
                    steps * self.batch,
                ),
                SequenceOutputMut {
                    y: &mut self.y[..steps * self.step_out],
                    h_n: None,
                    c_n: None,
                },
            )
            .map_err(|e| e.to_string())
    }

    fn output(&self, steps: usize) -> Vec<f32> {
        to_f32(&self.y[..steps * self.step_out])
    }
}

/// A training step (`--pass train`), activations kept.
impl<T: Element> KernelRun for Trainer<T> {
    fn run(&mut self, steps: usize) -> Result<(), String> {
        Trainer::run(self, steps)
    }

    fn output(&self, steps: usize) -> Vec<f32> {
        self.compared(steps)
    }

    fn profile(&self) -> Option<BackwardProfile> {
        Some(Trainer::profile(self))
    }
}

pub(crate) fn build_kernels(
    dtype: Dtype,
    p: &Problem,
    isa: Isa,
    pass: Pass,
) -> Result<Box<dyn KernelRun>, String> {
    if pass == Pass::Train {
        let keep = Activations::Keep;
        return Ok(match dtype {
            Dtype::F32 => Box::new(Trainer::<f32>::new(p, isa, keep)?),
            Dtype::F16 => Box::new(Trainer::<f16>::new(p, isa, keep)?),
            Dtype::Bf16 => Box::new(Trainer::<bf16>::new(p, isa, keep)?),
            Dtype::Int8 | Dtype::Int8Reduced => {
                return Err("int8 weights have no training pass".into())
            }
        });
    }
    Ok(match dtype {
        Dtype::F32 => Box::new(Kernels::<f32, f32>::new(p, isa)?),
        Dtype::F16 => Box::new(Kernels::<f16, f16>::new(p, isa)?),
        Dtype::Bf16 => Box::new(Kernels::<bf16, bf16>::new(p, isa)?),
        Dtype::Int8 | Dtype::Int8Reduced => {
            let scheme = dtype.act_quant().expect("an int8 dtype");
            Box::new(int8(p, isa, scheme)?)
        }
    })
}

/// `y` of the f32 reference over the first `k` steps of `p`.
pub(crate) fn reference_y(p: &Problem, k: usize) -> Result<Vec<f32>, String> {
    rnn_reference::forward::<f32>(
        &p.cfg,
        &[p.weights()],
        SeqShape::new(k, p.shape.batch),
        p.input(k),
    )
    .map(|o| o.y)
    .map_err(|e| format!("reference: {e}"))
}

/// What the f32 reference gives for `pass` on the first `k` steps of `p`: `y`, or
/// the gradients [`KernelRun::output`] holds.
pub(crate) fn reference(pass: Pass, p: &Problem, k: usize) -> Result<Vec<f32>, String> {
    match pass {
        Pass::Forward => reference_y(p, k),
        Pass::Train => reference_grads(p, k),
    }
}

/// The oracle of a `dtype` run: the f32 reference on the weights, biases and inputs
/// (and, training, `∂L/∂y`) rounded to `dtype` (exactly the values the kernels see).
pub(crate) fn reference_on(
    dtype: Dtype,
    pass: Pass,
    p: &Problem,
    k: usize,
) -> Result<Vec<f32>, String> {
    match dtype {
        Dtype::F32 => reference(pass, p, k),
        Dtype::F16 => reference(pass, &p.rounded::<f16>(), k),
        Dtype::Bf16 => reference(pass, &p.rounded::<bf16>(), k),
        Dtype::Int8 | Dtype::Int8Reduced if pass == Pass::Forward => {
            int8_oracle_y(p, k, dtype.act_quant().expect("an int8 dtype"))
        }
        Dtype::Int8 | Dtype::Int8Reduced => Err("int8 weights have no training pass".into()),
    }
}

/// `y` of the naive int8 oracle (the same per-channel quantization of the weights,
/// activations by `scheme`) over the first `k` steps of `p`, rounded to f32.
fn int8_oracle_y(p: &Problem, k: usize, scheme: ActivationQuant) -> Result<Vec<f32>, String> {
    let q = quantize_weights(&p.cfg, &[p.weights()]).map_err(|e| format!("int8 oracle: {e}"))?;
    forward_quantized(
        &p.cfg,
        &quantized_views(&q),
        scheme,
        SeqShape::new(k, p.shape.batch),
        SequenceInput::new(p.x_prefix(k)),
        None,
    )
    .map(|o| o.y.iter().map(|&v| v as f32).collect())
    .map_err(|e| format!("int8 oracle: {e}"))
}
