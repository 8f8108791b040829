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
                if self.runs.contains_key(&id) {
                    // A redelivered start (a retried request, a replayed
                    // message) must not run the execution twice.
                    return;
                }
                let mut run = Run::new(*new, now);
                run.begin(now);
                self.settle(id, run);
            }
            Message::Kill(id) => {
                if let Some(mut run) = self.runs.remove(&id) {
                    if run.kill(now) {
                        self.settle(id, run);
                    } else {
                        self.runs.insert(id, run);
                    }
                }
            }
        }
    }

    /// Fires every timer due by `now`.
    pub fn fire_timers(&mut self, now: DateTime<Utc>) {
        self.timers.expire(now.timestamp_millis(), &mut self.fired);
        let fired = std::mem::take(&mut self.fired);
        for &(id, task_run) in &fired {
            if let Some(mut run) = self.runs.remove(&id) {
                run.on_timer(task_run, now);
                self.settle(id, run);
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

    fn settle(&mut self, id: ExecutionId, mut run: Run) {
        for timer in run.timers.drain(..) {
            self.timers.insert(timer.deadline_ms, (id, timer.task_run));
        }
        let terminal = run.is_terminal();
        if let Some(Effect::Changed {
            id: last,
            terminal: t,
        }) = self.effects.last_mut()
        {
            if *last == id {
                *t |= terminal;
                self.runs.insert(id, run);
                return;
            }
        }
        self.effects.push(Effect::Changed { id, terminal });
        self.runs.insert(id, run);
    }
}
