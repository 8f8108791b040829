//! Evaluates a compiled template against a [`Context`].
//!
//! Values are [`Scope`]s: JSON borrowed from the context or the template,
//! lazy objects, or JSON built during evaluation. An attribute chain
//! (`outputs.t[v].x`) walks step by step through borrowed data and lazy
//! objects, and only the value at its end is ever copied, and only when it
//! was itself built during the render.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::Write as _;
use std::rc::Rc;

use serde_json::{Map, Number, Value};

use super::ast::{BinaryOp, Expr, ExprKind, Node, Pos, Step, UnaryOp};
use super::builtins::{Filter, Test};
use super::{Context, LazyObject, Scope};

/// Largest string a render may build (output, concatenation, join...).
pub(crate) const MAX_STRING_BYTES: usize = 16 * 1024 * 1024;
/// Largest list or map a render may build (`range`, `+`, `split`...).
pub(crate) const MAX_ITEMS: usize = 1_000_000;
/// Loop iterations allowed in one render, across all loops.
pub(crate) const MAX_LOOP_ITERATIONS: usize = 1_000_000;

pub(crate) static NULL: Value = Value::Null;

/// Why an evaluation failed.
#[derive(Debug)]
pub(crate) enum Fault {
    /// An undefined variable, missing key or out-of-range index: what `??`,
    /// `default` and `is defined` catch (Pebble's `AttributeNotFoundException`).
    Undefined {
        name: String,
        pos: Pos,
    },
    Failed {
        message: String,
        pos: Pos,
    },
}

pub(crate) type R<T> = std::result::Result<T, Fault>;

pub(crate) fn failed<T>(pos: Pos, message: impl Into<String>) -> R<T> {
    Err(Fault::Failed {
        message: message.into(),
        pos,
    })
}

impl<'a> Scope<'a> {
    /// The JSON behind this value, building it for a lazy object.
    pub(crate) fn json(&self) -> Cow<'_, Value> {
        match self {
            Scope::Json(v) => Cow::Borrowed(v),
            Scope::Owned(v) => Cow::Borrowed(v),
            Scope::Lazy(l) => Cow::Owned(l.to_json()),
        }
    }

    /// The JSON behind this value, without building anything.
    pub(crate) fn as_value(&self) -> Option<&Value> {
        match self {
            Scope::Json(v) => Some(v),
            Scope::Owned(v) => Some(v),
            Scope::Lazy(_) => None,
        }
    }

    pub(crate) fn into_value(self) -> Value {
        match self {
            Scope::Json(v) => v.clone(),
            Scope::Owned(v) => v,
            Scope::Lazy(l) => l.to_json(),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self.as_value(), Some(Value::Null))
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        self.as_value().and_then(Value::as_str)
    }

    fn copy(&self) -> Scope<'a> {
        match self {
            Scope::Json(v) => Scope::Json(v),
            Scope::Lazy(l) => Scope::Lazy(*l),
            Scope::Owned(v) => Scope::Owned(v.clone()),
        }
    }
}

/// A number as Pebble sees it: a long or a double.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub(crate) fn of(v: &Value) -> Option<Num> {
        let n = v.as_number()?;
        Some(match n.as_i64() {
            Some(i) => Num::Int(i),
            None => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
        })
    }

    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    pub(crate) fn into_value(self, pos: Pos) -> R<Value> {
        match self {
            Num::Int(i) => Ok(Value::from(i)),
            Num::Float(f) => match Number::from_f64(f) {
                Some(n) => Ok(Value::Number(n)),
                None => failed(
                    pos,
                    format!("The result {} is not a finite number", java_double(f)),
                ),
            },
        }
    }
}

/// Java's `Double.toString`: `1.0`, `0.001`, `1.0E7`, `1.5E-4`.
pub(crate) fn java_double(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let abs = f.abs();
    if (1e-3..1e7).contains(&abs) {
        let s = f.to_string();
        if s.contains('.') { s } else { s + ".0" }
    } else {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_owned()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

pub(crate) fn push_number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else {
        out.push_str(&java_double(n.as_f64().unwrap_or(f64::NAN)));
    }
}

/// How a printed value looks in text (Kestra's writer): nothing for null,
/// strings as they are, maps and lists as JSON.
pub(crate) fn push_printed(out: &mut String, v: &Value) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Number(n) => push_number(out, n),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Array(_) | Value::Object(_) => out.push_str(&v.to_string()),
    }
}

/// Java's `String.valueOf`: `null`, `[a, b]`, `{k=v}`.
pub(crate) fn push_java_string(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::String(s) => out.push_str(s),
        Value::Number(n) => push_number(out, n),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_java_string(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                push_java_string(out, item);
            }
            out.push('}');
        }
    }
}

pub(crate) fn java_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        _ => {
            let mut out = String::new();
            push_java_string(&mut out, v);
            out
        }
    }
}

/// Pebble's equality: numbers by value, everything else structurally.
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => match (Num::of(a), Num::of(b)) {
            (Some(Num::Int(x)), Some(Num::Int(y))) => x == y,
            (Some(x), Some(y)) => x.as_f64() == y.as_f64(),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => a == b,
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

pub(crate) fn scope_type_name(v: &Scope<'_>) -> &'static str {
    match v.as_value() {
        Some(v) => type_name(v),
        None => "map",
    }
}

/// Pebble's cast to boolean: booleans, numbers (non-zero) and strings
/// (non-empty); `None` for null; an error for maps and lists.
pub(crate) fn to_bool(v: &Scope<'_>, pos: Pos) -> R<Option<bool>> {
    match v.as_value() {
        Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(0.0);
            Ok(Some(!f.is_nan() && f != 0.0))
        }
        Some(Value::String(s)) => Ok(Some(!s.is_empty())),
        _ => failed(
            pos,
            format!(
                "Unsupported value type {}. Expected Boolean, String, Number",
                scope_type_name(v)
            ),
        ),
    }
}

/// A key used to read a map, a list or a lazy object.
#[derive(Debug)]
pub(crate) enum Key<'k> {
    Str(Cow<'k, str>),
    Int(i64),
}

impl Key<'_> {
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self {
            Key::Str(s) => Cow::Borrowed(s),
            Key::Int(i) => Cow::Owned(i.to_string()),
        }
    }

    fn index(&self) -> Option<usize> {
        match self {
            Key::Int(i) => usize::try_from(*i).ok(),
            Key::Str(s) => s.parse::<usize>().ok(),
        }
    }

    pub(crate) fn from_scope<'k>(v: &'k Scope<'_>) -> Key<'k> {
        match v.as_value() {
            Some(Value::String(s)) => Key::Str(Cow::Borrowed(s)),
            Some(Value::Number(n)) if n.as_i64().is_some() => Key::Int(n.as_i64().unwrap_or(0)),
            Some(other) => Key::Str(Cow::Owned(java_string(other))),
            None => Key::Str(Cow::Owned(java_string(&v.json()))),
        }
    }
}

/// Where an attribute walk stands.
enum Cursor<'r, 'a> {
    /// Borrowed for the whole render.
    Shared(&'a Value),
    /// Borrowed from a local variable: copied if it is the result.
    Local(&'r Value),
    Lazy(&'a dyn LazyObject),
    Owned(Value),
}

impl<'r, 'a> Cursor<'r, 'a> {
    fn from_scope(s: Scope<'a>) -> Self {
        match s {
            Scope::Json(v) => Cursor::Shared(v),
            Scope::Lazy(l) => Cursor::Lazy(l),
            Scope::Owned(v) => Cursor::Owned(v),
        }
    }

    fn get(self, key: &Key<'_>) -> Option<Self> {
        match self {
            Cursor::Shared(v) => child(v, key).map(Cursor::Shared),
            Cursor::Local(v) => child(v, key).map(Cursor::Local),
            Cursor::Lazy(l) => l.get(&key.text()).map(Cursor::from_scope),
            Cursor::Owned(mut v) => match &mut v {
                Value::Object(map) => map.swap_remove(key.text().as_ref()).map(Cursor::Owned),
                Value::Array(items) => {
                    let i = key.index()?;
                    items.get_mut(i).map(|item| Cursor::Owned(item.take()))
                }
                _ => None,
            },
        }
    }

    fn into_scope(self) -> Scope<'a> {
        match self {
            Cursor::Shared(v) => Scope::Json(v),
            Cursor::Local(v) => Scope::Owned(v.clone()),
            Cursor::Lazy(l) => Scope::Lazy(l),
            Cursor::Owned(v) => Scope::Owned(v),
        }
    }
}

/// `scope[key]`, or `None` when missing.
pub(crate) fn get_key<'a>(scope: Scope<'a>, key: &Key<'_>) -> Option<Scope<'a>> {
    Cursor::from_scope(scope).get(key).map(Cursor::into_scope)
}

fn child<'v>(v: &'v Value, key: &Key<'_>) -> Option<&'v Value> {
    match v {
        Value::Object(map) => map.get(key.text().as_ref()),
        Value::Array(items) => items.get(key.index()?),
        _ => None,
    }
}

/// The steps left to one render, shared with the renders it nests.
#[derive(Debug)]
pub(crate) struct Meter {
    budget: super::Budget,
    left: Cell<u64>,
}

impl Meter {
    pub(crate) fn new(budget: super::Budget) -> Self {
        Self {
            budget,
            left: Cell::new(budget.steps),
        }
    }

    pub(crate) fn budget(&self) -> super::Budget {
        self.budget
    }

    /// Spends `steps`, or fails once the budget is gone.
    pub(crate) fn charge(&self, steps: u64, pos: Pos) -> R<()> {
        match self.left.get().checked_sub(steps) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.left.set(0);
                failed(pos, super::out_of_steps(self.budget.steps))
            }
        }
    }

    /// Steps left, for a jq program run inside this render.
    pub(crate) fn left(&self) -> u64 {
        self.left.get()
    }

    /// What a jq program run inside this render spent.
    pub(crate) fn spent(&self, steps: u64) {
        self.left.set(self.left.get().saturating_sub(steps));
    }
}

/// One render: the context, the local variables (`set`, `for`) and budgets.
pub(crate) struct Renderer<'a> {
    ctx: &'a dyn Context,
    locals: Vec<(&'a str, Scope<'a>)>,
    iterations_left: usize,
    pub(crate) meter: Rc<Meter>,
    /// How many `render()` calls enclose this renderer.
    pub(crate) depth: usize,
}

impl<'a> Renderer<'a> {
    /// The variables and functions this render reads.
    pub(crate) fn context(&self) -> &'a dyn Context {
        self.ctx
    }

    pub(crate) fn new(ctx: &'a dyn Context) -> Self {
        Self {
            ctx,
            locals: Vec::new(),
            iterations_left: MAX_LOOP_ITERATIONS,
            meter: Rc::new(Meter::new(ctx.budget())),
            depth: 0,
        }
    }

    /// A renderer for a template rendered by `render()` inside this one.
    pub(crate) fn nested<'b>(&self) -> Renderer<'b>
    where
        'a: 'b,
    {
        Renderer {
            ctx: self.ctx,
            locals: Vec::new(),
            iterations_left: MAX_LOOP_ITERATIONS,
            meter: Rc::clone(&self.meter),
            depth: self.depth + 1,
        }
    }

    pub(crate) fn render_nodes(&mut self, nodes: &'a [Node], out: &mut String) -> R<()> {
        for node in nodes {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Print(expr) => {
                    let v = self.eval(expr)?;
                    match v.as_value() {
                        Some(value) => push_printed(out, value),
                        None => push_printed(out, &v.json()),
                    }
                    let budget = self.meter.budget().output_bytes;
                    if out.len() > budget {
                        return failed(expr.pos, super::too_large(out.len(), budget));
                    }
                }
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let mut taken = false;
                    for (cond, body) in branches {
                        let v = self.eval(cond)?;
                        match to_bool(&v, cond.pos)? {
                            Some(true) => {
                                self.render_nodes(body, out)?;
                                taken = true;
                                break;
                            }
                            Some(false) => {}
                            None => {
                                return failed(
                                    cond.pos,
                                    "null value given to if statement and strict variables is set to true",
                                );
                            }
                        }
                    }
                    if !taken {
                        self.render_nodes(otherwise, out)?;
                    }
                }
                Node::For {
                    var,
                    iterable,
                    body,
                    otherwise,
                    pos,
                } => self.render_for(var, iterable, body, otherwise, *pos, out)?,
                Node::Set { var, value } => {
                    let v = self.eval(value)?;
                    self.set_local(var, v);
                }
            }
        }
        Ok(())
    }

    fn set_local(&mut self, name: &'a str, value: Scope<'a>) {
        if let Some(slot) = self.locals.iter_mut().rev().find(|(n, _)| *n == name) {
            slot.1 = value;
        } else {
            self.locals.push((name, value));
        }
    }

    fn render_for(
        &mut self,
        var: &'a str,
        iterable: &'a Expr,
        body: &'a [Node],
        otherwise: &'a [Node],
        pos: Pos,
        out: &mut String,
    ) -> R<()> {
        let it = self.eval(iterable)?;
        let items: Vec<Scope<'a>> = match it {
            // Pebble renders nothing, not even the else branch, for null.
            Scope::Json(Value::Null) | Scope::Owned(Value::Null) => return Ok(()),
            Scope::Json(Value::Array(items)) => items.iter().map(Scope::Json).collect(),
            Scope::Owned(Value::Array(items)) => items.into_iter().map(Scope::Owned).collect(),
            Scope::Json(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| Scope::Owned(entry(k.clone(), v.clone())))
                .collect(),
            Scope::Owned(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| Scope::Owned(entry(k, v)))
                .collect(),
            Scope::Lazy(l) => match l.to_json() {
                Value::Object(map) => map
                    .into_iter()
                    .map(|(k, v)| Scope::Owned(entry(k, v)))
                    .collect(),
                Value::Array(items) => items.into_iter().map(Scope::Owned).collect(),
                _ => Vec::new(),
            },
            other => {
                return failed(
                    iterable.pos,
                    format!("Not an iterable object: {}", scope_type_name(&other)),
                );
            }
        };
        if items.is_empty() {
            return self.render_nodes(otherwise, out);
        }
        let mark = self.locals.len();
        let length = items.len();
        for (index, item) in items.into_iter().enumerate() {
            if self.iterations_left == 0 {
                self.locals.truncate(mark);
                return failed(pos, "Too many loop iterations");
            }
            self.iterations_left -= 1;
            if let Err(fault) = self.meter.charge(1, pos) {
                self.locals.truncate(mark);
                return Err(fault);
            }
            let fields = [
                ("index", Value::from(index)),
                ("revindex", Value::from(length - index - 1)),
                ("first", Value::Bool(index == 0)),
                ("last", Value::Bool(index + 1 == length)),
                ("length", Value::from(length)),
            ];
            if index == 0 {
                self.locals.push((
                    "loop",
                    Scope::Owned(Value::Object(
                        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                    )),
                ));
                self.locals.push((var, item));
            } else {
                // Update `loop` in place: no allocation per iteration.
                match &mut self.locals[mark].1 {
                    Scope::Owned(Value::Object(lp)) => {
                        for (k, v) in fields {
                            if let Some(slot) = lp.get_mut(k) {
                                *slot = v;
                            }
                        }
                    }
                    slot => {
                        *slot = Scope::Owned(Value::Object(
                            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                        ));
                    }
                }
                self.locals[mark + 1].1 = item;
            }
            let result = self.render_nodes(body, out);
            if result.is_err() {
                self.locals.truncate(mark);
                return result;
            }
        }
        self.locals.truncate(mark);
        Ok(())
    }

    /// A root variable: a local first, then the context.
    pub(crate) fn variable(&self, name: &str) -> Option<Scope<'a>> {
        if let Some((_, v)) = self.locals.iter().rev().find(|(n, _)| *n == name) {
            return Some(v.copy());
        }
        self.ctx.root(name)
    }

    /// Dispatches on the expression kind. Each kind lives in its own
    /// function so that this recursive frame stays small.
    pub(crate) fn eval(&self, e: &'a Expr) -> R<Scope<'a>> {
        self.meter.charge(1, e.pos)?;
        match &e.kind {
            ExprKind::Literal(v) => Ok(Scope::Json(v)),
            ExprKind::Path { root, steps } => self.eval_path(root, steps, e.pos),
            ExprKind::Access { base, steps } => self.eval_access(base, steps, e.pos),
            ExprKind::Method { name } => failed(
                e.pos,
                format!("Method calls such as \"{name}(...)\" are not supported"),
            ),
            ExprKind::List(items) => self.eval_list(items),
            ExprKind::Map(entries) => self.eval_map(entries),
            ExprKind::Unary(op, operand) => self.eval_unary(*op, operand, e.pos),
            ExprKind::Binary(op, l, r) => self.eval_binary(*op, l, r, e.pos),
            ExprKind::Coalesce {
                left,
                right,
                undefined_only,
            } => self.eval_coalesce(left, right, *undefined_only),
            ExprKind::Ternary(cond, then, otherwise) => self.eval_ternary(cond, then, otherwise),
            ExprKind::Filter {
                input,
                filter,
                args,
            } => self.eval_filter(input, filter, args, e.pos),
            ExprKind::Test {
                input,
                test,
                negated,
                args,
            } => self.eval_test(input, test, *negated, args, e.pos),
            ExprKind::Call { function, args } => self.eval_call(function, args, e.pos),
            ExprKind::Interpolation(parts) => self.eval_interpolation(parts),
        }
    }

    #[inline(never)]
    fn eval_access(&self, base: &'a Expr, steps: &'a [Step], pos: Pos) -> R<Scope<'a>> {
        let base = self.eval(base)?;
        self.walk(Cursor::from_scope(base), steps, pos)
    }

    #[inline(never)]
    fn eval_list(&self, items: &'a [Expr]) -> R<Scope<'a>> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(self.eval(item)?.into_value());
        }
        Ok(Scope::Owned(Value::Array(out)))
    }

    #[inline(never)]
    fn eval_map(&self, entries: &'a [(Expr, Expr)]) -> R<Scope<'a>> {
        let mut out = Map::with_capacity(entries.len());
        for (k, v) in entries {
            let key = self.eval(k)?;
            let key = match key.as_value() {
                Some(Value::String(s)) => s.clone(),
                _ => java_string(&key.json()),
            };
            out.insert(key, self.eval(v)?.into_value());
        }
        Ok(Scope::Owned(Value::Object(out)))
    }

    #[inline(never)]
    fn eval_coalesce(&self, left: &'a Expr, right: &'a Expr, undefined_only: bool) -> R<Scope<'a>> {
        match self.eval(left) {
            Ok(v) if undefined_only || !v.is_null() => Ok(v),
            Ok(_) | Err(Fault::Undefined { .. }) => self.eval(right),
            Err(other) => Err(other),
        }
    }

    #[inline(never)]
    fn eval_ternary(&self, cond: &'a Expr, then: &'a Expr, otherwise: &'a Expr) -> R<Scope<'a>> {
        let c = self.eval(cond)?;
        if to_bool(&c, cond.pos)?.unwrap_or(false) {
            self.eval(then)
        } else {
            self.eval(otherwise)
        }
    }

    #[inline(never)]
    fn eval_filter(
        &self,
        input: &'a Expr,
        filter: &'a Filter,
        args: &'a super::ast::Args,
        pos: Pos,
    ) -> R<Scope<'a>> {
        let value = if *filter == Filter::Default {
            match self.eval(input) {
                Err(Fault::Undefined { .. }) => Scope::Json(&NULL),
                other => other?,
            }
        } else {
            self.eval(input)?
        };
        let evaluated = self.eval_args(args)?;
        self.apply_filter(filter, value, &evaluated, args, pos)
    }

    #[inline(never)]
    fn eval_test(
        &self,
        input: &'a Expr,
        test: &'a Test,
        negated: bool,
        args: &'a super::ast::Args,
        pos: Pos,
    ) -> R<Scope<'a>> {
        let value = if *test == Test::Defined {
            match self.eval(input) {
                Err(Fault::Undefined { .. }) => None,
                other => Some(other?),
            }
        } else {
            Some(self.eval(input)?)
        };
        let evaluated = self.eval_args(args)?;
        let result = self.apply_test(test, value.as_ref(), &evaluated, pos)?;
        Ok(Scope::Owned(Value::Bool(result != negated)))
    }

    #[inline(never)]
    fn eval_call(
        &self,
        function: &'a super::builtins::Function,
        args: &'a super::ast::Args,
        pos: Pos,
    ) -> R<Scope<'a>> {
        let evaluated = self.eval_args(args)?;
        let rest = args
            .rest
            .iter()
            .map(|a| self.eval(a))
            .collect::<R<Vec<_>>>()?;
        self.call(function, &evaluated, rest, pos)
    }

    #[inline(never)]
    fn eval_interpolation(&self, parts: &'a [Expr]) -> R<Scope<'a>> {
        let mut out = String::new();
        for part in parts {
            let v = self.eval(part)?;
            if !v.is_null() {
                push_java_string(&mut out, &v.json());
            }
            self.check_len(out.len(), part.pos)?;
        }
        Ok(Scope::Owned(Value::String(out)))
    }

    fn eval_args(&self, args: &'a super::ast::Args) -> R<Vec<Option<Scope<'a>>>> {
        let mut out = Vec::with_capacity(args.slots.len());
        for slot in &args.slots {
            out.push(match slot {
                Some(e) => Some(self.eval(e)?),
                None => None,
            });
        }
        Ok(out)
    }

    fn eval_path(&self, root: &'a str, steps: &'a [Step], pos: Pos) -> R<Scope<'a>> {
        if let Some((_, local)) = self.locals.iter().rev().find(|(n, _)| *n == root) {
            let cursor = match local {
                Scope::Json(v) => Cursor::Shared(v),
                Scope::Lazy(l) => Cursor::Lazy(*l),
                Scope::Owned(v) => Cursor::Local(v),
            };
            return self.walk(cursor, steps, pos);
        }
        match self.ctx.root(root) {
            Some(scope) => self.walk(Cursor::from_scope(scope), steps, pos),
            None => Err(Fault::Undefined {
                name: root.to_owned(),
                pos,
            }),
        }
    }

    fn walk<'r>(&'r self, mut cursor: Cursor<'r, 'a>, steps: &'a [Step], pos: Pos) -> R<Scope<'a>> {
        for step in steps {
            match step {
                Step::Key(name, kpos) => {
                    let key = Key::Str(Cow::Borrowed(name));
                    cursor = self.step(cursor, &key, *kpos)?;
                }
                Step::Index(index) => {
                    let k = self.eval(index)?;
                    let key = Key::from_scope(&k);
                    cursor = self.step(cursor, &key, index.pos)?;
                }
            }
        }
        let _ = pos;
        Ok(cursor.into_scope())
    }

    fn step<'r>(&self, cursor: Cursor<'r, 'a>, key: &Key<'_>, pos: Pos) -> R<Cursor<'r, 'a>> {
        match cursor.get(key) {
            Some(next) => Ok(next),
            None => Err(Fault::Undefined {
                name: key.text().into_owned(),
                pos,
            }),
        }
    }

    #[inline(never)]
    fn eval_unary(&self, op: UnaryOp, operand: &'a Expr, pos: Pos) -> R<Scope<'a>> {
        let v = self.eval(operand)?;
        match op {
            UnaryOp::Not => match to_bool(&v, pos)? {
                Some(b) => Ok(Scope::Owned(Value::Bool(!b))),
                None => failed(
                    pos,
                    "null value given to not() and strict variables is set to true",
                ),
            },
            UnaryOp::Neg | UnaryOp::Plus => {
                let factor = if op == UnaryOp::Neg { -1 } else { 1 };
                let Some(n) = v.as_value().and_then(Num::of) else {
                    return failed(
                        pos,
                        "invalid operands for mathematical operation [MULTIPLICATION]",
                    );
                };
                let result = match n {
                    Num::Int(i) => Num::Int(i.wrapping_mul(factor)),
                    Num::Float(f) => Num::Float(f * factor as f64),
                };
                Ok(Scope::Owned(result.into_value(pos)?))
            }
        }
    }

    #[inline(never)]
    fn eval_binary(&self, op: BinaryOp, l: &'a Expr, r: &'a Expr, pos: Pos) -> R<Scope<'a>> {
        match op {
            BinaryOp::And | BinaryOp::Or => self.eval_logic(op, l, r),
            BinaryOp::Contains | BinaryOp::In => self.eval_contains(op, l, r, pos),
            BinaryOp::Concat => self.eval_concat(l, r, pos),
            _ => self.eval_values(op, l, r, pos),
        }
    }

    #[inline(never)]
    fn eval_logic(&self, op: BinaryOp, l: &'a Expr, r: &'a Expr) -> R<Scope<'a>> {
        let left = self.logic_operand(l)?;
        let short = if op == BinaryOp::And { !left } else { left };
        if short {
            return Ok(Scope::Owned(Value::Bool(left)));
        }
        Ok(Scope::Owned(Value::Bool(self.logic_operand(r)?)))
    }

    #[inline(never)]
    fn eval_contains(&self, op: BinaryOp, l: &'a Expr, r: &'a Expr, pos: Pos) -> R<Scope<'a>> {
        let (container, item) = if op == BinaryOp::Contains {
            let container = self.eval(l)?;
            if container.is_null() {
                return Ok(Scope::Owned(Value::Bool(false)));
            }
            (container, self.eval(r)?)
        } else {
            let item = self.eval(l)?;
            (self.eval(r)?, item)
        };
        if container.is_null() {
            return Ok(Scope::Owned(Value::Bool(false)));
        }
        Ok(Scope::Owned(Value::Bool(contains(&container, &item, pos)?)))
    }

    #[inline(never)]
    fn eval_concat(&self, l: &'a Expr, r: &'a Expr, pos: Pos) -> R<Scope<'a>> {
        let a = self.eval(l)?;
        let b = self.eval(r)?;
        let mut out = String::new();
        for v in [&a, &b] {
            if !v.is_null() {
                push_java_string(&mut out, &v.json());
            }
        }
        self.check_len(out.len(), pos)?;
        Ok(Scope::Owned(Value::String(out)))
    }

    /// Operators that evaluate both sides first: range, equality, comparison, arithmetic.
    #[inline(never)]
    fn eval_values(&self, op: BinaryOp, l: &'a Expr, r: &'a Expr, pos: Pos) -> R<Scope<'a>> {
        let a = self.eval(l)?;
        let b = self.eval(r)?;
        let value = match op {
            BinaryOp::Range => super::library::range(Some(&a), Some(&b), None, pos)?,
            BinaryOp::Eq => Value::Bool(values_equal(&a.json(), &b.json())),
            BinaryOp::Ne => Value::Bool(!values_equal(&a.json(), &b.json())),
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                Value::Bool(compare(op, &a, &b, pos)?)
            }
            _ => arithmetic(self, op, &a, &b, pos)?,
        };
        Ok(Scope::Owned(value))
    }

    fn logic_operand(&self, e: &'a Expr) -> R<bool> {
        let v = self.eval(e)?;
        match to_bool(&v, e.pos)? {
            Some(b) => Ok(b),
            None => failed(
                e.pos,
                "null value used in and operator and strict variables is set to true",
            ),
        }
    }
}

fn entry(key: String, value: Value) -> Value {
    let mut m = Map::with_capacity(2);
    m.insert("key".into(), Value::String(key));
    m.insert("value".into(), value);
    Value::Object(m)
}

impl Renderer<'_> {
    /// A string of `len` bytes was built: within the limit, and paid for.
    pub(crate) fn check_len(&self, len: usize, pos: Pos) -> R<()> {
        if len > MAX_STRING_BYTES {
            return failed(pos, "The string is too large");
        }
        self.meter.charge(len as u64 / 64, pos)
    }

    /// A list of `len` items was built: within the limit, and paid for.
    pub(crate) fn check_items(&self, len: usize, pos: Pos) -> R<()> {
        if len > MAX_ITEMS {
            return failed(pos, "The list is too large");
        }
        self.meter.charge(len as u64, pos)
    }
}

/// Pebble's `contains`: list membership (or every element of a list), map
/// key, or substring.
pub(crate) fn contains(container: &Scope<'_>, item: &Scope<'_>, pos: Pos) -> R<bool> {
    if let Scope::Lazy(l) = container {
        return Ok(match item.as_str() {
            Some(key) => l.get(key).is_some(),
            None => false,
        });
    }
    let item_json = item.json();
    match container.as_value() {
        Some(Value::Array(items)) => Ok(match &*item_json {
            Value::Array(wanted) => wanted
                .iter()
                .all(|w| items.iter().any(|i| values_equal(i, w))),
            other => items.iter().any(|i| values_equal(i, other)),
        }),
        Some(Value::Object(map)) => Ok(match &*item_json {
            Value::String(key) => map.contains_key(key),
            _ => false,
        }),
        Some(Value::String(s)) => Ok(s.contains(java_string(&item_json).as_str())),
        Some(other) => failed(
            pos,
            format!(
                "Contains operator can only be used on Collections, Maps and arrays. Actual type was: {}",
                type_name(other)
            ),
        ),
        None => Ok(false),
    }
}

fn compare(op: BinaryOp, a: &Scope<'_>, b: &Scope<'_>, pos: Pos) -> R<bool> {
    if a.is_null() || b.is_null() {
        return Ok(false);
    }
    let (Some(x), Some(y)) = (
        a.as_value().and_then(Num::of),
        b.as_value().and_then(Num::of),
    ) else {
        let name = match op {
            BinaryOp::Lt => "LESS_THAN",
            BinaryOp::Le => "LESS_THAN_EQUALS",
            BinaryOp::Gt => "GREATER_THAN",
            _ => "GREATER_THAN_EQUALS",
        };
        return failed(
            pos,
            format!("invalid operands for mathematical comparison [{name}]"),
        );
    };
    let (x, y) = (x.as_f64(), y.as_f64());
    Ok(match op {
        BinaryOp::Lt => x < y,
        BinaryOp::Le => x <= y,
        BinaryOp::Gt => x > y,
        _ => x >= y,
    })
}

fn arithmetic(
    meter: &Renderer<'_>,
    op: BinaryOp,
    a: &Scope<'_>,
    b: &Scope<'_>,
    pos: Pos,
) -> R<Value> {
    let (aj, bj) = (a.json(), b.json());
    if op == BinaryOp::Add {
        if aj.is_string() || bj.is_string() {
            let mut out = java_string(&aj);
            push_java_string(&mut out, &bj);
            meter.check_len(out.len(), pos)?;
            return Ok(Value::String(out));
        }
        if let Value::Array(items) = &*aj {
            let mut out = items.clone();
            match &*bj {
                Value::Array(more) => out.extend(more.iter().cloned()),
                other => out.push(other.clone()),
            }
            meter.check_items(out.len(), pos)?;
            return Ok(Value::Array(out));
        }
    }
    if op == BinaryOp::Sub
        && let Value::Array(items) = &*aj
    {
        let out: Vec<Value> = match &*bj {
            Value::Array(remove) => items
                .iter()
                .filter(|i| !remove.iter().any(|r| values_equal(i, r)))
                .cloned()
                .collect(),
            other => {
                let mut out = items.clone();
                if let Some(at) = out.iter().position(|i| values_equal(i, other)) {
                    out.remove(at);
                }
                out
            }
        };
        return Ok(Value::Array(out));
    }
    let name = match op {
        BinaryOp::Add => "ADD",
        BinaryOp::Sub => "SUBTRACT",
        BinaryOp::Mul => "MULTIPLICATION",
        BinaryOp::Div => "DIVISION",
        _ => "MODULUS",
    };
    let (Some(x), Some(y)) = (Num::of(&aj), Num::of(&bj)) else {
        return failed(
            pos,
            format!("invalid operands for mathematical operation [{name}]"),
        );
    };
    let result = match (x, y) {
        (Num::Int(x), Num::Int(y)) => Num::Int(match op {
            BinaryOp::Add => x.wrapping_add(y),
            BinaryOp::Sub => x.wrapping_sub(y),
            BinaryOp::Mul => x.wrapping_mul(y),
            BinaryOp::Div => {
                if y == 0 {
                    return failed(pos, "/ by zero");
                }
                x.wrapping_div(y)
            }
            _ => {
                if y == 0 {
                    return failed(pos, "/ by zero");
                }
                x.wrapping_rem(y)
            }
        }),
        _ => {
            let (x, y) = (x.as_f64(), y.as_f64());
            Num::Float(match op {
                BinaryOp::Add => x + y,
                BinaryOp::Sub => x - y,
                BinaryOp::Mul => x * y,
                BinaryOp::Div => x / y,
                _ => x % y,
            })
        }
    };
    result.into_value(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(1.123), "1.123");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(1.5e-4), "1.5E-4");
        assert_eq!(java_double(-2.5), "-2.5");
        assert_eq!(java_double(1234567.0), "1234567.0");
    }

    #[test]
    fn java_strings_of_collections() {
        let v = serde_json::json!({"a": [1, "x", null], "b": 2.0});
        assert_eq!(java_string(&v), "{a=[1, x, null], b=2.0}");
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(values_equal(&serde_json::json!(1), &serde_json::json!(1.0)));
        assert!(values_equal(
            &serde_json::json!([1, {"a": 2}]),
            &serde_json::json!([1.0, {"a": 2}])
        ));
        assert!(!values_equal(
            &serde_json::json!("1"),
            &serde_json::json!(1)
        ));
    }
}
