//! Publishing: the objects first (create-only, named by their content), then, for every entry
//! of the call, its shard (the one its Kubernetes version and OS name), the `latest/` pointer
//! it may change, and the root, under compare-and-swap; a writer that loses re-reads, merges
//! and tries again. An entry's conflict is its own outcome and never stops the others.
//!
//! A publish reads and writes the root, the shards of its entries and their pointers: never
//! the whole catalog.

use super::entry::{self, Entry};
use super::index::{IndexEntry, Shard};
use super::objects::{self, Kind};
use super::pending::{Pending, Standing};
use super::revision::{self, Comparison};
use super::snapshot::Intent;
use super::store::Store;
use super::view::View;
use super::{Catalog, CatalogError, Conflict, Outcome};
use crate::record::Record;
use std::collections::HashMap;

/// How long a publisher whose pending change is not the oldest waits for the oldest one's
/// publisher to commit them all, before it commits them itself (that one may have crashed).
const LEADER_PATIENCE: std::time::Duration = std::time::Duration::from_millis(1500);

impl<S: Store> Catalog<S> {
    /// Publishes prepared entries: their objects first, then one root update for all of them.
    /// Returns one outcome per entry, in order; an entry's conflict does not stop the others.
    pub async fn publish(&self, entries: &[Entry]) -> Result<Vec<Outcome>, CatalogError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // A publish that fails takes back the change it left pending, so that nobody commits
        // what it reports as not published (one already read may still be: it is what this
        // publish meant, and publishing again says `unchanged`).
        let mut left_pending = None;
        let result = self.publish_rounds(entries, &mut left_pending).await;
        if result.is_err()
            && let Some(key) = left_pending
        {
            self.forget_pending(&[key]).await;
        }
        result
    }

    async fn publish_rounds(
        &self,
        entries: &[Entry],
        left_pending: &mut Option<String>,
    ) -> Result<Vec<Outcome>, CatalogError> {
        // Before anything is written: a catalog that lost its root, or is rolled back or
        // untrusted, is refused with nothing of this publish in it. The root read now serves
        // the first round too (if another writer changes it meanwhile, the compare-and-swap
        // says so and the next round reads it again).
        // Rounds lost to other writers re-read only what changed.
        let _recent = self.recent.scope();
        let first = self.snapshot(Intent::Write).await?;
        let was_empty = matches!(first.read, super::snapshot::Read::Empty);
        let mut first = Some(first);
        if was_empty {
            // A new catalog gets its root (and so its id) before anything names it: publishers
            // that create one together would otherwise each write revisions for an id of
            // their own, and all but one would be another catalog's for ever. Whoever loses
            // this reads the winner's.
            let mut root = self
                .view_for_writing(first.take().expect("set above"))
                .await?;
            root.commit(self).await?;
        }
        for e in entries {
            self.put_object(&e.record_ref(), &e.record_bytes).await?;
            self.put_object(&e.template_ref(), &e.template_bytes)
                .await?;
        }
        // One time and one sequence for every try: a revision object written in a lost round is
        // the same one the next round writes (named by its content, written once), and so is a
        // shard that nothing else changed. A revision written for the first round's sequence
        // and committed under a later one is older than its root, never newer: what `verify`
        // checks.
        let at = entry::now_rfc3339();
        let mut written_for: Option<u64> = None;
        // Stored records by hash: compared once, whatever the number of rounds.
        let mut known: HashMap<String, serde_json::Value> = HashMap::new();
        // What earlier rounds of this publish did, by the revision they wrote: a change of a
        // lost round that another writer committed is found again as it was, not as
        // `unchanged`.
        let mut earlier: HashMap<String, Outcome> = HashMap::new();
        let mut contention = self.contention();
        // This publish's change as other writers can commit it, once it lost a round, and
        // the outcomes worked out with it.
        let mut pending: Option<(String, Pending, Vec<Outcome>)> = None;
        // Since when this publisher's pending change has been waiting for another to commit
        // it, whether it was found to be the oldest (its publisher leads), and whether that
        // was looked at.
        let mut helping_since: Option<tokio::time::Instant> = None;
        let (mut leads, mut leads_checked) = (false, false);
        loop {
            let snap = match first.take() {
                Some(snap) => snap,
                None => self.snapshot_of(Intent::Write, was_empty).await?,
            };
            let mut view = self.view_for_writing(snap).await?;
            if let Some((key, change, outcomes)) = pending.take() {
                match view.standing(self, Some(&key), &change).await? {
                    // Its file stays a while (removed by a later writer's sweep): removals
                    // on the way of every commit stalled Azurite for seconds.
                    Standing::Committed => {
                        *left_pending = None;
                        return Ok(outcomes);
                    }
                    Standing::Applies => {
                        // The oldest pending change's publisher commits them all; the others
                        // wait for it (a while: it may be gone), so that one does the work.
                        // Who leads is read once (a listing); a follower then only reads the
                        // root until its change is committed, or its patience ends.
                        let waited = *helping_since.get_or_insert_with(tokio::time::Instant::now);
                        let patient = !leads && waited.elapsed() < LEADER_PATIENCE;
                        if patient && leads_checked {
                            pending = Some((key, change, outcomes));
                            contention.let_others_commit(self).await?;
                            continue;
                        }
                        let others = self.pending_keys(&view, &key).await?;
                        if patient {
                            leads_checked = true;
                            leads = super::pending::leads(&key, &others, LEADER_PATIENCE);
                            if !leads {
                                pending = Some((key, change, outcomes));
                                contention.let_others_commit(self).await?;
                                continue;
                            }
                        }
                        // Commit it, and every other pending change that applies with it.
                        view.take_in(self, &change).await?;
                        let mut done = vec![key.clone()];
                        let theirs = self.read_pendings(&view, others).await;
                        view.prefetch(self, &theirs.iter().map(|(_, p)| p).collect::<Vec<_>>())
                            .await?;
                        for (other, theirs) in theirs {
                            if view.apply(self, &theirs).await? {
                                done.push(other);
                            }
                        }
                        view.root.note_committed(&done);
                        if view.commit(self).await?.is_some() {
                            *left_pending = None;
                            return Ok(outcomes);
                        }
                        // Lost to another writer: the leader tries again almost at once.
                        pending = Some((key, change, outcomes));
                        contention
                            .wait(
                                self,
                                std::time::Duration::from_millis(fastrand::u64(0..=10)),
                            )
                            .await?;
                        continue;
                    }
                    // A shard changed under it: merge again, from what is there now.
                    Standing::Stale => {
                        self.forget_pending(&[key]).await;
                        *left_pending = None;
                    }
                }
            }
            let sequence = *written_for.get_or_insert(view.root.sequence + 1);
            let mut outcomes = Vec::new();
            let mut wrote = HashMap::new();
            for e in entries {
                let mine = (&earlier, &mut wrote);
                outcomes.push(
                    self.merge_into(&mut view, e, &at, sequence, &mut known, mine)
                        .await?,
                );
            }
            earlier.extend(wrote);
            // Nothing to write (or all of it committed already, from a lost round).
            let bases = view.dirty_bases();
            if bases.is_empty() && !view.legacy {
                return Ok(outcomes);
            }
            if view.commit(self).await?.is_some() {
                return Ok(outcomes);
            }
            // Lost to another writer: what this round wrote stays, and whoever commits next
            // may commit it too (a layout 1 to 3 index is upgraded by one writer alone).
            if self.group_commit && !view.legacy {
                let change = Pending::of(&view, bases);
                let key = self.put_pending(&change).await?;
                *left_pending = Some(key.clone());
                pending = Some((key, change, outcomes));
                (helping_since, leads, leads_checked) = (None, false, false);
                contention.let_others_commit(self).await?;
                continue;
            }
            contention.lost(self).await?;
        }
    }

    /// The view a writer works on: checked for writing, and a layout 1 to 3 index upgraded
    /// (its objects signed when a trusted signature vouches for them).
    pub(crate) async fn write_view(&self, intent: Intent) -> Result<View, CatalogError> {
        let snap = self.snapshot(intent).await?;
        self.view_for_writing(snap).await
    }

    async fn view_for_writing(
        &self,
        snap: super::snapshot::Snapshot,
    ) -> Result<View, CatalogError> {
        let mut view = View::of(self, snap).await?;
        view.claim_catalog_id();
        if view.legacy {
            self.upgrade(&mut view).await?;
        }
        Ok(view)
    }

    /// A layout 1 to 3 index becomes layout 5 at its next write: its sections, shards and pointers are
    /// written, and with a signing key every revision and yank event its (trusted) signature
    /// vouched for is signed on its own, said on stderr; a layout 1 image gets the revision
    /// object it never had.
    async fn upgrade(&self, view: &mut View) -> Result<(), CatalogError> {
        let signing = self.signer.is_some();
        if signing && view.signed_by.is_none() {
            // Unreachable in practice: a signer only reads a root its keys verify.
            return Err(self.untrusted(objects::INDEX_KEY, super::signing::Untrusted::Unsigned));
        }
        let names = view.all_shard_names(self).await?;
        let catalog_id = view.root.catalog_id.clone();
        let (mut revisions, mut events) = (0, 0);
        // Every image gets its anchor: without one, a publish of it with other content (another
        // Kubernetes version) would take it for a new image and add it a second time.
        let mut anchors = Vec::new();
        for name in names {
            let shard = view.shard(self, &name).await?;
            anchors.extend(shard.images.iter().map(|e| (e.id.clone(), name.clone())));
            for e in &mut shard.images {
                if !e.objects.contains_key("revision") {
                    let (record, template) =
                        (e.objects["record"].clone(), e.objects["template"].clone());
                    let (r, bytes) = entry::revision(
                        &e.id,
                        &record,
                        &template,
                        &e.published_at,
                        0,
                        catalog_id.as_deref(),
                    );
                    self.put_signed(&r, &bytes).await?;
                    e.objects.insert("revision".into(), r);
                    revisions += 1;
                } else if signing {
                    let r = &e.objects["revision"];
                    let bytes = self.read_object(r).await?;
                    self.put_signed(r, &bytes).await?;
                    revisions += 1;
                }
                if signing && let Some(y) = &e.yank {
                    let bytes = self.read_object(&y.event).await?;
                    self.put_signed(&y.event, &bytes).await?;
                    events += 1;
                }
            }
            view.mark(&name);
        }
        let writes: Vec<_> = anchors
            .iter()
            .map(|(id, shard)| self.put_anchor(id, shard))
            .collect();
        self.all_bounded(writes).await?;
        tracing::warn!(
            "upgrading {} to layout 5 (sharded, with a sequence and an expiry){}",
            self.describe(),
            match &view.signed_by {
                Some(who) if signing => format!(
                    ": signing {revisions} revisions and {events} yank events that its index, signed by {who}, vouches for"
                ),
                _ => String::new(),
            }
        );
        Ok(())
    }

    /// Puts one entry into its shard (in memory) and says what that did.
    async fn merge_into(
        &self,
        view: &mut View,
        e: &Entry,
        at: &str,
        sequence: u64,
        known: &mut HashMap<String, serde_json::Value>,
        (earlier, mine): (&HashMap<String, Outcome>, &mut HashMap<String, Outcome>),
    ) -> Result<Outcome, CatalogError> {
        let id = e.id.clone();
        let offered_ref = e.record_ref();
        let offered_shard =
            entry::describe(&id, &e.record, Default::default(), String::new()).shard_name();
        let mut here = match view.shard(self, &offered_shard).await?.find(&id) {
            Some(_) => Some(offered_shard.clone()),
            None => view.locate_for_publish(self, &id, &offered_shard).await?,
        };
        if here.is_none() {
            here = self.claim_anchor(view, &id, &offered_shard, None).await?;
        }
        let Some(shard_name) = here else {
            let (revision, bytes) = entry::revision(
                &id,
                &offered_ref,
                &e.template_ref(),
                at,
                sequence,
                view.root.catalog_id.as_deref(),
            );
            self.put_signed(&revision, &bytes).await?;
            mine.insert(revision.key.clone(), Outcome::Published { id: id.clone() });
            let new = e.index_entry(revision, at.to_string());
            self.offer_to_pointer(view, &new).await?;
            view.shard(self, &offered_shard).await?.images.push(new);
            view.mark(&offered_shard);
            known.insert(
                offered_ref.sha256,
                serde_json::to_value(&e.record).unwrap_or_default(),
            );
            return Ok(Outcome::Published { id });
        };
        let old = view
            .shard(self, &shard_name)
            .await?
            .find(&id)
            .cloned()
            .ok_or_else(|| self.corrupt(&shard_name, format!("image {id} went missing")))?;
        if let Some(done) = old
            .objects
            .get("revision")
            .and_then(|r| earlier.get(&r.key))
        {
            return Ok(done.clone());
        }
        let stored_ref = old.objects["record"].clone();
        if stored_ref.sha256 == offered_ref.sha256 {
            return Ok(Outcome::Unchanged { id });
        }
        if !known.contains_key(&stored_ref.sha256) {
            let bytes = self.read_object(&stored_ref).await?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|err| self.corrupt(&stored_ref.key, format!("not a record: {err}")))?;
            known.insert(stored_ref.sha256.clone(), value);
        }
        let offered = serde_json::to_value(&e.record).unwrap_or_default();
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
                let template = old.objects["template"].clone();
                let (revision, rev_bytes) = entry::revision(
                    &id,
                    &new_ref,
                    &template,
                    at,
                    sequence,
                    view.root.catalog_id.as_deref(),
                );
                self.put_signed(&revision, &rev_bytes).await?;
                mine.insert(
                    revision.key.clone(),
                    Outcome::Updated {
                        id: id.clone(),
                        added: added.clone(),
                    },
                );
                let mut objects = old.objects.clone();
                objects.insert("record".into(), new_ref);
                objects.insert("revision".into(), revision);
                let mut updated = entry::describe(&id, &record, objects, old.published_at.clone());
                updated.updated_at = Some(at.to_string());
                updated.yank = old.yank.clone();
                updated.extra = old.extra.clone();
                // A Kubernetes version filled in moves the image to the shard of that version.
                let new_shard = updated.shard_name();
                if new_shard != shard_name {
                    self.claim_anchor(view, &id, &new_shard, Some(&shard_name))
                        .await?;
                }
                remove(view.shard(self, &shard_name).await?, &id);
                view.mark(&shard_name);
                self.offer_to_pointer(view, &updated).await?;
                view.shard(self, &new_shard).await?.images.push(updated);
                view.mark(&new_shard);
                Ok(Outcome::Updated { id, added })
            }
        }
    }

    /// A new or updated image may be the new latest of its minor and OS.
    async fn offer_to_pointer(&self, view: &mut View, e: &IndexEntry) -> Result<(), CatalogError> {
        view.offer(self, e).await
    }

    /// Re-signs the catalog as it is, with a higher sequence and a new expiry, and its
    /// pointers with it (those that name an image past its end of life derived again): what a team that publishes rarely runs on a schedule, so readers
    /// never see it expire. An expired root is re-signed only when `accept_expired` says so
    /// (a reader without state could otherwise be fed an old, expired root to re-sign).
    pub async fn refresh(&self, accept_expired: bool) -> Result<u64, CatalogError> {
        let mut contention = self.contention();
        loop {
            let mut view = self.write_view(Intent::Refresh { accept_expired }).await?;
            // Every pointer stamped with the new root; one that names an image past its end
            // of life (time passed since it was written) derived again.
            let now = entry::now_rfc3339();
            let names = view.all_pointer_names();
            for name in names {
                if view.pointer(self, &name).await?.serves_expired(&now) {
                    let latest = view.derive_pointer(self, &name).await?;
                    view.set_pointer(&name, latest);
                }
            }
            if let Some(sequence) = view.commit(self).await? {
                return Ok(sequence);
            }
            contention.lost(self).await?;
        }
    }
}

fn remove(shard: &mut Shard, id: &str) {
    shard.images.retain(|e| e.id != id);
}
