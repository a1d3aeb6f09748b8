#!/usr/bin/env bash
# Benchmark (not a test): a 3-architecture Debian bookworm base with `ca-certificates libssl3`
# (amd64, arm64, armhf), made by shipit (`deb:bookworm` + image.packages, `shipit package` of the
# example's prebuilt gnu binaries) next to the usual daemonless way in the same run, per
# architecture: `mmdebstrap --variant=extract --include=ca-certificates,libssl3` into a tarball,
# then `buildah from scratch` + `buildah add` + `buildah config` + `buildah commit` into an OCI
# layout. Both from warm caches: shipit's `.deb`s are in ~/.cache/shipit/debs (its assembled
# bases are removed before each run, so it assembles every time), mmdebstrap's `.deb`s are
# synced in and out of a cache dir by hooks (mmdebstrap always downloads the indexes again: it
# has no way to keep apt's lists). Prints the median of several runs and the ratio
# shipit/(mmdebstrap+buildah) (target: <= 0.2), plus shipit's time with its base cache warm.
#
# Usage: scripts/bench-debbase.sh [--project DIR] [--runs N] [--shipit BIN] [--mirror URL]
#   --project DIR  a built example with DIR/dist/bin/gnu/... (default: $SHIPIT_FIXTURE_DIR/
#                  hello-server, the tests' shared fixture, else examples/hello-server)
#   --runs N       timed runs of each after one warm-up run (default 3)
#   --shipit BIN   the shipit binary (default: `cargo build --release` of this repository)
#   --mirror URL   Debian mirror for mmdebstrap (default: the machine's apt source, as shipit)
# Needs root (mmdebstrap, buildah with vfs storage in a temp dir). Nothing is written into DIR.
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=3
project=""
shipit=""
mirror=""
while [ $# -gt 0 ]; do
    case "$1" in
        --project) project=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --shipit) shipit=$2; shift 2 ;;
        --mirror) mirror=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-debbase: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$project" ]; then
    if [ -n "${SHIPIT_FIXTURE_DIR:-}" ] && [ -d "$SHIPIT_FIXTURE_DIR/hello-server/dist/bin/gnu" ]; then
        project=$SHIPIT_FIXTURE_DIR/hello-server
    else
        project=$repo/examples/hello-server
    fi
fi
project=$(cd "$project" && pwd)
[ -d "$project/dist/bin/gnu" ] || {
    echo "bench-debbase: $project has no dist/bin/gnu: run \`shipit build --variant gnu\` there first" >&2
    exit 3
}
for t in mmdebstrap buildah; do
    command -v "$t" >/dev/null || { echo "bench-debbase: $t not found (scripts/setup.sh)" >&2; exit 3; }
done
if [ -z "$mirror" ]; then
    mirror=${SHIPIT_DEBIAN_MIRROR:-$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
        /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
    mirror=${mirror:-http://deb.debian.org/debian}
fi
if [ -z "$shipit" ]; then
    (cd "$repo" && cargo build --release --quiet --bin shipit)
    shipit=$repo/target/release/shipit
fi
shipit=$(cd "$(dirname "$shipit")" && pwd)/$(basename "$shipit")

epoch=1700000000
arches=(amd64 arm64 armhf)
work=/tmp/bench-debbase-$$-$RANDOM
mkdir "$work"
trap 'rm -rf "$work"' EXIT

# shipit: the example's sources, pipeline (gnu only, with libssl3) and lock, its prebuilt gnu
# binaries; a cache whose .debs are the user's (warm) and whose assembled bases start empty.
user_cache=${XDG_CACHE_HOME:-$HOME/.cache}
mkdir -p "$work/shipit/dist/bin" "$work/cache/shipit" "$user_cache/shipit/debs"
cp -r "$repo/examples/hello-server/Cargo.toml" "$repo/examples/hello-server/Cargo.lock" \
    "$repo/examples/hello-server/src" "$repo/examples/hello-server/pipeline.lock" "$work/shipit/"
cp -r "$project/dist/bin/gnu" "$work/shipit/dist/bin/"
sed -e 's/packages: \[ca-certificates\]/packages: [ca-certificates, libssl3]/' \
    -e '/^  musl:/d' -e 's/linux\/arm\/v7, linux\/arm\/v6\]/linux\/arm\/v7]/' \
    "$repo/examples/hello-server/pipeline.yaml" >"$work/shipit/pipeline.yaml"
ln -s "$user_cache/shipit/debs" "$work/cache/shipit/debs"

shipit_once() { # cold assembled-base cache, warm .debs
    rm -rf "$work/cache/shipit/deb-bases" "$work/shipit/dist/oci"
    (cd "$work/shipit" && XDG_CACHE_HOME=$work/cache SOURCE_DATE_EPOCH=$epoch "$shipit" package -q)
}
shipit_warm() { # the assembled bases cached too (a second `shipit package`)
    rm -rf "$work/shipit/dist/oci"
    (cd "$work/shipit" && XDG_CACHE_HOME=$work/cache SOURCE_DATE_EPOCH=$epoch "$shipit" package -q)
}

bh=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
mkdir -p "$work/debs"
peer_once() {
    local arch oarch variant ctr vflag
    rm -rf "$work/peer-oci" "$work"/rootfs-*.tar
    for arch in "${arches[@]}"; do
        mmdebstrap --quiet --variant=extract --include=ca-certificates,libssl3 \
            --architectures="$arch" --skip=output/dev \
            --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
            --setup-hook="sync-in $work/debs /var/cache/apt/archives/" \
            --customize-hook="sync-out /var/cache/apt/archives $work/debs" \
            --skip=download/empty \
            bookworm "$work/rootfs-$arch.tar" "$mirror"
        case $arch in
            amd64) oarch=amd64 variant=- ;;
            arm64) oarch=arm64 variant=v8 ;;
            armhf) oarch=arm variant=v7 ;;
        esac
        vflag=()
        [ "$variant" = "-" ] || vflag=(--variant "$variant")
        ctr=$("${bh[@]}" from --quiet scratch)
        "${bh[@]}" add --quiet "$ctr" "$work/rootfs-$arch.tar" /
        "${bh[@]}" config --os linux --arch "$oarch" "${vflag[@]}" \
            --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
        "${bh[@]}" commit --quiet --timestamp "$epoch" "$ctr" "oci:$work/peer-oci:bookworm-$arch" >/dev/null
        "${bh[@]}" rm "$ctr" >/dev/null
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

echo "bench-debbase: bookworm + ca-certificates libssl3 for ${arches[*]}"
echo "  shipit:  $shipit ($("$shipit" --version)), \`shipit package\` of 3 gnu images + index"
echo "  peer:    $(mmdebstrap --version) --variant=extract + $(buildah --version) (vfs), mirror $mirror"
echo "  warm-up run of each, then $runs timed runs, alternating"
shipit_once
peer_once
s_times=()
p_times=()
w_times=()
for i in $(seq 1 "$runs"); do
    s_times+=("$(seconds shipit_once)")
    p_times+=("$(seconds peer_once)")
    w_times+=("$(seconds shipit_warm)")
    echo "  run $i: shipit ${s_times[-1]} s (base cache warm: ${w_times[-1]} s), mmdebstrap+buildah ${p_times[-1]} s"
done
s_med=$(printf '%s\n' "${s_times[@]}" | median)
p_med=$(printf '%s\n' "${p_times[@]}" | median)
w_med=$(printf '%s\n' "${w_times[@]}" | median)
ratio=$(awk -v s="$s_med" -v b="$p_med" 'BEGIN { printf "%.3f", s / b }')
wratio=$(awk -v s="$w_med" -v b="$p_med" 'BEGIN { printf "%.3f", s / b }')
met=$(awk -v r="$ratio" 'BEGIN { print (r <= 0.2) ? "met" : "NOT met" }')
echo
echo "median shipit package (assembling the 3 bases): $s_med s"
echo "median shipit package (bases cached):           $w_med s"
echo "median mmdebstrap + buildah:                    $p_med s"
echo "ratio shipit/peer: $ratio (target <= 0.2: $met); with the bases cached: $wratio"
