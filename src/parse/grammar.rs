//! nom grammars for the single lines sigcat cares about. Each takes a cleaned line (no colour,
//! no prefixes, see [`super::lines::clean_line`]) and returns `None` when the line is not of
//! that kind.

use nom::{
    IResult, Parser,
    branch::alt,
    bytes::complete::{tag, take_till1, take_until, take_while, take_while1},
    character::complete::{alpha1, char, digit1, space1},
    combinator::{all_consuming, map_opt, map_res, opt, recognize, rest},
    multi::separated_list1,
    sequence::{delimited, pair, preceded, terminated},
};

/// `Build 'NAME' finished...` / `Build 'NAME' errored...` (Packer 1.1.1 through today).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ResultLine<'a> {
    Finished {
        build: &'a str,
        duration: Option<&'a str>,
    },
    Errored {
        build: &'a str,
        duration: Option<&'a str>,
        error: &'a str,
    },
}

fn quoted_build(input: &str) -> IResult<&str, &str> {
    delimited(tag("Build '"), take_till1(|c| c == '\''), char('\'')).parse(input)
}

/// ` after DURATION` up to (not including) the terminator.
fn after_duration<'a>(
    terminator: &'static str,
) -> impl Parser<&'a str, Output = &'a str, Error = nom::error::Error<&'a str>> {
    preceded(tag(" after "), take_until(terminator))
}

pub(crate) fn result_line(line: &str) -> Option<ResultLine<'_>> {
    let finished = (
        quoted_build,
        tag(" finished"),
        opt(after_duration(".")),
        all_consuming(tag(".")),
    )
        .map(|(build, _, duration, _)| ResultLine::Finished { build, duration });
    let errored = (
        quoted_build,
        tag(" errored"),
        opt(after_duration(": ")),
        tag(":"),
        rest,
    )
        .map(
            |(build, _, duration, _, error): (&str, _, _, _, &str)| ResultLine::Errored {
                build,
                duration,
                error: error.trim(),
            },
        );
    alt((finished, errored)).parse(line).ok().map(|(_, r)| r)
}

/// `--> NAME: TEXT`, the per-artifact (or per-error, in the error summary) line.
pub(crate) fn arrow_line(line: &str) -> Option<(&str, &str)> {
    let parsed: IResult<&str, (&str, &str)> = (
        preceded(tag("--> "), take_until(": ")),
        preceded(tag(": "), rest),
    )
        .parse(line);
    parsed.ok().map(|(_, (name, text))| (name, text.trim()))
}

/// An artifact key: `OSType`, `AdditionalDiskUri (datadisk-1)`.
fn artifact_key(input: &str) -> IResult<&str, &str> {
    recognize(pair(
        take_while1(|c: char| c.is_ascii_alphanumeric() || c == '_'),
        opt(preceded(
            char(' '),
            delimited(
                char('('),
                take_while1(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                char(')'),
            ),
        )),
    ))
    .parse(input)
}

/// `Key: value`; the value may be empty (`Key: ` or, once trailing space is trimmed, `Key:`).
pub(crate) fn key_value(line: &str) -> Option<(&str, &str)> {
    let parsed: IResult<&str, (&str, &str)> = (
        terminated(artifact_key, char(':')),
        preceded(take_while(|c| c == ' '), rest),
    )
        .parse(line);
    match parsed {
        Ok((_, (key, value))) if key.starts_with(|c: char| c.is_ascii_alphabetic()) => {
            Some((key, value.trim_end()))
        }
        _ => None,
    }
}

/// `NAME: output will be in this color.`, printed once per build when it starts.
pub(crate) fn build_announcement(line: &str) -> Option<&str> {
    line.strip_suffix(": output will be in this color.")
        .filter(|name| !name.is_empty() && !name.contains(' '))
}

/// Packer's rounded durations: `27 minutes 12 seconds`, `1 second 74 milliseconds`.
pub(crate) fn duration_seconds(text: &str) -> Option<f64> {
    let amount = map_res(digit1, str::parse::<u64>);
    let term =
        (amount, space1, map_opt(alpha1, unit_seconds)).map(|(n, _, scale)| n as f64 * scale);
    let parsed: IResult<&str, Vec<f64>> =
        all_consuming(separated_list1(space1, term)).parse(text.trim());
    parsed.ok().map(|(_, terms)| terms.iter().sum())
}

/// Seconds in one of Packer's duration units (singular or plural).
fn unit_seconds(word: &str) -> Option<f64> {
    Some(match word.strip_suffix('s').unwrap_or(word) {
        "year" => 365.0 * 86400.0,
        "week" => 7.0 * 86400.0,
        "day" => 86400.0,
        "hour" => 3600.0,
        "minute" => 60.0,
        "second" => 1.0,
        "millisecond" => 1e-3,
        "microsecond" => 1e-6,
        "nanosecond" => 1e-9,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_of_every_packer_generation() {
        assert_eq!(
            result_line("Build 'azure-arm.sig-ubuntu-2404' finished after 27 minutes 12 seconds."),
            Some(ResultLine::Finished {
                build: "azure-arm.sig-ubuntu-2404",
                duration: Some("27 minutes 12 seconds")
            })
        );
        assert_eq!(
            result_line("Build 'sig-ubuntu-1804' finished."),
            Some(ResultLine::Finished {
                build: "sig-ubuntu-1804",
                duration: None
            })
        );
        assert_eq!(
            result_line(
                "Build 'sig-x' errored after 1 hour 12 seconds: Future#WaitForCompletion: the context deadline exceeded"
            ),
            Some(ResultLine::Errored {
                build: "sig-x",
                duration: Some("1 hour 12 seconds"),
                error: "Future#WaitForCompletion: the context deadline exceeded"
            })
        );
        assert_eq!(
            result_line("Build 'sig-x' errored: unexpected EOF"),
            Some(ResultLine::Errored {
                build: "sig-x",
                duration: None,
                error: "unexpected EOF"
            })
        );
        assert_eq!(result_line("Build 'x' is running"), None);
        assert_eq!(result_line("Build '' finished."), None);
    }

    #[test]
    fn key_values_with_empty_values_and_disk_suffixes() {
        assert_eq!(key_value("OSType: Linux"), Some(("OSType", "Linux")));
        assert_eq!(
            key_value("SharedImageGalleryReplicatedRegions: "),
            Some(("SharedImageGalleryReplicatedRegions", ""))
        );
        assert_eq!(
            key_value("SharedImageGalleryReplicatedRegions:"),
            Some(("SharedImageGalleryReplicatedRegions", ""))
        );
        assert_eq!(
            key_value("AdditionalDiskUri (datadisk-1): https://a/b.vhd"),
            Some(("AdditionalDiskUri (datadisk-1)", "https://a/b.vhd"))
        );
        assert_eq!(
            key_value("ManagedImageId: /subscriptions/x:y"),
            Some(("ManagedImageId", "/subscriptions/x:y"))
        );
        assert_eq!(key_value("==> x: y"), None);
        assert_eq!(key_value("no colon here"), None);
        assert_eq!(key_value("9Key: v"), None);
    }

    #[test]
    fn durations_add_up() {
        assert_eq!(duration_seconds("27 minutes 12 seconds"), Some(1632.0));
        assert_eq!(duration_seconds("1 hour 12 seconds"), Some(3612.0));
        let ms = duration_seconds("463 milliseconds 621 microseconds").unwrap();
        assert!((ms - 0.463621).abs() < 1e-9);
        assert_eq!(duration_seconds("1 second 74 milliseconds"), Some(1.074));
        assert_eq!(duration_seconds("soon"), None);
        assert_eq!(duration_seconds(""), None);
    }

    #[test]
    fn announcements_and_arrows() {
        assert_eq!(
            build_announcement("azure-arm.sig-ubuntu-2404: output will be in this color."),
            Some("azure-arm.sig-ubuntu-2404")
        );
        assert_eq!(
            arrow_line("--> sig-ubuntu-2404: Azure.ResourceManagement.VMImage:"),
            Some(("sig-ubuntu-2404", "Azure.ResourceManagement.VMImage:"))
        );
        assert_eq!(
            arrow_line("--> sig-x: Build was halted"),
            Some(("sig-x", "Build was halted"))
        );
        assert_eq!(arrow_line("-->nope"), None);
    }
}
