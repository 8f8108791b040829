//! The worker pool: threads for tasks that block (a network call), so that a
//! shard never waits on the outside world. A result goes back to the shard
//! that owns the execution, through its inbox, as a message like any other.
//! What a job does is its task's business (see [`crate::tasks::Job`]).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::engine::Command;
use super::inbox::Sender;
use crate::execution::{ExecutionId, TaskRunId};
use crate::tasks::{Answer, Job, WorkerEnv};

/// What a `trigger.Toggle` task turns on and off: the server's triggers.
pub trait TriggerSwitch: Send + Sync + std::fmt::Debug {
    /// Enables or disables trigger `trigger` of flow `namespace.flow_id`;
    /// why not, if not (Kestra's messages).
    fn set_enabled(
        &self,
        namespace: &str,
        flow_id: &str,
        trigger: &str,
        enabled: bool,
    ) -> Result<(), String>;
}

/// What a job may do to the engine's executions (`PurgeExecutions`): read
/// the ended ones where their shards keep them, as the API's readers do,
/// and ask their shards to delete some.
#[derive(Debug)]
pub(crate) struct Holdings {
    inboxes: Vec<Sender<Command>>,
    finished: Vec<Arc<super::finished::Finished>>,
    wals: Vec<peregrine_wal::Wal>,
}

impl Holdings {
    pub(crate) fn new(
        inboxes: Vec<Sender<Command>>,
        finished: Vec<Arc<super::finished::Finished>>,
        wals: Vec<peregrine_wal::Wal>,
    ) -> Self {
        Self {
            inboxes,
            finished,
            wals,
        }
    }

    /// The final record of ended execution `id`, where its shard keeps it
    /// (in memory, else its WAL); `None` if it is not ended or gone.
    pub(crate) fn ended_record(
        &self,
        id: ExecutionId,
    ) -> Result<Option<crate::execution::Record>, String> {
        let shard = super::engine::shard_index(id, self.finished.len().max(1));
        if let Some(kept) = self.finished.get(shard).and_then(|f| f.get(id)) {
            return Ok(Some(kept.record));
        }
        let Some(wal) = self.wals.get(shard) else {
            return Ok(None);
        };
        crate::journal::read_ended(wal, id)
            .map(|found| found.map(|(record, _)| record))
            .map_err(|e| e.to_string())
    }

    /// The ended executions in memory that `keep` takes.
    pub(crate) fn ended(
        &self,
        keep: impl Fn(&crate::execution::Record) -> bool,
    ) -> Vec<ExecutionId> {
        let mut ids = Vec::new();
        for finished in &self.finished {
            finished.scan(|kept| {
                if keep(&kept.record) {
                    ids.push(kept.record.id());
                }
            });
        }
        ids
    }

    /// Deletes `ids` (ended ones), each shard its own, and waits until the
    /// deletions are durable: those deleted.
    pub(crate) fn delete(&self, ids: Vec<ExecutionId>) -> Result<Vec<ExecutionId>, String> {
        let shards = self.inboxes.len().max(1);
        let mut by_shard: Vec<Vec<ExecutionId>> = vec![Vec::new(); shards];
        for id in ids {
            by_shard[super::engine::shard_index(id, shards)].push(id);
        }
        let mut answers = Vec::new();
        for (inbox, ids) in self.inboxes.iter().zip(by_shard) {
            if ids.is_empty() {
                continue;
            }
            let (reply, answer) = flume::bounded(1);
            inbox.push_waiting(Command::Delete { ids, reply });
            answers.push(answer);
        }
        let mut deleted = Vec::new();
        for answer in answers {
            let done = answer
                .recv()
                .map_err(|_| "the engine stopped while deleting executions".to_owned())?;
            done.receipt.wait().map_err(|e| e.to_string())?;
            if !done.refused.is_empty() {
                return Err(format!(
                    "the journal is full: {} executions are not deleted",
                    done.refused.len()
                ));
            }
            deleted.extend(done.deleted);
        }
        Ok(deleted)
    }
}

/// A job for one attempt of one task run.
#[derive(Debug)]
pub(crate) struct WorkOrder {
    pub task_run: u32,
    /// The task run's id: an answer for the same place and attempt of an
    /// earlier run of the execution (before a restart) is told apart.
    pub run_id: TaskRunId,
    /// 1-based attempt number the result belongs to.
    pub attempt: u32,
    /// When the attempt's `timeout` ends, in epoch milliseconds: the shard
    /// fails the attempt then; the job is given until a little after, so
    /// that its thread is freed rather than held by a call nobody waits on.
    pub deadline_ms: Option<i64>,
    pub job: Box<dyn Job>,
}

/// What a job past its attempt's deadline is given on top, so that the
/// shard's timeout, not the job's own error, says why the attempt failed.
const PAST_DEADLINE: Duration = Duration::from_millis(250);

/// How long a job may run: until shortly after `deadline_ms`, if any.
pub(crate) fn allowance(deadline_ms: Option<i64>) -> Option<Duration> {
    let left = deadline_ms? - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)) + PAST_DEADLINE)
}

/// What a worker sends back.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkDone {
    pub(crate) id: ExecutionId,
    pub(crate) task_run: u32,
    pub(crate) run_id: TaskRunId,
    pub(crate) attempt: u32,
    /// What the job answered.
    pub(crate) answer: Answer,
}

struct Dispatch {
    id: ExecutionId,
    shard: usize,
    order: WorkOrder,
}

/// Threads that run jobs and answer the owning shard.
pub(crate) struct WorkerPool {
    tx: flume::Sender<Dispatch>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("threads", &self.threads.len())
            .field("queued", &self.tx.len())
            .finish()
    }
}

/// Which attempt of which task run a job is for.
type JobKey = (ExecutionId, u32, u32);

/// One worker, as those who may interrupt its job see it.
struct Slot {
    /// The job it runs now.
    running: Option<JobKey>,
    /// What its jobs run with (its own pooled connections: interrupting
    /// its job closes them, and touches no other worker's).
    env: WorkerEnv,
    /// Its job was interrupted: its env is spent, and replaced.
    interrupted: bool,
}

fn lock(slot: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    // A slot's fields are each valid alone: a panic elsewhere leaves
    // nothing half-written.
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A shard's handle to hand work to the pool.
#[derive(Clone)]
pub(crate) struct WorkerHandle {
    tx: flume::Sender<Dispatch>,
    slots: Arc<[Mutex<Slot>]>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle").finish_non_exhaustive()
    }
}

impl WorkerHandle {
    /// Queues `order`; hands it back when the pool's queue is full.
    pub fn try_dispatch(
        &self,
        id: ExecutionId,
        shard: usize,
        order: WorkOrder,
    ) -> Result<(), WorkOrder> {
        self.tx
            .try_send(Dispatch { id, shard, order })
            .map_err(|e| e.into_inner().order)
    }

    /// Interrupts the job of attempt `attempt` of task run `task_run` of
    /// `id` if a worker runs it now: what it blocks on (an HTTP call) fails
    /// at once, and its answer, which nobody waits for, is dropped by the
    /// shard. A job still queued runs when its turn comes.
    pub fn interrupt(&self, id: ExecutionId, task_run: u32, attempt: u32) {
        let key = Some((id, task_run, attempt));
        for slot in self.slots.iter() {
            let mut slot = lock(slot);
            if slot.running == key {
                slot.interrupted = true;
                slot.env.interrupt();
                return;
            }
        }
    }
}

impl WorkerPool {
    /// `threads` workers, a queue of `capacity` jobs, answering into `inboxes`.
    pub fn start(
        threads: usize,
        capacity: usize,
        inboxes: Vec<Sender<Command>>,
        env: WorkerEnv,
    ) -> std::io::Result<(Self, WorkerHandle)> {
        let (tx, rx) = flume::bounded::<Dispatch>(capacity.max(1));
        let inboxes = Arc::new(inboxes);
        let threads = threads.max(1);
        let slots: Arc<[Mutex<Slot>]> = (0..threads)
            .map(|_| {
                Mutex::new(Slot {
                    running: None,
                    env: env.renewed(),
                    interrupted: false,
                })
            })
            .collect();
        let mut handles = Vec::with_capacity(threads);
        for n in 0..threads {
            let rx = rx.clone();
            let inboxes = Arc::clone(&inboxes);
            let slots = Arc::clone(&slots);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("worker-{n}"))
                    .spawn(move || {
                        let slot = &slots[n];
                        while let Ok(Dispatch { id, shard, order }) = rx.recv() {
                            let env = {
                                let mut slot = lock(slot);
                                slot.running = Some((id, order.task_run, order.attempt));
                                slot.env.clone()
                            };
                            let within = allowance(order.deadline_ms);
                            let answer = order.job.run(&env, within);
                            {
                                let mut slot = lock(slot);
                                slot.running = None;
                                if slot.interrupted {
                                    slot.env = slot.env.renewed();
                                    slot.interrupted = false;
                                }
                            }
                            let done = WorkDone {
                                id,
                                task_run: order.task_run,
                                run_id: order.run_id,
                                attempt: order.attempt,
                                answer,
                            };
                            deliver(&inboxes[shard], done);
                        }
                    })?,
            );
        }
        let handle = WorkerHandle {
            tx: tx.clone(),
            slots,
        };
        Ok((
            Self {
                tx,
                threads: handles,
            },
            handle,
        ))
    }

    /// Stops taking jobs and joins the workers once the queue is drained.
    pub fn shutdown(self) {
        drop(self.tx);
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

/// Hands a result to its shard, waiting while the inbox is full: a result
/// is never dropped while the engine runs. Once the engine stops, the result
/// is lost and recovery runs the task again (at least once).
fn deliver(inbox: &Sender<Command>, done: WorkDone) {
    inbox.push_waiting(Command::WorkDone(Box::new(done)));
}

/// Runs a job on the calling thread (the one-shot driver has no pool).
pub(crate) fn run_now(
    job: Box<dyn Job>,
    deadline_ms: Option<i64>,
    variables: &super::ConfigVariables,
) -> Answer {
    job.run(
        &WorkerEnv::new(None, variables, None, 2),
        allowance(deadline_ms),
    )
}
