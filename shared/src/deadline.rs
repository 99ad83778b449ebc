//! The Lambda invocation deadline, read from `Lambda-Runtime-Deadline-Ms` (lambda_runtime's
//! `Context::deadline`).
//!
//! Owns one correction: the Lambda service sends the deadline as Unix epoch milliseconds,
//! but `cargo lambda watch` (1.9.2, the local loop of `scripts/dev --lambda`) sends the
//! function *timeout* in milliseconds (`600000`), which read as an epoch lies in January 1970:
//! every function saw its deadline as long passed (token-refresh deferred every connection).
//! A value too small to be a deadline of this century is a duration from now. Nothing here
//! extends a real deadline.

use std::time::{Duration, SystemTime};

/// Below this many milliseconds (2001-09-09 as an epoch) a "deadline" is a duration.
const EPOCH_FLOOR_MS: u64 = 1_000_000_000_000;

/// The deadline `deadline_ms` means, as seen at `now`.
pub fn from_millis(deadline_ms: u64, now: SystemTime) -> SystemTime {
    if deadline_ms < EPOCH_FLOOR_MS {
        now + Duration::from_millis(deadline_ms)
    } else {
        SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_deadline_is_kept_and_a_local_timeout_counts_from_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_278_736_877);
        let lambda = 1_796_278_856_877; // 120 s ahead, as the Lambda service sends it
        assert_eq!(from_millis(lambda, now), SystemTime::UNIX_EPOCH + Duration::from_millis(lambda));
        // cargo lambda watch sends the function timeout itself.
        assert_eq!(from_millis(600_000, now), now + Duration::from_secs(600));
        // A real deadline already passed stays passed.
        let passed = 1_796_278_000_000;
        assert!(from_millis(passed, now) < now);
    }
}
