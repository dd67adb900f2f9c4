//! A drop directory → the catalog, continuously (`sigcat watch`).
//!
//! The parts, in the order data goes through them:
//! - [`signals`]: notify's events → the watcher's signals (a pure function), through a bounded
//!   queue that turns overflow into a rescan;
//! - [`schedule`]: which items are pending and when each is due;
//! - [`judge`]: what an item is (ready, still being written, gone, not a regular file...);
//! - [`round`]: judge the due items, prepare each on its own, publish, move each where it goes;
//! - [`heartbeat`]: the liveness file, on its own timer;
//! - [`drop`]: the directory's convention and the moves.
//!
//! Publishing is idempotent and a file leaves the directory only after its images are in the
//! catalog's index, so a crash at any moment loses nothing and publishes nothing twice.

mod drop;
pub mod heartbeat;
mod judge;
mod round;
mod schedule;
mod signals;

use crate::catalog::Catalog;
use crate::catalog::store::Store;
use crate::fault::{Classify, Fault};
use crate::render::TemplateOptions;
use notify::{RecursiveMode, Watcher};
use schedule::Schedule;
use signals::Signal;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How `sigcat watch` runs.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The drop directory.
    pub dir: PathBuf,
    /// Judge what is in the directory now, publish what is finished, and exit.
    pub once: bool,
    /// Poll at this interval instead of using inotify (network filesystems).
    pub poll: Option<Duration>,
    /// Files judged at once.
    pub concurrency: usize,
    /// Files published in one catalog write (one index update).
    pub max_batch: usize,
    /// How long a written (not renamed-in) file must be quiet to count as finished.
    pub settle: Duration,
    /// Quiet time after which an unfinished log is taken as it is (and a lone manifest or an
    /// unreadable file set aside).
    pub incomplete_timeout: Duration,
    /// After SIGTERM / Ctrl-C, the longest wait for the work in flight.
    pub shutdown_timeout: Duration,
    /// Longest wait between two tries while the storage is unavailable.
    pub max_backoff: Duration,
    /// Touched every few seconds while the watcher watches, for liveness probes.
    pub heartbeat: Option<PathBuf>,
    /// Signals queued between notify and the loop; when full, the directory is rescanned.
    pub event_queue: usize,
    /// How each image's AzureMachineTemplate is rendered for the catalog.
    pub template: TemplateOptions,
    /// How long the drop directory may be gone before the watcher gives up.
    pub dir_grace: Duration,
    /// Fault injection for tests: notify's thread is stopped after this long, as if it died.
    #[doc(hidden)]
    pub stop_notify_after: Option<Duration>,
}

impl WatchConfig {
    /// The defaults, for `dir`.
    pub fn new(dir: PathBuf) -> Self {
        WatchConfig {
            dir,
            once: false,
            poll: None,
            concurrency: 4,
            max_batch: 64,
            settle: Duration::from_secs(2),
            incomplete_timeout: Duration::from_secs(600),
            shutdown_timeout: Duration::from_secs(30),
            max_backoff: Duration::from_secs(60),
            heartbeat: None,
            event_queue: 4096,
            template: TemplateOptions::default(),
            dir_grace: Duration::from_secs(60),
            stop_notify_after: None,
        }
    }
}

/// What a run did, logged at the end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Files published (moved to done/).
    pub published_files: u64,
    /// Files whose every build failed (moved to failed/).
    pub failed_files: u64,
    /// Files set aside in quarantine/.
    pub quarantined_files: u64,
    /// Images new in the catalog, or updated.
    pub images_published: u64,
    /// Images already there unchanged.
    pub images_unchanged: u64,
    /// Index writes.
    pub index_updates: u64,
    /// Rounds the catalog failed.
    pub storage_errors: u64,
    /// Files left in the directory for the next start (or run): not finished yet, or waiting
    /// for the catalog when the watcher stopped.
    pub left: u64,
    /// The worst that happened to any file (for `--once`'s exit code).
    pub worst: Option<Fault>,
}

impl Summary {
    pub(crate) fn worst(&mut self, fault: Fault) {
        self.worst = Fault::worst_of([self.worst, Some(fault)]);
    }
}

impl Classify for Summary {
    fn fault(&self) -> Option<Fault> {
        self.worst
    }
}

/// What stops the watcher itself (as opposed to one file's outcome).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// A local file or directory failed.
    #[error("{0}")]
    Io(String, #[source] std::io::Error),
    /// notify could not watch the directory.
    #[error("cannot watch {0}")]
    Notify(String, #[source] notify::Error),
    /// Another watcher holds the directory.
    #[error("another sigcat watch ({1}) already watches {0}; one watcher per drop directory")]
    Busy(String, String),
    /// The directory went away and did not come back.
    #[error("the drop directory {0} was removed or renamed and did not come back within {1:?}")]
    DirGone(String, Duration),
}

impl Classify for WatchError {
    fn fault(&self) -> Option<Fault> {
        Some(match self {
            // One watcher per directory: starting a second one is the operator's mistake.
            WatchError::Busy(..) => Fault::Settings,
            WatchError::Io(..) | WatchError::Notify(..) | WatchError::DirGone(..) => {
                Fault::LocalFile
            }
        })
    }
}

/// A path for a log line: control characters escaped, so a file named with a newline or an
/// escape sequence cannot forge or garble log lines.
pub fn shown(path: &Path) -> String {
    path.display()
        .to_string()
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Holds the directory for this watcher: a second one is refused, not allowed to race.
fn lock(dir: &Path) -> Result<std::fs::File, WatchError> {
    let path = dir.join(".sigcat-watch.lock");
    let io = |e| WatchError::Io(shown(&path), e);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            use std::io::{Seek, Write};
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            let _ = writeln!(file, "pid {}", std::process::id());
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            Err(WatchError::Busy(shown(dir), holder.trim().to_string()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// What the watcher sees the directory with: notify, the queue of signals, and the
/// directory's identity, to notice it being replaced.
struct Eyes {
    watcher: Option<Box<dyn Watcher + Send>>,
    _lock: std::fs::File,
    rx: mpsc::Receiver<Signal>,
    overflow: Arc<AtomicBool>,
    identity: (u64, u64),
}

fn identity(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

impl Eyes {
    fn open(dir: &Path, config: &WatchConfig) -> Result<Eyes, WatchError> {
        let lock = lock(dir)?;
        let (tx, rx) = mpsc::channel(config.event_queue.max(1));
        let overflow = Arc::new(AtomicBool::new(false));
        let handler = signals::handler(
            dir.to_path_buf(),
            config.poll.is_some(),
            tx,
            overflow.clone(),
        );
        let notify_err = |e| WatchError::Notify(shown(dir), e);
        let mut watcher: Box<dyn Watcher + Send> = match config.poll {
            Some(every) => Box::new(
                notify::PollWatcher::new(
                    handler,
                    notify::Config::default().with_poll_interval(every),
                )
                .map_err(notify_err)?,
            ),
            None => Box::new(notify::recommended_watcher(handler).map_err(notify_err)?),
        };
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(notify_err)?;
        let identity = identity(dir)
            .ok_or_else(|| WatchError::Io(shown(dir), std::io::ErrorKind::NotFound.into()))?;
        Ok(Eyes {
            watcher: Some(watcher),
            _lock: lock,
            rx,
            overflow,
            identity,
        })
    }

    fn intact(&self, dir: &Path) -> bool {
        identity(dir) == Some(self.identity)
    }
}

fn rescan(dir: &Path, schedule: &mut Schedule) {
    tracing::info!(dir = %shown(dir), "rescanning");
    match drop::scan(dir) {
        Ok(items) => items
            .into_iter()
            .for_each(|i| schedule.found(i, Instant::now())),
        Err(e) => tracing::warn!(dir = %shown(dir), "cannot list the directory: {e}"),
    }
}

/// Runs until `shutdown` fires (or, with `once`, until what was there is handled).
pub async fn run<S: Store>(
    config: WatchConfig,
    catalog: Catalog<S>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Summary, WatchError> {
    let io = |what: &Path| {
        let what = shown(what);
        move |e| WatchError::Io(what, e)
    };
    std::fs::create_dir_all(&config.dir).map_err(io(&config.dir))?;
    // Absolute and without symlinks: the form notify reports paths in.
    let dir = std::fs::canonicalize(&config.dir).map_err(io(&config.dir))?;
    drop::adopt_orphans(&dir).map_err(io(&dir))?;
    // On SIGTERM a round waiting on failing storage stops retrying at once: its files stay.
    let (stop_retrying, stop) = crate::retry::Stop::pair();
    let catalog = catalog.with_stop(stop);
    let mut eyes = Some(Eyes::open(&dir, &config)?);
    let health = Arc::new(heartbeat::Health::default());
    let beat = config
        .heartbeat
        .clone()
        .map(|p| heartbeat::spawn(p, health.clone()));
    let mut schedule = Schedule::new(config.settle, config.max_backoff);
    rescan(&dir, &mut schedule);
    tracing::info!(files = schedule.len(), dir = %shown(&dir), "backlog");
    let round = round::Round {
        dir: &dir,
        config: &config,
        catalog: &catalog,
        health: &health,
    };
    let mut summary = Summary::default();
    let (mut stopping, mut blind_since) = (false, None::<Instant>);
    tokio::pin!(shutdown);
    let mut stop_notify_at = config.stop_notify_after.map(|after| Instant::now() + after);
    loop {
        let now = Instant::now();
        if stop_notify_at.is_some_and(|at| now >= at)
            && let Some(e) = eyes.as_mut()
        {
            stop_notify_at = None;
            e.watcher = None;
            tracing::debug!("fault injection: notify's thread stopped");
        }
        // The directory replaced, renamed or gone: watch it again when it is back, or give up.
        if eyes.as_ref().is_some_and(|e| !e.intact(&dir)) || (eyes.is_none() && !config.once) {
            if eyes.take().is_some() {
                health.set_watching(false);
                blind_since = Some(now);
                tracing::warn!(dir = %shown(&dir), "the drop directory was removed or renamed; watching for it to come back");
            }
            if identity(&dir).is_some() {
                eyes = Some(Eyes::open(&dir, &config)?);
                health.set_watching(true);
                blind_since = None;
                tracing::warn!(dir = %shown(&dir), "the drop directory is back; watching it again");
                rescan(&dir, &mut schedule);
            } else if blind_since.is_some_and(|t| now - t > config.dir_grace) {
                return Err(WatchError::DirGone(shown(&dir), config.dir_grace));
            }
        }
        if eyes
            .as_ref()
            .is_some_and(|e| e.overflow.swap(false, Ordering::SeqCst))
        {
            rescan(&dir, &mut schedule);
        }
        let due = if eyes.is_some() {
            schedule.due(now, config.max_batch)
        } else {
            Vec::new()
        };
        if !due.is_empty() && !stopping {
            let trouble = {
                let work = round.run(due, &mut schedule, &mut summary);
                tokio::pin!(work);
                tokio::select! {
                    t = &mut work => t,
                    _ = &mut shutdown => {
                        tracing::info!("stopping: finishing the files in flight (failing storage requests are not tried again)");
                        stopping = true;
                        stop_retrying.stop();
                        tokio::time::timeout(config.shutdown_timeout, &mut work).await.unwrap_or_else(|_| {
                            tracing::warn!("files still in flight after {:?} are left for the next start", config.shutdown_timeout);
                            None
                        })
                    }
                }
            };
            if let Some(t) = trouble {
                summary.worst(t);
                if config.once {
                    break; // the files stay; the exit code says why
                }
            }
            tracing::info!(pending = schedule.len(), "progress");
            continue;
        }
        if config.once || stopping {
            break;
        }
        let wake = schedule
            .next_due()
            .unwrap_or(now + Duration::from_secs(1))
            .min(now + Duration::from_secs(1));
        let rx = eyes.as_mut().map(|e| &mut e.rx);
        tokio::select! {
            signal = async { match rx { Some(rx) => rx.recv().await, None => std::future::pending().await } } => match signal {
                Some(first) => {
                    let mut signal = Some(first);
                    while let Some(s) = signal {
                        match s {
                            Signal::Item(item, change) => schedule.notice(item, change, Instant::now()),
                            Signal::Rescan => rescan(&dir, &mut schedule),
                            // Checked (and recovered from) at the top of the loop.
                            Signal::DirGone => {}
                        }
                        signal = eyes.as_mut().and_then(|e| e.rx.try_recv().ok());
                    }
                }
                // notify's thread is gone: what it watched is lost; look again from scratch.
                None => {
                    tracing::warn!(dir = %shown(&dir), "the file watcher stopped; starting it again");
                    eyes = None;
                    health.set_watching(false);
                    blind_since = Some(Instant::now());
                }
            },
            _ = tokio::time::sleep_until(wake) => {}
            _ = &mut shutdown => {
                tracing::info!("stopping: no new files are taken");
                stopping = true;
                stop_retrying.stop();
            }
        }
    }
    if let Some(beat) = beat {
        beat.abort();
    }
    // What is still pending stays in the directory for the next start (or run).
    summary.left += schedule.len() as u64;
    tracing::info!(
        published_files = summary.published_files,
        failed_files = summary.failed_files,
        quarantined_files = summary.quarantined_files,
        images_published = summary.images_published,
        images_unchanged = summary.images_unchanged,
        index_updates = summary.index_updates,
        storage_errors = summary.storage_errors,
        left = summary.left,
        "summary"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests;
