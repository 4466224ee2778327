//! Linearizable reads confirm leadership in shared rounds (ReadIndex
//! batching). A round is openraft's `ensure_linearizable`: a message to
//! the core task and, in a group of several voters, a heartbeat to a
//! quorum, then a wait until the state machine has applied the read
//! index. A read waits for the first round that *starts after it
//! arrived*, so it is still ordered after every write acknowledged before
//! it began; the reads that arrive while a round runs share the next one
//! instead of each running its own.
//!
//! There is no driver task: the read that finds no round running runs
//! one itself, and when it ends hands the next round to one of the reads
//! that queued meanwhile, so a lone read costs what it cost without
//! batching. A read cancelled while it runs a round (its client went
//! away, its timeout fired) hands the round on as it is dropped, so no
//! queued read is left waiting for a round nobody runs.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::error::{MetaError, Result};

/// The rounds of one replica.
#[derive(Default)]
pub(crate) struct ReadRounds {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// A read is running a round, or is about to.
    running: bool,
    /// Reads that arrived after that round started: the next round's.
    queued: Vec<oneshot::Sender<Turn>>,
}

/// What a queued read is told.
enum Turn {
    /// The round it waited for ended so.
    Done(Result<()>),
    /// Run the next round, for these reads and itself.
    Lead(Vec<oneshot::Sender<Turn>>),
}

impl ReadRounds {
    /// Waits for a round of `round` that started after this call, running
    /// it if it falls to this read, and returns its outcome.
    pub(crate) async fn confirm<F, Fut>(&self, round: F) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let waiting = {
            let mut state = self.lock();
            if state.running {
                let (sender, receiver) = oneshot::channel();
                state.queued.push(sender);
                Some(receiver)
            } else {
                state.running = true;
                None
            }
        };
        let batch = match waiting {
            None => Vec::new(),
            Some(receiver) => match receiver.await {
                Ok(Turn::Done(outcome)) => return outcome,
                Ok(Turn::Lead(batch)) => batch,
                // Every sender is answered or handed on; dropped only with
                // the replica.
                Err(_) => return Err(MetaError::ShuttingDown),
            },
        };
        let mut leading = Leading {
            rounds: self,
            batch,
        };
        let outcome = round().await;
        for read in leading.batch.drain(..) {
            // A read that went away meanwhile does not mind.
            let _ = read.send(Turn::Done(outcome.clone()));
        }
        drop(leading);
        outcome
    }

    /// Starts the next round with `batch` and the queued reads, or, with
    /// none, leaves no round running.
    fn hand_over(&self, batch: Vec<oneshot::Sender<Turn>>) {
        let mut state = self.lock();
        let mut next = batch;
        next.append(&mut state.queued);
        while let Some(leader) = next.pop() {
            match leader.send(Turn::Lead(next)) {
                Ok(()) => return,
                // That read went away: the next one leads.
                Err(Turn::Lead(rest)) => next = rest,
                Err(Turn::Done(_)) => unreachable!("a Lead was sent"),
            }
        }
        state.running = false;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A read running a round for `batch` (and itself). Dropped, after the
/// round or instead of finishing it, it hands the next round on; reads
/// still in `batch` (the round was cancelled) join that next round, which
/// starts after they arrived.
struct Leading<'a> {
    rounds: &'a ReadRounds,
    batch: Vec<oneshot::Sender<Turn>>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.rounds.hand_over(std::mem::take(&mut self.batch));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A round that takes `ms`, counting the rounds started.
    async fn slow_round(started: &AtomicUsize, ms: u64) -> Result<()> {
        started.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }

    /// A read on its own task whose round, if it runs one, is a
    /// `slow_round` of `ms`.
    fn spawn_read(
        rounds: &Arc<ReadRounds>,
        started: &Arc<AtomicUsize>,
        ms: u64,
    ) -> tokio::task::JoinHandle<Result<()>> {
        let (rounds, started) = (rounds.clone(), started.clone());
        tokio::spawn(async move { rounds.confirm(|| slow_round(&started, ms)).await })
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_read_runs_its_own_round() {
        let rounds = ReadRounds::default();
        let started = AtomicUsize::new(0);
        for _ in 0..3 {
            rounds
                .confirm(|| slow_round(&started, 1))
                .await
                .expect("round");
        }
        assert_eq!(started.load(Ordering::SeqCst), 3);
        assert!(!rounds.lock().running);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_arriving_during_a_round_share_the_next_one() {
        let rounds = Arc::new(ReadRounds::default());
        let started = Arc::new(AtomicUsize::new(0));
        let first = spawn_read(&rounds, &started, 10);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(started.load(Ordering::SeqCst), 1);
        // Twenty reads arrive while the first round runs: none of them may
        // be answered by it (it started before they arrived).
        let rest: Vec<_> = (0..20).map(|_| spawn_read(&rounds, &started, 10)).collect();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(rest.iter().all(|read| !read.is_finished()));
        first.await.expect("join").expect("first");
        for read in rest {
            read.await.expect("join").expect("read");
        }
        assert_eq!(
            started.load(Ordering::SeqCst),
            2,
            "one round for the twenty"
        );
        assert!(!rounds.lock().running);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_round_fails_every_read_it_served() {
        let rounds = Arc::new(ReadRounds::default());
        let leader = {
            let rounds = rounds.clone();
            tokio::spawn(async move {
                rounds
                    .confirm(|| async {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        Ok(())
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        let failing = || async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Err(MetaError::Unavailable("no quorum".to_owned()))
        };
        let queued: Vec<_> = (0..3)
            .map(|_| {
                let rounds = rounds.clone();
                tokio::spawn(async move { rounds.confirm(failing).await })
            })
            .collect();
        leader.await.expect("join").expect("first round");
        for read in queued {
            assert_eq!(
                read.await.expect("join"),
                Err(MetaError::Unavailable("no quorum".to_owned()))
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_round_hands_its_reads_to_a_new_round() {
        let rounds = Arc::new(ReadRounds::default());
        let started = Arc::new(AtomicUsize::new(0));
        // The first read's round never ends; the read is cancelled.
        let stuck = {
            let (rounds, started) = (rounds.clone(), started.clone());
            tokio::spawn(async move {
                rounds
                    .confirm(|| async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        std::future::pending::<Result<()>>().await
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        let queued: Vec<_> = (0..5).map(|_| spawn_read(&rounds, &started, 1)).collect();
        tokio::time::sleep(Duration::from_millis(1)).await;
        stuck.abort();
        for read in queued {
            read.await.expect("join").expect("served by a later round");
        }
        assert_eq!(started.load(Ordering::SeqCst), 2);
        assert!(!rounds.lock().running);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_read_that_went_away_does_not_stall_the_rest() {
        let rounds = Arc::new(ReadRounds::default());
        let started = Arc::new(AtomicUsize::new(0));
        let first = spawn_read(&rounds, &started, 10);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let gone = spawn_read(&rounds, &started, 10);
        let kept = spawn_read(&rounds, &started, 10);
        tokio::time::sleep(Duration::from_millis(1)).await;
        gone.abort();
        first.await.expect("join").expect("first");
        kept.await.expect("join").expect("kept");
        assert_eq!(started.load(Ordering::SeqCst), 2);
        assert!(!rounds.lock().running);
    }
}
