//! Small helpers over `serde_norway::Value`: read Kubernetes objects, walk and edit paths.

use crate::error::InputError;
use serde::Deserialize;
use serde_norway::{Mapping, Value};

/// Reads every object of a YAML stream: several documents, or `kind: List` with `items`
/// (what `kubectl get -o yaml` prints for more than one object).
pub fn read_objects(text: &str, source: &str) -> Result<Vec<Value>, InputError> {
    let mut out = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| {
            let line = e.location().map(|l| l.line() as u64);
            InputError::new(
                source,
                line,
                format!(
                    "invalid YAML in document {}: {e}; expected Kubernetes objects",
                    i + 1
                ),
            )
        })?;
        match value {
            Value::Null => {}
            Value::Mapping(_) if str_at(&value, &["kind"]).is_some_and(|k| k.ends_with("List")) => {
                if let Some(Value::Sequence(items)) = get(&value, &["items"]) {
                    out.extend(items.iter().cloned());
                }
            }
            Value::Mapping(_) => out.push(value),
            _ => {
                return Err(InputError::new(
                    source,
                    None,
                    format!("document {} is not a Kubernetes object (a mapping)", i + 1),
                ));
            }
        }
    }
    Ok(out)
}

pub fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.as_mapping()?.get(*key))
}

pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

/// Sets `path` to `new`, creating mappings on the way.
pub fn set(v: &mut Value, path: &[&str], new: Value) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut cur = v;
    for key in parents {
        if !cur
            .as_mapping()
            .is_some_and(|m| m.get(*key).is_some_and(Value::is_mapping))
        {
            mapping(cur).insert(Value::from(*key), Value::Mapping(Mapping::new()));
        }
        cur = mapping(cur).get_mut(*key).expect("just inserted");
    }
    mapping(cur).insert(Value::from(*last), new);
}

pub fn remove(v: &mut Value, path: &[&str]) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut cur = v;
    for key in parents {
        match cur.as_mapping_mut().and_then(|m| m.get_mut(*key)) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_mapping_mut() {
        m.remove(*last);
    }
}

fn mapping(v: &mut Value) -> &mut Mapping {
    if !v.is_mapping() {
        *v = Value::Mapping(Mapping::new());
    }
    v.as_mapping_mut().expect("is a mapping")
}

/// Drops what the API server sets, so the object can be applied again as new.
pub fn drop_server_fields(obj: &mut Value) {
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
        "selfLink",
    ] {
        remove(obj, &["metadata", field]);
    }
    remove(
        obj,
        &[
            "metadata",
            "annotations",
            "kubectl.kubernetes.io/last-applied-configuration",
        ],
    );
    if get(obj, &["metadata", "annotations"])
        .and_then(Value::as_mapping)
        .is_some_and(Mapping::is_empty)
    {
        remove(obj, &["metadata", "annotations"]);
    }
    remove(obj, &["status"]);
}

/// A multi-document YAML stream, quoted for YAML 1.1 readers (see [`super::emit`]).
pub fn to_stream(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| format!("---\n{}", super::emit::to_yaml(d)))
        .collect()
}

/// `kind/namespace/name` for messages.
pub fn describe(obj: &Value) -> String {
    let kind = str_at(obj, &["kind"]).unwrap_or("object");
    let name = str_at(obj, &["metadata", "name"]).unwrap_or("?");
    match str_at(obj, &["metadata", "namespace"]) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}
