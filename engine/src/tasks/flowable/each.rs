//! ForEach and the deprecated EachSequential and EachParallel: their task
//! list once per loop value, the value on each task run.

use std::sync::Arc;

use super::loop_values;
use crate::expression::Property;
use crate::flow::{Props, Task};
use crate::tasks::{
    FramePlan, Groups, Started, TaskContext, TaskKind, TaskType, unlimited_if_zero,
};

pub(crate) static FOR_EACH: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.ForEach",
    aliases: &[],
    flowable: true,
    own_timeout: false,
    parse: parse_for_each,
};

pub(crate) static EACH_SEQUENTIAL: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.EachSequential",
    aliases: &["io.kestra.core.tasks.flows.EachSequential"],
    flowable: true,
    own_timeout: false,
    parse: parse_each_sequential,
};

pub(crate) static EACH_PARALLEL: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.EachParallel",
    aliases: &["io.kestra.core.tasks.flows.EachParallel"],
    flowable: true,
    own_timeout: false,
    parse: parse_each_parallel,
};

/// `core.flow.ForEach`: `values` is a list, or a JSON string of a list
/// (rendered first); one group per value, `concurrency_limit` at a time.
#[derive(Debug)]
pub(crate) struct ForEach {
    values: Property,
    /// Default 1; 0 = unlimited.
    concurrency_limit: u32,
    tasks: Vec<Task>,
}

fn parse_for_each(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let values = p.list_property("values");
    let concurrency_limit = p.u32("concurrencyLimit", 1, 0);
    Some(Arc::new(ForEach {
        values: values?,
        concurrency_limit,
        tasks: p.req_task_list("tasks"),
    }))
}

impl TaskKind for ForEach {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        match ctx.render(&self.values).and_then(loop_values) {
            Ok(values) => Started::Frame(FramePlan {
                limit: unlimited_if_zero(self.concurrency_limit),
                ..FramePlan::new(Groups::PerValue(0, values))
            }),
            Err(e) => Started::Done(Err(e)),
        }
    }

    fn child_lists(&self) -> Vec<&[Task]> {
        vec![&self.tasks]
    }
}

/// Deprecated `EachSequential`: a ForEach one value at a time.
#[derive(Debug)]
pub(crate) struct EachSequential {
    value: Property,
    tasks: Vec<Task>,
}

fn parse_each_sequential(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let value = p.list_property("value");
    Some(Arc::new(EachSequential {
        value: value?,
        tasks: p.req_task_list("tasks"),
    }))
}

impl TaskKind for EachSequential {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        match ctx.render(&self.value).and_then(loop_values) {
            Ok(values) => Started::Frame(FramePlan::new(Groups::PerValue(0, values))),
            Err(e) => Started::Done(Err(e)),
        }
    }

    fn child_lists(&self) -> Vec<&[Task]> {
        vec![&self.tasks]
    }
}

/// Deprecated `EachParallel`: every value × task side by side, `concurrent`
/// at a time (0 = unlimited).
#[derive(Debug)]
pub(crate) struct EachParallel {
    value: Property,
    concurrent: u32,
    tasks: Vec<Task>,
}

fn parse_each_parallel(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let value = p.list_property("value");
    let concurrent = p.u32("concurrent", 0, 0);
    Some(Arc::new(EachParallel {
        value: value?,
        concurrent,
        tasks: p.req_task_list("tasks"),
    }))
}

impl TaskKind for EachParallel {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        match ctx.render(&self.value).and_then(loop_values) {
            Ok(values) => Started::Frame(FramePlan {
                limit: unlimited_if_zero(self.concurrent),
                parallel_errors: true,
                ..FramePlan::new(Groups::EachTaskPerValue(0, values))
            }),
            Err(e) => Started::Done(Err(e)),
        }
    }

    fn child_lists(&self) -> Vec<&[Task]> {
        vec![&self.tasks]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::execution::{Execution, State};
    use crate::flow::Level;
    use crate::tasks::testing::{corpus, kind, logs_of, only, problems, run};

    /// `(task id, value)` of every task run, in creation order.
    fn runs(exec: &Execution) -> Vec<(&str, Option<&str>)> {
        exec.task_runs()
            .iter()
            .map(|t| (t.task_id(), t.value()))
            .collect()
    }

    #[test]
    fn foreach_concurrency_limits() {
        let limit = |file: &str| {
            let flow = corpus(file);
            kind::<ForEach>(&flow, &flow.tasks[0].id).concurrency_limit
        };
        assert_eq!(limit("foreach-non-concurrent.yaml"), 1, "Kestra's default");
        assert_eq!(limit("foreach-concurrent.yaml"), 2);
        assert_eq!(
            limit("foreach-concurrent-no-limit.yaml"),
            0,
            "0 = unlimited"
        );
    }

    #[test]
    fn foreach_runs_its_tasks_once_per_distinct_value() {
        let exec = run("  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: \"{{ ['a', 'b', 'a'] }}\"
    tasks:
      - id: r
        type: Return
        format: \"{{ taskrun.value }}\"
  - id: last
    type: Return
    format: \"{{ outputs.r['b'].value }}\"
");
        assert_eq!(exec.state(), State::Success);
        assert_eq!(
            runs(&exec),
            [
                ("each", None),
                ("r", Some("a")),
                ("r", Some("b")),
                ("last", None)
            ]
        );
        assert_eq!(only(&exec, "each").outputs(), Some(&json!({})));
        assert_eq!(only(&exec, "last").outputs(), Some(&json!({"value": "b"})));
    }

    #[test]
    fn foreach_without_a_limit_creates_every_group_first() {
        let flow = |limit: u32| {
            format!(
                "  - id: each
    type: ForEach
    values: [1, 2]
    concurrencyLimit: {limit}
    tasks:
      - id: x
        type: Return
      - id: y
        type: Return
"
            )
        };
        let order = |exec: &Execution| -> Vec<String> {
            exec.task_runs()
                .iter()
                .skip(1)
                .map(|t| format!("{}{}", t.task_id(), t.value().unwrap_or_default()))
                .collect()
        };
        assert_eq!(order(&run(&flow(1))), ["x1", "y1", "x2", "y2"]);
        assert_eq!(order(&run(&flow(0))), ["x1", "x2", "y1", "y2"]);
    }

    #[test]
    fn foreach_values_are_checked() {
        let exec = run("  - id: each
    type: ForEach
    values: \"{{ [1, null] }}\"
    tasks:
      - id: r
        type: Return
");
        assert_eq!(exec.state(), State::Failed);
        assert_eq!(exec.task_runs().len(), 1);
        assert_eq!(
            logs_of(&exec, "each"),
            [(
                Level::Error,
                "Found '1' null values on Each, with values=[1,null]".to_owned()
            )]
        );
        assert_eq!(
            problems("  - id: each\n    type: ForEach\n    values: '[1,'\n    tasks:\n      - id: r\n        type: Return\n")
                .len(),
            1
        );
        assert_eq!(
            problems(
                "  - id: each\n    type: ForEach\n    values: {a: 1}\n    tasks:\n      - id: r\n        type: Return\n"
            )[0],
            "tasks[0].values at 6:13: expected a list or a JSON string of a list, found a map"
        );
    }

    #[test]
    fn each_sequential_and_each_parallel() {
        let exec = run("  - id: seq
    type: io.kestra.core.tasks.flows.EachSequential
    value: '[\"a\", \"b\"]'
    tasks:
      - id: s1
        type: Return
      - id: s2
        type: Return
");
        assert_eq!(exec.state(), State::Success);
        assert_eq!(
            runs(&exec)[1..],
            [
                ("s1", Some("a")),
                ("s2", Some("a")),
                ("s1", Some("b")),
                ("s2", Some("b"))
            ]
        );

        let exec = run("  - id: par
    type: io.kestra.core.tasks.flows.EachParallel
    value: [a, b]
    tasks:
      - id: p1
        type: Return
      - id: p2
        type: Return
");
        assert_eq!(
            runs(&exec)[1..],
            [
                ("p1", Some("a")),
                ("p2", Some("a")),
                ("p1", Some("b")),
                ("p2", Some("b"))
            ],
            "every value × task is created at once"
        );
        let flow = crate::tasks::testing::flow(
            "  - id: par\n    type: EachParallel\n    value: [a]\n    concurrent: 2\n    tasks:\n      - id: p\n        type: Return\n",
        );
        assert_eq!(kind::<EachParallel>(&flow, "par").concurrent, 2);
    }
}
