//! Subflows on a running engine: parent and child are executions of their
//! own, on the shards their ids hash to, talking through the courier; a
//! durable engine stopped between any two of their steps ends both exactly
//! once after a restart.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{MapFlows, durable, engine, submit, task_run};

const ADDER: &str = r#"
id: adder
namespace: tests
inputs:
  - id: a
    type: INT
  - id: b
    type: INT
    defaults: 1
outputs:
  - id: sum
    type: INT
    value: "{{ inputs.a + inputs.b }}"
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: "{{ inputs.a > 100 ? 'PT30S' : 'PT0.05S' }}"
"#;

fn caller(inputs: &str, extra: &str) -> String {
    format!(
        r#"
id: caller
namespace: tests
inputs:
  - id: a
    type: STRING
tasks:
  - id: add
    type: io.kestra.plugin.core.flow.Subflow
    namespace: tests
    flowId: adder
    inputs: {inputs}
{extra}
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.add.outputs.sum ?? '-' }}}} {{{{ outputs.add.state }}}}"
"#
    )
}

#[test]
fn the_child_types_its_inputs_and_its_flow_outputs_come_back() {
    let flows = Arc::new(MapFlows::default());
    flows.add(ADDER);
    let parent = flows.add(&caller("{a: \"{{ inputs.a }}\"}", ""));
    let (engine, ended) = engine(&flows);
    submit(&engine, &parent, json!({"a": "41"}));
    ended.wait_for(2);
    let child = ended.of("adder");
    assert_eq!(
        child["inputs"],
        json!({"a": 41, "b": 1}),
        "typed by the child's flow"
    );
    assert_eq!(child["outputs"], json!({"sum": 42}));
    let parent = ended.of("caller");
    assert_eq!(parent["state"]["current"], "SUCCESS");
    assert_eq!(
        task_run(&parent, "add")["outputs"]["outputs"],
        json!({"sum": 42})
    );
    assert_eq!(task_run(&parent, "show")["outputs"]["value"], "42 SUCCESS");
    engine.shutdown();
}

#[test]
fn a_child_that_cannot_start_fails_the_parent_with_kestras_reason() {
    let flows = Arc::new(MapFlows::default());
    flows.add(ADDER);
    let bad_inputs = flows.add(&caller("{a: \"not a number\"}", ""));
    let missing = flows.add(&caller("{a: 1}", "").replace("flowId: adder", "flowId: nobody"));
    let (engine, ended) = engine(&flows);
    for rev in [&bad_inputs, &missing] {
        submit(&engine, rev, json!({"a": "1"}));
    }
    let all = ended.wait_for(2);
    assert!(
        all.iter().all(|e| e["flowId"] == "caller"),
        "no child started: {all:#?}"
    );
    for execution in &all {
        assert_eq!(execution["state"]["current"], "FAILED");
        assert_eq!(task_run(execution, "add")["state"]["current"], "FAILED");
    }
    let logs = ended.1.lock().unwrap().clone();
    assert!(
        logs.iter()
            .any(|(_, m)| m == "Unable to find flow 'tests'.'nobody' with revision '0'"),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|(_, m)| m.starts_with("invalid inputs: input `a` (INT)")),
        "the child's flow checks the inputs: {logs:?}"
    );
    engine.shutdown();
}

#[test]
fn killing_the_parent_kills_the_child_it_waits_for() {
    let flows = Arc::new(MapFlows::default());
    flows.add(ADDER);
    let parent = flows.add(&caller("{a: 500}", ""));
    let (engine, ended) = engine(&flows);
    let id = submit(&engine, &parent, json!({"a": "x"}));
    // The child exists once the parent's task run logged its link and the
    // child's shard took the start.
    let deadline = Instant::now() + Duration::from_secs(10);
    let child_id = loop {
        let snapshot = engine.read(id).unwrap().wait().unwrap().unwrap();
        let json = snapshot.record.to_json(chrono::Utc::now());
        let runs = json["taskRunList"].as_array().cloned().unwrap_or_default();
        let page = engine
            .search(peregrine_engine::Filter::default(), 1, 10)
            .unwrap()
            .wait()
            .unwrap();
        if !runs.is_empty() && page.total == 2 {
            let child = page
                .results
                .iter()
                .find(|s| s.record.id() != id)
                .map(|s| s.record.id());
            break child.unwrap();
        }
        assert!(Instant::now() < deadline, "the child never started");
        std::thread::sleep(Duration::from_millis(5));
    };
    engine.kill(id).unwrap().wait().unwrap();
    ended.wait_for(2);
    assert_eq!(ended.of("caller")["state"]["current"], "KILLED");
    let child = ended.of("adder");
    assert_eq!(child["id"], child_id.to_string());
    assert_eq!(child["state"]["current"], "KILLED", "the kill cascades");
    engine.shutdown();
}

#[test]
fn a_flow_calling_itself_through_another_stops_at_the_depth_limit() {
    let flows = Arc::new(MapFlows::default());
    let ping = flows.add(
        "id: ping\nnamespace: tests\ntasks:\n  - id: call\n    type: io.kestra.plugin.core.flow.Subflow\n    namespace: tests\n    flowId: pong\n",
    );
    flows.add(
        "id: pong\nnamespace: tests\ntasks:\n  - id: call\n    type: io.kestra.plugin.core.flow.Subflow\n    namespace: tests\n    flowId: ping\n",
    );
    let (engine, ended) = engine(&flows);
    submit(&engine, &ping, Value::Null);
    let depth = peregrine_engine::MAX_SUBFLOW_DEPTH as usize;
    let all = ended.wait_for(depth + 1);
    assert_eq!(all.len(), depth + 1, "the first and {depth} below it");
    assert!(all.iter().all(|e| e["state"]["current"] == "FAILED"));
    let logs = ended.1.lock().unwrap().clone();
    assert!(
        logs.iter().any(|(_, m)| m.contains("deeper than the")),
        "{logs:?}"
    );
    engine.shutdown();
}

#[test]
fn stopped_while_the_child_runs_both_end_once_after_a_restart() {
    let flows = Arc::new(MapFlows::default());
    flows.add(&ADDER.replace("PT0.05S", "PT1S"));
    let parent = flows.add(&caller("{a: 2}", ""));
    let dir = tempfile::tempdir().unwrap();
    let (engine, ended) = durable(dir.path(), &flows);
    for _ in 0..10 {
        submit(&engine, &parent, Value::Null);
    }
    // Every child started (its parent logged it) and none ended.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = engine
            .search(peregrine_engine::Filter::default(), 1, 100)
            .unwrap()
            .wait()
            .unwrap();
        if page.total == 20 {
            break;
        }
        assert!(Instant::now() < deadline, "children did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    engine.shutdown();
    assert!(
        ended.0.lock().unwrap().is_empty(),
        "stopped before any ended"
    );

    let (engine, ended) = durable(dir.path(), &flows);
    let all = ended.wait_for(20);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ended.0.lock().unwrap().len(), 20, "each ends once");
    let children: Vec<&Value> = all.iter().filter(|e| e["flowId"] == "adder").collect();
    assert_eq!(children.len(), 10, "no child ran twice");
    for execution in &all {
        assert_eq!(execution["state"]["current"], "SUCCESS", "{execution:#}");
    }
    for parent in all.iter().filter(|e| e["flowId"] == "caller") {
        let add = task_run(parent, "add");
        assert_eq!(add["outputs"]["outputs"], json!({"sum": 3}));
        assert!(
            children
                .iter()
                .any(|c| c["id"] == add["outputs"]["executionId"]),
            "its own child answered"
        );
    }
    engine.shutdown();
}
