//! Where the catalog is, how long to wait on its storage, which keys it is trusted by and what
//! was seen of it before, and (for the commands that write) which key signs what is written.
//!
//! Trust that is configured but unusable fails closed: a trust or key variable that is set but
//! empty, or an Azure DevOps macro left unexpanded (`$(TRUST)`), or a file that cannot be read or
//! lists no usable key, is a settings error, never a warning that turns checking off.

use crate::cli::failure::Failure;
use clap::Args;
use sigcat::catalog::signing::{KeyError, Signer, Trust};
use sigcat::catalog::state::StateDir;
use sigcat::catalog::{self, AnyStore, Catalog, DEFAULT_VALIDITY};
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
    /// format), fresh and not rolled back; refuse anything else. Default: $SIGCAT_TRUSTED_KEYS.
    #[arg(long, value_name = "FILE", global = true, help_heading = CATALOG_OPTIONS)]
    trusted_keys: Option<PathBuf>,
    /// Where the highest sequence seen of each catalog is remembered (to refuse a rolled-back
    /// one). Default: $SIGCAT_STATE_DIR, else $XDG_STATE_HOME/sigcat, else ~/.local/state/sigcat.
    #[arg(long, value_name = "DIR", global = true, help_heading = CATALOG_OPTIONS)]
    state_dir: Option<PathBuf>,
    /// Refuse a catalog whose sequence is below N (a reader with no state, such as a fresh CI
    /// runner, pins what it knows). Default: $SIGCAT_MIN_SEQUENCE.
    #[arg(long, value_name = "N", global = true, help_heading = CATALOG_OPTIONS)]
    min_sequence: Option<u64>,
    /// Refuse a root of another catalog than this id (what `catalog verify` prints): against a
    /// root copied from another catalog signed by the same key. Default: $SIGCAT_CATALOG_ID.
    #[arg(long, value_name = "ID", global = true, help_heading = CATALOG_OPTIONS)]
    catalog_id: Option<String>,
}

/// The key that signs what a command writes, and how long what it writes stays valid.
#[derive(Args, Clone)]
pub(crate) struct SigningArgs {
    /// Sign what is written with this OpenSSH private key (ed25519, ECDSA P-256/P-384/P-521 or
    /// RSA; a passphrase comes from SIGCAT_SIGNING_KEY_PASSPHRASE). Default: $SIGCAT_SIGNING_KEY.
    #[arg(long, value_name = "FILE", help_heading = CATALOG_OPTIONS)]
    signing_key: Option<PathBuf>,
    /// How long the index written stays valid; readers that trust the catalog refuse it after
    /// (re-sign before then: `catalog refresh`). Between 1h and 365d.
    #[arg(long, value_name = "DURATION", value_parser = validity, default_value = "14d", help_heading = CATALOG_OPTIONS)]
    expires_in: Duration,
}

impl Default for SigningArgs {
    fn default() -> Self {
        SigningArgs {
            signing_key: None,
            expires_in: DEFAULT_VALIDITY,
        }
    }
}

/// `--expires-in`: long enough to re-sign in time, short enough to bound a frozen catalog.
fn validity(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like 14d, 72h ({e})"))?;
    if d < Duration::from_secs(3600) || d > Duration::from_secs(365 * 24 * 3600) {
        return Err(format!("`{text}` is not between 1h and 365d"));
    }
    Ok(d)
}

/// A variable that configures trust: unset is fine; set but unusable is an error, never
/// "unset" (which would turn checking off).
fn strict_env(name: &'static str) -> Result<Option<String>, Failure> {
    let Ok(value) = std::env::var(name) else {
        return Ok(None);
    };
    let unusable = |problem: &str| {
        Failure::Key(KeyError::Unusable {
            variable: name,
            value: value.clone(),
            problem: problem.to_string(),
        })
    };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(unusable(
            "set but empty (a CI secret or variable that is not defined?): unset it, or give it a value",
        ));
    }
    if trimmed.starts_with("$(") && trimmed.ends_with(')') {
        return Err(unusable(
            "an Azure DevOps macro that was never expanded: define that variable in the pipeline (or its variable group)",
        ));
    }
    Ok(Some(value))
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| {
        Failure::Key(KeyError::Unreadable {
            path: path.display().to_string(),
            problem: e.to_string(),
        })
    })
}

impl CatalogArgs {
    /// The catalog, ready to read.
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
        if let Some(signing) = signing {
            catalog = catalog.with_validity(signing.expires_in);
            let key = match &signing.signing_key {
                Some(p) => Some(p.clone()),
                None => strict_env("SIGCAT_SIGNING_KEY")?.map(PathBuf::from),
            };
            if let Some(path) = key {
                let passphrase = catalog::settings::env_var("SIGCAT_SIGNING_KEY_PASSPHRASE");
                if let Some(p) = &passphrase {
                    sigcat::redact::register_secret(p);
                }
                let signer = Signer::from_openssh(
                    &path.display().to_string(),
                    &read_file(&path)?,
                    passphrase.as_deref(),
                )?;
                catalog = catalog.with_signer(signer);
            }
        }
        let trust_file = match &self.trusted_keys {
            Some(p) => Some(p.clone()),
            None => strict_env("SIGCAT_TRUSTED_KEYS")?.map(PathBuf::from),
        };
        if let Some(path) = trust_file {
            let text = String::from_utf8_lossy(&read_file(&path)?).into_owned();
            catalog = catalog.with_trust(Trust::parse(&path.display().to_string(), &text)?);
        }
        let min = match self.min_sequence {
            Some(n) => Some(n),
            None => strict_env("SIGCAT_MIN_SEQUENCE")?
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|_| {
                        Failure::Usage(format!(
                            "SIGCAT_MIN_SEQUENCE is `{v}`, not a number (a catalog sequence)"
                        ))
                    })
                })
                .transpose()?,
        };
        let pinned_id = match &self.catalog_id {
            Some(id) => Some(id.clone()),
            None => strict_env("SIGCAT_CATALOG_ID")?,
        };
        if (min.is_some() || pinned_id.is_some()) && !catalog.checks_signatures() {
            return Err(Failure::Usage(
                "--min-sequence and --catalog-id (SIGCAT_MIN_SEQUENCE, SIGCAT_CATALOG_ID) pin a signed catalog: give --trusted-keys (or SIGCAT_TRUSTED_KEYS) too, or they would check nothing".into(),
            ));
        }
        if let Some(min) = min {
            catalog = catalog.with_min_sequence(min);
        }
        if let Some(id) = pinned_id {
            let id = id.trim().to_ascii_lowercase();
            if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Failure::Usage(format!(
                    "catalog id `{id}` is not 32 hex digits (what `sigcat catalog verify` prints)"
                )));
            }
            catalog = catalog.with_catalog_id(id);
        }
        let state = match &self.state_dir {
            Some(d) => Some(d.clone()),
            None => match strict_env("SIGCAT_STATE_DIR")? {
                Some(d) => Some(PathBuf::from(d)),
                None => StateDir::default_dir(),
            },
        };
        match state {
            Some(dir) => catalog = catalog.with_state(StateDir::new(dir)),
            None if catalog.checks_signatures() => {
                return Err(Failure::Usage(
                    "no directory to remember the catalog's sequence in (no HOME, XDG_STATE_HOME or SIGCAT_STATE_DIR): give --state-dir DIR".into(),
                ));
            }
            None => {}
        }
        Ok(catalog)
    }
}
