//! `latest/<minor>/<os>.json`: the answer to "the image for Kubernetes 1.30 on ubuntu-2404 [in
//! westeurope]" at a fixed, documented key, for consumers with only curl (a bootstrap script,
//! Terraform's `http` data source, a CDN), as AWS publishes `.../1.30/amazon-linux-2023/...
//! /recommended`. Derived data: written after every root that changes it, signed beside it
//! (`.json.sig`), named with its sha256 in the signed root, and checked by `verify`.

use super::index::{IndexEntry, ObjectRef, Served, newer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The schema name of pointers.
pub const LATEST_POINTER_SCHEMA: &str = "sigcat.latest/v1";

/// A `latest/` pointer's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latest {
    /// [`LATEST_POINTER_SCHEMA`].
    pub schema: String,
    /// The Kubernetes minor (`1.30`).
    pub kubernetes: String,
    /// The OS (`ubuntu-2404`).
    pub os: String,
    /// The sequence of the root it was written with.
    pub catalog_sequence: u64,
    /// That root's expiry: after it, the pointer is stale.
    pub expires: String,
    /// The newest image in service, if any (never a yanked one, one whose every location is
    /// deleted, or one past its end of life), served from its newest promotion if it has one.
    pub image: Option<Summary>,
    /// The newest image in service in each region it is known to be in.
    #[serde(default)]
    pub regions: BTreeMap<String, Summary>,
    /// The newest image in service at each stage (`staging`: where images are built;
    /// `production`: where they were promoted), served from that stage's location.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stages: BTreeMap<String, Summary>,
}

/// What a consumer needs of an image to boot it, and to fetch more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The catalog id.
    pub id: String,
    /// The stage of the location served (`staging`: where it was built).
    #[serde(default = "build_stage")]
    pub stage: String,
    /// `1.30.3`.
    pub kubernetes_version: Option<String>,
    /// `Linux` or `Windows`.
    pub os_type: Option<String>,
    /// The gallery image definition.
    pub image_definition: Option<String>,
    /// The gallery.
    pub gallery: Option<String>,
    /// A community gallery's public name (CAPZ's `computeGallery.gallery` for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_name: Option<String>,
    /// The gallery image version.
    pub gallery_image_version: Option<String>,
    /// The gallery image version it was built as (what orders images: the newest build
    /// wins, wherever it is served from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_version: Option<String>,
    /// The ARM id CAPZ's `computeGallery` image points at.
    pub gallery_image_version_id: Option<String>,
    /// The managed image's id (where it was built only).
    pub managed_image_id: Option<String>,
    /// Where it can be used.
    pub regions: Vec<String>,
    /// When it was first published.
    pub published_at: String,
    /// Its end of life, if it has one: after it, this pointer no longer serves it (a pointer
    /// written before that date still names it until the next write or `catalog refresh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_life: Option<String>,
    /// Its AzureMachineTemplate (key relative to the catalog, and sha256).
    pub template: Option<ObjectRef>,
    /// Its record.
    pub record: Option<ObjectRef>,
}

fn build_stage() -> String {
    super::index::BUILD_STAGE.to_string()
}

impl Summary {
    /// The summary of an entry served from `served`.
    pub fn of(e: &IndexEntry, served: &Served) -> Summary {
        let built = served.stage == super::index::BUILD_STAGE;
        Summary {
            id: e.id.clone(),
            stage: served.stage.clone(),
            kubernetes_version: e.kubernetes_version.clone(),
            os_type: e.os_type.clone(),
            image_definition: served.image_definition.clone(),
            gallery: served.gallery.clone(),
            public_name: served.public_name.clone(),
            gallery_image_version: served.gallery_image_version.clone(),
            built_version: e.gallery_image_version.clone(),
            gallery_image_version_id: served.gallery_image_version_id.clone(),
            managed_image_id: if built {
                e.managed_image_id.clone()
            } else {
                None
            },
            regions: served.regions.clone(),
            published_at: e.published_at.clone(),
            end_of_life: served.end_of_life.clone(),
            template: Some(served.template.clone()),
            record: e.objects.get("record").cloned(),
        }
    }

    /// Past its end of life at `now`.
    fn expired(&self, now: &str) -> bool {
        self.end_of_life.as_deref().is_some_and(|eol| eol <= now)
    }

    /// As an entry, for ordering.
    fn ordering_entry(&self) -> IndexEntry {
        IndexEntry {
            id: self.id.clone(),
            build: String::new(),
            kubernetes_version: self.kubernetes_version.clone(),
            os_type: None,
            distro: None,
            image_definition: None,
            gallery: None,
            gallery_image_version: self
                .built_version
                .clone()
                .or_else(|| self.gallery_image_version.clone()),
            gallery_image_version_id: None,
            managed_image_id: None,
            regions: Vec::new(),
            yank: None,
            lifecycle: None,
            published_at: self.published_at.clone(),
            updated_at: None,
            objects: BTreeMap::new(),
            extra: Default::default(),
        }
    }
}

/// The key of a pointer (`latest/1.30/ubuntu-2404.json`) from its name (`1.30/ubuntu-2404`).
pub fn pointer_key(name: &str) -> String {
    format!("latest/{name}.json")
}

impl Latest {
    /// An empty pointer for `name`.
    pub fn new(name: &str) -> Latest {
        let (kubernetes, os) = name.split_once('/').unwrap_or((name, ""));
        Latest {
            schema: LATEST_POINTER_SCHEMA.into(),
            kubernetes: kubernetes.into(),
            os: os.into(),
            catalog_sequence: 0,
            expires: String::new(),
            image: None,
            regions: BTreeMap::new(),
            stages: BTreeMap::new(),
        }
    }

    /// The pointer derived from every entry of its minor and OS.
    pub fn derive<'a>(name: &str, entries: impl IntoIterator<Item = &'a IndexEntry>) -> Latest {
        let now = super::entry::now_rfc3339();
        let mut latest = Latest::new(name);
        for e in entries {
            latest.offer(e, &now);
        }
        latest
    }

    /// Takes `e` into account at `now`: it becomes the image (or a region's, or a stage's)
    /// when it is in service and newer. An image out of service is not taken out here: a
    /// change that may take one out derives the pointer again.
    pub fn offer(&mut self, e: &IndexEntry, now: &str) {
        // The same image again (a new revision of it) replaces its own summary; one past its
        // end of life gives way to anything.
        let better = |current: Option<&Summary>, offered: &Summary| {
            current.is_none_or(|c| {
                c.id == e.id
                    || c.expired(now)
                    || newer(&offered.ordering_entry(), &c.ordering_entry()).is_gt()
            })
        };
        if let Some(served) = e.in_service(None, now) {
            let offered = Summary::of(e, &served);
            if better(self.image.as_ref(), &offered) {
                self.image = Some(offered.clone());
            }
            for region in &served.regions {
                if better(self.regions.get(region), &offered) {
                    self.regions.insert(region.clone(), offered.clone());
                }
            }
        }
        for stage in e.stages() {
            if let Some(served) = e.in_service(Some(&stage), now) {
                let offered = Summary::of(e, &served);
                if better(self.stages.get(&stage), &offered) {
                    self.stages.insert(stage, offered);
                }
            }
        }
    }

    /// Whether `id` is what this pointer serves (overall, in a region or at a stage).
    pub fn serves(&self, id: &str) -> bool {
        self.image.as_ref().is_some_and(|s| s.id == id)
            || self.regions.values().any(|s| s.id == id)
            || self.stages.values().any(|s| s.id == id)
    }

    /// Whether it names an image past its end of life at `now` (derive it again).
    pub fn serves_expired(&self, now: &str) -> bool {
        self.image
            .iter()
            .chain(self.regions.values())
            .chain(self.stages.values())
            .any(|s| s.expired(now))
    }

    /// Its bytes, stamped with the root it goes with.
    pub fn bytes(&mut self, sequence: u64, expires: &str) -> Vec<u8> {
        self.catalog_sequence = sequence;
        self.expires = expires.to_string();
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Equal in what it serves (not in when it was stamped).
    pub fn same_answer(&self, other: &Latest) -> bool {
        self.image == other.image && self.regions == other.regions && self.stages == other.stages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::index::{Extra, YankState};

    fn entry(id: &str, k: &str, g: &str, regions: &[&str]) -> IndexEntry {
        IndexEntry {
            id: id.into(),
            build: "sig-ubuntu-2404".into(),
            kubernetes_version: Some(k.into()),
            os_type: Some("Linux".into()),
            distro: Some("ubuntu-2404".into()),
            image_definition: Some("capi-ubuntu-2404".into()),
            gallery: Some("G".into()),
            gallery_image_version: Some(g.into()),
            gallery_image_version_id: Some(format!("/g/{id}/versions/{g}")),
            managed_image_id: None,
            regions: regions.iter().map(|r| r.to_string()).collect(),
            yank: None,
            lifecycle: None,
            published_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: None,
            objects: BTreeMap::from([(
                "template".to_string(),
                ObjectRef {
                    key: format!("images/{id}/template-0000000000000000.yaml"),
                    sha256: "0".repeat(64),
                },
            )]),
            extra: Extra::new(),
        }
    }

    #[test]
    fn the_pointer_serves_the_newest_image_in_service_overall_and_per_region() {
        let a = entry("a", "1.30.3", "0.3.1", &["westeurope", "eastus"]);
        let b = entry("b", "1.30.4", "0.3.1", &["eastus"]);
        let mut c = entry("c", "1.30.5", "0.3.1", &["westeurope"]);
        c.yank = Some(YankState {
            yanked: true,
            reason: None,
            at: "t".into(),
            event: ObjectRef {
                key: "k".into(),
                sha256: "s".into(),
            },
        });
        let latest = Latest::derive("1.30/ubuntu-2404", [&a, &b, &c]);
        assert_eq!(latest.image.as_ref().unwrap().id, "b");
        assert_eq!(latest.regions["eastus"].id, "b");
        assert_eq!(latest.regions["westeurope"].id, "a", "c is yanked");
        // Offering in another order gives the same answer.
        let mut other = Latest::new("1.30/ubuntu-2404");
        for e in [&c, &b, &a] {
            other.offer(e, "2026-06-01T00:00:00.000Z");
        }
        assert!(latest.same_answer(&other));
        assert!(latest.serves("a") && latest.serves("b") && !latest.serves("c"));
    }
}
