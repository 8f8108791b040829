//! The `outputs` variable: task outputs indexed by task id and loop values,
//! stored once and read in place.
//!
//! Kestra builds this map by merging every task run's outputs into a fresh
//! map for each render (0.22 made it cheaper; it still clones). Here a task
//! run's outputs are inserted once, along its chain of loop values, and a
//! lookup like `outputs.t['a']['x'].value` is one hash probe per step.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use crate::expression::{LazyObject, Scope};

#[derive(Debug)]
enum Node {
    Leaf(Arc<Value>),
    /// Keyed by loop value, in insertion order for rendering whole.
    Branch(FxHashMap<Arc<str>, Node>, Vec<Arc<str>>),
}

impl Node {
    fn scope(&self) -> Scope<'_> {
        match self {
            Node::Leaf(v) => Scope::Json(v),
            Node::Branch(..) => Scope::Lazy(self),
        }
    }

    fn json(&self) -> Value {
        match self {
            Node::Leaf(v) => (**v).clone(),
            Node::Branch(map, order) => Value::Object(
                order
                    .iter()
                    .filter_map(|k| map.get(k).map(|n| (k.to_string(), n.json())))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

impl LazyObject for Node {
    fn get(&self, key: &str) -> Option<Scope<'_>> {
        match self {
            Node::Leaf(v) => v.get(key).map(Scope::Json),
            Node::Branch(map, _) => map.get(key).map(Node::scope),
        }
    }

    fn to_json(&self) -> Value {
        self.json()
    }
}

/// Every task run's outputs, by task id then loop values.
#[derive(Debug, Default)]
pub(crate) struct OutputIndex {
    by_task: FxHashMap<Arc<str>, Node>,
    order: Vec<Arc<str>>,
}

impl OutputIndex {
    /// Records `outputs` of `task_id` under its loop-value `chain` (outermost
    /// first). A later run with the same key replaces the earlier one.
    pub fn insert(&mut self, task_id: &Arc<str>, chain: &[Arc<str>], outputs: Arc<Value>) {
        if !self.by_task.contains_key(task_id) {
            self.order.push(Arc::clone(task_id));
        }
        let Some((last, path)) = chain.split_last() else {
            self.by_task
                .insert(Arc::clone(task_id), Node::Leaf(outputs));
            return;
        };
        let mut node = self
            .by_task
            .entry(Arc::clone(task_id))
            .or_insert_with(|| Node::Branch(FxHashMap::default(), Vec::new()));
        for key in path {
            node = branch_child(node, key);
        }
        if let Node::Branch(map, order) = node
            && map.insert(Arc::clone(last), Node::Leaf(outputs)).is_none()
        {
            order.push(Arc::clone(last));
        }
    }

    pub fn get(&self, task_id: &str) -> Option<Scope<'_>> {
        self.by_task.get(task_id).map(Node::scope)
    }
}

/// The child branch at `key`, created (or turned from a leaf into a branch,
/// as Kestra's merge would) when missing.
fn branch_child<'a>(node: &'a mut Node, key: &Arc<str>) -> &'a mut Node {
    if let Node::Leaf(_) = node {
        *node = Node::Branch(FxHashMap::default(), Vec::new());
    }
    match node {
        Node::Branch(map, order) => {
            if !map.contains_key(key) {
                order.push(Arc::clone(key));
            }
            map.entry(Arc::clone(key))
                .or_insert_with(|| Node::Branch(FxHashMap::default(), Vec::new()))
        }
        Node::Leaf(_) => unreachable!("turned into a branch above"),
    }
}

impl LazyObject for OutputIndex {
    fn get(&self, key: &str) -> Option<Scope<'_>> {
        OutputIndex::get(self, key)
    }

    fn to_json(&self) -> Value {
        Value::Object(
            self.order
                .iter()
                .filter_map(|k| self.by_task.get(k).map(|n| (k.to_string(), n.json())))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    fn lookup<'a>(scope: Scope<'a>, key: &str) -> Option<Scope<'a>> {
        match scope {
            Scope::Json(v) => v.get(key).map(Scope::Json),
            Scope::Lazy(l) => l.get(key),
            Scope::Owned(_) => None,
        }
    }

    fn json(scope: Option<Scope<'_>>) -> Option<Value> {
        scope.map(|s| match s {
            Scope::Json(v) => v.clone(),
            Scope::Owned(v) => v,
            Scope::Lazy(l) => l.to_json(),
        })
    }

    #[test]
    fn nested_loop_outputs_read_by_value_chain() {
        let mut index = OutputIndex::default();
        let t = id("t");
        for outer in ["a", "b"] {
            for inner in ["x", "y"] {
                let out = Arc::new(serde_json::json!({"value": format!("{outer}-{inner}")}));
                index.insert(&t, &[id(outer), id(inner)], out);
            }
        }
        index.insert(&id("plain"), &[], Arc::new(serde_json::json!({"value": 1})));

        let ay = lookup(lookup(index.get("t").unwrap(), "a").unwrap(), "y").unwrap();
        assert_eq!(json(lookup(ay, "value")), Some(serde_json::json!("a-y")));
        assert_eq!(
            json(index.get("plain")),
            Some(serde_json::json!({"value": 1}))
        );
        assert!(lookup(index.get("t").unwrap(), "c").is_none());
        assert_eq!(
            LazyObject::to_json(&index),
            serde_json::json!({
                "t": {"a": {"x": {"value": "a-x"}, "y": {"value": "a-y"}},
                      "b": {"x": {"value": "b-x"}, "y": {"value": "b-y"}}},
                "plain": {"value": 1}
            })
        );
    }
}
