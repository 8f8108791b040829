//! Shared by the engine's integration tests: run a conformance flow to its end.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use peregrine_engine::execution::Execution;
use peregrine_engine::executor::{FlowRevision, NewExecution, run_to_end};
use peregrine_engine::flow::{Flow, validate_inputs};

/// The folder of Kestra's own test flows.
pub fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/kestra/flows")
}

/// Parses `file` (a name inside [`conformance_dir`]) and runs one execution
/// of it with `inputs` (a JSON object) to a terminal state.
pub fn run_flow(file: &str, inputs: serde_json::Value) -> Execution {
    let path = conformance_dir().join(file);
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    run_source(&source, inputs)
}

/// Runs a flow given as YAML text.
pub fn run_source(source: &str, inputs: serde_json::Value) -> Execution {
    let flow = Flow::parse(source).unwrap_or_else(|e| panic!("flow does not parse: {e}"));
    let provided = match inputs {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => serde_json::Map::new(),
        other => panic!("inputs must be a JSON object, not {other}"),
    };
    let inputs = validate_inputs(&flow, &provided).unwrap_or_else(|e| panic!("{e}"));
    let revision = Arc::new(FlowRevision::new(Arc::new(flow)));
    run_to_end(NewExecution::new(revision, inputs))
}
