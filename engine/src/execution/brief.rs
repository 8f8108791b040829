//! An execution in brief: what a list of executions shows of each, cheap
//! to take on a shard's thread for every change while somebody watches.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::id::ExecutionId;
use super::model::Execution;
use super::state::{State, StateHistory, format_date, iso_duration};

/// An execution's id, flow, labels and state history, without its task
/// runs, inputs or outputs.
#[derive(Debug, Clone)]
pub struct Brief {
    pub(crate) id: ExecutionId,
    pub(crate) namespace: Arc<str>,
    pub(crate) flow_id: Arc<str>,
    pub(crate) flow_revision: u32,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) state: StateHistory,
    /// `trigger.variables.executionId`: the execution that started it.
    pub(crate) trigger_execution: Option<String>,
}

impl Brief {
    pub fn of(execution: &Execution) -> Self {
        Self {
            id: execution.id,
            namespace: Arc::clone(&execution.namespace),
            flow_id: Arc::clone(&execution.flow_id),
            flow_revision: execution.flow_revision,
            labels: execution.labels.clone(),
            state: execution.state.clone(),
            trigger_execution: execution
                .trigger
                .as_ref()
                .and_then(|t| t["variables"]["executionId"].as_str())
                .map(str::to_owned),
        }
    }

    pub fn id(&self) -> ExecutionId {
        self.id
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn flow_id(&self) -> &str {
        &self.flow_id
    }

    pub fn state(&self) -> State {
        self.state.current()
    }

    pub fn history(&self) -> &StateHistory {
        &self.state
    }

    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The fields of Kestra's execution JSON a brief has: `id`,
    /// `namespace`, `flowId`, `flowRevision`, `labels` and `state` (its
    /// duration counted up to `now` while it runs).
    pub fn json(&self, now: DateTime<Utc>) -> impl Serialize + '_ {
        BriefJson { brief: self, now }
    }
}

struct BriefJson<'a> {
    brief: &'a Brief,
    now: DateTime<Utc>,
}

impl Serialize for BriefJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.brief;
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry("id", &b.id.to_string())?;
        map.serialize_entry("namespace", &*b.namespace)?;
        map.serialize_entry("flowId", &*b.flow_id)?;
        map.serialize_entry("flowRevision", &b.flow_revision)?;
        map.serialize_entry("labels", &Labels(&b.labels))?;
        map.serialize_entry("state", &StateJson(&b.state, self.now))?;
        map.end()
    }
}

struct Labels<'a>(&'a [(String, String)]);

impl Serialize for Labels<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(key, value)| {
            let mut m = serde_json::Map::new();
            m.insert("key".into(), key.as_str().into());
            m.insert("value".into(), value.as_str().into());
            m
        }))
    }
}

struct StateJson<'a>(&'a StateHistory, DateTime<Utc>);

impl Serialize for StateJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self.0;
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("current", h.current().as_str())?;
        map.serialize_entry(
            "histories",
            &h.histories()
                .iter()
                .map(|c| {
                    let mut m = serde_json::Map::new();
                    m.insert("state".into(), c.state.as_str().into());
                    m.insert("date".into(), format_date(c.date).into());
                    m
                })
                .collect::<Vec<_>>(),
        )?;
        map.serialize_entry("startDate", &format_date(h.start_date()))?;
        map.serialize_entry("endDate", &h.end_date().map(format_date))?;
        map.serialize_entry("duration", &iso_duration(h.duration(self.1)))?;
        map.end()
    }
}
