//! A drop directory → the catalog, continuously (`sigcat watch`).
//!
//! Files are taken only when complete: on a close-after-write or a rename into the directory,
//! and only if the parser agrees the log is finished (every build reported, no artifact block
//! cut off). Publishing is idempotent and a file leaves the directory only after its images
//! are in the catalog's index, so a crash at any moment loses nothing and publishes nothing
//! twice: on restart the file is simply taken again.

pub mod drop;

use crate::catalog::entry::{self, Entry};
use crate::catalog::{AnyStore, Catalog, CatalogError, Outcome};
use crate::parse::{self, lines::LineReader};
use crate::record::{BuildResult, Record};
use crate::render::TemplateOptions;
use crate::retry::{Backoff, BackoffConfig};
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub dir: PathBuf,
    /// Drain the backlog and exit.
    pub once: bool,
    /// Poll at this interval instead of using inotify (network filesystems).
    pub poll: Option<Duration>,
    /// Files parsed at once.
    pub concurrency: usize,
    /// Files published in one catalog write (one index update).
    pub max_batch: usize,
    /// Quiet time before a file that looks unfinished or invalid is judged again.
    pub settle: Duration,
    /// Quiet time after which an unfinished log is taken as it is.
    pub incomplete_timeout: Duration,
    /// After SIGTERM / Ctrl-C, the longest wait for the work in flight.
    pub shutdown_timeout: Duration,
    /// Longest wait between two tries while the storage is unavailable.
    pub max_backoff: Duration,
    /// Touched every few seconds while the loop runs, for liveness probes.
    pub heartbeat: Option<PathBuf>,
    /// Events queued between notify and the loop; when full, the directory is rescanned.
    pub event_queue: usize,
    /// How each image's AzureMachineTemplate is rendered for the catalog.
    pub template: TemplateOptions,
}

/// How often the heartbeat file is touched.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

impl WatchConfig {
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
        }
    }
}

/// What a run did, logged at the end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub published_files: u64,
    pub failed_files: u64,
    pub quarantined_files: u64,
    pub images_published: u64,
    pub images_unchanged: u64,
    pub index_updates: u64,
    pub storage_errors: u64,
    /// `--once`: files left because they are still being written or the storage is down.
    pub left: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("cannot watch {0}: {1}")]
    Notify(String, notify::Error),
    #[error("the catalog stayed unavailable: {0}")]
    Storage(String),
}

/// What looking at an item found.
enum Judgement {
    Publish {
        records: Vec<Record>,
    },
    AllFailed {
        records: Vec<Record>,
    },
    Invalid(String),
    /// Not finished yet (or not quiet long enough to be judged invalid).
    Wait(String),
}

struct Pending {
    due: Instant,
    /// Waiting for the storage to come back (not for the file to settle).
    storage_wait: bool,
}

fn judge(item: &Path, config: &WatchConfig) -> Judgement {
    let quiet = drop::quiet_for(item);
    let settled = quiet >= config.settle;
    let forced = quiet >= config.incomplete_timeout;
    let parts = match drop::parts(item) {
        Ok(p) => p,
        Err(e) => return Judgement::Wait(format!("cannot read: {e}")),
    };
    if parts.logs.is_empty() {
        return if settled {
            Judgement::Invalid("no *.log or *.out file in the build directory".into())
        } else {
            Judgement::Wait("no log yet".into())
        };
    }
    let mut all = parse::Parsed::default();
    for log in &parts.logs {
        let source = log.display().to_string();
        let file = match std::fs::File::open(log) {
            Ok(f) => f,
            Err(e) => return Judgement::Wait(format!("{source}: {e}")),
        };
        match parse::parse_stream(&mut LineReader::new(file), &source, None) {
            Ok(p) => all.extend(p),
            Err(e) if settled => return Judgement::Invalid(e.to_string()),
            Err(e) => return Judgement::Wait(e.to_string()),
        }
    }
    if !forced && (!all.incomplete.is_empty() || all.ended_inside_block) {
        return Judgement::Wait(format!(
            "still being written? no result yet for {}",
            if all.incomplete.is_empty() {
                "the last artifact block".to_string()
            } else {
                all.incomplete.join(", ")
            }
        ));
    }
    if let Some(manifest) = &parts.manifest {
        let joined = parse::read_manifest(manifest).and_then(|builds| {
            Ok(parse::manifest::join(
                &mut all.records,
                &builds,
                &manifest.display().to_string(),
            )?)
        });
        if let Err(e) = joined {
            return if settled {
                Judgement::Invalid(e.to_string())
            } else {
                Judgement::Wait(e.to_string())
            };
        }
    }
    if all.records.iter().any(Record::has_image) {
        Judgement::Publish {
            records: all.records,
        }
    } else if !all.records.is_empty() {
        Judgement::AllFailed {
            records: all.records,
        }
    } else if settled {
        Judgement::Invalid(if all.incomplete.is_empty() {
            "no Azure artifact in the log (not a Packer build log?)".into()
        } else {
            format!("truncated: no result for {}", all.incomplete.join(", "))
        })
    } else {
        Judgement::Wait("no artifact yet".into())
    }
}

fn failures(records: &[Record]) -> String {
    records
        .iter()
        .filter(|r| r.result != BuildResult::Succeeded)
        .map(|r| {
            format!(
                "{} {:?}: {}",
                r.build_name,
                r.result,
                r.error.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Events from notify, turned into "look at this item" (or "rescan everything").
enum Signal {
    Item(PathBuf),
    Rescan,
}

fn start_watcher(
    config: &WatchConfig,
    tx: mpsc::Sender<Signal>,
    overflow: Arc<AtomicBool>,
) -> Result<Box<dyn Watcher + Send>, WatchError> {
    let dir = config.dir.clone();
    let polling = config.poll.is_some();
    let handler = move |res: notify::Result<notify::Event>| {
        let signal = match res {
            Ok(event) if event.need_rescan() => Some(Signal::Rescan),
            Ok(event) => {
                let complete = matches!(
                    event.kind,
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                        | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
                ) || (polling
                    && matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_)));
                if !complete {
                    return;
                }
                let Some(item) = event
                    .paths
                    .iter()
                    .rev()
                    .find_map(|p| drop::item_for(&dir, p))
                else {
                    return;
                };
                Some(Signal::Item(item))
            }
            Err(_) => Some(Signal::Rescan),
        };
        if let Some(s) = signal
            && tx.try_send(s).is_err()
        {
            // Our own queue is full: remember to rescan rather than block the watcher.
            overflow.store(true, Ordering::SeqCst);
        }
    };
    let mut watcher: Box<dyn Watcher + Send> = match config.poll {
        Some(interval) => Box::new(
            notify::PollWatcher::new(
                handler,
                notify::Config::default().with_poll_interval(interval),
            )
            .map_err(|e| WatchError::Notify(config.dir.display().to_string(), e))?,
        ),
        None => Box::new(
            notify::recommended_watcher(handler)
                .map_err(|e| WatchError::Notify(config.dir.display().to_string(), e))?,
        ),
    };
    watcher
        .watch(&config.dir, RecursiveMode::NonRecursive)
        .map_err(|e| WatchError::Notify(config.dir.display().to_string(), e))?;
    Ok(watcher)
}

/// Runs until `shutdown` fires (or, with `once`, until the backlog is drained).
pub async fn run(
    config: WatchConfig,
    catalog: Catalog<AnyStore>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Summary, WatchError> {
    let io = |e| WatchError::Io(config.dir.display().to_string(), e);
    std::fs::create_dir_all(&config.dir).map_err(io)?;
    drop::adopt_orphans(&config.dir).map_err(io)?;
    let (tx, mut rx) = mpsc::channel(config.event_queue.max(1));
    let overflow = Arc::new(AtomicBool::new(false));
    // Watch before the first scan, so that nothing arriving in between is missed.
    let _watcher = if config.once {
        None
    } else {
        Some(start_watcher(&config, tx, overflow.clone())?)
    };

    let mut pending: BTreeMap<PathBuf, Pending> = BTreeMap::new();
    let mut backlog = drop::scan(&config.dir).map_err(io)?;
    if !backlog.is_empty() {
        tracing::info!(files = backlog.len(), dir = %config.dir.display(), "backlog");
    }
    let backlog_total = backlog.len();
    let now = Instant::now();
    for item in backlog.clone() {
        pending.insert(
            item,
            Pending {
                due: now,
                storage_wait: false,
            },
        );
    }
    let mut summary = Summary::default();
    let mut storage_backoff = Backoff::new(BackoffConfig {
        init: Duration::from_millis(500).min(config.max_backoff),
        max: config.max_backoff,
        base: 2.0,
    });
    tokio::pin!(shutdown);
    let mut stopping = false;
    let mut last_beat: Option<Instant> = None;
    loop {
        if let Some(path) = &config.heartbeat
            && last_beat.is_none_or(|t| t.elapsed() >= HEARTBEAT_EVERY)
        {
            // A hung loop stops touching it; the probe (`sigcat healthcheck`) notices.
            if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
                tracing::warn!(heartbeat = %path.display(), "cannot write the heartbeat: {e}");
            }
            last_beat = Some(Instant::now());
        }
        if overflow.swap(false, Ordering::SeqCst) {
            rescan(&config, &mut pending).map_err(io)?;
        }
        let now = Instant::now();
        let mut due: Vec<PathBuf> = pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.truncate(config.max_batch);
        if !due.is_empty() && !stopping {
            let result = {
                let cycle = process(
                    &config,
                    &catalog,
                    &due,
                    &mut pending,
                    &mut summary,
                    &mut storage_backoff,
                );
                tokio::pin!(cycle);
                tokio::select! {
                    r = &mut cycle => r,
                    _ = &mut shutdown => {
                        // Finish what is in flight, within a bound; what does not finish stays
                        // in the directory and is taken again on the next start.
                        tracing::info!("stopping: finishing the files in flight");
                        stopping = true;
                        match tokio::time::timeout(config.shutdown_timeout, &mut cycle).await {
                            Ok(r) => r,
                            Err(_) => { tracing::warn!("files still in flight after {:?} are left for the next start", config.shutdown_timeout); Ok(()) }
                        }
                    }
                }
            };
            if !backlog.is_empty() {
                backlog.retain(|item| pending.contains_key(item));
                tracing::info!(
                    done = backlog_total - backlog.len(),
                    total = backlog_total,
                    "backlog progress"
                );
            }
            if let Err(e) = result
                && config.once
            {
                return Err(e);
            }
            continue;
        }
        if config.once {
            let waiting: Vec<&PathBuf> = pending.keys().collect();
            for w in &waiting {
                tracing::info!(file = %w.display(), outcome = "left", "still being written; left for the next run");
            }
            summary.left = waiting.len() as u64;
            break;
        }
        if stopping {
            break;
        }
        let idle = if config.heartbeat.is_some() {
            HEARTBEAT_EVERY
        } else {
            Duration::from_secs(3600)
        };
        let next_due = pending
            .values()
            .map(|p| p.due)
            .min()
            .unwrap_or(now + idle)
            .min(now + idle);
        tokio::select! {
            signal = rx.recv() => {
                let mut signals = vec![signal];
                // Coalesce a burst: everything already queued goes into this round.
                while let Ok(s) = rx.try_recv() {
                    signals.push(Some(s));
                }
                for s in signals.into_iter().flatten() {
                    match s {
                        Signal::Item(item) => {
                            let entry = pending.entry(item).or_insert(Pending { due: Instant::now(), storage_wait: false });
                            if !entry.storage_wait {
                                entry.due = Instant::now();
                            }
                        }
                        Signal::Rescan => rescan(&config, &mut pending).map_err(io)?,
                    }
                }
            }
            _ = tokio::time::sleep_until(next_due) => {}
            _ = &mut shutdown => {
                tracing::info!("stopping: no new files are taken");
                stopping = true;
            }
        }
    }
    tracing::info!(
        published_files = summary.published_files,
        failed_files = summary.failed_files,
        quarantined_files = summary.quarantined_files,
        images_published = summary.images_published,
        images_unchanged = summary.images_unchanged,
        index_updates = summary.index_updates,
        storage_errors = summary.storage_errors,
        "summary"
    );
    Ok(summary)
}

fn rescan(config: &WatchConfig, pending: &mut BTreeMap<PathBuf, Pending>) -> std::io::Result<()> {
    tracing::info!(dir = %config.dir.display(), "rescanning");
    for item in drop::scan(&config.dir)? {
        pending.entry(item).or_insert(Pending {
            due: Instant::now(),
            storage_wait: false,
        });
    }
    Ok(())
}

/// One round: judge the due items (in parallel), publish every image among them with one
/// catalog write, then move each item where it belongs.
async fn process(
    config: &WatchConfig,
    catalog: &Catalog<AnyStore>,
    due: &[PathBuf],
    pending: &mut BTreeMap<PathBuf, Pending>,
    summary: &mut Summary,
    storage_backoff: &mut Backoff,
) -> Result<(), WatchError> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1)));
    let mut judging = tokio::task::JoinSet::new();
    for item in due {
        let (item, config, semaphore) = (item.clone(), config.clone(), semaphore.clone());
        judging.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let verdict = tokio::task::spawn_blocking({
                let item = item.clone();
                move || judge(&item, &config)
            })
            .await
            .unwrap_or_else(|e| Judgement::Wait(format!("parser stopped: {e}")));
            (item, verdict)
        });
    }
    // Each item prepares its own entries: one that the catalog refuses is quarantined with its
    // own reason, whatever else is in the round.
    let mut to_publish: Vec<(PathBuf, Vec<Record>, Vec<Entry>)> = Vec::new();
    while let Some(joined) = judging.join_next().await {
        let Ok((item, verdict)) = joined else {
            continue;
        };
        match verdict {
            Judgement::Publish { records } => {
                let prepared: Result<Vec<Entry>, _> = records
                    .iter()
                    .filter(|r| r.has_image())
                    .map(|r| entry::prepare(r, &config.template))
                    .collect();
                match prepared {
                    Ok(entries) => to_publish.push((item, records, entries)),
                    Err(refused) => settle_item(
                        config,
                        pending,
                        &item,
                        "quarantine",
                        Some(&format!("refused: {}", crate::error::chain(&refused))),
                        summary,
                    ),
                }
            }
            Judgement::AllFailed { records } => {
                let reason = failures(&records);
                settle_item(config, pending, &item, "failed", Some(&reason), summary);
            }
            Judgement::Invalid(reason) => {
                settle_item(config, pending, &item, "quarantine", Some(&reason), summary)
            }
            Judgement::Wait(why) => {
                tracing::debug!(file = %item.display(), "waiting: {why}");
                if let Some(p) = pending.get_mut(&item) {
                    p.due = Instant::now() + config.settle;
                }
                if config.once {
                    pending.remove(&item);
                    tracing::info!(file = %item.display(), outcome = "left", "{why}; left for the next run");
                    summary.left += 1;
                }
            }
        }
    }
    if to_publish.is_empty() {
        return Ok(());
    }
    let all: Vec<Entry> = to_publish
        .iter()
        .flat_map(|(_, _, e)| e.iter().cloned())
        .collect();
    let outcomes = match catalog.publish(&all).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            return Err(storage_down(
                config,
                pending,
                &to_publish,
                e,
                summary,
                storage_backoff,
            ));
        }
    };
    storage_backoff.reset();
    if outcomes.iter().any(Outcome::wrote) {
        summary.index_updates += 1;
    }
    let mut outcomes = outcomes.into_iter();
    for (item, records, entries) in &to_publish {
        let mine: Vec<Outcome> = outcomes.by_ref().take(entries.len()).collect();
        let conflicts: Vec<String> = mine
            .iter()
            .filter_map(|o| match o {
                Outcome::Conflict(c) => Some(c.to_string()),
                _ => None,
            })
            .collect();
        for o in &mine {
            match o {
                Outcome::Published { .. } | Outcome::Updated { .. } => {
                    summary.images_published += 1
                }
                Outcome::Unchanged { .. } => summary.images_unchanged += 1,
                Outcome::Conflict(_) => {}
            }
        }
        if conflicts.is_empty() {
            published(config, pending, item, records, summary);
        } else {
            settle_item(
                config,
                pending,
                item,
                "quarantine",
                Some(&conflicts.join("; ")),
                summary,
            );
        }
    }
    Ok(())
}

/// The storage is down (or the catalog's data is wrong): every item stays where it is and is
/// tried again after the shared backoff.
fn storage_down(
    config: &WatchConfig,
    pending: &mut BTreeMap<PathBuf, Pending>,
    items: &[(PathBuf, Vec<Record>, Vec<Entry>)],
    e: CatalogError,
    summary: &mut Summary,
    backoff: &mut Backoff,
) -> WatchError {
    summary.storage_errors += 1;
    let delay = backoff.next_delay();
    let why = crate::error::chain(&e);
    for (item, _, _) in items {
        if let Some(p) = pending.get_mut(item) {
            p.storage_wait = true;
            p.due = Instant::now() + delay;
            tracing::warn!(file = %item.display(), outcome = "retry", retry_in = ?delay, "catalog unavailable: {why}");
        }
    }
    let _ = config;
    WatchError::Storage(why)
}

fn published(
    config: &WatchConfig,
    pending: &mut BTreeMap<PathBuf, Pending>,
    item: &Path,
    records: &[Record],
    summary: &mut Summary,
) {
    let failed = failures(records);
    let images: Vec<String> = records
        .iter()
        .filter(|r| r.has_image())
        .filter_map(entry::image_id)
        .collect();
    let kubernetes: Vec<&str> = records
        .iter()
        .filter_map(|r| r.kubernetes_version.as_deref())
        .collect();
    match drop::move_to(&config.dir, "done", item) {
        Ok(moved) => {
            pending.remove(item);
            summary.published_files += 1;
            tracing::info!(file = %item.display(), outcome = "published", images = %images.join(","), kubernetes = %kubernetes.join(","), moved_to = %moved.display(), failed_builds = %failed, "published");
        }
        Err(e) => {
            tracing::error!(file = %item.display(), "published, but cannot move it to done/: {e}; it will be taken again (publishing is idempotent)")
        }
    }
}

fn settle_item(
    config: &WatchConfig,
    pending: &mut BTreeMap<PathBuf, Pending>,
    item: &Path,
    area: &str,
    reason: Option<&str>,
    summary: &mut Summary,
) {
    match drop::move_to(&config.dir, area, item) {
        Ok(moved) => {
            pending.remove(item);
            if area == "quarantine" {
                summary.quarantined_files += 1;
                if let Err(e) = drop::write_error(&moved, reason.unwrap_or("")) {
                    tracing::error!(file = %moved.display(), "cannot write the .error file: {e}");
                }
                tracing::warn!(file = %item.display(), outcome = "quarantined", moved_to = %moved.display(), reason = %crate::redact::redact_secrets(reason.unwrap_or("")), "quarantined");
            } else {
                summary.failed_files += 1;
                tracing::warn!(file = %item.display(), outcome = "build-failed", moved_to = %moved.display(), reason = %reason.unwrap_or(""), "build failed; nothing to publish");
            }
        }
        Err(e) => {
            if let Some(p) = pending.get_mut(item) {
                p.due = Instant::now() + config.settle;
            }
            tracing::error!(file = %item.display(), "cannot move to {area}/: {e}; trying again later");
        }
    }
}
