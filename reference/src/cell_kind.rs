//! Which recurrent cell, and which variant of it: [`CellKind`] and the variant
//! options of each cell ([`RnnVariant`], [`LstmVariant`], [`GruVariant`]).
//!
//! The options are plain structs with public fields and a `Default`, so new options
//! can be added without breaking code that writes `..Default::default()`:
//!
//! ```
//! use rnn_reference::{CellKind, LstmVariant};
//! let plain = CellKind::LSTM;
//! let onnx_peephole = CellKind::Lstm(LstmVariant { peephole: true, ..Default::default() });
//! assert_ne!(plain, onnx_peephole);
//! assert_eq!(onnx_peephole.gates(), 4);
//! ```

/// The nonlinearity of a plain (Elman) RNN cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RnnActivation {
    /// `h' = tanh(...)` (PyTorch `nonlinearity="tanh"`, ONNX default).
    #[default]
    Tanh,
    /// `h' = max(0, ...)` (PyTorch `nonlinearity="relu"`, ONNX `activations=["Relu"]`).
    Relu,
}

/// The recurrent cell and its variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CellKind {
    /// Elman RNN, one gate.
    Rnn(RnnVariant),
    /// LSTM, four gates (PyTorch order i, f, g, o).
    Lstm(LstmVariant),
    /// GRU, three gates (PyTorch order r, z, n).
    Gru(GruVariant),
}

/// Options of the Elman RNN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RnnVariant {
    /// tanh (default) or relu.
    pub activation: RnnActivation,
}

/// Options of the LSTM. `Default` is PyTorch's plain `nn.LSTM`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LstmVariant {
    /// Peephole connections (ONNX `P`): `p_i ⊙ c`, `p_f ⊙ c` and `p_o ⊙ c'` join the
    /// gates.
    pub peephole: bool,
    /// Projection (PyTorch `proj_size`): `h' = W_hr · (o ⊙ tanh(c'))`,
    /// `0 < proj < hidden`.
    pub proj_size: Option<usize>,
    /// Coupled input and forget gates (two conventions, see [`GateCoupling`]).
    pub coupling: GateCoupling,
    /// Layer normalisation of every gate's pre-activation (TFLite's layer-norm LSTM):
    /// each gate block's `W_ih x + W_hh h (+ p ⊙ c)` is normalised over its `H` units
    /// (mean 0, variance 1, `ε = 1e-8` as TFLite), scaled by the `layer_norm` weights
    /// `γ`, and only then are the biases `b_ih + b_hh` added, before the activation.
    /// With or without peepholes, projection and CIFG; not with ONNX's `input_forget`
    /// or `clip` (no peer defines either with it).
    pub layer_norm: bool,
}

/// How an LSTM couples its input and forget gates. Two conventions exist and they are
/// not the same cell: which gate is computed, and which gate's weights exist, differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GateCoupling {
    /// Independent gates (PyTorch, ONNX default).
    #[default]
    None,
    /// ONNX `input_forget=1`: the input gate is computed (its peephole and clip
    /// included), and `f = 1 − i`, so `c' = (1 − i) ⊙ c + i ⊙ g`. The weights keep all
    /// four gate blocks; the forget gate's weights, biases and peephole are unused (their
    /// gradients are zero).
    InputForget,
    /// TFLite's CIFG ("coupled input and forget gate"): the forget gate is computed
    /// (its peephole and clip included), and `i = 1 − f`, so `c' = f ⊙ c + (1 − f) ⊙
    /// g`. There are no input-gate weights: three gate blocks (f, g, o) in `W_ih`,
    /// `W_hh` and the biases, and peepholes `[2*H]` (f, o).
    Cifg,
}

/// Where an LSTM variant keeps each gate: the block of the stacked `[G*H]` rows and
/// the block of the peephole vector (CIFG has neither for the input gate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LstmBlocks {
    /// Gate blocks of i (`None` for CIFG), f, g, o.
    pub(crate) i: Option<usize>,
    pub(crate) f: usize,
    pub(crate) g: usize,
    pub(crate) o: usize,
    /// Peephole blocks of i (`None` for CIFG), f, o.
    pub(crate) p_i: Option<usize>,
    pub(crate) p_f: usize,
    pub(crate) p_o: usize,
}

impl LstmBlocks {
    /// The blocks of `v`: i, f, g, o and peepholes i, f, o; CIFG f, g, o and f, o.
    pub(crate) fn of(v: &LstmVariant) -> Self {
        if v.coupling == GateCoupling::Cifg {
            LstmBlocks {
                i: None,
                f: 0,
                g: 1,
                o: 2,
                p_i: None,
                p_f: 0,
                p_o: 1,
            }
        } else {
            LstmBlocks {
                i: Some(0),
                f: 1,
                g: 2,
                o: 3,
                p_i: Some(0),
                p_f: 1,
                p_o: 2,
            }
        }
    }
}

/// Options of the GRU. `Default` is ONNX's default form (reset before the product);
/// PyTorch's `nn.GRU` is [`CellKind::GRU`] (`linear_before_reset: true`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GruVariant {
    /// `true`: `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))` (PyTorch, cuDNN).
    /// `false`: `n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)` (ONNX default).
    pub linear_before_reset: bool,
    /// Peephole connections on `h` for the reset and update gates (this crate's own
    /// definition; no standard has one): `r = σ(W_ir x + b_ir + W_hr h + b_hr + p_r ⊙
    /// h)`, `z = σ(… + p_z ⊙ h)`, with `peephole` weights `[2H]` (r, z); `n` and `h'` as
    /// in the plain GRU. Not in ONNX (its GRU has no `P`).
    pub peephole: bool,
    /// AUGRU (oneDNN's `augru` and `lbr_augru`): the update gate is scaled by a
    /// per-row attention input `a`, `z' = (1 − a) ⊙ z`, and `h' = (1 − z') ⊙ n + z' ⊙
    /// h` (either reset form). The attention is an input of the sequence
    /// ([`SequenceInput::attention`](crate::SequenceInput::attention)), shared by every
    /// layer and direction.
    pub attention: bool,
}

impl CellKind {
    /// Elman RNN with `tanh` (PyTorch's and ONNX's default).
    pub const RNN_TANH: CellKind = CellKind::Rnn(RnnVariant {
        activation: RnnActivation::Tanh,
    });
    /// Elman RNN with `relu`.
    pub const RNN_RELU: CellKind = CellKind::Rnn(RnnVariant {
        activation: RnnActivation::Relu,
    });
    /// PyTorch's `nn.LSTM` (ONNX `LSTM` without `P`).
    pub const LSTM: CellKind = CellKind::Lstm(LstmVariant {
        peephole: false,
        proj_size: None,
        coupling: GateCoupling::None,
        layer_norm: false,
    });
    /// PyTorch's `nn.GRU` (ONNX `GRU` with `linear_before_reset=1`).
    pub const GRU: CellKind = CellKind::Gru(GruVariant {
        linear_before_reset: true,
        peephole: false,
        attention: false,
    });
    /// ONNX's default `GRU` (`linear_before_reset=0`).
    pub const GRU_ONNX: CellKind = CellKind::Gru(GruVariant {
        linear_before_reset: false,
        peephole: false,
        attention: false,
    });

    /// Number of gate blocks `G` in the stacked weight matrices: 1 (RNN), 4 (LSTM; 3
    /// with [`GateCoupling::Cifg`]) or 3 (GRU).
    pub fn gates(&self) -> usize {
        match self {
            CellKind::Rnn(_) => 1,
            CellKind::Lstm(v) if v.coupling == GateCoupling::Cifg => 3,
            CellKind::Lstm(_) => 4,
            CellKind::Gru(_) => 3,
        }
    }

    /// `"rnn"`, `"lstm"` or `"gru"`.
    pub fn name(&self) -> &'static str {
        match self {
            CellKind::Rnn(_) => "rnn",
            CellKind::Lstm(_) => "lstm",
            CellKind::Gru(_) => "gru",
        }
    }

    /// Whether the cell carries a cell state `c` besides `h` (LSTM only).
    pub fn has_cell_state(&self) -> bool {
        matches!(self, CellKind::Lstm(_))
    }

    /// The LSTM options, if this is an LSTM.
    pub fn lstm(&self) -> Option<&LstmVariant> {
        match self {
            CellKind::Lstm(v) => Some(v),
            _ => None,
        }
    }

    /// The GRU options, if this is a GRU.
    pub fn gru(&self) -> Option<&GruVariant> {
        match self {
            CellKind::Gru(v) => Some(v),
            _ => None,
        }
    }

    /// Whether the LSTM's forget gate is `1 − i` (ONNX `input_forget`).
    pub fn input_forget(&self) -> bool {
        self.lstm()
            .is_some_and(|v| v.coupling == GateCoupling::InputForget)
    }

    /// Whether the LSTM is TFLite's CIFG (`i = 1 − f`, no input-gate weights).
    pub fn cifg(&self) -> bool {
        self.lstm()
            .is_some_and(|v| v.coupling == GateCoupling::Cifg)
    }

    /// Whether the cell is an AUGRU (a GRU with `attention`): it takes an attention
    /// input, one value per row and step.
    pub fn has_attention(&self) -> bool {
        self.gru().is_some_and(|v| v.attention)
    }

    /// The LSTM projection size, if any.
    pub fn proj_size(&self) -> Option<usize> {
        self.lstm().and_then(|v| v.proj_size)
    }

    /// Whether the cell has peephole weights (LSTM: `[3*H]` in order i, f, o, CIFG
    /// `[2*H]` in order f, o; GRU: `[2*H]` in order r, z).
    pub fn has_peephole(&self) -> bool {
        match self {
            CellKind::Lstm(v) => v.peephole,
            CellKind::Gru(v) => v.peephole,
            CellKind::Rnn(_) => false,
        }
    }

    /// Whether the LSTM normalises its gates (TFLite's layer-norm LSTM).
    pub fn layer_norm(&self) -> bool {
        self.lstm().is_some_and(|v| v.layer_norm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::variants;

    /// Error messages name the cell by `name`; `cifg` tells TFLite's coupled LSTM
    /// from the others (ONNX export refuses it).
    #[test]
    fn names_and_couplings() {
        assert_eq!(CellKind::RNN_TANH.name(), "rnn");
        assert_eq!(CellKind::LSTM.name(), "lstm");
        assert_eq!(variants::lstm_cifg(true, Some(2)).name(), "lstm");
        assert_eq!(CellKind::GRU.name(), "gru");
        assert!(variants::lstm_cifg(false, None).cifg());
        assert!(!variants::lstm_cifg(false, None).input_forget());
        assert!(variants::lstm_input_forget(false).input_forget());
        for cell in [
            CellKind::LSTM,
            variants::lstm_input_forget(true),
            CellKind::GRU,
            CellKind::RNN_TANH,
        ] {
            assert!(!cell.cifg(), "{cell:?}");
        }
    }
}
