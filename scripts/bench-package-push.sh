#!/usr/bin/env bash
# Benchmark (not a test): package + push the example's 4 musl platforms from prebuilt binaries
# to a docker-registry on 127.0.0.1, with shipit and with buildah, in the same run, and print
# the ratio shipit/buildah (target <= 0.2).
#
#   scripts/bench-package-push.sh            # uses target/release/shipit (built if stale)
#   SHIPIT_BIN=target/debug/shipit scripts/bench-package-push.sh
#
# Prebuilt binaries come from the shared test fixture ($SHIPIT_FIXTURE_DIR/hello-server/dist/bin,
# default /work/fixture) — run the integration tests once to make it.
# Attestations are off (buildah makes none; scripts/bench-attest.sh measures them).
# shipit's `publish` verifies every image again under QEMU before pushing; buildah verifies
# nothing. So the script reports both shipit totals: with verification, and without it (the
# publish time minus the wall time of `shipit verify` of the same images, measured separately).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FIXTURE=${SHIPIT_FIXTURE_DIR:-/work/fixture}/hello-server
if [[ -z ${SHIPIT_BIN:-} ]]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
    SHIPIT_BIN=$ROOT/target/release/shipit
fi
SHIPIT=$(realpath "$SHIPIT_BIN")
for tool in docker-registry buildah python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 3; }
done
[[ -d $FIXTURE/dist/bin/musl ]] || {
    echo "error: no prebuilt musl binaries in $FIXTURE/dist/bin/musl: run the integration tests once" >&2
    exit 3
}

WORK=$(mktemp -d /tmp/bench-package-push.XXXXXX)
REG_PID=
cleanup() {
    [[ -n $REG_PID ]] && kill "$REG_PID" 2>/dev/null && { wait "$REG_PID" 2>/dev/null || true; }
    buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/run" --storage-driver vfs \
        rm --all >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }

# --- the registry -------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REG
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT),0.2)" 2>/dev/null && break
    sleep 0.1
done

# --- shipit: package + publish --------------------------------------------------------------
P=$WORK/shipit
mkdir -p "$P/dist/bin"
cp -r "$FIXTURE/Cargo.toml" "$FIXTURE/Cargo.lock" "$FIXTURE/src" "$P/"
cp -r "$FIXTURE/dist/bin/musl" "$P/dist/bin/"
# Private copies: other test runs may rewrite the fixture's dist/ meanwhile.
BIN=$WORK/bin
cp -r "$FIXTURE/dist/bin/musl" "$BIN"
sed -e "s#repository: localhost/hello-server#repository: $REG/shipit-hello#" \
    -e 's#to: oci:dist/oci#to: registry#' "$FIXTURE/pipeline.yaml" >"$P/pipeline.yaml"
# Attestations off: buildah makes none (scripts/bench-attest.sh measures what they cost).
printf '\nattest: { sbom: false, provenance: false, verification: false }\n' >>"$P/pipeline.yaml"
cd "$P"
export SOURCE_DATE_EPOCH=1700000000 NO_COLOR=1
t0=$(now)
"$SHIPIT" package -q --variant musl
t1=$(now)
"$SHIPIT" publish -q --variant musl >/dev/null
t2=$(now)
# The verification publish repeats, timed on its own (same images, same settings).
"$SHIPIT" verify -q --variant musl >/dev/null
t3=$(now)
package_s=$(secs "$t0" "$t1")
publish_s=$(secs "$t1" "$t2")
verify_s=$(secs "$t2" "$t3")
verify_sum=$(python3 -c "import json; r=json.load(open('dist/release.json')); print(f\"{sum(p['verify_seconds'] for i in r['images'] for p in i['platforms']):.2f}\")")
uploaded=$(python3 -c "import json; print(json.load(open('dist/release.json'))['blobs_uploaded'])")

# --- buildah: the same 4 images, one manifest list, pushed --------------------------------
B=(buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/run" --storage-driver vfs)
tb0=$(now)
"${B[@]}" manifest create bench-list >/dev/null
for slug in linux-amd64 linux-arm64 linux-arm-v7 linux-arm-v6; do
    IFS=- read -r os arch variant <<<"$slug"
    vflag=()
    [[ -n $variant ]] && vflag=(--variant "$variant")
    [[ $arch == arm64 ]] && vflag=(--variant v8)
    ctr=$("${B[@]}" from --arch "$arch" --os "$os" "${vflag[@]}" scratch)
    "${B[@]}" copy --chown 0:0 "$ctr" "$BIN/$slug/hello-server" /usr/local/bin/hello-server >/dev/null
    "${B[@]}" config --entrypoint '["/usr/local/bin/hello-server"]' --user 10001:10001 \
        --port 8080 --env RUST_LOG=info --os "$os" --arch "$arch" "${vflag[@]}" "$ctr"
    "${B[@]}" commit -q "$ctr" "bench-$slug" >/dev/null
    "${B[@]}" manifest add bench-list "containers-storage:localhost/bench-$slug" >/dev/null
    "${B[@]}" rm "$ctr" >/dev/null
done
for tag in 0.3.1-musl 0.3-musl 0-musl latest-musl; do
    "${B[@]}" manifest push -q --all --tls-verify=false bench-list "docker://$REG/buildah-hello:$tag" >/dev/null
done
tb1=$(now)
buildah_s=$(secs "$tb0" "$tb1")

shipit_s=$(python3 -c "print(f'{$package_s + $publish_s:.2f}')")
shipit_nov_s=$(python3 -c "print(f'{max(0.0, $package_s + $publish_s - $verify_s):.2f}')")
echo "shipit binary:                 $SHIPIT"
echo "shipit package (4 musl):       ${package_s}s"
echo "shipit publish (verify+push):  ${publish_s}s   ($uploaded blobs uploaded)"
echo "  of which verification:       ${verify_s}s wall (sum of per-platform verify_seconds: ${verify_sum}s)"
echo "shipit total, with verify:     ${shipit_s}s"
echo "shipit total, without verify:  ${shipit_nov_s}s"
echo "buildah (4 images + 4 tags):   ${buildah_s}s"
python3 - "$shipit_s" "$shipit_nov_s" "$buildah_s" <<'EOF'
import sys
s, n, b = map(float, sys.argv[1:])
print(f"ratio shipit/buildah, with verify:    {s / b:.3f}  (target <= 0.2)")
print(f"ratio shipit/buildah, without verify: {n / b:.3f}  (target <= 0.2)")
EOF
