//! The Azure Blob Storage backend (`azure_storage_blobs` 0.21), and how a catalog URL and the
//! usual environment variables become a client. Credentials never leave this module: messages
//! name the account, container and prefix only, and every error text is redacted.

use super::store::{PutMode, Store, StoreError, Versioned};
use crate::record::redact::redact_secrets;
use azure_core::StatusCode;
use azure_core::error::ErrorKind;
use azure_core::prelude::IfMatchCondition;
use azure_storage::{CloudLocation, ConnectionString, StorageCredentials};
use azure_storage_blobs::prelude::{ClientBuilder, ContainerClient};
use futures::StreamExt;
use std::time::Duration;

/// Azurite's well-known account.
pub const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
/// A request that takes longer than this is treated as a transient failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where an Azure catalog lives, parsed from the catalog URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureLocation {
    pub account: String,
    pub container: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// `http(s)://host[:port]` for emulator-style URLs (path starts with the account).
    pub endpoint: Option<String>,
}

impl AzureLocation {
    /// `azblob://ACCOUNT/CONTAINER[/PREFIX]`, `https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]`
    /// or `http://HOST:PORT/ACCOUNT/CONTAINER[/PREFIX]` (Azurite and other custom endpoints).
    pub fn parse(url: &str) -> Result<AzureLocation, String> {
        let bad = || {
            format!(
                "`{}` is not a catalog URL; expected azblob://ACCOUNT/CONTAINER[/PREFIX] or http(s)://HOST/ACCOUNT/CONTAINER[/PREFIX]",
                redact_secrets(url)
            )
        };
        if url.contains('?') {
            return Err(
                "a catalog URL must not carry a query (put a SAS token in AZURE_STORAGE_SAS_TOKEN)"
                    .into(),
            );
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
            _ => return Err(bad()),
        };
        let container = segments.next().ok_or_else(bad)?.to_string();
        let prefix = segments.collect::<Vec<_>>().join("/");
        if account.is_empty()
            || !container
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            || container.len() < 3
        {
            return Err(format!(
                "{}: container names are 3-63 lower-case letters, digits and dashes",
                bad()
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

#[derive(Clone)]
pub struct AzureStore {
    container: ContainerClient,
    location: AzureLocation,
}

/// How credentials were found, for `--verbose`-style messages (never the secret itself).
fn credentials(location: &AzureLocation) -> Result<(CloudLocation, StorageCredentials), String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let fail =
        |what: &str, e: azure_core::Error| format!("{what}: {}", redact_secrets(&e.to_string()));
    let mut cloud = match &location.endpoint {
        Some(endpoint) => endpoint_location(&location.account, endpoint),
        None => CloudLocation::Public {
            account: location.account.clone(),
        },
    };
    if let Some(cs) = env("AZURE_STORAGE_CONNECTION_STRING") {
        let parsed = ConnectionString::new(&cs).map_err(|e| {
            fail(
                "AZURE_STORAGE_CONNECTION_STRING is not a connection string",
                e,
            )
        })?;
        if parsed.use_development_storage == Some(true) {
            if location.endpoint.is_none() {
                cloud = CloudLocation::Emulator {
                    address: "127.0.0.1".into(),
                    port: 10000,
                };
            }
            return Ok((cloud, StorageCredentials::emulator()));
        }
        if location.endpoint.is_none()
            && let Some(blob_endpoint) = parsed.blob_endpoint
        {
            cloud = endpoint_location(&location.account, blob_endpoint.trim_end_matches('/'));
        }
        let creds = parsed.storage_credentials().map_err(|e| {
            fail(
                "AZURE_STORAGE_CONNECTION_STRING has no usable credential",
                e,
            )
        })?;
        return Ok((cloud, creds));
    }
    if let Some(key) = env("AZURE_STORAGE_KEY") {
        return Ok((
            cloud,
            StorageCredentials::access_key(
                location.account.clone(),
                azure_core::auth::Secret::new(key),
            ),
        ));
    }
    if let Some(sas) = env("AZURE_STORAGE_SAS_TOKEN") {
        let creds = StorageCredentials::sas_token(sas.trim_start_matches('?'))
            .map_err(|e| fail("AZURE_STORAGE_SAS_TOKEN is not a SAS token", e))?;
        return Ok((cloud, creds));
    }
    if location.account == EMULATOR_ACCOUNT {
        return Ok((cloud, StorageCredentials::emulator()));
    }
    let token = azure_identity::create_credential().map_err(|e| fail("no storage credential in the environment and Microsoft Entra ID is not configured (set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or sign in for Entra ID)", e))?;
    Ok((cloud, StorageCredentials::token_credential(token)))
}

/// Azurite's path-style URLs need the emulator location (its signing differs); other custom
/// endpoints are `Custom`.
fn endpoint_location(account: &str, endpoint: &str) -> CloudLocation {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    let host_port = rest.split('/').next().unwrap_or(rest);
    if account == EMULATOR_ACCOUNT
        && let Some((address, port)) = host_port.rsplit_once(':')
        && let Ok(port) = port.parse()
    {
        return CloudLocation::Emulator {
            address: address.to_string(),
            port,
        };
    }
    CloudLocation::Custom {
        account: account.to_string(),
        uri: format!("{scheme}://{host_port}/{account}"),
    }
}

impl AzureStore {
    pub fn from_env(location: AzureLocation) -> Result<AzureStore, String> {
        let (cloud, creds) = credentials(&location)?;
        // sigcat retries with its own bound (RetryPolicy); the client must not retry on top.
        let container = ClientBuilder::with_location(cloud, creds)
            .retry(azure_core::RetryOptions::none())
            .container_client(location.container.clone());
        Ok(AzureStore {
            container,
            location,
        })
    }

    fn key(&self, key: &str) -> String {
        if self.location.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.location.prefix)
        }
    }

    async fn create_container(&self) -> Result<(), StoreError> {
        match timed(self.container.create().into_future()).await {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Maps an Azure error onto the trait's three kinds, with a redacted message.
fn classify(e: azure_core::Error) -> StoreError {
    // The crate's own text is generic ("failed to execute `reqwest` request"): the cause
    // (connection refused, DNS, TLS) is further down the chain.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    let message = redact_secrets(&message).into_owned();
    match e.kind() {
        ErrorKind::HttpResponse { status, .. } => match *status {
            StatusCode::Conflict | StatusCode::PreconditionFailed => StoreError::Conflict(message),
            StatusCode::RequestTimeout | StatusCode::TooManyRequests => {
                StoreError::Transient(message)
            }
            s if u16::from(s) >= 500 => StoreError::Transient(message),
            _ => StoreError::Permanent(message),
        },
        ErrorKind::Io => StoreError::Transient(message),
        _ => StoreError::Permanent(message),
    }
}

fn is_not_found(e: &azure_core::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::HttpResponse {
            status: StatusCode::NotFound,
            ..
        }
    )
}

fn is_range_not_satisfiable(e: &azure_core::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::HttpResponse {
            status: StatusCode::RequestedRangeNotSatisfiable,
            ..
        }
    )
}

async fn timed<T>(
    f: impl std::future::Future<Output = azure_core::Result<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.map_err(classify),
        Err(_) => Err(StoreError::Transient(format!(
            "no answer within {REQUEST_TIMEOUT:?}"
        ))),
    }
}

impl Store for AzureStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let blob = self.container.blob_client(self.key(key));
        let fetch = async {
            let mut stream = blob.get().into_stream();
            let mut bytes = Vec::new();
            let mut etag = None;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                etag.get_or_insert_with(|| chunk.blob.properties.etag.to_string());
                bytes.extend(chunk.data.collect().await?);
            }
            Ok::<_, azure_core::Error>(Some(Versioned {
                bytes,
                etag: etag.unwrap_or_default(),
            }))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, fetch).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if is_not_found(&e) => Ok(None),
            // sigcat never writes empty objects; an empty one reads as 416 (see the notes).
            Ok(Err(e)) if is_range_not_satisfiable(&e) => {
                Err(StoreError::Permanent(format!("{key}: empty object")))
            }
            Ok(Err(e)) => Err(classify(e)),
            Err(_) => Err(StoreError::Transient(format!(
                "no answer within {REQUEST_TIMEOUT:?}"
            ))),
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        let blob = self.container.blob_client(self.key(key));
        let condition = match &mode {
            PutMode::Create => IfMatchCondition::NotMatch("*".into()),
            PutMode::IfMatch(etag) => IfMatchCondition::Match(etag.clone()),
        };
        let attempt = || async {
            match tokio::time::timeout(
                REQUEST_TIMEOUT,
                blob.put_block_blob(bytes.clone())
                    .content_type("application/octet-stream")
                    .if_match(condition.clone())
                    .into_future(),
            )
            .await
            {
                Ok(r) => r.map(|r| r.etag).map_err(Some),
                Err(_) => Err(None),
            }
        };
        let timeout = || StoreError::Transient(format!("no answer within {REQUEST_TIMEOUT:?}"));
        match attempt().await {
            Ok(etag) => Ok(etag),
            // The first write to a new catalog creates its container (404 ContainerNotFound).
            Err(Some(e)) if is_not_found(&e) => {
                self.create_container().await?;
                attempt()
                    .await
                    .map_err(|e| e.map_or_else(timeout, classify))
            }
            Err(e) => Err(e.map_or_else(timeout, classify)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = self.key(prefix);
        let strip = if self.location.prefix.is_empty() {
            0
        } else {
            self.location.prefix.len() + 1
        };
        let listing = async {
            let mut out = Vec::new();
            let mut pages = self
                .container
                .list_blobs()
                .prefix(full.clone())
                .into_stream();
            while let Some(page) = pages.next().await {
                match page {
                    Ok(page) => out.extend(page.blobs.blobs().map(|b| b.name[strip..].to_string())),
                    Err(e) if is_not_found(&e) => return Ok(Vec::new()),
                    Err(e) => return Err(classify(e)),
                }
            }
            Ok(out)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, listing)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Transient(format!(
                    "no answer within {REQUEST_TIMEOUT:?}"
                )))
            })
    }

    fn describe(&self) -> String {
        self.location.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_urls() {
        let l = AzureLocation::parse("azblob://acct/images/team-a/prod").unwrap();
        assert_eq!(
            (
                l.account.as_str(),
                l.container.as_str(),
                l.prefix.as_str(),
                l.endpoint
            ),
            ("acct", "images", "team-a/prod", None)
        );
        let l = AzureLocation::parse("https://acct.blob.core.windows.net/images").unwrap();
        assert_eq!(
            (l.account.as_str(), l.container.as_str(), l.prefix.as_str()),
            ("acct", "images", "")
        );
        let l = AzureLocation::parse("http://127.0.0.1:10000/devstoreaccount1/catalog/x").unwrap();
        assert_eq!(l.endpoint.as_deref(), Some("http://127.0.0.1:10000"));
        assert_eq!(
            (l.account.as_str(), l.container.as_str(), l.prefix.as_str()),
            ("devstoreaccount1", "catalog", "x")
        );
        assert_eq!(
            l.describe(),
            "http://127.0.0.1:10000/devstoreaccount1/catalog/x"
        );
        assert!(AzureLocation::parse("azblob://acct").is_err());
        assert!(AzureLocation::parse("azblob://acct/Bad_Name").is_err());
        let err = AzureLocation::parse("https://acct.blob.core.windows.net/c?sv=1&sig=SECRET")
            .unwrap_err();
        assert!(!err.contains("SECRET"), "{err}");
    }
}
