//! The catalog index: one JSON object listing every published image, and the queries over it.
//!
//! Fields this sigcat does not know (written by a newer one) are kept as they are, at the top
//! and in every entry, so an older sigcat never destroys a newer one's data; a layout it does
//! not know at all is refused.

use crate::record::kubernetes::KubeVersion;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Version of the catalog layout (keys and index schema), written into every index.
/// Layout 1 (content at fixed keys) and 2 (content-named objects) are read; every write
/// produces layout 3 (yanks and regions). A sigcat that knows no yanks refuses layout 3
/// rather than hand out a yanked image.
pub const LAYOUT_VERSION: u32 = 3;
/// The layouts this sigcat reads.
pub const KNOWN_LAYOUTS: [u32; 3] = [1, 2, 3];

/// Fields a newer sigcat wrote, kept as they are.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// The JSON Schema of `index.json` (what `sigcat schema index` prints), for consumers that are
/// not sigcat.
pub const SCHEMA: &str = include_str!("index.schema.json");

/// The catalog's index: every image, derived from the objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// The layout version (see [`LAYOUT_VERSION`]).
    pub layout: u32,
    /// Every image.
    pub images: Vec<IndexEntry>,
    /// Fields of a newer sigcat, kept unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            layout: LAYOUT_VERSION,
            images: Vec::new(),
            extra: Extra::new(),
        }
    }
}

impl Index {
    /// The entry of image `id`.
    pub fn find(&self, id: &str) -> Option<&IndexEntry> {
        self.images.iter().find(|e| e.id == id)
    }
}

/// One image in the index: what queries select on, and where its objects are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// `<definition>-<version>-<hash>`: readable, and unique per gallery image version id.
    pub id: String,
    /// The build (`sig-ubuntu-2404`).
    pub build: String,
    /// The Kubernetes version (`1.30.3`), when known.
    pub kubernetes_version: Option<String>,
    /// `Linux` or `Windows`.
    pub os_type: Option<String>,
    /// `ubuntu-2404`, from the manifest's `build_name` or the build name.
    pub distro: Option<String>,
    /// The gallery image definition.
    pub image_definition: Option<String>,
    /// The gallery.
    pub gallery: Option<String>,
    /// The gallery image version.
    pub gallery_image_version: Option<String>,
    /// The gallery image version's resource id.
    pub gallery_image_version_id: Option<String>,
    /// The managed image's resource id.
    pub managed_image_id: Option<String>,
    /// Regions the image can be used in, normalised (`westeurope`): the gallery's replicated
    /// regions, or a managed image's location. Empty: not known, and never claimed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// The image's latest yank or unyank, when it has had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yank: Option<YankState>,
    /// When the image was first published: RFC 3339, UTC, millisecond precision.
    pub published_at: String,
    /// When a later publish last added information (a new revision of the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// `record` and `template`: where each object is and its sha256.
    pub objects: BTreeMap<String, ObjectRef>,
    /// Fields of a newer sigcat, kept unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where an object is, and the sha256 its content must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's key.
    pub key: String,
    /// The sha256 of its content (hex).
    pub sha256: String,
}

/// Where an image stands after its latest yank or unyank event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct YankState {
    /// Whether the image is out of service.
    pub yanked: bool,
    /// Why, as given.
    pub reason: Option<String>,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The event object (the head of the image's chain of yank events).
    pub event: ObjectRef,
}

impl IndexEntry {
    /// Whether the image is out of service.
    pub fn is_yanked(&self) -> bool {
        self.yank.as_ref().is_some_and(|y| y.yanked)
    }
}

/// Azure's normalisation of a region name: lower case, no spaces (`West Europe` → `westeurope`).
pub fn normalize_region(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// What `catalog list` and `catalog latest` select on. Empty filters match everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `1.30` (any patch of the minor) or `1.30.3` (exactly); a leading `v` is allowed.
    pub kubernetes: Option<String>,
    /// Matched, ignoring case, within the OS type, the distro and the image definition.
    pub os: Option<String>,
    /// The image definition, exactly (ignoring case).
    pub definition: Option<String>,
    /// The gallery, exactly (ignoring case).
    pub gallery: Option<String>,
    /// Only images known to be in this region (any spelling Azure accepts).
    pub region: Option<String>,
    /// Yanked images too (`latest` never returns one, whatever this says).
    pub include_yanked: bool,
}

impl Filter {
    /// Whether an entry passes every filter.
    pub fn matches(&self, e: &IndexEntry) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| match want {
            None => true,
            Some(w) => have.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(w)),
        };
        let kubernetes = match &self.kubernetes {
            None => true,
            Some(want) => {
                let want = want.trim_start_matches('v');
                e.kubernetes_version
                    .as_deref()
                    .is_some_and(|have| have == want || have.starts_with(&format!("{want}.")))
            }
        };
        let os = match &self.os {
            None => true,
            Some(want) => {
                let want = want.to_ascii_lowercase();
                [&e.os_type, &e.distro, &e.image_definition]
                    .iter()
                    .any(|f| {
                        f.as_deref()
                            .is_some_and(|v| v.to_ascii_lowercase().contains(&want))
                    })
            }
        };
        let region = match &self.region {
            None => true,
            Some(want) => e.regions.contains(&normalize_region(want)),
        };
        kubernetes
            && os
            && region
            && (self.include_yanked || !e.is_yanked())
            && eq(&self.definition, &e.image_definition)
            && eq(&self.gallery, &e.gallery)
    }
}

/// "Latest": the highest Kubernetes version, then the highest gallery version compared as
/// numbers (`0.3.10` > `0.3.9`), then the latest publish time.
pub fn newer(a: &IndexEntry, b: &IndexEntry) -> Ordering {
    let kube = |e: &IndexEntry| e.kubernetes_version.as_deref().and_then(KubeVersion::parse);
    kube(a)
        .cmp(&kube(b))
        .then_with(|| {
            numeric_version(a.gallery_image_version.as_deref())
                .cmp(&numeric_version(b.gallery_image_version.as_deref()))
        })
        .then_with(|| a.published_at.cmp(&b.published_at))
}

/// `0.3.1721037000` → [0, 3, 1721037000]; non-numeric parts sort after numeric ones by text.
fn numeric_version(v: Option<&str>) -> Vec<(u64, String)> {
    v.unwrap_or("")
        .split('.')
        .map(|p| {
            p.parse::<u64>()
                .map_or((u64::MAX, p.to_string()), |n| (n, String::new()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(k: &str, g: &str) -> IndexEntry {
        IndexEntry {
            id: format!("{k}-{g}"),
            build: "sig-ubuntu-2404".into(),
            kubernetes_version: Some(k.into()),
            os_type: Some("Linux".into()),
            distro: Some("ubuntu-2404".into()),
            image_definition: Some("capi-ubuntu-2404".into()),
            gallery: Some("G".into()),
            gallery_image_version: Some(g.into()),
            gallery_image_version_id: None,
            managed_image_id: None,
            regions: vec!["northcentralus".into(), "westeurope".into()],
            yank: None,
            published_at: "2026-01-01T00:00:00Z".into(),
            updated_at: None,
            objects: BTreeMap::new(),
            extra: Extra::new(),
        }
    }

    #[test]
    fn latest_orders_kubernetes_then_gallery_version_numerically() {
        let mut all = [
            entry("1.30.3", "0.3.9"),
            entry("1.30.3", "0.3.10"),
            entry("1.29.9", "0.3.99"),
            entry("1.30.10", "0.3.1"),
        ];
        all.sort_by(newer);
        let order: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            order,
            [
                "1.29.9-0.3.99",
                "1.30.3-0.3.9",
                "1.30.3-0.3.10",
                "1.30.10-0.3.1"
            ]
        );
    }

    #[test]
    fn filters() {
        let e = entry("1.30.3", "0.3.9");
        let f = |k: &str| {
            Filter {
                kubernetes: Some(k.into()),
                ..Filter::default()
            }
            .matches(&e)
        };
        assert!(f("1.30") && f("v1.30") && f("1.30.3") && !f("1.3") && !f("1.30.4") && !f("1.31"));
        assert!(
            Filter {
                os: Some("Ubuntu-2404".into()),
                ..Filter::default()
            }
            .matches(&e)
        );
        assert!(
            !Filter {
                os: Some("windows".into()),
                ..Filter::default()
            }
            .matches(&e)
        );
        assert!(
            Filter {
                definition: Some("CAPI-ubuntu-2404".into()),
                gallery: Some("g".into()),
                ..Filter::default()
            }
            .matches(&e)
        );
    }

    #[test]
    fn regions_match_in_any_spelling_and_unknown_is_never_claimed() {
        let in_region = |e: &IndexEntry, r: &str| {
            Filter {
                region: Some(r.into()),
                ..Filter::default()
            }
            .matches(e)
        };
        let e = entry("1.30.3", "0.3.9");
        assert!(
            in_region(&e, "westeurope")
                && in_region(&e, "West Europe")
                && in_region(&e, "WESTEUROPE")
        );
        assert!(!in_region(&e, "eastus"));
        let unknown = IndexEntry {
            regions: Vec::new(),
            ..e.clone()
        };
        assert!(
            !in_region(&unknown, "westeurope"),
            "no region data, no claim"
        );
        assert_eq!(normalize_region(" North Central US "), "northcentralus");
    }

    #[test]
    fn yanked_images_are_hidden_unless_asked_for() {
        let mut e = entry("1.30.3", "0.3.9");
        e.yank = Some(YankState {
            yanked: true,
            reason: Some("CVE".into()),
            at: "2026-01-02T00:00:00.000Z".into(),
            event: ObjectRef {
                key: "images/x/yank-1.json".into(),
                sha256: "0".into(),
            },
        });
        assert!(!Filter::default().matches(&e));
        assert!(
            Filter {
                include_yanked: true,
                ..Filter::default()
            }
            .matches(&e)
        );
        e.yank.as_mut().unwrap().yanked = false;
        assert!(Filter::default().matches(&e), "unyanked");
    }
}
