//! What the names of images say about them: the OS a template boots, the distro and Hyper-V
//! generation an image definition, marketplace SKU or managed image names (image-builder's and
//! CAPZ's naming), the gallery an image is in, and how to say an image in a few words.

use super::Refusal;
use crate::record::Record;
use crate::record::same_build;
use crate::redact::redact_secrets;
use crate::yaml::{get, str_at};
use serde_norway::Value;

/// The OS a template boots: `osDisk.osType`, `Linux` when absent (CAPZ's default). CAPZ
/// treats exactly `Windows` as Windows and anything else as Linux, so any other value (`windows`,
/// `7`) is refused rather than guessed.
pub fn os_type_of(template: &Value) -> Result<String, Refusal> {
    match get(template, &["spec", "template", "spec", "osDisk", "osType"]) {
        None | Some(Value::Null) => Ok("Linux".into()),
        Some(Value::String(os)) if os == "Linux" || os == "Windows" => Ok(os.clone()),
        Some(other) => Err(Refusal::Upgrade(format!(
            "{}: spec.template.spec.osDisk.osType is {}, not `Linux` or `Windows` (CAPZ reads only `Windows` as Windows)",
            crate::yaml::describe(template),
            serde_json::to_string(other).unwrap_or_else(|_| "not a string".into())
        ))),
    }
}

/// The OS a record's image boots: its `os_type`, else what its names say (image-builder names
/// its Windows builds `windows-*`; everything else it builds for Azure is Linux).
pub fn os_of_record(r: &Record) -> String {
    if let Some(os) = &r.os_type {
        return os.clone();
    }
    let os_name = r.custom_data.get("os_name").and_then(|v| v.as_str());
    let windows = [
        Some(r.distro().as_str()),
        definition(r),
        os_name,
        Some(r.build.as_str()),
    ]
    .into_iter()
    .flatten()
    .any(|n| {
        // `capi-win-2022-containerd` (CAPZ's name) is Windows too.
        distro_key(n.trim_start_matches("sig-")).starts_with("windows")
            || n.to_ascii_lowercase().contains("windows")
    });
    if windows { "Windows" } else { "Linux" }.to_string()
}

/// What a slot's current image says about what it runs.
pub(super) enum Current {
    /// CAPZ's default image (no `image:`, or `image: null`).
    Default,
    /// An image definition, marketplace SKU or managed image name.
    Names(String),
    /// Something sigcat cannot read (`image: {}`, an unknown kind).
    Unknown,
}

pub(super) fn current_of(image: Option<&Value>) -> Current {
    match image {
        None | Some(Value::Null) => Current::Default,
        Some(image) => family_of(image).map_or(Current::Unknown, Current::Names),
    }
}

/// The image definition CAPZ boots when a template names none (azure/defaults.go): its
/// community gallery's Gen2 Ubuntu 24.04, or Windows Server 2022 with containerd.
pub const CAPZ_DEFAULT_LINUX: &str = "capi-ubun2-2404";
/// See [`CAPZ_DEFAULT_LINUX`].
pub const CAPZ_DEFAULT_WINDOWS: &str = "capi-win-2022-containerd";

/// The gallery an `image:` section names, if any: (name, subscription, resource group), the
/// last two when it says them.
pub(super) fn gallery_of(image: &Value) -> Option<(String, Option<String>, Option<String>)> {
    for kind in ["computeGallery", "sharedGallery"] {
        if let Some(g) = str_at(image, &[kind, "gallery"]) {
            let field = |f: &str| str_at(image, &[kind, f]).map(str::to_string);
            return Some((
                g.to_string(),
                field("subscriptionID"),
                field("resourceGroup"),
            ));
        }
    }
    let id = str_at(image, &["id"])?;
    let parts: Vec<&str> = id.split('/').collect();
    let after = |name: &str| {
        let at = parts.iter().position(|p| p.eq_ignore_ascii_case(name))?;
        parts.get(at + 1).map(|g| g.to_string())
    };
    Some((
        after("galleries")?,
        after("subscriptions"),
        after("resourceGroups"),
    ))
}

/// Whether a record's image is in the gallery a slot names (Azure compares names ignoring
/// case; a subscription or resource group the slot does not say matches any).
pub(super) fn in_gallery(r: &Record, gallery: &(String, Option<String>, Option<String>)) -> bool {
    let Some(g) = &r.gallery_image else {
        return false;
    };
    let same = |a: &str, b: &Option<String>| b.as_deref().is_none_or(|b| a.eq_ignore_ascii_case(b));
    g.gallery.eq_ignore_ascii_case(&gallery.0)
        && same(&g.subscription_id, &gallery.1)
        && same(&g.resource_group, &gallery.2)
}

pub(super) fn definition(r: &Record) -> Option<&str> {
    r.gallery_image
        .as_ref()
        .map(|g| g.image_definition.as_str())
}

/// `--image-for SLOT=WHICH`: a build name, an image definition or a distro.
pub(super) fn answers_to(r: &Record, which: &str) -> bool {
    same_build(&r.build, which)
        || r.gallery_image
            .as_ref()
            .is_some_and(|g| g.image_definition.eq_ignore_ascii_case(which))
        || r.distro().eq_ignore_ascii_case(which)
}

/// Whether `r` is an image of `family` (an image definition, or a marketplace SKU): by its
/// gallery image definition when it has one (Azure fixes the generation per definition, and a
/// build name may say otherwise), else by its distro.
pub(super) fn of_family(r: &Record, family: &str) -> bool {
    match definition(r) {
        Some(d) => d.eq_ignore_ascii_case(family) || distro_key(d) == distro_key(family),
        None => distro_key(&r.distro()) == distro_key(family),
    }
}

/// The definition (or marketplace SKU) an `image:` section names, if it names one.
pub fn family_of(image: &Value) -> Option<String> {
    for kind in ["computeGallery", "sharedGallery"] {
        if let Some(name) = str_at(image, &[kind, "name"]) {
            return Some(name.to_string());
        }
    }
    if let Some(sku) = str_at(image, &["marketplace", "sku"]) {
        return Some(sku.to_string());
    }
    // A gallery image version id names its definition; a managed image is named as
    // image-builder names them, `<definition>-<timestamp>` (`capi-ubuntu-2404-1721037000`).
    let id = str_at(image, &["id"])?;
    let parts: Vec<&str> = id.split('/').collect();
    if let Some(at) = parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case("galleries"))
    {
        return (parts.get(at + 2)?.eq_ignore_ascii_case("images"))
            .then(|| parts.get(at + 3).map(|d| d.to_string()))
            .flatten();
    }
    let at = parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case("images"))?;
    let name = parts.get(at + 1).filter(|n| !n.is_empty())?;
    let bare = match name.rsplit_once('-') {
        Some((base, stamp)) if !base.is_empty() && stamp.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => name,
    };
    Some(bare.to_string())
}

/// A definition, SKU or distro reduced to the distro it names, so that image-builder's
/// `capi-ubuntu-2404` (distro `ubuntu-2404`), CAPZ's community gallery `capi-ubun2-2404` and
/// `capi-win-2022-containerd` (azure/defaults.go) and the marketplace SKU `ubuntu-2204-gen1`
/// compare by what they run, Hyper-V generation included.
pub fn distro_key(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let key = lower.strip_prefix("capi-").unwrap_or(&lower);
    // Generation 1 is what a name without a generation means; generation 2 is part of what
    // the image is (a Gen1 image does not boot on a Gen2-only VM size, nor the reverse).
    let key = key.strip_suffix("-gen1").unwrap_or(key);
    if let Some(rest) = key.strip_prefix("ubun2-") {
        // CAPZ's community gallery names its Gen2 Ubuntu images `capi-ubun2-*`.
        return format!("ubuntu-{rest}-gen2");
    }
    if let Some(rest) = key.strip_prefix("win-") {
        return format!("windows-{rest}");
    }
    key.to_string()
}

/// CAPZ's default image for an OS, in a few words.
pub(super) fn describe_default(os: &str) -> String {
    format!("CAPZ's default image ({os}: {})", capz_default(os))
}

/// The definition CAPZ boots for `os` when a template names no image.
pub(super) fn capz_default(os: &str) -> &'static str {
    if os == "Windows" {
        CAPZ_DEFAULT_WINDOWS
    } else {
        CAPZ_DEFAULT_LINUX
    }
}

/// An `image:` section in a few words, for the plan (credentials removed).
pub fn describe_image(image: Option<&Value>) -> String {
    let Some(image) = image else {
        return "CAPZ's default image".into();
    };
    let field = |path: &[&str]| str_at(image, path).unwrap_or("?").to_string();
    let text =
        if get(image, &["computeGallery"]).is_some() || get(image, &["sharedGallery"]).is_some() {
            let kind = if get(image, &["computeGallery"]).is_some() {
                "computeGallery"
            } else {
                "sharedGallery"
            };
            format!(
                "{} {} version {}",
                field(&[kind, "gallery"]),
                field(&[kind, "name"]),
                field(&[kind, "version"])
            )
        } else if get(image, &["marketplace"]).is_some() {
            format!(
                "marketplace {}:{}:{} version {}",
                field(&["marketplace", "publisher"]),
                field(&["marketplace", "offer"]),
                field(&["marketplace", "sku"]),
                field(&["marketplace", "version"])
            )
        } else if let Some(id) = str_at(image, &["id"]) {
            format!("image id {id}")
        } else {
            "an image sigcat does not know".into()
        };
    redact_secrets(&text).into_owned()
}

pub(super) fn describe_record(r: &Record) -> String {
    match (&r.gallery_image, &r.managed_image) {
        (Some(g), _) => format!("{} {} version {}", g.gallery, g.image_definition, g.version),
        (None, Some(m)) => format!("managed image {}", m.name),
        (None, None) => "no bootable image".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distro_keys() {
        for (name, key) in [
            ("capi-ubuntu-2404", "ubuntu-2404"),
            ("capi-ubun2-2404", "ubuntu-2404-gen2"),
            ("capi-ubuntu-2404-gen2", "ubuntu-2404-gen2"),
            ("ubuntu-2204-gen1", "ubuntu-2204"),
            ("capi-win-2022-containerd", "windows-2022-containerd"),
            ("windows-2022-containerd", "windows-2022-containerd"),
            ("CAPI-Ubuntu-2204-gpu", "ubuntu-2204-gpu"),
        ] {
            assert_eq!(distro_key(name), key, "{name}");
        }
    }
}
