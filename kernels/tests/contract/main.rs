//! The bad-input contract (docs/errors.md): every kind of bad argument to every kernels
//! entry point gives the documented `Error` variant naming the argument; NaN/inf inputs
//! give the NaN/inf outputs the f64 reference gives; values beyond the f32 range give
//! inf/NaN, never a panic. The fuzz targets in `fuzz/` check the same at random.
//!
//! - `configs`: configs, PyTorch weights and ONNX weights;
//! - `calls`: the sequence and step APIs' arguments, sequence lengths, ISA selection;
//! - `training`: the training forward, `backward` and `backward_onnx`;
//! - `special_values`: NaN, infinities and values beyond the f32 range, and
//!   regression tests for fuzz findings.

mod calls;
mod configs;
mod special_values;
mod training;

use rnn_kernels::{
    CellKind, Error, LayerWeights, OwnedLayerWeights, PackedRnn, RnnConfig, SeqShape,
    SequenceOutputMut,
};
use rnn_reference::testkit::errors::{assert_invalid, assert_length, assert_overflow};
use rnn_reference::testkit::fixture::Sawtooth;
use rnn_reference::testkit::variants;

const LSTM: CellKind = variants::LSTM;
const LSTM_PEEP: CellKind = variants::LSTM_PEEPHOLE;
const LSTM_PROJ: CellKind = variants::lstm(false, Some(2));
/// TFLite's layer-norm LSTM (no peepholes, projection or CIFG).
const LSTM_NORM: CellKind = variants::lstm_layer_norm(false, None, false);
const GRU: CellKind = variants::GRU;
const GRU_ONNX: CellKind = variants::GRU_ONNX;
const TANH: CellKind = variants::RNN_TANH;

/// Every variant; projected LSTMs project the 4 hidden units used here to 2.
const ALL_CELLS: [CellKind; variants::COUNT] = variants::all(2);

/// Deterministic small values in [-0.3, 0.3].
fn vals(n: usize, seed: usize) -> Vec<f32> {
    Sawtooth::SMALL.vals(n, seed)
}

/// Valid weights for every set of `cfg`, with biases.
fn weights(cfg: &RnnConfig) -> Vec<OwnedLayerWeights<f32>> {
    Sawtooth::SMALL.weights(cfg)
}

fn views(w: &[OwnedLayerWeights<f32>]) -> Vec<LayerWeights<'_, f32>> {
    rnn_reference::views(w)
}

fn packed(cfg: &RnnConfig) -> PackedRnn {
    PackedRnn::from_pytorch(cfg, &views(&weights(cfg))).unwrap()
}

/// The error a table row expects.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// `Error::Length { expected, actual }`.
    Length(usize, usize),
    /// `Error::Invalid`.
    Invalid,
    /// `Error::Overflow`.
    Overflow,
}

/// Asserts `r` is the error `want` naming `arg`.
#[track_caller]
fn expect(r: Result<impl std::fmt::Debug, Error>, arg: &str, want: Want) {
    match want {
        Want::Length(expected, actual) => assert_length(r, arg, expected, actual),
        Want::Invalid => assert_invalid(r, arg),
        Want::Overflow => assert_overflow(r, arg),
    }
}

/// Output buffers of the right size for `cfg` and `shape`.
struct Outs {
    y: Vec<f32>,
    h_n: Vec<f32>,
    c_n: Vec<f32>,
}

impl Outs {
    fn new(cfg: &RnnConfig, shape: SeqShape) -> Self {
        let d = shape.dims(cfg).unwrap();
        Outs {
            y: vec![f32::NAN; d.y],
            h_n: vec![f32::NAN; d.h],
            c_n: vec![f32::NAN; d.c],
        }
    }
    fn out(&mut self, lstm: bool) -> SequenceOutputMut<'_> {
        SequenceOutputMut {
            y: &mut self.y,
            h_n: Some(&mut self.h_n),
            c_n: lstm.then_some(&mut self.c_n[..]),
        }
    }
}
