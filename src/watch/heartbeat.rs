//! The liveness file (`--heartbeat`): touched on its own timer, every [`HEARTBEAT_EVERY`],
//! while the watcher watches its directory. It means "the loop is alive and can see new
//! files", whatever a round is doing: a round waiting on a slow storage is still a live loop,
//! and every wait on storage is bounded (`--storage-timeout`). It stops being touched when the
//! drop directory is gone (the watcher is blind), so `sigcat healthcheck` fails.
//!
//! The storage's health is reported separately, inside the file (`storage: ok` or
//! `storage: unavailable since ...`), and shown by `sigcat healthcheck`.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// What the watcher says about itself, shared with the heartbeat task.
#[derive(Debug)]
pub struct Health {
    watching: AtomicBool,
    storage: Mutex<Option<(String, String)>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            watching: AtomicBool::new(true),
            storage: Mutex::new(None),
        }
    }
}

impl Health {
    pub fn set_watching(&self, watching: bool) {
        self.watching.store(watching, Ordering::SeqCst);
    }

    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::SeqCst)
    }

    pub fn storage_ok(&self) {
        *self.storage.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The storage failed; the first failure's time is kept until it works again.
    pub fn storage_down(&self, why: &str) {
        let mut s = self.storage.lock().unwrap_or_else(|e| e.into_inner());
        let since = s
            .take()
            .map(|(since, _)| since)
            .unwrap_or_else(crate::catalog::entry::now_rfc3339);
        *s = Some((since, crate::redact::redact_secrets(why).into_owned()));
    }

    /// The heartbeat file's content.
    pub fn report(&self) -> String {
        let storage = self.storage.lock().unwrap_or_else(|e| e.into_inner());
        let storage = match storage.as_ref() {
            None => "ok".to_string(),
            Some((since, why)) => format!("unavailable since {since}: {why}"),
        };
        format!("pid: {}\nstorage: {storage}\n", std::process::id())
    }
}

/// Touches `path` every [`HEARTBEAT_EVERY`] while `health` says the watcher is watching.
pub fn spawn(path: PathBuf, health: std::sync::Arc<Health>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        let mut warned = false;
        loop {
            tick.tick().await;
            if !health.watching() {
                continue;
            }
            match std::fs::write(&path, health.report()) {
                Ok(()) => warned = false,
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!(heartbeat = %super::shown(&path), "cannot write the heartbeat: {e}");
                }
                Err(_) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_health_is_reported_with_when_it_started() {
        let h = Health::default();
        assert!(h.report().contains("storage: ok"));
        h.storage_down("connection refused");
        let first = h.report();
        h.storage_down("no answer within 10s");
        let second = h.report();
        let since = |r: &str| {
            r.split("since ")
                .nth(1)
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(since(&first), since(&second), "the outage's start is kept");
        assert!(second.contains("no answer within 10s"));
        h.storage_ok();
        assert!(h.report().contains("storage: ok"));
    }
}
