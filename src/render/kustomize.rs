//! `--as kustomize DIR`: the upgrade as a kustomization that `kubectl apply -k DIR` applies in
//! one step. New objects are resources; an object that changes is a resource as it is now
//! plus a merge patch, so a reviewer sees exactly what moves. `kubectl kustomize DIR` builds
//! the same objects, in the same order, as `--as objects` prints.

use super::change::Change;
use crate::yaml::{str_at, to_stream};
use serde_norway::{Mapping, Value};

/// The first line of every kustomization.yaml sigcat writes; a directory whose
/// kustomization.yaml starts with it may be replaced by the next run.
pub const MARKER: &str = "# Written by `sigcat render --as kustomize`.";

/// The files of the directory: (relative path, content).
pub fn files(new_objects: &[Value], changes: &[Change]) -> Vec<(String, String)> {
    let mut names = Names::default();
    let mut files = Vec::new();
    let mut resources = Vec::new();
    let mut patches = Vec::new();
    for object in new_objects {
        let path = names.file("new", object);
        resources.push(Value::from(path.as_str()));
        files.push((path, to_stream(std::slice::from_ref(object))));
    }
    for change in changes {
        let path = names.file("current", &change.current);
        resources.push(Value::from(path.as_str()));
        files.push((path, to_stream(std::slice::from_ref(&change.current))));
        let patch_path = names.file("patches", &change.current);
        let mut entry = Mapping::new();
        entry.insert(Value::from("path"), Value::from(patch_path.as_str()));
        patches.push(Value::Mapping(entry));
        files.push((patch_path, to_stream(&[change.patch()])));
    }
    let mut k = Mapping::new();
    k.insert(
        Value::from("apiVersion"),
        Value::from("kustomize.config.k8s.io/v1beta1"),
    );
    k.insert(Value::from("kind"), Value::from("Kustomization"));
    // Resources in the order given (templates before what refers to them), not kustomize's
    // default order by kind.
    let mut order = Mapping::new();
    order.insert(Value::from("order"), Value::from("fifo"));
    k.insert(Value::from("sortOptions"), Value::Mapping(order));
    k.insert(Value::from("resources"), Value::Sequence(resources));
    if !patches.is_empty() {
        k.insert(Value::from("patches"), Value::Sequence(patches));
    }
    let text = format!(
        "{MARKER}\n# `kubectl kustomize .` shows what it applies; `kubectl apply -k .` applies it.\n{}",
        crate::yaml::write::to_yaml(&Value::Mapping(k))
    );
    files.insert(0, ("kustomization.yaml".into(), text));
    files
}

/// File names from kind and name, unique within the directory.
#[derive(Default)]
struct Names {
    taken: Vec<String>,
}

impl Names {
    fn file(&mut self, dir: &str, object: &Value) -> String {
        let kind = str_at(object, &["kind"]).unwrap_or("object").to_lowercase();
        let name = str_at(object, &["metadata", "name"]).unwrap_or("unnamed");
        let stem: String = format!("{kind}-{name}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut path = format!("{dir}/{stem}.yaml");
        let mut n = 2;
        while self.taken.contains(&path) {
            path = format!("{dir}/{stem}-{n}.yaml");
            n += 1;
        }
        self.taken.push(path.clone());
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_names_in_two_namespaces_get_two_files() {
        let a: Value =
            serde_norway::from_str("kind: Cluster\nmetadata: {name: c, namespace: a}\n").unwrap();
        let b: Value =
            serde_norway::from_str("kind: Cluster\nmetadata: {name: c, namespace: b}\n").unwrap();
        let files = files(&[], &[Change::of(&a), Change::of(&b)]);
        let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "kustomization.yaml",
                "current/cluster-c.yaml",
                "patches/cluster-c.yaml",
                "current/cluster-c-2.yaml",
                "patches/cluster-c-2.yaml"
            ]
        );
        assert!(files[0].1.starts_with(MARKER));
    }
}
