//! A catalog teams can trust and keep, through the binary, on the local store and Azurite:
//! yank and unyank, regions, verify and rebuild-index, signatures checked both ways with the
//! real `ssh-keygen` for every key type, and each attack of someone who can write the
//! container but holds no key (rollback, a deleted index, forged revisions and events, silent
//! loss in recovery, trust that fails open, racing yanks), each refused.

use crate::util::{Azurite, assert_exit_says, scratch, sigcat, text};
use sigcat::catalog::store::{PutMode, Store};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const LOG: &str = "fixtures/console/sig-ubuntu-2404.log";

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
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
    fn publish_with(&self, n: usize, k8s: &str, env: &[(&str, &str)]) -> String {
        let log = self.dir.join(format!("{n}.log"));
        std::fs::write(&log, crate::util::log_for(n)).unwrap();
        ok(&self.run(
            &[
                "publish",
                log.to_str().unwrap(),
                "--kubernetes-version",
                k8s,
            ],
            env,
        ));
        self.id_of(n, env)
    }

    fn publish(&self, n: usize, k8s: &str) -> String {
        self.publish_with(n, k8s, &[])
    }

    fn id_of(&self, n: usize, env: &[(&str, &str)]) -> String {
        let list = ok(&self.run(&["catalog", "list", "-o", "json"], env));
        list.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| e["gallery_image_version"] == format!("0.3.{n}"))
            .unwrap_or_else(|| panic!("0.3.{n} not in {list}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn latest_version(&self, filter: &[&str]) -> Option<String> {
        self.latest_version_with(filter, &[])
    }

    fn latest_version_with(&self, filter: &[&str], env: &[(&str, &str)]) -> Option<String> {
        let mut args = vec!["catalog", "latest", "--record"];
        args.extend(filter);
        let out = self.run(&args, env);
        (out.status.code() == Some(0)).then(|| {
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["kubernetes_version"]
                .as_str()
                .unwrap()
                .to_string()
        })
    }

    fn store(&self) -> sigcat::catalog::AnyStore {
        sigcat::catalog::open_store(&self.catalog).unwrap()
    }

    /// An object's bytes, read behind sigcat's back.
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        rt().block_on(self.store().get(key))
            .unwrap()
            .map(|v| v.bytes)
    }

    /// Writes an object behind sigcat's back (an attacker, or a lost write).
    fn put(&self, key: &str, bytes: &[u8]) {
        rt().block_on(self.store().put(key, bytes.to_vec(), PutMode::Overwrite))
            .unwrap();
    }

    fn delete(&self, key: &str) {
        match self.azurite {
            None => std::fs::remove_file(self.dir.join("catalog").join(key)).unwrap(),
            Some(a) => {
                let (container, prefix) = self
                    .catalog
                    .rsplit_once("/devstoreaccount1/")
                    .unwrap()
                    .1
                    .split_once('/')
                    .map_or(
                        (self.catalog.rsplit('/').next().unwrap(), String::new()),
                        |(c, p)| (c, format!("{p}/")),
                    );
                a.delete_blob(container, &format!("{prefix}{key}"));
            }
        }
    }

    fn keys(&self, prefix: &str) -> Vec<String> {
        rt().block_on(self.store().list(prefix)).unwrap()
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
        // What makes Azure's own "latest" agree: one command for its one gallery version.
        let az = ok(&out);
        assert!(
            az.lines().count() == 1
                && az.starts_with("az sig image-version update --ids /subscriptions/")
                && az.contains("/versions/0.3.2 ")
                && az
                    .trim_end()
                    .ends_with("--set publishingProfile.excludeFromLatest=true")
                && text(&out.stderr).contains("yanked"),
            "{az} {}",
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
        let before_b = t.get("index.json").unwrap();
        let _b = t.publish(2, "1.30.2");
        let clean = ok(&t.run(&["catalog", "verify"], &[]));
        assert!(clean.contains("no problems found"), "{}: {clean}", t.name);
        // The index loses its last write (an Azurite data store that lost it, say): the image
        // published since is an orphan rebuild-index would add, and the pointer (written after
        // that index) disagrees with it.
        t.put("index.json", &before_b);
        let out = t.run(&["catalog", "verify", "-o", "json"], &[]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(9), "{report}");
        let findings = report["findings"].as_array().unwrap();
        assert!(
            findings.iter().any(|f| f["kind"] == "orphan"
                && f["problem"].as_str().unwrap().contains("would add it")),
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
        t.delete("index.json");
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
        let template = t
            .keys("images/")
            .into_iter()
            .find(|k| k.contains("/template-"))
            .unwrap();
        let mut bytes = t.get(&template).unwrap();
        bytes[10] ^= 1;
        t.put(&template, &bytes);
        let out = t.run(&["catalog", "verify"], &[]);
        assert_eq!(out.status.code(), Some(9));
        assert!(
            text(&out.stdout).contains("does not match the sha256"),
            "{}",
            text(&out.stdout)
        );
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

/// A key pair made by the real ssh-keygen (with a passphrase), and an allowed_signers file.
pub(crate) struct Keys {
    pub(crate) key: PathBuf,
    pub(crate) allowed: PathBuf,
    kind: String,
}

const PASSPHRASE: &str = "correct horse battery staple";

/// Every key type the README lists.
const KEY_TYPES: [(&str, &str); 7] = [
    ("ed25519", ""),
    ("ecdsa", "256"),
    ("ecdsa", "384"),
    ("ecdsa", "521"),
    ("rsa", "2048"),
    ("rsa", "3072"),
    ("rsa", "4096"),
];

fn keygen_typed(dir: &Path, name: &str, principal: &str, kind: &str, bits: &str) -> Keys {
    keygen_with(dir, name, principal, kind, bits, PASSPHRASE)
}

/// A key of `kind` (and `bits`), protected by `passphrase` (empty: none).
pub(crate) fn keygen_with(
    dir: &Path,
    name: &str,
    principal: &str,
    kind: &str,
    bits: &str,
    passphrase: &str,
) -> Keys {
    let key = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", principal, "-f"])
        .arg(&key);
    if !bits.is_empty() {
        cmd.args(["-b", bits]);
    }
    let made = cmd
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
    Keys {
        key,
        allowed,
        kind: format!("{kind}{bits}"),
    }
}

/// A trust file in `dir` that lists both keys.
fn trusting_both(dir: &Path, a: &Keys, b: &Keys) -> PathBuf {
    let both = dir.join("both.allowed_signers");
    std::fs::write(
        &both,
        format!(
            "{}\n{}\n",
            std::fs::read_to_string(&a.allowed).unwrap(),
            std::fs::read_to_string(&b.allowed).unwrap()
        ),
    )
    .unwrap();
    both
}

fn keygen(dir: &Path, name: &str, principal: &str) -> Keys {
    keygen_typed(dir, name, principal, "ed25519", "")
}

/// The environment of someone who signs with `keys` and trusts `allowed`, remembering what it
/// saw in `state`.
fn signer_env<'a>(keys: &'a Keys, allowed: &'a str, state: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("SIGCAT_SIGNING_KEY_PASSPHRASE", PASSPHRASE),
        ("SIGCAT_SIGNING_KEY", keys.key.to_str().unwrap()),
        ("SIGCAT_TRUSTED_KEYS", allowed),
        ("SIGCAT_STATE_DIR", state),
    ]
}

/// The environment of a reader that trusts `allowed` and remembers in `state`.
fn reader_env<'a>(allowed: &'a str, state: &'a str) -> [(&'a str, &'a str); 2] {
    [
        ("SIGCAT_TRUSTED_KEYS", allowed),
        ("SIGCAT_STATE_DIR", state),
    ]
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

fn ssh_keygen_verifies(keys: &Keys, principal: &str, file: &Path, signature: &Path) -> bool {
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
        .stdin(std::fs::File::open(file).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// A copy of a key without its passphrase (ssh-keygen -Y sign would ask for it on a terminal).
fn unprotected(keys: &Keys, dir: &Path) -> PathBuf {
    let open_key = dir.join(format!("{}-open", keys.kind));
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
    open_key
}

#[test]
fn signatures_of_every_key_type_are_checked_both_ways_with_ssh_keygen() {
    let dir = scratch("trust-signatures");
    for (n, (kind, bits)) in KEY_TYPES.iter().enumerate() {
        let keys = keygen_typed(&dir, &format!("k{n}"), "ci@example.com", kind, bits);
        let cat = dir.join(format!("catalog-{}", keys.kind));
        let cat_s = cat.display().to_string();
        let key = keys.key.to_str().unwrap();
        let allowed = keys.allowed.to_str().unwrap();
        let pass = [
            ("SIGCAT_SIGNING_KEY_PASSPHRASE", PASSPHRASE),
            ("RUST_LOG", "trace"),
        ];
        // sigcat signs (never panics, whatever the type); ssh-keygen accepts the index and
        // every revision.
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
        assert!(
            ssh_keygen_verifies(&keys, "ci@example.com", &index, &cat.join("index.json.sig")),
            "{}",
            keys.kind
        );
        let revision = walk(&cat.join("images"))
            .into_iter()
            .find(|p| {
                p.to_string_lossy().contains("/revision-")
                    && p.extension().is_some_and(|e| e == "json")
            })
            .unwrap();
        assert!(ssh_keygen_verifies(
            &keys,
            "ci@example.com",
            &revision,
            &PathBuf::from(format!("{}.sig", revision.display()))
        ));
        verified_signed_by(&cat_s, allowed, "ci@example.com");
        // ssh-keygen signs an index; sigcat accepts it.
        let open_key = unprotected(&keys, &dir);
        std::fs::remove_file(cat.join("index.json.sig")).unwrap();
        for sig in walk(&cat.join("signatures")) {
            std::fs::remove_file(sig).unwrap();
        }
        assert!(
            Command::new("ssh-keygen")
                .args(["-Y", "sign", "-n", "sigcat-catalog", "-f"])
                .arg(&open_key)
                .arg(&index)
                .output()
                .unwrap()
                .status
                .success()
        );
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
            &["publish", LOG, "--signing-key", key],
        ] {
            let mut all = args.to_vec();
            all.extend(["--catalog", &cat_s, "--trusted-keys", allowed]);
            let out = sigcat(&all, &pass, None);
            assert_eq!(
                out.status.code(),
                Some(10),
                "{} {args:?}: {}",
                keys.kind,
                text(&out.stderr)
            );
        }
        // Bytes that no longer parse are untrusted too (10), not corrupt (9): the signature
        // is checked before anything is read from them.
        let mut broken = good.clone();
        broken[0] = b'[';
        std::fs::write(&index, &broken).unwrap();
        for args in [&["catalog", "list"][..], &["catalog", "verify"]] {
            let mut all = args.to_vec();
            all.extend(["--catalog", &cat_s, "--trusted-keys", allowed]);
            let out = sigcat(&all, &pass, None);
            assert_eq!(
                out.status.code(),
                Some(10),
                "{args:?}: {}",
                text(&out.stderr)
            );
        }
        std::fs::write(&index, &good).unwrap();
    }
}

#[test]
fn several_publishers_keys_and_settings_that_cannot_work() {
    let dir = scratch("trust-publishers");
    let keys = keygen(&dir, "ci", "ci@example.com");
    let other = keygen(&dir, "other", "other@example.com");
    let cat_s = dir.join("catalog").display().to_string();
    let key = keys.key.to_str().unwrap();
    let pass = [("SIGCAT_SIGNING_KEY_PASSPHRASE", PASSPHRASE)];
    ok(&sigcat(
        &["publish", LOG, "--catalog", &cat_s, "--signing-key", key],
        &pass,
        None,
    ));
    // A key the trust file does not list.
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
    let both = trusting_both(&dir, &keys, &other);
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
    // A writer without a key would strip the signature; one that trusts but cannot sign
    // would write what every trusting reader refuses: both are the operator's to fix.
    let unsigned = sigcat(&["publish", LOG, "--catalog", &cat_s], &[], None);
    assert_exit_says(&unsigned, 2, "strip the signature");
    let cannot_sign = sigcat(
        &[
            "publish",
            LOG,
            "--catalog",
            &cat_s,
            "--trusted-keys",
            both_s,
        ],
        &[],
        None,
    );
    assert_exit_says(&cannot_sign, 2, "no signing key");
    // A passphrase missing or wrong.
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
    assert_exit_says(&out, 2, "SIGCAT_SIGNING_KEY_PASSPHRASE");
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
    // Not a key at all: refused when loaded, never a panic.
    let junk = dir.join("junk");
    std::fs::write(
        &junk,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = sigcat(
        &[
            "publish",
            LOG,
            "--catalog",
            &cat_s,
            "--signing-key",
            junk.to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert_exit_says(&out, 2, "not an OpenSSH private key");
}

#[test]
fn a_signed_catalog_in_azurite_refuses_a_shard_altered_there() {
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
    // The attacker rewrites a shard and points its section and the root at it.
    let get = |key: &str| t.get(key).unwrap();
    let put = |key: &str, bytes: &[u8]| t.put(key, bytes);
    let files = crate::util::IndexFiles {
        get: &get,
        put: &put,
    };
    let (name, _, shard) = files.shards(&files.root()).remove(0);
    let mut content = files.read(shard["key"].as_str().unwrap());
    content["images"][0]["gallery_image_version"] = "9.9.9".into();
    files.plant_shard(&name, &content, |_| {}, |_| {});
    let out = latest_trusted(&[]);
    assert_exit_says(&out, 10, "changed after it was signed");
    // The owner restores trust: rebuilt from the objects and signed again.
    ok(&sigcat(
        &[
            "catalog",
            "rebuild-index",
            "--catalog",
            &url,
            "--signing-key",
            key,
            "--trusted-keys",
            allowed,
        ],
        &pass,
        None,
    ));
    let record = ok(&latest_trusted(&["--record"]));
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["gallery_image"]["version"], "0.3.1721037000");
}

/// A fresh catalog for one scenario: a local directory, or a container of its own in Azurite.
fn fresh<'a>(azurite: Option<&'a Azurite>, name: &str) -> Target<'a> {
    let dir = scratch(&format!("trust-{name}"));
    Target {
        name: if azurite.is_some() {
            "azurite"
        } else {
            "local"
        },
        catalog: match azurite {
            Some(a) => a.url(&name.replace(['_', '.'], "-")),
            None => dir.join("catalog").display().to_string(),
        },
        azurite,
        dir,
    }
}

/// A publisher (its own state) and a reader (its own state) of a signed catalog.
struct Parties {
    keys: Keys,
    publisher_state: String,
    reader_state: String,
}

impl Parties {
    fn new(t: &Target, keys: Keys) -> Parties {
        Parties {
            keys,
            publisher_state: t.dir.join("publisher-state").display().to_string(),
            reader_state: t.dir.join("reader-state").display().to_string(),
        }
    }
    fn allowed(&self) -> &str {
        self.keys.allowed.to_str().unwrap()
    }
    fn publisher(&self) -> [(&str, &str); 4] {
        signer_env(&self.keys, self.allowed(), &self.publisher_state)
    }
    fn reader(&self) -> [(&str, &str); 2] {
        reader_env(self.allowed(), &self.reader_state)
    }
}

/// Attack 1: the old index (and its valid signature) put back after a yank.
fn rollback(t: &Target, keys: Keys) {
    let p = Parties::new(t, keys);
    t.publish_with(1, "1.30.1", &p.publisher());
    let newest = t.publish_with(2, "1.30.2", &p.publisher());
    assert_eq!(
        t.latest_version_with(&["--kubernetes", "1.30"], &p.reader())
            .as_deref(),
        Some("1.30.2")
    );
    let saved = t.get("index.json").unwrap();
    ok(&t.run(
        &["catalog", "yank", &newest, "--reason", "CVE-2026-1234"],
        &p.publisher(),
    ));
    assert_eq!(
        t.latest_version_with(&["--kubernetes", "1.30"], &p.reader())
            .as_deref(),
        Some("1.30.1")
    );
    let root: serde_json::Value = serde_json::from_slice(&t.get("index.json").unwrap()).unwrap();
    let sequence = root["sequence"].as_u64().unwrap().to_string();
    t.put("index.json", &saved);
    let out = t.run(&["catalog", "latest", "--kubernetes", "1.30"], &p.reader());
    assert_exit_says(&out, 10, "rollback");
    let log = t.dir.join("3.log");
    std::fs::write(&log, crate::util::log_for(3)).unwrap();
    let out = t.run(&["publish", log.to_str().unwrap()], &p.publisher());
    assert_exit_says(&out, 10, "rollback");
    // A reader with no state, pinned to what it knows.
    let out = t.run(
        &[
            "catalog",
            "latest",
            "--min-sequence",
            &sequence,
            "--trusted-keys",
            p.allowed(),
        ],
        &[],
    );
    assert_exit_says(&out, 10, "below the minimum");
    // verify, with no state, sees the evidence in the objects: one write behind and minutes
    // old, it is also what a publish in progress looks like, so a warning until ten minutes
    // have passed.
    let out = t.run(&["catalog", "verify", "--trusted-keys", p.allowed()], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{} {}",
        t.name,
        text(&out.stdout)
    );
    let said = text(&out.stdout);
    assert!(
        said.contains("warning") && said.contains("rolled back") && said.contains("in progress"),
        "{said}"
    );
    // The owner recovers it: the yank is back.
    ok(&t.run(&["catalog", "rebuild-index"], &p.publisher()));
    assert_eq!(
        t.latest_version_with(&["--kubernetes", "1.30"], &p.reader())
            .as_deref(),
        Some("1.30.1")
    );
    // Two writes behind: no publish in progress explains that; an error at once.
    let saved = t.get("index.json").unwrap();
    ok(&t.run(&["catalog", "unyank", &newest], &p.publisher()));
    ok(&t.run(
        &["catalog", "yank", &newest, "--reason", "CVE-2026-1234"],
        &p.publisher(),
    ));
    t.put("index.json", &saved);
    let out = t.run(&["catalog", "verify", "--trusted-keys", p.allowed()], &[]);
    assert_eq!(
        out.status.code(),
        Some(10),
        "{} {}",
        t.name,
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("rolled back"),
        "{}",
        text(&out.stdout)
    );
    ok(&t.run(&["catalog", "rebuild-index"], &p.publisher()));
    assert_eq!(
        t.latest_version_with(&["--kubernetes", "1.30"], &p.reader())
            .as_deref(),
        Some("1.30.1")
    );
}

/// Attack 2: the index deleted.
fn deleted_index(t: &Target, keys: Keys) {
    let p = Parties::new(t, keys);
    t.publish_with(1, "1.30.1", &p.publisher());
    t.publish_with(2, "1.30.2", &p.publisher());
    ok(&t.run(&["catalog", "list"], &p.reader()));
    t.delete("index.json");
    assert_exit_says(
        &t.run(&["catalog", "list"], &p.reader()),
        10,
        "missing, but sequence",
    );
    let log = t.dir.join("3.log");
    std::fs::write(&log, crate::util::log_for(3)).unwrap();
    assert_exit_says(
        &t.run(&["publish", log.to_str().unwrap()], &p.publisher()),
        10,
        "missing",
    );
    // With no state at all: lost, not empty, for readers and writers alike.
    let fresh_state = t.dir.join("fresh-state").display().to_string();
    let stateless_writer = signer_env(&p.keys, p.allowed(), &fresh_state);
    assert_exit_says(
        &t.run(&["publish", log.to_str().unwrap()], &stateless_writer),
        9,
        "rebuild-index",
    );
    assert_exit_says(
        &t.run(&["catalog", "list", "--trusted-keys", p.allowed()], &[]),
        9,
        "rebuild-index",
    );
    ok(&t.run(&["catalog", "rebuild-index"], &p.publisher()));
    let listed = ok(&t.run(&["catalog", "list", "-o", "json"], &p.reader()));
    assert_eq!(listed.lines().count(), 2, "{listed}");
}

/// Attack 3: an unsigned revision pointing at a template edited to another gallery, and an
/// unsigned unyank of a yanked image.
fn forged(t: &Target, keys: Keys) {
    let p = Parties::new(t, keys);
    let id = t.publish_with(1, "1.30.1", &p.publisher());
    let entry: serde_json::Value = serde_json::from_str(
        ok(&t.run(&["catalog", "list", "-o", "json"], &p.reader()))
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let template_key = entry["objects"]["template"]["key"].as_str().unwrap();
    let template = String::from_utf8(t.get(template_key).unwrap())
        .unwrap()
        .replace("ClusterAPI1721036000abcd", "EvilGallery");
    use sigcat::catalog::objects::{Kind, object_ref};
    let forged_template = object_ref(&id, Kind::Template, template.as_bytes());
    t.put(&forged_template.key, template.as_bytes());
    let record: sigcat::catalog::index::ObjectRef =
        serde_json::from_value(entry["objects"]["record"].clone()).unwrap();
    let (revision, bytes) = sigcat::catalog::entry::revision(
        &id,
        &record,
        &forged_template,
        "2099-01-01T00:00:00.000Z",
        2,
        None,
    );
    t.put(&revision.key, &bytes);
    let out = t.run(&["catalog", "verify", "--trusted-keys", p.allowed()], &[]);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains(&revision.key),
        "{}",
        text(&out.stdout)
    );
    let out = t.run(&["catalog", "rebuild-index"], &p.publisher());
    assert_eq!(out.status.code(), Some(10), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&revision.key) && text(&out.stderr).contains("never adopted"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        t.get(&format!("{}.sig", revision.key)).is_none(),
        "never signed"
    );
    let served = ok(&t.run(&["catalog", "latest"], &p.reader()));
    assert!(!served.contains("EvilGallery"), "{served}");
    // The forged unyank.
    ok(&t.run(&["catalog", "yank", &id, "--reason", "CVE"], &p.publisher()));
    let entry: serde_json::Value = serde_json::from_str(
        ok(&t.run(&["catalog", "list", "-o", "json"], &p.reader()))
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let head = entry["yank"]["event"]["key"].as_str().unwrap();
    let unyank = serde_json::json!({
        "schema": "sigcat.event/v1", "id": id, "event": "unyank", "reason": "trust me",
        "at": "2099-01-01T00:00:00.000Z", "previous": head, "sequence": 99,
    });
    let bytes = serde_json::to_vec_pretty(&unyank).unwrap();
    let event = object_ref(&id, Kind::Event, &bytes);
    t.put(&event.key, &bytes);
    let out = t.run(&["catalog", "verify", "--trusted-keys", p.allowed()], &[]);
    assert_eq!(out.status.code(), Some(10));
    assert!(
        text(&out.stdout).contains(&event.key),
        "{}",
        text(&out.stdout)
    );
    let out = t.run(&["catalog", "rebuild-index"], &p.publisher());
    assert!(
        text(&out.stderr).contains(&event.key),
        "{}",
        text(&out.stderr)
    );
    let out = t.run(&["catalog", "latest"], &p.reader());
    assert_eq!(
        out.status.code(),
        Some(3),
        "still yanked: {}",
        text(&out.stderr)
    );
}

#[test]
fn attacks_1_2_3_fail_on_the_local_store_with_a_key_of_every_type() {
    for (n, (kind, bits)) in KEY_TYPES.iter().enumerate() {
        for (scenario, run) in [
            ("rollback", rollback as fn(&Target, Keys)),
            ("deleted", deleted_index),
            ("forged", forged),
        ] {
            let t = fresh(None, &format!("{scenario}-{kind}{bits}"));
            // Unprotected: unlocking a key is checked elsewhere, and costs a slow KDF per run.
            let keys = keygen_with(&t.dir, &format!("k{n}"), "ci@example.com", kind, bits, "");
            run(&t, keys);
        }
    }
}

#[test]
fn attacks_1_2_3_fail_on_azurite() {
    let azurite = Azurite::start("trust-attacks");
    for (kind, bits) in [("ed25519", ""), ("ecdsa", "521"), ("rsa", "3072")] {
        for (scenario, run) in [
            ("rollback", rollback as fn(&Target, Keys)),
            ("deleted", deleted_index),
            ("forged", forged),
        ] {
            let t = fresh(Some(&azurite), &format!("{scenario}-{kind}{bits}"));
            let keys = keygen_with(&t.dir, "k", "ci@example.com", kind, bits, "");
            run(&t, keys);
        }
    }
}

/// Attack 4: recovery that lost images and said nothing.
#[test]
fn attack_4_rebuild_names_every_image_it_leaves_out() {
    let azurite = Azurite::start("trust-loss");
    for t in targets(&azurite, "loss") {
        let a = t.publish(1, "1.30.1");
        let b = t.publish(2, "1.30.2");
        let entries: Vec<serde_json::Value> = ok(&t.run(&["catalog", "list", "-o", "json"], &[]))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let of = |id: &str| entries.iter().find(|e| e["id"] == id).unwrap().clone();
        t.delete(of(&a)["objects"]["template"]["key"].as_str().unwrap());
        let record = of(&b)["objects"]["record"]["key"]
            .as_str()
            .unwrap()
            .to_string();
        let mut bytes = t.get(&record).unwrap();
        bytes[10] ^= 1;
        t.put(&record, &bytes);
        let out = t.run(&["catalog", "verify"], &[]);
        assert_eq!(out.status.code(), Some(9), "{}", text(&out.stdout));
        let out = t.run(&["catalog", "rebuild-index"], &[]);
        assert_eq!(
            out.status.code(),
            Some(9),
            "{}: {}",
            t.name,
            text(&out.stderr)
        );
        for id in [&a, &b] {
            assert!(
                text(&out.stderr).contains(&format!("{id}: no usable revision")),
                "{id}: {}",
                text(&out.stderr)
            );
        }
        let out = t.run(&["catalog", "verify"], &[]);
        assert_eq!(out.status.code(), Some(9));
        assert!(
            !text(&out.stdout).contains("would add it"),
            "{}",
            text(&out.stdout)
        );
        assert!(
            text(&out.stdout).contains("would leave out"),
            "{}",
            text(&out.stdout)
        );
    }
}

/// Attack 5: trust that is configured but unusable fails closed.
#[test]
fn attack_5_trust_that_cannot_be_used_is_a_settings_error_never_off() {
    let dir = scratch("trust-fails-closed");
    let keys = keygen(&dir, "ci", "ci@example.com");
    let cat = dir.join("catalog").display().to_string();
    ok(&sigcat(
        &[
            "publish",
            LOG,
            "--catalog",
            &cat,
            "--signing-key",
            keys.key.to_str().unwrap(),
        ],
        &[("SIGCAT_SIGNING_KEY_PASSPHRASE", PASSPHRASE)],
        None,
    ));
    // Tampered, so a reader that does not check would say 0.
    let index = dir.join("catalog/index.json");
    let text_index = std::fs::read_to_string(&index)
        .unwrap()
        .replace("\"sequence\": 2", "\"sequence\": 7");
    std::fs::write(&index, text_index).unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, "# nobody\n\n").unwrap();
    let unusable = dir.join("unusable");
    std::fs::write(&unusable, "ci ssh-dss AAAAB3NzaC1kc3MAAACBAP\n").unwrap();
    let missing = dir.join("missing").display().to_string();
    for value in [
        "$(TRUST)",
        "",
        " ",
        missing.as_str(),
        empty.to_str().unwrap(),
        unusable.to_str().unwrap(),
    ] {
        let out = sigcat(
            &["catalog", "latest", "--catalog", &cat],
            &[("SIGCAT_TRUSTED_KEYS", value)],
            None,
        );
        assert_eq!(
            out.status.code(),
            Some(2),
            "SIGCAT_TRUSTED_KEYS={value:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "nothing was read: {value:?}");
    }
    for (var, value) in [
        ("SIGCAT_SIGNING_KEY", "$(KEY)"),
        ("SIGCAT_SIGNING_KEY", ""),
        ("SIGCAT_STATE_DIR", "$(STATE)"),
        ("SIGCAT_MIN_SEQUENCE", "$(MIN)"),
        ("SIGCAT_MIN_SEQUENCE", "seven"),
    ] {
        let out = sigcat(&["publish", LOG, "--catalog", &cat], &[(var, value)], None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{var}={value:?}: {}",
            text(&out.stderr)
        );
    }
    // And with a usable trust file, the tampered index is refused.
    let out = sigcat(
        &["catalog", "latest", "--catalog", &cat],
        &[("SIGCAT_TRUSTED_KEYS", keys.allowed.to_str().unwrap())],
        None,
    );
    assert_eq!(out.status.code(), Some(10), "{}", text(&out.stderr));
}

/// Attack 7: yank, unyank and yank of one image at the same moment.
#[test]
fn attack_7_racing_yanks_leave_a_consistent_chain_and_say_what_they_did() {
    let azurite = Azurite::start("trust-race");
    for t in targets(&azurite, "race") {
        let id = t.publish(1, "1.30.1");
        let mut before = 0;
        for round in 0..15 {
            let children: Vec<(bool, std::process::Child)> = [true, false, true]
                .into_iter()
                .map(|yanked| {
                    let verb = if yanked { "yank" } else { "unyank" };
                    let child = Command::new(crate::util::BIN)
                        .args([
                            "catalog",
                            verb,
                            &id,
                            "--reason",
                            "race",
                            "--catalog",
                            &t.catalog,
                        ])
                        .env_remove("SIGCAT_CATALOG")
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap();
                    (yanked, child)
                })
                .collect();
            let mut said = Vec::new();
            for (yanked, child) in children {
                let out = child.wait_with_output().unwrap();
                assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
                said.push((yanked, text(&out.stderr)));
            }
            let out = t.run(&["catalog", "verify"], &[]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{} round {round}: {said:?}\n{}",
                t.name,
                text(&out.stdout)
            );
            // What each said is what happened: every "yanked" / "unyanked" is one event in
            // effect (the chain from the index's state grew by exactly that many), and "nothing
            // changed" is none.
            let after = chain_length(&t, &id);
            let done = said
                .iter()
                .filter(|(_, s)| s.contains("sigcat: yanked ") || s.contains("sigcat: unyanked "))
                .count();
            assert_eq!(after - before, done, "{} round {round}: {said:?}", t.name);
            before = after;
        }
    }
}

/// How many events lead to the image's yank state, following `previous`.
fn chain_length(t: &Target, id: &str) -> usize {
    let listed = ok(&t.run(&["catalog", "list", "-o", "json"], &[]));
    let entry: serde_json::Value = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["id"] == id)
        .unwrap();
    let mut key = entry["yank"]["event"]["key"].as_str().map(str::to_string);
    let mut n = 0;
    while let Some(k) = key {
        n += 1;
        let event: serde_json::Value = serde_json::from_slice(&t.get(&k).unwrap()).unwrap();
        key = event["previous"].as_str().map(str::to_string);
    }
    n
}

/// Key rotation: add the new key, re-sign everything with it, remove the old one.
#[test]
fn a_key_is_rotated_without_readers_ever_refusing_the_catalog() {
    let azurite = Azurite::start("trust-rotate");
    for t in targets(&azurite, "rotate") {
        let old = keygen(&t.dir, "old", "old@example.com");
        let new = keygen(&t.dir, "new", "new@example.com");
        let both = trusting_both(&t.dir, &old, &new);
        let state = t.dir.join("state").display().to_string();
        let old_allowed = old.allowed.to_str().unwrap();
        t.publish_with(1, "1.30.1", &signer_env(&old, old_allowed, &state));
        // 1. Readers and publishers trust both keys.
        let both_s = both.to_str().unwrap();
        assert!(
            t.latest_version_with(&[], &reader_env(both_s, &state))
                .is_some()
        );
        // 2. Everything re-signed with the new key.
        let out = t.run(
            &["catalog", "refresh", "--resign-objects"],
            &signer_env(&new, both_s, &state),
        );
        ok(&out);
        assert!(
            text(&out.stderr).contains("re-signed"),
            "{}",
            text(&out.stderr)
        );
        // 3. Publish with the new key; 4. the old key's line removed: nothing is refused.
        let new_allowed = new.allowed.to_str().unwrap();
        t.publish_with(2, "1.30.2", &signer_env(&new, new_allowed, &state));
        assert_eq!(
            t.latest_version_with(&["--kubernetes", "1.30"], &reader_env(new_allowed, &state))
                .as_deref(),
            Some("1.30.2")
        );
        let id = t.id_of(1, &reader_env(new_allowed, &state));
        ok(&t.run(&["catalog", "show", &id], &reader_env(new_allowed, &state)));
        verified_signed_by(&t.catalog, new_allowed, "new@example.com");
        // A reader still trusting only the withdrawn key refuses what the new one signed.
        let stale = t.run(
            &["catalog", "latest", "--kubernetes", "1.30", "--record"],
            &reader_env(old_allowed, &state),
        );
        assert_exit_says(&stale, 10, "a key the trust file does not list");
    }
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
