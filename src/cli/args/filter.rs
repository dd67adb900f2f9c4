//! What `catalog list` and `catalog latest` select on.

use clap::Args;
use sigcat::catalog::index::Filter;

/// The filters of a catalog query; each narrows the result, none given matches everything.
#[derive(Args)]
pub(crate) struct FilterArgs {
    /// Kubernetes minor (`1.30`) or exact version (`1.30.3`); a leading `v` is allowed.
    #[arg(long, value_name = "VERSION", value_parser = kubernetes_filter)]
    kubernetes: Option<String>,
    /// OS: matched within the OS type, distro and image definition (`ubuntu-2404`, `windows`).
    #[arg(long)]
    os: Option<String>,
    /// Image definition, exactly (`capi-ubuntu-2404`).
    #[arg(long)]
    definition: Option<String>,
    /// Gallery name, exactly.
    #[arg(long)]
    gallery: Option<String>,
    /// Only images known to be in this region (`westeurope` or `West Europe`).
    #[arg(long)]
    region: Option<String>,
    /// Only images with a location of this stage still there (`staging`: where image-builder
    /// built them; `production`: where they were promoted), served from it.
    #[arg(long, value_name = "STAGE", value_parser = crate::cli::commands::lifecycle::stage)]
    stage: Option<String>,
}

impl FilterArgs {
    /// The library's filter; yanked images left out.
    pub(crate) fn filter(self) -> Filter {
        Filter {
            kubernetes: self.kubernetes,
            os: self.os,
            definition: self.definition,
            gallery: self.gallery,
            region: self.region,
            include_yanked: false,
            stage: self.stage,
            in_service: false,
        }
    }
}

/// `1.30`, `v1.30`, `1.30.3`: a minor or an exact version. Anything else (`abc`, `1.30.3.4`)
/// is a usage error, never a query that finds nothing.
fn kubernetes_filter(text: &str) -> Result<String, String> {
    let bare = text.strip_prefix('v').unwrap_or(text);
    let parts: Vec<&str> = bare.split('.').collect();
    let numbers = parts
        .iter()
        .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()));
    if !numbers || !(2..=3).contains(&parts.len()) {
        return Err(format!(
            "`{text}` is not a Kubernetes minor (1.30) or version (1.30.3)"
        ));
    }
    Ok(bare.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_filters_are_a_minor_or_a_version() {
        assert_eq!(kubernetes_filter("1.30").unwrap(), "1.30");
        assert_eq!(kubernetes_filter("v1.30.3").unwrap(), "1.30.3");
        for bad in [
            "abc",
            "1.30.3.4",
            "1",
            "1.",
            ".30",
            "1.x",
            "",
            "v",
            "1.30-rc.1",
        ] {
            assert!(kubernetes_filter(bad).is_err(), "{bad}");
        }
    }
}
