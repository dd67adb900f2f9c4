//! What ends a command early, as one message and one [`Fault`]. The library's errors say what
//! went wrong and whose fault it is; this is where the flag that would fix it is named, since
//! only the binary knows its flags.

use sigcat::catalog::{CatalogError, SettingsError};
use sigcat::error::Selection;
use sigcat::render::Refusal;
use sigcat::{Classify, Fault};

/// What ends a command early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// A catalog location or credential variable is wrong.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Parsing or rendering failed.
    #[error(transparent)]
    Library(#[from] sigcat::Error),
    /// The catalog (its storage, data or signature) failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A signing key or trust file the operator gave cannot be used.
    #[error(transparent)]
    Key(#[from] sigcat::catalog::signing::KeyError),
    /// The watcher stopped.
    #[cfg(feature = "watch")]
    #[error(transparent)]
    Watch(#[from] sigcat::watch::WatchError),
    /// Nothing to work with (a query with no match).
    #[error("{0}")]
    NothingFound(String),
    /// The outcome says it all; the message, if any, was printed where it happened.
    #[error("")]
    Quiet(Option<Fault>),
    /// A failure that ended a call after other items of it had their own outcomes: the
    /// exit code is the worst of all (a missing input before a storage outage is 5).
    #[error("{failure}")]
    After {
        /// What ended the call.
        #[source]
        failure: Box<Failure>,
        /// The worst outcome of the items before it.
        earlier: Option<Fault>,
    },
}

impl Failure {
    /// This failure, after items whose worst outcome was `earlier`.
    pub(crate) fn after(self, earlier: Option<Fault>) -> Failure {
        Failure::After {
            failure: Box::new(self),
            earlier,
        }
    }
}

impl Classify for Failure {
    fn fault(&self) -> Option<Fault> {
        match self {
            Failure::Usage(_) | Failure::Settings(_) | Failure::Key(_) => Some(Fault::Settings),
            Failure::NothingFound(_) => Some(Fault::NothingFound),
            Failure::Quiet(fault) => *fault,
            Failure::After { failure, earlier } => Fault::worst_of([failure.fault(), *earlier]),
            Failure::Catalog(e) => e.fault(),
            Failure::Library(e) => e.fault(),
            #[cfg(feature = "watch")]
            Failure::Watch(e) => e.fault(),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Library(sigcat::Error::io("<stdout>", e))
    }
}

impl Failure {
    /// What to do about it, when a flag or a setting would help.
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            Failure::Library(sigcat::Error::Refused(r)) => refusal_hint(r).map(str::to_string),
            Failure::Library(sigcat::Error::Selection(Selection::SeveralImages { .. })) => {
                Some("choose one with --build NAME".into())
            }
            Failure::Library(sigcat::Error::VersionDisagrees { .. }) => {
                Some("--kubernetes-version only fills in a version the input does not know".into())
            }
            Failure::Catalog(e) => catalog_hint(e),
            Failure::After { failure, .. } => failure.hint(),
            _ => None,
        }
    }
}

/// What the operator can do about a catalog failure.
pub(crate) fn catalog_hint(e: &CatalogError) -> Option<String> {
    match (e, e.fault()) {
        (CatalogError::Untrusted { .. }, _) => Some(
            "nothing in this catalog is used until its index is signed by a key in the trust file (--trusted-keys); `sigcat catalog verify` says more".into(),
        ),
        (CatalogError::Corrupt { .. }, _) => Some(
            "`sigcat catalog verify` lists what is wrong; `sigcat catalog rebuild-index` rebuilds the index from the objects".into(),
        ),
        (CatalogError::Storage { .. }, Some(Fault::Settings)) => Some(
            "check AZURE_STORAGE_CONNECTION_STRING / AZURE_STORAGE_KEY / AZURE_STORAGE_SAS_TOKEN, or the identity's role on the container (Storage Blob Data Contributor)".into(),
        ),
        (CatalogError::Storage { .. }, Some(Fault::CatalogData)) => Some(
            "remove what was put at that key (sigcat writes only regular, non-empty files of bounded size there); if it was one of the catalog's objects, `sigcat catalog rebuild-index` rebuilds the index from the others".into(),
        ),
        (CatalogError::Storage { catalog, .. }, Some(Fault::LocalFile)) => Some(format!(
            "the catalog directory {catalog} must exist (or be creatable) and be writable by this user; check its permissions and whether its filesystem is mounted read-only"
        )),
        _ => None,
    }
}

/// The flags that would turn a refusal into a result.
pub(crate) fn refusal_hint(r: &Refusal) -> Option<&'static str> {
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
