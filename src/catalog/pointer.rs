//! `latest/<minor>/<os>.json`: the answer to "the image for Kubernetes 1.30 on ubuntu-2404 [in
//! westeurope]" at a fixed, documented key, for consumers with only curl (a bootstrap script,
//! Terraform's `http` data source, a CDN), as AWS publishes `.../1.30/amazon-linux-2023/...
//! /recommended`. Derived data: written after every root that changes it, signed beside it
//! (`.json.sig`), named with its sha256 in the signed root, and checked by `verify`.

use super::index::{IndexEntry, ObjectRef, newer};
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
    /// The newest image in service, if any (yanked images never are).
    pub image: Option<Summary>,
    /// The newest image in service in each region it is known to be in.
    #[serde(default)]
    pub regions: BTreeMap<String, Summary>,
}

/// What a consumer needs of an image to boot it, and to fetch more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The catalog id.
    pub id: String,
    /// `1.30.3`.
    pub kubernetes_version: Option<String>,
    /// `Linux` or `Windows`.
    pub os_type: Option<String>,
    /// The gallery image definition.
    pub image_definition: Option<String>,
    /// The gallery.
    pub gallery: Option<String>,
    /// The gallery image version.
    pub gallery_image_version: Option<String>,
    /// The ARM id CAPZ's `computeGallery` image points at.
    pub gallery_image_version_id: Option<String>,
    /// The managed image's id.
    pub managed_image_id: Option<String>,
    /// Where it can be used.
    pub regions: Vec<String>,
    /// When it was first published.
    pub published_at: String,
    /// Its AzureMachineTemplate (key relative to the catalog, and sha256).
    pub template: Option<ObjectRef>,
    /// Its record.
    pub record: Option<ObjectRef>,
}

impl Summary {
    /// The summary of an entry.
    pub fn of(e: &IndexEntry) -> Summary {
        Summary {
            id: e.id.clone(),
            kubernetes_version: e.kubernetes_version.clone(),
            os_type: e.os_type.clone(),
            image_definition: e.image_definition.clone(),
            gallery: e.gallery.clone(),
            gallery_image_version: e.gallery_image_version.clone(),
            gallery_image_version_id: e.gallery_image_version_id.clone(),
            managed_image_id: e.managed_image_id.clone(),
            regions: e.regions.clone(),
            published_at: e.published_at.clone(),
            template: e.objects.get("template").cloned(),
            record: e.objects.get("record").cloned(),
        }
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
            gallery_image_version: self.gallery_image_version.clone(),
            gallery_image_version_id: None,
            managed_image_id: None,
            regions: Vec::new(),
            yank: None,
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

/// Whether an image may be served as the latest.
pub fn eligible(e: &IndexEntry) -> bool {
    !e.is_yanked()
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
        }
    }

    /// The pointer derived from every entry of its minor and OS.
    pub fn derive<'a>(name: &str, entries: impl IntoIterator<Item = &'a IndexEntry>) -> Latest {
        let mut latest = Latest::new(name);
        for e in entries {
            latest.offer(e);
        }
        latest
    }

    /// Takes `e` into account: it becomes the image (or a region's) when it is newer.
    pub fn offer(&mut self, e: &IndexEntry) {
        if !eligible(e) {
            return;
        }
        // The same image again (a new revision of it) replaces its own summary.
        let better = |current: &Option<Summary>| {
            current
                .as_ref()
                .is_none_or(|c| c.id == e.id || newer(e, &c.ordering_entry()).is_gt())
        };
        if better(&self.image) {
            self.image = Some(Summary::of(e));
        }
        for region in &e.regions {
            let current = self.regions.get(region).cloned();
            if better(&current) {
                self.regions.insert(region.clone(), Summary::of(e));
            }
        }
    }

    /// Whether `id` is what this pointer serves (overall or in a region).
    pub fn serves(&self, id: &str) -> bool {
        self.image.as_ref().is_some_and(|s| s.id == id) || self.regions.values().any(|s| s.id == id)
    }

    /// Its bytes, stamped with the root it goes with.
    pub fn bytes(&mut self, sequence: u64, expires: &str) -> Vec<u8> {
        self.catalog_sequence = sequence;
        self.expires = expires.to_string();
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Equal in what it serves (not in when it was stamped).
    pub fn same_answer(&self, other: &Latest) -> bool {
        self.image == other.image && self.regions == other.regions
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
            gallery_image_version_id: None,
            managed_image_id: None,
            regions: regions.iter().map(|r| r.to_string()).collect(),
            yank: None,
            published_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: None,
            objects: BTreeMap::new(),
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
            other.offer(e);
        }
        assert!(latest.same_answer(&other));
        assert!(latest.serves("a") && latest.serves("b") && !latest.serves("c"));
    }
}
