//! Training steps for the benches: the kernels' `forward_train` then `backward` on a
//! benchmark [`Problem`] (loss `Σ y · dy` with a fixed `dy`), the FLOP count of a
//! training step, and the reference's gradients for the error check.

use rnn_kernels::{
    Activations, BackwardProfile, Element, GradientsMut, Isa, LayerGradsMut, OutputGrads,
    PackedRnn, SeqShape, SequenceOutputMut, TrainingWorkspace,
};
use rnn_reference::testkit::SplitMix64;

use crate::configs::{BenchConfig, Cell};
use crate::problems::{sequence_input, to_elem, Problem};

/// FLOPs of a training step (training forward + backward), products only: the forward's
/// `2·T·B·G·H·(I+H)` plus the backward's four products (`∂h` through `W_hhᵀ` per step
/// and `∂W_hh`, `2·T·B·G·H·H` each; `∂W_ih` and `∂x`, `2·T·B·G·H·I` each), twice the
/// forward's: `3 × 2·T·B·G·H·(I+H)` in all. Recomputing activations adds one forward.
pub fn train_flops(cell: Cell, cfg: &BenchConfig, mode: Activations) -> u64 {
    let f = crate::configs::flops(cell, cfg);
    match mode {
        Activations::Keep => 3 * f,
        Activations::Recompute => 4 * f,
    }
}

/// A fixed `∂L/∂y` for `p` (`[T, B, H]`, uniform in ±1 on a grid of 1/128: exact in
/// f16 and bf16, so a half run and the reference see the same `dy`).
pub fn upstream(p: &Problem) -> Vec<f32> {
    let mut rng = SplitMix64::new(0xD7 ^ p.shape.batch as u64);
    let mut dy = rng.vec(p.y_len(p.shape.steps), 1.0);
    for v in &mut dy {
        *v = (*v * 128.0).round() / 128.0;
    }
    dy
}

/// One problem's training step, weights stored as `T` and `x`, `y`, `dy` in `T`;
/// gradients `f32`.
pub struct Trainer<T: Element> {
    batch: usize,
    step_in: usize,
    step_out: usize,
    rnn: PackedRnn<T>,
    tws: TrainingWorkspace,
    x: Vec<T>,
    /// The AUGRU's attention (empty otherwise).
    att: Vec<T>,
    y: Vec<T>,
    dy: Vec<T>,
    /// `∂L/∂x` and the parameter gradients of the last step.
    pub dx: Vec<f32>,
    /// `∂W_ih`, `∂W_hh`, `∂b_ih`, `∂b_hh`, and the layer norm's `∂γ` (empty for
    /// other cells).
    pub grads: [Vec<f32>; 5],
}

impl<T: Element> Trainer<T> {
    /// Packs `p`'s weights as `T` for `isa`; `mode` chooses what the forward keeps.
    pub fn new(p: &Problem, isa: Isa, mode: Activations) -> Result<Self, String> {
        let tp = p.typed::<T>();
        let rnn = PackedRnn::<T>::pack(&p.cfg, &[tp.weights()])
            .and_then(|r| r.with_isa(Some(isa)))
            .map_err(|e| e.to_string())?;
        let (b, s) = (p.shape.batch, p.shape.steps);
        Ok(Trainer {
            batch: b,
            step_in: b * p.shape.input,
            step_out: b * p.shape.hidden,
            rnn,
            tws: TrainingWorkspace::with_activations(mode),
            x: tp.x,
            att: tp.att,
            y: vec![T::default(); s * b * p.shape.hidden],
            dy: to_elem(&upstream(p)),
            dx: vec![0.0; p.x.len()],
            grads: [
                vec![0.0; p.w_ih.len()],
                vec![0.0; p.w_hh.len()],
                vec![0.0; p.b_ih.len()],
                vec![0.0; p.b_hh.len()],
                vec![0.0; p.layer_norm.len()],
            ],
        })
    }

    /// A training step over the first `steps` steps from zero states.
    pub fn run(&mut self, steps: usize) -> Result<(), String> {
        let shape = SeqShape::new(steps, self.batch);
        let (n_in, n_out) = (steps * self.step_in, steps * self.step_out);
        self.rnn
            .forward_train(
                &mut self.tws,
                shape,
                sequence_input(&self.x[..n_in], &self.att, steps * self.batch),
                SequenceOutputMut {
                    y: &mut self.y[..n_out],
                    h_n: None,
                    c_n: None,
                },
            )
            .map_err(|e| e.to_string())?;
        let [w_ih, w_hh, b_ih, b_hh, ln] = &mut self.grads;
        let mut sets = [LayerGradsMut {
            dw_ih: w_ih,
            dw_hh: w_hh,
            db_ih: Some(b_ih),
            db_hh: Some(b_hh),
            dw_hr: None,
            dpeephole: None,
            dlayer_norm: (!ln.is_empty()).then_some(ln),
        }];
        self.rnn
            .backward(
                &mut self.tws,
                OutputGrads::new(&self.dy[..n_out]),
                GradientsMut {
                    dx: Some(&mut self.dx[..n_in]),
                    dh0: None,
                    dc0: None,
                    dattention: None,
                    weights: &mut sets,
                },
            )
            .map_err(|e| e.to_string())
    }
}

/// The f32 reference's `∂L/∂x` and `∂W_hh` for the first `k` steps of `p` (with the
/// upstream gradient of [`upstream`]), concatenated: what the report compares.
pub fn reference_grads(p: &Problem, k: usize) -> Result<Vec<f32>, String> {
    let dy = upstream(p);
    let g = rnn_reference::backward::<f32>(
        &p.cfg,
        &[p.weights()],
        SeqShape::new(k, p.shape.batch),
        p.input(k),
        rnn_reference::OutputGrads::new(&dy[..p.y_len(k)]),
    )
    .map_err(|e| format!("reference backward: {e}"))?;
    Ok([g.dx, g.weights[0].w_hh.clone()].concat())
}

impl<T: Element> Trainer<T> {
    /// The phases of the last step's backward.
    pub fn profile(&self) -> BackwardProfile {
        self.tws.backward_profile()
    }

    /// `∂L/∂x` of the first `k` steps and `∂W_hh`, as [`reference_grads`] has them.
    pub fn compared(&self, k: usize) -> Vec<f32> {
        [&self.dx[..k * self.step_in], &self.grads[1][..]].concat()
    }
}
