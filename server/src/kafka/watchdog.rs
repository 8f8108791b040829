//! Finds partitions that nobody consumes although the group says someone
//! does, and asks the consumer to rejoin its group.
//!
//! A consumer group reassigns a dead member's partitions once the member's
//! session times out and the group rebalances. A broker that drops the dead
//! member without telling the live ones to rejoin leaves those partitions
//! with an owner that is gone (tansu 0.6 does this when the member that
//! expires was the group's leader: the live members' heartbeats keep
//! succeeding and nothing is reassigned). So each consumer watches the
//! partitions it does not own: one that has messages to read (its high
//! watermark is past the group's committed offset) and whose committed
//! offset has not moved for longer than a live owner could take and a dead
//! one takes to be dropped (a session timeout, a heartbeat interval and the
//! commit interval) is stalled, and the watcher asks for a rejoin, which
//! makes the group rebalance among live members. tansu 0.6 also gives a
//! member that rejoins a formed group the assignment it had before, so the
//! rejoin leaves the group first (its partitions are then assigned anew).
//! It runs on a thread of its own, with its own client, so the consumer's
//! thread never waits on these queries.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::ledger::Partition;

/// How long a rejoin waits for a rebalance under way to end: a rejoin in
/// the middle of one can leave the consumer with its old assignment (tansu
/// 0.6 keeps a follower's join waiting 3 s while the leader is absent).
pub const REBALANCE_WAIT: Duration = Duration::from_secs(4);

/// How often the partitions are looked at.
const EVERY: Duration = Duration::from_millis(500);
/// How long a query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the consumer and its watcher share.
#[derive(Debug, Default)]
pub struct Shared {
    /// The consumer's partitions, as of its last rebalance.
    pub assigned: Mutex<HashSet<Partition>>,
    /// Set by the watcher: the consumer should leave and rejoin its group.
    pub rejoin: AtomicBool,
    /// Since when the consumer's partitions are revoked and none assigned
    /// again: a rebalance under way.
    pub revoked_at: Mutex<Option<Instant>>,
    pub stop: AtomicBool,
}

/// Whether a partition's committed offset stood still too long with
/// messages waiting.
#[derive(Debug)]
pub struct Stalls {
    limit: Duration,
    seen: HashMap<Partition, (i64, Instant)>,
}

impl Stalls {
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            seen: HashMap::new(),
        }
    }

    /// Records a partition's committed offset and high watermark at `now`;
    /// true when it is stalled.
    pub fn observe(
        &mut self,
        partition: &Partition,
        committed: i64,
        high: i64,
        now: Instant,
    ) -> bool {
        let waiting = high > committed.max(0);
        match self.seen.get_mut(partition) {
            Some((last, since)) if *last == committed && waiting => {
                now.duration_since(*since) >= self.limit
            }
            Some(entry) => {
                *entry = (committed, now);
                false
            }
            None => {
                self.seen.insert(partition.clone(), (committed, now));
                false
            }
        }
    }

    /// Starts every clock again (after a rejoin, or for a partition that
    /// became ours).
    pub fn reset(&mut self) {
        self.seen.clear();
    }

    pub fn forget(&mut self, partition: &Partition) {
        self.seen.remove(partition);
    }
}

/// Watches `topics` (exact names; pattern subscriptions are not watched)
/// for the group in `config`, until `shared.stop`.
pub fn watch(
    name: &str,
    config: &ClientConfig,
    topics: &[String],
    limit: Duration,
    shared: &Shared,
) {
    let client: BaseConsumer = match config.create() {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(trigger = name, "partition watcher not started: {e}");
            return;
        }
    };
    let mut stalls = Stalls::new(limit);
    while !shared.stop.load(Ordering::Acquire) {
        std::thread::sleep(EVERY);
        let mine = shared
            .assigned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut others = TopicPartitionList::new();
        for topic in topics {
            let Ok(metadata) = client.fetch_metadata(Some(topic), QUERY_TIMEOUT) else {
                continue;
            };
            for t in metadata.topics().iter().filter(|t| t.name() == topic) {
                for p in t.partitions() {
                    let partition = (topic.clone(), p.id());
                    if mine.contains(&partition) {
                        stalls.forget(&partition);
                    } else {
                        others.add_partition(topic, p.id());
                    }
                }
            }
        }
        if others.count() == 0 {
            continue;
        }
        let Ok(committed) = client.committed_offsets(others, QUERY_TIMEOUT) else {
            continue;
        };
        let now = Instant::now();
        let mut stalled = None;
        for e in committed.elements() {
            let Ok((_, high)) = client.fetch_watermarks(e.topic(), e.partition(), QUERY_TIMEOUT)
            else {
                continue;
            };
            let at = match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            };
            let partition = (e.topic().to_owned(), e.partition());
            if stalls.observe(&partition, at, high, now) {
                stalled = Some((partition, at, high));
            }
        }
        if let Some(((topic, partition), at, high)) = stalled {
            tracing::warn!(
                trigger = name,
                topic,
                partition,
                committed = at,
                high,
                "a partition of the group is not being consumed: rejoining the group"
            );
            shared.rejoin.store(true, Ordering::Release);
            stalls.reset();
        }
    }
}

impl Shared {
    /// Whether the consumer should rejoin its group now: asked for, and no
    /// rebalance under way (or one that is taking too long).
    pub fn take_rejoin(&self) -> bool {
        if !self.rejoin.load(Ordering::Acquire) {
            return false;
        }
        let revoked_at = *self.revoked_at.lock().unwrap_or_else(|p| p.into_inner());
        if revoked_at.is_some_and(|at| at.elapsed() < REBALANCE_WAIT) {
            return false;
        }
        self.rejoin.swap(false, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejoin_waits_for_a_rebalance_under_way_then_happens_once() {
        let shared = Shared::default();
        assert!(!shared.take_rejoin(), "not asked for");
        shared.rejoin.store(true, Ordering::Release);
        *shared.revoked_at.lock().expect("lock") = Some(Instant::now());
        assert!(!shared.take_rejoin(), "a rebalance is under way");
        assert!(shared.rejoin.load(Ordering::Acquire), "still asked for");
        *shared.revoked_at.lock().expect("lock") = Instant::now().checked_sub(REBALANCE_WAIT);
        assert!(
            shared.take_rejoin(),
            "a rebalance that takes too long is not waited on"
        );
        assert!(!shared.take_rejoin(), "one rejoin per request");
        shared.rejoin.store(true, Ordering::Release);
        *shared.revoked_at.lock().expect("lock") = None;
        assert!(shared.take_rejoin(), "no rebalance under way");
    }

    #[test]
    fn a_partition_is_stalled_when_its_offset_stands_still_with_messages_waiting() {
        let limit = Duration::from_secs(10);
        let mut stalls = Stalls::new(limit);
        let p = ("t".to_owned(), 0);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(!stalls.observe(&p, 5, 9, at(0)));
        assert!(!stalls.observe(&p, 5, 9, at(9)));
        assert!(stalls.observe(&p, 5, 12, at(10)));
        // It moved: a live owner. The clock starts again.
        assert!(!stalls.observe(&p, 6, 12, at(11)));
        assert!(!stalls.observe(&p, 6, 12, at(20)));
        assert!(stalls.observe(&p, 6, 12, at(21)));
        // Nothing to read: not stalled however long it stands.
        let q = ("t".to_owned(), 1);
        assert!(!stalls.observe(&q, 7, 7, at(0)));
        assert!(!stalls.observe(&q, 7, 7, at(100)));
        // Never committed, messages waiting.
        let r = ("t".to_owned(), 2);
        assert!(!stalls.observe(&r, -1, 3, at(0)));
        assert!(stalls.observe(&r, -1, 3, at(10)));
        stalls.reset();
        assert!(!stalls.observe(&r, -1, 3, at(30)));
    }
}
