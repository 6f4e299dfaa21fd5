#!/usr/bin/env bash
# Regenerates `onnx.rs` (the prost types of ONNX's own `onnx.proto`, committed beside
# it) with prost-build and protox, a pure-Rust protobuf compiler: no `protoc` is needed,
# here or at build time. Run it after replacing `onnx.proto` with a newer copy (the
# `onnx` Python package ships it: `python3 -c "import onnx, os;
# print(os.path.join(os.path.dirname(onnx.__file__), 'onnx.proto'))"`).
#
#   kernels/src/models/onnx/proto/generate.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
cat > "$work/Cargo.toml" <<'TOML'
[package]
name = "onnx-proto-gen"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
prost-build = "=0.14.6"
protox = "=0.10.0"

[workspace]
TOML
cat > "$work/src/main.rs" <<'RUST'
fn main() {
    let dir = std::env::args().nth(1).expect("the proto directory");
    let fds = protox::compile(["onnx.proto"], [&dir]).expect("onnx.proto compiles");
    // No comments: the proto's prose (indented ASCII art included) would become
    // doc comments and doctests; `onnx.proto` beside the output documents each field.
    prost_build::Config::new()
        .disable_comments(["."])
        .out_dir(&dir)
        .compile_fds(fds)
        .expect("prost-build writes onnx.rs");
}
RUST
cargo run --quiet --release --manifest-path "$work/Cargo.toml" -- "$here"
rustfmt --edition 2021 "$here/onnx.rs"
echo "wrote $here/onnx.rs"
