//! The task types Peregrine runs, one module per family: each holds its
//! types' properties (read from the flow's YAML through [`Props`]), what a
//! task run of them does when it starts, and their tests.
//!
//! ```text
//! flow::parse  --REGISTRY, TaskType::parse-->  Task { kind: Arc<dyn TaskKind> }
//! executor::run  --TaskKind::start(TaskContext)-->  Started
//!     Done   ended inline (outputs or why it failed)
//!     Frame  a flowable task: run.rs opens a frame over its child lists
//!     Wait   a timer on the shard's wheel (then TaskKind::on_timer)
//!     Work   a Job for the worker pool (its answer comes back as a message)
//!     Subflow  a child execution (its answer comes back, then TaskKind::on_child)
//! ```
//!
//! `executor::run` owns the lifecycle every task shares (task-run states,
//! attempts, retries, errors/finally, allowFailure, roll-up) and knows no
//! task type. Adding a task is its module plus one line in [`REGISTRY`].

mod core;
mod count;
mod execution;
mod flowable;
mod for_each_item;
mod http;
mod items;
mod jsonata;
mod kv;
mod log;
mod purge;
pub(crate) mod script;
mod storage;
mod subflow;
mod trigger;

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

pub(crate) use self::execution::ResumeCall;
#[cfg(test)]
pub(crate) use self::for_each_item::MAX_RUNNING as MAX_BATCHES_RUNNING;
pub(crate) use self::subflow::{ChildAnswer, SubflowCall};
use crate::execution::{ExecutionId, State};
use crate::executor::{RenderContext, into_text, is_truthy};
use crate::expression::Property;
use crate::flow::{Level, Props, Task};

/// A task type Peregrine runs: its names and how its properties are read.
#[derive(Debug)]
pub(crate) struct TaskType {
    /// Canonical, e.g. `io.kestra.plugin.core.debug.Return`.
    pub name: &'static str,
    /// Deprecated names Kestra still accepts (`io.kestra.core.tasks.*`).
    pub aliases: &'static [&'static str],
    /// Flowable tasks schedule children and may have `errors`/`finally`;
    /// their task runs have no attempts.
    pub flowable: bool,
    /// `timeout` is the type's own property (Pause's), not the attempt's.
    pub own_timeout: bool,
    /// Reads the type's own properties; `None` when one is invalid (the
    /// problem is reported through `Props`).
    pub parse: fn(&mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>>,
}

/// Every task type Peregrine runs, one line each.
pub(crate) static REGISTRY: &[&TaskType] = &[
    &self::core::RETURN,
    &self::core::LOG,
    &self::core::ECHO,
    &execution::LABELS,
    &execution::EXIT,
    &execution::RESUME,
    &execution::SET_VARIABLES,
    &execution::UNSET_VARIABLES,
    &execution::ASSERT,
    &count::COUNT,
    &self::core::OUTPUT_VALUES,
    &self::core::FAIL,
    &self::core::SLEEP,
    &jsonata::TRANSFORM_VALUE,
    &http::REQUEST,
    &http::DOWNLOAD,
    &flowable::IF,
    &flowable::SWITCH,
    &flowable::SEQUENTIAL,
    &flowable::PARALLEL,
    &flowable::FOR_EACH,
    &flowable::EACH_SEQUENTIAL,
    &flowable::EACH_PARALLEL,
    &flowable::DAG,
    &flowable::ALLOW_FAILURE,
    &flowable::PAUSE,
    &flowable::WAIT_FOR,
    &flowable::LOOP_UNTIL,
    &script::WORKING_DIRECTORY,
    &subflow::SUBFLOW,
    &for_each_item::FOR_EACH_ITEM,
    &trigger::TOGGLE,
    &kv::SET,
    &kv::GET,
    &kv::DELETE,
    &kv::GET_KEYS,
    &kv::PURGE_KV,
    &log::PURGE_LOGS,
    &log::FETCH,
    &purge::PURGE_EXECUTIONS,
    &script::SHELL_COMMANDS,
    &script::SHELL_SCRIPT,
    &script::PYTHON_SCRIPT,
    &script::PYTHON_COMMANDS,
    &script::NODE_SCRIPT,
    &script::NODE_COMMANDS,
    &script::BASH,
    &storage::WRITE,
    &storage::CONCAT,
    &storage::SPLIT,
    &storage::SIZE,
    &storage::DELETE,
    &storage::REVERSE,
    &storage::PURGE_CURRENT_EXECUTION_FILES,
    &script::LOCAL_FILES,
    &items::DEDUPLICATE_ITEMS,
    &items::FILTER_ITEMS,
];

/// Kestra task types Peregrine knows but does not run yet, with their
/// aliases: a flow using one is refused as "not supported yet" rather than
/// "unknown", and nothing is accepted that would fail only at run time.
pub(crate) static NOT_YET: &[(&str, &[&str])] = &[
    (
        "io.kestra.plugin.core.flow.Template",
        &["io.kestra.core.tasks.flows.Template"],
    ),
    // Kestra's deprecated state store; the KV store replaces it.
    (
        "io.kestra.plugin.core.state.Get",
        &["io.kestra.core.tasks.states.Get"],
    ),
    (
        "io.kestra.plugin.core.state.Set",
        &["io.kestra.core.tasks.states.Set"],
    ),
    (
        "io.kestra.plugin.core.state.Delete",
        &["io.kestra.core.tasks.states.Delete"],
    ),
];

/// What a task does once its task run starts. Implemented by each task's
/// struct, which holds its parsed properties; shared by every execution of
/// the flow revision, so it holds no state of its own. (`Any`: tests read a
/// task's parsed properties by downcasting.)
pub(crate) trait TaskKind: fmt::Debug + Send + Sync + Any {
    /// Starts the task run, and for a runnable each attempt: called again
    /// for a retry (a runnable's `Done(Err)` is retried as its `retry`
    /// says) and for an attempt a restart lost.
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started;

    /// The task lists a flowable task runs, in the order its [`Groups`]
    /// refer to them; for a Dag, its one list.
    fn child_lists(&self) -> Vec<&[Task]> {
        Vec::new()
    }

    /// For a Dag: for each child position, the positions it waits for.
    fn dag_deps(&self) -> Vec<Vec<u32>> {
        Vec::new()
    }

    /// The timer this task asked for ([`Started::Wait`]) fired: how its run
    /// goes on. By default it succeeds with empty outputs.
    fn on_timer(&self, _ctx: &mut TaskContext<'_>) -> Started {
        Started::Done(Ok(None))
    }

    /// A task that paused ([`Started::Pause`]) is resumed with `provided`
    /// inputs: the task run's outputs once checked, or why they are not
    /// valid. Only a Pause can be resumed.
    fn resume_inputs(&self, _provided: &Map<String, Value>) -> Result<Value, String> {
        Err("this task does not pause".to_owned())
    }

    /// How a resumed task run goes on (a Pause runs its `tasks`).
    fn on_resume(&self, _ctx: &mut TaskContext<'_>) -> Started {
        Started::Done(Ok(None))
    }

    /// A flowable task whose frame repeats ([`FramePlan::repeats`]) saw its
    /// tasks all succeed, for the `iterations`-th time, its task run
    /// created at `since` (its outputs already hold the count): whether it
    /// ends or runs them again.
    fn after_frame(
        &self,
        _ctx: &mut TaskContext<'_>,
        _iterations: u32,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> AfterFrame {
        AfterFrame::Done
    }

    /// A flowable task whose start handed work to the worker pool
    /// ([`Started::Work`], a WorkingDirectory making its folder) got its
    /// answer's `outputs`: how its run goes on (its frame opens).
    fn on_work(&self, _ctx: &mut TaskContext<'_>, _outputs: Value) -> Started {
        Started::Done(Err("this task hands no work to the workers".to_owned()))
    }

    /// A flowable task's frame settled in `state`: the work it does before
    /// it ends, if any (a WorkingDirectory stores its output files and
    /// removes its folder). The answer's outputs are the task run's; a
    /// failed answer fails it.
    fn closing(&self, _ctx: &mut TaskContext<'_>, _state: State) -> Option<Box<dyn Job>> {
        None
    }

    /// The tasks under this one work in its folder rather than in one of
    /// their own (a WorkingDirectory's).
    fn shares_folder(&self) -> bool {
        false
    }

    /// A restart or a replay of this task runs all its tasks again rather
    /// than only those that failed (a WorkingDirectory's, a ForEachItem's).
    fn restarts_whole(&self) -> bool {
        false
    }

    /// Batch `batch` (1-based) of a [`Started::Batches`] start, whose item
    /// is `item`: the child execution it starts, rendered now.
    fn batch_call(
        &self,
        _ctx: &mut TaskContext<'_>,
        _batch: u32,
        _item: &str,
    ) -> Result<SubflowCall, String> {
        Err("this task starts no batches".to_owned())
    }

    /// Every batch of a [`Started::Batches`] start answered, `ended` the
    /// count in each state (the run's outputs already say so): how the
    /// task run ends.
    fn after_batches(&self, _ctx: &mut TaskContext<'_>, _ended: &[(State, u32)]) -> Started {
        Started::Done(Ok(None))
    }

    /// The child execution `child` this task asked for
    /// ([`Started::Subflow`]) answered: how its run goes on.
    fn on_child(
        &self,
        _ctx: &mut TaskContext<'_>,
        _child: ExecutionId,
        _answer: &ChildAnswer,
    ) -> Started {
        Started::Done(Err("this task starts no subflow".to_owned()))
    }
}

/// How a task run goes on once started.
#[derive(Debug)]
pub(crate) enum Started {
    /// Ended inline: its outputs (`None` = an empty map), or why it failed.
    Done(Result<Option<Value>, String>),
    /// A flowable task: open a frame over its child lists.
    Frame(FramePlan),
    /// Wait this long on the shard's timer wheel.
    Wait(Duration),
    /// Pause the task run and its execution until resumed
    /// ([`TaskKind::resume_inputs`]) or, when given, this long on the timer
    /// wheel (then [`TaskKind::on_timer`]).
    Pause(Option<Duration>),
    /// Blocking work for the worker pool, its properties rendered.
    Work(Box<dyn Job>),
    /// Start a child execution of another flow, and wait for its answer
    /// (then [`TaskKind::on_child`]).
    Subflow(Box<SubflowCall>),
    /// Ended out of line in this state (a child's, transmitted), with
    /// these outputs; a FAILED one may be retried.
    Ended(State, Value),
    /// End the whole execution in this state (`execution.Exit`).
    Exit(State),
    /// Resume a paused execution, and wait for its answer (then
    /// [`TaskKind::on_child`]: resumed, or refused and why).
    Resume(Box<ResumeCall>),
    /// Count executions across the engine, and wait for the counts (then
    /// [`TaskKind::on_child`], the rows as the answer's outputs).
    Count(Box<crate::executor::Tally>),
    /// Start one child execution per item, some at a time, and wait for
    /// them all (ForEachItem's batches): each child's call from
    /// [`TaskKind::batch_call`], the end from [`TaskKind::after_batches`].
    /// The task run's outputs say how many are in each state meanwhile.
    Batches(Box<Batches>),
}

/// The child executions a task run starts one per item.
#[derive(Debug)]
pub(crate) struct Batches {
    /// One per child, in order, handed to [`TaskKind::batch_call`].
    pub items: Vec<String>,
    /// Children running at once, at most.
    pub limit: usize,
}

/// What a repeating frame does once its tasks all succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AfterFrame {
    /// It ends, as its children's states say.
    Done,
    /// Its task run fails, for this reason.
    Fail(String),
    /// Its tasks run again after this long.
    Again(Duration),
}

/// How a flowable task run's children run: the frame run.rs builds.
#[derive(Debug)]
pub(crate) struct FramePlan {
    pub groups: Groups,
    /// Groups running at once; `usize::MAX` is unlimited.
    pub limit: usize,
    /// A failed child ends the task run WARNING (AllowFailure).
    pub allow_failure: bool,
    /// Groups start when the groups they depend on succeeded
    /// ([`TaskKind::dag_deps`]), not in order.
    pub dag: bool,
    /// The task's `errors` start all together (Kestra: Parallel, Dag,
    /// EachParallel).
    pub parallel_errors: bool,
    /// The task run's outputs, set when the frame opens.
    pub outputs: Value,
    /// Once its tasks all succeeded, the task decides whether they run
    /// again ([`TaskKind::after_frame`]): a loop.
    pub repeats: bool,
}

impl FramePlan {
    /// `groups` one at a time, empty outputs.
    pub(crate) fn new(groups: Groups) -> Self {
        Self {
            groups,
            limit: 1,
            allow_failure: false,
            dag: false,
            parallel_errors: false,
            outputs: Value::Object(Map::new()),
            repeats: false,
        }
    }
}

/// Units of a frame: a group runs its tasks one after another, groups run
/// side by side up to the limit. The `usize` is the position of a list in
/// [`TaskKind::child_lists`].
#[derive(Debug)]
pub(crate) enum Groups {
    /// One group: the whole list.
    Sequence(usize),
    /// One group per task of the list.
    EachTask(usize),
    /// One group per loop value, each running the whole list.
    PerValue(usize, Vec<Arc<str>>),
    /// One group per loop value and task.
    EachTaskPerValue(usize, Vec<Arc<str>>),
}

/// Blocking work with its properties rendered; runs on a worker thread.
pub(crate) trait Job: fmt::Debug + Send {
    /// Runs the job; `within`, when given, is how long it may take (its
    /// attempt's timeout): a job that blocks must give up by then.
    fn run(self: Box<Self>, env: &WorkerEnv, within: Option<Duration>) -> Answer;
}

/// What a job answers: its outputs or why it failed, and the lines it
/// logged as it ran (a script's output), kept with its task run.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub(crate) result: Result<Value, String>,
    pub(crate) logs: Vec<JobLine>,
    /// The metrics it recorded, kept with its task run.
    pub(crate) metrics: Vec<JobMetric>,
    /// The outputs it has though it failed (a script's exit code, vars and
    /// output files, as Kestra keeps them on a failed task run).
    pub(crate) failed_outputs: Option<Value>,
    /// It succeeded with a warning: its task run ends WARNING (a script
    /// that wrote to stderr, with `warningOnStdErr`).
    pub(crate) warning: bool,
}

/// A metric a job recorded, when it recorded it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobMetric {
    pub kind: crate::execution::MetricKind,
    pub name: String,
    /// A counter's count; a timer's milliseconds.
    pub value: f64,
    pub tags: Vec<(String, String)>,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl JobMetric {
    /// Counter `name` at `value`, with `tags`, recorded now.
    pub(crate) fn counter(name: &str, value: f64, tags: &[(&str, String)]) -> Self {
        Self {
            kind: crate::execution::MetricKind::Counter,
            name: name.to_owned(),
            value,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            at: chrono::Utc::now(),
        }
    }
}

/// A line a job logged, when it logged it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobLine {
    pub level: Level,
    pub at: chrono::DateTime<chrono::Utc>,
    pub message: String,
}

/// The lines of one job within a budget of bytes: the first half of the
/// budget's lines and the last half's, with a line in between saying how
/// many were let go (what a script printed first and last is what its
/// reader looks for).
#[derive(Debug)]
pub(crate) struct LogKeeper {
    /// Where each line is shown as it comes, if anywhere.
    live: Option<crate::logs::Live>,
    half: usize,
    head: Vec<JobLine>,
    head_bytes: usize,
    tail: std::collections::VecDeque<JobLine>,
    tail_bytes: usize,
    dropped: u64,
    dropped_bytes: u64,
}

impl LogKeeper {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self::showing(max_bytes, None)
    }

    /// The same, each line shown to `live` as it comes.
    pub(crate) fn showing(max_bytes: usize, live: Option<crate::logs::Live>) -> Self {
        Self {
            live,
            half: max_bytes / 2,
            head: Vec::new(),
            head_bytes: 0,
            tail: std::collections::VecDeque::new(),
            tail_bytes: 0,
            dropped: 0,
            dropped_bytes: 0,
        }
    }

    /// What a line costs against the budget: its text and a fixed
    /// overhead, so that empty lines are not free.
    pub(crate) fn cost(line: &JobLine) -> usize {
        line.message.len() + Self::LINE_OVERHEAD
    }

    /// What a line costs beyond its text (its level, instant, framing).
    const LINE_OVERHEAD: usize = 32;

    pub(crate) fn push(&mut self, mut line: JobLine) {
        let room = self.half.saturating_sub(Self::LINE_OVERHEAD);
        if line.message.len() > room {
            let mut cut = room;
            while !line.message.is_char_boundary(cut) {
                cut -= 1;
            }
            line.message.truncate(cut);
            line.message.push_str(" [cut]");
        }
        if let Some(live) = &self.live {
            live.push(line.level, line.at, &line.message);
        }
        let len = Self::cost(&line);
        if self.tail.is_empty() && self.head_bytes + len <= self.half {
            self.head_bytes += len;
            self.head.push(line);
            return;
        }
        self.tail_bytes += len;
        self.tail.push_back(line);
        while self.tail_bytes > self.half {
            let Some(gone) = self.tail.pop_front() else {
                break;
            };
            self.tail_bytes -= Self::cost(&gone);
            self.dropped += 1;
            self.dropped_bytes += gone.message.len() as u64;
        }
    }

    /// The lines kept, in order.
    pub(crate) fn finish(self) -> Vec<JobLine> {
        let mut lines = self.head;
        if self.dropped > 0 {
            let at = self.tail.front().map_or_else(chrono::Utc::now, |l| l.at);
            lines.push(JobLine {
                level: Level::Warn,
                at,
                message: format!(
                    "{} lines ({} bytes) of this task run's output are not kept: a task run keeps {} bytes of its logs",
                    self.dropped,
                    self.dropped_bytes,
                    self.half * 2
                ),
            });
        }
        lines.extend(self.tail);
        lines
    }
}

impl From<Result<Value, String>> for Answer {
    fn from(result: Result<Value, String>) -> Self {
        Self {
            result,
            logs: Vec::new(),
            metrics: Vec::new(),
            failed_outputs: None,
            warning: false,
        }
    }
}

/// Task property `key`, a static list of names each `parse` reads (Kestra's
/// `List<Level>`, `List<State.Type>`); empty when absent, and a problem
/// saying it must be a list of `what` when a name is not one.
pub(crate) fn name_list<T>(
    p: &mut crate::flow::Props<'_, '_>,
    key: &str,
    parse: fn(&str) -> Option<T>,
    what: &str,
) -> Vec<T> {
    let Some((value, at)) = p.json(key) else {
        return Vec::new();
    };
    let parsed = value
        .as_array()
        .and_then(|items| items.iter().map(|i| i.as_str().and_then(parse)).collect());
    parsed.unwrap_or_else(|| {
        p.problem(&at, format!("`{key}` must be a list of {what}"));
        Vec::new()
    })
}

/// A task's start that hands `built` to the worker pool, or fails with
/// why it could not be built (its properties did not render).
pub(crate) fn work<J: Job + 'static>(built: Result<J, String>) -> Started {
    match built {
        Ok(job) => Started::Work(Box::new(job)),
        Err(e) => Started::Done(Err(e)),
    }
}

/// What every worker thread shares with the jobs it runs.
#[derive(Debug, Clone)]
pub(crate) struct WorkerEnv {
    /// Pooled connections for HTTP calls.
    pub http: ureq::Agent,
    /// The server's triggers, for `trigger.Toggle` (none: an engine on its
    /// own).
    pub triggers: Option<Arc<dyn crate::executor::TriggerSwitch>>,
    /// The KV store the `kv.*` tasks read and write (none: an engine on
    /// its own).
    pub kv: Option<crate::kv::KvStore>,
    /// The log store `log.PurgeLogs` deletes from (none: an engine that
    /// keeps no logs).
    pub logs: Option<crate::logs::LogStore>,
    /// The metric store `execution.PurgeExecutions` deletes from (none:
    /// an engine that keeps no metrics).
    pub metrics: Option<crate::metric_store::MetricStore>,
    /// The engine's executions, for `execution.PurgeExecutions` (none: the
    /// one-shot driver).
    pub holdings: Option<Arc<crate::executor::Holdings>>,
    /// The internal storage and where scripts work (none: an engine
    /// without one).
    pub files: Option<crate::storage::Files>,
    /// The processes scripts may run at once, across the workers.
    pub processes: Arc<script::Permits>,
    /// Stops the process the job running with this env started, from
    /// another thread (its attempt was killed or timed out).
    pub cancel: Arc<script::Cancel>,
}

impl WorkerEnv {
    pub(crate) fn new(
        triggers: Option<Arc<dyn crate::executor::TriggerSwitch>>,
        variables: &crate::executor::ConfigVariables,
        logs: Option<crate::logs::LogStore>,
        max_processes: usize,
    ) -> Self {
        Self {
            http: http::agent(),
            triggers,
            kv: variables.kv().cloned(),
            logs,
            metrics: None,
            holdings: None,
            files: variables.files().cloned(),
            processes: script::Permits::new(max_processes),
            cancel: Arc::default(),
        }
    }

    /// The same, able to purge the engine's executions and their metrics.
    pub(crate) fn holding(
        self,
        holdings: Arc<crate::executor::Holdings>,
        metrics: Option<crate::metric_store::MetricStore>,
    ) -> Self {
        Self {
            holdings: Some(holdings),
            metrics,
            ..self
        }
    }

    /// The same surroundings with an HTTP agent of its own (a worker's
    /// first, or the one after an interrupt spent the last).
    pub(crate) fn renewed(&self) -> Self {
        Self {
            http: http::agent(),
            cancel: Arc::default(),
            ..self.clone()
        }
    }

    /// Interrupts the job running with this env, from another thread: its
    /// HTTP calls fail at once, its process group is killed. The env is
    /// spent afterwards (new calls on it fail too).
    pub(crate) fn interrupt(&self) {
        self.http.clone().shutdown();
        self.cancel.interrupt();
    }
}

/// Which task run of which execution a task's work is for: where its files
/// go in the internal storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    pub namespace: String,
    pub flow_id: String,
    pub execution: ExecutionId,
    pub task_id: String,
    /// Kestra's task run id.
    pub task_run: String,
    /// 1-based.
    pub attempt: u32,
}

impl Place {
    /// File `name` of this task run in the internal storage.
    pub(crate) fn file(&self, name: &str) -> Result<crate::storage::Uri, String> {
        crate::storage::Uri::task_file(
            &self.namespace,
            &self.flow_id,
            self.execution,
            &self.task_id,
            &self.task_run,
            name,
        )
        .map_err(|e| e.to_string())
    }
}

/// What a task sees while it starts: its execution, read only, through the
/// template context of its task run (where `now()` is the step's instant,
/// so a replay renders the same), and a log that run.rs appends to the
/// execution once `start` returns.
pub(crate) struct TaskContext<'a> {
    scope: RenderContext<'a>,
    said: Said,
}

/// What a task asked of its execution besides its outcome, applied once it
/// answers (the render context only reads the execution).
#[derive(Debug, Default)]
pub(crate) struct Said {
    /// Lines logged, in order.
    pub logs: Vec<(Level, String)>,
    /// Labels to set on the execution, by key, in order.
    pub labels: Vec<(String, String)>,
    /// The execution's variables, as they are to be (SetVariables).
    pub variables: Option<Map<String, Value>>,
}

impl<'a> TaskContext<'a> {
    pub(crate) fn new(scope: RenderContext<'a>) -> Self {
        Self {
            scope,
            said: Said::default(),
        }
    }

    /// What the task logged and asked for.
    pub(crate) fn into_said(self) -> Said {
        self.said
    }

    pub(crate) fn render(&self, property: &Property) -> Result<Value, String> {
        property.render(&self.scope).map_err(|e| e.to_string())
    }

    /// The instant of the step: what `now()` renders.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        use crate::expression::Context as _;
        self.scope.now()
    }

    /// Rendered with every template as text (see
    /// [`Property::render_texts`]).
    pub(crate) fn render_texts(&self, property: &Property) -> Result<Value, String> {
        property
            .render_texts(&self.scope)
            .map_err(|e| e.to_string())
    }

    /// What one evaluation may spend.
    pub(crate) fn budget(&self) -> crate::expression::Budget {
        use crate::expression::Context as _;
        self.scope.budget()
    }

    /// Rendered as the text Kestra passes a `String` property.
    pub(crate) fn render_text(&self, property: &Property) -> Result<String, String> {
        self.render(property).map(into_text)
    }

    /// Rendered as text, with one more variable, `name` (Kestra's
    /// `render(expression, Map.of(name, value))`).
    pub(crate) fn render_text_with(
        &self,
        property: &Property,
        name: &str,
        value: &Value,
    ) -> Result<String, String> {
        let scope = crate::expression::With::new(&self.scope, name, value);
        property
            .render(&scope)
            .map(into_text)
            .map_err(|e| e.to_string())
    }

    /// Rendered and read with Kestra's truthiness.
    pub(crate) fn render_truthy(&self, property: &Property) -> Result<bool, String> {
        self.render(property).map(|v| is_truthy(&v))
    }

    /// Rendered as an ISO-8601 date-time (property `what`, for the
    /// message).
    pub(crate) fn render_date(
        &self,
        property: &Property,
        what: &str,
    ) -> Result<chrono::DateTime<chrono::Utc>, String> {
        let text = self.render_text(property)?;
        chrono::DateTime::parse_from_rfc3339(text.trim())
            .map(|d| d.with_timezone(&chrono::Utc))
            .map_err(|e| format!("`{what}` `{text}` is not an ISO-8601 date-time: {e}"))
    }

    /// Rendered as an ISO-8601 duration.
    pub(crate) fn render_duration(&self, property: &Property) -> Result<Duration, String> {
        let text = self.render_text(property)?;
        crate::flow::parse_duration(&text)
            .ok_or_else(|| format!("`{text}` is not an ISO-8601 duration (e.g. PT1S)"))
    }

    pub(crate) fn log(&mut self, level: Level, message: String) {
        self.said.logs.push((level, message));
    }

    /// Sets label `key` on the execution once the task answers.
    pub(crate) fn set_label(&mut self, key: String, value: String) {
        self.said.labels.push((key, value));
    }

    /// The namespace and id of the execution's flow.
    pub(crate) fn flow_name(&self) -> (String, String) {
        self.scope.flow_name()
    }

    /// Which task run of which execution is starting.
    pub(crate) fn place(&self) -> Place {
        self.scope
            .place()
            .expect("a task context renders for a task run")
    }

    /// Where this attempt's job shows its lines as it prints them.
    pub(crate) fn live_target(&self) -> crate::logs::LiveTarget {
        self.scope
            .live_target()
            .expect("a task context renders for a task run")
    }

    /// The task run id of the nearest task above this one whose folder the
    /// tasks under it share (a WorkingDirectory), if any.
    pub(crate) fn shared_folder(&self) -> Option<String> {
        self.scope.shared_folder()
    }

    /// This task run's outputs as they stand.
    pub(crate) fn own_outputs(&self) -> Option<Arc<Value>> {
        self.scope.own_outputs()
    }

    /// The outputs of the last task run of `task_id` beside this one.
    pub(crate) fn sibling_outputs(&self, task_id: &str) -> Option<Arc<Value>> {
        self.scope.sibling_outputs(task_id)
    }

    /// The `count` child executions the last task run of `task_id` beside
    /// this one started as batches, in order.
    pub(crate) fn sibling_batches(&self, task_id: &str, count: u32) -> Vec<ExecutionId> {
        self.scope.sibling_batches(task_id, count)
    }

    /// `text` as a file of the internal storage this execution may read
    /// (property `what`, for the message).
    pub(crate) fn readable_uri(
        &self,
        text: &str,
        what: &str,
    ) -> Result<crate::storage::Uri, String> {
        let uri = crate::storage::Uri::parse(text.trim()).map_err(|e| format!("`{what}`: {e}"))?;
        if !self.scope.may_read(&uri) {
            return Err(format!(
                "Unable to read the file '{uri}' as it didn't belong to the current execution"
            ));
        }
        Ok(uri)
    }

    /// What the execution may spend.
    pub(crate) fn limits(&self) -> crate::executor::Limits {
        self.scope.limits()
    }

    /// The engine's internal storage and where scripts work, if it has them.
    pub(crate) fn files(&self) -> Option<&crate::storage::Files> {
        self.scope.variables().files()
    }

    /// Rendered with the template variables `vars` on top (a script's
    /// `workingDir` and `outputDir`).
    pub(crate) fn render_with_vars(
        &self,
        property: &Property,
        vars: &[(&str, &Value)],
    ) -> Result<Value, String> {
        fn nested(
            scope: &dyn crate::expression::Context,
            vars: &[(&str, &Value)],
            property: &Property,
        ) -> Result<Value, String> {
            match vars.split_first() {
                None => property.render(scope).map_err(|e| e.to_string()),
                Some(((name, value), rest)) => {
                    let with = crate::expression::With::new(scope, name, value);
                    nested(&with, rest, property)
                }
            }
        }
        nested(&self.scope, vars, property)
    }

    /// The variables this task run's templates see, taken whole as they
    /// are now (for templates rendered later, off the shard: the items
    /// tasks'); the functions the context provides are not in it.
    pub(crate) fn variables_snapshot(&self) -> Value {
        use crate::expression::{Context as _, Scope};
        const ROOTS: &[&str] = &[
            "inputs",
            "outputs",
            "vars",
            "flow",
            "trigger",
            "schedule",
            "execution",
            "labels",
            "envs",
            "globals",
            "task",
            "taskrun",
            "parents",
            "parent",
        ];
        let mut map = Map::new();
        for name in ROOTS {
            let value = match self.scope.root(name) {
                None => continue,
                Some(Scope::Json(v)) => v.clone(),
                Some(Scope::Owned(v)) => v,
                Some(Scope::Lazy(lazy)) => lazy.to_json(),
            };
            map.insert((*name).to_owned(), value);
        }
        Value::Object(map)
    }

    /// The variables the execution's tasks set so far, if any.
    pub(crate) fn execution_variables(&self) -> Option<&Map<String, Value>> {
        self.scope.execution_variables()
    }

    /// The execution's variables are `variables` once the task answers.
    pub(crate) fn set_variables(&mut self, variables: Map<String, Value>) {
        self.said.variables = Some(variables);
    }
}

impl fmt::Debug for TaskContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("said", &self.said)
            .finish_non_exhaustive()
    }
}

/// `0` means unlimited, as Kestra's `concurrent` and `concurrencyLimit` do.
fn unlimited_if_zero(n: u32) -> usize {
    if n == 0 { usize::MAX } else { n as usize }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Small flows for the task modules' tests: parse them, read a task's
    //! parsed properties, run them to their end.

    use std::any::Any;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use serde_json::Map;

    use crate::execution::{Execution, TaskRun};
    use crate::executor::{FlowRevision, Limits, NewExecution, run_to_end, run_to_end_limited};
    use crate::flow::{Flow, Task};

    /// `tasks` (YAML, indented as a list under `tasks:`) in a flow.
    pub(crate) fn flow(tasks: &str) -> Flow {
        let yaml = format!("id: t\nnamespace: tests\ntasks:\n{tasks}");
        Flow::parse(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    /// The problems of a flow made of `tasks`, as `path at line:column: message`.
    pub(crate) fn problems(tasks: &str) -> Vec<String> {
        let yaml = format!("id: t\nnamespace: tests\ntasks:\n{tasks}");
        match Flow::parse(&yaml) {
            Ok(_) => Vec::new(),
            Err(crate::flow::Error::Invalid(problems)) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// A flow of Kestra's own test corpus (`shared/conformance/kestra/flows`
    /// next to the repository, or under `PEREGRINE_CONFORMANCE`).
    pub(crate) fn corpus(name: &str) -> Flow {
        let dir = match std::env::var("PEREGRINE_CONFORMANCE") {
            Ok(dir) => PathBuf::from(dir).join("kestra/flows"),
            Err(_) => Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .map(|a| a.join("shared/conformance/kestra/flows"))
                .find(|d| d.is_dir())
                .expect("the conformance corpus above the crate"),
        };
        let source = std::fs::read_to_string(dir.join(name)).expect("a corpus flow");
        // switch.yaml's Schedule trigger is refused until schedules fire;
        // these tests are about its tasks (its last block goes).
        let source = match source.split_once("\ntriggers:\n") {
            Some((tasks, _)) if name == "switch.yaml" => tasks.to_owned(),
            _ => source,
        };
        Flow::parse(&source).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Task `id`'s parsed properties, as the struct its type parses into.
    pub(crate) fn kind<'f, T: Any>(flow: &'f Flow, id: &str) -> &'f T {
        kind_of(flow.find_task(id).expect("a task with this id"))
    }

    /// A task's parsed properties, as the struct its type parses into.
    pub(crate) fn kind_of<T: Any>(task: &Task) -> &T {
        let any: &dyn Any = &*task.kind;
        any.downcast_ref::<T>()
            .unwrap_or_else(|| panic!("{} is a {}", task.id, task.type_name))
    }

    /// Runs a flow made of `tasks` to its end.
    pub(crate) fn run(tasks: &str) -> Execution {
        let revision = Arc::new(FlowRevision::new(Arc::new(flow(tasks))));
        run_to_end(NewExecution::new(revision, Map::new()))
    }

    /// Like [`run`], with the engine's `variables` (and its KV store).
    pub(crate) fn run_with_variables(
        tasks: &str,
        variables: crate::executor::ConfigVariables,
    ) -> Execution {
        let revision = Arc::new(FlowRevision::new(Arc::new(flow(tasks))));
        crate::executor::run_to_end_with_variables(
            NewExecution::new(revision, Map::new()),
            variables,
        )
    }

    /// Like [`run`], under `limits`.
    pub(crate) fn run_limited(tasks: &str, limits: Limits) -> Execution {
        let revision = Arc::new(FlowRevision::new(Arc::new(flow(tasks))));
        run_to_end_limited(NewExecution::new(revision, Map::new()), limits)
    }

    /// An engine's surroundings with an internal storage (1MiB files at
    /// most) and a work root under `dir`, and those files.
    pub(crate) fn surroundings(
        dir: &Path,
    ) -> (crate::executor::ConfigVariables, crate::storage::Files) {
        let storage = crate::storage::LocalStorage::open(dir.join("storage")).expect("a storage");
        let files = crate::storage::Files::new(storage, dir.join("work"), 1 << 20);
        (
            crate::executor::ConfigVariables::default().with_files(files.clone()),
            files,
        )
    }

    /// The text (at most 64KiB) of the stored file the JSON text `uri` names.
    pub(crate) fn stored(files: &crate::storage::Files, uri: &serde_json::Value) -> String {
        let uri = crate::storage::Uri::parse(uri.as_str().expect("a URI")).expect("a valid URI");
        crate::storage::read_to_string(files.storage(), &uri, 1 << 16).expect("a stored file")
    }

    /// The only task run of `id`.
    pub(crate) fn only<'e>(exec: &'e Execution, id: &'e str) -> &'e TaskRun {
        let runs: Vec<_> = exec.task_runs_of(id).collect();
        assert_eq!(runs.len(), 1, "task runs of {id}");
        runs[0]
    }

    /// The messages `id` logged, with their levels.
    pub(crate) fn logs_of(exec: &Execution, id: &str) -> Vec<(crate::flow::Level, String)> {
        exec.logs()
            .entries()
            .iter()
            .filter(|l| l.task_id.as_deref() == Some(id))
            .map(|l| (l.level, l.message.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_name_and_alias_is_distinct() {
        let mut seen = HashSet::new();
        let names = REGISTRY
            .iter()
            .flat_map(|t| std::iter::once(t.name).chain(t.aliases.iter().copied()))
            .chain(
                NOT_YET
                    .iter()
                    .flat_map(|(n, a)| std::iter::once(*n).chain(a.iter().copied())),
            );
        for name in names {
            assert!(seen.insert(name.to_ascii_lowercase()), "{name} twice");
        }
    }

    #[test]
    fn flowable_types_are_the_ones_with_children() {
        let flowable: Vec<&str> = REGISTRY
            .iter()
            .filter(|t| t.flowable)
            .map(|t| t.name.rsplit('.').next().unwrap_or_default())
            .collect();
        assert_eq!(
            flowable,
            [
                "If",
                "Switch",
                "Sequential",
                "Parallel",
                "ForEach",
                "EachSequential",
                "EachParallel",
                "Dag",
                "AllowFailure",
                "Pause",
                "WaitFor",
                "LoopUntil",
                "WorkingDirectory",
                "ForEachItem"
            ]
        );
    }
}
