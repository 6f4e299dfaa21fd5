//! The one error type of the workspace: every bad argument is reported by name.

use std::fmt;

/// Result alias used by every fallible function of `rnn-reference` and `rnn-kernels`.
pub type Result<T> = std::result::Result<T, Error>;

/// What was wrong with a call. Every variant names the offending argument
/// (for example `weights[1].w_hh` or `seq_lens[3]`), what was expected and what was given.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A slice has the wrong number of elements.
    Length {
        /// The argument, e.g. `x` or `weights[0].b_ih`.
        arg: String,
        /// The length the shapes imply.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A size, flag or value is outside what is allowed (zero sizes, lengths past `T`, ...).
    Invalid {
        /// The argument, e.g. `hidden_size`.
        arg: String,
        /// What would have been accepted.
        expected: String,
        /// What was given.
        actual: String,
    },
    /// A product of sizes does not fit in `usize` (or in the kernels' index range).
    Overflow {
        /// The argument whose size overflowed.
        arg: String,
        /// The product that overflowed, e.g. `steps * batch * input_size`.
        what: String,
    },
    /// A forced instruction set is not available on this CPU or build.
    IsaUnavailable {
        /// The instruction set asked for.
        requested: String,
        /// Why it cannot be used.
        reason: String,
    },
}

impl Error {
    pub(crate) fn length(arg: impl Into<String>, expected: usize, actual: usize) -> Self {
        Error::Length {
            arg: arg.into(),
            expected,
            actual,
        }
    }

    pub(crate) fn invalid(
        arg: impl Into<String>,
        expected: impl Into<String>,
        actual: impl fmt::Display,
    ) -> Self {
        Error::Invalid {
            arg: arg.into(),
            expected: expected.into(),
            actual: actual.to_string(),
        }
    }

    pub(crate) fn overflow(arg: impl Into<String>, what: impl Into<String>) -> Self {
        Error::Overflow {
            arg: arg.into(),
            what: what.into(),
        }
    }

    /// The name of the argument the error is about: `arg` of [`Error::Length`],
    /// [`Error::Invalid`] and [`Error::Overflow`]; `"isa"` for
    /// [`Error::IsaUnavailable`] (whose `requested` field holds the name asked for).
    ///
    /// ```
    /// use rnn_reference::Error;
    /// let e = Error::Length { arg: "x".into(), expected: 30, actual: 29 };
    /// assert_eq!(e.arg(), "x");
    /// let e = Error::IsaUnavailable { requested: "avx9".into(), reason: "unknown".into() };
    /// assert_eq!(e.arg(), "isa");
    /// ```
    pub fn arg(&self) -> &str {
        match self {
            Error::Length { arg, .. }
            | Error::Invalid { arg, .. }
            | Error::Overflow { arg, .. } => arg,
            Error::IsaUnavailable { .. } => "isa",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Length {
                arg,
                expected,
                actual,
            } => write!(
                f,
                "`{arg}` has the wrong length: expected {expected} elements, got {actual}"
            ),
            Error::Invalid {
                arg,
                expected,
                actual,
            } => write!(f, "`{arg}` is invalid: expected {expected}, got {actual}"),
            Error::Overflow { arg, what } => {
                write!(f, "`{arg}` is too large: {what} overflows")
            }
            Error::IsaUnavailable { requested, reason } => {
                write!(f, "instruction set `{requested}` is unavailable: {reason}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Multiplies sizes, reporting an overflow against `arg`.
pub(crate) fn checked_product(arg: &str, what: &str, factors: &[usize]) -> Result<usize> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .ok_or_else(|| Error::overflow(arg, what))
}
