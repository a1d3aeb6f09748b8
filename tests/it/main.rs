//! shipit's integration tests: one test binary, one module per area, real components throughout
//! (QEMU, cross linkers, docker-registry, skopeo, umoci). `support` holds shared fixtures.

mod support;

mod architecture; // the module graph of src/: no cycle, nothing below the CLI imports it
mod archives; // release archives: sha256sum -c, tar -tvzf, same bytes twice, tampering caught
mod attach_referrers; // release attestations as OCI referrers: registry (fallback tag, referrers API), layout, verify --key
mod attest; // SBOMs, provenance and signatures checked by cyclonedx, spdx-tools, syft, Python cryptography
mod bases; // base images pulled from a registry, cached by digest
mod build_stage; // real cross-compilation of the example, the ARMv6 guard, interrupts, dry runs
mod config_errors; // every bad pipeline.yaml: exit 2, file:line:col, a hint, nothing written
mod deb; // Debian archive → rootfs layers for 3 architectures; openssl, syft, QEMU read them; tampering refused
mod deb_base; // deb:SUITE bases through the CLI: release under QEMU, syft, digests, pipeline.lock, --locked, errors

mod docker_paths; // the docker build backend and packager against a real dockerd (BuildKit)
mod github_actions; // GITHUB_ACTIONS conventions, generated workflows and action.yml through actionlint
mod hostile_layouts; // FIFOs, links out and /dev/zero in a layout; nested, wide and fanned-out indexes
mod integrity; // publish filters, stale packages, merge platform checks, signals, concurrent writers
mod json_shapes; // every --json document has exactly the keys the README lists
mod oci_interop; // layouts shipit writes, read back by skopeo and umoci
mod package_stage; // reproducible images and indexes; skopeo, umoci and QEMU read them back
mod plan_cache; // the planning caches: cargo metadata reused, read afresh after a changed Cargo.toml, Cargo.lock, .cargo/config.toml
mod registry_client; // the registry client against a real docker-registry (+ a fault proxy)
mod release_registry; // shipit release to a real docker-registry: order, idempotence, faults, auth
mod riscv64; // linux/riscv64 musl with -Zbuild-std and zig, lp64d, checks under qemu-riscv64 -cpu sifive-u54
mod syslibs; // C libraries: sys-crate diagnosis before compiling, static OpenSSL for musl, libssl3 and CA roots verified
mod sysroots; // gnu build sysroots from the Debian engine: TLS for 3 architectures and SQLite under QEMU, the glibc floor, --locked
mod verify_images; // every failure users meet in production, each a real image, caught before tagging
