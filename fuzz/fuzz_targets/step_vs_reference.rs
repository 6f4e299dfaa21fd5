//! Every available ISA against the f64 reference on small problems whose values include
//! NaN, ±inf, subnormals, ±1e30 and f32::MAX: the whole-sequence API and the single-step
//! API. See `rnn_fuzz` (fuzz/src/lib.rs) for exactly what is compared and why.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use rnn_fuzz::*;
use rnn_kernels::half::bf16;
use rnn_kernels::{
    Element, Isa, PackedCell, PackedRnn, SequenceOutputMut, StepInput, StepOutputMut, Workspace,
};
use rnn_reference::{Direction, RnnConfig};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(mut p) = arbitrary_problem(&mut u) else { return };
    if with_layer_norm(&mut u, &mut p).is_err() {
        return;
    }
    check_sequence(&p);
    check_step(&p);
    check_bf16_sequence(&p);
});

fn check_for(p: &Problem, steps: usize, layers_cfg: &RnnConfig, x: &[f32], h0: Option<&[f32]>, c0: Option<&[f32]>) -> Check {
    let bounded = overflow_free(layers_cfg, &p.weights, steps, x, h0, c0);
    if p.finite_mode && bounded {
        Check::Values
    } else if bounded {
        Check::Classes
    } else {
        Check::None
    }
}

/// The f32 sequence API at every ISA against the references.
fn check_sequence(p: &Problem) {
    check_sequence_as::<f32>(p, "", compare);
}

/// bf16 weights, inputs and outputs at every ISA (on AVX512-BF16 the first layer's
/// input projection then runs on `vdpbf16ps`), against the references on the same
/// bf16-rounded values.
fn check_bf16_sequence(p: &Problem) {
    check_sequence_as::<bf16>(&rounded_bf16(p), "bf16 ", compare_bf16_outputs);
}

type Compare = fn(&str, &[f32], &[f64], &[f32], &[f64], Check) -> Result<(), String>;

/// Runs `q` with weights, inputs and outputs stored as `T` (`q`'s values must already
/// be representable in `T`) at every ISA and compares the widened outputs.
fn check_sequence_as<T: Element>(q: &Problem, label: &str, cmp: Compare) {
    let (Expected { want: r64, bound }, r32) = references(q);
    let check = check_for(q, q.shape.steps, &q.cfg, &q.x, q.h0.as_deref(), q.c0.as_deref());
    let d = q.shape.dims(&q.cfg).unwrap();
    let lstm = q.cfg.cell.has_cell_state();
    let inputs = q.inputs_as(T::from_f32);
    let back = |v: &[T]| v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
    let mut ws = Workspace::new();
    for isa in Isa::available() {
        let rnn = PackedRnn::<T>::pack(&q.cfg, &views(&q.weights))
            .expect("valid weights")
            .with_isa(Some(isa))
            .expect("available ISA");
        let nan = T::from_f32(f32::NAN);
        let (mut y, mut h_n, mut c_n) = (vec![nan; d.y], vec![nan; d.h], vec![nan; d.c]);
        let out = SequenceOutputMut { y: &mut y, h_n: Some(&mut h_n), c_n: lstm.then_some(&mut c_n[..]) };
        rnn.forward(&mut ws, q.shape, inputs.input(), out).expect("forward accepts a well-formed problem");
        let ctx = |e: String| {
            panic!(
                "{label}sequence mismatch at {isa} ({check:?}): {e}\ncfg {:?}\nshape {:?} seq_lens {:?} gain {}",
                q.cfg, q.shape, q.seq_lens, q.gain
            )
        };
        cmp("y", &back(&y), &r64.y, &r32.y, &bound.y, check).unwrap_or_else(ctx);
        cmp("h_n", &back(&h_n), &r64.h_n, &r32.h_n, &bound.h_n, check).unwrap_or_else(ctx);
        if lstm {
            cmp("c_n", &back(&c_n), &r64.c_n, &r32.c_n, &bound.c_n, check).unwrap_or_else(ctx);
        }
    }
}

/// The single-step API on layer 0's forward weights: x = the first B rows of `x`,
/// h/c = the first B rows of h0/c0 (or a fixed pattern).
fn check_step(p: &Problem) {
    let cfg = RnnConfig {
        num_layers: 1,
        direction: Direction::Forward,
        ..p.cfg
    };
    let b = p.shape.batch;
    let (i, h, ho) = (cfg.input_size, cfg.hidden_size, cfg.output_size());
    let lstm = cfg.cell.has_cell_state();
    let x = &p.x[..b * i];
    let hv: Vec<f32> = match &p.h0 {
        Some(h0) => h0[..b * ho].to_vec(),
        None => (0..b * ho).map(|k| ((k * 7) % 13) as f32 / 13.0 - 0.5).collect(),
    };
    let cv: Vec<f32> = match &p.c0 {
        Some(c0) => c0[..b * h].to_vec(),
        None => (0..b * h).map(|k| ((k * 5) % 11) as f32 / 5.0 - 1.0).collect(),
    };
    let c_in = lstm.then_some(&cv[..]);
    // AUGRU: the first B attention values.
    let att = p.attention.as_deref().map(|a| &a[..b]);
    let Expected { want, bound } = step_bounded::<Kernels>(&cfg, &p.weights[0].view(), b, (x, &hv, c_in, att)).expect("reference step");
    let want32 = rnn_reference::step_with_attention(&cfg, &p.weights[0].view(), b, x, &hv, c_in, att).expect("reference step f32");
    let check = check_for(p, 1, &cfg, x, Some(&hv), c_in);
    let mut ws = Workspace::new();
    for isa in Isa::available() {
        let cell = PackedCell::from_pytorch(&cfg, &p.weights[0].view())
            .expect("valid weights")
            .with_isa(Some(isa))
            .expect("available ISA");
        let (mut h1, mut c1) = (vec![f32::NAN; b * ho], vec![f32::NAN; b * h]);
        cell.step(
            &mut ws,
            b,
            StepInput { x, h: &hv, c: c_in, attention: att },
            StepOutputMut {
                h: &mut h1,
                c: lstm.then_some(&mut c1[..]),
            },
        )
        .expect("step accepts a well-formed problem");
        let ctx = |e: String| panic!("step mismatch at {isa} ({check:?}): {e}\ncfg {cfg:?} batch {b}");
        compare("h", &h1, &want.h_n, &want32.h, &bound.h_n, check).unwrap_or_else(ctx);
        if lstm {
            compare("c", &c1, &want.c_n, &want32.c, &bound.c_n, check).unwrap_or_else(ctx);
        }
    }
}
