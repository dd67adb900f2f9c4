//! `sigcat watch`: the long-running drop-directory service.

use super::catalog_cmd::{CatalogArg, TemplateArgs};
use super::exit::Exit;
use super::failure::Failure;
use super::{messages, parse_duration};
use clap::Args;
use sigcat::watch::{self, WatchConfig, WatchError};
use std::path::PathBuf;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  sigcat watch /srv/image-drops --catalog azblob://myaccount/images
  sigcat watch /mnt/nfs/drops --poll 5s --catalog /var/lib/sigcat/catalog
  sigcat watch /srv/image-drops --once            # drain the backlog and exit (cron, CI)
  RUST_LOG=debug sigcat watch /srv/image-drops --log-format json

Drop convention: NAME.log or NAME.out (with NAME.manifest.json beside it, optional), or one
sub-directory per build renamed into DIR. Outcomes: DIR/done/ (published), DIR/failed/ (every
build failed), DIR/quarantine/ (invalid or refused, with NAME.error). A service that stops
cleanly exits 0; --once exits with the worst outcome of the files it handled.";

#[derive(Args)]
#[command(about = "Watch a drop directory and publish every build log that lands there", after_help = super::help(EXAMPLES))]
pub struct WatchArgs {
    /// The drop directory.
    dir: PathBuf,
    #[command(flatten)]
    catalog: CatalogArg,
    #[command(flatten)]
    template: TemplateArgs,
    /// Drain the backlog and exit.
    #[arg(long)]
    once: bool,
    /// Poll every INTERVAL (e.g. 5s, 500ms) instead of using inotify.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_duration)]
    poll: Option<Duration>,
    /// Files parsed at once.
    #[arg(long, default_value = "4")]
    concurrency: usize,
    /// Most files per catalog write.
    #[arg(long, default_value = "64")]
    max_batch: usize,
    /// Quiet time before an unfinished-looking or invalid file is judged again.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    settle: Duration,
    /// Quiet time after which a log that never finished is taken as it is.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    incomplete_timeout: Duration,
    /// Longest wait between two tries while the catalog is unavailable.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    max_backoff: Duration,
    /// After SIGTERM / Ctrl-C, the longest wait for files in flight.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    shutdown_timeout: Duration,
    /// Touch FILE every 5 s while running, for a liveness probe (`sigcat healthcheck FILE`).
    #[arg(long, value_name = "FILE")]
    heartbeat: Option<PathBuf>,
    /// Events queued before falling back to a rescan (tests use a tiny queue to force one).
    #[arg(long, default_value = "4096", hide = true)]
    event_queue: usize,
}

#[derive(Args)]
#[command(
    about = "Exit 0 if a `sigcat watch --heartbeat FILE` touched FILE recently (a liveness probe)"
)]
pub struct HealthcheckArgs {
    /// The watcher's heartbeat file.
    file: PathBuf,
    /// Older than this is unhealthy.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    max_age: Duration,
}

pub fn healthcheck(args: HealthcheckArgs) -> Result<Exit, Failure> {
    let age = std::fs::metadata(&args.file)
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().unwrap_or_default());
    match age {
        Ok(age) if age <= args.max_age => Ok(Exit::Ok),
        Ok(age) => {
            messages::say(&format!(
                "unhealthy: {} was last touched {}s ago (limit {}s)",
                args.file.display(),
                age.as_secs(),
                args.max_age.as_secs()
            ));
            Ok(Exit::BuildFailed)
        }
        Err(e) => {
            messages::say(&format!("unhealthy: {}: {e}", args.file.display()));
            Ok(Exit::BuildFailed)
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub fn run(args: WatchArgs) -> Result<Exit, Failure> {
    let template = args.template.options()?;
    let catalog = args.catalog.open()?;
    let config = WatchConfig {
        once: args.once,
        poll: args.poll,
        concurrency: args.concurrency,
        max_batch: args.max_batch.max(1),
        settle: args.settle,
        incomplete_timeout: args.incomplete_timeout,
        shutdown_timeout: args.shutdown_timeout,
        max_backoff: args.max_backoff,
        heartbeat: args.heartbeat.clone(),
        event_queue: args.event_queue,
        template,
        ..WatchConfig::new(args.dir.clone())
    };
    tracing::info!(dir = %args.dir.display(), catalog = %catalog.describe(), "watching");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    match rt.block_on(watch::run(config, catalog, shutdown_signal())) {
        Ok(summary) if args.once && summary.quarantined_files > 0 => Ok(Exit::InvalidInput),
        Ok(_) => Ok(Exit::Ok),
        Err(e @ WatchError::Storage(_)) => {
            messages::say(&format!("error: {e}"));
            Ok(Exit::Storage)
        }
        Err(e) => {
            messages::say(&format!("error: {}", sigcat::error::chain(&e)));
            Ok(Exit::Io)
        }
    }
}
