//! The int8 oracle's layer-norm LSTM row against the float reference's, on values the
//! quantization keeps exactly: weight codes times a power-of-two scale, and inputs and
//! states that are multiples of their rows' activation scale `2⁻⁸` with each row's
//! range `[0, 255 · 2⁻⁸]`, so every code is exact and the integer products are the
//! float products. Then `step_quantized` in `f64` must be `step` in `f64` on the
//! dequantized weights up to `f64` rounding, for every peephole / CIFG combination:
//! the normalisation, `γ`, the biases after it and o's peephole on `c'` included.

use rnn_reference::quant::{
    step_quantized, ActivationQuant, QuantizedLayerWeights, QuantizedMatrix,
};
use rnn_reference::testkit::rng::SplitMix64;
use rnn_reference::testkit::variants::lstm_layer_norm;
use rnn_reference::{step, LayerWeights, RnnConfig};

/// `rows` rows of `k` multiples of `2⁻⁸` in `[0, 255 · 2⁻⁸]`, each row holding both
/// ends (its range, so its scale is exactly `2⁻⁸` and its zero point 0).
fn exact_rows(rng: &mut SplitMix64, rows: usize, k: usize) -> Vec<f32> {
    let step = 1.0 / 256.0;
    (0..rows * k)
        .map(|e| match e % k {
            0 => 0.0,
            1 => 255.0 * step,
            _ => rng.below(256) as f32 * step,
        })
        .collect()
}

#[test]
fn int8_layer_norm_row_is_the_float_row_on_exact_codes() {
    let (i, h, b) = (5, 6, 2);
    let mut rng = SplitMix64::new(0x1a7e);
    for (peephole, cifg) in [(false, false), (true, false), (false, true), (true, true)] {
        let cfg = RnnConfig::new(lstm_layer_norm(peephole, None, cifg), i, h);
        let lens = cfg.weight_lens(0);
        let codes = |rng: &mut SplitMix64, n: usize| -> Vec<i8> {
            (0..n)
                .map(|_| (rng.below(255) as i32 - 127) as i8)
                .collect()
        };
        let (c_ih, c_hh) = (codes(&mut rng, lens.w_ih), codes(&mut rng, lens.w_hh));
        // Per-row power-of-two scales: the dequantized weights are exact.
        let g = cfg.gates() * h;
        let scales: Vec<f32> = (0..g).map(|r| [0.0078125, 0.015625][r % 2]).collect();
        let deq = |c: &[i8], k: usize| -> Vec<f64> {
            c.iter()
                .enumerate()
                .map(|(e, &v)| f64::from(v) * f64::from(scales[e / k]))
                .collect()
        };
        let vecs = |rng: &mut SplitMix64, n: usize, mid: f64| -> Vec<f32> {
            (0..n)
                .map(|_| (mid + 0.5 * f64::from(rng.sym())) as f32)
                .collect()
        };
        let (b_ih, b_hh) = (vecs(&mut rng, g, 0.0), vecs(&mut rng, g, 0.0));
        let gamma = vecs(&mut rng, g, 1.0);
        let peep = lens.peephole.map(|n| vecs(&mut rng, n, 0.0));
        let x = exact_rows(&mut rng, b, i);
        let h0 = exact_rows(&mut rng, b, h);
        let c0: Vec<f32> = vecs(&mut rng, b * h, 0.0);

        let q = QuantizedLayerWeights {
            w_ih: QuantizedMatrix {
                codes: &c_ih,
                scales: &scales,
                zero_points: None,
            },
            w_hh: QuantizedMatrix {
                codes: &c_hh,
                scales: &scales,
                zero_points: None,
            },
            b_ih: Some(&b_ih),
            b_hh: Some(&b_hh),
            w_hr: None,
            peephole: peep.as_deref(),
            layer_norm: Some(&gamma),
        };
        let c0_64: Vec<f64> = c0.iter().map(|&v| f64::from(v)).collect();
        let got = step_quantized::<f64>(
            &cfg,
            &q,
            ActivationQuant::PerRow,
            &x,
            (&h0, Some(&c0_64), None),
        )
        .unwrap();

        let f = |v: &[f32]| -> Vec<f64> { v.iter().map(|&v| f64::from(v)).collect() };
        let (w_ih, w_hh) = (deq(&c_ih, i), deq(&c_hh, h));
        let (bi, bh, gm) = (f(&b_ih), f(&b_hh), f(&gamma));
        let pp = peep.as_deref().map(f);
        let w = LayerWeights {
            b_ih: Some(&bi),
            b_hh: Some(&bh),
            peephole: pp.as_deref(),
            layer_norm: Some(&gm),
            ..LayerWeights::new(&w_ih, &w_hh)
        };
        let want = step(&cfg, &w, b, &f(&x), &f(&h0), Some(&c0_64)).unwrap();

        for (name, g, w) in [("h", &got.h, &want.h), ("c", &got.c, &want.c)] {
            assert_eq!(g.len(), w.len(), "{name}");
            for (e, (g, w)) in g.iter().zip(w).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-12,
                    "peephole {peephole} cifg {cifg} {name}[{e}]: int8 {g}, float {w}"
                );
            }
        }
        // The comparison bites: the normalisation moves h far more than the tolerance.
        assert!(want.h.iter().any(|v| v.abs() > 1e-3));
    }
}
