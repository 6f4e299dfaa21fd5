//! `RNN_KERNELS_ISA` selects exactly the path it names. The process default is decided
//! once per process, so each value runs in a child process of this test binary (the
//! test `child_checks`, which does nothing unless `CHILD` is set):
//!
//! - every path this CPU has: the process default is that path, `PackedRnn` and
//!   `PackedCell` without a forced ISA report it, and their results are bit-identical
//!   to the same objects forced to it, and differ from every other available path on
//!   at least one fingerprint problem (so the bits prove which path ran);
//! - every path it lacks, and an unknown name: the default is an error naming the
//!   request, and every call without a forced ISA returns it (never a fallback);
//! - unset, empty or blank: the best path.

mod common;

use std::process::Command;

use common::{run_at, Outputs};
use rnn_kernels::half::bf16;
use rnn_kernels::{
    Direction, Element, Error, Isa, PackedCell, PackedRnn, RnnConfig, StepInput, StepOutputMut,
    Workspace, ISA_ENV,
};
use rnn_reference::testkit::{problem, variants, Problem};
use rnn_reference::views;

/// Set in a child: what it must find (`<name>`, or `unset`).
const CHILD: &str = "RNN_KERNELS_ISA_TEST_EXPECT";

/// Runs `child_checks` in a child process with `RNN_KERNELS_ISA` set to `value` (or
/// removed) and `CHILD` to `expect`; returns its output, failing on a failed child.
fn run_child(value: Option<&str>, expect: &str) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_checks", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, expect);
    match value {
        Some(v) => cmd.env(ISA_ENV, v),
        None => cmd.env_remove(ISA_ENV),
    };
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {value:?} failed:\n{text}");
    assert!(
        text.contains(&format!("child checked {expect}")),
        "the child did not run its checks:\n{text}"
    );
    text
}

#[test]
fn every_value_selects_exactly_its_path() {
    for &isa in Isa::ALL {
        let text = run_child(Some(isa.name()), isa.name());
        eprintln!(
            "{ISA_ENV}={isa}: {}",
            text.lines().find(|l| l.contains("differs")).unwrap_or("")
        );
    }
    // Spellings the parser accepts, in any case and with blanks.
    run_child(Some(" AVX2 "), "avx2");
    run_child(Some("generic"), "portable");
    run_child(Some("avx9"), "avx9");
    for unset in [None, Some(""), Some("  ")] {
        run_child(unset, "unset");
    }
}

/// The fingerprint problems: f32 (every path), then two with bf16 weights and bf16
/// inputs (where AVX512-BF16 multiplies with `vdpbf16ps`), the second with subnormal
/// inputs, which `vdpbf16ps` reads as zero (so `tanh(w x)` is 0 there, `w x` elsewhere).
fn fingerprints() -> [Problem; 3] {
    let mut subnormal = problem(19, (2, 16, 1, 1), 1, Some(variants::RNN_TANH));
    for w in &mut subnormal.weights {
        w.w_ih.fill(1.0);
        w.w_hh.fill(0.0);
        (w.b_ih, w.b_hh) = (None, None);
    }
    subnormal.x.fill(f32::from_bits(0x0001_0000)); // a bf16 subnormal
    [
        problem(17, (40, 33, 7, 3), 2, Some(variants::lstm(true, Some(20)))),
        problem(18, (64, 40, 5, 3), 1, Some(variants::GRU)),
        subnormal,
    ]
}

/// The bits of `p`'s outputs through `PackedRnn` and through `PackedCell` (one step of
/// layer 0), each at `isa` (`None`: the process default), f32 for the first fingerprint
/// and bf16 weights, inputs and outputs for the others.
fn run(k: usize, p: &Problem, isa: Option<Isa>) -> Result<[Vec<u32>; 2], Error> {
    let bits = |o: Outputs| {
        [o.0, o.1, o.2]
            .iter()
            .flatten()
            .map(|v| v.to_bits())
            .collect()
    };
    Ok(match k {
        0 => [bits(run_at::<f32, f32>(p, isa)?), step_bits::<f32>(p, isa)?],
        _ => [
            bits(run_at::<bf16, bf16>(p, isa)?),
            step_bits::<bf16>(p, isa)?,
        ],
    })
}

/// One step of layer 0's weights stored as `T`, inputs and outputs in `T`.
fn step_bits<T: Element>(p: &Problem, isa: Option<Isa>) -> Result<Vec<u32>, Error> {
    let cfg = RnnConfig {
        num_layers: 1,
        direction: Direction::Forward,
        ..p.cfg
    };
    let cell = PackedCell::<T>::pack(&cfg, &p.weights[0].view())?.with_isa(isa)?;
    let b = p.shape.batch;
    let t = |v: &[f32]| v.iter().map(|&x| T::from_f32(x)).collect::<Vec<T>>();
    let x = t(&p.x[..b * cfg.input_size]);
    let h = t(&vec![0.25; b * cfg.output_size()]);
    let c = t(&vec![0.5; b * cfg.hidden_size]);
    let lstm = cfg.cell.has_cell_state();
    let nan = T::from_f32(f32::NAN);
    let (mut h1, mut c1) = (vec![nan; h.len()], vec![nan; c.len()]);
    cell.step(
        &mut Workspace::new(),
        b,
        StepInput {
            x: &x,
            h: &h,
            c: lstm.then_some(&c[..]),
            attention: None,
        },
        StepOutputMut {
            h: &mut h1,
            c: lstm.then_some(&mut c1[..]),
        },
    )?;
    let c1 = if lstm { c1 } else { Vec::new() };
    Ok(h1.iter().chain(&c1).map(|v| v.to_f32().to_bits()).collect())
}

/// For an available `isa`, per API (sequence, step): the default's bits are the forced
/// path's, and every other available path computes differently on at least one
/// fingerprint, so the bits prove which path ran. Returns what differs from what.
fn check_bits(isa: Isa, ps: &[Problem]) -> Vec<String> {
    let mut differs = Vec::new();
    for (api, name) in ["sequence", "step"].into_iter().enumerate() {
        let mut distinct = vec![false; Isa::ALL.len()];
        for (k, p) in ps.iter().enumerate() {
            let default = &run(k, p, None).unwrap()[api];
            let forced = &run(k, p, Some(isa)).unwrap()[api];
            assert!(default == forced, "{name} {k}: default != forced {isa}");
            for (o, &other) in Isa::ALL.iter().enumerate() {
                if other.is_available() && run(k, p, Some(other)).unwrap()[api] != *forced {
                    distinct[o] = true;
                    differs.push(format!("{name} {other} (fingerprint {k})"));
                }
            }
        }
        for (o, &other) in Isa::ALL.iter().enumerate() {
            let same = other.is_available() && other != isa && !distinct[o];
            assert!(
                !same,
                "{name}: {other} computes as {isa} on every fingerprint"
            );
        }
    }
    differs
}

#[test]
fn child_checks() {
    let Ok(expect) = std::env::var(CHILD) else {
        return; // not a child: `every_value_selects_exactly_its_path` drives this
    };
    let want = match expect.as_str() {
        "unset" => Ok(Isa::best()),
        name => name.parse::<Isa>().and_then(Isa::check),
    };
    assert_eq!(Isa::default_for_process(), want, "{ISA_ENV}={expect}");
    let ps = fingerprints();
    match want {
        Ok(isa) => {
            let rnn = PackedRnn::from_pytorch(&ps[0].cfg, &views(&ps[0].weights)).unwrap();
            assert_eq!(rnn.isa().unwrap(), isa);
            let differs = check_bits(isa, &ps).join(", ");
            println!("child checked {expect}: differs from {differs}");
        }
        Err(e) => {
            let Error::IsaUnavailable { requested, .. } = &e else {
                panic!("{e:?}");
            };
            assert_eq!(requested, expect.trim());
            for (k, p) in ps.iter().enumerate() {
                assert_eq!(run(k, p, None).unwrap_err(), e, "fingerprint {k}");
            }
            println!("child checked {expect}: every call fails with {e}");
        }
    }
}
