//! Records and manifests → a catalog in blob storage, and the queries that find "the image for
//! Kubernetes 1.30 on Ubuntu 24.04" later.
//!
//! Layout (version [`index::LAYOUT_VERSION`]), under the catalog's root or prefix:
//! - `images/<id>/record-<hash>.json`, `images/<id>/template-<hash>.yaml`: immutable, named by
//!   their content;
//! - `index.json`: every image, pointing at its newest record revision and its template, with
//!   the sha256 of each.
//!
//! Objects are written first (create-only), the index last, with optimistic concurrency
//! (ETag `If-Match`, or create-only for the first index), retried after a backoff when another
//! publisher won. So the index never names an object that is not fully there, and concurrent
//! publishers lose no entry. Every storage request runs under one [`RetryConfig`].
//!
//! Errors say whose fault they are: an item the catalog will not hold is refused when it is
//! prepared ([`entry::prepare`]), an item that contradicts the catalog is a per-item
//! [`Outcome::Conflict`], and only the storage ([`CatalogError::Storage`]) or the catalog's own
//! data ([`CatalogError::Corrupt`]) fail a whole call.

pub mod azure;
pub mod entry;
pub mod index;
pub mod local;
pub mod memory;
pub mod revision;
pub mod settings;
pub mod store;

use crate::record::Record;
use crate::retry::{Backoff, RetryConfig};
use entry::{Entry, Item, sha256};
use index::{Filter, Index, IndexEntry, ObjectRef};
use revision::Comparison;
use std::collections::HashMap;
use std::time::Duration;
use store::{Op, PutMode, Store, StoreError, Versioned};

pub use settings::{Location, SettingsError};

pub const INDEX_KEY: &str = "index.json";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The storage service failed, or refused the credentials.
    #[error("catalog {catalog}")]
    Storage {
        catalog: String,
        #[source]
        source: StoreError,
    },
    /// The catalog's own data is wrong: an unreadable index, an object missing or not matching
    /// its hash, a layout this sigcat does not know.
    #[error("catalog {catalog}: {key}: {problem}")]
    Corrupt {
        catalog: String,
        key: String,
        problem: String,
    },
}

/// A published image that another publish contradicts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{item}: image `{id}` is already in the catalog with {field} `{stored}`, not `{offered}`; a gallery image version is immutable, publish a new version instead"
)]
pub struct Conflict {
    pub item: Item,
    pub id: String,
    pub field: String,
    pub stored: String,
    pub offered: String,
}

/// What publishing did with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// New in the catalog.
    Published { id: String },
    /// Already there; the offered record added these fields (a new revision).
    Updated { id: String, added: Vec<String> },
    /// Already there, and the offered record says nothing new.
    Unchanged { id: String },
    /// Already there with different content: nothing changed.
    Conflict(Conflict),
}

impl Outcome {
    pub fn id(&self) -> &str {
        match self {
            Outcome::Published { id } | Outcome::Updated { id, .. } | Outcome::Unchanged { id } => {
                id
            }
            Outcome::Conflict(c) => &c.id,
        }
    }

    /// Whether the index changed for it.
    pub fn wrote(&self) -> bool {
        matches!(self, Outcome::Published { .. } | Outcome::Updated { .. })
    }
}

pub struct Catalog<S> {
    store: S,
    retry: RetryConfig,
    /// How long a publisher keeps trying when other publishers keep winning the index.
    contention_timeout: Duration,
}

impl<S: Store> Catalog<S> {
    pub fn new(store: S) -> Self {
        Catalog {
            store,
            retry: RetryConfig::default(),
            contention_timeout: Duration::from_secs(120),
        }
    }

    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    pub fn describe(&self) -> String {
        self.store.describe()
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    fn storage(&self, source: StoreError) -> CatalogError {
        CatalogError::Storage {
            catalog: self.describe(),
            source,
        }
    }

    fn corrupt(&self, key: &str, problem: impl Into<String>) -> CatalogError {
        CatalogError::Corrupt {
            catalog: self.describe(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>, CatalogError> {
        self.retry
            .run(|| self.store.get(key))
            .await
            .map_err(|e| self.storage(e.about(Op::Read, key)))
    }

    async fn put(&self, key: &str, bytes: &[u8], mode: &PutMode) -> Result<(), StoreError> {
        self.retry
            .run(|| self.store.put(key, bytes.to_vec(), mode.clone()))
            .await
            .map(drop)
            .map_err(|e| e.about(Op::Write, key))
    }

    /// Writes an immutable, content-named object. Already there is fine if it is the same
    /// content (another publisher wrote it); anything else there is corruption.
    async fn put_object(&self, object: &ObjectRef, bytes: &[u8]) -> Result<(), CatalogError> {
        debug_assert_eq!(object.sha256, sha256(bytes));
        match self.put(&object.key, bytes, &PutMode::Create).await {
            Ok(()) => Ok(()),
            // Same key, so the same content, unless it was tampered with: read_object checks.
            Err(StoreError::Precondition { .. }) => self.read_object(object).await.map(drop),
            Err(e) => Err(self.storage(e)),
        }
    }

    /// An object, checked against its hash.
    async fn read_object(&self, object: &ObjectRef) -> Result<Vec<u8>, CatalogError> {
        let v = self
            .get(&object.key)
            .await?
            .ok_or_else(|| self.corrupt(&object.key, "named in the index but missing"))?;
        if sha256(&v.bytes) != object.sha256 {
            return Err(self.corrupt(
                &object.key,
                format!(
                    "its content does not match its sha256 in the index ({})",
                    object.sha256
                ),
            ));
        }
        Ok(v.bytes)
    }

    /// Publishes prepared entries: their objects first, then one index update for all of them.
    /// Returns one outcome per entry, in order; an entry's conflict does not stop the others.
    pub async fn publish(&self, entries: &[Entry]) -> Result<Vec<Outcome>, CatalogError> {
        for e in entries {
            self.put_object(&e.record_ref(), &e.record_bytes).await?;
            self.put_object(&e.template_ref(), &e.template_bytes)
                .await?;
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut backoff = Backoff::new(self.retry.backoff);
        let deadline = tokio::time::Instant::now() + self.contention_timeout;
        // Stored records by hash: compared once, whatever the number of rounds.
        let mut known: HashMap<String, serde_json::Value> = HashMap::new();
        loop {
            let current = self.get(INDEX_KEY).await?;
            let (mut index, mode) = match &current {
                Some(v) => (
                    self.parse_index(&v.bytes)?,
                    PutMode::IfMatch(v.etag.clone()),
                ),
                None => (Index::default(), PutMode::Create),
            };
            let mut outcomes = Vec::new();
            for e in entries {
                outcomes.push(self.merge_into(&mut index, e, &mut known).await?);
            }
            if !outcomes.iter().any(Outcome::wrote) {
                return Ok(outcomes);
            }
            index.layout = index::LAYOUT_VERSION;
            let bytes = serde_json::to_vec_pretty(&index).expect("the index serialises");
            match self.put(INDEX_KEY, &bytes, &mode).await {
                Ok(()) => return Ok(outcomes),
                Err(StoreError::Precondition { .. }) => {
                    let delay = backoff.next_delay();
                    if tokio::time::Instant::now() + delay > deadline {
                        return Err(self.storage(StoreError::Unavailable {
                            op: Op::Write,
                            key: INDEX_KEY.into(),
                            source: format!(
                                "other publishers kept changing it for {:?}",
                                self.contention_timeout
                            )
                            .into(),
                        }));
                    }
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(self.storage(e)),
            }
        }
    }

    /// Puts one entry into `index` (in memory) and says what that did.
    async fn merge_into(
        &self,
        index: &mut Index,
        e: &Entry,
        known: &mut HashMap<String, serde_json::Value>,
    ) -> Result<Outcome, CatalogError> {
        let id = e.id.clone();
        let offered_ref = e.record_ref();
        let Some(pos) = index.images.iter().position(|x| x.id == e.id) else {
            index.images.push(e.index_entry(entry::now_rfc3339()));
            known.insert(
                offered_ref.sha256,
                serde_json::to_value(&e.record).expect("records serialise"),
            );
            return Ok(Outcome::Published { id });
        };
        let stored_ref = match index.images[pos].objects.get("record") {
            Some(r) => r.clone(),
            None => return Err(self.corrupt(INDEX_KEY, format!("image {id} has no record"))),
        };
        if stored_ref.sha256 == offered_ref.sha256 {
            return Ok(Outcome::Unchanged { id });
        }
        if !known.contains_key(&stored_ref.sha256) {
            let bytes = self.read_object(&stored_ref).await?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|err| self.corrupt(&stored_ref.key, format!("not a record: {err}")))?;
            known.insert(stored_ref.sha256.clone(), value);
        }
        let offered = serde_json::to_value(&e.record).expect("records serialise");
        match revision::compare(&known[&stored_ref.sha256], &offered) {
            Comparison::Known => Ok(Outcome::Unchanged { id }),
            Comparison::Disagrees {
                field,
                stored,
                offered,
            } => Ok(Outcome::Conflict(Conflict {
                item: e.item.clone(),
                id,
                field,
                stored,
                offered,
            })),
            Comparison::Adds { merged, added } => {
                let record: Record = serde_json::from_value(merged.clone()).map_err(|err| {
                    self.corrupt(&stored_ref.key, format!("cannot be merged: {err}"))
                })?;
                let bytes = entry::record_bytes(&record);
                let new_ref = ObjectRef {
                    key: entry::object_key(&id, "record", &bytes),
                    sha256: sha256(&bytes),
                };
                self.put_object(&new_ref, &bytes).await?;
                known.insert(new_ref.sha256.clone(), merged);
                let old = &index.images[pos];
                let mut objects = old.objects.clone();
                objects.insert("record".into(), new_ref);
                let mut updated = entry::describe(&id, &record, objects, old.published_at.clone());
                updated.updated_at = Some(entry::now_rfc3339());
                updated.extra = old.extra.clone();
                index.images[pos] = updated;
                Ok(Outcome::Updated { id, added })
            }
        }
    }

    fn parse_index(&self, bytes: &[u8]) -> Result<Index, CatalogError> {
        let index: Index = serde_json::from_slice(bytes).map_err(|e| {
            self.corrupt(
                INDEX_KEY,
                format!("line {}: {e}; expected sigcat's index", e.line()),
            )
        })?;
        if !index::KNOWN_LAYOUTS.contains(&index.layout) {
            return Err(self.corrupt(
                INDEX_KEY,
                format!(
                    "layout {} was written by a newer sigcat (this one reads layouts {:?}); upgrade sigcat",
                    index.layout,
                    index::KNOWN_LAYOUTS
                ),
            ));
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
            .ok_or_else(|| self.corrupt(INDEX_KEY, format!("image {} has no {which}", entry.id)))?;
        self.read_object(r).await
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
    settings::env_var("SIGCAT_CATALOG")
        .or_else(|| settings::env_var("XDG_DATA_HOME").map(|d| format!("{d}/sigcat/catalog")))
        .or_else(|| settings::env_var("HOME").map(|h| format!("{h}/.local/share/sigcat/catalog")))
        .unwrap_or_else(|| "sigcat-catalog".into())
}

/// Opens a store from a catalog location: a URL (`azblob://`, `http(s)://`) or a directory.
pub fn open_store(location: &str) -> Result<AnyStore, SettingsError> {
    Ok(match settings::parse_location(location)? {
        Location::Local(dir) => AnyStore::Local(local::LocalStore::new(dir)),
        Location::Azure(loc) => AnyStore::Azure(Box::new(azure::AzureStore::from_env(loc)?)),
    })
}

#[cfg(test)]
mod tests;
