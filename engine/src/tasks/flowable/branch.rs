//! If and Switch: one of their task lists runs, chosen by a rendered value.

use std::sync::Arc;

use serde_json::json;

use crate::expression::Property;
use crate::flow::{Props, Task};
use crate::tasks::{FramePlan, Groups, Started, TaskContext, TaskKind, TaskType};

pub(crate) static IF: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.If",
    aliases: &["io.kestra.core.tasks.flows.If"],
    flowable: true,
    own_timeout: false,
    parse: parse_if,
};

pub(crate) static SWITCH: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.Switch",
    aliases: &["io.kestra.core.tasks.flows.Switch"],
    flowable: true,
    own_timeout: false,
    parse: parse_switch,
};

/// `core.flow.If`: `then` when `condition` is truthy, else `else`.
#[derive(Debug)]
pub(crate) struct If {
    condition: Property,
    then: Vec<Task>,
    else_: Vec<Task>,
}

fn parse_if(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let condition = p.req_string_property("condition");
    let then = p.req_task_list("then");
    let else_ = p.opt_task_list("else");
    Some(Arc::new(If {
        condition: condition?,
        then,
        else_,
    }))
}

impl TaskKind for If {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let result = match ctx.render_truthy(&self.condition) {
            Ok(result) => result,
            Err(e) => return Started::Done(Err(e)),
        };
        Started::Frame(FramePlan {
            outputs: json!({ "evaluationResult": result }),
            ..FramePlan::new(Groups::Sequence(if result { 0 } else { 1 }))
        })
    }

    fn child_lists(&self) -> Vec<&[Task]> {
        vec![&self.then, &self.else_]
    }
}

/// `core.flow.Switch`: the case whose key equals the rendered `value`, or
/// `defaults`.
#[derive(Debug)]
pub(crate) struct Switch {
    value: Property,
    /// In source order; keys as text (`1:` in YAML is `"1"`).
    cases: Vec<(String, Vec<Task>)>,
    defaults: Vec<Task>,
}

fn parse_switch(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let value = p.req_string_property("value");
    let cases = p.keyed_task_lists("cases", "case");
    let defaults = p.opt_task_list("defaults");
    if cases.iter().all(|(_, t)| t.is_empty()) && defaults.is_empty() {
        let at = p.here("cases");
        p.problem(
            &at,
            "no task defined: neither `cases` nor `defaults` has any task",
        );
    }
    Some(Arc::new(Switch {
        value: value?,
        cases,
        defaults,
    }))
}

impl TaskKind for Switch {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let rendered = match ctx.render_text(&self.value) {
            Ok(text) => text,
            Err(e) => return Started::Done(Err(e)),
        };
        let matched = self.cases.iter().position(|(key, _)| *key == rendered);
        if matched.is_none() && self.defaults.is_empty() {
            return Started::Done(Err(format!(
                "No task found on flow for Switch value `{rendered}`: no case matches and there are no defaults"
            )));
        }
        Started::Frame(FramePlan {
            outputs: json!({ "value": rendered, "defaults": matched.is_none() }),
            // The defaults come after the cases in `child_lists`.
            ..FramePlan::new(Groups::Sequence(matched.unwrap_or(self.cases.len())))
        })
    }

    fn child_lists(&self) -> Vec<&[Task]> {
        self.cases
            .iter()
            .map(|(_, tasks)| tasks.as_slice())
            .chain(std::iter::once(self.defaults.as_slice()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::execution::State;
    use crate::flow::Level;
    use crate::tasks::flowable::Sequential;
    use crate::tasks::testing::{corpus, kind, kind_of, logs_of, only, problems, run};

    const IF_FLOW: &str = "  - id: if
    type: io.kestra.plugin.core.flow.If
    condition: \"{{ COND }}\"
    then:
      - id: yes
        type: Return
        format: yes
    else:
      - id: no
        type: Return
        format: no
";

    #[test]
    fn if_runs_then_or_else() {
        let exec = run(&IF_FLOW.replace("COND", "1 < 2"));
        assert_eq!(exec.state(), State::Success);
        assert_eq!(
            only(&exec, "if").outputs(),
            Some(&json!({"evaluationResult": true}))
        );
        assert!(
            only(&exec, "if").attempts().is_empty(),
            "a flowable has no attempts"
        );
        assert_eq!(only(&exec, "yes").state(), State::Success);
        assert_eq!(exec.task_runs_of("no").count(), 0);

        let exec = run(&IF_FLOW.replace("COND", "'false'"));
        assert_eq!(
            only(&exec, "if").outputs(),
            Some(&json!({"evaluationResult": false}))
        );
        assert_eq!(exec.task_runs_of("yes").count(), 0);
        assert_eq!(only(&exec, "no").state(), State::Success);
    }

    #[test]
    fn if_without_else_and_a_failing_condition() {
        let exec = run("  - id: if
    type: If
    condition: \"false\"
    then:
      - id: yes
        type: Return
");
        assert_eq!(exec.state(), State::Success);
        assert_eq!(exec.task_runs().len(), 1);

        let exec = run(&IF_FLOW.replace("COND", "undefined_var.x"));
        assert_eq!(exec.state(), State::Failed);
        assert_eq!(only(&exec, "if").state(), State::Failed);
        assert_eq!(only(&exec, "if").outputs(), None);
        assert_eq!(exec.task_runs().len(), 1);
        assert_eq!(logs_of(&exec, "if").len(), 1);
        assert_eq!(
            problems("  - id: if\n    type: If\n    condition: x\n"),
            ["tasks[0].then at 4:5: missing required property `then`"]
        );
    }

    #[test]
    fn switch_cases_in_source_order() {
        let flow = corpus("switch.yaml");
        let switch = kind::<Switch>(&flow, &flow.tasks[0].id);
        let keys: Vec<&str> = switch.cases.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["FIRST", "SECOND", "THIRD"]);
        assert_eq!(switch.cases[1].1.len(), 2);
        assert_eq!(switch.defaults[0].id, "default");
        // The THIRD case holds a Sequential with its own error handler.
        let t3 = &switch.cases[2].1[0];
        kind_of::<Sequential>(t3);
        assert_eq!(t3.errors[0].id, "error-t1");

        // Integer case keys (`1:`) are text, as Kestra's Map<String, ...> has them.
        let flow = corpus("each-switch.yaml");
        assert_eq!(kind::<Switch>(&flow, "2-1-1_switch").cases[0].0, "1");

        // `defaults: null` is no defaults.
        let flow = corpus("switch-impossible.yaml");
        assert!(kind::<Switch>(&flow, &flow.tasks[0].id).defaults.is_empty());
    }

    const SWITCH_FLOW: &str = "  - id: switch
    type: io.kestra.plugin.core.flow.Switch
    value: \"{{ VALUE }}\"
    cases:
      1:
        - id: one
          type: Return
      b:
        - id: bee
          type: Return
";

    #[test]
    fn switch_runs_the_matching_case_or_the_defaults() {
        let exec = run(&SWITCH_FLOW.replace("VALUE", "'b'"));
        assert_eq!(exec.state(), State::Success);
        assert_eq!(
            only(&exec, "switch").outputs(),
            Some(&json!({"value": "b", "defaults": false}))
        );
        assert_eq!(only(&exec, "bee").state(), State::Success);
        assert_eq!(exec.task_runs_of("one").count(), 0);

        let exec = run(&SWITCH_FLOW.replace("VALUE", "1"));
        assert_eq!(only(&exec, "one").state(), State::Success);

        let with_defaults = format!(
            "{}    defaults:\n      - id: other\n        type: Return\n",
            SWITCH_FLOW.replace("VALUE", "'z'")
        );
        let exec = run(&with_defaults);
        assert_eq!(
            only(&exec, "switch").outputs(),
            Some(&json!({"value": "z", "defaults": true}))
        );
        assert_eq!(only(&exec, "other").state(), State::Success);
    }

    #[test]
    fn switch_fails_when_nothing_matches_and_there_are_no_defaults() {
        let exec = run(&SWITCH_FLOW.replace("VALUE", "'z'"));
        assert_eq!(exec.state(), State::Failed);
        assert_eq!(exec.task_runs().len(), 1);
        assert_eq!(
            logs_of(&exec, "switch"),
            [(
                Level::Error,
                "No task found on flow for Switch value `z`: no case matches and there are no defaults"
                    .to_owned()
            )]
        );
        assert_eq!(
            problems("  - id: s\n    type: Switch\n    value: x\n    cases:\n      a: []\n"),
            ["tasks[0].cases at 4:5: no task defined: neither `cases` nor `defaults` has any task"]
        );
        assert_eq!(
            problems("  - id: s\n    type: Switch\n    value: x\n    cases: [a]\n"),
            [
                "tasks[0].cases at 4:5: no task defined: neither `cases` nor `defaults` has any task",
                "tasks[0].cases at 7:12: expected a map of case → tasks, found a list"
            ]
        );
    }
}
