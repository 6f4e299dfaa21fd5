//! The `LSTM` / `GRU` / `RNN` nodes of an `.onnx` file, as networks ready to pack.

mod attrs;
mod chain;
mod graph;
mod node;
mod proto;

use std::path::Path;

use prost::Message;

use self::graph::Graph;
use self::node::{recurrent_nodes, RecurrentNode};
use super::{invalid, read_error};
use crate::{
    views, Element, LayerWeights, OwnedLayerWeights, PackedRnn, Result, RnnConfig, TensorLayout,
};

/// The recurrent networks of an ONNX model.
///
/// Every `LSTM`, `GRU` and `RNN` node of the main graph is read (attributes, constant
/// `W` / `R` / `B` / `P`); a chain of one node per layer as `torch.onnx.export` writes
/// it for a multi-layer or bidirectional module becomes **one** stacked [`OnnxRnn`]
/// named by the graph's own inputs and outputs. An attribute or value the kernels do
/// not implement (custom activations other than Tanh/Relu for RNN, ...) is an error
/// naming the node and the attribute.
///
/// ```no_run
/// use rnn_kernels::models::OnnxModel;
/// use rnn_kernels::PackedRnn;
/// let model = OnnxModel::open("lstm.onnx")?;
/// let net = model.single()?;                  // the one recurrent network in the file
/// let rnn: PackedRnn = net.pack()?;
/// println!("{:?}: feed `{}`, read `{:?}`", net.config(), net.inputs().x, net.outputs().y);
/// # Ok::<(), rnn_kernels::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct OnnxModel {
    rnns: Vec<OnnxRnn>,
}

impl OnnxModel {
    /// Reads and decodes `path` (the weights are copied out of the protobuf: ONNX
    /// stores them in another gate order anyway).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| read_error(path, e))?;
        Self::decode(&bytes, &path.display().to_string())
    }

    /// Like [`open`](Self::open) for a file already in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::decode(bytes, "onnx bytes")
    }

    fn decode(bytes: &[u8], what: &str) -> Result<Self> {
        let model = proto::ModelProto::decode(bytes)
            .map_err(|e| invalid(what, "an ONNX model (protobuf ModelProto)", e))?;
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| invalid(what, "an ONNX model with a graph", "no graph"))?;
        let g = Graph::new(graph);
        let found = recurrent_nodes(&g);
        if found.is_empty() {
            let mut ops: Vec<&str> = g.nodes.iter().map(graph::op).collect();
            ops.sort_unstable();
            ops.dedup();
            return Err(invalid(
                what,
                "a graph with an LSTM, GRU or RNN node",
                format!("nodes {}", ops.join(", ")),
            ));
        }
        let nodes = found
            .into_iter()
            .map(|(k, op)| RecurrentNode::read(&g, k, op))
            .collect::<Result<Vec<_>>>()?;
        Ok(OnnxModel {
            rnns: chain::assemble(&g, nodes),
        })
    }

    /// Every recurrent network, in graph order.
    pub fn rnns(&self) -> &[OnnxRnn] {
        &self.rnns
    }

    /// The network whose nodes include `node` (an ONNX node name).
    pub fn find(&self, node: &str) -> Result<&OnnxRnn> {
        self.rnns
            .iter()
            .find(|r| r.nodes.iter().any(|n| n == node))
            .ok_or_else(|| {
                invalid(
                    "node",
                    format!("one of {}", self.list()),
                    format!("{node:?}"),
                )
            })
    }

    /// The only network of the model (an error listing them if there are several).
    pub fn single(&self) -> Result<&OnnxRnn> {
        match self.rnns.as_slice() {
            [one] => Ok(one),
            _ => Err(invalid(
                "model",
                "exactly one recurrent network (pick one by node name with `find`, run_model \
                 --node)",
                self.list(),
            )),
        }
    }

    fn list(&self) -> String {
        let names: Vec<String> = self
            .rnns
            .iter()
            .map(|r| format!("[{}]", r.nodes.join(", ")))
            .collect();
        format!("{} networks: {}", names.len(), names.join(", "))
    }
}

/// Graph values a network reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnnxInputs {
    /// `x`: `[T, B, I]`, or `[B, T, I]` for [`TensorLayout::BatchMajor`].
    pub x: String,
    /// Initial hidden states `[L*D, B, H]`, or `None` when the graph starts from zeros.
    pub h0: Option<String>,
    /// Initial cell states (LSTM), likewise.
    pub c0: Option<String>,
    /// Per-row lengths (int32 `[B]`), if the graph has them.
    pub seq_lens: Option<String>,
}

/// Graph values a network writes (`None`: the graph does not use that output).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnnxOutputs {
    /// `y`.
    pub y: Option<String>,
    /// Final hidden states.
    pub h_n: Option<String>,
    /// Final cell states (LSTM).
    pub c_n: Option<String>,
}

/// One recurrent network of an ONNX graph: one node, or a chain of one node per layer
/// joined into a stack.
///
/// [`PackedRnn::forward`] reads and writes this crate's layouts: `x` `[T, B, I]`,
/// `y` `[T, B, D*H]` (batch-major `[B, T, ·]` for [`layout`](Self::layout)
/// [`TensorLayout::BatchMajor`]), states `[L*D, B, H]`. Those are the graph values'
/// layouts when PyTorch exported the network. When the outputs are an ONNX node's
/// own ([`raw_node_outputs`](Self::raw_node_outputs)), ONNX orders `Y` as
/// `[T, D, B, H]` (`layout` 0) and the states as `[B, D, H]` (`layout` 1), which differ
/// from this crate's when `D = 2`.
#[derive(Clone, Debug)]
pub struct OnnxRnn {
    nodes: Vec<String>,
    cfg: RnnConfig,
    layout: TensorLayout,
    inputs: OnnxInputs,
    outputs: OnnxOutputs,
    raw_node_outputs: bool,
    weights: Vec<OwnedLayerWeights<f32>>,
}

impl OnnxRnn {
    /// The ONNX node names, one per layer.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Cell, sizes, layers, direction and clip.
    pub fn config(&self) -> &RnnConfig {
        &self.cfg
    }

    /// The layout of `x` and `y` in the graph.
    pub fn layout(&self) -> TensorLayout {
        self.layout
    }

    /// The graph values to feed.
    pub fn inputs(&self) -> &OnnxInputs {
        &self.inputs
    }

    /// The graph values computed.
    pub fn outputs(&self) -> &OnnxOutputs {
        &self.outputs
    }

    /// Whether the outputs are the node's own `Y` / `Y_h` / `Y_c` (see the type's docs
    /// for their order) rather than PyTorch's reshaped ones.
    pub fn raw_node_outputs(&self) -> bool {
        self.raw_node_outputs
    }

    /// The weights in PyTorch layout (`f32`; f16 / bf16 / f64 initializers are widened
    /// or rounded), one set per layer and direction, index `layer * D + direction`.
    pub fn weights(&self) -> &[OwnedLayerWeights<f32>] {
        &self.weights
    }

    /// Borrowed views of [`weights`](Self::weights), for [`PackedRnn::pack`].
    pub fn weight_views(&self) -> Vec<LayerWeights<'_, f32>> {
        views(&self.weights)
    }

    /// Validates and packs the weights, stored as `W` (`f32`, `half::f16`, `half::bf16`).
    pub fn pack<W: Element>(&self) -> Result<PackedRnn<W>> {
        PackedRnn::<W>::pack(&self.cfg, &self.weight_views())
    }
}
