//! Element-wise comparison of kernel outputs with the f64 reference within the
//! per-element bounds of [`Expected`], and the special-value classes (NaN, ±inf,
//! finite) the NaN/inf tests compare.

use super::bound::Expected;

/// The IEEE class of a value, as the NaN/inf contract compares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Any NaN.
    Nan,
    /// `+inf`.
    PosInf,
    /// `-inf`.
    NegInf,
    /// A finite number.
    Finite,
}

/// The class of `v`.
pub fn class(v: f64) -> Class {
    if v.is_nan() {
        Class::Nan
    } else if v == f64::INFINITY {
        Class::PosInf
    } else if v == f64::NEG_INFINITY {
        Class::NegInf
    } else {
        Class::Finite
    }
}

/// Compares `got` with `want` element-wise: `|got[k] - want[k]| <= bound[k]` (the
/// per-element bounds of [`Expected`]); NaN must match NaN and an infinity the same
/// infinity, and a finite `want` needs a finite bound (an infinite one would test
/// nothing). Returns a description of the worst violation, named `name[index]`.
pub fn compare(name: &str, got: &[f32], want: &[f64], bound: &[f64]) -> Result<(), String> {
    if got.len() != want.len() || bound.len() != want.len() {
        return Err(format!(
            "{name}: lengths got {} want {} bound {}",
            got.len(),
            want.len(),
            bound.len()
        ));
    }
    let mut worst: Option<(usize, f64)> = None;
    for (k, ((&g, &w), &b)) in got.iter().zip(want).zip(bound).enumerate() {
        let g = g as f64;
        let excess = if w.is_nan() || g.is_nan() {
            if w.is_nan() == g.is_nan() {
                0.0
            } else {
                f64::INFINITY
            }
        } else if w.is_infinite() || g.is_infinite() {
            if g == w {
                0.0
            } else {
                f64::INFINITY
            }
        } else if !b.is_finite() {
            f64::INFINITY
        } else {
            excess(g, w, b)
        };
        if excess > 1.0 && worst.is_none_or(|(_, e)| excess > e) {
            worst = Some((k, excess));
        }
    }
    match worst {
        None => Ok(()),
        Some((k, _)) => Err(format!(
            "{name}[{k}]: got {:e}, want {:e}: |diff| {:e} > bound {:e}",
            got[k],
            want[k],
            (f64::from(got[k]) - want[k]).abs(),
            bound[k]
        )),
    }
}

/// `|got - want| / bound`, the fraction of the bound an error uses (0 for an exact
/// result, infinite for an error against a zero bound).
pub fn excess(got: f64, want: f64, bound: f64) -> f64 {
    let d = (got - want).abs();
    if d == 0.0 {
        0.0
    } else {
        d / bound
    }
}

/// [`compare`] of `y`, `h_n` and `c_n` (kernel outputs widened to `f32`) with
/// [`Expected`], each error prefixed with `ctx`.
pub fn compare_outputs(
    ctx: &str,
    (y, h_n, c_n): (&[f32], &[f32], &[f32]),
    e: &Expected,
) -> Result<(), String> {
    let (w, b) = (&e.want, &e.bound);
    compare("y", y, &w.y, &b.y)
        .and_then(|()| compare("h_n", h_n, &w.h_n, &b.h_n))
        .and_then(|()| compare("c_n", c_n, &w.c_n, &b.c_n))
        .map_err(|e| format!("{ctx}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_bites() {
        let b = [1e-3, 1e-3];
        assert!(compare("y", &[1.0, 2.0], &[1.0, 2.0005], &b).is_ok());
        let e = compare("y", &[1.0, 2.0], &[1.0, 2.01], &b).unwrap_err();
        assert!(e.starts_with("y[1]"), "{e}");
        assert!(compare("y", &[f32::NAN], &[0.0], &b[..1]).is_err());
        assert!(compare("y", &[0.0], &[f64::NAN], &b[..1]).is_err());
        assert!(compare("y", &[f32::NAN], &[f64::NAN], &b[..1]).is_ok());
        assert!(compare("y", &[f32::INFINITY], &[f64::NEG_INFINITY], &b[..1]).is_err());
        assert!(compare("y", &[1.0], &[1.0, 2.0], &b).is_err());
        // A zero bound demands the exact value; an infinite one is refused.
        assert!(compare("y", &[1.0], &[1.0], &[0.0]).is_ok());
        assert!(compare("y", &[1.0], &[1.0 + 1e-12], &[0.0]).is_err());
        assert!(compare("y", &[1.0], &[1.0], &[f64::INFINITY]).is_err());
        assert_eq!(class(-0.0), Class::Finite);
        assert_eq!(class(f64::NEG_INFINITY), Class::NegInf);
    }
}
