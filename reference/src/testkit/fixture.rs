//! Fixed, non-random values for tests that need a valid network and inputs but no
//! particular numbers (the bad-input contract, the allocation counter).

use crate::{OwnedLayerWeights, RnnConfig};

/// A deterministic saw-tooth of values: element `k` of stream `seed` is
/// `((k * 7919 + seed * 104_729) % 601) / divisor - offset`.
#[derive(Clone, Copy, Debug)]
pub struct Sawtooth {
    /// The divisor.
    pub divisor: f32,
    /// The offset subtracted.
    pub offset: f32,
}

impl Sawtooth {
    /// Values in `[-0.3, 0.3]`.
    pub const SMALL: Sawtooth = Sawtooth {
        divisor: 1000.0,
        offset: 0.3,
    };

    /// Values in `[-0.1, 0.1]`.
    pub const TINY: Sawtooth = Sawtooth {
        divisor: 3000.0,
        offset: 0.1,
    };

    /// `n` values of stream `seed`.
    pub fn vals(&self, n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|k| (((k * 7919 + seed * 104_729) % 601) as f32 / self.divisor) - self.offset)
            .collect()
    }

    /// Valid weights for every set of `cfg`, with both biases (set `k` draws from
    /// streams `6k .. 6k + 5`).
    pub fn weights(&self, cfg: &RnnConfig) -> Vec<OwnedLayerWeights<f32>> {
        (0..cfg.num_weight_sets())
            .map(|k| {
                let l = cfg.weight_lens(k / cfg.num_directions());
                OwnedLayerWeights {
                    w_ih: self.vals(l.w_ih, 6 * k),
                    w_hh: self.vals(l.w_hh, 6 * k + 1),
                    b_ih: Some(self.vals(l.bias, 6 * k + 2)),
                    b_hh: Some(self.vals(l.bias, 6 * k + 3)),
                    w_hr: l.w_hr.map(|n| self.vals(n, 6 * k + 4)),
                    peephole: l.peephole.map(|n| self.vals(n, 6 * k + 5)),
                    layer_norm: l.layer_norm.map(|n| self.vals(n, 6 * k + 6)),
                }
            })
            .collect()
    }
}
