//! The crate's layering, checked on its sources (as
//! `ctrl/tests/api_contract.rs` checks ctrl's):
//!
//! ```text
//!   api (the contract) ──► runtime (start-up, running handles) ──► worker
//!     └──────────────┬──────────────────────────────────────────────┘
//!                    ▼
//!                 shared (Tables, PollMode, BFD orders, published state)
//! ```
//!
//! - nothing but `runtime/` imports `api` (the workers, lb, host, bfd and
//!   wire see `shared` instead), so the dependency between the contract
//!   and the loop points one way;
//! - nothing but `api` names `runtime`;
//! - `shared` imports neither `api`, `runtime` nor `worker`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The lines of `text` (1-based) whose code names module `module` of this
/// crate: `crate::module`, `super::module` or `use module` paths.
/// Comments are skipped; `crate::apiary` is not `crate::api`.
fn names(text: &str, module: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .filter(|(_, l)| {
            ["crate::", "super::"].iter().any(|prefix| {
                let pat = format!("{prefix}{module}");
                l.match_indices(&pat).any(|(i, m)| {
                    !l[i + m.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            })
        })
        .map(|(n, _)| n + 1)
        .collect()
}

/// Every source file of the crate, relative to `src/`, with its text.
fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 30, "{files:?}");
    files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(&src).unwrap().display().to_string();
            (rel, std::fs::read_to_string(&f).unwrap())
        })
        .collect()
}

/// `file:line` of every file outside `allowed` that names `module`.
fn offenders(module: &str, allowed: impl Fn(&str) -> bool) -> Vec<String> {
    sources()
        .iter()
        .filter(|(f, _)| !allowed(f) && f != "layers.rs")
        .flat_map(|(f, text)| {
            names(text, module)
                .into_iter()
                .map(move |n| format!("{f}:{n}"))
        })
        .collect()
}

#[test]
fn only_runtime_imports_the_contract() {
    // The worker above all: it once imported `api` for `Tables`,
    // `PollMode` and the BFD orders while `api` built workers.
    let bad = offenders("api", |f| f == "api.rs" || f.starts_with("runtime"));
    assert!(bad.is_empty(), "imports crate::api: {bad:?}");
}

#[test]
fn only_the_contract_names_runtime() {
    let bad = offenders("runtime", |f| f == "api.rs" || f.starts_with("runtime"));
    assert!(bad.is_empty(), "names crate::runtime: {bad:?}");
}

#[test]
fn shared_imports_neither_side() {
    let text = sources()
        .into_iter()
        .find(|(f, _)| f == "shared.rs")
        .unwrap()
        .1;
    for m in ["api", "runtime", "worker"] {
        assert_eq!(names(&text, m), Vec::<usize>::new(), "shared.rs names {m}");
    }
}

#[test]
fn the_check_sees_imports() {
    let text = "use crate::api::{BfdCommand, Tables};\n\
                // use crate::api::Tables in a comment\n\
                use crate::apiary::X;\n\
                use super::api;\n\
                let t: crate::api::Tables = x;\n";
    assert_eq!(names(text, "api"), [1, 4, 5]);
}
