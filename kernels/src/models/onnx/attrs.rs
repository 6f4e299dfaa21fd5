//! The attributes of an ONNX `LSTM` / `GRU` / `RNN` node: the one place that decides
//! which are supported. To support another attribute or value (custom activations,
//! `activation_alpha`, ...), give `CellKind` / `RnnConfig` the variant and add its arm to
//! [`parse`] (and, for activations, to [`check_activations`]).

use super::graph::op;
use super::proto::{AttributeProto, NodeProto};
use crate::models::invalid;
use crate::{
    CellKind, Direction, GateCoupling, LstmVariant, Result, RnnActivation, RnnVariant, TensorLayout,
};

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

    /// The activations ONNX applies by default, per direction (the only ones the
    /// kernels implement for LSTM and GRU).
    fn default_activations(self) -> &'static [&'static str] {
        match self {
            Op::Lstm => &["Sigmoid", "Tanh", "Tanh"],
            Op::Gru => &["Sigmoid", "Tanh"],
            Op::Rnn => &["Tanh"],
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
    };
    let mut activations: Option<Vec<String>> = None;
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
            (_, "activation_alpha" | "activation_beta") => {
                if !a.floats.is_empty() {
                    return Err(invalid(
                        &arg,
                        "absent (no supported activation takes parameters)",
                        show(a),
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    &arg,
                    format!("an attribute of ONNX {} this crate implements", op.name()),
                    show(a),
                ))
            }
        }
    }
    if let Some(acts) = activations {
        out.cell = check_activations(op, out.cell, &acts, out.direction, who)?;
    }
    Ok(out)
}

/// Checks `activations` (one group per direction) and returns the cell they select:
/// LSTM and GRU only with ONNX's defaults, RNN with Tanh or Relu (the same in both
/// directions).
fn check_activations(
    op: Op,
    cell: CellKind,
    acts: &[String],
    direction: Direction,
    who: &str,
) -> Result<CellKind> {
    let arg = format!("{who} attribute activations");
    let d = direction.num_directions();
    let per = op.default_activations().len();
    let unsupported = |expected: String| invalid(&arg, expected, format!("{acts:?}"));
    if acts.len() != per * d {
        return Err(unsupported(format!(
            "{} names ({per} per direction, {d} direction(s))",
            per * d
        )));
    }
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    match op {
        Op::Rnn => {
            let activation = if acts.iter().all(|a| is(a, "Tanh")) {
                RnnActivation::Tanh
            } else if acts.iter().all(|a| is(a, "Relu")) {
                RnnActivation::Relu
            } else {
                return Err(unsupported(
                    "Tanh or Relu, the same for every direction (other activations are not \
                     supported)"
                        .to_string(),
                ));
            };
            Ok(CellKind::Rnn(RnnVariant { activation }))
        }
        Op::Lstm | Op::Gru => {
            let default = op.default_activations();
            if acts
                .chunks(per)
                .all(|g| g.iter().zip(default).all(|(a, b)| is(a, b)))
            {
                Ok(cell)
            } else {
                Err(unsupported(format!(
                    "{} per direction (other activations are not supported)",
                    default.join(", ")
                )))
            }
        }
    }
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

    #[test]
    fn unsupported_values_are_named() {
        for (op, attr) in [
            (Op::Rnn, strings("activations", &["Relu", "Tanh"])),
            (Op::Rnn, strings("activations", &["Tanh", "Tanh"])), // 2 for 1 direction
            (
                Op::Lstm,
                strings("activations", &["Sigmoid", "Tanh", "Relu"]),
            ),
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
