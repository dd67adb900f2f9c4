//! Records → text for people and CI systems. Every format is produced in memory first, so a
//! failure never leaves half an output behind.

use crate::error::Error;
use crate::record::{BuildResult, Record};
use std::fmt::Write as _;

/// The output formats of records (`parse -o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (the record schema).
    Json,
    /// One YAML document per record, quoted so that YAML 1.1 readers agree.
    Yaml,
    /// `key=value` lines for `$GITHUB_OUTPUT`.
    Github,
    /// `##vso[task.setvariable ...]` logging commands.
    AzureDevops,
    /// `export SIGCAT_KEY='value'` lines, safe to `eval`.
    Env,
    /// image-builder's `sig-publishing-info.json`.
    SigPublishingInfo,
}

/// Options that only some formats use.
#[derive(Debug, Clone, Default)]
pub struct FormatOptions {
    /// `tags` of sig-publishing-info.json (image-builder reads them from `tags.out`).
    pub tags: Option<String>,
}

/// Writes records in `format`; fails only when the format needs one image and the records hold another number.
pub fn render(
    records: &[Record],
    format: Format,
    options: &FormatOptions,
) -> Result<String, Error> {
    let mut out = String::new();
    match format {
        Format::Json => {
            for r in records {
                out.push_str(&serde_json::to_string(r).expect("records serialise"));
                out.push('\n');
            }
        }
        Format::Yaml => {
            let docs: Vec<serde_norway::Value> = records
                .iter()
                .map(|r| serde_norway::to_value(r).expect("records serialise"))
                .collect();
            out.push_str(&crate::yaml::to_stream(&docs));
        }
        Format::Github => {
            for (key, value) in variables(records) {
                if value.contains('\n') {
                    let delimiter = format!("SIGCAT_EOF_{:x}", crate::stable_hash(&value));
                    let _ = writeln!(out, "{key}<<{delimiter}\n{value}\n{delimiter}");
                } else {
                    let _ = writeln!(out, "{key}={value}");
                }
            }
        }
        Format::AzureDevops => {
            for (key, value) in variables(records) {
                let _ = writeln!(
                    out,
                    "##vso[task.setvariable variable={};isOutput=true]{}",
                    escape_vso_property(&key),
                    escape_vso_data(&value)
                );
            }
        }
        Format::Env => {
            for (key, value) in variables(records) {
                let _ = writeln!(
                    out,
                    "export SIGCAT_{}={}",
                    key.to_ascii_uppercase(),
                    shell_quote(&value)
                );
            }
        }
        Format::SigPublishingInfo => {
            let record = crate::record::the_one_image(records)?;
            // jq's layout (`jq -n --arg ... '$ARGS.named'`): two-space indent, keys in the
            // order of image-builder's step, so the file is byte for byte the same as theirs.
            let fields = sig_publishing_info(record, options);
            out.push_str("{\n");
            for (i, (key, value)) in fields.iter().enumerate() {
                let comma = if i + 1 < fields.len() { "," } else { "" };
                let _ = writeln!(out, "  \"{key}\": {}{comma}", jq_string(value));
            }
            out.push_str("}\n");
        }
    }
    Ok(out)
}

/// A JSON string as jq writes it: like serde_json, and DEL (`\u007f`) escaped too.
fn jq_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The keys and values of image-builder's `sig-publishing-info.json`, in its order.
fn sig_publishing_info(r: &Record, options: &FormatOptions) -> Vec<(&'static str, String)> {
    let m = r.managed_image.as_ref();
    let g = r.gallery_image.as_ref();
    let s = |v: Option<&String>| v.cloned().unwrap_or_default();
    let distro = r.distro();
    vec![
        ("distro", distro),
        (
            "hyperv_gen",
            hyperv_generation(g.map(|g| g.image_definition.as_str())).into(),
        ),
        ("os_type", s(r.os_type.as_ref())),
        (
            "managed_image_resource_group_name",
            s(m.map(|m| &m.resource_group)),
        ),
        ("managed_image_name", s(m.map(|m| &m.name))),
        ("managed_image_id", s(m.map(|m| &m.id))),
        (
            "managed_image_location",
            s(m.and_then(|m| m.location.as_ref())),
        ),
        ("managed_image_shared_image_gallery_id", s(g.map(|g| &g.id))),
        (
            "shared_image_gallery_resource_group",
            s(g.map(|g| &g.resource_group)),
        ),
        ("shared_image_gallery_name", s(g.map(|g| &g.gallery))),
        (
            "shared_image_gallery_image_name",
            s(g.map(|g| &g.image_definition)),
        ),
        (
            "shared_image_gallery_image_version",
            s(g.map(|g| &g.version)),
        ),
        // The tags come from the command line, where a SAS URL or a key can end up too.
        (
            "tags",
            crate::redact::redact_secrets(options.tags.as_deref().unwrap_or_default()).into_owned(),
        ),
    ]
}

/// The Hyper-V generation image-builder's `init-sig.sh` created the definition with: V2 for
/// gen2 targets and for confidential-VM ones (`capi-ubuntu-2404-cvm`,
/// `capi-windows-2022-cvm-containerd`), V1 otherwise. (image-builder's publishing step checks
/// only `*gen2`, so for CVM images it writes V1 where the definition is V2.)
pub fn hyperv_generation(definition: Option<&str>) -> &'static str {
    match definition {
        Some(d) if d.ends_with("gen2") || d.ends_with("-cvm") || d.contains("-cvm-") => "V2",
        _ => "V1",
    }
}

/// Flat `key → value` pairs for CI variables. With one record the keys are plain
/// (`gallery_image_version`); with several, each key is prefixed by the build
/// (`sig_ubuntu_2404_gallery_image_version`). `record_count` is always there.
pub fn variables(records: &[Record]) -> Vec<(String, String)> {
    let mut out = vec![("record_count".to_string(), records.len().to_string())];
    let mut used_prefixes: Vec<String> = Vec::new();
    for r in records {
        let prefix = if records.len() == 1 {
            String::new()
        } else {
            let base: String = r
                .build
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            let mut candidate = format!("{base}_");
            let mut n = 2;
            while used_prefixes.contains(&candidate) {
                candidate = format!("{base}_{n}_");
                n += 1;
            }
            used_prefixes.push(candidate.clone());
            candidate
        };
        for (key, value) in record_variables(r) {
            out.push((format!("{prefix}{key}"), value));
        }
    }
    out
}

fn record_variables(r: &Record) -> Vec<(&'static str, String)> {
    let m = r.managed_image.as_ref();
    let g = r.gallery_image.as_ref();
    let s = |v: Option<&String>| v.cloned().unwrap_or_default();
    let result = match r.result {
        BuildResult::Succeeded => "succeeded",
        BuildResult::Failed => "failed",
        BuildResult::Interrupted => "interrupted",
    };
    vec![
        ("build", r.build.clone()),
        ("build_name", r.build_name.clone()),
        ("result", result.to_string()),
        ("error", s(r.error.as_ref())),
        ("os_type", s(r.os_type.as_ref())),
        ("kubernetes_version", s(r.kubernetes_version.as_ref())),
        ("managed_image_id", s(m.map(|m| &m.id))),
        ("managed_image_name", s(m.map(|m| &m.name))),
        (
            "managed_image_resource_group",
            s(m.map(|m| &m.resource_group)),
        ),
        (
            "managed_image_location",
            s(m.and_then(|m| m.location.as_ref())),
        ),
        ("gallery_image_version_id", s(g.map(|g| &g.id))),
        ("gallery_subscription_id", s(g.map(|g| &g.subscription_id))),
        ("gallery_resource_group", s(g.map(|g| &g.resource_group))),
        ("gallery_name", s(g.map(|g| &g.gallery))),
        (
            "gallery_image_definition",
            s(g.map(|g| &g.image_definition)),
        ),
        ("gallery_image_version", s(g.map(|g| &g.version))),
        (
            "replicated_regions",
            g.map(|g| g.replicated_regions.join(","))
                .unwrap_or_default(),
        ),
        (
            "vhd_os_disk_uri",
            s(r.vhd.as_ref().and_then(|v| v.os_disk_uri.as_ref())),
        ),
    ]
}

/// POSIX single quoting: safe for `eval` whatever the value holds.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// Azure Pipelines' escaping for the data part of a logging command.
fn escape_vso_data(value: &str) -> String {
    value
        .replace('%', "%AZP25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// ...and for property values, which also end at `;` and `]`.
fn escape_vso_property(value: &str) -> String {
    escape_vso_data(value)
        .replace(';', "%3B")
        .replace(']', "%5D")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn vso_escaping_follows_the_task_lib() {
        assert_eq!(escape_vso_data("50%\nx"), "50%AZP25%0Ax");
        assert_eq!(escape_vso_property("a;b]"), "a%3Bb%5D");
    }
}
