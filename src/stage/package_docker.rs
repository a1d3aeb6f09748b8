//! The docker packager (owned by the docker-paths branch).
