//! The new `AzureMachineTemplate`: its `image:` section, its name, and the rest copied from the
//! user's current template (`--from`) or filled with documented defaults.

use super::Refusal;
use crate::record::Record;
use crate::yaml::{self, drop_server_fields, get, set, str_at};
use serde::Deserialize;
use serde_norway::{Mapping, Value};

/// The apiVersion of the AzureMachineTemplates sigcat writes.
pub const AMT_API_VERSION: &str = "infrastructure.cluster.x-k8s.io/v1beta1";
/// Their kind.
pub const AMT_KIND: &str = "AzureMachineTemplate";
/// OS disk size of a template made without `--from` (CAPZ requires `osDisk`).
pub const DEFAULT_DISK_SIZE_GB: u64 = 128;
const MAX_NAME: usize = 63;

/// Which of CAPZ's image kinds a template uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// `computeGallery` (CAPZ ≥ 1.4).
    ComputeGallery,
    /// `sharedGallery` (deprecated; older CAPZ).
    SharedGallery,
    /// `id`: a managed image.
    Id,
}

/// A marketplace Plan: what VMs of a third-party base image need.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Plan {
    /// The publisher (`kinvolk`).
    pub publisher: String,
    /// The offer.
    pub offer: String,
    /// The SKU.
    pub sku: String,
}

/// A `--plan` that is not `PUBLISHER:OFFER:SKU`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a plan; expected PUBLISHER:OFFER:SKU")]
pub struct NotAPlan(pub String);

impl std::str::FromStr for Plan {
    type Err = NotAPlan;
    fn from_str(s: &str) -> Result<Plan, NotAPlan> {
        match s.split(':').collect::<Vec<_>>().as_slice() {
            [p, o, k] if !p.is_empty() && !o.is_empty() && !k.is_empty() => Ok(Plan {
                publisher: p.to_string(),
                offer: o.to_string(),
                sku: k.to_string(),
            }),
            _ => Err(NotAPlan(s.to_string())),
        }
    }
}

/// One entry of a plans file: image definitions matching `definition` (`*` matches anything)
/// need this plan.
#[derive(Debug, Clone, Deserialize)]
pub struct PlanRule {
    /// Image definitions it applies to (`*` is a wildcard).
    pub definition: String,
    /// The plan for them.
    #[serde(flatten)]
    pub plan: Plan,
}

#[derive(Debug, Deserialize)]
struct PlansFile {
    plans: Vec<PlanRule>,
}

/// Reads a plans file (`plans: [{definition, publisher, offer, sku}]`).
pub fn read_plans(text: &str, source: &str) -> Result<Vec<PlanRule>, crate::InputError> {
    let file: PlansFile = serde_norway::from_str(text).map_err(|e| {
        crate::InputError::new(
            source,
            e.location().map(|l| l.line() as u64),
            format!(
                "{e}; expected `plans:` with `definition`, `publisher`, `offer` and `sku` entries"
            ),
        )
    })?;
    Ok(file.plans)
}

/// How templates are rendered: image kind, plans, VM size, names.
#[derive(Debug, Clone, Default)]
pub struct TemplateOptions {
    /// None: `computeGallery` when the build published a gallery version, else `id`.
    pub image_kind: Option<ImageKind>,
    /// A Plan for every image (`--plan`).
    pub plan: Option<Plan>,
    /// Plans by image definition (`--plans-file`).
    pub plan_rules: Vec<PlanRule>,
    /// Required without `--from`.
    pub vm_size: Option<String>,
    /// Base of the new name; default: the `--from` template's name, else the image definition.
    pub base_name: Option<String>,
    /// The namespace of a template made from scratch.
    pub namespace: Option<String>,
}

/// A DNS-1123 name of at most 63 characters from a base and the image version, the same for
/// the same input. Too long: cut, and a hash of the whole keeps names distinct.
pub fn template_name(base: &str, version: &str) -> String {
    let full = sanitize(&format!("{base}-{version}"));
    if full.len() <= MAX_NAME {
        return full;
    }
    let hash = format!("{:08x}", crate::stable_hash(&full) as u32);
    let keep = MAX_NAME - hash.len() - 1;
    let head = full[..keep].trim_end_matches(['-', '.']);
    format!("{head}-{hash}")
}

fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "image".to_string()
    } else {
        trimmed.to_string()
    }
}

fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern.eq_ignore_ascii_case(text);
    }
    let (text, pattern_parts) = (
        text.to_ascii_lowercase(),
        parts
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect::<Vec<_>>(),
    );
    let mut rest = text.as_str();
    let last = pattern_parts.len() - 1;
    for (i, part) in pattern_parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part.as_str()) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == last {
            return rest.ends_with(part.as_str());
        } else {
            match rest.find(part.as_str()) {
                Some(p) => rest = &rest[p + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Builds from third-party bases (Flatcar by Kinvolk) need a Plan or VM creation fails.
fn looks_third_party(record: &Record) -> bool {
    let os_name = record
        .custom_data
        .get("os_name")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let definition = record
        .gallery_image
        .as_ref()
        .map(|g| g.image_definition.as_str())
        .unwrap_or("");
    [record.build.as_str(), definition, os_name]
        .iter()
        .any(|s| s.to_ascii_lowercase().contains("flatcar"))
}

fn choose_plan(record: &Record, options: &TemplateOptions) -> Result<Option<Plan>, Refusal> {
    if let Some(plan) = &options.plan {
        return Ok(Some(plan.clone()));
    }
    if let Some(g) = &record.gallery_image
        && let Some(rule) = options
            .plan_rules
            .iter()
            .find(|r| glob_match(&r.definition, &g.image_definition))
    {
        return Ok(Some(rule.plan.clone()));
    }
    if looks_third_party(record) {
        return Err(Refusal::NeedsPlan {
            build: record.build.clone(),
        });
    }
    Ok(None)
}

/// The `image:` section for a record.
pub fn image_section(record: &Record, options: &TemplateOptions) -> Result<Value, Refusal> {
    let kind = match (
        options.image_kind,
        &record.gallery_image,
        &record.managed_image,
    ) {
        (Some(k), _, _) => k,
        (None, Some(_), _) => ImageKind::ComputeGallery,
        (None, None, Some(_)) => ImageKind::Id,
        (None, None, None) => {
            return Err(Refusal::NoBootableImage {
                build: record.build.clone(),
            });
        }
    };
    let plan = choose_plan(record, options)?;
    let mut image = Mapping::new();
    let s = |v: &str| Value::String(v.to_string());
    match kind {
        ImageKind::Id => {
            let m = record
                .managed_image
                .as_ref()
                .ok_or_else(|| Refusal::NoManagedImage {
                    build: record.build.clone(),
                })?;
            if plan.is_some() {
                return Err(Refusal::PlanWithId);
            }
            image.insert(s("id"), s(&m.id));
        }
        ImageKind::ComputeGallery | ImageKind::SharedGallery => {
            let g = record
                .gallery_image
                .as_ref()
                .ok_or_else(|| Refusal::NoGalleryImage {
                    build: record.build.clone(),
                })?;
            let mut gallery = Mapping::new();
            // A private gallery: subscription and resource group always together.
            gallery.insert(s("subscriptionID"), s(&g.subscription_id));
            gallery.insert(s("resourceGroup"), s(&g.resource_group));
            gallery.insert(s("gallery"), s(&g.gallery));
            gallery.insert(s("name"), s(&g.image_definition));
            gallery.insert(s("version"), s(&g.version));
            let key = if kind == ImageKind::ComputeGallery {
                "computeGallery"
            } else {
                "sharedGallery"
            };
            if let Some(p) = plan {
                if kind == ImageKind::ComputeGallery {
                    let mut pm = Mapping::new();
                    pm.insert(s("publisher"), s(&p.publisher));
                    pm.insert(s("offer"), s(&p.offer));
                    pm.insert(s("sku"), s(&p.sku));
                    gallery.insert(s("plan"), Value::Mapping(pm));
                } else {
                    gallery.insert(s("publisher"), s(&p.publisher));
                    gallery.insert(s("offer"), s(&p.offer));
                    gallery.insert(s("sku"), s(&p.sku));
                }
            }
            image.insert(s(key), Value::Mapping(gallery));
        }
    }
    Ok(Value::Mapping(image))
}

/// The new template: a copy of `from` with only `image:` and the name changed (server fields
/// dropped), or a minimal valid template.
pub fn new_template(
    record: &Record,
    from: Option<&Value>,
    options: &TemplateOptions,
) -> Result<Value, Refusal> {
    let image = image_section(record, options)?;
    let version = record
        .gallery_image
        .as_ref()
        .map(|g| g.version.clone())
        .or_else(|| record.kubernetes_version.clone())
        .unwrap_or_else(|| {
            record
                .managed_image
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default()
        });
    let mut template = match from {
        Some(current) => {
            if str_at(current, &["kind"]) != Some(AMT_KIND) {
                return Err(Refusal::NotATemplate {
                    found: yaml::describe(current),
                });
            }
            // A Linux image in a Windows machine (or the reverse) boots nothing that joins.
            if let (Some(theirs), Some(ours)) = (
                str_at(current, &["spec", "template", "spec", "osDisk", "osType"]),
                record.os_type.as_deref(),
            ) && !theirs.eq_ignore_ascii_case(ours)
            {
                return Err(Refusal::OsTypeMismatch(Box::new(
                    crate::error::OsMismatch {
                        build: record.build.clone(),
                        record: ours.to_string(),
                        template_name: str_at(current, &["metadata", "name"])
                            .unwrap_or("(unnamed)")
                            .to_string(),
                        template: theirs.to_string(),
                    },
                )));
            }
            let mut t = current.clone();
            drop_server_fields(&mut t);
            t
        }
        None => {
            let vm_size = options.vm_size.as_deref().ok_or(Refusal::VmSizeMissing)?;
            let mut t = Value::Mapping(Mapping::new());
            set(&mut t, &["apiVersion"], Value::from(AMT_API_VERSION));
            set(&mut t, &["kind"], Value::from(AMT_KIND));
            set(&mut t, &["metadata"], Value::Mapping(Mapping::new()));
            set(
                &mut t,
                &["spec", "template", "spec", "vmSize"],
                Value::from(vm_size),
            );
            set(
                &mut t,
                &["spec", "template", "spec", "osDisk", "osType"],
                Value::from(super::image_names::os_of_record(record)),
            );
            set(
                &mut t,
                &["spec", "template", "spec", "osDisk", "diskSizeGB"],
                Value::from(DEFAULT_DISK_SIZE_GB),
            );
            t
        }
    };
    let base = options
        .base_name
        .clone()
        .or_else(|| {
            from.and_then(|f| str_at(f, &["metadata", "name"]))
                .map(str::to_string)
        })
        .or_else(|| {
            record
                .gallery_image
                .as_ref()
                .map(|g| g.image_definition.clone())
        })
        .unwrap_or_else(|| record.build.clone());
    set(
        &mut template,
        &["metadata", "name"],
        Value::from(template_name(&base, &version)),
    );
    if let Some(ns) = &options.namespace {
        set(
            &mut template,
            &["metadata", "namespace"],
            Value::from(ns.as_str()),
        );
    }
    set(&mut template, &["spec", "template", "spec", "image"], image);
    if get(&template, &["spec", "template", "spec", "vmSize"]).is_none() {
        return Err(Refusal::TemplateWithoutVmSize);
    }
    Ok(template)
}

/// Where a promoted image is, as a template must point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GalleryTarget {
    /// The gallery as CAPZ names it: a community gallery's public name, else its resource name.
    pub gallery: String,
    /// The image definition.
    pub image_definition: String,
    /// The gallery image version.
    pub version: String,
    /// A private gallery's subscription and resource group (both or neither: without them
    /// CAPZ reads a community gallery).
    pub private: Option<(String, String)>,
}

/// A copy of `template` (an AzureMachineTemplate) that boots from `target` instead: its
/// `image:` section a `computeGallery` there (a Plan the old section carried is kept), and a
/// new name (a template's spec is immutable, so another image needs another template).
pub fn relocated(
    template: &Value,
    target: &GalleryTarget,
    name_base: &str,
) -> Result<Value, Refusal> {
    if str_at(template, &["kind"]) != Some(AMT_KIND) {
        return Err(Refusal::NotATemplate {
            found: yaml::describe(template),
        });
    }
    let s = |v: &str| Value::String(v.to_string());
    let old = get(template, &["spec", "template", "spec", "image"]);
    let plan = old.and_then(|image| {
        if let Some(p) = get(image, &["computeGallery", "plan"]) {
            return Some(p.clone());
        }
        let shared = get(image, &["sharedGallery"])?;
        let mut pm = Mapping::new();
        for k in ["publisher", "offer", "sku"] {
            pm.insert(s(k), get(shared, &[k])?.clone());
        }
        Some(Value::Mapping(pm))
    });
    let mut gallery = Mapping::new();
    if let Some((subscription, group)) = &target.private {
        gallery.insert(s("subscriptionID"), s(subscription));
        gallery.insert(s("resourceGroup"), s(group));
    }
    gallery.insert(s("gallery"), s(&target.gallery));
    gallery.insert(s("name"), s(&target.image_definition));
    gallery.insert(s("version"), s(&target.version));
    if let Some(plan) = plan {
        gallery.insert(s("plan"), plan);
    }
    let mut image = Mapping::new();
    image.insert(s("computeGallery"), Value::Mapping(gallery));
    let mut t = template.clone();
    drop_server_fields(&mut t);
    set(
        &mut t,
        &["spec", "template", "spec", "image"],
        Value::Mapping(image),
    );
    set(
        &mut t,
        &["metadata", "name"],
        Value::from(template_name(name_base, &target.version)),
    );
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels_of_at_most_63() {
        assert_eq!(
            template_name("capi-ubuntu-2404", "0.3.1721037000"),
            "capi-ubuntu-2404-0-3-1721037000"
        );
        assert_eq!(
            template_name("My_Cluster-md-0", "1.30.3"),
            "my-cluster-md-0-1-30-3"
        );
        let long = template_name(&"a".repeat(80), "1.30.3");
        assert_eq!(long.len(), 63);
        assert_eq!(
            long,
            template_name(&"a".repeat(80), "1.30.3"),
            "deterministic"
        );
        assert_ne!(
            long,
            template_name(&"a".repeat(81), "1.30.3"),
            "distinct inputs stay distinct"
        );
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn plan_globs() {
        assert!(glob_match("capi-flatcar-*", "capi-flatcar-stable-gen2"));
        assert!(glob_match("*-gen2", "capi-flatcar-stable-gen2"));
        assert!(!glob_match("capi-flatcar-*", "capi-ubuntu-2404"));
        assert!(glob_match("capi-ubuntu-2404", "CAPI-ubuntu-2404"));
        assert!("kinvolk:flatcar:stable".parse::<Plan>().is_ok());
        assert!("kinvolk:flatcar".parse::<Plan>().is_err());
    }
}
