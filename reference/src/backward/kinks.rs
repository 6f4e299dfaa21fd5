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

/// How close the forward pass of these arguments comes to a kink: `margin`, the
/// smallest distance of any gate argument to one (`inf` if there is none), and
/// `clearance`, the smallest ratio of an argument's distance to its kink over the
/// bound on its error that `T` tracks ([`Real::error_bound`]; `inf` where `T` tracks
/// none or the argument is exact and off the kink, 0 on it: an implementation's
/// argument lies on the reference's side of every kink when it exceeds 1). Every
/// function of the network is checked against every argument, which can only make
/// both smaller.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KinkMargins {
    pub(crate) margin: f64,
    pub(crate) clearance: f64,
}

/// The [`KinkMargins`] of the forward pass of these arguments.
pub(crate) fn kink_margins<T: Real>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, T>],
    shape: SeqShape,
    input: &SequenceInput<'_, T>,
) -> KinkMargins {
    let mut m = KinkMargins {
        margin: f64::INFINITY,
        clearance: f64::INFINITY,
    };
    // One gate argument: its distance `d` to the nearest kink and its error bound `e`.
    let mut visit = |d: f64, e: f64| {
        let ratio = match (d > 0.0, e > 0.0) {
            (false, _) => 0.0,
            (true, false) => f64::INFINITY,
            (true, true) => d / e,
        };
        m.margin = m.margin.min(d);
        m.clearance = m.clearance.min(ratio);
    };
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
    m
}
