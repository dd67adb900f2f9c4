//! The catalog's protocols against the in-memory store and stores that misbehave on purpose:
//! publishing, racing, retrying, yanks, rebuild and verify, and every attack of someone who can
//! write the container but holds no key. (The same properties run against the local directory
//! and Azurite, through the binary, in tests/catalog.rs and tests/trust.rs.)

use super::entry::{self, Entry};
use super::index::{self, Filter, IndexEntry, Root};
use super::memory::MemoryStore;
use super::rebuild::Adoption;
use super::state::StateDir;
use super::store::{Op, Page, PutMode, Store, StoreError, Versioned};
use super::verify::{FindingKind as K, Progress, Report, Severity as S};
use super::*;
use crate::record::Record;
use crate::render::TemplateOptions;
use crate::retry::RetryConfig;
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

fn options() -> TemplateOptions {
    TemplateOptions {
        vm_size: Some("Standard_D2s_v3".into()),
        ..TemplateOptions::default()
    }
}

fn entry(version: &str, kubernetes: Option<&str>) -> Entry {
    entry::prepare(&record(version, kubernetes), &options()).unwrap()
}

fn quick() -> RetryConfig {
    RetryConfig {
        retry_timeout: Duration::from_secs(5),
        ..RetryConfig::default()
    }
}

fn all() -> Filter {
    Filter {
        include_yanked: true,
        ..Filter::default()
    }
}

fn filter_k8s(minor: &str) -> Filter {
    Filter {
        kubernetes: Some(minor.into()),
        ..Filter::default()
    }
}

fn root_of(store: &MemoryStore) -> Root {
    serde_json::from_slice(&store.read(INDEX_KEY).unwrap()).unwrap()
}

fn section_in(store: &MemoryStore, root: &Root, name: &str) -> index::Section {
    serde_json::from_slice(&store.read(&root.sections[name].key).unwrap()).unwrap()
}

/// Every shard the root's sections name.
fn shard_refs(
    store: &MemoryStore,
    root: &Root,
) -> std::collections::BTreeMap<String, index::ShardRef> {
    root.sections
        .keys()
        .flat_map(|n| section_in(store, root, n).shards)
        .collect()
}

/// The key of pointer `name`, as its section names it.
fn pointer_of(store: &MemoryStore, root: &Root, name: &str) -> String {
    section_in(store, root, name).latest.unwrap().key
}

/// Shard `name` as stored.
fn shard_in(store: &MemoryStore, root: &Root, name: &str) -> index::Shard {
    serde_json::from_slice(&store.read(&shard_refs(store, root)[name].key).unwrap()).unwrap()
}

/// What someone who can write the container does: shard `name` replaced by `shard` (under its
/// content name), its section and the root renamed to match.
fn plant_shard(store: &MemoryStore, root: &mut Root, name: &str, shard: &index::Shard) {
    let bytes = serde_json::to_vec(shard).unwrap();
    let key = format!("shards/{name}-{}.json", &objects::sha256(&bytes)[..16]);
    store.overwrite(&key, bytes.clone());
    let section_name = index::section_of(name);
    let mut section = section_in(store, root, &section_name);
    let r = section.shards.get_mut(name).unwrap();
    r.key = key;
    r.sha256 = objects::sha256(&bytes);
    let bytes = serde_json::to_vec(&section).unwrap();
    let key = format!(
        "sections/{section_name}-{}.json",
        &objects::sha256(&bytes)[..16]
    );
    store.overwrite(&key, bytes.clone());
    let r = root.sections.get_mut(&section_name).unwrap();
    r.key = key;
    r.sha256 = objects::sha256(&bytes);
    store.overwrite(INDEX_KEY, serde_json::to_vec_pretty(root).unwrap());
}

fn quiet(_: Progress) {}

async fn verify(catalog: &Catalog<impl Store>) -> Report {
    super::verify::verify(catalog, &quiet).await.unwrap()
}

async fn rebuild(catalog: &Catalog<impl Store>) -> super::rebuild::Rebuilt {
    catalog
        .rebuild_index(Adoption::default(), &quiet)
        .await
        .unwrap()
}

fn has(report: &Report, kind: K, severity: S, needle: &str) -> bool {
    report.findings.iter().any(|f| {
        f.kind == kind
            && f.severity == severity
            && (f.subject.contains(needle) || f.problem.contains(needle))
    })
}

fn errors(report: &Report) -> Vec<&super::verify::Finding> {
    report
        .findings
        .iter()
        .filter(|f| f.severity == S::Error)
        .collect()
}

// ---- Publishing --------------------------------------------------------------------------------

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
    let root = root_of(&store);
    for section in root.sections.values() {
        assert!(store.keys().contains(&section.key));
    }
    for shard in shard_refs(&store, &root).values() {
        assert!(store.keys().contains(&shard.key));
    }
    for e in catalog.list(&all()).await.unwrap() {
        for o in e.objects.values() {
            assert!(
                store.keys().contains(&o.key),
                "{} is named but absent",
                o.key
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn more_information_is_a_new_revision_and_old_objects_stay() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    let first = catalog.list(&all()).await.unwrap()[0].clone();
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
    let now = catalog.list(&all()).await.unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].kubernetes_version.as_deref(), Some("1.30.3"));
    assert_eq!(now[0].published_at, first.published_at);
    assert!(now[0].updated_at.is_some());
    assert!(
        store.keys().contains(&first.objects["record"].key),
        "the first revision's record stays"
    );
    // Less information is no update.
    let out = catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    assert!(matches!(out.as_slice(), [Outcome::Unchanged { .. }]));
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
            entry("0.3.2", Some("1.30.4")),
        ])
        .await
        .unwrap();
    assert!(matches!(&out[0], Outcome::Conflict(c) if c.field == "kubernetes_version"));
    assert!(matches!(&out[1], Outcome::Published { .. }));
    assert_eq!(catalog.list(&all()).await.unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_same_image_twice_in_one_batch_is_one_entry() {
    let catalog = Catalog::new(MemoryStore::new());
    let out = catalog
        .publish(&[entry("0.3.1", None), entry("0.3.1", Some("1.30.3"))])
        .await
        .unwrap();
    assert!(matches!(out[0], Outcome::Published { .. }));
    assert!(matches!(out[1], Outcome::Updated { .. }), "{out:?}");
    let listed = catalog.list(&all()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kubernetes_version.as_deref(), Some("1.30.3"));
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
    let err = catalog.list(&all()).await.unwrap_err().to_string();
    assert!(err.contains("newer sigcat"), "{err}");
    // rebuild-index never rewrites a newer layout as this one.
    let err = catalog
        .rebuild_index(Adoption::default(), &quiet)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("newer sigcat"), "{err}");
    assert!(
        store
            .read(INDEX_KEY)
            .unwrap()
            .starts_with(b"{\"layout\": 99")
    );
    // An object that does not match its hash.
    store.remove(INDEX_KEY);
    catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    let e = catalog.list(&all()).await.unwrap().remove(0);
    store.overwrite(&e.objects["template"].key, b"tampered".to_vec());
    assert!(matches!(
        catalog.object(&e, "template").await,
        Err(CatalogError::Corrupt { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn an_object_key_that_leaves_the_image_is_the_catalogs_data_not_the_storage() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    catalog
        .publish(&[entry("0.3.1", Some("1.30.1"))])
        .await
        .unwrap();
    // Rewrite the shard so its entry names `../../x`, and its section and the root to match.
    let mut root = root_of(&store);
    let name = "1.30.1/ubuntu-2404";
    let mut shard = shard_in(&store, &root, name);
    shard.images[0].objects.get_mut("template").unwrap().key = "../../x".into();
    plant_shard(&store, &mut root, name, &shard);
    let err = catalog.list(&all()).await.unwrap_err();
    assert!(matches!(err, CatalogError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("../../x"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn unknown_fields_and_layout_1_entries_survive_the_upgrade_to_layout_5() {
    let store = MemoryStore::new();
    // A layout 3 catalog, as an older sigcat left it.
    let a = entry("0.3.1", Some("1.30.1"));
    for (r, b) in [
        (a.record_ref(), &a.record_bytes),
        (a.template_ref(), &a.template_bytes),
    ] {
        store.overwrite(&r.key, b.to_vec());
    }
    let (rev, rev_bytes) = entry::revision(
        &a.id,
        &a.record_ref(),
        &a.template_ref(),
        "2026-01-01T00:00:00.000Z",
        0,
        None,
    );
    store.overwrite(&rev.key, rev_bytes);
    let mut e = a.index_entry(rev, "2026-01-01T00:00:00.000Z".into());
    e.extra.insert("future_field".into(), "kept".into());
    let legacy = serde_json::json!({"layout": 3, "images": [e], "future": {"x": 1}});
    store.overwrite(INDEX_KEY, serde_json::to_vec(&legacy).unwrap());
    let catalog = Catalog::new(store.clone());
    // Read as it is.
    assert_eq!(catalog.list(&all()).await.unwrap().len(), 1);
    // Upgraded at the next write.
    catalog
        .publish(&[entry("0.3.2", Some("1.30.2"))])
        .await
        .unwrap();
    let root = root_of(&store);
    assert_eq!(root.layout, index::LAYOUT_VERSION);
    assert_eq!(root.extra["future"]["x"], 1);
    assert_eq!(root.image_count(), 2);
    let listed = catalog.list(&all()).await.unwrap();
    let old = listed.iter().find(|x| x.id == a.id).unwrap();
    assert_eq!(old.extra["future_field"], "kept");
    assert!(
        section_in(&store, &root, "1.30/ubuntu-2404")
            .latest
            .is_some()
    );
    let report = verify(&catalog).await;
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    // The upgrade gave the old image its anchor (layout 3 had none), so publishing it again
    // as another Kubernetes version is a conflict, not a second copy of it.
    let anchor: objects::Anchor =
        serde_json::from_slice(&store.read(&objects::anchor_key(&a.id)).unwrap()).unwrap();
    assert_eq!(anchor.shard, "1.30.1/ubuntu-2404");
    let out = catalog
        .publish(&[entry("0.3.1", Some("1.31.1"))])
        .await
        .unwrap();
    assert!(matches!(out.as_slice(), [Outcome::Conflict(_)]), "{out:?}");
    assert_eq!(catalog.list(&all()).await.unwrap().len(), 2);
}

/// An anchor that is there but says nothing usable (not JSON, another image's, a shard with
/// `..`) is not taken for "no anchor": the image is looked for by listing, and publishing it
/// again as another Kubernetes version is a conflict, not a second copy.
#[tokio::test(start_paused = true)]
async fn an_anchor_that_says_nothing_usable_costs_a_listing_not_a_duplicate() {
    for (n, junk) in [
        b"xx".to_vec(),
        b"null".to_vec(),
        br#"{"id": "capi-other-0-1-2-12345678", "shard": "1.32.2/ubuntu-2404"}"#.to_vec(),
    ]
    .into_iter()
    .enumerate()
    {
        let store = MemoryStore::new();
        let catalog = Catalog::new(store.clone());
        let e = entry("0.3.1", Some("1.30.1"));
        catalog.publish(std::slice::from_ref(&e)).await.unwrap();
        store.overwrite(&objects::anchor_key(&e.id), junk);
        let out = catalog
            .publish(&[entry("0.3.1", Some("1.31.1"))])
            .await
            .unwrap();
        assert!(
            matches!(out.as_slice(), [Outcome::Conflict(_)]),
            "{n}: {out:?}"
        );
        let ours = only_entry(&catalog, "0.3.1").await;
        assert_eq!(ours.kubernetes_version.as_deref(), Some("1.30.1"), "{n}");
    }
}

/// Publishers of one image at once take turns on its anchor as on the root: a claim that
/// loses 20 compare-and-swaps in a row still lands (it used to give up after 8 quick tries,
/// exit 8, blaming the storage).
#[tokio::test(start_paused = true)]
async fn a_claim_that_keeps_losing_waits_as_a_root_write_does() {
    let store = Racing {
        before: "/image.json",
        only_lose: true,
        ..Racing::new(other_image)
    };
    let catalog = Catalog::new(store.clone());
    catalog.publish(&[entry("0.1.0", None)]).await.unwrap();
    store.races.store(20, Ordering::SeqCst);
    let out = catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    assert!(
        matches!(out.as_slice(), [Outcome::Published { .. }]),
        "{out:?}"
    );
    assert_eq!(store.races.load(Ordering::SeqCst), 0);
}

/// 16 publishers of one image at once, half with its Kubernetes version: none fails, and it
/// is listed once, with the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishers_of_one_image_at_once_take_turns_on_its_anchor() {
    let store = MemoryStore::new();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let kubernetes = if i % 2 == 0 { None } else { Some("1.30.1") };
                Catalog::new(store)
                    .publish(&[entry("0.3.1", kubernetes)])
                    .await
            })
        })
        .collect();
    for t in tasks {
        let out = t.await.unwrap();
        assert!(out.is_ok(), "{out:?}");
    }
    let ours = only_entry(&Catalog::new(store), "0.3.1").await;
    assert_eq!(ours.kubernetes_version.as_deref(), Some("1.30.1"));
}

/// What a publish killed before its revision leaves (record, template, anchor) is a warning
/// that says so, not "the catalog's data is wrong": nothing reads it, and publishing the image
/// again completes it.
#[tokio::test(start_paused = true)]
async fn a_publish_killed_before_its_revision_leaves_a_warning_not_an_error() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    let killed = entry("0.3.2", Some("1.30.2"));
    store.overwrite(&killed.record_ref().key, killed.record_bytes.clone());
    store.overwrite(&killed.template_ref().key, killed.template_bytes.clone());
    let anchor = serde_json::json!({"id": killed.id, "shard": "1.30.2/ubuntu-2404"});
    store.overwrite(
        &objects::anchor_key(&killed.id),
        serde_json::to_vec(&anchor).unwrap(),
    );
    let report = verify(&catalog).await;
    assert!(errors(&report).is_empty(), "{report:#?}");
    assert!(
        has(&report, K::Orphan, S::Warning, "no revision"),
        "{report:#?}"
    );
    catalog
        .publish(std::slice::from_ref(&killed))
        .await
        .unwrap();
    assert!(verify(&catalog).await.findings.is_empty());
}

/// An image without its anchor (deleted, or a catalog from before anchors) is a warning that
/// says what it costs and what writes it; rebuild-index writes it.
#[tokio::test(start_paused = true)]
async fn verify_warns_of_an_image_without_its_anchor_and_rebuild_index_writes_it() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    let e = entry("0.3.1", Some("1.30.1"));
    catalog.publish(std::slice::from_ref(&e)).await.unwrap();
    assert!(verify(&catalog).await.findings.is_empty());
    store.remove(&objects::anchor_key(&e.id));
    let report = verify(&catalog).await;
    assert!(has(&report, K::Data, S::Warning, &e.id), "{report:#?}");
    assert!(
        report.findings[0].problem.contains("rebuild-index"),
        "{report:#?}"
    );
    assert!(errors(&report).is_empty());
    rebuild(&catalog).await;
    assert!(store.read(&objects::anchor_key(&e.id)).is_some());
    assert!(verify(&catalog).await.findings.is_empty());
}

/// A store where another publisher publishes (what `rival` makes of the races left) just
/// before each of our first `n` writes of a key ending in `before` (the root, or an anchor):
/// our conditional write loses, and the catalog must re-read and merge.
#[derive(Clone)]
struct Racing {
    inner: MemoryStore,
    races: Arc<AtomicU32>,
    rival: fn(u32) -> Entry,
    before: &'static str,
    /// The rival's write is only seen: ours fails as if another writer had just written.
    only_lose: bool,
}

impl Racing {
    fn new(rival: fn(u32) -> Entry) -> Racing {
        Racing {
            inner: MemoryStore::new(),
            races: Arc::new(AtomicU32::new(0)),
            rival,
            before: INDEX_KEY,
            only_lose: false,
        }
    }
}

impl Store for Racing {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        if key.ends_with(self.before) && self.races.load(Ordering::SeqCst) > 0 {
            self.races.fetch_sub(1, Ordering::SeqCst);
            if self.only_lose && mode != PutMode::Overwrite {
                return Err(StoreError::Precondition { key: key.into() });
            }
            let rival = Catalog::new(self.inner.clone());
            let n = self.races.load(Ordering::SeqCst);
            rival.publish(&[(self.rival)(n)]).await.unwrap();
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
        Ok(true)
    }
    fn describe(&self) -> String {
        "racing".into()
    }
}

/// Rivals that publish new images of their own.
fn other_image(n: u32) -> Entry {
    entry(&format!("9.9.{n}"), None)
}

#[tokio::test(start_paused = true)]
async fn a_lost_race_is_retried_and_no_entry_is_lost() {
    let store = Racing::new(other_image);
    let catalog = Catalog::new(store.clone());
    catalog.publish(&[entry("0.1.0", None)]).await.unwrap();
    store.races.store(3, Ordering::SeqCst);
    let out = catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    assert!(matches!(out.as_slice(), [Outcome::Published { .. }]));
    let versions: Vec<String> = catalog
        .list(&all())
        .await
        .unwrap()
        .iter()
        .filter_map(|e| e.gallery_image_version.clone())
        .collect();
    assert_eq!(versions.len(), 5, "{versions:?}");
    assert!(versions.contains(&"0.3.1".to_string()));
}

/// The one entry of gallery version `version`: an image listed in two shards fails.
async fn only_entry(catalog: &Catalog<impl Store>, version: &str) -> IndexEntry {
    let listed = catalog.list(&all()).await.unwrap();
    let ours: Vec<_> = listed
        .iter()
        .filter(|e| e.gallery_image_version.as_deref() == Some(version))
        .collect();
    assert_eq!(ours.len(), 1, "in one shard only: {listed:?}");
    ours[0].clone()
}

/// The rival publishes the same image as ours, with its Kubernetes version: it claims the
/// image for that version's shard after our first round claimed it for `unknown`.
fn same_image_known_version(_: u32) -> Entry {
    entry("0.3.1", Some("1.30.3"))
}

/// The rival publishes the same image as ours, from its log alone (no Kubernetes version).
fn same_image_unknown_version(_: u32) -> Entry {
    entry("0.3.1", None)
}

/// Found by an attack on a cheaper retry: the same image published at once from its log
/// alone and with its manifest (another shard). The rival claims the image first and commits
/// after our claim replaced its own; our root write loses, and the next round must find the
/// rival's entry (and update it) rather than trust the claim it still holds.
#[tokio::test(start_paused = true)]
async fn a_rival_that_claimed_first_and_committed_later_is_found_in_the_next_round() {
    let store = Racing {
        before: "/image.json",
        ..Racing::new(same_image_unknown_version)
    };
    let catalog = Catalog::new(store.clone());
    catalog.publish(&[entry("0.1.0", None)]).await.unwrap();
    store.races.store(1, Ordering::SeqCst);
    let out = catalog
        .publish(&[entry("0.3.1", Some("1.30.3"))])
        .await
        .unwrap();
    assert!(
        matches!(out.as_slice(), [Outcome::Updated { .. }]),
        "{out:?}"
    );
    let ours = only_entry(&catalog, "0.3.1").await;
    assert_eq!(ours.kubernetes_version.as_deref(), Some("1.30.3"));
}

#[tokio::test(start_paused = true)]
async fn a_rival_that_claimed_after_us_and_committed_first_is_found_in_the_next_round() {
    let store = Racing::new(same_image_known_version);
    let catalog = Catalog::new(store.clone());
    catalog.publish(&[entry("0.1.0", None)]).await.unwrap();
    store.races.store(1, Ordering::SeqCst);
    let out = catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    // The rival's record says more (the version): ours adds nothing to it.
    assert!(
        matches!(out.as_slice(), [Outcome::Unchanged { .. }]),
        "{out:?}"
    );
    let ours = only_entry(&catalog, "0.3.1").await;
    assert_eq!(ours.kubernetes_version.as_deref(), Some("1.30.3"));
}

/// A store that fails the first `n` requests (then works), transiently or for good.
#[derive(Clone)]
struct Flaky {
    inner: MemoryStore,
    failures: Arc<AtomicU32>,
    transient: bool,
    /// Only listings fail (the first `failures` pages), for the paging test.
    lists_only: bool,
}

impl Flaky {
    fn fail(&self, key: &str) -> Result<(), StoreError> {
        if self.failures.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        self.failures.fetch_sub(1, Ordering::SeqCst);
        let source = "injected".into();
        Err(if self.transient {
            StoreError::Unavailable {
                op: Op::Write,
                key: key.into(),
                source,
            }
        } else {
            StoreError::Denied {
                op: Op::Write,
                key: key.into(),
                source,
            }
        })
    }
}

impl Store for Flaky {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        if !self.lists_only {
            self.fail(key)?;
        }
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        if !self.lists_only {
            self.fail(key)?;
        }
        self.inner.put(key, bytes, mode).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page, StoreError> {
        // A listing that fails halfway: every other page fails once.
        if self.lists_only && after.is_some() {
            self.fail(prefix)?;
        }
        // Small pages: a listing of many.
        self.inner.list_page(prefix, after, max.min(50)).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if !self.lists_only {
            self.fail(key)?;
        }
        self.inner.delete(key).await
    }
    async fn exists(&self) -> Result<bool, StoreError> {
        Ok(true)
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
        lists_only: false,
    };
    let catalog = Catalog::new(flaky.clone()).with_retry(quick());
    let out = catalog.publish(&[entry("0.3.1", None)]).await.unwrap();
    assert!(matches!(out.as_slice(), [Outcome::Published { .. }]));

    let denied = Flaky {
        inner: MemoryStore::new(),
        failures: Arc::new(AtomicU32::new(1)),
        transient: false,
        lists_only: false,
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
        lists_only: false,
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
        text.contains("gave up after") && text.contains("index.json"),
        "{text}"
    );
}

/// A listing of many pages where pages fail now and then finishes: each page is retried on
/// its own and the listing resumes from it (before, the whole listing was one operation,
/// retried from its first page).
#[tokio::test(start_paused = true)]
async fn a_long_listing_survives_failing_pages() {
    let inner = MemoryStore::new();
    let writer = Catalog::new(inner.clone());
    let batch: Vec<Entry> = (0..300)
        .map(|n| entry(&format!("0.5.{n}"), Some("1.30.1")))
        .collect();
    writer.publish(&batch).await.unwrap();
    let flaky = Flaky {
        inner,
        failures: Arc::new(AtomicU32::new(3)),
        transient: true,
        lists_only: true,
    };
    let catalog = Catalog::new(flaky.clone()).with_retry(quick());
    let report = verify(&catalog).await;
    assert!(errors(&report).is_empty(), "{:#?}", report.findings);
    assert_eq!(report.images, 300);
    assert_eq!(flaky.failures.load(Ordering::SeqCst), 0, "pages did fail");
}

// ---- Queries -----------------------------------------------------------------------------------

/// The newest image for Kubernetes 1.30.
async fn latest_130(catalog: &Catalog<MemoryStore>) -> IndexEntry {
    catalog
        .latest(&filter_k8s("1.30"))
        .await
        .unwrap()
        .unwrap()
        .entry
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
async fn an_empty_catalog_and_a_mistyped_location_are_told_apart() {
    // A location where nothing exists at all.
    let nowhere = Catalog::new(super::local::LocalStore::new("/nonexistent/sigcat/typo"));
    assert!(matches!(
        nowhere.list(&all()).await,
        Err(CatalogError::Missing { .. })
    ));
    assert!(matches!(
        super::verify::verify(&nowhere, &quiet).await,
        Err(CatalogError::Missing { .. })
    ));
    // A store that exists but holds nothing: empty, not an error.
    let empty = Catalog::new(MemoryStore::new());
    assert!(empty.list(&all()).await.unwrap().is_empty());
    assert_eq!(empty.status().await.unwrap().images, 0);
    // Objects without an index: lost, not empty.
    let (store, catalog) = two_images().await;
    store.remove(INDEX_KEY);
    let err = catalog.list(&all()).await.unwrap_err();
    assert!(matches!(err, CatalogError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("rebuild-index"), "{err}");
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
    // The pointer for curl moved too.
    let root = root_of(&store);
    let pointer: Latest = serde_json::from_slice(
        &store
            .read(&pointer_of(&store, &root, "1.30/ubuntu-2404"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        pointer.image.unwrap().kubernetes_version.as_deref(),
        Some("1.30.1")
    );
    let listed = catalog.list(&all()).await.unwrap();
    assert!(
        listed.iter().any(|e| e.id == newest.id && e.is_yanked()),
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
    let other = listed.iter().find(|e| e.id != newest.id).unwrap();
    assert_eq!(
        catalog.yank(&other.id, false, None).await.unwrap(),
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
    let event: objects::Event =
        serde_json::from_slice(&store.read(&state.event.key).unwrap()).unwrap();
    assert!(event.previous.is_some(), "the unyank follows the yank");
    assert_eq!(latest_130(&catalog).await.id, newest.id);
    assert!(errors(&verify(&catalog).await).is_empty());
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
    catalog
        .publish(&[
            entry("0.3.1", Some("1.30.1")),
            entry::prepare(&no_regions, &options()).unwrap(),
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
        found.entry.kubernetes_version.as_deref(),
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
async fn latest_reads_only_the_newest_versions_shards() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    let batch: Vec<Entry> = (1..=9)
        .map(|p| entry(&format!("0.3.{p}"), Some(&format!("1.30.{p}"))))
        .collect();
    catalog.publish(&batch).await.unwrap();
    let root = root_of(&store);
    let shards = shard_refs(&store, &root);
    assert_eq!(shards.len(), 9);
    assert_eq!(root.sections.len(), 1, "one minor and OS");
    // Damage every shard but the newest: latest still answers, from the newest alone.
    for (name, s) in &shards {
        if name != "1.30.9/ubuntu-2404" {
            store.overwrite(&s.key, b"damaged".to_vec());
        }
    }
    let found = catalog.latest(&filter_k8s("1.30")).await.unwrap().unwrap();
    assert_eq!(found.entry.kubernetes_version.as_deref(), Some("1.30.9"));
}

// ---- Rebuild and verify -------------------------------------------------------------------------

fn sorted(mut v: Vec<IndexEntry>) -> Vec<IndexEntry> {
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
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
        .entry
        .id;
    catalog.yank(&id, true, Some("broken")).await.unwrap();
    let before = sorted(catalog.list(&all()).await.unwrap());
    let report = verify(&catalog).await;
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    // Lost: the index is derived data.
    store.remove(INDEX_KEY);
    let rebuilt = rebuild(&catalog).await;
    assert!(rebuilt.findings.is_empty(), "{:#?}", rebuilt.findings);
    assert_eq!(
        sorted(catalog.list(&all()).await.unwrap()),
        before,
        "every field, yank and revision included"
    );
    let report = verify(&catalog).await;
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert_eq!((report.images, report.yanked), (2, 1));
    // Corrupt: replaced whatever is there.
    store.overwrite(INDEX_KEY, b"{ lost half of it".to_vec());
    assert!(matches!(
        catalog.list(&all()).await,
        Err(CatalogError::Corrupt { .. })
    ));
    rebuild(&catalog).await;
    assert_eq!(catalog.list(&all()).await.unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn verify_finds_altered_objects_a_lying_index_bad_yanks_stale_pointers_and_orphans() {
    let (store, catalog) = two_images().await;
    let listed = catalog.list(&all()).await.unwrap();
    // A template altered in place.
    store.overwrite(
        &listed[0].objects["template"].key,
        b"kind: Tampered\n".to_vec(),
    );
    // A shard (and root) that says another region than the record, and a yank state with no
    // event behind it.
    let mut root = root_of(&store);
    let name = listed[1].shard_name();
    let mut shard = shard_in(&store, &root, &name);
    shard.images[0].regions = vec!["antarctica".into()];
    shard.images[0].yank = Some(index::YankState {
        yanked: true,
        reason: None,
        at: "t".into(),
        event: objects::object_ref(&shard.images[0].id, objects::Kind::Event, b"none"),
    });
    plant_shard(&store, &mut root, &name, &shard);
    // A pointer that serves something else.
    let pointer_key = pointer_of(&store, &root, "1.30/ubuntu-2404");
    let mut pointer: Latest = serde_json::from_slice(&store.read(&pointer_key).unwrap()).unwrap();
    pointer.image.as_mut().unwrap().id = "forged".into();
    store.overwrite(&pointer_key, serde_json::to_vec(&pointer).unwrap());
    // An image whose publish never reached its revision (a warning: nothing reads it).
    let orphan = entry("0.3.3", None);
    store.overwrite(&orphan.record_ref().key, orphan.record_bytes.clone());
    let report = verify(&catalog).await;
    for (kind, severity, needle) in [
        (K::Data, S::Error, "does not match the sha256"),
        (K::Data, S::Error, "regions"),
        (K::Data, S::Error, "newest event"),
        (K::Data, S::Error, "latest/1.30/ubuntu-2404.json"),
        (K::Orphan, S::Warning, &orphan.id),
    ] {
        assert!(
            has(&report, kind, severity, needle),
            "{needle}: {:#?}",
            report.findings
        );
    }
    assert_eq!(report.fault(), Some(crate::fault::Fault::CatalogData));
}

#[tokio::test(start_paused = true)]
async fn rebuild_never_drops_an_image_silently_and_verify_says_what_rebuild_would_do() {
    let (store, catalog) = two_images().await;
    let listed = catalog.list(&all()).await.unwrap();
    let (a, b) = (&listed[0], &listed[1]);
    // a loses its template; b's record gets a flipped byte.
    store.remove(&a.objects["template"].key);
    let mut bytes = store.read(&b.objects["record"].key).unwrap();
    bytes[10] ^= 1;
    store.overwrite(&b.objects["record"].key, bytes);
    let before = verify(&catalog).await;
    assert!(has(&before, K::Data, S::Error, &a.objects["template"].key));
    assert!(has(&before, K::Data, S::Error, &b.objects["record"].key));
    assert!(
        has(&before, K::Data, S::Error, "leave it out if none is whole"),
        "the hint says what rebuild does: {:#?}",
        before.findings
    );
    let rebuilt = rebuild(&catalog).await;
    assert_eq!(rebuilt.images, 0);
    for id in [&a.id, &b.id] {
        assert!(
            rebuilt.findings.iter().any(|f| f.severity == S::Error
                && f.subject == **id
                && f.problem.contains("left out")),
            "{id} is named: {:#?}",
            rebuilt.findings
        );
    }
    assert_eq!(
        crate::fault::Fault::worst_of(rebuilt.findings.iter().map(crate::Classify::fault)),
        Some(crate::fault::Fault::CatalogData),
        "a non-zero exit"
    );
    // And verify afterwards does not claim rebuild would add them.
    let after = verify(&catalog).await;
    assert!(
        !after
            .findings
            .iter()
            .any(|f| f.problem.contains("would add it")),
        "{:#?}",
        after.findings
    );
    assert!(has(&after, K::Data, S::Error, "would leave out"));
}

// ---- Trust: what someone who can write the container but holds no key can do ----------------

/// A key made by ssh-keygen: its private key (PEM) and a trust file naming it.
fn keypair(name: &str) -> (Vec<u8>, signing::Trust) {
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
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (
        std::fs::read(&path).unwrap(),
        signing::Trust::parse("allowed", &format!("{name} {public}")).unwrap(),
    )
}

fn signer(pem: &[u8]) -> signing::Signer {
    signing::Signer::from_openssh("k", pem, None).unwrap()
}

/// A signed catalog with two images (1.30.1 and 1.30.2), its publisher's key, and the trust
/// file readers use.
struct Signed {
    store: MemoryStore,
    key: Vec<u8>,
    trust: signing::Trust,
    state: tempfile::TempDir,
}

async fn signed() -> Signed {
    let (key, trust) = keypair("ci");
    let s = Signed {
        store: MemoryStore::new(),
        key,
        trust,
        state: tempfile::tempdir().unwrap(),
    };
    s.publisher()
        .publish(&[
            entry("0.3.1", Some("1.30.1")),
            entry("0.3.2", Some("1.30.2")),
        ])
        .await
        .unwrap();
    s
}

impl Signed {
    /// The publisher: signs, trusts its key, remembers what it wrote.
    fn publisher(&self) -> Catalog<MemoryStore> {
        Catalog::new(self.store.clone())
            .with_signer(signer(&self.key))
            .with_trust(self.trust.clone())
            .with_state(StateDir::new(self.state.path().join("publisher")))
    }

    /// A reader with its own state (`name` tells readers apart).
    fn reader(&self, name: &str) -> Catalog<MemoryStore> {
        Catalog::new(self.store.clone())
            .with_trust(self.trust.clone())
            .with_state(StateDir::new(self.state.path().join(name)))
    }

    /// A reader with no state at all (a fresh CI runner).
    fn stateless(&self) -> Catalog<MemoryStore> {
        Catalog::new(self.store.clone()).with_trust(self.trust.clone())
    }

    /// The root and its signatures, as an attacker would copy them aside.
    fn saved(&self) -> Vec<(String, Vec<u8>)> {
        self.store
            .keys()
            .into_iter()
            .filter(|k| k == INDEX_KEY || k.starts_with("signatures/") || k == "index.json.sig")
            .map(|k| (k.clone(), self.store.read(&k).unwrap()))
            .collect()
    }

    fn put_back(&self, saved: &[(String, Vec<u8>)]) {
        for (k, v) in saved {
            self.store.overwrite(k, v.clone());
        }
    }

    async fn newest(&self, reader: &Catalog<MemoryStore>) -> IndexEntry {
        reader
            .latest(&filter_k8s("1.30"))
            .await
            .unwrap()
            .unwrap()
            .entry
    }
}

fn distrust(err: CatalogError) -> Distrust {
    match err {
        CatalogError::Untrusted { problem, .. } => problem,
        other => panic!("not untrusted: {other:?}"),
    }
}

#[tokio::test]
async fn attack_1_a_rolled_back_index_is_refused_by_readers_and_writers_that_saw_a_newer_one() {
    let s = signed().await;
    let reader = s.reader("reader");
    let newest = s.newest(&reader).await;
    let saved = s.saved();
    s.publisher()
        .yank(&newest.id, true, Some("CVE"))
        .await
        .unwrap();
    assert_ne!(
        s.newest(&reader).await.id,
        newest.id,
        "the reader sees the yank"
    );
    // The attacker puts the old, validly signed index back.
    s.put_back(&saved);
    assert!(matches!(
        distrust(reader.latest(&filter_k8s("1.30")).await.unwrap_err()),
        Distrust::Rollback { .. }
    ));
    // The publisher refuses to sign on top of it (which would undo the yank).
    assert!(matches!(
        distrust(
            s.publisher()
                .publish(&[entry("0.3.3", Some("1.30.3"))])
                .await
                .unwrap_err()
        ),
        Distrust::Rollback { .. }
    ));
    // A reader with no state pins a minimum instead.
    let root = root_of(&s.store);
    let pinned = s.stateless().with_min_sequence(root.sequence + 1);
    assert!(matches!(
        distrust(pinned.list(&all()).await.unwrap_err()),
        Distrust::BelowMinimum { .. }
    ));
    // verify sees the evidence: an event written under a later sequence than the index
    // (minutes ago and one write ahead: said as what a publish in progress also looks like;
    // older, or further ahead, an error).
    let report = verify(&s.stateless()).await;
    assert!(
        has(&report, K::Freshness, S::Warning, "rolled back"),
        "{:#?}",
        report.findings
    );
    assert!(super::verify::written_after(
        root.sequence + 1,
        "2026-01-01T00:00:00.000Z",
        root.sequence
    ));
    assert!(super::verify::written_after(
        root.sequence + 2,
        &entry::now_rfc3339(),
        root.sequence
    ));
    // rebuild-index recovers, above every sequence seen, with the yank.
    let rebuilt = rebuild(&s.publisher()).await;
    assert!(rebuilt.sequence > root.sequence + 1);
    assert_ne!(s.newest(&reader).await.id, newest.id, "the yank survived");
    assert!(errors(&verify(&reader).await).is_empty());
}

#[tokio::test]
async fn attack_2_a_deleted_index_is_refused_and_never_restarted_empty() {
    let s = signed().await;
    let reader = s.reader("reader");
    s.newest(&reader).await;
    s.store.remove(INDEX_KEY);
    // A reader that saw it, a publisher that wrote it: gone, not empty.
    assert!(matches!(
        distrust(reader.list(&all()).await.unwrap_err()),
        Distrust::Gone { .. }
    ));
    assert!(matches!(
        distrust(
            s.publisher()
                .publish(&[entry("0.3.3", None)])
                .await
                .unwrap_err()
        ),
        Distrust::Gone { .. }
    ));
    // Without any state: the objects are there, so it is lost, not empty; a writer does not
    // start a new index that would hide every image.
    assert!(matches!(
        s.stateless().list(&all()).await,
        Err(CatalogError::Corrupt { .. })
    ));
    let fresh_writer = Catalog::new(s.store.clone())
        .with_signer(signer(&s.key))
        .with_trust(s.trust.clone());
    let err = fresh_writer
        .publish(&[entry("0.3.3", None)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rebuild-index"), "{err}");
    // rebuild-index is the way back: every image is there again.
    rebuild(&s.publisher()).await;
    assert_eq!(reader.list(&all()).await.unwrap().len(), 2);
}

/// What an attacker writes: an object and no signature (or one by their own key).
fn plant(store: &MemoryStore, id: &str, kind: objects::Kind, bytes: &[u8]) -> String {
    let r = objects::object_ref(id, kind, bytes);
    store.overwrite(&r.key, bytes.to_vec());
    r.key
}

#[tokio::test]
async fn attack_3_forged_revisions_and_events_are_named_and_never_adopted() {
    let s = signed().await;
    let reader = s.reader("reader");
    let victim = s.newest(&reader).await;
    // A revision pointing at a template edited to another gallery.
    let template = String::from_utf8(s.store.read(&victim.objects["template"].key).unwrap())
        .unwrap()
        .replace("ClusterAPI1721036000abcd", "EvilGallery");
    let forged_template = plant(
        &s.store,
        &victim.id,
        objects::Kind::Template,
        template.as_bytes(),
    );
    let (rev, rev_bytes) = entry::revision(
        &victim.id,
        &victim.objects["record"],
        &objects::object_ref(&victim.id, objects::Kind::Template, template.as_bytes()),
        "2099-01-01T00:00:00.000Z",
        9999,
        None,
    );
    let forged_revision = plant(&s.store, &victim.id, objects::Kind::Revision, &rev_bytes);
    assert_eq!(forged_revision, rev.key);
    let _ = forged_template;
    // verify names it.
    let report = verify(&reader).await;
    assert!(
        has(&report, K::Signature, S::Error, &forged_revision),
        "{:#?}",
        report.findings
    );
    // rebuild-index leaves it out, names it, and signs nothing of it.
    let rebuilt = rebuild(&s.publisher()).await;
    assert!(
        rebuilt
            .findings
            .iter()
            .any(|f| f.subject == forged_revision && f.problem.contains("never adopted"))
    );
    assert!(
        s.store.read(&objects::sig_key(&forged_revision)).is_none(),
        "not signed"
    );
    let served = s.newest(&reader).await;
    assert_eq!(served.objects["template"], victim.objects["template"]);
    let template = reader.object(&served, "template").await.unwrap();
    assert!(!String::from_utf8_lossy(&template).contains("EvilGallery"));
    // A forged unyank of a yanked image.
    s.publisher()
        .yank(&victim.id, true, Some("CVE"))
        .await
        .unwrap();
    let head = reader
        .show(&victim.id)
        .await
        .unwrap()
        .unwrap()
        .entry
        .yank
        .unwrap();
    let mut unyank = objects::Event::new(
        &victim.id,
        objects::Change::Unyank,
        Some("trust me".into()),
        "2099-01-01T00:00:00.000Z",
        1,
    );
    unyank.previous = Some(head.event.key.clone());
    let forged_event = plant(
        &s.store,
        &victim.id,
        objects::Kind::Event,
        &serde_json::to_vec(&unyank).unwrap(),
    );
    let report = verify(&reader).await;
    assert!(
        has(&report, K::Signature, S::Error, &forged_event),
        "{:#?}",
        report.findings
    );
    rebuild(&s.publisher()).await;
    assert_ne!(s.newest(&reader).await.id, victim.id, "still yanked");
    // Signed by a key the trust file does not list: the same.
    let (mallory, _) = keypair("mallory");
    let catalog = Catalog::new(s.store.clone()).with_signer(signer(&mallory));
    let err = catalog
        .publish(&[entry("0.6.6", Some("1.30.9"))])
        .await
        .unwrap_err();
    assert!(
        matches!(distrust(err), Distrust::Signature(_)),
        "a stranger's key cannot write on top"
    );
}

#[tokio::test]
async fn a_writer_without_the_key_cannot_point_readers_at_another_image() {
    let s = signed().await;
    let reader = s.reader("reader");
    let before = s.newest(&reader).await;
    // Someone with write access to the container but no key edits a shard and the root.
    let mut root = root_of(&s.store);
    let name = before.shard_name();
    let mut shard = shard_in(&s.store, &root, &name);
    shard.images[0].gallery_image_version = Some("6.6.6".into());
    plant_shard(&s.store, &mut root, &name, &shard);
    assert!(matches!(
        distrust(reader.latest(&filter_k8s("1.30")).await.unwrap_err()),
        Distrust::Signature(signing::Untrusted::Mismatch(_))
    ));
    // A writer without a key refuses to strip the signature; one with another key cannot
    // sign on top (the reader would refuse it anyway).
    let unsigned = Catalog::new(s.store.clone());
    assert!(matches!(
        unsigned.publish(&[entry("0.3.9", None)]).await,
        Err(CatalogError::Settings { .. })
    ));
    // A writer that trusts signed catalogs but has no key is a settings error before it reads.
    let cannot_sign = Catalog::new(s.store.clone()).with_trust(s.trust.clone());
    assert!(matches!(
        cannot_sign.publish(&[entry("0.3.9", None)]).await,
        Err(CatalogError::Settings { .. })
    ));
}

#[tokio::test]
async fn attack_4_and_7_racing_yanks_leave_a_consistent_chain_and_true_outcomes() {
    let s = signed().await;
    let id = s.newest(&s.stateless()).await.id;
    for round in 0..15 {
        let mut tasks = Vec::new();
        for yanked in [true, false, true] {
            let catalog = s.publisher();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                (
                    yanked,
                    catalog.yank(&id, yanked, Some("race")).await.unwrap(),
                )
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let state = s
            .stateless()
            .show(&id)
            .await
            .unwrap()
            .unwrap()
            .entry
            .is_yanked();
        // What each said is true: a Done is a state the image was put in; AlreadySo means it
        // was in that state when the writer looked last.
        for (yanked, outcome) in &outcomes {
            if let YankOutcome::Done(st) = outcome {
                assert_eq!(st.yanked, *yanked);
            }
        }
        let report = verify(&s.stateless()).await;
        assert!(
            errors(&report).is_empty(),
            "round {round}: {:#?} {outcomes:?} {state}",
            report.findings
        );
    }
}

#[tokio::test]
async fn an_expired_index_is_refused_and_refresh_moves_it_forward() {
    let s = signed().await;
    let reader = s.reader("reader");
    assert_eq!(reader.list(&all()).await.unwrap().len(), 2);
    // Re-signed with no validity left: expired at once.
    s.publisher()
        .with_validity(Duration::ZERO)
        .refresh(false)
        .await
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert!(matches!(
        distrust(reader.list(&all()).await.unwrap_err()),
        Distrust::Expired { .. }
    ));
    // A writer refuses it too, unless refresh is told to accept it.
    assert!(matches!(
        distrust(s.publisher().refresh(false).await.unwrap_err()),
        Distrust::Expired { .. }
    ));
    let sequence = s.publisher().refresh(true).await.unwrap();
    assert_eq!(reader.list(&all()).await.unwrap().len(), 2);
    let root = root_of(&s.store);
    assert_eq!(root.sequence, sequence);
    // Pointers were re-signed with the root.
    let pointer: Latest = serde_json::from_slice(
        &s.store
            .read(&pointer_of(&s.store, &root, "1.30/ubuntu-2404"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(pointer.catalog_sequence, sequence);
    assert_eq!(pointer.expires, root.expires);
}

#[tokio::test]
async fn each_signed_root_has_its_signature_before_it_is_visible_and_objects_their_own() {
    let s = signed().await;
    let catalog = s.publisher();
    for n in 3..6 {
        catalog
            .publish(&[entry(&format!("0.3.{n}"), None)])
            .await
            .unwrap();
        let bytes = s.store.read(INDEX_KEY).unwrap();
        assert!(
            s.store
                .read(&objects::signature_key(&objects::sha256(&bytes)))
                .is_some()
        );
    }
    for e in catalog.list(&all()).await.unwrap() {
        let rev = &e.objects["revision"];
        assert!(
            s.store.read(&objects::sig_key(&rev.key)).is_some(),
            "{}",
            rev.key
        );
    }
    let report = verify(&s.reader("r")).await;
    assert!(
        report.signature.starts_with("signed by ci"),
        "{}",
        report.signature
    );
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[tokio::test]
async fn an_old_signed_catalog_is_upgraded_once_and_an_unsigned_one_adopted_only_when_asked() {
    // Layout 3, signed the old way: readers with trust refuse it until it is upgraded.
    let store = MemoryStore::new();
    let (key, trust) = keypair("ci");
    let a = entry("0.3.1", Some("1.30.1"));
    for (r, b) in [
        (a.record_ref(), &a.record_bytes),
        (a.template_ref(), &a.template_bytes),
    ] {
        store.overwrite(&r.key, b.to_vec());
    }
    let (rev, rev_bytes) = entry::revision(
        &a.id,
        &a.record_ref(),
        &a.template_ref(),
        "2026-01-01T00:00:00.000Z",
        0,
        None,
    );
    store.overwrite(&rev.key, rev_bytes);
    let legacy = serde_json::json!({"layout": 3, "images": [a.index_entry(rev.clone(), "2026-01-01T00:00:00.000Z".into())]});
    let bytes = serde_json::to_vec(&legacy).unwrap();
    store.overwrite(INDEX_KEY, bytes.clone());
    store.overwrite(
        &objects::signature_key(&objects::sha256(&bytes)),
        signer(&key).sign(&bytes).into_bytes(),
    );
    let reader = Catalog::new(store.clone()).with_trust(trust.clone());
    assert!(matches!(
        distrust(reader.list(&all()).await.unwrap_err()),
        Distrust::OldLayout { layout: 3 }
    ));
    let writer = Catalog::new(store.clone())
        .with_signer(signer(&key))
        .with_trust(trust.clone());
    let rebuilt = rebuild(&writer).await;
    assert!(
        rebuilt
            .findings
            .iter()
            .any(|f| f.kind == K::Adopted && f.subject == rev.key),
        "{:#?}",
        rebuilt.findings
    );
    assert_eq!(reader.list(&all()).await.unwrap().len(), 1);
    assert!(errors(&verify(&reader).await).is_empty());

    // A catalog that was never signed: a signing writer refuses it; --adopt-unsigned signs it,
    // naming what it signs.
    let store = MemoryStore::new();
    Catalog::new(store.clone())
        .publish(&[entry("0.3.1", Some("1.30.1"))])
        .await
        .unwrap();
    let writer = Catalog::new(store.clone())
        .with_signer(signer(&key))
        .with_trust(trust.clone());
    assert!(matches!(
        distrust(writer.publish(&[entry("0.3.2", None)]).await.unwrap_err()),
        Distrust::Signature(signing::Untrusted::Unsigned)
    ));
    let rebuilt = writer
        .rebuild_index(Adoption::unsigned(true), &quiet)
        .await
        .unwrap();
    assert!(rebuilt.findings.iter().any(|f| f.kind == K::Adopted));
    let reader = Catalog::new(store.clone()).with_trust(trust);
    assert_eq!(reader.list(&all()).await.unwrap().len(), 1);
    assert!(errors(&verify(&reader).await).is_empty());
}

/// A build without the `azure` feature says which feature an Azure location needs.
#[cfg(not(feature = "azure"))]
#[test]
fn azure_locations_name_the_missing_feature() {
    let Err(e) = super::open_store("azblob://acct/images") else {
        panic!("opened an Azure store without the azure feature");
    };
    assert!(e.to_string().contains("`azure` feature"), "{e}");
}

mod lifecycle;

/// Copies the event objects (and their signatures) of image `id` from one store to another
/// that does not have them: what an attacker who can write both containers does.
fn copy_events(from: &MemoryStore, to: &MemoryStore, id: &str) -> Vec<String> {
    let prefix = format!("images/{id}/event-");
    let mut copied = Vec::new();
    for k in from.keys() {
        if k.starts_with(&prefix) && to.read(&k).is_none() {
            to.overwrite(&k, from.read(&k).unwrap());
            copied.push(k);
        }
    }
    copied
}

#[tokio::test]
async fn attack_8_events_copied_from_another_catalog_signed_by_the_same_key_are_foreign() {
    // Catalog A yanks its newest image; catalog B (the same key) has a longer chain for the
    // same image that ends in service.
    let s = signed().await;
    let reader = s.reader("reader");
    let newest = s.newest(&reader).await;
    s.publisher()
        .yank(&newest.id, true, Some("CVE"))
        .await
        .unwrap();
    let b = MemoryStore::new();
    let other = Catalog::new(b.clone())
        .with_signer(signer(&s.key))
        .with_trust(s.trust.clone());
    other
        .publish(&[entry("0.3.2", Some("1.30.2"))])
        .await
        .unwrap();
    for yanked in [true, false, true, false] {
        other.yank(&newest.id, yanked, None).await.unwrap();
    }
    let copied = copy_events(&b, &s.store, &newest.id);
    assert_eq!(copied.len(), 4 * 2, "events and their signatures");

    // verify names each foreign event; rebuild leaves them out and the yank stands.
    let report = verify(&s.stateless()).await;
    for k in copied.iter().filter(|k| !k.ends_with(".sig")) {
        assert!(
            has(&report, K::Signature, S::Error, "another catalog")
                && report.findings.iter().any(|f| &f.subject == k),
            "{k}: {:#?}",
            report.findings
        );
    }
    let rebuilt = rebuild(&s.publisher()).await;
    assert_eq!(
        rebuilt
            .findings
            .iter()
            .filter(|f| f.problem.contains("another catalog"))
            .count(),
        4,
        "{:#?}",
        rebuilt.findings
    );
    assert_eq!(
        s.newest(&reader).await.kubernetes_version.as_deref(),
        Some("1.30.1"),
        "the yanked image stays yanked"
    );

    // With no trusted root and no state, nothing says which catalog this is: the objects
    // disagree, so rebuild asks for --catalog-id rather than pick one.
    let id = root_of(&s.store).catalog_id.unwrap();
    s.store.remove(INDEX_KEY);
    let fresh = || {
        Catalog::new(s.store.clone())
            .with_signer(signer(&s.key))
            .with_trust(s.trust.clone())
    };
    let err = fresh()
        .rebuild_index(Adoption::default(), &quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CatalogError::Settings { .. }) && err.to_string().contains("--catalog-id"),
        "{err}"
    );
    // A wrong pin would leave every image out: refused, nothing written.
    let err = fresh()
        .with_catalog_id("00000000000000000000000000000000")
        .rebuild_index(Adoption::default(), &quiet)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wrong --catalog-id"), "{err}");
    assert!(s.store.read(INDEX_KEY).is_none());
    rebuild(&fresh().with_catalog_id(id)).await;
    assert!(
        s.stateless()
            .latest(&filter_k8s("1.30"))
            .await
            .unwrap()
            .unwrap()
            .entry
            .id
            != newest.id
    );
}

#[tokio::test]
async fn attack_4_a_deleted_newest_event_never_undoes_what_it_did() {
    let s = signed().await;
    let reader = s.reader("reader");
    let newest = s.newest(&reader).await;
    let publisher = s.publisher();
    publisher.yank(&newest.id, true, Some("CVE")).await.unwrap();
    publisher.yank(&newest.id, false, None).await.unwrap();
    publisher
        .yank(&newest.id, true, Some("CVE, again"))
        .await
        .unwrap();
    let entry = publisher.show(&newest.id).await.unwrap().unwrap().entry;
    let head = entry.head_event().unwrap().key.clone();
    s.store.remove(&head);
    s.store.remove(&objects::sig_key(&head));
    // verify says so, and what rebuild will do.
    let report = verify(&s.stateless()).await;
    assert!(
        has(&report, K::Data, S::Error, "leaves the image out"),
        "{:#?}",
        report.findings
    );
    // rebuild does not fold the chain without it (that would put the image back in service).
    left_out_for_its_lost_event(&rebuild(&publisher).await, &newest.id, &head);
    assert_eq!(
        s.newest(&reader).await.kubernetes_version.as_deref(),
        Some("1.30.1")
    );
    assert!(reader.show(&newest.id).await.unwrap().is_none());
}

#[tokio::test]
async fn verify_names_a_pointer_the_index_does_not() {
    let (store, catalog) = two_images().await;
    store.overwrite(
        "latest/1.99/ubuntu-2404.json",
        br#"{"schema":"sigcat.latest/v1","image":{"id":"evil"}}"#.to_vec(),
    );
    let report = verify(&catalog).await;
    assert!(
        report.findings.iter().any(|f| f.kind == K::Orphan
            && f.severity == S::Warning
            && f.subject == "latest/1.99/ubuntu-2404.json"),
        "{:#?}",
        report.findings
    );
}

#[tokio::test]
async fn attack_4_a_rollback_or_a_lost_shard_never_hides_a_deleted_newest_event() {
    // Rolled back, and the yank's event deleted: the publisher's state kept the root it wrote,
    // which names that event; rebuild leaves the image out rather than un-yank it.
    let s = signed().await;
    let reader = s.reader("reader");
    let newest = s.newest(&reader).await;
    let saved = s.saved();
    let publisher = s.publisher();
    publisher.yank(&newest.id, true, Some("CVE")).await.unwrap();
    let head = publisher
        .show(&newest.id)
        .await
        .unwrap()
        .unwrap()
        .entry
        .head_event()
        .unwrap()
        .key
        .clone();
    s.put_back(&saved);
    s.store.remove(&head);
    s.store.remove(&objects::sig_key(&head));
    left_out_for_its_lost_event(&rebuild(&publisher).await, &newest.id, &head);
    assert_eq!(
        s.newest(&s.reader("after"))
            .await
            .kubernetes_version
            .as_deref(),
        Some("1.30.1")
    );

    // The signed root untouched, but the shard that names the event deleted with it: nothing
    // left to check against, so rebuild refuses unless told, and then names what it could not
    // check.
    let s = signed().await;
    let reader = s.reader("reader");
    let newest = s.newest(&reader).await;
    let publisher = s.publisher();
    publisher.yank(&newest.id, true, Some("CVE")).await.unwrap();
    let entry = publisher.show(&newest.id).await.unwrap().unwrap().entry;
    let head = entry.head_event().unwrap().key.clone();
    s.store.remove(&head);
    s.store.remove(&objects::sig_key(&head));
    let root = root_of(&s.store);
    s.store
        .remove(&shard_refs(&s.store, &root)[&entry.shard_name()].key);
    let err = publisher
        .rebuild_index(Adoption::default(), &quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CatalogError::Corrupt { .. })
            && err.to_string().contains("--accept-unverified"),
        "{err}"
    );
    let accept = Adoption {
        accept_unverified: true,
        ..Default::default()
    };
    let rebuilt = publisher.rebuild_index(accept, &quiet).await.unwrap();
    assert!(
        rebuilt
            .findings
            .iter()
            .any(|f| f.subject == newest.id && f.problem.contains("unchecked")),
        "{:#?}",
        rebuilt.findings
    );
}

/// Rebuild named image `id` as left out because its newest event `head` is gone.
fn left_out_for_its_lost_event(rebuilt: &super::rebuild::Rebuilt, id: &str, head: &str) {
    assert!(
        rebuilt
            .findings
            .iter()
            .any(|f| f.severity == S::Error && f.subject == id && f.problem.contains(head)),
        "{:#?}",
        rebuilt.findings
    );
}

/// A pending change (group commit) planted by someone who can write the container, naming a
/// shard they wrote: never committed unless a trusted key signed it in the last two minutes,
/// and never removed either (it is not the writer's to judge). Another writer commits only
/// the changes of the last 10 s; older ones are left to their own publishers. A trusted, fresh one with the
/// same shape is committed: what shows the planted ones were refused for their signature.
// Real time: the rivals run inside a root write, whose tries are cut at 10 s.
#[tokio::test]
async fn planted_pending_changes_are_never_committed() {
    use super::conformance::{Rival, Rivals};
    use super::pending::{PENDING_SCHEMA, Pending, ShardChange};
    let s = signed().await;
    let root: Root = serde_json::from_slice(&s.store.read(INDEX_KEY).unwrap()).unwrap();
    let template = s.store.entries().remove(0);
    let (mallory, _) = keypair("mallory");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // A shard of one image (a copy of a real entry, moved to another version), and the
    // pending change that would put it in the catalog.
    let plant_named = |kubernetes: &str,
                       written_at_ms: u64,
                       named_at_ms: u64,
                       sign_with: Option<&[u8]>|
     -> String {
        let mut e = template.clone();
        e.kubernetes_version = Some(kubernetes.into());
        let name = e.shard_name();
        let shard = index::Shard {
            images: vec![e.clone()],
            ..index::Shard::new(&name)
        };
        let bytes = serde_json::to_vec_pretty(&shard).unwrap();
        let sha = objects::sha256(&bytes);
        let key = format!("shards/{name}-{}.json", &sha[..16]);
        s.store.overwrite(&key, bytes);
        let pending = Pending {
            schema: PENDING_SCHEMA.into(),
            catalog_id: root.catalog_id.clone(),
            written_at_ms,
            shards: vec![ShardChange {
                name,
                base: None,
                new: Some(index::ShardRef {
                    key,
                    sha256: sha,
                    images: 1,
                    os_types: Default::default(),
                    definitions: Default::default(),
                    galleries: Default::default(),
                    extra: Default::default(),
                }),
            }],
            reads: Vec::new(),
            anchors: Vec::new(),
            offers: vec![e],
        };
        let bytes = serde_json::to_vec_pretty(&pending).unwrap();
        let key = format!("pending/{named_at_ms:013}-{kubernetes}.json");
        if let Some(pem) = sign_with {
            let sig = signer(pem).sign(&bytes);
            s.store.overwrite(&objects::sig_key(&key), sig.into_bytes());
        }
        s.store.overwrite(&key, bytes);
        key
    };
    let plant = |kubernetes: &str, written_at_ms: u64, sign_with: Option<&[u8]>| -> String {
        plant_named(kubernetes, written_at_ms, now_ms, sign_with)
    };
    let unsigned = plant("1.29.1", now_ms, None);
    let forged = plant("1.29.2", now_ms, Some(&mallory));
    let old = plant("1.29.3", now_ms - 5 * 60 * 1000, Some(&s.key));
    // A contended publish: the legitimate publisher gets in first, so this one goes the
    // group-commit way and reads what is pending.
    let contended = |version: &'static str, rival_version: &'static str| {
        let queue = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let rival = s.publisher();
        let r: Rival = Box::new(move || {
            Box::pin(async move {
                rival
                    .publish(&[entry(rival_version, Some("1.30.9"))])
                    .await
                    .unwrap();
            })
        });
        queue.lock().unwrap().push_back(r);
        let c = Catalog::new(Rivals {
            inner: s.store.clone(),
            queue,
        })
        .with_group_commit(true)
        .with_signer(signer(&s.key))
        .with_trust(s.trust.clone())
        .with_state(StateDir::new(s.state.path().join("contended")));
        async move { c.publish(&[entry(version, Some("1.30.3"))]).await.unwrap() }
    };
    let out = contended("0.3.3", "0.3.9").await;
    assert!(
        matches!(out.as_slice(), [Outcome::Published { .. }]),
        "{out:?}"
    );
    let versions = |store: &MemoryStore| -> Vec<String> {
        store
            .entries()
            .into_iter()
            .filter_map(|e| e.kubernetes_version)
            .collect()
    };
    let held = versions(&s.store);
    assert!(held.contains(&"1.30.3".to_string()), "{held:?}");
    assert!(held.contains(&"1.30.9".to_string()), "{held:?}");
    assert!(!held.iter().any(|v| v.starts_with("1.29")), "{held:?}");
    for key in [&unsigned, &forged, &old] {
        assert!(s.store.read(key).is_some(), "{key} was removed");
    }
    assert!(errors(&verify(&s.reader("after")).await).is_empty());
    // The control: the same shape, signed by the publisher's key now, is committed; signed
    // 30 s ago, it is left to its own publisher (and left where it is).
    let trusted = plant("1.29.4", now_ms, Some(&s.key));
    let earlier = plant_named("1.29.5", now_ms - 30_000, now_ms - 30_000, Some(&s.key));
    contended("0.3.4", "0.3.8").await;
    let held = versions(&s.store);
    assert!(held.contains(&"1.29.4".to_string()), "{held:?}");
    assert!(!held.contains(&"1.29.5".to_string()), "{held:?}");
    assert!(s.store.read(&earlier).is_some(), "{earlier} was removed");
    let root: Root = serde_json::from_slice(&s.store.read(INDEX_KEY).unwrap()).unwrap();
    assert!(root.pending_committed.contains(&trusted), "named committed");
    for key in [&unsigned, &forged, &old] {
        assert!(!root.pending_committed.contains(key), "{key}");
    }
    assert!(
        !held
            .iter()
            .any(|v| ["1.29.1", "1.29.2", "1.29.3"].contains(&v.as_str()))
    );
}

/// A publisher whose pending change another writer committed, and whose shard a yank then
/// changed before it looked, merges again: it finds its own revision there and still says
/// `published` (not `unchanged`), and the yank stays.
// Real time: the rivals run inside a root write, whose tries are cut at 10 s.
#[tokio::test]
async fn a_change_committed_by_another_writer_keeps_its_outcome() {
    use super::conformance::{Rival, Rivals};
    let store = MemoryStore::new();
    // Not empty: a rival that finds objects and no root waits for the first publish to end.
    Catalog::new(store.clone())
        .publish(&[entry("0.6.9", Some("1.36.9"))])
        .await
        .unwrap();
    let queue = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let rivals = Rivals {
        inner: store.clone(),
        queue: queue.clone(),
    };
    let x = entry("0.7.0", Some("1.37.0"));
    let x_id = x.id.clone();
    let plain = store.clone();
    let first: Rival = Box::new(move || {
        Box::pin(async move {
            Catalog::new(plain)
                .publish(&[entry("0.7.1", Some("1.37.1"))])
                .await
                .unwrap();
        })
    });
    // Before A's second root write: B loses its own first round, commits A's pending change
    // with its own, and then X is yanked.
    let (b_store, plain, id) = (
        Rivals {
            inner: store.clone(),
            queue: queue.clone(),
        },
        store.clone(),
        x_id.clone(),
    );
    let second: Rival = Box::new(move || {
        Box::pin(async move {
            Catalog::new(b_store)
                .with_group_commit(true)
                .publish(&[entry("0.7.2", Some("1.37.2"))])
                .await
                .unwrap();
            Catalog::new(plain)
                .yank(&id, true, Some("CVE-2026-0002"))
                .await
                .unwrap();
        })
    });
    let plain = store.clone();
    let third: Rival = Box::new(move || {
        Box::pin(async move {
            Catalog::new(plain)
                .publish(&[entry("0.7.3", Some("1.37.3"))])
                .await
                .unwrap();
        })
    });
    queue.lock().unwrap().extend([first, second, third]);
    let out = Catalog::new(rivals)
        .with_group_commit(true)
        .publish(&[x])
        .await
        .unwrap();
    assert_eq!(out, [Outcome::Published { id: x_id.clone() }]);
    let entries = store.entries();
    let x = entries.iter().find(|e| e.id == x_id).unwrap();
    assert!(x.is_yanked(), "the yank that came after stays");
    assert_eq!(entries.len(), 5, "{entries:?}");
    assert!(queue.lock().unwrap().is_empty());
}

/// Two publishers of one image with different Kubernetes versions (two shards), both losing a
/// round: the second to claim the image's anchor has looked at the first one's shard, and the
/// first one's claim is no longer current, so neither pending change is committed blindly.
/// One image lands once; the other publish is a conflict, as it is one after the other.
#[tokio::test]
async fn one_image_in_two_pending_changes_lands_once() {
    use super::conformance::{Rival, Rivals};
    let store = MemoryStore::new();
    Catalog::new(store.clone())
        .publish(&[entry("0.6.9", Some("1.36.9"))])
        .await
        .unwrap();
    let queue = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let plain_rival = |version: &'static str, kubernetes: &'static str| -> Rival {
        let plain = store.clone();
        Box::new(move || {
            Box::pin(async move {
                Catalog::new(plain)
                    .publish(&[entry(version, Some(kubernetes))])
                    .await
                    .unwrap();
            })
        })
    };
    let b_out = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (b_store, seen) = (
        Rivals {
            inner: store.clone(),
            queue: queue.clone(),
        },
        b_out.clone(),
    );
    let b: Rival = Box::new(move || {
        Box::pin(async move {
            let out = Catalog::new(b_store)
                .with_group_commit(true)
                .publish(&[entry("0.8.0", Some("1.38.2"))])
                .await
                .unwrap();
            *seen.lock().unwrap() = out;
        })
    });
    queue.lock().unwrap().extend([
        plain_rival("0.8.1", "1.38.5"),
        b,
        plain_rival("0.8.2", "1.38.6"),
    ]);
    let a = Catalog::new(Rivals {
        inner: store.clone(),
        queue: queue.clone(),
    })
    .with_group_commit(true);
    let a_out = a.publish(&[entry("0.8.0", Some("1.38.1"))]).await.unwrap();
    assert!(queue.lock().unwrap().is_empty(), "every rival ran");
    let b_out = b_out.lock().unwrap().clone();
    let outcomes = [a_out.as_slice(), b_out.as_slice()].concat();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Published { .. }))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Conflict(_)))
            .count(),
        1,
        "{outcomes:?}"
    );
    let copies = store
        .entries()
        .into_iter()
        .filter(|e| e.gallery_image_version.as_deref() == Some("0.8.0"))
        .count();
    assert_eq!(copies, 1);
    assert!(errors(&verify(&Catalog::new(store.clone())).await).is_empty());
}

/// Junk planted in `pending/` of a local catalog (a FIFO, a symlink to `/dev/zero`, a 1 GiB
/// sparse file, a directory, 200 files of `{}`) neither blocks nor fails a contended publish,
/// and is left where it is.
#[tokio::test]
async fn junk_in_pending_neither_blocks_nor_fails_a_publish() {
    use super::conformance::{Rival, Rivals};
    use super::local::LocalStore;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    Catalog::new(LocalStore::new(dir.path()))
        .publish(&[entry("0.9.0", Some("1.39.0"))])
        .await
        .unwrap();
    let pending = dir.path().join("pending");
    std::fs::create_dir_all(&pending).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let name = |what: &str| pending.join(format!("{now_ms:013}-{what}.json"));
    let fifo = std::ffi::CString::new(name("fifo").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/dev/zero", name("zero")).unwrap();
    std::fs::File::create(name("huge"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    std::fs::create_dir_all(name("dir")).unwrap();
    for i in 0..200 {
        std::fs::write(name(&format!("junk{i:03}")), b"{}").unwrap();
    }
    let planted: Vec<_> = std::fs::read_dir(&pending)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let root = dir.path().to_path_buf();
    let rival: Rival = Box::new(move || {
        Box::pin(async move {
            Catalog::new(LocalStore::new(root))
                .publish(&[entry("0.9.1", Some("1.39.1"))])
                .await
                .unwrap();
        })
    });
    queue.lock().unwrap().push_back(rival);
    let contended = Catalog::new(Rivals {
        inner: store,
        queue,
    })
    .with_group_commit(true);
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        contended.publish(&[entry("0.9.2", Some("1.39.2"))]),
    )
    .await
    .expect("a planted FIFO or /dev/zero never blocks a publish")
    .unwrap();
    assert!(
        matches!(out.as_slice(), [Outcome::Published { .. }]),
        "{out:?}"
    );
    for path in &planted {
        assert!(
            std::fs::symlink_metadata(path).is_ok(),
            "{} was removed",
            path.display()
        );
    }
}

/// Sixteen publishers creating one catalog together: it gets one id before anything names one,
/// so no revision is written for an id that lost (which `verify` would report for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishers_creating_a_catalog_together_agree_on_its_id() {
    creating_a_catalog_together(None).await;
    // Signed: a root created meanwhile is read, never taken for a lost one (exit 9).
    creating_a_catalog_together(Some(keypair("ci"))).await;
}

async fn creating_a_catalog_together(keys: Option<(Vec<u8>, signing::Trust)>) {
    // On disk: every request yields, so the publishers really interleave.
    let dir = tempfile::tempdir().unwrap();
    let store = super::local::LocalStore::new(dir.path());
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = super::local::LocalStore::new(dir.path());
        let mut catalog = Catalog::new(store);
        if let Some((key, trust)) = &keys {
            catalog = catalog.with_signer(signer(key)).with_trust(trust.clone());
        }
        tasks.push(tokio::spawn(async move {
            catalog
                .publish(&[entry(&format!("0.5.{i}"), Some("1.35.1"))])
                .await
        }));
    }
    for t in tasks {
        let out = t.await.unwrap().unwrap();
        assert!(
            matches!(out.as_slice(), [Outcome::Published { .. }]),
            "{out:?}"
        );
    }
    let mut catalog = Catalog::new(store);
    if let Some((_, trust)) = &keys {
        catalog = catalog.with_trust(trust.clone());
    }
    let report = verify(&catalog).await;
    assert!(errors(&report).is_empty(), "{:?}", report.findings);
    assert_eq!(catalog.list(&all()).await.unwrap().len(), 16);
}

/// Serves an older copy of the root on the first read only: what a writer sharing a state
/// directory with a faster one sees for a moment.
#[derive(Clone)]
struct StaleOnce {
    inner: MemoryStore,
    old_root: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
}

impl Store for StaleOnce {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        if key == INDEX_KEY
            && let Some(bytes) = self.old_root.lock().unwrap().take()
        {
            return Ok(Some(Versioned {
                bytes,
                etag: "\"stale\"".into(),
            }));
        }
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
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
        Ok(true)
    }
    fn describe(&self) -> String {
        "memory".into()
    }
}

/// Two writers on one host share a state directory; the second reads a root just before the
/// first replaces it and remembers the new one. That is not a rollback: read again, it is
/// gone. (A root that stays older is refused: `attack_1_...`.)
#[tokio::test]
async fn a_root_another_local_writer_just_replaced_is_not_a_rollback() {
    let s = signed().await;
    let old = s.store.read(INDEX_KEY).unwrap();
    s.publisher()
        .publish(&[entry("0.3.3", Some("1.30.3"))])
        .await
        .unwrap();
    let store = StaleOnce {
        inner: s.store.clone(),
        old_root: Arc::new(std::sync::Mutex::new(Some(old))),
    };
    let second = Catalog::new(store)
        .with_signer(signer(&s.key))
        .with_trust(s.trust.clone())
        .with_state(StateDir::new(s.state.path().join("publisher")));
    let out = second
        .publish(&[entry("0.3.4", Some("1.30.4"))])
        .await
        .unwrap();
    assert!(
        matches!(out.as_slice(), [Outcome::Published { .. }]),
        "{out:?}"
    );
}

/// A writer whose signing key its own trust file does not list would write what every reader
/// of that file refuses: it is a settings error before anything is written (trust that cannot
/// work fails closed).
#[tokio::test]
async fn a_signing_key_the_trust_file_does_not_list_is_refused_before_writing() {
    let (_, trust) = keypair("ci");
    let (other, _) = keypair("other");
    let store = MemoryStore::new();
    let err = Catalog::new(store.clone())
        .with_signer(signer(&other))
        .with_trust(trust)
        .publish(&[entry("0.3.1", Some("1.30.1"))])
        .await
        .unwrap_err();
    match err {
        CatalogError::Settings { problem, .. } => {
            assert!(problem.contains("not in --trusted-keys"), "{problem}")
        }
        other => panic!("not a settings error: {other:?}"),
    }
    assert!(store.keys().is_empty(), "{:?}", store.keys());
}
