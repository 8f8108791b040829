//! A shard: the executions it owns, its timers, and the state machine that
//! turns messages into changes. No threads, no I/O: the runtime
//! ([`super::engine`]) feeds it messages and the clock and applies its effects.

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use super::run::{NewExecution, Run};
use super::timer::TimerWheel;
use crate::execution::{Execution, ExecutionId};

/// What a shard is told.
#[derive(Debug)]
pub enum Message {
    Start(Box<NewExecution>),
    Kill(ExecutionId),
}

/// What a shard asks the outside world to do, as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The execution changed: publish it to observers.
    Changed { id: ExecutionId, terminal: bool },
}

/// One shard's executions and timers.
#[derive(Debug)]
pub struct Shard {
    runs: FxHashMap<ExecutionId, Run>,
    timers: TimerWheel<(ExecutionId, u32)>,
    effects: Vec<Effect>,
    fired: Vec<(ExecutionId, u32)>,
}

impl Shard {
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            runs: FxHashMap::default(),
            timers: TimerWheel::new(now.timestamp_millis()),
            effects: Vec::new(),
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
            Message::Start(new) => {
                let id = new.id;
                // A redelivered start (a retried request, a replayed message)
                // must not run the execution twice.
                if let std::collections::hash_map::Entry::Vacant(slot) = self.runs.entry(id) {
                    slot.insert(Run::new(*new, now)).begin(now);
                    self.settle(id);
                }
            }
            Message::Kill(id) => {
                if self.runs.get_mut(&id).is_some_and(|run| run.kill(now)) {
                    self.settle(id);
                }
            }
        }
    }

    /// Fires every timer due by `now`.
    pub fn fire_timers(&mut self, now: DateTime<Utc>) {
        self.timers.expire(now.timestamp_millis(), &mut self.fired);
        let fired = std::mem::take(&mut self.fired);
        for &(id, task_run) in &fired {
            if let Some(run) = self.runs.get_mut(&id) {
                run.on_timer(task_run, now);
                self.settle(id);
            }
        }
        self.fired = fired;
        self.fired.clear();
    }

    /// When the next timer is due, in epoch milliseconds.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.timers.next_deadline()
    }

    /// Hands every effect since the last call to `apply`, with the execution
    /// it concerns; ended executions leave the shard afterwards.
    pub fn drain(&mut self, mut apply: impl FnMut(Effect, &Execution)) {
        for effect in std::mem::take(&mut self.effects) {
            let Effect::Changed { id, terminal } = effect;
            if let Some(run) = self.runs.get(&id) {
                apply(effect, &run.exec);
            }
            if terminal {
                self.runs.remove(&id);
            }
        }
    }

    /// Takes a run's timer requests and records that it changed.
    fn settle(&mut self, id: ExecutionId) {
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        for timer in run.timers.drain(..) {
            self.timers.insert(timer.deadline_ms, (id, timer.task_run));
        }
        let terminal = run.is_terminal();
        match self.effects.last_mut() {
            Some(Effect::Changed {
                id: last,
                terminal: t,
            }) if *last == id => *t |= terminal,
            _ => self.effects.push(Effect::Changed { id, terminal }),
        }
    }
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

    fn effects(shard: &mut Shard) -> Vec<(Effect, State, usize)> {
        let mut out = Vec::new();
        shard.drain(|e, exec| out.push((e, exec.state(), exec.task_runs().len())));
        out
    }

    #[test]
    fn a_sleep_waits_on_the_timer_wheel_then_the_execution_ends() {
        let mut shard = Shard::new(t(0));
        let id = start(&mut shard, SLEEPY, 1, t(0));
        assert_eq!(
            effects(&mut shard),
            vec![(
                Effect::Changed {
                    id,
                    terminal: false
                },
                State::Running,
                2
            )],
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
        assert_eq!(
            effects(&mut shard),
            vec![(Effect::Changed { id, terminal: true }, State::Success, 3)]
        );
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
        assert_eq!(
            effects(&mut shard),
            vec![(Effect::Changed { id, terminal: true }, State::Killed, 2)]
        );
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
            .map(|(e, s, _)| (e, s))
            .collect();
        assert_eq!(
            ended,
            vec![(
                Effect::Changed {
                    id: a,
                    terminal: true
                },
                State::Success
            )]
        );
        assert_eq!(shard.get(b).unwrap().state(), State::Running);
        shard.fire_timers(t(3_000));
        assert_eq!(effects(&mut shard)[0].1, State::Success);
    }
}
