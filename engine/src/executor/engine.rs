//! The runtime: one thread per shard, executions hash-partitioned across
//! their inboxes, and a local driver that runs one execution on the caller's
//! thread.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::Utc;

use super::inbox::{PushError, Receiver, Sender, inbox};
use super::plan::FlowLookup;
use super::run::NewExecution;
use super::shard::{Effect, Message, Shard};
use super::worker::{self, WorkDone, WorkOrder, WorkerHandle, WorkerPool};
use crate::execution::{Execution, ExecutionId};
use crate::journal::{self, Entry, Receipt, WalJournal};

/// Sees every change of every execution, on the shard's thread. Keep it
/// cheap: serialize only what someone is waiting for.
pub trait Observer: Send + Sync + 'static {
    fn on_change(&self, execution: &Execution, terminal: bool);

    /// Like `on_change`, with the receipt of the journal records behind the
    /// change: wait on it before telling a client (commit before
    /// externalize). The default ignores it.
    fn on_change_journaled(&self, execution: &Execution, terminal: bool, receipt: &Receipt) {
        let _ = receipt;
        self.on_change(execution, terminal);
    }
}

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
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            inbox_capacity: NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN),
            batch: NonZeroUsize::new(256).unwrap_or(NonZeroUsize::MIN),
            workers: NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN),
            work_queue: NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// A running executor.
pub struct Engine {
    inboxes: Vec<Sender<Message>>,
    threads: Vec<JoinHandle<()>>,
    workers: Option<WorkerPool>,
    /// The shards' WALs (empty when nothing is journaled), for their stats.
    wals: Vec<peregrine_wal::Wal>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("shards", &self.inboxes.len())
            .finish()
    }
}

/// Refused: the execution comes back to the caller.
pub type SubmitError = PushError<Box<NewExecution>>;

impl Engine {
    /// An engine that keeps nothing on disk.
    pub fn start(config: EngineConfig, observer: Arc<dyn Observer>) -> std::io::Result<Self> {
        let now = Utc::now();
        let shards = (0..config.threads.get()).map(|_| Shard::new(now)).collect();
        Self::spawn(&config, observer, shards)
    }

    /// An engine whose shards journal every execution in a WAL under `dir`
    /// (`dir/shard-N`), after recovering what the WALs hold: executions in
    /// flight resume, finished ones come back in [`Recovery::finished`].
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
        let mut recovery = Recovery::default();
        let mut prepared = Vec::with_capacity(shards);
        let mut wals = Vec::with_capacity(shards);
        let now = Utc::now();
        for n in 0..shards {
            let path = dir.join(format!("shard-{n}"));
            let (wal, recovered) = peregrine_wal::Wal::open(&path, wal.clone())?;
            wals.push(wal.clone());
            recovery.reports.push(recovered.report().clone());
            let mut shard = Shard::with_journal(now, Box::new(WalJournal::new(wal)));
            for (key, records) in recovered.iter() {
                let id = ExecutionId::from_u128(key.id());
                let mut entries = Vec::new();
                let mut damaged = None;
                for record in records {
                    match journal::decode(record.payload()) {
                        Ok(entry) => entries.push(entry),
                        Err(e) => damaged = Some(e),
                    }
                }
                if let Some(e) = damaged {
                    recovery
                        .failed
                        .push((id, format!("unreadable journal record: {e}")));
                    continue;
                }
                if let [Entry::Ended { execution, .. }] = entries.as_slice() {
                    match serde_json::from_str(execution) {
                        Ok(json) => recovery.finished.push(json),
                        Err(e) => recovery
                            .failed
                            .push((id, format!("unreadable final state: {e}"))),
                    }
                    continue;
                }
                match shard.restore(id, entries, resolve, now) {
                    Ok(()) => {
                        recovery.resumed += 1;
                        recovery.resumed_ids.push(id);
                    }
                    Err(e) => recovery.failed.push((id, e)),
                }
            }
            prepared.push(shard);
        }
        let config = EngineConfig {
            threads: NonZeroUsize::new(shards).unwrap_or(NonZeroUsize::MIN),
            ..config
        };
        let mut engine = Self::spawn(&config, observer, prepared)?;
        engine.wals = wals;
        Ok((engine, recovery))
    }

    fn spawn(
        config: &EngineConfig,
        observer: Arc<dyn Observer>,
        shards: Vec<Shard>,
    ) -> std::io::Result<Self> {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards.len())
            .map(|_| inbox(config.inbox_capacity.get()))
            .unzip();
        let (pool, handle) = WorkerPool::start(
            config.workers.get(),
            config.work_queue.get(),
            senders.clone(),
        )?;
        let mut threads = Vec::with_capacity(shards.len());
        for (n, (shard, rx)) in shards.into_iter().zip(receivers).enumerate() {
            let observer = Arc::clone(&observer);
            let runtime = ShardRuntime {
                index: n,
                batch: config.batch.get(),
                workers: handle.clone(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("shard-{n}"))
                    .spawn(move || shard_loop(shard, rx, observer, runtime))?,
            );
        }
        Ok(Self {
            inboxes: senders,
            threads,
            workers: Some(pool),
            wals: Vec::new(),
        })
    }

    pub fn shards(&self) -> usize {
        self.inboxes.len()
    }

    /// The shard that owns `id`.
    pub fn shard_of(&self, id: ExecutionId) -> usize {
        let raw = id.as_u128();
        let mixed = (raw as u64) ^ ((raw >> 64) as u64);
        (mixed % self.inboxes.len() as u64) as usize
    }

    /// Queues a new execution on its shard.
    pub fn submit(&self, new: NewExecution) -> Result<ExecutionId, SubmitError> {
        let id = new.id;
        self.inboxes[self.shard_of(id)]
            .push(Message::Start(Box::new(new)))
            .map(|()| id)
            .map_err(|e| match e {
                PushError::Full(Message::Start(n)) => PushError::Full(n),
                PushError::Closed(Message::Start(n)) => PushError::Closed(n),
                PushError::Full(_) | PushError::Closed(_) => {
                    unreachable!("the message pushed was a Start")
                }
            })
    }

    /// Asks the owning shard to kill `id`.
    pub fn kill(&self, id: ExecutionId) -> Result<(), PushError<ExecutionId>> {
        self.inboxes[self.shard_of(id)]
            .push(Message::Kill(id))
            .map_err(|e| match e {
                PushError::Full(_) => PushError::Full(id),
                PushError::Closed(_) => PushError::Closed(id),
            })
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
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a shard thread needs besides its shard and inbox.
struct ShardRuntime {
    index: usize,
    batch: usize,
    workers: WorkerHandle,
}

fn shard_loop(
    mut shard: Shard,
    rx: Receiver<Message>,
    observer: Arc<dyn Observer>,
    runtime: ShardRuntime,
) {
    let ShardRuntime {
        index,
        batch,
        workers,
    } = runtime;
    // Work the pool could not take yet: retried every turn, never dropped.
    let mut held: std::collections::VecDeque<(ExecutionId, WorkOrder)> = Default::default();
    loop {
        let mut handled = 0;
        while handled < batch {
            let Some(message) = rx.pop() else { break };
            // Each message gets its own instant: the dates an execution
            // shows (created, ended) are when its step ran, not when the
            // batch began. One clock read per message; its cost was not
            // measured on its own.
            shard.handle(message, Utc::now());
            handled += 1;
        }
        shard.fire_timers(Utc::now());
        shard.drain(
            |Effect::Changed {
                 terminal, receipt, ..
             },
             exec| { observer.on_change_journaled(exec, *terminal, receipt) },
        );
        shard.take_work(|id, order| held.push_back((id, order)));
        while let Some((id, order)) = held.pop_front() {
            if let Err(order) = workers.try_dispatch(id, index, order) {
                held.push_front((id, order));
                break;
            }
        }
        if handled == batch {
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
        rx.park(timeout);
    }
}

/// How soon a shard retries handing work to a full worker queue.
const HELD_WORK_RETRY: Duration = Duration::from_millis(1);

/// What recovery found when a durable engine started.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Executions that were in flight and resumed.
    pub resumed: usize,
    /// Their ids.
    pub resumed_ids: Vec<ExecutionId>,
    /// The final JSON of executions that had ended (within the retention).
    pub finished: Vec<serde_json::Value>,
    /// Executions that could not be rebuilt, and why.
    pub failed: Vec<(ExecutionId, String)>,
    /// What each shard's WAL recovery read and repaired.
    pub reports: Vec<peregrine_wal::RecoveryReport>,
}

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
pub fn run_to_end_observed(new: NewExecution, mut on_change: impl FnMut(&Execution)) -> Execution {
    let id = new.id;
    let mut shard = Shard::new(Utc::now());
    shard.handle(Message::Start(Box::new(new)), Utc::now());
    let mut last: Option<Execution> = None;
    loop {
        shard.drain(|Effect::Changed { terminal, .. }, exec| {
            on_change(exec);
            if *terminal {
                last = Some(exec.clone());
            }
        });
        if let Some(exec) = last.take() {
            return exec;
        }
        let mut work = Vec::new();
        shard.take_work(|id, order| work.push((id, order)));
        if !work.is_empty() {
            for (id, order) in work {
                let done = WorkDone {
                    id,
                    task_run: order.task_run,
                    attempt: order.attempt,
                    result: worker::run_now(order.job),
                };
                shard.handle(Message::WorkDone(Box::new(done)), Utc::now());
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
        shard.fire_timers(Utc::now());
    }
}
