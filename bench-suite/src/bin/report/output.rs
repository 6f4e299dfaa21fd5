//! Output: JSON lines and the table.

use crate::measure::Row;
use crate::options::Opts;

/// A finite f64 as a JSON number, else `null`.
pub(crate) fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

pub(crate) fn json_line(o: &Opts, r: &Row) -> String {
    // A training step's backward phases (seconds, medians) and the weight-gradient
    // products' rate.
    let phases = r.phases.map_or(String::new(), |p| {
        format!(
            ", \"backward_s\": {}, \"time_loop_s\": {}, \"transposes_s\": {}, \
             \"weight_products_s\": {}, \"weight_operands_s\": {}, \"input_products_s\": {}, \
             \"weight_products_gflops\": {}",
            json_num(p.backward),
            json_num(p.time_loop),
            json_num(p.transposes),
            json_num(p.weight_products),
            json_num(p.weight_operands),
            json_num(p.input_products),
            json_num(p.weight_gflops()),
        )
    });
    format!(
        "{{\"impl\": \"rnn-kernels\", \"isa\": \"{}\", \"dtype\": \"{}\", \"cell\": \"{}\", \
         \"batch\": {}, \"hidden\": {}, \"input\": {}, \"steps\": {}, \"threads\": {}, \
         \"s_per_seq\": {}, \"gflops\": {}, \"max_err\": {}, \"speedup_vs_f32\": {}, \
         \"pass\": \"{}\"{phases}}}",
        o.isa.name(),
        r.dtype.name(),
        r.cell.name(),
        r.shape.batch,
        r.shape.hidden,
        r.shape.input,
        r.shape.steps,
        o.threads,
        json_num(r.s_per_seq),
        json_num(r.gflops),
        json_num(f64::from(r.max_err)),
        json_num(r.vs_f32.unwrap_or(f64::NAN)),
        o.pass.name(),
    )
}

pub(crate) const TABLE_HEADER: &str =
    "cell  | dtype |  B   |  H   |  I   |  T  |   ms/seq  |  × f32 \
     | GFLOP/s | % peak |  × ref  | × unfused | max err";

/// A row's first columns, its case: cell, dtype, B, H, I, T (both tables).
fn case_columns(r: &Row) -> String {
    format!(
        "{:<5} | {:<5} | {:>4} | {:>4} | {:>4} | {:>3}",
        r.cell.name(),
        r.dtype.name(),
        r.shape.batch,
        r.shape.hidden,
        r.shape.input,
        r.shape.steps,
    )
}

pub(crate) fn table_row(r: &Row, peak: f64) -> String {
    let vs_f32 = r.vs_f32.map_or("-".to_string(), |v| format!("{v:.2}"));
    // No unfused baseline for a training step.
    let unfused = if r.unfused_s.is_finite() {
        format!("{:.2}", r.unfused_s / r.s_per_seq)
    } else {
        "-".to_string()
    };
    format!(
        "{} | {:>9.3} | {:>6} | {:>7.1} | {:>5.1}% | {:>7.1} | {:>9} | {:.1e}",
        case_columns(r),
        r.s_per_seq * 1e3,
        vs_f32,
        r.gflops,
        100.0 * r.gflops / peak,
        r.ref_s / r.s_per_seq,
        unfused,
        r.max_err,
    )
}

pub(crate) const PHASES_HEADER: &str =
    "cell  | dtype |  B   |  H   |  I   |  T  | backward | time loop | transposes \
     | ∂W products | GFLOP/s | % peak | ∂W operands |    ∂x";

/// A training step's backward phases (ms, medians) and the weight-gradient products'
/// GFLOP/s and share of `peak`; `None` for a forward row.
pub(crate) fn phases_row(r: &Row, peak: f64) -> Option<String> {
    let p = r.phases?;
    let g = p.weight_gflops();
    Some(format!(
        "{} | {:>8.3} | {:>9.3} | {:>10.3} | {:>11.3} | {:>7.1} | {:>5.1}% | {:>11.3} | {:>7.3}",
        case_columns(r),
        p.backward * 1e3,
        p.time_loop * 1e3,
        p.transposes * 1e3,
        p.weight_products * 1e3,
        g,
        100.0 * g / peak,
        p.weight_operands * 1e3,
        p.input_products * 1e3,
    ))
}
