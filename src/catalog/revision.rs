//! When the same image is published again: what the catalog already knows, what the new record
//! adds, and whether the two disagree.
//!
//! The rule: a field that was unknown may be filled in later (a new revision of the record),
//! a field that was known may never change (a conflict), and losing information is never an
//! update. "Unknown" is `null`, an empty list or an empty object; objects are compared field by
//! field, so a manifest that adds `custom_data` keys is an addition. Where a record was read
//! (`provenance`) and where its Kubernetes version came from are not part of what it says.

use serde_json::{Map, Value};

/// What is not part of an image's content.
const NOT_CONTENT: [&str; 2] = ["provenance", "kubernetes_version_source"];

/// The outcome of comparing a stored record with an offered one.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    /// The offered record says nothing the stored one does not.
    Known,
    /// The union of both, and the fields the offered record adds (dotted paths).
    Adds {
        /// The stored record with what the offered one adds.
        merged: Value,
        /// The fields added (dotted paths).
        added: Vec<String>,
    },
    /// A field both know, with different values.
    Disagrees {
        /// The field (a dotted path).
        field: String,
        /// The stored value.
        stored: String,
        /// The offered value.
        offered: String,
    },
}

/// Compares two records' JSON. Both must be objects (records always are).
pub fn compare(stored: &Value, offered: &Value) -> Comparison {
    let mut merged = stored.clone();
    let mut added = Vec::new();
    let (Value::Object(target), Value::Object(offered_map)) = (&mut merged, offered) else {
        return Comparison::Disagrees {
            field: String::new(),
            stored: short(stored),
            offered: short(offered),
        };
    };
    let content: Map<String, Value> = offered_map
        .iter()
        .filter(|(k, _)| !NOT_CONTENT.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Err((field, s, o)) = merge_object(target, &content, "", &mut added) {
        return Comparison::Disagrees {
            field,
            stored: s,
            offered: o,
        };
    }
    if added.is_empty() {
        return Comparison::Known;
    }
    // The new revision says where it was read, and where its Kubernetes version came from
    // when that is one of the fields it adds.
    for key in NOT_CONTENT {
        let takes_it = key == "provenance" || added.iter().any(|f| f == "kubernetes_version");
        if takes_it && let Some(v) = offered_map.get(key) {
            target.insert(key.to_string(), v.clone());
        }
    }
    Comparison::Adds { merged, added }
}

fn is_unknown(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn short(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 120 {
        format!("{}...", text.chars().take(120).collect::<String>())
    } else {
        text
    }
}

type Disagreement = (String, String, String);

fn merge_object(
    target: &mut Map<String, Value>,
    offered: &Map<String, Value>,
    path: &str,
    added: &mut Vec<String>,
) -> Result<(), Disagreement> {
    for (key, new) in offered {
        let field = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match target.get_mut(key) {
            None => {
                if !is_unknown(new) {
                    target.insert(key.clone(), new.clone());
                    added.push(field);
                }
            }
            Some(old) => merge_value(old, new, &field, added)?,
        }
    }
    Ok(())
}

fn merge_value(
    old: &mut Value,
    new: &Value,
    field: &str,
    added: &mut Vec<String>,
) -> Result<(), Disagreement> {
    if is_unknown(new) || old == new {
        return Ok(());
    }
    if is_unknown(old) {
        *old = new.clone();
        added.push(field.to_string());
        return Ok(());
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => merge_object(o, n, field, added),
        (old, new) => Err((field.to_string(), short(old), short(new))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_content_read_elsewhere_is_known() {
        let a = json!({"id": "x", "k": null, "provenance": {"source": "a.log"}});
        let b = json!({"id": "x", "k": null, "provenance": {"source": "b.log"}});
        assert_eq!(compare(&a, &b), Comparison::Known);
    }

    #[test]
    fn unknown_fields_may_be_filled_in() {
        let log_only = json!({"id": "x", "kubernetes_version": null, "kubernetes_version_source": null,
            "custom_data": {}, "regions": [], "provenance": {"source": "a.log", "manifest": null}});
        let with_manifest = json!({"id": "x", "kubernetes_version": "1.30.3", "kubernetes_version_source": "manifest",
            "custom_data": {"os_name": "ubuntu"}, "regions": [], "provenance": {"source": "a.log", "manifest": "m.json"}});
        let Comparison::Adds { merged, added } = compare(&log_only, &with_manifest) else {
            panic!()
        };
        assert_eq!(added, ["custom_data", "kubernetes_version"]);
        assert_eq!(merged["kubernetes_version"], "1.30.3");
        assert_eq!(merged["kubernetes_version_source"], "manifest");
        assert_eq!(merged["provenance"]["manifest"], "m.json");
        // The other way round loses nothing, so it is no update.
        assert_eq!(compare(&with_manifest, &log_only), Comparison::Known);
    }

    #[test]
    fn objects_are_merged_key_by_key() {
        let a = json!({"custom_data": {"a": 1}});
        let b = json!({"custom_data": {"a": 1, "b": 2}});
        let Comparison::Adds { merged, added } = compare(&a, &b) else {
            panic!()
        };
        assert_eq!(added, ["custom_data.b"]);
        assert_eq!(merged["custom_data"], json!({"a": 1, "b": 2}));
        // Each side knowing something the other does not: the union.
        let c = json!({"custom_data": {"c": 3}, "x": 1});
        let Comparison::Adds { merged, .. } = compare(&b, &c) else {
            panic!()
        };
        assert_eq!(
            merged,
            json!({"custom_data": {"a": 1, "b": 2, "c": 3}, "x": 1})
        );
    }

    #[test]
    fn a_known_field_never_changes() {
        let a = json!({"kubernetes_version": "1.30.3", "regions": ["eastus"]});
        let b = json!({"kubernetes_version": "1.30.9"});
        assert_eq!(
            compare(&a, &b),
            Comparison::Disagrees {
                field: "kubernetes_version".into(),
                stored: "1.30.3".into(),
                offered: "1.30.9".into()
            }
        );
        let c = json!({"regions": ["westus"]});
        assert!(
            matches!(compare(&a, &c), Comparison::Disagrees { field, .. } if field == "regions")
        );
        let d = json!({"nested": {"deep": 1}});
        let e = json!({"nested": {"deep": 2}});
        assert!(
            matches!(compare(&d, &e), Comparison::Disagrees { field, .. } if field == "nested.deep")
        );
    }
}
