//! The catalog as one operation sees it: the root, the sections and shards it has read (each
//! checked against the sha256 that names it and for entries that belong in it), the shards,
//! sections and pointers it changed, and how to commit them: the changed shards, then the
//! changed sections (content-named, create-only), then the root (signed, compare-and-swap, its
//! sequence one higher), then the pointers.
//!
//! A layout 1 to 3 index is seen the same way: its entries are grouped into shards and sections
//! in memory, and the next write writes them all (the upgrade to layout 5).

use super::entry;
use super::index::{
    IndexEntry, LAYOUT_VERSION, ObjectRef, Root, Section, SectionRef, Shard, ShardRef,
    UNKNOWN_VERSION, newest_shards_first, section_of, split_shard_name,
};
use super::objects::{self, Kind, Revision, parse_key, sha256, valid_id};
use super::pointer::{Latest, pointer_key};
use super::snapshot::{Read, Snapshot};
use super::store::{PutMode, Store, StoreError};
use super::{Catalog, CatalogError};
use crate::record::Record;
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The catalog as one operation sees it.
pub(crate) struct View {
    /// The root (for a legacy index: one made in memory).
    pub(crate) root: Root,
    /// How the root is replaced.
    pub(crate) mode: PutMode,
    /// Whether it came from a layout 1 to 3 index.
    pub(crate) legacy: bool,
    /// Who signed the root, when signatures are checked.
    pub(crate) signed_by: Option<String>,
    sections: HashMap<String, Section>,
    dirty_sections: BTreeSet<String>,
    shards: HashMap<String, Shard>,
    dirty: BTreeSet<String>,
    pointers: BTreeMap<String, Latest>,
    changed_pointers: BTreeSet<String>,
    /// New and updated entries offered to their pointers (what a pending change carries).
    offered: Vec<IndexEntry>,
    /// Every shard this operation looked at, with the sha256 it had (none: there was none).
    looked_at: BTreeMap<String, Option<String>>,
    /// The anchors this operation claimed, with the ETag each got.
    claims: BTreeMap<String, String>,
    /// Anchors' ETags read ahead for a group commit (none: no anchor).
    anchor_etags: HashMap<String, Option<String>>,
}

impl View {
    fn with_root(root: Root, mode: PutMode, signed_by: Option<String>) -> View {
        View {
            root,
            mode,
            legacy: false,
            signed_by,
            sections: HashMap::new(),
            dirty_sections: BTreeSet::new(),
            shards: HashMap::new(),
            dirty: BTreeSet::new(),
            pointers: BTreeMap::new(),
            changed_pointers: BTreeSet::new(),
            offered: Vec::new(),
            looked_at: BTreeMap::new(),
            claims: BTreeMap::new(),
            anchor_etags: HashMap::new(),
        }
    }

    /// The view of what a snapshot read.
    pub(crate) async fn of<S: Store>(
        catalog: &Catalog<S>,
        snap: Snapshot,
    ) -> Result<View, CatalogError> {
        let now = entry::now_rfc3339();
        let mut view = View::with_root(Root::empty(&now, &now), snap.mode, snap.signed_by);
        match snap.read {
            Read::Empty | Read::Unreadable(_) => {}
            Read::Root(root) => view.root = *root,
            Read::Legacy(index) => {
                view.legacy = true;
                view.root.extra = index.extra.clone();
                for e in &index.images {
                    catalog.check_entry(e, None)?;
                }
                for (name, shard) in Shard::group(index.images) {
                    view.add_new_shard(name, shard);
                }
                for name in view.all_pointer_names() {
                    let latest = view.derive_pointer(catalog, &name).await?;
                    view.set_pointer(&name, latest);
                }
            }
        }
        Ok(view)
    }

    /// A view of a rebuilt index: every shard new, replacing the root read with `mode`.
    pub(crate) fn rebuilt(root: Root, mode: PutMode, shards: BTreeMap<String, Shard>) -> View {
        let mut view = View::with_root(root, mode, None);
        view.root.sections.clear();
        for (name, shard) in shards {
            view.add_new_shard(name, shard);
        }
        view
    }

    /// Takes in a shard that is not stored yet (it is written on commit), in a section of its
    /// own in memory, so that queries of this view see it.
    fn add_new_shard(&mut self, name: String, shard: Shard) {
        let section_name = section_of(&name);
        let section = self
            .sections
            .entry(section_name.clone())
            .or_insert_with(|| Section::new(&section_name));
        section.shards.insert(
            name.clone(),
            shard_ref(&shard, String::new(), String::new()),
        );
        self.root
            .sections
            .entry(section_name.clone())
            .or_insert_with(|| section_ref(section, String::new(), String::new()));
        self.dirty_sections.insert(section_name);
        self.dirty.insert(name.clone());
        self.shards.insert(name, shard);
    }

    /// Every pointer name the catalog's sections call for (every section of a known minor).
    pub(crate) fn all_pointer_names(&self) -> BTreeSet<String> {
        self.root
            .sections
            .keys()
            .filter(|name| split_shard_name(name).0 != UNKNOWN_VERSION)
            .cloned()
            .collect()
    }

    /// Images in the shards this view holds.
    pub(crate) fn image_count(&self) -> usize {
        self.shards.values().map(|s| s.images.len()).sum()
    }

    /// Yanked images in the shards this view holds.
    pub(crate) fn yanked_count(&self) -> usize {
        self.shards
            .values()
            .flat_map(|s| &s.images)
            .filter(|e| e.is_yanked())
            .count()
    }

    /// A section, read when first asked for (checked against the root), or a new empty one.
    pub(crate) async fn section<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        name: &str,
    ) -> Result<&mut Section, CatalogError> {
        if !self.sections.contains_key(name) {
            let section = match self.root.sections.get(name) {
                Some(r) => catalog.read_section(name, r).await?,
                None => Section::new(name),
            };
            self.sections.insert(name.to_string(), section);
        }
        Ok(self.sections.get_mut(name).expect("inserted above"))
    }

    /// Reads what committing `pendings` will look at, several requests at once: their
    /// sections, the pointers their entries are offered to, and their anchors' ETags (kept
    /// for [`View::standing`]). One after another, under load, this was most of a group
    /// commit's time.
    pub(crate) async fn prefetch<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        pendings: &[&super::pending::Pending],
    ) -> Result<(), CatalogError> {
        let sections: BTreeSet<String> = pendings
            .iter()
            .flat_map(|p| {
                p.shards
                    .iter()
                    .map(|c| &c.name)
                    .chain(p.reads.iter().map(|r| &r.name))
            })
            .map(|name| section_of(name))
            .chain(
                pendings
                    .iter()
                    .flat_map(|p| p.offers.iter().filter_map(IndexEntry::pointer_name)),
            )
            .collect();
        self.load_sections(catalog, |name, _| sections.contains(name))
            .await?;
        let pointers: Vec<(String, ObjectRef)> = sections
            .iter()
            .filter(|name| !self.pointers.contains_key(*name))
            .filter_map(|name| Some((name.clone(), self.sections.get(name)?.latest.clone()?)))
            .collect();
        let reads: Vec<_> = pointers
            .into_iter()
            .map(|(name, r)| async move { (name, catalog.read_object(&r).await) })
            .collect();
        let read: Vec<_> = futures::stream::iter(reads)
            .buffer_unordered(catalog.concurrency)
            .collect()
            .await;
        for (name, bytes) in read {
            // Anything wrong with one is met again, and handled, when it is used.
            if let Ok(latest) = bytes.and_then(|b| {
                serde_json::from_slice::<Latest>(&b)
                    .map_err(|e| catalog.corrupt(&name, e.to_string()))
            }) {
                self.pointers.insert(name, latest);
            }
        }
        let ids: BTreeSet<String> = pendings
            .iter()
            .flat_map(|p| p.anchors.iter().map(|a| a.id.clone()))
            .collect();
        let gets: Vec<_> = ids
            .into_iter()
            .map(|id| async move {
                let got = catalog.get(&objects::anchor_key(&id)).await;
                (id, got)
            })
            .collect();
        let got: Vec<_> = futures::stream::iter(gets)
            .buffer_unordered(catalog.concurrency)
            .collect()
            .await;
        for (id, v) in got {
            self.anchor_etags.insert(id, v?.map(|v| v.etag));
        }
        Ok(())
    }

    /// An anchor's ETag as prefetched, if it was.
    pub(crate) fn prefetched_anchor(&self, id: &str) -> Option<Option<&str>> {
        self.anchor_etags.get(id).map(Option::as_deref)
    }

    /// Reads the sections `keep` accepts (judged from the root), several at once.
    async fn load_sections<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        keep: impl Fn(&str, &SectionRef) -> bool,
    ) -> Result<(), CatalogError> {
        let wanted: Vec<(String, SectionRef)> = self
            .root
            .sections
            .iter()
            .filter(|(n, r)| !self.sections.contains_key(*n) && keep(n, r))
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect();
        let read: Vec<Result<(String, Section), CatalogError>> =
            futures::stream::iter(wanted.into_iter().map(|(name, r)| async move {
                let section = catalog.read_section(&name, &r).await?;
                Ok((name, section))
            }))
            .buffered(catalog.concurrency)
            .collect()
            .await;
        for section in read {
            let (name, section) = section?;
            self.sections.insert(name, section);
        }
        Ok(())
    }

    /// Shard names, newest Kubernetes version first, in the sections `keep_section` accepts
    /// (from the root) and that `keep` accepts (from their section).
    pub(crate) async fn shard_names<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        keep_section: impl Fn(&str, &SectionRef) -> bool,
        keep: impl Fn(&str, &ShardRef) -> bool,
    ) -> Result<Vec<String>, CatalogError> {
        self.load_sections(catalog, &keep_section).await?;
        let mut names: Vec<String> = self
            .root
            .sections
            .iter()
            .filter(|(n, r)| keep_section(n, r))
            .filter_map(|(n, _)| self.sections.get(n))
            .flat_map(|s| s.shards.iter())
            .filter(|(n, s)| keep(n, s))
            .map(|(n, _)| n.clone())
            .collect();
        names.sort_by(|a, b| newest_shards_first(a, b));
        Ok(names)
    }

    /// Every shard name, newest Kubernetes version first.
    pub(crate) async fn all_shard_names<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
    ) -> Result<Vec<String>, CatalogError> {
        self.shard_names(catalog, |_, _| true, |_, _| true).await
    }

    /// Where shard `name` is, as its (already read) section says.
    pub(crate) fn shard_ref(&self, name: &str) -> Option<&ShardRef> {
        self.sections.get(&section_of(name))?.shards.get(name)
    }

    /// A shard, read when first asked for (checked against its section), or a new empty one.
    pub(crate) async fn shard<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        name: &str,
    ) -> Result<&mut Shard, CatalogError> {
        if !self.shards.contains_key(name) {
            let section = self.section(catalog, &section_of(name)).await?;
            let found = section.shards.get(name).cloned();
            self.looked_at
                .entry(name.to_string())
                .or_insert_with(|| found.as_ref().map(|r| r.sha256.clone()));
            let shard = match found {
                Some(r) => catalog.read_shard(name, &r).await?,
                None => Shard::new(name),
            };
            self.shards.insert(name.to_string(), shard);
        }
        Ok(self.shards.get_mut(name).expect("inserted above"))
    }

    /// Whether shard `name` exists (its section is read to tell).
    async fn has_shard<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        name: &str,
    ) -> Result<bool, CatalogError> {
        let section = section_of(name);
        let found = self.root.sections.contains_key(&section)
            && self
                .section(catalog, &section)
                .await?
                .shards
                .contains_key(name);
        if !found {
            self.looked_at.entry(name.to_string()).or_insert(None);
        }
        Ok(found)
    }

    /// The shards this operation looked at and did not change, with the sha256 each had.
    pub(crate) fn read_bases(&self) -> Vec<(String, Option<String>)> {
        self.looked_at
            .iter()
            .filter(|(name, _)| !self.dirty.contains(*name))
            .map(|(name, base)| (name.clone(), base.clone()))
            .collect()
    }

    /// Remembers an anchor this operation claimed.
    pub(crate) fn claimed(&mut self, id: &str, etag: String) {
        self.claims.insert(id.to_string(), etag);
    }

    /// The anchors this operation claimed, with their ETags.
    pub(crate) fn claims(&self) -> &BTreeMap<String, String> {
        &self.claims
    }

    /// The view without the shards it read and did not change (a listing that moves on to the
    /// next Kubernetes version holds one version's shards at a time).
    pub(crate) fn forget_shards(mut view: View) -> View {
        let dirty = &view.dirty;
        view.shards.retain(|n, _| dirty.contains(n));
        view
    }

    /// A shard already in memory (read, or a layout 1 to 3 index's).
    pub(crate) fn cached(&self, name: &str) -> Option<&Shard> {
        self.shards.get(name)
    }

    /// A shard this operation changed: it is written on commit.
    pub(crate) fn mark(&mut self, name: &str) {
        self.dirty.insert(name.to_string());
    }

    /// The sha256 of each shard this operation changed, as it read them (none: a new shard).
    pub(crate) fn dirty_bases(&self) -> Vec<(String, Option<String>)> {
        self.dirty
            .iter()
            .map(|name| {
                let base = self
                    .shard_ref(name)
                    .map(|r| r.sha256.clone())
                    .filter(|sha| !sha.is_empty());
                (name.clone(), base)
            })
            .collect()
    }

    /// Offers an entry to its pointer, and remembers it.
    pub(crate) async fn offer<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        e: &IndexEntry,
    ) -> Result<(), CatalogError> {
        if let Some(name) = e.pointer_name() {
            self.pointer(catalog, &name)
                .await?
                .offer(e, &entry::now_rfc3339());
            self.offered.push(e.clone());
        }
        Ok(())
    }

    /// The entries offered to pointers.
    pub(crate) fn offered(&self) -> &[IndexEntry] {
        &self.offered
    }

    /// Puts shard `name` (already written) into its section, or takes it out: another
    /// writer's change, committed with this one.
    pub(crate) async fn replace_shard<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        name: &str,
        new: Option<ShardRef>,
    ) -> Result<(), CatalogError> {
        let section_name = section_of(name);
        let section = self.section(catalog, &section_name).await?;
        match new {
            Some(r) => insert_keeping_extra(&mut section.shards, name.to_string(), r),
            None => {
                section.shards.remove(name);
            }
        }
        self.shards.remove(name);
        self.dirty_sections.insert(section_name);
        Ok(())
    }

    /// The shard that holds image `id`: one already read, else the one its newest record
    /// says (its Kubernetes version and OS), checked by reading it.
    pub(crate) async fn locate<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        id: &str,
    ) -> Result<Option<String>, CatalogError> {
        if !valid_id(id) {
            return Ok(None);
        }
        if let Some(name) = self.read_shard_holding(id) {
            return Ok(Some(name));
        }
        // Its anchor says where; it is only a hint, so the shard is read to be sure.
        if let Anchored::In(name) = catalog.anchor(id).await?
            && self.holds(catalog, &name, id).await?
        {
            return Ok(Some(name));
        }
        self.listed_shard_holding(catalog, id).await
    }

    /// The shard already read that holds image `id`.
    fn read_shard_holding(&self, id: &str) -> Option<String> {
        self.shards
            .iter()
            .find(|(_, s)| s.find(id).is_some())
            .map(|(name, _)| name.clone())
    }

    /// Whether shard `name` exists and holds image `id` (read to be sure); the shard joins
    /// what this operation looked at.
    pub(crate) async fn holds<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        name: &str,
        id: &str,
    ) -> Result<bool, CatalogError> {
        Ok(self.has_shard(catalog, name).await?
            && self.shard(catalog, name).await?.find(id).is_some())
    }

    /// The shard that holds image `id`, among those its objects name (a listing of them).
    async fn listed_shard_holding<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        id: &str,
    ) -> Result<Option<String>, CatalogError> {
        for name in catalog.shards_named_by_objects(id).await? {
            if self.holds(catalog, &name, id).await? {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Where an image a publish is about to add may already be, besides `natural` (the shard
    /// its record names, already looked at): where its anchor says, or among the images whose
    /// version was not known (`unknown/<os>`). No anchor and not there: a new image, found
    /// without listing its objects (what a publish does for every new image). An anchor that
    /// points nowhere (planted, or stale) falls back to the listing.
    pub(crate) async fn locate_for_publish<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        id: &str,
        natural: &str,
    ) -> Result<Option<String>, CatalogError> {
        if let Some(name) = self.read_shard_holding(id) {
            return Ok(Some(name));
        }
        let (_, os) = split_shard_name(natural);
        let unknown = format!("{UNKNOWN_VERSION}/{os}");
        if unknown != natural && self.holds(catalog, &unknown, id).await? {
            return Ok(Some(unknown));
        }
        match catalog.anchor(id).await? {
            Anchored::Nothing => return Ok(None),
            Anchored::In(anchored) if self.holds(catalog, &anchored, id).await? => {
                return Ok(Some(anchored));
            }
            // Wrong, or not an anchor at all (planted, or damaged): only a listing can say.
            Anchored::In(_) | Anchored::Unusable => {}
        }
        self.listed_shard_holding(catalog, id).await
    }

    /// The current pointer `name`: as its section names it, else derived from the shards.
    pub(crate) async fn pointer<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        name: &str,
    ) -> Result<&mut Latest, CatalogError> {
        if !self.pointers.contains_key(name) {
            let stored = self.section(catalog, name).await?.latest.clone();
            let latest = match stored {
                Some(r) => match catalog.read_object(&r).await {
                    Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                        catalog.corrupt(&r.key, format!("not a latest pointer: {e}"))
                    })?,
                    // A pointer is derived data: one that is gone is derived again.
                    Err(CatalogError::Corrupt { .. }) => self.derive_pointer(catalog, name).await?,
                    Err(e) => return Err(e),
                },
                None => self.derive_pointer(catalog, name).await?,
            };
            self.pointers.insert(name.to_string(), latest);
        }
        self.changed_pointers.insert(name.to_string());
        Ok(self.pointers.get_mut(name).expect("inserted above"))
    }

    /// The pointer a section names, as stored (none if it names none).
    pub(crate) fn pointer_ref(&self, name: &str) -> Option<&ObjectRef> {
        self.sections.get(name)?.latest.as_ref()
    }

    /// Pointer `name` from every entry of its minor and OS (after a yank, which can take an
    /// image out of any pointer).
    pub(crate) async fn derive_pointer<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        name: &str,
    ) -> Result<Latest, CatalogError> {
        let names: Vec<String> = self
            .section(catalog, name)
            .await?
            .shards
            .keys()
            .cloned()
            .collect();
        let now = entry::now_rfc3339();
        let mut latest = Latest::new(name);
        for n in names {
            for e in &self.shard(catalog, &n).await?.images {
                latest.offer(e, &now);
            }
        }
        Ok(latest)
    }

    /// Gives a catalog that has no id yet (a new one, or one from before ids) its id now, so
    /// that what this write puts under `images/` names the catalog it is written for.
    pub(crate) fn claim_catalog_id(&mut self) {
        if self.root.catalog_id.is_none() {
            self.root.catalog_id = Some(super::index::new_catalog_id());
        }
    }

    /// Replaces pointer `name` (written on commit).
    pub(crate) fn set_pointer(&mut self, name: &str, latest: Latest) {
        self.pointers.insert(name.to_string(), latest);
        self.changed_pointers.insert(name.to_string());
    }

    /// Writes what changed. `Ok(None)`: another writer changed the root first (nothing of
    /// this round is visible; read again). `Ok(Some(sequence))`: committed.
    pub(crate) async fn commit<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
    ) -> Result<Option<u64>, CatalogError> {
        // The shards, each into its section (written several at once: a rebuild writes
        // thousands, and a group commit one per publisher).
        let mut shards = Vec::new();
        for name in std::mem::take(&mut self.dirty) {
            let section_name = section_of(&name);
            self.section(catalog, &section_name).await?;
            self.dirty_sections.insert(section_name.clone());
            let Some(shard) = self.shards.get_mut(&name) else {
                continue;
            };
            if shard.images.is_empty() {
                let section = self.sections.get_mut(&section_name).expect("read above");
                section.shards.remove(&name);
                continue;
            }
            shard.layout = LAYOUT_VERSION;
            shard.images.sort_by(|a, b| a.id.cmp(&b.id));
            shards.push(name);
        }
        let writes: Vec<_> = shards
            .iter()
            .map(|name| put_content_named(catalog, "shards", name, &self.shards[name]))
            .collect();
        let written: Vec<_> = futures::stream::iter(writes)
            .buffered(catalog.concurrency)
            .collect()
            .await;
        for (name, written) in shards.into_iter().zip(written) {
            let (key, sha) = written?;
            let r = shard_ref(&self.shards[&name], key, sha);
            let section = self
                .sections
                .get_mut(&section_of(&name))
                .expect("read above");
            insert_keeping_extra(&mut section.shards, name, r);
        }
        let now = entry::now_rfc3339();
        self.root.layout = LAYOUT_VERSION;
        self.root.images.clear();
        self.root.sequence = self
            .root
            .sequence
            .checked_add(1)
            .filter(|s| *s <= super::index::MAX_SEQUENCE)
            .ok_or_else(|| {
                catalog.corrupt(
                    objects::INDEX_KEY,
                    format!(
                        "its sequence {} is beyond any sigcat writes",
                        self.root.sequence
                    ),
                )
            })?;
        if self.root.catalog_id.is_none() {
            self.root.catalog_id = Some(super::index::new_catalog_id());
        }
        self.root.written_at = now;
        self.root.expires = catalog.expiry();
        // The pointers, stamped with the new root, each named by its section.
        let mut pointer_bytes = Vec::new();
        for name in std::mem::take(&mut self.changed_pointers) {
            let Some(latest) = self.pointers.get_mut(&name) else {
                continue;
            };
            let bytes = latest.bytes(self.root.sequence, &self.root.expires);
            self.section(catalog, &name).await?.latest = Some(ObjectRef {
                key: pointer_key(&name),
                sha256: sha256(&bytes),
            });
            self.dirty_sections.insert(name.clone());
            pointer_bytes.push((name, bytes));
        }
        // The sections, each into the root, several at once.
        let mut sections = Vec::new();
        for name in std::mem::take(&mut self.dirty_sections) {
            let Some(section) = self.sections.get_mut(&name) else {
                continue;
            };
            if section.shards.is_empty() {
                self.root.sections.remove(&name);
                continue;
            }
            section.layout = LAYOUT_VERSION;
            sections.push(name);
        }
        let writes: Vec<_> = sections
            .iter()
            .map(|name| put_content_named(catalog, "sections", name, &self.sections[name]))
            .collect();
        let written: Vec<_> = futures::stream::iter(writes)
            .buffered(catalog.concurrency)
            .collect()
            .await;
        for (name, written) in sections.into_iter().zip(written) {
            let (key, sha) = written?;
            let r = section_ref(&self.sections[&name], key, sha);
            insert_keeping_extra(&mut self.root.sections, name, r);
        }
        let bytes = serde_json::to_vec_pretty(&self.root).unwrap_or_default();
        if !catalog.put_root(&bytes, &self.mode).await? {
            return Ok(None);
        }
        let sequence = self.root.sequence;
        // Collected first: a lazy map here makes the publish future not `Send`.
        let writes: Vec<_> = pointer_bytes
            .iter()
            .map(|(name, bytes)| catalog.put_pointer(name, bytes, sequence))
            .collect();
        catalog.all_bounded(writes).await?;
        catalog.remember(
            self.root.sequence,
            &sha256(&bytes),
            self.root.catalog_id.as_deref(),
            Some(&bytes),
        )?;
        Ok(Some(self.root.sequence))
    }
}

/// Writes `value` as `DIR/NAME-<16 hex of its sha256>.json` (create-only): its key and sha256.
async fn put_content_named<S: Store>(
    catalog: &Catalog<S>,
    dir: &str,
    name: &str,
    value: &impl serde::Serialize,
) -> Result<(String, String), CatalogError> {
    let bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    let sha = sha256(&bytes);
    let key = format!("{dir}/{name}-{}.json", &sha[..16]);
    catalog
        .put_object(
            &ObjectRef {
                key: key.clone(),
                sha256: sha.clone(),
            },
            &bytes,
        )
        .await?;
    Ok((key, sha))
}

/// Puts `new` under `name`, keeping the fields a newer sigcat gave the reference it replaces.
fn insert_keeping_extra(
    refs: &mut BTreeMap<String, super::index::IndexRef>,
    name: String,
    mut new: super::index::IndexRef,
) {
    if let Some(old) = refs.get(&name) {
        new.extra = old.extra.clone();
    }
    refs.insert(name, new);
}

fn section_ref(section: &Section, key: String, sha: String) -> SectionRef {
    let union = |f: fn(&ShardRef) -> &BTreeSet<String>| {
        section
            .shards
            .values()
            .flat_map(|s| f(s).iter().cloned())
            .collect()
    };
    SectionRef {
        key,
        sha256: sha,
        images: section.shards.values().map(|s| s.images).sum(),
        os_types: union(|s| &s.os_types),
        definitions: union(|s| &s.definitions),
        galleries: union(|s| &s.galleries),
        extra: Default::default(),
    }
}

fn shard_ref(shard: &Shard, key: String, sha: String) -> ShardRef {
    let set = |f: fn(&IndexEntry) -> Option<&String>| {
        shard.images.iter().filter_map(f).cloned().collect()
    };
    // Where images were promoted to counts too: `--gallery community_gallery` must not skip
    // a shard whose images were built elsewhere.
    let promoted = |f: fn(&super::index::Location) -> Vec<&String>| -> BTreeSet<String> {
        shard
            .images
            .iter()
            .flat_map(|e| e.lifecycle.iter().flat_map(|l| l.promoted.iter()))
            .flat_map(|p| f(&p.location))
            .cloned()
            .collect()
    };
    let mut definitions: BTreeSet<String> = set(|e| e.image_definition.as_ref());
    definitions.extend(promoted(|l| vec![&l.image_definition]));
    let mut galleries: BTreeSet<String> = set(|e| e.gallery.as_ref());
    galleries.extend(promoted(|l| {
        let mut v = vec![&l.gallery];
        v.extend(l.public_name.as_ref());
        v
    }));
    ShardRef {
        key,
        sha256: sha,
        images: shard.images.len(),
        os_types: set(|e| e.os_type.as_ref()),
        definitions,
        galleries,
        extra: Default::default(),
    }
}

impl<S: Store> Catalog<S> {
    /// When a root written now expires.
    pub(crate) fn expiry(&self) -> String {
        let at = time::OffsetDateTime::now_utc()
            + time::Duration::try_from(self.validity).unwrap_or(time::Duration::days(14));
        let at = at
            .replace_nanosecond(at.millisecond() as u32 * 1_000_000)
            .unwrap_or(at);
        at.format(&time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
    }

    /// A section, checked against the root's sha256 and for shards and a pointer that belong
    /// in it.
    pub(crate) async fn read_section(
        &self,
        name: &str,
        r: &SectionRef,
    ) -> Result<Section, CatalogError> {
        let bytes = self
            .read_object(&ObjectRef {
                key: r.key.clone(),
                sha256: r.sha256.clone(),
            })
            .await?;
        let section: Section = serde_json::from_slice(&bytes).map_err(|e| {
            self.corrupt(
                &r.key,
                format!("line {}: {e}; expected a section", e.line()),
            )
        })?;
        if section.section != name {
            return Err(self.corrupt(
                &r.key,
                format!("it is section `{}`, not `{name}`", section.section),
            ));
        }
        for (shard, s) in &section.shards {
            if section_of(shard) != name
                || shard.contains("..")
                || !s.key.starts_with(&format!("shards/{shard}-"))
                || !s.key.ends_with(".json")
                || !super::snapshot::valid_hash(&s.sha256)
            {
                return Err(self.corrupt(
                    &r.key,
                    format!(
                        "shard `{shard}` is `{}`, not a shard of this section where sigcat puts shards",
                        s.key
                    ),
                ));
            }
        }
        if let Some(p) = &section.latest
            && (p.key != pointer_key(name) || !super::snapshot::valid_hash(&p.sha256))
        {
            return Err(self.corrupt(
                &r.key,
                format!("its pointer is `{}`, not where sigcat puts it", p.key),
            ));
        }
        Ok(section)
    }

    /// A shard, checked against its section's sha256 and for entries that belong in it.
    pub(crate) async fn read_shard(&self, name: &str, r: &ShardRef) -> Result<Shard, CatalogError> {
        let bytes = self
            .read_object(&ObjectRef {
                key: r.key.clone(),
                sha256: r.sha256.clone(),
            })
            .await?;
        let shard: Shard = serde_json::from_slice(&bytes).map_err(|e| {
            self.corrupt(&r.key, format!("line {}: {e}; expected a shard", e.line()))
        })?;
        if shard.shard != name {
            return Err(self.corrupt(
                &r.key,
                format!("it is shard `{}`, not `{name}`", shard.shard),
            ));
        }
        for e in &shard.images {
            self.check_entry(e, Some((name, &r.key)))?;
        }
        Ok(shard)
    }

    /// An entry's own consistency: an id sigcat makes, in the shard its version and OS name,
    /// and objects under its own `images/<id>/` of the right kinds. Anything else is the
    /// catalog's data gone wrong (never a key to follow out of the catalog).
    pub(crate) fn check_entry(
        &self,
        e: &IndexEntry,
        shard: Option<(&str, &str)>,
    ) -> Result<(), CatalogError> {
        let at = shard.map_or(objects::INDEX_KEY, |(_, key)| key);
        if !valid_id(&e.id) {
            return Err(self.corrupt(at, format!("`{}` is not an image id sigcat makes", e.id)));
        }
        if let Some((name, _)) = shard
            && e.shard_name() != name
        {
            return Err(self.corrupt(
                at,
                format!(
                    "image {} belongs in shard {}, not {name}",
                    e.id,
                    e.shard_name()
                ),
            ));
        }
        let wrong = |what: &str, key: &str| {
            self.corrupt(
                at,
                format!(
                    "image {}: its {what} `{key}` is not an object of this image",
                    e.id
                ),
            )
        };
        for (which, r) in &e.objects {
            let expected: &[Kind] = match which.as_str() {
                "record" => &[Kind::Record, Kind::LegacyRecord],
                "template" => &[Kind::Template, Kind::LegacyTemplate],
                "revision" => &[Kind::Revision],
                _ => continue,
            };
            match parse_key(&r.key) {
                Some((id, kind)) if id == e.id && expected.contains(&kind) => {}
                _ => return Err(wrong(which, &r.key)),
            }
            if r.sha256.len() != 64 || !r.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(wrong(which, &r.key));
            }
        }
        for required in ["record", "template"] {
            if !e.objects.contains_key(required) {
                return Err(self.corrupt(at, format!("image {} has no {required}", e.id)));
            }
        }
        if let Some(y) = &e.yank {
            match parse_key(&y.event.key) {
                Some((id, Kind::Event | Kind::LegacyYank)) if id == e.id => {}
                _ => return Err(wrong("yank event", &y.event.key)),
            }
        }
        Ok(())
    }

    /// The shards an image's revisions say it is in (newest revision first): how an image is
    /// found by its id without reading every shard.
    pub(crate) async fn shards_named_by_objects(
        &self,
        id: &str,
    ) -> Result<Vec<String>, CatalogError> {
        let keys = self.list_keys(&format!("images/{id}/")).await?;
        let mut revisions: Vec<(u64, String, String, objects::Revision)> = Vec::new();
        let mut legacy_record = None;
        for key in &keys {
            match parse_key(key) {
                Some((_, Kind::Revision)) => {
                    if let Some(v) = self.get(key).await?
                        && let Ok(r) = serde_json::from_slice::<Revision>(&v.bytes)
                        && r.id == id
                    {
                        revisions.push((r.sequence.unwrap_or(0), r.at.clone(), key.clone(), r));
                    }
                }
                Some((_, Kind::LegacyRecord)) => legacy_record = Some(key.clone()),
                _ => {}
            }
        }
        revisions.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| b.1.cmp(&a.1))
                .then_with(|| b.2.cmp(&a.2))
        });
        let mut names = Vec::new();
        let mut records: Vec<String> = revisions
            .into_iter()
            .map(|(_, _, _, r)| r.record.key)
            .collect();
        records.extend(legacy_record);
        for key in records {
            let Some(v) = self.get(&key).await? else {
                continue;
            };
            if let Ok(record) = serde_json::from_slice::<Record>(&v.bytes) {
                let name =
                    entry::describe(id, &record, BTreeMap::new(), String::new()).shard_name();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    /// Writes a pointer after its root: its signature, then the pointer, unless a writer of a
    /// later root already wrote a newer one (pointers never go back).
    pub(crate) async fn put_pointer(
        &self,
        name: &str,
        bytes: &[u8],
        sequence: u64,
    ) -> Result<(), CatalogError> {
        let key = pointer_key(name);
        for _ in 0..5 {
            let current = self.get(&key).await?;
            let mode = match &current {
                Some(v) => {
                    let theirs = serde_json::from_slice::<Latest>(&v.bytes)
                        .map(|l| l.catalog_sequence)
                        .unwrap_or(0);
                    if theirs > sequence {
                        return Ok(());
                    }
                    PutMode::IfMatch(v.etag.clone())
                }
                None => PutMode::Create,
            };
            if let Some(signer) = &self.signer {
                self.put(
                    &objects::sig_key(&key),
                    signer.sign(bytes).as_bytes(),
                    &PutMode::Overwrite,
                )
                .await
                .map_err(|e| self.storage(e))?;
            }
            match self.put(&key, bytes, &mode).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Precondition { .. }) => continue,
                Err(e) => return Err(self.storage(e)),
            }
        }
        // Writers kept replacing it: theirs are newer, or will be replaced by the next write.
        Ok(())
    }
}

/// What an image's anchor says: nothing (there is none: a new image), a shard, or something
/// that is not an anchor of this image (unreadable JSON, another image's, a shard name with
/// `..`), which says nothing about where the image is.
pub(crate) enum Anchored {
    Nothing,
    In(String),
    Unusable,
}

/// The shard an anchor's `bytes` name, if they are an anchor of image `id` whose shard name
/// stays inside the catalog.
fn anchored_shard(bytes: &[u8], id: &str) -> Option<String> {
    serde_json::from_slice::<objects::Anchor>(bytes)
        .ok()
        .filter(|a| a.id == id && !a.shard.contains(".."))
        .map(|a| a.shard)
}

impl<S: Store> Catalog<S> {
    /// What image `id`'s anchor says.
    pub(crate) async fn anchor(&self, id: &str) -> Result<Anchored, CatalogError> {
        let Some(v) = self.get(&objects::anchor_key(id)).await? else {
            return Ok(Anchored::Nothing);
        };
        Ok(anchored_shard(&v.bytes, id).map_or(Anchored::Unusable, Anchored::In))
    }

    /// Claims image `id` for `shard` before a publish places it there: its anchor is replaced
    /// only if it is still the one just read (compare-and-swap, tried again if another writer
    /// got in between), and the shard the replaced anchor named joins what `view` looked at.
    /// So of two publishers placing one new image in two shards, the later one has looked at
    /// the earlier one's shard, and the earlier one's claim is no longer current: a pending
    /// change that was based on either is committed only while that still holds (see
    /// `pending`). `Some(shard)`: the anchor names another shard that holds the image in
    /// `view` (it is not new after all).
    pub(crate) async fn claim_anchor(
        &self,
        view: &mut View,
        id: &str,
        shard: &str,
        moving_from: Option<&str>,
    ) -> Result<Option<String>, CatalogError> {
        let key = objects::anchor_key(id);
        let bytes = serde_json::to_vec_pretty(&objects::Anchor {
            id: id.to_string(),
            shard: shard.to_string(),
        })
        .unwrap_or_default();
        // Publishers of one image at once take turns here as they do on the root: a lost
        // compare-and-swap waits a moment and reads again, for as long as a publisher is
        // patient with the root (it used to give up after 8 quick tries, exit 8).
        let mut contention = self.contention_on(&key);
        loop {
            let current = self.get(&key).await?;
            let named = current
                .as_ref()
                .and_then(|v| anchored_shard(&v.bytes, id))
                .filter(|named| named != shard);
            if let Some(other) = named
                && Some(other.as_str()) != moving_from
                && view.holds(self, &other, id).await?
            {
                return Ok(Some(other));
            }
            let mode = match &current {
                Some(v) => PutMode::IfMatch(v.etag.clone()),
                None => PutMode::Create,
            };
            match self.put(&key, &bytes, &mode).await {
                Ok(etag) => {
                    view.claimed(id, etag);
                    return Ok(None);
                }
                Err(StoreError::Precondition { .. }) => contention.lost(self).await?,
                Err(e) => return Err(self.storage(e)),
            }
        }
    }

    /// Says which shard image `id` is in (a hint for the next publish and lookup).
    pub(crate) async fn put_anchor(&self, id: &str, shard: &str) -> Result<(), CatalogError> {
        let bytes = serde_json::to_vec_pretty(&objects::Anchor {
            id: id.to_string(),
            shard: shard.to_string(),
        })
        .unwrap_or_default();
        let (key, sha) = (objects::anchor_key(id), objects::sha256(&bytes));
        if self.recent.wrote(&key, &sha) {
            return Ok(());
        }
        self.put(&key, &bytes, &PutMode::Overwrite)
            .await
            .map_err(|e| self.storage(e))?;
        self.recent.remember_written(&key, &sha);
        Ok(())
    }
}
