//! Flow YAML → [`Flow`], checking everything Kestra checks when it saves a
//! flow, and collecting every problem rather than stopping at the first.
//!
//! Rules, after Kestra (kestra-io/kestra, `Flow`, `Task`, `FlowValidator`):
//! - unknown properties are errors (Jackson's `FAIL_ON_UNKNOWN_PROPERTIES`);
//! - task ids match `^[a-zA-Z0-9][a-zA-Z0-9_-]*$` and are unique across the
//!   whole flow (nested tasks, `errors` and `finally` included);
//! - flow ids match `^[a-zA-Z0-9][a-zA-Z0-9._-]*$` (≤ 100 chars), namespaces
//!   `^[a-z0-9][a-z0-9._-]*$` (≤ 150), input and output ids
//!   `^[a-zA-Z0-9][.a-zA-Z0-9_-]*$`;
//! - `tasks` is non-empty; flowables that need children have some;
//! - an explicit `null` is the same as an absent property;
//! - scalars are coerced like Jackson does: `format: 42` is the string "42",
//!   `concurrent: "2"` is 2, `disabled: "true"` is true. YAML 1.1 booleans
//!   (`yes`, `on`) are strings (see `yaml::parse`);
//! - a template syntax error in a task property does not reject the flow:
//!   Kestra saves it and fails the task at run time, so the error goes to
//!   `Task::expression_error` and `Flow::warnings`. JSONata expressions, by
//!   contrast, are compiled here once and a syntax error is a problem.
//!
//! This file reads what every flow and every task has; each task type reads
//! its own properties in its module under `crate::tasks`, through [`Props`].

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::condition::{self, Condition};
use super::cron::CronSchedule;
use super::date_condition;
use super::defaults::{self, PluginDefault};
use super::duration::parse_duration;
use super::error::{Error, Problem, Result};
use super::inputs::coerce;
use super::model::{
    Concurrency, ConcurrencyBehavior, Deserializer, Flow, FlowOutput, InputDef, InputType, Level,
    RecoverMissed, Retry, RetryPolicy, Task, Trigger, TriggerKind,
};
use super::types::{self, TriggerType, Unresolved};
use super::yaml::{self, Node, NodeValue, Pos};
use crate::expression::Property;

/// Parses and validates one flow.
pub(crate) fn parse_flow(source: &str) -> Result<Flow> {
    let root = yaml::parse(source).map_err(|e| {
        Error::Invalid(vec![Problem {
            path: String::new(),
            line: e.pos.line,
            column: e.pos.column,
            message: format!("invalid YAML: {}", e.message),
        }])
    })?;
    let mut root = root;
    let mut p = Parser::default();
    let defaults = p.plugin_defaults(&root);
    defaults::apply(&mut root, &defaults);
    let flow = p.flow(&root, source);
    p.check_duplicate_ids();
    if let Some(flow) = &flow {
        p.check_recursion(&flow.namespace, &flow.id);
    }
    match flow {
        Some(mut flow) if p.problems.is_empty() => {
            p.warnings.sort_by_key(|p| (p.line, p.column));
            p.containers.sort_by_key(|p| (p.line, p.column));
            flow.warnings = p.warnings;
            flow.containers = p.containers;
            Ok(flow)
        }
        _ => {
            p.problems.sort_by_key(|p| (p.line, p.column));
            Err(Error::Invalid(p.problems))
        }
    }
}

#[derive(Default)]
struct Parser {
    problems: Vec<Problem>,
    /// Every task id met, with its path and position, for the duplicate check.
    task_ids: Vec<(String, String, Pos)>,
    /// One slot per task being parsed (innermost last): its first
    /// expression syntax error.
    task_expression_errors: Vec<Option<String>>,
    /// Problems that do not make the flow invalid.
    warnings: Vec<Problem>,
    /// Tasks that name a container (see `Flow::containers`).
    containers: Vec<Problem>,
    /// The flows Subflows call by name (namespace, flow id, where), for
    /// the recursion check.
    calls: Vec<(String, String, String, Pos)>,
}

/// A map node whose keys are taken one by one; the rest are unknown.
struct Fields<'a> {
    path: String,
    pos: Pos,
    entries: Vec<Entry<'a>>,
}

struct Entry<'a> {
    key: String,
    key_pos: Pos,
    value: &'a Node,
    used: bool,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

impl<'a> Fields<'a> {
    /// The value under `key`, if present and not null; marks it known.
    fn take(&mut self, key: &str) -> Option<(&'a Node, String)> {
        let entry = self.entries.iter_mut().find(|e| e.key == key)?;
        entry.used = true;
        match entry.value.value {
            NodeValue::Null => None,
            _ => Some((entry.value, child(&self.path, key))),
        }
    }

    /// Like [`Fields::take`], for the first of several spellings present.
    fn take_any(&mut self, keys: &[&str]) -> Option<(&'a Node, String)> {
        let mut found = None;
        for key in keys {
            let got = self.take(key);
            if found.is_none() {
                found = got;
            }
        }
        found
    }

    fn path(&self, key: &str) -> String {
        child(&self.path, key)
    }
}

/// Whether `namespace` is `parent` or one of its children (`a.b` is under
/// `a`; `ab` is not).
pub fn is_within_namespace(namespace: &str, parent: &str) -> bool {
    namespace == parent
        || namespace
            .strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Whether `namespace` is one Kestra accepts: `^[a-z0-9][a-z0-9._-]*$`, at
/// most 150 characters.
pub fn is_valid_namespace(namespace: &str) -> bool {
    id_matches(namespace, b"._-", true) && namespace.len() <= 150
}

/// `^[a-zA-Z0-9][<more>]*$`: a first alphanumeric, then alphanumerics or `more`.
fn id_matches(id: &str, more: &[u8], lowercase_only: bool) -> bool {
    let ok = |b: u8| {
        if lowercase_only {
            b.is_ascii_lowercase() || b.is_ascii_digit()
        } else {
            b.is_ascii_alphanumeric()
        }
    };
    let mut bytes = id.bytes();
    match bytes.next() {
        Some(b) if ok(b) => bytes.all(|b| ok(b) || more.contains(&b)),
        _ => false,
    }
}

impl Parser {
    fn problem(&mut self, path: &str, pos: Pos, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.to_owned(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        });
    }

    fn fields<'a>(&mut self, node: &'a Node, path: &str) -> Option<Fields<'a>> {
        let NodeValue::Map(entries) = &node.value else {
            self.problem(
                path,
                node.pos,
                format!("expected a map, found {}", node.kind()),
            );
            return None;
        };
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            match key.scalar_text() {
                Some(k) => out.push(Entry {
                    key: k,
                    key_pos: key.pos,
                    value,
                    used: false,
                }),
                None => self.problem(path, key.pos, "map keys must be scalars"),
            }
        }
        Some(Fields {
            path: path.to_owned(),
            pos: node.pos,
            entries: out,
        })
    }

    /// Reports the keys nobody took.
    fn finish(&mut self, fields: Fields<'_>, what: &str) {
        for e in fields.entries.iter().filter(|e| !e.used) {
            let path = child(&fields.path, &e.key);
            self.problem(
                &path,
                e.key_pos,
                format!("unknown property `{}` for {what}", e.key),
            );
        }
    }

    fn missing(&mut self, fields: &Fields<'_>, key: &str) {
        let path = fields.path(key);
        self.problem(
            &path,
            fields.pos,
            format!("missing required property `{key}`"),
        );
    }

    // ---- scalars ----

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            NodeValue::Seq(_) | NodeValue::Map(_) => {
                self.problem(
                    path,
                    node.pos,
                    format!("expected a string, found {}", node.kind()),
                );
                None
            }
            _ => node.scalar_text(),
        }
    }

    fn req_string(&mut self, f: &mut Fields<'_>, key: &str) -> Option<String> {
        match f.take(key) {
            Some((node, path)) => self.string(node, &path),
            None => {
                self.missing(f, key);
                None
            }
        }
    }

    fn opt_string(&mut self, f: &mut Fields<'_>, key: &str) -> Option<String> {
        let (node, path) = f.take(key)?;
        self.string(node, &path)
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            NodeValue::Bool(b) => Some(*b),
            NodeValue::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
            NodeValue::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => {
                let shown = node
                    .scalar_text()
                    .map(|t| format!(" `{t}`"))
                    .unwrap_or_default();
                self.problem(
                    path,
                    node.pos,
                    format!(
                        "expected a boolean (true or false), found {}{shown}",
                        node.kind()
                    ),
                );
                None
            }
        }
    }

    fn opt_bool(&mut self, f: &mut Fields<'_>, key: &str, default: bool) -> bool {
        match f.take(key) {
            Some((node, path)) => self.boolean(node, &path).unwrap_or(default),
            None => default,
        }
    }

    fn unsigned(&mut self, node: &Node, path: &str, min: u32) -> Option<u32> {
        let n = match &node.value {
            NodeValue::Int(i) => Some(*i),
            NodeValue::Str(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match n.and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n >= min => Some(n),
            _ => {
                let shown = node
                    .scalar_text()
                    .map(|t| format!(" `{t}`"))
                    .unwrap_or_default();
                self.problem(
                    path,
                    node.pos,
                    format!("expected an integer ≥ {min}, found {}{shown}", node.kind()),
                );
                None
            }
        }
    }

    fn opt_u32(&mut self, f: &mut Fields<'_>, key: &str, default: u32, min: u32) -> u32 {
        match f.take(key) {
            Some((node, path)) => self.unsigned(node, &path, min).unwrap_or(default),
            None => default,
        }
    }

    fn number(&mut self, node: &Node, path: &str) -> Option<f64> {
        match &node.value {
            NodeValue::Int(i) => Some(*i as f64),
            NodeValue::Float(x) => Some(*x),
            NodeValue::Str(s) if s.trim().parse::<f64>().is_ok() => s.trim().parse().ok(),
            _ => {
                self.problem(
                    path,
                    node.pos,
                    format!("expected a number, found {}", node.kind()),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let text = self.string(node, path)?;
        let d = parse_duration(&text);
        if d.is_none() {
            self.problem(
                path,
                node.pos,
                format!("`{text}` is not an ISO-8601 duration (e.g. PT30S, PT1H, P1DT2H)"),
            );
        }
        d
    }

    fn opt_duration(&mut self, f: &mut Fields<'_>, key: &str) -> Option<Duration> {
        let (node, path) = f.take(key)?;
        self.duration(node, &path)
    }

    fn level(&mut self, node: &Node, path: &str) -> Option<Level> {
        let text = self.string(node, path)?;
        let level = Level::parse(&text);
        if level.is_none() {
            self.problem(
                path,
                node.pos,
                format!("`{text}` is not a log level (TRACE, DEBUG, INFO, WARN, ERROR)"),
            );
        }
        level
    }

    fn string_list(&mut self, node: &Node, path: &str) -> Vec<String> {
        match &node.value {
            NodeValue::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, n)| self.string(n, &index(path, i)))
                .collect(),
            // Jackson's ACCEPT_SINGLE_VALUE_AS_ARRAY: one string is a list of one.
            NodeValue::Str(_) | NodeValue::Int(_) => self.string(node, path).into_iter().collect(),
            _ => {
                self.problem(
                    path,
                    node.pos,
                    format!("expected a list of strings, found {}", node.kind()),
                );
                Vec::new()
            }
        }
    }

    fn json_map(&mut self, node: &Node, path: &str) -> Map<String, Value> {
        match node.to_json() {
            Value::Object(m) => m,
            _ => {
                self.problem(
                    path,
                    node.pos,
                    format!("expected a map, found {}", node.kind()),
                );
                Map::new()
            }
        }
    }

    // ---- dynamic properties ----

    /// Compiles a property (any JSON; strings in it are templates).
    fn property(&mut self, node: &Node, path: &str) -> Option<Property> {
        self.compile(&node.to_json(), node.pos, path)
    }

    /// A property that must be a string (scalars are coerced to text).
    fn string_property(&mut self, node: &Node, path: &str) -> Option<Property> {
        let text = self.string(node, path)?;
        self.compile(&Value::String(text), node.pos, path)
    }

    /// Compiles a property. Inside a task, a syntax error does not make the
    /// flow invalid: Kestra accepts such a flow and fails the task when it
    /// renders the property, so the error is deferred to the task (see
    /// [`Task::expression_error`]) and kept as a warning. Elsewhere it is a
    /// problem.
    fn compile(&mut self, value: &Value, pos: Pos, path: &str) -> Option<Property> {
        match Property::compile(value) {
            Ok(p) => Some(p),
            Err(e) => {
                let message = format!("invalid expression: {e}");
                // The stand-in fails with this same error when rendered.
                let stand_in = Some(Property::compile_deferred(value).0);
                match (self.task_expression_errors.last_mut(), stand_in) {
                    (Some(slot), Some(stand_in)) => {
                        let warning = Problem {
                            path: path.to_owned(),
                            line: pos.line,
                            column: pos.column,
                            message: message.clone(),
                        };
                        slot.get_or_insert_with(|| warning.to_string());
                        self.warnings.push(warning);
                        Some(stand_in)
                    }
                    _ => {
                        self.problem(path, pos, message);
                        None
                    }
                }
            }
        }
    }

    fn req_string_property(&mut self, f: &mut Fields<'_>, key: &str) -> Option<Property> {
        match f.take(key) {
            Some((node, path)) => self.string_property(node, &path),
            None => {
                self.missing(f, key);
                None
            }
        }
    }

    fn opt_string_property(&mut self, f: &mut Fields<'_>, key: &str) -> Option<Property> {
        let (node, path) = f.take(key)?;
        self.string_property(node, &path)
    }

    // ---- the flow ----

    fn flow(&mut self, root: &Node, source: &str) -> Option<Flow> {
        if matches!(root.value, NodeValue::Null) {
            self.problem("", root.pos, "the flow is empty");
            return None;
        }
        let mut f = self.fields(root, "")?;
        let id = self.req_string(&mut f, "id");
        if let Some(id) = &id
            && (!id_matches(id, b"._-", false) || id.len() > 100)
        {
            let path = f.path("id");
            let pos = f.take("id").map_or(f.pos, |(n, _)| n.pos);
            self.problem(
                    &path,
                    pos,
                    format!("invalid flow id `{id}`: must match ^[a-zA-Z0-9][a-zA-Z0-9._-]*$ and be at most 100 characters"),
                );
        }
        let namespace = self.req_string(&mut f, "namespace");
        if let Some(ns) = &namespace
            && !is_valid_namespace(ns)
        {
            let path = f.path("namespace");
            let pos = f.take("namespace").map_or(f.pos, |(n, _)| n.pos);
            self.problem(
                    &path,
                    pos,
                    format!("invalid namespace `{ns}`: must match ^[a-z0-9][a-z0-9._-]*$ and be at most 150 characters"),
                );
        }
        let revision = match f.take("revision") {
            Some((node, path)) => self.unsigned(node, &path, 1).unwrap_or(1),
            None => 1,
        };
        let description = self.opt_string(&mut f, "description");
        let labels = match f.take("labels") {
            Some((node, path)) => self.labels(node, &path),
            None => Vec::new(),
        };
        let inputs = match f.take("inputs") {
            Some((node, path)) => self.inputs(node, &path),
            None => Vec::new(),
        };
        let variables = match f.take("variables") {
            Some((node, path)) => self.json_map(node, &path),
            None => Map::new(),
        };
        let tasks = match f.take("tasks") {
            Some((node, path)) => self.task_list(node, &path, true),
            None => {
                self.missing(&f, "tasks");
                Vec::new()
            }
        };
        let errors = self.opt_task_list(&mut f, "errors");
        let finally = self.opt_task_list(&mut f, "finally");
        let outputs = match f.take("outputs") {
            Some((node, path)) => self.outputs(node, &path),
            None => Vec::new(),
        };
        let triggers = match f.take("triggers") {
            Some((node, path)) => self.triggers(node, &path),
            None => Vec::new(),
        };
        let disabled = self.opt_bool(&mut f, "disabled", false);
        let _deleted = self.opt_bool(&mut f, "deleted", false);
        let retry = match f.take("retry") {
            Some((node, path)) => self.retry(node, &path),
            None => None,
        };
        let concurrency = match f.take("concurrency") {
            Some((node, path)) => self.concurrency(node, &path),
            None => None,
        };
        let mut plugin_defaults = Vec::new();
        for key in ["pluginDefaults", "taskDefaults"] {
            if let Some((node, path)) = f.take(key) {
                match node.to_json() {
                    Value::Array(items) => plugin_defaults.extend(items),
                    _ => self.problem(
                        &path,
                        node.pos,
                        format!("expected a list, found {}", node.kind()),
                    ),
                }
            }
        }
        let _tenant = self.opt_string(&mut f, "tenantId");
        for (key, what) in [
            ("listeners", "`listeners`"),
            ("afterExecution", "`afterExecution`"),
            ("sla", "`sla`"),
        ] {
            if let Some((node, path)) = f.take(key) {
                self.problem(&path, node.pos, format!("{what} is not supported yet"));
            }
        }
        self.finish(f, "a flow");

        Some(Flow {
            id: id?,
            namespace: namespace?,
            revision,
            description,
            labels,
            inputs,
            variables,
            tasks,
            errors,
            finally,
            outputs,
            triggers,
            disabled,
            retry,
            concurrency,
            plugin_defaults,
            source: source.to_owned(),
            warnings: Vec::new(),
            containers: Vec::new(),
        })
    }

    /// `pluginDefaults` and `taskDefaults` entries, checked.
    fn plugin_defaults(&mut self, root: &Node) -> Vec<PluginDefault> {
        let NodeValue::Map(entries) = &root.value else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in entries {
            let Some(name) = key.scalar_text() else {
                continue;
            };
            if name != "pluginDefaults" && name != "taskDefaults" {
                continue;
            }
            let NodeValue::Seq(items) = &value.value else {
                if !matches!(value.value, NodeValue::Null) {
                    self.problem(
                        &name,
                        value.pos,
                        format!("expected a list, found {}", value.kind()),
                    );
                }
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                let path = index(&name, i);
                let Some(mut f) = self.fields(item, &path) else {
                    continue;
                };
                let type_name = self.req_string(&mut f, "type");
                let values = match f.take("values") {
                    Some((n, _)) if matches!(n.value, NodeValue::Map(_)) => Some(n.clone()),
                    Some((n, vp)) => {
                        self.problem(&vp, n.pos, format!("expected a map, found {}", n.kind()));
                        None
                    }
                    None => {
                        self.missing(&f, "values");
                        None
                    }
                };
                let forced = self.opt_bool(&mut f, "forced", false);
                self.finish(f, "a plugin default");
                if let (Some(type_name), Some(values)) = (type_name, values) {
                    out.push(PluginDefault {
                        type_name,
                        values,
                        forced,
                    });
                }
            }
        }
        out
    }

    /// A map, or a list of `{key, value}`. Values are coerced to strings.
    /// A list of execution state names (`stopAfter`).
    fn states(&mut self, node: &Node, path: &str) -> Vec<crate::execution::State> {
        let names = self.string_list(node, path);
        let mut out = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            match crate::execution::State::parse(name) {
                Some(state) => out.push(state),
                None => self.problem(
                    &index(path, i),
                    node.pos,
                    format!("`{name}` is not a state"),
                ),
            }
        }
        out
    }

    fn labels(&mut self, node: &Node, path: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match &node.value {
            NodeValue::Map(entries) => {
                for (k, v) in entries {
                    let key = k.scalar_text().unwrap_or_default();
                    let p = child(path, &key);
                    if let Some(value) = self.string(v, &p) {
                        out.push((key, value, k.pos, p));
                    }
                }
            }
            NodeValue::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = index(path, i);
                    let Some(mut f) = self.fields(item, &p) else {
                        continue;
                    };
                    let key = self.req_string(&mut f, "key");
                    let value = self.req_string(&mut f, "value");
                    let pos = f.pos;
                    self.finish(f, "a label");
                    if let (Some(k), Some(v)) = (key, value) {
                        out.push((k, v, pos, p));
                    }
                }
            }
            _ => self.problem(
                path,
                node.pos,
                format!(
                    "expected a map or a list of {{key, value}}, found {}",
                    node.kind()
                ),
            ),
        }
        let mut labels = Vec::with_capacity(out.len());
        for (key, value, pos, p) in out {
            // Kestra reserves `system.` labels, except `system.readOnly`.
            if key.starts_with("system.") && key != "system.readOnly" {
                self.problem(
                    &p,
                    pos,
                    format!("system labels can only be set by the engine: `{key}`"),
                );
            }
            labels.push((key, value));
        }
        labels
    }

    // ---- tasks ----

    fn opt_task_list(&mut self, f: &mut Fields<'_>, key: &str) -> Vec<Task> {
        match f.take(key) {
            Some((node, path)) => self.task_list(node, &path, false),
            None => Vec::new(),
        }
    }

    fn req_task_list(&mut self, f: &mut Fields<'_>, key: &str) -> Vec<Task> {
        match f.take(key) {
            Some((node, path)) => self.task_list(node, &path, true),
            None => {
                self.missing(f, key);
                Vec::new()
            }
        }
    }

    fn task_list(&mut self, node: &Node, path: &str, non_empty: bool) -> Vec<Task> {
        let NodeValue::Seq(items) = &node.value else {
            self.problem(
                path,
                node.pos,
                format!("expected a list of tasks, found {}", node.kind()),
            );
            return Vec::new();
        };
        if non_empty && items.is_empty() {
            self.problem(path, node.pos, "must contain at least one task");
        }
        items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.task(n, &index(path, i)))
            .collect()
    }

    fn task(&mut self, node: &Node, path: &str) -> Option<Task> {
        self.task_expression_errors.push(None);
        let task = self.task_fields(node, path);
        let expression_error = self.task_expression_errors.pop().flatten();
        task.map(|t| Task {
            expression_error,
            ..t
        })
    }

    fn task_fields(&mut self, node: &Node, path: &str) -> Option<Task> {
        let mut f = self.fields(node, path)?;
        let id = self.req_string(&mut f, "id");
        if let Some(id) = &id {
            let id_pos = f.take("id").map_or(f.pos, |(n, _)| n.pos);
            if !id_matches(id, b"_-", false) {
                self.problem(
                    &f.path("id"),
                    id_pos,
                    format!("invalid task id `{id}`: must match ^[a-zA-Z0-9][a-zA-Z0-9_-]*$"),
                );
            }
            self.task_ids.push((id.clone(), path.to_owned(), id_pos));
        }
        let type_name = self.req_string(&mut f, "type")?;
        let resolved = match types::task_type(&type_name) {
            Ok((_, Some(task_type))) => Ok(task_type),
            Ok((canonical, None)) => Err(format!("task type `{canonical}` is not supported yet")),
            Err(Unresolved::Unknown) => Err(format!("unknown task type `{type_name}`")),
            Err(Unresolved::Ambiguous(c)) => Err(format!(
                "ambiguous task type `{type_name}`: one of {}",
                c.join(", ")
            )),
        };
        let task_type = match resolved {
            Ok(task_type) => task_type,
            Err(message) => {
                let pos = f.take("type").map_or(f.pos, |(n, _)| n.pos);
                self.problem(&f.path("type"), pos, message);
                // Still look inside, so that problems in children show up too.
                for key in ["tasks", "errors", "finally", "then", "else", "defaults"] {
                    if let Some((n, p)) = f.take(key) {
                        self.task_list(n, &p, false);
                    }
                }
                return None;
            }
        };

        let description = self.opt_string(&mut f, "description");
        let run_if = self.opt_string_property(&mut f, "runIf");
        let disabled = self.opt_bool(&mut f, "disabled", false);
        let allow_failure = self.opt_bool(&mut f, "allowFailure", false);
        let allow_warning = self.opt_bool(&mut f, "allowWarning", false);
        let log_to_file = self.opt_bool(&mut f, "logToFile", false);
        // A flowable task runs no attempt of its own to stop (its `retry`
        // is its runnable descendants' default, as in Kestra).
        if task_type.flowable
            && !task_type.own_timeout
            && let Some((node, path)) = f.take("timeout")
        {
            self.problem(
                &path,
                node.pos,
                "`timeout` on a flowable task is not supported yet",
            );
        }
        let timeout = if task_type.own_timeout {
            None
        } else {
            self.opt_duration(&mut f, "timeout")
        };
        let retry = match f.take("retry") {
            Some((n, p)) => self.retry(n, &p),
            None => None,
        };
        let log_level = match f.take("logLevel") {
            Some((n, p)) => self.level(n, &p),
            None => None,
        };
        // Recorded by Kestra for its worker groups (EE); no meaning here.
        let _ = f.take("workerGroup");

        let kind = (task_type.parse)(&mut Props {
            parser: self,
            fields: &mut f,
            task_id: id.as_deref(),
        });
        let (errors, finally) = if task_type.flowable {
            (
                self.opt_task_list(&mut f, "errors"),
                self.opt_task_list(&mut f, "finally"),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        self.finish(f, task_type.name);
        Some(Task {
            id: id?,
            type_name: task_type.name.to_owned(),
            task_type,
            kind: kind?,
            description,
            run_if,
            disabled,
            allow_failure,
            allow_warning,
            timeout,
            retry,
            log_level,
            log_to_file,
            errors,
            finally,
            expression_error: None,
        })
    }

    /// A `{task, dependsOn}` list of a Dag.
    fn dag_tasks(&mut self, node: &Node, path: &str) -> (Vec<DagEntry>, bool) {
        let NodeValue::Seq(items) = &node.value else {
            self.problem(
                path,
                node.pos,
                format!(
                    "expected a list of {{task, dependsOn}}, found {}",
                    node.kind()
                ),
            );
            return (Vec::new(), false);
        };
        if items.is_empty() {
            self.problem(path, node.pos, "must contain at least one task");
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = index(path, i);
            let Some(mut f) = self.fields(item, &p) else {
                continue;
            };
            let task = match f.take("task") {
                Some((n, tp)) => self.task(n, &tp),
                None => {
                    self.missing(&f, "task");
                    None
                }
            };
            let (depends_on, pos) = match f.take("dependsOn") {
                Some((n, dp)) => (self.string_list(n, &dp), n.pos),
                None => (Vec::new(), f.pos),
            };
            let depends_at = At {
                path: f.path("dependsOn"),
                pos,
            };
            self.finish(f, "a Dag task");
            if let Some(task) = task {
                out.push(DagEntry {
                    task,
                    depends_on,
                    depends_at,
                });
            }
        }
        let complete = out.len() == items.len();
        (out, complete)
    }

    /// Kestra's `FlowValidator`: a Subflow naming its own flow is refused.
    fn check_recursion(&mut self, namespace: &str, id: &str) {
        for (ns, flow_id, path, pos) in std::mem::take(&mut self.calls) {
            if ns == namespace && flow_id == id {
                let message = format!("Recursive call to flow [{namespace}.{id}]");
                self.problem(&path, pos, message);
            }
        }
    }

    fn check_duplicate_ids(&mut self) {
        let mut first: HashMap<String, (String, Pos)> = HashMap::new();
        let ids = std::mem::take(&mut self.task_ids);
        for (id, path, pos) in ids {
            match first.get(&id) {
                Some((first_path, first_pos)) => {
                    let message = format!(
                        "duplicate task id `{id}`: already used by {first_path} at {}:{}",
                        first_pos.line, first_pos.column
                    );
                    self.problem(&child(&path, "id"), pos, message);
                }
                None => {
                    first.insert(id, (path, pos));
                }
            }
        }
    }

    // ---- retry ----

    /// `concurrency: {limit, behavior}`: `limit` ≥ 1 is required,
    /// `behavior` is QUEUE (the default), CANCEL or FAIL.
    fn concurrency(&mut self, node: &Node, path: &str) -> Option<Concurrency> {
        let mut f = self.fields(node, path)?;
        let limit = match f.take("limit") {
            Some((n, p)) => self.unsigned(n, &p, 1),
            None => {
                self.missing(&f, "limit");
                None
            }
        };
        let behavior = match self.opt_string(&mut f, "behavior").as_deref() {
            None | Some("QUEUE") => Some(ConcurrencyBehavior::Queue),
            Some("CANCEL") => Some(ConcurrencyBehavior::Cancel),
            Some("FAIL") => Some(ConcurrencyBehavior::Fail),
            Some(other) => {
                let at = f.path("behavior");
                self.problem(
                    &at,
                    f.pos,
                    format!("`{other}` is not a concurrency behavior: QUEUE, CANCEL or FAIL"),
                );
                None
            }
        };
        self.finish(f, "`concurrency`");
        Some(Concurrency {
            limit: limit?,
            behavior: behavior?,
        })
    }

    fn retry(&mut self, node: &Node, path: &str) -> Option<Retry> {
        let mut f = self.fields(node, path)?;
        let kind = self.req_string(&mut f, "type")?;
        let interval = |p: &mut Parser, f: &mut Fields<'_>, key: &str| match f.take(key) {
            Some((n, kp)) => p.duration(n, &kp),
            None => {
                p.missing(f, key);
                None
            }
        };
        let policy = match kind.as_str() {
            "constant" => interval(self, &mut f, "interval")
                .map(|interval| RetryPolicy::Constant { interval }),
            "exponential" => {
                let i = interval(self, &mut f, "interval");
                let max = interval(self, &mut f, "maxInterval");
                let delay_factor = match f.take("delayFactor") {
                    Some((n, p)) => self.number(n, &p),
                    None => None,
                };
                match (i, max) {
                    (Some(interval), Some(max_interval)) => Some(RetryPolicy::Exponential {
                        interval,
                        max_interval,
                        delay_factor,
                    }),
                    _ => None,
                }
            }
            "random" => {
                let min = interval(self, &mut f, "minInterval");
                let max = interval(self, &mut f, "maxInterval");
                match (min, max) {
                    (Some(min_interval), Some(max_interval)) => Some(RetryPolicy::Random {
                        min_interval,
                        max_interval,
                    }),
                    _ => None,
                }
            }
            other => {
                let pos = f.take("type").map_or(f.pos, |(n, _)| n.pos);
                self.problem(
                    &f.path("type"),
                    pos,
                    format!("unknown retry type `{other}` (constant, exponential or random)"),
                );
                return None;
            }
        };
        // `maxAttempts` is the spelling of newer Kestra versions.
        let max_attempt = match f.take_any(&["maxAttempt", "maxAttempts"]) {
            Some((n, p)) => self.unsigned(n, &p, 1),
            None => None,
        };
        let max_duration = self.opt_duration(&mut f, "maxDuration");
        let warning_on_retry = self.opt_bool(&mut f, "warningOnRetry", false);
        // The failed task runs again, or a new execution runs the flow.
        let mut new_execution = false;
        if let Some((n, p)) = f.take("behavior") {
            match self.string(n, &p).as_deref() {
                Some("RETRY_FAILED_TASK") | None => {}
                Some("CREATE_NEW_EXECUTION") => new_execution = true,
                Some(other) => self.problem(
                    &p,
                    n.pos,
                    format!(
                        "unknown retry behavior `{other}` (RETRY_FAILED_TASK or CREATE_NEW_EXECUTION)"
                    ),
                ),
            }
        }
        self.finish(f, &format!("a {kind} retry"));
        Some(Retry {
            policy: policy?,
            max_attempt,
            max_duration,
            warning_on_retry,
            new_execution,
        })
    }

    // ---- inputs and outputs ----

    fn inputs(&mut self, node: &Node, path: &str) -> Vec<InputDef> {
        self.list_with_ids(node, path, "input", Self::input, |i| &i.id)
    }

    /// A list of items with ids (inputs, triggers): each parsed, and a
    /// repeated id reported where it repeats.
    fn list_with_ids<T>(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        parse: fn(&mut Self, &Node, &str) -> Option<T>,
        id_of: fn(&T) -> &String,
    ) -> Vec<T> {
        let NodeValue::Seq(items) = &node.value else {
            self.problem(
                path,
                node.pos,
                format!("expected a list of {what}s, found {}", node.kind()),
            );
            return Vec::new();
        };
        let mut out: Vec<T> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = index(path, i);
            if let Some(parsed) = parse(self, item, &p) {
                let id = id_of(&parsed);
                if out.iter().any(|o| id_of(o) == id) {
                    self.problem(
                        &child(&p, "id"),
                        item.pos,
                        format!("duplicate {what} id `{id}`"),
                    );
                }
                out.push(parsed);
            }
        }
        out
    }

    fn input(&mut self, node: &Node, path: &str) -> Option<InputDef> {
        let mut f = self.fields(node, path)?;
        // `name` is the pre-0.15 spelling of `id`.
        let id = match f.take_any(&["id", "name"]) {
            Some((n, p)) => {
                let id = self.string(n, &p)?;
                if !id_matches(&id, b"._-", false) {
                    self.problem(
                        &p,
                        n.pos,
                        format!("invalid input id `{id}`: must match ^[a-zA-Z0-9][.a-zA-Z0-9_-]*$"),
                    );
                }
                Some(id)
            }
            None => {
                self.missing(&f, "id");
                None
            }
        };
        let type_ = self.value_type(&mut f, "input");
        let description = self.opt_string(&mut f, "description");
        let display_name = self.opt_string(&mut f, "displayName");
        let required = self.opt_bool(&mut f, "required", true);
        // Accepted and not used yet: inputs are not rendered from one another.
        let _ = f.take("dependsOn");
        let defaults = match (f.take("defaults"), &type_) {
            (Some((n, p)), Some(t)) => {
                let raw = n.to_json();
                match coerce(t, &raw) {
                    Ok(v) => Some(v),
                    Err(message) => {
                        self.problem(
                            &p,
                            n.pos,
                            format!("default does not fit {}: {message}", t.name()),
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        self.finish(f, "an input");
        Some(InputDef {
            id: id?,
            type_: type_?,
            description,
            display_name,
            required,
            defaults,
        })
    }

    /// The `type` of an input or output, with its type-specific keys.
    fn value_type(&mut self, f: &mut Fields<'_>, what: &str) -> Option<InputType> {
        let Some((node, path)) = f.take("type") else {
            self.missing(f, "type");
            return None;
        };
        let name = self.string(node, &path)?;
        self.type_named(&name, node.pos, &path, f, what, true)
    }

    fn type_named(
        &mut self,
        name: &str,
        pos: Pos,
        path: &str,
        f: &mut Fields<'_>,
        what: &str,
        with_constraints: bool,
    ) -> Option<InputType> {
        let values = |p: &mut Parser, f: &mut Fields<'_>, keys: &[&str]| -> Vec<String> {
            match f.take_any(keys) {
                Some((n, vp)) => p.string_list(n, &vp),
                None => Vec::new(),
            }
        };
        Some(match name {
            "STRING" => InputType::String {
                validator: if with_constraints {
                    self.opt_string(f, "validator")
                } else {
                    None
                },
            },
            "INT" => {
                let (min, max) = if with_constraints {
                    let mut bound = |p: &mut Parser, key: &str| {
                        let (n, kp) = f.take(key)?;
                        match n.value {
                            NodeValue::Int(i) => Some(i),
                            _ => {
                                p.problem(
                                    &kp,
                                    n.pos,
                                    format!("expected an integer, found {}", n.kind()),
                                );
                                None
                            }
                        }
                    };
                    (bound(self, "min"), bound(self, "max"))
                } else {
                    (None, None)
                };
                InputType::Int { min, max }
            }
            "FLOAT" => {
                let (min, max) = if with_constraints {
                    let min = f.take("min").and_then(|(n, p)| self.number(n, &p));
                    let max = f.take("max").and_then(|(n, p)| self.number(n, &p));
                    (min, max)
                } else {
                    (None, None)
                };
                InputType::Float { min, max }
            }
            "BOOLEAN" | "BOOL" => InputType::Boolean,
            "JSON" => InputType::Json,
            "YAML" => InputType::Yaml,
            "DURATION" => InputType::Duration,
            "DATETIME" => InputType::DateTime,
            "DATE" => InputType::Date,
            "TIME" => InputType::Time,
            "URI" => InputType::Uri,
            "EMAIL" => InputType::Email,
            "SECRET" => InputType::Secret,
            "FILE" => InputType::File,
            "SELECT" if with_constraints => {
                let list = values(self, f, &["values"]);
                let allow_custom_value = self.opt_bool(f, "allowCustomValue", false);
                let _ = self.opt_bool(f, "isRadio", false);
                if list.is_empty() {
                    if let Some((n, p)) = f.take("expression") {
                        self.problem(
                            &p,
                            n.pos,
                            "SELECT `expression` is not supported yet: list the `values`",
                        );
                    } else {
                        self.missing(f, "values");
                    }
                }
                InputType::Select {
                    values: list,
                    allow_custom_value,
                }
            }
            "ENUM" if with_constraints => {
                let list = values(self, f, &["values"]);
                if list.is_empty() {
                    self.missing(f, "values");
                }
                InputType::Enum { values: list }
            }
            "MULTISELECT" if with_constraints => {
                let list = values(self, f, &["values", "options"]);
                let allow_custom_value = self.opt_bool(f, "allowCustomValue", false);
                if list.is_empty() {
                    self.missing(f, "values");
                }
                InputType::MultiSelect {
                    values: list,
                    allow_custom_value,
                }
            }
            "ARRAY" if with_constraints => {
                let item = match f.take("itemType") {
                    Some((n, p)) => {
                        let item_name = self.string(n, &p)?;
                        if matches!(
                            item_name.as_str(),
                            "ARRAY" | "SELECT" | "ENUM" | "MULTISELECT" | "FILE"
                        ) {
                            self.problem(
                                &p,
                                n.pos,
                                format!("`{item_name}` cannot be an ARRAY item type"),
                            );
                            return None;
                        }
                        self.type_named(&item_name, n.pos, &p, f, what, false)?
                    }
                    None => {
                        self.missing(f, "itemType");
                        return None;
                    }
                };
                InputType::Array {
                    item_type: Box::new(item),
                }
            }
            // Flow outputs: collection types without their constraints.
            "SELECT" | "ENUM" | "MULTISELECT" | "ARRAY" => match name {
                "ARRAY" => InputType::Array {
                    item_type: Box::new(InputType::Json),
                },
                "MULTISELECT" => InputType::MultiSelect {
                    values: Vec::new(),
                    allow_custom_value: true,
                },
                _ => InputType::Select {
                    values: Vec::new(),
                    allow_custom_value: true,
                },
            },
            other => {
                self.problem(
                    path,
                    pos,
                    format!("unknown {what} type `{other}` (STRING, INT, FLOAT, BOOLEAN, BOOL, JSON, YAML, DURATION, DATETIME, DATE, TIME, SELECT, ENUM, MULTISELECT, ARRAY, URI, EMAIL, SECRET, FILE)"),
                );
                return None;
            }
        })
    }

    fn outputs(&mut self, node: &Node, path: &str) -> Vec<FlowOutput> {
        let NodeValue::Seq(items) = &node.value else {
            self.problem(
                path,
                node.pos,
                format!("expected a list of outputs, found {}", node.kind()),
            );
            return Vec::new();
        };
        let mut out: Vec<FlowOutput> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = index(path, i);
            let Some(mut f) = self.fields(item, &p) else {
                continue;
            };
            let id = self.req_string(&mut f, "id");
            if let Some(id) = &id {
                if !id_matches(id, b"._-", false) {
                    self.problem(
                        &f.path("id"),
                        f.pos,
                        format!(
                            "invalid output id `{id}`: must match ^[a-zA-Z0-9][.a-zA-Z0-9_-]*$"
                        ),
                    );
                }
                if out.iter().any(|o| &o.id == id) {
                    self.problem(&f.path("id"), f.pos, format!("duplicate output id `{id}`"));
                }
            }
            let description = self.opt_string(&mut f, "description");
            let _ = self.opt_string(&mut f, "displayName");
            let type_ = match f.take("type") {
                Some((n, tp)) => {
                    let name = self.string(n, &tp);
                    name.and_then(|name| {
                        self.type_named(&name, n.pos, &tp, &mut f, "output", false)
                    })
                }
                None => {
                    self.missing(&f, "type");
                    None
                }
            };
            let value = match f.take("value") {
                Some((n, vp)) => self.property(n, &vp),
                None => {
                    self.missing(&f, "value");
                    None
                }
            };
            self.finish(f, "an output");
            if let (Some(id), Some(type_), Some(value)) = (id, type_, value) {
                out.push(FlowOutput {
                    id,
                    description,
                    type_,
                    value,
                });
            }
        }
        out
    }

    // ---- triggers ----

    fn triggers(&mut self, node: &Node, path: &str) -> Vec<Trigger> {
        self.list_with_ids(node, path, "trigger", Self::trigger, |t| &t.id)
    }

    fn trigger(&mut self, node: &Node, path: &str) -> Option<Trigger> {
        let mut f = self.fields(node, path)?;
        let id = self.req_string(&mut f, "id");
        if let Some(id) = &id
            && !id_matches(id, b"_-", false)
        {
            self.problem(
                &f.path("id"),
                f.pos,
                format!("invalid trigger id `{id}`: must match ^[a-zA-Z0-9][a-zA-Z0-9_-]*$"),
            );
        }
        let type_name = self.req_string(&mut f, "type")?;
        let (canonical, trigger_type) = match types::trigger_type(&type_name) {
            Ok(t) => t,
            Err(_) => {
                let pos = f.take("type").map_or(f.pos, |(n, _)| n.pos);
                self.problem(
                    &f.path("type"),
                    pos,
                    format!("unknown trigger type `{type_name}`"),
                );
                return None;
            }
        };
        let description = self.opt_string(&mut f, "description");
        let disabled = self.opt_bool(&mut f, "disabled", false);
        // Labels of the executions it starts: a Schedule's and a Flow
        // trigger's.
        let labelled = matches!(trigger_type, TriggerType::Schedule | TriggerType::Flow);
        let labels = match f.take("labels") {
            Some((node, path)) if labelled => self.labels(node, &path),
            _ => Vec::new(),
        };
        for (key, what) in [
            ("conditions", "trigger `conditions` on a Kafka trigger"),
            (
                "labels",
                "trigger `labels` (but on a Schedule or a Flow trigger)",
            ),
            ("stopAfter", "`stopAfter` (but on a Schedule)"),
        ] {
            let read = match key {
                "labels" => labelled,
                "conditions" => matches!(
                    trigger_type,
                    TriggerType::Flow | TriggerType::Schedule | TriggerType::Webhook
                ),
                "stopAfter" => trigger_type == TriggerType::Schedule,
                _ => false,
            };
            if read {
                continue;
            }
            if let Some((node, path)) = f.take(key) {
                self.problem(&path, node.pos, format!("{what} is not supported yet"));
            }
        }
        // Where a trigger's own log lines go: it writes none.
        for key in ["workerGroup", "logLevel", "minLogLevel", "logToFile"] {
            let _ = f.take(key);
        }
        let inputs = |p: &mut Parser, f: &mut Fields<'_>| match f.take("inputs") {
            Some((n, ip)) => p.json_map(n, &ip),
            None => Map::new(),
        };
        let kind = match trigger_type {
            TriggerType::Schedule => {
                let cron = self.req_string(&mut f, "cron");
                let with_seconds = self.opt_bool(&mut f, "withSeconds", false);
                let timezone = self.opt_string(&mut f, "timezone");
                let dates = cron.as_deref().and_then(|text| {
                    match CronSchedule::parse(text, with_seconds, timezone.as_deref()) {
                        Ok(dates) => Some(dates),
                        Err(why) => {
                            let (key, message) = if why.contains("IANA") {
                                ("timezone", why)
                            } else {
                                ("cron", format!("invalid cron `{text}`: {why}"))
                            };
                            let pos = f.take(key).map_or(f.pos, |(n, _)| n.pos);
                            self.problem(&f.path(key), pos, message);
                            None
                        }
                    }
                });
                let inputs = inputs(self, &mut f);
                let recover = f.take("recoverMissedSchedules").and_then(|(node, path)| {
                    let name = self.string(node, &path)?;
                    let found = RecoverMissed::parse(&name);
                    if found.is_none() {
                        self.problem(
                            &path,
                            node.pos,
                            format!("`{name}`: expected one of ALL, LAST, NONE"),
                        );
                    }
                    found
                });
                let late_maximum_delay = self.opt_duration(&mut f, "lateMaximumDelay");
                // Kestra's `@Null`: a Schedule has no interval.
                if let Some((node, path)) = f.take("interval") {
                    self.problem(&path, node.pos, "a Schedule has no `interval` (use `cron`)");
                }
                let mut conditions = Vec::new();
                for key in ["conditions", "scheduleConditions"] {
                    if let Some((node, path)) = f.take(key) {
                        let mut problems = Vec::new();
                        conditions.extend(date_condition::read(
                            &node.to_json(),
                            &path,
                            &mut problems,
                        ));
                        for (path, message) in problems {
                            self.problem(&path, node.pos, message);
                        }
                    }
                }
                // Deprecated, and read by nothing in Kestra either (a
                // backfill is asked for through the API): an empty one is
                // harmless, one that asks for dates is refused.
                if let Some((node, path)) = f.take("backfill")
                    && !node.to_json().as_object().is_some_and(Map::is_empty)
                    && !node.to_json().is_null()
                {
                    self.problem(
                        &path,
                        node.pos,
                        "a Schedule's `backfill` property does nothing (in Kestra either): \
                         backfill through `PUT /api/v1/main/triggers` with `backfill: {start, end}`",
                    );
                }
                let stop_after = match f.take("stopAfter") {
                    Some((node, path)) => self.states(node, &path),
                    None => Vec::new(),
                };
                TriggerKind::Schedule {
                    cron: cron?,
                    with_seconds,
                    timezone,
                    dates: Box::new(dates?),
                    inputs,
                    labels,
                    recover,
                    late_maximum_delay,
                    stop_after,
                    conditions,
                }
            }
            TriggerType::Webhook => {
                // Only `Expression` conditions mean something before an
                // execution exists (over `trigger.body`, `headers`...).
                let mut conditions = Vec::new();
                if let Some((node, path)) = f.take("conditions") {
                    let mut reader = condition::Reader::new();
                    for c in reader.conditions(&node.to_json(), &path) {
                        match c {
                            Condition::Expression(p) => conditions.push(p),
                            _ => self.problem(
                                &path,
                                node.pos,
                                "a webhook's conditions are `Expression`s (the others read an \
                                 execution, which a call has not started yet)",
                            ),
                        }
                    }
                    for (path, message) in reader.problems {
                        self.problem(&path, node.pos, message);
                    }
                }
                let key = self.req_string(&mut f, "key")?;
                let template = if key.contains("{{") || key.contains("{%") {
                    let pos = f.take("key").map_or(f.pos, |(n, _)| n.pos);
                    Some(self.compile(&Value::String(key.clone()), pos, &f.path("key"))?)
                } else {
                    None
                };
                let wait = self.opt_bool(&mut f, "wait", false);
                let return_outputs = self.opt_bool(&mut f, "returnOutputs", false);
                let response_content_type = self.opt_string(&mut f, "responseContentType");
                let response_code = self.opt_u32(&mut f, "responseCode", 0, 0);
                // Kestra's `WebhookValidation`.
                let mut check = |this: &mut Self, key: &str, ok: bool, why: &str| {
                    if !ok {
                        let pos = f.take(key).map_or(f.pos, |(n, _)| n.pos);
                        this.problem(&f.path(key), pos, why);
                    }
                };
                check(
                    self,
                    "returnOutputs",
                    wait || !return_outputs,
                    "`returnOutputs` needs `wait: true`",
                );
                check(
                    self,
                    "responseContentType",
                    response_content_type.is_none() || return_outputs,
                    "`responseContentType` needs `returnOutputs: true`",
                );
                check(
                    self,
                    "responseContentType",
                    response_content_type
                        .as_deref()
                        .is_none_or(|t| t == "application/json" || t == "text/plain"),
                    "`responseContentType` is `application/json` or `text/plain`",
                );
                check(
                    self,
                    "responseCode",
                    response_code == 0 || (100..=599).contains(&response_code),
                    "`responseCode` is an HTTP status, 100 to 599",
                );
                TriggerKind::Webhook {
                    key,
                    template,
                    conditions,
                    wait,
                    return_outputs,
                    response_content_type,
                    response_code: u16::try_from(response_code).ok().filter(|c| *c != 0),
                }
            }
            TriggerType::Flow => {
                let inputs = inputs(self, &mut f);
                let mut reader = condition::Reader::new();
                let mut conditions = Vec::new();
                let at = |f: &mut Fields<'_>, key: &str| {
                    f.take(key).map(|(n, path)| (n.to_json(), path, n.pos))
                };
                let read_conditions = at(&mut f, "conditions");
                let read_preconditions = at(&mut f, "preconditions");
                let read_states = at(&mut f, "states");
                let mut positions = Vec::new();
                if let Some((value, path, pos)) = &read_conditions {
                    conditions.extend(reader.conditions(value, path));
                    positions.push((path.clone(), *pos));
                }
                if let Some((value, path, pos)) = &read_preconditions {
                    conditions.extend(reader.preconditions(value, path));
                    positions.push((path.clone(), *pos));
                }
                let states_path = read_states
                    .as_ref()
                    .map_or_else(|| f.path("states"), |(_, path, _)| path.clone());
                if let Some((_, path, pos)) = &read_states {
                    positions.push((path.clone(), *pos));
                }
                let states =
                    reader.trigger_states(read_states.as_ref().map(|(v, _, _)| v), &states_path);
                for (path, message) in reader.problems {
                    // At the position of the property it is under.
                    let pos = positions
                        .iter()
                        .find(|(p, _)| path.starts_with(p.as_str()))
                        .map_or(f.pos, |(_, pos)| *pos);
                    self.problem(&path, pos, message);
                }
                TriggerKind::Flow {
                    inputs,
                    states,
                    conditions,
                    labels,
                }
            }
            TriggerType::KafkaRealtime => {
                let topic = match f.take("topic") {
                    Some((n, tp)) => self.string_list(n, &tp),
                    None => Vec::new(),
                };
                let topic_pattern = self.opt_string(&mut f, "topicPattern");
                if topic.is_empty() && topic_pattern.is_none() {
                    self.missing(&f, "topic");
                }
                let properties = match f.take("properties") {
                    Some((n, pp)) => {
                        let map = self.json_map(n, &pp);
                        if !map.contains_key("bootstrap.servers") {
                            self.problem(
                                &pp,
                                n.pos,
                                "missing required property `bootstrap.servers`",
                            );
                        }
                        map
                    }
                    None => {
                        self.missing(&f, "properties");
                        Map::new()
                    }
                };
                let group_id = self.req_string(&mut f, "groupId").unwrap_or_default();
                let deserializer = |p: &mut Self, f: &mut Fields<'_>, key: &str| {
                    let (node, path) = f.take(key)?;
                    let name = p.string(node, &path)?;
                    let found = Deserializer::parse(&name);
                    if found.is_none() {
                        let why = if name == "AVRO" {
                            "AVRO needs a schema registry, which Peregrine does not speak"
                        } else {
                            "expected one of STRING, JSON, SHORT, INTEGER, LONG, FLOAT, \
                             DOUBLE, UUID, BYTE_ARRAY, BYTE_BUFFER, BYTES, VOID"
                        };
                        p.problem(&path, node.pos, format!("`{name}`: {why}"));
                    }
                    found
                };
                let key_deserializer =
                    deserializer(self, &mut f, "keyDeserializer").unwrap_or_default();
                let value_deserializer =
                    deserializer(self, &mut f, "valueDeserializer").unwrap_or_default();
                // The plugin has more knobs (partitions, since,
                // serdeProperties...): kept raw, and the consumer says which
                // it ignores.
                let mut extra = Map::new();
                for e in f.entries.iter_mut().filter(|e| !e.used) {
                    e.used = true;
                    extra.insert(e.key.clone(), e.value.to_json());
                }
                TriggerKind::KafkaRealtime {
                    topic,
                    topic_pattern,
                    properties,
                    group_id,
                    key_deserializer,
                    value_deserializer,
                    extra,
                }
            }
        };
        self.finish(f, canonical);
        Some(Trigger {
            id: id?,
            type_name: canonical.to_owned(),
            description,
            disabled,
            kind,
        })
    }
}

/// Where a value sits in the flow's YAML: the path and position a problem
/// about it names.
#[derive(Debug, Clone)]
pub(crate) struct At {
    path: String,
    pos: Pos,
}

impl At {
    /// `key` inside this value, at this value's position.
    pub(crate) fn child(&self, key: &str) -> At {
        At {
            path: child(&self.path, key),
            pos: self.pos,
        }
    }

    /// Item `i` of this list, at this value's position.
    pub(crate) fn item(&self, i: usize) -> At {
        At {
            path: index(&self.path, i),
            pos: self.pos,
        }
    }
}

/// One `{task, dependsOn}` entry of a Dag.
#[derive(Debug)]
pub(crate) struct DagEntry {
    pub task: Task,
    /// Ids of sibling tasks, unchecked.
    pub depends_on: Vec<String>,
    /// `dependsOn` (or the entry, when absent): where a bad dependency points.
    pub depends_at: At,
}

/// The properties of one task, as its type reads them (see
/// [`crate::tasks::TaskType::parse`]). The common ones (id, type, runIf,
/// retry, errors, finally...) are already taken; whatever the type does not
/// take is reported as unknown. Every problem names its path and position.
pub(crate) struct Props<'p, 'a> {
    parser: &'p mut Parser,
    fields: &'p mut Fields<'a>,
    task_id: Option<&'p str>,
}

impl Props<'_, '_> {
    /// The id of the task whose properties these are (`None`: it has no
    /// valid one, which is reported).
    pub(crate) fn task_id(&self) -> Option<&str> {
        self.task_id
    }

    pub(crate) fn problem(&mut self, at: &At, message: impl Into<String>) {
        self.parser.problem(&at.path, at.pos, message);
    }

    /// The task names a container (image or Docker runner) it will not
    /// get: a warning, and one of the flow's `containers`.
    pub(crate) fn container(&mut self, at: &At, message: impl Into<String>) {
        let problem = Problem {
            path: at.path.clone(),
            line: at.pos.line,
            column: at.pos.column,
            message: message.into(),
        };
        self.parser.containers.push(problem.clone());
        self.parser.warnings.push(problem);
    }

    /// `key` of this task, at the task's own position: where a problem about
    /// the task as a whole, or about a property it lacks, points.
    pub(crate) fn here(&self, key: &str) -> At {
        At {
            path: self.fields.path(key),
            pos: self.fields.pos,
        }
    }

    fn missing(&mut self, key: &str) {
        self.parser.missing(self.fields, key);
    }

    /// A compiled constant, for a property's default.
    fn constant(&mut self, key: &str, value: Value) -> Option<Property> {
        let at = self.here(key);
        self.parser.compile(&value, at.pos, &at.path)
    }

    /// An optional string property (scalars are coerced to text).
    pub(crate) fn string_property(&mut self, key: &str) -> Option<Property> {
        self.parser.opt_string_property(self.fields, key)
    }

    pub(crate) fn req_string_property(&mut self, key: &str) -> Option<Property> {
        self.parser.req_string_property(self.fields, key)
    }

    /// A string property, `default` when absent.
    pub(crate) fn string_property_or(&mut self, key: &str, default: &str) -> Option<Property> {
        match self.fields.take(key) {
            Some((node, path)) => self.parser.string_property(node, &path),
            None => self.constant(key, Value::from(default)),
        }
    }

    /// Input definitions (a Pause's `onResume`), read as a flow's inputs.
    pub(crate) fn inputs(&mut self, key: &str) -> Vec<InputDef> {
        match self.fields.take(key) {
            Some((node, path)) => self.parser.inputs(node, &path),
            None => Vec::new(),
        }
    }

    /// A required property of any shape; strings in it are templates.
    pub(crate) fn req_property(&mut self, key: &str) -> Option<Property> {
        let Some((node, path)) = self.fields.take(key) else {
            self.missing(key);
            return None;
        };
        self.parser.property(node, &path)
    }

    /// An optional property of any shape; strings in it are templates.
    pub(crate) fn property(&mut self, key: &str) -> Option<Property> {
        let (node, path) = self.fields.take(key)?;
        self.parser.property(node, &path)
    }

    /// A map property; absent, an empty map.
    pub(crate) fn map_property_or_empty(&mut self, key: &str) -> Option<Property> {
        match self.fields.take(key) {
            Some((node, path)) if matches!(node.value, NodeValue::Map(_)) => {
                self.parser.property(node, &path)
            }
            Some((node, path)) => {
                self.parser.problem(
                    &path,
                    node.pos,
                    format!("expected a map, found {}", node.kind()),
                );
                None
            }
            None => self.constant(key, Value::Object(Map::new())),
        }
    }

    /// A required string property, or a list of strings.
    pub(crate) fn text_or_list_property(&mut self, key: &str) -> Option<Property> {
        let Some((node, path)) = self.fields.take(key) else {
            self.missing(key);
            return None;
        };
        match &node.value {
            NodeValue::Seq(_) => {
                let list = self.parser.string_list(node, &path);
                self.parser.compile(&Value::from(list), node.pos, &path)
            }
            _ => self.parser.string_property(node, &path),
        }
    }

    /// A required list of strings (one string is a list of one, as Jackson
    /// reads a `List<String>`), each item a template of its own, kept with
    /// its text as written: Kestra's `@PluginProperty(dynamic = true)
    /// List<String>`, rendered item by item.
    pub(crate) fn req_template_list(&mut self, key: &str) -> Option<Vec<(String, Property)>> {
        let Some((node, path)) = self.fields.take(key) else {
            self.missing(key);
            return None;
        };
        let items: Vec<(&Node, String)> = match &node.value {
            NodeValue::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (item, index(&path, i)))
                .collect(),
            NodeValue::Map(_) => {
                self.parser.problem(
                    &path,
                    node.pos,
                    format!("expected a list of strings, found {}", node.kind()),
                );
                return None;
            }
            _ => vec![(node, path)],
        };
        let mut templates = Vec::with_capacity(items.len());
        let mut valid = true;
        for (item, path) in items {
            let compiled = self.parser.string(item, &path).and_then(|text| {
                let property =
                    self.parser
                        .compile(&Value::String(text.clone()), item.pos, &path)?;
                Some((text, property))
            });
            match compiled {
                Some(template) => templates.push(template),
                None => valid = false,
            }
        }
        valid.then_some(templates)
    }

    /// A required list property: a list, or a string (a JSON list, checked
    /// now, or a template rendered to one).
    pub(crate) fn list_property(&mut self, key: &str) -> Option<Property> {
        let Some((node, path)) = self.fields.take(key) else {
            self.missing(key);
            return None;
        };
        match &node.value {
            NodeValue::Seq(_) => self.parser.property(node, &path),
            NodeValue::Str(s) => {
                let trimmed = s.trim_start();
                if trimmed.starts_with('[')
                    && !s.contains("{{")
                    && let Err(e) = serde_json::from_str::<Vec<Value>>(s)
                {
                    self.parser
                        .problem(&path, node.pos, format!("not a JSON list: {e}"));
                }
                self.parser.property(node, &path)
            }
            _ => {
                self.parser.problem(
                    &path,
                    node.pos,
                    format!(
                        "expected a list or a JSON string of a list, found {}",
                        node.kind()
                    ),
                );
                None
            }
        }
    }

    /// A required ISO-8601 duration property: checked now when static, when
    /// rendered otherwise.
    pub(crate) fn duration_property(&mut self, key: &str) -> Option<Property> {
        if self.fields.take(key).is_none() {
            self.missing(key);
            return None;
        }
        self.opt_duration_property(key)
    }

    /// An optional ISO-8601 duration property (or a template of one).
    pub(crate) fn opt_duration_property(&mut self, key: &str) -> Option<Property> {
        let (node, path) = self.fields.take(key)?;
        let text = self.parser.string(node, &path)?;
        if !text.contains("{{") && parse_duration(&text).is_none() {
            self.parser.problem(
                &path,
                node.pos,
                format!("`{text}` is not an ISO-8601 duration (e.g. PT30S, PT1H, P1DT2H)"),
            );
        }
        self.parser.compile(&Value::String(text), node.pos, &path)
    }

    /// Whether the task sets `key`, without taking it.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.fields.entries.iter().any(|e| e.key == key)
    }

    /// `key`'s text as written, if it is a string, without taking it.
    pub(crate) fn peek_text(&self, key: &str) -> Option<String> {
        let entry = self.fields.entries.iter().find(|e| e.key == key)?;
        match &entry.value.value {
            NodeValue::Str(text) => Some(text.clone()),
            _ => None,
        }
    }

    /// This task calls flow `namespace.flow_id` (as written): checked
    /// against the flow's own name once it is known.
    pub(crate) fn calls_flow(&mut self, namespace: String, flow_id: String) {
        let at = (self.fields.path.clone(), self.fields.pos);
        self.parser.calls.push((namespace, flow_id, at.0, at.1));
    }

    /// A boolean, `default` when absent or invalid (then reported).
    pub(crate) fn bool(&mut self, key: &str, default: bool) -> bool {
        self.parser.opt_bool(self.fields, key, default)
    }

    /// A log level, `default` when absent; `None` when it names none.
    pub(crate) fn level(&mut self, key: &str, default: Level) -> Option<Level> {
        match self.fields.take(key) {
            Some((node, path)) => self.parser.level(node, &path),
            None => Some(default),
        }
    }

    /// An integer ≥ `min`, `default` when absent or invalid (then reported).
    pub(crate) fn u32(&mut self, key: &str, default: u32, min: u32) -> u32 {
        self.parser.opt_u32(self.fields, key, default, min)
    }

    /// A required string, turned into `T` by `check`; its error is a problem
    /// at the string's path and position.
    pub(crate) fn req_string_with<T>(
        &mut self,
        key: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let Some((node, path)) = self.fields.take(key) else {
            self.missing(key);
            return None;
        };
        let text = self.parser.string(node, &path)?;
        match check(&text) {
            Ok(t) => Some(t),
            Err(message) => {
                self.parser.problem(&path, node.pos, message);
                None
            }
        }
    }

    /// An optional property as plain JSON (no templates), with where it is.
    pub(crate) fn json(&mut self, key: &str) -> Option<(Value, At)> {
        let (node, path) = self.fields.take(key)?;
        Some((
            node.to_json(),
            At {
                path,
                pos: node.pos,
            },
        ))
    }

    /// A required, non-empty task list.
    pub(crate) fn req_task_list(&mut self, key: &str) -> Vec<Task> {
        self.parser.req_task_list(self.fields, key)
    }

    /// An optional task list; absent, empty.
    pub(crate) fn opt_task_list(&mut self, key: &str) -> Vec<Task> {
        self.parser.opt_task_list(self.fields, key)
    }

    /// A map of keys to task lists (possibly empty), in source order; keys
    /// are text (`1:` is `"1"`). `what` names a key in the problem.
    pub(crate) fn keyed_task_lists(&mut self, key: &str, what: &str) -> Vec<(String, Vec<Task>)> {
        let mut out = Vec::new();
        let Some((node, path)) = self.fields.take(key) else {
            return out;
        };
        match &node.value {
            NodeValue::Map(entries) => {
                for (k, v) in entries {
                    let key = k.scalar_text().unwrap_or_default();
                    let p = child(&path, &key);
                    let tasks = self.parser.task_list(v, &p, false);
                    out.push((key, tasks));
                }
            }
            _ => self.parser.problem(
                &path,
                node.pos,
                format!("expected a map of {what} → tasks, found {}", node.kind()),
            ),
        }
        out
    }

    /// A Dag's required `{task, dependsOn}` list, and whether every entry
    /// parsed (dependencies are worth checking only then).
    pub(crate) fn dag_task_list(&mut self, key: &str) -> (Vec<DagEntry>, bool) {
        match self.fields.take(key) {
            Some((node, path)) => self.parser.dag_tasks(node, &path),
            None => {
                self.missing(key);
                (Vec::new(), false)
            }
        }
    }
}
