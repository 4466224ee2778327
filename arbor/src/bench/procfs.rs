//! What the server processes cost, read from `/proc/PID/stat` (CPU time)
//! and `/proc/PID/status` (`VmRSS` now, `VmHWM` the peak), summed over the
//! PIDs `arbor bench` is given.

use std::time::Duration;

/// Clock ticks per second of `/proc/PID/stat`'s times: `USER_HZ`, which
/// Linux fixes at 100 for user space on every architecture it exports
/// these files on.
const TICKS_PER_SEC: u64 = 100;

/// CPU time (user + system) of the processes, summed. An error if one of
/// them cannot be read (it exited, or is not on this machine).
pub fn cpu_time(pids: &[u32]) -> anyhow::Result<Duration> {
    let mut ticks = 0u64;
    for pid in pids {
        let path = format!("/proc/{pid}/stat");
        let text =
            std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {path}: {e}"))?;
        ticks += stat_ticks(&text).ok_or_else(|| anyhow::anyhow!("{path}: no utime/stime"))?;
    }
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SEC))
}

/// utime + stime (fields 14 and 15) of a `stat` line. The command name
/// (field 2) is in parentheses and may hold spaces: count from the last
/// `)`.
fn stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A `status` field in bytes (`VmRSS`, `VmHWM`: the kernel writes kB).
pub fn status_bytes(pids: &[u32], field: &str) -> anyhow::Result<u64> {
    let mut total = 0u64;
    for pid in pids {
        let path = format!("/proc/{pid}/status");
        let text =
            std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {path}: {e}"))?;
        total += status_field_kb(&text, field)
            .ok_or_else(|| anyhow::anyhow!("{path}: no {field}"))?
            * 1024;
    }
    Ok(total)
}

fn status_field_kb(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// The one-, five- and fifteen-minute load averages of `/proc/loadavg`.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stat_past_a_name_with_spaces() {
        let line = "1234 (arbor (x) y) S 1 1234 1234 0 -1 4194560 900 0 0 0 \
                    250 75 0 0 20 0 9 0 100 1000000 2000 18446744073709551615";
        assert_eq!(stat_ticks(line), Some(325));
    }

    #[test]
    fn reads_status_fields() {
        let text = "Name:\tarbor\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_field_kb(text, "VmHWM"), Some(20480));
        assert_eq!(status_field_kb(text, "VmRSS"), Some(10240));
        assert_eq!(status_field_kb(text, "VmSwap"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = [std::process::id()];
        assert!(cpu_time(&me).is_ok());
        assert!(status_bytes(&me, "VmHWM").expect("VmHWM") > 0);
        assert!(load_average().is_some());
    }
}
