//! A real docker-registry on 127.0.0.1, started per test.
