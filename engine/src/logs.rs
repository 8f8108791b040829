//! Execution logs as Kestra's log API serves them: every line an execution
//! logs (the Log task, the engine's own lines), kept for a retention window
//! (an hour by default) from its first line, in a log of their own
//! (`data/logs`, records of a log kind the WAL drops once past the
//! retention) and in memory, bounded, for reading, searching and following.
//!
//! The shards hand each changed execution over (`LogStore::record`, on the
//! shard's thread): the lines it logged since the last change are appended
//! to the log and the index, and sent to whoever follows the execution.
//! An execution's lines are numbered in the order it logged them, and
//! replaying its journal logs the same lines again: those already kept are
//! skipped, so a restart neither loses nor doubles a line the log kept
//! (a restart of the execution through the API numbers its lines anew).
//! Lines are kept as the shard hands them over, before the shard's records
//! of the step are durable, and synced with this log's own group commit:
//! the one exception to "commit before externalize" (a line shown, or
//! kept, may belong to a step a crash lost; its replay may log other lines
//! at the same numbers, which are then not kept). An execution's lines go
//! once `retention` has passed since its first.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use peregrine_wal::{Key, Kind, Wal};
use serde_json::{Value, json};

use crate::execution::{Execution, ExecutionId, State, TaskRunId, format_date};
use crate::flow::Level;
use crate::kept::{Kept, Numbering};
use crate::lazy_log::LazyLog;

/// The key space of log records in their log.
const SPACE: u8 = 1;
/// Lines of one execution (a log kind: it expires after the retention).
pub const LINES: Kind = Kind::new(1);
/// The execution's lines were deleted: what came before is dead.
const GONE: Kind = Kind::new(2);
/// Most bytes of lines one record holds (a step may log many).
const MAX_RECORD_LINES_BYTES: usize = 256 << 10;
/// Most bytes of one line's message kept; a longer one is cut.
pub const MAX_MESSAGE_BYTES: usize = 64 << 10;
/// Most bytes of lines running jobs printed that one execution shows
/// before their answers come.
const MAX_LIVE_BYTES: usize = 1 << 20;

/// How much the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// How long an execution's lines are kept after its first. Default: 1 hour.
    pub retention: Duration,
    /// Most bytes of lines held in memory; past it, the oldest executions'
    /// lines go first. Default: 128 MiB.
    pub max_bytes: usize,
    /// Lines a follower may fall behind by before it is let go.
    pub follow_buffer: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(3600),
            max_bytes: 128 << 20,
            follow_buffer: 1024,
        }
    }
}

/// One line, as Kestra's `LogEntry`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub execution: ExecutionId,
    pub namespace: Arc<str>,
    pub flow_id: Arc<str>,
    pub task_id: Option<Arc<str>>,
    pub task_run: Option<(TaskRunId, u32)>,
    pub timestamp: DateTime<Utc>,
    pub level: Level,
    pub message: String,
}

impl LogLine {
    /// Kestra's `LogEntry` JSON.
    pub fn json(&self) -> Value {
        let mut v = json!({
            "namespace": &*self.namespace,
            "flowId": &*self.flow_id,
            "executionId": self.execution.to_string(),
            "timestamp": format_date(self.timestamp),
            "level": self.level.as_str(),
            "thread": "peregrine",
            "message": self.message,
            "executionKind": "NORMAL",
        });
        if let Some(task) = &self.task_id {
            v["taskId"] = Value::from(&**task);
        }
        if let Some((run, attempt)) = self.task_run {
            v["taskRunId"] = Value::from(run.to_string());
            v["attemptNumber"] = Value::from(attempt);
        }
        v
    }

    fn bytes(&self) -> usize {
        self.message.len() + std::mem::size_of::<LogLine>() + 64
    }

    /// The same line, logged live and then brought by its job's answer
    /// (whose instants the journal keeps to the microsecond).
    fn same_line(&self, other: &LogLine) -> bool {
        self.task_run == other.task_run
            && self.level == other.level
            && self.timestamp.timestamp_micros() == other.timestamp.timestamp_micros()
            && self.message == other.message
    }
}

/// Cuts `message` to [`MAX_MESSAGE_BYTES`], saying so.
fn cut_message(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("… (cut: longer than 64 KiB)");
    }
    message
}

/// Which task run attempt a running job prints for, and what its lines
/// must not show: the secrets' values and its execution's SECRET inputs'.
#[derive(Debug, Clone)]
pub(crate) struct LiveTarget {
    pub execution: ExecutionId,
    pub namespace: Arc<str>,
    pub flow_id: Arc<str>,
    pub task_id: Arc<str>,
    /// The task run, and its attempt (from 0).
    pub task_run: (TaskRunId, u32),
    pub masked: Vec<String>,
}

/// A running job's lines on their way to the store, shown before its
/// answer is journaled (which then brings them again, once).
#[derive(Debug, Clone)]
pub(crate) struct Live {
    store: LogStore,
    target: Arc<LiveTarget>,
}

impl Live {
    pub(crate) fn new(store: LogStore, target: LiveTarget) -> Self {
        Self {
            store,
            target: Arc::new(target),
        }
    }

    /// Shows a line the job printed at `at`.
    pub(crate) fn push(&self, level: Level, at: DateTime<Utc>, message: &str) {
        let t = &self.target;
        let message = crate::executor::mask_with(&t.masked, message.to_owned());
        let line = LogLine {
            execution: t.execution,
            namespace: Arc::clone(&t.namespace),
            flow_id: Arc::clone(&t.flow_id),
            task_id: Some(Arc::clone(&t.task_id)),
            task_run: Some(t.task_run),
            timestamp: at,
            level,
            message: cut_message(message),
        };
        self.store.add_live(line, Utc::now());
    }
}

/// Which of an execution's lines a read or a deletion takes (Kestra's
/// `minLevel`, `taskRunId`, `taskId`, `attempt`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    pub min_level: Option<Level>,
    pub task_run_id: Option<String>,
    pub task_id: Option<String>,
    pub attempt: Option<u32>,
}

impl LogQuery {
    pub fn matches(&self, line: &LogLine) -> bool {
        self.min_level.is_none_or(|min| line.level >= min)
            && self
                .task_id
                .as_deref()
                .is_none_or(|t| line.task_id.as_deref() == Some(t))
            && self
                .task_run_id
                .as_deref()
                .is_none_or(|t| line.task_run.is_some_and(|(id, _)| id.to_string() == t))
            && self
                .attempt
                .is_none_or(|a| line.task_run.is_some_and(|(_, at)| at == a))
    }
}

/// What follows an execution's lines: each new one, until the execution
/// ends (the channel closes) or the follower falls too far behind.
pub type Following = flume::Receiver<Arc<LogLine>>;

/// The log store; cloning is a reference count.
#[derive(Clone)]
pub struct LogStore(Arc<Inner>);

struct Inner {
    log: LazyLog,
    limits: LogLimits,
    held: Mutex<Held>,
}

type Held = crate::kept::Held<Stream>;

/// One execution's lines.
struct Stream {
    namespace: Arc<str>,
    flow_id: Arc<str>,
    numbering: Numbering,
    lines: Vec<Arc<LogLine>>,
    bytes: usize,
    ended: bool,
    /// It has a place in `Held::order` (a running execution whose lines
    /// were let go keeps its entry, so that they are not kept again, but
    /// has none until it logs more).
    in_order: bool,
    followers: Vec<flume::Sender<Arc<LogLine>>>,
    /// Lines running jobs printed, shown before their answers come (see
    /// [`Live`]), at most [`MAX_LIVE_BYTES`] of them.
    live: Vec<Arc<LogLine>>,
    live_bytes: usize,
}

impl Stream {
    fn new(namespace: Arc<str>, flow_id: Arc<str>) -> Self {
        Self {
            namespace,
            flow_id,
            numbering: Numbering::default(),
            lines: Vec::new(),
            bytes: 0,
            ended: false,
            in_order: true,
            followers: Vec::new(),
            live: Vec::new(),
            live_bytes: 0,
        }
    }

    /// `fresh` lines, each with whether its followers saw it already: the
    /// live lines a job's answer brings go (each found once, in order),
    /// with the rest of that attempt's (those its answer did not keep);
    /// once the execution `ended`, the live lines left, of attempts whose
    /// answers never came (a timeout, a kill), are kept after them.
    fn settle_live(&mut self, fresh: Vec<Arc<LogLine>>, ended: bool) -> Vec<(Arc<LogLine>, bool)> {
        if self.live.is_empty() {
            return fresh.into_iter().map(|l| (l, false)).collect();
        }
        // Each attempt's live lines, in the order printed: its answer
        // brings them in that order, so each is looked for after the last
        // found (answers of several attempts may come in one change).
        let mut runs: Vec<((TaskRunId, u32), Vec<usize>, usize)> = Vec::new();
        for (at, l) in self.live.iter().enumerate() {
            let Some(run) = l.task_run else { continue };
            match runs.iter_mut().find(|(r, _, _)| *r == run) {
                Some((_, indices, _)) => indices.push(at),
                None => runs.push((run, vec![at], 0)),
            }
        }
        let mut taken = vec![false; self.live.len()];
        let mut answered = Vec::new();
        let mut settled = Vec::with_capacity(fresh.len());
        for line in fresh {
            let found = line.task_run.and_then(|run| {
                let (_, indices, next) = runs.iter_mut().find(|(r, _, _)| *r == run)?;
                let step = indices[*next..]
                    .iter()
                    .position(|&i| self.live[i].same_line(&line))?;
                let at = indices[*next + step];
                *next += step + 1;
                taken[at] = true;
                if !answered.contains(&run) {
                    answered.push(run);
                }
                Some(at)
            });
            settled.push((line, found.is_some()));
        }
        // The rest of an answered attempt's live lines are those its
        // answer did not keep: they go.
        let mut at = 0;
        self.live.retain(|l| {
            let keep = !taken[at] && !l.task_run.is_some_and(|r| answered.contains(&r));
            at += 1;
            keep
        });
        if ended {
            settled.extend(self.live.drain(..).map(|l| (l, true)));
        }
        self.live_bytes = self.live.iter().map(|l| l.bytes()).sum();
        settled
    }

    /// Sends `line` to the followers; those too far behind are let go.
    fn tell(&mut self, line: &Arc<LogLine>) {
        self.followers
            .retain(|f| f.try_send(Arc::clone(line)).is_ok());
    }
}

impl Kept for Stream {
    fn bytes(&self) -> usize {
        self.bytes + self.live_bytes
    }

    fn ended(&self) -> bool {
        self.ended
    }

    fn let_go(&mut self) -> usize {
        self.lines = Vec::new();
        self.live = Vec::new();
        std::mem::take(&mut self.bytes) + std::mem::take(&mut self.live_bytes)
    }
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("durable", &self.0.log.is_durable())
            .field("limits", &self.0.limits)
            .finish_non_exhaustive()
    }
}

impl PartialEq for LogStore {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The WAL settings the log store's log needs over `base`: its record
/// kind expires after the retention.
pub fn wal_config(base: peregrine_wal::Config, limits: &LogLimits) -> peregrine_wal::Config {
    crate::lazy_log::expiring(base, LINES, limits.retention)
}

impl LogStore {
    /// A store kept in memory only.
    pub fn in_memory(limits: LogLimits) -> Self {
        Self::with(LazyLog::none(), limits, Held::default())
    }

    /// An empty store whose log is made in `dir` (with `config`, from
    /// [`wal_config`]) when the first line comes.
    pub fn deferred(dir: PathBuf, config: peregrine_wal::Config, limits: LogLimits) -> Self {
        Self::with(LazyLog::deferred(dir, config), limits, Held::default())
    }

    /// The store kept in `wal` (opened with [`wal_config`]), with the lines
    /// its recovery read back (those within the retention).
    pub fn from_log(wal: Wal, recovered: &peregrine_wal::Recovered, limits: LogLimits) -> Self {
        let mut held = Held::default();
        for (key, records) in recovered.iter() {
            if key.space() != SPACE {
                continue;
            }
            for record in records {
                if record.kind() != LINES {
                    continue;
                }
                let execution = crate::execution::Id::from_u128(key.id());
                let Some(decoded) = decode(execution, record.payload()) else {
                    tracing::error!("an unreadable log record is skipped");
                    continue;
                };
                held.add(decoded);
            }
        }
        Self::with(LazyLog::open(wal), limits, held)
    }

    fn with(log: LazyLog, limits: LogLimits, held: Held) -> Self {
        Self(Arc::new(Inner {
            log,
            limits,
            held: Mutex::new(held),
        }))
    }

    /// The log to append to, made now if it is deferred (under the lock,
    /// so once); none in memory, or when it cannot be made.
    fn log(&self) -> Option<&Wal> {
        self.0.log.or_memory("the log store's lines")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // Every change under the lock leaves the index whole.
        self.0.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the lines `execution` logged since it was last recorded, and
    /// tells its followers; `ended`: it ended, its followers are let go.
    pub fn record(&self, execution: &Execution, ended: bool, now: DateTime<Utc>) {
        let entries = execution.logs.entries();
        let restarts = u32::try_from(execution.state.count(State::Restarted)).unwrap_or(u32::MAX);
        if entries.is_empty() && !ended {
            if restarts > 0
                && let Some(stream) = self.lock().streams.get_mut(&execution.id)
            {
                // Restarted, with no line of its own yet: it runs again,
                // its scripts' lines are shown.
                stream.ended = false;
            }
            return;
        }
        let mut held = self.lock();
        let id = execution.id;
        if !held.streams.contains_key(&id) {
            if entries.is_empty() {
                return;
            }
            held.order.push_back((now, id));
        }
        let stream = held.streams.entry(id).or_insert_with(|| {
            Stream::new(
                Arc::clone(&execution.namespace),
                Arc::clone(&execution.flow_id),
            )
        });
        let fresh: Vec<Arc<LogLine>> = stream
            .numbering
            .fresh(restarts, entries)
            .iter()
            .map(|e| {
                let message = cut_message(e.message.clone());
                Arc::new(LogLine {
                    execution: id,
                    namespace: Arc::clone(&stream.namespace),
                    flow_id: Arc::clone(&stream.flow_id),
                    task_id: e.task_id.clone(),
                    task_run: e.task_run,
                    timestamp: e.date,
                    level: e.level,
                    message,
                })
            })
            .collect();
        if !fresh.is_empty() && !stream.in_order {
            stream.in_order = true;
            held.order.push_back((now, id));
        }
        let Some(stream) = held.streams.get_mut(&id) else {
            return;
        };
        let live_before = stream.live_bytes;
        let fresh = stream.settle_live(fresh, ended);
        let mut added = 0;
        if !fresh.is_empty() {
            let lines: Vec<Arc<LogLine>> = fresh.iter().map(|(l, _)| Arc::clone(l)).collect();
            if let Some(wal) = self.log() {
                append(wal, id, stream, &lines);
            }
            added = lines.iter().map(|l| l.bytes()).sum();
            stream.bytes += added;
            for (line, shown) in &fresh {
                if !shown {
                    stream.tell(line);
                }
            }
            stream.lines.extend(lines);
        }
        let live_after = stream.live_bytes;
        held.bytes = held.bytes + added + live_after - live_before;
        if let Some(stream) = held.streams.get_mut(&id) {
            // A restart runs it again: it shows and keeps lines anew.
            stream.ended = ended;
        }
        if ended && let Some(stream) = held.streams.get_mut(&id) {
            stream.followers.clear();
            if !stream.in_order {
                // Its lines were let go while it ran: nothing is left of it.
                held.streams.remove(&id);
            }
        }
        self.evict(&mut held, now);
    }

    /// Lets go of the oldest executions' lines: past the retention, or
    /// past the memory budget.
    fn evict(&self, held: &mut Held, now: DateTime<Utc>) {
        let limits = &self.0.limits;
        held.evict(now, limits.retention, limits.max_bytes, |s| {
            s.in_order = false;
        });
    }

    /// The lines of execution `id` that `query` takes, in the order logged;
    /// `None` when the store holds none of its lines.
    pub fn lines(&self, id: ExecutionId, query: &LogQuery) -> Option<Vec<Arc<LogLine>>> {
        let held = self.lock();
        let stream = held.streams.get(&id)?;
        Some(
            stream
                .lines
                .iter()
                .chain(&stream.live)
                .filter(|l| query.matches(l))
                .cloned()
                .collect(),
        )
    }

    /// Shows `line`, which a running job printed, to whoever follows its
    /// execution and reads its lines, until the job's answer brings it (or,
    /// if no answer comes, the execution ends and it is kept).
    fn add_live(&self, line: LogLine, now: DateTime<Utc>) {
        let id = line.execution;
        let mut held = self.lock();
        if !held.streams.contains_key(&id) {
            held.order.push_back((now, id));
        }
        let stream = held
            .streams
            .entry(id)
            .or_insert_with(|| Stream::new(Arc::clone(&line.namespace), Arc::clone(&line.flow_id)));
        if stream.ended {
            return;
        }
        let reorder = !stream.in_order;
        stream.in_order = true;
        let line = Arc::new(line);
        let bytes = line.bytes();
        if stream.live_bytes + bytes > MAX_LIVE_BYTES {
            // Past the budget: shown once its answer brings it (shown now,
            // it would be shown again then).
            return;
        }
        stream.tell(&line);
        stream.live_bytes += bytes;
        stream.live.push(line);
        held.bytes += bytes;
        if reorder {
            // Its lines were let go while it ran: it has a place again.
            held.order.push_back((now, id));
        }
        self.evict(&mut held, now);
    }

    /// Every line `keep` takes, newest first, and how many there are; at
    /// most `limit` of them after skipping `skip`.
    pub fn search(
        &self,
        keep: impl Fn(&LogLine) -> bool,
        skip: usize,
        limit: usize,
    ) -> (Vec<Arc<LogLine>>, usize) {
        // The lines are shared: take them (pointers) under the lock, which
        // the shards' threads also take, and filter and sort after.
        let all: Vec<Arc<LogLine>> = {
            let held = self.lock();
            held.streams
                .values()
                .flat_map(|s| s.lines.iter().cloned())
                .collect()
        };
        let mut found: Vec<Arc<LogLine>> = all.into_iter().filter(|l| keep(l)).collect();
        let total = found.len();
        found.sort_by_key(|l| std::cmp::Reverse(l.timestamp));
        let page = found.into_iter().skip(skip).take(limit).collect();
        (page, total)
    }

    /// Deletes the lines of execution `id` that `query` takes; how many.
    /// Its later lines are kept as they come.
    pub fn delete(&self, id: ExecutionId, query: &LogQuery) -> usize {
        if *query == LogQuery::default() {
            // All of them: also those kept on disk but no longer in memory.
            let held = !self
                .lock()
                .streams
                .get(&id)
                .is_none_or(|s| s.lines.is_empty() && s.live.is_empty());
            if !held && let Some(wal) = self.0.log.get() {
                let key = Key::new(SPACE, id.as_u128());
                if let Err(e) = wal.append_terminal(GONE, key, b"") {
                    tracing::error!(execution = %id, "deleting log lines: {e}");
                }
                wal.forget(key);
                return 0;
            }
        }
        self.delete_where(id, |l| query.matches(l))
    }

    /// Deletes the lines `remove` takes, of every execution; how many.
    pub fn purge(&self, remove: impl Fn(&LogLine) -> bool) -> usize {
        let ids: Vec<ExecutionId> = self.lock().streams.keys().copied().collect();
        ids.into_iter()
            .map(|id| self.delete_where(id, &remove))
            .sum()
    }

    fn delete_where(&self, id: ExecutionId, remove: impl Fn(&LogLine) -> bool) -> usize {
        let mut held = self.lock();
        let Some(stream) = held.streams.get_mut(&id) else {
            return 0;
        };
        // Lines shown live go too (their answer, when it comes, is kept).
        let live_before = stream.live.len();
        stream.live.retain(|l| !remove(l));
        let live_freed = if stream.live.len() == live_before {
            0
        } else {
            let left: usize = stream.live.iter().map(|l| l.bytes()).sum();
            std::mem::replace(&mut stream.live_bytes, left) - left
        };
        held.bytes -= live_freed;
        let Some(stream) = held.streams.get_mut(&id) else {
            return 0;
        };
        let before = stream.lines.len();
        stream.lines.retain(|l| !remove(l));
        let removed = before - stream.lines.len();
        if removed == 0 {
            return 0;
        }
        let bytes: usize = stream.lines.iter().map(|l| l.bytes()).sum();
        let freed = stream.bytes - bytes;
        stream.bytes = bytes;
        if let Some(wal) = self.log() {
            // What was kept dies; what is left is kept again, after it.
            let key = Key::new(SPACE, id.as_u128());
            if let Err(e) = wal.append_terminal(GONE, key, b"") {
                tracing::error!(execution = %id, "deleting log lines: {e}");
            }
            wal.forget(key);
            let left = stream.lines.clone();
            append(wal, id, stream, &left);
        }
        held.bytes -= freed;
        removed
    }

    /// Follows execution `id` (of `namespace.flow_id`): the lines kept so
    /// far that `query` takes, and the channel of those to come (none once
    /// it ended). Subscribe, then check the execution has not ended since:
    /// an end in between closes nothing.
    pub fn follow(
        &self,
        id: ExecutionId,
        namespace: &str,
        flow_id: &str,
        now: DateTime<Utc>,
    ) -> (Vec<Arc<LogLine>>, Option<Following>) {
        let mut held = self.lock();
        if !held.streams.contains_key(&id) {
            held.order.push_back((now, id));
        }
        let stream = held
            .streams
            .entry(id)
            .or_insert_with(|| Stream::new(Arc::from(namespace), Arc::from(flow_id)));
        let kept = stream.lines.iter().chain(&stream.live).cloned().collect();
        if stream.ended {
            return (kept, None);
        }
        let (tx, rx) = flume::bounded(self.0.limits.follow_buffer.max(1));
        stream.followers.push(tx);
        (kept, Some(rx))
    }

    /// Bytes of lines held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

impl Held {
    /// A record read back at start.
    fn add(&mut self, decoded: Decoded) {
        let Decoded {
            execution,
            namespace,
            flow_id,
            numbering,
            lines,
        } = decoded;
        if !self.streams.contains_key(&execution) {
            let first = lines.first().map_or(Utc::now(), |l| l.timestamp);
            self.order.push_back((first, execution));
        }
        let stream = self
            .streams
            .entry(execution)
            .or_insert_with(|| Stream::new(Arc::clone(&namespace), Arc::clone(&flow_id)));
        stream.numbering.merge(numbering);
        for line in lines {
            let bytes = line.bytes();
            stream.bytes += bytes;
            self.bytes += bytes;
            stream.lines.push(Arc::new(line));
        }
    }
}

/// Appends `lines` of execution `id` to `wal`, in records of a bounded size.
/// The log syncs them with the next group commit; nothing waits for it.
fn append(wal: &Wal, id: ExecutionId, stream: &Stream, lines: &[Arc<LogLine>]) {
    let key = Key::new(SPACE, id.as_u128());
    let mut start = 0;
    while start < lines.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < lines.len()
            && (end == start || bytes + lines[end].bytes() <= MAX_RECORD_LINES_BYTES)
        {
            bytes += lines[end].bytes();
            end += 1;
        }
        let payload = json!({
            "namespace": &*stream.namespace,
            "flowId": &*stream.flow_id,
            "restarts": stream.numbering.restarts,
            "seen": stream.numbering.seen,
            "lines": lines[start..end].iter().map(|l| encode_line(l)).collect::<Vec<_>>(),
        });
        if let Err(e) = wal.append(LINES, key, payload.to_string().as_bytes()) {
            tracing::error!(execution = %id, "log lines not kept: {e}");
        }
        start = end;
    }
}

fn encode_line(l: &LogLine) -> Value {
    json!({
        "t": l.timestamp.timestamp_micros(),
        "l": l.level.as_str(),
        "task": l.task_id.as_deref(),
        "run": l.task_run.map(|(id, attempt)| json!([id.as_u128().to_string(), attempt])),
        "m": l.message,
    })
}

struct Decoded {
    execution: ExecutionId,
    namespace: Arc<str>,
    flow_id: Arc<str>,
    numbering: Numbering,
    lines: Vec<LogLine>,
}

fn decode(execution: ExecutionId, payload: &[u8]) -> Option<Decoded> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let namespace: Arc<str> = Arc::from(v.get("namespace")?.as_str()?);
    let flow_id: Arc<str> = Arc::from(v.get("flowId")?.as_str()?);
    let mut lines = Vec::new();
    for l in v.get("lines")?.as_array()? {
        let run = match l.get("run") {
            None | Some(Value::Null) => None,
            Some(r) => {
                let id: u128 = r.get(0)?.as_str()?.parse().ok()?;
                let attempt = u32::try_from(r.get(1)?.as_u64()?).ok()?;
                Some((crate::execution::Id::from_u128(id), attempt))
            }
        };
        lines.push(LogLine {
            execution,
            namespace: Arc::clone(&namespace),
            flow_id: Arc::clone(&flow_id),
            task_id: l.get("task").and_then(Value::as_str).map(Arc::from),
            task_run: run,
            timestamp: DateTime::from_timestamp_micros(l.get("t")?.as_i64()?)?,
            level: Level::parse(l.get("l")?.as_str()?)?,
            message: l.get("m")?.as_str()?.to_owned(),
        });
    }
    Some(Decoded {
        execution,
        namespace,
        flow_id,
        numbering: Numbering {
            restarts: u32::try_from(v.get("restarts")?.as_u64()?).ok()?,
            seen: usize::try_from(v.get("seen")?.as_u64()?).ok()?,
        },
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::LogEntry;

    /// `s` seconds from now: the lines of a run are logged now.
    fn at(s: i64) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(s)
    }

    fn logged() -> Execution {
        crate::tasks::testing::run(
            r#"
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
  - id: both
    type: io.kestra.plugin.core.log.Log
    level: WARN
    message:
      - one
      - two
"#,
        )
    }

    fn line(message: &str) -> LogEntry {
        LogEntry {
            date: at(0),
            level: Level::Info,
            task_id: None,
            task_run: None,
            message: message.into(),
        }
    }

    fn messages(lines: &[Arc<LogLine>]) -> Vec<&str> {
        lines.iter().map(|l| l.message.as_str()).collect()
    }

    fn open(dir: &std::path::Path, limits: LogLimits) -> LogStore {
        let base = peregrine_wal::Config {
            segment_bytes: std::num::NonZeroU64::new(4 << 20).expect("non-zero"),
            spare_segments: 0,
            ..peregrine_wal::Config::default()
        };
        let (wal, recovered) = Wal::open(dir, wal_config(base, &limits)).expect("opens");
        LogStore::from_log(wal, &recovered, limits)
    }

    #[test]
    fn each_line_is_kept_once_with_its_task_run_and_comes_back_after_a_reopen() {
        let dir = tempfile::tempdir().expect("a dir");
        let mut exec = logged();
        let id = exec.id;
        {
            let store = open(dir.path(), LogLimits::default());
            store.record(&exec, false, at(0));
            // Recorded again (a replay, another change): nothing doubles.
            store.record(&exec, true, at(0));
            let all = store.lines(id, &LogQuery::default()).expect("kept");
            assert_eq!(messages(&all), ["hello", "one", "two"]);
            let hello = &all[0];
            assert_eq!(hello.task_id.as_deref(), Some("hello"));
            let (run, attempt) = hello.task_run.expect("a task run's line");
            assert_eq!(attempt, 0);
            let json = hello.json();
            assert_eq!(json["taskRunId"], run.to_string());
            assert_eq!(json["executionId"], id.to_string());
            assert_eq!(json["level"], "INFO");
            let warn = LogQuery {
                min_level: Some(Level::Warn),
                ..LogQuery::default()
            };
            assert_eq!(
                messages(&store.lines(id, &warn).expect("kept")),
                ["one", "two"]
            );
            let of_run = LogQuery {
                task_run_id: Some(run.to_string()),
                attempt: Some(0),
                ..LogQuery::default()
            };
            assert_eq!(
                messages(&store.lines(id, &of_run).expect("kept")),
                ["hello"]
            );
            // A restart numbers its lines anew: its first is kept.
            exec.state.transition(State::Restarted, at(1));
            exec.logs = crate::execution::Logs::default();
            exec.logs.push(line("after the restart"));
            store.record(&exec, false, at(1));
            assert_eq!(
                store.lines(id, &LogQuery::default()).expect("kept").len(),
                4
            );
        }
        let store = open(dir.path(), LogLimits::default());
        let back = store.lines(id, &LogQuery::default()).expect("read back");
        assert_eq!(
            messages(&back),
            ["hello", "one", "two", "after the restart"]
        );
        // The replay after the restart logs the same lines: none doubles.
        store.record(&exec, false, at(2));
        assert_eq!(
            store.lines(id, &LogQuery::default()).expect("kept").len(),
            4
        );
    }

    #[test]
    fn deleted_lines_stay_deleted_after_a_reopen_and_later_ones_are_kept() {
        let dir = tempfile::tempdir().expect("a dir");
        let mut exec = logged();
        let id = exec.id;
        {
            let store = open(dir.path(), LogLimits::default());
            store.record(&exec, false, at(0));
            let warn = LogQuery {
                min_level: Some(Level::Warn),
                ..LogQuery::default()
            };
            assert_eq!(store.delete(id, &warn), 2);
            exec.logs.push(line("later"));
            store.record(&exec, false, at(1));
            assert_eq!(
                messages(&store.lines(id, &LogQuery::default()).expect("kept")),
                ["hello", "later"]
            );
        }
        let store = open(dir.path(), LogLimits::default());
        assert_eq!(
            messages(&store.lines(id, &LogQuery::default()).expect("read back")),
            ["hello", "later"]
        );
        assert_eq!(store.purge(|l| l.message == "hello"), 1);
    }

    #[test]
    fn old_and_over_budget_lines_go_first() {
        let limits = LogLimits {
            retention: Duration::from_secs(60),
            max_bytes: 3 * (std::mem::size_of::<LogLine>() + 64 + 5),
            follow_buffer: 4,
        };
        let store = LogStore::in_memory(limits);
        let a = logged();
        store.record(&a, true, at(0));
        assert!(store.lines(a.id, &LogQuery::default()).is_some());
        let b = crate::tasks::testing::run(
            "  - id: x\n    type: io.kestra.plugin.core.log.Log\n    message: later\n",
        );
        // Past the retention of the first.
        store.record(&b, true, at(61));
        assert!(
            store.lines(a.id, &LogQuery::default()).is_none(),
            "past its retention"
        );
        assert!(store.lines(b.id, &LogQuery::default()).is_some());
        let (found, total) = store.search(|l| l.message == "later", 0, 10);
        assert_eq!((found.len(), total), (1, 1));
    }

    #[test]
    fn a_running_executions_lines_let_go_are_not_kept_again_at_its_next_change() {
        let limits = LogLimits {
            retention: Duration::from_secs(60),
            max_bytes: usize::MAX,
            follow_buffer: 4,
        };
        let store = LogStore::in_memory(limits);
        let mut exec = logged();
        exec.state = crate::execution::StateHistory::new(State::Running, at(0));
        store.record(&exec, false, at(0));
        assert_eq!(
            store
                .lines(exec.id, &LogQuery::default())
                .expect("kept")
                .len(),
            3
        );
        // Past its retention while it runs: its lines go, its place stays.
        exec.logs.push(line("later"));
        store.record(&exec, false, at(61));
        let kept = store
            .lines(exec.id, &LogQuery::default())
            .expect("its place");
        assert!(
            kept.is_empty(),
            "the old lines went, the new one with them: {kept:?}"
        );
        store.record(&exec, false, at(62));
        assert!(
            store
                .lines(exec.id, &LogQuery::default())
                .expect("kept")
                .is_empty(),
            "not kept again"
        );
        exec.logs.push(line("last"));
        store.record(&exec, false, at(63));
        assert_eq!(
            messages(&store.lines(exec.id, &LogQuery::default()).expect("kept")),
            ["last"]
        );
        assert_eq!(
            store.bytes(),
            store.lines(exec.id, &LogQuery::default()).expect("kept")[0].bytes()
        );
    }

    #[test]
    fn a_follower_gets_each_new_line_until_the_execution_ends() {
        let store = LogStore::in_memory(LogLimits::default());
        let mut exec = logged();
        let id = exec.id;
        let (none, follower) = store.follow(id, "tests", "t", at(0));
        assert!(none.is_empty());
        let follower = follower.expect("it runs");
        store.record(&exec, false, at(0));
        exec.logs.push(line("last"));
        store.record(&exec, true, at(1));
        let got: Vec<String> = follower.iter().map(|l| l.message.clone()).collect();
        assert_eq!(
            got,
            ["hello", "one", "two", "last"],
            "then the channel closes"
        );
        let (kept, after_end) = store.follow(id, "tests", "t", at(2));
        assert_eq!(kept.len(), 4);
        assert!(
            after_end.is_none(),
            "an ended execution has nothing more to follow"
        );
    }

    /// A job's line of task run `run`'s first attempt, at `at`.
    fn job_line(run: TaskRunId, message: &str, at: DateTime<Utc>) -> LogEntry {
        LogEntry {
            date: at,
            level: Level::Info,
            task_id: Some(Arc::from("sh")),
            task_run: Some((run, 0)),
            message: message.into(),
        }
    }

    fn live_of(store: &LogStore, exec: &Execution, run: TaskRunId) -> Live {
        Live::new(
            store.clone(),
            LiveTarget {
                execution: exec.id,
                namespace: Arc::clone(&exec.namespace),
                flow_id: Arc::clone(&exec.flow_id),
                task_id: Arc::from("sh"),
                task_run: (run, 0),
                masked: vec!["s3cr3t".into()],
            },
        )
    }

    #[test]
    fn a_running_jobs_lines_are_shown_as_they_come_and_kept_once_its_answer_brings_them() {
        let dir = tempfile::tempdir().expect("a dir");
        let store = open(dir.path(), LogLimits::default());
        let mut exec = logged();
        exec.state = crate::execution::StateHistory::new(State::Running, at(0));
        let id = exec.id;
        store.record(&exec, false, at(0));
        let (kept, follower) = store.follow(id, "tests", "t", at(0));
        assert_eq!(kept.len(), 3);
        let follower = follower.expect("it runs");
        let run = TaskRunId::from_u128(99);
        let live = live_of(&store, &exec, run);
        let (t1, t2, t3) = (at(1), at(2), at(3));
        live.push(Level::Info, t1, "first");
        live.push(Level::Info, t2, "token s3cr3t");
        live.push(Level::Info, t3, "let go by its answer");
        // Shown at once, to the follower and to a reader, masked.
        let shown: Vec<String> = follower.try_iter().map(|l| l.message.clone()).collect();
        assert_eq!(shown, ["first", "token ********", "let go by its answer"]);
        let read = store.lines(id, &LogQuery::default()).expect("kept");
        assert_eq!(read.len(), 6, "three kept, three live");
        // The answer brings two of them (its budget let the third go).
        exec.logs.push(job_line(run, "first", t1));
        exec.logs.push(job_line(run, "token ********", t2));
        store.record(&exec, false, at(4));
        assert!(
            follower.try_iter().next().is_none(),
            "nothing is shown twice"
        );
        let read = store.lines(id, &LogQuery::default()).expect("kept");
        assert_eq!(
            messages(&read)[3..],
            ["first", "token ********"],
            "each once; the line its answer let go went with the live ones"
        );
        // A second attempt's lines whose answer never comes (its timeout):
        // kept when the execution ends.
        let again = TaskRunId::from_u128(100);
        let second = live_of(&store, &exec, again);
        second.push(Level::Error, at(5), "timed out halfway");
        exec.logs.push(line("the end"));
        store.record(&exec, true, at(6));
        let got: Vec<String> = follower.iter().map(|l| l.message.clone()).collect();
        assert_eq!(got, ["timed out halfway", "the end"], "then it closes");
        drop((store, live, second));
        let store = open(dir.path(), LogLimits::default());
        let back = store.lines(id, &LogQuery::default()).expect("read back");
        assert_eq!(
            messages(&back)[3..],
            ["first", "token ********", "the end", "timed out halfway"],
            "kept, and read back after a reopen"
        );
    }

    #[test]
    fn answers_of_two_attempts_in_one_change_bring_their_live_lines_once_each() {
        let store = LogStore::in_memory(LogLimits::default());
        let mut exec = logged();
        exec.state = crate::execution::StateHistory::new(State::Running, at(0));
        let id = exec.id;
        store.record(&exec, false, at(0));
        let (_, follower) = store.follow(id, "tests", "t", at(0));
        let follower = follower.expect("it runs");
        let (a, b) = (TaskRunId::from_u128(1), TaskRunId::from_u128(2));
        // B prints first, then A; their answers come A first, in one change.
        let (t1, t2) = (at(1), at(2));
        live_of(&store, &exec, b).push(Level::Info, t1, "B1");
        live_of(&store, &exec, a).push(Level::Info, t2, "A1");
        assert_eq!(follower.try_iter().count(), 2);
        exec.logs.push(job_line(a, "A1", t2));
        exec.logs.push(job_line(b, "B1", t1));
        store.record(&exec, false, at(3));
        assert!(
            follower.try_iter().next().is_none(),
            "neither is shown twice"
        );
        let read = store.lines(id, &LogQuery::default()).expect("kept");
        assert_eq!(messages(&read)[3..], ["A1", "B1"], "each once");
    }

    #[test]
    fn a_restarted_execution_shows_its_scripts_lines_again() {
        let store = LogStore::in_memory(LogLimits::default());
        let mut exec = logged();
        let id = exec.id;
        store.record(&exec, true, at(0));
        exec.state.transition(State::Restarted, at(1));
        exec.logs = crate::execution::Logs::default();
        store.record(&exec, false, at(1));
        let (_, follower) = store.follow(id, "tests", "t", at(1));
        let follower = follower.expect("it runs again");
        live_of(&store, &exec, TaskRunId::from_u128(3)).push(Level::Info, at(2), "again");
        let shown: Vec<String> = follower.try_iter().map(|l| l.message.clone()).collect();
        assert_eq!(shown, ["again"]);
    }
}
