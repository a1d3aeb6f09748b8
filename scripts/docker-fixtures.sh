#!/usr/bin/env bash
# Builds the local images that shipit's docker-path tests need into the test dockerd, since no
# image can be pulled from any hub here. Idempotent: an image whose fixture label matches is kept.
#
#   shipit-test/rust:bookworm   Debian bookworm (mmdebstrap minbase) + gcc + libc6-dev, plus this
#                               machine's Rust toolchain trimmed to cargo, rustc, the host std and
#                               the musl std of aarch64 and x86_64 (no docs, no rust-src).
#                               aarch64-unknown-linux-musl links with rust-lld (set in the image's
#                               environment), so nothing there needs a cross gcc. Used as the
#                               `FROM --platform=$BUILDPLATFORM` builder of the test Dockerfile and
#                               as cross's image (cross mounts the host toolchain over it).
#   rustup toolchain shipit-cross  a link to the active toolchain, for cross (see tools/cross.rs).
#
# The bookworm rootfs tarball is cached under ~/.cache/shipit-docker/. Needs root, mmdebstrap, a
# running test dockerd (scripts/start-dockerd.sh) and rustup's stable toolchain with the targets
# aarch64-unknown-linux-musl and x86_64-unknown-linux-musl.
# Usage: scripts/docker-fixtures.sh   (DOCKER_HOST defaults to unix:///run/shipit-docker.sock)
set -euo pipefail

HOST=${DOCKER_HOST:-unix:///run/shipit-docker.sock}
IMAGE=shipit-test/rust:bookworm
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/shipit-docker
ROOTFS=$CACHE/bookworm-minbase-gcc.tar
# Bump when what goes into the image changes.
RECIPE=1
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

have=$(docker_ image inspect -f '{{index .Config.Labels "shipit.fixture"}}' "$IMAGE" 2>/dev/null || true)
if [[ $have == "$fingerprint" ]]; then
  echo "docker-fixtures: $IMAGE is up to date ($fingerprint)"
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

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"
tar -xpf "$ROOTFS" -C "$root"
rust=$root/usr/local/rust
mkdir -p "$rust/bin" "$rust/lib/rustlib"
cp -a "$sysroot/bin/cargo" "$sysroot/bin/rustc" "$rust/bin/"
cp -a "$sysroot"/lib/*.so* "$rust/lib/"
for t in "$host" "${TARGETS[@]}"; do
  cp -a "$sysroot/lib/rustlib/$t" "$rust/lib/rustlib/"
done
ln -s ../rust/lib/rustlib/"$host"/bin/rust-lld "$root/usr/local/bin/rust-lld"
mkdir -p "$root/usr/local/cargo"

echo "docker-fixtures: importing $IMAGE ($(du -sh "$root" | cut -f1))"
tar -C "$root" -c . | docker_ import \
  --platform linux/amd64 \
  --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV CARGO_HOME=/usr/local/cargo' \
  --change 'ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld' \
  --change "LABEL shipit.fixture=$fingerprint" \
  - "$IMAGE" >/dev/null
echo "docker-fixtures: $IMAGE built in $((SECONDS - started)) s ($fingerprint)"
