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
        Service::start_logging(dir, catalog, extra, "info")
    }

    /// Started with `RUST_LOG=rust_log`.
    fn start_logging(dir: &Path, catalog: &str, extra: &[&str], rust_log: &str) -> Service {
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
            .env("RUST_LOG", rust_log)
            .env("XDG_STATE_HOME", dir.parent().unwrap().join("state"))
            .env("XDG_DATA_HOME", dir.parent().unwrap().join("data"))
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

/// `sigcat watch DIR --once --catalog CATALOG [extra...]`, run to its end.
fn watch_once(dir: &Path, catalog: &str, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args([
            "watch",
            dir.to_str().unwrap(),
            "--once",
            "--catalog",
            catalog,
        ])
        .args(extra)
        .output()
        .unwrap()
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
    cmd.args(["catalog", "list", "-o", "json", "--catalog", catalog]);
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
                // Hidden files are the watcher's own (its lock), never drops.
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
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
    let out = watch_once(&dir, &catalog, &[]);
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
    let out = watch_once(&dir, &catalog, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(catalog_versions(&catalog, &[]), expected(0..200));
    assert!(files_in(&dir).is_empty());
}

#[test]
fn sigterm_while_the_catalog_is_unreachable_stops_at_once_and_says_what_is_left() {
    let root = scratch("watch-sigterm-outage");
    let dir = root.join("drop");
    std::fs::create_dir_all(&dir).unwrap();
    // A port nobody listens on: every request is refused, and retried until the storage
    // timeout (a minute here), unless the watcher is told to stop.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let catalog = format!("http://127.0.0.1:{port}/devstoreaccount1/catalog");
    let service = Service::start_logging(
        &dir,
        &catalog,
        &["--storage-timeout", "60s"],
        "info,sigcat=debug",
    );
    drop_atomically(&dir, "a.log", &log_for(1));
    service.wait_for_log("transient storage error, retrying");
    let (code, took, log) = service.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        took < Duration::from_secs(5),
        "stopped at once, not after the storage timeout: {took:?}\n{log}"
    );
    assert_eq!(
        files_in(&dir),
        ["a.log"],
        "the file stays for the next start"
    );
    assert_eq!(summary(&log)["left"], 1, "{log}");
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
    let out = watch_once(&dir, &catalog, &[]);
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

/// `sigcat watch` with extra arguments, its stderr in a file; not waiting for anything.
fn spawn_watch(args: &[&str], cwd: &Path, log: &Path) -> Child {
    Command::new(BIN)
        .arg("watch")
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// `sigcat watch DIR --catalog CATALOG --settle 300ms [extra...]` from DIR's parent; its log
/// file is returned beside DIR.
fn spawn_service(dir: &Path, catalog: &str, extra: &[&str]) -> (Child, PathBuf) {
    let root = dir.parent().unwrap().to_path_buf();
    let log = root.join("watch.log");
    let mut args = vec![
        dir.to_str().unwrap(),
        "--catalog",
        catalog,
        "--settle",
        "300ms",
    ];
    args.extend(extra);
    (spawn_watch(&args, &root, &log), log)
}

fn terminate(mut child: Child) -> (Option<i32>, Duration) {
    let t = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), t.elapsed());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the watcher did not stop within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_relative_drop_directory_takes_new_files() {
    let root = scratch("watch-relative");
    std::fs::create_dir_all(root.join("drop")).unwrap();
    let log = root.join("watch.log");
    let child = spawn_watch(
        &["drop", "--catalog", "cat", "--settle", "300ms"],
        &root,
        &log,
    );
    wait_until(
        Duration::from_secs(20),
        || read(&log).contains("backlog"),
        "the watcher to start",
    );
    // cp (written in place, closed) and mv (renamed in), with relative paths as an operator types them.
    std::fs::write(root.join("staged.log"), log_for(1)).unwrap();
    assert!(
        Command::new("cp")
            .args(["staged.log", "drop/copied.log"])
            .current_dir(&root)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(root.join("moved.log"), log_for(2)).unwrap();
    assert!(
        Command::new("mv")
            .args(["moved.log", "drop/moved.log"])
            .current_dir(&root)
            .status()
            .unwrap()
            .success()
    );
    let catalog = root.join("cat").display().to_string();
    wait_until(
        Duration::from_secs(20),
        || catalog_versions(&catalog, &[]) == ["0.3.1", "0.3.2"],
        "both published",
    );
    let (code, _) = terminate(child);
    assert_eq!(code, Some(0), "{}", read(&log));
}

#[test]
fn a_fifo_named_like_a_log_neither_stalls_the_watcher_nor_its_shutdown() {
    let (dir, catalog) = drop_and_catalog("watch-fifo");
    crate::util::mkfifo(&dir.join("trap.log"));
    let (child, log) = spawn_service(&dir, &catalog, &["--log-format", "json"]);
    wait_until(
        Duration::from_secs(20),
        || dir.join("quarantine/trap.log.error").exists(),
        "the FIFO set aside",
    );
    drop_atomically(&dir, "after.log", &log_for(3));
    wait_until(
        Duration::from_secs(20),
        || catalog_versions(&catalog, &[]) == ["0.3.3"],
        "a later file published",
    );
    let (code, took) = terminate(child);
    assert_eq!(code, Some(0), "{}", read(&log));
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_vhd_only_log_is_refused_not_blamed_on_the_catalog() {
    let (dir, catalog) = drop_and_catalog("watch-vhd");
    std::fs::copy(
        crate::util::fixture_path("console/vhd-plugin-2.5.log"),
        dir.join("vhd.log"),
    )
    .unwrap();
    std::fs::write(dir.join("good.log"), log_for(5)).unwrap();
    let out = watch_once(&dir, &catalog, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "refused, not storage: {err}");
    assert_eq!(catalog_versions(&catalog, &[]), ["0.3.5"]);
    assert!(
        read(&dir.join("quarantine/vhd.log.error"))
            .contains("no gallery image version or managed image")
    );
}

#[test]
fn a_drop_directory_removed_blinds_the_healthcheck_until_it_is_back() {
    let (dir, catalog) = drop_and_catalog("watch-dir-gone");
    let root = dir.parent().unwrap().to_path_buf();
    let beat = root.join("heartbeat");
    let (child, log) = spawn_service(
        &dir,
        &catalog,
        &["--heartbeat", beat.to_str().unwrap(), "--dir-grace", "60s"],
    );
    let healthy = |max_age: &str| {
        Command::new(BIN)
            .args(["healthcheck", beat.to_str().unwrap(), "--max-age", max_age])
            .output()
            .unwrap()
            .status
            .success()
    };
    wait_until(
        Duration::from_secs(20),
        || healthy("6s"),
        "a fresh heartbeat",
    );
    std::fs::remove_dir_all(&dir).unwrap();
    wait_until(
        Duration::from_secs(20),
        || read(&log).contains("removed or renamed"),
        "the watcher to notice",
    );
    wait_until(
        Duration::from_secs(20),
        || !healthy("6s"),
        "the heartbeat to go stale while blind",
    );
    std::fs::create_dir(&dir).unwrap();
    wait_until(
        Duration::from_secs(20),
        || read(&log).contains("watching it again"),
        "the watcher to watch it again",
    );
    drop_atomically(&dir, "back.log", &log_for(6));
    wait_until(
        Duration::from_secs(20),
        || catalog_versions(&catalog, &[]) == ["0.3.6"],
        "a file in the new directory",
    );
    wait_until(Duration::from_secs(20), || healthy("6s"), "healthy again");
    let (code, _) = terminate(child);
    assert_eq!(code, Some(0));
}

#[test]
fn a_manifest_copied_in_after_its_log_adds_the_kubernetes_version() {
    let (dir, catalog) = drop_and_catalog("watch-late-manifest");
    let service = Service::start(&dir, &catalog, &[]);
    std::fs::copy(
        crate::util::fixture_path("console/sig-ubuntu-2404.log"),
        dir.join("b.log"),
    )
    .unwrap();
    wait_until(
        Duration::from_secs(20),
        || dir.join("done/b.log").exists(),
        "the log published",
    );
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::copy(
        crate::util::fixture_path("manifest/manifest.json"),
        dir.join("b.manifest.json"),
    )
    .unwrap();
    let kubernetes = || {
        let out = Command::new(BIN)
            .args(["catalog", "latest", "--record", "--catalog", &catalog])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .map(|r| r["kubernetes_version"].clone())
    };
    wait_until(
        Duration::from_secs(20),
        || kubernetes() == Some(serde_json::json!("1.30.3")),
        "the version from the late manifest",
    );
    wait_until(
        Duration::from_secs(10),
        || dir.join("done/b.manifest.json").exists(),
        "the manifest beside its log",
    );
    let (code, _, log) = service.terminate();
    assert_eq!(code, Some(0));
    assert!(log.contains("\"enriched\""), "{log}");
}

#[test]
fn an_unreadable_file_is_said_once_and_set_aside_after_the_timeout() {
    // Root reads any file, so the watcher runs as `nobody` (setpriv, util-linux).
    let (dir, catalog) = drop_and_catalog("watch-unreadable");
    let root = dir.parent().unwrap().to_path_buf();
    for d in [&root, &dir] {
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    let locked = dir.join("locked.log");
    std::fs::write(&locked, log_for(8)).unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let log = root.join("watch.log");
    let child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "watch",
            dir.to_str().unwrap(),
        ])
        .args([
            "--catalog",
            &catalog,
            "--settle",
            "300ms",
            "--incomplete-timeout",
            "3s",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("setpriv (util-linux) is needed to run the watcher as another user: {e}")
        });
    wait_until(
        Duration::from_secs(20),
        || dir.join("quarantine/locked.log.error").exists(),
        "the unreadable file set aside",
    );
    assert!(read(&dir.join("quarantine/locked.log.error")).contains("unreadable"));
    let text = read(&log);
    assert_eq!(
        text.matches("cannot read it").count(),
        1,
        "said once at WARN:\n{text}"
    );
    assert!(text.contains("WARN"), "{text}");
    let (code, _) = terminate(child);
    assert_eq!(code, Some(0), "{}", read(&log));
}

#[test]
fn the_heartbeat_stays_fresh_while_a_round_waits_on_a_black_holed_storage() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let root = scratch("watch-black-hole");
    let dir = root.join("drop");
    std::fs::create_dir_all(&dir).unwrap();
    let beat = root.join("heartbeat");
    let catalog = format!("http://127.0.0.1:{port}/devstoreaccount1/images");
    let (child, log) = spawn_service(
        &dir,
        &catalog,
        &[
            "--heartbeat",
            beat.to_str().unwrap(),
            "--storage-timeout",
            "12s",
        ],
    );
    drop_atomically(&dir, "a.log", &log_for(1));
    let health = || {
        Command::new(BIN)
            .args(["healthcheck", beat.to_str().unwrap(), "--max-age", "7s"])
            .output()
            .unwrap()
    };
    wait_until(
        Duration::from_secs(20),
        || health().status.success(),
        "a first heartbeat",
    );
    // The round now waits up to 12 s on a storage that never answers: the loop is alive.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(11) {
        assert!(
            health().status.success(),
            "liveness failed during a long round after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(700));
    }
    // Storage health is reported separately, without failing liveness.
    wait_until(
        Duration::from_secs(30),
        || read(&beat).contains("storage: unavailable"),
        "storage reported down",
    );
    let out = health();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("storage: unavailable since"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _) = terminate(child);
    assert_eq!(code, Some(0), "{}", read(&log));
}

#[test]
fn malformed_durations_and_counts_are_usage_errors_not_panics() {
    let (dir, catalog) = drop_and_catalog("watch-flags");
    for bad in [
        &["--poll", "0ms"][..],
        &["--settle", "9223372036854775807s"],
        &["--max-backoff", "soon"],
        &["--concurrency", "0"],
        &["--max-batch", "0"],
        &["--storage-timeout", "0s"],
    ] {
        let out = Command::new(BIN)
            .args([
                "watch",
                dir.to_str().unwrap(),
                "--once",
                "--catalog",
                &catalog,
            ])
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A tiny --max-backoff is honoured, not a panic, while the storage is down.
    std::fs::write(dir.join("a.log"), log_for(1)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args([
            "watch",
            dir.to_str().unwrap(),
            "--once",
            "--max-backoff",
            "100ms",
            "--storage-timeout",
            "1s",
        ])
        .args([
            "--catalog",
            &format!("http://127.0.0.1:{port}/devstoreaccount1/images"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.join("a.log").exists(),
        "the file stays for the next run"
    );
}

#[test]
fn a_file_name_cannot_forge_log_lines() {
    let (dir, catalog) = drop_and_catalog("watch-forged-names");
    let (child, log) = spawn_service(&dir, &catalog, &[]);
    wait_until(
        Duration::from_secs(20),
        || read(&log).contains("backlog"),
        "the watcher to start",
    );
    let evil = "evil\n2030-01-01T00:00:00Z  INFO FORGED published all images\u{1b}[2J.log";
    drop_atomically(&dir, evil, "just some notes\n");
    wait_until(
        Duration::from_secs(20),
        || read(&log).contains("quarantined"),
        "the file judged",
    );
    let text = read(&log);
    assert!(
        text.lines().all(|l| !l.starts_with("2030-01-01")),
        "a forged line:\n{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "an escape reached the log:\n{text}"
    );
    let (code, _) = terminate(child);
    assert_eq!(code, Some(0));
}

#[test]
fn a_second_watcher_on_one_directory_refuses_to_start() {
    let (dir, catalog) = drop_and_catalog("watch-two");
    let service = Service::start(&dir, &catalog, &[]);
    let out = Command::new(BIN)
        .args(["watch", dir.to_str().unwrap(), "--catalog", &catalog])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("already watches"), "{err}");
    let (code, _, _) = service.terminate();
    assert_eq!(code, Some(0));
}
