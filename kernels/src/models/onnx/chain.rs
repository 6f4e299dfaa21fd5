//! Joining the one-node-per-layer graphs PyTorch's exporter writes into one stacked
//! network.
//!
//! `torch.onnx.export` (`dynamo=False`) writes an `nn.LSTM(num_layers=L,
//! bidirectional=...)` as L nodes: layer l takes `Slice(h0, [l*D], [(l+1)*D], axis 0)`
//! (and `c0`) as its initial state, its `Y` `[T, D, B, H]` becomes the next layer's
//! input `[T, B, D*H]` through `Transpose(perm 0,2,1,3)` + `Reshape(0,0,-1)` (or
//! `Squeeze(axis 1)` for one direction), and the `Y_h` / `Y_c` of all layers are
//! `Concat`ed on axis 0 into `h_n` / `c_n`. `batch_first=True` adds a
//! `Transpose(perm 1,0,2)` before the first and after the last layer. A chain is
//! joined only if every piece matches; otherwise each node stands alone.

use super::graph::{attr_ints, op, Graph};
use super::node::{RecurrentNode, State};
use super::{OnnxInputs, OnnxOutputs, OnnxRnn};
use crate::{RnnConfig, TensorLayout};

/// Groups `nodes` (in graph order) into networks: chains of layers where the graph
/// is PyTorch's pattern, single nodes elsewhere.
pub(super) fn assemble(g: &Graph<'_>, nodes: Vec<RecurrentNode>) -> Vec<OnnxRnn> {
    // next[k]: the node that takes node k's (reshaped) output as its input.
    let next: Vec<Option<usize>> = nodes
        .iter()
        .map(|n| {
            let v = layer_output(g, n)?;
            let m = nodes.iter().position(|m| m.x == v)?;
            (g.sole_consumer(&v).is_some() && n.stacks_with(&nodes[m])).then_some(m)
        })
        .collect();
    let mut is_next = vec![false; nodes.len()];
    for m in next.iter().flatten() {
        is_next[*m] = true;
    }
    let mut out = Vec::new();
    for start in (0..nodes.len()).filter(|&k| !is_next[k]) {
        let mut chain = vec![start];
        while let Some(m) = next[*chain.last().unwrap_or(&start)] {
            if chain.contains(&m) {
                break;
            }
            chain.push(m);
        }
        let layers: Vec<&RecurrentNode> = chain.iter().map(|&k| &nodes[k]).collect();
        match stack(g, &layers) {
            Some(rnn) => out.push(rnn),
            None => out.extend(
                layers
                    .iter()
                    .map(|n| stack(g, std::slice::from_ref(n)).unwrap_or_else(|| alone(n))),
            ),
        }
    }
    out
}

/// `Y` reshaped to `[T, B, D*H]` by PyTorch's pattern, if it is.
fn layer_output(g: &Graph<'_>, n: &RecurrentNode) -> Option<String> {
    if n.attrs.layout != TensorLayout::TimeMajor {
        return None;
    }
    let y = n.y.as_deref()?;
    let first = g.sole_consumer(y)?;
    let out = |m: &super::proto::NodeProto| m.output.first().cloned();
    if n.cfg.num_directions() == 1 {
        let axes = first
            .input
            .get(1)
            .and_then(|a| g.const_ints(a))
            .or_else(|| attr_ints(first, "axes"));
        return (op(first) == "Squeeze" && axes.as_deref() == Some(&[1])).then(|| out(first))?;
    }
    if op(first) != "Transpose" || attr_ints(first, "perm").as_deref() != Some(&[0, 2, 1, 3]) {
        return None;
    }
    let reshape = g.sole_consumer(first.output.first()?)?;
    let shape = g.const_ints(reshape.input.get(1)?)?;
    let width = i64::try_from(n.output_width()).ok()?;
    let ok = op(reshape) == "Reshape"
        && shape.len() == 3
        && shape[0] == 0
        && matches!(shape[1], 0 | -1)
        && (shape[2] == -1 || shape[2] == width);
    ok.then(|| out(reshape))?
}

/// Whether `t` swaps the first two axes (`Transpose` with `perm` [1, 0, 2]: batch-
/// to time-major or back).
fn is_swap(t: &super::proto::NodeProto) -> bool {
    op(t) == "Transpose" && attr_ints(t, "perm").as_deref() == Some(&[1, 0, 2])
}

/// One network from consecutive layers, if the graph joins them (and their states)
/// in PyTorch's pattern. A single node always gives one.
fn stack(g: &Graph<'_>, layers: &[&RecurrentNode]) -> Option<OnnxRnn> {
    let (first, last) = (layers.first()?, layers.last()?);
    let d = first.cfg.num_directions();
    let h0 = stack_states(g, layers.iter().map(|n| &n.h0), d)?;
    let c0 = stack_states(g, layers.iter().map(|n| &n.c0), d)?;
    let h_n = stack_finals(g, layers.iter().map(|n| n.y_h.as_deref()))?;
    let c_n = stack_finals(g, layers.iter().map(|n| n.y_c.as_deref()))?;
    let reshaped = layer_output(g, last);
    let (mut x, mut y, mut layout) = (first.x.clone(), reshaped.clone(), first.attrs.layout);
    // batch_first: a [B, T, I] -> [T, B, I] transpose before, and back after.
    let before = g
        .producer(&first.x)
        .filter(|t| is_swap(t) && g.sole_consumer(&first.x).is_some());
    let after = reshaped
        .as_deref()
        .and_then(|v| g.sole_consumer(v))
        .filter(|t| is_swap(t));
    if let (Some(b), Some(a)) = (before, after) {
        x = b.input.first()?.clone();
        y = a.output.first().cloned();
        layout = TensorLayout::BatchMajor;
    }
    let raw = y.is_none();
    let cfg = RnnConfig {
        num_layers: layers.len(),
        ..first.cfg
    };
    Some(OnnxRnn {
        nodes: layers.iter().map(|n| n.name.clone()).collect(),
        cfg,
        layout,
        inputs: OnnxInputs {
            x,
            h0,
            c0,
            seq_lens: first.seq_lens.clone(),
        },
        outputs: OnnxOutputs {
            y: if raw { last.y.clone() } else { y },
            h_n,
            c_n,
        },
        raw_node_outputs: raw,
        weights: layers
            .iter()
            .flat_map(|n| n.weights.iter().cloned())
            .collect(),
    })
}

/// A node on its own, with its own input and output names.
fn alone(n: &RecurrentNode) -> OnnxRnn {
    let state = |s: &State| match s {
        State::Zeros => None,
        State::Value(v) => Some(v.clone()),
    };
    OnnxRnn {
        nodes: vec![n.name.clone()],
        cfg: n.cfg,
        layout: n.attrs.layout,
        inputs: OnnxInputs {
            x: n.x.clone(),
            h0: state(&n.h0),
            c0: state(&n.c0),
            seq_lens: n.seq_lens.clone(),
        },
        outputs: OnnxOutputs {
            y: n.y.clone(),
            h_n: n.y_h.clone(),
            c_n: n.y_c.clone(),
        },
        raw_node_outputs: true,
        weights: n.weights.clone(),
    }
}

/// The one graph value holding the initial states of all layers: `None` if every
/// layer starts from zeros; for one layer its own input (or what a full `Slice` of it
/// reads); for several, the value every layer `l` slices rows `[l*D, (l+1)*D)` from.
/// `None` (outer) if the layers cannot be joined.
fn stack_states<'s>(
    g: &Graph<'_>,
    states: impl ExactSizeIterator<Item = &'s State>,
    d: usize,
) -> Option<Option<String>> {
    let layers = states.len();
    let mut source: Option<String> = None;
    let mut zeros = 0;
    for (l, s) in states.enumerate() {
        let v = match s {
            State::Zeros => {
                zeros += 1;
                continue;
            }
            State::Value(v) => v,
        };
        let sliced = layer_slice(g, v, l, d);
        let src = match (sliced, layers) {
            (Some(s), _) => s,
            (None, 1) => v.clone(),
            (None, _) => return None,
        };
        if source.as_ref().is_some_and(|s| *s != src) {
            return None;
        }
        source = Some(src);
    }
    match (zeros, source) {
        (z, None) if z == layers => Some(None),
        (0, Some(s)) => Some(Some(s)),
        _ => None,
    }
}

/// The value `v` takes rows `[l*D, (l+1)*D)` of (axis 0, step 1), if `v` is such a
/// `Slice`.
fn layer_slice(g: &Graph<'_>, v: &str, l: usize, d: usize) -> Option<String> {
    let s = g.producer(v).filter(|n| op(n) == "Slice")?;
    let ints = |i: usize, name: &str| {
        s.input
            .get(i)
            .filter(|x| !x.is_empty())
            .and_then(|x| g.const_ints(x))
            .or_else(|| attr_ints(s, name))
    };
    let want = |v: usize| i64::try_from(v).ok();
    let ok = ints(1, "starts") == Some(vec![want(l * d)?])
        && ints(2, "ends") == Some(vec![want((l + 1) * d)?])
        && matches!(ints(3, "axes").as_deref(), None | Some([0]))
        && matches!(ints(4, "steps").as_deref(), None | Some([1]));
    ok.then(|| s.input.first().cloned())?
}

/// The value holding the final states of all layers: one layer's own output, or the
/// `Concat` (axis 0) of every layer's in order. `Some(None)` if no layer has the
/// output; `None` if the layers' outputs are not joined that way.
fn stack_finals<'a>(
    g: &Graph<'_>,
    finals: impl ExactSizeIterator<Item = Option<&'a str>>,
) -> Option<Option<String>> {
    let names: Vec<Option<&str>> = finals.collect();
    if names.iter().all(Option::is_none) {
        return Some(None);
    }
    let names: Vec<&str> = names.into_iter().collect::<Option<_>>()?;
    if let [one] = names.as_slice() {
        return Some(Some(one.to_string()));
    }
    let concat = g.sole_consumer(names[0]).filter(|c| {
        op(c) == "Concat"
            && super::graph::attr(c, "axis").and_then(|a| a.i) == Some(0)
            && c.input.iter().map(String::as_str).eq(names.iter().copied())
    })?;
    let ok = names.iter().all(|n| g.sole_consumer(n).is_some());
    ok.then(|| concat.output.first().cloned())
}
