//! Every fixture in `fixtures/` parsed through the library, checked against values written
//! down by hand from `shared/reference/packer-azure-output.md` (not from sigcat's output).

use sigcat::parse::{self, Parsed};
use sigcat::record::kubernetes::KubeVersion;
use sigcat::record::{BuildResult, InputFormat, KubernetesVersionSource, Record};

const SUB: &str = "00000000-1111-2222-3333-444444444444";
const GALLERY_ID: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/galleries/ClusterAPI1721036000abcd/images/capi-ubuntu-2404/versions/0.3.1721037000";
const IMAGE_ID: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/images/capi-ubuntu-2404-1721037000";

use crate::util::fixture;

fn parse(path: &str) -> Parsed {
    parse::parse_bytes(&fixture(path), path, None).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn only_record(path: &str) -> Record {
    let parsed = parse(path);
    assert_eq!(parsed.records.len(), 1, "{path}: {:#?}", parsed.records);
    assert!(
        parsed.incomplete.is_empty(),
        "{path}: {:?}",
        parsed.incomplete
    );
    parsed.records.into_iter().next().unwrap()
}

/// The image of the reference's section 1, whatever the wrapping of the log.
fn assert_main_image(r: &Record, what: &str) {
    assert_eq!(r.build_name, "azure-arm.sig-ubuntu-2404", "{what}");
    assert_eq!(r.build, "sig-ubuntu-2404", "{what}");
    assert_eq!(r.builder_type.as_deref(), Some("azure-arm"), "{what}");
    assert_eq!(
        r.builder_id.as_deref(),
        Some("Azure.ResourceManagement.VMImage"),
        "{what}"
    );
    assert_eq!(r.result, BuildResult::Succeeded, "{what}");
    assert_eq!(r.os_type.as_deref(), Some("Linux"), "{what}");
    let m = r.managed_image.as_ref().expect("managed image");
    assert_eq!(m.resource_group, "cluster-api-gallery");
    assert_eq!(m.name, "capi-ubuntu-2404-1721037000");
    assert_eq!(m.id, IMAGE_ID);
    assert_eq!(m.subscription_id.as_deref(), Some(SUB));
    assert_eq!(m.location.as_deref(), Some("northcentralus"));
    let g = r.gallery_image.as_ref().expect("gallery image");
    assert_eq!(g.id, GALLERY_ID, "{what}");
    assert_eq!(g.subscription_id, SUB);
    assert_eq!(g.resource_group, "cluster-api-gallery");
    assert_eq!(g.gallery, "ClusterAPI1721036000abcd");
    assert_eq!(g.image_definition, "capi-ubuntu-2404");
    assert_eq!(g.version, "0.3.1721037000");
    assert_eq!(g.replicated_regions, ["northcentralus", "eastus2"]);
    assert_eq!(
        r.kubernetes_version, None,
        "0.3.x is not a Kubernetes version ({what})"
    );
    assert!(r.extra.is_empty(), "{what}: {:?}", r.extra);
}

#[test]
fn colour_no_colour_timestamps_and_ci_prefixes_give_the_same_image() {
    for path in [
        "console/sig-ubuntu-2404.log",
        "console/sig-ubuntu-2404-nocolor.log",
        "console/timestamp-ui.log",
        "console/github-actions.log",
    ] {
        let r = only_record(path);
        assert_main_image(&r, path);
        assert_eq!(
            r.duration.as_deref(),
            Some("27 minutes 12 seconds"),
            "{path}"
        );
        assert_eq!(r.duration_seconds, Some(27.0 * 60.0 + 12.0), "{path}");
        assert_eq!(r.provenance.format, InputFormat::Console);
        let (first, last) = (
            r.provenance.first_line.unwrap(),
            r.provenance.last_line.unwrap(),
        );
        assert_eq!(last - first, 12, "{path}: header, blank line and 11 keys");
    }
}

#[test]
fn the_duplicate_block_gives_one_record_at_the_first_block() {
    let r = only_record("console/sig-ubuntu-2404.log");
    let text = String::from_utf8(fixture("console/sig-ubuntu-2404.log")).unwrap();
    let first_arrow = text.lines().position(|l| l.starts_with("--> ")).unwrap() as u64 + 1;
    assert_eq!(r.provenance.first_line, Some(first_arrow));
    assert_eq!(
        text.matches("--> azure-arm.sig-ubuntu-2404: Azure").count(),
        2,
        "the fixture has the duplicate"
    );
}

#[test]
fn azure_devops_crlf_log_with_kubernetes_gallery_version() {
    let r = only_record("console/azure-devops-crlf.log");
    let g = r.gallery_image.as_ref().unwrap();
    assert_eq!(g.version, "1.30.3");
    assert_eq!(g.replicated_regions, ["eastus", "westus2"]);
    assert_eq!(r.kubernetes_version.as_deref(), Some("1.30.3"));
    assert_eq!(
        r.kubernetes_version_source,
        Some(KubernetesVersionSource::GalleryVersion)
    );
    assert!(!r.managed_image.as_ref().unwrap().name.ends_with('\r'));
}

#[test]
fn old_packer_with_bare_names_and_the_gallery_id_in_the_managed_block() {
    let r = only_record("console/packer-1.5-old.log");
    assert_eq!(r.build_name, "sig-ubuntu-1804");
    assert_eq!(r.builder_type, None);
    assert_eq!(r.duration, None, "`finished.` has no duration");
    let g = r.gallery_image.unwrap();
    assert_eq!(
        (
            g.gallery.as_str(),
            g.image_definition.as_str(),
            g.version.as_str()
        ),
        ("ClusterAPI", "capi-ubuntu-1804", "0.3.1234567890")
    );
    assert_eq!(g.resource_group, "cluster-api-images");
    assert!(g.replicated_regions.is_empty());
    assert_eq!(
        r.managed_image.unwrap().location.as_deref(),
        Some("southcentralus")
    );

    let r = only_record("console/packer-1.2-no-ostype.log");
    assert_eq!(r.os_type, None, "Packer < 1.3 printed no OSType");
    assert!(r.gallery_image.is_some());
}

#[test]
fn several_builds_one_failed() {
    let parsed = parse("console/multi-build.log");
    assert!(parsed.incomplete.is_empty());
    let by_build = |b: &str| {
        parsed
            .records
            .iter()
            .find(|r| r.build == b)
            .unwrap_or_else(|| panic!("no {b}"))
    };
    assert_eq!(parsed.records.len(), 3);
    let win = by_build("sig-windows-2022-containerd");
    assert_eq!(win.os_type.as_deref(), Some("Windows"));
    assert_eq!(
        win.gallery_image.as_ref().unwrap().image_definition,
        "capi-windows-2022-containerd"
    );
    let gen2 = by_build("sig-ubuntu-2204-gen2");
    assert!(
        gen2.gallery_image
            .as_ref()
            .unwrap()
            .replicated_regions
            .is_empty(),
        "an empty region list is allowed"
    );
    let flatcar = by_build("sig-flatcar-gen2");
    assert_eq!(flatcar.result, BuildResult::Failed);
    assert_eq!(
        flatcar.error.as_deref(),
        Some("Future#WaitForCompletion: context deadline exceeded")
    );
    assert_eq!(flatcar.duration_seconds, Some(12.0 * 60.0 + 3.0));
    assert!(!flatcar.has_image());
}

#[test]
fn failed_interrupted_and_truncated_runs() {
    let failed = only_record("console/failed.log");
    assert_eq!(failed.result, BuildResult::Failed);
    assert!(
        failed
            .error
            .as_deref()
            .unwrap()
            .starts_with("Error waiting for SSH")
    );

    let interrupted = only_record("console/interrupted.log");
    assert_eq!(interrupted.result, BuildResult::Interrupted);

    let truncated = parse("console/truncated.log");
    assert!(truncated.records.is_empty());
    assert_eq!(truncated.incomplete, ["azure-arm.sig-ubuntu-2404"]);
}

#[test]
fn managed_only_and_gallery_only() {
    let r = only_record("console/managed-image-only.log");
    assert!(r.gallery_image.is_none());
    assert_eq!(r.managed_image.unwrap().id, IMAGE_ID);

    let r = only_record("console/gallery-only.log");
    assert!(r.managed_image.is_none());
    assert_eq!(r.gallery_image.unwrap().id, GALLERY_ID);
}

#[test]
fn vhd_generations_and_sas_redaction() {
    let acct =
        "https://pkrsa1721037000.blob.core.windows.net/system/Microsoft.Compute/Images/images";
    let r = only_record("console/vhd-plugin-1.4-sas.log");
    let v = r.vhd.as_ref().unwrap();
    assert_eq!(v.storage_account_location.as_deref(), Some("westus2"));
    assert_eq!(
        v.os_disk_uri.as_deref(),
        Some(format!("{acct}/packer-osDisk.1a2b3c.vhd").as_str())
    );
    assert_eq!(
        v.os_disk_uri_read_only_sas.as_deref(),
        Some(format!("{acct}/packer-osDisk.1a2b3c.vhd?se=2024-08-14T10%3A00%3A00Z&sig=REDACTED&sp=r&sr=b&sv=2018-03-28").as_str())
    );
    assert_eq!(v.data_disks.len(), 1);
    assert_eq!(v.data_disks[0].name, "datadisk-1");
    assert!(
        v.data_disks[0]
            .uri_read_only_sas
            .as_deref()
            .unwrap()
            .contains("sig=REDACTED")
    );
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        !json.contains("AbCdEfGh"),
        "the fixture's fake signature must not survive: {json}"
    );

    let r = only_record("console/vhd-plugin-2.2.log");
    let v = r.vhd.unwrap();
    assert_eq!(v.os_disk_uri_read_only_sas, None);
    assert_eq!(
        v.template_uri.as_deref(),
        Some(format!("{acct}/packer-vmTemplate.1a2b3c.json").as_str())
    );
    let names: Vec<&str> = v.data_disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["datadisk-1", "datadisk-2"]);

    let r = only_record("console/vhd-plugin-2.5.log");
    let v = r.vhd.unwrap();
    assert_eq!(
        v.os_disk_uri.as_deref(),
        Some("https://pkrsa1721037000.blob.core.windows.net/images/capi-ubuntu-2204.vhd")
    );
    assert_eq!(v.template_uri, None);
}

#[test]
fn snapshots_and_unknown_keys_are_kept() {
    let r = only_record("console/snapshots-and-future-key.log");
    let m = r.managed_image.unwrap();
    assert_eq!(m.os_disk_snapshot_name.as_deref(), Some("capi-osdisk-snap"));
    assert_eq!(
        m.data_disk_snapshot_prefix.as_deref(),
        Some("capi-datadisk-snap-")
    );
    assert_eq!(
        r.extra.get("SecurityType").map(String::as_str),
        Some("TrustedLaunch")
    );
}

#[test]
fn dtl_and_chroot_builders() {
    let r = only_record("console/dtl.log");
    assert_eq!(r.builder_type.as_deref(), Some("azure-dtl"));
    assert_eq!(r.managed_image.unwrap().resource_group, "dtl-images");

    let r = only_record("console/chroot.log");
    assert_eq!(r.builder_id.as_deref(), Some("azure.chroot"));
    assert_eq!(r.resources.len(), 2);
    let g = r.gallery_image.unwrap();
    assert_eq!(
        g.gallery, "clusterapi1721036000abcd",
        "chroot ids are lower-cased as printed"
    );
    assert_eq!(g.version, "1.31.2");
    assert_eq!(r.kubernetes_version.as_deref(), Some("1.31.2"));
}

#[test]
fn machine_readable_output() {
    let r = only_record("machine-readable/sig-ubuntu-2404.out");
    assert_main_image(&r, "machine-readable");
    assert_eq!(r.provenance.format, InputFormat::MachineReadable);
    assert_eq!(r.duration.as_deref(), Some("27 minutes 12 seconds"));

    let failed = only_record("machine-readable/failed.out");
    assert_eq!(failed.result, BuildResult::Failed);
    assert_eq!(failed.error.as_deref(), Some("unexpected EOF"));
}

#[test]
fn manifest_newest_run_wins() {
    let r = only_record("manifest/manifest.json");
    assert_eq!(r.provenance.format, InputFormat::Manifest);
    assert_eq!(r.managed_image.unwrap().name, "capi-ubuntu-2404-1721037000");
    assert_eq!(r.kubernetes_version.as_deref(), Some("1.30.3"));
    assert_eq!(
        r.kubernetes_version_source,
        Some(KubernetesVersionSource::Manifest)
    );
    assert_eq!(
        r.provenance.packer_run_uuid.as_deref(),
        Some("5d2c8d4e-6a0b-4e1e-9c8e-1f2a3b4c5d6e")
    );
    assert_eq!(
        r.custom_data
            .get("containerd_version")
            .and_then(|v| v.as_str()),
        Some("1.7.20")
    );

    let r = only_record("manifest/gallery-only-manifest.json");
    assert_eq!(r.gallery_image.unwrap().version, "1.31.2");
    assert_eq!(
        r.kubernetes_version_source,
        Some(KubernetesVersionSource::GalleryVersion)
    );
}

#[test]
fn log_joined_with_its_manifest() {
    let mut parsed = parse("console/sig-ubuntu-2404.log");
    let manifest = std::path::PathBuf::from(format!(
        "{}/fixtures/manifest/manifest.json",
        env!("CARGO_MANIFEST_DIR")
    ));
    let builds = parse::read_manifest(&manifest).unwrap();
    let warnings = parse::manifest::join(&mut parsed.records, &builds, "manifest.json").unwrap();
    assert!(warnings.is_empty());
    let r = &parsed.records[0];
    assert_eq!(r.kubernetes_version.as_deref(), Some("1.30.3"));
    assert_eq!(
        r.kubernetes_version_source,
        Some(KubernetesVersionSource::Manifest)
    );
    assert_eq!(
        r.custom_data.get("build_name").and_then(|v| v.as_str()),
        Some("ubuntu-2404")
    );
    assert_eq!(r.provenance.manifest.as_deref(), Some("manifest.json"));

    let stale = std::path::PathBuf::from(format!(
        "{}/fixtures/manifest/stale-manifest.json",
        env!("CARGO_MANIFEST_DIR")
    ));
    let builds = parse::read_manifest(&stale).unwrap();
    let err = parse::manifest::join(&mut parsed.records, &builds, "stale.json").unwrap_err();
    assert!(err.problem.contains("capi-ubuntu-2404-1720000000"), "{err}");
}

#[test]
fn invalid_artifacts_name_the_line_and_what_was_expected() {
    let cases = [
        (
            "invalid/gallery-mismatch.log",
            "SharedImageGalleryName: SomeOtherGallery",
            "disagrees with the gallery",
        ),
        (
            "invalid/bad-gallery-id.log",
            "ManagedImageSharedImageGalleryId",
            "expected a gallery image version id",
        ),
        (
            "invalid/missing-managed-image-id.log",
            "ManagedImageResourceGroupName",
            "no `ManagedImageId` line",
        ),
        ("invalid/key-twice.log", "OSType: Windows", "appears twice"),
    ];
    for (path, line_starts, message) in cases {
        let text = String::from_utf8(fixture(path)).unwrap();
        let expected_line = text
            .lines()
            .position(|l| l.starts_with(line_starts))
            .unwrap() as u64
            + 1;
        let err = match parse::parse_bytes(&fixture(path), path, None) {
            Err(sigcat::Error::Input(e)) => e,
            other => panic!("{path}: expected an input error, got {other:?}"),
        };
        assert_eq!(err.source_name, path);
        assert_eq!(err.line, Some(expected_line), "{path}: {err}");
        assert!(err.problem.contains(message), "{path}: {err}");
    }
}

#[test]
fn kubernetes_version_from_the_command_line() {
    let v = |t: &str| KubeVersion::parse(t).unwrap();
    let mut parsed = parse("console/sig-ubuntu-2404.log");
    parse::apply_kubernetes_version(&mut parsed.records, &v("v1.30.4")).unwrap();
    assert_eq!(
        parsed.records[0].kubernetes_version.as_deref(),
        Some("1.30.4")
    );
    assert_eq!(
        parsed.records[0].kubernetes_version_source,
        Some(KubernetesVersionSource::CommandLine)
    );
    assert!(
        parse::apply_kubernetes_version(&mut parsed.records, &v("1.31.0")).is_err(),
        "a known version is not overridden silently"
    );
    assert!(
        KubeVersion::parse("1.30").is_none(),
        "a minor alone is not a version"
    );
}

#[test]
fn record_json_round_trips_and_matches_the_documented_schema_keys() {
    let r = only_record("console/sig-ubuntu-2404.log");
    let json = serde_json::to_value(&r).unwrap();
    let back: Record = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, r);
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!(
            "{}/src/record/record.schema.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let documented: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    let actual: Vec<&String> = json.as_object().unwrap().keys().collect();
    let mut d = documented.clone();
    let mut a = actual.clone();
    d.sort();
    a.sort();
    assert_eq!(
        a, d,
        "record keys and src/record/record.schema.json must agree"
    );
    assert_eq!(json["schema"], "sigcat.record/v1");
}

#[test]
fn a_log_cut_inside_its_artifact_block_says_so() {
    let full = fixture("console/sig-ubuntu-2404-nocolor.log");
    let text = String::from_utf8(full.clone()).unwrap();
    let cut = text.find("SharedImageGalleryName").unwrap();
    let parsed = parse::parse_bytes(&full[..cut], "cut.log", None).unwrap();
    assert!(parsed.ended_inside_block, "the watcher waits for the rest");
    assert!(
        !parse::parse_bytes(&full, "whole.log", None)
            .unwrap()
            .ended_inside_block
    );
}
