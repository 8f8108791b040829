//! Schedule triggers (`io.kestra.plugin.core.trigger.Schedule`): one
//! scheduler thread for every trigger of every enabled flow, asleep until
//! the earliest date is due (or a flow changes), so that ten thousand
//! schedules cost nothing between their fires.
//!
//! Firing date `d` of a trigger starts the execution whose id derives from
//! (flow, trigger, `d`) and waits until its creation is durable; only then
//! is the trigger's new standing (`d` fired, its next date) appended to the
//! schedules' log ([`ledger`]), which syncs it at once without the
//! scheduler waiting. A crash before that sync fires `d` again after the
//! restart, which finds the execution `d` started: a date starts at most
//! one execution. What a restart does with the dates missed while
//! the server was down is the trigger's `recoverMissedSchedules` (Kestra's
//! default, `ALL`: each of them, in order).

mod ledger;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use peregrine_engine::expression::{JsonContext, Property};
use peregrine_engine::flow::{
    CronSchedule, DateCondition, RecoverMissed, SCHEDULE, TriggerKind, validate_inputs,
};
use peregrine_engine::{Ack, ExecutionId, Pending, Started, execution_trigger};
use serde_json::{Map, Value, json};

use ledger::Standing;
pub(crate) use ledger::{Backfill, Ledger, TriggerKey, wal_config};

use crate::state::{AppState, Launch, LaunchError, Refused};
use crate::store::StoredFlow;

/// The longest the scheduler sleeps at once: a wall clock that jumps is
/// noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How long a fire the engine refused (full, overloaded, a full disk) waits
/// before it is tried again.
const RETRY_REFUSED: Duration = Duration::from_secs(1);

/// What the scheduler thread is told.
enum Note {
    /// The flow changed (created, updated, deleted, enabled or disabled):
    /// its triggers are planned again.
    Flow {
        namespace: String,
        id: String,
    },
    /// Where every planned trigger stands (the triggers API).
    List(flume::Sender<Vec<TriggerView>>),
    /// Disable or enable a trigger (the triggers API): `None` back if no
    /// enabled flow has it.
    SetDisabled {
        trigger: TriggerKey,
        disabled: bool,
        reply: flume::Sender<Option<TriggerView>>,
    },
    /// Forget where a trigger stands (the triggers API's delete): it
    /// starts afresh, as a new one, from its next date. `None` back if no
    /// enabled flow has it.
    Reset {
        trigger: TriggerKey,
        reply: flume::Sender<Option<TriggerView>>,
    },
    /// Start, pause, go on with or drop a backfill (the triggers API).
    Backfill {
        trigger: TriggerKey,
        change: BackfillChange,
        reply: flume::Sender<Result<TriggerView, String>>,
    },
    Stop,
}

/// What the triggers API does to a Schedule's backfill.
#[derive(Debug, Clone)]
pub(crate) enum BackfillChange {
    /// Fire the dates from `start` to `end` (now by default), with these
    /// inputs and labels, then go on where the schedule stood.
    Start {
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
        inputs: Map<String, Value>,
        labels: Vec<(String, String)>,
    },
    Pause(bool),
    Delete,
}

/// Where one trigger stands, as the triggers API shows it (Kestra's
/// trigger context).
#[derive(Debug, Clone)]
pub(crate) struct TriggerView {
    pub trigger: TriggerKey,
    /// The next date it fires (when enabled).
    pub next: DateTime<Utc>,
    /// The last date it fired, and the execution that date started.
    pub fired: Option<(DateTime<Utc>, ExecutionId)>,
    pub disabled: bool,
    pub backfill: Option<Backfill>,
}

/// The scheduler: its thread once started, and what it is told through.
#[derive(Debug)]
pub(crate) struct Scheduler {
    /// The ledger until the thread takes it.
    ledger: Mutex<Option<Ledger>>,
    running: Mutex<Option<(flume::Sender<Note>, JoinHandle<Ledger>)>>,
}

impl Scheduler {
    pub fn new(ledger: Ledger) -> Self {
        Self {
            ledger: Mutex::new(Some(ledger)),
            running: Mutex::new(None),
        }
    }

    /// Plans every trigger of every flow and starts firing them. Once.
    pub fn start(&self, state: &AppState) -> std::io::Result<()> {
        let Some(ledger) = lock(&self.ledger).take() else {
            return Ok(());
        };
        let (tx, rx) = flume::unbounded();
        let state = state.clone();
        let thread = std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || {
                let mut plans = Plans::new(ledger);
                plans.run(&state, &rx);
                plans.ledger
            })?;
        *lock(&self.running) = Some((tx, thread));
        Ok(())
    }

    /// Flow `namespace.id` changed: its triggers are planned again.
    pub fn reconcile(&self, namespace: &str, id: &str) {
        self.tell(Note::Flow {
            namespace: namespace.to_owned(),
            id: id.to_owned(),
        });
    }

    /// Where every planned trigger stands; empty before the scheduler
    /// starts.
    pub async fn list(&self) -> Vec<TriggerView> {
        match self.ask(Note::List) {
            Some(answer) => answer.recv_async().await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Disables or enables `trigger`, durably; where it stands then, or
    /// `None` if no enabled flow has that Schedule trigger.
    pub async fn set_disabled(&self, trigger: TriggerKey, disabled: bool) -> Option<TriggerView> {
        let answer = self.ask(|reply| Note::SetDisabled {
            trigger,
            disabled,
            reply,
        })?;
        answer.recv_async().await.ok().flatten()
    }

    /// [`Scheduler::set_disabled`], from a thread that may block.
    pub fn set_disabled_blocking(
        &self,
        trigger: TriggerKey,
        disabled: bool,
    ) -> Option<TriggerView> {
        let answer = self.ask(|reply| Note::SetDisabled {
            trigger,
            disabled,
            reply,
        })?;
        answer.recv().ok().flatten()
    }

    /// Forgets where `trigger` stands, durably (Kestra's deletion of a
    /// trigger's context): it starts afresh from its next date, enabled,
    /// with no backfill. Where it stands then, or `None` if no enabled flow
    /// has that Schedule.
    pub async fn reset(&self, trigger: TriggerKey) -> Option<TriggerView> {
        let answer = self.ask(|reply| Note::Reset { trigger, reply })?;
        answer.recv_async().await.ok().flatten()
    }

    /// Changes `trigger`'s backfill, durably; where it stands then, or why
    /// not.
    pub async fn backfill(
        &self,
        trigger: TriggerKey,
        change: BackfillChange,
    ) -> Result<TriggerView, String> {
        let Some(answer) = self.ask(|reply| Note::Backfill {
            trigger,
            change,
            reply,
        }) else {
            return Err("the scheduler is not running".into());
        };
        answer
            .recv_async()
            .await
            .unwrap_or_else(|_| Err("the scheduler stopped".into()))
    }

    /// Sends the note `note` builds around a reply channel; where the
    /// answer comes, if the scheduler runs.
    fn ask<T>(&self, note: impl FnOnce(flume::Sender<T>) -> Note) -> Option<flume::Receiver<T>> {
        let (reply, answer) = flume::bounded(1);
        self.tell(note(reply)).then_some(answer)
    }

    /// False if the scheduler does not run.
    fn tell(&self, note: Note) -> bool {
        match lock(&self.running).as_ref() {
            Some((tx, _)) => tx.send(note).is_ok(),
            None => false,
        }
    }

    /// Stops firing; what was fired is durable. Blocks until the thread
    /// ends (a fire in progress finishes first).
    pub fn stop(&self) {
        let Some((tx, thread)) = lock(&self.running).take() else {
            return;
        };
        let _ = tx.send(Note::Stop);
        match thread.join() {
            Ok(ledger) => {
                if let Err(e) = ledger.close() {
                    tracing::error!("closing the schedules' log: {e}");
                }
            }
            Err(_) => tracing::error!("the scheduler thread panicked"),
        }
    }
}

/// The engine's way to the scheduler, for `trigger.Toggle` tasks (on the
/// worker pool, which may block).
#[derive(Debug)]
pub(crate) struct Switch {
    scheduler: Arc<Scheduler>,
    flows: Arc<crate::store::FlowRepository>,
}

impl Switch {
    pub fn new(scheduler: Arc<Scheduler>, flows: Arc<crate::store::FlowRepository>) -> Self {
        Self { scheduler, flows }
    }
}

impl peregrine_engine::TriggerSwitch for Switch {
    fn set_enabled(
        &self,
        namespace: &str,
        flow_id: &str,
        trigger: &str,
        enabled: bool,
    ) -> Result<(), String> {
        let Some(stored) = self.flows.get(namespace, flow_id) else {
            return Err(format!(
                "Unable to find flow {namespace}.{flow_id}. Make sure the flow exists and the \
                 current execution is authorized to access it."
            ));
        };
        let not_found =
            || format!("Unable to find trigger {trigger} for the flow {namespace}.{flow_id}");
        let found = stored.flow().triggers.iter().find(|t| t.id == trigger);
        match found.map(|t| &t.kind) {
            Some(TriggerKind::Schedule { .. }) => {}
            Some(_) => {
                return Err(format!(
                    "trigger {trigger} of {namespace}.{flow_id} has no state to toggle (only a \
                     Schedule's can be, for now)"
                ));
            }
            None => return Err(not_found()),
        }
        let key = (namespace.to_owned(), flow_id.to_owned(), trigger.to_owned());
        match self.scheduler.set_disabled_blocking(key, !enabled) {
            Some(_) => Ok(()),
            None => Err(not_found()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One trigger, planned.
struct Plan {
    flow: Arc<StoredFlow>,
    dates: Dates,
    /// What its dates come from (see [`Standing::dates`]).
    signature: String,
    inputs: Map<String, Value>,
    labels: Vec<(String, String)>,
    late_maximum_delay: Option<Duration>,
    recover: RecoverMissed,
    /// Disabled through the API: planned, not fired.
    disabled: bool,
    /// The schedule's next date (after its backfill, if one runs).
    next: DateTime<Utc>,
    /// A backfill under way: its dates fire first.
    backfill: Option<Backfill>,
    /// Bumped when it is planned again: an older heap entry is stale.
    generation: u64,
}

impl Plan {
    /// The date it fires next: its backfill's, or its schedule's.
    fn due(&self) -> DateTime<Utc> {
        self.backfill.as_ref().map_or(self.next, |b| b.current)
    }

    /// Whether it fires at all now: not disabled, its backfill not paused
    /// (a paused backfill holds the trigger, as Kestra's does).
    fn active(&self) -> bool {
        !self.disabled && !self.backfill.as_ref().is_some_and(|b| b.paused)
    }
}

/// Every planned trigger, the heap of their next dates, and the ledger.
struct Plans {
    ledger: Ledger,
    /// Ordered, so that a flow's triggers are a range.
    plans: BTreeMap<TriggerKey, Plan>,
    /// (when, generation, trigger): the earliest on top.
    heap: BinaryHeap<Reverse<(DateTime<Utc>, u64, TriggerKey)>>,
    generation: u64,
}

impl Plans {
    fn new(ledger: Ledger) -> Self {
        Self {
            ledger,
            plans: BTreeMap::new(),
            heap: BinaryHeap::new(),
            generation: 0,
        }
    }

    fn run(&mut self, state: &AppState, notes: &flume::Receiver<Note>) {
        let now = Utc::now();
        let mut known: Vec<TriggerKey> = self.ledger.triggers();
        for stored in state.flows().all() {
            self.plan_flow(&stored, now);
        }
        // Triggers recorded that no flow has any more.
        known.retain(|k| !self.plans.contains_key(k) && state.flows().get(&k.0, &k.1).is_none());
        for trigger in known {
            self.forget(&trigger);
        }
        tracing::info!(triggers = self.plans.len(), "scheduler started");
        loop {
            let sleep = self.heap.peek().map_or(MAX_SLEEP, |Reverse((at, _, _))| {
                (*at - Utc::now())
                    .to_std()
                    .unwrap_or_default()
                    .min(MAX_SLEEP)
            });
            match notes.recv_timeout(sleep) {
                Ok(Note::Stop) | Err(flume::RecvTimeoutError::Disconnected) => return,
                Ok(note) => self.heard(state, note),
                Err(flume::RecvTimeoutError::Timeout) => {}
            }
            if !self.fire_due(state, notes) {
                return;
            }
        }
    }

    /// Acts on a note (but a stop).
    fn heard(&mut self, state: &AppState, note: Note) {
        match note {
            Note::Flow { namespace, id } => self.replan(state, &namespace, &id),
            Note::List(reply) => {
                let mut views: Vec<TriggerView> =
                    self.plans.keys().filter_map(|k| self.view(k)).collect();
                views.sort_by(|a, b| a.trigger.cmp(&b.trigger));
                let _ = reply.send(views);
            }
            Note::SetDisabled {
                trigger,
                disabled,
                reply,
            } => {
                let _ = reply.send(self.set_disabled(&trigger, disabled));
            }
            Note::Reset { trigger, reply } => {
                if self.plans.contains_key(&trigger) {
                    self.forget(&trigger);
                    self.replan(state, &trigger.0, &trigger.1);
                }
                let _ = reply.send(self.view(&trigger));
            }
            Note::Backfill {
                trigger,
                change,
                reply,
            } => {
                let _ = reply.send(self.change_backfill(&trigger, change));
            }
            Note::Stop => {}
        }
    }

    fn view(&self, trigger: &TriggerKey) -> Option<TriggerView> {
        let plan = self.plans.get(trigger)?;
        Some(TriggerView {
            trigger: trigger.clone(),
            next: plan.due(),
            fired: self.ledger.get(trigger).and_then(|s| s.fired),
            disabled: plan.disabled,
            backfill: plan.backfill.clone(),
        })
    }

    /// Where `trigger` stands now, as its plan says.
    fn standing(&self, trigger: &TriggerKey, plan: &Plan) -> Standing {
        Standing {
            next: plan.next,
            fired: self.ledger.get(trigger).and_then(|s| s.fired),
            dates: plan.signature.clone(),
            disabled: plan.disabled,
            backfill: plan.backfill.clone(),
        }
    }

    /// Records where a planned trigger stands (durably, for what the API
    /// answers), then plans its next date afresh.
    fn commit(&mut self, trigger: &TriggerKey) -> Option<TriggerView> {
        let plan = self.plans.get(trigger)?;
        let standing = self.standing(trigger, plan);
        if let Err(e) = self.ledger.record(trigger, standing, true) {
            tracing::error!(trigger = %describe(trigger), "recording a trigger's state: {e}");
            return None;
        }
        self.generation += 1;
        let generation = self.generation;
        let plan = self.plans.get_mut(trigger)?;
        plan.generation = generation;
        if plan.active() {
            let due = plan.due();
            self.push(trigger, due);
        }
        self.view(trigger)
    }

    /// Starts, pauses, goes on with or drops `trigger`'s backfill.
    fn change_backfill(
        &mut self,
        trigger: &TriggerKey,
        change: BackfillChange,
    ) -> Result<TriggerView, String> {
        let now = Utc::now();
        let Some(plan) = self.plans.get_mut(trigger) else {
            return Err(
                "the trigger is not scheduled (is its flow or the trigger disabled?)".into(),
            );
        };
        match change {
            BackfillChange::Start {
                start,
                end,
                inputs,
                labels,
            } => {
                let end = end.unwrap_or(now);
                if end < start {
                    return Err(format!(
                        "the backfill ends ({end}) before it starts ({start})"
                    ));
                }
                // Kestra's `scheduleDates(start - 1s)`: the first date from
                // `start` on.
                let current = plan
                    .dates
                    .next_after(start - chrono::Duration::seconds(1))
                    .filter(|d| *d <= end);
                let Some(current) = current else {
                    return Err(format!(
                        "no date of the schedule falls from {start} to {end}"
                    ));
                };
                let resume = match plan.backfill.take() {
                    Some(b) => b.resume,
                    None => plan.next,
                };
                plan.backfill = Some(Backfill {
                    start,
                    end,
                    current,
                    paused: false,
                    inputs,
                    labels,
                    resume,
                });
            }
            BackfillChange::Pause(paused) => match plan.backfill.as_mut() {
                Some(b) => b.paused = paused,
                None => return Err("No backfill found".into()),
            },
            BackfillChange::Delete => match plan.backfill.take() {
                Some(b) => plan.next = b.resume,
                None => return Err("No backfill found".into()),
            },
        }
        self.commit(trigger)
            .ok_or_else(|| "the trigger's state could not be recorded".into())
    }

    /// Disables or enables a planned trigger, durably. Enabled again, it
    /// fires the dates it missed as its `recoverMissedSchedules` says.
    fn set_disabled(&mut self, trigger: &TriggerKey, disabled: bool) -> Option<TriggerView> {
        let plan = self.plans.get(trigger)?;
        if plan.disabled == disabled {
            return self.view(trigger);
        }
        if !disabled {
            let standing = self.ledger.get(trigger).cloned();
            let next = first_date(&plan.dates, standing.as_ref(), plan.recover, Utc::now());
            let plan = self.plans.get_mut(trigger)?;
            plan.next = next.unwrap_or(plan.next);
        }
        self.plans.get_mut(trigger)?.disabled = disabled;
        self.commit(trigger)
    }

    /// Fires every date due; false once told to stop.
    fn fire_due(&mut self, state: &AppState, notes: &flume::Receiver<Note>) -> bool {
        loop {
            // Flow changes and a stop are heard between batches, even
            // while a long backlog of missed dates is fired.
            while let Ok(note) = notes.try_recv() {
                if matches!(note, Note::Stop) {
                    return false;
                }
                self.heard(state, note);
            }
            let now = Utc::now();
            let mut due = Vec::new();
            while let Some(Reverse((at, generation, trigger))) = self.heap.peek().cloned() {
                if at > now || due.len() >= MAX_BATCH {
                    break;
                }
                self.heap.pop();
                if self
                    .plans
                    .get(&trigger)
                    .is_some_and(|p| p.generation == generation)
                {
                    due.push((trigger, generation));
                }
            }
            if due.is_empty() {
                return true;
            }
            // Every date due starts at once; their creations share the
            // journal's syncs, then each is waited for.
            let begun: Vec<_> = due
                .into_iter()
                .map(|(trigger, generation)| {
                    let fire = self.begin(state, &trigger, now);
                    (trigger, generation, fire)
                })
                .collect();
            for (trigger, generation, fire) in begun {
                match self.finish(&trigger, fire) {
                    Ok(Some(next)) => self.push(&trigger, next),
                    Ok(None) => {}
                    Err(Retry) => {
                        // Tried again shortly, the same date.
                        let later = now + RETRY_REFUSED;
                        self.heap.push(Reverse((later, generation, trigger)));
                    }
                }
            }
        }
    }

    /// Starts `trigger`'s next date (or skips it, past its
    /// `lateMaximumDelay`), without waiting for it.
    fn begin(&self, state: &AppState, trigger: &TriggerKey, now: DateTime<Utc>) -> Fire {
        let plan = &self.plans[trigger];
        let date = plan.due();
        let next = plan.dates.next_after(date);
        let late = plan.backfill.is_none()
            && plan
                .late_maximum_delay
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .is_some_and(|d| date + d < now);
        let started = if late {
            tracing::info!(
                trigger = %describe(trigger),
                date = %date,
                "a schedule date later than its lateMaximumDelay is skipped"
            );
            Err(Failure::Skip(String::new()))
        } else {
            launch(state, trigger, plan, date, next)
        };
        Fire {
            date,
            next,
            started,
        }
    }

    /// Waits for a fire's execution, then records where its trigger stands;
    /// the trigger's date after that, if any.
    fn finish(&mut self, trigger: &TriggerKey, fire: Fire) -> Result<Option<DateTime<Utc>>, Retry> {
        let Fire {
            date,
            next,
            started,
        } = fire;
        let fired = match started.and_then(settled) {
            Ok(id) => Some((date, id)),
            Err(Failure::Retry) => return Err(Retry),
            Err(Failure::Skip(why)) => {
                if !why.is_empty() {
                    tracing::error!(
                        trigger = %describe(trigger),
                        date = %date,
                        "a schedule date starts no execution: {why}"
                    );
                }
                self.ledger.get(trigger).and_then(|s| s.fired)
            }
        };
        let Some(plan) = self.plans.get_mut(trigger) else {
            return Ok(None);
        };
        let goes_on = match plan.backfill.as_mut() {
            // A backfill's next date, or, past its end, the schedule's.
            Some(b) => {
                match next.filter(|n| *n <= b.end) {
                    Some(n) => b.current = n,
                    None => {
                        plan.next = b.resume;
                        plan.backfill = None;
                    }
                }
                true
            }
            None => match next {
                Some(n) => {
                    plan.next = n;
                    true
                }
                None => false,
            },
        };
        let due = plan.due();
        let mut standing = self.standing(trigger, &self.plans[trigger]);
        standing.fired = fired;
        if let Err(e) = self.ledger.record(trigger, standing, false) {
            // The date fires again after a restart, and finds its
            // execution: nothing starts twice.
            tracing::error!(trigger = %describe(trigger), "recording a schedule's fire: {e}");
        }
        Ok(goes_on.then_some(due))
    }

    /// Plans again the triggers of flow `namespace.id`, as it is now.
    fn replan(&mut self, state: &AppState, namespace: &str, id: &str) {
        let before = ledger::flow_range(&self.plans, namespace, id);
        for trigger in &before {
            self.plans.remove(trigger);
        }
        let stored = state.flows().get(namespace, id);
        if let Some(stored) = &stored {
            self.plan_flow(stored, Utc::now());
        }
        // A trigger the flow no longer has (or a deleted flow's) is
        // forgotten; a disabled one keeps its standing for when it is
        // enabled again.
        let present = |trigger: &TriggerKey| {
            stored.as_ref().is_some_and(|s| {
                s.flow()
                    .triggers
                    .iter()
                    .any(|t| t.id == trigger.2 && matches!(t.kind, TriggerKind::Schedule { .. }))
            })
        };
        let recorded = self.ledger.triggers_of(namespace, id);
        for trigger in recorded.into_iter().filter(|k| !present(k)) {
            self.forget(&trigger);
        }
    }

    /// Plans the enabled Schedule triggers of an enabled flow.
    fn plan_flow(&mut self, stored: &Arc<StoredFlow>, now: DateTime<Utc>) {
        let flow = stored.flow();
        if flow.disabled {
            return;
        }
        for trigger in flow.triggers.iter().filter(|t| !t.disabled) {
            let TriggerKind::Schedule {
                cron,
                with_seconds,
                timezone,
                dates,
                inputs,
                labels,
                recover,
                late_maximum_delay,
                conditions,
                ..
            } = &trigger.kind
            else {
                continue;
            };
            let key = (flow.namespace.clone(), flow.id.clone(), trigger.id.clone());
            let signature = format!(
                "{cron}|{with_seconds}|{}",
                timezone.as_deref().unwrap_or("UTC")
            );
            let dates = Dates {
                cron: CronSchedule::clone(dates),
                conditions: conditions.clone(),
            };
            let recover = recover.unwrap_or(RecoverMissed::All);
            let stood = self.ledger.get(&key).filter(|s| s.dates == signature);
            let disabled = stood.is_some_and(|s| s.disabled);
            let backfill = stood.and_then(|s| s.backfill.clone());
            let next = if disabled {
                stood.map(|s| s.next)
            } else {
                first_date(&dates, stood, recover, now)
            };
            let Some(next) = next else {
                tracing::warn!(trigger = %describe(&key), "a schedule with no date to come never fires");
                continue;
            };
            if self.ledger.get(&key).is_none_or(|s| s.dates != signature) {
                // A new trigger (or new dates): from now on, recorded so
                // that a restart before its first fire recovers it.
                let standing = Standing {
                    next,
                    fired: None,
                    dates: signature.clone(),
                    disabled: false,
                    backfill: None,
                };
                if let Err(e) = self.ledger.record(&key, standing, false) {
                    tracing::error!(trigger = %describe(&key), "recording a new schedule: {e}");
                }
            }
            self.generation += 1;
            self.plans.insert(
                key.clone(),
                Plan {
                    flow: Arc::clone(stored),
                    dates,
                    signature,
                    inputs: inputs.clone(),
                    labels: labels.clone(),
                    late_maximum_delay: *late_maximum_delay,
                    recover,
                    disabled,
                    next,
                    backfill,
                    generation: self.generation,
                },
            );
            let plan = &self.plans[&key];
            if plan.active() {
                let due = plan.due();
                self.push(&key, due);
            }
        }
    }

    fn push(&mut self, trigger: &TriggerKey, at: DateTime<Utc>) {
        if let Some(plan) = self.plans.get(trigger) {
            self.heap
                .push(Reverse((at, plan.generation, trigger.clone())));
        }
    }

    fn forget(&mut self, trigger: &TriggerKey) {
        if let Err(e) = self.ledger.forget(trigger) {
            tracing::error!(trigger = %describe(trigger), "forgetting a schedule: {e}");
        }
    }
}

/// The date a trigger fires first once planned: for a new one (no
/// standing), its first date after `now`; for one that stood, its next
/// date as `recover` says (`ALL`: as it stood, every missed date coming;
/// `LAST`: the last date missed, if it missed any; `NONE`: the first
/// after `now`).
fn first_date(
    dates: &Dates,
    standing: Option<&Standing>,
    recover: RecoverMissed,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let Some(standing) = standing else {
        return dates.next_after(now);
    };
    match recover {
        RecoverMissed::All => Some(standing.next),
        RecoverMissed::Last => match dates.at_or_before(now) {
            Some(last) if last >= standing.next => Some(last),
            _ => Some(standing.next),
        },
        // NONE (and any policy a later engine adds).
        _ => {
            if standing.next > now {
                Some(standing.next)
            } else {
                dates.next_after(now)
            }
        }
    }
}

/// A Schedule's dates: its cron's, but those its `conditions` turn down.
struct Dates {
    cron: CronSchedule,
    conditions: Vec<DateCondition>,
}

/// Dates a condition may turn down in a row before a schedule is taken to
/// have none to come (Kestra looks ten years ahead).
const MAX_TURNED_DOWN: usize = 100_000;

impl Dates {
    /// The first date after `t` the conditions let through.
    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.walk(t, |c, t| c.next_after(t))
    }

    /// The last date before `t` they let through.
    fn previous_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.walk(t, |c, t| c.previous_before(t))
    }

    /// The last date at `t` or before they let through.
    fn at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let first = self.cron.at_or_before(t)?;
        if self.meets(first) {
            return Some(first);
        }
        self.previous_before(first)
    }

    fn walk(
        &self,
        from: DateTime<Utc>,
        step: impl Fn(&CronSchedule, DateTime<Utc>) -> Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let mut t = from;
        for _ in 0..MAX_TURNED_DOWN {
            let d = step(&self.cron, t)?;
            if self.meets(d) {
                return Some(d);
            }
            t = d;
        }
        None
    }

    /// Whether every condition holds for date `d` (its `trigger.date`,
    /// `next` and `previous` the cron's); one that does not evaluate turns
    /// it down, saying why.
    fn meets(&self, d: DateTime<Utc>) -> bool {
        if self.conditions.is_empty() {
            return true;
        }
        let mut trigger = Map::new();
        trigger.insert("date".into(), self.cron.format(d).into());
        for (key, other) in [
            ("next", self.cron.next_after(d)),
            ("previous", self.cron.previous_before(d)),
        ] {
            if let Some(other) = other {
                trigger.insert(key.into(), self.cron.format(other).into());
            }
        }
        let vars = json!({ "trigger": trigger });
        self.conditions.iter().all(|c| {
            c.holds(&vars).unwrap_or_else(|why| {
                tracing::warn!("a Schedule's condition does not evaluate for {d}: {why}");
                false
            })
        })
    }

    fn format(&self, t: DateTime<Utc>) -> String {
        self.cron.format(t)
    }
}

/// A fire to try again later.
struct Retry;

/// A date being fired: its execution launched (or why not).
struct Fire {
    date: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    started: Result<Pending<Started>, Failure>,
}

/// The most dates fired in one batch.
const MAX_BATCH: usize = 4096;

enum Failure {
    Retry,
    /// This date starts nothing (inputs that do not fit the flow, a flow
    /// disabled meanwhile), saying why.
    Skip(String),
}

/// Starts the execution of `trigger`'s `date`, without waiting.
fn launch(
    state: &AppState,
    trigger: &TriggerKey,
    plan: &Plan,
    date: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
) -> Result<Pending<Started>, Failure> {
    let (namespace, flow_id, trigger_id) = trigger;
    let mut variables = Map::new();
    variables.insert("date".into(), plan.dates.format(date).into());
    if let Some(next) = next {
        variables.insert("next".into(), plan.dates.format(next).into());
    }
    if let Some(previous) = plan.dates.previous_before(date) {
        variables.insert("previous".into(), plan.dates.format(previous).into());
    }
    let variables = Value::Object(variables);
    let inputs = inputs(plan, &variables, date).map_err(Failure::Skip)?;
    let (id, labels) = match &plan.backfill {
        None => (
            ExecutionId::for_schedule(namespace, flow_id, trigger_id, date),
            plan.labels.clone(),
        ),
        // A backfill's dates start executions of their own, once each
        // for this backfill, whether or not the schedule fired them.
        Some(b) => {
            let key = format!(
                "{trigger_id}\u{0}backfill\u{0}{}",
                b.start.timestamp_micros()
            );
            let mut labels = plan.labels.clone();
            labels.extend(b.labels.iter().cloned());
            (
                ExecutionId::for_schedule(namespace, flow_id, &key, date),
                labels,
            )
        }
    };
    let launched = state.launcher().launch(Launch {
        flow: &plan.flow,
        inputs,
        labels,
        trigger: Some(execution_trigger(trigger_id, SCHEDULE, variables)),
        id,
        ack: Ack::Receipt,
        schedule_date: None,
    });
    match launched {
        Ok(pending) => Ok(pending),
        Err(LaunchError::Disabled) => Err(Failure::Skip("its flow is disabled".into())),
        Err(LaunchError::Refused(Refused::Stopped)) => Err(Failure::Retry),
        Err(LaunchError::Refused(why)) => {
            tracing::warn!(trigger = %describe(trigger), "a schedule's execution waits: {why:?}");
            Err(Failure::Retry)
        }
    }
}

/// Waits until a fire's execution's creation is durable (or it existed:
/// the date was fired before a crash); its id.
fn settled(pending: Pending<Started>) -> Result<ExecutionId, Failure> {
    let started = pending.wait().map_err(|_| Failure::Retry)?;
    match started.receipt.wait() {
        Ok(()) => Ok(started.id),
        Err(e) => {
            tracing::warn!(execution = %started.id, "a schedule's execution is not durable yet: {e}");
            Err(Failure::Retry)
        }
    }
}

/// The trigger's `inputs`, rendered with its `trigger` variables, typed by
/// the flow's inputs (their defaults filled in).
fn inputs(plan: &Plan, trigger: &Value, date: DateTime<Utc>) -> Result<Map<String, Value>, String> {
    let flow = plan.flow.flow();
    let vars = json!({
        "trigger": trigger,
        "flow": {
            "id": flow.id,
            "namespace": flow.namespace,
            "revision": plan.flow.revision().revision(),
        },
    });
    // A backfill's inputs over the trigger's (Kestra's `generateInputs`).
    let mut written = plan.inputs.clone();
    if let Some(b) = &plan.backfill {
        written.extend(b.inputs.clone());
    }
    let property = Property::compile(&Value::Object(written)).map_err(|e| e.to_string())?;
    let rendered = property
        .render(&JsonContext::at(&vars, date))
        .map_err(|e| e.to_string())?;
    let Value::Object(rendered) = rendered else {
        return Err("its inputs are not a map".into());
    };
    validate_inputs(flow, &rendered).map_err(|e| e.to_string())
}

fn describe((namespace, flow_id, trigger_id): &TriggerKey) -> String {
    format!("{namespace}.{flow_id}.{trigger_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn conditions_turn_down_the_dates_they_do_not_meet() {
        let flow = peregrine_engine::flow::Flow::parse(
            "id: f\nnamespace: n\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n\
             triggers:\n  - id: s\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: \"0 11 * * 1\"\n\
             \x20   conditions:\n      - type: io.kestra.plugin.core.condition.DayWeekInMonth\n\
             \x20       dayOfWeek: MONDAY\n        dayInMonth: FIRST\n",
        )
        .unwrap();
        let TriggerKind::Schedule {
            dates, conditions, ..
        } = &flow.triggers[0].kind
        else {
            panic!("a Schedule");
        };
        let first_monday = Dates {
            cron: CronSchedule::clone(dates),
            conditions: conditions.clone(),
        };
        let d = first_monday.next_after(at("2026-12-03T00:00:00Z")).unwrap();
        assert_eq!(d, at("2026-12-07T11:00:00Z"));
        let d = first_monday.next_after(d).unwrap();
        assert_eq!(
            d,
            at("2027-01-04T11:00:00Z"),
            "the other Mondays are turned down"
        );
        assert_eq!(
            first_monday.at_or_before(at("2026-12-31T00:00:00Z")),
            Some(at("2026-12-07T11:00:00Z"))
        );
    }

    #[test]
    fn a_restart_recovers_the_missed_dates_as_the_trigger_says() {
        let hourly = Dates {
            cron: CronSchedule::parse("0 * * * *", false, None).unwrap(),
            conditions: Vec::new(),
        };
        let now = at("2026-12-03T12:30:00Z");
        let stood = Standing {
            next: at("2026-12-03T09:00:00Z"),
            fired: None,
            dates: String::new(),
            disabled: false,
            backfill: None,
        };
        // New: its first date to come.
        assert_eq!(
            first_date(&hourly, None, RecoverMissed::All, now),
            Some(at("2026-12-03T13:00:00Z"))
        );
        // ALL: from the first missed (9, 10, 11, 12 then fire in order).
        assert_eq!(
            first_date(&hourly, Some(&stood), RecoverMissed::All, now),
            Some(at("2026-12-03T09:00:00Z"))
        );
        // LAST: the last missed only.
        assert_eq!(
            first_date(&hourly, Some(&stood), RecoverMissed::Last, now),
            Some(at("2026-12-03T12:00:00Z"))
        );
        // NONE: the next to come.
        assert_eq!(
            first_date(&hourly, Some(&stood), RecoverMissed::None, now),
            Some(at("2026-12-03T13:00:00Z"))
        );
        // Nothing missed: every policy keeps the next date.
        let ahead = Standing {
            next: at("2026-12-03T13:00:00Z"),
            ..stood
        };
        for recover in [RecoverMissed::All, RecoverMissed::Last, RecoverMissed::None] {
            assert_eq!(
                first_date(&hourly, Some(&ahead), recover, now),
                Some(at("2026-12-03T13:00:00Z")),
                "{recover:?}"
            );
        }
    }
}
