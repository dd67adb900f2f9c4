//! Kubernetes version strings as they appear in builds: `v1.30.3` in manifests, `1.30.3` as
//! gallery versions. Records store them without the `v`.

/// A parsed `MAJOR.MINOR.PATCH[-pre][+build]`, ordered as semver orders releases: a
/// pre-release (`1.30.5-rc.1`) before its release (`1.30.5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeVersion {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
    /// Pre-release and build metadata, kept verbatim (`-rc.1+abc`).
    pub suffix: String,
}

impl Ord for KubeVersion {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // The pre-release part (after `-`, before `+`); none sorts after any.
        let pre = |v: &KubeVersion| -> Option<String> {
            let before_build = v.suffix.split('+').next().unwrap_or("");
            before_build.strip_prefix('-').map(str::to_string)
        };
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (pre(self), pre(other)) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (Some(a), Some(b)) => a.cmp(&b),
            })
            // Build metadata does not order releases; it only keeps Ord agreeing with Eq.
            .then_with(|| self.suffix.cmp(&other.suffix))
    }
}

impl PartialOrd for KubeVersion {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl KubeVersion {
    /// Accepts an optional leading `v`.
    pub fn parse(text: &str) -> Option<KubeVersion> {
        let t = text.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let core_end = t.find(['-', '+']).unwrap_or(t.len());
        let (core, suffix) = t.split_at(core_end);
        let mut parts = core.split('.');
        let mut number = || -> Option<u64> {
            let p = parts.next()?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 9 {
                return None;
            }
            p.parse().ok()
        };
        let (major, minor, patch) = (number()?, number()?, number()?);
        if parts.next().is_some() {
            return None;
        }
        let suffix_ok = suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'));
        if !suffix_ok || suffix == "-" || suffix == "+" {
            return None;
        }
        Some(KubeVersion {
            major,
            minor,
            patch,
            suffix: suffix.to_string(),
        })
    }

    /// The form records store: no `v`.
    pub fn bare(&self) -> String {
        format!(
            "{}.{}.{}{}",
            self.major, self.minor, self.patch, self.suffix
        )
    }
}

/// Normalises a user- or manifest-given Kubernetes version to the stored form (`1.30.3`).
pub fn normalize(text: &str) -> Option<String> {
    KubeVersion::parse(text).map(|v| v.bare())
}

/// Whether a gallery image version is plausibly a Kubernetes release (image-builder's CI sets
/// `sig_image_version` to it) rather than image-builder's default `0.3.<unix time>`.
pub fn looks_like_kubernetes_release(gallery_version: &str) -> bool {
    match KubeVersion::parse(gallery_version) {
        Some(v) => v.major == 1 && v.minor < 100 && v.patch < 1000 && v.suffix.is_empty(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_normalise_without_v() {
        assert_eq!(normalize("v1.30.3").as_deref(), Some("1.30.3"));
        assert_eq!(normalize("1.31.0-rc.1").as_deref(), Some("1.31.0-rc.1"));
        assert_eq!(normalize("1.30"), None);
        assert_eq!(normalize("latest"), None);
        assert_eq!(normalize("v1.30.3.4"), None);
        assert_eq!(normalize("1.30.3-"), None);
    }

    #[test]
    fn a_pre_release_comes_before_its_release() {
        let v = |t: &str| KubeVersion::parse(t).unwrap();
        assert!(v("1.30.5-rc.1") < v("1.30.5"));
        assert!(v("1.30.5-alpha.1") < v("1.30.5-rc.1"));
        assert!(v("1.30.5") < v("1.30.6-rc.0"));
        assert!(v("1.30.10") > v("1.30.9"));
        assert!(v("1.30.5+build.1") > v("1.30.5-rc.1"));
        assert_ne!(v("1.30.5+a"), v("1.30.5+b"));
    }

    #[test]
    fn only_kubernetes_like_gallery_versions_count() {
        assert!(looks_like_kubernetes_release("1.30.3"));
        assert!(!looks_like_kubernetes_release("0.3.1721037000"));
        assert!(!looks_like_kubernetes_release("2024.07.15"));
        assert!(!looks_like_kubernetes_release("1.30.1721037000"));
    }
}
