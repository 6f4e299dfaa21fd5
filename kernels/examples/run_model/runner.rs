//! Loading a `.safetensors` or `.onnx` model file and running it on a case's inputs.
//! Shared by the `run_model` example and `kernels/tests/models.rs`.

use std::path::Path;

use rnn_kernels::half::{bf16, f16};
use rnn_kernels::models::{Dtype, LoadOptions, OnnxModel, OnnxRnn, SafetensorsRnn};
use rnn_kernels::{
    CellKind, Element, Isa, PackedRnn, SeqShape, SequenceInput, SequenceOutputMut, Workspace,
};

use crate::case::Case;

/// What the command line (or a case's `run` object) says about the model.
#[derive(Clone, Debug, Default)]
pub struct ModelArgs {
    /// safetensors: the module's name prefix.
    pub prefix: Option<String>,
    /// safetensors: the cell (needed for an `nn.RNN`).
    pub cell: Option<CellKind>,
    /// ONNX: a node of the network to run, when the graph has several.
    pub node: Option<String>,
    /// How to store the weights (default: the file's type for safetensors, f32 for ONNX).
    pub dtype: Option<Dtype>,
}

/// `lstm`, `gru`, `rnn-tanh` or `rnn-relu` (PyTorch's variants).
pub fn parse_cell(s: &str) -> Result<CellKind, String> {
    Ok(match s {
        "lstm" => CellKind::LSTM,
        "gru" => CellKind::GRU,
        "rnn-tanh" => CellKind::RNN_TANH,
        "rnn-relu" => CellKind::RNN_RELU,
        other => {
            return Err(format!(
                "--cell: expected lstm, gru, rnn-tanh or rnn-relu, got {other:?}"
            ))
        }
    })
}

/// `f32`, `f16` or `bf16`.
pub fn parse_dtype(s: &str) -> Result<Dtype, String> {
    match s {
        "f32" => Ok(Dtype::F32),
        "f16" => Ok(Dtype::F16),
        "bf16" => Ok(Dtype::Bf16),
        other => Err(format!("--dtype: expected f32, f16 or bf16, got {other:?}")),
    }
}

/// A packed network of any weight type.
pub enum AnyRnn {
    F32(PackedRnn<f32>),
    F16(PackedRnn<f16>),
    Bf16(PackedRnn<bf16>),
}

/// A loaded model: the network and a one-line description.
pub struct Loaded {
    pub rnn: AnyRnn,
    pub description: String,
}

/// Opens `path` by its extension (`.safetensors` or `.onnx`) and packs it.
pub fn load(path: &Path, args: &ModelArgs) -> Result<Loaded, String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let fail = |e: rnn_kernels::Error| format!("{}: {e}", path.display());
    match ext {
        "safetensors" => {
            let mut opts = LoadOptions::new();
            if let Some(p) = &args.prefix {
                opts = opts.prefix(p.clone());
            }
            if let Some(c) = args.cell {
                opts = opts.cell(c);
            }
            let m = SafetensorsRnn::open(path, &opts).map_err(fail)?;
            let rnn = pack_any(&m, args.dtype.unwrap_or(m.dtype())).map_err(fail)?;
            let description = format!(
                "safetensors module {:?} ({} tensors), {:?}, weights stored as {}",
                m.prefix(),
                m.dtype(),
                m.config(),
                rnn.weight_type()
            );
            Ok(Loaded { rnn, description })
        }
        "onnx" => {
            let m = OnnxModel::open(path).map_err(fail)?;
            let net = match &args.node {
                Some(n) => m.find(n),
                None => m.single(),
            }
            .map_err(fail)?;
            let rnn = pack_any(net, args.dtype.unwrap_or(Dtype::F32)).map_err(fail)?;
            let description = format!(
                "onnx nodes {:?} ({:?}, inputs {:?}, outputs {:?}), {:?}, weights stored as {}",
                net.nodes(),
                net.layout(),
                net.inputs(),
                net.outputs(),
                net.config(),
                rnn.weight_type()
            );
            Ok(Loaded { rnn, description })
        }
        other => Err(format!(
            "{}: expected a .safetensors or .onnx file, got extension {other:?}",
            path.display()
        )),
    }
}

/// A loaded model, packable with any weight type.
trait Pack {
    fn pack_as<W: Element>(&self) -> rnn_kernels::Result<PackedRnn<W>>;
}

impl Pack for SafetensorsRnn {
    fn pack_as<W: Element>(&self) -> rnn_kernels::Result<PackedRnn<W>> {
        self.pack()
    }
}

impl Pack for OnnxRnn {
    fn pack_as<W: Element>(&self) -> rnn_kernels::Result<PackedRnn<W>> {
        self.pack()
    }
}

/// Packs `m` with weights stored as `dtype` (f64 is not a storage type: f32).
fn pack_any(m: &impl Pack, dtype: Dtype) -> rnn_kernels::Result<AnyRnn> {
    Ok(match dtype {
        Dtype::F16 => AnyRnn::F16(m.pack_as()?),
        Dtype::Bf16 => AnyRnn::Bf16(m.pack_as()?),
        _ => AnyRnn::F32(m.pack_as()?),
    })
}

/// The outputs of one run, `f32`, in the case format's layouts.
pub struct Outputs {
    pub y: Vec<f32>,
    pub h_n: Vec<f32>,
    /// Empty for cells without a cell state.
    pub c_n: Vec<f32>,
}

impl Outputs {
    /// The output named `y`, `h_n` or `c_n`.
    pub fn get(&self, name: &str) -> &[f32] {
        match name {
            "y" => &self.y,
            "h_n" => &self.h_n,
            _ => &self.c_n,
        }
    }
}

impl AnyRnn {
    /// The same network forced onto `isa` (the tests run every available one; the
    /// example takes `RNN_KERNELS_ISA`).
    #[allow(dead_code)]
    pub fn with_isa(&self, isa: Isa) -> Result<AnyRnn, String> {
        let e = |e: rnn_kernels::Error| e.to_string();
        Ok(match self {
            AnyRnn::F32(r) => AnyRnn::F32(r.clone().with_isa(Some(isa)).map_err(e)?),
            AnyRnn::F16(r) => AnyRnn::F16(r.clone().with_isa(Some(isa)).map_err(e)?),
            AnyRnn::Bf16(r) => AnyRnn::Bf16(r.clone().with_isa(Some(isa)).map_err(e)?),
        })
    }

    pub fn weight_type(&self) -> &'static str {
        match self {
            AnyRnn::F32(_) => f32::NAME,
            AnyRnn::F16(_) => f16::NAME,
            AnyRnn::Bf16(_) => bf16::NAME,
        }
    }

    /// The instruction set the calls use.
    pub fn isa(&self) -> String {
        let isa = match self {
            AnyRnn::F32(r) => r.isa(),
            AnyRnn::F16(r) => r.isa(),
            AnyRnn::Bf16(r) => r.isa(),
        };
        isa.map_or_else(|e| e.to_string(), |i| i.to_string())
    }

    /// Runs the case's inputs (time-major, `f32`).
    pub fn run(&self, case: &Case) -> Result<Outputs, String> {
        match self {
            AnyRnn::F32(r) => run(r, case),
            AnyRnn::F16(r) => run(r, case),
            AnyRnn::Bf16(r) => run(r, case),
        }
    }
}

fn run<W: Element>(rnn: &PackedRnn<W>, case: &Case) -> Result<Outputs, String> {
    let cfg = rnn.config();
    let (t, b, i) = (case.x.shape[0], case.x.shape[1], case.x.shape[2]);
    if i != cfg.input_size {
        return Err(format!(
            "inputs.x has {i} features per row, the model takes input_size = {}",
            cfg.input_size
        ));
    }
    let shape = SeqShape::new(t, b);
    let dims = shape.dims(cfg).map_err(|e| e.to_string())?;
    let (x, h0, c0) = (
        case.x.to_f32(),
        case.h0.as_ref().map(|a| a.to_f32()),
        case.c0.as_ref().map(|a| a.to_f32()),
    );
    let input = SequenceInput {
        x: &x,
        h0: h0.as_deref(),
        c0: c0.as_deref(),
        seq_lens: case.seq_lens.as_deref(),
        attention: None,
    };
    let mut out = Outputs {
        y: vec![0.0; dims.y],
        h_n: vec![0.0; dims.h],
        c_n: vec![0.0; dims.c],
    };
    let lstm = cfg.cell.has_cell_state();
    rnn.forward(
        &mut Workspace::new(),
        shape,
        input,
        SequenceOutputMut {
            y: &mut out.y,
            h_n: Some(&mut out.h_n),
            c_n: if lstm { Some(&mut out.c_n) } else { None },
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(out)
}
