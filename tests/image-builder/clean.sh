#!/bin/bash
# image-builder's clean job (.github/workflows/build-azure-sig.yaml, kubernetes-sigs/image-builder,
# 2026-07): its "Import variables from build" and "Clean up staging resources" steps, reproduced so
# the tests can check that sigcat's pipelines issue the very same `az` commands. The job's env
# (RESOURCE_GROUP, STAGING_GALLERY_NAME) comes from the caller.
#   usage: clean.sh SIG_PUBLISHING_INFO_JSON
set -euo pipefail

PUBLISHING_INFO=$(jq -c . "$1")
MANAGED_IMAGE_ID=$(echo "$PUBLISHING_INFO" | jq -r .managed_image_id)
SHARED_IMAGE_GALLERY_IMAGE_NAME=$(echo "$PUBLISHING_INFO" | jq -r .shared_image_gallery_image_name)
SHARED_IMAGE_GALLERY_IMAGE_VERSION=$(echo "$PUBLISHING_INFO" | jq -r .shared_image_gallery_image_version)

GALLERY_NAME="${STAGING_GALLERY_NAME:-staging_gallery}"
RESOURCE_GROUP="${RESOURCE_GROUP:-cluster-api-gallery}"

if az image show --ids "${MANAGED_IMAGE_ID}" -o none 2>/dev/null; then
  echo "Deleting managed image: ${MANAGED_IMAGE_ID}"
  az image delete --ids "${MANAGED_IMAGE_ID}"
else
  echo "Managed image not found, skipping deletion"
fi

if az sig image-version show --resource-group "${RESOURCE_GROUP}" --gallery-name "${GALLERY_NAME}" --gallery-image-definition "${SHARED_IMAGE_GALLERY_IMAGE_NAME}" --gallery-image-version "${SHARED_IMAGE_GALLERY_IMAGE_VERSION}" -o none 2>/dev/null; then
  echo "Deleting staging image version: ${SHARED_IMAGE_GALLERY_IMAGE_VERSION}"
  az sig image-version delete \
    --resource-group "${RESOURCE_GROUP}" \
    --gallery-name "${GALLERY_NAME}" \
    --gallery-image-definition "${SHARED_IMAGE_GALLERY_IMAGE_NAME}" \
    --gallery-image-version "${SHARED_IMAGE_GALLERY_IMAGE_VERSION}"
else
  echo "Staging image version not found, skipping deletion"
fi
