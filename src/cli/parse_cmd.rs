//! `sigcat parse`: logs, machine-readable output or manifests → records.

use super::{exit, report, warn};
use clap::{Args, ValueEnum};
use sigcat::output::{self, Format, FormatOptions};
use sigcat::parse::{self, Parsed, lines::LineReader};
use sigcat::record::{BuildResult, InputFormat, same_build};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  # Watch the build and keep the records:
  make build-azure-sig-ubuntu-2404 | sigcat parse --tee -o records.json
  # A saved log, joined with its manifest for the Kubernetes version:
  sigcat parse packer.out --manifest manifest.json
  # Step outputs in GitHub Actions / variables in Azure DevOps:
  sigcat parse packer.out --format github >> \"$GITHUB_OUTPUT\"
  sigcat parse packer.out --format azure-devops
  # Shell variables, or image-builder's sig-publishing-info.json:
  eval \"$(sigcat parse packer.out --format env)\"
  sigcat parse packer.out --format sig-publishing-info -o sig-publishing-info.json

Exit codes: 0 all builds succeeded with an image; 1 a build failed or was interrupted;
2 usage error; 3 no artifact found (truncated log, wrong file); 4 invalid input; 5 I/O error.";

#[derive(Args)]
#[command(about = "Parse Packer / image-builder output into image records", after_help = EXAMPLES)]
pub struct ParseArgs {
    /// Build logs, machine-readable output or manifest.json files; `-` or nothing for stdin.
    files: Vec<PathBuf>,
    /// Input format; detected from the first line when not given.
    #[arg(long, value_enum)]
    input_format: Option<InputFormatArg>,
    /// The manifest.json of the same run: adds the Kubernetes version and custom data.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Kubernetes version for images whose version the input does not tell (e.g. 1.30.3).
    #[arg(long, value_name = "VERSION")]
    kubernetes_version: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: FormatArg,
    /// Write the output to FILE (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Copy the input to stdout byte for byte as it is read; needs -o for the records.
    #[arg(long, requires = "output")]
    tee: bool,
    /// Only records of this build (bare `sig-ubuntu-2404` or prefixed `azure-arm.sig-ubuntu-2404`).
    #[arg(long, value_name = "NAME")]
    build: Option<String>,
    /// `tags` value for --format sig-publishing-info (image-builder keeps them in tags.out).
    #[arg(long, value_name = "TEXT")]
    tags: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum InputFormatArg {
    Console,
    MachineReadable,
    Manifest,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Json,
    Github,
    AzureDevops,
    Env,
    SigPublishingInfo,
}

pub fn run(args: ParseArgs) -> u8 {
    match parse_all(&args) {
        Ok(parsed) => finish(&args, parsed),
        Err(e) => report(&e),
    }
}

fn parse_all(args: &ParseArgs) -> Result<Parsed, sigcat::Error> {
    let format = args.input_format.map(|f| match f {
        InputFormatArg::Console => InputFormat::Console,
        InputFormatArg::MachineReadable => InputFormat::MachineReadable,
        InputFormatArg::Manifest => InputFormat::Manifest,
    });
    let stdin_only = [PathBuf::from("-")];
    let files: &[PathBuf] = if args.files.is_empty() {
        &stdin_only
    } else {
        &args.files
    };
    let mut all = Parsed::default();
    for path in files {
        let parsed = if path.as_os_str() == "-" {
            let reader = tee_if_asked(LineReader::new(std::io::stdin().lock()), args.tee);
            parse::parse_stream(reader, "<stdin>", format)?
        } else {
            let source = path.display().to_string();
            let file = std::fs::File::open(path).map_err(|e| sigcat::Error::io(&source, e))?;
            parse::parse_stream(
                tee_if_asked(LineReader::new(file), args.tee),
                &source,
                format,
            )?
        };
        all.extend(parsed);
    }
    if let Some(manifest) = &args.manifest {
        let builds = parse::read_manifest(manifest)?;
        let warnings =
            parse::manifest::join(&mut all.records, &builds, &manifest.display().to_string())?;
        all.warnings.extend(warnings);
    }
    if let Some(version) = &args.kubernetes_version {
        parse::apply_kubernetes_version(&mut all.records, version)?;
    }
    if let Some(build) = &args.build {
        all.records.retain(|r| same_build(&r.build_name, build));
        all.incomplete.retain(|b| same_build(b, build));
    }
    Ok(all)
}

fn tee_if_asked<R: std::io::Read>(reader: LineReader<R>, tee: bool) -> LineReader<R> {
    if tee {
        reader.with_tee(Box::new(std::io::stdout()))
    } else {
        reader
    }
}

fn finish(args: &ParseArgs, parsed: Parsed) -> u8 {
    for w in &parsed.warnings {
        warn(w);
    }
    let format = match args.format {
        FormatArg::Json => Format::Json,
        FormatArg::Github => Format::Github,
        FormatArg::AzureDevops => Format::AzureDevops,
        FormatArg::Env => Format::Env,
        FormatArg::SigPublishingInfo => Format::SigPublishingInfo,
    };
    let options = FormatOptions {
        tags: args.tags.clone(),
    };
    let text = match output::render(&parsed.records, format, &options) {
        Ok(t) => t,
        Err(e) => return report(&e),
    };
    if let Err(e) = super::write_output(args.output.as_deref(), &text) {
        return report(&e);
    }
    exit_code(&parsed)
}

/// Failure is information: the records are written, and the exit code says what happened.
fn exit_code(parsed: &Parsed) -> u8 {
    let failed: Vec<&str> = parsed
        .records
        .iter()
        .filter(|r| r.result != BuildResult::Succeeded)
        .map(|r| r.build_name.as_str())
        .collect();
    if !failed.is_empty() {
        eprintln!(
            "sigcat: build failed or was interrupted: {}",
            failed.join(", ")
        );
        return exit::BUILD_FAILED;
    }
    if !parsed.incomplete.is_empty() {
        eprintln!(
            "sigcat: no artifact for {}: the log ends before the build reported a result or an image (truncated log?)",
            parsed.incomplete.join(", ")
        );
        return exit::NO_ARTIFACT;
    }
    if !parsed.records.iter().any(|r| r.has_image()) {
        eprintln!(
            "sigcat: no artifact found: the input has no Azure artifact block (a truncated log, or not a Packer log?)"
        );
        return exit::NO_ARTIFACT;
    }
    exit::OK
}
