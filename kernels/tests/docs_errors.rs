//! Every error message `docs/errors.md` quotes (the ``` `` … `` ``` spans) is the
//! `Display` of an error the code really returns for the input the document describes.
//! The messages of the model loaders (section "Model files") are checked when the
//! `models` feature is on (`cargo test -p rnn-kernels --features models`).

use std::path::Path;

use rnn_kernels::{
    CellKind, Isa, PackedRnn, RnnConfig, SeqShape, SequenceInput, SequenceOutputMut, Workspace,
};

/// The quoted messages of `docs/errors.md`, with whether they sit in the "Model files"
/// section.
fn quoted_messages() -> Vec<(String, bool)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/errors.md");
    let text = std::fs::read_to_string(&path).expect("docs/errors.md is readable");
    let mut out = Vec::new();
    let mut in_models = false;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            in_models = h.starts_with("Model files");
        }
        let mut rest = line;
        while let Some(start) = rest.find("`` ") {
            let after = &rest[start + 3..];
            let Some(end) = after.find(" ``") else { break };
            out.push((after[..end].to_string(), in_models));
            rest = &after[end + 3..];
        }
    }
    out
}

/// The errors the core table describes, produced by real calls.
fn core_messages() -> Vec<String> {
    let cfg = RnnConfig::new(CellKind::GRU, 3, 2);
    let (w_ih, w_hh) = (vec![0.1f32; 6 * 3], vec![0.1f32; 6 * 2]);
    let rnn = PackedRnn::from_pytorch(&cfg, &[rnn_kernels::LayerWeights::new(&w_ih, &w_hh)])
        .expect("valid weights");
    let (t, b) = (5, 2);
    let mut y = vec![0.0f32; t * b * 2];
    let mut run = |x: &[f32], lens: Option<&[usize]>| {
        let input = SequenceInput {
            seq_lens: lens,
            ..SequenceInput::new(x)
        };
        let out = SequenceOutputMut {
            y: &mut y,
            h_n: None,
            c_n: None,
        };
        rnn.forward(&mut Workspace::new(), SeqShape::new(t, b), input, out)
            .expect_err("a bad call")
            .to_string()
    };
    let short_x = run(&[0.0; 29], None); // [T, B, I] = 30 elements
    let long_len = run(&[0.0; 30], Some(&[5, 6]));
    let overflow = SeqShape::new(usize::MAX / 4, 2)
        .dims(&cfg)
        .expect_err("T * B * I overflows")
        .to_string();
    let isa = "avx9".parse::<Isa>().expect_err("unknown ISA").to_string();
    vec![short_x, long_len, overflow, isa]
}

#[cfg(feature = "models")]
fn model_messages() -> Vec<String> {
    use rnn_kernels::models::{LoadOptions, OnnxModel, SafetensorsRnn};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/models");
    let none = LoadOptions::new();
    let e = |r: Result<(), rnn_kernels::Error>| r.expect_err("a bad file").to_string();
    vec![
        e(SafetensorsRnn::open(dir.join("encoder_decoder.safetensors"), &none).map(drop)),
        e(SafetensorsRnn::open(dir.join("rnn_relu_nobias.safetensors"), &none).map(drop)),
        e(OnnxModel::open(dir.join("unsupported/lstm_input_forget_2.onnx")).map(drop)),
    ]
}

#[cfg(not(feature = "models"))]
fn model_messages() -> Vec<String> {
    Vec::new()
}

#[test]
fn every_quoted_message_is_what_the_code_prints() {
    let quoted = quoted_messages();
    assert!(
        quoted.iter().filter(|(_, m)| !m).count() >= 4,
        "the variants table's examples were not found: {quoted:?}"
    );
    let core = core_messages();
    let models = model_messages();
    let with_models = cfg!(feature = "models");
    for (msg, in_models) in &quoted {
        if *in_models && !with_models {
            continue;
        }
        let real = if *in_models { &models } else { &core };
        assert!(
            real.contains(msg),
            "docs/errors.md quotes\n  {msg}\nbut the code prints\n  {}",
            real.join("\n  ")
        );
    }
    // And each real message is quoted (so a test here cannot go stale silently).
    for msg in core.iter().chain(&models) {
        assert!(
            quoted.iter().any(|(q, _)| q == msg),
            "not quoted in docs/errors.md: {msg}"
        );
    }
}
