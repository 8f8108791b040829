//! The executor's journal: what makes an execution survive a crash.
//!
//! A shard's state machine is deterministic: given a flow revision, the
//! execution's creation and the outside events it saw (a timer firing, a kill,
//! with the instant each happened), it makes the same task runs with the same
//! ids, states and outputs. So the journal records exactly those causes, one
//! record per event, and recovery replays them through the same state
//! machine. When an execution ends, a terminal record holding its final JSON
//! supersedes the others, so the WAL truncates them and the finished
//! execution can still be read back within the retention window.
//!
//! Records live in the shard's WAL, keyed by execution id; payloads are
//! rkyv-archived and read in place on recovery.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use peregrine_wal::rkyv;
use peregrine_wal::{Key, Kind, Lsn, Wal};

use crate::execution::ExecutionId;

/// One journal record.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = peregrine_wal::rkyv)]
pub(crate) enum Entry {
    /// The execution was accepted: everything needed to start it again.
    Created {
        namespace: String,
        flow_id: String,
        revision: u32,
        /// The validated inputs, as JSON text.
        inputs: String,
        labels: Vec<(String, String)>,
        /// The `trigger` variable, as JSON text.
        trigger: Option<String>,
        at_ms: i64,
    },
    /// A timer of task run `task_run` fired.
    Timer { task_run: u32, at_ms: i64 },
    /// The execution was killed.
    Kill { at_ms: i64 },
    /// A worker answered for attempt `attempt` of task run `task_run`:
    /// its outputs (JSON text) or why it failed.
    Worked {
        task_run: u32,
        attempt: u32,
        outputs: Option<String>,
        error: Option<String>,
        at_ms: i64,
    },
    /// After a restart, task run `task_run`'s work had no answer: it runs
    /// again as a new attempt.
    Redispatched { task_run: u32, at_ms: i64 },
    /// The execution ended; its final JSON.
    Ended { execution: String, at_ms: i64 },
}

impl Entry {
    fn kind(&self) -> Kind {
        Kind::new(match self {
            Entry::Created { .. } => 1,
            Entry::Timer { .. } => 2,
            Entry::Kill { .. } => 3,
            Entry::Ended { .. } => 4,
            Entry::Worked { .. } => 5,
            Entry::Redispatched { .. } => 6,
        })
    }
}

/// Why a change could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the journal could not make the change durable: {0}")]
pub struct DurabilityError(Arc<str>);

/// Where a change stands on its way to the disk. Wait on it before telling
/// the outside world about the change (commit before externalize).
#[derive(Clone)]
pub struct Receipt {
    state: ReceiptState,
}

#[derive(Clone)]
enum ReceiptState {
    /// Nothing to wait for (no journal, or nothing was appended).
    Ready,
    Pending(Wal, Lsn),
    Failed(DurabilityError),
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            ReceiptState::Ready => f.write_str("Receipt(ready)"),
            ReceiptState::Pending(_, lsn) => write!(f, "Receipt(lsn {lsn})"),
            ReceiptState::Failed(e) => write!(f, "Receipt({e})"),
        }
    }
}

impl Receipt {
    pub fn ready() -> Self {
        Self {
            state: ReceiptState::Ready,
        }
    }

    fn failed(error: impl fmt::Display) -> Self {
        Self {
            state: ReceiptState::Failed(DurabilityError(Arc::from(error.to_string()))),
        }
    }

    /// Blocks until the change is durable.
    pub fn wait(&self) -> Result<(), DurabilityError> {
        match &self.state {
            ReceiptState::Ready => Ok(()),
            ReceiptState::Pending(wal, lsn) => wal
                .durable(*lsn)
                .map_err(|e| DurabilityError(Arc::from(e.to_string()))),
            ReceiptState::Failed(e) => Err(e.clone()),
        }
    }

    /// Whether the change is durable yet, without waiting: `None` while it
    /// is on its way, `Some(Err(_))` when it never will be.
    pub fn poll_durable(&self) -> Option<Result<(), DurabilityError>> {
        match &self.state {
            ReceiptState::Ready => Some(Ok(())),
            ReceiptState::Pending(wal, lsn) => wal
                .poll_durable(*lsn)
                .map(|r| r.map_err(|e| DurabilityError(Arc::from(e.to_string())))),
            ReceiptState::Failed(e) => Some(Err(e.clone())),
        }
    }

    /// Resolves when the change is durable; needs no particular runtime.
    pub fn durable(&self) -> impl Future<Output = Result<(), DurabilityError>> + Send + 'static {
        let state = self.state.clone();
        async move {
            match state {
                ReceiptState::Ready => Ok(()),
                ReceiptState::Pending(wal, lsn) => wal
                    .wait_durable(lsn)
                    .await
                    .map_err(|e| DurabilityError(Arc::from(e.to_string()))),
                ReceiptState::Failed(e) => Err(e),
            }
        }
    }

    /// The later of two receipts: waiting on it covers both (one WAL).
    pub(crate) fn max(self, other: Receipt) -> Receipt {
        match (&self.state, &other.state) {
            (ReceiptState::Failed(_), _) => self,
            (_, ReceiptState::Failed(_)) => other,
            (ReceiptState::Ready, _) => other,
            (_, ReceiptState::Ready) => self,
            (ReceiptState::Pending(_, a), ReceiptState::Pending(_, b)) => {
                if a >= b {
                    self
                } else {
                    other
                }
            }
        }
    }
}

/// Where a shard writes its journal. Behind a trait so the state machine is
/// tested without files.
pub(crate) trait Journal: Send + fmt::Debug {
    /// False when appends are discarded: callers then skip building records.
    fn keeps_records(&self) -> bool {
        true
    }

    fn append(&mut self, id: ExecutionId, entry: &Entry, terminal: bool) -> Receipt;
}

/// No durability: every receipt is ready at once.
#[derive(Debug, Default)]
pub(crate) struct NoJournal;

impl Journal for NoJournal {
    fn keeps_records(&self) -> bool {
        false
    }

    fn append(&mut self, _: ExecutionId, _: &Entry, _: bool) -> Receipt {
        Receipt::ready()
    }
}

/// The shard's WAL.
#[derive(Debug)]
pub(crate) struct WalJournal {
    wal: Wal,
}

impl WalJournal {
    pub fn new(wal: Wal) -> Self {
        Self { wal }
    }
}

impl Journal for WalJournal {
    fn append(&mut self, id: ExecutionId, entry: &Entry, terminal: bool) -> Receipt {
        let bytes = match peregrine_wal::encode(entry) {
            Ok(bytes) => bytes,
            Err(e) => return Receipt::failed(e),
        };
        let key = Key::execution(id.as_u128());
        let appended = if terminal {
            self.wal.append_terminal(entry.kind(), key, &bytes)
        } else {
            self.wal.append(entry.kind(), key, &bytes)
        };
        match appended {
            Ok(lsn) => Receipt {
                state: ReceiptState::Pending(self.wal.clone(), lsn),
            },
            Err(e) => {
                tracing::error!(execution = %id, "journal append failed: {e}");
                Receipt::failed(e)
            }
        }
    }
}

/// Reads a recovered payload back into an entry.
pub(crate) fn decode(payload: &[u8]) -> Result<Entry, String> {
    let archived = peregrine_wal::access::<Entry>(payload).map_err(|e| e.to_string())?;
    rkyv::deserialize::<Entry, rkyv::rancor::Error>(archived).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_the_wal_encoding() {
        let entries = [
            Entry::Created {
                namespace: "ns".into(),
                flow_id: "f".into(),
                revision: 3,
                inputs: r#"{"a":1}"#.into(),
                labels: vec![("k".into(), "v".into())],
                trigger: None,
                at_ms: 42,
            },
            Entry::Timer {
                task_run: 7,
                at_ms: 43,
            },
            Entry::Kill { at_ms: 44 },
            Entry::Ended {
                execution: "{}".into(),
                at_ms: 45,
            },
        ];
        for entry in entries {
            let bytes = peregrine_wal::encode(&entry).unwrap();
            assert_eq!(decode(&bytes).unwrap(), entry);
        }
        assert!(decode(b"not an archive").is_err());
    }
}
