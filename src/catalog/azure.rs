//! The Azure Blob Storage backend (`azure_storage_blobs` 0.21), and how a catalog URL and the
//! usual environment variables become a client. Credentials never leave this module: messages
//! name the account, container and prefix only, and an HTTP failure becomes one line (status
//! and Azure's error code) rather than the SDK's dump of the exchange.

use super::settings::{AzureLocation, SettingsError, env_var};
use super::store::{Op, Page, PutMode, Store, StoreError, Versioned};
use crate::redact::redact_secrets;
use azure_core::StatusCode;
use azure_core::error::ErrorKind;
use azure_core::prelude::{IfMatchCondition, MaxResults, NextMarker};
use azure_storage::{CloudLocation, ConnectionString, StorageCredentials};
use azure_storage_blobs::prelude::{ClientBuilder, ContainerClient};
use futures::StreamExt;
use std::num::NonZeroU32;

/// Azurite's well-known account.
pub const EMULATOR_ACCOUNT: &str = "devstoreaccount1";

/// A container (and prefix) in Azure Blob Storage, or Azurite.
#[derive(Clone)]
pub struct AzureStore {
    container: ContainerClient,
    location: AzureLocation,
}

/// The client location and credentials from the environment, in the documented order.
fn credentials(
    location: &AzureLocation,
) -> Result<(CloudLocation, StorageCredentials), SettingsError> {
    let unusable =
        |variable: &'static str, problem: &str, e: azure_core::Error| SettingsError::Variable {
            variable,
            problem: problem.to_string(),
            source: Some(Box::new(e)),
        };
    let mut cloud = match &location.endpoint {
        Some(endpoint) => endpoint_location(&location.account, endpoint),
        None => CloudLocation::Public {
            account: location.account.clone(),
        },
    };
    const CS: &str = "AZURE_STORAGE_CONNECTION_STRING";
    if let Some(cs) = env_var(CS) {
        // The SDK's parse error quotes the value, which is a secret: it is not passed on.
        let parsed = ConnectionString::new(&cs).map_err(|_| SettingsError::Variable {
            variable: CS,
            problem: "it is not a connection string (KEY=VALUE;...)".into(),
            source: None,
        })?;
        if let Some(key) = parsed.account_key {
            account_key_is_base64(CS, key)?;
        }
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
            unusable(
                CS,
                "it holds no AccountKey or SharedAccessSignature for an account",
                e,
            )
        })?;
        return Ok((cloud, creds));
    }
    if let Some(key) = env_var("AZURE_STORAGE_KEY") {
        account_key_is_base64("AZURE_STORAGE_KEY", &key)?;
        return Ok((
            cloud,
            StorageCredentials::access_key(
                location.account.clone(),
                azure_core::auth::Secret::new(key),
            ),
        ));
    }
    const SAS: &str = "AZURE_STORAGE_SAS_TOKEN";
    if let Some(sas) = env_var(SAS) {
        let creds = StorageCredentials::sas_token(sas.trim_start_matches('?'))
            .map_err(|e| unusable(SAS, "it is not a SAS token (sv=...&sig=...)", e))?;
        return Ok((cloud, creds));
    }
    if location.account == EMULATOR_ACCOUNT {
        return Ok((cloud, StorageCredentials::emulator()));
    }
    let token = azure_identity::create_credential().map_err(|e| SettingsError::NoCredential {
        account: location.account.clone(),
        source: Box::new(e),
    })?;
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
    /// A client for `location`, with credentials from the environment in the documented order.
    pub fn from_env(location: AzureLocation) -> Result<AzureStore, SettingsError> {
        let (cloud, creds) = credentials(&location)?;
        // sigcat retries with its own bounds (crate::retry); the client must not retry on top.
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

    async fn create_container(&self, key: &str) -> Result<(), StoreError> {
        match self.container.create().into_future().await {
            Ok(_) => Ok(()),
            Err(e) => match classify(Op::Write, key, e) {
                StoreError::Precondition { .. } => Ok(()), // created meanwhile
                other => Err(other),
            },
        }
    }
}

/// An HTTP failure in one line: the status and Azure's error code, never the exchange (whose
/// dump carries URLs and headers).
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}{}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
pub struct HttpFailure {
    /// The HTTP status.
    pub status: u16,
    /// Azure's error code (`AuthorizationFailure`), when it sent one.
    pub code: Option<String>,
}

/// Maps an Azure error onto the store's kinds: whose fault, and whether to retry.
fn classify(op: Op, key: &str, e: azure_core::Error) -> StoreError {
    let key = key.to_string();
    if let ErrorKind::HttpResponse { status, error_code } = e.kind() {
        tracing::debug!(
            "{op} {key}: {}",
            redact_secrets(&format!("{e:?}")).replace('\n', " ")
        );
        let source = Box::new(HttpFailure {
            status: u16::from(*status),
            code: error_code.clone(),
        });
        return match *status {
            StatusCode::Conflict | StatusCode::PreconditionFailed => {
                StoreError::Precondition { key }
            }
            StatusCode::Unauthorized | StatusCode::Forbidden => {
                StoreError::Denied { op, key, source }
            }
            StatusCode::RequestTimeout | StatusCode::TooManyRequests => {
                StoreError::Unavailable { op, key, source }
            }
            s if u16::from(s) >= 500 => StoreError::Unavailable { op, key, source },
            _ => StoreError::Failed { op, key, source },
        };
    }
    if matches!(e.kind(), ErrorKind::Credential) {
        return StoreError::Denied {
            op,
            key,
            source: Box::new(CredentialFailure::of(&e)),
        };
    }
    let transient = matches!(e.kind(), ErrorKind::Io);
    let source = Box::new(e);
    if transient {
        StoreError::Unavailable { op, key, source }
    } else {
        StoreError::Failed { op, key, source }
    }
}

/// No credential of Microsoft Entra ID's chain could get a token: each one's reason, on one
/// line (the SDK's text spans several lines, one per credential tried).
#[derive(Debug, thiserror::Error)]
#[error("no Microsoft Entra ID credential could get a token ({0})")]
pub struct CredentialFailure(String);

impl CredentialFailure {
    fn of(e: &azure_core::Error) -> Self {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            text.push('\n');
            text.push_str(&c.to_string());
            cause = c.source();
        }
        // The SDK's lines: a heading ("failed to get bearer token", "Multiple errors were
        // encountered..."), then one line per credential tried, which is what the operator needs.
        let mut reasons: Vec<&str> = Vec::new();
        for line in text.lines().map(|l| l.trim().trim_end_matches(':')) {
            let lower = line.to_ascii_lowercase();
            let heading = lower.starts_with("failed to get bearer token")
                || lower.contains("multiple errors were encountered");
            if !line.is_empty() && !heading && !reasons.contains(&line) {
                reasons.push(line);
            }
        }
        CredentialFailure(if reasons.is_empty() {
            text.lines().collect::<Vec<_>>().join("; ")
        } else {
            reasons.join("; ")
        })
    }
}

fn is_status(e: &azure_core::Error, want: StatusCode) -> bool {
    matches!(e.kind(), ErrorKind::HttpResponse { status, .. } if *status == want)
}

impl Store for AzureStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        // Far above anything sigcat writes (a layout 3 index of 100,000 images is ~150 MB): a
        // planted blob of gigabytes is refused, not read into memory.
        self.get_at_most(key, 512 << 20).await
    }

    async fn get_at_most(&self, key: &str, max: usize) -> Result<Option<Versioned>, StoreError> {
        let blob = self.container.blob_client(self.key(key));
        let mut stream = blob.get().into_stream();
        let mut bytes = Vec::new();
        let mut etag = None;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) if is_status(&e, StatusCode::NotFound) => return Ok(None),
                // sigcat never writes empty objects; an empty one reads as 416 (see the notes).
                Err(e) if is_status(&e, StatusCode::RequestedRangeNotSatisfiable) => {
                    return Err(StoreError::Planted {
                        op: Op::Read,
                        key: key.to_string(),
                        what: "an empty object".into(),
                    });
                }
                Err(e) => return Err(classify(Op::Read, key, e)),
            };
            etag.get_or_insert_with(|| chunk.blob.properties.etag.to_string());
            let data = chunk
                .data
                .collect()
                .await
                .map_err(|e| classify(Op::Read, key, e))?;
            bytes.extend(data);
            // Stopped at the first chunk past the limit, not after the whole blob.
            if bytes.len() > max {
                return Err(StoreError::too_large(key, max));
            }
        }
        Ok(Some(Versioned {
            bytes,
            etag: etag.unwrap_or_default(),
        }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        let blob = self.container.blob_client(self.key(key));
        let condition = match &mode {
            PutMode::Create => Some(IfMatchCondition::NotMatch("*".into())),
            PutMode::IfMatch(etag) => Some(IfMatchCondition::Match(etag.clone())),
            PutMode::Overwrite => None,
        };
        let attempt = || {
            // put_block_blob has no Cache-Control option in azure_storage_blobs 0.21; the
            // pipeline's CustomHeadersPolicy adds headers from the context (before signing).
            let mut headers = azure_core::headers::Headers::new();
            headers.insert("x-ms-blob-cache-control", cache_control(key));
            let mut context = azure_core::Context::new();
            context.insert(azure_core::CustomHeaders::from(headers));
            let put = blob
                .put_block_blob(bytes.clone())
                .content_type(content_type(key))
                .context(context);
            match &condition {
                Some(c) => put.if_match(c.clone()).into_future(),
                None => put.into_future(),
            }
        };
        match attempt().await {
            Ok(r) => Ok(r.etag),
            // The first write to a new catalog creates its container (404 ContainerNotFound).
            Err(e) if is_status(&e, StatusCode::NotFound) => {
                self.create_container(key).await?;
                attempt()
                    .await
                    .map(|r| r.etag)
                    .map_err(|e| classify(Op::Write, key, e))
            }
            Err(e) => Err(classify(Op::Write, key, e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let blob = self.container.blob_client(self.key(key));
        match blob.delete().into_future().await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, StatusCode::NotFound) => Ok(()),
            Err(e) => Err(classify(Op::Delete, key, e)),
        }
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page, StoreError> {
        let full = self.key(prefix);
        let strip = if self.location.prefix.is_empty() {
            0
        } else {
            self.location.prefix.len() + 1
        };
        // Azure's own page limit is 5000; its continuation marker is opaque.
        let max = u32::try_from(max.clamp(1, 5000)).unwrap_or(5000);
        let mut request = self
            .container
            .list_blobs()
            .prefix(full)
            .max_results(MaxResults::new(
                NonZeroU32::new(max).unwrap_or(NonZeroU32::MIN),
            ));
        if let Some(after) = after {
            request = request.marker(NextMarker::new(after.to_string()));
        }
        match request.into_stream().next().await {
            None => Ok(Page::default()),
            Some(Ok(page)) => {
                let mut keys: Vec<String> = page
                    .blobs
                    .blobs()
                    .map(|b| b.name.get(strip..).unwrap_or_default().to_string())
                    .collect();
                keys.sort();
                Ok(Page {
                    keys,
                    next: page.next_marker.map(|m| m.as_str().to_string()),
                })
            }
            Some(Err(e)) if is_status(&e, StatusCode::NotFound) => Ok(Page::default()),
            Some(Err(e)) => Err(classify(Op::List, prefix, e)),
        }
    }

    async fn exists(&self) -> Result<bool, StoreError> {
        // Listing needs only the rights every catalog credential has (a container SAS with
        // `list`); a missing container answers 404.
        let first = self
            .container
            .list_blobs()
            .max_results(MaxResults::new(NonZeroU32::MIN))
            .into_stream()
            .next()
            .await;
        match first {
            None | Some(Ok(_)) => Ok(true),
            Some(Err(e)) if is_status(&e, StatusCode::NotFound) => Ok(false),
            Some(Err(e)) => Err(classify(Op::List, "", e)),
        }
    }

    fn describe(&self) -> String {
        self.location.describe()
    }

    fn root_noun(&self) -> &'static str {
        "container"
    }
}

/// How long consumers other than sigcat (a CDN, a browser, a proxy) may keep a copy. What
/// changes in place must be revalidated every time (cheap: the ETag answers): the root and its
/// signature copy, the `latest/` pointers, and the signatures beside objects (a key rotation
/// replaces them). Everything else is written once under a name derived from its content.
fn cache_control(key: &str) -> &'static str {
    let changes = key == super::INDEX_KEY
        || key == super::objects::INDEX_SIGNATURE_KEY
        || key.starts_with("latest/")
        || (key.ends_with(".sig") && !key.starts_with("signatures/"));
    if changes {
        "no-cache"
    } else {
        "public, max-age=31536000, immutable"
    }
}

/// What consumers other than sigcat (a browser, curl, a CDN) are told the bytes are.
fn content_type(key: &str) -> &'static str {
    if key.ends_with(".json") {
        "application/json"
    } else if key.ends_with(".yaml") {
        "application/yaml"
    } else if key.ends_with(".sig") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

/// An account key is base64 (the SDK would otherwise fail later, while signing a request, in
/// words that blame the wrong credential).
fn account_key_is_base64(variable: &'static str, key: &str) -> Result<(), SettingsError> {
    use base64ct::{Base64, Encoding};
    match Base64::decode_vec(key.trim()) {
        Ok(bytes) if !bytes.is_empty() => Ok(()),
        _ => Err(SettingsError::Variable {
            variable,
            problem: "its account key is not base64 (copy it again from the portal, or `az storage account keys list`)".into(),
            source: None,
        }),
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
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SECRET"), "{err}");
        let err = AzureLocation::parse("https://user:hunter2@acct.blob.core.windows.net/c")
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("hunter2") && err.contains("user or password"),
            "{err}"
        );
    }
}
