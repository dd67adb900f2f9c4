//! Yanking and unyanking: an immutable event object (signed in a signed catalog) chained to the
//! image's previous event (of any kind: [`super::lifecycle`] writes the others), then the
//! image's shard, its `latest/` pointer (derived again: the image may have been what it
//! served) and the root, under compare-and-swap.
//!
//! A writer writes an event only to change the state it read; if it loses the race and the
//! image is in the state it wanted when it reads again, it says nothing changed (its event
//! is a dead end no index names, which `verify` reports as one that never took effect).

use super::entry;
use super::objects::{Change, Event};
use super::snapshot::Intent;
use super::store::Store;
use super::{Catalog, CatalogError, YankOutcome};

impl<S: Store> Catalog<S> {
    /// Takes an image out of service (`yanked`), or puts it back.
    pub async fn yank(
        &self,
        id: &str,
        yanked: bool,
        reason: Option<&str>,
    ) -> Result<YankOutcome, CatalogError> {
        self.check_writer()?;
        let at = entry::now_rfc3339();
        let reason = reason.map(|r| crate::redact::redact_secrets(r).into_owned());
        let mut contention = self.contention();
        let mut wrote_event = false;
        loop {
            let mut view = self.write_view(Intent::Write).await?;
            let Some(name) = view.locate(self, id).await? else {
                return Ok(YankOutcome::NoSuchImage);
            };
            let sequence = view.root.sequence + 1;
            let legacy = view.legacy;
            let Some(is_yanked) = view
                .shard(self, &name)
                .await?
                .find(id)
                .map(|e| e.is_yanked())
            else {
                return Ok(YankOutcome::NoSuchImage);
            };
            if is_yanked == yanked && !legacy {
                if wrote_event {
                    tracing::info!(
                        "{id}: another writer changed it to the same state first; this event never took effect"
                    );
                }
                return Ok(YankOutcome::AlreadySo);
            }
            let state = if is_yanked == yanked {
                None
            } else {
                let event = Event::new(
                    id,
                    if yanked { Change::Yank } else { Change::Unyank },
                    reason.clone(),
                    &at,
                    sequence,
                );
                self.write_event(&mut view, &name, id, event).await?;
                wrote_event = true;
                view.shard(self, &name)
                    .await?
                    .find(id)
                    .and_then(|e| e.yank.clone())
            };
            if view.commit(self).await?.is_some() {
                return Ok(match state {
                    Some(state) => YankOutcome::Done(state),
                    None => YankOutcome::AlreadySo,
                });
            }
            contention.lost(self).await?;
        }
    }
}
