//! The output layer's elementwise pass: from the product rows `z = W_o·h + b_o` (in
//! scratch, padded to whole panels) to the caller's `y = g(z)`, one row at a time,
//! written once against [`V16`] and run inside each path's `#[target_feature]` code.

use std::ops::Range;

use rnn_reference::OutputActivation;

use crate::kernel::SimdOp;
use crate::pack::LANES;
use crate::simd::{math, V16};

/// Rows `rows` of `z` (`z_stride` floats apart, at least `o` rounded up to 16 readable
/// floats each) finished into `y` (`o` floats per row, packed). `z` may be `y` itself
/// (`z_stride == o`, a multiple of 16): every pass reads an element before it writes it.
pub(crate) struct Finish {
    pub(crate) z: *mut f32,
    pub(crate) z_stride: usize,
    pub(crate) y: *mut f32,
    pub(crate) o: usize,
    pub(crate) rows: Range<usize>,
    pub(crate) activation: OutputActivation,
}

// SAFETY: the pointers point into scratch and the caller's `y`, which outlive the team;
// members finish disjoint rows.
unsafe impl Sync for Finish {}

impl SimdOp for Finish {
    type Output = ();

    #[inline(always)]
    unsafe fn run<V: V16>(self) {
        for r in self.rows.clone() {
            // SAFETY: the op's contract: row `r` of `z` and of `y` exist.
            unsafe {
                let z = self.z.add(r * self.z_stride);
                let y = self.y.add(r * self.o);
                match self.activation {
                    // In place (`z` is `y`): the sums are already the outputs.
                    OutputActivation::Identity if z == y => {}
                    OutputActivation::Identity => std::ptr::copy_nonoverlapping(z, y, self.o),
                    OutputActivation::Sigmoid => map_row::<V>(z, y, self.o, |v| math::sigmoid(v)),
                    OutputActivation::Softmax => softmax_row::<V>(z, y, self.o),
                }
            }
        }
    }
}

/// `y[k] = f(z[k])` for `k < o`, 16 at a time; the last partial chunk goes through a
/// stack buffer so `y` is written only where it exists.
///
/// # Safety
/// `V`'s ISA; `z` readable for `o` rounded up to 16 floats, `y` writable for `o`.
#[inline(always)]
unsafe fn map_row<V: V16>(z: *const f32, y: *mut f32, o: usize, f: impl Fn(V) -> V) {
    let full = o / LANES * LANES;
    // SAFETY: the caller's contract.
    unsafe {
        for c in (0..full).step_by(LANES) {
            f(V::load(z.add(c))).store(y.add(c));
        }
        if full < o {
            let mut tail = [0.0f32; LANES];
            f(V::load(z.add(full))).store(tail.as_mut_ptr());
            std::ptr::copy_nonoverlapping(tail.as_ptr(), y.add(full), o - full);
        }
    }
}

/// `y = softmax(z[..o])`, as the reference evaluates it: `m = max z` (NaN wins),
/// `e = exp(z − m)` (kept in `z`), `y = e / Σ e`.
///
/// # Safety
/// As for [`map_row`]; `z` also writable for `o` rounded up to 16 floats.
#[inline(always)]
unsafe fn softmax_row<V: V16>(z: *mut f32, y: *mut f32, o: usize) {
    let chunks = o.div_ceil(LANES);
    let tail = o - (chunks - 1) * LANES;
    // SAFETY: the caller's contract: `chunks * 16` floats of `z` exist.
    unsafe {
        // Lanes past `o` in the last chunk read as -inf for the max and 0 for the sum.
        let last = |fill: f32| {
            let mut buf = [fill; LANES];
            std::ptr::copy_nonoverlapping(z.add((chunks - 1) * LANES), buf.as_mut_ptr(), tail);
            V::load(buf.as_ptr())
        };
        let mut mv = last(f32::NEG_INFINITY);
        for c in 0..chunks - 1 {
            mv = mv.max_keep_nan(V::load(z.add(c * LANES)));
        }
        let mut lanes = [0.0f32; LANES];
        mv.store(lanes.as_mut_ptr());
        let m = lanes.iter().copied().fold(f32::NEG_INFINITY, |m, v| {
            if v.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(v)
            }
        });
        let m = V::splat(m);
        let mut sum = V::zero();
        for c in 0..chunks {
            let v = if c + 1 == chunks {
                last(f32::NEG_INFINITY)
            } else {
                V::load(z.add(c * LANES))
            };
            // exp(-inf - m) = 0 for the padding lanes (m finite); if m is ±inf or NaN
            // the row is NaN anyway, as in the reference.
            let e = math::exp(v.sub(m));
            let e = if c + 1 == chunks {
                e.store(lanes.as_mut_ptr());
                lanes[tail..].fill(0.0);
                V::load(lanes.as_ptr())
            } else {
                e
            };
            e.store(z.add(c * LANES));
            sum = sum.add(e);
        }
        sum.store(lanes.as_mut_ptr());
        let s = V::splat(lanes.iter().sum());
        map_row::<V>(z, y, o, |e| e.div(s));
    }
}

/// The backward's elementwise pass: rows `rows` of `dz = ∂L/∂z` (into scratch rows of
/// `dz_stride` floats, zero past `o`) from the forward's `y` and `dy = ∂L/∂y` (`o`
/// floats per row, packed), as `rnn_reference::output_layer_backward` evaluates it.
pub(crate) struct BackFinish {
    pub(crate) y: *const f32,
    pub(crate) dy: *const f32,
    pub(crate) dz: *mut f32,
    pub(crate) dz_stride: usize,
    pub(crate) o: usize,
    pub(crate) rows: Range<usize>,
    pub(crate) activation: OutputActivation,
}

// SAFETY: as for `Finish`: members write disjoint rows of `dz`.
unsafe impl Sync for BackFinish {}

impl SimdOp for BackFinish {
    type Output = ();

    #[inline(always)]
    unsafe fn run<V: V16>(self) {
        let o = self.o;
        let chunks = o.div_ceil(LANES);
        for r in self.rows.clone() {
            // SAFETY: the op's contract: rows `r` of `y`, `dy` (o floats) and `dz`
            // (dz_stride >= chunks * 16 floats) exist.
            unsafe {
                let (y, dy) = (self.y.add(r * o), self.dy.add(r * o));
                let dz = self.dz.add(r * self.dz_stride);
                // Chunk `c` of a packed row, zero past `o`.
                let load = |p: *const f32, c: usize| {
                    if (c + 1) * LANES <= o {
                        V::load(p.add(c * LANES))
                    } else {
                        let mut buf = [0.0f32; LANES];
                        std::ptr::copy_nonoverlapping(
                            p.add(c * LANES),
                            buf.as_mut_ptr(),
                            o - c * LANES,
                        );
                        V::load(buf.as_ptr())
                    }
                };
                let s = if self.activation == OutputActivation::Softmax {
                    let mut acc = V::zero();
                    for c in 0..chunks {
                        acc = load(dy, c).mul_add(load(y, c), acc);
                    }
                    let mut lanes = [0.0f32; LANES];
                    acc.store(lanes.as_mut_ptr());
                    V::splat(lanes.iter().sum())
                } else {
                    V::zero()
                };
                let one = V::splat(1.0);
                for c in 0..chunks {
                    let (yv, dv) = (load(y, c), load(dy, c));
                    let d = match self.activation {
                        OutputActivation::Identity => dv,
                        OutputActivation::Sigmoid => dv.mul(yv.mul(one.sub(yv))),
                        OutputActivation::Softmax => yv.mul(dv.sub(s)),
                    };
                    d.store(dz.add(c * LANES));
                    if (c + 1) * LANES > o {
                        // Lanes past `o` read y = dy = 0, so d = 0 there, except a
                        // softmax row whose sum is NaN (NaN anyway): keep them zero.
                        std::ptr::write_bytes(dz.add(o), 0, (c + 1) * LANES - o);
                    }
                }
                std::ptr::write_bytes(dz.add(chunks * LANES), 0, self.dz_stride - chunks * LANES);
            }
        }
    }
}
