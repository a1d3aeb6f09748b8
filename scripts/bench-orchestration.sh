#!/usr/bin/env bash
# Benchmark (not a test): how much a full `shipit release` costs beyond its own cargo builds.
# In one run, from clean target dirs each time:
#   (a) the exact build commands `shipit build --dry-run` prints, run directly, 2 at a time
#       (shipit's default parallelism on this machine), twice per round;
#   (b) `shipit release` of the same platforms (build + package + verify under QEMU + publish to
#       the OCI layout).
# Prints the ratio (b)/(a) per round and its spread (the design's target is <= 1.05), beside
# the control a'/a: cargo against itself.
# Usage: scripts/bench-orchestration.sh [--runs N] [--platform P ...]
#   (N rounds, a multiple of 3 so that each order runs as often)
#   (default: 6 rounds; linux/amd64 linux/arm64). SHIPIT=path picks the binary; SHIPIT_EARLY=off
#   in the environment turns early packaging and verification off (the release as before).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shipit=${SHIPIT:-$root/target/release/shipit}
[[ -x $shipit ]] || cargo build --release --locked -q
runs=6
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

# Each round runs (a) the planned cargo commands directly, (b) the whole release and (a') the
# cargo commands again, in an order that rotates from round to round (a b a', b a' a, a' a b) so
# that none always runs first after another's `rm -rf`. The release is compared with the mean of
# its round's two cargo runs; a' against a is the control: how far two runs of the very same
# builds differ on this machine, the noise any single ratio carries.
"$shipit" build --dry-run -q "${args[@]}" | grep -v -e '^#' -e '^cp ' >"$work/cmds"
n=$(wc -l <"$work/cmds")
as=(); a2s=(); bs=(); cs=()
cargo_once() {
    rm -rf target dist
    local start
    start=$(date +%s%N)
    tr '\n' '\0' <"$work/cmds" | xargs -0 -P 2 -I{} bash -c '{} >/dev/null 2>&1'
    echo $(( $(date +%s%N) - start ))
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
    case $((r % 3)) in
        1) as+=("$(cargo_once)"); release_run; a2s+=("$(cargo_once)") ;;
        2) release_run; a2s+=("$(cargo_once)"); as+=("$(cargo_once)") ;;
        0) a2s+=("$(cargo_once)"); as+=("$(cargo_once)"); release_run ;;
    esac
    awk -v r="$r" -v a="${as[-1]}" -v b="${bs[-1]}" -v c="${a2s[-1]}" \
        'BEGIN { printf "  round %d: cargo %.2f s, release %.2f s, cargo again %.2f s\n", r, a / 1e9, b / 1e9, c / 1e9 }' >&2
done

printf 'targets:                     %d (%s)\n' "$n" "${args[*]}"
python3 - "${as[*]}" "${a2s[*]}" "${bs[*]}" "${cs[*]}" <<'PY'
import statistics as st, sys
a = [int(x) / 1e9 for x in sys.argv[1].split()]
a2 = [int(x) / 1e9 for x in sys.argv[2].split()]
b = [int(x) / 1e9 for x in sys.argv[3].split()]
c = [float(x) for x in sys.argv[4].split()]
def spread(xs):
    q = st.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return f"median {st.median(xs):.3f}, mean {st.mean(xs):.3f}, quartiles {q[0]:.3f}-{q[2]:.3f}"
base = [(x + y) / 2 for x, y in zip(a, a2)]
print(f"cargo builds alone:          {st.median(a + a2):.2f} s (median of {len(a + a2)})")
print(f"shipit release (everything): {st.median(b):.2f} s (median of {len(b)})")
ratios = [y / x for x, y in zip(base, b)]
print(f"release / its round's cargo: {spread(ratios)}; {sum(r <= 1.05 for r in ratios)} of {len(ratios)} rounds <= 1.05 (target <= 1.05)")
print("  per round: " + " ".join(f"{r:.3f}" for r in ratios))
# The control: the same cargo builds against each other. Their spread is the machine's noise.
control = [y / x for x, y in zip(a, a2)]
off = sum(abs(r - 1) > 0.05 for r in control)
print(f"control, cargo again / cargo: {spread(control)}; {off} of {len(control)} rounds more than 5% apart")
# The release split in two: its own build stage (cargo, with early work beside it), and
# everything else (before the first build and after the last). The second is shipit's own cost
# and varies little; the first carries the build-to-build noise of the machine.
rest = [y - z for y, z in zip(b, c)]
print(f"release's own build stage:   {spread([z / x for x, z in zip(base, c)])} of its round's cargo")
print(f"release beyond its builds:   {st.median(rest):.3f} s (median; min {min(rest):.3f}, max {max(rest):.3f}), "
      f"{st.median([y / z for y, z in zip(b, c)]):.3f}x its own build stage")
PY
