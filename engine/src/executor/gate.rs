//! Flow concurrency: at most `limit` executions of a flow run at once
//! (Kestra's `concurrency`; PAUSED ones count, as in Kestra). Executions
//! hash to every shard, so the count is kept in one place, the courier's
//! thread, by this state machine: notes in, verdicts out, no clock, no I/O.
//!
//! An execution of a flow with a limit starts CREATED and asks to run
//! (`Admit`, once its creation is durable). Under the limit it runs; past
//! it, as the flow says: it waits QUEUED (oldest first) until one that runs
//! ends (`Release`), or it ends CANCELLED, or FAILED. Its shard journals the
//! verdict (`Entry::Gated`), so a verdict given is never given again
//! differently. After a restart every shard tells the gate what it holds
//! (`Hold` for one that runs, `Admit` again for one that waits), then that
//! it is done (`Recovered`); admissions wait until every shard is, and go
//! oldest first, so a restart neither lets more run than the limit nor
//! reorders the queue.

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::execution::ExecutionId;
use crate::flow::{Concurrency, ConcurrencyBehavior};

/// A flow: namespace and id.
pub(crate) type FlowKey = (Arc<str>, Arc<str>);

/// What the gate says of an execution that asked to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Run,
    /// It waits; this many run.
    Queue {
        running: u32,
    },
    Cancel,
    Fail,
}

impl Verdict {
    /// Its journaled form: a code and the running count.
    pub fn code(self) -> (u8, u32) {
        match self {
            Verdict::Run => (0, 0),
            Verdict::Queue { running } => (1, running),
            Verdict::Cancel => (2, 0),
            Verdict::Fail => (3, 0),
        }
    }

    pub fn from_code(code: u8, running: u32) -> Option<Verdict> {
        match code {
            0 => Some(Verdict::Run),
            1 => Some(Verdict::Queue { running }),
            2 => Some(Verdict::Cancel),
            3 => Some(Verdict::Fail),
            _ => None,
        }
    }
}

/// What a shard tells the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Note {
    /// Execution `id`, created at `created_us`, asks to run.
    Admit {
        id: ExecutionId,
        flow: FlowKey,
        concurrency: Concurrency,
        created_us: i64,
    },
    /// Execution `id` runs (found so by a recovery, or restarted).
    Hold {
        id: ExecutionId,
        flow: FlowKey,
        concurrency: Concurrency,
    },
    /// Execution `id` ended (whether it ran or waited).
    Release { id: ExecutionId, flow: FlowKey },
    /// A shard told all it holds after its recovery.
    Recovered,
}

#[derive(Debug, Default)]
struct FlowGate {
    limit: u32,
    running: FxHashSet<ExecutionId>,
    /// Oldest first: by creation instant, then id.
    queued: VecDeque<(i64, ExecutionId)>,
    /// The ids in `queued`, so that an ask or an end need not scan it.
    waiting: FxHashSet<ExecutionId>,
}

impl FlowGate {
    /// Takes `id` out of the queue, if it waits there.
    fn unqueue(&mut self, id: ExecutionId) {
        if self.waiting.remove(&id) {
            self.queued.retain(|q| q.1 != id);
        }
    }
}

/// The running and queued executions of every flow with a limit.
#[derive(Debug)]
pub(crate) struct Gate {
    shards: usize,
    recovered: usize,
    /// Admissions asked before every shard recovered, oldest first once
    /// they are.
    deferred: Vec<(i64, ExecutionId, FlowKey, Concurrency)>,
    flows: FxHashMap<FlowKey, FlowGate>,
}

impl Gate {
    /// A gate for `shards` shards, each of which sends `Recovered` once.
    pub fn new(shards: usize) -> Self {
        Self {
            shards,
            recovered: 0,
            deferred: Vec::new(),
            flows: FxHashMap::default(),
        }
    }

    /// Takes `note`; the verdicts it decides go to `out`.
    pub fn note(&mut self, note: Note, out: &mut Vec<(ExecutionId, Verdict)>) {
        match note {
            Note::Admit {
                id,
                flow,
                concurrency,
                created_us,
            } => {
                if self.recovered < self.shards {
                    self.deferred.push((created_us, id, flow, concurrency));
                } else {
                    self.admit(id, flow, concurrency, created_us, out);
                }
            }
            Note::Hold {
                id,
                flow,
                concurrency,
            } => {
                let gate = self.flow(flow, concurrency);
                gate.unqueue(id);
                gate.running.insert(id);
            }
            Note::Release { id, flow } => {
                self.deferred.retain(|d| d.1 != id);
                let Some(gate) = self.flows.get_mut(&flow) else {
                    return;
                };
                gate.unqueue(id);
                if gate.running.remove(&id) {
                    Self::start_queued(gate, out);
                }
                if gate.running.is_empty() && gate.queued.is_empty() {
                    self.flows.remove(&flow);
                }
            }
            Note::Recovered => {
                self.recovered += 1;
                if self.recovered == self.shards {
                    let mut deferred = std::mem::take(&mut self.deferred);
                    deferred.sort_by_key(|d| (d.0, d.1.as_u128()));
                    for (created_us, id, flow, concurrency) in deferred {
                        self.admit(id, flow, concurrency, created_us, out);
                    }
                }
            }
        }
    }

    fn flow(&mut self, flow: FlowKey, concurrency: Concurrency) -> &mut FlowGate {
        let gate = self.flows.entry(flow).or_default();
        // The newest revision's limit counts.
        gate.limit = concurrency.limit;
        gate
    }

    fn admit(
        &mut self,
        id: ExecutionId,
        flow: FlowKey,
        concurrency: Concurrency,
        created_us: i64,
        out: &mut Vec<(ExecutionId, Verdict)>,
    ) {
        let gate = self.flow(flow, concurrency);
        if gate.running.contains(&id) {
            // Asked again (a restart lost the verdict's journal record).
            out.push((id, Verdict::Run));
            return;
        }
        if gate.waiting.contains(&id) {
            return;
        }
        let running = gate.running.len() as u32;
        if running < gate.limit {
            gate.running.insert(id);
            out.push((id, Verdict::Run));
            return;
        }
        let verdict = match concurrency.behavior {
            ConcurrencyBehavior::Queue => {
                // Asks from several shards may arrive out of order: the
                // queue keeps the order they were created in.
                let key = (created_us, id.as_u128());
                let at = gate.queued.partition_point(|q| (q.0, q.1.as_u128()) <= key);
                gate.queued.insert(at, (created_us, id));
                gate.waiting.insert(id);
                Verdict::Queue { running }
            }
            ConcurrencyBehavior::Cancel => Verdict::Cancel,
            ConcurrencyBehavior::Fail => Verdict::Fail,
        };
        out.push((id, verdict));
    }

    /// Starts the oldest queued executions while there is room.
    fn start_queued(gate: &mut FlowGate, out: &mut Vec<(ExecutionId, Verdict)>) {
        while (gate.running.len() as u32) < gate.limit {
            let Some((_, next)) = gate.queued.pop_front() else {
                return;
            };
            gate.waiting.remove(&next);
            gate.running.insert(next);
            out.push((next, Verdict::Run));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::Id;

    fn key() -> FlowKey {
        (Arc::from("ns"), Arc::from("f"))
    }

    fn limit(limit: u32, behavior: ConcurrencyBehavior) -> Concurrency {
        Concurrency { limit, behavior }
    }

    fn admit(gate: &mut Gate, raw: u128, c: Concurrency) -> Vec<(ExecutionId, Verdict)> {
        let mut out = Vec::new();
        let note = Note::Admit {
            id: Id::from_u128(raw),
            flow: key(),
            concurrency: c,
            created_us: raw as i64,
        };
        gate.note(note, &mut out);
        out
    }

    fn release(gate: &mut Gate, raw: u128) -> Vec<(ExecutionId, Verdict)> {
        let mut out = Vec::new();
        let note = Note::Release {
            id: Id::from_u128(raw),
            flow: key(),
        };
        gate.note(note, &mut out);
        out
    }

    fn ready(shards: usize) -> Gate {
        let mut gate = Gate::new(shards);
        for _ in 0..shards {
            gate.note(Note::Recovered, &mut Vec::new());
        }
        gate
    }

    #[test]
    fn past_the_limit_executions_queue_and_start_oldest_first() {
        let c = limit(2, ConcurrencyBehavior::Queue);
        let mut gate = ready(1);
        assert_eq!(admit(&mut gate, 1, c), [(Id::from_u128(1), Verdict::Run)]);
        assert_eq!(admit(&mut gate, 2, c), [(Id::from_u128(2), Verdict::Run)]);
        let queued = Verdict::Queue { running: 2 };
        assert_eq!(admit(&mut gate, 3, c), [(Id::from_u128(3), queued)]);
        assert_eq!(admit(&mut gate, 4, c), [(Id::from_u128(4), queued)]);
        // Asked again: the same answer, nothing queued twice.
        assert_eq!(admit(&mut gate, 3, c), []);
        assert_eq!(admit(&mut gate, 1, c), [(Id::from_u128(1), Verdict::Run)]);
        assert_eq!(release(&mut gate, 2), [(Id::from_u128(3), Verdict::Run)]);
        // A queued one that ends (killed) leaves the queue.
        assert_eq!(release(&mut gate, 4), []);
        assert_eq!(release(&mut gate, 1), []);
        assert_eq!(release(&mut gate, 3), []);
        assert!(gate.flows.is_empty(), "nothing left to count");
    }

    #[test]
    fn queued_executions_start_in_the_order_they_were_created_in() {
        let c = limit(1, ConcurrencyBehavior::Queue);
        let mut gate = ready(1);
        assert_eq!(admit(&mut gate, 1, c), [(Id::from_u128(1), Verdict::Run)]);
        // Created at 3, then 2, asking in the other order.
        let queued = Verdict::Queue { running: 1 };
        assert_eq!(admit(&mut gate, 3, c), [(Id::from_u128(3), queued)]);
        assert_eq!(admit(&mut gate, 2, c), [(Id::from_u128(2), queued)]);
        assert_eq!(release(&mut gate, 1), [(Id::from_u128(2), Verdict::Run)]);
        assert_eq!(release(&mut gate, 2), [(Id::from_u128(3), Verdict::Run)]);
    }

    #[test]
    fn past_the_limit_cancel_and_fail_decide_at_once() {
        for (behavior, verdict) in [
            (ConcurrencyBehavior::Cancel, Verdict::Cancel),
            (ConcurrencyBehavior::Fail, Verdict::Fail),
        ] {
            let c = limit(1, behavior);
            let mut gate = ready(1);
            assert_eq!(admit(&mut gate, 1, c), [(Id::from_u128(1), Verdict::Run)]);
            assert_eq!(admit(&mut gate, 2, c), [(Id::from_u128(2), verdict)]);
            assert_eq!(release(&mut gate, 1), []);
            assert_eq!(admit(&mut gate, 3, c), [(Id::from_u128(3), Verdict::Run)]);
        }
    }

    #[test]
    fn after_a_restart_admissions_wait_for_every_shard_and_go_oldest_first() {
        let c = limit(1, ConcurrencyBehavior::Queue);
        let mut gate = Gate::new(2);
        // Shard 0 holds a queued execution created at 9, shard 1 one
        // created at 5 and one that runs.
        assert_eq!(admit(&mut gate, 9, c), []);
        let mut out = Vec::new();
        gate.note(Note::Recovered, &mut out);
        assert!(out.is_empty(), "shard 1 has not told yet");
        assert_eq!(admit(&mut gate, 5, c), []);
        let hold = Note::Hold {
            id: Id::from_u128(7),
            flow: key(),
            concurrency: c,
        };
        gate.note(hold, &mut out);
        gate.note(Note::Recovered, &mut out);
        let queued = Verdict::Queue { running: 1 };
        assert_eq!(
            out,
            [(Id::from_u128(5), queued), (Id::from_u128(9), queued)],
            "the one running keeps the only place; the oldest waits first"
        );
        assert_eq!(release(&mut gate, 7), [(Id::from_u128(5), Verdict::Run)]);
        assert_eq!(release(&mut gate, 5), [(Id::from_u128(9), Verdict::Run)]);
    }

    #[test]
    fn verdicts_round_trip_through_their_codes() {
        for v in [
            Verdict::Run,
            Verdict::Queue { running: 3 },
            Verdict::Cancel,
            Verdict::Fail,
        ] {
            let (code, running) = v.code();
            assert_eq!(Verdict::from_code(code, running), Some(v));
        }
        assert_eq!(Verdict::from_code(9, 0), None);
    }
}
