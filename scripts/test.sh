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
echo "== cargo test"
cargo test --locked "$@"
