//! Executions the API can answer for: the latest snapshot of each running
//! one, and finished ones for the retention window (at most `max-finished`).
//!
//! The engine forgets an execution once it ends; this store is what
//! remembers it. Lock striping by id keeps the shard threads, which write
//! here on every change, from contending with each other or with readers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use peregrine_engine::execution::{Execution, ExecutionId, State, format_date, iso_duration};
use serde_json::{Map, Value};

const STRIPES: usize = 64;

/// An execution accepted by the API, before its shard has started it.
#[derive(Debug)]
pub struct Pending {
    pub id: ExecutionId,
    pub namespace: String,
    pub flow_id: String,
    pub flow_revision: u32,
    pub inputs: Map<String, Value>,
    pub labels: Vec<(String, String)>,
    pub trigger: Option<Value>,
    pub created: DateTime<Utc>,
}

impl Pending {
    fn to_json(&self, now: DateTime<Utc>) -> Value {
        let created = format_date(self.created);
        let mut map = Map::with_capacity(10);
        map.insert("id".into(), self.id.to_string().into());
        map.insert("namespace".into(), self.namespace.as_str().into());
        map.insert("flowId".into(), self.flow_id.as_str().into());
        map.insert("flowRevision".into(), self.flow_revision.into());
        map.insert("inputs".into(), Value::Object(self.inputs.clone()));
        map.insert(
            "labels".into(),
            self.labels
                .iter()
                .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                .collect(),
        );
        if let Some(trigger) = &self.trigger {
            map.insert("trigger".into(), trigger.clone());
        }
        map.insert(
            "state".into(),
            serde_json::json!({
                "current": State::Created.as_str(),
                "histories": [{"state": State::Created.as_str(), "date": created}],
                "startDate": created,
                "duration": iso_duration(now - self.created),
            }),
        );
        map.insert("taskRunList".into(), Value::Array(Vec::new()));
        Value::Object(map)
    }
}

/// A finished execution read back from the journal, as its final JSON.
#[derive(Debug)]
pub struct Restored {
    json: Value,
    id: ExecutionId,
    namespace: String,
    flow_id: String,
    state: State,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    labels: Vec<(String, String)>,
}

impl Restored {
    /// Reads the fields the store indexes; `None` if the JSON lacks them or
    /// does not describe a finished execution.
    pub fn from_json(json: Value) -> Option<Self> {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let date = |v: &Value| {
            v.as_str()
                .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
                .map(|d| d.with_timezone(&Utc))
        };
        let state = State::parse(json["state"]["current"].as_str()?)?;
        if !state.is_terminal() {
            return None;
        }
        let labels = json["labels"]
            .as_array()
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|l| Some((text(&l["key"])?, text(&l["value"])?)))
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            id: json["id"].as_str()?.parse().ok()?,
            namespace: text(&json["namespace"])?,
            flow_id: text(&json["flowId"])?,
            start: date(&json["state"]["startDate"])?,
            end: date(&json["state"]["endDate"])?,
            state,
            labels,
            json,
        })
    }
}

/// What the store knows of one execution.
#[derive(Debug, Clone)]
pub enum Record {
    /// Accepted, not yet seen running.
    Pending(Arc<Pending>),
    /// The latest snapshot the engine published.
    Seen(Arc<Execution>),
    /// Finished before a restart.
    Restored(Arc<Restored>),
}

impl Record {
    pub fn namespace(&self) -> &str {
        match self {
            Record::Pending(p) => &p.namespace,
            Record::Seen(e) => e.namespace(),
            Record::Restored(r) => &r.namespace,
        }
    }

    pub fn flow_id(&self) -> &str {
        match self {
            Record::Pending(p) => &p.flow_id,
            Record::Seen(e) => e.flow_id(),
            Record::Restored(r) => &r.flow_id,
        }
    }

    pub fn state(&self) -> State {
        match self {
            Record::Pending(_) => State::Created,
            Record::Seen(e) => e.state(),
            Record::Restored(r) => r.state,
        }
    }

    pub fn start_date(&self) -> DateTime<Utc> {
        match self {
            Record::Pending(p) => p.created,
            Record::Seen(e) => e.history().start_date(),
            Record::Restored(r) => r.start,
        }
    }

    pub fn labels(&self) -> &[(String, String)] {
        match self {
            Record::Pending(p) => &p.labels,
            Record::Seen(e) => e.labels(),
            Record::Restored(r) => &r.labels,
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.state().is_terminal()
    }

    /// Kestra's execution JSON.
    pub fn to_json(&self, now: DateTime<Utc>) -> Value {
        match self {
            Record::Pending(p) => p.to_json(now),
            Record::Seen(e) => e.to_json(now),
            Record::Restored(r) => r.json.clone(),
        }
    }
}

/// Which executions a search wants.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// This namespace or one below it (`company` matches `company.team`).
    pub namespace: Option<String>,
    pub flow_id: Option<String>,
    /// Any of these states; all when empty.
    pub states: Vec<State>,
    /// Every one of these labels.
    pub labels: Vec<(String, String)>,
}

impl Filter {
    fn matches(&self, record: &Record) -> bool {
        if let Some(ns) = &self.namespace {
            let have = record.namespace();
            let below = have.len() > ns.len()
                && have.starts_with(ns.as_str())
                && have.as_bytes()[ns.len()] == b'.';
            if have != ns && !below {
                return false;
            }
        }
        if self
            .flow_id
            .as_deref()
            .is_some_and(|f| f != record.flow_id())
        {
            return false;
        }
        if !self.states.is_empty() && !self.states.contains(&record.state()) {
            return false;
        }
        self.labels
            .iter()
            .all(|wanted| record.labels().iter().any(|have| have == wanted))
    }
}

/// Too many executions are running: try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} executions are running, the most allowed")]
pub struct RunningLimit(pub usize);

#[derive(Debug)]
struct Entry {
    record: Record,
    /// Counted in `running` until it ends.
    counted: bool,
    /// When the API accepted it; `None` for executions it did not create.
    accepted: Option<Instant>,
}

#[derive(Debug, Default)]
struct Stripe {
    entries: HashMap<ExecutionId, Entry>,
    /// Finished executions, oldest first, with when they finished.
    finished: VecDeque<(Instant, ExecutionId)>,
}

/// Every execution the API can answer for.
#[derive(Debug)]
pub struct ExecutionStore {
    stripes: Box<[Mutex<Stripe>]>,
    running: AtomicUsize,
    max_running: usize,
    retention: Duration,
    finished_per_stripe: usize,
}

impl ExecutionStore {
    pub fn new(max_running: usize, retention: Duration, max_finished: usize) -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            running: AtomicUsize::new(0),
            max_running,
            retention,
            finished_per_stripe: max_finished.div_ceil(STRIPES).max(1),
        }
    }

    fn stripe(&self, id: ExecutionId) -> MutexGuard<'_, Stripe> {
        let raw = id.as_u128();
        let n = ((raw as u64) ^ ((raw >> 64) as u64)).rotate_right(17) as usize % STRIPES;
        // Every change under the lock is a single insert or removal, so a
        // panic elsewhere cannot leave a stripe half-changed.
        self.stripes[n]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Executions accepted and not ended.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Records an accepted execution, unless too many are running.
    pub fn admit(&self, pending: Pending) -> Result<(), RunningLimit> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_running).then_some(n + 1)
            })
            .map_err(RunningLimit)?;
        let id = pending.id;
        self.stripe(id).entries.insert(
            id,
            Entry {
                record: Record::Pending(Arc::new(pending)),
                counted: true,
                accepted: Some(Instant::now()),
            },
        );
        Ok(())
    }

    /// Forgets an execution that [`Self::admit`] recorded but the engine
    /// refused.
    pub fn withdraw(&self, id: ExecutionId) {
        let removed = self.stripe(id).entries.remove(&id);
        if removed.is_some_and(|e| e.counted) {
            self.running.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Keeps the engine's latest snapshot. When this change ended the
    /// execution, returns how long it took: from its acceptance by the API
    /// when it came through it, else by the engine's clock.
    pub fn observe(&self, execution: &Execution, terminal: bool) -> Option<Duration> {
        let id = execution.id();
        let record = Record::Seen(Arc::new(execution.clone()));
        let mut stripe = self.stripe(id);
        let (counted, was_terminal, accepted) = match stripe.entries.get(&id) {
            Some(e) => (e.counted, e.record.is_terminal(), e.accepted),
            None => (false, false, None),
        };
        let ends = terminal && !was_terminal;
        stripe.entries.insert(
            id,
            Entry {
                record,
                counted: counted && !ends,
                accepted,
            },
        );
        if !ends {
            return None;
        }
        if counted {
            self.running.fetch_sub(1, Ordering::AcqRel);
        }
        let now = Instant::now();
        stripe.finished.push_back((now, id));
        self.evict(&mut stripe, now);
        Some(match accepted {
            Some(at) => now.saturating_duration_since(at),
            None => {
                let history = execution.history();
                (history.end_date().unwrap_or_else(chrono::Utc::now) - history.start_date())
                    .to_std()
                    .unwrap_or_default()
            }
        })
    }

    /// Keeps a finished execution recovered from the journal, for what is
    /// left of its retention window. False if it is already past it.
    pub fn restore(&self, restored: Restored) -> bool {
        let age = (Utc::now() - restored.end).to_std().unwrap_or_default();
        if age >= self.retention {
            return false;
        }
        let now = Instant::now();
        let finished_at = now.checked_sub(age).unwrap_or(now);
        let id = restored.id;
        let mut stripe = self.stripe(id);
        stripe.entries.insert(
            id,
            Entry {
                record: Record::Restored(Arc::new(restored)),
                counted: false,
                accepted: None,
            },
        );
        stripe.finished.push_back((finished_at, id));
        self.evict(&mut stripe, now);
        true
    }

    pub fn get(&self, id: ExecutionId) -> Option<Record> {
        self.stripe(id).entries.get(&id).map(|e| e.record.clone())
    }

    /// Matching executions, newest first: one page of them (`page` from 1)
    /// and how many match in all.
    pub fn search(&self, filter: &Filter, page: usize, size: usize) -> (Vec<Record>, usize) {
        let mut found: Vec<Record> = Vec::new();
        for stripe in self.stripes.iter() {
            let stripe = stripe
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            found.extend(
                stripe
                    .entries
                    .values()
                    .filter(|e| filter.matches(&e.record))
                    .map(|e| e.record.clone()),
            );
        }
        let total = found.len();
        found.sort_by_key(|r| std::cmp::Reverse(r.start_date()));
        let skip = page.saturating_sub(1).saturating_mul(size);
        (found.into_iter().skip(skip).take(size).collect(), total)
    }

    /// Drops finished executions past the retention window.
    pub fn sweep(&self) {
        let now = Instant::now();
        for stripe in self.stripes.iter() {
            let mut stripe = stripe
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.evict(&mut stripe, now);
        }
    }

    fn evict(&self, stripe: &mut Stripe, now: Instant) {
        while let Some(&(at, id)) = stripe.finished.front() {
            let expired = now.saturating_duration_since(at) >= self.retention;
            if !expired && stripe.finished.len() <= self.finished_per_stripe {
                break;
            }
            stripe.finished.pop_front();
            if stripe
                .entries
                .get(&id)
                .is_some_and(|e| e.record.is_terminal())
            {
                stripe.entries.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(id: ExecutionId, ended: DateTime<Utc>) -> Value {
        serde_json::json!({
            "id": id.to_string(),
            "namespace": "company.team",
            "flowId": "f",
            "labels": [{"key": "k", "value": "v"}],
            "state": {
                "current": "SUCCESS",
                "startDate": format_date(ended - chrono::Duration::seconds(1)),
                "endDate": format_date(ended),
            },
        })
    }

    #[test]
    fn recovered_finished_executions_are_searchable_within_their_retention() {
        let store = ExecutionStore::new(10, Duration::from_secs(3600), 100);
        let recent = ExecutionId::from_u128(1);
        let old = ExecutionId::from_u128(2);
        let now = Utc::now();
        let restored = Restored::from_json(finished(recent, now)).expect("readable");
        assert!(store.restore(restored));
        let expired =
            Restored::from_json(finished(old, now - chrono::Duration::hours(2))).expect("readable");
        assert!(!store.restore(expired), "past its retention");
        assert!(Restored::from_json(serde_json::json!({"id": "x"})).is_none());

        let record = store.get(recent).expect("kept");
        assert_eq!(record.state(), State::Success);
        assert_eq!(record.to_json(now)["flowId"], "f");
        assert!(store.get(old).is_none());
        let filter = Filter {
            namespace: Some("company".into()),
            labels: vec![("k".into(), "v".into())],
            ..Filter::default()
        };
        assert_eq!(store.search(&filter, 1, 10).1, 1);
        assert_eq!(store.running(), 0, "restored executions are not running");
    }
}
