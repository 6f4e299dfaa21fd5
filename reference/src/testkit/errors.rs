//! Assertions on the errors of the bad-input contract (`docs/errors.md`): the variant,
//! and the argument it names.

use std::fmt::Debug;

use crate::Error;

/// Asserts `r` is `Err(Error::Length { arg, expected, actual })`.
#[track_caller]
pub fn assert_length<T: Debug>(r: Result<T, Error>, arg: &str, expected: usize, actual: usize) {
    match r {
        Err(Error::Length {
            arg: a,
            expected: e,
            actual: got,
        }) => assert_eq!((a.as_str(), e, got), (arg, expected, actual)),
        other => panic!("expected Length error on `{arg}`, got {other:?}"),
    }
}

/// Asserts `r` is `Err(Error::Invalid { .. })` naming `arg`, in `arg()` and in its
/// message.
#[track_caller]
pub fn assert_invalid<T: Debug>(r: Result<T, Error>, arg: &str) {
    match r {
        Err(e @ Error::Invalid { .. }) => {
            assert_eq!(e.arg(), arg, "{e}");
            assert!(e.to_string().contains(arg));
        }
        other => panic!("expected Invalid error on `{arg}`, got {other:?}"),
    }
}

/// Asserts `r` is `Err(Error::Overflow { .. })` naming `arg`.
#[track_caller]
pub fn assert_overflow<T: Debug>(r: Result<T, Error>, arg: &str) {
    match r {
        Err(e @ Error::Overflow { .. }) => assert_eq!(e.arg(), arg, "{e}"),
        other => panic!("expected Overflow error on `{arg}`, got {other:?}"),
    }
}
