//! Input → records. Detects the kind of input (console log, `-machine-readable` output or
//! `manifest.json`) and drives the matching parser over a bounded stream of lines.

mod artifact;
mod console;
mod grammar;
pub mod lines;
mod machine;
pub mod manifest;

use crate::error::Error;
use crate::record::kubernetes::KubeVersion;
use crate::record::{InputFormat, KubernetesVersionSource, Record};
use lines::LineReader;
use std::io::Read;

/// What parsing one source produced.
#[derive(Debug, Default)]
pub struct Parsed {
    /// One per distinct image and one per failed or interrupted build, in input order.
    pub records: Vec<Record>,
    /// Builds that started but never reported a result or an artifact (a truncated log).
    pub incomplete: Vec<String>,
    /// Things worth telling the user that do not make the input invalid.
    pub warnings: Vec<String>,
    /// The input ended inside an artifact block, without the empty line that closes it: fine
    /// for a saved log, but a file still being written may not be finished.
    pub ended_inside_block: bool,
}

impl Parsed {
    /// Adds another input's records, incomplete builds and warnings.
    pub fn extend(&mut self, other: Parsed) {
        self.records.extend(other.records);
        self.incomplete.extend(other.incomplete);
        self.warnings.extend(other.warnings);
        self.ended_inside_block |= other.ended_inside_block;
    }
}

/// Guesses the format from the first bytes: JSON → manifest, `DIGITS,` → machine-readable,
/// anything else → console.
pub fn detect_format(head: &[u8]) -> InputFormat {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let first = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|p| &head[p..])
        .unwrap_or(&[]);
    if first.first() == Some(&b'{') {
        return InputFormat::Manifest;
    }
    let line = first.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if machine::looks_machine_readable(line) {
        InputFormat::MachineReadable
    } else {
        InputFormat::Console
    }
}

/// Parses one source. `source` is the name used in records and errors. The reader is borrowed
/// so that after an error the caller can still [`LineReader::drain`] it (a tee must copy the
/// whole input whatever happens).
pub fn parse_stream<R: Read>(
    reader: &mut LineReader<R>,
    source: &str,
    format: Option<InputFormat>,
) -> Result<Parsed, Error> {
    let io_err = |e| Error::io(source, e);
    let format = match format {
        Some(f) => f,
        None => detect_format(reader.peek().map_err(io_err)?),
    };
    match format {
        InputFormat::Manifest => {
            let bytes = reader
                .read_rest(manifest::MAX_MANIFEST_BYTES, None)
                .map_err(io_err)?;
            let builds = manifest::newest_builds(source, &bytes)?;
            let records = manifest::records_from_manifest(source, &builds)?;
            Ok(Parsed {
                records,
                ..Parsed::default()
            })
        }
        InputFormat::Console => {
            let mut parser = console::ConsoleParser::new(source, InputFormat::Console);
            let finder = console::line_finder();
            let mut last = 0;
            loop {
                let next = if parser.wants_every_line() {
                    reader.next_line()
                } else {
                    reader.next_line_matching(&finder)
                };
                let Some(line) = next.map_err(io_err)? else {
                    break;
                };
                last = line.number;
                parser.feed(line.number, line.bytes, line.truncated)?;
            }
            Ok(parser.finish(last)?)
        }
        InputFormat::MachineReadable => {
            let mut parser = machine::MachineReadableParser::new(source);
            let mut last = 0;
            while let Some(line) = reader.next_line().map_err(io_err)? {
                last = line.number;
                parser.feed(line.number, line.bytes, line.truncated)?;
            }
            Ok(parser.finish(last)?)
        }
    }
}

/// Convenience for tests and library users: parses an in-memory input.
pub fn parse_bytes(
    input: &[u8],
    source: &str,
    format: Option<InputFormat>,
) -> Result<Parsed, Error> {
    parse_stream(&mut LineReader::new(input), source, format)
}

/// Parses a file, streaming it (memory does not grow with its size).
pub fn parse_file(path: &std::path::Path, format: Option<InputFormat>) -> Result<Parsed, Error> {
    let source = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Error::io(&source, e))?;
    let size = file.metadata().ok().map(|m| m.len());
    let mut reader = LineReader::new(file);
    let format = match format {
        Some(f) => f,
        None => detect_format(reader.peek().map_err(|e| Error::io(&source, e))?),
    };
    if format == InputFormat::Manifest {
        // A manifest is one JSON document: read once, into a buffer of its size.
        let bytes = reader
            .read_rest(manifest::MAX_MANIFEST_BYTES, size)
            .map_err(|e| Error::io(&source, e))?;
        let builds = manifest::newest_builds(&source, &bytes)?;
        return Ok(Parsed {
            records: manifest::records_from_manifest(&source, &builds)?,
            ..Parsed::default()
        });
    }
    parse_stream(&mut reader, &source, Some(format))
}

/// Reads a manifest file's newest run for `--manifest`.
pub fn read_manifest(path: &std::path::Path) -> Result<Vec<manifest::ManifestBuild>, Error> {
    let source = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Error::io(&source, e))?;
    let size = file.metadata().ok().map(|m| m.len());
    let bytes = LineReader::new(file)
        .read_rest(manifest::MAX_MANIFEST_BYTES, size)
        .map_err(|e| Error::io(&source, e))?;
    Ok(manifest::newest_builds(&source, &bytes)?)
}

/// Gives records whose Kubernetes version is unknown the one the user states; a record that
/// already knows a different version is an error rather than a silent override.
pub fn apply_kubernetes_version(records: &mut [Record], given: &KubeVersion) -> Result<(), Error> {
    let version = given.bare();
    for record in records.iter_mut().filter(|r| r.has_image()) {
        match &record.kubernetes_version {
            None => {
                record.kubernetes_version = Some(version.clone());
                record.kubernetes_version_source = Some(KubernetesVersionSource::CommandLine);
            }
            Some(known) if *known == version => {}
            Some(known) => {
                return Err(Error::VersionDisagrees {
                    source_name: match record.provenance.first_line {
                        Some(line) => format!("{}:{line}", record.provenance.source),
                        None => record.provenance.source.clone(),
                    },
                    build: record.build.clone(),
                    known: known.clone(),
                    known_from: source_name(record.kubernetes_version_source),
                    given: version,
                });
            }
        }
    }
    Ok(())
}

fn source_name(source: Option<KubernetesVersionSource>) -> &'static str {
    match source {
        Some(KubernetesVersionSource::Manifest) => "manifest",
        Some(KubernetesVersionSource::GalleryVersion) => "gallery image version",
        Some(KubernetesVersionSource::CommandLine) | None => "input",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected_from_the_first_line() {
        assert_eq!(detect_format(b"  {\"builds\": []}"), InputFormat::Manifest);
        assert_eq!(detect_format(b"\xef\xbb\xbf{}"), InputFormat::Manifest);
        assert_eq!(
            detect_format(b"1721038893,,ui,say,hi\n"),
            InputFormat::MachineReadable
        );
        assert_eq!(
            detect_format(b"==> azure-arm.x: hi\n"),
            InputFormat::Console
        );
        assert_eq!(detect_format(b""), InputFormat::Console);
    }
}
