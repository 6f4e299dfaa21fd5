//! The kernels under test, per dtype, and the reference they are checked against.

use rnn_bench_suite::{to_f32, Problem};
use rnn_kernels::half::{bf16, f16};
use rnn_kernels::{Element, Isa, PackedRnn, SeqShape, SequenceInput, SequenceOutputMut, Workspace};

use crate::options::Dtype;

/// The rnn-kernels forward pass on one problem, in one dtype.
pub(crate) trait KernelRun {
    /// Runs the first `steps` steps of the problem's input from zero states.
    fn run(&mut self, steps: usize) -> Result<(), String>;
    /// `y` of the last `run(steps)`, widened to f32 `[steps, B, H]` (error check).
    fn output(&self, steps: usize) -> Vec<f32>;
}

/// Weights packed as `T`, input `x` held in `T` (converted once, here), `y` in `T`.
pub(crate) struct Kernels<T: Element> {
    pub(crate) batch: usize,
    pub(crate) step_in: usize,
    pub(crate) step_out: usize,
    pub(crate) rnn: PackedRnn<T>,
    pub(crate) ws: Workspace,
    pub(crate) x: Vec<T>,
    pub(crate) y: Vec<T>,
}

impl<T: Element> Kernels<T> {
    pub(crate) fn new(p: &Problem, isa: Isa) -> Result<Self, String> {
        // A framework holding T tensors: weights, biases and x all in T.
        let tp = p.typed::<T>();
        let rnn = PackedRnn::<T>::pack(&p.cfg, &[tp.weights()])
            .and_then(|r| r.with_isa(Some(isa)))
            .map_err(|e| e.to_string())?;
        let (b, s) = (p.shape.batch, p.shape.steps);
        Ok(Kernels {
            batch: b,
            step_in: b * p.shape.input,
            step_out: b * p.shape.hidden,
            rnn,
            ws: Workspace::new(),
            x: tp.x,
            y: vec![T::default(); s * b * p.shape.hidden],
        })
    }
}

impl<T: Element> KernelRun for Kernels<T> {
    fn run(&mut self, steps: usize) -> Result<(), String> {
        self.rnn
            .forward(
                &mut self.ws,
                SeqShape::new(steps, self.batch),
                SequenceInput::new(&self.x[..steps * self.step_in]),
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

pub(crate) fn build_kernels(
    dtype: Dtype,
    p: &Problem,
    isa: Isa,
) -> Result<Box<dyn KernelRun>, String> {
    Ok(match dtype {
        Dtype::F32 => Box::new(Kernels::<f32>::new(p, isa)?),
        Dtype::F16 => Box::new(Kernels::<f16>::new(p, isa)?),
        Dtype::Bf16 => Box::new(Kernels::<bf16>::new(p, isa)?),
    })
}

/// `y` of the f32 reference over the first `k` steps of `p`.
pub(crate) fn reference_y(p: &Problem, k: usize) -> Result<Vec<f32>, String> {
    rnn_reference::forward::<f32>(
        &p.cfg,
        &[p.weights()],
        SeqShape::new(k, p.shape.batch),
        SequenceInput::new(p.x_prefix(k)),
    )
    .map(|o| o.y)
    .map_err(|e| format!("reference: {e}"))
}

/// The oracle of a `dtype` run: the f32 reference on the weights, biases and inputs
/// rounded to `dtype` (exactly the values the kernels see).
pub(crate) fn reference_on(dtype: Dtype, p: &Problem, k: usize) -> Result<Vec<f32>, String> {
    match dtype {
        Dtype::F32 => reference_y(p, k),
        Dtype::F16 => reference_y(&p.rounded::<f16>(), k),
        Dtype::Bf16 => reference_y(&p.rounded::<bf16>(), k),
    }
}
