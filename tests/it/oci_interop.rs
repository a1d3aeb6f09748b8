//! OCI interop tests.
