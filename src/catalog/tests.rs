//! The publish protocol against the in-memory store and stores that misbehave on purpose.
//! (The same properties run against the local directory and Azurite in tests/catalog.rs.)

use super::entry::{self, Entry};
use super::memory::MemoryStore;
use super::store::{Op, PutMode, Store, StoreError, Versioned};
use super::*;
use super::{index, objects, rebuild, signing};
use crate::record::Record;
use crate::render::TemplateOptions;
use crate::retry::RetryConfig;
use index::Filter;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn record(version: &str, kubernetes: Option<&str>) -> Record {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/console/sig-ubuntu-2404.log"
    ))
    .unwrap();
    let mut r = crate::parse::parse_bytes(&bytes, "a.log", None)
        .unwrap()
        .records
        .remove(0);
    let g = r.gallery_image.as_mut().unwrap();
    g.id = g.id.replace("0.3.1721037000", version);
    g.version = version.into();
    r.kubernetes_version = kubernetes.map(str::to_string);
    r
}

fn entry(version: &str, kubernetes: Option<&str>) -> Entry {
    let options = TemplateOptions {
        vm_size: Some("Standard_D2s_v3".into()),
        ..TemplateOptions::default()
    };
    entry::prepare(&record(version, kubernetes), &options).unwrap()
}

fn quick() -> RetryConfig {
    RetryConfig {
        retry_timeout: Duration::from_secs(5),
        ..RetryConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn publish_is_idempotent_and_names_only_objects_that_are_there() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    let e = entry("0.3.1", Some("1.30.3"));
    let first = catalog.publish(std::slice::from_ref(&e)).await.unwrap();
    assert!(matches!(first.as_slice(), [Outcome::Published { .. }]));
    let keys = store.keys();
    let again = catalog.publish(&[e]).await.unwrap();
    assert!(matches!(again.as_slice(), [Outcome::Unchanged { .. }]));
    assert_eq!(store.keys(), keys, "nothing written the second time");
    let index = catalog.index().await.unwrap();
    for o in index.images[0].objects.values() {
        assert!(
            store.keys().contains(&o.key),
            "{} is named but absent",
            o.key
        );
    }
}

#[tokio::test(start_paused = true)]
async fn more_information_is_a_new_revision_and_old_objects_stay() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    let first = catalog.index().await.unwrap().images[0].clone();
    let out = catalog
        .publish(&[entry("0.3.1", Some("1.30.3"))])
        .await
        .unwrap();
    assert_eq!(
        out,
        [Outcome::Updated {
            id: first.id.clone(),
            added: vec!["kubernetes_version".into()]
        }]
    );
    let now = catalog.index().await.unwrap().images[0].clone();
    assert_eq!(now.kubernetes_version.as_deref(), Some("1.30.3"));
    assert_eq!(now.published_at, first.published_at);
    assert!(now.updated_at.is_some());
    assert_ne!(now.objects["record"], first.objects["record"]);
    assert_eq!(now.objects["template"], first.objects["template"]);
    assert!(
        store.keys().contains(&first.objects["record"].key),
        "revision 1 stays"
    );
    // Publishing the poorer record again loses nothing.
    let out = catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    assert!(matches!(out.as_slice(), [Outcome::Unchanged { .. }]));
    assert_eq!(catalog.index().await.unwrap().images[0], now);
}

#[tokio::test(start_paused = true)]
async fn a_conflict_is_one_items_outcome_and_the_others_publish() {
    let catalog = Catalog::new(MemoryStore::new());
    catalog
        .publish(&[entry("0.3.1", Some("1.30.3"))])
        .await
        .unwrap();
    let out = catalog
        .publish(&[
            entry("0.3.1", Some("1.30.4")),
            entry("0.3.2", Some("1.31.0")),
        ])
        .await
        .unwrap();
    match out.as_slice() {
        [Outcome::Conflict(c), Outcome::Published { .. }] => {
            assert_eq!(c.field, "kubernetes_version");
            assert_eq!(
                (c.stored.as_str(), c.offered.as_str()),
                ("1.30.3", "1.30.4")
            );
        }
        other => panic!("{other:?}"),
    }
    let index = catalog.index().await.unwrap();
    assert_eq!(index.images.len(), 2);
    assert_eq!(
        index.images[0].kubernetes_version.as_deref(),
        Some("1.30.3")
    );
}

#[tokio::test(start_paused = true)]
async fn the_same_image_twice_in_one_batch_is_one_entry() {
    let catalog = Catalog::new(MemoryStore::new());
    let out = catalog
        .publish(&[entry("0.3.1", None), entry("0.3.1", Some("1.30.3"))])
        .await
        .unwrap();
    assert!(
        matches!(
            out.as_slice(),
            [Outcome::Published { .. }, Outcome::Updated { .. }]
        ),
        "{out:?}"
    );
    let index = catalog.index().await.unwrap();
    assert_eq!(index.images.len(), 1);
    assert_eq!(
        index.images[0].kubernetes_version.as_deref(),
        Some("1.30.3")
    );
}

#[tokio::test(start_paused = true)]
async fn the_catalogs_own_bad_data_is_corrupt_not_storage() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    store.overwrite(INDEX_KEY, b"{ not json".to_vec());
    assert!(matches!(
        catalog.publish(&[entry("0.3.1", None)]).await,
        Err(CatalogError::Corrupt { ref key, .. }) if key == INDEX_KEY
    ));
    store.overwrite(INDEX_KEY, br#"{"layout": 99, "images": []}"#.to_vec());
    let err = catalog.index().await.unwrap_err().to_string();
    assert!(err.contains("newer sigcat"), "{err}");
    // An object that does not match its hash.
    store.remove(INDEX_KEY);
    catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    let e = catalog.latest(&Filter::default()).await.unwrap().unwrap();
    store.overwrite(&e.objects["template"].key, b"tampered".to_vec());
    assert!(matches!(
        catalog.object(&e, "template").await,
        Err(CatalogError::Corrupt { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn unknown_fields_and_layout_1_entries_survive() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    let mut index: serde_json::Value =
        serde_json::from_slice(&store.get(INDEX_KEY).await.unwrap().unwrap().bytes).unwrap();
    index["layout"] = 1.into();
    index["future"] = serde_json::json!({"x": 1});
    index["images"][0]["future_field"] = "kept".into();
    store.overwrite(INDEX_KEY, serde_json::to_vec(&index).unwrap());
    catalog.publish(&[entry("0.3.2", None)]).await.unwrap();
    let after: serde_json::Value =
        serde_json::from_slice(&store.get(INDEX_KEY).await.unwrap().unwrap().bytes).unwrap();
    assert_eq!(after["layout"], index::LAYOUT_VERSION);
    assert_eq!(after["future"]["x"], 1);
    assert_eq!(after["images"][0]["future_field"], "kept");
    assert_eq!(after["images"].as_array().unwrap().len(), 2);
}

/// A store where another publisher writes the index just before each of our first `n` index
/// writes: our conditional write loses, and the catalog must re-read and merge.
#[derive(Clone)]
struct Racing {
    inner: MemoryStore,
    races: Arc<AtomicU32>,
}

impl Store for Racing {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        if key == INDEX_KEY && self.races.load(Ordering::SeqCst) > 0 {
            self.races.fetch_sub(1, Ordering::SeqCst);
            let rival = Catalog::new(self.inner.clone());
            let n = self.races.load(Ordering::SeqCst);
            rival
                .publish(&[entry(&format!("9.9.{n}"), None)])
                .await
                .unwrap();
        }
        self.inner.put(key, bytes, mode).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }
    fn describe(&self) -> String {
        "racing".into()
    }
}

#[tokio::test(start_paused = true)]
async fn a_lost_race_is_retried_and_no_entry_is_lost() {
    let store = Racing {
        inner: MemoryStore::new(),
        races: Arc::new(AtomicU32::new(3)),
    };
    let catalog = Catalog::new(store.clone());
    let out = catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    assert!(matches!(out.as_slice(), [Outcome::Published { .. }]));
    let versions: Vec<String> = catalog
        .index()
        .await
        .unwrap()
        .images
        .iter()
        .filter_map(|e| e.gallery_image_version.clone())
        .collect();
    assert_eq!(versions.len(), 4, "{versions:?}");
    assert!(versions.contains(&"0.3.1".to_string()));
}

/// A store that fails the first `n` requests (then works), transiently or for good.
#[derive(Clone)]
struct Flaky {
    inner: MemoryStore,
    failures: Arc<AtomicU32>,
    transient: bool,
}

impl Flaky {
    fn fail(&self, key: &str) -> Result<(), StoreError> {
        if self.failures.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        self.failures.fetch_sub(1, Ordering::SeqCst);
        let source = "injected".into();
        let key = key.to_string();
        Err(if self.transient {
            StoreError::Unavailable {
                op: Op::Write,
                key,
                source,
            }
        } else {
            StoreError::Denied {
                op: Op::Write,
                key,
                source,
            }
        })
    }
}

impl Store for Flaky {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.fail(key)?;
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        self.fail(key)?;
        self.inner.put(key, bytes, mode).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_and_denials_are_not() {
    let flaky = Flaky {
        inner: MemoryStore::new(),
        failures: Arc::new(AtomicU32::new(4)),
        transient: true,
    };
    let catalog = Catalog::new(flaky.clone()).with_retry(quick());
    let out = catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    assert!(matches!(out.as_slice(), [Outcome::Published { .. }]));

    let denied = Flaky {
        inner: MemoryStore::new(),
        failures: Arc::new(AtomicU32::new(1)),
        transient: false,
    };
    let catalog = Catalog::new(denied.clone()).with_retry(quick());
    match catalog.publish(&[entry("0.3.1", None)]).await {
        Err(CatalogError::Storage { source, .. }) => assert!(source.is_denied()),
        other => panic!("{other:?}"),
    }
    assert_eq!(denied.failures.load(Ordering::SeqCst), 0, "tried once");
    assert!(denied.inner.keys().is_empty());
}

#[tokio::test(start_paused = true)]
async fn storage_that_stays_down_gives_up_within_the_deadline() {
    let down = Flaky {
        inner: MemoryStore::new(),
        failures: Arc::new(AtomicU32::new(u32::MAX)),
        transient: true,
    };
    let catalog = Catalog::new(down).with_retry(quick());
    let start = tokio::time::Instant::now();
    let err = catalog.publish(&[entry("0.3.1", None)]).await.unwrap_err();
    assert!(
        start.elapsed() <= quick().retry_timeout,
        "{:?}",
        start.elapsed()
    );
    let text = crate::error::chain(&err);
    assert!(
        text.contains("gave up after") && text.contains("images/"),
        "{text}"
    );
}

// ---- Yanks, regions, rebuild, verify, signatures ---------------------------------------------

fn filter_k8s(minor: &str) -> Filter {
    Filter {
        kubernetes: Some(minor.into()),
        ..Filter::default()
    }
}

/// The newest image for Kubernetes 1.30.
async fn latest_130(catalog: &Catalog<MemoryStore>) -> index::IndexEntry {
    catalog.latest(&filter_k8s("1.30")).await.unwrap().unwrap()
}

/// A catalog holding two images for Kubernetes 1.30 (1.30.1 and 1.30.2).
async fn two_images() -> (MemoryStore, Catalog<MemoryStore>) {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    catalog
        .publish(&[
            entry("0.3.1", Some("1.30.1")),
            entry("0.3.2", Some("1.30.2")),
        ])
        .await
        .unwrap();
    (store, catalog)
}

#[tokio::test(start_paused = true)]
async fn a_yanked_image_is_never_the_latest_and_stays_listed_and_stored() {
    let (store, catalog) = two_images().await;
    let newest = latest_130(&catalog).await;
    assert_eq!(newest.kubernetes_version.as_deref(), Some("1.30.2"));
    let keys_before = store.keys();
    let out = catalog
        .yank(&newest.id, true, Some("CVE-2026-0001"))
        .await
        .unwrap();
    assert!(
        matches!(out, YankOutcome::Done(ref s) if s.yanked && s.reason.as_deref() == Some("CVE-2026-0001"))
    );
    assert_eq!(
        latest_130(&catalog).await.kubernetes_version.as_deref(),
        Some("1.30.1")
    );
    let all = catalog
        .list(&Filter {
            include_yanked: true,
            ..Filter::default()
        })
        .await
        .unwrap();
    assert!(
        all.iter().any(|e| e.id == newest.id && e.is_yanked()),
        "still listed, marked"
    );
    assert!(
        keys_before.iter().all(|k| store.keys().contains(k)),
        "no object removed"
    );
    assert_eq!(
        catalog.yank(&newest.id, true, Some("again")).await.unwrap(),
        YankOutcome::AlreadySo
    );
    assert_eq!(
        catalog.yank("no-such-image", true, None).await.unwrap(),
        YankOutcome::NoSuchImage
    );
    assert_eq!(
        catalog.yank(&all[1].id, false, None).await.unwrap(),
        YankOutcome::AlreadySo,
        "never yanked"
    );
    // Back in service, with the chain of events kept.
    let out = catalog
        .yank(&newest.id, false, Some("fixed"))
        .await
        .unwrap();
    let YankOutcome::Done(state) = out else {
        panic!("{out:?}")
    };
    let event: objects::YankEvent =
        serde_json::from_slice(&store.read(&state.event.key).unwrap()).unwrap();
    assert!(event.previous.is_some(), "the unyank follows the yank");
    assert_eq!(latest_130(&catalog).await.id, newest.id);
}

#[tokio::test(start_paused = true)]
async fn regions_are_normalised_and_unknown_is_never_in_a_region() {
    let catalog = Catalog::new(MemoryStore::new());
    let mut no_regions = record("0.3.9", Some("1.30.9"));
    no_regions
        .gallery_image
        .as_mut()
        .unwrap()
        .replicated_regions
        .clear();
    let options = TemplateOptions {
        vm_size: Some("S".into()),
        ..TemplateOptions::default()
    };
    catalog
        .publish(&[
            entry("0.3.1", Some("1.30.1")),
            entry::prepare(&no_regions, &options).unwrap(),
        ])
        .await
        .unwrap();
    let in_region = |r: &str| Filter {
        region: Some(r.into()),
        ..Filter::default()
    };
    let found = catalog
        .latest(&in_region("North Central US"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found.kubernetes_version.as_deref(),
        Some("1.30.1"),
        "the newer image has no region data"
    );
    assert!(
        catalog
            .latest(&in_region("westeurope"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn the_index_rebuilt_from_the_objects_is_the_index_and_verifies_clean() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    catalog
        .publish(&[entry("0.3.1", None), entry("0.3.2", Some("1.31.0"))])
        .await
        .unwrap();
    catalog
        .publish(&[entry("0.3.1", Some("1.30.1"))])
        .await
        .unwrap();
    let id = catalog
        .latest(&filter_k8s("1.31"))
        .await
        .unwrap()
        .unwrap()
        .id;
    catalog.yank(&id, true, Some("broken")).await.unwrap();
    let before = catalog.index().await.unwrap();
    let report = rebuild::verify(&catalog).await.unwrap();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    // Lost: the index is derived data.
    store.remove(INDEX_KEY);
    let (rebuilt, findings) = catalog.rebuild_index().await.unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
    let mut a = before.images.clone();
    let mut b = rebuilt.images.clone();
    a.sort_by(|x, y| x.id.cmp(&y.id));
    b.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(a, b, "every field, yank and revision included");
    let report = rebuild::verify(&catalog).await.unwrap();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert_eq!((report.images, report.yanked), (2, 1));
    // Corrupt: replaced whatever is there.
    store.overwrite(INDEX_KEY, b"{ lost half of it".to_vec());
    assert!(matches!(
        catalog.index().await,
        Err(CatalogError::Corrupt { .. })
    ));
    catalog.rebuild_index().await.unwrap();
    assert_eq!(catalog.index().await.unwrap().images.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn verify_finds_altered_objects_a_lying_index_bad_yanks_and_orphans() {
    let (store, catalog) = two_images().await;
    let mut index = catalog.index().await.unwrap();
    // A template altered in place.
    store.overwrite(
        &index.images[0].objects["template"].key,
        b"kind: Tampered\n".to_vec(),
    );
    // An index that says another Kubernetes version than its record.
    index.images[1].kubernetes_version = Some("1.99.0".into());
    // A yank state with no event behind it.
    index.images[1].yank = Some(index::YankState {
        yanked: true,
        reason: None,
        at: "t".into(),
        event: index.images[1].objects["record"].clone(),
    });
    store.overwrite(INDEX_KEY, serde_json::to_vec(&index).unwrap());
    // An image whose publish never reached the index.
    let orphan = entry("0.3.3", None);
    store.overwrite(&orphan.record_ref().key, orphan.record_bytes.clone());
    let report = rebuild::verify(&catalog).await.unwrap();
    let has = |kind: rebuild::FindingKind, severity: rebuild::Severity, needle: &str| {
        report.findings.iter().any(|f| {
            f.kind == kind
                && f.severity == severity
                && (f.subject.contains(needle) || f.problem.contains(needle))
        })
    };
    use rebuild::{FindingKind as K, Severity as S};
    assert!(
        has(K::Data, S::Error, "does not match its sha256"),
        "{:#?}",
        report.findings
    );
    assert!(
        has(K::Data, S::Error, "kubernetes_version"),
        "{:#?}",
        report.findings
    );
    assert!(
        has(K::Data, S::Error, "yank state"),
        "{:#?}",
        report.findings
    );
    assert!(
        has(K::Orphan, S::Warning, &orphan.id),
        "{:#?}",
        report.findings
    );
    assert_eq!(report.worst(), Some((S::Error, K::Data)));
}

fn keypair() -> (signing::Signer, signing::Trust) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    assert!(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&path)
            .status()
            .unwrap()
            .success()
    );
    let signer = signing::Signer::from_openssh("k", &std::fs::read(&path).unwrap(), None).unwrap();
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (
        signer,
        signing::Trust::parse("allowed", &format!("ci {public}")).unwrap(),
    )
}

#[tokio::test]
async fn a_writer_without_the_key_cannot_point_readers_at_another_image() {
    let store = MemoryStore::new();
    let (signer, trust) = keypair();
    let publisher = Catalog::new(store.clone()).with_signer(signer);
    publisher
        .publish(&[entry("0.3.1", Some("1.30.1"))])
        .await
        .unwrap();
    let reader = Catalog::new(store.clone()).with_trust(trust.clone());
    assert_eq!(
        reader
            .latest(&filter_k8s("1.30"))
            .await
            .unwrap()
            .unwrap()
            .gallery_image_version
            .as_deref(),
        Some("0.3.1")
    );
    // Someone with write access to the container but no key edits the index.
    let mut index: serde_json::Value =
        serde_json::from_slice(&store.read(INDEX_KEY).unwrap()).unwrap();
    index["images"][0]["gallery_image_version"] = "6.6.6".into();
    store.overwrite(INDEX_KEY, serde_json::to_vec_pretty(&index).unwrap());
    assert!(matches!(
        reader.latest(&filter_k8s("1.30")).await,
        Err(CatalogError::Untrusted {
            problem: signing::Untrusted::Mismatch(_),
            ..
        })
    ));
    // ...or writes an index without any signature, or signs it with their own key.
    store.remove(INDEX_KEY);
    store.remove(objects::INDEX_SIGNATURE_KEY);
    for k in store
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("signatures/"))
    {
        store.remove(&k);
    }
    Catalog::new(store.clone())
        .publish(&[entry("0.3.6", None)])
        .await
        .unwrap();
    assert!(matches!(
        reader.index().await,
        Err(CatalogError::Untrusted {
            problem: signing::Untrusted::Unsigned,
            ..
        })
    ));
    let (mallory, _) = keypair();
    Catalog::new(store.clone())
        .with_signer(mallory)
        .publish(&[entry("0.3.7", None)])
        .await
        .unwrap();
    assert!(matches!(
        reader.index().await,
        Err(CatalogError::Untrusted {
            problem: signing::Untrusted::UnknownKey(_),
            ..
        })
    ));
    // A publisher that trusts only the real key refuses to sign on top of that.
    let (signer, _) = keypair();
    let honest = Catalog::new(store.clone())
        .with_signer(signer)
        .with_trust(trust);
    assert!(matches!(
        honest.publish(&[entry("0.3.8", None)]).await,
        Err(CatalogError::Untrusted { .. })
    ));
}

#[tokio::test]
async fn each_signed_index_has_its_signature_before_it_is_visible() {
    let store = MemoryStore::new();
    let (signer, trust) = keypair();
    let catalog = Catalog::new(store.clone())
        .with_signer(signer)
        .with_trust(trust);
    for n in 0..3 {
        catalog
            .publish(&[entry(&format!("0.3.{n}"), None)])
            .await
            .unwrap();
        let bytes = store.read(INDEX_KEY).unwrap();
        assert!(
            store
                .read(&objects::signature_key(&objects::sha256(&bytes)))
                .is_some()
        );
    }
    let id = catalog
        .latest(&Filter::default())
        .await
        .unwrap()
        .unwrap()
        .id;
    catalog.yank(&id, true, Some("signed too")).await.unwrap();
    catalog.rebuild_index().await.unwrap();
    assert_eq!(catalog.index().await.unwrap().images.len(), 3);
    let report = rebuild::verify(&catalog).await.unwrap();
    assert!(
        report.signature.starts_with("signed by ci"),
        "{}",
        report.signature
    );
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

/// A build without the `azure` feature says which feature an Azure location needs.
#[cfg(not(feature = "azure"))]
#[test]
fn azure_locations_name_the_missing_feature() {
    let Err(e) = super::open_store("azblob://acct/images") else {
        panic!("opened an Azure store without the azure feature");
    };
    let text = e.to_string();
    assert!(text.contains("`azure` feature"), "{text}");
    assert!(super::open_store("some/dir").is_ok());
}
