//! Embedded mode: the engine in this process, journaling to a real WAL.
//!
//! The calling thread drives the schedule and submits. The engine's observer
//! runs on each shard thread: on a terminal change it checks the outputs and
//! looks at the journal receipt. If the records are already durable (no WAL,
//! or a WAL that acknowledges before syncing) it records the latency right
//! there, in that shard's own histogram. Otherwise (`sync`) it hands the
//! receipt to that shard's completion thread, which waits until the records
//! are durable (what a client of `peregrine server` would wait for) and
//! records the latency in its own histogram. One completion thread per shard
//! keeps the waits in LSN order, so no completion is recorded late behind
//! another shard's fsync; recording in place otherwise keeps the generator
//! from waking a thread per execution on the shard's time.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use peregrine_engine::Receipt;
use peregrine_engine::flow::validate_inputs;
use peregrine_engine::{
    Ack, Change, Engine, EngineConfig, FlowRevision, NewExecution, Observer, Refusal,
};
use peregrine_engine::{Execution, ExecutionId, State};
use peregrine_wal::SyncMode;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::latency::{Outcome, Tally};
use crate::options::{Durability, EmbeddedSettings, WalWrites};
use crate::orders::{Expected, order};
use crate::report::RunReport;
use crate::schedule::Schedule;

/// A full inbox is retried after this pause: long enough to let the shard
/// drain a batch, short enough not to add much to the measured latency.
const FULL_INBOX_PAUSE: Duration = Duration::from_micros(50);

/// Executions run (and waited for) on each fresh engine before the
/// measured schedule starts; they are not measured.
const WARMUP_EXECUTIONS: u64 = 50;
/// A warm-up that has not ended by then is abandoned (the run goes on).
const WARMUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The engine under test, one fresh instance (and WAL folder) per run.
#[derive(Debug)]
pub struct Embedded {
    settings: EmbeddedSettings,
    flow: Arc<FlowRevision>,
    root: DataRoot,
    runs: u64,
}

#[derive(Debug)]
enum DataRoot {
    Temporary(tempfile::TempDir),
    Given(PathBuf),
    Unused,
}

impl DataRoot {
    fn path(&self) -> Option<&Path> {
        match self {
            DataRoot::Temporary(dir) => Some(dir.path()),
            DataRoot::Given(path) => Some(path),
            DataRoot::Unused => None,
        }
    }
}

/// What the observer hands a completion thread.
struct Done {
    n: u64,
    correct: bool,
    receipt: Receipt,
}

/// Sees the run's executions end, on the shard threads.
struct RunObserver {
    /// Which execution of the schedule each id is. Built before the run and
    /// only read during it: no lock.
    index: FxHashMap<ExecutionId, u64>,
    /// The transform each order must yield; `None` when the flow has no
    /// task `transform` (then only the SUCCESS state is checked).
    expected: Option<Vec<Expected>>,
    lanes: Vec<flume::Sender<Done>>,
    /// Terminal changes a lane could not take: counted as failed, never
    /// dropped silently (the lanes hold a whole run, so this stays 0).
    lost: AtomicU64,
    /// Whether receipts may already be durable when the observer sees them
    /// (every mode but `sync`): then the shard records in place.
    in_place: bool,
    /// One tally per shard, each locked only by its shard's thread.
    in_place_tallies: Vec<Mutex<Tally>>,
    schedule: Schedule,
    /// Set once the engine is up, before the first submission.
    start: OnceLock<Instant>,
    finished: Arc<AtomicU64>,
    /// A tally lock was found poisoned (a panic on a shard thread).
    poisoned: AtomicBool,
    /// Warm-up executions (not in `index`) that have ended.
    warmed: AtomicU64,
}

/// Records one ended execution of `schedule` begun at `start`.
fn record(
    tally: &mut Tally,
    schedule: &Schedule,
    start: Instant,
    n: u64,
    completed: bool,
    finished: &AtomicU64,
) {
    let at = Instant::now();
    let latency = at.saturating_duration_since(start + schedule.offset(n));
    let outcome = if completed {
        Outcome::Completed
    } else {
        Outcome::Failed
    };
    let last = schedule.executions().saturating_sub(1);
    tally.record(outcome, latency, n == last, at);
    finished.fetch_add(1, Ordering::Relaxed);
}

/// The receipt's verdict if it is already decided, without blocking.
fn settled(receipt: &Receipt) -> Option<bool> {
    let mut durable = std::pin::pin!(receipt.durable());
    match durable
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(result) => Some(result.is_ok()),
        Poll::Pending => None,
    }
}

impl RunObserver {
    fn correct(&self, exec: &Execution, n: u64) -> bool {
        if exec.state() != State::Success {
            return false;
        }
        let Some(expected) = &self.expected else {
            return true;
        };
        let Some(expected) = usize::try_from(n).ok().and_then(|n| expected.get(n)) else {
            return false;
        };
        exec.task_runs_of("transform")
            .next()
            .and_then(|run| run.outputs())
            .and_then(|outputs| outputs.get("value"))
            .is_some_and(|value| expected.matches(value))
    }
}

/// The shard this observer call runs on, from the thread's name (`shard-N`,
/// as the engine names them); lane 0 if the name says nothing.
fn shard_lane() -> usize {
    std::thread::current()
        .name()
        .and_then(|name| name.strip_prefix("shard-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Observer for RunObserver {
    fn on_change(&self, change: &Change<'_>) {
        if change.ended.is_none() {
            return;
        }
        let (exec, receipt) = (change.execution, change.receipt);
        let Some(&n) = self.index.get(&exec.id()) else {
            self.warmed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let correct = self.correct(exec, n);
        let lane = shard_lane() % self.lanes.len();
        if self.in_place
            && let Some(durable) = settled(receipt)
            && let Some(start) = self.start.get()
        {
            match self.in_place_tallies[lane].lock() {
                Ok(mut tally) => record(
                    &mut tally,
                    &self.schedule,
                    *start,
                    n,
                    correct && durable,
                    &self.finished,
                ),
                Err(_) => self.poisoned.store(true, Ordering::Relaxed),
            }
            return;
        }
        let done = Done {
            n,
            correct,
            receipt: receipt.clone(),
        };
        if self.lanes[lane].try_send(done).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One completion thread: waits for durability in arrival (LSN) order and
/// records each latency from the execution's intended start.
fn complete(
    lane: flume::Receiver<Done>,
    schedule: Schedule,
    start: Instant,
    finished: &AtomicU64,
) -> Tally {
    let mut tally = Tally::new();
    for done in lane.iter() {
        let durable = done.receipt.wait().is_ok();
        record(
            &mut tally,
            &schedule,
            start,
            done.n,
            done.correct && durable,
            finished,
        );
    }
    tally
}

impl Embedded {
    pub fn new(settings: EmbeddedSettings, flow: Arc<FlowRevision>) -> Result<Self> {
        let root = match (&settings.data_dir, settings.durability) {
            (_, Durability::Memory) => DataRoot::Unused,
            (Some(dir), _) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                DataRoot::Given(dir.clone())
            }
            (None, _) => DataRoot::Temporary(
                tempfile::Builder::new()
                    .prefix("peregrine-loadtest-")
                    .tempdir()
                    .map_err(|e| Error::io(Path::new("temporary folder"), e))?,
            ),
        };
        let embedded = Self {
            settings,
            flow,
            root,
            runs: 0,
        };
        embedded
            .wal_config()
            .validate()
            .map_err(|e| Error::Setup(format!("WAL configuration: {e}")))?;
        Ok(embedded)
    }

    fn wal_config(&self) -> peregrine_wal::Config {
        peregrine_wal::Config {
            segment_bytes: self.settings.segment_bytes,
            writes: match self.settings.writes {
                WalWrites::Mapped => peregrine_wal::Writes::Mapped,
                WalWrites::Pwrite => peregrine_wal::Writes::Pwrite,
            },
            sync: match self.settings.durability {
                Durability::Sync => SyncMode::Sync,
                Durability::Interval => SyncMode::Interval(self.settings.sync_interval),
                Durability::None | Durability::Memory => SyncMode::None,
            },
            ..peregrine_wal::Config::default()
        }
    }

    /// Runs one schedule on a fresh engine; `finished` counts executions
    /// as they end (for the progress bar).
    pub fn run(
        &mut self,
        schedule: Schedule,
        drain: Duration,
        finished: &Arc<AtomicU64>,
    ) -> Result<RunReport> {
        let executions = schedule.executions();
        // Built before the clock starts: the generator's own cost stays out
        // of the measurement.
        let mut news = Vec::with_capacity(usize::try_from(executions).unwrap_or(0));
        let mut index = FxHashMap::with_capacity_and_hasher(news.capacity(), Default::default());
        for n in 0..executions {
            let mut provided = serde_json::Map::new();
            provided.insert("order".into(), order(n));
            let inputs = validate_inputs(self.flow.flow(), &provided)
                .map_err(|e| Error::Setup(format!("the flow refuses the order input: {e}")))?;
            let new = NewExecution::new(Arc::clone(&self.flow), inputs);
            index.insert(new.id, n);
            news.push(new);
        }
        let expected = self
            .flow
            .flow()
            .find_task("transform")
            .is_some()
            .then(|| (0..executions).map(Expected::of).collect());

        let config = EngineConfig {
            threads: self.settings.threads,
            inbox_capacity: self.settings.inbox_capacity,
            ..EngineConfig::default()
        };
        let shards = config.threads.get();
        let capacity = usize::try_from(executions).unwrap_or(usize::MAX);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..shards).map(|_| flume::bounded(capacity)).unzip();
        let observer = Arc::new(RunObserver {
            index,
            expected,
            lanes: senders,
            lost: AtomicU64::new(0),
            in_place: self.settings.durability != Durability::Sync,
            in_place_tallies: (0..shards).map(|_| Mutex::new(Tally::new())).collect(),
            schedule,
            start: OnceLock::new(),
            finished: Arc::clone(finished),
            poisoned: AtomicBool::new(false),
            warmed: AtomicU64::new(0),
        });
        self.runs += 1;
        let dir = self
            .root
            .path()
            .map(|root| root.join(format!("run-{}", self.runs)));
        let engine = match &dir {
            None => Engine::start(config, Arc::clone(&observer) as Arc<dyn Observer>)
                .map_err(|e| Error::Setup(format!("starting the engine: {e}")))?,
            Some(dir) => {
                let flow = Arc::clone(&self.flow);
                let resolve = move |namespace: &str, id: &str, _revision: u32| {
                    (flow.flow().namespace == namespace && flow.flow().id == id)
                        .then(|| Arc::clone(&flow))
                };
                let (engine, _recovery) = Engine::start_durable(
                    config,
                    Arc::clone(&observer) as Arc<dyn Observer>,
                    dir,
                    self.wal_config(),
                    &resolve,
                )
                .map_err(|e| Error::Setup(format!("starting the engine: {e}")))?;
                engine
            }
        };

        // One-time costs (lazy initialization, the first page faults of the
        // WAL and the allocator) stay out of the figures, as they would in a
        // server that has been up for a while.
        let mut warmup_left = WARMUP_EXECUTIONS;
        let warmup_deadline = Instant::now() + WARMUP_TIMEOUT;
        while warmup_left > 0 && Instant::now() < warmup_deadline {
            let mut provided = serde_json::Map::new();
            provided.insert("order".into(), order(warmup_left));
            let inputs = validate_inputs(self.flow.flow(), &provided)
                .map_err(|e| Error::Setup(format!("the flow refuses the order input: {e}")))?;
            if engine
                .submit(
                    NewExecution::new(Arc::clone(&self.flow), inputs),
                    Ack::Receipt,
                )
                .is_ok()
            {
                warmup_left -= 1;
            } else {
                std::thread::sleep(FULL_INBOX_PAUSE);
            }
        }
        while observer.warmed.load(Ordering::Relaxed) < WARMUP_EXECUTIONS
            && Instant::now() < warmup_deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }

        // Everything must know the start before the first completion.
        let start = Instant::now() + Duration::from_millis(5);
        observer
            .start
            .set(start)
            .map_err(|_| Error::Setup("the run's start was set twice".into()))?;
        let finished: &AtomicU64 = finished;
        let mut generator = Tally::new();
        let tallies = std::thread::scope(|scope| {
            let workers: Vec<_> = receivers
                .into_iter()
                .enumerate()
                .map(|(k, lane)| {
                    std::thread::Builder::new()
                        .name(format!("complete-{k}"))
                        .spawn_scoped(scope, move || complete(lane, schedule, start, finished))
                })
                .collect::<std::io::Result<_>>()
                .map_err(|e| Error::Setup(format!("spawning completion threads: {e}")))?;

            let deadline = start + schedule.span() + drain;
            let mut pending = news.into_iter();
            schedule.drive(start, |_| {
                let Some(mut new) = pending.next() else {
                    return;
                };
                loop {
                    match engine.submit(new, Ack::Receipt) {
                        Ok(_) => break,
                        Err(e)
                            if matches!(e.refusal, Refusal::Full | Refusal::Overloaded { .. })
                                && Instant::now() < deadline =>
                        {
                            generator.record_retry();
                            std::thread::sleep(FULL_INBOX_PAUSE);
                            new = *e.execution;
                        }
                        Err(_) => {
                            generator.record_lost();
                            finished.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            });
            while finished.load(Ordering::Relaxed) < executions && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            engine.shutdown();
            let lost = observer.lost.load(Ordering::Relaxed);
            if observer.poisoned.load(Ordering::Relaxed) {
                return Err(Error::Setup(
                    "a shard thread panicked while recording".into(),
                ));
            }
            let mut tallies = vec![generator];
            for tally in &observer.in_place_tallies {
                let tally = tally
                    .lock()
                    .map_err(|_| Error::Setup("a shard thread panicked while recording".into()))?;
                tallies.push(tally.clone());
            }
            // The shard threads are gone: this is the last handle on the
            // lanes' senders, and dropping it lets the lanes finish.
            drop(observer);
            for worker in workers {
                tallies.push(
                    worker
                        .join()
                        .map_err(|_| Error::Setup("a completion thread panicked".into()))?,
                );
            }
            let mut merged = Tally::new();
            for t in &tallies {
                merged.merge(t);
            }
            for _ in 0..lost {
                merged.record_lost();
            }
            Ok::<_, Error>(merged)
        })?;
        let mut merged = tallies;
        if let Some(dir) = &dir
            && !self.settings.keep_data
        {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        Ok(RunReport::close(
            schedule.rate(),
            executions,
            &mut merged,
            start,
        ))
    }
}
