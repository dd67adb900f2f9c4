//! Records → CAPZ manifests: a new `AzureMachineTemplate` whose `image:` section points at the
//! record's image, and the changes that move a control plane and its MachineDeployments to it.
//!
//! Everything is built as YAML values and written by a serializer, never by string templates,
//! so values YAML would misread (`1.30`, `on`, `0123`) stay strings.

mod change;
pub mod image_names;
pub mod kustomize;
pub mod slots;
pub mod template;
mod topology;
mod upgrade;

pub use change::Change;
pub use slots::{PlanLine, Selector, copy_templates};
pub use template::{
    GalleryTarget, ImageKind, Plan, PlanRule, TemplateOptions, new_template, relocated,
    template_name,
};
pub use upgrade::{Request as UpgradeRequest, UpgradeOutput, plan_upgrade};

pub use crate::error::{NoRecordFits, OsMismatch, Refusal};

/// Refuses manifests that would carry a credential (a SAS token, an account key, a connection
/// string) copied from the input: sigcat never writes one, and redacting it would break the
/// object. The error names the object and the field, never the value.
pub fn refuse_credentials<'a>(
    objects: impl IntoIterator<Item = &'a serde_norway::Value>,
) -> Result<(), Refusal> {
    fn walk(value: &serde_norway::Value, path: &mut Vec<String>) -> Option<String> {
        use serde_norway::Value;
        // A service principal's secret by its usual field names: CAPZ's azure.json
        // (`aadClientSecret`), as a field or inside a file's content.
        let client_secret = |s: &str| {
            let lower = s.to_ascii_lowercase();
            lower.match_indices("clientsecret\"").any(|(at, m)| {
                let rest = lower[at + m.len()..].trim_start();
                rest.strip_prefix(':')
                    .map(str::trim_start)
                    .and_then(|r| r.strip_prefix('"'))
                    .is_some_and(|r| !r.starts_with('"'))
            })
        };
        let named_secret = path.last().is_some_and(|k| {
            let k = k.to_ascii_lowercase();
            k == "clientsecret" || k == "aadclientsecret"
        });
        match value {
            Value::String(s) if !s.is_empty() && named_secret => Some(path.join(".")),
            Value::String(s) if crate::redact::has_secret(s) || client_secret(s) => {
                Some(path.join("."))
            }
            Value::Sequence(items) => items.iter().enumerate().find_map(|(i, v)| {
                path.push(i.to_string());
                let found = walk(v, path);
                path.pop();
                found
            }),
            Value::Mapping(m) => m.iter().find_map(|(k, v)| {
                let key = k.as_str().map(str::to_string).unwrap_or_default();
                if crate::redact::has_secret(&key) {
                    return Some(format!("{} (a key)", path.join(".")));
                }
                path.push(key);
                let found = walk(v, path);
                path.pop();
                found
            }),
            Value::Tagged(t) => walk(&t.value, path),
            _ => None,
        }
    }
    for object in objects {
        if let Some(field) = walk(object, &mut Vec::new()) {
            return Err(Refusal::Upgrade(format!(
                "{} holds a credential (a SAS token, account key or connection string) at {field}, copied from the input; sigcat never writes credentials into manifests: keep it in a Secret and refer to it",
                crate::yaml::describe(object)
            )));
        }
    }
    Ok(())
}
