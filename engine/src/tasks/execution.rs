//! Tasks about their own execution: `execution.Labels`, which changes it,
//! `execution.Assert`, which checks it, and `execution.Exit`, which ends
//! it.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{ChildAnswer, Started, TaskContext, TaskKind, TaskType};
use crate::execution::labels::{LabelError, SYSTEM_PREFIX};
use crate::execution::{ExecutionId, State};
use crate::executor::into_text;
use crate::expression::Property;
use crate::flow::Level;

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

pub(super) static ASSERT: TaskType = TaskType {
    name: "io.kestra.plugin.core.execution.Assert",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    // No limit of its own on `conditions`: they are written in the flow,
    // whose size is bounded.
    parse: |p| {
        let conditions = p.req_template_list("conditions");
        let error_message = p.string_property("errorMessage");
        Some(Arc::new(Assert {
            conditions: conditions?,
            error_message,
        }))
    },
};

pub(super) static EXIT: TaskType = TaskType {
    name: "io.kestra.plugin.core.execution.Exit",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        if let Some(text) = p.peek_text("state")
            && !text.contains("{{")
            && exit_state(&text).is_none()
        {
            let at = p.here("state");
            p.problem(&at, bad_exit_state(&text));
        }
        let state = p.string_property_or("state", "SUCCESS");
        Some(Arc::new(Exit { state: state? }))
    },
};

/// `core.execution.Exit` (Kestra's `Exit.update`): ends the execution at
/// once in `state` (SUCCESS by default, WARNING, KILLED, FAILED or
/// CANCELED). KILLED kills it (not its subflows) and whatever still runs;
/// any other state ends this task run, its flowable ancestors and the
/// execution in that state, and what runs beside it (a parallel branch) is
/// left as it is. Neither `errors` nor `finally` run after it.
#[derive(Debug)]
pub(crate) struct Exit {
    state: Property,
}

impl TaskKind for Exit {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        match ctx.render_text(&self.state) {
            Ok(text) => match exit_state(&text) {
                Some(state) => Started::Exit(state),
                None => Started::Done(Err(bad_exit_state(&text))),
            },
            Err(e) => Started::Done(Err(e)),
        }
    }
}

pub(super) static RESUME: TaskType = TaskType {
    name: "io.kestra.plugin.core.execution.Resume",
    aliases: &["io.kestra.core.tasks.executions.Resume"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        Some(Arc::new(Resume {
            namespace: p.string_property("namespace"),
            flow_id: p.string_property("flowId"),
            execution_id: p.string_property("executionId"),
            inputs: p.map_property_or_empty("inputs")?,
        }))
    },
};

/// `core.execution.Resume` (Kestra's `Resume.run`): resumes a paused
/// execution, this one by default or `executionId` (of flow `flowId` in
/// `namespace`, this execution's unless given), with `inputs` checked
/// against its paused task's `onResume`. It fails when that execution is
/// not found (or is of another flow), not paused, or refuses the inputs.
/// No outputs. The resume goes through the courier to the execution's
/// shard, which answers; after a restart of the engine while it waits it
/// is asked again (as Kestra's worker would run the task again), and an
/// execution resumed the first time is then no longer paused.
#[derive(Debug)]
pub(crate) struct Resume {
    namespace: Option<Property>,
    flow_id: Option<Property>,
    execution_id: Option<Property>,
    inputs: Property,
}

impl TaskKind for Resume {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let text = |p: &Option<Property>| -> Result<Option<String>, String> {
            p.as_ref().map(|p| ctx.render_text(p)).transpose()
        };
        let call = (|| {
            let inputs = match ctx.render(&self.inputs)? {
                Value::Object(map) => map,
                Value::Null => Map::new(),
                other => return Err(format!("inputs `{other}` is not a map")),
            };
            Ok(ResumeCall {
                execution_id: text(&self.execution_id)?,
                namespace: text(&self.namespace)?,
                flow_id: text(&self.flow_id)?,
                inputs,
            })
        })();
        match call {
            Ok(call) => Started::Resume(Box::new(call)),
            Err(e) => Started::Done(Err(e)),
        }
    }

    fn on_child(
        &self,
        _ctx: &mut TaskContext<'_>,
        _: ExecutionId,
        answer: &ChildAnswer,
    ) -> Started {
        match answer {
            ChildAnswer::Refused(why) => Started::Done(Err(why.clone())),
            ChildAnswer::Created | ChildAnswer::Ended { .. } => Started::Done(Ok(None)),
        }
    }
}

/// The resume a `Resume` task run asks for, rendered (`None`: this
/// execution's own).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResumeCall {
    pub execution_id: Option<String>,
    pub namespace: Option<String>,
    pub flow_id: Option<String>,
    pub inputs: Map<String, Value>,
}

pub(super) static SET_VARIABLES: TaskType = TaskType {
    name: "io.kestra.plugin.core.execution.SetVariables",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let variables = p.req_property("variables");
        let overwrite = p.string_property_or("overwrite", "true");
        Some(Arc::new(SetVariables {
            variables: variables?,
            overwrite: overwrite?,
        }))
    },
};

pub(super) static UNSET_VARIABLES: TaskType = TaskType {
    name: "io.kestra.plugin.core.execution.UnsetVariables",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let variables = p.req_property("variables");
        let ignore_missing = p.string_property_or("ignoreMissing", "false");
        Some(Arc::new(UnsetVariables {
            variables: variables?,
            ignore_missing: ignore_missing?,
        }))
    },
};

/// Variables one execution may hold, as JSON text: `vars` is read by every
/// template of the execution, and kept in its every record.
const MAX_VARIABLES_BYTES: usize = 256 << 10;

/// `core.execution.SetVariables` (Kestra's `SetVariables.update`): the
/// rendered `variables` (a map) merged deep into the execution's, read as
/// `vars` over the flow's variables; with `overwrite: false`, one already
/// set fails the task. No outputs.
#[derive(Debug)]
pub(crate) struct SetVariables {
    variables: Property,
    overwrite: Property,
}

impl TaskKind for SetVariables {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let set = (|| {
            let Value::Object(given) = ctx.render(&self.variables)? else {
                return Err("`variables` is not a map".to_owned());
            };
            let overwrite = flag(ctx, &self.overwrite, "overwrite")?;
            let mut current = ctx.execution_variables().cloned().unwrap_or_default();
            if !overwrite {
                let taken: Vec<&str> = given
                    .keys()
                    .filter(|k| current.contains_key(*k))
                    .map(String::as_str)
                    .collect();
                if !taken.is_empty() {
                    return Err(format!(
                        "`overwrite` is set to false and the following variables already exist: {}",
                        taken.join(",")
                    ));
                }
            }
            let mut merged = Value::Object(std::mem::take(&mut current));
            crate::executor::deep_merge(&mut merged, Value::Object(given));
            let Value::Object(merged) = merged else {
                return Err("the execution's variables are not a map".to_owned());
            };
            let bytes = serde_json::to_string(&merged).map_or(usize::MAX, |t| t.len());
            if bytes > MAX_VARIABLES_BYTES {
                return Err(format!(
                    "the execution's variables would take {bytes} bytes, more than the \
                     {MAX_VARIABLES_BYTES} allowed"
                ));
            }
            Ok(merged)
        })();
        match set {
            Ok(variables) => {
                ctx.set_variables(variables);
                Started::Done(Ok(None))
            }
            Err(e) => Started::Done(Err(e)),
        }
    }
}

/// `core.execution.UnsetVariables` (Kestra's `UnsetVariables.update`):
/// removes each of `variables` (a dotted name reaches into a map) from the
/// execution's variables. A missing one is no error (Kestra removes what
/// is not there), but a name inside a map that is not there fails the task
/// unless `ignoreMissing`. No outputs.
#[derive(Debug)]
pub(crate) struct UnsetVariables {
    variables: Property,
    ignore_missing: Property,
}

impl TaskKind for UnsetVariables {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let unset = (|| {
            let names: Vec<String> = match ctx.render(&self.variables)? {
                Value::Array(items) => items.into_iter().map(into_text).collect(),
                Value::String(text) => vec![text],
                other => return Err(format!("`variables` `{other}` is not a list of names")),
            };
            let ignore_missing = flag(ctx, &self.ignore_missing, "ignoreMissing")?;
            let mut current = ctx.execution_variables().cloned().unwrap_or_default();
            for name in &names {
                remove_var(&mut current, name, ignore_missing)?;
            }
            Ok(current)
        })();
        match unset {
            Ok(variables) => {
                ctx.set_variables(variables);
                Started::Done(Ok(None))
            }
            Err(e) => Started::Done(Err(e)),
        }
    }
}

fn remove_var(
    vars: &mut Map<String, Value>,
    name: &str,
    ignore_missing: bool,
) -> Result<(), String> {
    match name.split_once('.') {
        None => {
            vars.remove(name);
            Ok(())
        }
        Some((prefix, rest)) => match vars.get_mut(prefix) {
            Some(Value::Object(inner)) => remove_var(inner, rest, ignore_missing),
            _ if ignore_missing => Ok(()),
            _ => Err(format!(
                "variable `{prefix}` is not a map: `{name}` cannot be unset"
            )),
        },
    }
}

/// A boolean property, rendered (Kestra's `Property<Boolean>`).
fn flag(ctx: &TaskContext<'_>, property: &Property, name: &str) -> Result<bool, String> {
    match ctx.render(property)? {
        Value::Bool(b) => Ok(b),
        Value::String(text) if text.trim() == "true" => Ok(true),
        Value::String(text) if text.trim() == "false" => Ok(false),
        other => Err(format!("`{name}` `{other}` is not a boolean")),
    }
}

/// Kestra's `ExitState`, as the execution state it ends in.
fn exit_state(text: &str) -> Option<State> {
    Some(match text.trim() {
        "SUCCESS" => State::Success,
        "WARNING" => State::Warning,
        "KILLED" => State::Killed,
        "FAILED" => State::Failed,
        "CANCELED" => State::Cancelled,
        _ => return None,
    })
}

fn bad_exit_state(text: &str) -> String {
    format!("`{text}` is not an exit state: SUCCESS, WARNING, KILLED, FAILED or CANCELED")
}

/// `core.execution.Assert` (Kestra's `Assert.run`): renders each of
/// `conditions` as text; one that renders to `false`, `0`, `-0` or nothing
/// (once trimmed, `TruthUtils.isFalsy`), or does not render, fails: each
/// such one logs an ERROR line naming the condition as written, and once
/// all are checked the task fails with "N assertion(s) failed!", followed
/// by a line of the rendered `errorMessage` when there is one. No outputs.
/// (Kestra also counts `success` and `failed` as task-run metrics, which
/// Peregrine does not keep.)
#[derive(Debug)]
pub(crate) struct Assert {
    /// Each condition as written, and compiled.
    conditions: Vec<(String, Property)>,
    error_message: Option<Property>,
}

impl TaskKind for Assert {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let mut failed = 0usize;
        for (written, condition) in &self.conditions {
            match ctx.render_text(condition) {
                Ok(text) if is_falsy(&text) => {
                    ctx.log(Level::Error, format!("Assertion `{written}` failed!"));
                    failed += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    ctx.log(
                        Level::Error,
                        format!("Assertion `{written}` failed, failed to render `{e}`"),
                    );
                    failed += 1;
                }
            }
        }
        if failed == 0 {
            return Started::Done(Ok(None));
        }
        let plural = if failed > 1 { "s" } else { "" };
        let mut message = format!("{failed} assertion{plural} failed!");
        if let Some(error_message) = &self.error_message {
            match ctx.render_text(error_message) {
                Ok(text) => {
                    message.push('\n');
                    message.push_str(&text);
                }
                Err(e) => return Started::Done(Err(e)),
            }
        }
        Started::Done(Err(message))
    }
}

/// Kestra's `TruthUtils.isFalsy` of a rendered text.
fn is_falsy(text: &str) -> bool {
    matches!(text.trim(), "false" | "0" | "-0" | "")
}

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

    use crate::flow::{Flow, Level};
    use crate::tasks::testing::{logs_of, only, problems};
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

    /// An Assert of `conditions` (YAML list items), with `extra` properties,
    /// run with input `key` = `value` (Kestra's `AssertTest` context).
    fn run_assert(conditions: &[&str], extra: &str) -> Execution {
        let mut yaml = String::from(
            "id: assert\nnamespace: tests\ntasks:\n  - id: check\n    \
             type: io.kestra.plugin.core.execution.Assert\n    conditions:\n",
        );
        for condition in conditions {
            yaml.push_str(&format!("      - \"{condition}\"\n"));
        }
        yaml.push_str(extra);
        let flow = Flow::parse(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let revision = Arc::new(FlowRevision::new(Arc::new(flow)));
        let inputs = serde_json::json!({"key": "value"});
        let serde_json::Value::Object(inputs) = inputs else {
            unreachable!("a map")
        };
        run_to_end(NewExecution::new(revision, inputs))
    }

    #[test]
    fn assert_passes_when_every_condition_is_truthy() {
        let e = run_assert(
            &[
                "{{ inputs.key == 'value' }}",
                "{{ 42 == 42 }}",
                "{{ 'no' }}",
                "{{ 'null' }}",
                "plain text",
            ],
            "",
        );
        assert_eq!(e.state(), State::Success);
        let check = only(&e, "check");
        assert_eq!(check.outputs(), Some(&serde_json::json!({})));
        assert_eq!(check.attempts().len(), 1);
        assert_eq!(logs_of(&e, "check"), []);
    }

    #[test]
    fn assert_logs_each_failed_condition_as_written_then_fails_with_the_count() {
        let e = run_assert(
            &[
                "{{ 42 == 42 }}",
                "{{ inputs.key == 'value1' }}",
                "{{ 42 == 42 }}",
                "{{ inputs.key == 'value2' }}",
                "{{ 42 == 42 }}",
            ],
            "",
        );
        assert_eq!(e.state(), State::Failed);
        let check = only(&e, "check");
        assert_eq!(check.state(), State::Failed);
        assert_eq!(check.attempts().len(), 1);
        assert_eq!(
            logs_of(&e, "check"),
            [
                (
                    Level::Error,
                    "Assertion `{{ inputs.key == 'value1' }}` failed!".to_owned()
                ),
                (
                    Level::Error,
                    "Assertion `{{ inputs.key == 'value2' }}` failed!".to_owned()
                ),
                (Level::Error, "2 assertions failed!".to_owned()),
            ]
        );

        // One: singular; `errorMessage` rendered on a line of its own.
        let e = run_assert(
            &["{{ 1 + 1 == 3 }}"],
            "    errorMessage: \"{{ inputs.key }} is wrong\"\n",
        );
        assert_eq!(
            logs_of(&e, "check").last(),
            Some(&(
                Level::Error,
                "1 assertion failed!\nvalue is wrong".to_owned()
            ))
        );
    }

    #[test]
    fn assert_reads_false_zero_minus_zero_and_nothing_as_false_once_trimmed() {
        let falsy = [
            "{{ null }}",
            "{{ false }}",
            "{{ 0 }}",
            "{{ '-0' }}",
            "{{ '' }}",
            " {{ 'false' }} ",
        ];
        let e = run_assert(&falsy, "");
        assert_eq!(e.state(), State::Failed);
        let logs = logs_of(&e, "check");
        assert_eq!(logs.len(), falsy.len() + 1, "{logs:?}");
        assert_eq!(logs[0].1, "Assertion `{{ null }}` failed!");
        assert_eq!(logs[5].1, "Assertion ` {{ 'false' }} ` failed!");
        assert_eq!(logs[6].1, "6 assertions failed!");
    }

    #[test]
    fn a_condition_that_does_not_render_fails_and_the_others_are_still_checked() {
        let e = run_assert(
            &[
                "{{ outputs.missing.value == 1 }}",
                "{{ 1 == }}",
                "{{ 42 == 42 }}",
                "{{ 1 == 2 }}",
            ],
            "",
        );
        assert_eq!(e.state(), State::Failed);
        let logs = logs_of(&e, "check");
        assert_eq!(logs.len(), 4, "{logs:?}");
        // The render error as Peregrine words it (Kestra's `e.getMessage()`).
        assert_eq!(
            logs[0],
            (
                Level::Error,
                "Assertion `{{ outputs.missing.value == 1 }}` failed, failed to render \
                 `Unable to find `missing` used in the expression at 1:12 in \
                 `{{ outputs.missing.value == 1 }}``"
                    .to_owned()
            )
        );
        assert_eq!(
            logs[1],
            (
                Level::Error,
                "Assertion `{{ 1 == }}` failed, failed to render `Unexpected end of \
                 expression at 1:1 in `{{ 1 == }}``"
                    .to_owned()
            )
        );
        assert_eq!(logs[2].1, "Assertion `{{ 1 == 2 }}` failed!");
        assert_eq!(logs[3].1, "3 assertions failed!");
    }

    #[test]
    fn an_error_message_that_does_not_render_fails_the_task_with_its_error() {
        let e = run_assert(
            &["{{ false }}"],
            "    errorMessage: \"{{ outputs.missing.value }}\"\n",
        );
        assert_eq!(e.state(), State::Failed);
        let logs = logs_of(&e, "check");
        assert_eq!(logs.len(), 2, "{logs:?}");
        assert_eq!(logs[0].1, "Assertion `{{ false }}` failed!");
        assert_eq!(
            logs[1],
            (
                Level::Error,
                "Unable to find `missing` used in the expression at 1:12 in \
                 `{{ outputs.missing.value }}`"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_failed_assert_fails_its_execution_after_the_tasks_before_it() {
        // Kestra's flows/valids/assert.yaml (AssertTest.dontFailOnCondition).
        let e = run(r#"
id: assert
namespace: io.kestra.tests
tasks:
  - id: before
    type: io.kestra.plugin.core.output.OutputValues
    values:
      output1: xyz
      output2: abc
      taskInfo: "{{ task.id }} > {{ taskrun.startDate }}"
  - id: fail
    type: io.kestra.plugin.core.execution.Assert
    conditions:
      - "{{ 42 == 42 }}"
      - "{{ outputs.before.values.output1  == 'xyz' }}"
      - "{{ outputs.before.values.output2  == 'xyz' }}"
"#);
        assert_eq!(e.task_runs().len(), 2);
        assert_eq!(e.state(), State::Failed);
        assert_eq!(
            logs_of(&e, "fail"),
            [
                (
                    Level::Error,
                    "Assertion `{{ outputs.before.values.output2  == 'xyz' }}` failed!".to_owned()
                ),
                (Level::Error, "1 assertion failed!".to_owned()),
            ]
        );
    }

    #[test]
    fn assert_needs_a_list_of_strings_as_conditions() {
        let assert = "  - id: check\n    type: io.kestra.plugin.core.execution.Assert\n";
        assert_eq!(
            problems(assert),
            ["tasks[0].conditions at 4:5: missing required property `conditions`"]
        );
        assert_eq!(
            problems(&format!("{assert}    conditions:\n      a: b\n")),
            ["tasks[0].conditions at 7:7: expected a list of strings, found a map"]
        );
        assert_eq!(
            problems(&format!("{assert}    conditions:\n      - [nested]\n")),
            ["tasks[0].conditions[0] at 7:9: expected a string, found a list"]
        );
        assert_eq!(
            problems(&format!(
                "{assert}    conditions: [\"{{{{ true }}}}\"]\n    message: hi\n"
            )),
            [
                "tasks[0].message at 7:5: unknown property `message` for io.kestra.plugin.core.execution.Assert"
            ]
        );
        // One string is a list of one.
        let e = run("
id: one
namespace: tests
tasks:
  - id: check
    type: io.kestra.plugin.core.execution.Assert
    conditions: \"{{ 1 == 2 }}\"
");
        assert_eq!(logs_of(&e, "check")[1].1, "1 assertion failed!");
    }

    fn flow_with(tasks: &str, extra: &str) -> String {
        format!("id: exits\nnamespace: tests\ntasks:\n{tasks}{extra}")
    }

    fn ids(exec: &Execution) -> Vec<&str> {
        exec.task_runs().iter().map(|t| t.task_id()).collect()
    }

    const HANDLERS: &str = "errors:
  - id: handler
    type: io.kestra.plugin.core.log.Log
    message: handled
finally:
  - id: last
    type: io.kestra.plugin.core.log.Log
    message: last
";

    #[test]
    fn exit_ends_the_execution_and_its_ancestors_in_its_state_with_nothing_after() {
        for (state, expected) in [
            ("", State::Success),
            ("        state: WARNING\n", State::Warning),
            ("        state: FAILED\n", State::Failed),
            ("        state: \"{{ 'CANCELED' }}\"\n", State::Cancelled),
        ] {
            let tasks = format!(
                "  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: before
        type: io.kestra.plugin.core.log.Log
        message: before
      - id: exit
        type: io.kestra.plugin.core.execution.Exit
{state}      - id: never
        type: io.kestra.plugin.core.log.Log
        message: never
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: after
"
            );
            let exec = run(&flow_with(&tasks, HANDLERS));
            assert_eq!(exec.state(), expected, "{state}");
            assert_eq!(ids(&exec), ["seq", "before", "exit"], "{state}");
            assert_eq!(only(&exec, "exit").state(), expected);
            assert_eq!(only(&exec, "seq").state(), expected);
            assert_eq!(only(&exec, "before").state(), State::Success);
        }
    }

    #[test]
    fn exit_killed_kills_what_runs_beside_it_and_another_state_leaves_it() {
        let tasks = |state: &str| {
            format!(
                "  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT30S
      - id: exit
        type: io.kestra.plugin.core.execution.Exit
        state: {state}
"
            )
        };
        let exec = run(&flow_with(&tasks("KILLED"), ""));
        assert_eq!(exec.state(), State::Killed);
        for id in ["both", "nap", "exit"] {
            assert_eq!(only(&exec, id).state(), State::Killed, "{id}");
        }
        let exec = run(&flow_with(&tasks("SUCCESS"), ""));
        assert_eq!(exec.state(), State::Success);
        assert_eq!(only(&exec, "exit").state(), State::Success);
        assert_eq!(only(&exec, "both").state(), State::Success);
        assert_eq!(
            only(&exec, "nap").state(),
            State::Running,
            "a parallel branch is not ended by an exit but KILLED"
        );
    }

    #[test]
    fn a_bad_exit_state_is_refused_or_fails_the_task() {
        let tasks = |state: &str| {
            format!(
                "  - id: exit\n    type: io.kestra.plugin.core.execution.Exit\n    state: {state}\n"
            )
        };
        let found = problems(&tasks("DONE"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("tasks[0].state")
                && found[0].ends_with(
                    "`DONE` is not an exit state: SUCCESS, WARNING, KILLED, FAILED or CANCELED"
                ),
            "{found:?}"
        );
        let exec = run(&flow_with(&tasks("\"{{ 'LATER' }}\""), ""));
        assert_eq!(exec.state(), State::Failed);
        assert_eq!(only(&exec, "exit").state(), State::Failed);
        let logs = logs_of(&exec, "exit");
        assert!(
            logs.iter()
                .any(|(level, m)| *level == Level::Error
                    && m.contains("`LATER` is not an exit state")),
            "{logs:?}"
        );
    }

    #[test]
    fn set_variables_are_read_as_vars_over_the_flows_and_unset_ones_go() {
        let exec = run("id: variables
namespace: tests
variables:
  name: World
  deep:
    a: 1
    b: 2
tasks:
  - id: set_vars
    type: io.kestra.plugin.core.execution.SetVariables
    variables:
      message: Hello
      name: Loïc
      deep:
        b: 3
  - id: hello
    type: io.kestra.plugin.core.debug.Return
    format: \"{{ vars.message }} {{ vars.name }} {{ vars.deep.a }}{{ vars.deep.b }}\"
  - id: unset
    type: io.kestra.plugin.core.execution.UnsetVariables
    variables:
      - message
      - name
      - never
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: \"{{ vars.name }} {{ vars.message ?? 'gone' }} {{ vars.deep.b }}\"
");
        assert_eq!(exec.state(), State::Success, "{:?}", exec.logs().entries());
        let value = |id: &str| only(&exec, id).outputs().unwrap()["value"].clone();
        assert_eq!(value("hello"), "Hello Loïc 13");
        assert_eq!(value("after"), "World gone 3", "the flow's own come back");
        assert_eq!(
            exec.variables
                .as_ref()
                .map(|v| serde_json::Value::Object(v.clone())),
            Some(serde_json::json!({"deep": {"b": 3}}))
        );
        // Kept in the execution's record, and shown.
        let record = crate::execution::Record::of(&exec);
        let json = record.to_json(chrono::Utc::now());
        assert_eq!(json["variables"], serde_json::json!({"deep": {"b": 3}}));
        assert_eq!(record.thaw().variables, exec.variables);
    }

    #[test]
    fn set_variables_without_overwrite_refuses_one_already_set() {
        let exec = run("id: variables
namespace: tests
tasks:
  - id: first
    type: io.kestra.plugin.core.execution.SetVariables
    variables:
      a: 1
  - id: again
    type: io.kestra.plugin.core.execution.SetVariables
    overwrite: false
    variables:
      a: 2
      b: 3
");
        assert_eq!(exec.state(), State::Failed);
        let logs = logs_of(&exec, "again");
        assert!(
            logs.iter().any(|(_, m)| m.contains(
                "`overwrite` is set to false and the following variables already exist: a"
            )),
            "{logs:?}"
        );
        let exec = run("id: variables
namespace: tests
tasks:
  - id: unset
    type: io.kestra.plugin.core.execution.UnsetVariables
    variables: [\"nested.inner\"]
");
        assert_eq!(
            exec.state(),
            State::Failed,
            "a name inside a map that is not there"
        );
        let exec = run("id: variables
namespace: tests
tasks:
  - id: unset
    type: io.kestra.plugin.core.execution.UnsetVariables
    ignoreMissing: true
    variables: [\"nested.inner\"]
");
        assert_eq!(exec.state(), State::Success);
    }
}
