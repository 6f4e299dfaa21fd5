//! The single-step API for streaming inference.

use rnn_reference::quant::{check_quantized_weights, ActivationQuant, QuantizedLayerWeights};
use rnn_reference::{
    check_attention, check_len, check_weights, Direction, Error, LayerWeights, RnnConfig,
};

use crate::arch::DotJob;
use crate::cells::{pre_stride, state_sizes, step_fmas, StateBufs, StepPtrs};
use crate::dispatch::kernels;
use crate::element::{Element, WeightType};
use crate::io::{copy_len, input_f32};
use crate::isa::Isa;
use crate::kernel::walk::Job;
use crate::kernel::{Rows, Store};
use crate::pack::padded;
use crate::packed::{check_int8_widths, coded_set, PackedDirection};
use crate::parallel::{run_team, threads_for, Shared};
use crate::passes::gemm_dot;
use crate::workspace::{q8_scratch, q8_sizes, Workspace};
use crate::Result;

/// Inputs of one step: `x` `[B, I]`, `h` `[B, H_out]`, and `c` `[B, H]` for an LSTM, in
/// element type `T` (`f32`, `half::f16` or `half::bf16`).
#[derive(Clone, Copy, Debug)]
pub struct StepInput<'a, T = f32> {
    /// `x_t`.
    pub x: &'a [T],
    /// `h_{t-1}`.
    pub h: &'a [T],
    /// `c_{t-1}` (LSTM only).
    pub c: Option<&'a [T]>,
    /// AUGRU's attention `[B]` (GRU with `attention` only).
    pub attention: Option<&'a [T]>,
}

/// Outputs of one step: `h` `[B, H_out]` and, for an LSTM, `c` `[B, H]`. They may not
/// alias the inputs (Rust's borrows already guarantee it).
#[derive(Debug)]
pub struct StepOutputMut<'a, T = f32> {
    /// `h_t`.
    pub h: &'a mut [T],
    /// `c_t` (LSTM only).
    pub c: Option<&'a mut [T]>,
}

/// One layer and direction packed for single steps: `(x_t, h, c) -> (h', c')`, weights
/// stored as `W` (`f32`, `half::f16`, `half::bf16` or `i8`, as for
/// [`PackedRnn`](crate::PackedRnn)).
///
/// With `i8` weights a step quantizes its operands at run time by the cell's
/// [`ActivationQuant`]: per row for the crate's own schemes (so a chain of steps gives
/// what [`PackedRnn::forward`](crate::PackedRnn::forward) gives), and for
/// [`OnnxRuntime`](ActivationQuant::OnnxRuntime) `x` over the step's batch (the call's
/// whole input) and `h` over the batch, as the operator does for a one-step call.
///
/// ```
/// use rnn_kernels::{CellKind, LayerWeights, PackedCell, RnnConfig, StepInput,
///     StepOutputMut, Workspace};
/// let (i, h) = (2, 3);
/// let cfg = RnnConfig::new(CellKind::LSTM, i, h);
/// let (w_ih, w_hh) = (vec![0.5f32; 4 * h * i], vec![0.25f32; 4 * h * h]);
/// let cell = PackedCell::from_pytorch(&cfg, &LayerWeights::new(&w_ih, &w_hh))?;
/// let (mut h1, mut c1) = (vec![0.0; h], vec![0.0; h]);
/// let mut ws = Workspace::new();
/// cell.step(&mut ws, 1,
///     StepInput { x: &[1.0, -1.0], h: &[0.0; 3], c: Some(&[0.0; 3]), attention: None },
///     StepOutputMut { h: &mut h1, c: Some(&mut c1) })?;
/// # Ok::<(), rnn_kernels::Error>(())
/// ```
#[derive(Clone)]
pub struct PackedCell<W: WeightType = f32> {
    cfg: RnnConfig,
    set: PackedDirection<W>,
    isa: Option<Isa>,
    /// How int8 products quantize their left operands (unused for float weights).
    act_quant: ActivationQuant,
}

impl PackedCell<f32> {
    /// Validates and packs one `f32` weight set. `cfg` describes this one layer: one
    /// layer, forward (its `input_size` is this layer's input width).
    pub fn from_pytorch(cfg: &RnnConfig, weights: &LayerWeights<'_, f32>) -> Result<Self> {
        Self::pack(cfg, weights)
    }
}

impl PackedCell<i8> {
    /// Packs one int8 weight set as given (codes kept exactly with their scales and
    /// zero points), as [`PackedRnn::<i8>::from_quantized`](crate::PackedRnn::from_quantized)
    /// does for a network. `cfg` as in [`from_pytorch`](PackedCell::from_pytorch).
    pub fn from_quantized(cfg: &RnnConfig, weights: &QuantizedLayerWeights<'_>) -> Result<Self> {
        check_quantized_weights(cfg, std::slice::from_ref(weights))?;
        let owned = coded_set(cfg, 0, weights);
        Self::pack(cfg, &owned.view())
    }

    /// Chooses how activations are quantized at run time (see [`ActivationQuant`]).
    pub fn with_activation_quant(mut self, scheme: ActivationQuant) -> Self {
        self.act_quant = scheme;
        self
    }

    /// The activation scheme steps use.
    pub fn activation_quant(&self) -> ActivationQuant {
        self.act_quant
    }
}

impl<W: WeightType> PackedCell<W> {
    /// Validates and packs one weight set of element type `S`, storing weights as `W`
    /// (rounded to nearest, ties to even, once; for `i8`, quantized symmetrically per
    /// output unit as [`PackedRnn::pack`](crate::PackedRnn::pack) says). `cfg` as in
    /// [`from_pytorch`](PackedCell::from_pytorch).
    pub fn pack<S: Element>(cfg: &RnnConfig, weights: &LayerWeights<'_, S>) -> Result<Self> {
        if cfg.num_layers != 1 {
            return Err(Error::Invalid {
                arg: "num_layers".into(),
                expected: "1 (a cell is one layer; pack each layer separately)".into(),
                actual: cfg.num_layers.to_string(),
            });
        }
        if cfg.direction != Direction::Forward {
            return Err(Error::Invalid {
                arg: "direction".into(),
                expected: "Forward (a cell steps one direction)".into(),
                actual: format!("{:?}", cfg.direction),
            });
        }
        check_weights(cfg, std::slice::from_ref(weights))?;
        if W::QUANTIZED {
            check_int8_widths(cfg)?;
        }
        Ok(PackedCell {
            cfg: *cfg,
            set: PackedDirection::pack(cfg, 0, weights)?,
            isa: None,
            act_quant: ActivationQuant::default(),
        })
    }

    /// Forces an instruction set (an error if the CPU lacks it); `None` = default.
    pub fn with_isa(mut self, isa: Option<Isa>) -> Result<Self> {
        Isa::resolve(isa)?;
        self.isa = isa;
        Ok(self)
    }

    /// The configuration the weights were packed for.
    pub fn config(&self) -> &RnnConfig {
        &self.cfg
    }

    /// One step for `batch` rows. Allocates nothing once `ws` has grown to this batch.
    /// Half-precision inputs widen exactly; outputs are rounded to `T` once.
    pub fn step<T: Element>(
        &self,
        ws: &mut Workspace,
        batch: usize,
        input: StepInput<'_, T>,
        out: StepOutputMut<'_, T>,
    ) -> Result<()> {
        let cfg = &self.cfg;
        if batch == 0 {
            return Err(Error::Invalid {
                arg: "batch".into(),
                expected: "at least 1".into(),
                actual: "0".into(),
            });
        }
        let (i, h, ho) = (cfg.input_size, cfg.hidden_size, cfg.output_size());
        let len = |arg: &str, w: usize| {
            batch.checked_mul(w).ok_or_else(|| Error::Overflow {
                arg: arg.into(),
                what: "batch * width".into(),
            })
        };
        check_len("x", len("x", i)?, input.x.len())?;
        check_len("h", len("h", ho)?, input.h.len())?;
        check_len("h_out", len("h_out", ho)?, out.h.len())?;
        let lstm = cfg.cell.has_cell_state();
        for (name, l) in [
            ("c", input.c.map(<[T]>::len)),
            ("c_out", out.c.as_deref().map(<[T]>::len)),
        ] {
            match (lstm, l) {
                (true, Some(l)) => check_len(name, len(name, h)?, l)?,
                (true, None) => {
                    return Err(Error::Invalid {
                        arg: name.into(),
                        expected: format!("{} elements (an LSTM has a cell state)", batch * h),
                        actual: "None".into(),
                    })
                }
                (false, Some(_)) => {
                    return Err(Error::Invalid {
                        arg: name.into(),
                        expected: format!("None (a {} has no cell state)", cfg.cell.name()),
                        actual: "a slice".into(),
                    })
                }
                (false, None) => {}
            }
        }
        check_attention(cfg, input.attention.map(<[T]>::len), batch, "[B]")?;
        let isa = Isa::resolve(self.isa)?;
        let k = kernels::<W>(isa)?;
        // bf16 inputs and weights on an AVX512-BF16 CPU: the input projection reads the
        // caller's bf16 `x` directly, as in `PackedRnn::forward` (not with an infinite
        // weight: `W_hr` and the peepholes see the flushed values).
        let dot = self
            .set
            .dot_input(&k, input.x)
            .filter(|_| self.set.no_infinite_weight());
        let pre_stride = pre_stride(cfg);
        let pre_len = len("batch", pre_stride)?;
        let (hl, cl, al) = state_sizes(cfg, batch);
        let q8_lens = if W::QUANTIZED {
            q8_sizes(cfg, batch).ok_or_else(|| Error::Overflow {
                arg: "batch".into(),
                what: "batch * input width (int8 operand codes)".into(),
            })?
        } else {
            (0, 0)
        };
        let [pre, h0b, h1b, c0b, c1b, aux, aux2, codes, params] =
            ws.carve([pre_len, hl, hl, cl, cl, al, al, q8_lens.0, q8_lens.1])?;
        let q8 = W::QUANTIZED.then(|| q8_scratch(codes, params, q8_lens, self.act_quant));
        // f32 inputs are used in place; only half inputs need f32 copies.
        let copy = copy_len::<T>;
        let [x32, h32, c32, a32] = ws.carve_io([
            if dot.is_some() {
                0
            } else {
                copy(input.x.len())
            },
            copy(input.h.len()),
            copy(input.c.map_or(0, <[T]>::len)),
            copy(input.attention.map_or(0, <[T]>::len)),
        ])?;
        // SAFETY: each io region was carved with the length of the slice it receives.
        let (x, hin, cin, att) = unsafe {
            (
                if dot.is_some() {
                    &[]
                } else {
                    input_f32(input.x, x32)
                },
                input_f32(input.h, h32),
                input.c.map(|c| input_f32(c, c32)),
                input.attention.map(|a| input_f32(a, a32)),
            )
        };
        let (hs, ps) = (padded(h), padded(ho));
        let st = StateBufs {
            h_prev: h0b,
            h_next: h1b,
            c_prev: c0b,
            c_next: c1b,
            aux,
            aux2,
        };
        // SAFETY: every buffer was carved at the size `state_sizes` / `pre_len` give
        // for `batch`; the user slices were checked above to hold `batch` rows.
        unsafe {
            std::ptr::write_bytes(st.h_prev, 0, hl);
            std::ptr::write_bytes(st.c_prev, 0, cl);
            for b in 0..batch {
                std::ptr::copy_nonoverlapping(hin.as_ptr().add(b * ho), st.h_prev.add(b * ps), ho);
                if let Some(c) = cin {
                    std::ptr::copy_nonoverlapping(c.as_ptr().add(b * h), st.c_prev.add(b * hs), h);
                }
            }
            let x_rows = Rows::strided(x.as_ptr(), i, batch).with_q8(q8);
            let x_bf16 = Rows {
                base: input.x.as_ptr().cast::<u16>(),
                stride_t: 0,
                stride_b: i,
                batch,
                q8: None,
            };
            let want = threads_for(
                step_fmas(cfg, batch),
                self.set.cell.panels(),
                rayon::current_num_threads(),
            );
            let shared = Shared((x_rows, x_bf16, pre, st));
            run_team(want, &|team| {
                let (x_rows, x_bf16, pre, st) = shared.get();
                // Buffers as above; members write disjoint panels and meet at a
                // barrier after each pass (inside the enclosing unsafe block). With
                // `dot`, `x` is bf16 (`T` is bf16) and was checked to hold `batch` rows.
                {
                    let store = Store {
                        out: pre,
                        stride: pre_stride,
                        bias: self.set.bias.as_slice().as_ptr(),
                    };
                    match dot {
                        Some((f, pairs)) => {
                            let job = DotJob {
                                a: x_bf16,
                                nrows: batch,
                                w: pairs.view(),
                            };
                            gemm_dot(team, f, &job, &store)
                        }
                        None => {
                            let job = Job {
                                a: x_rows,
                                nrows: batch,
                                w: self.set.w_ih.view(),
                            };
                            (k.gemm)(team, &job, &store)
                        }
                    }
                    // AUGRU: `att` was checked to hold `batch` values.
                    let sp = StepPtrs {
                        q8,
                        att: att.map_or(std::ptr::null(), <[f32]>::as_ptr),
                        att_stride: 1,
                        ..StepPtrs::new(cfg, 0, batch, pre, &st, false)
                    };
                    (k.step)(&self.set.cell, &sp, team);
                }
            });
            for b in 0..batch {
                let src = std::slice::from_raw_parts(st.h_next.add(b * ps), ho);
                T::slice_from_f32(src, &mut out.h[b * ho..(b + 1) * ho]);
            }
            if let Some(c_out) = out.c {
                for b in 0..batch {
                    let src = std::slice::from_raw_parts(st.c_next.add(b * hs), h);
                    T::slice_from_f32(src, &mut c_out[b * h..(b + 1) * h]);
                }
            }
        }
        Ok(())
    }
}
