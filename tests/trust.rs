//! A catalog teams can trust and keep, through the binary, on the local store and Azurite:
//! yank and unyank, regions, verify, rebuild-index, and signatures checked both ways with the
//! real `ssh-keygen`.

use crate::util::{Azurite, scratch, sigcat, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const LOG: &str = "fixtures/console/sig-ubuntu-2404.log";

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// A catalog to run the same checks against: a local directory, or a container in Azurite.
struct Target<'a> {
    name: &'static str,
    catalog: String,
    azurite: Option<&'a Azurite>,
    dir: PathBuf,
}

impl Target<'_> {
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--catalog", &self.catalog]);
        sigcat(&all, env, None)
    }

    /// The fixture image as gallery version `0.3.<n>`, for Kubernetes `k8s`.
    fn publish(&self, n: usize, k8s: &str) -> String {
        let log = self.dir.join(format!("{n}.log"));
        std::fs::write(&log, crate::util::log_for(n)).unwrap();
        ok(&self.run(
            &[
                "publish",
                log.to_str().unwrap(),
                "--kubernetes-version",
                k8s,
            ],
            &[],
        ));
        let list = ok(&self.run(&["catalog", "list", "-o", "json"], &[]));
        list.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| e["gallery_image_version"] == format!("0.3.{n}"))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn latest_version(&self, filter: &[&str]) -> Option<String> {
        let mut args = vec!["catalog", "latest", "--record"];
        args.extend(filter);
        let out = self.run(&args, &[]);
        (out.status.code() == Some(0)).then(|| {
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["kubernetes_version"]
                .as_str()
                .unwrap()
                .to_string()
        })
    }

    /// Replaces `index.json` behind sigcat's back (a lost write restores an older one).
    fn set_index(&self, bytes: &[u8]) {
        match self.azurite {
            None => std::fs::write(self.dir.join("catalog/index.json"), bytes).unwrap(),
            Some(_) => {
                let store = sigcat::catalog::open_store(&self.catalog).unwrap();
                tokio::runtime::Runtime::new()
                    .unwrap()
                    .block_on(sigcat::catalog::store::Store::put(
                        &store,
                        "index.json",
                        bytes.to_vec(),
                        sigcat::catalog::store::PutMode::Overwrite,
                    ))
                    .unwrap();
            }
        }
    }

    fn index(&self) -> Vec<u8> {
        let store = sigcat::catalog::open_store(&self.catalog).unwrap();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(sigcat::catalog::store::Store::get(&store, "index.json"))
            .unwrap()
            .unwrap()
            .bytes
    }

    fn delete_index(&self) {
        match self.azurite {
            None => std::fs::remove_file(self.dir.join("catalog/index.json")).unwrap(),
            Some(a) => a.delete_blob(self.catalog.rsplit('/').next().unwrap(), "index.json"),
        }
    }
}

fn targets<'a>(azurite: &'a Azurite, name: &str) -> Vec<Target<'a>> {
    let local = scratch(&format!("trust-{name}-local"));
    let remote = scratch(&format!("trust-{name}-azurite"));
    vec![
        Target {
            name: "local",
            catalog: local.join("catalog").display().to_string(),
            azurite: None,
            dir: local,
        },
        Target {
            name: "azurite",
            catalog: azurite.url(&format!("trust-{name}")),
            azurite: Some(azurite),
            dir: remote,
        },
    ]
}

#[test]
fn a_yanked_image_leaves_service_but_not_the_catalog() {
    let azurite = Azurite::start("trust-yank");
    for t in targets(&azurite, "yank") {
        let _older = t.publish(1, "1.30.1");
        let newer = t.publish(2, "1.30.2");
        assert_eq!(
            t.latest_version(&["--kubernetes", "1.30"]).as_deref(),
            Some("1.30.2"),
            "{}",
            t.name
        );
        let out = t.run(
            &[
                "catalog",
                "yank",
                &newer,
                "--reason",
                "CVE-2026-1234 in containerd",
            ],
            &[],
        );
        assert!(
            ok(&out).is_empty() && text(&out.stderr).contains("yanked"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(
            t.latest_version(&["--kubernetes", "1.30"]).as_deref(),
            Some("1.30.1"),
            "{}",
            t.name
        );
        let table = ok(&t.run(&["catalog", "list"], &[]));
        let row = table
            .lines()
            .find(|l| l.starts_with(&newer))
            .unwrap_or_else(|| panic!("{table}"));
        assert!(
            row.contains("yanked: CVE-2026-1234 in containerd"),
            "{table}"
        );
        assert!(!ok(&t.run(&["catalog", "list", "--hide-yanked"], &[])).contains(&newer));
        let shown = t.run(&["catalog", "show", &newer], &[]);
        ok(&shown);
        assert!(
            text(&shown.stderr).contains("was yanked")
                && text(&shown.stderr).contains("CVE-2026-1234"),
            "{}",
            text(&shown.stderr)
        );
        assert_eq!(
            t.run(&["catalog", "yank", "no-such-image", "--reason", "x"], &[])
                .status
                .code(),
            Some(3)
        );
        // Only one image for 1.31 and it is yanked: nothing is the latest.
        let lone = t.publish(3, "1.31.0");
        ok(&t.run(&["catalog", "yank", &lone, "--reason", "bad"], &[]));
        assert_eq!(
            t.run(&["catalog", "latest", "--kubernetes", "1.31"], &[])
                .status
                .code(),
            Some(3)
        );
        ok(&t.run(&["catalog", "unyank", &newer, "--reason", "patched"], &[]));
        assert_eq!(
            t.latest_version(&["--kubernetes", "1.30"]).as_deref(),
            Some("1.30.2"),
            "{}",
            t.name
        );
    }
}

#[test]
fn images_are_found_only_in_the_regions_they_were_replicated_to() {
    let azurite = Azurite::start("trust-regions");
    for t in targets(&azurite, "regions") {
        // northcentralus, eastus2 (the fixture) and eastus, westus2 (the Azure DevOps run).
        for log in [LOG, "fixtures/console/azure-devops-crlf.log"] {
            ok(&t.run(&["publish", log, "--kubernetes-version", "1.30.3"], &[]));
        }
        let version_in = |region: &str| {
            let out = t.run(&["catalog", "latest", "--record", "--region", region], &[]);
            (out.status.code() == Some(0)).then(|| {
                serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["gallery_image"]
                    ["version"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
        };
        assert_eq!(
            version_in("East US 2").as_deref(),
            Some("0.3.1721037000"),
            "{}",
            t.name
        );
        assert_eq!(
            version_in("westus2").as_deref(),
            Some("1.30.3"),
            "{}",
            t.name
        );
        assert_eq!(version_in("westeurope"), None, "{}", t.name);
        let table = ok(&t.run(&["catalog", "list"], &[]));
        assert!(
            table.lines().next().unwrap().contains("REGIONS")
                && table.contains("northcentralus,eastus2"),
            "{table}"
        );
        let listed = ok(&t.run(
            &["catalog", "list", "--region", "eastus", "-o", "json"],
            &[],
        ));
        assert_eq!(listed.lines().count(), 1, "{listed}");
    }
}

#[test]
fn verify_finds_what_is_wrong_and_rebuild_index_recovers_it() {
    let azurite = Azurite::start("trust-rebuild");
    for t in targets(&azurite, "rebuild") {
        let a = t.publish(1, "1.30.1");
        ok(&t.run(
            &["catalog", "yank", &a, "--reason", "kept across a rebuild"],
            &[],
        ));
        let before_b = t.index();
        let _b = t.publish(2, "1.30.2");
        let clean = ok(&t.run(&["catalog", "verify"], &[]));
        assert!(clean.contains("no problems found"), "{}: {clean}", t.name);
        // The index loses its last write (an Azurite data store that lost it, say).
        t.set_index(&before_b);
        let out = t.run(&["catalog", "verify", "-o", "json"], &[]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "orphans are warnings: {report}");
        assert!(
            report["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["kind"] == "orphan"),
            "{report}"
        );
        ok(&t.run(&["catalog", "rebuild-index"], &[]));
        assert!(
            ok(&t.run(&["catalog", "verify"], &[])).contains("no problems found"),
            "{}",
            t.name
        );
        assert_eq!(
            t.latest_version(&["--kubernetes", "1.30"]).as_deref(),
            Some("1.30.2")
        );
        let table = ok(&t.run(&["catalog", "list"], &[]));
        assert!(table.contains("yanked: kept across a rebuild"), "{table}");
        // Deleted outright.
        t.delete_index();
        let out = t.run(&["catalog", "verify"], &[]);
        assert_eq!(out.status.code(), Some(9), "{}", text(&out.stdout));
        assert!(
            text(&out.stdout).contains("rebuild-index"),
            "{}",
            text(&out.stdout)
        );
        let rebuilt = t.run(&["catalog", "rebuild-index"], &[]);
        ok(&rebuilt);
        assert!(
            text(&rebuilt.stderr).contains("2 images (1 yanked)"),
            "{}",
            text(&rebuilt.stderr)
        );
        assert!(ok(&t.run(&["catalog", "verify"], &[])).contains("no problems found"));
        // An object altered in place: named, with its own exit code.
        if t.azurite.is_none() {
            let template = walk(&t.dir.join("catalog"))
                .into_iter()
                .find(|p| p.to_string_lossy().contains("/template-"))
                .unwrap();
            let mut bytes = std::fs::read(&template).unwrap();
            bytes[10] ^= 1;
            std::fs::write(&template, bytes).unwrap();
            let out = t.run(&["catalog", "verify"], &[]);
            assert_eq!(out.status.code(), Some(9));
            assert!(
                text(&out.stdout).contains("does not match its sha256"),
                "{}",
                text(&out.stdout)
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A key pair made by the real ssh-keygen, with a passphrase, and an allowed_signers file.
struct Keys {
    key: PathBuf,
    allowed: PathBuf,
}

const PASSPHRASE: &str = "correct horse battery staple";

fn keygen(dir: &Path, name: &str, principal: &str) -> Keys {
    let key = dir.join(name);
    let made = Command::new("ssh-keygen")
        .args([
            "-q", "-t", "ed25519", "-N", PASSPHRASE, "-C", principal, "-f",
        ])
        .arg(&key)
        .status()
        .unwrap_or_else(|e| panic!("ssh-keygen (openssh-client) is needed: {e}"));
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = dir.join(format!("{name}.allowed_signers"));
    std::fs::write(
        &allowed,
        format!("{principal} namespaces=\"sigcat-catalog\" {public}"),
    )
    .unwrap();
    Keys { key, allowed }
}

/// `catalog verify` with a trust file: clean, and signed by `who`.
fn verified_signed_by(catalog: &str, allowed: &str, who: &str) {
    let report = ok(&sigcat(
        &[
            "catalog",
            "verify",
            "--catalog",
            catalog,
            "--trusted-keys",
            allowed,
        ],
        &[],
        None,
    ));
    assert!(
        report.contains(&format!("signed by {who}")) && report.contains("no problems found"),
        "{report}"
    );
}

fn ssh_keygen_verifies(keys: &Keys, principal: &str, index: &Path, signature: &Path) -> bool {
    Command::new("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-n",
            "sigcat-catalog",
            "-I",
            principal,
            "-f",
        ])
        .arg(&keys.allowed)
        .arg("-s")
        .arg(signature)
        .stdin(std::fs::File::open(index).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn signatures_are_checked_both_ways_with_ssh_keygen() {
    let dir = scratch("trust-signatures");
    let keys = keygen(&dir, "ci", "ci@example.com");
    let cat = dir.join("catalog");
    let cat_s = cat.display().to_string();
    let key = keys.key.to_str().unwrap();
    let allowed = keys.allowed.to_str().unwrap();
    let pass = [
        ("SIGCAT_SIGNING_KEY_PASSPHRASE", PASSPHRASE),
        ("RUST_LOG", "trace"),
    ];
    // sigcat signs; ssh-keygen accepts.
    let out = sigcat(
        &["publish", LOG, "--catalog", &cat_s, "--signing-key", key],
        &pass,
        None,
    );
    ok(&out);
    let private = std::fs::read_to_string(&keys.key).unwrap();
    let body = private.lines().nth(1).unwrap();
    for stream in [text(&out.stdout), text(&out.stderr)] {
        assert!(
            !stream.contains(PASSPHRASE) && !stream.contains(body),
            "a secret was printed"
        );
    }
    let index = cat.join("index.json");
    assert!(ssh_keygen_verifies(
        &keys,
        "ci@example.com",
        &index,
        &cat.join("index.json.sig")
    ));
    // Readers that trust the key read it; the report says who signed.
    ok(&sigcat(
        &[
            "catalog",
            "list",
            "--catalog",
            &cat_s,
            "--trusted-keys",
            allowed,
        ],
        &[],
        None,
    ));
    verified_signed_by(&cat_s, allowed, "ci@example.com");
    // A flipped byte: refused by both.
    let good = std::fs::read(&index).unwrap();
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x01;
    std::fs::write(&index, &bad).unwrap();
    assert!(!ssh_keygen_verifies(
        &keys,
        "ci@example.com",
        &index,
        &cat.join("index.json.sig")
    ));
    for args in [
        &["catalog", "list"][..],
        &["catalog", "latest"],
        &["catalog", "verify"],
        &["publish", LOG],
    ] {
        let mut all = args.to_vec();
        all.extend(["--catalog", &cat_s, "--trusted-keys", allowed]);
        let out = sigcat(&all, &[], None);
        assert_eq!(
            out.status.code(),
            Some(10),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    std::fs::write(&index, &good).unwrap();

    // ssh-keygen signs (a catalog sigcat wrote unsigned); sigcat accepts.
    let plain = dir.join("plain");
    let plain_s = plain.display().to_string();
    ok(&sigcat(&["publish", LOG, "--catalog", &plain_s], &[], None));
    let untrusted = sigcat(
        &[
            "catalog",
            "list",
            "--catalog",
            &plain_s,
            "--trusted-keys",
            allowed,
        ],
        &[],
        None,
    );
    assert_eq!(
        untrusted.status.code(),
        Some(10),
        "unsigned: {}",
        text(&untrusted.stderr)
    );
    assert!(
        text(&untrusted.stderr).contains("not signed"),
        "{}",
        text(&untrusted.stderr)
    );
    let signed = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "sigcat-catalog", "-f"])
        .arg(&keys.key)
        .arg(plain.join("index.json"))
        .env("SSH_ASKPASS_REQUIRE", "never")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if !signed.status.success() {
        // ssh-keygen asks for the passphrase on the terminal: sign with an unprotected copy.
        let open_key = dir.join("ci-open");
        std::fs::copy(&keys.key, &open_key).unwrap();
        assert!(
            Command::new("ssh-keygen")
                .args(["-q", "-p", "-P", PASSPHRASE, "-N", "", "-f"])
                .arg(&open_key)
                .output()
                .unwrap()
                .status
                .success()
        );
        assert!(
            Command::new("ssh-keygen")
                .args(["-Y", "sign", "-n", "sigcat-catalog", "-f"])
                .arg(&open_key)
                .arg(plain.join("index.json"))
                .output()
                .unwrap()
                .status
                .success()
        );
    }
    assert!(plain.join("index.json.sig").exists());
    verified_signed_by(&plain_s, allowed, "ci@example.com");
    // A key the trust file does not list.
    let other = keygen(&dir, "other", "other@example.com");
    let out = sigcat(
        &[
            "catalog",
            "list",
            "--catalog",
            &cat_s,
            "--trusted-keys",
            other.allowed.to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(10));
    assert!(
        text(&out.stderr).contains("does not list"),
        "{}",
        text(&out.stderr)
    );
    // Several publishers, each with their own key, all in one trust file.
    let both = dir.join("both.allowed_signers");
    std::fs::write(
        &both,
        format!(
            "{}\n{}\n",
            std::fs::read_to_string(&keys.allowed).unwrap(),
            std::fs::read_to_string(&other.allowed).unwrap()
        ),
    )
    .unwrap();
    let more = dir.join("more.log");
    std::fs::write(&more, crate::util::log_for(5)).unwrap();
    let both_s = both.to_str().unwrap();
    ok(&sigcat(
        &[
            "publish",
            more.to_str().unwrap(),
            "--catalog",
            &cat_s,
            "--signing-key",
            other.key.to_str().unwrap(),
            "--trusted-keys",
            both_s,
        ],
        &pass,
        None,
    ));
    verified_signed_by(&cat_s, both_s, "other@example.com");
    // Settings that cannot work are the operator's to fix.
    let out = sigcat(
        &[
            "catalog",
            "rebuild-index",
            "--catalog",
            &cat_s,
            "--signing-key",
            key,
        ],
        &[],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "no passphrase: {}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("SIGCAT_SIGNING_KEY_PASSPHRASE"));
    let out = sigcat(
        &[
            "catalog",
            "rebuild-index",
            "--catalog",
            &cat_s,
            "--signing-key",
            key,
        ],
        &[("SIGCAT_SIGNING_KEY_PASSPHRASE", "wrong one")],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !text(&out.stderr).contains("wrong one"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_signed_catalog_in_azurite_refuses_an_index_altered_there() {
    let azurite = Azurite::start("trust-signed");
    let dir = scratch("trust-signed-azurite");
    let keys = keygen(&dir, "ci", "ci@example.com");
    let url = azurite.url("signed");
    let pass = [("SIGCAT_SIGNING_KEY_PASSPHRASE", PASSPHRASE)];
    let key = keys.key.to_str().unwrap();
    let allowed = keys.allowed.to_str().unwrap();
    ok(&sigcat(
        &["publish", LOG, "--catalog", &url, "--signing-key", key],
        &pass,
        None,
    ));
    let latest_trusted = |extra: &[&str]| {
        let args = [
            "catalog",
            "latest",
            "--catalog",
            &url,
            "--trusted-keys",
            allowed,
        ];
        sigcat(&[&args[..], extra].concat(), &[], None)
    };
    ok(&latest_trusted(&[]));
    let t = Target {
        name: "azurite",
        catalog: url.clone(),
        azurite: Some(&azurite),
        dir,
    };
    let mut index: serde_json::Value = serde_json::from_slice(&t.index()).unwrap();
    index["images"][0]["gallery_image_version"] = "9.9.9".into();
    t.set_index(&serde_json::to_vec_pretty(&index).unwrap());
    let out = latest_trusted(&[]);
    crate::util::assert_exit_says(&out, 10, "changed after it was signed");
    // The owner restores trust: rebuilt from the objects and signed again.
    ok(&sigcat(
        &[
            "catalog",
            "rebuild-index",
            "--catalog",
            &url,
            "--signing-key",
            key,
        ],
        &pass,
        None,
    ));
    let record = ok(&latest_trusted(&["--record"]));
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["gallery_image"]["version"], "0.3.1721037000");
}

#[test]
fn ingest_watch_and_yank_sign_what_they_write() {
    let dir = scratch("trust-signers");
    let keys = keygen(&dir, "ci", "ci@example.com");
    let cat = dir.join("catalog").display().to_string();
    let key = keys.key.to_str().unwrap();
    let allowed = keys.allowed.to_str().unwrap();
    let env = [
        ("SIGCAT_SIGNING_KEY_PASSPHRASE", PASSPHRASE),
        ("SIGCAT_SIGNING_KEY", key),
        ("SIGCAT_TRUSTED_KEYS", allowed),
    ];
    let signed_by_ci = || verified_signed_by(&cat, allowed, "ci@example.com");
    let log = crate::util::fixture("console/sig-ubuntu-2404.log");
    ok(&sigcat(&["ingest", "--catalog", &cat], &env, Some(&log)));
    signed_by_ci();
    let drop = dir.join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    std::fs::write(drop.join("a.log"), crate::util::log_for(8)).unwrap();
    ok(&sigcat(
        &["watch", drop.to_str().unwrap(), "--once", "--catalog", &cat],
        &env,
        None,
    ));
    signed_by_ci();
    let list = ok(&sigcat(
        &["catalog", "list", "-o", "json", "--catalog", &cat],
        &env,
        None,
    ));
    assert_eq!(list.lines().count(), 2, "{list}");
    let id = serde_json::from_str::<serde_json::Value>(list.lines().next().unwrap()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&sigcat(
        &[
            "catalog",
            "yank",
            &id,
            "--reason",
            "signed yank",
            "--catalog",
            &cat,
        ],
        &env,
        None,
    ));
    signed_by_ci();
}
