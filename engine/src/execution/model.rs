//! An execution and its task runs, shaped and named as Kestra's.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::id::{ExecutionId, TaskRunId};
use super::state::{State, StateHistory};

/// One try of a task run.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub(crate) state: StateHistory,
}

impl Attempt {
    pub fn state(&self) -> &StateHistory {
        &self.state
    }
}

/// One run of one task, for one loop value if it sits in a ForEach.
#[derive(Debug, Clone)]
pub struct TaskRun {
    pub(crate) id: TaskRunId,
    pub(crate) task_id: Arc<str>,
    /// Index of the parent task run in the execution's list.
    pub(crate) parent: Option<u32>,
    pub(crate) value: Option<Arc<str>>,
    pub(crate) iteration: Option<u32>,
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) outputs: Option<Arc<Value>>,
    pub(crate) state: StateHistory,
}

impl TaskRun {
    pub fn id(&self) -> TaskRunId {
        self.id
    }

    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// Index of the parent task run in [`Execution::task_runs`].
    pub fn parent(&self) -> Option<usize> {
        self.parent.map(|p| p as usize)
    }

    pub fn iteration(&self) -> Option<u32> {
        self.iteration
    }

    pub fn state(&self) -> State {
        self.state.current()
    }

    pub fn history(&self) -> &StateHistory {
        &self.state
    }

    pub fn outputs(&self) -> Option<&Value> {
        self.outputs.as_deref()
    }

    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }
}

/// An execution's `trigger` as Kestra shows it: which trigger of the flow
/// started it, its type, and the variables flows read as `trigger`.
pub fn execution_trigger(id: &str, type_: &str, variables: Value) -> Value {
    serde_json::json!({"id": id, "type": type_, "variables": variables})
}
/// One run of a flow.
#[derive(Debug, Clone)]
pub struct Execution {
    pub(crate) id: ExecutionId,
    pub(crate) namespace: Arc<str>,
    pub(crate) flow_id: Arc<str>,
    pub(crate) flow_revision: u32,
    pub(crate) inputs: Value,
    pub(crate) outputs: Option<Value>,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) trigger: Option<Value>,
    pub(crate) state: StateHistory,
    pub(crate) task_runs: Vec<TaskRun>,
    /// Why the execution failed, when an expression or a task said so.
    pub(crate) error: Option<String>,
    pub(crate) logs: Logs,
    /// The metrics its tasks recorded (a script's `::{"metrics":...}::`).
    pub(crate) metrics: Metrics,
    /// Where it comes from: its attempt, original, parent, and when it
    /// was to start (Kestra's `metadata`, `originalId`, `parentId`,
    /// `scheduleDate`).
    pub(crate) lineage: Lineage,
    /// Variables its tasks set (`execution.SetVariables`), read as `vars`
    /// over the flow's.
    pub(crate) variables: Option<serde_json::Map<String, Value>>,
    /// Its inputs of type SECRET: their values are masked wherever the
    /// execution is shown.
    pub(crate) secret_inputs: Vec<Arc<str>>,
}

/// An execution's lineage: a restart is an attempt more of the same
/// execution; a replay is a new execution whose parent is the one it
/// replays and whose original is that one's original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// 1, then one more at each restart or replay.
    pub attempt: u32,
    pub original_id: ExecutionId,
    pub parent_id: Option<ExecutionId>,
    /// When its original was created.
    pub original_created: DateTime<Utc>,
    /// When it was to start, if not at its creation.
    pub schedule_date: Option<DateTime<Utc>>,
}

impl Lineage {
    /// Execution `id`'s, created at `at`: its own original, on its first
    /// attempt.
    pub fn first(id: ExecutionId, at: DateTime<Utc>) -> Self {
        Self {
            attempt: 1,
            original_id: id,
            parent_id: None,
            original_created: at,
            schedule_date: None,
        }
    }

    /// The lineage of execution `id` that runs `old`, whose lineage this
    /// is, again: an attempt more of the same original; a replay (a new
    /// id) has `old` for its parent, a restart keeps its own.
    pub(crate) fn again(&self, old: ExecutionId, id: ExecutionId) -> Self {
        Self {
            attempt: self.attempt.saturating_add(1),
            parent_id: if id == old { self.parent_id } else { Some(old) },
            schedule_date: None,
            ..self.clone()
        }
    }
}

/// One log line of an execution.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub date: DateTime<Utc>,
    pub level: crate::flow::Level,
    pub task_id: Option<Arc<str>>,
    /// The task run that logged it, and its attempt then (Kestra's
    /// `attemptNumber`, from 0); none for the execution's own lines.
    pub task_run: Option<(TaskRunId, u32)>,
    pub message: String,
}

/// An execution's log lines, bounded: past the limit, lines are counted and
/// dropped rather than grown without end.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    entries: Vec<LogEntry>,
    dropped: u64,
}

impl Logs {
    /// Lines kept per execution; the WAL keeps the full stream.
    pub const MAX_LINES: usize = 10_000;

    pub(crate) fn push(&mut self, entry: LogEntry) {
        if self.entries.len() < Self::MAX_LINES {
            self.entries.push(entry);
        } else {
            self.dropped += 1;
        }
    }

    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// Keeps the last `lines`, each cut to `bytes` (on a char boundary);
    /// the lines dropped are counted.
    pub(crate) fn keep_last(&mut self, lines: usize, bytes: usize) {
        let cut = self.entries.len().saturating_sub(lines);
        self.entries.drain(..cut);
        self.dropped += cut as u64;
        for entry in &mut self.entries {
            if entry.message.len() > bytes {
                let mut end = bytes;
                while !entry.message.is_char_boundary(end) {
                    end -= 1;
                }
                entry.message.truncate(end);
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Kestra's two kinds of metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Timer,
}

impl MetricKind {
    /// Kestra's `type`: `counter` or `timer`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Timer => "timer",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "counter" => Some(MetricKind::Counter),
            "timer" => Some(MetricKind::Timer),
            _ => None,
        }
    }
}

/// One metric a task run recorded, as Kestra's `MetricEntry` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub date: DateTime<Utc>,
    pub task_id: Arc<str>,
    pub task_run: TaskRunId,
    pub kind: MetricKind,
    pub name: String,
    /// A counter's count; a timer's milliseconds (Kestra's `value`).
    pub value: f64,
    pub tags: Vec<(String, String)>,
}

impl Metric {
    /// Bytes it holds, roughly, for the budgets that bound them.
    pub fn bytes(&self) -> usize {
        self.name.len()
            + self
                .tags
                .iter()
                .map(|(k, v)| k.len() + v.len() + 16)
                .sum::<usize>()
            + std::mem::size_of::<Metric>()
    }
}

/// An execution's metrics, bounded as its lines are.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    entries: Vec<Metric>,
    dropped: u64,
}

impl Metrics {
    /// Metrics kept per execution (per run of it: a restart starts again).
    pub const MAX: usize = 10_000;

    pub(crate) fn push(&mut self, metric: Metric) {
        if self.entries.len() < Self::MAX {
            self.entries.push(metric);
        } else {
            self.dropped += 1;
        }
    }

    pub fn entries(&self) -> &[Metric] {
        &self.entries
    }

    /// Metrics past [`Metrics::MAX`], counted and not kept.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl Execution {
    pub fn id(&self) -> ExecutionId {
        self.id
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn flow_id(&self) -> &str {
        &self.flow_id
    }

    pub fn flow_revision(&self) -> u32 {
        self.flow_revision
    }

    pub fn state(&self) -> State {
        self.state.current()
    }

    pub fn history(&self) -> &StateHistory {
        &self.state
    }

    pub fn inputs(&self) -> &Value {
        &self.inputs
    }

    pub fn outputs(&self) -> Option<&Value> {
        self.outputs.as_ref()
    }

    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    pub fn task_runs(&self) -> &[TaskRun] {
        &self.task_runs
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    pub fn logs(&self) -> &Logs {
        &self.logs
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The task runs of one task, in creation order.
    pub fn task_runs_of<'a>(&'a self, task_id: &'a str) -> impl Iterator<Item = &'a TaskRun> + 'a {
        self.task_runs
            .iter()
            .filter(move |t| &*t.task_id == task_id)
    }

    /// The execution as Kestra's API returns it.
    pub fn to_json(&self, now: DateTime<Utc>) -> Value {
        super::Record::of(self).to_json(now)
    }
}
