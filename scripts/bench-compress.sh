#!/usr/bin/env bash
# Benchmark (not a test): how long `shipit package` takes to make one platform image that carries
# a large `image.files` payload (default 40 MB: half pseudo-random bytes, half C headers as text),
# next to Debian's `gzip -6` and `pigz -6` compressing a tar of the same files (payload + binary)
# in the same run. Prints the median of several runs of each, the compressed sizes, and the
# ratios. Also times a second `shipit package` with the layout and `dist/cache` kept: the
# compressed-layer cache makes it skip compression (content-keyed: the tar is hashed, the cached
# blob re-checked).
#
# Usage: scripts/bench-compress.sh [--project DIR] [--runs N] [--mb N] [--shipit BIN]
#   --project DIR  a built example with DIR/dist/bin/musl/linux-amd64/hello-server (default:
#                  $SHIPIT_FIXTURE_DIR/hello-server, else examples/hello-server)
#   --runs N       timed runs of each after one warm-up (default 3)
#   --mb N         payload size in MB (default 40)
#   --shipit BIN   the shipit binary (default: `cargo build --release` of this repository); pass
#                  an older build to compare before/after in one run
# Everything happens in a temp dir, removed at the end.
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=3
mb=40
project=""
shipit=""
while [ $# -gt 0 ]; do
    case "$1" in
        --project) project=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --mb) mb=$2; shift 2 ;;
        --shipit) shipit=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-compress: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$project" ]; then
    if [ -n "${SHIPIT_FIXTURE_DIR:-}" ] && [ -d "$SHIPIT_FIXTURE_DIR/hello-server/dist/bin" ]; then
        project=$SHIPIT_FIXTURE_DIR/hello-server
    else
        project=$repo/examples/hello-server
    fi
fi
project=$(cd "$project" && pwd)
bin=$project/dist/bin/musl/linux-amd64/hello-server
[ -f "$bin" ] || { echo "bench-compress: no $bin: build the example first (shipit build)" >&2; exit 3; }
for tool in gzip pigz openssl tar; do
    command -v "$tool" >/dev/null || { echo "bench-compress: $tool not found: scripts/setup.sh installs it" >&2; exit 3; }
done
if [ -z "$shipit" ]; then
    (cd "$repo" && cargo build --release --quiet --bin shipit)
    shipit=$repo/target/release/shipit
fi
shipit=$(cd "$(dirname "$shipit")" && pwd)/$(basename "$shipit")

work=$(mktemp -d /tmp/bench-compress-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/p/dist/bin/musl/linux-amd64"
cp -r "$project/Cargo.toml" "$project/Cargo.lock" "$project/src" "$work/p/"
if [ -f "$project/../.lock" ]; then
    flock "$project/../.lock" cp "$bin" "$work/p/dist/bin/musl/linux-amd64/"
else
    cp "$bin" "$work/p/dist/bin/musl/linux-amd64/"
fi

# The payload: the same bytes on every run of this script on any machine with the same headers.
half=$((mb * 1000 * 1000 / 2))
head -c "$half" /dev/zero | openssl enc -aes-128-ctr -nosalt -pass pass:shipit-bench -pbkdf2 >"$work/p/payload.bin"
# (`head` closes the pipe early: the headers' cat may die of SIGPIPE, which is fine.)
{ find /usr/include -type f -name '*.h' -print0 | sort -z | xargs -0 cat 2>/dev/null || true; } | head -c "$half" >>"$work/p/payload.bin"
size=$(stat -c %s "$work/p/payload.bin")
[ "$size" -eq $((2 * half)) ] || { echo "bench-compress: payload is $size bytes, not $((2 * half)) (too few headers in /usr/include?)" >&2; exit 3; }
# What the layer holds besides the passwd files: the payload and the binary.
mkdir -p "$work/t/srv" "$work/t/usr/local/bin"
ln "$work/p/payload.bin" "$work/t/srv/payload.bin"
cp "$bin" "$work/t/usr/local/bin/hello-server"
tar -C "$work/t" -cf "$work/payload.tar" srv usr

cat >"$work/p/pipeline.yaml" <<'EOF'
version: 1
project: { manifest: Cargo.toml, version: cargo }
platforms: [linux/amd64]
variants:
  musl: { base: scratch }
image:
  repository: localhost/bench-compress
  user: "10001:10001"
  files: [{ src: payload.bin, dest: /srv/payload.bin, mode: "0644" }]
EOF

epoch=1700000000
cold() { # no layout, no cache: compresses
    rm -rf "$work/p/dist/oci" "$work/p/dist/cache" "$work/p/dist/package.json"
    (cd "$work/p" && SOURCE_DATE_EPOCH=$epoch "$shipit" package -q)
}
warm() { # the layout and the cache of the run before are kept
    (cd "$work/p" && SOURCE_DATE_EPOCH=$epoch "$shipit" package -q)
}
plan_once() { (cd "$work/p" && "$shipit" plan -q >/dev/null); }
gzip_once() { gzip -6 -n -c "$work/payload.tar" >"$work/payload.tar.gz"; }
pigz_once() { pigz -6 -n -c "$work/payload.tar" >"$work/payload.tar.pigz.gz"; }

seconds() { # runs "$@" and prints its wall time in seconds
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >&2
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "bench-compress: one musl/amd64 image with a $mb MB payload (half random, half text), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  shipit: $shipit ($("$shipit" --version))"
echo "  gzip:   $(gzip --version | head -1); pigz: $(pigz --version 2>&1)"
cold
warm
gzip_once
pigz_once
# The layer is a valid gzip whose tar holds the payload.
layer=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["images"][0]["platforms"][0]["manifest"]["digest"])' "$work/p/dist/package.json")
manifest=$work/p/dist/oci/blobs/sha256/${layer#sha256:}
big=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(max(m["layers"], key=lambda l: l["size"])["digest"])' "$manifest")
blob=$work/p/dist/oci/blobs/sha256/${big#sha256:}
gzip -t "$blob" || { echo "bench-compress: the layer is not a valid gzip" >&2; exit 1; }
tar -xOzf "$blob" srv/payload.bin | cmp - "$work/p/payload.bin" || { echo "bench-compress: the layer does not hold the payload" >&2; exit 1; }

c_t=(); w_t=(); g_t=(); z_t=(); p_t=()
for i in $(seq 1 "$runs"); do
    c_t+=("$(seconds cold)")
    w_t+=("$(seconds warm)")
    g_t+=("$(seconds gzip_once)")
    z_t+=("$(seconds pigz_once)")
    p_t+=("$(seconds plan_once)")
    echo "  run $i: shipit package ${c_t[-1]} s (again, cached: ${w_t[-1]} s), gzip -6 ${g_t[-1]} s, pigz -6 ${z_t[-1]} s, shipit plan ${p_t[-1]} s"
done
c=$(printf '%s\n' "${c_t[@]}" | median)
w=$(printf '%s\n' "${w_t[@]}" | median)
g=$(printf '%s\n' "${g_t[@]}" | median)
z=$(printf '%s\n' "${z_t[@]}" | median)
p=$(printf '%s\n' "${p_t[@]}" | median)
s_size=$(stat -c %s "$blob")
g_size=$(stat -c %s "$work/payload.tar.gz")
z_size=$(stat -c %s "$work/payload.tar.pigz.gz")
echo
echo "median shipit package:         $c s (of which planning, what every command pays: $p s)"
echo "median shipit package, cached: $w s"
echo "median gzip -6:                $g s"
echo "median pigz -6:                $z s"
awk -v c="$c" -v w="$w" -v g="$g" -v z="$z" -v p="$p" -v s="$s_size" -v gs="$g_size" -v zs="$z_size" 'BEGIN {
    printf "ratio shipit package/gzip -6: %.2f   /pigz -6: %.2f   cached/gzip -6: %.2f\n", c / g, c / z, w / g
    printf "ratio (package - planning)/gzip -6: %.2f   /pigz -6: %.2f\n", (c - p) / g, (c - p) / z
    printf "sizes: shipit layer %d, gzip -6 %d, pigz -6 %d bytes (shipit/gzip -6: %.4f)\n", s, gs, zs, s / gs
}'
