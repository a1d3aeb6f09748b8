#!/usr/bin/env bash
# shipit's main job on the two example projects, from a fresh machine of this kind: installs what
# is missing (idempotent), builds shipit, then releases with each example's pipeline.yaml (to the
# OCI layout dist/oci on disk):
#   1. examples/hello-server: every platform, gnu on deb:bookworm (pinned by its pipeline.lock),
#      musl on scratch.
#   2. examples/tls-client: the C-library example (the `openssl` crate without `vendored`):
#      linux/amd64, linux/arm64 and linux/arm/v7, gnu on deb:bookworm with libssl3 and
#      ca-certificates (linked against libssl-dev in each target's Debian sysroot,
#      build.packages), and musl static (OpenSSL built statically by shipit) on the same base
#      for its CA bundle; each image runs `--self-test` under QEMU with the strict CPU, proving
#      OpenSSL loads and finds the CA roots. Its pipeline.lock pins the base and the sysroots.
# At the end it prints what was released (images, platforms, tags), how long each took and where.
# Usage: scripts/demo.sh [shipit flags for both examples, e.g. --platform linux/arm64]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/setup.sh
cargo build --release --locked
shipit=$root/target/release/shipit

summary=()
# release EXAMPLE [flags]: doctor, plan, then build every target, package into dist/oci, verify
# each platform image under QEMU, and tag.
release() {
  local example=$1
  shift
  local start=$SECONDS
  echo
  echo "==> examples/$example"
  cd "$root/examples/$example"
  "$shipit" doctor "$@"
  "$shipit" plan "$@"
  "$shipit" release "$@"
  local took=$((SECONDS - start))
  local layout=$root/examples/$example/dist/oci
  # An independent reader: skopeo opens the layout at the first tag the release names.
  local tag
  tag=$(jq -r '[.images[] | (.tags_moved + .tags_unchanged)[]][0]' dist/release.json)
  skopeo inspect --raw "oci:$layout:$tag" >/dev/null
  summary+=("examples/$example: released in ${took}s into $layout (skopeo reads oci:$layout:$tag)")
  while IFS= read -r line; do summary+=("  $line"); done < <(jq -r '.images[] |
      "\(.variant): \(.repository)@\(.index_digest) platforms \([.platforms[].platform] | join(", ")); tags moved: \(.tags_moved | if length > 0 then join(", ") else "none" end); already there: \(.tags_unchanged | if length > 0 then join(", ") else "none" end)"' \
    dist/release.json)
  cd "$root"
}

release hello-server "$@"
release tls-client "$@"

echo
echo "==> released"
printf '%s\n' "${summary[@]}"
