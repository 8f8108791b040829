//! `transform.jsonata.TransformValue`: a JSONata expression, compiled once
//! per flow revision (see [`crate::jsonata`]), applied inline to the
//! rendered `from`, on the execution's expression budget.

use std::sync::Arc;

use serde_json::json;

use super::{Started, TaskContext, TaskKind, TaskType};
use crate::expression::Property;
use crate::flow::Props;
use crate::jsonata::{Jsonata, Limits, MAX_DEPTH};

pub(super) static TRANSFORM_VALUE: TaskType = TaskType {
    name: "io.kestra.plugin.transform.jsonata.TransformValue",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse,
};

/// `from` is rendered (a JSON string is parsed first), the expression runs
/// on it, and its result is the output `value`.
#[derive(Debug)]
pub(crate) struct TransformValue {
    from: Property,
    expression: Jsonata,
}

fn parse(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let from = p.req_string_property("from");
    // plugin-transform's evaluation depth guard (capped by ours).
    let max_depth = p.u32("maxDepth", MAX_DEPTH as u32, 1) as usize;
    let expression = p.req_string_with("expression", |text| {
        Jsonata::compile_with_max_depth(text, max_depth).map_err(|e| {
            // Kestra renders the expression with Pebble first; we compile it
            // once per revision.
            let note = if text.contains("{{") {
                " (a templated expression is not supported)"
            } else {
                ""
            };
            format!("{e}{note}")
        })
    });
    Some(Arc::new(TransformValue {
        from: from?,
        expression: expression?,
    }))
}

impl TaskKind for TransformValue {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        // The whole budget, as each render has: steps are budgeted per
        // evaluation, not per task run or execution, so what the evaluation
        // spent is not charged anywhere.
        let limits = Limits::of(ctx.budget());
        let value = ctx.render(&self.from).and_then(|input| {
            self.expression
                .transform(&input, limits)
                .value
                .map_err(|e| e.to_string())
        });
        Started::Done(value.map(|value| Some(json!({ "value": value }))))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::execution::State;
    use crate::executor::Limits;
    use crate::expression::Budget;
    use crate::flow::Level;
    use crate::tasks::testing::{flow, kind, logs_of, only, problems, run, run_limited};

    fn transform(from: &str, expression: &str, extra: &str) -> String {
        format!(
            "  - id: t
    type: io.kestra.plugin.transform.jsonata.TransformValue
    from: '{from}'
    expression: '{expression}'
{extra}"
        )
    }

    #[test]
    fn the_expression_runs_on_the_rendered_value() {
        let exec = run(&transform(
            r#"{"orders": [{"n": 2}, {"n": {{ 1 + 2 }}}]}"#,
            "$sum(orders.n)",
            "",
        ));
        assert_eq!(exec.state(), State::Success, "{:?}", exec.logs().entries());
        assert_eq!(only(&exec, "t").outputs(), Some(&json!({"value": 5})));
    }

    #[test]
    fn a_bad_input_or_evaluation_fails_the_task() {
        let exec = run(&transform("not json", "a", ""));
        assert_eq!(exec.state(), State::Failed);
        let logs = logs_of(&exec, "t");
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].0, Level::Error);
        assert!(
            logs[0].1.contains("`from` is not valid JSON"),
            "{}",
            logs[0].1
        );
    }

    #[test]
    fn a_runaway_expression_fails_the_task_at_the_step_budget() {
        let limits = Limits {
            expression: Budget {
                steps: 50_000,
                // Not what stops it.
                time: std::time::Duration::from_secs(600),
                ..Budget::default()
            },
            ..Limits::default()
        };
        let exec = run_limited(
            &transform("{}", "($f := function($n) { $f($n + 1) }; $f(0))", ""),
            limits,
        );
        assert_eq!(exec.state(), State::Failed);
        assert_eq!(only(&exec, "t").state(), State::Failed);
        let logs = logs_of(&exec, "t");
        assert!(
            logs.iter().any(|(level, m)| *level == Level::Error
                && m.contains("budget of 50000 evaluation steps")
                && m.contains("`expression.max-steps`")),
            "{logs:?}"
        );
        // The same flow, honest, fits the same budget.
        let exec = run_limited(&transform(r#"{"n": [1, 2]}"#, "$sum(n)", ""), limits);
        assert_eq!(exec.state(), State::Success, "{:?}", exec.logs().entries());
    }

    #[test]
    fn the_expression_is_compiled_with_its_depth_when_parsed() {
        let parsed = flow(&transform("{}", "a.b", "    maxDepth: 7\n"));
        let t = kind::<TransformValue>(&parsed, "t");
        assert_eq!(t.expression.source(), "a.b");
        let p = problems(&transform("{}", "a +", ""));
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("tasks[0].expression at 7:17: invalid JSONata expression"),
            "{}",
            p[0]
        );
        let p = problems(&transform("{}", "{{ x }} +", ""));
        assert!(
            p[0].ends_with(" (a templated expression is not supported)"),
            "{}",
            p[0]
        );
        assert_eq!(
            problems(&transform("{}", "a", "    maxDepth: 0\n")),
            ["tasks[0].maxDepth at 8:15: expected an integer ≥ 1, found an integer `0`"]
        );
    }
}
