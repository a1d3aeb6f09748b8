//! Docker build backend and packager against a real dockerd.
