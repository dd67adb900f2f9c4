//! The catalog's plumbing: every storage request under one retry policy, and the
//! content-named objects checked against their sha256 on every read. The protocols
//! ([`super::publish`], [`super::yank`], [`super::query`], [`super::rebuild`]) are built on it.

use super::index::{self, Index, ObjectRef};
use super::objects::{self, sha256};
use super::store::{Op, PutMode, Store, StoreError, Versioned};
use super::{Catalog, CatalogError, Current, INDEX_KEY};

impl<S: Store> Catalog<S> {
    pub(crate) fn storage(&self, source: StoreError) -> CatalogError {
        CatalogError::Storage {
            catalog: self.describe(),
            source,
        }
    }

    pub(crate) fn corrupt(&self, key: &str, problem: impl Into<String>) -> CatalogError {
        CatalogError::Corrupt {
            catalog: self.describe(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Versioned>, CatalogError> {
        self.retry
            .run_until(self.stop.as_ref(), || self.store.get(key))
            .await
            .map_err(|e| self.storage(e.about(Op::Read, key)))
    }

    pub(crate) async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, CatalogError> {
        self.retry
            .run_until(self.stop.as_ref(), || self.store.list(prefix))
            .await
            .map_err(|e| self.storage(e.about(Op::List, prefix)))
    }

    pub(crate) async fn put(
        &self,
        key: &str,
        bytes: &[u8],
        mode: &PutMode,
    ) -> Result<(), StoreError> {
        self.retry
            .run_until(self.stop.as_ref(), || {
                self.store.put(key, bytes.to_vec(), mode.clone())
            })
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
}
