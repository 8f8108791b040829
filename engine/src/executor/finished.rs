//! The finished executions a shard keeps for the retention window, as their
//! records: the one copy of each that the API reads.
//!
//! The shard is the only writer: it inserts an execution's record in the
//! step that ends it (with the receipt of its terminal journal record, which
//! readers wait on before showing it), and drops records past the retention
//! window or past the count limit when it ticks. Readers (API threads) look
//! records up by id and scan them for searches. Lock striping keeps a scan
//! from holding up the shard: a reader holds one stripe at a time, for as
//! long as it takes to filter that stripe.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use crate::execution::{ExecutionId, Record};
use crate::journal::Receipt;

const STRIPES: usize = 16;

/// A finished execution and the receipt of its terminal record.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub record: Record,
    pub receipt: Receipt,
}

#[derive(Debug, Default)]
struct Stripe {
    by_id: FxHashMap<ExecutionId, Kept>,
    /// Ids by end date, oldest first.
    order: VecDeque<(i64, ExecutionId)>,
}

impl Stripe {
    /// Keeps `kept`, replacing an earlier record of the same execution
    /// (which keeps its place in the order).
    fn keep(&mut self, kept: Kept, ended_us: i64) {
        let id = kept.record.id();
        if self.by_id.insert(id, kept).is_none() {
            self.order.push_back((ended_us, id));
        }
    }

    /// Drops the oldest until at most `max` are kept.
    fn trim(&mut self, max: usize) {
        while self.by_id.len() > max {
            let Some((_, oldest)) = self.order.pop_front() else {
                break;
            };
            self.by_id.remove(&oldest);
        }
    }
}

/// One shard's finished executions.
#[derive(Debug)]
pub(crate) struct Finished {
    stripes: Box<[Mutex<Stripe>]>,
    retention_us: i64,
    per_stripe: usize,
    /// Final records the shard journaled again for executions only on disk
    /// (labels set): a caller that read one from disk before the count
    /// changed may hold an older record.
    rewrites: AtomicU64,
}

impl Finished {
    /// Keeps each finished execution for `retention` after its end, and at
    /// most `max` of them (the oldest go first).
    pub fn new(retention: Duration, max: usize) -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            retention_us: i64::try_from(retention.as_micros()).unwrap_or(i64::MAX),
            per_stripe: max.div_ceil(STRIPES).max(1),
            rewrites: AtomicU64::new(0),
        }
    }

    /// How many final records of executions not in memory the shard has
    /// journaled again; read it before reading one from disk.
    pub fn rewrites(&self) -> u64 {
        self.rewrites.load(Ordering::Acquire)
    }

    /// Counts a final record journaled again for an execution not in
    /// memory, once it is in the WAL's index.
    pub fn rewritten(&self) {
        self.rewrites.fetch_add(1, Ordering::AcqRel);
    }

    fn stripe(&self, id: ExecutionId) -> MutexGuard<'_, Stripe> {
        let raw = id.as_u128();
        let n = (((raw >> 64) as u64).rotate_left(7) ^ raw as u64) as usize % STRIPES;
        lock(&self.stripes[n])
    }

    /// Keeps `record` (an ended execution); replaces an earlier record of
    /// the same execution. The oldest past the count limit leave memory
    /// (their final records stay in the journal, readable from disk).
    pub fn insert(&self, record: Record, receipt: Receipt) {
        let ended_us = record
            .end_date()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
            .timestamp_micros();
        let mut stripe = self.stripe(record.id());
        stripe.keep(Kept { record, receipt }, ended_us);
        stripe.trim(self.per_stripe);
    }

    /// Keeps a record recovered from the journal, unless it ended before
    /// the retention window. Recovered records come in any order: the
    /// stripe's order is restored by [`Finished::sort`], which also applies
    /// the count limit.
    pub fn restore(&self, record: Record, now: DateTime<Utc>) -> bool {
        let Some(end) = record.end_date() else {
            return false;
        };
        if !self.within_retention(&record, now) {
            return false;
        }
        let mut stripe = self.stripe(record.id());
        let kept = Kept {
            record,
            receipt: Receipt::ready(),
        };
        stripe.keep(kept, end.timestamp_micros());
        true
    }

    /// Puts every stripe back in end-date order after restores, and drops
    /// the oldest past the count limit.
    pub fn sort(&self) {
        for stripe in self.stripes.iter() {
            let mut stripe = lock(stripe);
            stripe.order.make_contiguous().sort_unstable();
            stripe.trim(self.per_stripe);
        }
    }

    /// Whether `record` (an ended execution) is still in the retention
    /// window at `now`.
    pub fn within_retention(&self, record: &Record, now: DateTime<Utc>) -> bool {
        record.end_date().is_some_and(|end| {
            now.timestamp_micros()
                .saturating_sub(end.timestamp_micros())
                < self.retention_us
        })
    }

    /// Lets execution `id` go (it runs again: restarted).
    pub fn remove(&self, id: ExecutionId) {
        let mut stripe = self.stripe(id);
        if stripe.by_id.remove(&id).is_some() {
            stripe.order.retain(|&(_, kept)| kept != id);
        }
    }

    pub fn get(&self, id: ExecutionId) -> Option<Kept> {
        self.stripe(id).by_id.get(&id).cloned()
    }

    /// Drops what ended before the retention window at `now`.
    pub fn evict(&self, now: DateTime<Utc>) {
        let horizon = now.timestamp_micros().saturating_sub(self.retention_us);
        for stripe in self.stripes.iter() {
            let mut stripe = lock(stripe);
            while let Some(&(ended, id)) = stripe.order.front() {
                if ended > horizon {
                    break;
                }
                stripe.order.pop_front();
                stripe.by_id.remove(&id);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.stripes.iter().map(|s| lock(s).by_id.len()).sum()
    }

    /// Visits every kept execution, one stripe locked at a time.
    pub fn scan(&self, mut visit: impl FnMut(&Kept)) {
        for stripe in self.stripes.iter() {
            lock(stripe).by_id.values().for_each(&mut visit);
        }
    }
}

/// Every change under a stripe's lock is one map and one queue operation on
/// owned data: a panic elsewhere cannot leave it half-changed.
fn lock(stripe: &Mutex<Stripe>) -> MutexGuard<'_, Stripe> {
    stripe
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
