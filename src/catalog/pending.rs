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
use super::objects::{sha256, sig_key};
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

/// How old one must be before any writer removes it (its publisher crashed, or gave up).
const ABANDONED: Duration = Duration::from_secs(600);

/// How many pending changes a writer reads in one round: a flood of planted files costs a
/// bounded amount of work.
const MAX_READ: usize = 64;

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
    /// The new and updated entries, for their `latest/` pointers.
    pub offers: Vec<IndexEntry>,
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
    let ms: u64 = key
        .strip_prefix(PENDING_PREFIX)?
        .split_once('-')?
        .0
        .parse()
        .ok()?;
    Some(Duration::from_millis(now.saturating_sub(ms)))
}

impl Pending {
    /// What `view` changed in the shards `bases` names (read before its commit was tried).
    pub(crate) fn of(view: &View, bases: Vec<(String, Option<String>)>) -> Pending {
        Pending {
            schema: PENDING_SCHEMA.into(),
            catalog_id: view.root.catalog_id.clone(),
            written_at_ms: now_ms(),
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
        self.shards.iter().all(|c| {
            !c.name.contains("..")
                && c.name.split('/').count() == 2
                && c.base.as_deref().is_none_or(valid_hash)
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

    /// Other writers' pending changes that this writer may commit (oldest first): signed by a
    /// trusted key (when the catalog is signed), for this catalog, fresh, and well formed.
    /// Anything else is skipped and said; ones abandoned long ago are removed.
    pub(crate) async fn pending_changes(
        &self,
        view: &View,
        mine: &str,
    ) -> Result<Vec<(String, Pending)>, CatalogError> {
        let now = now_ms();
        let keys = self.list_keys(PENDING_PREFIX).await?;
        let mut abandoned = Vec::new();
        let mut fresh = Vec::new();
        for key in keys
            .into_iter()
            .filter(|k| k.ends_with(".json") && k != mine)
        {
            match age_of_key(&key, now) {
                Some(age) if age <= FRESH => fresh.push(key),
                Some(age) if age > ABANDONED => abandoned.push(key),
                Some(_) => {}
                None => tracing::debug!("{key}: not a pending change's name: skipped"),
            }
        }
        abandoned.truncate(MAX_READ);
        self.forget_pending(&abandoned).await;
        fresh.truncate(MAX_READ);
        let trust = self.trusted_keys();
        let reads: Vec<_> = fresh
            .into_iter()
            .map(|key| self.read_pending(key, trust.as_ref(), view, now))
            .collect();
        let read: Vec<Result<Option<(String, Pending)>, CatalogError>> =
            futures::stream::iter(reads)
                .buffered(self.concurrency)
                .collect()
                .await;
        let mut out = Vec::new();
        for r in read {
            out.extend(r?);
        }
        Ok(out)
    }

    /// One pending change, if this writer may commit it; why not is said (never an error: one
    /// publisher's problem is not another's).
    async fn read_pending(
        &self,
        key: String,
        trust: Option<&super::signing::Trust>,
        view: &View,
        now: u64,
    ) -> Result<Option<(String, Pending)>, CatalogError> {
        let Some(v) = self.get(&key).await? else {
            return Ok(None); // committed and removed meanwhile
        };
        let problem = match trust {
            Some(trust) => {
                let sig = self.get(&sig_key(&key)).await?.map(|s| s.bytes);
                trust
                    .verify(&v.bytes, sig.as_deref())
                    .err()
                    .map(|p| format!("not signed by a trusted key ({p})"))
            }
            None if view.signed_by.is_some() => {
                Some("the catalog is signed, and there is no key to check it with".into())
            }
            None => None,
        };
        let parsed = match problem {
            Some(p) => Err(p),
            None => serde_json::from_slice::<Pending>(&v.bytes)
                .map_err(|e| format!("not a pending change ({e})")),
        };
        let checked = parsed.and_then(|p| {
            let age = Duration::from_millis(now.saturating_sub(p.written_at_ms));
            if p.schema != PENDING_SCHEMA {
                Err(format!("schema {}", p.schema))
            } else if p.catalog_id != view.root.catalog_id {
                Err("written for another catalog".into())
            } else if age > FRESH || p.written_at_ms > now + FRESH.as_millis() as u64 {
                Err("not written in the last two minutes".into())
            } else if !p.names_its_shards_plainly() {
                Err("it names shards where sigcat does not write them".into())
            } else if let Some(e) = p
                .offers
                .iter()
                .find_map(|e| self.check_entry(e, None).err())
            {
                Err(crate::error::chain(&e))
            } else {
                Ok(p)
            }
        });
        match checked {
            Ok(p) => Ok(Some((key, p))),
            // Committed and removed while it was read.
            Err(_) if self.get(&key).await?.is_none() => Ok(None),
            Err(why) => {
                tracing::warn!("{}: pending change {key} skipped: {why}", self.describe());
                Ok(None)
            }
        }
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
    /// Where `pending` stands against this view's root (its sections are read to tell).
    pub(crate) async fn standing<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        pending: &Pending,
    ) -> Result<Standing, CatalogError> {
        let (mut committed, mut applies) = (true, true);
        for change in &pending.shards {
            if self.root.sections.contains_key(&section_of(&change.name)) {
                self.section(catalog, &section_of(&change.name)).await?;
            }
            let now = self.shard_ref(&change.name).map(|r| r.sha256.clone());
            committed &= now == change.new.as_ref().map(|r| r.sha256.clone());
            applies &= now == change.base;
        }
        Ok(if committed {
            Standing::Committed
        } else if applies && pending.catalog_id == self.root.catalog_id {
            Standing::Applies
        } else {
            Standing::Stale
        })
    }

    /// Takes in `pending` if it applies to this view as it is now: its shards in their
    /// sections, its entries offered to their pointers. Whether it did.
    pub(crate) async fn apply<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        pending: &Pending,
    ) -> Result<bool, CatalogError> {
        if self.standing(catalog, pending).await? != Standing::Applies {
            return Ok(false);
        }
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
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            offers: Vec::new(),
        };
        let good = format!("shards/1.30.5/ubuntu-2404-{}.json", &sha[..16]);
        assert!(change("1.30.5/ubuntu-2404", good.clone()).names_its_shards_plainly());
        assert!(!change("1.30.5/ubuntu-2404", "index.json".into()).names_its_shards_plainly());
        assert!(!change("../x/y", good).names_its_shards_plainly());
    }
}
