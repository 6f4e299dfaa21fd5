//! PyTorch `nn.LSTM` / `nn.GRU` / `nn.RNN` parameters from a `.safetensors` file, by
//! their `state_dict` names.

mod infer;
mod names;

use std::borrow::Cow;
use std::path::Path;

use ::safetensors::tensor::SafeTensors;

use self::infer::Found;
use self::names::{check_tensors, dtype_of, find_prefix, ParamNames};
use super::tensor::{typed, Dtype, Stored};
use super::{invalid, read_error};
use crate::{CellKind, Element, LayerWeights, OwnedLayerWeights, PackedRnn, Result, RnnConfig};

/// What [`SafetensorsRnn`] cannot read from the names and shapes alone.
///
/// ```
/// use rnn_kernels::models::LoadOptions;
/// use rnn_kernels::CellKind;
/// let opts = LoadOptions::new()
///     .prefix("encoder.rnn.")
///     .cell(CellKind::RNN_RELU);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadOptions {
    prefix: Option<String>,
    cell: Option<CellKind>,
    config: Option<RnnConfig>,
}

impl LoadOptions {
    /// Nothing given: the file must hold exactly one recurrent module, and not an
    /// `nn.RNN` (whose nonlinearity is not in its weights).
    pub fn new() -> Self {
        Self::default()
    }

    /// The module's name in the `state_dict`, e.g. `"encoder.rnn."` for tensors named
    /// `encoder.rnn.weight_ih_l0` (the trailing dot may be left out). Needed when the
    /// file holds several recurrent modules.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The cell: required for an `nn.RNN` (tanh or relu); for an LSTM or GRU it must
    /// agree with the gate count of the weights.
    pub fn cell(mut self, cell: CellKind) -> Self {
        self.cell = Some(cell);
        self
    }

    /// The whole configuration the weights must match (cell, sizes, layers,
    /// direction); its `clip` is kept (PyTorch has none). Implies [`Self::cell`].
    pub fn config(mut self, cfg: RnnConfig) -> Self {
        self.cell = Some(cfg.cell);
        self.config = Some(cfg);
        self
    }
}

/// The file's bytes: memory-mapped, or owned.
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// The parameters of one PyTorch recurrent module found in a `.safetensors` file, with
/// the [`RnnConfig`] they imply: layers (`weight_ih_l{k}`), directions (`_reverse`),
/// `H`, `I` and `proj_size` from the shapes, the cell from the gate count (4 LSTM,
/// 3 GRU; an `nn.RNN` needs [`LoadOptions::cell`]). Every tensor's shape and dtype is
/// checked when the file is opened; errors name the tensor.
///
/// ```no_run
/// use rnn_kernels::models::{LoadOptions, SafetensorsRnn};
/// use rnn_kernels::PackedRnn;
/// // A state_dict saved with `safetensors.torch.save_file(model.state_dict(), path)`,
/// // whose LSTM is the submodule `model.encoder.rnn`.
/// let model = SafetensorsRnn::open("model.safetensors",
///     &LoadOptions::new().prefix("encoder.rnn."))?;
/// let rnn: PackedRnn = model.pack()?;            // f32 weights; `pack::<half::bf16>()` too
/// println!("{:?}, weights stored as {}", model.config(), model.dtype());
/// # Ok::<(), rnn_kernels::Error>(())
/// ```
pub struct SafetensorsRnn {
    bytes: Bytes,
    prefix: String,
    cfg: RnnConfig,
    dtype: Dtype,
    bias: bool,
}

impl std::fmt::Debug for SafetensorsRnn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsRnn")
            .field("prefix", &self.prefix)
            .field("cfg", &self.cfg)
            .field("dtype", &self.dtype)
            .field("bias", &self.bias)
            .finish_non_exhaustive()
    }
}

impl SafetensorsRnn {
    /// Memory-maps `path` and finds the module (see [`LoadOptions`]). Only the header
    /// is read now; [`pack`](Self::pack) reads the module's tensors, borrowing them from
    /// the mapping when they are aligned (copying otherwise). Do not truncate or rewrite
    /// the file while this value is alive; [`from_bytes`](Self::from_bytes) avoids the
    /// mapping.
    pub fn open(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| read_error(path, e))?;
        // SAFETY: the mapping is read-only and private to this value; the file must not
        // be truncated or modified while it lives (documented above), as for any
        // memory-mapped model loader.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| read_error(path, e))?;
        Self::parse(Bytes::Mapped(map), &path.display().to_string(), opts)
    }

    /// Like [`open`](Self::open) for a file already in memory.
    pub fn from_bytes(bytes: Vec<u8>, opts: &LoadOptions) -> Result<Self> {
        Self::parse(Bytes::Owned(bytes), "safetensors bytes", opts)
    }

    fn parse(bytes: Bytes, what: &str, opts: &LoadOptions) -> Result<Self> {
        let st =
            SafeTensors::deserialize(&bytes).map_err(|e| invalid(what, "a safetensors file", e))?;
        let prefix = find_prefix(&st, opts.prefix.as_deref())?;
        let found = Found::read(&st, &prefix)?;
        let cfg = found.config(opts)?;
        let dtype = check_tensors(&st, &prefix, &cfg, found.bias)?;
        let bias = found.bias;
        Ok(SafetensorsRnn {
            bytes,
            prefix,
            cfg,
            dtype,
            bias,
        })
    }

    /// The configuration of the module.
    pub fn config(&self) -> &RnnConfig {
        &self.cfg
    }

    /// The prefix of the module's tensor names (e.g. `"encoder.rnn."`, or `""`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The element type of the module's tensors in the file (one for all of them).
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Validates and packs the weights, stored as `W` (`f32`, `half::f16` or
    /// `half::bf16`; rounded to nearest even where the file's type is wider, exact
    /// otherwise).
    pub fn pack<W: Element>(&self) -> Result<PackedRnn<W>> {
        match self.dtype {
            Dtype::F16 => self.pack_from::<half::f16, W>(),
            Dtype::Bf16 => self.pack_from::<half::bf16, W>(),
            _ => self.pack_from::<f32, W>(),
        }
    }

    /// A copy of the weights in PyTorch layout (one set per layer and direction, index
    /// `layer * D + direction`), converted to `T`.
    pub fn weights<T: Element>(&self) -> Result<Vec<OwnedLayerWeights<T>>> {
        let st = self.tensors()?;
        (0..self.cfg.num_weight_sets())
            .map(|k| {
                let set = self.set::<f32>(&st, k)?;
                let conv = |v: &[f32]| v.iter().map(|&x| T::from_f32(x)).collect::<Vec<T>>();
                Ok(set.view().map(conv))
            })
            .collect()
    }

    fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| invalid("safetensors file", "a safetensors file", e))
    }

    fn pack_from<S: Stored, W: Element>(&self) -> Result<PackedRnn<W>> {
        let st = self.tensors()?;
        let sets = (0..self.cfg.num_weight_sets())
            .map(|k| self.set(&st, k))
            .collect::<Result<Vec<Set<'_, S>>>>()?;
        let views: Vec<LayerWeights<'_, S>> = sets.iter().map(Set::view).collect();
        PackedRnn::<W>::pack(&self.cfg, &views)
    }

    /// The tensors of weight set `k` (checked by [`check_tensors`] when the file was
    /// opened; the errors here could only come from a file changed since).
    fn set<'a, S: Stored>(&self, st: &SafeTensors<'a>, k: usize) -> Result<Set<'a, S>> {
        let d = self.cfg.num_directions();
        let names = ParamNames::new(&self.prefix, k / d, k % d == 1);
        let get = |name: &str| -> Result<Cow<'a, [S]>> {
            let t = st
                .tensor(name)
                .map_err(|e| invalid(name, "a tensor of the module", e))?;
            let dtype = dtype_of(&t).ok_or_else(|| {
                invalid(
                    name,
                    "dtype F32, F16, BF16 or F64",
                    format!("{:?}", t.dtype()),
                )
            })?;
            Ok(typed(t.data(), dtype))
        };
        let proj = self.cfg.output_size() != self.cfg.hidden_size;
        let opt = |on: bool, name: &str| on.then(|| get(name)).transpose();
        Ok(Set {
            w_ih: get(&names.w_ih)?,
            w_hh: get(&names.w_hh)?,
            b_ih: opt(self.bias, &names.b_ih)?,
            b_hh: opt(self.bias, &names.b_hh)?,
            w_hr: opt(proj, &names.w_hr)?,
        })
    }
}

/// One weight set's tensors, borrowed from the file where possible.
struct Set<'a, S: Clone> {
    w_ih: Cow<'a, [S]>,
    w_hh: Cow<'a, [S]>,
    b_ih: Option<Cow<'a, [S]>>,
    b_hh: Option<Cow<'a, [S]>>,
    w_hr: Option<Cow<'a, [S]>>,
}

impl<S: Clone> Set<'_, S> {
    fn view(&self) -> LayerWeights<'_, S> {
        let mut w = LayerWeights::new(&self.w_ih, &self.w_hh);
        (w.b_ih, w.b_hh) = (self.b_ih.as_deref(), self.b_hh.as_deref());
        w.w_hr = self.w_hr.as_deref();
        w
    }
}
