#!/usr/bin/env bash
# Builds the local images that shipit's docker-path tests need into the test dockerd, since no
# image can be pulled from any hub here. Idempotent: an image whose fixture label matches is kept.
#
#   shipit-test/debian:bookworm  Debian bookworm (mmdebstrap minbase) + gcc + libc6-dev +
#                               ca-certificates, imported from the rootfs tarball.
#   shipit-test/rust:bookworm   docker/builder.Dockerfile on top of it: this machine's Rust
#                               toolchain trimmed to cargo, rustc, the host std and the musl std
#                               of aarch64 and x86_64 (no docs, no rust-src), staged here as the
#                               build context. aarch64-unknown-linux-musl links with rust-lld (set
#                               in the image's environment), so nothing there needs a cross gcc.
#                               Used as the `FROM --platform=$BUILDPLATFORM` builder of the test
#                               Dockerfile, as cross's image (cross mounts the host toolchain over
#                               it) and as the build stage of docker/Dockerfile in the tests.
#   rustup toolchain shipit-cross  a link to the active toolchain, for cross (see tools/cross.rs).
#
# The bookworm rootfs tarball is cached under ~/.cache/shipit-docker/. Needs root, mmdebstrap, a
# running test dockerd (scripts/start-dockerd.sh) and rustup's stable toolchain with the targets
# aarch64-unknown-linux-musl and x86_64-unknown-linux-musl.
# Usage: scripts/docker-fixtures.sh   (DOCKER_HOST defaults to unix:///run/shipit-docker.sock)
#   SHIPIT_BUILDER_IMAGE=NAME  build the builder image under another name (the tests check the
#                              Dockerfile that way without replacing the shared image)
#   SHIPIT_FIXTURE_REBUILD=1   build it even when its label matches
set -euo pipefail

HOST=${DOCKER_HOST:-unix:///run/shipit-docker.sock}
IMAGE=${SHIPIT_BUILDER_IMAGE:-shipit-test/rust:bookworm}
BASE_IMAGE=shipit-test/debian:bookworm
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/shipit-docker
ROOTFS=$CACHE/bookworm-minbase-gcc.tar
# Bump when what goes into the image changes (docker/builder.Dockerfile makes the same image
# that recipe 1 imported in one piece).
RECIPE=1
BASE_RECIPE=1
TARGETS=(aarch64-unknown-linux-musl x86_64-unknown-linux-musl)

die() { printf 'docker-fixtures.sh: %s\n' "$*" >&2; exit 1; }
docker_() { docker -H "$HOST" "$@"; }

command -v docker >/dev/null || die "docker CLI missing: run scripts/setup.sh (Debian package docker.io)"
docker_ info >/dev/null 2>&1 || die "no dockerd answers on $HOST: run scripts/start-dockerd.sh first"
command -v rustc >/dev/null || die "rustc missing: install rustup's stable toolchain"

sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
for t in "${TARGETS[@]}"; do
  [[ -d $sysroot/lib/rustlib/$t/lib ]] || die "rust-std for $t is not installed: rustup target add $t"
done
# cross 0.2.5 misreads rustup 1.28+'s `stable-... (active, default)` and would try to reinstall
# the default toolchain; shipit runs cross with this linked toolchain instead (tools/cross.rs).
if command -v rustup >/dev/null; then
  rustup toolchain link shipit-cross "$sysroot" >/dev/null \
    || die "rustup toolchain link shipit-cross $sysroot failed"
fi

fingerprint="recipe=$RECIPE $(rustc -V | tr ' ' '_') ${TARGETS[*]}"
fingerprint=${fingerprint// /,}

base_fingerprint="rootfs=bookworm-minbase-gcc,recipe=$BASE_RECIPE"

label() { docker_ image inspect -f '{{index .Config.Labels "shipit.fixture"}}' "$1" 2>/dev/null || true; }
builder_ok=false
if [[ $(label "$IMAGE") == "$fingerprint" && ${SHIPIT_FIXTURE_REBUILD:-0} != 1 ]]; then
  builder_ok=true
fi
if $builder_ok && [[ $(label "$BASE_IMAGE") == "$base_fingerprint" ]]; then
  echo "docker-fixtures: $BASE_IMAGE and $IMAGE are up to date ($fingerprint)"
  exit 0
fi

started=$SECONDS
mkdir -p "$CACHE"
if [[ ! -s $ROOTFS ]]; then
  command -v mmdebstrap >/dev/null || die "mmdebstrap missing: apt-get install mmdebstrap"
  [[ $(id -u) -eq 0 ]] || die "mmdebstrap needs root here"
  # The main mirror only: the security suite is not needed and can fail to download here.
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "docker-fixtures: mmdebstrap bookworm from $mirror (cached as $ROOTFS)"
  mmdebstrap --quiet --format=tar --variant=minbase --include=gcc,libc6-dev,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$ROOTFS.tmp" "$mirror"
  mv "$ROOTFS.tmp" "$ROOTFS"
fi

if [[ $(label "$BASE_IMAGE") != "$base_fingerprint" ]]; then
  echo "docker-fixtures: importing $BASE_IMAGE from $ROOTFS"
  docker_ import --platform linux/amd64 \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL shipit.fixture=$base_fingerprint" \
    "$ROOTFS" "$BASE_IMAGE" >/dev/null
fi
if $builder_ok; then
  echo "docker-fixtures: $IMAGE is up to date ($fingerprint)"
  exit 0
fi

# The build context: root/ is copied over the base as it is.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
rust=$root/usr/local/rust
mkdir -p "$rust/bin" "$rust/lib/rustlib" "$root/usr/local/bin" "$root/usr/local/cargo"
cp -a "$sysroot/bin/cargo" "$sysroot/bin/rustc" "$rust/bin/"
cp -a "$sysroot"/lib/*.so* "$rust/lib/"
for t in "$host" "${TARGETS[@]}"; do
  cp -a "$sysroot/lib/rustlib/$t" "$rust/lib/rustlib/"
done
ln -s ../rust/lib/rustlib/"$host"/bin/rust-lld "$root/usr/local/bin/rust-lld"

echo "docker-fixtures: building $IMAGE from docker/builder.Dockerfile ($(du -sh "$root" | cut -f1) of toolchain)"
# The legacy builder: the ENV and COPY steps need no BuildKit, and every docker CLI has it. The
# label says what went in (compared above to decide whether to build again).
DOCKER_BUILDKIT=0 docker_ build -q --network none \
  -f "$REPO/docker/builder.Dockerfile" \
  --build-arg "BASE=$BASE_IMAGE" \
  --label "shipit.fixture=$fingerprint" \
  -t "$IMAGE" "$work" >/dev/null
echo "docker-fixtures: $IMAGE built in $((SECONDS - started)) s ($fingerprint)"
