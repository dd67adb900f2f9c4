//! The GitHub Actions workflow and the Azure DevOps pipeline, run step by step as their agents
//! would, in a stand-in image-builder checkout: `make`, `pip` and `az` are stand-ins that record
//! what they were given (image-builder, Packer and Azure are not run); sigcat is the real binary
//! and the catalog a real Azurite. Steps that need the network (a checkout, `cargo install`,
//! marketplace actions) are not run; their wiring is checked in the YAML instead.

use super::{s, substitute, yaml};
use crate::trust::keygen_with;
use crate::util::{Azurite, connection_string, kubectl_agrees, repo, scratch, text};
use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const GITHUB: &str = "pipelines/github-actions/build-capz-image.yml";
const AZURE_DEVOPS: &str = "pipelines/azure-devops/build-capz-image.yml";
const GITHUB_REFRESH: &str = "pipelines/github-actions/refresh-catalog.yml";
const AZURE_DEVOPS_REFRESH: &str = "pipelines/azure-devops/refresh-catalog.yml";

/// Variables the stand-in `make` records, one file per target.
const RECORDED: &str = "PACKER_FLAGS|USE_AZURE_CLI_AUTH|GALLERY_NAME|RESOURCE_GROUP_NAME|AZURE_LOCATION|AZURE_SUBSCRIPTION_ID|AZURE_CLIENT_SECRET|TAGS|PACKER_GITHUB_API_TOKEN";

const MAKE: &str = r#"#!/bin/bash
# Stand-in for image-builder's make: records its environment, prints a fixture build log on
# stdout (and make's own error on stderr, as make does), writes manifest.json like Packer.
env | grep -E "^(${SIGCAT_TEST_RECORDED})=" | sort > "$SIGCAT_TEST_RECORD/make-$1.env"
case "$1" in
  build-azure-sig-*)
    cat "$SIGCAT_TEST_LOG"
    if [ -n "${SIGCAT_TEST_MANIFEST:-}" ]; then cp "$SIGCAT_TEST_MANIFEST" manifest.json; fi
    if [ "${SIGCAT_TEST_MAKE_STATUS:-0}" != 0 ]; then echo "make: *** [Makefile:546: $1] Error 1" >&2; fi
    exit "${SIGCAT_TEST_MAKE_STATUS:-0}";;
  deps-azure) echo "hack/ensure-packer.sh";;
  *) echo "make stand-in: unexpected target $1" >&2; exit 2;;
esac
"#;

const PIP: &str = "#!/bin/bash\necho \"$*\" >> \"$SIGCAT_TEST_RECORD/pip.log\"\n";

const AZ: &str = r#"#!/bin/bash
if [ -n "${SIGCAT_TEST_AZ_FAILS:-}" ]; then echo "ERROR: Please run 'az login' to setup account." >&2; exit 1; fi
case "$*" in
  "account show --query id -o tsv") echo 00000000-1111-2222-3333-444444444444;;
  *) echo "az stand-in: unexpected: $*" >&2; exit 2;;
esac
"#;

/// What the build prints and produces.
struct Scenario {
    log: &'static str,
    manifest: Option<&'static str>,
    make_status: i32,
}

const GOOD: Scenario = Scenario {
    log: "console/sig-ubuntu-2404.log",
    manifest: Some("manifest/manifest.json"),
    make_status: 0,
};

/// A stand-in checkout of image-builder and the tools, under `root`.
struct Harness {
    root: PathBuf,
    bin: PathBuf,
    record: PathBuf,
}

impl Harness {
    fn new(name: &str, checkout: &str) -> Harness {
        let root = scratch(name);
        let bin = root.join("bin");
        let record = root.join("record");
        std::fs::create_dir_all(&record).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sigcat"), bin.join("sigcat")).unwrap();
        for (name, script) in [("make", MAKE), ("pip", PIP), ("az", AZ)] {
            std::fs::write(bin.join(name), script).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let ib = root.join("workspace").join(checkout);
        let files = [
            (
                "images/capi/hack/utils.sh",
                "_version_ansible_core=2.17.7\n",
            ),
            (
                "images/capi/packer/config/kubernetes.json",
                "{\n  \"kubernetes_deb_version\": \"1.36.1-1.1\",\n  \"kubernetes_rpm_version\": \"1.36.1\",\n  \"kubernetes_semver\": \"v1.36.1\",\n  \"kubernetes_series\": \"v1.36\",\n  \"kubernetes_source_type\": \"pkg\"\n}\n",
            ),
            (
                ".github/actions/configure-k8s-version/resolve-kubernetes-deb-version.py",
                "import sys\nprint(sys.argv[1] + '-1.1')\n",
            ),
        ];
        for (path, content) in files {
            let p = ib.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        std::fs::create_dir_all(ib.join("images/capi/packer/azure")).unwrap();
        Harness { root, bin, record }
    }

    fn capi(&self, checkout: &str) -> PathBuf {
        self.root
            .join("workspace")
            .join(checkout)
            .join("images/capi")
    }

    /// The variables the stand-in make saw for a target.
    fn make_env(&self, target: &str) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.record.join(format!("make-{target}.env")))
            .unwrap_or_else(|_| panic!("make {target} was not run"))
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// One step as its agent runs it.
struct Step {
    name: String,
    script: String,
    working_directory: Option<String>,
    env: BTreeMap<String, String>,
}

/// A step's `env:` mapping, its expressions expanded.
fn step_env(step: &Value, expand: &dyn Fn(&str) -> String) -> BTreeMap<String, String> {
    step.get("env")
        .and_then(Value::as_mapping)
        .map(|m| m.iter().map(|(k, v)| (s(k), expand(&s(v)))).collect())
        .unwrap_or_default()
}

/// Runs the steps in order, stopping at the first failure, as a CI agent does.
fn run_steps(
    steps: Vec<Step>,
    h: &Harness,
    scenario: &Scenario,
    job_env: &BTreeMap<String, String>,
    shell_flags: &[&str],
) -> Vec<(String, Output)> {
    let workspace = h.root.join("workspace");
    let mut results = Vec::new();
    // What earlier steps set for later ones: GitHub's $GITHUB_ENV file, Azure DevOps'
    // `##vso[task.setvariable variable=NAME]value` on stdout.
    let mut set_by_steps = BTreeMap::new();
    for step in steps {
        let cwd = step
            .working_directory
            .as_ref()
            .map_or(workspace.clone(), |d| workspace.join(d));
        std::fs::create_dir_all(&cwd).unwrap();
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc"])
            .args(shell_flags)
            .arg("-c")
            .arg(&step.script)
            .current_dir(&cwd)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", h.bin.display()))
            .env("HOME", &h.root)
            .env("SIGCAT_TEST_RECORD", &h.record)
            .env("SIGCAT_TEST_RECORDED", RECORDED)
            .env(
                "SIGCAT_TEST_LOG",
                repo().join("fixtures").join(scenario.log),
            )
            .env("SIGCAT_TEST_MAKE_STATUS", scenario.make_status.to_string());
        if let Some(m) = scenario.manifest {
            cmd.env("SIGCAT_TEST_MANIFEST", repo().join("fixtures").join(m));
        }
        cmd.envs(job_env).envs(&set_by_steps).envs(&step.env);
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        if let Some(file) = job_env.get("GITHUB_ENV") {
            if let Ok(lines) = std::fs::read_to_string(file) {
                for (k, v) in lines.lines().filter_map(|l| l.split_once('=')) {
                    set_by_steps.insert(k.to_string(), v.to_string());
                }
            }
            let _ = std::fs::remove_file(file);
        }
        for line in text(&out.stdout).lines() {
            if let Some((name, value)) = line
                .strip_prefix("##vso[task.setvariable variable=")
                .and_then(|rest| rest.split_once(']'))
                .filter(|(name, _)| !name.contains(';'))
            {
                set_by_steps.insert(name.to_string(), value.to_string());
            }
        }
        let failed = !out.status.success();
        results.push((step.name, out));
        if failed {
            break;
        }
    }
    results
}

fn assert_all_ok(steps: &[(String, Output)]) {
    for (name, out) in steps {
        assert!(
            out.status.success(),
            "step `{name}` failed:\n{}",
            text(&out.stderr)
        );
    }
}

fn step_output<'a>(steps: &'a [(String, Output)], name: &str) -> &'a Output {
    &steps
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no step `{name}` ran"))
        .1
}

/// image-builder's own "Generate SIG publishing info" logic on the same packer.out and tags
/// (tests/image-builder/sig-publishing-info.sh): what sigcat's file must equal byte for byte.
fn image_builders_publishing_info(capi: &Path) -> String {
    let out_file = capi.join("theirs.json");
    let run = Command::new("bash")
        .arg(repo().join("tests/image-builder/sig-publishing-info.sh"))
        .arg(capi.join("packer/azure/packer.out"))
        .arg(capi.join("packer/azure/tags.out"))
        .arg(&out_file)
        .env("DISTRO", "ubuntu-2404")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    std::fs::read_to_string(out_file).unwrap()
}

/// What every successful run leaves, whichever the CI system.
fn assert_image_builders_flow(h: &Harness, capi: &Path, build_stdout: &[u8]) {
    let log = std::fs::read(repo().join("fixtures/console/sig-ubuntu-2404.log")).unwrap();
    assert_eq!(build_stdout, log, "the log scrolls by unchanged");
    assert_eq!(
        std::fs::read(capi.join("packer/azure/packer.out")).unwrap(),
        log,
        "stdout is teed to packer/azure/packer.out, as image-builder does"
    );
    let make = h.make_env("build-azure-sig-ubuntu-2404");
    assert!(
        make["PACKER_FLAGS"].contains("--var sig_image_version=1.30.3"),
        "the Kubernetes version is the gallery image version: {make:?}"
    );
    assert_eq!(
        make["USE_AZURE_CLI_AUTH"], "True",
        "Packer uses the CLI session"
    );
    assert!(
        !make.contains_key("AZURE_CLIENT_SECRET"),
        "no secret with OIDC"
    );
    assert_eq!(make["RESOURCE_GROUP_NAME"], "cluster-api-gallery");
    assert_eq!(make["AZURE_LOCATION"], "northcentralus");
    let tags = std::fs::read_to_string(capi.join("packer/azure/tags.out")).unwrap();
    assert!(
        tags.starts_with("creationTimestamp=") && tags.ends_with("DO-NOT-DELETE=UpstreamInfra"),
        "{tags}"
    );
    // image-builder's init-sig.sh splits TAGS on spaces: three KEY=VALUE words, the job name a
    // slug even though the runner's workflow / pipeline name has spaces.
    let words: Vec<&str> = tags.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{tags}");
    assert!(words.iter().all(|w| w.contains('=')), "{tags}");
    assert_eq!(words[1], "jobName=image-builder-sig-ubuntu-2404-1.30.3");
    assert_eq!(make["TAGS"], tags);
    let pip = std::fs::read_to_string(h.record.join("pip.log")).unwrap();
    assert!(pip.contains("install ansible-core==2.17.7"), "{pip}");
    // The artifact image-builder's later jobs read: the very bytes their step would write.
    let ours = std::fs::read_to_string(capi.join("packer/azure/sig-publishing-info.json")).unwrap();
    assert_eq!(ours, image_builders_publishing_info(capi));
}

fn assert_published(azurite: &Azurite, container: &str) {
    assert_published_as(azurite, container, &[]);
}

/// Published, and read by a reader with `args` (e.g. `--trusted-keys FILE`).
fn assert_published_as(azurite: &Azurite, container: &str, args: &[&str]) {
    let list = Command::new(env!("CARGO_BIN_EXE_sigcat"))
        .args(["catalog", "list", "-o", "json", "--catalog"])
        .arg(azurite.url(container))
        .args(args)
        .output()
        .unwrap();
    let entry: serde_json::Value = serde_json::from_slice(&list.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&list.stderr)));
    assert_eq!(
        entry["kubernetes_version"], "1.30.3",
        "published to the catalog"
    );
}

/// The build step failed, and said why on stderr.
fn assert_build_failed(steps: &[(String, Output)], said: &[&str]) {
    let (name, out) = steps.last().unwrap();
    assert_eq!(name, "Build the image and publish it to the catalog");
    assert!(!out.status.success(), "a failed build fails the job");
    let err = text(&out.stderr);
    for s in said {
        assert!(err.contains(s), "`{s}` in:\n{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// GitHub Actions

fn github_values(
    workflow: &Value,
    azurite: &Azurite,
    overrides: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    for (name, input) in workflow["on"]["workflow_dispatch"]["inputs"]
        .as_mapping()
        .unwrap()
    {
        if let Some(default) = input.get("default") {
            v.insert(format!("inputs.{}", s(name)), s(default));
        }
    }
    let cs = connection_string(azurite.port);
    for (k, val) in [
        ("inputs.kubernetes_version", "1.30.3"),
        ("vars.SIGCAT_STORAGE_ACCOUNT", "devstoreaccount1"),
        ("vars.SIGCAT_CONTAINER", "gh-images"),
        ("vars.SIGCAT_GIT_URL", "https://example.invalid/sigcat.git"),
        ("secrets.SIGCAT_STORAGE_CONNECTION_STRING", cs.as_str()),
        ("secrets.AZURE_CLIENT_ID", "client"),
        ("secrets.AZURE_TENANT_ID", "tenant"),
        ("secrets.AZURE_SUBSCRIPTION_ID", "subscription"),
        ("secrets.GITHUB_TOKEN", "ghs_test_token"),
        // Undefined secrets and variables are empty strings.
        ("secrets.SIGCAT_SIGNING_KEY", ""),
        ("vars.SIGCAT_TRUSTED_KEYS", ""),
        ("inputs.accept_expired && 'yes' || ''", ""),
    ]
    .into_iter()
    .chain(overrides.iter().copied())
    {
        v.insert(k.to_string(), val.to_string());
    }
    v
}

/// The build workflow's `run` steps, as a runner with `shell: bash` runs them.
fn run_github(
    h: &Harness,
    azurite: &Azurite,
    scenario: &Scenario,
    overrides: &[(&str, &str)],
) -> Vec<(String, Output)> {
    run_github_job(GITHUB, "build", h, azurite, scenario, overrides)
}

/// A job's `run` steps, as a runner with `shell: bash` runs them (`bash -e -o pipefail`).
fn run_github_job(
    path: &str,
    job: &str,
    h: &Harness,
    azurite: &Azurite,
    scenario: &Scenario,
    overrides: &[(&str, &str)],
) -> Vec<(String, Output)> {
    let workflow = &yaml(path)[0];
    assert_eq!(s(&workflow["defaults"]["run"]["shell"]), "bash");
    let values = github_values(workflow, azurite, overrides);
    let expand = |t: &str| substitute(t, "${{", "}}", &values);
    let mut job_env: BTreeMap<String, String> = workflow["env"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (s(k), expand(&s(v))))
        .collect();
    job_env.insert(
        "GITHUB_OUTPUT".into(),
        h.root.join("github_output").display().to_string(),
    );
    job_env.insert(
        "GITHUB_ENV".into(),
        h.root.join("github_env").display().to_string(),
    );
    let runner_temp = h.root.join("runner_temp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    job_env.insert("RUNNER_TEMP".into(), runner_temp.display().to_string());
    // What a real runner sets: the workflow's display name, spaces included.
    job_env.insert("GITHUB_WORKFLOW".into(), s(&workflow["name"]));
    let steps = workflow["jobs"][job]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|step| step.get("run").is_some() && s(&step["name"]) != "Install sigcat")
        .map(|step| Step {
            name: s(&step["name"]),
            script: expand(&s(&step["run"])),
            working_directory: step.get("working-directory").map(s),
            env: step_env(step, &expand),
        })
        .collect();
    run_steps(steps, h, scenario, &job_env, &["-e", "-o", "pipefail"])
}

fn github_step<'a>(workflow: &'a Value, name: &str) -> &'a Value {
    github_step_of(workflow, "build", name)
}

fn github_step_of<'a>(workflow: &'a Value, job: &str, name: &str) -> &'a Value {
    workflow["jobs"][job]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|st| st.get("name").map(s).as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no step `{name}`"))
}

/// What cannot run here (marketplace actions, OIDC) is checked as written.
#[test]
fn github_workflow_is_wired_as_image_builders() {
    let workflow = &yaml(GITHUB)[0];
    assert_eq!(s(&workflow["permissions"]["id-token"]), "write", "OIDC");
    let inputs = &workflow["on"]["workflow_dispatch"]["inputs"];
    for input in [
        "kubernetes_version",
        "target",
        "resource_group",
        "staging_gallery_name",
        "azure_location",
        "tags",
    ] {
        assert!(inputs.get(input).is_some(), "input {input}");
    }
    assert_eq!(inputs["kubernetes_version"]["required"], Value::Bool(true));
    // Every action pinned by a full commit SHA (local actions come with the checkout).
    for step in workflow["jobs"]["build"]["steps"].as_sequence().unwrap() {
        if let Some(uses) = step.get("uses").map(s) {
            let pinned = uses.starts_with("./")
                || uses.split_once('@').is_some_and(|(_, sha)| {
                    sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit())
                });
            assert!(pinned, "{uses} is not pinned by commit SHA");
        }
    }
    let checkout = github_step(workflow, "Check out image-builder");
    assert_eq!(
        s(&checkout["with"]["fetch-depth"]),
        "0",
        "git describe needs history"
    );
    assert_eq!(
        s(&checkout["with"]["repository"]),
        "kubernetes-sigs/image-builder"
    );
    let configure = github_step(workflow, "Configure the Kubernetes version");
    assert_eq!(
        s(&configure["uses"]),
        "./.github/actions/configure-k8s-version"
    );
    assert_eq!(
        s(&configure["with"]["kubernetes_version"]),
        "${{ inputs.kubernetes_version }}"
    );
    let login = github_step(workflow, "Sign in to Azure");
    assert!(s(&login["uses"]).starts_with("azure/login@"));
    let with = login["with"].as_mapping().unwrap();
    let keys: Vec<String> = with.keys().map(s).collect();
    assert_eq!(
        keys,
        ["client-id", "tenant-id", "subscription-id"],
        "OIDC: no secret"
    );
    let deps = github_step(workflow, "Install image-builder's Azure dependencies");
    assert_eq!(
        s(&deps["env"]["PACKER_GITHUB_API_TOKEN"]),
        "${{ secrets.GITHUB_TOKEN }}"
    );
    let upload = github_step(workflow, "Upload the publishing info");
    assert_eq!(s(&upload["with"]["name"]), "publishing-info");
    assert_eq!(
        s(&upload["with"]["path"]),
        "images/capi/packer/azure/sig-publishing-info.json"
    );
}

#[test]
fn github_workflow_runs_end_to_end() {
    let azurite = Azurite::start("pipelines-gh");
    let h = Harness::new("pipelines-gh", "");
    let steps = run_github(
        &h,
        &azurite,
        &GOOD,
        &[("inputs.staging_gallery_name", "team_staging")],
    );
    assert_all_ok(&steps);
    let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Set up the catalog's signing key",
            "Install image-builder's Azure dependencies",
            "Build the image and publish it to the catalog",
            "Expose the image as step outputs",
            "Write image-builder's publishing info",
            "Render the AzureMachineTemplate",
        ]
    );
    let capi = h.capi("");
    assert_image_builders_flow(
        &h,
        &capi,
        &step_output(&steps, "Build the image and publish it to the catalog").stdout,
    );
    assert_eq!(
        h.make_env("build-azure-sig-ubuntu-2404")["GALLERY_NAME"],
        "team_staging",
        "the named staging gallery, not a new random one"
    );
    assert_eq!(
        h.make_env("deps-azure")["PACKER_GITHUB_API_TOKEN"],
        "ghs_test_token"
    );
    let outputs = std::fs::read_to_string(h.root.join("github_output")).unwrap();
    for line in [
        "kubernetes_version=1.30.3",
        "gallery_image_version=0.3.1721037000",
        "gallery_name=ClusterAPI1721036000abcd",
    ] {
        assert!(outputs.lines().any(|l| l == line), "{line} in\n{outputs}");
    }
    let template =
        kubectl_agrees(&std::fs::read_to_string(capi.join("azuremachinetemplate.yaml")).unwrap());
    assert_eq!(
        template[0]["spec"]["template"]["spec"]["vmSize"],
        "Standard_D2s_v3"
    );
    assert_published(&azurite, "gh-images");
}

/// image-builder tees stdout only: a failed build is still found (Packer's errors are on
/// stdout), and a make that stopped before Packer is said to be that.
#[test]
fn github_workflow_fails_with_the_reason_on_stdout_only_logs() {
    let azurite = Azurite::start("pipelines-gh-failed");
    for (log, said) in [
        (
            "console/stdout-only-failed.log",
            "build azure-arm.sig-ubuntu-2404 (<stdin>) failed: Error waiting for SSH",
        ),
        (
            "console/stdout-only-make-failed.log",
            "no Packer build in <stdin>",
        ),
    ] {
        for make_status in [2, 0] {
            let h = Harness::new("pipelines-gh-failed", "");
            let scenario = Scenario {
                log,
                manifest: None,
                make_status,
            };
            let steps = run_github(&h, &azurite, &scenario, &[]);
            // Even if make exited 0, sigcat's own exit status fails the pipe.
            assert_build_failed(&steps, &[said]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Azure DevOps

/// Azure DevOps' macro expansion: `$(NAME)` of a defined variable becomes its value; an
/// undefined one stays as written (and `$(cmd args)` is not a macro at all).
fn expand_macros(text: &str, macros: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end)
                if after[..end]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._".contains(c)) =>
            {
                let name = &after[..end];
                match macros.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("$(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn ado_macros(azurite: &Azurite, staging: &Path, undefined: &[&str]) -> BTreeMap<String, String> {
    let cs = connection_string(azurite.port);
    [
        ("SIGCAT_STORAGE_ACCOUNT", "devstoreaccount1"),
        ("SIGCAT_CONTAINER", "ado-images"),
        ("SIGCAT_STORAGE_CONNECTION_STRING", cs.as_str()),
        ("SIGCAT_GIT_URL", "https://example.invalid/sigcat.git"),
        ("Build.ArtifactStagingDirectory", staging.to_str().unwrap()),
    ]
    .into_iter()
    .filter(|(k, _)| !undefined.contains(k))
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The build pipeline's steps, its parameters' defaults, as the agent runs them.
fn run_azure_devops(
    h: &Harness,
    azurite: &Azurite,
    scenario: &Scenario,
    undefined: &[&str],
    az_fails: &str,
) -> (Vec<(String, Output)>, PathBuf) {
    let run = AdoRun {
        undefined,
        az_fails,
        ..AdoRun::default()
    };
    run_ado_pipeline(AZURE_DEVOPS, h, azurite, scenario, &run)
}

/// How an Azure DevOps run is queued: parameters given, variables left undefined, secure files
/// in the library (name and file), whether the task's Azure CLI session fails.
#[derive(Default)]
struct AdoRun<'a> {
    parameters: &'a [(&'a str, &'a str)],
    undefined: &'a [&'a str],
    secure_files: &'a [(&'a str, &'a Path)],
    az_fails: &'a str,
}

/// A step list with template-time conditional insertions (`${{ if ne(parameters.X, '') }}:`)
/// resolved against `params`; any other template condition fails the test.
fn ado_steps(steps: &Value, params: &BTreeMap<String, String>) -> Vec<Value> {
    let mut out = Vec::new();
    for step in steps.as_sequence().unwrap() {
        let conditional = step.as_mapping().and_then(|m| {
            let (k, v) = m.iter().next()?;
            let k = s(k);
            k.starts_with("${{ if").then_some((k, v.clone()))
        });
        match conditional {
            Some((condition, inserted)) => {
                let parameter = condition
                    .strip_prefix("${{ if ne(parameters.")
                    .and_then(|c| c.strip_suffix(", '') }}"))
                    .unwrap_or_else(|| panic!("no test support for {condition}"));
                if !params[&format!("parameters.{parameter}")].is_empty() {
                    out.extend(ado_steps(&inserted, params));
                }
            }
            None => out.push(step.clone()),
        }
    }
    out
}

/// A pipeline's `script` steps and AzureCLI@2 inline scripts (after the task's `az login`,
/// which the stand-in `az` stands for), as the agent runs them; DownloadSecureFile@1 gives
/// the file's path as `NAME.secureFilePath`.
fn run_ado_pipeline(
    path: &str,
    h: &Harness,
    azurite: &Azurite,
    scenario: &Scenario,
    run: &AdoRun,
) -> (Vec<(String, Output)>, PathBuf) {
    let pipeline = &yaml(path)[0];
    let mut params = BTreeMap::new();
    for p in pipeline["parameters"].as_sequence().unwrap() {
        if let Some(d) = p.get("default") {
            // Azure DevOps gives booleans to scripts as True / False.
            let value = match d {
                Value::Bool(true) => "True".into(),
                Value::Bool(false) => "False".into(),
                other => s(other),
            };
            params.insert(format!("parameters.{}", s(&p["name"])), value);
        }
    }
    if path == AZURE_DEVOPS {
        params.insert("parameters.kubernetesVersion".into(), "1.30.3".into());
    }
    for (k, v) in run.parameters {
        params.insert(format!("parameters.{k}"), v.to_string());
    }
    let staging = h.root.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let mut macros = ado_macros(azurite, &staging, run.undefined);
    let skip = ["Check out image-builder", "Install sigcat"];
    let mut steps = Vec::new();
    for step in ado_steps(&pipeline["jobs"][0]["steps"], &params) {
        let expand = |t: &str| expand_macros(&substitute(t, "${{", "}}", &params), &macros);
        let Some(name) = step.get("displayName").map(s) else {
            continue;
        };
        let (script, wd) = match (step.get("script"), step.get("task").map(s).as_deref()) {
            (Some(script), _) => (s(script), step.get("workingDirectory").map(s)),
            (None, Some("AzureCLI@2")) => (
                s(&step["inputs"]["inlineScript"]),
                step["inputs"].get("workingDirectory").map(s),
            ),
            (None, Some("DownloadSecureFile@1")) => {
                let file = expand(&s(&step["inputs"]["secureFile"]));
                let (_, local) = run
                    .secure_files
                    .iter()
                    .find(|(n, _)| *n == file)
                    .unwrap_or_else(|| panic!("no secure file `{file}` in the test's library"));
                macros.insert(
                    format!("{}.secureFilePath", s(&step["name"])),
                    local.display().to_string(),
                );
                continue;
            }
            _ => continue,
        };
        if !skip.contains(&name.as_str()) {
            steps.push(Step {
                name,
                script: expand(&script),
                working_directory: wd,
                env: step_env(&step, &expand),
            });
        }
    }
    // What a real agent sets: the pipeline's name, spaces included.
    let agent = BTreeMap::from([
        (
            "BUILD_DEFINITIONNAME".to_string(),
            "Build CAPZ image".to_string(),
        ),
        ("SIGCAT_TEST_AZ_FAILS".to_string(), run.az_fails.to_string()),
    ]);
    (run_steps(steps, h, scenario, &agent, &[]), staging)
}

#[test]
fn azure_devops_pipeline_runs_end_to_end() {
    let azurite = Azurite::start("pipelines-ado");
    let h = Harness::new("pipelines-ado", "image-builder");
    // PACKER_GITHUB_API_TOKEN is optional and left undefined here: it reaches the script as
    // the literal `$(PACKER_GITHUB_API_TOKEN)`, which must not reach make as a token.
    let (steps, staging) = run_azure_devops(&h, &azurite, &GOOD, &["PACKER_GITHUB_API_TOKEN"], "");
    assert_all_ok(&steps);
    let capi = h.capi("image-builder");
    let k8s = std::fs::read_to_string(capi.join("packer/config/kubernetes.json")).unwrap();
    for line in [
        "\"kubernetes_semver\": \"v1.30.3\"",
        "\"kubernetes_series\": \"v1.30\"",
        "\"kubernetes_rpm_version\": \"1.30.3\"",
        "\"kubernetes_deb_version\": \"1.30.3-1.1\"",
    ] {
        assert!(k8s.contains(line), "{line} in {k8s}");
    }
    assert_image_builders_flow(
        &h,
        &capi,
        &step_output(&steps, "Build the image and publish it to the catalog").stdout,
    );
    let make = h.make_env("build-azure-sig-ubuntu-2404");
    assert_eq!(make["GALLERY_NAME"], "staging_gallery");
    assert_eq!(
        make["AZURE_SUBSCRIPTION_ID"], "00000000-1111-2222-3333-444444444444",
        "from the task's Azure CLI session"
    );
    assert!(
        !h.make_env("deps-azure")
            .contains_key("PACKER_GITHUB_API_TOKEN"),
        "an undefined optional variable is dropped, not passed as `$(...)`"
    );
    let vars = text(&step_output(&steps, "Expose the image as output variables").stdout);
    assert!(
        vars.lines().any(|l| l
            == "##vso[task.setvariable variable=kubernetes_version;isOutput=true]1.30.3"),
        "{vars}"
    );
    let template = kubectl_agrees(
        &std::fs::read_to_string(staging.join("azuremachinetemplate.yaml")).unwrap(),
    );
    assert_eq!(
        template[0]["spec"]["template"]["spec"]["image"]["computeGallery"]["version"],
        "0.3.1721037000"
    );
    assert_published(&azurite, "ado-images");
}

#[test]
fn azure_devops_pipeline_names_what_is_wrong() {
    let azurite = Azurite::start("pipelines-ado-wrong");
    // The catalog's account is undefined: the location still says `$(SIGCAT_STORAGE_ACCOUNT)`.
    // The log still passes through to its end; the step fails naming the variable.
    let h = Harness::new("pipelines-ado-undefined", "image-builder");
    let (steps, _) = run_azure_devops(&h, &azurite, &GOOD, &["SIGCAT_STORAGE_ACCOUNT"], "");
    assert_build_failed(
        &steps,
        &["`$(SIGCAT_STORAGE_ACCOUNT)`", "define that variable"],
    );
    assert_eq!(
        steps.last().unwrap().1.stdout,
        std::fs::read(repo().join("fixtures/console/sig-ubuntu-2404.log")).unwrap()
    );
    // A failed build, stdout only as image-builder keeps it.
    let h = Harness::new("pipelines-ado-failed", "image-builder");
    let failed = Scenario {
        log: "console/stdout-only-failed.log",
        manifest: None,
        make_status: 2,
    };
    let (steps, _) = run_azure_devops(&h, &azurite, &failed, &[], "");
    assert_build_failed(
        &steps,
        &["build azure-arm.sig-ubuntu-2404 (<stdin>) failed: Error waiting for SSH"],
    );
    // The task's Azure CLI session is gone: the failed `az` fails the step before make runs
    // (an `export X="$(az ...)"` would have hidden it from set -e).
    let h = Harness::new("pipelines-ado-az", "image-builder");
    let (steps, _) = run_azure_devops(&h, &azurite, &GOOD, &[], "1");
    assert_build_failed(&steps, &["Please run 'az login'"]);
    assert!(
        !h.record
            .join("make-build-azure-sig-ubuntu-2404.env")
            .exists(),
        "make never ran"
    );
}

/// Tags are KEY=VALUE words: image-builder's init-sig.sh splits TAGS on spaces, so a value with
/// a space would become a broken tag. Both pipelines refuse it before the build.
#[test]
fn a_tag_value_with_a_space_fails_before_the_build() {
    let azurite = Azurite::start("pipelines-tags");
    let h = Harness::new("pipelines-gh-tags", "");
    let steps = run_github(
        &h,
        &azurite,
        &GOOD,
        &[("inputs.tags", "team=platform owner=Jane Doe")],
    );
    let (name, out) = steps.last().unwrap();
    assert_eq!(name, "Build the image and publish it to the catalog");
    assert!(!out.status.success());
    // A workflow command on stdout: the runner shows it as an error annotation.
    assert!(
        text(&out.stdout).contains("::error::tag 'Doe' is not KEY=VALUE"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        !h.record
            .join("make-build-azure-sig-ubuntu-2404.env")
            .exists()
    );
}

// ---------------------------------------------------------------------------------------------
// Signed catalogs: the key in the build, and the scheduled re-sign

fn step_names(steps: &[(String, Output)]) -> Vec<&str> {
    steps.iter().map(|(n, _)| n.as_str()).collect()
}

/// The re-sign step said it re-signed, with a sequence above the build's.
fn assert_resigned(steps: &[(String, Output)], step: &str) {
    let said = text(&step_output(steps, step).stderr);
    assert!(
        said.contains("re-signed") && said.contains("sequence 2,"),
        "{said}"
    );
}

#[test]
fn github_signs_the_catalog_and_refreshes_it_on_schedule() {
    let azurite = Azurite::start("pipelines-gh-signed");
    let keys_dir = scratch("pipelines-gh-keys");
    let keys = keygen_with(&keys_dir, "catalog", "ci@example.com", "ed25519", "", "");
    let key_text = std::fs::read_to_string(&keys.key).unwrap();
    let allowed = keys.allowed.to_str().unwrap();
    let state = scratch("pipelines-gh-reader");
    let reader = [
        "--trusted-keys",
        allowed,
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let container = ("vars.SIGCAT_CONTAINER", "gh-signed");
    let signed = [("secrets.SIGCAT_SIGNING_KEY", key_text.as_str()), container];

    let h = Harness::new("pipelines-gh-signed", "");
    let steps = run_github(&h, &azurite, &GOOD, &signed);
    assert_all_ok(&steps);
    assert_eq!(step_names(&steps)[0], "Set up the catalog's signing key");
    let key_file = h.root.join("runner_temp/sigcat-signing-key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600,
        "the key is written for the runner's user only"
    );
    assert_published_as(&azurite, "gh-signed", &reader);

    // The same build without the key is refused, naming why; the log still passes through.
    let h = Harness::new("pipelines-gh-unsigned", "");
    let steps = run_github(&h, &azurite, &GOOD, &[container]);
    assert_build_failed(&steps, &["would strip the signature"]);
    assert_eq!(
        steps.last().unwrap().1.stdout,
        std::fs::read(repo().join("fixtures/console/sig-ubuntu-2404.log")).unwrap()
    );

    // The scheduled job: the same key set-up (required there), a re-sign, a verify.
    let refresh = &yaml(GITHUB_REFRESH)[0];
    assert!(
        refresh["on"]["schedule"][0]["cron"].as_str().is_some(),
        "runs on a schedule"
    );
    assert_eq!(
        github_step_of(refresh, "refresh", "Set up the catalog's signing key")["run"],
        github_step(&yaml(GITHUB)[0], "Set up the catalog's signing key")["run"],
        "one key set-up script in both workflows"
    );
    let h = Harness::new("pipelines-gh-refresh", "");
    let steps = run_github_job(GITHUB_REFRESH, "refresh", &h, &azurite, &GOOD, &signed);
    assert_all_ok(&steps);
    assert_eq!(
        step_names(&steps),
        [
            "Set up the catalog's signing key",
            "Re-sign the catalog",
            "Verify the catalog"
        ]
    );
    assert_resigned(&steps, "Re-sign the catalog");
    assert_published_as(&azurite, "gh-signed", &reader);

    // Without the key the job fails at once, naming the secret.
    let h = Harness::new("pipelines-gh-refresh-nokey", "");
    let steps = run_github_job(GITHUB_REFRESH, "refresh", &h, &azurite, &GOOD, &[container]);
    let (name, out) = steps.last().unwrap();
    assert_eq!(name, "Set up the catalog's signing key");
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("::error::secrets.SIGCAT_SIGNING_KEY is not set"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn azure_devops_signs_the_catalog_and_refreshes_it_on_schedule() {
    let azurite = Azurite::start("pipelines-ado-signed");
    let keys_dir = scratch("pipelines-ado-keys");
    let keys = keygen_with(&keys_dir, "catalog", "ci@example.com", "ecdsa", "256", "");
    let state = scratch("pipelines-ado-reader");
    let reader = [
        "--trusted-keys",
        keys.allowed.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let library = [("sigcat-signing-key", keys.key.as_path())];

    let h = Harness::new("pipelines-ado-signed", "image-builder");
    let run = AdoRun {
        parameters: &[("signingKeySecureFile", "sigcat-signing-key")],
        secure_files: &library,
        ..AdoRun::default()
    };
    let (steps, _) = run_ado_pipeline(AZURE_DEVOPS, &h, &azurite, &GOOD, &run);
    assert_all_ok(&steps);
    assert!(step_names(&steps).contains(&"Sign the catalog with it"));
    assert_published_as(&azurite, "ado-images", &reader);

    // Unsigned (the parameter's default): refused, naming why.
    let h = Harness::new("pipelines-ado-unsigned", "image-builder");
    let (steps, _) = run_azure_devops(&h, &azurite, &GOOD, &[], "");
    assert!(!step_names(&steps).contains(&"Sign the catalog with it"));
    assert_build_failed(&steps, &["would strip the signature"]);

    // The scheduled pipeline, even when nothing changed in its repository.
    let refresh = &yaml(AZURE_DEVOPS_REFRESH)[0];
    assert_eq!(refresh["schedules"][0]["always"], Value::Bool(true));
    let h = Harness::new("pipelines-ado-refresh", "image-builder");
    let run = AdoRun {
        secure_files: &library,
        ..AdoRun::default()
    };
    let (steps, _) = run_ado_pipeline(AZURE_DEVOPS_REFRESH, &h, &azurite, &GOOD, &run);
    assert_all_ok(&steps);
    assert_eq!(
        step_names(&steps),
        ["Sign the catalog with it", "Re-sign and verify the catalog"]
    );
    assert_resigned(&steps, "Re-sign and verify the catalog");
    assert_published_as(&azurite, "ado-images", &reader);
}
