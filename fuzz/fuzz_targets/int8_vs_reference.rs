//! int8 weights (`PackedRnn::<i8>`: `pack` of the problem's f32 weights, and
//! `from_quantized` of codes at the ends of the int8 range with uint8-style zero
//! points) at every available ISA and every activation scheme, against the naive int8
//! oracle on small one-layer problems whose values include NaN, ±inf and huge numbers;
//! an LSTM is TFLite's layer-norm one an input in four (`with_layer_norm`).
//! See `rnn_fuzz::int8` (fuzz/src/int8.rs) for exactly what is compared and why.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use rnn_fuzz::int8::{imported_weights, int8_check, one_layer, oracle, values_and_bounds};
use rnn_fuzz::*;
use rnn_kernels::{ActivationQuant, Isa, PackedRnn, SequenceOutputMut, Workspace};
use rnn_reference::quant::{quantize_weights, quantized_views, OwnedQuantizedLayerWeights};
use rnn_reference::testkit::bound::Bounded;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(mut p) = arbitrary_problem(&mut u) else { return };
    one_layer(&mut p);
    if with_layer_norm(&mut u, &mut p).is_err() {
        return;
    }
    let Ok(imported) = imported_weights(&mut u, &p) else { return };
    let quantized = quantize_weights(&p.cfg, &views(&p.weights)).expect("valid weights");
    let packed = PackedRnn::<i8>::pack(&p.cfg, &views(&p.weights)).expect("pack accepts valid weights");
    let from = PackedRnn::<i8>::from_quantized(&p.cfg, &quantized_views(&imported))
        .expect("from_quantized accepts valid weights");
    for scheme in ActivationQuant::ALL {
        for isa in Isa::available() {
            check(&p, &packed, &quantized, scheme, isa, "pack");
            check(&p, &from, &imported, scheme, isa, "from_quantized");
        }
    }
});

/// Runs `rnn` (whose codes are `q`) at `isa` with `scheme` and compares its outputs
/// with the oracle's.
fn check(p: &Problem, rnn: &PackedRnn<i8>, q: &[OwnedQuantizedLayerWeights], scheme: ActivationQuant, isa: Isa, how: &str) {
    let rnn = rnn.clone().with_isa(Some(isa)).expect("available ISA").with_activation_quant(scheme);
    let d = p.shape.dims(&p.cfg).unwrap();
    let lstm = p.cfg.cell.has_cell_state();
    let (mut y, mut h_n, mut c_n) = (vec![f32::NAN; d.y], vec![f32::NAN; d.h], vec![f32::NAN; d.c]);
    let out = SequenceOutputMut { y: &mut y, h_n: Some(&mut h_n), c_n: lstm.then_some(&mut c_n[..]) };
    rnn.forward(&mut Workspace::new(), p.shape, p.input(), out).expect("forward accepts a well-formed problem");
    let check = int8_check(p, q);
    let ctx = |e: String| {
        panic!(
            "int8 {how} {scheme:?} at {isa} ({check:?}): {e}\ncfg {:?}\nshape {:?} seq_lens {:?}",
            p.cfg, p.shape, p.seq_lens
        )
    };
    let c_n: &[f32] = if lstm { &c_n } else { &[] };
    match check {
        Check::None => {}
        Check::Values => {
            let o = oracle::<Bounded<Kernels>>(&p.cfg, p, q, scheme, &y);
            for (name, got, v, slack) in [
                ("y", &y[..], &o.y, Some(&o.y_slack[..])),
                ("h_n", &h_n[..], &o.h_n, Some(&o.h_n_slack[..])),
                ("c_n", c_n, &o.c_n, None),
            ] {
                let (want, bound) = values_and_bounds(v, slack);
                let want32: Vec<f32> = want.iter().map(|&w| w as f32).collect();
                compare(name, got, &want, &want32, &bound, check).unwrap_or_else(ctx);
            }
        }
        Check::Classes => {
            let o64 = oracle::<f64>(&p.cfg, p, q, scheme, &y);
            let o32 = oracle::<f32>(&p.cfg, p, q, scheme, &y);
            for (name, got, w64, w32) in [
                ("y", &y[..], &o64.y, &o32.y),
                ("h_n", &h_n[..], &o64.h_n, &o32.h_n),
                ("c_n", c_n, &o64.c_n, &o32.c_n),
            ] {
                let bound = vec![f64::INFINITY; w64.len()];
                compare(name, got, w64, w32, &bound, check).unwrap_or_else(ctx);
            }
        }
    }
}
