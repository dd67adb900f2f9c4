//! The watcher's loop against the real filesystem and notify, with an in-memory catalog (or
//! one that fails on purpose): each defect of the issue "a watcher that survives the real
//! world" that can be shown without the binary is shown here. (tests/watch.rs runs the binary.)

use super::*;
use crate::catalog::memory::MemoryStore;
use crate::catalog::store::{Op, PutMode, StoreError, Versioned};
use std::sync::atomic::AtomicU32;

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The fixture build as gallery version `0.3.<n>`: a distinct image per `n`.
fn log_for(n: usize) -> String {
    fixture("console/sig-ubuntu-2404.log").replace("0.3.1721037000", &format!("0.3.{n}"))
}

/// Writes a file elsewhere and renames it in: the atomic drop.
fn drop_in(dir: &Path, name: &str, content: &str) {
    let staging = dir.parent().unwrap().join(format!(".staging-{name}"));
    std::fs::write(&staging, content).unwrap();
    std::fs::rename(&staging, dir.join(name)).unwrap();
}

/// A fresh drop directory (kept alive by the returned guard).
fn drop_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("drop");
    std::fs::create_dir(&dir).unwrap();
    (tmp, dir)
}

fn config(dir: &Path) -> WatchConfig {
    WatchConfig {
        settle: Duration::from_millis(300),
        max_backoff: Duration::from_millis(200),
        template: TemplateOptions {
            vm_size: Some("Standard_D2s_v3".into()),
            ..TemplateOptions::default()
        },
        ..WatchConfig::new(dir.to_path_buf())
    }
}

/// Gallery versions in the catalog's index.
fn versions(store: &MemoryStore) -> Vec<String> {
    let mut v: Vec<String> = store
        .entries()
        .iter()
        .filter_map(|e| e.gallery_image_version.clone())
        .collect();
    v.sort();
    v
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A watcher running as a task, stopped by dropping `stop`.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<Summary, WatchError>>,
}

fn start<S: Store + 'static>(config: WatchConfig, store: S) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(config, Catalog::new(store), async move {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

impl Running {
    async fn stop(self) -> Summary {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the watcher stops when asked")
            .unwrap()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_file_of_a_batch_gets_its_own_outcome() {
    let (_tmp, dir) = drop_dir();
    // One batch: six good logs, a Flatcar build without a Plan, a VHD alone.
    for n in 0..6 {
        std::fs::write(dir.join(format!("good-{n}.log")), log_for(n)).unwrap();
    }
    std::fs::write(dir.join("flatcar.log"), fixture("console/flatcar-gen2.log")).unwrap();
    std::fs::write(dir.join("vhd.log"), fixture("console/vhd-plugin-2.5.log")).unwrap();
    let store = MemoryStore::new();
    let summary = run(
        WatchConfig {
            once: true,
            ..config(&dir)
        },
        Catalog::new(store.clone()),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(
        versions(&store),
        (0..6).map(|n| format!("0.3.{n}")).collect::<Vec<_>>()
    );
    assert_eq!(files_in(&dir.join("done")).len(), 6);
    let why = |name: &str| {
        std::fs::read_to_string(dir.join("quarantine").join(format!("{name}.error"))).unwrap()
    };
    assert!(
        why("flatcar.log").contains("Plan"),
        "{}",
        why("flatcar.log")
    );
    assert!(
        why("vhd.log").contains("no gallery image version or managed image"),
        "{}",
        why("vhd.log")
    );
    assert_eq!(summary.worst, Some(Fault::Refused), "not a storage failure");
    assert_eq!(summary.storage_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_is_set_aside_and_never_blocks_the_watcher() {
    let (_tmp, dir) = drop_dir();
    let store = MemoryStore::new();
    let running = start(config(&dir), store.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        std::process::Command::new("mkfifo")
            .arg(dir.join("stuck.log"))
            .status()
            .unwrap()
            .success()
    );
    drop_in(&dir, "a.log", &log_for(1));
    eventually("a.log published", || versions(&store) == ["0.3.1"]).await;
    eventually("the FIFO set aside", || {
        dir.join("quarantine/stuck.log.error").exists()
    })
    .await;
    let why = std::fs::read_to_string(dir.join("quarantine/stuck.log.error")).unwrap();
    assert!(why.contains("FIFO"), "{why}");
    drop_in(&dir, "b.log", &log_for(2));
    eventually("b.log published after it", || versions(&store).len() == 2).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_directory_removed_and_recreated_is_watched_again() {
    let (_tmp, dir) = drop_dir();
    let store = MemoryStore::new();
    let running = start(config(&dir), store.clone());
    drop_in(&dir, "a.log", &log_for(1));
    eventually("a.log published", || versions(&store).len() == 1).await;
    std::fs::remove_dir_all(&dir).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::fs::create_dir(&dir).unwrap();
    // Not only new events: the watcher rescans what is there when it sees the directory again.
    std::fs::write(dir.join("early.log"), log_for(2)).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop_in(&dir, "late.log", &log_for(3));
    eventually("both files in the new directory published", || {
        versions(&store).len() == 3
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_that_stays_gone_fails_loudly() {
    let (_tmp, dir) = drop_dir();
    let running = start(
        WatchConfig {
            dir_grace: Duration::from_secs(2),
            ..config(&dir)
        },
        MemoryStore::new(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::remove_dir_all(&dir).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(result, Err(WatchError::DirGone(..))), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_dropped_after_its_log_updates_the_published_image() {
    let (_tmp, dir) = drop_dir();
    let store = MemoryStore::new();
    let running = start(config(&dir), store.clone());
    let kubernetes = || store.entries().first()?.kubernetes_version.clone();
    drop_in(&dir, "a.log", &fixture("console/sig-ubuntu-2404.log"));
    eventually("a.log published", || dir.join("done/a.log").exists()).await;
    assert_eq!(kubernetes(), None);
    drop_in(&dir, "a.manifest.json", &fixture("manifest/manifest.json"));
    eventually("the manifest's Kubernetes version in the catalog", || {
        kubernetes().as_deref() == Some("1.30.3")
    })
    .await;
    eventually("the manifest beside its log, only once used", || {
        dir.join("done/a.manifest.json").exists()
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_closes_after_every_line_is_taken_whole() {
    let (_tmp, dir) = drop_dir();
    let store = MemoryStore::new();
    let running = start(
        WatchConfig {
            settle: Duration::from_millis(700),
            ..config(&dir)
        },
        store.clone(),
    );
    // The run lists the image twice (the manifest post-processor's duplicate block): after the
    // first block the log looks finished, and is not.
    let text = log_for(7);
    let path = dir.join("slow.log");
    for line in text.split_inclusive('\n') {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(line.as_bytes()).unwrap();
        drop(f);
        tokio::time::sleep(Duration::from_millis(if line.trim().is_empty() {
            250
        } else {
            15
        }))
        .await;
    }
    eventually("slow.log published", || dir.join("done/slow.log").exists()).await;
    assert_eq!(versions(&store), ["0.3.7"]);
    assert!(
        !dir.join("quarantine").exists(),
        "nothing of it quarantined"
    );
    let record = store
        .keys()
        .into_iter()
        .find(|k| k.contains("/record-"))
        .and_then(|k| store.read(&k))
        .unwrap();
    let record: crate::record::Record = serde_json::from_slice(&record).unwrap();
    assert_eq!(
        record.gallery_image.unwrap().replicated_regions,
        ["northcentralus", "eastus2"]
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_stopping_is_noticed_and_the_watcher_starts_it_again() {
    let (_tmp, dir) = drop_dir();
    let store = MemoryStore::new();
    let running = start(
        WatchConfig {
            stop_notify_after: Some(Duration::from_millis(200)),
            ..config(&dir)
        },
        store.clone(),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop_in(&dir, "after.log", &log_for(9));
    eventually("a file dropped after notify stopped", || {
        versions(&store) == ["0.3.9"]
    })
    .await;
    running.stop().await;
}

/// A store that refuses every request while `down` is set.
#[derive(Clone)]
struct Outage {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
    refused: Arc<AtomicU32>,
}

impl Outage {
    fn check(&self, key: &str) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable {
                op: Op::Write,
                key: key.into(),
                source: "connection refused (injected)".into(),
            });
        }
        Ok(())
    }
}

impl Store for Outage {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.check(key)?;
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        self.check(key)?;
        self.inner.put(key, bytes, mode).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<crate::catalog::store::Page, StoreError> {
        self.check(prefix)?;
        self.inner.list_page(prefix, after, max).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check(key)?;
        self.inner.delete(key).await
    }
    async fn exists(&self) -> Result<bool, StoreError> {
        Ok(true)
    }
    fn describe(&self) -> String {
        "outage".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_wait_out_a_storage_outage_and_are_never_quarantined_for_it() {
    let (_tmp, dir) = drop_dir();
    let store = Outage {
        inner: MemoryStore::new(),
        down: Arc::new(AtomicBool::new(true)),
        refused: Arc::new(AtomicU32::new(0)),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let catalog = Catalog::new(store.clone()).with_retry(crate::retry::RetryConfig::with_timeout(
        Duration::from_millis(300),
    ));
    let task = tokio::spawn(run(config(&dir), catalog, async move {
        let _ = stopped.await;
    }));
    for n in 0..3 {
        drop_in(&dir, &format!("o{n}.log"), &log_for(n));
    }
    eventually("a few refused tries", || {
        store.refused.load(Ordering::SeqCst) >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        files_in(&dir),
        ["o0.log", "o1.log", "o2.log"],
        "kept while the storage is down"
    );
    assert!(!dir.join("quarantine").exists());
    store.down.store(false, Ordering::SeqCst);
    eventually("published once the storage is back", || {
        versions(&store.inner).len() == 3
    })
    .await;
    let _ = stop.send(());
    let summary = task.await.unwrap().unwrap();
    assert!(summary.storage_errors >= 1);
    assert_eq!(summary.quarantined_files, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_takes_a_file_written_a_moment_ago() {
    let (_tmp, dir) = drop_dir();
    std::fs::write(dir.join("fresh.log"), log_for(4)).unwrap();
    let store = MemoryStore::new();
    let summary = run(
        WatchConfig {
            once: true,
            settle: Duration::from_secs(3600),
            ..config(&dir)
        },
        Catalog::new(store.clone()),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(versions(&store), ["0.3.4"]);
    assert_eq!((summary.published_files, summary.left), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_watcher_on_the_same_directory_is_refused() {
    let (_tmp, dir) = drop_dir();
    let running = start(config(&dir), MemoryStore::new());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = run(
        config(&dir),
        Catalog::new(MemoryStore::new()),
        std::future::pending(),
    )
    .await;
    assert!(matches!(second, Err(WatchError::Busy(..))), "{second:?}");
    running.stop().await;
    // Once the first is gone, the directory is free again.
    let again = run(
        WatchConfig {
            once: true,
            ..config(&dir)
        },
        Catalog::new(MemoryStore::new()),
        std::future::pending(),
    )
    .await;
    assert!(again.is_ok(), "{again:?}");
}

#[test]
fn file_names_are_shown_without_control_characters() {
    let evil = Path::new("/d/evil\n2026-01-01T00:00:00Z  INFO published\u{1b}[31m.log");
    let text = shown(evil);
    assert!(!text.chars().any(char::is_control), "{text}");
    assert!(
        text.contains("\\n2026") && text.contains("\\u{1b}"),
        "{text}"
    );
}
