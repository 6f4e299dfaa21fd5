//! Vanishing and exploding gradients, measured with this crate's backward pass.
//!
//! For a loss `L` = the sum of the last step's output, prints `‖∂L/∂h_0‖` (Euclidean
//! norm over the hidden units) for sequence lengths `T = 1..200` and writes a line plot
//! on a log scale (SVG, default `docs/gradient_flow.svg`):
//!
//! ```text
//! cargo run --release -p rnn-bench-suite --example gradient_flow [-- OUT.svg]
//! ```
//!
//! Through a plain RNN, `∂h_T/∂h_0` is a product of `T` Jacobians
//! `diag(f'(·))·W_hh`, so its norm shrinks or grows geometrically with `T`: the tanh
//! RNNs have `W_hh` with i.i.d. entries of variance `g²/H` (spectral radius about
//! `g`), `g` below, at and above 1, the edge of stability. The ReLU RNN, the LSTM and
//! the GRU use PyTorch's initialisation (every parameter uniform in `±1/√H`). The
//! gated cells carry the gradient along an additive path (`c_t = f⊙c_{t-1} + i⊙g`),
//! scaled per step by the forget gate (the GRU's by `z`): at PyTorch's initialisation
//! those gates sit near `σ(0) = ½`, so two more LSTMs add +1 and +3 to the forget
//! bias (Jozefowicz et al., 2015) to show the path open. Same hidden size, input and
//! seed for all; batch 1; inputs uniform in `±1`. Gradients are f32: a norm printed
//! as 0 underflowed (below 1.4e-45), and the plot leaves it out.

use plotters::prelude::*;
use rnn_bench_suite::SplitMix64;
use rnn_kernels::{
    CellKind, GradientsMut, LayerGradsMut, LayerWeights, OutputGrads, PackedRnn, RnnConfig,
    SeqShape, SequenceInput, SequenceOutputMut, TrainingWorkspace,
};

const HIDDEN: usize = 64;
const INPUT: usize = 16;
const T_MAX: usize = 200;
/// The lengths the table prints (the plot has all of them).
const TABLE_T: [usize; 10] = [1, 2, 5, 10, 20, 50, 100, 150, 175, 200];

/// One network of the picture.
struct Net {
    label: &'static str,
    cell: CellKind,
    /// `Some(g)`: `W_hh` entries uniform with variance `g²/H`; `None`: PyTorch's init.
    gain: Option<f32>,
    /// Added to the LSTM's forget-gate bias (`b_hh` rows `H..2H`).
    forget_bias: f32,
    color: RGBColor,
}

const NETS: [Net; 8] = [
    tanh_rnn("tanh RNN, g = 0.8 (below)", 0.8, RGBColor(31, 119, 180)),
    tanh_rnn("tanh RNN, g = 1.0 (edge)", 1.0, RGBColor(44, 160, 44)),
    tanh_rnn("tanh RNN, g = 1.5 (above)", 1.5, RGBColor(214, 39, 40)),
    standard("ReLU RNN", CellKind::RNN_RELU, 0.0, RGBColor(148, 103, 189)),
    standard("LSTM", CellKind::LSTM, 0.0, RGBColor(255, 127, 14)),
    standard(
        "LSTM, forget bias +1",
        CellKind::LSTM,
        1.0,
        RGBColor(140, 86, 75),
    ),
    standard(
        "LSTM, forget bias +3",
        CellKind::LSTM,
        3.0,
        RGBColor(227, 119, 194),
    ),
    standard("GRU", CellKind::GRU, 0.0, RGBColor(23, 190, 207)),
];

const fn tanh_rnn(label: &'static str, gain: f32, color: RGBColor) -> Net {
    Net {
        label,
        cell: CellKind::RNN_TANH,
        gain: Some(gain),
        forget_bias: 0.0,
        color,
    }
}

const fn standard(label: &'static str, cell: CellKind, forget_bias: f32, color: RGBColor) -> Net {
    Net {
        label,
        cell,
        gain: None,
        forget_bias,
        color,
    }
}

/// `‖∂L/∂h_0‖` for `T = 1..=T_MAX`, `L = Σ y_T`.
fn gradient_norms(net: &Net) -> Result<Vec<f32>, String> {
    let (h, g) = (HIDDEN, net.cell.gates());
    let mut rng = SplitMix64::new(0x5EED);
    let k = 1.0 / (h as f32).sqrt();
    let w_ih = rng.vec(g * h * INPUT, k);
    // Uniform in ±a has variance a²/3: a = g·√(3/H) gives g²/H.
    let a_hh = net.gain.map_or(k, |gain| gain * (3.0 / h as f32).sqrt());
    let w_hh = rng.vec(g * h * h, a_hh);
    let (b_ih, mut b_hh) = (rng.vec(g * h, k), rng.vec(g * h, k));
    if net.cell.has_cell_state() {
        b_hh[h..2 * h]
            .iter_mut()
            .for_each(|b| *b += net.forget_bias);
    }
    let x = rng.vec(T_MAX * INPUT, 1.0);
    let cfg = RnnConfig::new(net.cell, INPUT, h);
    let rnn = PackedRnn::from_pytorch(
        &cfg,
        &[LayerWeights::new(&w_ih, &w_hh).with_bias(&b_ih, &b_hh)],
    )
    .map_err(|e| e.to_string())?;

    let mut tws = TrainingWorkspace::new();
    let (mut y, mut dy) = (vec![0.0f32; T_MAX * h], vec![0.0f32; T_MAX * h]);
    let (mut dw_ih, mut dw_hh, mut dh0) =
        (vec![0.0; w_ih.len()], vec![0.0; w_hh.len()], vec![0.0; h]);
    let mut norms = Vec::with_capacity(T_MAX);
    for t in 1..=T_MAX {
        let shape = SeqShape::new(t, 1);
        let out = SequenceOutputMut {
            y: &mut y[..t * h],
            h_n: None,
            c_n: None,
        };
        rnn.forward_train(&mut tws, shape, SequenceInput::new(&x[..t * INPUT]), out)
            .map_err(|e| e.to_string())?;
        // L = Σ y_T: ∂L/∂y is 1 on the last step, 0 before.
        dy[..t * h].fill(0.0);
        dy[(t - 1) * h..t * h].fill(1.0);
        let mut sets = [LayerGradsMut {
            dw_ih: &mut dw_ih,
            dw_hh: &mut dw_hh,
            db_ih: None,
            db_hh: None,
            dw_hr: None,
            dpeephole: None,
            dlayer_norm: None,
        }];
        let grads = GradientsMut {
            dx: None,
            dh0: Some(&mut dh0),
            dc0: None,
            dattention: None,
            weights: &mut sets,
        };
        rnn.backward(&mut tws, OutputGrads::new(&dy[..t * h]), grads)
            .map_err(|e| e.to_string())?;
        // In f64: the squares of gradients below 1e-19 underflow f32.
        let norm = dh0
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            .sqrt();
        norms.push(norm as f32);
    }
    Ok(norms)
}

/// The line plot, `‖∂L/∂h_0‖` against `T` on a log scale; zeros (underflow) are not drawn.
fn plot(path: &str, curves: &[(&Net, Vec<f32>)]) -> Result<(), Box<dyn std::error::Error>> {
    let positive = curves
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|&v| v > 0.0);
    let (lo, hi) = positive.fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "‖∂L/∂h₀‖ against sequence length T (L = Σ y_T, H = 64)",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        // log10 of the norms on a linear axis, labelled as powers of ten: plotters' own
        // log scale labels only a few decades of a 40-decade range.
        .build_cartesian_2d(1f32..T_MAX as f32, (lo.log10() - 0.5)..(hi.log10() + 0.5))?;
    chart
        .configure_mesh()
        .x_desc("T (steps)")
        .y_desc("‖∂L/∂h₀‖ (log scale)")
        .y_labels(12)
        .y_label_formatter(&|v| format!("1e{v:.0}"))
        .draw()?;
    for (net, norms) in curves {
        let points = norms
            .iter()
            .enumerate()
            .filter(|(_, &v)| v > 0.0)
            .map(|(i, &v)| ((i + 1) as f32, v.log10()));
        let color = net.color;
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(net.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/gradient_flow.svg");
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| default.to_string());
    let curves = NETS
        .iter()
        .map(|net| gradient_norms(net).map(|n| (net, n)))
        .collect::<Result<Vec<_>, _>>()?;

    println!("‖∂L/∂h_0‖, L = sum of the last output, H = {HIDDEN}, I = {INPUT}, batch 1");
    print!("{:<27}", "T");
    for t in TABLE_T {
        print!(" {t:>9}");
    }
    println!();
    for (net, norms) in &curves {
        print!("{:<27}", net.label);
        for t in TABLE_T {
            print!(" {:>9.2e}", norms[t - 1]);
        }
        println!();
    }
    plot(&path, &curves)?;
    println!("plot: {path}");
    Ok(())
}
