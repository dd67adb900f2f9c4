//! Typed errors of the library, each saying whose fault it is. The binary maps them to
//! messages (adding which flag to use) and exit codes; nothing here knows about the CLI.

use std::fmt;

/// Input that sigcat cannot accept: points at the source, the line and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// File name as given by the user, or `<stdin>`.
    pub source_name: String,
    /// 1-based line number, when the problem is on one line.
    pub line: Option<u64>,
    /// What was wrong and what was expected. Already free of secrets.
    pub problem: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.source_name, line, self.problem),
            None => write!(f, "{}: {}", self.source_name, self.problem),
        }
    }
}

impl InputError {
    pub fn new(source_name: &str, line: Option<u64>, problem: impl Into<String>) -> Self {
        InputError {
            source_name: crate::redact::redact_secrets(source_name).into_owned(),
            line,
            problem: crate::redact::redact_secrets(&problem.into()).into_owned(),
        }
    }
}

/// Which image of the input to use was not clear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Selection {
    /// No record describes an image. `failed`: builds that failed or were interrupted.
    #[error("{}", no_image(failed))]
    NoImage { failed: Vec<String> },
    /// One image was needed, the input holds several.
    #[error("{} images ({}); one is needed", builds.len(), builds.join(", "))]
    SeveralImages { builds: Vec<String> },
}

fn no_image(failed: &[String]) -> String {
    if failed.is_empty() {
        "no image in the input (a truncated log, or not a Packer log?)".to_string()
    } else {
        format!(
            "no image in the input: the build failed or was interrupted ({})",
            failed.join(", ")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input's fault: the file, the line and what was expected.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// sigcat will not produce what was asked because it would fail or do harm.
    #[error(transparent)]
    Refused(#[from] crate::render::Refusal),
    /// The input does not hold exactly the one image that was needed.
    #[error(transparent)]
    Selection(#[from] Selection),
    /// A Kubernetes version was given for a build whose version the input already says.
    #[error(
        "{source_name}: build `{build}` is Kubernetes {known} (from its {known_from}), not {given}"
    )]
    VersionDisagrees {
        source_name: String,
        build: String,
        known: String,
        known_from: &'static str,
        given: String,
    },
}

impl Error {
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// An error and its causes on one line (`a: b: c`), each cause said once, secrets redacted:
/// how errors are shown and logged.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    crate::redact::redact_secrets(&text).into_owned()
}
