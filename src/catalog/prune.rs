//! Retention: which image locations can be deleted to save cost, and the `az` commands that
//! delete them. A plan only: sigcat never deletes an Azure resource by itself, and records a
//! deletion (a clean-up event) only once `az` confirmed it.
//!
//! Per OS, the newest `keep_minors` Kubernetes minors are kept, and in each the newest
//! `keep_patches` patch versions; of each kept patch, the image `latest` serves. Never
//! deleted: a location an "in use" input references (what clusters run), an image whose
//! Kubernetes version is not known. Everything else with a location still there is in the
//! plan, each location a row with the reason.

use super::index::{BUILD_STAGE, IndexEntry, minor_of, newer};
use crate::record::kubernetes::KubeVersion;
use crate::yaml::{self, get};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// How much to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Kubernetes minors kept per OS (at least 1).
    pub keep_minors: usize,
    /// Patch versions kept per kept minor (at least 1).
    pub keep_patches: usize,
}

/// What clusters run: the images their AzureMachineTemplates (or AzureMachines, machine pools,
/// any object) reference, and plain resource ids.
#[derive(Debug, Clone, Default)]
pub struct InUse {
    ids: HashSet<String>,
    galleries: HashSet<(String, String, String)>,
}

/// One location the plan deletes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The catalog id of its image.
    pub id: String,
    /// The image's Kubernetes version.
    pub kubernetes_version: Option<String>,
    /// Its OS (distro).
    pub os: Option<String>,
    /// The location's stage (`staging`: where it was built).
    pub stage: String,
    /// The resource to delete.
    pub resource_id: String,
    /// `gallery image version` or `managed image`.
    pub kind: &'static str,
    /// Why it may go.
    pub reason: String,
}

/// An image the plan keeps, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// The catalog id.
    pub id: String,
    /// Its Kubernetes version.
    pub kubernetes_version: Option<String>,
    /// Its OS.
    pub os: Option<String>,
    /// Why it stays.
    pub reason: String,
}

/// The whole plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Locations that can be deleted.
    pub delete: Vec<Row>,
    /// Images kept, with a location still there.
    pub keep: Vec<Kept>,
}

impl InUse {
    /// Reads what clusters run from `text`: Kubernetes objects (YAML or JSON, `kubectl get
    /// azuremachinetemplates -A -o yaml` and the like, Lists included), every `image:` mapping
    /// in them with `computeGallery`, `sharedGallery` or `id`; or lines of resource ids.
    pub fn read(&mut self, text: &str, source: &str) -> Result<(), crate::InputError> {
        let lines: Vec<(usize, &str)> = text
            .lines()
            .map(str::trim)
            .enumerate()
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .collect();
        // A list of ids (it starts with one): every line must be one.
        if lines
            .first()
            .is_some_and(|(_, l)| l.starts_with("/subscriptions/"))
        {
            // A line that protects nothing must not pass silently: what it meant to keep
            // would be in the plan.
            for (n, line) in lines {
                let id = normalize_id(line);
                if crate::record::GalleryImageVersionId::parse(&id).is_err()
                    && crate::record::ManagedImageId::parse(&id).is_err()
                {
                    return Err(crate::InputError::new(
                        source,
                        Some(n as u64 + 1),
                        format!("`{line}` is not a gallery image version id or a managed image id"),
                    ));
                }
                self.ids.insert(id);
            }
            return Ok(());
        }
        let docs = yaml::read_objects(text, source)?;
        let before = self.ids.len() + self.galleries.len();
        for doc in &docs {
            self.walk(doc);
        }
        if self.ids.len() + self.galleries.len() == before {
            return Err(crate::InputError::new(
                source,
                None,
                "no image reference in it: expected Kubernetes objects with `image:` sections (computeGallery, sharedGallery or id), or lines of resource ids",
            ));
        }
        Ok(())
    }

    fn walk(&mut self, v: &serde_norway::Value) {
        match v {
            serde_norway::Value::Mapping(m) => {
                for (k, child) in m {
                    if k.as_str() == Some("image") {
                        self.image(child);
                    }
                    self.walk(child);
                }
            }
            serde_norway::Value::Sequence(s) => s.iter().for_each(|c| self.walk(c)),
            _ => {}
        }
    }

    fn image(&mut self, image: &serde_norway::Value) {
        let text = |v: &serde_norway::Value, k: &str| {
            get(v, &[k])
                .and_then(|x| x.as_str())
                .map(str::to_ascii_lowercase)
        };
        if let Some(id) = text(image, "id") {
            self.ids.insert(normalize_id(&id));
        }
        for kind in ["computeGallery", "sharedGallery"] {
            if let Some(g) = get(image, &[kind])
                && let (Some(gallery), Some(name), Some(version)) =
                    (text(g, "gallery"), text(g, "name"), text(g, "version"))
            {
                self.galleries.insert((gallery, name, version));
            }
        }
    }

    /// Whether the location `resource_id` of `e` is referenced.
    pub(crate) fn uses(&self, e: &IndexEntry, resource_id: &str) -> bool {
        let lower = normalize_id(resource_id);
        if self.ids.contains(&lower) {
            return true;
        }
        let Ok(g) = crate::record::GalleryImageVersionId::parse(resource_id) else {
            return false;
        };
        let public = e
            .live_promotions()
            .find(|p| {
                p.location
                    .gallery_image_version_id
                    .eq_ignore_ascii_case(resource_id)
            })
            .and_then(|p| p.location.public_name.clone());
        let (name, version) = (
            g.image_definition.to_ascii_lowercase(),
            g.version.to_ascii_lowercase(),
        );
        [Some(g.gallery), public]
            .into_iter()
            .flatten()
            .any(|gallery| {
                self.galleries.contains(&(
                    gallery.to_ascii_lowercase(),
                    name.clone(),
                    version.clone(),
                ))
            })
    }
}

/// A resource id as Azure compares them: case-insensitive, a trailing `/` ignored.
fn normalize_id(id: &str) -> String {
    id.trim().trim_end_matches('/').to_ascii_lowercase()
}

fn kube(e: &IndexEntry) -> Option<KubeVersion> {
    e.kubernetes_version.as_deref().and_then(KubeVersion::parse)
}

fn os_of(e: &IndexEntry) -> String {
    e.distro.clone().unwrap_or_else(|| "unknown".into())
}

/// The plan for `entries` (every image of the catalog) at `now`.
pub fn plan(entries: &[IndexEntry], policy: Policy, in_use: &InUse, now: &str) -> Plan {
    let live: Vec<&IndexEntry> = entries
        .iter()
        .filter(|e| !e.live_locations().is_empty())
        .collect();
    // Per OS and minor: the patches with an image in service, newest first; per OS the
    // minors, newest first.
    let mut patches: BTreeMap<(String, String), Vec<KubeVersion>> = BTreeMap::new();
    for e in &live {
        if e.in_service(None, now).is_none() {
            continue;
        }
        if let (Some(v), Some(minor)) =
            (kube(e), e.kubernetes_version.as_deref().and_then(minor_of))
        {
            let list = patches.entry((os_of(e), minor)).or_default();
            if !list.contains(&v) {
                list.push(v);
            }
        }
    }
    let mut minors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (os, minor) in patches.keys() {
        minors.entry(os.clone()).or_default().push(minor.clone());
    }
    let kept_minors: HashSet<(String, String)> = minors
        .iter_mut()
        .flat_map(|(os, list)| {
            list.sort_by(|a, b| {
                KubeVersion::parse(&format!("{b}.0")).cmp(&KubeVersion::parse(&format!("{a}.0")))
            });
            list.iter()
                .take(policy.keep_minors)
                .map(|m| (os.clone(), m.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let kept_patches: HashSet<(String, String)> = patches
        .iter_mut()
        .filter(|(key, _)| kept_minors.contains(*key))
        .flat_map(|((os, _), list)| {
            list.sort_by(|a, b| b.cmp(a));
            list.iter()
                .take(policy.keep_patches)
                .map(|v| (os.clone(), v.bare()))
                .collect::<Vec<_>>()
        })
        .collect();
    // Of each kept patch, the image `latest` serves.
    let mut newest: BTreeMap<(String, String), &IndexEntry> = BTreeMap::new();
    for e in &live {
        if e.in_service(None, now).is_none() {
            continue;
        }
        let Some(v) = kube(e).map(|v| v.bare()) else {
            continue;
        };
        let key = (os_of(e), v);
        if !kept_patches.contains(&key) {
            continue;
        }
        match newest.get(&key) {
            Some(current) if newer(e, current).is_le() => {}
            _ => {
                newest.insert(key, e);
            }
        }
    }
    let kept_ids: HashSet<&str> = newest.values().map(|e| e.id.as_str()).collect();
    let mut out = Plan::default();
    for e in &live {
        let keep = |reason: String| Kept {
            id: e.id.clone(),
            kubernetes_version: e.kubernetes_version.clone(),
            os: e.distro.clone(),
            reason,
        };
        let Some(v) = kube(e) else {
            out.keep
                .push(keep("its Kubernetes version is not known".into()));
            continue;
        };
        let os = os_of(e);
        if kept_ids.contains(e.id.as_str()) {
            out.keep.push(keep(format!(
                "the newest image of {} on {os} in service",
                v.bare()
            )));
            continue;
        }
        let minor = format!("{}.{}", v.major, v.minor);
        let reason = if e.is_yanked() {
            format!(
                "yanked: {}",
                e.yank
                    .as_ref()
                    .and_then(|y| y.reason.clone())
                    .unwrap_or_else(|| "no reason given".into())
            )
        } else if let Some(eol) = e
            .served(None)
            .and_then(|s| s.end_of_life)
            .filter(|eol| eol.as_str() <= now)
        {
            format!("past its end of life ({eol})")
        } else if !kept_minors.contains(&(os.clone(), minor.clone())) {
            format!(
                "Kubernetes {minor} is not among the {} newest minors kept for {os}",
                policy.keep_minors
            )
        } else if !kept_patches.contains(&(os.clone(), v.bare())) {
            format!(
                "{} is not among the {} newest patches of {minor} kept for {os}",
                v.bare(),
                policy.keep_patches
            )
        } else {
            let kept = newest
                .get(&(os.clone(), v.bare()))
                .map_or("-".to_string(), |k| k.id.clone());
            format!("an older build of {} than {kept}", v.bare())
        };
        let mut used = false;
        for (stage, resource_id) in e.live_locations() {
            if in_use.uses(e, &resource_id) {
                used = true;
                continue;
            }
            let managed = crate::record::ManagedImageId::parse(&resource_id).is_ok();
            out.delete.push(Row {
                id: e.id.clone(),
                kubernetes_version: e.kubernetes_version.clone(),
                os: e.distro.clone(),
                stage,
                resource_id,
                kind: if managed {
                    "managed image"
                } else {
                    "gallery image version"
                },
                reason: reason.clone(),
            });
        }
        if used {
            out.keep
                .push(keep(format!("in use by a cluster (it would go: {reason})")));
        }
    }
    out.delete.sort_by(|a, b| {
        (&a.os, kube_of(&a.kubernetes_version), &a.id, &a.resource_id).cmp(&(
            &b.os,
            kube_of(&b.kubernetes_version),
            &b.id,
            &b.resource_id,
        ))
    });
    out.keep.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn kube_of(v: &Option<String>) -> Option<KubeVersion> {
    v.as_deref().and_then(KubeVersion::parse)
}

impl Row {
    /// The `az` command that deletes it, as arguments.
    pub fn az_args(&self) -> Vec<String> {
        let noun: &[&str] = if self.kind == "managed image" {
            &["image"]
        } else {
            &["sig", "image-version"]
        };
        noun.iter()
            .map(|s| s.to_string())
            .chain([
                "delete".to_string(),
                "--ids".to_string(),
                self.resource_id.clone(),
            ])
            .collect()
    }

    /// Whether it is where the image was built.
    pub fn is_build_location(&self) -> bool {
        self.stage == BUILD_STAGE
    }
}

/// `text` quoted for a POSIX shell.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
