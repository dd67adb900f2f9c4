//! Records and manifests → a catalog in blob storage, and the queries that find "the image for
//! Kubernetes 1.30 on Ubuntu 24.04" later.
//!
//! Layout (version [`index::LAYOUT_VERSION`]), under the catalog's root or prefix:
//! - `images/<id>/record.json`, `images/<id>/template.yaml`: immutable once written;
//! - `index.json`: every image with its references and the sha256 of its objects.
//!
//! Objects are written first (create-only), the index last, with optimistic concurrency
//! (ETag `If-Match`, or create-only for the first index), retried on conflict. So the index
//! never names an object that is not fully there, and concurrent publishers lose no entry.

pub mod azure;
pub mod index;
pub mod local;
pub mod store;

use crate::record::{Record, split_build_name};
use crate::render::{self, TemplateOptions};
use index::{Filter, Index, IndexEntry, ObjectRef};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;
use store::{PutMode, RetryPolicy, Store, StoreError, Versioned};

pub const INDEX_KEY: &str = "index.json";
/// Index writes lost to another publisher are retried this many times.
const MAX_INDEX_ROUNDS: u32 = 200;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog {catalog}: {source}")]
    Store { catalog: String, source: StoreError },
    /// The same gallery image version was published before with different content.
    #[error(
        "catalog {catalog}: image `{id}` is already published with different content ({detail}); a gallery image version is immutable, publish a new version instead"
    )]
    Conflict {
        catalog: String,
        id: String,
        detail: String,
    },
    #[error("catalog {catalog}: {problem}")]
    Invalid { catalog: String, problem: String },
    #[error(transparent)]
    Render(#[from] crate::Error),
}

/// What a publish did, per image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Published(String),
    Unchanged(String),
}

pub struct Catalog<S> {
    store: S,
    retry: RetryPolicy,
    template: TemplateOptions,
}

/// The record without what varies between two parses of the same build (where it was read).
fn identity(record: &Record) -> serde_json::Value {
    let mut v = serde_json::to_value(record).expect("records serialise");
    if let Some(o) = v.as_object_mut() {
        o.remove("provenance");
    }
    v
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The catalog id of an image: readable parts, and a hash of the full Azure id so that equal
/// gallery names in different subscriptions stay apart.
pub fn image_id(record: &Record) -> Option<String> {
    let (readable, full) = match (&record.gallery_image, &record.managed_image) {
        (Some(g), _) => (
            format!("{}-{}", g.image_definition, g.version),
            g.id.to_ascii_lowercase(),
        ),
        (None, Some(m)) => (m.name.clone(), m.id.to_ascii_lowercase()),
        _ => return None,
    };
    let name = render::template_name(&readable, "");
    Some(format!(
        "{}-{:08x}",
        name.trim_end_matches('-'),
        crate::stable_hash(&full) as u32
    ))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

struct Prepared {
    entry: IndexEntry,
    record_bytes: Vec<u8>,
    template_bytes: Vec<u8>,
    identity: serde_json::Value,
}

impl<S: Store> Catalog<S> {
    pub fn new(store: S, template: TemplateOptions) -> Self {
        Catalog {
            store,
            retry: RetryPolicy::default(),
            template,
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn describe(&self) -> String {
        self.store.describe()
    }

    fn store_error(&self, source: StoreError) -> CatalogError {
        CatalogError::Store {
            catalog: self.describe(),
            source,
        }
    }

    fn prepare(&self, record: &Record) -> Result<Prepared, CatalogError> {
        let id = image_id(record).ok_or_else(|| CatalogError::Invalid {
            catalog: self.describe(),
            problem: format!("`{}` published no gallery image version or managed image, which is what the catalog holds", record.build),
        })?;
        let template = render::new_template(record, None, &self.template)?;
        let template_bytes = render::yaml::to_stream(&[template]).into_bytes();
        let record_bytes = serde_json::to_vec_pretty(record).expect("records serialise");
        let g = record.gallery_image.as_ref();
        let distro = record
            .custom_data
            .get("build_name")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| {
                Some(
                    split_build_name(&record.build)
                        .1
                        .trim_start_matches("sig-")
                        .to_string(),
                )
            });
        let mut objects = BTreeMap::new();
        objects.insert(
            "record".to_string(),
            ObjectRef {
                key: format!("images/{id}/record.json"),
                sha256: sha256(&record_bytes),
            },
        );
        objects.insert(
            "template".to_string(),
            ObjectRef {
                key: format!("images/{id}/template.yaml"),
                sha256: sha256(&template_bytes),
            },
        );
        Ok(Prepared {
            entry: IndexEntry {
                id,
                build: record.build.clone(),
                kubernetes_version: record.kubernetes_version.clone(),
                os_type: record.os_type.clone(),
                distro,
                image_definition: g.map(|g| g.image_definition.clone()),
                gallery: g.map(|g| g.gallery.clone()),
                gallery_image_version: g.map(|g| g.version.clone()),
                gallery_image_version_id: g.map(|g| g.id.clone()),
                managed_image_id: record.managed_image.as_ref().map(|m| m.id.clone()),
                published_at: now_rfc3339(),
                objects,
            },
            record_bytes,
            template_bytes,
            identity: identity(record),
        })
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>, CatalogError> {
        self.retry
            .run(|| self.store.get(key))
            .await
            .map_err(|e| self.store_error(e))
    }

    /// Writes an immutable object. Already there: fine if `same` says the content is the same,
    /// and the stored bytes' hash is returned; otherwise a conflict.
    async fn put_immutable(
        &self,
        id: &str,
        key: &str,
        bytes: &[u8],
        same: impl Fn(&[u8]) -> Result<bool, String>,
    ) -> Result<String, CatalogError> {
        match self
            .retry
            .run(|| self.store.put(key, bytes.to_vec(), PutMode::Create))
            .await
        {
            Ok(_) => Ok(sha256(bytes)),
            Err(StoreError::Conflict(_)) => {
                let existing = self.get(key).await?.ok_or_else(|| {
                    self.store_error(StoreError::Transient(format!(
                        "{key} vanished after a conflicting write"
                    )))
                })?;
                match same(&existing.bytes) {
                    Ok(true) => Ok(sha256(&existing.bytes)),
                    Ok(false) => Err(CatalogError::Conflict {
                        catalog: self.describe(),
                        id: id.to_string(),
                        detail: format!("{key} differs"),
                    }),
                    Err(problem) => Err(CatalogError::Invalid {
                        catalog: self.describe(),
                        problem,
                    }),
                }
            }
            Err(e) => Err(self.store_error(e)),
        }
    }

    /// Publishes records (images only; others are the caller's to report). Objects first, then
    /// one index update for all of them.
    pub async fn publish(&self, records: &[Record]) -> Result<Vec<Outcome>, CatalogError> {
        let mut entries = Vec::new();
        for record in records.iter().filter(|r| r.has_image()) {
            let p = self.prepare(record)?;
            let id = p.entry.id.clone();
            let record_ref = p.entry.objects["record"].key.clone();
            let stored_record_sha = self
                .put_immutable(&id, &record_ref, &p.record_bytes, |existing| {
                    let existing: Record = serde_json::from_slice(existing)
                        .map_err(|e| format!("{record_ref}: not a record: {e}"))?;
                    Ok(identity(&existing) == p.identity)
                })
                .await?;
            let template_key = p.entry.objects["template"].key.clone();
            // A template already there was derived from the same record: keep it.
            let stored_template_sha = self
                .put_immutable(&id, &template_key, &p.template_bytes, |_| Ok(true))
                .await?;
            let mut entry = p.entry;
            entry.objects.get_mut("record").expect("set").sha256 = stored_record_sha;
            entry.objects.get_mut("template").expect("set").sha256 = stored_template_sha;
            entries.push(entry);
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.update_index(entries).await
    }

    async fn update_index(&self, entries: Vec<IndexEntry>) -> Result<Vec<Outcome>, CatalogError> {
        let mut delay = Duration::from_millis(5);
        for _ in 0..MAX_INDEX_ROUNDS {
            let current = self.get(INDEX_KEY).await?;
            let (mut index, mode) = match &current {
                Some(v) => (
                    self.parse_index(&v.bytes)?,
                    PutMode::IfMatch(v.etag.clone()),
                ),
                None => (Index::default(), PutMode::Create),
            };
            let mut outcomes = Vec::new();
            for entry in &entries {
                match index.images.iter().find(|e| e.id == entry.id) {
                    Some(existing)
                        if existing.objects.get("record").map(|o| &o.sha256)
                            == entry.objects.get("record").map(|o| &o.sha256) =>
                    {
                        outcomes.push(Outcome::Unchanged(entry.id.clone()));
                    }
                    Some(_) => {
                        return Err(CatalogError::Conflict {
                            catalog: self.describe(),
                            id: entry.id.clone(),
                            detail: "the index names another record".into(),
                        });
                    }
                    None => {
                        index.images.push(entry.clone());
                        outcomes.push(Outcome::Published(entry.id.clone()));
                    }
                }
            }
            if outcomes.iter().all(|o| matches!(o, Outcome::Unchanged(_))) {
                return Ok(outcomes);
            }
            let bytes = serde_json::to_vec_pretty(&index).expect("index serialises");
            match self
                .retry
                .run(|| self.store.put(INDEX_KEY, bytes.clone(), mode.clone()))
                .await
            {
                Ok(_) => return Ok(outcomes),
                Err(StoreError::Conflict(_)) => {
                    tokio::time::sleep(store::jitter(delay)).await;
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(self.store_error(e)),
            }
        }
        Err(self.store_error(StoreError::Transient(format!(
            "index still contended after {MAX_INDEX_ROUNDS} rounds"
        ))))
    }

    fn parse_index(&self, bytes: &[u8]) -> Result<Index, CatalogError> {
        let index: Index = serde_json::from_slice(bytes).map_err(|e| CatalogError::Invalid {
            catalog: self.describe(),
            problem: format!("{INDEX_KEY}:{}: {e}", e.line()),
        })?;
        if index.layout != index::LAYOUT_VERSION {
            return Err(CatalogError::Invalid {
                catalog: self.describe(),
                problem: format!(
                    "layout {} is not one this sigcat knows ({})",
                    index.layout,
                    index::LAYOUT_VERSION
                ),
            });
        }
        Ok(index)
    }

    pub async fn index(&self) -> Result<Index, CatalogError> {
        match self.get(INDEX_KEY).await? {
            Some(v) => self.parse_index(&v.bytes),
            None => Ok(Index::default()),
        }
    }

    pub async fn list(&self, filter: &Filter) -> Result<Vec<IndexEntry>, CatalogError> {
        let mut entries: Vec<IndexEntry> = self
            .index()
            .await?
            .images
            .into_iter()
            .filter(|e| filter.matches(e))
            .collect();
        entries.sort_by(|a, b| index::newer(b, a));
        Ok(entries)
    }

    pub async fn latest(&self, filter: &Filter) -> Result<Option<IndexEntry>, CatalogError> {
        Ok(self.list(filter).await?.into_iter().next())
    }

    /// An object of an entry (`record` or `template`), checked against the index's sha256.
    pub async fn object(&self, entry: &IndexEntry, which: &str) -> Result<Vec<u8>, CatalogError> {
        let r = entry
            .objects
            .get(which)
            .ok_or_else(|| CatalogError::Invalid {
                catalog: self.describe(),
                problem: format!("image {} has no {which}", entry.id),
            })?;
        let v = self
            .get(&r.key)
            .await?
            .ok_or_else(|| CatalogError::Invalid {
                catalog: self.describe(),
                problem: format!("{} is named in the index but missing", r.key),
            })?;
        if sha256(&v.bytes) != r.sha256 {
            return Err(CatalogError::Invalid {
                catalog: self.describe(),
                problem: format!("{} does not match its sha256 in the index", r.key),
            });
        }
        Ok(v.bytes)
    }
}

/// Any backend, chosen at run time from the catalog location.
#[derive(Clone)]
pub enum AnyStore {
    Local(local::LocalStore),
    Azure(Box<azure::AzureStore>),
}

impl Store for AnyStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        match self {
            AnyStore::Local(s) => s.get(key).await,
            AnyStore::Azure(s) => s.get(key).await,
        }
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        match self {
            AnyStore::Local(s) => s.put(key, bytes, mode).await,
            AnyStore::Azure(s) => s.put(key, bytes, mode).await,
        }
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            AnyStore::Local(s) => s.list(prefix).await,
            AnyStore::Azure(s) => s.list(prefix).await,
        }
    }
    fn describe(&self) -> String {
        match self {
            AnyStore::Local(s) => s.describe(),
            AnyStore::Azure(s) => s.describe(),
        }
    }
}

/// The catalog location when none is given: `$SIGCAT_CATALOG`, else
/// `$XDG_DATA_HOME/sigcat/catalog`, else `~/.local/share/sigcat/catalog`.
pub fn default_location() -> String {
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    env("SIGCAT_CATALOG")
        .or_else(|| env("XDG_DATA_HOME").map(|d| format!("{d}/sigcat/catalog")))
        .or_else(|| env("HOME").map(|h| format!("{h}/.local/share/sigcat/catalog")))
        .unwrap_or_else(|| "sigcat-catalog".into())
}

/// Opens a store from a catalog location: a URL (`azblob://`, `http(s)://`) or a directory.
pub fn open_store(location: &str) -> Result<AnyStore, String> {
    if location.starts_with("azblob://")
        || location.starts_with("https://")
        || location.starts_with("http://")
    {
        let loc = azure::AzureLocation::parse(location)?;
        return Ok(AnyStore::Azure(Box::new(azure::AzureStore::from_env(loc)?)));
    }
    let dir = location.strip_prefix("file://").unwrap_or(location);
    Ok(AnyStore::Local(local::LocalStore::new(dir)))
}
