//! The files in `pipelines/` are what teams copy, so they must not rot: every YAML file must
//! parse, and every step that runs sigcat is run here, as written, against fixture logs
//! (`ci.rs` for the GitHub Actions workflow and the Azure DevOps pipeline, `watcher.rs` for the
//! watcher's deployments). sigcat is the real binary and the catalog a real Azurite.

mod ci;
mod watcher;

use crate::util::repo;
use serde_norway::Value;
use std::collections::BTreeMap;

pub fn yaml(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

pub fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn every_yaml_file_in_pipelines_parses() {
    let mut count = 0;
    let mut stack = vec![repo().join("pipelines")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                let rel = path
                    .strip_prefix(repo())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                assert!(!yaml(&rel).is_empty(), "{rel} is empty");
                count += 1;
            }
        }
    }
    assert!(count >= 3, "found {count} YAML files");
}

/// Replaces `open EXPR close` with values; an unknown expression fails the test, so a new
/// expression in a pipeline gets a value here rather than silently passing.
pub fn substitute(
    text: &str,
    open: &str,
    close: &str,
    values: &BTreeMap<String, String>,
) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        out.push_str(&rest[..start]);
        let after = &rest[start + open.len()..];
        let end = after
            .find(close)
            .unwrap_or_else(|| panic!("unclosed {open} in {text}"));
        let key = after[..end].trim();
        out.push_str(
            values
                .get(key)
                .unwrap_or_else(|| panic!("no test value for `{key}` in {text}")),
        );
        rest = &after[end + close.len()..];
    }
    out.push_str(rest);
    out
}
