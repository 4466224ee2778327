//! Time and chance, as seams. Every proposer (gateways, chunk servers, the
//! background services) reads the wall clock through a [`Clock`] handed to
//! it, and draws ids through an [`Entropy`], so a test or a simulation can
//! drive both. The state machine never reads either: timestamps and ids
//! are chosen before a command enters the log.
//!
//! Monotonic time (timeouts, deadlines, sleeps) goes through tokio's
//! clock, which a test pauses and advances (`tokio::time::pause`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// The wall clock: milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// Shared by every task of a process.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }
}

impl SystemClock {
    /// The system clock as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

/// A clock a test sets and advances by hand.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn new(now_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now_ms: AtomicI64::new(now_ms),
        })
    }
    pub fn set_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
    pub fn advance_ms(&self, by_ms: i64) {
        self.now_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// Now on the system clock, for code that is not (yet) handed a clock:
/// process start-up and command-line tools.
pub fn now_ms() -> i64 {
    SystemClock.now_ms()
}

/// Where random ids (chunk ids, upload ids, client ids) come from.
pub trait Entropy: Send + Sync + 'static {
    fn fill(&self, bytes: &mut [u8]);

    fn next_u64(&self) -> u64 {
        let mut bytes = [0; 8];
        self.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }
}

/// Shared by every task of a process.
pub type SharedEntropy = Arc<dyn Entropy>;

/// The operating system's generator (thread-local, seeded from the OS).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, bytes: &mut [u8]) {
        rand::rng().fill_bytes(bytes);
    }
}

impl OsEntropy {
    pub fn shared() -> SharedEntropy {
        Arc::new(OsEntropy)
    }
}

/// A seeded generator: the same seed draws the same ids, for replayable
/// tests and simulations.
#[derive(Debug)]
pub struct SeededEntropy {
    rng: Mutex<StdRng>,
}

impl SeededEntropy {
    pub fn new(seed: u64) -> Arc<SeededEntropy> {
        Arc::new(SeededEntropy {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        })
    }
}

impl Entropy for SeededEntropy {
    fn fill(&self, bytes: &mut [u8]) {
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fill_bytes(bytes);
    }
}

/// A process's clock and generator, handed to every component that needs
/// either: one of each per process, so a test swaps both in one place.
#[derive(Clone)]
pub struct Seams {
    pub clock: SharedClock,
    pub entropy: SharedEntropy,
}

impl Seams {
    /// The operating system's clock and generator.
    pub fn system() -> Seams {
        Seams {
            clock: SystemClock::shared(),
            entropy: OsEntropy::shared(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance_ms(500);
        assert_eq!(clock.now_ms(), 1_500);
        clock.set_ms(7);
        assert_eq!(clock.now_ms(), 7);
    }

    #[test]
    fn a_seed_draws_the_same_ids() {
        let (a, b) = (SeededEntropy::new(42), SeededEntropy::new(42));
        let draws = |e: &SeededEntropy| (0..4).map(|_| e.next_u64()).collect::<Vec<_>>();
        assert_eq!(draws(&a), draws(&b));
        assert_ne!(draws(&a), draws(&SeededEntropy::new(43)));
    }

    #[test]
    fn the_system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}
