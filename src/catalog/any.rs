//! The store factory: a catalog location (a directory or a URL) becomes a backend.

#[cfg(feature = "azure")]
use super::azure;
use super::local;
use super::settings::{self, Location, SettingsError};
use super::store::{Page, PutMode, Store, StoreError, Versioned};

/// Any backend, chosen at run time from the catalog location.
#[derive(Clone)]
pub enum AnyStore {
    /// A directory.
    Local(local::LocalStore),
    /// An Azure Blob Storage container (or Azurite).
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
    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page, StoreError> {
        match self {
            AnyStore::Local(s) => s.list_page(prefix, after, max).await,
            #[cfg(feature = "azure")]
            AnyStore::Azure(s) => s.list_page(prefix, after, max).await,
        }
    }
    async fn get_at_most(&self, key: &str, max: usize) -> Result<Option<Versioned>, StoreError> {
        match self {
            AnyStore::Local(s) => s.get_at_most(key, max).await,
            #[cfg(feature = "azure")]
            AnyStore::Azure(s) => s.get_at_most(key, max).await,
        }
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            AnyStore::Local(s) => s.delete(key).await,
            #[cfg(feature = "azure")]
            AnyStore::Azure(s) => s.delete(key).await,
        }
    }
    async fn exists(&self) -> Result<bool, StoreError> {
        match self {
            AnyStore::Local(s) => s.exists().await,
            #[cfg(feature = "azure")]
            AnyStore::Azure(s) => s.exists().await,
        }
    }
    fn identity(&self) -> String {
        match self {
            AnyStore::Local(s) => s.identity(),
            #[cfg(feature = "azure")]
            AnyStore::Azure(s) => s.identity(),
        }
    }
    fn root_noun(&self) -> &'static str {
        match self {
            AnyStore::Local(s) => s.root_noun(),
            #[cfg(feature = "azure")]
            AnyStore::Azure(s) => s.root_noun(),
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
