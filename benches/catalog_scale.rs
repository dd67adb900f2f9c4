//! `cargo bench --bench catalog_scale`: what publishing one more image, `catalog latest`,
//! `catalog list`, `verify` and `rebuild-index` cost as the catalog grows to 1,000, 10,000 and
//! 100,000 images, on the local store and Azurite (on loopback); and 16 publishers on
//! different shards at once.
//!
//! The catalogs are spread the way real ones are: 10 Kubernetes minors, 8 OS variants, up to 20
//! patches of each minor, and as many gallery versions of each as the size needs. Publishing
//! 100,000 images one call at a time would take hours, so each catalog is generated through the
//! library: every image's record, template, revision and anchor written as objects (on the local store
//! straight to files, without fsync; on Azurite 32 at a time), then one index of them all
//! (`Catalog::import_index`, the path rebuild-index writes with). What is measured afterwards
//! goes through sigcat as users run it.
//!
//! Measured, not asserted: prints Markdown tables for the README. Environment:
//! SIGCAT_BENCH_SIZES (default 1000,10000,100000), SIGCAT_BENCH_VERIFY_MAX_AZURITE (the largest
//! Azurite catalog verify and rebuild-index run on, default 50000), SIGCAT_BENCH_PARTS
//! (default scale,concurrency; also listing: Azurite's listing of `images/` alone, at each
//! size), SIGCAT_BENCH_STORES (default local,azurite; the local store is always measured);
//! for the 16 publishers: SIGCAT_BENCH_MODES (`0:off,20:on`: added latency in ms and group
//! commit; default all four), SIGCAT_BENCH_LATENCY_MS (default 20),
//! SIGCAT_BENCH_CONCURRENCY_IMAGES (default 10000), SIGCAT_BENCH_TRACE (every request on stderr).

#[path = "../tests/util.rs"]
mod util;

use futures::StreamExt;
use sigcat::catalog::entry::{self, Entry};
use sigcat::catalog::index::{Filter, IndexEntry};
use sigcat::catalog::store::{Page, PutMode, Store, StoreError, Versioned};
use sigcat::catalog::{self, Catalog};
use sigcat::record::Record;
use sigcat::render::TemplateOptions;
use std::path::Path;
use std::time::{Duration, Instant};

const OS: [&str; 8] = [
    "ubuntu-2204",
    "ubuntu-2404",
    "ubuntu-2204-gen2",
    "ubuntu-2404-gen2",
    "ubuntu-2404-cvm",
    "windows-2022-containerd",
    "windows-2025-containerd",
    "azurelinux-3",
];

fn base() -> Record {
    let bytes = std::fs::read(util::repo().join("fixtures/console/sig-ubuntu-2404.log")).unwrap();
    sigcat::parse::parse_bytes(&bytes, "bench", None)
        .unwrap()
        .records
        .remove(0)
}

fn options() -> TemplateOptions {
    TemplateOptions {
        vm_size: Some("Standard_D2s_v3".into()),
        ..TemplateOptions::default()
    }
}

/// An image of OS `os`, Kubernetes `kubernetes`, gallery version `version`.
fn image(base: &Record, os: &str, kubernetes: &str, version: &str) -> Entry {
    let mut r = base.clone();
    r.build = format!("sig-{os}");
    r.build_name = format!("azure-arm.sig-{os}");
    if os.starts_with("windows") {
        r.os_type = Some("Windows".into());
    }
    let g = r.gallery_image.as_mut().unwrap();
    let definition = format!("capi-{os}");
    g.id =
        g.id.replace(
            "/images/capi-ubuntu-2404/",
            &format!("/images/{definition}/"),
        )
        .replace("/versions/0.3.1721037000", &format!("/versions/{version}"));
    g.image_definition = definition;
    g.version = version.to_string();
    r.kubernetes_version = Some(kubernetes.to_string());
    entry::prepare(&r, &options()).unwrap()
}

/// Image `i` of a generated catalog: minor 1.25 to 1.34, one of 8 OS, patch 0 to 19, gallery
/// version 0.3.i.
fn nth(base: &Record, i: usize) -> Entry {
    let minor = 25 + i % 10;
    let os = OS[(i / 10) % 8];
    let patch = (i / 80) % 20;
    image(base, os, &format!("1.{minor}.{patch}"), &format!("0.3.{i}"))
}

/// Writes `n` images' objects and one index of them all.
fn generate(
    rt: &tokio::runtime::Runtime,
    location: &str,
    local: Option<&Path>,
    n: usize,
    base: &Record,
) {
    let at = "2026-12-01T00:00:00.000Z";
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(n);
    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
    let store = catalog::open_store(location).unwrap();
    let flush = |objects: &mut Vec<(String, Vec<u8>)>| {
        let batch = std::mem::take(objects);
        match local {
            Some(dir) => {
                for (key, bytes) in batch {
                    let path = dir.join(&key);
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, bytes).unwrap();
                }
            }
            None => rt.block_on(async {
                let mut puts = futures::stream::iter(batch.into_iter().map(|(key, bytes)| {
                    let store = &store;
                    async move { store.put(&key, bytes, PutMode::Overwrite).await.unwrap() }
                }))
                .buffer_unordered(32);
                while puts.next().await.is_some() {}
            }),
        }
    };
    for i in 0..n {
        let e = nth(base, i);
        let (revision, revision_bytes) =
            entry::revision(&e.id, &e.record_ref(), &e.template_ref(), at, 1, None);
        objects.push((e.record_ref().key, e.record_bytes.clone()));
        objects.push((e.template_ref().key, e.template_bytes.clone()));
        objects.push((revision.key.clone(), revision_bytes));
        let entry = e.index_entry(revision, at.into());
        // The anchor every publish writes (which shard the image is in).
        let anchor = catalog::objects::Anchor {
            id: e.id.clone(),
            shard: entry.shard_name(),
        };
        objects.push((
            catalog::objects::anchor_key(&e.id),
            serde_json::to_vec_pretty(&anchor).unwrap(),
        ));
        entries.push(entry);
        if objects.len() >= 3000 {
            flush(&mut objects);
        }
    }
    flush(&mut objects);
    let catalog = Catalog::new(catalog::open_store(location).unwrap());
    rt.block_on(catalog.import_index(entries)).unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(10) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

fn mib(kib: i64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A sigcat command as a user runs it: (p50 wall time, peak memory) over `runs` runs.
fn cli(args: &[&str], runs: usize, ok: &[i32]) -> (Duration, i64) {
    let mut times = Vec::new();
    let mut peak = 0;
    for _ in 0..runs {
        let (code, kib, took) = util::measure(args);
        assert!(
            code.is_some_and(|c| ok.contains(&c)),
            "{args:?} exited {code:?}"
        );
        times.push(took);
        peak = peak.max(kib);
    }
    (median(times), peak)
}

struct Row {
    store: &'static str,
    images: usize,
    root_kb: f64,
    section_kb: f64,
    shard_kb: f64,
    publish: Duration,
    publish_cli: (Duration, i64),
    latest: Duration,
    latest_cli: (Duration, i64),
    list_cli: (Duration, i64),
    verify: Option<(Duration, i64)>,
    rebuild: Option<(Duration, i64)>,
    generated: Duration,
}

/// Where one catalog of the benchmark is.
struct Place<'a> {
    store: &'static str,
    location: &'a str,
    /// The directory of a local catalog (written straight to files when generating).
    local: Option<&'a Path>,
    /// Run verify and rebuild-index on it too.
    heavy: bool,
    /// Scratch space.
    work: &'a Path,
}

fn measure(rt: &tokio::runtime::Runtime, place: Place, n: usize, base: &Record) -> Row {
    let Place {
        store,
        location,
        local,
        heavy,
        work,
    } = place;
    let t = Instant::now();
    generate(rt, location, local, n, base);
    let generated = t.elapsed();
    let catalog = Catalog::new(catalog::open_store(location).unwrap());
    let raw = catalog::open_store(location).unwrap();
    let root_bytes = rt.block_on(raw.get("index.json")).unwrap().unwrap().bytes;
    let root: sigcat::catalog::index::Root = serde_json::from_slice(&root_bytes).unwrap();
    let sections: Vec<sigcat::catalog::index::Section> = root
        .sections
        .values()
        .map(|s| {
            serde_json::from_slice(&rt.block_on(raw.get(&s.key)).unwrap().unwrap().bytes).unwrap()
        })
        .collect();
    let section_kb = root
        .sections
        .values()
        .map(|s| rt.block_on(raw.get(&s.key)).unwrap().unwrap().bytes.len())
        .max()
        .unwrap_or(0) as f64
        / 1e3;
    let shard_kb = sections
        .iter()
        .flat_map(|s| s.shards.values())
        .map(|s| rt.block_on(raw.get(&s.key)).unwrap().unwrap().bytes.len())
        .max()
        .unwrap_or(0) as f64
        / 1e3;
    // One more image, into the shard a query will read (1.30, ubuntu-2404), five times.
    let mut publish = Vec::new();
    for k in 0..5 {
        let e = image(base, "ubuntu-2404", "1.30.19", &format!("0.9.{k}"));
        let t = Instant::now();
        rt.block_on(catalog.publish(&[e])).unwrap();
        publish.push(t.elapsed());
    }
    // A new image each time (the same log again would be an `unchanged` no-op).
    let mut publish_cli = (Vec::new(), 0);
    for k in 0..3 {
        let log = work.join(format!("publish-{k}.log"));
        std::fs::write(&log, util::log_for(7_000_000 + n * 10 + k)).unwrap();
        let log_s = log.display().to_string();
        let (took, kib) = cli(
            &[
                "publish",
                &log_s,
                "--kubernetes-version",
                "1.30.19",
                "--catalog",
                location,
            ],
            1,
            &[0],
        );
        publish_cli.0.push(took);
        publish_cli.1 = publish_cli.1.max(kib);
    }
    let publish_cli = (median(publish_cli.0), publish_cli.1);
    let filter = Filter {
        kubernetes: Some("1.30".into()),
        os: Some("ubuntu-2404".into()),
        ..Filter::default()
    };
    let mut latest = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        assert!(rt.block_on(catalog.latest(&filter)).unwrap().is_some());
        latest.push(t.elapsed());
    }
    let latest_cli = cli(
        &[
            "catalog",
            "latest",
            "--kubernetes",
            "1.30",
            "--os",
            "ubuntu-2404",
            "--catalog",
            location,
        ],
        5,
        &[0],
    );
    let list_cli = cli(
        &["catalog", "list", "-o", "json", "--catalog", location],
        1,
        &[0],
    );
    let (verify, rebuild) = if heavy {
        (
            Some(cli(&["catalog", "verify", "--catalog", location], 1, &[0])),
            Some(cli(
                &["catalog", "rebuild-index", "--catalog", location],
                1,
                &[0],
            )),
        )
    } else {
        (None, None)
    };
    Row {
        store,
        images: n,
        root_kb: root_bytes.len() as f64 / 1e3,
        section_kb,
        shard_kb,
        publish: median(publish),
        publish_cli,
        latest: median(latest),
        latest_cli,
        list_cli,
        verify,
        rebuild,
        generated,
    }
}

/// A store that waits before every request: the round trip of a real Azure account from a
/// CI runner (Azurite on loopback answers in about a millisecond).
struct Slow<S>(S, Duration);

/// Requests the publishers sent, by kind: the root's reads and writes, other reads and
/// writes, listings and deletes.
static REQUESTS: [std::sync::atomic::AtomicUsize; 6] =
    [const { std::sync::atomic::AtomicUsize::new(0) }; 6];

fn count(kind: usize, key: &str) {
    if std::env::var_os("SIGCAT_BENCH_TRACE").is_some() {
        eprintln!("request {kind} {key}");
    }
    REQUESTS[kind].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn take_counts() -> [usize; 6] {
    std::array::from_fn(|i| REQUESTS[i].swap(0, std::sync::atomic::Ordering::Relaxed))
}

impl<S: Store> Store for Slow<S> {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        count(if key == "index.json" { 0 } else { 2 }, key);
        tokio::time::sleep(self.1).await;
        self.0.get(key).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        count(if key == "index.json" { 1 } else { 3 }, key);
        tokio::time::sleep(self.1).await;
        self.0.put(key, bytes, mode).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page, StoreError> {
        count(4, prefix);
        tokio::time::sleep(self.1).await;
        self.0.list_page(prefix, after, max).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        count(5, key);
        tokio::time::sleep(self.1).await;
        self.0.delete(key).await
    }
    async fn exists(&self) -> Result<bool, StoreError> {
        self.0.exists().await
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

/// 16 publishers (each its own catalog client, as concurrent tasks), each on a shard of its
/// own (one Kubernetes minor and OS each), 10 publishes each one after another, into a catalog
/// of `images`; then one publisher doing one publisher's share alone, and all of it alone, to
/// compare. With and without group commit, on Azurite as it is and with `latency` added to
/// every request.
fn concurrency(
    rt: &tokio::runtime::Runtime,
    azurite: &util::Azurite,
    images: usize,
    base: &Record,
) {
    let location = azurite.url(&format!("concurrency-{images}"));
    generate(rt, &location, None, images, base);
    let latency = Duration::from_millis(
        std::env::var("SIGCAT_BENCH_LATENCY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20),
    );
    // Azurite's own pace, the floor under any protocol: 16 concurrent readers of the root.
    let (reads, took) = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = catalog::open_store(&location).unwrap();
                tokio::spawn(async move {
                    for _ in 0..200 {
                        store.get("index.json").await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        (16 * 200, start.elapsed())
    });
    println!(
        "\nAzurite served {:.0} reads of the root a second to 16 concurrent readers",
        reads as f64 / took.as_secs_f64()
    );
    let each = 10;
    println!(
        "\n| catalog | added latency per request | group commit | publishers x publishes | gave up | lost | p50 | p99 | max | wall time | one publisher's 10 alone | all 160, one after another |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    // SIGCAT_BENCH_MODES picks some of them: `0:off,20:on` (added latency in ms : group commit).
    let modes: Vec<(Duration, bool)> = match std::env::var("SIGCAT_BENCH_MODES") {
        Ok(list) => list
            .split(',')
            .filter_map(|m| {
                let (ms, group) = m.trim().split_once(':')?;
                Some((Duration::from_millis(ms.parse().ok()?), group == "on"))
            })
            .collect(),
        Err(_) => vec![
            (Duration::ZERO, true),
            (Duration::ZERO, false),
            (latency, true),
            (latency, false),
        ],
    };
    for (mode, (delay, group)) in modes.into_iter().enumerate() {
        let mode = mode + 1;
        {
            let run = |publishers: usize, tag: usize, each: usize| -> (Vec<Duration>, Duration) {
                rt.block_on(async {
                    let start = Instant::now();
                    let mut tasks = Vec::new();
                    for p in 0..publishers {
                        let location = location.clone();
                        let base = base.clone();
                        tasks.push(tokio::spawn(async move {
                            let store = Slow(catalog::open_store(&location).unwrap(), delay);
                            let c = Catalog::new(store).with_group_commit(group);
                            let os = OS[p % 8];
                            let minor = 25 + p / 8;
                            let mut latencies = Vec::new();
                            for k in 0..each {
                                let e = image(
                                    &base,
                                    os,
                                    &format!("1.{minor}.19"),
                                    &format!("0.8.{tag}{p:03}{k:03}"),
                                );
                                let t = Instant::now();
                                match c.publish(&[e]).await {
                                    Ok(_) => latencies.push(t.elapsed()),
                                    Err(err) => eprintln!("publisher {p}, publish {k}: {err}"),
                                }
                            }
                            latencies
                        }));
                    }
                    let mut all = Vec::new();
                    for t in tasks {
                        all.extend(t.await.unwrap());
                    }
                    (all, start.elapsed())
                })
            };
            let tag = mode * 10;
            take_counts();
            let (mut concurrent, wall) = run(16, tag + 1, each);
            let requests = take_counts();
            let (_, one) = run(1, tag + 2, each);
            let alone = take_counts();
            // The floor for one root: the same 160 publishes, one after another.
            let (_, serial) = run(1, tag + 3, 16 * each);
            // Every one of the 16 x 10 is in the catalog.
            let catalog = Catalog::new(catalog::open_store(&location).unwrap());
            let listed = rt
                .block_on(catalog.list(&Filter {
                    kubernetes: None,
                    ..Filter::default()
                }))
                .unwrap();
            let lost = (0..16)
                .flat_map(|p| (0..each).map(move |k| format!("0.8.{}{p:03}{k:03}", tag + 1)))
                .filter(|v| {
                    !listed
                        .iter()
                        .any(|e| e.gallery_image_version.as_deref() == Some(v.as_str()))
                })
                .count();
            let gave_up = 16 * each - concurrent.len();
            concurrent.sort();
            let pct = |p: f64| concurrent[((concurrent.len() as f64 - 1.0) * p) as usize];
            println!(
                "| {images} on Azurite | {} | {} | 16 x {each} | {gave_up} | {lost} | {} | {} | {} | {} | {} | {} |",
                ms(delay),
                if group { "on" } else { "off" },
                ms(pct(0.5)),
                ms(pct(0.99)),
                ms(*concurrent.last().unwrap()),
                ms(wall),
                ms(one),
                ms(serial)
            );
            for (who, counts, n) in [
                ("16 publishers", requests, 16 * each),
                ("one alone", alone, each),
            ] {
                let per = |i: usize| counts[i] as f64 / n as f64;
                eprintln!(
                    "requests per publish, {who}: root get {:.1}, root put {:.1}, other get {:.1}, other put {:.1}, list {:.1}, delete {:.1}",
                    per(0),
                    per(1),
                    per(2),
                    per(3),
                    per(4),
                    per(5)
                );
            }
        }
    }
}

/// Azurite's listing on its own, as the container grows: the whole listing of `images/`, a
/// page (5000 keys, Azure's maximum) at a time, as `verify` and `rebuild-index` read it.
fn listing(rt: &tokio::runtime::Runtime, azurite: &util::Azurite, sizes: &[usize], base: &Record) {
    println!("\n| images | keys under images/ | pages | whole listing | slowest page |");
    println!("|---|---|---|---|---|");
    for &n in sizes {
        let location = azurite.url(&format!("listing-{n}"));
        generate(rt, &location, None, n, base);
        let store = catalog::open_store(&location).unwrap();
        let (keys, pages, slowest, took) = rt.block_on(async {
            let start = Instant::now();
            let (mut keys, mut pages, mut slowest) = (0, 0, Duration::ZERO);
            let mut after: Option<String> = None;
            loop {
                let t = Instant::now();
                let page = store
                    .list_page("images/", after.as_deref(), 5000)
                    .await
                    .unwrap();
                slowest = slowest.max(t.elapsed());
                keys += page.keys.len();
                pages += 1;
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            (keys, pages, slowest, start.elapsed())
        });
        println!(
            "| {n} | {keys} | {pages} | {} | {} |",
            ms(took),
            ms(slowest)
        );
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SIGCAT_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10_000, 100_000]);
    let verify_max: usize = std::env::var("SIGCAT_BENCH_VERIFY_MAX_AZURITE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let parts = std::env::var("SIGCAT_BENCH_PARTS").unwrap_or_else(|_| "scale,concurrency".into());
    let stores = std::env::var("SIGCAT_BENCH_STORES").unwrap_or_else(|_| "local,azurite".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = base();
    let azurite = util::Azurite::start("bench-scale");
    if parts.contains("scale") {
        let mut rows = Vec::new();
        for &n in &sizes {
            let work = util::scratch(&format!("bench-scale-{n}"));
            let local = work.join("catalog");
            rows.push(measure(
                &rt,
                Place {
                    store: "local",
                    location: local.to_str().unwrap(),
                    local: Some(&local),
                    heavy: true,
                    work: &work,
                },
                n,
                &base,
            ));
            if !stores.contains("azurite") {
                eprintln!("measured {n}");
                continue;
            }
            let url = azurite.url(&format!("scale-{n}"));
            rows.push(measure(
                &rt,
                Place {
                    store: "azurite",
                    location: &url,
                    local: None,
                    heavy: n <= verify_max,
                    work: &work,
                },
                n,
                &base,
            ));
            eprintln!("measured {n}");
        }
        println!(
            "\n| store | images | root | largest section | largest shard | publish one more (in process, p50) | `sigcat publish` (p50) | its peak memory | `catalog latest` (in process, p50) | `sigcat catalog latest` (p50) | its peak memory |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for r in &rows {
            println!(
                "| {} | {} | {:.1} kB | {:.1} kB | {:.0} kB | {} | {} | {} | {} | {} | {} |",
                r.store,
                r.images,
                r.root_kb,
                r.section_kb,
                r.shard_kb,
                ms(r.publish),
                ms(r.publish_cli.0),
                mib(r.publish_cli.1),
                ms(r.latest),
                ms(r.latest_cli.0),
                mib(r.latest_cli.1)
            );
        }
        println!(
            "\n| store | images | `catalog list -o json` (all) | its peak memory | `catalog verify` | its peak memory | `catalog rebuild-index` | its peak memory | generating took |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for r in &rows {
            let opt = |v: Option<(Duration, i64)>| match v {
                Some((d, k)) => (ms(d), mib(k)),
                None => ("-".into(), "-".into()),
            };
            let (v, vm) = opt(r.verify);
            let (b, bm) = opt(r.rebuild);
            println!(
                "| {} | {} | {} | {} | {v} | {vm} | {b} | {bm} | {:.0} s |",
                r.store,
                r.images,
                ms(r.list_cli.0),
                mib(r.list_cli.1),
                r.generated.as_secs_f64()
            );
        }
    }
    if parts.contains("listing") {
        listing(&rt, &azurite, &sizes, &base);
    }
    if parts.contains("concurrency") {
        let images = std::env::var("SIGCAT_BENCH_CONCURRENCY_IMAGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        concurrency(&rt, &azurite, images, &base);
    }
}
