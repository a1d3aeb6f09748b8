//! Registry client tests.
