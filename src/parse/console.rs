//! Lines → records for Packer's human-readable console output (what `make build-azure-sig-*`
//! prints). A small state machine: most lines are build noise and are rejected after looking at
//! their first bytes; result lines, section headers and artifact blocks are parsed with the
//! grammars in [`super::grammar`].

use super::Parsed;
use super::artifact::{
    ArtifactBlock, CHROOT_BUILDER_ID, CHROOT_HEADER, VM_IMAGE_BUILDER_ID, VM_IMAGE_HEADER,
};
use super::grammar::{self, ResultLine};
use super::lines::{clean_line, skip_line_prefix};
use crate::error::InputError;
use crate::record::{BuildResult, InputFormat, Provenance, Record, split_build_name};
use crate::redact::redact_secrets;
use std::collections::{BTreeMap, HashSet};

/// Caps that keep memory flat on hostile input (millions of fake build names or blocks).
/// image-builder runs a handful of builds; past these a log is refused, never cut short.
pub(crate) const MAX_BUILDS: usize = 4096;
pub(crate) const MAX_IMAGES: usize = 4096;
const MAX_ERROR_TEXT: usize = 4096;

#[derive(Debug, Default)]
struct BuildState {
    printed_name: String,
    result: Option<BuildResult>,
    duration: Option<String>,
    error: Option<String>,
    /// Line of the result (or first mention), for provenance.
    line: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Section {
    Build,
    ErrorSummary,
    Artifacts,
}

#[derive(Debug)]
struct OpenBlock {
    block: ArtifactBlock,
    seen_blank: bool,
}

pub(crate) struct ConsoleParser {
    source: String,
    format: InputFormat,
    section: Section,
    open: Option<OpenBlock>,
    /// By bare build name.
    builds: BTreeMap<String, BuildState>,
    blocks: Vec<ArtifactBlock>,
    fingerprints: HashSet<u64>,
    interrupted: bool,
    no_artifacts_line: bool,
    warnings: Vec<String>,
}

impl ConsoleParser {
    pub(crate) fn new(source: &str, format: InputFormat) -> Self {
        ConsoleParser {
            source: source.to_string(),
            format,
            section: Section::Build,
            open: None,
            builds: BTreeMap::new(),
            blocks: Vec::new(),
            fingerprints: HashSet::new(),
            interrupted: false,
            no_artifacts_line: false,
            warnings: Vec::new(),
        }
    }

    /// Whether the next line must be fed whatever it holds (inside an artifact block); otherwise
    /// only lines that [`line_finder`] matches can change anything.
    pub(crate) fn wants_every_line(&self) -> bool {
        self.open.is_some()
    }

    /// Feeds one raw line (colour, CI prefixes and all).
    pub(crate) fn feed(
        &mut self,
        number: u64,
        raw: &[u8],
        truncated: bool,
    ) -> Result<(), InputError> {
        if self.open.is_some() {
            if truncated {
                return Err(self.error(number, "a line inside an artifact block is longer than 1 MiB; expected `Key: value` lines".into()));
            }
            let text = clean_line(raw);
            let text = self.utf8(number, &text)?.to_string();
            if self.feed_block(number, &text)? {
                return Ok(());
            }
        }
        if !worth_a_look(raw) {
            return Ok(());
        }
        let cleaned = clean_line(raw);
        let text = String::from_utf8_lossy(&cleaned);
        self.feed_text(number, &text)
    }

    /// Handles a line while a block is open. Returns false when the line ended the block and
    /// must be looked at as an ordinary line.
    fn feed_block(&mut self, number: u64, text: &str) -> Result<bool, InputError> {
        let open = self.open.as_mut().expect("called with an open block");
        let chroot = open.block.builder_id == CHROOT_BUILDER_ID;
        if text.is_empty() {
            if open.seen_blank || !open.block.fields.is_empty() || !open.block.resources.is_empty()
            {
                self.close_block(number)?;
            } else {
                open.seen_blank = true;
            }
            return Ok(true);
        }
        if chroot {
            if text.starts_with('/') && !text.contains(' ') {
                open.block.add_resource(text, number, &self.source)?;
                return Ok(true);
            }
        } else if let Some((key, value)) = grammar::key_value(text) {
            open.seen_blank = true;
            open.block.add_field(key, value, number, &self.source)?;
            return Ok(true);
        }
        self.close_block(number)?;
        Ok(false)
    }

    fn feed_text(&mut self, number: u64, text: &str) -> Result<(), InputError> {
        if let Some(result) = grammar::result_line(text) {
            self.on_result(number, result)?;
        } else if let Some(rest) = text.strip_prefix("==> ") {
            if rest.starts_with("Builds finished. The artifacts") {
                self.section = Section::Artifacts;
            } else if rest.starts_with("Builds finished but no artifacts were created") {
                self.section = Section::Build;
                self.no_artifacts_line = true;
            } else if rest.starts_with("Some builds didn't complete successfully") {
                self.section = Section::ErrorSummary;
            }
        } else if let Some((name, first)) = grammar::arrow_line(text) {
            self.on_arrow(number, name, first)?;
        } else if text.starts_with("Cleanly cancelled builds after being interrupted") {
            self.interrupted = true;
        } else if let Some(name) = grammar::build_announcement(text) {
            self.build_mut(name, number)?;
        }
        Ok(())
    }

    fn on_result(&mut self, number: u64, result: ResultLine<'_>) -> Result<(), InputError> {
        let (name, outcome, duration, error) = match result {
            ResultLine::Finished { build, duration } => {
                (build, BuildResult::Succeeded, duration, None)
            }
            ResultLine::Errored {
                build,
                duration,
                error,
            } => (build, BuildResult::Failed, duration, Some(error)),
        };
        let state = self.build_mut(name, number)?;
        state.result = Some(outcome);
        state.duration = duration.map(str::to_string);
        state.error = error.map(bounded_error);
        state.line = number;
        Ok(())
    }

    fn on_arrow(&mut self, number: u64, name: &str, first: &str) -> Result<(), InputError> {
        let builder_id = match first {
            VM_IMAGE_HEADER => VM_IMAGE_BUILDER_ID,
            CHROOT_HEADER => CHROOT_BUILDER_ID,
            _ => {
                if self.section == Section::ErrorSummary {
                    let state = self.build_mut(name, number)?;
                    state.result.get_or_insert(BuildResult::Failed);
                    state.error.get_or_insert_with(|| bounded_error(first));
                } else if self.section == Section::Artifacts {
                    self.warn(format!("line {number}: the artifact of `{name}` is not an Azure image (`{first}`); skipped"));
                }
                return Ok(());
            }
        };
        self.build_mut(name, number)?;
        self.open = Some(OpenBlock {
            block: ArtifactBlock::new(name, builder_id, number),
            seen_blank: false,
        });
        Ok(())
    }

    /// Starts an artifact block from Packer's machine-readable `artifact` lines.
    pub(crate) fn feed_artifact_string(
        &mut self,
        number: u64,
        build: &str,
        text: &str,
    ) -> Result<(), InputError> {
        let mut lines = text.split('\n');
        let first = lines.next().unwrap_or("").trim_end();
        self.close_block(number)?;
        self.on_arrow(number, build, first)?;
        if self.open.is_none() {
            return Ok(());
        }
        for line in lines {
            let line = line.trim_end_matches('\r');
            if self.open.is_none() || !self.feed_block(number, line.trim_end())? {
                break;
            }
        }
        self.close_block(number)
    }

    fn close_block(&mut self, number: u64) -> Result<(), InputError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let fingerprint = open.block.fingerprint();
        if self.fingerprints.contains(&fingerprint) {
            return Ok(());
        }
        if self.blocks.len() >= MAX_IMAGES {
            return Err(self.error(
                open.block.first_line.min(number),
                format!("more than {MAX_IMAGES} distinct artifact blocks; expected the few images of one Packer run"),
            ));
        }
        self.fingerprints.insert(fingerprint);
        self.blocks.push(open.block);
        Ok(())
    }

    fn build_mut(&mut self, name: &str, number: u64) -> Result<&mut BuildState, InputError> {
        if let Some(c) = crate::record::control_character(name) {
            return Err(self.error(
                number,
                format!(
                    "the build name holds the control character {c}; expected a Packer build name"
                ),
            ));
        }
        let bare = split_build_name(name).1;
        if !self.builds.contains_key(bare) && self.builds.len() >= MAX_BUILDS {
            return Err(self.error(
                number,
                format!("more than {MAX_BUILDS} builds; expected the few builds of one Packer run"),
            ));
        }
        let state = self
            .builds
            .entry(bare.to_string())
            .or_insert_with(|| BuildState {
                printed_name: name.to_string(),
                line: number,
                ..BuildState::default()
            });
        // Prefer the prefixed form (`azure-arm.x`): it also tells the builder type.
        if name.len() > state.printed_name.len() {
            state.printed_name = name.to_string();
        }
        Ok(state)
    }

    fn utf8<'a>(&self, number: u64, bytes: &'a [u8]) -> Result<&'a str, InputError> {
        std::str::from_utf8(bytes).map_err(|e| {
            self.error(
                number,
                format!(
                    "invalid UTF-8 at byte {} of an artifact line; expected text",
                    e.valid_up_to()
                ),
            )
        })
    }

    fn error(&self, number: u64, problem: String) -> InputError {
        InputError::new(&self.source, Some(number), problem)
    }

    fn warn(&mut self, message: String) {
        if self.warnings.len() < 100 {
            self.warnings.push(redact_secrets(&message).into_owned());
        }
    }

    fn provenance(&self) -> Provenance {
        Provenance {
            source: self.source.clone(),
            format: self.format,
            first_line: None,
            last_line: None,
            packer_run_uuid: None,
            manifest: None,
        }
    }

    /// Turns everything seen into records: one per distinct image, one per failed or
    /// interrupted build. Builds that never reported a result are listed as incomplete.
    pub(crate) fn finish(mut self, last_line: u64) -> Result<Parsed, InputError> {
        let ended_inside_block = self.open.is_some();
        self.close_block(last_line)?;
        let mut records = Vec::new();
        let mut with_image: HashSet<String> = HashSet::new();
        for block in std::mem::take(&mut self.blocks) {
            let mut record = block.into_record(self.provenance())?;
            if let Some(state) = self.builds.get(&record.build) {
                record.duration = state.duration.clone();
                record.duration_seconds = state
                    .duration
                    .as_deref()
                    .and_then(grammar::duration_seconds);
                if record.build_name.len() < state.printed_name.len() {
                    let printed = state.printed_name.clone();
                    let (ty, _) = split_build_name(&printed);
                    record.builder_type = ty.map(str::to_string);
                    record.build_name = printed;
                }
            }
            with_image.insert(record.build.clone());
            records.push(record);
        }
        let mut incomplete = Vec::new();
        for (bare, state) in &self.builds {
            let result = match state.result {
                Some(BuildResult::Failed) if self.interrupted => BuildResult::Interrupted,
                Some(BuildResult::Failed) => BuildResult::Failed,
                None if self.interrupted => BuildResult::Interrupted,
                _ => {
                    if !with_image.contains(bare) {
                        incomplete.push(state.printed_name.clone());
                    }
                    continue;
                }
            };
            let mut record = Record::new(&state.printed_name, result, self.provenance());
            record.error = state.error.clone().or_else(|| {
                (result == BuildResult::Interrupted)
                    .then(|| "build was interrupted before it finished".to_string())
            });
            record.duration = state.duration.clone();
            record.duration_seconds = state
                .duration
                .as_deref()
                .and_then(grammar::duration_seconds);
            record.provenance.first_line = Some(state.line);
            record.provenance.last_line = Some(state.line);
            records.push(record);
        }
        records.sort_by_key(|r| r.provenance.first_line);
        records.iter_mut().for_each(Record::redact);
        if self.no_artifacts_line && records.iter().all(|r| !r.has_image()) {
            self.warn("Packer said: `Builds finished but no artifacts were created.`".into());
        }
        Ok(Parsed {
            records,
            incomplete,
            warnings: self.warnings,
            ended_inside_block,
        })
    }
}

/// Finds the lines that can matter outside an artifact block: everything [`worth_a_look`]
/// accepts contains one of these.
pub(crate) fn line_finder() -> aho_corasick::AhoCorasick {
    // Each pattern starts with bytes that are rare in provisioner output, so the SIMD
    // prefilter (Teddy) skips noise without stopping: `==> ` alone starts every say line.
    // Leftmost matching is what enables the packed (Teddy) searcher.
    aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostFirst)
        .build([
            "Build '",
            "--> ",
            "> Builds finished",
            "> Some builds",
            "Cleanly cancelled",
            "output will be in this color.",
        ])
        .expect("fixed patterns build")
}

/// The fast filter: a line matters only if, after its prefixes, it starts like a result,
/// section or artifact line, or ends like a build announcement. Most of a build log is
/// provisioner noise and stops here.
fn worth_a_look(raw: &[u8]) -> bool {
    const STARTS: [&[u8]; 5] = [
        b"Build '",
        b"--> ",
        b"==> Builds",
        b"==> Some builds",
        b"Cleanly cancelled",
    ];
    let start = skip_line_prefix(raw);
    if STARTS.iter().any(|s| start.starts_with(s)) {
        return true;
    }
    let tail = &raw[raw.len().saturating_sub(48)..];
    memchr::memmem::find(tail, b"in this color.").is_some()
}

fn bounded_error(text: &str) -> String {
    let text = redact_secrets(text);
    if text.len() <= MAX_ERROR_TEXT {
        return text.into_owned();
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}
