//! Reading the catalog: the images that match a filter (newest first, shard by shard, reading
//! only the shards that can match), the latest one, one by id, and an image's objects. With
//! trusted keys, the image a reader acts on (`latest`, `show`) has its revision and its newest
//! event checked for their own signatures too.

use super::entry;
use super::index::{Filter, IndexEntry, Served, newer, split_shard_name};
use super::snapshot::Intent;
use super::store::Store;
use super::{Catalog, CatalogError};
use futures::StreamExt;

/// An image as a reader gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Its index entry.
    pub entry: IndexEntry,
    /// Who signed its revision, when signatures are checked.
    pub signed_by: Option<String>,
    /// Where it is served from (for the stage asked for), if anywhere: its template is the
    /// one a cluster should use.
    pub served: Option<Served>,
}

/// What the catalog holds, from its root alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// How many images.
    pub images: usize,
    /// The root's sequence (none before layout 5, or in an empty catalog).
    pub sequence: Option<u64>,
    /// When the root expires.
    pub expires: Option<String>,
    /// Who signed the root, when signatures are checked.
    pub signed_by: Option<String>,
}

impl<S: Store> Catalog<S> {
    /// What the catalog holds, from its root alone.
    pub async fn status(&self) -> Result<Status, CatalogError> {
        let view = self.read_view().await?;
        Ok(Status {
            images: view.root.image_count(),
            sequence: (!view.legacy && view.root.sequence > 0).then_some(view.root.sequence),
            expires: (!view.legacy && view.root.sequence > 0).then(|| view.root.expires.clone()),
            signed_by: view.signed_by.clone(),
        })
    }

    /// The images that match, newest first, handed to `each` a Kubernetes version at a time
    /// (so memory holds one version's shards, not the catalog). Returns how many matched.
    pub async fn list_each<E>(
        &self,
        filter: &Filter,
        mut each: impl FnMut(Vec<IndexEntry>) -> Result<(), E>,
    ) -> Result<Result<usize, E>, CatalogError> {
        let mut view = self.read_view().await?;
        let names = view
            .shard_names(
                self,
                |n, s| filter.may_match_section(n, s),
                |n, s| filter.may_match(n, s),
            )
            .await?;
        let now = entry::now_rfc3339();
        let mut matched = 0;
        let mut i = 0;
        while i < names.len() {
            let version = split_shard_name(&names[i]).0.to_string();
            let mut group_names = Vec::new();
            while i < names.len() && split_shard_name(&names[i]).0 == version {
                group_names.push(names[i].clone());
                i += 1;
            }
            // One Kubernetes version's shards (one per OS), read at once; the next version's
            // only when these are handed on.
            let mut group = Vec::new();
            // Collected first: a lazily mapped iterator held across the await would keep
            // the future from being sent to another task.
            let reads: Vec<_> = group_names
                .iter()
                .map(|name| {
                    let view = &view;
                    async move {
                        if let Some(cached) = view.cached(name) {
                            return Ok(cached.images.clone());
                        }
                        let r = view.shard_ref(name).ok_or_else(|| {
                            self.corrupt(name, "a shard its section no longer names")
                        })?;
                        Ok(self.read_shard(name, r).await?.images)
                    }
                })
                .collect();
            let shards: Vec<Result<Vec<IndexEntry>, CatalogError>> = futures::stream::iter(reads)
                .buffered(self.concurrency)
                .collect()
                .await;
            for shard in shards {
                group.extend(shard?.into_iter().filter(|e| filter.matches_at(e, &now)));
            }
            group.sort_by(|a, b| newer(b, a));
            matched += group.len();
            if !group.is_empty()
                && let Err(e) = each(group)
            {
                return Ok(Err(e));
            }
        }
        Ok(Ok(matched))
    }

    /// The images that match, newest first.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<IndexEntry>, CatalogError> {
        let mut all = Vec::new();
        self.list_each(filter, |group| {
            all.extend(group);
            Ok::<_, std::convert::Infallible>(())
        })
        .await?
        .unwrap_or_default();
        Ok(all)
    }

    /// The newest image that matches and is in service (not yanked, a location still there,
    /// not past its end of life). It reads the newest Kubernetes version's shards first and
    /// stops at the first version with a match.
    pub async fn latest(&self, filter: &Filter) -> Result<Option<Found>, CatalogError> {
        let filter = Filter {
            include_yanked: false,
            in_service: true,
            ..filter.clone()
        };
        let mut best = None;
        let found = self
            .list_each(&filter, |group| match group.into_iter().next() {
                Some(first) => {
                    best = Some(first);
                    Err(())
                }
                None => Ok(()),
            })
            .await?;
        let _ = found;
        match best {
            Some(entry) => {
                let served = entry.in_service(filter.stage.as_deref(), &entry::now_rfc3339());
                Ok(Some(self.checked(entry, served).await?))
            }
            None => Ok(None),
        }
    }

    /// Image `id`, whatever its state.
    pub async fn show(&self, id: &str) -> Result<Option<Found>, CatalogError> {
        let mut view = self.read_view().await?;
        let Some(name) = view.locate(self, id).await? else {
            return Ok(None);
        };
        let entry = view.shard(self, &name).await?.find(id).cloned();
        match entry {
            Some(entry) => {
                let served = entry.served(None);
                Ok(Some(self.checked(entry, served).await?))
            }
            None => Ok(None),
        }
    }

    /// With trusted keys: the entry's revision, its newest event, its yank state's event and
    /// the promotion it is served from carry their own signatures by a trusted key (an index
    /// can only name them; this proves who wrote them).
    async fn checked(
        &self,
        entry: IndexEntry,
        served: Option<Served>,
    ) -> Result<Found, CatalogError> {
        let mut signed_by = None;
        if self.checks_signatures() {
            if let Some(r) = entry.objects.get("revision") {
                let bytes = self.read_object(r).await?;
                signed_by = self.check_signature(&r.key, &bytes).await?;
            }
            let promotion = served.as_ref().and_then(|s| {
                entry
                    .live_promotions()
                    .find(|p| {
                        Some(&p.location.gallery_image_version_id)
                            == s.gallery_image_version_id.as_ref()
                    })
                    .map(|p| &p.event)
            });
            let events = [
                entry.yank.as_ref().map(|y| &y.event),
                entry.lifecycle.as_ref().map(|l| &l.head),
                promotion,
            ];
            for event in events.into_iter().flatten() {
                let bytes = self.read_object(event).await?;
                self.check_signature(&event.key, &bytes).await?;
            }
        }
        Ok(Found {
            entry,
            signed_by,
            served,
        })
    }

    /// The template a cluster should use for what was found: where it is served from.
    pub async fn served_template(&self, found: &Found) -> Result<Vec<u8>, CatalogError> {
        match &found.served {
            Some(s) => self.read_object(&s.template).await,
            None => self.object(&found.entry, "template").await,
        }
    }

    /// An object of an entry (`record` or `template`), checked against the index's sha256.
    pub async fn object(&self, entry: &IndexEntry, which: &str) -> Result<Vec<u8>, CatalogError> {
        let r = entry.objects.get(which).ok_or_else(|| {
            self.corrupt(
                super::INDEX_KEY,
                format!("image {} has no {which}", entry.id),
            )
        })?;
        self.read_object(r).await
    }

    /// The root, checked as a writer checks it (for `verify` and tools).
    pub(crate) async fn inspect(&self) -> Result<super::snapshot::Snapshot, CatalogError> {
        self.snapshot(Intent::Inspect).await
    }
}
