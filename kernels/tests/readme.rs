//! The README's Usage example is the rustdoc front page's (which `cargo test` runs as
//! a doctest), character for character, so the README never shows code that does not
//! compile. (With `--features models` the README's blocks also run as doctests
//! themselves: `ReadmeDoctests` in `src/lib.rs`.)

use std::path::Path;

/// The first ```` ```rust ```` block after `## Usage` in the README.
fn readme_example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(path).expect("README.md is readable");
    let usage = &text[text.find("## Usage").expect("a Usage section")..];
    let start = usage.find("```rust\n").expect("a rust block") + "```rust\n".len();
    let len = usage[start..].find("```\n").expect("the block ends");
    usage[start..start + len].to_string()
}

/// The first ```` ```rust ```` block of the crate docs (`//!` lines of `src/lib.rs`).
fn front_page_example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    let text = std::fs::read_to_string(path).expect("src/lib.rs is readable");
    let doc: Vec<&str> = text
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let start = doc
        .iter()
        .position(|l| *l == "```rust")
        .expect("a rust block")
        + 1;
    let len = doc[start..]
        .iter()
        .position(|l| *l == "```")
        .expect("the block ends");
    doc[start..start + len]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn readme_usage_is_the_front_page_example() {
    let (readme, front) = (readme_example(), front_page_example());
    assert!(readme.contains("PackedRnn::from_pytorch"), "{readme}");
    assert_eq!(
        readme, front,
        "README.md's Usage example and src/lib.rs's differ"
    );
}
