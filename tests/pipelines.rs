//! The files in `pipelines/` are what teams copy, so they must not rot: every YAML file must
//! parse, and every step that runs sigcat is run here, as written, against fixture logs. A
//! stand-in `make` prints the fixture (image-builder and Packer are not run); sigcat is the
//! real binary and the catalog a real Azurite.

use crate::util::{Azurite, connection_string, repo, scratch};
use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn yaml(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn every_yaml_file_in_pipelines_parses() {
    let mut count = 0;
    let mut stack = vec![repo().join("pipelines")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                let rel = path
                    .strip_prefix(repo())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                assert!(!yaml(&rel).is_empty(), "{rel} is empty");
                count += 1;
            }
        }
    }
    assert!(count >= 3, "found {count} YAML files");
}

/// A bin directory with the real sigcat and a stand-in make.
fn tool_dir(root: &Path) -> PathBuf {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sigcat"), bin.join("sigcat")).unwrap();
    std::fs::write(
        bin.join("make"),
        "#!/bin/bash\n# Stand-in for image-builder's make: prints a fixture build log.\ncase \"$1\" in\n  build-azure-sig-*)\n    cat \"$SIGCAT_TEST_LOG\"\n    if [ -n \"$SIGCAT_TEST_MANIFEST\" ]; then cp \"$SIGCAT_TEST_MANIFEST\" manifest.json; fi\n    exit \"${SIGCAT_TEST_MAKE_STATUS:-0}\";;\n  *) echo \"make $*: nothing to do (stand-in)\";;\nesac\n",
    )
    .unwrap();
    Command::new("chmod")
        .args(["+x", bin.join("make").to_str().unwrap()])
        .status()
        .unwrap();
    bin
}

/// Replaces `open EXPR close` with values; an unknown expression fails the test, so a new
/// expression in a pipeline gets a value here rather than silently passing.
fn substitute(text: &str, open: &str, close: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        out.push_str(&rest[..start]);
        let after = &rest[start + open.len()..];
        let end = after
            .find(close)
            .unwrap_or_else(|| panic!("unclosed {open} in {text}"));
        let key = after[..end].trim();
        out.push_str(
            values
                .get(key)
                .unwrap_or_else(|| panic!("no test value for `{key}` in {text}")),
        );
        rest = &after[end + close.len()..];
    }
    out.push_str(rest);
    out
}

struct Scenario {
    log: &'static str,
    manifest: Option<&'static str>,
    make_status: i32,
}

fn run_script(
    script: &str,
    cwd: &Path,
    env: &BTreeMap<String, String>,
    bin: &Path,
    scenario: &Scenario,
    shell_flags: &[&str],
) -> Output {
    std::fs::create_dir_all(cwd).unwrap();
    let mut cmd = Command::new("bash");
    cmd.args(["--noprofile", "--norc"])
        .args(shell_flags)
        .arg("-c")
        .arg(script)
        .current_dir(cwd);
    cmd.env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", cwd);
    cmd.env(
        "SIGCAT_TEST_LOG",
        repo().join("fixtures").join(scenario.log),
    )
    .env("SIGCAT_TEST_MAKE_STATUS", scenario.make_status.to_string());
    if let Some(m) = scenario.manifest {
        cmd.env("SIGCAT_TEST_MANIFEST", repo().join("fixtures").join(m));
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

/// How a CI system spells its steps: the keys of a step and how its shell is started.
struct Dialect {
    name: &'static str,
    script: &'static str,
    working_directory: &'static str,
    /// Steps that need the network; the test provides their result (a checkout, sigcat on PATH).
    skip: &'static [&'static str],
    shell_flags: &'static [&'static str],
}

/// Runs the script steps in order, as the CI system's agent would, stopping at the first
/// failure. `expand` resolves the system's expressions; `env` is the environment every step sees.
fn run_steps(
    steps: &Value,
    dialect: &Dialect,
    env: &BTreeMap<String, String>,
    expand: &dyn Fn(&str) -> String,
    workspace: &Path,
    bin: &Path,
    scenario: &Scenario,
) -> Vec<(String, Output)> {
    let mut results = Vec::new();
    for step in steps.as_sequence().unwrap() {
        let Some(script) = step.get(dialect.script) else {
            continue;
        };
        let name = s(&step[dialect.name]);
        if dialect.skip.contains(&name.as_str()) {
            continue;
        }
        let mut step_env = env.clone();
        if let Some(m) = step.get("env").and_then(Value::as_mapping) {
            for (k, v) in m {
                step_env.insert(s(k), expand(&s(v)));
            }
        }
        let cwd = step
            .get(dialect.working_directory)
            .map_or(workspace.to_path_buf(), |d| workspace.join(s(d)));
        let out = run_script(
            &expand(&s(script)),
            &cwd,
            &step_env,
            bin,
            scenario,
            dialect.shell_flags,
        );
        let failed = !out.status.success();
        results.push((name, out));
        if failed {
            break;
        }
    }
    results
}

fn github_values(root: &Path, azurite: &Azurite) -> BTreeMap<String, String> {
    let workflow = &yaml("pipelines/github-actions/build-capz-image.yml")[0];
    let mut v = BTreeMap::new();
    for (name, input) in workflow["on"]["workflow_dispatch"]["inputs"]
        .as_mapping()
        .unwrap()
    {
        v.insert(format!("inputs.{}", s(name)), s(&input["default"]));
    }
    let cs = connection_string(azurite.port);
    for (k, val) in [
        ("vars.SIGCAT_STORAGE_ACCOUNT", "devstoreaccount1"),
        ("vars.SIGCAT_CONTAINER", "gh-images"),
        ("vars.SIGCAT_GIT_URL", "https://example.invalid/sigcat.git"),
        ("secrets.SIGCAT_STORAGE_CONNECTION_STRING", cs.as_str()),
        ("secrets.AZURE_CLIENT_ID", "client"),
        ("secrets.AZURE_CLIENT_SECRET", "not-a-secret"),
        ("secrets.AZURE_TENANT_ID", "tenant"),
        ("secrets.AZURE_SUBSCRIPTION_ID", "subscription"),
    ] {
        v.insert(k.to_string(), val.to_string());
    }
    let _ = root;
    v
}

/// Runs the workflow's `run` steps in order, like a runner with `shell: bash`. Returns each
/// step's name and output.
fn run_github(
    root: &Path,
    azurite: &Azurite,
    scenario: &Scenario,
) -> (Vec<(String, Output)>, PathBuf) {
    let workflow = &yaml("pipelines/github-actions/build-capz-image.yml")[0];
    assert_eq!(
        s(&workflow["defaults"]["run"]["shell"]),
        "bash",
        "pipefail comes from `shell: bash`"
    );
    let values = github_values(root, azurite);
    let bin = tool_dir(root);
    let workspace = root.join("workspace");
    let output_file = root.join("github_output");
    std::fs::write(&output_file, "").unwrap();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (k, val) in workflow["env"].as_mapping().unwrap() {
        env.insert(s(k), substitute(&s(val), "${{", "}}", &values));
    }
    env.insert("GITHUB_OUTPUT".into(), output_file.display().to_string());
    let github = Dialect {
        name: "name",
        script: "run",
        working_directory: "working-directory",
        skip: &["Install sigcat"],
        shell_flags: &["-eo", "pipefail"],
    };
    let expand = |t: &str| substitute(t, "${{", "}}", &values);
    let steps = &workflow["jobs"]["build"]["steps"];
    let results = run_steps(steps, &github, &env, &expand, &workspace, &bin, scenario);
    (results, output_file)
}

#[test]
fn github_actions_workflow_runs_end_to_end() {
    let azurite = Azurite::start("pipelines-gh");
    let root = scratch("pipelines-gh");
    let ok = Scenario {
        log: "console/sig-ubuntu-2404.log",
        manifest: Some("manifest/manifest.json"),
        make_status: 0,
    };
    let (steps, outputs) = run_github(&root, &azurite, &ok);
    for (name, out) in &steps {
        assert!(
            out.status.success(),
            "step `{name}` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(steps.len(), 4, "deps, build, outputs, render");
    let build_out = &steps[1].1;
    assert_eq!(
        build_out.stdout,
        std::fs::read(repo().join("fixtures/console/sig-ubuntu-2404.log")).unwrap(),
        "the log scrolls by unchanged"
    );
    let outputs = std::fs::read_to_string(outputs).unwrap();
    for line in [
        "kubernetes_version=1.30.3",
        "gallery_image_version=0.3.1721037000",
        "gallery_name=ClusterAPI1721036000abcd",
    ] {
        assert!(
            outputs.lines().any(|l| l == line),
            "missing {line} in\n{outputs}"
        );
    }
    let template =
        std::fs::read_to_string(root.join("workspace/images/capi/azuremachinetemplate.yaml"))
            .unwrap();
    crate::util::kubectl_agrees(&template);
    let t: Value = serde_norway::from_str(&template).unwrap();
    assert_eq!(
        s(&t["spec"]["template"]["spec"]["vmSize"]),
        "Standard_D2s_v3"
    );
    assert_eq!(
        s(&t["spec"]["template"]["spec"]["image"]["computeGallery"]["version"]),
        "0.3.1721037000"
    );
    let list = Command::new(env!("CARGO_BIN_EXE_sigcat"))
        .args([
            "catalog",
            "list",
            "-o",
            "json",
            "--catalog",
            &azurite.url("gh-images"),
        ])
        .output()
        .unwrap();
    let entry: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(
        entry["kubernetes_version"], "1.30.3",
        "published to the catalog"
    );

    let failed = Scenario {
        log: "console/failed.log",
        manifest: None,
        make_status: 2,
    };
    let (steps, _) = run_github(&scratch("pipelines-gh-failed"), &azurite, &failed);
    let (name, out) = steps.last().unwrap();
    assert_eq!(name, "Build the image and publish it to the catalog");
    assert!(!out.status.success(), "a failed build fails the job");
    // Even if make had exited 0, sigcat's own exit status fails the pipe.
    let (steps, _) = run_github(
        &scratch("pipelines-gh-failed-0"),
        &azurite,
        &Scenario {
            log: "console/failed.log",
            manifest: None,
            make_status: 0,
        },
    );
    assert!(!steps.last().unwrap().1.status.success());
}

/// Runs the pipeline's `script` steps in order, as an agent would. Returns each step's
/// display name and output; stops at the first failing step.
fn run_azure_devops(
    root: &Path,
    azurite: &Azurite,
    scenario: &Scenario,
) -> (Vec<(String, Output)>, PathBuf) {
    let pipeline = &yaml("pipelines/azure-devops/build-capz-image.yml")[0];
    let mut values = BTreeMap::new();
    for p in pipeline["parameters"].as_sequence().unwrap() {
        values.insert(format!("parameters.{}", s(&p["name"])), s(&p["default"]));
    }
    let staging = root.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let cs = connection_string(azurite.port);
    let mut macros = BTreeMap::new();
    for (k, v) in [
        ("SIGCAT_STORAGE_ACCOUNT", "devstoreaccount1"),
        ("SIGCAT_CONTAINER", "ado-images"),
        ("SIGCAT_STORAGE_CONNECTION_STRING", cs.as_str()),
        ("SIGCAT_GIT_URL", "https://example.invalid/sigcat.git"),
        ("AZURE_CLIENT_ID", "client"),
        ("AZURE_CLIENT_SECRET", "not-a-secret"),
        ("AZURE_TENANT_ID", "tenant"),
        ("AZURE_SUBSCRIPTION_ID", "subscription"),
        ("Build.ArtifactStagingDirectory", staging.to_str().unwrap()),
    ] {
        macros.insert(k.to_string(), v.to_string());
    }
    let bin = tool_dir(root);
    let workspace = root.join("workspace");
    let azure_devops = Dialect {
        name: "displayName",
        script: "script",
        working_directory: "workingDirectory",
        skip: &["Check out image-builder", "Install sigcat"],
        shell_flags: &[],
    };
    let expand = |t: &str| substitute(&substitute(t, "${{", "}}", &values), "$(", ")", &macros);
    let steps = &pipeline["jobs"][0]["steps"];
    let results = run_steps(
        steps,
        &azure_devops,
        &BTreeMap::new(),
        &expand,
        &workspace,
        &bin,
        scenario,
    );
    (results, staging)
}

#[test]
fn azure_devops_pipeline_runs_end_to_end() {
    let azurite = Azurite::start("pipelines-ado");
    let root = scratch("pipelines-ado");
    let scenario = Scenario {
        log: "console/azure-devops-crlf.log",
        manifest: Some("manifest/manifest.json"),
        make_status: 0,
    };
    let (steps, staging) = run_azure_devops(&root, &azurite, &scenario);
    for (name, out) in &steps {
        assert!(
            out.status.success(),
            "step `{name}` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let vars = String::from_utf8_lossy(
        &steps
            .iter()
            .find(|(n, _)| n == "Expose the image as output variables")
            .unwrap()
            .1
            .stdout,
    )
    .into_owned();
    assert!(vars.lines().any(|l| l == "##vso[task.setvariable variable=kubernetes_version;isOutput=true]1.30.3"), "{vars}");
    assert!(
        vars.lines()
            .any(|l| l
                == "##vso[task.setvariable variable=gallery_image_version;isOutput=true]1.30.3"),
        "{vars}"
    );
    let template = std::fs::read_to_string(staging.join("azuremachinetemplate.yaml")).unwrap();
    crate::util::kubectl_agrees(&template);
    let template: Value = serde_norway::from_str(&template).unwrap();
    assert_eq!(
        s(&template["spec"]["template"]["spec"]["image"]["computeGallery"]["name"]),
        "capi-ubuntu-2404"
    );
    let list = Command::new(env!("CARGO_BIN_EXE_sigcat"))
        .args([
            "catalog",
            "latest",
            "--kubernetes",
            "1.30",
            "--record",
            "--catalog",
            &azurite.url("ado-images"),
        ])
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );

    let failed = Scenario {
        log: "console/failed.log",
        manifest: None,
        make_status: 0,
    };
    let (steps, _) = run_azure_devops(&scratch("pipelines-ado-failed"), &azurite, &failed);
    let (name, out) = steps.last().unwrap();
    assert_eq!(name, "Build the image and publish it to the catalog");
    assert!(!out.status.success(), "a failed build fails the job");
}

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
    let mut env = BTreeMap::new();
    for line in std::fs::read_to_string(repo().join("pipelines/watcher/watch.env"))
        .unwrap()
        .lines()
    {
        if let Some((k, v)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            env.insert(k.to_string(), v.to_string());
        }
    }
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
}

#[test]
fn healthcheck_fails_when_the_heartbeat_is_stale() {
    let root = scratch("pipelines-health");
    let beat = root.join("beat");
    let bin = env!("CARGO_BIN_EXE_sigcat");
    assert_eq!(
        Command::new(bin)
            .args(["healthcheck", beat.to_str().unwrap()])
            .output()
            .unwrap()
            .status
            .code(),
        Some(1),
        "missing"
    );
    std::fs::write(&beat, "1").unwrap();
    assert_eq!(
        Command::new(bin)
            .args(["healthcheck", beat.to_str().unwrap()])
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );
    std::thread::sleep(Duration::from_millis(1100));
    let stale = Command::new(bin)
        .args(["healthcheck", beat.to_str().unwrap(), "--max-age", "1s"])
        .output()
        .unwrap();
    assert_eq!(
        stale.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
}
