#!/usr/bin/env bash
# Benchmark (not a test): package + publish of 2 platform images (musl linux/amd64 and
# linux/arm64 of the example) that carry the same N MB `image.files` payload, for N = 1, 10, 40
# and 100 (half pseudo-random bytes, half C headers as text), to a docker-registry on 127.0.0.1,
# with shipit (`package`, then `publish`, which verifies both images under QEMU first) and with
# buildah (`from scratch`, `copy` of the binary and the payload, `config`, `commit`, `manifest
# add`, `manifest push`), in the same run, from cold every time (fresh project dir, layout and
# caches; a fresh repository per push). Prints one line per size and the ratio shipit/buildah
# (issue 15's target: <= 0.25), of wall time and of CPU time (user + sys of each tool and the
# processes it waited for, QEMU included; the registry's own CPU is in neither): on a loaded
# machine the CPU ratio says what each tool costs, the wall ratio also how it waits.
#
# Usage: scripts/bench-payload.sh [--mb "1 10 40 100"] [--runs N] [--shipit [LABEL=]BIN]...
#   --mb LIST      payload sizes in MB (default "1 10 40 100")
#   --runs N       timed runs of each, the median is reported (default 1)
#   --shipit BIN   a shipit binary (repeatable, e.g. --shipit before=/tmp/shipit-before
#                  --shipit after=target/release/shipit: both measured in the same run against
#                  the same buildah runs); default: `cargo build --release` of this repository
# Attestations (SBOMs, provenance) are off: buildah makes none. Prebuilt binaries come from the
# shared test fixture ($SHIPIT_FIXTURE_DIR/hello-server, default examples/hello-server): run the
# integration tests once to make it. Everything happens in a temp dir, removed at the end.
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "$0")/.." && pwd)
mbs="1 10 40 100"
runs=1
bins=()
while [ $# -gt 0 ]; do
    case "$1" in
        --mb) mbs=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --shipit) bins+=("$2"); shift 2 ;;
        -h|--help) sed -n '2,/^set /p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-payload: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ ${#bins[@]} -eq 0 ]; then
    (cd "$repo" && cargo build --release --quiet --bin shipit)
    bins=("shipit=$repo/target/release/shipit")
fi
labels=(); shipits=()
for b in "${bins[@]}"; do
    if [[ $b == *=* ]]; then label=${b%%=*}; path=${b#*=}; else label=$(basename "$b"); path=$b; fi
    [ -x "$path" ] || { echo "bench-payload: $path is not an executable" >&2; exit 3; }
    labels+=("$label"); shipits+=("$(cd "$(dirname "$path")" && pwd)/$(basename "$path")")
done
project=${SHIPIT_FIXTURE_DIR:+$SHIPIT_FIXTURE_DIR/hello-server}
[ -n "$project" ] && [ -d "$project/dist/bin/musl" ] || project=$repo/examples/hello-server
for slug in linux-amd64 linux-arm64; do
    [ -f "$project/dist/bin/musl/$slug/hello-server" ] || {
        echo "bench-payload: no $project/dist/bin/musl/$slug/hello-server: run the integration tests once" >&2
        exit 3
    }
done
for tool in docker-registry buildah python3 openssl; do
    command -v "$tool" >/dev/null || { echo "bench-payload: $tool not found: scripts/setup.sh installs it" >&2; exit 3; }
done

work=$(mktemp -d /tmp/bench-payload.XXXXXX)
reg_pid=
B=(buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver vfs)
cleanup() {
    [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && { wait "$reg_pid" 2>/dev/null || true; }
    "${B[@]}" rm --all >/dev/null 2>&1 || true
    "${B[@]}" rmi --all --force >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- the registry ----------------------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $reg
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break
    sleep 0.1
done

# --- inputs ----------------------------------------------------------------------------------
mkdir -p "$work/src"
cp -r "$project/Cargo.toml" "$project/Cargo.lock" "$project/src" "$project/pipeline.yaml" "$work/src/"
mkdir -p "$work/src/dist/bin/musl"
for slug in linux-amd64 linux-arm64; do
    mkdir -p "$work/src/dist/bin/musl/$slug"
    cp "$project/dist/bin/musl/$slug/hello-server" "$work/src/dist/bin/musl/$slug/"
done
payload() { # payload MB FILE: the same bytes on every run on a machine with the same headers
    local half=$(($1 * 1000 * 1000 / 2))
    head -c "$half" /dev/zero | openssl enc -aes-128-ctr -nosalt -pass pass:shipit-bench -pbkdf2 >"$2"
    # (`head` closes the pipe early: the headers' cat may die of SIGPIPE, which is fine.)
    { find /usr/include -type f -name '*.h' -print0 | sort -z | xargs -0 cat 2>/dev/null || true; } | head -c "$half" >>"$2"
    [ "$(stat -c %s "$2")" -eq $((2 * half)) ] || { echo "bench-payload: $2 has the wrong size (too few headers in /usr/include?)" >&2; exit 3; }
}

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# cpu FILE: the children's user + sys seconds in the output of bash's `times` in FILE
cpu() { awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] } printf "%.3f", s }' "$1"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# A fresh number per run (runs happen in subshells): its own project dir and repository.
next_n() { n=$(($(cat "$work/n" 2>/dev/null || echo 0) + 1)); echo "$n" >"$work/n"; }

# shipit_once BIN MB: prints "package publish total cpu"
shipit_once() {
    next_n
    local p=$work/run-$n
    mkdir -p "$p"
    cp -r "$work/src/." "$p/"
    ln "$work/payload-$2.bin" "$p/payload.bin"
    python3 - "$p/pipeline.yaml" "$reg/shipit-$n" <<'EOF'
import re, sys
path, repo = sys.argv[1:]
text = open(path).read()
text = text.replace("repository: localhost/hello-server", f"repository: {repo}")
text = text.replace("to: oci:dist/oci", "to: registry")
text = re.sub(r"(?m)^  tags: .*$", '  tags: ["{version}"]', text)
text = text.replace("image:\n", 'image:\n  files: [{ src: payload.bin, dest: /srv/payload.bin, mode: "0644" }]\n', 1)
text += "\nattest: { sbom: false, provenance: false, verification: false }\n"
open(path, "w").write(text)
EOF
    local t0 t1 t2
    cd "$p"
    t0=$(now)
    (
        SOURCE_DATE_EPOCH=1700000000 NO_COLOR=1 "$1" package -q --variant musl --platform linux/amd64 --platform linux/arm64
        echo "$(now)" >"$work/t1"
        NO_COLOR=1 "$1" publish -q --variant musl --platform linux/amd64 --platform linux/arm64 >/dev/null
        times >"$work/times"
    )
    t2=$(now)
    t1=$(cat "$work/t1")
    cd "$work"
    rm -rf "$p"
    echo "$(secs "$t0" "$t1") $(secs "$t1" "$t2") $(secs "$t0" "$t2") $(cpu "$work/times")"
}

# buildah_once MB: prints the seconds for both images, the list and the push, and its CPU
buildah_once() {
    next_n
    local t0 t1
    t0=$(now)
    (buildah_images "$1"; times >"$work/times")
    t1=$(now)
    "${B[@]}" rmi --all --force >/dev/null 2>&1 || true
    echo "$(secs "$t0" "$t1") $(cpu "$work/times")"
}
buildah_images() {
    local list=bench-list-$n
    "${B[@]}" manifest create "$list" >/dev/null
    for slug in linux-amd64 linux-arm64; do
        local arch=${slug#linux-} ctr vflag=()
        [ "$arch" = arm64 ] && vflag=(--variant v8)
        ctr=$("${B[@]}" from --arch "$arch" --os linux "${vflag[@]}" scratch)
        "${B[@]}" copy --chown 0:0 "$ctr" "$work/src/dist/bin/musl/$slug/hello-server" /usr/local/bin/hello-server >/dev/null
        "${B[@]}" copy --chown 0:0 "$ctr" "$work/payload-$1.bin" /srv/payload.bin >/dev/null
        "${B[@]}" config --entrypoint '["/usr/local/bin/hello-server"]' --user 10001:10001 \
            --port 8080 --env RUST_LOG=info "$ctr"
        "${B[@]}" commit -q "$ctr" "bench-$n-$slug" >/dev/null
        "${B[@]}" manifest add "$list" "containers-storage:localhost/bench-$n-$slug" >/dev/null
        "${B[@]}" rm "$ctr" >/dev/null
    done
    "${B[@]}" manifest push -q --all --tls-verify=false "$list" "docker://$reg/buildah-$n:0.3.1" >/dev/null
}

echo "bench-payload: 2 musl images (amd64, arm64) + payload, package + publish with verification vs buildah; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in "${!labels[@]}"; do echo "  ${labels[$i]}: ${shipits[$i]} ($("${shipits[$i]}" --version))"; done
echo "  buildah: $(buildah --version)"
declare -A result
for mb in $mbs; do
    payload "$mb" "$work/payload-$mb.bin"
    for r in $(seq 1 "$runs"); do
        for i in "${!labels[@]}"; do
            read -r pk pb tot c < <(shipit_once "${shipits[$i]}" "$mb")
            result[$mb,$i,pk]+="$pk "; result[$mb,$i,pb]+="$pb "; result[$mb,$i,tot]+="$tot "; result[$mb,$i,cpu]+="$c "
            echo "  $mb MB run $r: ${labels[$i]} package $pk s + publish $pb s = $tot s (CPU $c s)" >&2
        done
        read -r b c < <(buildah_once "$mb")
        result[$mb,b]+="$b "; result[$mb,bcpu]+="$c "
        echo "  $mb MB run $r: buildah $b s (CPU $c s)" >&2
    done
    rm -f "$work/payload-$mb.bin"
done
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo
echo "medians of $runs run(s); wall: package + publish = total (ratio to buildah); CPU: seconds (ratio)"
printf '%-8s' "payload"
for l in "${labels[@]}"; do printf ' | %-34s | %-16s' "$l wall" "$l CPU"; done
printf ' | %-8s | %s\n' "buildah" "buildah CPU"
for mb in $mbs; do
    b=$(med "${result[$mb,b]}"); bc=$(med "${result[$mb,bcpu]}")
    printf '%-8s' "$mb MB"
    for i in "${!labels[@]}"; do
        pk=$(med "${result[$mb,$i,pk]}"); pb=$(med "${result[$mb,$i,pb]}"); tot=$(med "${result[$mb,$i,tot]}"); c=$(med "${result[$mb,$i,cpu]}")
        printf ' | %-34s' "$(awk -v a="$pk" -v p="$pb" -v t="$tot" -v b="$b" 'BEGIN { printf "%.2f + %.2f = %.2f s (%.2fx)", a, p, t, t / b }')"
        printf ' | %-16s' "$(awk -v c="$c" -v b="$bc" 'BEGIN { printf "%.2f s (%.2fx)", c, c / b }')"
    done
    printf ' | %-8s | %.2f s\n' "$(printf '%.2f s' "$b")" "$bc"
done
