//! `execution.Resume`: one execution resumes another that is paused, as
//! Kestra's `Resume` task does (`ResumeTest`), through the courier and the
//! other execution's shard; what it cannot resume fails it, saying why.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::{Engine, ExecutionId};
use serde_json::{Value, json};

mod common;

use common::{Ended, MapFlows, engine, submit, task_run};

const WAITER: &str = r#"
id: waiter
namespace: tests
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "approved: {{ outputs.wait.onResume.approved }}"
"#;

const RESUMER: &str = r#"
id: resumer
namespace: tests
inputs:
  - id: target
    type: STRING
  - id: flow
    type: STRING
    defaults: waiter
  - id: approved
    type: STRING
    defaults: "true"
tasks:
  - id: resume
    type: io.kestra.plugin.core.execution.Resume
    executionId: "{{ inputs.target }}"
    namespace: tests
    flowId: "{{ inputs.flow }}"
    inputs:
      approved: "{{ inputs.approved }}"
"#;

/// The resumer's inputs, its defaults filled in (`submit` passes them as
/// given).
fn asking(target: impl ToString, more: Value) -> Value {
    let mut inputs = json!({"target": target.to_string(), "flow": "waiter", "approved": "true"});
    for (k, v) in more.as_object().unwrap() {
        inputs[k] = v.clone();
    }
    inputs
}

fn read(engine: &Engine, id: ExecutionId) -> Value {
    let snapshot = engine.read(id).unwrap().wait().unwrap().unwrap();
    snapshot.record.to_json(chrono::Utc::now())
}

fn wait_state(engine: &Engine, id: ExecutionId, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let json = read(engine, id);
        if json["state"]["current"] == state {
            return json;
        }
        assert!(Instant::now() < deadline, "{id} never {state}: {json:#}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What execution `id` (whose Resume failed) logged, once the observer
/// heard of its end (it may hear after a read sees the end).
fn error_of(execution: &Value, ended: &Ended, id: ExecutionId) -> String {
    assert_eq!(task_run(execution, "resume")["state"]["current"], "FAILED");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let said: Vec<String> = ended
            .1
            .lock()
            .unwrap()
            .iter()
            .filter(|(e, _)| *e == id)
            .map(|(_, line)| line.clone())
            .collect();
        if !said.is_empty() || Instant::now() > deadline {
            return said.join("\n");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_resume_task_resumes_another_paused_execution_with_its_inputs() {
    let flows = Arc::new(MapFlows::default());
    let waiter = flows.add(WAITER);
    let resumer = flows.add(RESUMER);
    let (engine, ended) = engine(&flows);
    let paused = submit(&engine, &waiter, json!({}));
    wait_state(&engine, paused, "PAUSED");
    let id = submit(&engine, &resumer, asking(paused, json!({})));
    let done = wait_state(&engine, id, "SUCCESS");
    assert_eq!(task_run(&done, "resume")["state"]["current"], "SUCCESS");
    let resumed = wait_state(&engine, paused, "SUCCESS");
    assert_eq!(
        task_run(&resumed, "after")["outputs"]["value"],
        "approved: true"
    );

    // Not paused any more, of another flow, unknown, or refusing the
    // inputs: the task fails, saying why.
    let again = submit(&engine, &resumer, asking(paused, json!({})));
    let failed = wait_state(&engine, again, "FAILED");
    let said = error_of(&failed, &ended, again);
    assert!(
        said.contains(&format!("Execution '{paused}' is not paused")),
        "{said}"
    );
    let other = flows.add(WAITER);
    let paused = submit(&engine, &other, json!({}));
    wait_state(&engine, paused, "PAUSED");
    for (inputs, why) in [
        (
            asking(paused, json!({"flow": "resumer"})),
            format!("No execution found for execution id {paused}"),
        ),
        (
            asking(ExecutionId::generate(), json!({})),
            "No execution found for execution id".to_owned(),
        ),
        (
            asking(paused, json!({"approved": "perhaps"})),
            "approved".to_owned(),
        ),
    ] {
        let id = submit(&engine, &resumer, inputs);
        let failed = wait_state(&engine, id, "FAILED");
        let said = error_of(&failed, &ended, id);
        assert!(said.contains(&why), "{why} not in {said}");
    }
    // Refused, it stays paused, and a good resume still resumes it.
    assert_eq!(read(&engine, paused)["state"]["current"], "PAUSED");
    let id = submit(&engine, &resumer, asking(paused, json!({})));
    wait_state(&engine, id, "SUCCESS");
    wait_state(&engine, paused, "SUCCESS");
    engine.shutdown();
}
