//! CAPZ's upgrade steps, done for the user: point the control plane and each MachineDeployment
//! that used an old template at its new one and set the new Kubernetes version, in one change
//! per object, control plane first; or, for a ClusterClass cluster, only `spec.topology.version`.

use super::Refusal;
use super::yaml::{describe, drop_server_fields, get, set, str_at};
use crate::record::kubernetes::KubeVersion;
use serde_norway::{Mapping, Value};

/// The changed objects, in the order to apply them, and what was left alone.
#[derive(Debug, Default)]
pub struct UpgradeOutput {
    /// Control planes, then MachineDeployments, then topology Clusters.
    pub objects: Vec<Value>,
    pub notes: Vec<String>,
}

/// Where an object keeps its version and its infrastructure template reference.
struct Paths {
    version: &'static [&'static str],
    reference: &'static [&'static str],
}

fn paths(obj: &Value) -> Option<(Role, Paths)> {
    let kind = str_at(obj, &["kind"])?;
    let v1beta2 = str_at(obj, &["apiVersion"]).is_some_and(|a| a.ends_with("/v1beta2"));
    match kind {
        "KubeadmControlPlane" => Some((
            Role::ControlPlane,
            Paths {
                version: &["spec", "version"],
                reference: if v1beta2 {
                    &["spec", "machineTemplate", "spec", "infrastructureRef"]
                } else {
                    &["spec", "machineTemplate", "infrastructureRef"]
                },
            },
        )),
        "MachineDeployment" => Some((
            Role::Workers,
            Paths {
                version: &["spec", "template", "spec", "version"],
                reference: &["spec", "template", "spec", "infrastructureRef"],
            },
        )),
        "Cluster" if get(obj, &["spec", "topology"]).is_some() => Some((
            Role::Topology,
            Paths {
                version: &["spec", "topology", "version"],
                reference: &[],
            },
        )),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    ControlPlane,
    Workers,
    Topology,
}

fn version_of(obj: &Value, path: &[&str]) -> Result<KubeVersion, Refusal> {
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

/// `replacements`: (old template name, new template name). `as_patches`: emit merge patches
/// (only the changed fields, with apiVersion, kind and metadata to find the object).
pub fn plan_upgrade(
    objects: &[Value],
    replacements: &[(String, String)],
    target: &KubeVersion,
    as_patches: bool,
) -> Result<UpgradeOutput, Refusal> {
    let mut out = UpgradeOutput::default();
    let new_version = Value::from(format!("v{}", target.bare()));
    let mut changed: Vec<(Role, Value, Value)> = Vec::new();
    let mut control_plane_minor_after: Option<u64> = None;

    for obj in objects {
        let Some((role, p)) = paths(obj) else {
            continue;
        };
        let current = version_of(obj, p.version)?;
        if *target < current {
            return Err(Refusal::Upgrade(format!(
                "{} is at v{}; refusing to downgrade it to v{}",
                describe(obj),
                current.bare(),
                target.bare()
            )));
        }
        let new_name = if role == Role::Topology {
            None
        } else {
            let ref_name = str_at(obj, &[p.reference, &["name"]].concat()).unwrap_or("");
            match replacements.iter().find(|(old, _)| old == ref_name) {
                Some((_, new)) => Some(new.clone()),
                None => {
                    if role == Role::ControlPlane {
                        control_plane_minor_after =
                            control_plane_minor_after.or(Some(current.minor));
                    }
                    out.notes.push(format!(
                        "{} uses template `{ref_name}`, not one being replaced; left unchanged",
                        describe(obj)
                    ));
                    continue;
                }
            }
        };
        if role != Role::Workers
            && target.major == current.major
            && target.minor > current.minor + 1
        {
            return Err(Refusal::Upgrade(format!(
                "{} is at v{}: the control plane cannot skip a minor version to v{}; upgrade to v{}.{}.x first",
                describe(obj),
                current.bare(),
                target.bare(),
                current.major,
                current.minor + 1
            )));
        }
        if role != Role::Workers {
            control_plane_minor_after = Some(target.minor);
        }
        let apply = |target: &mut Value| {
            set(target, p.version, new_version.clone());
            if let Some(name) = &new_name {
                set(
                    target,
                    &[p.reference, &["name"]].concat(),
                    Value::from(name.as_str()),
                );
            }
        };
        let doc = if as_patches {
            let mut doc = Value::Mapping(Mapping::new());
            for key in [
                &["apiVersion"][..],
                &["kind"],
                &["metadata", "name"],
                &["metadata", "namespace"],
            ] {
                if let Some(v) = get(obj, key) {
                    set(&mut doc, key, v.clone());
                }
            }
            apply(&mut doc);
            doc
        } else {
            let mut full = obj.clone();
            drop_server_fields(&mut full);
            apply(&mut full);
            full
        };
        changed.push((role, obj.clone(), doc));
    }

    for (role, original, _) in &changed {
        if *role == Role::Workers {
            match control_plane_minor_after {
                Some(cp_minor) if target.minor > cp_minor => {
                    return Err(Refusal::Upgrade(format!(
                        "{} would move to v{}, ahead of the control plane's minor version 1.{cp_minor}; upgrade the control plane first",
                        describe(original), target.bare()
                    )));
                }
                None => out.notes.push(format!("{}: no control plane in the input, so the worker/control-plane skew was not checked", describe(original))),
                _ => {}
            }
        }
    }
    if changed.is_empty() {
        return Err(Refusal::Upgrade("no KubeadmControlPlane, MachineDeployment or ClusterClass Cluster in the upgrade input uses a template being replaced".into()));
    }
    changed.sort_by_key(|(role, _, _)| *role);
    out.objects = changed.into_iter().map(|(_, _, doc)| doc).collect();
    Ok(out)
}
