//! The problem vocabulary shared by the reference and the kernels: which cell, which
//! sizes, which direction and tensor layout. Nothing here computes anything.

use crate::activation::GateActivations;
use crate::cell_kind::{CellKind, GateCoupling};
use crate::error::{checked_product, Error, Result};

/// Which way(s) the sequence is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Direction {
    /// t = 0, 1, ..., T-1.
    Forward,
    /// t = T-1, ..., 0 (per row: from its last valid step).
    Reverse,
    /// Both; outputs are concatenated forward then reverse (`y` is `[T, B, 2 H_out]`).
    Bidirectional,
    /// Both; outputs are summed, `y = y_forward + y_reverse` (`[T, B, H_out]`;
    /// oneDNN's `bidirectional_sum`). States stay one per direction.
    BidirectionalSum,
}

impl Direction {
    /// `D`: 1 or 2.
    pub fn num_directions(self) -> usize {
        match self {
            Direction::Bidirectional | Direction::BidirectionalSum => 2,
            _ => 1,
        }
    }

    /// How many `H_out`-wide blocks a row of `y` has: `D`, or 1 when the directions'
    /// outputs are summed.
    pub fn output_blocks(self) -> usize {
        match self {
            Direction::BidirectionalSum => 1,
            d => d.num_directions(),
        }
    }

    /// Where direction `d`'s output goes in a row of `y`, in `H_out` blocks: `d`, or
    /// block 0 (added) when the outputs are summed.
    pub fn output_block(self, d: usize) -> usize {
        match self {
            Direction::BidirectionalSum => 0,
            _ => d,
        }
    }

    /// Whether direction index `d` (0..D) of this setting runs backwards in time.
    pub fn is_reverse(self, d: usize) -> bool {
        match self {
            Direction::Forward => false,
            Direction::Reverse => true,
            Direction::Bidirectional | Direction::BidirectionalSum => d == 1,
        }
    }
}

/// How `x` and `y` are laid out in memory. States (`h0`, `h_n`, ...) are always
/// `[L*D, B, ·]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TensorLayout {
    /// `[T, B, ·]` (PyTorch default, ONNX `layout=0`).
    #[default]
    TimeMajor,
    /// `[B, T, ·]` (PyTorch `batch_first=True`, ONNX `layout=1`).
    BatchMajor,
}

/// A whole recurrent network: cell, sizes, layers, direction and ONNX clip.
///
/// ```
/// use rnn_reference::{CellKind, Direction, RnnConfig};
/// let cfg = RnnConfig::new(CellKind::GRU, 80, 256)
///     .with_layers(2)
///     .with_direction(Direction::Bidirectional);
/// assert!(cfg.validate().is_ok());
/// assert_eq!(cfg.layer_input_size(1), 512);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnConfig {
    /// Cell kind and variant.
    pub cell: CellKind,
    /// `I`: features of the input of layer 0.
    pub input_size: usize,
    /// `H`: hidden units per layer and direction.
    pub hidden_size: usize,
    /// `L`: stacked layers; layer `l > 0` takes the previous layer's `D * H_out` outputs.
    pub num_layers: usize,
    /// Forward, reverse or both.
    pub direction: Direction,
    /// ONNX `clip`: every gate pre-activation is clamped to `[-clip, clip]` before its
    /// activation. `None` = no clipping.
    pub clip: Option<f32>,
    /// ONNX `activations` (with `activation_alpha`, `activation_beta`): the functions
    /// of each direction's slots, indexed by direction (`[0]` the forward or only
    /// direction, `[1]` the reverse one of a bidirectional network; a one-direction
    /// network ignores `[1]`). `None`: the cell's standard functions
    /// ([`GateActivations::standard`]). When set, they replace the cell's functions,
    /// an RNN's [`RnnActivation`](crate::RnnActivation) included.
    pub activations: Option<[GateActivations; 2]>,
}

impl RnnConfig {
    /// One forward layer without clipping.
    pub fn new(cell: CellKind, input_size: usize, hidden_size: usize) -> Self {
        RnnConfig {
            cell,
            input_size,
            hidden_size,
            num_layers: 1,
            direction: Direction::Forward,
            clip: None,
            activations: None,
        }
    }

    /// Sets the number of stacked layers.
    pub fn with_layers(mut self, num_layers: usize) -> Self {
        self.num_layers = num_layers;
        self
    }

    /// Sets the direction.
    pub fn with_direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    /// Sets (or removes) the ONNX clip threshold.
    pub fn with_clip(mut self, clip: Option<f32>) -> Self {
        self.clip = clip;
        self
    }

    /// Sets (or removes) ONNX activation functions, per direction (see
    /// [`activations`](Self::activations)).
    ///
    /// ```
    /// use rnn_reference::{Activation, CellKind, GateActivations, RnnConfig};
    /// let mut acts = GateActivations::standard(CellKind::GRU);
    /// acts.g = Activation::Softsign;
    /// let cfg = RnnConfig::new(CellKind::GRU, 8, 16).with_activations(Some([acts; 2]));
    /// assert_eq!(cfg.gate_activations(0).g, Activation::Softsign);
    /// assert!(cfg.custom_activations(0).is_some());
    /// ```
    pub fn with_activations(mut self, activations: Option<[GateActivations; 2]>) -> Self {
        self.activations = activations;
        self
    }

    /// The functions direction `d` (0 or 1) applies: the configured ones (a network of
    /// one direction takes the first set whatever `d`), or the cell's standard ones.
    pub fn gate_activations(&self, d: usize) -> GateActivations {
        match self.activations {
            Some(a) if self.num_directions() == 2 => a[d.min(1)],
            Some(a) => a[0],
            None => GateActivations::standard(self.cell),
        }
    }

    /// [`gate_activations`](Self::gate_activations) when they differ from the cell's
    /// standard functions (in a slot the cell uses), else `None`: what the kernels'
    /// fused standard path cannot run.
    pub fn custom_activations(&self, d: usize) -> Option<GateActivations> {
        Some(self.gate_activations(d)).filter(|a| !a.is_standard(self.cell))
    }

    /// The configuration of one layer and one direction `d` of this network, run
    /// forward with inputs `input_size` wide: what [`step`](crate::step) takes. The
    /// direction's activations become the only ones.
    pub fn direction_step(&self, input_size: usize, d: usize) -> RnnConfig {
        let a = self.gate_activations(d);
        RnnConfig {
            input_size,
            num_layers: 1,
            direction: Direction::Forward,
            activations: self.activations.map(|_| [a, a]),
            ..*self
        }
    }

    /// `G`.
    pub fn gates(&self) -> usize {
        self.cell.gates()
    }

    /// `D`.
    pub fn num_directions(&self) -> usize {
        self.direction.num_directions()
    }

    /// `H_out`: the width of `h` (the projection size for a projected LSTM, else `H`).
    pub fn output_size(&self) -> usize {
        self.cell.proj_size().unwrap_or(self.hidden_size)
    }

    /// Width of a row of `y`: `D * H_out`, or `H_out` when the directions are summed.
    /// (Saturates instead of overflowing for configs that [`RnnConfig::validate`] rejects.)
    pub fn y_width(&self) -> usize {
        self.direction
            .output_blocks()
            .saturating_mul(self.output_size())
    }

    /// Width of the input of `layer`: `I` for layer 0, [`y_width`](Self::y_width) after.
    /// (Saturates instead of overflowing for configs that [`RnnConfig::validate`] rejects.)
    pub fn layer_input_size(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.y_width()
        }
    }

    /// Number of (layer, direction) weight sets: `L * D`.
    /// (Saturates instead of overflowing for configs that [`RnnConfig::validate`] rejects.)
    pub fn num_weight_sets(&self) -> usize {
        self.num_layers.saturating_mul(self.num_directions())
    }

    /// Checks sizes and flags: nonzero sizes, `0 < proj_size < hidden_size` (and no
    /// projection with `input_forget`), a finite
    /// positive clip, and that every weight and state size fits in `usize` (and in `i32`
    /// element offsets per row, which the kernels rely on).
    pub fn validate(&self) -> Result<()> {
        if self.input_size == 0 {
            return Err(Error::invalid("input_size", "at least 1", 0));
        }
        if self.hidden_size == 0 {
            return Err(Error::invalid("hidden_size", "at least 1", 0));
        }
        if self.num_layers == 0 {
            return Err(Error::invalid("num_layers", "at least 1", 0));
        }
        if self.cell.layer_norm() && self.cell.input_forget() {
            return Err(Error::invalid(
                "cell",
                "an LSTM with either layer_norm (TFLite) or input_forget (ONNX): no peer \
                 defines both",
                format!("{:?}", self.cell),
            ));
        }
        if self.cell.layer_norm() && self.clip.is_some() {
            return Err(Error::invalid(
                "clip",
                "None for a layer-norm LSTM (ONNX's clip has no layer norm; TFLite's \
                 layer-norm LSTM clips nothing before its activations)",
                format!("{:?}", self.clip),
            ));
        }
        if let Some(p) = self.cell.proj_size() {
            if p == 0 || p >= self.hidden_size {
                return Err(Error::invalid(
                    "proj_size",
                    format!("between 1 and hidden_size - 1 = {}", self.hidden_size - 1),
                    p,
                ));
            }
            if self.cell.input_forget() {
                return Err(Error::invalid(
                    "cell",
                    "an LSTM with either proj_size (PyTorch) or input_forget (ONNX): no \
                     peer defines both",
                    format!("{:?}", self.cell),
                ));
            }
        }
        if let Some(c) = self.clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::invalid("clip", "a finite value > 0", c));
            }
        }
        if let Some(a) = self.activations {
            for d in a.iter().take(self.num_directions()) {
                d.validate(self.cell)?;
            }
        }
        // Every per-layer matrix must be addressable; keep each below i32::MAX elements
        // so row offsets never overflow anywhere.
        let g = self.gates();
        let wide = self.input_size.max(checked_product(
            "hidden_size",
            "directions * output_size",
            &[self.num_directions(), self.output_size()],
        )?);
        let n = checked_product(
            "hidden_size",
            "gates * hidden_size * input width",
            &[g, self.hidden_size, wide],
        )?;
        if n > i32::MAX as usize {
            return Err(Error::overflow(
                "hidden_size",
                "gates * hidden_size * input width (limit i32::MAX elements)",
            ));
        }
        checked_product(
            "num_layers",
            "num_layers * directions",
            &[self.num_layers, self.num_directions()],
        )?;
        Ok(())
    }

    /// Element counts of one (layer, direction) weight set.
    /// (Exact for a config that passes [`RnnConfig::validate`]; saturates instead of
    /// overflowing otherwise.)
    pub fn weight_lens(&self, layer: usize) -> WeightLens {
        let g = self.gates();
        let h = self.hidden_size;
        let ho = self.output_size();
        let gh = g.saturating_mul(h);
        WeightLens {
            w_ih: gh.saturating_mul(self.layer_input_size(layer)),
            w_hh: gh.saturating_mul(ho),
            bias: gh,
            w_hr: self.cell.proj_size().map(|p| p.saturating_mul(h)),
            peephole: match self.cell {
                CellKind::Lstm(v) if v.peephole => {
                    let blocks: usize = if v.coupling == GateCoupling::Cifg {
                        2
                    } else {
                        3
                    };
                    Some(blocks.saturating_mul(h))
                }
                CellKind::Gru(v) if v.peephole => Some(2usize.saturating_mul(h)),
                _ => None,
            },
            layer_norm: self.cell.lstm().filter(|v| v.layer_norm).map(|_| gh),
        }
    }
}

/// Element counts of one (layer, direction) weight set in PyTorch layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightLens {
    /// `w_ih`: `G*H x I_l`.
    pub w_ih: usize,
    /// `w_hh`: `G*H x H_out`.
    pub w_hh: usize,
    /// `b_ih` and `b_hh`: `G*H` each.
    pub bias: usize,
    /// `w_hr`: `H_out x H` (projected LSTM only).
    pub w_hr: Option<usize>,
    /// Peephole: `3*H` in order (i, f, o) for a peephole LSTM (`2*H`, (f, o), for
    /// CIFG), `2*H` in order (r, z) for a peephole GRU.
    pub peephole: Option<usize>,
    /// Layer-norm scales `G*H`, per gate block (layer-norm LSTM only).
    pub layer_norm: Option<usize>,
}

/// Steps, batch and layout of one sequence call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqShape {
    /// `T` (at least 1).
    pub steps: usize,
    /// `B` (at least 1).
    pub batch: usize,
    /// Layout of `x` and `y`.
    pub layout: TensorLayout,
}

impl SeqShape {
    /// A time-major shape.
    pub fn new(steps: usize, batch: usize) -> Self {
        SeqShape {
            steps,
            batch,
            layout: TensorLayout::TimeMajor,
        }
    }

    /// Sets the layout.
    pub fn with_layout(mut self, layout: TensorLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Row index of `(t, b)` in `x` or `y` (each row is one feature vector).
    #[inline]
    pub fn row(&self, t: usize, b: usize) -> usize {
        match self.layout {
            TensorLayout::TimeMajor => t * self.batch + b,
            TensorLayout::BatchMajor => b * self.steps + t,
        }
    }

    /// Checks the shape against a (valid) config and returns every length it implies.
    pub fn dims(&self, cfg: &RnnConfig) -> Result<SeqDims> {
        if self.steps == 0 {
            return Err(Error::invalid("steps", "at least 1", 0));
        }
        if self.batch == 0 {
            return Err(Error::invalid("batch", "at least 1", 0));
        }
        let rows = checked_product("x", "steps * batch", &[self.steps, self.batch])?;
        let x = checked_product("x", "steps * batch * input_size", &[rows, cfg.input_size])?;
        let y = checked_product(
            "y",
            "steps * batch * directions * output_size",
            &[rows, cfg.direction.output_blocks(), cfg.output_size()],
        )?;
        let h = checked_product(
            "h0",
            "layers * directions * batch * output_size",
            &[
                cfg.num_layers,
                cfg.num_directions(),
                self.batch,
                cfg.output_size(),
            ],
        )?;
        let c = if cfg.cell.has_cell_state() {
            checked_product(
                "c0",
                "layers * directions * batch * hidden_size",
                &[
                    cfg.num_layers,
                    cfg.num_directions(),
                    self.batch,
                    cfg.hidden_size,
                ],
            )?
        } else {
            0
        };
        // Layer l > 0 reads a [T, B, D*H_out] buffer: same size as y.
        Ok(SeqDims { x, y, h, c })
    }
}

/// Lengths implied by a config and a [`SeqShape`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqDims {
    /// `x`: `T * B * I`.
    pub x: usize,
    /// `y`: `T * B * D * H_out`.
    pub y: usize,
    /// `h0` / `h_n`: `L * D * B * H_out`.
    pub h: usize,
    /// `c0` / `c_n`: `L * D * B * H` (0 for cells without a cell state).
    pub c: usize,
}

/// Checks optional per-row sequence lengths: one per batch row, each `<= steps`.
/// A length of 0 is allowed: that row's `y` is all zero and its final state is its
/// initial state.
pub fn check_seq_lens(seq_lens: Option<&[usize]>, shape: &SeqShape) -> Result<()> {
    if let Some(lens) = seq_lens {
        if lens.len() != shape.batch {
            return Err(Error::length("seq_lens", shape.batch, lens.len()));
        }
        for (b, &len) in lens.iter().enumerate() {
            if len > shape.steps {
                return Err(Error::invalid(
                    format!("seq_lens[{b}]"),
                    format!("at most steps = {}", shape.steps),
                    len,
                ));
            }
        }
    }
    Ok(())
}

/// Checks a slice length, naming the argument on failure.
pub fn check_len(arg: &str, expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::length(arg, expected, actual))
    }
}
