//! Weights as borrowed views in PyTorch layout, their validation, and the ONNX
//! importer/exporter (which permutes gate blocks).

use crate::cell_kind::CellKind;
use crate::error::{Error, Result};
use crate::spec::RnnConfig;

/// The weights of one layer and direction, borrowed, in **PyTorch layout** and gate
/// order (LSTM i, f, g, o; GRU r, z, n). Matrices are row-major.
///
/// Weight sets are passed as a slice indexed by `layer * D + direction`.
#[derive(Clone, Copy, Debug)]
pub struct LayerWeights<'a, T> {
    /// `[G*H, I_l]`: input-to-hidden.
    pub w_ih: &'a [T],
    /// `[G*H, H_out]`: hidden-to-hidden.
    pub w_hh: &'a [T],
    /// `[G*H]`, or `None` for no input bias.
    pub b_ih: Option<&'a [T]>,
    /// `[G*H]`, or `None` for no recurrent bias.
    pub b_hh: Option<&'a [T]>,
    /// `[H_out, H]`: the projection of a projected LSTM; `None` otherwise.
    pub w_hr: Option<&'a [T]>,
    /// Peephole weights: `[3*H]` in order (i, f, o) for a peephole LSTM (`[2*H]`, (f,
    /// o), for a CIFG one), `[2*H]` in order (r, z) for a peephole GRU; `None`
    /// otherwise.
    pub peephole: Option<&'a [T]>,
    /// `[G*H]` layer-norm scales, one block per gate, for a layer-norm LSTM; `None`
    /// otherwise.
    pub layer_norm: Option<&'a [T]>,
}

impl<'a, T> LayerWeights<'a, T> {
    /// Input and recurrent matrices, no biases, no projection, no peephole.
    pub fn new(w_ih: &'a [T], w_hh: &'a [T]) -> Self {
        LayerWeights {
            w_ih,
            w_hh,
            b_ih: None,
            b_hh: None,
            w_hr: None,
            peephole: None,
            layer_norm: None,
        }
    }

    /// Every part converted by `f` into an owned set (e.g. of another element type).
    pub fn map<U>(&self, f: impl Fn(&[T]) -> Vec<U>) -> OwnedLayerWeights<U> {
        OwnedLayerWeights {
            w_ih: f(self.w_ih),
            w_hh: f(self.w_hh),
            b_ih: self.b_ih.map(&f),
            b_hh: self.b_hh.map(&f),
            w_hr: self.w_hr.map(&f),
            peephole: self.peephole.map(&f),
            layer_norm: self.layer_norm.map(&f),
        }
    }

    /// Adds both bias vectors.
    pub fn with_bias(mut self, b_ih: &'a [T], b_hh: &'a [T]) -> Self {
        self.b_ih = Some(b_ih);
        self.b_hh = Some(b_hh);
        self
    }
}

/// Owned weights of one layer and direction (what the ONNX importer returns).
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedLayerWeights<T> {
    /// See [`LayerWeights::w_ih`].
    pub w_ih: Vec<T>,
    /// See [`LayerWeights::w_hh`].
    pub w_hh: Vec<T>,
    /// See [`LayerWeights::b_ih`].
    pub b_ih: Option<Vec<T>>,
    /// See [`LayerWeights::b_hh`].
    pub b_hh: Option<Vec<T>>,
    /// See [`LayerWeights::w_hr`].
    pub w_hr: Option<Vec<T>>,
    /// See [`LayerWeights::peephole`].
    pub peephole: Option<Vec<T>>,
    /// See [`LayerWeights::layer_norm`].
    pub layer_norm: Option<Vec<T>>,
}

impl<T> OwnedLayerWeights<T> {
    /// Every part converted by `f` (e.g. to another element type).
    pub fn map<U>(&self, f: impl Fn(&[T]) -> Vec<U>) -> OwnedLayerWeights<U> {
        self.view().map(f)
    }

    /// Borrows as a [`LayerWeights`].
    pub fn view(&self) -> LayerWeights<'_, T> {
        LayerWeights {
            w_ih: &self.w_ih,
            w_hh: &self.w_hh,
            b_ih: self.b_ih.as_deref(),
            b_hh: self.b_hh.as_deref(),
            w_hr: self.w_hr.as_deref(),
            peephole: self.peephole.as_deref(),
            layer_norm: self.layer_norm.as_deref(),
        }
    }
}

/// Borrows every owned weight set.
pub fn views<T>(owned: &[OwnedLayerWeights<T>]) -> Vec<LayerWeights<'_, T>> {
    owned.iter().map(OwnedLayerWeights::view).collect()
}

/// Checks that `weights` holds `L * D` sets whose every slice has the length `cfg`
/// implies, and that optional parts are present exactly when the cell needs them.
/// Validates `cfg` first.
pub fn check_weights<T>(cfg: &RnnConfig, weights: &[LayerWeights<'_, T>]) -> Result<()> {
    cfg.validate()?;
    if weights.len() != cfg.num_weight_sets() {
        return Err(Error::length(
            "weights (sets, layer * directions)",
            cfg.num_weight_sets(),
            weights.len(),
        ));
    }
    for (k, w) in weights.iter().enumerate() {
        let lens = cfg.weight_lens(k / cfg.num_directions());
        let name = |part: &str| format!("weights[{k}].{part}");
        check(&name("w_ih"), lens.w_ih, w.w_ih.len())?;
        check(&name("w_hh"), lens.w_hh, w.w_hh.len())?;
        if let Some(b) = w.b_ih {
            check(&name("b_ih"), lens.bias, b.len())?;
        }
        if let Some(b) = w.b_hh {
            check(&name("b_hh"), lens.bias, b.len())?;
        }
        optional(
            &name("w_hr"),
            lens.w_hr,
            w.w_hr.map(<[T]>::len),
            "a projected LSTM",
        )?;
        optional(
            &name("peephole"),
            lens.peephole,
            w.peephole.map(<[T]>::len),
            "a peephole cell",
        )?;
        optional(
            &name("layer_norm"),
            lens.layer_norm,
            w.layer_norm.map(<[T]>::len),
            "a layer-norm LSTM",
        )?;
    }
    Ok(())
}

fn check(arg: &str, expected: usize, actual: usize) -> Result<()> {
    crate::spec::check_len(arg, expected, actual)
}

fn optional(arg: &str, expected: Option<usize>, actual: Option<usize>, who: &str) -> Result<()> {
    match (expected, actual) {
        (Some(e), Some(a)) => check(arg, e, a),
        (Some(e), None) => Err(Error::invalid(
            arg,
            format!("{e} elements (required by {who})"),
            "None",
        )),
        (None, Some(a)) => Err(Error::invalid(
            arg,
            format!("None (only {who} has it)"),
            format!("{a} elements"),
        )),
        (None, None) => Ok(()),
    }
}

/// For each PyTorch gate block, the ONNX gate block it comes from.
/// LSTM: PyTorch (i, f, g, o) from ONNX (i, o, f, c). GRU: (r, z, n) from (z, r, h).
/// (Gradients permute like the weights.)
pub fn onnx_gate_source(cell: CellKind) -> &'static [usize] {
    match cell {
        CellKind::Rnn(_) => &[0],
        CellKind::Lstm(_) => &[0, 2, 3, 1],
        CellKind::Gru(_) => &[1, 0, 2],
    }
}

/// Peephole: ours (i, f, o) from ONNX (i, o, f).
pub const ONNX_PEEPHOLE_SOURCE: [usize; 3] = [0, 2, 1];

/// Copies `blocks.len()` blocks of `block` elements: block `k` of `dst` is block
/// `blocks[k]` of `src`.
fn permute_blocks<T: Copy>(src: &[T], block: usize, blocks: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(src.len());
    for &s in blocks {
        out.extend_from_slice(&src[s * block..(s + 1) * block]);
    }
    out
}

/// The inverse of a permutation.
fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (k, &s) in perm.iter().enumerate() {
        inv[s] = k;
    }
    inv
}

/// ONNX operator weights, borrowed: `W` `[D, G*H, I]`, `R` `[D, G*H, H]`,
/// `B` `[D, 2*G*H]` (input then recurrent biases), `P` `[D, 3*H]` (LSTM peephole i, o, f).
#[derive(Clone, Copy, Debug)]
pub struct OnnxWeights<'a, T> {
    /// `W`.
    pub w: &'a [T],
    /// `R`.
    pub r: &'a [T],
    /// `B`, optional (ONNX: zero when absent).
    pub b: Option<&'a [T]>,
    /// `P`, for a peephole LSTM.
    pub p: Option<&'a [T]>,
}

/// Converts ONNX `RNN`/`LSTM`/`GRU` weights to PyTorch layout, one set per direction.
///
/// ONNX operators are single-layer, so `cfg.num_layers` must be 1, and ONNX has no
/// projection. Gate blocks are permuted (LSTM i,o,f,c → i,f,g,o; GRU z,r,h → r,z,n;
/// peephole i,o,f → i,f,o).
///
/// ```
/// use rnn_reference::{import_onnx, CellKind, OnnxWeights, RnnConfig};
/// let cfg = RnnConfig::new(CellKind::GRU_ONNX, 1, 1);
/// // ONNX gate order z, r, h.
/// let w = [10.0f32, 20.0, 30.0];
/// let r = [1.0f32, 2.0, 3.0];
/// let sets = import_onnx(&cfg, OnnxWeights { w: &w, r: &r, b: None, p: None }).unwrap();
/// assert_eq!(sets[0].w_ih, vec![20.0, 10.0, 30.0]); // r, z, n
/// ```
pub fn import_onnx<T: Copy>(
    cfg: &RnnConfig,
    onnx: OnnxWeights<'_, T>,
) -> Result<Vec<OwnedLayerWeights<T>>> {
    cfg.validate()?;
    check_onnx_cfg(cfg)?;
    let d = cfg.num_directions();
    let (g, h, i) = (cfg.gates(), cfg.hidden_size, cfg.input_size);
    check("W", d * g * h * i, onnx.w.len())?;
    check("R", d * g * h * h, onnx.r.len())?;
    if let Some(b) = onnx.b {
        check("B", d * 2 * g * h, b.len())?;
    }
    let peephole = cfg.cell.lstm().is_some_and(|v| v.peephole);
    match (peephole, onnx.p) {
        (true, Some(p)) => check("P", d * 3 * h, p.len())?,
        (true, None) => {
            return Err(Error::invalid(
                "P",
                "peephole weights [D, 3*H] (the config asks for a peephole LSTM)",
                "None",
            ))
        }
        (false, Some(_)) => {
            return Err(Error::invalid(
                "P",
                "None (the config has no peephole)",
                "peephole weights",
            ))
        }
        (false, None) => {}
    }
    let src = onnx_gate_source(cfg.cell);
    let mut sets = Vec::with_capacity(d);
    for dir in 0..d {
        let wd = &onnx.w[dir * g * h * i..(dir + 1) * g * h * i];
        let rd = &onnx.r[dir * g * h * h..(dir + 1) * g * h * h];
        let (b_ih, b_hh) = match onnx.b {
            Some(b) => {
                let bd = &b[dir * 2 * g * h..(dir + 1) * 2 * g * h];
                (
                    Some(permute_blocks(&bd[..g * h], h, src)),
                    Some(permute_blocks(&bd[g * h..], h, src)),
                )
            }
            None => (None, None),
        };
        let peephole = onnx
            .p
            .map(|p| permute_blocks(&p[dir * 3 * h..(dir + 1) * 3 * h], h, &ONNX_PEEPHOLE_SOURCE));
        sets.push(OwnedLayerWeights {
            w_ih: permute_blocks(wd, h * i, src),
            w_hh: permute_blocks(rd, h * h, src),
            b_ih,
            b_hh,
            w_hr: None,
            peephole,
            layer_norm: None,
        });
    }
    Ok(sets)
}

/// ONNX weights, owned (what [`export_onnx`] returns).
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedOnnxWeights<T> {
    /// `W` `[D, G*H, I]`.
    pub w: Vec<T>,
    /// `R` `[D, G*H, H]`.
    pub r: Vec<T>,
    /// `B` `[D, 2*G*H]`; `None` when no set has a bias.
    pub b: Option<Vec<T>>,
    /// `P` `[D, 3*H]` for a peephole LSTM.
    pub p: Option<Vec<T>>,
}

/// The inverse of [`import_onnx`]: PyTorch-layout sets (one per direction) to ONNX
/// tensors. A missing bias of one kind is written as zeros when the other is present.
pub fn export_onnx<T: Copy + Default>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, T>],
) -> Result<OwnedOnnxWeights<T>> {
    check_onnx_cfg(cfg)?;
    check_weights(cfg, weights)?;
    let (g, h) = (cfg.gates(), cfg.hidden_size);
    let inv = inverse(onnx_gate_source(cfg.cell));
    let inv_p = inverse(&ONNX_PEEPHOLE_SOURCE);
    let any_bias = weights.iter().any(|w| w.b_ih.is_some() || w.b_hh.is_some());
    let zeros = vec![T::default(); g * h];
    let mut out = OwnedOnnxWeights {
        w: Vec::new(),
        r: Vec::new(),
        b: any_bias.then(Vec::new),
        p: weights[0].peephole.map(|_| Vec::new()),
    };
    for w in weights {
        out.w.extend(permute_blocks(w.w_ih, w.w_ih.len() / g, &inv));
        out.r.extend(permute_blocks(w.w_hh, w.w_hh.len() / g, &inv));
        if let Some(b) = out.b.as_mut() {
            b.extend(permute_blocks(w.b_ih.unwrap_or(&zeros), h, &inv));
            b.extend(permute_blocks(w.b_hh.unwrap_or(&zeros), h, &inv));
        }
        if let (Some(p), Some(src)) = (out.p.as_mut(), w.peephole) {
            p.extend(permute_blocks(src, h, &inv_p));
        }
    }
    Ok(out)
}

fn check_onnx_cfg(cfg: &RnnConfig) -> Result<()> {
    if cfg.num_layers != 1 {
        return Err(Error::invalid(
            "num_layers",
            "1 (ONNX operators are single-layer)",
            cfg.num_layers,
        ));
    }
    if let Some(p) = cfg.cell.proj_size() {
        return Err(Error::invalid(
            "proj_size",
            "None (ONNX LSTM has no projection)",
            p,
        ));
    }
    if matches!(cfg.cell, CellKind::Gru(v) if v.peephole) {
        return Err(Error::invalid(
            "cell",
            "a GRU without peepholes (ONNX GRU has none)",
            format!("{:?}", cfg.cell),
        ));
    }
    if cfg.cell.has_attention() {
        return Err(Error::invalid(
            "cell",
            "a GRU without attention (ONNX has no AUGRU)",
            format!("{:?}", cfg.cell),
        ));
    }
    if cfg.cell.cifg() {
        return Err(Error::invalid(
            "cell",
            "an LSTM with four gate blocks (ONNX has no CIFG; its `input_forget` keeps \
             the input gate and drops the forget gate)",
            format!("{:?}", cfg.cell),
        ));
    }
    if cfg.cell.layer_norm() {
        return Err(Error::invalid(
            "cell",
            "an LSTM without layer_norm (ONNX has no layer-norm LSTM)",
            format!("{:?}", cfg.cell),
        ));
    }
    Ok(())
}
