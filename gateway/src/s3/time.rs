//! Conversions between Arbor's millisecond timestamps and s3s's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use s3s::dto::Timestamp;

/// Now, in milliseconds since the Unix epoch (chosen by the gateway before a
/// command is proposed: the state machine reads no clock).
pub fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

pub fn timestamp(ms: i64) -> Timestamp {
    let ms = u64::try_from(ms).unwrap_or(0);
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}
