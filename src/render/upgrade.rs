//! CAPZ's upgrade steps, done for the user: point the control plane and each MachineDeployment
//! that used an old template at its new one and set the new Kubernetes version, in one change
//! per object, control plane first. ClusterClass clusters are [`super::topology`]'s.

use super::Refusal;
use super::change::Change;
use super::slots::{PlanLine, Selector, TemplateKey, Users, copy_templates};
use super::template::AMT_KIND;
use super::template::TemplateOptions;
use super::topology;
use crate::record::kubernetes::KubeVersion;
use crate::yaml::{describe, get, set, str_at};
use serde_norway::Value;
use std::collections::BTreeMap;

/// What an upgrade needs to know.
pub struct Request<'a> {
    /// Everything in the `--upgrade` input.
    pub objects: &'a [Value],
    /// The current templates to copy (`--from`); each copy gets the image of the record its
    /// slot gets.
    pub templates: &'a [&'a Value],
    /// The records and the operator's per-slot choices.
    pub selector: &'a Selector<'a>,
    /// How `image:` sections are written.
    pub options: &'a TemplateOptions,
    /// ClusterClass clusters: make a new ClusterClass of this name instead of changing the
    /// current one in place.
    pub new_class: Option<&'a str>,
}

/// The request as the planners use it, once the copies are made.
pub(super) struct Context<'a> {
    pub(super) objects: &'a [Value],
    /// (old template, new template name) for every copy.
    pub(super) replacements: Vec<(TemplateKey, String)>,
    /// Templates whose slots keep their image (`--keep-image`).
    pub(super) kept: Vec<TemplateKey>,
    pub(super) selector: &'a Selector<'a>,
    pub(super) options: &'a TemplateOptions,
    /// The Kubernetes version the cluster moves to.
    pub(super) target: KubeVersion,
    pub(super) new_class: Option<&'a str>,
}

/// What to apply, in order, and what was left alone.
#[derive(Debug, Default)]
pub struct UpgradeOutput {
    /// Objects to create, before the changes: the new templates, then a new ClusterClass
    /// revision (`--new-class`).
    pub new_objects: Vec<Value>,
    /// ClusterClasses, control planes, MachineDeployments, then Clusters.
    pub changes: Vec<Change>,
    /// Warnings for the operator (objects left alone, classes every Cluster shares).
    pub notes: Vec<String>,
    /// Each machine slot, its image now and after: the plan a reviewer reads.
    pub plan: Vec<PlanLine>,
    /// The Kubernetes version the cluster moves to.
    pub target: Option<KubeVersion>,
}

/// Where an object keeps its version and its infrastructure template reference.
fn paths(obj: &Value) -> Option<(bool, &'static [&'static str], &'static [&'static str])> {
    let v1beta2 = str_at(obj, &["apiVersion"]).is_some_and(|a| a.ends_with("/v1beta2"));
    match str_at(obj, &["kind"])? {
        "KubeadmControlPlane" => Some((
            true,
            &["spec", "version"],
            if v1beta2 {
                &[
                    "spec",
                    "machineTemplate",
                    "spec",
                    "infrastructureRef",
                    "name",
                ]
            } else {
                &["spec", "machineTemplate", "infrastructureRef", "name"]
            },
        )),
        "MachineDeployment" => Some((
            false,
            &["spec", "template", "spec", "version"],
            &["spec", "template", "spec", "infrastructureRef", "name"],
        )),
        _ => None,
    }
}

/// The AzureMachineTemplate an object's reference at `ref_path` (ending in `name`) finds;
/// `None` for a reference to another kind.
pub(super) fn template_ref(obj: &Value, ref_path: &[&str]) -> Option<TemplateKey> {
    let (_, parent) = ref_path.split_last()?;
    let reference = get(obj, parent)?;
    if !is_azure_machine_template(reference) {
        return None;
    }
    Some(TemplateKey {
        namespace: str_at(reference, &["namespace"])
            .or(str_at(obj, &["metadata", "namespace"]))
            .map(str::to_string),
        name: str_at(reference, &["name"])?.to_string(),
    })
}

/// Whether a reference (v1beta1 `apiVersion`, v1beta2 `apiGroup`) is to CAPZ's
/// AzureMachineTemplate, not a kind of the same name in another API group.
pub(super) fn is_azure_machine_template(reference: &Value) -> bool {
    let group = str_at(reference, &["apiGroup"])
        .or_else(|| str_at(reference, &["apiVersion"]).and_then(|v| v.split('/').next()));
    str_at(reference, &["kind"]) == Some(AMT_KIND)
        && group == Some("infrastructure.cluster.x-k8s.io")
}

/// Whether a used (namespace, new name) is the copy `key` → `new`.
pub(super) fn is_copy(used: &(Option<String>, String), key: &TemplateKey, new: &str) -> bool {
    used.1 == new && used.0 == key.namespace
}

pub(super) fn version_of(obj: &Value, path: &[&str]) -> Result<KubeVersion, Refusal> {
    let text = str_at(obj, path)
        .ok_or_else(|| Refusal::Upgrade(format!("{} has no {}", describe(obj), path.join("."))))?;
    KubeVersion::parse(text).ok_or_else(|| {
        Refusal::Upgrade(format!(
            "{}: {} `{text}` is not a Kubernetes version",
            describe(obj),
            path.join(".")
        ))
    })
}

/// Kubernetes' version rules: no downgrade, and a control plane moves one minor at a time.
pub(super) fn check_step(
    obj: &Value,
    current: &KubeVersion,
    target: &KubeVersion,
    control_plane: bool,
) -> Result<(), Refusal> {
    if target < current {
        return Err(Refusal::Upgrade(format!(
            "{} is at v{}; refusing to downgrade it to v{}",
            describe(obj),
            current.bare(),
            target.bare()
        )));
    }
    if control_plane && target.major == current.major && target.minor > current.minor + 1 {
        return Err(Refusal::Upgrade(format!(
            "{} is at v{}: the control plane cannot skip a minor version to v{}; upgrade to v{}.{}.x first",
            describe(obj),
            current.bare(),
            target.bare(),
            current.major,
            current.minor + 1
        )));
    }
    Ok(())
}

/// Who runs each template: the control planes and MachineDeployments that refer to it, and the
/// ClusterClass slots (with their Clusters' MachineDeployments).
fn template_users(objects: &[Value]) -> BTreeMap<TemplateKey, Users> {
    let mut users: BTreeMap<TemplateKey, Users> = BTreeMap::new();
    for obj in objects {
        let Some((control_plane, _, ref_path)) = paths(obj) else {
            continue;
        };
        let (Some(key), Some(name)) = (
            template_ref(obj, ref_path),
            str_at(obj, &["metadata", "name"]),
        ) else {
            continue;
        };
        let entry = users.entry(key).or_default();
        let mut names = vec![name.to_string()];
        if control_plane {
            names.push("control-plane".into());
        }
        entry.machines.push(names);
        entry.what.push(describe(obj));
    }
    for (key, machines, class, what) in topology::template_users(objects) {
        let entry = users.entry(key).or_default();
        entry.machines.extend(machines);
        entry.classes.extend(class);
        entry.what.push(what);
    }
    users
}

/// The changes that move a cluster's control plane and workers to the new images and version, in apply order; refused when Cluster API would refuse them or they would break the cluster.
pub fn plan_upgrade(req: &Request) -> Result<UpgradeOutput, Refusal> {
    let target = req
        .selector
        .target()
        .cloned()
        .ok_or_else(|| Refusal::Upgrade("an upgrade needs a record with an image".into()))?;
    let copies = copy_templates(
        req.templates,
        &template_users(req.objects),
        req.objects,
        req.selector,
        req.options,
    )?;
    let ctx = Context {
        objects: req.objects,
        replacements: copies.replacements,
        kept: copies.kept,
        selector: req.selector,
        options: req.options,
        target,
        new_class: req.new_class,
    };
    let mut out = plan(&ctx)?;
    out.plan.splice(0..0, copies.plan);
    // A template nothing refers to would be applied and never used.
    for (old, new) in &ctx.replacements {
        if !out.used_templates.iter().any(|u| is_copy(u, old, new)) {
            return Err(Refusal::Upgrade(format!(
                "the copy of `{}` (`{new}`) would be referred to by nothing in the --upgrade input: no control plane or MachineDeployment there, and no Cluster's ClusterClass slot, runs `{}` (a ClusterClass that sets the image from a variable needs no --from); drop that --from",
                old.name, old.name
            )));
        }
    }
    req.selector.check_all_flags_used()?;
    out.output.new_objects.splice(0..0, copies.templates);
    out.output.plan = out.plan;
    out.output.target = Some(ctx.target);
    Ok(out.output)
}

/// The planners' result, before the copies join it.
struct Planned {
    output: UpgradeOutput,
    plan: Vec<PlanLine>,
    /// (namespace, name) of the new templates something now refers to.
    used_templates: Vec<(Option<String>, String)>,
}

fn plan(req: &Context) -> Result<Planned, Refusal> {
    let mut out = UpgradeOutput::default();
    let mut used_templates = Vec::new();
    let new_version = Value::from(format!("v{}", req.target.bare()));
    let mut control_planes = Vec::new();
    let mut workers = Vec::new();
    let mut control_plane_minor_after: Option<u64> = None;

    for obj in req.objects {
        let Some((control_plane, version_path, ref_path)) = paths(obj) else {
            continue;
        };
        let current = version_of(obj, version_path)?;
        check_step(obj, &current, &req.target, false)?;
        let ref_name = str_at(obj, ref_path).unwrap_or("");
        let key = template_ref(obj, ref_path);
        let finds = |k: &TemplateKey| {
            key.as_ref()
                .is_some_and(|r| k.finds(r.namespace.as_deref(), &r.name))
        };
        let new_name = req
            .replacements
            .iter()
            .find(|(old, _)| finds(old))
            .map(|(_, new)| new);
        let kept = req.kept.iter().any(finds);
        if new_name.is_none() && !kept {
            if control_plane {
                control_plane_minor_after = control_plane_minor_after.or(Some(current.minor));
            }
            out.notes.push(format!(
                "{} uses template `{ref_name}`, not one being replaced; left unchanged",
                describe(obj)
            ));
            continue;
        }
        if control_plane {
            check_step(obj, &current, &req.target, true)?;
            control_plane_minor_after = Some(req.target.minor);
        }
        let mut change = Change::of(obj);
        set(&mut change.changed, version_path, new_version.clone());
        if let Some(new_name) = new_name {
            set(
                &mut change.changed,
                ref_path,
                Value::from(new_name.as_str()),
            );
            used_templates.push((
                key.as_ref().and_then(|k| k.namespace.clone()),
                new_name.clone(),
            ));
        }
        if control_plane {
            control_planes.push(change);
        } else {
            workers.push(change);
        }
    }

    for change in &workers {
        match control_plane_minor_after {
            Some(cp_minor) if req.target.minor > cp_minor => {
                return Err(Refusal::Upgrade(format!(
                    "{} would move to v{}, ahead of the control plane's minor version 1.{cp_minor}; upgrade the control plane first",
                    change.describe(),
                    req.target.bare()
                )));
            }
            None => out.notes.push(format!(
                "{}: no control plane in the input, so the worker/control-plane skew was not checked",
                change.describe()
            )),
            _ => {}
        }
    }

    let topology = topology::plan(req)?;
    if control_planes.is_empty() && workers.is_empty() && topology.changes.is_empty() {
        return Err(Refusal::Upgrade(
            "nothing in the --upgrade input uses a template being replaced: expected KubeadmControlPlanes / MachineDeployments referring to a --from template (by name, in its namespace), or a ClusterClass Cluster with its ClusterClass".into(),
        ));
    }
    let (classes, clusters): (Vec<Change>, Vec<Change>) = topology
        .changes
        .into_iter()
        .partition(|c| str_at(&c.current, &["kind"]) == Some("ClusterClass"));
    out.new_objects = topology.new_objects;
    out.changes = classes
        .into_iter()
        .chain(control_planes)
        .chain(workers)
        .chain(clusters)
        .collect();
    out.notes.extend(topology.notes);
    used_templates.extend(topology.used_templates);
    used_templates.sort();
    used_templates.dedup();
    Ok(Planned {
        output: out,
        plan: topology.plan,
        used_templates,
    })
}
