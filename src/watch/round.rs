//! One round: judge the due items (a few at a time, off the async threads), prepare each
//! item's images on its own, publish all of them with one index write, then give every item
//! its own outcome. One item's problem (invalid, refused, in conflict) moves only that item;
//! a storage failure keeps every item of the round where it is, waiting for the storage.

use super::judge::{self, Rules, UsedManifest, Verdict};
use super::schedule::Schedule;
use super::{Summary, WatchConfig, drop, shown};
use crate::catalog::entry::{self, Entry};
use crate::catalog::store::Store;
use crate::catalog::{Catalog, Outcome};
use crate::fault::{Classify, Fault};
use crate::record::{BuildResult, Record};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::time::Instant;

pub(crate) struct Round<'a, S> {
    pub(crate) dir: &'a Path,
    pub(crate) config: &'a WatchConfig,
    pub(crate) catalog: &'a Catalog<S>,
    pub(crate) health: &'a super::heartbeat::Health,
}

/// An item with images to publish, and how to settle it once they are.
struct ToPublish {
    item: PathBuf,
    entries: Vec<Entry>,
    records: Vec<Record>,
    /// For a log: the manifest read with it. For an enrichment: the log in done/.
    manifest: Option<UsedManifest>,
    enriches: Option<PathBuf>,
}

impl<S: Store> Round<'_, S> {
    fn rules(&self) -> Rules {
        Rules {
            settle: self.config.settle,
            incomplete_timeout: self.config.incomplete_timeout,
            once: self.config.once,
        }
    }

    /// Runs one round over `due`. Returns the storage's trouble, if it failed.
    pub(crate) async fn run(
        &self,
        due: Vec<PathBuf>,
        schedule: &mut Schedule,
        summary: &mut Summary,
    ) -> Option<Fault> {
        let verdicts = self.judge_all(&due, schedule).await;
        let mut to_publish = Vec::new();
        for (item, (verdict, look)) in verdicts {
            match verdict {
                Verdict::Gone => {
                    tracing::debug!(file = %shown(&item), "gone");
                    schedule.forget(&item);
                }
                Verdict::Wait(why) => self.not_yet(&item, &why, look, schedule, summary),
                Verdict::Unreadable(why) => {
                    let known = schedule.context(&item, Instant::now()).known_for;
                    if known >= self.config.incomplete_timeout {
                        let why = format!("unreadable for {known:?}: {why}");
                        self.quarantine(&item, &why, Fault::InvalidInput, schedule, summary);
                    } else if self.config.once {
                        self.not_yet(
                            &item,
                            &format!("cannot read it: {why}"),
                            None,
                            schedule,
                            summary,
                        );
                    } else if schedule.unreadable(&item, Instant::now()) {
                        tracing::warn!(file = %shown(&item), outcome = "unreadable", "cannot read it: {why}; trying again, and setting it aside after {:?}", self.config.incomplete_timeout);
                    } else {
                        tracing::debug!(file = %shown(&item), "still unreadable: {why}");
                    }
                }
                Verdict::SetAside(why) | Verdict::Invalid(why) => {
                    self.quarantine(&item, &why, Fault::InvalidInput, schedule, summary)
                }
                Verdict::AllFailed { records, manifest } => {
                    self.all_failed(&item, &records, manifest.as_ref(), schedule, summary)
                }
                Verdict::Ready { records, manifest } => {
                    if let Some(p) = self.prepare(&item, records, manifest, None, schedule, summary)
                    {
                        to_publish.push(p);
                    }
                }
                Verdict::Enrich { log, records } => {
                    if let Some(p) =
                        self.prepare(&item, records, None, Some(log), schedule, summary)
                    {
                        to_publish.push(p);
                    }
                }
            }
        }
        self.publish(to_publish, schedule, summary).await
    }

    async fn judge_all(
        &self,
        due: &[PathBuf],
        schedule: &Schedule,
    ) -> Vec<(PathBuf, (Verdict, Option<judge::Look>))> {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(self.config.concurrency.max(1)));
        let mut judging = tokio::task::JoinSet::new();
        let now = Instant::now();
        for (i, item) in due.iter().enumerate() {
            let (item, ctx, rules, semaphore) = (
                item.clone(),
                schedule.context(item, now),
                self.rules(),
                semaphore.clone(),
            );
            judging.spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                let verdict = tokio::task::spawn_blocking({
                    let item = item.clone();
                    move || judge::judge(&item, rules, &ctx)
                })
                .await
                .unwrap_or_else(|e| (Verdict::Wait(format!("the parser stopped: {e}")), None));
                (i, item, verdict)
            });
        }
        let mut out = Vec::new();
        while let Some(Ok(done)) = judging.join_next().await {
            out.push(done);
        }
        // In the order they were due, so the logs read like the directory.
        out.sort_by_key(|(i, _, _)| *i);
        out.into_iter().map(|(_, item, v)| (item, v)).collect()
    }

    fn not_yet(
        &self,
        item: &Path,
        why: &str,
        look: Option<judge::Look>,
        schedule: &mut Schedule,
        summary: &mut Summary,
    ) {
        if self.config.once {
            schedule.forget(item);
            summary.left += 1;
            tracing::info!(file = %shown(item), outcome = "left", "{why}; left for the next run");
        } else {
            tracing::debug!(file = %shown(item), "waiting: {why}");
            schedule.wait(item, look, Instant::now());
        }
    }

    /// Each image of the item becomes an entry; if the catalog refuses one, the item is set
    /// aside with that reason, and nothing of it is published.
    fn prepare(
        &self,
        item: &Path,
        records: Vec<Record>,
        manifest: Option<UsedManifest>,
        enriches: Option<PathBuf>,
        schedule: &mut Schedule,
        summary: &mut Summary,
    ) -> Option<ToPublish> {
        let prepared: Result<Vec<Entry>, _> = records
            .iter()
            .filter(|r| r.has_image())
            .map(|r| entry::prepare(r, &self.config.template))
            .collect();
        match prepared {
            Ok(entries) => Some(ToPublish {
                item: item.to_path_buf(),
                entries,
                records,
                manifest,
                enriches,
            }),
            Err(refused) => {
                let why = format!("refused: {}", crate::error::chain(&refused));
                self.quarantine(item, &why, Fault::Refused, schedule, summary);
                None
            }
        }
    }

    async fn publish(
        &self,
        items: Vec<ToPublish>,
        schedule: &mut Schedule,
        summary: &mut Summary,
    ) -> Option<Fault> {
        if items.is_empty() {
            return None;
        }
        let all: Vec<Entry> = items
            .iter()
            .flat_map(|p| p.entries.iter().cloned())
            .collect();
        let outcomes = match self.catalog.publish(&all).await {
            Ok(o) => o,
            Err(e) => {
                let fault = e.fault().unwrap_or(Fault::Storage);
                let why = crate::error::chain(&e);
                summary.storage_errors += 1;
                self.health.storage_down(&why);
                let waiting: Vec<PathBuf> = items.iter().map(|p| p.item.clone()).collect();
                let delay = schedule.storage_down(&waiting, Instant::now());
                let what = match fault {
                    Fault::Settings => {
                        "the catalog refused the credentials (the operator's settings)"
                    }
                    Fault::LocalFile => {
                        "the catalog's directory cannot be written (the operator's settings)"
                    }
                    Fault::CatalogData => "the catalog's own data is wrong",
                    Fault::Untrusted => "the catalog is not trusted",
                    _ => "catalog unavailable",
                };
                for item in &waiting {
                    // The catalog's fault, never the file's: it stays, and is tried again.
                    tracing::warn!(file = %shown(item), outcome = "retry", fault = %fault, retry_in = ?delay, "{what}: {why}");
                }
                return Some(fault);
            }
        };
        self.health.storage_ok();
        schedule.storage_up();
        if outcomes.iter().any(Outcome::wrote) {
            summary.index_updates += 1;
        }
        let mut outcomes = outcomes.into_iter();
        for p in items {
            let mine: Vec<Outcome> = outcomes.by_ref().take(p.entries.len()).collect();
            self.settle_published(p, mine, schedule, summary);
        }
        None
    }

    fn settle_published(
        &self,
        p: ToPublish,
        outcomes: Vec<Outcome>,
        schedule: &mut Schedule,
        summary: &mut Summary,
    ) {
        let conflicts: Vec<String> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Conflict(c) => Some(c.to_string()),
                _ => None,
            })
            .collect();
        if !conflicts.is_empty() {
            self.quarantine(
                &p.item,
                &conflicts.join("; "),
                Fault::Conflict,
                schedule,
                summary,
            );
            return;
        }
        let mut new = 0;
        for o in &outcomes {
            match o {
                Outcome::Published { .. } | Outcome::Updated { .. } => new += 1,
                _ => summary.images_unchanged += 1,
            }
        }
        summary.images_published += new;
        let images: Vec<&str> = outcomes.iter().map(Outcome::id).collect();
        let added: Vec<String> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Updated { added, .. } => Some(added.join("+")),
                _ => None,
            })
            .collect();
        let kubernetes: Vec<&str> = p
            .records
            .iter()
            .filter_map(|r| r.kubernetes_version.as_deref())
            .collect();
        let failed = failures(&p.records);
        if !failed.is_empty() {
            // Some builds of the file failed and others published: as publish says it.
            summary.worst(Fault::BuildFailed);
        }
        let moved = match &p.enriches {
            Some(log) => drop::move_manifest(self.dir, "done", &p.item, Some(log)),
            None => drop::move_to(self.dir, "done", &p.item, still_same(p.manifest.as_ref())),
        };
        match moved {
            Ok(moved) => {
                schedule.forget(&p.item);
                summary.published_files += 1;
                let outcome = if p.enriches.is_some() {
                    "enriched"
                } else {
                    "published"
                };
                tracing::info!(file = %shown(&p.item), outcome, images = %images.join(","), kubernetes = %kubernetes.join(","), added = %added.join(","), moved_to = %shown(&moved), failed_builds = %failed, "{outcome}");
                self.notice_late_manifest(&p.item, schedule);
            }
            Err(e) => {
                // Published (idempotently): taking it again later changes nothing.
                schedule.wait(&p.item, None, Instant::now());
                tracing::error!(file = %shown(&p.item), "published, but cannot move it to done/: {e}; it will be taken again");
            }
        }
    }

    /// A manifest that arrived after its log was read stays in the directory: it is news
    /// about a published image, and is judged as such.
    fn notice_late_manifest(&self, item: &Path, schedule: &mut Schedule) {
        if let Some(m) = drop::companion_manifest(item)
            && std::fs::symlink_metadata(&m).is_ok()
        {
            tracing::info!(file = %shown(&m), "a manifest that was not read with its log: it will update the published image");
            schedule.notice(m, super::signals::Change::Written, Instant::now());
        }
    }

    fn all_failed(
        &self,
        item: &Path,
        records: &[Record],
        manifest: Option<&UsedManifest>,
        schedule: &mut Schedule,
        summary: &mut Summary,
    ) {
        let reason = failures(records);
        match drop::move_to(self.dir, "failed", item, still_same(manifest)) {
            Ok(moved) => {
                schedule.forget(item);
                summary.failed_files += 1;
                summary.worst(Fault::BuildFailed);
                tracing::warn!(file = %shown(item), outcome = "build-failed", moved_to = %shown(&moved), reason = %reason, "build failed; nothing to publish");
            }
            Err(e) => self.cannot_move(item, "failed", &e, schedule),
        }
    }

    /// Sets an item aside with its own reason, in `quarantine/NAME.error`.
    fn quarantine(
        &self,
        item: &Path,
        reason: &str,
        fault: Fault,
        schedule: &mut Schedule,
        summary: &mut Summary,
    ) {
        // A log's manifest goes with it: it belongs to that log.
        let manifest = if drop::is_log(item) {
            drop::companion_manifest(item)
                .filter(|m| std::fs::symlink_metadata(m).is_ok_and(|x| x.is_file()))
        } else {
            None
        };
        match drop::move_to(self.dir, "quarantine", item, manifest.as_deref()) {
            Ok(moved) => {
                schedule.forget(item);
                summary.quarantined_files += 1;
                summary.worst(fault);
                if let Err(e) = drop::write_error(&moved, reason) {
                    tracing::error!(file = %shown(&moved), "cannot write the .error file: {e}");
                }
                tracing::warn!(file = %shown(item), outcome = "quarantined", moved_to = %shown(&moved), reason = %crate::redact::redact_secrets(reason), "quarantined");
            }
            Err(e) => self.cannot_move(item, "quarantine", &e, schedule),
        }
    }

    fn cannot_move(&self, item: &Path, area: &str, e: &std::io::Error, schedule: &mut Schedule) {
        if e.kind() == std::io::ErrorKind::NotFound {
            // Gone meanwhile (another hand moved it): nothing left to do.
            schedule.forget(item);
            return;
        }
        schedule.wait(item, None, Instant::now());
        tracing::error!(file = %shown(item), "cannot move it to {area}/: {e}; trying again later");
    }
}

/// The manifest read with a log, if it is still that file (one replaced since is news).
fn still_same(used: Option<&UsedManifest>) -> Option<&Path> {
    use std::os::unix::fs::MetadataExt;
    let used = used?;
    let m = std::fs::symlink_metadata(&used.path).ok()?;
    let same = m.len() == used.stamp.len
        && m.ino() == used.stamp.inode
        && m.modified().ok() == Some(used.stamp.mtime);
    same.then_some(used.path.as_path())
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
