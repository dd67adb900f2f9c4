//! Reading the inputs of the commands that take records: `sigcat parse` output (JSON lines)
//! or anything `sigcat parse` reads, always streamed, so memory does not grow with the input.

use sigcat::parse::{self, Parsed, lines::LineReader};
use sigcat::record::Record;
use sigcat::record::kubernetes::KubeVersion;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The inputs as given, or stdin (`-`) when there are none.
pub(crate) fn or_stdin(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let paths = if inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        inputs.to_vec()
    };
    if paths.iter().any(|p| p.as_os_str() == "-") {
        stdin_hint();
    }
    paths
}

/// Someone typed `sigcat parse` with nothing piped in: say what it waits for, once.
pub(crate) fn stdin_hint() {
    use std::io::IsTerminal;
    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::io::stdin().is_terminal() {
        ONCE.call_once(|| {
            super::messages::say(
                "reading build output from stdin (a terminal): paste or type it and end with Ctrl-D, or give a file (sigcat parse packer.out) or a pipe (make ... | sigcat parse)",
            )
        });
    }
}

/// What to say when an input holds no Packer build at all: most often a `make` that stopped
/// before Packer started, whose reason went to stderr.
pub(crate) fn no_packer_build(source: &str) -> String {
    format!(
        "no Packer build in {source}: no `==> NAME:` line, build result or artifact block. If `make` stopped before Packer started, why is on its stderr, which `make ... | tee FILE` does not keep (`2>&1` keeps it)"
    )
}

/// The inputs of a command, for a message: `a.log, b.log` or `<stdin>`.
pub(crate) fn describe(inputs: &[PathBuf]) -> String {
    or_stdin(inputs)
        .iter()
        .map(|p| source_name(p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name of an input in records and messages.
pub(crate) fn source_name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

/// Reads one input: records (JSON lines), or a log, machine-readable output or manifest.
pub(crate) fn read_input(path: &Path) -> Result<Parsed, sigcat::Error> {
    if path.as_os_str() == "-" {
        return read_stream(LineReader::new(std::io::stdin().lock()), "<stdin>");
    }
    if looks_like_records(path)? {
        let file = std::fs::File::open(path)
            .map_err(|e| sigcat::Error::io(path.display().to_string(), e))?;
        return read_stream(LineReader::new(file), &path.display().to_string());
    }
    parse::parse_file(path, None)
}

fn looks_like_records(path: &Path) -> Result<bool, sigcat::Error> {
    let source = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| sigcat::Error::io(&source, e))?;
    let mut reader = LineReader::new(file);
    let head = reader.peek().map_err(|e| sigcat::Error::io(&source, e))?;
    Ok(first_line_is_record(head))
}

fn first_line_is_record(head: &[u8]) -> bool {
    let line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    std::str::from_utf8(line).is_ok_and(|l| {
        l.trim_start().starts_with('{') && l.contains("\"schema\"") && Record::from_json(l).is_ok()
    })
}

fn read_stream<R: Read>(mut reader: LineReader<R>, source: &str) -> Result<Parsed, sigcat::Error> {
    let head = reader.peek().map_err(|e| sigcat::Error::io(source, e))?;
    if !first_line_is_record(head) {
        return parse::parse_stream(&mut reader, source, None);
    }
    let mut parsed = Parsed::default();
    while let Some(line) = reader
        .next_line()
        .map_err(|e| sigcat::Error::io(source, e))?
    {
        let text = String::from_utf8_lossy(line.bytes);
        if text.trim().is_empty() {
            continue;
        }
        let record = Record::from_json(&text).map_err(|e| {
            sigcat::InputError::new(
                source,
                Some(line.number),
                format!("not a record ({e}); expected JSON lines from `sigcat parse`"),
            )
        })?;
        parsed.records.push(record);
    }
    Ok(parsed)
}

/// Applies `--manifest` (already read) and `--kubernetes-version` to one input's records.
pub(crate) fn finish_records(
    parsed: &mut Parsed,
    manifest: Option<&(String, Vec<parse::manifest::ManifestBuild>)>,
    kubernetes_version: Option<&KubeVersion>,
) -> Result<(), sigcat::Error> {
    if let Some((source, builds)) = manifest {
        let warnings = parse::manifest::join(&mut parsed.records, builds, source)?;
        parsed.warnings.extend(warnings);
    }
    if let Some(v) = kubernetes_version {
        parse::apply_kubernetes_version(&mut parsed.records, v)?;
    }
    Ok(())
}

/// Reads `--manifest` once for all inputs.
pub(crate) fn read_manifest(
    path: Option<&Path>,
) -> Result<Option<(String, Vec<parse::manifest::ManifestBuild>)>, sigcat::Error> {
    path.map(|p| Ok((p.display().to_string(), parse::read_manifest(p)?)))
        .transpose()
}
