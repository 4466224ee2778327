//! The report: JSON (everything), a plain table (stderr, while reading
//! a run) and the Markdown section of docs/benchmarks.md, which sets each
//! scenario beside the machine limit that bounds it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::limits::Limits;
use super::scenario::{Outcome, Plan, ScaleReport, format_size};

/// The lines the Markdown section is written between.
pub const MARKDOWN_BEGIN: &str = "<!-- arbor bench: begin (generated, do not edit) -->";
pub const MARKDOWN_END: &str = "<!-- arbor bench: end -->";
/// The lines the `scale` scenario's section is written between (its own,
/// so a scale run does not replace the other scenarios' results).
pub const SCALE_MARKDOWN_BEGIN: &str = "<!-- arbor bench scale: begin (generated, do not edit) -->";
pub const SCALE_MARKDOWN_END: &str = "<!-- arbor bench scale: end -->";

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `git describe`-like commit of the working directory, if any.
    pub commit: Option<String>,
    pub started_at: String,
    pub load_average_before: Option<[f64; 3]>,
    pub load_average_after: Option<[f64; 3]>,
    pub plan: Plan,
    pub limits: Option<Limits>,
    pub targets: Vec<TargetReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TargetReport {
    pub label: String,
    pub endpoints: Vec<String>,
    pub pids: Vec<u32>,
    pub scenarios: Vec<Outcome>,
    /// The `scale` scenario's measures, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleReport>,
}

impl Report {
    pub fn errors(&self) -> u64 {
        self.targets
            .iter()
            .flat_map(|t| &t.scenarios)
            .map(|s| s.errors + s.ops_expected.saturating_sub(s.ops))
            .sum()
    }
}

/// The limit a scenario is held against: its name, and the scenario's
/// figure and the limit's, in the same unit.
pub struct Bound {
    pub limit: String,
    pub achieved: f64,
    pub ceiling: f64,
    pub unit: &'static str,
}

/// What bounds each scenario on a machine with these limits.
///
/// - A PUT of a large body hashes every byte on the server (MD5 for the
///   ETag, SHA-256 for the chunk's fingerprint, CRC32C per block,
///   CRC64NVME for the default checksum the bench's bodies get, plus
///   SHA-256 once more when the payload is signed, unless the body fits
///   one chunk, whose fingerprint the signed payload's SHA-256 then is)
///   and writes it fsync'd: the lower of the serial hash rate on one core
///   and the fsync'd write rate (with `O_DIRECT`, as chunks are written,
///   where the disk takes it). A body fits one chunk if it is at most
///   the servers' default chunk size (the bench does not know another).
/// - A GET of a large body crosses loopback TCP.
/// - A small PUT needs at least one fsync'd write: the 4 KiB write+fsync
///   rate (group commit may beat it).
/// - A small GET or HEAD, and a listing page, is one round trip.
/// - The mixed run's writes (30 %) against the write+fsync rate.
pub fn bound(outcome: &Outcome, limits: &Limits) -> Option<Bound> {
    let name = outcome.name.as_str();
    let put_large = |sha_passes: u32, what: &str| {
        let hash = limits.hash_chain_mib_per_sec(sha_passes);
        let (write, write_rate) = limits.chunk_write_mib_per_sec();
        let (limit, ceiling) = if hash <= write_rate {
            (format!("hashing ({what}) on one core"), hash)
        } else {
            (write.to_owned(), write_rate)
        };
        Some(Bound {
            limit,
            achieved: outcome.mib_per_sec,
            ceiling,
            unit: "MiB/s",
        })
    };
    // The body of one PUT or part (multipart counts parts as operations).
    let body = outcome.bytes.checked_div(outcome.ops).unwrap_or(0);
    let one_chunk = body <= arbor_chunkstore::limits::CHUNK_SIZE_DEFAULT;
    if name.starts_with("put-large-") && name.ends_with("-signed") || name == "multipart" {
        if one_chunk {
            put_large(1, "MD5 + SHA-256 + CRCs, signed in one chunk")
        } else {
            put_large(2, "MD5 + 2 SHA-256 + CRCs")
        }
    } else if name.starts_with("put-large-") {
        put_large(1, "MD5 + SHA-256 + CRCs")
    } else if name.starts_with("get-large-") {
        Some(Bound {
            limit: "loopback TCP".to_owned(),
            achieved: outcome.mib_per_sec,
            ceiling: limits.loopback_tcp_mib_per_sec,
            unit: "MiB/s",
        })
    } else if name.starts_with("put-small-") {
        Some(Bound {
            limit: "4 KiB write+fsync".to_owned(),
            achieved: outcome.ops_per_sec,
            ceiling: limits.fsync_4k_per_sec,
            unit: "ops/s",
        })
    } else if name.starts_with("get-small-")
        || name.starts_with("head-small-")
        || name.starts_with("list-")
    {
        Some(Bound {
            limit: "loopback 4 KiB round trip".to_owned(),
            achieved: outcome.ops_per_sec,
            ceiling: limits.loopback_round_trips_per_sec,
            unit: "ops/s",
        })
    } else if name.starts_with("mixed-") {
        Some(Bound {
            limit: "4 KiB write+fsync (the 30 % writes)".to_owned(),
            achieved: outcome.ops_per_sec * 0.3,
            ceiling: limits.fsync_4k_per_sec,
            unit: "writes/s",
        })
    } else {
        None
    }
}

fn throughput(outcome: &Outcome) -> String {
    if outcome.bytes > 0 && (outcome.name.contains("large") || outcome.name == "multipart") {
        format!("{:.1} MiB/s", outcome.mib_per_sec)
    } else {
        format!("{:.0} ops/s", outcome.ops_per_sec)
    }
}

fn cpu(outcome: &Outcome) -> String {
    if !outcome.server.cpu_read {
        return "-".to_owned();
    }
    if outcome.name.contains("large") || outcome.name == "multipart" {
        format!("{:.1} ms/MiB", outcome.server.cpu_ms_per_mib)
    } else {
        format!("{:.3} ms/op", outcome.server.cpu_ms_per_op)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The plain table of one target's scenarios.
pub fn table(target: &TargetReport, limits: Option<&Limits>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({})\n{:<22} {:>7} {:>6} {:>13} {:>9} {:>9} {:>9} {:>13} {:>9} {:>7}",
        target.label,
        target.endpoints.join(", "),
        "scenario",
        "ops",
        "errors",
        "throughput",
        "p50 ms",
        "p99 ms",
        "max ms",
        "server cpu",
        "peak rss",
        "vs limit"
    );
    for s in &target.scenarios {
        let ratio = limits
            .and_then(|l| bound(s, l))
            .map_or("-".to_owned(), |b| format!("{:.2}", b.achieved / b.ceiling));
        let _ = writeln!(
            out,
            "{:<22} {:>7} {:>6} {:>13} {:>9.2} {:>9.2} {:>9.2} {:>13} {:>9} {:>7}",
            s.name,
            s.ops,
            s.errors,
            throughput(s),
            s.latency.p50_ms,
            s.latency.p99_ms,
            s.latency.max_ms,
            cpu(s),
            mib(s.server.rss_peak_bytes),
            ratio
        );
        if let Some(error) = &s.first_error {
            let _ = writeln!(out, "  first error: {error}");
        }
    }
    if let Some(scale) = &target.scale {
        let _ = writeln!(out, "at {} objects (scale):", scale.keys);
        for m in &scale.marks {
            let _ = writeln!(
                out,
                "  {:<58} {:>28}  target {:<9} {}",
                m.measure,
                m.value,
                m.target,
                pass_mark(m.pass)
            );
        }
    }
    out
}

fn pass_mark(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "pass",
        Some(false) => "FAIL",
        None => "-",
    }
}

/// Whether an outcome is one of the `scale` scenario's phases (they go
/// in its own section).
fn is_scale_phase(outcome: &Outcome) -> bool {
    outcome.name.starts_with("scale-")
}

/// `Generated by ... on commit ...; load average ...`.
fn generated_by(out: &mut String, report: &Report, command: &str) {
    let load = |l: Option<[f64; 3]>| {
        l.map_or("unknown".to_owned(), |[a, b, c]| {
            format!("{a:.2} {b:.2} {c:.2}")
        })
    };
    let _ = writeln!(
        out,
        "Generated by `{command}` at {} on commit {}; load average {} before, {} after \
         (the machine is shared with other builds, so absolute numbers move between runs).\n",
        report.started_at,
        report.commit.as_deref().unwrap_or("unknown"),
        load(report.load_average_before),
        load(report.load_average_after)
    );
}

/// The table of `outcomes`, each beside the limit bounding it if known.
fn scenario_table<'a>(
    out: &mut String,
    outcomes: impl Iterator<Item = &'a Outcome>,
    limits: Option<&Limits>,
) {
    let _ = writeln!(
        out,
        "| scenario | what | ops | throughput | p50 ms | p99 ms | max ms | server CPU | peak RSS | bounding limit | limit | ratio |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for s in outcomes {
        let (limit, ceiling, ratio) = match limits.and_then(|l| bound(s, l)) {
            Some(b) => (
                b.limit,
                format!("{:.0} {}", b.ceiling, b.unit),
                format!("{:.2}", b.achieved / b.ceiling),
            ),
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        let errors = if s.errors > 0 {
            format!(" ({} errors)", s.errors)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {}{errors} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {limit} | {ceiling} | {ratio} |",
            s.name,
            s.description,
            s.ops,
            throughput(s),
            s.latency.p50_ms,
            s.latency.p99_ms,
            s.latency.max_ms,
            cpu(s),
            mib(s.server.rss_peak_bytes),
        );
    }
    let _ = writeln!(out);
}

/// The `scale` scenario's section (between its markers): its phases, and
/// each measure beside its target; `None` if it did not run.
pub fn scale_markdown(report: &Report, command: &str) -> Option<String> {
    if report.targets.iter().all(|t| t.scale.is_none()) {
        return None;
    }
    let mut out = String::new();
    let _ = writeln!(out, "{SCALE_MARKDOWN_BEGIN}");
    generated_by(&mut out, report, command);
    for target in &report.targets {
        let Some(scale) = &target.scale else {
            continue;
        };
        let _ = writeln!(out, "#### {}, {} objects\n", target.label, scale.keys);
        scenario_table(
            &mut out,
            target.scenarios.iter().filter(|s| is_scale_phase(s)),
            None,
        );
        let _ = writeln!(out, "| measure | value | target | |\n|---|---|---|---|");
        for m in &scale.marks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                m.measure,
                m.value,
                m.target,
                pass_mark(m.pass)
            );
        }
        let _ = writeln!(out);
    }
    let _ = write!(out, "{SCALE_MARKDOWN_END}");
    Some(out)
}

/// The Markdown section (between the markers), without the `scale`
/// scenario's phases ([`scale_markdown`]).
pub fn markdown(report: &Report, command: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{MARKDOWN_BEGIN}");
    generated_by(&mut out, report, command);
    if let Some(l) = &report.limits {
        let _ = writeln!(out, "Machine limits (one core, or one connection):\n");
        let _ = writeln!(out, "| limit | value |\n|---|---|");
        // A report made before the default checksum has no CRC64NVME.
        let (crc64nvme, crcs) = if l.crc64nvme_mib_per_sec > 0.0 {
            (
                format!("{:.0} MiB/s", l.crc64nvme_mib_per_sec),
                "CRC32C + CRC64NVME",
            )
        } else {
            ("not measured".to_owned(), "CRC32C")
        };
        let chain_one = format!("MD5 + SHA-256 + {crcs}, serially");
        let chain_two = format!("MD5 + 2 SHA-256 + {crcs}, serially");
        for (name, value) in [
            ("MD5", format!("{:.0} MiB/s", l.md5_mib_per_sec)),
            ("SHA-256", format!("{:.0} MiB/s", l.sha256_mib_per_sec)),
            ("CRC32C", format!("{:.0} MiB/s", l.crc32c_mib_per_sec)),
            ("CRC64NVME", crc64nvme),
            (
                chain_one.as_str(),
                format!("{:.0} MiB/s", l.hash_chain_mib_per_sec(1)),
            ),
            (
                chain_two.as_str(),
                format!("{:.0} MiB/s", l.hash_chain_mib_per_sec(2)),
            ),
            (
                "loopback TCP",
                format!("{:.0} MiB/s", l.loopback_tcp_mib_per_sec),
            ),
            (
                "loopback 4 KiB round trip",
                format!("{:.0} /s", l.loopback_round_trips_per_sec),
            ),
            (
                "fsync'd sequential write",
                format!("{:.0} MiB/s", l.fsync_write_mib_per_sec),
            ),
            (
                "fsync'd sequential write, O_DIRECT",
                if l.direct_write_mib_per_sec > 0.0 {
                    format!("{:.0} MiB/s", l.direct_write_mib_per_sec)
                } else {
                    "refused by the file system".to_owned()
                },
            ),
            ("4 KiB write+fsync", format!("{:.0} /s", l.fsync_4k_per_sec)),
        ] {
            let _ = writeln!(out, "| {name} | {value} |");
        }
        let _ = writeln!(out);
    }
    for target in &report.targets {
        let _ = writeln!(
            out,
            "#### {} ({} process{})\n",
            target.label,
            target.pids.len(),
            if target.pids.len() == 1 { "" } else { "es" }
        );
        scenario_table(
            &mut out,
            target.scenarios.iter().filter(|s| !is_scale_phase(s)),
            report.limits.as_ref(),
        );
    }
    let _ = writeln!(
        out,
        "Sizes: large {}, small {}, multipart {} in {} parts.",
        format_size(report.plan.large_size),
        format_size(report.plan.small_size),
        format_size(report.plan.multipart_size),
        format_size(report.plan.part_size)
    );
    let _ = write!(out, "{MARKDOWN_END}");
    out
}

/// Replaces the section between `markers` (begin, end) in `path`
/// (appends it, with the markers, when they are missing).
pub fn write_markdown(path: &Path, section: &str, markers: (&str, &str)) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let updated = splice(&text, section, markers);
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}

fn splice(text: &str, section: &str, (begin_marker, end_marker): (&str, &str)) -> String {
    if let (Some(begin), Some(end)) = (text.find(begin_marker), text.find(end_marker))
        && begin < end
    {
        let after = end + end_marker.len();
        return format!("{}{section}{}", &text[..begin], &text[after..]);
    }
    let mut out = text.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(section);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(name: &str, ops: u64, bytes: u64) -> Outcome {
        Outcome {
            name: name.to_owned(),
            description: String::new(),
            connections: 1,
            ops,
            ops_expected: ops,
            errors: 0,
            first_error: None,
            bytes,
            seconds: 1.0,
            ops_per_sec: ops as f64,
            mib_per_sec: bytes as f64 / (1024.0 * 1024.0),
            latency: crate::bench::stats::Latency::default(),
            server: crate::bench::scenario::ServerCost::default(),
        }
    }

    #[test]
    fn a_signed_body_in_one_chunk_is_bounded_by_one_sha256_pass() {
        let limits = Limits {
            md5_mib_per_sec: 500.0,
            sha256_mib_per_sec: 1000.0,
            crc32c_mib_per_sec: 20_000.0,
            fsync_write_mib_per_sec: 10_000.0,
            direct_write_mib_per_sec: 10_000.0,
            ..Limits::default()
        };
        let chunk = arbor_chunkstore::limits::CHUNK_SIZE_DEFAULT;
        let ceiling = |outcome: &Outcome| bound(outcome, &limits).expect("bound").ceiling;
        let one = limits.hash_chain_mib_per_sec(1);
        let two = limits.hash_chain_mib_per_sec(2);
        assert!(one > two);
        assert_eq!(ceiling(&put("put-large-1x-signed", 8, 8 * chunk)), one);
        assert_eq!(ceiling(&put("put-large-1x-signed", 8, 16 * chunk)), two);
        assert_eq!(ceiling(&put("put-large-1x-unsigned", 8, 16 * chunk)), one);
        // Multipart counts parts: 8 MiB parts fit a chunk.
        assert_eq!(ceiling(&put("multipart", 128, 1 << 30)), one);
    }

    #[test]
    fn splice_replaces_between_markers_or_appends() {
        let old = format!("# B\n\nbefore\n{MARKDOWN_BEGIN}\nold\n{MARKDOWN_END}\nafter\n");
        let new = format!("{MARKDOWN_BEGIN}\nnew\n{MARKDOWN_END}");
        let markers = (MARKDOWN_BEGIN, MARKDOWN_END);
        assert_eq!(
            splice(&old, &new, markers),
            format!("# B\n\nbefore\n{MARKDOWN_BEGIN}\nnew\n{MARKDOWN_END}\nafter\n")
        );
        assert_eq!(splice("# B", &new, markers), format!("# B\n{new}\n"));
        // The scale section leaves the other one alone.
        let scale = format!("{SCALE_MARKDOWN_BEGIN}\nscale\n{SCALE_MARKDOWN_END}");
        let both = splice(&old, &scale, (SCALE_MARKDOWN_BEGIN, SCALE_MARKDOWN_END));
        assert!(both.contains(&old) && both.ends_with(&format!("{scale}\n")));
    }
}
