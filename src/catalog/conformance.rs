//! One conformance suite for the storage trait and the catalog on it, as named properties
//! that every backend runs (as every `object_store` backend runs its integration suite): the
//! in-memory store and the local directory in the unit tests, Azure Blob Storage against a
//! real Azurite in the integration tests. A backend of your own can run it too.

use super::entry::{self, Entry};
use super::index::{Filter, Root, Section};
use super::pointer::{Latest, pointer_key};
use super::store::{Op, Page, PutMode, Store, StoreError, Versioned};
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
    assert!(store.exists().await.unwrap(), "a store written to exists");
}

/// A removed object reads as none, leaves the listing, and can be created again; removing
/// what is not there is fine (two writers may clean up the same pending change).
async fn a_deleted_object_is_gone<S: Store>(store: &S) {
    store
        .put("pending/gone.json", b"x".to_vec(), PutMode::Create)
        .await
        .unwrap();
    store
        .put("pending/kept.json", b"y".to_vec(), PutMode::Create)
        .await
        .unwrap();
    store.delete("pending/gone.json").await.unwrap();
    assert_eq!(store.get("pending/gone.json").await.unwrap(), None);
    assert_eq!(store.list("pending/").await.unwrap(), ["pending/kept.json"]);
    store.delete("pending/gone.json").await.unwrap();
    store.delete("pending/never.json").await.unwrap();
    store
        .put("pending/gone.json", b"z".to_vec(), PutMode::Create)
        .await
        .unwrap();
    assert_eq!(
        store.get("pending/gone.json").await.unwrap().unwrap().bytes,
        b"z"
    );
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

async fn list_returns_the_keys_under_a_prefix_in_order<S: Store>(store: &S) {
    for key in [
        "listed/x/1.json",
        "listed/2.json",
        "listed/x-y.json",
        "listedness.json",
        "unlisted/3.json",
    ] {
        store
            .put(key, b"c".to_vec(), PutMode::Create)
            .await
            .unwrap();
    }
    let keys = store.list("listed/").await.unwrap();
    assert_eq!(
        keys,
        ["listed/2.json", "listed/x-y.json", "listed/x/1.json"]
    );
}

async fn a_listing_comes_in_pages_that_resume_where_they_stopped<S: Store>(store: &S) {
    let mut written: Vec<String> = (0..7).map(|i| format!("paged/{i}/o.json")).collect();
    written.push("paged/a.json".into());
    for key in &written {
        store
            .put(key, b"p".to_vec(), PutMode::Create)
            .await
            .unwrap();
    }
    written.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let Page { keys, next } = store
            .list_page("paged/", after.as_deref(), 3)
            .await
            .unwrap();
        assert!(keys.len() <= 3, "{keys:?}");
        pages += 1;
        seen.extend(keys);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
        assert!(pages < 20, "the listing does not end");
    }
    assert_eq!(seen, written, "every key once, in order, across pages");
    assert!(pages >= 3, "{pages} pages of at most 3 for 8 keys");
    assert_eq!(
        store.list_page("nothing-here/", None, 3).await.unwrap(),
        Page::default()
    );
}

/// Every property of a store, on an empty one.
pub async fn store_conformance<S: Store>(store: &S) {
    a_missing_key_reads_as_none(store).await;
    create_only_writes_once(store).await;
    if_match_needs_the_current_etag(store).await;
    list_returns_the_keys_under_a_prefix_in_order(store).await;
    a_listing_comes_in_pages_that_resume_where_they_stopped(store).await;
    a_deleted_object_is_gone(store).await;
}

// ---- Properties of the catalog on every store ------------------------------------------------

async fn root_of<S: Store>(store: &S) -> Root {
    let bytes = store.get(INDEX_KEY).await.unwrap().unwrap().bytes;
    serde_json::from_slice(&bytes).unwrap()
}

/// Section `name` of `root`, checked against the sha256 the root names it with.
async fn section_of<S: Store>(store: &S, root: &Root, name: &str) -> Section {
    let r = &root.sections[name];
    let bytes = store.get(&r.key).await.unwrap().unwrap().bytes;
    assert_eq!(super::objects::sha256(&bytes), r.sha256, "{name}");
    serde_json::from_slice(&bytes).unwrap()
}

async fn publishing_again_changes_nothing<S: Store + 'static>(open: &impl Fn() -> S) {
    let catalog = Catalog::new(open());
    let e = entry_for("0.3.1721037000", Some("1.30.3"));
    let first = catalog.publish(std::slice::from_ref(&e)).await.unwrap();
    assert!(
        matches!(first.as_slice(), [Outcome::Published { .. }]),
        "{first:?}"
    );
    let before = root_of(catalog.store()).await;
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
    assert_eq!(root_of(catalog.store()).await, before, "nothing written");
    // The stored objects come back and match their hashes.
    let found = catalog.latest(&Filter::default()).await.unwrap().unwrap();
    let stored: Record =
        serde_json::from_slice(&catalog.object(&found.entry, "record").await.unwrap()).unwrap();
    assert_eq!(stored, record("0.3.1721037000", Some("1.30.3")));
    let template =
        String::from_utf8(catalog.object(&found.entry, "template").await.unwrap()).unwrap();
    assert!(
        template.contains("version: \"0.3.1721037000\""),
        "{template}"
    );
}

/// Layout 5's objects: the root names a section per Kubernetes minor and OS, which names one
/// shard per Kubernetes version and OS and the pointer of its minor and OS, each by its
/// sha256; the pointer answers with the newest image.
async fn the_root_names_shards_and_pointers<S: Store + 'static>(open: &impl Fn() -> S) {
    let catalog = Catalog::new(open());
    catalog
        .publish(&[
            entry_for("0.7.1", Some("1.33.1")),
            entry_for("0.7.2", Some("1.33.2")),
        ])
        .await
        .unwrap();
    let root = root_of(catalog.store()).await;
    assert_eq!(root.layout, 5);
    assert!(root.images.is_empty());
    assert_eq!(root.sections["1.33/ubuntu-2404"].images, 2);
    let section = section_of(catalog.store(), &root, "1.33/ubuntu-2404").await;
    for name in ["1.33.1/ubuntu-2404", "1.33.2/ubuntu-2404"] {
        let shard = &section.shards[name];
        let bytes = catalog
            .store()
            .get(&shard.key)
            .await
            .unwrap()
            .unwrap()
            .bytes;
        assert_eq!(super::objects::sha256(&bytes), shard.sha256, "{name}");
    }
    let pointer = section.latest.as_ref().unwrap();
    assert_eq!(pointer.key, pointer_key("1.33/ubuntu-2404"));
    let bytes = catalog
        .store()
        .get(&pointer.key)
        .await
        .unwrap()
        .unwrap()
        .bytes;
    assert_eq!(super::objects::sha256(&bytes), pointer.sha256);
    let latest: Latest = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(latest.catalog_sequence, root.sequence);
    let image = latest.image.unwrap();
    assert_eq!(image.gallery_image_version.as_deref(), Some("0.7.2"));
    assert_eq!(latest.regions["eastus2"].id, image.id);
}

/// The objects beside the index: each image's anchor names its shard, its revision and its
/// events name the catalog they were written for, and a promotion and a clean-up change what
/// `latest` serves, read back from the store.
async fn anchors_events_and_catalog_ids<S: Store + 'static>(open: &impl Fn() -> S) {
    use super::lifecycle::Target;
    use super::objects::{self, Anchor, Event, Revision};
    let catalog = Catalog::new(open());
    let e = entry_for("0.7.3", Some("1.33.3"));
    catalog.publish(std::slice::from_ref(&e)).await.unwrap();
    let root = root_of(catalog.store()).await;
    let id = root.catalog_id.clone().expect("a new catalog has an id");
    let store = catalog.store();
    let get = |key: String| async move { store.get(&key).await.unwrap().unwrap().bytes };
    let anchor: Anchor = serde_json::from_slice(&get(objects::anchor_key(&e.id)).await).unwrap();
    assert_eq!(anchor.shard, "1.33.3/ubuntu-2404");
    let found = catalog.show(&e.id).await.unwrap().unwrap().entry;
    let revision: Revision =
        serde_json::from_slice(&get(found.objects["revision"].key.clone()).await).unwrap();
    assert_eq!(revision.catalog_id.as_deref(), Some(id.as_str()));
    // Promoted, then its build location cleaned up: served from the promotion.
    let target = Target {
        stage: "production".into(),
        gallery_image_version_id: "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/prod/providers/Microsoft.Compute/galleries/prod/images/capi-ubuntu-2404/versions/1.33.3".into(),
        public_name: None,
        regions: vec!["westeurope".into()],
        end_of_life: None,
        published: None,
    };
    catalog.promote(&e.id, &target, None).await.unwrap();
    catalog
        .clean(&[found.gallery_image_version_id.clone().unwrap()], None)
        .await
        .unwrap();
    let served = catalog.latest(&Filter::default()).await.unwrap().unwrap();
    let head = served.entry.head_event().unwrap().key.clone();
    let event: Event = serde_json::from_slice(&get(head).await).unwrap();
    assert_eq!(event.catalog_id.as_deref(), Some(id.as_str()));
    let location = served.served.expect("served from somewhere");
    assert_eq!(location.stage, "production");
    assert_eq!(location.gallery.as_deref(), Some("prod"));
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
    // Once its version is known, the image is in the shard of that version.
    let latest = catalog
        .latest(&Filter {
            kubernetes: Some("1.30".into()),
            ..Filter::default()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        latest.entry.gallery_image_version.as_deref(),
        Some("0.9.2000")
    );
    let root = root_of(catalog.store()).await;
    let section = section_of(catalog.store(), &root, "1.30/ubuntu-2404").await;
    assert!(
        section.shards.contains_key("1.30.3/ubuntu-2404"),
        "{:?}",
        section.shards.keys()
    );
    let unknown = section_of(catalog.store(), &root, "unknown/ubuntu-2404").await;
    assert!(unknown.latest.is_none(), "no pointer without a version");
    assert_eq!(
        unknown.shards["unknown/ubuntu-2404"].images, 1,
        "0.9.2001 only: 0.9.2000 moved out"
    );
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
    assert_every_pending_change_is_committed(catalog.store()).await;
    let all = catalog
        .list(&Filter {
            kubernetes: Some("1.31.1".into()),
            ..Filter::default()
        })
        .await
        .unwrap();
    for i in 0..16 {
        let v = format!("0.3.{}", 100 + i);
        assert!(
            all.iter()
                .any(|e| e.gallery_image_version.as_deref() == Some(v.as_str())),
            "{v} lost"
        );
    }
    for e in &all {
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
    assert_eq!(
        latest.entry.gallery_image_version.as_deref(),
        Some("0.3.115")
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
    // The pointer agrees, whichever writer wrote it last.
    let root = root_of(catalog.store()).await;
    let section = section_of(catalog.store(), &root, "1.31/ubuntu-2404").await;
    let bytes = catalog
        .store()
        .get(&section.latest.unwrap().key)
        .await
        .unwrap()
        .unwrap()
        .bytes;
    let pointer: Latest = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        pointer.image.unwrap().gallery_image_version.as_deref(),
        Some("0.3.115")
    );
}

/// A store whose root writes fail: a failed publish leaves no index entry naming it, and
/// publishing again later completes it.
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
    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page, StoreError> {
        self.0.list_page(prefix, after, max).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).await
    }
    async fn exists(&self) -> Result<bool, StoreError> {
        self.0.exists().await
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
            .list(&Filter::default())
            .await
            .unwrap()
            .iter()
            .all(|x| x.gallery_image_version.as_deref() != Some("0.4.1"))
    );
    let done = catalog.publish(&[e]).await.unwrap();
    assert!(
        matches!(done.as_slice(), [Outcome::Published { .. }]),
        "{done:?}"
    );
}

/// What runs just before a root write: another writer getting in first.
pub(crate) type Rival = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>;

/// A store on which other writers get in first: before each root write through it, the next
/// queued rival runs (its own writer, on this store or on a plain client of the same place).
pub(crate) struct Rivals<S> {
    pub(crate) inner: S,
    pub(crate) queue: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<Rival>>>,
}

impl<S: Store> Store for Rivals<S> {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        if key == INDEX_KEY {
            let next = self.queue.lock().unwrap().pop_front();
            if let Some(rival) = next {
                rival().await;
            }
        }
        self.inner.put(key, bytes, mode).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page, StoreError> {
        self.inner.list_page(prefix, after, max).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn exists(&self) -> Result<bool, StoreError> {
        self.inner.exists().await
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Group commit: a publisher that lost the root leaves its change pending, and the next writer
/// that commits (itself having lost a round) commits it with its own; the first publisher then
/// finds it committed, and nothing pending is left behind.
async fn a_lost_publish_is_committed_by_the_next_writer<S: Store + 'static>(open: &impl Fn() -> S) {
    let queue = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let rivals = |inner: S| Rivals {
        inner,
        queue: queue.clone(),
    };
    let plain_rival = |store: S, version: &str, kubernetes: &str| -> Rival {
        let e = entry_for(version, Some(kubernetes));
        Box::new(move || {
            Box::pin(async move {
                Catalog::new(store).publish(&[e]).await.unwrap();
            })
        })
    };
    // Before A's first root write, Z gets in (A loses and leaves its change pending). Before
    // A's second, B publishes Y; before B's first, W gets in: B loses too, and commits A's
    // pending change with its own. What the catalog holds once B is done is kept.
    let after_b = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let b_store = rivals(open());
    let b_reader = open();
    let seen = after_b.clone();
    let y = entry_for("0.6.2", Some("1.36.2"));
    let b: Rival = Box::new(move || {
        Box::pin(async move {
            let out = Catalog::new(b_store)
                .with_group_commit(true)
                .publish(&[y])
                .await
                .unwrap();
            assert!(
                matches!(out.as_slice(), [Outcome::Published { .. }]),
                "{out:?}"
            );
            let listed = Catalog::new(b_reader)
                .list(&Filter::default())
                .await
                .unwrap();
            *seen.lock().unwrap() = listed
                .into_iter()
                .filter_map(|e| e.gallery_image_version)
                .collect::<Vec<_>>();
        })
    });
    queue.lock().unwrap().extend([
        plain_rival(open(), "0.6.1", "1.36.1"),
        b,
        plain_rival(open(), "0.6.3", "1.36.3"),
    ]);
    let a = Catalog::new(rivals(open())).with_group_commit(true);
    let out = a
        .publish(&[entry_for("0.6.0", Some("1.36.0"))])
        .await
        .unwrap();
    assert!(
        matches!(out.as_slice(), [Outcome::Published { .. }]),
        "{out:?}"
    );
    assert!(queue.lock().unwrap().is_empty(), "every rival ran");
    let committed_by_b = after_b.lock().unwrap().clone();
    for v in ["0.6.0", "0.6.1", "0.6.2", "0.6.3"] {
        assert!(
            committed_by_b.iter().any(|x| x == v),
            "{v} not in the catalog once B was done: {committed_by_b:?}"
        );
    }
    let catalog = Catalog::new(open());
    let latest = catalog
        .latest(&Filter {
            kubernetes: Some("1.36".into()),
            ..Filter::default()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.entry.gallery_image_version.as_deref(), Some("0.6.3"));
    let pointer: Latest = serde_json::from_slice(
        &catalog
            .store()
            .get(&pointer_key("1.36/ubuntu-2404"))
            .await
            .unwrap()
            .unwrap()
            .bytes,
    )
    .unwrap();
    assert_eq!(
        pointer.image.unwrap().gallery_image_version.as_deref(),
        Some("0.6.3")
    );
    let left = assert_every_pending_change_is_committed(catalog.store()).await;
    assert!(!left.is_empty(), "A's, committed by B");
}

/// Every pending change left (files stay until a later writer's sweep) is one the root names
/// as committed: none was dropped uncommitted, none is waiting. Returns them.
async fn assert_every_pending_change_is_committed<S: Store>(store: &S) -> Vec<String> {
    let root = root_of(store).await;
    let left: Vec<String> = store
        .list(super::pending::PENDING_PREFIX)
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.ends_with(".json"))
        .collect();
    for key in &left {
        assert!(
            root.pending_committed.contains(key),
            "{key} is pending, and the root does not name it committed: {:?}",
            root.pending_committed
        );
    }
    left
}

/// Every property of the catalog, each on a fresh catalog from `open` (clients of one
/// container: each call returns a new client of the same place).
pub async fn catalog_conformance<S: Store + 'static>(open: impl Fn() -> S) {
    publishing_again_changes_nothing(&open).await;
    the_root_names_shards_and_pointers(&open).await;
    anchors_events_and_catalog_ids(&open).await;
    a_known_field_never_changes_but_unknown_ones_fill_in(&open).await;
    concurrent_publishers_lose_no_entry(&open).await;
    a_lost_publish_is_committed_by_the_next_writer(&open).await;
    nothing_is_half_published(&open).await;
}
