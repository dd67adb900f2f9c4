//! An in-memory backend: the storage trait's semantics without a disk or a network, for the
//! unit tests of the catalog's publish protocol and the watcher's scheduling (and for library
//! users' own tests). Clones share the same objects, like clients of one container.

use super::store::{Page, PutMode, Store, StoreError, Versioned};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Each key's bytes and the version they were written at (their ETag).
type Objects = BTreeMap<String, (Vec<u8>, u64)>;

/// A catalog in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<Objects>>,
    next_version: Arc<Mutex<u64>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Every key, sorted: what a test compares.
    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }

    /// Replaces an object behind the catalog's back (a test plants corruption or a newer
    /// writer's data).
    pub fn overwrite(&self, key: &str, bytes: Vec<u8>) {
        let version = self.bump();
        self.objects
            .lock()
            .unwrap()
            .insert(key.to_string(), (bytes, version));
    }

    /// An object's bytes, read synchronously (for tests that poll).
    pub fn read(&self, key: &str) -> Option<Vec<u8>> {
        self.objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(b, _)| b.clone())
    }

    /// Every entry of the catalog in this store, read synchronously through its root,
    /// sections and shards (for tests that poll; no checks).
    pub fn entries(&self) -> Vec<super::index::IndexEntry> {
        let Some(root) = self
            .read(super::INDEX_KEY)
            .and_then(|b| serde_json::from_slice::<super::index::Root>(&b).ok())
        else {
            return Vec::new();
        };
        root.sections
            .values()
            .filter_map(|s| self.read(&s.key))
            .filter_map(|b| serde_json::from_slice::<super::index::Section>(&b).ok())
            .flat_map(|s| s.shards.into_values())
            .filter_map(|s| self.read(&s.key))
            .filter_map(|b| serde_json::from_slice::<super::index::Shard>(&b).ok())
            .flat_map(|s| s.images)
            .collect()
    }

    /// Deletes an object behind the catalog's back (a test plants a loss).
    pub fn remove(&self, key: &str) {
        self.objects.lock().unwrap().remove(key);
    }

    fn bump(&self) -> u64 {
        let mut v = self.next_version.lock().unwrap();
        *v += 1;
        *v
    }
}

fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(bytes, version)| Versioned {
                bytes: bytes.clone(),
                etag: etag(*version),
            }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        let version = self.bump();
        let mut objects = self.objects.lock().unwrap();
        let current = objects.get(key).map(|(_, v)| etag(*v));
        let allowed = match (&mode, &current) {
            (PutMode::Overwrite, _) => true,
            (PutMode::Create, None) => true,
            (PutMode::IfMatch(want), Some(have)) => want == have,
            _ => false,
        };
        if !allowed {
            return Err(StoreError::Precondition {
                key: key.to_string(),
            });
        }
        objects.insert(key.to_string(), (bytes, version));
        Ok(etag(version))
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page, StoreError> {
        use std::ops::Bound;
        let objects = self.objects.lock().unwrap();
        let start = match after {
            Some(a) => Bound::Excluded(a.to_string()),
            None => Bound::Included(prefix.to_string()),
        };
        let mut keys: Vec<String> = objects
            .range::<String, _>((start, Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .take(max.max(1) + 1)
            .cloned()
            .collect();
        let next = if keys.len() > max.max(1) {
            keys.pop();
            keys.last().cloned()
        } else {
            None
        };
        Ok(Page { keys, next })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }

    async fn exists(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-memory store keeps the same promises as the real ones: the unit tests of the
    /// publish protocol and the watcher rely on it.
    #[tokio::test]
    async fn the_memory_store_passes_the_conformance_suite() {
        super::super::conformance::store_conformance(&MemoryStore::new()).await;
        let shared = MemoryStore::new();
        super::super::conformance::catalog_conformance(|| shared.clone()).await;
    }
}
