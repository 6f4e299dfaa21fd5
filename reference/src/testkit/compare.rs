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

/// The largest bound a comparison accepts, as a fraction of the largest finite `|want|`
/// of the compared array: a bound of 1% of the values or more would let a wrong result
/// of that size pass, so the check could not fail on it (issue 17).
pub const VACUOUS: f64 = 0.01;

/// Bounds below this absolute level (`2^-24`, one f32 rounding of a value of order 1)
/// are never called vacuous: on an array of zeros (a ReLU network that is off) they are
/// underflow floors and the half types' rounding floor (`2^-25` for f16 outputs), not
/// room for a bug.
pub const VACUOUS_FLOOR: f64 = 1.0 / (1u64 << 24) as f64;

/// Refuses a vacuous bound: `Err` naming the first element whose `want` is finite and
/// whose bound is negative, NaN, infinite, or at least [`VACUOUS`] times the largest
/// finite `|want|` of the array and above [`VACUOUS_FLOOR`]. Every comparison helper of the test kit and the fuzz targets calls it
/// before comparing: no check can pass because its bound is too wide to fail.
pub fn refuse_vacuous(name: &str, want: &[f64], bound: &[f64]) -> Result<(), String> {
    let scale = want
        .iter()
        .filter(|w| w.is_finite())
        .fold(0.0f64, |m, w| m.max(w.abs()));
    for (k, (&w, &b)) in want.iter().zip(bound).enumerate() {
        let vacuous = !(b.is_finite() && b >= 0.0) || (b > VACUOUS_FLOOR && b >= VACUOUS * scale);
        if w.is_finite() && vacuous {
            return Err(format!(
                "{name}[{k}]: vacuous bound {b:e} (largest |want| {scale:e}): a check with it \
                 could not fail"
            ));
        }
    }
    Ok(())
}

/// Compares `got` with `want` element-wise: `|got[k] - want[k]| <= bound[k]` (the
/// per-element bounds of [`Expected`]); NaN must match NaN and an infinity the same
/// infinity. A vacuous bound is refused first ([`refuse_vacuous`]). Returns a
/// description of the worst violation, named `name[index]`.
pub fn compare(name: &str, got: &[f32], want: &[f64], bound: &[f64]) -> Result<(), String> {
    refuse_vacuous(name, want, bound)?;
    compare_within(name, got, want, bound)
}

/// [`compare`] without the vacuity refusal: every element within its bound, whatever
/// the bound's size. For an ill-conditioned array, whose rigorous bound is 1% of its
/// values or more (see [`compare_outputs_ill`]): the check is weaker there, but it
/// can still only fail on a result outside the rigorous bound, i.e. on a bug.
pub fn compare_within(name: &str, got: &[f32], want: &[f64], bound: &[f64]) -> Result<(), String> {
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

/// `got` with element `k` replaced by `want[k]` plus 2% of the largest finite `|want|`
/// (at least `2 VACUOUS_FLOOR`): a wrong result that every check must catch, whatever
/// its bound, since [`compare`] refuses a bound of 1% of that (and above the floor).
/// The tests that plant it prove that no comparison can pass vacuously.
pub fn planted(got: &[f32], want: &[f64], k: usize) -> Vec<f32> {
    let scale = want
        .iter()
        .filter(|w| w.is_finite())
        .fold(0.0f64, |m, w| m.max(w.abs()));
    // Above every bound `compare` accepts: 1% of the scale, or the floor.
    let shift = (2.0 * VACUOUS * scale).max(2.0 * VACUOUS_FLOOR);
    let mut v = got.to_vec();
    v[k] = (want[k] + shift) as f32;
    v
}

/// [`compare`] with the bound `atol + rtol |want[k]|` of each element (a golden
/// tolerance).
pub fn compare_tol(
    name: &str,
    got: &[f32],
    want: &[f64],
    (atol, rtol): (f64, f64),
) -> Result<(), String> {
    let bound: Vec<f64> = want.iter().map(|w| atol + rtol * w.abs()).collect();
    compare(name, got, want, &bound)
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

/// The largest [`excess`] over an array: the share of its bound the worst element
/// uses (how tight a bound is in practice).
pub fn max_excess(got: &[f32], want: &[f64], bound: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .zip(bound)
        .fold(0.0, |u, ((&g, &w), &b)| u.max(excess(f64::from(g), w, b)))
}

/// [`compare`] of `y`, `h_n` and `c_n` (kernel outputs widened to `f32`) with
/// [`Expected`], each error prefixed with `ctx`.
pub fn compare_outputs(
    ctx: &str,
    outputs: (&[f32], &[f32], &[f32]),
    e: &Expected,
) -> Result<(), String> {
    compare_outputs_ill(ctx, outputs, e, false).map(|_| ())
}

/// [`compare_outputs`] for a problem that may be ill-conditioned (`ill`: a recurrence
/// that amplifies errors, dot products that cancel into tiny outputs): an array whose
/// bound is vacuous ([`refuse_vacuous`]) is then still compared within that rigorous
/// bound ([`compare_within`]) instead of being refused, and the number of such arrays
/// is returned for the caller to count. With `ill == false` a vacuous bound is an
/// error, as in [`compare_outputs`].
pub fn compare_outputs_ill(
    ctx: &str,
    (y, h_n, c_n): (&[f32], &[f32], &[f32]),
    e: &Expected,
    ill: bool,
) -> Result<usize, String> {
    let (w, b) = (&e.want, &e.bound);
    let mut vacuous = 0;
    for (name, got, want, bound) in [
        ("y", y, &w.y, &b.y),
        ("h_n", h_n, &w.h_n, &b.h_n),
        ("c_n", c_n, &w.c_n, &b.c_n),
    ] {
        let result = if ill && refuse_vacuous(name, want, bound).is_err() {
            vacuous += 1;
            compare_within(name, got, want, bound)
        } else {
            compare(name, got, want, bound)
        };
        result.map_err(|e| format!("{ctx}: {e}"))?;
    }
    Ok(vacuous)
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
        assert!(compare("y", &[f32::NAN, 1.0], &[0.5, 1.0], &b).is_err());
        assert!(compare("y", &[0.0], &[f64::NAN], &b[..1]).is_err());
        assert!(compare("y", &[f32::NAN], &[f64::NAN], &b[..1]).is_ok());
        assert!(compare("y", &[f32::INFINITY], &[f64::NEG_INFINITY], &b[..1]).is_err());
        assert!(compare("y", &[1.0], &[1.0, 2.0], &b).is_err());
        // A zero bound demands the exact value; an infinite or NaN one is refused.
        assert!(compare("y", &[1.0], &[1.0], &[0.0]).is_ok());
        assert!(compare("y", &[1.0], &[1.0 + 1e-12], &[0.0]).is_err());
        assert!(compare("y", &[1.0], &[1.0], &[f64::INFINITY]).is_err());
        assert!(compare("y", &[1.0], &[1.0], &[f64::NAN]).is_err());
        assert!(compare("y", &[1.0], &[1.0], &[-1e-9]).is_err());
        // A bound of 1% of the largest |want| or more is refused even when got == want.
        let e = compare("y", &[1.0, 0.5], &[1.0, 0.5], &[0.0, 0.01]).unwrap_err();
        assert!(e.starts_with("y[1]: vacuous bound"), "{e}");
        assert!(compare("y", &[1.0, 0.5], &[1.0, 0.5], &[0.0, 0.0099]).is_ok());
        assert!(compare("y", &[0.0], &[0.0], &[1e-30]).is_ok());
        assert!(compare("y", &[0.0], &[0.0], &[1e-7]).is_err());
        assert!(compare("y", &[0.0, 1.0], &[f64::NAN, 1.0], &[f64::NAN, 0.0]).is_err());
        assert!(compare("y", &[f32::NAN, 1.0], &[f64::NAN, 1.0], &[f64::NAN, 0.0]).is_ok());
        assert!(compare_tol("y", &[1.0, 2.0], &[1.0, 2.0], (0.02, 0.0)).is_err());
        assert!(compare_tol("y", &[1.0, 2.0], &[1.0, 2.0], (1e-3, 1e-3)).is_ok());
        // A planted error is caught whatever the (accepted) bound.
        let (w, b) = ([1.0, -0.5, 0.0], [0.0099, 0.0099, 0.0099]);
        for k in 0..3 {
            assert!(compare("y", &planted(&[1.0, -0.5, 0.0], &w, k), &w, &b).is_err());
        }
        assert!(compare("y", &planted(&[0.0], &[0.0], 0), &[0.0], &[0.0]).is_err());
        assert_eq!(class(-0.0), Class::Finite);
        assert_eq!(class(f64::NEG_INFINITY), Class::NegInf);
    }
}
