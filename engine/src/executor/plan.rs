//! A flow revision compiled for the executor: every task in one flat table,
//! every task list as indices into it, so a running execution refers to tasks
//! by a `u32` and never walks the YAML tree.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::flow::{Flow, Task, TaskKind};

pub(crate) type TaskIdx = u32;
pub(crate) type ListId = u32;

/// How a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Schedules children; resolved inline in the shard.
    Flowable,
    /// Cheap and pure; runs inline in the shard.
    Inline,
    /// Waits on the shard's timer wheel.
    Timer,
    /// Blocks: runs on the worker pool.
    Worker,
}

#[derive(Debug)]
pub(crate) struct Node {
    /// The task with its child lists emptied: children live in `lists`.
    pub task: Task,
    pub task_id: Arc<str>,
    pub mode: Mode,
    /// The kind's child lists, in [`TaskKind::child_lists`] order; for a Dag,
    /// its one list of tasks.
    pub children: Vec<ListId>,
    pub errors: ListId,
    pub finally: ListId,
    /// For a Dag: for each child position, the positions it waits for.
    pub dag_deps: Vec<Vec<u32>>,
    /// `{"id": ..., "type": ...}`, the `task` variable.
    pub task_json: Value,
}

/// Finds a flow revision by namespace, flow id and revision number: how a
/// durable engine finds the flow an execution ran when it resumes it.
pub type FlowLookup<'a> = dyn Fn(&str, &str, u32) -> Option<Arc<FlowRevision>> + 'a;

/// A flow revision, ready to run. Built once per revision, shared by every
/// shard through an `Arc`.
#[derive(Debug)]
pub struct FlowRevision {
    flow: Arc<Flow>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) lists: Vec<Vec<TaskIdx>>,
    pub(crate) root_tasks: ListId,
    pub(crate) root_errors: ListId,
    pub(crate) root_finally: ListId,
    pub(crate) by_id: FxHashMap<Arc<str>, TaskIdx>,
    /// `vars`, as one JSON object read in place.
    pub(crate) variables: Value,
    /// `flow`: `{id, namespace, revision}`.
    pub(crate) flow_json: Value,
    pub(crate) namespace: Arc<str>,
    pub(crate) flow_id: Arc<str>,
}

impl FlowRevision {
    pub fn new(flow: Arc<Flow>) -> Self {
        let mut rev = FlowRevision {
            flow_json: serde_json::json!({
                "id": flow.id,
                "namespace": flow.namespace,
                "revision": flow.revision,
            }),
            variables: Value::Object(flow.variables.clone()),
            namespace: Arc::from(flow.namespace.as_str()),
            flow_id: Arc::from(flow.id.as_str()),
            nodes: Vec::new(),
            lists: Vec::new(),
            root_tasks: 0,
            root_errors: 0,
            root_finally: 0,
            by_id: FxHashMap::default(),
            flow: Arc::clone(&flow),
        };
        rev.root_tasks = rev.add_list(&flow.tasks);
        rev.root_errors = rev.add_list(&flow.errors);
        rev.root_finally = rev.add_list(&flow.finally);
        rev
    }

    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    pub fn revision(&self) -> u32 {
        self.flow.revision
    }

    pub(crate) fn node(&self, idx: TaskIdx) -> &Node {
        &self.nodes[idx as usize]
    }

    pub(crate) fn list(&self, id: ListId) -> &[TaskIdx] {
        &self.lists[id as usize]
    }

    fn add_list(&mut self, tasks: &[Task]) -> ListId {
        let id = self.lists.len() as ListId;
        self.lists.push(Vec::new());
        let members: Vec<TaskIdx> = tasks.iter().map(|t| self.add_node(t)).collect();
        self.lists[id as usize] = members;
        id
    }

    fn add_node(&mut self, task: &Task) -> TaskIdx {
        let idx = self.nodes.len() as TaskIdx;
        let mut shallow = task.clone();
        strip_children(&mut shallow);
        let task_id: Arc<str> = Arc::from(task.id.as_str());
        self.by_id.insert(Arc::clone(&task_id), idx);
        self.nodes.push(Node {
            mode: mode_of(&task.kind),
            task_json: serde_json::json!({"id": task.id, "type": task.type_name}),
            task: shallow,
            task_id,
            children: Vec::new(),
            errors: 0,
            finally: 0,
            dag_deps: Vec::new(),
        });
        let mut children: Vec<ListId> = task
            .kind
            .child_lists()
            .into_iter()
            .map(|list| self.add_list(list))
            .collect();
        let mut dag_deps = Vec::new();
        if let TaskKind::Dag { tasks, .. } = &task.kind {
            let members: Vec<Task> = tasks.iter().map(|d| d.task.clone()).collect();
            children.push(self.add_list(&members));
            dag_deps = tasks
                .iter()
                .map(|d| {
                    d.depends_on
                        .iter()
                        .filter_map(|dep| tasks.iter().position(|o| &o.task.id == dep))
                        .map(|p| p as u32)
                        .collect()
                })
                .collect();
        }
        let errors = self.add_list(&task.errors);
        let finally = self.add_list(&task.finally);
        let node = &mut self.nodes[idx as usize];
        node.children = children;
        node.errors = errors;
        node.finally = finally;
        node.dag_deps = dag_deps;
        idx
    }
}

fn mode_of(kind: &TaskKind) -> Mode {
    match kind {
        TaskKind::Return { .. }
        | TaskKind::Log { .. }
        | TaskKind::OutputValues { .. }
        | TaskKind::Fail { .. }
        | TaskKind::TransformValue { .. } => Mode::Inline,
        TaskKind::Sleep { .. } => Mode::Timer,
        TaskKind::HttpRequest { .. } => Mode::Worker,
        _ => Mode::Flowable,
    }
}

/// Empties a task's child lists: the plan holds them as indices instead.
fn strip_children(task: &mut Task) {
    task.errors.clear();
    task.finally.clear();
    match &mut task.kind {
        TaskKind::If { then, else_, .. } => {
            then.clear();
            else_.clear();
        }
        TaskKind::Switch {
            cases, defaults, ..
        } => {
            for (_, tasks) in cases.iter_mut() {
                tasks.clear();
            }
            defaults.clear();
        }
        TaskKind::Sequential { tasks }
        | TaskKind::Parallel { tasks, .. }
        | TaskKind::ForEach { tasks, .. }
        | TaskKind::EachSequential { tasks, .. }
        | TaskKind::EachParallel { tasks, .. }
        | TaskKind::AllowFailure { tasks } => tasks.clear(),
        TaskKind::Dag { tasks, .. } => tasks.clear(),
        _ => {}
    }
}
