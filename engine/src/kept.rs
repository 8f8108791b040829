//! What the log store and the metric store share: each keeps, per
//! execution, the items it handed over (lines, metrics), numbered so that
//! a replay's are not kept twice, and lets the oldest executions' go past
//! a retention or a memory budget.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use crate::execution::ExecutionId;

/// One execution's items, as the bookkeeping sees them.
pub(crate) trait Kept {
    /// Bytes it holds (counted in [`Held::bytes`]).
    fn bytes(&self) -> usize;
    /// Its execution ended: nothing more comes.
    fn ended(&self) -> bool;
    /// Lets go of what it holds, keeping its numbering; the bytes freed.
    fn let_go(&mut self) -> usize;
}

/// Every execution's items.
pub(crate) struct Held<S> {
    pub streams: FxHashMap<ExecutionId, S>,
    /// Executions by their first item, oldest first: the order they go.
    /// A running execution whose items were let go keeps its stream (its
    /// numbering) but has no place until it hands over more.
    pub order: VecDeque<(DateTime<Utc>, ExecutionId)>,
    pub bytes: usize,
}

impl<S> Default for Held<S> {
    fn default() -> Self {
        Self {
            streams: FxHashMap::default(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<S: Kept> Held<S> {
    /// Lets go of the oldest executions' items: past `retention` since
    /// their first, or past `max_bytes` in all. A running execution's
    /// stream stays, emptied, so that its items are not kept again at its
    /// next change; `on_let_go` marks it as having no place.
    pub fn evict(
        &mut self,
        now: DateTime<Utc>,
        retention: std::time::Duration,
        max_bytes: usize,
        on_let_go: impl Fn(&mut S),
    ) {
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        while let Some(&(first, id)) = self.order.front() {
            let old = now.signed_duration_since(first) > retention;
            if !old && self.bytes <= max_bytes {
                break;
            }
            self.order.pop_front();
            match self.streams.get_mut(&id) {
                Some(stream) if !stream.ended() => {
                    self.bytes -= stream.let_go();
                    on_let_go(stream);
                }
                Some(_) => {
                    if let Some(stream) = self.streams.remove(&id) {
                        self.bytes -= stream.bytes();
                    }
                }
                None => {}
            }
        }
    }
}

/// Which of an execution's items were kept: the first `seen` of its run
/// after `restarts` restarts (a restart numbers its items anew).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Numbering {
    pub restarts: u32,
    pub seen: usize,
}

impl Numbering {
    /// The items of `all` (its run after `restarts` restarts) not kept
    /// yet; all of them are, after.
    pub fn fresh<'a, T>(&mut self, restarts: u32, all: &'a [T]) -> &'a [T] {
        if self.restarts != restarts {
            *self = Self { restarts, seen: 0 };
        }
        let fresh = all.get(self.seen..).unwrap_or_default();
        self.seen = all.len();
        fresh
    }

    /// A record read back, written when `then` was the numbering: a later
    /// run's counts its own, the same run's the most seen.
    pub fn merge(&mut self, then: Numbering) {
        if then.restarts > self.restarts {
            *self = then;
        } else if then.restarts == self.restarts {
            self.seen = self.seen.max(then.seen);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_hands_over_nothing_twice_and_a_restart_numbers_anew() {
        let mut n = Numbering::default();
        assert_eq!(n.fresh(0, &[1, 2]), [1, 2]);
        assert_eq!(
            n.fresh(0, &[1, 2]),
            [] as [i32; 0],
            "replayed: kept already"
        );
        assert_eq!(n.fresh(0, &[1, 2, 3]), [3]);
        assert_eq!(n.fresh(1, &[7]), [7], "a restart's first");
        n.merge(Numbering {
            restarts: 0,
            seen: 9,
        });
        assert_eq!(
            n,
            Numbering {
                restarts: 1,
                seen: 1
            },
            "an earlier run's record"
        );
        n.merge(Numbering {
            restarts: 2,
            seen: 4,
        });
        assert_eq!(
            n,
            Numbering {
                restarts: 2,
                seen: 4
            }
        );
    }
}
