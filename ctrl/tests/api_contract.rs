//! ctrl's layering (issue 16), checked on its sources:
//! - ctrl sees the data plane through `dataplane::api` only: every
//!   `dataplane::` path in ctrl's sources and tests goes through it. A type
//!   ctrl needs is re-exported there, so the contract stays one file.
//! - Rendering (`src/render/`) alone knows every subsystem: no subsystem
//!   imports it; only the wiring (`lib.rs`, `main.rs`, `run.rs`) and test
//!   code do.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The `dataplane::` paths of `text` that do not go through `api`
/// (comments are not code and are skipped).
fn reach_ins(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .filter(|(_, l)| {
            l.match_indices("dataplane::").any(|(i, m)| {
                let before = l[..i].chars().next_back();
                // `ctrl_dataplane::x` is some other crate's path.
                let ours = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
                let api = l[i + m.len()..]
                    .strip_prefix("api")
                    .is_some_and(|r| !r.starts_with(|c: char| c.is_alphanumeric() || c == '_'));
                ours && !api
            })
        })
        .map(|(n, l)| (n + 1, l.trim().to_string()))
        .collect()
}

#[test]
fn ctrl_imports_only_dataplane_api() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    assert!(files.len() > 10, "{files:?}");
    // This file names reach-ins on purpose.
    files.retain(|f| !f.ends_with(file!().rsplit('/').next().unwrap()));
    let bad: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            reach_ins(&text)
                .into_iter()
                .map(move |(n, l)| format!("{}:{n}: {l}", f.display()))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "ctrl reaches past dataplane::api:\n{}",
        bad.join("\n")
    );
}

#[test]
fn subsystems_do_not_import_render() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let wiring = ["lib.rs", "main.rs", "run.rs", "bgp/tests.rs"].map(|f| src.join(f));
    let bad: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(src.join("render")) && !wiring.contains(f))
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim_start().starts_with("//") && l.contains("render::"))
                .map(|(n, l)| format!("{}:{}: {}", f.display(), n + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        bad.is_empty(),
        "a subsystem imports render/:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_reach_ins() {
    let text = "use dataplane::api::{Dataplane, Mac};\n\
                use dataplane::bfd::State;\n\
                // dataplane::dpdk in a comment\n\
                let v = dataplane::apiary::X;\n\
                let w = dataplane::{api, lb};\n";
    let lines: Vec<usize> = reach_ins(text).into_iter().map(|(n, _)| n).collect();
    assert_eq!(lines, [2, 4, 5]);
}
