//! The variables a template sees while a task of an execution runs.

use serde_json::{Map, Value, json};

use super::run::Run;
use crate::execution::format_date;
use crate::expression::{Context, Scope};

/// Renders for one task run (`None`: at the execution level, e.g. flow outputs).
pub(crate) struct RenderContext<'a> {
    pub run: &'a Run,
    pub task_run: Option<u32>,
}

impl RenderContext<'_> {
    fn task_run_json(&self, idx: u32) -> Value {
        let tr = &self.run.exec.task_runs[idx as usize];
        let mut map = Map::with_capacity(7);
        map.insert("id".into(), tr.id.to_string().into());
        map.insert("taskId".into(), Value::from(&*tr.task_id));
        map.insert(
            "value".into(),
            tr.value.as_deref().map_or(Value::Null, Value::from),
        );
        if let Some(iteration) = tr.iteration {
            map.insert("iteration".into(), iteration.into());
        }
        if let Some(parent) = tr.parent {
            let parent = &self.run.exec.task_runs[parent as usize];
            map.insert("parentId".into(), parent.id.to_string().into());
        }
        map.insert(
            "startDate".into(),
            format_date(tr.state.start_date()).into(),
        );
        map.insert("attemptsCount".into(), tr.attempts.len().into());
        Value::Object(map)
    }

    /// Innermost first, as Kestra's `parents`.
    fn parents_json(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = self
            .task_run
            .and_then(|i| self.run.exec.task_runs[i as usize].parent);
        while let Some(idx) = cursor {
            out.push(json!({ "taskrun": self.task_run_json(idx) }));
            cursor = self.run.exec.task_runs[idx as usize].parent;
        }
        out
    }
}

impl Context for RenderContext<'_> {
    fn root(&self, name: &str) -> Option<Scope<'_>> {
        let run = self.run;
        match name {
            "inputs" => Some(Scope::Json(&run.exec.inputs)),
            "outputs" => Some(Scope::Lazy(&run.outputs)),
            "vars" => Some(Scope::Json(&run.rev.variables)),
            "flow" => Some(Scope::Json(&run.rev.flow_json)),
            "trigger" => run.exec.trigger.as_ref().map(Scope::Json),
            "execution" => Some(Scope::Owned(json!({
                "id": run.exec.id.to_string(),
                "startDate": format_date(run.exec.state.start_date()),
                "state": run.exec.state.current().as_str(),
            }))),
            "labels" => Some(Scope::Owned(Value::Object(
                run.exec
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect(),
            ))),
            "task" => self
                .task_run
                .map(|i| Scope::Json(&run.rev.node(run.slots[i as usize].task).task_json)),
            "taskrun" => self.task_run.map(|i| Scope::Owned(self.task_run_json(i))),
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
}

/// Kestra's truthiness of a rendered condition.
pub(crate) fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !matches!(s.trim(), "" | "false" | "0" | "-0" | "0.0" | "null"),
        Value::Array(_) | Value::Object(_) => true,
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
