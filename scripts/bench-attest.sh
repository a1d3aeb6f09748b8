#!/usr/bin/env bash
# Benchmark (not a test): what attestation adds to a release. Publishes the built example's
# images (every platform, both variants) to a fresh OCI layout with `attest:` on (CycloneDX and
# SPDX SBOMs, SLSA provenance, verification attestations, each signed with the test key and
# attached as an OCI referrer) and with `attest:` off, alternately, RUNS times each, and prints
# the medians and their ratio, twice: with the verification cache (`dist/cache/verified.json`,
# filled by a first untimed run: the attach stage against everything else a release does after
# its build: Session, verify (cached), push by digest, tags, report), and without it (every
# platform image run under QEMU again, as a release of new bytes does).
#
# Usage: scripts/bench-attest.sh [EXAMPLE_DIR]
#   EXAMPLE_DIR  a built and packaged example (pipeline.yaml, Cargo.toml, dist/bin, dist/oci);
#                default $SHIPIT_FIXTURE_DIR/hello-server, else /work/fixture/hello-server
#   RUNS=N       runs per measurement (default 5)
#   SHIPIT=PATH  the shipit binary (default: target/release/shipit, built with cargo build --release)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-${SHIPIT_FIXTURE_DIR:-/work/fixture}/hello-server}
RUNS=${RUNS:-5}
KEY=$REPO/tests/it/fixtures/attest/test-key.pem
die() { printf 'bench-attest.sh: %s\n' "$*" >&2; exit 1; }

[[ -f $DIR/pipeline.yaml && -d $DIR/dist/oci && -d $DIR/dist/bin ]] ||
  die "$DIR has no dist/oci or dist/bin: build and package the example first (shipit build && shipit package)"
if [[ -z ${SHIPIT:-} ]]; then
  (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
  SHIPIT=$REPO/target/release/shipit
fi
[[ -x $SHIPIT ]] || die "$SHIPIT is not executable"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# A private snapshot: the shared fixture may be repackaged by a concurrent test run.
EX=$TMP/example
mkdir -p "$EX/dist"
cp -a "$DIR/Cargo.toml" "$DIR/Cargo.lock" "$DIR/src" "$EX/"
ln -s "$DIR/base" "$EX/base"
cp -a "$DIR/dist/oci" "$DIR/dist/bin" "$EX/dist/"
# package.json names its layout by absolute path: point it at the copy.
jq --arg l "$EX/dist/oci" '.layout = $l' "$DIR/dist/package.json" >"$EX/dist/package.json"
sed -e 's|^  to: oci:dist/oci|  to: oci:out/oci|' "$DIR/pipeline.yaml" >"$EX/pipeline-on.yaml"
cp "$EX/pipeline-on.yaml" "$EX/pipeline-off.yaml"
printf '\nattest: { sbom: false, provenance: false, verification: false }\n' >>"$EX/pipeline-off.yaml"
grep -q 'to: oci:out/oci' "$EX/pipeline-on.yaml" || die "the example's pipeline does not publish to oci:dist/oci"

# One publish: a fresh target layout, the same staging layout; prints its wall seconds.
# FRESH=1: without the verification cache (every platform runs under QEMU again).
publish() {
  local mode=$1
  rm -rf "$EX/out"
  if [[ ${FRESH:-0} == 1 ]]; then rm -f "$EX/dist/cache/verified.json"; fi
  python3 - "$SHIPIT" "$mode" "$KEY" "$EX" <<'PY'
import os, subprocess, sys, time
shipit, mode, key, ex = sys.argv[1:]
env = dict(os.environ, SHIPIT_SIGNING_KEY=key, NO_COLOR="1")
t = time.perf_counter()
subprocess.run([shipit, "publish", "-q", "-c", f"pipeline-{mode}.yaml"], cwd=ex, env=env,
               check=True, stdout=subprocess.DEVNULL)
print(f"{time.perf_counter() - t:.4f}")
PY
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

publish on >/dev/null   # fills the verification cache (and checks it works)
attached=$(jq '.attachments | length' "$EX/dist/release.json")
signed=$(jq '[.attachments[] | select(.signed)] | length' "$EX/dist/release.json")
publish off >/dev/null
measure() {
  local label=$1 i m_on m_off
  local on=() off=()
  for ((i = 0; i < RUNS; i++)); do
    on+=("$(publish on)")
    off+=("$(publish off)")
  done
  m_on=$(printf '%s\n' "${on[@]}" | median)
  m_off=$(printf '%s\n' "${off[@]}" | median)
  printf '%s:\n' "$label"
  printf '  with attest:    %s s (runs: %s)\n' "$m_on" "${on[*]}"
  printf '  without attest: %s s (runs: %s)\n' "$m_off" "${off[*]}"
  python3 -c "import sys; on, off = map(float, sys.argv[1:]); print(f'  attestation adds {on - off:.2f} s: {on / off:.2f}x')" "$m_on" "$m_off"
}
printf '%s statements attached (%s signed) per release\n' "$attached" "$signed"
FRESH=0 measure "publish, verification cached (attach against everything else after the build)"
FRESH=1 measure "publish, every platform verified under QEMU again"
