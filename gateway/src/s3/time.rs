//! Conversions between Arbor's millisecond timestamps and s3s's.

use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::Timestamp;

pub fn timestamp(ms: i64) -> Timestamp {
    let ms = u64::try_from(ms).unwrap_or(0);
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}
