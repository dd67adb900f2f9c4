//! Removes credentials from text before it is stored or shown.
//!
//! A SAS URL's secret is its `sig=` parameter: with it anyone can read the disk. sigcat keeps the
//! rest of the URL (account, container, blob, expiry) because it tells the user which disk it was.

use std::borrow::Cow;

pub const REDACTED: &str = "REDACTED";

/// Replaces the value of every `sig=` query parameter (any case), and of account keys in
/// connection strings (`AccountKey=`, `SharedAccessSignature=`), with `REDACTED`.
pub fn redact_secrets(text: &str) -> Cow<'_, str> {
    const MARKERS: [&str; 3] = ["sig=", "accountkey=", "sharedaccesssignature="];
    let lower = text.to_ascii_lowercase();
    if !MARKERS.iter().any(|m| lower.contains(m)) {
        return Cow::Borrowed(text);
    }
    let bytes = lower.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let marker = MARKERS
            .iter()
            .find(|m| bytes[i..].starts_with(m.as_bytes()) && starts_parameter(bytes, i));
        match marker {
            Some(m) => {
                out.push_str(&text[i..i + m.len()]);
                i += m.len();
                let end = text[i..]
                    .find(['&', ';', ' ', '\t', '"', '\'', '\n', '\r'])
                    .map_or(text.len(), |e| i + e);
                if end > i {
                    out.push_str(REDACTED);
                }
                i = end;
            }
            None => {
                let ch = text[i..].chars().next().expect("i is on a char boundary");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    Cow::Owned(out)
}

/// A marker counts only at the start of a word (after `?`, `&`, `;`, a space...), so that
/// `configsig=` is kept. Erring towards redaction is deliberate: a lost word is cheap, a leaked
/// signature is not.
fn starts_parameter(bytes: &[u8], at: usize) -> bool {
    at == 0 || !bytes[at - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_signatures_are_replaced() {
        let url = "https://acct.blob.core.windows.net/system/Microsoft.Compute/Images/images/packer-osDisk.vhd?se=2024-08-14T10%3A00%3A00Z&sig=abcDEF%2B123%3D&sp=r&sr=b&sv=2018-03-28";
        assert_eq!(
            redact_secrets(url),
            "https://acct.blob.core.windows.net/system/Microsoft.Compute/Images/images/packer-osDisk.vhd?se=2024-08-14T10%3A00%3A00Z&sig=REDACTED&sp=r&sr=b&sv=2018-03-28"
        );
        assert_eq!(
            redact_secrets("x?SIG=secret"),
            "x?SIG=REDACTED",
            "parameter names are case-insensitive"
        );
        assert_eq!(redact_secrets("a?sv=1&sig=zz"), "a?sv=1&sig=REDACTED");
    }

    #[test]
    fn connection_string_keys_are_replaced() {
        assert_eq!(
            redact_secrets(
                "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0==;EndpointSuffix=x"
            ),
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=REDACTED;EndpointSuffix=x"
        );
    }

    #[test]
    fn harmless_text_is_borrowed_unchanged() {
        assert!(matches!(redact_secrets("OSType: Linux"), Cow::Borrowed(_)));
        assert_eq!(redact_secrets("configsig=1"), "configsig=1");
        assert_eq!(redact_secrets("sig=abc"), "sig=REDACTED");
        assert_eq!(
            redact_secrets("ünïcödé ?sig=x ü"),
            "ünïcödé ?sig=REDACTED ü"
        );
    }
}
