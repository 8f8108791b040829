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
//!
//! An evaluation runs on the budget of every other expression (see
//! [`Limits`]). jsonata-core counts no steps, but it polls a cancel flag at
//! every node it evaluates and every pass of its loops, so the evaluation
//! runs under a [`memory::watch`]: each allocation it makes is one step,
//! and the allocator raises the flag when the steps are gone or when the
//! evaluation holds more than its memory budget. A replay of the same
//! evaluation allocates the same, so it stops at the same step. To keep it
//! so, what jsonata-core builds once and keeps (a thread's copy of the
//! expression and its bytecode, the process's table of function
//! signatures) is built before the first watch, not inside one (see
//! [`prime`]). One cache is left: the crate checks the arguments of every
//! function call with a regex, and a thread's first use of one (or a use
//! while another thread holds its matching state) builds that state, a few
//! tens of allocations, once per function per thread. So a first
//! evaluation on a thread may spend a few tens of steps more than the next
//! ones, which only matters to an evaluation that ends that close to its
//! budget: the runaways the budget is for spend all of it. The crate's
//! clock (`timeout_ms`) stays on as a backstop only.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use jsonata_core::Expression;
use jsonata_core::evaluator::{CancelToken, EvaluatorOptions};
use jsonata_core::value::{JArray, JMap, JValue};
use serde_json::{Map, Number, Value};

use crate::expression::Budget;
use crate::memory::{self, Tripped, Tripwire};

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

/// What one evaluation may spend.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Steps left to spend: one per allocation the evaluation makes.
    pub steps: u64,
    /// The whole step budget these steps are left of, for the message.
    pub budget_steps: u64,
    /// Heap the evaluation may hold above what its thread held before.
    /// Seen at every allocation, but the evaluation stops only at its next
    /// node: one builtin call runs to its end first (`$pad("", 5e8, "x")`
    /// builds its 500 MB string, in 2.5 s, before it fails).
    pub memory_bytes: usize,
    /// Size of the result, as JSON.
    pub output_bytes: usize,
    /// Wall-clock time: a backstop, for a loop that would run without
    /// allocating (none is known; every call and sequence allocates), and
    /// for a binary without the counting allocator. It must sit well above
    /// what the steps take, or it stops runaways first, at a point a replay
    /// does not reproduce: a tail-recursive runaway spent 10 million steps
    /// in 0.98 s here (release build, idle 2-core machine).
    pub time: Duration,
}

impl Limits {
    /// The whole of `budget`, for one evaluation.
    pub fn of(budget: Budget) -> Self {
        Self {
            steps: budget.steps,
            budget_steps: budget.steps,
            memory_bytes: budget.memory_bytes,
            output_bytes: budget.output_bytes,
            time: budget.time,
        }
    }
}

/// What an evaluation gave and what it spent.
#[derive(Debug)]
pub struct Ran {
    pub value: Result<Value>,
    /// Steps spent: all that were left, if they ran out.
    #[allow(
        dead_code,
        reason = "for a caller that charges them; TransformValue has no meter to charge"
    )]
    pub steps: u64,
}

impl Ran {
    fn failed(e: Error) -> Self {
        Self {
            value: Err(e),
            steps: 0,
        }
    }
}

// SAFETY: `CancelToken::cancel` is one relaxed store to the `AtomicBool` its
// `Arc` shares (jsonata-core 2.2, `evaluator.rs`): it neither allocates nor
// unwinds, and starts no watch.
unsafe impl Tripwire for CancelToken {
    fn trip(&self) {
        self.cancel();
    }
}

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

    /// Evaluates against `input`, on the default budget. An undefined
    /// result (no match) is `null`.
    #[cfg(test)]
    pub fn evaluate(&self, input: &Value) -> Result<Value> {
        self.run(&to_jvalue(input), Limits::of(Budget::default()))
            .value
    }

    /// Kestra's `TransformValue`: `from` is the rendered property. A string
    /// must hold JSON and is parsed first (straight into the evaluator's
    /// values, with no `serde_json::Value` in between); any other value is
    /// the input as it is. The evaluation spends at most `limits`; reading
    /// `from`, bounded by the render that made it, spends nothing.
    pub fn transform(&self, from: &Value, limits: Limits) -> Ran {
        match from {
            Value::String(text) => match JValue::from_json_str(text) {
                Ok(data) => self.run(&data, limits),
                Err(e) => Ran::failed(Error::Evaluate(format!("`from` is not valid JSON: {e}"))),
            },
            other => self.run(&to_jvalue(other), limits),
        }
    }

    fn run(&self, data: &JValue, limits: Limits) -> Ran {
        let expression = match self.compiled() {
            Ok(expression) => expression,
            Err(e) => return Ran::failed(e),
        };
        // A fresh token each time: a cancelled one cannot be reset.
        let token = CancelToken::new();
        let options = EvaluatorOptions {
            timeout_ms: Some(
                u64::try_from(limits.time.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            ),
            cancel: Some(token.clone()),
            ..options(self.max_depth)
        };
        let Some((out, watched)) = memory::watch(limits.steps, limits.memory_bytes, &token, || {
            expression.evaluate_with_options(data, options)
        }) else {
            // Only evaluations start watches, and they do not nest.
            return Ran::failed(Error::Evaluate(
                "a JSONata evaluation cannot run inside another".to_owned(),
            ));
        };
        // A trip wins over what the evaluation returned: a builtin that was
        // running when it happened (`$string` of a long array) returns its
        // result, and the evaluation may end with it.
        let value = match watched.tripped {
            Some(Tripped::OutOfFuel) => Err(Error::Evaluate(crate::expression::out_of_steps(
                limits.budget_steps,
            ))),
            Some(Tripped::OutOfMemory) => Err(Error::Evaluate(format!(
                "The JSONata expression held more than its budget of {} bytes of memory \
                 (engine setting `expression.max-memory`)",
                limits.memory_bytes
            ))),
            None => out
                .map_err(|e| match e.to_string() {
                    m if m.contains("D1012") => Error::Evaluate(format!(
                        "the expression ran longer than its budget of {:?} \
                         (engine setting `expression.max-time`)",
                        limits.time
                    )),
                    m => Error::Evaluate(m),
                })
                .and_then(|out| {
                    // Measured before it is converted: values share their
                    // parts (`[1..1000].$$` is a thousand references to the
                    // input), so the JSON can be far larger than the heap
                    // the evaluation held.
                    let size = json_size(&out, limits.output_bytes);
                    if size > limits.output_bytes {
                        return Err(Error::Evaluate(crate::expression::too_large(
                            size,
                            limits.output_bytes,
                        )));
                    }
                    Ok(to_json(&out))
                }),
        };
        Ran {
            value,
            steps: watched.spent,
        }
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

    /// Keeps `expression` as this thread's copy, primed (see [`prime`]).
    fn insert(&self, expression: Rc<Expression>) {
        prime(&expression);
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

/// Builds, outside any watch, what jsonata-core builds on an expression's
/// first evaluation and keeps, so that no evaluation spends steps on it:
/// the expression's bytecode, lowered before anything is evaluated (so an
/// evaluation whose token is already cancelled builds it and stops), and,
/// once per process, the tables the crate builds on first use (the
/// signatures of its functions, checked at every call, about 10,000
/// allocations; the regexes and words of a few of them). A replay in a
/// fresh process then spends what the first run did, but for the regexes'
/// matching state (see the module docs).
fn prime(expression: &Expression) {
    static TABLES: Once = Once::new();
    TABLES.call_once(|| {
        const TABLES_USED: &str = r#"[$string(1), $trim(" a "), $fromMillis(0),
            $toMillis("1970-01-01T00:00:00.000Z"), $formatInteger(21, "w"),
            $parseInteger("twenty-one", "w")]"#;
        if let Ok(e) = Expression::compile(TABLES_USED) {
            let _ = e.evaluate(&JValue::Null);
        }
    });
    let cancelled = CancelToken::new();
    cancelled.cancel();
    let options = EvaluatorOptions {
        cancel: Some(cancelled),
        ..EvaluatorOptions::default()
    };
    let _ = expression.evaluate_with_options(&JValue::Null, options);
}

/// About the size of `value` as [`to_json`] converts it, counted as
/// [`crate::expression::json_size`] counts JSON, until it passes `limit`
/// (so a huge value costs no more than `limit` to measure).
fn json_size(value: &JValue, limit: usize) -> usize {
    fn walk(value: &JValue, total: &mut usize, limit: usize) {
        if *total > limit {
            return;
        }
        match value {
            JValue::Bool(_) => *total += 5,
            JValue::Number(_) => *total += 8,
            JValue::String(s) => *total += s.len() + 2,
            JValue::Array(items) => {
                *total += 2 + items.len();
                for item in items.iter() {
                    walk(item, total, limit);
                }
            }
            JValue::Object(map) => {
                *total += 2;
                for (k, v) in map.iter() {
                    *total += k.len() + 4;
                    walk(v, total, limit);
                }
            }
            // Null, and what converts to it.
            _ => *total += 4,
        }
    }
    let mut total = 0;
    walk(value, &mut total, limit);
    total
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
    use serde_json::json;

    fn eval(expr: &str, input: Value) -> Value {
        Jsonata::compile(expr)
            .expect("compiles")
            .evaluate(&input)
            .expect("evaluates")
    }

    const SEED: &str = r#"{
        "order_id": order_id,
        "customer_name": first_name & ' ' & last_name,
        "address": address.city & ', ' & address.country,
        "total_price": $sum(items.(quantity * price_per_unit))
    }"#;

    fn order() -> Value {
        json!({
            "order_id": 42, "first_name": "Ada", "last_name": "Lovelace",
            "address": {"city": "London", "country": "UK"},
            "items": [
                {"quantity": 2, "price_per_unit": 10.5},
                {"quantity": 1, "price_per_unit": 4}
            ]
        })
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Jsonata>();
    }

    #[test]
    fn seed_expression() {
        assert_eq!(
            eval(SEED, order()),
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
        let limits = Limits::of(Budget::default());
        let text = Value::from(r#"{"items": [{"price": 2}, {"price": 3.5}]}"#);
        assert_eq!(
            j.transform(&text, limits).value.expect("evaluates"),
            json!(5.5)
        );
        let typed = json!({"items": [{"price": 1}]});
        assert_eq!(
            j.transform(&typed, limits).value.expect("evaluates"),
            json!(1)
        );
        assert!(matches!(
            j.transform(&Value::from("not json"), limits).value,
            Err(Error::Evaluate(m)) if m.contains("not valid JSON")
        ));
    }

    /// The default budget with `steps` and ten minutes: no clock stops
    /// these evaluations.
    fn steps(steps: u64) -> Limits {
        Limits {
            steps,
            budget_steps: steps,
            time: Duration::from_secs(600),
            ..Limits::of(Budget::default())
        }
    }

    fn message(ran: &Ran) -> &str {
        match &ran.value {
            Err(Error::Evaluate(m)) => m,
            other => panic!("not an evaluation error: {other:?}"),
        }
    }

    #[test]
    fn runaway_expressions_stop_at_their_step_budget() {
        for source in [
            // Tail-recursive: no depth limit stops it.
            "($f := function($n) { $f($n + 1) }; $f(0))",
            "$reduce([1..1000000], function($a, $b) { $a + $b })",
            r#"$reduce([1..1000000], function($a, $b) { $a & "xx" })"#,
            r#"$map([1..1000000], function($v) { {"a": $v} })"#,
            "$count([1..1000000].$string($))",
        ] {
            let j = Jsonata::compile(source).expect("compiles");
            let first = j.transform(&Value::Null, steps(100_000));
            assert!(
                message(&first).contains("budget of 100000 evaluation steps"),
                "{source}: {first:?}"
            );
            assert_eq!(first.steps, 100_000, "{source} spent its whole budget");
            // A replay stops at the same step, the same way.
            let again = j.transform(&Value::Null, steps(100_000));
            assert_eq!(message(&again), message(&first), "{source}");
            assert_eq!(again.steps, first.steps, "{source}");
        }
    }

    #[test]
    fn an_honest_expression_spends_a_few_steps_the_same_each_time() {
        // On a thread of its own, whose first evaluation compiles the
        // expression there, as a shard's first one does.
        let j = Arc::new(Jsonata::compile(SEED).expect("compiles"));
        let runs = std::thread::spawn({
            let j = j.clone();
            move || {
                let limits = Limits::of(Budget::default());
                [(); 3].map(|()| j.transform(&order(), limits))
            }
        })
        .join()
        .expect("thread");
        let want = json!({"order_id": 42, "customer_name": "Ada Lovelace",
                          "address": "London, UK", "total_price": 25});
        for ran in &runs {
            assert_eq!(ran.value.as_ref().expect("evaluates"), &want);
        }
        let [first, second, third] = runs.map(|ran| ran.steps);
        assert!(second > 0 && second < 1_000, "spent {second}");
        assert_eq!(second, third);
        // The first also fills the thread's matching state of the regex
        // that checks `$sum`'s arguments (see the module docs).
        assert!(first >= second && first < second + 100, "{first}, {second}");
        // Another thread, once past its first, spends the same.
        let _ = j.transform(&order(), steps(1_000_000));
        let spent = j.transform(&order(), steps(1_000_000)).steps;
        assert_eq!(spent, second);
        // What it spends is exactly what it needs.
        assert!(j.transform(&order(), steps(spent)).value.is_ok());
        let short = j.transform(&order(), steps(spent - 1));
        assert!(
            message(&short).contains(&format!("budget of {} evaluation steps", spent - 1)),
            "{short:?}"
        );
        assert_eq!(short.steps, spent - 1);
        // Steps left of a larger budget: the message names the budget.
        let left = Limits {
            steps: spent - 1,
            ..steps(1_000_000)
        };
        assert!(
            message(&j.transform(&order(), left)).contains("budget of 1000000 evaluation steps")
        );
    }

    #[test]
    fn an_expression_that_holds_too_much_memory_fails() {
        let small = Limits {
            memory_bytes: 8 << 20,
            ..steps(Budget::DEFAULT_STEPS)
        };
        for source in [
            // Each pass doubles the string: the thirtieth would hold 2 GiB.
            r#"$reduce([1..30], function($a, $b) { $a & $a }, "ab")"#,
            "[1..1000000]",
            "$map([1..100000], function($v) { [$v, $v, $v] })",
        ] {
            let j = Jsonata::compile(source).expect("compiles");
            let ran = j.transform(&Value::Null, small);
            assert!(
                message(&ran).contains("budget of 8388608 bytes of memory"),
                "{source}: {ran:?}"
            );
            assert!(ran.steps < 1_000_000, "{source}: spent {}", ran.steps);
        }
        // Memory freed as it goes does not count.
        let j = Jsonata::compile("$sum([1..20000].$length($string($)))").expect("compiles");
        let ran = j.transform(&Value::Null, small);
        assert!(ran.value.is_ok(), "{ran:?}");
    }

    #[test]
    fn results_over_the_output_budget_fail() {
        let small = Limits {
            output_bytes: 10_000,
            ..Limits::of(Budget::default())
        };
        let j = Jsonata::compile("[1..5000]").expect("compiles");
        let ran = j.transform(&Value::Null, small);
        assert!(message(&ran).contains("budget of 10000 bytes"), "{ran:?}");
        let fits = Jsonata::compile("[1..100]").expect("compiles");
        assert!(fits.transform(&Value::Null, small).value.is_ok());
        // A result that shares its parts is measured as the JSON it makes,
        // not as the little heap it holds.
        let input = json!({ "s": "x".repeat(1_000) });
        let shared = Jsonata::compile("[1..1000].$$").expect("compiles");
        let ran = shared.transform(&input, small);
        assert!(message(&ran).contains("budget of 10000 bytes"), "{ran:?}");
    }

    #[test]
    fn the_result_is_measured_as_json_is() {
        let value = json!({"a": [1, 2.5, "three", null, true], "b": {"c": []}});
        assert_eq!(
            json_size(&to_jvalue(&value), usize::MAX),
            crate::expression::json_size(&value, usize::MAX)
        );
    }

    #[test]
    fn the_clock_is_a_backstop() {
        // With steps and memory unbounded, only the clock stops this one.
        let j = Jsonata::compile("($f := function($n) { $f($n + 1) }; $f(0))").expect("compiles");
        let limits = Limits {
            steps: u64::MAX,
            budget_steps: u64::MAX,
            memory_bytes: usize::MAX,
            output_bytes: usize::MAX,
            time: Duration::from_millis(200),
        };
        let ran = j.transform(&Value::Null, limits);
        assert!(message(&ran).contains("budget of 200ms"), "{ran:?}");
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
