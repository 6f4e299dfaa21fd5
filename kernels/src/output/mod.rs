//! The output layer `y = g(W_o·h + b_o)` over a whole sequence's output
//! ([`PackedOutput`]): one product over all `T·B` rows (the recurrent layers' panels
//! and micro-kernels, split by panels among threads), then one elementwise pass
//! (identity, sigmoid, or a numerically stable softmax per row; split by rows).
//! The definition is [`rnn_reference::output_layer`].

mod finish;
mod outer;

use std::marker::PhantomData;
use std::sync::OnceLock;

use rnn_reference::quant::{check_quantized_output, ActivationQuant, QuantizedMatrix};
use rnn_reference::{check_len, OutputActivation, OutputConfig};

use crate::aligned::AlignedVec;
use crate::arch::{dispatch, Backend, ForBackend};
use crate::dispatch::GemmFn;
use crate::element::{Element, OutputTables, Storage, TableFamily, WeightType};
use crate::io::input_f32;
use crate::isa::Isa;
use crate::kernel::walk::Job;
use crate::kernel::walk_i8::Q8Scratch;
use crate::kernel::{AddStore, Rows, Store};
use crate::pack::runtime::{
    gather_blocks, panels_len, slice_of, striped, sum_rows, transpose_panels, BlockCols, RowSource,
    Transpose, TransposeBlocksFn, KC, WIDTH,
};
use crate::pack::{pack_vector, Panels, LANES};
use crate::packed::{coded, plain};
use crate::parallel::{run_team, threads_for, Share, Shared, Team};
use crate::workspace::{q8_scratch, Workspace};
use crate::{passes, Error, Result};

use finish::{BackFinish, Finish};
use outer::{OuterRows, OUTER_MAX_ROWS};

/// An output layer packed once: `W_o` `[O, I]` (PyTorch `nn.Linear`'s layout) and
/// `b_o` `[O]`, weights stored as `W` (`f32`, `half::f16` or `half::bf16`; sums and
/// the activation in `f32`), or as int8 codes (`i8`: the product is the integer one
/// on inputs quantized at run time, as PyTorch's `quantize_dynamic` runs an
/// `nn.Linear`; see [`PackedOutput::<i8>::from_quantized`]). The backward pass is for
/// the float types only.
///
/// ```
/// use rnn_kernels::{OutputActivation, OutputConfig, PackedOutput, Workspace};
/// let cfg = OutputConfig::new(3, 2, OutputActivation::Softmax);
/// let w = [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0];
/// let out = PackedOutput::<f32>::pack(&cfg, &w, Some(&[0.0, 0.0])).unwrap();
/// // Two rows of an RNN's output (any layout: rows are independent).
/// let h = [2.0f32, 2.0, 9.0, 0.0, 0.0, 9.0];
/// let mut y = [0.0f32; 4];
/// out.forward(&mut Workspace::new(), 2, &h, &mut y).unwrap();
/// assert_eq!(y, [0.5, 0.5, 0.5, 0.5]);
/// ```
#[derive(Clone)]
pub struct PackedOutput<W: WeightType = f32> {
    cfg: OutputConfig,
    w: Panels<W, 4>,
    bias: AlignedVec,
    isa: Option<Isa>,
    /// How an int8 product quantizes its input rows (unused for float weights).
    act_quant: ActivationQuant,
    /// `W_oᵀ` as f32 panels (`k` = the forward panels' packed columns, columns `I`) in
    /// slices of `KC` rows of `k`, built by the first [`backward`](PackedOutput::backward).
    w_t: OnceLock<AlignedVec>,
}

impl<W: WeightType> PackedOutput<W> {
    /// Packs `w` (`[O, I]`) and `b` (`[O]`, or `None` for no bias), given as `f32`,
    /// `half::f16` or `half::bf16`, rounding weights to `W` (to nearest, ties to even).
    /// For `W = i8` each output unit's row of `w` is quantized symmetrically, as
    /// [`quantize_matrix`](rnn_reference::quant::quantize_matrix) does (`s = max |w| /
    /// 127`, codes `round_half_even(w / s)`).
    pub fn pack<S: Element>(cfg: &OutputConfig, w: &[S], b: Option<&[S]>) -> Result<Self> {
        cfg.check_weights(w, b)?;
        let (i, o) = (cfg.in_features, cfg.out_features);
        let panels = Panels::pack(w, o, i, &[0]);
        let zeros = vec![S::default(); o];
        let bias = pack_vector(b.unwrap_or(&zeros), o, &[0], panels.cols());
        Ok(PackedOutput {
            cfg: *cfg,
            w: panels,
            bias,
            isa: None,
            act_quant: ActivationQuant::default(),
            w_t: OnceLock::new(),
        })
    }

    /// Forces an instruction set (`None`: the process default, see [`Isa`]); an error
    /// if this CPU lacks it.
    pub fn with_isa(mut self, isa: Option<Isa>) -> Result<Self> {
        Isa::resolve(isa)?;
        self.isa = isa;
        Ok(self)
    }

    /// The layer's shape and activation.
    pub fn config(&self) -> &OutputConfig {
        &self.cfg
    }

    /// `y = g(W_o·x + b_o)` for `rows` rows: `x` is `[rows, I]` (an RNN's `y` in either
    /// layout, `rows = T·B`), `y` is `[rows, O]`, both `f32`, `half::f16` or
    /// `half::bf16` (half values widen exactly; `y` rounds once, when written). Uses
    /// the rayon pool's threads; results do not depend on their number. No allocation
    /// once `ws` has grown for the shape. With int8 weights the rows of `x` are
    /// quantized as [`activation_quant`](Self::activation_quant) says, and the result
    /// is [`output_layer_quantized`](rnn_reference::quant::output_layer_quantized)'s.
    pub fn forward<T: Element>(
        &self,
        ws: &mut Workspace,
        rows: usize,
        x: &[T],
        y: &mut [T],
    ) -> Result<()> {
        let (x_len, y_len) = self.cfg.check_rows(rows, x)?;
        check_len("y", y_len, y.len())?;
        // When `O` fills whole panels the product's rows are `y`'s rows: it writes them
        // in place and the pass finishes them there (no scratch, no copy).
        let in_place = self.w.cols() == self.cfg.out_features;
        let z_len = if in_place {
            0
        } else {
            rows.checked_mul(self.w.cols())
                .ok_or_else(|| scratch_overflow("rows * padded out_features"))?
        };
        let isa = Isa::resolve(self.isa)?;
        let table = W::output_kernels(isa)?;
        // int8: room for the codes of every row (4-byte groups) and their parameters
        // (three floats each, and one more slot for a shared block's); nothing for
        // float weights.
        let q8_lens = if W::QUANTIZED {
            let words = self.cfg.in_features.div_ceil(4);
            let codes = rows.checked_mul(words);
            let params = rows.checked_add(1).and_then(|r| r.checked_mul(3));
            codes
                .zip(params)
                .ok_or_else(|| scratch_overflow("rows * int8 codes"))?
        } else {
            (0, 0)
        };
        let [z, codes, params] = ws.carve([z_len, q8_lens.0, q8_lens.1])?;
        let q8 = W::QUANTIZED.then(|| q8_scratch(codes, params, q8_lens, self.act_quant));
        if let (Some(x), Some(y)) = (T::as_f32(x), T::as_f32_mut(y)) {
            let y = y.as_mut_ptr();
            self.run(&table, rows, x, if in_place { y } else { z }, y, q8);
            return Ok(());
        }
        let [x32, y32] = ws.carve_io([x_len, y_len])?;
        // SAFETY: each region was carved with the length of the slice it receives,
        // disjoint from each other and from `z`.
        let (x32, y32) = unsafe {
            (
                input_f32(x, x32),
                std::slice::from_raw_parts_mut(y32, y_len),
            )
        };
        let y32p = y32.as_mut_ptr();
        self.run(&table, rows, x32, if in_place { y32p } else { z }, y32p, q8);
        T::slice_from_f32(y32, y);
        Ok(())
    }

    /// How many threads a call on `rows` rows is worth (the products' size against
    /// the panels to split).
    fn threads(&self, rows: usize) -> usize {
        let (i, o) = (self.cfg.in_features, self.cfg.out_features);
        threads_for(
            rows.saturating_mul(i).saturating_mul(o),
            self.w.panels(),
            rayon::current_num_threads(),
        )
    }

    /// The product into `z` (`rows` rows of `w.cols()` floats; int8 weights quantize
    /// `x` into `q8` first), then the elementwise pass into `y` (`rows * O` floats, the
    /// caller's checked slice or carved scratch). `z` may be `y` itself when
    /// `w.cols() == O`: each row is then finished in place.
    fn run(
        &self,
        k: &OutputKernels<W>,
        rows: usize,
        x: &[f32],
        z: *mut f32,
        y: *mut f32,
        q8: Option<Q8Scratch>,
    ) {
        let (i, o) = (self.cfg.in_features, self.cfg.out_features);
        let z_stride = self.w.cols();
        let job = Job {
            a: Rows::strided(x.as_ptr(), i, rows).with_q8(q8),
            nrows: rows,
            w: self.w.view(),
        };
        let store = Store {
            out: z,
            stride: z_stride,
            bias: self.bias.as_slice().as_ptr(),
        };
        let ptrs = Shared((z, y));
        let activation = self.cfg.activation;
        let want = self.threads(rows);
        let body = |team: &Team<'_>| {
            let (z, y) = ptrs.get();
            // SAFETY: `x` holds rows * I floats (checked), `z` rows * z_stride (carved,
            // or `y` when z_stride = O) and the bias z_stride floats (packed); an int8
            // job's scratch was carved for `rows` rows of I codes; the product ends in a
            // barrier, so no member finishes a row another is still writing.
            unsafe { (k.gemm)(team, &job, &store) };
            let mine = team.chunk(rows, usize::MAX);
            let op = Finish {
                z,
                z_stride,
                y,
                o,
                rows: mine,
                activation,
            };
            // SAFETY: every member finishes its own rows of `z` (rows * z_stride floats,
            // z_stride >= O rounded up to 16) into `y` (rows * O, checked).
            unsafe { (k.finish)(op) };
        };
        run_team(want, &body);
    }
}

impl PackedOutput<i8> {
    /// Packs int8 weights as given: `w` `[O, I]` codes with one scale and zero point
    /// per tensor or per output unit (PyTorch's dynamic quantized `Linear`, e.g.
    /// `torch.ao.nn.quantized.dynamic.Linear`'s `weight()` unpacked to codes, scales and
    /// zero points), codes kept exactly; `b` `[O]` in `f32`.
    ///
    /// ```
    /// use rnn_kernels::{ActivationQuant, OutputActivation, OutputConfig, PackedOutput};
    /// use rnn_kernels::{QuantizedMatrix, Workspace};
    /// use rnn_reference::quant::output_layer_quantized;
    /// let cfg = OutputConfig::new(2, 1, OutputActivation::Identity);
    /// let w = QuantizedMatrix { codes: &[2, -1], scales: &[0.25], zero_points: None };
    /// let out = PackedOutput::<i8>::from_quantized(&cfg, &w, None).unwrap();
    /// let mut y = [0.0f32];
    /// out.forward(&mut Workspace::new(), 1, &[-1.0f32, 1.0], &mut y).unwrap();
    /// let want = output_layer_quantized(&cfg, &w, None, 1, &[-1.0, 1.0], ActivationQuant::PerRow);
    /// assert_eq!(f64::from(y[0]), want.unwrap()[0]);
    /// ```
    pub fn from_quantized(
        cfg: &OutputConfig,
        w: &QuantizedMatrix<'_>,
        b: Option<&[f32]>,
    ) -> Result<Self> {
        check_quantized_output(cfg, w, b)?;
        Self::pack(cfg, &coded(w, cfg.in_features), b.map(plain).as_deref())
    }

    /// Chooses how the input rows are quantized at run time ([`ActivationQuant`]; the
    /// default, [`PerRow`](ActivationQuant::PerRow), gives each row its own range;
    /// [`OnnxRuntime`](ActivationQuant::OnnxRuntime) one range over all the call's
    /// rows, as ONNX Runtime's `DynamicQuantizeMatMul` does).
    pub fn with_activation_quant(mut self, scheme: ActivationQuant) -> Self {
        self.act_quant = scheme;
        self
    }

    /// The activation scheme calls use.
    pub fn activation_quant(&self) -> ActivationQuant {
        self.act_quant
    }
}

impl<W: Element> PackedOutput<W> {
    /// The backward pass of [`forward`](Self::forward), as
    /// [`rnn_reference::output_layer_backward`] defines it: from the call's input `x`
    /// `[rows, I]`, its output `y` and `dy = ∂L/∂y` (`[rows, O]`), writes `dx = ∂L/∂x`
    /// `[rows, I]`, `dw = ∂L/∂W_o` `[O, I]` and, if given, `db = ∂L/∂b_o` `[O]`
    /// (overwritten, summed over the rows). Two products over all rows, `dx` and `dw`
    /// (with `db` as its ones row where `I` does not fill whole panels, else the sums
    /// of `dzᵀ`'s rows), split by panels among the rayon pool's threads; over at most 4 rows
    /// `dw` is that many outer products instead, split by its rows. Results do not
    /// depend on the number of threads. The first call builds `W_oᵀ` (f32, kept).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        ws: &mut Workspace,
        rows: usize,
        x: &[f32],
        y: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        dw: &mut [f32],
        mut db: Option<&mut [f32]>,
    ) -> Result<()> {
        let (i, o) = (self.cfg.in_features, self.cfg.out_features);
        let (x_len, y_len) = self.cfg.check_rows(rows, x)?;
        check_len("y", y_len, y.len())?;
        check_len("dy", y_len, dy.len())?;
        check_len("dx", x_len, dx.len())?;
        check_len("dw", o * i, dw.len())?;
        if let Some(db) = db.as_deref() {
            check_len("db", o, db.len())?;
        }
        let zs = self.w.cols();
        let ip = i.div_ceil(WIDTH) * WIDTH;
        let scratch = |a: usize, b: usize| {
            a.checked_mul(b)
                .ok_or_else(|| scratch_overflow("the backward's products"))
        };
        let activation = self.cfg.activation;
        // Where `O` and `I` fill whole panels, `dz` is `dy` itself for the identity
        // (only read from then on) and the `dx` product writes the caller's `dx`.
        let dz_is_dy = activation == OutputActivation::Identity && zs == o;
        let dx_direct = ip == i;
        // Over a few rows, ∂W_o = dzᵀ · x is a sum of that many outer products,
        // written row by row into the caller's `dw` (`OuterRows`). A 4096 x 1024
        // layer's whole backward, 1 thread, avx2, Zen 3, 3 alternating runs: at 1 row
        // 4.2-5.5 ms as a product, 1.5-2.5 ms so; at 4 rows 5.0-5.7 -> 2.9-4.2 ms.
        let outer = rows <= OUTER_MAX_ROWS;
        // Where `I` fills whole panels, ∂W_o = dzᵀ · x is written straight into the
        // caller's `dw` (`[O, I]`, panels of `I`); otherwise as ∂W_oᵀ = xᵀ · dz into a
        // scratch, then transposed (with `O` columns padded to panels there).
        let dw_direct = dx_direct && !outer;
        let sizes = if outer {
            [
                if dz_is_dy { 0 } else { scratch(rows, zs)? },  // dz
                if dx_direct { 0 } else { scratch(rows, ip)? }, // dx, padded
                0,
                0,
                0,
            ]
        } else if dw_direct {
            [
                if dz_is_dy { 0 } else { scratch(rows, zs)? }, // dz
                0,                                             // dx is direct too
                scratch(o, rows)?,                             // dzᵀ
                scratch(rows, ip)?,                            // x as right panels
                0,
            ]
        } else {
            [
                if dz_is_dy { 0 } else { scratch(rows, zs)? }, // dz
                scratch(rows, ip)?,                            // dx, padded
                scratch(i + 1, rows)?,                         // xᵀ and a ones row
                scratch(rows, zs)?,                            // dz as right panels
                scratch(i + 1, zs)?,                           // ∂W_oᵀ and ∂b_o
            ]
        };
        let isa = Isa::resolve(self.isa)?;
        let k = W::output_kernels(isa)?;
        let w_t = self.w_t.get_or_init(|| {
            let mut t = AlignedVec::zeros(panels_len(zs, i));
            // SAFETY: `t` holds `panels_len(zs, I)` floats: `zs` rows (the forward
            // panels' packed columns) by the `I` columns `map` reaches, in panels.
            unsafe {
                transpose_panels(
                    &self.w,
                    t.as_mut_slice().as_mut_ptr(),
                    zs,
                    0,
                    |kk| kk,
                    Share::ALL,
                    k.blocks,
                )
            };
            slice_major(t.as_slice(), zs, ip / WIDTH)
        });
        // `lhs`: the weight gradient's left operand, dzᵀ or [xᵀ; 1].
        let [dz, dxs, lhs, right, out] = ws.carve(sizes)?;
        // `dy` as `dz` is never written (the elementwise pass is skipped for it).
        let dz = if dz_is_dy { dy.as_ptr().cast_mut() } else { dz };
        let dxs = if dx_direct { dx.as_mut_ptr() } else { dxs };
        let ptrs = Shared((dz, dxs, lhs, right, out, dx.as_mut_ptr()));
        let dw_ptr = Shared(dw.as_mut_ptr());
        let db_ptr = Shared(
            db.as_deref_mut()
                .map_or(std::ptr::null_mut(), <[f32]>::as_mut_ptr),
        );
        let want = self.threads(rows);
        let body = |team: &Team<'_>| {
            let (dz, dxs, lhs, right, out, dx) = ptrs.get();
            let mine = team.chunk(rows, usize::MAX);
            if !dz_is_dy {
                let op = BackFinish {
                    y: y.as_ptr(),
                    dy: dy.as_ptr(),
                    dz,
                    dz_stride: zs,
                    o,
                    rows: mine.clone(),
                    activation,
                };
                // SAFETY: each member's rows of `y`, `dy` (checked) and `dz` (carved).
                unsafe { (k.back)(op) };
            }
            if outer {
                // `dz` (every member's rows) is read by the products below.
            } else if dw_direct {
                // This member's rows of dzᵀ (disjoint columns of it), and its panels of
                // `x` as the right operand (k = the rows).
                let src = RowSource::plain(dz, zs, o);
                let op = Transpose::plain(src, mine.clone(), lhs, rows);
                // SAFETY: `dz` holds rows * zs floats (zs >= O), `lhs` O * rows; `k`
                // is the detected ISA's table.
                unsafe { (k.transpose)(op) };
                let blocks = BlockCols {
                    base: x.as_ptr(),
                    stride: i,
                    tile_stride: LANES,
                    pick: &[0],
                    blocks: i / LANES,
                };
                let panels = blocks.panels();
                // SAFETY: `x` holds rows * I floats, I a whole number of panels;
                // `right` rows * I = panels_len(rows, I).
                unsafe { gather_blocks(&blocks, rows, KC, team.chunk(panels, panels), right) };
            } else {
                // This member's rows of xᵀ (with the ones row): disjoint columns of `lhs`.
                let src = RowSource::plain(x.as_ptr(), i, i);
                let op = Transpose {
                    ones: true,
                    ..Transpose::plain(src, mine.clone(), lhs, rows)
                };
                // SAFETY: `x` holds rows * I floats, `lhs` (I + 1) * rows; `k` is the
                // detected ISA's table.
                unsafe { (k.transpose)(op) };
            }
            team.sync();
            // dx = dz · W_o (k = zs: dz is zero past O, W_oᵀ's rows there are zero), in
            // slices of `KC` of the k rows (a long k, a wide O, streamed the panels
            // from memory once per row block).
            let fns = (k.gemm_f32, k.gemm_add);
            // SAFETY: `dz` rows hold zs floats, `w_t` is slice-major (`slice_major`)
            // with ip / 64 panels, `dxs` rows * ip.
            unsafe {
                passes::gemm_k_sliced(
                    team,
                    fns,
                    (dz.cast_const(), zs, rows),
                    w_t.as_slice().as_ptr(),
                    zs,
                    ip / WIDTH,
                    dxs,
                    ip,
                )
            };
            for r in mine.clone().filter(|_| !dx_direct) {
                // SAFETY: row `r` of `dxs` (ip >= I floats) and of the caller's `dx`.
                unsafe { std::ptr::copy_nonoverlapping(dxs.add(r * ip), dx.add(r * i), i) };
            }
            if outer {
                let op = OuterRows {
                    dz: dz.cast_const(),
                    dz_stride: zs,
                    x: x.as_ptr(),
                    i,
                    rows,
                    dw: dw_ptr.get(),
                    outs: team.chunk(o, usize::MAX),
                };
                // SAFETY: `dz` holds `rows` rows of `zs >= O` floats (written before
                // the `dx` product's barriers), `x` `rows` rows of `I`, `dw` `O` rows
                // of `I`; 1 <= rows <= OUTER_MAX_ROWS; members take disjoint rows of it.
                unsafe { (k.outer)(op) };
                return;
            }
            if dw_direct {
                // ∂W_o = dzᵀ · x, k = the rows, into the caller's `dw`.
                // SAFETY: `lhs` (dzᵀ) holds O rows of `rows` floats, `right` the
                // slice-major panels of `x` gathered above, `dw` O rows of I floats.
                unsafe {
                    passes::gemm_k_sliced(
                        team,
                        fns,
                        (lhs.cast_const(), rows, o),
                        right.cast_const(),
                        rows,
                        i / WIDTH,
                        dw_ptr.get(),
                        i,
                    )
                };
                let db = db_ptr.get();
                if !db.is_null() {
                    // ∂b_o = the rows of dzᵀ summed, the members sharing them.
                    // SAFETY: `lhs` holds O rows of `rows` floats, `db` O floats.
                    unsafe { sum_rows(lhs, rows, o, db, team.share()) };
                }
                return;
            }
            // ∂W_oᵀ (rows 0..I) and ∂b_o (row I) = [xᵀ; 1] · dz, k = the rows.
            let blocks = BlockCols {
                base: dz,
                stride: zs,
                tile_stride: LANES,
                pick: &[0],
                blocks: zs / LANES,
            };
            let panels = blocks.panels();
            // SAFETY: `right` holds rows * zs = panels_len(rows, zs) floats.
            unsafe { gather_blocks(&blocks, rows, KC, team.chunk(panels, panels), right) };
            team.sync();
            // SAFETY: `lhs` rows hold `rows` floats, `right` the slice-major panels
            // gathered above, `out` (I + 1) * zs.
            unsafe {
                passes::gemm_k_sliced(
                    team,
                    fns,
                    (lhs.cast_const(), rows, i + 1),
                    right.cast_const(),
                    rows,
                    panels,
                    out,
                    zs,
                )
            };
        };
        run_team(want, &body);
        if dw_direct {
            return Ok(());
        }
        if outer {
            if let Some(db) = db {
                // ∂b_o = Σ_r dz[r], in row order (whatever the thread count).
                let dz = ptrs.get().0.cast_const();
                db.fill(0.0);
                for r in 0..rows {
                    // SAFETY: row `r` of `dz` (rows * zs floats, zs >= O).
                    let row = unsafe { std::slice::from_raw_parts(dz.add(r * zs), o) };
                    for (d, &v) in db.iter_mut().zip(row) {
                        *d += v;
                    }
                }
            }
            return Ok(());
        }
        // SAFETY: `out` holds (I + 1) * zs floats, written by the last product.
        let out = unsafe { std::slice::from_raw_parts(ptrs.get().4, (i + 1) * zs) };
        // ∂W_o is ∂W_oᵀ transposed (in blocks: column by column over all rows, every
        // read was a cache miss): `out`'s first `I` rows, `O` columns each.
        let src = RowSource::plain(out.as_ptr(), zs, o);
        let op = Transpose::plain(src, 0..i, dw.as_mut_ptr(), i);
        // SAFETY: `out` holds `I` rows of `zs >= O` floats; `dw` holds `O * I` floats,
        // `O` rows of `ld = I`; `k` is the detected ISA's table.
        unsafe { (k.transpose)(op) };
        if let Some(db) = db {
            db.copy_from_slice(&out[i * zs..i * zs + o]);
        }
        Ok(())
    }
}

/// Panels of `k` rows (`panels` of them, in the layout of `runtime::striped`) laid out
/// again in `KC`-row slices of `k`, as `gather_blocks` lays out its output: the slice
/// from row `k0` (`n` rows) at `k0 · panels · 64`, its panel `q` at `q · n · 64`
/// within it, each a panel of `n` rows in the same layout.
fn slice_major(t: &[f32], k: usize, panels: usize) -> AlignedVec {
    let mut out = AlignedVec::zeros(t.len());
    let dst = out.as_mut_slice();
    // The pieces of a panel whose rows are contiguous: the whole panel's rows, or each
    // vector's stripe.
    let (pieces, piece) = if striped() {
        (WIDTH / LANES, LANES)
    } else {
        (1, WIDTH)
    };
    for k0 in (0..k).step_by(KC) {
        let (_, n) = slice_of(k0, k, KC);
        for q in 0..panels {
            for j in 0..pieces {
                let from = q * k * WIDTH + (j * k + k0) * piece;
                let to = (k0 * panels + q * n) * WIDTH + j * n * piece;
                dst[to..to + n * piece].copy_from_slice(&t[from..from + n * piece]);
            }
        }
    }
    out
}

/// The workspace a call on this many rows needs does not fit `usize`.
fn scratch_overflow(what: &str) -> Error {
    Error::Overflow {
        arg: "rows".into(),
        what: format!("{what} (output layer scratch)"),
    }
}

/// The functions of one backend for weights `W`. (`pub` in a private module:
/// unnameable outside the crate, and as visible as the sealed
/// [`Storage::output_kernels`] that returns it.)
pub struct OutputKernels<W: Storage> {
    gemm: GemmFn<W>,
    finish: unsafe fn(Finish),
    /// The backward's products (f32 panels built at run time; the weight gradient's
    /// later slices added by `gemm_add`) and elementwise pass.
    gemm_f32: passes::GemmF32,
    gemm_add: passes::GemmAddF32,
    back: unsafe fn(BackFinish),
    /// The weight gradient over a few rows (`OuterRows`).
    outer: unsafe fn(OuterRows),
    /// The backward's runtime transposes, and the whole blocks of `W_oᵀ`.
    transpose: passes::TransposeFn,
    blocks: TransposeBlocksFn,
}

/// What each element type's [`Storage::output_kernels`] runs, at that type.
impl TableFamily for OutputTables {
    type Of<W: Storage> = OutputKernels<W>;

    fn build<W: Storage>(isa: Isa) -> Result<OutputKernels<W>> {
        Ok(dispatch(isa.detected()?, Table::<W>(PhantomData)))
    }
}

/// Builds the [`OutputKernels`] of the backend `dispatch` picks.
struct Table<W>(PhantomData<W>);

impl<W: Storage> ForBackend for Table<W> {
    type Output = OutputKernels<W>;

    fn call<B: Backend>(self) -> OutputKernels<W> {
        OutputKernels {
            gemm: passes::gemm::<B, W, Store>,
            finish: finish_rows::<B>,
            gemm_f32: passes::gemm::<B, f32, Store>,
            gemm_add: passes::gemm::<B, f32, AddStore>,
            back: back_rows::<B>,
            outer: outer_rows::<B>,
            transpose: passes::transpose::<B>,
            blocks: passes::transpose_blocks::<B>,
        }
    }
}

/// Runs the elementwise pass with backend `B`.
///
/// # Safety
/// `B` came from `arch::dispatch`; `op` meets [`Finish`]'s contract.
unsafe fn finish_rows<B: Backend>(op: Finish) {
    // SAFETY: forwarded.
    unsafe { B::run_op(op) }
}

/// Runs the backward's elementwise pass with backend `B`.
///
/// # Safety
/// `B` came from `arch::dispatch`; `op` meets [`BackFinish`]'s contract.
unsafe fn back_rows<B: Backend>(op: BackFinish) {
    // SAFETY: forwarded.
    unsafe { B::run_op(op) }
}

/// Runs the weight gradient's outer products with backend `B`.
///
/// # Safety
/// `B` came from `arch::dispatch`; `op` meets [`OuterRows`]'s contract.
unsafe fn outer_rows<B: Backend>(op: OuterRows) {
    // SAFETY: forwarded.
    unsafe { B::run_op(op) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnn_reference::OutputActivation;

    /// Identity with a zero bias on the identity matrix copies `x`, at every ISA and
    /// for widths on both sides of a panel.
    #[test]
    fn identity_copies_every_isa() {
        for n in [1usize, 15, 16, 17, 64, 65, 130] {
            let cfg = OutputConfig::new(n, n, OutputActivation::Identity);
            let mut w = vec![0.0f32; n * n];
            for k in 0..n {
                w[k * n + k] = 1.0;
            }
            let x: Vec<f32> = (0..3 * n).map(|v| v as f32 - 7.5).collect();
            for isa in Isa::available() {
                let out = PackedOutput::<f32>::pack(&cfg, &w, None)
                    .unwrap()
                    .with_isa(Some(isa))
                    .unwrap();
                let mut y = vec![f32::NAN; 3 * n];
                out.forward(&mut Workspace::new(), 3, &x, &mut y).unwrap();
                assert_eq!(y, x, "{isa:?} n = {n}");
            }
        }
    }
}
