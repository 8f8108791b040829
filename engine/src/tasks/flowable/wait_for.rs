//! WaitFor: its tasks run again and again, `checkFrequency.interval`
//! apart, until `condition` holds or a maximum is reached (Kestra's
//! `flow.WaitFor`, at the commit the conformance flows come from).
//!
//! Kestra's semantics: an iteration ends once every child succeeded; then
//! `iterationCount` (the task run's output, 0 while the first iteration
//! runs) grows by one. Past `maxIterations` (strictly more iterations than
//! it), or past `maxDuration` since the task run was created, it warns "Max
//! iterations reached" / "Max duration reached" and ends: FAILED with
//! `failOnMaxReached`, else SUCCESS, whatever the condition. Otherwise the
//! condition, rendered with the iteration's outputs, ends it SUCCESS when
//! truthy; when not, the next iteration starts after `interval`. A child
//! that does not succeed ends it as any flowable's children do (its
//! `errors` run). The waits between iterations are timers on the shard's
//! wheel (journaled, so a restart keeps their deadlines).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::expression::Property;
use crate::flow::{Level, Props, Task, parse_duration};
use crate::tasks::{AfterFrame, FramePlan, Groups, Started, TaskContext, TaskKind, TaskType};

pub(crate) static WAIT_FOR: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.WaitFor",
    aliases: &[],
    flowable: true,
    own_timeout: false,
    parse: |p| parse_loop(p, &WAIT_FOR_DEFAULTS),
};

/// `flow.LoopUntil`, WaitFor's newer name: the same loop, with other
/// defaults (an iteration a minute, no maximum).
pub(crate) static LOOP_UNTIL: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.LoopUntil",
    aliases: &[],
    flowable: true,
    own_timeout: false,
    parse: |p| parse_loop(p, &LOOP_UNTIL_DEFAULTS),
};

/// A `checkFrequency` left out, or what its fields default to.
struct Defaults {
    max_iterations: Option<u32>,
    max_duration: Option<Duration>,
    interval: Duration,
}

/// WaitFor's `CheckFrequency`: 100 iterations, an hour, a second apart.
const WAIT_FOR_DEFAULTS: Defaults = Defaults {
    max_iterations: Some(100),
    max_duration: Some(Duration::from_secs(3600)),
    interval: Duration::from_secs(1),
};

/// LoopUntil's: no maximum, a minute apart.
const LOOP_UNTIL_DEFAULTS: Defaults = Defaults {
    max_iterations: None,
    max_duration: None,
    interval: Duration::from_secs(60),
};

/// `core.flow.WaitFor` and `core.flow.LoopUntil`.
#[derive(Debug)]
pub(crate) struct WaitFor {
    tasks: Vec<Task>,
    condition: Option<Property>,
    fail_on_max_reached: bool,
    max_iterations: Option<u32>,
    max_duration: Option<Duration>,
    interval: Duration,
}

fn parse_loop(p: &mut Props<'_, '_>, defaults: &Defaults) -> Option<Arc<dyn TaskKind>> {
    let condition = p.req_string_property("condition");
    let fail_on_max_reached = p.bool("failOnMaxReached", false);
    let mut max_iterations = defaults.max_iterations;
    let mut max_duration = defaults.max_duration;
    let mut interval = defaults.interval;
    if let Some((value, at)) = p.json("checkFrequency") {
        match value {
            Value::Object(fields) => {
                for (key, value) in fields {
                    let here = at.child(&key);
                    match (key.as_str(), &value) {
                        (_, Value::Null) if key != "interval" => match key.as_str() {
                            "maxIterations" => max_iterations = None,
                            "maxDuration" => max_duration = None,
                            _ => p.problem(&here, "unknown property"),
                        },
                        ("maxIterations", Value::Number(_) | Value::String(_)) => {
                            let n = match &value {
                                Value::String(text) => text.trim().parse::<u32>().ok(),
                                number => number.as_u64().and_then(|n| u32::try_from(n).ok()),
                            };
                            match n {
                                Some(n) => max_iterations = Some(n),
                                None => p.problem(
                                    &here,
                                    format!("expected an integer ≥ 0, found `{value}`"),
                                ),
                            }
                        }
                        ("maxDuration" | "interval", Value::String(text)) => match parse_duration(text) {
                            Some(d) if key == "interval" && d.is_zero() => {
                                p.problem(&here, "the interval must be longer than zero")
                            }
                            Some(d) if key == "interval" => interval = d,
                            Some(d) => max_duration = Some(d),
                            None => p.problem(
                                &here,
                                format!("`{text}` is not an ISO-8601 duration (e.g. PT30S, PT1H, P1DT2H)"),
                            ),
                        },
                        ("maxIterations" | "maxDuration" | "interval", other) => {
                            p.problem(&here, format!("expected {}, found `{other}`", expected(&key)))
                        }
                        _ => p.problem(&here, "unknown property"),
                    }
                }
            }
            other => p.problem(&at, format!("expected a map, found `{other}`")),
        }
    }
    Some(Arc::new(WaitFor {
        tasks: p.req_task_list("tasks"),
        condition,
        fail_on_max_reached,
        max_iterations,
        max_duration,
        interval,
    }))
}

fn expected(key: &str) -> &'static str {
    if key == "maxIterations" {
        "an integer"
    } else {
        "an ISO-8601 duration"
    }
}

impl TaskKind for WaitFor {
    fn start(&self, _ctx: &mut TaskContext<'_>) -> Started {
        Started::Frame(FramePlan {
            repeats: true,
            outputs: json!({ "iterationCount": 0 }),
            ..FramePlan::new(Groups::Sequence(0))
        })
    }

    fn child_lists(&self) -> Vec<&[Task]> {
        vec![&self.tasks]
    }

    fn after_frame(
        &self,
        ctx: &mut TaskContext<'_>,
        iterations: u32,
        since: DateTime<Utc>,
    ) -> AfterFrame {
        let past_iterations = self.max_iterations.is_some_and(|max| iterations > max);
        let past_duration = self.max_duration.is_some_and(|max| {
            chrono::Duration::from_std(max).is_ok_and(|max| since + max < ctx.now())
        });
        if past_iterations || past_duration {
            let what = if past_iterations {
                "Max iterations reached"
            } else {
                "Max duration reached"
            };
            ctx.log(Level::Warn, what.to_owned());
            return if self.fail_on_max_reached {
                AfterFrame::Fail(what.to_owned())
            } else {
                AfterFrame::Done
            };
        }
        let Some(condition) = &self.condition else {
            return AfterFrame::Fail("WaitFor has no condition".to_owned());
        };
        match ctx.render_truthy(condition) {
            Ok(true) => AfterFrame::Done,
            Ok(false) => AfterFrame::Again(self.interval),
            Err(why) => AfterFrame::Fail(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::execution::{Execution, State};
    use crate::tasks::testing::{flow, kind, logs_of, problems, run};

    /// Kestra's `waitfor-*` test flows: OutputValues counting iterations.
    fn counting(condition: &str, check: &str, more: &str) -> String {
        format!(
            "  - id: waitfor
    type: io.kestra.plugin.core.flow.WaitFor
    condition: \"{condition}\"
{check}    tasks:
{more}      - id: output_values
        type: io.kestra.plugin.core.output.OutputValues
        values:
          count: \"{{{{ outputs.waitfor.iterationCount + 1 }}}}\"
"
        )
    }

    const FAST: &str = "    checkFrequency:\n      interval: PT0.01S\n";

    fn count_of(exec: &Execution) -> Vec<String> {
        exec.task_runs()
            .iter()
            .filter(|t| t.task_id() == "output_values")
            .map(|t| match &t.outputs().unwrap()["values"]["count"] {
                Value::String(text) => text.clone(),
                other => panic!("a count is text, as Kestra's OutputValues gives it: {other}"),
            })
            .collect()
    }

    #[test]
    fn it_loops_until_its_condition_holds() {
        // Kestra's waitfor-multiple-tasks: SUCCESS, the last count "4".
        let exec = run(&counting(
            "{{ outputs.output_values.values.count == '4' }}",
            FAST,
            "      - id: echo\n        type: io.kestra.plugin.core.log.Log\n        message: looping\n",
        ));
        assert_eq!(exec.state(), State::Success);
        assert_eq!(count_of(&exec), ["1", "2", "3", "4"]);
        let waitfor = &exec.task_runs()[0];
        assert_eq!(waitfor.outputs(), Some(&json!({"iterationCount": 4})));
        assert_eq!(waitfor.state(), State::Success);
        // Each iteration's task runs say which one they are.
        let iterations: Vec<Option<u32>> = exec
            .task_runs()
            .iter()
            .filter(|t| t.task_id() == "echo")
            .map(|t| t.iteration())
            .collect();
        assert_eq!(iterations, [None, Some(1), Some(2), Some(3)]);
        assert_eq!(exec.task_runs().last().unwrap().task_id(), "output_values");
    }

    #[test]
    fn a_condition_true_at_once_runs_one_iteration() {
        // Kestra's waitfor: `count != '4'` holds after the first.
        let exec = run(&counting(
            "{{ outputs.output_values.values.count != '4' }}",
            FAST,
            "",
        ));
        assert_eq!(exec.state(), State::Success);
        assert_eq!(count_of(&exec), ["1"]);
    }

    #[test]
    fn past_max_iterations_it_fails_or_succeeds_as_told() {
        // waitfor-max-iterations: 3 allowed, the 4th passes it: FAILED.
        let check = "    checkFrequency:\n      maxIterations: 3\n      interval: PT0.01S\n    failOnMaxReached: true\n";
        let exec = run(&counting(
            "{{ outputs.output_values.values.count == '10' }}",
            check,
            "",
        ));
        assert_eq!(exec.state(), State::Failed);
        assert_eq!(count_of(&exec), ["1", "2", "3", "4"]);
        assert_eq!(exec.task_runs()[0].state(), State::Failed);
        let logs = logs_of(&exec, "waitfor");
        assert!(
            logs.iter()
                .any(|(level, m)| *level == Level::Warn && m == "Max iterations reached"),
            "{logs:?}"
        );
        // waitfor-no-success: without failOnMaxReached, SUCCESS.
        let check = "    checkFrequency:\n      maxIterations: 5\n      interval: PT0.01S\n";
        let exec = run(&counting(
            "{{ outputs.output_values.values.count == '60' }}",
            check,
            "",
        ));
        assert_eq!(exec.state(), State::Success);
        assert_eq!(count_of(&exec).len(), 6);
    }

    #[test]
    fn past_max_duration_it_fails() {
        // waitfor-max-duration, shortened.
        let check = "    checkFrequency:\n      maxDuration: PT0.1S\n      interval: PT0.03S\n    failOnMaxReached: true\n";
        let exec = run(&counting(
            "{{ outputs.output_values.values.count == '-5' }}",
            check,
            "",
        ));
        assert_eq!(exec.state(), State::Failed);
        let logs = logs_of(&exec, "waitfor");
        assert!(
            logs.iter().any(|(_, m)| m == "Max duration reached"),
            "{logs:?}"
        );
        assert!(count_of(&exec).len() >= 2, "{:?}", count_of(&exec));
    }

    #[test]
    fn a_failing_child_ends_it_at_once() {
        // waitfor-multiple-tasks-failed: FAILED on the first iteration.
        let exec = run(&counting(
            "{{ outputs.output_values.values.count == '6' }}",
            "    checkFrequency:\n      maxIterations: 5\n      interval: PT0.01S\n",
            "      - id: fail\n        type: io.kestra.plugin.core.execution.Fail\n",
        ));
        assert_eq!(exec.state(), State::Failed);
        assert_eq!(exec.task_runs().len(), 2, "no second iteration");
        assert_eq!(exec.task_runs().last().unwrap().attempts().len(), 1);
    }

    #[test]
    fn loop_until_is_the_same_loop_with_its_own_defaults() {
        let body = "    condition: \"{{ outputs.r.value == '3' }}\"\n    tasks:\n      - id: r\n        type: Return\n        format: \"{{ outputs.loop.iterationCount + 1 }}\"\n";
        let f = flow(&format!(
            "  - id: loop\n    type: io.kestra.plugin.core.flow.LoopUntil\n{body}"
        ));
        let l = kind::<WaitFor>(&f, "loop");
        assert_eq!((l.max_iterations, l.max_duration), (None, None));
        assert_eq!(l.interval, Duration::from_secs(60));
        let exec = run(&format!(
            "  - id: loop\n    type: io.kestra.plugin.core.flow.LoopUntil\n    checkFrequency:\n      interval: PT0.01S\n      maxIterations: \"9\"\n{body}"
        ));
        assert_eq!(exec.state(), State::Success);
        assert_eq!(
            exec.task_runs()[0].outputs(),
            Some(&json!({"iterationCount": 3}))
        );
    }

    #[test]
    fn its_check_frequency_is_read_with_kestras_defaults() {
        let body =
            "    condition: \"{{ true }}\"\n    tasks:\n      - id: a\n        type: Return\n";
        let f = flow(&format!("  - id: w\n    type: WaitFor\n{body}"));
        let w = kind::<WaitFor>(&f, "w");
        assert_eq!(w.max_iterations, Some(100));
        assert_eq!(w.max_duration, Some(Duration::from_secs(3600)));
        assert_eq!(w.interval, Duration::from_secs(1));
        assert!(!w.fail_on_max_reached);
        let f = flow(&format!(
            "  - id: w\n    type: WaitFor\n    failOnMaxReached: true\n    checkFrequency:\n      maxIterations: 3\n      maxDuration: PT5S\n      interval: PT0.2S\n{body}"
        ));
        let w = kind::<WaitFor>(&f, "w");
        assert_eq!(w.max_iterations, Some(3));
        assert_eq!(w.max_duration, Some(Duration::from_secs(5)));
        assert_eq!(w.interval, Duration::from_millis(200));
        assert!(w.fail_on_max_reached);
        let bad = problems(&format!(
            "  - id: w\n    type: WaitFor\n    checkFrequency:\n      every: PT1S\n      interval: soon\n{body}"
        ));
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(
            bad[0].starts_with("tasks[0].checkFrequency.every"),
            "{bad:?}"
        );
        assert!(bad[0].ends_with("unknown property"), "{bad:?}");
        assert!(
            bad[1].contains("`soon` is not an ISO-8601 duration"),
            "{bad:?}"
        );
        let missing = problems(
            "  - id: w\n    type: WaitFor\n    tasks:\n      - id: a\n        type: Return\n",
        );
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(missing[0].starts_with("tasks[0].condition"), "{missing:?}");
    }
}
