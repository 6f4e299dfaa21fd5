//! Shared test support for the workspace's tests, the fuzz targets and the
//! bench-suite: **not a stable API**, compiled only with the `testkit` feature.
//!
//! One home for what the kernels' and the reference's tests, `fuzz/` and
//! `bench-suite` all need, so none of them keeps a copy:
//!
//! - [`mod@rng`]: the seeded generators ([`SplitMix64`], [`Lcg`]);
//! - [`mod@variants`]: the one list of every cell variant ([`variants::all`]) and the
//!   pickers that draw one from a selector byte or a generator;
//! - [`mod@problem`]: random problems normalized for the derived tolerance
//!   ([`problem()`], [`Problem`]);
//! - [`mod@oracle`]: the f64 reference run on `f32` values;
//! - [`mod@tolerance`]: the derived bound every kernel path is held to
//!   ([`tolerance()`]);
//! - [`mod@compare`]: element-wise comparison against the reference and IEEE classes;
//! - [`mod@golden`]: the golden-vector loader and runner (gradients included);
//! - [`mod@gradcheck`]: gradients by central finite differences of the f64 forward;
//! - [`mod@grad_tolerance`]: the derived bound every kernel backward is held to;
//! - [`mod@fixture`]: fixed, non-random weights and inputs;
//! - [`mod@errors`]: assertions on the errors of the bad-input contract;
//! - [`mod@convert`]: `f32` / `f64` conversions of values and weight sets.

pub mod compare;
pub mod convert;
pub mod errors;
pub mod fixture;
pub mod golden;
pub mod grad_tolerance;
pub mod gradcheck;
pub mod oracle;
pub mod problem;
pub mod rng;
pub mod tolerance;
pub mod variants;

pub use compare::{class, compare, Class};
pub use convert::{to_f32, to_f64};
pub use grad_tolerance::{grad_tolerance, maxima, GradTolerance, LayerMaxima};
pub use problem::{problem, Problem, TypedInputs};
pub use rng::{Lcg, SplitMix64};
pub use tolerance::tolerance;
