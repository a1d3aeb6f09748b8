#!/usr/bin/env bash
# The whole test suite, from a fresh machine of this kind: installs what is missing (idempotent),
# then runs formatting, lints and every test (the tests start the services they need; the glibc
# images sit on deb:bookworm, which shipit assembles from the machine's Debian mirror). Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
# Each run rebuilds the docker fixtures under the same tags; the images they replace stay behind
# untagged in the private dockerd's vfs storage (about 1.5 GB each, tens of GB after a day of
# runs). Drop them while no test runs.
if [ -S /run/shipit-docker.sock ]; then
    DOCKER_HOST=unix:///run/shipit-docker.sock docker image prune -f >/dev/null 2>&1 || true
fi
echo "== cargo test"
cargo test --locked "$@"
