//! GitHub Actions integration (owned by the ci branch).
