//! Secrets never appear anywhere: a secret of every kind is planted in every field of the input,
//! and every channel is searched for it: each output format, `-o` files, stderr, logs at
//! RUST_LOG=trace in text and JSON, catalog objects (local and Azurite), the watcher's `.error`
//! files. The storage credentials themselves (a SAS token, an account key) are searched for in
//! the trace logs of real requests to Azurite.

use crate::util::{AZURITE_KEY, Azurite, fixture, scratch, sigcat, text};
use proptest::prelude::*;
use std::path::Path;

/// Each kind of secret, with a marker that must never be seen again.
const SAS_PLAIN: &str = "sv=2024-08-04&ss=b&srt=co&sp=r&sig=CANARYSASPLAIN0a1b2c3d4e5f%2B%2F%3D";
const SAS_ENCODED: &str = "sv%3D2024-08-04%26sig%3DCANARYSASENCODED0a1b2c3d%253D%26sp%3Dr";
const SAS_AMP_ENCODED: &str = "sv=2024%26sig=CANARYSASAMP0a1b2c3d4e5f";
/// 64 bytes in base64: the shape of an Azure account key.
const ACCOUNT_KEY: &str =
    "CANARYKEY0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0u1v2w3x4y5z6A7B8C9D0E1F2G3H4I5J6K7L8==";
const CONNECTION_STRING: &str = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=CANARYCONNKEY0a1b2c3d4e5f==;EndpointSuffix=core.windows.net";
const BEARER: &str = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJDQU5BUllKV1QiOjF9.CANARYJWTSIGNATURE0a1b";
const URL_PASSWORD: &str = "https://deploy:CANARYPASSWORD0a1b@registry.example.com/x";

const MARKERS: [&str; 7] = [
    "CANARYSASPLAIN",
    "CANARYSASENCODED",
    "CANARYSASAMP",
    "CANARYKEY",
    "CANARYCONNKEY",
    "CANARYJWT",
    "CANARYPASSWORD",
];

fn assert_clean(channel: &str, text: &str) {
    for m in MARKERS {
        assert!(!text.contains(m), "{channel} leaked {m}:\n{text}");
    }
    // The Azure well-known key and anything like it.
    assert!(
        !text.contains(&AZURITE_KEY[..40]),
        "{channel} leaked the account key"
    );
}

/// A run with two builds: one image whose every field carries a secret, one failed build whose
/// error does. Every value stays valid where sigcat validates it (the same secret in the
/// managed image's name and id), so the record is built and the secrets travel all the way.
fn planted_log() -> String {
    let sub = "00000000-1111-2222-3333-444444444444";
    let name = format!("azure-arm.sig-x?{SAS_PLAIN}");
    let failed = "azure-arm.sig-y";
    let image = format!("capi-x?{SAS_AMP_ENCODED}");
    let version = format!("1.30.3?{SAS_PLAIN}");
    let vhd = "https://acct.blob.core.windows.net/system/disk.vhd";
    format!(
        "{name}: output will be in this color.\n\
         {failed}: output will be in this color.\n\
         \x1b[1;32m==> {name}: Running builder ...\x1b[0m\n\
         Build '{name}' finished after 27 minutes {SAS_ENCODED}.\n\
         Build '{failed}' errored after 2 minutes: cannot reach {URL_PASSWORD} with {BEARER} or {CONNECTION_STRING}\n\
         \n\
         ==> Some builds didn't complete successfully and had errors:\n\
         --> {failed}: cannot reach {URL_PASSWORD} with {BEARER}\n\
         \n\
         ==> Builds finished. The artifacts of successful builds are:\n\
         --> {name}: Azure.ResourceManagement.VMImage:\n\
         \n\
         OSType: Linux\n\
         ManagedImageResourceGroupName: rg\n\
         ManagedImageName: {image}\n\
         ManagedImageId: /subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/images/{image}\n\
         ManagedImageLocation: eastus {ACCOUNT_KEY}\n\
         ManagedImageOSDiskSnapshotName: snap-{BEARER}\n\
         ManagedImageSharedImageGalleryId: /subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/capi-x/versions/{version}\n\
         SharedImageGalleryImageVersion: {version}\n\
         SharedImageGalleryReplicatedRegions: eastus, {URL_PASSWORD}\n\
         StorageAccountLocation: westus2\n\
         OSDiskUri: {vhd}\n\
         OSDiskUriReadOnlySas: {vhd}?{SAS_PLAIN}\n\
         TemplateUri: {vhd}.json?{SAS_ENCODED}\n\
         AdditionalDiskUri (datadisk-1): {vhd}?{SAS_AMP_ENCODED}\n\
         FutureKey: {CONNECTION_STRING}\n\
         \n"
    )
}

/// The manifest of the planted run: secrets in nested custom_data, lists and keys.
fn planted_manifest() -> String {
    serde_json::json!({
        "builds": [{
            "name": format!("sig-x?{SAS_PLAIN}"),
            "builder_type": "azure-arm",
            "packer_run_uuid": "r1",
            "custom_data": {
                "build_name": format!("ubuntu?{SAS_PLAIN}"),
                "kubernetes_semver": "v1.30.3",
                "nested": {"deeper": {"token": BEARER}, "url": URL_PASSWORD},
                "list": [ACCOUNT_KEY, CONNECTION_STRING, {"k": SAS_ENCODED}],
                SAS_AMP_ENCODED: "a secret as a key",
            }
        }],
        "last_run_uuid": "r1"
    })
    .to_string()
}

/// Every file under `dir`, read.
fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), text(&std::fs::read(&p).unwrap())));
            }
        }
    }
    out
}

fn check_run(channel: &str, out: &std::process::Output) {
    assert_clean(&format!("{channel} stdout"), &text(&out.stdout));
    assert_clean(&format!("{channel} stderr"), &text(&out.stderr));
}

#[test]
fn a_secret_in_any_field_reaches_no_output_format_file_or_log() {
    let dir = scratch("secrets-planted");
    let log = dir.join("planted.log");
    let manifest = dir.join("manifest.json");
    std::fs::write(&log, planted_log()).unwrap();
    std::fs::write(&manifest, planted_manifest()).unwrap();
    let (log, manifest) = (log.to_str().unwrap(), manifest.to_str().unwrap());

    // The planted record is really built, secrets and all (so the checks below mean something).
    let out = sigcat(&["parse", log, "--manifest", manifest], &[], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one build failed: {}",
        text(&out.stderr)
    );
    let json = text(&out.stdout);
    assert!(
        json.contains("sig=REDACTED") && json.contains("\"deeper\""),
        "{json}"
    );
    assert!(json.contains("sig-y") && json.contains("errored") || json.contains("failed"));

    // `--build` takes the build as sigcat shows it: redacted.
    let build = sigcat::redact::redact_secrets(&format!("sig-x?{SAS_PLAIN}")).into_owned();
    // Tags come from the command line, secrets and all.
    let tags = format!(
        "creationTimestamp=2026 sas=https://acct.blob.core.windows.net/c?{SAS_PLAIN} conn={CONNECTION_STRING} url={URL_PASSWORD} AccountKey={ACCOUNT_KEY}"
    );
    let records = dir.join("records.json");
    for format in [
        "json",
        "github",
        "azure-devops",
        "env",
        "sig-publishing-info",
    ] {
        for level in ["trace", "debug"] {
            for log_format in ["text", "json"] {
                let mut args = vec!["parse", log, "--manifest", manifest, "-o", format];
                if format == "sig-publishing-info" {
                    args.extend(["--build", &build, "--tags", &tags]);
                }
                args.extend(["--log-format", log_format]);
                let out = sigcat(&args, &[("RUST_LOG", level)], None);
                assert!(!out.stdout.is_empty(), "{format}: {}", text(&out.stderr));
                check_run(
                    &format!("parse -o {format} RUST_LOG={level} {log_format}"),
                    &out,
                );
            }
        }
        let out = sigcat(
            &[
                "parse",
                log,
                "--manifest",
                manifest,
                "-o",
                format,
                "--output-file",
                records.to_str().unwrap(),
            ],
            &[("RUST_LOG", "trace")],
            None,
        );
        check_run(&format!("parse --output-file ({format})"), &out);
        if records.exists() {
            assert_clean(
                &format!("-o file ({format})"),
                &std::fs::read_to_string(&records).unwrap(),
            );
        }
    }
    // The same through --tee and render.
    let input = planted_log();
    let out = sigcat(
        &["parse", "--tee", "--output-file", records.to_str().unwrap()],
        &[("RUST_LOG", "trace")],
        Some(input.as_bytes()),
    );
    assert_clean("--tee stderr", &text(&out.stderr));
    assert_clean("--tee records", &std::fs::read_to_string(&records).unwrap());
    let out = sigcat(
        &[
            "render",
            log,
            "--manifest",
            manifest,
            "--build",
            &build,
            "--vm-size",
            "S",
            "--image-api",
            "id",
        ],
        &[("RUST_LOG", "trace")],
        None,
    );
    check_run("render", &out);
    let template = crate::util::kubectl_agrees(&text(&out.stdout));
    assert_eq!(
        template[0]["kind"],
        "AzureMachineTemplate",
        "{}",
        text(&out.stderr)
    );

    // The catalog: every object, and every line said while publishing.
    let cat = dir.join("catalog");
    for log_format in ["text", "json"] {
        let out = sigcat(
            &[
                "publish",
                log,
                "--manifest",
                manifest,
                "--image-api",
                "id",
                "--catalog",
                cat.to_str().unwrap(),
                "--log-format",
                log_format,
            ],
            &[("RUST_LOG", "trace")],
            None,
        );
        check_run("publish", &out);
    }
    let objects = files_under(&cat);
    assert!(
        objects.iter().any(|(p, _)| p.ends_with(".yaml")),
        "published: {objects:?}"
    );
    for (path, content) in objects {
        assert_clean(&path, &content);
    }
}

#[test]
fn invalid_input_that_quotes_a_secret_is_redacted_in_errors_and_error_files() {
    let dir = scratch("secrets-invalid");
    let drop = dir.join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    // Values sigcat rejects, so that its error message quotes them.
    let base = String::from_utf8(fixture("console/sig-ubuntu-2404.log")).unwrap();
    let cases = [
        base.replacen("OSType: Linux", &format!("OSType: Linux?{SAS_PLAIN}"), 1),
        base.replacen(
            "SharedImageGalleryName: ClusterAPI1721036000abcd",
            &format!("SharedImageGalleryName: other {CONNECTION_STRING}"),
            1,
        ),
        base.replacen(
            "ManagedImageResourceGroupName: cluster-api-gallery",
            &format!("ManagedImageResourceGroupName: {URL_PASSWORD} {BEARER} {ACCOUNT_KEY}"),
            1,
        ),
    ];
    for (i, case) in cases.iter().enumerate() {
        let out = sigcat(&["parse"], &[("RUST_LOG", "trace")], Some(case.as_bytes()));
        assert_eq!(
            out.status.code(),
            Some(4),
            "case {i}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("REDACTED"),
            "case {i}: {}",
            text(&out.stderr)
        );
        check_run(&format!("invalid case {i}"), &out);
        std::fs::write(drop.join(format!("case{i}.log")), case).unwrap();
    }
    let cat = dir.join("catalog");
    let out = sigcat(
        &[
            "watch",
            drop.to_str().unwrap(),
            "--once",
            "--settle",
            "0s",
            "--catalog",
            cat.to_str().unwrap(),
            "--log-format",
            "json",
        ],
        &[("RUST_LOG", "trace")],
        None,
    );
    check_run("watch --once", &out);
    let quarantined = files_under(&drop.join("quarantine"));
    assert_eq!(
        quarantined
            .iter()
            .filter(|(p, _)| p.ends_with(".error"))
            .count(),
        3,
        "{quarantined:?}\n{}",
        text(&out.stderr)
    );
    for (path, content) in quarantined.iter().filter(|(p, _)| p.ends_with(".error")) {
        assert_clean(path, content);
    }
}

#[test]
fn storage_credentials_never_reach_trace_logs_of_real_requests() {
    let azurite = Azurite::start("secrets-credentials");
    let url = azurite.url("secret-images");
    let log = crate::util::fixture_path("console/sig-ubuntu-2404.log");
    let log = log.to_str().unwrap();
    for log_format in ["text", "json"] {
        let out = sigcat(
            &[
                "publish",
                log,
                "--catalog",
                &url,
                "--log-format",
                log_format,
            ],
            &[("AZURE_STORAGE_KEY", AZURITE_KEY), ("RUST_LOG", "trace")],
            None,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.contains("SharedKey"),
            "the request headers were logged: {err}"
        );
        assert!(
            !err.contains(AZURITE_KEY) && !err.contains(&AZURITE_KEY[..20]),
            "{err}"
        );
        // The request signature (an HMAC of the key) is a credential too.
        for line in err.lines().filter(|l| l.contains("SharedKey")) {
            assert!(
                line.contains("SharedKey devstoreaccount1:REDACTED"),
                "{line}"
            );
        }
    }
    // A container SAS made with the key, as an operator would.
    let token = azurite.container_sas("secret-images");
    let signature = token
        .split('&')
        .find_map(|p| p.strip_prefix("sig="))
        .unwrap()
        .to_string();
    for log_format in ["text", "json"] {
        let planted = dir_log_for_sas(log_format);
        let out = sigcat(
            &[
                "publish",
                planted.to_str().unwrap(),
                "--catalog",
                &url,
                "--log-format",
                log_format,
            ],
            &[("AZURE_STORAGE_SAS_TOKEN", &token), ("RUST_LOG", "trace")],
            None,
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "its second build failed: {err}");
        assert!(
            err.contains("sig=REDACTED"),
            "the request URLs were logged: {err}"
        );
        assert!(
            !err.contains(&signature) && !text(&out.stdout).contains(&signature),
            "{err}"
        );
        check_run("publish with a SAS token", &out);
    }
    // Everything stored in Azurite is clean too.
    let out = sigcat(
        &["catalog", "list", "-o", "json", "--catalog", &url],
        &[("AZURE_STORAGE_SAS_TOKEN", &token)],
        None,
    );
    assert_eq!(
        text(&out.stdout).lines().count(),
        3,
        "{}",
        text(&out.stderr)
    );
    for line in text(&out.stdout).lines() {
        let id = serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        for what in [&["--template"][..], &[]] {
            let mut args = vec!["catalog", "show", id.as_str(), "--catalog", &url];
            args.extend(what);
            let shown = sigcat(&args, &[("AZURE_STORAGE_SAS_TOKEN", &token)], None);
            assert_eq!(shown.status.code(), Some(0));
            check_run("catalog show", &shown);
        }
    }
}

/// The planted run with a distinct gallery version per call, so that each publish adds an image.
fn dir_log_for_sas(tag: &str) -> std::path::PathBuf {
    let dir = scratch(&format!("secrets-sas-{tag}"));
    let path = dir.join("planted.log");
    let version = if tag == "text" { "1.30.3" } else { "1.30.4" };
    std::fs::write(
        &path,
        planted_log().replace("1.30.3?", &format!("{version}?")),
    )
    .unwrap();
    path
}

/// Where in a value a secret goes, and which one: the parser's records never keep it.
fn placed(secret: &str, value: &str, at: usize) -> String {
    match at % 3 {
        0 => format!("{secret} {value}"),
        1 => format!("{value}?{secret}"),
        _ => format!("{value} {secret} end"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn no_placement_of_a_secret_survives_into_a_record(
        field in 0usize..8,
        secret in 0usize..7,
        at in 0usize..3,
    ) {
        let secrets = [SAS_PLAIN, SAS_ENCODED, SAS_AMP_ENCODED, ACCOUNT_KEY, CONNECTION_STRING, BEARER, URL_PASSWORD];
        let base = String::from_utf8(fixture("console/sig-ubuntu-2404.log")).unwrap();
        let targets = [
            ("ManagedImageLocation: northcentralus", "ManagedImageLocation: ", "northcentralus"),
            ("SharedImageGalleryReplicatedRegions: northcentralus, eastus2", "SharedImageGalleryReplicatedRegions: northcentralus, ", "eastus2"),
            ("finished after 27 minutes 12 seconds.", "finished after ", "27 minutes"),
            ("OSType: Linux\nManagedImageResourceGroupName", "OSType: Linux\nFutureKey: ", "x"),
            ("OSType: Linux\nManagedImageResourceGroupName", "OSType: Linux\nOSDiskUriReadOnlySas: ", "https://a/b.vhd"),
            ("OSType: Linux\nManagedImageResourceGroupName", "OSType: Linux\nAdditionalDiskUriReadOnlySas (datadisk-1): ", "https://a/c.vhd"),
            ("OSType: Linux\nManagedImageResourceGroupName", "OSType: Linux\nTemplateUri: ", "https://a/t.json"),
            ("OSType: Linux\nManagedImageResourceGroupName", "OSType: Linux\nManagedImageOSDiskSnapshotName: ", "snap"),
        ];
        let (find, prefix, value) = targets[field];
        let mut replacement = format!("{prefix}{}", placed(secrets[secret], value, at));
        if find.ends_with("Name") {
            replacement.push_str("\nManagedImageResourceGroupName");
        } else if find.ends_with('.') {
            replacement.push('.');
        }
        let log = base.replace(find, &replacement);
        if let Ok(parsed) = sigcat::parse::parse_bytes(log.as_bytes(), "prop.log", None) {
            let json = serde_json::to_string(&parsed.records).unwrap();
            for m in MARKERS {
                prop_assert!(!json.contains(m), "{m} in {json}");
            }
            for w in &parsed.warnings {
                for m in MARKERS {
                    prop_assert!(!w.contains(m));
                }
            }
        } else if let Err(e) = sigcat::parse::parse_bytes(log.as_bytes(), "prop.log", None) {
            let text = sigcat::error::chain(&e);
            for m in MARKERS {
                prop_assert!(!text.contains(m), "{m} in {text}");
            }
        }
    }
}
