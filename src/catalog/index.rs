//! The catalog's index, layout 5: a small signed root (`index.json`) that names a section per
//! Kubernetes minor and OS with its sha256; content-named sections that name their shards (one
//! per Kubernetes version and OS) and their `latest/` pointer with theirs; content-named shards
//! holding the entries. The root grows with minors x OS, not with images or patches, so every
//! read and every compare-and-swap of it stays small. A publish reads and writes the root, one
//! section and one shard; a lookup reads the root and what it needs below. What a query selects
//! on and how "latest" orders images live here too.
//!
//! Fields this sigcat does not know (written by a newer one) are kept as they are, at every
//! level, so an older sigcat never destroys a newer one's data; a layout it does not know at
//! all is refused. Layouts 1 to 3 (one `index.json` listing every image) are read as they are
//! ([`LegacyIndex`]) and become layout 5 at the next write. Layout 4 (one root naming every
//! shard) was a development layout, never released: `rebuild-index` rebuilds such a catalog.

use crate::record::kubernetes::KubeVersion;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// The layout every write produces.
pub const LAYOUT_VERSION: u32 = 5;
/// The layouts this sigcat reads.
pub const KNOWN_LAYOUTS: [u32; 4] = [1, 2, 3, 5];
/// The development layout that was never released (one root naming every shard).
pub const DEVELOPMENT_LAYOUT: u32 = 4;

/// Fields a newer sigcat wrote, kept as they are.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// The JSON Schema of `index.json` (what `sigcat schema index` prints).
pub const SCHEMA: &str = include_str!("index.schema.json");
/// The JSON Schema of a section (`sigcat schema section`).
pub const SECTION_SCHEMA: &str = include_str!("section.schema.json");
/// The JSON Schema of a shard (`sigcat schema shard`).
pub const SHARD_SCHEMA: &str = include_str!("shard.schema.json");
/// The JSON Schema of a `latest/` pointer (`sigcat schema latest`).
pub const LATEST_SCHEMA: &str = include_str!("latest.schema.json");

/// The shard name of images whose Kubernetes version is not known.
pub const UNKNOWN_VERSION: &str = "unknown";

/// The root of a layout 5 catalog: small, signed, and naming everything else by its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Root {
    /// [`LAYOUT_VERSION`].
    pub layout: u32,
    /// Always empty: kept so that a sigcat from before layout 5 (which reads `images`) refuses
    /// this index by its layout instead of reading it as an empty catalog.
    #[serde(default)]
    pub images: Vec<serde_json::Value>,
    /// Increases with every write; readers that trust the catalog refuse a lower one than
    /// they saw (a rolled-back index).
    pub sequence: u64,
    /// After this, readers that trust the catalog refuse it (a frozen index); every write and
    /// `catalog refresh` move it forward. RFC 3339, UTC.
    pub expires: String,
    /// When it was written.
    pub written_at: String,
    /// Every section, by name (`1.30/ubuntu-2404`; `unknown/ubuntu-2404` for images whose
    /// Kubernetes version is not known).
    #[serde(default)]
    pub sections: BTreeMap<String, SectionRef>,
    /// Fields of a newer sigcat, kept unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A section as the root names it, with what queries need to skip it without reading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SectionRef {
    /// Where the section is.
    pub key: String,
    /// The sha256 of its bytes.
    pub sha256: String,
    /// How many images its shards hold.
    pub images: usize,
    /// The OS types of its images (`Linux`, `Windows`).
    #[serde(default)]
    pub os_types: BTreeSet<String>,
    /// The image definitions of its images.
    #[serde(default)]
    pub definitions: BTreeSet<String>,
    /// The galleries of its images.
    #[serde(default)]
    pub galleries: BTreeSet<String>,
    /// Fields of a newer sigcat, kept unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The shards of one Kubernetes minor and OS, and its `latest/` pointer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    /// [`LAYOUT_VERSION`].
    pub layout: u32,
    /// Its name (`1.30/ubuntu-2404`).
    pub section: String,
    /// Its shards, by name (`1.30.3/ubuntu-2404`).
    #[serde(default)]
    pub shards: BTreeMap<String, ShardRef>,
    /// Its `latest/` pointer (none for images whose Kubernetes version is not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<ObjectRef>,
    /// Fields of a newer sigcat, kept unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A shard as the root names it, with what queries need to skip it without reading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRef {
    /// Where the shard is.
    pub key: String,
    /// The sha256 of its bytes.
    pub sha256: String,
    /// How many images it holds.
    pub images: usize,
    /// The OS types of its images (`Linux`, `Windows`).
    #[serde(default)]
    pub os_types: BTreeSet<String>,
    /// The image definitions of its images.
    #[serde(default)]
    pub definitions: BTreeSet<String>,
    /// The galleries of its images.
    #[serde(default)]
    pub galleries: BTreeSet<String>,
    /// Fields of a newer sigcat, kept unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The entries of one Kubernetes version and OS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    /// [`LAYOUT_VERSION`].
    pub layout: u32,
    /// Its name (`1.30.3/ubuntu-2404`).
    pub shard: String,
    /// Its images.
    pub images: Vec<IndexEntry>,
    /// Fields of a newer sigcat, kept unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Layouts 1 to 3: one index listing every image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyIndex {
    /// 1, 2 or 3.
    pub layout: u32,
    /// Every image.
    pub images: Vec<IndexEntry>,
    /// Fields of a newer sigcat, kept unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One image in a shard: what queries select on, and where its objects are.
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
    /// `ubuntu-2404`, from the build name: the OS the image is sharded by.
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
    /// The image's newest yank or unyank, when it has had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yank: Option<YankState>,
    /// When the image was first published: RFC 3339, UTC, millisecond precision.
    pub published_at: String,
    /// When a later publish last added information (a new revision of the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// `record`, `template` and `revision`: where each object is and its sha256.
    pub objects: BTreeMap<String, ObjectRef>,
    /// Fields of a newer sigcat, kept unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where an object is, and the sha256 its content must have.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's key.
    pub key: String,
    /// The sha256 of its content (hex).
    pub sha256: String,
}

/// Where an image stands after its newest yank or unyank event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct YankState {
    /// Whether the image is out of service.
    pub yanked: bool,
    /// Why, as given.
    pub reason: Option<String>,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The event object (the head of the image's chain of events).
    pub event: ObjectRef,
}

impl Root {
    /// A catalog with nothing in it yet.
    pub fn empty(now: &str, expires: &str) -> Root {
        Root {
            layout: LAYOUT_VERSION,
            images: Vec::new(),
            sequence: 0,
            expires: expires.to_string(),
            written_at: now.to_string(),
            sections: BTreeMap::new(),
            extra: Extra::new(),
        }
    }

    /// How many images the catalog holds.
    pub fn image_count(&self) -> usize {
        self.sections.values().map(|s| s.images).sum()
    }
}

impl Section {
    /// An empty section named `name`.
    pub fn new(name: &str) -> Section {
        Section {
            layout: LAYOUT_VERSION,
            section: name.to_string(),
            shards: BTreeMap::new(),
            latest: None,
            extra: Extra::new(),
        }
    }
}

/// The section a shard belongs to: `1.30.3/ubuntu-2404` → `1.30/ubuntu-2404` (the name of
/// its `latest/` pointer too); `unknown/ubuntu-2404` stays as it is.
pub fn section_of(shard: &str) -> String {
    let (version, os) = split_shard_name(shard);
    let minor = minor_of(version).unwrap_or_else(|| UNKNOWN_VERSION.to_string());
    format!("{minor}/{os}")
}

impl Shard {
    /// An empty shard named `name`.
    pub fn new(name: &str) -> Shard {
        Shard {
            layout: LAYOUT_VERSION,
            shard: name.to_string(),
            images: Vec::new(),
            extra: Extra::new(),
        }
    }

    /// Its entry for image `id`.
    pub fn find(&self, id: &str) -> Option<&IndexEntry> {
        self.images.iter().find(|e| e.id == id)
    }
}

impl LegacyIndex {
    /// The entry of image `id`.
    pub fn find(&self, id: &str) -> Option<&IndexEntry> {
        self.images.iter().find(|e| e.id == id)
    }
}

impl IndexEntry {
    /// Whether the image is out of service.
    pub fn is_yanked(&self) -> bool {
        self.yank.as_ref().is_some_and(|y| y.yanked)
    }

    /// The shard it belongs in: its Kubernetes version and OS.
    pub fn shard_name(&self) -> String {
        shard_name(
            self.kubernetes_version.as_deref(),
            self.distro.as_deref().unwrap_or("unknown"),
        )
    }

    /// The `latest/` pointer it counts for (`1.30/ubuntu-2404`), when its version is known.
    pub fn pointer_name(&self) -> Option<String> {
        let minor = minor_of(self.kubernetes_version.as_deref()?)?;
        Some(format!(
            "{minor}/{}",
            safe_segment(self.distro.as_deref().unwrap_or("unknown"))
        ))
    }
}

/// A path segment made of what every store and URL accepts unescaped.
pub fn safe_segment(text: &str) -> String {
    let s: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches(['.', '-']).to_string();
    if s.is_empty() { "unknown".into() } else { s }
}

/// `1.30.3` and `ubuntu-2404` → `1.30.3/ubuntu-2404` (`unknown/...` without a version).
pub fn shard_name(kubernetes: Option<&str>, os: &str) -> String {
    let version = kubernetes
        .and_then(KubeVersion::parse)
        .map(|v| v.bare())
        .unwrap_or_else(|| UNKNOWN_VERSION.to_string());
    format!("{version}/{}", safe_segment(os))
}

/// The version and OS parts of a shard name.
pub fn split_shard_name(name: &str) -> (&str, &str) {
    name.split_once('/').unwrap_or((name, ""))
}

/// `1.30.3` → `1.30`.
pub fn minor_of(version: &str) -> Option<String> {
    KubeVersion::parse(version).map(|v| format!("{}.{}", v.major, v.minor))
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
    fn kubernetes_matches(&self, have: Option<&str>) -> bool {
        match &self.kubernetes {
            None => true,
            Some(want) => {
                let want = want.trim_start_matches('v');
                have.is_some_and(|have| have == want || have.starts_with(&format!("{want}.")))
            }
        }
    }

    /// Whether an entry passes every filter.
    pub fn matches(&self, e: &IndexEntry) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| match want {
            None => true,
            Some(w) => have.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(w)),
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
        self.kubernetes_matches(e.kubernetes_version.as_deref())
            && os
            && region
            && (self.include_yanked || !e.is_yanked())
            && eq(&self.definition, &e.image_definition)
            && eq(&self.gallery, &e.gallery)
    }

    /// Whether a shard can hold an entry that matches, judged from its section alone (so the
    /// shards a query cannot use are never read).
    pub fn may_match(&self, name: &str, shard: &ShardRef) -> bool {
        let (version, os) = split_shard_name(name);
        let version = (version != UNKNOWN_VERSION).then_some(version);
        self.kubernetes_matches(version)
            && self.sets_may_match(os, &shard.os_types, &shard.definitions, &shard.galleries)
    }

    /// Whether a section can hold an entry that matches, judged from the root alone.
    pub fn may_match_section(&self, name: &str, section: &SectionRef) -> bool {
        let (minor, os) = split_shard_name(name);
        let minor_ok = match &self.kubernetes {
            None => true,
            Some(want) => {
                let want = want.trim_start_matches('v');
                minor != UNKNOWN_VERSION
                    && (want == minor || want.starts_with(&format!("{minor}.")))
            }
        };
        minor_ok
            && self.sets_may_match(
                os,
                &section.os_types,
                &section.definitions,
                &section.galleries,
            )
    }

    fn sets_may_match(
        &self,
        os: &str,
        os_types: &BTreeSet<String>,
        definitions: &BTreeSet<String>,
        galleries: &BTreeSet<String>,
    ) -> bool {
        let any = |set: &BTreeSet<String>, want: &str, contains: bool| {
            set.iter().any(|v| {
                let v = v.to_ascii_lowercase();
                if contains {
                    v.contains(want)
                } else {
                    v == want
                }
            })
        };
        let os_ok = match &self.os {
            None => true,
            Some(want) => {
                let want = want.to_ascii_lowercase();
                os.contains(&want) || any(os_types, &want, true) || any(definitions, &want, true)
            }
        };
        let definition_ok = self
            .definition
            .as_ref()
            .is_none_or(|d| any(definitions, &d.to_ascii_lowercase(), false));
        let gallery_ok = self
            .gallery
            .as_ref()
            .is_none_or(|g| any(galleries, &g.to_ascii_lowercase(), false));
        os_ok && definition_ok && gallery_ok
    }
}

/// "Latest": the highest Kubernetes version, then the highest gallery version compared as
/// numbers (`0.3.10` > `0.3.9`), then the latest publish time, then the id.
pub fn newer(a: &IndexEntry, b: &IndexEntry) -> Ordering {
    let kube = |e: &IndexEntry| e.kubernetes_version.as_deref().and_then(KubeVersion::parse);
    kube(a)
        .cmp(&kube(b))
        .then_with(|| {
            numeric_version(a.gallery_image_version.as_deref())
                .cmp(&numeric_version(b.gallery_image_version.as_deref()))
        })
        .then_with(|| a.published_at.cmp(&b.published_at))
        .then_with(|| a.id.cmp(&b.id))
}

/// Shard names by the Kubernetes version they hold, newest first (`unknown` last).
pub fn newest_shards_first(a: &str, b: &str) -> Ordering {
    let version = |n: &str| KubeVersion::parse(split_shard_name(n).0);
    version(b)
        .cmp(&version(a))
        .then_with(|| split_shard_name(a).1.cmp(split_shard_name(b).1))
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

    pub(crate) fn entry(k: &str, g: &str) -> IndexEntry {
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
        let mut shards = vec![
            "unknown/x",
            "1.30.3/a",
            "1.30.10/a",
            "1.29.9/b",
            "1.30.10/0",
        ];
        shards.sort_by(|a, b| newest_shards_first(a, b));
        assert_eq!(
            shards,
            [
                "1.30.10/0",
                "1.30.10/a",
                "1.30.3/a",
                "1.29.9/b",
                "unknown/x"
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
    fn a_shard_is_skipped_only_when_none_of_its_entries_could_match() {
        let shard = ShardRef {
            key: "k".into(),
            sha256: "s".into(),
            images: 1,
            os_types: ["Linux".to_string()].into(),
            definitions: ["capi-ubuntu-2404".to_string()].into(),
            galleries: ["G".to_string()].into(),
            extra: Extra::new(),
        };
        let e = entry("1.30.3", "0.3.9");
        let filters = [
            Filter::default(),
            Filter {
                kubernetes: Some("1.30".into()),
                ..Filter::default()
            },
            Filter {
                kubernetes: Some("1.31".into()),
                ..Filter::default()
            },
            Filter {
                os: Some("linux".into()),
                ..Filter::default()
            },
            Filter {
                os: Some("capi-ubuntu".into()),
                ..Filter::default()
            },
            Filter {
                os: Some("windows".into()),
                ..Filter::default()
            },
            Filter {
                definition: Some("capi-ubuntu-2204".into()),
                ..Filter::default()
            },
            Filter {
                gallery: Some("g".into()),
                ..Filter::default()
            },
        ];
        for f in filters {
            // Never skipped when an entry in it matches.
            if f.matches(&e) {
                assert!(f.may_match(&e.shard_name(), &shard), "{f:?}");
            }
        }
        assert!(
            !Filter {
                kubernetes: Some("1.31".into()),
                ..Filter::default()
            }
            .may_match(&e.shard_name(), &shard)
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
    fn shard_and_pointer_names() {
        let e = entry("1.30.3", "0.3.9");
        assert_eq!(e.shard_name(), "1.30.3/ubuntu-2404");
        assert_eq!(e.pointer_name().as_deref(), Some("1.30/ubuntu-2404"));
        assert_eq!(shard_name(None, "Windows 2022/x"), "unknown/windows-2022-x");
        assert_eq!(shard_name(Some("v1.31.0"), "../.."), "1.31.0/unknown");
    }
}
