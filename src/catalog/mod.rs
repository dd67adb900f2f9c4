//! Records and manifests → a catalog in blob storage, and the queries that find "the image for
//! Kubernetes 1.30 on Ubuntu 24.04" later.
//!
//! Layout ([`index::LAYOUT_VERSION`], the objects in [`objects`]): immutable objects named by
//! their content, and `index.json`, derived from them ([`rebuild`]), pointing at each image's
//! newest record revision, template, revision object and yank state, with their sha256.
//!
//! Objects are written first (create-only), the index last, with optimistic concurrency
//! (ETag `If-Match`, or create-only for the first index), tried again after a backoff when
//! another publisher won. So the index never names an object that is not fully there, and
//! concurrent publishers lose no entry. Every storage request runs under one [`RetryConfig`].
//! With a signing key, each index is signed before it is written ([`signing`]); with trusted
//! keys, every index read is checked first.
//!
//! Errors say whose fault they are: an item the catalog will not hold is refused when it is
//! prepared ([`entry::prepare`]), an item that contradicts the catalog is a per-item
//! [`Outcome::Conflict`], and only the storage ([`CatalogError::Storage`]), the catalog's own
//! data ([`CatalogError::Corrupt`]) or its signature ([`CatalogError::Untrusted`]) fail a call.

#[cfg(feature = "azure")]
pub mod azure;
pub mod entry;
pub mod index;
pub mod local;
pub mod memory;
pub mod objects;
pub mod rebuild;
pub mod revision;
pub mod settings;
pub mod signing;
pub mod store;

use crate::record::Record;
use crate::retry::{Backoff, RetryConfig};
use entry::{Entry, Item};
use index::{Filter, Index, IndexEntry, ObjectRef, YankState};
use objects::{Kind, YankEvent, sha256};
use revision::Comparison;
use std::collections::HashMap;
use std::time::Duration;
use store::{Op, PutMode, Store, StoreError, Versioned};

pub use objects::INDEX_KEY;
pub use settings::{Location, SettingsError};

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
    /// The index is not signed by a trusted key: nothing in it is used.
    #[error("catalog {catalog}: {INDEX_KEY} is not trusted: {problem}")]
    Untrusted {
        catalog: String,
        problem: signing::Untrusted,
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

/// What a yank or unyank did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YankOutcome {
    Done(YankState),
    /// The image was already in that state: nothing written.
    AlreadySo,
    NoSuchImage,
}

pub struct Catalog<S> {
    store: S,
    retry: RetryConfig,
    /// How long a writer keeps trying when other writers keep winning the index.
    contention_timeout: Duration,
    signer: Option<signing::Signer>,
    trust: Option<signing::Trust>,
}

/// The index as read: parsed, with the version a conditional write must name.
pub(crate) struct Current {
    pub index: Index,
    pub mode: PutMode,
}

impl<S: Store> Catalog<S> {
    pub fn new(store: S) -> Self {
        Catalog {
            store,
            retry: RetryConfig::default(),
            contention_timeout: Duration::from_secs(120),
            signer: None,
            trust: None,
        }
    }

    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Every index this catalog writes is signed with this key.
    pub fn with_signer(mut self, signer: signing::Signer) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Every index this catalog reads must be signed by one of these keys.
    pub fn with_trust(mut self, trust: signing::Trust) -> Self {
        self.trust = Some(trust);
        self
    }

    pub fn describe(&self) -> String {
        self.store.describe()
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn trust(&self) -> Option<&signing::Trust> {
        self.trust.as_ref()
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

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Versioned>, CatalogError> {
        self.retry
            .run(|| self.store.get(key))
            .await
            .map_err(|e| self.storage(e.about(Op::Read, key)))
    }

    pub(crate) async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, CatalogError> {
        self.retry
            .run(|| self.store.list(prefix))
            .await
            .map_err(|e| self.storage(e.about(Op::List, prefix)))
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
    pub(crate) async fn put_object(
        &self,
        object: &ObjectRef,
        bytes: &[u8],
    ) -> Result<(), CatalogError> {
        debug_assert_eq!(object.sha256, sha256(bytes));
        match self.put(&object.key, bytes, &PutMode::Create).await {
            Ok(()) => Ok(()),
            // Same key, so the same content, unless it was tampered with: read_object checks.
            Err(StoreError::Precondition { .. }) => self.read_object(object).await.map(drop),
            Err(e) => Err(self.storage(e)),
        }
    }

    /// An object, checked against its hash.
    pub(crate) async fn read_object(&self, object: &ObjectRef) -> Result<Vec<u8>, CatalogError> {
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

    /// The signature of an index: the one made for exactly these bytes, else the convenience
    /// copy (what `ssh-keygen -Y sign` users write).
    pub(crate) async fn signature_of(&self, index: &[u8]) -> Result<Option<Vec<u8>>, CatalogError> {
        if let Some(v) = self.get(&objects::signature_key(&sha256(index))).await? {
            return Ok(Some(v.bytes));
        }
        Ok(self
            .get(objects::INDEX_SIGNATURE_KEY)
            .await?
            .map(|v| v.bytes))
    }

    /// Reads the index: checked against the trusted keys when there are any, then parsed.
    pub(crate) async fn current(&self) -> Result<Current, CatalogError> {
        let Some(v) = self.get(INDEX_KEY).await? else {
            return Ok(Current {
                index: Index::default(),
                mode: PutMode::Create,
            });
        };
        if let Some(trust) = &self.trust {
            let signature = self.signature_of(&v.bytes).await?;
            trust
                .verify(&v.bytes, signature.as_deref())
                .map_err(|problem| CatalogError::Untrusted {
                    catalog: self.describe(),
                    problem,
                })?;
        }
        Ok(Current {
            index: self.parse_index(&v.bytes)?,
            mode: PutMode::IfMatch(v.etag),
        })
    }

    /// Writes a new index if it is still at the version read (`mode`), signed first when
    /// there is a signing key. `Ok(false)`: another writer won; read again.
    pub(crate) async fn write_index(
        &self,
        index: &mut Index,
        mode: &PutMode,
    ) -> Result<bool, CatalogError> {
        index.layout = index::LAYOUT_VERSION;
        let bytes = serde_json::to_vec_pretty(&index).expect("the index serialises");
        let signature = self.signer.as_ref().map(|s| s.sign(&bytes));
        if let Some(sig) = &signature {
            // Before the index: a reader never sees an index whose signature is not there yet.
            match self
                .put(
                    &objects::signature_key(&sha256(&bytes)),
                    sig.as_bytes(),
                    &PutMode::Create,
                )
                .await
            {
                Ok(()) | Err(StoreError::Precondition { .. }) => {}
                Err(e) => return Err(self.storage(e)),
            }
        }
        match self.put(INDEX_KEY, &bytes, mode).await {
            Ok(()) => {}
            Err(StoreError::Precondition { .. }) => return Ok(false),
            Err(e) => return Err(self.storage(e)),
        }
        if let Some(sig) = signature
            && let Err(e) = self
                .put(
                    objects::INDEX_SIGNATURE_KEY,
                    sig.as_bytes(),
                    &PutMode::Overwrite,
                )
                .await
        {
            // Only a convenience copy for ssh-keygen; sigcat reads the content-named one.
            tracing::warn!(
                "cannot update {}: {}",
                objects::INDEX_SIGNATURE_KEY,
                crate::error::chain(&e)
            );
        }
        Ok(true)
    }

    /// How long, and how patiently, a writer keeps trying when other writers keep winning.
    pub(crate) fn contention(&self) -> Contention {
        Contention {
            backoff: Backoff::new(self.retry.backoff),
            deadline: tokio::time::Instant::now() + self.contention_timeout,
            timeout: self.contention_timeout,
        }
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
        // One time for every try: a revision object written in a lost round is the same one
        // the next round writes.
        let at = entry::now_rfc3339();
        // Stored records by hash: compared once, whatever the number of rounds.
        let mut known: HashMap<String, serde_json::Value> = HashMap::new();
        let mut contention = self.contention();
        loop {
            let Current { mut index, mode } = self.current().await?;
            let mut outcomes = Vec::new();
            for e in entries {
                outcomes.push(self.merge_into(&mut index, e, &at, &mut known).await?);
            }
            if !outcomes.iter().any(Outcome::wrote) || self.write_index(&mut index, &mode).await? {
                return Ok(outcomes);
            }
            contention.lost(self).await?;
        }
    }

    /// Puts one entry into `index` (in memory) and says what that did.
    async fn merge_into(
        &self,
        index: &mut Index,
        e: &Entry,
        at: &str,
        known: &mut HashMap<String, serde_json::Value>,
    ) -> Result<Outcome, CatalogError> {
        let id = e.id.clone();
        let offered_ref = e.record_ref();
        let Some(pos) = index.images.iter().position(|x| x.id == e.id) else {
            let (revision, bytes) = entry::revision(&id, &offered_ref, &e.template_ref(), at);
            self.put_object(&revision, &bytes).await?;
            index.images.push(e.index_entry(revision, at.to_string()));
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
                let new_ref = objects::object_ref(&id, Kind::Record, &bytes);
                self.put_object(&new_ref, &bytes).await?;
                known.insert(new_ref.sha256.clone(), merged);
                let old = index.images[pos].clone();
                let template = old.objects.get("template").cloned().ok_or_else(|| {
                    self.corrupt(INDEX_KEY, format!("image {id} has no template"))
                })?;
                let (revision, rev_bytes) = entry::revision(&id, &new_ref, &template, at);
                self.put_object(&revision, &rev_bytes).await?;
                let mut objects = old.objects.clone();
                objects.insert("record".into(), new_ref);
                objects.insert("revision".into(), revision);
                let mut updated = entry::describe(&id, &record, objects, old.published_at.clone());
                updated.updated_at = Some(at.to_string());
                updated.yank = old.yank;
                updated.extra = old.extra;
                index.images[pos] = updated;
                Ok(Outcome::Updated { id, added })
            }
        }
    }

    /// Takes an image out of service (`yanked`), or puts it back: an immutable event object,
    /// chained to the image's previous one, then the index.
    pub async fn yank(
        &self,
        id: &str,
        yanked: bool,
        reason: Option<&str>,
    ) -> Result<YankOutcome, CatalogError> {
        let at = entry::now_rfc3339();
        let reason = reason.map(|r| crate::redact::redact_secrets(r).into_owned());
        let mut contention = self.contention();
        loop {
            let Current { mut index, mode } = self.current().await?;
            let Some(entry) = index.images.iter_mut().find(|e| e.id == id) else {
                return Ok(YankOutcome::NoSuchImage);
            };
            if entry.is_yanked() == yanked {
                return Ok(YankOutcome::AlreadySo);
            }
            let event = YankEvent {
                id: id.to_string(),
                yanked,
                reason: reason.clone(),
                at: at.clone(),
                previous: entry.yank.as_ref().map(|y| y.event.key.clone()),
            };
            let bytes = serde_json::to_vec_pretty(&event).expect("events serialise");
            let event_ref = objects::object_ref(id, Kind::Yank, &bytes);
            self.put_object(&event_ref, &bytes).await?;
            let state = YankState {
                yanked,
                reason: reason.clone(),
                at: at.clone(),
                event: event_ref,
            };
            entry.yank = Some(state.clone());
            if self.write_index(&mut index, &mode).await? {
                return Ok(YankOutcome::Done(state));
            }
            contention.lost(self).await?;
        }
    }

    pub(crate) fn parse_index(&self, bytes: &[u8]) -> Result<Index, CatalogError> {
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
        Ok(self.current().await?.index)
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

    /// The newest image that matches and is not yanked.
    pub async fn latest(&self, filter: &Filter) -> Result<Option<IndexEntry>, CatalogError> {
        let filter = Filter {
            include_yanked: false,
            ..filter.clone()
        };
        Ok(self.list(&filter).await?.into_iter().next())
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

/// A writer's patience with other writers winning the index: a jittered backoff between
/// rounds, and a deadline.
pub(crate) struct Contention {
    backoff: Backoff,
    deadline: tokio::time::Instant,
    timeout: Duration,
}

impl Contention {
    /// Another writer won this round: wait, or give up past the deadline.
    pub(crate) async fn lost<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
    ) -> Result<(), CatalogError> {
        let delay = self.backoff.next_delay();
        if tokio::time::Instant::now() + delay > self.deadline {
            return Err(catalog.storage(StoreError::Unavailable {
                op: Op::Write,
                key: INDEX_KEY.into(),
                source: format!("other writers kept changing it for {:?}", self.timeout).into(),
            }));
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// Any backend, chosen at run time from the catalog location.
#[derive(Clone)]
pub enum AnyStore {
    Local(local::LocalStore),
    #[cfg(feature = "azure")]
    Azure(Box<azure::AzureStore>),
}

impl Store for AnyStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        match self {
            AnyStore::Local(s) => s.get(key).await,
            #[cfg(feature = "azure")]
            AnyStore::Azure(s) => s.get(key).await,
        }
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        match self {
            AnyStore::Local(s) => s.put(key, bytes, mode).await,
            #[cfg(feature = "azure")]
            AnyStore::Azure(s) => s.put(key, bytes, mode).await,
        }
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            AnyStore::Local(s) => s.list(prefix).await,
            #[cfg(feature = "azure")]
            AnyStore::Azure(s) => s.list(prefix).await,
        }
    }
    fn describe(&self) -> String {
        match self {
            AnyStore::Local(s) => s.describe(),
            #[cfg(feature = "azure")]
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
        #[cfg(feature = "azure")]
        Location::Azure(loc) => AnyStore::Azure(Box::new(azure::AzureStore::from_env(loc)?)),
        #[cfg(not(feature = "azure"))]
        Location::Azure(_) => {
            return Err(SettingsError::NotBuiltIn {
                given: location.to_string(),
                feature: "azure",
            });
        }
    })
}

#[cfg(test)]
mod tests;
