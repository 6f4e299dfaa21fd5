//! One recurrent node read completely: attributes, constant weights (imported to
//! PyTorch layout), and where its inputs come from.

use super::attrs::{parse, Attrs, Op};
use super::graph::{dims, Graph};
use super::proto::NodeProto;
use crate::models::invalid;
use crate::{
    import_onnx, CellKind, Error, LstmVariant, OnnxWeights, OwnedLayerWeights, Result, RnnConfig,
    TensorLayout,
};

/// Where an initial state comes from.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum State {
    /// Absent, or a constant of zeros.
    Zeros,
    /// A value of the graph (a graph input, or computed).
    Value(String),
}

/// A recurrent node, one layer.
#[derive(Clone, Debug)]
pub(super) struct RecurrentNode {
    /// The node's name, or `#k` (its index) if it has none.
    pub(super) name: String,
    pub(super) op: Op,
    pub(super) attrs: Attrs,
    /// One layer: `input_size` from `W`, `hidden_size`, direction, clip, the cell.
    pub(super) cfg: RnnConfig,
    /// `D` sets in PyTorch layout.
    pub(super) weights: Vec<OwnedLayerWeights<f32>>,
    pub(super) x: String,
    pub(super) seq_lens: Option<String>,
    pub(super) h0: State,
    pub(super) c0: State,
    pub(super) y: Option<String>,
    pub(super) y_h: Option<String>,
    pub(super) y_c: Option<String>,
}

impl RecurrentNode {
    /// Reads node `k` of `g` (which must be a recurrent node of `op`).
    pub(super) fn read(g: &Graph<'_>, k: usize, op_kind: Op) -> Result<Self> {
        let n = &g.nodes[k];
        let name = match n.name.as_deref() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => format!("#{k}"),
        };
        let who = format!("{} node {name:?}", op_kind.name());
        let attrs = parse(op_kind, n, &who)?;
        let input = |i: usize| n.input.get(i).filter(|s| !s.is_empty()).cloned();
        let max_inputs = if op_kind == Op::Lstm { 8 } else { 6 };
        if n.input.len() > max_inputs {
            return Err(invalid(
                format!("{who} inputs"),
                format!("at most {max_inputs} inputs for {}", op_kind.name()),
                n.input.len(),
            ));
        }
        let x = input(0).ok_or_else(|| invalid(format!("{who} input X"), "a value", "none"))?;
        let weight = |i: usize, label: &str| -> Result<Option<(Vec<usize>, Vec<f32>)>> {
            let Some(v) = input(i) else { return Ok(None) };
            let what = format!("{who} input {label} ({v:?})");
            let t = g.constant(&v).ok_or_else(|| {
                invalid(
                    &what,
                    "a constant (an initializer or a Constant node)",
                    "a value computed by the graph or fed at run time",
                )
            })?;
            Ok(Some((dims(t, &what)?, super::graph::tensor_f32(t, &what)?)))
        };
        let (w_dims, w) =
            weight(1, "W")?.ok_or_else(|| invalid(format!("{who} input W"), "a tensor", "none"))?;
        let (r_dims, r) =
            weight(2, "R")?.ok_or_else(|| invalid(format!("{who} input R"), "a tensor", "none"))?;
        let b = weight(3, "B")?;
        let p = if op_kind == Op::Lstm {
            weight(7, "P")?
        } else {
            None
        };
        let cfg = config(&who, &attrs, &w_dims, &r_dims, p.is_some())?;
        let weights = import_onnx(
            &cfg,
            OnnxWeights {
                w: &w,
                r: &r,
                b: b.as_ref().map(|(_, v)| v.as_slice()),
                p: p.as_ref().map(|(_, v)| v.as_slice()),
            },
        )
        .map_err(|e| in_node(e, &who))?;
        let seq_lens = match input(4) {
            Some(v) if g.constant(&v).is_some() => {
                return Err(invalid(
                    format!("{who} input sequence_lens ({v:?})"),
                    "a graph input or a computed value (constant lengths are not supported)",
                    "a constant",
                ))
            }
            other => other,
        };
        let state = |i: usize, label: &str| -> Result<State> {
            match input(i) {
                None => Ok(State::Zeros),
                Some(v) if g.is_zeros(&v) => Ok(State::Zeros),
                Some(v) if g.constant(&v).is_some() => Err(invalid(
                    format!("{who} input {label} ({v:?})"),
                    "a graph input, a computed value or zeros (a nonzero constant initial state \
                     is not supported)",
                    "a nonzero constant",
                )),
                Some(v) => Ok(State::Value(v)),
            }
        };
        let output = |i: usize| n.output.get(i).filter(|s| !s.is_empty()).cloned();
        Ok(RecurrentNode {
            h0: state(5, "initial_h")?,
            c0: if op_kind == Op::Lstm {
                state(6, "initial_c")?
            } else {
                State::Zeros
            },
            name,
            op: op_kind,
            attrs,
            cfg,
            weights,
            x,
            seq_lens,
            y: output(0),
            y_h: output(1),
            y_c: if op_kind == Op::Lstm { output(2) } else { None },
        })
    }

    /// `D * H`: the width of this layer's output rows.
    pub(super) fn output_width(&self) -> usize {
        self.cfg.num_directions() * self.cfg.hidden_size
    }

    /// Whether `next` can run as the layer after this one in one stacked network.
    pub(super) fn stacks_with(&self, next: &RecurrentNode) -> bool {
        self.op == next.op
            && self.attrs == next.attrs
            && self.cfg.cell == next.cfg.cell
            && self.cfg.hidden_size == next.cfg.hidden_size
            && next.cfg.input_size == self.output_width()
            && self.seq_lens == next.seq_lens
            && self.attrs.layout == TensorLayout::TimeMajor
    }
}

/// The one-layer configuration from the attributes and the shapes of `W` `[D, G*H, I]`
/// and `R` `[D, G*H, H]`.
fn config(who: &str, attrs: &Attrs, w: &[usize], r: &[usize], peephole: bool) -> Result<RnnConfig> {
    let d = attrs.direction.num_directions();
    let g = attrs.cell.gates();
    let hidden = match (attrs.hidden_size, r.get(2)) {
        (Some(h), _) => h,
        (None, Some(&h)) => h,
        (None, None) => 0,
    };
    let gh = g.saturating_mul(hidden);
    let w_ok = w.len() == 3 && w[0] == d && w[1] == gh;
    if !w_ok {
        return Err(invalid(
            format!("{who} input W"),
            format!("dims [D = {d}, G*H = {gh}, I]"),
            format!("{w:?}"),
        ));
    }
    if r != [d, gh, hidden] {
        return Err(invalid(
            format!("{who} input R"),
            format!("dims [{d}, {gh}, {hidden}]"),
            format!("{r:?}"),
        ));
    }
    let cell = match attrs.cell {
        CellKind::Lstm(v) => CellKind::Lstm(LstmVariant { peephole, ..v }),
        c => c,
    };
    let cfg = RnnConfig::new(cell, w[2], hidden)
        .with_direction(attrs.direction)
        .with_clip(attrs.clip)
        .with_activations(attrs.activations);
    cfg.validate().map_err(|e| in_node(e, who))?;
    Ok(cfg)
}

/// Prefixes the argument of an importer error with the node (`W` → `LSTM node "x" input W`).
fn in_node(e: Error, who: &str) -> Error {
    match e {
        Error::Length {
            arg,
            expected,
            actual,
        } => Error::Length {
            arg: format!("{who} input {arg}"),
            expected,
            actual,
        },
        Error::Invalid {
            arg,
            expected,
            actual,
        } => Error::Invalid {
            arg: format!("{who} {arg}"),
            expected,
            actual,
        },
        Error::Overflow { arg, what } => Error::Overflow {
            arg: format!("{who} {arg}"),
            what,
        },
        other => other,
    }
}

/// Nodes of `g` that are recurrent, in graph order.
pub(super) fn recurrent_nodes(g: &Graph<'_>) -> Vec<(usize, Op)> {
    g.nodes
        .iter()
        .enumerate()
        .filter_map(|(k, n): (usize, &NodeProto)| Op::of(n).map(|o| (k, o)))
        .collect()
}
