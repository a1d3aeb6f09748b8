#!/usr/bin/env bash
# Benchmark (not a test): what shipit's verification costs on top of the checked program itself.
# For each platform image of the built example, it times `shipit verify --run=--version` of that
# one image (the per-platform `seconds` of the JSON report: unpack, static checks, sandbox, run),
# times the same command run directly (`qemu-<arch>-static -cpu <strict cpu> BIN --version`, or
# natively for amd64), and prints the difference as "overhead per platform: X s (target < 0.3 s)".
# Medians of RUNS runs each.
#
# Usage: scripts/bench-verify.sh [EXAMPLE_DIR]
#   EXAMPLE_DIR  a built and packaged example (pipeline.yaml, dist/bin, dist/oci); default
#                $SHIPIT_FIXTURE_DIR/hello-server, else /work/fixture/hello-server
#   RUNS=N       runs per measurement (default 7)
#   SHIPIT=PATH  the shipit binary (default: target/release/shipit, built with cargo build --release)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-${SHIPIT_FIXTURE_DIR:-/work/fixture}/hello-server}
RUNS=${RUNS:-7}
die() { printf 'bench-verify.sh: %s\n' "$*" >&2; exit 1; }

[[ -f $DIR/pipeline.yaml && -d $DIR/dist/oci && -d $DIR/dist/bin ]] ||
  die "$DIR has no dist/oci or dist/bin: build and package the example first (shipit build && shipit package)"
if [[ -z ${SHIPIT:-} ]]; then
  (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
  SHIPIT=$REPO/target/release/shipit
fi
[[ -x $SHIPIT ]] || die "$SHIPIT is not executable"
command -v umoci >/dev/null || die "umoci is needed to unpack the gnu images (apt-get install umoci)"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# A private snapshot: the shared fixture may be repackaged by a concurrent test run.
mkdir -p "$TMP/example/dist"
cp -a "$DIR/pipeline.yaml" "$TMP/example/"
cp -a "$DIR/dist/oci" "$DIR/dist/bin" "$TMP/example/dist/"
DIR=$TMP/example

# Median wall time, in seconds, of RUNS runs of a command (stdout/stderr discarded, must exit 0).
median_run() {
  python3 - "$RUNS" "$@" <<'EOF'
import statistics, subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
times = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times.append(time.perf_counter() - t)
print(f"{statistics.median(times):.4f}")
EOF
}

# Median of the report's per-platform verification seconds over RUNS runs.
median_verify() {
  local ref=$1 i
  for ((i = 0; i < RUNS; i++)); do
    (cd "$DIR" && "$SHIPIT" verify -q --json --jobs 1 "oci:$DIR/dist/oci:$ref" --run=--version) |
      jq -r '.platforms[0] | if .passed then .seconds else error("verification failed") end'
  done | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# libc  slug          qemu          cpu
PLATFORMS="
gnu   linux-amd64   native        -
gnu   linux-arm64   qemu-aarch64  cortex-a53
gnu   linux-arm-v7  qemu-arm      cortex-a7
musl  linux-amd64   native        -
musl  linux-arm64   qemu-aarch64  cortex-a53
musl  linux-arm-v7  qemu-arm      cortex-a7
musl  linux-arm-v6  qemu-arm      arm1176
"

printf '%-6s %-14s %10s %10s %10s\n' libc platform verify_s program_s overhead_s
total=0
n=0
while read -r libc slug qemu cpu; do
  [[ -n $libc ]] || continue
  ref=staging-$libc-$slug
  # The program run directly: the same binary, the same CPU, the image's own loader for gnu.
  if [[ $libc == gnu ]]; then
    root=$TMP/rootfs-$slug
    umoci raw unpack --rootless --image "$DIR/dist/oci:$ref" "$root" 2>/dev/null
    bin=$root/usr/local/bin/hello-server
    prefix=(-L "$root")
  else
    bin=$DIR/dist/bin/musl/$slug/hello-server
    prefix=()
  fi
  if [[ $qemu == native ]]; then
    program=$(median_run "$bin" --version)
  else
    program=$(median_run "$qemu-static" "${prefix[@]}" -cpu "$cpu" "$bin" --version)
  fi
  verify=$(median_verify "$ref")
  overhead=$(python3 -c "print(f'{$verify - $program:.3f}')")
  printf '%-6s %-14s %10.3f %10.3f %10s\n' "$libc" "$slug" "$verify" "$program" "$overhead"
  total=$(python3 -c "print($total + $overhead)")
  n=$((n + 1))
done <<<"$PLATFORMS"

python3 -c "print(f'overhead per platform: {$total / $n:.3f} s (target < 0.3 s) [median of $RUNS runs, mean over $n platform images, $SHIPIT]')"
