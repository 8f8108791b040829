//! Pebble expressions as Kestra writes them.
//!
//! Contract used by the rest of the engine (the implementation behind it is
//! free to change):
//! - [`Template::compile`] parses once per flow revision;
//! - [`Template::render`] evaluates against a [`Context`] without cloning
//!   the outputs it reads;
//! - [`Property`] is a task property: a JSON tree whose strings are templates.

use serde_json::Value;

/// An expression error: the template, the position and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{message} at {line}:{column} in `{template}`")]
pub struct Error {
    pub template: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
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
pub trait LazyObject: std::fmt::Debug {
    fn get(&self, key: &str) -> Option<Scope<'_>>;
    /// The whole object, built only when an expression renders it whole.
    fn to_json(&self) -> Value;
}

/// The variables a template sees: `inputs`, `outputs`, `taskrun`, ...
pub trait Context {
    /// `None` means undefined (an error in strict mode unless guarded).
    fn root(&self, name: &str) -> Option<Scope<'_>>;
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
}

impl Template {
    pub fn compile(source: &str) -> Result<Self> {
        Ok(Self {
            source: source.to_owned(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders to a typed value where the template is one expression, text otherwise.
    pub fn render(&self, _ctx: &dyn Context) -> Result<Value> {
        Ok(Value::String(self.source.clone()))
    }
}

/// A task property: JSON whose strings are templates, compiled once.
#[derive(Debug, Clone)]
pub struct Property {
    raw: Value,
}

impl Property {
    pub fn compile(raw: &Value) -> Result<Self> {
        Ok(Self { raw: raw.clone() })
    }

    pub fn render(&self, _ctx: &dyn Context) -> Result<Value> {
        Ok(self.raw.clone())
    }
}
