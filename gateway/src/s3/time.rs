//! Conversions between Arbor's millisecond timestamps and s3s's.

use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::Timestamp;

/// The last millisecond of year 9999: s3s's timestamps (the `time`
/// crate without large dates) end there, and converting a later time
/// panics.
const LAST_MS: i64 = 253_402_300_799_999;

/// s3s's timestamp of `ms`, clamped to 1970..=9999 (a retention or
/// lifecycle date can be computed from days far beyond 9999).
pub fn timestamp(ms: i64) -> Timestamp {
    let ms = u64::try_from(ms.clamp(0, LAST_MS)).unwrap_or(0);
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

/// Milliseconds since the Unix epoch (saturating far from it).
pub fn millis(ts: &Timestamp) -> i64 {
    let nanos = time::OffsetDateTime::from(ts.clone()).unix_timestamp_nanos() / 1_000_000;
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_times_are_clamped_not_a_panic() {
        assert_eq!(millis(&timestamp(i64::MAX)), LAST_MS);
        assert_eq!(millis(&timestamp(LAST_MS + 1)), LAST_MS);
        assert_eq!(millis(&timestamp(-5)), 0);
        assert_eq!(millis(&timestamp(1_700_000_000_123)), 1_700_000_000_123);
    }
}
