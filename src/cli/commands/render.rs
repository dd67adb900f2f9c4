//! `sigcat render`: records (or a log / manifest) → AzureMachineTemplate and upgrade changes.

use crate::cli::args::{self, FormatParser, image::ImageArgs};
use crate::cli::failure::Failure;
use crate::cli::{inputs, messages, output};
use clap::Args;
use clap::builder::{PossibleValue, TypedValueParser};
use sigcat::Fault;
use sigcat::parse::Parsed;
use sigcat::record::kubernetes::KubeVersion;
use sigcat::record::same_build;
use sigcat::render::{self, Refusal};
use sigcat::yaml;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  # A fresh cluster: a minimal template for the image in the log.
  sigcat render packer.out --manifest manifest.json --vm-size Standard_D2s_v3 | kubectl apply -f -
  # A copy of the current template with only its image changed:
  kubectl get azuremachinetemplate my-cluster-md-0 -o yaml > md-0.yaml
  sigcat render records.json --from md-0.yaml
  # The whole upgrade: new templates, then the control plane, then the MachineDeployments.
  kubectl get kubeadmcontrolplane,machinedeployment -o yaml > current.yaml
  sigcat render records.json --from cp.yaml --from md-0.yaml --upgrade current.yaml | kubectl apply -f -
  # The same as a kustomization to review (patches/) and apply in one step:
  sigcat render records.json --from cp.yaml --from md-0.yaml --upgrade current.yaml --as kustomize upgrade
  kubectl apply -k upgrade
  # A ClusterClass cluster: give the Cluster with its ClusterClass.
  kubectl get cluster/my-cluster clusterclass/my-class -o yaml > current.yaml
  sigcat render records.json --upgrade current.yaml --from cp.yaml --from md-0.yaml --new-class my-class-v1-30
  # Flatcar and other third-party bases need a Plan:
  sigcat render records.json --from md-0.yaml --plan kinvolk:flatcar-container-linux-corevm-amd64:stable-gen2";

#[derive(Args)]
#[command(about = "Render CAPZ AzureMachineTemplates (and upgrade changes) from a record", after_help = args::help(EXAMPLES))]
pub(crate) struct RenderArgs {
    /// Records from `sigcat parse` (JSON lines), or a log / manifest to parse; stdin if none.
    inputs: Vec<PathBuf>,
    /// The manifest.json of the same run, when the input is a log.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Which record to render when the input holds several images.
    #[arg(long, value_name = "NAME")]
    build: Option<String>,
    /// Kubernetes version when the record does not know it (needed for --upgrade).
    #[arg(long, value_name = "VERSION", value_parser = args::parse_kubernetes_version)]
    kubernetes_version: Option<KubeVersion>,
    #[command(flatten)]
    image: ImageArgs,
    /// A current AzureMachineTemplate (`kubectl get -o yaml`); repeat for several. The copy
    /// keeps every field but `image:`, the name and what the server set.
    #[arg(long, value_name = "FILE")]
    from: Vec<PathBuf>,
    /// VM size of a minimal template (required without --from).
    #[arg(long, value_name = "SIZE")]
    vm_size: Option<String>,
    /// Base of the new template's name (default: the --from name, else the image definition).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Namespace of a minimal template.
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,
    /// The cluster as it is, to move to the new image: `kubectl get` output of its
    /// KubeadmControlPlane and MachineDeployments, or of a ClusterClass Cluster together with
    /// its ClusterClass (and the AzureMachineTemplates that class references).
    #[arg(long, value_name = "FILE")]
    upgrade: Option<PathBuf>,
    /// ClusterClass clusters whose class references the templates: make a new ClusterClass
    /// NAME and rebase the Cluster onto it, instead of changing the class every Cluster shares.
    #[arg(long, value_name = "NAME", requires = "upgrade", value_parser = args::parse_object_name)]
    new_class: Option<String>,
    /// How to write the result: `objects` (one YAML stream, for `kubectl apply -f`), or
    /// `kustomize DIR` (a kustomization for `kubectl apply -k DIR`: new objects as resources,
    /// each changed object as it is now plus a merge patch).
    #[arg(long = "as", num_args = 1..=2, value_names = ["FORMAT", "DIR"], default_value = "objects", value_parser = AsParser)]
    as_: Vec<String>,
    /// Output format of the objects: yaml (a multi-document stream) or json (one object, or a
    /// `List` of several, as `kubectl get -o json` prints them).
    #[arg(short, long, value_name = "FORMAT", value_parser = FormatParser::<OutputArg>::new(), default_value = "yaml")]
    output: OutputArg,
    /// Write to PATH (atomically) instead of stdout.
    #[arg(long, value_name = "PATH")]
    output_file: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputArg {
    /// A multi-document YAML stream.
    Yaml,
    /// One object, or a `List` of several.
    Json,
}

/// `--as FORMAT [DIR]`: any text is taken (the second value is a directory, checked later), and
/// completions offer the formats, not file names.
#[derive(Clone)]
struct AsParser;

impl TypedValueParser for AsParser {
    type Value = String;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        Ok(value.to_string_lossy().into_owned())
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            [
                PossibleValue::new("objects").help("one YAML stream, for kubectl apply -f"),
                PossibleValue::new("kustomize").help("a kustomization DIR, for kubectl apply -k"),
            ]
            .into_iter(),
        ))
    }
}

/// Where the result goes.
enum Destination {
    Stream,
    Kustomize(PathBuf),
}

impl RenderArgs {
    fn destination(&mut self) -> Result<Destination, Failure> {
        let mut values = std::mem::take(&mut self.as_).into_iter();
        let format = values.next().unwrap_or_default();
        let dir = values.next();
        match (format.as_str(), dir) {
            ("objects", extra) => {
                // `--as objects records.json`: clap gave the input to --as; it is an input.
                self.inputs.extend(extra.map(PathBuf::from));
                Ok(Destination::Stream)
            }
            ("kustomize", Some(dir)) if self.output_file.is_none() => {
                Ok(Destination::Kustomize(PathBuf::from(dir)))
            }
            ("kustomize", Some(_)) => Err(Failure::Usage(
                "--as kustomize writes a directory; drop --output-file".into(),
            )),
            ("kustomize", None) => Err(Failure::Usage(
                "--as kustomize needs a directory: --as kustomize DIR".into(),
            )),
            ("patches", _) => Err(Failure::Usage(
                "--as patches is gone (kubectl patch reads only the first document of a stream); use --as kustomize DIR and `kubectl apply -k DIR`".into(),
            )),
            (other, _) => Err(Failure::Usage(format!(
                "--as {other}: expected `objects` or `kustomize DIR`"
            ))),
        }
    }
}

pub(crate) fn run(mut args: RenderArgs) -> Result<Option<Fault>, Failure> {
    let destination = args.destination()?;
    let rendered = render_all(&args)?;
    match destination {
        Destination::Stream => {
            let mut docs = rendered.new_objects;
            docs.extend(rendered.changes.into_iter().map(|c| c.changed));
            let text = match args.output {
                OutputArg::Yaml => yaml::to_stream(&docs),
                OutputArg::Json => as_json(docs),
            };
            output::write(args.output_file.as_deref(), text.as_bytes())?;
        }
        Destination::Kustomize(dir) => {
            let files = render::kustomize::files(&rendered.new_objects, &rendered.changes);
            output::write_dir(&dir, &files, render::kustomize::MARKER)?;
        }
    }
    Ok(None)
}

/// kubectl's JSON: the object itself, or a `List` when there are several.
fn as_json(mut docs: Vec<serde_norway::Value>) -> String {
    let value = if docs.len() == 1 {
        serde_json::to_value(docs.remove(0))
    } else {
        serde_json::to_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": docs,
        }))
    }
    .expect("manifests serialise");
    serde_json::to_string_pretty(&value).expect("json serialises") + "\n"
}

/// New objects (templates, a new ClusterClass) and changes to existing ones, in apply order.
struct Rendered {
    new_objects: Vec<serde_norway::Value>,
    changes: Vec<render::Change>,
}

fn read(path: &PathBuf) -> Result<String, sigcat::Error> {
    std::fs::read_to_string(path).map_err(|e| sigcat::Error::io(path.display().to_string(), e))
}

fn render_all(args: &RenderArgs) -> Result<Rendered, Failure> {
    let manifest = inputs::read_manifest(args.manifest.as_deref())?;
    let mut all = Parsed::default();
    for path in inputs::or_stdin(&args.inputs) {
        all.extend(inputs::read_input(&path)?);
    }
    inputs::finish_records(
        &mut all,
        manifest.as_ref(),
        args.kubernetes_version.as_ref(),
    )?;
    for w in &all.warnings {
        messages::warn(w);
    }
    let mut records = all.records;
    if let Some(b) = &args.build {
        records.retain(|r| same_build(&r.build_name, b));
    }
    let record = sigcat::record::the_one_image(&records).map_err(sigcat::Error::from)?;
    let mut options = args.image.template_options(args.vm_size.clone())?;
    options.base_name = args.name.clone();
    options.namespace = args.namespace.clone();

    let mut docs = Vec::new();
    let mut replacements = Vec::new();
    // An upgrade without --from (a ClusterClass that takes the image from a variable) needs
    // no template; anything else without --from gets a minimal one.
    if args.from.is_empty() && args.upgrade.is_none() {
        docs.push(render::new_template(record, None, &options).map_err(sigcat::Error::from)?);
    }
    for path in &args.from {
        let source = path.display().to_string();
        let objects = yaml::read_objects(&read(path)?, &source).map_err(sigcat::Error::from)?;
        let templates: Vec<_> = objects
            .iter()
            .filter(|o| yaml::str_at(o, &["kind"]) == Some(render::template::AMT_KIND))
            .collect();
        if templates.is_empty() {
            return Err(sigcat::Error::from(sigcat::InputError::new(&source, None, "no AzureMachineTemplate here; expected `kubectl get azuremachinetemplate NAME -o yaml` output")).into());
        }
        for current in templates {
            let new = render::new_template(record, Some(current), &options)
                .map_err(sigcat::Error::from)?;
            let old_name = yaml::str_at(current, &["metadata", "name"])
                .unwrap_or_default()
                .to_string();
            let new_name = yaml::str_at(&new, &["metadata", "name"])
                .unwrap_or_default()
                .to_string();
            replacements.push((old_name, new_name));
            docs.push(new);
        }
    }
    let Some(path) = &args.upgrade else {
        return Ok(Rendered {
            new_objects: docs,
            changes: Vec::new(),
        });
    };
    let version = record
        .kubernetes_version
        .as_deref()
        .and_then(KubeVersion::parse)
        .ok_or_else(|| {
            sigcat::Error::from(Refusal::UnknownKubernetesVersion {
                build: record.build.clone(),
            })
        })?;
    let objects = yaml::read_objects(&read(path)?, &path.display().to_string())
        .map_err(sigcat::Error::from)?;
    let image = render::template::image_section(record, &options).map_err(sigcat::Error::from)?;
    let upgrade = render::plan_upgrade(&render::UpgradeRequest {
        objects: &objects,
        replacements: &replacements,
        image: &image,
        target: &version,
        new_class: args.new_class.as_deref(),
    })
    .map_err(sigcat::Error::from)?;
    for note in &upgrade.notes {
        messages::warn(note);
    }
    // A template nothing refers to would be applied and never used.
    for (old, new) in &replacements {
        if !upgrade.used_templates.contains(new) {
            return Err(sigcat::Error::from(Refusal::Upgrade(format!(
                "the copy of `{old}` (`{new}`) would be referred to by nothing in {}: no control plane, MachineDeployment or ClusterClass there uses `{old}` (a ClusterClass that sets the image from a variable needs no --from); drop that --from",
                path.display()
            )))
            .into());
        }
    }
    docs.extend(upgrade.new_objects);
    Ok(Rendered {
        new_objects: docs,
        changes: upgrade.changes,
    })
}
