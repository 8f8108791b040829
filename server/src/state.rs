//! The server's parts, each with one job, and [`AppState`], which only holds
//! them together for the router:
//!
//! - [`Launcher`] starts executions, for the API, webhooks and Kafka
//!   triggers alike;
//! - [`Executions`] reads, searches and kills them: the engine holds the
//!   only copy of each execution (running ones in their shard, finished
//!   ones as records for the retention window), so there is nothing here to
//!   keep in step with it;
//! - [`Hub`] fans changes out to followers and waiters, fed by the engine's
//!   observer ([`Tracker`]);
//! - the flows, the settings and the metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::FromRef;
use peregrine_engine::ExecutionId;
use peregrine_engine::kv::KvStore;
use peregrine_engine::logs::LogStore;
use peregrine_engine::metric_store::MetricStore;
use peregrine_engine::{
    Ack, Change, Engine, EngineConfig, Filter, KillOutcome, NewExecution, Observer, Pending,
    Record, Refusal, Relabelled, ReplayError, ReplayFrom, RestartOutcome, ResumeOutcome, Search,
    Snapshot, Started,
};
use peregrine_engine::{DurabilityError, Receipt};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::flow_trigger::{FlowTriggers, Watermark};
use crate::hub::Hub;
use crate::metrics::{Gauges, Metrics};
use crate::schedule::Ledger;
use crate::store::{FlowRepository, InMemory, Persistence, StoredFlow, WalFlows};

/// The running engine, until shutdown takes it.
#[derive(Debug, Default)]
struct Slot(RwLock<Option<Engine>>);

impl Slot {
    fn with<T>(&self, f: impl FnOnce(&Engine) -> T) -> Option<T> {
        let engine = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        engine.as_ref().map(f)
    }

    fn take(&self) -> Option<Engine> {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Whether the server still takes work; false from the start of shutdown.
#[derive(Debug, Default)]
pub(crate) struct Readiness(AtomicBool);

impl Readiness {
    pub fn is_ready(&self) -> bool {
        !self.0.load(Ordering::Acquire)
    }

    fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Where the engine's changes land, on the shard's thread: the metrics,
/// then the hub.
#[derive(Debug)]
pub(crate) struct Tracker {
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    flow_triggers: Arc<FlowTriggers>,
}

impl Observer for Tracker {
    fn on_change(&self, change: &Change<'_>) {
        if change.ended.is_some() {
            let history = change.execution.history();
            let took = history
                .end_date()
                .map(|end| end - history.start_date())
                .and_then(|d| d.to_std().ok())
                .unwrap_or_default();
            self.metrics.finished(change.execution.state(), took);
        }
        match change.ended {
            Some(record) => self.flow_triggers.ended(record, change.receipt),
            None => self.flow_triggers.changed(change.execution, change.receipt),
        }
        self.hub.publish(change);
    }
}

/// The engine would not take an execution or a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The shard's inbox is full: backpressure.
    Full,
    /// `executor.max-running` executions are running already.
    TooMany(String),
    /// Work waits past `executor.queueing-budget`: load shedding.
    Overloaded(String),
    /// The engine is stopping or stopped.
    Stopped,
    /// The journal failed to make what would be shown durable.
    NotDurable(String),
    /// The data folder's disk is full: nothing new is taken until space
    /// returns; what was refused did not happen.
    NoSpace,
}

impl From<Refusal> for Refused {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Full => Refused::Full,
            Refusal::TooMany(_) => Refused::TooMany(refusal.to_string()),
            Refusal::Overloaded { .. } => {
                Refused::Overloaded(format!("{refusal} (executor.queueing-budget); retry later"))
            }
            Refusal::Stopped => Refused::Stopped,
            Refusal::NoSpace => Refused::NoSpace,
        }
    }
}

/// What starting an execution needs, whatever started it (an API call, a
/// webhook, a Kafka message).
pub(crate) struct Launch<'a> {
    pub flow: &'a StoredFlow,
    /// Validated inputs.
    pub inputs: Map<String, Value>,
    pub labels: Vec<(String, String)>,
    pub trigger: Option<Value>,
    /// The id to give it: derived from its source when a redelivery must
    /// find the same execution, else fresh.
    pub id: ExecutionId,
    /// What the answer carries.
    pub ack: Ack,
    /// When it starts, if later (Kestra's `scheduleDate`): it waits
    /// CREATED until then.
    pub schedule_date: Option<chrono::DateTime<chrono::Utc>>,
}

/// Why an execution was not started.
#[derive(Debug)]
pub(crate) enum LaunchError {
    /// The flow is disabled.
    Disabled,
    Refused(Refused),
}

/// Starts executions; the one way in, whatever the trigger.
#[derive(Debug, Clone)]
pub(crate) struct Launcher {
    engine: Arc<Slot>,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
}

impl Launcher {
    /// Queues an execution on its shard. The answer says whether it existed
    /// already (a redelivery: nothing starts) and carries the receipt to
    /// wait on before acknowledging it.
    pub fn launch(&self, launch: Launch<'_>) -> Result<Pending<Started>, LaunchError> {
        let Launch {
            flow: stored,
            inputs,
            labels,
            trigger,
            id,
            ack,
            schedule_date,
        } = launch;
        if stored.flow().disabled {
            return Err(LaunchError::Disabled);
        }
        if !self.readiness.is_ready() {
            return Err(LaunchError::Refused(Refused::Stopped));
        }
        let mut new = NewExecution::new(Arc::clone(stored.revision()), inputs);
        new.id = id;
        new.labels = labels;
        new.trigger = trigger;
        new.schedule_date = schedule_date;
        let submitted = self
            .engine
            .with(|engine| engine.submit(new, ack))
            .ok_or(LaunchError::Refused(Refused::Stopped))?;
        match submitted {
            Ok(pending) => {
                self.metrics.created();
                Ok(pending)
            }
            Err(e) => {
                self.metrics.rejected();
                Err(LaunchError::Refused(e.refusal.into()))
            }
        }
    }
}

/// Reads, searches and kills executions.
#[derive(Debug, Clone)]
pub(crate) struct Executions {
    engine: Arc<Slot>,
}

/// A receipt that failed: a full disk refused the change (nothing was
/// written; retry later), anything else failed it.
impl From<DurabilityError> for Refused {
    fn from(e: DurabilityError) -> Self {
        if e.is_disk_full() {
            Refused::NoSpace
        } else {
            Refused::NotDurable(e.to_string())
        }
    }
}

/// Tries at setting labels on an execution that keeps changing under them
/// (other label changes at once on the same shard) before giving up.
const RELABEL_ATTEMPTS: usize = 16;

/// An answer that says the execution changed while the caller looked.
trait Stale {
    fn is_stale(&self) -> bool;
}

impl Stale for Relabelled {
    fn is_stale(&self) -> bool {
        matches!(self, Relabelled::Stale)
    }
}

impl Stale for RestartOutcome {
    fn is_stale(&self) -> bool {
        matches!(self, RestartOutcome::Stale)
    }
}

/// Commit before externalize: what is shown must be durable first.
async fn durable(receipt: &Receipt) -> Result<(), Refused> {
    receipt.durable().await.map_err(Refused::from)
}

impl Executions {
    fn ask<T>(&self, f: impl FnOnce(&Engine) -> Result<T, Refusal>) -> Result<T, Refused> {
        self.engine
            .with(f)
            .unwrap_or(Err(Refusal::Stopped))
            .map_err(Refused::from)
    }

    /// Execution `id` as it stands, once the records behind what it shows
    /// are durable; `None` if this node does not have it.
    pub async fn get(&self, id: ExecutionId) -> Result<Option<Snapshot>, Refused> {
        let pending = self.ask(|engine| engine.read(id))?;
        let mut found = pending.answer().await.map_err(|_| Refused::Stopped)?;
        if found.is_none() {
            // Finished, and past what memory keeps: a point read of its
            // final record from disk, off the async threads.
            let engine = Arc::clone(&self.engine);
            found = tokio::task::spawn_blocking(move || {
                engine
                    .with(|engine| engine.read_retained(id))
                    .unwrap_or(Ok(None))
            })
            .await
            .map_err(|_| Refused::Stopped)?
            .map_err(|e| Refused::NotDurable(format!("reading execution {id} from disk: {e}")))?;
        }
        if let Some(snapshot) = &found {
            durable(&snapshot.receipt).await?;
        }
        Ok(found)
    }

    /// One page of matching executions, newest first, and how many match.
    pub async fn search(
        &self,
        filter: Filter,
        page: usize,
        size: usize,
    ) -> Result<(Vec<Snapshot>, usize), Refused> {
        let search: Search = self.ask(|engine| engine.search(filter, page, size))?;
        let page = search.answer().await.map_err(|_| Refused::Stopped)?;
        for snapshot in &page.results {
            durable(&snapshot.receipt).await?;
        }
        Ok((page.results, page.total))
    }

    /// The executions the engine holds that are in one of `states` now,
    /// oldest first. Blocks.
    pub fn in_states(&self, states: Vec<peregrine_engine::State>) -> Result<Vec<Record>, Refused> {
        let filter = Filter {
            states,
            oldest_first: true,
            ..Filter::default()
        };
        let search = self.ask(|engine| engine.search(filter, 1, usize::MAX >> 1))?;
        let page = search.wait().map_err(|_| Refused::Stopped)?;
        Ok(page.results.into_iter().map(|s| s.record).collect())
    }

    /// The finished executions the engine holds that ended at `since` or
    /// later, oldest end first. Blocks.
    pub fn ended_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Record>, Refused> {
        let filter = Filter {
            ended: peregrine_engine::Bounds {
                after: Some((since, true)),
                ..peregrine_engine::Bounds::default()
            },
            oldest_first: true,
            ..Filter::default()
        };
        let search = self.ask(|engine| engine.search(filter, 1, usize::MAX >> 1))?;
        let page = search.wait().map_err(|_| Refused::Stopped)?;
        let mut ended: Vec<Record> = page.results.into_iter().map(|s| s.record).collect();
        ended.sort_by_key(|r| r.end_date());
        Ok(ended)
    }

    /// Sets `labels` on finished execution `id`, merged by key into its
    /// own; answers once its new final record is durable. An execution
    /// only on disk is read there off the async threads; one that changed
    /// while it was read is read again.
    pub async fn set_labels(
        &self,
        id: ExecutionId,
        labels: Vec<(String, String)>,
    ) -> Result<Relabelled, Refused> {
        let outcome = self
            .change_ended(id, "its labels were being set", move |engine| {
                engine.set_labels(id, labels.clone())
            })
            .await?;
        if let Relabelled::Done(done) = &outcome {
            durable(&done.receipt).await?;
        }
        Ok(outcome)
    }

    /// Asks `change` of ended execution `id` (which reads it from disk
    /// when memory no longer has it: off the async threads) until its
    /// shard's answer is not stale ([`Stale`]); past
    /// `RELABEL_ATTEMPTS` stale answers, refused as overloaded, `doing` saying
    /// what was under way.
    async fn change_ended<T: Stale + Send + 'static>(
        &self,
        id: ExecutionId,
        doing: &str,
        change: impl Fn(&Engine) -> Result<Pending<T>, peregrine_engine::Error> + Send + Sync + 'static,
    ) -> Result<T, Refused> {
        let change = Arc::new(change);
        for _ in 0..RELABEL_ATTEMPTS {
            let (engine, change) = (Arc::clone(&self.engine), Arc::clone(&change));
            let pending = tokio::task::spawn_blocking(move || {
                engine
                    .with(|engine| change(engine))
                    .unwrap_or(Err(Refusal::Stopped.into()))
            })
            .await
            .map_err(|_| Refused::Stopped)?
            .map_err(|e| match e {
                peregrine_engine::Error::Refused(refusal) => Refused::from(refusal),
                other => Refused::NotDurable(format!("reading execution {id} from disk: {other}")),
            })?;
            let answer = pending.answer().await.map_err(|_| Refused::Stopped)?;
            if !answer.is_stale() {
                return Ok(answer);
            }
        }
        Err(Refused::Overloaded(format!(
            "execution {id} changed {RELABEL_ATTEMPTS} times while {doing}; retry"
        )))
    }

    /// Resumes paused execution `id` with `inputs`; answers once the
    /// resume is durable.
    pub async fn resume(
        &self,
        id: ExecutionId,
        inputs: Map<String, Value>,
    ) -> Result<ResumeOutcome, Refused> {
        let pending = self.ask(|engine| engine.resume(id, inputs))?;
        let outcome = pending.answer().await.map_err(|_| Refused::Stopped)?;
        match &outcome {
            ResumeOutcome::Resumed(receipt) => durable(receipt).await?,
            // One that ended past what memory keeps is on disk.
            ResumeOutcome::NotFound => {
                if let Some(snapshot) = self.get(id).await? {
                    return Ok(ResumeOutcome::NotPaused(snapshot.record.state()));
                }
            }
            ResumeOutcome::NotPaused(_) | ResumeOutcome::Invalid(_) => {}
        }
        Ok(outcome)
    }

    /// Restarts ended execution `id` under the same id (its failed task
    /// runs); answers once the restart is durable.
    pub async fn restart(&self, id: ExecutionId) -> Result<RestartOutcome, Refused> {
        let outcome = self
            .change_ended(id, "it was being restarted", move |engine| {
                engine.restart(id)
            })
            .await?;
        if let RestartOutcome::Restarted(done) = &outcome {
            durable(&done.receipt).await?;
        }
        Ok(outcome)
    }

    /// Deletes the ended executions of `ids` (as the engine says: each
    /// shard its own); answers, once durable, with those deleted and those
    /// left because they run.
    pub async fn delete(
        &self,
        ids: Vec<ExecutionId>,
    ) -> Result<(Vec<ExecutionId>, Vec<ExecutionId>), Refused> {
        let pending = self.ask(|engine| engine.delete(ids))?;
        let (mut deleted, mut running) = (Vec::new(), Vec::new());
        for answer in pending {
            let done = answer.answer().await.map_err(|_| Refused::Stopped)?;
            durable(&done.receipt).await?;
            if !done.refused.is_empty() {
                return Err(Refused::NotDurable(format!(
                    "the journal is full: {} executions are not deleted",
                    done.refused.len()
                )));
            }
            deleted.extend(done.deleted);
            running.extend(done.running);
        }
        Ok((deleted, running))
    }

    /// Starts a new execution replaying ended execution `record` (see
    /// `Engine::replay`); answers with it once its creation is durable.
    pub async fn replay(
        &self,
        record: &Record,
        from: ReplayFrom,
        revision: Option<u32>,
    ) -> Result<Result<Snapshot, ReplayError>, Refused> {
        let replayed = self
            .engine
            .with(|engine| engine.replay(record, from, revision))
            .ok_or(Refused::Stopped)?;
        let pending = match replayed {
            Ok(pending) => pending,
            Err(ReplayError::Refused(refused)) => return Err(Refused::from(refused.refusal)),
            Err(other) => return Ok(Err(other)),
        };
        let started = pending.answer().await.map_err(|_| Refused::Stopped)?;
        durable(&started.receipt).await?;
        let record = started
            .snapshot
            .ok_or_else(|| Refused::NotDurable("the replay's first step is not at hand".into()))?;
        Ok(Ok(Snapshot {
            record,
            receipt: started.receipt,
        }))
    }

    /// Kills `id` (with `cascade`, the subflow executions it waits for);
    /// answers once the kill is durable.
    pub async fn kill(&self, id: ExecutionId, cascade: bool) -> Result<KillOutcome, Refused> {
        let pending = self.ask(|engine| engine.kill_with(id, cascade))?;
        let outcome = pending.answer().await.map_err(|_| Refused::Stopped)?;
        match &outcome {
            KillOutcome::Killed(receipt) => durable(receipt).await?,
            // Its shard knows only what memory keeps: one that ended
            // longer ago may be on disk.
            KillOutcome::NotFound => {
                if let Some(snapshot) = self.get(id).await? {
                    return Ok(KillOutcome::Ended(snapshot.record.state()));
                }
            }
            KillOutcome::Ended(_) => {}
        }
        Ok(outcome)
    }
}

/// Everything the router hands its handlers; each handler takes the part
/// it needs (`State<Launcher>`, `State<Executions>`, ...).
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

struct Parts {
    config: Config,
    flows: Arc<FlowRepository>,
    engine: Arc<Slot>,
    launcher: Launcher,
    executions: Executions,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    persistence: Arc<dyn Persistence>,
    /// The base64 credentials (unpadded) a `Basic` authorization must carry,
    /// when auth is on.
    authorization: Option<String>,
    triggers: crate::kafka::Triggers,
    schedules: Arc<crate::schedule::Scheduler>,
    flow_triggers: Arc<FlowTriggers>,
    /// `envs`, `globals` and the secrets, for what renders outside an
    /// execution (a webhook's key), and the KV store.
    variables: peregrine_engine::ConfigVariables,
    /// The KV store the engine's executions read and write, for the API.
    kv: KvStore,
    /// The lines executions logged, for the API.
    logs: LogStore,
    /// The metrics task runs recorded, for the API.
    task_metrics: MetricStore,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl FromRef<AppState> for Launcher {
    fn from_ref(state: &AppState) -> Self {
        state.0.launcher.clone()
    }
}

impl FromRef<AppState> for Executions {
    fn from_ref(state: &AppState) -> Self {
        state.0.executions.clone()
    }
}

impl AppState {
    /// Starts the engine with nothing durable: what tests and `none`
    /// durability use.
    pub fn start(config: Config) -> std::io::Result<Self> {
        Self::with_persistence(config, Arc::new(InMemory))
    }

    /// Recovers the flows from `persistence` and starts the engine, with
    /// nothing of the executions kept on disk.
    pub fn with_persistence(
        config: Config,
        persistence: Arc<dyn Persistence>,
    ) -> std::io::Result<Self> {
        let kv = KvStore::in_memory(config.kv.limits());
        let logs = LogStore::in_memory(config.log_limits());
        let task_metrics = MetricStore::in_memory(config.metric_limits());
        Self::assemble(
            config,
            persistence,
            None,
            Ledger::in_memory(),
            Watermark::in_memory(),
            (kv, logs, task_metrics),
        )
    }

    /// The server as it runs in production: flows in `data/flows`, every
    /// execution journaled in `data/executions/shard-N`. What was in flight
    /// resumes; what had ended stays readable for its retention window.
    pub fn open(mut config: Config) -> std::io::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)?;
        let free = peregrine_wal::free_space(&config.data_dir)?;
        if let Some(note) = config.fit_to_disk(free) {
            tracing::warn!("{note}");
        }
        if let Some(why) = config.refuse_disk(free) {
            return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, why));
        }
        let wal = config.wal_config();
        let flows_dir = crate::data::flows_log(&config.data_dir);
        let flows = WalFlows::open(&flows_dir, flows_wal(&wal))?;
        let schedules_dir = crate::data::schedules_log(&config.data_dir);
        let schedules = Ledger::open(&schedules_dir, crate::schedule::wal_config(&wal))?;
        let mark_dir = crate::data::flow_triggers_log(&config.data_dir);
        let mark = Watermark::open(&mark_dir, crate::schedule::wal_config(&wal))?;
        let kv = open_kv(&config, &wal)?;
        let logs = open_logs(&config, &wal)?;
        let task_metrics = open_metrics(&config, &wal)?;
        let dir = crate::data::executions(&config.data_dir);
        Self::assemble(
            config,
            Arc::new(flows),
            Some((dir, wal)),
            schedules,
            mark,
            (kv, logs, task_metrics),
        )
    }

    fn assemble(
        config: Config,
        persistence: Arc<dyn Persistence>,
        journal: Option<(std::path::PathBuf, peregrine_wal::Config)>,
        schedules: Ledger,
        mark: Watermark,
        (kv, logs, task_metrics): (KvStore, LogStore, MetricStore),
    ) -> std::io::Result<Self> {
        // Their size is checked at load; again here, for a config built in
        // code.
        let variables = config
            .engine_variables()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?
            .with_kv(kv.clone())
            .with_files(open_files(&config)?);
        let server_variables = variables.clone();
        let hub = Arc::new(Hub::new(config.server.sse_buffer.get()));
        let metrics = Arc::new(Metrics::default());
        let flow_triggers = Arc::new(FlowTriggers::new(mark));
        let tracker = Arc::new(Tracker {
            hub: Arc::clone(&hub),
            metrics: Arc::clone(&metrics),
            flow_triggers: Arc::clone(&flow_triggers),
        });
        let flows = Arc::new(FlowRepository::open(Arc::clone(&persistence))?);
        let schedules = Arc::new(crate::schedule::Scheduler::new(schedules));
        let triggers = crate::schedule::Switch::new(Arc::clone(&schedules), Arc::clone(&flows));
        let engine_config = EngineConfig {
            threads: config.threads(),
            inbox_capacity: config.executor.inbox_capacity,
            batch: config.executor.batch,
            workers: config.executor.workers,
            work_queue: config.executor.work_queue,
            max_running: Some(config.executor.max_running),
            queueing_budget: Some(config.executor.queueing_budget.0),
            retention: config.executions.retention.0,
            max_finished: config.executions.max_finished,
            max_retained: Some(config.executions.max_retained.get()),
            retention_size: Some(config.executions.retention_size.0),
            limits: config.limits(),
            flows: Some(Arc::clone(&flows) as Arc<dyn peregrine_engine::Flows>),
            variables,
            triggers: Some(Arc::new(triggers)),
            logs: Some(logs.clone()),
            metrics: Some(task_metrics.clone()),
            max_processes: config.scripts.max_processes,
        };
        let observer = tracker as Arc<dyn Observer>;
        let engine = match journal {
            None => Engine::start(engine_config, observer)?,
            Some((dir, wal)) => {
                let resolve = |namespace: &str, id: &str, revision: u32| {
                    flows
                        .revision(namespace, id, revision)
                        .map(|stored| Arc::clone(stored.revision()))
                };
                let (engine, recovery) =
                    Engine::start_durable(engine_config, observer, &dir, wal, &resolve).map_err(
                        |e| match e {
                            peregrine_engine::Error::Wal(e) => crate::data::open_error(e),
                            e => std::io::Error::other(e),
                        },
                    )?;
                log_recovery(&recovery);
                engine
            }
        };
        let authorization = config.server.basic_auth.as_ref().map(|auth| {
            base64(format!("{}:{}", auth.username, auth.password).as_bytes())
                .trim_end_matches('=')
                .to_owned()
        });
        let engine = Arc::new(Slot(RwLock::new(Some(engine))));
        let readiness = Arc::new(Readiness::default());
        Ok(Self(Arc::new(Parts {
            config,
            flows,
            launcher: Launcher {
                engine: Arc::clone(&engine),
                readiness: Arc::clone(&readiness),
                metrics: Arc::clone(&metrics),
            },
            executions: Executions {
                engine: Arc::clone(&engine),
            },
            engine,
            hub,
            metrics,
            readiness,
            persistence,
            authorization,
            triggers: crate::kafka::Triggers::default(),
            schedules,
            flow_triggers,
            variables: server_variables,
            kv,
            logs,
            task_metrics,
        })))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn flows(&self) -> &FlowRepository {
        &self.0.flows
    }

    pub(crate) fn launcher(&self) -> &Launcher {
        &self.0.launcher
    }

    pub(crate) fn executions(&self) -> &Executions {
        &self.0.executions
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.0.hub
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub(crate) fn metrics_handle(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    pub fn persistence(&self) -> &Arc<dyn Persistence> {
        &self.0.persistence
    }

    pub(crate) fn triggers(&self) -> &crate::kafka::Triggers {
        &self.0.triggers
    }

    pub(crate) fn schedules(&self) -> &crate::schedule::Scheduler {
        &self.0.schedules
    }

    pub(crate) fn flow_triggers(&self) -> &FlowTriggers {
        &self.0.flow_triggers
    }

    pub(crate) fn variables(&self) -> &peregrine_engine::ConfigVariables {
        &self.0.variables
    }

    /// The KV store (kept in `data/kv` when durable).
    pub(crate) fn kv(&self) -> &KvStore {
        &self.0.kv
    }

    /// The internal storage (executions' files) and where scripts work.
    pub(crate) fn files(&self) -> &peregrine_engine::storage::Files {
        self.0
            .variables
            .files()
            .expect("the server's variables always carry its files")
    }

    /// The lines executions logged (kept in `data/logs` when durable).
    pub(crate) fn logs(&self) -> &LogStore {
        &self.0.logs
    }

    /// The metrics task runs recorded (kept in `data/metrics` when
    /// durable); not the server's own, [`AppState::metrics`].
    pub(crate) fn task_metrics(&self) -> &MetricStore {
        &self.0.task_metrics
    }

    pub(crate) fn authorization(&self) -> Option<&str> {
        self.0.authorization.as_deref()
    }

    /// False from the start of shutdown on.
    pub fn is_ready(&self) -> bool {
        self.0.readiness.is_ready()
    }

    /// What `/metrics` reads at scrape time.
    pub fn gauges(&self) -> Gauges {
        self.0
            .engine
            .with(|engine| Gauges {
                inbox_depths: engine.inbox_depths(),
                running: engine.running(),
                finished: engine.finished(),
                wals: engine.journal_stats(),
            })
            .unwrap_or_default()
    }

    /// First step of a graceful shutdown: report not ready, refuse new
    /// executions and subscriptions, and end every follow stream and wait.
    pub fn begin_shutdown(&self) {
        self.0.readiness.stop();
        self.hub().close();
    }

    /// Last step: stop the shards once they have handled what they were
    /// sent, then make everything durable. Blocks; call it off the async
    /// runtime.
    pub fn shutdown(&self) -> std::io::Result<()> {
        self.begin_shutdown();
        // Triggers first: consumers commit the offsets of what is durable,
        // the scheduler ends the fire it is in.
        self.0.triggers.stop_all();
        self.0.schedules.stop();
        self.0.flow_triggers.stop();
        if let Some(engine) = self.0.engine.take() {
            engine.shutdown();
        }
        self.0.persistence.sync()
    }
}

/// Says what recovery lost: every execution the skipped WAL damage took or
/// left incomplete, by id, and every one that could not be resumed. (The
/// WAL itself logs the torn tails it cut and the damage it dropped, with
/// their paths and offsets.)
fn log_recovery(recovery: &peregrine_engine::Recovery) {
    use peregrine_engine::Left;
    for d in &recovery.damaged {
        let at = d.path.display();
        match &d.left {
            Left::Finished => tracing::warn!(
                execution = %d.id,
                "execution lost journal records to WAL damage at {at}, offset {}; {}",
                d.offset,
                d.left
            ),
            _ => tracing::error!(
                execution = %d.id,
                "execution lost journal records to WAL damage at {at}, offset {}; {}",
                d.offset,
                d.left
            ),
        }
    }
    for (id, why) in &recovery.failed {
        tracing::error!(execution = %id, "{why}");
    }
    tracing::info!(
        resumed = recovery.resumed,
        finished = recovery.finished,
        failed = recovery.failed.len(),
        quarantined = recovery.quarantined.len(),
        damaged = recovery.damaged.len(),
        "recovered executions"
    );
}

/// The flows' log: the same disk settings, but records never expire (a
/// flow change is never superseded by a terminal record), and no spare
/// segment kept ready, since flows change rarely. `skip_damaged` is the
/// executions' too: one flag for every log of the data folder.
pub(crate) fn flows_wal(executions: &peregrine_wal::Config) -> peregrine_wal::Config {
    peregrine_wal::Config {
        terminal_retention: None,
        spare_segments: 0,
        ..executions.clone()
    }
}

/// The KV store in `data/kv`; its log is made at the first write when the
/// folder has none.
/// The internal storage in `data/storage` (made at its first file), and
/// `data/work` for scripts, emptied of what a crash left there.
fn open_files(config: &Config) -> std::io::Result<peregrine_engine::storage::Files> {
    let storage =
        peregrine_engine::storage::LocalStorage::open(crate::data::storage(&config.data_dir))?;
    let files = peregrine_engine::storage::Files::new(
        storage,
        crate::data::work(&config.data_dir),
        config.storage.max_file_size.0,
    );
    let killed = files.clear_work_root()?;
    if killed > 0 {
        tracing::warn!("killed what {killed} scripts interrupted by the last stop left running");
    }
    Ok(files)
}

fn open_kv(config: &Config, wal: &peregrine_wal::Config) -> std::io::Result<KvStore> {
    let dir = crate::data::kv_log(&config.data_dir);
    let kv_wal = kv_wal(wal);
    if !dir.is_dir() {
        return Ok(KvStore::deferred(dir, kv_wal, config.kv.limits()));
    }
    let (log, recovered) = crate::data::open_log(
        &dir,
        kv_wal,
        "KV records",
        "their keys hold what they held before the lost write",
    )?;
    Ok(KvStore::from_log(log, &recovered, config.kv.limits()))
}

/// The log store in `data/logs`; its log is made at the first line when
/// the folder has none.
fn open_logs(config: &Config, wal: &peregrine_wal::Config) -> std::io::Result<LogStore> {
    let limits = config.log_limits();
    let log_wal = peregrine_engine::logs::wal_config(store_wal(wal), &limits);
    let dir = crate::data::logs_log(&config.data_dir);
    Ok(
        match open_store_log(&dir, &log_wal, "log lines", "the log API")? {
            None => LogStore::deferred(dir, log_wal, limits),
            Some((log, recovered)) => LogStore::from_log(log, &recovered, limits),
        },
    )
}

/// The metric store in `data/metrics`; its log is made at the first
/// metric when the folder has none.
fn open_metrics(config: &Config, wal: &peregrine_wal::Config) -> std::io::Result<MetricStore> {
    let limits = config.metric_limits();
    let metrics_wal = peregrine_engine::metric_store::wal_config(store_wal(wal), &limits);
    let dir = crate::data::metrics_log(&config.data_dir);
    Ok(
        match open_store_log(&dir, &metrics_wal, "task metrics", "the metric API")? {
            None => MetricStore::deferred(dir, metrics_wal, limits),
            Some((log, recovered)) => MetricStore::from_log(log, &recovered, limits),
        },
    )
}

/// The WAL settings of a store's log (lines, metrics) over the server's:
/// small segments, one spare.
fn store_wal(wal: &peregrine_wal::Config) -> peregrine_wal::Config {
    peregrine_wal::Config {
        segment_bytes: std::num::NonZeroU64::new(16 << 20).expect("non-zero"),
        max_record_bytes: std::num::NonZeroU32::new(1 << 20).expect("non-zero"),
        spare_segments: 1,
        ..wal.clone()
    }
}

/// A store's log in `dir`, with what its recovery read back; none when
/// the folder does not exist yet (the store makes it at its first write).
/// `what` it holds, and who no longer serves what a damage drops.
fn open_store_log(
    dir: &std::path::Path,
    wal: &peregrine_wal::Config,
    what: &str,
    api: &str,
) -> std::io::Result<Option<(peregrine_wal::Wal, peregrine_wal::Recovered)>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let lost = format!("{api} no longer serves them");
    crate::data::open_log(dir, wal.clone(), what, &lost).map(Some)
}

/// The KV store's log: one record per write, up to a value's limit (512
/// KiB) with its metadata; small segments, none spare, never expiring.
fn kv_wal(executions: &peregrine_wal::Config) -> peregrine_wal::Config {
    peregrine_wal::Config {
        segment_bytes: std::num::NonZeroU64::new(4 << 20).expect("non-zero"),
        max_record_bytes: std::num::NonZeroU32::new(1 << 20).expect("non-zero"),
        ..flows_wal(executions)
    }
}

/// Standard base64 with padding, for the expected `Authorization` value.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(plain.as_bytes()), encoded);
        }
    }
}
