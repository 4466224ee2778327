//! Conversions between Arbor's millisecond timestamps and s3s's.

use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::Timestamp;

pub fn timestamp(ms: i64) -> Timestamp {
    let ms = u64::try_from(ms).unwrap_or(0);
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

/// Milliseconds since the Unix epoch (saturating far from it).
pub fn millis(ts: &Timestamp) -> i64 {
    let nanos = time::OffsetDateTime::from(ts.clone()).unix_timestamp_nanos() / 1_000_000;
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}
