//! The attributes of an ONNX `LSTM` / `GRU` / `RNN` node: the one place that decides
//! which are supported. To support another attribute or value, give `CellKind` /
//! `RnnConfig` the variant and add its arm to [`parse`].

use super::graph::op;
use super::proto::{AttributeProto, NodeProto};
use crate::models::invalid;
use crate::{
    CellKind, Direction, GateActivations, GateCoupling, LstmVariant, Result, RnnActivation,
    RnnVariant, TensorLayout,
};
use rnn_reference::{onnx_activations, Activation};

/// The three recurrent operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Lstm,
    Gru,
    Rnn,
}

impl Op {
    /// The operator of a node in the default ONNX domain, if it is a recurrent one.
    pub(super) fn of(n: &NodeProto) -> Option<Op> {
        if !matches!(n.domain.as_deref(), None | Some("") | Some("ai.onnx")) {
            return None;
        }
        match op(n) {
            "LSTM" => Some(Op::Lstm),
            "GRU" => Some(Op::Gru),
            "RNN" => Some(Op::Rnn),
            _ => None,
        }
    }

    /// `"LSTM"`, `"GRU"` or `"RNN"`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Op::Lstm => "LSTM",
            Op::Gru => "GRU",
            Op::Rnn => "RNN",
        }
    }
}

/// What a node's attributes say.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Attrs {
    /// `hidden_size`, when given (else read from `R`).
    pub(super) hidden_size: Option<usize>,
    pub(super) direction: Direction,
    pub(super) layout: TensorLayout,
    pub(super) clip: Option<f32>,
    /// The cell with its variant flags (an LSTM's peephole is decided by its `P` input
    /// later; it is `false` here).
    pub(super) cell: CellKind,
    /// `activations` (with `activation_alpha`, `activation_beta`) when they differ from
    /// the cell's standard functions; an RNN whose every direction names Tanh or Relu
    /// gets that as its cell's activation instead.
    pub(super) activations: Option<[GateActivations; 2]>,
}

/// Reads every attribute of recurrent node `n` (`who` names it in errors). Unknown
/// attributes and values the kernels do not implement are errors naming them.
pub(super) fn parse(op: Op, n: &NodeProto, who: &str) -> Result<Attrs> {
    let mut out = Attrs {
        hidden_size: None,
        direction: Direction::Forward,
        layout: TensorLayout::TimeMajor,
        clip: None,
        cell: match op {
            Op::Lstm => CellKind::LSTM,
            // ONNX's default is the original form (reset before the product).
            Op::Gru => CellKind::GRU_ONNX,
            Op::Rnn => CellKind::RNN_TANH,
        },
        activations: None,
    };
    let mut activations: Option<Vec<String>> = None;
    let (mut alpha, mut beta) = (None, None);
    for a in &n.attribute {
        let name = a.name.as_deref().unwrap_or("");
        let arg = format!("{who} attribute {name}");
        match (op, name) {
            (_, "hidden_size") => {
                out.hidden_size = Some(
                    a.i.and_then(|v| usize::try_from(v).ok())
                        .filter(|&v| v > 0)
                        .ok_or_else(|| invalid(&arg, "a positive integer", show(a)))?,
                )
            }
            (_, "direction") => {
                out.direction = match string(a).as_deref() {
                    Some("forward") => Direction::Forward,
                    Some("reverse") => Direction::Reverse,
                    Some("bidirectional") => Direction::Bidirectional,
                    _ => return Err(invalid(&arg, "forward, reverse or bidirectional", show(a))),
                }
            }
            (_, "layout") => {
                out.layout = match a.i {
                    Some(0) => TensorLayout::TimeMajor,
                    Some(1) => TensorLayout::BatchMajor,
                    _ => return Err(invalid(&arg, "0 or 1", show(a))),
                }
            }
            (_, "clip") => {
                out.clip = Some(
                    a.f.filter(|c| c.is_finite() && *c > 0.0)
                        .ok_or_else(|| invalid(&arg, "a finite float > 0", show(a)))?,
                )
            }
            (Op::Gru, "linear_before_reset") => {
                out.cell = match a.i {
                    Some(0) => CellKind::GRU_ONNX,
                    Some(1) => CellKind::GRU,
                    _ => return Err(invalid(&arg, "0 or 1", show(a))),
                }
            }
            (Op::Lstm, "input_forget") => {
                let coupling = match a.i {
                    Some(0) => GateCoupling::None,
                    Some(1) => GateCoupling::InputForget,
                    _ => return Err(invalid(&arg, "0 or 1", show(a))),
                };
                if let CellKind::Lstm(v) = out.cell {
                    out.cell = CellKind::Lstm(LstmVariant { coupling, ..v });
                }
            }
            (_, "activations") => {
                activations = Some(
                    a.strings
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect(),
                )
            }
            (_, "activation_alpha") => alpha = Some(a.floats.clone()),
            (_, "activation_beta") => beta = Some(a.floats.clone()),
            _ => {
                return Err(invalid(
                    &arg,
                    format!("an attribute of ONNX {} this crate implements", op.name()),
                    show(a),
                ))
            }
        }
    }
    match activations {
        Some(names) => {
            let (cell, acts) = activations_of(out.cell, &names, alpha, beta, out.direction, who)?;
            out.cell = cell;
            out.activations = acts;
        }
        None => {
            // Parameters with no list to consume them: ONNX's defaults take none.
            for (name, v) in [("activation_alpha", alpha), ("activation_beta", beta)] {
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    return Err(invalid(
                        format!("{who} attribute {name}"),
                        "absent (no activations attribute names a function that takes it)",
                        format!("{v:?}"),
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// The cell and the custom activations (`None` if they are the cell's standard
/// functions) that `names` with `alpha` and `beta` select, one group per direction.
/// An RNN naming Tanh or Relu for every direction becomes `RNN_TANH` or `RNN_RELU`.
fn activations_of(
    cell: CellKind,
    names: &[String],
    alpha: Option<Vec<f32>>,
    beta: Option<Vec<f32>>,
    direction: Direction,
    who: &str,
) -> Result<(CellKind, Option<[GateActivations; 2]>)> {
    let d = direction.num_directions();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let acts = onnx_activations(
        cell,
        d,
        &names,
        alpha.as_deref().unwrap_or(&[]),
        beta.as_deref().unwrap_or(&[]),
    )
    .map_err(|e| match e {
        crate::Error::Invalid {
            arg,
            expected,
            actual,
        } => invalid(format!("{who} attribute {arg}"), expected, actual),
        other => other,
    })?;
    if let CellKind::Rnn(_) = cell {
        let every = |f: Activation| acts[..d].iter().all(|a| a.f == f);
        for (f, activation) in [
            (Activation::Tanh, RnnActivation::Tanh),
            (Activation::Relu, RnnActivation::Relu),
        ] {
            if every(f) {
                return Ok((CellKind::Rnn(RnnVariant { activation }), None));
            }
        }
    }
    let standard = acts[..d].iter().all(|a| a.is_standard(cell));
    Ok((cell, (!standard).then_some(acts)))
}

/// A string attribute's value.
fn string(a: &AttributeProto) -> Option<String> {
    a.s.as_ref()
        .map(|s| String::from_utf8_lossy(s).into_owned())
}

/// An attribute's value, for error messages.
fn show(a: &AttributeProto) -> String {
    if let Some(i) = a.i {
        i.to_string()
    } else if let Some(f) = a.f {
        f.to_string()
    } else if let Some(s) = string(a) {
        format!("{s:?}")
    } else if !a.ints.is_empty() {
        format!("{:?}", a.ints)
    } else if !a.floats.is_empty() {
        format!("{:?}", a.floats)
    } else if !a.strings.is_empty() {
        let s: Vec<String> = a
            .strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        format!("{s:?}")
    } else {
        "a value of another type".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op_type: &str, attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: Some(op_type.to_string()),
            attribute: attrs,
            ..Default::default()
        }
    }

    fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            i: Some(v),
            ..Default::default()
        }
    }

    fn strings(name: &str, v: &[&str]) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Default::default()
        }
    }

    fn text(name: &str, v: &str) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            s: Some(v.as_bytes().to_vec()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_follow_onnx() {
        let a = parse(Op::Gru, &node("GRU", vec![]), "GRU node").unwrap();
        assert_eq!(a.cell, CellKind::GRU_ONNX);
        assert_eq!(
            (a.direction, a.layout, a.clip, a.hidden_size),
            (Direction::Forward, TensorLayout::TimeMajor, None, None)
        );
        let a = parse(Op::Rnn, &node("RNN", vec![]), "RNN node").unwrap();
        assert_eq!(a.cell, CellKind::RNN_TANH);
    }

    #[test]
    fn supported_values() {
        let n = node(
            "RNN",
            vec![
                text("direction", "bidirectional"),
                strings("activations", &["Relu", "relu"]),
                int("layout", 1),
                int("hidden_size", 7),
            ],
        );
        let a = parse(Op::Rnn, &n, "RNN node").unwrap();
        assert_eq!(a.cell, CellKind::RNN_RELU);
        assert_eq!(
            (a.direction, a.layout, a.hidden_size),
            (Direction::Bidirectional, TensorLayout::BatchMajor, Some(7))
        );
        let n = node(
            "LSTM",
            vec![
                strings("activations", &["Sigmoid", "Tanh", "Tanh"]),
                int("input_forget", 0),
            ],
        );
        assert!(parse(Op::Lstm, &n, "LSTM node").is_ok());
        let n = node("LSTM", vec![int("input_forget", 1)]);
        let a = parse(Op::Lstm, &n, "LSTM node").unwrap();
        assert!(a.cell.input_forget(), "{:?}", a.cell);
    }

    fn floats(name: &str, v: &[f32]) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            floats: v.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn custom_activations_with_parameters() {
        let n = node(
            "GRU",
            vec![
                text("direction", "bidirectional"),
                strings(
                    "activations",
                    &["HardSigmoid", "Tanh", "Sigmoid", "ScaledTanh"],
                ),
                floats("activation_alpha", &[0.25, 1.5]),
                floats("activation_beta", &[0.5, 0.75]),
            ],
        );
        let a = parse(Op::Gru, &n, "GRU node").unwrap();
        let acts = a.activations.expect("custom");
        assert_eq!(
            acts[0].f,
            Activation::HardSigmoid {
                alpha: 0.25,
                beta: 0.5
            }
        );
        assert_eq!(acts[0].g, Activation::Tanh);
        assert_eq!(acts[1].f, Activation::Sigmoid);
        assert_eq!(
            acts[1].g,
            Activation::ScaledTanh {
                alpha: 1.5,
                beta: 0.75
            }
        );
        // Mixed RNN functions per direction are custom activations.
        let n = node(
            "RNN",
            vec![
                text("direction", "bidirectional"),
                strings("activations", &["Relu", "Tanh"]),
            ],
        );
        let a = parse(Op::Rnn, &n, "RNN node").unwrap();
        assert_eq!(a.cell, CellKind::RNN_TANH);
        assert_eq!(
            a.activations.map(|x| (x[0].f, x[1].f)),
            Some((Activation::Relu, Activation::Tanh))
        );
    }

    #[test]
    fn unsupported_values_are_named() {
        for (op, attr) in [
            (Op::Rnn, strings("activations", &["Tanh", "Tanh"])), // 2 for 1 direction
            (
                Op::Lstm,
                strings("activations", &["Sigmoid", "Tanh", "Swish"]),
            ),
            (Op::Lstm, floats("activation_alpha", &[1.0])), // no function takes it
            (Op::Lstm, int("input_forget", 2)),
            (Op::Gru, int("linear_before_reset", 2)),
            (Op::Gru, int("input_forget", 0)), // an LSTM attribute
            (Op::Lstm, int("hidden_size", -3)),
            (Op::Lstm, int("layout", 2)),
            (Op::Lstm, text("direction", "sideways")),
            (Op::Lstm, int("frobnicate", 1)),
        ] {
            let name = attr.name.clone().unwrap();
            let e = parse(op, &node(op.name(), vec![attr]), "X node \"n\"").unwrap_err();
            assert_eq!(e.arg(), format!("X node \"n\" attribute {name}"), "{e}");
        }
    }
}
