//! Where the backward's one-sided derivatives are fragile (test support): the distance
//! of every gate argument to a kink (`±clip`, relu's 0, ONNX's
//! [`Activation::kinks`](crate::Activation::kinks), an LSTM's output function at `c'`).
//! Near one, a finite-difference estimate straddles the kink, and an implementation's
//! argument, off by its rounding error, may fall on the other side.
//!
//! The argument is the one the activation receives: the (clipped) pre-activation, or,
//! for the layer-norm LSTM, the normalised and scaled `u = γ n + b` (its
//! pre-normalisation sums `z` are not arguments of any kinked function).

use crate::cell_kind::{CellKind, LstmBlocks};
use crate::layer_norm::{normalize, scaled};
use crate::real::Real;
use crate::spec::{RnnConfig, SeqShape};
use crate::weights::LayerWeights;
use crate::SequenceInput;

use super::tape::record;

/// The smallest distance of any gate argument to a kink in the forward pass of these
/// arguments (`inf` if there is none). Every function of the network is checked
/// against every argument, which can only make the margin smaller.
pub(crate) fn kink_margin<T: Real>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, T>],
    shape: SeqShape,
    input: &SequenceInput<'_, T>,
) -> f64 {
    let mut m = f64::INFINITY;
    visit_kink_distances(cfg, weights, shape, input, |d, _| m = m.min(d));
    m
}

/// The smallest ratio of an argument's distance to its kink over the bound on its
/// error that `T` tracks ([`Real::error_bound`]; `inf` where `T` tracks none or the
/// argument is exact and off the kink, 0 on it). An implementation's argument lies
/// on the reference's side of every kink when the ratio exceeds 1.
pub(crate) fn kink_clearance<T: Real>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, T>],
    shape: SeqShape,
    input: &SequenceInput<'_, T>,
) -> f64 {
    let mut m = f64::INFINITY;
    visit_kink_distances(cfg, weights, shape, input, |d, e| {
        let ratio = match (d > 0.0, e > 0.0) {
            (false, _) => 0.0,
            (true, false) => f64::INFINITY,
            (true, true) => d / e,
        };
        m = m.min(ratio);
    });
    m
}

/// Calls `visit(distance, error)` for every gate argument of the forward pass: its
/// distance to the nearest kink and the bound on its error (0 if `T` tracks none).
fn visit_kink_distances<T: Real>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, T>],
    shape: SeqShape,
    input: &SequenceInput<'_, T>,
    mut visit: impl FnMut(f64, f64),
) {
    let clip = cfg.clip.map(f64::from);
    let used = |d: usize| cfg.gate_activations(d).used(cfg.cell);
    let mut kinks: Vec<f64> = (0..cfg.num_directions())
        .flat_map(|d| used(d).flat_map(|a| a.kinks()))
        .collect();
    kinks.sort_by(f64::total_cmp);
    kinks.dedup();
    let near = |v: f64| {
        kinks
            .iter()
            .fold(f64::INFINITY, |m, k| m.min((v - k).abs()))
    };
    let error = |v: T| v.error_bound().unwrap_or(0.0);
    let nd = cfg.num_directions();
    let hid = cfg.hidden_size;
    for (layer, tape) in record(cfg, weights, shape, input).into_iter().enumerate() {
        for (d, steps) in tape.dirs.iter().enumerate() {
            let w = &weights[layer * nd + d];
            for s in steps {
                match cfg.cell {
                    CellKind::Lstm(v) if v.layer_norm => {
                        let gamma = w.layer_norm.expect("checked by check_weights");
                        for k in 0..=LstmBlocks::of(&v).o {
                            let rows = k * hid..(k + 1) * hid;
                            let nrm = normalize(&s.pre[rows.clone()]);
                            for (j, r) in rows.enumerate() {
                                let (bi, bh) = (w.b_ih.map(|b| b[r]), w.b_hh.map(|b| b[r]));
                                let u = scaled(nrm.n[j], gamma[r], bi, bh);
                                visit(near(u.to_f64()), error(u));
                            }
                        }
                    }
                    _ => {
                        for &p in &s.pre {
                            let (v, e) = (p.to_f64(), error(p));
                            if let Some(c) = clip {
                                visit((v.abs() - c).abs(), e);
                            }
                            visit(near(clip.map_or(v, |c| v.clamp(-c, c))), e);
                        }
                    }
                }
                if cfg.cell.has_cell_state() {
                    // An LSTM's output function acts on c'.
                    for &c in &s.extra {
                        visit(near(c.to_f64()), error(c));
                    }
                }
            }
        }
    }
}
