//! Whose fault: every problem is reported as the input's (file and line), the catalog's own
//! data, the storage service's, or the operator's settings, with one exit code per meaning in
//! every subcommand. One item's problem never stops the others, and a pass-through never stops
//! before the end of its input.

use crate::util::{Azurite, fixture, fixture_path, peak_rss_kib, scratch, sigcat, text};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const GOOD: &str = "fixtures/console/sig-ubuntu-2404.log";
const VHD: &str = "fixtures/console/vhd-plugin-2.5.log";
const FLATCAR: &str = "fixtures/console/flatcar-gen2.log";

fn catalog_entries(catalog: &str) -> Vec<serde_json::Value> {
    let out = sigcat(
        &["catalog", "list", "-o", "json", "--catalog", catalog],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_item_the_catalog_cannot_hold_is_refused_and_the_others_are_published() {
    let dir = scratch("faults-refused-item");
    let cat = dir.join("catalog").display().to_string();
    let out = sigcat(&["publish", VHD, "--catalog", &cat], &[], None);
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(6),
        "refused, not a storage failure: {err}"
    );
    assert!(
        err.contains("vhd-ubuntu-2204")
            && err.contains("no gallery image version or managed image"),
        "{err}"
    );
    assert!(!err.contains("storage"), "not blamed on the storage: {err}");

    // Three inputs: the VHD and the Flatcar build (no Plan) are refused, the good one published.
    let out = sigcat(
        &["publish", VHD, GOOD, FLATCAR, "--catalog", &cat],
        &[],
        None,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    let entries = catalog_entries(&cat);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["image_definition"], "capi-ubuntu-2404");
    // The summary lists each outcome, naming the item.
    let summary: Vec<&str> = err.lines().filter(|l| l.starts_with("sigcat: ")).collect();
    for (needle, outcome) in [
        ("vhd-ubuntu-2204", "refused"),
        ("sig-flatcar-gen2", "refused"),
        ("capi-ubuntu-2404", "published"),
    ] {
        assert!(
            summary
                .iter()
                .any(|l| l.contains(needle) && l.contains(outcome)),
            "no `{outcome}` line for {needle}:\n{err}"
        );
    }
    assert!(
        err.contains("Plan"),
        "says what the Flatcar build lacks: {err}"
    );

    // A plan for the Flatcar build makes it publishable.
    let out = sigcat(
        &[
            "publish",
            FLATCAR,
            "--plan",
            "kinvolk:flatcar-container-linux-corevm-amd64:stable-gen2",
            "--catalog",
            &cat,
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(catalog_entries(&cat).len(), 2);
}

/// Input that goes bad in the middle, followed by far more than a pipe holds.
fn poisoned(middle: &[u8]) -> Vec<u8> {
    let mut input = fixture("console/sig-ubuntu-2404.log");
    input.extend_from_slice(middle);
    for i in 0..40_000 {
        input.extend_from_slice(
            format!("    azure-arm.sig-ubuntu-2404: trailing noise line {i}\n").as_bytes(),
        );
    }
    input
}

#[test]
fn the_pass_through_never_stops_before_the_end_of_input() {
    let key_twice = poisoned(
        b"--> azure-arm.sig-x: Azure.ResourceManagement.VMImage:\n\nOSType: Linux\nOSType: Windows\n\n",
    );
    let bad_utf8 = poisoned(
        b"--> azure-arm.sig-x: Azure.ResourceManagement.VMImage:\n\nOSType: Lin\xffux\n\n",
    );
    let mut huge = b"--> azure-arm.sig-x: Azure.ResourceManagement.VMImage:\n\nOSType: ".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 2 << 20));
    huge.extend_from_slice(b"\n\n");
    let huge_line = poisoned(&huge);
    let dir = scratch("faults-pass-through");
    let cat = dir.join("catalog").display().to_string();
    let records = dir.join("records.json").display().to_string();
    for (what, input) in [
        ("a key twice", &key_twice),
        ("invalid UTF-8", &bad_utf8),
        ("a line over 1 MiB", &huge_line),
    ] {
        for args in [
            vec!["ingest", "--catalog", cat.as_str()],
            vec!["parse", "--tee", "--output-file", records.as_str()],
        ] {
            let out = sigcat(&args, &[], Some(input));
            assert!(
                out.stdout == *input,
                "{args:?} with {what}: stdout has {} of {} bytes",
                out.stdout.len(),
                input.len()
            );
            assert_eq!(
                out.status.code(),
                Some(4),
                "{args:?} {what}: {}",
                text(&out.stderr)
            );
            assert!(
                text(&out.stderr).contains("<stdin>:"),
                "names the line: {}",
                text(&out.stderr)
            );
        }
    }
    // Bad settings: the log still passes through whole; the problem is said at once and at the end.
    let good = poisoned(b"");
    let out = sigcat(
        &["ingest", "--catalog", "azblob://acct/images"],
        &[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "this is not a connection string",
        )],
        Some(&good),
    );
    assert!(
        out.stdout == good,
        "ingest with bad settings: {} of {} bytes",
        out.stdout.len(),
        good.len()
    );
    crate::util::assert_exit_says(&out, 2, "AZURE_STORAGE_CONNECTION_STRING");
}

#[test]
fn an_unexpanded_azure_devops_macro_is_an_unset_variable() {
    let azurite = Azurite::start("faults-macro");
    let url = azurite.url("images");
    // Azure DevOps passes `$(NAME)` through when NAME is undefined. Unset, the emulator's
    // account falls back to its well-known key, so the publish works.
    let out = sigcat(
        &["publish", GOOD, "--catalog", &url],
        &[
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                "$(SIGCAT_STORAGE_CONNECTION_STRING)",
            ),
            ("AZURE_STORAGE_SAS_TOKEN", "$(SAS)"),
        ],
        None,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("AZURE_STORAGE_CONNECTION_STRING")
            && err.contains("$(SIGCAT_STORAGE_CONNECTION_STRING)")
            && err.contains("unset"),
        "warned: {err}"
    );
    assert!(err.contains("AZURE_STORAGE_SAS_TOKEN"), "{err}");
}

#[test]
fn an_unknown_catalog_scheme_is_a_usage_error() {
    let dir = scratch("faults-scheme");
    for location in [
        "az://acct/images",
        "wasbs://images@acct.blob.core.windows.net/x",
        "s3://bucket",
        // Not a local folder named with the password (which was printed), nor a relative
        // folder named after another host.
        "file://user:PASSWORD@/tmp/x",
        "file://otherhost/p",
    ] {
        let out = Command::new(crate::util::BIN)
            .args([
                "publish",
                &fixture_path("console/sig-ubuntu-2404.log")
                    .display()
                    .to_string(),
                "--catalog",
                location,
            ])
            .current_dir(&dir)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{location}: {err}");
        assert!(
            err.contains("azblob://ACCOUNT/CONTAINER"),
            "lists the accepted forms: {err}"
        );
        assert!(!err.contains("PASSWORD"), "{err}");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "no folder named after the scheme"
        );
    }
}

/// Runs sigcat with its stdout (or stderr) a pipe nobody reads any more.
fn with_closed(stream: &str, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = Command::new(crate::util::BIN);
    cmd.args(args)
        .current_dir(crate::util::repo())
        .stdin(Stdio::null());
    if stream == "stdout" {
        cmd.stdout(Stdio::from(writer)).stderr(Stdio::piped());
    } else {
        cmd.stderr(Stdio::from(writer)).stdout(Stdio::piped());
    }
    cmd.output().unwrap()
}

#[test]
fn a_closed_stdout_or_stderr_never_panics() {
    let dir = scratch("faults-closed-pipes");
    let cat = dir.join("catalog").display().to_string();
    let out = sigcat(&["publish", GOOD, "--catalog", &cat], &[], None);
    assert_eq!(out.status.code(), Some(0));
    let id = catalog_entries(&cat)[0]["id"].as_str().unwrap().to_string();
    for args in [
        vec!["catalog", "list", "--catalog", &cat],
        vec!["catalog", "list", "-o", "json", "--catalog", &cat],
        vec!["catalog", "latest", "--catalog", &cat],
        vec!["catalog", "show", &id, "--catalog", &cat],
        vec!["parse", GOOD],
        vec!["render", GOOD, "--vm-size", "Standard_D2s_v3"],
    ] {
        let out = with_closed("stdout", &args);
        let err = text(&out.stderr);
        assert_ne!(out.status.code(), Some(101), "{args:?} panicked: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    for args in [
        vec!["parse", "fixtures/invalid/key-twice.log"],
        vec!["catalog", "show", "no-such-image", "--catalog", &cat],
        vec!["publish", VHD, "--catalog", &cat],
        vec!["parse", "--no-such-flag"],
    ] {
        let out = with_closed("stderr", &args);
        assert_ne!(out.status.code(), Some(101), "{args:?} panicked");
        assert!(out.status.code().is_some(), "{args:?} died of a signal");
    }
}

#[test]
fn the_output_file_writes_through_fifos_and_symlinks() {
    let dir = scratch("faults-output-file");
    // A FIFO: written through (a reader gets the records), never replaced by a regular file.
    let fifo = dir.join("records.fifo");
    crate::util::mkfifo(&fifo);
    // The read end is opened first, without blocking, so the test can never hang on it.
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let out = sigcat(
        &["parse", GOOD, "--output-file", fifo.to_str().unwrap()],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut got = Vec::new();
    let _ = reader.read_to_end(&mut got);
    assert!(text(&got).contains("capi-ubuntu-2404"), "{}", text(&got));
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "still a FIFO"
    );
    // A symlink: its target gets the new content, the link stays a link.
    let target = dir.join("real.json");
    std::fs::write(&target, "old\n").unwrap();
    let link = dir.join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = sigcat(
        &["parse", GOOD, "--output-file", link.to_str().unwrap()],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&target)
            .unwrap()
            .contains("capi-ubuntu-2404")
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

use std::os::unix::fs::FileTypeExt;

/// A log of about `mib` MiB: the fixture with provisioner noise in front.
fn big_log(path: &Path, mib: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let line = "    azure-arm.sig-ubuntu-2404: TASK [kubernetes : Install Kubernetes binaries] *******************\n";
    for _ in 0..(mib << 20) / line.len() {
        f.write_all(line.as_bytes()).unwrap();
    }
    f.write_all(&fixture("console/sig-ubuntu-2404.log"))
        .unwrap();
}

#[test]
fn render_and_publish_stream_their_input() {
    let dir = scratch("faults-streaming");
    let log = dir.join("big.log");
    big_log(&log, 200);
    let log = log.to_str().unwrap();
    let cat = dir.join("catalog").display().to_string();
    for args in [
        vec!["parse", log],
        vec!["render", log, "--vm-size", "Standard_D2s_v3"],
        vec!["publish", log, "--catalog", &cat],
    ] {
        let (code, kib) = peak_rss_kib(&args);
        assert_eq!(code, Some(0), "{args:?}");
        assert!(
            kib < 64 * 1024,
            "{args:?} peaked at {kib} KiB for a 200 MiB log"
        );
    }
    // A 63 MiB manifest (many appended runs) stays within about twice its size. It is written
    // build by build: the test itself must stay small, because the kernel counts the memory
    // of the test process that forked the child in the child's peak.
    let manifest = dir.join("manifest.json");
    {
        let one: serde_json::Value =
            serde_json::from_slice(&fixture("manifest/manifest.json")).unwrap();
        let newest = one["builds"][1].clone();
        let mut f = std::io::BufWriter::new(std::fs::File::create(&manifest).unwrap());
        f.write_all(b"{\"builds\": [").unwrap();
        let mut size = 0;
        let mut n = 0;
        while size < 63 << 20 {
            let mut b = newest.clone();
            b["packer_run_uuid"] = format!("run-{n}").into();
            b["custom_data"]["padding"] = "x".repeat(4000).into();
            let text = serde_json::to_vec(&b).unwrap();
            size += text.len() + 2;
            f.write_all(&text).unwrap();
            f.write_all(b",\n").unwrap();
            n += 1;
        }
        f.write_all(&serde_json::to_vec(&newest).unwrap()).unwrap();
        f.write_all(b"], \"last_run_uuid\": \"5d2c8d4e-6a0b-4e1e-9c8e-1f2a3b4c5d6e\"}")
            .unwrap();
    }
    let bytes = std::fs::metadata(&manifest).unwrap().len();
    let (code, kib) = peak_rss_kib(&["parse", manifest.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert!(
        kib as u64 * 1024 < bytes * 2 + (16 << 20),
        "{kib} KiB for a {bytes}-byte manifest"
    );
}

#[test]
fn more_images_than_the_limit_is_an_error_not_a_silent_drop() {
    let mut log = Vec::new();
    for n in 0..4100 {
        log.extend_from_slice(
            crate::util::log_for(n)
                .replace("sig-ubuntu-2404", &format!("sig-ubuntu-{n}"))
                .as_bytes(),
        );
    }
    let out = sigcat(&["parse"], &[], Some(&log));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("<stdin>:") && err.contains("4096"), "{err}");
}

#[test]
fn control_characters_in_values_are_invalid_input() {
    let out = sigcat(
        &["parse", "fixtures/invalid/control-character.log"],
        &[],
        None,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("control-character.log:"), "{err}");
    assert!(
        err.contains("ManagedImageLocation") && err.contains("U+0001"),
        "{err}"
    );
}

#[test]
fn unknown_index_fields_survive_a_publish() {
    let dir = scratch("faults-unknown-fields");
    let cat = dir.join("catalog");
    let cat_s = cat.display().to_string();
    let out = sigcat(
        &[
            "publish",
            GOOD,
            "--catalog",
            &cat_s,
            "--kubernetes-version",
            "1.30.3",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    // A newer sigcat's fields: in the root, in a section's reference, in a section, in a
    // shard's reference, in a shard and an entry.
    let get = |key: &str| std::fs::read(cat.join(key)).unwrap();
    let put = |key: &str, bytes: &[u8]| {
        std::fs::create_dir_all(cat.join(key).parent().unwrap()).unwrap();
        std::fs::write(cat.join(key), bytes).unwrap()
    };
    let files = crate::util::IndexFiles {
        get: &get,
        put: &put,
    };
    let read = |key: &str| files.read(key);
    let (name, section_name, shard_ref) = files.shards(&files.root()).remove(0);
    let mut shard = read(shard_ref["key"].as_str().unwrap());
    shard["future_shard_field"] = serde_json::json!("kept");
    shard["images"][0]["future_field"] = serde_json::json!([1, 2, 3]);
    files.plant_shard(
        &name,
        &shard,
        |section| {
            section["shards"][&name]["future_ref_field"] = 1.into();
            section["future_section_field"] = "kept".into();
        },
        |root| {
            root["sections"][&section_name]["future_ref_field"] = 2.into();
            root["from_the_future"] = serde_json::json!({"keep": true});
        },
    );
    // Another image of the same shard is published: everything unknown is kept.
    let other = dir.join("other.log");
    std::fs::write(&other, crate::util::log_for(7)).unwrap();
    let out = sigcat(
        &[
            "publish",
            other.to_str().unwrap(),
            "--catalog",
            &cat_s,
            "--kubernetes-version",
            "1.30.3",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let root = read("index.json");
    assert_eq!(root["from_the_future"]["keep"], true);
    assert_eq!(root["sections"][&section_name]["future_ref_field"], 2);
    let section = read(root["sections"][&section_name]["key"].as_str().unwrap());
    assert_eq!(section["future_section_field"], "kept");
    assert_eq!(section["shards"][&name]["future_ref_field"], 1);
    let shard = read(section["shards"][&name]["key"].as_str().unwrap());
    assert_eq!(shard["images"].as_array().unwrap().len(), 2);
    assert_eq!(shard["future_shard_field"], "kept");
    let kept = shard["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["gallery_image_version"] == "0.3.1721037000")
        .unwrap();
    assert_eq!(kept["future_field"], serde_json::json!([1, 2, 3]));
}

#[test]
fn publishing_more_information_later_is_an_update_and_less_is_not() {
    let dir = scratch("faults-enrich");
    let record_of = |cat: &str| -> serde_json::Value {
        let out = sigcat(
            &["catalog", "latest", "--record", "--catalog", cat],
            &[],
            None,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // The README's two examples, log first: the manifest then adds the Kubernetes version.
    let cat = dir.join("log-first").display().to_string();
    let out = sigcat(&["publish", GOOD, "--catalog", &cat], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(record_of(&cat)["kubernetes_version"].is_null());
    let out = sigcat(
        &[
            "publish",
            GOOD,
            "--manifest",
            "fixtures/manifest/manifest.json",
            "--catalog",
            &cat,
        ],
        &[],
        None,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("updated") && err.contains("kubernetes_version"),
        "{err}"
    );
    assert_eq!(record_of(&cat)["kubernetes_version"], "1.30.3");
    assert_eq!(
        catalog_entries(&cat).len(),
        1,
        "one image, its newest revision"
    );

    // The other way round: the log alone after the manifest loses nothing.
    let cat = dir.join("manifest-first").display().to_string();
    let with_manifest = [
        "publish",
        GOOD,
        "--manifest",
        "fixtures/manifest/manifest.json",
        "--catalog",
        &cat,
    ];
    assert_eq!(sigcat(&with_manifest, &[], None).status.code(), Some(0));
    let out = sigcat(&["publish", GOOD, "--catalog", &cat], &[], None);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("unchanged"), "{err}");
    assert_eq!(record_of(&cat)["kubernetes_version"], "1.30.3");

    // A known field never changes: another Kubernetes version is a conflict.
    let out = sigcat(
        &[
            "publish",
            GOOD,
            "--kubernetes-version",
            "1.30.9",
            "--catalog",
            &cat,
        ],
        &[],
        None,
    );
    crate::util::assert_exit_says(&out, 7, "kubernetes_version");
}

#[test]
fn exit_codes_mean_the_same_in_every_subcommand() {
    let truncated = "fixtures/console/truncated.log";
    let failed = "fixtures/console/failed.log";
    let cases: [(&[&str], i32); 8] = [
        (&["parse", truncated], 3),
        (&["render", truncated, "--vm-size", "S"], 3),
        (&["parse", failed], 1),
        (&["render", failed, "--vm-size", "S"], 1),
        (&["parse", failed, "-o", "sig-publishing-info"], 1),
        (&["parse", truncated, "-o", "sig-publishing-info"], 3),
        (&["render", VHD, "--vm-size", "S"], 6),
        (&["parse", "fixtures/invalid/key-twice.log"], 4),
    ];
    for (args, code) in cases {
        let out = sigcat(args, &[], None);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let dir = scratch("faults-exit-codes");
    let cat = dir.join("catalog").display().to_string();
    assert_eq!(
        sigcat(&["publish", GOOD, "--catalog", &cat], &[], None)
            .status
            .code(),
        Some(0)
    );
    for args in [
        vec!["catalog", "show", "nope", "--catalog", &cat],
        vec![
            "catalog",
            "latest",
            "--kubernetes",
            "1.2",
            "--catalog",
            &cat,
        ],
    ] {
        let out = sigcat(&args, &[], None);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // The catalog's own data is wrong: its own code, not a storage failure.
    std::fs::write(dir.join("catalog/index.json"), "{ not json").unwrap();
    let out = sigcat(&["catalog", "list", "--catalog", &cat], &[], None);
    crate::util::assert_exit_says(&out, 9, "index.json");
    // Every subcommand's --help carries the same table.
    let table_line = "  6  refused:";
    for sub in ["parse", "render", "publish", "ingest", "catalog", "watch"] {
        let help = text(&sigcat(&[sub, "--help"], &[], None).stdout);
        assert!(
            help.contains(table_line),
            "{sub} --help lacks the exit-code table:\n{help}"
        );
    }
}

/// One classification, one exit decision: the same inputs give the same code through every
/// command that takes them, and the code is the documented precedence's (4 invalid input wins
/// over 6 refused; a failed build beside a published one is 1).
#[test]
fn the_same_inputs_give_one_exit_code_in_parse_publish_ingest_and_watch() {
    let cases: [(&[&str], i32); 2] = [
        (&["fixtures/invalid/key-twice.log", VHD], 4),
        (
            &[
                "fixtures/console/failed.log",
                "fixtures/console/multi-build.log",
            ],
            1,
        ),
    ];
    for (n, (inputs, expected)) in cases.iter().enumerate() {
        let dir = scratch(&format!("faults-one-code-{n}"));
        let cat = dir.join("catalog").display().to_string();
        let mut codes = Vec::new();
        let parse = sigcat(&[&["parse"], *inputs].concat(), &[], None);
        codes.push(("parse", parse.status.code(), text(&parse.stderr)));
        let publish = sigcat(
            &[&["publish", "--catalog", &cat], *inputs].concat(),
            &[],
            None,
        );
        codes.push(("publish", publish.status.code(), text(&publish.stderr)));
        let joined: Vec<u8> = inputs
            .iter()
            .flat_map(|i| fixture(i.trim_start_matches("fixtures/")))
            .collect();
        let ingest_cat = dir.join("catalog-ingest").display().to_string();
        let ingest = sigcat(&["ingest", "--catalog", &ingest_cat], &[], Some(&joined));
        codes.push(("ingest", ingest.status.code(), text(&ingest.stderr)));
        let drops = dir.join("drops");
        std::fs::create_dir_all(&drops).unwrap();
        for (i, input) in inputs.iter().enumerate() {
            std::fs::write(
                drops.join(format!("build-{i}.log")),
                fixture(input.trim_start_matches("fixtures/")),
            )
            .unwrap();
        }
        let watch_cat = dir.join("catalog-watch").display().to_string();
        let watch = sigcat(
            &[
                "watch",
                drops.to_str().unwrap(),
                "--once",
                "--catalog",
                &watch_cat,
            ],
            &[],
            None,
        );
        codes.push(("watch --once", watch.status.code(), text(&watch.stderr)));
        for (command, code, err) in &codes {
            assert_eq!(*code, Some(*expected), "{command} {inputs:?}: {err}");
        }
    }
}
