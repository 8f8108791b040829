//! Which offsets may be committed: a message's offset is committed only
//! once the execution it started is durably created (or once it is known
//! that it needs none), and offsets are committed in order per partition,
//! so that a crash at any moment loses no message.

use std::collections::{BTreeMap, VecDeque};

/// A topic partition.
pub type Partition = (String, i32);

/// Where one message stands.
#[derive(Debug)]
pub enum Step<T> {
    /// Nothing to wait for: a redelivered message whose execution exists,
    /// or one that cannot start an execution.
    Done,
    /// Waiting for the creation of its execution to be durable.
    Pending(T),
}

/// What `advance` learns of a pending message.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    Durable,
    NotYet,
    /// The creation will never be durable.
    Failed(String),
}

/// Messages handed to the engine and not yet committed, per partition, in
/// offset order.
#[derive(Debug)]
pub struct Ledger<T> {
    partitions: BTreeMap<Partition, Track<T>>,
}

#[derive(Debug)]
struct Track<T> {
    waiting: VecDeque<(i64, Step<T>)>,
    /// The next offset to commit (Kafka commits "the next message to
    /// read"), once it moved past the committed one.
    ready: Option<i64>,
    committed: Option<i64>,
}

impl<T> Default for Ledger<T> {
    fn default() -> Self {
        Self {
            partitions: BTreeMap::new(),
        }
    }
}

impl<T> Ledger<T> {
    /// Records a message handed on; offsets arrive in order per partition.
    pub fn push(&mut self, partition: &Partition, offset: i64, step: Step<T>) {
        let track = match self.partitions.get_mut(partition) {
            Some(track) => track,
            None => self.partitions.entry(partition.clone()).or_insert(Track {
                waiting: VecDeque::new(),
                ready: None,
                committed: None,
            }),
        };
        track.waiting.push_back((offset, step));
    }

    /// Messages not yet committable.
    pub fn waiting(&self) -> usize {
        self.partitions.values().map(|t| t.waiting.len()).sum()
    }

    /// Moves each partition's committable offset past every leading message
    /// that needs nothing more. Stops at the first failure.
    pub fn advance(&mut self, mut check: impl FnMut(&T) -> Progress) -> Result<(), String> {
        for track in self.partitions.values_mut() {
            while let Some((offset, step)) = track.waiting.front() {
                match step {
                    Step::Done => {}
                    Step::Pending(t) => match check(t) {
                        Progress::Durable => {}
                        Progress::NotYet => break,
                        Progress::Failed(why) => return Err(why),
                    },
                }
                track.ready = Some(offset + 1);
                track.waiting.pop_front();
            }
        }
        Ok(())
    }

    /// The offsets to commit now: each partition's next offset to read,
    /// where it moved since the last commit. Marks them committed.
    pub fn take_commits(&mut self) -> Vec<(Partition, i64)> {
        let mut out = Vec::new();
        for (partition, track) in &mut self.partitions {
            if let Some(next) = track.ready
                && track.committed < Some(next)
            {
                track.committed = Some(next);
                out.push((partition.clone(), next));
            }
        }
        out
    }

    /// Forgets a partition (revoked): what it still waits for is another
    /// consumer's to redeliver.
    pub fn forget(&mut self, partition: &Partition) -> usize {
        self.partitions
            .remove(partition)
            .map_or(0, |t| t.waiting.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> Partition {
        ("t".into(), n)
    }

    #[test]
    fn commits_stop_at_the_first_creation_not_yet_durable() {
        let mut ledger = Ledger::default();
        // Offsets 10..=14 on partition 0: 12 is not durable yet.
        for offset in 10..15 {
            ledger.push(&p(0), offset, Step::Pending(offset));
        }
        ledger.push(&p(1), 7, Step::Done);
        let mut durable = |o: &i64| {
            if *o == 12 {
                Progress::NotYet
            } else {
                Progress::Durable
            }
        };
        ledger.advance(&mut durable).unwrap();
        assert_eq!(ledger.take_commits(), vec![(p(0), 12), (p(1), 8)]);
        // Nothing moved: nothing to commit again.
        ledger.advance(&mut durable).unwrap();
        assert_eq!(ledger.take_commits(), vec![]);
        assert_eq!(ledger.waiting(), 3);
        // 12 becomes durable: 13 and 14 were already, so commit up to 15.
        ledger.advance(|_| Progress::Durable).unwrap();
        assert_eq!(ledger.take_commits(), vec![(p(0), 15)]);
        assert_eq!(ledger.waiting(), 0);
    }

    #[test]
    fn a_failed_creation_is_never_committed() {
        let mut ledger = Ledger::default();
        ledger.push(&p(0), 1, Step::Pending(1));
        ledger.push(&p(0), 2, Step::Pending(2));
        let err = ledger
            .advance(|o| {
                if *o == 1 {
                    Progress::Durable
                } else {
                    Progress::Failed("disk full".into())
                }
            })
            .unwrap_err();
        assert_eq!(err, "disk full");
        assert_eq!(ledger.take_commits(), vec![(p(0), 2)]);
        assert_eq!(ledger.waiting(), 1);
    }

    #[test]
    fn a_revoked_partition_is_forgotten() {
        let mut ledger = Ledger::default();
        ledger.push(&p(0), 1, Step::Pending(1));
        ledger.push(&p(1), 1, Step::Done);
        assert_eq!(ledger.forget(&p(0)), 1);
        ledger.advance(|_| Progress::NotYet).unwrap();
        assert_eq!(ledger.take_commits(), vec![(p(1), 2)]);
        assert_eq!(ledger.waiting(), 0);
    }
}
