//! The watcher as deployed: the systemd unit and the Kubernetes manifests run as written.

use super::{s, substitute, yaml};
use crate::trust::keygen_with;
use crate::util::{Azurite, repo, scratch};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a watcher command line as a deployment would, drops a fixture, checks it is published
/// and the liveness probe passes, then stops it with SIGTERM.
fn exercise_watcher(
    program: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    drop_dir: &Path,
    probe: &[String],
    catalog: &str,
    grace: Duration,
) {
    std::fs::create_dir_all(drop_dir).unwrap();
    let program = if program == "sigcat" || program.ends_with("/sigcat") {
        env!("CARGO_BIN_EXE_sigcat").to_string()
    } else {
        panic!("unexpected program {program}")
    };
    let mut cmd = Command::new(&program);
    cmd.args(args)
        .env_remove("SIGCAT_CATALOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let staging = drop_dir.parent().unwrap().join("incoming.log");
    std::fs::copy(
        repo().join("fixtures/console/sig-ubuntu-2404.log"),
        &staging,
    )
    .unwrap();
    std::fs::rename(&staging, drop_dir.join("build-42.log")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !drop_dir.join("done/build-42.log").exists() {
        assert!(
            Instant::now() < deadline,
            "the watcher did not publish the dropped log"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let probe_bin = if probe[0] == "sigcat" {
        env!("CARGO_BIN_EXE_sigcat").to_string()
    } else {
        probe[0].clone()
    };
    let health = Command::new(probe_bin).args(&probe[1..]).output().unwrap();
    assert!(
        health.status.success(),
        "liveness probe: {}",
        String::from_utf8_lossy(&health.stderr)
    );
    let mut list = Command::new(env!("CARGO_BIN_EXE_sigcat"));
    list.args(["catalog", "list", "-o", "json", "--catalog", catalog]);
    let listed = list.output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        1,
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let t = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(t.elapsed() < grace, "stopped within the grace period");
}

#[test]
fn systemd_unit_runs_the_watcher() {
    let root = scratch("pipelines-systemd");
    let unit =
        std::fs::read_to_string(repo().join("pipelines/watcher/sigcat-watch.service")).unwrap();
    let key = |k: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}="))
            .to_string()
    };
    assert_eq!(key("EnvironmentFile"), "/etc/sigcat/watch.env");
    // Paths on the machine → this test's directories.
    let local = |v: &str| {
        v.replace(
            "/var/lib/sigcat",
            &format!("{}/var-lib-sigcat", root.display()),
        )
        .replace("/etc/sigcat/", &format!("{}/etc-sigcat/", root.display()))
    };
    // The operator signs the catalog: the key where watch.env's commented line says.
    std::fs::create_dir_all(root.join("etc-sigcat")).unwrap();
    let keys = keygen_with(
        &root.join("etc-sigcat"),
        "signing-key",
        "watcher@example.com",
        "ed25519",
        "",
        "",
    );
    let mut env = BTreeMap::new();
    for line in std::fs::read_to_string(repo().join("pipelines/watcher/watch.env"))
        .unwrap()
        .lines()
    {
        let line = line
            .strip_prefix("#SIGCAT_SIGNING_KEY=")
            .map_or(line.to_string(), |v| format!("SIGCAT_SIGNING_KEY={v}"));
        if let Some((k, v)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            env.insert(k.to_string(), local(v));
        }
    }
    assert!(
        env.contains_key("SIGCAT_SIGNING_KEY"),
        "watch.env shows how to sign"
    );
    for line in unit.lines() {
        if let Some((k, v)) = line
            .strip_prefix("Environment=")
            .and_then(|kv| kv.split_once('='))
        {
            env.insert(k.to_string(), local(v));
        }
    }
    assert_eq!(
        env["SIGCAT_STATE_DIR"],
        local(&format!("/var/lib/{}", key("StateDirectory"))),
        "the state is in the unit's StateDirectory, which systemd keeps across restarts"
    );
    // The settings an operator edits, pointed at this test's directory and catalog.
    let drop_dir = root.join("srv-image-drops");
    let catalog = root.join("catalog").display().to_string();
    env.insert("SIGCAT_DROP_DIR".into(), drop_dir.display().to_string());
    env.insert("SIGCAT_CATALOG".into(), catalog.clone());
    let exec = substitute(&key("ExecStart"), "${", "}", &env)
        .replace("/run/sigcat/", &format!("{}/run-", root.display()));
    let mut words = exec.split_whitespace().map(str::to_string);
    let program = words.next().unwrap();
    let args: Vec<String> = words.collect();
    let heartbeat = format!("{}/run-heartbeat", root.display());
    let stop: u64 = key("TimeoutStopSec").parse().unwrap();
    exercise_watcher(
        &program,
        &args,
        &env,
        &drop_dir,
        &[
            "sigcat".into(),
            "healthcheck".into(),
            heartbeat,
            "--max-age".into(),
            "60s".into(),
        ],
        &catalog,
        Duration::from_secs(stop),
    );
    let verified = Command::new(env!("CARGO_BIN_EXE_sigcat"))
        .args(["catalog", "verify", "--catalog", &catalog, "--trusted-keys"])
        .arg(&keys.allowed)
        .arg("--state-dir")
        .arg(root.join("reader-state"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&verified.stdout).contains("signed by watcher@example.com"),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let remembered = std::fs::read_dir(root.join("var-lib-sigcat/catalogs"))
        .expect("the watcher remembers the catalog's sequence in its StateDirectory")
        .count();
    assert!(remembered > 0);
}

/// The install steps at the top of the unit, run as written into an empty root (every absolute
/// path moved under it, and the steps that need root left out): each one must work on a
/// machine where none of the directories exist yet.
#[test]
fn the_units_install_steps_work_on_an_empty_machine() {
    let root = scratch("pipelines-install");
    let unit =
        std::fs::read_to_string(repo().join("pipelines/watcher/sigcat-watch.service")).unwrap();
    let work = root.join("checkout");
    std::fs::create_dir_all(&work).unwrap();
    for f in ["sigcat-watch.service", "watch.env"] {
        std::fs::copy(repo().join("pipelines/watcher").join(f), work.join(f)).unwrap();
    }
    std::fs::copy(env!("CARGO_BIN_EXE_sigcat"), work.join("sigcat")).unwrap();
    let steps: Vec<String> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("#   "))
        .flat_map(|l| l.split("&&"))
        .map(|l| l.split('#').next().unwrap().trim().to_string())
        .filter(|l| l.starts_with("install "))
        .collect();
    assert!(steps.len() >= 4, "{steps:?}");
    let root_s = root.display().to_string();
    for step in &steps {
        let step = step
            .replace(" /", &format!(" {root_s}/"))
            .replace(" -o sigcat", "");
        let out = Command::new("bash")
            .args(["-c", &step])
            .current_dir(&work)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{step}` fails on an empty machine: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for installed in [
        "usr/local/bin/sigcat",
        "etc/systemd/system/sigcat-watch.service",
        "etc/sigcat/watch.env",
    ] {
        assert!(root.join(installed).is_file(), "{installed}");
    }
    assert!(root.join("srv/image-drops").is_dir());
}

#[test]
fn kubernetes_deployment_runs_the_watcher_with_its_liveness_probe() {
    let azurite = Azurite::start("pipelines-k8s");
    let root = scratch("pipelines-k8s");
    let docs = yaml("pipelines/watcher/kubernetes.yaml");
    let kinds: Vec<String> = docs.iter().map(|d| s(&d["kind"])).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "ConfigMap",
            "PersistentVolumeClaim",
            "Deployment"
        ]
    );
    let deployment = &docs[3];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        s(&deployment["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"]),
        "true"
    );
    assert_eq!(
        s(&pod["serviceAccountName"]),
        s(&docs[0]["metadata"]["name"])
    );
    let container = &pod["containers"][0];
    let mount = |name: &str| {
        pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| s(&v["name"]) == name)
    };
    let drops_path = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| s(&m["name"]) == "drops")
        .map(|m| s(&m["mountPath"]))
        .unwrap();
    assert!(mount("drops") && mount("tmp"));
    // Paths inside the pod → this test's directories.
    let drop_dir = root.join("drops");
    let local = |p: &str| match (p.strip_prefix(&drops_path), p.strip_prefix("/tmp/")) {
        (Some(rest), _) => format!("{}{rest}", drop_dir.display()),
        (_, Some(rest)) => format!("{}/tmp-{rest}", root.display()),
        _ => p.to_string(),
    };
    let mut env: BTreeMap<String, String> = docs[1]["data"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (s(k), s(v)))
        .collect();
    env.insert("SIGCAT_CATALOG".into(), azurite.url("k8s-images"));
    for v in env.values_mut() {
        *v = local(v);
    }
    // Signing as the manifest's comments say (the key where the Secret is mounted).
    let keys = keygen_with(
        &root,
        "signing-key",
        "watcher@example.com",
        "ed25519",
        "",
        "",
    );
    env.insert("SIGCAT_SIGNING_KEY".into(), keys.key.display().to_string());
    let command: Vec<String> = container["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    let args: Vec<String> = command[1..]
        .iter()
        .cloned()
        .chain(
            container["args"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|a| local(&s(a))),
        )
        .collect();
    let probe: Vec<String> = container["livenessProbe"]["exec"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| local(&s(a)))
        .collect();
    let grace = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    exercise_watcher(
        &command[0],
        &args,
        &env,
        &drop_dir,
        &probe,
        &azurite.url("k8s-images"),
        grace,
    );
    // The state is on the drop volume, and the watcher left it alone (not quarantined).
    let state = std::path::PathBuf::from(&env["SIGCAT_STATE_DIR"]);
    assert!(state.starts_with(&drop_dir), "{}", state.display());
    assert!(std::fs::read_dir(state.join("catalogs")).unwrap().count() > 0);
    assert!(!drop_dir.join("quarantine").exists());
}

#[test]
fn healthcheck_fails_when_the_heartbeat_is_stale() {
    let root = scratch("pipelines-health");
    let beat = root.join("beat");
    let beat = beat.to_str().unwrap();
    let health = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sigcat"))
            .args([&["healthcheck", beat][..], extra].concat())
            .output()
            .unwrap()
    };
    assert_eq!(health(&[]).status.code(), Some(11), "missing");
    std::fs::write(beat, "pid: 1\nstorage: ok\n").unwrap();
    assert_eq!(health(&[]).status.code(), Some(0));
    std::thread::sleep(Duration::from_millis(1100));
    let stale = health(&["--max-age", "1s"]);
    assert_eq!(
        stale.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
}

/// The image ships the stripped release binary, built with the tested dependency versions.
#[test]
fn dockerfile_builds_the_locked_release_binary() {
    let file = std::fs::read_to_string(repo().join("pipelines/watcher/Dockerfile")).unwrap();
    assert!(
        file.lines()
            .any(|l| l.trim() == "RUN cargo build --release --locked")
    );
    assert!(file.contains("COPY --from=build /src/target/release/sigcat "));
    // The context is the repository: what the tests leave there (target/ is gigabytes) is not
    // sent to the builder. BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile.
    let ignore =
        std::fs::read_to_string(repo().join("pipelines/watcher/Dockerfile.dockerignore")).unwrap();
    let rules: Vec<&str> = ignore.lines().filter(|l| !l.starts_with('#')).collect();
    for must in ["target/", "tests/azurite/node_modules/"] {
        assert!(rules.contains(&must), "{must} in {rules:?}");
    }
    assert!(
        !rules.iter().any(|r| r.trim_end_matches('/') == ".git"),
        "build.rs needs .git"
    );
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let release = cargo.split("[profile.release]").nth(1).unwrap();
    assert!(
        release
            .split("\n[")
            .next()
            .unwrap()
            .contains("strip = true")
    );
}
