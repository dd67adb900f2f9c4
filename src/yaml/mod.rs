//! Kubernetes objects as YAML values: read them as kubectl does ([`read`]), walk and edit
//! paths, and write them so that kubectl reads back exactly what was meant ([`write`]).

pub(crate) mod read;
pub(crate) mod resolve;
pub(crate) mod write;

use crate::error::InputError;
use serde_norway::{Mapping, Value};

/// Reads every object of a YAML stream as kubectl would (see [`read`]): several documents,
/// or `kind: List` with `items` (what `kubectl get -o yaml` prints for more than one object).
pub fn read_objects(text: &str, source: &str) -> Result<Vec<Value>, InputError> {
    let mut out = Vec::new();
    for (value, line) in read::read_documents(text, source)? {
        match value {
            Value::Null => {}
            Value::Mapping(mut m)
                if m.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                if let Some(Value::Sequence(items)) = m.remove("items") {
                    out.extend(items);
                }
            }
            Value::Mapping(_) => out.push(value),
            _ => {
                return Err(InputError::new(
                    source,
                    Some(line as u64),
                    "this document is not a Kubernetes object (a mapping); expected `kubectl get ... -o yaml` output",
                ));
            }
        }
    }
    Ok(out)
}

/// The value at `path`; a segment that is a number indexes a sequence.
pub fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| match v {
        Value::Sequence(items) => items.get(key.parse::<usize>().ok()?),
        Value::Mapping(m) => m.get(*key),
        _ => None,
    })
}

/// The string at `path`, if there is one.
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

/// Removes the value at `path`, if there is one.
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

/// A multi-document YAML stream, quoted for YAML 1.1 readers (see [`write`]).
pub fn to_stream(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| format!("---\n{}", write::to_yaml(d)))
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

/// Like [`get`], mutable; a segment that is a number indexes a sequence.
pub fn get_mut<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, key| match v {
        Value::Sequence(items) => items.get_mut(key.parse::<usize>().ok()?),
        Value::Mapping(m) => m.get_mut(*key),
        _ => None,
    })
}
