//! Group commit. Every write ends with a compare-and-swap of the one root, so N publishers at
//! once would need N root writes one after another, and every round one of them wins, the
//! others lose, re-read and race again. A publisher that loses instead leaves its change under
//! `pending/`, signed, and whichever writer commits the root next commits every pending change
//! that still applies: a dozen publishers on different shards share one or two root writes.
//!
//! A pending change is what its publisher already wrote, said as replacements: shard NAME goes
//! from the shard with sha256 BASE (or none) to NEW (or none), and these entries are offered to
//! their `latest/` pointers (which keep the newest, whatever the order of offers). It applies
//! only while every shard it names is still at its base, so the outcomes its publisher worked
//! out against that base stay true; otherwise its publisher merges again, as before. Another
//! writer takes it only if a key the catalog trusts signed it, it names this catalog, and it is
//! younger than a publisher's patience (two minutes): an attacker who can write the container
//! can plant files here, never get one committed.

use super::index::{IndexEntry, ShardRef, section_of};
use super::objects::{self, sha256, sig_key};
use super::snapshot::valid_hash;
use super::view::View;
use super::{Catalog, CatalogError, Store};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where pending changes are written.
pub const PENDING_PREFIX: &str = "pending/";

/// The schema name of pending changes.
pub const PENDING_SCHEMA: &str = "sigcat.pending/v1";

/// How old a pending change may be and still be committed by another writer: a publisher that
/// keeps losing gives up after two minutes, and says so.
const FRESH: Duration = Duration::from_secs(120);

/// How old another publisher's pending change may be for a writer to commit it with its own:
/// an older one is left to its own publisher, which commits it itself once its patience with
/// the others ends. Committed changes stay until the sweep, and only the last 64 are named
/// in the root; reading every change of the last two minutes in every round made a group
/// commit of 16 x 10 publishes read 565 objects a publish, with 20 ms a request.
const TAKEN_WITHIN: Duration = Duration::from_secs(10);

/// How old one must be before a writer removes it: committed (the root names it), stale, or
/// abandoned (its publisher crashed, or gave up), it is never read again once two minutes old.
const ABANDONED: Duration = Duration::from_secs(180);

/// How many pending changes a writer reads in one round: a flood of planted files costs a
/// bounded amount of work.
const MAX_READ: usize = 64;

/// The largest pending change (or signature) a writer reads: a change of a few thousand
/// images. A larger one is not read (a planted 1 GiB file costs nothing); its own publisher
/// commits it.
const MAX_BYTES: usize = 4 << 20;

/// One publisher's change, as another writer can commit it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// [`PENDING_SCHEMA`].
    pub schema: String,
    /// The catalog it was written for.
    pub catalog_id: Option<String>,
    /// When it was written, in milliseconds since the epoch.
    pub written_at_ms: u64,
    /// The shards it replaces.
    pub shards: Vec<ShardChange>,
    /// The shards its publisher looked at and did not change (where an image could have
    /// been), each with the sha256 it had: a change to any of them makes this one stale.
    pub reads: Vec<ShardRead>,
    /// The anchors its publisher claimed for the images it placed, with the ETag each got:
    /// another claim since (a publisher placing the same image elsewhere) makes it stale.
    pub anchors: Vec<AnchorClaim>,
    /// The new and updated entries, for their `latest/` pointers.
    pub offers: Vec<IndexEntry>,
}

/// Shard `name` had sha256 `base` (none: there was none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRead {
    /// The shard.
    pub name: String,
    /// Its sha256 then.
    pub base: Option<String>,
}

/// Image `id`'s anchor, as its publisher wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorClaim {
    /// The image.
    pub id: String,
    /// The ETag of the anchor it wrote.
    pub etag: String,
}

/// Shard `name` goes from `base` to `new`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardChange {
    /// The shard (`1.30.5/ubuntu-2404`).
    pub name: String,
    /// The sha256 of the shard it replaces; none if there was none.
    pub base: Option<String>,
    /// The shard it puts there (already written); none if it empties it.
    pub new: Option<ShardRef>,
}

/// Where a pending change stands against a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Every shard it names is as it made them: someone committed it.
    Committed,
    /// Every shard it names is at its base, and the root is of the catalog it was written
    /// for: it can be committed now.
    Applies,
    /// Some shard changed under it: its publisher must merge again.
    Stale,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `pending/<ms>-<random>.json`: ordered by age, and never written twice.
fn pending_key(at_ms: u64) -> String {
    format!(
        "{PENDING_PREFIX}{at_ms:013}-{:016x}.json",
        fastrand::u64(..)
    )
}

/// The age a key says (a hint to skip old ones unread; the signed content decides).
fn age_of_key(key: &str, now: u64) -> Option<Duration> {
    Some(Duration::from_millis(
        now.saturating_sub(written_at_of_key(key)?),
    ))
}

fn written_at_of_key(key: &str) -> Option<u64> {
    key.strip_prefix(PENDING_PREFIX)?
        .split_once('-')?
        .0
        .parse()
        .ok()
}

/// Whether the publisher of pending change `mine` commits the others (`others`, oldest first,
/// as listed): no other was written before it, within `window` before it. Older ones are
/// committed already (the root names only the latest), stale, or their publishers are past
/// their own patience and commit themselves; waiting for them would wait for nobody.
pub(crate) fn leads(mine: &str, others: &[String], window: Duration) -> bool {
    let Some(at) = written_at_of_key(mine) else {
        return true;
    };
    let since = at.saturating_sub(window.as_millis() as u64);
    !others
        .iter()
        .any(|k| k.as_str() < mine && written_at_of_key(k).is_some_and(|t| t >= since))
}

impl Pending {
    /// What `view` changed in the shards `bases` names (read before its commit was tried).
    pub(crate) fn of(view: &View, bases: Vec<(String, Option<String>)>) -> Pending {
        let reads = view
            .read_bases()
            .into_iter()
            .filter(|(name, _)| !bases.iter().any(|(b, _)| b == name))
            .map(|(name, base)| ShardRead { name, base })
            .collect();
        Pending {
            schema: PENDING_SCHEMA.into(),
            catalog_id: view.root.catalog_id.clone(),
            written_at_ms: now_ms(),
            reads,
            anchors: view
                .claims()
                .iter()
                .map(|(id, etag)| AnchorClaim {
                    id: id.clone(),
                    etag: etag.clone(),
                })
                .collect(),
            shards: bases
                .into_iter()
                .map(|(name, base)| ShardChange {
                    new: view.shard_ref(&name).cloned(),
                    name,
                    base,
                })
                .collect(),
            offers: view.offered().to_vec(),
        }
    }

    /// Whether `key` is where a shard of this name is written, with this sha256.
    fn names_its_shards_plainly(&self) -> bool {
        let plain = |name: &str, base: Option<&str>| {
            !name.contains("..") && name.split('/').count() == 2 && base.is_none_or(valid_hash)
        };
        self.reads.iter().all(|r| plain(&r.name, r.base.as_deref()))
            && self.anchors.iter().all(|a| objects::valid_id(&a.id))
            && self.shards.iter().all(|c| {
                plain(&c.name, c.base.as_deref())
                    && c.new.as_ref().is_none_or(|r| {
                        valid_hash(&r.sha256)
                            && r.key == format!("shards/{}-{}.json", c.name, &r.sha256[..16])
                    })
            })
    }
}

impl<S: Store> Catalog<S> {
    /// Writes `pending` (signed, with a signing key) and returns its key.
    pub(crate) async fn put_pending(&self, pending: &Pending) -> Result<String, CatalogError> {
        let bytes = serde_json::to_vec_pretty(pending).unwrap_or_default();
        let key = pending_key(pending.written_at_ms);
        let object = super::index::ObjectRef {
            key: key.clone(),
            sha256: sha256(&bytes),
        };
        self.put_signed(&object, &bytes).await?;
        Ok(key)
    }

    /// The keys of other writers' pending changes worth reading, oldest first: fresh by their
    /// names and, in a signed catalog, with a signature beside them (what has none is said).
    /// Ones abandoned long ago are removed.
    pub(crate) async fn pending_keys(
        &self,
        view: &View,
        mine: &str,
    ) -> Result<Vec<String>, CatalogError> {
        let now = now_ms();
        let keys = self.list_keys(PENDING_PREFIX).await?;
        let mut abandoned = Vec::new();
        let mut fresh = Vec::new();
        // In a signed catalog, only changes with a signature beside them are worth reading:
        // unsigned junk cannot crowd out the real ones.
        let signed = view.signed_by.is_some() || self.trusted_keys().is_some();
        let signatures: std::collections::HashSet<&str> = keys
            .iter()
            .filter(|k| k.ends_with(".sig"))
            .map(String::as_str)
            .collect();
        let mut unsigned = Vec::new();
        for key in keys
            .iter()
            .filter(|k| k.ends_with(".json") && *k != mine)
            .filter(|k| !view.root.pending_committed.contains(k))
            .cloned()
        {
            let age = age_of_key(&key, now);
            if signed
                && age.is_some_and(|a| a <= TAKEN_WITHIN)
                && !signatures.contains(sig_key(&key).as_str())
            {
                unsigned.push(key);
                continue;
            }
            match age {
                Some(age) if age <= TAKEN_WITHIN => fresh.push(key),
                Some(age) if age > ABANDONED => abandoned.push(key),
                Some(_) => {}
                None => tracing::debug!("{key}: not a pending change's name: skipped"),
            }
        }
        for key in unsigned {
            self.say_once(&key, "it has no signature beside it");
        }
        abandoned.truncate(MAX_READ);
        self.forget_pending(&abandoned).await;
        fresh.truncate(MAX_READ);
        Ok(fresh)
    }

    /// The pending changes at `keys` that this writer may commit (in order): signed by a
    /// trusted key (when the catalog is signed), for this catalog, fresh, and well formed.
    /// Anything else is skipped and said.
    pub(crate) async fn read_pendings(
        &self,
        view: &View,
        fresh: Vec<String>,
    ) -> Vec<(String, Pending)> {
        let now = now_ms();
        let trust = self.trusted_keys();
        let reads: Vec<_> = fresh
            .into_iter()
            .map(|key| self.read_pending(key, trust.as_ref(), view, now))
            .collect();
        let read: Vec<Option<(String, Pending)>> = futures::stream::iter(reads)
            .buffered(self.concurrency)
            .collect()
            .await;
        read.into_iter().flatten().collect()
    }

    /// One pending change, if this writer may commit it. Why not is said once per process
    /// (never an error: one publisher's problem, or a planted file, is not this publish's).
    async fn read_pending(
        &self,
        key: String,
        trust: Option<&super::signing::Trust>,
        view: &View,
        now: u64,
    ) -> Option<(String, Pending)> {
        let why = match self.check_pending(&key, trust, view, now).await {
            Ok(Some(p)) => return Some((key, p)),
            Ok(None) => return None,
            Err(why) => why,
        };
        // Committed and removed while it was read: nothing to say.
        if let Ok(None) = self.store.get_at_most(&key, MAX_BYTES).await {
            return None;
        }
        self.say_once(&key, &why);
        None
    }

    fn say_once(&self, key: &str, why: &str) {
        if self
            .pending_said
            .lock()
            .is_ok_and(|mut said| said.insert(key.to_string()))
        {
            tracing::warn!(
                "{}: pending change {key} skipped: {why}. Nothing of it is committed; if no publisher of this catalog wrote it, someone who can write the container did (remove it; it is never read once two minutes old)",
                self.describe()
            );
        }
    }

    async fn check_pending(
        &self,
        key: &str,
        trust: Option<&super::signing::Trust>,
        view: &View,
        now: u64,
    ) -> Result<Option<Pending>, String> {
        let read = |key: String| async move {
            self.retry
                .run_until(self.stop.as_ref(), || {
                    self.store.get_at_most(&key, MAX_BYTES)
                })
                .await
                .map_err(|e| format!("it cannot be read ({e})"))
        };
        let Some(v) = read(key.to_string()).await? else {
            return Ok(None); // committed and removed meanwhile
        };
        match trust {
            Some(trust) => {
                let sig = read(sig_key(key)).await?.map(|s| s.bytes);
                if let Err(p) = trust.verify(&v.bytes, sig.as_deref()) {
                    return Err(format!("not signed by a trusted key ({p})"));
                }
            }
            None if view.signed_by.is_some() => {
                return Err(
                    "the catalog is signed, and this writer has no key to check it with".into(),
                );
            }
            None => {}
        }
        let p = serde_json::from_slice::<Pending>(&v.bytes)
            .map_err(|e| format!("not a pending change ({e})"))?;
        if p.schema != PENDING_SCHEMA {
            return Err(format!("schema {}, not {PENDING_SCHEMA}", p.schema));
        }
        if p.catalog_id != view.root.catalog_id {
            return Err("written for another catalog (its catalog id)".into());
        }
        if p.written_at_ms > now + FRESH.as_millis() as u64 {
            return Err("its signed time is in the future".into());
        }
        if now.saturating_sub(p.written_at_ms) > FRESH.as_millis() as u64 {
            return Err("its signed time is more than two minutes ago".into());
        }
        if !p.names_its_shards_plainly() {
            return Err("it names shards or images where sigcat does not write them".into());
        }
        if let Some(e) = p
            .offers
            .iter()
            .find_map(|e| self.check_entry(e, None).err())
        {
            return Err(crate::error::chain(&e));
        }
        Ok(Some(p))
    }

    /// Removes pending changes (and their signatures) that are committed or abandoned. Best
    /// effort: one left behind is skipped by name once old, and removed by a later writer.
    pub(crate) async fn forget_pending(&self, keys: &[String]) {
        // The changes first, then their signatures: a writer reading one meanwhile finds it
        // gone, not unsigned.
        let signatures: Vec<String> = keys.iter().map(|k| sig_key(k)).collect();
        self.delete_all(keys.to_vec()).await;
        self.delete_all(signatures).await;
    }

    async fn delete_all(&self, keys: Vec<String>) {
        let deletes: Vec<_> = keys
            .into_iter()
            .map(|key| async move {
                if let Err(e) = self.store.delete(&key).await {
                    tracing::debug!("{key}: not removed: {e}");
                }
            })
            .collect();
        futures::stream::iter(deletes)
            .buffer_unordered(self.concurrency)
            .collect::<Vec<()>>()
            .await;
    }
}

impl View {
    /// Where `pending` (written at `key`, if known) stands against this view's root: committed
    /// if the root names it so, else as its sections (read to tell) and anchors say.
    pub(crate) async fn standing<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        key: Option<&str>,
        pending: &Pending,
    ) -> Result<Standing, CatalogError> {
        if let Some(key) = key
            && self.root.pending_committed.iter().any(|k| k == key)
        {
            return Ok(Standing::Committed);
        }
        let (mut committed, mut applies) = (true, pending.catalog_id == self.root.catalog_id);
        for change in &pending.shards {
            let now = self.current_sha(catalog, &change.name).await?;
            committed &= now == change.new.as_ref().map(|r| r.sha256.clone());
            applies &= now == change.base;
        }
        if committed {
            return Ok(Standing::Committed);
        }
        for read in &pending.reads {
            applies = applies && self.current_sha(catalog, &read.name).await? == read.base;
        }
        for claim in &pending.anchors {
            if !applies {
                break;
            }
            applies = match self.prefetched_anchor(&claim.id) {
                Some(etag) => etag == Some(claim.etag.as_str()),
                None => catalog
                    .get(&objects::anchor_key(&claim.id))
                    .await?
                    .is_some_and(|v| v.etag == claim.etag),
            };
        }
        Ok(if applies {
            Standing::Applies
        } else {
            Standing::Stale
        })
    }

    /// The sha256 shard `name` has in this view's root (none: there is none).
    async fn current_sha<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        name: &str,
    ) -> Result<Option<String>, CatalogError> {
        if self.root.sections.contains_key(&section_of(name)) {
            self.section(catalog, &section_of(name)).await?;
        }
        Ok(self.shard_ref(name).map(|r| r.sha256.clone()))
    }

    /// Takes in `pending` if it applies to this view as it is now: its shards in their
    /// sections, its entries offered to their pointers. Whether it did.
    pub(crate) async fn apply<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        pending: &Pending,
    ) -> Result<bool, CatalogError> {
        if self.standing(catalog, None, pending).await? != Standing::Applies {
            return Ok(false);
        }
        self.take_in(catalog, pending).await?;
        Ok(true)
    }

    /// Takes in `pending`, known to apply.
    pub(crate) async fn take_in<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        pending: &Pending,
    ) -> Result<(), CatalogError> {
        for change in &pending.shards {
            self.replace_shard(catalog, &change.name, change.new.clone())
                .await?;
        }
        let now = super::entry::now_rfc3339();
        for e in &pending.offers {
            if let Some(name) = e.pointer_name() {
                self.pointer(catalog, &name).await?.offer(e, &now);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_recent_change_leads() {
        let window = Duration::from_millis(1500);
        let k = |ms: u64, r: &str| format!("{PENDING_PREFIX}{ms:013}-{r}.json");
        let mine = k(10_000, "b");
        assert!(leads(&mine, &[], window));
        assert!(leads(&mine, &[k(10_000, "c"), k(10_500, "a")], window));
        assert!(!leads(&mine, &[k(10_000, "a")], window));
        assert!(!leads(&mine, &[k(9_000, "z")], window));
        // Older than the window: committed, stale, or its publisher commits by itself.
        assert!(leads(&mine, &[k(8_000, "z")], window));
    }

    #[test]
    fn keys_say_their_age_and_never_repeat() {
        let a = pending_key(1_000);
        assert!(a.starts_with("pending/0000000001000-"), "{a}");
        assert_ne!(a, pending_key(1_000));
        assert_eq!(age_of_key(&a, 3_000), Some(Duration::from_secs(2)));
        assert_eq!(age_of_key("pending/x.json", 3_000), None);
        assert_eq!(age_of_key("images/1-a.json", 3_000), None);
    }

    #[test]
    fn a_pending_change_names_shards_only_where_they_are_written() {
        let sha = "a".repeat(64);
        let change = |name: &str, key: String| Pending {
            schema: PENDING_SCHEMA.into(),
            catalog_id: None,
            written_at_ms: 0,
            shards: vec![ShardChange {
                name: name.into(),
                base: None,
                new: Some(ShardRef {
                    key,
                    sha256: sha.clone(),
                    images: 1,
                    os_types: Default::default(),
                    definitions: Default::default(),
                    galleries: Default::default(),
                    extra: Default::default(),
                }),
            }],
            reads: Vec::new(),
            anchors: Vec::new(),
            offers: Vec::new(),
        };
        let good = format!("shards/1.30.5/ubuntu-2404-{}.json", &sha[..16]);
        assert!(change("1.30.5/ubuntu-2404", good.clone()).names_its_shards_plainly());
        assert!(!change("1.30.5/ubuntu-2404", "index.json".into()).names_its_shards_plainly());
        assert!(!change("../x/y", good).names_its_shards_plainly());
    }
}
