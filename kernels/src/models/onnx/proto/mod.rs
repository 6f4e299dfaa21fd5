//! The types of ONNX's `onnx.proto` (IR version 14, from the `onnx` 1.23 Python
//! package), generated once by `generate.sh` beside this file with prost-build and
//! protox (no `protoc` at build time), and committed as `onnx.rs`. Only the loader's
//! reading side uses them.
#![allow(
    missing_docs,
    dead_code,
    clippy::all,
    clippy::pedantic,
    unreachable_pub
)]

include!("onnx.rs");
