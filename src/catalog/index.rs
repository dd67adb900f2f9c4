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

/// The highest sequence a root may have: far beyond any catalog's writes, and far from
/// overflowing (a planted root with a huge sequence is the catalog's data gone wrong).
pub const MAX_SEQUENCE: u64 = 1 << 53;

/// A new catalog id: 128 random bits, in hex.
pub fn new_catalog_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

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
    /// Which catalog this is: made at its first write and kept by every write, so that a
    /// reader that saw this catalog refuses another one's signed root put in its place (two
    /// catalogs signed by one key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    /// After this, readers that trust the catalog refuse it (a frozen index); every write and
    /// `catalog refresh` move it forward. RFC 3339, UTC.
    pub expires: String,
    /// When it was written.
    pub written_at: String,
    /// Every section, by name (`1.30/ubuntu-2404`; `unknown/ubuntu-2404` for images whose
    /// Kubernetes version is not known).
    #[serde(default)]
    pub sections: BTreeMap<String, SectionRef>,
    /// The pending changes (group commit) the latest roots committed, newest last, at most
    /// [`PENDING_COMMITTED_KEPT`]: how their publishers, and the writers that look for pending
    /// changes, know them committed without reading them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_committed: Vec<String>,
    /// Fields of a newer sigcat, kept unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// How many committed pending changes a root names.
pub const PENDING_COMMITTED_KEPT: usize = 64;

/// A section (as the root names it) or a shard (as its section names it), with what queries
/// need to skip it without reading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexRef {
    /// Where it is.
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

/// A section as the root names it.
pub type SectionRef = IndexRef;

/// A shard as its section names it.
pub type ShardRef = IndexRef;

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
    /// Where it was promoted to, what of it was deleted, its end of life: the fold of its
    /// events (present once it has had any event but a yank or unyank).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
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

/// The stage of the location an image was built to (image-builder's staging gallery).
pub const BUILD_STAGE: &str = "staging";
/// The stage a promotion goes to unless it says otherwise.
pub const PROMOTED_STAGE: &str = "production";

/// A gallery image version an image was promoted to (image-builder's promote job copies the
/// staging image to a production or community gallery), with the template that uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// `production`, or the stage given when it was promoted.
    pub stage: String,
    /// The gallery image version's resource id.
    pub gallery_image_version_id: String,
    /// The gallery (its resource name).
    pub gallery: String,
    /// A community gallery's public name, what CAPZ references it by (then without
    /// subscription and resource group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_name: Option<String>,
    /// The image definition in that gallery (image-builder renames `ubuntu` to `ubun2`).
    pub image_definition: String,
    /// The gallery image version.
    pub gallery_image_version: String,
    /// Regions it was replicated to, normalised.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Its end of life (RFC 3339, UTC), when the promotion set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_life: Option<String>,
    /// When Azure published it (`publishedDate`), when known: tells a version created again
    /// from a retried record of the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// The AzureMachineTemplate that boots from it.
    pub template: ObjectRef,
}

/// A location an image was promoted to, as its events left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promoted {
    /// Where.
    #[serde(flatten)]
    pub location: Location,
    /// When it was last promoted there.
    pub at: String,
    /// How many times it was promoted there: more than once means the version was deleted
    /// and created again (image-builder's promote job overwrites), which VMs created before
    /// may not agree with.
    pub times: u32,
    /// The promotion event.
    pub event: ObjectRef,
}

/// A location of an image that was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    /// The resource id that is gone.
    pub resource_id: String,
    /// When it was recorded.
    pub at: String,
    /// Why, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The image whose promotion overwrote it, when that is how it went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    /// The deletion event.
    pub event: ObjectRef,
}

/// What an image's events (besides yanks) made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// The newest event of the image (whatever it does): the head of its chain.
    pub head: ObjectRef,
    /// Where it was promoted to, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promoted: Vec<Promoted>,
    /// Which of its locations are gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<Deleted>,
    /// Its end of life as set on its own (RFC 3339, UTC); it wins over a promotion's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_life: Option<String>,
}

/// Where an image is served from, for a stage: what a template, a pointer and a region
/// filter use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// `staging` for where it was built, else the promotion's stage.
    pub stage: String,
    /// The gallery image version, when it is one.
    pub gallery_image_version_id: Option<String>,
    /// The gallery.
    pub gallery: Option<String>,
    /// A community gallery's public name.
    pub public_name: Option<String>,
    /// The image definition.
    pub image_definition: Option<String>,
    /// The gallery image version.
    pub gallery_image_version: Option<String>,
    /// Regions it can be used in.
    pub regions: Vec<String>,
    /// Its end of life: the image's own, else the location's.
    pub end_of_life: Option<String>,
    /// The template that boots from it.
    pub template: ObjectRef,
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
            catalog_id: None,
            expires: expires.to_string(),
            written_at: now.to_string(),
            sections: BTreeMap::new(),
            pending_committed: Vec::new(),
            extra: Extra::new(),
        }
    }

    /// Names pending changes as committed by this root (the oldest names go).
    pub fn note_committed(&mut self, keys: &[String]) {
        self.pending_committed.extend(keys.iter().cloned());
        let over = self
            .pending_committed
            .len()
            .saturating_sub(PENDING_COMMITTED_KEPT);
        self.pending_committed.drain(..over);
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

    /// Entries grouped into the shards they belong in, by shard name.
    pub fn group(entries: impl IntoIterator<Item = IndexEntry>) -> BTreeMap<String, Shard> {
        let mut shards: BTreeMap<String, Shard> = BTreeMap::new();
        for e in entries {
            let name = e.shard_name();
            shards
                .entry(name.clone())
                .or_insert_with(|| Shard::new(&name))
                .images
                .push(e);
        }
        shards
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

    /// The newest event of the image, whatever it does (the head of its chain).
    pub fn head_event(&self) -> Option<&ObjectRef> {
        match &self.lifecycle {
            Some(l) => Some(&l.head),
            None => self.yank.as_ref().map(|y| &y.event),
        }
    }

    /// Whether the location with this resource id was deleted.
    pub fn is_deleted(&self, resource_id: &str) -> bool {
        self.lifecycle.as_ref().is_some_and(|l| {
            l.deleted
                .iter()
                .any(|d| d.resource_id.eq_ignore_ascii_case(resource_id))
        })
    }

    /// The resource id of where it was built (the gallery image version, else the managed
    /// image): what its own template boots from.
    pub fn build_location(&self) -> Option<&str> {
        self.gallery_image_version_id
            .as_deref()
            .or(self.managed_image_id.as_deref())
    }

    /// Promoted locations that are still there, newest promotion last.
    pub fn live_promotions(&self) -> impl Iterator<Item = &Promoted> {
        self.lifecycle
            .iter()
            .flat_map(|l| l.promoted.iter())
            .filter(|p| !self.is_deleted(&p.location.gallery_image_version_id))
    }

    /// Every location that is still there: (stage, resource id), where it was built first.
    pub fn live_locations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for id in [&self.gallery_image_version_id, &self.managed_image_id]
            .into_iter()
            .flatten()
        {
            if !self.is_deleted(id) {
                out.push((BUILD_STAGE.to_string(), id.clone()));
            }
        }
        for p in self.live_promotions() {
            out.push((
                p.location.stage.clone(),
                p.location.gallery_image_version_id.clone(),
            ));
        }
        out
    }

    /// Where it is served from for `stage` (any stage: its newest live promotion, else where
    /// it was built), if anywhere. A deleted location never serves.
    pub fn served(&self, stage: Option<&str>) -> Option<Served> {
        let own_eol = self.lifecycle.as_ref().and_then(|l| l.end_of_life.clone());
        let promoted = self
            .live_promotions()
            .filter(|p| stage.is_none_or(|s| p.location.stage.eq_ignore_ascii_case(s)))
            .last();
        if let Some(p) = promoted {
            let l = &p.location;
            return Some(Served {
                stage: l.stage.clone(),
                gallery_image_version_id: Some(l.gallery_image_version_id.clone()),
                gallery: Some(l.gallery.clone()),
                public_name: l.public_name.clone(),
                image_definition: Some(l.image_definition.clone()),
                gallery_image_version: Some(l.gallery_image_version.clone()),
                regions: l.regions.clone(),
                end_of_life: own_eol.or_else(|| l.end_of_life.clone()),
                template: l.template.clone(),
            });
        }
        if stage.is_some_and(|s| !s.eq_ignore_ascii_case(BUILD_STAGE)) {
            return None;
        }
        let built = self.build_location()?;
        if self.is_deleted(built) {
            return None;
        }
        Some(Served {
            stage: BUILD_STAGE.to_string(),
            gallery_image_version_id: self.gallery_image_version_id.clone(),
            gallery: self.gallery.clone(),
            public_name: None,
            image_definition: self.image_definition.clone(),
            gallery_image_version: self.gallery_image_version.clone(),
            regions: self.regions.clone(),
            end_of_life: own_eol,
            template: self.objects.get("template")?.clone(),
        })
    }

    /// Where it is served from for `stage`, if it is in service at `now` (RFC 3339 UTC with
    /// milliseconds, as [`crate::catalog::entry::now_rfc3339`] writes): not yanked, a location
    /// that is still there, not past its end of life.
    pub fn in_service(&self, stage: Option<&str>, now: &str) -> Option<Served> {
        if self.is_yanked() {
            return None;
        }
        self.served(stage)
            .filter(|s| s.end_of_life.as_deref().is_none_or(|eol| eol > now))
    }

    /// Whether every location it had is gone.
    pub fn all_deleted(&self) -> bool {
        self.build_location().is_some() && self.live_locations().is_empty()
    }

    /// Its stages that are still there (`staging`, `production`), built first.
    pub fn stages(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (stage, _) in self.live_locations() {
            if !out.contains(&stage) {
                out.push(stage);
            }
        }
        out
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
    /// Only images with a location of this stage that is still there (`staging`, where they
    /// were built; `production`, where they were promoted); regions are those of that location.
    pub stage: Option<String>,
    /// Only images in service: not yanked, a location still there, not past end of life.
    pub in_service: bool,
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

    /// Whether an entry passes every filter now.
    pub fn matches(&self, e: &IndexEntry) -> bool {
        self.matches_at(e, &crate::catalog::entry::now_rfc3339())
    }

    /// Whether an entry passes every filter at `now` (RFC 3339 UTC, milliseconds).
    pub fn matches_at(&self, e: &IndexEntry, now: &str) -> bool {
        let served = if self.in_service {
            match e.in_service(self.stage.as_deref(), now) {
                Some(s) => Some(s),
                None => return false,
            }
        } else {
            match (&self.stage, e.served(self.stage.as_deref())) {
                (Some(_), None) => return false,
                (_, s) => s,
            }
        };
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
            Some(want) => served
                .as_ref()
                .map_or(&e.regions, |s| &s.regions)
                .contains(&normalize_region(want)),
        };
        let definition = eq(&self.definition, &e.image_definition)
            || e.live_promotions()
                .any(|p| eq(&self.definition, &Some(p.location.image_definition.clone())));
        let gallery = eq(&self.gallery, &e.gallery)
            || e.live_promotions().any(|p| {
                eq(&self.gallery, &Some(p.location.gallery.clone()))
                    || eq(&self.gallery, &p.location.public_name)
            });
        self.kubernetes_matches(e.kubernetes_version.as_deref())
            && os
            && region
            && (self.include_yanked || !e.is_yanked())
            && definition
            && gallery
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
            lifecycle: None,
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
