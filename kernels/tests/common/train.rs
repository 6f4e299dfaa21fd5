//! The kernels' training forward and backward on a test-kit problem.

use rnn_kernels::{
    Activations, Element, GradientsMut, Isa, LayerGradsMut, OutputGrads, PackedRnn,
    SequenceOutputMut, TrainingWorkspace,
};
use rnn_reference::testkit::Problem;
use rnn_reference::{views, OwnedLayerWeights};

/// The upstream gradients of a training step, `f32`.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub dy: Vec<f32>,
    pub dh_n: Option<Vec<f32>>,
    pub dc_n: Option<Vec<f32>>,
}

/// What a training step returned, widened to `f32`.
#[derive(Clone, Debug, PartialEq)]
pub struct Trained {
    pub y: Vec<f32>,
    pub h_n: Vec<f32>,
    pub c_n: Vec<f32>,
    pub dx: Vec<f32>,
    pub dh0: Vec<f32>,
    pub dc0: Vec<f32>,
    /// The AUGRU's `∂L/∂a` (empty for other cells).
    pub da: Vec<f32>,
    pub weights: Vec<OwnedLayerWeights<f32>>,
}

impl Trained {
    /// Every value as bits (for bit-identity checks).
    pub fn bits(&self) -> Vec<u32> {
        let mut v: Vec<u32> = Vec::new();
        for a in [
            &self.y, &self.h_n, &self.c_n, &self.dx, &self.dh0, &self.dc0, &self.da,
        ] {
            v.extend(a.iter().map(|x| x.to_bits()));
        }
        for w in &self.weights {
            for p in rnn_reference::testkit::golden::named_parts(w) {
                v.extend(p.1.iter().map(|x| x.to_bits()));
            }
        }
        v
    }
}

/// Training forward then backward with weights stored as `W`, inputs, outputs and
/// upstream gradients in `T`; every output pre-filled with NaN so an unwritten element
/// cannot pass.
pub fn try_train<W: Element, T: Element>(
    p: &Problem,
    up: &Upstream,
    isa: Isa,
    mode: Activations,
    tws: &mut TrainingWorkspace,
) -> Result<Trained, String> {
    let rnn = PackedRnn::<W>::pack(&p.cfg, &views(&p.weights))
        .and_then(|r| r.with_isa(Some(isa)))
        .map_err(|e| e.to_string())?;
    let d = p.shape.dims(&p.cfg).map_err(|e| e.to_string())?;
    let lstm = p.cfg.cell.has_cell_state();
    let inputs = p.inputs_as(T::from_f32);
    let nan = T::from_f32(f32::NAN);
    let (mut y, mut h_n, mut c_n) = (vec![nan; d.y], vec![nan; d.h], vec![nan; d.c]);
    tws.set_activations(mode);
    rnn.forward_train(
        tws,
        p.shape,
        inputs.input(),
        SequenceOutputMut {
            y: &mut y,
            h_n: Some(&mut h_n),
            c_n: lstm.then_some(&mut c_n[..]),
        },
    )
    .map_err(|e| e.to_string())?;
    let conv = |v: &[f32]| v.iter().map(|&x| T::from_f32(x)).collect::<Vec<T>>();
    let (dy, dh_n, dc_n) = (
        conv(&up.dy),
        up.dh_n.as_deref().map(conv),
        up.dc_n.as_deref().map(conv),
    );
    let mut sets: Vec<OwnedLayerWeights<f32>> = p
        .weights
        .iter()
        .map(|w| w.map(|v| vec![f32::NAN; v.len()]))
        .collect();
    let (mut dx, mut dh0, mut dc0) = (
        vec![f32::NAN; d.x],
        vec![f32::NAN; d.h],
        vec![f32::NAN; d.c],
    );
    let att = p.cfg.cell.has_attention();
    let mut da = vec![
        f32::NAN;
        if att {
            p.shape.steps * p.shape.batch
        } else {
            0
        }
    ];
    {
        let mut g: Vec<LayerGradsMut<'_>> =
            sets.iter_mut().map(LayerGradsMut::from_owned).collect();
        rnn.backward(
            tws,
            OutputGrads {
                dy: &dy,
                dh_n: dh_n.as_deref(),
                dc_n: dc_n.as_deref().filter(|_| lstm),
            },
            GradientsMut {
                dx: Some(&mut dx),
                dh0: Some(&mut dh0),
                dc0: lstm.then_some(&mut dc0[..]),
                dattention: att.then_some(&mut da[..]),
                weights: &mut g,
            },
        )
        .map_err(|e| e.to_string())?;
    }
    let back = |v: &[T]| v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
    Ok(Trained {
        y: back(&y),
        h_n: back(&h_n),
        c_n: back(&c_n),
        dx,
        dh0,
        dc0,
        da,
        weights: sets,
    })
}
