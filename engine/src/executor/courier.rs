//! What executions tell each other across shards: a parent starts its
//! subflow's child, a child answers its parent, a killed parent kills its
//! children.
//!
//! A shard never talks to another directly. A step that decides to tell
//! another execution something emits [`super::shard::Effect::Send`] with the
//! receipt of the journal records behind the decision; the courier, one
//! thread per engine, waits until that receipt is durable, then pushes the
//! message onto the inbox of the shard the other execution's id hashes to
//! (waiting while it is full, so nothing is dropped and no shard blocks on
//! another). Commit before externalize: a message is only sent for a
//! decision a restart would make again.
//!
//! Each message is idempotent, so that a restart may send it again:
//! a child's id follows from its parent, task run and attempt, and a start
//! of an id that exists only asks it to answer again; an answer is
//! journaled by the parent only while its task run waits for it; a kill of
//! an ended execution does nothing. After a restart, a parent sends again
//! the start of every child it still waits for, and a child that had ended
//! answers from its final record.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Map, Value};

use super::engine::{Admission, Command, shard_index};
use super::gate::{Gate, Note};
use super::inbox::Sender;
use super::plan::FlowRevision;
use super::run::NewExecution;
use super::search::Tally;
use super::shard::ResumeOutcome;
use crate::execution::{ExecutionId, Id, Record};
use crate::journal::{self, Receipt};
use crate::tasks::ChildAnswer;

/// Subflows nested deeper than this are refused: a flow that calls
/// itself, directly or through others, ends instead of filling the node.
pub const MAX_SUBFLOW_DEPTH: u32 = 32;

/// Where a subflow's child finds the flows it may call.
pub trait Flows: Send + Sync + std::fmt::Debug {
    /// Revision `revision` of flow `namespace.flow_id` (its latest when
    /// `None`), or why it cannot be executed (Kestra's messages: not found,
    /// disabled).
    fn find(
        &self,
        namespace: &str,
        flow_id: &str,
        revision: Option<u32>,
    ) -> Result<Arc<FlowRevision>, String>;
}

/// A child's link to the task run that started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParentLink {
    pub execution: ExecutionId,
    pub task_run: u32,
    pub attempt: u32,
    /// The task run waits for the child's end; else only for its creation.
    pub wait: bool,
    /// How deep the child is: 1 for a parent's own child.
    pub depth: u32,
    /// How many times the parent was restarted when it asked for the child
    /// (its task-run indices start again at each restart): part of the
    /// child's id. Known to the parent only; a child's copy holds 0.
    pub generation: u32,
    /// 0: the attempt's one child (a Subflow's); n: the attempt's n-th
    /// child (a ForEachItem's batch n). Part of the child's id.
    pub batch: u32,
}

/// A child execution a task run asks for, as its parent rendered it.
#[derive(Debug, Clone)]
pub(crate) struct SpawnOrder {
    pub link: ParentLink,
    pub namespace: String,
    pub flow_id: String,
    pub revision: Option<u32>,
    /// As rendered; typed against the child's flow when it starts.
    pub inputs: Map<String, Value>,
    /// The child's labels: the parent's (all, or its system ones) and the
    /// task's.
    pub labels: Vec<(String, String)>,
    /// Kestra's `{id, type, variables}` of the child.
    pub trigger: Value,
    /// When the child starts, if not at once (`scheduleDate`).
    pub schedule_date: Option<chrono::DateTime<chrono::Utc>>,
    /// Sent again after a restart: the child may have ended and left the
    /// memory of its shard.
    pub resend: bool,
    /// The child's lineage, when it is a retry of its parent (a new
    /// execution of the same flow).
    pub lineage: Option<crate::execution::Lineage>,
}

impl ParentLink {
    /// The child this link names (see [`child_id`]).
    pub(crate) fn child(&self) -> ExecutionId {
        let id = child_id(self.execution, self.task_run, self.attempt, self.generation);
        if self.batch == 0 {
            return id;
        }
        let mut bytes = [0u8; 26];
        bytes[..6].copy_from_slice(b"batch:");
        bytes[6..22].copy_from_slice(&id.as_u128().to_le_bytes());
        bytes[22..].copy_from_slice(&self.batch.to_le_bytes());
        Id::derive(&bytes)
    }
}

/// What a child says to its parent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChildNews {
    pub link: ParentLink,
    pub answer: ChildAnswer,
}

impl ChildNews {
    /// A child's end, read from its final record.
    pub(crate) fn ended(link: ParentLink, record: &Record) -> Self {
        Self {
            link,
            answer: ChildAnswer::Ended {
                state: record.state(),
                outputs: record.outputs(),
            },
        }
    }
}

/// One message for another execution.
#[derive(Debug)]
pub(crate) enum Parcel {
    Spawn(Box<SpawnOrder>),
    Tell(Box<ChildNews>),
    Kill(ExecutionId),
    /// For the flows' concurrency gate (see [`super::gate`]).
    Gate(Box<Note>),
    /// A question of a task run about other executions; the answer goes
    /// back to it.
    Ask(Box<AskOrder>),
}

/// What a task run asks about other executions; the answer goes to `link`
/// as a [`ChildNews`].
#[derive(Debug, Clone)]
pub(crate) struct AskOrder {
    pub link: ParentLink,
    pub ask: Ask,
}

#[derive(Debug, Clone)]
pub(crate) enum Ask {
    /// `execution.Resume`: resume this paused execution, if it is of the
    /// flow named, with these inputs.
    Resume {
        target: ExecutionId,
        namespace: String,
        flow_id: String,
        inputs: Map<String, Value>,
    },
    /// `execution.Count`: how many executions there are, as the tally says
    /// (answered as the rows of [`Tally::rows`]).
    Count(Box<Tally>),
}

/// Why a question was not answered: the engine stops (a restart asks again).
const STOPPING: &str = "the engine is stopping";

/// The id of the child that attempt `attempt` of task run `task_run` of
/// `parent` starts: the same at every replay, so a start sent again finds
/// the child it started.
pub(crate) fn child_id(
    parent: ExecutionId,
    task_run: u32,
    attempt: u32,
    generation: u32,
) -> ExecutionId {
    let mut bytes = [0u8; 36];
    bytes[..8].copy_from_slice(b"subflow:");
    bytes[8..24].copy_from_slice(&parent.as_u128().to_le_bytes());
    bytes[24..28].copy_from_slice(&task_run.to_le_bytes());
    bytes[28..32].copy_from_slice(&attempt.to_le_bytes());
    bytes[32..].copy_from_slice(&generation.to_le_bytes());
    // A parent never restarted derives what it always did.
    let len = if generation == 0 { 32 } else { 36 };
    Id::derive(&bytes[..len])
}

/// The courier's end of the parcels the shards send.
pub(crate) struct Courier {
    pub inboxes: Vec<Sender<Command>>,
    pub flows: Option<Arc<dyn Flows>>,
    /// The shards' WALs (empty when nothing is journaled): where a child
    /// that left memory is found.
    pub wals: Vec<peregrine_wal::Wal>,
    pub admission: Arc<Admission>,
}

impl Courier {
    /// Delivers parcels until every shard has let go of its sender.
    pub(crate) fn run(self, parcels: flume::Receiver<(Receipt, Parcel)>) {
        let mut gate = Gate::new(self.inboxes.len());
        let mut verdicts = Vec::new();
        for (receipt, parcel) in parcels.iter() {
            if let Err(e) = receipt.wait() {
                // The decision is not in the journal: a restart will not
                // make it, so nobody may hear of it.
                tracing::error!("a message to another execution is dropped: {e}");
                continue;
            }
            match parcel {
                Parcel::Spawn(order) => self.spawn(*order),
                Parcel::Tell(news) => self.tell(*news),
                Parcel::Kill(id) => {
                    let (reply, _) = flume::bounded(1);
                    // A child's own children die with it.
                    let cascade = true;
                    self.push(id, Command::Kill { id, cascade, reply });
                }
                Parcel::Ask(order) => {
                    let AskOrder { link, ask } = *order;
                    let answer = match ask {
                        Ask::Resume {
                            target,
                            namespace,
                            flow_id,
                            inputs,
                        } => self.resume(target, &namespace, &flow_id, inputs),
                        Ask::Count(tally) => self.count(*tally),
                    };
                    self.tell(ChildNews { link, answer });
                }
                Parcel::Gate(note) => {
                    gate.note(*note, &mut verdicts);
                    for (id, verdict) in verdicts.drain(..) {
                        self.push(id, Command::Admitted { id, verdict });
                    }
                }
            }
        }
    }

    fn push(&self, id: ExecutionId, command: Command) {
        // Lost only once the engine stops: a restart sends what it still
        // needs again.
        self.inboxes[shard_index(id, self.inboxes.len())].push_waiting(command);
    }

    fn tell(&self, news: ChildNews) {
        self.push(news.link.execution, Command::Child(Box::new(news)));
    }

    fn refuse(&self, order: &SpawnOrder, why: String) {
        self.tell(ChildNews {
            link: order.link,
            answer: ChildAnswer::Refused(why),
        });
    }

    fn spawn(&self, order: SpawnOrder) {
        if order.link.depth > MAX_SUBFLOW_DEPTH {
            let why = format!(
                "subflows nest {} deep, deeper than the {MAX_SUBFLOW_DEPTH} allowed: does a \
                 flow call itself?",
                order.link.depth
            );
            return self.refuse(&order, why);
        }
        if order.resend
            && let Some(record) = self.on_disk(order.link.child())
        {
            return self.tell(ChildNews::ended(order.link, &record));
        }
        let Some(flows) = &self.flows else {
            let why = "this engine has no flows to start a subflow from".to_owned();
            return self.refuse(&order, why);
        };
        let flow = match flows.find(&order.namespace, &order.flow_id, order.revision) {
            Ok(flow) => flow,
            Err(why) => return self.refuse(&order, why),
        };
        // A retry's inputs are its original's, typed when it was created.
        let inputs = if order.lineage.is_some() {
            order.inputs.clone()
        } else {
            match crate::flow::validate_inputs(flow.flow(), &order.inputs) {
                Ok(inputs) => inputs,
                Err(e) => return self.refuse(&order, e.to_string()),
            }
        };
        let new = NewExecution {
            id: order.link.child(),
            flow,
            inputs,
            labels: order.labels,
            trigger: (!order.trigger.is_null()).then_some(order.trigger),
            parent: Some(order.link),
            schedule_date: order.schedule_date,
            replays: None,
            lineage: order.lineage,
        };
        // Counted as it runs, never refused: its parent was admitted, and
        // a parent that can never start its child would wait forever.
        self.admission.running.fetch_add(1, Ordering::AcqRel);
        let (reply, _) = flume::bounded(1);
        self.push(
            order.link.child(),
            Command::Start {
                new: Box::new(new),
                ack: super::engine::Ack::Receipt,
                reply,
            },
        );
    }

    /// Resumes `target` if it is paused and of flow `namespace.flow_id`:
    /// the answer for the task run that asked (the target's shard answers
    /// first: the courier waits for it).
    fn resume(
        &self,
        target: ExecutionId,
        namespace: &str,
        flow_id: &str,
        inputs: Map<String, Value>,
    ) -> ChildAnswer {
        let not_found = || format!("No execution found for execution id {target}");
        let (tx, rx) = flume::bounded(1);
        self.push(
            target,
            Command::Read {
                id: target,
                reply: tx,
            },
        );
        let found = rx
            .recv()
            .ok()
            .flatten()
            .map(|s| s.record)
            .or_else(|| self.on_disk(target));
        match found {
            None => ChildAnswer::Refused(not_found()),
            Some(r) if r.namespace() != namespace || r.flow_id() != flow_id => {
                ChildAnswer::Refused(not_found())
            }
            Some(_) => {
                let (tx, rx) = flume::bounded(1);
                let inputs = Box::new(inputs);
                self.push(
                    target,
                    Command::Resume {
                        id: target,
                        inputs,
                        reply: tx,
                    },
                );
                match rx.recv() {
                    Ok(ResumeOutcome::Resumed(receipt)) => match receipt.wait() {
                        Ok(()) => ChildAnswer::Ended {
                            state: crate::execution::State::Running,
                            outputs: None,
                        },
                        Err(e) => ChildAnswer::Refused(e.to_string()),
                    },
                    Ok(ResumeOutcome::NotPaused(_) | ResumeOutcome::NotFound) => {
                        ChildAnswer::Refused(format!(
                            "Execution '{target}' is not paused, can't resume it"
                        ))
                    }
                    Ok(ResumeOutcome::Invalid(why)) => ChildAnswer::Refused(why),
                    Err(_) => ChildAnswer::Refused(STOPPING.to_owned()),
                }
            }
        }
    }

    /// Counts executions as `tally` says, in every shard: each counts its
    /// running and its finished executions in one step, so that none is
    /// counted twice or missed as it ends. The courier waits for them all.
    fn count(&self, tally: Tally) -> ChildAnswer {
        let tally = Arc::new(tally);
        let asked: Vec<_> = self
            .inboxes
            .iter()
            .map(|inbox| {
                let (reply, answer) = flume::bounded(1);
                let tally = Arc::clone(&tally);
                inbox.push_waiting(Command::Count { tally, reply });
                answer
            })
            .collect();
        let mut counts = tally.zero();
        for answer in asked {
            match answer.recv() {
                Ok(counted) => counts.add(counted),
                Err(_) => return ChildAnswer::Refused(STOPPING.to_owned()),
            }
        }
        ChildAnswer::Ended {
            state: crate::execution::State::Success,
            outputs: Some(tally.rows(&counts)),
        }
    }

    /// Execution `id`'s final record, if its shard's WAL has it.
    fn on_disk(&self, id: ExecutionId) -> Option<Record> {
        if self.wals.is_empty() {
            return None;
        }
        let wal = &self.wals[shard_index(id, self.wals.len())];
        match journal::read_ended(wal, id) {
            Ok(found) => found.map(|(record, _)| record),
            Err(e) => {
                tracing::warn!(execution = %id, "reading a subflow's final record: {e}");
                None
            }
        }
    }
}
