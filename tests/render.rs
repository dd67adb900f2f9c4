//! `sigcat render` through the binary. Every manifest it prints is also read back by a real
//! kubectl (as `kubectl apply -f` reads it) and compared with what a YAML 1.2 library reads, and
//! checked against the rules of shared/reference/capz-manifests.md and the input objects.
//! The helpers here serve render_upgrade.rs and render_readme.rs too.

use crate::util::{kubectl_agrees, kubectl_read, repo, scratch};
use serde_json::Value as Json;
use std::process::Output;

pub const LOG: &str = "fixtures/console/sig-ubuntu-2404.log";
pub const MANIFEST: &str = "fixtures/manifest/manifest.json";

fn sigcat(args: &[&str]) -> Output {
    crate::util::sigcat(args, &[], None)
}

/// What one successful `sigcat render` printed.
pub struct Rendered {
    pub text: String,
    /// As kubectl read it.
    pub objects: Vec<Json>,
    pub stderr: String,
}

/// `sigcat render ARGS`, which must succeed; its output must read the same in kubectl as in a
/// YAML 1.2 library (so no value depends on the reader's YAML version).
pub fn render(args: &[&str]) -> Rendered {
    let out = sigcat(&[&["render"], args].concat());
    let stderr = crate::util::text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "render {args:?}: {stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    let objects = kubectl_agrees(&text);
    Rendered {
        text,
        objects,
        stderr,
    }
}

/// Renders with `--as objects` and with `--as kustomize DIR`; what `kubectl kustomize DIR`
/// builds must be the same objects in the same order.
pub fn render_both_ways(args: &[&str]) -> Rendered {
    let objects = render(args);
    let dir = crate::util::scratch("kustomize").join("out");
    let d = dir.to_str().unwrap();
    let out = render(&[args, &["--as", "kustomize", d]].concat());
    assert!(out.text.is_empty(), "nothing on stdout: {}", out.text);
    assert_eq!(
        crate::util::kubectl_kustomize(&dir),
        objects.objects,
        "kubectl kustomize {d} differs from --as objects"
    );
    objects
}

/// A fixture (`path` in the repository) with `edit` applied, written under its own file name
/// in a scratch directory of its own named after `test`; returns where.
pub fn fixture_variant(test: &str, path: &str, edit: impl Fn(String) -> String) -> String {
    let text = edit(std::fs::read_to_string(crate::util::repo().join(path)).unwrap());
    let name = std::path::Path::new(path).file_name().unwrap();
    let file = crate::util::scratch(test).join(name);
    std::fs::write(&file, text).unwrap();
    file.to_str().unwrap().to_string()
}

/// The plan's lines on stderr for the slot whose first line holds `slot` (its line, `now:`,
/// `after:`).
pub fn plan_of(stderr: &str, slot: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("  ") && !l.starts_with("   ") && l.contains(slot))
        .unwrap_or_else(|| panic!("no slot {slot} in the plan: {stderr}"));
    lines[at..(at + 3).min(lines.len())].join("\n")
}

/// `render` of the fixture build (log and manifest: an image for Kubernetes v1.30.3).
pub fn render_build(args: &[&str]) -> Rendered {
    render(&[&[LOG, "--manifest", MANIFEST], args].concat())
}

/// `sigcat render` of the fixture build that must fail with `code`; returns stderr.
pub fn render_fails(args: &[&str], code: i32) -> String {
    let out = sigcat(&[&["render", LOG, "--manifest", MANIFEST], args].concat());
    let err = crate::util::text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "render {args:?}: {err}");
    err
}

/// A fixture's objects as kubectl reads them.
pub fn fixture_objects(path: &str) -> Vec<Json> {
    kubectl_read(&repo().join(path))
}

/// Drops what the API server sets, by the reference's list (not by sigcat's code).
pub fn without_server_fields(mut obj: Json) -> Json {
    let meta = obj["metadata"].as_object_mut().unwrap();
    for field in
        "uid resourceVersion creationTimestamp generation managedFields selfLink".split(' ')
    {
        meta.remove(field);
    }
    if let Some(a) = meta.get_mut("annotations").and_then(Json::as_object_mut) {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
    obj.as_object_mut().unwrap().remove("status");
    obj
}

/// Sets the field at a JSON pointer, which must exist.
pub fn put(obj: &mut Json, pointer: &str, value: Json) {
    let shown = obj.to_string();
    *obj.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in {shown}")) = value;
}

pub fn kinds(objects: &[Json]) -> Vec<&str> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect()
}

/// The string at a JSON pointer.
pub fn s<'a>(v: &'a Json, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Json::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

/// The reference's rules for an AzureMachineTemplate.
pub fn assert_valid_template(t: &Json) {
    assert_eq!(
        s(t, "/apiVersion"),
        "infrastructure.cluster.x-k8s.io/v1beta1"
    );
    assert_eq!(s(t, "/kind"), "AzureMachineTemplate");
    let name = s(t, "/metadata/name");
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
    let spec = &t["spec"]["template"]["spec"];
    assert!(!s(spec, "/vmSize").is_empty());
    assert!(matches!(s(spec, "/osDisk/osType"), "Linux" | "Windows"));
    let image = spec["image"].as_object().unwrap();
    assert_eq!(image.len(), 1, "exactly one image kind: {image:?}");
    let (kind, body) = image.iter().next().unwrap();
    match kind.as_str() {
        "computeGallery" | "sharedGallery" => {
            for key in ["gallery", "name", "version"] {
                assert!(body[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
            }
            assert_eq!(
                body.get("subscriptionID").is_some(),
                body.get("resourceGroup").is_some(),
                "both or neither"
            );
            if let Some(plan) = body.get("plan") {
                for key in ["publisher", "offer", "sku"] {
                    assert!(plan[key].is_string(), "complete plan: {key}");
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

/// The image section the fixture build gets, written out by hand from its log.
pub fn fixture_image() -> Json {
    serde_json::json!({"computeGallery": {
        "subscriptionID": "00000000-1111-2222-3333-444444444444",
        "resourceGroup": "cluster-api-gallery",
        "gallery": "ClusterAPI1721036000abcd",
        "name": "capi-ubuntu-2404",
        "version": "0.3.1721037000"
    }})
}

#[test]
fn minimal_template_for_a_fresh_cluster() {
    let args = ["--vm-size", "Standard_D2s_v3", "--namespace", "default"];
    let out = render_build(&args);
    assert_eq!(out.objects.len(), 1);
    let t = &out.objects[0];
    assert_valid_template(t);
    assert_eq!(s(t, "/metadata/name"), "capi-ubuntu-2404-0-3-1721037000");
    assert_eq!(s(t, "/metadata/namespace"), "default");
    assert_eq!(t["spec"]["template"]["spec"]["osDisk"]["diskSizeGB"], 128);
    assert_eq!(t["spec"]["template"]["spec"]["image"], fixture_image());
    // Same input, same bytes: re-running and re-applying is harmless.
    assert_eq!(render_build(&args).text, out.text);
    // From records JSON rather than the log: the same manifest.
    let records = sigcat(&["parse", LOG, "--manifest", MANIFEST]);
    let file = scratch("render-records").join("records.json");
    std::fs::write(&file, &records.stdout).unwrap();
    let again = render(&[&[file.to_str().unwrap()][..], &args].concat());
    assert_eq!(again.text, out.text);
}

#[test]
fn other_image_kinds() {
    let d = render(&[
        "fixtures/console/azure-devops-crlf.log",
        "--vm-size",
        "x",
        "--image-api",
        "shared-gallery",
    ])
    .objects;
    assert_valid_template(&d[0]);
    assert_eq!(
        s(&d[0], "/spec/template/spec/image/sharedGallery/version"),
        "1.30.3"
    );
    let d = render(&["fixtures/console/managed-image-only.log", "--vm-size", "x"]).objects;
    assert_valid_template(&d[0]);
    assert!(
        s(&d[0], "/spec/template/spec/image/id").ends_with("/images/capi-ubuntu-2404-1721037000"),
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

/// The copy equals the input as kubectl reads it, but for the name, the image and what the
/// server set.
fn assert_copy_of(new: &Json, original: &Json) {
    let strip = |o: &Json| {
        let mut o = without_server_fields(o.clone());
        o["metadata"].as_object_mut().unwrap().remove("name");
        o["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("image");
        o
    };
    assert_eq!(strip(new), strip(original));
}

#[test]
fn copy_of_the_current_template_changes_only_image_and_name() {
    let out = render_build(&["--from", "fixtures/capz/md-0.yaml"]);
    let new = &out.objects[0];
    assert_valid_template(new);
    assert_eq!(s(new, "/metadata/name"), "my-cluster-md-0-0-3-1721037000");
    for gone in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
    ] {
        assert!(new["metadata"].get(gone).is_none(), "{gone}");
    }
    assert!(new.get("status").is_none());
    assert!(
        new["metadata"]["annotations"]
            .get("kubectl.kubernetes.io/last-applied-configuration")
            .is_none()
    );
    assert_copy_of(new, &fixture_objects("fixtures/capz/md-0.yaml")[0]);
    assert_eq!(new["spec"]["template"]["spec"]["image"], fixture_image());
    assert_eq!(
        s(new, "/spec/template/metadata/labels/pool"),
        "on",
        "`on` stays a string"
    );
    assert_eq!(
        s(new, "/spec/template/spec/futureField/zone"),
        "01",
        "leading zeros stay"
    );
    assert!(
        out.text.contains("pool: \"on\""),
        "quoted for YAML 1.1 readers:\n{}",
        out.text
    );
}

/// A template written the YAML 1.1 way (as kubectl reads it): the copy must carry the values
/// kubectl would have sent, not the words.
#[test]
fn yaml_1_1_input_is_read_as_kubectl_reads_it() {
    let path = "fixtures/capz/yaml-1.1-template.yaml";
    // It runs CAPZ's Ubuntu 22.04 marketplace image: moving it to 24.04 is said explicitly.
    let out = render_build(&["--from", path, "--image-for", "yaml11-md-0=ubuntu-2404"]);
    assert!(
        out.stderr.contains("ubuntu-2204-gen1") && out.stderr.contains("capi-ubuntu-2404"),
        "the plan names the old and new image: {}",
        out.stderr
    );
    let new = &out.objects[0];
    assert_copy_of(new, &fixture_objects(path)[0]);
    let spec = &new["spec"]["template"]["spec"];
    // Independent expectations, from the YAML 1.1 spec and go-yaml v2's rules:
    assert_eq!(spec["acceleratedNetworking"], true, "yes");
    assert_eq!(spec["securityProfile"]["encryptionAtHost"], false, "off");
    assert_eq!(spec["osDisk"]["diskSizeGB"], 128, "0200 is octal");
    assert_eq!(spec["dataDisks"][0]["lun"], 31, "0x1F");
    assert_eq!(spec["dataDisks"][0]["diskSizeGB"], 1024, "1_024");
    assert_eq!(
        spec["dataDisks"][1]["nameSuffix"], "etcd",
        "merged from the anchor"
    );
    assert_eq!(
        spec["dataDisks"][1]["diskSizeGB"], 256,
        "merge, then override"
    );
    assert_eq!(
        spec["additionalTags"]["true"], "y as a key",
        "keys resolve too"
    );
    assert_eq!(spec["additionalTags"]["on"], "quoted keys do not");
    assert_eq!(
        spec["additionalTags"]["date"], "2024-06-01",
        "timestamps stay text"
    );
    assert_eq!(spec["additionalTags"]["ratio"], "1:20");
    assert_eq!(
        spec["additionalTags"]["literal"], "yes\n",
        "block scalars are text"
    );
    let annotations = &new["metadata"]["annotations"];
    assert_eq!(
        annotations["example.com/controls"],
        "del\u{7f} c1\u{85}\u{9f} ls\u{2028} bom\u{feff}"
    );
    assert_eq!(annotations["example.com/equals"], "=");
    assert_eq!(annotations["example.com/merge"], "<<");
    // Written so that no reader can take them otherwise.
    for line in ["example.com/equals: \"=\"", "example.com/merge: \"<<\""] {
        assert!(out.text.contains(line), "{line} in\n{}", out.text);
    }
    assert!(
        out.text
            .contains("\"del\\x7F c1\\N\\x9F ls\\L bom\\uFEFF\""),
        "{}",
        out.text
    );
}

#[test]
fn ambiguous_or_hostile_yaml_is_refused_with_its_line() {
    let dir = scratch("render-hostile");
    let case = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let err = render_fails(&["--from", path.to_str().unwrap()], 4);
        assert!(err.contains(&format!("{}:", path.display())), "{err}");
        err
    };
    let template = std::fs::read_to_string(repo().join("fixtures/capz/md-0.yaml")).unwrap();
    let err = case(
        "twice.yaml",
        &template.replace(
            "  vmSize: Standard_D4s_v3\n",
            "  vmSize: Standard_D4s_v3\n      vmSize: Standard_D8s_v3\n",
        ),
    );
    assert!(
        err.contains(":48:") && err.contains("`vmSize` appears twice"),
        "{err}"
    );
    let err = case(
        "inf.yaml",
        &template.replace("diskSizeGB: 256", "diskSizeGB: .inf"),
    );
    assert!(err.contains(":33:"), "{err}");
    // 200 KB of nesting: refused at once, at the line where it passes the limit.
    let deep = format!("a: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let err = case("deep.yaml", &deep);
    assert!(err.contains("nested more than 100 levels"), "{err}");
    let block: String = (0..5000)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let err = case("deep-block.yaml", &block);
    assert!(
        err.contains(":101:") && err.contains("nested more than 100 levels"),
        "{err}"
    );
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    let err = case("bomb.yaml", &bomb);
    assert!(err.contains("billion laughs"), "{err}");
}

#[test]
fn third_party_images_need_a_plan() {
    let flatcar = "fixtures/console/multi-build.log";
    // A Flatcar-named record, made from the gen2 build's.
    let records = sigcat(&["parse", flatcar, "--build", "sig-ubuntu-2204-gen2"]);
    let text = String::from_utf8(records.stdout)
        .unwrap()
        .replace("ubuntu-2204", "flatcar");
    let file = scratch("render-flatcar").join("flatcar.json");
    std::fs::write(&file, text).unwrap();
    let f = file.to_str().unwrap();
    let out = sigcat(&["render", f, "--vm-size", "x"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Plan"));
    let d = render(&[
        f,
        "--vm-size",
        "x",
        "--plans-file",
        "fixtures/capz/plans.yaml",
    ])
    .objects;
    assert_valid_template(&d[0]);
    assert_eq!(
        s(
            &d[0],
            "/spec/template/spec/image/computeGallery/plan/publisher"
        ),
        "kinvolk"
    );
    let d = render(&[
        f,
        "--vm-size",
        "x",
        "--image-api",
        "shared-gallery",
        "--plan",
        "kinvolk:flatcar-container-linux-free:stable",
    ])
    .objects;
    let g = &d[0]["spec"]["template"]["spec"]["image"]["sharedGallery"];
    assert_eq!(
        (s(g, "/publisher"), s(g, "/offer"), s(g, "/sku")),
        ("kinvolk", "flatcar-container-linux-free", "stable")
    );
}
