//! The backward step of TFLite's layer-norm LSTM. Its forward normalises each gate
//! block over the whole row (`u = γ ⊙ (z − μ)/√(σ² + ε) + b`, then the activation), so
//! a unit's `∂L/∂z` needs two sums over its block's row:
//!
//! ```text
//! du = ∂L/∂(gate) · act'(u)      ∂L/∂γ += du ⊙ n      ∂L/∂b += du
//! dn = γ ⊙ du                    dz = inv · (dn − mean(dn) − n · mean(dn ⊙ n))
//! ```
//!
//! which no tile of a product sees. So, as the forward's step (product, then row pass),
//! a step is: the product with `W_hhᵀ` whose epilogue only writes `∂L/∂h'` (and the
//! carry), a projected cell's second product (`W_hrᵀ`, giving `∂L/∂m`), then a row
//! pass split by rows ([`RowBackward`]): o's block first (its peephole reads `c'`, and
//! `∂L/∂c'` needs its `dz`), then f, i and g; `dz` goes to the gate rows (the products'
//! operand, as for every cell), `du` and `du ⊙ n` to per-step rows. Last, a pass split
//! by units ([`Accumulate`]) adds those rows and the peepholes' terms into the sums over
//! steps, rows in order, so the results do not depend on the thread count.

use std::ops::Range;

use super::super::layer_norm::{lane_sum, stats, Stats};
use super::{BackWeights, Projected};
use crate::arch::Backend;
use crate::cells::backward::{back_pass, keep_units, sigmoid_slope, tanh_slope, BackPtrs};
use crate::kernel::{Epilogue, Rows, SimdOp};
use crate::pack::LANES;
use crate::parallel::{threads_for, Team};
use crate::simd::V16;

/// The packed `γ` and post-normalisation biases, `[G][c_stride]` each.
#[derive(Clone, Copy)]
pub(crate) struct NormPtrs {
    pub(crate) gamma: *const f32,
    pub(crate) bias: *const f32,
}

/// Where each gate sits in a tile's gate block (i, f, g, o; CIFG f, g, o) and its
/// peephole row (i, f, o; CIFG f, o).
#[derive(Clone, Copy)]
struct Slots {
    gates: usize,
    i: Option<usize>,
    f: usize,
    g: usize,
    o: usize,
    p_i: usize,
    p_f: usize,
    p_o: usize,
}

impl Slots {
    fn of(cifg: bool) -> Self {
        if cifg {
            Slots {
                gates: 3,
                i: None,
                f: 0,
                g: 1,
                o: 2,
                p_i: 0,
                p_f: 0,
                p_o: 1,
            }
        } else {
            Slots {
                gates: 4,
                i: Some(0),
                f: 1,
                g: 2,
                o: 3,
                p_i: 0,
                p_f: 1,
                p_o: 2,
            }
        }
    }

    /// Offset of gate slot `k` of tile `t` in a gate-interleaved row.
    fn at(&self, k: usize, t: usize) -> usize {
        (self.gates * t + k) * LANES
    }
}

/// One backward step of a layer-norm LSTM.
///
/// # Safety
/// As for [`super::step`]; `s`'s layer-norm buffers are sized for its rows.
pub(crate) unsafe fn step<B: Backend>(
    w: &BackWeights,
    norm: NormPtrs,
    s: &BackPtrs,
    first: bool,
    team: &Team<'_>,
) {
    let a = s.later_rows();
    // SAFETY: forwarded contract: `later` rows hold `k` gate gradients, the `dh_rows`
    // and `ln_dm` rows `padded(H_out)` and `padded(H)` floats.
    unsafe {
        match w.w_hr_t {
            None => {
                // `∂L/∂m = ∂L/∂h'`, straight into the `∂m` rows.
                let into_dm = BackPtrs {
                    dh_rows: s.ln_dm,
                    ..*s
                };
                let epi = Projected { s: &into_dm };
                back_pass::<B, _>(team, a, s.batch, w.w_hh_t, first, s.zigzag, &epi);
            }
            Some(w_hr_t) => {
                let epi = Projected { s };
                back_pass::<B, _>(team, a, s.batch, w.w_hh_t, first, s.zigzag, &epi);
                let dh = Rows::strided(s.dh_rows, s.h_stride, s.batch);
                let epi = StoreDm { s };
                back_pass::<B, _>(team, dh, s.batch, w_hr_t, false, s.zigzag, &epi);
            }
        }
    }
    let slots = Slots::of(w.coupling == rnn_reference::GateCoupling::Cifg);
    let (batch, hid) = (s.batch, s.hid);
    // About 60 operations per value (two sums, activations and slopes, twice).
    let active = threads_for(batch * slots.gates * hid * 60, batch, usize::MAX);
    let rows = team.chunk(batch, active);
    if !rows.is_empty() {
        let op = RowBackward {
            s,
            norm,
            peephole: w.peephole,
            slots,
            rows,
        };
        // SAFETY: this member's rows of the step's buffers; the products' passes ended
        // at a barrier, so every `∂m` is in.
        unsafe { B::run_op(op) };
    }
    team.sync();
    let tiles = hid.div_ceil(LANES);
    let active = threads_for(batch * slots.gates * hid * 4, tiles, usize::MAX);
    let tiles = team.chunk(tiles, active);
    if !tiles.is_empty() {
        let op = Accumulate {
            s,
            peephole: w.peephole,
            slots,
            tiles,
        };
        // SAFETY: this member's tiles of the sums; the row pass ended at a barrier.
        unsafe { B::run_op(op) };
    }
    team.sync();
}

/// Projected, second pass: `acc = ∂L/∂m` into the `∂m` rows.
struct StoreDm<'a> {
    s: &'a BackPtrs,
}

impl<V: V16> Epilogue<V, 4> for StoreDm<'_> {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; 4]) {
        let s = self.s;
        for (q, &a) in acc.iter().enumerate() {
            let u = (panel * 4 + q) * LANES;
            // SAFETY: `(row, u)` inside the padded `∂m` rows (`W_hrᵀ` has `H` columns).
            unsafe { a.store(s.ln_dm.add(row * s.c_stride + u)) };
        }
    }
}

/// The row pass of rows `rows` (see the module's docs).
struct RowBackward<'a> {
    s: &'a BackPtrs,
    norm: NormPtrs,
    /// Peepholes `[3][c_stride]` (CIFG `[2][c_stride]`), or null.
    peephole: *const f32,
    slots: Slots,
    rows: Range<usize>,
}

/// Splatted `mean(dn)` and `mean(dn ⊙ n)` of one gate block.
#[derive(Clone, Copy)]
struct Means<V> {
    dn: V,
    dnn: V,
}

impl RowBackward<'_> {
    /// `(n, u)` of gate slot `k`, tile `t`, of the row whose sums are at `z`: the
    /// normalised sum and the activation's argument `γ ⊙ n + b`, both zero past `H`
    /// (the forward's values bit for bit).
    ///
    /// # Safety
    /// `V`'s ISA; `z` a gate-interleaved row of the step, `t < ⌈H / 16⌉`.
    #[inline(always)]
    unsafe fn normed<V: V16>(&self, z: *const f32, k: usize, t: usize, st: Stats<V>) -> (V, V) {
        let (s, u) = (self.s, t * LANES);
        let off = k * s.c_stride + u;
        // SAFETY: the caller's contract; the vectors hold `G` rows of `c_stride`.
        unsafe {
            let zv = V::load(z.add(self.slots.at(k, t)));
            let n = zv.sub(st.mean).mul(st.inv);
            let gamma = V::load(self.norm.gamma.add(off));
            let arg = gamma.mul_add(n, V::load(self.norm.bias.add(off)));
            (keep_units(n, u, s.hid), keep_units(arg, u, s.hid))
        }
    }

    /// Stores `du` (zero past `H`) and `du ⊙ n` of slot `k`, tile `t`, and adds `dn = γ ⊙
    /// du` and `dn ⊙ n` to the block's running sums.
    ///
    /// # Safety
    /// `V`'s ISA; `du`, `dun` the row's `∂u` rows; `t < ⌈H / 16⌉`.
    #[inline(always)]
    unsafe fn record<V: V16>(
        &self,
        (du, dun): (*mut f32, *mut f32),
        k: usize,
        t: usize,
        (d, n): (V, V),
        sums: &mut (V, V),
    ) {
        let (s, u) = (self.s, t * LANES);
        let at = self.slots.at(k, t);
        // SAFETY: the caller's contract.
        unsafe {
            let d = keep_units(d, u, s.hid);
            d.store(du.add(at));
            d.mul(n).store(dun.add(at));
            let dn = d.mul(V::load(self.norm.gamma.add(k * s.c_stride + u)));
            sums.0 = sums.0.add(dn);
            sums.1 = dn.mul_add(n, sums.1);
        }
    }

    /// `dz = inv · (γ ⊙ du − mean(dn) − n · mean(dn ⊙ n))` of slot `k`, tile `t`, from
    /// the stored `du`; zero past `H`.
    ///
    /// # Safety
    /// As for [`RowBackward::record`].
    #[inline(always)]
    unsafe fn dz<V: V16>(
        &self,
        du: *const f32,
        k: usize,
        t: usize,
        n: V,
        st: Stats<V>,
        m: Means<V>,
    ) -> V {
        let (s, u) = (self.s, t * LANES);
        // SAFETY: the caller's contract.
        unsafe {
            let gamma = V::load(self.norm.gamma.add(k * s.c_stride + u));
            let dn = V::load(du.add(self.slots.at(k, t))).mul(gamma);
            let d = dn.sub(m.dn).sub(n.mul(m.dnn)).mul(st.inv);
            keep_units(d, u, s.hid)
        }
    }
}

/// The means of a block's sums over its `hid` units.
///
/// # Safety
/// `V`'s ISA.
#[inline(always)]
unsafe fn means<V: V16>((s1, s2): (V, V), hid: usize) -> Means<V> {
    let n = hid as f32;
    // SAFETY: the caller's ISA.
    unsafe {
        Means {
            dn: V::splat(lane_sum(s1) / n),
            dnn: V::splat(lane_sum(s2) / n),
        }
    }
}

impl SimdOp for RowBackward<'_> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<V: V16>(self) {
        let s = self.s;
        let sl = self.slots;
        let (hid, hs) = (s.hid, s.c_stride);
        let tiles = hid.div_ceil(LANES);
        let (act_f, act_g, act_h) = (s.acts.f(), s.acts.g(), s.acts.h());
        let p = self.peephole;
        for row in self.rows.clone() {
            // SAFETY: the op's contract: row `row` of every step buffer exists with its
            // stride, tiles `< ⌈H / 16⌉` inside the padded rows; `p` (when not null)
            // holds the peephole rows. Each tile's sums are read before its gradients
            // are written over them (`dg` may be `z`).
            unsafe {
                let z = s.z.add(row * s.z_stride);
                let dg = s.dg.add(row * s.dg_stride);
                let bufs = (
                    s.ln_du.add(row * s.ln_stride),
                    s.ln_dun.add(row * s.ln_stride),
                );
                if !s.active(row) {
                    for t in 0..tiles {
                        for k in 0..sl.gates {
                            let at = sl.at(k, t);
                            for b in [dg, bufs.0, bufs.1] {
                                V::zero().store(b.add(at));
                            }
                        }
                    }
                    continue;
                }
                let (dm, dc) = (s.ln_dm.add(row * hs), s.dc.add(row * hs));
                let (c_old, c_new) = (s.c_prev.add(row * hs), s.c_after.add(row * hs));
                let zk = |k: usize| move |t: usize| z.add(sl.at(k, t));
                let peep = |k: usize, u: usize| V::load(p.add(k * hs + u));
                // o: du_o = ∂m · h(c') · σ'(u_o).
                let st_o = stats::<V>(hid, zk(sl.o));
                let mut sums_o = (V::zero(), V::zero());
                for t in 0..tiles {
                    let u = t * LANES;
                    let (n, arg) = self.normed(z, sl.o, t, st_o);
                    let (_, o_d) = sigmoid_slope(arg, act_f);
                    let (tc, _) = tanh_slope(V::load(c_new.add(u)), act_h);
                    let d = V::load(dm.add(u)).mul(tc).mul(o_d);
                    self.record(bufs, sl.o, t, (d, n), &mut sums_o);
                }
                let m_o = means(sums_o, hid);
                // ∂L/∂c' = dc + ∂m · o · h'(c') + dz_o · p_o, kept in `dc` for now.
                for t in 0..tiles {
                    let u = t * LANES;
                    let (n, arg) = self.normed(z, sl.o, t, st_o);
                    let (o, _) = sigmoid_slope(arg, act_f);
                    let (_, tc_d) = tanh_slope(V::load(c_new.add(u)), act_h);
                    let dz_o = self.dz(bufs.0, sl.o, t, n, st_o, m_o);
                    let mut dcn = V::load(dm.add(u)).mul(o).mul_add(tc_d, V::load(dc.add(u)));
                    if !p.is_null() {
                        dcn = dz_o.mul_add(peep(sl.p_o, u), dcn);
                    }
                    dcn.store(dc.add(u));
                    dz_o.store(dg.add(sl.at(sl.o, t)));
                }
                // f, i, g from ∂L/∂c' (CIFG: i = 1 − f, so ∂c'/∂f = c − g).
                let st_f = stats::<V>(hid, zk(sl.f));
                let st_g = stats::<V>(hid, zk(sl.g));
                let st_i = sl.i.map(|k| stats::<V>(hid, zk(k)));
                let (mut sums_f, mut sums_g, mut sums_i) = (
                    (V::zero(), V::zero()),
                    (V::zero(), V::zero()),
                    (V::zero(), V::zero()),
                );
                for t in 0..tiles {
                    let u = t * LANES;
                    let (c, dcn) = (V::load(c_old.add(u)), V::load(dc.add(u)));
                    let (nf, arg_f) = self.normed(z, sl.f, t, st_f);
                    let (f, f_d) = sigmoid_slope(arg_f, act_f);
                    let (ng, arg_g) = self.normed(z, sl.g, t, st_g);
                    let (g, g_d) = tanh_slope(arg_g, act_g);
                    let i = match (sl.i, st_i) {
                        (Some(k), Some(st)) => {
                            let (ni, arg_i) = self.normed(z, k, t, st);
                            let (i, i_d) = sigmoid_slope(arg_i, act_f);
                            self.record(bufs, k, t, (dcn.mul(g).mul(i_d), ni), &mut sums_i);
                            i
                        }
                        _ => V::splat(1.0).sub(f),
                    };
                    let da_f = match sl.i {
                        None => dcn.mul(c.sub(g)),
                        Some(_) => dcn.mul(c),
                    };
                    self.record(bufs, sl.f, t, (da_f.mul(f_d), nf), &mut sums_f);
                    self.record(bufs, sl.g, t, (dcn.mul(i).mul(g_d), ng), &mut sums_g);
                }
                let (m_f, m_g, m_i) = (means(sums_f, hid), means(sums_g, hid), means(sums_i, hid));
                // dz of f, i, g; ∂L/∂c = ∂L/∂c' · f + dz_i · p_i + dz_f · p_f.
                for t in 0..tiles {
                    let u = t * LANES;
                    let (nf, arg_f) = self.normed(z, sl.f, t, st_f);
                    let (f, _) = sigmoid_slope(arg_f, act_f);
                    let (ng, _) = self.normed(z, sl.g, t, st_g);
                    let dz_f = self.dz(bufs.0, sl.f, t, nf, st_f, m_f);
                    let dz_g = self.dz(bufs.0, sl.g, t, ng, st_g, m_g);
                    let mut d = V::load(dc.add(u)).mul(f);
                    if let (Some(k), Some(st)) = (sl.i, st_i) {
                        let (ni, _) = self.normed(z, k, t, st);
                        let dz_i = self.dz(bufs.0, k, t, ni, st, m_i);
                        if !p.is_null() {
                            d = dz_i.mul_add(peep(sl.p_i, u), d);
                        }
                        dz_i.store(dg.add(sl.at(k, t)));
                    }
                    if !p.is_null() {
                        d = dz_f.mul_add(peep(sl.p_f, u), d);
                    }
                    d.store(dc.add(u));
                    dz_f.store(dg.add(sl.at(sl.f, t)));
                    dz_g.store(dg.add(sl.at(sl.g, t)));
                }
            }
        }
    }
}

/// The pass after the row pass, tiles `tiles`: adds every row's `du ⊙ n` and `du` to
/// the sums of `∂L/∂γ` and of the biases, and the peepholes' `dz ⊙ c` (`c'` for o) to
/// theirs, rows in order.
struct Accumulate<'a> {
    s: &'a BackPtrs,
    peephole: *const f32,
    slots: Slots,
    tiles: Range<usize>,
}

impl SimdOp for Accumulate<'_> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<V: V16>(self) {
        let s = self.s;
        let sl = self.slots;
        let hs = s.c_stride;
        // The peephole rows of the gates that have one: (slot, peephole row, on c').
        let mut peeps = [(sl.f, sl.p_f, false), (sl.o, sl.p_o, true), (0, 0, false)];
        let np = match sl.i {
            Some(k) => {
                peeps[2] = (k, sl.p_i, false);
                3
            }
            None => 2,
        };
        for t in self.tiles.clone() {
            let u = t * LANES;
            // SAFETY: the op's contract: the sums hold `[2][G][c_stride]` floats, the
            // peephole sums `[3][c_stride]`; rows `< batch` of every step buffer.
            unsafe {
                for k in 0..sl.gates {
                    let (ag, ab) = (
                        s.ln_acc.add(k * hs + u),
                        s.ln_acc.add((sl.gates + k) * hs + u),
                    );
                    let (mut sg, mut sb) = (V::load(ag), V::load(ab));
                    for row in (0..s.batch).filter(|&r| s.active(r)) {
                        let at = row * s.ln_stride + sl.at(k, t);
                        sg = sg.add(V::load(s.ln_dun.add(at)));
                        sb = sb.add(V::load(s.ln_du.add(at)));
                    }
                    sg.store(ag);
                    sb.store(ab);
                }
                if self.peephole.is_null() {
                    continue;
                }
                for &(k, pk, after) in &peeps[..np] {
                    let acc = s.dp.add(pk * hs + u);
                    let mut sum = V::load(acc);
                    for row in (0..s.batch).filter(|&r| s.active(r)) {
                        let c = if after { s.c_after } else { s.c_prev };
                        let dz = V::load(s.dg.add(row * s.dg_stride + sl.at(k, t)));
                        sum = dz.mul_add(V::load(c.add(row * hs + u)), sum);
                    }
                    sum.store(acc);
                }
            }
        }
    }
}
