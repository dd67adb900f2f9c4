//! `cargo bench --bench watch_latency`: from a file's drop (close, or rename into the
//! directory) to its image being in the catalog index, p50 and p99 over files dropped one at a
//! time, and the time to drain a 1,000-file burst; for the local store and Azurite.
//! The time a file is "in the index" is the watcher's `published` log line, written after the
//! index update. Measured, not asserted: prints a Markdown table for the README.

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

fn run(name: &str, catalog: &str, singles: usize, burst: usize) -> String {
    let root = util::scratch(&format!("bench-watch-{name}"));
    let dir = root.join("drop");
    std::fs::create_dir_all(&dir).unwrap();
    let log_path = root.join("watch.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigcat"))
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
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("watching")
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut latencies = Vec::new();
    for n in 0..singles {
        let file = format!("single-{n}.log");
        let staging = root.join(&file);
        std::fs::write(&staging, log_for(n)).unwrap();
        let dropped = SystemTime::now();
        std::fs::rename(&staging, dir.join(&file)).unwrap();
        let at = loop {
            if let Some(t) = published_at(
                &std::fs::read_to_string(&log_path).unwrap(),
                &format!("/{file}\""),
            ) {
                break t;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        latencies.push(at.duration_since(dropped).unwrap_or_default());
    }
    latencies.sort();
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
    let p = |q: f64| {
        latencies[((latencies.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3
    };
    format!(
        "| {name} | {singles} | {:.1} ms | {:.1} ms | {burst} | {:.2} s |",
        p(0.5),
        p(0.99),
        drain.as_secs_f64()
    )
}

fn main() {
    let azurite = util::Azurite::start("bench-watch");
    let local = util::scratch("bench-watch-local-catalog");
    let rows = [
        run("local", local.to_str().unwrap(), 100, 1000),
        run("azurite", &azurite.url("bench-watch"), 100, 1000),
    ];
    println!(
        "\n| store | files (one at a time) | drop → index p50 | p99 | burst | burst drained in |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
