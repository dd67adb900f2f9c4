//! `sigcat render --upgrade`: KubeadmControlPlane / MachineDeployment upgrades, ClusterClass
//! clusters in CAPI's v1beta1 and v1beta2 shapes with both image styles (template references,
//! variable patches), and `--as kustomize`, which a real `kubectl kustomize` must build into
//! exactly what `--as objects` prints. Expected objects are the input fixtures as kubectl reads
//! them, edited here by hand at the fields the upgrade must change.

use crate::render::{
    LOG, MANIFEST, Rendered, assert_valid_template, fixture_image, fixture_objects, kinds, plan_of,
    put, render_both_ways, render_build, render_fails, s, without_server_fields,
};
use crate::util::scratch;
use serde_json::{Value as Json, json};

const CP: &str = "fixtures/capz/cp.yaml";
const MD0: &str = "fixtures/capz/md-0.yaml";
const NEW_CP: &str = "my-cluster-control-plane-0-3-1721037000";
const NEW_MD0: &str = "my-cluster-md-0-0-3-1721037000";
const CC: &str = "fixtures/capz/clusterclass";
/// The plain upgrade: both templates, the v1beta1 control plane and MachineDeployments.
const UPGRADE: [&str; 6] = [
    "--from",
    CP,
    "--from",
    MD0,
    "--upgrade",
    "fixtures/capz/current-v1beta1.yaml",
];

/// The fixture's object of this kind, as kubectl reads it, without what the server set.
fn input(path: &str, kind: &str, name: &str) -> Json {
    let found = fixture_objects(path)
        .into_iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {path}"));
    without_server_fields(found)
}

/// [`render_both_ways`] of the fixture build.
fn render_build_both_ways(args: &[&str]) -> Rendered {
    render_both_ways(&[&[LOG, "--manifest", MANIFEST], args].concat())
}

/// (JSON pointer, new value) pairs.
type Edits<'a> = Vec<(&'a str, Json)>;

/// The input object with the fields the upgrade must change set by hand.
fn expected(path: &str, kind: &str, name: &str, edits: &[(&str, Json)]) -> Json {
    let mut obj = input(path, kind, name);
    for (pointer, value) in edits {
        put(&mut obj, pointer, value.clone());
    }
    obj
}

#[test]
fn upgrade_control_plane_first_in_both_api_versions() {
    for (current, kcp_ref) in [
        (
            "fixtures/capz/current-v1beta1.yaml",
            "/spec/machineTemplate/infrastructureRef/name",
        ),
        (
            "fixtures/capz/current-v1beta2.yaml",
            "/spec/machineTemplate/spec/infrastructureRef/name",
        ),
    ] {
        let out = render_build_both_ways(&["--from", CP, "--from", MD0, "--upgrade", current]);
        let d = &out.objects;
        assert_eq!(
            kinds(d),
            [
                "AzureMachineTemplate",
                "AzureMachineTemplate",
                "KubeadmControlPlane",
                "MachineDeployment"
            ]
        );
        assert_valid_template(&d[0]);
        assert_valid_template(&d[1]);
        assert_eq!(s(&d[0], "/metadata/name"), NEW_CP);
        assert_eq!(s(&d[1], "/metadata/name"), NEW_MD0);
        let version = json!("v1.30.3");
        let kcp = [("/spec/version", version.clone()), (kcp_ref, json!(NEW_CP))];
        assert_eq!(
            d[2],
            expected(
                current,
                "KubeadmControlPlane",
                "my-cluster-control-plane",
                &kcp
            )
        );
        let md = [
            ("/spec/template/spec/version", version),
            ("/spec/template/spec/infrastructureRef/name", json!(NEW_MD0)),
        ];
        assert_eq!(
            d[3],
            expected(current, "MachineDeployment", "my-cluster-md-0", &md)
        );
    }
    // md-windows uses another template: untouched, not in the output, named on stderr.
    let out = render_build(&UPGRADE);
    assert!(
        out.stderr.contains("my-cluster-md-windows"),
        "{}",
        out.stderr
    );
}

/// v1beta1 in place, v1beta2 as a new revision (`--new-class`): the class's references move
/// to the new templates, and the Cluster's version (and class) in one change.
#[test]
fn clusterclass_template_refs_in_place_and_as_a_new_revision() {
    let version = ("/spec/topology/version", json!("v1.30.3"));
    let v1 = &format!("{CC}/v1beta1-template-refs.yaml");
    let v2 = &format!("{CC}/v1beta2-template-refs.yaml");
    let new_class = "azure-kubeadm-v1-30-3";
    let cases: [(&str, &[&str], Edits, Edits); 2] = [
        (
            v1,
            &[],
            vec![
                (
                    "/spec/controlPlane/machineInfrastructure/ref/name",
                    json!(NEW_CP),
                ),
                (
                    "/spec/workers/machineDeployments/0/template/infrastructure/ref/name",
                    json!(NEW_MD0),
                ),
            ],
            vec![version.clone()],
        ),
        (
            v2,
            &["--new-class", new_class],
            vec![
                ("/metadata/name", json!(new_class)),
                (
                    "/spec/controlPlane/machineInfrastructure/templateRef/name",
                    json!(NEW_CP),
                ),
                (
                    "/spec/workers/machineDeployments/0/infrastructure/templateRef/name",
                    json!(NEW_MD0),
                ),
            ],
            vec![
                version.clone(),
                ("/spec/topology/classRef/name", json!(new_class)),
            ],
        ),
    ];
    for (path, extra, class_edits, cluster_edits) in cases {
        let args = [&["--from", CP, "--from", MD0, "--upgrade", path][..], extra].concat();
        let out = render_build_both_ways(&args);
        let d = &out.objects;
        assert_eq!(
            kinds(d),
            [
                "AzureMachineTemplate",
                "AzureMachineTemplate",
                "ClusterClass",
                "Cluster"
            ]
        );
        assert_eq!(
            d[2],
            expected(path, "ClusterClass", "azure-kubeadm", &class_edits)
        );
        assert_eq!(
            d[3],
            expected(path, "Cluster", "my-cluster", &cluster_edits)
        );
        let in_place =
            out.stderr.contains("changed in place") && out.stderr.contains("--new-class");
        assert_eq!(in_place, extra.is_empty(), "{}", out.stderr);
    }
}

#[test]
fn clusterclass_image_variable_v1beta1_sets_the_variable_and_its_overrides() {
    let path = &format!("{CC}/v1beta1-image-variable.yaml");
    let out = render_build_both_ways(&["--upgrade", path]);
    assert_eq!(kinds(&out.objects), ["Cluster"], "no template is needed");
    let edits = [
        ("/spec/topology/version", json!("v1.30.3")),
        ("/spec/topology/variables/1/value", fixture_image()),
        (
            "/spec/topology/workers/machineDeployments/1/variables/overrides/0/value",
            fixture_image(),
        ),
    ];
    assert_eq!(
        out.objects[0],
        expected(path, "Cluster", "my-cluster", &edits)
    );
    assert_eq!(
        out.objects[0]["spec"]["topology"]["variables"][0]["value"], true,
        "`value: yes` is YAML 1.1 true, as kubectl reads it"
    );
    // The plan names each machine, the override included, with its old and new image.
    let gpu = plan_of(
        &out.stderr,
        "`md-gpu` of Cluster default/my-cluster, class `gpu-worker`",
    );
    assert!(
        gpu.contains("now:   ClusterAPI1721036000abcd capi-ubuntu-2404 version 0.3.1719000000")
            && gpu.contains(
                "after: ClusterAPI1721036000abcd capi-ubuntu-2404 version 0.3.1721037000"
            ),
        "{gpu}"
    );
}

#[test]
fn clusterclass_image_version_variable_v1beta2_checks_the_template() {
    let path = &format!("{CC}/v1beta2-image-variable.yaml");
    let out = render_build_both_ways(&["--upgrade", path]);
    assert_eq!(kinds(&out.objects), ["Cluster"]);
    let mut cluster = input(path, "Cluster", "my-cluster");
    put(&mut cluster, "/spec/topology/version", json!("v1.30.3"));
    // Not set before: a new entry, from the class's default with the version changed.
    cluster["spec"]["topology"]["variables"] = json!([
        {"name": "image", "value": {"offer": "capi", "version": "0.3.1721037000"}}
    ]);
    assert_eq!(out.objects[0], cluster);

    // The templates name another definition: only the version would change, which is wrong.
    let file = &variant(path, |t| {
        t.replace("name: capi-ubuntu-2404", "name: capi-ubuntu-2204")
    });
    let err = render_fails(&["--upgrade", file], 6);
    assert!(
        err.contains("capi-ubuntu-2204") && err.contains("no record fits it"),
        "{err}"
    );
    // Said explicitly, the change of distro still cannot be made by the version variable.
    let err = render_fails(
        &[
            "--upgrade",
            file,
            "--image-for",
            "control-plane=ubuntu-2404",
            "--image-for",
            "md-0=capi-ubuntu-2404",
        ],
        6,
    );
    assert!(err.contains("differs in fields"), "{err}");
}

/// Writes a variant of a fixture for one refusal.
fn variant(path: &str, edit: impl Fn(String) -> String) -> String {
    crate::render::fixture_variant("render-variant", path, edit)
}

#[test]
fn clusterclass_upgrades_that_cannot_be_right_are_refused() {
    let refs1 = &format!("{CC}/v1beta1-template-refs.yaml");
    let refs2 = &format!("{CC}/v1beta2-template-refs.yaml");
    let var1 = &format!("{CC}/v1beta1-image-variable.yaml");
    let var2 = &format!("{CC}/v1beta2-image-variable.yaml");
    let both = ["--from", CP, "--from", MD0, "--upgrade"];
    let check = |args: &[&str], expected: &[&str]| {
        let err = render_fails(args, 6);
        for e in expected {
            assert!(err.contains(e), "{args:?}: expected `{e}` in {err}");
        }
    };
    // The Cluster alone: its class decides the images.
    let cluster_only = variant(refs2, |t| t.split("---").nth(1).unwrap().to_string());
    check(
        &[&both[..], &[cluster_only.as_str()]].concat(),
        &["kubectl get cluster/my-cluster clusterclass/azure-kubeadm -n default -o yaml"],
    );
    // A template slot without its --from copy.
    check(
        &["--from", CP, "--upgrade", refs1],
        &[
            "`my-cluster-md-0`",
            "--from my-cluster-md-0.yaml",
            "--keep-image md-0",
        ],
    );
    // A --from copy nothing would use (the class takes the image from a variable).
    check(
        &["--from", CP, "--upgrade", var1],
        &["referred to by nothing", "drop that --from"],
    );
    // A patch that fixes the image itself.
    let fixed = variant(var1, |t| {
        t.replace(
            "valueFrom:\n            variable: image",
            "value: {marketplace: {publisher: p, offer: o, sku: s, version: v}}",
        )
    });
    check(&["--upgrade", &fixed], &["machineImage", "fixed value"]);
    let templated = variant(var1, |t| {
        t.replace(
            "valueFrom:\n            variable: image",
            "valueFrom:\n            template: '{computeGallery: {version: \"{{ .builtin.controlPlane.version }}\"}}'",
        )
    });
    check(&["--upgrade", &templated], &["Go template"]);
    // Part of the image from a variable, the rest from templates the input lacks.
    let no_templates = variant(var2, |t| {
        let docs: Vec<&str> = t.split("---").collect();
        format!("{}---{}", docs[0], docs[3])
    });
    check(
        &["--upgrade", &no_templates],
        &["azuremachinetemplate/azure-image-version-control-plane"],
    );
    // A v1beta2 class that does not list the new version.
    let unlisted = variant(refs2, |t| t.replace("  - v1.30.3\n", ""));
    check(
        &[&both[..], &[unlisted.as_str()]].concat(),
        &["kubernetesVersions"],
    );
    // Machine pools would roll on their old image.
    let pools = variant(var1, |t| {
        t.replace(
            "      workers:\n        machineDeployments:",
            "      workers:\n        machinePools:\n        - class: pool\n          name: mp-0\n        machineDeployments:",
        )
    });
    check(&["--upgrade", &pools], &["machine pools"]);
    // Version rules hold here too.
    let old = variant(var1, |t| t.replace("version: v1.29.7", "version: v1.28.9"));
    check(&["--upgrade", &old], &["cannot skip a minor version"]);
    // --new-class when the class needs no change: the flag is the operator's to drop.
    let err = render_fails(&["--upgrade", var1, "--new-class", "x"], 2);
    assert!(err.contains("no ClusterClass needs a change"), "{err}");
}

#[test]
fn unsafe_upgrades_are_refused() {
    let base = [
        &["render", "fixtures/console/sig-ubuntu-2404.log"][..],
        &UPGRADE,
    ]
    .concat();
    let refused = |args: &[&str]| {
        let out = crate::util::sigcat(args, &[], None);
        let err = crate::util::text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {err}");
        err
    };
    let err = refused(&base);
    assert!(err.contains("unknown"), "{err}");
    let err = refused(&[&base[..], &["--kubernetes-version", "1.31.2"]].concat());
    assert!(err.contains("cannot skip a minor version"), "{err}");
    let err = refused(&[&base[..], &["--kubernetes-version", "1.28.9"]].concat());
    assert!(err.contains("downgrade"), "{err}");
    let err = render_fails(
        &[
            "--from",
            MD0,
            "--upgrade",
            "fixtures/capz/current-v1beta1.yaml",
        ],
        6,
    );
    assert!(err.contains("ahead of the control plane"), "{err}");
}

#[test]
fn the_kustomize_directory_is_replaced_only_if_it_holds_just_what_sigcat_wrote() {
    let args = [&UPGRADE[..], &["--as", "kustomize"]].concat();
    let dir = scratch("kustomize-replace").join("upgrade");
    let d = dir.to_str().unwrap();
    render_build(&[&args[..], &[d]].concat());
    let listing = |dir: &std::path::Path| {
        let mut files: Vec<String> = walk(dir);
        files.sort();
        files
    };
    assert_eq!(
        listing(&dir),
        [
            ".sigcat-written",
            "current/kubeadmcontrolplane-my-cluster-control-plane.yaml",
            "current/machinedeployment-my-cluster-md-0.yaml",
            "kustomization.yaml",
            "new/azuremachinetemplate-my-cluster-control-plane-0-3-1721037000.yaml",
            "new/azuremachinetemplate-my-cluster-md-0-0-3-1721037000.yaml",
            "patches/kubeadmcontrolplane-my-cluster-control-plane.yaml",
            "patches/machinedeployment-my-cluster-md-0.yaml",
        ]
    );
    // A patch holds only what changes, and names its object.
    let patch = crate::util::kubectl_read(
        &dir.join("patches/kubeadmcontrolplane-my-cluster-control-plane.yaml"),
    );
    assert_eq!(
        patch,
        [json!({
            "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
            "kind": "KubeadmControlPlane",
            "metadata": {"name": "my-cluster-control-plane", "namespace": "default"},
            "spec": {
                "machineTemplate": {"infrastructureRef": {"name": NEW_CP}},
                "version": "v1.30.3"
            }
        })]
    );
    // Run again into the same directory: what sigcat wrote is replaced.
    render_build(&[&args[..], &[d]].concat());
    // A user's file, a repository, or a file sigcat wrote and someone edited: refused, named,
    // and nothing touched.
    let patch = dir.join("patches/machinedeployment-my-cluster-md-0.yaml");
    let edited = format!("{}# reviewed\n", std::fs::read_to_string(&patch).unwrap());
    for (path, content, says) in [
        (
            dir.join("notes.txt"),
            "mine\n".to_string(),
            "notes.txt was not written by sigcat",
        ),
        (
            dir.join(".git/HEAD"),
            "ref: refs/heads/main\n".to_string(),
            ".git/HEAD was not written by sigcat",
        ),
        (
            patch.clone(),
            edited,
            "machinedeployment-my-cluster-md-0.yaml was changed since sigcat wrote it",
        ),
    ] {
        let before = std::fs::read(&patch).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &content).unwrap();
        let err = render_fails(&[&args[..], &[d]].concat(), 2);
        assert!(err.contains(says), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            content,
            "left as it was"
        );
        if path == patch {
            std::fs::write(&patch, before).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
            let _ = std::fs::remove_dir(dir.join(".git"));
        }
    }
    render_build(&[&args[..], &[d]].concat());
    assert!(
        std::fs::read_dir(dir.parent().unwrap()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".sigcat")),
        "no temporary directory left behind"
    );
    // Someone else's directory is not replaced.
    let theirs = scratch("kustomize-theirs");
    std::fs::write(theirs.join("kustomization.yaml"), "resources: []\n").unwrap();
    let err = render_fails(&[&args[..], &[theirs.to_str().unwrap()]].concat(), 2);
    assert!(err.contains("was not written by"), "{err}");
    assert!(theirs.join("kustomization.yaml").exists());
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(
                walk(&path)
                    .into_iter()
                    .map(|p| format!("{}/{p}", path.file_name().unwrap().to_string_lossy())),
            );
        } else {
            out.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn as_flag_misuse_is_a_usage_error() {
    let upgrade = [
        "--from",
        CP,
        "--upgrade",
        "fixtures/capz/current-v1beta1.yaml",
    ];
    for (extra, expected) in [
        (&["--as", "patches"][..], "--as kustomize DIR"),
        (&["--as", "kustomize"], "needs a directory"),
        (
            &["--as", "kustomize", "x", "--output-file", "y"],
            "drop --output-file",
        ),
        (&["--as", "yaml"], "expected `objects` or `kustomize DIR`"),
    ] {
        let err = render_fails(&[&upgrade[..], extra].concat(), 2);
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
    // `--as objects` followed by an input: the input is still read.
    let out = crate::util::sigcat(
        &[
            "render",
            "--as",
            "objects",
            "fixtures/console/sig-ubuntu-2404.log",
            "--vm-size",
            "x",
        ],
        &[],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::util::text(&out.stderr)
    );
}

#[test]
fn a_record_and_a_template_of_different_os_types_are_refused() {
    // A Linux image into a Windows machine's template, alone and in an upgrade.
    let windows_md = variant(MD0, |t| t.replace("osType: Linux", "osType: Windows"));
    let err = render_fails(&["--from", &windows_md], 6);
    assert!(
        err.contains("Linux image")
            && err.contains("boots Windows")
            && err.contains("my-cluster-md-0"),
        "{err}"
    );
    let err = render_fails(
        &[
            "--from",
            CP,
            "--from",
            &windows_md,
            "--upgrade",
            "fixtures/capz/current-v1beta1.yaml",
        ],
        6,
    );
    assert!(err.contains("boots Windows"), "{err}");
    // A Windows record into a Linux template.
    let dir = scratch("render-windows-record");
    let log = dir.join("windows.log");
    std::fs::write(
        &log,
        std::fs::read_to_string(crate::util::repo().join("fixtures/console/sig-ubuntu-2404.log"))
            .unwrap()
            .replace("OSType: Linux", "OSType: Windows"),
    )
    .unwrap();
    let out = crate::util::sigcat(&["render", log.to_str().unwrap(), "--from", CP], &[], None);
    let err = crate::util::text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("Windows image") && err.contains("boots Linux"),
        "{err}"
    );
}

#[test]
fn a_new_class_name_must_be_a_kubernetes_object_name() {
    let long = "a".repeat(300);
    for bad in ["", "Bad_Name", "-leading", long.as_str()] {
        let flag = format!("--new-class={bad}");
        let err = render_fails(&[&UPGRADE[..], &[flag.as_str()]].concat(), 2);
        assert!(err.contains("not a Kubernetes object name"), "{bad}: {err}");
    }
}
