#!/usr/bin/env bash
# Benchmark (not a test): how much a full `shipit release` costs beyond its own cargo builds.
# In one run, from clean target dirs each time:
#   (a) the exact build commands `shipit build --dry-run` prints, run directly, 2 at a time
#       (shipit's default parallelism on this machine);
#   (b) `shipit release` of the same platforms (build + package + verify under QEMU + publish to
#       the OCI layout).
# Prints the ratio (b)/(a); the design's target is <= 1.05.
# Usage: scripts/bench-orchestration.sh [--platform P ...]   (default: linux/amd64 linux/arm64)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shipit=${SHIPIT:-$root/target/release/shipit}
[[ -x $shipit ]] || cargo build --release --locked -q
args=("$@")
((${#args[@]})) || args=(--platform linux/amd64 --platform linux/arm64)

work=$(mktemp -d /tmp/bench-orchestration.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r examples/hello-server "$work/p"
rm -rf "$work/p/target" "$work/p/dist"
cd "$work/p"
export SOURCE_DATE_EPOCH=1700000000

# (a) the planned cargo commands, run directly
"$shipit" build --dry-run -q "${args[@]}" | grep -v -e '^#' -e '^cp ' >"$work/cmds"
n=$(wc -l <"$work/cmds")
rm -rf target dist
start=$(date +%s%N)
tr '\n' '\0' <"$work/cmds" | xargs -0 -P 2 -I{} bash -c '{} >/dev/null 2>&1'
a=$(( $(date +%s%N) - start ))

# (b) the whole release
rm -rf target dist
start=$(date +%s%N)
"$shipit" release -q "${args[@]}" >/dev/null
b=$(( $(date +%s%N) - start ))

printf 'targets:                     %d (%s)\n' "$n" "${args[*]}"
python3 - "$a" "$b" <<'PY'
import sys
a, b = (int(x) / 1e9 for x in sys.argv[1:3])
print(f"cargo builds alone:          {a:.2f} s")
print(f"shipit release (everything): {b:.2f} s")
print(f"ratio release/cargo:         {b / a:.3f}  (target <= 1.05)")
PY
