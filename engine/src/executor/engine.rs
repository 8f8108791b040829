//! The runtime: one thread per shard, executions hash-partitioned across
//! their inboxes, the worker pool, and a local driver that runs one
//! execution on the caller's thread.
//!
//! The runtime is what the shard's state machine is not: it owns the
//! threads, reads the clock once per message, and carries out the effects a
//! step returns: it answers the caller that asked (the reply channel stays
//! here, the shard only sees a request id), hands work to the pool, and
//! tells the observer about changes.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use super::config_vars::ConfigVariables;
use super::courier::{ChildNews, Courier, Flows, Parcel};
use super::finished::Finished;
use super::gate::{Note, Verdict};
use super::inbox::{PushError, Receiver, Sender, inbox};
use super::limits::Limits;
use super::plan::{FlowLookup, FlowRevision};
use super::run::{NewExecution, Replays};
use super::search::{Counts, Filter, Newest, Tally};
use super::shard::{
    Deleted, Effect, KillOutcome, Message, Relabelled, Reply, RequestId, RestartOutcome,
    RestoreError, ResumeOutcome, Shard, Snapshot, Started, Stored,
};
use super::worker::{self, TriggerSwitch, WorkDone, WorkOrder, WorkerHandle, WorkerPool};
use crate::execution::{Execution, ExecutionId, Record, State, TaskRunId};
use crate::journal::{self, JournalError, Receipt, Recovered, WalJournal};
use crate::logs::LogStore;
use crate::metric_store::MetricStore;
use crate::tasks::WorkerEnv;

/// Sees every change of every execution, on the shard's thread, after the
/// step that made it. Keep it cheap: build only what someone waits for.
pub trait Observer: Send + Sync + 'static {
    fn on_change(&self, change: &Change<'_>);
}

/// One change of an execution.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub execution: &'a Execution,
    /// Where the records behind the change stand: wait on it before telling
    /// anyone (commit before externalize).
    pub receipt: &'a Receipt,
    /// The execution's final record, when this change ended it.
    pub ended: Option<&'a Record>,
}

/// Stack of the threads that evaluate expressions (shards, recovery):
/// reserved, not resident until used. A jq program within its budgets can
/// build a value nested millions deep (`reduce range(n) as $i (null;
/// [.])`, three steps a level), whose drop recurses once per level: 512
/// MiB held a release build's drop of 3 million levels, about what the
/// default 10 million steps allow, where a default 2 MiB thread
/// overflowed at 20,000 (which aborts the process). Evaluation itself may
/// take 8 MiB of it.
pub(crate) const EVAL_STACK_BYTES: usize = 512 << 20;

/// How the executor runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Shard threads. Default: one per CPU.
    pub threads: NonZeroUsize,
    /// Messages each shard's inbox holds before pushing back. Default: 4096.
    pub inbox_capacity: NonZeroUsize,
    /// Messages a shard handles before it publishes changes and checks timers.
    pub batch: NonZeroUsize,
    /// Threads for blocking tasks (HTTP calls). Default: 8.
    pub workers: NonZeroUsize,
    /// Blocking jobs queued for the workers before shards hold them back.
    /// Default: 4096.
    pub work_queue: NonZeroUsize,
    /// Executions running at once, at most; a start past it is refused.
    /// Default: unbounded.
    pub max_running: Option<NonZeroUsize>,
    /// How long a finished execution stays readable. Default: 24 hours.
    pub retention: Duration,
    /// Finished executions kept in memory, at most, across shards (the
    /// oldest go first): what search sees. A durable engine keeps the rest
    /// on disk, readable by id ([`Engine::read_retained`]), within the
    /// budgets below. Default: 100,000.
    pub max_finished: NonZeroUsize,
    /// Finished executions a durable engine keeps on disk, at most, across
    /// shards; past it the oldest go, whatever their age. `None`: no count
    /// budget. Each costs the WAL's index about 230 bytes of memory (see
    /// BENCHMARKS.md): 800,000 fill the index's tables to three quarters at
    /// any power-of-two number of shards, where a million would leave them
    /// half empty, for 40% more memory. Default: 800,000.
    pub max_retained: Option<u64>,
    /// Bytes the final records of those finished executions may take on
    /// disk, across shards. `None`: no size budget. Default: 1 GiB.
    pub retention_size: Option<u64>,
    /// What each execution may spend.
    pub limits: Limits,
    /// Longest a start may wait in its shard's inbox: a start that would
    /// wait longer (the inbox's length times what a message costs the shard
    /// lately) is refused at once ([`Refusal::Overloaded`]) rather than
    /// queued. `None`: queue up to the inbox's capacity. Default: 1 s.
    pub queueing_budget: Option<Duration>,
    /// The flows a Subflow may start; `None`: a Subflow fails, saying so.
    pub flows: Option<Arc<dyn Flows>>,
    /// What templates read as Kestra's `envs` and `globals`. Not journaled:
    /// a replay after a restart renders with the new process's. Default:
    /// both empty.
    pub variables: ConfigVariables,
    /// The triggers a `trigger.Toggle` task turns on and off; `None`: it
    /// fails, saying so.
    pub triggers: Option<Arc<dyn TriggerSwitch>>,
    /// Where the lines executions log are kept for the log API, and what
    /// `log.PurgeLogs` deletes from; `None`: they stay in each running
    /// execution only.
    pub logs: Option<LogStore>,
    /// Where the metrics task runs record are kept for the metric API, and
    /// what `execution.PurgeExecutions` deletes from; `None`: they stay in
    /// each running execution only.
    pub metrics: Option<MetricStore>,
    /// Processes scripts run at once, at most, across the workers; a
    /// script past it waits (within its timeout) for one to end. Default:
    /// one per CPU, at least 2.
    pub max_processes: NonZeroUsize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let n = |v: usize| NonZeroUsize::new(v).unwrap_or(NonZeroUsize::MIN);
        Self {
            threads: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            inbox_capacity: n(4096),
            batch: n(256),
            workers: n(8),
            work_queue: n(4096),
            max_running: None,
            retention: Duration::from_secs(24 * 3600),
            max_finished: n(100_000),
            max_retained: Some(800_000),
            retention_size: Some(1 << 30),
            limits: Limits::default(),
            queueing_budget: Some(Duration::from_secs(1)),
            flows: None,
            variables: ConfigVariables::default(),
            triggers: None,
            logs: None,
            metrics: None,
            max_processes: std::thread::available_parallelism()
                .unwrap_or(NonZeroUsize::MIN)
                .max(n(2)),
        }
    }
}

/// Why the engine did not take a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The shard's inbox is full: backpressure, try again later.
    #[error("the shard's inbox is full")]
    Full,
    /// `max_running` executions are running already.
    #[error("{0} executions are running, the most allowed")]
    TooMany(usize),
    /// A start would wait in the shard's queue longer than the queueing
    /// budget (its length times what a message costs the shard lately).
    #[error(
        "the executor is overloaded: a new execution would wait about {waited:?} in its queue, over the budget of {budget:?}"
    )]
    Overloaded { waited: Duration, budget: Duration },
    /// The shard's journal is out of disk space: new executions wait until
    /// space returns (running ones go on in the room left).
    #[error("the data folder is out of disk space")]
    NoSpace,
    /// The engine is stopping or stopped.
    #[error("the engine has stopped")]
    Stopped,
}

/// Where a replay starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The start: a new execution with the same inputs.
    Start,
    /// This task run: what came before it is kept.
    TaskRun(TaskRunId),
    /// The failed task runs, as a restart does.
    Failed,
}

/// Why a replay did not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("Execution must be terminated to be replayed, current state is '{0}' !")]
    NotEnded(State),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Refused(SubmitError),
}

/// A start the engine refused; the execution comes back to the caller.
#[derive(Debug, thiserror::Error)]
#[error("{refusal}")]
pub struct SubmitError {
    pub refusal: Refusal,
    pub execution: Box<NewExecution>,
}

/// What a start is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// The receipt of the creation.
    Receipt,
    /// The receipt, and the execution as its first step left it.
    Snapshot,
}

/// The engine stopped before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the engine stopped before answering")]
pub struct Stopped;

/// An answer on its way from a shard.
#[derive(Debug)]
pub struct Pending<T> {
    rx: flume::Receiver<T>,
}

impl<T> Pending<T> {
    fn channel() -> (flume::Sender<T>, Self) {
        let (tx, rx) = flume::bounded(1);
        (tx, Self { rx })
    }

    fn ready(value: T) -> Self {
        let (tx, pending) = Self::channel();
        // A fresh channel of capacity 1 has room for one value.
        let _ = tx.send(value);
        pending
    }

    /// Blocks until the answer comes.
    pub fn wait(self) -> Result<T, Stopped> {
        self.rx.recv().map_err(|_| Stopped)
    }

    /// The answer if it has come, without waiting.
    pub fn try_take(&self) -> Option<Result<T, Stopped>> {
        match self.rx.try_recv() {
            Ok(value) => Some(Ok(value)),
            Err(flume::TryRecvError::Empty) => None,
            Err(flume::TryRecvError::Disconnected) => Some(Err(Stopped)),
        }
    }

    /// Resolves with the answer; needs no particular runtime.
    pub async fn answer(self) -> Result<T, Stopped> {
        self.rx.recv_async().await.map_err(|_| Stopped)
    }
}

/// One page of a search, newest first, and how many executions matched.
#[derive(Debug)]
pub struct Page {
    pub results: Vec<Snapshot>,
    pub total: usize,
}

/// A search on its way: the finished executions were scanned already; the
/// running ones are being listed by their shards.
#[derive(Debug)]
pub struct Search {
    finished: Newest<Snapshot>,
    shards: Vec<Pending<Newest<Snapshot>>>,
    skip: usize,
}

impl Search {
    fn page(mut self, running: Vec<Newest<Snapshot>>) -> Page {
        for part in running {
            self.finished.merge(part);
        }
        let (newest, total) = self.finished.into_sorted();
        Page {
            results: newest.into_iter().skip(self.skip).collect(),
            total,
        }
    }

    /// Blocks until every shard has answered.
    pub fn wait(mut self) -> Result<Page, Stopped> {
        let shards = std::mem::take(&mut self.shards);
        let running = shards
            .into_iter()
            .map(Pending::wait)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.page(running))
    }

    /// Resolves once every shard has answered.
    pub async fn answer(mut self) -> Result<Page, Stopped> {
        let shards = std::mem::take(&mut self.shards);
        let mut running = Vec::with_capacity(shards.len());
        for part in shards {
            running.push(part.answer().await?);
        }
        Ok(self.page(running))
    }
}

/// What callers hand a shard: a message and where its answer goes.
pub(crate) enum Command {
    Start {
        new: Box<NewExecution>,
        ack: Ack,
        reply: flume::Sender<Started>,
    },
    Kill {
        id: ExecutionId,
        cascade: bool,
        reply: flume::Sender<KillOutcome>,
    },
    Read {
        id: ExecutionId,
        reply: flume::Sender<Option<Snapshot>>,
    },
    Search {
        filter: Arc<Filter>,
        limit: usize,
        reply: flume::Sender<Newest<Snapshot>>,
    },
    /// How many executions this shard holds, running or finished, as the
    /// tally says (an `execution.Count`, from the courier).
    Count {
        tally: Arc<Tally>,
        reply: flume::Sender<Counts>,
    },
    Delete {
        ids: Vec<ExecutionId>,
        reply: flume::Sender<Deleted>,
    },
    Relabel {
        id: ExecutionId,
        labels: Vec<(String, String)>,
        stored: Stored,
        reply: flume::Sender<Relabelled>,
    },
    Resume {
        id: ExecutionId,
        inputs: Box<serde_json::Map<String, serde_json::Value>>,
        reply: flume::Sender<ResumeOutcome>,
    },
    Restart {
        id: ExecutionId,
        rev: Option<Arc<FlowRevision>>,
        stored: Stored,
        reply: flume::Sender<RestartOutcome>,
    },
    WorkDone(Box<WorkDone>),
    Child(Box<ChildNews>),
    Admitted {
        id: ExecutionId,
        verdict: Verdict,
    },
}

/// Where the answer to a request goes; kept by the shard's runtime, never
/// by the shard.
enum ReplyTo {
    Started(flume::Sender<Started>),
    Kill(flume::Sender<KillOutcome>),
    Read(flume::Sender<Option<Snapshot>>),
    Search(flume::Sender<Newest<Snapshot>>),
    Count(flume::Sender<Counts>),
    Delete(flume::Sender<Deleted>),
    Relabel(flume::Sender<Relabelled>),
    Resume(flume::Sender<ResumeOutcome>),
    Restart(flume::Sender<RestartOutcome>),
}

impl Command {
    fn into_message(self, request: RequestId) -> (Message, Option<ReplyTo>) {
        match self {
            Command::Start { new, ack, reply } => (
                Message::Start {
                    new,
                    request,
                    snapshot: ack == Ack::Snapshot,
                },
                Some(ReplyTo::Started(reply)),
            ),
            Command::Kill { id, cascade, reply } => (
                Message::Kill {
                    id,
                    cascade,
                    request,
                },
                Some(ReplyTo::Kill(reply)),
            ),
            Command::Read { id, reply } => {
                (Message::Read { id, request }, Some(ReplyTo::Read(reply)))
            }
            Command::Search {
                filter,
                limit,
                reply,
            } => (
                Message::Search {
                    filter,
                    limit,
                    request,
                },
                Some(ReplyTo::Search(reply)),
            ),
            Command::Count { tally, reply } => (
                Message::Count { tally, request },
                Some(ReplyTo::Count(reply)),
            ),
            Command::Delete { ids, reply } => (
                Message::Delete { ids, request },
                Some(ReplyTo::Delete(reply)),
            ),
            Command::Relabel {
                id,
                labels,
                stored,
                reply,
            } => (
                Message::Relabel {
                    id,
                    labels,
                    stored,
                    request,
                },
                Some(ReplyTo::Relabel(reply)),
            ),
            Command::Resume { id, inputs, reply } => (
                Message::Resume {
                    id,
                    inputs,
                    request,
                },
                Some(ReplyTo::Resume(reply)),
            ),
            Command::Restart {
                id,
                rev,
                stored,
                reply,
            } => (
                Message::Restart {
                    id,
                    rev,
                    stored,
                    request,
                },
                Some(ReplyTo::Restart(reply)),
            ),
            Command::WorkDone(done) => (Message::WorkDone(done), None),
            Command::Child(news) => (Message::Child(news), None),
            Command::Admitted { id, verdict } => (Message::Admitted { id, verdict }, None),
        }
    }
}

/// Counts running executions against `max_running`: one is counted from
/// its submission until it ends (or its start finds it existed).
#[derive(Debug)]
pub(crate) struct Admission {
    pub(crate) running: AtomicUsize,
    max: usize,
    /// The queueing budget, in microseconds (`u64::MAX`: none).
    budget_us: u64,
    /// What the clocks below count from.
    epoch: Instant,
    queues: Box<[Queue]>,
}

/// How long work waits in one shard's inbox: what its thread publishes.
#[derive(Debug, Default)]
struct Queue {
    /// When the shard took the message it is handling (0: idle). A shard
    /// held up by one long step has everything behind it waiting that long.
    busy_since_us: AtomicU64,
    /// What handling one message costs the shard lately, in nanoseconds
    /// (a moving average of the time between the messages it takes while
    /// busy, so it counts the batch's tick and publishing too).
    cost_ns: AtomicU64,
}

impl Admission {
    fn micros(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Refuses a start on `shard` while a start joining its inbox (`queued`
    /// messages long) would wait past the budget: the queue's length times
    /// what a message costs, plus what the message being handled has taken
    /// so far. Predicted, not observed, so that shedding starts when the
    /// queue grows, not one budget later.
    fn check_queue(&self, shard: usize, queued: usize) -> Result<(), Refusal> {
        if self.budget_us == u64::MAX {
            return Ok(());
        }
        let queue = &self.queues[shard];
        let cost_ns = queue.cost_ns.load(Ordering::Relaxed);
        let mut wait_us = (queued as u64).saturating_mul(cost_ns) / 1000;
        let since = queue.busy_since_us.load(Ordering::Relaxed);
        if since != 0 {
            wait_us = wait_us.saturating_add(self.micros().saturating_sub(since));
        }
        if wait_us > self.budget_us {
            return Err(Refusal::Overloaded {
                waited: Duration::from_micros(wait_us),
                budget: Duration::from_micros(self.budget_us),
            });
        }
        Ok(())
    }

    /// Shard `shard` took a message.
    fn taking(&self, shard: usize) {
        let queue = &self.queues[shard];
        let now = self.micros().max(1);
        let since = queue.busy_since_us.swap(now, Ordering::Relaxed);
        if since != 0 {
            // Busy since the last one: that is what the last one cost.
            let sample = now.saturating_sub(since).saturating_mul(1000);
            let cost = queue.cost_ns.load(Ordering::Relaxed);
            let cost = if cost == 0 {
                sample
            } else {
                cost - cost / 8 + sample / 8
            };
            queue.cost_ns.store(cost, Ordering::Relaxed);
        }
    }

    /// Shard `shard` emptied its inbox: nothing waits.
    fn idle(&self, shard: usize) {
        self.queues[shard].busy_since_us.store(0, Ordering::Relaxed);
    }

    fn admit(&self) -> Result<(), Refusal> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map(drop)
            .map_err(Refusal::TooMany)
    }

    fn release(&self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why an execution found in a journal was not recovered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unrecoverable {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot resume: {0}")]
    Restore(#[from] RestoreError),
}

/// What recovery found when a durable engine started.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Executions that were in flight and resumed.
    pub resumed: usize,
    /// Finished executions kept readable (within the retention).
    pub finished: usize,
    /// Executions that could not be rebuilt, and why (those that lost
    /// records to damage are in `damaged` instead).
    pub failed: Vec<(ExecutionId, Unrecoverable)>,
    /// Executions the process died working on twice in a row: failed
    /// from their creation rather than replayed again.
    pub quarantined: Vec<ExecutionId>,
    /// Executions whose journal lost records to WAL damage that
    /// `skip_damaged` dropped, as the damaged bytes name them, and what is
    /// left of each. Damage that names no key (a missing or cut-short
    /// segment) is in `reports`; the executions it took whose later records
    /// are left show up in `failed` (their journal lost its creation).
    pub damaged: Vec<Damaged>,
    /// What each shard's WAL recovery read, repaired and dropped.
    pub reports: Vec<peregrine_wal::RecoveryReport>,
}

/// An execution whose journal lost records to WAL damage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    pub id: ExecutionId,
    /// Where the records were lost: the damaged file and byte offset.
    pub path: std::path::PathBuf,
    pub offset: u64,
    pub left: Left,
}

/// What is left of an execution after WAL damage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Left {
    /// None of its records: it is gone.
    Nothing,
    /// It was running, and resumed from the records left; it may do again
    /// what the lost records said it had done.
    Resumed,
    /// Its final record is left: it stays readable as it ended.
    Finished,
    /// What is left cannot be replayed (its creation was lost...).
    Unrecoverable(Unrecoverable),
}

impl std::fmt::Display for Left {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Left::Nothing => write!(f, "nothing of it is left: it is lost"),
            Left::Resumed => write!(
                f,
                "resumed from the records left: it may do again what the lost records said it had done"
            ),
            Left::Finished => write!(f, "its final record is left: it stays as it ended"),
            Left::Unrecoverable(why) => write!(f, "what is left {why}"),
        }
    }
}

/// A running executor.
pub struct Engine {
    inboxes: Vec<Sender<Command>>,
    threads: Vec<JoinHandle<()>>,
    workers: Option<WorkerPool>,
    /// Each shard's finished executions, read in place by callers.
    finished: Vec<Arc<Finished>>,
    admission: Arc<Admission>,
    /// The shards' WALs (empty when nothing is journaled), for their stats.
    wals: Vec<peregrine_wal::Wal>,
    /// The thread that carries messages between executions.
    courier: Option<JoinHandle<()>>,
    /// Where restarts and replays find their flow revisions.
    flows: Option<Arc<dyn Flows>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("shards", &self.inboxes.len())
            .field("running", &self.running())
            .finish()
    }
}

fn finished_store(config: &EngineConfig, shards: usize) -> Arc<Finished> {
    Arc::new(Finished::new(
        config.retention,
        config.max_finished.get().div_ceil(shards.max(1)),
    ))
}

impl Engine {
    /// An engine that keeps nothing on disk.
    pub fn start(config: EngineConfig, observer: Arc<dyn Observer>) -> std::io::Result<Self> {
        let now = Utc::now();
        let shards = config.threads.get();
        let shards = (0..shards)
            .map(|_| {
                Shard::new(now, finished_store(&config, shards))
                    .limited(config.limits)
                    .with_variables(config.variables.clone())
            })
            .collect();
        Self::spawn(&config, observer, shards, 0, Vec::new())
    }

    /// An engine whose shards journal every execution in a WAL under `dir`
    /// (`dir/shard-N`), after recovering what the WALs hold: executions in
    /// flight resume, finished ones stay readable for what is left of their
    /// retention.
    ///
    /// `resolve` finds the flow revision an execution ran. The number of
    /// shards is the number found on disk, if any, so that every execution
    /// stays with its WAL.
    pub fn start_durable(
        config: EngineConfig,
        observer: Arc<dyn Observer>,
        dir: &Path,
        wal: peregrine_wal::Config,
        resolve: &FlowLookup<'_>,
    ) -> Result<(Self, Recovery), crate::Error> {
        // A final state must fit in one terminal record (which may span
        // several of the WAL's frames, all in one segment).
        let max_terminal = wal.max_terminal_bytes();
        let max_record = usize::try_from(wal.max_record_bytes.get()).unwrap_or(usize::MAX);
        let config = EngineConfig {
            limits: Limits {
                max_final_bytes: config.limits.max_final_bytes.min(max_terminal),
                max_step_reads_bytes: config.limits.max_step_reads_bytes.min(max_record / 2),
                max_job_log_bytes: config.limits.max_job_log_bytes.min(max_record / 4),
                ..config.limits
            },
            ..config
        };
        let existing = count_shard_dirs(dir)?;
        let shards = if existing > 0 {
            if existing != config.threads.get() {
                tracing::warn!(
                    configured = config.threads.get(),
                    on_disk = existing,
                    "keeping the shard count found in the data folder"
                );
            }
            existing
        } else {
            config.threads.get()
        };
        // Each shard's WAL keeps its share of the finished executions.
        let per_shard = |total: Option<u64>| total.map(|t| t.div_ceil(shards as u64).max(1));
        let wal = peregrine_wal::Config {
            terminal_max_count: per_shard(config.max_retained),
            terminal_max_bytes: per_shard(config.retention_size),
            ..wal
        };
        let mut recovery = Recovery::default();
        let mut prepared = Vec::with_capacity(shards);
        let mut wals = Vec::with_capacity(shards);
        let now = Utc::now();
        // Each shard recovers on a thread of its own, all at once: the
        // caller's thread only waits.
        let recovered: Vec<Result<ShardRecovery, crate::Error>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..shards)
                .map(|n| {
                    let (config, wal) = (&config, wal.clone());
                    std::thread::Builder::new()
                        .name(format!("recover-{n}"))
                        .stack_size(EVAL_STACK_BYTES)
                        .spawn_scoped(scope, move || {
                            recover_shard(dir, n, shards, config, wal, resolve, now)
                        })
                })
                .collect();
            handles
                .into_iter()
                .enumerate()
                .map(|(n, handle)| match handle {
                    Err(e) => Err(crate::Error::Io(e)),
                    Ok(handle) => handle.join().unwrap_or_else(|_| {
                        Err(crate::Error::Io(std::io::Error::other(format!(
                            "recovering shard {n} panicked"
                        ))))
                    }),
                })
                .collect()
        });
        for shard in recovered {
            let shard = shard?;
            wals.push(shard.wal);
            prepared.push(shard.shard);
            let part = shard.recovery;
            recovery.resumed += part.resumed;
            recovery.finished += part.finished;
            recovery.failed.extend(part.failed);
            recovery.quarantined.extend(part.quarantined);
            recovery.damaged.extend(part.damaged);
            recovery.reports.extend(part.reports);
        }
        let config = EngineConfig {
            threads: NonZeroUsize::new(shards).unwrap_or(NonZeroUsize::MIN),
            ..config
        };
        // Counted running until their end is handed out, like the resumed.
        let running = recovery.resumed + recovery.quarantined.len();
        let engine = Self::spawn(&config, observer, prepared, running, wals)?;
        Ok((engine, recovery))
    }

    fn spawn(
        config: &EngineConfig,
        observer: Arc<dyn Observer>,
        shards: Vec<Shard>,
        running: usize,
        wals: Vec<peregrine_wal::Wal>,
    ) -> std::io::Result<Self> {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards.len())
            .map(|_| inbox(config.inbox_capacity.get()))
            .unzip();
        let finished: Vec<Arc<Finished>> =
            shards.iter().map(|s| Arc::clone(s.finished())).collect();
        let holdings = Arc::new(worker::Holdings::new(
            senders.clone(),
            finished.clone(),
            wals.clone(),
        ));
        let (pool, handle) = WorkerPool::start(
            config.workers.get(),
            config.work_queue.get(),
            senders.clone(),
            WorkerEnv::new(
                config.triggers.clone(),
                &config.variables,
                config.logs.clone(),
                config.max_processes.get(),
            )
            .holding(holdings, config.metrics.clone()),
        )?;
        let admission = Arc::new(Admission {
            running: AtomicUsize::new(running),
            max: config.max_running.map_or(usize::MAX, NonZeroUsize::get),
            budget_us: config.queueing_budget.map_or(u64::MAX, |b| {
                u64::try_from(b.as_micros()).unwrap_or(u64::MAX)
            }),
            epoch: Instant::now(),
            queues: (0..shards.len()).map(|_| Queue::default()).collect(),
        });
        // Parcels wait for their receipts in the courier's queue: at most
        // one per subflow start, answer or kill in flight.
        let (parcels, parcels_rx) = flume::unbounded();
        let courier = Courier {
            inboxes: senders.clone(),
            flows: config.flows.clone(),
            wals: wals.clone(),
            admission: Arc::clone(&admission),
        };
        let courier = std::thread::Builder::new()
            .name("courier".into())
            .spawn(move || courier.run(parcels_rx))?;
        let mut threads = Vec::with_capacity(shards.len());
        for (n, (shard, rx)) in shards.into_iter().zip(receivers).enumerate() {
            let runtime = ShardRuntime {
                index: n,
                batch: config.batch.get(),
                workers: handle.clone(),
                observer: Arc::clone(&observer),
                admission: Arc::clone(&admission),
                parcels: parcels.clone(),
                logs: config.logs.clone(),
                metrics: config.metrics.clone(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("shard-{n}"))
                    .stack_size(EVAL_STACK_BYTES)
                    .spawn(move || shard_loop(shard, rx, runtime))?,
            );
        }
        Ok(Self {
            inboxes: senders,
            threads,
            workers: Some(pool),
            finished,
            admission,
            wals,
            courier: Some(courier),
            flows: config.flows.clone(),
        })
    }

    pub fn shards(&self) -> usize {
        self.inboxes.len()
    }

    /// The shard that owns `id`.
    pub fn shard_of(&self, id: ExecutionId) -> usize {
        shard_index(id, self.inboxes.len())
    }

    fn push(&self, id: ExecutionId, command: Command) -> Result<(), (Refusal, Command)> {
        self.inboxes[self.shard_of(id)]
            .push(command)
            .map_err(|e| match e {
                PushError::Full(c) => (Refusal::Full, c),
                PushError::Closed(c) => (Refusal::Stopped, c),
            })
    }

    /// Starts a new execution on its shard. The answer says whether it
    /// existed already (then nothing was started) and carries the receipt
    /// to wait on before acknowledging it.
    pub fn submit(&self, new: NewExecution, ack: Ack) -> Result<Pending<Started>, SubmitError> {
        let shard = self.shard_of(new.id);
        let admitted = if self.wals.get(shard).is_some_and(|wal| wal.out_of_space()) {
            Err(Refusal::NoSpace)
        } else {
            self.admission
                .check_queue(shard, self.inboxes[shard].len())
                .and_then(|()| self.admission.admit())
        };
        if let Err(refusal) = admitted {
            return Err(SubmitError {
                refusal,
                execution: Box::new(new),
            });
        }
        let (reply, pending) = Pending::channel();
        let id = new.id;
        let command = Command::Start {
            new: Box::new(new),
            ack,
            reply,
        };
        match self.push(id, command) {
            Ok(()) => Ok(pending),
            Err((refusal, Command::Start { new, .. })) => {
                self.admission.release();
                Err(SubmitError {
                    refusal,
                    execution: new,
                })
            }
            Err(_) => unreachable!("the command pushed was a Start"),
        }
    }

    /// Asks the owning shard to kill `id`.
    pub fn kill(&self, id: ExecutionId) -> Result<Pending<KillOutcome>, Refusal> {
        self.kill_with(id, true)
    }

    /// Kills execution `id`; with `cascade`, the subflow executions it
    /// waits for too (Kestra's `isOnKillCascade`, true by default).
    pub fn kill_with(
        &self,
        id: ExecutionId,
        cascade: bool,
    ) -> Result<Pending<KillOutcome>, Refusal> {
        let (reply, pending) = Pending::channel();
        self.push(id, Command::Kill { id, cascade, reply })
            .map_err(|(refusal, _)| refusal)?;
        Ok(pending)
    }

    /// Asks the owning shard to resume paused execution `id` with `inputs`
    /// (checked against its paused task's `onResume`).
    pub fn resume(
        &self,
        id: ExecutionId,
        inputs: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Pending<ResumeOutcome>, Refusal> {
        let (reply, pending) = Pending::channel();
        let inputs = Box::new(inputs);
        self.push(id, Command::Resume { id, inputs, reply })
            .map_err(|(refusal, _)| refusal)?;
        Ok(pending)
    }

    /// Execution `id` as it stands, running or finished, with the receipt
    /// to wait on before showing it.
    pub fn read(&self, id: ExecutionId) -> Result<Pending<Option<Snapshot>>, Refusal> {
        // Finished executions are read in place; the shard answers for the
        // others (and for one that ends meanwhile: it looks at both).
        if let Some(kept) = self.finished[self.shard_of(id)].get(id) {
            return Ok(Pending::ready(Some(Snapshot {
                record: kept.record,
                receipt: kept.receipt,
            })));
        }
        let (reply, pending) = Pending::channel();
        self.push(id, Command::Read { id, reply })
            .map_err(|(refusal, _)| refusal)?;
        Ok(pending)
    }

    /// Finished execution `id` as its shard's WAL keeps it, for one that
    /// memory no longer holds (past `max_finished`): a point read of its
    /// final record, on the calling thread. `None` if it is not on disk
    /// either (never here, still running, or past the retention window or
    /// the budgets), or if the engine keeps nothing on disk.
    pub fn read_retained(&self, id: ExecutionId) -> Result<Option<Snapshot>, crate::Error> {
        let Some(wal) = self.wals.get(self.shard_of(id)) else {
            return Ok(None);
        };
        let Some((record, lsn)) = journal::read_ended(wal, id)? else {
            return Ok(None);
        };
        if !self.finished[self.shard_of(id)].within_retention(&record, Utc::now()) {
            return Ok(None);
        }
        Ok(Some(Snapshot {
            record,
            receipt: Receipt::of_ticket(wal.ticket(lsn)),
        }))
    }

    /// Deletes the ended executions of `ids` (each shard its own, in one
    /// step): what each shard deleted and left running, durable once its
    /// receipt is. An id the engine never held is journaled deleted too:
    /// the caller looks first.
    pub fn delete(&self, ids: Vec<ExecutionId>) -> Result<Vec<Pending<Deleted>>, Refusal> {
        let mut by_shard: FxHashMap<usize, Vec<ExecutionId>> = FxHashMap::default();
        for id in ids {
            by_shard.entry(self.shard_of(id)).or_default().push(id);
        }
        let mut pending = Vec::with_capacity(by_shard.len());
        for (_, ids) in by_shard {
            let Some(&first) = ids.first() else { continue };
            let (reply, answer) = Pending::channel();
            self.push(first, Command::Delete { ids, reply })
                .map_err(|(refusal, _)| refusal)?;
            pending.push(answer);
        }
        Ok(pending)
    }

    /// Sets `labels` on finished execution `id`, merged by key into those
    /// it has ([`crate::execution::labels::merge`]): its final record is
    /// journaled again with them. One only on disk is read here, on the
    /// calling thread (a point read), for its shard to rebuild. Answers
    /// [`Relabelled::Stale`] when it changed while this looked: ask again.
    pub fn set_labels(
        &self,
        id: ExecutionId,
        labels: Vec<(String, String)>,
    ) -> Result<Pending<Relabelled>, crate::Error> {
        let finished = &self.finished[self.shard_of(id)];
        let rewrites = finished.rewrites();
        let stored = if finished.get(id).is_some() {
            Stored::InMemory
        } else {
            match self.read_retained(id)? {
                Some(snapshot) => Stored::OnDisk {
                    record: snapshot.record,
                    rewrites,
                },
                None => Stored::Nowhere,
            }
        };
        let (reply, pending) = Pending::channel();
        let command = Command::Relabel {
            id,
            labels,
            stored,
            reply,
        };
        self.push(id, command).map_err(|(refusal, _)| refusal)?;
        Ok(pending)
    }

    /// Restarts ended execution `id` under the same id, as Kestra does: its
    /// failed task runs (and their flowable ancestors) run again, on the
    /// flow revision it ran, after what succeeded, which is kept (see
    /// [`super::guide`]). It counts as running again (never refused for
    /// `max_running`, like a subflow's child). One only on disk is read
    /// here, as [`Engine::set_labels`] does; [`RestartOutcome::Stale`]
    /// says to ask again.
    pub fn restart(&self, id: ExecutionId) -> Result<Pending<RestartOutcome>, crate::Error> {
        let finished = &self.finished[self.shard_of(id)];
        let rewrites = finished.rewrites();
        let (stored, record) = match finished.get(id) {
            Some(kept) => (Stored::InMemory, Some(kept.record)),
            None => match self.read_retained(id)? {
                Some(snapshot) => (
                    Stored::OnDisk {
                        record: snapshot.record.clone(),
                        rewrites,
                    },
                    Some(snapshot.record),
                ),
                // Running, or not here: its shard says which.
                None => (Stored::Nowhere, None),
            },
        };
        let rev = match record.map(|r| self.flow_of(&r, r.flow_revision())) {
            None => None,
            Some(Ok(rev)) => Some(rev),
            Some(Err(why)) => return Ok(Pending::ready(RestartOutcome::Refused(why))),
        };
        let (reply, pending) = Pending::channel();
        let command = Command::Restart {
            id,
            rev,
            stored,
            reply,
        };
        self.admission.running.fetch_add(1, Ordering::AcqRel);
        if let Err((refusal, _)) = self.push(id, command) {
            self.admission.release();
            return Err(refusal.into());
        }
        Ok(pending)
    }

    /// Starts a new execution that replays ended execution `record` on
    /// revision `revision` of its flow (its own by default), keeping its
    /// inputs, labels and trigger: from the start, from one of its task
    /// runs (what came before it is kept), or restarting its failed task
    /// runs (Kestra's restart on another revision). Admitted like any
    /// start.
    pub fn replay(
        &self,
        record: &Record,
        from: ReplayFrom,
        revision: Option<u32>,
    ) -> Result<Pending<Started>, ReplayError> {
        if !record.is_terminal() {
            return Err(ReplayError::NotEnded(record.state()));
        }
        let rev = self
            .flow_of(record, revision.unwrap_or_else(|| record.flow_revision()))
            .map_err(ReplayError::Invalid)?;
        let old = record.thaw();
        let from = match from {
            ReplayFrom::Start => None,
            ReplayFrom::Failed => Some(None),
            ReplayFrom::TaskRun(task_run) => {
                let Some(at) = old.task_runs.iter().position(|t| t.id == task_run) else {
                    return Err(ReplayError::Invalid(format!(
                        "Task run '{task_run}' not found in execution '{}'",
                        record.id()
                    )));
                };
                Some(Some(at as u32))
            }
        };
        let replays = from.map(|from| Replays {
            record: record.upgraded(),
            from,
        });
        if let Some(replays) = &replays {
            // Checked here, so that the shard's own guide builds too.
            replays.guide(&rev).map_err(ReplayError::Invalid)?;
        }
        let inputs = match old.inputs {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        let mut new = NewExecution::new(rev, inputs);
        if replays.is_none() {
            // From the start: a fresh run, an attempt more of the original
            // (a guided one takes its lineage from its guide).
            new.lineage = Some(old.lineage.again(old.id, new.id));
        }
        new.labels = old.labels;
        new.trigger = old.trigger;
        new.replays = replays;
        self.submit(new, Ack::Snapshot)
            .map_err(ReplayError::Refused)
    }

    /// Revision `revision` of the flow `record` ran, from the engine's
    /// flows.
    fn flow_of(&self, record: &Record, revision: u32) -> Result<Arc<FlowRevision>, String> {
        let Some(flows) = &self.flows else {
            return Err("this engine has no flow repository to find the flow in".to_owned());
        };
        flows.find(record.namespace(), record.flow_id(), Some(revision))
    }

    /// The executions that match `filter`, newest first (or oldest, as
    /// it says): page `page` (from 1) of `size`, and how many match in all.
    pub fn search(&self, filter: Filter, page: usize, size: usize) -> Result<Search, Refusal> {
        let skip = page.saturating_sub(1).saturating_mul(size);
        let limit = skip.saturating_add(size);
        let filter = Arc::new(filter);
        let mut shards = Vec::with_capacity(self.inboxes.len());
        for inbox in &self.inboxes {
            let (reply, pending) = Pending::channel();
            let command = Command::Search {
                filter: Arc::clone(&filter),
                limit,
                reply,
            };
            inbox.push(command).map_err(|e| match e {
                PushError::Full(_) => Refusal::Full,
                PushError::Closed(_) => Refusal::Stopped,
            })?;
            shards.push(pending);
        }
        let mut finished = Newest::new(limit);
        for store in &self.finished {
            store.scan(|kept| {
                if filter.matches(&kept.record) {
                    let snapshot = Snapshot {
                        record: kept.record.clone(),
                        receipt: kept.receipt.clone(),
                    };
                    finished.offer(filter.rank(kept.record.start_date()), snapshot);
                }
            });
        }
        Ok(Search {
            finished,
            shards,
            skip,
        })
    }

    /// Executions submitted and not ended.
    pub fn running(&self) -> usize {
        self.admission.running.load(Ordering::Relaxed)
    }

    /// Finished executions kept readable.
    pub fn finished(&self) -> usize {
        self.finished.iter().map(|f| f.len()).sum()
    }

    /// Each shard's WAL statistics (empty when nothing is journaled).
    pub fn journal_stats(&self) -> Vec<peregrine_wal::WalStats> {
        self.wals.iter().map(peregrine_wal::Wal::stats).collect()
    }

    /// Messages waiting in each shard's inbox.
    pub fn inbox_depths(&self) -> Vec<usize> {
        self.inboxes.iter().map(Sender::len).collect()
    }

    /// Stops accepting work, lets shards handle what they were sent, and
    /// joins their threads. Executions waiting on timers stay where they are
    /// (the WAL resumes them).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for tx in &self.inboxes {
            tx.close();
        }
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a shard thread panicked");
            }
        }
        if let Some(pool) = self.workers.take() {
            pool.shutdown();
        }
        // Every shard has stopped: sync what `interval` mode had not yet,
        // seal the segments and stop the WALs' threads.
        for wal in self.wals.drain(..) {
            if let Err(e) = wal.close() {
                tracing::error!("closing a shard's WAL: {e}");
            }
        }
        // Every shard has let go of its sender, and every receipt is
        // settled: what the courier still holds is dropped against closed
        // inboxes (a restart sends it again).
        if let Some(courier) = self.courier.take()
            && courier.join().is_err()
        {
            tracing::error!("the courier thread panicked");
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What recovery found of one execution.
enum Found {
    InFlight,
    Finished,
    /// Failed from its creation alone (see [`QUARANTINE_AFTER`]); it ends
    /// at the shard's first turn.
    Quarantined,
}

/// One shard as recovery left it.
struct ShardRecovery {
    shard: Shard,
    wal: peregrine_wal::Wal,
    recovery: Recovery,
}

/// Opens shard `n`'s WAL and flight recorder and rebuilds its executions.
fn recover_shard(
    dir: &Path,
    n: usize,
    shards: usize,
    config: &EngineConfig,
    wal: peregrine_wal::Config,
    resolve: &FlowLookup<'_>,
    now: DateTime<Utc>,
) -> Result<ShardRecovery, crate::Error> {
    let mut recovery = Recovery::default();
    let path = dir.join(format!("shard-{n}"));
    let (wal, recovered) = peregrine_wal::Wal::open(&path, wal)?;
    recovery.reports.push(recovered.report().clone());
    let finished = finished_store(config, shards);
    // What this shard was working on when the last process died.
    let stepping = path.join("stepping");
    let (recorder, strikes) = peregrine_wal::Blackbox::open(&stepping).map_err(|e| {
        crate::Error::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", stepping.display()),
        ))
    })?;
    let quarantined = strikes.filter(|s| s.count >= QUARANTINE_AFTER).map(|s| {
        let id = ExecutionId::from_u128(s.key);
        tracing::error!(
            execution = %id,
            deaths = s.count,
            "the process died {} times in a row while working on this execution: \
             it is failed, not replayed again",
            s.count
        );
        id
    });
    let journal = WalJournal::new(wal.clone(), Some(recorder));
    let mut shard = Shard::with_journal(now, Box::new(journal), Arc::clone(&finished))
        .limited(config.limits)
        .with_variables(config.variables.clone());
    // Executions the skipped damage names, with where it was; each is
    // reported once, with what recovery could make of it.
    let mut named: FxHashMap<ExecutionId, (std::path::PathBuf, u64)> = FxHashMap::default();
    for d in &recovered.report().damage {
        for key in d
            .keys
            .iter()
            .filter(|k| k.space() == peregrine_wal::Key::EXECUTIONS)
        {
            named
                .entry(ExecutionId::from_u128(key.id()))
                .or_insert_with(|| (d.path.clone(), d.offset));
        }
    }
    // Only the newest finished executions are rebuilt in memory (as many as
    // it keeps); the others stay on disk, read back when asked for.
    let in_memory = newest_finished(&recovered, config.max_finished.get().div_ceil(shards));
    for (key, records) in recovered.iter() {
        let id = ExecutionId::from_u128(key.id());
        // Deleted: its record says so, and nothing else of it is left.
        if records
            .clone()
            .last()
            .is_some_and(|r| journal::is_deleted(r.kind()))
        {
            named.remove(&id);
            continue;
        }
        let quarantine = (quarantined == Some(id)).then_some(QUARANTINED);
        let on_disk_only = ended_alone(records.clone()) && !in_memory.contains(&key);
        let found = if on_disk_only {
            Ok(Found::Finished)
        } else {
            recover(&mut shard, &finished, id, records, resolve, now, quarantine)
        };
        match &found {
            Ok(Found::InFlight) => recovery.resumed += 1,
            Ok(Found::Finished) => recovery.finished += 1,
            Ok(Found::Quarantined) => recovery.quarantined.push(id),
            Err(_) => {}
        }
        match (named.remove(&id), found) {
            (Some((path, offset)), found) => recovery.damaged.push(Damaged {
                id,
                path,
                offset,
                left: match found {
                    Ok(Found::InFlight) => Left::Resumed,
                    Ok(Found::Finished | Found::Quarantined) => Left::Finished,
                    Err(why) => Left::Unrecoverable(why),
                },
            }),
            (None, Err(why)) => recovery.failed.push((id, why)),
            (None, Ok(_)) => {}
        }
    }
    let mut gone: Vec<Damaged> = named
        .into_iter()
        .map(|(id, (path, offset))| Damaged {
            id,
            path,
            offset,
            left: Left::Nothing,
        })
        .collect();
    gone.sort_by_key(|d| d.id.as_u128());
    recovery.damaged.extend(gone);
    finished.sort();
    Ok(ShardRecovery {
        shard,
        wal,
        recovery,
    })
}

/// The keys of the `keep` newest finished executions (those whose one live
/// record is their final one), by the LSN of that record.
fn newest_finished(
    recovered: &peregrine_wal::Recovered,
    keep: usize,
) -> rustc_hash::FxHashSet<peregrine_wal::Key> {
    use std::cmp::Reverse;
    let mut newest = std::collections::BinaryHeap::with_capacity(keep.saturating_add(1));
    for (key, records) in recovered.iter() {
        let Some(first) = records.clone().next() else {
            continue;
        };
        // A deletion's record is no execution to bring back.
        if journal::is_deleted(first.kind()) || !ended_alone(records) {
            continue;
        }
        newest.push(Reverse((first.lsn(), key)));
        if newest.len() > keep {
            newest.pop();
        }
    }
    newest.into_iter().map(|Reverse((_, key))| key).collect()
}

/// Whether a key's records are a final record alone (not followed by a
/// restart).
fn ended_alone(mut records: peregrine_wal::LiveRecords<'_>) -> bool {
    records.next().is_some_and(|r| r.is_terminal()) && records.next().is_none()
}

/// Deaths in a row while working on one execution before it is failed
/// rather than replayed again.
const QUARANTINE_AFTER: u32 = 2;

const QUARANTINED: &str = "The server died twice in a row while running this execution: it was \
     failed rather than run again, so that it cannot take the server down a third time";

/// Rebuilds one execution from its recovered records: a finished one goes
/// to the shard's finished executions, one in flight resumes (or, with
/// `quarantine`, ends FAILED from its creation alone).
fn recover(
    shard: &mut Shard,
    finished: &Finished,
    id: ExecutionId,
    records: peregrine_wal::LiveRecords<'_>,
    resolve: &FlowLookup<'_>,
    now: DateTime<Utc>,
    quarantine: Option<&str>,
) -> Result<Found, Unrecoverable> {
    let mut entries = Vec::new();
    let mut end = None;
    for record in records {
        match journal::decode(record.kind(), record.payload())? {
            Recovered::Entry(entry) => entries.push(entry),
            Recovered::Ended(ended) if entries.is_empty() && end.is_none() => end = Some(ended),
            Recovered::Ended(_) | Recovered::Deleted => {
                return Err(RestoreError::OutOfPlace.into());
            }
        }
    }
    // Entries after an end begin with a restart, which holds that end.
    if let (Some(ended), true) = (end, entries.is_empty()) {
        finished.restore(ended, now);
        return Ok(Found::Finished);
    }
    match quarantine {
        Some(why) => {
            shard.quarantine(id, entries, resolve, now, why.to_owned())?;
            Ok(Found::Quarantined)
        }
        None => {
            shard.restore(id, entries, resolve, now)?;
            Ok(Found::InFlight)
        }
    }
}

/// The shard of `shards` that owns `id`.
pub(crate) fn shard_index(id: ExecutionId, shards: usize) -> usize {
    let raw = id.as_u128();
    let mixed = (raw as u64) ^ ((raw >> 64) as u64);
    (mixed % shards as u64) as usize
}

/// What a shard thread needs besides its shard and inbox.
struct ShardRuntime {
    index: usize,
    batch: usize,
    workers: WorkerHandle,
    observer: Arc<dyn Observer>,
    admission: Arc<Admission>,
    /// To the courier (see [`super::courier`]).
    parcels: flume::Sender<(Receipt, Parcel)>,
    logs: Option<LogStore>,
    metrics: Option<MetricStore>,
}

impl ShardRuntime {
    /// Carries out one effect of a step.
    fn apply(
        &self,
        effect: Effect,
        execution: Option<&Execution>,
        replies: &mut FxHashMap<RequestId, ReplyTo>,
        held: &mut std::collections::VecDeque<(ExecutionId, WorkOrder)>,
    ) {
        match effect {
            Effect::Reply { request, reply } => {
                if let Reply::Started(started) = &reply
                    && (started.existed || started.receipt.is_refused())
                {
                    // Counted at submission; it runs once, counted already,
                    // or not at all (its creation was not journaled).
                    self.admission.release();
                }
                if let Reply::Restart(outcome) = &reply
                    && !matches!(outcome, RestartOutcome::Restarted(_))
                {
                    // Counted when asked for; it does not run again.
                    self.admission.release();
                }
                let Some(to) = replies.remove(&request) else {
                    return;
                };
                // A caller that stopped waiting has dropped its receiver:
                // nobody to tell.
                let _ = match (to, reply) {
                    (ReplyTo::Started(tx), Reply::Started(r)) => tx.send(r).map_err(drop),
                    (ReplyTo::Kill(tx), Reply::Kill(r)) => tx.send(r).map_err(drop),
                    (ReplyTo::Read(tx), Reply::Read(r)) => tx.send(r).map_err(drop),
                    (ReplyTo::Search(tx), Reply::Search(r)) => tx.send(r).map_err(drop),
                    (ReplyTo::Count(tx), Reply::Count(r)) => tx.send(r).map_err(drop),
                    (ReplyTo::Delete(tx), Reply::Delete(r)) => tx.send(r).map_err(drop),
                    (ReplyTo::Relabel(tx), Reply::Relabel(r)) => tx.send(r).map_err(drop),
                    (ReplyTo::Resume(tx), Reply::Resume(r)) => tx.send(r).map_err(drop),
                    (ReplyTo::Restart(tx), Reply::Restart(r)) => tx.send(r).map_err(drop),
                    _ => {
                        tracing::error!("a shard answered a request with the wrong kind of reply");
                        Ok(())
                    }
                };
            }
            Effect::Work { id, order } => held.push_back((id, order)),
            Effect::Interrupt {
                id,
                task_run,
                attempt,
            } => {
                // Held back for a full pool: it never starts. Else a worker
                // may run it now.
                let before = held.len();
                held.retain(|(i, o)| (*i, o.task_run, o.attempt) != (id, task_run, attempt));
                if held.len() == before {
                    self.workers.interrupt(id, task_run, attempt);
                }
            }
            Effect::Send { receipt, parcel } => {
                // The courier stops after the shards: it is listening.
                let _ = self.parcels.send((receipt, parcel));
            }
            Effect::Changed { receipt, ended, .. } => {
                if let Some(execution) = execution {
                    let now = Utc::now();
                    if let Some(logs) = &self.logs {
                        logs.record(execution, ended.is_some(), now);
                    }
                    if let Some(metrics) = &self.metrics {
                        metrics.record(execution, ended.is_some(), now);
                    }
                }
                if let Some(execution) = execution {
                    self.observer.on_change(&Change {
                        execution,
                        receipt: &receipt,
                        ended: ended.as_ref(),
                    });
                }
                if ended.is_some() {
                    self.admission.release();
                }
            }
        }
    }
}

fn shard_loop(mut shard: Shard, rx: Receiver<Command>, runtime: ShardRuntime) {
    // Work the pool could not take yet: retried every turn, never dropped.
    let mut held: std::collections::VecDeque<(ExecutionId, WorkOrder)> = Default::default();
    let mut replies: FxHashMap<RequestId, ReplyTo> = FxHashMap::default();
    let mut next_request: RequestId = 0;
    // What recovery left to tell other executions goes first; then the
    // concurrency gate hears that this shard told it all it holds.
    shard.drain(|effect, execution| runtime.apply(effect, execution, &mut replies, &mut held));
    let recovered = Parcel::Gate(Box::new(Note::Recovered));
    let _ = runtime.parcels.send((Receipt::ready(), recovered));
    loop {
        let mut handled = 0;
        shard.pass(true);
        while handled < runtime.batch {
            let Some(command) = rx.pop() else {
                runtime.admission.idle(runtime.index);
                break;
            };
            runtime.admission.taking(runtime.index);
            next_request += 1;
            let (message, reply) = command.into_message(next_request);
            if let Some(reply) = reply {
                replies.insert(next_request, reply);
            }
            // Each message gets its own instant: the dates an execution
            // shows (created, ended) are when its step ran, not when the
            // batch began.
            shard.step(message, Utc::now());
            handled += 1;
        }
        shard.step(Message::Tick, Utc::now());
        shard.pass(false);
        shard.drain(|effect, execution| runtime.apply(effect, execution, &mut replies, &mut held));
        while let Some((id, order)) = held.pop_front() {
            if let Err(order) = runtime.workers.try_dispatch(id, runtime.index, order) {
                held.push_front((id, order));
                break;
            }
        }
        if handled == runtime.batch {
            continue;
        }
        if rx.is_closed() {
            return;
        }
        let mut timeout = shard.next_deadline_ms().map(|deadline| {
            let wait = deadline - Utc::now().timestamp_millis();
            Duration::from_millis(wait.clamp(0, 60_000) as u64)
        });
        if !held.is_empty() {
            timeout = Some(timeout.map_or(HELD_WORK_RETRY, |t| t.min(HELD_WORK_RETRY)));
        }
        // Finished executions leave the retention window even when nothing
        // happens: wake at least this often.
        timeout = Some(timeout.map_or(IDLE_TICK, |t| t.min(IDLE_TICK)));
        rx.park(timeout);
    }
}

/// How soon a shard retries handing work to a full worker queue.
const HELD_WORK_RETRY: Duration = Duration::from_millis(1);
/// How often an idle shard ticks (retention of finished executions).
const IDLE_TICK: Duration = Duration::from_secs(1);

fn count_shard_dirs(dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut count = 0;
    for entry in entries {
        let name = entry?.file_name();
        if name
            .to_str()
            .and_then(|n| n.strip_prefix("shard-"))
            .is_some_and(|n| n.parse::<usize>().is_ok())
        {
            count += 1;
        }
    }
    Ok(count)
}

/// Runs one execution to its end on the calling thread, sleeping through its
/// timers. For `peregrine run` and tests.
pub fn run_to_end(new: NewExecution) -> Execution {
    run_to_end_observed(new, |_| {})
}

/// Like [`run_to_end`], calling `on_change` after every step.
pub fn run_to_end_observed(new: NewExecution, on_change: impl FnMut(&Execution)) -> Execution {
    run_to_end_in(
        new,
        Limits::default(),
        ConfigVariables::default(),
        on_change,
    )
}

/// Like [`run_to_end`], under `limits`.
#[cfg(test)]
pub(crate) fn run_to_end_limited(new: NewExecution, limits: Limits) -> Execution {
    run_to_end_in(new, limits, ConfigVariables::default(), |_| {})
}

/// Like [`run_to_end`], with `envs` and `globals`.
#[cfg(test)]
pub(crate) fn run_to_end_with_variables(
    new: NewExecution,
    variables: ConfigVariables,
) -> Execution {
    run_to_end_in(new, Limits::default(), variables, |_| {})
}

fn run_to_end_in(
    new: NewExecution,
    limits: Limits,
    variables: ConfigVariables,
    mut on_change: impl FnMut(&Execution),
) -> Execution {
    let id = new.id;
    let finished = Arc::new(Finished::new(Duration::from_secs(3600), 1));
    let job_variables = variables.clone();
    let mut shard = Shard::new(Utc::now(), finished)
        .limited(limits)
        .with_variables(variables);
    let start = Message::Start {
        new: Box::new(new),
        request: 0,
        snapshot: false,
    };
    shard.step(start, Utc::now());
    let mut refused = Vec::new();
    let mut admitted = Vec::new();
    loop {
        let mut last: Option<Execution> = None;
        let mut work = Vec::new();
        shard.drain(|effect, execution| match effect {
            Effect::Changed { ended, .. } => {
                if let Some(execution) = execution {
                    on_change(execution);
                    if ended.is_some() {
                        last = Some(execution.clone());
                    }
                }
            }
            Effect::Work { id, order } => work.push((id, order)),
            // Work runs inline here: nothing is in flight to interrupt.
            Effect::Interrupt { .. } => {}
            Effect::Send {
                parcel: Parcel::Spawn(order),
                ..
            } => refused.push(order.link),
            Effect::Send {
                parcel: Parcel::Ask(order),
                ..
            } => refused.push(order.link),
            Effect::Send {
                parcel: Parcel::Gate(note),
                ..
            } => {
                // One execution alone is always under its flow's limit.
                if let Note::Admit { id, .. } = *note {
                    admitted.push(id);
                }
            }
            Effect::Send { .. } | Effect::Reply { .. } => {}
        });
        let answered = !refused.is_empty() || !admitted.is_empty();
        for id in admitted.drain(..) {
            let verdict = Verdict::Run;
            shard.step(Message::Admitted { id, verdict }, Utc::now());
        }
        for link in refused.drain(..) {
            let news = ChildNews {
                link,
                answer: crate::tasks::ChildAnswer::Refused(
                    "a Subflow, a Resume or a Count of executions runs only in an engine \
                     that holds flows (a server), not on its own"
                        .to_owned(),
                ),
            };
            shard.step(Message::Child(Box::new(news)), Utc::now());
        }
        if answered && last.is_none() {
            continue;
        }
        if let Some(exec) = last {
            return exec;
        }
        if !work.is_empty() {
            for (id, order) in work {
                let answer = worker::run_now(order.job, order.deadline_ms, &job_variables);
                let done = WorkDone {
                    id,
                    task_run: order.task_run,
                    run_id: order.run_id,
                    attempt: order.attempt,
                    answer,
                };
                // A timeout that passed while the job ran comes first.
                shard.step(Message::Tick, Utc::now());
                shard.step(Message::WorkDone(Box::new(done)), Utc::now());
            }
            continue;
        }
        let Some(deadline) = shard.next_deadline_ms() else {
            // Nothing left to wait for: the execution is stuck on a task this
            // engine cannot finish. Return it as it stands.
            return shard
                .get(id)
                .cloned()
                .expect("a non-terminal execution stays in its shard");
        };
        let wait = deadline - Utc::now().timestamp_millis();
        if wait > 0 {
            std::thread::sleep(Duration::from_millis(wait as u64));
        }
        shard.step(Message::Tick, Utc::now());
    }
}
