//! shipit's integration tests: one test binary, one module per area, real components throughout
//! (QEMU, cross linkers, docker-registry, skopeo, umoci). `support` holds shared fixtures.

mod support;

mod config_errors; // every bad pipeline.yaml: exit 2, file:line:col, a hint, nothing written

mod oci_interop; // layouts shipit writes, read back by skopeo and umoci
mod registry_client; // the registry client against a real docker-registry (+ a fault proxy)
