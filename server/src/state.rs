//! What every handler shares: the settings, the flows, the executions the
//! API answers for, the fan-out hub, the metrics and the engine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use peregrine_engine::Receipt;
use peregrine_engine::execution::{Execution, ExecutionId};
use peregrine_engine::executor::{Engine, EngineConfig, NewExecution, Observer, PushError};

use crate::config::Config;
use crate::hub::Hub;
use crate::metrics::{Gauges, Metrics};
use crate::store::{ExecutionStore, FlowRepository, InMemory, Persistence};

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

impl AppState {
    /// Starts the engine with nothing durable: what tests and `none`
    /// durability use.
    pub fn start(config: Config) -> std::io::Result<Self> {
        Self::with_persistence(config, Arc::new(InMemory))
    }

    /// Recovers the flows from `persistence` and starts the engine.
    pub fn with_persistence(
        config: Config,
        persistence: Arc<dyn Persistence>,
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
        let engine = Engine::start(
            EngineConfig {
                threads: config.threads(),
                inbox_capacity: config.executor.inbox_capacity,
                batch: config.executor.batch,
                workers: config.executor.workers,
                work_queue: config.executor.work_queue,
            },
            Arc::clone(&tracker) as Arc<dyn Observer>,
        )?;
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

/// Standard base64 with padding, for the expected `Authorization` value.
fn base64(bytes: &[u8]) -> String {
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
