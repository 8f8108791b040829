//! JSONata expressions for `TransformValue`, compiled once per flow revision.
//!
//! Backed by `jsonata-core`. Its compiled `Expression` holds `Rc`s and a
//! `OnceCell` (the lazily lowered bytecode), so it is neither `Send` nor
//! `Sync`, while a parsed flow is shared by every shard thread through an
//! `Arc`. So [`Jsonata`] is the checked source (parsed once at flow parse
//! time, which reports syntax errors), and each thread keeps its own compiled
//! copy in a thread-local cache, compiled on that thread's first evaluation.
//! After that, an evaluation costs one hash lookup plus the evaluation.
//!
//! Why jsonata-core rather than jsonata-rs 0.3: on 16 conformance-style
//! expressions it was right on all 16 (jsonata-rs lacks `$average` and
//! reorders object keys), and jsonata-rs ties each compiled expression to a
//! bump arena that grows with every evaluation, so it would be re-parsed per
//! run. On the seed expression, user CPU time on this (loaded, 2-core)
//! machine: jsonata-core's evaluate alone 4.6 µs; [`Jsonata::evaluate`]
//! (JSON in, JSON out, cache lookup) 7.2 µs; jsonata-rs with a parse per
//! run 51 µs.
//!
//! The cache is bounded by the live expressions: an entry holds a `Weak` to
//! its expression, and dead entries are purged when the cache grows past
//! [`CACHE_PURGE_AT`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jsonata_core::Expression;
use jsonata_core::evaluator::EvaluatorOptions;
use jsonata_core::value::{JArray, JMap, JValue};
use serde_json::{Map, Number, Value};

/// A JSONata error: a bad expression, or a failed evaluation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid JSONata expression: {0}")]
    Compile(String),
    #[error("JSONata evaluation failed: {0}")]
    Evaluate(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Purge dead cache entries once a thread's cache holds this many.
const CACHE_PURGE_AT: usize = 1024;

/// Evaluation depth limit. Evaluation runs inline on a shard thread, whose
/// stack must survive a runaway recursive expression: the crate's own cap
/// (30,000 levels) would overflow a 2 MiB thread stack first. 1,000 levels
/// (Kestra's default `maxDepth` is 50 recursive calls of JSONata functions)
/// fit in a 2 MiB stack with room to spare; see the `deep_recursion` test.
pub const MAX_DEPTH: usize = 1_000;

/// Longest sequence an evaluation may build, so that `[1..100000000]` fails
/// instead of eating the heap.
const MAX_SEQUENCE_LENGTH: usize = 10_000_000;

fn options(max_depth: usize) -> EvaluatorOptions {
    EvaluatorOptions {
        max_stack_depth: Some(max_depth.min(MAX_DEPTH)),
        max_sequence_length: Some(MAX_SEQUENCE_LENGTH),
        ..EvaluatorOptions::default()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A checked JSONata expression; `Send + Sync`, cheap to evaluate repeatedly.
#[derive(Debug)]
pub struct Jsonata {
    id: u64,
    source: String,
    max_depth: usize,
    /// Lets thread caches see whether this expression is still alive.
    alive: Arc<()>,
}

struct Cached {
    alive: Weak<()>,
    expression: Rc<Expression>,
}

thread_local! {
    static CACHE: RefCell<HashMap<u64, Cached>> = RefCell::new(HashMap::new());
}

impl Jsonata {
    /// Parses `source`; a syntax error is reported here, not at run time.
    #[cfg(test)]
    pub fn compile(source: &str) -> Result<Self> {
        Self::compile_with_max_depth(source, MAX_DEPTH)
    }

    /// Like [`Jsonata::compile`], with a lower evaluation depth limit
    /// (capped at [`MAX_DEPTH`]).
    pub fn compile_with_max_depth(source: &str, max_depth: usize) -> Result<Self> {
        let expression = Expression::compile_with_options(source, options(max_depth))
            .map_err(|e| Error::Compile(e.to_string()))?;
        let this = Jsonata {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            source: source.to_owned(),
            max_depth,
            alive: Arc::new(()),
        };
        // The compiling thread keeps its copy: often the one that runs it.
        this.insert(Rc::new(expression));
        Ok(this)
    }

    #[cfg(test)]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against `input`. An undefined result (no match) is `null`.
    #[cfg(test)]
    pub fn evaluate(&self, input: &Value) -> Result<Value> {
        self.run(&to_jvalue(input), crate::expression::Budget::DEFAULT_TIME)
    }

    /// Kestra's `TransformValue`: `from` is the rendered property. A string
    /// must hold JSON and is parsed first (straight into the evaluator's
    /// values, with no `serde_json::Value` in between); any other value is
    /// the input as it is.
    /// Evaluations stop after `time` (see [`Budget::time`]).
    pub fn transform(&self, from: &Value, time: Duration) -> Result<Value> {
        match from {
            Value::String(text) => {
                let data = JValue::from_json_str(text)
                    .map_err(|e| Error::Evaluate(format!("`from` is not valid JSON: {e}")))?;
                self.run(&data, time)
            }
            other => self.run(&to_jvalue(other), time),
        }
    }

    fn run(&self, data: &JValue, time: Duration) -> Result<Value> {
        let options = EvaluatorOptions {
            timeout_ms: Some(u64::try_from(time.as_millis()).unwrap_or(u64::MAX).max(1)),
            ..options(self.max_depth)
        };
        let out = self
            .compiled()?
            .evaluate_with_options(data, options)
            .map_err(|e| match e.to_string() {
                m if m.contains("D1012") => Error::Evaluate(format!(
                    "the expression ran longer than its budget of {time:?} \
                     (engine setting `expression.max-time`)"
                )),
                m => Error::Evaluate(m),
            })?;
        Ok(to_json(&out))
    }

    fn compiled(&self) -> Result<Rc<Expression>> {
        let hit = CACHE.with(|c| c.borrow().get(&self.id).map(|e| e.expression.clone()));
        if let Some(expression) = hit {
            return Ok(expression);
        }
        let expression = Rc::new(
            Expression::compile_with_options(&self.source, options(self.max_depth))
                .map_err(|e| Error::Compile(e.to_string()))?,
        );
        self.insert(expression.clone());
        Ok(expression)
    }

    fn insert(&self, expression: Rc<Expression>) {
        CACHE.with(|c| {
            let mut cache = c.borrow_mut();
            if cache.len() >= CACHE_PURGE_AT {
                cache.retain(|_, e| e.alive.strong_count() > 0);
            }
            cache.insert(
                self.id,
                Cached {
                    alive: Arc::downgrade(&self.alive),
                    expression,
                },
            );
        });
    }
}

/// Converts without cloning the input first (the crate's `From` takes it by
/// value); conversion costs about as much as a small evaluation.
fn to_jvalue(v: &Value) -> JValue {
    match v {
        Value::Null => JValue::Null,
        Value::Bool(b) => JValue::Bool(*b),
        Value::Number(n) => JValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => JValue::string(s.as_str()),
        Value::Array(items) => {
            // `flat` (no nested array) lets path steps skip a flattening pass.
            let flat = !items.iter().any(Value::is_array);
            JValue::Array(JArray::new_flat(
                items.iter().map(to_jvalue).collect(),
                flat,
            ))
        }
        Value::Object(map) => JValue::Object(Rc::new(
            map.iter()
                .map(|(k, v)| (k.clone(), to_jvalue(v)))
                .collect::<JMap>(),
        )),
    }
}

/// JSONata numbers are doubles; integral ones come back as JSON integers.
fn to_json(v: &JValue) -> Value {
    match v {
        JValue::Null | JValue::Undefined => Value::Null,
        JValue::Bool(b) => Value::Bool(*b),
        JValue::Number(n) => number(*n),
        JValue::String(s) => Value::String(s.to_string()),
        JValue::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        JValue::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<Map<String, Value>>(),
        ),
        // Functions and regexes have no JSON form (jsonata-js drops them).
        _ => Value::Null,
    }
}

fn number(n: f64) -> Value {
    // 2^53: beyond it a double no longer holds every integer exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= EXACT {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expression::Budget;
    use serde_json::json;

    fn eval(expr: &str, input: Value) -> Value {
        Jsonata::compile(expr)
            .expect("compiles")
            .evaluate(&input)
            .expect("evaluates")
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Jsonata>();
    }

    #[test]
    fn seed_expression() {
        let expr = r#"{
            "order_id": order_id,
            "customer_name": first_name & ' ' & last_name,
            "address": address.city & ', ' & address.country,
            "total_price": $sum(items.(quantity * price_per_unit))
        }"#;
        let order = json!({
            "order_id": 42, "first_name": "Ada", "last_name": "Lovelace",
            "address": {"city": "London", "country": "UK"},
            "items": [
                {"quantity": 2, "price_per_unit": 10.5},
                {"quantity": 1, "price_per_unit": 4}
            ]
        });
        assert_eq!(
            eval(expr, order),
            json!({"order_id": 42, "customer_name": "Ada Lovelace",
                   "address": "London, UK", "total_price": 25})
        );
    }

    #[test]
    fn common_functions() {
        let data = json!({"xs": [1, 2, 3, 4], "name": "a"});
        assert_eq!(eval("$sum(xs)", data.clone()), json!(10));
        assert_eq!(
            eval("$map(xs, function($v) { $v * 2 })", data.clone()),
            json!([2, 4, 6, 8])
        );
        assert_eq!(
            eval("$filter(xs, function($v) { $v > 2 })", data.clone()),
            json!([3, 4])
        );
        assert_eq!(eval("xs[$ > 3]", data.clone()), json!(4));
        assert_eq!(
            eval("name & '-' & $string(xs[0])", data.clone()),
            json!("a-1")
        );
        assert_eq!(eval("$count(xs) / 8", data.clone()), json!(0.5));
        assert_eq!(eval("missing", data), Value::Null);
    }

    #[test]
    fn syntax_error_at_compile() {
        assert!(matches!(Jsonata::compile("xs[ > "), Err(Error::Compile(_))));
    }

    #[test]
    fn transform_parses_json_text_like_kestra() {
        let j = Jsonata::compile("$sum(items.price)").expect("compiles");
        let text = Value::from(r#"{"items": [{"price": 2}, {"price": 3.5}]}"#);
        assert_eq!(
            j.transform(&text, Budget::DEFAULT_TIME).expect("evaluates"),
            json!(5.5)
        );
        let typed = json!({"items": [{"price": 1}]});
        assert_eq!(
            j.transform(&typed, Budget::DEFAULT_TIME)
                .expect("evaluates"),
            json!(1)
        );
        assert!(matches!(
            j.transform(&Value::from("not json"), Budget::DEFAULT_TIME),
            Err(Error::Evaluate(m)) if m.contains("not valid JSON")
        ));
    }

    #[test]
    fn a_runaway_expression_stops_at_its_time_budget() {
        // A tail-recursive loop that never ends: no depth limit stops it.
        let j = Jsonata::compile("($f := function($n) { $f($n + 1) }; $f(0))").expect("compiles");
        let out = j.transform(&Value::Null, Duration::from_millis(200));
        assert!(
            matches!(&out, Err(Error::Evaluate(m)) if m.contains("budget of 200ms")),
            "{out:?}"
        );
    }

    #[test]
    fn deep_recursion_fails_cleanly_on_a_default_thread_stack() {
        // std's default spawned-thread stack (2 MiB), like a shard thread.
        let out = std::thread::spawn(|| {
            let j = Jsonata::compile(
                "($f := function($n) { $n = 0 ? 0 : 1 + $f($n - 1) }; $f(100000))",
            )
            .expect("compiles");
            j.evaluate(&Value::Null)
        })
        .join()
        .expect("no stack overflow");
        assert!(matches!(out, Err(Error::Evaluate(_))), "{out:?}");
        let shallow =
            Jsonata::compile("($f := function($n) { $n = 0 ? 0 : 1 + $f($n - 1) }; $f(20))")
                .expect("compiles");
        assert_eq!(
            shallow.evaluate(&Value::Null).expect("evaluates"),
            json!(20)
        );
    }

    #[test]
    fn huge_sequences_fail() {
        let j = Jsonata::compile("$count([1..100000000].($ * 2))").expect("compiles");
        assert!(j.evaluate(&Value::Null).is_err());
    }

    #[test]
    fn evaluates_on_other_threads() {
        let j = Arc::new(Jsonata::compile("a + 1").expect("compiles"));
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let j = j.clone();
                std::thread::spawn(move || j.evaluate(&json!({ "a": i })).expect("evaluates"))
            })
            .collect();
        let got: Vec<Value> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        assert_eq!(got, vec![json!(1), json!(2), json!(3)]);
    }
}
