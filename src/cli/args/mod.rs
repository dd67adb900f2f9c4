//! Command-line arguments, split by topic (as watchexec's `crates/cli/src/args/` is): where the
//! catalog is and how it is trusted ([`catalog`]), how templates and records are made
//! ([`image`]), what a query selects ([`filter`]), and where results go ([`output`]). The value
//! parsers every topic shares are here: they check a value when the flag is read, so the
//! library gets typed values and a bad one is a usage error that names the flag.

pub(crate) mod catalog;
pub(crate) mod filter;
pub(crate) mod image;
pub(crate) mod output;

use clap::ValueEnum;
use clap::builder::{PossibleValue, TypedValueParser};
use std::ffi::OsStr;
use std::marker::PhantomData;
use std::time::Duration;

/// Options every subcommand takes are listed under this heading in `--help`.
pub(crate) const GLOBAL: &str = "Global options";

/// A subcommand's `--help` epilogue: its examples, then the exit codes every subcommand shares.
pub(crate) fn help(examples: &str) -> String {
    if examples.is_empty() {
        return super::exit::TABLE.to_string();
    }
    format!("{examples}\n\n{}", super::exit::TABLE)
}

/// `-o FORMAT`, as in kubectl and az. A path where a format belongs (`-o records.json`, what
/// `-o` meant before) gets a message that names `--output-file`, instead of a file named `json`.
pub(crate) fn output_format<T: ValueEnum>(text: &str) -> Result<T, String> {
    if let Ok(format) = T::from_str(text, true) {
        return Ok(format);
    }
    let names: Vec<String> = T::value_variants()
        .iter()
        .filter_map(|v| v.to_possible_value())
        .map(|v| v.get_name().to_string())
        .collect();
    let mut message = format!("`{text}` is not an output format ({})", names.join(", "));
    if text.contains(['.', '/']) {
        message.push_str(&format!(
            "; -o names a format, as in kubectl; to write a file use --output-file {text}"
        ));
    }
    Err(message)
}

/// The value parser of `-o FORMAT`: [`output_format`]'s message on a bad value, and the
/// format names for completions and `--help` (a plain function parser would offer file names).
#[derive(Clone)]
pub(crate) struct FormatParser<T>(PhantomData<T>);

impl<T> FormatParser<T> {
    pub(crate) fn new() -> Self {
        FormatParser(PhantomData)
    }
}

impl<T: ValueEnum + Clone + Send + Sync + 'static> TypedValueParser for FormatParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        output_format::<T>(&text).map_err(|message| invalid(cmd, arg, &text, &message))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            T::value_variants()
                .iter()
                .filter_map(ValueEnum::to_possible_value),
        ))
    }
}

/// A usage error about one flag's value, worded as clap words its own.
pub(crate) fn invalid(
    cmd: &clap::Command,
    arg: Option<&clap::Arg>,
    value: &str,
    message: &str,
) -> clap::Error {
    let flag = arg.map(|a| a.to_string()).unwrap_or_else(|| "...".into());
    let mut cmd = cmd.clone();
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("invalid value '{value}' for '{flag}': {message}\n"),
    )
    .format(&mut cmd)
}

/// `500ms`, `5s`, `10m`, `1h 30m`: durations as humans write them (the `humantime` crate),
/// bounded so that no arithmetic on them can overflow.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like 500ms, 5s, 10m ({e})"))?;
    if d > Duration::from_secs(7 * 24 * 3600) {
        return Err(format!("`{text}` is longer than a week"));
    }
    Ok(d)
}

/// `--kubernetes-version`: checked when the flag is read, so the library gets a version.
pub(crate) fn parse_kubernetes_version(
    text: &str,
) -> Result<sigcat::record::kubernetes::KubeVersion, String> {
    sigcat::record::kubernetes::KubeVersion::parse(text).ok_or_else(|| {
        format!("`{text}` is not a Kubernetes version; expected MAJOR.MINOR.PATCH such as 1.30.3")
    })
}

/// A Kubernetes object name (a DNS-1123 subdomain: at most 253 characters of lowercase
/// letters, digits, `-` and `.`, each dot-separated part starting and ending with a letter or
/// digit), checked before anything is written rather than refused by the API server after.
pub(crate) fn parse_object_name(text: &str) -> Result<String, String> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !p.starts_with('-')
            && !p.ends_with('-')
    };
    if text.is_empty() || text.len() > 253 || !text.split('.').all(part_ok) {
        return Err(format!(
            "`{}` is not a Kubernetes object name: lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters",
            text.chars().take(80).collect::<String>()
        ));
    }
    Ok(text.to_string())
}

/// `--image-for SLOT=WHICH`: a machine slot and the record it gets, both plain text.
pub(crate) fn parse_slot_choice(text: &str) -> Result<(String, String), String> {
    let (slot, which) = text
        .split_once('=')
        .ok_or("expected SLOT=WHICH, e.g. md-gpu=sig-ubuntu-2204-gpu")?;
    let (slot, which) = (parse_text(slot)?, parse_text(which)?);
    Ok((slot.trim().to_string(), which.trim().to_string()))
}

/// Free text that ends up in the catalog and in tables people read (`--reason`): no control
/// characters, which could rewrite a terminal (ESC) or ring it (BEL).
pub(crate) fn parse_text(text: &str) -> Result<String, String> {
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!(
            "it holds the control character {:?}; write plain text",
            c
        ));
    }
    if text.trim().is_empty() {
        return Err("it is empty".into());
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_dns_1123_subdomains() {
        for good in ["my-class-v1-30", "a", "class.v1.30", &"a".repeat(253)] {
            assert!(parse_object_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Bad_Name",
            "-leading",
            "trailing-",
            "a..b",
            &"a".repeat(300),
            "UPPER",
        ] {
            assert!(parse_object_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reasons_are_plain_text() {
        assert!(parse_text("CVE-2026-1234 in containerd").is_ok());
        for bad in ["\x1b[2Jcleared", "bell\x07", "two\nlines", "", "  "] {
            assert!(parse_text(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("8days").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
