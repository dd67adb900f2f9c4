//! The operator's settings for a catalog: where it is (`--catalog`, `SIGCAT_CATALOG`) and the
//! credential variables. Problems here are the operator's to fix, and say which setting.

use crate::redact::redact_secrets;
use std::path::PathBuf;

/// Every form `--catalog` accepts, for messages.
pub const ACCEPTED_FORMS: &str = "a directory (or file://DIR), azblob://ACCOUNT/CONTAINER[/PREFIX], https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX], or http(s)://HOST:PORT/ACCOUNT/CONTAINER[/PREFIX] (a custom endpoint such as Azurite)";

/// A catalog setting the operator must fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The catalog location is not one sigcat understands.
    #[error("`{given}` is not a catalog location: {why}; expected {ACCEPTED_FORMS}")]
    Location {
        /// The location as given (redacted).
        given: String,
        /// What is wrong with it.
        why: String,
    },
    /// A credential variable is set, but to something unusable.
    #[error("{variable} is set but not usable: {problem}")]
    Variable {
        /// The variable.
        variable: &'static str,
        /// What is wrong with it.
        problem: String,
        /// What the parser said.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// No credential in the environment, and Microsoft Entra ID is not configured either.
    #[error(
        "no storage credential for account `{account}`: set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or configure Microsoft Entra ID (workload identity, managed identity or `az login`)"
    )]
    NoCredential {
        /// The account.
        account: String,
        /// Why Microsoft Entra ID could not be used.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A location this build cannot open (built without the feature it needs).
    #[error(
        "`{given}` needs the `{feature}` feature, which this sigcat was built without; build it with `cargo install sigcat --features {feature}` (on by default)"
    )]
    NotBuiltIn {
        /// The location as given.
        given: String,
        /// The Cargo feature it needs.
        feature: &'static str,
    },
}

/// Where an Azure catalog lives, parsed from the catalog URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureLocation {
    /// The storage account.
    pub account: String,
    /// The container.
    pub container: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// `http(s)://host[:port]` for emulator-style URLs (path starts with the account).
    pub endpoint: Option<String>,
}

impl AzureLocation {
    /// `azblob://ACCOUNT/CONTAINER[/PREFIX]`, `https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]`
    /// or `http://HOST:PORT/ACCOUNT/CONTAINER[/PREFIX]` (Azurite and other custom endpoints).
    /// The error says what is wrong with it, and the forms sigcat accepts.
    pub fn parse(url: &str) -> Result<AzureLocation, SettingsError> {
        let why = |why: &str| SettingsError::Location {
            given: redact_secrets(url).into_owned(),
            why: why.to_string(),
        };
        let bad = || why("it names no account and container");
        if url.contains('?') {
            return Err(why(
                "a catalog URL must not carry a query (put a SAS token in AZURE_STORAGE_SAS_TOKEN)",
            ));
        }
        if url.contains('@') {
            return Err(why(
                "a catalog URL must not carry a user or password (use the credential variables)",
            ));
        }
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let (account, endpoint) = match scheme {
            "azblob" => (host.to_string(), None),
            "https" | "http" => match host.strip_suffix(".blob.core.windows.net") {
                Some(account) => (account.to_string(), None),
                None => (
                    segments.next().ok_or_else(bad)?.to_string(),
                    Some(format!("{scheme}://{host}")),
                ),
            },
            _ => return Err(why("it is not an azblob, http or https URL")),
        };
        let container = segments.next().ok_or_else(bad)?.to_string();
        let prefix = segments.collect::<Vec<_>>().join("/");
        if account.is_empty()
            || !container
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            || container.len() < 3
        {
            return Err(why(
                "container names are 3-63 lower-case letters, digits and dashes",
            ));
        }
        Ok(AzureLocation {
            account,
            container,
            prefix,
            endpoint,
        })
    }

    /// For messages: no credential is ever part of this.
    pub fn describe(&self) -> String {
        let base = match &self.endpoint {
            Some(e) => format!("{e}/{}", self.account),
            None => format!("azblob://{}", self.account),
        };
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("/{}", self.prefix)
        };
        format!("{base}/{}{prefix}", self.container)
    }
}

/// Where a catalog is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory.
    Local(PathBuf),
    /// An Azure Blob Storage container.
    Azure(AzureLocation),
}

/// Parses a catalog location. A `SCHEME://` that is not one of sigcat's is an error, never a
/// local folder named `SCHEME:`.
pub fn parse_location(text: &str) -> Result<Location, SettingsError> {
    let bad = |why: &str| SettingsError::Location {
        given: redact_secrets(text).into_owned(),
        why: why.to_string(),
    };
    if text.trim().is_empty() {
        return Err(bad("it is empty"));
    }
    if let Some(m) = unexpanded_macro_in(text) {
        return Err(bad(&format!(
            "it contains `{m}`, an Azure DevOps macro that was never expanded: define that variable in the pipeline (or its variable group)"
        )));
    }
    let scheme = text.split_once("://").map(|(s, _)| s).filter(|s| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    match scheme.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(Location::Local(PathBuf::from(text))),
        Some("file") => file_url(&text["file://".len()..]).map_err(|why| bad(&why)),
        Some("azblob" | "http" | "https") => AzureLocation::parse(text).map(Location::Azure),
        Some(other) => Err(bad(&format!(
            "sigcat does not know the scheme `{other}://`"
        ))),
    }
}

/// The directory of a `file://` URL (after the scheme): `file:///PATH` or
/// `file://localhost/PATH`. A user, a password or another host is refused (sigcat reads local
/// directories only), never turned into a folder named after them.
fn file_url(rest: &str) -> Result<Location, String> {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(
            "a file URL must not carry a user or password; give the directory (file:///PATH)"
                .into(),
        );
    }
    if !authority.is_empty() && !authority.eq_ignore_ascii_case("localhost") {
        return Err(format!(
            "it names the host `{authority}`, but a catalog directory must be local: file:///ABSOLUTE/PATH, or the path itself"
        ));
    }
    if path.is_empty() {
        return Err("file:// names no directory".into());
    }
    Ok(Location::Local(PathBuf::from(path)))
}

/// An environment variable's value. Unset and empty are the same; so is an Azure DevOps
/// macro left unexpanded (`$(NAME)`, what a pipeline passes when NAME is undefined), which
/// is said once as a warning rather than read as a malformed secret.
pub fn env_var(name: &'static str) -> Option<String> {
    let value = std::env::var(name).ok().filter(|v| !v.trim().is_empty())?;
    if is_unexpanded_macro(&value) {
        tracing::warn!(
            "{name} is `{value}`, an Azure DevOps macro that was never expanded (its variable is undefined); treating {name} as unset"
        );
        return None;
    }
    Some(value)
}

/// The first `$(NAME)` inside a value, as an undefined Azure DevOps variable leaves it.
fn unexpanded_macro_in(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        let candidate = &rest[start..];
        if let Some(end) = candidate.find(')')
            && is_unexpanded_macro(&candidate[..=end])
        {
            return Some(&candidate[..=end]);
        }
        rest = &rest[start + 2..];
    }
    None
}

fn is_unexpanded_macro(value: &str) -> bool {
    value
        .trim()
        .strip_prefix("$(")
        .and_then(|v| v.strip_suffix(')'))
        .is_some_and(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-[]'".contains(c))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_schemes_are_refused_with_the_accepted_forms() {
        for bad in [
            "az://acct/images",
            "wasbs://c@acct.blob.core.windows.net/x",
            "S3://b",
        ] {
            let err = parse_location(bad).unwrap_err().to_string();
            assert!(err.contains("does not know the scheme"), "{err}");
            assert!(err.contains("azblob://ACCOUNT/CONTAINER"), "{err}");
        }
        assert_eq!(
            parse_location("cat").unwrap(),
            Location::Local(PathBuf::from("cat"))
        );
        assert_eq!(
            parse_location("file:///srv/cat").unwrap(),
            Location::Local(PathBuf::from("/srv/cat"))
        );
        assert!(matches!(
            parse_location("azblob://acct/images").unwrap(),
            Location::Azure(_)
        ));
        assert!(parse_location("").is_err());
        assert!(parse_location("file://").is_err());
        assert_eq!(
            parse_location("file://localhost/srv/cat").unwrap(),
            Location::Local(PathBuf::from("/srv/cat"))
        );
    }

    #[test]
    fn file_urls_never_become_folders_named_after_a_password_or_a_host() {
        let err = parse_location("file://user:PASSWORD@/tmp/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("PASSWORD"), "{err}");
        assert!(err.contains("must not carry a user or password"), "{err}");
        let err = parse_location("file://otherhost/p")
            .unwrap_err()
            .to_string();
        assert!(err.contains("names the host `otherhost`"), "{err}");
        let err = parse_location("file://cat").unwrap_err().to_string();
        assert!(err.contains("names the host `cat`"), "{err}");
    }

    #[test]
    fn azure_devops_macros_are_recognised() {
        assert!(is_unexpanded_macro("$(SIGCAT_STORAGE_CONNECTION_STRING)"));
        assert!(is_unexpanded_macro(" $(variables.x) "));
        assert!(!is_unexpanded_macro("$(rm -rf /)"));
        assert!(!is_unexpanded_macro(
            "DefaultEndpointsProtocol=https;AccountName=x"
        ));
        assert!(!is_unexpanded_macro("$()"));
        assert_eq!(
            unexpanded_macro_in("azblob://$(SIGCAT_STORAGE_ACCOUNT)/$(SIGCAT_CONTAINER)"),
            Some("$(SIGCAT_STORAGE_ACCOUNT)")
        );
        let err = parse_location("azblob://acct/$(SIGCAT_CONTAINER)")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`$(SIGCAT_CONTAINER)`, an Azure DevOps macro"),
            "{err}"
        );
        assert_eq!(unexpanded_macro_in("/srv/catalog"), None);
    }
}
