//! The `state_dict` names of a recurrent module, finding its prefix, and checking
//! every tensor it must (and must not) have.

use std::collections::BTreeSet;

use ::safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};

use crate::models::invalid;
use crate::models::tensor::Dtype;
use crate::{Result, RnnConfig};

/// The `state_dict` names of one layer and direction.
pub(super) struct ParamNames {
    pub(super) w_ih: String,
    pub(super) w_hh: String,
    pub(super) b_ih: String,
    pub(super) b_hh: String,
    pub(super) w_hr: String,
}

impl ParamNames {
    pub(super) fn new(prefix: &str, layer: usize, reverse: bool) -> Self {
        let sfx = if reverse { "_reverse" } else { "" };
        let n = |kind: &str| format!("{prefix}{kind}_l{layer}{sfx}");
        ParamNames {
            w_ih: n("weight_ih"),
            w_hh: n("weight_hh"),
            b_ih: n("bias_ih"),
            b_hh: n("bias_hh"),
            w_hr: n("weight_hr"),
        }
    }
}

/// Whether `rest` (a tensor name without the prefix) is a recurrent-module parameter:
/// `(weight|bias)_(ih|hh|hr)_l<k>[_reverse]`.
fn is_param(rest: &str) -> bool {
    let Some(rest) = rest
        .strip_prefix("weight_")
        .or_else(|| rest.strip_prefix("bias_"))
    else {
        return false;
    };
    let Some(rest) = ["ih_l", "hh_l", "hr_l"]
        .iter()
        .find_map(|k| rest.strip_prefix(k))
    else {
        return false;
    };
    let digits = rest.strip_suffix("_reverse").unwrap_or(rest);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The prefix of the one module the file (or `wanted`) designates.
pub(super) fn find_prefix(st: &SafeTensors<'_>, wanted: Option<&str>) -> Result<String> {
    let names = st.names();
    let found: BTreeSet<&str> = names
        .iter()
        .filter_map(|n| n.strip_suffix("weight_ih_l0"))
        .collect();
    let list = || {
        if found.is_empty() {
            "no tensor named `*weight_ih_l0`".to_string()
        } else {
            let quoted: Vec<String> = found.iter().map(|p| format!("{p:?}")).collect();
            format!("modules with prefixes {}", quoted.join(", "))
        }
    };
    match wanted {
        Some(p) => {
            let dotted = format!("{p}.");
            let hit = [p, dotted.as_str()]
                .into_iter()
                .find(|c| found.contains(c))
                .map(str::to_string);
            hit.ok_or_else(|| {
                invalid(
                    "prefix",
                    format!("the prefix of a recurrent module; the file has {}", list()),
                    format!("{p:?}"),
                )
            })
        }
        None if found.len() == 1 => Ok(found.first().copied().unwrap_or_default().to_string()),
        None => Err(invalid(
            "prefix",
            format!(
                "one nn.LSTM/GRU/RNN state_dict, or a prefix naming one (LoadOptions::prefix, \
                 run_model --prefix); the file has {}",
                list()
            ),
            "no prefix",
        )),
    }
}

/// The element type of a tensor, if it is one the loader reads.
pub(super) fn dtype_of(t: &TensorView<'_>) -> Option<Dtype> {
    match t.dtype() {
        StDtype::F32 => Some(Dtype::F32),
        StDtype::F16 => Some(Dtype::F16),
        StDtype::BF16 => Some(Dtype::Bf16),
        StDtype::F64 => Some(Dtype::F64),
        _ => None,
    }
}

/// Checks every tensor of the module (presence, rank, shape, dtype) and that no
/// parameter beyond the inferred layers and directions exists; returns the dtype.
pub(super) fn check_tensors(
    st: &SafeTensors<'_>,
    prefix: &str,
    cfg: &RnnConfig,
    bias: bool,
) -> Result<Dtype> {
    cfg.validate()?;
    let (gh, h, ho) = (
        cfg.gates() * cfg.hidden_size,
        cfg.hidden_size,
        cfg.output_size(),
    );
    let d = cfg.num_directions();
    let mut expected = BTreeSet::new();
    let mut dtype: Option<(Dtype, String)> = None;
    for k in 0..cfg.num_weight_sets() {
        let names = ParamNames::new(prefix, k / d, k % d == 1);
        let mut want: Vec<(&String, Vec<usize>)> = vec![
            (&names.w_ih, vec![gh, cfg.layer_input_size(k / d)]),
            (&names.w_hh, vec![gh, ho]),
        ];
        if bias {
            want.push((&names.b_ih, vec![gh]));
            want.push((&names.b_hh, vec![gh]));
        }
        if ho != h {
            want.push((&names.w_hr, vec![ho, h]));
        }
        for (name, shape) in want {
            expected.insert(name.clone());
            let t = st.tensor(name).map_err(|_| {
                invalid(
                    name.as_str(),
                    format!(
                        "a tensor of shape {shape:?} ({} layers, {d} direction(s){})",
                        cfg.num_layers,
                        if bias { ", with biases" } else { "" }
                    ),
                    "no tensor of that name",
                )
            })?;
            if t.shape() != shape.as_slice() {
                return Err(invalid(
                    name.as_str(),
                    format!("shape {shape:?}"),
                    format!("{:?}", t.shape()),
                ));
            }
            let dt = dtype_of(&t).ok_or_else(|| {
                invalid(
                    name.as_str(),
                    "dtype F32, F16, BF16 or F64",
                    format!("{:?}", t.dtype()),
                )
            })?;
            match &dtype {
                None => dtype = Some((dt, name.clone())),
                Some((first, first_name)) if *first != dt => {
                    return Err(invalid(
                        name.as_str(),
                        format!("dtype {first} like {first_name}"),
                        dt,
                    ))
                }
                Some(_) => {}
            }
        }
    }
    for name in st.names() {
        if let Some(rest) = name.strip_prefix(prefix) {
            if is_param(rest) && !expected.contains(name) {
                return Err(invalid(
                    name,
                    format!(
                        "no such tensor: {} layers, {d} direction(s){} (from {prefix}weight_ih_l*)",
                        cfg.num_layers,
                        if bias {
                            ", with biases"
                        } else {
                            ", without biases"
                        }
                    ),
                    "a parameter outside that set",
                ));
            }
        }
    }
    Ok(dtype.map_or(Dtype::F32, |(d, _)| d))
}

#[cfg(test)]
mod tests {
    use super::is_param;

    #[test]
    fn parameter_names() {
        for ok in [
            "weight_ih_l0",
            "weight_hh_l12_reverse",
            "bias_ih_l1",
            "weight_hr_l0",
        ] {
            assert!(is_param(ok), "{ok}");
        }
        for not in [
            "weight",
            "weight_ih_l",
            "weight_ih_lx",
            "head.weight",
            "bias_xx_l0",
        ] {
            assert!(!is_param(not), "{not}");
        }
    }
}
