//! The data flows one way (input → lines → records → manifests → catalog), and so do the
//! imports: a module may use the ones below it, never one above it or a sibling. This reads
//! every `crate::` path in the library's sources and checks it against that order.

use crate::util::repo;
use std::collections::BTreeSet;
use std::path::Path;

/// The library's top-level modules, lowest first. Modules that share a rank are siblings and
/// may not use each other.
const LAYERS: &[&[&str]] = &[
    &["fault"],
    &["redact"],
    &["error", "retry"],
    &["yaml"],
    &["record"],
    &["parse"],
    &["output", "render"],
    &["catalog"],
    &["watch"],
];

/// Names the crate root re-exports, and the module each comes from.
const ROOT_REEXPORTS: &[(&str, &str)] = &[
    ("Record", "record"),
    ("Error", "error"),
    ("InputError", "error"),
    ("Fault", "fault"),
    ("Classify", "fault"),
    // Defined in lib.rs itself, below everything.
    ("stable_hash", "fault"),
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`src/catalog/index.rs` → `catalog`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    (!["lib", "main", "cli"].contains(&name.as_str())).then_some(name)
}

/// Every module named by a `crate::NAME` path in `text`.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        // `$crate::` in macros and `sigcat::crate` never occur; skip identifiers ending in crate.
        if text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            // `crate::{a, b}`: each name.
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for part in group.split(',') {
                    let part: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !part.is_empty() {
                        out.insert(part);
                    }
                }
            }
            continue;
        }
        out.insert(name);
    }
    out
}

#[test]
fn no_module_imports_one_above_it_or_a_sibling() {
    let src = repo().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        seen_modules.insert(module.clone());
        let mine = rank(&module).unwrap_or_else(|| {
            panic!(
                "{}: module `{module}` has no place in LAYERS; add it where it belongs",
                file.display()
            )
        });
        let text = std::fs::read_to_string(file).unwrap();
        for name in imports(&text) {
            let target = ROOT_REEXPORTS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, m)| m.to_string())
                .unwrap_or(name.clone());
            if target == module {
                continue;
            }
            match rank(&target) {
                Some(r) if r < mine => {}
                Some(_) => wrong.push(format!(
                    "{} (`{module}`) uses `crate::{name}`, which is not below it",
                    file.strip_prefix(repo()).unwrap().display()
                )),
                None => wrong.push(format!(
                    "{}: `crate::{name}` is not a module in LAYERS",
                    file.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    for layer in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            seen_modules.contains(*layer),
            "LAYERS names `{layer}`, which is not a module any more"
        );
    }
}

#[test]
fn the_checker_sees_imports_in_every_form() {
    let found = imports(
        "use crate::catalog::Catalog;\nuse crate::{render, parse::lines};\nlet x = crate::redact::redact_secrets(y);\n$crate::z",
    );
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["catalog", "parse", "redact", "render"]
    );
}
