//! The executor's journal: what makes an execution survive a crash.
//!
//! A shard's state machine is deterministic: given a flow revision, the
//! execution's creation and the outside events it saw (a timer firing, a kill,
//! with the instant each happened), it makes the same task runs with the same
//! ids, states and outputs. So the journal records exactly those causes, one
//! record per event, and recovery replays them through the same state
//! machine. When an execution ends, a terminal record holding its final
//! state (its [`Record`], the same bytes the API reads) supersedes the
//! others, so the WAL truncates them and the finished execution can still be
//! read back within the retention window.
//!
//! Records live in the shard's WAL, keyed by execution id; payloads are
//! rkyv archives.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use peregrine_wal::rkyv;
use peregrine_wal::{Key, Kind, Lsn, Ticket, Wal};

use crate::execution::{ExecutionId, Format, Record};

/// One journal record: a cause of a state change, with the instant of the
/// step that handled it (microseconds since the Unix epoch: the step's
/// instant at the precision the shard keeps, so that a replay renders
/// `now()` and dates exactly as the first run did). The archive tells
/// variants apart by their position: a new one goes last.
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
        /// The execution's `trigger` (`{id, type, variables}`), as JSON text.
        trigger: Option<String>,
        at_us: i64,
    },
    /// A timer of task run `task_run` fired.
    Timer { task_run: u32, at_us: i64 },
    /// The execution was killed.
    Kill { at_us: i64 },
    /// A worker answered for attempt `attempt` of task run `task_run`:
    /// its outputs (JSON text) or why it failed.
    Worked {
        task_run: u32,
        attempt: u32,
        outputs: Option<String>,
        error: Option<String>,
        at_us: i64,
    },
    /// After a restart, task run `task_run`'s work had no answer: it runs
    /// again as a new attempt.
    Redispatched { task_run: u32, at_us: i64 },
    /// The `timeout` of attempt `attempt` of task run `task_run` passed
    /// while it ran. (Variants are added last, each smaller than
    /// `Created`: the archived layout of the others is unchanged.)
    TimedOut {
        task_run: u32,
        attempt: u32,
        at_us: i64,
    },
    /// Paused task run `task_run` was resumed through the API, with these
    /// outputs (JSON text: its checked `onResume` inputs).
    Resumed {
        task_run: u32,
        outputs: String,
        at_us: i64,
    },
    /// This execution is the subflow of attempt `attempt` of task run
    /// `task_run` of execution `parent` (its id's two halves, high first),
    /// `depth` subflows down; it tells it when it ends (`wait`) or at once.
    /// Journaled right after its creation.
    Parent {
        parent: [u64; 2],
        task_run: u32,
        attempt: u32,
        wait: bool,
        depth: u32,
        at_us: i64,
    },
    /// The execution was killed, and not the children it waited for.
    KillAlone { at_us: i64 },
    /// The execution starts at `start_us`, not at its creation (a
    /// subflow's `scheduleDate`). Journaled right after its creation (and
    /// its parent's link).
    Scheduled { start_us: i64, at_us: i64 },
    /// The child of attempt `attempt` of task run `task_run` answered: it
    /// exists (`state` CREATED), or it ended in `state` with `outputs`
    /// (JSON text), or it was not started, for `refused`.
    Child {
        task_run: u32,
        attempt: u32,
        state: String,
        outputs: Option<String>,
        refused: Option<String>,
        at_us: i64,
    },
    /// The execution, ended, was restarted: `record` is the final record
    /// it had (its archived bytes), which guides the new run (see
    /// `executor::guide`). It stands in for the creation: a replay of the
    /// journal starts here (the WAL may have let the earlier records go).
    Restarted { record: Vec<u8>, at_us: i64 },
    /// The execution was accepted as a replay of ended execution `record`
    /// (its final record's archived bytes, which hold the inputs, labels and
    /// trigger it keeps) on revision `revision` of its flow: from its task
    /// run `from`, or, with none, restarting its failed task runs (a
    /// restart on another revision). It stands in for the creation.
    Replayed {
        record: Vec<u8>,
        from: Option<u32>,
        revision: u32,
        at_us: i64,
    },
    /// Its flow's concurrency gate answered its ask to run: `verdict` (see
    /// `executor::gate::Verdict::code`), with `running` executions of the
    /// flow running then.
    Gated {
        verdict: u8,
        running: u32,
        at_us: i64,
    },
    /// The execution is attempt `attempt` of `original` (ids as two halves,
    /// high first), created at `original_created_us`, made by `parent` (a
    /// retry's new execution). Journaled right after its creation.
    Lineage {
        attempt: u32,
        original: [u64; 2],
        parent: Option<[u64; 2]>,
        original_created_us: i64,
        at_us: i64,
    },
    /// What the step journaled just before read of the KV store (`kv()` in
    /// its templates), so that its replay reads the same (see
    /// `executor::reads`). Journaled right after that step's own records.
    Read { reads: Vec<KvRead>, at_us: i64 },
    /// A worker answered for attempt `attempt` of task run `task_run`, as
    /// [`Entry::Worked`], with the lines the job logged as it ran (a
    /// script's output).
    WorkedLogged {
        task_run: u32,
        attempt: u32,
        outputs: Option<String>,
        error: Option<String>,
        lines: Vec<JobLogLine>,
        /// It succeeded with a warning.
        warning: bool,
        at_us: i64,
    },
    /// This execution is batch `batch` (1-based) of attempt `attempt` of
    /// task run `task_run` of `parent` (a ForEachItem's), as
    /// [`Entry::Parent`] says for a subflow.
    ParentOfBatch {
        parent: [u64; 2],
        task_run: u32,
        attempt: u32,
        batch: u32,
        wait: bool,
        depth: u32,
        at_us: i64,
    },
    /// Batch `batch` of attempt `attempt` of task run `task_run` answered,
    /// as [`Entry::Child`] says for a subflow.
    BatchChild {
        task_run: u32,
        attempt: u32,
        batch: u32,
        state: String,
        outputs: Option<String>,
        refused: Option<String>,
        at_us: i64,
    },
    /// A worker answered for attempt `attempt` of task run `task_run`, as
    /// [`Entry::WorkedLogged`], with the metrics the job recorded.
    WorkedMeasured {
        task_run: u32,
        attempt: u32,
        outputs: Option<String>,
        error: Option<String>,
        lines: Vec<JobLogLine>,
        metrics: Vec<JobMetricRecord>,
        warning: bool,
        at_us: i64,
    },
}

/// A line a job logged: its level (`flow::Level` as `JobLogLine::level`
/// codes it), when, and what.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = peregrine_wal::rkyv)]
pub(crate) struct JobLogLine {
    pub level: u8,
    pub at_us: i64,
    pub message: String,
}

impl JobLogLine {
    pub(crate) fn of(line: &crate::tasks::JobLine) -> Self {
        use crate::flow::Level;
        Self {
            level: match line.level {
                Level::Trace => 0,
                Level::Debug => 1,
                Level::Info => 2,
                Level::Warn => 3,
                Level::Error => 4,
            },
            at_us: line.at.timestamp_micros(),
            message: line.message.clone(),
        }
    }

    pub(crate) fn line(self) -> crate::tasks::JobLine {
        use crate::flow::Level;
        crate::tasks::JobLine {
            level: match self.level {
                0 => Level::Trace,
                1 => Level::Debug,
                2 => Level::Info,
                3 => Level::Warn,
                _ => Level::Error,
            },
            at: chrono::DateTime::from_timestamp_micros(self.at_us).unwrap_or_default(),
            message: self.message,
        }
    }
}

/// A metric a job recorded: its kind (0 counter, 1 timer), name, value
/// (a timer's in milliseconds), tags, and when.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = peregrine_wal::rkyv)]
pub(crate) struct JobMetricRecord {
    pub kind: u8,
    pub name: String,
    pub value: f64,
    pub tags: Vec<(String, String)>,
    pub at_us: i64,
}

impl JobMetricRecord {
    pub(crate) fn of(metric: &crate::tasks::JobMetric) -> Self {
        use crate::execution::MetricKind;
        Self {
            kind: match metric.kind {
                MetricKind::Counter => 0,
                MetricKind::Timer => 1,
            },
            name: metric.name.clone(),
            value: metric.value,
            tags: metric.tags.clone(),
            at_us: metric.at.timestamp_micros(),
        }
    }

    pub(crate) fn metric(self) -> crate::tasks::JobMetric {
        use crate::execution::MetricKind;
        crate::tasks::JobMetric {
            kind: if self.kind == 0 {
                MetricKind::Counter
            } else {
                MetricKind::Timer
            },
            name: self.name,
            value: self.value,
            tags: self.tags,
            at: chrono::DateTime::from_timestamp_micros(self.at_us).unwrap_or_default(),
        }
    }
}

/// One `kv()` read: `key` looked up in `namespace` (and its parents, with
/// `inherit`), and the value found, as JSON text (none: missing).
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = peregrine_wal::rkyv)]
pub(crate) struct KvRead {
    pub namespace: String,
    pub key: String,
    pub inherit: bool,
    pub value: Option<String>,
    /// It would have passed the step's limit: it failed (no value kept).
    pub refused: bool,
}

/// Record kinds of this journal format (2). Format 1 used kinds 1 to 6, with
/// millisecond instants and a JSON terminal record.
const CREATED: u16 = 11;
const TIMER: u16 = 12;
const KILL: u16 = 13;
/// The terminal record: the execution's [`Record`], as it is archived
/// (format 1, before records kept their lineage; read, no longer written).
const ENDED: u16 = 14;
const WORKED: u16 = 15;
const REDISPATCHED: u16 = 16;
const TIMED_OUT: u16 = 17;
const RESUMED: u16 = 18;
const PARENT: u16 = 19;
const CHILD: u16 = 20;
const KILL_ALONE: u16 = 21;
const SCHEDULED: u16 = 22;
const RESTARTED: u16 = 23;
const REPLAYED: u16 = 24;
const GATED: u16 = 25;
/// The terminal record, of format 2 (with its lineage).
const ENDED_2: u16 = 26;
const LINEAGE: u16 = 27;
/// The terminal record, of format 3 (with the names of its SECRET inputs).
const ENDED_3: u16 = 29;
/// The execution was deleted (a terminal record with nothing in it: what
/// it supersedes is gone).
const DELETED: u16 = 30;
const READ: u16 = 28;
const WORKED_LOGGED: u16 = 31;
const PARENT_OF_BATCH: u16 = 32;
const BATCH_CHILD: u16 = 33;
const WORKED_MEASURED: u16 = 34;
const FORMAT_1_KINDS: std::ops::RangeInclusive<u16> = 1..=6;

impl Entry {
    fn kind(&self) -> Kind {
        Kind::new(match self {
            Entry::Created { .. } => CREATED,
            Entry::Timer { .. } => TIMER,
            Entry::Kill { .. } => KILL,
            Entry::Worked { .. } => WORKED,
            Entry::Redispatched { .. } => REDISPATCHED,
            Entry::TimedOut { .. } => TIMED_OUT,
            Entry::Resumed { .. } => RESUMED,
            Entry::Parent { .. } => PARENT,
            Entry::Child { .. } => CHILD,
            Entry::KillAlone { .. } => KILL_ALONE,
            Entry::Scheduled { .. } => SCHEDULED,
            Entry::Restarted { .. } => RESTARTED,
            Entry::Replayed { .. } => REPLAYED,
            Entry::Gated { .. } => GATED,
            Entry::Lineage { .. } => LINEAGE,
            Entry::Read { .. } => READ,
            Entry::WorkedLogged { .. } => WORKED_LOGGED,
            Entry::ParentOfBatch { .. } => PARENT_OF_BATCH,
            Entry::BatchChild { .. } => BATCH_CHILD,
            Entry::WorkedMeasured { .. } => WORKED_MEASURED,
        })
    }
}

/// A journal record read back.
#[derive(Debug)]
pub(crate) enum Recovered {
    /// A cause, to replay.
    Entry(Entry),
    /// The execution ended: its final state.
    Ended(Record),
    /// The execution was deleted.
    Deleted,
}

/// Why a journal record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    #[error(
        "record kind {0} was written by an earlier Peregrine (journal format 1); this version reads format 2 only"
    )]
    OldFormat(u16),
    #[error("unknown record kind {0}")]
    UnknownKind(u16),
    #[error("unreadable record: {0}")]
    Unreadable(String),
}

/// Why a change could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the journal could not make the change durable: {message}")]
pub struct DurabilityError {
    message: Arc<str>,
    disk_full: bool,
}

impl DurabilityError {
    fn new(error: impl fmt::Display, disk_full: bool) -> Self {
        Self {
            message: Arc::from(error.to_string()),
            disk_full,
        }
    }

    fn of(error: &peregrine_wal::Error) -> Self {
        Self::new(error, error.is_disk_full())
    }

    /// The disk was full: nothing was written, and the same change may be
    /// made once space returns.
    pub fn is_disk_full(&self) -> bool {
        self.disk_full
    }
}

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
    Pending(Ticket),
    Failed(DurabilityError),
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            ReceiptState::Ready => f.write_str("Receipt(ready)"),
            ReceiptState::Pending(ticket) => write!(f, "Receipt(lsn {})", ticket.lsn()),
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

    /// Durable once `ticket` is.
    pub(crate) fn of_ticket(ticket: Ticket) -> Self {
        Self {
            state: ReceiptState::Pending(ticket),
        }
    }

    pub(crate) fn failed(error: impl fmt::Display) -> Self {
        Self {
            state: ReceiptState::Failed(DurabilityError::new(error, false)),
        }
    }

    /// The WAL refused or failed the append.
    fn refused(error: &peregrine_wal::Error) -> Self {
        Self {
            state: ReceiptState::Failed(DurabilityError::of(error)),
        }
    }

    /// True when the change was refused at once (nothing was written).
    pub(crate) fn is_refused(&self) -> bool {
        matches!(self.state, ReceiptState::Failed(_))
    }

    /// Blocks until the change is durable.
    pub fn wait(&self) -> Result<(), DurabilityError> {
        match &self.state {
            ReceiptState::Ready => Ok(()),
            ReceiptState::Pending(ticket) => ticket.durable().map_err(|e| DurabilityError::of(&e)),
            ReceiptState::Failed(e) => Err(e.clone()),
        }
    }

    /// Whether the change is durable yet, without waiting: `None` while it
    /// is on its way, `Some(Err(_))` when it never will be.
    pub fn poll_durable(&self) -> Option<Result<(), DurabilityError>> {
        match &self.state {
            ReceiptState::Ready => Some(Ok(())),
            ReceiptState::Pending(ticket) => ticket
                .poll_durable()
                .map(|r| r.map_err(|e| DurabilityError::of(&e))),
            ReceiptState::Failed(e) => Some(Err(e.clone())),
        }
    }

    /// Resolves when the change is durable; needs no particular runtime.
    pub fn durable(&self) -> impl Future<Output = Result<(), DurabilityError>> + Send + 'static {
        let state = self.state.clone();
        async move {
            match state {
                ReceiptState::Ready => Ok(()),
                ReceiptState::Pending(ticket) => ticket
                    .wait_durable()
                    .await
                    .map_err(|e| DurabilityError::of(&e)),
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
            (ReceiptState::Pending(a), ReceiptState::Pending(b)) => {
                if a.lsn() >= b.lsn() {
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

    /// Journals a cause of a change.
    fn append(&mut self, id: ExecutionId, entry: &Entry) -> Receipt;

    /// Journals the end of an execution: its final state, which supersedes
    /// every earlier record of it.
    fn append_ended(&mut self, id: ExecutionId, record: &Record) -> Receipt;

    /// Journals that an ended execution was deleted: a terminal record that
    /// supersedes its final one (kept for the terminal retention from the
    /// deletion, and counted in its budgets, as a tiny record).
    fn append_deleted(&mut self, id: ExecutionId) -> Receipt;

    /// The shard works on `id` from now on (`None`: on nothing), as the
    /// flight recorder that finds crash loops needs to know.
    fn stepping(&mut self, id: Option<ExecutionId>) {
        let _ = id;
    }

    /// A pass of the shard over its inbox begins (`true`) or ends: what it
    /// appends in between shares one sync, made when the pass ends (on the
    /// shard's thread when no sync is under way: `Wal::release_syncs`).
    fn pass(&mut self, begins: bool) {
        let _ = begins;
    }
}

/// No durability: every receipt is ready at once.
#[derive(Debug, Default)]
pub(crate) struct NoJournal;

impl Journal for NoJournal {
    fn keeps_records(&self) -> bool {
        false
    }

    fn append(&mut self, _: ExecutionId, _: &Entry) -> Receipt {
        Receipt::ready()
    }

    fn append_ended(&mut self, _: ExecutionId, _: &Record) -> Receipt {
        Receipt::ready()
    }

    fn append_deleted(&mut self, _: ExecutionId) -> Receipt {
        Receipt::ready()
    }
}

/// The shard's WAL, and its flight recorder.
#[derive(Debug)]
pub(crate) struct WalJournal {
    wal: Wal,
    recorder: Option<peregrine_wal::Blackbox>,
}

impl WalJournal {
    pub fn new(wal: Wal, recorder: Option<peregrine_wal::Blackbox>) -> Self {
        Self { wal, recorder }
    }
}

impl WalJournal {
    fn receipt(&self, id: ExecutionId, appended: peregrine_wal::Result<Lsn>) -> Receipt {
        match appended {
            Ok(lsn) => Receipt::of_ticket(self.wal.ticket(lsn)),
            Err(e) => {
                tracing::error!(execution = %id, "journal append failed: {e}");
                Receipt::refused(&e)
            }
        }
    }
}

impl Journal for WalJournal {
    fn append(&mut self, id: ExecutionId, entry: &Entry) -> Receipt {
        let bytes = match peregrine_wal::encode(entry) {
            Ok(bytes) => bytes,
            Err(e) => return Receipt::failed(e),
        };
        let appended = self
            .wal
            .append(entry.kind(), Key::execution(id.as_u128()), &bytes);
        self.receipt(id, appended)
    }

    fn pass(&mut self, begins: bool) {
        if begins {
            self.wal.hold_syncs();
        } else {
            self.wal.release_syncs();
        }
    }

    fn stepping(&mut self, id: Option<ExecutionId>) {
        if let Some(recorder) = &mut self.recorder {
            match id {
                Some(id) => recorder.set(id.as_u128()),
                None => recorder.clear(),
            }
        }
    }

    fn append_ended(&mut self, id: ExecutionId, record: &Record) -> Receipt {
        let appended = self.wal.append_terminal(
            Kind::new(match record.format() {
                Format::One => ENDED,
                Format::Two => ENDED_2,
                Format::Three => ENDED_3,
            }),
            Key::execution(id.as_u128()),
            record.as_bytes(),
        );
        self.receipt(id, appended)
    }

    fn append_deleted(&mut self, id: ExecutionId) -> Receipt {
        let appended =
            self.wal
                .append_terminal(Kind::new(DELETED), Key::execution(id.as_u128()), b"");
        self.receipt(id, appended)
    }
}

/// Whether a record of `kind` says its execution was deleted.
pub(crate) fn is_deleted(kind: Kind) -> bool {
    kind.get() == DELETED
}

/// The final record of execution `id` that `wal` keeps, with where it is;
/// `None` when it has none (still running, deleted, never there).
pub(crate) fn read_ended(
    wal: &Wal,
    id: ExecutionId,
) -> Result<Option<(Record, Lsn)>, crate::Error> {
    let Some(terminal) = wal.read_terminal(Key::execution(id.as_u128()))? else {
        return Ok(None);
    };
    match decode(terminal.kind, &terminal.payload)? {
        Recovered::Ended(record) => Ok(Some((record, terminal.lsn))),
        Recovered::Entry(_) | Recovered::Deleted => Ok(None),
    }
}

/// Reads a recovered record back.
pub(crate) fn decode(kind: Kind, payload: &[u8]) -> Result<Recovered, JournalError> {
    match kind.get() {
        ENDED | ENDED_2 | ENDED_3 => Record::from_bytes(
            payload,
            match kind.get() {
                ENDED => Format::One,
                ENDED_2 => Format::Two,
                _ => Format::Three,
            },
        )
        .map(Recovered::Ended)
        .map_err(|e| JournalError::Unreadable(e.to_string())),
        CREATED | TIMER | KILL | WORKED | REDISPATCHED | TIMED_OUT | RESUMED | PARENT | CHILD
        | KILL_ALONE | SCHEDULED | RESTARTED | REPLAYED | GATED | LINEAGE | READ
        | WORKED_LOGGED | PARENT_OF_BATCH | BATCH_CHILD | WORKED_MEASURED => {
            let archived = peregrine_wal::access::<Entry>(payload)
                .map_err(|e| JournalError::Unreadable(e.to_string()))?;
            rkyv::deserialize::<Entry, rkyv::rancor::Error>(archived)
                .map(Recovered::Entry)
                .map_err(|e| JournalError::Unreadable(e.to_string()))
        }
        DELETED => Ok(Recovered::Deleted),
        old if FORMAT_1_KINDS.contains(&old) => Err(JournalError::OldFormat(old)),
        other => Err(JournalError::UnknownKind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(entry: &Entry) -> Entry {
        let bytes = peregrine_wal::encode(entry).unwrap();
        match decode(entry.kind(), &bytes).unwrap() {
            Recovered::Entry(e) => e,
            Recovered::Ended(_) | Recovered::Deleted => panic!("a cause decoded as an end"),
        }
    }

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
                at_us: 42,
            },
            Entry::Timer {
                task_run: 7,
                at_us: 43,
            },
            Entry::Kill { at_us: 44 },
            Entry::KillAlone { at_us: 49 },
            Entry::Restarted {
                record: vec![1, 2, 3],
                at_us: 51,
            },
            Entry::Replayed {
                record: vec![4, 5],
                from: Some(3),
                revision: 2,
                at_us: 52,
            },
            Entry::Gated {
                verdict: 1,
                running: 4,
                at_us: 53,
            },
            Entry::Lineage {
                attempt: 2,
                original: [1, 2],
                parent: Some([3, 4]),
                original_created_us: 5,
                at_us: 54,
            },
            Entry::Scheduled {
                start_us: 1_000,
                at_us: 50,
            },
            Entry::Worked {
                task_run: 1,
                attempt: 2,
                outputs: Some("{}".into()),
                error: None,
                at_us: 45,
            },
            Entry::Redispatched {
                task_run: 1,
                at_us: 46,
            },
            Entry::Parent {
                parent: [u64::MAX, 7],
                task_run: 3,
                attempt: 1,
                wait: true,
                depth: 2,
                at_us: 47,
            },
            Entry::Child {
                task_run: 3,
                attempt: 1,
                state: "SUCCESS".into(),
                outputs: Some(r#"{"x":1}"#.into()),
                refused: None,
                at_us: 48,
            },
            Entry::ParentOfBatch {
                parent: [7, u64::MAX],
                task_run: 4,
                attempt: 2,
                batch: 900,
                wait: false,
                depth: 1,
                at_us: 50,
            },
            Entry::BatchChild {
                task_run: 4,
                attempt: 2,
                batch: 900,
                state: "FAILED".into(),
                outputs: None,
                refused: Some("no flow".into()),
                at_us: 51,
            },
            Entry::Read {
                reads: vec![
                    KvRead {
                        namespace: "a.b".into(),
                        key: "k".into(),
                        inherit: true,
                        value: Some(r#"{"x":[1]}"#.into()),
                        refused: false,
                    },
                    KvRead {
                        namespace: "a".into(),
                        key: "gone".into(),
                        inherit: false,
                        value: None,
                        refused: true,
                    },
                ],
                at_us: 49,
            },
            Entry::WorkedLogged {
                task_run: 2,
                attempt: 1,
                outputs: None,
                error: Some("Command failed with exit code 3".into()),
                lines: vec![
                    JobLogLine {
                        level: 2,
                        at_us: 50,
                        message: "hello".into(),
                    },
                    JobLogLine {
                        level: 4,
                        at_us: 51,
                        message: "oops".into(),
                    },
                ],
                warning: true,
                at_us: 52,
            },
            Entry::WorkedMeasured {
                task_run: 3,
                attempt: 1,
                outputs: Some("{}".into()),
                error: None,
                lines: Vec::new(),
                metrics: vec![JobMetricRecord {
                    kind: 1,
                    name: "took".into(),
                    value: 1500.5,
                    tags: vec![("table".into(), "t1".into())],
                    at_us: 53,
                }],
                warning: false,
                at_us: 54,
            },
        ];
        for entry in entries {
            assert_eq!(round_trip(&entry), entry);
        }
    }

    #[test]
    fn bad_and_old_records_are_named_not_guessed() {
        assert!(matches!(
            decode(Kind::new(CREATED), b"not an archive"),
            Err(JournalError::Unreadable(_))
        ));
        assert_eq!(
            decode(Kind::new(4), b"{}").unwrap_err(),
            JournalError::OldFormat(4)
        );
        assert_eq!(
            decode(Kind::new(99), b"").unwrap_err(),
            JournalError::UnknownKind(99)
        );
        assert!(matches!(
            decode(Kind::new(ENDED), b"not a record"),
            Err(JournalError::Unreadable(_))
        ));
    }
}
