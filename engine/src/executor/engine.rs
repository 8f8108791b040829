//! The runtime: one thread per shard, executions hash-partitioned across
//! their inboxes, and a local driver that runs one execution on the caller's
//! thread.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::Utc;

use super::inbox::{PushError, Receiver, Sender, inbox};
use super::run::NewExecution;
use super::shard::{Effect, Message, Shard};
use crate::execution::{Execution, ExecutionId};

/// Sees every change of every execution, on the shard's thread. Keep it
/// cheap: serialize only what someone is waiting for.
pub trait Observer: Send + Sync + 'static {
    fn on_change(&self, execution: &Execution, terminal: bool);
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            inbox_capacity: NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN),
            batch: NonZeroUsize::new(256).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// A running executor.
pub struct Engine {
    inboxes: Vec<Sender<Message>>,
    threads: Vec<JoinHandle<()>>,
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
    pub fn start(config: EngineConfig, observer: Arc<dyn Observer>) -> std::io::Result<Self> {
        let mut inboxes = Vec::with_capacity(config.threads.get());
        let mut threads = Vec::with_capacity(config.threads.get());
        for n in 0..config.threads.get() {
            let (tx, rx) = inbox(config.inbox_capacity.get());
            let observer = Arc::clone(&observer);
            let batch = config.batch.get();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("shard-{n}"))
                    .spawn(move || shard_loop(rx, observer, batch))?,
            );
            inboxes.push(tx);
        }
        Ok(Self { inboxes, threads })
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
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

fn shard_loop(rx: Receiver<Message>, observer: Arc<dyn Observer>, batch: usize) {
    let mut shard = Shard::new(Utc::now());
    loop {
        let now = Utc::now();
        let mut handled = 0;
        while handled < batch {
            let Some(message) = rx.pop() else { break };
            shard.handle(message, now);
            handled += 1;
        }
        shard.fire_timers(Utc::now());
        shard.drain(|Effect::Changed { terminal, .. }, exec| observer.on_change(exec, terminal));
        if handled == batch {
            continue;
        }
        if rx.is_closed() {
            return;
        }
        let timeout = shard.next_deadline_ms().map(|deadline| {
            let wait = deadline - Utc::now().timestamp_millis();
            Duration::from_millis(wait.clamp(0, 60_000) as u64)
        });
        rx.park(timeout);
    }
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
            if terminal {
                last = Some(exec.clone());
            }
        });
        if let Some(exec) = last.take() {
            return exec;
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
