#!/usr/bin/env bash
# Benchmark (not a test): `shipit build` with nothing changed, for every target of the example
# (7), two ways in the same run: with the freshness stamps (no toolchain started) and with
# SHIPIT_NO_FRESHNESS=1 (every target starts cargo / cargo-zigbuild, which then finds nothing to
# do: what every no-op build did before the stamps). Prints the median of several runs of each
# and the ratio.
#
# Usage: scripts/bench-noop-build.sh [--project DIR] [--runs N] [--shipit BIN]
#   --project DIR  a built example with its target/ (default: $SHIPIT_FIXTURE_DIR/hello-server,
#                  else examples/hello-server); it is copied (with target/) into a temp dir
#   --runs N       timed runs of each after one warm-up (default 5)
#   --shipit BIN   the shipit binary (default: `cargo build --release` of this repository)
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/scripts/lib-bench.sh"
runs=5
project=""
shipit=""
while [ $# -gt 0 ]; do
    case "$1" in
        --project) project=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --shipit) shipit=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-noop-build: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
project=$(bench_project "$project" target)
[ -d "$project/target/shipit" ] || { echo "bench-noop-build: $project has no target/shipit: build the example first" >&2; exit 3; }
shipit=$(bench_shipit "$shipit")

work=$(mktemp -d /tmp/bench-noop-XXXXXX)
trap 'rm -rf "$work"' EXIT
copy() { cp -a "$project/Cargo.toml" "$project/Cargo.lock" "$project/pipeline.yaml" "$project/src" "$project/target" "$work/"; }
if [ -f "$project/../.lock" ]; then flock "$project/../.lock" bash -c "$(declare -f copy); project=$project work=$work copy"; else copy; fi
[ -e "$project/base" ] && ln -s "$project/base" "$work/base"

build() { (cd "$work" && "$shipit" build -q "$@"); }
fresh_once() { build; }
cargo_once() { (export SHIPIT_NO_FRESHNESS=1; build); }

seconds() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >&2
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "bench-noop-build: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  shipit: $shipit ($("$shipit" --version))"
# Warm-up: the first build after the copy starts every toolchain (no stamps yet, and cargo
# rewrites its dep-info for the new path); the second is the first fresh one.
cargo_once
fresh_once
n=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(1 for b in d["built"] if b.get("fresh")), len(d["built"]))' "$work/dist/build.json")
echo "  fresh targets after the warm-up: $n"

f_t=(); c_t=()
for i in $(seq 1 "$runs"); do
    f_t+=("$(seconds fresh_once)")
    c_t+=("$(seconds cargo_once)")
    echo "  run $i: fresh ${f_t[-1]} s, every toolchain started ${c_t[-1]} s"
done
f=$(printf '%s\n' "${f_t[@]}" | median)
c=$(printf '%s\n' "${c_t[@]}" | median)
echo
echo "median no-op build, fresh (no toolchain started): $f s"
echo "median no-op build, SHIPIT_NO_FRESHNESS=1:        $c s"
awk -v f="$f" -v c="$c" 'BEGIN { printf "ratio fresh/toolchain: %.2f\n", f / c }'
