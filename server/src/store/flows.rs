//! Flows by namespace and id, each with the revision in force and a
//! revision number that increases on every save, across deletions too.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use peregrine_engine::flow::{Flow, TriggerKind};
use peregrine_engine::{ConfigVariables, FlowRevision};
use serde_json::Value;

use super::persistence::{FlowChange, Persistence};

/// A flow's namespace and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub namespace: String,
    pub id: String,
}

/// A saved revision of a flow, compiled once and shared by its executions.
#[derive(Debug)]
pub struct StoredFlow {
    revision: Arc<FlowRevision>,
    /// Kestra's flow JSON, without `source`.
    json: Value,
    /// When this revision was saved, to the millisecond; `None` for a
    /// revision recovered from a log written before dates were kept.
    updated: Option<DateTime<Utc>>,
}

impl StoredFlow {
    fn new(mut flow: Flow, revision: u32, updated: Option<DateTime<Utc>>) -> Self {
        flow.revision = revision;
        let json = flow_json(&flow, updated);
        Self {
            revision: Arc::new(FlowRevision::new(Arc::new(flow))),
            json,
            updated,
        }
    }

    pub fn flow(&self) -> &Flow {
        self.revision.flow()
    }

    pub fn revision(&self) -> &Arc<FlowRevision> {
        &self.revision
    }

    pub fn updated(&self) -> Option<DateTime<Utc>> {
        self.updated
    }

    /// The flow as Kestra's API shows it; with its YAML under `source` when
    /// asked.
    pub fn to_json(&self, with_source: bool) -> Value {
        let mut json = self.json.clone();
        if with_source && let Value::Object(map) = &mut json {
            map.insert("source".into(), self.flow().source.as_str().into());
        }
        json
    }

    /// The id of the enabled Webhook trigger that answers to `key`, if
    /// any: its key as written, or rendered (with `flow`, `envs`,
    /// `globals` and `secret()`) when it is a template.
    pub fn webhook(&self, key: &str, variables: &ConfigVariables) -> Option<&str> {
        let flow = self.flow();
        if flow.disabled {
            return None;
        }
        let vars = serde_json::json!({
            "flow": {"id": flow.id, "namespace": flow.namespace, "revision": self.revision().revision()},
        });
        flow.triggers
            .iter()
            .find(|t| {
                !t.disabled
                    && match &t.kind {
                        TriggerKind::Webhook {
                            template: Some(p), ..
                        } => variables.render_text(p, &vars).is_ok_and(|k| k == key),
                        TriggerKind::Webhook { key: k, .. } => k == key,
                        _ => false,
                    }
            })
            .map(|t| t.id.as_str())
    }
}

/// The flow's YAML as JSON, with the repository's revision and date, shaped
/// as Kestra's `Flow` answers it: the fields Kestra types with its types
/// (`shape.rs`), `labels` as a list of `{key, value}` even
/// when the YAML has a map, and `draft` (Peregrine has no drafts). The source was just parsed by the
/// engine, so reading it again cannot fail in practice; if it did, the
/// answer still carries the identifying fields.
fn flow_json(flow: &Flow, updated: Option<DateTime<Utc>>) -> Value {
    let options = serde_saphyr::options! { strict_booleans: true, with_snippet: false };
    let mut json = serde_saphyr::from_str_with_options::<Value>(&flow.source, options)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    if let Value::Object(map) = &mut json {
        super::shape::type_flow(map);
        map.insert("id".into(), flow.id.as_str().into());
        map.insert("namespace".into(), flow.namespace.as_str().into());
        map.insert("revision".into(), flow.revision.into());
        if let Some(updated) = updated {
            map.insert("updated".into(), rfc3339(updated).into());
        }
        map.insert("disabled".into(), flow.disabled.into());
        map.insert("draft".into(), false.into());
        map.insert("deleted".into(), false.into());
        if map.contains_key("labels") {
            let labels = flow
                .labels
                .iter()
                .map(|(key, value)| serde_json::json!({"key": key, "value": value}))
                .collect();
            map.insert("labels".into(), Value::Array(labels));
        }
    }
    json
}

/// A revision's date as the API and the flows log write it.
pub(crate) fn rfc3339(date: DateTime<Utc>) -> String {
    date.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now, to the millisecond: what the log keeps is what the API showed.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// Why a flow change was refused.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("flow {0}.{1} already exists")]
    Exists(String, String),
    #[error("flow {0}.{1} not found")]
    NotFound(String, String),
    #[error("the change could not be made durable: {0}")]
    Durability(#[from] std::io::Error),
}

#[derive(Debug, Default)]
struct Slot {
    /// `None` once deleted.
    current: Option<Arc<StoredFlow>>,
    /// Highest revision ever given, so that a re-created flow goes on from it.
    last_revision: u32,
    /// Every revision saved, deleted ones too: recovery resumes an execution
    /// with the revision it started with, however old. Flows are small, and
    /// Kestra keeps every revision as well.
    history: BTreeMap<u32, Arc<StoredFlow>>,
}

impl Slot {
    fn save(&mut self, stored: Arc<StoredFlow>) {
        let revision = stored.flow().revision;
        self.last_revision = self.last_revision.max(revision);
        self.history.insert(revision, Arc::clone(&stored));
        self.current = Some(stored);
    }
}

/// Every flow, by namespace then id.
#[derive(Debug)]
pub struct FlowRepository {
    flows: RwLock<BTreeMap<String, HashMap<String, Slot>>>,
    persistence: Arc<dyn Persistence>,
}

impl FlowRepository {
    /// Rebuilds the flows that `persistence` recovered.
    pub fn open(persistence: Arc<dyn Persistence>) -> std::io::Result<Self> {
        let repo = Self {
            flows: RwLock::default(),
            persistence,
        };
        for change in repo.persistence.recovered_flows()? {
            repo.replay(change);
        }
        Ok(repo)
    }

    fn replay(&self, change: FlowChange) {
        let mut flows = self.write();
        match change {
            FlowChange::Saved {
                namespace,
                id,
                revision,
                source,
                updated,
            } => match Flow::parse(&source) {
                Ok(flow) => {
                    let slot = flows.entry(namespace).or_default().entry(id).or_default();
                    slot.save(Arc::new(StoredFlow::new(flow, revision, updated)));
                }
                Err(e) => tracing::error!("recovered flow {namespace}.{id} no longer parses: {e}"),
            },
            FlowChange::Deleted {
                namespace,
                id,
                revision,
            } => {
                let slot = flows.entry(namespace).or_default().entry(id).or_default();
                slot.last_revision = slot.last_revision.max(revision);
                slot.current = None;
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, HashMap<String, Slot>>> {
        // A panic while holding the lock cannot leave the map half-changed:
        // every change is one insert or assignment.
        self.flows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, HashMap<String, Slot>>> {
        self.flows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, namespace: &str, id: &str) -> Option<Arc<StoredFlow>> {
        self.read()
            .get(namespace)?
            .get(id)?
            .current
            .as_ref()
            .map(Arc::clone)
    }

    /// One saved revision of a flow, deleted or replaced since or not. Fits
    /// the engine's `FlowLookup`, which recovery uses to resume executions.
    pub fn revision(&self, namespace: &str, id: &str, revision: u32) -> Option<Arc<StoredFlow>> {
        self.read()
            .get(namespace)?
            .get(id)?
            .history
            .get(&revision)
            .map(Arc::clone)
    }

    /// What a Subflow starts: revision `revision` of a flow that exists
    /// (its current one when `None`), refused with Kestra's messages when
    /// it is not found or disabled.
    fn runnable(
        &self,
        namespace: &str,
        id: &str,
        revision: Option<u32>,
    ) -> Result<Arc<StoredFlow>, String> {
        let current = self.get(namespace, id);
        let found = match revision {
            None => current,
            Some(r) => current.and_then(|_| self.revision(namespace, id, r)),
        };
        let stored = found.ok_or_else(|| {
            format!(
                "Unable to find flow '{namespace}'.'{id}' with revision '{}'",
                revision.unwrap_or(0)
            )
        })?;
        if stored.flow().disabled {
            return Err("Cannot execute a flow which is disabled".to_owned());
        }
        Ok(stored)
    }

    /// Every saved revision of a flow, oldest first, those from before a
    /// deletion too (the numbering goes on across it); `None` unless the
    /// flow exists now.
    pub fn revisions(&self, namespace: &str, id: &str) -> Option<Vec<Arc<StoredFlow>>> {
        let flows = self.read();
        let slot = flows.get(namespace)?.get(id)?;
        slot.current.as_ref()?;
        Some(slot.history.values().cloned().collect())
    }

    /// Every current flow.
    pub fn all(&self) -> Vec<Arc<StoredFlow>> {
        self.read()
            .values()
            .flat_map(|ids| ids.values().filter_map(|s| s.current.clone()))
            .collect()
    }

    /// The flows of one namespace, by id.
    pub fn list(&self, namespace: &str) -> Vec<Arc<StoredFlow>> {
        let mut out: Vec<_> = self
            .read()
            .get(namespace)
            .map(|ids| ids.values().filter_map(|s| s.current.clone()).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| a.flow().id.cmp(&b.flow().id));
        out
    }

    /// Saves a new flow; refused if one with its namespace and id exists.
    pub async fn create(&self, flow: Flow) -> Result<Arc<StoredFlow>, FlowError> {
        let stored = {
            let mut flows = self.write();
            let slot = flows
                .entry(flow.namespace.clone())
                .or_default()
                .entry(flow.id.clone())
                .or_default();
            if slot.current.is_some() {
                return Err(FlowError::Exists(flow.namespace, flow.id));
            }
            let stored = Arc::new(StoredFlow::new(flow, slot.last_revision + 1, Some(now())));
            slot.save(Arc::clone(&stored));
            stored
        };
        self.persist_saved(&stored).await?;
        Ok(stored)
    }

    /// Replaces a flow with a new revision (the previous one + 1).
    /// Executions already running keep the revision they started with.
    pub async fn update(&self, flow: Flow) -> Result<Arc<StoredFlow>, FlowError> {
        let stored = {
            let mut flows = self.write();
            let slot = flows
                .get_mut(&flow.namespace)
                .and_then(|ids| ids.get_mut(&flow.id))
                .filter(|slot| slot.current.is_some());
            let Some(slot) = slot else {
                return Err(FlowError::NotFound(flow.namespace, flow.id));
            };
            let stored = Arc::new(StoredFlow::new(flow, slot.last_revision + 1, Some(now())));
            slot.save(Arc::clone(&stored));
            stored
        };
        self.persist_saved(&stored).await?;
        Ok(stored)
    }

    pub async fn delete(&self, namespace: &str, id: &str) -> Result<(), FlowError> {
        let revision = {
            let mut flows = self.write();
            let slot = flows
                .get_mut(namespace)
                .and_then(|ids| ids.get_mut(id))
                .filter(|slot| slot.current.is_some());
            let Some(slot) = slot else {
                return Err(FlowError::NotFound(namespace.into(), id.into()));
            };
            slot.current = None;
            slot.last_revision
        };
        self.persistence
            .flow_changed(FlowChange::Deleted {
                namespace: namespace.into(),
                id: id.into(),
                revision,
            })
            .await?;
        Ok(())
    }

    async fn persist_saved(&self, stored: &StoredFlow) -> Result<(), FlowError> {
        let flow = stored.flow();
        self.persistence
            .flow_changed(FlowChange::Saved {
                namespace: flow.namespace.clone(),
                id: flow.id.clone(),
                revision: flow.revision,
                source: flow.source.clone(),
                updated: stored.updated,
            })
            .await?;
        Ok(())
    }
}

impl peregrine_engine::Flows for FlowRepository {
    fn find(
        &self,
        namespace: &str,
        flow_id: &str,
        revision: Option<u32>,
    ) -> Result<Arc<FlowRevision>, String> {
        self.runnable(namespace, flow_id, revision)
            .map(|stored| Arc::clone(stored.revision()))
    }
}
