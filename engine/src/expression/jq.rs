//! The `jq` filter, run by the jaq crates.
//!
//! Kestra's `jq` filter returns the list of every output of the program.
//! Programs given as literals are compiled once, with the template.
//!
//! A program runs on a budget of steps: jaq looks its lookup table up
//! through our [`Metered`] data each time it evaluates a term, and that
//! lookup spends one step. When none are left, the lookup unwinds out of
//! jaq (`resume_unwind`, which skips the panic hook) to [`JqProgram::run`],
//! which reports it as the task's error; so does a lookup that finds the
//! thread's stack nearly exhausted. jaq's crates forbid unsafe code,
//! so unwinding through them only drops what they hold. `range`, a native
//! loop in jaq that never looks the table up, is replaced by one that pays
//! a step per item.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, DataT, Lut, Vars};
use jaq_json::Val;
use serde_json::Value;

/// The data kind our programs run on: plain JSON values and the metered
/// lookup table. A unit type of our own keeps compiled programs
/// `Send + Sync`.
struct JqData;

impl DataT for JqData {
    type V<'a> = Val;
    type Data<'a> = Metered<'a>;
}

/// The lookup table and the steps left: each lookup is one step. Every
/// few steps it also looks at the stack left and at the heap the run holds.
#[derive(Clone)]
struct Metered<'a> {
    lut: &'a Lut<JqData>,
    left: &'a Cell<u64>,
    /// The thread's heap count when the run started, and the most it may
    /// grow by.
    held_at_start: i64,
    memory_bytes: i64,
    /// The stack left when the run started: the run may use at most
    /// [`STACK_PER_RUN`] of it, whatever the thread has.
    stack_at_start: usize,
}

/// The unwind payload of a program out of steps.
struct OutOfSteps;

/// The unwind payload of a program that recursed until the thread's stack
/// was nearly gone (jaq recurses on the thread's stack: `def f: [f]; f`
/// would otherwise overflow it, which aborts the process).
struct OutOfStack;

/// The unwind payload of a program that held more heap than its budget.
struct OutOfMemory;

/// Stack a program must leave untouched: more than any run of
/// [`STACK_CHECK_EVERY`] steps takes, in a debug build.
const STACK_RED_ZONE: usize = 512 << 10;
/// Stack one run's evaluation may take, on a thread with more: recursion
/// past it is a runaway (the shard threads have large stacks, for the
/// values such runs leave, see `EVAL_STACK_BYTES`).
const STACK_PER_RUN: usize = 8 << 20;
/// Steps between two looks at the stack (a look costs a few nanoseconds).
const STACK_CHECK_EVERY: u64 = 16;

impl<'a> jaq_core::data::HasLut<'a, JqData> for Metered<'a> {
    fn lut(&self) -> &'a Lut<JqData> {
        match self.left.get().checked_sub(1) {
            Some(left) => self.left.set(left),
            None => resume_unwind(Box::new(OutOfSteps)),
        }
        if self.left.get().is_multiple_of(STACK_CHECK_EVERY) {
            if stacker::remaining_stack().is_some_and(|left| {
                left < STACK_RED_ZONE || self.stack_at_start.saturating_sub(left) > STACK_PER_RUN
            }) {
                resume_unwind(Box::new(OutOfStack));
            }
            if crate::memory::held_here().saturating_sub(self.held_at_start) > self.memory_bytes {
                resume_unwind(Box::new(OutOfMemory));
            }
        }
        self.lut
    }
}

/// jaq's native `range/3`, each item paid for with a lookup (one step): the
/// same outputs (`$from`, then `+ $by` while short of `$to`, forever when
/// `$by` is 0 and `$to` is never met).
fn metered_range<'a>(mut cv: jaq_core::Cv<'a, JqData>) -> jaq_core::ValXs<'a, Val> {
    use jaq_core::data::HasLut;
    use std::cmp::Ordering::{Equal, Greater, Less};
    let data = cv.0.data().clone();
    let by = cv.0.pop_var();
    let to = cv.0.pop_var();
    let from = cv.0.pop_var();
    let direction = by.partial_cmp(&Val::from(0isize)).unwrap_or(Equal);
    let mut next: Option<jaq_core::ValX<'a, Val>> = Some(Ok(from));
    Box::new(std::iter::from_fn(move || {
        data.lut();
        match next.take()? {
            Ok(x) => {
                let more = match direction {
                    Greater => x < to,
                    Less => x > to,
                    Equal => x != to,
                };
                if !more {
                    return None;
                }
                next = Some((x.clone() + by.clone()).map_err(jaq_core::Exn::from));
                Some(Ok(x))
            }
            // The error is the last output.
            Err(e) => Some(Err(e)),
        }
    }))
}

/// `fromjson`, read by serde_json, whose parser stops at 128 levels of
/// nesting (jaq's recursed as deep as the text went: 200,000 `[` overflowed
/// the thread's stack). Every JSON value in the string is an output, as in
/// jaq; text that is not JSON is an error naming the parser's complaint.
fn bounded_fromjson<'a>(cv: jaq_core::Cv<'a, JqData>) -> jaq_core::ValXs<'a, Val> {
    let fail = |m: String| jaq_core::Exn::from(jaq_core::Error::str(m));
    let text = match from_jaq_checked(&cv.1, 0) {
        Ok(Value::String(text)) => text,
        Ok(other) => {
            let m = format!("{other} cannot be parsed as JSON: it is not a string");
            return Box::new(std::iter::once(Err(fail(m))));
        }
        Err(m) => return Box::new(std::iter::once(Err(fail(m)))),
    };
    let values: Vec<_> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(|v| {
            v.map(|v| to_jaq(&v))
                .map_err(|e| fail(format!("{text:?} cannot be parsed as JSON: {e}")))
        })
        .collect();
    Box::new(values.into_iter())
}

/// What one run may spend: the steps left to the render it is part of, and
/// the size of its outputs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub steps: u64,
    pub output_bytes: usize,
    /// Heap the run may hold (`Budget::memory_bytes`).
    pub memory_bytes: usize,
    /// The render's whole step budget, for the message.
    pub budget_steps: u64,
}

/// What a run gave and what it spent.
#[derive(Debug)]
pub(crate) struct Ran {
    pub outputs: Result<Vec<Value>, String>,
    pub steps: u64,
}

/// Native jq functions a template must not reach: the process environment
/// (it holds secrets) and stdin. `halt` is harmless here: its exception is
/// reported as an error, the process never exits.
const DENIED: &[&str] = &["env", "input", "inputs"];

/// Native jq functions replaced by ours (see `metered_range` and
/// `bounded_fromjson`).
const REPLACED: &[&str] = &["range", "fromjson"];

/// Upper bound on the outputs kept from one run, so a program such as
/// `range(1e12)` cannot exhaust memory.
const MAX_OUTPUTS: usize = 100_000;

/// A compiled jq program.
pub(crate) struct JqProgram {
    filter: jaq_core::Filter<JqData>,
}

impl std::fmt::Debug for JqProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JqProgram")
    }
}

impl JqProgram {
    pub(crate) fn compile(code: &str) -> Result<Self, String> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs::<JqData>()
            .chain(jaq_std::funs::<JqData>())
            .chain(jaq_json::funs::<JqData>())
            .filter(|(name, _, _)| !DENIED.contains(name) && !REPLACED.contains(name))
            .chain([
                (
                    "range",
                    jaq_core::native::v(3),
                    jaq_core::Native::<JqData>::new(metered_range),
                ),
                (
                    "fromjson",
                    jaq_core::native::v(0),
                    jaq_core::Native::<JqData>::new(bounded_fromjson),
                ),
            ]);
        let arena = Arena::default();
        let loader = Loader::new(defs);
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errs| format!("Invalid jq expression '{code}': {} error(s)", errs.len()))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| {
                let undefined: Vec<String> = errs
                    .iter()
                    .flat_map(|(_, es)| es.iter().map(|(name, _)| (*name).to_owned()))
                    .collect();
                format!(
                    "Invalid jq expression '{code}': undefined {}",
                    undefined.join(", ")
                )
            })?;
        Ok(Self { filter })
    }

    /// Runs the program on `input`, returning every output, within `limits`.
    pub(crate) fn run(&self, input: &Value, limits: Limits) -> Ran {
        let left = Cell::new(limits.steps);
        let outputs = catch_unwind(AssertUnwindSafe(|| self.outputs(input, limits, &left)))
            .unwrap_or_else(|payload| {
                if payload.is::<OutOfSteps>() {
                    Err(super::out_of_steps(limits.budget_steps))
                } else if payload.is::<OutOfMemory>() {
                    Err(format!(
                        "The jq expression held more than its budget of {} bytes of memory \
                         (engine setting `expression.max-memory`)",
                        limits.memory_bytes
                    ))
                } else if payload.is::<OutOfStack>() {
                    Err(
                        "The jq expression recursed too deeply: it would have exhausted \
                         the thread's stack"
                            .to_owned(),
                    )
                } else {
                    // Not ours: a bug in jaq, to be seen as such.
                    resume_unwind(payload)
                }
            });
        Ran {
            outputs,
            steps: limits.steps - left.get(),
        }
    }

    fn outputs(
        &self,
        input: &Value,
        limits: Limits,
        left: &Cell<u64>,
    ) -> Result<Vec<Value>, String> {
        let data = Metered {
            lut: &self.filter.lut,
            left,
            held_at_start: crate::memory::held_here(),
            memory_bytes: i64::try_from(limits.memory_bytes).unwrap_or(i64::MAX),
            stack_at_start: stacker::remaining_stack().unwrap_or(usize::MAX),
        };
        let ctx = Ctx::<JqData>::new(data, Vars::new([]));
        let mut out = Vec::new();
        let mut size = 0;
        for item in self.filter.id.run((ctx, to_jaq(input))) {
            if out.len() >= MAX_OUTPUTS {
                return Err(format!("jq produced more than {MAX_OUTPUTS} outputs"));
            }
            match item {
                Ok(v) => {
                    let v = from_jaq_checked(&v, 0)?;
                    size += super::json_size(&v, limits.output_bytes);
                    if size > limits.output_bytes {
                        return Err(super::too_large(size, limits.output_bytes));
                    }
                    out.push(v);
                }
                Err(exn) => {
                    return Err(match exn.get_err() {
                        Ok(err) => format!("jq error: {err}"),
                        Err(_) => "jq program stopped".to_owned(),
                    });
                }
            }
        }
        Ok(out)
    }
}

fn to_jaq(value: &Value) -> Val {
    match value {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => match n.as_i64().and_then(|i| isize::try_from(i).ok()) {
            Some(i) => Val::from(i),
            None => Val::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Val::from(s.clone()),
        Value::Array(items) => items.iter().map(to_jaq).collect(),
        Value::Object(map) => Val::obj(
            map.iter()
                .map(|(k, v)| (Val::from(k.clone()), to_jaq(v)))
                .collect(),
        ),
    }
}

/// Nesting a jq output may have: what serde_json reads back (a deeper value
/// could not be journaled, served or parsed again).
const MAX_DEPTH: usize = 128;

/// `value` as JSON, or an error if it nests deeper than [`MAX_DEPTH`].
fn from_jaq_checked(value: &Val, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "The jq expression's result nests deeper than {MAX_DEPTH} levels"
        ));
    }
    Ok(match value {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Arr(items) => Value::Array(
            items
                .iter()
                .map(|v| from_jaq_checked(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Val::Obj(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match from_jaq_checked(k, depth + 1)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    Ok((key, from_jaq_checked(v, depth + 1)?))
                })
                .collect::<Result<_, String>>()?,
        ),
        // Numbers and strings print as JSON; reading them back keeps integers
        // integral and strings unescaped.
        other => {
            let text = other.to_string();
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expression::Budget;
    use serde_json::json;

    fn limits(steps: u64) -> Limits {
        Limits {
            steps,
            output_bytes: Budget::DEFAULT_OUTPUT_BYTES,
            memory_bytes: Budget::DEFAULT_MEMORY_BYTES,
            budget_steps: steps,
        }
    }

    impl JqProgram {
        fn run_default(&self, input: &Value) -> Result<Vec<Value>, String> {
            self.run(input, limits(Budget::DEFAULT_STEPS)).outputs
        }
    }

    #[test]
    fn runs_and_collects_every_output() {
        let p = JqProgram::compile(".[] | .a").expect("compiles");
        let out = p
            .run_default(&json!([{"a": 1}, {"a": "x"}, {"a": [1.5]}]))
            .expect("runs");
        assert_eq!(out, vec![json!(1), json!("x"), json!([1.5])]);
    }

    #[test]
    fn std_functions_are_there_but_env_is_not() {
        let p = JqProgram::compile("map(. * 2) | add").expect("compiles");
        assert_eq!(p.run_default(&json!([1, 2])).expect("runs"), vec![json!(6)]);
        assert!(JqProgram::compile("env").is_err());
        assert!(JqProgram::compile(".[").is_err());
    }

    #[test]
    fn runtime_errors_are_reported() {
        let p = JqProgram::compile(".a").expect("compiles");
        assert!(p.run_default(&json!([1])).is_err());
    }

    #[test]
    fn compiled_programs_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<JqProgram>();
    }

    #[test]
    fn range_keeps_jq_semantics() {
        let cases = [
            ("[range(5)]", json!([0, 1, 2, 3, 4])),
            ("[range(2; 5)]", json!([2, 3, 4])),
            ("[range(0; 10; 3)]", json!([0, 3, 6, 9])),
            ("[range(5; 0; -2)]", json!([5, 3, 1])),
            ("[range(0; 1; 0.25)]", json!([0, 0.25, 0.5, 0.75])),
            ("[range(3; 1)]", json!([])),
            (
                "[range(0, 1; 3, 4)]",
                json!([0, 1, 2, 0, 1, 2, 3, 1, 2, 1, 2, 3]),
            ),
            ("[range(1000000)] | length", json!(1_000_000)),
        ];
        for (code, want) in cases {
            let p = JqProgram::compile(code).expect("compiles");
            assert_eq!(p.run_default(&Value::Null), Ok(vec![want]), "{code}");
        }
    }

    #[test]
    fn runaway_programs_stop_at_their_step_budget() {
        for code in [
            "[recurse(. + 1)] | length",
            "[limit(100000000; repeat(1))] | length",
            "[range(1e12)] | length",
            "[range(0; 1; 0)] | length",
            "def f: f; f",
            "last(range(1e12))",
            "reduce range(1e12) as $x (0; . + $x)",
        ] {
            let p = JqProgram::compile(code).expect("compiles");
            let ran = p.run(&json!(1), limits(1_000_000));
            let err = ran.outputs.expect_err(code);
            assert!(
                err.contains("budget of 1000000 evaluation steps"),
                "{code}: {err}"
            );
            assert_eq!(ran.steps, 1_000_000, "{code} spent its whole budget");
        }
        // An honest program spends what it needs and no more.
        let p = JqProgram::compile("map(. * 2) | add").expect("compiles");
        let ran = p.run(&json!([1, 2, 3]), limits(1_000_000));
        assert_eq!(ran.outputs, Ok(vec![json!(12)]));
        assert!(ran.steps > 0 && ran.steps < 1_000, "spent {}", ran.steps);
    }

    #[test]
    fn runaway_recursion_fails_before_the_stack_overflows() {
        for code in ["def f: [f]; f", "def f: 1 + f; f", "def f: f | f; f"] {
            let p = JqProgram::compile(code).expect("compiles");
            let err = p.run_default(&json!(1)).expect_err("fails");
            assert!(err.contains("recursed too deeply"), "{code}: {err}");
        }
        // Recursion that ends is fine.
        let p =
            JqProgram::compile("def f: if . < 200 then . + 1 | f else . end; f").expect("compiles");
        assert_eq!(p.run_default(&json!(0)).expect("runs"), vec![json!(200)]);
    }

    #[test]
    fn a_program_that_holds_too_much_memory_fails_in_a_few_steps() {
        // Each doubling is one step: forty would be a terabyte.
        let p = JqProgram::compile(r#"reduce range(40) as $i ("a"; . + .) | length"#)
            .expect("compiles");
        let limits = Limits {
            memory_bytes: 8 << 20,
            ..limits(Budget::DEFAULT_STEPS)
        };
        let ran = p.run(&json!(null), limits);
        let err = ran.outputs.expect_err("over its memory budget");
        assert!(err.contains("budget of 8388608 bytes of memory"), "{err}");
        assert!(ran.steps < 1000, "stopped within steps: {}", ran.steps);
        // Memory it frees as it goes does not count: a long loop over small
        // values is fine.
        let p =
            JqProgram::compile(r#"[range(200000) | tostring | length] | add"#).expect("compiles");
        let ran = p.run(&json!(null), limits);
        assert!(ran.outputs.is_ok(), "{:?}", ran.outputs);
    }

    #[test]
    fn fromjson_reads_json_and_refuses_deep_nesting() {
        let p = JqProgram::compile(r#""[1, {\"a\": \"x\"}] 2" | fromjson"#).expect("compiles");
        assert_eq!(
            p.run_default(&json!(null)).expect("runs"),
            vec![json!([1, {"a": "x"}]), json!(2)]
        );
        for (code, says) in [
            (r#""[" * 200000 | fromjson"#, "recursion limit"),
            (r#""{oops" | fromjson"#, "cannot be parsed as JSON"),
            ("1 | fromjson", "not a string"),
        ] {
            let p = JqProgram::compile(code).expect("compiles");
            let err = p.run_default(&json!(null)).expect_err("fails");
            assert!(err.contains(says), "{code}: {err}");
        }
    }

    #[test]
    fn outputs_over_their_budget_fail() {
        let p = JqProgram::compile("range(100) | \"x\" * 1000").expect("compiles");
        let ran = p.run(
            &Value::Null,
            Limits {
                steps: 1_000_000,
                output_bytes: 50_000,
                memory_bytes: Budget::DEFAULT_MEMORY_BYTES,
                budget_steps: 1_000_000,
            },
        );
        let err = ran.outputs.expect_err("over budget");
        assert!(err.contains("budget of 50000 bytes"), "{err}");
    }
}
