//! What ends a command early, turned into one message and one exit code. The library's errors
//! say what went wrong and whose fault it is; this is where the flag that would fix it is
//! named, since only the binary knows its flags.

use super::exit::Exit;
use sigcat::catalog::{CatalogError, SettingsError};
use sigcat::error::Selection;
use sigcat::render::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// A catalog location or credential variable is wrong.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Library(#[from] sigcat::Error),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A signing key or trust file the operator gave cannot be used.
    #[error(transparent)]
    Key(#[from] sigcat::catalog::signing::KeyError),
    /// Nothing to work with (a query with no match).
    #[error("{0}")]
    NothingFound(String),
    /// The exit code says it all; the message, if any, was printed where it happened.
    #[error("")]
    Quiet(Exit),
}

impl Failure {
    pub fn exit(&self) -> Exit {
        match self {
            Failure::Usage(_) | Failure::Settings(_) | Failure::Key(_) => Exit::Usage,
            Failure::NothingFound(_) => Exit::NothingFound,
            Failure::Quiet(code) => *code,
            Failure::Catalog(e) => catalog_exit(e),
            Failure::Library(e) => match e {
                sigcat::Error::Input(_) | sigcat::Error::VersionDisagrees { .. } => {
                    Exit::InvalidInput
                }
                sigcat::Error::Io { .. } => Exit::Io,
                sigcat::Error::Refused(Refusal::VmSizeMissing) => Exit::Usage,
                sigcat::Error::Refused(_) => Exit::Refused,
                sigcat::Error::Selection(Selection::NoImage { failed }) if failed.is_empty() => {
                    Exit::NothingFound
                }
                sigcat::Error::Selection(Selection::NoImage { .. }) => Exit::BuildFailed,
                sigcat::Error::Selection(Selection::SeveralImages { .. }) => Exit::Usage,
            },
        }
    }

    /// What to do about it, when a flag or a setting would help.
    pub fn hint(&self) -> Option<String> {
        match self {
            Failure::Library(sigcat::Error::Refused(r)) => refusal_hint(r).map(str::to_string),
            Failure::Library(sigcat::Error::Selection(Selection::SeveralImages { .. })) => {
                Some("choose one with --build NAME".into())
            }
            Failure::Library(sigcat::Error::VersionDisagrees { .. }) => {
                Some("--kubernetes-version only fills in a version the input does not know".into())
            }
            Failure::Catalog(CatalogError::Untrusted { .. }) => Some(
                "nothing in this catalog is used until its index is signed by a key in the trust file (--trusted-keys); `sigcat catalog verify` says more".into(),
            ),
            Failure::Catalog(CatalogError::Corrupt { .. }) => Some(
                "`sigcat catalog verify` lists what is wrong; `sigcat catalog rebuild-index` rebuilds the index from the objects".into(),
            ),
            Failure::Catalog(CatalogError::Storage { source, .. }) if source.is_denied() => Some(
                "check AZURE_STORAGE_CONNECTION_STRING / AZURE_STORAGE_KEY / AZURE_STORAGE_SAS_TOKEN, or the identity's role on the container (Storage Blob Data Contributor)".into(),
            ),
            _ => None,
        }
    }
}

pub fn catalog_exit(e: &CatalogError) -> Exit {
    match e {
        CatalogError::Storage { source, .. } if source.is_denied() => Exit::Usage,
        CatalogError::Storage { .. } => Exit::Storage,
        CatalogError::Corrupt { .. } => Exit::Corrupt,
        CatalogError::Untrusted { .. } => Exit::Untrusted,
    }
}

/// The flags that would turn a refusal into a result.
pub fn refusal_hint(r: &Refusal) -> Option<&'static str> {
    Some(match r {
        Refusal::NeedsPlan { .. } => {
            "give --plan PUBLISHER:OFFER:SKU, or a --plans-file entry for its image definition"
        }
        Refusal::NoManagedImage { .. } => "use --image-api compute-gallery",
        Refusal::NoGalleryImage { .. } => "only --image-api id is possible for it",
        Refusal::VmSizeMissing => {
            "give --vm-size (e.g. Standard_D2s_v3), or --from a current template"
        }
        Refusal::UnknownKubernetesVersion { .. } => "give --manifest or --kubernetes-version",
        Refusal::NotATemplate { .. } => {
            "--from expects `kubectl get azuremachinetemplate NAME -o yaml` output"
        }
        _ => return None,
    })
}
