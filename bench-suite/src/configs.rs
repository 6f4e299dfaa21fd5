//! The benchmark shapes, the benchmarked cells and the FLOP counts.

use rnn_kernels::{Activation, CellKind, GateActivations, RnnConfig};
use rnn_reference::testkit::variants;

/// One benchmark shape: batch `B`, hidden `H`, input `I`, steps `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BenchConfig {
    /// `B`.
    pub batch: usize,
    /// `H`.
    pub hidden: usize,
    /// `I`.
    pub input: usize,
    /// `T`.
    pub steps: usize,
}

impl BenchConfig {
    /// A shape.
    pub const fn new(batch: usize, hidden: usize, input: usize, steps: usize) -> Self {
        BenchConfig {
            batch,
            hidden,
            input,
            steps,
        }
    }

    /// `BxHxIxT`, e.g. `1x256x256x100` (the peers scripts' `--shapes` syntax).
    pub fn label(&self) -> String {
        format!(
            "{}x{}x{}x{}",
            self.batch, self.hidden, self.input, self.steps
        )
    }

    /// Parses `BxHxIxT`.
    pub fn parse(s: &str) -> Option<Self> {
        let v: Vec<usize> = s
            .trim()
            .split('x')
            .map(|p| p.trim().parse().ok())
            .collect::<Option<_>>()?;
        match v[..] {
            [b, h, i, t] if b > 0 && h > 0 && i > 0 && t > 0 => Some(Self::new(b, h, i, t)),
            _ => None,
        }
    }

    /// The same shape with a different number of steps.
    pub fn with_steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }
}

/// The bench-suite shapes (B, H, I, T): Baidu DeepBench's RNN inference shapes scaled
/// to a 2-core machine. The same list as `peers/peers.py`.
pub const CONFIGS: [BenchConfig; 6] = [
    BenchConfig::new(1, 256, 256, 100),
    BenchConfig::new(1, 512, 512, 100),
    BenchConfig::new(1, 1024, 1024, 100),
    BenchConfig::new(16, 512, 512, 50),
    BenchConfig::new(64, 512, 512, 50),
    BenchConfig::new(64, 1024, 1024, 25),
];

/// The three benchmarked cells, in report order.
pub const CELLS: [Cell; 3] = [Cell::Lstm, Cell::Gru, Cell::Rnn];

/// A benchmarked cell, in the form the peers use: PyTorch LSTM (no peephole, no
/// projection), GRU with `linear_before_reset = true` (PyTorch / cuDNN form) and the
/// tanh RNN; and, outside the default set, oneDNN's AUGRU in the same GRU form (`--cells
/// augru`), TFLite's CIFG LSTM (`--cells cifg`) and the LSTM with ONNX activations
/// as Keras exports it (`--cells lstm-hardsigmoid`) and TFLite's layer-norm LSTM
/// (`--cells lstm-layernorm`), to measure each against its plain cell (no peer here
/// runs them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    /// `torch.nn.LSTM`.
    Lstm,
    /// `torch.nn.GRU`.
    Gru,
    /// `torch.nn.RNN(nonlinearity="tanh")`.
    Rnn,
    /// oneDNN's `lbr_augru`: the GRU above with the update gate scaled by `1 − a`.
    Augru,
    /// TFLite's CIFG: the LSTM above without input-gate weights, `i = 1 − f`.
    Cifg,
    /// The LSTM above with ONNX activations `[HardSigmoid, Tanh, Tanh]` (HardSigmoid's
    /// defaults, alpha 0.2, beta 0.5: Keras's `recurrent_activation="hard_sigmoid"`):
    /// the epilogue's custom-activation path.
    LstmHardSigmoid,
    /// TFLite's layer-norm LSTM (the LSTM above, each gate normalised over its units
    /// before the activation): the product, then a row pass.
    LstmLayerNorm,
}

impl Cell {
    /// `"lstm"`, `"gru"`, `"rnn"`, `"augru"`, `"cifg"`, `"lstm-hardsigmoid"` or
    /// `"lstm-layernorm"`.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
            Cell::Rnn => "rnn",
            Cell::Augru => "augru",
            Cell::Cifg => "cifg",
            Cell::LstmHardSigmoid => "lstm-hardsigmoid",
            Cell::LstmLayerNorm => "lstm-layernorm",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "lstm" => Some(Cell::Lstm),
            "gru" => Some(Cell::Gru),
            "rnn" => Some(Cell::Rnn),
            "augru" => Some(Cell::Augru),
            "cifg" => Some(Cell::Cifg),
            "lstm-hardsigmoid" => Some(Cell::LstmHardSigmoid),
            "lstm-layernorm" => Some(Cell::LstmLayerNorm),
            _ => None,
        }
    }

    /// The kernel crates' cell kind.
    pub fn kind(self) -> CellKind {
        match self {
            Cell::Lstm | Cell::LstmHardSigmoid => variants::LSTM,
            Cell::Gru => variants::GRU,
            Cell::Rnn => variants::RNN_TANH,
            Cell::Augru => variants::augru(true),
            Cell::Cifg => variants::lstm_cifg(false, None),
            Cell::LstmLayerNorm => variants::lstm_layer_norm(false, None, false),
        }
    }

    /// `G`: 4 (LSTM), 3 (GRU, AUGRU, CIFG) or 1.
    pub fn gates(self) -> usize {
        self.kind().gates()
    }

    /// A single forward layer of this cell with `cfg`'s sizes.
    pub fn rnn_config(self, cfg: &BenchConfig) -> RnnConfig {
        let rnn = RnnConfig::new(self.kind(), cfg.input, cfg.hidden);
        match self {
            Cell::LstmHardSigmoid => {
                let mut acts = GateActivations::standard(self.kind());
                acts.f = Self::HARD_SIGMOID;
                rnn.with_activations(Some([acts; 2]))
            }
            _ => rnn,
        }
    }

    /// Whether the unfused baseline has this cell (all but the layer-norm LSTM: its
    /// row pass is already the unfused form, and its sequence error bound, which the
    /// baseline's test needs, is vacuous past a few steps).
    pub fn has_unfused(self) -> bool {
        self != Cell::LstmLayerNorm
    }

    /// `lstm-hardsigmoid`'s gate function.
    pub const HARD_SIGMOID: Activation = Activation::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    };
}

/// FLOPs of a whole sequence, GEMM count only: `2·T·B·G·H·(I+H)`. Gate nonlinearities
/// are not counted, so numbers compare across tools.
pub fn flops(cell: Cell, cfg: &BenchConfig) -> u64 {
    cfg.steps as u64 * step_flops(cell, cfg)
}

/// FLOPs of one step (`T = 1`): `2·B·G·H·(I+H)`.
pub fn step_flops(cell: Cell, cfg: &BenchConfig) -> u64 {
    2 * cfg.batch as u64 * cell.gates() as u64 * cfg.hidden as u64 * (cfg.input + cfg.hidden) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_counts() {
        let c = BenchConfig::new(64, 512, 512, 50);
        assert_eq!(flops(Cell::Lstm, &c), 2 * 50 * 64 * 4 * 512 * 1024);
        assert_eq!(flops(Cell::Gru, &c), 2 * 50 * 64 * 3 * 512 * 1024);
        assert_eq!(flops(Cell::Rnn, &c), 2 * 50 * 64 * 512 * 1024);
        assert_eq!(step_flops(Cell::Lstm, &c) * 50, flops(Cell::Lstm, &c));
    }

    #[test]
    fn config_labels_round_trip() {
        for c in CONFIGS {
            assert_eq!(BenchConfig::parse(&c.label()), Some(c));
        }
        assert_eq!(BenchConfig::parse("1x2x3"), None);
        assert_eq!(BenchConfig::parse("0x2x3x4"), None);
    }
}
