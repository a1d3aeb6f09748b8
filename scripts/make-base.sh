#!/usr/bin/env bash
# Makes a Debian base image as an OCI image layout: the stand-in for `debian:<suite>-slim` on a
# machine that cannot pull from any hub. One layout DIR holds one tag per arch, `<suite>-<arch>`
# (e.g. bookworm-arm64, bookworm-armhf). Each rootfs is `mmdebstrap --variant=extract` of the
# packages given (no maintainer scripts run, no emulation needed), cached as a tarball under
# ${XDG_CACHE_HOME:-$HOME/.cache}/shipit-bases/ keyed by suite, arch and package list.
#
# Usage: scripts/make-base.sh --out DIR [--suite bookworm] [--arch amd64,arm64,armhf]
#                             [--include libc6,libgcc-s1] [--mirror URL] [--rootfs DIR]
#   --out DIR     OCI image layout to create or extend (tags <suite>-<arch>)
#   --mirror URL  Debian mirror (default: the first non-security URI in /etc/apt/sources.list.d/debian.sources)
#   --rootfs DIR  also unpack each rootfs to DIR/<suite>-<arch>/ (for `qemu-<arch>-static -L`)
# Idempotent: tags already in DIR are skipped, cached tarballs are reused.
set -euo pipefail

OUT=
SUITE=bookworm
ARCHES=amd64,arm64,armhf
INCLUDE=libc6,libgcc-s1
MIRROR=
ROOTFS=
# Image timestamps: SOURCE_DATE_EPOCH when set, else the epoch.
CREATED=$(date -u -d "@${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%dT%H:%M:%SZ)
PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { printf 'make-base.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '/^# Usage:/,/^# Idempotent/p' "$0" | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case $1 in
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --suite) SUITE=${2:?--suite needs a Debian suite name}; shift 2 ;;
    --arch) ARCHES=${2:?--arch needs a comma-separated list}; shift 2 ;;
    --include) INCLUDE=${2:?--include needs a comma-separated package list}; shift 2 ;;
    --mirror) MIRROR=${2:?--mirror needs a URL}; shift 2 ;;
    --rootfs) ROOTFS=${2:?--rootfs needs a directory}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
[[ -n $OUT ]] || { usage >&2; die "--out DIR is required"; }
for tool in mmdebstrap umoci jq sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is not installed; run scripts/setup.sh"
done

# The main (non-security) mirror: the security suite's indices can fail to download here.
if [[ -z $MIRROR ]]; then
  if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    MIRROR=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
      /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $MIRROR && -r /etc/apt/sources.list ]]; then
    MIRROR=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
      /etc/apt/sources.list)
  fi
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/shipit-bases
mkdir -p "$CACHE"

oci_arch() {
  case $1 in
    amd64) echo "amd64 -" ;;
    arm64) echo "arm64 v8" ;;
    armhf) echo "arm v7" ;;
    armel) echo "arm v5" ;;
    i386) echo "386 -" ;;
    riscv64) echo "riscv64 -" ;;
    ppc64el) echo "ppc64le -" ;;
    s390x) echo "s390x -" ;;
    *) die "unknown Debian architecture '$1' (known: amd64 arm64 armhf armel i386 riscv64 ppc64el s390x)" ;;
  esac
}

# Sets the platform variant ($4, `-` for none) on the config of tag $2 in layout $1, and the platform
# on its index.json entry (so a reader can pick a tag by platform), and pins the timestamps. umoci 0.4.7 has no flag for
# either, so the config and manifest blobs are rewritten by hand.
set_platform() {
  local layout=$1 tag=$2 arch=$3 variant=$4 mdigest manifest cdigest config newc newm
  mdigest=$(jq -r --arg t "$tag" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$layout/index.json")
  [[ -n $mdigest ]] || die "tag $tag not found in $layout/index.json"
  manifest=$layout/blobs/sha256/${mdigest#sha256:}
  cdigest=$(jq -r .config.digest "$manifest")
  config=$layout/blobs/sha256/${cdigest#sha256:}
  newc=$(mktemp "$layout/.config.XXXXXX")
  # Fixed timestamps: the same cached rootfs tarball always gives the same image digest.
  jq -cj --arg v "$variant" --arg c "$CREATED" '
    (if $v == "-" then del(.variant) else .variant = $v end)
    | .created = $c | .history |= map(.created = $c)' "$config" >"$newc"
  local csum csize; csum=$(sha256sum "$newc" | cut -d' ' -f1); csize=$(stat -c %s "$newc")
  mv "$newc" "$layout/blobs/sha256/$csum"
  newm=$(mktemp "$layout/.manifest.XXXXXX")
  jq -cj --arg d "sha256:$csum" --argjson s "$csize" '.config.digest = $d | .config.size = $s' "$manifest" >"$newm"
  local msum msize; msum=$(sha256sum "$newm" | cut -d' ' -f1); msize=$(stat -c %s "$newm")
  mv "$newm" "$layout/blobs/sha256/$msum"
  local newi; newi=$(mktemp "$layout/.index.XXXXXX")
  jq -c --arg t "$tag" --arg d "sha256:$msum" --argjson s "$msize" --arg a "$arch" --arg v "$variant" '
    .manifests |= map(if .annotations["org.opencontainers.image.ref.name"] == $t
      then .digest = $d | .size = $s
        | .platform = ({architecture: $a, os: "linux"} + (if $v == "-" then {} else {variant: $v} end))
      else . end)' "$layout/index.json" >"$newi"
  mv "$newi" "$layout/index.json"
  chmod 0644 "$layout/index.json" "$layout/blobs/sha256/$csum" "$layout/blobs/sha256/$msum"
}

IFS=, read -ra arch_list <<<"$ARCHES"
for arch in "${arch_list[@]}"; do oci_arch "$arch" >/dev/null; done  # unknown arch: fail before any work

[[ -f $OUT/oci-layout ]] || umoci init --layout "$OUT"
existing=$(umoci ls --layout "$OUT")
changed=0
for arch in "${arch_list[@]}"; do
  tag=$SUITE-$arch
  read -r oarch variant < <(oci_arch "$arch")
  tarball=$CACHE/$SUITE-$arch-${INCLUDE//,/+}.tar
  if [[ -s $tarball ]]; then
    echo "rootfs $SUITE/$arch: cached $tarball"
  else
    echo "rootfs $SUITE/$arch: mmdebstrap --variant=extract --include=$INCLUDE from $MIRROR"
    # mmdebstrap picks the output format from the name: keep the .tar suffix.
    tmp=$CACHE/.partial-$$-$SUITE-$arch.tar
    # --skip=output/dev: no device nodes in the layer; container runtimes provide /dev.
    if ! mmdebstrap --quiet --variant=extract --include="$INCLUDE" --architectures="$arch" \
      --skip=output/dev "$SUITE" "$tmp" "$MIRROR"; then
      rm -f "$tmp"
      die "mmdebstrap failed for $SUITE/$arch from $MIRROR; check the mirror (--mirror URL) and the package names in --include"
    fi
    mv "$tmp" "$tarball"
  fi
  if [[ -n $ROOTFS && ! -d $ROOTFS/$tag ]]; then
    mkdir -p "$ROOTFS/$tag.partial"
    tar -xf "$tarball" -C "$ROOTFS/$tag.partial"
    mv "$ROOTFS/$tag.partial" "$ROOTFS/$tag"
    echo "rootfs $SUITE/$arch: unpacked to $ROOTFS/$tag"
  fi
  if grep -qx "$tag" <<<"$existing"; then
    echo "image $OUT:$tag: already there, skipped"
    continue
  fi
  umoci new --image "$OUT:$tag"
  umoci raw add-layer --image "$OUT:$tag" --history.created_by "mmdebstrap --variant=extract --include=$INCLUDE $SUITE" "$tarball"
  umoci config --image "$OUT:$tag" --architecture "$oarch" --os linux --config.env "$PATH_ENV" \
    --history.created_by "shipit make-base.sh: platform linux/$oarch"
  set_platform "$OUT" "$tag" "$oarch" "$variant"
  changed=1
  plat=linux/$oarch
  [[ $variant == - ]] || plat+=/$variant
  echo "image $OUT:$tag: $plat from $tarball"
done
if ((changed)); then
  umoci gc --layout "$OUT"
fi
