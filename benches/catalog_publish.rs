//! `cargo bench --bench catalog_publish`: publish latency and throughput, one publisher and 16
//! concurrent, for the local store and for Azure Blob Storage (a real Azurite on loopback).
//! Measured, not asserted: prints a Markdown table for the README. SIGCAT_BENCH_RECORDS sets N.

#[path = "../tests/util.rs"]
mod util;

use sigcat::catalog::{self, Catalog};
use sigcat::record::Record;
use sigcat::render::TemplateOptions;
use std::time::{Duration, Instant};

fn records(n: usize, tag: &str) -> Vec<Record> {
    let bytes = std::fs::read(util::repo().join("fixtures/console/sig-ubuntu-2404.log")).unwrap();
    let base = sigcat::parse::parse_bytes(&bytes, "bench", None)
        .unwrap()
        .records
        .remove(0);
    (0..n)
        .map(|i| {
            let mut r = base.clone();
            let g = r.gallery_image.as_mut().unwrap();
            let v = format!("{tag}.{i}");
            g.id =
                g.id.replace("/versions/0.3.1721037000", &format!("/versions/{v}"));
            g.version = v;
            r
        })
        .collect()
}

fn options() -> TemplateOptions {
    TemplateOptions {
        vm_size: Some("Standard_D2s_v3".into()),
        ..TemplateOptions::default()
    }
}

/// Publishes `records` with `publishers` concurrent publishers (each its own client, one
/// record per publish call). Returns every call's latency and the wall time.
async fn run(location: &str, records: Vec<Record>, publishers: usize) -> (Vec<Duration>, Duration) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    let chunk = records.len().div_ceil(publishers);
    for part in records.chunks(chunk).map(<[Record]>::to_vec) {
        let store = catalog::open_store(location).unwrap();
        tasks.push(tokio::spawn(async move {
            let c = Catalog::new(store);
            let mut latencies = Vec::new();
            for r in part {
                let t = Instant::now();
                let e = sigcat::catalog::entry::prepare(&r, &options()).unwrap();
                c.publish(&[e]).await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, start.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n: usize = std::env::var("SIGCAT_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(160);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let azurite = util::Azurite::start("bench-publish");
    let local_dir = util::scratch("bench-publish-local");
    let mut rows = Vec::new();
    for (store, publishers) in [("local", 1), ("local", 16), ("azurite", 1), ("azurite", 16)] {
        let location = match store {
            "local" => local_dir
                .join(format!("p{publishers}"))
                .display()
                .to_string(),
            _ => azurite.url(&format!("bench-p{publishers}")),
        };
        let (mut lat, wall) = rt.block_on(run(
            &location,
            records(n, &format!("9.{publishers}")),
            publishers,
        ));
        lat.sort();
        eprintln!("{store} x{publishers}: {:.2?}", wall);
        rows.push(format!(
            "| {store} | {publishers} | {n} | {:.1} ms | {:.1} ms | {:.0} records/s |",
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            n as f64 / wall.as_secs_f64()
        ));
    }
    println!("\n| store | publishers | records | publish p50 | publish p99 | throughput |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
