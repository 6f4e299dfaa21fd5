//! Where a backward pass's time goes: the wall time of its phases, read with
//! [`TrainingWorkspace::backward_profile`](crate::TrainingWorkspace::backward_profile).
//!
//! The team's leader reads the clock at the barriers that end each phase (every
//! member has finished it there), so a phase's time is wall time whatever the thread
//! count; the other members never touch the clock. A few clock reads per layer and
//! direction: nothing next to the products they bracket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::parallel::Team;

/// The phases of the last [`PackedRnn::backward`](crate::PackedRnn::backward) (or
/// `backward_onnx`) run with a workspace, as wall time summed over layers and
/// directions (all zero after one that returned an error). For profiling: the
/// products' share of the step, and the weight gradients' rate
/// (`weight_product_flops` over `weight_products`).
///
/// ```
/// use rnn_kernels::{CellKind, GradientsMut, LayerGradsMut, LayerWeights, OutputGrads,
///     PackedRnn, RnnConfig, SeqShape, SequenceInput, SequenceOutputMut,
///     TrainingWorkspace};
/// let (i, h, t, b) = (16, 16, 8, 4);
/// let cfg = RnnConfig::new(CellKind::GRU, i, h);
/// let (w_ih, w_hh) = (vec![0.1f32; 3 * h * i], vec![0.1f32; 3 * h * h]);
/// let rnn = PackedRnn::from_pytorch(&cfg, &[LayerWeights::new(&w_ih, &w_hh)])?;
/// let (x, mut y) = (vec![0.5f32; t * b * i], vec![0.0; t * b * h]);
/// let mut tws = TrainingWorkspace::new();
/// rnn.forward_train(&mut tws, SeqShape::new(t, b), SequenceInput::new(&x),
///     SequenceOutputMut { y: &mut y, h_n: None, c_n: None })?;
/// let dy = vec![1.0f32; y.len()];
/// let (mut dw_ih, mut dw_hh) = (vec![0.0; w_ih.len()], vec![0.0; w_hh.len()]);
/// let mut sets = [LayerGradsMut { dw_ih: &mut dw_ih, dw_hh: &mut dw_hh, db_ih: None,
///     db_hh: None, dw_hr: None, dpeephole: None, dlayer_norm: None }];
/// rnn.backward(&mut tws, OutputGrads::new(&dy),
///     GradientsMut { dx: None, dh0: None, dc0: None, dattention: None,
///         weights: &mut sets })?;
/// let p = tws.backward_profile();
/// // `∂W_ih` and `∂W_hh`, each one product over the T·B rows: 2 · T·B · (I + H) · 3H.
/// assert_eq!(p.weight_product_flops, (2 * t * b * (i + h) * 3 * h) as u64);
/// assert!(p.time_loop + p.weight_products <= p.total);
/// # Ok::<(), rnn_kernels::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackwardProfile {
    /// The whole call.
    pub total: Duration,
    /// Each layer's transposes before its directions: `W_ih` for `∂x`.
    pub transposes: Duration,
    /// The time loops: each step's elementwise backward and `∂h` through `W_hhᵀ`
    /// (including packing `W_hhᵀ` once per direction), and `∂h_0`.
    pub time_loop: Duration,
    /// The weight-gradient products alone (`∂W_ih`, `∂W_hh`, `∂W_hr`), each one
    /// product over all `T·B` rows, written in the caller's layout.
    pub weight_products: Duration,
    /// Their operands' packing (the gradient side transposed, the activation side
    /// gathered into panels), the biases' sums, and, when a gradient's rows are not
    /// whole panels of 64, the copy from the padded output.
    pub weight_operands: Duration,
    /// The `∂x` products (the gradient into each layer's input).
    pub input_products: Duration,
    /// Floating-point operations of the weight-gradient products: two per
    /// multiply-add, the panels' padding not.
    pub weight_product_flops: u64,
}

/// A phase of [`BackwardProfile`] that the clock accumulates.
#[derive(Clone, Copy)]
pub(crate) enum Phase {
    Transposes,
    TimeLoop,
    WeightProducts,
    WeightOperands,
    InputProducts,
}

/// The phases' running sums, shared by the team (only the leader adds).
#[derive(Default)]
pub(crate) struct PhaseClock {
    nanos: [AtomicU64; 5],
    flops: AtomicU64,
}

/// The leader's time of the last phase boundary (`None` for the other members).
pub(crate) struct Lap(Option<Instant>);

impl PhaseClock {
    /// Starts timing on the leader.
    pub(crate) fn start(&self, team: &Team<'_>) -> Lap {
        Lap(team.is_leader().then(Instant::now))
    }

    /// Adds the time since `lap` to `phase` and restarts `lap` (leader only).
    pub(crate) fn lap(&self, lap: &mut Lap, phase: Phase) {
        if let Some(since) = lap.0 {
            let now = Instant::now();
            let ns = u64::try_from((now - since).as_nanos()).unwrap_or(u64::MAX);
            self.nanos[phase as usize].fetch_add(ns, Ordering::Relaxed);
            lap.0 = Some(now);
        }
    }

    /// Counts a weight-gradient product's FLOPs (leader only).
    pub(crate) fn count(&self, team: &Team<'_>, flops: u64) {
        if team.is_leader() {
            self.flops.fetch_add(flops, Ordering::Relaxed);
        }
    }

    /// The sums, with the whole call's time.
    pub(crate) fn profile(&self, total: Duration) -> BackwardProfile {
        let at = |p: Phase| Duration::from_nanos(self.nanos[p as usize].load(Ordering::Relaxed));
        BackwardProfile {
            total,
            transposes: at(Phase::Transposes),
            time_loop: at(Phase::TimeLoop),
            weight_products: at(Phase::WeightProducts),
            weight_operands: at(Phase::WeightOperands),
            input_products: at(Phase::InputProducts),
            weight_product_flops: self.flops.load(Ordering::Relaxed),
        }
    }
}
