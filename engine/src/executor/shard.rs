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
