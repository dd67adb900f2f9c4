//! A YAML emitter for Kubernetes manifests. serde_norway writes YAML 1.2, where `on`, `yes`
//! or `1:20` are plain strings, but Kubernetes tooling still reads YAML 1.1, where they are
//! booleans and numbers: `pool: on` would reach the API server as `true`. So this emitter
//! writes a string plain only when it is unambiguous in both, and double-quotes it otherwise.

use serde_norway::Value;
use std::fmt::Write as _;

/// One YAML document (without the `---` line).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Mapping(m) if !m.is_empty() => mapping(&mut out, m, 0),
        Value::Sequence(s) if !s.is_empty() => sequence(&mut out, s, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn mapping(out: &mut String, m: &serde_norway::Mapping, indent: usize) {
    for (i, (k, v)) in m.iter().enumerate() {
        // The first entry of a mapping inside a sequence item follows the `- ` directly.
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        let _ = write!(out, "{}:", scalar(k));
        value_after_key(out, v, indent);
    }
}

fn sequence(out: &mut String, s: &[Value], indent: usize) {
    for item in s {
        pad(out, indent);
        out.push_str("- ");
        match untag(item) {
            Value::Mapping(m) if !m.is_empty() => mapping(out, m, indent + 2),
            Value::Sequence(inner) if !inner.is_empty() => {
                out.push('\n');
                sequence(out, inner, indent + 2);
            }
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn value_after_key(out: &mut String, v: &Value, indent: usize) {
    match untag(v) {
        Value::Mapping(m) if !m.is_empty() => {
            out.push('\n');
            mapping(out, m, indent + 2);
        }
        // kubectl's style: sequence items at the key's indentation.
        Value::Sequence(s) if !s.is_empty() => {
            out.push('\n');
            sequence(out, s, indent);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => untag(&t.value),
        other => other,
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn scalar(v: &Value) -> String {
    match untag(v) {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if is_plain_safe(s) => s.clone(),
        // A JSON string is a valid YAML double-quoted scalar.
        Value::String(s) => serde_json::to_string(s).expect("strings serialise"),
        Value::Mapping(_) => "{}".into(),
        Value::Sequence(_) => "[]".into(),
        Value::Tagged(_) => unreachable!("untagged above"),
    }
}

/// Plain only for strings no YAML 1.1 or 1.2 reader takes for anything but that string:
/// starts with a letter or `/`, only `[A-Za-z0-9_./@+=-]`, and not a YAML 1.1 boolean/null word.
pub fn is_plain_safe(s: &str) -> bool {
    const WORDS: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
    ];
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./@+=-".contains(c))
        && !WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(yaml_in: &str) -> (Value, String, Value) {
        let v: Value = serde_norway::from_str(yaml_in).unwrap();
        let text = to_yaml(&v);
        let back: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        (v, text, back)
    }

    #[test]
    fn ambiguous_strings_are_quoted_and_survive() {
        let (v, text, back) = round_trip(
            "a: 'on'\nb: '1.30'\nc: '0123'\nd: 'x: y'\ne: '#x'\nf: ''\ng: 'yes'\nh: '1:20'\ni: 'v1.30.3'\nj: Standard_D2s_v3\nk: \"two\\nlines\"\nl: 'null'\nm: '-1'\n",
        );
        assert_eq!(back, v);
        for quoted in [
            "a: \"on\"",
            "b: \"1.30\"",
            "c: \"0123\"",
            "d: \"x: y\"",
            "e: \"#x\"",
            "f: \"\"",
            "g: \"yes\"",
            "h: \"1:20\"",
            "k: \"two\\nlines\"",
            "l: \"null\"",
            "m: \"-1\"",
        ] {
            assert!(
                text.lines().any(|l| l == quoted),
                "missing `{quoted}` in\n{text}"
            );
        }
        assert!(text.lines().any(|l| l == "i: v1.30.3"));
        assert!(text.lines().any(|l| l == "j: Standard_D2s_v3"));
    }

    #[test]
    fn nested_structures_round_trip() {
        let (v, text, back) = round_trip(
            "spec:\n  list:\n  - name: a\n    deep:\n      x: 1\n  - plain\n  - - nested\n  empty: {}\n  none: []\n  n: null\n  t: true\n  f: 1.5\n",
        );
        assert_eq!(back, v, "{text}");
        assert!(
            text.contains("  - name: a\n    deep:\n      x: 1\n"),
            "{text}"
        );
    }
}
