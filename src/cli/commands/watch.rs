//! `sigcat watch`: the long-running drop-directory service.

use crate::cli::args::catalog::{CatalogArgs, SigningArgs};
use crate::cli::args::image::TemplateArgs;
use crate::cli::args::{self, parse_duration};
use crate::cli::failure::Failure;
use crate::cli::messages;
use clap::Args;
use sigcat::watch::{self, WatchConfig};
use sigcat::{Classify, Fault};
use std::path::PathBuf;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  sigcat watch /srv/image-drops --catalog azblob://myaccount/images
  sigcat watch /mnt/nfs/drops --poll 5s --catalog /var/lib/sigcat/catalog
  sigcat watch /srv/image-drops --once            # drain the backlog and exit (cron, CI)
  RUST_LOG=debug sigcat watch /srv/image-drops --log-format json

Drop convention: NAME.log or NAME.out (with NAME.manifest.json beside it, optional), or one
sub-directory per build renamed into DIR. A file renamed in is taken at once; one written in
place once it shows the end of its builds and has been quiet for --settle. Outcomes: DIR/done/
(published), DIR/failed/ (every build failed), DIR/quarantine/ (invalid, refused, in conflict,
or not a regular file, with NAME.error). A service that stops cleanly exits 0; --once exits
with the worst outcome of the files it handled (1 a build failed, 4 invalid, 6 refused,
7 conflict, 8 storage, 2 credentials the storage refuses).";

const HEALTHCHECK_EXAMPLES: &str = "\
Examples:
  sigcat healthcheck /run/sigcat/heartbeat --max-age 60s     # a liveness probe: 0 fresh, 11 not";

#[derive(Args)]
#[command(about = "Watch a drop directory and publish every build log that lands there", after_help = args::help(EXAMPLES))]
pub(crate) struct WatchArgs {
    /// The drop directory (relative paths are fine).
    dir: PathBuf,
    #[command(flatten)]
    catalog: CatalogArgs,
    #[command(flatten)]
    signing: SigningArgs,
    #[command(flatten)]
    template: TemplateArgs,
    /// Judge what is in the directory now, publish what is finished, and exit.
    #[arg(long)]
    once: bool,
    /// Poll every INTERVAL (at least 100ms; e.g. 5s) instead of using inotify.
    #[arg(long, value_name = "INTERVAL", value_parser = poll_interval)]
    poll: Option<Duration>,
    /// Files judged at once.
    #[arg(long, default_value = "4", value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Most files per catalog write.
    #[arg(long, default_value = "64", value_parser = clap::value_parser!(u16).range(1..))]
    max_batch: u16,
    /// How long a file written in place must be quiet before it counts as finished (files
    /// renamed into the directory are taken at once).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    settle: Duration,
    /// Quiet time after which a log that never finished is taken as it is (and a lone
    /// manifest, or a file that stays unreadable, is set aside).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    incomplete_timeout: Duration,
    /// Longest wait between two tries while the catalog is unavailable.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    max_backoff: Duration,
    /// After SIGTERM / Ctrl-C, the longest wait for files in flight.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    shutdown_timeout: Duration,
    /// Touch FILE every 5 s while watching, for a liveness probe (`sigcat healthcheck FILE`).
    #[arg(long, value_name = "FILE")]
    heartbeat: Option<PathBuf>,
    /// How long the drop directory may be gone (removed, renamed) before the watcher exits.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s", hide = true)]
    dir_grace: Duration,
    /// Events queued before falling back to a rescan (tests use a tiny queue to force one).
    #[arg(long, default_value = "4096", hide = true)]
    event_queue: usize,
}

fn poll_interval(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_millis(100) {
        return Err(format!("`{text}` is too short to poll at: at least 100ms"));
    }
    Ok(d)
}

#[derive(Args)]
#[command(
    about = "Exit 0 if a `sigcat watch --heartbeat FILE` touched FILE recently (a liveness probe)",
    after_help = args::help(HEALTHCHECK_EXAMPLES)
)]
pub(crate) struct HealthcheckArgs {
    /// The watcher's heartbeat file.
    file: PathBuf,
    /// Older than this is unhealthy.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    max_age: Duration,
}

/// Liveness only: a fresh heartbeat is healthy; a stale, missing, future-dated or unreadable
/// one is not (exit 11). The storage's health, which the watcher writes into the file, is said
/// on stderr either way.
pub(crate) fn healthcheck(args: HealthcheckArgs) -> Result<Option<Fault>, Failure> {
    let verdict = watch::heartbeat::check(&args.file, args.max_age, std::time::SystemTime::now());
    if let Some(storage) = verdict.storage.as_deref() {
        messages::say(&format!("storage: {storage}"));
    }
    if let Some(why) = &verdict.unhealthy {
        messages::say(&format!("unhealthy: {why}"));
    }
    Ok(verdict.fault())
}

async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub(crate) fn run(args: WatchArgs) -> Result<Option<Fault>, Failure> {
    let template = args.template.options()?;
    let catalog = args.catalog.open_for_writing(&args.signing)?;
    let config = WatchConfig {
        once: args.once,
        poll: args.poll,
        concurrency: args.concurrency.into(),
        max_batch: args.max_batch.into(),
        settle: args.settle,
        incomplete_timeout: args.incomplete_timeout,
        shutdown_timeout: args.shutdown_timeout,
        max_backoff: args.max_backoff,
        heartbeat: args.heartbeat.clone(),
        event_queue: args.event_queue,
        template,
        dir_grace: args.dir_grace,
        ..WatchConfig::new(args.dir.clone())
    };
    tracing::info!(dir = %watch::shown(&args.dir), catalog = %catalog.describe(), "watching");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| sigcat::Error::io("<tokio runtime>", e))?;
    let result = rt.block_on(watch::run(config, catalog, shutdown_signal()));
    // Whatever is still running off the async threads is not waited for: what did not
    // finish stays in the directory for the next start.
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        // --once: the worst outcome of the files it handled; a service that stops cleanly: 0.
        Ok(summary) if args.once => Ok(summary.fault()),
        Ok(_) => Ok(None),
        Err(e) => Err(Failure::Watch(e)),
    }
}
