//! ClusterClass clusters. A Cluster with `spec.topology` does not own its machine images: its
//! ClusterClass does, either through the AzureMachineTemplates it references or through a
//! patch that writes `spec.template.spec.image` from a variable. Changing only
//! `spec.topology.version` would roll every machine to the new Kubernetes version on the old
//! image, so for each machine slot of the cluster (its control plane, each MachineDeployment
//! class it uses) this finds where the image comes from and changes it there:
//!
//! - a variable patch: the variable is set on the Cluster (or in the override that feeds the
//!   slot), in the same change as `spec.topology.version`, so one rollout does both;
//! - the class's template: the new template (a `--from` copy) replaces it in the ClusterClass,
//!   in place, or in a new ClusterClass that only this Cluster is rebased onto (`--new-class`).
//!
//! Anything else (a fixed or Go-template patch, a missing ClusterClass) is refused with what
//! to do, never answered with templates nothing refers to. The field names of CAPI's v1beta1
//! and v1beta2 APIs are both read (`ref` / `templateRef`, `class` / `classRef`).

use super::Refusal;
use super::change::Change;
use super::image_names::os_type_of;
use super::slots::{Choice, PlanLine, Slot as MachineSlot, TemplateKey, check_os};
use super::template::image_section;
use super::upgrade::{Context, check_step, version_of};
use crate::record::kubernetes::KubeVersion;
use crate::yaml::{describe, get, get_mut, set, str_at};
use serde_norway::{Mapping, Value};

const IMAGE_PATH: &str = "/spec/template/spec/image";
const TEMPLATE_KIND: &str = "AzureMachineTemplate";

#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// New ClusterClass revisions (`--new-class`).
    pub(crate) new_objects: Vec<Value>,
    /// ClusterClasses changed in place, then Clusters.
    pub(crate) changes: Vec<Change>,
    pub(crate) notes: Vec<String>,
    /// (namespace, name) of the new templates the changes refer to.
    pub(crate) used_templates: Vec<(Option<String>, String)>,
    /// The slots whose image comes from variables, or that keep their image.
    pub(crate) plan: Vec<PlanLine>,
}

pub(crate) fn is_topology_cluster(obj: &Value) -> bool {
    str_at(obj, &["kind"]) == Some("Cluster") && get(obj, &["spec", "topology"]).is_some()
}

fn is_v1beta2(obj: &Value) -> bool {
    str_at(obj, &["apiVersion"]).is_some_and(|a| a.ends_with("/v1beta2"))
}

/// A ClusterClass as it will be written: changed in place, or the base of a new revision.
struct ClassEdit {
    change: Change,
    /// Some slot's template reference was changed.
    refs_changed: bool,
}

pub(crate) fn plan(req: &Context) -> Result<Plan, Refusal> {
    let mut plan = Plan::default();
    let mut classes: Vec<ClassEdit> = Vec::new();
    for cluster in req.objects.iter().filter(|o| is_topology_cluster(o)) {
        plan_cluster(req, cluster, &mut classes, &mut plan)?;
    }
    let edited: Vec<ClassEdit> = classes.into_iter().filter(|c| c.refs_changed).collect();
    match req.new_class {
        Some(name) => {
            let [class] = &edited[..] else {
                // A flag that does not fit the cluster: the operator's to change.
                return Err(Refusal::Choices(if edited.is_empty() {
                    "--new-class: no ClusterClass needs a change (its images come from variables, or every slot keeps its image), so there is no new revision to make; drop --new-class".into()
                } else {
                    "--new-class names one new ClusterClass, but the input's Clusters use several; upgrade them one class at a time".into()
                }));
            };
            if req.objects.iter().any(|o| {
                str_at(o, &["kind"]) == Some("ClusterClass")
                    && str_at(o, &["metadata", "name"]) == Some(name)
            }) {
                return Err(Refusal::Choices(format!(
                    "--new-class `{name}`: a ClusterClass of that name is already in the input; choose a new name"
                )));
            }
            let mut new = class.change.changed.clone();
            set(&mut new, &["metadata", "name"], Value::from(name));
            plan.new_objects.push(new);
        }
        None => {
            for class in &edited {
                plan.notes.push(format!(
                    "{} is changed in place: every Cluster that uses it (not only those in the input) rolls its machines onto the new templates as soon as it is applied, each at its own Kubernetes version; `--new-class NAME` makes a new revision only these Clusters move to",
                    class.change.describe()
                ));
            }
            // ClusterClasses before the Clusters that use them.
            let clusters = std::mem::take(&mut plan.changes);
            plan.changes = edited.into_iter().map(|c| c.change).collect();
            plan.changes.extend(clusters);
        }
    }
    plan.used_templates.sort();
    plan.used_templates.dedup();
    Ok(plan)
}

/// Where a Cluster names its ClusterClass (v1beta1 / v1beta2).
fn class_paths(cluster: &Value) -> (&'static [&'static str], &'static [&'static str]) {
    if is_v1beta2(cluster) {
        (
            &["spec", "topology", "classRef", "name"],
            &["spec", "topology", "classRef", "namespace"],
        )
    } else {
        (
            &["spec", "topology", "class"],
            &["spec", "topology", "classNamespace"],
        )
    }
}

/// The ClusterClass a Cluster uses, when the input holds it.
fn class_of<'a>(objects: &'a [Value], cluster: &Value) -> Option<&'a Value> {
    let (name_path, ns_path) = class_paths(cluster);
    let namespace = str_at(cluster, ns_path).or(str_at(cluster, &["metadata", "namespace"]));
    find(
        objects,
        "ClusterClass",
        str_at(cluster, name_path)?,
        namespace,
    )
}

/// (template, the machines that run it by their names, its worker class, what it is) for every
/// template a ClusterClass Cluster of the input runs.
pub(super) type TemplateUse = (TemplateKey, Vec<Vec<String>>, Option<String>, String);

pub(super) fn template_users(objects: &[Value]) -> Vec<TemplateUse> {
    let mut out = Vec::new();
    for cluster in objects.iter().filter(|o| is_topology_cluster(o)) {
        let Some(class) = class_of(objects, cluster) else {
            continue;
        };
        for slot in slots(cluster, class).unwrap_or_default() {
            out.push((
                TemplateKey {
                    namespace: str_at(class, &["metadata", "namespace"]).map(str::to_string),
                    name: slot.template_name().to_string(),
                },
                machine_names(&slot, cluster),
                slot.md_class.clone(),
                slot_what(&slot, cluster, None),
            ));
        }
    }
    out
}

/// Each machine of a slot by its names: `control-plane` or the MachineDeployment's, alone and
/// as `CLUSTER/NAME` (for inputs with several Clusters).
fn machine_names(slot: &Slot, cluster: &Value) -> Vec<Vec<String>> {
    let cluster_name = str_at(cluster, &["metadata", "name"]).unwrap_or("?");
    let both = |n: &str| vec![n.to_string(), format!("{cluster_name}/{n}")];
    match &slot.md_class {
        None => vec![both("control-plane")],
        Some(_) => slot
            .md_indexes
            .iter()
            .filter_map(|i| md_name(cluster, *i))
            .map(both)
            .collect(),
    }
}

/// The topology name of the cluster's `index`th MachineDeployment.
fn md_name(cluster: &Value, index: usize) -> Option<&str> {
    str_at(
        cluster,
        &[
            "spec",
            "topology",
            "workers",
            "machineDeployments",
            &index.to_string(),
            "name",
        ],
    )
}

/// The names `--image-for` / `--keep-image` accept for a slot (or one MachineDeployment of it):
/// `control-plane`, or the MachineDeployments' topology names and their class.
fn slot_names(slot: &Slot, cluster: &Value, only: Option<usize>) -> Vec<String> {
    let machines = machine_names(slot, cluster);
    let mut names: Vec<String> = match only {
        None => machines.into_iter().flatten().collect(),
        Some(i) => {
            let at = slot.md_indexes.iter().position(|x| *x == i);
            at.and_then(|a| machines.into_iter().nth(a))
                .unwrap_or_default()
        }
    };
    names.extend(slot.md_class.iter().cloned());
    names
}

fn slot_what(slot: &Slot, cluster: &Value, only: Option<usize>) -> String {
    let Some(class) = &slot.md_class else {
        return format!("the control plane of {}", describe(cluster));
    };
    let indexes: Vec<usize> = only.map_or_else(|| slot.md_indexes.clone(), |i| vec![i]);
    let names: Vec<String> = indexes
        .iter()
        .map(|i| format!("`{}`", md_name(cluster, *i).unwrap_or("?")))
        .collect();
    format!(
        "MachineDeployment {} of {}, class `{class}`",
        names.join(", "),
        describe(cluster)
    )
}

fn plan_cluster(
    req: &Context,
    cluster: &Value,
    classes: &mut Vec<ClassEdit>,
    plan: &mut Plan,
) -> Result<(), Refusal> {
    let who = describe(cluster);
    let (class_name_path, class_ns_path) = class_paths(cluster);
    let class_name = str_at(cluster, class_name_path).ok_or_else(|| {
        Refusal::Upgrade(format!(
            "{who} has spec.topology but no {}",
            class_name_path.join(".")
        ))
    })?;
    let namespace = str_at(cluster, class_ns_path).or(str_at(cluster, &["metadata", "namespace"]));

    let current = version_of(cluster, &["spec", "topology", "version"])?;
    check_step(cluster, &current, &req.target, true)?;
    if get(cluster, &["spec", "topology", "workers", "machinePools"])
        .and_then(Value::as_sequence)
        .is_some_and(|p| !p.is_empty())
    {
        return Err(Refusal::Upgrade(format!(
            "{who} has machine pools; sigcat moves AzureMachineTemplates only, and the pools would roll to v{} on their old image",
            req.target.bare()
        )));
    }

    let class = find(req.objects, "ClusterClass", class_name, namespace).ok_or_else(|| {
        Refusal::Upgrade(format!(
            "{who} uses ClusterClass `{class_name}`, which decides its machine images, and the --upgrade input does not hold it; get both: `kubectl get cluster/{} clusterclass/{class_name}{} -o yaml > FILE`",
            str_at(cluster, &["metadata", "name"]).unwrap_or("NAME"),
            namespace.map(|n| format!(" -n {n}")).unwrap_or_default()
        ))
    })?;
    check_class_versions(class, &req.target)?;

    let index = match classes
        .iter()
        .position(|c| same_object(&c.change.current, class))
    {
        Some(i) => i,
        None => {
            classes.push(ClassEdit {
                change: Change::of(class),
                refs_changed: false,
            });
            classes.len() - 1
        }
    };
    let mut change = Change::of(cluster);
    set(
        &mut change.changed,
        &["spec", "topology", "version"],
        Value::from(format!("v{}", req.target.bare())),
    );

    let mut any_ref_changed = false;
    let mut checks = Vec::new();
    for slot in slots(cluster, class)? {
        let ops = image_ops(class, cluster, &slot, plan)?;
        if ops.is_empty() {
            let Some(new_name) = replace_template(req, &slot, cluster, class, plan)? else {
                continue;
            };
            let class_change = &mut classes[index];
            let reference = get_mut(&mut class_change.change.changed, &slot.ref_path_strs())
                .expect("the slot's reference was read from this class");
            set(reference, &["name"], Value::from(new_name.as_str()));
            class_change.refs_changed = true;
            any_ref_changed = true;
            plan.used_templates.push((
                str_at(class, &["metadata", "namespace"]).map(str::to_string),
                new_name,
            ));
        } else {
            checks.extend(set_variables(
                req,
                &slot,
                &ops,
                (class, cluster),
                &mut change.changed,
                plan,
            )?);
        }
    }
    // One variable may feed several slots; once all are set, each must still read its image.
    for check in &checks {
        if check.read(&change.changed) != check.value.as_ref() {
            let why = if check.kept {
                "keeps its image (--keep-image)"
            } else {
                "gets another image"
            };
            return Err(Refusal::Upgrade(format!(
                "{}: {} reads variable `{}` from {}, which another machine's new image changes, but it {why}; give it its own value in its variables.overrides, or choose the same image for both",
                describe(class),
                check.who,
                check.name,
                check.list.join(".")
            )));
        }
    }
    if any_ref_changed && let Some(new_class) = req.new_class {
        set(&mut change.changed, class_name_path, Value::from(new_class));
    }
    plan.changes.push(change);
    Ok(())
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str, ns: Option<&str>) -> Option<&'a Value> {
    objects.iter().find(|o| {
        str_at(o, &["kind"]) == Some(kind)
            && str_at(o, &["metadata", "name"]) == Some(name)
            && match (str_at(o, &["metadata", "namespace"]), ns) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    })
}

fn same_object(a: &Value, b: &Value) -> bool {
    let id = |o: &Value| {
        (
            str_at(o, &["kind"]).map(str::to_string),
            str_at(o, &["metadata", "name"]).map(str::to_string),
            str_at(o, &["metadata", "namespace"]).map(str::to_string),
        )
    };
    id(a) == id(b)
}

/// v1beta2 classes may list the Kubernetes versions they support.
fn check_class_versions(class: &Value, target: &KubeVersion) -> Result<(), Refusal> {
    let Some(Value::Sequence(versions)) = get(class, &["spec", "kubernetesVersions"]) else {
        return Ok(());
    };
    let listed = versions
        .iter()
        .filter_map(Value::as_str)
        .any(|v| KubeVersion::parse(v).as_ref() == Some(target));
    if listed {
        Ok(())
    } else {
        Err(Refusal::Upgrade(format!(
            "{} lists spec.kubernetesVersions without v{}; add it to the class first",
            describe(class),
            target.bare()
        )))
    }
}

/// One kind of machine in the cluster, and the class field that holds its template.
struct Slot {
    what: String,
    /// Path of the template reference inside the ClusterClass.
    ref_path: Vec<String>,
    reference: Value,
    /// `None` for the control plane; the MachineDeployment class name otherwise.
    md_class: Option<String>,
    /// Indexes in the Cluster's `spec.topology.workers.machineDeployments`.
    md_indexes: Vec<usize>,
}

impl Slot {
    fn ref_path_strs(&self) -> Vec<&str> {
        self.ref_path.iter().map(String::as_str).collect()
    }

    fn template_name(&self) -> &str {
        str_at(&self.reference, &["name"]).unwrap_or("")
    }

    /// Its machines, as variables and patch conditions see them: the control plane (`None`),
    /// or each of its MachineDeployments by index.
    fn machines(&self) -> Vec<Option<usize>> {
        match &self.md_class {
            None => vec![None],
            Some(_) => self.md_indexes.iter().copied().map(Some).collect(),
        }
    }
}

fn slots(cluster: &Value, class: &Value) -> Result<Vec<Slot>, Refusal> {
    let v2 = is_v1beta2(class);
    let ref_key = if v2 { "templateRef" } else { "ref" };
    let mut out = Vec::new();
    let cp_path = ["spec", "controlPlane", "machineInfrastructure", ref_key];
    if let Some(reference) = get(class, &cp_path) {
        out.push(Slot {
            what: "the control plane".into(),
            ref_path: cp_path.iter().map(|s| s.to_string()).collect(),
            reference: reference.clone(),
            md_class: None,
            md_indexes: Vec::new(),
        });
    }
    let topology_mds = get(
        cluster,
        &["spec", "topology", "workers", "machineDeployments"],
    )
    .and_then(Value::as_sequence)
    .cloned()
    .unwrap_or_default();
    let class_mds = get(class, &["spec", "workers", "machineDeployments"])
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    for (i, md) in topology_mds.iter().enumerate() {
        let name = str_at(md, &["class"]).unwrap_or("");
        if let Some(slot) = out.iter_mut().find(|s| s.md_class.as_deref() == Some(name)) {
            slot.md_indexes.push(i);
            continue;
        }
        let Some(position) = class_mds
            .iter()
            .position(|c| str_at(c, &["class"]) == Some(name))
        else {
            return Err(Refusal::Upgrade(format!(
                "{} has a MachineDeployment of class `{name}`, which {} does not define",
                describe(cluster),
                describe(class)
            )));
        };
        let inner: &[&str] = if v2 {
            &["infrastructure", "templateRef"]
        } else {
            &["template", "infrastructure", "ref"]
        };
        let mut ref_path: Vec<String> = ["spec", "workers", "machineDeployments"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        ref_path.push(position.to_string());
        ref_path.extend(inner.iter().map(|s| s.to_string()));
        let reference = get(&class_mds[position], inner).cloned().ok_or_else(|| {
            Refusal::Upgrade(format!(
                "{}: MachineDeployment class `{name}` has no {}",
                describe(class),
                inner.join(".")
            ))
        })?;
        out.push(Slot {
            what: format!("MachineDeployment class `{name}`"),
            ref_path,
            reference,
            md_class: Some(name.to_string()),
            md_indexes: vec![i],
        });
    }
    for slot in &out {
        if !super::upgrade::is_azure_machine_template(&slot.reference) {
            return Err(Refusal::Upgrade(format!(
                "{}: {} uses a {} of {}, not CAPZ's AzureMachineTemplate",
                describe(class),
                slot.what,
                str_at(&slot.reference, &["kind"]).unwrap_or("?"),
                str_at(&slot.reference, &["apiGroup"])
                    .or(str_at(&slot.reference, &["apiVersion"]))
                    .unwrap_or("?")
            )));
        }
    }
    Ok(out)
}

/// A JSON patch of the class that writes (part of) the image of a slot's template.
struct ImageOp {
    patch: String,
    /// Below `spec.template.spec.image` (empty: the whole section).
    below: Vec<String>,
    source: Source,
}

enum Source {
    /// `valueFrom.variable`: a name, maybe with a dotted path into it.
    Variable(String),
    /// A fixed `value`, a Go `valueFrom.template`, a `remove`, or a patch of a whole parent
    /// of the image: the class itself decides the image.
    Class(&'static str),
}

/// The class's inline patches that touch the image of this slot's template, in the order the
/// topology controller applies them.
fn image_ops(
    class: &Value,
    cluster: &Value,
    slot: &Slot,
    plan: &mut Plan,
) -> Result<Vec<ImageOp>, Refusal> {
    let mut ops = Vec::new();
    let patches = get(class, &["spec", "patches"])
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    for patch in &patches {
        let name = str_at(patch, &["name"]).unwrap_or("?").to_string();
        if get(patch, &["external"]).is_some() {
            plan.notes.push(format!(
                "{}: patch `{name}` is external (a runtime extension); sigcat cannot see whether it sets the image of {}",
                describe(class),
                slot.what
            ));
        }
        let definitions = get(patch, &["definitions"])
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        for definition in &definitions {
            if !selects(definition, slot) {
                continue;
            }
            for op in get(definition, &["jsonPatches"])
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let path = str_at(op, &["path"]).unwrap_or("");
                // A patch that writes the OS disk decides the machines' OS, which the
                // template then no longer says; sigcat would match records to the wrong one.
                let os_disk = "/spec/template/spec/osDisk";
                if (path == os_disk || path.starts_with(&format!("{os_disk}/")))
                    && str_at(op, &["op"]) != Some("test")
                {
                    return Err(Refusal::Upgrade(format!(
                        "{}: patch `{name}` writes {path} of {}, so its machines' OS is not the one their template says; sigcat cannot tell which image fits them: upgrade this class by hand",
                        describe(class),
                        slot.what
                    )));
                }
                let Some(below) = below_image(path) else {
                    continue;
                };
                let source = if below.is_none() {
                    // A parent of the image (`/spec/template/spec`): only a fixed value
                    // without an image leaves it alone.
                    match get(op, &["value"]) {
                        Some(v) if !contains_image(v, path) => continue,
                        _ => Source::Class("replaces a parent of the image as a whole"),
                    }
                } else if str_at(op, &["op"]) == Some("remove") {
                    Source::Class("removes it")
                } else if let Some(variable) = str_at(op, &["valueFrom", "variable"]) {
                    Source::Variable(variable.to_string())
                } else if get(op, &["valueFrom", "template"]).is_some() {
                    Source::Class("sets it with a Go template")
                } else {
                    Source::Class("sets it to a fixed value")
                };
                // A patch switched off leaves the image to the template: what the topology
                // controller does, not what the patch says.
                if !enabled(patch, class, cluster, &slot.machines()).map_err(|text| {
                    Refusal::Upgrade(format!(
                        "{}: patch `{name}` sets the image of {} only when its enabledIf `{text}` holds, and sigcat evaluates only `true`, `false`, `{{{{ .VARIABLE }}}}` and `{{{{ if .VARIABLE }}}}true{{{{ end }}}}`; set the image by hand, or simplify enabledIf",
                        describe(class),
                        slot.what
                    ))
                })? {
                    continue;
                }
                ops.push(ImageOp {
                    patch: name.clone(),
                    below: below.unwrap_or_default(),
                    source,
                });
            }
        }
    }
    Ok(ops)
}

/// Whether a patch applies, by its `enabledIf` as the topology controller renders it (with the
/// Cluster's variables, else the class's defaults): `Err` with the text when sigcat cannot
/// evaluate it.
fn enabled(
    patch: &Value,
    class: &Value,
    cluster: &Value,
    machines: &[Option<usize>],
) -> Result<bool, String> {
    let Some(condition) = get(patch, &["enabledIf"]) else {
        return Ok(true);
    };
    let text = condition.as_str().ok_or_else(|| format!("{condition:?}"))?;
    // CAPI: an empty enabledIf is no condition.
    if text.is_empty() {
        return Ok(true);
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    // Each machine reads a variable from its own overrides first (CAPI merges them in).
    let value_of = |name: &str, machine: Option<usize>| {
        variable_value(cluster, &variable_list(machine, cluster, name), name)
            .cloned()
            .or_else(|| class_default(class, name))
    };
    let variable = |inner: &str| {
        inner
            .strip_prefix('.')
            .filter(|n| {
                !n.is_empty()
                    && !n.starts_with("builtin")
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            .map(str::to_string)
    };
    let truthy = |v: Option<Value>| match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::Sequence(s)) => !s.is_empty(),
        Some(Value::Mapping(m)) => !m.is_empty(),
        Some(Value::Tagged(_)) => true,
    };
    // What Go's text/template prints for a value (only `true` can enable a patch).
    let printed = |v: Option<Value>| match v {
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::String(s)) => s,
        _ => String::new(),
    };
    let rendered = |machine: Option<usize>| -> Result<String, String> {
        if !text.contains("{{") {
            return Ok(text.to_string());
        }
        if let Some(inner) = compact
            .strip_prefix("{{if")
            .and_then(|r| r.strip_suffix("}}true{{end}}"))
            && let Some(name) = variable(inner)
        {
            return Ok(if truthy(value_of(&name, machine)) {
                "true".into()
            } else {
                String::new()
            });
        }
        if let Some(inner) = compact
            .strip_prefix("{{")
            .and_then(|r| r.strip_suffix("}}"))
            && let Some(name) = variable(inner)
        {
            return Ok(printed(value_of(&name, machine)));
        }
        Err(text.to_string())
    };
    // CAPI reads the rendered text as YAML (go-yaml v2: `yes`, `on`, `True` are true too) and
    // applies the patch when it is `true`.
    let on = |machine: Option<usize>| -> Result<bool, String> {
        let text = rendered(machine)?;
        Ok(matches!(
            crate::yaml::resolve::resolve(text.trim(), true, None),
            Ok(crate::yaml::resolve::Scalar::Bool(true))
        ))
    };
    let mut answers = machines.iter().map(|m| on(*m));
    let first = answers.next().unwrap_or_else(|| on(None))?;
    for other in answers {
        if other? != first {
            return Err(format!(
                "{text}` is on for some of these machines and off for others (their variables.overrides differ), and sigcat moves a class's machines together: `{text}"
            ));
        }
    }
    Ok(first)
}

/// CAPI's selector rules: same apiVersion and kind as the template, and the control plane or
/// a MachineDeployment class named exactly, by `*`, `prefix*` or `*suffix`.
fn selects(definition: &Value, slot: &Slot) -> bool {
    let selector = get(definition, &["selector"]);
    let field = |k: &str| selector.and_then(|s| str_at(s, &[k]));
    if field("apiVersion") != str_at(&slot.reference, &["apiVersion"])
        || field("kind") != Some(TEMPLATE_KIND)
    {
        return false;
    }
    let matching = selector.and_then(|s| get(s, &["matchResources"]));
    match &slot.md_class {
        None => matching
            .and_then(|m| get(m, &["controlPlane"]))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        Some(class) => matching
            .and_then(|m| get(m, &["machineDeploymentClass", "names"]))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|pattern| {
                pattern == "*"
                    || pattern == class
                    || pattern
                        .strip_prefix('*')
                        .is_some_and(|suffix| class.ends_with(suffix))
                    || pattern
                        .strip_suffix('*')
                        .is_some_and(|prefix| class.starts_with(prefix))
            }),
    }
}

/// `Some(Some(rest))` for the image or below it, `Some(None)` for a parent of it, `None` for
/// anything else. JSON pointer escapes (`~1`, `~0`) are undone.
fn below_image(path: &str) -> Option<Option<Vec<String>>> {
    let unescape = |s: &str| s.replace("~1", "/").replace("~0", "~");
    if let Some(rest) = path.strip_prefix(IMAGE_PATH) {
        if rest.is_empty() {
            return Some(Some(Vec::new()));
        }
        let rest = rest.strip_prefix('/')?;
        return Some(Some(rest.split('/').map(unescape).collect()));
    }
    let parent = IMAGE_PATH.starts_with(path)
        && IMAGE_PATH.as_bytes().get(path.len()) == Some(&b'/')
        || path.is_empty();
    parent.then_some(None)
}

fn contains_image(value: &Value, path: &str) -> bool {
    let rest = IMAGE_PATH[path.len()..].trim_start_matches('/');
    let keys: Vec<&str> = rest.split('/').collect();
    get(value, &keys).is_some()
}

/// The new name of the template a slot uses, from the `--from` copies; `None` when the slot
/// keeps its image (`--keep-image`).
fn replace_template(
    req: &Context,
    slot: &Slot,
    cluster: &Value,
    class: &Value,
    plan: &mut Plan,
) -> Result<Option<String>, Refusal> {
    let old = slot.template_name();
    let ns = str_at(class, &["metadata", "namespace"]);
    if let Some((_, new)) = req
        .replacements
        .iter()
        .find(|(from, _)| from.finds(ns, old))
    {
        return Ok(Some(new.clone()));
    }
    if req.kept.iter().any(|k| k.finds(ns, old)) {
        return Ok(None);
    }
    let template = find(req.objects, TEMPLATE_KIND, old, ns);
    let machine = machine_slot(slot, cluster, None, template, old)?;
    if req.selector.keeps(&machine)? {
        plan.plan.push(PlanLine::new(&machine, Choice::Keep));
        return Ok(None);
    }
    let ns = ns.map(|n| format!(" -n {n}")).unwrap_or_default();
    Err(Refusal::Upgrade(format!(
        "{} takes the image of {} from AzureMachineTemplate `{old}`, and no --from copy of it was given, so its machines would roll to v{} on the old image; add `--from {old}.yaml` (from `kubectl get azuremachinetemplate {old}{ns} -o yaml`), or keep its image on purpose with `--keep-image {}`",
        describe(class),
        slot.what,
        req.target.bare(),
        machine.names[0]
    )))
}

/// A slot (or one MachineDeployment of it) as the choice of its record sees it.
fn machine_slot(
    slot: &Slot,
    cluster: &Value,
    only: Option<usize>,
    template: Option<&Value>,
    template_name: &str,
) -> Result<MachineSlot, Refusal> {
    let machines = machine_names(slot, cluster);
    Ok(MachineSlot {
        what: slot_what(slot, cluster, only),
        names: slot_names(slot, cluster, only),
        // One MachineDeployment of several that share the class's template names only part
        // of it; the class names all of them (and, with variables, each one's own machines).
        partial_names: if only.is_none() && machines.len() > 1 {
            machines.into_iter().flatten().collect()
        } else {
            Vec::new()
        },
        shared_names: match (only, &slot.md_class) {
            (Some(_), Some(class)) => vec![class.clone()],
            _ => Vec::new(),
        },
        os_type: template.map(os_type_of).transpose()?,
        template: template_name.to_string(),
        image: template.and_then(|t| get(t, &["spec", "template", "spec", "image"]).cloned()),
    })
}

/// A variable value a slot must read once every variable is set.
struct Check {
    list: Vec<String>,
    name: String,
    inside: Vec<String>,
    /// What it must read (`None`: the variable unset, as before).
    value: Option<Value>,
    /// The machine that reads it.
    who: String,
    /// It keeps its image (`--keep-image`), so the variable must not change.
    kept: bool,
}

impl Check {
    /// What `machine` must read from `variable` (a name, maybe dotted into it): `value`, a new
    /// image; `None`, whatever it reads now (it keeps its image).
    fn of(
        variable: &str,
        machine: Option<usize>,
        cluster: &Value,
        who: &str,
        value: Option<Value>,
    ) -> Check {
        let (name, inside) = split_variable(variable);
        Check {
            list: variable_list(machine, cluster, name),
            name: name.to_string(),
            inside: inside.iter().map(|s| s.to_string()).collect(),
            kept: value.is_none(),
            value,
            who: who.to_string(),
        }
    }

    /// What the machine reads in `cluster`.
    fn read<'a>(&self, cluster: &'a Value) -> Option<&'a Value> {
        let inside: Vec<&str> = self.inside.iter().map(String::as_str).collect();
        variable_value(cluster, &self.list, &self.name).and_then(|v| get(v, &inside))
    }
}

/// Sets the variables a slot's image patches read, where each of its machines reads them (an
/// override of the control plane or of the MachineDeployment, else the Cluster's variables),
/// to the image of the record that machine gets.
fn set_variables(
    req: &Context,
    slot: &Slot,
    ops: &[ImageOp],
    (class, cluster): (&Value, &Value),
    changed: &mut Value,
    plan: &mut Plan,
) -> Result<Vec<Check>, Refusal> {
    let class_name = describe(class);
    let mut variables = Vec::new();
    for op in ops {
        let variable = match &op.source {
            Source::Variable(v) => v,
            Source::Class(how) => {
                return Err(Refusal::Upgrade(format!(
                    "{class_name}: patch `{}` {how} for {}, so only a change to that patch can move it to the new image; edit the patch (or make it read a variable) and run again",
                    op.patch, slot.what
                )));
            }
        };
        if variable.starts_with("builtin.") || variable.contains('[') {
            return Err(Refusal::Upgrade(format!(
                "{class_name}: patch `{}` sets the image of {} from `{variable}`, which a Cluster cannot set",
                op.patch, slot.what
            )));
        }
        variables.push(variable.as_str());
    }
    let template = find(
        req.objects,
        TEMPLATE_KIND,
        slot.template_name(),
        str_at(class, &["metadata", "namespace"]),
    );
    let mut checks = Vec::new();
    for machine in slot.machines() {
        let mut chooser = machine_slot(slot, cluster, machine, template, slot.template_name())?;
        chooser.image = current_image(ops, &variables, template, (class, cluster), machine);
        let record = match req.selector.choose(&chooser)? {
            Choice::Keep => {
                plan.plan.push(PlanLine::new(&chooser, Choice::Keep));
                // What it reads must stay as it is.
                for variable in &variables {
                    let mut check = Check::of(variable, machine, cluster, &chooser.what, None);
                    check.value = check.read(cluster).cloned();
                    checks.push(check);
                }
                continue;
            }
            Choice::Record(r) => r,
        };
        check_os(&chooser, record)?;
        let image = image_section(record, req.options)?;
        plan.plan
            .push(PlanLine::new(&chooser, Choice::Record(record)));
        for (variable, value) in wanted_values(req, slot, ops, &variables, class, &image)? {
            let (name, inside) = split_variable(variable);
            let check = Check::of(
                variable,
                machine,
                cluster,
                &chooser.what,
                Some(value.clone()),
            );
            set_variable(changed, &check.list, name, &inside, value, class);
            checks.push(check);
        }
    }
    Ok(checks)
}

/// The image a machine runs today: its template's image with what the patches write from the
/// variables as the Cluster sets them (or the class's defaults).
fn current_image(
    ops: &[ImageOp],
    variables: &[&str],
    template: Option<&Value>,
    (class, cluster): (&Value, &Value),
    machine: Option<usize>,
) -> Option<Value> {
    let mut built = template.and_then(|t| get(t, &["spec", "template", "spec", "image"]).cloned());
    for (op, variable) in ops.iter().zip(variables) {
        let (name, inside) = split_variable(variable);
        let list = variable_list(machine, cluster, name);
        let whole = variable_value(cluster, &list, name)
            .cloned()
            .or_else(|| class_default(class, name));
        let Some(value) = whole.as_ref().and_then(|w| get(w, &inside)).cloned() else {
            continue;
        };
        if op.below.is_empty() {
            built = Some(value);
        } else {
            let keys: Vec<&str> = op.below.iter().map(String::as_str).collect();
            set(
                built.get_or_insert_with(|| Value::Mapping(Mapping::new())),
                &keys,
                value,
            );
        }
    }
    built
}

/// The value each variable must take so that the patches build `image`; refused when they
/// cannot.
fn wanted_values<'v>(
    req: &Context,
    slot: &Slot,
    ops: &[ImageOp],
    variables: &[&'v str],
    class: &Value,
    image: &Value,
) -> Result<Vec<(&'v str, Value)>, Refusal> {
    let class_name = describe(class);
    // What the patches will build, checked against the new image before anything is set.
    let mut built: Option<Value> = None;
    let mut wanted = Vec::new();
    for (op, variable) in ops.iter().zip(variables) {
        let keys: Vec<&str> = op.below.iter().map(String::as_str).collect();
        let value = get(image, &keys).cloned().ok_or_else(|| {
            Refusal::Upgrade(format!(
                "{class_name}: patch `{}` sets image/{} of {} from `{variable}`, but the new image has no such field (it is {}); choose the image kind with --image-api",
                op.patch,
                op.below.join("/"),
                slot.what,
                image_kind(image)
            ))
        })?;
        match (&mut built, keys.is_empty()) {
            (b, true) => *b = Some(value.clone()),
            (None, false) => built = Some(template_image(req, slot, class, op)?),
            _ => {}
        }
        if !keys.is_empty() {
            set(built.as_mut().expect("set above"), &keys, value.clone());
        }
        wanted.push((*variable, value));
    }
    if built.as_ref() != Some(image) {
        return Err(Refusal::Upgrade(format!(
            "{class_name}: the image of {} is built from its template's image plus variables ({}), and the new image differs in fields those variables do not set; the class's template must change too",
            slot.what,
            wanted
                .iter()
                .map(|(v, _)| format!("`{v}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(wanted)
}

fn image_kind(image: &Value) -> String {
    image
        .as_mapping()
        .and_then(|m| m.keys().next())
        .and_then(Value::as_str)
        .map(|k| format!("a `{k}` image"))
        .unwrap_or_else(|| "empty".into())
}

/// The image section of the slot's template as the input holds it.
fn template_image(
    req: &Context,
    slot: &Slot,
    class: &Value,
    op: &ImageOp,
) -> Result<Value, Refusal> {
    let name = slot.template_name();
    let ns = str_at(class, &["metadata", "namespace"]);
    let Some(template) = find(req.objects, TEMPLATE_KIND, name, ns) else {
        return Err(Refusal::Upgrade(format!(
            "{}: patch `{}` sets only image/{} of {}; the rest comes from AzureMachineTemplate `{name}`, which the --upgrade input does not hold, so sigcat cannot check it matches the new image; add `azuremachinetemplate/{name}` to the `kubectl get{} ... -o yaml` that made the input",
            describe(class),
            op.patch,
            op.below.join("/"),
            slot.what,
            ns.map(|n| format!(" -n {n}")).unwrap_or_default()
        )));
    };
    get(template, &["spec", "template", "spec", "image"])
        .cloned()
        .ok_or_else(|| {
            Refusal::Upgrade(format!(
                "{}: patch `{}` sets only image/{} of {}, and AzureMachineTemplate `{name}` has no image for the rest; the patch alone cannot make a whole image: make it set the whole image, or give the template one",
                describe(class),
                op.patch,
                op.below.join("/"),
                slot.what
            ))
        })
}

/// `image.computeGallery.version` → (`image`, [`computeGallery`, `version`]).
fn split_variable(variable: &str) -> (&str, Vec<&str>) {
    let mut parts = variable.split('.');
    let name = parts.next().unwrap_or(variable);
    (name, parts.collect())
}

/// The list (a path in the Cluster) a machine reads variable `name` from: its override when
/// that holds the variable, else the Cluster's own variables.
fn variable_list(machine: Option<usize>, cluster: &Value, name: &str) -> Vec<String> {
    let index = machine.map(|i| i.to_string());
    let overrides: Vec<&str> = match &index {
        None => vec!["spec", "topology", "controlPlane", "variables", "overrides"],
        Some(i) => vec![
            "spec",
            "topology",
            "workers",
            "machineDeployments",
            i,
            "variables",
            "overrides",
        ],
    };
    let holds = get(cluster, &overrides)
        .and_then(Value::as_sequence)
        .is_some_and(|l| l.iter().any(|e| str_at(e, &["name"]) == Some(name)));
    let path: &[&str] = if holds {
        &overrides
    } else {
        &["spec", "topology", "variables"]
    };
    path.iter().map(|s| s.to_string()).collect()
}

fn variable_value<'a>(cluster: &'a Value, list: &[String], name: &str) -> Option<&'a Value> {
    let keys: Vec<&str> = list.iter().map(String::as_str).collect();
    get(cluster, &keys)?
        .as_sequence()?
        .iter()
        .find(|e| str_at(e, &["name"]) == Some(name))
        .and_then(|e| get(e, &["value"]))
}

fn set_variable(
    cluster: &mut Value,
    list: &[String],
    name: &str,
    inside: &[&str],
    value: Value,
    class: &Value,
) {
    let keys: Vec<&str> = list.iter().map(String::as_str).collect();
    if get(cluster, &keys).and_then(Value::as_sequence).is_none() {
        set(cluster, &keys, Value::Sequence(Vec::new()));
    }
    let entries = get_mut(cluster, &keys)
        .and_then(Value::as_sequence_mut)
        .expect("just made a sequence");
    let position = entries
        .iter()
        .position(|e| str_at(e, &["name"]) == Some(name));
    let entry = match position {
        Some(i) => &mut entries[i],
        None => {
            // A new entry starts from the class's default, so that setting one field of an
            // object variable keeps the others.
            let default = class_default(class, name).unwrap_or(Value::Null);
            let mut e = Mapping::new();
            e.insert(Value::from("name"), Value::from(name));
            e.insert(Value::from("value"), default);
            entries.push(Value::Mapping(e));
            entries.last_mut().expect("just pushed")
        }
    };
    if inside.is_empty() {
        set(entry, &["value"], value);
    } else {
        let mut path = vec!["value"];
        path.extend_from_slice(inside);
        set(entry, &path, value);
    }
}

fn class_default(class: &Value, name: &str) -> Option<Value> {
    get(class, &["spec", "variables"])?
        .as_sequence()?
        .iter()
        .find(|v| str_at(v, &["name"]) == Some(name))
        .and_then(|v| get(v, &["schema", "openAPIV3Schema", "default"]))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }

    fn md_slot(class: &str) -> Slot {
        Slot {
            what: String::new(),
            ref_path: Vec::new(),
            reference: yaml(
                "{apiVersion: infrastructure.cluster.x-k8s.io/v1beta1, kind: AzureMachineTemplate, name: t}",
            ),
            md_class: Some(class.into()),
            md_indexes: vec![0],
        }
    }

    /// The cases of CAPI's matchesSelector: exact, `*`, `prefix*`, `*suffix`; apiVersion and
    /// kind must be the template's.
    #[test]
    fn selectors_match_as_the_topology_controller_matches_them() {
        let definition = |names: &str, api: &str| {
            yaml(&format!(
                "selector: {{apiVersion: {api}, kind: AzureMachineTemplate, matchResources: {{machineDeploymentClass: {{names: {names}}}}}}}"
            ))
        };
        let v1 = "infrastructure.cluster.x-k8s.io/v1beta1";
        let slot = md_slot("linux-worker");
        for (names, want) in [
            ("[linux-worker]", true),
            ("['*']", true),
            ("['linux-*']", true),
            ("['*-worker']", true),
            ("['*-pool']", false),
            ("[other]", false),
            ("['Linux-worker']", false),
        ] {
            assert_eq!(selects(&definition(names, v1), &slot), want, "{names}");
        }
        let other_version = definition("[linux-worker]", "infrastructure.cluster.x-k8s.io/v1beta2");
        assert!(!selects(&other_version, &slot));
        let control_plane = Slot {
            md_class: None,
            ..md_slot("x")
        };
        let cp = yaml(&format!(
            "selector: {{apiVersion: {v1}, kind: AzureMachineTemplate, matchResources: {{controlPlane: true}}}}"
        ));
        assert!(selects(&cp, &control_plane));
        assert!(!selects(&cp, &slot));
    }

    #[test]
    fn patch_paths_relative_to_the_image() {
        assert_eq!(below_image("/spec/template/spec/image"), Some(Some(vec![])));
        assert_eq!(
            below_image("/spec/template/spec/image/computeGallery/version"),
            Some(Some(vec!["computeGallery".into(), "version".into()]))
        );
        assert_eq!(
            below_image("/spec/template/spec/image/a~1b~0c"),
            Some(Some(vec!["a/b~c".into()]))
        );
        assert_eq!(below_image("/spec/template/spec"), Some(None));
        assert_eq!(below_image("/spec"), Some(None));
        assert_eq!(below_image("/spec/template/spec/imageX"), None);
        assert_eq!(below_image("/spec/template/spec/vmSize"), None);
    }
}
