//! An execution frozen at one instant, in one compact form that every reader
//! shares: the journal's terminal record, a finished execution kept for its
//! retention window, a snapshot the API answers with, an update followers
//! receive.
//!
//! The form is an rkyv archive in one aligned allocation. JSON values
//! (inputs, outputs, the trigger) are kept as JSON text, a fraction of the
//! size of a `serde_json::Value` tree, and copied into answers as they are.
//! The execution's JSON, as Kestra's API shows it, is rendered from the
//! archive directly, with nothing decoded first.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use peregrine_wal::rkyv;
use peregrine_wal::rkyv::util::AlignedVec;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::id::{ExecutionId, Id};
use super::model::{self, Execution, Lineage, Logs, Metrics, TaskRun};
use super::state::{State, StateChange, StateHistory, format_date, iso_duration};

/// One state change in 64 bits: its instant in microseconds since the Unix
/// epoch, shifted left by 4, and the state's index in [`State::ALL`] (14
/// states) in the low 4 bits. Half the size of a (state, instant) pair,
/// in the record every finished execution is kept as.
#[derive(Debug, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = peregrine_wal::rkyv)]
struct Change(i64);

impl Change {
    fn new(state: State, at: DateTime<Utc>) -> Self {
        Change((at.timestamp_micros() << 4) | i64::from(state_index(state)))
    }
}

impl ArchivedChange {
    fn state(&self) -> State {
        state_of((self.0.to_native() & 0xF) as u8)
    }

    fn at(&self) -> DateTime<Utc> {
        instant(self.0.to_native() >> 4)
    }
}

#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = peregrine_wal::rkyv)]
struct FrozenTaskRun {
    id: u128,
    task_id: String,
    parent: Option<u32>,
    value: Option<String>,
    iteration: Option<u32>,
    /// Each attempt's history; empty when it is the task run's own (an
    /// attempt has at least its creation, so empty means nothing else).
    attempts: Vec<Vec<Change>>,
    /// JSON text.
    outputs: Option<String>,
    state: Vec<Change>,
}

/// What a [`Record`] holds.
#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = peregrine_wal::rkyv)]
struct Frozen {
    id: u128,
    namespace: String,
    flow_id: String,
    flow_revision: u32,
    /// JSON text of an object.
    inputs: String,
    /// JSON text.
    outputs: Option<String>,
    labels: Vec<(String, String)>,
    /// JSON text of Kestra's `{id, type, variables}`.
    trigger: Option<String>,
    state: Vec<Change>,
    task_runs: Vec<FrozenTaskRun>,
    error: Option<String>,
}

/// A record of format 2: the execution and its lineage (what Kestra shows
/// as `metadata`, `originalId`, `parentId` and `scheduleDate`). Format 1
/// records (a `Frozen` alone) are still read: their lineage is derived.
#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = peregrine_wal::rkyv)]
struct Frozen2 {
    base: Frozen,
    lineage: FrozenLineage,
    /// The variables its tasks set, as JSON text of an object.
    variables: Option<String>,
}

/// A record of format 3: format 2's, with the names of its inputs of type
/// SECRET, whose values its JSON masks.
#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = peregrine_wal::rkyv)]
struct Frozen3 {
    base: Frozen,
    lineage: FrozenLineage,
    variables: Option<String>,
    secret_inputs: Vec<String>,
}

#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = peregrine_wal::rkyv)]
struct FrozenLineage {
    attempt: u32,
    original_id: u128,
    parent_id: Option<u128>,
    original_created_us: i64,
    schedule_us: Option<i64>,
}

/// The layout of a record's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// A `Frozen` (records written before lineage was kept).
    One,
    /// A `Frozen2` (before the SECRET inputs' names were kept).
    Two,
    /// A `Frozen3`: what `Record::of` writes.
    Three,
}

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an execution record: {0}")]
pub struct RecordError(String);

/// An execution frozen at one instant: compact, immutable, cheap to clone
/// (one `Arc`).
#[derive(Clone)]
pub struct Record {
    /// A validated archive of [`Frozen2`] (or, of format 1, [`Frozen`]),
    /// never written after it was built.
    bytes: Arc<AlignedVec>,
    format: Format,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id())
            .field("state", &self.state())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

fn json_text(value: &Value) -> String {
    serde_json::to_string(value).expect("a JSON value always serializes")
}

fn changes(history: &StateHistory) -> Vec<Change> {
    history
        .histories()
        .iter()
        .map(|c| Change::new(c.state, c.date))
        .collect()
}

fn state_index(state: State) -> u8 {
    State::ALL
        .iter()
        .position(|s| *s == state)
        .expect("every state is in State::ALL") as u8
}

fn state_of(index: u8) -> State {
    // Records are validated and built from `state_index`; an index out of
    // range cannot come from them.
    State::ALL
        .get(usize::from(index))
        .copied()
        .unwrap_or(State::Failed)
}

fn instant(at_us: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(at_us).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn frozen_task_run(t: &TaskRun) -> FrozenTaskRun {
    let state = changes(&t.state);
    let attempts = t
        .attempts
        .iter()
        .map(|a| {
            let own = changes(&a.state);
            if own == state { Vec::new() } else { own }
        })
        .collect();
    FrozenTaskRun {
        id: t.id.as_u128(),
        task_id: t.task_id.to_string(),
        parent: t.parent,
        value: t.value.as_deref().map(str::to_owned),
        iteration: t.iteration,
        attempts,
        outputs: t.outputs.as_deref().map(json_text),
        state,
    }
}

impl Record {
    /// Freezes `execution` as it is now.
    pub fn of(execution: &Execution) -> Record {
        let l = &execution.lineage;
        let lineage = FrozenLineage {
            attempt: l.attempt,
            original_id: l.original_id.as_u128(),
            parent_id: l.parent_id.map(|p| p.as_u128()),
            original_created_us: l.original_created.timestamp_micros(),
            schedule_us: l.schedule_date.map(|d| d.timestamp_micros()),
        };
        let frozen = Frozen {
            id: execution.id.as_u128(),
            namespace: execution.namespace.to_string(),
            flow_id: execution.flow_id.to_string(),
            flow_revision: execution.flow_revision,
            inputs: json_text(&execution.inputs),
            outputs: execution.outputs.as_ref().map(json_text),
            labels: execution.labels.clone(),
            trigger: execution.trigger.as_ref().map(json_text),
            state: changes(&execution.state),
            task_runs: execution.task_runs.iter().map(frozen_task_run).collect(),
            error: execution.error.clone(),
        };
        Self::archive(&Frozen3 {
            base: frozen,
            lineage,
            variables: execution
                .variables
                .as_ref()
                .map(|v| serde_json::to_string(v).expect("a JSON map always serializes")),
            secret_inputs: execution
                .secret_inputs
                .iter()
                .map(|s| s.to_string())
                .collect(),
        })
    }

    fn archive(frozen: &Frozen3) -> Record {
        let archived = rkyv::to_bytes::<rkyv::rancor::Error>(frozen)
            .expect("archiving owned strings and numbers cannot fail");
        Record {
            bytes: Arc::new(exact(&archived)),
            format: Format::Three,
        }
    }

    /// The archive of a format 2 record.
    fn two(&self) -> Option<&ArchivedFrozen2> {
        let Format::Two = self.format else {
            return None;
        };
        // SAFETY: see `frozen`: format 2 bytes are a valid archive of
        // `Frozen2`, never written after they were built or checked.
        Some(unsafe { rkyv::access_unchecked::<ArchivedFrozen2>(&self.bytes) })
    }

    /// The archive of a format 3 record.
    fn three(&self) -> Option<&ArchivedFrozen3> {
        let Format::Three = self.format else {
            return None;
        };
        // SAFETY: see `frozen`: format 3 bytes are a valid archive of
        // `Frozen3`, never written after they were built or checked.
        Some(unsafe { rkyv::access_unchecked::<ArchivedFrozen3>(&self.bytes) })
    }

    /// The names of its inputs of type SECRET (none before format 3).
    pub(crate) fn secret_inputs(&self) -> Vec<Arc<str>> {
        self.three()
            .map(|f| {
                f.secret_inputs
                    .iter()
                    .map(|s| Arc::from(s.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The layout of its bytes (the journal's record kind tells it).
    pub(crate) fn format(&self) -> Format {
        self.format
    }

    /// This record in the current format (an earlier one is frozen
    /// again, what it lacks derived).
    pub(crate) fn upgraded(&self) -> Record {
        match self.format {
            Format::Three => self.clone(),
            Format::One | Format::Two => Record::of(&self.thaw()),
        }
    }

    /// Its lineage: kept (format 2), or derived (format 1: its own
    /// original, an attempt more per restart in its history).
    pub fn lineage(&self) -> Lineage {
        let kept = self
            .two()
            .map(|f| &f.lineage)
            .or_else(|| self.three().map(|f| &f.lineage));
        match kept {
            Some(l) => Lineage {
                attempt: l.attempt.to_native(),
                original_id: Id::from_u128(l.original_id.to_native()),
                parent_id: l.parent_id.as_ref().map(|p| Id::from_u128(p.to_native())),
                original_created: instant(l.original_created_us.to_native()),
                schedule_date: l.schedule_us.as_ref().map(|s| instant(s.to_native())),
            },
            None => {
                let f = self.frozen();
                let restarts = f
                    .state
                    .iter()
                    .filter(|c| c.state() == State::Restarted)
                    .count();
                Lineage {
                    attempt: 1 + u32::try_from(restarts).unwrap_or(u32::MAX - 1),
                    original_id: self.id(),
                    parent_id: None,
                    original_created: self.start_date(),
                    schedule_date: None,
                }
            }
        }
    }

    /// This record with `labels` in place of its own: everything else
    /// (states, dates, task runs) is kept as it is.
    pub(crate) fn with_labels(&self, labels: Vec<(String, String)>) -> Record {
        let mut execution = self.thaw();
        execution.labels = labels;
        Record::of(&execution)
    }

    /// The execution this record froze, thawed (its log lines are not in
    /// the record: they come back empty).
    pub(crate) fn thaw(&self) -> Execution {
        let f = self.frozen();
        let history = |changes: &rkyv::vec::ArchivedVec<ArchivedChange>| {
            let changes = changes
                .iter()
                .map(|c| StateChange {
                    state: c.state(),
                    date: c.at(),
                })
                .collect();
            StateHistory::from_changes(changes)
                .unwrap_or_else(|| StateHistory::new(State::Created, DateTime::<Utc>::MIN_UTC))
        };
        let json = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
        let task_runs = f
            .task_runs
            .iter()
            .map(|t| {
                let state = history(&t.state);
                TaskRun {
                    id: Id::from_u128(t.id.to_native()),
                    task_id: Arc::from(t.task_id.as_str()),
                    parent: t.parent.as_ref().map(|p| p.to_native()),
                    value: t.value.as_ref().map(|v| Arc::from(v.as_str())),
                    iteration: t.iteration.as_ref().map(|i| i.to_native()),
                    attempts: t
                        .attempts
                        .iter()
                        .map(|a| model::Attempt {
                            state: if a.is_empty() {
                                state.clone()
                            } else {
                                history(a)
                            },
                        })
                        .collect(),
                    outputs: t.outputs.as_ref().map(|o| Arc::new(json(o.as_str()))),
                    state,
                }
            })
            .collect();
        Execution {
            id: self.id(),
            namespace: Arc::from(f.namespace.as_str()),
            flow_id: Arc::from(f.flow_id.as_str()),
            flow_revision: f.flow_revision.to_native(),
            inputs: json(f.inputs.as_str()),
            outputs: f.outputs.as_ref().map(|o| json(o.as_str())),
            labels: self
                .labels()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            trigger: f.trigger.as_ref().map(|t| json(t.as_str())),
            state: history(&f.state),
            task_runs,
            error: f.error.as_ref().map(|e| e.as_str().to_owned()),
            logs: Logs::default(),
            metrics: Metrics::default(),
            lineage: self.lineage(),
            variables: self.variables(),
            secret_inputs: self.secret_inputs(),
        }
    }

    /// The variables its tasks set, as JSON text (none in a format 1
    /// record).
    fn variables_text(&self) -> Option<&str> {
        match (self.two(), self.three()) {
            (Some(f), _) => f.variables.as_ref().map(|t| t.as_str()),
            (_, Some(f)) => f.variables.as_ref().map(|t| t.as_str()),
            _ => None,
        }
    }

    /// The variables its tasks set, if any.
    pub(crate) fn variables(&self) -> Option<serde_json::Map<String, Value>> {
        match serde_json::from_str(self.variables_text()?) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        }
    }

    /// A record read back from bytes of `format` (the journal's terminal
    /// record), validated once here.
    pub(crate) fn from_bytes(bytes: &[u8], format: Format) -> Result<Record, RecordError> {
        let copy = exact(bytes);
        match format {
            Format::One => rkyv::access::<ArchivedFrozen, rkyv::rancor::Error>(&copy).map(drop),
            Format::Two => rkyv::access::<ArchivedFrozen2, rkyv::rancor::Error>(&copy).map(drop),
            Format::Three => rkyv::access::<ArchivedFrozen3, rkyv::rancor::Error>(&copy).map(drop),
        }
        .map_err(|e| RecordError(e.to_string()))?;
        Ok(Record {
            bytes: Arc::new(copy),
            format,
        })
    }

    /// The archived bytes, as the journal stores them.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The size of the archive, in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    fn frozen(&self) -> &ArchivedFrozen {
        match self.format {
            // SAFETY: `bytes` is an archive of `Frozen2` validated by
            // `rkyv::access` as one (`Record::from_bytes` with
            // `Format::Two`); it sits in an `AlignedVec` (16-byte aligned)
            // and is never written afterwards (only shared behind the
            // `Arc`), so it stays a valid archive.
            Format::Two => &unsafe { rkyv::access_unchecked::<ArchivedFrozen2>(&self.bytes) }.base,
            Format::Three => {
                // SAFETY: as above, for an archive of `Frozen3`, built by
                // `rkyv::to_bytes` from one (`Record::of`) or validated as
                // one (`Record::from_bytes` with `Format::Three`).
                &unsafe { rkyv::access_unchecked::<ArchivedFrozen3>(&self.bytes) }.base
            }
            // SAFETY: as above, for bytes validated as a `Frozen` by
            // `Record::from_bytes` with `Format::One`.
            Format::One => unsafe { rkyv::access_unchecked::<ArchivedFrozen>(&self.bytes) },
        }
    }

    pub fn id(&self) -> ExecutionId {
        Id::from_u128(self.frozen().id.to_native())
    }

    pub fn namespace(&self) -> &str {
        self.frozen().namespace.as_str()
    }

    pub fn flow_id(&self) -> &str {
        self.frozen().flow_id.as_str()
    }

    pub fn flow_revision(&self) -> u32 {
        self.frozen().flow_revision.to_native()
    }

    pub fn state(&self) -> State {
        self.frozen()
            .state
            .last()
            .map_or(State::Created, ArchivedChange::state)
    }

    pub fn is_terminal(&self) -> bool {
        self.state().is_terminal()
    }

    /// How many times it entered `state`.
    pub fn times_in(&self, state: State) -> u32 {
        let n = self
            .frozen()
            .state
            .iter()
            .filter(|c| c.state() == state)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// When it entered its current state.
    pub fn state_date(&self) -> DateTime<Utc> {
        self.frozen()
            .state
            .last()
            .map_or(DateTime::<Utc>::MIN_UTC, ArchivedChange::at)
    }

    pub fn start_date(&self) -> DateTime<Utc> {
        self.frozen()
            .state
            .first()
            .map_or(DateTime::<Utc>::MIN_UTC, ArchivedChange::at)
    }

    pub fn end_date(&self) -> Option<DateTime<Utc>> {
        let last = self.frozen().state.last()?;
        last.state().is_terminal().then(|| last.at())
    }

    /// Kestra's `{id, type, variables}` of what started it, if anything did.
    pub fn trigger(&self) -> Option<Value> {
        let text = self.frozen().trigger.as_ref()?;
        serde_json::from_str(text.as_str()).ok()
    }

    /// The execution's flow outputs, if it has any.
    pub fn outputs(&self) -> Option<Value> {
        let text = self.frozen().outputs.as_ref()?;
        serde_json::from_str(text.as_str()).ok()
    }

    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.frozen()
            .labels
            .iter()
            .map(|pair| (pair.0.as_str(), pair.1.as_str()))
    }

    /// Kestra's execution JSON, for `serde` (durations of what still runs
    /// are counted up to `now`).
    pub fn json(&self, now: DateTime<Utc>) -> impl Serialize + '_ {
        ExecutionJson {
            frozen: self.frozen(),
            lineage: self.lineage(),
            variables: self.variables_text(),
            secret_inputs: self
                .three()
                .map(|f| &f.secret_inputs[..])
                .unwrap_or_default(),
            now,
        }
    }

    /// Kestra's execution JSON, as a value.
    pub fn to_json(&self, now: DateTime<Utc>) -> Value {
        serde_json::to_value(self.json(now)).expect("an execution's JSON always serializes")
    }

    /// Kestra's execution JSON, as bytes.
    pub fn to_json_bytes(&self, now: DateTime<Utc>) -> Vec<u8> {
        serde_json::to_vec(&self.json(now)).expect("an execution's JSON always serializes")
    }
}

/// `bytes` in an aligned buffer of exactly their length (what `to_bytes`
/// returns grows by doubling; a kept record should not carry that slack).
fn exact(bytes: &[u8]) -> AlignedVec {
    let mut out = AlignedVec::with_capacity(bytes.len());
    out.extend_from_slice(bytes);
    out
}

/// JSON text kept in a record, written into an answer as it is.
struct Raw<'a>(&'a str);

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<&RawValue>(self.0) {
            Ok(raw) => raw.serialize(s),
            // Written by `json_text`, so always JSON; never fail an answer.
            Err(_) => s.serialize_unit(),
        }
    }
}

struct History<'a> {
    changes: &'a [ArchivedChange],
    now: DateTime<Utc>,
}

impl Serialize for History<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let current = self
            .changes
            .last()
            .map_or(State::Created, ArchivedChange::state);
        let start = self
            .changes
            .first()
            .map_or(DateTime::<Utc>::MIN_UTC, ArchivedChange::at);
        let end = current
            .is_terminal()
            .then(|| self.changes.last().map(ArchivedChange::at))
            .flatten();
        let start_date = format_date(start);
        let duration = iso_duration(end.unwrap_or(self.now) - start);
        let mut map = s.serialize_map(Some(8))?;
        map.serialize_entry("current", current.as_str())?;
        map.serialize_entry("histories", &Changes(self.changes))?;
        map.serialize_entry("startDate", &start_date)?;
        if let Some(end) = end {
            map.serialize_entry("endDate", &format_date(end))?;
        }
        map.serialize_entry("duration", &duration)?;
        // Kestra's OpenAPI spec names its state getters as fields, and
        // the 2.0 client's model requires all three, never null: the same
        // values, with the end of a state not yet ended read as now, as its
        // duration is (`endDate` stays absent until the end).
        map.serialize_entry("getStartDate", &start_date)?;
        map.serialize_entry("getDuration", &duration)?;
        map.serialize_entry("getEndDate", &format_date(end.unwrap_or(self.now)))?;
        map.end()
    }
}

struct Changes<'a>(&'a [ArchivedChange]);

impl Serialize for Changes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for c in self.0 {
            seq.serialize_element(&StateAt(c))?;
        }
        seq.end()
    }
}

struct StateAt<'a>(&'a ArchivedChange);

impl Serialize for StateAt<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("state", self.0.state().as_str())?;
        map.serialize_entry("date", &format_date(self.0.at()))?;
        map.end()
    }
}

struct Labels<'a>(&'a ArchivedFrozen);

impl Serialize for Labels<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.labels.len()))?;
        for pair in self.0.labels.iter() {
            seq.serialize_element(&Label(pair.0.as_str(), pair.1.as_str()))?;
        }
        seq.end()
    }
}

struct Label<'a>(&'a str, &'a str);

impl Serialize for Label<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("key", self.0)?;
        map.serialize_entry("value", self.1)?;
        map.end()
    }
}

struct ExecutionJson<'a> {
    frozen: &'a ArchivedFrozen,
    lineage: Lineage,
    variables: Option<&'a str>,
    /// The inputs whose values are masked.
    secret_inputs: &'a [rkyv::string::ArchivedString],
    now: DateTime<Utc>,
}

impl Serialize for ExecutionJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.frozen;
        let id = Id::from_u128(f.id.to_native()).to_string();
        let lineage = &self.lineage;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &id)?;
        // One tenant, Kestra's default: the API answers under it.
        map.serialize_entry("tenantId", "main")?;
        map.serialize_entry("namespace", f.namespace.as_str())?;
        map.serialize_entry("flowId", f.flow_id.as_str())?;
        map.serialize_entry("flowRevision", &f.flow_revision.to_native())?;
        // Never soft-deleted (deleting one removes it). A restart is an
        // attempt more; a replay is a new execution whose parent is the
        // one it replays.
        map.serialize_entry("originalId", &lineage.original_id.to_string())?;
        if let Some(parent) = lineage.parent_id {
            map.serialize_entry("parentId", &parent.to_string())?;
        }
        map.serialize_entry("deleted", &false)?;
        map.serialize_entry(
            "metadata",
            &Metadata {
                attempt_number: lineage.attempt,
                original_created_date: format_date(lineage.original_created),
            },
        )?;
        if let Some(at) = lineage.schedule_date {
            map.serialize_entry("scheduleDate", &format_date(at))?;
        }
        if self.secret_inputs.is_empty() {
            map.serialize_entry("inputs", &Raw(f.inputs.as_str()))?;
        } else {
            // Kestra's UI shows a SECRET input masked; here the API does.
            let mut inputs =
                serde_json::from_str::<Value>(f.inputs.as_str()).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut inputs {
                for name in self.secret_inputs {
                    if let Some(v) = map.get_mut(name.as_str())
                        && !v.is_null()
                    {
                        *v = Value::from(crate::executor::MASK);
                    }
                }
            }
            map.serialize_entry("inputs", &inputs)?;
        }
        if let Some(outputs) = f.outputs.as_ref() {
            map.serialize_entry("outputs", &Raw(outputs.as_str()))?;
        }
        map.serialize_entry("labels", &Labels(f))?;
        if let Some(variables) = self.variables {
            map.serialize_entry("variables", &Raw(variables))?;
        }
        if let Some(trigger) = f.trigger.as_ref() {
            map.serialize_entry("trigger", &Raw(trigger.as_str()))?;
        }
        map.serialize_entry(
            "state",
            &History {
                changes: &f.state,
                now: self.now,
            },
        )?;
        map.serialize_entry(
            "taskRunList",
            &TaskRuns {
                frozen: f,
                execution_id: &id,
                now: self.now,
            },
        )?;
        if let Some(error) = f.error.as_ref() {
            map.serialize_entry("error", error.as_str())?;
        }
        map.end()
    }
}

/// Kestra's `ExecutionMetadata`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    attempt_number: u32,
    original_created_date: String,
}

struct TaskRuns<'a> {
    frozen: &'a ArchivedFrozen,
    execution_id: &'a str,
    now: DateTime<Utc>,
}

impl Serialize for TaskRuns<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let runs = &self.frozen.task_runs;
        let mut seq = s.serialize_seq(Some(runs.len()))?;
        for t in runs.iter() {
            seq.serialize_element(&TaskRunJson { run: t, of: self })?;
        }
        seq.end()
    }
}

struct TaskRunJson<'a> {
    run: &'a ArchivedFrozenTaskRun,
    of: &'a TaskRuns<'a>,
}

impl Serialize for TaskRunJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (t, f) = (self.run, self.of.frozen);
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &Id::from_u128(t.id.to_native()).to_string())?;
        map.serialize_entry("executionId", self.of.execution_id)?;
        map.serialize_entry("namespace", f.namespace.as_str())?;
        map.serialize_entry("flowId", f.flow_id.as_str())?;
        map.serialize_entry("taskId", t.task_id.as_str())?;
        if let Some(parent) = t
            .parent
            .as_ref()
            .and_then(|p| f.task_runs.get(p.to_native() as usize))
        {
            map.serialize_entry(
                "parentTaskRunId",
                &Id::from_u128(parent.id.to_native()).to_string(),
            )?;
        }
        if let Some(value) = t.value.as_ref() {
            map.serialize_entry("value", value.as_str())?;
        }
        if let Some(iteration) = t.iteration.as_ref() {
            map.serialize_entry("iteration", &iteration.to_native())?;
        }
        map.serialize_entry(
            "attempts",
            &Attempts {
                attempts: &t.attempts,
                own: &t.state,
                now: self.of.now,
            },
        )?;
        if let Some(outputs) = t.outputs.as_ref() {
            map.serialize_entry("outputs", &Raw(outputs.as_str()))?;
        }
        map.serialize_entry(
            "state",
            &History {
                changes: &t.state,
                now: self.of.now,
            },
        )?;
        map.end()
    }
}

struct Attempts<'a> {
    attempts: &'a [rkyv::vec::ArchivedVec<ArchivedChange>],
    /// The task run's history: what an attempt kept empty shows.
    own: &'a [ArchivedChange],
    now: DateTime<Utc>,
}

impl Serialize for Attempts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.attempts.len()))?;
        for a in self.attempts {
            let changes: &[ArchivedChange] = if a.is_empty() { self.own } else { a };
            seq.serialize_element(&Attempt(History {
                changes,
                now: self.now,
            }))?;
        }
        seq.end()
    }
}

struct Attempt<'a>(History<'a>);

impl Serialize for Attempt<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("state", &self.0)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::executor::{FlowRevision, NewExecution, run_to_end};
    use crate::flow::Flow;

    fn run(yaml: &str) -> Execution {
        let flow = Arc::new(FlowRevision::new(Arc::new(
            Flow::parse(yaml).expect("valid"),
        )));
        let mut new = NewExecution::new(flow, serde_json::Map::new());
        new.labels = vec![("team".into(), "core".into())];
        run_to_end(new)
    }

    const FLOW: &str = r#"
id: frozen
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a"]
    tasks:
      - id: hello
        type: io.kestra.plugin.core.debug.Return
        format: "hi {{ taskrun.value }}"
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    allowFailure: true
"#;

    #[test]
    fn a_record_renders_the_execution_as_kestra_shows_it() {
        let exec = run(FLOW);
        let record = Record::of(&exec);
        let json = record.to_json(Utc::now());
        assert_eq!(json["id"], exec.id().to_string());
        assert_eq!(json["namespace"], "company.team");
        assert_eq!(json["flowId"], "frozen");
        assert_eq!(json["state"]["current"], "WARNING");
        let states: Vec<_> = json["state"]["histories"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|h| h["state"].as_str().expect("a name"))
            .collect();
        assert_eq!(states, ["CREATED", "RUNNING", "WARNING"]);
        assert!(json["state"]["endDate"].is_string());
        let labels = json["labels"].as_array().expect("a list");
        assert!(labels.contains(&serde_json::json!({"key": "team", "value": "core"})));
        let runs = json["taskRunList"].as_array().expect("a list");
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[1]["taskId"], "hello");
        assert_eq!(runs[1]["value"], "a");
        assert_eq!(runs[1]["parentTaskRunId"], runs[0]["id"]);
        assert_eq!(runs[1]["outputs"], serde_json::json!({"value": "hi a"}));
        assert_eq!(runs[1]["executionId"], json["id"]);
        // An attempt whose history is its task run's is stored once and
        // shown whole; one that differs keeps its own.
        assert_eq!(runs[1]["attempts"][0]["state"], runs[1]["state"]);
        assert_eq!(runs[2]["state"]["current"], "WARNING");
        assert_eq!(runs[2]["attempts"][0]["state"]["current"], "FAILED");
        assert!(runs[0]["attempts"].as_array().expect("a list").is_empty());
    }

    #[test]
    fn a_record_carries_the_fields_kestras_2_0_models_require() {
        let exec = run(FLOW);
        let json = Record::of(&exec).to_json(Utc::now());
        assert_eq!(json["originalId"], json["id"]);
        assert_eq!(json["deleted"], false);
        assert_eq!(json["tenantId"], "main");
        assert_eq!(json["metadata"]["attemptNumber"], 1);
        assert_eq!(
            json["metadata"]["originalCreatedDate"],
            json["state"]["startDate"]
        );
        let state = &json["state"];
        assert_eq!(state["getStartDate"], state["startDate"]);
        assert_eq!(state["getEndDate"], state["endDate"]);
        assert_eq!(state["getDuration"], state["duration"]);
        let run = &json["taskRunList"][1]["state"];
        assert_eq!(run["getEndDate"], run["endDate"]);
    }

    #[test]
    fn a_state_not_yet_ended_has_no_end_date_and_its_getters_read_now() {
        const SLOW: &str = "id: slow\nnamespace: company.team\ntasks:\n  - id: wait\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT0.1S\n";
        let flow = Arc::new(FlowRevision::new(Arc::new(
            Flow::parse(SLOW).expect("valid"),
        )));
        let mut first = None;
        crate::executor::run_to_end_observed(
            NewExecution::new(flow, serde_json::Map::new()),
            |e| {
                if first.is_none() {
                    first = Some(Record::of(e));
                }
            },
        );
        let record = first.expect("a change was seen");
        // Answered a minute and a half after it started.
        let now = record.start_date() + chrono::Duration::milliseconds(90_250);
        let json = record.to_json(now);
        let state = &json["state"];
        assert_eq!(state["current"], "RUNNING", "{state}");
        assert!(state.get("endDate").is_none(), "{state}");
        assert_eq!(state["getEndDate"], format_date(now).as_str());
        assert_eq!(state["getDuration"], "PT1M30.25S");
        assert_eq!(state["getDuration"], state["duration"]);
    }

    #[test]
    fn a_record_keeps_instants_to_the_microsecond_and_reads_back_whole() {
        let exec = run(FLOW);
        let record = Record::of(&exec);
        let start = exec.history().start_date();
        assert_eq!(
            record.start_date().timestamp_micros(),
            start.timestamp_micros()
        );
        assert_eq!(
            record.end_date(),
            exec.history().end_date().map(|d| {
                DateTime::<Utc>::from_timestamp_micros(d.timestamp_micros()).expect("in range")
            })
        );
        assert_eq!(record.state(), State::Warning);
        let back = Record::from_bytes(record.as_bytes(), Format::Three).expect("valid");
        assert_eq!(back.as_bytes(), record.as_bytes());
        assert_eq!(back.to_json(start), record.to_json(start));
        assert!(Record::from_bytes(b"not an archive at all", Format::Three).is_err());
        assert!(Record::from_bytes(b"not an archive at all", Format::Two).is_err());
        assert!(Record::from_bytes(b"not an archive at all", Format::One).is_err());
    }

    #[test]
    fn a_record_keeps_its_lineage_and_shows_it_as_kestra_does() {
        let mut exec = run(FLOW);
        let parent = Id::generate();
        let original = Id::generate();
        let created = exec.history().start_date() - chrono::Duration::hours(1);
        let at = exec.history().start_date() + chrono::Duration::minutes(5);
        let lineage = Lineage {
            attempt: 3,
            original_id: original,
            parent_id: Some(parent),
            original_created: instant(created.timestamp_micros()),
            schedule_date: Some(instant(at.timestamp_micros())),
        };
        exec.lineage = lineage.clone();
        let record = Record::of(&exec);
        assert_eq!(record.lineage(), lineage);
        assert_eq!(record.thaw().lineage, lineage);
        let json = record.to_json(at);
        assert_eq!(json["originalId"], original.to_string());
        assert_eq!(json["parentId"], parent.to_string());
        assert_eq!(json["metadata"]["attemptNumber"], 3);
        assert_eq!(
            json["metadata"]["originalCreatedDate"],
            format_date(created)
        );
        assert_eq!(json["scheduleDate"], format_date(at));
        // Labels set later keep it.
        let relabelled = record.with_labels(vec![("k".into(), "v".into())]);
        assert_eq!(relabelled.lineage(), lineage);
    }

    #[test]
    fn a_records_secret_inputs_are_masked_in_its_json_and_kept_within() {
        let mut exec = run(FLOW);
        exec.inputs = serde_json::json!({"token": "s3cr3t", "name": "ada"});
        exec.secret_inputs = vec![Arc::from("token")];
        let record = Record::of(&exec);
        let json = record.to_json(exec.history().start_date());
        assert_eq!(
            json["inputs"],
            serde_json::json!({"token": "********", "name": "ada"})
        );
        let thawed = record.thaw();
        assert_eq!(
            thawed.inputs["token"], "s3cr3t",
            "a restart renders the real value"
        );
        assert_eq!(thawed.secret_inputs, [Arc::from("token")]);
    }

    #[test]
    fn a_record_of_format_2_is_read_and_shows_the_same_execution() {
        let exec = run(FLOW);
        let three = Record::of(&exec);
        let frozen = rkyv::deserialize::<Frozen3, rkyv::rancor::Error>(
            rkyv::access::<ArchivedFrozen3, rkyv::rancor::Error>(three.as_bytes()).expect("valid"),
        )
        .expect("deserializes");
        let as_two = Frozen2 {
            base: frozen.base,
            lineage: frozen.lineage,
            variables: frozen.variables,
        };
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&as_two).expect("archives");
        let two = Record::from_bytes(&bytes, Format::Two).expect("a format 2 record");
        let now = exec.history().start_date();
        assert_eq!(two.to_json(now), three.to_json(now));
        assert_eq!(two.lineage(), three.lineage());
        assert!(
            Record::from_bytes(&bytes, Format::Three).is_err(),
            "a format 2 record is not read as one of format 3"
        );
        assert_eq!(two.upgraded().format(), Format::Three);
    }

    #[test]
    fn a_record_of_format_1_is_read_its_lineage_derived() {
        let exec = run(FLOW);
        let two = Record::of(&exec);
        // The same execution as the first format wrote it: a `Frozen` alone.
        let frozen = rkyv::deserialize::<Frozen3, rkyv::rancor::Error>(
            rkyv::access::<ArchivedFrozen3, rkyv::rancor::Error>(two.as_bytes()).expect("valid"),
        )
        .expect("deserializes")
        .base;
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&frozen).expect("archives");
        let one = Record::from_bytes(&bytes, Format::One).expect("a format 1 record");
        assert_eq!(one.format(), Format::One);
        let lineage = one.lineage();
        assert_eq!(lineage.attempt, 1);
        assert_eq!(lineage.original_id, exec.id());
        assert_eq!(lineage.parent_id, None);
        let now = exec.history().start_date();
        let (a, b) = (one.to_json(now), two.to_json(now));
        assert_eq!(a, b, "both formats show the same execution");
        let up = one.upgraded();
        assert_eq!(up.format(), Format::Three);
        assert_eq!(up.to_json(now), b);
    }
}
