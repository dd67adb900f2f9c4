//! Yanking: an immutable event object chained to the image's previous one, then the index.

use super::entry;
use super::index::YankState;
use super::objects::{self, Kind, YankEvent};
use super::store::Store;
use super::{Catalog, CatalogError, Current, YankOutcome};

impl<S: Store> Catalog<S> {
    /// Takes an image out of service (`yanked`), or puts it back: an immutable event object,
    /// chained to the image's previous one, then the index.
    pub async fn yank(
        &self,
        id: &str,
        yanked: bool,
        reason: Option<&str>,
    ) -> Result<YankOutcome, CatalogError> {
        let at = entry::now_rfc3339();
        let reason = reason.map(|r| crate::redact::redact_secrets(r).into_owned());
        let mut contention = self.contention();
        loop {
            let Current { mut index, mode } = self.current().await?;
            let Some(entry) = index.images.iter_mut().find(|e| e.id == id) else {
                return Ok(YankOutcome::NoSuchImage);
            };
            if entry.is_yanked() == yanked {
                return Ok(YankOutcome::AlreadySo);
            }
            let event = YankEvent {
                id: id.to_string(),
                yanked,
                reason: reason.clone(),
                at: at.clone(),
                previous: entry.yank.as_ref().map(|y| y.event.key.clone()),
            };
            let bytes = serde_json::to_vec_pretty(&event).expect("events serialise");
            let event_ref = objects::object_ref(id, Kind::Yank, &bytes);
            self.put_object(&event_ref, &bytes).await?;
            let state = YankState {
                yanked,
                reason: reason.clone(),
                at: at.clone(),
                event: event_ref,
            };
            entry.yank = Some(state.clone());
            if self.write_index(&mut index, &mode).await? {
                return Ok(YankOutcome::Done(state));
            }
            contention.lost(self).await?;
        }
    }
}
