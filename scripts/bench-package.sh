#!/usr/bin/env bash
# Benchmark (not a test): how long `shipit package` takes to turn the example's prebuilt binaries
# into per-platform OCI images and one multi-arch index per libc, next to buildah doing the same
# work in the same run (per platform: `buildah from` scratch or the Debian base layout, `buildah
# copy`, `buildah config`, `buildah commit` into an OCI layout; then `buildah manifest
# create/add/push --all`). Prints the median of several runs of each and the ratio
# shipit/buildah (target: <= 0.2).
#
# Usage: scripts/bench-package.sh [--project DIR] [--runs N] [--shipit BIN]
#   --project DIR  a built example: DIR/dist/bin/<libc>/<os>-<arch>[-<variant>]/hello-server and
#                  DIR/base/bookworm (default: $SHIPIT_FIXTURE_DIR/hello-server, the tests' shared
#                  fixture, else examples/hello-server)
#   --runs N       timed runs of each tool after one warm-up run (default 5)
#   --shipit BIN   the shipit binary (default: `cargo build --release` of this repository)
# Nothing is written into DIR: both tools work in a temp dir, removed at the end.
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
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-package: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
project=$(bench_project "$project" dist/bin)
if [ ! -d "$project/dist/bin" ] || [ ! -d "$project/base/bookworm" ]; then
    echo "bench-package: $project has no dist/bin or base/bookworm: build the example first" >&2
    echo "  (the tests' shared fixture has both: cargo test --test it package_stage::), or" >&2
    echo "  point --project at it (SHIPIT_FIXTURE_DIR/hello-server)" >&2
    exit 3
fi
command -v buildah >/dev/null || { echo "bench-package: buildah not found: apt-get install -y buildah" >&2; exit 3; }
shipit=$(bench_shipit "$shipit")

epoch=1700000000
# Lowercase only: buildah names images pulled from an oci: path after the path.
work=/tmp/bench-package-$$-$RANDOM
mkdir "$work"
trap 'rm -rf "$work"' EXIT

# The project for shipit: sources, the base layout, the prebuilt binaries.
mkdir -p "$work/shipit/dist"
cp -r "$project/Cargo.toml" "$project/Cargo.lock" "$project/pipeline.yaml" "$project/src" "$work/shipit/"
ln -s "$project/base" "$work/shipit/base"
if [ -f "$project/../.lock" ]; then
    # The tests' shared fixture: copy under its lock (a test process may be rebuilding it).
    flock "$project/../.lock" cp -r "$project/dist/bin" "$work/shipit/dist/bin"
else
    cp -r "$project/dist/bin" "$work/shipit/dist/bin"
fi

# The same platforms for buildah: libc slug architecture variant base-tag.
platforms=()
for bin in "$work"/shipit/dist/bin/*/*/hello-server; do
    slug=$(basename "$(dirname "$bin")")
    libc=$(basename "$(dirname "$(dirname "$bin")")")
    case "$slug" in
        linux-amd64) platforms+=("$libc $slug amd64 - bookworm-amd64") ;;
        linux-arm64) platforms+=("$libc $slug arm64 v8 bookworm-arm64") ;;
        linux-arm-v7) platforms+=("$libc $slug arm v7 bookworm-armhf") ;;
        linux-arm-v6) platforms+=("$libc $slug arm v6 -") ;;
        *) echo "bench-package: unknown platform dir $slug" >&2; exit 2 ;;
    esac
done
printf 'root:x:0:0:root:/root:/sbin/nologin\napp:x:10001:10001:app:/nonexistent:/sbin/nologin\n' >"$work/passwd"
printf 'root:x:0:\napp:x:10001:\n' >"$work/group"

bh=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)

shipit_once() {
    rm -rf "$work/shipit/dist/oci" "$work/shipit/dist/package.json"
    (cd "$work/shipit" && SOURCE_DATE_EPOCH=$epoch "$shipit" package -q)
}

buildah_once() {
    local out=$work/buildah-oci libc slug arch variant base ctr
    rm -rf "$out"
    for libc in gnu musl; do
        local refs=()
        for p in "${platforms[@]}"; do
            read -r l slug arch variant base <<<"$p"
            [ "$l" = "$libc" ] || continue
            local vflag=()
            [ "$variant" = "-" ] || vflag=(--variant "$variant")
            if [ "$libc" = gnu ]; then
                ctr=$("${bh[@]}" from --quiet --os linux --arch "$arch" "${vflag[@]}" \
                    "oci:$work/shipit/base/bookworm:$base")
            else
                ctr=$("${bh[@]}" from --quiet scratch)
                "${bh[@]}" copy --quiet --chmod 0644 "$ctr" "$work/passwd" /etc/passwd
                "${bh[@]}" copy --quiet --chmod 0644 "$ctr" "$work/group" /etc/group
            fi
            "${bh[@]}" copy --quiet --chmod 0755 "$ctr" \
                "$work/shipit/dist/bin/$libc/$slug/hello-server" /usr/local/bin/hello-server
            "${bh[@]}" config --os linux --arch "$arch" "${vflag[@]}" --user 10001:10001 \
                --entrypoint '["/usr/local/bin/hello-server"]' --port 8080 --env RUST_LOG=info \
                --label org.opencontainers.image.version=0.3.1 \
                --label org.opencontainers.image.title=hello-server "$ctr"
            "${bh[@]}" commit --quiet --timestamp "$epoch" "$ctr" "oci:$out:staging-$libc-$slug" >/dev/null
            "${bh[@]}" rm "$ctr" >/dev/null
            refs+=("oci:$out:staging-$libc-$slug")
        done
        [ ${#refs[@]} -gt 0 ] || continue
        "${bh[@]}" manifest create "bench-$libc" >/dev/null
        for r in "${refs[@]}"; do "${bh[@]}" manifest add "bench-$libc" "$r" >/dev/null; done
        "${bh[@]}" manifest push --quiet --all "bench-$libc" "oci:$out:staging-$libc" >/dev/null 2>&1
        "${bh[@]}" manifest rm "bench-$libc" >/dev/null
    done
}

seconds() { # runs "$@" and prints its wall time in seconds
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >&2
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "bench-package: ${#platforms[@]} platform images + their indexes, from $project"
echo "  shipit:  $shipit ($("$shipit" --version))"
echo "  buildah: $(buildah --version) (vfs storage in a temp dir)"
echo "  warm-up run of each, then $runs timed runs, alternating"
shipit_once
buildah_once
# Both made the same set of images.
for libc in gnu musl; do
    a=$(skopeo inspect --raw "oci:$work/shipit/dist/oci:staging-$libc" 2>/dev/null | python3 -c 'import json,sys; print(sorted((m["platform"]["architecture"], m["platform"].get("variant", "")) for m in json.load(sys.stdin)["manifests"]))' || true)
    b=$(skopeo inspect --raw "oci:$work/buildah-oci:staging-$libc" 2>/dev/null | python3 -c 'import json,sys; print(sorted((m["platform"]["architecture"], m["platform"].get("variant", "")) for m in json.load(sys.stdin)["manifests"]))' || true)
    if [ "$a" != "$b" ]; then
        echo "bench-package: the $libc indexes differ: shipit $a, buildah $b" >&2
        exit 1
    fi
    echo "  $libc index: $a"
done

plan_once() { (cd "$work/shipit" && "$shipit" plan -q >/dev/null); }

s_times=()
b_times=()
p_times=()
for i in $(seq 1 "$runs"); do
    s_times+=("$(seconds shipit_once)")
    b_times+=("$(seconds buildah_once)")
    p_times+=("$(seconds plan_once)")
    echo "  run $i: shipit ${s_times[-1]} s, buildah ${b_times[-1]} s (shipit plan alone: ${p_times[-1]} s)"
done
s_med=$(printf '%s\n' "${s_times[@]}" | median)
b_med=$(printf '%s\n' "${b_times[@]}" | median)
p_med=$(printf '%s\n' "${p_times[@]}" | median)
ratio=$(awk -v s="$s_med" -v b="$b_med" 'BEGIN { printf "%.3f", s / b }')
met=$(awk -v r="$ratio" 'BEGIN { print (r <= 0.2) ? "met" : "NOT met" }')
echo
echo "median shipit package: $s_med s"
echo "  of which planning:    $p_med s (config, cargo metadata, tool probes: what every shipit command pays)"
echo "median buildah:        $b_med s"
echo "ratio shipit/buildah:  $ratio (target <= 0.2: $met)"
