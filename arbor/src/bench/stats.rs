//! Latency samples of a run: every operation's time, kept (the run's
//! operation count bounds them) and sorted once at the end.

use std::time::Duration;

use serde::Serialize;

/// The latencies of one scenario's operations.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    micros: Vec<u64>,
}

/// Percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Samples {
    pub fn with_capacity(n: usize) -> Samples {
        Samples {
            micros: Vec::with_capacity(n),
        }
    }

    pub fn record(&mut self, elapsed: Duration) {
        self.micros
            .push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// Nearest-rank percentiles; zeros when there is no sample.
    pub fn latency(&mut self) -> Latency {
        self.micros.sort_unstable();
        let rank = |p: f64| -> f64 {
            let n = self.micros.len();
            if n == 0 {
                return 0.0;
            }
            // Nearest rank: ceil(p * n), 1-based.
            let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
            self.micros
                .get(rank - 1)
                .map_or(0.0, |&us| us as f64 / 1000.0)
        };
        Latency {
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: rank(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples = Samples::default();
        assert_eq!(samples.latency(), Latency::default());
        for ms in (1..=100).rev() {
            samples.record(Duration::from_millis(ms));
        }
        let latency = samples.latency();
        assert_eq!(latency.p50_ms, 50.0);
        assert_eq!(latency.p99_ms, 99.0);
        assert_eq!(latency.max_ms, 100.0);
        let mut one = Samples::default();
        one.record(Duration::from_micros(1500));
        assert_eq!(one.latency().p99_ms, 1.5);
    }
}
