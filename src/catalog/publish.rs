//! Publishing: the objects first (create-only, named by their content), then one index update
//! for every entry of the call, under compare-and-swap; a writer that loses re-reads, merges
//! and tries again. An entry's conflict is its own outcome and never stops the others.

use super::entry::{self, Entry};
use super::index::Index;
use super::objects::{self, Kind};
use super::revision::{self, Comparison};
use super::store::Store;
use super::{Catalog, CatalogError, Conflict, Current, INDEX_KEY, Outcome};
use crate::record::Record;
use std::collections::HashMap;

impl<S: Store> Catalog<S> {
    /// Publishes prepared entries: their objects first, then one index update for all of them.
    /// Returns one outcome per entry, in order; an entry's conflict does not stop the others.
    pub async fn publish(&self, entries: &[Entry]) -> Result<Vec<Outcome>, CatalogError> {
        for e in entries {
            self.put_object(&e.record_ref(), &e.record_bytes).await?;
            self.put_object(&e.template_ref(), &e.template_bytes)
                .await?;
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // One time for every try: a revision object written in a lost round is the same one
        // the next round writes.
        let at = entry::now_rfc3339();
        // Stored records by hash: compared once, whatever the number of rounds.
        let mut known: HashMap<String, serde_json::Value> = HashMap::new();
        let mut contention = self.contention();
        loop {
            let Current { mut index, mode } = self.current().await?;
            let mut outcomes = Vec::new();
            for e in entries {
                outcomes.push(self.merge_into(&mut index, e, &at, &mut known).await?);
            }
            if !outcomes.iter().any(Outcome::wrote) || self.write_index(&mut index, &mode).await? {
                return Ok(outcomes);
            }
            contention.lost(self).await?;
        }
    }

    /// Puts one entry into `index` (in memory) and says what that did.
    async fn merge_into(
        &self,
        index: &mut Index,
        e: &Entry,
        at: &str,
        known: &mut HashMap<String, serde_json::Value>,
    ) -> Result<Outcome, CatalogError> {
        let id = e.id.clone();
        let offered_ref = e.record_ref();
        let Some(pos) = index.images.iter().position(|x| x.id == e.id) else {
            let (revision, bytes) = entry::revision(&id, &offered_ref, &e.template_ref(), at);
            self.put_object(&revision, &bytes).await?;
            index.images.push(e.index_entry(revision, at.to_string()));
            known.insert(
                offered_ref.sha256,
                serde_json::to_value(&e.record).expect("records serialise"),
            );
            return Ok(Outcome::Published { id });
        };
        let stored_ref = match index.images[pos].objects.get("record") {
            Some(r) => r.clone(),
            None => return Err(self.corrupt(INDEX_KEY, format!("image {id} has no record"))),
        };
        if stored_ref.sha256 == offered_ref.sha256 {
            return Ok(Outcome::Unchanged { id });
        }
        if !known.contains_key(&stored_ref.sha256) {
            let bytes = self.read_object(&stored_ref).await?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|err| self.corrupt(&stored_ref.key, format!("not a record: {err}")))?;
            known.insert(stored_ref.sha256.clone(), value);
        }
        let offered = serde_json::to_value(&e.record).expect("records serialise");
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
                let old = index.images[pos].clone();
                let template = old.objects.get("template").cloned().ok_or_else(|| {
                    self.corrupt(INDEX_KEY, format!("image {id} has no template"))
                })?;
                let (revision, rev_bytes) = entry::revision(&id, &new_ref, &template, at);
                self.put_object(&revision, &rev_bytes).await?;
                let mut objects = old.objects.clone();
                objects.insert("record".into(), new_ref);
                objects.insert("revision".into(), revision);
                let mut updated = entry::describe(&id, &record, objects, old.published_at.clone());
                updated.updated_at = Some(at.to_string());
                updated.yank = old.yank;
                updated.extra = old.extra;
                index.images[pos] = updated;
                Ok(Outcome::Updated { id, added })
            }
        }
    }
}
