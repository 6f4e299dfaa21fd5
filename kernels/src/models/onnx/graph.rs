//! Lookups in an ONNX graph: who produces and who consumes a value, constants
//! (initializers and `Constant` nodes) and their decoded contents.

use std::collections::{HashMap, HashSet};

use super::proto::{tensor_proto::DataType, AttributeProto, GraphProto, NodeProto, TensorProto};
use crate::models::invalid;
use crate::models::tensor::{to_f32_vec, Dtype};
use crate::Result;

/// An index over one graph's nodes and values.
pub(super) struct Graph<'g> {
    pub(super) nodes: &'g [NodeProto],
    constants: HashMap<&'g str, &'g TensorProto>,
    producer: HashMap<&'g str, usize>,
    consumers: HashMap<&'g str, Vec<usize>>,
    outputs: HashSet<&'g str>,
}

impl<'g> Graph<'g> {
    pub(super) fn new(g: &'g GraphProto) -> Self {
        let mut constants: HashMap<&str, &TensorProto> = g
            .initializer
            .iter()
            .filter_map(|t| Some((t.name.as_deref()?, t)))
            .collect();
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (k, n) in g.node.iter().enumerate() {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                producer.insert(o.as_str(), k);
            }
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                consumers.entry(i.as_str()).or_default().push(k);
            }
            if op(n) == "Constant" {
                if let (Some(out), Some(t)) = (
                    n.output.first(),
                    attr(n, "value").and_then(|a| a.t.as_ref()),
                ) {
                    constants.insert(out.as_str(), t);
                }
            }
        }
        Graph {
            nodes: &g.node,
            constants,
            producer,
            consumers,
            outputs: g.output.iter().filter_map(|o| o.name.as_deref()).collect(),
        }
    }

    /// The tensor behind `name` if it is an initializer or a `Constant` node's `value`.
    pub(super) fn constant(&self, name: &str) -> Option<&'g TensorProto> {
        self.constants.get(name).copied()
    }

    /// The node that computes `name`.
    pub(super) fn producer(&self, name: &str) -> Option<&'g NodeProto> {
        self.producer.get(name).map(|&k| &self.nodes[k])
    }

    /// Indices of the nodes that read `name`.
    pub(super) fn consumers(&self, name: &str) -> &[usize] {
        self.consumers.get(name).map_or(&[], Vec::as_slice)
    }

    /// The one node that reads `name`, if exactly one does and `name` is not also a
    /// graph output (so folding it into a bigger operation hides nothing).
    pub(super) fn sole_consumer(&self, name: &str) -> Option<&'g NodeProto> {
        match self.consumers(name) {
            [k] if !self.outputs.contains(name) => Some(&self.nodes[*k]),
            _ => None,
        }
    }

    /// The integers of a constant (INT64 or INT32), or of a `Constant` node's
    /// `value_ints` / `value_int`.
    pub(super) fn const_ints(&self, name: &str) -> Option<Vec<i64>> {
        if let Some(t) = self.constant(name) {
            return tensor_ints(t);
        }
        let n = self.producer(name).filter(|n| op(n) == "Constant")?;
        attr(n, "value_ints")
            .map(|a| a.ints.clone())
            .or_else(|| attr(n, "value_int").and_then(|a| a.i).map(|i| vec![i]))
    }

    /// Whether `name` is a constant whose every value is zero (also through an `Expand`
    /// of such a constant, which is how PyTorch's exporter writes a zero initial state).
    pub(super) fn is_zeros(&self, name: &str) -> bool {
        let zeros = |n: &str| {
            self.constant(n)
                .and_then(|t| tensor_f32(t, n).ok())
                .is_some_and(|v| v.iter().all(|&x| x == 0.0))
        };
        zeros(name)
            || self
                .producer(name)
                .filter(|n| op(n) == "Expand")
                .and_then(|n| n.input.first())
                .is_some_and(|src| zeros(src))
    }
}

/// A node's `op_type` (empty if missing).
pub(super) fn op(n: &NodeProto) -> &str {
    n.op_type.as_deref().unwrap_or("")
}

/// The attribute `name` of `n`.
pub(super) fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name.as_deref() == Some(name))
}

/// The integer list attribute `name` of `n`.
pub(super) fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

/// The dimensions of a tensor (an error naming `what` for a negative one).
pub(super) fn dims(t: &TensorProto, what: &str) -> Result<Vec<usize>> {
    t.dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| invalid(what, "non-negative dimensions", format!("{:?}", t.dims)))
        })
        .collect()
}

/// The values of a floating-point tensor as `f32` (f16 and bf16 widen exactly, f64
/// rounds to nearest); errors name `what`.
pub(super) fn tensor_f32(t: &TensorProto, what: &str) -> Result<Vec<f32>> {
    if t.data_location == Some(1) {
        return Err(invalid(
            what,
            "weights stored inside the .onnx file",
            "external data (save the model with onnx.save(model, path, save_as_external_data=False))",
        ));
    }
    let dt = t.data_type.unwrap_or(0);
    let dtype = match DataType::try_from(dt) {
        Ok(DataType::Float) => Dtype::F32,
        Ok(DataType::Float16) => Dtype::F16,
        Ok(DataType::Bfloat16) => Dtype::Bf16,
        Ok(DataType::Double) => Dtype::F64,
        other => {
            return Err(invalid(
                what,
                "a FLOAT, FLOAT16, BFLOAT16 or DOUBLE tensor",
                other.map_or_else(
                    |_| format!("data type {dt}"),
                    |d| d.as_str_name().to_string(),
                ),
            ))
        }
    };
    let n = dims(t, what)?
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    let values = match (&t.raw_data, dtype) {
        (Some(raw), _) => {
            if Some(raw.len()) != n.and_then(|n| n.checked_mul(dtype.size())) {
                return Err(invalid(
                    what,
                    format!(
                        "{} bytes of raw data for dims {:?}",
                        n.unwrap_or(0).saturating_mul(dtype.size()),
                        t.dims
                    ),
                    format!("{} bytes", raw.len()),
                ));
            }
            to_f32_vec(raw, dtype)
        }
        (None, Dtype::F32) => t.float_data.clone(),
        (None, Dtype::F64) => t.double_data.iter().map(|&v| v as f32).collect(),
        // f16 and bf16 values without raw data are stored as their bits in int32_data.
        (None, Dtype::F16) => t
            .int32_data
            .iter()
            .map(|&b| half::f16::from_bits(b as u16).to_f32())
            .collect(),
        (None, Dtype::Bf16) => t
            .int32_data
            .iter()
            .map(|&b| half::bf16::from_bits(b as u16).to_f32())
            .collect(),
    };
    if Some(values.len()) != n {
        return Err(invalid(
            what,
            format!("{} values for dims {:?}", n.unwrap_or(0), t.dims),
            values.len(),
        ));
    }
    Ok(values)
}

/// The values of an INT64 or INT32 tensor.
pub(super) fn tensor_ints(t: &TensorProto) -> Option<Vec<i64>> {
    let raw = t.raw_data.as_deref();
    match DataType::try_from(t.data_type.unwrap_or(0)).ok()? {
        DataType::Int64 => Some(match raw {
            Some(r) => r
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            None => t.int64_data.clone(),
        }),
        DataType::Int32 => Some(match raw {
            Some(r) => r
                .chunks_exact(4)
                .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            None => t.int32_data.iter().map(|&v| i64::from(v)).collect(),
        }),
        _ => None,
    }
}
