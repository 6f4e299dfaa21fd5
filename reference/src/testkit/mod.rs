//! Shared test support for the workspace's tests, the fuzz targets and the
//! bench-suite: **not a stable API**, compiled only with the `testkit` feature.
//!
//! One home for what the kernels' and the reference's tests, `fuzz/` and
//! `bench-suite` all need, so none of them keeps a copy:
//!
//! - [`rng`]: the seeded generators ([`SplitMix64`], [`Lcg`]);
//! - [`variants`]: the one list of every cell variant ([`variants::all`]) and the
//!   pickers that draw one from a selector byte or a generator;
//! - [`problem`]: random problems normalized for the derived tolerance
//!   ([`problem()`](problem::problem), [`Problem`]);
//! - [`oracle`]: the f64 reference run on `f32` values;
//! - [`tolerance`]: the derived bound every kernel path is held to
//!   ([`tolerance()`](tolerance::tolerance));
//! - [`compare`]: element-wise comparison against the reference and IEEE classes;
//! - [`golden`]: the golden-vector loader and runner;
//! - [`fixture`]: fixed, non-random weights and inputs;
//! - [`errors`]: assertions on the errors of the bad-input contract;
//! - [`convert`]: `f32` / `f64` conversions of values and weight sets.

pub mod compare;
pub mod convert;
pub mod errors;
pub mod fixture;
pub mod golden;
pub mod oracle;
pub mod problem;
pub mod rng;
pub mod tolerance;
pub mod variants;

pub use compare::{class, compare, Class};
pub use convert::{to_f32, to_f64};
pub use problem::{problem, Problem};
pub use rng::{Lcg, SplitMix64};
pub use tolerance::tolerance;
