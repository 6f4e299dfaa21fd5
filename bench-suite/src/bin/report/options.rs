//! Command-line options: the usage text, the element types, parsing, the ISA.

use rnn_bench_suite::{BenchConfig, Cell, CELLS, CONFIGS};
use rnn_kernels::{ActivationQuant, Isa, ISA_ENV};

pub(crate) const USAGE: &str = "\
usage: report [--quick] [--threads N] [--isa avx512bf16|avx512|avx2|portable] [--dtype f32,f16,bf16,int8,int8r]
              [--cells lstm,gru,rnn,augru,cifg,lstm-hardsigmoid,lstm-layernorm] [--configs BxHxIxT,...] [--pass forward|train] [--json]

  --quick          fewer repeats (min 3 runs / 0.2 s per case); f32 run < 1 minute,
                   --dtype f32,f16,bf16 about 2 minutes
  --threads N      rayon threads for the kernels and the baseline (default 1)
  --isa NAME       kernel path (default: $RNN_KERNELS_ISA if set, else the best this CPU
                   has; an unknown or unavailable name in either is an error)
  --dtype LIST     comma-separated subset of f32,f16,bf16,int8,int8r (default f32); f16 / bf16:
                   weights, x and y in the half type; int8: weights quantized per
                   channel, activations per row at run time, x and y f32; int8r: the
                   same with 7-bit activation codes (PyTorch's reduce_range, the fast
                   form on AVX2); f32 always runs first
  --cells LIST     comma-separated subset of lstm,gru,rnn,augru,cifg,lstm-hardsigmoid,
                   lstm-layernorm (default lstm,gru,rnn; augru is the GRU with oneDNN's
                   attention, for its cost over gru; cifg TFLite's coupled LSTM, for its
                   gain over lstm; lstm-hardsigmoid the LSTM with ONNX activations
                   [HardSigmoid, Tanh, Tanh], for the cost of the custom-activation path;
                   lstm-layernorm TFLite's layer-norm LSTM, for the cost of its row pass;
                   forward only, no unfused baseline)
  --configs LIST   comma-separated BxHxIxT shapes (default: the six bench-suite shapes)
  --pass NAME      forward (default) or train: a training step, forward_train + backward
                   (f32 gradients; --dtype sets the weights', x's, y's and dy's type)
  --json           one JSON object per line on stdout, progress on stderr";

/// Element type of the kernels under test (weights, `x` and `y`). To add one: a
/// variant here, its name in `name` / `parse`, and an arm in `build_kernels` and
/// `reference_on`. Variants are in run order (f32 first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Dtype {
    F32,
    F16,
    Bf16,
    /// int8 weights (per-channel), activations quantized per row at run time.
    Int8,
    /// The same with 7-bit activation codes (`ActivationQuant::PerRowReduced`,
    /// fbgemm's `reduce_range`, which PyTorch's dynamic quantization uses).
    Int8Reduced,
}

impl Dtype {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
            Dtype::Int8 => "int8",
            Dtype::Int8Reduced => "int8r",
        }
    }

    /// The activation scheme of an int8 dtype; `None` for the float ones.
    pub(crate) fn act_quant(self) -> Option<ActivationQuant> {
        match self {
            Dtype::Int8 => Some(ActivationQuant::PerRow),
            Dtype::Int8Reduced => Some(ActivationQuant::PerRowReduced),
            _ => None,
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Dtype> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Some(Dtype::F32),
            "f16" | "fp16" | "half" | "float16" => Some(Dtype::F16),
            "bf16" | "bfloat16" => Some(Dtype::Bf16),
            "int8" | "i8" | "qint8" => Some(Dtype::Int8),
            "int8r" | "int8-reduced" => Some(Dtype::Int8Reduced),
            _ => None,
        }
    }
}

/// What one timed run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// `PackedRnn::forward`.
    Forward,
    /// A training step: `forward_train` keeping activations, then `backward`.
    Train,
}

impl Pass {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pass::Forward => "forward",
            Pass::Train => "train",
        }
    }
}

pub(crate) struct Opts {
    pub(crate) quick: bool,
    pub(crate) threads: usize,
    pub(crate) isa: Isa,
    /// Sorted, deduplicated: f32 (if requested) first.
    pub(crate) dtypes: Vec<Dtype>,
    pub(crate) cells: Vec<Cell>,
    pub(crate) configs: Vec<BenchConfig>,
    pub(crate) json: bool,
    pub(crate) pass: Pass,
}

pub(crate) fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        quick: false,
        threads: 1,
        isa: Isa::Portable, // set below: --isa, else RNN_KERNELS_ISA, else the best
        dtypes: vec![Dtype::F32],
        cells: CELLS.to_vec(),
        configs: CONFIGS.to_vec(),
        json: false,
        pass: Pass::Forward,
    };
    let mut isa_flag = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--quick" => o.quick = true,
            "--json" => o.json = true,
            "--pass" => {
                o.pass = match value("--pass")?.as_str() {
                    "forward" => Pass::Forward,
                    "train" => Pass::Train,
                    v => return Err(format!("--pass: expected forward or train, got {v:?}")),
                }
            }
            "--threads" => {
                let v = value("--threads")?;
                o.threads =
                    v.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| {
                        format!("--threads: expected a positive integer, got {v:?}")
                    })?;
            }
            "--isa" => {
                let v = value("--isa")?;
                let isa: Isa = v.parse().map_err(|e| format!("--isa: {e}"))?;
                isa_flag = Some(isa.check().map_err(|e| format!("--isa: {e}"))?);
            }
            "--dtype" => {
                let v = value("--dtype")?;
                o.dtypes = v
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| {
                        Dtype::parse(s).ok_or_else(|| {
                            format!("--dtype: expected f32, f16 or bf16 (or a list), got {s:?}")
                        })
                    })
                    .collect::<Result<_, _>>()?;
                o.dtypes.sort();
                o.dtypes.dedup();
            }
            "--cells" => {
                let v = value("--cells")?;
                o.cells = v
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| {
                        Cell::parse(s).ok_or_else(|| {
                            format!("--cells: unknown cell {s:?} (lstm, gru, rnn, augru, cifg, lstm-hardsigmoid, lstm-layernorm)")
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--configs" | "--shapes" => {
                let v = value("--configs")?;
                o.configs = v
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| {
                        BenchConfig::parse(s).ok_or_else(|| {
                            format!("--configs: expected BxHxIxT (e.g. 1x256x256x100), got {s:?}")
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.cells.is_empty() || o.configs.is_empty() || o.dtypes.is_empty() {
        return Err("nothing to run (empty --cells, --configs or --dtype)".into());
    }
    o.isa = resolve_isa(isa_flag, std::env::var(ISA_ENV).ok().as_deref())?;
    Ok(Some(o))
}

/// The path to measure: `--isa` if given, else `RNN_KERNELS_ISA` (the kernels'
/// process default) if set, else the best this CPU has. A set variable must name an
/// available path even when `--isa` overrides it: a typo there is reported, never
/// silently replaced by another path.
pub(crate) fn resolve_isa(flag: Option<Isa>, env: Option<&str>) -> Result<Isa, String> {
    let from_env = match env.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => Some(
            v.parse::<Isa>()
                .and_then(Isa::check)
                .map_err(|e| format!("{ISA_ENV}={v}: {e}"))?,
        ),
        None => None,
    };
    match (flag, from_env) {
        (Some(f), Some(e)) if f != e => {
            eprintln!("report: --isa {f} overrides {ISA_ENV}={e}");
            Ok(f)
        }
        (Some(f), _) => Ok(f),
        (None, Some(e)) => Ok(e),
        (None, None) => Ok(Isa::best()),
    }
}
