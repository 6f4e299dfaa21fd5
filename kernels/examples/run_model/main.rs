//! Runs a model file on a case's inputs and compares with its expected outputs.
//!
//! ```text
//! cargo run --release -p rnn-kernels --features models --example run_model -- \
//!     MODEL CASE.json [--prefix P] [--cell lstm|gru|rnn-tanh|rnn-relu] [--node NAME]
//!     [--dtype f32|f16|bf16]
//! ```
//!
//! MODEL is a `.safetensors` file (a PyTorch `nn.LSTM` / `nn.GRU` / `nn.RNN`
//! `state_dict`; `--prefix` picks one module of several, `--cell` is needed for an
//! `nn.RNN`) or an `.onnx` file (its recurrent network; `--node` picks one of several).
//! The configuration comes from the file. CASE.json holds `inputs` (and, when present,
//! `outputs`) in the golden-vector format (`testdata/golden/README.md`). Prints the
//! max abs error per output and exits with 1 if any element is outside the golden
//! tolerance `1e-5 + 1e-4·|want|`, 2 on bad arguments or files.
//!
//! Every committed model: `testdata/models/*.json` (their `run` objects name the file
//! and arguments), e.g.
//! `run_model testdata/models/encoder_decoder.safetensors
//! testdata/models/st_encoder_lstm_proj.json --prefix encoder.rnn.`

mod case;
mod runner;

use std::path::PathBuf;
use std::process::ExitCode;

use runner::{parse_cell, parse_dtype, ModelArgs};

const USAGE: &str = "\
usage: run_model MODEL CASE.json [--prefix P] [--cell lstm|gru|rnn-tanh|rnn-relu] [--node NAME]
                 [--dtype f32|f16|bf16]

  MODEL           a .safetensors state_dict (nn.LSTM/GRU/RNN) or an .onnx model
  CASE.json       inputs (x [T,B,I], h0, c0, seq_lens) and expected outputs (y, h_n, c_n)
                  in the golden-vector format (testdata/golden/README.md)
  --prefix P      safetensors: the module's name prefix, e.g. encoder.rnn.
  --cell C        safetensors: the cell (required for nn.RNN: rnn-tanh or rnn-relu)
  --node NAME     onnx: a node of the network to run when the graph has several
  --dtype T       weight storage (default: the file's type; f32 for onnx)

Exit status: 0 all outputs within 1e-5 + 1e-4*|want|, 1 outside it, 2 bad arguments/files.";

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(Some((model, case, args))) => match run(&model, &case, &args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("run_model: {e}");
                ExitCode::from(2)
            }
        },
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("run_model: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

type Parsed = (PathBuf, PathBuf, ModelArgs);

fn parse(args: impl Iterator<Item = String>) -> Result<Option<Parsed>, String> {
    let mut files = Vec::new();
    let mut m = ModelArgs::default();
    // `--flag=value` is read as `--flag value`.
    let mut args = args.flat_map(|a| match a.split_once('=') {
        Some((f, v)) if f.starts_with("--") => vec![f.to_string(), v.to_string()],
        _ => vec![a],
    });
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        if !arg.starts_with("--") {
            files.push(PathBuf::from(arg));
            continue;
        }
        let v = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--prefix" => m.prefix = Some(v),
            "--cell" => m.cell = Some(parse_cell(&v)?),
            "--node" => m.node = Some(v),
            "--dtype" => m.dtype = Some(parse_dtype(&v)?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    match <[PathBuf; 2]>::try_from(files) {
        Ok([model, case]) => Ok(Some((model, case, m))),
        Err(files) => Err(format!(
            "expected MODEL and CASE.json, got {} file argument(s)",
            files.len()
        )),
    }
}

/// Loads, runs and compares; `Ok(false)` when an output is outside the tolerance.
fn run(
    model: &std::path::Path,
    case_path: &std::path::Path,
    args: &ModelArgs,
) -> Result<bool, String> {
    let loaded = runner::load(model, args)?;
    let case = case::load(case_path)?;
    println!("model: {}", model.display());
    println!("  {}", loaded.description);
    println!(
        "  isa {}, {} rayon thread(s) (the global pool; RAYON_NUM_THREADS sets it)",
        loaded.rnn.isa(),
        rayon::current_num_threads()
    );
    let (t, b) = (case.x.shape[0], case.x.shape[1]);
    println!(
        "case: {} ({}), T = {t}, B = {b}",
        case.name,
        case_path.display()
    );
    let out = loaded.rnn.run(&case)?;
    if case.outputs.is_empty() {
        println!(
            "  no expected outputs in the case: y[..4] = {:?}",
            &out.y[..out.y.len().min(4)]
        );
        return Ok(true);
    }
    let mut ok = true;
    for (name, want) in &case.outputs {
        let c = case::compare(out.get(name), want);
        let verdict = if c.outside == 0 {
            "ok"
        } else {
            "OUTSIDE the tolerance"
        };
        println!(
            "  {name:<3} max abs error {:.3e} over {} elements, {} outside 1e-5 + 1e-4*|want|: {verdict}",
            c.max_abs, c.len, c.outside
        );
        ok &= c.outside == 0;
    }
    Ok(ok)
}
