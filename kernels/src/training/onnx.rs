//! Gradients in ONNX layout: the backward into PyTorch-layout scratch, then each block
//! copied to its ONNX place (gradients permute exactly like the weights:
//! [`onnx_gate_source`]).

use rnn_reference::{check_len, onnx_gate_source, Error, RnnConfig, ONNX_PEEPHOLE_SOURCE};

use super::{
    check_grads, start_backward, GradientsMut, LayerGradsMut, OutputGrads, TrainingWorkspace,
};
use crate::element::Element;
use crate::packed::PackedRnn;
use crate::workspace::carve;
use crate::Result;

/// Where [`PackedRnn::backward_onnx`] writes: the gradients of `x`, `h0`, `c0` (as in
/// [`GradientsMut`]) and of the ONNX operator's weights, with their shapes and gate
/// orders: `dW` `[D, G*H, I]`, `dR` `[D, G*H, H]`, `dB` `[D, 2*G*H]` (input biases then
/// recurrent biases), `dP` `[D, 3*H]` (peephole LSTM, order i, o, f).
#[derive(Debug)]
pub struct OnnxGradsMut<'a> {
    /// `∂L/∂x`.
    pub dx: Option<&'a mut [f32]>,
    /// `∂L/∂h0` `[D, B, H]`.
    pub dh0: Option<&'a mut [f32]>,
    /// `∂L/∂c0` `[D, B, H]` (LSTM).
    pub dc0: Option<&'a mut [f32]>,
    /// `dW`.
    pub dw: &'a mut [f32],
    /// `dR`.
    pub dr: &'a mut [f32],
    /// `dB` (optional).
    pub db: Option<&'a mut [f32]>,
    /// `dP` (peephole LSTM).
    pub dp: Option<&'a mut [f32]>,
}

/// Checks the ONNX arrays' lengths (the config must be ONNX's: one layer, no
/// projection).
fn check(cfg: &RnnConfig, out: &OnnxGradsMut<'_>) -> Result<()> {
    if cfg.num_layers != 1 {
        return Err(Error::Invalid {
            arg: "num_layers".into(),
            expected: "1 (ONNX operators are single-layer)".into(),
            actual: cfg.num_layers.to_string(),
        });
    }
    if let Some(p) = cfg.cell.proj_size() {
        return Err(Error::Invalid {
            arg: "proj_size".into(),
            expected: "None (ONNX LSTM has no projection)".into(),
            actual: p.to_string(),
        });
    }
    if cfg.cell.has_attention() {
        return Err(Error::Invalid {
            arg: "cell".into(),
            expected: "a GRU without attention (ONNX has no AUGRU)".into(),
            actual: format!("{:?}", cfg.cell),
        });
    }
    if cfg.cell.cifg() {
        return Err(Error::Invalid {
            arg: "cell".into(),
            expected: "an LSTM with four gate blocks (ONNX has no CIFG)".into(),
            actual: format!("{:?}", cfg.cell),
        });
    }
    if cfg.cell.layer_norm() {
        return Err(Error::Invalid {
            arg: "cell".into(),
            expected: "an LSTM without layer_norm (ONNX has no layer-norm LSTM)".into(),
            actual: format!("{:?}", cfg.cell),
        });
    }
    let (d, gh, h) = (
        cfg.num_directions(),
        cfg.gates() * cfg.hidden_size,
        cfg.hidden_size,
    );
    check_len("dW", d * gh * cfg.input_size, out.dw.len())?;
    check_len("dR", d * gh * h, out.dr.len())?;
    if let Some(b) = out.db.as_deref() {
        check_len("dB", d * 2 * gh, b.len())?;
    }
    match (cfg.cell.has_peephole(), out.dp.as_deref()) {
        (true, Some(p)) => check_len("dP", d * 3 * h, p.len()),
        (false, None) => Ok(()),
        (true, None) => Err(Error::Invalid {
            arg: "dP".into(),
            expected: "the peephole gradient [D, 3*H] (the cell has peepholes)".into(),
            actual: "None".into(),
        }),
        (false, Some(_)) => Err(Error::Invalid {
            arg: "dP".into(),
            expected: "None (the cell has no peephole)".into(),
            actual: "a slice".into(),
        }),
    }
}

/// Copies `src` (`blocks` blocks of `block` values, PyTorch order) into `dst` with block
/// `k` at ONNX position `order[k]`.
fn permute(src: &[f32], dst: &mut [f32], block: usize, order: &[usize]) {
    for (k, &o) in order.iter().enumerate() {
        dst[o * block..(o + 1) * block].copy_from_slice(&src[k * block..(k + 1) * block]);
    }
}

/// One direction's PyTorch-layout gradient views (biases if `bias`, the peephole if
/// `dp` is not empty).
fn set<'a>(
    (dw_ih, dw_hh): (&'a mut [f32], &'a mut [f32]),
    (db_ih, db_hh): (&'a mut [f32], &'a mut [f32]),
    dp: &'a mut [f32],
    bias: bool,
) -> LayerGradsMut<'a> {
    LayerGradsMut {
        dw_ih,
        dw_hh,
        db_ih: bias.then_some(db_ih),
        db_hh: bias.then_some(db_hh),
        dw_hr: None,
        dpeephole: (!dp.is_empty()).then_some(dp),
        dlayer_norm: None,
    }
}

impl<W: Element> PackedRnn<W> {
    /// [`backward`](PackedRnn::backward) with the weight gradients in ONNX layout
    /// ([`OnnxGradsMut`]), for a network of ONNX's kind (one layer, no projection),
    /// e.g. one built with [`PackedRnn::from_onnx`].
    pub fn backward_onnx<T: Element>(
        &self,
        tws: &mut TrainingWorkspace,
        grads: OutputGrads<'_, T>,
        mut out: OnnxGradsMut<'_>,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let run = start_backward(tws, cfg)?;
        check(cfg, &out)?;
        let (i, h, gh) = (
            cfg.input_size,
            cfg.hidden_size,
            cfg.gates() * cfg.hidden_size,
        );
        let d = cfg.num_directions();
        let peep = if cfg.cell.has_peephole() { 3 * h } else { 0 };
        let bias = out.db.is_some();
        // PyTorch-layout scratch in the workspace's io buffer, taken out for the call
        // (the backward borrows the workspace).
        let mut io = std::mem::take(&mut tws.io);
        let mut result = || -> Result<()> {
            let [w, r, bi, bh, p] =
                carve(&mut io, [d * gh * i, d * gh * h, d * gh, d * gh, d * peep])?;
            // SAFETY: each region was carved with the length it is viewed with; they are
            // disjoint, and nothing else uses `io` until it is put back.
            let (w, r, bi, bh, p) = unsafe {
                let s = |ptr: *mut f32, n: usize| std::slice::from_raw_parts_mut(ptr, n);
                (
                    s(w, d * gh * i),
                    s(r, d * gh * h),
                    s(bi, d * gh),
                    s(bh, d * gh),
                    s(p, d * peep),
                )
            };
            {
                let (w0, w1) = w.split_at_mut(gh * i);
                let (r0, r1) = r.split_at_mut(gh * h);
                let (bi0, bi1) = bi.split_at_mut(gh);
                let (bh0, bh1) = bh.split_at_mut(gh);
                let (p0, p1) = p.split_at_mut(peep);
                let mut sets = [
                    set((w0, r0), (bi0, bh0), p0, bias),
                    set((w1, r1), (bi1, bh1), p1, bias),
                ];
                let mut g = GradientsMut {
                    dx: out.dx.as_deref_mut(),
                    dh0: out.dh0.as_deref_mut(),
                    dc0: out.dc0.as_deref_mut(),
                    // ONNX has no AUGRU (`export_onnx` refuses one).
                    dattention: None,
                    weights: &mut sets[..d],
                };
                check_grads(cfg, run.shape, &grads, &mut g)?;
                super::backward::run(self, tws, grads, g)?;
            }
            let order = onnx_gate_source(cfg.cell);
            for k in 0..d {
                let (wo, ro) = (k * gh * i, k * gh * h);
                permute(
                    &w[wo..wo + gh * i],
                    &mut out.dw[wo..wo + gh * i],
                    h * i,
                    order,
                );
                permute(
                    &r[ro..ro + gh * h],
                    &mut out.dr[ro..ro + gh * h],
                    h * h,
                    order,
                );
                if let Some(db) = out.db.as_deref_mut() {
                    let db = &mut db[k * 2 * gh..(k + 1) * 2 * gh];
                    permute(&bi[k * gh..(k + 1) * gh], &mut db[..gh], h, order);
                    permute(&bh[k * gh..(k + 1) * gh], &mut db[gh..], h, order);
                }
                if let Some(dp) = out.dp.as_deref_mut() {
                    let src = &p[k * peep..(k + 1) * peep];
                    permute(
                        src,
                        &mut dp[k * peep..(k + 1) * peep],
                        h,
                        &ONNX_PEEPHOLE_SOURCE,
                    );
                }
            }
            Ok(())
        };
        let r = result();
        tws.io = io;
        r
    }
}
