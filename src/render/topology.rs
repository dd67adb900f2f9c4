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
use super::upgrade::{Request, check_step, version_of};
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
    /// New template names the changes refer to.
    pub(crate) used_templates: Vec<String>,
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

pub(crate) fn plan(req: &Request) -> Result<Plan, Refusal> {
    let mut plan = Plan::default();
    let mut classes: Vec<ClassEdit> = Vec::new();
    for cluster in req.objects.iter().filter(|o| is_topology_cluster(o)) {
        plan_cluster(req, cluster, &mut classes, &mut plan)?;
    }
    let edited: Vec<ClassEdit> = classes.into_iter().filter(|c| c.refs_changed).collect();
    match req.new_class {
        Some(name) => {
            let [class] = &edited[..] else {
                return Err(Refusal::Upgrade(if edited.is_empty() {
                    "--new-class: no ClusterClass needs a change (the images come from variables), so there is no new revision to make".into()
                } else {
                    "--new-class names one new ClusterClass, but the input's Clusters use several; upgrade them one class at a time".into()
                }));
            };
            if req.objects.iter().any(|o| {
                str_at(o, &["kind"]) == Some("ClusterClass")
                    && str_at(o, &["metadata", "name"]) == Some(name)
            }) {
                return Err(Refusal::Upgrade(format!(
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

fn plan_cluster(
    req: &Request,
    cluster: &Value,
    classes: &mut Vec<ClassEdit>,
    plan: &mut Plan,
) -> Result<(), Refusal> {
    let who = describe(cluster);
    let v2 = is_v1beta2(cluster);
    let class_name_path: &[&str] = if v2 {
        &["spec", "topology", "classRef", "name"]
    } else {
        &["spec", "topology", "class"]
    };
    let class_ns_path: &[&str] = if v2 {
        &["spec", "topology", "classRef", "namespace"]
    } else {
        &["spec", "topology", "classNamespace"]
    };
    let class_name = str_at(cluster, class_name_path).ok_or_else(|| {
        Refusal::Upgrade(format!(
            "{who} has spec.topology but no {}",
            class_name_path.join(".")
        ))
    })?;
    let namespace = str_at(cluster, class_ns_path).or(str_at(cluster, &["metadata", "namespace"]));

    let current = version_of(cluster, &["spec", "topology", "version"])?;
    check_step(cluster, &current, req.target, true)?;
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
    check_class_versions(class, req.target)?;

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
        let ops = image_ops(class, &slot, plan);
        if ops.is_empty() {
            let new_name = replace_template(req, &slot, class)?;
            let class_change = &mut classes[index];
            let reference = get_mut(&mut class_change.change.changed, &slot.ref_path_strs())
                .expect("the slot's reference was read from this class");
            set(reference, &["name"], Value::from(new_name.as_str()));
            class_change.refs_changed = true;
            any_ref_changed = true;
            plan.used_templates.push(new_name);
        } else {
            let notes = &mut plan.notes;
            checks.extend(set_variables(
                req,
                &slot,
                &ops,
                class,
                &mut change.changed,
                notes,
            )?);
        }
    }
    // One variable may feed several slots; once all are set, each must still read its image.
    for check in &checks {
        let got = variable_value(&change.changed, &check.list, &check.name).and_then(|v| {
            get(
                v,
                &check.inside.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        });
        if got != Some(&check.value) {
            return Err(Refusal::Upgrade(format!(
                "{}: variable `{}` feeds the images of several machine kinds in different ways, so no single value fits them all; set it by hand",
                describe(class),
                check.name
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
        let kind = str_at(&slot.reference, &["kind"]).unwrap_or("?");
        if kind != TEMPLATE_KIND {
            return Err(Refusal::Upgrade(format!(
                "{}: {} uses a {kind}, not an AzureMachineTemplate",
                describe(class),
                slot.what
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
fn image_ops(class: &Value, slot: &Slot, plan: &mut Plan) -> Vec<ImageOp> {
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
                if get(patch, &["enabledIf"]).is_some() {
                    plan.notes.push(format!(
                        "{}: patch `{name}` sets the image of {} only when its enabledIf holds; sigcat assumed it does",
                        describe(class),
                        slot.what
                    ));
                }
                ops.push(ImageOp {
                    patch: name.clone(),
                    below: below.unwrap_or_default(),
                    source,
                });
            }
        }
    }
    ops
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

/// The new name of the template a slot uses, from the `--from` copies.
fn replace_template(req: &Request, slot: &Slot, class: &Value) -> Result<String, Refusal> {
    let old = slot.template_name();
    req.replacements
        .iter()
        .find(|(from, _)| from == old)
        .map(|(_, new)| new.clone())
        .ok_or_else(|| {
            let ns = str_at(class, &["metadata", "namespace"])
                .map(|n| format!(" -n {n}"))
                .unwrap_or_default();
            Refusal::Upgrade(format!(
                "{} takes the image of {} from AzureMachineTemplate `{old}`, and no --from copy of it was given, so its machines would roll to v{} on the old image; add `--from {old}.yaml` (from `kubectl get azuremachinetemplate {old}{ns} -o yaml`)",
                describe(class),
                slot.what,
                req.target.bare()
            ))
        })
}

/// A variable value a slot must read once every variable is set.
struct Check {
    list: Vec<String>,
    name: String,
    inside: Vec<String>,
    value: Value,
}

/// Sets the variables a slot's image patches read, where the slot reads them: an override
/// of the control plane or of the MachineDeployment, else the Cluster's variables.
fn set_variables(
    req: &Request,
    slot: &Slot,
    ops: &[ImageOp],
    class: &Value,
    cluster: &mut Value,
    notes: &mut Vec<String>,
) -> Result<Vec<Check>, Refusal> {
    let class_name = describe(class);
    // What the patches will build, checked against the new image before anything is set.
    let mut built: Option<Value> = None;
    let mut wanted = Vec::new();
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
        let keys: Vec<&str> = op.below.iter().map(String::as_str).collect();
        let value = get(req.image, &keys).cloned().ok_or_else(|| {
            Refusal::Upgrade(format!(
                "{class_name}: patch `{}` sets image/{} of {} from `{variable}`, but the new image has no such field (it is {}); choose the image kind with --image-api",
                op.patch,
                op.below.join("/"),
                slot.what,
                image_kind(req.image)
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
        wanted.push((variable.clone(), value));
    }
    if built.as_ref() != Some(req.image) {
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
    let mut checks = Vec::new();
    for (variable, value) in wanted {
        let (name, inside) = split_variable(&variable);
        for list in variable_lists(slot, cluster, name) {
            if list.iter().any(|k| k == "overrides") {
                // An override usually exists because that machine kind runs another image.
                notes.push(format!(
                    "{}: {} had its own `{name}` (a variables override); it now gets the same new image as the rest. If it needs another image (Windows, GPU), set that override by hand",
                    describe(cluster),
                    slot.what
                ));
            }
            set_variable(cluster, &list, name, &inside, value.clone(), class);
            checks.push(Check {
                list,
                name: name.to_string(),
                inside: inside.iter().map(|s| s.to_string()).collect(),
                value: value.clone(),
            });
        }
    }
    Ok(checks)
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
    req: &Request,
    slot: &Slot,
    class: &Value,
    op: &ImageOp,
) -> Result<Value, Refusal> {
    let name = slot.template_name();
    let ns = str_at(class, &["metadata", "namespace"]);
    find(req.objects, TEMPLATE_KIND, name, ns)
        .and_then(|t| get(t, &["spec", "template", "spec", "image"]))
        .cloned()
        .ok_or_else(|| {
            Refusal::Upgrade(format!(
                "{}: patch `{}` sets only image/{} of {}; the rest comes from AzureMachineTemplate `{name}`, which the --upgrade input does not hold, so sigcat cannot check it matches the new image; add `azuremachinetemplate/{name}` to the `kubectl get{} ... -o yaml` that made the input",
                describe(class),
                op.patch,
                op.below.join("/"),
                slot.what,
                ns.map(|n| format!(" -n {n}")).unwrap_or_default()
            ))
        })
}

/// `image.computeGallery.version` → (`image`, [`computeGallery`, `version`]).
fn split_variable(variable: &str) -> (&str, Vec<&str>) {
    let mut parts = variable.split('.');
    let name = parts.next().unwrap_or(variable);
    (name, parts.collect())
}

/// The lists (paths in the Cluster) a slot reads variable `name` from: an override that
/// holds it, else the Cluster's own variables.
fn variable_lists(slot: &Slot, cluster: &Value, name: &str) -> Vec<Vec<String>> {
    let owned = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let holds = |path: &[String]| {
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        get(cluster, &keys)
            .and_then(Value::as_sequence)
            .is_some_and(|l| l.iter().any(|e| str_at(e, &["name"]) == Some(name)))
    };
    let cluster_level = owned(&["spec", "topology", "variables"]);
    let overrides: Vec<Vec<String>> = match &slot.md_class {
        None => vec![owned(&[
            "spec",
            "topology",
            "controlPlane",
            "variables",
            "overrides",
        ])],
        Some(_) => slot
            .md_indexes
            .iter()
            .map(|i| {
                owned(&[
                    "spec",
                    "topology",
                    "workers",
                    "machineDeployments",
                    &i.to_string(),
                    "variables",
                    "overrides",
                ])
            })
            .collect(),
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    for o in overrides {
        let list = if holds(&o) { o } else { cluster_level.clone() };
        if !out.contains(&list) {
            out.push(list);
        }
    }
    out
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
