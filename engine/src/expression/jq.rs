//! The `jq` filter, run by the jaq crates.
//!
//! Kestra's `jq` filter returns the list of every output of the program.
//! Programs given as literals are compiled once, with the template.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, DataT, Lut, Vars};
use jaq_json::Val;
use serde_json::Value;

/// The data kind our programs run on: plain JSON values and the lookup table.
/// A unit type of our own keeps compiled programs `Send + Sync`.
struct JqData;

impl DataT for JqData {
    type V<'a> = Val;
    type Data<'a> = &'a Lut<Self>;
}

/// Native jq functions a template must not reach: the process environment
/// (it holds secrets) and stdin. `halt` is harmless here: its exception is
/// reported as an error, the process never exits.
const DENIED: &[&str] = &["env", "input", "inputs"];

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
            .filter(|(name, _, _)| !DENIED.contains(name));
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

    /// Runs the program on `input`, returning every output.
    pub(crate) fn run(&self, input: &Value) -> Result<Vec<Value>, String> {
        let ctx = Ctx::<JqData>::new(&self.filter.lut, Vars::new([]));
        let mut out = Vec::new();
        for item in self.filter.id.run((ctx, to_jaq(input))) {
            if out.len() >= MAX_OUTPUTS {
                return Err(format!("jq produced more than {MAX_OUTPUTS} outputs"));
            }
            match item {
                Ok(v) => out.push(from_jaq(&v)),
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

fn from_jaq(value: &Val) -> Value {
    match value {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Arr(items) => Value::Array(items.iter().map(from_jaq).collect()),
        Val::Obj(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match from_jaq(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, from_jaq(v))
                })
                .collect(),
        ),
        // Numbers and strings print as JSON; reading them back keeps integers
        // integral and strings unescaped.
        other => {
            let text = other.to_string();
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_and_collects_every_output() {
        let p = JqProgram::compile(".[] | .a").expect("compiles");
        let out = p
            .run(&json!([{"a": 1}, {"a": "x"}, {"a": [1.5]}]))
            .expect("runs");
        assert_eq!(out, vec![json!(1), json!("x"), json!([1.5])]);
    }

    #[test]
    fn std_functions_are_there_but_env_is_not() {
        let p = JqProgram::compile("map(. * 2) | add").expect("compiles");
        assert_eq!(p.run(&json!([1, 2])).expect("runs"), vec![json!(6)]);
        assert!(JqProgram::compile("env").is_err());
        assert!(JqProgram::compile(".[").is_err());
    }

    #[test]
    fn runtime_errors_are_reported() {
        let p = JqProgram::compile(".a").expect("compiles");
        assert!(p.run(&json!([1])).is_err());
    }

    #[test]
    fn compiled_programs_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<JqProgram>();
    }
}
