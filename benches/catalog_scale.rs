//! `cargo bench --bench catalog_scale`: how publishing one image and `catalog latest` grow with
//! the catalog, at 0, 1,000 and 10,000 images, on the local store and Azurite (on loopback).
//! Catalogs are filled in batches of 500 (one index write each); then one more image is
//! published five times (the median is reported), and `sigcat catalog latest` is run five
//! times as a user would (median time, and its peak memory measured as tests/util.rs does).
//! Measured, not asserted: prints a Markdown table for the README. SIGCAT_BENCH_SIZES overrides
//! the sizes (comma-separated).

#[path = "../tests/util.rs"]
mod util;

use sigcat::catalog::entry::{self, Entry};
use sigcat::catalog::index::Filter;
use sigcat::catalog::{self, Catalog};
use sigcat::record::Record;
use sigcat::render::TemplateOptions;
use std::time::{Duration, Instant};

fn base() -> Record {
    let bytes = std::fs::read(util::repo().join("fixtures/console/sig-ubuntu-2404.log")).unwrap();
    sigcat::parse::parse_bytes(&bytes, "bench", None)
        .unwrap()
        .records
        .remove(0)
}

/// Image `n`: gallery version `0.3.<n>`, Kubernetes 1.<20 + n % 12>.<n % 30>.
fn entry_for(base: &Record, n: usize) -> Entry {
    let mut r = base.clone();
    let g = r.gallery_image.as_mut().unwrap();
    let v = format!("0.3.{n}");
    g.id =
        g.id.replace("/versions/0.3.1721037000", &format!("/versions/{v}"));
    g.version = v;
    r.kubernetes_version = Some(format!("1.{}.{}", 20 + n % 12, n % 30));
    let options = TemplateOptions {
        vm_size: Some("Standard_D2s_v3".into()),
        ..TemplateOptions::default()
    };
    entry::prepare(&r, &options).unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn measure(
    rt: &tokio::runtime::Runtime,
    name: &str,
    location: &str,
    images: usize,
    base: &Record,
) -> String {
    let catalog = Catalog::new(catalog::open_store(location).unwrap());
    let fill = Instant::now();
    for start in (0..images).step_by(500) {
        let batch: Vec<Entry> = (start..(start + 500).min(images))
            .map(|n| entry_for(base, n))
            .collect();
        rt.block_on(catalog.publish(&batch)).unwrap();
    }
    let filled = fill.elapsed();
    let mut publish = Vec::new();
    for k in 0..5 {
        let e = entry_for(base, 1_000_000 + k);
        let t = Instant::now();
        rt.block_on(catalog.publish(&[e])).unwrap();
        publish.push(t.elapsed());
    }
    let index_bytes = {
        let store = catalog::open_store(location).unwrap();
        rt.block_on(sigcat::catalog::store::Store::get(&store, "index.json"))
            .unwrap()
            .map_or(0, |v| v.bytes.len())
    };
    let filter = Filter {
        kubernetes: Some("1.30".into()),
        ..Filter::default()
    };
    let mut latest = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        rt.block_on(catalog.latest(&filter)).unwrap();
        latest.push(t.elapsed());
    }
    let mut cli = Vec::new();
    let mut peak = 0;
    let args = [
        "catalog",
        "latest",
        "--kubernetes",
        "1.30",
        "--catalog",
        location,
    ];
    for _ in 0..5 {
        let (code, kib, took) = util::measure(&args);
        assert!(matches!(code, Some(0 | 3)), "{code:?}"); // 3: no match (an empty catalog)
        cli.push(took);
        peak = peak.max(kib);
    }
    format!(
        "| {name} | {images} | {:.1} MB | {} | {} | {} | {:.1} MiB | {:.0} s |",
        index_bytes as f64 / 1e6,
        ms(median(publish)),
        ms(median(latest)),
        ms(median(cli)),
        peak as f64 / 1024.0,
        filled.as_secs_f64()
    )
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SIGCAT_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 1000, 10_000]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = base();
    let azurite = util::Azurite::start("bench-scale");
    let mut rows = Vec::new();
    for &n in &sizes {
        let local = util::scratch(&format!("bench-scale-local-{n}"));
        rows.push(measure(
            &rt,
            "local",
            local.join("catalog").to_str().unwrap(),
            n,
            &base,
        ));
        rows.push(measure(
            &rt,
            "azurite",
            &azurite.url(&format!("scale-{n}")),
            n,
            &base,
        ));
    }
    println!(
        "\n| store | images | index.json | publish one more (p50) | latest, in process (p50) | `sigcat catalog latest` (p50) | its peak memory | filling took |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
