//! The crate's module graph is one-way: a module imports only modules below it in the
//! layer list of `src/lib.rs` (reproduced here). Reads the sources as text, so a new
//! upward import fails this test before it becomes a cycle.

use std::path::Path;

/// Top-level modules, bottom first; a module may import those before it.
const LAYERS: &[&[&str]] = &[
    &["aligned", "isa", "parallel"],
    &["simd"],
    &["element"],
    &["pack"],
    &["kernel"],
    &["arch"],
    &["passes"],
    &["cells"],
    &["dispatch"],
    &["io", "packed", "workspace"],
    &[
        "output",
        "packed_cell",
        "sequence",
        "sequence_aligned",
        "training",
    ],
    &["models"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_import_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || rel.to_string_lossy().contains("tests") {
            continue;
        }
        let me = layer(&module).unwrap_or_else(|| panic!("{module} is in no layer"));
        let text = std::fs::read_to_string(f).unwrap();
        // Test modules may reach anywhere.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        for (k, _) in code.match_indices("crate::") {
            let name: String = code[k + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            if let Some(l) = layer(&name) {
                if l > me {
                    upward.push(format!("{} imports crate::{name}", rel.display()));
                }
            }
        }
    }
    assert!(upward.is_empty(), "upward imports: {upward:#?}");
    // Every top-level module is in a layer.
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs");
        assert!(module == "lib" || layer(module).is_some(), "{module}");
    }
}
