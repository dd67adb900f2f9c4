//! A change to an object that already exists in the cluster: the object as it is (what the
//! server set removed), as it should be, and the JSON merge patch (RFC 7386) between the two,
//! which is what `--as kustomize` writes as a patch.

use crate::yaml::{describe, drop_server_fields, get, set};
use serde_norway::{Mapping, Value};

/// An existing object as it is and as it will be.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The object as it is now (server-set fields dropped).
    pub current: Value,
    /// The object as it will be.
    pub changed: Value,
}

impl Change {
    /// Starts a change from the object as read (`kubectl get -o yaml`).
    pub(crate) fn of(object: &Value) -> Change {
        let mut current = object.clone();
        drop_server_fields(&mut current);
        Change {
            changed: current.clone(),
            current,
        }
    }

    /// A patch document kustomize (and `kubectl patch --type merge`) applies to the object:
    /// `apiVersion`, `kind`, `metadata.name` and `metadata.namespace` to find it, then only
    /// the fields that differ. Lists are replaced whole, as a merge patch does.
    pub(crate) fn patch(&self) -> Value {
        let mut doc = merge_patch(&self.current, &self.changed).unwrap_or(Value::Null);
        if !doc.is_mapping() {
            doc = Value::Mapping(Mapping::new());
        }
        for key in [
            &["metadata", "namespace"][..],
            &["metadata", "name"],
            &["kind"],
            &["apiVersion"],
        ] {
            if let Some(v) = get(&self.current, key) {
                set(&mut doc, key, v.clone());
            }
        }
        // Identity fields first, as people write them.
        let mut ordered = Mapping::new();
        let map = doc.as_mapping().expect("a mapping");
        for key in ["apiVersion", "kind", "metadata"] {
            if let Some(v) = map.get(key) {
                ordered.insert(Value::from(key), v.clone());
            }
        }
        for (k, v) in map {
            if !ordered.contains_key(k) {
                ordered.insert(k.clone(), v.clone());
            }
        }
        Value::Mapping(ordered)
    }

    pub(crate) fn describe(&self) -> String {
        describe(&self.current)
    }
}

/// The RFC 7386 merge patch that turns `from` into `to`; `None` when they are equal. A key
/// that disappears becomes `null`; anything but two mappings is replaced whole.
pub(crate) fn merge_patch(from: &Value, to: &Value) -> Option<Value> {
    match (from, to) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            let mut patch = Mapping::new();
            for (k, new) in b {
                match a.get(k) {
                    Some(old) => {
                        if let Some(p) = merge_patch(old, new) {
                            patch.insert(k.clone(), p);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), new.clone());
                    }
                }
            }
            for k in a.keys() {
                if !b.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Mapping(patch))
        }
        _ if from == to => None,
        _ => Some(to.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7386's MergePatch, written from the RFC's pseudo-code: the independent check.
    fn apply(target: &Value, patch: &Value) -> Value {
        let Value::Mapping(p) = patch else {
            return patch.clone();
        };
        let mut out = match target {
            Value::Mapping(m) => m.clone(),
            _ => Mapping::new(),
        };
        for (k, v) in p {
            if v.is_null() {
                out.remove(k);
            } else {
                let merged = apply(out.get(k).unwrap_or(&Value::Null), v);
                out.insert(k.clone(), merged);
            }
        }
        Value::Mapping(out)
    }

    fn yaml(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }

    #[test]
    fn applying_the_patch_gives_the_changed_object() {
        let cases = [
            (
                "a: 1\nb: {c: 2, d: [1, 2]}\n",
                "a: 1\nb: {c: 3, d: [1, 2, 3]}\n",
            ),
            ("a: 1\nb: {c: 2}\n", "b: {c: 2, e: {f: x}}\n"),
            ("a: [1]\n", "a: {x: 1}\n"),
            ("a: {x: 1}\n", "a: {x: 1}\n"),
        ];
        for (from, to) in cases {
            let (from, to) = (yaml(from), yaml(to));
            let patch = merge_patch(&from, &to).unwrap_or(Value::Mapping(Mapping::new()));
            assert_eq!(apply(&from, &patch), to, "{patch:?}");
        }
    }

    #[test]
    fn a_patch_names_its_object_and_holds_only_what_changed() {
        let current = yaml(
            "apiVersion: cluster.x-k8s.io/v1beta1\nkind: Cluster\nmetadata: {name: c, namespace: ns, labels: {a: b}}\nspec:\n  topology: {version: v1.29.7, class: x}\n",
        );
        let mut change = Change::of(&current);
        set(
            &mut change.changed,
            &["spec", "topology", "version"],
            Value::from("v1.30.3"),
        );
        assert_eq!(
            change.patch(),
            yaml(
                "apiVersion: cluster.x-k8s.io/v1beta1\nkind: Cluster\nmetadata: {name: c, namespace: ns}\nspec: {topology: {version: v1.30.3}}\n"
            )
        );
    }
}
