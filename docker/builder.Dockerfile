# The builder image of shipit's docker-path tests, `shipit-test/rust:bookworm`: Debian bookworm
# (mmdebstrap minbase + gcc + libc6-dev + ca-certificates, imported by scripts/docker-fixtures.sh
# as shipit-test/debian:bookworm, since no image can be pulled from a hub here) plus this
# machine's Rust toolchain trimmed to cargo, rustc, the host std and the musl std of aarch64 and
# x86_64. The script stages that toolchain as the build context's `root/` and builds this file:
#
#   docker build -f docker/builder.Dockerfile --label shipit.fixture=... -t shipit-test/rust:bookworm CTX
#
# It is the `FROM --platform=$BUILDPLATFORM` builder of the test Dockerfile, cross's image (cross
# mounts the host toolchain over it), and the build stage of docker/Dockerfile in the tests.
# Nothing here runs a command, so it builds without any network.
ARG BASE=shipit-test/debian:bookworm
FROM ${BASE}
# aarch64-unknown-linux-musl links with rust-lld, so nothing needs a cross gcc.
ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HOME=/usr/local/cargo \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
# /usr/local/rust (the toolchain), /usr/local/bin/rust-lld (a link into it), /usr/local/cargo.
# Last, and no step after it: on the tests' vfs storage every step copies the whole image.
COPY root/ /
