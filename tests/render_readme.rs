//! The README's render walk-throughs, run as written, in order, in one directory: its `sh`
//! blocks run in bash with the real sigcat, a `make` that replays the fixture build (the log
//! on stdout, then manifest.json, as Packer writes it at the end), and a `kubectl` that answers
//! the `get`s from the fixtures and hands `apply` to the real kubectl (which reads the files
//! the way `apply` does, offline). A command the shims do not know fails the test, so the
//! README and this test cannot drift apart.

use crate::util::{BIN, kubectl, repo, scratch};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const MAKE: &str = r#"#!/bin/bash
[ "$*" = "-C images/capi build-azure-sig-ubuntu-2404" ] || { echo "make shim: unexpected: $*" >&2; exit 2; }
cat "$REPO/fixtures/console/sig-ubuntu-2404.log"
mkdir -p images/capi && cp "$REPO/fixtures/manifest/manifest.json" images/capi/manifest.json
"#;

const KUBECTL: &str = r#"#!/bin/bash
capz="$REPO/fixtures/capz"
case "$*" in
  "get azuremachinetemplate my-cluster-control-plane -o yaml") cat "$capz/cp.yaml" ;;
  "get azuremachinetemplate my-cluster-md-0 -o yaml") cat "$capz/md-0.yaml" ;;
  "get kubeadmcontrolplane,machinedeployment -o yaml") cat "$capz/current-v1beta1.yaml" ;;
  "get cluster/my-cluster clusterclass/azure-kubeadm -o yaml") cat "$capz/clusterclass/v1beta1-template-refs.yaml" ;;
  "get cluster/mixed clusterclass/capz-mixed -o yaml") cat "$capz/mixed/clusterclass-windows.yaml" ;;
  "get azuremachinetemplate mixed-control-plane mixed-worker mixed-worker-win -o yaml") cat "$capz/mixed/clusterclass-windows-templates.yaml" ;;
  "get kubeadmcontrolplane,machinedeployment -l cluster.x-k8s.io/cluster-name=gpu-cluster -o yaml") cat "$capz/mixed/kcp-md-gpu.yaml" ;;
  "get azuremachinetemplate -l cluster.x-k8s.io/cluster-name=gpu-cluster -o yaml") cat "$capz/mixed/kcp-md-gpu-templates.yaml" ;;
  "apply -f "*) "$REAL_KUBECTL" patch --local -f "$3" -p '{}' --type merge -o json > "$3.applied.json" ;;
  "apply -k "*) "$REAL_KUBECTL" kustomize "$3" > "$3.applied.yaml" ;;
  *) echo "kubectl shim: unexpected: $*" >&2; exit 2 ;;
esac
"#;

/// The fenced blocks of one README section: (language, text).
fn blocks(readme: &str, heading: &str) -> Vec<(String, String)> {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no `{heading}`"));
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n#").unwrap_or(section.len())];
    let mut out = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            out.push((lang.to_string(), body.join("\n") + "\n"));
        }
    }
    out
}

fn shims(dir: &std::path::Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("sigcat")).unwrap();
    for (name, script) in [("make", MAKE), ("kubectl", KUBECTL)] {
        let path = bin.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

fn run(block: &str, dir: &std::path::Path, bin: &std::path::Path) -> String {
    run_both(block, dir, bin).0
}

/// Runs a block; (stdout, stderr).
fn run_both(block: &str, dir: &std::path::Path, bin: &std::path::Path) -> (String, String) {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", block])
        .current_dir(dir)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("REPO", repo())
        .env("REAL_KUBECTL", kubectl())
        .env_remove("SIGCAT_CATALOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "README block failed:\n{block}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_render_walk_throughs_run_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let dir = scratch("readme-render");
    let bin = shims(&dir);

    let fresh = blocks(&readme, "### Worked example: a fresh cluster");
    assert_eq!(fresh[0].0, "sh");
    assert_eq!(fresh[1].0, "yaml");
    let printed = run(&fresh[0].1, &dir, &bin);
    assert!(
        printed.ends_with(&fresh[1].1),
        "the README shows another template than the command prints:\n{printed}"
    );
    assert!(
        std::fs::read_to_string(dir.join("records.json"))
            .unwrap()
            .contains("\"kubernetes_version\":\"1.30.3\""),
        "the parse step keeps the Kubernetes version for the upgrade"
    );

    let upgrade = blocks(
        &readme,
        "### Worked example: upgrading a cluster to the new image",
    );
    assert_eq!(upgrade.len(), 2);
    run(&upgrade[0].1, &dir, &bin);
    let applied = std::fs::read_to_string(dir.join("upgrade.yaml.applied.json")).unwrap();
    for expected in [
        "\"name\": \"my-cluster-control-plane-0-3-1721037000\"",
        "\"version\": \"v1.30.3\"",
    ] {
        assert!(applied.contains(expected), "{expected} in {applied}");
    }
    let patches = run(&upgrade[1].1, &dir, &bin);
    assert!(patches.contains("version: v1.30.3"), "{patches}");
    assert!(dir.join("upgrade.applied.yaml").exists());

    mixed(&readme, &dir, &bin);

    let class = blocks(&readme, "### Worked example: a ClusterClass cluster");
    run(&class[0].1, &dir, &bin);
    let applied = std::fs::read_to_string(dir.join("upgrade.yaml.applied.json")).unwrap();
    assert!(
        applied.contains("\"class\": \"azure-kubeadm-v1-30-3\""),
        "{applied}"
    );
}

/// The mixed-cluster walk-through, on the saved logs of the v1.30.5 pipeline run; the plan it
/// prints is the one the README shows.
fn mixed(readme: &str, dir: &std::path::Path, bin: &std::path::Path) {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for build in [
        "sig-ubuntu-2404",
        "sig-windows-2022-containerd",
        "sig-ubuntu-2204-gpu",
    ] {
        let saved = repo().join(format!("fixtures/console/v1.30.5-{build}.log"));
        std::fs::copy(saved, logs.join(format!("{build}.log"))).unwrap();
    }
    let blocks = blocks(readme, "### Worked example: a mixed cluster");
    assert_eq!(blocks.len(), 2);
    let (_, stderr) = run_both(&blocks[0].1, dir, bin);
    let shown = readme
        .split("  ```text\n  sigcat: the upgrade to Kubernetes v1.30.5")
        .nth(1)
        .and_then(|rest| rest.split("  ```\n").next())
        .expect("the README shows the plan");
    let shown: String = format!("  sigcat: the upgrade to Kubernetes v1.30.5{shown}")
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    assert!(
        stderr.contains(&shown),
        "the README shows another plan than the render prints:\n{stderr}\nREADME:\n{shown}"
    );
    let applied = std::fs::read_to_string(dir.join("upgrade.yaml.applied.json")).unwrap();
    for expected in [
        "\"name\": \"capi-windows-2022-containerd\"",
        "\"class\": \"capz-mixed-v1-30-5\"",
        "\"version\": \"v1.30.5\"",
    ] {
        assert!(applied.contains(expected), "{expected} in {applied}");
    }
    let (_, stderr) = run_both(&blocks[1].1, dir, bin);
    assert!(
        stderr.contains("keeps its image (--keep-image)"),
        "{stderr}"
    );
    let applied = std::fs::read_to_string(dir.join("upgrade.yaml.applied.json")).unwrap();
    assert!(
        applied.contains("\"name\": \"gpu-cluster-md-gpu\""),
        "the GPU pool keeps its template: {applied}"
    );
}
