//! TODO (owned by a helper branch)
