//! `sigcat render` through the binary: every emitted manifest is parsed back and checked against
//! the rules of shared/reference/capz-manifests.md and against the input objects.

use serde_norway::Value;
use std::process::Output;

fn sigcat(args: &[&str]) -> Output {
    crate::util::sigcat(args, &[], None)
}

fn docs(out: &Output) -> Vec<Value> {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| {
        v.get(k).unwrap_or_else(|| panic!("no {path} in {v:?}"))
    })
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

fn read_yaml(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// The reference's rules for an AzureMachineTemplate.
fn assert_valid_template(t: &Value) {
    assert_eq!(
        s(t, "apiVersion"),
        "infrastructure.cluster.x-k8s.io/v1beta1"
    );
    assert_eq!(s(t, "kind"), "AzureMachineTemplate");
    let name = s(t, "metadata.name");
    assert!(name.len() <= 63 && !name.is_empty(), "{name}");
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'),
        "{name}"
    );
    assert!(
        name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric()),
        "{name}"
    );
    let spec = at(t, "spec.template.spec");
    assert!(!s(spec, "vmSize").is_empty());
    assert!(matches!(s(spec, "osDisk.osType"), "Linux" | "Windows"));
    let image = at(spec, "image").as_mapping().unwrap();
    assert_eq!(image.len(), 1, "exactly one image kind: {image:?}");
    let (kind, body) = image.iter().next().unwrap();
    match kind.as_str().unwrap() {
        "computeGallery" | "sharedGallery" => {
            for key in ["gallery", "name", "version"] {
                assert!(
                    body.get(key)
                        .and_then(Value::as_str)
                        .is_some_and(|v| !v.is_empty()),
                    "{key}"
                );
            }
            assert_eq!(
                body.get("subscriptionID").is_some(),
                body.get("resourceGroup").is_some(),
                "both or neither"
            );
            if let Some(plan) = body.get("plan") {
                for key in ["publisher", "offer", "sku"] {
                    assert!(
                        plan.get(key).and_then(Value::as_str).is_some(),
                        "complete plan: {key}"
                    );
                }
            }
        }
        "id" => assert!(
            body.as_str()
                .unwrap()
                .contains("/providers/Microsoft.Compute/images/")
        ),
        other => panic!("unexpected image kind {other}"),
    }
}

const LOG: &str = "fixtures/console/sig-ubuntu-2404.log";
const MANIFEST: &str = "fixtures/manifest/manifest.json";

#[test]
fn minimal_template_for_a_fresh_cluster() {
    let out = sigcat(&[
        "render",
        LOG,
        "--manifest",
        MANIFEST,
        "--vm-size",
        "Standard_D2s_v3",
        "--namespace",
        "default",
    ]);
    let d = docs(&out);
    assert_eq!(d.len(), 1);
    let t = &d[0];
    assert_valid_template(t);
    assert_eq!(s(t, "metadata.name"), "capi-ubuntu-2404-0-3-1721037000");
    assert_eq!(s(t, "metadata.namespace"), "default");
    assert_eq!(
        at(t, "spec.template.spec.osDisk.diskSizeGB").as_u64(),
        Some(128)
    );
    let g = at(t, "spec.template.spec.image.computeGallery");
    assert_eq!(
        s(g, "subscriptionID"),
        "00000000-1111-2222-3333-444444444444"
    );
    assert_eq!(s(g, "resourceGroup"), "cluster-api-gallery");
    assert_eq!(s(g, "gallery"), "ClusterAPI1721036000abcd");
    assert_eq!(s(g, "name"), "capi-ubuntu-2404");
    assert_eq!(s(g, "version"), "0.3.1721037000");
    // Same input, same bytes: re-running and re-applying is harmless.
    assert_eq!(
        sigcat(&[
            "render",
            LOG,
            "--manifest",
            MANIFEST,
            "--vm-size",
            "Standard_D2s_v3",
            "--namespace",
            "default"
        ])
        .stdout,
        out.stdout
    );
    // From records JSON rather than the log: the same manifest.
    let records = sigcat(&["parse", LOG, "--manifest", MANIFEST]);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("render-records");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("records.json");
    std::fs::write(&file, &records.stdout).unwrap();
    let again = sigcat(&[
        "render",
        file.to_str().unwrap(),
        "--vm-size",
        "Standard_D2s_v3",
        "--namespace",
        "default",
    ]);
    assert_eq!(again.stdout, out.stdout);
}

#[test]
fn other_image_kinds() {
    let d = docs(&sigcat(&[
        "render",
        "fixtures/console/azure-devops-crlf.log",
        "--vm-size",
        "x",
        "--image-api",
        "shared-gallery",
    ]));
    assert_valid_template(&d[0]);
    assert_eq!(
        s(&d[0], "spec.template.spec.image.sharedGallery.version"),
        "1.30.3"
    );
    let d = docs(&sigcat(&[
        "render",
        "fixtures/console/managed-image-only.log",
        "--vm-size",
        "x",
    ]));
    assert_valid_template(&d[0]);
    assert!(
        s(&d[0], "spec.template.spec.image.id").ends_with("/images/capi-ubuntu-2404-1721037000"),
        "no gallery: id is the choice"
    );
    let out = sigcat(&[
        "render",
        "fixtures/console/managed-image-only.log",
        "--vm-size",
        "x",
        "--image-api",
        "compute-gallery",
    ]);
    assert_eq!(out.status.code(), Some(6));
    let out = sigcat(&["render", LOG]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--vm-size is required without --from"
    );
}

#[test]
fn copy_of_the_current_template_changes_only_image_and_name() {
    let d = docs(&sigcat(&[
        "render",
        LOG,
        "--from",
        "fixtures/capz/md-0.yaml",
    ]));
    let new = &d[0];
    assert_valid_template(new);
    let mut original = read_yaml("fixtures/capz/md-0.yaml").remove(0);
    assert_eq!(s(new, "metadata.name"), "my-cluster-md-0-0-3-1721037000");
    // What the server set is gone...
    for gone in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
    ] {
        assert!(at(new, "metadata").get(gone).is_none(), "{gone}");
    }
    assert!(new.get("status").is_none());
    assert!(
        at(new, "metadata.annotations")
            .get("kubectl.kubernetes.io/last-applied-configuration")
            .is_none()
    );
    // ...and everything else is exactly as it was, unknown fields and tricky strings included.
    let m = original.as_mapping_mut().unwrap();
    m.remove("status");
    let meta = m.get_mut("metadata").unwrap().as_mapping_mut().unwrap();
    for gone in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
        "name",
    ] {
        meta.remove(gone);
    }
    meta.get_mut("annotations")
        .unwrap()
        .as_mapping_mut()
        .unwrap()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
    let mut stripped_new = new.clone();
    stripped_new
        .get_mut("metadata")
        .unwrap()
        .as_mapping_mut()
        .unwrap()
        .remove("name");
    for v in [&mut original, &mut stripped_new] {
        v.get_mut("spec")
            .unwrap()
            .get_mut("template")
            .unwrap()
            .get_mut("spec")
            .unwrap()
            .as_mapping_mut()
            .unwrap()
            .remove("image");
    }
    assert_eq!(stripped_new, original);
    assert_eq!(
        s(new, "spec.template.metadata.labels.pool"),
        "on",
        "`on` stays a string"
    );
    assert_eq!(
        s(new, "spec.template.spec.futureField.zone"),
        "01",
        "leading zeros stay"
    );
    let text =
        String::from_utf8(sigcat(&["render", LOG, "--from", "fixtures/capz/md-0.yaml"]).stdout)
            .unwrap();
    assert!(
        text.contains("pool: \"on\""),
        "quoted for YAML 1.1 readers:\n{text}"
    );
}

#[test]
fn upgrade_v1beta1_control_plane_first() {
    let d = docs(&sigcat(&[
        "render",
        LOG,
        "--manifest",
        MANIFEST,
        "--from",
        "fixtures/capz/cp.yaml",
        "--from",
        "fixtures/capz/md-0.yaml",
        "--upgrade",
        "fixtures/capz/current-v1beta1.yaml",
    ]));
    let kinds: Vec<&str> = d.iter().map(|o| s(o, "kind")).collect();
    assert_eq!(
        kinds,
        [
            "AzureMachineTemplate",
            "AzureMachineTemplate",
            "KubeadmControlPlane",
            "MachineDeployment"
        ]
    );
    let (cp_t, md_t, kcp, md) = (&d[0], &d[1], &d[2], &d[3]);
    assert_valid_template(cp_t);
    assert_valid_template(md_t);
    assert_eq!(s(kcp, "spec.version"), "v1.30.3");
    assert_eq!(
        s(kcp, "spec.machineTemplate.infrastructureRef.name"),
        s(cp_t, "metadata.name")
    );
    assert_eq!(
        s(kcp, "spec.machineTemplate.infrastructureRef.kind"),
        "AzureMachineTemplate"
    );
    assert_eq!(
        at(kcp, "spec.replicas").as_u64(),
        Some(3),
        "other fields kept"
    );
    assert!(at(kcp, "metadata").get("uid").is_none() && kcp.get("status").is_none());
    assert_eq!(s(md, "metadata.name"), "my-cluster-md-0");
    assert_eq!(s(md, "spec.template.spec.version"), "v1.30.3");
    assert_eq!(
        s(md, "spec.template.spec.infrastructureRef.name"),
        s(md_t, "metadata.name")
    );
    // md-windows used another template: untouched, so not in the output.
    assert!(
        d.iter()
            .all(|o| s(o, "metadata.name") != "my-cluster-md-windows")
    );
}

#[test]
fn upgrade_v1beta2_paths_and_patches() {
    let d = docs(&sigcat(&[
        "render",
        LOG,
        "--manifest",
        MANIFEST,
        "--from",
        "fixtures/capz/cp.yaml",
        "--from",
        "fixtures/capz/md-0.yaml",
        "--upgrade",
        "fixtures/capz/current-v1beta2.yaml",
        "--as",
        "patches",
    ]));
    let (kcp, md) = (&d[2], &d[3]);
    assert_eq!(
        s(kcp, "apiVersion"),
        "controlplane.cluster.x-k8s.io/v1beta2"
    );
    assert_eq!(
        s(kcp, "spec.machineTemplate.spec.infrastructureRef.name"),
        "my-cluster-control-plane-0-3-1721037000"
    );
    assert_eq!(s(kcp, "spec.version"), "v1.30.3");
    assert_eq!(
        at(kcp, "spec").as_mapping().unwrap().len(),
        2,
        "a patch holds only the changed fields"
    );
    assert!(kcp.get("status").is_none() && at(kcp, "metadata").as_mapping().unwrap().len() == 2);
    assert_eq!(
        s(md, "spec.template.spec.infrastructureRef.name"),
        "my-cluster-md-0-0-3-1721037000"
    );
    assert_eq!(at(md, "spec.template.spec").as_mapping().unwrap().len(), 2);
}

#[test]
fn clusterclass_changes_only_the_topology_version() {
    let d = docs(&sigcat(&[
        "render",
        LOG,
        "--manifest",
        MANIFEST,
        "--from",
        "fixtures/capz/md-0.yaml",
        "--upgrade",
        "fixtures/capz/cluster-topology.yaml",
    ]));
    let cluster = &d[1];
    assert_eq!(s(cluster, "kind"), "Cluster");
    assert_eq!(s(cluster, "spec.topology.version"), "v1.30.3");
    let mut original = read_yaml("fixtures/capz/cluster-topology.yaml").remove(0);
    original
        .get_mut("metadata")
        .unwrap()
        .as_mapping_mut()
        .unwrap()
        .remove("uid");
    original
        .get_mut("spec")
        .unwrap()
        .get_mut("topology")
        .unwrap()
        .as_mapping_mut()
        .unwrap()
        .insert("version".into(), "v1.30.3".into());
    assert_eq!(cluster, &original);
}

#[test]
fn unsafe_upgrades_are_refused() {
    let refused = |args: &[&str], why: &str| {
        let out = sigcat(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(6), "{why}: {err}");
        err
    };
    let base = [
        "render",
        LOG,
        "--from",
        "fixtures/capz/cp.yaml",
        "--from",
        "fixtures/capz/md-0.yaml",
        "--upgrade",
        "fixtures/capz/current-v1beta1.yaml",
    ];
    let err = refused(&base, "unknown Kubernetes version");
    assert!(err.contains("unknown"), "{err}");
    let err = refused(
        &[&base[..], &["--kubernetes-version", "1.31.2"]].concat(),
        "minor skip",
    );
    assert!(err.contains("cannot skip a minor version"), "{err}");
    let err = refused(
        &[&base[..], &["--kubernetes-version", "1.28.9"]].concat(),
        "downgrade",
    );
    assert!(err.contains("downgrade"), "{err}");
    let err = refused(
        &[
            "render",
            LOG,
            "--manifest",
            MANIFEST,
            "--from",
            "fixtures/capz/md-0.yaml",
            "--upgrade",
            "fixtures/capz/current-v1beta1.yaml",
        ],
        "workers ahead",
    );
    assert!(err.contains("ahead of the control plane"), "{err}");
}

#[test]
fn third_party_images_need_a_plan() {
    let flatcar = "fixtures/console/multi-build.log";
    // Make a Flatcar image from the gen2 build by overriding nothing: use a Flatcar-named record.
    let records = sigcat(&["parse", flatcar, "--build", "sig-ubuntu-2204-gen2"]);
    let text = String::from_utf8(records.stdout)
        .unwrap()
        .replace("ubuntu-2204", "flatcar");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("render-flatcar");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("flatcar.json");
    std::fs::write(&file, text).unwrap();
    let f = file.to_str().unwrap();
    let out = sigcat(&["render", f, "--vm-size", "x"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Plan"));
    let d = docs(&sigcat(&[
        "render",
        f,
        "--vm-size",
        "x",
        "--plans-file",
        "fixtures/capz/plans.yaml",
    ]));
    assert_valid_template(&d[0]);
    assert_eq!(
        s(
            &d[0],
            "spec.template.spec.image.computeGallery.plan.publisher"
        ),
        "kinvolk"
    );
    let d = docs(&sigcat(&[
        "render",
        f,
        "--vm-size",
        "x",
        "--image-api",
        "shared-gallery",
        "--plan",
        "kinvolk:flatcar-container-linux-free:stable",
    ]));
    let g = at(&d[0], "spec.template.spec.image.sharedGallery");
    assert_eq!(
        (s(g, "publisher"), s(g, "offer"), s(g, "sku")),
        ("kinvolk", "flatcar-container-linux-free", "stable")
    );
}
