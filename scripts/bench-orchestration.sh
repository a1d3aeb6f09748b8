#!/usr/bin/env bash
# Benchmark (not a test): how much a full `shipit release` costs beyond its own cargo builds.
# In one run, from clean target dirs each time:
#   (a) the exact build commands `shipit build --dry-run` prints, run directly, 2 at a time
#       (shipit's default parallelism on this machine);
#   (b) `shipit release` of the same platforms (build + package + verify under QEMU + publish to
#       the OCI layout).
# Prints the ratio (b)/(a); the design's target is <= 1.05.
# Usage: scripts/bench-orchestration.sh [--runs N] [--platform P ...]
#   (N even, so that each order runs as often)
#   (default: 4 runs; linux/amd64 linux/arm64). SHIPIT=path picks the binary; SHIPIT_EARLY=off
#   in the environment turns early packaging and verification off (the release as before).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shipit=${SHIPIT:-$root/target/release/shipit}
[[ -x $shipit ]] || cargo build --release --locked -q
runs=4
if [[ ${1:-} == --runs ]]; then
    runs=$2
    shift 2
fi
args=("$@")
((${#args[@]})) || args=(--platform linux/amd64 --platform linux/arm64)

work=$(mktemp -d /tmp/bench-orchestration.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r examples/hello-server "$work/p"
rm -rf "$work/p/target" "$work/p/dist"
cd "$work/p"
export SOURCE_DATE_EPOCH=1700000000

# (a) the planned cargo commands, run directly, and (b) the whole release, `runs` times each, in
# pairs whose order alternates (a b, b a, a b, ...) so that neither always runs first after the
# other's `rm -rf`; the medians are compared, and each pair's ratio.
"$shipit" build --dry-run -q "${args[@]}" | grep -v -e '^#' -e '^cp ' >"$work/cmds"
n=$(wc -l <"$work/cmds")
as=(); bs=(); cs=()
cargo_run() {
    rm -rf target dist
    local start
    start=$(date +%s%N)
    tr '\n' '\0' <"$work/cmds" | xargs -0 -P 2 -I{} bash -c '{} >/dev/null 2>&1'
    as+=($(( $(date +%s%N) - start )))
}
release_run() {
    rm -rf target dist
    local start
    start=$(date +%s%N)
    "$shipit" release -q "${args[@]}" >/dev/null
    bs+=($(( $(date +%s%N) - start )))
    # The release's own build stage, as dist/release.json reports it.
    cs+=("$(python3 -c "import json; print(next(s['seconds'] for s in json.load(open('dist/release.json'))['stages'] if s['stage'] == 'build'))")")
}
for r in $(seq "$runs"); do
    if ((r % 2)); then cargo_run; release_run; else release_run; cargo_run; fi
    echo "  run $r: cargo $(awk -v n="${as[-1]}" 'BEGIN { printf "%.2f", n / 1e9 }') s, release $(awk -v n="${bs[-1]}" 'BEGIN { printf "%.2f", n / 1e9 }') s" >&2
done

printf 'targets:                     %d (%s)\n' "$n" "${args[*]}"
python3 - "${as[*]}" "${bs[*]}" "${cs[*]}" <<'PY'
import statistics, sys
a = [int(x) / 1e9 for x in sys.argv[1].split()]
b = [int(x) / 1e9 for x in sys.argv[2].split()]
c = [float(x) for x in sys.argv[3].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"cargo builds alone:          {ma:.2f} s (median of {len(a)})")
print(f"shipit release (everything): {mb:.2f} s (median of {len(b)})")
ratios = [y / x for x, y in zip(a, b)]
print(f"ratio release/cargo:         {mb / ma:.3f}  (target <= 1.05); per run: " + " ".join(f"{r:.3f}" for r in ratios))
print(f"median of the per-run ratios: {statistics.median(ratios):.3f}  (each release against the cargo run of its pair)")
# The same release split in two: its own build stage (cargo, with early work beside it), and
# everything else (before the first build and after the last). The second is shipit's own cost
# and varies little; the first carries the build-to-build noise of the machine.
rest = [y - z for y, z in zip(b, c)]
print(f"release's own build stage:   {statistics.median(c):.2f} s (median); vs cargo alone {statistics.median(c) / ma:.3f}x")
print(f"release beyond its builds:   {statistics.median(rest):.3f} s (median; min {min(rest):.3f}, max {max(rest):.3f}), "
      f"{statistics.median([y / z for y, z in zip(b, c)]):.3f}x its own build stage")
PY
