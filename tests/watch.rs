//! `sigcat watch` as a service: the real binary, real filesystem events, a real catalog (the
//! local store and Azurite). Each test checks what ends up in the catalog and the directory.

use crate::util::{Azurite, BIN, log_for, scratch};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Writes a file elsewhere and renames it in: the atomic drop.
fn drop_atomically(dir: &Path, name: &str, content: &str) {
    let staging = dir.parent().unwrap().join(format!("staging-{name}"));
    std::fs::write(&staging, content).unwrap();
    std::fs::rename(&staging, dir.join(name)).unwrap();
}

struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    fn start(dir: &Path, catalog: &str, extra: &[&str]) -> Service {
        let log = dir.parent().unwrap().join(format!(
            "watch-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let child = Command::new(BIN)
            .args([
                "watch",
                dir.to_str().unwrap(),
                "--catalog",
                catalog,
                "--log-format",
                "json",
                "--settle",
                "300ms",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = Service { child, log };
        s.wait_for_log("watching");
        s
    }

    fn wait_for_log(&self, needle: &str) {
        wait_until(
            Duration::from_secs(30),
            || {
                std::fs::read_to_string(&self.log)
                    .unwrap_or_default()
                    .contains(needle)
            },
            &format!("`{needle}` in the watcher's log"),
        );
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// SIGTERM; the exit status and the time it took.
    fn terminate(mut self) -> (Option<i32>, Duration, String) {
        let t = Instant::now();
        self.signal("-TERM");
        let status = self.child.wait().unwrap();
        (
            status.code(),
            t.elapsed(),
            std::fs::read_to_string(&self.log).unwrap(),
        )
    }

    fn kill9(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A drop directory and a local catalog for one test.
fn drop_and_catalog(name: &str) -> (PathBuf, String) {
    let root = scratch(name);
    let dir = root.join("drop");
    std::fs::create_dir_all(&dir).unwrap();
    (dir, root.join("catalog").display().to_string())
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Gallery versions in the catalog, one per index entry (duplicates would show).
fn catalog_versions(catalog: &str, env: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = Command::new(BIN);
    cmd.args(["catalog", "list", "--format", "json", "--catalog", catalog]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let mut versions: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["gallery_image_version"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    versions.sort();
    versions
}

fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    let mut v: Vec<String> = range.map(|n| format!("0.3.{n}")).collect();
    v.sort();
    v
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn summary(log: &str) -> serde_json::Value {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("\"summary\""))
        .unwrap_or_else(|| panic!("no summary in\n{log}"));
    serde_json::from_str::<serde_json::Value>(line).unwrap()["fields"].clone()
}

#[test]
fn atomic_drops_slow_writers_and_malformed_files() {
    let (dir, catalog) = drop_and_catalog("watch-basic");
    let service = Service::start(&dir, &catalog, &[]);

    // The atomic drop (no close event), with its manifest beside it.
    std::fs::copy(
        crate::util::repo().join("fixtures/manifest/manifest.json"),
        dir.join("a.manifest.json"),
    )
    .unwrap();
    drop_atomically(
        &dir,
        "a.log",
        &std::fs::read_to_string(crate::util::repo().join("fixtures/console/sig-ubuntu-2404.log"))
            .unwrap(),
    );
    wait_until(
        Duration::from_secs(20),
        || catalog_versions(&catalog, &[]) == ["0.3.1721037000"],
        "the renamed-in log in the catalog",
    );
    wait_until(
        Duration::from_secs(5),
        || files_in(&dir.join("done")) == ["a.log", "a.manifest.json"],
        "a.log and its manifest in done/",
    );

    // A slow writer that keeps the file open and one that closes it after every chunk, both
    // cut inside the artifact block: neither is taken before it is whole.
    let content = log_for(1);
    let cut = content.find("ManagedImageLocation").unwrap();
    let mut open_writer = std::fs::File::create(dir.join("slow-open.log")).unwrap();
    open_writer.write_all(&content.as_bytes()[..cut]).unwrap();
    let chunky = log_for(2);
    std::fs::write(dir.join("slow-chunks.log"), &chunky[..cut]).unwrap();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(
            catalog_versions(&catalog, &[]),
            ["0.3.1721037000"],
            "nothing half-written is published"
        );
        assert!(dir.join("slow-open.log").exists() && dir.join("slow-chunks.log").exists());
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("slow-chunks.log"))
            .unwrap()
            .write_all(b"")
            .unwrap();
    }
    open_writer.write_all(&content.as_bytes()[cut..]).unwrap();
    drop(open_writer);
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("slow-chunks.log"))
        .unwrap()
        .write_all(&chunky.as_bytes()[cut..])
        .unwrap();
    wait_until(
        Duration::from_secs(20),
        || catalog_versions(&catalog, &[]).len() == 3,
        "both slow files published",
    );
    let show = Command::new(BIN)
        .args(["catalog", "latest", "--record", "--catalog", &catalog])
        .output()
        .unwrap();
    let latest: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(
        latest["gallery_image"]["replicated_regions"],
        serde_json::json!(["northcentralus", "eastus2"]),
        "the whole block was read"
    );

    // Malformed input: quarantined with the reason beside it.
    drop_atomically(
        &dir,
        "bad.log",
        &std::fs::read_to_string(crate::util::repo().join("fixtures/invalid/gallery-mismatch.log"))
            .unwrap(),
    );
    drop_atomically(&dir, "notes.out", "just some notes\n");
    wait_until(
        Duration::from_secs(20),
        || {
            dir.join("quarantine/bad.log.error").exists()
                && dir.join("quarantine/notes.out.error").exists()
        },
        "quarantine",
    );
    let why = std::fs::read_to_string(dir.join("quarantine/bad.log.error")).unwrap();
    assert!(
        why.contains("bad.log:41") && why.contains("disagrees"),
        "{why}"
    );
    let (code, _, log) = service.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        files_in(&dir).is_empty(),
        "nothing left behind: {:?}",
        files_in(&dir)
    );
    assert_eq!(catalog_versions(&catalog, &[]).len(), 3);
}

#[test]
fn a_burst_of_1000_files_takes_far_fewer_index_writes() {
    let (dir, catalog) = drop_and_catalog("watch-burst");
    let service = Service::start(&dir, &catalog, &[]);
    for n in 0..1000 {
        drop_atomically(&dir, &format!("b{n:04}.log"), &log_for(n));
    }
    wait_until(
        Duration::from_secs(300),
        || files_in(&dir.join("done")).len() == 1000,
        "1000 files in done/",
    );
    let (code, _, log) = service.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(catalog_versions(&catalog, &[]), expected(0..1000));
    let s = summary(&log);
    let writes = s["index_updates"].as_u64().unwrap();
    assert!(writes <= 250, "1000 files took {writes} index writes");
    assert_eq!(s["images_published"].as_u64(), Some(1000));
}

#[test]
fn sigkill_in_the_middle_then_restart_publishes_everything_exactly_once() {
    let (dir, catalog) = drop_and_catalog("watch-sigkill");
    let service = Service::start(&dir, &catalog, &["--max-batch", "16"]);
    for n in 0..300 {
        drop_atomically(&dir, &format!("k{n:03}.log"), &log_for(n));
    }
    wait_until(
        Duration::from_secs(60),
        || !files_in(&dir.join("done")).is_empty(),
        "some files done",
    );
    service.kill9();
    let left = files_in(&dir).len();
    let out = Command::new(BIN)
        .args([
            "watch",
            dir.to_str().unwrap(),
            "--once",
            "--catalog",
            &catalog,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        catalog_versions(&catalog, &[]),
        expected(0..300),
        "every file exactly once ({left} were left by the kill)"
    );
    assert!(
        files_in(&dir).is_empty(),
        "none stuck: {:?}",
        files_in(&dir)
    );
    assert_eq!(files_in(&dir.join("done")).len(), 300);
}

#[test]
fn sigterm_with_work_in_flight_exits_cleanly_and_loses_nothing() {
    let (dir, catalog) = drop_and_catalog("watch-sigterm");
    let service = Service::start(&dir, &catalog, &["--shutdown-timeout", "10s"]);
    for n in 0..200 {
        drop_atomically(&dir, &format!("t{n:03}.log"), &log_for(n));
    }
    let (code, took, log) = service.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        took < Duration::from_secs(15),
        "stopped within the bound: {took:?}"
    );
    let out = Command::new(BIN)
        .args([
            "watch",
            dir.to_str().unwrap(),
            "--once",
            "--catalog",
            &catalog,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(catalog_versions(&catalog, &[]), expected(0..200));
    assert!(files_in(&dir).is_empty());
}

#[test]
fn azurite_stopped_and_started_again_while_files_keep_arriving() {
    let mut azurite = Azurite::start("watch-outage");
    let root = scratch("watch-outage");
    let dir = root.join("drop");
    std::fs::create_dir_all(&dir).unwrap();
    let catalog = azurite.url("images");
    let service = Service::start(&dir, &catalog, &["--max-backoff", "1s"]);
    for n in 0..10 {
        drop_atomically(&dir, &format!("o{n}.log"), &log_for(n));
    }
    wait_until(
        Duration::from_secs(30),
        || catalog_versions(&catalog, &[]).len() == 10,
        "first 10 in Azurite",
    );
    azurite.stop();
    for n in 10..20 {
        drop_atomically(&dir, &format!("o{n}.log"), &log_for(n));
    }
    service.wait_for_log("\"retry\"");
    assert_eq!(files_in(&dir).len(), 10, "kept while the catalog is down");
    azurite.restart();
    wait_until(
        Duration::from_secs(90),
        || files_in(&dir).is_empty(),
        "the kept files published after the outage",
    );
    assert_eq!(catalog_versions(&catalog, &[]), expected(0..20));
    let (code, _, _) = service.terminate();
    assert_eq!(code, Some(0));
}

#[test]
fn polling_mode_and_once_with_a_backlog() {
    let (dir, catalog) = drop_and_catalog("watch-poll");
    // A backlog that arrived while nothing was running, one file still being written.
    for n in 0..5 {
        std::fs::write(dir.join(format!("p{n}.log")), log_for(n)).unwrap();
    }
    let partial = log_for(99);
    std::fs::write(dir.join("writing.log"), &partial[..partial.len() / 2]).unwrap();
    let out = Command::new(BIN)
        .args([
            "watch",
            dir.to_str().unwrap(),
            "--once",
            "--catalog",
            &catalog,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("backlog") && err.contains("files=6"),
        "progress shown: {err}"
    );
    assert_eq!(catalog_versions(&catalog, &[]), expected(0..5));
    assert_eq!(
        files_in(&dir),
        ["writing.log"],
        "the unfinished file is left for the next run"
    );

    let service = Service::start(&dir, &catalog, &["--poll", "200ms"]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("writing.log"))
        .unwrap()
        .write_all(&partial.as_bytes()[partial.len() / 2..])
        .unwrap();
    drop_atomically(&dir, "p5.log", &log_for(5));
    wait_until(
        Duration::from_secs(20),
        || catalog_versions(&catalog, &[]).len() == 7,
        "polled files published",
    );
    let (code, _, _) = service.terminate();
    assert_eq!(code, Some(0));
}

#[test]
fn an_overflowing_event_queue_falls_back_to_a_rescan() {
    let (dir, catalog) = drop_and_catalog("watch-overflow");
    // A queue of 2 events: a burst of 200 files overflows it.
    let service = Service::start(&dir, &catalog, &["--event-queue", "2"]);
    for n in 0..200 {
        drop_atomically(&dir, &format!("q{n:03}.log"), &log_for(n));
    }
    wait_until(
        Duration::from_secs(120),
        || files_in(&dir.join("done")).len() == 200,
        "200 files in done/",
    );
    let (code, _, log) = service.terminate();
    assert_eq!(code, Some(0));
    assert!(
        log.contains("rescanning"),
        "the overflow was handled by a rescan"
    );
    assert_eq!(catalog_versions(&catalog, &[]), expected(0..200));
}

#[test]
fn a_build_directory_renamed_in_is_one_drop() {
    let (dir, catalog) = drop_and_catalog("watch-subdir");
    let service = Service::start(&dir, &catalog, &[]);
    let staging = dir.parent().unwrap().join("build-7");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::copy(
        crate::util::repo().join("fixtures/console/sig-ubuntu-2404.log"),
        staging.join("packer.out"),
    )
    .unwrap();
    std::fs::copy(
        crate::util::repo().join("fixtures/manifest/manifest.json"),
        staging.join("manifest.json"),
    )
    .unwrap();
    std::fs::rename(&staging, dir.join("build-7")).unwrap();
    wait_until(
        Duration::from_secs(20),
        || dir.join("done/build-7/packer.out").exists(),
        "the directory in done/",
    );
    assert!(dir.join("done/build-7/manifest.json").exists());
    let latest = Command::new(BIN)
        .args(["catalog", "latest", "--record", "--catalog", &catalog])
        .output()
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&latest.stdout).unwrap();
    assert_eq!(
        record["kubernetes_version"], "1.30.3",
        "the manifest in the directory was joined"
    );
    let (code, _, _) = service.terminate();
    assert_eq!(code, Some(0));
}
