//! Shared by the engine's integration tests: run a conformance flow to its end.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use peregrine_engine::Execution;
use peregrine_engine::flow::{Flow, validate_inputs};
use peregrine_engine::{FlowRevision, NewExecution, run_to_end};

/// The folder of Kestra's own test flows.
pub fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/kestra/flows")
}

/// Parses `file` (a name inside [`conformance_dir`]) and runs one execution
/// of it with `inputs` (a JSON object) to a terminal state.
pub fn run_flow(file: &str, inputs: serde_json::Value) -> Execution {
    run_source(&corpus_source(file), inputs)
}

/// Corpus flows whose trigger Peregrine refuses until it fires (a
/// Schedule: issue 14), though their tests are about their tasks, which
/// Kestra's tests run without the trigger ever firing.
pub const TRIGGER_REFUSED: &[&str] = &["switch.yaml"];

/// The YAML of corpus flow `file`; for one in [`TRIGGER_REFUSED`], without
/// its top-level `triggers:` block (its last).
pub fn corpus_source(file: &str) -> String {
    let path = conformance_dir().join(file);
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    if !TRIGGER_REFUSED.contains(&file) {
        return source;
    }
    let (tasks, triggers) = source
        .split_once("\ntriggers:\n")
        .unwrap_or_else(|| panic!("{file} has no top-level triggers block"));
    assert!(
        triggers.lines().all(|l| l.is_empty() || l.starts_with(' ')),
        "{file}: the triggers block is not the last"
    );
    tasks.to_owned()
}

/// Runs a flow given as YAML text.
pub fn run_source(source: &str, inputs: serde_json::Value) -> Execution {
    let flow = Flow::parse(source).unwrap_or_else(|e| panic!("flow does not parse: {e}"));
    let provided = match inputs {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => serde_json::Map::new(),
        other => panic!("inputs must be a JSON object, not {other}"),
    };
    // Kestra's own test helper passes inputs raw (no type coercion, no
    // required check) with the declared defaults filled in; do the same when
    // strict validation refuses them, so its flows run as its tests run them.
    let inputs = validate_inputs(&flow, &provided).unwrap_or_else(|_| {
        let mut raw = provided.clone();
        for input in &flow.inputs {
            if let (false, Some(default)) = (raw.contains_key(&input.id), &input.defaults) {
                raw.insert(input.id.clone(), default.clone());
            }
        }
        raw
    });
    let revision = Arc::new(FlowRevision::new(Arc::new(flow)));
    run_to_end(NewExecution::new(revision, inputs))
}
