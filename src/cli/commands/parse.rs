//! `sigcat parse`: logs, machine-readable output or manifests → records.

use crate::cli::args::{self, FormatParser};
use crate::cli::failure::Failure;
use crate::cli::{inputs, messages, output};
use clap::{Args, ValueEnum};
use sigcat::Fault;
use sigcat::output::{Format, FormatOptions};
use sigcat::parse::{self, Parsed, lines::LineReader};
use sigcat::record::kubernetes::KubeVersion;
use sigcat::record::{BuildResult, InputFormat, same_build};
use std::io::Read;
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  # Watch the build and keep the records (the manifest is read when the log ends):
  make build-azure-sig-ubuntu-2404 | sigcat parse --tee --manifest manifest.json --output-file records.json
  # A saved log, joined with its manifest for the Kubernetes version:
  sigcat parse packer.out --manifest manifest.json
  sigcat parse packer.out -o yaml
  # Step outputs in GitHub Actions / variables in Azure DevOps:
  sigcat parse packer.out -o github >> \"$GITHUB_OUTPUT\"
  sigcat parse packer.out -o azure-devops
  # Shell variables, or image-builder's sig-publishing-info.json:
  eval \"$(sigcat parse packer.out -o env)\"
  sigcat parse packer.out -o sig-publishing-info --tags \"$(cat tags.out)\" --output-file sig-publishing-info.json";

#[derive(Args)]
#[command(about = "Parse Packer / image-builder output into image records", after_help = args::help(EXAMPLES))]
pub(crate) struct ParseArgs {
    /// Build logs, machine-readable output or manifest.json files; `-` or nothing for stdin.
    files: Vec<PathBuf>,
    /// Input format; detected from the first line when not given.
    #[arg(long, value_enum)]
    input_format: Option<InputFormatArg>,
    /// The manifest.json of the same run: adds the Kubernetes version and custom data.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Kubernetes version for images whose version the input does not tell (e.g. 1.30.3).
    #[arg(long, value_name = "VERSION", value_parser = args::parse_kubernetes_version)]
    kubernetes_version: Option<KubeVersion>,
    /// Output format: json (a record per line), yaml, github ($GITHUB_OUTPUT lines),
    /// azure-devops (logging commands), env (`export` lines), sig-publishing-info.
    #[arg(short, long, alias = "format", value_name = "FORMAT", value_parser = FormatParser::<FormatArg>::new(), default_value = "json")]
    output: FormatArg,
    /// Write the output to PATH (atomically) instead of stdout.
    #[arg(long, value_name = "PATH")]
    output_file: Option<PathBuf>,
    /// Copy the input to stdout byte for byte as it is read, to its end whatever happens;
    /// needs --output-file for the records.
    #[arg(long, requires = "output_file")]
    tee: bool,
    /// Only records of this build (bare `sig-ubuntu-2404` or prefixed `azure-arm.sig-ubuntu-2404`).
    #[arg(long, value_name = "NAME")]
    build: Option<String>,
    /// `tags` value for -o sig-publishing-info (image-builder keeps them in tags.out).
    #[arg(long, value_name = "TEXT")]
    tags: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum InputFormatArg {
    /// Packer's console output (what `make` prints).
    Console,
    /// `packer build -machine-readable` output.
    MachineReadable,
    /// Packer's manifest.json.
    Manifest,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// One record per line.
    Json,
    /// One YAML document per record.
    Yaml,
    /// `key=value` lines for $GITHUB_OUTPUT.
    Github,
    /// Azure DevOps logging commands that set output variables.
    AzureDevops,
    /// `export SIGCAT_KEY='value'` lines.
    Env,
    /// image-builder's sig-publishing-info.json.
    SigPublishingInfo,
}

pub(crate) fn run(args: ParseArgs) -> Result<Option<Fault>, Failure> {
    let format = args.input_format.map(|f| match f {
        InputFormatArg::Console => InputFormat::Console,
        InputFormatArg::MachineReadable => InputFormat::MachineReadable,
        InputFormatArg::Manifest => InputFormat::Manifest,
    });
    let mut all = Parsed::default();
    let mut first_error: Option<sigcat::Error> = None;
    for path in inputs::or_stdin(&args.files) {
        if first_error.is_some() {
            // A problem was found: the rest still passes through, unparsed.
            pass_through(&path)?;
            continue;
        }
        let parsed = if args.tee {
            parse_teed(&path, format)
        } else if path.as_os_str() == "-" {
            parse::parse_stream(
                &mut LineReader::new(std::io::stdin().lock()),
                "<stdin>",
                format,
            )
        } else {
            parse::parse_file(&path, format)
        };
        match parsed {
            Ok(p) => all.extend(p),
            Err(e) if args.tee => {
                messages::warn(&format!(
                    "{}; the log still passes through to its end, and no records will be written",
                    sigcat::error::chain(&e)
                ));
                first_error = Some(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(e) = first_error {
        return Err(e.into());
    }
    let manifest = inputs::read_manifest(args.manifest.as_deref())?;
    inputs::finish_records(
        &mut all,
        manifest.as_ref(),
        args.kubernetes_version.as_ref(),
    )?;
    if let Some(build) = &args.build {
        all.records.retain(|r| same_build(&r.build_name, build));
        all.incomplete.retain(|b| same_build(b, build));
    }
    for w in &all.warnings {
        messages::warn(w);
    }
    let format = match args.output {
        FormatArg::Json => Format::Json,
        FormatArg::Yaml => Format::Yaml,
        FormatArg::Github => Format::Github,
        FormatArg::AzureDevops => Format::AzureDevops,
        FormatArg::Env => Format::Env,
        FormatArg::SigPublishingInfo => Format::SigPublishingInfo,
    };
    let options = FormatOptions {
        tags: args.tags.clone(),
    };
    let text = sigcat::output::render(&all.records, format, &options)?;
    let result = outcome(&all, &inputs::describe(&args.files));
    // No record, and the input failed: a file from an earlier run is kept, not emptied.
    if let (Some(file), true) = (
        &args.output_file,
        all.records.is_empty() && result.is_some(),
    ) {
        messages::say(&format!(
            "nothing written to {}: the input holds no record",
            file.display()
        ));
        return Ok(result);
    }
    output::write(args.output_file.as_deref(), text.as_bytes())?;
    Ok(result)
}

/// Parses one input while copying it to stdout; after a parse error the copy goes on to the
/// end of the input.
fn parse_teed(path: &Path, format: Option<InputFormat>) -> Result<Parsed, sigcat::Error> {
    fn go<R: Read>(
        reader: R,
        source: &str,
        format: Option<InputFormat>,
    ) -> Result<Parsed, sigcat::Error> {
        let mut reader = LineReader::new(reader).with_tee(Box::new(std::io::stdout()));
        let parsed = parse::parse_stream(&mut reader, source, format);
        if parsed.is_err() {
            reader.drain().map_err(|e| sigcat::Error::io(source, e))?;
        }
        if let Some(e) = reader.take_tee_error() {
            messages::warn(&format!(
                "copying the log to stdout stopped: {e}; parsing went on"
            ));
        }
        parsed
    }
    if path.as_os_str() == "-" {
        return go(std::io::stdin().lock(), "<stdin>", format);
    }
    let source = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| sigcat::Error::io(&source, e))?;
    go(file, &source, format)
}

/// Copies an input to stdout unparsed.
fn pass_through(path: &Path) -> Result<(), Failure> {
    let copied = if path.as_os_str() == "-" {
        std::io::copy(&mut std::io::stdin().lock(), &mut std::io::stdout().lock())
    } else {
        std::fs::File::open(path)
            .and_then(|mut f| std::io::copy(&mut f, &mut std::io::stdout().lock()))
    };
    match copied {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(sigcat::Error::io(inputs::source_name(path), e).into()),
    }
}

/// Failure is information: the records are written, and the exit code says what happened.
fn outcome(parsed: &Parsed, sources: &str) -> Option<Fault> {
    let failed: Vec<&sigcat::record::Record> = parsed
        .records
        .iter()
        .filter(|r| r.result != BuildResult::Succeeded)
        .collect();
    if !failed.is_empty() {
        for r in &failed {
            let what = match r.result {
                BuildResult::Interrupted => "interrupted",
                _ => "failed",
            };
            match &r.error {
                Some(e) => messages::say(&format!("build {what}: {}: {e}", r.build_name)),
                None => messages::say(&format!("build {what}: {}", r.build_name)),
            }
        }
        return Some(Fault::BuildFailed);
    }
    if !parsed.incomplete.is_empty() {
        messages::say(&format!(
            "no artifact for {} in {sources}: the log ends before the build reported a result or an image (truncated log?)",
            parsed.incomplete.join(", ")
        ));
        return Some(Fault::NothingFound);
    }
    if parsed.records.is_empty() {
        messages::say(&inputs::no_packer_build(sources));
        return Some(Fault::NothingFound);
    }
    if !parsed.records.iter().any(|r| r.has_image()) {
        messages::say(&format!(
            "no artifact found in {sources}: the builds reported no Azure image (a truncated log?)"
        ));
        return Some(Fault::NothingFound);
    }
    None
}
