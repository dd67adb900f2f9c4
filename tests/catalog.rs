//! The conformance suite of the storage trait and the catalog (`sigcat::catalog::conformance`)
//! against the real backends: the local directory and Azure Blob Storage (a real Azurite
//! started by the test); the in-memory store runs it in the unit tests. Then what only a
//! network endpoint can do: refuse connections, or accept them and never answer.

use crate::util::{Azurite, scratch};
use sigcat::catalog::entry::{self, Entry};
use sigcat::catalog::{self, Catalog, CatalogError, conformance};
use sigcat::record::Record;
use sigcat::render::TemplateOptions;
use sigcat::retry::RetryConfig;
use std::time::Duration;

fn options() -> TemplateOptions {
    TemplateOptions {
        vm_size: Some("Standard_D2s_v3".into()),
        ..TemplateOptions::default()
    }
}

/// The fixture's image, with its gallery version (and Kubernetes version) changed.
fn record(gallery_version: &str, kubernetes: Option<&str>) -> Record {
    let bytes = crate::util::fixture("console/sig-ubuntu-2404.log");
    let mut r = sigcat::parse::parse_bytes(&bytes, "sig-ubuntu-2404.log", None)
        .unwrap()
        .records
        .remove(0);
    let g = r.gallery_image.as_mut().unwrap();
    g.id = g.id.replace(
        "/versions/0.3.1721037000",
        &format!("/versions/{gallery_version}"),
    );
    g.version = gallery_version.to_string();
    r.kubernetes_version = kubernetes.map(str::to_string);
    r
}

fn entry_for(gallery_version: &str, kubernetes: Option<&str>) -> Entry {
    entry::prepare(&record(gallery_version, kubernetes), &options()).unwrap()
}

fn quick() -> RetryConfig {
    RetryConfig::with_timeout(Duration::from_secs(2))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn local_store_conformance() {
    let dir = scratch("conformance-local");
    rt().block_on(async {
        conformance::store_conformance(&sigcat::catalog::local::LocalStore::new(dir.join("raw")))
            .await;
        let cat = dir.join("catalog");
        conformance::catalog_conformance(|| catalog::open_store(cat.to_str().unwrap()).unwrap())
            .await;
    });
}

#[test]
fn azure_store_conformance_against_azurite() {
    let azurite = Azurite::start("conformance");
    rt().block_on(async {
        let raw = catalog::open_store(&azurite.url("raw")).unwrap();
        conformance::store_conformance(&raw).await;
        let url = azurite.url("catalog/team-a");
        conformance::catalog_conformance(|| catalog::open_store(&url).unwrap()).await;
    });
}

#[test]
fn an_unreachable_store_is_a_storage_error_within_its_deadline() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/devstoreaccount1/catalog");
    let catalog = Catalog::new(catalog::open_store(&url).unwrap()).with_retry(quick());
    let start = std::time::Instant::now();
    let err = rt()
        .block_on(catalog.publish(&[entry_for("0.5.0", None)]))
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    let text = sigcat::error::chain(&err);
    assert!(
        matches!(&err, CatalogError::Storage { source, .. } if source.is_unavailable()),
        "{text}"
    );
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("gave up after"),
        "{text}"
    );
}

#[test]
fn a_black_holed_endpoint_costs_the_storage_timeout_not_more() {
    // Accepts connections and never answers: the worst case for a client.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let url = format!("http://127.0.0.1:{port}/devstoreaccount1/catalog");
    let catalog = Catalog::new(catalog::open_store(&url).unwrap()).with_retry(quick());
    let start = std::time::Instant::now();
    let err = rt()
        .block_on(catalog.publish(&[entry_for("0.5.1", None)]))
        .unwrap_err();
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} against a 2 s storage timeout"
    );
    assert!(
        sigcat::error::chain(&err).contains("no answer within"),
        "{err}"
    );
}
