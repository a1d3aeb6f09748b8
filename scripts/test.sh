#!/usr/bin/env bash
# The whole test suite, from a fresh machine of this kind: installs what is missing (idempotent),
# makes the Debian test bases, starts the services the tests need, then runs formatting, lints and
# every test. Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# The example's glibc base (a stand-in for debian:bookworm-slim; no hub is reachable here).
scripts/make-base.sh --out examples/hello-server/base/bookworm --suite bookworm --arch amd64,arm64,armhf

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked "$@"
