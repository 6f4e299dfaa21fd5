//! TFLite's layer normalisation of one gate block of one row (the layer-norm LSTM):
//! its forward, `u = γ ⊙ (z − μ) / √(σ² + ε) + b`, and its backward.
//!
//! The operations follow TFLite's `MeanStddevNormalization` (two passes: the mean, then
//! the mean squared deviation; one reciprocal square root, then products), so that the
//! test kit's error bound, which follows these operations, models an implementation
//! that computes the same way.

use crate::activation::{Activation, GateActivations};
use crate::cell::dot;
use crate::cell_kind::{LstmBlocks, LstmVariant};
use crate::real::Real;
use crate::weights::LayerWeights;

/// TFLite's `kNormalizationConstant`, an `f32` `1e-8` (as its float kernels add it).
pub const LAYER_NORM_EPSILON: f32 = 1e-8;

/// One gate block's normalised values `n = (z − μ) · inv` and `inv = 1 / √(σ² + ε)`.
#[derive(Clone, Debug)]
pub(crate) struct Normalized<T> {
    pub(crate) n: Vec<T>,
    pub(crate) inv: T,
}

/// Normalises `z` (one gate block of one row): `μ = Σz / H`, `σ² = Σ(z − μ)² / H`
/// (sums in index order), `inv = 1 / √(σ² + ε)`, `n = (z − μ) · inv`. The sums `z`
/// are [`stored`](Real::stored) first, as an implementation stores the gate sums
/// before it normalises them.
pub(crate) fn normalize<T: Real>(z: &[T]) -> Normalized<T> {
    let z: Vec<T> = z.iter().map(|v| v.stored()).collect();
    let z = &z[..];
    let len = T::from_f64(z.len() as f64);
    let mut sum = T::ZERO;
    for &v in z {
        sum += v;
    }
    let mean = sum / len;
    let mut sq = T::ZERO;
    for &v in z {
        let d = v - mean;
        sq += d * d;
    }
    let var = sq / len;
    let inv = T::ONE / (var + T::from_f64(f64::from(LAYER_NORM_EPSILON))).sqrt();
    Normalized {
        n: z.iter().map(|&v| (v - mean) * inv).collect(),
        inv,
    }
}

/// The activation's argument of unit `j`: `γ_j n_j + b_ih[j] + b_hh[j]` (biases that
/// are absent add no term).
pub(crate) fn scaled<T: Real>(n: T, gamma: T, b_ih: Option<T>, b_hh: Option<T>) -> T {
    let u = gamma * n;
    let u = b_ih.map_or(u, |b| u + b);
    b_hh.map_or(u, |b| u + b)
}

/// The backward of [`normalize`] and [`scaled`] for one block: from `du = ∂L/∂u`
/// returns `∂L/∂z` and adds `∂L/∂γ = du ⊙ n` to `d_gamma`. With `dn = γ ⊙ du`:
/// `∂L/∂z_j = inv · (dn_j − mean(dn) − n_j · mean(dn ⊙ n))` (exact with `ε`, which only
/// enters through `inv`).
pub(crate) fn normalize_backward<T: Real>(
    nrm: &Normalized<T>,
    gamma: &[T],
    du: &[T],
    d_gamma: &mut [T],
) -> Vec<T> {
    let len = T::from_f64(du.len() as f64);
    let dn: Vec<T> = du.iter().zip(gamma).map(|(&d, &g)| d * g).collect();
    let (mut s1, mut s2) = (T::ZERO, T::ZERO);
    for ((&d, &n), (dg, &u)) in dn.iter().zip(&nrm.n).zip(d_gamma.iter_mut().zip(du)) {
        s1 += d;
        s2 += d * n;
        *dg += u * n;
    }
    let (m1, m2) = (s1 / len, s2 / len);
    dn.iter()
        .zip(&nrm.n)
        .map(|(&d, &n)| nrm.inv * (d - m1 - n * m2))
        .collect()
}

/// One row's step of the layer-norm LSTM: every gate's pre-normalisation sum `z`
/// (`W_ih x + W_hh h`, plus `p ⊙ c` for a gate with a peephole; no bias), its
/// activation, `c'` and `m = o ⊙ h(c')`.
pub(crate) struct LstmRow<T> {
    pub(crate) z: Vec<T>,
    pub(crate) act: Vec<T>,
    pub(crate) c: Vec<T>,
    pub(crate) m: Vec<T>,
}

/// What a layer-norm LSTM row takes besides its products: the scales `γ` (`[G·H]`),
/// the biases (`[G·H]`, added after the normalisation) and the peepholes, as `T`.
pub(crate) struct NormWeights<'a, T> {
    pub(crate) gamma: &'a [T],
    pub(crate) b_ih: Option<&'a [T]>,
    pub(crate) b_hh: Option<&'a [T]>,
    pub(crate) peephole: Option<&'a [T]>,
}

/// One row of TFLite's layer-norm LSTM (`LstmStepFloat` with layer norm) on the inputs
/// `x`, `h` (as the products read them) and `c`: [`lstm_row_on_sums`] of the products
/// `W_ih x + W_hh h`.
pub(crate) fn lstm_row<T: Real>(
    v: &LstmVariant,
    w: &LayerWeights<'_, T>,
    acts: GateActivations,
    x: &[T],
    h: &[T],
    c: &[T],
) -> LstmRow<T> {
    let blk = LstmBlocks::of(v);
    let (k_in, k_h) = (x.len(), h.len());
    let sums: Vec<T> = (0..(blk.o + 1) * c.len())
        .map(|r| {
            dot(&w.w_ih[r * k_in..(r + 1) * k_in], x) + dot(&w.w_hh[r * k_h..(r + 1) * k_h], h)
        })
        .collect();
    let nw = NormWeights {
        gamma: w.layer_norm.expect("checked by check_weights"),
        b_ih: w.b_ih,
        b_hh: w.b_hh,
        peephole: w.peephole,
    };
    lstm_row_on_sums(v, &nw, acts, &sums, c)
}

/// One row of the layer-norm LSTM from its gate rows' product sums `sums` (`[G·H]`, no
/// bias, no peephole; the int8 oracle's come from integer products): i, f and g from
/// `c`, then `c'`, then o from `c'` (its peephole sees `c'`); each gate block normalised
/// as a whole, so a gate needs every unit's `z` before any unit's activation. CIFG:
/// `i = 1 − f`.
pub(crate) fn lstm_row_on_sums<T: Real>(
    v: &LstmVariant,
    w: &NormWeights<'_, T>,
    acts: GateActivations,
    sums: &[T],
    c: &[T],
) -> LstmRow<T> {
    let hid = c.len();
    let blk = LstmBlocks::of(v);
    let mut row = LstmRow {
        z: vec![T::ZERO; (blk.o + 1) * hid],
        act: vec![T::ZERO; (blk.o + 1) * hid],
        c: Vec::with_capacity(hid),
        m: Vec::with_capacity(hid),
    };
    // Gate block `k` with the peephole block `pk` on `state`, activated by `act`.
    let block =
        |row: &mut LstmRow<T>, k: usize, pk: Option<usize>, state: &[T], act: Activation| {
            let rows = k * hid..(k + 1) * hid;
            for (j, r) in rows.clone().enumerate() {
                row.z[r] = match (w.peephole, pk) {
                    (Some(p), Some(pk)) => sums[r] + p[pk * hid + j] * state[j],
                    _ => sums[r],
                };
            }
            let nrm = normalize(&row.z[rows.clone()]);
            for (j, r) in rows.enumerate() {
                let u = scaled(
                    nrm.n[j],
                    w.gamma[r],
                    w.b_ih.map(|b| b[r]),
                    w.b_hh.map(|b| b[r]),
                );
                row.act[r] = u.gate_activation(act);
            }
        };
    if let Some(ki) = blk.i {
        block(&mut row, ki, blk.p_i, c, acts.f);
    }
    block(&mut row, blk.f, Some(blk.p_f), c, acts.f);
    block(&mut row, blk.g, None, c, acts.g);
    let c_new: Vec<T> = (0..hid)
        .map(|j| {
            let f = row.act[blk.f * hid + j];
            let i = blk.i.map_or(T::ONE - f, |ki| row.act[ki * hid + j]);
            f * c[j] + i * row.act[blk.g * hid + j]
        })
        .collect();
    block(&mut row, blk.o, Some(blk.p_o), &c_new, acts.f);
    for (j, &cn) in c_new.iter().enumerate() {
        row.m
            .push(row.act[blk.o * hid + j] * cn.gate_activation(acts.h));
    }
    row.c = c_new;
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: z = (1, 2, 3): μ = 2, σ² = 2/3, inv = 1/√(2/3 + 1e-8).
    #[test]
    fn normalizes_by_hand() {
        let r = normalize(&[1.0f64, 2.0, 3.0]);
        let inv = 1.0 / (2.0f64 / 3.0 + f64::from(LAYER_NORM_EPSILON)).sqrt();
        assert!((r.inv - inv).abs() < 1e-15);
        for (n, want) in r.n.iter().zip([-inv, 0.0, inv]) {
            assert!((n - want).abs() < 1e-15, "{n} vs {want}");
        }
        // A constant block: σ² = 0, so n = 0 (ε keeps it finite).
        let c = normalize(&[5.0f64; 4]);
        assert!(c.n.iter().all(|&n| n == 0.0));
        assert!((c.inv - 1e4).abs() < 1e-2);
    }

    /// The backward against central differences of `Σ w_j u_j`.
    #[test]
    fn backward_matches_differences() {
        let z = [0.3f64, -1.2, 2.0, 0.7];
        let gamma = [1.5, 0.5, -0.8, 1.1];
        let w = [0.2, -0.7, 0.9, 0.4];
        let loss = |z: &[f64], g: &[f64]| {
            let r = normalize(z);
            (0..4)
                .map(|j| w[j] * scaled(r.n[j], g[j], Some(0.1), None))
                .sum::<f64>()
        };
        let mut d_gamma = [0.0; 4];
        let dz = normalize_backward(&normalize(&z), &gamma, &w, &mut d_gamma);
        let h = 1e-6;
        for j in 0..4 {
            let (mut zp, mut zm) = (z, z);
            zp[j] += h;
            zm[j] -= h;
            let fd = (loss(&zp, &gamma) - loss(&zm, &gamma)) / (2.0 * h);
            assert!((dz[j] - fd).abs() < 1e-8, "dz[{j}] {} vs {fd}", dz[j]);
            let (mut gp, mut gm) = (gamma, gamma);
            gp[j] += h;
            gm[j] -= h;
            let fd = (loss(&z, &gp) - loss(&z, &gm)) / (2.0 * h);
            assert!(
                (d_gamma[j] - fd).abs() < 1e-8,
                "dγ[{j}] {} vs {fd}",
                d_gamma[j]
            );
        }
    }
}
