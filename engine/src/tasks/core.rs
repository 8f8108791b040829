//! Kestra's core runnable tasks: Return, Log (and Echo, its deprecated
//! form), OutputValues and Fail run inline in the shard (cheap and pure);
//! Sleep waits on its timer wheel.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Started, TaskContext, TaskKind, TaskType};
use crate::expression::Property;
use crate::flow::{Level, Props};

pub(super) static RETURN: TaskType = TaskType {
    name: "io.kestra.plugin.core.debug.Return",
    aliases: &["io.kestra.core.tasks.debugs.Return"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        Some(Arc::new(Return {
            format: p.string_property("format"),
        }))
    },
};

pub(super) static LOG: TaskType = TaskType {
    name: "io.kestra.plugin.core.log.Log",
    aliases: &["io.kestra.core.tasks.log.Log"],
    flowable: false,
    own_timeout: false,
    parse: parse_log,
};

/// `core.debug.Echo`, Kestra's deprecated Log: `format` (required), one
/// line at `level`.
pub(super) static ECHO: TaskType = TaskType {
    name: "io.kestra.plugin.core.debug.Echo",
    aliases: &["io.kestra.core.tasks.debugs.Echo"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let message = p.req_string_property("format");
        let level = p.level("level", Level::Info);
        Some(Arc::new(Log {
            message: message?,
            level: level?,
        }))
    },
};

pub(super) static OUTPUT_VALUES: TaskType = TaskType {
    name: "io.kestra.plugin.core.output.OutputValues",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    // Kestra allows no values: the output is then empty.
    parse: |p| {
        Some(Arc::new(OutputValues {
            values: p.map_property_or_empty("values")?,
        }))
    },
};

pub(super) static FAIL: TaskType = TaskType {
    name: "io.kestra.plugin.core.execution.Fail",
    aliases: &["io.kestra.core.tasks.executions.Fail"],
    flowable: false,
    own_timeout: false,
    parse: parse_fail,
};

pub(super) static SLEEP: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.Sleep",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        Some(Arc::new(Sleep {
            duration: p.duration_property("duration")?,
        }))
    },
};

/// `core.debug.Return`: output `value` = rendered `format`.
#[derive(Debug)]
pub(crate) struct Return {
    format: Option<Property>,
}

impl TaskKind for Return {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let value = match &self.format {
            Some(format) => ctx.render_text(format),
            None => Ok(String::new()),
        };
        Started::Done(value.map(|value| Some(json!({ "value": value }))))
    }
}

/// `core.log.Log`: `message` is a string or a list of strings, each one a
/// log line at `level`.
#[derive(Debug)]
pub(crate) struct Log {
    message: Property,
    level: Level,
}

fn parse_log(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let message = p.text_or_list_property("message");
    let level = p.level("level", Level::Info);
    Some(Arc::new(Log {
        message: message?,
        level: level?,
    }))
}

impl TaskKind for Log {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let lines = match ctx.render(&self.message) {
            Ok(Value::Array(items)) => items.into_iter().map(crate::executor::into_text).collect(),
            Ok(other) => vec![crate::executor::into_text(other)],
            Err(e) => return Started::Done(Err(e)),
        };
        for line in lines {
            ctx.log(self.level, line);
        }
        Started::Done(Ok(None))
    }
}

/// `core.output.OutputValues`: output `values` = rendered `values`, each
/// template as text (Kestra renders the map's strings as strings).
#[derive(Debug)]
pub(crate) struct OutputValues {
    values: Property,
}

impl TaskKind for OutputValues {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        Started::Done(
            ctx.render_texts(&self.values)
                .map(|values| Some(json!({ "values": values }))),
        )
    }
}

/// `core.execution.Fail`: fails with `errorMessage` when `condition` is
/// absent or truthy.
#[derive(Debug)]
pub(crate) struct Fail {
    condition: Option<Property>,
    error_message: Property,
}

fn parse_fail(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let condition = p.string_property("condition");
    let error_message = p.string_property_or("errorMessage", "Task failure");
    Some(Arc::new(Fail {
        condition,
        error_message: error_message?,
    }))
}

impl TaskKind for Fail {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        if let Some(condition) = &self.condition {
            match ctx.render_truthy(condition) {
                Ok(false) => return Started::Done(Ok(None)),
                Ok(true) => {}
                Err(e) => return Started::Done(Err(e)),
            }
        }
        Started::Done(Err(ctx
            .render_text(&self.error_message)
            .unwrap_or_else(|e| e)))
    }
}

/// `core.flow.Sleep`: `duration` renders to an ISO-8601 duration; the task
/// run waits that long on the shard's timer wheel, then succeeds.
#[derive(Debug)]
pub(crate) struct Sleep {
    duration: Property,
}

impl TaskKind for Sleep {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        match ctx.render_duration(&self.duration) {
            Ok(duration) => Started::Wait(duration),
            Err(e) => Started::Done(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::*;
    use crate::execution::State;
    use crate::tasks::testing::{corpus, flow, kind, logs_of, only, problems, run};

    #[test]
    fn return_renders_its_format() {
        let exec = run("  - id: r
    type: io.kestra.plugin.core.debug.Return
    format: \"{{ flow.id }}-{{ 1 + 1 }}\"
  - id: empty
    type: Return
");
        assert_eq!(exec.state(), State::Success);
        let r = only(&exec, "r");
        assert_eq!(r.outputs(), Some(&json!({"value": "t-2"})));
        assert_eq!(r.attempts().len(), 1);
        assert_eq!(
            only(&exec, "empty").outputs(),
            Some(&json!({"value": ""})),
            "no format: an empty value"
        );
    }

    #[test]
    fn log_levels_are_read() {
        let flow = corpus("logs.yaml");
        let levels: Vec<Level> = flow
            .tasks
            .iter()
            .map(|t| kind::<Log>(&flow, &t.id).level)
            .collect();
        assert_eq!(
            levels,
            [
                Level::Trace,
                Level::Warn,
                Level::Error,
                Level::Trace,
                Level::Info
            ]
        );
        assert_eq!(
            problems("  - id: l\n    type: Log\n    message: hi\n    level: LOUD\n"),
            ["tasks[0].level at 7:12: `LOUD` is not a log level (TRACE, DEBUG, INFO, WARN, ERROR)"]
        );
        assert_eq!(
            problems("  - id: l\n    type: Log\n"),
            ["tasks[0].message at 4:5: missing required property `message`"]
        );
    }

    #[test]
    fn log_writes_each_line_at_its_level_with_empty_outputs() {
        let exec = run("  - id: one
    type: io.kestra.plugin.core.log.Log
    message: \"hello {{ flow.namespace }}\"
  - id: many
    type: io.kestra.core.tasks.log.Log
    level: WARN
    message:
      - first
      - \"{{ 'second' }}\"
");
        assert_eq!(exec.state(), State::Success);
        assert_eq!(
            logs_of(&exec, "one"),
            [(Level::Info, "hello tests".to_owned())]
        );
        assert_eq!(
            logs_of(&exec, "many"),
            [
                (Level::Warn, "first".to_owned()),
                (Level::Warn, "second".to_owned())
            ]
        );
        assert_eq!(only(&exec, "many").outputs(), Some(&json!({})));
    }

    #[test]
    fn echo_is_a_log_of_its_format() {
        let exec = run("  - id: echo
    type: io.kestra.plugin.core.debug.Echo
    level: WARN
    format: \"{{ task.id }} says hi\"
  - id: old
    type: io.kestra.core.tasks.debugs.Echo
    format: plain
");
        assert_eq!(exec.state(), State::Success);
        assert_eq!(
            logs_of(&exec, "echo"),
            [(Level::Warn, "echo says hi".to_owned())]
        );
        assert_eq!(logs_of(&exec, "old"), [(Level::Info, "plain".to_owned())]);
        assert_eq!(
            problems("  - id: e\n    type: Echo\n"),
            ["tasks[0].format at 4:5: missing required property `format`"]
        );
    }

    #[test]
    fn output_values_keep_their_types() {
        let exec = run("  - id: out
    type: OutputValues
    values:
      n: 1
      text: \"{{ flow.id }}\"
      list: [a, b]
  - id: none
    type: OutputValues
");
        assert_eq!(
            only(&exec, "out").outputs(),
            Some(&json!({"values": {"n": 1, "text": "t", "list": ["a", "b"]}}))
        );
        assert_eq!(only(&exec, "none").outputs(), Some(&json!({"values": {}})));
        assert_eq!(
            problems("  - id: out\n    type: OutputValues\n    values: [1]\n"),
            ["tasks[0].values at 6:13: expected a map, found a list"]
        );
    }

    #[test]
    fn fail_fails_with_its_message_unless_its_condition_is_false() {
        let exec = run("  - id: fine
    type: io.kestra.plugin.core.execution.Fail
    condition: \"{{ 1 == 2 }}\"
  - id: boom
    type: io.kestra.core.tasks.executions.Fail
    errorMessage: \"stop at {{ taskrun.attemptsCount }}\"
");
        assert_eq!(exec.state(), State::Failed);
        assert_eq!(only(&exec, "fine").state(), State::Success);
        let boom = only(&exec, "boom");
        assert_eq!(boom.state(), State::Failed);
        assert_eq!(boom.outputs(), Some(&json!({})));
        assert_eq!(boom.attempts().len(), 1);
        assert_eq!(
            logs_of(&exec, "boom"),
            [(Level::Error, "stop at 0".to_owned())]
        );

        let exec = run("  - id: boom\n    type: Fail\n");
        assert_eq!(
            logs_of(&exec, "boom"),
            [(Level::Error, "Task failure".to_owned())]
        );
    }

    #[test]
    fn fail_retries_as_its_retry_says() {
        let exec = run("  - id: boom
    type: Fail
    retry:
      type: constant
      interval: PT0.01S
      maxAttempt: 3
");
        assert_eq!(exec.state(), State::Failed);
        let boom = only(&exec, "boom");
        assert_eq!(boom.attempts().len(), 3);
        let levels: Vec<Level> = logs_of(&exec, "boom").iter().map(|l| l.0).collect();
        assert_eq!(levels, [Level::Warn, Level::Warn, Level::Error]);

        // Fails twice, then passes: WARNING with `warningOnRetry`.
        let exec = run("  - id: flaky
    type: Fail
    condition: \"{{ taskrun.attemptsCount < 2 }}\"
    retry:
      type: constant
      interval: PT0.01S
      maxAttempt: 5
      warningOnRetry: true
");
        assert_eq!(exec.state(), State::Warning);
        let flaky = only(&exec, "flaky");
        assert_eq!(flaky.state(), State::Warning);
        assert_eq!(flaky.attempts().len(), 3);
        assert_eq!(flaky.outputs(), Some(&json!({})));
    }

    #[test]
    fn sleep_waits_then_succeeds_with_empty_outputs() {
        let started = Instant::now();
        let exec = run("  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: \"PT0.{{ 2 }}S\"
  - id: after
    type: Return
    format: done
");
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(exec.state(), State::Success);
        let nap = only(&exec, "nap");
        assert_eq!(nap.outputs(), Some(&json!({})));
        assert_eq!(nap.attempts().len(), 1);
        assert_eq!(nap.attempts()[0].state().current(), State::Success);
        let slept = nap.history().end_date().expect("ended") - nap.history().start_date();
        assert!(slept >= chrono::Duration::milliseconds(200), "{slept}");
        assert_eq!(only(&exec, "after").state(), State::Success);
    }

    #[test]
    fn sleep_checks_a_static_duration_now_and_a_rendered_one_when_it_runs() {
        assert_eq!(
            problems("  - id: nap\n    type: Sleep\n    duration: soon\n"),
            [
                "tasks[0].duration at 6:15: `soon` is not an ISO-8601 duration (e.g. PT30S, PT1H, P1DT2H)"
            ]
        );
        let exec = run("  - id: nap\n    type: Sleep\n    duration: \"{{ 'soon' }}\"\n");
        assert_eq!(exec.state(), State::Failed);
        assert_eq!(
            logs_of(&exec, "nap"),
            [(
                Level::Error,
                "`soon` is not an ISO-8601 duration (e.g. PT1S)".to_owned()
            )]
        );
        let parsed = flow("  - id: nap\n    type: Sleep\n    duration: PT1S\n");
        assert!(kind::<Sleep>(&parsed, "nap").duration.is_static());
    }
}
