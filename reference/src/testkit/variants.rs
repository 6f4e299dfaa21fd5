//! The one list of every cell variant the tests, fuzz targets and benches iterate, the
//! named variants they pick from, and the pickers that draw one from a selector byte
//! or a generator.
//!
//! Adding a variant (a new [`CellKind`] or a new flag) means: add it to [`all`] (and
//! [`COUNT`]), give it its place in [`index`] (which does not compile until then), and
//! make [`from_selector`] and [`random`] reach it (the unit tests below check both).
//! Every test that loops over `all` then covers it.

use crate::{
    Activation, CellKind, GateActivations, GateCoupling, GruVariant, LstmVariant, RnnActivation,
    RnnVariant,
};

use super::rng::SplitMix64;

/// Elman RNN with `tanh` (PyTorch's default, ONNX's default).
pub const RNN_TANH: CellKind = CellKind::RNN_TANH;

/// Elman RNN with `relu`.
pub const RNN_RELU: CellKind = CellKind::RNN_RELU;

/// An LSTM with the given flags.
pub const fn lstm(peephole: bool, proj_size: Option<usize>) -> CellKind {
    CellKind::Lstm(LstmVariant {
        peephole,
        proj_size,
        coupling: GateCoupling::None,
        layer_norm: false,
    })
}

/// PyTorch's LSTM: no peepholes, no projection.
pub const LSTM: CellKind = CellKind::LSTM;

/// An LSTM with peepholes (ONNX `P`), no projection.
pub const LSTM_PEEPHOLE: CellKind = lstm(true, None);

/// An LSTM with ONNX's `input_forget` (f = 1 − i), with or without peepholes, no
/// projection (no peer defines coupled gates with a projection).
pub const fn lstm_input_forget(peephole: bool) -> CellKind {
    CellKind::Lstm(LstmVariant {
        peephole,
        proj_size: None,
        coupling: GateCoupling::InputForget,
        layer_norm: false,
    })
}

/// TFLite's CIFG LSTM (`i = 1 − f`, three gate blocks f, g, o), with or without
/// peepholes (f, o) and projection.
pub const fn lstm_cifg(peephole: bool, proj_size: Option<usize>) -> CellKind {
    CellKind::Lstm(LstmVariant {
        peephole,
        proj_size,
        coupling: GateCoupling::Cifg,
        layer_norm: false,
    })
}

/// This crate's peephole GRU (`p ⊙ h` in r and z) in either reset form.
pub const fn gru_peephole(linear_before_reset: bool) -> CellKind {
    CellKind::Gru(GruVariant {
        linear_before_reset,
        peephole: true,
        attention: false,
    })
}

/// AUGRU (oneDNN's `augru` / `lbr_augru`: the update gate scaled by `1 − a`) in either
/// reset form.
pub const fn augru(linear_before_reset: bool) -> CellKind {
    CellKind::Gru(GruVariant {
        linear_before_reset,
        peephole: false,
        attention: true,
    })
}

/// GRU with `linear_before_reset = true` (PyTorch, cuDNN).
pub const GRU: CellKind = CellKind::GRU;

/// GRU with `linear_before_reset = false` (ONNX's default).
pub const GRU_ONNX: CellKind = CellKind::GRU_ONNX;

/// TFLite's layer-norm LSTM with the given flags (CIFG: `i = 1 − f`, three gate
/// blocks).
pub const fn lstm_layer_norm(peephole: bool, proj_size: Option<usize>, cifg: bool) -> CellKind {
    CellKind::Lstm(LstmVariant {
        peephole,
        proj_size,
        coupling: if cifg {
            GateCoupling::Cifg
        } else {
            GateCoupling::None
        },
        layer_norm: true,
    })
}

/// The layer-norm LSTMs the reference defines and the kernels do not run yet (so they
/// are not in [`all`], which every kernel test walks): plain, with peepholes and
/// projection, CIFG, and CIFG with peepholes and projection (to `proj` units).
pub const fn layer_norm_lstms(proj: usize) -> [CellKind; 4] {
    [
        lstm_layer_norm(false, None, false),
        lstm_layer_norm(true, Some(proj), false),
        lstm_layer_norm(false, None, true),
        lstm_layer_norm(true, Some(proj), true),
    ]
}

/// How many variants [`all`] lists.
pub const COUNT: usize = 18;

/// Every variant, each flag combination once, in a fixed order; projected LSTMs
/// project to `proj` units (valid for a hidden size above `proj`, with `proj >= 1`).
///
/// ```
/// use rnn_reference::{testkit::variants, RnnConfig};
/// for cell in variants::all(2) {
///     assert!(RnnConfig::new(cell, 3, 4).validate().is_ok());
/// }
/// ```
pub const fn all(proj: usize) -> [CellKind; COUNT] {
    [
        RNN_TANH,
        RNN_RELU,
        LSTM,
        LSTM_PEEPHOLE,
        lstm(false, Some(proj)),
        lstm(true, Some(proj)),
        GRU,
        GRU_ONNX,
        lstm_input_forget(false),
        lstm_input_forget(true),
        gru_peephole(true),
        gru_peephole(false),
        augru(true),
        augru(false),
        lstm_cifg(false, None),
        lstm_cifg(true, None),
        lstm_cifg(false, Some(proj)),
        lstm_cifg(true, Some(proj)),
    ]
}

/// Whether the int8 path (and its oracle, `rnn_reference::quant`) runs `cell`: every
/// variant today (the layer-norm LSTM since its oracle row exists); the tests filter by
/// it so that a variant added without an int8 path names itself here.
pub fn int8_capable(cell: CellKind) -> bool {
    let _ = cell;
    true
}

/// [`all`] and the four [`layer_norm_lstms`]: every cell the sequence API runs.
pub fn all_with_layer_norm(proj: usize) -> Vec<CellKind> {
    all(proj)
        .into_iter()
        .chain(layer_norm_lstms(proj))
        .collect()
}

/// The position of `cell` in [`all`] (whatever its projection size). An exhaustive
/// match: a new variant or flag does not compile until it has a place.
pub fn index(cell: CellKind) -> usize {
    match cell {
        CellKind::Rnn(RnnVariant { activation }) => match activation {
            RnnActivation::Tanh => 0,
            RnnActivation::Relu => 1,
        },
        CellKind::Lstm(LstmVariant {
            peephole,
            proj_size,
            coupling,
            layer_norm,
        }) => {
            assert!(!layer_norm, "{cell:?} has no place in the list yet");
            match coupling {
                GateCoupling::None => {
                    2 + usize::from(peephole) + 2 * usize::from(proj_size.is_some())
                }
                GateCoupling::InputForget => {
                    assert!(proj_size.is_none(), "{cell:?} is not a valid variant");
                    8 + usize::from(peephole)
                }
                GateCoupling::Cifg => {
                    14 + usize::from(peephole) + 2 * usize::from(proj_size.is_some())
                }
            }
        }
        CellKind::Gru(GruVariant {
            linear_before_reset,
            peephole,
            attention,
        }) => {
            if attention {
                assert!(!peephole, "{cell:?} has no place in the list yet");
                12 + usize::from(!linear_before_reset)
            } else if peephole {
                10 + usize::from(!linear_before_reset)
            } else {
                6 + usize::from(!linear_before_reset)
            }
        }
    }
}

/// The variant a fuzzer's selector byte names. `sel % 7` picks one of seven slots; the
/// projected-LSTM slot takes its peephole flag from bit 3 of `sel`, the two
/// unprojected LSTM slots take ONNX's `input_forget` from bit 7 and the two GRU slots
/// their peephole from bit 7, or become AUGRUs with bit 6 (which wins over bit 7), so
/// every variant of [`all`] is reachable; bit 6 in an LSTM slot makes it TFLite's
/// CIFG (which wins over bit 7). Projected LSTMs project to `1 + proj % (hidden - 1)` units,
/// or lose their projection when `hidden <= 1`.
///
/// The mapping only grows: the committed fuzz corpora (their `crash-*` regression
/// inputs included) encode it. Bit 7 joined it with `input_forget` and the peephole
/// GRU; a corpus input with bit 7 set in an unprojected LSTM or a GRU slot now runs
/// that variant. Bit 6 joined it with the AUGRU (in GRU slots), then with CIFG (in
/// LSTM slots).
pub fn from_selector(sel: u8, hidden: usize, proj: usize) -> CellKind {
    let projected = hidden > 1;
    let every = all(if projected {
        1 + proj % (hidden - 1)
    } else {
        1
    });
    let slot = match sel % 7 {
        // The projected LSTM, without or with peepholes.
        4 => 4 + usize::from(sel & 8 != 0),
        s @ 5.. => usize::from(s) + 1,
        s => usize::from(s),
    };
    match every[slot] {
        CellKind::Lstm(v) if sel & 0x40 != 0 => {
            lstm_cifg(v.peephole, v.proj_size.filter(|_| projected))
        }
        CellKind::Lstm(v) if v.proj_size.is_some() && !projected => lstm(v.peephole, None),
        CellKind::Lstm(v) if v.proj_size.is_none() && sel & 0x80 != 0 => {
            lstm_input_forget(v.peephole)
        }
        CellKind::Gru(v) if sel & 0x40 != 0 => augru(v.linear_before_reset),
        CellKind::Gru(v) if sel & 0x80 != 0 => gru_peephole(v.linear_before_reset),
        cell => cell,
    }
}

/// A random variant for `hidden` units: [`random`]'s draw from `rng`, then the flags
/// added since (an unprojected LSTM is coupled, `input_forget`, one time in three; a
/// GRU has peepholes one time in three) drawn from `extra`. Keeping the later flags' draws on their own generator keeps
/// `rng`'s draws, and so every seeded case drawn before them, unchanged.
pub fn random_with(rng: &mut SplitMix64, extra: &mut SplitMix64, hidden: usize) -> CellKind {
    match random(rng, hidden) {
        CellKind::Lstm(v) if v.proj_size.is_none() && extra.below(3) == 0 => {
            lstm_input_forget(v.peephole)
        }
        CellKind::Gru(v) if extra.below(3) == 0 => gru_peephole(v.linear_before_reset),
        cell => cell,
    }
}

/// The flags added after [`random_with`]'s: a plain GRU becomes an AUGRU one time in
/// three, and an uncoupled LSTM TFLite's CIFG one time in four (its peephole and
/// projection kept), drawn from `later` (a third generator, so the draws of `rng` and
/// `extra`, and every seeded case drawn before it, stay unchanged; a GRU's draw is the
/// one it made before CIFG joined).
pub fn with_later_flags(cell: CellKind, later: &mut SplitMix64) -> CellKind {
    match cell {
        CellKind::Gru(v) if !v.peephole && later.below(3) == 0 => augru(v.linear_before_reset),
        CellKind::Lstm(v) if v.coupling == GateCoupling::None && later.below(4) == 0 => {
            lstm_cifg(v.peephole, v.proj_size)
        }
        cell => cell,
    }
}

/// One of ONNX's eleven activation functions, uniformly, drawn from `rng` with
/// parameters from small sets of exact `f32` values (negative slopes and offsets).
/// Every slope is at most 1, as tanh's and relu's:
/// the error bound of a random problem is a worst case over its layers and steps, and
/// slopes above 1 would compound it past the outputs (the tests refuse a bound that
/// large as vacuous). Slopes above 1 run in the golden cases and the unit tests; the
/// kernels' code does not depend on the parameters' values.
pub fn random_activation(rng: &mut SplitMix64) -> Activation {
    let k = rng.below(11);
    let mut pick = |v: &[f32]| v[rng.below(v.len())];
    match k {
        0 => Activation::Relu,
        1 => Activation::Tanh,
        2 => Activation::Sigmoid,
        3 => Activation::Affine {
            alpha: pick(&[0.5, -0.75, 1.0]),
            beta: pick(&[0.0, 0.25, -0.5]),
        },
        4 => Activation::LeakyRelu {
            alpha: pick(&[0.01, 0.25, -0.5]),
        },
        // Threshold 0 only: any other threshold is a jump, and an output within its
        // error of the jump is undecidable (the bound there is the whole value).
        5 => Activation::ThresholdedRelu { alpha: 0.0 },
        6 => {
            // (alpha, beta) with alpha·beta ≤ 1: slopes 0.375, 0.75, 0.9375.
            let (alpha, beta) = [(0.75, 0.5), (1.5, 0.5), (0.75, 1.25)][rng.below(3)];
            Activation::ScaledTanh { alpha, beta }
        }
        7 => Activation::HardSigmoid {
            alpha: pick(&[0.2, 0.5]),
            beta: pick(&[0.5, 0.25]),
        },
        8 => Activation::Elu {
            alpha: pick(&[1.0, 0.5, 0.75]),
        },
        9 => Activation::Softsign,
        _ => Activation::Softplus,
    }
}

/// A function for the gate slot `f` of a gated cell (LSTM, GRU): one with values in
/// `[0, 1]`, the sigmoid or a hard sigmoid (Keras's `recurrent_activation`). ONNX
/// allows any function there, but a gate outside `[0, 1]` turns the cell's convex
/// updates into amplifying ones (`1 − z` up to 2, `c` growing geometrically, a
/// peephole feeding `c`'s error back), which a random problem cannot bound usefully;
/// the golden cases run ONNX Runtime's GRU with affine gates and its LSTM with a
/// thresholded relu gate, and the fuzz targets draw any function.
pub fn random_gate(rng: &mut SplitMix64) -> Activation {
    let alpha = [0.2f32, 0.5][rng.below(2)];
    if rng.coin() {
        Activation::Sigmoid
    } else {
        Activation::HardSigmoid { alpha, beta: 0.5 }
    }
}

/// Both directions' functions, every slot a [`random_activation`] drawn from `rng`.
pub fn random_gate_activations(rng: &mut SplitMix64) -> [GateActivations; 2] {
    let mut dir = || GateActivations {
        f: random_activation(rng),
        g: random_activation(rng),
        h: random_activation(rng),
    };
    [dir(), dir()]
}

/// ONNX activations for a network of `cell` one time in four (else `None`, the
/// standard functions), drawn from `rng`: [`random_gate_activations`], with the gate
/// slot of a gated cell redrawn by [`random_gate`]. Always makes the same number of
/// draws, so what follows in `rng` does not depend on the outcome.
pub fn random_activations(cell: CellKind, rng: &mut SplitMix64) -> Option<[GateActivations; 2]> {
    let custom = rng.below(4) == 0;
    let mut acts = random_gate_activations(rng);
    for a in &mut acts {
        let gate = random_gate(rng);
        if !matches!(cell, CellKind::Rnn(_)) {
            a.f = gate;
        }
    }
    custom.then_some(acts)
}

/// A random variant of the original eight (every variant but the coupled LSTMs) for
/// `hidden` units, drawn from `rng`: the cell kind first, then its flags (a projection
/// to `1 + below(hidden - 1)` units half the time when `hidden > 1`). The order of
/// draws is fixed: the kernels' property tests derive whole problems from one
/// generator, so changing it changes every seeded case ([`random_with`] adds the
/// later flags).
pub fn random(rng: &mut SplitMix64, hidden: usize) -> CellKind {
    match rng.below(3) {
        0 => {
            if rng.coin() {
                RNN_TANH
            } else {
                RNN_RELU
            }
        }
        1 => {
            let peephole = rng.coin();
            let proj = (hidden > 1 && rng.coin()).then(|| 1 + rng.below(hidden - 1));
            lstm(peephole, proj)
        }
        _ => {
            if rng.coin() {
                GRU
            } else {
                GRU_ONNX
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RnnConfig;

    #[test]
    fn all_lists_distinct_valid_variants_in_index_order() {
        let every = all(3);
        for (k, cell) in every.into_iter().enumerate() {
            assert_eq!(index(cell), k, "{cell:?}");
            assert!(RnnConfig::new(cell, 2, 5).validate().is_ok(), "{cell:?}");
        }
    }

    #[test]
    fn selector_reaches_every_variant() {
        let (hidden, proj) = (5, 1); // projection 1 + 1 % 4 = 2
        let mut seen = [false; COUNT];
        for sel in 0..=u8::MAX {
            let cell = from_selector(sel, hidden, proj);
            assert_eq!(all(2)[index(cell)], cell);
            seen[index(cell)] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
        // Without room for a projection, no projected variant.
        for sel in 0..=u8::MAX {
            let cell = from_selector(sel, 1, 9);
            assert!(RnnConfig::new(cell, 1, 1).validate().is_ok(), "{cell:?}");
        }
    }

    #[test]
    fn random_activations_reach_every_function_and_stay_valid() {
        let mut rng = SplitMix64::new(3);
        let mut seen = std::collections::HashSet::new();
        let mut custom = 0;
        for _ in 0..400 {
            if let Some(acts) = random_activations(LSTM, &mut rng) {
                custom += 1;
                let cfg = RnnConfig::new(LSTM, 2, 3).with_activations(Some(acts));
                assert!(cfg.validate().is_ok(), "{acts:?}");
                for a in [acts[0].f, acts[0].g, acts[0].h, acts[1].f] {
                    seen.insert(a.onnx_name());
                }
            }
        }
        assert_eq!(seen.len(), 11, "{seen:?}");
        assert!((60..140).contains(&custom), "{custom} of 400");
    }

    #[test]
    fn random_reaches_every_variant() {
        let mut seen = [false; COUNT];
        let (mut rng, mut extra) = (SplitMix64::new(1), SplitMix64::new(2));
        for _ in 0..1000 {
            let cell = random_with(&mut rng, &mut extra, 4);
            let cell = with_later_flags(cell, &mut extra);
            assert!(RnnConfig::new(cell, 2, 4).validate().is_ok(), "{cell:?}");
            seen[index(cell)] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }
}
