//! Attempts and backoff: an operation is retried while its error is transient and attempts
//! remain, after `Retry-After` (capped) or an exponential backoff with jitter; the pause wakes
//! at once when the run is cancelled.

use super::client::RegistryClient;
use super::error::RegistryError;
use std::time::Duration;

impl RegistryClient {
    /// Runs `op` until it succeeds, fails for good, or attempts run out.
    pub(super) fn retry<T>(
        &self,
        what: &str,
        mut op: impl FnMut(u32) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let max = self.opts.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match op(attempt) {
                Ok(v) => return Ok(v),
                // A socket read given up because the run was cancelled, or anything failing
                // after it: the cancellation is the reason.
                Err(_) if self.cancel.is_cancelled() => {
                    self.check_cancel(what)?;
                }
                Err(e) if e.is_retryable() && attempt < max => {
                    let delay = match e.retry_after() {
                        Some(d) => d.min(self.opts.retry_after_cap),
                        None => backoff(self.opts.retry_base_delay, attempt),
                    };
                    self.sleep(delay, what)?;
                    attempt += 1;
                }
                Err(e) if e.is_retryable() && attempt > 1 => {
                    return Err(RegistryError::GaveUp {
                        attempts: attempt,
                        last: Box::new(e),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sleeps, waking at once (with `Cancelled`) when the run is cancelled.
    pub(super) fn sleep(&self, d: Duration, what: &str) -> Result<(), RegistryError> {
        self.cancel.sleep(d).map_err(|c| RegistryError::Cancelled {
            what: what.to_string(),
            signal: c.0,
        })
    }

    /// `Cancelled` once the run is cancelled: checked before every request.
    pub(super) fn check_cancel(&self, what: &str) -> Result<(), RegistryError> {
        self.cancel.check().map_err(|c| RegistryError::Cancelled {
            what: what.to_string(),
            signal: c.0,
        })
    }
}

/// `base * 2^(attempt-1)`, ±20% jitter.
pub(super) fn backoff(base: Duration, attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let exp = base.saturating_mul(1u32 << (attempt - 1).min(16));
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let jitter = (h.finish() % 401) as f64 / 1000.0 - 0.2; // -0.2 ..= +0.2
    exp.mul_f64(1.0 + jitter)
}
