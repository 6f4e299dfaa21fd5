//! What the reference's property tests share: a random configuration, shape, weight
//! set and sequence lengths from a few flags and a seed.

use rnn_reference::testkit::Lcg;
use rnn_reference::{CellKind, Direction, OwnedLayerWeights, RnnConfig, SeqShape, TensorLayout};

/// A problem's configuration, shape, weights and lengths, before its tensors.
pub struct Setup {
    pub cfg: RnnConfig,
    pub shape: SeqShape,
    pub weights: Vec<OwnedLayerWeights<f64>>,
    pub seq_lens: Option<Vec<usize>>,
}

/// `cell` with sizes `(I, H, B, T)`, `layers`, direction `dir` (forward, reverse,
/// bidirectional, bidirectional summed), `clip`, layout and lengths from the flags. Weights are drawn from
/// `rng` (exact in `f32`): `W_ih`, `W_hh` at `gain / (I_l + H_out)`, biases at 1,
/// `W_hr` at `1 / H`, peepholes at `peephole`, layer-norm scales at 1; lengths come
/// from `seed`.
#[allow(clippy::too_many_arguments)]
pub fn setup(
    cell: CellKind,
    (i, h, b, t): (usize, usize, usize, usize),
    layers: usize,
    dir: usize,
    clip: Option<f32>,
    batch_major: bool,
    lens: bool,
    seed: u64,
    (gain, peephole): (f64, f64),
    rng: &mut Lcg,
) -> Setup {
    let direction = [
        Direction::Forward,
        Direction::Reverse,
        Direction::Bidirectional,
        Direction::BidirectionalSum,
    ][dir];
    let cfg = RnnConfig::new(cell, i, h)
        .with_layers(layers)
        .with_direction(direction)
        .with_clip(clip);
    let layout = if batch_major {
        TensorLayout::BatchMajor
    } else {
        TensorLayout::TimeMajor
    };
    let shape = SeqShape::new(t, b).with_layout(layout);
    let weights = (0..cfg.num_weight_sets())
        .map(|k| {
            let layer = k / cfg.num_directions();
            let l = cfg.weight_lens(layer);
            let s = gain / (cfg.layer_input_size(layer) + cfg.output_size()) as f64;
            OwnedLayerWeights {
                w_ih: rng.vec_f32_exact(l.w_ih, s),
                w_hh: rng.vec_f32_exact(l.w_hh, s),
                b_ih: Some(rng.vec_f32_exact(l.bias, 1.0)),
                b_hh: Some(rng.vec_f32_exact(l.bias, 1.0)),
                w_hr: l.w_hr.map(|n| rng.vec_f32_exact(n, 1.0 / h as f64)),
                peephole: l.peephole.map(|n| rng.vec_f32_exact(n, peephole)),
                layer_norm: l.layer_norm.map(|n| rng.vec_f32_exact(n, 1.0)),
            }
        })
        .collect();
    let seq_lens = lens.then(|| {
        (0..b)
            .map(|r| (seed as usize >> (3 * r)) % (t + 1))
            .collect()
    });
    Setup {
        cfg,
        shape,
        weights,
        seq_lens,
    }
}
