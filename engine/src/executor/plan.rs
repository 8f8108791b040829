//! A flow revision compiled for the executor: every task in one flat table,
//! every task list as indices into it, so a running execution refers to tasks
//! by a `u32` and never walks the YAML tree.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::flow::{Flow, Retry, Task};

pub(crate) type TaskIdx = u32;
pub(crate) type ListId = u32;

#[derive(Debug)]
pub(crate) struct Node {
    /// The task without its `errors` and `finally` (they are in `lists`);
    /// its kind, child lists included, is shared with the flow.
    pub task: Task,
    pub task_id: Arc<str>,
    /// The kind's child lists, in
    /// [`TaskKind::child_lists`](crate::tasks::TaskKind::child_lists) order.
    pub children: Vec<ListId>,
    pub errors: ListId,
    pub finally: ListId,
    /// For each child position, the positions it waits for (see
    /// [`TaskKind::dag_deps`](crate::tasks::TaskKind::dag_deps)).
    pub dag_deps: Vec<Vec<u32>>,
    /// `{"id": ..., "type": ...}`, the `task` variable.
    pub task_json: Value,
    /// The flowable task whose child lists (`errors` and `finally` too)
    /// hold this one; `None` at the top.
    pub parent: Option<TaskIdx>,
}

/// Finds a flow revision by namespace, flow id and revision number: how a
/// durable engine finds the flow an execution ran when it resumes it.
pub type FlowLookup<'a> = dyn Fn(&str, &str, u32) -> Option<Arc<FlowRevision>> + Sync + 'a;

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
        rev.root_tasks = rev.add_list(&flow.tasks, None);
        rev.root_errors = rev.add_list(&flow.errors, None);
        rev.root_finally = rev.add_list(&flow.finally, None);
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

    /// The retry that applies when task `idx` (a runnable task) fails: its
    /// own, else the nearest flowable ancestor's, else the flow's.
    pub(crate) fn retry_of(&self, idx: TaskIdx) -> Option<&Retry> {
        let mut at = Some(idx);
        while let Some(i) = at {
            let node = self.node(i);
            if let Some(retry) = &node.task.retry {
                return Some(retry);
            }
            at = node.parent;
        }
        self.flow.retry.as_ref()
    }

    pub(crate) fn list(&self, id: ListId) -> &[TaskIdx] {
        &self.lists[id as usize]
    }

    fn add_list(&mut self, tasks: &[Task], parent: Option<TaskIdx>) -> ListId {
        let id = self.lists.len() as ListId;
        self.lists.push(Vec::new());
        let members: Vec<TaskIdx> = tasks.iter().map(|t| self.add_node(t, parent)).collect();
        self.lists[id as usize] = members;
        id
    }

    fn add_node(&mut self, task: &Task, parent: Option<TaskIdx>) -> TaskIdx {
        let idx = self.nodes.len() as TaskIdx;
        let task_id: Arc<str> = Arc::from(task.id.as_str());
        self.by_id.insert(Arc::clone(&task_id), idx);
        self.nodes.push(Node {
            task_json: serde_json::json!({"id": task.id, "type": task.type_name}),
            task: task.without_handlers(),
            task_id,
            children: Vec::new(),
            errors: 0,
            finally: 0,
            dag_deps: task.kind.dag_deps(),
            parent,
        });
        let children: Vec<ListId> = task
            .kind
            .child_lists()
            .into_iter()
            .map(|list| self.add_list(list, Some(idx)))
            .collect();
        let errors = self.add_list(&task.errors, Some(idx));
        let finally = self.add_list(&task.finally, Some(idx));
        let node = &mut self.nodes[idx as usize];
        node.children = children;
        node.errors = errors;
        node.finally = finally;
        idx
    }
}
