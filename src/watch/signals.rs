//! notify's events → the watcher's own signals, by one pure function (as watchexec's
//! `crates/lib` does), and the adapter that forwards them to the loop through a bounded queue.
//!
//! What matters of an event: which drop item it touches, and how. A close after writing means
//! "written, judge it once it has been quiet"; a rename into the directory means "complete now"
//! (the atomic drop); a rename out or a removal means "gone"; anything about the directory
//! itself (removed, renamed away) means the watcher is blind; an overflow, an error or a full
//! queue means "look at everything again".

use super::drop;
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;

/// How an item changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Closed after writing (or, when polling, seen changed): complete once quiet.
    Written,
    /// Renamed into the directory: complete now, if its content says so.
    RenamedIn,
    /// Removed, or renamed away.
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Signal {
    Item(PathBuf, Change),
    /// Events were lost (overflow, an error, a full queue): list the directory again.
    Rescan,
    /// The drop directory itself was removed or renamed: nothing more will arrive from it.
    DirGone,
}

/// The signals one event means. `dir` is the watched directory, absolute and canonical (the
/// form notify reports paths in); `polling`: there are no close events, so a change is a write.
pub(crate) fn signals(dir: &Path, event: &notify::Result<Event>, polling: bool) -> Vec<Signal> {
    let event = match event {
        Ok(e) => e,
        Err(_) => return vec![Signal::Rescan],
    };
    if event.need_rescan() {
        return vec![Signal::Rescan];
    }
    let about_dir = event.paths.iter().any(|p| p == dir);
    let change = match event.kind {
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From))
            if about_dir =>
        {
            return vec![Signal::DirGone];
        }
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Change::Written,
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Change::RenamedIn,
        // A rename within the directory: the old name is gone, the new one arrived.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if event.paths.len() == 2 => {
            let mut out = Vec::new();
            if let Some(item) = drop::item_for(dir, &event.paths[0]) {
                out.push(Signal::Item(item, Change::Gone));
            }
            if let Some(item) = drop::item_for(dir, &event.paths[1]) {
                out.push(Signal::Item(item, Change::RenamedIn));
            }
            return out;
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
            Change::Gone
        }
        // A creation is looked at too: a FIFO or a socket is only ever created (nothing is
        // written to it, nothing closed), and must still be found and set aside.
        EventKind::Create(_) => Change::Written,
        EventKind::Modify(_) if polling => Change::Written,
        _ => return Vec::new(),
    };
    event
        .paths
        .iter()
        .filter_map(|p| {
            // A file inside a build directory: the directory is the item, and a removal
            // inside it does not remove it.
            let item = drop::item_for(dir, p)?;
            let change = if change == Change::Gone && item != *p {
                Change::Written
            } else {
                change
            };
            Some(Signal::Item(item, change))
        })
        .collect()
}

/// Hands signals to the loop without ever blocking notify's thread: when the queue is full,
/// the signal is dropped and `overflow` set, so the loop rescans instead.
pub(crate) fn forward(tx: &mpsc::Sender<Signal>, overflow: &AtomicBool, signals: Vec<Signal>) {
    for s in signals {
        if tx.try_send(s).is_err() {
            overflow.store(true, Ordering::SeqCst);
        }
    }
}

/// The notify handler for `dir`: events → signals → the queue.
pub(crate) fn handler(
    dir: PathBuf,
    polling: bool,
    tx: mpsc::Sender<Signal>,
    overflow: Arc<AtomicBool>,
) -> impl notify::EventHandler {
    move |event: notify::Result<Event>| forward(&tx, &overflow, signals(&dir, &event, polling))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, Flag, RemoveKind};

    fn event(kind: EventKind, paths: &[&str]) -> notify::Result<Event> {
        let mut e = Event::new(kind);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        Ok(e)
    }

    fn item(p: &str, c: Change) -> Signal {
        Signal::Item(PathBuf::from(p), c)
    }

    const DIR: &str = "/srv/drops";

    #[test]
    fn closes_renames_and_removals() {
        let d = Path::new(DIR);
        let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(
            signals(d, &event(close, &["/srv/drops/a.log"]), false),
            [item("/srv/drops/a.log", Change::Written)]
        );
        let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(
            signals(d, &event(to, &["/srv/drops/a.log"]), false),
            [item("/srv/drops/a.log", Change::RenamedIn)]
        );
        let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert_eq!(
            signals(d, &event(from, &["/srv/drops/a.log"]), false),
            [item("/srv/drops/a.log", Change::Gone)]
        );
        let removed = EventKind::Remove(RemoveKind::File);
        assert_eq!(
            signals(d, &event(removed, &["/srv/drops/a.log"]), false),
            [item("/srv/drops/a.log", Change::Gone)]
        );
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(
            signals(
                d,
                &event(both, &["/srv/drops/a.tmp.log", "/srv/drops/a.log"]),
                false
            ),
            [
                item("/srv/drops/a.tmp.log", Change::Gone),
                item("/srv/drops/a.log", Change::RenamedIn)
            ]
        );
    }

    #[test]
    fn creations_count_and_writes_without_a_close_only_when_polling() {
        let d = Path::new(DIR);
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(signals(d, &event(data, &["/srv/drops/a.log"]), false).is_empty());
        assert_eq!(
            signals(d, &event(data, &["/srv/drops/a.log"]), true),
            [item("/srv/drops/a.log", Change::Written)]
        );
        let create = EventKind::Create(CreateKind::File);
        for polling in [false, true] {
            assert_eq!(
                signals(d, &event(create, &["/srv/drops/a.log"]), polling),
                [item("/srv/drops/a.log", Change::Written)]
            );
        }
    }

    #[test]
    fn the_directory_itself_going_away_blinds_the_watcher() {
        let d = Path::new(DIR);
        for kind in [
            EventKind::Remove(RemoveKind::Folder),
            EventKind::Remove(RemoveKind::Other),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
        ] {
            assert_eq!(
                signals(d, &event(kind, &[DIR]), false),
                [Signal::DirGone],
                "{kind:?}"
            );
        }
    }

    #[test]
    fn overflow_and_errors_mean_a_rescan_and_other_paths_nothing() {
        let d = Path::new(DIR);
        let overflow = Ok(Event::new(EventKind::Other).set_flag(Flag::Rescan));
        assert_eq!(signals(d, &overflow, false), [Signal::Rescan]);
        let error: notify::Result<Event> = Err(notify::Error::generic("inotify went away"));
        assert_eq!(signals(d, &error, false), [Signal::Rescan]);
        let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
        for elsewhere in [
            "/srv/drops/done/a.log",
            "/srv/drops/.staging.log",
            "/srv/other/a.log",
            "/srv/drops/notes.txt",
        ] {
            assert!(
                signals(d, &event(close, &[elsewhere]), false).is_empty(),
                "{elsewhere}"
            );
        }
    }

    #[test]
    fn a_full_queue_drops_signals_and_asks_for_a_rescan() {
        let (tx, mut rx) = mpsc::channel(2);
        let overflow = AtomicBool::new(false);
        forward(&tx, &overflow, vec![Signal::Rescan, Signal::Rescan]);
        assert!(!overflow.load(Ordering::SeqCst));
        forward(
            &tx,
            &overflow,
            vec![item("/srv/drops/c.log", Change::Written)],
        );
        assert!(
            overflow.load(Ordering::SeqCst),
            "the third signal did not fit"
        );
        assert_eq!(rx.try_recv().unwrap(), Signal::Rescan);
        drop(rx);
        let overflow = AtomicBool::new(false);
        forward(&tx, &overflow, vec![Signal::Rescan]);
        assert!(
            overflow.load(Ordering::SeqCst),
            "a closed queue counts as full"
        );
    }
}
