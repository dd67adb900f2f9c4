#!/bin/bash
# image-builder's promote job (.github/workflows/build-azure-sig.yaml, kubernetes-sigs/image-builder,
# 2026-07): its "Import variables from build" and "Publish to community gallery" steps, reproduced
# so the tests can check that sigcat's pipelines issue the very same `az` commands. Only the paths
# are parameters; the job's env (RESOURCE_GROUP, GALLERY_NAME, REPLICATED_REGIONS_INPUT, EULA_LINK,
# PUBLISHER_EMAIL, PUBLISHER_URI, SIG_PUBLISHER) comes from the caller.
#   usage: promote.sh SIG_PUBLISHING_INFO_JSON   (run in images/capi; writes sig-publishing.json)
set -euo pipefail

PUBLISHING_INFO=$(jq -c . "$1")
DISTRO=$(echo "$PUBLISHING_INFO" | jq -r .distro)
HYPERV_GEN=$(echo "$PUBLISHING_INFO" | jq -r .hyperv_gen)
OS_TYPE=$(echo "$PUBLISHING_INFO" | jq -r .os_type)
MANAGED_IMAGE_ID=$(echo "$PUBLISHING_INFO" | jq -r .managed_image_id)
MANAGED_IMAGE_LOCATION=$(echo "$PUBLISHING_INFO" | jq -r .managed_image_location)
SHARED_IMAGE_GALLERY_IMAGE_NAME=$(echo "$PUBLISHING_INFO" | jq -r .shared_image_gallery_image_name)
SHARED_IMAGE_GALLERY_IMAGE_VERSION=$(echo "$PUBLISHING_INFO" | jq -r .shared_image_gallery_image_version)
TAGS=$(echo "$PUBLISHING_INFO" | jq -r .tags)

EOL_DATE=$(date --date='+6 months' +"%Y-%m-%dT00:00:00+00:00")
GALLERY_DESCRIPTION="Shared image gallery for Cluster API Provider Azure"
GALLERY_NAME="${GALLERY_NAME}"
PUBLIC_NAME_PREFIX="ClusterAPI"
RESOURCE_GROUP="${RESOURCE_GROUP}"
SIG_OFFER="reference-images"

REPLICATED_REGIONS=$(echo "${MANAGED_IMAGE_LOCATION} ${REPLICATED_REGIONS_INPUT}" | tr ' ' '\n' | sort -u | tr '\n' ' ')

if ! az group show -n "${RESOURCE_GROUP}" -o none 2>/dev/null; then
  az group create -n "${RESOURCE_GROUP}" -l "${MANAGED_IMAGE_LOCATION}" --tags ${TAGS:-}
fi

if ! az sig show --gallery-name "${GALLERY_NAME}" --resource-group "${RESOURCE_GROUP}" -o none 2>/dev/null; then
  sig_create_args=(
    --gallery-name "${GALLERY_NAME}"
    --resource-group "${RESOURCE_GROUP}"
    --description "${GALLERY_DESCRIPTION}"
    --eula "${EULA_LINK}"
    --location "${MANAGED_IMAGE_LOCATION}"
    --public-name-prefix "${PUBLIC_NAME_PREFIX}"
    --publisher-email "${PUBLISHER_EMAIL}"
    --publisher-uri "${PUBLISHER_URI}"
    --permissions Community
  )
  if [[ -n "${TAGS:-}" ]]; then
    sig_create_args+=(--tags ${TAGS})
  fi
  az sig create "${sig_create_args[@]}"
fi

GALLERY_IMAGE_DEFINITION=${SHARED_IMAGE_GALLERY_IMAGE_NAME//ubuntu/ubun2}
GALLERY_IMAGE_DEFINITION=${GALLERY_IMAGE_DEFINITION//windows/win}

if ! az sig image-definition show --gallery-name "${GALLERY_NAME}" --gallery-image-definition "${GALLERY_IMAGE_DEFINITION}" --resource-group "${RESOURCE_GROUP}" -o none 2>/dev/null; then
  az sig image-definition create \
    --resource-group "${RESOURCE_GROUP}" \
    --gallery-name "${GALLERY_NAME}" \
    --gallery-image-definition "${GALLERY_IMAGE_DEFINITION}" \
    --publisher "${SIG_PUBLISHER}" \
    --offer "${SIG_OFFER}" \
    --sku "${DISTRO}" \
    --hyper-v-generation "${HYPERV_GEN}" \
    --os-type "${OS_TYPE}" \
    | tee -a sig-publishing.json
fi

if az sig image-version show --gallery-name "${GALLERY_NAME}" --gallery-image-definition "${GALLERY_IMAGE_DEFINITION}" --gallery-image-version "${SHARED_IMAGE_GALLERY_IMAGE_VERSION}" --resource-group "${RESOURCE_GROUP}" -o none 2>/dev/null; then
  az sig image-version delete \
    --resource-group "${RESOURCE_GROUP}" \
    --gallery-name "${GALLERY_NAME}" \
    --gallery-image-definition "${GALLERY_IMAGE_DEFINITION}" \
    --gallery-image-version "${SHARED_IMAGE_GALLERY_IMAGE_VERSION}"
fi

IMAGE_TAGS=$(az tag list --resource-id "${MANAGED_IMAGE_ID}" | jq -r '.properties.tags | to_entries | map("\(.key)=\(.value)") | join(" ")')

az sig image-version create \
  --resource-group "${RESOURCE_GROUP}" \
  --gallery-name "${GALLERY_NAME}" \
  --gallery-image-definition "${GALLERY_IMAGE_DEFINITION}" \
  --gallery-image-version "${SHARED_IMAGE_GALLERY_IMAGE_VERSION}" \
  --target-regions ${REPLICATED_REGIONS} \
  --managed-image "${MANAGED_IMAGE_ID}" \
  --end-of-life-date "${EOL_DATE}" \
  --tags ${IMAGE_TAGS:-} \
  | tee sig-publishing.json
