//! Reading the catalog: the index, the images that match a filter (newest first), the latest
//! one, and an image's objects.

use super::index::{self, Filter, Index, IndexEntry};
use super::store::Store;
use super::{Catalog, CatalogError, INDEX_KEY};

impl<S: Store> Catalog<S> {
    /// The index.
    pub async fn index(&self) -> Result<Index, CatalogError> {
        Ok(self.current().await?.index)
    }

    /// The images that match, newest first.
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
