//! Typed errors of the library. The binary maps them to messages and exit codes.

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
            source_name: source_name.to_string(),
            line,
            problem: crate::record::redact::redact_secrets(&problem.into()).into_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// sigcat will not produce what was asked because applying it would fail or do harm
    /// (a Kubernetes minor-version skip, a third-party image without a Plan...).
    #[error("{0}")]
    Refused(String),
    /// The command line asked for something the inputs cannot give (e.g. one record but several).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
