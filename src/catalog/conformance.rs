//! One conformance suite for the storage trait and the catalog on it, as named properties
//! that every backend runs (as every `object_store` backend runs its integration suite): the
//! in-memory store and the local directory in the unit tests, Azure Blob Storage against a
//! real Azurite in the integration tests. A backend of your own can run it too.

use super::entry::{self, Entry};
use super::index::Filter;
use super::store::{Op, PutMode, Store, StoreError, Versioned};
use super::{Catalog, INDEX_KEY, Outcome};
use crate::record::Record;
use crate::render::TemplateOptions;
use crate::retry::RetryConfig;
use std::time::Duration;

/// A build's console output, trimmed to what a record needs: the sample image of the suite.
const SAMPLE_LOG: &str = "\
==> azure-arm.sig-ubuntu-2404: Running builder ...
Build 'azure-arm.sig-ubuntu-2404' finished after 27 minutes 12 seconds.

==> Builds finished. The artifacts of successful builds are:
--> azure-arm.sig-ubuntu-2404: Azure.ResourceManagement.VMImage:

OSType: Linux
ManagedImageResourceGroupName: cluster-api-gallery
ManagedImageName: capi-ubuntu-2404-1721037000
ManagedImageId: /subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/images/capi-ubuntu-2404-1721037000
ManagedImageLocation: northcentralus
ManagedImageSharedImageGalleryId: /subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/galleries/ClusterAPI1721036000abcd/images/capi-ubuntu-2404/versions/0.3.1721037000
SharedImageGalleryResourceGroup: cluster-api-gallery
SharedImageGalleryName: ClusterAPI1721036000abcd
SharedImageGalleryImageName: capi-ubuntu-2404
SharedImageGalleryImageVersion: 0.3.1721037000
SharedImageGalleryReplicatedRegions: northcentralus, eastus2
";

fn options() -> TemplateOptions {
    TemplateOptions {
        vm_size: Some("Standard_D2s_v3".into()),
        ..TemplateOptions::default()
    }
}

/// The sample image, with its gallery version (and Kubernetes version) changed.
fn record(gallery_version: &str, kubernetes: Option<&str>) -> Record {
    let mut r = crate::parse::parse_bytes(SAMPLE_LOG.as_bytes(), "sig-ubuntu-2404.log", None)
        .expect("the sample log parses")
        .records
        .remove(0);
    if let Some(g) = r.gallery_image.as_mut() {
        g.id = g.id.replace(
            "/versions/0.3.1721037000",
            &format!("/versions/{gallery_version}"),
        );
        g.version = gallery_version.to_string();
    }
    r.kubernetes_version = kubernetes.map(str::to_string);
    r
}

fn entry_for(gallery_version: &str, kubernetes: Option<&str>) -> Entry {
    entry::prepare(&record(gallery_version, kubernetes), &options()).expect("the sample prepares")
}

fn quick() -> RetryConfig {
    RetryConfig::with_timeout(Duration::from_secs(2))
}

// ---- Properties of every store ------------------------------------------------------------

async fn a_missing_key_reads_as_none<S: Store>(store: &S) {
    assert_eq!(store.get("objects/missing.json").await.unwrap(), None);
}

async fn create_only_writes_once<S: Store>(store: &S) {
    let etag = store
        .put("objects/a.json", b"first".to_vec(), PutMode::Create)
        .await
        .unwrap();
    assert_eq!(
        store.get("objects/a.json").await.unwrap(),
        Some(Versioned {
            bytes: b"first".to_vec(),
            etag
        })
    );
    assert!(matches!(
        store
            .put("objects/a.json", b"other".to_vec(), PutMode::Create)
            .await,
        Err(StoreError::Precondition { .. })
    ));
}

async fn if_match_needs_the_current_etag<S: Store>(store: &S) {
    let etag = store
        .put("objects/b.json", b"first".to_vec(), PutMode::Create)
        .await
        .unwrap();
    let second = store
        .put(
            "objects/b.json",
            b"second".to_vec(),
            PutMode::IfMatch(etag.clone()),
        )
        .await
        .unwrap();
    assert_ne!(second, etag);
    assert!(matches!(
        store
            .put("objects/b.json", b"stale".to_vec(), PutMode::IfMatch(etag))
            .await,
        Err(StoreError::Precondition { .. })
    ));
    assert!(matches!(
        store
            .put(
                "objects/none.json",
                b"x".to_vec(),
                PutMode::IfMatch("\"nope\"".into())
            )
            .await,
        Err(StoreError::Precondition { .. })
    ));
    assert_eq!(
        store.get("objects/b.json").await.unwrap().unwrap().bytes,
        b"second"
    );
}

async fn list_returns_the_keys_under_a_prefix<S: Store>(store: &S) {
    for key in ["listed/x/1.json", "listed/2.json", "unlisted/3.json"] {
        store
            .put(key, b"c".to_vec(), PutMode::Create)
            .await
            .unwrap();
    }
    let mut keys = store.list("listed/").await.unwrap();
    keys.sort();
    assert_eq!(keys, ["listed/2.json", "listed/x/1.json"]);
}

/// Every property of a store, on an empty one.
pub async fn store_conformance<S: Store>(store: &S) {
    a_missing_key_reads_as_none(store).await;
    create_only_writes_once(store).await;
    if_match_needs_the_current_etag(store).await;
    list_returns_the_keys_under_a_prefix(store).await;
}

// ---- Properties of the catalog on every store ------------------------------------------------

async fn publishing_again_changes_nothing<S: Store + 'static>(open: &impl Fn() -> S) {
    let catalog = Catalog::new(open());
    let e = entry_for("0.3.1721037000", Some("1.30.3"));
    let first = catalog.publish(std::slice::from_ref(&e)).await.unwrap();
    assert!(
        matches!(first.as_slice(), [Outcome::Published { .. }]),
        "{first:?}"
    );
    let before = catalog.index().await.unwrap();
    let mut elsewhere = record("0.3.1721037000", Some("1.30.3"));
    elsewhere.provenance.source = "another-copy-of-the-log.out".into();
    let again = catalog
        .publish(&[entry::prepare(&elsewhere, &options()).unwrap()])
        .await
        .unwrap();
    assert!(
        matches!(again.as_slice(), [Outcome::Unchanged { .. }]),
        "{again:?}"
    );
    assert_eq!(catalog.index().await.unwrap(), before);
    // The stored objects come back and match their hashes.
    let entry = catalog.latest(&Filter::default()).await.unwrap().unwrap();
    let stored: Record =
        serde_json::from_slice(&catalog.object(&entry, "record").await.unwrap()).unwrap();
    assert_eq!(stored, record("0.3.1721037000", Some("1.30.3")));
    let template = String::from_utf8(catalog.object(&entry, "template").await.unwrap()).unwrap();
    assert!(
        template.contains("version: \"0.3.1721037000\""),
        "{template}"
    );
}

async fn a_known_field_never_changes_but_unknown_ones_fill_in<S: Store + 'static>(
    open: &impl Fn() -> S,
) {
    let catalog = Catalog::new(open());
    catalog
        .publish(&[entry_for("0.9.2000", None)])
        .await
        .unwrap();
    let out = catalog
        .publish(&[
            entry_for("0.9.2000", Some("1.30.3")),
            entry_for("0.9.2001", None),
        ])
        .await
        .unwrap();
    assert!(
        matches!(out.as_slice(), [Outcome::Updated { added, .. }, Outcome::Published { .. }] if added == &["kubernetes_version"]),
        "{out:?}"
    );
    let out = catalog
        .publish(&[entry_for("0.9.2000", Some("1.30.4"))])
        .await
        .unwrap();
    assert!(matches!(out.as_slice(), [Outcome::Conflict(c)] if c.field == "kubernetes_version"));
    let latest = catalog
        .latest(&Filter {
            kubernetes: Some("1.30".into()),
            ..Filter::default()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.gallery_image_version.as_deref(), Some("0.9.2000"));
}

async fn concurrent_publishers_lose_no_entry<S: Store + 'static>(open: &impl Fn() -> S) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = open();
        tasks.push(tokio::spawn(async move {
            Catalog::new(store)
                .publish(&[entry_for(&format!("0.3.{}", 100 + i), Some("1.31.1"))])
                .await
        }));
    }
    for t in tasks {
        let outcome = t.await.unwrap().unwrap();
        assert!(
            matches!(outcome.as_slice(), [Outcome::Published { .. }]),
            "{outcome:?}"
        );
    }
    let catalog = Catalog::new(open());
    let index = catalog.index().await.unwrap();
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
        for which in e.objects.keys() {
            assert!(
                catalog.object(e, which).await.is_ok(),
                "{} {which} is not all there",
                e.id
            );
        }
    }
    // "latest": the Kubernetes version first, then the gallery version as numbers.
    let latest = catalog
        .latest(&Filter {
            kubernetes: Some("1.31".into()),
            ..Filter::default()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.gallery_image_version.as_deref(), Some("0.3.115"));
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

/// A store whose index writes fail: a failed publish leaves no index entry naming it,
/// and publishing again later completes it.
struct IndexOutage<S>(S);

impl<S: Store> Store for IndexOutage<S> {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.0.get(key).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        if key == INDEX_KEY {
            return Err(StoreError::Unavailable {
                op: Op::Write,
                key: key.into(),
                source: "simulated outage".into(),
            });
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

async fn nothing_is_half_published<S: Store + 'static>(open: &impl Fn() -> S) {
    let failing = Catalog::new(IndexOutage(open())).with_retry(quick());
    let e = entry_for("0.4.1", Some("1.32.0"));
    let err = failing.publish(std::slice::from_ref(&e)).await.unwrap_err();
    let text = crate::error::chain(&err);
    assert!(
        text.contains("gave up after") && text.contains("index.json"),
        "{text}"
    );
    let catalog = Catalog::new(open());
    assert!(
        catalog
            .index()
            .await
            .unwrap()
            .images
            .iter()
            .all(|x| x.gallery_image_version.as_deref() != Some("0.4.1"))
    );
    let done = catalog.publish(&[e]).await.unwrap();
    assert!(
        matches!(done.as_slice(), [Outcome::Published { .. }]),
        "{done:?}"
    );
}

/// Every property of the catalog, each on a fresh catalog from `open` (clients of one
/// container: each call returns a new client of the same place).
pub async fn catalog_conformance<S: Store + 'static>(open: impl Fn() -> S) {
    publishing_again_changes_nothing(&open).await;
    a_known_field_never_changes_but_unknown_ones_fill_in(&open).await;
    concurrent_publishers_lose_no_entry(&open).await;
    nothing_is_half_published(&open).await;
}
