//! The tape is the forward: recording a run gives bit-identical states.

use super::tape::record;
use crate::testkit::convert::weights_f64;
use crate::testkit::{problem, to_f64, variants};
use crate::{forward, views, SequenceInput};

#[test]
fn tape_reproduces_the_forward_bit_for_bit() {
    let cells = variants::all(3)
        .into_iter()
        .chain(variants::layer_norm_lstms(3));
    for (k, cell) in cells.enumerate() {
        for seed in 0..4u64 {
            let p = problem(seed * 16 + k as u64, (5, 7, 3, 4), 2, Some(cell));
            let owned: Vec<_> = p.weights.iter().map(|w| weights_f64(&w.view())).collect();
            let w = views(&owned);
            let (x, h0, c0) = (
                to_f64(&p.x),
                p.h0.as_deref().map(to_f64),
                p.c0.as_deref().map(to_f64),
            );
            let att = p.attention.as_deref().map(to_f64);
            let input = SequenceInput {
                x: &x,
                h0: h0.as_deref(),
                c0: c0.as_deref(),
                seq_lens: p.seq_lens.as_deref(),
                attention: att.as_deref(),
            };
            let out = forward(&p.cfg, &w, p.shape, input).unwrap();
            let tapes = record(&p.cfg, &w, p.shape, &input);
            let (yw, ho) = (p.cfg.y_width(), p.cfg.output_size());
            let at = |r: usize, d: usize| r * yw + p.cfg.direction.output_block(d) * ho;
            // A layer's output from its recorded steps (summed directions added in
            // direction order, as the forward adds them).
            let y_of = |dirs: &[Vec<super::tape::RowStep<f64>>], len: usize| {
                let mut y = vec![0.0f64; len];
                for (d, steps) in dirs.iter().enumerate() {
                    for s in steps {
                        let o = at(p.shape.row(s.t, s.b), d);
                        for (a, &v) in y[o..o + ho].iter_mut().zip(&s.h_new) {
                            *a += v;
                        }
                    }
                }
                y
            };
            let last = tapes.last().unwrap();
            assert_eq!(y_of(&last.dirs, out.y.len()), out.y, "{cell:?} seed {seed}");
            // Each layer's recorded input is the previous layer's output.
            for (l, pair) in tapes.windows(2).enumerate() {
                let y = y_of(&pair[0].dirs, pair[1].input.len());
                assert_eq!(pair[1].input, y, "{cell:?} layer {l}");
            }
        }
    }
}
