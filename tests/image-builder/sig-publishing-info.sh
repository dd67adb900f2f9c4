#!/bin/bash
# image-builder's "Generate SIG publishing info" step (.github/workflows/build-azure-sig.yaml,
# kubernetes-sigs/image-builder, 2026-07), reproduced so the tests can compare sigcat's
# `--format sig-publishing-info` with the file that logic writes. Same sed | tail -1 per key,
# same jq call; only the paths are parameters.
#   usage: DISTRO=ubuntu-2404 sig-publishing-info.sh PACKER_OUTPUT TAGS_FILE OUT
set -euo pipefail

PACKER_OUTPUT=$1
OS_TYPE=$(sed -n 's/^OSType: \(.*\)/\1/p' $PACKER_OUTPUT | tail -1)
MANAGED_IMAGE_RESOURCE_GROUP_NAME=$(sed -n "s/^ManagedImageResourceGroupName: \(.*\)/\1/p" $PACKER_OUTPUT | tail -1)
MANAGED_IMAGE_NAME=$(sed -n "s/^ManagedImageName: \(.*\)/\1/p" $PACKER_OUTPUT | tail -1)
MANAGED_IMAGE_ID=$(sed -n "s/^ManagedImageId: \(.*\)/\1/p" $PACKER_OUTPUT | tail -1)
MANAGED_IMAGE_LOCATION=$(sed -n "s/^ManagedImageLocation: \(.*\)/\1/p" $PACKER_OUTPUT | tail -1)
MANAGED_IMAGE_SHARED_IMAGE_GALLERY_ID=$(sed -n "s/^ManagedImageSharedImageGalleryId: \(.*\)/\1/p" $PACKER_OUTPUT | tail -1)
SHARED_IMAGE_GALLERY_RESOURCE_GROUP=$(sed -n "s/^SharedImageGalleryResourceGroup: \(.*\)/\1/p" $PACKER_OUTPUT | tail -1)
SHARED_IMAGE_GALLERY_NAME=$(sed -n "s/^SharedImageGalleryName: \(.*\)/\1/p" $PACKER_OUTPUT | tail -1)
SHARED_IMAGE_GALLERY_IMAGE_NAME=$(sed -n "s/^SharedImageGalleryImageName: \(.*\)/\1/p" $PACKER_OUTPUT | tail -1)
SHARED_IMAGE_GALLERY_IMAGE_VERSION=$(sed -n "s/^SharedImageGalleryImageVersion: \(.*\)/\1/p" $PACKER_OUTPUT | tail -1)
TAGS=$(cat "$2")

if [[ ${SHARED_IMAGE_GALLERY_IMAGE_NAME} == *gen2 ]]; then
  HYPERV_GEN="V2"
else
  HYPERV_GEN="V1"
fi

PUBLISHING_INFO=$(jq -n \
  --arg distro "${DISTRO}" \
  --arg hyperv_gen "${HYPERV_GEN}" \
  --arg os_type "${OS_TYPE}" \
  --arg managed_image_resource_group_name "${MANAGED_IMAGE_RESOURCE_GROUP_NAME}" \
  --arg managed_image_name "${MANAGED_IMAGE_NAME}" \
  --arg managed_image_id "${MANAGED_IMAGE_ID}" \
  --arg managed_image_location "${MANAGED_IMAGE_LOCATION}" \
  --arg managed_image_shared_image_gallery_id "${MANAGED_IMAGE_SHARED_IMAGE_GALLERY_ID}" \
  --arg shared_image_gallery_resource_group "${SHARED_IMAGE_GALLERY_RESOURCE_GROUP}" \
  --arg shared_image_gallery_name "${SHARED_IMAGE_GALLERY_NAME}" \
  --arg shared_image_gallery_image_name "${SHARED_IMAGE_GALLERY_IMAGE_NAME}" \
  --arg shared_image_gallery_image_version "${SHARED_IMAGE_GALLERY_IMAGE_VERSION}" \
  --arg tags "${TAGS}" \
  '$ARGS.named')

echo "${PUBLISHING_INFO}" > "$3"
