//! Lines → records for Packer's `-machine-readable` output: `UNIX_SECONDS,TARGET,TYPE,ARG...`.
//! Console text (`ui` lines) is unescaped and handed to the console parser; `artifact` lines are
//! gathered per build and artifact index and handed over whole at their `end` line.

use super::console::ConsoleParser;
use crate::error::InputError;
use crate::record::InputFormat;
use std::collections::BTreeMap;

/// Pending `artifact` lines per (target, index); bounded like everything else.
const MAX_PENDING_ARTIFACTS: usize = 1024;

pub(crate) struct MachineReadableParser {
    console: ConsoleParser,
    /// The artifact string per (target, artifact index), until its `end` line.
    pending: BTreeMap<(String, String), Option<String>>,
}

/// Whether a line looks like machine-readable output (used for format detection).
pub(crate) fn looks_machine_readable(line: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    split_fields(text).is_some_and(|f| {
        f.len() >= 3
            && !f[2].is_empty()
            && f[2].bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    })
}

/// `TS,TARGET,TYPE,ARG...` → fields. Only the args are escaped, so a plain split on `,` is exact.
fn split_fields(line: &str) -> Option<Vec<&str>> {
    let (ts, _) = line.split_once(',')?;
    if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(line.split(',').collect())
}

/// Reverses Packer's argument escaping: `%!(PACKER_COMMA)` → `,`, `\n` → LF, `\r` → CR.
pub(crate) fn unescape(arg: &str) -> String {
    arg.replace("%!(PACKER_COMMA)", ",")
        .replace("\\n", "\n")
        .replace("\\r", "\r")
}

impl MachineReadableParser {
    pub(crate) fn new(source: &str) -> Self {
        MachineReadableParser {
            console: ConsoleParser::new(source, InputFormat::MachineReadable),
            pending: BTreeMap::new(),
        }
    }

    pub(crate) fn feed(
        &mut self,
        number: u64,
        raw: &[u8],
        truncated: bool,
    ) -> Result<(), InputError> {
        let text = String::from_utf8_lossy(raw);
        let Some(fields) = split_fields(text.trim_end()) else {
            // Not a machine-readable line (a stray line from a wrapper script): console rules.
            return self.console.feed(number, raw, truncated);
        };
        match (fields.get(2).copied(), fields.get(1).copied()) {
            (Some("ui"), _) if fields.len() >= 5 => {
                let message = unescape(&fields[4..].join(","));
                for line in message.split('\n') {
                    self.console.feed(number, line.as_bytes(), truncated)?;
                }
            }
            (Some("artifact"), Some(target)) if fields.len() >= 5 => {
                let key = (target.to_string(), fields[3].to_string());
                if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING_ARTIFACTS {
                    return Ok(());
                }
                let entry = self.pending.entry(key.clone()).or_default();
                match fields[4] {
                    "string" => *entry = Some(unescape(&fields[5..].join(","))),
                    "end" => {
                        if let Some(text) = self.pending.remove(&key).flatten() {
                            self.console.feed_artifact_string(number, target, &text)?;
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn finish(self, last_line: u64) -> Result<super::Parsed, InputError> {
        self.console.finish(last_line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_packer_arguments() {
        assert_eq!(unescape("a%!(PACKER_COMMA) b\\nc\\r"), "a, b\nc\r");
    }

    #[test]
    fn detects_machine_readable_lines() {
        assert!(looks_machine_readable(b"1721038893,,ui,say,hello"));
        assert!(looks_machine_readable(
            b"1721038893,azure-arm.x,artifact-count,2"
        ));
        assert!(!looks_machine_readable(b"==> azure-arm.x: hello, world"));
        assert!(!looks_machine_readable(b"2024-03-01T10:00:00Z,x,y"));
    }
}
