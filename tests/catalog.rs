//! One conformance suite for the storage trait and the catalog, run against every backend:
//! the local directory and Azure Blob Storage (a real Azurite started by the test).

use crate::util::{Azurite, scratch};
use sigcat::catalog::index::Filter;
use sigcat::catalog::store::{PutMode, RetryPolicy, Store, StoreError, Versioned};
use sigcat::catalog::{self, AnyStore, Catalog, CatalogError, Outcome};
use sigcat::record::Record;
use sigcat::render::TemplateOptions;
use std::time::Duration;

fn options() -> TemplateOptions {
    TemplateOptions {
        vm_size: Some("Standard_D2s_v3".into()),
        ..TemplateOptions::default()
    }
}

/// The fixture's image, with its gallery version (and Kubernetes version) changed.
fn record(gallery_version: &str, kubernetes: Option<&str>) -> Record {
    let bytes =
        std::fs::read(crate::util::repo().join("fixtures/console/sig-ubuntu-2404.log")).unwrap();
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

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

async fn store_conformance<S: Store>(store: &S) {
    assert_eq!(store.get("objects/missing.json").await.unwrap(), None);
    let etag = store
        .put("objects/a.json", b"first".to_vec(), PutMode::Create)
        .await
        .unwrap();
    assert_eq!(
        store.get("objects/a.json").await.unwrap(),
        Some(Versioned {
            bytes: b"first".to_vec(),
            etag: etag.clone()
        })
    );
    assert!(
        matches!(
            store
                .put("objects/a.json", b"other".to_vec(), PutMode::Create)
                .await,
            Err(StoreError::Conflict(_))
        ),
        "create-only twice"
    );
    let second = store
        .put(
            "objects/a.json",
            b"second".to_vec(),
            PutMode::IfMatch(etag.clone()),
        )
        .await
        .unwrap();
    assert_ne!(second, etag);
    assert!(
        matches!(
            store
                .put("objects/a.json", b"stale".to_vec(), PutMode::IfMatch(etag))
                .await,
            Err(StoreError::Conflict(_))
        ),
        "stale ETag"
    );
    assert!(
        matches!(
            store
                .put(
                    "objects/none.json",
                    b"x".to_vec(),
                    PutMode::IfMatch("\"nope\"".into())
                )
                .await,
            Err(StoreError::Conflict(_))
        ),
        "If-Match on nothing"
    );
    assert_eq!(
        store.get("objects/a.json").await.unwrap().unwrap().bytes,
        b"second"
    );
    store
        .put("objects/sub/b.json", b"b".to_vec(), PutMode::Create)
        .await
        .unwrap();
    store
        .put("other/c.json", b"c".to_vec(), PutMode::Create)
        .await
        .unwrap();
    let mut keys = store.list("objects/").await.unwrap();
    keys.sort();
    assert_eq!(keys, ["objects/a.json", "objects/sub/b.json"]);
}

async fn catalog_conformance(open: impl Fn() -> AnyStore) {
    let catalog = Catalog::new(open(), options());
    // Publish, then again: nothing changes and it succeeds.
    let r = record("0.3.1721037000", Some("1.30.3"));
    let first = catalog.publish(std::slice::from_ref(&r)).await.unwrap();
    assert!(
        matches!(first.as_slice(), [Outcome::Published(_)]),
        "{first:?}"
    );
    let index_before = catalog.index().await.unwrap();
    let mut from_elsewhere = r.clone();
    from_elsewhere.provenance.source = "another-copy-of-the-log.out".into();
    let again = catalog.publish(&[from_elsewhere]).await.unwrap();
    assert!(
        matches!(again.as_slice(), [Outcome::Unchanged(_)]),
        "{again:?}"
    );
    assert_eq!(
        catalog.index().await.unwrap(),
        index_before,
        "republishing changes nothing"
    );
    // Same gallery version, different content: refused.
    let mut changed = r.clone();
    changed.kubernetes_version = Some("1.30.4".into());
    assert!(matches!(
        catalog.publish(&[changed]).await,
        Err(CatalogError::Conflict { .. })
    ));
    // The stored objects come back and match their hashes.
    let entry = catalog.latest(&Filter::default()).await.unwrap().unwrap();
    let stored: Record =
        serde_json::from_slice(&catalog.object(&entry, "record").await.unwrap()).unwrap();
    assert_eq!(stored, r);
    let template = String::from_utf8(catalog.object(&entry, "template").await.unwrap()).unwrap();
    assert!(
        template.contains("version: \"0.3.1721037000\""),
        "{template}"
    );

    // 16 publishers at once, each with its own client: no index entry is lost.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = open();
        tasks.push(tokio::spawn(async move {
            let c = Catalog::new(store, options());
            c.publish(&[record(&format!("0.3.{}", 100 + i), Some("1.31.1"))])
                .await
        }));
    }
    for t in tasks {
        let outcome = t.await.unwrap().unwrap();
        assert!(
            matches!(outcome.as_slice(), [Outcome::Published(_)]),
            "{outcome:?}"
        );
    }
    let index = catalog.index().await.unwrap();
    assert_eq!(
        index.images.len(),
        17,
        "one first image and sixteen concurrent ones"
    );
    for i in 0..16 {
        let v = format!("0.3.{}", 100 + i);
        assert!(
            index
                .images
                .iter()
                .any(|e| e.gallery_image_version.as_deref() == Some(v.as_str())),
            "{v} lost"
        );
    }
    for e in &index.images {
        for o in e.objects.values() {
            assert!(
                catalog
                    .object(
                        e,
                        if o.key.ends_with(".json") {
                            "record"
                        } else {
                            "template"
                        }
                    )
                    .await
                    .is_ok(),
                "index names {} but it is not all there",
                o.key
            );
        }
    }
    // "latest": Kubernetes version first, then the gallery version as numbers.
    let latest = catalog
        .latest(&Filter {
            kubernetes: Some("1.31".into()),
            ..Filter::default()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.gallery_image_version.as_deref(), Some("0.3.115"));
    let latest_130 = catalog
        .latest(&Filter {
            kubernetes: Some("1.30".into()),
            os: Some("ubuntu-2404".into()),
            ..Filter::default()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        latest_130.gallery_image_version.as_deref(),
        Some("0.3.1721037000")
    );
    assert!(
        catalog
            .latest(&Filter {
                kubernetes: Some("1.29".into()),
                ..Filter::default()
            })
            .await
            .unwrap()
            .is_none()
    );
}

/// A real store whose index writes fail: shows that a failed publish leaves no index entry
/// naming it, and that publishing again later completes it.
struct IndexOutage<S>(S);

impl<S: Store> Store for IndexOutage<S> {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.0.get(key).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        if key == catalog::INDEX_KEY {
            return Err(StoreError::Transient("simulated outage".into()));
        }
        self.0.put(key, bytes, mode).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.0.list(prefix).await
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

async fn nothing_half_published(open: impl Fn() -> AnyStore) {
    let quick = RetryPolicy {
        attempts: 3,
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
    };
    let failing = Catalog::new(IndexOutage(open()), options()).with_retry(quick);
    let r = record("0.4.1", Some("1.32.0"));
    let err = failing.publish(std::slice::from_ref(&r)).await.unwrap_err();
    assert!(
        err.to_string().contains("gave up after 3 attempts"),
        "{err}"
    );
    let catalog = Catalog::new(open(), options());
    assert!(
        catalog
            .index()
            .await
            .unwrap()
            .images
            .iter()
            .all(|e| e.gallery_image_version.as_deref() != Some("0.4.1"))
    );
    let done = catalog.publish(&[r]).await.unwrap();
    assert!(
        matches!(done.as_slice(), [Outcome::Published(_)]),
        "{done:?}"
    );
}

#[test]
fn local_store_conformance() {
    let dir = scratch("conformance-local");
    rt().block_on(async {
        store_conformance(&sigcat::catalog::local::LocalStore::new(dir.join("raw"))).await;
        let cat = dir.join("catalog");
        catalog_conformance(|| catalog::open_store(cat.to_str().unwrap()).unwrap()).await;
        nothing_half_published(|| catalog::open_store(cat.to_str().unwrap()).unwrap()).await;
    });
}

#[test]
fn azure_store_conformance_against_azurite() {
    let azurite = Azurite::start("conformance");
    rt().block_on(async {
        let raw = catalog::open_store(&azurite.url("raw")).unwrap();
        store_conformance(&raw).await;
        let url = azurite.url("catalog/team-a");
        catalog_conformance(|| catalog::open_store(&url).unwrap()).await;
        nothing_half_published(|| catalog::open_store(&url).unwrap()).await;
    });
}

#[test]
fn an_unreachable_store_is_a_clear_error_after_bounded_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/devstoreaccount1/catalog");
    let quick = RetryPolicy {
        attempts: 3,
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
    };
    let catalog = Catalog::new(catalog::open_store(&url).unwrap(), options()).with_retry(quick);
    let err = rt()
        .block_on(catalog.publish(&[record("0.5.0", None)]))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CatalogError::Store { .. }), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("gave up after 3 attempts"),
        "{text}"
    );
}
