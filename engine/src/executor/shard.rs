//! A shard: the executions it owns, its timers, and the state machine that
//! turns messages into changes.
//!
//! `step(message, now)` is the whole interface: a message and the instant
//! go in, effects come out as data ([`Effect`]): replies to the request that
//! asked, work for the worker pool, changes to publish. Nothing inside a
//! step reads a clock, touches a file or calls back into its caller: the
//! runtime ([`super::engine`]) feeds the messages and the clock and carries
//! the effects out, and the journal is a trait. Every value an execution
//! depends on comes from its journal or from the instant of a step, so
//! replaying the journal rebuilds it byte for byte.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use super::config_vars::ConfigVariables;
use super::courier::{ChildNews, Parcel, ParentLink};
use super::finished::Finished;
use super::gate::{Note, Verdict};
use super::guide::Guide;
use super::limits::Limits;
use super::plan::FlowLookup;
use super::plan::FlowRevision;
use super::run::{Due, GateAsk, NewExecution, Replays, Requests, Run, Unresumable};
use super::search::{Counts, Filter, Listed, Newest, Tally};
use super::timer::TimerWheel;
use super::worker::{WorkDone, WorkOrder};
use crate::execution::labels::{self, LabelError};
use crate::execution::{Execution, ExecutionId, Format, Record, State};
use crate::journal::{Entry, JobLogLine, JobMetricRecord, Journal, KvRead, NoJournal, Receipt};
use crate::tasks::{ChildAnswer, JobLine, LogKeeper};

/// Names a request, so that its reply finds the caller that asked.
pub(crate) type RequestId = u64;

/// What a shard is told.
#[derive(Debug)]
pub(crate) enum Message {
    /// Start an execution (or, if it exists, say so): `snapshot` asks for
    /// the execution as the step left it.
    Start {
        new: Box<NewExecution>,
        request: RequestId,
        snapshot: bool,
    },
    /// Kill an execution, and with `cascade` the children it waits for.
    Kill {
        id: ExecutionId,
        cascade: bool,
        request: RequestId,
    },
    /// A worker's answer.
    WorkDone(Box<WorkDone>),
    /// The execution as it stands, if this shard has it.
    Read { id: ExecutionId, request: RequestId },
    /// The running executions that match, newest first, at most `limit`.
    Search {
        filter: Arc<Filter>,
        limit: usize,
        request: RequestId,
    },
    /// Delete these ended executions (Kestra's `DELETE /executions`,
    /// `PurgeExecutions`); one still running is left as it is.
    Delete {
        ids: Vec<ExecutionId>,
        request: RequestId,
    },
    /// Count the executions this shard holds, running and finished, as the
    /// tally says.
    Count {
        tally: Arc<Tally>,
        request: RequestId,
    },
    /// Set `labels` on a finished execution (merged by key, see
    /// [`labels::merge`]); `stored` is where the caller found it.
    Relabel {
        id: ExecutionId,
        labels: Vec<(String, String)>,
        stored: Stored,
        request: RequestId,
    },
    /// Resume a paused execution with these inputs (its paused task's
    /// `onResume`).
    Resume {
        id: ExecutionId,
        inputs: Box<Map<String, Value>>,
        request: RequestId,
    },
    /// Restart ended execution `id` (its failed task runs) on `rev`, the
    /// flow revision it ran (`None`: the caller found no end to restart);
    /// `stored` is where the caller found it.
    Restart {
        id: ExecutionId,
        rev: Option<Arc<FlowRevision>>,
        stored: Stored,
        request: RequestId,
    },
    /// A subflow's child answered its parent (an execution of this shard).
    Child(Box<ChildNews>),
    /// Its flow's concurrency gate answered execution `id`'s ask to run.
    Admitted { id: ExecutionId, verdict: Verdict },
    /// Time passed: fire the timers due and drop what left the retention
    /// window.
    Tick,
}

/// The answer to a resume.
#[derive(Debug, Clone)]
pub enum ResumeOutcome {
    /// Resumed; durable once the receipt is.
    Resumed(Receipt),
    /// Nothing of it is paused: it is in this state.
    NotPaused(State),
    /// The inputs do not fit the paused task's `onResume`.
    Invalid(String),
    /// No such execution on this node.
    NotFound,
}

/// What a deletion did: the executions deleted, those still running and
/// those the journal refused (a full disk), both left as they were.
/// Durable once `receipt` is.
#[derive(Debug)]
pub struct Deleted {
    pub deleted: Vec<ExecutionId>,
    pub running: Vec<ExecutionId>,
    pub refused: Vec<ExecutionId>,
    pub receipt: Receipt,
}

/// The answer to a restart.
#[derive(Debug, Clone)]
pub enum RestartOutcome {
    /// Restarted: the execution as it now is, durable once the receipt is.
    Restarted(Snapshot),
    /// It has not ended: it is in this state.
    NotEnded(State),
    /// It cannot be restarted, for this reason (nothing failed in it, or
    /// the journal refused the restart).
    Refused(String),
    /// No such execution on this node.
    NotFound,
    /// It changed, or left memory, while the caller looked: ask again.
    Stale,
}

/// Where a caller found a finished execution before asking its shard to
/// change it: the shard reads no disk, so a caller brings what is only
/// there.
#[derive(Debug)]
pub(crate) enum Stored {
    /// Among the finished executions in memory.
    InMemory,
    /// Only on disk: its final record as read, after `rewrites` (see
    /// [`Finished::rewrites`]) had been counted.
    OnDisk { record: Record, rewrites: u64 },
    /// Nowhere (it may be running).
    Nowhere,
}

/// Why a finished execution's record is not at hand.
enum Unended {
    Running(State),
    Stale,
    NotFound,
}

/// The answer to setting labels.
#[derive(Debug, Clone)]
pub enum Relabelled {
    /// Set: the execution as it now is, durable once the receipt is (a
    /// refused receipt means nothing changed).
    Done(Snapshot),
    /// It has not ended, in this state: only a finished execution's
    /// labels are set.
    Running(State),
    /// The labels were not set, for this reason.
    Refused(LabelError),
    /// No such execution on this node.
    NotFound,
    /// It changed, or left memory, while the caller looked: ask again.
    Stale,
}

/// The answer to a start.
#[derive(Debug, Clone)]
pub struct Started {
    pub id: ExecutionId,
    /// The execution existed already (a redelivered or repeated start): it
    /// was not started again.
    pub existed: bool,
    /// Wait on it before acknowledging the execution: it covers its
    /// creation and whatever the step did.
    pub receipt: Receipt,
    /// The execution as the step left it, when asked for.
    pub snapshot: Option<Record>,
}

/// The answer to a kill.
#[derive(Debug, Clone)]
pub enum KillOutcome {
    /// Killed; durable once the receipt is.
    Killed(Receipt),
    /// It had already ended, in this state.
    Ended(State),
    /// No such execution on this node.
    NotFound,
}

/// An execution as it stood, with the receipt of the records behind it:
/// wait on it before showing the execution to anyone.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub record: Record,
    pub receipt: Receipt,
}

/// A shard's answer to a request.
#[derive(Debug)]
pub(crate) enum Reply {
    Started(Started),
    Kill(KillOutcome),
    Read(Option<Snapshot>),
    Search(Newest<Snapshot>),
    Count(Counts),
    Delete(Deleted),
    Relabel(Relabelled),
    Resume(ResumeOutcome),
    Restart(RestartOutcome),
}

/// What a shard asks the outside world to do, as data.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Answer request `request`.
    Reply { request: RequestId, reply: Reply },
    /// Blocking work for the worker pool.
    Work { id: ExecutionId, order: WorkOrder },
    /// Interrupt the work of attempt `attempt` of task run `task_run`, if
    /// it is queued or running: nobody waits for its answer any more.
    Interrupt {
        id: ExecutionId,
        task_run: u32,
        attempt: u32,
    },
    /// The execution changed: publish it once `receipt` is durable. `ended`
    /// holds its final record when this change ended it (it then leaves
    /// the shard once the effect is carried out).
    Changed {
        id: ExecutionId,
        receipt: Receipt,
        ended: Option<Record>,
    },
    /// Tell another execution (on any shard) something, once `receipt` is
    /// durable (see [`super::courier`]).
    Send { receipt: Receipt, parcel: Parcel },
}

/// Why a journal does not rebuild an execution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("its journal does not start with its creation")]
    NoCreation,
    #[error("flow {namespace}.{flow_id} revision {revision} is gone")]
    FlowGone {
        namespace: String,
        flow_id: String,
        revision: u32,
    },
    #[error("its journaled {0} are not a JSON object")]
    BadInputs(&'static str),
    #[error("its journal has a record out of place")]
    OutOfPlace,
    #[error("its restart cannot be replayed: {0}")]
    Restart(String),
}

/// A running execution and the receipt of its latest journal record.
#[derive(Debug)]
struct Live {
    run: Run,
    receipt: Receipt,
    /// Its final record, once it ended in this step batch.
    ended: Option<Record>,
}

/// One shard's executions and timers.
#[derive(Debug)]
pub(crate) struct Shard {
    live: FxHashMap<ExecutionId, Live>,
    timers: TimerWheel<(ExecutionId, Due)>,
    journal: Box<dyn Journal>,
    finished: Arc<Finished>,
    effects: Vec<Effect>,
    fired: Vec<(ExecutionId, Due)>,
    /// When a tick next drops finished executions past their retention
    /// and journals again the ends the journal refused.
    next_eviction: DateTime<Utc>,
    /// What each execution may spend.
    limits: Limits,
    /// What templates read as `envs` and `globals`.
    variables: ConfigVariables,
    /// Ends the journal refused (a full disk), retried once a second.
    unjournaled: Vec<Record>,
    /// Messages for other executions, handed out after the other effects.
    parcels: Vec<(Receipt, Parcel)>,
}

/// The instant a step runs at: microseconds, the precision the journal
/// keeps, so that a replay sees exactly the instants the first run saw.
fn step_instant(now: DateTime<Utc>) -> DateTime<Utc> {
    instant(now.timestamp_micros())
}

fn instant(at_us: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(at_us).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

impl Shard {
    /// A shard that journals nothing.
    pub fn new(now: DateTime<Utc>, finished: Arc<Finished>) -> Self {
        Self::with_journal(now, Box::new(NoJournal), finished)
    }

    pub fn with_journal(
        now: DateTime<Utc>,
        journal: Box<dyn Journal>,
        finished: Arc<Finished>,
    ) -> Self {
        Self {
            live: FxHashMap::default(),
            timers: TimerWheel::new(now.timestamp_millis()),
            journal,
            finished,
            effects: Vec::new(),
            fired: Vec::new(),
            next_eviction: now,
            limits: Limits::default(),
            variables: ConfigVariables::default(),
            unjournaled: Vec::new(),
            parcels: Vec::new(),
        }
    }

    /// This shard, running its executions under `limits`.
    pub fn limited(self, limits: Limits) -> Self {
        Self { limits, ..self }
    }

    /// This shard, rendering `envs` and `globals` from `variables`.
    pub fn with_variables(self, variables: ConfigVariables) -> Self {
        Self { variables, ..self }
    }

    /// The finished executions this shard keeps.
    pub fn finished(&self) -> &Arc<Finished> {
        &self.finished
    }

    /// Executions running here.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn get(&self, id: ExecutionId) -> Option<&Execution> {
        self.live.get(&id).map(|l| l.run.execution())
    }

    /// A pass over the inbox begins (`true`) or ends: what the steps in
    /// between journal shares one sync, made when it ends (see
    /// `Journal::pass`).
    pub fn pass(&mut self, begins: bool) {
        self.journal.pass(begins);
    }

    /// Handles one message at instant `now`.
    pub fn step(&mut self, message: Message, now: DateTime<Utc>) {
        let now = step_instant(now);
        let concerns = match &message {
            Message::Start { new, .. } => Some(new.id),
            Message::Kill { id, .. } | Message::Resume { id, .. } | Message::Restart { id, .. } => {
                Some(*id)
            }
            Message::WorkDone(done) => Some(done.id),
            Message::Child(news) => Some(news.link.execution),
            Message::Admitted { id, .. } => Some(*id),
            _ => None,
        };
        if concerns.is_some() {
            self.journal.stepping(concerns);
        }
        self.handle(message, now);
        if concerns.is_some() {
            self.journal.stepping(None);
        }
    }

    fn handle(&mut self, message: Message, now: DateTime<Utc>) {
        match message {
            Message::Start {
                new,
                request,
                snapshot,
            } => self.start(*new, request, snapshot, now),
            Message::Kill {
                id,
                cascade,
                request,
            } => {
                let outcome = self.kill(id, cascade, now);
                self.reply(request, Reply::Kill(outcome));
            }
            Message::WorkDone(done) => self.work_done(*done, now),
            Message::Child(news) => self.child_answered(*news, now),
            Message::Admitted { id, verdict } => self.admitted(id, verdict, now),
            Message::Read { id, request } => {
                let found = self.snapshot(id);
                self.reply(request, Reply::Read(found));
            }
            Message::Search {
                filter,
                limit,
                request,
            } => {
                let mut newest = Newest::new(limit);
                // An execution that ended in this batch is searched among
                // the finished ones already.
                for (id, live) in self.live.iter().filter(|(_, l)| l.ended.is_none()) {
                    let exec = live.run.execution();
                    if filter.matches(exec) {
                        newest.offer(filter.rank(Listed::start_date(exec)), *id);
                    }
                }
                // Only the page's executions are frozen into records.
                let found = newest.map(|id| {
                    let live = &self.live[&id];
                    Snapshot {
                        record: Record::of(live.run.execution()),
                        receipt: live.receipt.clone(),
                    }
                });
                self.reply(request, Reply::Search(found));
            }
            Message::Count { tally, request } => {
                // One step sees each execution once: running, or among the
                // finished (where an end in this batch already is).
                let mut counts = tally.zero();
                for live in self.live.values().filter(|l| l.ended.is_none()) {
                    tally.count(live.run.execution(), &mut counts);
                }
                self.finished
                    .scan(|kept| tally.count(&kept.record, &mut counts));
                self.reply(request, Reply::Count(counts));
            }
            Message::Resume {
                id,
                inputs,
                request,
            } => {
                let outcome = self.resume(id, &inputs, now);
                self.reply(request, Reply::Resume(outcome));
            }
            Message::Delete { ids, request } => {
                let deleted = self.delete(ids);
                self.reply(request, Reply::Delete(deleted));
            }
            Message::Relabel {
                id,
                labels,
                stored,
                request,
            } => {
                let outcome = self.relabel(id, labels, stored);
                self.reply(request, Reply::Relabel(outcome));
            }
            Message::Restart {
                id,
                rev,
                stored,
                request,
            } => {
                let outcome = self.restart(id, rev, stored, now);
                self.reply(request, Reply::Restart(outcome));
            }
            Message::Tick => {
                self.fire_timers(now);
                // Once a second, not per batch: retention is counted in
                // seconds and more, and an end the disk refused is retried
                // through the WAL's append path (a roll tries to make a
                // file), which a full disk would make fail every batch.
                if now >= self.next_eviction {
                    self.journal_ends_again();
                    self.finished.evict(now);
                    self.next_eviction = now + chrono::Duration::seconds(1);
                }
            }
        }
    }

    fn reply(&mut self, request: RequestId, reply: Reply) {
        self.effects.push(Effect::Reply { request, reply });
    }

    fn start(
        &mut self,
        mut new: NewExecution,
        request: RequestId,
        snapshot: bool,
        now: DateTime<Utc>,
    ) {
        let id = new.id;
        let link = new.parent;
        // A start in the future waits CREATED on the timer wheel.
        let scheduled = new.schedule_date.filter(|at| *at > now);
        // A redelivered start (a retried request, a replayed message) must
        // not run the execution twice: it is answered with what exists.
        if let Some(receipt) = self.existing_receipt(id) {
            if let Some(link) = link {
                self.answer_again(id, link, &receipt);
            }
            let started = Started {
                id,
                existed: true,
                snapshot: if snapshot {
                    self.snapshot(id).map(|s| s.record)
                } else {
                    None
                },
                receipt,
            };
            self.reply(request, Reply::Started(started));
            return;
        }
        let receipt = if let Some(replays) = &new.replays {
            let replayed = Entry::Replayed {
                record: replays.record.upgraded().as_bytes().to_vec(),
                from: replays.from,
                revision: new.flow.revision(),
                at_us: now.timestamp_micros(),
            };
            self.journal.append(id, &replayed)
        } else if self.journal.keeps_records() {
            let created = Entry::Created {
                namespace: new.flow.namespace.to_string(),
                flow_id: new.flow.flow_id.to_string(),
                revision: new.flow.revision(),
                inputs: serde_json::to_string(&new.inputs).expect("a JSON map always serializes"),
                labels: new.labels.clone(),
                trigger: new.trigger.as_ref().map(ToString::to_string),
                at_us: now.timestamp_micros(),
            };
            let receipt = self.journal.append(id, &created);
            let receipt = match link {
                Some(link) if !receipt.is_refused() => {
                    let raw = link.execution.as_u128();
                    let parent = [(raw >> 64) as u64, raw as u64];
                    let parent = if link.batch == 0 {
                        Entry::Parent {
                            parent,
                            task_run: link.task_run,
                            attempt: link.attempt,
                            wait: link.wait,
                            depth: link.depth,
                            at_us: now.timestamp_micros(),
                        }
                    } else {
                        Entry::ParentOfBatch {
                            parent,
                            task_run: link.task_run,
                            attempt: link.attempt,
                            batch: link.batch,
                            wait: link.wait,
                            depth: link.depth,
                            at_us: now.timestamp_micros(),
                        }
                    };
                    receipt.max(self.journal.append(id, &parent))
                }
                _ => receipt,
            };
            let receipt = match scheduled {
                Some(at) if !receipt.is_refused() => {
                    let entry = Entry::Scheduled {
                        start_us: at.timestamp_micros(),
                        at_us: now.timestamp_micros(),
                    };
                    receipt.max(self.journal.append(id, &entry))
                }
                _ => receipt,
            };
            match &new.lineage {
                Some(l) if !receipt.is_refused() => {
                    let entry = Entry::Lineage {
                        attempt: l.attempt,
                        original: halves(l.original_id),
                        parent: l.parent_id.map(halves),
                        original_created_us: l.original_created.timestamp_micros(),
                        at_us: now.timestamp_micros(),
                    };
                    receipt.max(self.journal.append(id, &entry))
                }
                _ => receipt,
            }
        } else {
            Receipt::ready()
        };
        if receipt.is_refused() {
            // Its creation is not in the journal (a full disk): it does not
            // run, and the caller is told it did not start (a subflow's
            // parent, which may retry it).
            if let Some(link) = link {
                let why = "the subflow's execution could not be created: the data folder is out of \
                           disk space";
                self.tell(Receipt::ready(), link, ChildAnswer::Refused(why.to_owned()));
            }
            let started = Started {
                id,
                existed: false,
                receipt,
                snapshot: None,
            };
            self.reply(request, Reply::Started(started));
            return;
        }
        let mut run = match new.replays.take() {
            Some(replays) => replayed_run(new, &replays, now, self.limits, &self.variables),
            None => Run::new(new, now, self.limits, self.variables.clone()),
        };
        match scheduled {
            Some(at) => run.schedule(at),
            None => run.begin(now),
        }
        self.run_here(id, run, receipt);
        if let Some(link) = link.filter(|l| !l.wait) {
            let receipt = self.live[&id].receipt.clone();
            self.tell(receipt, link, ChildAnswer::Created);
        }
        let live = &self.live[&id];
        let started = Started {
            id,
            existed: false,
            receipt: live.receipt.clone(),
            snapshot: snapshot.then(|| {
                live.ended
                    .clone()
                    .unwrap_or_else(|| Record::of(live.run.execution()))
            }),
        };
        self.reply(request, Reply::Started(started));
    }

    /// Keeps `run` as execution `id`'s and settles the step that made it,
    /// `receipt` covering what it journaled.
    fn run_here(&mut self, id: ExecutionId, run: Run, receipt: Receipt) {
        let live = Live {
            run,
            receipt: Receipt::ready(),
            ended: None,
        };
        self.live.insert(id, live);
        self.settle(id, receipt);
    }

    /// A start of child `id`, which exists, came again (its parent restarted):
    /// it answers again what its parent may have missed.
    fn answer_again(&mut self, id: ExecutionId, link: ParentLink, receipt: &Receipt) {
        let answer = if !link.wait {
            ChildAnswer::Created
        } else {
            match self.snapshot(id) {
                Some(s) if s.record.is_terminal() => ChildNews::ended(link, &s.record).answer,
                // Running: it answers when it ends.
                _ => return,
            }
        };
        self.tell(receipt.clone(), link, answer);
    }

    /// Tells `link`'s task run what its child says, once `receipt` is durable.
    fn tell(&mut self, receipt: Receipt, link: ParentLink, answer: ChildAnswer) {
        let news = ChildNews { link, answer };
        self.parcels.push((receipt, Parcel::Tell(Box::new(news))));
    }

    /// A child answered attempt `attempt` of task run `task_run`: journaled
    /// and applied while that attempt waits for it, else dropped.
    fn child_answered(&mut self, news: ChildNews, now: DateTime<Utc>) {
        let ChildNews { link, answer } = news;
        let Some(live) = self.live.get_mut(&link.execution) else {
            return;
        };
        if !live.run.waits_on(link) {
            return;
        }
        let (state, outputs, refused) = match &answer {
            ChildAnswer::Refused(why) => (State::Failed, None, Some(why.clone())),
            ChildAnswer::Created => (State::Created, None, None),
            ChildAnswer::Ended { state, outputs } => {
                (*state, outputs.as_ref().map(ToString::to_string), None)
            }
        };
        let (task_run, attempt, at_us) = (link.task_run, link.attempt, now.timestamp_micros());
        let state = state.as_str().to_owned();
        let entry = if link.batch == 0 {
            Entry::Child {
                task_run,
                attempt,
                state,
                outputs,
                refused,
                at_us,
            }
        } else {
            Entry::BatchChild {
                task_run,
                attempt,
                batch: link.batch,
                state,
                outputs,
                refused,
                at_us,
            }
        };
        let receipt = self.journal.append(link.execution, &entry);
        if link.batch == 0 {
            live.run.on_child(task_run, link.attempt, &answer, now);
        } else {
            live.run
                .on_batch(task_run, link.attempt, link.batch, &answer, now);
        }
        self.settle(link.execution, receipt);
    }

    /// The concurrency gate answered execution `id`: journaled and applied
    /// while it waits for the answer, else dropped (a repeat).
    fn admitted(&mut self, id: ExecutionId, verdict: Verdict, now: DateTime<Utc>) {
        let Some(live) = self.live.get_mut(&id) else {
            return;
        };
        let queued = live.run.execution().state() == State::Queued;
        if !live.run.awaits_admission() || (queued && matches!(verdict, Verdict::Queue { .. })) {
            return;
        }
        let (verdict_code, running) = verdict.code();
        let entry = Entry::Gated {
            verdict: verdict_code,
            running,
            at_us: now.timestamp_micros(),
        };
        let receipt = self.journal.append(id, &entry);
        live.run.admit(verdict, now);
        self.settle(id, receipt);
    }

    /// The receipt of an execution this shard has (running or finished).
    fn existing_receipt(&self, id: ExecutionId) -> Option<Receipt> {
        match self.live.get(&id) {
            Some(live) => Some(live.receipt.clone()),
            None => self.finished.get(id).map(|kept| kept.receipt),
        }
    }

    /// The execution as it stands here (running or finished), if any.
    fn snapshot(&self, id: ExecutionId) -> Option<Snapshot> {
        if let Some(live) = self.live.get(&id) {
            return Some(Snapshot {
                record: live
                    .ended
                    .clone()
                    .unwrap_or_else(|| Record::of(live.run.execution())),
                receipt: live.receipt.clone(),
            });
        }
        self.finished.get(id).map(|kept| Snapshot {
            record: kept.record,
            receipt: kept.receipt,
        })
    }

    fn kill(&mut self, id: ExecutionId, cascade: bool, now: DateTime<Utc>) -> KillOutcome {
        let Some(live) = self.live.get_mut(&id) else {
            return match self.finished.get(id) {
                Some(kept) => KillOutcome::Ended(kept.record.state()),
                None => KillOutcome::NotFound,
            };
        };
        if live.run.is_terminal() {
            return KillOutcome::Ended(live.run.execution().state());
        }
        let at_us = now.timestamp_micros();
        let entry = if cascade {
            Entry::Kill { at_us }
        } else {
            Entry::KillAlone { at_us }
        };
        let receipt = self.journal.append(id, &entry);
        live.run.kill(cascade, now);
        self.settle(id, receipt);
        KillOutcome::Killed(self.live[&id].receipt.clone())
    }

    fn resume(
        &mut self,
        id: ExecutionId,
        inputs: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> ResumeOutcome {
        let Some(live) = self.live.get_mut(&id) else {
            return match self.finished.get(id) {
                Some(kept) => ResumeOutcome::NotPaused(kept.record.state()),
                None => ResumeOutcome::NotFound,
            };
        };
        let (task_run, outputs) = match live.run.check_resume(inputs) {
            Ok(found) => found,
            Err(Unresumable::NotPaused(state)) => return ResumeOutcome::NotPaused(state),
            Err(Unresumable::Invalid(why)) => return ResumeOutcome::Invalid(why),
        };
        let entry = Entry::Resumed {
            task_run,
            outputs: outputs.to_string(),
            at_us: now.timestamp_micros(),
        };
        let receipt = self.journal.append(id, &entry);
        live.run.apply_resume(task_run, outputs, now);
        self.settle(id, receipt);
        ResumeOutcome::Resumed(self.live[&id].receipt.clone())
    }

    /// Sets labels on a finished execution: its final record, rebuilt with
    /// them, is journaled again as its terminal record (which supersedes
    /// the earlier one) and replaces it in memory if memory has it.
    fn relabel(
        &mut self,
        id: ExecutionId,
        given: Vec<(String, String)>,
        stored: Stored,
    ) -> Relabelled {
        let (record, in_memory) = match self.ended_record(id, stored) {
            Ok(found) => found,
            Err(Unended::Running(state)) => return Relabelled::Running(state),
            Err(Unended::Stale) => return Relabelled::Stale,
            Err(Unended::NotFound) => return Relabelled::NotFound,
        };
        let existing: Vec<(String, String)> = record
            .labels()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let merged = match labels::merge(&existing, given) {
            Ok(merged) => merged,
            Err(e) => return Relabelled::Refused(e),
        };
        let record = record.with_labels(merged);
        let receipt = self.journal.append_ended(id, &record);
        if receipt.is_refused() {
            return Relabelled::Done(Snapshot { record, receipt });
        }
        // The new final record supersedes one the disk refused earlier.
        self.unjournaled.retain(|r| r.id() != id);
        if in_memory {
            self.finished.insert(record.clone(), receipt.clone());
        } else {
            // Callers that read the disk before this must read it again.
            self.finished.rewritten();
        }
        if let Some(live) = self.live.get_mut(&id) {
            live.ended = Some(record.clone());
            live.receipt = receipt.clone();
        }
        Relabelled::Done(Snapshot { record, receipt })
    }

    /// The final record of ended execution `id`, and whether memory has it
    /// (else the caller brought it from disk, in `stored`).
    fn ended_record(&self, id: ExecutionId, stored: Stored) -> Result<(Record, bool), Unended> {
        if let Some(live) = self.live.get(&id) {
            return match &live.ended {
                // Ended in this batch: it is among the finished already.
                Some(record) => Ok((record.clone(), true)),
                None => Err(Unended::Running(live.run.execution().state())),
            };
        }
        if let Some(kept) = self.finished.get(id) {
            return Ok((kept.record, true));
        }
        match stored {
            // It left memory after the caller looked.
            Stored::InMemory => Err(Unended::Stale),
            Stored::OnDisk { rewrites, .. } if rewrites != self.finished.rewrites() => {
                Err(Unended::Stale)
            }
            Stored::OnDisk { record, .. } => Ok((record, false)),
            Stored::Nowhere => Err(Unended::NotFound),
        }
    }

    /// Restarts ended execution `id` on `rev`: its final record, journaled
    /// with the restart, guides the new run (see [`super::guide`]); it
    /// leaves the finished executions and runs again under the same id.
    fn restart(
        &mut self,
        id: ExecutionId,
        rev: Option<Arc<FlowRevision>>,
        stored: Stored,
        now: DateTime<Utc>,
    ) -> RestartOutcome {
        let (record, in_memory) = match self.ended_record(id, stored) {
            Ok(found) => found,
            Err(Unended::Running(state)) => return RestartOutcome::NotEnded(state),
            Err(Unended::Stale) => return RestartOutcome::Stale,
            Err(Unended::NotFound) => return RestartOutcome::NotFound,
        };
        // It ended in this batch (and leaves the shard when the batch's
        // effects are carried out), or after the caller looked: ask again.
        let Some(rev) = rev.filter(|_| !self.live.contains_key(&id)) else {
            return RestartOutcome::Stale;
        };
        let guide = match Guide::restart(record.thaw(), &rev, true) {
            Ok(guide) => guide,
            Err(why) => return RestartOutcome::Refused(why),
        };
        let entry = Entry::Restarted {
            record: record.upgraded().as_bytes().to_vec(),
            at_us: now.timestamp_micros(),
        };
        let receipt = self.journal.append(id, &entry);
        if receipt.is_refused() {
            // Nothing was written (a full disk, a record over the WAL's
            // limit): it stays as it ended.
            let why = receipt
                .wait()
                .err()
                .map_or_else(String::new, |e| e.to_string());
            return RestartOutcome::Refused(why);
        }
        // Its end is superseded: the WAL keeps its final record as the
        // execution's until the restarted run ends.
        self.unjournaled.retain(|r| r.id() != id);
        if in_memory {
            self.finished.remove(id);
        } else {
            self.finished.rewritten();
        }
        let mut run = Run::again(id, rev, guide, now, self.limits, self.variables.clone());
        run.begin(now);
        self.run_here(id, run, receipt);
        let snapshot = self.snapshot(id).expect("it was inserted above");
        RestartOutcome::Restarted(snapshot)
    }

    fn work_done(&mut self, done: WorkDone, now: DateTime<Utc>) {
        let WorkDone {
            id,
            task_run,
            run_id,
            attempt,
            answer:
                crate::tasks::Answer {
                    result,
                    logs,
                    metrics,
                    failed_outputs,
                    warning,
                },
        } = done;
        let Some(live) = self.live.get_mut(&id) else {
            return;
        };
        // Not for this run of the execution (an answer from before its
        // restart), or no longer waited for.
        if !live.run.is_waiting_on(task_run) || live.run.task_run_id(task_run) != Some(run_id) {
            return;
        }
        // Outputs the run would refuse as too large are not journaled
        // whole: the answer is that refusal (a failure's are dropped).
        let max = self.limits.max_outputs_bytes;
        let too_large = |v: &Value| {
            let size = crate::expression::json_size(v, max);
            (size > max).then_some(size)
        };
        let result = match result {
            Ok(v) => match too_large(&v) {
                Some(size) => Err(super::limits::outputs_too_large(size, max)),
                None => Ok(v),
            },
            Err(e) => Err(e),
        };
        let failed_outputs = failed_outputs.filter(|v| too_large(v).is_none());
        // A failure's outputs are journaled beside its error.
        let (outputs, error) = match &result {
            Ok(v) => (Some(v.to_string()), None),
            Err(e) => (
                failed_outputs.as_ref().map(Value::to_string),
                Some(e.clone()),
            ),
        };
        let logs = trim_job_logs(logs, self.limits.max_job_log_bytes);
        let at_us = now.timestamp_micros();
        let entry = if !metrics.is_empty() {
            Entry::WorkedMeasured {
                task_run,
                attempt,
                outputs,
                error,
                lines: logs.iter().map(JobLogLine::of).collect(),
                metrics: metrics.iter().map(JobMetricRecord::of).collect(),
                warning,
                at_us,
            }
        } else if logs.is_empty() && !warning {
            Entry::Worked {
                task_run,
                attempt,
                outputs,
                error,
                at_us,
            }
        } else {
            Entry::WorkedLogged {
                task_run,
                attempt,
                outputs,
                error,
                lines: logs.iter().map(JobLogLine::of).collect(),
                warning,
                at_us,
            }
        };
        let receipt = self.journal.append(id, &entry);
        let answer = crate::tasks::Answer {
            result,
            logs,
            metrics,
            failed_outputs,
            warning,
        };
        live.run.on_work_done(task_run, attempt, answer, now);
        self.settle(id, receipt);
    }

    /// Fires every timer due by `now`.
    fn fire_timers(&mut self, now: DateTime<Utc>) {
        self.timers.expire(now.timestamp_millis(), &mut self.fired);
        let fired = std::mem::take(&mut self.fired);
        for &(id, due) in &fired {
            let Some(live) = self.live.get_mut(&id) else {
                continue;
            };
            // Only a timer that still means something is journaled.
            if !live.run.is_due(due) {
                continue;
            }
            let (task_run, at_us) = (due.task_run, now.timestamp_micros());
            let entry = if due.timeout {
                Entry::TimedOut {
                    task_run,
                    attempt: due.attempt,
                    at_us,
                }
            } else {
                Entry::Timer { task_run, at_us }
            };
            let receipt = self.journal.append(id, &entry);
            self.journal.stepping(Some(id));
            if due.timeout {
                live.run.on_timeout(task_run, due.attempt, now);
            } else {
                live.run.on_timer(task_run, now);
            }
            self.settle(id, receipt);
            self.journal.stepping(None);
        }
        self.fired = fired;
        self.fired.clear();
    }

    /// When the shard must wake next for its timers, in epoch milliseconds.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.timers.next_deadline()
    }

    /// Hands every effect since the last call to `apply`, with the live
    /// execution a change concerns; an execution that ended leaves the
    /// shard once its change has been applied.
    pub fn drain(&mut self, mut apply: impl FnMut(Effect, Option<&Execution>)) {
        for effect in std::mem::take(&mut self.effects) {
            match effect {
                Effect::Changed { id, .. } => {
                    let ended = matches!(&effect, Effect::Changed { ended: Some(_), .. });
                    apply(effect, self.live.get(&id).map(|l| l.run.execution()));
                    if ended {
                        self.live.remove(&id);
                    }
                }
                other => apply(other, None),
            }
        }
        for (receipt, parcel) in std::mem::take(&mut self.parcels) {
            apply(Effect::Send { receipt, parcel }, None);
        }
    }

    /// Rebuilds an execution from its journal and resumes it: its timers
    /// keep their original deadlines, and work that had no answer runs
    /// again as a new attempt. `resolve` finds the flow revision it ran.
    pub fn restore(
        &mut self,
        id: ExecutionId,
        entries: Vec<Entry>,
        resolve: &FlowLookup<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), RestoreError> {
        // A replay that kills the process counts as a death on `id`.
        self.journal.stepping(Some(id));
        let restored = self.replay(id, entries, resolve, now);
        self.journal.stepping(None);
        restored
    }

    /// Ends execution `id` FAILED with `why`, from its creation alone,
    /// without replaying anything else of its journal: it was being worked
    /// on at two deaths of the process in a row, and would kill it again.
    pub fn quarantine(
        &mut self,
        id: ExecutionId,
        entries: Vec<Entry>,
        resolve: &FlowLookup<'_>,
        now: DateTime<Utc>,
        why: String,
    ) -> Result<(), RestoreError> {
        let now = step_instant(now);
        let (mut run, ..) = first_run(
            id,
            &mut entries.into_iter().peekable(),
            resolve,
            self.limits,
            &self.variables,
        )?;
        run.quarantine(why, now);
        self.run_here(id, run, Receipt::ready());
        Ok(())
    }

    fn replay(
        &mut self,
        id: ExecutionId,
        entries: Vec<Entry>,
        resolve: &FlowLookup<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), RestoreError> {
        let now = step_instant(now);
        let mut entries = entries.into_iter().peekable();
        let (mut run, created_at, scheduled) =
            first_run(id, &mut entries, resolve, self.limits, &self.variables)?;
        // Each step gets what it read of the KV store, journaled right
        // after it; one whose reads a crash cut off reads again.
        let mut receipt = Receipt::ready();
        run.give_reads(next_reads(&mut entries));
        match scheduled {
            Some(at) => run.schedule(at),
            None => run.begin(created_at),
        }
        receipt = receipt.max(self.journal_reads(id, &mut run));
        while let Some(entry) = entries.next() {
            run.give_reads(next_reads(&mut entries));
            match entry {
                Entry::Timer { task_run, at_us } => run.on_timer(task_run, instant(at_us)),
                Entry::TimedOut {
                    task_run,
                    attempt,
                    at_us,
                } => run.on_timeout(task_run, attempt, instant(at_us)),
                Entry::Resumed {
                    task_run,
                    outputs,
                    at_us,
                } => {
                    let outputs = serde_json::from_str(&outputs)
                        .map_err(|_| RestoreError::BadInputs("resume outputs"))?;
                    run.apply_resume(task_run, outputs, instant(at_us));
                }
                Entry::Kill { at_us } => {
                    run.kill(true, instant(at_us));
                }
                Entry::KillAlone { at_us } => {
                    run.kill(false, instant(at_us));
                }
                Entry::Worked {
                    task_run,
                    attempt,
                    outputs,
                    error,
                    at_us,
                } => {
                    let answer = worked(outputs, error, Vec::new(), Vec::new(), false);
                    run.on_work_done(task_run, attempt, answer, instant(at_us));
                }
                Entry::WorkedLogged {
                    task_run,
                    attempt,
                    outputs,
                    error,
                    lines,
                    warning,
                    at_us,
                } => {
                    let answer = worked(outputs, error, lines, Vec::new(), warning);
                    run.on_work_done(task_run, attempt, answer, instant(at_us));
                }
                Entry::WorkedMeasured {
                    task_run,
                    attempt,
                    outputs,
                    error,
                    lines,
                    metrics,
                    warning,
                    at_us,
                } => {
                    let answer = worked(outputs, error, lines, metrics, warning);
                    run.on_work_done(task_run, attempt, answer, instant(at_us));
                }
                Entry::Redispatched { task_run, at_us } => {
                    run.redispatch(task_run, instant(at_us));
                }
                Entry::Child {
                    task_run,
                    attempt,
                    state,
                    outputs,
                    refused,
                    at_us,
                } => {
                    let answer = child_answer(&state, outputs, refused)?;
                    run.on_child(task_run, attempt, &answer, instant(at_us));
                }
                Entry::BatchChild {
                    task_run,
                    attempt,
                    batch,
                    state,
                    outputs,
                    refused,
                    at_us,
                } => {
                    let answer = child_answer(&state, outputs, refused)?;
                    run.on_batch(task_run, attempt, batch, &answer, instant(at_us));
                }
                Entry::Gated {
                    verdict,
                    running,
                    at_us,
                } => {
                    let verdict =
                        Verdict::from_code(verdict, running).ok_or(RestoreError::OutOfPlace)?;
                    run.admit(verdict, instant(at_us));
                }
                Entry::Created { .. }
                | Entry::Parent { .. }
                | Entry::ParentOfBatch { .. }
                | Entry::Scheduled { .. }
                | Entry::Restarted { .. }
                | Entry::Replayed { .. }
                | Entry::Lineage { .. }
                | Entry::Read { .. } => {
                    return Err(RestoreError::OutOfPlace);
                }
            }
            receipt = receipt.max(self.journal_reads(id, &mut run));
        }
        run.retain_waiting_timers();
        // Children it still waits for are asked again; one that ended
        // answers again.
        run.retain_waited_spawns();
        // Its flow's concurrency gate hears what it holds.
        run.ask_gate_again();
        // Work dispatched before the restart has no answer: run it again,
        // unless the journal ended the execution (its terminal record was
        // lost: the settle below writes it again).
        run.discard_work();
        let lost_work = if run.is_terminal() {
            Vec::new()
        } else {
            run.waiting_work()
        };
        for task_run in lost_work {
            let entry = Entry::Redispatched {
                task_run,
                at_us: now.timestamp_micros(),
            };
            receipt = receipt.max(self.journal.append(id, &entry));
            run.redispatch(task_run, now);
            receipt = receipt.max(self.journal_reads(id, &mut run));
        }
        self.run_here(id, run, receipt);
        Ok(())
    }

    /// Deletes the ended executions of `ids` (running ones are left, and
    /// named): each leaves the finished ones, and its deletion is journaled
    /// (it supersedes its final record, on disk too).
    fn delete(&mut self, ids: Vec<ExecutionId>) -> Deleted {
        let mut out = Deleted {
            deleted: Vec::new(),
            running: Vec::new(),
            refused: Vec::new(),
            receipt: Receipt::ready(),
        };
        for id in ids {
            if self.live.get(&id).is_some_and(|l| l.ended.is_none()) {
                out.running.push(id);
                continue;
            }
            let receipt = self.journal.append_deleted(id);
            if receipt.is_refused() {
                // A full disk: it stays, readable, until it can be deleted.
                out.refused.push(id);
                continue;
            }
            self.finished.remove(id);
            // An end waiting for room on disk is not journaled after it.
            self.unjournaled.retain(|r| r.id() != id);
            // A relabel that read it from disk before is told it is stale.
            self.finished.rewritten();
            out.receipt = out.receipt.max(receipt);
            out.deleted.push(id);
        }
        out
    }

    /// Journals what the step just handled read of the KV store (see
    /// [`journal_reads`]).
    fn journal_reads(&mut self, id: ExecutionId, run: &mut Run) -> Receipt {
        journal_reads(self.journal.as_mut(), id, run)
    }

    /// Journals again the ends the journal refused, until it takes them;
    /// readers then wait on the new receipt.
    fn journal_ends_again(&mut self) {
        while let Some(record) = self.unjournaled.last() {
            let id = record.id();
            let receipt = self.journal.append_ended(id, record);
            if receipt.is_refused() {
                // Still full: the others would be refused too.
                return;
            }
            let Some(record) = self.unjournaled.pop() else {
                return;
            };
            if self.finished.get(id).is_some() {
                self.finished.insert(record, receipt);
            }
            tracing::info!(execution = %id, "its end is journaled now that there is room");
        }
    }

    /// Takes a run's timer and work requests, journals its end, records
    /// the change.
    fn settle(&mut self, id: ExecutionId, receipt: Receipt) {
        let Some(live) = self.live.get_mut(&id) else {
            return;
        };
        // What the step read of the KV store, unless it ended the
        // execution: the terminal record supersedes every cause.
        let receipt = if live.run.is_terminal() {
            live.run.take_reads();
            receipt
        } else {
            receipt.max(journal_reads(self.journal.as_mut(), id, &mut live.run))
        };
        let Requests {
            timers,
            work,
            spawns,
            kills,
            interrupts,
            asks,
            gate,
        } = live.run.take_requests();
        for timer in timers {
            self.timers.insert(timer.deadline_ms, (id, timer.due));
        }
        for order in work {
            self.effects.push(Effect::Work { id, order });
        }
        for (task_run, attempt) in interrupts {
            self.effects.push(Effect::Interrupt {
                id,
                task_run,
                attempt,
            });
        }
        live.receipt = std::mem::replace(&mut live.receipt, Receipt::ready()).max(receipt);
        let ends = live.run.is_terminal() && live.ended.is_none();
        if ends {
            let mut record = Record::of(live.run.execution());
            let size = record.as_bytes().len();
            if size > self.limits.max_final_bytes {
                record = live.run.cut_to_fit(size);
            }
            // The terminal record supersedes every earlier one, and comes
            // after them in the WAL: its receipt alone says the end is
            // durable (whether or not an earlier append was refused).
            live.receipt = self.journal.append_ended(id, &record);
            if live.receipt.is_refused() {
                // A full disk: the end is journaled again at each tick
                // until it is, so that a restart never runs it again.
                self.unjournaled.push(record.clone());
            }
            // Past the count limit the oldest leave memory; their final
            // records stay readable on disk for the WAL's retention.
            self.finished.insert(record.clone(), live.receipt.clone());
            live.ended = Some(record);
        }
        // Other executions hear of what this step decided once it is
        // durable: its children are started or killed, its parent told
        // that it ended.
        let parcels = spawns
            .into_iter()
            .map(|order| Parcel::Spawn(Box::new(order)))
            .chain(kills.into_iter().map(Parcel::Kill))
            .chain(asks.into_iter().map(|a| Parcel::Ask(Box::new(a))));
        for parcel in parcels {
            self.parcels.push((live.receipt.clone(), parcel));
        }
        if let (true, Some(link), Some(record)) = (ends, live.run.parent(), &live.ended)
            && link.wait
        {
            let news = ChildNews::ended(link, record);
            self.parcels
                .push((live.receipt.clone(), Parcel::Tell(Box::new(news))));
        }
        // Its flow's concurrency gate hears that it asks to run, that it
        // runs, or that it ended.
        if let Some(concurrency) = live.run.concurrency() {
            let exec = live.run.execution();
            let flow = (Arc::clone(&exec.namespace), Arc::clone(&exec.flow_id));
            let note = match (ends, gate) {
                (true, _) => Some(Note::Release { id, flow }),
                (false, Some(GateAsk::Admit)) => Some(Note::Admit {
                    id,
                    flow,
                    concurrency,
                    created_us: exec.state.start_date().timestamp_micros(),
                }),
                (false, Some(GateAsk::Hold)) => Some(Note::Hold {
                    id,
                    flow,
                    concurrency,
                }),
                (false, None) => None,
            };
            if let Some(note) = note {
                self.parcels
                    .push((live.receipt.clone(), Parcel::Gate(Box::new(note))));
            }
        }
        let (receipt, ended) = (live.receipt.clone(), live.ended.clone());
        match self.effects.last_mut() {
            Some(Effect::Changed {
                id: last,
                receipt: r,
                ended: e,
            }) if *last == id => {
                *r = receipt;
                *e = ended;
            }
            _ => self.effects.push(Effect::Changed { id, receipt, ended }),
        }
    }
}

/// A child's answer as its parent journaled it.
fn child_answer(
    state: &str,
    outputs: Option<String>,
    refused: Option<String>,
) -> Result<ChildAnswer, RestoreError> {
    if let Some(why) = refused {
        return Ok(ChildAnswer::Refused(why));
    }
    let state = State::parse(state).ok_or(RestoreError::BadInputs("child state"))?;
    if state == State::Created {
        return Ok(ChildAnswer::Created);
    }
    let outputs = match outputs.map(|text| serde_json::from_str(&text)) {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => return Err(RestoreError::BadInputs("child outputs")),
    };
    Ok(ChildAnswer::Ended { state, outputs })
}

/// A replay's run, guided by the ended execution it replays. Its guide was
/// built once before it was submitted, from the same record and revision,
/// so it builds here too; if it did not, the execution fails saying why.
fn replayed_run(
    new: NewExecution,
    replays: &Replays,
    now: DateTime<Utc>,
    limits: Limits,
    variables: &ConfigVariables,
) -> Run {
    match replays.guide(&new.flow) {
        Ok(guide) => Run::again(new.id, new.flow, guide, now, limits, variables.clone()),
        Err(why) => {
            let mut run = Run::new(new, now, limits, variables.clone());
            run.quarantine(why, now);
            run
        }
    }
}

/// Journals what the step just handled read of the KV store, if it read
/// anything from it (see `executor::reads`).
fn journal_reads(journal: &mut dyn Journal, id: ExecutionId, run: &mut Run) -> Receipt {
    let reads = run.take_reads();
    if reads.is_empty() {
        return Receipt::ready();
    }
    let entry = Entry::Read {
        reads,
        at_us: run.instant().timestamp_micros(),
    };
    journal.append(id, &entry)
}

/// What the step about to be replayed read of the KV store: the journal's
/// next record, if it is its reads.
fn next_reads(entries: &mut std::iter::Peekable<impl Iterator<Item = Entry>>) -> Vec<KvRead> {
    match entries.next_if(|e| matches!(e, Entry::Read { .. })) {
        Some(Entry::Read { reads, .. }) => reads,
        _ => Vec::new(),
    }
}

/// A run not begun yet, the instant it begins at, and when it starts if
/// later.
type FirstRun = (Run, DateTime<Utc>, Option<DateTime<Utc>>);

/// The run an execution's journal starts with, not begun yet: from its
/// creation, its restart or its replay; with the instant it begins at, and
/// when it starts if later (`scheduleDate`).
fn first_run(
    id: ExecutionId,
    entries: &mut std::iter::Peekable<impl Iterator<Item = Entry>>,
    resolve: &FlowLookup<'_>,
    limits: Limits,
    variables: &ConfigVariables,
) -> Result<FirstRun, RestoreError> {
    let (record, from, revision, at_us) = match entries.peek() {
        Some(Entry::Restarted { .. } | Entry::Replayed { .. }) => match entries.next() {
            // A restart keeps the execution's flow revision.
            Some(Entry::Restarted { record, at_us }) => (record, None, None, at_us),
            Some(Entry::Replayed {
                record,
                from,
                revision,
                at_us,
            }) => (record, from, Some(revision), at_us),
            _ => return Err(RestoreError::OutOfPlace),
        },
        _ => {
            let (new, created_at) = created(id, entries, resolve)?;
            let scheduled = new.schedule_date;
            let run = Run::new(new, created_at, limits, variables.clone());
            return Ok((run, created_at, scheduled));
        }
    };
    // The record a restart or a replay journals is of the current format
    // (3), or of format 2 when an earlier build journaled it.
    let record = Record::from_bytes(&record, Format::Three)
        .or_else(|_| Record::from_bytes(&record, Format::Two))
        .map_err(|e| RestoreError::Restart(e.to_string()))?;
    let restarted = revision.is_none();
    let revision = revision.unwrap_or_else(|| record.flow_revision());
    let rev = resolve(record.namespace(), record.flow_id(), revision).ok_or_else(|| {
        RestoreError::FlowGone {
            namespace: record.namespace().to_owned(),
            flow_id: record.flow_id().to_owned(),
            revision,
        }
    })?;
    let at = instant(at_us);
    let guide = if restarted {
        Guide::restart(record.thaw(), &rev, true)
    } else {
        Replays { record, from }.guide(&rev)
    }
    .map_err(RestoreError::Restart)?;
    let run = Run::again(id, rev, guide, at, limits, variables.clone());
    Ok((run, at, None))
}

/// The execution a journal's first entries create (its creation, and its
/// parent's link when it is a subflow), and when.
fn created(
    id: ExecutionId,
    entries: &mut std::iter::Peekable<impl Iterator<Item = Entry>>,
    resolve: &FlowLookup<'_>,
) -> Result<(NewExecution, DateTime<Utc>), RestoreError> {
    let first = entries.next();
    let Some(Entry::Created {
        namespace,
        flow_id,
        revision,
        inputs,
        labels,
        trigger,
        at_us,
    }) = first
    else {
        return Err(RestoreError::NoCreation);
    };
    let flow = resolve(&namespace, &flow_id, revision).ok_or_else(|| RestoreError::FlowGone {
        namespace: namespace.clone(),
        flow_id: flow_id.clone(),
        revision,
    })?;
    let inputs = match serde_json::from_str(&inputs) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(RestoreError::BadInputs("inputs")),
    };
    let trigger = match trigger.map(|t| serde_json::from_str(&t)) {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => return Err(RestoreError::BadInputs("trigger")),
    };
    let created_at = instant(at_us);
    let link = |parent: [u64; 2], task_run, attempt, batch, wait, depth| {
        let raw = (u128::from(parent[0]) << 64) | u128::from(parent[1]);
        Some(ParentLink {
            execution: crate::execution::Id::from_u128(raw),
            task_run,
            attempt,
            wait,
            depth,
            generation: 0,
            batch,
        })
    };
    let parent = match entries.peek() {
        Some(&Entry::Parent {
            parent,
            task_run,
            attempt,
            wait,
            depth,
            ..
        }) => {
            entries.next();
            link(parent, task_run, attempt, 0, wait, depth)
        }
        Some(&Entry::ParentOfBatch {
            parent,
            task_run,
            attempt,
            batch,
            wait,
            depth,
            ..
        }) => {
            entries.next();
            link(parent, task_run, attempt, batch, wait, depth)
        }
        _ => None,
    };
    let schedule_date = match entries.peek() {
        Some(&Entry::Scheduled { start_us, .. }) => {
            entries.next();
            Some(instant(start_us))
        }
        _ => None,
    };
    let lineage = match entries.peek() {
        Some(&Entry::Lineage {
            attempt,
            original,
            parent,
            original_created_us,
            ..
        }) => {
            entries.next();
            Some(crate::execution::Lineage {
                attempt,
                original_id: whole(original),
                parent_id: parent.map(whole),
                original_created: instant(original_created_us),
                schedule_date,
            })
        }
        _ => None,
    };
    let new = NewExecution {
        id,
        flow,
        inputs,
        labels,
        trigger,
        parent,
        schedule_date,
        replays: None,
        lineage,
    };
    Ok((new, created_at))
}

/// A job's lines within `max_bytes` (its own keeper bounded them as it
/// ran; this holds whatever job answered to the same limit).
fn trim_job_logs(logs: Vec<JobLine>, max_bytes: usize) -> Vec<JobLine> {
    if logs.iter().map(LogKeeper::cost).sum::<usize>() <= max_bytes {
        return logs;
    }
    let mut keeper = LogKeeper::new(max_bytes);
    for line in logs {
        keeper.push(line);
    }
    keeper.finish()
}

/// An id as the journal keeps it: two halves, high first.
fn halves(id: ExecutionId) -> [u64; 2] {
    let raw = id.as_u128();
    [(raw >> 64) as u64, raw as u64]
}

/// A journaled answer: its outputs, or its error (with the outputs a
/// failure has, if any), its lines and metrics.
fn worked(
    outputs: Option<String>,
    error: Option<String>,
    lines: Vec<JobLogLine>,
    metrics: Vec<JobMetricRecord>,
    warning: bool,
) -> crate::tasks::Answer {
    let parse = |text: &str| serde_json::from_str::<Value>(text).map_err(|e| e.to_string());
    let (result, failed_outputs) = match (outputs, error) {
        (Some(text), None) => (parse(&text), None),
        (outputs, Some(e)) => (Err(e), outputs.and_then(|t| parse(&t).ok())),
        (None, None) => (Err("the worker's answer was empty".into()), None),
    };
    crate::tasks::Answer {
        result,
        logs: lines.into_iter().map(JobLogLine::line).collect(),
        metrics: metrics.into_iter().map(JobMetricRecord::metric).collect(),
        failed_outputs,
        warning,
    }
}

fn whole(halves: [u64; 2]) -> ExecutionId {
    crate::execution::Id::from_u128((u128::from(halves[0]) << 64) | u128::from(halves[1]))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::execution::{Id, State};
    use crate::executor::FlowRevision;
    use crate::executor::test_journal::FaultyJournal;
    use crate::flow::Flow;

    const SLEEPY: &str = r#"
id: sleepy
namespace: tests
tasks:
  - id: before
    type: io.kestra.plugin.core.debug.Return
    format: one
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT2S
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: two
"#;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    fn finished() -> Arc<Finished> {
        Arc::new(Finished::new(Duration::from_secs(3600), 1000))
    }

    fn revision(yaml: &str) -> Arc<FlowRevision> {
        Arc::new(FlowRevision::new(Arc::new(Flow::parse(yaml).unwrap())))
    }

    fn start(shard: &mut Shard, yaml: &str, raw_id: u128, now: DateTime<Utc>) -> ExecutionId {
        let mut new = NewExecution::new(revision(yaml), serde_json::Map::new());
        new.id = Id::from_u128(raw_id);
        let id = new.id;
        shard.step(
            Message::Start {
                new: Box::new(new),
                request: raw_id as u64,
                snapshot: true,
            },
            now,
        );
        id
    }

    /// What a drain shows: changes as (id, ended, state, task runs), and
    /// replies by request.
    #[derive(Debug, Default)]
    struct Drained {
        changes: Vec<(ExecutionId, bool, State, usize)>,
        replies: Vec<(RequestId, Reply)>,
        work: usize,
        interrupts: Vec<(ExecutionId, u32, u32)>,
        parcels: Vec<Parcel>,
    }

    fn drain(shard: &mut Shard) -> Drained {
        let mut out = Drained::default();
        shard.drain(|effect, exec| match effect {
            Effect::Changed { id, ended, .. } => {
                let exec = exec.expect("a change comes with its execution");
                out.changes
                    .push((id, ended.is_some(), exec.state(), exec.task_runs().len()))
            }
            Effect::Reply { request, reply } => out.replies.push((request, reply)),
            Effect::Work { .. } => out.work += 1,
            Effect::Interrupt {
                id,
                task_run,
                attempt,
            } => out.interrupts.push((id, task_run, attempt)),
            Effect::Send { parcel, .. } => out.parcels.push(parcel),
        });
        out
    }

    fn changes(shard: &mut Shard) -> Vec<(ExecutionId, bool, State, usize)> {
        drain(shard).changes
    }

    #[test]
    fn a_sleep_waits_on_the_timer_wheel_then_the_execution_ends() {
        let mut shard = Shard::new(t(0), finished());
        let id = start(&mut shard, SLEEPY, 1, t(0));
        assert_eq!(
            changes(&mut shard),
            vec![(id, false, State::Running, 2)],
            "the first Return ran inline and the Sleep waits"
        );
        let wake = shard.next_deadline_ms().unwrap();
        assert!(wake <= t(2_000).timestamp_millis(), "wakes by the deadline");

        shard.step(Message::Tick, t(1_999));
        assert!(changes(&mut shard).is_empty(), "nothing fires early");

        shard.step(Message::Tick, t(2_000));
        assert_eq!(changes(&mut shard), vec![(id, true, State::Success, 3)]);
        assert_eq!(shard.len(), 0, "an ended execution leaves the shard");
        assert_eq!(shard.next_deadline_ms(), None);
        assert_eq!(
            shard.finished.get(id).map(|k| k.record.state()),
            Some(State::Success),
            "and is kept finished"
        );
    }

    #[test]
    fn kill_ends_running_task_runs_and_a_late_timer_changes_nothing() {
        let mut shard = Shard::new(t(0), finished());
        let id = start(&mut shard, SLEEPY, 2, t(0));
        drain(&mut shard);
        shard.step(
            Message::Kill {
                id,
                cascade: true,
                request: 20,
            },
            t(500),
        );
        let exec = shard.get(id).unwrap();
        assert_eq!(exec.state(), State::Killed);
        assert_eq!(exec.task_runs()[1].state(), State::Killed);
        assert_eq!(exec.task_runs()[0].state(), State::Success);
        let drained = drain(&mut shard);
        assert_eq!(drained.changes, vec![(id, true, State::Killed, 2)]);
        assert!(matches!(
            drained.replies.as_slice(),
            [(20, Reply::Kill(KillOutcome::Killed(_)))]
        ));
        shard.step(Message::Tick, t(5_000));
        assert!(changes(&mut shard).is_empty());
        shard.step(
            Message::Kill {
                id,
                cascade: true,
                request: 21,
            },
            t(6_000),
        );
        let drained = drain(&mut shard);
        assert!(
            drained.changes.is_empty(),
            "killing an ended one changes nothing"
        );
        assert!(matches!(
            drained.replies.as_slice(),
            [(21, Reply::Kill(KillOutcome::Ended(State::Killed)))]
        ));
        shard.step(
            Message::Kill {
                id: Id::from_u128(999),
                cascade: true,
                request: 22,
            },
            t(6_000),
        );
        assert!(matches!(
            drain(&mut shard).replies.as_slice(),
            [(22, Reply::Kill(KillOutcome::NotFound))]
        ));
    }

    #[test]
    fn a_kill_or_a_timeout_interrupts_the_work_of_the_attempt_it_ends() {
        let call = r#"
id: call
namespace: tests
tasks:
  - id: get
    type: io.kestra.plugin.core.http.Request
    uri: http://127.0.0.1:9/
    timeout: PT1S
    retry:
      type: constant
      interval: PT0.1S
      maxAttempts: 2
"#;
        let mut shard = Shard::new(t(0), finished());
        let id = start(&mut shard, call, 3, t(0));
        assert_eq!(drain(&mut shard).work, 1);
        // The first attempt times out: its work is interrupted, a second
        // attempt runs after the retry's interval.
        shard.step(Message::Tick, t(1_000));
        assert_eq!(drain(&mut shard).interrupts, [(id, 0, 1)]);
        shard.step(Message::Tick, t(1_200));
        let drained = drain(&mut shard);
        assert_eq!((drained.work, drained.interrupts.len()), (1, 0));
        shard.step(
            Message::Kill {
                id,
                cascade: true,
                request: 1,
            },
            t(1_300),
        );
        assert_eq!(drain(&mut shard).interrupts, [(id, 0, 2)]);

        // A kill of an execution with no work in flight interrupts nothing.
        let sleepy = start(&mut shard, SLEEPY, 4, t(0));
        drain(&mut shard);
        let kill = Message::Kill {
            id: sleepy,
            cascade: true,
            request: 2,
        };
        shard.step(kill, t(1_400));
        assert!(drain(&mut shard).interrupts.is_empty());
    }

    #[test]
    fn a_redelivered_start_is_answered_with_the_execution_that_exists() {
        let mut shard = Shard::new(t(0), finished());
        let id = start(&mut shard, SLEEPY, 3, t(0));
        let first = drain(&mut shard);
        let [(3, Reply::Started(started))] = first.replies.as_slice() else {
            panic!("one reply to request 3: {first:?}");
        };
        assert!(!started.existed);
        assert_eq!(started.snapshot.as_ref().unwrap().state(), State::Running);

        start(&mut shard, SLEEPY, 3, t(10));
        let again = drain(&mut shard);
        assert!(again.changes.is_empty(), "nothing ran again");
        let [(3, Reply::Started(started))] = again.replies.as_slice() else {
            panic!("the duplicate is answered: {again:?}");
        };
        assert!(started.existed);
        assert_eq!(started.snapshot.as_ref().unwrap().id(), id);
        assert_eq!(shard.len(), 1);
        assert_eq!(shard.get(id).unwrap().task_runs().len(), 2);

        // Once it has ended, a start of the same id finds it finished.
        shard.step(Message::Tick, t(2_000));
        drain(&mut shard);
        start(&mut shard, SLEEPY, 3, t(3_000));
        let late = drain(&mut shard);
        let [(3, Reply::Started(started))] = late.replies.as_slice() else {
            panic!("answered: {late:?}");
        };
        assert!(started.existed && late.changes.is_empty());
        assert_eq!(started.snapshot.as_ref().unwrap().state(), State::Success);
    }

    #[test]
    fn reads_and_searches_answer_by_request() {
        let mut shard = Shard::new(t(0), finished());
        let a = start(&mut shard, SLEEPY, 10, t(0));
        let b = start(&mut shard, SLEEPY, 11, t(1_000));
        drain(&mut shard);
        shard.step(Message::Read { id: b, request: 5 }, t(1_001));
        shard.step(
            Message::Search {
                filter: Arc::new(Filter {
                    namespace: vec![crate::executor::search::Text::Prefix("tests".into())],
                    ..Filter::default()
                }),
                limit: 1,
                request: 6,
            },
            t(1_001),
        );
        let mut replies = drain(&mut shard).replies.into_iter();
        let Some((5, Reply::Read(Some(read)))) = replies.next() else {
            panic!("read answered");
        };
        assert_eq!(read.record.id(), b);
        let Some((6, Reply::Search(found))) = replies.next() else {
            panic!("search answered");
        };
        let (newest, total) = found.into_sorted();
        assert_eq!(total, 2);
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0].record.id(), b, "newest first");
        shard.step(Message::Tick, t(2_500));
        assert_eq!(changes(&mut shard), vec![(a, true, State::Success, 3)]);
    }

    #[test]
    fn the_journal_records_causes_and_a_replay_resumes_the_same_execution() {
        let journal = FaultyJournal::default();
        let mut shard = Shard::with_journal(t(0), Box::new(journal.clone()), finished());
        let id = start(&mut shard, SLEEPY, 7, t(0));
        let before = shard.get(id).unwrap().clone();
        let entries: Vec<Entry> = {
            let log = journal.kept.lock().unwrap();
            assert_eq!(log.len(), 1);
            assert!(
                matches!(&log[0], (i, Some(Entry::Created { flow_id, at_us, .. }))
                if *i == id && flow_id == "sleepy" && *at_us == t(0).timestamp_micros())
            );
            log.iter().filter_map(|e| e.1.clone()).collect()
        };

        // A fresh shard replays the journal: same task runs, same ids, and
        // the Sleep waits for its original deadline.
        let flow = revision(SLEEPY);
        let mut replayed = Shard::new(t(1_000), finished());
        replayed
            .restore(
                id,
                entries,
                &|_: &str, _: &str, _: u32| Some(Arc::clone(&flow)),
                t(1_000),
            )
            .unwrap();
        let after = replayed.get(id).unwrap();
        assert_eq!(
            Record::of(after).as_bytes(),
            Record::of(&before).as_bytes(),
            "byte for byte"
        );
        replayed.step(Message::Tick, t(1_999));
        assert_eq!(replayed.get(id).unwrap().task_runs().len(), 2);
        replayed.step(Message::Tick, t(2_000));
        assert!(
            changes(&mut replayed)
                .iter()
                .any(|e| e.1 && e.2 == State::Success)
        );

        // The original shard journals the timer, then the end.
        shard.step(Message::Tick, t(2_000));
        let log = journal.kept.lock().unwrap();
        assert!(matches!(
            log[1],
            (_, Some(Entry::Timer { task_run: 1, .. }))
        ));
        assert!(matches!(log[2], (_, None)), "the end is the last record");
    }

    #[test]
    fn a_full_journal_starts_nothing_and_an_end_it_refused_is_journaled_once_it_has_room() {
        use std::sync::atomic::Ordering;
        let journal = FaultyJournal::default();
        let mut shard = Shard::with_journal(t(0), Box::new(journal.clone()), finished());
        // A start whose creation is refused does not run.
        journal.full.store(true, Ordering::SeqCst);
        let refused = start(&mut shard, SLEEPY, 1, t(0));
        let drained = drain(&mut shard);
        assert!(drained.changes.is_empty(), "{:?}", drained.changes);
        match &drained.replies[..] {
            [(_, Reply::Started(started))] => {
                assert!(!started.existed);
                assert!(started.receipt.wait().is_err());
            }
            other => panic!("{other:?}"),
        }
        assert!(shard.snapshot(refused).is_none(), "it does not exist");
        // A start with room runs; its end, refused by a full disk, is
        // journaled at the first tick after room returns.
        journal.full.store(false, Ordering::SeqCst);
        let id = start(&mut shard, SLEEPY, 2, t(0));
        drain(&mut shard);
        journal.full.store(true, Ordering::SeqCst);
        shard.step(Message::Tick, t(2_500));
        let ends = changes(&mut shard);
        assert_eq!(
            ends.last().map(|c| (c.1, c.2)),
            Some((true, State::Success))
        );
        let kept = shard.finished().get(id).expect("kept");
        assert!(kept.receipt.wait().is_err(), "not journaled yet");
        // Retried once a second, while the disk stays full: still refused.
        shard.step(Message::Tick, t(3_600));
        assert!(shard.finished().get(id).unwrap().receipt.wait().is_err());
        journal.full.store(false, Ordering::SeqCst);
        // Not before a second has passed since the last try...
        shard.step(Message::Tick, t(3_700));
        assert!(shard.finished().get(id).unwrap().receipt.wait().is_err());
        // ...then journaled.
        shard.step(Message::Tick, t(4_700));
        let kept = shard.finished().get(id).expect("kept");
        kept.receipt.wait().expect("journaled now");
        assert_eq!(journal.ends(id), 1, "journaled once");
        assert!(journal.causes(refused).is_empty());
    }

    #[test]
    fn a_journal_without_its_creation_is_refused() {
        let mut shard = Shard::new(t(0), finished());
        let flow = revision(SLEEPY);
        let refused = shard.restore(
            Id::from_u128(1),
            vec![Entry::Kill { at_us: 1 }],
            &|_: &str, _: &str, _: u32| Some(Arc::clone(&flow)),
            t(0),
        );
        assert_eq!(refused, Err(RestoreError::NoCreation));
    }

    fn relabel(
        shard: &mut Shard,
        id: ExecutionId,
        labels: &[(&str, &str)],
        stored: Stored,
        now: DateTime<Utc>,
    ) -> Relabelled {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        shard.step(
            Message::Relabel {
                id,
                labels,
                stored,
                request: 77,
            },
            now,
        );
        let mut replies = drain(shard).replies;
        match replies.pop() {
            Some((77, Reply::Relabel(outcome))) if replies.is_empty() => outcome,
            other => panic!("one relabel reply expected, got {other:?}"),
        }
    }

    fn labels_of(record: &Record) -> Vec<(String, String)> {
        record
            .labels()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The execution's JSON without its labels.
    fn all_but_labels(record: &Record) -> serde_json::Value {
        let mut json = record.to_json(t(0));
        json.as_object_mut().unwrap().remove("labels");
        json
    }

    #[test]
    fn labels_are_set_on_finished_executions_only_and_journaled_as_their_end() {
        let journal = FaultyJournal::default();
        let mut shard = Shard::with_journal(t(0), Box::new(journal.clone()), finished());
        let id = start(&mut shard, SLEEPY, 5, t(0));
        drain(&mut shard);
        assert!(matches!(
            relabel(&mut shard, id, &[("team", "data")], Stored::Nowhere, t(10)),
            Relabelled::Running(State::Running)
        ));
        shard.step(Message::Tick, t(2_000));
        drain(&mut shard);
        let before = shard.finished().get(id).unwrap().record;
        assert_eq!(journal.ends(id), 1);

        let Relabelled::Done(done) = relabel(
            &mut shard,
            id,
            &[("team", "data"), ("env", "test")],
            Stored::InMemory,
            t(3_000),
        ) else {
            panic!("not set");
        };
        done.receipt.wait().unwrap();
        let correlation = ("system.correlationId".to_owned(), id.to_string());
        let expected = vec![
            correlation.clone(),
            ("team".into(), "data".into()),
            ("env".into(), "test".into()),
        ];
        assert_eq!(labels_of(&done.record), expected);
        assert_eq!(
            all_but_labels(&done.record),
            all_but_labels(&before),
            "only the labels change: states, dates and task runs stay"
        );
        let kept = shard.finished().get(id).unwrap();
        assert_eq!(
            labels_of(&kept.record),
            expected,
            "memory has the new record"
        );
        assert_eq!(journal.ends(id), 2, "journaled again as its end");
        assert_eq!(shard.finished().rewrites(), 0, "it was in memory");

        // A changed system label is refused, and nothing changes.
        let refused = relabel(
            &mut shard,
            id,
            &[("team", "ops"), ("system.correlationId", "other")],
            Stored::InMemory,
            t(3_100),
        );
        assert!(
            matches!(&refused, Relabelled::Refused(LabelError::System { key, .. }) if key == "system.correlationId"),
            "{refused:?}"
        );
        assert_eq!(journal.ends(id), 2);
        assert_eq!(
            labels_of(&shard.finished().get(id).unwrap().record),
            expected
        );

        // Sent back as read, with one changed: merged by key.
        let Relabelled::Done(done) = relabel(
            &mut shard,
            id,
            &[("system.correlationId", &id.to_string()), ("team", "ops")],
            Stored::InMemory,
            t(3_200),
        ) else {
            panic!("not set");
        };
        assert_eq!(
            labels_of(&done.record),
            vec![
                correlation,
                ("team".into(), "ops".into()),
                ("env".into(), "test".into())
            ]
        );

        let unknown = Id::from_u128(404);
        assert!(matches!(
            relabel(
                &mut shard,
                unknown,
                &[("a", "b")],
                Stored::Nowhere,
                t(3_300)
            ),
            Relabelled::NotFound
        ));
        assert!(
            matches!(
                relabel(
                    &mut shard,
                    unknown,
                    &[("a", "b")],
                    Stored::InMemory,
                    t(3_300)
                ),
                Relabelled::Stale
            ),
            "seen in memory, gone since: the caller must look again"
        );
    }

    #[test]
    fn an_execution_only_on_disk_is_relabelled_from_the_record_brought_unless_stale() {
        // Its record, as the disk would give it back.
        let mut first = Shard::new(t(0), finished());
        let id = start(&mut first, SLEEPY, 6, t(0));
        first.step(Message::Tick, t(2_000));
        drain(&mut first);
        let on_disk = first.finished().get(id).unwrap().record;

        let journal = FaultyJournal::default();
        let mut shard = Shard::with_journal(t(0), Box::new(journal.clone()), finished());
        let brought = |record: &Record, rewrites| Stored::OnDisk {
            record: record.clone(),
            rewrites,
        };
        let Relabelled::Done(done) = relabel(
            &mut shard,
            id,
            &[("team", "data")],
            brought(&on_disk, 0),
            t(3_000),
        ) else {
            panic!("not set");
        };
        assert!(labels_of(&done.record).contains(&("team".into(), "data".into())));
        assert_eq!(all_but_labels(&done.record), all_but_labels(&on_disk));
        assert_eq!(journal.ends(id), 1);
        assert!(shard.finished().get(id).is_none(), "it stays on disk only");
        assert_eq!(shard.finished().rewrites(), 1);

        // A caller that read the disk before that rewrite holds the old
        // record: it must read again, or the first labels would be lost.
        assert!(matches!(
            relabel(
                &mut shard,
                id,
                &[("env", "x")],
                brought(&on_disk, 0),
                t(3_100)
            ),
            Relabelled::Stale
        ));
        assert_eq!(journal.ends(id), 1);
        let Relabelled::Done(again) = relabel(
            &mut shard,
            id,
            &[("env", "x")],
            brought(&done.record, 1),
            t(3_200),
        ) else {
            panic!("not set");
        };
        assert_eq!(
            labels_of(&again.record)[1..],
            [("team".into(), "data".into()), ("env".into(), "x".into())]
        );

        // A full disk: refused, nothing counted as rewritten.
        journal
            .full
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let Relabelled::Done(refused) = relabel(
            &mut shard,
            id,
            &[("env", "y")],
            brought(&again.record, 2),
            t(3_300),
        ) else {
            panic!("answered");
        };
        assert!(refused.receipt.wait().is_err());
        assert_eq!(shard.finished().rewrites(), 2);
    }
}
