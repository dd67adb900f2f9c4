//! `sigcat render`: records (or a log / manifest) → AzureMachineTemplate and upgrade changes.

use super::exit::Exit;
use super::failure::Failure;
use super::{inputs, messages, output};
use clap::{Args, ValueEnum};
use sigcat::parse::Parsed;
use sigcat::record::kubernetes::KubeVersion;
use sigcat::record::same_build;
use sigcat::render::{self, Refusal, yaml};
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
  # Flatcar and other third-party bases need a Plan:
  sigcat render records.json --from md-0.yaml --plan kinvolk:flatcar-container-linux-corevm-amd64:stable-gen2";

#[derive(Args)]
#[command(about = "Render CAPZ AzureMachineTemplates (and upgrade changes) from a record", after_help = super::help(EXAMPLES))]
pub struct RenderArgs {
    /// Records from `sigcat parse` (JSON lines), or a log / manifest to parse; stdin if none.
    inputs: Vec<PathBuf>,
    /// The manifest.json of the same run, when the input is a log.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Which record to render when the input holds several images.
    #[arg(long, value_name = "NAME")]
    build: Option<String>,
    /// Kubernetes version when the record does not know it (needed for --upgrade).
    #[arg(long, value_name = "VERSION", value_parser = super::parse_kubernetes_version)]
    kubernetes_version: Option<KubeVersion>,
    #[command(flatten)]
    image: super::inputs::ImageArgs,
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
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Current KubeadmControlPlane / MachineDeployment / Cluster objects to move to the new templates.
    #[arg(long, value_name = "FILE", requires = "from")]
    upgrade: Option<PathBuf>,
    /// How to print the upgrade: whole objects, or merge patches of the changed fields.
    #[arg(long = "as", value_enum, default_value = "objects")]
    as_: AsArg,
    /// Write to FILE (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AsArg {
    Objects,
    Patches,
}

pub fn run(args: RenderArgs) -> Result<Exit, Failure> {
    let text = render_all(&args)?;
    output::write(args.output.as_deref(), text.as_bytes())?;
    Ok(Exit::Ok)
}

fn read(path: &PathBuf) -> Result<String, sigcat::Error> {
    std::fs::read_to_string(path).map_err(|e| sigcat::Error::io(path.display().to_string(), e))
}

fn render_all(args: &RenderArgs) -> Result<String, Failure> {
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
    if args.from.is_empty() {
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
    if let Some(path) = &args.upgrade {
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
        let upgrade = render::plan_upgrade(
            &objects,
            &replacements,
            &version,
            args.as_ == AsArg::Patches,
        )
        .map_err(sigcat::Error::from)?;
        for note in &upgrade.notes {
            messages::warn(note);
        }
        docs.extend(upgrade.objects);
    }
    Ok(yaml::to_stream(&docs))
}
