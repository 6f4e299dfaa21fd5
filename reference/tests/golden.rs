//! Golden-vector tests: every `*.json` case of `$RNN_GOLDEN_DIR` (default: the
//! workspace's `testdata/golden`) through the reference, in f64 and in f32.

use rnn_reference::testkit::golden::{
    golden_dir, load_all, load_all_with_skips, run_all, Case, Tolerance, UNSUPPORTED_VARIANTS,
};
use rnn_reference::testkit::{to_f32, to_f64};
use rnn_reference::{forward, views, SequenceInput};

type Outputs = (Vec<f64>, Vec<f64>, Vec<f64>);

fn run_f64(case: &Case) -> Result<Outputs, String> {
    let w = views(&case.weights);
    let out = forward(
        &case.cfg,
        &w,
        case.shape,
        SequenceInput {
            x: &case.x,
            h0: Some(&case.h0),
            c0: case.cfg.cell.has_cell_state().then_some(&case.c0[..]),
            seq_lens: case.seq_lens.as_deref(),
            attention: None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((out.y, out.h_n, out.c_n))
}

fn run_f32(case: &Case) -> Result<Outputs, String> {
    let owned = case.weights_f32();
    let w = views(&owned);
    let (x, h0, c0) = (to_f32(&case.x), to_f32(&case.h0), to_f32(&case.c0));
    let out = forward(
        &case.cfg,
        &w,
        case.shape,
        SequenceInput {
            x: &x,
            h0: Some(&h0),
            c0: case.cfg.cell.has_cell_state().then_some(&c0[..]),
            seq_lens: case.seq_lens.as_deref(),
            attention: None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((to_f64(&out.y), to_f64(&out.h_n), to_f64(&out.c_n)))
}

#[test]
fn golden_reference_f64() {
    let cases = load_all(&golden_dir());
    run_all(&cases, Tolerance::F64, "reference f64", run_f64);
}

#[test]
fn golden_reference_f32() {
    let cases = load_all(&golden_dir());
    run_all(&cases, Tolerance::F32, "reference f32", run_f32);
}

/// Every variant the format can express is present in the project's own copy, so the
/// test is not vacuous (skipped when `RNN_GOLDEN_DIR` points elsewhere).
#[test]
fn golden_cases_cover_the_variants() {
    if std::env::var_os("RNN_GOLDEN_DIR").is_some() {
        return;
    }
    let cases = load_all(&golden_dir());
    assert!(cases.len() >= 18, "only {} cases", cases.len());
    assert!(cases.iter().any(|c| c.onnx));
    assert!(cases.iter().any(|c| c.seq_lens.is_some()));
    assert!(cases.iter().any(|c| c.cfg.num_layers > 1));
    assert!(cases.iter().any(|c| c.cfg.cell.input_forget()));
}

/// Exactly the `variants/` cases `UNSUPPORTED_VARIANTS` lists are skipped in the
/// project's own directory (a variant that lands must leave the list); elsewhere, only
/// listed cases may be.
#[test]
fn golden_variants_skip_exactly_the_listed_cases() {
    let (_, mut skipped) = load_all_with_skips(&golden_dir());
    let mut listed: Vec<String> = UNSUPPORTED_VARIANTS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    for s in &skipped {
        assert!(listed.contains(s), "{s} skipped but not listed");
    }
    if std::env::var_os("RNN_GOLDEN_DIR").is_none() {
        skipped.sort();
        listed.sort();
        assert_eq!(skipped, listed, "remove an entry once its variant works");
    }
}

#[test]
#[should_panic(expected = "holds no *.json case")]
fn empty_directory_fails() {
    let dir = std::env::temp_dir().join(format!("rnn-golden-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("README.md"), "not a case").unwrap();
    let _ = load_all(&dir);
}

#[test]
fn failures_name_file_output_and_worst_element() {
    let mut cases = load_all(&golden_dir());
    cases.truncate(1);
    cases[0].h_n[0] += 1.0;
    let err = std::panic::catch_unwind(|| {
        run_all(&cases, Tolerance::F64, "tampered", run_f64);
    })
    .expect_err("a tampered case must fail");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains(&cases[0].path.display().to_string()), "{msg}");
    assert!(msg.contains("h_n: 1 of"), "{msg}");
    assert!(msg.contains("worst at index 0"), "{msg}");
}
