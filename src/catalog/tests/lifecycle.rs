//! The lifecycle against the in-memory store: promotion (and image-builder's overwriting of a
//! promoted version), clean-up, end of life, what `latest`, pointers, `verify` and
//! `rebuild-index` make of each, and the prune plan.

use super::*;
use crate::catalog::index::{BUILD_STAGE, PROMOTED_STAGE};
use crate::catalog::lifecycle::{CleanOutcome, EndOfLifeOutcome, PromoteOutcome, Target};
use crate::catalog::prune::{self, InUse, Policy};

const COMMUNITY: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/galleries/community_gallery/images/capi-ubun2-2404/versions/";

fn target(version: &str, eol: Option<&str>) -> Target {
    Target {
        stage: PROMOTED_STAGE.into(),
        gallery_image_version_id: format!("{COMMUNITY}{version}"),
        public_name: Some("ClusterAPI-f72ceb4f-5159-4c26-a0fe-2ea738f0d019".into()),
        regions: vec!["West Europe".into(), "eastus".into()],
        end_of_life: eol.map(str::to_string),
        published: None,
    }
}

fn in_1_30() -> Filter {
    Filter {
        kubernetes: Some("1.30".into()),
        ..Filter::default()
    }
}

async fn template_of(catalog: &Catalog<MemoryStore>, found: &Found) -> String {
    String::from_utf8(catalog.served_template(found).await.unwrap()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_promoted_image_is_served_from_its_promotion_and_never_from_a_deleted_location() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    let e = entry("1.30.3", Some("1.30.3"));
    catalog.publish(std::slice::from_ref(&e)).await.unwrap();
    // Built: served from staging, with its own template.
    let found = catalog.latest(&in_1_30()).await.unwrap().unwrap();
    assert_eq!(found.served.as_ref().unwrap().stage, BUILD_STAGE);
    // Promoted: the template now points at the community gallery by its public name, with
    // no subscription or resource group (what CAPZ reads as a community image).
    let out = catalog
        .promote(
            &e.id,
            &target("1.30.3", Some("2099-06-04T00:00:00+00:00")),
            None,
        )
        .await
        .unwrap();
    assert!(
        matches!(out, PromoteOutcome::Promoted { times: 1, ref overwrote, .. } if overwrote.is_empty()),
        "{out:?}"
    );
    let found = catalog.latest(&in_1_30()).await.unwrap().unwrap();
    let served = found.served.clone().unwrap();
    assert_eq!(served.stage, PROMOTED_STAGE);
    assert_eq!(served.regions, ["eastus", "westeurope"]);
    assert_eq!(
        served.end_of_life.as_deref(),
        Some("2099-06-04T00:00:00.000Z")
    );
    let template = template_of(&catalog, &found).await;
    assert!(
        template.contains("gallery: ClusterAPI-f72ceb4f-5159-4c26-a0fe-2ea738f0d019"),
        "{template}"
    );
    assert!(template.contains("name: capi-ubun2-2404"), "{template}");
    assert!(!template.contains("subscriptionID"), "{template}");
    assert!(
        template.contains("vmSize: Standard_D2s_v3"),
        "the rest is the build's: {template}"
    );
    // --stage staging still finds where it was built.
    let staging = catalog
        .latest(&Filter {
            stage: Some(BUILD_STAGE.into()),
            ..in_1_30()
        })
        .await
        .unwrap()
        .unwrap();
    assert!(
        template_of(&catalog, &staging)
            .await
            .contains("subscriptionID")
    );
    // The pointer for curl says both.
    let root = root_of(&store);
    let pointer: Latest = serde_json::from_slice(
        &store
            .read(&pointer_of(&store, &root, "1.30/ubuntu-2404"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(pointer.image.as_ref().unwrap().stage, PROMOTED_STAGE);
    assert_eq!(pointer.stages[BUILD_STAGE].stage, BUILD_STAGE);
    assert_eq!(
        pointer.regions["westeurope"].public_name.as_deref(),
        Some("ClusterAPI-f72ceb4f-5159-4c26-a0fe-2ea738f0d019")
    );
    // The clean job deletes the staging version and the managed image: still served, from
    // production; staging has nothing.
    let record = e.record.clone();
    let staging_ids = vec![
        record.gallery_image.as_ref().unwrap().id.clone(),
        record.managed_image.as_ref().unwrap().id.clone(),
    ];
    let outcomes = catalog
        .clean(&staging_ids, Some("clean job"))
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes
            .iter()
            .all(|(_, o)| matches!(o, CleanOutcome::Deleted { id } if *id == e.id))
    );
    let again = catalog.clean(&staging_ids[..1], None).await.unwrap();
    assert!(
        matches!(again[0].1, CleanOutcome::AlreadyDeleted { .. }),
        "{again:?}"
    );
    assert!(
        catalog
            .latest(&Filter {
                stage: Some(BUILD_STAGE.into()),
                ..in_1_30()
            })
            .await
            .unwrap()
            .is_none(),
        "nothing is ever served from a deleted location"
    );
    assert_eq!(
        catalog
            .latest(&in_1_30())
            .await
            .unwrap()
            .unwrap()
            .served
            .unwrap()
            .stage,
        PROMOTED_STAGE
    );
    // The production version goes too: nothing serves the image; verify says so.
    catalog
        .clean(&[format!("{COMMUNITY}1.30.3")], None)
        .await
        .unwrap();
    assert!(catalog.latest(&in_1_30()).await.unwrap().is_none());
    let report = verify(&catalog).await;
    assert!(errors(&report).is_empty(), "{:#?}", report.findings);
    assert!(has(
        &report,
        K::Lifecycle,
        S::Warning,
        "every location of it is deleted"
    ));
    // Nothing in the catalog has an unknown resource.
    let none = catalog
        .clean(&[format!("{COMMUNITY}9.9.9")], None)
        .await
        .unwrap();
    assert!(matches!(none[0].1, CleanOutcome::NotInCatalog));
}

#[tokio::test(start_paused = true)]
async fn promoting_over_a_version_is_recorded_and_flagged_never_merged() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    // image-builder builds 1.30.3 twice (the staging version is recreated after each clean,
    // so the two builds are two images here: different managed images).
    let first = entry("0.3.1", Some("1.30.3"));
    let second = entry("0.3.2", Some("1.30.3"));
    catalog
        .publish(&[first.clone(), second.clone()])
        .await
        .unwrap();
    catalog
        .promote(&first.id, &target("1.30.3", None), None)
        .await
        .unwrap();
    // The same step retried (the same az output): nothing changes.
    let out = catalog
        .promote(&first.id, &target("1.30.3", None), None)
        .await
        .unwrap();
    assert_eq!(out, PromoteOutcome::AlreadyPromoted);
    // The promote job runs again for the same image (the version deleted and created again,
    // so Azure's publishedDate is another): recorded as a second promotion.
    let again = Target {
        published: Some("2026-12-04T10:00:00.000Z".into()),
        ..target("1.30.3", None)
    };
    let out = catalog.promote(&first.id, &again, None).await.unwrap();
    assert!(
        matches!(out, PromoteOutcome::Promoted { times: 2, .. }),
        "{out:?}"
    );
    // The same creation replicated to one more region: an update, not a third creation.
    let wider = Target {
        regions: vec!["West Europe".into(), "eastus".into(), "uksouth".into()],
        ..again.clone()
    };
    let out = catalog.promote(&first.id, &wider, None).await.unwrap();
    assert!(
        matches!(out, PromoteOutcome::Promoted { times: 2, .. }),
        "{out:?}"
    );
    // The second build is promoted to the same version: image-builder deletes and recreates
    // it, so the first image is no longer there.
    let out = catalog
        .promote(&second.id, &target("1.30.3", None), None)
        .await
        .unwrap();
    assert!(
        matches!(out, PromoteOutcome::Promoted { times: 1, ref overwrote, .. } if *overwrote == [first.id.clone()]),
        "{out:?}"
    );
    let listed = catalog.list(&all()).await.unwrap();
    let first_now = listed.iter().find(|x| x.id == first.id).unwrap();
    let gone = &first_now.lifecycle.as_ref().unwrap().deleted[0];
    assert_eq!(gone.replaced_by.as_deref(), Some(second.id.as_str()));
    assert!(first_now.served(Some(PROMOTED_STAGE)).is_none());
    let report = verify(&catalog).await;
    assert!(errors(&report).is_empty(), "{:#?}", report.findings);
    assert!(has(&report, K::Lifecycle, S::Warning, "promoted 2 times"));
    assert!(has(
        &report,
        K::Lifecycle,
        S::Warning,
        "overwritten by the promotion of"
    ));
    // The production answer is the second build.
    let found = catalog
        .latest(&Filter {
            stage: Some(PROMOTED_STAGE.into()),
            ..in_1_30()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.entry.id, second.id);
}

#[tokio::test(start_paused = true)]
async fn an_image_past_its_end_of_life_is_never_the_latest() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    let old = entry("0.3.1", Some("1.30.1"));
    let new = entry("0.3.2", Some("1.30.2"));
    catalog.publish(&[old.clone(), new.clone()]).await.unwrap();
    // The newer one is promoted with an end of life already past.
    catalog
        .promote(&new.id, &target("1.30.2", Some("2020-01-01")), None)
        .await
        .unwrap();
    let found = catalog.latest(&in_1_30()).await.unwrap().unwrap();
    assert_eq!(
        found.entry.id, old.id,
        "the newer image is past its end of life"
    );
    // Its own end of life, set later, wins over the promotion's.
    let out = catalog
        .set_end_of_life(&new.id, "2099-01-01", None)
        .await
        .unwrap();
    assert!(matches!(out, EndOfLifeOutcome::Done(_)));
    assert!(matches!(
        catalog
            .set_end_of_life(&new.id, "2099-01-01T00:00:00Z", None)
            .await
            .unwrap(),
        EndOfLifeOutcome::AlreadySo
    ));
    assert_eq!(
        catalog.latest(&in_1_30()).await.unwrap().unwrap().entry.id,
        new.id
    );
    catalog
        .set_end_of_life(&old.id, "2020-01-01", None)
        .await
        .unwrap();
    catalog
        .set_end_of_life(&new.id, "2020-06-01", None)
        .await
        .unwrap();
    assert!(catalog.latest(&in_1_30()).await.unwrap().is_none());
    // list still shows both.
    assert_eq!(catalog.list(&all()).await.unwrap().len(), 2);
    assert!(matches!(
        catalog.set_end_of_life(&new.id, "next tuesday", None).await,
        Err(CatalogError::Settings { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn rebuild_derives_the_lifecycle_from_the_events_and_verify_agrees() {
    let store = MemoryStore::new();
    let catalog = Catalog::new(store.clone());
    let a = entry("0.3.1", Some("1.30.3"));
    let b = entry("0.3.2", Some("1.30.3"));
    catalog.publish(&[a.clone(), b.clone()]).await.unwrap();
    catalog
        .promote(&a.id, &target("1.30.3", Some("2099-01-01")), None)
        .await
        .unwrap();
    catalog.yank(&a.id, true, Some("CVE")).await.unwrap();
    catalog
        .promote(&b.id, &target("1.30.3", None), None)
        .await
        .unwrap();
    catalog
        .clean(&[a.record.gallery_image.as_ref().unwrap().id.clone()], None)
        .await
        .unwrap();
    catalog
        .set_end_of_life(&b.id, "2098-01-01", None)
        .await
        .unwrap();
    let before = sorted(catalog.list(&all()).await.unwrap());
    store.remove(INDEX_KEY);
    let rebuilt = rebuild(&catalog).await;
    assert!(
        rebuilt.findings.iter().all(|f| f.severity != S::Error),
        "{:?}",
        rebuilt.findings
    );
    assert_eq!(sorted(catalog.list(&all()).await.unwrap()), before);
    let report = verify(&catalog).await;
    assert!(errors(&report).is_empty(), "{:#?}", report.findings);
}

#[tokio::test]
async fn a_forged_promotion_is_never_served_or_adopted() {
    let s = signed().await;
    let reader = s.reader("reader");
    let victim = s.newest(&reader).await;
    // Someone who can write the container plants a promotion to their own gallery, with a
    // template that boots it, unsigned (or signed by a key nobody trusts).
    let evil = "/subscriptions/99999999-9999-9999-9999-999999999999/resourceGroups/evil/providers/Microsoft.Compute/galleries/evil/images/capi-ubuntu-2404/versions/1.30.2";
    let template = objects::object_ref(
        &victim.id,
        objects::Kind::Template,
        b"kind: AzureMachineTemplate\n",
    );
    s.store
        .overwrite(&template.key, b"kind: AzureMachineTemplate\n".to_vec());
    let mut event = objects::Event::new(
        &victim.id,
        objects::Change::Promote,
        None,
        "2099-01-01T00:00:00.000Z",
        99,
    );
    event.previous = victim.head_event().map(|r| r.key.clone());
    event.location = Some(index::Location {
        stage: PROMOTED_STAGE.into(),
        gallery_image_version_id: evil.into(),
        gallery: "evil".into(),
        public_name: None,
        image_definition: "capi-ubuntu-2404".into(),
        gallery_image_version: "1.30.2".into(),
        regions: vec![],
        end_of_life: None,
        published: None,
        template,
    });
    let forged = plant(
        &s.store,
        &victim.id,
        objects::Kind::Event,
        &serde_json::to_vec(&event).unwrap(),
    );
    // Readers go on serving the signed state; verify names the forgery.
    let found = reader.latest(&filter_k8s("1.30")).await.unwrap().unwrap();
    assert_eq!(found.served.unwrap().stage, BUILD_STAGE);
    let report = verify(&reader).await;
    assert!(
        has(&report, K::Signature, S::Error, &forged),
        "{:#?}",
        report.findings
    );
    // Recovery leaves it out and names it.
    let rebuilt = rebuild(&s.publisher()).await;
    assert!(
        rebuilt.findings.iter().any(|f| f.subject == forged),
        "{:?}",
        rebuilt.findings
    );
    let found = reader.latest(&filter_k8s("1.30")).await.unwrap().unwrap();
    assert_eq!(found.served.unwrap().stage, BUILD_STAGE);
}

// ---- Prune ------------------------------------------------------------------------------------

/// An image of OS `os`, Kubernetes `k`, gallery version `g` (as a shard holds it).
fn image(os: &str, k: &str, g: &str) -> IndexEntry {
    let e = entry(g, Some(k));
    let mut i = e.index_entry(
        objects::object_ref(&e.id, objects::Kind::Revision, b"r"),
        format!(
            "2026-01-01T00:00:{:02}.000Z",
            g.rsplit('.').next().unwrap().parse::<u32>().unwrap() % 60
        ),
    );
    i.distro = Some(os.into());
    i
}

#[test]
fn prune_keeps_the_newest_minors_and_patches_and_what_clusters_run() {
    let now = "2026-12-01T00:00:00.000Z";
    let mut all = Vec::new();
    // ubuntu-2404: 1.28.x, 1.29.x, 1.30.x with two patches each, two builds of 1.30.5.
    for (k, g) in [
        ("1.28.1", "0.3.1"),
        ("1.28.2", "0.3.2"),
        ("1.29.1", "0.3.3"),
        ("1.29.2", "0.3.4"),
        ("1.30.4", "0.3.5"),
        ("1.30.5", "0.3.6"),
        ("1.30.5", "0.3.7"),
    ] {
        all.push(image("ubuntu-2404", k, g));
    }
    // A yanked 1.30.4 build, newer than its sibling.
    let mut yanked = image("ubuntu-2404", "1.30.4", "0.3.8");
    yanked.yank = Some(index::YankState {
        yanked: true,
        reason: Some("CVE".into()),
        at: now.into(),
        event: objects::object_ref(&yanked.id, objects::Kind::Event, b"e"),
    });
    all.push(yanked.clone());
    // No Kubernetes version: never pruned.
    let mut unknown = image("ubuntu-2404", "1.27.1", "0.3.9");
    unknown.kubernetes_version = None;
    all.push(unknown.clone());
    let mut in_use = InUse::default();
    // A cluster still runs the old 1.28.1 image.
    let old = all[0].clone();
    in_use
        .read(
            &format!("{}\n", old.gallery_image_version_id.as_deref().unwrap()),
            "in-use.txt",
        )
        .unwrap();
    let plan = prune::plan(
        &all,
        Policy {
            keep_minors: 2,
            keep_patches: 1,
        },
        &in_use,
        now,
    );
    let deleted: Vec<(&str, &str)> = plan
        .delete
        .iter()
        .filter(|r| r.kind == "gallery image version")
        .map(|r| (r.kubernetes_version.as_deref().unwrap(), r.reason.as_str()))
        .collect();
    let says = |k: &str, needle: &str| {
        deleted
            .iter()
            .any(|(v, why)| *v == k && why.contains(needle))
    };
    assert!(
        says("1.28.2", "not among the 2 newest minors"),
        "{deleted:#?}"
    );
    assert!(
        says("1.29.1", "not among the 1 newest patches"),
        "{deleted:#?}"
    );
    assert!(
        says("1.30.4", "not among the 1 newest patches"),
        "{deleted:#?}"
    );
    assert!(says("1.30.4", "yanked: CVE"), "{deleted:#?}");
    assert!(says("1.30.5", "an older build of 1.30.5"), "{deleted:#?}");
    // Kept: the newest build of each kept patch, the one in use, the unknown one.
    let kept: Vec<&str> = plan.keep.iter().map(|k| k.id.as_str()).collect();
    for id in [&all[3].id, &all[6].id, &old.id, &unknown.id] {
        assert!(kept.contains(&id.as_str()), "{id} kept: {kept:?}");
    }
    assert!(
        !plan
            .delete
            .iter()
            .any(|r| r.resource_id == old.gallery_image_version_id.clone().unwrap())
    );
    // Each row deletes through az, managed images included.
    let row = plan
        .delete
        .iter()
        .find(|r| r.kind == "managed image")
        .unwrap();
    assert_eq!(&row.az_args()[..3], ["image", "delete", "--ids"]);
    let row = plan
        .delete
        .iter()
        .find(|r| r.kind != "managed image")
        .unwrap();
    assert_eq!(
        &row.az_args()[..4],
        ["sig", "image-version", "delete", "--ids"]
    );
}

#[test]
fn in_use_reads_templates_clusters_run_and_refuses_what_names_no_image() {
    let mut in_use = InUse::default();
    in_use
        .read(
            "apiVersion: v1\nkind: List\nitems:\n- kind: AzureMachineTemplate\n  spec:\n    template:\n      spec:\n        image:\n          computeGallery:\n            gallery: ClusterAPI-f72ceb4f-5159-4c26-a0fe-2ea738f0d019\n            name: capi-ubun2-2404\n            version: 1.30.3\n",
            "amt.yaml",
        )
        .unwrap();
    let err = in_use
        .read("kind: ConfigMap\ndata: {}\n", "cm.yaml")
        .unwrap_err();
    assert!(
        err.to_string().contains("cm.yaml: no image reference"),
        "{err}"
    );
    let err = in_use.read("kind: [unclosed\n", "bad.yaml").unwrap_err();
    assert!(err.to_string().starts_with("bad.yaml:"), "{err}");
    // Lines of resource ids: each must name an image; a trailing `/` is what Azure ignores.
    let version = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/1.30.3";
    let err = in_use
        .read(&format!("{version}\n/subscriptions/x/garbage\n"), "ids.txt")
        .unwrap_err();
    assert!(
        err.to_string().starts_with("ids.txt:2:") && err.to_string().contains("garbage"),
        "{err}"
    );
    let err = in_use
        .read(&format!("{version}\n{version}\nkeep-this-one\n"), "ids.txt")
        .unwrap_err();
    assert!(
        err.to_string().starts_with("ids.txt:3:") && err.to_string().contains("keep-this-one"),
        "{err}"
    );
    let mut in_use = InUse::default();
    in_use
        .read(&format!("# in use\n{version}/\n"), "ids.txt")
        .unwrap();
    let e = image("ubuntu-2404", "1.30.3", "1.30.3");
    assert!(in_use.uses(&e, &version.to_uppercase()));
}
