//! Sequential, Parallel and AllowFailure: one task list, run in order or
//! side by side.

use std::sync::Arc;

use crate::flow::{Props, Task};
use crate::tasks::{
    FramePlan, Groups, Started, TaskContext, TaskKind, TaskType, unlimited_if_zero,
};

pub(crate) static SEQUENTIAL: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.Sequential",
    aliases: &["io.kestra.core.tasks.flows.Sequential"],
    flowable: true,
    own_timeout: false,
    parse: |p| {
        Some(Arc::new(Sequential {
            tasks: p.req_task_list("tasks"),
        }))
    },
};

pub(crate) static PARALLEL: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.Parallel",
    aliases: &["io.kestra.core.tasks.flows.Parallel"],
    flowable: true,
    own_timeout: false,
    parse: parse_parallel,
};

pub(crate) static ALLOW_FAILURE: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.AllowFailure",
    aliases: &["io.kestra.core.tasks.flows.AllowFailure"],
    flowable: true,
    own_timeout: false,
    parse: |p| {
        Some(Arc::new(AllowFailure {
            tasks: p.req_task_list("tasks"),
        }))
    },
};

/// `core.flow.Sequential`: its tasks one after another.
#[derive(Debug)]
pub(crate) struct Sequential {
    tasks: Vec<Task>,
}

impl TaskKind for Sequential {
    fn start(&self, _ctx: &mut TaskContext<'_>) -> Started {
        Started::Frame(FramePlan::new(Groups::Sequence(0)))
    }

    fn child_lists(&self) -> Vec<&[Task]> {
        vec![&self.tasks]
    }
}

/// `core.flow.Parallel`: its tasks side by side, `concurrent` at a time.
#[derive(Debug)]
pub(crate) struct Parallel {
    tasks: Vec<Task>,
    /// 0 = unlimited (Kestra's default).
    concurrent: u32,
}

fn parse_parallel(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let concurrent = p.u32("concurrent", 0, 0);
    Some(Arc::new(Parallel {
        tasks: p.req_task_list("tasks"),
        concurrent,
    }))
}

impl TaskKind for Parallel {
    fn start(&self, _ctx: &mut TaskContext<'_>) -> Started {
        Started::Frame(FramePlan {
            limit: unlimited_if_zero(self.concurrent),
            parallel_errors: true,
            ..FramePlan::new(Groups::EachTask(0))
        })
    }

    fn child_lists(&self) -> Vec<&[Task]> {
        vec![&self.tasks]
    }
}

/// `core.flow.AllowFailure`: its tasks in order; their failure ends the
/// task run WARNING.
#[derive(Debug)]
pub(crate) struct AllowFailure {
    tasks: Vec<Task>,
}

impl TaskKind for AllowFailure {
    fn start(&self, _ctx: &mut TaskContext<'_>) -> Started {
        Started::Frame(FramePlan {
            allow_failure: true,
            ..FramePlan::new(Groups::Sequence(0))
        })
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
    use crate::tasks::testing::{corpus, flow, kind, only, problems, run};

    fn order(exec: &Execution) -> Vec<&str> {
        exec.task_runs().iter().map(|t| t.task_id()).collect()
    }

    #[test]
    fn sequential_runs_its_tasks_in_order_and_stops_at_a_failure() {
        let exec = run("  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: a
        type: Return
      - id: b
        type: Fail
      - id: c
        type: Return
");
        assert_eq!(exec.state(), State::Failed);
        assert_eq!(order(&exec), ["seq", "a", "b"]);
        assert_eq!(only(&exec, "seq").state(), State::Failed);
        assert_eq!(only(&exec, "seq").outputs(), Some(&json!({})));
        assert_eq!(
            problems("  - id: seq\n    type: Sequential\n    tasks: []\n"),
            ["tasks[0].tasks at 6:12: must contain at least one task"]
        );
    }

    const PARALLEL: &str = "  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    CONCURRENT
    tasks:
      - id: boom
        type: Fail
      - id: other
        type: Return
";

    #[test]
    fn parallel_starts_every_task_unless_limited() {
        let exec = run(&PARALLEL.replace("CONCURRENT", "concurrent: 0"));
        assert_eq!(exec.state(), State::Failed);
        assert_eq!(
            order(&exec),
            ["par", "boom", "other"],
            "every child is created before the failure stops the frame"
        );
        // One at a time: the failure stops the frame before `other` starts.
        let exec = run(&PARALLEL.replace("CONCURRENT", "concurrent: 1"));
        assert_eq!(order(&exec), ["par", "boom"]);
    }

    #[test]
    fn parallel_concurrency_is_read() {
        let flow = corpus("full.yaml");
        assert_eq!(kind::<Parallel>(&flow, "t5").concurrent, 3);
        let flow = flow_of("    tasks:\n      - id: a\n        type: Return\n");
        assert_eq!(kind::<Parallel>(&flow, "par").concurrent, 0, "unlimited");
        assert_eq!(
            problems(
                "  - id: par\n    type: Parallel\n    concurrent: -1\n    tasks:\n      - id: a\n        type: Return\n"
            ),
            ["tasks[0].concurrent at 6:17: expected an integer ≥ 0, found an integer `-1`"]
        );
    }

    fn flow_of(rest: &str) -> crate::flow::Flow {
        flow(&format!("  - id: par\n    type: Parallel\n{rest}"))
    }

    #[test]
    fn parallel_errors_start_together() {
        let handlers = "    errors:
      - id: slow
        type: Sleep
        duration: PT0.1S
      - id: quick
        type: Return
";
        let failing = "    tasks:\n      - id: boom\n        type: Fail\n";
        let ran = |kind: &str| {
            run(&format!(
                "  - id: parent\n    type: {kind}\n{failing}{handlers}"
            ))
        };
        let exec = ran("Parallel");
        let (slow, quick) = (only(&exec, "slow"), only(&exec, "quick"));
        assert!(quick.history().start_date() < slow.history().end_date().expect("ended"));
        // A Sequential's errors run one after another.
        let exec = ran("Sequential");
        let (slow, quick) = (only(&exec, "slow"), only(&exec, "quick"));
        assert!(quick.history().start_date() >= slow.history().end_date().expect("ended"));
    }

    #[test]
    fn allow_failure_turns_a_failure_into_a_warning() {
        let exec = run("  - id: allow
    type: io.kestra.plugin.core.flow.AllowFailure
    tasks:
      - id: boom
        type: Fail
      - id: skipped
        type: Return
  - id: next
    type: Return
");
        assert_eq!(exec.state(), State::Warning);
        assert_eq!(only(&exec, "allow").state(), State::Warning);
        assert_eq!(only(&exec, "boom").state(), State::Failed);
        assert_eq!(exec.task_runs_of("skipped").count(), 0);
        assert_eq!(only(&exec, "next").state(), State::Success);
    }
}
