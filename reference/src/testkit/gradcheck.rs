//! Gradients by central finite differences of the f64 forward: the independent check
//! of the reference backward.

use crate::{
    forward, views, Gradients, OutputGrads, OwnedLayerWeights, RnnConfig, SeqShape, SequenceInput,
};

/// The inputs of a backward pass, owned and in `f64`.
#[derive(Clone, Debug)]
pub struct Point {
    /// The network.
    pub cfg: RnnConfig,
    /// Steps, batch and layout.
    pub shape: SeqShape,
    /// `L * D` weight sets.
    pub weights: Vec<OwnedLayerWeights<f64>>,
    /// Input sequence.
    pub x: Vec<f64>,
    /// Initial hidden states (always given).
    pub h0: Vec<f64>,
    /// Initial cell states (LSTM; empty otherwise).
    pub c0: Vec<f64>,
    /// Per-row lengths.
    pub seq_lens: Option<Vec<usize>>,
    /// AUGRU's attention (empty for every other cell).
    pub attention: Vec<f64>,
    /// `∂L/∂y`, `∂L/∂h_n`, `∂L/∂c_n`: the loss is `Σ y·dy + Σ h_n·dh_n + Σ c_n·dc_n`.
    pub dy: Vec<f64>,
    /// See `dy`.
    pub dh_n: Vec<f64>,
    /// See `dy` (LSTM; empty otherwise).
    pub dc_n: Vec<f64>,
}

impl Point {
    fn input(&self) -> SequenceInput<'_, f64> {
        SequenceInput {
            x: &self.x,
            h0: Some(&self.h0),
            c0: self.cfg.cell.has_cell_state().then_some(&self.c0[..]),
            seq_lens: self.seq_lens.as_deref(),
            attention: self.cfg.cell.has_attention().then_some(&self.attention[..]),
        }
    }

    /// The loss `Σ y·dy + Σ h_n·dh_n + Σ c_n·dc_n` at this point, summed in a fixed
    /// order.
    pub fn loss(&self) -> f64 {
        let out = forward(&self.cfg, &views(&self.weights), self.shape, self.input())
            .expect("the point is a valid problem");
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
        dot(&out.y, &self.dy) + dot(&out.h_n, &self.dh_n) + dot(&out.c_n, &self.dc_n)
    }

    /// The reference backward at this point.
    pub fn backward(&self) -> Gradients<f64> {
        let lstm = self.cfg.cell.has_cell_state();
        let grads = OutputGrads {
            dy: &self.dy,
            dh_n: Some(&self.dh_n),
            dc_n: lstm.then_some(&self.dc_n[..]),
        };
        crate::backward(
            &self.cfg,
            &views(&self.weights),
            self.shape,
            self.input(),
            grads,
        )
        .expect("the point is a valid problem")
    }

    /// The smallest distance of a clipped or relu gate argument to its kink (see
    /// [`finite_differences`]).
    pub fn kink_margin(&self) -> f64 {
        crate::backward::kink_margins(&self.cfg, &views(&self.weights), self.shape, &self.input())
            .margin
    }

    /// Every value array, mutable, in the order of [`Gradients`]' arrays: each set's
    /// parts (as [`named_parts`](super::golden::named_parts)), then `x`, `h0`, `c0`,
    /// `attention`.
    fn arrays_mut(&mut self) -> Vec<&mut Vec<f64>> {
        let mut v: Vec<&mut Vec<f64>> = Vec::new();
        for w in &mut self.weights {
            v.push(&mut w.w_ih);
            v.push(&mut w.w_hh);
            for p in [
                &mut w.b_ih,
                &mut w.b_hh,
                &mut w.w_hr,
                &mut w.peephole,
                &mut w.layer_norm,
            ] {
                v.extend(p.as_mut());
            }
        }
        v.push(&mut self.x);
        v.push(&mut self.h0);
        v.push(&mut self.c0);
        v.push(&mut self.attention);
        v
    }
}

/// Every array of `g` in the order of `Point::arrays_mut`.
pub fn gradient_arrays(g: &Gradients<f64>) -> Vec<&[f64]> {
    let mut v: Vec<&[f64]> = Vec::new();
    for w in &g.weights {
        v.extend(super::golden::named_parts(w).into_iter().map(|p| p.1));
    }
    v.push(&g.dx);
    v.push(&g.dh0);
    v.push(&g.dc0);
    v.push(&g.dattention);
    v
}

/// Central differences `(L(v + h) − L(v − h)) / 2h` of [`Point::loss`] for every
/// element of every parameter, `x`, `h0`, `c0` and `attention`, in the order of
/// [`gradient_arrays`].
///
/// Their error is the truncation `h²/6 · |L'''|` plus the rounding of the two losses
/// divided by `2h`; near a kink of `relu` or `clip` (within `h` times the sensitivity of
/// the gate argument), the difference straddles it and is meaningless:
/// [`Point::kink_margin`] tells the caller to stay away.
pub fn finite_differences(p: &Point, h: f64) -> Vec<Vec<f64>> {
    let mut q = p.clone();
    let n = q.arrays_mut().len();
    let mut out = Vec::with_capacity(n);
    for a in 0..n {
        let len = q.arrays_mut()[a].len();
        let mut g = Vec::with_capacity(len);
        for e in 0..len {
            let v = q.arrays_mut()[a][e];
            let (hi, lo) = (v + h, v - h);
            q.arrays_mut()[a][e] = hi;
            let up = q.loss();
            q.arrays_mut()[a][e] = lo;
            let down = q.loss();
            q.arrays_mut()[a][e] = v;
            // The step actually taken (v ± h is rounded).
            g.push((up - down) / (hi - lo));
        }
        out.push(g);
    }
    out
}
