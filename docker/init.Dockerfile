# Written by `shipit init`. Used by `build.backend: docker` (the `binary` stage) and by
# `package: docker` (the final stage). Compiles on the build machine's own platform and
# cross-compiles to the target: nothing is compiled under emulation.
ARG RUST_VERSION=1
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG RUST_TARGET
ARG BIN=__BIN__
WORKDIR /src
RUN rustup target add "$RUST_TARGET"
# musl targets link with rust-lld (no C cross toolchain); for gnu targets install gcc-<triple>
# and set CARGO_TARGET_<TRIPLE>_LINKER to it.
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
# Dependencies first, in their own cached layer: source edits do not rebuild them.
COPY Cargo.toml Cargo.lock* ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs \
 && cargo build --release --locked --target "$RUST_TARGET" || true
COPY . .
RUN touch src/main.rs && cargo build --release --locked --target "$RUST_TARGET" --bin "$BIN" \
 && mkdir /out && cp "target/$RUST_TARGET/release/$BIN" /out/

# `docker build --target binary --output type=local,dest=DIR` exports just the binary.
FROM scratch AS binary
COPY --from=build /out/ /

# The runtime image: slim Debian for glibc binaries, CA certificates, a non-root user.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /out/__BIN__ /usr/local/bin/__BIN__
USER 10001:10001
# Documentation only: publish ports with your orchestrator.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/__BIN__"]
