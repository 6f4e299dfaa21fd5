//! What the names and shapes of a module say about its configuration, checked against
//! what the caller gives.

use ::safetensors::tensor::SafeTensors;

use super::names::ParamNames;
use super::LoadOptions;
use crate::models::invalid;
use crate::{CellKind, Direction, LstmVariant, Result, RnnConfig};

/// What the names and the layer-0 shapes say.
pub(super) struct Found {
    layers: usize,
    reverse: bool,
    pub(super) bias: bool,
    /// `[G*H, I]` of `weight_ih_l0`.
    w_ih: (String, Vec<usize>),
    /// `[G*H, H_out]` of `weight_hh_l0`.
    w_hh: (String, Vec<usize>),
    /// `[H_out, H]` of `weight_hr_l0`.
    w_hr: Option<(String, Vec<usize>)>,
}

impl Found {
    pub(super) fn read(st: &SafeTensors<'_>, prefix: &str) -> Result<Self> {
        let has = |name: &str| st.tensor(name).is_ok();
        let l0 = ParamNames::new(prefix, 0, false);
        let mut layers = 0;
        while has(&ParamNames::new(prefix, layers, false).w_ih) {
            layers += 1;
        }
        let shape = |name: &str| -> Result<(String, Vec<usize>)> {
            let t = st
                .tensor(name)
                .map_err(|_| invalid(name, "a tensor of the module", "no tensor of that name"))?;
            if t.shape().len() != 2 {
                return Err(invalid(
                    name,
                    "a matrix (2 dimensions)",
                    format!("{:?}", t.shape()),
                ));
            }
            Ok((name.to_string(), t.shape().to_vec()))
        };
        Ok(Found {
            layers,
            reverse: has(&ParamNames::new(prefix, 0, true).w_ih),
            bias: has(&l0.b_ih) || has(&l0.b_hh),
            w_ih: shape(&l0.w_ih)?,
            w_hh: shape(&l0.w_hh)?,
            w_hr: if has(&l0.w_hr) {
                Some(shape(&l0.w_hr)?)
            } else {
                None
            },
        })
    }

    /// The configuration the shapes imply, checked against `opts`.
    pub(super) fn config(&self, opts: &LoadOptions) -> Result<RnnConfig> {
        let (hh_name, hh) = &self.w_hh;
        let (hidden, proj) = match &self.w_hr {
            Some((_, hr)) => (hr[1], Some(hr[0])),
            None => (hh[1], None),
        };
        if let (Some(p), Some((hr_name, _))) = (proj, &self.w_hr) {
            if p != hh[1] {
                return Err(invalid(
                    hh_name.as_str(),
                    format!("{} columns (rows of {hr_name})", p),
                    hh[1],
                ));
            }
        }
        let gates = if hidden > 0 && hh[0] % hidden == 0 {
            hh[0] / hidden
        } else {
            0
        };
        let inferred = match gates {
            4 => CellKind::Lstm(LstmVariant {
                proj_size: proj,
                ..Default::default()
            }),
            3 if proj.is_none() => CellKind::GRU,
            1 if proj.is_none() => CellKind::RNN_TANH,
            _ => {
                return Err(invalid(
                    hh_name.as_str(),
                    format!(
                        "[G*H, H_out] rows with G = 4 (LSTM), 3 (GRU) or 1 (RNN), H = {hidden}"
                    ),
                    format!("{hh:?}"),
                ))
            }
        };
        let cell = match (opts.cell, inferred) {
            (None, CellKind::Rnn(_)) => {
                return Err(invalid(
                    "cell",
                    "the nonlinearity of this nn.RNN, which its weights do not record: \
                     LoadOptions::cell (run_model: --cell rnn-tanh or rnn-relu)",
                    "no cell",
                ))
            }
            (None, c) => c,
            (Some(c), i) if c.gates() == i.gates() => c,
            (Some(c), i) => {
                return Err(invalid(
                    "cell",
                    format!(
                        "a cell with {} gate blocks ({}, from {hh_name})",
                        i.gates(),
                        i.name()
                    ),
                    format!("{c:?}"),
                ))
            }
        };
        check_cell_variant(cell, proj)?;
        let cfg = RnnConfig::new(cell, self.w_ih.1[1], hidden)
            .with_layers(self.layers)
            .with_direction(if self.reverse {
                Direction::Bidirectional
            } else {
                Direction::Forward
            });
        match opts.config {
            Some(want) => check_against(&cfg, &want).map(|()| cfg.with_clip(want.clip)),
            None => Ok(cfg),
        }
    }
}

/// PyTorch modules have no peephole, and only an LSTM has a projection.
fn check_cell_variant(cell: CellKind, proj: Option<usize>) -> Result<()> {
    match cell {
        CellKind::Lstm(v) if v.peephole => Err(invalid(
            "cell",
            "an LSTM without peephole (a PyTorch state_dict has no peephole weights)",
            "peephole: true",
        )),
        CellKind::Lstm(LstmVariant { proj_size, .. }) if proj_size != proj => Err(invalid(
            "cell",
            format!("proj_size {proj:?} (from weight_hr_l0)"),
            format!("{proj_size:?}"),
        )),
        _ => Ok(()),
    }
}

/// Each inferred field must equal the caller's.
fn check_against(got: &RnnConfig, want: &RnnConfig) -> Result<()> {
    let fields: [(&str, String, String); 4] = [
        (
            "input_size",
            got.input_size.to_string(),
            want.input_size.to_string(),
        ),
        (
            "hidden_size",
            got.hidden_size.to_string(),
            want.hidden_size.to_string(),
        ),
        (
            "num_layers",
            got.num_layers.to_string(),
            want.num_layers.to_string(),
        ),
        (
            "direction",
            format!("{:?}", got.direction),
            format!("{:?}", want.direction),
        ),
    ];
    for (name, g, w) in fields {
        if g != w {
            return Err(invalid(
                format!("config.{name}"),
                format!("{g} (what the file's tensors imply)"),
                w,
            ));
        }
    }
    Ok(())
}
