#!/usr/bin/env bash
# shipit's main job on the example project, from a fresh machine of this kind: installs what is
# missing (idempotent), makes the Debian base the gnu images sit on, builds shipit, then runs the
# pipeline on examples/hello-server with the embedded default (the OCI layout dist/oci on disk).
# Usage: scripts/demo.sh [shipit flags, e.g. --platform linux/arm64]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/make-base.sh --out examples/hello-server/base/bookworm --suite bookworm --arch amd64,arm64,armhf
cargo build --release --locked
shipit=$PWD/target/release/shipit

cd examples/hello-server
"$shipit" doctor "$@"
"$shipit" plan "$@"
# build every target, package into dist/oci, verify each platform image under QEMU, then tag
"$shipit" release "$@"
skopeo inspect --raw oci:dist/oci:latest >/dev/null && echo "skopeo reads oci:examples/hello-server/dist/oci:latest"
