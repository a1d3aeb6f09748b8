//! shipit's integration tests: one test binary, one module per area, real components throughout
//! (QEMU, cross linkers, docker-registry, skopeo, umoci). `support` holds shared fixtures.

mod support;

mod config_errors; // every bad pipeline.yaml: exit 2, file:line:col, a hint, nothing written

mod docker_paths; // the docker build backend and packager against a real dockerd (BuildKit)
mod github_actions; // GITHUB_ACTIONS conventions, generated workflows and action.yml through actionlint
mod oci_interop; // layouts shipit writes, read back by skopeo and umoci
mod registry_client; // the registry client against a real docker-registry (+ a fault proxy)
