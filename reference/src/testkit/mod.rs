//! Shared test support for the workspace's tests, the fuzz targets and the
//! bench-suite: **not a stable API**, compiled only with the `testkit` feature.
//!
//! One home for what the kernels' and the reference's tests, `fuzz/` and
//! `bench-suite` all need, so none of them keeps a copy:
//!
//! - [`mod@rng`]: the seeded generators ([`SplitMix64`], [`Lcg`]);
//! - [`mod@variants`]: the one list of every cell variant ([`variants::all`]) and the
//!   pickers that draw one from a selector byte or a generator;
//! - [`mod@problem`]: random problems, contracting or ill-conditioned on purpose
//!   ([`problem()`], [`Problem`]);
//! - [`mod@oracle`]: the f64 reference run on `f32` values;
//! - [`mod@bound`]: the per-element error bound every implementation is held to,
//!   computed alongside the f64 reference ([`Expected`], [`Bounded`]);
//! - [`mod@compare`]: element-wise comparison against the reference within those
//!   bounds, and IEEE classes;
//! - [`mod@golden`]: the golden-vector loader and runner (gradients included);
//! - [`mod@gradcheck`]: gradients by central finite differences of the f64 forward;
//! - [`mod@fixture`]: fixed, non-random weights and inputs;
//! - [`mod@errors`]: assertions on the errors of the bad-input contract;
//! - [`mod@convert`]: `f32` / `f64` conversions of values and weight sets.

pub mod bound;
pub mod compare;
pub mod convert;
pub mod errors;
pub mod fixture;
pub mod golden;
pub mod gradcheck;
pub mod oracle;
pub mod problem;
pub mod rng;
pub mod variants;

pub use bound::{Bounded, Expected};
pub use compare::{
    class, compare, compare_outputs, compare_outputs_ill, compare_tol, compare_within, planted,
    refuse_vacuous, Class,
};
pub use convert::{to_f32, to_f64};
pub use problem::{problem, Problem, TypedInputs};
pub use rng::{Lcg, SplitMix64};

/// Cases per property test: `$PROPTEST_CASES` if set (CI sets 10 000), else `default`
/// (what `cargo test --release` runs locally).
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}
