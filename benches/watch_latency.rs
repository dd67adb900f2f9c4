//! `cargo bench --bench watch_latency`: from a file's drop to its image being in the catalog
//! index, p50 and p99 over files dropped one at a time (renamed in: the atomic drop; and written
//! in place and closed, which is taken once quiet for --settle), and the time to drain a
//! 1,000-file burst; for the local store and Azurite. Then the watcher's idle CPU: an empty
//! directory against one where 2,000 files appeared and vanished.
//! The time a file is "in the index" is the watcher's `published` log line, written after the
//! index update. Measured, not asserted: prints Markdown tables for the README.

#[path = "../tests/util.rs"]
mod util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use util::log_for;

fn published_at(log: &str, file: &str) -> Option<SystemTime> {
    log.lines()
        .filter(|l| l.contains("\"published\"") && l.contains(file))
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let ts = time::OffsetDateTime::parse(
                v["timestamp"].as_str()?,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()?;
            Some(SystemTime::from(ts))
        })
}

fn count_done(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("done"))
        .map(|r| r.count())
        .unwrap_or(0)
}

/// The CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces, so split after its `)`).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Duration::from_secs_f64(ticks as f64 / per_second)
}

fn start_watcher(dir: &Path, catalog: &str, log_path: &Path) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_sigcat"))
        .args([
            "watch",
            dir.to_str().unwrap(),
            "--catalog",
            catalog,
            "--log-format",
            "json",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log_path).unwrap())
        .spawn()
        .unwrap();
    while !std::fs::read_to_string(log_path)
        .unwrap_or_default()
        .contains("backlog")
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// CPU used by an idle watcher over `idle`, after `vanished` files appeared and vanished.
fn idle_cpu(vanished: usize, idle: Duration) -> String {
    let root = util::scratch(&format!("bench-watch-idle-{vanished}"));
    let dir = root.join("drop");
    std::fs::create_dir_all(&dir).unwrap();
    let catalog = root.join("catalog");
    let mut child = start_watcher(&dir, catalog.to_str().unwrap(), &root.join("watch.log"));
    for n in 0..vanished {
        let path = dir.join(format!("gone-{n}.log"));
        std::fs::write(&path, "a build log that is deleted at once\n").unwrap();
        std::fs::remove_file(&path).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    let before = cpu_time(child.id());
    std::thread::sleep(idle);
    let used = cpu_time(child.id()) - before;
    let _ = child.kill();
    let _ = child.wait();
    format!(
        "| {vanished} | {:.0} s | {:.2} s | {:.2}% |",
        idle.as_secs_f64(),
        used.as_secs_f64(),
        used.as_secs_f64() / idle.as_secs_f64() * 100.0
    )
}

/// p50 and p99 of single drops, renamed in (`rename`) or written in place and closed.
fn singles(
    dir: &Path,
    root: &Path,
    log_path: &Path,
    count: usize,
    offset: usize,
    rename: bool,
) -> (f64, f64) {
    let mut latencies = Vec::new();
    for n in 0..count {
        let file = format!("single-{}.log", offset + n);
        let dropped = if rename {
            let staging = root.join(&file);
            std::fs::write(&staging, log_for(offset + n)).unwrap();
            let t = SystemTime::now();
            std::fs::rename(&staging, dir.join(&file)).unwrap();
            t
        } else {
            let content = log_for(offset + n);
            std::fs::write(dir.join(&file), content).unwrap();
            SystemTime::now() // closed
        };
        let at = loop {
            if let Some(t) = published_at(
                &std::fs::read_to_string(log_path).unwrap(),
                &format!("/{file}\""),
            ) {
                break t;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        latencies.push(at.duration_since(dropped).unwrap_or_default());
    }
    latencies.sort();
    let p = |q: f64| {
        latencies[((latencies.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3
    };
    (p(0.5), p(0.99))
}

fn run(name: &str, catalog: &str, renamed: usize, written: usize, burst: usize) -> String {
    let root = util::scratch(&format!("bench-watch-{name}"));
    let dir = root.join("drop");
    std::fs::create_dir_all(&dir).unwrap();
    let log_path = root.join("watch.log");
    let mut child = start_watcher(&dir, catalog, &log_path);
    std::thread::sleep(Duration::from_millis(200));
    let (r50, r99) = singles(&dir, &root, &log_path, renamed, 0, true);
    let (w50, w99) = singles(&dir, &root, &log_path, written, renamed, false);
    let singles = renamed + written;
    let start = Instant::now();
    for n in 0..burst {
        let file = format!("burst-{n:04}.log");
        let staging = root.join(&file);
        std::fs::write(&staging, log_for(100_000 + n)).unwrap();
        std::fs::rename(&staging, dir.join(&file)).unwrap();
    }
    while count_done(&dir) < singles + burst {
        std::thread::sleep(Duration::from_millis(10));
    }
    let drain = start.elapsed();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    format!(
        "| {name} | {renamed} | {r50:.1} ms | {r99:.1} ms | {written} | {w50:.0} ms | {w99:.0} ms | {burst} | {:.2} s |",
        drain.as_secs_f64()
    )
}

fn main() {
    let azurite = util::Azurite::start("bench-watch");
    let local = util::scratch("bench-watch-local-catalog");
    let rows = [
        run("local", local.to_str().unwrap(), 100, 20, 1000),
        run("azurite", &azurite.url("bench-watch"), 100, 20, 1000),
    ];
    println!(
        "\n| store | renamed in | p50 | p99 | written in place (--settle 2s) | p50 | p99 | burst | burst drained in |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    let idle = Duration::from_secs(20);
    let rows = [idle_cpu(0, idle), idle_cpu(2000, idle)];
    println!("\n| files that appeared and vanished | idle for | CPU used | share of one core |");
    println!("|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
