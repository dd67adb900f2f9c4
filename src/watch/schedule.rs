//! Which drop items are pending and when each is due to be judged again: a plain struct, with
//! no I/O, so that its rules are unit-tested.
//!
//! - A signal makes an item due now (unless it is waiting out a storage outage).
//! - An item that is not finished is looked at again after `settle`.
//! - A gone item is forgotten at once: it costs nothing from then on.
//! - While the storage is down, the items that were to be published wait for the storage
//!   backoff (one backoff for all of them: the storage is one thing).

use super::judge::{Context, Look};
use super::signals::Change;
use crate::retry::{Backoff, BackoffConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
struct Pending {
    due: Instant,
    first_seen: Instant,
    renamed_in: bool,
    look: Option<Look>,
    /// Said once at WARN that it cannot be read (then at DEBUG).
    warned: bool,
    storage_wait: bool,
}

#[derive(Debug)]
pub(crate) struct Schedule {
    items: BTreeMap<PathBuf, Pending>,
    settle: Duration,
    storage: Backoff,
}

impl Schedule {
    pub(crate) fn new(settle: Duration, max_backoff: Duration) -> Schedule {
        Schedule {
            items: BTreeMap::new(),
            settle,
            storage: Backoff::new(BackoffConfig {
                init: Duration::from_millis(500).min(max_backoff),
                max: max_backoff,
                base: 2.0,
            }),
        }
    }

    /// Something happened to an item.
    pub(crate) fn notice(&mut self, item: PathBuf, change: Change, now: Instant) {
        if change == Change::Gone {
            self.items.remove(&item);
            return;
        }
        let p = self.items.entry(item).or_insert(Pending {
            due: now,
            first_seen: now,
            renamed_in: false,
            look: None,
            warned: false,
            storage_wait: false,
        });
        // Written again after a rename: it must now be quiet like any written file.
        p.renamed_in = change == Change::RenamedIn;
        if !p.storage_wait {
            p.due = now;
        }
    }

    /// An item found by listing the directory (the backlog, a rescan): as if just written,
    /// so its modification time decides whether it is quiet.
    pub(crate) fn found(&mut self, item: PathBuf, now: Instant) {
        if !self.items.contains_key(&item) {
            self.notice(item, Change::Written, now);
        }
    }

    /// Up to `max` items due at `now`, the longest-waiting first.
    pub(crate) fn due(&self, now: Instant, max: usize) -> Vec<PathBuf> {
        let mut due: Vec<(&PathBuf, &Pending)> =
            self.items.iter().filter(|(_, p)| p.due <= now).collect();
        due.sort_by_key(|(path, p)| (p.due, (*path).clone()));
        due.into_iter().take(max).map(|(k, _)| k.clone()).collect()
    }

    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.items.values().map(|p| p.due).min()
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// What the judge needs to know about an item.
    pub(crate) fn context(&self, item: &Path, now: Instant) -> Context {
        match self.items.get(item) {
            Some(p) => Context {
                renamed_in: p.renamed_in,
                known_for: now.saturating_duration_since(p.first_seen),
                previous: p.look.clone(),
            },
            None => Context::default(),
        }
    }

    /// Not finished yet: look again after `settle`, remembering what was seen.
    pub(crate) fn wait(&mut self, item: &Path, look: Option<Look>, now: Instant) {
        if let Some(p) = self.items.get_mut(item) {
            p.due = now + self.settle;
            p.look = look;
        }
    }

    /// It cannot be read: returns whether to say so at WARN (the first time).
    pub(crate) fn unreadable(&mut self, item: &Path, now: Instant) -> bool {
        let Some(p) = self.items.get_mut(item) else {
            return false;
        };
        p.due = now + self.settle;
        !std::mem::replace(&mut p.warned, true)
    }

    /// Done with it (published, moved, gone).
    pub(crate) fn forget(&mut self, item: &Path) {
        self.items.remove(item);
    }

    /// The storage failed while these were being published: they wait for it together.
    /// Returns the delay.
    pub(crate) fn storage_down(&mut self, items: &[PathBuf], now: Instant) -> Duration {
        let delay = self.storage.next_delay();
        for item in items {
            if let Some(p) = self.items.get_mut(item) {
                p.storage_wait = true;
                p.due = now + delay;
            }
        }
        delay
    }

    /// The storage worked again.
    pub(crate) fn storage_up(&mut self) {
        self.storage.reset();
        for p in self.items.values_mut() {
            p.storage_wait = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn a_signal_makes_an_item_due_and_a_wait_postpones_it() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(2), Duration::from_secs(60));
        s.notice(p("/d/a.log"), Change::Written, t0);
        s.notice(p("/d/b.log"), Change::RenamedIn, t0);
        assert_eq!(s.due(t0, 10), [p("/d/a.log"), p("/d/b.log")]);
        assert!(s.context(&p("/d/b.log"), t0).renamed_in);
        s.wait(&p("/d/a.log"), None, t0);
        assert_eq!(s.due(t0, 10), [p("/d/b.log")]);
        assert_eq!(s.next_due(), Some(t0));
        assert_eq!(s.due(t0 + Duration::from_secs(2), 10).len(), 2);
        // A new write brings it forward again, and it is no longer a renamed-in file.
        s.notice(p("/d/b.log"), Change::Written, t0);
        assert!(!s.context(&p("/d/b.log"), t0).renamed_in);
        assert_eq!(s.due(t0, 1), [p("/d/b.log")], "max per round");
    }

    #[test]
    fn a_gone_item_is_forgotten_and_costs_nothing() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(2), Duration::from_secs(60));
        for i in 0..2000 {
            s.notice(p(&format!("/d/{i}.log")), Change::Written, t0);
        }
        for i in 0..2000 {
            s.notice(p(&format!("/d/{i}.log")), Change::Gone, t0);
        }
        assert!(s.is_empty());
        assert_eq!(s.next_due(), None, "nothing to wake up for");
    }

    #[test]
    fn storage_outages_back_off_together_and_signals_do_not_cut_the_wait() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(2), Duration::from_secs(4));
        let items = [p("/d/a.log"), p("/d/b.log")];
        for i in &items {
            s.notice(i.clone(), Change::RenamedIn, t0);
        }
        let mut delays = Vec::new();
        for _ in 0..6 {
            delays.push(s.storage_down(&items, t0));
        }
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(4)),
            "{delays:?}"
        );
        assert!(delays[5] >= Duration::from_millis(250), "{delays:?}");
        s.notice(p("/d/a.log"), Change::Written, t0);
        assert!(
            s.due(t0, 10).is_empty(),
            "a write does not hammer a storage that is down"
        );
        s.storage_up();
        s.notice(p("/d/a.log"), Change::Written, t0);
        assert_eq!(s.due(t0, 10), [p("/d/a.log")]);
    }

    #[test]
    fn a_tiny_max_backoff_is_honoured_not_a_panic() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(2), Duration::from_millis(100));
        s.notice(p("/d/a.log"), Change::RenamedIn, t0);
        for _ in 0..5 {
            assert!(s.storage_down(&[p("/d/a.log")], t0) <= Duration::from_millis(100));
        }
    }

    #[test]
    fn an_unreadable_item_is_said_once() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(2), Duration::from_secs(60));
        s.notice(p("/d/a.log"), Change::Written, t0);
        assert!(s.unreadable(&p("/d/a.log"), t0));
        assert!(!s.unreadable(&p("/d/a.log"), t0));
        let later = t0 + Duration::from_secs(700);
        assert_eq!(
            s.context(&p("/d/a.log"), later).known_for,
            Duration::from_secs(700)
        );
    }
}
