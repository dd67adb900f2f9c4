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
use sigcat::render;
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
  # A mixed cluster: all records at once; each machine slot gets the one of its OS and image,
  # and the plan on stderr lists them. A pool no image was built for keeps its own on purpose:
  sigcat render linux.json windows.json --from templates.yaml --upgrade current.yaml --keep-image md-gpu
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
    /// Give machine slot SLOT the record WHICH (a build, image definition or distro) instead
    /// of the one matching its OS and current image: for a change of distro. SLOT is a name the
    /// plan shows (a template, MachineDeployment, worker class or `control-plane`). Repeatable.
    #[arg(long, value_name = "SLOT=WHICH", value_parser = args::parse_slot_choice)]
    image_for: Vec<(String, String)>,
    /// Machine slot SLOT keeps its current image (its version still moves): for a pool no
    /// record was built for. Without it such a slot refuses the whole upgrade. Repeatable.
    #[arg(long, value_name = "SLOT")]
    keep_image: Vec<String>,
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
    render::refuse_credentials(
        rendered
            .new_objects
            .iter()
            .chain(rendered.changes.iter().map(|c| &c.changed)),
    )
    .map_err(sigcat::Error::from)?;
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
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        // Bytes that are not UTF-8 are the file's fault, not the disk's.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(sigcat::InputError::new(
            &shown,
            None,
            "it is not UTF-8 text; expected `kubectl get ... -o yaml` output",
        )
        .into()),
        other => other.map_err(|e| sigcat::Error::io(shown, e)),
    }
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
    let mut options = args.image.template_options(args.vm_size.clone())?;
    options.base_name = args.name.clone();
    options.namespace = args.namespace.clone();

    if args.from.is_empty() && args.upgrade.is_none() {
        if !args.image_for.is_empty() || !args.keep_image.is_empty() {
            return Err(Failure::Usage(
                "--image-for and --keep-image choose per machine slot: give the current templates (--from) or the cluster (--upgrade)".into(),
            ));
        }
        let record = sigcat::record::the_one_image(&records).map_err(sigcat::Error::from)?;
        return Ok(Rendered {
            new_objects: vec![
                render::new_template(record, None, &options).map_err(sigcat::Error::from)?,
            ],
            changes: Vec::new(),
        });
    }
    if !records.iter().any(|r| r.has_image()) {
        let none = sigcat::record::the_one_image(&records).expect_err("no image");
        return Err(sigcat::Error::from(none).into());
    }
    let selector = render::Selector::new(
        &records,
        args.image_for.clone(),
        args.keep_image.clone(),
        args.upgrade.is_some(),
    )
    .map_err(sigcat::Error::from)?;
    let mut currents = Vec::new();
    for path in &args.from {
        let source = path.display().to_string();
        let objects = yaml::read_objects(&read(path)?, &source).map_err(sigcat::Error::from)?;
        let before = currents.len();
        currents.extend(
            objects
                .into_iter()
                .filter(|o| yaml::str_at(o, &["kind"]) == Some(render::template::AMT_KIND)),
        );
        if currents.len() == before {
            return Err(sigcat::Error::from(sigcat::InputError::new(&source, None, "no AzureMachineTemplate here; expected `kubectl get azuremachinetemplate NAME -o yaml` output")).into());
        }
    }
    let templates: Vec<&serde_norway::Value> = currents.iter().collect();
    let several = records.iter().filter(|r| r.has_image()).count() > 1;

    let Some(path) = &args.upgrade else {
        if !args.keep_image.is_empty() {
            return Err(Failure::Usage(
                "--keep-image keeps a slot's image while an upgrade moves its version: it needs --upgrade (without it, leave that template out)".into(),
            ));
        }
        let copies =
            render::copy_templates(&templates, &Default::default(), &[], &selector, &options)
                .map_err(sigcat::Error::from)?;
        selector
            .check_all_flags_used()
            .map_err(sigcat::Error::from)?;
        if several || !args.image_for.is_empty() {
            print_plan("the templates", &copies.plan);
        }
        return Ok(Rendered {
            new_objects: copies.templates,
            changes: Vec::new(),
        });
    };
    let objects = yaml::read_objects(&read(path)?, &path.display().to_string())
        .map_err(sigcat::Error::from)?;
    let upgrade = render::plan_upgrade(&render::UpgradeRequest {
        objects: &objects,
        templates: &templates,
        selector: &selector,
        options: &options,
        new_class: args.new_class.as_deref(),
    })
    .map_err(sigcat::Error::from)?;
    for note in &upgrade.notes {
        messages::warn(note);
    }
    let target = upgrade
        .target
        .as_ref()
        .map(|t| format!("the upgrade to Kubernetes v{}", t.bare()))
        .unwrap_or_else(|| "the upgrade".into());
    print_plan(&target, &upgrade.plan);
    Ok(Rendered {
        new_objects: upgrade.new_objects,
        changes: upgrade.changes,
    })
}

/// The plan a reviewer reads on stderr: each machine slot, its image now and after.
fn print_plan(what: &str, plan: &[render::PlanLine]) {
    // Names come from the input: a control character in one must not forge a line.
    let clean = crate::cli::table::cell;
    let mut text = format!("sigcat: {what}, per machine slot:\n");
    for line in plan {
        text.push_str(&format!(
            "  {}\n      now:   {}\n      after: {}\n",
            clean(&line.slot),
            clean(&line.old),
            clean(&line.new)
        ));
    }
    messages::to_stderr(&text);
}
