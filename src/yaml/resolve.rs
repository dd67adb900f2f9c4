//! What a YAML scalar means to kubectl. `kubectl apply -f` converts YAML to JSON with
//! sigs.k8s.io/yaml, which reads YAML 1.1 the way go-yaml v2 does: a plain `yes` or `on` is
//! `true`, `0123` is octal 83, `0x1F` is 31, and mapping keys are resolved too and then turned
//! back into strings (a key `y` becomes `"true"`). Reading `--from` and `--upgrade` input any
//! other way would re-emit `acceleratedNetworking: yes` as the string `"yes"`, which the CRD
//! rejects. These rules were checked against kubectl 1.37 (`kubectl patch --local -o json`).

use serde_norway::{Number, Value};

/// A scalar after resolution.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    /// A plain `<<`: merge the mapping(s) that follow into this one.
    Merge,
}

/// Why a scalar cannot be what its tag says (`!!int abc`), or cannot be sent as JSON (`.inf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unresolvable(pub String);

/// The core-schema tags go-yaml v2 honours; any other tag is ignored, as go-yaml does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoreTag {
    Str,
    Int,
    Float,
    Bool,
    Null,
    /// `!!binary`, `!!timestamp`: kept as the text.
    Text,
    Merge,
}

impl CoreTag {
    /// `suffix` of a `tag:yaml.org,2002:` tag.
    pub(crate) fn from_suffix(suffix: &str) -> Option<CoreTag> {
        Some(match suffix {
            "str" => CoreTag::Str,
            "int" => CoreTag::Int,
            "float" => CoreTag::Float,
            "bool" => CoreTag::Bool,
            "null" => CoreTag::Null,
            "binary" | "timestamp" => CoreTag::Text,
            "merge" => CoreTag::Merge,
            _ => return None,
        })
    }
}

/// Resolves one scalar. `plain`: written without quotes or block style (`|`, `>`); only those
/// are resolved implicitly. `tag`: an explicit core-schema tag, which forces resolution.
pub(crate) fn resolve(
    text: &str,
    plain: bool,
    tag: Option<CoreTag>,
) -> Result<Scalar, Unresolvable> {
    let implicit = match tag {
        None if !plain => return Ok(Scalar::Str(text.to_string())),
        None => implicit(text),
        Some(CoreTag::Str | CoreTag::Text) => return Ok(Scalar::Str(text.to_string())),
        Some(_) => implicit(text),
    };
    let fits = match (tag, &implicit) {
        (None, _) => true,
        (Some(CoreTag::Int), Scalar::Int(_) | Scalar::Uint(_))
        | (Some(CoreTag::Float), Scalar::Float(_))
        | (Some(CoreTag::Bool), Scalar::Bool(_))
        | (Some(CoreTag::Null), Scalar::Null)
        | (Some(CoreTag::Merge), Scalar::Merge) => true,
        // go-yaml accepts an integer where a float is asked for.
        (Some(CoreTag::Float), Scalar::Int(_) | Scalar::Uint(_)) => true,
        _ => false,
    };
    if !fits {
        return Err(Unresolvable(format!(
            "`{text}` is not a valid {}",
            match tag {
                Some(CoreTag::Int) => "!!int",
                Some(CoreTag::Float) => "!!float",
                Some(CoreTag::Bool) => "!!bool",
                Some(CoreTag::Null) => "!!null",
                _ => "!!merge",
            }
        )));
    }
    let scalar = match (tag, implicit) {
        (Some(CoreTag::Float), Scalar::Int(i)) => Scalar::Float(i as f64),
        (Some(CoreTag::Float), Scalar::Uint(u)) => Scalar::Float(u as f64),
        (_, s) => s,
    };
    if let Scalar::Float(f) = scalar
        && !f.is_finite()
    {
        return Err(Unresolvable(format!(
            "`{text}` is {f}, which JSON (and so the API server) cannot carry; kubectl refuses it too"
        )));
    }
    Ok(scalar)
}

/// go-yaml v2's `resolve` for an untagged plain scalar.
fn implicit(text: &str) -> Scalar {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Scalar::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Scalar::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        "<<" => return Scalar::Merge,
        _ => {}
    }
    let first = text.as_bytes()[0];
    if first == b'.' {
        // Go's ParseFloat on the text as written (no underscores removed).
        if is_yaml_float(text)
            && let Ok(f) = text.parse::<f64>()
        {
            return Scalar::Float(f);
        }
    } else if first.is_ascii_digit() || first == b'+' || first == b'-' {
        let plain: String = text.chars().filter(|&c| c != '_').collect();
        if let Some(i) = go_parse_int(&plain) {
            return Scalar::Int(i);
        }
        if let Some(u) = go_parse_uint(&plain) {
            return Scalar::Uint(u);
        }
        if is_yaml_float(&plain)
            && let Ok(f) = plain.parse::<f64>()
        {
            return Scalar::Float(f);
        }
        let binary = plain
            .strip_prefix("-0b")
            .map(|d| (true, d))
            .or_else(|| plain.strip_prefix("0b").map(|d| (false, d)));
        if let Some((negative, digits)) = binary
            && let Some(i) = signed(negative, u64::from_str_radix(digits, 2).ok())
        {
            return Scalar::Int(i);
        }
    }
    Scalar::Str(text.to_string())
}

/// Go's `strconv.ParseInt(s, 0, 64)`: optional sign, then `0x`, `0o`, `0b`, a leading `0`
/// (octal) or decimal.
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    signed(negative, go_parse_uint(rest))
}

fn signed(negative: bool, magnitude: Option<u64>) -> Option<i64> {
    let m = magnitude?;
    if negative {
        if m == 1 << 63 {
            Some(i64::MIN)
        } else {
            i64::try_from(m).ok().map(|v| -v)
        }
    } else {
        i64::try_from(m).ok()
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` (no sign accepted).
fn go_parse_uint(s: &str) -> Option<u64> {
    let lower = s.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &s[2..]),
        Some("0o") => (8, &s[2..]),
        Some("0b") => (2, &s[2..]),
        _ if s.len() > 1 && s.starts_with('0') => (8, &s[1..]),
        _ => (10, s),
    };
    // from_str_radix would accept a sign here; Go does not.
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// go-yaml v2's float pattern: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

impl Scalar {
    /// The value, for a mapping value or a sequence item.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Int(i) => Value::Number(Number::from(i)),
            Scalar::Uint(u) => Value::Number(Number::from(u)),
            Scalar::Float(f) => Value::Number(Number::from(f)),
            Scalar::Str(s) => Value::String(s),
            Scalar::Merge => Value::String("<<".into()),
        }
    }

    /// The key, as sigs.k8s.io/yaml turns a resolved key into a JSON object key; `None` for a
    /// null key, which it refuses.
    pub(crate) fn into_key(self) -> Option<String> {
        Some(match self {
            Scalar::Null => return None,
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Uint(u) => u.to_string(),
            Scalar::Float(f) => go_format_float32(f),
            Scalar::Str(s) => s,
            Scalar::Merge => "<<".into(),
        })
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`: shortest float32 digits, exponent form when
/// the exponent is below -4 or at least 6 (`1e+06`).
fn go_format_float32(f: f64) -> String {
    let x = f as f32;
    if x.is_nan() {
        return ".nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    let sci = format!("{x:e}"); // e.g. "-1.2345e-5", "1e6"
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> Scalar {
        resolve(s, true, None).unwrap()
    }

    /// Each expectation is what `kubectl patch --local -f F -p '{}' -o json` printed for the
    /// value (kubectl 1.37.1); the integration tests also ask kubectl itself.
    #[test]
    fn values_as_kubectl_reads_them() {
        use Scalar::*;
        for (text, want) in [
            ("yes", Bool(true)),
            ("on", Bool(true)),
            ("Y", Bool(true)),
            ("off", Bool(false)),
            ("n", Bool(false)),
            ("NO", Bool(false)),
            ("oN", Str("oN".into())),
            ("~", Null),
            ("", Null),
            ("0123", Int(83)),
            ("08", Float(8.0)),
            ("0128", Float(128.0)),
            ("0x1F", Int(31)),
            ("-0x10", Int(-16)),
            ("0o17", Int(15)),
            ("0b101", Int(5)),
            ("-0b11", Int(-3)),
            ("1_000", Int(1000)),
            ("0_7", Int(7)),
            ("00", Int(0)),
            ("+12", Int(12)),
            ("1e3", Float(1000.0)),
            ("1.", Float(1.0)),
            (".5", Float(0.5)),
            ("-.5e-3", Float(-0.0005)),
            ("99999999999999999999", Float(1e20)),
            ("18446744073709551615", Uint(u64::MAX)),
            ("-9223372036854775808", Int(i64::MIN)),
            ("1.30", Float(1.3)),
            ("2001-12-14", Str("2001-12-14".into())),
            ("1:20", Str("1:20".into())),
            ("v1.30.3", Str("v1.30.3".into())),
            ("0x", Str("0x".into())),
            ("+", Str("+".into())),
            ("-", Str("-".into())),
            ("=", Str("=".into())),
            ("<<", Merge),
        ] {
            assert_eq!(plain(text), want, "{text}");
        }
    }

    #[test]
    fn quoted_and_block_scalars_stay_strings() {
        assert_eq!(
            resolve("yes", false, None).unwrap(),
            Scalar::Str("yes".into())
        );
        assert_eq!(
            resolve("<<", false, None).unwrap(),
            Scalar::Str("<<".into())
        );
    }

    #[test]
    fn explicit_tags() {
        assert_eq!(
            resolve("12", true, Some(CoreTag::Str)).unwrap(),
            Scalar::Str("12".into())
        );
        assert_eq!(
            resolve("7", false, Some(CoreTag::Int)).unwrap(),
            Scalar::Int(7)
        );
        assert_eq!(
            resolve("3", true, Some(CoreTag::Float)).unwrap(),
            Scalar::Float(3.0)
        );
        assert_eq!(
            resolve("yes", true, Some(CoreTag::Bool)).unwrap(),
            Scalar::Bool(true)
        );
        assert!(resolve("abc", true, Some(CoreTag::Int)).is_err());
        assert!(resolve("1.5", true, Some(CoreTag::Int)).is_err());
    }

    #[test]
    fn infinity_and_nan_are_refused_like_kubectl_does() {
        for text in [".inf", "-.Inf", ".nan", "+.INF"] {
            assert!(resolve(text, true, None).is_err(), "{text}");
        }
    }

    #[test]
    fn keys_become_strings_as_sigs_k8s_io_yaml_makes_them() {
        let key = |s: &str| plain(s).into_key();
        assert_eq!(key("y").as_deref(), Some("true"));
        assert_eq!(key("n").as_deref(), Some("false"));
        assert_eq!(key("1").as_deref(), Some("1"));
        assert_eq!(key("0x10").as_deref(), Some("16"));
        assert_eq!(key("1.5").as_deref(), Some("1.5"));
        assert_eq!(key("1e6").as_deref(), Some("1e+06"));
        assert_eq!(key("123456.0").as_deref(), Some("123456"));
        assert_eq!(key("0.0001").as_deref(), Some("0.0001"));
        assert_eq!(key("0.00001").as_deref(), Some("1e-05"));
        assert_eq!(key("~"), None);
    }
}
