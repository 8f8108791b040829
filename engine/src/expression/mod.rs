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
}

/// A [`Context`] over a JSON object whose keys are the root variables.
#[derive(Debug, Clone, Copy)]
pub struct JsonContext<'a> {
    vars: &'a Value,
    now: DateTime<Utc>,
}

impl<'a> JsonContext<'a> {
    /// `vars` should be an object; anything else has no variables. `now()`
    /// renders the instant this context was made.
    pub fn new(vars: &'a Value) -> Self {
        Self::at(vars, Utc::now())
    }

    /// Like [`JsonContext::new`], with `now()` rendering `now`.
    pub fn at(vars: &'a Value, now: DateTime<Utc>) -> Self {
        Self { vars, now }
    }
}

impl Context for JsonContext<'_> {
    fn root(&self, name: &str) -> Option<Scope<'_>> {
        self.vars.get(name).map(Scope::Json)
    }

    fn now(&self) -> DateTime<Utc> {
        self.now
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
            return renderer
                .eval(expr)
                .map(|v| v.into_value())
                .map_err(|f| Error::from_fault(&inner.source, f));
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

    fn render(&self, ctx: &dyn Context) -> Result<Value> {
        Ok(match self {
            PropertyNode::Static(v) => v.clone(),
            PropertyNode::Template(t) => t.render(ctx)?,
            PropertyNode::List(items) => Value::Array(
                items
                    .iter()
                    .map(|n| n.render(ctx))
                    .collect::<Result<Vec<_>>>()?,
            ),
            PropertyNode::Map(entries) => {
                let mut out = serde_json::Map::with_capacity(entries.len());
                for (k, v) in entries {
                    let key = match k {
                        PropertyKey::Static(s) => s.clone(),
                        PropertyKey::Template(t) => t.render_string(ctx)?,
                    };
                    let value = v.render(ctx)?;
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
        self.node.render(ctx)
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
