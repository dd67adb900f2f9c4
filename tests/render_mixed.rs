//! Upgrades of mixed clusters with several records in one call: a ClusterClass cluster with
//! Linux and Windows workers, a KubeadmControlPlane/MachineDeployment cluster with a GPU pool on
//! its own image definition, and a ClusterClass whose image variable is overridden per
//! MachineDeployment. The records are one image-builder run for v1.30.5 (Linux, Windows, GPU;
//! fixtures/console/v1.30.5). Every output is built by the real `kubectl kustomize` (it must
//! equal `--as objects`) and validated against Cluster API's and CAPZ's CRD schemas; the
//! expected objects are the inputs edited here by hand.

use crate::render::{
    Rendered, assert_valid_template, fixture_objects, kinds, plan_of, put, render_both_ways, s,
    without_server_fields,
};
use crate::util::{assert_exit_says, crd_violations, sigcat};
use serde_json::{Value as Json, json};

const LINUX: &str = "fixtures/console/v1.30.5-sig-ubuntu-2404.log";
const WINDOWS: &str = "fixtures/console/v1.30.5-sig-windows-2022-containerd.log";
const GPU: &str = "fixtures/console/v1.30.5-sig-ubuntu-2204-gpu.log";
const MIXED: &str = "fixtures/capz/mixed";

fn path(name: &str) -> String {
    format!("{MIXED}/{name}")
}

/// The image of one of the v1.30.5 records, as CAPZ's computeGallery reads it.
fn image(definition: &str) -> Json {
    json!({"computeGallery": {
        "subscriptionID": "00000000-1111-2222-3333-444444444444",
        "resourceGroup": "cluster-api-gallery",
        "gallery": "ClusterAPI1721036000abcd",
        "name": definition,
        "version": "1.30.5"
    }})
}

/// The fixture's object of this kind and name as kubectl reads it, without server fields.
fn input(file: &str, kind: &str, name: &str) -> Json {
    let found = fixture_objects(&path(file))
        .into_iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {file}"));
    without_server_fields(found)
}

fn edited(file: &str, kind: &str, name: &str, edits: &[(&str, Json)]) -> Json {
    let mut obj = input(file, kind, name);
    for (pointer, value) in edits {
        put(&mut obj, pointer, value.clone());
    }
    obj
}

/// Renders both ways and checks every object against the CRD schemas; the inputs must be
/// valid too, so the fixtures are shaped as CAPI and CAPZ define them.
fn upgrade(records: &[&str], args: &[&str]) -> Rendered {
    let out = render_both_ways(&[records, args].concat());
    assert_eq!(crd_violations(&out.objects), Vec::<String>::new());
    for a in args.iter().filter(|a| a.starts_with(MIXED)) {
        assert_eq!(
            crd_violations(&fixture_objects(a)),
            Vec::<String>::new(),
            "{a}"
        );
    }
    out
}

/// A new template: the current one with only its name and image changed, and never an image
/// of one OS in a template that boots the other.
fn assert_copy(new: &Json, file: &str, old_name: &str, definition: &str) {
    assert_valid_template(new);
    let want = edited(
        file,
        "AzureMachineTemplate",
        old_name,
        &[("/metadata/name", json!(format!("{old_name}-1-30-5")))],
    );
    let mut want = want;
    want["spec"]["template"]["spec"]["image"] = image(definition);
    assert_eq!(new, &want);
    let windows_image = definition.contains("windows");
    let windows_disk = s(new, "/spec/template/spec/osDisk/osType") == "Windows";
    assert_eq!(windows_image, windows_disk, "one OS per template: {new}");
}

fn fails(args: &[&str], code: i32, says: &[&str]) -> String {
    let out = sigcat(&[&["render"], args].concat(), &[], None);
    let err = crate::util::text(&out.stderr);
    for s in says {
        assert_exit_says(&out, code, s);
    }
    assert!(out.stdout.is_empty(), "nothing is written when refused");
    err
}

#[test]
fn clusterclass_linux_and_windows_workers_each_get_their_os_image() {
    let (templates, cluster) = (
        path("clusterclass-windows-templates.yaml"),
        path("clusterclass-windows.yaml"),
    );
    let args = ["--from", &templates, "--upgrade", &cluster];
    // Three records; the GPU one fits no slot here and is left out of the plan.
    let out = upgrade(&[LINUX, WINDOWS, GPU], &args);
    let d = &out.objects;
    assert_eq!(
        kinds(d),
        [
            "AzureMachineTemplate",
            "AzureMachineTemplate",
            "AzureMachineTemplate",
            "ClusterClass",
            "Cluster"
        ]
    );
    let t = "clusterclass-windows-templates.yaml";
    assert_copy(&d[0], t, "mixed-control-plane", "capi-ubuntu-2404");
    assert_copy(&d[1], t, "mixed-worker", "capi-ubuntu-2404");
    assert_copy(&d[2], t, "mixed-worker-win", "capi-windows-2022-containerd");
    let refs = "/spec/workers/machineDeployments";
    let c = "clusterclass-windows.yaml";
    assert_eq!(
        d[3],
        edited(
            c,
            "ClusterClass",
            "capz-mixed",
            &[
                (
                    "/spec/controlPlane/machineInfrastructure/ref/name",
                    json!("mixed-control-plane-1-30-5")
                ),
                (
                    &format!("{refs}/0/template/infrastructure/ref/name"),
                    json!("mixed-worker-1-30-5")
                ),
                (
                    &format!("{refs}/1/template/infrastructure/ref/name"),
                    json!("mixed-worker-win-1-30-5")
                ),
            ]
        )
    );
    assert_eq!(
        d[4],
        edited(
            c,
            "Cluster",
            "mixed",
            &[("/spec/topology/version", json!("v1.30.5"))]
        )
    );
    let win = plan_of(&out.stderr, "`md-win`");
    assert!(
        win.contains("now:   CAPZ's default image (Windows: capi-win-2022-containerd)")
            && win.contains(
                "after: ClusterAPI1721036000abcd capi-windows-2022-containerd version 1.30.5"
            ),
        "{win}"
    );
    assert!(
        !out.stderr.contains("capi-ubuntu-2204-gpu"),
        "{}",
        out.stderr
    );

    // With the Linux record alone, the Windows workers have no image: refused, named, with
    // both ways out; nothing is written.
    fails(
        &[&[LINUX][..], &args].concat(),
        6,
        &[
            "`md-win`",
            "Windows",
            "--keep-image md-win",
            "--image-for md-win=BUILD",
        ],
    );
    // Kept on purpose: the Windows class keeps its template (its version still moves).
    let out = upgrade(&[LINUX], &[&args[..], &["--keep-image", "md-win"]].concat());
    assert_eq!(
        kinds(&out.objects),
        [
            "AzureMachineTemplate",
            "AzureMachineTemplate",
            "ClusterClass",
            "Cluster"
        ]
    );
    let class = &out.objects[2];
    assert_eq!(
        s(class, &format!("{refs}/1/template/infrastructure/ref/name")),
        "mixed-worker-win"
    );
    assert!(
        plan_of(&out.stderr, "`md-win`").contains("keeps its image (--keep-image)"),
        "{}",
        out.stderr
    );
}

#[test]
fn kcp_and_machine_deployments_with_a_gpu_pool_on_its_own_definition() {
    let (templates, cluster) = (path("kcp-md-gpu-templates.yaml"), path("kcp-md-gpu.yaml"));
    let args = ["--from", &templates, "--upgrade", &cluster];
    let out = upgrade(&[GPU, WINDOWS, LINUX], &args);
    let d = &out.objects;
    assert_eq!(
        kinds(d),
        [
            "AzureMachineTemplate",
            "AzureMachineTemplate",
            "AzureMachineTemplate",
            "KubeadmControlPlane",
            "MachineDeployment",
            "MachineDeployment"
        ]
    );
    let t = "kcp-md-gpu-templates.yaml";
    assert_copy(&d[0], t, "gpu-cluster-control-plane", "capi-ubuntu-2404");
    assert_copy(&d[1], t, "gpu-cluster-md-0", "capi-ubuntu-2404");
    assert_copy(&d[2], t, "gpu-cluster-md-gpu", "capi-ubuntu-2204-gpu");
    let c = "kcp-md-gpu.yaml";
    let v = ("/spec/version", json!("v1.30.5"));
    assert_eq!(
        d[3],
        edited(
            c,
            "KubeadmControlPlane",
            "gpu-cluster-control-plane",
            &[
                v,
                (
                    "/spec/machineTemplate/infrastructureRef/name",
                    json!("gpu-cluster-control-plane-1-30-5")
                )
            ]
        )
    );
    for (i, name) in [(4, "gpu-cluster-md-0"), (5, "gpu-cluster-md-gpu")] {
        assert_eq!(
            d[i],
            edited(
                c,
                "MachineDeployment",
                name,
                &[
                    ("/spec/template/spec/version", json!("v1.30.5")),
                    (
                        "/spec/template/spec/infrastructureRef/name",
                        json!(format!("{name}-1-30-5"))
                    )
                ]
            )
        );
    }

    // Without the GPU record the pool would have moved to the plain Ubuntu image: refused.
    let err = fails(
        &[&[LINUX, WINDOWS][..], &args].concat(),
        6,
        &[
            "gpu-cluster-md-gpu",
            "capi-ubuntu-2204-gpu",
            "--keep-image gpu-cluster-md-gpu",
        ],
    );
    assert!(!err.contains("panicked"), "{err}");
    // Kept: the pool moves to v1.30.5 on its current template.
    let out = upgrade(
        &[LINUX, WINDOWS],
        &[&args[..], &["--keep-image", "gpu-cluster-md-gpu"]].concat(),
    );
    assert_eq!(
        kinds(&out.objects)
            .iter()
            .filter(|k| **k == "AzureMachineTemplate")
            .count(),
        2
    );
    let gpu_md = out.objects.last().unwrap();
    assert_eq!(s(gpu_md, "/metadata/name"), "gpu-cluster-md-gpu");
    assert_eq!(s(gpu_md, "/spec/template/spec/version"), "v1.30.5");
    assert_eq!(
        s(gpu_md, "/spec/template/spec/infrastructureRef/name"),
        "gpu-cluster-md-gpu"
    );
    // A change of distro, said explicitly for that one slot.
    let out = upgrade(
        &[LINUX, GPU],
        &[
            &args[..],
            &["--image-for", "gpu-cluster-md-gpu=sig-ubuntu-2404"],
        ]
        .concat(),
    );
    assert_eq!(
        out.objects[2]["spec"]["template"]["spec"]["image"],
        image("capi-ubuntu-2404")
    );
    assert!(
        plan_of(&out.stderr, "gpu-cluster-md-gpu")
            .contains("now:   ClusterAPI1721036000abcd capi-ubuntu-2204-gpu version 1.29.7"),
        "{}",
        out.stderr
    );
}

#[test]
fn clusterclass_variable_overrides_each_get_the_record_of_their_image() {
    let cluster = path("variable-overrides.yaml");
    let out = upgrade(&[WINDOWS, GPU, LINUX], &["--upgrade", &cluster]);
    assert_eq!(kinds(&out.objects), ["Cluster"], "no template changes");
    let mds = "/spec/topology/workers/machineDeployments";
    assert_eq!(
        out.objects[0],
        edited(
            "variable-overrides.yaml",
            "Cluster",
            "overrides",
            &[
                ("/spec/topology/version", json!("v1.30.5")),
                (
                    "/spec/topology/variables/0/value",
                    image("capi-ubuntu-2404")
                ),
                (
                    &format!("{mds}/1/variables/overrides/0/value"),
                    image("capi-ubuntu-2204-gpu")
                ),
                (
                    &format!("{mds}/2/variables/overrides/0/value"),
                    image("capi-windows-2022-containerd")
                ),
            ]
        )
    );
    for (slot, definition) in [
        ("the control plane", "capi-ubuntu-2404"),
        ("`md-0`", "capi-ubuntu-2404"),
        ("`md-gpu`", "capi-ubuntu-2204-gpu"),
        ("`md-win`", "capi-windows-2022-containerd"),
    ] {
        let line = plan_of(&out.stderr, slot);
        assert!(
            line.contains(&format!(
                "after: ClusterAPI1721036000abcd {definition} version 1.30.5"
            )),
            "{line}"
        );
    }

    // A pool with its own override keeps its image; one that reads the Cluster's variable, which
    // the control plane's new image changes, cannot.
    let out = upgrade(
        &[WINDOWS, LINUX],
        &["--upgrade", &cluster, "--keep-image", "md-gpu"],
    );
    assert_eq!(
        out.objects[0]["spec"]["topology"]["workers"]["machineDeployments"][1],
        input("variable-overrides.yaml", "Cluster", "overrides")["spec"]["topology"]["workers"]["machineDeployments"]
            [1],
        "md-gpu's override is untouched"
    );
    assert!(plan_of(&out.stderr, "`md-gpu`").contains("keeps its image"));
    fails(
        &[
            LINUX,
            WINDOWS,
            GPU,
            "--upgrade",
            &cluster,
            "--keep-image",
            "md-0",
        ],
        6,
        &[
            "`md-0`",
            "keeps its image",
            "spec.topology.variables",
            "variables.overrides",
        ],
    );

    // The Windows pool without its override would read the Linux image: one OS per machine,
    // so this is refused naming both, whatever records are given.
    let shared = edited_file(
        "render-mixed-no-override",
        "variable-overrides.yaml",
        |text| {
            let at = text.find("        - class: windows-worker").unwrap();
            let end = text
                .find("- apiVersion: infrastructure.cluster.x-k8s.io/v1beta1")
                .unwrap();
            format!(
                "{}        - class: windows-worker\n          name: md-win\n          replicas: 2\n{}",
                &text[..at],
                &text[end..]
            )
        },
    );
    fails(
        &[LINUX, WINDOWS, GPU, "--upgrade", &shared],
        6,
        &[
            "sig-ubuntu-2404",
            "Linux image",
            "overrides-windows-worker",
            "boots Windows",
        ],
    );
}

#[test]
fn per_slot_flags_that_do_not_fit_are_the_operators_to_fix() {
    let (templates, cluster) = (path("kcp-md-gpu-templates.yaml"), path("kcp-md-gpu.yaml"));
    let base = [LINUX, GPU, "--from", &templates, "--upgrade", &cluster];
    // A slot that is not in this cluster: the message lists the ones there are.
    fails(
        &[&base[..], &["--keep-image", "md-gpu"]].concat(),
        2,
        &[
            "--keep-image md-gpu",
            "named no machine slot",
            "`gpu-cluster-md-gpu`",
        ],
    );
    // A record that is not among the inputs.
    fails(
        &[&base[..], &["--image-for", "gpu-cluster-md-gpu=flatcar"]].concat(),
        2,
        &[
            "--image-for gpu-cluster-md-gpu=flatcar",
            "sig-ubuntu-2204-gpu",
        ],
    );
    // Two choices for one slot.
    fails(
        &[
            &base[..],
            &[
                "--keep-image",
                "gpu-cluster-md-gpu",
                "--image-for",
                "gpu-cluster-md-gpu=sig-ubuntu-2404",
            ],
        ]
        .concat(),
        2,
        &["more than one choice"],
    );
    // A Windows record chosen for a Linux pool: one OS per template.
    fails(
        &[
            &[LINUX, GPU, WINDOWS][..],
            &base[2..],
            &["--image-for", "gpu-cluster-md-gpu=windows-2022-containerd"],
        ]
        .concat(),
        6,
        &["Windows image", "boots Linux", "gpu-cluster-md-gpu"],
    );
    // Not `SLOT=WHICH`, and per-slot flags with nothing to choose for.
    fails(
        &[&base[..], &["--image-for", "gpu-cluster-md-gpu"]].concat(),
        2,
        &["SLOT=WHICH"],
    );
    fails(
        &[LINUX, "--vm-size", "Standard_D2s_v3", "--keep-image", "x"],
        2,
        &["--from", "--upgrade"],
    );
}

#[test]
fn templates_that_cannot_be_read_for_a_slot_are_refused() {
    // An osType that is not a string is not guessed to be Linux.
    let odd = edited_file(
        "render-mixed-templates",
        "kcp-md-gpu-templates.yaml",
        |text| text.replacen("osType: Linux", "osType: [Linux]", 1),
    );
    let cluster = path("kcp-md-gpu.yaml");
    fails(
        &[LINUX, GPU, "--from", &odd, "--upgrade", &cluster],
        6,
        &[
            "gpu-cluster-control-plane",
            "osDisk.osType",
            "not `Linux` or `Windows`",
        ],
    );
    // The same template twice would make two copies of one name.
    let templates = path("kcp-md-gpu-templates.yaml");
    fails(
        &[
            LINUX,
            GPU,
            "--from",
            &templates,
            "--from",
            &templates,
            "--upgrade",
            &cluster,
        ],
        2,
        &["given twice"],
    );
}

/// A fixture of `fixtures/capz/mixed` with `edit` applied, in this test's scratch directory.
fn edited_file(test: &str, file: &str, edit: impl Fn(String) -> String) -> String {
    crate::render::fixture_variant(test, &path(file), edit)
}

/// What a review found that a slot could silently get wrong, each now refused.
#[test]
fn nothing_is_guessed_about_a_slots_os_or_image() {
    let cluster = path("kcp-md-gpu.yaml");
    // A record that does not say its OS (a manifest.json alone) is still a Linux image by
    // its names: never into a Windows template, even when chosen explicitly.
    let windows_templates = path("clusterclass-windows-templates.yaml");
    let windows_cluster = path("clusterclass-windows.yaml");
    fails(
        &[
            "fixtures/manifest/manifest.json",
            "--from",
            &windows_templates,
            "--upgrade",
            &windows_cluster,
            "--image-for",
            "md-win=sig-ubuntu-2404",
            "--keep-image",
            "md-0",
            "--keep-image",
            "control-plane",
        ],
        6,
        &["Linux image", "boots Windows", "mixed-worker-win"],
    );
    // A variable slot whose template is not in the input: its OS is unknown, so no explicit
    // choice is taken for it.
    let no_template = edited_file("mixed-no-win-template", "variable-overrides.yaml", |t| {
        let at = t.find("- apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\n  kind: AzureMachineTemplate\n  metadata:\n    name: overrides-windows-worker").unwrap();
        t[..at].to_string()
    });
    fails(
        &[
            LINUX,
            WINDOWS,
            GPU,
            "--upgrade",
            &no_template,
            "--image-for",
            "md-win=sig-ubuntu-2404",
        ],
        6,
        &["`md-win`", "azuremachinetemplate/overrides-windows-worker"],
    );
    // A managed image of image-builder's naming names its definition; one of unknown naming
    // and an empty image say nothing, so the GPU pool is not moved to plain Ubuntu.
    for (image, says) in [
        (
            "{id: /subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/capi-ubuntu-2204-gpu-1700000000}",
            "no record fits",
        ),
        (
            "{id: /subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/my-custom-image}",
            "no record fits",
        ),
        ("{}", "does not say which distro"),
    ] {
        let file = edited_file("mixed-managed-image", "kcp-md-gpu-templates.yaml", |t| {
            let at = t.rfind("        image:\n").unwrap();
            let end = t[at..].find("        osDisk:").unwrap() + at;
            format!("{}        image: {image}\n{}", &t[..at], &t[end..])
        });
        fails(
            &[LINUX, WINDOWS, "--from", &file, "--upgrade", &cluster],
            if says == "no record fits" { 6 } else { 2 },
            &["gpu-cluster-md-gpu", says],
        );
    }
    // `windows` is not CAPZ's `Windows` (CAPZ would boot it as Linux): refused, not guessed.
    let lower = edited_file(
        "mixed-lower-os",
        "clusterclass-windows-templates.yaml",
        |t| t.replace("osType: Windows", "osType: windows"),
    );
    fails(
        &[
            LINUX,
            WINDOWS,
            "--from",
            &lower,
            "--upgrade",
            &windows_cluster,
        ],
        6,
        &["mixed-worker-win", "`Linux` or `Windows`"],
    );
}

/// Names, namespaces and references: a flag or a copy finds exactly the slot it names.
#[test]
fn slots_are_found_by_exact_name_namespace_and_kind() {
    let templates = path("kcp-md-gpu-templates.yaml");
    let cluster = path("kcp-md-gpu.yaml");
    // A MachineDeployment named `control-plane`: the name is ambiguous, refused.
    let named = edited_file("mixed-named-cp", "kcp-md-gpu.yaml", |t| {
        t.replace(
            "    name: gpu-cluster-md-0\n    namespace",
            "    name: control-plane\n    namespace",
        )
    });
    fails(
        &[
            LINUX,
            GPU,
            "--from",
            &templates,
            "--upgrade",
            &named,
            "--keep-image",
            "control-plane",
        ],
        2,
        &["`control-plane` names more than one machine slot"],
    );
    // The control plane and md-0 share a template: a choice for md-0 alone would move the
    // control plane too, so it must name the template.
    let shared = edited_file("mixed-shared", "kcp-md-gpu.yaml", |t| {
        t.replace(
            "          name: gpu-cluster-md-0\n        version",
            "          name: gpu-cluster-control-plane\n        version",
        )
    });
    let only_cp = edited_file("mixed-shared-templates", "kcp-md-gpu-templates.yaml", |t| {
        let at = t.find("- apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\n  kind: AzureMachineTemplate\n  metadata:\n    labels:\n      cluster.x-k8s.io/cluster-name: gpu-cluster\n    name: gpu-cluster-md-0").unwrap();
        let end = t.find("- apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\n  kind: AzureMachineTemplate\n  metadata:\n    labels:\n      cluster.x-k8s.io/cluster-name: gpu-cluster\n    name: gpu-cluster-md-gpu").unwrap();
        format!("{}{}", &t[..at], &t[end..])
    });
    fails(
        &[
            LINUX,
            GPU,
            "--from",
            &only_cp,
            "--upgrade",
            &shared,
            "--image-for",
            "gpu-cluster-md-0=sig-ubuntu-2204-gpu",
        ],
        2,
        &[
            "share template `gpu-cluster-control-plane`",
            "name the template",
        ],
    );
    // A copy from another namespace is not the template the MachineDeployments use.
    let other_ns = edited_file("mixed-other-ns", "kcp-md-gpu-templates.yaml", |t| {
        t.replace(
            "    name: gpu-cluster-md-gpu\n    namespace: default",
            "    name: gpu-cluster-md-gpu\n    namespace: team-b",
        )
    });
    fails(
        &[LINUX, GPU, "--from", &other_ns, "--upgrade", &cluster],
        6,
        &["`gpu-cluster-md-gpu`", "referred to by nothing"],
    );
    // Two namespaces with templates of the same name: each MachineDeployment gets the copy of
    // its own namespace's template.
    let two_ns_cluster = edited_file("mixed-two-ns", "kcp-md-gpu.yaml", |t| {
        let md = t
            .split("- apiVersion: cluster.x-k8s.io/v1beta1\n")
            .nth(1)
            .unwrap();
        format!(
            "{t}- apiVersion: cluster.x-k8s.io/v1beta1\n{}",
            md.replace("namespace: default", "namespace: team-b")
        )
    });
    let two_ns_templates = edited_file("mixed-two-ns", "kcp-md-gpu-templates.yaml", |t| {
        let md0 = t
            .split("- apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\n")
            .nth(2)
            .unwrap();
        format!(
            "{t}- apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\n{}",
            md0.replace("namespace: default", "namespace: team-b")
                .replace("Standard_D4s_v3", "Standard_D8s_v3")
        )
    });
    let out = upgrade(
        &[LINUX, GPU],
        &["--from", &two_ns_templates, "--upgrade", &two_ns_cluster],
    );
    let team_b: Vec<&Json> = out
        .objects
        .iter()
        .filter(|o| o["metadata"]["namespace"] == "team-b")
        .collect();
    assert_eq!(
        kinds(&team_b.iter().map(|o| (*o).clone()).collect::<Vec<_>>()),
        ["AzureMachineTemplate", "MachineDeployment"]
    );
    assert_eq!(
        s(team_b[0], "/spec/template/spec/vmSize"),
        "Standard_D8s_v3"
    );
    assert_eq!(
        s(team_b[1], "/spec/template/spec/infrastructureRef/name"),
        s(team_b[0], "/metadata/name")
    );

    // A MachineDeployment whose reference names another kind of template is not moved.
    let docker = edited_file("mixed-docker", "kcp-md-gpu.yaml", |t| {
        t.replace(
            "          kind: AzureMachineTemplate\n          name: gpu-cluster-md-gpu",
            "          kind: DockerMachineTemplate\n          name: gpu-cluster-md-gpu",
        )
    });
    fails(
        &[LINUX, GPU, "--from", &templates, "--upgrade", &docker],
        6,
        &["referred to by nothing"],
    );
    // The same template, different in the --upgrade input and the --from file.
    let both = edited_file("mixed-both", "clusterclass-windows.yaml", |t| {
        let templates = std::fs::read_to_string(
            crate::util::repo().join(path("clusterclass-windows-templates.yaml")),
        )
        .unwrap();
        let items = templates
            .split("items:\n")
            .nth(1)
            .unwrap()
            .replace("osType: Windows", "osType: Linux");
        format!("{t}{items}")
    });
    fails(
        &[
            LINUX,
            WINDOWS,
            "--from",
            &path("clusterclass-windows-templates.yaml"),
            "--upgrade",
            &both,
        ],
        6,
        &["mixed-worker-win", "different specs"],
    );
}

/// Connection strings of other Azure services and a service principal's secret, in a copied
/// field: refused like a SAS token.
#[test]
fn other_services_credentials_are_refused_too() {
    for (name, value) in [
        (
            "app-config",
            "Endpoint=https://x.azconfig.io;Id=abc-l0-s0:xyz;Secret=TOPSECRETaaaa0123456789=",
        ),
        (
            "signalr",
            "Endpoint=https://x.service.signalr.net;AccessKey=TOPSECRETbbbb0123456789=;Version=1.0;",
        ),
        (
            "azure-json",
            "{\\\"aadClientId\\\": \\\"id\\\", \\\"aadClientSecret\\\": \\\"TOPSECRETcccc\\\"}",
        ),
    ] {
        let file = edited_file(
            &format!("mixed-cred-{name}"),
            "kcp-md-gpu-templates.yaml",
            |t| {
                t.replacen(
                "        vmSize: Standard_D2s_v3",
                &format!("        additionalTags:\n          cfg: \"{value}\"\n        vmSize: Standard_D2s_v3"),
                1,
            )
            },
        );
        let err = fails(
            &[
                LINUX,
                GPU,
                "--from",
                &file,
                "--upgrade",
                &path("kcp-md-gpu.yaml"),
            ],
            6,
            &["holds a credential", "additionalTags.cfg"],
        );
        assert!(!err.contains("TOPSECRET"), "{name}: {err}");
    }
}

#[test]
fn credentials_in_copied_fields_are_refused_not_copied() {
    let sas = "https://acct.blob.core.windows.net/c/b?sv=2021-08-06&sr=b&sig=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789%2B%2FAbCd%3D";
    let file = edited_file("mixed-sas", "kcp-md-gpu-templates.yaml", |t| {
        t.replacen("        vmSize: Standard_D2s_v3", &format!("        additionalTags:\n          bootstrap: \"{sas}\"\n        vmSize: Standard_D2s_v3"), 1)
    });
    let err = fails(
        &[
            LINUX,
            GPU,
            "--from",
            &file,
            "--upgrade",
            &path("kcp-md-gpu.yaml"),
        ],
        6,
        &[
            "holds a credential",
            "spec.template.spec.additionalTags.bootstrap",
        ],
    );
    assert!(!err.contains("AbCdEfGh"), "{err}");
}

#[test]
fn input_and_flag_mistakes_get_their_exit_codes() {
    // `--as kustomize .` would have to replace the directory sigcat runs in.
    let dir = crate::util::scratch("mixed-kustomize-here");
    let out = std::process::Command::new(crate::util::BIN)
        .arg("render")
        .args([LINUX, GPU].map(|l| crate::util::repo().join(l)))
        .arg("--from")
        .arg(crate::util::repo().join(path("kcp-md-gpu-templates.yaml")))
        .arg("--upgrade")
        .arg(crate::util::repo().join(path("kcp-md-gpu.yaml")))
        .args(["--as", "kustomize", "."])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_exit_says(&out, 2, "is the current directory");
    let dir = crate::util::scratch("mixed-bytes");
    let bad = dir.join("cluster.yaml");
    std::fs::write(&bad, b"apiVersion: v1\nkind: List\nitems: []\n\xff\xfe\n").unwrap();
    fails(
        &[
            LINUX,
            "--from",
            &path("kcp-md-gpu-templates.yaml"),
            "--upgrade",
            bad.to_str().unwrap(),
        ],
        4,
        &["not UTF-8"],
    );
    fails(
        &[
            LINUX,
            GPU,
            "--from",
            &path("kcp-md-gpu-templates.yaml"),
            "--keep-image",
            "gpu-cluster-md-gpu",
        ],
        2,
        &["needs --upgrade"],
    );
}

/// What a second review found: patches switched off, several Clusters, namespaces written
/// down on one side only, another API group's kind, several Kubernetes versions.
#[test]
fn what_the_topology_controller_and_kubectl_would_do_is_what_is_planned() {
    let patch = "      name: machineImage\n";
    // A patch switched off leaves each machine on its template's image: the templates hold
    // none, so nothing would move them, and that is refused rather than planned as a move.
    let off = edited_file("mixed-enabled-off", "variable-overrides.yaml", |t| {
        t.replace(patch, &format!("      enabledIf: \"false\"\n{patch}"))
    });
    fails(
        &[LINUX, WINDOWS, GPU, "--upgrade", &off],
        6,
        &["no --from copy", "--keep-image"],
    );
    // On when its variable says so; not evaluated is refused.
    let on = edited_file("mixed-enabled-on", "variable-overrides.yaml", |t| {
        t.replace(patch, &format!("      enabledIf: '{{{{ if .useCustomImage }}}}true{{{{end}}}}'\n{patch}"))
            .replace("      variables:\n      - name: image\n        value:", "      variables:\n      - name: useCustomImage\n        value: true\n      - name: image\n        value:")
            .replace("    variables:\n    - name: image\n      required: true", "    variables:\n    - name: useCustomImage\n      required: false\n      schema:\n        openAPIV3Schema:\n          type: boolean\n    - name: image\n      required: true")
    });
    let out = upgrade(&[LINUX, WINDOWS, GPU], &["--upgrade", &on]);
    assert_eq!(
        out.objects[0]["spec"]["topology"]["variables"][1]["value"],
        image("capi-ubuntu-2404")
    );
    let complex = edited_file("mixed-enabled-complex", "variable-overrides.yaml", |t| {
        t.replace(
            patch,
            &format!("      enabledIf: '{{{{ eq .flavor \"gpu\" }}}}'\n{patch}"),
        )
    });
    fails(
        &[LINUX, WINDOWS, GPU, "--upgrade", &complex],
        6,
        &["enabledIf", "evaluates only"],
    );

    // Two Clusters of one class: `md-win` names a machine in each; CLUSTER/NAME names one.
    let two = edited_file("mixed-two-clusters", "variable-overrides.yaml", |t| {
        let at = t
            .find("- apiVersion: cluster.x-k8s.io/v1beta1\n  kind: Cluster\n")
            .unwrap();
        let end = t
            .find("- apiVersion: infrastructure.cluster.x-k8s.io/v1beta1")
            .unwrap();
        let second = t[at..end].replace("    name: overrides\n", "    name: overrides-2\n");
        format!("{}{second}{}", &t[..end], &t[end..])
    });
    fails(
        &[
            LINUX,
            WINDOWS,
            GPU,
            "--upgrade",
            &two,
            "--keep-image",
            "md-win",
        ],
        2,
        &["names more than one machine slot", "CLUSTER/NAME"],
    );
    let out = upgrade(
        &[LINUX, WINDOWS, GPU],
        &["--upgrade", &two, "--keep-image", "overrides-2/md-win"],
    );
    let win_override = |c: &Json| {
        c["spec"]["topology"]["workers"]["machineDeployments"][2]["variables"]["overrides"][0]["value"].clone()
    };
    assert_eq!(
        win_override(&out.objects[0]),
        image("capi-windows-2022-containerd")
    );
    assert_eq!(
        win_override(&out.objects[1]),
        win_override(&input("variable-overrides.yaml", "Cluster", "overrides")),
        "overrides-2's Windows machines keep their image"
    );

    // A template without a namespace is not the one objects in `default` refer to.
    let bare = edited_file("mixed-bare-ns", "kcp-md-gpu-templates.yaml", |t| {
        t.replace("    namespace: default\n", "")
    });
    fails(
        &[
            LINUX,
            GPU,
            "--from",
            &bare,
            "--upgrade",
            &path("kcp-md-gpu.yaml"),
        ],
        6,
        &["uses a template being replaced", "in its namespace"],
    );
    // An AzureMachineTemplate of another API group is not CAPZ's.
    let foreign = edited_file("mixed-foreign-group", "kcp-md-gpu.yaml", |t| {
        t.replacen("          apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\n          kind: AzureMachineTemplate\n          name: gpu-cluster-md-gpu", "          apiVersion: infrastructure.example.com/v1beta1\n          kind: AzureMachineTemplate\n          name: gpu-cluster-md-gpu", 1)
    });
    fails(
        &[
            LINUX,
            GPU,
            "--from",
            &path("kcp-md-gpu-templates.yaml"),
            "--upgrade",
            &foreign,
        ],
        6,
        &["referred to by nothing"],
    );

    // Without --upgrade too, one render serves one Kubernetes version: the Linux templates
    // have no v1.30.5 record among a v1.30.3 Linux and a v1.30.5 Windows record.
    fails(
        &[
            crate::render::LOG,
            "--manifest",
            crate::render::MANIFEST,
            WINDOWS,
            "--from",
            &path("clusterclass-windows-templates.yaml"),
        ],
        6,
        &["mixed-control-plane", "for Kubernetes v1.30.5"],
    );
}

/// What a third review found: names that collide, patches that depend on a MachineDeployment's
/// own variables or write the OS disk, connection strings of other services.
#[test]
fn collisions_overrides_and_os_disk_patches_are_refused() {
    let templates = path("clusterclass-windows-templates.yaml");
    let cluster = path("clusterclass-windows.yaml");
    // --name gives every copy one name: with several templates they would be one object.
    fails(
        &[
            LINUX,
            WINDOWS,
            "--from",
            &templates,
            "--upgrade",
            &cluster,
            "--name",
            "x",
        ],
        2,
        &["would both be named `x-1-30-5`", "drop --name"],
    );
    // A copy's name taken by another template of the input.
    let taken = edited_file("mixed-taken", "clusterclass-windows.yaml", |t| {
        let all = std::fs::read_to_string(
            crate::util::repo().join(path("clusterclass-windows-templates.yaml")),
        )
        .unwrap();
        let win = all
            .split("- apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\n")
            .nth(3)
            .unwrap();
        format!(
            "{t}- apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\n{}",
            win.replace("name: mixed-worker-win\n", "name: mixed-worker-1-30-5\n")
        )
    });
    fails(
        &[LINUX, WINDOWS, "--from", &templates, "--upgrade", &taken],
        6,
        &[
            "would be named `mixed-worker-1-30-5`",
            "already exists with another spec",
        ],
    );

    let patch = "      name: machineImage\n";
    let with_flag = |test: &str, condition: &str, md_gpu_override: Option<&str>| {
        edited_file(test, "variable-overrides.yaml", |t| {
            let mut t = t
                .replace(patch, &format!("      enabledIf: '{condition}'\n{patch}"))
                .replace("    variables:\n    - name: image\n      required: true", "    variables:\n    - name: flag\n      required: false\n      schema:\n        openAPIV3Schema:\n          type: string\n    - name: image\n      required: true")
                .replace("      variables:\n      - name: image\n        value:", "      variables:\n      - name: flag\n        value: \"yes\"\n      - name: image\n        value:");
            if let Some(v) = md_gpu_override {
                t = t.replace(
                    "          name: md-gpu\n          replicas: 1\n          variables:\n            overrides:\n",
                    &format!("          name: md-gpu\n          replicas: 1\n          variables:\n            overrides:\n            - name: flag\n              value: \"{v}\"\n"),
                );
            }
            t
        })
    };
    // `yes` renders as YAML's true, as CAPI reads it: the patch is on and the images move.
    let on = with_flag("mixed-flag-yes", "{{ .flag }}", None);
    let out = upgrade(&[LINUX, WINDOWS, GPU], &["--upgrade", &on]);
    assert_eq!(
        out.objects[0]["spec"]["topology"]["variables"][1]["value"],
        image("capi-ubuntu-2404")
    );
    // md-gpu's own `flag` switches the patch off for it alone, not for md-0 of the same class:
    // not one answer for the class.
    let split = with_flag("mixed-flag-split", "{{ .flag }}", Some("no"));
    fails(
        &[LINUX, WINDOWS, GPU, "--upgrade", &split],
        6,
        &["on for some of these machines and off for others"],
    );

    // A patch that writes the OS disk makes the template's osType untrustworthy.
    let os_patch = edited_file("mixed-os-patch", "variable-overrides.yaml", |t| {
        t.replace(
            "        - op: add\n          path: /spec/template/spec/image\n",
            "        - op: replace\n          path: /spec/template/spec/osDisk/osType\n          value: Windows\n        - op: add\n          path: /spec/template/spec/image\n",
        )
    });
    fails(
        &[LINUX, WINDOWS, GPU, "--upgrade", &os_patch],
        6,
        &["writes /spec/template/spec/osDisk/osType"],
    );

    // A Service Bus connection string in a copied field is a credential too.
    let key = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=AbCdEfGhIjKl0123456789=";
    let file = edited_file("mixed-sb", "kcp-md-gpu-templates.yaml", |t| {
        t.replacen(
            "        vmSize: Standard_D2s_v3",
            &format!(
                "        additionalTags:\n          bus: \"{key}\"\n        vmSize: Standard_D2s_v3"
            ),
            1,
        )
    });
    let err = fails(
        &[
            LINUX,
            GPU,
            "--from",
            &file,
            "--upgrade",
            &path("kcp-md-gpu.yaml"),
        ],
        6,
        &["holds a credential"],
    );
    assert!(!err.contains("AbCdEfGh"), "{err}");

    // CAPZ names a control plane's template like the control plane: when a MachineDeployment
    // shares it, the template's name still names them all.
    let shared = edited_file("mixed-shared-named", "kcp-md-gpu.yaml", |t| {
        t.replace(
            "          name: gpu-cluster-md-0\n        version",
            "          name: gpu-cluster-control-plane\n        version",
        )
    });
    let without_md0 = edited_file("mixed-shared-named", "kcp-md-gpu-templates.yaml", |t| {
        let items: Vec<&str> = t
            .split("- apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\n")
            .collect();
        let item = "- apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\n";
        format!("{}{item}{}{item}{}", items[0], items[1], items[3])
    });
    let out = upgrade(
        &[LINUX, GPU],
        &[
            "--from",
            &without_md0,
            "--upgrade",
            &shared,
            "--keep-image",
            "gpu-cluster-control-plane",
        ],
    );
    assert!(out.stderr.contains("keeps its image"), "{}", out.stderr);
}
