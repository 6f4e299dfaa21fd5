//! Element-wise comparison of kernel outputs with the f64 reference, and the
//! special-value classes (NaN, ±inf, finite) the NaN/inf tests compare.

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

/// Compares `got` with `want` element-wise: `|got - want| <= atol + rtol |want|` with
/// `tol = (atol, rtol)`; NaN must match NaN and an infinity the same infinity. Returns
/// a description of the worst violation, named `name[index]`.
pub fn compare(name: &str, got: &[f32], want: &[f64], tol: (f64, f64)) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{name}: length {} != {}", got.len(), want.len()));
    }
    let mut worst: Option<(usize, f64)> = None;
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        let bad = if w.is_nan() || g.is_nan() {
            w.is_nan() != g.is_nan()
        } else if w.is_infinite() || g.is_infinite() {
            g != w
        } else {
            (g - w).abs() > tol.0 + tol.1 * w.abs()
        };
        if bad {
            let excess = (g - w).abs() / (tol.0 + tol.1 * w.abs());
            if worst.is_none_or(|(_, e)| excess > e || excess.is_nan()) {
                worst = Some((k, excess));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((k, _)) => Err(format!(
            "{name}[{k}]: got {}, want {} (atol {:e}, rtol {:e})",
            got[k], want[k], tol.0, tol.1
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_bites() {
        let tol = (1e-3, 0.0);
        assert!(compare("y", &[1.0, 2.0], &[1.0, 2.0005], tol).is_ok());
        let e = compare("y", &[1.0, 2.0], &[1.0, 2.01], tol).unwrap_err();
        assert!(e.starts_with("y[1]"), "{e}");
        assert!(compare("y", &[f32::NAN], &[0.0], tol).is_err());
        assert!(compare("y", &[0.0], &[f64::NAN], tol).is_err());
        assert!(compare("y", &[f32::NAN], &[f64::NAN], tol).is_ok());
        assert!(compare("y", &[f32::INFINITY], &[f64::NEG_INFINITY], tol).is_err());
        assert!(compare("y", &[1.0], &[1.0, 2.0], tol).is_err());
        assert_eq!(class(-0.0), Class::Finite);
        assert_eq!(class(f64::NEG_INFINITY), Class::NegInf);
    }
}
