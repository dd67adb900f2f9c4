//! The liveness file (`--heartbeat`): touched on its own timer, every [`HEARTBEAT_EVERY`],
//! while the watcher watches its directory. It means "the loop is alive and can see new
//! files", whatever a round is doing: a round waiting on a slow storage is still a live loop,
//! and every wait on storage is bounded (`--storage-timeout`). It stops being touched when the
//! drop directory is gone (the watcher is blind), so `sigcat healthcheck` fails.
//!
//! The storage's health is reported separately, inside the file (`storage: ok` or
//! `storage: unavailable since ...`), and shown by `sigcat healthcheck`.

use crate::fault::{Classify, Fault};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the heartbeat file is touched.
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
    /// Whether the watcher can see its directory (the heartbeat stops when it cannot).
    pub fn set_watching(&self, watching: bool) {
        self.watching.store(watching, Ordering::SeqCst);
    }

    /// Whether the watcher sees its directory.
    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::SeqCst)
    }

    /// The storage works again.
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

/// The most of a heartbeat file that is read: the watcher writes a few dozen bytes.
const HEARTBEAT_MAX_BYTES: u64 = 4096;

/// How far in the future a heartbeat may be and still count (clocks of two containers that
/// share a volume disagree a little).
const CLOCK_SKEW: Duration = Duration::from_secs(5);

/// What `sigcat healthcheck` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liveness {
    /// Why the watcher is not healthy; `None` when its heartbeat is fresh.
    pub unhealthy: Option<String>,
    /// The storage's health as the watcher wrote it (`ok`, or `unavailable since ...`).
    pub storage: Option<String>,
}

impl Classify for Liveness {
    fn fault(&self) -> Option<Fault> {
        self.unhealthy.as_ref().map(|_| Fault::Unhealthy)
    }
}

/// Checks a heartbeat file as of `now`: fresh if it was touched within `max_age`. It never
/// blocks or reads without bound: the file must be a regular file (a FIFO or a device named
/// like the heartbeat is unhealthy, not waited on), and only its first few KiB are read. A
/// heartbeat from the future (beyond a few seconds of clock skew) does not count.
pub fn check(path: &Path, max_age: Duration, now: std::time::SystemTime) -> Liveness {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = super::shown(path);
    let unhealthy = |why: String| Liveness {
        unhealthy: Some(why),
        storage: None,
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => return unhealthy(format!("{shown}: {e}")),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return unhealthy(format!("{shown}: {e}")),
    };
    if !meta.is_file() {
        return unhealthy(format!(
            "{shown} is not a regular file, so it is not a heartbeat"
        ));
    }
    if meta.len() > HEARTBEAT_MAX_BYTES {
        return unhealthy(format!(
            "{shown} is {} bytes, larger than a heartbeat: it is not one",
            meta.len()
        ));
    }
    let mut text = String::new();
    let _ = file.take(HEARTBEAT_MAX_BYTES).read_to_string(&mut text);
    let storage = text
        .lines()
        .find_map(|l| l.strip_prefix("storage: ").map(str::to_string));
    let pid = text.lines().any(|l| {
        l.strip_prefix("pid: ")
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    if storage.is_none() || !pid {
        return unhealthy(format!(
            "{shown} is not a heartbeat (no `pid:` and `storage:` lines): is it the file `sigcat watch --heartbeat` writes?"
        ));
    }
    let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
    let why = match now.duration_since(modified) {
        Ok(age) if age <= max_age => None,
        Ok(age) => Some(format!(
            "{shown} was last touched {}s ago (limit {}s): the watcher is stuck, or its drop directory is gone",
            age.as_secs(),
            max_age.as_secs()
        )),
        Err(ahead) if ahead.duration() <= CLOCK_SKEW => None,
        Err(ahead) => Some(format!(
            "{shown} was touched {}s in the future: a clock is wrong, or something other than the watcher wrote it",
            ahead.duration().as_secs()
        )),
    };
    Liveness {
        unhealthy: why,
        storage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_is_fresh_only_within_its_age_and_not_from_the_future() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hb");
        std::fs::write(&path, "pid: 1\nstorage: ok\n").unwrap();
        let touched = std::fs::metadata(&path).unwrap().modified().unwrap();
        let minute = Duration::from_secs(60);
        let fresh = check(&path, minute, touched + Duration::from_secs(10));
        assert_eq!(fresh.fault(), None, "{fresh:?}");
        assert_eq!(fresh.storage.as_deref(), Some("ok"));
        let stale = check(&path, minute, touched + Duration::from_secs(61));
        assert_eq!(stale.fault(), Some(Fault::Unhealthy));
        assert!(stale.unhealthy.unwrap().contains("61s ago"));
        let future = check(&path, minute, touched - Duration::from_secs(3600));
        assert!(future.unhealthy.unwrap().contains("in the future"));
        let skewed = check(&path, minute, touched - Duration::from_secs(2));
        assert_eq!(skewed.fault(), None, "a little clock skew is fine");
        let missing = check(&dir.path().join("nope"), minute, touched);
        assert_eq!(missing.fault(), Some(Fault::Unhealthy));
    }

    #[test]
    fn a_file_that_is_not_a_heartbeat_is_unhealthy_however_fresh() {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in [
            ("empty", "".to_string()),
            ("hello", "hello\n".to_string()),
            ("no-pid", "storage: ok\n".to_string()),
            ("big", format!("pid: 1\nstorage: ok\n{}", "x".repeat(5000))),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            let touched = std::fs::metadata(&path).unwrap().modified().unwrap();
            let l = check(&path, Duration::from_secs(60), touched);
            assert_eq!(l.fault(), Some(Fault::Unhealthy), "{name}: {l:?}");
        }
    }

    #[test]
    fn a_fifo_or_a_device_is_not_waited_on_or_read_without_end() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let now = std::time::SystemTime::now();
        for path in [fifo.as_path(), Path::new("/dev/zero")] {
            let l = check(path, Duration::from_secs(60), now);
            assert!(
                l.unhealthy
                    .as_deref()
                    .unwrap()
                    .contains("not a regular file"),
                "{l:?}"
            );
        }
    }

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
