//! A YAML emitter for Kubernetes manifests. serde_norway writes YAML 1.2, where `on`, `yes`
//! or `1:20` are plain strings, but Kubernetes tooling still reads YAML 1.1, where they are
//! booleans and numbers: `pool: on` would reach the API server as `true`. So this emitter
//! writes a string plain only when it is unambiguous in both, and double-quotes it otherwise.

use serde_norway::Value;
use std::fmt::Write as _;

/// One YAML document (without the `---` line).
pub(crate) fn to_yaml(value: &Value) -> String {
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
        Value::String(s) => double_quoted(s),
        Value::Mapping(_) => "{}".into(),
        Value::Sequence(_) => "[]".into(),
        Value::Tagged(_) => unreachable!("untagged above"),
    }
}

/// A double-quoted scalar that every YAML reader takes back unchanged: anything outside YAML's
/// printable set is escaped (DEL, C1 controls, a BOM), and so are the characters YAML 1.1 treats
/// as line breaks (NEL, U+2028, U+2029), which a reader would otherwise fold into a space.
/// (A JSON string is not enough: JSON leaves DEL and C1 raw.)
pub(crate) fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            ' '..='~'
            | '\u{a0}'..='\u{d7ff}'
            | '\u{e000}'..='\u{fefe}'
            | '\u{ff00}'..='\u{fffd}' => out.push(c),
            c if c >= '\u{10000}' => out.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Plain only for strings no YAML 1.1 or 1.2 reader takes for anything but that string:
/// starts with a letter or `/`, only `[A-Za-z0-9_./@+=-]`, and not a YAML 1.1 boolean/null word.
pub(crate) fn is_plain_safe(s: &str) -> bool {
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
    fn controls_and_yaml_1_1_line_breaks_are_escaped() {
        let tricky = "del\u{7f} c1\u{80}\u{9f} nel\u{85} ls\u{2028} ps\u{2029} bom\u{feff} bell\u{7} tab\t nbsp\u{a0} é 😀";
        let q = double_quoted(tricky);
        assert_eq!(
            q,
            "\"del\\x7F c1\\x80\\x9F nel\\N ls\\L ps\\P bom\\uFEFF bell\\x07 tab\\t nbsp\u{a0} é 😀\""
        );
        // Read back by an independent YAML reader and by ours, each gives the original.
        let v: Value = serde_norway::from_str(&format!("k: {q}")).unwrap();
        assert_eq!(v["k"].as_str(), Some(tricky));
        let ours = crate::yaml::read::read_documents(&format!("k: {q}"), "t").unwrap();
        assert_eq!(ours[0].0["k"].as_str(), Some(tricky));
    }

    #[test]
    fn yaml_1_1_indicators_are_quoted_as_values_and_as_keys() {
        let mut m = serde_norway::Mapping::new();
        for s in ["=", "<<", "true", "1", "y"] {
            m.insert(Value::from(s), Value::from(s));
        }
        let text = to_yaml(&Value::Mapping(m));
        assert_eq!(
            text,
            "\"=\": \"=\"\n\"<<\": \"<<\"\n\"true\": \"true\"\n\"1\": \"1\"\n\"y\": \"y\"\n"
        );
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
