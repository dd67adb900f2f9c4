//! The catalog's plumbing: every storage request under one retry policy (a listing retried page
//! by page, resuming where it failed), objects checked against their sha256 on every read, and
//! signatures made and checked beside the objects they sign. The protocols are built on it.

use super::index::ObjectRef;
use super::objects::{self, sha256, sig_key};
use super::store::{Op, Page, PutMode, Store, StoreError, Versioned};
use super::{Catalog, CatalogError, Distrust};

/// How many keys a listing asks for per page: Azure's maximum. Fewer pages are fewer requests,
/// and far less work on Azurite, which scans the container for every page.
const PAGE: usize = 5000;

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

    pub(crate) fn untrusted(&self, key: &str, problem: impl Into<Distrust>) -> CatalogError {
        CatalogError::Untrusted {
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

    pub(crate) async fn put(
        &self,
        key: &str,
        bytes: &[u8],
        mode: &PutMode,
    ) -> Result<String, StoreError> {
        self.retry
            .run_until(self.stop.as_ref(), || {
                self.store.put(key, bytes.to_vec(), mode.clone())
            })
            .await
            .map_err(|e| e.about(Op::Write, key))
    }

    /// One page of a listing, retried on its own: a listing of many pages that fails halfway
    /// resumes from the page that failed, never from the first.
    pub(crate) async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
    ) -> Result<Page, CatalogError> {
        self.retry
            .run_until(self.stop.as_ref(), || {
                self.store.list_page(prefix, after, PAGE)
            })
            .await
            .map_err(|e| self.storage(e.about(Op::List, prefix)))
    }

    /// Every key under a (small) prefix.
    pub(crate) async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, CatalogError> {
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.list_page(prefix, after.as_deref()).await?;
            keys.extend(page.keys);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Whether anything is under `prefix` (one small page).
    pub(crate) async fn any_under(&self, prefix: &str) -> Result<bool, CatalogError> {
        let page = self
            .retry
            .run_until(self.stop.as_ref(), || self.store.list_page(prefix, None, 1))
            .await
            .map_err(|e| self.storage(e.about(Op::List, prefix)))?;
        Ok(!page.keys.is_empty())
    }

    pub(crate) async fn store_exists(&self) -> Result<bool, CatalogError> {
        self.retry
            .run_until(self.stop.as_ref(), || self.store.exists())
            .await
            .map_err(|e| self.storage(e.about(Op::Read, "")))
    }

    /// Writes an immutable, content-named object. Already there is fine if it is the same
    /// content (another publisher wrote it). Anything else at its key (a file planted where
    /// an image's next object goes, or one damaged) cannot be what belongs there, since the
    /// key is its content's hash: it is replaced, and said, rather than blocking the image
    /// for good.
    pub(crate) async fn put_object(
        &self,
        object: &ObjectRef,
        bytes: &[u8],
    ) -> Result<(), CatalogError> {
        debug_assert_eq!(object.sha256, sha256(bytes));
        if self.recent.wrote(&object.key, &object.sha256) {
            return Ok(());
        }
        let done = self.put_object_once(object, bytes).await;
        if done.is_ok() {
            self.recent.remember_written(&object.key, &object.sha256);
        }
        done
    }

    async fn put_object_once(&self, object: &ObjectRef, bytes: &[u8]) -> Result<(), CatalogError> {
        match self.put(&object.key, bytes, &PutMode::Create).await {
            Ok(_) => Ok(()),
            Err(StoreError::Precondition { .. }) => {
                let Some(there) = self.get(&object.key).await? else {
                    return self
                        .put(&object.key, bytes, &PutMode::Create)
                        .await
                        .map(drop)
                        .map_err(|e| self.storage(e));
                };
                if sha256(&there.bytes) == object.sha256 {
                    return Ok(());
                }
                tracing::warn!(
                    "{}: what was there does not match its content-named key (planted or damaged); replaced with what belongs there",
                    object.key
                );
                match self
                    .put(&object.key, bytes, &PutMode::IfMatch(there.etag))
                    .await
                {
                    Ok(_) => Ok(()),
                    // Someone replaced it meanwhile: it must now be right, or read says not.
                    Err(StoreError::Precondition { .. }) => {
                        self.read_object(object).await.map(drop)
                    }
                    Err(e) => Err(self.storage(e)),
                }
            }
            Err(e) => Err(self.storage(e)),
        }
    }

    /// Writes an object and, with a signing key, its signature first (a reader never sees a
    /// signed object without its signature). A signature already there that no trusted key
    /// made (planted by someone who guessed the content-named key) is replaced.
    pub(crate) async fn put_signed(
        &self,
        object: &ObjectRef,
        bytes: &[u8],
    ) -> Result<(), CatalogError> {
        // Written (with its signature) a moment ago, in a round another writer won.
        if self.recent.wrote(&object.key, &object.sha256) {
            return Ok(());
        }
        if let Some(signer) = &self.signer {
            let key = sig_key(&object.key);
            let sig = signer.sign(bytes);
            match self.put(&key, sig.as_bytes(), &PutMode::Create).await {
                Ok(_) => {}
                Err(StoreError::Precondition { .. }) => {
                    if self.check_signature(&object.key, bytes).await.is_err() {
                        self.put(&key, sig.as_bytes(), &PutMode::Overwrite)
                            .await
                            .map_err(|e| self.storage(e))?;
                    }
                }
                Err(e) => return Err(self.storage(e)),
            }
        }
        self.put_object(object, bytes).await
    }

    /// An object, checked against its hash.
    pub(crate) async fn read_object(&self, object: &ObjectRef) -> Result<Vec<u8>, CatalogError> {
        if let Some(bytes) = self.recent.read(&object.key, &object.sha256) {
            return Ok(bytes.to_vec());
        }
        let v = self
            .get(&object.key)
            .await?
            .ok_or_else(|| self.corrupt(&object.key, "named in the index but missing"))?;
        if sha256(&v.bytes) != object.sha256 {
            return Err(self.corrupt(
                &object.key,
                format!(
                    "its content does not match the sha256 it is named by ({})",
                    object.sha256
                ),
            ));
        }
        self.recent
            .remember_read(&object.key, &object.sha256, &v.bytes);
        Ok(v.bytes)
    }

    /// Checks the detached signature of an object (`KEY.sig`) against the trusted keys: the
    /// principals that signed it, or why it is not trusted. `Ok(None)`: signatures are not
    /// checked (no trust file, no signing key).
    pub(crate) async fn check_signature(
        &self,
        key: &str,
        bytes: &[u8],
    ) -> Result<Option<String>, CatalogError> {
        let Some(trust) = self.trusted_keys() else {
            return Ok(None);
        };
        let sig = self.get(&sig_key(key)).await?.map(|v| v.bytes);
        trust
            .verify(bytes, sig.as_deref())
            .map(Some)
            .map_err(|problem| self.untrusted(key, problem))
    }

    /// The signature of a root: the one made for exactly these bytes, else the convenience
    /// copy (what `ssh-keygen -Y sign` users write).
    pub(crate) async fn root_signature(
        &self,
        root: &[u8],
    ) -> Result<Option<Vec<u8>>, CatalogError> {
        // Both at once: an unsigned catalog has neither, and a writer that lost the root to
        // another reads them on the way of every retry.
        let own_key = objects::signature_key(&sha256(root));
        let (own, copy) =
            futures::join!(self.get(&own_key), self.get(objects::INDEX_SIGNATURE_KEY));
        if let Some(v) = own? {
            return Ok(Some(v.bytes));
        }
        Ok(copy?.map(|v| v.bytes))
    }

    /// Writes a root if the current one is still at the version read (`mode`), signed first
    /// when there is a signing key. `Ok(false)`: another writer won; read again.
    pub(crate) async fn put_root(
        &self,
        bytes: &[u8],
        mode: &PutMode,
    ) -> Result<bool, CatalogError> {
        let signature = self.signer.as_ref().map(|s| s.sign(bytes));
        if let Some(sig) = &signature {
            // Before the root: a reader never sees a root whose signature is not there yet.
            match self
                .put(
                    &objects::signature_key(&sha256(bytes)),
                    sig.as_bytes(),
                    &PutMode::Create,
                )
                .await
            {
                Ok(_) | Err(StoreError::Precondition { .. }) => {}
                Err(e) => return Err(self.storage(e)),
            }
        }
        match self.put(objects::INDEX_KEY, bytes, mode).await {
            Ok(_) => {}
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
}
