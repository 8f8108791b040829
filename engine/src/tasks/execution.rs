//! Tasks that change their own execution: `execution.Labels`.

use std::sync::Arc;

use serde_json::Value;

use super::{Started, TaskContext, TaskKind, TaskType};
use crate::execution::labels::{LabelError, SYSTEM_PREFIX};
use crate::executor::into_text;
use crate::expression::Property;

/// Labels one task may set.
const MAX_LABELS: usize = 64;

pub(super) static LABELS: TaskType = TaskType {
    name: "io.kestra.plugin.core.execution.Labels",
    aliases: &["io.kestra.core.tasks.executions.Labels"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        Some(Arc::new(Labels {
            labels: p.req_property("labels")?,
        }))
    },
};

/// `core.execution.Labels`: sets labels on the running execution, by key
/// (Kestra's `Labels.update`). `labels` is a map, a list of `{key, value}`,
/// or a template rendering to a JSON map; keys and values are rendered.
/// No `system.` label may be set.
#[derive(Debug)]
pub(crate) struct Labels {
    labels: Property,
}

impl TaskKind for Labels {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let pairs = ctx.render(&self.labels).and_then(label_pairs);
        let pairs = match pairs {
            Ok(pairs) => pairs,
            Err(e) => return Started::Done(Err(e)),
        };
        if pairs.len() > MAX_LABELS {
            return Started::Done(Err(format!(
                "{} labels; a task sets at most {MAX_LABELS}",
                pairs.len()
            )));
        }
        if let Some((key, value)) = pairs.iter().find(|(k, _)| k.starts_with(SYSTEM_PREFIX)) {
            let refused = LabelError::System {
                key: key.clone(),
                value: value.clone(),
            };
            return Started::Done(Err(refused.to_string()));
        }
        for (key, value) in pairs {
            ctx.set_label(key, value);
        }
        Started::Done(Ok(None))
    }
}

/// The rendered `labels` as (key, value) pairs.
pub(super) fn label_pairs(rendered: Value) -> Result<Vec<(String, String)>, String> {
    let rendered = match rendered {
        Value::String(text) => serde_json::from_str::<Value>(&text)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| format!("`labels` rendered to `{text}`, not a JSON map"))?,
        other => other,
    };
    match rendered {
        Value::Object(map) => Ok(map.into_iter().map(|(k, v)| (k, into_text(v))).collect()),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(mut label) => match (label.remove("key"), label.remove("value")) {
                    (Some(key), Some(value)) if label.is_empty() => {
                        Ok((into_text(key), into_text(value)))
                    }
                    _ => Err("each label of a list is a {key, value} map".to_owned()),
                },
                other => Err(format!(
                    "a label of a list is {other}, not a {{key, value}} map"
                )),
            })
            .collect(),
        other => Err(format!(
            "`labels` is {other}: expected a map or a list of {{key, value}}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::flow::Flow;
    use crate::{Execution, FlowRevision, NewExecution, State, run_to_end};

    fn run(yaml: &str) -> Execution {
        let flow = Flow::parse(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let revision = Arc::new(FlowRevision::new(Arc::new(flow)));
        run_to_end(NewExecution::new(revision, Default::default()))
    }

    fn labels(e: &Execution) -> Vec<(&str, &str)> {
        e.labels()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn labels_are_set_by_key_in_each_spelling_and_seen_after() {
        let e = run(r#"
id: labelled
namespace: tests
labels:
  team: core
tasks:
  - id: map
    type: io.kestra.plugin.core.execution.Labels
    labels:
      team: "{{ 'data' }}"
      "{{ 'st' ~ 'ep' }}": one
  - id: list
    type: io.kestra.plugin.core.execution.Labels
    labels:
      - key: step
        value: two
      - key: count
        value: 3
  - id: json
    type: io.kestra.plugin.core.execution.Labels
    labels: '{{ {"from": "json"} | json }}'
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ labels.team }} {{ labels.step }}"
"#);
        assert_eq!(e.state(), State::Success);
        let id = e.id().to_string();
        assert_eq!(
            labels(&e),
            [
                ("team", "data"),
                ("system.correlationId", id.as_str()),
                ("step", "two"),
                ("count", "3"),
                ("from", "json"),
            ]
        );
        let after = e.task_runs_of("after").next().unwrap();
        assert_eq!(after.outputs().unwrap()["value"], "data two");
    }

    #[test]
    fn system_labels_and_bad_shapes_fail_the_task_and_change_nothing() {
        for labels in [
            "\n      system.correlationId: forged",
            " '{{ \"not a map\" }}'",
            "\n      - key: only",
        ] {
            let e = run(&format!(
                "id: bad\nnamespace: tests\ntasks:\n  - id: set\n    type: io.kestra.plugin.core.execution.Labels\n    labels:{labels}\n"
            ));
            assert_eq!(e.state(), State::Failed, "{labels}");
            let id = e.id().to_string();
            assert_eq!(
                labels_of(&e),
                [("system.correlationId", id.as_str())],
                "{labels}"
            );
        }
    }

    fn labels_of(e: &Execution) -> Vec<(&str, &str)> {
        labels(e)
    }
}
