//! What every handler shares: the settings, the flows, the executions the
//! API answers for, the fan-out hub, the metrics and the engine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use peregrine_engine::Receipt;
use peregrine_engine::execution::{Execution, ExecutionId};
use peregrine_engine::executor::{
    Engine, EngineConfig, NewExecution, Observer, OnCreated, PushError,
};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::hub::Hub;
use crate::metrics::{Gauges, Metrics};
use crate::store::{
    ExecutionStore, FlowRepository, InMemory, Pending, Persistence, Restored, StoredFlow, WalFlows,
};

/// The server's state; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

struct Shared {
    config: Config,
    flows: FlowRepository,
    tracker: Arc<Tracker>,
    /// `None` once shut down.
    engine: RwLock<Option<Engine>>,
    persistence: Arc<dyn Persistence>,
    /// `Basic <base64>` that requests must carry, when auth is on.
    authorization: Option<String>,
    stopping: AtomicBool,
    /// Executions recovered in flight at start: known before their shard
    /// first reports them, so that a redelivered trigger message finds them.
    recovered: std::collections::HashSet<ExecutionId>,
    triggers: crate::kafka::Triggers,
}

/// Where the engine's changes land: the store first, then the hub, so that
/// a subscriber that reads the store after subscribing misses nothing.
#[derive(Debug)]
pub(crate) struct Tracker {
    pub executions: ExecutionStore,
    pub hub: Arc<Hub>,
    pub metrics: Metrics,
}

impl Observer for Tracker {
    fn on_change(&self, execution: &Execution, terminal: bool) {
        self.on_change_journaled(execution, terminal, &Receipt::ready());
    }

    fn on_change_journaled(&self, execution: &Execution, terminal: bool, receipt: &Receipt) {
        if let Some(took) = self.executions.observe(execution, terminal) {
            self.metrics.finished(execution.state(), took);
        }
        self.hub.publish(execution, terminal, receipt);
    }
}

/// The engine would not take an execution or a kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The shard's inbox is full: backpressure.
    Full,
    /// The engine is stopping or stopped.
    Stopped,
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
    /// Called on the shard once the creation is journaled.
    pub on_created: Option<OnCreated>,
}

/// Why an execution was not started.
#[derive(Debug)]
pub(crate) enum LaunchError {
    /// The flow is disabled.
    Disabled,
    /// `executor.max-running` executions are running already.
    TooMany(String),
    Refused(Refused),
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
        Self::assemble(config, persistence, None)
    }

    /// The server as it runs in production: flows in `data/flows`, every
    /// execution journaled in `data/executions/shard-N`. What was in flight
    /// resumes; what had ended stays readable for its retention window.
    pub fn open(config: Config) -> std::io::Result<Self> {
        let wal = config.wal_config();
        let flows_dir = config.data_dir.join("flows");
        let flows = WalFlows::open(&flows_dir, flows_wal(&wal))?;
        let dir = config.data_dir.join("executions");
        Self::assemble(config, Arc::new(flows), Some((dir, wal)))
    }

    fn assemble(
        config: Config,
        persistence: Arc<dyn Persistence>,
        journal: Option<(std::path::PathBuf, peregrine_wal::Config)>,
    ) -> std::io::Result<Self> {
        let tracker = Arc::new(Tracker {
            executions: ExecutionStore::new(
                config.executor.max_running.get(),
                config.executions.retention.0,
                config.executions.max_finished.get(),
            ),
            hub: Arc::new(Hub::new(config.server.sse_buffer.get())),
            metrics: Metrics::default(),
        });
        let flows = FlowRepository::open(Arc::clone(&persistence))?;
        let engine_config = EngineConfig {
            threads: config.threads(),
            inbox_capacity: config.executor.inbox_capacity,
            batch: config.executor.batch,
            workers: config.executor.workers,
            work_queue: config.executor.work_queue,
        };
        let observer = Arc::clone(&tracker) as Arc<dyn Observer>;
        let mut recovered = std::collections::HashSet::new();
        let engine = match journal {
            None => Engine::start(engine_config, observer)?,
            Some((dir, wal)) => {
                let resolve = |namespace: &str, id: &str, revision: u32| {
                    flows
                        .revision(namespace, id, revision)
                        .map(|stored| Arc::clone(stored.revision()))
                };
                let (engine, recovery) =
                    Engine::start_durable(engine_config, observer, &dir, wal, &resolve)
                        .map_err(std::io::Error::other)?;
                let mut restored = 0;
                for json in recovery.finished {
                    if Restored::from_json(json).is_some_and(|r| tracker.executions.restore(r)) {
                        restored += 1;
                    }
                }
                recovered.extend(recovery.resumed_ids.iter().copied());
                for (id, why) in &recovery.failed {
                    tracing::error!(execution = %id, "cannot resume: {why}");
                }
                for report in &recovery.reports {
                    if let Some(tail) = &report.torn_tail {
                        // Expected after a crash: the last batch may be cut.
                        tracing::info!(
                            segment = %tail.segment,
                            offset = tail.offset,
                            "cut a torn tail: {}",
                            tail.reason
                        );
                    }
                }
                tracing::info!(
                    resumed = recovery.resumed,
                    restored,
                    failed = recovery.failed.len(),
                    "recovered executions"
                );
                engine
            }
        };
        let authorization = config.server.basic_auth.as_ref().map(|auth| {
            format!(
                "Basic {}",
                base64(format!("{}:{}", auth.username, auth.password).as_bytes())
            )
        });
        Ok(Self(Arc::new(Shared {
            config,
            flows,
            tracker,
            engine: RwLock::new(Some(engine)),
            persistence,
            authorization,
            stopping: AtomicBool::new(false),
            recovered,
            triggers: crate::kafka::Triggers::default(),
        })))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn flows(&self) -> &FlowRepository {
        &self.0.flows
    }

    pub fn executions(&self) -> &ExecutionStore {
        &self.0.tracker.executions
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.0.tracker.hub
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.tracker.metrics
    }

    pub fn persistence(&self) -> &Arc<dyn Persistence> {
        &self.0.persistence
    }

    pub(crate) fn triggers(&self) -> &crate::kafka::Triggers {
        &self.0.triggers
    }

    /// Whether this node has (or had, within the retention) execution `id`.
    pub(crate) fn is_known(&self, id: ExecutionId) -> bool {
        self.0.recovered.contains(&id) || self.executions().get(id).is_some()
    }

    pub(crate) fn authorization(&self) -> Option<&str> {
        self.0.authorization.as_deref()
    }

    /// False from the start of shutdown on.
    pub fn is_ready(&self) -> bool {
        !self.0.stopping.load(Ordering::Acquire)
    }

    fn with_engine<T>(&self, f: impl FnOnce(&Engine) -> T) -> Option<T> {
        let engine = self
            .0
            .engine
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        engine.as_ref().map(f)
    }

    /// Admits an execution (running limit), shows it in the store as
    /// pending, and queues it on its shard; undone when refused (the caller
    /// counts refusals its own way).
    pub(crate) fn launch(&self, launch: Launch<'_>) -> Result<ExecutionId, LaunchError> {
        let Launch {
            flow: stored,
            inputs,
            labels,
            trigger,
            id,
            on_created,
        } = launch;
        let flow = stored.flow();
        if flow.disabled {
            return Err(LaunchError::Disabled);
        }
        // As the engine will label it (see `Run::new`), so that the
        // execution reads the same before and after its shard picks it up.
        let mut shown_labels: Vec<(String, String)> = flow
            .labels
            .iter()
            .filter(|(k, _)| !k.starts_with("system."))
            .cloned()
            .collect();
        shown_labels.push(("system.correlationId".into(), id.to_string()));
        for (k, v) in &labels {
            match shown_labels.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.clone(),
                None => shown_labels.push((k.clone(), v.clone())),
            }
        }
        self.executions()
            .admit(Pending {
                id,
                namespace: flow.namespace.clone(),
                flow_id: flow.id.clone(),
                flow_revision: flow.revision,
                inputs: inputs.clone(),
                labels: shown_labels,
                trigger: trigger.clone(),
                created: chrono::Utc::now(),
            })
            .map_err(|e| LaunchError::TooMany(e.to_string()))?;
        let mut new = NewExecution::new(std::sync::Arc::clone(stored.revision()), inputs);
        new.id = id;
        new.labels = labels;
        new.trigger = trigger;
        new.on_created = on_created;
        if let Err(refused) = self.submit(new) {
            self.executions().withdraw(id);
            return Err(LaunchError::Refused(refused));
        }
        self.metrics().created();
        Ok(id)
    }

    /// Queues a new execution on its shard.
    pub fn submit(&self, new: NewExecution) -> Result<ExecutionId, Refused> {
        if !self.is_ready() {
            return Err(Refused::Stopped);
        }
        match self.with_engine(|engine| engine.submit(new)) {
            Some(Ok(id)) => Ok(id),
            Some(Err(PushError::Full(_))) => Err(Refused::Full),
            Some(Err(PushError::Closed(_))) | None => Err(Refused::Stopped),
        }
    }

    /// Asks the owning shard to kill `id`.
    pub fn kill(&self, id: ExecutionId) -> Result<(), Refused> {
        match self.with_engine(|engine| engine.kill(id)) {
            Some(Ok(())) => Ok(()),
            Some(Err(PushError::Full(_))) => Err(Refused::Full),
            Some(Err(PushError::Closed(_))) | None => Err(Refused::Stopped),
        }
    }

    /// What `/metrics` reads at scrape time.
    pub fn gauges(&self) -> Gauges {
        Gauges {
            inbox_depths: self.with_engine(Engine::inbox_depths).unwrap_or_default(),
            running: self.executions().running(),
            wals: self.with_engine(Engine::journal_stats).unwrap_or_default(),
        }
    }

    /// First step of a graceful shutdown: report not ready, refuse new
    /// executions and subscriptions, and end every follow stream and wait.
    pub fn begin_shutdown(&self) {
        self.0.stopping.store(true, Ordering::Release);
        self.hub().close();
    }

    /// Last step: stop the shards once they have handled what they were
    /// sent, then make everything durable. Blocks; call it off the async
    /// runtime.
    pub fn shutdown(&self) -> std::io::Result<()> {
        self.begin_shutdown();
        // Consumers first: each commits the offsets of what is durable.
        self.0.triggers.stop_all();
        let engine = self
            .0
            .engine
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(engine) = engine {
            engine.shutdown();
        }
        self.0.persistence.sync()
    }
}

/// The flows' log: the same disk settings, but records never expire (a
/// flow change is never superseded by a terminal record), and no spare
/// segment kept ready, since flows change rarely.
fn flows_wal(executions: &peregrine_wal::Config) -> peregrine_wal::Config {
    peregrine_wal::Config {
        terminal_retention: None,
        spare_segments: 0,
        ..executions.clone()
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
