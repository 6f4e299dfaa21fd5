//! The training workspace: what the training forward keeps for the backward (layer
//! inputs, states, and with [`Activations::Keep`] the gate pre-activations), scratch
//! for both passes, and where every buffer lives in them.

use rnn_reference::{Error, RnnConfig, SeqShape};

use super::profile::BackwardProfile;
use crate::aligned::AlignedVec;
use crate::cells::CellWeights;
use crate::element::Element;
use crate::pack::padded;
use crate::pack::runtime::panels_len;
use crate::Result;

/// What the training forward keeps for the backward: memory against time.
///
/// Per step and batch row, with `P(n)` = `n` rounded up to a multiple of 64, `G` the
/// gates, `D` the directions, the forward keeps, for every layer, in `f32`:
///
/// - both: the layer's input (`I` for layer 0, `D·H_out` after) and, per direction,
///   the states `h` (`P(H_out)`) and, for an LSTM, `c` (`P(H)`);
/// - [`Activations::Keep`] also: per direction every gate's pre-activation
///   (`G·P(H)`) and, for a GRU or a projected LSTM, one more vector (`P(H)`: the GRU's
///   recurrent n part, the LSTM's `o ⊙ tanh(c')`).
///
/// [`TrainingWorkspace::kept_floats`] gives the exact total. `Recompute` runs each
/// step's forward again during the backward (one more input projection and recurrent
/// product per step, about +50% time for the training step); the backward then needs
/// one layer's gate gradients (`D·G·P(H)` per step and row) as scratch, which `Keep`
/// writes over the kept pre-activations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activations {
    /// Keep the gate pre-activations of every layer (fastest).
    #[default]
    Keep,
    /// Keep only the layer inputs and states; recompute the gates in the backward.
    Recompute,
}

/// Reusable memory for [`PackedRnn::forward_train`](crate::PackedRnn::forward_train)
/// and [`PackedRnn::backward`](crate::PackedRnn::backward): it holds what the training
/// forward keeps until the backward reads it, and grows on first use for a shape, so
/// repeated training steps of the same or smaller shapes never allocate. One per
/// thread or stream.
#[derive(Default)]
pub struct TrainingWorkspace {
    pub(crate) mode: Activations,
    /// What the forward kept (read by the backward).
    pub(crate) kept: AlignedVec,
    /// Scratch of either pass.
    pub(crate) scratch: AlignedVec,
    /// f32 copies of half-precision states and outputs.
    pub(crate) io: AlignedVec,
    /// The run the kept values belong to (`None` until a training forward ran, and
    /// after a failed one).
    pub(crate) run: Option<Run>,
    /// That run's sequence lengths.
    pub(crate) lens: Vec<usize>,
    /// Where the last backward's time went.
    pub(crate) profile: BackwardProfile,
}

/// What the backward needs to know about the training forward that filled `kept`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Run {
    pub(crate) cfg: RnnConfig,
    pub(crate) shape: SeqShape,
    pub(crate) mode: Activations,
    pub(crate) has_lens: bool,
}

impl TrainingWorkspace {
    /// An empty workspace that keeps activations ([`Activations::Keep`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty workspace with the given memory/time choice.
    pub fn with_activations(mode: Activations) -> Self {
        TrainingWorkspace {
            mode,
            ..Self::default()
        }
    }

    /// The memory/time choice of the next training forward.
    pub fn activations(&self) -> Activations {
        self.mode
    }

    /// Changes the memory/time choice (for the next training forward).
    pub fn set_activations(&mut self, mode: Activations) {
        self.mode = mode;
    }

    /// The phases of the last backward run with this workspace (all zero before one,
    /// and after a backward that returned an error).
    pub fn backward_profile(&self) -> BackwardProfile {
        self.profile
    }

    /// Floats currently held.
    pub fn capacity(&self) -> usize {
        self.kept.len() + self.scratch.len() + self.io.len()
    }

    /// Floats a training forward of `cfg` over `shape` keeps for the backward with
    /// `mode` (see [`Activations`]).
    pub fn kept_floats(cfg: &RnnConfig, shape: SeqShape, mode: Activations) -> Result<usize> {
        let d = Dims::new(cfg, shape, mode)?;
        Ok(Kept::new(&d, cfg.num_layers)?.total)
    }
}

/// Every size a training call of one config and shape implies (the kernels' padded
/// strides).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub(crate) t: usize,
    pub(crate) b: usize,
    /// `T * B` rows, time-major.
    pub(crate) r: usize,
    pub(crate) d: usize,
    /// `H_out` blocks in a row of `y` (`D`, or 1 with summed directions).
    pub(crate) yb: usize,
    pub(crate) h: usize,
    pub(crate) ho: usize,
    pub(crate) i: usize,
    /// `padded(H)`, `padded(H_out)`, `padded(I)`.
    pub(crate) hp: usize,
    pub(crate) pp: usize,
    pub(crate) ip: usize,
    /// Gate columns of one direction (`G * hp`) and of a layer (`D * zs`).
    pub(crate) zs: usize,
    pub(crate) zrow: usize,
    pub(crate) lstm: bool,
    /// Whether the cell has per-unit extra rows (GRU, projected LSTM).
    pub(crate) ext: bool,
    /// Whether the cell reads an attention input (AUGRU).
    pub(crate) att: bool,
    /// Whether the cell is TFLite's layer-norm LSTM.
    pub(crate) ln: bool,
    pub(crate) keep: bool,
}

/// An overflow of the training workspace's sizes.
fn overflow() -> Error {
    Error::Overflow {
        arg: "steps".into(),
        what: "steps * batch * gates * padded hidden (training workspace)".into(),
    }
}

fn mul(a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or_else(overflow)
}

impl Dims {
    pub(crate) fn new(cfg: &RnnConfig, shape: SeqShape, mode: Activations) -> Result<Self> {
        shape.dims(cfg)?;
        let (h, ho) = (cfg.hidden_size, cfg.output_size());
        let hp = padded(h);
        let zs = mul(cfg.gates(), hp)?;
        let d = cfg.num_directions();
        Ok(Dims {
            t: shape.steps,
            b: shape.batch,
            r: mul(shape.steps, shape.batch)?,
            d,
            yb: cfg.direction.output_blocks(),
            h,
            ho,
            i: cfg.input_size,
            hp,
            pp: padded(ho),
            ip: padded(cfg.input_size),
            zs,
            zrow: mul(d, zs)?,
            lstm: cfg.cell.has_cell_state(),
            ext: cfg.cell.gru().is_some() || cfg.cell.proj_size().is_some(),
            att: cfg.cell.has_attention(),
            ln: cfg.cell.layer_norm(),
            keep: mode == Activations::Keep,
        })
    }

    /// Width of layer `l`'s input.
    pub(crate) fn width(&self, l: usize) -> usize {
        if l == 0 {
            self.i
        } else {
            self.yb * self.ho
        }
    }

    /// Row of step `t`, batch row `b` (time-major).
    pub(crate) fn row(&self, t: usize, b: usize) -> usize {
        t * self.b + b
    }

    /// The history slot before step `t` of a direction (`rev`: it runs backwards).
    pub(crate) fn before(&self, t: usize, rev: bool) -> usize {
        t + usize::from(rev)
    }

    /// The history slot after step `t`.
    pub(crate) fn after(&self, t: usize, rev: bool) -> usize {
        t + 1 - usize::from(rev)
    }
}

/// Bump allocation of offsets (in floats, each region 64-byte aligned).
#[derive(Default)]
pub(crate) struct Arena {
    pub(crate) total: usize,
}

impl Arena {
    pub(crate) fn take(&mut self, n: usize) -> Result<usize> {
        let o = self.total;
        let n = n.checked_next_multiple_of(16).ok_or_else(overflow)?;
        self.total = o.checked_add(n).ok_or_else(overflow)?;
        Ok(o)
    }
}

/// Offsets of one layer's kept buffers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LayerKept {
    /// Input `[R, width]`, time-major, dense.
    pub(crate) input: usize,
    /// Per direction: `h` history `[(T+1) * B, pp]`, `c` history `[(T+1) * B, hp]`.
    pub(crate) hist_h: [usize; 2],
    pub(crate) hist_c: [usize; 2],
    /// Keep: pre-activations `[R, zrow]`, and per direction extra rows `[R, hp]`.
    pub(crate) z: usize,
    pub(crate) ext: [usize; 2],
}

/// The layout of the kept region.
pub(crate) struct Kept {
    pub(crate) total: usize,
    /// The AUGRU's attention `[R]`, time-major (empty for other cells).
    pub(crate) att: usize,
    /// Layer 0's offsets, and the size of every later layer's block (all alike).
    first: LayerKept,
    block0: usize,
    block: usize,
}

/// Takes one layer's kept buffers from `a` (layer input `width` wide).
fn layer_kept(a: &mut Arena, d: &Dims, width: usize) -> Result<LayerKept> {
    let mut k = LayerKept {
        input: a.take(mul(d.r, width)?)?,
        ..LayerKept::default()
    };
    let slots = mul(d.t + 1, d.b)?;
    for dir in 0..d.d {
        k.hist_h[dir] = a.take(mul(slots, d.pp)?)?;
        if d.lstm {
            k.hist_c[dir] = a.take(mul(slots, d.hp)?)?;
        }
    }
    if d.keep {
        k.z = a.take(mul(d.r, d.zrow)?)?;
        if d.ext {
            for dir in 0..d.d {
                k.ext[dir] = a.take(mul(d.r, d.hp)?)?;
            }
        }
    }
    Ok(k)
}

impl Kept {
    pub(crate) fn new(d: &Dims, layers: usize) -> Result<Self> {
        let mut a = Arena::default();
        let first = layer_kept(&mut a, d, d.i)?;
        let block0 = a.total;
        let mut b = Arena::default();
        layer_kept(&mut b, d, d.yb * d.ho)?;
        let block = b.total;
        let mut a = Arena {
            total: block0
                .checked_add(mul(block, layers - 1)?)
                .ok_or_else(overflow)?,
        };
        let att = a.take(if d.att { d.r } else { 0 })?;
        Ok(Kept {
            total: a.total,
            att,
            first,
            block0,
            block,
        })
    }

    /// A step's attention pointer and row stride for [`StepPtrs`](crate::cells::StepPtrs)
    /// and the backward's `BackPtrs` (null without an attention input).
    ///
    /// # Safety
    /// `kb` is the kept region this layout was made for; `t < T`.
    pub(crate) unsafe fn att_ptrs(&self, kb: *mut f32, d: &Dims, t: usize) -> (*const f32, usize) {
        if d.att {
            // SAFETY: the caller's contract; `att` holds R = T * B floats.
            (unsafe { kb.add(self.att + t * d.b) }.cast_const(), 1)
        } else {
            (std::ptr::null(), 0)
        }
    }

    /// Offsets of layer `l`'s buffers (`l` < the `layers` of `new`).
    pub(crate) fn layer(&self, l: usize, d: &Dims) -> LayerKept {
        if l == 0 {
            return self.first;
        }
        // The same sizes as in `new`, from the layer's block: they did not overflow there.
        let mut a = Arena {
            total: self.block0 + (l - 1) * self.block,
        };
        layer_kept(&mut a, d, d.yb * d.ho).unwrap_or_default()
    }
}

/// Offsets of the scratch buffers of both passes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) total: usize,
    /// Forward: input projection of one direction `[R, zs]` (Recompute), per-step aux
    /// rows `[B, hp]` x2.
    pub(crate) pre: usize,
    pub(crate) aux: usize,
    pub(crate) aux2: usize,
    /// Backward: `∂L/∂y` of the current layer `[R, D * pp]`, layer 0's `dx` `[R, ip]`.
    pub(crate) dy: usize,
    pub(crate) dx: usize,
    /// Recompute: gate gradients `[R, zrow]`, extra rows `[R, hp]`, one step's
    /// pre-activations `[B, zs]` and states `[B, pp]`, `[B, hp]`.
    pub(crate) dg: usize,
    pub(crate) ext: usize,
    pub(crate) zstep: usize,
    pub(crate) hstep: usize,
    pub(crate) cstep: usize,
    /// Carries `[B, pp]`, `[B, hp]`; the cells' step buffers `2 x [B, 3 hp]`; the
    /// projected LSTM's `∂h'` rows `[R, pp]`; peephole sums `[3, hp]`.
    pub(crate) dhc: usize,
    pub(crate) dc: usize,
    pub(crate) carry: [usize; 2],
    pub(crate) dh_rows: usize,
    pub(crate) dp: usize,
    /// AUGRU: one step's per-unit `∂z' ⊙ z` `[B, hp]` and `∂L/∂a` `[R]` (time-major).
    pub(crate) da_units: usize,
    pub(crate) da: usize,
    /// Layer-norm LSTM: one step's `∂L/∂m` `[B, hp]`, its `∂L/∂u` and `∂L/∂u ⊙ n`
    /// `[B, zs]` (gate-interleaved like the gate rows), the sums of `∂L/∂γ` and of the
    /// biases' `∂L/∂u` `[2, G, hp]`.
    pub(crate) ln_dm: usize,
    pub(crate) ln_du: usize,
    pub(crate) ln_dun: usize,
    pub(crate) ln_acc: usize,
    /// Transposed recurrent weights of one direction, `W_ihᵀ` of one layer.
    pub(crate) w_back: usize,
    pub(crate) w_ih_t: usize,
    /// Weight-gradient products: the gradient side transposed `[max(G·H, H_out), R]`,
    /// the activation side's panels (`R` rows of the widest of the input, `H` and
    /// `H_out`), the output padded to whole panels when the gradient's rows are not.
    pub(crate) left_t: usize,
    pub(crate) right: usize,
    pub(crate) out: usize,
    /// Floats of `w_ih_t`'s panels per row (its `k` is `zrow`).
    pub(crate) w_ih_cols: usize,
}

impl Scratch {
    pub(crate) fn new<W: Element>(d: &Dims, cfg: &RnnConfig) -> Result<Self> {
        let mut a = Arena::default();
        let mut s = Scratch {
            pre: a.take(if d.keep { 0 } else { mul(d.r, d.zs)? })?,
            aux: a.take(mul(d.b, d.hp)?)?,
            aux2: a.take(mul(d.b, d.hp)?)?,
            dy: a.take(mul(d.r, mul(d.d, d.pp)?)?)?,
            dx: a.take(mul(d.r, d.ip)?)?,
            ..Scratch::default()
        };
        if !d.keep {
            s.dg = a.take(mul(d.r, d.zrow)?)?;
            s.ext = a.take(if d.ext { mul(d.r, d.hp)? } else { 0 })?;
            s.zstep = a.take(mul(d.b, d.zs)?)?;
            s.hstep = a.take(mul(d.b, d.pp)?)?;
            s.cstep = a.take(mul(d.b, d.hp)?)?;
        }
        s.dhc = a.take(mul(d.b, d.pp)?)?;
        s.dc = a.take(mul(d.b, d.hp)?)?;
        for c in &mut s.carry {
            *c = a.take(mul(d.b, mul(3, d.hp)?)?)?;
        }
        s.dh_rows = a.take(if d.ext && d.lstm { mul(d.r, d.pp)? } else { 0 })?;
        s.dp = a.take(mul(3, d.hp)?)?;
        s.da_units = a.take(if d.att { mul(d.b, d.hp)? } else { 0 })?;
        s.da = a.take(if d.att { d.r } else { 0 })?;
        let ln = |n: usize| if d.ln { n } else { 0 };
        s.ln_dm = a.take(ln(mul(d.b, d.hp)?))?;
        s.ln_du = a.take(ln(mul(d.b, d.zs)?))?;
        s.ln_dun = a.take(ln(mul(d.b, d.zs)?))?;
        s.ln_acc = a.take(ln(mul(2, d.zs)?))?;
        s.w_back = a.take(CellWeights::<W>::backward_len(cfg))?;
        s.w_ih_cols = (d.d * d.pp).max(d.ip);
        let wide = d.i.max(d.yb * d.ho);
        s.w_ih_t = a.take(panels_len(d.zrow, s.w_ih_cols))?;
        // `zs` (`G` gates of `padded(H)` units) bounds the gate rows `G · H`.
        let grad_rows = d.zs.max(d.ho);
        let act_cols = wide.max(d.h).max(d.ho);
        s.left_t = a.take(mul(grad_rows, d.r)?)?;
        s.right = a.take(panels_len(d.r, act_cols))?;
        s.out = a.take(if super::weight_grads::any_staged(d) {
            panels_len(grad_rows, act_cols)
        } else {
            0
        })?;
        s.total = a.total;
        Ok(s)
    }
}
