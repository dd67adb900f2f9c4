//! `sigcat parse` as users run it: the real binary, real files and pipes, exit codes and outputs.

use crate::util::{scratch, text};
use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(path: &str) -> PathBuf {
    crate::util::fixture_path(path)
}

fn sigcat(args: &[&str], stdin: Option<&[u8]>) -> Output {
    crate::util::sigcat(args, &[], stdin)
}

#[test]
fn exit_codes_tell_what_happened() {
    let cases = [
        ("console/sig-ubuntu-2404.log", 0),
        ("console/multi-build.log", 1),
        ("console/failed.log", 1),
        ("console/interrupted.log", 1),
        ("machine-readable/failed.out", 1),
        ("console/truncated.log", 3),
        ("invalid/gallery-mismatch.log", 4),
        ("invalid/key-twice.log", 4),
    ];
    for (path, code) in cases {
        let out = sigcat(&["parse", fixture(path).to_str().unwrap()], None);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{path}: {}",
            text(&out.stderr)
        );
    }
    let out = sigcat(&["parse", "fixtures/no-such-file.log"], None);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("fixtures/no-such-file.log"));
    let out = sigcat(&["parse", "--tee"], Some(b""));
    assert_eq!(
        out.status.code(),
        Some(2),
        "--tee needs -o: {}",
        text(&out.stderr)
    );
}

#[test]
fn failed_builds_still_write_their_records() {
    let out = sigcat(&["parse", "fixtures/console/multi-build.log"], None);
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines.iter().filter(|r| r["result"] == "failed").count(), 1);
    assert!(text(&out.stderr).contains("azure-arm.sig-flatcar-gen2"));
}

#[test]
fn invalid_input_names_file_and_line_and_writes_nothing() {
    let dir = scratch("invalid-no-partial-write");
    let out_file = dir.join("records.json");
    let out = sigcat(
        &[
            "parse",
            "fixtures/invalid/gallery-mismatch.log",
            "fixtures/console/sig-ubuntu-2404.log",
            "--output-file",
            out_file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("sigcat: error: fixtures/invalid/gallery-mismatch.log:41: "),
        "{err}"
    );
    assert!(!out_file.exists(), "no partial output on invalid input");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "no temporary file left behind"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn tee_copies_the_input_byte_for_byte() {
    let dir = scratch("tee");
    let records = dir.join("records.json");
    let input = std::fs::read(fixture("console/azure-devops-crlf.log")).unwrap();
    let out = sigcat(
        &["parse", "--tee", "--output-file", records.to_str().unwrap()],
        Some(&input),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        out.stdout, input,
        "stdout is the build log, unchanged (CRLF, colour and all)"
    );
    let record: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&records).unwrap().trim()).unwrap();
    assert_eq!(record["gallery_image"]["version"], "1.30.3");
    assert_eq!(record["provenance"]["source"], "<stdin>");
}

#[test]
fn github_output_lines() {
    let out = sigcat(
        &[
            "parse",
            "fixtures/console/sig-ubuntu-2404.log",
            "--manifest",
            "fixtures/manifest/manifest.json",
            "-o",
            "github",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    for expected in [
        "record_count=1",
        "build=sig-ubuntu-2404",
        "result=succeeded",
        "kubernetes_version=1.30.3",
        "gallery_name=ClusterAPI1721036000abcd",
        "gallery_image_definition=capi-ubuntu-2404",
        "gallery_image_version=0.3.1721037000",
        "replicated_regions=northcentralus,eastus2",
        "gallery_image_version_id=/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/galleries/ClusterAPI1721036000abcd/images/capi-ubuntu-2404/versions/0.3.1721037000",
    ] {
        assert!(
            stdout.lines().any(|l| l == expected),
            "missing `{expected}` in\n{stdout}"
        );
    }
}

#[test]
fn several_records_get_prefixed_variables() {
    let out = sigcat(
        &["parse", "fixtures/console/multi-build.log", "-o", "github"],
        None,
    );
    let stdout = text(&out.stdout);
    assert!(stdout.lines().any(|l| l == "record_count=3"));
    assert!(
        stdout
            .lines()
            .any(|l| l == "sig_windows_2022_containerd_os_type=Windows"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == "sig_flatcar_gen2_result=failed"),
        "{stdout}"
    );
}

#[test]
fn azure_devops_logging_commands() {
    let out = sigcat(
        &[
            "parse",
            "fixtures/console/azure-devops-crlf.log",
            "-o",
            "azure-devops",
        ],
        None,
    );
    let stdout = text(&out.stdout);
    assert!(stdout.lines().any(|l| l == "##vso[task.setvariable variable=kubernetes_version;isOutput=true]1.30.3"), "{stdout}");
    assert!(
        stdout
            .lines()
            .all(|l| l.starts_with("##vso[task.setvariable variable="))
    );
}

#[test]
fn env_output_is_safe_to_eval() {
    let out = sigcat(
        &[
            "parse",
            "fixtures/console/multi-build.log",
            "-o",
            "env",
            "--build",
            "sig-flatcar-gen2",
        ],
        None,
    );
    let script = format!(
        "{}\nprintf '%s|%s' \"$SIGCAT_RESULT\" \"$SIGCAT_ERROR\"",
        text(&out.stdout)
    );
    let sh = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert_eq!(
        text(&sh.stdout),
        "failed|Future#WaitForCompletion: context deadline exceeded",
        "{}",
        text(&sh.stderr)
    );
}

#[test]
fn sig_publishing_info_has_image_builders_keys() {
    let out = sigcat(
        &[
            "parse",
            "fixtures/console/sig-ubuntu-2404.log",
            "-o",
            "sig-publishing-info",
            "--tags",
            "jobName=x",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The values image-builder's `sed -n 's/^KEY: \(.*\)/\1/p' | tail -1` lines find in this log.
    let expected = [
        ("distro", "ubuntu-2404"),
        ("hyperv_gen", "V1"),
        ("os_type", "Linux"),
        ("managed_image_resource_group_name", "cluster-api-gallery"),
        ("managed_image_name", "capi-ubuntu-2404-1721037000"),
        (
            "managed_image_id",
            "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/images/capi-ubuntu-2404-1721037000",
        ),
        ("managed_image_location", "northcentralus"),
        (
            "managed_image_shared_image_gallery_id",
            "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/galleries/ClusterAPI1721036000abcd/images/capi-ubuntu-2404/versions/0.3.1721037000",
        ),
        ("shared_image_gallery_resource_group", "cluster-api-gallery"),
        ("shared_image_gallery_name", "ClusterAPI1721036000abcd"),
        ("shared_image_gallery_image_name", "capi-ubuntu-2404"),
        ("shared_image_gallery_image_version", "0.3.1721037000"),
        ("tags", "jobName=x"),
    ];
    assert_eq!(v.as_object().unwrap().len(), expected.len());
    for (k, want) in expected {
        assert_eq!(v[k], want, "{k}");
    }
    let several = sigcat(
        &[
            "parse",
            "fixtures/console/multi-build.log",
            "-o",
            "sig-publishing-info",
        ],
        None,
    );
    assert_eq!(several.status.code(), Some(2));
    assert!(
        text(&several.stderr).contains("--build"),
        "{}",
        text(&several.stderr)
    );
}

/// The same file as image-builder's own "Generate SIG publishing info" step writes (its logic,
/// run with bash, sed and jq on the same fixture), byte for byte; for a confidential-VM image
/// the only difference is `hyperv_gen`, where their step says V1 and their init-sig.sh created
/// the definition as V2.
#[test]
fn sig_publishing_info_is_byte_identical_to_image_builders_step() {
    let dir = scratch("sig-publishing-info");
    let tags = dir.join("tags.out");
    std::fs::write(
        &tags,
        "creationTimestamp=2024-07-15T09:30:00Z jobName=image-builder-sig-ubuntu-2404 DO-NOT-DELETE=UpstreamInfra",
    )
    .unwrap();
    let script = crate::util::repo().join("tests/image-builder/sig-publishing-info.sh");
    for (log, distro, ours_gen, theirs_gen) in [
        ("console/sig-ubuntu-2404.log", "ubuntu-2404", "V1", "V1"),
        ("console/flatcar-gen2.log", "flatcar-gen2", "V2", "V2"),
        (
            "console/sig-ubuntu-2404-cvm.log",
            "ubuntu-2404-cvm",
            "V2",
            "V1",
        ),
    ] {
        let theirs = dir.join("theirs.json");
        let run = Command::new("bash")
            .arg(&script)
            .arg(fixture(log))
            .arg(&tags)
            .arg(&theirs)
            .env("DISTRO", distro)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "image-builder's step needs bash, sed and jq (Debian: apt-get install jq): {}",
            text(&run.stderr)
        );
        let out = sigcat(
            &[
                "parse",
                fixture(log).to_str().unwrap(),
                "-o",
                "sig-publishing-info",
                "--tags",
                &std::fs::read_to_string(&tags).unwrap(),
            ],
            None,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let theirs = std::fs::read_to_string(&theirs).unwrap().replace(
            &format!("\"hyperv_gen\": \"{theirs_gen}\""),
            &format!("\"hyperv_gen\": \"{ours_gen}\""),
        );
        assert_eq!(text(&out.stdout), theirs, "{log}");
        assert!(theirs.contains(&format!("\"hyperv_gen\": \"{ours_gen}\"")));
    }
    // Tags with characters JSON writers escape differently: jq escapes DEL, serde_json does not.
    let odd = "team=\"a\\b\" del=\u{7f} esc=\u{1b}[0m tab=\t bell=\u{7} caf\u{e9} sep=\u{2028}";
    std::fs::write(&tags, odd).unwrap();
    let theirs = dir.join("theirs-odd.json");
    let run = Command::new("bash")
        .arg(&script)
        .arg(fixture("console/sig-ubuntu-2404.log"))
        .arg(&tags)
        .arg(&theirs)
        .env("DISTRO", "ubuntu-2404")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    let out = sigcat(
        &[
            "parse",
            fixture("console/sig-ubuntu-2404.log").to_str().unwrap(),
            "-o",
            "sig-publishing-info",
            "--tags",
            odd,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let theirs = std::fs::read(&theirs).unwrap();
    assert_eq!(text(&out.stdout), text(&theirs));
    assert!(
        text(&theirs).contains("\\u007f"),
        "jq escapes DEL: {}",
        text(&theirs)
    );
}

/// What `make ... | tee packer.out` keeps: stdout only. A failed build's errors are there
/// (Packer's UI writes them to stdout); a make that failed before Packer left only its echoes.
#[test]
fn stdout_only_logs_say_what_was_and_was_not_found() {
    let out = sigcat(&["parse", "fixtures/console/stdout-only-failed.log"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "build failed: azure-arm.sig-ubuntu-2404: Error waiting for SSH: Packer experienced an authentication error"
        ),
        "{}",
        text(&out.stderr)
    );
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["result"], "failed");
    assert!(
        record["gallery_image"].is_null(),
        "the az JSON before Packer is not an artifact"
    );

    let out = sigcat(
        &["parse", "fixtures/console/stdout-only-make-failed.log"],
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    for expected in [
        "no Packer build in fixtures/console/stdout-only-make-failed.log",
        "stderr",
        "2>&1",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn no_secret_reaches_any_output() {
    for format in ["json", "github", "azure-devops", "env"] {
        let out = sigcat(
            &[
                "parse",
                "fixtures/console/vhd-plugin-1.4-sas.log",
                "-o",
                format,
            ],
            None,
        );
        assert_eq!(out.status.code(), Some(0));
        for stream in [&out.stdout, &out.stderr] {
            assert!(
                !text(stream).contains("AbCdEfGh"),
                "{format}: {}",
                text(stream)
            );
        }
    }
    // An error that quotes a SAS URL redacts it too.
    let input = b"--> azure-arm.x: Azure.ResourceManagement.VMImage:\n\nOSType: Linux\nOSDiskUri: https://a/b.vhd\nOSDiskUri: https://a/b.vhd?sv=1&sig=TopSecretSignature\n";
    let out = sigcat(&["parse"], Some(input));
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("sig=REDACTED"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("TopSecret"));
}

#[test]
fn empty_junk_and_huge_lines_never_crash() {
    let out = sigcat(&["parse"], Some(b""));
    assert_eq!(out.status.code(), Some(3), "empty input: no artifact");
    let junk: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let out = sigcat(&["parse"], Some(&junk));
    assert!(
        matches!(out.status.code(), Some(3 | 4)),
        "{}",
        text(&out.stderr)
    );

    // A 100 MB line (no newline) before a real log: the line is skipped, the image is found.
    let mut input = vec![b'x'; 100 << 20];
    input.push(b'\n');
    input.extend_from_slice(&std::fs::read(fixture("console/sig-ubuntu-2404.log")).unwrap());
    let out = sigcat(&["parse"], Some(&input));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["gallery_image"]["version"], "0.3.1721037000");
}

#[test]
fn several_inputs_and_explicit_input_format() {
    let out = sigcat(
        &[
            "parse",
            "fixtures/console/gallery-only.log",
            "fixtures/console/dtl.log",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout).lines().count(), 2);
    // Forcing the console format on a manifest finds nothing.
    let out = sigcat(
        &[
            "parse",
            "--input-format",
            "console",
            "fixtures/manifest/manifest.json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    let out = sigcat(
        &["parse", "--input-format", "manifest"],
        Some(b"{\"builds\": [}"),
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("<stdin>:1:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn help_shows_examples() {
    let out = sigcat(&["parse", "--help"], None);
    let help = text(&out.stdout);
    assert!(
        help.contains("Examples:")
            && help.contains("--tee --manifest manifest.json --output-file records.json"),
        "{help}"
    );
    assert!(help.contains("Exit codes"));
}
