//! Flowable tasks: they run no work of their own but schedule their child
//! task lists, resolved inline in the shard. Each `start` renders what
//! decides the children (a condition, a value, loop values) and returns the
//! [`FramePlan`](super::FramePlan) run.rs builds the task run's frame from.

mod branch;
mod dag;
mod each;
mod pause;
mod sequence;
mod wait_for;

use std::sync::Arc;

use serde_json::Value;

use crate::executor::into_text;

pub(super) use branch::{IF, SWITCH};
pub(super) use dag::DAG;
pub(super) use each::{EACH_PARALLEL, EACH_SEQUENTIAL, FOR_EACH};
pub(super) use pause::PAUSE;
#[cfg(test)]
use sequence::Sequential;
pub(super) use sequence::{ALLOW_FAILURE, PARALLEL, SEQUENTIAL};
pub(super) use wait_for::{LOOP_UNTIL, WAIT_FOR};

/// Loop values: a list, or a JSON string of one; each rendered to text,
/// duplicates dropped (first one kept), as Kestra does.
fn loop_values(rendered: Value) -> Result<Vec<Arc<str>>, String> {
    let items = match rendered {
        Value::Array(items) => items,
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => items,
            _ => return Err(format!("values `{text}` is not a list or a JSON list")),
        },
        other => return Err(format!("values `{other}` is not a list")),
    };
    let nulls = items.iter().filter(|v| v.is_null()).count();
    if nulls > 0 {
        return Err(format!(
            "Found '{nulls}' null values on Each, with values={}",
            Value::Array(items)
        ));
    }
    let mut seen = rustc_hash::FxHashSet::default();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let text: Arc<str> = Arc::from(into_text(item));
        if seen.insert(Arc::clone(&text)) {
            out.push(text);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn loop_values_are_text_without_duplicates() {
        let values = loop_values(json!(["a", 1, {"k": true}, "a", "1"])).expect("a list");
        let texts: Vec<&str> = values.iter().map(|v| &**v).collect();
        assert_eq!(texts, ["a", "1", r#"{"k":true}"#]);
        let values = loop_values(json!("[\"x\", \"y\"]")).expect("a JSON list");
        assert_eq!(values.len(), 2);
        assert_eq!(
            loop_values(json!("nope")).expect_err("not a list"),
            "values `nope` is not a list or a JSON list"
        );
        assert_eq!(
            loop_values(json!(["a", null])).expect_err("a null"),
            r#"Found '1' null values on Each, with values=["a",null]"#
        );
        assert_eq!(
            loop_values(json!(3)).expect_err("a number"),
            "values `3` is not a list"
        );
    }
}
