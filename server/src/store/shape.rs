//! A flow's YAML, read as JSON, given the types Kestra answers its fields
//! with.
//!
//! The engine reads scalars as Jackson does (`disabled: "true"` is true,
//! `description: 42` is "42"), so a flow may spell a field loosely and still
//! be valid. Kestra answers the typed value it read, and clients that
//! validate answers (kestrapy's models) refuse the loose spelling. This pass
//! types the fields Kestra's `Flow`, `Input`, `Output`, `Task` and
//! `AbstractTrigger` declare, as Kestra serializes them: booleans, text, and
//! its `Property` values as text (a list or map as its JSON). A task's own
//! properties are left as written: which of them are properties (and so
//! answered as text) is each plugin's business.

use serde_json::{Map, Value};

/// Keys under which a task holds more tasks (a list of them, or, for
/// `cases`, a map of lists; Dag's `tasks` holds `{task, dependsOn}`).
const CHILD_LISTS: &[&str] = &["tasks", "then", "else", "errors", "finally", "defaults"];

/// Types the fields of `flow` (the YAML as JSON) in place.
pub(super) fn type_flow(flow: &mut Map<String, Value>) {
    text(flow, "description");
    for input in objects(flow, "inputs") {
        texts(input, &["description", "displayName"]);
        boolean(input, "required");
        property(input, "defaults");
        property(input, "prefill");
    }
    for output in objects(flow, "outputs") {
        texts(output, &["description", "displayName"]);
        boolean(output, "required");
        // A template, or a value: scalars as text, as a template renders.
        if let Some(value) = output.get_mut("value")
            && let Some(scalar) = scalar_text(value)
        {
            *value = Value::String(scalar);
        }
    }
    for key in ["tasks", "errors", "finally", "afterExecution"] {
        for task in objects(flow, key) {
            type_task(task);
        }
    }
    for trigger in objects(flow, "triggers") {
        texts(trigger, &["description", "when"]);
        booleans(
            trigger,
            &[
                "disabled",
                "logToFile",
                "failOnTriggerError",
                "allowConcurrent",
            ],
        );
    }
}

fn type_task(task: &mut Map<String, Value>) {
    texts(task, &["description", "runIf"]);
    booleans(
        task,
        &["disabled", "allowFailure", "allowWarning", "logToFile"],
    );
    property(task, "timeout");
    for key in CHILD_LISTS {
        for child in objects(task, key) {
            // Dag: `{task, dependsOn}`.
            let is_task = child.contains_key("type");
            match child.get_mut("task") {
                Some(Value::Object(inner)) if !is_task => type_task(inner),
                _ => type_task(child),
            }
        }
    }
    if let Some(Value::Object(cases)) = task.get_mut("cases") {
        for list in cases.values_mut() {
            if let Value::Array(list) = list {
                list.iter_mut()
                    .filter_map(Value::as_object_mut)
                    .for_each(type_task);
            }
        }
    }
}

/// The objects of the list under `key`, if it is one.
fn objects<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// A number or boolean as the text Jackson reads it as.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text(map: &mut Map<String, Value>, key: &str) {
    if let Some(value) = map.get_mut(key)
        && let Some(scalar) = scalar_text(value)
    {
        *value = Value::String(scalar);
    }
}

fn texts(map: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        text(map, key);
    }
}

fn boolean(map: &mut Map<String, Value>, key: &str) {
    if let Some(value) = map.get_mut(key)
        && let Value::String(s) = value
    {
        if s.eq_ignore_ascii_case("true") {
            *value = Value::Bool(true);
        } else if s.eq_ignore_ascii_case("false") {
            *value = Value::Bool(false);
        }
    }
}

fn booleans(map: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        boolean(map, key);
    }
}

/// Kestra's `Property`: always answered as text, a list or map as its JSON.
fn property(map: &mut Map<String, Value>, key: &str) {
    let Some(value) = map.get_mut(key) else {
        return;
    };
    let typed = match &*value {
        Value::Null | Value::String(_) => return,
        Value::Array(_) | Value::Object(_) => value.to_string(),
        scalar => scalar_text(scalar).unwrap_or_default(),
    };
    *value = Value::String(typed);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn loosely_spelled_fields_are_answered_with_kestras_types() {
        let mut flow = json!({
            "id": "f", "namespace": "n",
            "description": 42,
            "inputs": [
                {"id": "a", "type": "INT", "defaults": 2, "required": "false", "displayName": 7},
                {"id": "b", "type": "ARRAY", "itemType": "INT", "defaults": [1, 2]},
                {"id": "c", "type": "JSON", "defaults": {"k": true}},
                {"id": "d", "type": "BOOLEAN", "defaults": true, "prefill": "x"},
            ],
            "outputs": [{"id": "o", "type": "INT", "value": 3, "required": "TRUE"}],
            "tasks": [{
                "id": "if", "type": "io.kestra.plugin.core.flow.If",
                "condition": true, "disabled": "false", "runIf": true,
                "then": [{"id": "t", "type": "x", "allowFailure": "true", "format": 42}],
                "else": [{
                    "id": "dag", "type": "io.kestra.plugin.core.flow.Dag",
                    "tasks": [{"task": {"id": "inner", "type": "x", "description": 1.5}}],
                }],
            }, {
                "id": "switch", "type": "io.kestra.plugin.core.flow.Switch", "value": "a",
                "cases": {"a": [{"id": "case", "type": "x", "allowWarning": "True"}]},
                "defaults": [{"id": "other", "type": "x", "logToFile": "false", "timeout": 60}],
            }],
            "errors": [{"id": "e", "type": "x", "disabled": "true"}],
            "triggers": [{"id": "t", "type": "x", "disabled": "TRUE", "when": false}],
        });
        type_flow(flow.as_object_mut().unwrap());
        let expected = json!({
            "id": "f", "namespace": "n",
            "description": "42",
            "inputs": [
                {"id": "a", "type": "INT", "defaults": "2", "required": false, "displayName": "7"},
                {"id": "b", "type": "ARRAY", "itemType": "INT", "defaults": "[1,2]"},
                {"id": "c", "type": "JSON", "defaults": "{\"k\":true}"},
                {"id": "d", "type": "BOOLEAN", "defaults": "true", "prefill": "x"},
            ],
            "outputs": [{"id": "o", "type": "INT", "value": "3", "required": true}],
            "tasks": [{
                "id": "if", "type": "io.kestra.plugin.core.flow.If",
                // A task's own properties stay as written.
                "condition": true, "disabled": false, "runIf": "true",
                "then": [{"id": "t", "type": "x", "allowFailure": true, "format": 42}],
                "else": [{
                    "id": "dag", "type": "io.kestra.plugin.core.flow.Dag",
                    "tasks": [{"task": {"id": "inner", "type": "x", "description": "1.5"}}],
                }],
            }, {
                "id": "switch", "type": "io.kestra.plugin.core.flow.Switch", "value": "a",
                "cases": {"a": [{"id": "case", "type": "x", "allowWarning": true}]},
                "defaults": [{"id": "other", "type": "x", "logToFile": false, "timeout": "60"}],
            }],
            "errors": [{"id": "e", "type": "x", "disabled": true}],
            "triggers": [{"id": "t", "type": "x", "disabled": true, "when": "false"}],
        });
        assert_eq!(flow, expected);
    }

    #[test]
    fn typed_fields_and_unknown_shapes_are_left_alone() {
        let original = json!({
            "id": "f", "namespace": "n", "description": "d",
            "inputs": [{"id": "a", "type": "STRING", "defaults": "x", "required": true}],
            "tasks": "not a list",
            "outputs": [1, "two"],
        });
        let mut flow = original.clone();
        type_flow(flow.as_object_mut().unwrap());
        assert_eq!(flow, original);
    }
}
