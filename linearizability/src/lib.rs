//! A linearizability checker for histories of S3 operations on single keys.
//!
//! Each key is a register holding an object version (a [`Value`], say the
//! id of the body written) or nothing. A client records every operation it
//! ran as an [`Operation`]: what it asked ([`Call`]), what it saw
//! ([`Outcome`]) and when it asked and when it heard back. The history is
//! linearizable if every operation can be given one instant between its
//! call and its return such that, replayed in that order on the register,
//! each operation sees exactly what it saw. Keys are independent
//! registers, so each is checked on its own (linearizability is
//! compositional).
//!
//! The search is Wing and Gong's, with Lowe's memoisation: depth first,
//! pick a *minimal* operation (none still pending returned before it was
//! called), apply it to the model, recurse; backtrack on a mismatch. A
//! configuration (set of operations linearized, register state) reached
//! once is never explored again, which turns the factorial search into
//! one bounded by the configurations there are.
//!
//! An operation whose outcome is unknown (it timed out, its connection was
//! cut) may or may not have taken effect: it has no return time, so it
//! can be linearized at any point after its call, or never. A read with an
//! unknown outcome tells nothing and is dropped. Since leaving such an
//! operation pending never leaves fewer choices than linearizing it, a
//! configuration that used a superset of the unanswered operations of
//! one already seen (same answered ones, same state) is not explored, nor
//! one linearizing an unanswered operation that changes nothing, nor an
//! unconditional write right after an unanswered operation. Without this
//! each lost write would double the search. A refutation still costs
//! about (lost writes × rounds) configurations; the search gives up after
//! a budget ([`CONFIGURATIONS_MAX`]) rather than run for ever.

use std::collections::{BTreeMap, HashMap};

/// An object version as the checker knows it: the same value for the same
/// bytes (and ETag). Give every write a distinct one.
pub type Value = u64;

/// What the client asked of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Get,
    Put(Value),
    /// PUT with `If-Match: <etag of expected>`.
    PutIfMatch {
        expected: Value,
        value: Value,
    },
    /// PUT with `If-None-Match: *`.
    PutIfNoneMatch(Value),
    Delete,
}

/// What the client saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A write succeeded (PUT 200, DELETE 204).
    Done,
    /// A GET answered with this version, or 404 (`None`).
    Read(Option<Value>),
    /// 412 PreconditionFailed.
    PreconditionFailed,
    /// 404 NoSuchKey to a conditional write.
    NotFound,
    /// No answer: timeout, connection cut, 5xx after the request was sent.
    Unknown,
}

/// One operation of a history. Times are any monotonic clock shared by
/// every client (nanoseconds since the run began, say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub key: String,
    pub call: Call,
    pub outcome: Outcome,
    /// When the request was sent.
    pub start: u64,
    /// When the answer came; `None` when there was none
    /// ([`Outcome::Unknown`]).
    pub end: Option<u64>,
}

/// Why a history is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// No order fits: `operations` are the key's (indices in the history).
    NotLinearizable { key: String, operations: Vec<usize> },
    /// Operation `index` returned before it was called.
    Malformed { key: String, index: usize },
    /// The search gave up after `budget` configurations.
    Inconclusive { key: String, budget: usize },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::NotLinearizable { key, operations } => write!(
                f,
                "key {key:?}: not linearizable; its operations (indices in the history): {operations:?}"
            ),
            Violation::Malformed { key, index } => write!(
                f,
                "key {key:?}: operation {index} returned before it was called"
            ),
            Violation::Inconclusive { key, budget } => {
                write!(f, "key {key:?}: gave up after {budget} configurations")
            }
        }
    }
}

impl std::error::Error for Violation {}

/// Most configurations the search visits per key before giving up
/// ([`Violation::Inconclusive`]): a history of a few hundred operations
/// per key stays well under it unless it is pathologically concurrent.
pub const CONFIGURATIONS_MAX: usize = 2_000_000;

/// The register's state: the version it holds, if any.
type State = Option<Value>;

/// The state after `call` at `state` if the call, performed then, would
/// have been answered with `outcome`; `None` if not. An unknown outcome
/// matches what the call would have done.
pub fn step(state: State, call: Call, outcome: Outcome) -> Option<State> {
    let (next, expected) = match call {
        Call::Get => (state, Outcome::Read(state)),
        Call::Put(value) => (Some(value), Outcome::Done),
        Call::Delete => (None, Outcome::Done),
        Call::PutIfMatch { expected, value } => match state {
            Some(current) if current == expected => (Some(value), Outcome::Done),
            Some(_) => (state, Outcome::PreconditionFailed),
            // S3 answers 404 (NoSuchKey); 412 is accepted too.
            None if outcome == Outcome::PreconditionFailed => (state, outcome),
            None => (state, Outcome::NotFound),
        },
        Call::PutIfNoneMatch(value) => match state {
            None => (Some(value), Outcome::Done),
            Some(_) => (state, Outcome::PreconditionFailed),
        },
    };
    (outcome == Outcome::Unknown || outcome == expected).then_some(next)
}

/// Checks every key's history; the first violation found is returned.
pub fn check(history: &[Operation]) -> Result<(), Violation> {
    check_with_budget(history, CONFIGURATIONS_MAX)
}

/// [`check`] with a budget of configurations per key.
pub fn check_with_budget(history: &[Operation], budget: usize) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, operation) in history.iter().enumerate() {
        by_key.entry(&operation.key).or_default().push(index);
    }
    for (key, indices) in by_key {
        check_key(key, history, &indices, budget)?;
    }
    Ok(())
}

/// An operation as the search sees it.
struct Entry {
    index: usize,
    call: Call,
    outcome: Outcome,
    start: u64,
    /// `u64::MAX`: no answer, so it never constrains another operation.
    end: u64,
}

fn check_key(
    key: &str,
    history: &[Operation],
    indices: &[usize],
    budget: usize,
) -> Result<(), Violation> {
    let mut entries = Vec::new();
    for &index in indices {
        let Some(operation) = history.get(index) else {
            continue;
        };
        let unknown = operation.outcome == Outcome::Unknown || operation.end.is_none();
        if unknown && operation.call == Call::Get {
            continue; // tells nothing
        }
        let end = if unknown {
            u64::MAX
        } else {
            operation.end.unwrap_or(u64::MAX)
        };
        if end < operation.start {
            return Err(Violation::Malformed {
                key: key.to_owned(),
                index,
            });
        }
        entries.push(Entry {
            index,
            call: operation.call,
            outcome: if unknown {
                Outcome::Unknown
            } else {
                operation.outcome
            },
            start: operation.start,
            end,
        });
    }
    // By call time: the minimal operations are a prefix of the pending ones.
    entries.sort_by_key(|e| (e.start, e.end));
    let required = entries.iter().filter(|e| e.end != u64::MAX).count();
    let words = entries.len().div_ceil(64);
    // Which operations have no answer, as a mask over the bit sets below.
    let mut unknown_mask = vec![0_u64; words];
    for (i, entry) in entries.iter().enumerate() {
        if entry.end == u64::MAX
            && let Some(word) = unknown_mask.get_mut(i / 64)
        {
            *word |= 1 << (i % 64);
        }
    }
    // A configuration: the operations linearized, the register's state,
    // and whether the last one linearized had no answer. Memoised by its
    // answered operations and state: one that used a superset of the
    // unanswered operations of one already seen (and is no freer after
    // its last step) can do nothing that one could not, since an
    // operation without an answer may also stay pending for ever.
    type Configuration = (Vec<u64>, State, bool);
    // (answered operations, state) -> (unanswered ones used, after one).
    type Seen = HashMap<(Vec<u64>, State), Vec<(Vec<u64>, bool)>>;
    let mut seen = Seen::new();
    let mut visited = 0_usize;
    // Depth-first, each with how many answered operations it holds.
    let mut stack: Vec<(Configuration, usize)> = vec![((vec![0; words], None, false), 0)];
    while let Some((configuration, known)) = stack.pop() {
        if known == required {
            return Ok(());
        }
        let (answered, unanswered): (Vec<u64>, Vec<u64>) = configuration
            .0
            .iter()
            .zip(&unknown_mask)
            .map(|(done, mask)| (done & !mask, done & mask))
            .unzip();
        let after_unknown = configuration.2;
        let earlier = seen.entry((answered, configuration.1)).or_default();
        let dominated = earlier.iter().any(|(used, after)| {
            (!after || after_unknown) && used.iter().zip(&unanswered).all(|(u, v)| u & !v == 0)
        });
        if dominated {
            continue;
        }
        earlier.push((unanswered, after_unknown));
        visited += 1;
        if visited > budget {
            return Err(Violation::Inconclusive {
                key: key.to_owned(),
                budget,
            });
        }
        let (done, state, after_unknown) = configuration;
        // The earliest return among pending operations: only those called
        // before it may go next.
        let is_done = |i: usize| done.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0);
        let horizon = entries
            .iter()
            .enumerate()
            .filter(|(i, _)| !is_done(*i))
            .map(|(_, e)| e.end)
            .min()
            .unwrap_or(u64::MAX);
        let mut candidates: Vec<(usize, &Entry)> = entries
            .iter()
            .enumerate()
            .take_while(|(_, e)| e.start <= horizon)
            .filter(|(i, _)| !is_done(*i))
            .collect();
        // Operations with an answer first (pushed last, popped first): an
        // operation without one is linearized only when nothing else fits.
        candidates.sort_by_key(|(_, e)| e.end != u64::MAX);
        for (i, entry) in candidates {
            let Some(next) = step(state, entry.call, entry.outcome) else {
                continue;
            };
            let unknown = entry.end == u64::MAX;
            // Pruning, sound because an operation without an answer may
            // stay pending for ever, which leaves more choices than
            // linearizing it: never linearize one that changes nothing,
            // and no unconditional write right after one (the sibling
            // configuration without it reaches the same state).
            let overwrites = matches!(entry.call, Call::Put(_) | Call::Delete);
            if (unknown && next == state) || (after_unknown && overwrites) {
                continue;
            }
            let mut linearized = done.clone();
            if let Some(word) = linearized.get_mut(i / 64) {
                *word |= 1 << (i % 64);
            }
            let known = known + usize::from(!unknown);
            stack.push(((linearized, next, unknown), known));
        }
    }
    Err(Violation::NotLinearizable {
        key: key.to_owned(),
        operations: entries.iter().map(|e| e.index).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, outcome: Outcome, start: u64, end: u64) -> Operation {
        Operation {
            key: "k".into(),
            call,
            outcome,
            start,
            end: Some(end),
        }
    }

    fn lost(call: Call, start: u64) -> Operation {
        Operation {
            key: "k".into(),
            call,
            outcome: Outcome::Unknown,
            start,
            end: None,
        }
    }

    fn refused(history: &[Operation]) -> bool {
        matches!(check(history), Err(Violation::NotLinearizable { .. }))
    }

    use Call::*;
    use Outcome::*;

    #[test]
    fn sequential_histories_follow_the_register() {
        let history = [
            op(Get, Read(None), 0, 1),
            op(Put(1), Done, 2, 3),
            op(Get, Read(Some(1)), 4, 5),
            op(PutIfNoneMatch(2), PreconditionFailed, 6, 7),
            op(
                PutIfMatch {
                    expected: 1,
                    value: 3,
                },
                Done,
                8,
                9,
            ),
            op(
                PutIfMatch {
                    expected: 1,
                    value: 4,
                },
                PreconditionFailed,
                10,
                11,
            ),
            op(Get, Read(Some(3)), 12, 13),
            op(Delete, Done, 14, 15),
            op(
                PutIfMatch {
                    expected: 3,
                    value: 5,
                },
                NotFound,
                16,
                17,
            ),
            op(PutIfNoneMatch(6), Done, 18, 19),
            op(Get, Read(Some(6)), 20, 21),
        ];
        assert_eq!(check(&history), Ok(()));
    }

    #[test]
    fn a_stale_read_after_a_write_returned_is_refused() {
        let history = [
            op(Put(1), Done, 0, 1),
            op(Put(2), Done, 2, 3),
            op(Get, Read(Some(1)), 4, 5),
        ];
        assert!(refused(&history));
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_version() {
        for seen in [Some(1), Some(2)] {
            let history = [
                op(Put(1), Done, 0, 1),
                op(Put(2), Done, 2, 10),
                op(Get, Read(seen), 3, 4),
            ];
            assert_eq!(check(&history), Ok(()), "{seen:?}");
        }
    }

    /// Two reads concurrent with one write may not see new then old: the
    /// first returned before the second was called.
    #[test]
    fn reads_may_not_go_back_in_time() {
        let history = [
            op(Put(1), Done, 0, 1),
            op(Put(2), Done, 2, 20),
            op(Get, Read(Some(2)), 3, 4),
            op(Get, Read(Some(1)), 5, 6),
        ];
        assert!(refused(&history));
        // Overlapping reads may.
        let history = [
            op(Put(1), Done, 0, 1),
            op(Put(2), Done, 2, 20),
            op(Get, Read(Some(2)), 3, 6),
            op(Get, Read(Some(1)), 4, 5),
        ];
        assert_eq!(check(&history), Ok(()));
    }

    #[test]
    fn two_if_none_match_creates_cannot_both_win() {
        let history = [
            op(PutIfNoneMatch(1), Done, 0, 10),
            op(PutIfNoneMatch(2), Done, 1, 11),
        ];
        assert!(refused(&history));
        let history = [
            op(PutIfNoneMatch(1), Done, 0, 10),
            op(PutIfNoneMatch(2), PreconditionFailed, 1, 11),
            op(Get, Read(Some(1)), 12, 13),
        ];
        assert_eq!(check(&history), Ok(()));
    }

    #[test]
    fn a_compare_and_swap_race_has_one_winner() {
        let base = op(Put(1), Done, 0, 1);
        let history = [
            base.clone(),
            op(
                PutIfMatch {
                    expected: 1,
                    value: 2,
                },
                Done,
                2,
                10,
            ),
            op(
                PutIfMatch {
                    expected: 1,
                    value: 3,
                },
                Done,
                3,
                11,
            ),
        ];
        assert!(refused(&history));
        let history = [
            base,
            op(
                PutIfMatch {
                    expected: 1,
                    value: 2,
                },
                PreconditionFailed,
                2,
                10,
            ),
            op(
                PutIfMatch {
                    expected: 1,
                    value: 3,
                },
                Done,
                3,
                11,
            ),
            op(Get, Read(Some(3)), 12, 13),
        ];
        assert_eq!(check(&history), Ok(()));
    }

    #[test]
    fn a_value_never_written_cannot_be_read() {
        let history = [op(Put(1), Done, 0, 1), op(Get, Read(Some(7)), 2, 3)];
        assert!(refused(&history));
        let history = [op(Delete, Done, 0, 1), op(Get, Read(Some(1)), 2, 3)];
        assert!(refused(&history));
    }

    #[test]
    fn a_lost_write_may_or_may_not_have_happened() {
        // It happened, after a later read even.
        let history = [
            op(Put(1), Done, 0, 1),
            lost(Put(2), 2),
            op(Get, Read(Some(1)), 3, 4),
            op(Get, Read(Some(2)), 5, 6),
        ];
        assert_eq!(check(&history), Ok(()));
        // It never happened.
        let history = [
            op(Put(1), Done, 0, 1),
            lost(Put(2), 2),
            op(Get, Read(Some(1)), 30, 31),
        ];
        assert_eq!(check(&history), Ok(()));
        // But only once: it cannot be seen, then unseen, without another
        // write.
        let history = [
            op(Put(1), Done, 0, 1),
            lost(Put(2), 2),
            op(Get, Read(Some(2)), 3, 4),
            op(Get, Read(Some(1)), 5, 6),
        ];
        assert!(refused(&history));
        // Nor before it was sent.
        let history = [
            op(Put(1), Done, 0, 1),
            op(Get, Read(Some(2)), 2, 3),
            lost(Put(2), 4),
        ];
        assert!(refused(&history));
    }

    #[test]
    fn a_lost_conditional_write_counts_only_if_its_condition_held() {
        let history = [
            op(Put(1), Done, 0, 1),
            op(Put(5), Done, 2, 3),
            lost(
                PutIfMatch {
                    expected: 1,
                    value: 2,
                },
                4,
            ),
            op(Get, Read(Some(2)), 5, 6),
        ];
        assert!(refused(&history));
        let history = [
            op(Put(1), Done, 0, 1),
            lost(
                PutIfMatch {
                    expected: 1,
                    value: 2,
                },
                2,
            ),
            op(Get, Read(Some(2)), 5, 6),
        ];
        assert_eq!(check(&history), Ok(()));
    }

    #[test]
    fn keys_are_independent_registers() {
        let mut other = op(Put(9), Done, 0, 1);
        other.key = "other".into();
        let history = [op(Put(1), Done, 0, 1), other, op(Get, Read(Some(1)), 2, 3)];
        assert_eq!(check(&history), Ok(()));
        // A stale read on one key is found among good ones on another.
        let mut written = op(Put(9), Done, 0, 1);
        written.key = "other".into();
        let mut stale = op(Get, Read(None), 2, 3);
        stale.key = "other".into();
        let history = [
            op(Put(1), Done, 0, 1),
            written,
            op(Get, Read(Some(1)), 2, 3),
            stale,
        ];
        assert_eq!(
            check(&history),
            Err(Violation::NotLinearizable {
                key: "other".into(),
                operations: vec![1, 3]
            })
        );
    }

    #[test]
    fn a_return_before_the_call_is_malformed() {
        let history = [op(Put(1), Done, 5, 4)];
        assert!(matches!(check(&history), Err(Violation::Malformed { .. })));
    }

    /// Many concurrent writes and reads that are linearizable by
    /// construction (each read sees the last write that finished before
    /// it began, all writes sequential, reads overlapping): memoisation
    /// keeps the search small.
    #[test]
    fn long_histories_with_lost_writes_are_decided() {
        let mut history = Vec::new();
        for n in 0..300_u64 {
            let t = n * 10;
            history.push(op(Put(n), Done, t, t + 5));
            history.push(op(Get, Read(Some(n)), t + 6, t + 12));
            history.push(op(Get, Read(Some(n)), t + 7, t + 13));
            history.push(lost(Put(1000 + n), t + 1));
        }
        // The lost writes were never seen; the reads are all consistent
        // with them not happening, or happening and being overwritten.
        assert_eq!(check_with_budget(&history, 200_000), Ok(()));
        // A read of a version long overwritten is found out: every order
        // must be refuted, and each lost write might be linearized in any
        // later round, so this costs rounds² configurations.
        history.truncate(100 * 4);
        history.push(op(Get, Read(Some(5)), 1000, 1001));
        assert!(matches!(
            check_with_budget(&history, 200_000),
            Err(Violation::NotLinearizable { .. })
        ));
    }

    #[test]
    fn the_budget_bounds_the_search() {
        // Wholly concurrent writes of distinct values and one read of a
        // value never written: the search must visit many configurations.
        let mut history: Vec<Operation> = (0..16).map(|n| op(Put(n), Done, 0, 100)).collect();
        history.push(op(Get, Read(Some(99)), 101, 102));
        assert!(matches!(
            check_with_budget(&history, 1000),
            Err(Violation::Inconclusive { .. })
        ));
    }
}
