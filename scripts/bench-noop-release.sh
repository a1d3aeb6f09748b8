#!/usr/bin/env bash
# Benchmark (not a test): a second `shipit release` with nothing changed (issue 15's goal: under
# 1 s, 0 blob uploads), for two projects, each in a temp copy with its target/:
#   - the example (examples/hello-server: 7 platform images, gnu on deb:bookworm, musl on
#     scratch, published to its OCI layout), and
#   - a real binary crate from crates.io (hexyl 0.16, ~30 dependencies: musl on scratch for
#     linux/amd64 and linux/arm64), fetched with `cargo fetch` through a wrapper manifest.
# Then the example once more publishing to a docker-registry on 127.0.0.1, counting the blob
# uploads (POST/PUT /blobs/uploads/) and manifest PUTs of the no-op release from the registry's
# access log: both must be 0 (a no-op release sends only HEADs).
# Prints the median of N timed no-op releases of each after the warm-ups, and each stage's
# median seconds (release.json `stages`). Last, the parallel blob uploads: `shipit publish` of
# the example's 7 images (verification reused from the cache, so only the push is timed) into a
# new repository of that registry each run, `--jobs 1` (one request at a time, as before) vs the
# default pool of 4.
#
# Usage: scripts/bench-noop-release.sh [--runs N] [--shipit BIN] [--project DIR] [--no-crate]
#                                      [--no-registry]
#   --runs N       timed no-op releases of each (default 5)
#   --shipit BIN   the shipit binary (default: `cargo build --release` of this repository)
#   --project DIR  the built example with its target/ (default: $SHIPIT_FIXTURE_DIR/hello-server,
#                  else examples/hello-server, built by the warm-up)
#   --no-crate     skip the real crate (its first build compiles ~30 crates per target)
#   --no-registry  skip the docker-registry run
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/scripts/lib-bench.sh"
runs=5
project=""
shipit=""
crate=1
registry=1
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --shipit) shipit=$2; shift 2 ;;
        --project) project=$2; shift 2 ;;
        --no-crate) crate=0; shift ;;
        --no-registry) registry=0; shift ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-noop-release: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
project=$(bench_project "$project" target)
shipit=$(bench_shipit "$shipit")
export SOURCE_DATE_EPOCH=1700000000

work=$(mktemp -d /tmp/bench-noop-release-XXXXXX)
registry_pid=""
cleanup() {
    if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

seconds() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The median seconds of each stage over the release.json files given.
stage_medians() {
    python3 - "$@" <<'PY'
import json, statistics, sys
per = {}
order = []
for f in sys.argv[1:]:
    for s in json.load(open(f)).get("stages", []):
        if s["stage"] not in per:
            order.append(s["stage"])
        per.setdefault(s["stage"], []).append(s["seconds"])
print("    stages (median s): " + ", ".join(f"{k} {statistics.median(per[k]):.3f}" for k in order))
PY
}

# Copies a project (manifest, lock, pipeline, sources, target/, base) into $work/$1.
copy_project() {
    local from=$1 to=$work/$2
    mkdir -p "$to"
    copy() {
        for f in Cargo.toml Cargo.lock pipeline.yaml pipeline.lock build.rs src target; do
            [ -e "$from/$f" ] && cp -a "$from/$f" "$to/"
        done
        return 0
    }
    if [ -f "$from/../.lock" ]; then flock "$from/../.lock" bash -c "$(declare -f copy); from=$from to=$to copy"; else copy; fi
    [ -e "$from/base" ] && ln -s "$from/base" "$to/base"
    echo "$to"
}

release() { (cd "$1" && "$shipit" release -q "${@:2}"); }

# Warm-up (the first release in a copy builds, packages and verifies; the second leaves the
# freshness stamps settled), then N timed no-op releases. Prints the median.
bench() {
    local name=$1 dir=$2
    shift 2
    release "$dir" "$@" >/dev/null
    release "$dir" "$@" >/dev/null
    local t=() reports=()
    for i in $(seq 1 "$runs"); do
        t+=("$(seconds release "$dir" "$@")")
        cp "$dir/dist/release.json" "$work/$name-$i.json"
        reports+=("$work/$name-$i.json")
    done
    local m
    m=$(printf '%s\n' "${t[@]}" | median)
    echo "  $name: runs ${t[*]} s; median no-op release $m s"
    stage_medians "${reports[@]}"
    python3 - "${reports[-1]}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n = sum(len(i["platforms"]) for i in r["images"])
cached = sum(p["cached"] for i in r["images"] for p in i["platforms"])
moved = sum(len(i["tags_moved"]) for i in r["images"])
print(f"    {n} platform images, {cached} verifications reused, {moved} tags moved, {r['blobs_uploaded']} blobs uploaded")
PY
}

echo "bench-noop-release: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  shipit: $shipit ($("$shipit" --version))"

ex=$(copy_project "$project" example)
bench "example (oci layout)" "$ex"

if [ "$crate" = 1 ]; then
    # hexyl from crates.io: its published sources (with Cargo.lock), kept between runs in the
    # fixture dir so that its target/ is built once.
    cache=${SHIPIT_FIXTURE_DIR:-$HOME/.cache/shipit-bench}/hexyl
    if [ ! -f "$cache/Cargo.toml" ]; then
        mkdir -p "$work/fetch/src" "$cache"
        printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nhexyl = "=0.16.0"\n' >"$work/fetch/Cargo.toml"
        echo 'fn main() {}' >"$work/fetch/src/main.rs"
        (cd "$work/fetch" && cargo fetch -q)
        src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/hexyl-0.16.0 | head -1)
        cp -a "$src/." "$cache/"
    fi
    cat >"$cache/pipeline.yaml" <<'YAML'
# hexyl 0.16 (crates.io), for bench-noop-release.sh: static musl images on scratch.
version: 1
project: { manifest: Cargo.toml, version: cargo }
platforms: [linux/amd64, linux/arm64]
variants:
  musl: { base: scratch }
image:
  repository: localhost/hexyl
  user: "10001:10001"
  entrypoint: ["/usr/local/bin/hexyl"]
verify:
  checks:
    - name: version
      run: ["--version"]
      stdout: 'hexyl \d+\.\d+\.\d+'
publish:
  to: oci:dist/oci
YAML
    echo "  (building hexyl in $cache the first time: a few minutes)"
    (cd "$cache" && "$shipit" build -q >/dev/null)
    hx=$(copy_project "$cache" hexyl)
    bench "hexyl (oci layout)" "$hx"
fi

if [ "$registry" = 1 ]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$work/registry"
    printf 'version: 0.1\nlog:\n  level: info\n  formatter: json\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$work/registry/storage" "$port" >"$work/registry/config.yml"
    docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
    registry_pid=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    sed -e "s|repository: localhost/hello-server|repository: 127.0.0.1:$port/hello-server|" \
        -e 's|to: oci:dist/oci|to: registry|' "$ex/pipeline.yaml" >"$ex/pipeline-registry.yaml"
    printf '\nattest: { sbom: false, provenance: false, verification: false }\n' >>"$ex/pipeline-registry.yaml"
    release "$ex" -c pipeline-registry.yaml >/dev/null # the first push
    count() { grep -c "\"$1 [^\"]*$2" "$work/registry/log" || true; }
    before=$(wc -l <"$work/registry/log")
    t=$(seconds release "$ex" -c pipeline-registry.yaml)
    tail -n +"$((before + 1))" "$work/registry/log" >"$work/registry/noop.log"
    noop() { grep -c "\"$1 [^\"]*$2" "$work/registry/noop.log" || true; }
    echo "  example (docker-registry): no-op release $t s;" \
        "blob uploads started $(noop POST /blobs/uploads/), committed $(noop PUT /blobs/uploads/)," \
        "manifest PUTs $(noop PUT /manifests/), HEADs $(noop HEAD /v2/)"

    # Uploads: every run pushes to the registry restarted empty (same port: the same pipeline).
    restart_empty() {
        kill "$registry_pid" && wait "$registry_pid" 2>/dev/null || true
        rm -rf "$work/registry/storage"
        docker-registry serve "$work/registry/config.yml" >>"$work/registry/log" 2>&1 &
        registry_pid=$!
        for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    }
    push() { (cd "$ex" && "$shipit" publish -q -c pipeline-registry.yaml "$@"); }
    one=(); four=()
    for i in $(seq 1 "$runs"); do
        restart_empty
        one+=("$(seconds push --jobs 1)")
        restart_empty
        four+=("$(seconds push)")
    done
    echo "  publish of the 7 images into an empty repository (verification cached):" \
        "--jobs 1 median $(printf '%s\n' "${one[@]}" | median) s (${one[*]})," \
        "pool of 4 median $(printf '%s\n' "${four[@]}" | median) s (${four[*]})"
fi
