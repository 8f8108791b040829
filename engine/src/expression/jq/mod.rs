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

use jaq_core::load::parse::Def;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, DataT, Lut, Vars};
use jaq_json::Val;
use serde_json::Value;

mod natives;
mod rewrite;

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

impl Metered<'_> {
    /// Spends `steps`, or unwinds as out of steps (having spent them all).
    fn spend(&self, steps: u64) {
        match self.left.get().checked_sub(steps) {
            Some(left) => self.left.set(left),
            None => {
                self.left.set(0);
                resume_unwind(Box::new(OutOfSteps))
            }
        }
    }

    /// Pays for walking `v` (see [`natives::measure`]), or unwinds as out
    /// of steps.
    fn pay_for(&self, v: &Val) -> natives::Walk {
        let walk = natives::measure(v, self.left.get());
        self.spend(walk.steps);
        walk
    }

    /// Unwinds as out of memory unless `bytes` more fit in the heap the run
    /// may hold.
    fn will_hold(&self, bytes: u64) {
        let held = crate::memory::held_here().saturating_sub(self.held_at_start);
        let room = self.memory_bytes.saturating_sub(held).max(0);
        if bytes > room.unsigned_abs() {
            resume_unwind(Box::new(OutOfMemory));
        }
    }
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

/// Native jq functions replaced by ours (see `natives::range` and
/// `natives::fromjson`).
const REPLACED: &[&str] = &["range", "fromjson"];

/// Upper bound on the outputs kept from one run, so a program such as
/// `range(1e12)` cannot exhaust memory.
const MAX_OUTPUTS: usize = 100_000;

/// Longest error message a run reports.
const MAX_ERROR_BYTES: usize = 4096;

/// The name of the definition that holds the program, which the main
/// module calls.
const PROGRAM: &str = "@peregrine_program";

/// jq's standard library, rewritten (see `rewrite`) once per process.
fn prelude() -> &'static [Def<&'static str>] {
    static PRELUDE: std::sync::OnceLock<Vec<Def<&'static str>>> = std::sync::OnceLock::new();
    PRELUDE.get_or_init(|| {
        rewrite::defs(
            jaq_core::defs()
                .chain(jaq_std::defs())
                .chain(jaq_json::defs()),
        )
    })
}

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
        use jaq_core::native::v;
        let native = jaq_core::Native::<JqData>::new;
        let funs = jaq_core::funs::<JqData>()
            .chain(jaq_std::funs::<JqData>())
            .chain(jaq_json::funs::<JqData>())
            .filter(|(name, _, _)| !DENIED.contains(name) && !REPLACED.contains(name))
            .chain([
                ("range", v(3), native(natives::range)),
                ("fromjson", v(0), native(natives::fromjson)),
                (rewrite::WALK, v(0), native(natives::walk)),
                (rewrite::TEXT, v(0), native(natives::text)),
                (rewrite::MUL, v(2), native(natives::mul)),
                (rewrite::SUB, v(2), native(natives::sub)),
            ]);
        let invalid = |errors: usize| format!("Invalid jq expression '{code}': {errors} error(s)");
        let arena = Arena::default();
        let Some(program) = jaq_core::load::parse(code, |p| p.term()) else {
            // The loader counts what is wrong.
            let errors = Loader::new(prelude().iter().cloned())
                .load(&arena, File { code, path: () })
                .err()
                .map_or(1, |errs| errs.len());
            return Err(invalid(errors));
        };
        // What runs is the program rewritten (see `rewrite`), a definition
        // of the prelude that the main module calls.
        let program = rewrite::program(program)
            .map_err(|e| format!("Invalid jq expression '{code}': {e}"))?;
        let main = Def {
            name: PROGRAM,
            args: Vec::new(),
            body: program,
        };
        let modules = Loader::new(prelude().iter().cloned().chain([main]))
            .load(
                &arena,
                File {
                    code: PROGRAM,
                    path: (),
                },
            )
            .map_err(|errs| invalid(errs.len()))?;
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
        let mut room = Room {
            left: limits.output_bytes,
            budget: limits.output_bytes,
        };
        for item in self.filter.id.run((ctx, to_jaq(input))) {
            if out.len() >= MAX_OUTPUTS {
                return Err(format!("jq produced more than {MAX_OUTPUTS} outputs"));
            }
            match item {
                Ok(v) => {
                    out.push(from_jaq_checked(&v, 0, &mut room)?);
                }
                Err(exn) => {
                    return Err(match exn.get_err() {
                        Ok(err) => format!("jq error: {}", shown(&err, MAX_ERROR_BYTES)),
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

/// The output bytes a run has left, of its budget.
struct Room {
    left: usize,
    budget: usize,
}

impl Room {
    /// Takes `bytes`, or fails as over the budget.
    fn take(&mut self, bytes: usize) -> Result<(), String> {
        match self.left.checked_sub(bytes) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(super::too_large(
                self.budget - self.left + bytes,
                self.budget,
            )),
        }
    }
}

/// `value` as JSON, or an error if it nests deeper than [`MAX_DEPTH`] or
/// is larger than `room` (counted as `json_size` counts, as it is built:
/// a value whose parts are shared can be far larger than the memory it
/// holds).
fn from_jaq_checked(value: &Val, depth: usize, room: &mut Room) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "The jq expression's result nests deeper than {MAX_DEPTH} levels"
        ));
    }
    Ok(match value {
        Val::Null => {
            room.take(4)?;
            Value::Null
        }
        Val::Bool(b) => {
            room.take(5)?;
            Value::Bool(*b)
        }
        Val::Arr(items) => {
            room.take(2 + items.len())?;
            Value::Array(
                items
                    .iter()
                    .map(|v| from_jaq_checked(v, depth + 1, room))
                    .collect::<Result<_, _>>()?,
            )
        }
        Val::Obj(map) => {
            room.take(2)?;
            Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let key = match from_jaq_checked(k, depth + 1, room)? {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        room.take(2)?;
                        Ok((key, from_jaq_checked(v, depth + 1, room)?))
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
        // Numbers and strings print as JSON; reading them back keeps integers
        // integral and strings unescaped.
        other => {
            // A string is taken before it is printed (its print is as long).
            let string = jaq_std::ValT::as_bytes(other).map(<[u8]>::len);
            if let Some(len) = string {
                room.take(len + 2)?;
            }
            let text = other.to_string();
            if string.is_none() {
                room.take(text.len())?;
            }
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
    })
}

/// `x` as text, cut after about `max` bytes: an error's value can be far
/// larger than the memory it holds (its parts shared), so it is printed
/// only as far as a message shows it.
fn shown(x: &dyn std::fmt::Display, max: usize) -> String {
    struct Cut {
        text: String,
        max: usize,
    }
    impl std::fmt::Write for Cut {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = self.max.saturating_sub(self.text.len());
            if s.len() <= room {
                self.text.push_str(s);
                return Ok(());
            }
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&s[..end]);
            self.text.push('…');
            Err(std::fmt::Error)
        }
    }
    let mut cut = Cut {
        text: String::new(),
        max,
    };
    // An error here is the cut.
    let _ = std::fmt::write(&mut cut, format_args!("{x}"));
    cut.text
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

    #[test]
    fn rewritten_operators_keep_jq_semantics() {
        let cases = [
            (r#""ab" * 3"#, json!(null), json!("ababab")),
            (r#"3 * "ab""#, json!(null), json!("ababab")),
            (r#""ab" * 0"#, json!(null), json!(null)),
            ("4 * 2.5", json!(null), json!(10.0)),
            ("[(1,2) * (3,4)]", json!(null), json!([3, 4, 6, 8])),
            ("[(1,2) + (3,4)]", json!(null), json!([4, 5, 5, 6])),
            ("[(5,6) - (1,2)]", json!(null), json!([4, 3, 5, 4])),
            (
                r#"{"a": {"b": 1}} * {"a": {"c": 2}}"#,
                json!(null),
                json!({"a": {"b": 1, "c": 2}}),
            ),
            ("[1, 2, 3, 1] - [1]", json!(null), json!([2, 3])),
            (
                ".a *= 3 | .b -= 1",
                json!({"a": 2, "b": 5}),
                json!({"a": 6, "b": 4}),
            ),
            (".[] *= 2", json!([1, 2]), json!([2, 4])),
            ("map(. * 2) | add", json!([1, 2]), json!(6)),
            ("[.[] | select(. > 1)]", json!([1, 2, 3]), json!([2, 3])),
            (". == [1, 2]", json!([1, 2]), json!(true)),
            (". as $x | [1, 2] | . == $x", json!([1, 2]), json!(true)),
            ("[.[] < 2]", json!([1, 3]), json!([true, false])),
            ("sort", json!([3, 1, 2]), json!([1, 2, 3])),
            (
                "sort_by(.a) | map(.a)",
                json!([{"a": 2}, {"a": 1}]),
                json!([1, 2]),
            ),
            ("group_by(. % 2)", json!([1, 2, 3]), json!([[2], [1, 3]])),
            ("unique", json!([2, 1, 2]), json!([1, 2])),
            ("[min, max]", json!([2, 1, 3]), json!([1, 3])),
            (r#"contains(["b"])"#, json!(["abc"]), json!(true)),
            (r#"inside(["abc", 1])"#, json!(["b"]), json!(true)),
            ("indices(1)", json!([0, 1, 2, 1]), json!([1, 3])),
            ("index(1)", json!([0, 1, 2, 1]), json!(1)),
            ("bsearch(2)", json!([1, 2, 3]), json!(1)),
            ("tojson", json!({"a": [1, "x"]}), json!(r#"{"a":[1,"x"]}"#)),
            ("tostring", json!([1]), json!("[1]")),
            (r#""a\(.)b\(. + 1)""#, json!(1), json!("a1b2")),
            ("@base64", json!("hi"), json!("aGk=")),
            ("@json", json!([1]), json!("[1]")),
            (r#"join(",")"#, json!(["a", 1]), json!("a,1")),
            ("[..] | length", json!([[1], 2]), json!(4)),
            ("[paths]", json!({"a": [1]}), json!([["a"], ["a", 0]])),
            ("[.[][]]", json!([[1], [2, 3]]), json!([1, 2, 3])),
            ("flatten", json!([1, [2, [3]]]), json!([1, 2, 3])),
            (
                "to_entries",
                json!({"a": 1}),
                json!([{"key": "a", "value": 1}]),
            ),
            ("[limit(2; .[])]", json!([1, 2, 3]), json!([1, 2])),
            ("def f(x): x * 2; f(.)", json!(3), json!(6)),
            (
                ". as [$a, {b: $c}] | $a * $c",
                json!([2, {"b": 5}]),
                json!(10),
            ),
        ];
        for (code, input, want) in cases {
            let p = JqProgram::compile(code).unwrap_or_else(|e| panic!("{code}: {e}"));
            assert_eq!(p.run_default(&input), Ok(vec![want]), "{code}");
        }
    }

    /// Forty doublings of a value whose halves are shared: forty steps, a
    /// trillion leaves.
    const HUGE: &str = "reduce range(40) as $i (1; [., .])";

    #[test]
    fn operations_over_a_whole_value_pay_for_it() {
        let other = "(reduce range(40) as $i (2; [., .]))";
        let programs = [
            format!("{HUGE} | tojson | length"),
            format!("{HUGE} | tostring | length"),
            format!(r#"{HUGE} | "\(.)" | length"#),
            format!("{HUGE} | @base64 | length"),
            format!("{HUGE} | @json | length"),
            format!("{HUGE} | [..] | length"),
            format!("{HUGE} | [paths] | length"),
            format!("{HUGE} | [{}] | length", ".[]".repeat(40)),
            format!("{HUGE} | flatten | length"),
            format!("{HUGE} as $a | {other} | . == $a"),
            format!("{HUGE} as $a | {other} | . < $a"),
            format!("{HUGE} as $a | {other} | [., $a] | sort | length"),
            format!("{HUGE} as $a | {other} | [., $a] | unique | length"),
            format!("{HUGE} as $a | {other} | [., $a] | group_by(.) | length"),
            format!("{HUGE} as $a | {other} | [., $a] | min | length"),
            format!("{HUGE} as $a | {other} | [$a] | sort_by([., .]) | length"),
            format!("{HUGE} as $a | {other} | contains($a)"),
            format!("{HUGE} as $a | {other} | [.] | indices([$a])"),
            format!("{HUGE} as $a | [{other}] | bsearch($a)"),
            format!(r#"{HUGE} as $a | {other} | {{"x": ., "y": .}} * {{"x": $a, "y": $a}}"#),
            "[range(10000)] - [range(10000)] | length".to_owned(),
            "[range(10000)] as $a | $a | . -= $a | length".to_owned(),
        ];
        for code in &programs {
            let p = JqProgram::compile(code).unwrap_or_else(|e| panic!("{code}: {e}"));
            let ran = p.run(&json!(null), limits(200_000));
            let err = ran.outputs.expect_err(code);
            // Collecting paths holds memory faster than it spends steps.
            assert!(
                err.contains("budget of 200000 evaluation steps")
                    || err.contains("bytes of memory"),
                "{code}: {err}"
            );
        }
    }

    #[test]
    fn a_string_repeated_past_the_memory_budget_fails_before_it_is_built() {
        for code in [
            r#""x" * 1000000000000 | length"#,
            r#"1000000000000000 * "abc" | length"#,
            r#""x" * 100000000000000000000000 | length"#,
            r#"{"a": "x"} | .a *= 1000000000000 | .a | length"#,
        ] {
            let p = JqProgram::compile(code).expect("compiles");
            let err = p.run_default(&json!(null)).expect_err(code);
            assert!(err.contains("bytes of memory"), "{code}: {err}");
        }
        // Below the budget it is built, and paid for as text: a step per
        // 64 bytes.
        let p = JqProgram::compile(r#""x" * 6400000 | length"#).expect("compiles");
        let ran = p.run(&json!(null), limits(Budget::DEFAULT_STEPS));
        assert_eq!(ran.outputs, Ok(vec![json!(6_400_000)]));
        assert!(ran.steps >= 100_000, "spent {}", ran.steps);
    }

    #[test]
    fn a_result_far_larger_than_its_memory_fails_as_too_large() {
        let p = JqProgram::compile(HUGE).expect("compiles");
        let limits = Limits {
            output_bytes: 100_000,
            ..limits(Budget::DEFAULT_STEPS)
        };
        let err = p.run(&json!(null), limits).outputs.expect_err("too large");
        assert!(err.contains("larger than its budget"), "{err}");
    }

    #[test]
    fn an_error_carrying_a_huge_value_is_cut() {
        let p = JqProgram::compile(&format!("error({HUGE})")).expect("compiles");
        let err = p.run_default(&json!(null)).expect_err("fails");
        assert!(err.starts_with("jq error: "), "{err}");
        assert!(
            err.len() < 2 * MAX_ERROR_BYTES && err.ends_with('…'),
            "{err}"
        );
    }

    #[test]
    fn a_program_cannot_replace_a_guard() {
        for code in [
            "def @peregrine_walk: .; [1] == [1]",
            "def @peregrine_mul(a; b): 1; 2 * 3",
        ] {
            let err = JqProgram::compile(code).expect_err(code);
            assert!(err.contains("is reserved"), "{code}: {err}");
        }
    }
}
