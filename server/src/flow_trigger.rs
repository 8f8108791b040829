//! Flow triggers (`io.kestra.plugin.core.trigger.Flow`): when an execution
//! ends, every enabled flow whose Flow trigger its end meets (the
//! trigger's `states`, `conditions` and `preconditions`) starts an
//! execution. Evaluated on a thread of its own, fed by the engine's
//! observer with the final records (nothing is sent while no flow has a
//! Flow trigger), so the shards' hot path pays one channel send per end.
//! A trigger on a state that is not an end (`PAUSED`, `RUNNING`...) has
//! the executions in that state sent at each change, copied; each entry
//! into the state fires once (its downstream id counts the entries).
//!
//! The downstream execution's id derives from (its flow, the trigger, the
//! upstream execution), so looking at the same end again starts nothing
//! twice. Ends seen are not journaled one by one: a watermark, the latest
//! end date handled, is made durable at most once a second, and a start
//! looks again at every execution the engine holds that ended since a
//! minute before it. An end the previous process saw but did not act on
//! (a `kill -9` between the two) is acted on then, once.
//!
//! The same ends disable a Schedule whose `stopAfter` names the state an
//! execution it started ended in.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use peregrine_engine::expression::{JsonContext, Property};
use peregrine_engine::flow::{Condition, Multiple, TriggerKind, Upstream, validate_inputs};
use peregrine_engine::{Ack, ExecutionId, Receipt, Record, State, execution_trigger};
use peregrine_wal::{Key, Kind, Wal};
use serde_json::{Map, Value};

use crate::state::{AppState, Launch, LaunchError, Refused};
use crate::store::StoredFlow;

/// The trigger type executions it starts name.
const FLOW_TRIGGER: &str = "io.kestra.plugin.core.trigger.Flow";
/// How far before the watermark a start looks again.
const LOOK_BACK: Duration = Duration::from_secs(60);
/// How often the watermark is made durable, at most.
const MARK_EVERY: Duration = Duration::from_secs(1);
/// How long a start the engine refused waits before it is tried again.
const RETRY_REFUSED: Duration = Duration::from_millis(200);

enum Event {
    Ended(Record, Receipt),
    /// An execution is in a state (not an end) some trigger listens to.
    Entered(Record, Receipt),
    /// A flow changed: the triggers are read again.
    Flows,
    Stop,
}

/// One Flow trigger of one flow.
struct Watch {
    flow: Arc<StoredFlow>,
    trigger_id: String,
    inputs: Map<String, Value>,
    states: Vec<State>,
    /// Those one end meets alone.
    conditions: Vec<Condition>,
    /// Those met across ends, within a window.
    multiples: Vec<Multiple>,
    labels: Vec<(String, String)>,
}

/// A Schedule with a `stopAfter`: its flow, its id, the states.
struct Stop {
    namespace: String,
    flow_id: String,
    trigger_id: String,
    states: Vec<State>,
}

/// What the evaluator acts on: the Flow triggers, and the Schedules that
/// stop after some end.
struct Rules {
    watches: Vec<Watch>,
    stops: Vec<Stop>,
}

impl Rules {
    fn is_empty(&self) -> bool {
        self.watches.is_empty() && self.stops.is_empty()
    }

    /// The states that are not ends some trigger listens to, as a mask of
    /// [`state_bit`]s.
    fn live(&self) -> u32 {
        self.watches
            .iter()
            .flat_map(|w| w.states.iter())
            .filter(|s| !s.is_terminal())
            .fold(0, |mask, s| mask | state_bit(*s))
    }
}

fn state_bit(state: State) -> u32 {
    let index = State::ALL.iter().position(|s| *s == state).unwrap_or(0);
    1 << index
}

/// The states of `mask`.
fn states_of(mask: u32) -> Vec<State> {
    State::ALL
        .into_iter()
        .filter(|s| mask & state_bit(*s) != 0)
        .collect()
}

/// Entries into a live state the evaluator remembers acting on: a change
/// in the same state is sent at each of its steps.
const MAX_ENTERED: usize = 10_000;

/// The Flow triggers' evaluator.
#[derive(Debug)]
pub(crate) struct FlowTriggers {
    /// Some flow has a Flow trigger (or a Schedule a `stopAfter`): ends
    /// are worth sending. Set by the evaluator as it reads the flows.
    watching: Arc<AtomicBool>,
    /// The states that are not ends some Flow trigger listens to
    /// ([`state_bit`]s): an execution in one is sent at each change.
    live: Arc<AtomicU32>,
    /// Set once, at start: read on the shards' threads without a lock.
    sender: std::sync::OnceLock<flume::Sender<Event>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    mark: Mutex<Option<Watermark>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FlowTriggers {
    pub fn new(mark: Watermark) -> Self {
        Self {
            watching: Arc::new(AtomicBool::new(false)),
            live: Arc::new(AtomicU32::new(0)),
            sender: std::sync::OnceLock::new(),
            thread: Mutex::new(None),
            mark: Mutex::new(Some(mark)),
        }
    }

    /// An execution ended (from the engine's observer, on a shard's
    /// thread): sent on if some flow listens.
    pub fn ended(&self, record: &Record, receipt: &Receipt) {
        if !self.watching.load(Ordering::Acquire) {
            return;
        }
        if let Some(tx) = self.sender.get() {
            let _ = tx.send(Event::Ended(record.clone(), receipt.clone()));
        }
    }

    /// An execution changed without ending (from the engine's observer,
    /// on a shard's thread): sent on, copied, if some Flow trigger listens
    /// to the state it is in. (A trigger on `RUNNING` costs a copy of the
    /// execution at each of its steps.)
    pub fn changed(&self, execution: &peregrine_engine::Execution, receipt: &Receipt) {
        let live = self.live.load(Ordering::Acquire);
        if live & state_bit(execution.state()) == 0 {
            return;
        }
        if let Some(tx) = self.sender.get() {
            let _ = tx.send(Event::Entered(Record::of(execution), receipt.clone()));
        }
    }

    /// Looks again at the ends the previous process may not have acted
    /// on, then acts on every end from now on. Once.
    pub fn start(&self, state: &AppState) -> std::io::Result<()> {
        let Some(mut mark) = lock(&self.mark).take() else {
            return Ok(());
        };
        if mark.at.is_none() {
            // A first start: a crash from here on has a mark to look back
            // from.
            mark.advance(Utc::now());
            mark.save();
        }
        let (tx, rx) = flume::unbounded();
        let rules = rules(state);
        self.watching.store(!rules.is_empty(), Ordering::Release);
        self.live.store(rules.live(), Ordering::Release);
        let _ = self.sender.set(tx);
        let state = state.clone();
        let watching = Arc::clone(&self.watching);
        let live = Arc::clone(&self.live);
        let thread = std::thread::Builder::new()
            .name("flow-triggers".into())
            .spawn(move || {
                Evaluator {
                    rules,
                    mark,
                    watching,
                    live,
                    entered: Entered::default(),
                }
                .run(&state, &rx)
            })?;
        *lock(&self.thread) = Some(thread);
        Ok(())
    }

    /// A flow changed: the evaluator reads the flows again (once for a
    /// burst of changes). Until it has, every end is sent on, to be safe,
    /// and the changes in the states the flows now listen to.
    pub fn reconcile(&self, state: &AppState) {
        if let Some(tx) = self.sender.get() {
            self.watching.store(true, Ordering::Release);
            // The live states the flows listen to now (the evaluator reads
            // the rules again before its next end).
            self.live.store(rules(state).live(), Ordering::Release);
            let _ = tx.send(Event::Flows);
        }
    }

    /// Stops once what was sent is handled. Blocks.
    pub fn stop(&self) {
        self.watching.store(false, Ordering::Release);
        // The sender stays: once the thread is gone, a send fails at once.
        if let Some(tx) = self.sender.get() {
            let _ = tx.send(Event::Stop);
        }
        if let Some(thread) = lock(&self.thread).take()
            && thread.join().is_err()
        {
            tracing::error!("the flow triggers' thread panicked");
        }
    }
}

/// Every enabled Flow trigger of every enabled flow, and every Schedule
/// with a `stopAfter`.
fn rules(state: &AppState) -> Rules {
    let mut rules = Rules {
        watches: Vec::new(),
        stops: Vec::new(),
    };
    for stored in state.flows().all() {
        let flow = stored.flow();
        if flow.disabled {
            continue;
        }
        for trigger in flow.triggers.iter().filter(|t| !t.disabled) {
            match &trigger.kind {
                TriggerKind::Flow {
                    inputs,
                    states,
                    conditions,
                    labels,
                } => {
                    let (mut plain, mut multiples) = (Vec::new(), Vec::new());
                    for c in conditions {
                        match c {
                            Condition::Multiple(m) => multiples.push((**m).clone()),
                            other => plain.push(other.clone()),
                        }
                    }
                    rules.watches.push(Watch {
                        flow: Arc::clone(&stored),
                        trigger_id: trigger.id.clone(),
                        inputs: inputs.clone(),
                        states: states.clone(),
                        conditions: plain,
                        multiples,
                        labels: labels.clone(),
                    });
                }
                TriggerKind::Schedule { stop_after, .. } if !stop_after.is_empty() => {
                    rules.stops.push(Stop {
                        namespace: flow.namespace.clone(),
                        flow_id: flow.id.clone(),
                        trigger_id: trigger.id.clone(),
                        states: stop_after.clone(),
                    });
                }
                _ => {}
            }
        }
    }
    rules
}

struct Evaluator {
    rules: Rules,
    mark: Watermark,
    watching: Arc<AtomicBool>,
    live: Arc<AtomicU32>,
    entered: Entered,
}

/// The latest entries into live states acted on: (execution, state, how
/// many times it entered it).
#[derive(Default)]
struct Entered {
    set: std::collections::HashSet<(ExecutionId, State, u32)>,
    order: std::collections::VecDeque<(ExecutionId, State, u32)>,
}

impl Entered {
    /// Whether this entry is new (and remembered now).
    fn first(&mut self, entry: (ExecutionId, State, u32)) -> bool {
        if !self.set.insert(entry) {
            return false;
        }
        self.order.push_back(entry);
        if self.order.len() > MAX_ENTERED
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

impl Evaluator {
    fn run(mut self, state: &AppState, events: &flume::Receiver<Event>) {
        self.recover(state);
        let mut marked = Instant::now();
        let mut stale = false;
        loop {
            let event = match events.recv_timeout(MARK_EVERY) {
                Ok(event) => Some(event),
                Err(flume::RecvTimeoutError::Timeout) => None,
                Err(flume::RecvTimeoutError::Disconnected) => return,
            };
            match event {
                Some(Event::Stop) => {
                    self.mark.save();
                    return;
                }
                // Read again before the next end or tick: a burst of flow
                // changes (an import) reads the flows once.
                Some(Event::Flows) => stale = true,
                // Commit before externalize: the end is durable first.
                Some(Event::Ended(record, receipt) | Event::Entered(record, receipt))
                    if receipt.wait().is_ok() =>
                {
                    if std::mem::take(&mut stale) {
                        self.reread(state);
                    }
                    self.ended(state, &record, false);
                }
                Some(Event::Ended(..) | Event::Entered(..)) | None => {}
            }
            if marked.elapsed() >= MARK_EVERY {
                if std::mem::take(&mut stale) && events.is_empty() {
                    self.reread(state);
                }
                self.mark.save();
                marked = Instant::now();
            }
        }
    }

    /// Reads the flows' rules again; ends are sent only if some rule
    /// wants them.
    fn reread(&mut self, state: &AppState) {
        self.rules = rules(state);
        self.watching
            .store(!self.rules.is_empty(), Ordering::Release);
        self.live.store(self.rules.live(), Ordering::Release);
    }

    /// Looks again at the ends since a minute before the watermark.
    fn recover(&mut self, state: &AppState) {
        let Some(since) = self.mark.at else { return };
        if self.rules.is_empty() {
            return;
        }
        let since = since - chrono::Duration::from_std(LOOK_BACK).unwrap_or_default();
        let ended = match state.executions().ended_since(since) {
            Ok(ended) => ended,
            Err(e) => {
                tracing::error!("the flow triggers cannot look at recent ends again: {e:?}");
                return;
            }
        };
        tracing::info!(
            executions = ended.len(),
            "flow triggers look again at the ends since {since}"
        );
        for record in ended {
            self.ended(state, &record, true);
        }
        // And the executions in a live state now: an entry the previous
        // process did not act on is acted on (one it did starts nothing).
        let live = self.rules.live();
        if live != 0 {
            match state.executions().in_states(states_of(live)) {
                Ok(found) => {
                    for record in found {
                        self.ended(state, &record, true);
                    }
                }
                Err(e) => {
                    tracing::error!("the flow triggers cannot look at live executions: {e:?}")
                }
            }
        }
    }

    /// Execution `record` ended, or entered a live state: every trigger it
    /// meets starts its flow. Looked at again (`again`), it only fires
    /// flows saved before it.
    fn ended(&mut self, state: &AppState, record: &Record, again: bool) {
        let end = record.end_date().unwrap_or_else(|| record.state_date());
        let nth = record.times_in(record.state());
        if record.is_terminal() {
            self.mark.advance(end);
            self.stop_after(state, record);
        } else if !self.entered.first((record.id(), record.state(), nth)) {
            return;
        }
        // What the conditions read (its outputs parsed, its labels copied)
        // is built only for an end some trigger listens to.
        let (namespace, flow_id, ended_in) = (record.namespace(), record.flow_id(), record.state());
        let listening = |watch: &&Watch| {
            let flow = watch.flow.flow();
            // Kestra's `removeUnwanted`: a flow does not trigger itself.
            !(flow.namespace == namespace && flow.id == flow_id)
                && watch.states.contains(&ended_in)
                && !(again && watch.flow.updated().is_some_and(|saved| saved > end))
        };
        let mut listeners = self.rules.watches.iter().filter(listening).peekable();
        if listeners.peek().is_none() {
            return;
        }
        let up = upstream(record);
        for watch in listeners {
            let flow = watch.flow.flow();
            let vars = up.variables(&flow.namespace, &flow.id, watch.flow.revision().revision());
            let now = Utc::now();
            let met = watch.conditions.iter().try_fold(true, |all, c| {
                c.holds(&up, &vars, now).map(|holds| all && holds)
            });
            match met {
                Ok(true) if watch.multiples.is_empty() => start(state, watch, &up, &vars, nth),
                Ok(true) => Self::count(&mut self.mark, state, watch, &up, &vars, nth, now),
                Ok(false) => {}
                Err(why) => tracing::warn!(
                    flow = %format!("{}.{}", flow.namespace, flow.id),
                    trigger = %watch.trigger_id,
                    upstream = %up.id,
                    "a Flow trigger's condition does not evaluate: {why}"
                ),
            }
        }
    }
}

impl Evaluator {
    /// `up` met `watch`'s own conditions: it counts in the windows of its
    /// multiple conditions, and once each has all its conditions met the
    /// trigger fires (and the windows that reset on success start afresh).
    /// The windows are made durable after the start is: a crash between
    /// the two counts the end again, and fires the same execution.
    fn count(
        mark: &mut Watermark,
        state: &AppState,
        watch: &Watch,
        up: &Upstream,
        vars: &Value,
        nth: u32,
        now: DateTime<Utc>,
    ) {
        let flow = watch.flow.flow();
        let mut complete = true;
        let mut counted = Vec::with_capacity(watch.multiples.len());
        for m in &watch.multiples {
            let key: WindowKey = (
                flow.namespace.clone(),
                flow.id.clone(),
                watch.trigger_id.clone(),
                m.id.clone(),
            );
            let mut window = mark
                .windows
                .get(&key)
                .filter(|w| w.holds(now))
                .cloned()
                .unwrap_or_else(|| Window::open(m, now));
            if !window.holds(now) {
                // Outside the hours it counts in (a daily window).
                complete = false;
                continue;
            }
            let mut changed = false;
            if !window.has_counted(up.id) {
                for (id, c) in &m.conditions {
                    match c.holds(up, vars, now) {
                        Ok(true) => {
                            window.met.insert(id.clone());
                        }
                        Ok(false) => {}
                        Err(why) => tracing::warn!(
                            flow = %format!("{}.{}", flow.namespace, flow.id),
                            trigger = %watch.trigger_id,
                            condition = %format!("{}.{id}", m.id),
                            "a Flow trigger's condition does not evaluate: {why}"
                        ),
                    }
                }
                window.count(up.id, now);
                changed = true;
            }
            complete &= m.conditions.iter().all(|(id, _)| window.met.contains(id));
            counted.push((key, window, m, changed));
        }
        if complete {
            start(state, watch, up, vars, nth);
        }
        for (key, mut window, m, mut changed) in counted {
            if complete && m.reset_on_success {
                window = Window::open(m, now);
                window.count(up.id, now);
                changed = true;
            }
            if changed {
                mark.save_window(key, window);
            }
        }
    }

    /// Disables the Schedule that started `record`, if its `stopAfter`
    /// names the state it ended in (Kestra's trigger context `disabled`).
    fn stop_after(&self, state: &AppState, record: &Record) {
        let mut stops = self
            .rules
            .stops
            .iter()
            .filter(|s| s.namespace == record.namespace() && s.flow_id == record.flow_id());
        let Some(first) = stops.next() else { return };
        let Some(trigger) = record.trigger() else {
            return;
        };
        if trigger["type"] != peregrine_engine::flow::SCHEDULE {
            return;
        }
        let stop = std::iter::once(first)
            .chain(stops)
            .find(|s| trigger["id"] == s.trigger_id.as_str());
        if let Some(stop) = stop
            && stop.states.contains(&record.state())
        {
            let key = (
                stop.namespace.clone(),
                stop.flow_id.clone(),
                stop.trigger_id.clone(),
            );
            tracing::info!(
                trigger = %format!("{}.{}.{}", key.0, key.1, key.2),
                execution = %record.id(),
                state = record.state().as_str(),
                "a Schedule stops after this end (stopAfter): disabled"
            );
            state.schedules().set_disabled_blocking(key, true);
        }
    }
}

/// What the conditions read of an ended execution.
fn upstream(record: &Record) -> Upstream {
    Upstream {
        id: record.id(),
        namespace: record.namespace().to_owned(),
        flow_id: record.flow_id().to_owned(),
        flow_revision: record.flow_revision(),
        state: record.state(),
        start_date: record.start_date(),
        labels: record
            .labels()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        outputs: record.outputs(),
    }
}

/// Starts `watch`'s flow for `up`, and waits until it is durable (or
/// existed: this end was acted on before). `nth`: how many times `up`
/// entered its state (a state that is not an end can come again).
fn start(state: &AppState, watch: &Watch, up: &Upstream, vars: &Value, nth: u32) {
    let flow = watch.flow.flow();
    let name = format!("{}.{}", flow.namespace, flow.id);
    let inputs = match inputs(watch, vars) {
        Ok(inputs) => inputs,
        Err(why) => {
            tracing::warn!(flow = %name, trigger = %watch.trigger_id, upstream = %up.id,
                "a Flow trigger starts nothing: {why}");
            return;
        }
    };
    let id = if up.state.is_terminal() {
        ExecutionId::for_upstream(&flow.namespace, &flow.id, &watch.trigger_id, up.id)
    } else {
        ExecutionId::for_upstream_state(
            &flow.namespace,
            &flow.id,
            &watch.trigger_id,
            up.id,
            up.state.as_str(),
            nth,
        )
    };
    loop {
        let launched = state.launcher().launch(Launch {
            flow: &watch.flow,
            inputs: inputs.clone(),
            labels: watch.labels.clone(),
            trigger: Some(execution_trigger(
                &watch.trigger_id,
                FLOW_TRIGGER,
                up.trigger_variables(),
            )),
            id,
            ack: Ack::Receipt,
            schedule_date: None,
        });
        match launched {
            Ok(pending) => {
                let durable = pending
                    .wait()
                    .map_err(|_| Refused::Stopped)
                    .and_then(|s| s.receipt.wait().map_err(Refused::from));
                match durable {
                    Ok(()) => return,
                    Err(Refused::Stopped) => return,
                    Err(why) => {
                        tracing::warn!(flow = %name, "a Flow trigger's start waits: {why:?}")
                    }
                }
            }
            Err(LaunchError::Disabled) => return,
            Err(LaunchError::Refused(Refused::Stopped)) => return,
            Err(LaunchError::Refused(why)) => {
                tracing::warn!(flow = %name, "a Flow trigger's start waits: {why:?}");
            }
        }
        std::thread::sleep(RETRY_REFUSED);
    }
}

/// The trigger's `inputs`, rendered over the upstream execution, typed by
/// the flow's inputs.
fn inputs(watch: &Watch, vars: &Value) -> Result<Map<String, Value>, String> {
    let property =
        Property::compile(&Value::Object(watch.inputs.clone())).map_err(|e| e.to_string())?;
    let rendered = property
        .render(&JsonContext::new(vars))
        .map_err(|e| e.to_string())?;
    let Value::Object(rendered) = rendered else {
        return Err("its inputs are not a map".into());
    };
    validate_inputs(watch.flow.flow(), &rendered).map_err(|e| e.to_string())
}

/// A multiple condition of a trigger: the flow's namespace and id, the
/// trigger's id, the condition's.
type WindowKey = (String, String, String, String);

/// Where one multiple condition stands: its window, the ids of its
/// conditions met in it, and the ends counted in it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Window {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    met: BTreeSet<String>,
    /// The ends counted lately, with when each was counted: an end a start
    /// looks at again (see [`LOOK_BACK`]) is not counted twice. Kept for
    /// [`COUNTED_FOR`], at most [`MAX_COUNTED`], so that a window stays one
    /// small record however busy its upstream flows are.
    counted: Vec<(ExecutionId, DateTime<Utc>)>,
}

/// How long a window remembers an end it counted: well past what a start
/// looks back at.
const COUNTED_FOR: Duration = Duration::from_secs(300);
/// Ends a window remembers, at most (about 40 bytes each in its record).
const MAX_COUNTED: usize = 1_000;

impl Window {
    fn open(m: &Multiple, now: DateTime<Utc>) -> Self {
        let (start, end) = m.window.open_at(now);
        Self {
            start,
            end,
            met: BTreeSet::new(),
            counted: Vec::new(),
        }
    }

    /// Whether an end at `now` counts in it (from its start, before its end).
    fn holds(&self, now: DateTime<Utc>) -> bool {
        self.start <= now && now < self.end
    }

    fn has_counted(&self, id: ExecutionId) -> bool {
        self.counted.iter().any(|(c, _)| *c == id)
    }

    fn count(&mut self, id: ExecutionId, now: DateTime<Utc>) {
        let keep = now - chrono::Duration::from_std(COUNTED_FOR).unwrap_or_default();
        self.counted.retain(|(_, at)| *at >= keep);
        if self.counted.len() >= MAX_COUNTED {
            let excess = self.counted.len() + 1 - MAX_COUNTED;
            self.counted.drain(..excess);
        }
        self.counted.push((id, now));
    }

    fn json(&self, (namespace, flow_id, trigger_id, id): &WindowKey) -> Value {
        serde_json::json!({
            "namespace": namespace,
            "flowId": flow_id,
            "triggerId": trigger_id,
            "id": id,
            "start": self.start.timestamp_micros(),
            "end": self.end.timestamp_micros(),
            "met": self.met,
            "counted": self
                .counted
                .iter()
                .map(|(id, at)| serde_json::json!([id.to_string(), at.timestamp_micros()]))
                .collect::<Vec<_>>(),
        })
    }

    fn read(v: &Value) -> Option<(WindowKey, Self)> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let date = |k: &str| v.get(k)?.as_i64().and_then(DateTime::from_timestamp_micros);
        let key = (
            text("namespace")?,
            text("flowId")?,
            text("triggerId")?,
            text("id")?,
        );
        let strings = |k: &str| -> Option<Vec<String>> {
            v.get(k)?
                .as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        let counted = v
            .get("counted")?
            .as_array()?
            .iter()
            .map(|c| {
                let id = c.get(0)?.as_str()?.parse().ok()?;
                let at = DateTime::from_timestamp_micros(c.get(1)?.as_i64()?)?;
                Some((id, at))
            })
            .collect::<Option<Vec<_>>>()?;
        Some((
            key,
            Self {
                start: date("start")?,
                end: date("end")?,
                met: strings("met")?.into_iter().collect(),
                counted,
            },
        ))
    }
}

/// The latest end date the flow triggers acted on, and the windows of
/// their multiple conditions, kept in their own log (`data/flow-triggers`;
/// none: in memory).
#[derive(Debug)]
pub(crate) struct Watermark {
    wal: Option<Wal>,
    /// As recovered, then as advanced.
    at: Option<DateTime<Utc>>,
    saved: Option<DateTime<Utc>>,
    windows: BTreeMap<WindowKey, Window>,
}

const MARK: Kind = Kind::new(1);
/// A multiple condition's window (the key space of windows).
const WINDOW: Kind = Kind::new(2);
const WINDOWS: u8 = 2;

fn mark_key() -> Key {
    Key::new(1, 1)
}

fn window_key((namespace, flow_id, trigger_id, id): &WindowKey) -> Key {
    let mut bytes = Vec::new();
    for text in [namespace, flow_id, trigger_id, id] {
        bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
    }
    Key::new(WINDOWS, ExecutionId::derive(&bytes).as_u128())
}

impl Watermark {
    pub fn in_memory() -> Self {
        Self {
            wal: None,
            at: None,
            saved: None,
            windows: BTreeMap::new(),
        }
    }

    /// Keeps where a multiple condition stands, durably (a window's change
    /// follows the start it led to, if any).
    fn save_window(&mut self, key: WindowKey, window: Window) {
        if let Some(wal) = &self.wal {
            let payload = window.json(&key).to_string();
            let written = wal
                .append_terminal(WINDOW, window_key(&key), payload.as_bytes())
                .and_then(|lsn| wal.durable(lsn));
            if let Err(e) = written {
                tracing::error!("saving a Flow trigger's window: {e}");
            }
        }
        self.windows.insert(key, window);
    }

    pub fn open(dir: &std::path::Path, config: peregrine_wal::Config) -> std::io::Result<Self> {
        let (wal, recovered) = crate::data::open_log(
            dir,
            config,
            "the Flow triggers' watermark",
            "the ends before this start are not looked at again",
        )?;
        let at = recovered
            .iter()
            .filter(|(k, _)| *k == mark_key())
            .filter_map(|(_, records)| records.last())
            .filter_map(|r| <[u8; 8]>::try_from(r.payload()).ok())
            .filter_map(|b| DateTime::from_timestamp_micros(i64::from_le_bytes(b)))
            .next();
        let mut windows = BTreeMap::new();
        for (key, records) in recovered.iter() {
            if key.space() != WINDOWS {
                continue;
            }
            let read = records
                .last()
                .filter(|r| r.kind() == WINDOW)
                .and_then(|r| serde_json::from_slice::<Value>(r.payload()).ok())
                .and_then(|v| Window::read(&v));
            match read {
                Some((key, window)) => {
                    windows.insert(key, window);
                }
                None => tracing::error!("an unreadable Flow trigger window is skipped"),
            }
        }
        Ok(Self {
            wal: Some(wal),
            at,
            saved: at,
            windows,
        })
    }

    fn advance(&mut self, to: DateTime<Utc>) {
        if self.at.is_none_or(|at| to > at) {
            self.at = Some(to);
        }
    }

    /// Makes the watermark durable, if it moved.
    fn save(&mut self) {
        let (Some(wal), Some(at)) = (&self.wal, self.at) else {
            return;
        };
        if self.saved == Some(at) {
            return;
        }
        let bytes = at.timestamp_micros().to_le_bytes();
        let written = wal
            .append_terminal(MARK, mark_key(), &bytes)
            .and_then(|lsn| wal.durable(lsn));
        match written {
            Ok(()) => self.saved = Some(at),
            Err(e) => tracing::error!("saving the flow triggers' watermark: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use peregrine_engine::flow::Flow;

    const A: &str = "id: a\nnamespace: t\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n";
    const B: &str = "id: b\nnamespace: t\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: y\ntriggers:\n  - id: after_a\n    type: io.kestra.plugin.core.trigger.Flow\n    conditions:\n      - type: io.kestra.plugin.core.condition.ExecutionFlow\n        namespace: t\n        flowId: a\n";

    fn open(dir: &std::path::Path) -> AppState {
        let mut config = Config {
            data_dir: dir.to_owned(),
            ..Config::default()
        };
        config.executor.threads = std::num::NonZeroUsize::new(1);
        tokio::task::block_in_place(|| AppState::open(config)).expect("opens")
    }

    fn of_flow(state: &AppState, flow_id: &str) -> Vec<Record> {
        let ended = state
            .executions()
            .ended_since(DateTime::UNIX_EPOCH)
            .expect("searched");
        ended
            .into_iter()
            .filter(|r| r.flow_id() == flow_id)
            .collect()
    }

    async fn wait_for(state: &AppState, flow_id: &str, n: usize) -> Vec<Record> {
        for _ in 0..400 {
            let found = of_flow(state, flow_id);
            if found.len() >= n {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{flow_id}: never {n}");
    }

    #[test]
    fn a_windows_standing_comes_back_after_a_reopen() {
        let dir = tempfile::tempdir().expect("a dir");
        let config = crate::schedule::wal_config(&peregrine_wal::Config::default());
        let key: WindowKey = (
            "ns".into(),
            "join".into(),
            "both".into(),
            "both_done".into(),
        );
        let at = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).expect("a date");
        let window = Window {
            start: at(0),
            end: at(86_400),
            met: BTreeSet::from(["condition_1".to_owned()]),
            counted: vec![(ExecutionId::derive(b"left"), at(5))],
        };
        {
            let mut mark = Watermark::open(dir.path(), config.clone()).expect("opens");
            mark.save_window(key.clone(), window.clone());
        }
        let mark = Watermark::open(dir.path(), config).expect("reopens");
        assert_eq!(mark.windows.get(&key), Some(&window));
        assert!(window.holds(at(0)) && window.holds(at(86_399)) && !window.holds(at(86_400)));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_end_no_process_acted_on_is_acted_on_at_the_next_start_and_only_once() {
        let dir = tempfile::tempdir().expect("a dir");
        {
            // The triggers start (a watermark is saved) and stop; then A
            // ends unseen, as if the process died before acting on it.
            let state = open(dir.path());
            for source in [A, B] {
                let flow = Flow::parse(source).expect("valid");
                state.flows().create(flow).await.expect("created");
            }
            state.flow_triggers().start(&state).expect("started");
            state.flow_triggers().stop();
            let a = state.flows().get("t", "a").expect("a");
            let launched = state.launcher().launch(Launch {
                flow: &a,
                inputs: Map::new(),
                labels: Vec::new(),
                trigger: None,
                id: ExecutionId::generate(),
                ack: Ack::Receipt,
                schedule_date: None,
            });
            let Ok(_launched) = launched else {
                panic!("A is launched")
            };
            wait_for(&state, "a", 1).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(of_flow(&state, "b").is_empty(), "nobody acted on A's end");
            tokio::task::block_in_place(|| state.shutdown()).expect("shut down");
        }
        for round in 0..2 {
            // Each start looks again: B runs once, whatever the rounds.
            let state = open(dir.path());
            state.flow_triggers().start(&state).expect("started");
            let b = wait_for(&state, "b", 1).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(of_flow(&state, "b").len(), 1, "round {round}: {b:?}");
            tokio::task::block_in_place(|| state.shutdown()).expect("shut down");
        }
    }
}
