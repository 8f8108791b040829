//! The variables a template sees while a task of an execution runs.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::reads::FileAsk;
use super::run::Run;
use crate::execution::format_date;
use crate::expression::{Context, LazyObject, Scope};
use crate::flow::Level;

/// Renders for one task run (`None`: at the execution level, e.g. flow outputs).
pub(crate) struct RenderContext<'a> {
    run: &'a Run,
    task_run: Option<u32>,
    /// `taskrun`, answered field by field: a template that reads
    /// `taskrun.value` builds nothing else.
    task_run_view: TaskRunView<'a>,
}

impl<'a> RenderContext<'a> {
    /// The variables the execution's tasks set so far, if any.
    pub(crate) fn execution_variables(&self) -> Option<&'a serde_json::Map<String, Value>> {
        self.run.execution().variables.as_ref()
    }

    /// The namespace and id of the execution's flow.
    pub(crate) fn flow_name(&self) -> (String, String) {
        let exec = self.run.execution();
        (exec.namespace().to_owned(), exec.flow_id().to_owned())
    }

    /// Which task run of which execution this renders for (`None`: at the
    /// execution level).
    pub(crate) fn place(&self) -> Option<crate::tasks::Place> {
        let exec = self.run.execution();
        let tr = &exec.task_runs[self.task_run? as usize];
        Some(crate::tasks::Place {
            namespace: exec.namespace().to_owned(),
            flow_id: exec.flow_id().to_owned(),
            execution: exec.id,
            task_id: tr.task_id.to_string(),
            task_run: tr.id.to_string(),
            attempt: u32::try_from(tr.attempts.len()).unwrap_or(u32::MAX),
        })
    }

    /// Where the lines of this task run's current attempt are shown as its
    /// job prints them.
    pub(crate) fn live_target(&self) -> Option<crate::logs::LiveTarget> {
        let exec = self.run.execution();
        let tr = &exec.task_runs[self.task_run? as usize];
        let attempt = u32::try_from(tr.attempts.len().saturating_sub(1)).unwrap_or(u32::MAX);
        Some(crate::logs::LiveTarget {
            execution: exec.id,
            namespace: Arc::clone(&exec.namespace),
            flow_id: Arc::clone(&exec.flow_id),
            task_id: Arc::clone(&tr.task_id),
            task_run: (tr.id, attempt),
            masked: self.run.masked_values(),
        })
    }

    /// The task run id of the nearest task run above this one whose folder
    /// its tasks share (see `Run::folder_owner`).
    pub(crate) fn shared_folder(&self) -> Option<String> {
        let owner = self.run.folder_owner(self.task_run?)?;
        Some(
            self.run.execution().task_runs[owner as usize]
                .id
                .to_string(),
        )
    }

    /// The outputs of the task run this renders for, as they stand.
    pub(crate) fn own_outputs(&self) -> Option<std::sync::Arc<serde_json::Value>> {
        self.run.execution().task_runs[self.task_run? as usize]
            .outputs
            .clone()
    }

    /// The outputs of the last task run of `task_id` beside this one (under
    /// the same parent), if it has any.
    pub(crate) fn sibling_outputs(
        &self,
        task_id: &str,
    ) -> Option<std::sync::Arc<serde_json::Value>> {
        let sibling = self.run.sibling(self.task_run?, task_id)?;
        self.run.execution().task_runs[sibling as usize]
            .outputs
            .clone()
    }

    /// The child executions of the batches the last task run of `task_id`
    /// beside this one started (see `Run::batch_children`).
    pub(crate) fn sibling_batches(&self, task_id: &str, count: u32) -> Vec<crate::ExecutionId> {
        self.task_run
            .and_then(|tr| self.run.sibling(tr, task_id))
            .map(|sibling| self.run.batch_children(sibling, count))
            .unwrap_or_default()
    }

    /// Whether the execution may read `uri` (see `Run::may_read`).
    pub(crate) fn may_read(&self, uri: &crate::storage::Uri) -> bool {
        self.run.may_read(uri)
    }

    /// What the run may spend.
    pub(crate) fn limits(&self) -> super::Limits {
        self.run.limits()
    }

    /// The engine's surroundings (its files).
    pub(crate) fn variables(&self) -> &super::ConfigVariables {
        self.run.variables()
    }

    pub fn new(run: &'a Run, task_run: Option<u32>) -> Self {
        Self {
            run,
            task_run,
            task_run_view: TaskRunView {
                run,
                idx: task_run.unwrap_or(0),
            },
        }
    }
}

/// Kestra's `taskrun` variable for one task run, read in place.
#[derive(Debug)]
struct TaskRunView<'a> {
    run: &'a Run,
    idx: u32,
}

impl TaskRunView<'_> {
    /// Kestra's `taskrun`: `value` is absent, not null, when the run has none.
    fn json(&self) -> Value {
        let tr = &self.run.execution().task_runs[self.idx as usize];
        let mut map = Map::with_capacity(6);
        map.insert("id".into(), tr.id.to_string().into());
        map.insert(
            "startDate".into(),
            format_date(tr.state.start_date()).into(),
        );
        map.insert("attemptsCount".into(), attempts_ended(tr).into());
        if let Some(parent) = tr.parent {
            let parent = &self.run.execution().task_runs[parent as usize];
            map.insert("parentId".into(), parent.id.to_string().into());
        }
        if let Some(value) = &tr.value {
            map.insert("value".into(), Value::from(&**value));
        }
        if let Some(iteration) = tr.iteration {
            map.insert("iteration".into(), iteration.into());
        }
        Value::Object(map)
    }
}

impl LazyObject for TaskRunView<'_> {
    fn get(&self, key: &str) -> Option<Scope<'_>> {
        let tr = self.run.execution().task_runs.get(self.idx as usize)?;
        let value = match key {
            "value" => Value::from(&**tr.value.as_ref()?),
            "id" => tr.id.to_string().into(),
            "taskId" => Value::from(&*tr.task_id),
            "iteration" => tr.iteration?.into(),
            "parentId" => self.run.execution().task_runs[tr.parent? as usize]
                .id
                .to_string()
                .into(),
            "startDate" => format_date(tr.state.start_date()).into(),
            "attemptsCount" => attempts_ended(tr).into(),
            _ => return None,
        };
        Some(Scope::Owned(value))
    }

    fn to_json(&self) -> Value {
        self.json()
    }
}

/// Attempts before the one running now, as Kestra counts them.
fn attempts_ended(tr: &crate::execution::TaskRun) -> usize {
    tr.attempts
        .iter()
        .filter(|a| a.state.current().is_terminal())
        .count()
}

impl RenderContext<'_> {
    /// Kestra's `parents`: the ancestors, closest first, keeping those with
    /// a value or non-empty outputs, each as `{taskrun: {value}, outputs}`.
    fn parents_json(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = self
            .task_run
            .and_then(|i| self.run.execution().task_runs[i as usize].parent);
        while let Some(idx) = cursor {
            let tr = &self.run.execution().task_runs[idx as usize];
            let outputs = tr
                .outputs
                .as_deref()
                .filter(|o| o.as_object().is_some_and(|m| !m.is_empty()));
            if tr.value.is_some() || outputs.is_some() {
                let mut entry = Map::with_capacity(2);
                if let Some(value) = &tr.value {
                    entry.insert("taskrun".into(), json!({ "value": &**value }));
                }
                if let Some(outputs) = outputs {
                    entry.insert("outputs".into(), outputs.clone());
                }
                out.push(Value::Object(entry));
            }
            cursor = tr.parent;
        }
        out
    }
}

impl Context for RenderContext<'_> {
    fn root(&self, name: &str) -> Option<Scope<'_>> {
        let run = self.run;
        match name {
            "inputs" => Some(Scope::Json(&run.execution().inputs)),
            "outputs" => Some(Scope::Lazy(run.outputs())),
            "vars" => Some(Scope::Json(run.vars())),
            "flow" => Some(Scope::Json(&run.revision().flow_json)),
            // Kestra: the flow's `trigger` is the execution trigger's variables.
            "trigger" => run
                .execution()
                .trigger
                .as_ref()
                .and_then(|t| t.get("variables"))
                .map(Scope::Json),
            // Kestra's legacy `schedule`: a Schedule sets it among the
            // execution's variables, the same as its `trigger`.
            "schedule" => run
                .execution()
                .trigger
                .as_ref()
                .filter(|t| t["type"] == crate::flow::SCHEDULE)
                .and_then(|t| t.get("variables"))
                .map(Scope::Json),
            "execution" => Some(Scope::Owned(json!({
                "id": run.execution().id.to_string(),
                "startDate": format_date(run.execution().state.start_date()),
                "originalId": run.execution().id.to_string(),
            }))),
            "labels" => Some(Scope::Owned(labels_json(&run.execution().labels))),
            // From the engine's configuration, not the execution's journal.
            "envs" => Some(Scope::Json(run.variables().envs())),
            "globals" => Some(Scope::Json(run.variables().globals())),
            "task" => self
                .task_run
                .and_then(|i| run.task_json(i))
                .map(Scope::Json),
            "taskrun" => self.task_run.map(|_| Scope::Lazy(&self.task_run_view)),
            "parents" => self
                .task_run
                .map(|_| Scope::Owned(Value::Array(self.parents_json()))),
            "parent" => self
                .task_run
                .and_then(|_| self.parents_json().into_iter().next())
                .map(Scope::Owned),
            _ => None,
        }
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.run.instant()
    }

    fn budget(&self) -> crate::expression::Budget {
        self.run.limits().expression
    }

    fn function(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        match name {
            // Kestra's `secret('NAME')`, from the engine's configuration.
            "secret" => Some(self.run.variables().secret_call(args)),
            // Kestra's `kv('key')`, read once per step and journaled.
            "kv" => Some(self.run.kv_call(args)),
            // Kestra's file functions, over the internal storage.
            "read" => Some(self.run.file_call(FileAsk::Read, args)),
            "fileSize" => Some(self.run.file_call(FileAsk::Size, args)),
            "fileExists" => Some(self.run.file_call(FileAsk::Exists, args)),
            "isFileEmpty" => Some(self.run.file_call(FileAsk::Empty, args)),
            // Kestra's `errorLogs()`: the execution's ERROR log lines so far.
            "errorLogs" => Some(Ok(Value::Array(
                self.run
                    .execution()
                    .logs
                    .entries()
                    .iter()
                    .filter(|l| l.level == Level::Error)
                    .map(|l| {
                        json!({
                            "taskId": l.task_id.as_deref(),
                            "message": l.message,
                            "level": l.level.as_str(),
                            "timestamp": format_date(l.date),
                            "executionId": self.run.execution().id.to_string(),
                        })
                    })
                    .collect(),
            ))),
            _ => None,
        }
    }
}

/// Kestra's `labels`: `system.x` keys read as `labels.system.x`.
fn labels_json(labels: &[(String, String)]) -> Value {
    let mut map = Map::with_capacity(labels.len());
    let mut system = Map::new();
    for (k, v) in labels {
        match k.strip_prefix("system.") {
            Some(rest) => {
                system.insert(rest.to_owned(), Value::from(v.as_str()));
            }
            None => {
                map.insert(k.clone(), Value::from(v.as_str()));
            }
        }
    }
    if !system.is_empty() {
        map.insert("system".into(), Value::Object(system));
    }
    Value::Object(map)
}

/// Kestra's truthiness (`TruthUtils`): the rendered text is false when it
/// is exactly `false`, `0`, `-0` or empty; a null render is false.
pub(crate) fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !matches!(s.as_str(), "" | "false" | "0" | "-0"),
        other => !matches!(other.to_string().as_str(), "0" | "-0"),
    }
}

/// A rendered value as the string Kestra would pass a `String` property.
pub(crate) fn into_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
