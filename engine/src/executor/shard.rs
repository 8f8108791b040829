//! A shard: the executions it owns, its timers, and the state machine that
//! turns messages into changes. No threads and no files: the runtime
//! ([`super::engine`]) feeds it messages and the clock, the journal is a
//! trait, and what the outside world must hear comes out as effects.

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use super::plan::FlowLookup;
use super::run::{NewExecution, Run};
use super::timer::TimerWheel;
use super::worker::{WorkDone, WorkOrder};
use crate::execution::{Execution, ExecutionId};
use crate::journal::{Entry, Journal, NoJournal, Receipt};

/// What a shard is told.
#[derive(Debug)]
pub enum Message {
    Start(Box<NewExecution>),
    Kill(ExecutionId),
    /// A worker's answer.
    WorkDone(Box<WorkDone>),
}

/// What a shard asks the outside world to do, as data.
#[derive(Debug, Clone)]
pub enum Effect {
    /// The execution changed: publish it once `receipt` is durable.
    Changed {
        id: ExecutionId,
        terminal: bool,
        receipt: Receipt,
    },
}

/// One shard's executions and timers.
#[derive(Debug)]
pub struct Shard {
    runs: FxHashMap<ExecutionId, Run>,
    timers: TimerWheel<(ExecutionId, u32)>,
    journal: Box<dyn Journal>,
    effects: Vec<Effect>,
    /// Blocking work for the worker pool, drained by the runtime.
    work: Vec<(ExecutionId, WorkOrder)>,
    fired: Vec<(ExecutionId, u32)>,
}

impl Shard {
    /// A shard that journals nothing.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self::with_journal(now, Box::new(NoJournal))
    }

    pub(crate) fn with_journal(now: DateTime<Utc>, journal: Box<dyn Journal>) -> Self {
        Self {
            runs: FxHashMap::default(),
            timers: TimerWheel::new(now.timestamp_millis()),
            journal,
            effects: Vec::new(),
            work: Vec::new(),
            fired: Vec::new(),
        }
    }

    /// Executions still running here.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    pub fn get(&self, id: ExecutionId) -> Option<&Execution> {
        self.runs.get(&id).map(|r| &r.exec)
    }

    pub fn handle(&mut self, message: Message, now: DateTime<Utc>) {
        match message {
            Message::Start(mut new) => {
                let id = new.id;
                // A redelivered start (a retried request, a replayed message)
                // must not run the execution twice.
                if self.runs.contains_key(&id) {
                    return;
                }
                let receipt = if self.journal.keeps_records() {
                    let created = Entry::Created {
                        namespace: new.flow.namespace.to_string(),
                        flow_id: new.flow.flow_id.to_string(),
                        revision: new.flow.revision(),
                        inputs: serde_json::to_string(&new.inputs).unwrap_or_default(),
                        labels: new.labels.clone(),
                        trigger: new.trigger.as_ref().map(|t| t.to_string()),
                        at_ms: now.timestamp_millis(),
                    };
                    self.journal.append(id, &created, false)
                } else {
                    Receipt::ready()
                };
                let on_created = new.on_created.take();
                let run = self.runs.entry(id).or_insert(Run::new(*new, now));
                if let Some(ack) = on_created {
                    ack(&run.exec, receipt.clone());
                }
                run.begin(now);
                self.settle(id, receipt);
            }
            Message::Kill(id) => {
                let Some(run) = self.runs.get_mut(&id) else {
                    return;
                };
                if run.is_terminal() {
                    return;
                }
                let entry = Entry::Kill {
                    at_ms: now.timestamp_millis(),
                };
                let receipt = self.journal.append(id, &entry, false);
                run.kill(now);
                self.settle(id, receipt);
            }
            Message::WorkDone(done) => {
                let WorkDone {
                    id,
                    task_run,
                    attempt,
                    result,
                } = *done;
                let Some(run) = self.runs.get_mut(&id) else {
                    return;
                };
                if !run.is_waiting_on(task_run) {
                    return;
                }
                let (outputs, error) = match &result {
                    Ok(v) => (Some(v.to_string()), None),
                    Err(e) => (None, Some(e.clone())),
                };
                let entry = Entry::Worked {
                    task_run,
                    attempt,
                    outputs,
                    error,
                    at_ms: now.timestamp_millis(),
                };
                let receipt = self.journal.append(id, &entry, false);
                run.on_work_done(task_run, attempt, result, now);
                self.settle(id, receipt);
            }
        }
    }

    /// Hands the blocking work requested since the last call to `dispatch`.
    pub(crate) fn take_work(&mut self, mut dispatch: impl FnMut(ExecutionId, WorkOrder)) {
        for (id, order) in self.work.drain(..) {
            dispatch(id, order);
        }
    }

    /// Fires every timer due by `now`.
    pub fn fire_timers(&mut self, now: DateTime<Utc>) {
        self.timers.expire(now.timestamp_millis(), &mut self.fired);
        let fired = std::mem::take(&mut self.fired);
        for &(id, task_run) in &fired {
            let Some(run) = self.runs.get_mut(&id) else {
                continue;
            };
            if !run.is_waiting_on(task_run) {
                continue;
            }
            let entry = Entry::Timer {
                task_run,
                at_ms: now.timestamp_millis(),
            };
            let receipt = self.journal.append(id, &entry, false);
            run.on_timer(task_run, now);
            self.settle(id, receipt);
        }
        self.fired = fired;
        self.fired.clear();
    }

    /// When the shard must wake next for its timers, in epoch milliseconds.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.timers.next_deadline()
    }

    /// Hands every effect since the last call to `apply`, with the execution
    /// it concerns; ended executions leave the shard afterwards.
    pub fn drain(&mut self, mut apply: impl FnMut(&Effect, &Execution)) {
        for effect in std::mem::take(&mut self.effects) {
            let Effect::Changed { id, terminal, .. } = &effect;
            if let Some(run) = self.runs.get(id) {
                apply(&effect, &run.exec);
            }
            if *terminal {
                self.runs.remove(id);
            }
        }
    }

    /// Rebuilds an execution from its journal and resumes it: its timers keep
    /// their original deadlines. `resolve` finds the flow revision it ran.
    pub(crate) fn restore(
        &mut self,
        id: ExecutionId,
        entries: Vec<Entry>,
        resolve: &FlowLookup<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let mut entries = entries.into_iter();
        let Some(Entry::Created {
            namespace,
            flow_id,
            revision,
            inputs,
            labels,
            trigger,
            at_ms,
        }) = entries.next()
        else {
            return Err("its journal does not start with its creation".into());
        };
        let flow = resolve(&namespace, &flow_id, revision)
            .ok_or_else(|| format!("flow {namespace}.{flow_id} revision {revision} is gone"))?;
        let inputs = match serde_json::from_str(&inputs) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err("its journaled inputs are not a JSON object".into()),
        };
        let trigger = trigger.and_then(|t| serde_json::from_str(&t).ok());
        let created_at = instant(at_ms);
        let new = NewExecution {
            id,
            flow,
            inputs,
            labels,
            trigger,
            on_created: None,
        };
        let mut run = Run::new(new, created_at);
        run.begin(created_at);
        for entry in entries {
            match entry {
                Entry::Timer { task_run, at_ms } => run.on_timer(task_run, instant(at_ms)),
                Entry::Kill { at_ms } => {
                    run.kill(instant(at_ms));
                }
                Entry::Worked {
                    task_run,
                    attempt,
                    outputs,
                    error,
                    at_ms,
                } => {
                    let result = match (outputs, error) {
                        (Some(text), _) => serde_json::from_str(&text).map_err(|e| e.to_string()),
                        (None, Some(e)) => Err(e),
                        (None, None) => Err("the worker's answer was empty".into()),
                    };
                    run.on_work_done(task_run, attempt, result, instant(at_ms));
                }
                Entry::Redispatched { task_run, at_ms } => {
                    run.redispatch(task_run, instant(at_ms));
                }
                Entry::Created { .. } | Entry::Ended { .. } => {
                    return Err("its journal has a record out of place".into());
                }
            }
        }
        run.retain_waiting_timers();
        // Work dispatched before the restart has no answer: run it again.
        run.work.clear();
        let mut receipt = Receipt::ready();
        for task_run in run.waiting_work() {
            let entry = Entry::Redispatched {
                task_run,
                at_ms: now.timestamp_millis(),
            };
            receipt = receipt.max(self.journal.append(id, &entry, false));
            run.redispatch(task_run, now);
        }
        self.runs.insert(id, run);
        self.settle(id, receipt);
        Ok(())
    }

    /// Takes a run's timer requests, journals its end, records the change.
    fn settle(&mut self, id: ExecutionId, receipt: Receipt) {
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        for timer in run.timers.drain(..) {
            self.timers.insert(timer.deadline_ms, (id, timer.task_run));
        }
        self.work
            .extend(run.work.drain(..).map(|order| (id, order)));
        let terminal = run.is_terminal();
        let mut receipt = receipt;
        if terminal && self.journal.keeps_records() {
            let now = run.exec.history().end_date().unwrap_or_else(Utc::now);
            let ended = Entry::Ended {
                execution: run.exec.to_json(now).to_string(),
                at_ms: now.timestamp_millis(),
            };
            receipt = receipt.max(self.journal.append(id, &ended, true));
        }
        match self.effects.last_mut() {
            Some(Effect::Changed {
                id: last,
                terminal: t,
                receipt: r,
            }) if *last == id => {
                *t |= terminal;
                *r = std::mem::replace(r, Receipt::ready()).max(receipt);
            }
            _ => self.effects.push(Effect::Changed {
                id,
                terminal,
                receipt,
            }),
        }
    }
}

fn instant(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::execution::{Id, State};
    use crate::executor::{FlowRevision, NewExecution};
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

    fn start(shard: &mut Shard, yaml: &str, raw_id: u128, now: DateTime<Utc>) -> ExecutionId {
        let flow = Arc::new(FlowRevision::new(Arc::new(Flow::parse(yaml).unwrap())));
        let mut new = NewExecution::new(flow, serde_json::Map::new());
        new.id = Id::from_u128(raw_id);
        let id = new.id;
        shard.handle(Message::Start(Box::new(new)), now);
        id
    }

    /// Changes drained: (id, terminal, state, task runs).
    fn effects(shard: &mut Shard) -> Vec<(ExecutionId, bool, State, usize)> {
        let mut out = Vec::new();
        shard.drain(|Effect::Changed { id, terminal, .. }, exec| {
            out.push((*id, *terminal, exec.state(), exec.task_runs().len()))
        });
        out
    }

    #[test]
    fn a_sleep_waits_on_the_timer_wheel_then_the_execution_ends() {
        let mut shard = Shard::new(t(0));
        let id = start(&mut shard, SLEEPY, 1, t(0));
        assert_eq!(
            effects(&mut shard),
            vec![(id, false, State::Running, 2)],
            "the first Return ran inline and the Sleep waits"
        );
        let wake = shard.next_deadline_ms().unwrap();
        assert!(
            wake <= t(2_000).timestamp_millis(),
            "the shard wakes by the deadline"
        );

        shard.fire_timers(t(1_999));
        assert!(effects(&mut shard).is_empty(), "nothing fires early");

        shard.fire_timers(t(2_000));
        assert_eq!(effects(&mut shard), vec![(id, true, State::Success, 3)]);
        assert!(shard.is_empty(), "an ended execution leaves the shard");
        assert_eq!(shard.next_deadline_ms(), None);
    }

    #[test]
    fn kill_ends_running_task_runs_and_a_late_timer_changes_nothing() {
        let mut shard = Shard::new(t(0));
        let id = start(&mut shard, SLEEPY, 2, t(0));
        effects(&mut shard);
        shard.handle(Message::Kill(id), t(500));
        let exec = shard.get(id).unwrap();
        assert_eq!(exec.state(), State::Killed);
        assert_eq!(exec.task_runs()[1].state(), State::Killed);
        assert_eq!(exec.task_runs()[0].state(), State::Success);
        assert_eq!(effects(&mut shard), vec![(id, true, State::Killed, 2)]);
        shard.fire_timers(t(5_000));
        assert!(effects(&mut shard).is_empty());
        shard.handle(Message::Kill(id), t(6_000));
        assert!(
            effects(&mut shard).is_empty(),
            "killing an ended execution is a no-op"
        );
    }

    #[test]
    fn a_redelivered_start_does_not_run_twice() {
        let mut shard = Shard::new(t(0));
        let id = start(&mut shard, SLEEPY, 3, t(0));
        start(&mut shard, SLEEPY, 3, t(10));
        assert_eq!(shard.len(), 1);
        assert_eq!(shard.get(id).unwrap().task_runs().len(), 2);
    }

    #[test]
    fn executions_on_one_shard_interleave_on_their_own_timers() {
        let mut shard = Shard::new(t(0));
        let a = start(&mut shard, SLEEPY, 10, t(0));
        let b = start(&mut shard, SLEEPY, 11, t(1_000));
        effects(&mut shard);
        shard.fire_timers(t(2_500));
        let ended: Vec<_> = effects(&mut shard)
            .into_iter()
            .map(|(id, terminal, s, _)| (id, terminal, s))
            .collect();
        assert_eq!(ended, vec![(a, true, State::Success)]);
        assert_eq!(shard.get(b).unwrap().state(), State::Running);
        shard.fire_timers(t(3_000));
        assert_eq!(effects(&mut shard)[0].2, State::Success);
    }

    /// Records what the shard journals, in memory.
    #[derive(Debug, Default, Clone)]
    struct MemJournal(std::sync::Arc<std::sync::Mutex<Vec<(ExecutionId, Entry, bool)>>>);

    impl Journal for MemJournal {
        fn append(&mut self, id: ExecutionId, entry: &Entry, terminal: bool) -> Receipt {
            self.0.lock().unwrap().push((id, entry.clone(), terminal));
            Receipt::ready()
        }
    }

    #[test]
    fn the_journal_records_causes_and_a_replay_resumes_the_same_execution() {
        let journal = MemJournal::default();
        let mut shard = Shard::with_journal(t(0), Box::new(journal.clone()));
        let id = start(&mut shard, SLEEPY, 7, t(0));
        let before = shard.get(id).unwrap().clone();
        {
            let log = journal.0.lock().unwrap();
            assert_eq!(log.len(), 1);
            assert!(
                matches!(&log[0], (i, Entry::Created { flow_id, at_ms, .. }, false)
                if *i == id && flow_id == "sleepy" && *at_ms == t(0).timestamp_millis())
            );
        }

        // A fresh shard replays the journal: same task runs, same ids, and
        // the Sleep waits for its original deadline.
        let entries: Vec<Entry> = journal
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.1.clone())
            .collect();
        let flow = Arc::new(FlowRevision::new(Arc::new(Flow::parse(SLEEPY).unwrap())));
        let mut replayed = Shard::new(t(1_000));
        replayed
            .restore(
                id,
                entries,
                &|_: &str, _: &str, _: u32| Some(Arc::clone(&flow)),
                t(1_000),
            )
            .unwrap();
        let after = replayed.get(id).unwrap();
        let ids = |e: &Execution| e.task_runs().iter().map(|t| t.id()).collect::<Vec<_>>();
        assert_eq!(ids(after), ids(&before));
        assert_eq!(after.state(), State::Running);
        replayed.fire_timers(t(1_999));
        assert_eq!(replayed.get(id).unwrap().task_runs().len(), 2);
        replayed.fire_timers(t(2_000));
        assert!(
            effects(&mut replayed)
                .iter()
                .any(|e| e.1 && e.2 == State::Success)
        );

        // The original shard journals the timer, then the end as terminal.
        shard.fire_timers(t(2_000));
        let log = journal.0.lock().unwrap();
        assert!(matches!(
            log[1],
            (_, Entry::Timer { task_run: 1, .. }, false)
        ));
        assert!(matches!(&log[2], (_, Entry::Ended { execution, .. }, true)
            if execution.contains("SUCCESS")));
    }
}
