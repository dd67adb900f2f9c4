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

/// Stand-in for the Azure CLI: records every call (one file per step), answers what the
/// pipelines and image-builder's jobs ask, and keeps what they create or delete as files under
/// $SIGCAT_TEST_AZURE, so a later job sees it.
const AZ: &str = r#"#!/bin/bash
echo "$*" >> "$SIGCAT_TEST_RECORD/az-${SIGCAT_TEST_STEP:-other}.log"
if [ -n "${SIGCAT_TEST_AZ_FAILS:-}" ]; then echo "ERROR: Please run 'az login' to setup account." >&2; exit 1; fi
state="${SIGCAT_TEST_AZURE:-/nonexistent}"
sub=00000000-1111-2222-3333-444444444444
arg() { local want=$1; shift; while [ $# -gt 0 ]; do if [ "$1" = "$want" ]; then echo "$2"; return; fi; shift; done; }
version_id() { echo "/subscriptions/$sub/resourceGroups/$(arg --resource-group "$@")/providers/Microsoft.Compute/galleries/$(arg --gallery-name "$@")/images/$(arg --gallery-image-definition "$@")/versions/$(arg --gallery-image-version "$@")"; }
file() { echo "$state/$(echo "$1" | tr '/' '_')"; }
case "$1 $2" in
  "account show") echo "$sub";;
  "group show") exit 0;;
  "group create"|"group delete"|"sig create") echo '{}';;
  "sig show")
    if [ -n "$(arg --query "$@")" ]; then echo ClusterAPI-f72ceb4f-5159-4c26-a0fe-2ea738f0d019; fi;;
  "sig image-definition") [ "$3" = show ] || echo '{}';;
  "sig image-version")
    case "$3" in
      show) [ -e "$(file "$(version_id "$@")")" ];;
      delete)
        id=$(arg --ids "$@"); [ -n "$id" ] || id=$(version_id "$@")
        rm -f "$(file "$id")";;
      create)
        id=$(version_id "$@"); touch "$(file "$id")"
        regions=(); on=""
        for a in "$@"; do
          case "$a" in --target-regions) on=1;; --*) on="";; *) [ -n "$on" ] && regions+=("$a");; esac
        done
        jq -n --arg id "$id" --arg eol "$(arg --end-of-life-date "$@")" \
          --argjson regions "$(printf '%s\n' "${regions[@]}" | jq -R . | jq -s 'map({name: ., regionalReplicaCount: 1})')" \
          '{id: $id, provisioningState: "Succeeded", publishingProfile: {endOfLifeDate: $eol, targetRegions: $regions, excludeFromLatest: false}}';;
      *) echo "az stand-in: unexpected: $*" >&2; exit 2;;
    esac;;
  "tag list") echo '{"properties":{"tags":{"creationTimestamp":"2026-12-04T00:00:00Z","jobName":"image-builder-sig-ubuntu-2404-1.30.3"}}}';;
  "image show") [ -e "$(file "$(arg --ids "$@")")" ];;
  "image delete") rm -f "$(file "$(arg --ids "$@")")";;
  "vm create") echo '{"publicIpAddress": "203.0.113.7"}';;
  "vm run-command") echo "Kubernetes v${SIGCAT_TEST_KUBELET:-1.30.3}";;
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

/// A stand-in checkout of image-builder and the tools, under `root`: one runner. Runners of
/// one workflow run share `shared`: its artifacts, and the Azure resources the stand-in `az`
/// keeps.
struct Harness {
    root: PathBuf,
    bin: PathBuf,
    record: PathBuf,
    shared: PathBuf,
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
        let shared = root.join("shared");
        std::fs::create_dir_all(shared.join("artifacts")).unwrap();
        std::fs::create_dir_all(shared.join("azure")).unwrap();
        Harness {
            root,
            bin,
            record,
            shared,
        }
    }

    /// Another runner of the same workflow run as `other`.
    fn next_job(name: &str, checkout: &str, other: &Harness) -> Harness {
        let mut h = Harness::new(name, checkout);
        h.shared = other.shared.clone();
        h
    }

    /// What the stand-in `az` was asked during step `name`.
    fn az_calls(&self, step: &str) -> String {
        std::fs::read_to_string(self.record.join(format!("az-{}.log", slug(step))))
            .unwrap_or_default()
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

/// A step name as a file name.
fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
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
            .env("SIGCAT_TEST_MAKE_STATUS", scenario.make_status.to_string())
            .env("SIGCAT_TEST_STEP", slug(&step.name))
            .env("SIGCAT_TEST_ARTIFACTS", h.shared.join("artifacts"))
            .env("SIGCAT_TEST_AZURE", h.shared.join("azure"));
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
        ("!inputs.accept_expired", "true"),
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
    if let Some(env) = workflow["jobs"][job]["env"].as_mapping() {
        for (k, v) in env {
            job_env.insert(s(k), expand(&s(v)));
        }
    }
    job_env.insert(
        "GITHUB_ENV".into(),
        h.root.join("github_env").display().to_string(),
    );
    job_env.insert("GITHUB_RUN_ID".into(), "4242".into());
    let runner_temp = h.root.join("runner_temp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    job_env.insert("RUNNER_TEMP".into(), runner_temp.display().to_string());
    // What a real runner sets: the workflow's display name, spaces included.
    job_env.insert("GITHUB_WORKFLOW".into(), s(&workflow["name"]));
    let steps = workflow["jobs"][job]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|step| s(&step["name"]) != "Install sigcat")
        // A step whose condition is false is skipped, as the runner does.
        .filter(|step| step.get("if").is_none_or(|c| expand(&s(c)) != "false"))
        .filter_map(|step| {
            let script = match (step.get("run"), step.get("uses").map(s)) {
                (Some(run), _) => expand(&s(run)),
                // Artifacts go through a directory the runners of one run share.
                (None, Some(uses)) if uses.starts_with("actions/upload-artifact@") => format!(
                    "mkdir -p \"$SIGCAT_TEST_ARTIFACTS/{name}\" && cp {path} \"$SIGCAT_TEST_ARTIFACTS/{name}/\"",
                    name = s(&step["with"]["name"]),
                    path = s(&step["with"]["path"])
                ),
                (None, Some(uses)) if uses.starts_with("actions/download-artifact@") => format!(
                    "mkdir -p {path} && cp \"$SIGCAT_TEST_ARTIFACTS/{name}\"/* {path}",
                    name = s(&step["with"]["name"]),
                    path = s(&step["with"]["path"])
                ),
                _ => return None,
            };
            Some(Step {
                name: s(&step["name"]),
                script,
                working_directory: step.get("working-directory").map(s),
                env: step_env(step, &expand),
            })
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
            "Upload the publishing info",
            "Upload the AzureMachineTemplate",
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
        ("Build.BuildId", "1234"),
        ("EULA_LINK", "https://example.com/eula"),
        ("PUBLISHER_EMAIL", "capi@example.com"),
        ("PUBLISHER_URI", "https://example.com"),
        ("SIG_PUBLISHER", "cncf-upstream"),
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

/// The steps of job (or deployment job) `name`.
fn ado_job_steps<'a>(pipeline: &'a Value, name: &str) -> &'a Value {
    let job = pipeline["jobs"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|j| {
            j.get("job")
                .or_else(|| j.get("deployment"))
                .map(s)
                .as_deref()
                == Some(name)
        })
        .unwrap_or_else(|| panic!("no job `{name}`"));
    match job.get("strategy") {
        Some(strategy) => &strategy["runOnce"]["deploy"]["steps"],
        None => &job["steps"],
    }
}

/// How an Azure DevOps run is queued: parameters given, variables left undefined, secure files
/// in the library (name and file), whether the task's Azure CLI session fails.
#[derive(Default)]
struct AdoRun<'a> {
    /// The job to run (default: the first).
    job: Option<&'a str>,
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
    let workspace = h.root.join("pipeline-workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    macros.insert("Pipeline.Workspace".into(), workspace.display().to_string());
    // The pipeline's own variables (not groups): defined for every step, as environment
    // variables too.
    let mut variables = BTreeMap::new();
    for v in pipeline["variables"].as_sequence().into_iter().flatten() {
        if let (Some(name), Some(value)) = (v.get("name"), v.get("value")) {
            let value = expand_macros(&s(value), &macros);
            macros.insert(s(name), value.clone());
            variables.insert(s(name), value);
        }
    }
    let skip = ["Check out image-builder", "Install sigcat"];
    let mut steps = Vec::new();
    let job_steps = match run.job {
        Some(name) => ado_job_steps(pipeline, name),
        None => &pipeline["jobs"][0]["steps"],
    };
    for step in ado_steps(job_steps, &params) {
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
            // Artifacts go through a directory the agents of one run share.
            (None, Some("PublishPipelineArtifact@1")) => (
                format!(
                    "mkdir -p \"$SIGCAT_TEST_ARTIFACTS/{name}\" && cp {path} \"$SIGCAT_TEST_ARTIFACTS/{name}/\"",
                    name = s(&step["inputs"]["artifact"]),
                    path = s(&step["inputs"]["targetPath"]),
                ),
                None,
            ),
            (None, Some("DownloadPipelineArtifact@2")) => (
                format!(
                    "mkdir -p {path} && cp \"$SIGCAT_TEST_ARTIFACTS/{name}\"/* {path}",
                    name = s(&step["inputs"]["artifact"]),
                    path = s(&step["inputs"]["path"]),
                ),
                None,
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
                working_directory: wd.map(|d| expand(&d)),
                env: step_env(&step, &expand),
            });
        }
    }
    // What a real agent sets: the pipeline's name, spaces included.
    let mut agent = BTreeMap::from([
        (
            "BUILD_DEFINITIONNAME".to_string(),
            "Build CAPZ image".to_string(),
        ),
        ("SIGCAT_TEST_AZ_FAILS".to_string(), run.az_fails.to_string()),
    ]);
    agent.extend(variables);
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
        said.contains("re-signed") && said.contains("sequence 3,"),
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
    // The state the build left is where the cache step keeps it between runs.
    let build = yaml(GITHUB);
    let cache = github_step(&build[0], "Remember the catalog's sequence between runs");
    assert_eq!(s(&cache["with"]["path"]), "~/.local/state/sigcat");
    assert!(s(&cache["with"]["key"]).contains("github.run_id"));
    assert!(
        h.root.join(".local/state/sigcat/catalogs").is_dir(),
        "the signing build remembers the catalog in ~/.local/state/sigcat"
    );

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
            "Verify the catalog before re-signing it",
            "Re-sign the catalog",
            "Verify the catalog after"
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
    // The state is where the Cache@2 step keeps it between runs.
    let pipeline = &yaml(AZURE_DEVOPS)[0];
    let cached = pipeline["jobs"][0]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|st| st.get("task").map(s).as_deref() == Some("Cache@2"))
        .expect("a Cache@2 step");
    assert_eq!(s(&cached["inputs"]["path"]), "$(SIGCAT_STATE_DIR)");
    assert!(
        h.root
            .join("pipeline-workspace/sigcat-state/catalogs")
            .is_dir(),
        "the signing build remembers the catalog in $(SIGCAT_STATE_DIR)"
    );

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

// ---------------------------------------------------------------------------------------------
// After the build: image-builder's test, promote and clean jobs, each recorded in the catalog

/// `sigcat catalog latest` as a cluster asks it (with `--record`), and what it served: the
/// record's template, as JSON.
fn latest_template(azurite: &Azurite, container: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigcat"))
        .args([
            "catalog",
            "latest",
            "--kubernetes",
            "1.30",
            "-o",
            "json",
            "--catalog",
        ])
        .arg(azurite.url(container))
        .args(extra)
        .output()
        .unwrap()
}

fn image_section(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let template: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    template["spec"]["template"]["spec"]["image"]["computeGallery"].clone()
}

/// The promote job's settings, as both pipelines' flow tests give them to image-builder's
/// own promote step.
const PROMOTE_ENV: [(&str, &str); 7] = [
    ("RESOURCE_GROUP", "cluster-api-gallery"),
    ("GALLERY_NAME", "community_gallery"),
    (
        "REPLICATED_REGIONS_INPUT",
        "australiaeast canadacentral eastus eastus2 francecentral germanywestcentral northcentralus northeurope switzerlandnorth uksouth westeurope westus2",
    ),
    ("EULA_LINK", "https://example.com/eula"),
    ("PUBLISHER_EMAIL", "capi@example.com"),
    ("PUBLISHER_URI", "https://example.com"),
    ("SIG_PUBLISHER", "cncf-upstream"),
];

/// image-builder's own step logic (tests/image-builder/NAME.sh) on the same inputs, with the
/// same stand-in `az`: the calls it makes.
fn image_builders_calls(h: &Harness, script: &str, env: &[(&str, &str)], info: &Path) -> String {
    let dir = h.root.join(format!("theirs-{script}"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("bash")
        .arg(repo().join(format!("tests/image-builder/{script}.sh")))
        .arg(info)
        .current_dir(&dir)
        .env("PATH", format!("{}:/usr/bin:/bin", h.bin.display()))
        .env("SIGCAT_TEST_RECORD", &h.record)
        .env("SIGCAT_TEST_STEP", format!("image-builder-{script}"))
        .env("SIGCAT_TEST_AZURE", h.shared.join("azure-theirs"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    h.az_calls(&format!("image-builder-{script}"))
}

#[test]
fn github_build_test_promote_clean_as_image_builder_does_and_latest_follows() {
    let azurite = Azurite::start("pipelines-gh-flow");
    let container = "gh-flow";
    let overrides = [
        ("vars.SIGCAT_CONTAINER", container),
        ("vars.EULA_LINK", "https://example.com/eula"),
        ("vars.PUBLISHER_EMAIL", "capi@example.com"),
        ("vars.PUBLISHER_URI", "https://example.com"),
        ("vars.SIG_PUBLISHER", "cncf-upstream"),
    ];
    let run = |h: &Harness, job: &str| -> Vec<(String, Output)> {
        let steps = run_github_job(GITHUB, job, h, &azurite, &GOOD, &overrides);
        assert_all_ok(&steps);
        steps
    };
    // Build: published where it was built, the staging gallery.
    let build = Harness::new("pipelines-gh-flow-build", "");
    run(&build, "build");
    let staging = image_section(&latest_template(&azurite, container, &[]));
    assert_eq!(staging["gallery"], "ClusterAPI1721036000abcd", "{staging}");
    assert!(staging.get("subscriptionID").is_some());
    // Test: a VM from the staging managed image, its kubelet checked, its group removed.
    let test = Harness::next_job("pipelines-gh-flow-test", "", &build);
    run(&test, "test");
    let calls = test.az_calls("Boot a VM from the staging image and check its Kubernetes version");
    assert!(
        calls.contains("vm create") && calls.contains("/images/capi-ubuntu-2404-1721037000"),
        "{calls}"
    );
    assert!(
        calls.contains("group delete -n image-builder-test-4242"),
        "{calls}"
    );
    // Promote: the same az calls as image-builder's own step, then recorded in the catalog.
    let promote = Harness::next_job("pipelines-gh-flow-promote", "", &build);
    run(&promote, "approve_promotion");
    run(&promote, "promote");
    let ours = promote.az_calls("Publish to the community gallery");
    let info = promote
        .capi("")
        .join("packer/azure/sig/sig-publishing-info.json");
    let theirs = image_builders_calls(&promote, "promote", &PROMOTE_ENV, &info);
    assert!(ours.contains("sig image-version create"), "{ours}");
    assert_eq!(
        ours, theirs,
        "the promote step issues image-builder's az commands"
    );
    let promoted = image_section(&latest_template(&azurite, container, &[]));
    assert_eq!(
        promoted["gallery"], "ClusterAPI-f72ceb4f-5159-4c26-a0fe-2ea738f0d019",
        "served from the community gallery by its public name: {promoted}"
    );
    assert_eq!(promoted["name"], "capi-ubun2-2404");
    assert!(promoted.get("subscriptionID").is_none(), "{promoted}");
    // Clean: the staging image deleted as image-builder does, then recorded; latest still
    // serves the community image, and nothing serves the staging one.
    std::fs::write(
        build.shared.join("azure").join(
            "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/galleries/ClusterAPI1721036000abcd/images/capi-ubuntu-2404/versions/0.3.1721037000"
                .replace('/', "_"),
        ),
        "",
    )
    .unwrap();
    let clean = Harness::next_job("pipelines-gh-flow-clean", "", &build);
    run(&clean, "clean");
    let ours = clean.az_calls("Clean up staging resources");
    let theirs = image_builders_calls(
        &clean,
        "clean",
        &[
            ("RESOURCE_GROUP", "cluster-api-gallery"),
            ("STAGING_GALLERY_NAME", "staging_gallery"),
        ],
        &clean
            .capi("")
            .join("packer/azure/sig/sig-publishing-info.json"),
    );
    assert!(ours.contains("image show --ids"), "{ours}");
    assert_eq!(
        ours, theirs,
        "the clean step issues image-builder's az commands"
    );
    assert_eq!(
        image_section(&latest_template(&azurite, container, &[]))["gallery"],
        "ClusterAPI-f72ceb4f-5159-4c26-a0fe-2ea738f0d019"
    );
    let staging_now = latest_template(&azurite, container, &["--stage", "staging"]);
    assert_eq!(
        staging_now.status.code(),
        Some(3),
        "{}",
        text(&staging_now.stderr)
    );
    let verify = Command::new(env!("CARGO_BIN_EXE_sigcat"))
        .args(["catalog", "verify", "--catalog"])
        .arg(azurite.url(container))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify.stdout));
}

#[test]
fn azure_devops_build_test_promote_clean_as_image_builder_does_and_latest_follows() {
    let azurite = Azurite::start("pipelines-ado-flow");
    let container = "ado-images";
    let job = |h: &Harness, name: &'static str| -> Vec<(String, Output)> {
        let run = AdoRun {
            job: Some(name),
            ..AdoRun::default()
        };
        let (steps, _) = run_ado_pipeline(AZURE_DEVOPS, h, &azurite, &GOOD, &run);
        assert_all_ok(&steps);
        steps
    };
    let build = Harness::new("pipelines-ado-flow-build", "image-builder");
    job(&build, "build");
    assert_eq!(
        image_section(&latest_template(&azurite, container, &[]))["gallery"],
        "ClusterAPI1721036000abcd"
    );
    let test = Harness::next_job("pipelines-ado-flow-test", "image-builder", &build);
    job(&test, "test");
    assert!(
        test.az_calls("Boot a VM from the staging image and check its Kubernetes version")
            .contains("group delete -n image-builder-test-1234")
    );
    let promote = Harness::next_job("pipelines-ado-flow-promote", "image-builder", &build);
    job(&promote, "promote");
    let info = promote
        .root
        .join("pipeline-workspace/publishing-info/sig-publishing-info.json");
    let theirs = image_builders_calls(&promote, "promote", &PROMOTE_ENV, &info);
    assert_eq!(promote.az_calls("Publish to the community gallery"), theirs);
    assert_eq!(
        image_section(&latest_template(&azurite, container, &[]))["gallery"],
        "ClusterAPI-f72ceb4f-5159-4c26-a0fe-2ea738f0d019"
    );
    let clean = Harness::next_job("pipelines-ado-flow-clean", "image-builder", &build);
    job(&clean, "clean");
    let theirs = image_builders_calls(
        &clean,
        "clean",
        &[
            ("RESOURCE_GROUP", "cluster-api-gallery"),
            ("STAGING_GALLERY_NAME", "staging_gallery"),
        ],
        &clean
            .root
            .join("pipeline-workspace/publishing-info/sig-publishing-info.json"),
    );
    assert_eq!(clean.az_calls("Clean up staging resources"), theirs);
    let staging_now = latest_template(&azurite, container, &["--stage", "staging"]);
    assert_eq!(
        staging_now.status.code(),
        Some(3),
        "{}",
        text(&staging_now.stderr)
    );
    assert_eq!(
        image_section(&latest_template(&azurite, container, &[]))["gallery"],
        "ClusterAPI-f72ceb4f-5159-4c26-a0fe-2ea738f0d019"
    );
}
