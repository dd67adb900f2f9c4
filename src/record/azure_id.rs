//! Azure resource ids of the two things a build publishes: a managed image and a gallery image
//! version. Fixed segments (`resourceGroups`, `providers/Microsoft.Compute`...) are matched
//! without regard to case, as Azure does.

use nom::{
    IResult, Parser,
    bytes::complete::{tag, tag_no_case, take_while1},
    combinator::{all_consuming, opt},
};

/// A managed image's resource id, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedImageId {
    /// The subscription.
    pub subscription_id: String,
    /// The resource group.
    pub resource_group: String,
    /// The image's name.
    pub name: String,
}

/// A gallery image version's resource id, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GalleryImageVersionId {
    /// The subscription.
    pub subscription_id: String,
    /// The resource group.
    pub resource_group: String,
    /// The gallery.
    pub gallery: String,
    /// The image definition.
    pub image_definition: String,
    /// The version (`0.3.1721037000`).
    pub version: String,
}

/// A string that is not the resource id it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a {what} `{shape}`, found `{found}`")]
pub struct NotAnId {
    /// What kind of id was expected.
    pub what: &'static str,
    /// Its shape, for the message.
    pub shape: &'static str,
    /// What was found instead.
    pub found: String,
}

const MANAGED_IMAGE_SHAPE: &str =
    "/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/images/NAME";
const GALLERY_VERSION_SHAPE: &str = "/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/galleries/GALLERY/images/DEFINITION/versions/VERSION";

fn segment(input: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c != '/' && !c.is_whitespace()).parse(input)
}

/// `/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/`
fn compute_prefix(input: &str) -> IResult<&str, (&str, &str)> {
    let (input, _) = tag_no_case("/subscriptions/").parse(input)?;
    let (input, sub) = segment(input)?;
    let (input, _) = tag_no_case("/resourceGroups/").parse(input)?;
    let (input, rg) = segment(input)?;
    let (input, _) = tag_no_case("/providers/Microsoft.Compute/").parse(input)?;
    Ok((input, (sub, rg)))
}

impl ManagedImageId {
    /// Parses a managed image id; the error says which shape was expected.
    pub fn parse(id: &str) -> Result<Self, NotAnId> {
        let parsed = all_consuming((
            compute_prefix,
            tag_no_case("images/"),
            segment,
            opt(tag("/")),
        ))
        .parse(id.trim());
        match parsed {
            Ok((_, ((sub, rg), _, name, _))) => Ok(ManagedImageId {
                subscription_id: sub.to_string(),
                resource_group: rg.to_string(),
                name: name.to_string(),
            }),
            Err(_) => Err(NotAnId {
                what: "managed image id",
                shape: MANAGED_IMAGE_SHAPE,
                found: id.to_string(),
            }),
        }
    }
}

impl GalleryImageVersionId {
    /// Parses `/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/galleries/G/images/D/versions/V` (fixed segments in any case).
    pub fn parse(id: &str) -> Result<Self, NotAnId> {
        let parsed = all_consuming((
            compute_prefix,
            tag_no_case("galleries/"),
            segment,
            tag_no_case("/images/"),
            segment,
            tag_no_case("/versions/"),
            segment,
            opt(tag("/")),
        ))
        .parse(id.trim());
        match parsed {
            Ok((_, ((sub, rg), _, gallery, _, definition, _, version, _))) => {
                Ok(GalleryImageVersionId {
                    subscription_id: sub.to_string(),
                    resource_group: rg.to_string(),
                    gallery: gallery.to_string(),
                    image_definition: definition.to_string(),
                    version: version.to_string(),
                })
            }
            Err(_) => Err(NotAnId {
                what: "gallery image version id",
                shape: GALLERY_VERSION_SHAPE,
                found: id.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gallery_version_ids_split_into_parts() {
        let id = GalleryImageVersionId::parse("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/cluster-api-gallery/providers/Microsoft.Compute/galleries/ClusterAPI1721036000abcd/images/capi-ubuntu-2404/versions/0.3.1721037000").unwrap();
        assert_eq!(id.subscription_id, "00000000-1111-2222-3333-444444444444");
        assert_eq!(id.resource_group, "cluster-api-gallery");
        assert_eq!(id.gallery, "ClusterAPI1721036000abcd");
        assert_eq!(id.image_definition, "capi-ubuntu-2404");
        assert_eq!(id.version, "0.3.1721037000");
    }

    #[test]
    fn fixed_segments_ignore_case() {
        let id = GalleryImageVersionId::parse(
            "/SUBSCRIPTIONS/s/resourcegroups/RG/PROVIDERS/microsoft.compute/Galleries/g/Images/d/Versions/1.30.3",
        )
        .unwrap();
        assert_eq!(
            (id.resource_group.as_str(), id.version.as_str()),
            ("RG", "1.30.3")
        );
        let img = ManagedImageId::parse(
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/images/capi-1",
        )
        .unwrap();
        assert_eq!(img.name, "capi-1");
    }

    #[test]
    fn wrong_shapes_are_rejected_with_the_expected_shape() {
        for bad in [
            "",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/x",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/v/extra",
            "/subscriptions//resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/v",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/galleries/g/images/d/versions/v",
        ] {
            let err = GalleryImageVersionId::parse(bad).unwrap_err().to_string();
            assert!(err.contains("expected a gallery image version id"), "{err}");
        }
        assert!(
            ManagedImageId::parse(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/"
            )
            .is_err()
        );
    }
}
