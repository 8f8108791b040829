//! One execution's state machine: which task runs next, inline resolution of
//! flowable and cheap tasks, and how states roll up to the execution.
//!
//! A flowable task run owns a [`Frame`]: its children grouped into units that
//! run one after another inside a group (a sequence of tasks) and side by side
//! across groups, up to a limit, or as their dependencies allow. Its task
//! says how ([`FramePlan`]): one group for the whole list, one per task, one
//! per loop value... After the main phase, `errors` run if it failed, then
//! `finally`. The execution itself is the root frame.
//!
//! Work is event-driven: a child that ends advances only its own group and,
//! when that frame completes, its parent. Nothing rescans the task-run list,
//! so a loop of thousands of runs costs O(1) per step.
//!
//! What a task does is its own business ([`crate::tasks`]): this file calls
//! its `start` and acts on the [`Started`] it answers, the same way for
//! every type, and knows none by name.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use super::config_vars::ConfigVariables;
use super::courier::{Ask, AskOrder, ParentLink, SpawnOrder, child_id};
use super::gate::Verdict;
use super::guide::{Fate, Guide};
use super::limits::{self, Limits};
use super::outputs::OutputIndex;
use super::plan::{FlowRevision, ListId, TaskIdx};
use super::reads::Reads;
use super::render::{RenderContext, is_truthy};
use super::worker::WorkOrder;
use crate::execution::labels;
use crate::execution::{
    Attempt, Execution, ExecutionId, Id, Lineage, LogEntry, Logs, Metric, Metrics, Record, State,
    StateHistory, TaskRun, TaskRunId,
};
use crate::expression::Property;
use crate::flow::{Concurrency, InputType, Level, RetryPolicy};
use crate::journal::KvRead;
use crate::tasks::{
    AfterFrame, Answer, Batches, ChildAnswer, FramePlan, Groups, Started, SubflowCall, TaskContext,
    TaskKind,
};

/// Where a task run sits, and what it owns.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub task: TaskIdx,
    frame: u32,
    group: u32,
    /// The frame's phase epoch when this run was created: a run from an
    /// earlier phase (a sibling still running side by side when `errors`
    /// started) no longer drives its frame.
    epoch: u32,
    /// Loop values from the outermost loop in, this run's own last:
    /// the key path of its outputs.
    chain: Arc<[Arc<str>]>,
    /// What the running attempt waits on, as its last start answered.
    waits: Waits,
}

/// What a task run's running attempt waits on: decided by what its task
/// answered, so a retry, a replay and a restart need no type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waits {
    Nothing,
    Timer,
    Worker,
    /// Its child execution (a Subflow).
    Child,
    /// The answer of another execution it asked something (a Resume).
    Answer,
    /// Its execution's retry, a new execution, to be created
    /// (`behavior: CREATE_NEW_EXECUTION`).
    Retried,
    /// Its batches' child executions ([`Started::Batches`], its `Fan`).
    Batches,
}

/// The child executions of a task run that started batches
/// ([`Started::Batches`]): one per item, `limit` at a time.
#[derive(Debug)]
struct Fan {
    attempt: u32,
    items: Vec<String>,
    /// Batches started so far: batch `n` (1-based) is `items[n - 1]`.
    started: u32,
    /// Those still waited for.
    running: std::collections::BTreeSet<u32>,
    limit: usize,
    /// How many ended in each state, in the order states were first seen.
    ended: Vec<(State, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Main,
    Errors,
    Finally,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    Plain,
    /// Groups start once the groups they depend on succeeded.
    Dependencies,
    /// A failure ends the frame WARNING.
    FailureAllowed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupStatus {
    Pending,
    Active,
    Done { ok: bool },
}

#[derive(Debug, Clone)]
struct Group {
    list: ListId,
    pos: u32,
    end: u32,
    value: Option<Arc<str>>,
    iteration: Option<u32>,
    status: GroupStatus,
}

#[derive(Debug, Default, Clone, Copy)]
struct Outcome {
    failed: bool,
    warning: bool,
    killed: bool,
}

impl Outcome {
    fn add(&mut self, state: State) {
        match state {
            State::Failed => self.failed = true,
            State::Warning => self.warning = true,
            State::Killed => self.killed = true,
            _ => {}
        }
    }
}

#[derive(Debug)]
struct Frame {
    /// The flowable task run; `None` for the execution's root.
    owner: Option<u32>,
    kind: FrameKind,
    phase: Phase,
    groups: Vec<Group>,
    /// Next group to start, for every kind but `Dependencies`.
    cursor: usize,
    active: usize,
    limit: usize,
    outcome: Outcome,
    /// Failure seen in the current phase: start nothing new in it.
    stopped: bool,
    /// Bumped at each phase change.
    epoch: u32,
    /// The frame has its final state; late children only record their end.
    finished: bool,
    /// `errors` start all together (see [`FramePlan::parallel_errors`]).
    parallel_errors: bool,
    errors: ListId,
    finally: ListId,
    dag_deps: Vec<Vec<u32>>,
    /// A loop's groups as they start, to run again
    /// ([`FramePlan::repeats`]); empty for any other frame.
    again: Vec<Group>,
    /// A loop's iterations whose tasks all succeeded.
    iterations: u32,
    /// A loop waits for its next iteration (on its owner's timer).
    between: bool,
    /// The frame settled in this state and its owner's closing work
    /// ([`TaskKind::closing`]) runs: the owner ends when it answers.
    closing: Option<State>,
}

/// Why an execution cannot be resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresumable {
    /// No task run of it is paused; the execution is in this state.
    NotPaused(State),
    /// The inputs do not fit the paused task's `onResume`.
    Invalid(String),
}

/// A timer a run asks the shard for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerRequest {
    pub deadline_ms: i64,
    pub due: Due,
}

/// The `task_run` of a timer that starts a scheduled execution.
pub(crate) const BEGIN: u32 = u32::MAX;

/// What a timer is due for: task run `task_run` as it stood at attempt
/// `attempt` (its count of attempts when the timer was asked for). A timer
/// of an attempt that a retry or a restart has since replaced is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    pub task_run: u32,
    pub attempt: u32,
    /// The attempt's `timeout`, rather than a step of its task (a Sleep's
    /// end, a retry's delay).
    pub timeout: bool,
}

/// A running execution, owned by one shard.
#[derive(Debug)]
pub(crate) struct Run {
    exec: Execution,
    rev: Arc<FlowRevision>,
    outputs: OutputIndex,
    slots: Vec<Slot>,
    frames: Vec<Frame>,
    /// Timers requested since the shard last drained them.
    timers: Vec<TimerRequest>,
    /// Blocking work requested since the shard last drained it.
    work: Vec<WorkOrder>,
    /// Child executions requested since the shard last drained them.
    spawns: Vec<SpawnOrder>,
    /// Child executions to kill, since the shard last drained them.
    kills: Vec<ExecutionId>,
    /// Work in flight to interrupt (task run, attempt): its attempt was
    /// killed or timed out. Since the shard last drained them.
    interrupts: Vec<(u32, u32)>,
    /// Questions about other executions (a Resume, a Count), since the
    /// shard last drained them.
    asks: Vec<AskOrder>,
    /// The task run this execution is the subflow of, if any.
    parent: Option<ParentLink>,
    /// The instant of the step being handled: what `now()` renders. Every
    /// entry point sets it, so a replay of the same steps renders the same.
    instant: DateTime<Utc>,
    limits: Limits,
    /// What a restart or a replay keeps of the execution it starts from.
    guide: Option<Box<Guide>>,
    /// How many times the execution was restarted: task runs created since
    /// the last restart derive their ids (and their children's) from it.
    generation: u32,
    /// Kestra's `envs` and `globals`, from the engine's configuration.
    variables: ConfigVariables,
    /// Its flow's concurrency gate let it run (always, for a flow with no
    /// limit; see [`super::gate`]).
    admitted: bool,
    /// What it has to tell the gate since the shard last drained it.
    gate_ask: Option<GateAsk>,
    /// `vars` once its tasks set variables: the flow's under them.
    vars: Option<Value>,
    /// What this step's templates read of the KV store (`kv()`, behind a
    /// cell: templates render against a shared run).
    reads: RefCell<Reads>,
    /// The values of its SECRET inputs: masked, as the secrets' are, in
    /// every log line, output and label it keeps.
    masked: Vec<String>,
    /// The task runs waiting on batches of child executions, by index.
    fans: std::collections::BTreeMap<u32, Fan>,
}

/// What a run of a flow with a concurrency limit tells the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GateAsk {
    /// It asks to run.
    Admit,
    /// It runs already (a restart, or a recovery).
    Hold,
}

/// What starting an execution needs.
pub struct NewExecution {
    pub id: ExecutionId,
    pub flow: Arc<FlowRevision>,
    /// Validated inputs.
    pub inputs: Map<String, Value>,
    /// Labels given when it was started; the engine adds the flow's and
    /// `system.correlationId` (see [`Run::new`]).
    pub labels: Vec<(String, String)>,
    /// The trigger that started it, as Kestra shows it on the execution
    /// (`{id, type, variables}`, see [`crate::execution::execution_trigger`]);
    /// flows see its `variables` as `trigger`.
    pub trigger: Option<Value>,
    /// The task run this is the subflow of (see [`super::courier`]).
    pub(crate) parent: Option<ParentLink>,
    /// When it starts, if later than its creation: it waits CREATED until
    /// then (a subflow's `scheduleDate`).
    pub schedule_date: Option<DateTime<Utc>>,
    /// The ended execution this one replays, if it is a replay.
    pub(crate) replays: Option<Replays>,
    /// Its lineage when it is not its own original (a retry's new
    /// execution).
    pub(crate) lineage: Option<Lineage>,
}

/// What a replay starts from: an ended execution's final record, and its
/// task run to replay from (`None`: its failed ones are restarted).
#[derive(Debug, Clone)]
pub(crate) struct Replays {
    pub record: Record,
    pub from: Option<u32>,
}

impl Replays {
    /// The guide of a run that replays this, on flow revision `rev`.
    pub fn guide(&self, rev: &FlowRevision) -> Result<Guide, String> {
        let old = self.record.thaw();
        match self.from {
            Some(from) => Guide::replay(old, rev, from),
            None => Guide::restart(old, rev, false),
        }
    }
}

/// What a run asked of the world since the shard last drained it.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    pub timers: Vec<TimerRequest>,
    pub work: Vec<WorkOrder>,
    pub spawns: Vec<SpawnOrder>,
    pub kills: Vec<ExecutionId>,
    pub interrupts: Vec<(u32, u32)>,
    pub asks: Vec<AskOrder>,
    pub gate: Option<GateAsk>,
}

impl std::fmt::Debug for NewExecution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewExecution")
            .field("id", &self.id)
            .field("flow", &self.flow.flow_id)
            .field("inputs", &self.inputs)
            .field("labels", &self.labels)
            .field("trigger", &self.trigger)
            .field("parent", &self.parent)
            .field("schedule_date", &self.schedule_date)
            .field("replays", &self.replays.as_ref().map(|r| r.record.id()))
            .finish()
    }
}

impl NewExecution {
    pub fn new(flow: Arc<FlowRevision>, inputs: Map<String, Value>) -> Self {
        Self {
            id: Id::generate(),
            flow,
            inputs,
            labels: Vec::new(),
            trigger: None,
            parent: None,
            schedule_date: None,
            replays: None,
            lineage: None,
        }
    }
}

impl Run {
    pub fn execution(&self) -> &Execution {
        &self.exec
    }

    pub fn revision(&self) -> &FlowRevision {
        &self.rev
    }

    /// Task outputs by task id and loop values, read in place by templates.
    pub fn outputs(&self) -> &OutputIndex {
        &self.outputs
    }

    /// The `task` variable of task run `tr`.
    pub fn task_json(&self, tr: u32) -> Option<&Value> {
        let slot = self.slots.get(tr as usize)?;
        Some(&self.rev.node(slot.task).task_json)
    }

    /// The instant of the step being handled.
    pub fn instant(&self) -> DateTime<Utc> {
        self.instant
    }

    /// What this execution may spend.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// What templates read as `envs` and `globals`.
    pub fn variables(&self) -> &ConfigVariables {
        &self.variables
    }

    /// Kestra's `kv(key, namespace, errorOnMissing)` with `args`, read once
    /// per step (see [`super::reads`]).
    pub fn kv_call(&self, args: &[Value]) -> Result<Value, String> {
        let call = super::reads::call(args)?;
        self.reads.borrow_mut().read(
            &call,
            &self.exec.namespace,
            self.variables.kv(),
            self.instant,
            self.limits.max_step_reads_bytes,
        )
    }

    /// Kestra's `read(path)`, `fileSize(path)`, `fileExists(path)` and
    /// `isFileEmpty(path)`: a file of the internal storage this execution
    /// may read (its own, a task's file of another execution, or one of
    /// the execution that triggered it), answered once per step and
    /// journaled (see [`super::reads`]).
    pub fn file_call(&self, ask: super::reads::FileAsk, args: &[Value]) -> Result<Value, String> {
        let name = ask.name();
        let path = match args.first() {
            Some(Value::String(path)) => path,
            _ => {
                return Err(format!(
                    "The '{name}' function expects an argument 'path' that is an internal storage URI."
                ));
            }
        };
        // A path that is not a URI is a file of the flow's namespace.
        let uri = if path.starts_with(crate::storage::SCHEME) {
            crate::storage::Uri::parse(path)
        } else {
            crate::storage::Uri::namespace_file(&self.exec.namespace, path)
        }
        .map_err(|e| e.to_string())?;
        if !self.may_read(&uri) {
            return Err(format!(
                "Unable to read the file '{uri}' as it didn't belong to the current execution"
            ));
        }
        self.reads.borrow_mut().file(
            ask,
            &uri,
            self.variables.files(),
            self.limits.max_step_reads_bytes,
        )
    }

    /// Whether this execution may read `uri`: its own files, another
    /// execution's task files (Kestra's open-source edition allows every
    /// namespace), and the files of the execution that triggered it (a
    /// Subflow's parent, a Flow trigger's upstream).
    pub(crate) fn may_read(&self, uri: &crate::storage::Uri) -> bool {
        if uri.is_of_execution(self.exec.id) || uri.namespace_path(&self.exec.namespace).is_some() {
            return true;
        }
        let path = uri.path();
        if let Some((_, rest)) = path.split_once("/executions/") {
            let mut parts = rest.split('/');
            let (_, kind) = (parts.next(), parts.next());
            if kind == Some("tasks") {
                return true;
            }
        }
        let upstream = self
            .exec
            .trigger
            .as_ref()
            .and_then(|t| t.get("variables"))
            .and_then(|v| v.get("executionId"))
            .and_then(Value::as_str);
        upstream.is_some_and(|id| path.contains(&format!("/executions/{id}/")))
            || self
                .exec
                .lineage
                .parent_id
                .is_some_and(|id| path.contains(&format!("/executions/{id}/")))
    }

    /// What the step just handled read of the KV store, to journal.
    pub(crate) fn take_reads(&mut self) -> Vec<KvRead> {
        self.reads.get_mut().take()
    }

    /// The step about to be replayed read `reads`.
    pub(crate) fn give_reads(&mut self, reads: Vec<KvRead>) {
        self.reads.get_mut().give(reads);
    }

    /// Forgets the work asked for so far (a replay rebuilds work that was
    /// dispatched before a restart; what to run again is `waiting_work`).
    pub fn discard_work(&mut self) {
        self.work.clear();
    }

    /// What was asked for since the last call.
    pub fn take_requests(&mut self) -> Requests {
        Requests {
            timers: std::mem::take(&mut self.timers),
            work: std::mem::take(&mut self.work),
            spawns: std::mem::take(&mut self.spawns),
            kills: std::mem::take(&mut self.kills),
            interrupts: std::mem::take(&mut self.interrupts),
            asks: std::mem::take(&mut self.asks),
            gate: self.gate_ask.take(),
        }
    }

    /// Its flow's `concurrency`, if it has one.
    pub fn concurrency(&self) -> Option<Concurrency> {
        self.rev.flow().concurrency
    }

    /// Whether it waits for its flow's concurrency gate (CREATED and
    /// asking, or QUEUED).
    pub fn awaits_admission(&self) -> bool {
        !self.admitted && matches!(self.exec.state.current(), State::Created | State::Queued)
    }

    /// After a replay: it tells the gate again what it is (running, or
    /// waiting to).
    pub fn ask_gate_again(&mut self) {
        if self.concurrency().is_some() && !self.is_terminal() {
            self.gate_ask = Some(if self.admitted {
                GateAsk::Hold
            } else {
                GateAsk::Admit
            });
        }
    }

    /// The gate answered: it runs, waits QUEUED (with Kestra's line), or
    /// ends CANCELLED, or FAILED, at once.
    pub fn admit(&mut self, verdict: Verdict, now: DateTime<Utc>) {
        self.instant = now;
        if !self.awaits_admission() || self.is_terminal() {
            return;
        }
        match verdict {
            Verdict::Run => {
                self.admitted = true;
                self.gate_ask = None;
                self.begin(now);
            }
            Verdict::Queue { running } => {
                self.exec.state.transition(State::Queued, now);
                let line = format!(
                    "Flow is queued due to concurrency limit exceeded, {running} running(s)"
                );
                self.log(None, Level::Info, line, now);
            }
            Verdict::Cancel => {
                self.exec.state.transition(State::Cancelled, now);
            }
            Verdict::Fail => {
                let why = "Flow is FAILED due to concurrency limit exceeded".to_owned();
                self.exec.state.transition(State::Failed, now);
                self.exec.error = Some(why.clone());
                self.log(None, Level::Error, why, now);
            }
        }
    }

    /// The task run this execution is the subflow of.
    pub fn parent(&self) -> Option<ParentLink> {
        self.parent
    }

    /// Keeps only the starts of children still waited for, to send again
    /// (after a replay: the others were answered), marked as sent again.
    pub fn retain_waited_spawns(&mut self) {
        let mut spawns = std::mem::take(&mut self.spawns);
        spawns.retain(|s| self.waits_on(s.link));
        for spawn in &mut spawns {
            spawn.resend = true;
        }
        self.spawns = spawns;
        let mut asks = std::mem::take(&mut self.asks);
        asks.retain(|a| self.waits_on_child(a.link.task_run, a.link.attempt));
        self.asks = asks;
    }

    /// A CREATED execution; [`Run::begin`] starts it.
    pub fn new(
        new: NewExecution,
        now: DateTime<Utc>,
        limits: Limits,
        variables: ConfigVariables,
    ) -> Self {
        let rev = new.flow;
        let mut labels: Vec<(String, String)> = rev
            .flow()
            .labels
            .iter()
            .filter(|(k, _)| !k.starts_with(labels::SYSTEM_PREFIX))
            .cloned()
            .collect();
        labels.push((labels::CORRELATION_ID.into(), new.id.to_string()));
        for (k, v) in new.labels {
            labels::set(&mut labels, k, v);
        }
        let exec = Execution {
            id: new.id,
            namespace: Arc::clone(&rev.namespace),
            flow_id: Arc::clone(&rev.flow_id),
            flow_revision: rev.revision(),
            inputs: Value::Object(new.inputs),
            outputs: None,
            labels,
            trigger: new.trigger,
            state: StateHistory::new(State::Created, now),
            task_runs: Vec::new(),
            error: None,
            logs: Logs::default(),
            metrics: Metrics::default(),
            lineage: Lineage {
                schedule_date: new.schedule_date,
                ..new.lineage.unwrap_or_else(|| Lineage::first(new.id, now))
            },
            variables: None,
            secret_inputs: Vec::new(),
        };
        Self::of(exec, rev, new.parent, now, limits, variables)
    }

    /// Ended execution `guide.old()` started again as `id` (itself, for a
    /// restart; a new execution, for a replay): RESTARTED, its inputs,
    /// labels and trigger kept; [`Run::begin`] starts it, as `guide` says.
    pub fn again(
        id: ExecutionId,
        rev: Arc<FlowRevision>,
        guide: Guide,
        now: DateTime<Utc>,
        limits: Limits,
        variables: ConfigVariables,
    ) -> Self {
        let old = guide.old();
        let mut state = old.state.clone();
        state.transition(State::Restarted, now);
        let lineage = old.lineage.again(old.id, id);
        let exec = Execution {
            id,
            namespace: Arc::clone(&rev.namespace),
            flow_id: Arc::clone(&rev.flow_id),
            flow_revision: rev.revision(),
            inputs: old.inputs.clone(),
            outputs: None,
            labels: old.labels.clone(),
            trigger: old.trigger.clone(),
            state,
            task_runs: Vec::new(),
            error: None,
            logs: Logs::default(),
            metrics: Metrics::default(),
            lineage,
            // Kestra's restart and replay keep them (`childExecution`).
            variables: old.variables.clone(),
            secret_inputs: Vec::new(),
        };
        let mut run = Self::of(exec, rev, None, now, limits, variables);
        if let Some(vars) = run.exec.variables.clone() {
            run.set_variables(vars);
        }
        run.generation = u32::try_from(run.exec.state.count(State::Restarted)).unwrap_or(u32::MAX);
        run.guide = Some(Box::new(guide));
        // A restart is not asked for again (Kestra checks the limit of a
        // CREATED execution only), but it counts while it runs.
        run.admitted = true;
        if run.concurrency().is_some() {
            run.gate_ask = Some(GateAsk::Hold);
        }
        run
    }

    fn of(
        mut exec: Execution,
        rev: Arc<FlowRevision>,
        parent: Option<ParentLink>,
        now: DateTime<Utc>,
        limits: Limits,
        variables: ConfigVariables,
    ) -> Self {
        exec.secret_inputs = rev
            .flow()
            .inputs
            .iter()
            .filter(|i| matches!(i.type_, InputType::Secret))
            .map(|i| Arc::from(i.id.as_str()))
            .collect();
        let masked = exec
            .secret_inputs
            .iter()
            .filter_map(|name| exec.inputs.get(&**name))
            .filter_map(|v| match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                _ => None,
            })
            .collect();
        let rev_concurrency = rev.flow().concurrency;
        let root = Frame {
            owner: None,
            kind: FrameKind::Plain,
            phase: Phase::Main,
            groups: vec![whole_list(&rev, rev.root_tasks)],
            cursor: 0,
            active: 0,
            limit: 1,
            outcome: Outcome::default(),
            stopped: false,
            epoch: 0,
            finished: false,
            parallel_errors: false,
            errors: rev.root_errors,
            finally: rev.root_finally,
            dag_deps: Vec::new(),
            again: Vec::new(),
            iterations: 0,
            between: false,
            closing: None,
        };
        Run {
            exec,
            rev,
            outputs: OutputIndex::default(),
            slots: Vec::new(),
            frames: vec![root],
            timers: Vec::new(),
            work: Vec::new(),
            spawns: Vec::new(),
            kills: Vec::new(),
            interrupts: Vec::new(),
            asks: Vec::new(),
            parent,
            instant: now,
            limits,
            guide: None,
            generation: 0,
            admitted: rev_concurrency.is_none(),
            gate_ask: None,
            vars: None,
            variables,
            reads: RefCell::default(),
            masked,
            fans: std::collections::BTreeMap::new(),
        }
    }

    /// What its lines must not show: the secrets' values and its SECRET
    /// inputs'.
    pub(crate) fn masked_values(&self) -> Vec<String> {
        let mut values = self.variables.secret_values();
        values.extend(self.masked.iter().cloned());
        values
    }

    /// `text` with the secrets' values and its SECRET inputs' masked.
    fn mask(&self, text: String) -> String {
        super::config_vars::mask_with(&self.masked, self.variables.mask(text))
    }

    /// `value` with the secrets' values and its SECRET inputs' masked.
    fn mask_value(&self, value: Value) -> Value {
        super::config_vars::mask_value_with(&self.masked, self.variables.mask_value(value))
    }

    pub fn is_terminal(&self) -> bool {
        self.exec.state.current().is_terminal()
    }

    /// Keeps only the timer requests still due (after a replay, the others
    /// fired, or belong to an attempt replaced since).
    pub fn retain_waiting_timers(&mut self) {
        let mut timers = std::mem::take(&mut self.timers);
        timers.retain(|t| self.is_due(t.due));
        self.timers = timers;
    }

    /// Leaves the execution CREATED until `at`, when a timer begins it.
    pub fn schedule(&mut self, at: DateTime<Utc>) {
        self.timers.push(TimerRequest {
            deadline_ms: at.timestamp_millis(),
            due: Due {
                task_run: BEGIN,
                attempt: 0,
                timeout: false,
            },
        });
    }

    /// CREATED (or RESTARTED) → RUNNING, and run everything that can run
    /// inline.
    pub fn begin(&mut self, now: DateTime<Utc>) {
        let restarted = match self.exec.state.current() {
            State::Created | State::Queued => false,
            State::Restarted => true,
            _ => return,
        };
        if !self.admitted {
            // Its flow's concurrency gate says when.
            if self.exec.state.current() == State::Created {
                self.gate_ask = Some(GateAsk::Admit);
            }
            return;
        }
        self.instant = now;
        if restarted {
            self.log(None, Level::Info, "Flow restarted".to_owned(), now);
        }
        self.exec.state.transition(State::Running, now);
        if let Some(state) = self.drive(0, now) {
            self.finish_execution(state, now);
        }
    }

    /// Whether task run `task_run` still waits (on a timer).
    /// The id of task run `task_run`, if it exists.
    pub fn task_run_id(&self, task_run: u32) -> Option<TaskRunId> {
        self.exec.task_runs.get(task_run as usize).map(|t| t.id)
    }

    pub fn is_waiting_on(&self, task_run: u32) -> bool {
        !self.is_terminal()
            && self
                .exec
                .task_runs
                .get(task_run as usize)
                .is_some_and(|t| !t.state.current().is_terminal())
    }

    /// A timer of this run fired.
    pub fn on_timer(&mut self, task_run: u32, now: DateTime<Utc>) {
        self.instant = now;
        if task_run == BEGIN {
            return self.begin(now);
        }
        let Some(tr) = self.exec.task_runs.get(task_run as usize) else {
            return;
        };
        if tr.state.current().is_terminal() || self.is_terminal() {
            return;
        }
        if tr.state.current() == State::Retrying {
            self.retry_attempt(task_run, now);
        } else if let Some(f) = self.looping(task_run) {
            self.next_iteration(f, now);
        } else if self.slots[task_run as usize].waits == Waits::Timer {
            if tr.state.current() == State::Paused {
                self.unpause(task_run, now);
            }
            let started = self.call_task(task_run, now, |kind, ctx| kind.on_timer(ctx));
            self.resume(task_run, started, now);
        }
    }

    /// The loop frame task run `tr` owns, if it waits between iterations.
    fn looping(&self, tr: u32) -> Option<usize> {
        let slot = &self.slots[tr as usize];
        if slot.waits != Waits::Timer || !self.rev.node(slot.task).task.is_flowable() {
            return None;
        }
        self.frames
            .iter()
            .rposition(|frame| frame.owner == Some(tr) && frame.between)
    }

    /// Task run `tr`, PAUSED, runs again, and so does the execution once no
    /// other task run is paused.
    fn unpause(&mut self, tr: u32, now: DateTime<Utc>) {
        self.exec.task_runs[tr as usize]
            .state
            .transition(State::Running, now);
        let paused = self
            .exec
            .task_runs
            .iter()
            .any(|t| t.state.current() == State::Paused);
        if !paused && self.exec.state.current() == State::Paused {
            self.exec.state.transition(State::Running, now);
        }
    }

    /// What resuming this execution with `provided` inputs would do: the
    /// paused task run it resumes (the first, as Kestra's
    /// `findFirstByState(PAUSED)`) and that task run's outputs.
    pub fn check_resume(&self, provided: &Map<String, Value>) -> Result<(u32, Value), Unresumable> {
        let paused = (!self.is_terminal())
            .then(|| {
                self.exec
                    .task_runs
                    .iter()
                    .position(|t| t.state.current() == State::Paused)
            })
            .flatten();
        let Some(tr) = paused else {
            return Err(Unresumable::NotPaused(self.exec.state.current()));
        };
        let task = &self.rev.node(self.slots[tr].task).task;
        let outputs = task
            .kind
            .resume_inputs(provided)
            .map_err(Unresumable::Invalid)?;
        Ok((tr as u32, outputs))
    }

    /// Resumes paused task run `tr` with `outputs` (from
    /// [`Run::check_resume`], or the journal).
    pub fn apply_resume(&mut self, tr: u32, outputs: Value, now: DateTime<Utc>) {
        self.instant = now;
        let paused = self
            .exec
            .task_runs
            .get(tr as usize)
            .is_some_and(|t| t.state.current() == State::Paused);
        if self.is_terminal() || !paused {
            return;
        }
        self.unpause(tr, now);
        let started = match self.call_task(tr, now, |kind, ctx| kind.on_resume(ctx)) {
            Started::Done(Ok(None)) => Started::Done(Ok(Some(outputs))),
            other => {
                self.set_outputs(tr, outputs);
                other
            }
        };
        self.resume(tr, started, now);
    }

    /// Kills every running task run and the execution, and with `cascade`
    /// the children its task runs wait for. False if it had ended.
    pub fn kill(&mut self, cascade: bool, now: DateTime<Utc>) -> bool {
        self.instant = now;
        if self.is_terminal() {
            return false;
        }
        // Its children die with it (Kestra's kill cascades by default).
        if cascade {
            for tr in 0..self.exec.task_runs.len() as u32 {
                if let Some(child) = self.running_child(tr) {
                    self.kills.push(child);
                }
            }
            let batches: Vec<ExecutionId> = self
                .fans
                .iter()
                .flat_map(|(&tr, fan)| {
                    fan.running
                        .iter()
                        .map(move |&batch| (tr, fan.attempt, batch))
                })
                .map(|(tr, attempt, batch)| self.batch_child(tr, attempt, batch))
                .collect();
            self.kills.extend(batches);
        }
        self.fans.clear();
        for tr in 0..self.exec.task_runs.len() as u32 {
            self.interrupt_work(tr);
        }
        for tr in self.exec.task_runs.iter_mut().rev() {
            if !tr.state.current().is_terminal() {
                tr.state.transition(State::Killed, now);
                if let Some(attempt) = tr.attempts.last_mut() {
                    attempt.state.transition(State::Killed, now);
                }
            }
        }
        self.exec.state.transition(State::Killed, now);
        true
    }

    /// Task run `tr` (an `execution.Exit`) ends the execution in `state`:
    /// KILLED kills it (not its subflows); any other state ends `tr`, its
    /// ancestors and the execution so, leaving what runs beside them.
    fn exit(&mut self, tr: u32, state: State, now: DateTime<Utc>) {
        if state == State::Killed {
            self.kill(false, now);
            return;
        }
        let mut at = Some(tr);
        while let Some(t) = at {
            let run = &mut self.exec.task_runs[t as usize];
            run.state.transition(state, now);
            if let Some(attempt) = run.attempts.last_mut() {
                attempt.state.transition(state, now);
            }
            at = run.parent;
        }
        self.finish_execution(state, now);
    }

    // ---- driving frames ----

    /// Starts what can start in frame `f`; `Some(state)` when it has ended.
    ///
    /// As Kestra does, the first task run of every group that may start is
    /// created before any of them runs: a failure in one group does not keep
    /// its siblings from being created.
    fn drive(&mut self, f: usize, now: DateTime<Utc>) -> Option<State> {
        let mut batch: Vec<(usize, Option<u32>)> = Vec::new();
        loop {
            batch.clear();
            while let Some(g) = self.next_startable(f) {
                let frame = &mut self.frames[f];
                frame.groups[g].status = GroupStatus::Active;
                frame.active += 1;
                let first = self
                    .first_task(f, g)
                    .map(|task| self.create_task_run(f, g, task, now));
                batch.push((g, first));
            }
            // Every created run starts, even after a sibling failed: Kestra
            // hands out every CREATED task run.
            for &(g, first) in &batch {
                if self.advance_group(f, g, first, now) {
                    self.frames[f].active -= 1;
                }
            }
            if self.is_terminal() {
                return None;
            }
            if batch.is_empty() || self.frames[f].stopped {
                let frame = &self.frames[f];
                let settled = frame.active == 0 || (frame.stopped && frame.phase == Phase::Main);
                if !settled {
                    return None;
                }
                if self.loops_again(f, now) {
                    return None;
                }
                if self.frames[f].finished {
                    // A loop failed past its maximum: its state is set.
                    return Some(self.final_state(f));
                }
                if !self.next_phase(f) {
                    self.frames[f].finished = true;
                    return Some(self.final_state(f));
                }
            }
        }
    }

    /// The first enabled task of group `g`, skipping disabled ones.
    fn first_task(&mut self, f: usize, g: usize) -> Option<TaskIdx> {
        let group = &mut self.frames[f].groups[g];
        while group.pos < group.end {
            let task = self.rev.list(group.list)[group.pos as usize];
            if !self.rev.node(task).task.disabled {
                return Some(task);
            }
            group.pos += 1;
        }
        None
    }

    fn next_startable(&mut self, f: usize) -> Option<usize> {
        if self.is_terminal() {
            return None;
        }
        let frame = &mut self.frames[f];
        if frame.stopped || frame.active >= frame.limit {
            return None;
        }
        if frame.kind == FrameKind::Dependencies && frame.phase == Phase::Main {
            return (0..frame.groups.len()).find(|&g| {
                frame.groups[g].status == GroupStatus::Pending
                    && frame.dag_deps[g]
                        .iter()
                        .all(|&d| frame.groups[d as usize].status == GroupStatus::Done { ok: true })
            });
        }
        if frame.cursor < frame.groups.len() {
            frame.cursor += 1;
            Some(frame.cursor - 1)
        } else {
            None
        }
    }

    /// Runs group `g` of frame `f` forward until it waits (false) or ends
    /// (true). `created` is the group's next task run when already created.
    fn advance_group(
        &mut self,
        f: usize,
        g: usize,
        mut created: Option<u32>,
        now: DateTime<Utc>,
    ) -> bool {
        loop {
            if self.is_terminal() {
                return true;
            }
            let tr = match created.take() {
                Some(tr) => tr,
                None => match self.first_task(f, g) {
                    Some(task) => self.create_task_run(f, g, task, now),
                    None => {
                        let group = &mut self.frames[f].groups[g];
                        if group.status == GroupStatus::Active {
                            group.status = GroupStatus::Done { ok: true };
                        }
                        return true;
                    }
                },
            };
            match self.start_task_run(tr, now) {
                None => return false,
                Some(state) => {
                    if !self.after_child(f, g, state) {
                        return true;
                    }
                }
            }
        }
    }

    /// Records a child's end in its frame and steps its group past it.
    /// False when the group must stop there.
    fn after_child(&mut self, f: usize, g: usize, state: State) -> bool {
        let frame = &mut self.frames[f];
        // What `errors` tasks do never changes the state (Kestra's
        // guessFinalState reads only the normal tasks), and a failed
        // `errors` task does not stop the ones after it.
        if frame.phase != Phase::Errors {
            frame.outcome.add(state);
        }
        let group = &mut frame.groups[g];
        group.pos += 1;
        if matches!(state, State::Failed | State::Killed) && frame.phase != Phase::Errors {
            group.status = GroupStatus::Done { ok: false };
            frame.stopped = true;
            return false;
        }
        true
    }

    /// A child ended outside the shard's inline path (timer, worker):
    /// finish it and roll the consequences up the tree.
    fn complete_async(
        &mut self,
        task_run: u32,
        state: State,
        outputs: Option<Value>,
        now: DateTime<Utc>,
    ) {
        let ended = self.finish_task_run(task_run, state, outputs, now);
        self.roll_up(task_run, ended, now);
    }

    /// Goes on with an attempt that started outside the inline path (a
    /// retry, a redispatch, a fired timer), as [`Run::start_task_run`] does.
    fn resume(&mut self, task_run: u32, started: Started, now: DateTime<Utc>) {
        if let Some(ended) = self.act(task_run, started, now) {
            self.roll_up(task_run, ended, now);
        }
    }

    /// Task run `task_run` ended `state` outside the inline path: step its
    /// group, and its frame's owner when the frame ends, up the tree.
    fn roll_up(&mut self, task_run: u32, state: State, now: DateTime<Utc>) {
        let mut child = task_run;
        let mut child_state = state;
        loop {
            let Slot {
                frame,
                group,
                epoch,
                ..
            } = self.slots[child as usize].clone();
            let (f, g) = (frame as usize, group as usize);
            if self.frames[f].finished || self.frames[f].epoch != epoch {
                // Its frame already moved on (Kestra ends a frame of side by
                // side tasks as soon as one fails); the end is recorded,
                // nothing more.
                return;
            }
            let group_done = if self.after_child(f, g, child_state) {
                self.advance_group(f, g, None, now)
            } else {
                true
            };
            if group_done {
                self.frames[f].active -= 1;
            }
            let Some(frame_state) = self.drive(f, now) else {
                return;
            };
            match self.frames[f].owner {
                Some(owner) => {
                    let Some(ended) = self.close_frame(owner, f, frame_state, now) else {
                        return;
                    };
                    child_state = ended;
                    child = owner;
                }
                None => {
                    self.finish_execution(frame_state, now);
                    return;
                }
            }
        }
    }

    /// A loop's frame (see [`FramePlan::repeats`]) settled in its main
    /// phase: once its tasks all succeeded, its task says whether they run
    /// again (true: after a timer of its owner), or it fails (the frame is
    /// then finished, FAILED).
    fn loops_again(&mut self, f: usize, now: DateTime<Utc>) -> bool {
        let frame = &self.frames[f];
        let Some(owner) = frame.owner else {
            return false;
        };
        let o = frame.outcome;
        if frame.again.is_empty() || frame.phase != Phase::Main || o.failed || o.warning || o.killed
        {
            return false;
        }
        let iterations = frame.iterations + 1;
        self.frames[f].iterations = iterations;
        self.set_outputs(owner, serde_json::json!({ "iterationCount": iterations }));
        let since = self.exec.task_runs[owner as usize].state.start_date();
        let answer = self.call_task(owner, now, |kind, ctx| {
            kind.after_frame(ctx, iterations, since)
        });
        match answer {
            AfterFrame::Done => false,
            AfterFrame::Again(after) => {
                let planned = self.frames[f]
                    .again
                    .iter()
                    .map(|g| (g.end - g.pos) as usize)
                    .sum::<usize>();
                let existing = self.exec.task_runs.len();
                let max = self.limits.max_task_runs;
                if existing.saturating_add(planned) > max as usize {
                    let why = limits::too_many_task_runs(planned, existing, max);
                    self.fail_loop(f, owner, why, now);
                    return false;
                }
                self.frames[f].between = true;
                self.ask_timer(owner, after, false, now);
                self.slots[owner as usize].waits = Waits::Timer;
                true
            }
            AfterFrame::Fail(why) => {
                self.fail_loop(f, owner, why, now);
                false
            }
        }
    }

    /// Loop frame `f` fails with `why`, its `errors` not run (Kestra's
    /// WaitFor resolves FAILED at once past its maximum).
    fn fail_loop(&mut self, f: usize, owner: u32, why: String, now: DateTime<Utc>) {
        self.log(Some(owner), Level::Error, why, now);
        let frame = &mut self.frames[f];
        frame.outcome.failed = true;
        frame.finished = true;
    }

    /// Loop frame `f`'s wait passed: its tasks run again, as iteration
    /// `iterations` (their task runs say so, as its own does).
    fn next_iteration(&mut self, f: usize, now: DateTime<Utc>) {
        let Some(owner) = self.frames[f].owner else {
            return;
        };
        self.slots[owner as usize].waits = Waits::Nothing;
        let frame = &mut self.frames[f];
        let iteration = frame.iterations;
        frame.between = false;
        frame.groups = frame
            .again
            .iter()
            .cloned()
            .map(|g| Group {
                iteration: Some(iteration),
                ..g
            })
            .collect();
        frame.cursor = 0;
        frame.active = 0;
        frame.outcome = Outcome::default();
        frame.stopped = false;
        frame.epoch += 1;
        self.exec.task_runs[owner as usize].iteration = Some(iteration);
        if let Some(state) = self.drive(f, now)
            && let Some(ended) = self.close_frame(owner, f, state, now)
        {
            self.roll_up(owner, ended, now);
        }
    }

    fn next_phase(&mut self, f: usize) -> bool {
        let frame = &self.frames[f];
        let next = match frame.phase {
            Phase::Main if frame.outcome.failed && !self.rev.list(frame.errors).is_empty() => {
                Some((Phase::Errors, frame.errors))
            }
            Phase::Main | Phase::Errors if !self.rev.list(frame.finally).is_empty() => {
                Some((Phase::Finally, frame.finally))
            }
            _ => None,
        };
        let Some((phase, list)) = next else {
            return false;
        };
        let parallel = phase == Phase::Errors && self.frames[f].parallel_errors;
        let groups = if parallel {
            each_task(&self.rev, list, None)
        } else {
            vec![whole_list(&self.rev, list)]
        };
        let frame = &mut self.frames[f];
        frame.phase = phase;
        frame.groups = groups;
        frame.cursor = 0;
        frame.active = 0;
        frame.limit = if parallel { usize::MAX } else { 1 };
        frame.stopped = false;
        frame.epoch += 1;
        true
    }

    /// Frame `f` of task run `owner` settled in `state`: the owner ends so
    /// (`Some`, the state it ended in), unless its task has closing work
    /// to do first (a WorkingDirectory's output files and folder), which
    /// goes to the worker pool; the owner then ends when it answers.
    fn close_frame(
        &mut self,
        owner: u32,
        f: usize,
        state: State,
        now: DateTime<Utc>,
    ) -> Option<State> {
        let job = self.call_task(owner, now, |kind, ctx| kind.closing(ctx, state));
        let Some(job) = job else {
            return Some(self.finish_task_run(owner, state, None, now));
        };
        self.frames[f].closing = Some(state);
        self.work.push(WorkOrder {
            task_run: owner,
            run_id: self.exec.task_runs[owner as usize].id,
            attempt: self.attempt_of(owner),
            deadline_ms: None,
            job,
        });
        self.slots[owner as usize].waits = Waits::Worker;
        None
    }

    /// The frame task run `tr` owns, if it has opened one.
    fn frame_of(&self, tr: u32) -> Option<usize> {
        self.frames.iter().rposition(|f| f.owner == Some(tr))
    }

    /// The nearest task run above `tr` whose task shares its working folder
    /// with the tasks under it (a WorkingDirectory), if any.
    pub(crate) fn folder_owner(&self, tr: u32) -> Option<u32> {
        let mut at = tr;
        loop {
            let owner = self.frames[self.slots[at as usize].frame as usize].owner?;
            let node = self.rev.node(self.slots[owner as usize].task);
            // Its `errors` and `finally` tasks are not its tasks: they work
            // in folders of their own, as Kestra's run outside its worker.
            let task = self.slots[at as usize].task;
            let among_tasks = node
                .children
                .iter()
                .any(|&l| self.rev.list(l).contains(&task));
            if node.task.kind.shares_folder() && among_tasks {
                return Some(owner);
            }
            at = owner;
        }
    }

    /// A flowable task run's work answered: the work before its frame (the
    /// frame may open now) or its closing work (it ends now).
    fn flowable_work_done(&mut self, tr: u32, result: Result<Value, String>, now: DateTime<Utc>) {
        let closing = self.frame_of(tr).and_then(|f| self.frames[f].closing);
        match (closing, result.and_then(|outputs| self.checked(outputs))) {
            (None, Ok(outputs)) => {
                let started = self.call_task(tr, now, |kind, ctx| kind.on_work(ctx, outputs));
                self.resume(tr, started, now);
            }
            (Some(state), Ok(outputs)) => {
                let ended = self.finish_task_run(tr, state, Some(outputs), now);
                self.roll_up(tr, ended, now);
            }
            (_, Err(message)) => {
                let ended = self.fail_task_run(tr, &message, now);
                self.roll_up(tr, ended, now);
            }
        }
    }

    fn final_state(&self, f: usize) -> State {
        let frame = &self.frames[f];
        let o = frame.outcome;
        if o.killed {
            State::Killed
        } else if o.failed {
            if frame.kind == FrameKind::FailureAllowed {
                State::Warning
            } else {
                State::Failed
            }
        } else if o.warning {
            State::Warning
        } else {
            State::Success
        }
    }

    // ---- task runs ----

    fn create_task_run(&mut self, f: usize, g: usize, task: TaskIdx, now: DateTime<Utc>) -> u32 {
        let frame = &self.frames[f];
        let group = &frame.groups[g];
        let parent = frame.owner;
        let value = group.value.clone();
        let iteration = group.iteration;
        let parent_chain = parent.map(|p| Arc::clone(&self.slots[p as usize].chain));
        let chain: Arc<[Arc<str>]> = match (&parent_chain, &value) {
            (Some(pc), Some(v)) => pc.iter().cloned().chain([Arc::clone(v)]).collect(),
            (Some(pc), None) => Arc::clone(pc),
            (None, Some(v)) => Arc::from([Arc::clone(v)]),
            (None, None) => Arc::from([]),
        };
        let node = self.rev.node(task);
        let idx = self.exec.task_runs.len() as u32;
        self.exec.task_runs.push(TaskRun {
            id: task_run_id(self.exec.id, self.generation, idx),
            task_id: Arc::clone(&node.task_id),
            parent,
            value,
            iteration,
            attempts: Vec::new(),
            outputs: None,
            state: StateHistory::new(State::Created, now),
        });
        let epoch = self.frames[f].epoch;
        self.slots.push(Slot {
            task,
            frame: f as u32,
            group: g as u32,
            epoch,
            chain,
            waits: Waits::Nothing,
        });
        if self.guide.is_some() {
            self.find_old(idx, parent);
        }
        idx
    }

    /// Task run `tr` (just created, its parent `parent`) of a restarted or
    /// replayed run: finds the old task run in its place (see
    /// [`super::guide`]), whose id it keeps on a restart.
    fn find_old(&mut self, tr: u32, parent: Option<u32>) {
        let anew = self.follows_replayed(tr);
        let Some(guide) = self.guide.as_deref_mut() else {
            return;
        };
        let Some(old) = guide.find(parent, &self.exec.task_runs[tr as usize], anew) else {
            return;
        };
        if guide.keeps_ids() {
            self.exec.task_runs[tr as usize].id = guide.old().task_runs[old as usize].id;
        }
        if guide.from() == Some(old) {
            // What follows it in these groups, or depends on them, runs anew.
            let mut lineage = Vec::new();
            let mut at = Some(tr);
            while let Some(a) = at {
                let slot = &self.slots[a as usize];
                lineage.push((slot.frame, slot.group, slot.epoch));
                at = self.exec.task_runs[a as usize].parent;
            }
            guide.lineage = lineage;
        }
    }

    /// Whether task run `tr` (just created) of a replay follows the task
    /// run replayed: after it (or an ancestor of it) in a group, in a later
    /// phase of their frame (`finally`), or in a Dag group that depends on
    /// theirs.
    fn follows_replayed(&self, tr: u32) -> bool {
        let Some(guide) = self.guide.as_deref() else {
            return false;
        };
        let slot = &self.slots[tr as usize];
        guide.lineage.iter().any(|&(f, g, epoch)| {
            if slot.frame != f {
                return false;
            }
            let frame = &self.frames[f as usize];
            slot.epoch != epoch
                || slot.group == g
                || (frame.kind == FrameKind::Dependencies
                    && depends_on(&frame.dag_deps, slot.group, g))
        })
    }

    /// Task run `tr` of a restarted or replayed run, as its old task run's
    /// fate says: `Some(state)` when it is kept (copied as it ended, with
    /// its descendants); a restarted one carries its history and attempts
    /// on (RESTARTED, then a new attempt; a flowable RUNNING again).
    fn follow_guide(&mut self, tr: u32, now: DateTime<Utc>) -> Option<State> {
        let guide = self.guide.as_deref()?;
        let old = guide.matched(tr)?;
        let fate = guide.fate(old)?;
        let was = &guide.old().task_runs[old as usize];
        let (state, attempts, outputs) =
            (was.state.clone(), was.attempts.clone(), was.outputs.clone());
        let flowable = self
            .rev
            .node(self.slots[tr as usize].task)
            .task
            .is_flowable();
        let run = &mut self.exec.task_runs[tr as usize];
        run.state = state;
        run.attempts = attempts;
        if fate == Fate::Restart {
            if !flowable {
                run.state.transition(State::Restarted, now);
            }
            return None;
        }
        let ended = run.state.current();
        if let Some(outputs) = outputs {
            self.set_shared_outputs(tr, outputs);
        }
        self.copy_descendants(tr, old);
        Some(ended)
    }

    /// Copies the old descendants of old task run `old` under task run
    /// `tr`, as they ended (a kept flowable's children run no more).
    fn copy_descendants(&mut self, tr: u32, old: u32) {
        let Some(guide) = self.guide.as_deref() else {
            return;
        };
        let keep_ids = guide.keeps_ids();
        let copies: Vec<(u32, TaskRun)> = guide
            .descendants(old)
            .into_iter()
            .map(|d| (d, guide.old().task_runs[d as usize].clone()))
            .collect();
        let mut new_of: FxHashMap<u32, u32> = FxHashMap::default();
        new_of.insert(old, tr);
        for (d, mut copy) in copies {
            let (Some(&parent), Some(&task)) = (
                copy.parent.and_then(|p| new_of.get(&p)),
                self.rev.by_id.get(&copy.task_id),
            ) else {
                continue;
            };
            let idx = self.exec.task_runs.len() as u32;
            if !keep_ids {
                copy.id = task_run_id(self.exec.id, self.generation, idx);
            }
            copy.parent = Some(parent);
            let outputs = copy.outputs.take();
            let above = &self.slots[parent as usize];
            let chain: Arc<[Arc<str>]> = match &copy.value {
                Some(v) => above.chain.iter().cloned().chain([Arc::clone(v)]).collect(),
                None => Arc::clone(&above.chain),
            };
            let slot = Slot {
                task,
                frame: above.frame,
                group: above.group,
                // No frame of this run: its end drives nothing.
                epoch: u32::MAX,
                chain,
                waits: Waits::Nothing,
            };
            self.exec.task_runs.push(copy);
            self.slots.push(slot);
            if let Some(guide) = self.guide.as_deref_mut() {
                guide.copied(d);
            }
            if let Some(outputs) = outputs {
                self.set_shared_outputs(idx, outputs);
            }
            new_of.insert(d, idx);
        }
    }

    /// Starts a created task run; `Some(state)` if it ended inline.
    fn start_task_run(&mut self, tr: u32, now: DateTime<Utc>) -> Option<State> {
        if self.guide.is_some()
            && let Some(kept) = self.follow_guide(tr, now)
        {
            return Some(kept);
        }
        let node = self.rev.node(self.slots[tr as usize].task);
        if let Some(condition) = &node.task.run_if {
            match self.render(condition, Some(tr)) {
                Ok(v) if !is_truthy(&v) => {
                    self.finish_task_run(tr, State::Skipped, None, now);
                    return Some(State::Skipped);
                }
                Ok(_) => {}
                Err(message) => return Some(self.fail_task_run(tr, &message, now)),
            }
        }
        let flowable = node.task.is_flowable();
        let run = &mut self.exec.task_runs[tr as usize];
        run.state.transition(State::Running, now);
        // Kestra gives a flowable task run no attempts.
        if !flowable {
            let mut attempt = StateHistory::new(State::Created, now);
            attempt.transition(State::Running, now);
            run.attempts.push(Attempt { state: attempt });
        }
        let started = self.call_task(tr, now, |kind, ctx| kind.start(ctx));
        self.act(tr, started, now)
    }

    /// Calls into task run `tr`'s task, then appends what it logged.
    fn call_task<T>(
        &mut self,
        tr: u32,
        now: DateTime<Utc>,
        call: impl FnOnce(&dyn TaskKind, &mut TaskContext<'_>) -> T,
    ) -> T {
        let (started, said) = {
            let kind = &*self.rev.node(self.slots[tr as usize].task).task.kind;
            let mut ctx = TaskContext::new(RenderContext::new(self, Some(tr)));
            let started = call(kind, &mut ctx);
            (started, ctx.into_said())
        };
        for (level, message) in said.logs {
            self.log(Some(tr), level, message, now);
        }
        for (key, value) in said.labels {
            let value = self.mask(value);
            labels::set(&mut self.exec.labels, key, value);
        }
        if let Some(variables) = said.variables {
            self.set_variables(variables);
        }
        started
    }

    /// The execution's variables are now `variables`; `vars` reads them
    /// over the flow's.
    fn set_variables(&mut self, variables: Map<String, Value>) {
        let mut merged = self.rev.variables.clone();
        deep_merge(&mut merged, Value::Object(variables.clone()));
        self.vars = Some(merged);
        self.exec.variables = Some(variables);
    }

    /// What `vars` reads: the flow's variables, under those the
    /// execution's tasks set.
    pub fn vars(&self) -> &Value {
        self.vars.as_ref().unwrap_or(&self.rev.variables)
    }

    /// Acts on what task run `tr`'s task answered; `Some(state)` if the task
    /// run ended (only its own end: the caller rolls it up).
    fn act(&mut self, tr: u32, started: Started, now: DateTime<Utc>) -> Option<State> {
        self.slots[tr as usize].waits = Waits::Nothing;
        let started = match started {
            Started::Done(Ok(Some(outputs))) => Started::Done(self.checked(outputs).map(Some)),
            other => other,
        };
        match started {
            Started::Done(Ok(outputs)) => {
                let run = &self.exec.task_runs[tr as usize];
                let retried = run.attempts.len() > 1;
                let warn = retried
                    && self
                        .rev
                        .node(self.slots[tr as usize].task)
                        .task
                        .retry
                        .as_ref()
                        .is_some_and(|r| r.warning_on_retry);
                let state = if warn { State::Warning } else { State::Success };
                let outputs = outputs.unwrap_or_else(empty_outputs);
                Some(self.finish_task_run(tr, state, Some(outputs), now))
            }
            Started::Done(Err(message)) => {
                // Only an attempt is retried: a flowable task run has none.
                let attempted = !self.exec.task_runs[tr as usize].attempts.is_empty();
                if attempted && self.schedule_retry(tr, &message, now) {
                    None
                } else {
                    Some(self.fail_task_run(tr, &message, now))
                }
            }
            Started::Frame(plan) => match self.open_frame(tr, plan) {
                Ok(f) => {
                    let state = self.drive(f, now)?;
                    self.close_frame(tr, f, state, now)
                }
                Err(message) => Some(self.fail_task_run(tr, &message, now)),
            },
            Started::Wait(duration) => {
                self.ask_timer(tr, duration, false, now);
                self.arm_timeout(tr, now);
                self.slots[tr as usize].waits = Waits::Timer;
                None
            }
            Started::Pause(wait) => {
                self.exec.task_runs[tr as usize]
                    .state
                    .transition(State::Paused, now);
                if self.exec.state.current() == State::Running {
                    self.exec.state.transition(State::Paused, now);
                }
                if let Some(wait) = wait {
                    self.ask_timer(tr, wait, false, now);
                }
                self.slots[tr as usize].waits = Waits::Timer;
                None
            }
            Started::Subflow(call) => {
                self.spawn(tr, *call, now);
                self.arm_timeout(tr, now);
                self.slots[tr as usize].waits = Waits::Child;
                None
            }
            Started::Ended(state, outputs) => {
                let outputs = match self.checked(outputs) {
                    Ok(outputs) => outputs,
                    Err(message) => return Some(self.fail_task_run(tr, &message, now)),
                };
                if state == State::Failed {
                    let message = "the subflow's execution failed";
                    if self.schedule_retry(tr, message, now) {
                        return None;
                    }
                    self.log(Some(tr), Level::Error, message.to_owned(), now);
                }
                Some(self.finish_task_run(tr, state, Some(outputs), now))
            }
            Started::Exit(state) => {
                self.exit(tr, state, now);
                None
            }
            Started::Resume(call) => {
                let target = match &call.execution_id {
                    None => self.exec.id,
                    Some(text) => match text.trim().parse::<ExecutionId>() {
                        Ok(id) => id,
                        Err(_) => {
                            let why = format!("No execution found for execution id {text}");
                            return Some(self.fail_task_run(tr, &why, now));
                        }
                    },
                };
                let ask = Ask::Resume {
                    target,
                    namespace: call
                        .namespace
                        .unwrap_or_else(|| self.exec.namespace.to_string()),
                    flow_id: call
                        .flow_id
                        .unwrap_or_else(|| self.exec.flow_id.to_string()),
                    inputs: call.inputs,
                };
                self.ask(tr, ask, now);
                None
            }
            Started::Count(tally) => {
                self.ask(tr, Ask::Count(tally), now);
                None
            }
            Started::Batches(batches) => {
                let Batches { items, limit } = *batches;
                self.arm_timeout(tr, now);
                self.slots[tr as usize].waits = Waits::Batches;
                let fan = Fan {
                    attempt: self.attempt_of(tr),
                    items,
                    started: 0,
                    running: std::collections::BTreeSet::new(),
                    limit: limit.max(1),
                    ended: Vec::new(),
                };
                self.fans.insert(tr, fan);
                self.fill_fan(tr, now)
            }
            Started::Work(job) => {
                // A flowable task run's work (a WorkingDirectory's setup)
                // has no attempt to time out.
                let deadline_ms = if self
                    .rev
                    .node(self.slots[tr as usize].task)
                    .task
                    .is_flowable()
                {
                    None
                } else {
                    self.arm_timeout(tr, now)
                };
                self.work.push(WorkOrder {
                    task_run: tr,
                    run_id: self.exec.task_runs[tr as usize].id,
                    attempt: self.attempt_of(tr),
                    deadline_ms,
                    job,
                });
                self.slots[tr as usize].waits = Waits::Worker;
                None
            }
        }
    }

    /// Task run `tr`'s current attempt asks `ask` of other executions, and
    /// waits for the answer.
    fn ask(&mut self, tr: u32, ask: Ask, now: DateTime<Utc>) {
        let link = ParentLink {
            execution: self.exec.id,
            task_run: tr,
            attempt: self.attempt_of(tr),
            wait: true,
            depth: 0,
            generation: self.generation,
            batch: 0,
        };
        self.asks.push(AskOrder { link, ask });
        self.arm_timeout(tr, now);
        self.slots[tr as usize].waits = Waits::Answer;
    }

    /// Asks for the child execution of task run `tr`'s current attempt:
    /// its labels are this execution's system ones (all of them with
    /// `inheritLabels`) and the task's, its trigger names this execution.
    fn spawn(&mut self, tr: u32, call: SubflowCall, now: DateTime<Utc>) {
        self.spawn_child(tr, 0, call, now);
    }

    /// Asks for child `batch` of task run `tr`'s current attempt (0: its
    /// one child, a Subflow's; n: its batch n).
    fn spawn_child(&mut self, tr: u32, batch: u32, call: SubflowCall, now: DateTime<Utc>) {
        let attempt = self.attempt_of(tr);
        let link = ParentLink {
            execution: self.exec.id,
            task_run: tr,
            attempt,
            wait: call.wait,
            depth: self.parent.map_or(0, |p| p.depth) + 1,
            generation: self.generation,
            batch,
        };
        let child = link.child();
        let mut child_labels: Vec<(String, String)> = self
            .exec
            .labels
            .iter()
            .filter(|(k, _)| call.inherit_labels || k.starts_with(labels::SYSTEM_PREFIX))
            .cloned()
            .collect();
        for (key, value) in call.labels {
            labels::set(&mut child_labels, key, value);
        }
        let node = self.rev.node(self.slots[tr as usize].task);
        let trigger = serde_json::json!({
            "id": node.task_json["id"],
            "type": node.task_json["type"],
            "variables": {
                "executionId": self.exec.id.to_string(),
                "namespace": self.exec.namespace.as_ref(),
                "flowId": self.exec.flow_id.as_ref(),
                "flowRevision": self.exec.flow_revision,
            },
        });
        // Kestra's line, which its UI shows as a link to the child.
        let message = format!(
            "Created new execution [[link execution=\"{child}\" flowId=\"{}\" namespace=\"{}\"]]",
            call.flow_id, call.namespace
        );
        self.log(Some(tr), Level::Info, message, now);
        self.spawns.push(SpawnOrder {
            link,
            namespace: call.namespace,
            flow_id: call.flow_id,
            revision: call.revision,
            inputs: call.inputs,
            labels: child_labels,
            trigger,
            schedule_date: call.schedule_date,
            resend: false,
            lineage: None,
        });
    }

    /// Whether task run `tr` waits, at attempt `attempt`, for its child.
    pub fn waits_on_child(&self, tr: u32, attempt: u32) -> bool {
        !self.is_terminal()
            && self.exec.task_runs.get(tr as usize).is_some_and(|run| {
                run.state.current() == State::Running && run.attempts.len() as u32 == attempt
            })
            && matches!(
                self.slots[tr as usize].waits,
                Waits::Child | Waits::Answer | Waits::Retried
            )
    }

    /// Whether the task run `link` names waits for the child it names.
    pub fn waits_on(&self, link: ParentLink) -> bool {
        if link.batch == 0 {
            self.waits_on_child(link.task_run, link.attempt)
        } else {
            self.waits_on_batch(link.task_run, link.attempt, link.batch)
        }
    }

    /// Whether task run `tr` waits, at attempt `attempt`, for batch `batch`.
    fn waits_on_batch(&self, tr: u32, attempt: u32, batch: u32) -> bool {
        !self.is_terminal()
            && self.exec.task_runs.get(tr as usize).is_some_and(|run| {
                run.state.current() == State::Running && run.attempts.len() as u32 == attempt
            })
            && self.slots[tr as usize].waits == Waits::Batches
            && self
                .fans
                .get(&tr)
                .is_some_and(|fan| fan.attempt == attempt && fan.running.contains(&batch))
    }

    /// The id of batch `batch` of attempt `attempt` of task run `tr`.
    fn batch_child(&self, tr: u32, attempt: u32, batch: u32) -> ExecutionId {
        ParentLink {
            execution: self.exec.id,
            task_run: tr,
            attempt,
            wait: true,
            depth: 0,
            generation: self.generation,
            batch,
        }
        .child()
    }

    /// The ids of the `count` batches task run `tr` started at its last
    /// attempt, in order (a ForEachItem's merge reads them).
    pub(crate) fn batch_children(&self, tr: u32, count: u32) -> Vec<ExecutionId> {
        let attempt = self.attempt_of(tr);
        (1..=count)
            .map(|batch| self.batch_child(tr, attempt, batch))
            .collect()
    }

    /// The last task run of task `task_id` beside task run `tr` (under the
    /// same parent), before it.
    pub(crate) fn sibling(&self, tr: u32, task_id: &str) -> Option<u32> {
        let parent = self.exec.task_runs.get(tr as usize)?.parent;
        (0..tr).rev().find(|&i| {
            let run = &self.exec.task_runs[i as usize];
            run.parent == parent && &*run.task_id == task_id
        })
    }

    /// Task run `tr` no longer waits on its batches: those running are
    /// killed.
    fn drop_fan(&mut self, tr: u32) {
        if let Some(fan) = self.fans.remove(&tr) {
            for batch in fan.running {
                let child = self.batch_child(tr, fan.attempt, batch);
                self.kills.push(child);
            }
        }
    }

    /// Starts the batches of task run `tr` that may start, and ends it once
    /// they all answered (its task says how: [`TaskKind::after_batches`]);
    /// `Some(state)` if it ended.
    fn fill_fan(&mut self, tr: u32, now: DateTime<Utc>) -> Option<State> {
        loop {
            let fan = self.fans.get_mut(&tr)?;
            if fan.running.len() >= fan.limit || fan.started as usize >= fan.items.len() {
                break;
            }
            fan.started += 1;
            let batch = fan.started;
            fan.running.insert(batch);
            let item = fan.items[batch as usize - 1].clone();
            let call = self.call_task(tr, now, |kind, ctx| kind.batch_call(ctx, batch, &item));
            match call {
                Ok(call) => self.spawn_child(tr, batch, call, now),
                Err(why) => {
                    self.drop_fan(tr);
                    return self.act(tr, Started::Done(Err(why)), now);
                }
            }
        }
        let fan = self.fans.get(&tr)?;
        let outputs = fan_outputs(fan);
        let done = fan.running.is_empty() && fan.started as usize == fan.items.len();
        self.set_outputs(tr, outputs);
        if !done {
            return None;
        }
        let fan = self.fans.remove(&tr)?;
        let started = self.call_task(tr, now, |kind, ctx| kind.after_batches(ctx, &fan.ended));
        self.act(tr, started, now)
    }

    /// Batch `batch` of attempt `attempt` of task run `tr` answered.
    pub fn on_batch(
        &mut self,
        tr: u32,
        attempt: u32,
        batch: u32,
        answer: &ChildAnswer,
        now: DateTime<Utc>,
    ) {
        self.instant = now;
        if !self.waits_on_batch(tr, attempt, batch) {
            return;
        }
        let state = match answer {
            ChildAnswer::Refused(why) => {
                self.log(Some(tr), Level::Error, format!("batch {batch}: {why}"), now);
                State::Failed
            }
            // It does not wait for its batches' ends (`wait: false`).
            ChildAnswer::Created => State::Success,
            ChildAnswer::Ended { state, .. } => *state,
        };
        let Some(fan) = self.fans.get_mut(&tr) else {
            return;
        };
        fan.running.remove(&batch);
        match fan.ended.iter_mut().find(|(s, _)| *s == state) {
            Some((_, n)) => *n += 1,
            None => fan.ended.push((state, 1)),
        }
        if let Some(ended) = self.fill_fan(tr, now) {
            self.roll_up(tr, ended, now);
        }
    }

    /// The child task run `tr` waits for, if it waits for one.
    fn running_child(&self, tr: u32) -> Option<ExecutionId> {
        let attempt = self.attempt_of(tr);
        (self.waits_on_child(tr, attempt) && self.slots[tr as usize].waits == Waits::Child)
            .then(|| child_id(self.exec.id, tr, attempt, self.generation))
    }

    /// The child of attempt `attempt` of task run `tr` answered.
    pub fn on_child(&mut self, tr: u32, attempt: u32, answer: &ChildAnswer, now: DateTime<Utc>) {
        self.instant = now;
        if !self.waits_on_child(tr, attempt) {
            return;
        }
        if self.slots[tr as usize].waits == Waits::Retried {
            return match answer {
                ChildAnswer::Refused(why) => {
                    let ended = self.fail_task_run(tr, why, now);
                    self.roll_up(tr, ended, now);
                }
                ChildAnswer::Created | ChildAnswer::Ended { .. } => self.retried(tr, now),
            };
        }
        let child = child_id(self.exec.id, tr, attempt, self.generation);
        let started = self.call_task(tr, now, |kind, ctx| kind.on_child(ctx, child, answer));
        self.resume(tr, started, now);
    }

    /// The number of task run `tr`'s current attempt (its count of them).
    fn attempt_of(&self, tr: u32) -> u32 {
        self.exec.task_runs[tr as usize].attempts.len() as u32
    }

    fn ask_timer(&mut self, tr: u32, after: Duration, timeout: bool, now: DateTime<Utc>) -> i64 {
        let millis = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        let deadline_ms = deadline_ms(now, millis);
        self.timers.push(TimerRequest {
            deadline_ms,
            due: Due {
                task_run: tr,
                attempt: self.attempt_of(tr),
                timeout,
            },
        });
        deadline_ms
    }

    /// Asks for the timer of the task's `timeout` on the attempt that now
    /// waits, due that long after the attempt started; its deadline, if the
    /// task has a timeout.
    fn arm_timeout(&mut self, tr: u32, now: DateTime<Utc>) -> Option<i64> {
        let timeout = self.rev.node(self.slots[tr as usize].task).task.timeout?;
        let started = self.exec.task_runs[tr as usize]
            .attempts
            .last()
            .map_or(now, |a| a.state.start_date());
        Some(self.ask_timer(tr, timeout, true, started))
    }

    /// Whether a timer due for `due` still means something: its task run
    /// is at the same attempt and, for a timeout, that attempt still runs.
    pub fn is_due(&self, due: Due) -> bool {
        if due.task_run == BEGIN {
            return self.exec.state.current() == State::Created;
        }
        let Some(run) = self.exec.task_runs.get(due.task_run as usize) else {
            return false;
        };
        !self.is_terminal()
            && !run.state.current().is_terminal()
            && run.attempts.len() as u32 == due.attempt
            && (!due.timeout
                || (run.state.current() == State::Running
                    && self.slots[due.task_run as usize].waits != Waits::Nothing))
    }

    /// The timeout of attempt `attempt` of task run `tr` passed while it
    /// ran: the attempt fails (Kestra's `TimeoutExceededException`), and
    /// the retry that applies may run it again. Its work, if any, is
    /// answered too late to count.
    pub fn on_timeout(&mut self, tr: u32, attempt: u32, now: DateTime<Utc>) {
        self.instant = now;
        let due = Due {
            task_run: tr,
            attempt,
            timeout: true,
        };
        if !self.is_due(due) {
            return;
        }
        let timeout = self
            .rev
            .node(self.slots[tr as usize].task)
            .task
            .timeout
            .unwrap_or_default();
        if let Some(child) = self.running_child(tr) {
            self.kills.push(child);
        }
        self.drop_fan(tr);
        self.interrupt_work(tr);
        self.slots[tr as usize].waits = Waits::Nothing;
        self.attempt_failed(tr, format!("Timeout after {}", hms(timeout)), now);
    }

    /// If task run `tr` waits on a worker, its current attempt's work is
    /// interrupted: nobody waits for its answer any more.
    fn interrupt_work(&mut self, tr: u32) {
        if self.slots[tr as usize].waits == Waits::Worker
            && !self.exec.task_runs[tr as usize]
                .state
                .current()
                .is_terminal()
        {
            self.interrupts.push((tr, self.attempt_of(tr)));
        }
    }

    /// After a failed attempt: if the retry that applies (the task's, a
    /// flowable ancestor's or the flow's) allows another, the task run
    /// waits RETRYING on a timer and true is returned.
    fn schedule_retry(&mut self, tr: u32, message: &str, now: DateTime<Utc>) -> bool {
        let Some(retry) = self.rev.retry_of(self.slots[tr as usize].task).cloned() else {
            return false;
        };
        if retry.new_execution {
            return self.retry_as_new_execution(tr, &retry, message, now);
        }
        let run = &self.exec.task_runs[tr as usize];
        let attempts = run.attempts.len() as u32;
        if retry.max_attempt.is_some_and(|max| attempts >= max) {
            return false;
        }
        let delay = retry_delay(&retry.policy, attempts, run.id);
        if let Some(max) = retry.max_duration {
            let started = run.state.start_date();
            let next = now + chrono::Duration::from_std(delay).unwrap_or(chrono::TimeDelta::MAX);
            if next - started > chrono::Duration::from_std(max).unwrap_or(chrono::TimeDelta::MAX) {
                return false;
            }
        }
        if retry.max_attempt.is_none() && retry.max_duration.is_none() {
            return false;
        }
        self.log(
            Some(tr),
            Level::Warn,
            format!("attempt {attempts} failed, retrying in {delay:?}: {message}"),
            now,
        );
        let run = &mut self.exec.task_runs[tr as usize];
        if let Some(attempt) = run.attempts.last_mut() {
            attempt.state.transition(State::Failed, now);
        }
        run.state.transition(State::Retrying, now);
        self.ask_timer(tr, delay, false, now);
        true
    }

    /// `behavior: CREATE_NEW_EXECUTION` (Kestra's `nextRetryDate` of an
    /// execution and `RESTART_FAILED_FLOW`): unless this execution is the
    /// last attempt its retry allows, or the next would start past its
    /// `maxDuration` from the original's creation, a new execution of the
    /// flow (an attempt more of the original, this one its parent, the same
    /// inputs, labels and trigger) is created, to start after the retry's
    /// delay; once it exists, task run `tr`, its ancestors and this
    /// execution end RETRIED. True when it retries.
    fn retry_as_new_execution(
        &mut self,
        tr: u32,
        retry: &crate::flow::Retry,
        message: &str,
        now: DateTime<Utc>,
    ) -> bool {
        let lineage = self.exec.lineage.clone();
        if retry.max_attempt.is_some_and(|max| lineage.attempt >= max) {
            return false;
        }
        let delay = retry_delay(&retry.policy, lineage.attempt, self.exec.id);
        let start = now + chrono::Duration::from_std(delay).unwrap_or(chrono::TimeDelta::MAX);
        if let Some(max) = retry.max_duration {
            let max = chrono::Duration::from_std(max).unwrap_or(chrono::TimeDelta::MAX);
            if start - lineage.original_created > max {
                return false;
            }
        }
        if retry.max_attempt.is_none() && retry.max_duration.is_none() {
            return false;
        }
        self.log(
            Some(tr),
            Level::Warn,
            format!(
                "execution attempt {} failed, a new execution starts in {delay:?}: {message}",
                lineage.attempt
            ),
            now,
        );
        let link = ParentLink {
            execution: self.exec.id,
            task_run: tr,
            attempt: self.attempt_of(tr),
            wait: false,
            // A retry is no deeper than the execution it retries.
            depth: self.parent.map_or(0, |p| p.depth),
            generation: self.generation,
            batch: 0,
        };
        let inputs = match &self.exec.inputs {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        self.spawns.push(SpawnOrder {
            link,
            namespace: self.exec.namespace.to_string(),
            flow_id: self.exec.flow_id.to_string(),
            revision: Some(self.exec.flow_revision),
            inputs,
            labels: self.exec.labels.clone(),
            trigger: self.exec.trigger.clone().unwrap_or(Value::Null),
            schedule_date: Some(start),
            resend: false,
            lineage: Some(Lineage {
                attempt: lineage.attempt.saturating_add(1),
                parent_id: Some(self.exec.id),
                schedule_date: None,
                ..lineage
            }),
        });
        self.slots[tr as usize].waits = Waits::Retried;
        true
    }

    /// Its retry exists: task run `tr`, its ancestors and the execution
    /// end RETRIED (Kestra's `markWithTaskRunAs`).
    fn retried(&mut self, tr: u32, now: DateTime<Utc>) {
        let mut at = Some(tr);
        while let Some(t) = at {
            let run = &mut self.exec.task_runs[t as usize];
            run.state.transition(State::Retried, now);
            if let Some(attempt) = run.attempts.last_mut() {
                attempt.state.transition(State::Failed, now);
            }
            at = run.parent;
        }
        self.exec.state.transition(State::Retried, now);
    }

    /// A worker answered for attempt `attempt` of task run `tr`. A stale
    /// answer (an attempt superseded by a retry or a restart) is ignored.
    pub fn on_work_done(&mut self, tr: u32, attempt: u32, answer: Answer, now: DateTime<Utc>) {
        let Answer {
            result,
            logs,
            metrics,
            failed_outputs,
            warning,
        } = answer;
        self.instant = now;
        let Some(run) = self.exec.task_runs.get(tr as usize) else {
            return;
        };
        if self.is_terminal()
            || run.state.current() != State::Running
            || run.attempts.len() as u32 != attempt
        {
            return;
        }
        for line in logs {
            self.log(Some(tr), line.level, line.message, line.at);
        }
        for metric in metrics {
            self.measure(tr, metric);
        }
        if self
            .rev
            .node(self.slots[tr as usize].task)
            .task
            .is_flowable()
        {
            self.flowable_work_done(tr, result, now);
            return;
        }
        let state = if warning {
            State::Warning
        } else {
            State::Success
        };
        match result.and_then(|outputs| self.checked(outputs)) {
            Ok(outputs) => self.complete_async(tr, state, Some(outputs), now),
            Err(message) => {
                let outputs = failed_outputs.and_then(|o| self.checked(o).ok());
                self.attempt_failed_with(tr, message, outputs, now);
            }
        }
    }

    /// The running attempt of task run `tr` failed, out of line: retried if
    /// a retry applies, else the task run fails.
    fn attempt_failed(&mut self, tr: u32, message: String, now: DateTime<Utc>) {
        self.attempt_failed_with(tr, message, None, now);
    }

    /// The same, the task run keeping `outputs` if it fails.
    fn attempt_failed_with(
        &mut self,
        tr: u32,
        message: String,
        outputs: Option<Value>,
        now: DateTime<Utc>,
    ) {
        if !self.schedule_retry(tr, &message, now) {
            self.log(Some(tr), Level::Error, message, now);
            let outputs = outputs.unwrap_or_else(empty_outputs);
            self.complete_async(tr, State::Failed, Some(outputs), now);
        }
    }

    /// Task runs waiting on a worker (after a replay: the answers that never
    /// came back).
    pub fn waiting_work(&self) -> Vec<u32> {
        (0..self.exec.task_runs.len() as u32)
            .filter(|&tr| {
                self.slots[tr as usize].waits == Waits::Worker
                    && self.exec.task_runs[tr as usize].state.current() == State::Running
            })
            .collect()
    }

    /// Starts task run `tr` again as a new attempt: its last one is lost
    /// (at least once: the task may have run).
    pub fn redispatch(&mut self, tr: u32, now: DateTime<Utc>) {
        self.instant = now;
        if self
            .rev
            .node(self.slots[tr as usize].task)
            .task
            .is_flowable()
        {
            // A flowable task run has no attempts: its work is asked again,
            // the closing work if its frame had settled.
            let closing = self
                .frame_of(tr)
                .and_then(|f| self.frames[f].closing.map(|state| (f, state)));
            match closing {
                Some((f, state)) => {
                    if let Some(ended) = self.close_frame(tr, f, state, now) {
                        self.roll_up(tr, ended, now);
                    }
                }
                None => {
                    let started = self.call_task(tr, now, |kind, ctx| kind.start(ctx));
                    self.resume(tr, started, now);
                }
            }
            return;
        }
        let run = &mut self.exec.task_runs[tr as usize];
        if let Some(attempt) = run.attempts.last_mut() {
            attempt.state.transition(State::Failed, now);
        }
        let mut attempt = StateHistory::new(State::Created, now);
        attempt.transition(State::Running, now);
        run.attempts.push(Attempt { state: attempt });
        let started = self.call_task(tr, now, |kind, ctx| kind.start(ctx));
        self.resume(tr, started, now);
    }

    /// A retry timer fired: run the task again as a new attempt.
    fn retry_attempt(&mut self, tr: u32, now: DateTime<Utc>) {
        let run = &mut self.exec.task_runs[tr as usize];
        run.state.transition(State::Running, now);
        let mut attempt = StateHistory::new(State::Created, now);
        attempt.transition(State::Running, now);
        run.attempts.push(Attempt { state: attempt });
        let started = self.call_task(tr, now, |kind, ctx| kind.start(ctx));
        self.resume(tr, started, now);
    }

    fn fail_task_run(&mut self, tr: u32, message: &str, now: DateTime<Utc>) -> State {
        self.log(Some(tr), Level::Error, message.to_owned(), now);
        // A runnable that ran and failed has empty outputs, as in Kestra.
        let outputs = (!self.exec.task_runs[tr as usize].attempts.is_empty()).then(empty_outputs);
        self.finish_task_run(tr, State::Failed, outputs, now)
    }

    /// Ends a task run. `allowFailure` turns FAILED into WARNING (the
    /// attempt stays FAILED) and `allowWarning` WARNING into SUCCESS; the
    /// state the task run ends in is returned.
    fn finish_task_run(
        &mut self,
        tr: u32,
        state: State,
        outputs: Option<Value>,
        now: DateTime<Utc>,
    ) -> State {
        let task = &self.rev.node(self.slots[tr as usize].task).task;
        let mut ended = state;
        if ended == State::Failed && task.allow_failure {
            ended = State::Warning;
        }
        if ended == State::Warning && task.allow_warning {
            ended = State::Success;
        }
        let run = &mut self.exec.task_runs[tr as usize];
        run.state.transition(ended, now);
        if let Some(attempt) = run.attempts.last_mut() {
            attempt.state.transition(state, now);
        }
        if let Some(outputs) = outputs {
            self.set_outputs(tr, outputs);
        }
        ended
    }

    fn finish_execution(&mut self, state: State, now: DateTime<Utc>) {
        if self.rev.flow().outputs.is_empty() {
            self.exec.state.transition(state, now);
            return;
        }
        // Kestra renders flow outputs whatever the state; a failure to render
        // them fails the execution after the state it would have had.
        match self.render_flow_outputs() {
            Ok(outputs) => {
                self.exec.outputs = Some(self.mask_value(outputs));
                self.exec.state.transition(state, now);
            }
            Err(message) => {
                self.log(None, Level::Error, message.clone(), now);
                self.exec.error = Some(message);
                self.exec.state.transition(state, now);
                self.exec.state.transition(State::Failed, now);
            }
        }
    }

    fn render_flow_outputs(&self) -> Result<Value, String> {
        let mut map = Map::new();
        for output in &self.rev.flow().outputs {
            let value = self
                .render(&output.value, None)
                .and_then(|v| typed_output(&output.type_, v))
                .map_err(|e| format!("flow output `{}`: {e}", output.id))?;
            map.insert(output.id.clone(), value);
        }
        Ok(Value::Object(map))
    }

    // ---- frames ----

    /// Opens the frame of a flowable task run as its task planned it.
    fn open_frame(&mut self, tr: u32, plan: FramePlan) -> Result<usize, String> {
        let rev = Arc::clone(&self.rev);
        let node = rev.node(self.slots[tr as usize].task);
        let list = |i: usize| {
            node.children
                .get(i)
                .copied()
                .ok_or_else(|| format!("`{}` has no task list {i}", node.task.type_name))
        };
        // Checked before the groups are built: a ForEach over a million
        // values is refused before it costs a million of anything.
        let planned = match &plan.groups {
            Groups::Sequence(i) | Groups::EachTask(i) => rev.list(list(*i)?).len(),
            Groups::PerValue(i, values) | Groups::EachTaskPerValue(i, values) => {
                values.len().saturating_mul(rev.list(list(*i)?).len())
            }
        };
        let existing = self.exec.task_runs.len();
        let max = self.limits.max_task_runs;
        if existing.saturating_add(planned) > max as usize {
            return Err(limits::too_many_task_runs(planned, existing, max));
        }
        let groups = match plan.groups {
            Groups::Sequence(i) => vec![whole_list(&rev, list(i)?)],
            Groups::EachTask(i) => each_task(&rev, list(i)?, None),
            Groups::PerValue(i, values) => per_value(&rev, list(i)?, values),
            Groups::EachTaskPerValue(i, values) => {
                let list = list(i)?;
                values
                    .into_iter()
                    .flat_map(|v| each_task(&rev, list, Some(v)))
                    .collect()
            }
        };
        let kind = if plan.dag {
            if node.dag_deps.len() != groups.len() {
                return Err(format!(
                    "`{}` has {} dependency lists for {} tasks",
                    node.task.type_name,
                    node.dag_deps.len(),
                    groups.len()
                ));
            }
            FrameKind::Dependencies
        } else if plan.allow_failure {
            FrameKind::FailureAllowed
        } else {
            FrameKind::Plain
        };
        let frame = Frame {
            owner: Some(tr),
            kind,
            phase: Phase::Main,
            groups,
            cursor: 0,
            active: 0,
            limit: plan.limit,
            outcome: Outcome::default(),
            stopped: false,
            epoch: 0,
            finished: false,
            parallel_errors: plan.parallel_errors,
            errors: node.errors,
            finally: node.finally,
            dag_deps: node.dag_deps.clone(),
            again: Vec::new(),
            iterations: 0,
            between: false,
            closing: None,
        };
        let mut frame = frame;
        if plan.repeats {
            frame.again = frame.groups.clone();
        }
        self.frames.push(frame);
        self.set_outputs(tr, plan.outputs);
        Ok(self.frames.len() - 1)
    }

    /// Ends this created, never started execution FAILED with `why`: it is
    /// not run (see `Shard::quarantine`).
    pub fn quarantine(&mut self, why: String, now: DateTime<Utc>) {
        self.instant = now;
        self.exec.state.transition(State::Running, now);
        self.exec.state.transition(State::Failed, now);
        self.exec.error = Some(why.clone());
        self.log(None, Level::Error, why, now);
    }

    /// The final record of this ended execution when the whole of it would
    /// be over `max_final_bytes`: the execution fails, saying why, and
    /// what makes it large goes, step by step, until its record fits (its
    /// outputs; then its task runs' values and all but its last log lines;
    /// then its task runs). An end can always be journaled.
    pub fn cut_to_fit(&mut self, size: usize) -> Record {
        let max = self.limits.max_final_bytes;
        let now = self.instant;
        let message = format!(
            "The execution's final state is {size} bytes, over the limit of {max} bytes \
             (setting `executions.max-final-size`): its outputs were dropped and it failed"
        );
        for run in &mut self.exec.task_runs {
            if run.outputs.is_some() {
                run.outputs = Some(Arc::new(empty_outputs()));
            }
        }
        self.exec.outputs = None;
        self.exec.state.transition(State::Failed, now);
        self.exec.error = Some(message.clone());
        self.log(None, Level::Error, message, now);
        let record = Record::of(&self.exec);
        if record.as_bytes().len() <= max {
            return record;
        }
        for run in &mut self.exec.task_runs {
            if run.value.as_ref().is_some_and(|v| v.len() > 256) {
                run.value = Some(Arc::from("(dropped: the final state was too large)"));
            }
        }
        self.exec.logs.keep_last(100, 1024);
        let record = Record::of(&self.exec);
        if record.as_bytes().len() <= max {
            return record;
        }
        self.exec.task_runs.clear();
        Record::of(&self.exec)
    }

    /// `outputs`, if within the limit on one task run's outputs, with the
    /// secrets' values in them masked.
    fn checked(&self, outputs: Value) -> Result<Value, String> {
        let outputs = self.mask_value(outputs);
        let max = self.limits.max_outputs_bytes;
        let size = crate::expression::json_size(&outputs, max);
        if size > max {
            return Err(limits::outputs_too_large(size, max));
        }
        Ok(outputs)
    }

    fn set_outputs(&mut self, tr: u32, outputs: Value) {
        self.set_shared_outputs(tr, Arc::new(outputs));
    }

    fn set_shared_outputs(&mut self, tr: u32, outputs: Arc<Value>) {
        self.exec.task_runs[tr as usize].outputs = Some(Arc::clone(&outputs));
        let slot = &self.slots[tr as usize];
        let task_id = &self.rev.node(slot.task).task_id;
        self.outputs.insert(task_id, &slot.chain, outputs);
    }

    // ---- helpers ----

    fn render(&self, property: &Property, tr: Option<u32>) -> Result<Value, String> {
        let ctx = RenderContext::new(self, tr);
        property.render(&ctx).map_err(|e| e.to_string())
    }

    /// Keeps a metric task run `tr` recorded, its name and tags masked.
    fn measure(&mut self, tr: u32, metric: crate::tasks::JobMetric) {
        let run = &self.exec.task_runs[tr as usize];
        let (task_id, task_run) = (Arc::clone(&run.task_id), run.id);
        let name = self.mask(metric.name);
        let tags = metric
            .tags
            .into_iter()
            .map(|(k, v)| (self.mask(k), self.mask(v)))
            .collect();
        self.exec.metrics.push(Metric {
            date: metric.at,
            task_id,
            task_run,
            kind: metric.kind,
            name,
            value: metric.value,
            tags,
        });
    }

    fn log(&mut self, tr: Option<u32>, level: Level, message: String, now: DateTime<Utc>) {
        let message = self.mask(message);
        let task_id = tr.map(|t| Arc::clone(&self.exec.task_runs[t as usize].task_id));
        let task_run = tr.map(|t| {
            let run = &self.exec.task_runs[t as usize];
            let attempt = u32::try_from(run.attempts.len().saturating_sub(1)).unwrap_or(u32::MAX);
            (run.id, attempt)
        });
        match level {
            Level::Error => tracing::warn!(execution = %self.exec.id, task = ?task_id, "{message}"),
            _ => tracing::debug!(execution = %self.exec.id, task = ?task_id, "{message}"),
        }
        self.exec.logs.push(LogEntry {
            date: now,
            level,
            task_id,
            task_run,
            message,
        });
    }
}

/// A task run's id follows from its execution and its place in it (and the
/// execution's restarts: indices start again at each), so that replaying an
/// execution's journal rebuilds the same ids.
fn task_run_id(execution: ExecutionId, generation: u32, index: u32) -> Id {
    let mut bytes = [0u8; 24];
    bytes[..16].copy_from_slice(&execution.as_u128().to_le_bytes());
    bytes[16..20].copy_from_slice(&index.to_le_bytes());
    bytes[20..].copy_from_slice(&generation.to_le_bytes());
    // An execution never restarted derives what it always did.
    let len = if generation == 0 { 20 } else { 24 };
    Id::derive(&bytes[..len])
}

/// `from` merged into `into`: maps key by key, anything else replaced
/// (Kestra's `MapUtils.deepMerge`).
pub(crate) fn deep_merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                match into.get_mut(&key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (into, from) => *into = from,
    }
}

/// Whether Dag group `g` waits, directly or not, for group `on`.
fn depends_on(deps: &[Vec<u32>], g: u32, on: u32) -> bool {
    let mut seen = vec![false; deps.len()];
    let mut stack = vec![g];
    while let Some(at) = stack.pop() {
        for &d in deps.get(at as usize).map_or(&[][..], Vec::as_slice) {
            if d == on {
                return true;
            }
            if !std::mem::replace(&mut seen[d as usize], true) {
                stack.push(d);
            }
        }
    }
    false
}

/// A duration as Kestra writes it in a timeout's message
/// (`DurationFormatUtils.formatDurationHMS`): `00:01:30.000`.
fn hms(d: Duration) -> String {
    let ms = d.as_millis();
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
    format!("{h:02}:{m:02}:{s:02}.{:03}", ms % 1000)
}

/// `now + millis` in epoch milliseconds, rounded up: a timer never fires
/// before its full duration has passed.
fn deadline_ms(now: DateTime<Utc>, millis: i64) -> i64 {
    let sub_ms = !now.timestamp_subsec_nanos().is_multiple_of(1_000_000);
    now.timestamp_millis()
        .saturating_add(i64::from(sub_ms))
        .saturating_add(millis)
}

fn whole_list(rev: &FlowRevision, list: ListId) -> Group {
    Group {
        list,
        pos: 0,
        end: rev.list(list).len() as u32,
        value: None,
        iteration: None,
        status: GroupStatus::Pending,
    }
}

/// One group per loop value, each running all of `list` with that value.
fn per_value(rev: &FlowRevision, list: ListId, values: Vec<Arc<str>>) -> Vec<Group> {
    let end = rev.list(list).len() as u32;
    values
        .into_iter()
        .map(|v| Group {
            list,
            pos: 0,
            end,
            value: Some(v),
            iteration: None,
            status: GroupStatus::Pending,
        })
        .collect()
}

/// One group per task of `list`, for tasks that run side by side.
fn each_task(rev: &FlowRevision, list: ListId, value: Option<Arc<str>>) -> Vec<Group> {
    (0..rev.list(list).len() as u32)
        .map(|pos| Group {
            list,
            pos,
            end: pos + 1,
            value: value.clone(),
            iteration: None,
            status: GroupStatus::Pending,
        })
        .collect()
}

/// The wait before attempt `attempts + 1`. A random policy draws from the
/// task run's id, so that a replay waits the same.
fn retry_delay(policy: &RetryPolicy, attempts: u32, id: Id) -> std::time::Duration {
    use std::time::Duration;
    match policy {
        RetryPolicy::Constant { interval } => *interval,
        RetryPolicy::Exponential {
            interval,
            max_interval,
            delay_factor,
        } => {
            let factor = delay_factor.unwrap_or(2.0).max(1.0);
            let exponent = attempts.saturating_sub(1).min(64) as i32;
            let secs = interval.as_secs_f64() * factor.powi(exponent);
            Duration::from_secs_f64(secs.min(max_interval.as_secs_f64()).max(0.0))
        }
        RetryPolicy::Random {
            min_interval,
            max_interval,
        } => {
            let span = max_interval.saturating_sub(*min_interval).as_millis() as u64;
            let draw = (id.as_u128() as u64
                ^ u64::from(attempts).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                % span.max(1);
            *min_interval + Duration::from_millis(draw)
        }
    }
}

/// What a task run waiting on batches shows: their number, and how many
/// are in each state (CREATED: not started yet; RUNNING: waited for).
fn fan_outputs(fan: &Fan) -> Value {
    let mut iterations = Map::new();
    let waiting = fan.items.len() as u32 - fan.started;
    if waiting > 0 {
        iterations.insert(State::Created.as_str().to_owned(), waiting.into());
    }
    if !fan.running.is_empty() {
        iterations.insert(State::Running.as_str().to_owned(), fan.running.len().into());
    }
    for (state, n) in &fan.ended {
        iterations.insert(state.as_str().to_owned(), (*n).into());
    }
    serde_json::json!({
        "numberOfBatches": fan.items.len(),
        "iterations": iterations,
    })
}

fn empty_outputs() -> Value {
    Value::Object(Map::new())
}

/// A rendered flow output converted to its declared type, as Kestra does.
fn typed_output(declared: &InputType, value: Value) -> Result<Value, String> {
    let text_of = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let parsed = |v: Value| -> Result<Value, String> {
        match v {
            Value::String(s) => {
                serde_json::from_str(&s).map_err(|e| format!("`{s}` is not JSON: {e}"))
            }
            other => Ok(other),
        }
    };
    match declared {
        InputType::Int { .. } => text_of(&value)
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("`{}` is not an INT", text_of(&value))),
        InputType::Float { .. } => text_of(&value)
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("`{}` is not a FLOAT", text_of(&value))),
        InputType::Boolean => match text_of(&value).trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            other => Err(format!("`{other}` is not a BOOLEAN")),
        },
        InputType::Array { .. } | InputType::MultiSelect { .. } => match parsed(value)? {
            list @ Value::Array(_) => Ok(list),
            other => Err(format!("`{other}` is not an ARRAY")),
        },
        InputType::Json => parsed(value),
        InputType::String { .. } => Ok(Value::String(text_of(&value))),
        _ => Ok(value),
    }
}
