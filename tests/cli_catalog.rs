//! `sigcat publish`, `ingest` and `catalog` as users run them, against a local catalog and a
//! real Azurite reached through the usual environment variables.

use crate::util::{
    AZURITE_KEY, Azurite, assert_exit_says, connection_string, scratch, sigcat, text,
};
use std::process::{Command, Stdio};

#[test]
fn ingest_passes_the_log_through_and_publishes_to_azurite() {
    let azurite = Azurite::start("ingest");
    let cs = connection_string(azurite.port);
    let env = [("AZURE_STORAGE_CONNECTION_STRING", cs.as_str())];
    let log = std::fs::read(crate::util::repo().join("fixtures/console/multi-build.log")).unwrap();
    let out = sigcat(
        &["ingest", "--catalog", "azblob://devstoreaccount1/images"],
        &env,
        Some(&log),
    );
    assert_eq!(out.stdout, log, "the build log passes through unchanged");
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed build fails the pipe even without pipefail: {err}"
    );
    assert_eq!(err.matches("sigcat: published ").count(), 2, "{err}");
    assert!(
        err.contains("azure-arm.sig-flatcar-gen2 (<stdin>) failed"),
        "{err}"
    );
    assert!(
        !err.contains(AZURITE_KEY) && !err.contains("AccountKey"),
        "{err}"
    );

    let list = sigcat(
        &[
            "catalog",
            "list",
            "-o",
            "json",
            "--catalog",
            "azblob://devstoreaccount1/images",
        ],
        &env,
        None,
    );
    assert_eq!(list.status.code(), Some(0), "{}", text(&list.stderr));
    let entries: Vec<serde_json::Value> = text(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut defs: Vec<&str> = entries
        .iter()
        .map(|e| e["image_definition"].as_str().unwrap())
        .collect();
    defs.sort();
    assert_eq!(
        defs,
        ["capi-ubuntu-2204-gen2", "capi-windows-2022-containerd"]
    );

    // The same catalog through an emulator URL and UseDevelopmentStorage=true.
    let url = azurite.url("images");
    let latest = sigcat(
        &["catalog", "latest", "--os", "windows", "--catalog", &url],
        &[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "UseDevelopmentStorage=true",
        )],
        None,
    );
    assert_eq!(latest.status.code(), Some(0), "{}", text(&latest.stderr));
    let t: serde_norway::Value = serde_norway::from_slice(&latest.stdout).unwrap();
    assert_eq!(
        t["spec"]["template"]["spec"]["osDisk"]["osType"].as_str(),
        Some("Windows")
    );
    assert_eq!(
        t["spec"]["template"]["spec"]["image"]["computeGallery"]["name"].as_str(),
        Some("capi-windows-2022-containerd")
    );
}

#[test]
fn publish_latest_and_show_on_the_local_store() {
    let dir = scratch("cli-local-catalog");
    let cat = dir.join("catalog");
    let cat = cat.to_str().unwrap();
    let out = sigcat(
        &[
            "publish",
            "fixtures/console/sig-ubuntu-2404.log",
            "--manifest",
            "fixtures/manifest/manifest.json",
            "--catalog",
            cat,
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let again = sigcat(
        &[
            "publish",
            "fixtures/console/sig-ubuntu-2404.log",
            "--manifest",
            "fixtures/manifest/manifest.json",
        ],
        &[("SIGCAT_CATALOG", cat)],
        None,
    );
    assert_eq!(again.status.code(), Some(0));
    assert!(
        text(&again.stderr).contains("unchanged"),
        "{}",
        text(&again.stderr)
    );
    let conflict = sigcat(
        &[
            "publish",
            "fixtures/console/sig-ubuntu-2404.log",
            "--kubernetes-version",
            "1.30.9",
            "--catalog",
            cat,
        ],
        &[],
        None,
    );
    assert_eq!(
        conflict.status.code(),
        Some(7),
        "{}",
        text(&conflict.stderr)
    );

    let record = sigcat(
        &[
            "catalog",
            "latest",
            "--kubernetes",
            "1.30",
            "--record",
            "--catalog",
            cat,
        ],
        &[],
        None,
    );
    let r: serde_json::Value = serde_json::from_slice(&record.stdout).unwrap();
    assert_eq!(r["kubernetes_version"], "1.30.3");
    assert_eq!(r["gallery_image"]["version"], "0.3.1721037000");
    let table = text(&sigcat(&["catalog", "list", "--catalog", cat], &[], None).stdout);
    let id = table
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");
    let show = sigcat(
        &["catalog", "show", &id, "--template", "--catalog", cat],
        &[],
        None,
    );
    let template = crate::util::kubectl_agrees(&text(&show.stdout));
    assert_eq!(template[0]["kind"], "AzureMachineTemplate");
    let none = sigcat(
        &[
            "catalog",
            "latest",
            "--kubernetes",
            "1.20",
            "--catalog",
            cat,
        ],
        &[],
        None,
    );
    assert_eq!(none.status.code(), Some(3));
}

#[test]
fn sixteen_publisher_processes_lose_nothing() {
    let dir = scratch("cli-16-publishers");
    let cat = dir.join("catalog");
    let mut children = Vec::new();
    for i in 0..16 {
        // Each process publishes its own image version (made from the fixture's record).
        let records = sigcat(
            &["parse", "fixtures/console/sig-ubuntu-2404.log"],
            &[],
            None,
        );
        let line = text(&records.stdout).replace("0.3.1721037000", &format!("0.3.{}", 500 + i));
        let file = dir.join(format!("r{i}.json"));
        std::fs::write(&file, line).unwrap();
        children.push(
            Command::new(env!("CARGO_BIN_EXE_sigcat"))
                .args([
                    "publish",
                    file.to_str().unwrap(),
                    "--catalog",
                    cat.to_str().unwrap(),
                ])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let list = sigcat(
        &[
            "catalog",
            "list",
            "-o",
            "json",
            "--catalog",
            cat.to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert_eq!(text(&list.stdout).lines().count(), 16);
}

#[test]
fn credentials_never_appear_in_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cs = connection_string(port);
    let out = sigcat(
        &[
            "publish",
            "fixtures/console/sig-ubuntu-2404.log",
            "--catalog",
            "azblob://devstoreaccount1/images",
        ],
        &[("AZURE_STORAGE_CONNECTION_STRING", &cs)],
        None,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "storage unreachable: {err}");
    assert!(
        err.contains("azblob://devstoreaccount1/images") || err.contains("devstoreaccount1"),
        "names the catalog: {err}"
    );
    assert!(
        !err.contains(AZURITE_KEY) && !err.contains("Eby8vdM02"),
        "{err}"
    );

    let sas =
        "sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=2030-01-01T00:00:00Z&sig=SuperSecretSignature%3D";
    let out = sigcat(
        &[
            "publish",
            "fixtures/console/sig-ubuntu-2404.log",
            "--catalog",
            &format!("http://127.0.0.1:{port}/acct/images"),
        ],
        &[("AZURE_STORAGE_SAS_TOKEN", sas)],
        None,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(!err.contains("SuperSecret"), "{err}");
}

/// Publishes the fixture build to an Azurite catalog with the account key; must succeed.
fn publish_with_account_key(url: &str) {
    let out = sigcat(
        &[
            "publish",
            "fixtures/console/sig-ubuntu-2404.log",
            "--catalog",
            url,
        ],
        &[("AZURE_STORAGE_KEY", AZURITE_KEY)],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// For consumers that are not sigcat (curl, a CDN, a browser): JSON and YAML say so, and the
/// index (which every publish replaces) must be revalidated, while other objects never change.
#[test]
fn blobs_carry_content_types_and_cache_control_for_other_consumers() {
    let azurite = Azurite::start("headers");
    let url = azurite.url("headers/cat");
    publish_with_account_key(&url);
    let names = azurite.blob_names("headers");
    assert!(names.len() >= 3, "{names:?}");
    for name in names {
        let (content_type, cache) = azurite.blob_headers("headers", &name);
        let expected_type = if name.ends_with(".json") {
            "application/json"
        } else if name.ends_with(".yaml") {
            "application/yaml"
        } else if name.ends_with(".sig") {
            "text/plain; charset=utf-8"
        } else {
            "application/octet-stream"
        };
        assert_eq!(content_type, expected_type, "{name}");
        // What changes in place is revalidated; what is named by its content is immutable.
        let key = name.strip_prefix("cat/").unwrap();
        let changes = key == "index.json"
            || key == "index.json.sig"
            || key.starts_with("latest/")
            || (key.ends_with(".sig") && !key.starts_with("signatures/"));
        let expected_cache = if changes {
            "no-cache"
        } else {
            "public, max-age=31536000, immutable"
        };
        assert_eq!(cache.as_deref(), Some(expected_cache), "{name}");
    }
}

/// The README's recipe for consumers with only curl (a bootstrap script, Terraform's `http`
/// data source, a CDN in front of the container), run as written with the real curl and jq
/// against Azurite: one GET answers "the image for Kubernetes 1.30 on ubuntu-2404 [in a
/// region]", and the careful version checks the root's signature with ssh-keygen, the
/// section's sha256 against it and the pointer's against the section.
#[test]
fn a_consumer_with_only_curl_finds_the_image_in_one_get() {
    let azurite = Azurite::start("curl");
    let url = azurite.url("public");
    let dir = scratch("cli-curl");
    let key = dir.join("key");
    assert!(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "ci@example.com",
                "-f"
            ])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let allowed = dir.join("allowed_signers");
    std::fs::write(
        &allowed,
        format!(
            "ci@example.com {}",
            std::fs::read_to_string(key.with_extension("pub")).unwrap()
        ),
    )
    .unwrap();
    // A signed write, which must succeed.
    let write = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--catalog", &url, "--signing-key", key.to_str().unwrap()]);
        let out = sigcat(&all, &[], None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    };
    for (n, k8s) in [(1, "1.30.1"), (2, "1.30.2"), (3, "1.29.9")] {
        let log = dir.join(format!("{n}.log"));
        std::fs::write(&log, crate::util::log_for(n)).unwrap();
        write(&[
            "publish",
            log.to_str().unwrap(),
            "--kubernetes-version",
            k8s,
        ]);
    }
    azurite.make_public("public");
    let base = url.clone();
    let bash = |script: &str| {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .env("CATALOG", &base)
            .env("ALLOWED_SIGNERS", &allowed)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let run = |script: &str| {
        let out = bash(script);
        assert!(
            out.status.success(),
            "{script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // The README's recipes, as written there.
    let readme = std::fs::read_to_string(crate::util::repo().join("README.md")).unwrap();
    let section = &readme[readme.find("### Lookups with curl and jq").unwrap()..];
    let blocks: Vec<&str> = section
        .split("```sh\n")
        .skip(1)
        .take(2)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    // One GET each (the CATALOG line is the reader's own).
    let one_get: Vec<&str> = blocks[0]
        .lines()
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert_eq!(one_get.len(), 2, "{}", blocks[0]);
    let id = run(one_get[0]);
    assert!(id.ends_with("/versions/0.3.2"), "{id}");
    assert_eq!(run(one_get[1]), "0.3.2");
    let headers = run(r#"curl -fsSI "$CATALOG/latest/1.30/ubuntu-2404.json""#);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{headers}"
    );
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("cache-control: no-cache"),
        "{headers}"
    );
    // The careful recipe: the root's signature, then the pointer's sha256 as the root says it.
    let careful = blocks[1];
    assert!(careful.contains("ssh-keygen -Y verify"), "{careful}");
    assert_eq!(run(careful), "0.3.2");
    // A pointer outlives its image's end of life until the next write; the careful recipe
    // does not serve it then, and verify warns rather than calls the catalog corrupt.
    // The recipe's clock is a `date` that says a fixed time; sigcat's is the real one, so the
    // end of life is set far enough ahead that the pointer is surely written before it.
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let eol = time::OffsetDateTime::now_utc() + time::Duration::seconds(15);
    let list = sigcat(
        &["catalog", "list", "-o", "json", "--catalog", &url],
        &[],
        None,
    );
    let newest = text(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["gallery_image_version"] == "0.3.2")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    write(&["catalog", "end-of-life", &newest, &rfc3339(eol)]);
    let shim = dir.join("clock");
    std::fs::create_dir_all(&shim).unwrap();
    std::fs::write(
        shim.join("date"),
        "#!/bin/sh\nexec /usr/bin/date -d \"$FAKE_NOW\" \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(shim.join("date"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let at = |t: time::OffsetDateTime| {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", careful])
            .env("CATALOG", &base)
            .env("ALLOWED_SIGNERS", &allowed)
            .env("FAKE_NOW", rfc3339(t))
            .env(
                "PATH",
                format!("{}:{}", shim.display(), std::env::var("PATH").unwrap()),
            )
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let before = at(eol - time::Duration::hours(1));
    assert_eq!(
        String::from_utf8_lossy(&before.stdout).trim(),
        "0.3.2",
        "before its end of life: {}",
        String::from_utf8_lossy(&before.stderr)
    );
    let stale = at(eol + time::Duration::hours(1));
    assert!(
        !stale.status.success() && stale.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&stale.stdout)
    );
    // The pointer was written before the end of life (else this test proves nothing).
    let pointer = run(r#"curl -fsS "$CATALOG/latest/1.30/ubuntu-2404.json""#);
    let pointer: serde_json::Value = serde_json::from_str(&pointer).unwrap();
    assert_eq!(
        pointer["image"]["gallery_image_version"], "0.3.2",
        "{pointer}"
    );
    while time::OffsetDateTime::now_utc() <= eol {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let verify = sigcat(
        &[
            "catalog",
            "verify",
            "--catalog",
            &url,
            "--trusted-keys",
            allowed.to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
    assert!(
        text(&verify.stdout).contains("warning") && text(&verify.stdout).contains("end of life"),
        "{}",
        text(&verify.stdout)
    );
    // A pointer for a minor that has no images answers 404, which curl -f turns into a failure.
    let out = Command::new("curl")
        .args(["-fsS", &format!("{base}/latest/1.99/ubuntu-2404.json")])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn account_key_and_sas_token_credentials_against_azurite() {
    let azurite = Azurite::start("credentials");
    let url = azurite.url("sas-images");
    // AZURE_STORAGE_KEY (the account comes from the URL); this also creates the container.
    publish_with_account_key(&url);

    // A container SAS, made the way an operator would with the account key.
    let token = azurite.container_sas("sas-images");
    assert!(token.contains("sig="));
    let env = [("AZURE_STORAGE_SAS_TOKEN", token.as_str())];
    let out = sigcat(
        &[
            "publish",
            "fixtures/console/azure-devops-crlf.log",
            "--catalog",
            &url,
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let list = sigcat(
        &["catalog", "list", "-o", "json", "--catalog", &url],
        &env,
        None,
    );
    assert_eq!(
        text(&list.stdout).lines().count(),
        2,
        "{}",
        text(&list.stderr)
    );
    let signature = token
        .split('&')
        .find_map(|p| p.strip_prefix("sig="))
        .unwrap();
    for o in [&out, &list] {
        assert!(!text(&o.stderr).contains(signature) && !text(&o.stdout).contains(signature));
    }

    // A wrong key: one line that says so and what to check, no HTTP dump, settings' exit code.
    let wrong =
        "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eA==";
    let out = sigcat(
        &[
            "catalog",
            "list",
            "--catalog",
            &url,
            "--storage-timeout",
            "5s",
        ],
        &[("AZURE_STORAGE_KEY", wrong)],
        None,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "an error line and a hint: {err}");
    assert!(lines[0].contains("access denied"), "{err}");
    assert!(lines[1].contains("AZURE_STORAGE_KEY"), "{err}");
    assert!(
        !err.contains(wrong) && !err.to_lowercase().contains("x-ms-"),
        "{err}"
    );
}

/// What is at the location is said: an empty catalog, a mistyped path, a query that is not a
/// version, a reason with control characters, a catalog the user cannot write.
#[test]
fn the_catalog_says_what_is_there_and_whose_fault_a_problem_is() {
    let dir = scratch("cli-what-is-there");
    let cat = dir.join("catalog");
    let cat_s = cat.display().to_string();
    // A directory that exists but holds nothing: an empty catalog, said on stderr.
    std::fs::create_dir_all(&cat).unwrap();
    let out = sigcat(&["catalog", "list", "--catalog", &cat_s], &[], None);
    assert_exit_says(&out, 0, "is empty");
    assert!(out.stdout.is_empty());
    assert_exit_says(
        &sigcat(&["catalog", "latest", "--catalog", &cat_s], &[], None),
        3,
        "is empty",
    );
    assert_exit_says(
        &sigcat(&["catalog", "show", "nope", "--catalog", &cat_s], &[], None),
        3,
        "is empty",
    );
    // A mistyped location: nothing there at all.
    let typo = dir.join("catalgo").display().to_string();
    for args in [
        &["catalog", "list"][..],
        &["catalog", "latest"],
        &["catalog", "show", "x"],
        &["catalog", "verify"],
    ] {
        let out = sigcat(&[args, &["--catalog", &typo]].concat(), &[], None);
        assert_exit_says(&out, 2, "does not exist");
        assert!(
            !text(&out.stdout).contains("no problems found"),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
    // Not a Kubernetes version: a usage error, not "nothing found".
    for bad in ["abc", "1.30.3.4", "1"] {
        let out = sigcat(
            &[
                "catalog",
                "latest",
                "--kubernetes",
                bad,
                "--catalog",
                &cat_s,
            ],
            &[],
            None,
        );
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out.stderr));
    }
    // A reason that would rewrite or ring the terminal of whoever lists the catalog.
    ok_publish(&cat_s);
    let id = first_id(&cat_s);
    for reason in ["\x1b[2Jgone", "bell\x07", "two\nlines"] {
        let out = sigcat(
            &[
                "catalog",
                "yank",
                &id,
                "--reason",
                reason,
                "--catalog",
                &cat_s,
            ],
            &[],
            None,
        );
        assert_eq!(
            out.status.code(),
            Some(2),
            "{reason:?}: {}",
            text(&out.stderr)
        );
    }
    // A catalog directory this user cannot write (root writes anywhere, so `nobody` tries):
    // a local-file problem (5) with a hint about the directory, not about Azure credentials.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            crate::util::BIN,
        ])
        .args([
            "publish",
            "fixtures/console/gallery-only.log",
            "--catalog",
            &cat_s,
        ])
        .current_dir(crate::util::repo())
        .env_remove("SIGCAT_CATALOG")
        .env("XDG_STATE_HOME", dir.join("nobody-state"))
        .output()
        .unwrap_or_else(|e| panic!("setpriv (util-linux) is needed: {e}"));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("writable by this user"), "{err}");
    assert!(!err.contains("AZURE_STORAGE"), "{err}");
}

/// Something planted in a catalog directory where sigcat reads an object (a FIFO at an
/// image's anchor, a directory at its `latest/` pointer) is the catalog's data (exit 9), with a
/// hint to remove it: not a permissions problem (5), and never read.
#[test]
fn a_planted_file_is_the_catalogs_data_not_a_permissions_problem() {
    let dir = scratch("cli-planted-file");
    let cat = dir.join("catalog");
    let cat_s = cat.display().to_string();
    ok_publish(&cat_s);
    let id = first_id(&cat_s);
    let anchor = cat.join("images").join(&id).join("image.json");
    std::fs::remove_file(&anchor).unwrap();
    crate::util::mkfifo(&anchor);
    let out = sigcat(&["catalog", "show", &id, "--catalog", &cat_s], &[], None);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(9), "{err}");
    assert!(err.contains("someone put it there"), "{err}");
    assert!(err.contains("remove what was put at that key"), "{err}");
    assert!(!err.contains("writable by this user"), "{err}");
}

fn ok_publish(cat: &str) {
    let out = sigcat(
        &[
            "publish",
            "fixtures/console/sig-ubuntu-2404.log",
            "--catalog",
            cat,
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

fn first_id(cat: &str) -> String {
    let out = sigcat(
        &["catalog", "list", "-o", "json", "--catalog", cat],
        &[],
        None,
    );
    let line = text(&out.stdout);
    serde_json::from_str::<serde_json::Value>(line.lines().next().unwrap()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}
