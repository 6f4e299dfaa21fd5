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
    format!(
        "{{\"impl\": \"rnn-kernels\", \"isa\": \"{}\", \"dtype\": \"{}\", \"cell\": \"{}\", \
         \"batch\": {}, \"hidden\": {}, \"input\": {}, \"steps\": {}, \"threads\": {}, \
         \"s_per_seq\": {}, \"gflops\": {}, \"max_err\": {}, \"speedup_vs_f32\": {}, \
         \"pass\": \"{}\"}}",
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

pub(crate) fn table_row(r: &Row, peak: f64) -> String {
    let vs_f32 = r.vs_f32.map_or("-".to_string(), |v| format!("{v:.2}"));
    // No unfused baseline for a training step.
    let unfused = if r.unfused_s.is_finite() {
        format!("{:.2}", r.unfused_s / r.s_per_seq)
    } else {
        "-".to_string()
    };
    format!(
        "{:<5} | {:<5} | {:>4} | {:>4} | {:>4} | {:>3} | {:>9.3} | {:>6} | {:>7.1} | {:>5.1}% \
         | {:>7.1} | {:>9} | {:.1e}",
        r.cell.name(),
        r.dtype.name(),
        r.shape.batch,
        r.shape.hidden,
        r.shape.input,
        r.shape.steps,
        r.s_per_seq * 1e3,
        vs_f32,
        r.gflops,
        100.0 * r.gflops / peak,
        r.ref_s / r.s_per_seq,
        unfused,
        r.max_err,
    )
}
