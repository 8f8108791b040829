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
//! The cache is bounded by the live expressions: an entry holds a `Weak` to
//! its expression, and dead entries are purged when the cache grows past
//! [`CACHE_PURGE_AT`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};

use jsonata_core::Expression;
use jsonata_core::value::JValue;
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

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A checked JSONata expression; `Send + Sync`, cheap to evaluate repeatedly.
#[derive(Debug)]
pub struct Jsonata {
    id: u64,
    source: String,
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
    pub fn compile(source: &str) -> Result<Self> {
        let expression = Expression::compile(source).map_err(|e| Error::Compile(e.to_string()))?;
        let this = Jsonata {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            source: source.to_owned(),
            alive: Arc::new(()),
        };
        // The compiling thread keeps its copy: often the one that runs it.
        this.insert(Rc::new(expression));
        Ok(this)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against `input`. An undefined result (no match) is `null`.
    pub fn evaluate(&self, input: &Value) -> Result<Value> {
        let expression = self.compiled()?;
        let data = JValue::from(input.clone());
        let out = expression
            .evaluate(&data)
            .map_err(|e| Error::Evaluate(e.to_string()))?;
        Ok(to_json(&out))
    }

    fn compiled(&self) -> Result<Rc<Expression>> {
        let hit = CACHE.with(|c| c.borrow().get(&self.id).map(|e| e.expression.clone()));
        if let Some(expression) = hit {
            return Ok(expression);
        }
        let expression =
            Rc::new(Expression::compile(&self.source).map_err(|e| Error::Compile(e.to_string()))?);
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
