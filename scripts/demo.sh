#!/usr/bin/env bash
# shipit's main job on the example project, from a fresh machine of this kind: installs what is
# missing (idempotent), builds shipit, then runs the pipeline on examples/hello-server with the
# embedded default (the OCI layout dist/oci on disk). The gnu images sit on deb:bookworm, which
# shipit assembles from the Debian archive as examples/hello-server/pipeline.lock pins it.
# Usage: scripts/demo.sh [shipit flags, e.g. --platform linux/arm64]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked
shipit=$PWD/target/release/shipit

cd examples/hello-server
"$shipit" doctor "$@"
"$shipit" plan "$@"
# build every target, package into dist/oci, verify each platform image under QEMU, then tag
"$shipit" release "$@"
skopeo inspect --raw oci:dist/oci:latest >/dev/null && echo "skopeo reads oci:examples/hello-server/dist/oci:latest"
