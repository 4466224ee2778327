//! The wall clock, as commands carry it: milliseconds since the Unix epoch,
//! read by proposers (gateways, chunk servers, the background services)
//! before a command enters the log. The state machine never calls this.

/// Now, in milliseconds since the Unix epoch (0 before 1970, saturating).
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
