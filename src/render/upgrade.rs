//! CAPZ's upgrade steps, done for the user: point the control plane and each MachineDeployment
//! that used an old template at its new one and set the new Kubernetes version, in one change
//! per object, control plane first. ClusterClass clusters are [`super::topology`]'s.

use super::Refusal;
use super::change::Change;
use super::topology;
use crate::record::kubernetes::KubeVersion;
use crate::yaml::{describe, set, str_at};
use serde_norway::Value;

/// What an upgrade needs to know.
pub struct Request<'a> {
    /// Everything in the `--upgrade` input.
    pub objects: &'a [Value],
    /// (old template name, new template name) for every `--from` copy.
    pub replacements: &'a [(String, String)],
    /// The new `image:` section.
    pub image: &'a Value,
    /// The Kubernetes version the cluster moves to.
    pub target: &'a KubeVersion,
    /// ClusterClass clusters: make a new ClusterClass of this name instead of changing the
    /// current one in place.
    pub new_class: Option<&'a str>,
}

/// What to apply, in order, and what was left alone.
#[derive(Debug, Default)]
pub struct UpgradeOutput {
    /// Objects to create (a new ClusterClass revision), before the changes.
    pub new_objects: Vec<Value>,
    /// ClusterClasses, control planes, MachineDeployments, then Clusters.
    pub changes: Vec<Change>,
    /// Warnings for the operator (objects left alone, classes every Cluster shares).
    pub notes: Vec<String>,
    /// Names of the new templates something now refers to.
    pub used_templates: Vec<String>,
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

/// The changes that move a cluster's control plane and workers to the new image and version, in apply order; refused when Cluster API would refuse them or they would break the cluster.
pub fn plan_upgrade(req: &Request) -> Result<UpgradeOutput, Refusal> {
    let mut out = UpgradeOutput::default();
    let new_version = Value::from(format!("v{}", req.target.bare()));
    let mut control_planes = Vec::new();
    let mut workers = Vec::new();
    let mut control_plane_minor_after: Option<u64> = None;

    for obj in req.objects {
        let Some((control_plane, version_path, ref_path)) = paths(obj) else {
            continue;
        };
        let current = version_of(obj, version_path)?;
        check_step(obj, &current, req.target, false)?;
        let ref_name = str_at(obj, ref_path).unwrap_or("");
        let Some((_, new_name)) = req.replacements.iter().find(|(old, _)| old == ref_name) else {
            if control_plane {
                control_plane_minor_after = control_plane_minor_after.or(Some(current.minor));
            }
            out.notes.push(format!(
                "{} uses template `{ref_name}`, not one being replaced; left unchanged",
                describe(obj)
            ));
            continue;
        };
        if control_plane {
            check_step(obj, &current, req.target, true)?;
            control_plane_minor_after = Some(req.target.minor);
        }
        let mut change = Change::of(obj);
        set(&mut change.changed, version_path, new_version.clone());
        set(
            &mut change.changed,
            ref_path,
            Value::from(new_name.as_str()),
        );
        out.used_templates.push(new_name.clone());
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
            "nothing in the --upgrade input uses a template being replaced: expected KubeadmControlPlanes / MachineDeployments referring to a --from template, or a ClusterClass Cluster with its ClusterClass".into(),
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
    out.used_templates.extend(topology.used_templates);
    out.used_templates.sort();
    out.used_templates.dedup();
    Ok(out)
}
