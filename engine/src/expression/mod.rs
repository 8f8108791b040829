//! Pebble expressions as Kestra writes them.
//!
//! Contract used by the rest of the engine:
//! - [`Template::compile`] parses once per flow revision;
//! - [`Template::render`] evaluates against a [`Context`] without cloning
//!   the outputs it reads;
//! - [`Property`] is a task property: a JSON tree whose strings are templates.
//!
//! Semantics follow Pebble 3.2 with Kestra's settings (strict variables, no
//! newline trimming, no auto-escaping) and Kestra's extensions (`??`, `???`,
//! `toJson`, `date`, `jq`, `currentEachOutput`, ...). A template that is one
//! `{{ expression }}` keeps the expression's type; anything else renders to
//! text, where maps and lists print as JSON and null prints as nothing.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

mod ast;
mod builtins;
mod date;
mod eval;
mod jq;
mod lexer;
mod library;
mod parser;

use ast::{Node, Pos};
use eval::{Fault, Renderer};

/// An expression error: the template, the position and the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at {line}:{column} in `{template}`")]
pub struct Error {
    pub template: String,
    /// 1-based line of the failing expression.
    pub line: usize,
    /// 1-based column (in characters) of the failing expression.
    pub column: usize,
    pub message: String,
}

impl Error {
    fn at(template: &str, pos: Pos, message: String) -> Self {
        let pos = pos.min(template.len());
        let before = template.get(..pos).unwrap_or(template);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self {
            template: template.to_owned(),
            line,
            column,
            message,
        }
    }

    fn from_fault(template: &str, fault: Fault) -> Self {
        match fault {
            Fault::Undefined { name, pos } => Self::at(
                template,
                pos,
                format!("Unable to find `{name}` used in the expression"),
            ),
            Fault::Failed { message, pos } => Self::at(template, pos, message),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What one evaluation may spend, so that no expression a user writes can
/// hold a shard thread or its memory for long. Step counts, not clocks: a
/// replay of the same evaluation stops at the same step, so it fails the
/// same way. Defaults that no honest flow meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Evaluation steps of one render: Pebble nodes and loop iterations,
    /// items and bytes it builds (one step each 64 bytes), jq terms. A
    /// runaway jq program used 10 million in 0.3 to 0.4 s here (release).
    /// Also the steps of one JSONata evaluation, where a step is one
    /// allocation (see [`crate::memory::watch`]); those are counted only
    /// under the [`crate::memory::Counting`] allocator.
    pub steps: u64,
    /// Size of a rendered value (as JSON), of a jq program's outputs or of
    /// a JSONata result.
    pub output_bytes: usize,
    /// Heap a jq program or a JSONata evaluation may hold while it runs
    /// (what its thread allocated and did not free): looked at every few
    /// jq steps (a program that doubles a string forty times takes forty
    /// steps and would take a terabyte), and at every allocation of a
    /// JSONata evaluation (which stops at its next node: one builtin call,
    /// such as a `$pad` to a billion characters, ends first). Enforced
    /// only under the [`crate::memory::Counting`] allocator, which the
    /// server installs.
    pub memory_bytes: usize,
    /// Wall-clock time of one JSONata evaluation: a backstop only, for an
    /// evaluation that would loop without allocating (none is known), or
    /// for a binary without the counting allocator, where its steps are not
    /// counted. It must stay well above what the steps take (a JSONata
    /// runaway spent 10 million in about 1 s here, release), or it stops
    /// runaways first. A clock is not replayed exactly, but only a runaway
    /// expression meets it, and a replay of one meets it again.
    pub time: std::time::Duration,
}

impl Budget {
    pub const DEFAULT_STEPS: u64 = 10_000_000;
    pub const DEFAULT_OUTPUT_BYTES: usize = 16 * 1024 * 1024;
    pub const DEFAULT_MEMORY_BYTES: usize = 256 * 1024 * 1024;
    /// Ten times what the default steps take a JSONata runaway, so that
    /// the steps stop it.
    pub const DEFAULT_TIME: std::time::Duration = std::time::Duration::from_secs(10);
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            steps: Self::DEFAULT_STEPS,
            output_bytes: Self::DEFAULT_OUTPUT_BYTES,
            memory_bytes: Self::DEFAULT_MEMORY_BYTES,
            time: Self::DEFAULT_TIME,
        }
    }
}

/// The message an exhausted step budget fails with.
pub(crate) fn out_of_steps(steps: u64) -> String {
    format!(
        "The expression ran out of its budget of {steps} evaluation steps \
         (engine setting `expression.max-steps`)"
    )
}

/// The message an output over its budget fails with.
pub(crate) fn too_large(size: usize, budget: usize) -> String {
    format!(
        "The expression's result is larger than its budget of {budget} bytes \
         (at least {size} bytes; engine setting `expression.max-output-size`)"
    )
}

/// About the size of `value` printed as JSON (numbers count 8 bytes),
/// counted until it passes `limit`
/// (so a huge value costs no more than `limit` to measure).
pub(crate) fn json_size(value: &Value, limit: usize) -> usize {
    fn walk(value: &Value, total: &mut usize, limit: usize) {
        if *total > limit {
            return;
        }
        match value {
            Value::Null => *total += 4,
            Value::Bool(_) => *total += 5,
            Value::Number(_) => *total += 8,
            Value::String(s) => *total += s.len() + 2,
            Value::Array(items) => {
                *total += 2 + items.len();
                for item in items {
                    walk(item, total, limit);
                }
            }
            Value::Object(map) => {
                *total += 2;
                for (k, v) in map {
                    *total += k.len() + 4;
                    walk(v, total, limit);
                }
            }
        }
    }
    let mut total = 0;
    walk(value, &mut total, limit);
    total
}

/// What a variable lookup yields.
#[derive(Debug)]
pub enum Scope<'a> {
    /// JSON read in place.
    Json(&'a Value),
    /// JSON built for this lookup (cheap scalars, small maps).
    Owned(Value),
    /// An object that resolves its members on demand.
    Lazy(&'a dyn LazyObject),
}

/// An object whose members are resolved only when an expression reads them.
///
/// `get` receives keys in their string form: `outputs.t[1]` asks for `"1"`.
/// The provided methods build the whole object; implement them when that
/// can be avoided (`length`, `keys`, `is empty` call them).
pub trait LazyObject: std::fmt::Debug {
    fn get(&self, key: &str) -> Option<Scope<'_>>;
    /// The whole object, built only when an expression renders it whole.
    fn to_json(&self) -> Value;
    /// The member names (`| keys`).
    fn keys(&self) -> Vec<String> {
        match self.to_json() {
            Value::Object(map) => map.into_iter().map(|(k, _)| k).collect(),
            Value::Array(items) => (0..items.len()).map(|i| i.to_string()).collect(),
            _ => Vec::new(),
        }
    }
    /// The number of members (`| length`).
    fn len(&self) -> usize {
        match self.to_json() {
            Value::Object(map) => map.len(),
            Value::Array(items) => items.len(),
            _ => 0,
        }
    }
    /// `is empty`.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The variables a template sees: `inputs`, `outputs`, `taskrun`, ...
pub trait Context {
    /// `None` means undefined (an error in strict mode unless guarded).
    fn root(&self, name: &str) -> Option<Scope<'_>>;

    /// The instant `now()` renders. An execution's context answers with the
    /// instant of the step that renders, so that a replay renders the same.
    fn now(&self) -> DateTime<Utc>;

    /// A function the context provides beyond the built-in ones (Kestra's
    /// `errorLogs()` reads the execution). `None`: no such function here.
    fn function(&self, name: &str, args: &[Value]) -> Option<std::result::Result<Value, String>> {
        let _ = (name, args);
        None
    }

    /// What one render in this context may spend.
    fn budget(&self) -> Budget {
        Budget::default()
    }
}

/// A [`Context`] over a JSON object whose keys are the root variables.
#[derive(Debug, Clone, Copy)]
pub struct JsonContext<'a> {
    vars: &'a Value,
    now: DateTime<Utc>,
    budget: Budget,
}

impl<'a> JsonContext<'a> {
    /// `vars` should be an object; anything else has no variables. `now()`
    /// renders the instant this context was made.
    pub fn new(vars: &'a Value) -> Self {
        Self::at(vars, Utc::now())
    }

    /// Like [`JsonContext::new`], with `now()` rendering `now`.
    pub fn at(vars: &'a Value, now: DateTime<Utc>) -> Self {
        Self {
            vars,
            now,
            budget: Budget::default(),
        }
    }

    /// Like this context, with renders spending at most `budget`.
    pub fn with_budget(self, budget: Budget) -> Self {
        Self { budget, ..self }
    }
}

impl Context for JsonContext<'_> {
    fn root(&self, name: &str) -> Option<Scope<'_>> {
        self.vars.get(name).map(Scope::Json)
    }

    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    fn budget(&self) -> Budget {
        self.budget
    }
}

/// Another context with one more root variable, which hides any of the
/// same name (Kestra's `render(expression, Map.of("count", n))`).
pub(crate) struct With<'a> {
    inner: &'a dyn Context,
    name: &'a str,
    value: &'a Value,
}

impl<'a> With<'a> {
    pub(crate) fn new(inner: &'a dyn Context, name: &'a str, value: &'a Value) -> Self {
        Self { inner, name, value }
    }
}

impl Context for With<'_> {
    fn root(&self, name: &str) -> Option<Scope<'_>> {
        if name == self.name {
            return Some(Scope::Json(self.value));
        }
        self.inner.root(name)
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    fn function(&self, name: &str, args: &[Value]) -> Option<std::result::Result<Value, String>> {
        self.inner.function(name, args)
    }

    fn budget(&self) -> Budget {
        self.inner.budget()
    }
}

/// A context with no variables.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyContext;

impl Context for EmptyContext {
    fn root(&self, _name: &str) -> Option<Scope<'_>> {
        None
    }

    /// The Unix epoch: a context with no variables has no instant either.
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH
    }
}

#[derive(Debug)]
struct Compiled {
    source: String,
    nodes: Vec<Node>,
    /// The template is one `{{ }}` (whitespace around allowed): its value keeps its type.
    typed: Option<usize>,
    /// No tag at all: renders to its source.
    is_static: bool,
    /// Set by [`Template::compile_deferred`]: the template did not compile,
    /// and rendering it fails with this error.
    deferred: Option<Error>,
}

/// A compiled template. Cloning shares the compiled form.
#[derive(Debug, Clone)]
pub struct Template {
    inner: Arc<Compiled>,
}

/// True when `source` may hold Pebble syntax.
fn has_tags(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

impl Template {
    pub fn compile(source: &str) -> Result<Self> {
        if !has_tags(source) {
            return Ok(Self {
                inner: Arc::new(Compiled {
                    source: source.to_owned(),
                    nodes: vec![Node::Text(source.into())],
                    typed: None,
                    is_static: true,
                    deferred: None,
                }),
            });
        }
        let nodes =
            parser::parse_template(source).map_err(|e| Error::at(source, e.pos, e.message))?;
        let mut typed = None;
        let mut others_blank = true;
        for (i, node) in nodes.iter().enumerate() {
            match node {
                Node::Print(_) if typed.is_none() => typed = Some(i),
                Node::Text(t) if t.trim().is_empty() => {}
                _ => others_blank = false,
            }
        }
        let typed = typed.filter(|_| others_blank);
        Ok(Self {
            inner: Arc::new(Compiled {
                source: source.to_owned(),
                nodes,
                typed,
                is_static: false,
                deferred: None,
            }),
        })
    }

    /// Like [`Template::compile`], but a template that does not compile is
    /// kept, and fails when rendered, with the same error. Kestra accepts
    /// such a flow and fails the task that renders it; so do we.
    pub fn compile_deferred(source: &str) -> Self {
        Self::compile(source).unwrap_or_else(|error| Self {
            inner: Arc::new(Compiled {
                source: source.to_owned(),
                nodes: Vec::new(),
                typed: None,
                is_static: false,
                deferred: Some(error),
            }),
        })
    }

    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// True when the template has no tag: it renders to its source.
    pub fn is_static(&self) -> bool {
        self.inner.is_static
    }

    /// True when the template is one `{{ expression }}`: [`Template::render`]
    /// keeps the expression's type.
    pub fn is_typed(&self) -> bool {
        self.inner.typed.is_some()
    }

    /// Renders to a typed value where the template is one expression, text otherwise.
    pub fn render(&self, ctx: &dyn Context) -> Result<Value> {
        let inner = &*self.inner;
        if let Some(error) = &inner.deferred {
            return Err(error.clone());
        }
        if inner.is_static {
            return Ok(Value::String(inner.source.clone()));
        }
        if let Some(Node::Print(expr)) = inner.typed.and_then(|i| inner.nodes.get(i)) {
            let renderer = Renderer::new(ctx);
            let value = renderer
                .eval(expr)
                .map(|v| v.into_value())
                .map_err(|f| Error::from_fault(&inner.source, f))?;
            let budget = ctx.budget().output_bytes;
            let size = json_size(&value, budget);
            if size > budget {
                return Err(Error::at(&inner.source, expr.pos, too_large(size, budget)));
            }
            return Ok(value);
        }
        self.render_string(ctx).map(Value::String)
    }

    /// Renders to text, as Kestra's `render` does.
    pub fn render_string(&self, ctx: &dyn Context) -> Result<String> {
        let inner = &*self.inner;
        if let Some(error) = &inner.deferred {
            return Err(error.clone());
        }
        if inner.is_static {
            return Ok(inner.source.clone());
        }
        let mut out = String::with_capacity(inner.source.len());
        let mut renderer = Renderer::new(ctx);
        renderer
            .render_nodes(&inner.nodes, &mut out)
            .map_err(|f| Error::from_fault(&inner.source, f))?;
        Ok(out)
    }
}

#[derive(Debug, Clone)]
enum PropertyNode {
    /// A subtree without any template.
    Static(Value),
    Template(Template),
    List(Vec<PropertyNode>),
    Map(Vec<(PropertyKey, PropertyNode)>),
}

#[derive(Debug, Clone)]
enum PropertyKey {
    Static(String),
    Template(Template),
}

impl PropertyNode {
    fn compile(raw: &Value, deferred: bool) -> Result<Self> {
        let template = |s: &str| {
            if deferred {
                Ok(Template::compile_deferred(s))
            } else {
                Template::compile(s)
            }
        };
        Ok(match raw {
            Value::String(s) if has_tags(s) => PropertyNode::Template(template(s)?),
            Value::Array(items) => {
                let nodes = items
                    .iter()
                    .map(|item| PropertyNode::compile(item, deferred))
                    .collect::<Result<Vec<_>>>()?;
                if nodes.iter().all(|n| matches!(n, PropertyNode::Static(_))) {
                    PropertyNode::Static(raw.clone())
                } else {
                    PropertyNode::List(nodes)
                }
            }
            Value::Object(map) => {
                let mut entries = Vec::with_capacity(map.len());
                let mut all_static = true;
                for (k, v) in map {
                    let key = if has_tags(k) {
                        all_static = false;
                        PropertyKey::Template(template(k)?)
                    } else {
                        PropertyKey::Static(k.clone())
                    };
                    let node = PropertyNode::compile(v, deferred)?;
                    all_static &= matches!(node, PropertyNode::Static(_));
                    entries.push((key, node));
                }
                if all_static {
                    PropertyNode::Static(raw.clone())
                } else {
                    PropertyNode::Map(entries)
                }
            }
            other => PropertyNode::Static(other.clone()),
        })
    }

    /// Rendered; with `as_text`, every template gives text (Kestra's
    /// `RunContext.render` of a map), else its value keeps its type.
    fn render(&self, ctx: &dyn Context, as_text: bool) -> Result<Value> {
        Ok(match self {
            PropertyNode::Static(v) => v.clone(),
            PropertyNode::Template(t) if as_text => Value::String(t.render_string(ctx)?),
            PropertyNode::Template(t) => t.render(ctx)?,
            PropertyNode::List(items) => Value::Array(
                items
                    .iter()
                    .map(|n| n.render(ctx, as_text))
                    .collect::<Result<Vec<_>>>()?,
            ),
            PropertyNode::Map(entries) => {
                let mut out = serde_json::Map::with_capacity(entries.len());
                for (k, v) in entries {
                    let key = match k {
                        PropertyKey::Static(s) => s.clone(),
                        PropertyKey::Template(t) => t.render_string(ctx)?,
                    };
                    let value = v.render(ctx, as_text)?;
                    // Kestra keeps the first value when two keys render the same.
                    out.entry(key).or_insert(value);
                }
                Value::Object(out)
            }
        })
    }
}

/// A task property: JSON whose strings are templates, compiled once.
/// Strings without `{{`, `{%` or `{#` are kept as they are.
#[derive(Debug, Clone)]
pub struct Property {
    node: PropertyNode,
}

impl Property {
    pub fn compile(raw: &Value) -> Result<Self> {
        Ok(Self {
            node: PropertyNode::compile(raw, false)?,
        })
    }

    /// Compiles what compiles; a template that does not fails when rendered
    /// (see [`Template::compile_deferred`]). The first compile error, if any,
    /// comes back beside the property so that a validator can warn of it.
    pub fn compile_deferred(raw: &Value) -> (Self, Option<Error>) {
        let strict = Self::compile(raw).err();
        let node =
            PropertyNode::compile(raw, true).unwrap_or_else(|_| PropertyNode::Static(raw.clone()));
        (Self { node }, strict)
    }

    /// True when no string in the property is a template.
    pub fn is_static(&self) -> bool {
        matches!(self.node, PropertyNode::Static(_))
    }

    pub fn render(&self, ctx: &dyn Context) -> Result<Value> {
        self.node.render(ctx, false)
    }

    /// Rendered with every template giving text, as Kestra renders an
    /// untyped map of strings (`OutputValues`' `values`): `"{{ 1 + 1 }}"`
    /// is `"2"`; a value written as a number stays one.
    pub fn render_texts(&self, ctx: &dyn Context) -> Result<Value> {
        self.node.render(ctx, true)
    }
}

#[cfg(test)]
mod deferred_tests {
    use super::*;

    #[test]
    fn a_template_that_does_not_compile_fails_when_rendered() {
        let source = "{{ a + }}";
        let strict = Template::compile(source).unwrap_err();
        let deferred = Template::compile_deferred(source);
        assert_eq!(deferred.render(&EmptyContext).unwrap_err(), strict);
        assert_eq!(deferred.render_string(&EmptyContext).unwrap_err(), strict);

        let raw = serde_json::json!({"ok": "{{ 1 + 1 }}", "bad": ["{% if %}"]});
        let (property, error) = Property::compile_deferred(&raw);
        assert!(
            error.is_some(),
            "the compile error is reported beside the property"
        );
        assert!(property.render(&EmptyContext).is_err());
        let (fine, none) = Property::compile_deferred(&serde_json::json!({"ok": "{{ 1 + 1 }}"}));
        assert!(none.is_none());
        assert_eq!(
            fine.render(&EmptyContext).unwrap(),
            serde_json::json!({"ok": 2})
        );
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;
    use serde_json::json;

    fn render(source: &str, budget: Budget) -> Result<Value> {
        let vars = json!({});
        let ctx = JsonContext::new(&vars).with_budget(budget);
        Template::compile(source).expect("compiles").render(&ctx)
    }

    fn steps(steps: u64) -> Budget {
        Budget {
            steps,
            ..Budget::default()
        }
    }

    #[test]
    fn runaway_templates_stop_at_their_step_budget() {
        for source in [
            "{{ 1 | jq('[recurse(. + 1)] | length') }}",
            "{{ 1 | jq('[limit(100000000; repeat(1))] | length') }}",
            "{% for i in range(0, 999999) %}{% set x = range(0, 999999) | length %}{% endfor %}",
            "{% for i in range(0, 999999) %}{% for j in range(0, 999999) %}{% endfor %}{% endfor %}",
            "{% for i in range(0, 999999) %}{{ 'abcdefgh' ~ i }}{% endfor %}",
        ] {
            let err = render(source, steps(100_000)).expect_err(source);
            assert!(
                err.message.contains("budget of 100000 evaluation steps"),
                "{source}: {err}"
            );
        }
    }

    #[test]
    fn jq_inside_a_template_spends_the_template_budget() {
        // Each program alone fits (a step per item made, one per item
        // collected); the render as a whole does not.
        let one = "{{ 1 | jq('[range(40000)] | length') | first }}";
        assert_eq!(render(one, steps(100_000)).expect("fits"), json!(40000));
        let two = "{{ (1 | jq('[range(40000)] | length') | first) + (1 | jq('[range(40000)] | length') | first) }}";
        let err = render(two, steps(100_000)).expect_err("over budget");
        assert!(err.message.contains("evaluation steps"), "{err}");
    }

    #[test]
    fn honest_templates_fit_the_default_budget() {
        let source = "{% for i in range(1, 1000) %}{{ i }},{% endfor %}{{ [1, 2, 3] | jq('map(. * 2) | add') | first }}";
        let out = render(source, Budget::default()).expect("renders");
        assert!(
            out.as_str().is_some_and(|s| s.ends_with("999,1000,12")),
            "{out}"
        );
    }

    #[test]
    fn results_over_the_output_budget_fail() {
        let small = Budget {
            output_bytes: 10_000,
            ..Budget::default()
        };
        let typed = render("{{ range(0, 5000) }}", small).expect_err("typed over budget");
        assert!(typed.message.contains("budget of 10000 bytes"), "{typed}");
        let text = render("{% for i in range(0, 5000) %}{{ i }}{% endfor %}", small)
            .expect_err("text over budget");
        assert!(text.message.contains("budget of 10000 bytes"), "{text}");
        let jq = render("{{ 1 | jq('range(5000)') }}", small).expect_err("jq over budget");
        assert!(jq.message.contains("budget of 10000 bytes"), "{jq}");
        assert!(render("{{ range(0, 100) }}", small).is_ok());
    }
}
