//! The process's log: `ARBOR_LOG` filters it, and a flood gate bounds it.
//!
//! A fault repeated at request rate must not write a line per request (a
//! metadata leader with a voter down used to log one error per read, for
//! example, from openraft's own code). [`FloodGate`] lets the first
//! [`LINES_PER_WINDOW`] events of each log statement through in every
//! [`WINDOW`], drops the rest, and once a window a summary line says how
//! many lines of each statement it dropped. So a node that goes down shows
//! on its peers as a few lines when it happens, then one summary a minute,
//! whatever the request rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How long a statement's allowance lasts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Lines each log statement may write per window.
pub const LINES_PER_WINDOW: u32 = 5;
/// The filter when `ARBOR_LOG` is not set: s3s logs client mistakes as
/// errors (the request span logs every 5xx instead), openraft is chatty
/// at info.
const FILTER_DEFAULT: &str = "info,openraft=warn,s3s=off";
/// The target of the summaries, which the gate itself lets through.
const SUMMARY_TARGET: &str = "arbor::logging";

/// Installs the process's subscriber: the `ARBOR_LOG` filter, the flood
/// gate, and lines on stderr. A thread reports what the gate dropped once
/// a window.
pub fn init() {
    let gate = FloodGate::new(WINDOW, LINES_PER_WINDOW);
    let filter = EnvFilter::try_from_env("ARBOR_LOG").unwrap_or_else(|_| FILTER_DEFAULT.into());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(gate.clone());
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .init();
    let spawned = std::thread::Builder::new()
        .name("log-summaries".into())
        .spawn(move || {
            loop {
                std::thread::sleep(WINDOW);
                gate.report();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread for log summaries: floods are cut, not counted");
    }
}

/// Lets each log statement write at most `lines` lines per `window`.
#[derive(Clone)]
pub struct FloodGate {
    window: Duration,
    lines: u32,
    statements: Arc<Mutex<HashMap<Identifier, Allowance>>>,
}

struct Allowance {
    /// Where the statement is, for the summary.
    name: String,
    target: String,
    started: Instant,
    written: u32,
    dropped: u64,
}

impl FloodGate {
    pub fn new(window: Duration, lines: u32) -> FloodGate {
        FloodGate {
            window,
            lines,
            statements: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Whether an event of `meta`'s statement may be written now.
    fn admit(&self, meta: &Metadata<'_>) -> bool {
        if !meta.is_event() || meta.target() == SUMMARY_TARGET {
            return true;
        }
        let now = Instant::now();
        let mut statements = self
            .statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let allowance = statements
            .entry(meta.callsite())
            .or_insert_with(|| Allowance {
                name: meta.name().to_owned(),
                target: meta.target().to_owned(),
                started: now,
                written: 0,
                dropped: 0,
            });
        if now.duration_since(allowance.started) >= self.window && allowance.dropped == 0 {
            // A quiet window: a fresh allowance. (One with drops is
            // renewed by `report`, which says how many first.)
            allowance.started = now;
            allowance.written = 0;
        }
        if allowance.written < self.lines {
            allowance.written += 1;
            true
        } else {
            allowance.dropped += 1;
            false
        }
    }

    /// Writes one summary line per statement that dropped lines, and
    /// renews their allowances.
    pub fn report(&self) {
        let dropped: Vec<(String, String, u64)> = {
            let mut statements = self
                .statements
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            statements
                .values_mut()
                .filter(|a| a.dropped > 0)
                .map(|a| {
                    let line = (a.target.clone(), a.name.clone(), a.dropped);
                    a.started = now;
                    a.written = 0;
                    a.dropped = 0;
                    line
                })
                .collect()
        };
        for (target, statement, dropped) in dropped {
            tracing::warn!(
                target: "arbor::logging",
                source = %target,
                statement = %statement,
                dropped,
                "repeated log lines dropped in the last {:?}",
                self.window
            );
        }
    }
}

impl<S: Subscriber> Filter<S> for FloodGate {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        self.admit(meta)
    }

    fn callsite_enabled(&self, _meta: &'static Metadata<'static>) -> Interest {
        // Decided per event, never cached.
        Interest::sometimes()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Collects what the fmt layer writes.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
                .into_owned()
        }
    }

    #[test]
    fn a_flood_writes_a_few_lines_then_a_summary() {
        let lines = Lines::default();
        let gate = FloodGate::new(Duration::from_secs(3600), 3);
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .with_filter(gate.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..1000 {
                tracing::error!(i, "voter unreachable");
            }
            tracing::info!("another statement");
            gate.report();
            tracing::error!("voter unreachable, after the summary");
        });
        let text = lines.text();
        assert_eq!(text.matches("voter unreachable").count(), 3 + 1, "{text}");
        assert_eq!(text.matches("another statement").count(), 1);
        assert!(text.contains("dropped=997"), "{text}");
        assert_eq!(
            text.matches("repeated log lines dropped").count(),
            1,
            "{text}"
        );
    }

    #[test]
    fn a_quiet_statement_gets_a_new_allowance_each_window() {
        let lines = Lines::default();
        let gate = FloodGate::new(Duration::from_millis(50), 2);
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .with_filter(gate),
        );
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..2 {
                tracing::warn!("state changed");
            }
            std::thread::sleep(Duration::from_millis(60));
            tracing::warn!("state changed");
        });
        assert_eq!(lines.text().matches("state changed").count(), 3);
    }
}
