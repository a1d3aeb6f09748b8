//! `shipit init`: writes a commented `pipeline.yaml` and `docker/Dockerfile` for the Cargo project
//! in the current directory. Refuses to overwrite either without `--force`.

use crate::error::{Error, Result};
use crate::ui::Ui;
use std::path::Path;

pub fn run(dir: &Path, force: bool, cancel: &crate::exec::Cancel, ui: &Ui) -> Result<()> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        return Err(Error::config(format!(
            "no Cargo.toml in {}: run `shipit init` in the directory of the Rust package to release",
            dir.display()
        )));
    }
    let (package, version, bins, _, _) =
        // The project's Cargo.toml is init's input: `cargo metadata` failing on it is exit 2.
        crate::tools::cargo::facts(&manifest, None, cancel).map_err(Error::config)?;
    let bin = match bins.as_slice() {
        [] => {
            return Err(Error::config(format!(
                "the package `{package}` has no binary target to release"
            )));
        }
        [one] => one.clone(),
        many => {
            ui.warn(format!("the package has several binaries ({}); using `{}`: change project.bin to pick another", many.join(", "), many[0]));
            many[0].clone()
        }
    };
    let pipeline = dir.join("pipeline.yaml");
    let dockerfile = dir.join("docker/Dockerfile");
    for f in [&pipeline, &dockerfile] {
        if f.exists() && !force {
            return Err(Error::config(format!(
                "{} already exists: nothing was written (use --force to overwrite it)",
                f.display()
            )));
        }
    }
    let text = pipeline_text(&package, &bin, &version.to_string());
    // What init writes must be a valid pipeline.
    crate::config::parse_str(&text, &pipeline, dir)
        .map_err(|e| Error::stage(format!("internal: init wrote an invalid pipeline:\n{e}")))?;
    std::fs::write(&pipeline, text).map_err(|e| Error::io(&pipeline, e))?;
    std::fs::create_dir_all(dockerfile.parent().unwrap_or(dir))
        .map_err(|e| Error::stage(e.to_string()))?;
    std::fs::write(&dockerfile, dockerfile_text(&bin)).map_err(|e| Error::io(&dockerfile, e))?;
    ui.ok(format!(
        "wrote {} and {}",
        pipeline.display(),
        dockerfile.display()
    ));
    ui.info("next: `shipit doctor --fix`, then `shipit plan` to see what a release will do");
    Ok(())
}

pub fn pipeline_text(package: &str, bin: &str, version: &str) -> String {
    format!(
        r#"# shipit pipeline for {package} {version} (schema version 1; unknown keys are errors).
# `shipit plan` shows what a release will do; `shipit release` does it.
version: 1
project:
  manifest: Cargo.toml
  package: {package}
  bin: {bin}
  version: cargo            # cargo | git-tag | an explicit version like 1.4.0-rc.1
build:
  backend: auto             # auto | cargo | zigbuild | cross | docker
  profile: release
  glibc: "2.31"             # oldest glibc the gnu binaries must run on (Debian bullseye)
# linux/arm/v6 is the Pi Zero / Pi 1; linux/arm/v7 a Pi 2-5 on a 32-bit OS.
platforms: [linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6]
variants:                   # one multi-arch image per libc
  musl: {{ base: scratch }}   # static binaries, nothing else in the image
  # gnu: {{ base: "debian:bookworm-slim", tag_suffix: "-gnu", platforms: [linux/amd64, linux/arm64, linux/arm/v7] }}
image:
  repository: ghcr.io/your-org/{bin}   # where `publish.to: registry` pushes
  user: "10001:10001"       # never root unless verify.allow_root says so
  entrypoint: ["/usr/local/bin/{bin}"]
  ports: []
  env: {{}}
  labels: {{}}
  tags: ["{{version}}", "{{major}}.{{minor}}", "{{major}}", latest]   # a pre-release gets only {{version}}
verify:
  cpu: strict               # the oldest CPU of each platform: arm1176, cortex-a7, cortex-a53
  max_size: 64MiB
  checks:
    - name: version
      run: ["--version"]
      stdout: '{bin}'
      timeout: 10s
    # - name: serves
    #   serve: {{ port: 8080, path: /health, status: 200, timeout: 20s }}
    #   stop: {{ signal: SIGTERM, within: 5s }}
publish:
  to: oci:dist/oci          # or `registry` to push image.repository
  insecure: false           # plain http only for loopback registries, or when set true
"#
    )
}

pub fn dockerfile_text(bin: &str) -> String {
    format!(
        r#"# Written by `shipit init`. Used by `build.backend: docker` (the `binary` stage) and by
# `package: docker` (the final stage). Compiles on the build machine's own platform and
# cross-compiles to the target: nothing is compiled under emulation.
ARG RUST_VERSION=1
FROM --platform=$BUILDPLATFORM rust:${{RUST_VERSION}}-bookworm AS build
ARG RUST_TARGET
ARG BIN={bin}
WORKDIR /src
RUN rustup target add "$RUST_TARGET"
# musl targets link with rust-lld (no C cross toolchain); for gnu targets install gcc-<triple>
# and set CARGO_TARGET_<TRIPLE>_LINKER to it.
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
# Dependencies first, in their own cached layer: source edits do not rebuild them.
COPY Cargo.toml Cargo.lock* ./
RUN mkdir src && echo 'fn main() {{}}' > src/main.rs \
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
COPY --from=build /out/{bin} /usr/local/bin/{bin}
USER 10001:10001
# Documentation only: publish ports with your orchestrator.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/{bin}"]
"#
    )
}
