//! Where the catalog is, how long to wait on its storage, which keys it is trusted by, and
//! (for the commands that write) which key signs what is written.

use crate::cli::failure::Failure;
use clap::Args;
use sigcat::catalog::{self, AnyStore, Catalog, signing};
use sigcat::retry::RetryConfig;
use std::path::PathBuf;
use std::time::Duration;

/// The `--help` heading of the options every catalog command shares.
pub(crate) const CATALOG_OPTIONS: &str = "Catalog options";

/// Where the catalog is, how long to wait on its storage, and whom to trust: shared by every
/// command that reads or writes a catalog.
#[derive(Args, Clone)]
pub(crate) struct CatalogArgs {
    /// Catalog location: a directory, azblob://ACCOUNT/CONTAINER[/PREFIX], or
    /// http(s)://HOST/ACCOUNT/CONTAINER[/PREFIX]. Default: $SIGCAT_CATALOG, else
    /// ~/.local/share/sigcat/catalog.
    #[arg(long, value_name = "URL", global = true, help_heading = CATALOG_OPTIONS)]
    catalog: Option<String>,
    /// The longest a storage operation is retried (all its tries and waits) before it fails.
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration, default_value = "30s", global = true, help_heading = CATALOG_OPTIONS)]
    storage_timeout: Duration,
    /// Trust only a catalog signed by a key in this file (ssh-keygen's allowed_signers
    /// format); refuse anything else. Default: $SIGCAT_TRUSTED_KEYS.
    #[arg(long, value_name = "FILE", global = true, help_heading = CATALOG_OPTIONS)]
    trusted_keys: Option<PathBuf>,
}

/// The key that signs what a command writes.
#[derive(Args, Clone)]
pub(crate) struct SigningArgs {
    /// Sign what is written with this OpenSSH private key (ed25519, ECDSA P-256/P-384/P-521 or
    /// RSA; a passphrase comes from SIGCAT_SIGNING_KEY_PASSPHRASE). Default: $SIGCAT_SIGNING_KEY.
    #[arg(long, value_name = "FILE", help_heading = CATALOG_OPTIONS)]
    signing_key: Option<PathBuf>,
}

impl CatalogArgs {
    /// The catalog, ready to read (and to write, unsigned).
    pub(crate) fn open(&self) -> Result<Catalog<AnyStore>, Failure> {
        self.open_signed(None)
    }

    /// The catalog, writing with the key `signing` names (or `$SIGCAT_SIGNING_KEY`).
    pub(crate) fn open_for_writing(
        &self,
        signing: &SigningArgs,
    ) -> Result<Catalog<AnyStore>, Failure> {
        self.open_signed(Some(signing))
    }

    fn open_signed(&self, signing: Option<&SigningArgs>) -> Result<Catalog<AnyStore>, Failure> {
        let location = self
            .catalog
            .clone()
            .unwrap_or_else(catalog::default_location);
        let store = catalog::open_store(&location)?;
        if self.storage_timeout.is_zero() {
            return Err(Failure::Usage(
                "--storage-timeout must be more than 0".into(),
            ));
        }
        let mut catalog =
            Catalog::new(store).with_retry(RetryConfig::with_timeout(self.storage_timeout));
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| sigcat::Error::io(path.display().to_string(), e))
        };
        let from_env = |name| catalog::settings::env_var(name).map(PathBuf::from);
        if let Some(signing) = signing
            && let Some(path) = signing
                .signing_key
                .clone()
                .or_else(|| from_env("SIGCAT_SIGNING_KEY"))
        {
            let passphrase = catalog::settings::env_var("SIGCAT_SIGNING_KEY_PASSPHRASE");
            if let Some(p) = &passphrase {
                sigcat::redact::register_secret(p);
            }
            let signer = signing::Signer::from_openssh(
                &path.display().to_string(),
                &read(&path)?,
                passphrase.as_deref(),
            )?;
            catalog = catalog.with_signer(signer);
        }
        if let Some(path) = self
            .trusted_keys
            .clone()
            .or_else(|| from_env("SIGCAT_TRUSTED_KEYS"))
        {
            let text = String::from_utf8_lossy(&read(&path)?).into_owned();
            catalog =
                catalog.with_trust(signing::Trust::parse(&path.display().to_string(), &text)?);
        }
        Ok(catalog)
    }
}
