//! Which record each machine slot gets, when one render brings several images (the Linux and
//! Windows builds of one pipeline run, a GPU image, …).
//!
//! A slot is one kind of machine: the control plane, a MachineDeployment or ClusterClass worker
//! class, a variables override. Its template says which OS it boots (`osDisk.osType`) and its
//! image often says which image definition or distro it runs; the record it gets must boot the
//! same OS and, where the image says so, be of the same definition or distro, so a pool on
//! `capi-ubuntu-2204` moves to the newest `capi-ubuntu-2204` record and never silently to
//! another distro. The operator decides otherwise per slot: `--image-for SLOT=WHICH` (a change
//! of distro) or `--keep-image SLOT` (the slot keeps its image while its version moves).

use super::Refusal;
use super::image_names::{
    Current, answers_to, capz_default, current_of, definition, describe_default, describe_image,
    describe_record, gallery_of, in_gallery, of_family, os_of_record, os_type_of,
};
use super::template::{TemplateOptions, new_template};
use crate::record::Record;
use crate::record::kubernetes::KubeVersion;
use crate::yaml::{get, str_at};
use serde_norway::Value;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One kind of machine, as the choice of its record sees it.
#[derive(Debug, Clone)]
pub struct Slot {
    /// What the plan and errors call it ("MachineDeployment `md-gpu`").
    pub what: String,
    /// The names `--image-for` and `--keep-image` accept for it; the first is the one shown.
    pub names: Vec<String>,
    /// Names of only some of the machines a shared template serves: a flag with one of them
    /// is refused (it would change the others too).
    pub partial_names: Vec<String>,
    /// Names that may name several slots at once (a worker class whose MachineDeployments
    /// each read their own variables).
    pub shared_names: Vec<String>,
    /// The OS its template boots; `None` when the template is not in the input.
    pub os_type: Option<String>,
    /// The template that says so, for the error when a chosen record boots another OS.
    pub template: String,
    /// The `image:` it runs today; `None` for CAPZ's default image or when unknown.
    pub image: Option<Value>,
}

impl Slot {
    /// A slot whose machines run `template` (an AzureMachineTemplate).
    pub fn of_template(
        template: &Value,
        what: String,
        names: Vec<String>,
    ) -> Result<Slot, Refusal> {
        Ok(Slot {
            what,
            names,
            partial_names: Vec::new(),
            shared_names: Vec::new(),
            os_type: Some(os_type_of(template)?),
            template: str_at(template, &["metadata", "name"])
                .unwrap_or("(unnamed)")
                .to_string(),
            image: get(template, &["spec", "template", "spec", "image"]).cloned(),
        })
    }

    fn shown_name(&self) -> &str {
        self.names.first().map(String::as_str).unwrap_or("SLOT")
    }
}

/// What a slot gets.
#[derive(Debug, Clone, Copy)]
pub enum Choice<'r> {
    /// This record's image.
    Record(&'r Record),
    /// Its current image (`--keep-image`).
    Keep,
}

/// One line of the plan a reviewer reads: a slot, its image before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLine {
    /// The slot.
    pub slot: String,
    /// Its image today.
    pub old: String,
    /// Its image after the upgrade (or that it keeps its image).
    pub new: String,
}

impl PlanLine {
    /// The line for `slot` and what it got.
    pub fn new(slot: &Slot, choice: Choice) -> PlanLine {
        let old = match (&slot.image, &slot.os_type) {
            // Which default CAPZ picks depends on the OS.
            (None, Some(os)) => describe_default(os),
            _ => describe_image(slot.image.as_ref()),
        };
        let new = match choice {
            Choice::Keep => "keeps its image (--keep-image)".to_string(),
            Choice::Record(r) => format!("{} (build `{}`)", describe_record(r), r.build),
        };
        PlanLine {
            slot: slot.what.clone(),
            old,
            new,
        }
    }
}

/// The records of one render and the operator's per-slot choices.
pub struct Selector<'r> {
    /// Records with an image, in input order.
    records: Vec<&'r Record>,
    /// An upgrade's Kubernetes version: the newest of the records.
    target: Option<KubeVersion>,
    image_for: Vec<(String, String)>,
    keep: Vec<String>,
    /// (flag name, the slot it matched, whether through a shared name), to report flags that
    /// matched nothing or several slots; and every slot's shown name.
    matched: RefCell<Vec<(String, String, bool)>>,
    seen: RefCell<Vec<String>>,
}

impl<'r> Selector<'r> {
    /// A selector over `records` (those with an image are used). For an upgrade every record
    /// must know its Kubernetes version, and slots get only records of the newest one.
    pub fn new(
        records: &'r [Record],
        image_for: Vec<(String, String)>,
        keep: Vec<String>,
        upgrade: bool,
    ) -> Result<Selector<'r>, Refusal> {
        let records: Vec<&Record> = records.iter().filter(|r| r.has_image()).collect();
        let mut target = None;
        // Without an upgrade the version is not required, but one render still serves one
        // Kubernetes version: the newest, when every record knows its own.
        if upgrade || records.iter().all(|r| kube(r).is_some()) {
            for r in &records {
                let version = kube(r).ok_or_else(|| Refusal::UnknownKubernetesVersion {
                    build: r.build.clone(),
                })?;
                if target.as_ref().is_none_or(|t| &version > t) {
                    target = Some(version);
                }
            }
        }
        Ok(Selector {
            records,
            target,
            image_for,
            keep,
            matched: RefCell::default(),
            seen: RefCell::default(),
        })
    }

    /// The Kubernetes version an upgrade moves to.
    pub fn target(&self) -> Option<&KubeVersion> {
        self.target.as_ref()
    }

    /// The records a slot may get: those of the target version.
    fn pool(&self) -> Vec<&'r Record> {
        self.records
            .iter()
            .copied()
            .filter(|r| self.target.is_none() || kube(r) == self.target)
            .collect()
    }

    /// The operator's flags that name this slot: (keep, explicit choice).
    fn flags_for(&self, slot: &Slot) -> Result<(bool, Option<&str>), Refusal> {
        self.seen.borrow_mut().push(slot.shown_name().to_string());
        let names = |n: &String| slot.names.contains(n);
        let keep: Vec<&String> = self.keep.iter().filter(|n| names(n)).collect();
        let chosen: Vec<&(String, String)> =
            self.image_for.iter().filter(|(n, _)| names(n)).collect();
        let used: Vec<&String> = keep
            .iter()
            .copied()
            .chain(chosen.iter().map(|(n, _)| n))
            .collect();
        if let Some(part) = used.iter().find(|n| slot.partial_names.contains(n)) {
            return Err(Refusal::Choices(format!(
                "`{part}` is one of several machines that share template `{}` ({}): a choice for it would change the others too; name the template `{}` to choose for all of them, or give `{part}` a template of its own",
                slot.template, slot.what, slot.template
            )));
        }
        self.matched.borrow_mut().extend(used.iter().map(|n| {
            (
                n.to_string(),
                slot.what.clone(),
                slot.shared_names.contains(n),
            )
        }));
        let distinct: Vec<&str> = {
            let mut v: Vec<&str> = chosen.iter().map(|(_, w)| w.as_str()).collect();
            v.sort();
            v.dedup();
            v
        };
        if (!keep.is_empty() && !distinct.is_empty()) || distinct.len() > 1 {
            return Err(Refusal::Choices(format!(
                "{} is named by more than one choice ({}); its names are {}, and it takes one",
                slot.what,
                keep.iter()
                    .map(|n| format!("--keep-image {n}"))
                    .chain(chosen.iter().map(|(n, w)| format!("--image-for {n}={w}")))
                    .collect::<Vec<_>>()
                    .join(", "),
                quoted(&slot.names)
            )));
        }
        Ok((!keep.is_empty(), distinct.first().copied()))
    }

    /// Whether the operator said this slot keeps its image.
    pub fn keeps(&self, slot: &Slot) -> Result<bool, Refusal> {
        Ok(self.flags_for(slot)?.0)
    }

    /// The record for `slot`: the operator's choice, else the newest record of its OS and (where
    /// its image says) its definition or distro; refused when none fits or several could.
    pub fn choose(&self, slot: &Slot) -> Result<Choice<'r>, Refusal> {
        let (keep, explicit) = self.flags_for(slot)?;
        if keep {
            return Ok(Choice::Keep);
        }
        let pool = self.pool();
        let Some(os) = slot.os_type.as_deref() else {
            // Without its template sigcat cannot tell Linux from Windows: only a record of
            // the distro it runs now is safe.
            if explicit.is_some() || !matches!(current_of(slot.image.as_ref()), Current::Names(_)) {
                return Err(Refusal::Upgrade(format!(
                    "{} boots an OS sigcat cannot see: its template is not in the input; add `azuremachinetemplate/{}` to the `kubectl get ... -o yaml` that made the input",
                    slot.what, slot.template
                )));
            }
            return self.matching(slot, &pool, None);
        };
        if let Some(which) = explicit {
            let fits: Vec<&Record> = pool
                .iter()
                .copied()
                .filter(|r| answers_to(r, which))
                .collect();
            if fits.is_empty() {
                return Err(Refusal::Choices(format!(
                    "--image-for {}={which}: no record{} is that build, image definition or distro; the records are {}",
                    slot.shown_name(),
                    self.at_target(),
                    self.list(&self.records)
                )));
            }
            let record = prefer(&fits, slot)?;
            check_os(slot, record)?;
            return Ok(Choice::Record(record));
        }
        self.matching(slot, &pool, Some(os))
    }

    /// The record that fits `slot` by its OS and what its image runs.
    fn matching(
        &self,
        slot: &Slot,
        pool: &[&'r Record],
        os: Option<&str>,
    ) -> Result<Choice<'r>, Refusal> {
        let same_os = |r: &Record| os.is_none_or(|os| os_of_record(r).eq_ignore_ascii_case(os));
        let runs = match (os, &slot.image) {
            (Some(os), None) => describe_default(os),
            (Some(os), Some(_)) => format!("{} ({os})", describe_image(slot.image.as_ref())),
            (None, _) => describe_image(slot.image.as_ref()),
        };
        let fits: Vec<&Record> = match current_of(slot.image.as_ref()) {
            Current::Unknown => {
                return Err(Refusal::Choices(format!(
                    "{} runs {runs}, which does not say which distro it is; choose its record with --image-for {}=BUILD, or keep it with --keep-image {}",
                    slot.what,
                    slot.shown_name(),
                    slot.shown_name()
                )));
            }
            Current::Names(family) => {
                let fits: Vec<&Record> = pool
                    .iter()
                    .copied()
                    .filter(|r| of_family(r, &family) && same_os(r))
                    .collect();
                if fits.is_empty() {
                    // A record of its distro that boots the other OS: say exactly that.
                    if let Some(r) = pool.iter().find(|r| of_family(r, &family)) {
                        check_os(slot, r)?;
                    }
                }
                // Its own definition before another of the same distro.
                let exact: Vec<&Record> = fits
                    .iter()
                    .copied()
                    .filter(|r| definition(r).is_some_and(|d| d.eq_ignore_ascii_case(&family)))
                    .collect();
                if exact.is_empty() { fits } else { exact }
            }
            // CAPZ's default image is a definition too: a record of its distro and generation.
            Current::Default => {
                let family = capz_default(os.unwrap_or("Linux"));
                pool.iter()
                    .copied()
                    .filter(|r| of_family(r, family) && same_os(r))
                    .collect()
            }
        };
        if fits.is_empty() {
            return Err(Refusal::NoRecordForSlot(Box::new(
                crate::error::NoRecordFits {
                    slot: slot.what.clone(),
                    name: slot.shown_name().to_string(),
                    runs,
                    records: format!("{}{}", self.list(&self.records), self.at_target()),
                },
            )));
        }
        Ok(Choice::Record(prefer(&fits, slot)?))
    }

    /// Flags that named no slot of this render: the operator's mistake, refused.
    pub fn check_all_flags_used(&self) -> Result<(), Refusal> {
        let matched_slots = self.matched.borrow();
        for (name, _, _) in matched_slots.iter() {
            let mut slots: Vec<&String> = matched_slots
                .iter()
                .filter(|(n, _, shared)| n == name && !shared)
                .map(|(_, what, _)| what)
                .collect();
            slots.sort();
            slots.dedup();
            let shared = matched_slots.iter().any(|(n, _, s)| n == name && *s);
            if slots.len() > 1 || (shared && !slots.is_empty()) {
                return Err(Refusal::Choices(format!(
                    "`{name}` names more than one machine slot ({}); name each by its template, or as CLUSTER/NAME",
                    matched_slots
                        .iter()
                        .filter(|(n, _, _)| n == name)
                        .map(|(_, what, _)| what.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
        }
        let matched: Vec<&String> = matched_slots.iter().map(|(n, _, _)| n).collect();
        let unused: Vec<String> = self
            .keep
            .iter()
            .filter(|n| !matched.contains(n))
            .map(|n| format!("--keep-image {n}"))
            .chain(
                self.image_for
                    .iter()
                    .filter(|(n, _)| !matched.contains(&n))
                    .map(|(n, w)| format!("--image-for {n}={w}")),
            )
            .collect();
        if unused.is_empty() {
            return Ok(());
        }
        let mut seen = self.seen.borrow().clone();
        seen.sort();
        seen.dedup();
        Err(Refusal::Choices(format!(
            "{} named no machine slot of this render; the slots are {}",
            unused.join(", "),
            if seen.is_empty() {
                "none".to_string()
            } else {
                quoted(&seen)
            }
        )))
    }

    fn at_target(&self) -> String {
        self.target
            .as_ref()
            .map(|t| format!(" for Kubernetes v{} (the newest of the records)", t.bare()))
            .unwrap_or_default()
    }

    fn list(&self, records: &[&Record]) -> String {
        if records.is_empty() {
            return "none".into();
        }
        records
            .iter()
            .map(|r| {
                format!(
                    "`{}` ({}, {}{})",
                    r.build,
                    r.os_type.as_deref().unwrap_or("OS not recorded"),
                    describe_record(r),
                    kube(r)
                        .map(|v| format!(", v{}", v.bare()))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A template as references find it: its name, in its namespace (when known).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TemplateKey {
    /// `metadata.namespace` (references without one mean their object's).
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl TemplateKey {
    /// The key of an AzureMachineTemplate object.
    pub fn of(template: &Value) -> TemplateKey {
        TemplateKey {
            namespace: str_at(template, &["metadata", "namespace"]).map(str::to_string),
            name: str_at(template, &["metadata", "name"])
                .unwrap_or("(unnamed)")
                .to_string(),
        }
    }

    /// Whether a reference to `name` in `namespace` finds this template (a namespace nobody
    /// wrote down only matches a reference without one: applied, they would land in
    /// different namespaces).
    pub fn finds(&self, namespace: Option<&str>, name: &str) -> bool {
        self.name == name && self.namespace.as_deref() == namespace
    }
}

/// New templates for the `--from` copies, each with the record its slot gets.
#[derive(Debug, Default)]
pub struct Copies {
    /// The new templates, in the order of the copies.
    pub templates: Vec<Value>,
    /// (old template, new name) of each copy.
    pub replacements: Vec<(TemplateKey, String)>,
    /// Templates whose slots keep their image.
    pub kept: Vec<TemplateKey>,
    /// One line per copy.
    pub plan: Vec<PlanLine>,
}

/// Who uses a template: the names a flag may give its slot, and what they are.
#[derive(Debug, Default, Clone)]
pub struct Users {
    /// Each machine kind that runs it, by its names (a MachineDeployment's name; a
    /// KubeadmControlPlane's and `control-plane`).
    pub machines: Vec<Vec<String>>,
    /// Worker classes whose template it is (a name for all their machines).
    pub classes: Vec<String>,
    /// "MachineDeployment `md-0`", for the plan.
    pub what: Vec<String>,
}

/// Copies each current template with the image of the record its slot gets. `users` names who
/// runs each template; `input` is the rest of the input, where a template must not be
/// another version of one being copied.
pub fn copy_templates(
    currents: &[&Value],
    users: &BTreeMap<TemplateKey, Users>,
    input: &[Value],
    selector: &Selector,
    options: &TemplateOptions,
) -> Result<Copies, Refusal> {
    let mut out = Copies::default();
    for current in currents {
        let key = TemplateKey::of(current);
        let name = key.name.clone();
        if out.replacements.iter().any(|(old, _)| old == &key) || out.kept.contains(&key) {
            return Err(Refusal::Choices(format!(
                "template `{name}` is given twice (--from); give each template once"
            )));
        }
        if let Some(other) = input.iter().find(|o| {
            str_at(o, &["kind"]) == Some(super::template::AMT_KIND)
                && TemplateKey::of(o) == key
                && get(o, &["spec"]) != get(current, &["spec"])
        }) {
            return Err(Refusal::Upgrade(format!(
                "{} is in the --upgrade input and in a --from file with different specs; give the current one once (the --from file, or the --upgrade input)",
                crate::yaml::describe(other)
            )));
        }
        let used = users.get(&key).cloned().unwrap_or_default();
        // The users' names first: the one shown is what the operator knows the machines by.
        let mut names: Vec<String> = used.machines.iter().flatten().cloned().collect();
        names.extend(used.classes.iter().cloned());
        names.push(name.clone());
        let what = if used.what.is_empty() {
            format!("template `{name}`")
        } else {
            format!("{}, template `{name}`", used.what.join("; "))
        };
        let mut slot = Slot::of_template(current, what, names)?;
        if used.machines.len() > 1 {
            // The template's own name always names all of them.
            slot.partial_names = used
                .machines
                .iter()
                .flatten()
                .filter(|n| **n != name)
                .cloned()
                .collect();
        }
        let choice = selector.choose(&slot)?;
        out.plan.push(PlanLine::new(&slot, choice));
        match choice {
            Choice::Keep => out.kept.push(key),
            Choice::Record(record) => {
                let new = new_template(record, Some(current), options)?;
                let new_name = str_at(&new, &["metadata", "name"])
                    .unwrap_or_default()
                    .to_string();
                let new_key = TemplateKey::of(&new);
                // Two copies of one name would be one object when applied.
                if let Some((other, _)) = out
                    .replacements
                    .iter()
                    .find(|(old, n)| *n == new_name && old.namespace == new_key.namespace)
                {
                    let message = format!(
                        "the copies of `{}` and `{name}` would both be named `{new_name}`",
                        other.name
                    );
                    return Err(match options.base_name {
                        Some(_) => Refusal::Choices(format!(
                            "{message}: --name gives every copy one name; drop --name when there are several templates"
                        )),
                        None => Refusal::Upgrade(format!("{message}; rename one of them first")),
                    });
                }
                // An AzureMachineTemplate's spec cannot change: one of that name with another
                // spec would be refused by CAPZ, or silently kept by the cluster.
                if let Some(existing) = input.iter().find(|o| {
                    str_at(o, &["kind"]) == Some(super::template::AMT_KIND)
                        && TemplateKey::of(o) == new_key
                        && get(o, &["spec"]) != get(&new, &["spec"])
                }) {
                    return Err(Refusal::Upgrade(format!(
                        "the copy of `{name}` would be named `{new_name}`, and {} already exists with another spec; give the new template another name (--name) or leave that template out",
                        crate::yaml::describe(existing)
                    )));
                }
                out.replacements.push((key, new_name));
                out.templates.push(new);
            }
        }
    }
    Ok(out)
}

/// The newest of `fits`, from the gallery the slot runs on when some are there; refused when
/// the same image (Kubernetes and gallery version) is in several galleries and nothing says
/// which one this cluster uses.
fn prefer<'r>(fits: &[&'r Record], slot: &Slot) -> Result<&'r Record, Refusal> {
    let gallery = slot.image.as_ref().and_then(gallery_of);
    let here: Vec<&Record> = fits
        .iter()
        .copied()
        .filter(|r| gallery.as_ref().is_some_and(|g| in_gallery(r, g)))
        .collect();
    let fits = if here.is_empty() { fits } else { &here[..] };
    let best = newest(fits).expect("fits is not empty");
    let mut twins: Vec<String> = fits
        .iter()
        .filter(|r| kube(r) == kube(best) && version_parts(r) == version_parts(best))
        .filter_map(|r| {
            r.gallery_image
                .as_ref()
                .map(|g| format!("{} ({}/{})", g.gallery, g.subscription_id, g.resource_group))
        })
        .collect();
    twins.sort();
    twins.dedup();
    if twins.len() > 1 {
        return Err(Refusal::Choices(format!(
            "{}: the records hold the same image in several galleries ({}), and its current image is in none of them; give only the record of the gallery this cluster should use",
            slot.what,
            twins.join(", ")
        )));
    }
    Ok(best)
}

/// The OS mismatch of a chosen record and the slot's template, if any.
pub fn check_os(slot: &Slot, record: &Record) -> Result<(), Refusal> {
    let ours = os_of_record(record);
    match slot.os_type.as_deref() {
        Some(theirs) if !theirs.eq_ignore_ascii_case(&ours) => Err(Refusal::OsTypeMismatch(
            Box::new(crate::error::OsMismatch {
                build: record.build.clone(),
                record: ours,
                template_name: slot.template.clone(),
                template: theirs.to_string(),
            }),
        )),
        _ => Ok(()),
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn kube(r: &Record) -> Option<KubeVersion> {
    r.kubernetes_version.as_deref().and_then(KubeVersion::parse)
}

/// The newest record: highest Kubernetes version, then gallery version, then the later one
/// in the input.
fn newest<'r>(records: &[&'r Record]) -> Option<&'r Record> {
    records.iter().copied().max_by(|a, b| {
        kube(a)
            .partial_cmp(&kube(b))
            .unwrap_or(Ordering::Equal)
            .then_with(|| version_parts(a).cmp(&version_parts(b)))
    })
}

fn version_parts(r: &Record) -> Vec<u64> {
    r.gallery_image
        .as_ref()
        .map(|g| {
            g.version
                .split('.')
                .map(|p| p.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BuildResult, GalleryImage, InputFormat, Provenance};

    fn record(
        build: &str,
        os: Option<&str>,
        definition: &str,
        kube: &str,
        version: &str,
    ) -> Record {
        let mut r = Record::new(
            &format!("azure-arm.{build}"),
            BuildResult::Succeeded,
            Provenance {
                source: "test".into(),
                format: InputFormat::Manifest,
                first_line: None,
                last_line: None,
                packer_run_uuid: None,
                manifest: None,
            },
        );
        r.os_type = os.map(str::to_string);
        r.kubernetes_version = Some(kube.into());
        r.gallery_image = Some(GalleryImage {
            id: format!(
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/G/images/{definition}/versions/{version}"
            ),
            subscription_id: "s".into(),
            resource_group: "g".into(),
            gallery: "G".into(),
            image_definition: definition.into(),
            version: version.into(),
            replicated_regions: Vec::new(),
        });
        r
    }

    fn slot(names: &[&str], os: Option<&str>, image: Option<&str>) -> Slot {
        Slot {
            what: format!("slot `{}`", names[0]),
            names: names.iter().map(|n| n.to_string()).collect(),
            partial_names: Vec::new(),
            shared_names: Vec::new(),
            os_type: os.map(str::to_string),
            template: "t".into(),
            image: image.map(|i| serde_norway::from_str(i).unwrap()),
        }
    }

    fn gallery(name: &str) -> String {
        format!("{{computeGallery: {{gallery: G, name: {name}, version: '1.29.7'}}}}")
    }

    fn records() -> Vec<Record> {
        vec![
            record(
                "sig-ubuntu-2404",
                Some("Linux"),
                "capi-ubuntu-2404",
                "1.30.5",
                "1.30.5",
            ),
            record(
                "sig-ubuntu-2204",
                Some("Linux"),
                "capi-ubuntu-2204",
                "1.30.5",
                "1.30.5",
            ),
            record(
                "sig-ubuntu-2204",
                Some("Linux"),
                "capi-ubuntu-2204",
                "1.30.5",
                "1.30.10",
            ),
            record(
                "sig-ubuntu-2204",
                Some("Linux"),
                "capi-ubuntu-2204",
                "1.29.9",
                "1.29.9",
            ),
            record(
                "sig-windows-2022-containerd",
                Some("Windows"),
                "capi-windows-2022-containerd",
                "1.30.5",
                "1.30.5",
            ),
            record(
                "sig-windows-2019-containerd",
                Some("Windows"),
                "capi-windows-2019-containerd",
                "1.29.9",
                "1.29.9",
            ),
        ]
    }

    fn chosen(selector: &Selector, slot: &Slot) -> String {
        match selector.choose(slot) {
            Ok(Choice::Record(r)) => {
                format!("{} {}", r.build, r.gallery_image.as_ref().unwrap().version)
            }
            Ok(Choice::Keep) => "keep".into(),
            Err(e) => format!("refused: {e}"),
        }
    }

    #[test]
    fn each_slot_gets_the_newest_record_of_its_os_and_definition_at_the_target_version() {
        let records = records();
        let s = Selector::new(&records, vec![], vec![], true).unwrap();
        assert_eq!(s.target().unwrap().bare(), "1.30.5");
        // Same definition; the newer gallery version of two.
        assert_eq!(
            chosen(
                &s,
                &slot(&["a"], Some("Linux"), Some(&gallery("capi-ubuntu-2204")))
            ),
            "sig-ubuntu-2204 1.30.10"
        );
        // CAPZ's community gallery `capi-ubun2-2404` is Ubuntu 24.04 Gen2: not the Gen1
        // `capi-ubuntu-2404`, but image-builder's `capi-ubuntu-2404-gen2`; and the reverse.
        assert!(
            chosen(
                &s,
                &slot(&["a"], Some("Linux"), Some(&gallery("capi-ubun2-2404")))
            )
            .contains("no record fits")
        );
        let mut gen2 = records.clone();
        gen2.push(record(
            "sig-ubuntu-2404-gen2",
            Some("Linux"),
            "capi-ubuntu-2404-gen2",
            "1.30.5",
            "1.30.5",
        ));
        let s2 = Selector::new(&gen2, vec![], vec![], true).unwrap();
        assert_eq!(
            chosen(
                &s2,
                &slot(&["a"], Some("Linux"), Some(&gallery("capi-ubun2-2404")))
            ),
            "sig-ubuntu-2404-gen2 1.30.5"
        );
        assert_eq!(
            chosen(
                &s2,
                &slot(&["a"], Some("Linux"), Some(&gallery("capi-ubuntu-2404")))
            ),
            "sig-ubuntu-2404 1.30.5"
        );
        // CAPZ's marketplace SKU names the distro too.
        let sku = "{marketplace: {publisher: cncf-upstream, offer: capi, sku: ubuntu-2204-gen1, version: '129.7.1'}}";
        assert_eq!(
            chosen(&s, &slot(&["a"], Some("Linux"), Some(sku))),
            "sig-ubuntu-2204 1.30.10"
        );
        // CAPZ's default Windows image: the one Windows record of the target version.
        assert_eq!(
            chosen(&s, &slot(&["w"], Some("Windows"), None)),
            "sig-windows-2022-containerd 1.30.5"
        );
        assert_eq!(
            chosen(
                &s,
                &slot(
                    &["w"],
                    Some("Windows"),
                    Some(&gallery("capi-win-2022-containerd"))
                )
            ),
            "sig-windows-2022-containerd 1.30.5"
        );
        // A gallery image version id names its definition.
        let id = "{id: /subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/G/images/capi-ubuntu-2404/versions/1}";
        assert_eq!(
            chosen(&s, &slot(&["a"], Some("Linux"), Some(id))),
            "sig-ubuntu-2404 1.30.5"
        );
    }

    #[test]
    fn a_slot_nothing_fits_is_refused_unless_the_operator_chooses() {
        let records = records();
        let s = Selector::new(&records, vec![], vec![], true).unwrap();
        // Only a v1.29 Windows 2019 record: not at the target version.
        let win2019 = slot(
            &["md-win"],
            Some("Windows"),
            Some(&gallery("capi-windows-2019-containerd")),
        );
        let err = chosen(&s, &win2019);
        assert!(
            err.contains("refused")
                && err.contains("--keep-image md-win")
                && err.contains("v1.30.5"),
            "{err}"
        );
        // A GPU definition nobody built.
        let gpu = slot(
            &["md-gpu"],
            Some("Linux"),
            Some(&gallery("capi-ubuntu-2204-gpu")),
        );
        assert!(chosen(&s, &gpu).contains("--image-for md-gpu=BUILD"));
        // CAPZ's default Linux image is Gen2 Ubuntu 24.04 (capi-ubun2-2404): none of these.
        let err = chosen(&s, &slot(&["cp"], Some("Linux"), None));
        assert!(
            err.contains("capi-ubun2-2404") && err.contains("--image-for cp=BUILD"),
            "{err}"
        );

        let s = Selector::new(
            &records,
            vec![
                ("md-gpu".into(), "ubuntu-2404".into()),
                ("cp".into(), "capi-ubuntu-2204".into()),
            ],
            vec!["md-win".into()],
            true,
        )
        .unwrap();
        assert_eq!(chosen(&s, &win2019), "keep");
        assert_eq!(chosen(&s, &gpu), "sig-ubuntu-2404 1.30.5");
        assert_eq!(
            chosen(&s, &slot(&["x", "cp"], Some("Linux"), None)),
            "sig-ubuntu-2204 1.30.10"
        );
        s.check_all_flags_used().unwrap();
    }

    #[test]
    fn flags_that_name_nothing_or_conflict_are_refused() {
        let records = records();
        let s = Selector::new(
            &records,
            vec![("md-1".into(), "nope".into())],
            vec!["md-2".into()],
            true,
        )
        .unwrap();
        let err = s.check_all_flags_used().unwrap_err().to_string();
        assert!(
            err.contains("--image-for md-1=nope") && err.contains("--keep-image md-2"),
            "{err}"
        );
        assert!(
            chosen(&s, &slot(&["md-1"], Some("Linux"), None))
                .contains("no record for Kubernetes v1.30.5")
        );

        let s = Selector::new(
            &records,
            vec![("b".into(), "sig-ubuntu-2404".into())],
            vec!["a".into()],
            true,
        )
        .unwrap();
        let err = chosen(&s, &slot(&["a", "b"], Some("Linux"), None));
        assert!(err.contains("more than one choice"), "{err}");
    }

    #[test]
    fn an_upgrade_needs_every_records_kubernetes_version() {
        let mut records = records();
        records[1].kubernetes_version = None;
        assert!(matches!(
            Selector::new(&records, vec![], vec![], true),
            Err(Refusal::UnknownKubernetesVersion { .. })
        ));
        // Without an upgrade the version does not matter, and every record is a candidate.
        let s = Selector::new(&records, vec![], vec![], false).unwrap();
        assert_eq!(
            chosen(
                &s,
                &slot(&["a"], Some("Linux"), Some(&gallery("capi-ubuntu-2204")))
            ),
            "sig-ubuntu-2204 1.30.10"
        );
    }

    #[test]
    fn a_record_without_os_type_is_matched_as_its_names_say() {
        let records = vec![record(
            "sig-ubuntu-2404",
            None,
            "capi-ubuntu-2404",
            "1.30.5",
            "1",
        )];
        let s = Selector::new(&records, vec![], vec![], true).unwrap();
        // Its names say Linux, so a Linux slot on its definition takes it, a Windows one not
        // (and CAPZ's default Linux image is Gen2, which it is not).
        assert_eq!(
            chosen(
                &s,
                &slot(&["a"], Some("Linux"), Some(&gallery("capi-ubuntu-2404")))
            ),
            "sig-ubuntu-2404 1"
        );
        assert!(chosen(&s, &slot(&["a"], Some("Linux"), None)).contains("no record fits"));
        assert!(chosen(&s, &slot(&["a"], Some("Windows"), None)).contains("no record fits"));
    }

    #[test]
    fn what_a_current_image_says_decides_and_silence_is_refused() {
        let records = records();
        let s = Selector::new(&records, vec![], vec![], true).unwrap();
        // A managed image as image-builder names it: `<definition>-<timestamp>`.
        let managed = "{id: /subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/capi-ubuntu-2204-1700000000}";
        assert_eq!(
            chosen(&s, &slot(&["a"], Some("Linux"), Some(managed))),
            "sig-ubuntu-2204 1.30.10"
        );
        // A managed image of no known distro, an empty image: refused, not guessed.
        let custom =
            "{id: /subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/my-image}";
        assert!(chosen(&s, &slot(&["a"], Some("Linux"), Some(custom))).contains("no record fits"));
        let empty = chosen(&s, &slot(&["a"], Some("Linux"), Some("{}")));
        assert!(empty.contains("does not say which distro"), "{empty}");
        // `image: null` is no image: CAPZ's default.
        assert!(
            chosen(&s, &slot(&["w"], Some("Windows"), Some("null")))
                .starts_with("sig-windows-2022")
        );
    }

    #[test]
    fn the_same_definition_and_gallery_win_and_twins_are_refused() {
        let mut ubun2 = record(
            "sig-ubuntu-2404",
            Some("Linux"),
            "capi-ubun2-2404",
            "1.30.5",
            "9.0.0",
        );
        ubun2.gallery_image.as_mut().unwrap().gallery = "H".into();
        let mut elsewhere = record(
            "sig-ubuntu-2404",
            Some("Linux"),
            "capi-ubuntu-2404",
            "1.30.5",
            "1.30.5",
        );
        elsewhere.gallery_image.as_mut().unwrap().gallery = "Other".into();
        let here = record(
            "sig-ubuntu-2404",
            Some("Linux"),
            "capi-ubuntu-2404",
            "1.30.5",
            "1.30.5",
        );
        let records = vec![here, ubun2, elsewhere];
        let s = Selector::new(&records, vec![], vec![], true).unwrap();
        // Its own definition beats a newer image of the same distro; its own gallery beats a
        // copy in another.
        let pick = s
            .choose(&slot(
                &["a"],
                Some("Linux"),
                Some(&gallery("capi-ubuntu-2404")),
            ))
            .unwrap();
        let Choice::Record(r) = pick else { panic!() };
        assert_eq!(r.gallery_image.as_ref().unwrap().gallery, "G");
        // On CAPZ's community image the copies in two galleries are equal: not guessed.
        let community = "{computeGallery: {gallery: ClusterAPI-f72ceb4f, name: capi-ubuntu-2404, version: '1.29.7'}}";
        let err = chosen(&s, &slot(&["a"], Some("Linux"), Some(community)));
        assert!(
            err.contains("several galleries") && err.contains("G (s/g), Other (s/g)"),
            "{err}"
        );
    }

    #[test]
    fn a_record_without_os_type_is_judged_by_its_names() {
        let mut windows = record(
            "sig-windows-2022-containerd",
            None,
            "capi-windows-2022-containerd",
            "1.30.5",
            "1",
        );
        windows.os_type = None;
        assert_eq!(os_of_record(&windows), "Windows");
        let linux = record("sig-ubuntu-2404", None, "capi-ubuntu-2404", "1.30.5", "1");
        assert_eq!(os_of_record(&linux), "Linux");
        // CAPZ's short name for Windows images says Windows too.
        let win = record(
            "sig-win-2022-containerd",
            None,
            "capi-win-2022-containerd",
            "1.30.5",
            "1",
        );
        assert_eq!(os_of_record(&win), "Windows");
        let records = vec![linux];
        // Chosen explicitly for a Windows template: refused as any Linux record is.
        let s = Selector::new(
            &records,
            vec![("w".into(), "sig-ubuntu-2404".into())],
            vec![],
            true,
        )
        .unwrap();
        let err = chosen(&s, &slot(&["w"], Some("Windows"), None));
        assert!(
            err.contains("Linux image") && err.contains("boots Windows"),
            "{err}"
        );
        // A slot whose template is not in the input takes no explicit choice.
        let err = chosen(
            &s,
            &slot(&["w"], None, Some(&gallery("capi-windows-2022-containerd"))),
        );
        assert!(err.contains("cannot see"), "{err}");
    }

    #[test]
    fn a_name_for_part_of_a_slot_or_for_several_slots_is_refused() {
        let records = records();
        let s = Selector::new(&records, vec![], vec!["md-0".into()], true).unwrap();
        let mut shared = slot(
            &["md-0", "cp", "t"],
            Some("Linux"),
            Some(&gallery("capi-ubuntu-2404")),
        );
        shared.partial_names = vec!["md-0".into(), "cp".into()];
        let err = chosen(&s, &shared);
        assert!(
            err.contains("share template") && err.contains("name the template"),
            "{err}"
        );

        let s = Selector::new(&records, vec![], vec!["control-plane".into()], true).unwrap();
        for names in [["kcp", "control-plane"], ["control-plane", "t2"]] {
            assert_eq!(chosen(&s, &slot(&names, Some("Linux"), None)), "keep");
        }
        let err = s.check_all_flags_used().unwrap_err().to_string();
        assert!(err.contains("names more than one machine slot"), "{err}");
    }

    #[test]
    fn the_definition_says_the_generation_and_the_gallery_its_subscription() {
        // Built as `-gen2` but published to the Gen1 definition: the definition decides.
        let odd = record(
            "sig-ubuntu-2404-gen2",
            Some("Linux"),
            "capi-ubuntu-2404",
            "1.30.5",
            "1",
        );
        let records = vec![odd];
        let s = Selector::new(&records, vec![], vec![], true).unwrap();
        for gen2 in ["capi-ubuntu-2404-gen2", "capi-ubun2-2404"] {
            assert!(
                chosen(&s, &slot(&["a"], Some("Linux"), Some(&gallery(gen2))))
                    .contains("no record fits")
            );
        }
        // The same gallery name in another subscription is another gallery.
        let mut there = record(
            "sig-ubuntu-2404",
            Some("Linux"),
            "capi-ubuntu-2404",
            "1.30.5",
            "1.30.5",
        );
        there.gallery_image.as_mut().unwrap().subscription_id = "other".into();
        let here = record(
            "sig-ubuntu-2404",
            Some("Linux"),
            "capi-ubuntu-2404",
            "1.30.5",
            "1.30.5",
        );
        let records = vec![here, there];
        let s = Selector::new(&records, vec![], vec![], true).unwrap();
        let image = "{computeGallery: {gallery: G, subscriptionID: s, resourceGroup: g, name: capi-ubuntu-2404, version: '1'}}";
        let Choice::Record(r) = s.choose(&slot(&["a"], Some("Linux"), Some(image))).unwrap() else {
            panic!()
        };
        assert_eq!(r.gallery_image.as_ref().unwrap().subscription_id, "s");
    }
}
