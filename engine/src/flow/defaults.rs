//! `pluginDefaults` (and the deprecated `taskDefaults`), applied to the YAML
//! tree before the flow is parsed, as Kestra applies them to the flow's map.
//!
//! A default applies to every map in the flow whose `type` equals the
//! default's `type`, starts with it (a prefix such as `io.kestra.plugin.core`),
//! or names the same plugin through an alias (a prefix also matches the
//! canonical name of a type written with a deprecated alias). Non-forced defaults fill in what
//! the task leaves out; forced ones override it. Maps merge recursively and
//! lists concatenate, as Kestra's `MapUtils.merge` does.

use super::types;
use super::yaml::{Node, NodeValue};

pub(crate) struct PluginDefault {
    pub type_name: String,
    pub values: Node,
    pub forced: bool,
}

/// Applies `defaults` to every typed map under `root` except the defaults
/// themselves.
pub(crate) fn apply(root: &mut Node, defaults: &[PluginDefault]) {
    if defaults.is_empty() {
        return;
    }
    let NodeValue::Map(entries) = &mut root.value else {
        return;
    };
    for (key, value) in entries.iter_mut() {
        let skip =
            matches!(&key.value, NodeValue::Str(k) if k == "pluginDefaults" || k == "taskDefaults");
        if !skip {
            apply_within(value, defaults);
        }
    }
}

fn apply_within(node: &mut Node, defaults: &[PluginDefault]) {
    match &mut node.value {
        NodeValue::Seq(items) => items.iter_mut().for_each(|n| apply_within(n, defaults)),
        NodeValue::Map(entries) => {
            // Children first: a default's own values are not defaulted again.
            for (_, v) in entries.iter_mut() {
                apply_within(v, defaults);
            }
            if let Some(type_name) = type_of(node) {
                apply_to(node, &type_name, defaults);
            }
        }
        _ => {}
    }
}

fn type_of(node: &Node) -> Option<String> {
    let NodeValue::Map(entries) = &node.value else {
        return None;
    };
    entries
        .iter()
        .find_map(|(k, v)| match (&k.value, &v.value) {
            (NodeValue::Str(k), NodeValue::Str(t)) if k == "type" => Some(t.clone()),
            _ => None,
        })
}

fn matches(default_type: &str, type_name: &str) -> bool {
    if type_name == default_type || type_name.starts_with(default_type) {
        return true;
    }
    // Also by the canonical name, so that a prefix default reaches tasks
    // written with a deprecated alias.
    let canonical = types::task_type(type_name)
        .map(|t| t.0)
        .or_else(|_| types::trigger_type(type_name).map(|t| t.0));
    if canonical.is_ok_and(|c| c.starts_with(default_type)) {
        return true;
    }
    let same = |a: Option<&'static str>, b: Option<&'static str>| a.is_some() && a == b;
    same(
        types::task_type(default_type).ok().map(|t| t.0),
        types::task_type(type_name).ok().map(|t| t.0),
    ) || same(
        types::trigger_type(default_type).ok().map(|t| t.0),
        types::trigger_type(type_name).ok().map(|t| t.0),
    )
}

fn apply_to(node: &mut Node, type_name: &str, defaults: &[PluginDefault]) {
    let applicable = defaults.iter().filter(|d| matches(&d.type_name, type_name));
    let (forced, soft): (Vec<_>, Vec<_>) = applicable.partition(|d| d.forced);
    for d in soft {
        // The task wins over a soft default.
        let mut merged = d.values.clone();
        merge_into(&mut merged, node.clone());
        merged.pos = node.pos;
        *node = merged;
    }
    // Forced defaults win; the first one listed wins over later ones.
    for d in forced.iter().rev() {
        merge_into(node, d.values.clone());
    }
}

/// Merges `over` into `base`; `over` wins, maps merge, lists concatenate.
fn merge_into(base: &mut Node, over: Node) {
    match (&mut base.value, over.value) {
        (NodeValue::Map(base_entries), NodeValue::Map(over_entries)) => {
            for (k, v) in over_entries {
                let key = k.scalar_text();
                let existing = base_entries
                    .iter_mut()
                    .find(|(bk, _)| bk.scalar_text() == key);
                match existing {
                    Some((_, bv)) => merge_into(bv, v),
                    None => base_entries.push((k, v)),
                }
            }
        }
        (NodeValue::Seq(base_items), NodeValue::Seq(over_items)) => {
            base_items.extend(over_items);
        }
        (_, NodeValue::Null) => {}
        (_, value) => {
            base.value = value;
            base.pos = over.pos;
        }
    }
}
