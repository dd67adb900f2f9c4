//! Removes credentials from text before it is stored, shown or logged.
//!
//! One function, [`redact_secrets`], is the only rule book: records run every value through it
//! when they are built, errors when they are made, and the log layer on every line any crate
//! writes. What counts as a secret:
//! - a SAS signature: the value of `sig=` (any case), also URL-encoded (`%26sig=`, `sig%3D`);
//! - connection-string secrets: `AccountKey=`, `SharedAccessSignature=`, `password=`;
//! - authorization header values: `SharedKey ACCOUNT:SIGNATURE`, `Bearer TOKEN`;
//! - a password in a URL's user-info (`https://user:PASSWORD@host`);
//! - JSON Web Tokens (`eyJ...`.`...`.`...`) and Azure account keys (88 base64 characters
//!   ending in `==`) wherever they stand, since they are secrets even without a marker.
//!
//! - a PEM private key block (`-----BEGIN ... PRIVATE KEY-----`), whole;
//! - any value the process was told is secret ([`register_secret`]: a signing key's passphrase,
//!   the storage credentials read from the environment), wherever it appears, whatever it
//!   looks like.
//!
//! The rest of a SAS URL (account, container, blob, expiry) is kept: it tells the user which
//! disk it was. Erring towards redaction is deliberate: a lost word is cheap, a leaked
//! signature is not.

use std::borrow::Cow;
use std::sync::RwLock;

/// Values known to be secret in this process.
static KNOWN: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// From now on, `value` is redacted wherever it appears. Values shorter than 8 characters are
/// not registered: redacting every occurrence of a short word would garble everything else.
pub fn register_secret(value: &str) {
    let value = value.trim();
    if value.chars().count() < 8 {
        return;
    }
    let mut known = KNOWN.write().unwrap_or_else(|e| e.into_inner());
    if !known.iter().any(|k| k == value) {
        known.push(value.to_string());
    }
}

fn known_spans(text: &str, spans: &mut Vec<(usize, usize)>) {
    let known = KNOWN.read().unwrap_or_else(|e| e.into_inner());
    for secret in known.iter() {
        let mut from = 0;
        while let Some(pos) = text[from..].find(secret.as_str()) {
            let start = from + pos;
            spans.push((start, start + secret.len()));
            from = start + secret.len();
        }
    }
}

/// `-----BEGIN ... PRIVATE KEY-----` through its END line, or to the end of the text.
fn private_key_spans(text: &str, spans: &mut Vec<(usize, usize)>) {
    let mut from = 0;
    while let Some(pos) = text[from..].find("-----BEGIN ") {
        let start = from + pos;
        let header_end = text[start..]
            .find("-----\n")
            .or_else(|| text[start + 11..].find("-----").map(|e| e + 11));
        let Some(header_end) = header_end else { break };
        let header = &text[start..start + header_end];
        from = start + header_end + 5;
        if !header.contains("PRIVATE KEY") {
            continue;
        }
        let end = text[from..]
            .find("-----END ")
            .and_then(|e| {
                text[from + e + 9..]
                    .find("-----")
                    .map(|f| from + e + 9 + f + 5)
            })
            .unwrap_or(text.len());
        spans.push((start, end));
        from = end;
    }
}

/// What a secret is replaced with.
pub const REDACTED: &str = "REDACTED";

/// A marker whose value (up to one of `ends`) is a secret.
struct Marker {
    /// Lower-case.
    text: &'static str,
    ends: &'static [u8],
    /// Only a value that looks like a token, not a word: `Bearer eyJ0...` is a credential,
    /// "a bearer token" in a sentence is not.
    token_only: bool,
}

/// Where a URL query value or a header value ends.
const VALUE_ENDS: &[u8] = b"&; \t\r\n\"'<>\\,)]}`";
/// Connection-string values may hold `&` (a SAS token), so they end at `;` only.
const SETTING_ENDS: &[u8] = b"; \t\r\n\"'<>\\`";

const MARKERS: &[Marker] = &[
    Marker {
        text: "sig=",
        ends: VALUE_ENDS,
        token_only: false,
    },
    Marker {
        text: "sig%3d",
        ends: VALUE_ENDS,
        token_only: false,
    },
    // Encoded twice (a SAS URL inside a URL inside a URL).
    Marker {
        text: "sig%253d",
        ends: VALUE_ENDS,
        token_only: false,
    },
    Marker {
        text: "accountkey=",
        ends: SETTING_ENDS,
        token_only: false,
    },
    Marker {
        text: "sharedaccesssignature=",
        ends: SETTING_ENDS,
        token_only: false,
    },
    Marker {
        text: "password=",
        ends: SETTING_ENDS,
        token_only: false,
    },
    // Service Bus, Event Hubs and IoT Hub connection strings.
    Marker {
        text: "sharedaccesskey=",
        ends: SETTING_ENDS,
        token_only: false,
    },
    // SQL connection strings.
    Marker {
        text: "pwd=",
        ends: SETTING_ENDS,
        token_only: false,
    },
    // App Configuration (`Secret=`), SignalR and Web PubSub (`AccessKey=`) connection strings.
    Marker {
        text: "secret=",
        ends: SETTING_ENDS,
        token_only: false,
    },
    Marker {
        text: "accesskey=",
        ends: SETTING_ENDS,
        token_only: false,
    },
    Marker {
        text: "bearer ",
        ends: VALUE_ENDS,
        token_only: true,
    },
];

/// Returns `text` with every secret replaced by `REDACTED` (borrowed when there is none).
pub fn redact_secrets(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    marker_spans(text, &lower, &mut spans);
    shared_key_spans(&lower, &mut spans);
    url_password_spans(text, &mut spans);
    token_spans(text, &mut spans);
    private_key_spans(text, &mut spans);
    known_spans(text, &mut spans);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        let start = start.max(at);
        if end <= start {
            continue;
        }
        // Spans from different rules may overlap; a span never starts inside a character.
        if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// Whether `text` holds anything [`redact_secrets`] would remove (a value already redacted,
/// `sig=REDACTED`, holds nothing).
pub fn has_secret(text: &str) -> bool {
    redact_secrets(text) != text
}

/// A marker counts only at the start of a word (after `?`, `&`, `;`, a space, or an encoded
/// `?` / `&`), so that `configsig=1` is kept.
fn starts_word(lower: &[u8], at: usize) -> bool {
    at == 0
        || !lower[at - 1].is_ascii_alphanumeric()
        || lower[..at].ends_with(b"%26")
        || lower[..at].ends_with(b"%3f")
        || lower[..at].ends_with(b"%2526")
        || lower[..at].ends_with(b"%253f")
}

fn value_end(lower: &[u8], from: usize, ends: &[u8]) -> usize {
    let mut i = from;
    while i < lower.len() {
        if ends.contains(&lower[i])
            || lower[i..].starts_with(b"%26")
            || lower[i..].starts_with(b"%2526")
        {
            break;
        }
        i += 1;
    }
    i
}

fn marker_spans(text: &str, lower: &str, spans: &mut Vec<(usize, usize)>) {
    let bytes = lower.as_bytes();
    for marker in MARKERS {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(marker.text) {
            let at = from + pos;
            from = at + 1;
            if !starts_word(bytes, at) {
                continue;
            }
            let start = at + marker.text.len();
            let end = value_end(bytes, start, marker.ends);
            if end > start && (!marker.token_only || looks_like_token(&text[start..end])) {
                spans.push((start, end));
            }
        }
    }
}

/// A credential rather than a word: only characters a bearer token is made of (RFC 6750's
/// token68), and long or holding something other than lower-case letters (a digit, a capital,
/// `.`, `-`, `_`, `/`, `+`, `=`), as every real token does. Prose punctuation at the end
/// (`bearer token:`) is not part of it.
fn looks_like_token(value: &str) -> bool {
    let value = value.trim_end_matches(['.', ',', ':', ';', '!', '?']);
    let token68 = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    !value.is_empty()
        && value.chars().all(token68)
        && (value.len() >= 20 || value.chars().any(|c| !c.is_ascii_lowercase()))
}

/// `SharedKey ACCOUNT:SIGNATURE`: the signature after the colon.
fn shared_key_spans(lower: &str, spans: &mut Vec<(usize, usize)>) {
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("sharedkey ") {
        let at = from + pos + "sharedkey ".len();
        from = at;
        let end = value_end(bytes, at, VALUE_ENDS);
        if let Some(colon) = lower[at..end].find(':') {
            spans.push((at + colon + 1, end));
        }
    }
}

/// `scheme://user:PASSWORD@host`.
fn url_password_spans(text: &str, spans: &mut Vec<(usize, usize)>) {
    let mut from = 0;
    while let Some(pos) = text[from..].find("://") {
        let start = from + pos + 3;
        from = start;
        let authority_end = text[start..]
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .map_or(text.len(), |e| start + e);
        let authority = &text[start..authority_end];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
            && colon + 1 < at
        {
            spans.push((start + colon + 1, start + at));
        }
    }
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// JSON Web Tokens and Azure account keys: secrets by their shape alone.
fn token_spans(text: &str, spans: &mut Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_base64(bytes[i]) || (i > 0 && is_base64(bytes[i - 1])) {
            i += 1;
            continue;
        }
        // A JWT: three base64url parts, the first starting `eyJ` (`{"` encoded).
        if bytes[i..].starts_with(b"eyJ") {
            let mut end = i;
            let mut parts = 0;
            loop {
                let part_start = end;
                while end < bytes.len() && is_base64url(bytes[end]) {
                    end += 1;
                }
                if end > part_start {
                    parts += 1;
                }
                if parts < 3 && end < bytes.len() && bytes[end] == b'.' {
                    end += 1;
                } else {
                    break;
                }
            }
            if parts >= 2 && end - i >= 20 {
                spans.push((i, end));
                i = end;
                continue;
            }
        }
        let mut end = i;
        while end < bytes.len() && is_base64(bytes[end]) {
            end += 1;
        }
        i = end.max(i + 1);
    }
    // An account key: 64 bytes in base64 are 86 characters and `==`, wherever it ends, also
    // at the end of a longer run of base64 characters (`.../secrets/KEY==`, `+KEY==`).
    let mut from = 0;
    while let Some(pos) = text[from..].find("==") {
        let end = from + pos;
        from = end + 2;
        if bytes.get(end + 2) == Some(&b'=') || end < 86 {
            continue;
        }
        if bytes[end - 86..end].iter().all(|b| is_base64(*b)) {
            spans.push((end - 86, end + 2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn sas_signatures_are_replaced_in_every_spelling() {
        let url = "https://acct.blob.core.windows.net/system/Microsoft.Compute/Images/images/packer-osDisk.vhd?se=2024-08-14T10%3A00%3A00Z&sig=abcDEF%2B123%3D&sp=r&sr=b&sv=2018-03-28";
        assert_eq!(
            redact_secrets(url),
            "https://acct.blob.core.windows.net/system/Microsoft.Compute/Images/images/packer-osDisk.vhd?se=2024-08-14T10%3A00%3A00Z&sig=REDACTED&sp=r&sr=b&sv=2018-03-28"
        );
        assert_eq!(redact_secrets("x?SIG=secret"), "x?SIG=REDACTED");
        assert_eq!(redact_secrets("a?sv=1&sig=zz"), "a?sv=1&sig=REDACTED");
        // URL-encoded once: `&` and `=` as %26 and %3D.
        assert_eq!(
            redact_secrets("u%3Fsv%3D1%26sig%3DabcSECRET%26sp%3Dr"),
            "u%3Fsv%3D1%26sig%3DREDACTED%26sp%3Dr"
        );
        assert_eq!(
            redact_secrets("u?sv=1%26sig=abcSECRET"),
            "u?sv=1%26sig=REDACTED"
        );
        assert_eq!(redact_secrets("configsig=1"), "configsig=1");
    }

    #[test]
    fn connection_string_secrets_are_replaced() {
        assert_eq!(
            redact_secrets(
                "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0==;EndpointSuffix=x"
            ),
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=REDACTED;EndpointSuffix=x"
        );
        assert_eq!(
            redact_secrets("BlobEndpoint=https://a/;SharedAccessSignature=sv=1&sig=abc&sp=r;x=y"),
            "BlobEndpoint=https://a/;SharedAccessSignature=REDACTED;x=y"
        );
    }

    #[test]
    fn authorization_values_are_replaced() {
        assert_eq!(
            redact_secrets(
                r#"HeaderName("authorization"): HeaderValue("SharedKey devstoreaccount1:abc+/def=")"#
            ),
            r#"HeaderName("authorization"): HeaderValue("SharedKey devstoreaccount1:REDACTED")"#
        );
        assert_eq!(
            redact_secrets("Authorization: Bearer abc.def.ghi"),
            "Authorization: Bearer REDACTED"
        );
        // Words are not tokens: a message about a bearer token keeps its words.
        for prose in [
            "the bearer token was refused",
            "failed to get bearer token: no credential",
            "a bearer token.",
        ] {
            assert_eq!(redact_secrets(prose), prose);
        }
        assert_eq!(
            redact_secrets("bearer eyJhbGciOiJSUzI1NiJ9xyz"),
            "bearer REDACTED"
        );
    }

    #[test]
    fn secrets_without_markers_are_found_by_shape() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl_-x";
        assert_eq!(
            redact_secrets(&format!("token {jwt} end")),
            "token REDACTED end"
        );
        assert_eq!(
            redact_secrets(&format!("key is {ACCOUNT_KEY}.")),
            "key is REDACTED."
        );
        assert_eq!(
            redact_secrets("https://user:hunter2@example.com/x"),
            "https://user:REDACTED@example.com/x"
        );
        // A key at the end of a path or after `+` (a longer run of base64 characters).
        assert_eq!(
            redact_secrets(&format!("https://vault.example/secrets/{ACCOUNT_KEY} x")),
            "https://vault.example/secrets/REDACTED x"
        );
        assert_eq!(redact_secrets(&format!("a+{ACCOUNT_KEY}")), "a+REDACTED");
        // A SAS signature encoded twice.
        assert_eq!(
            redact_secrets("u?x=1%26sig%253DDOUBLEENCSECRET77%2526se%253D1"),
            "u?x=1%26sig%253DREDACTED%2526se%253D1"
        );
        // Ordinary ids and base64 of other lengths stay.
        let id = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.Compute/images/capi-1";
        assert_eq!(redact_secrets(id), id);
        assert!(matches!(redact_secrets("OSType: Linux"), Cow::Borrowed(_)));
    }

    #[test]
    fn private_keys_and_registered_values_are_replaced() {
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
        assert_eq!(
            redact_secrets(&format!("key: {pem}done")),
            "key: REDACTED\ndone"
        );
        let public = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----";
        assert_eq!(
            redact_secrets(public),
            public,
            "public keys are not secrets"
        );
        register_secret("correct horse battery");
        assert_eq!(
            redact_secrets("pass=correct horse battery!"),
            "pass=REDACTED!"
        );
        register_secret("short");
        assert_eq!(redact_secrets("short"), "short");
    }

    #[test]
    fn non_ascii_text_survives() {
        assert_eq!(
            redact_secrets("ünïcödé ?sig=x ü"),
            "ünïcödé ?sig=REDACTED ü"
        );
        assert!(has_secret("a sig=b"));
        assert!(!has_secret("a sig=REDACTED"), "already redacted");
    }
}
