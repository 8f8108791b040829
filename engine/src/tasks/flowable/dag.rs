//! Dag: its tasks side by side, each once the tasks it depends on succeeded.

use std::collections::HashMap;
use std::sync::Arc;

use crate::flow::{DagEntry, Props, Task};
use crate::tasks::{
    FramePlan, Groups, Started, TaskContext, TaskKind, TaskType, unlimited_if_zero,
};

pub(crate) static DAG: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.Dag",
    aliases: &["io.kestra.core.tasks.flows.Dag"],
    flowable: true,
    own_timeout: false,
    parse: parse_dag,
};

/// `core.flow.Dag`: dependencies checked at parse time (they name sibling
/// tasks and form no cycle).
#[derive(Debug)]
pub(crate) struct Dag {
    tasks: Vec<Task>,
    /// For each task, the ids of the tasks it waits for.
    depends_on: Vec<Vec<String>>,
    /// 0 = unlimited.
    concurrent: u32,
}

fn parse_dag(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let concurrent = p.u32("concurrent", 0, 0);
    let (entries, complete) = p.dag_task_list("tasks");
    if complete {
        check(p, &entries);
    }
    let (tasks, depends_on) = entries.into_iter().map(|e| (e.task, e.depends_on)).unzip();
    Some(Arc::new(Dag {
        tasks,
        depends_on,
        concurrent,
    }))
}

/// Dependencies must name sibling tasks and must not form a cycle.
fn check(p: &mut Props<'_, '_>, entries: &[DagEntry]) {
    let ids: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.task.id.as_str(), i))
        .collect();
    let mut broken = false;
    for e in entries {
        for dep in &e.depends_on {
            if !ids.contains_key(dep.as_str()) {
                broken = true;
                p.problem(
                    &e.depends_at,
                    format!("depends on `{dep}`, which is not a task of this Dag"),
                );
            }
        }
    }
    // Two tasks with one id are refused by the flow's own check; the graph
    // of such a list has no meaning to check for cycles.
    if broken || ids.len() < entries.len() {
        return;
    }
    // Kahn's algorithm: what remains after removing sources is cyclic.
    let mut indegree: Vec<usize> = entries.iter().map(|e| e.depends_on.len()).collect();
    let mut ready: Vec<usize> = (0..entries.len()).filter(|&i| indegree[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for (j, e) in entries.iter().enumerate() {
            let edges = e
                .depends_on
                .iter()
                .filter(|d| **d == entries[i].task.id)
                .count();
            if edges > 0 {
                indegree[j] -= edges;
                if indegree[j] == 0 {
                    ready.push(j);
                }
            }
        }
    }
    if done < entries.len() {
        let cyclic: Vec<&str> = entries
            .iter()
            .zip(&indegree)
            .filter(|(_, d)| **d > 0)
            .map(|(e, _)| e.task.id.as_str())
            .collect();
        if let Some((first, _)) = entries.iter().zip(&indegree).find(|(_, d)| **d > 0) {
            p.problem(
                &first.depends_at,
                format!("cyclic dependency between {}", cyclic.join(", ")),
            );
        }
    }
}

impl TaskKind for Dag {
    fn start(&self, _ctx: &mut TaskContext<'_>) -> Started {
        Started::Frame(FramePlan {
            limit: unlimited_if_zero(self.concurrent),
            dag: true,
            parallel_errors: true,
            ..FramePlan::new(Groups::EachTask(0))
        })
    }

    fn child_lists(&self) -> Vec<&[Task]> {
        vec![&self.tasks]
    }

    fn dag_deps(&self) -> Vec<Vec<u32>> {
        self.depends_on
            .iter()
            .map(|deps| {
                deps.iter()
                    .filter_map(|dep| self.tasks.iter().position(|t| &t.id == dep))
                    .map(|p| p as u32)
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::State;
    use crate::tasks::testing::{corpus, kind, problems, run};

    #[test]
    fn dag_dependencies_are_read() {
        let flow = corpus("dag.yaml");
        let dag = kind::<Dag>(&flow, &flow.tasks[0].id);
        assert_eq!(dag.concurrent, 0);
        assert_eq!(dag.tasks.len(), 6);
        assert_eq!(dag.tasks[4].id, "task5");
        assert_eq!(dag.depends_on[4], ["task4", "task3"]);
        assert_eq!(dag.dag_deps()[4], [3, 2]);
        assert_eq!(flow.tasks[0].description.as_deref(), Some("my task"));
    }

    const DAG_FLOW: &str = "  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task:
          id: last
          type: Return
        dependsOn: [first, DEP]
      - task:
          id: first
          type: Return
      - task:
          id: middle
          type: Return
        dependsOn: [first]
";

    #[test]
    fn a_task_starts_once_its_dependencies_succeeded() {
        let exec = run(&DAG_FLOW.replace("DEP", "middle"));
        assert_eq!(exec.state(), State::Success);
        let order: Vec<&str> = exec.task_runs().iter().map(|t| t.task_id()).collect();
        assert_eq!(order, ["dag", "first", "middle", "last"]);
    }

    #[test]
    fn unknown_and_cyclic_dependencies_are_refused() {
        assert_eq!(
            problems(&DAG_FLOW.replace("DEP", "nope")),
            [
                "tasks[0].tasks[0].dependsOn at 10:20: depends on `nope`, which is not a task of this Dag"
            ]
        );
        let cyclic = DAG_FLOW
            .replace("DEP", "middle")
            .replace("dependsOn: [first]", "dependsOn: [last]");
        assert_eq!(
            problems(&cyclic),
            ["tasks[0].tasks[0].dependsOn at 10:20: cyclic dependency between last, middle"]
        );
        assert_eq!(
            problems("  - id: dag\n    type: Dag\n    tasks: []\n"),
            ["tasks[0].tasks at 6:12: must contain at least one task"]
        );
    }

    /// Found by the flow fuzzer: two tasks with one id, and a dependency
    /// on it, made the cycle check count an edge twice and panic.
    #[test]
    fn duplicate_ids_with_a_dependency_are_refused_not_panicked_on() {
        let twice = DAG_FLOW
            .replace("DEP", "first")
            .replace("id: middle", "id: first");
        let found = problems(&twice);
        assert!(
            found
                .iter()
                .any(|p| p.contains("duplicate task id `first`")),
            "{found:?}"
        );
    }
}
