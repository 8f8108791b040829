//! `execution.Count`: counts of executions per flow and per namespace, as
//! Kestra's `Count` task gives them (`CountTest`), across shards, running
//! and ended executions alike, kept where the expression over `count`
//! holds.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use peregrine_engine::Engine;
use serde_json::{Value, json};

mod common;

use common::{Ended, MapFlows, engine, submit, task_run};

const SECOND: &str = r#"
id: second
namespace: tests
inputs:
  - id: fail
    type: BOOLEAN
tasks:
  - id: maybe
    type: io.kestra.plugin.core.execution.Fail
    runIf: "{{ inputs.fail }}"
"#;

const HELD: &str = r#"
id: held
namespace: tests.other
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
"#;

fn simple(id: &str) -> String {
    format!(
        "id: {id}\nnamespace: tests\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n"
    )
}

/// A counting flow in namespace `watch` with these properties.
fn counter(properties: &str) -> String {
    format!(
        "id: counter\nnamespace: watch\ntasks:\n  - id: c\n    type: io.kestra.plugin.core.execution.Count\n    startDate: \"{{{{ now() | dateAdd(-1, 'HOURS') }}}}\"\n{properties}"
    )
}

/// An engine holding 1 execution of `first`, 3 of `second` (one FAILED),
/// 5 of `third`, all ended, and one of `held`, PAUSED.
fn populated() -> (Engine, Arc<Ended>, Arc<MapFlows>) {
    let flows = Arc::new(MapFlows::default());
    let first = flows.add(&simple("first"));
    let second = flows.add(SECOND);
    let third = flows.add(&simple("third"));
    let held = flows.add(HELD);
    let (engine, ended) = engine(&flows);
    submit(&engine, &first, json!({}));
    for fail in [false, true, false] {
        submit(&engine, &second, json!({ "fail": fail }));
    }
    for _ in 0..5 {
        submit(&engine, &third, json!({}));
    }
    ended.wait_for(9);
    let paused = submit(&engine, &held, json!({}));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while engine
        .read(paused)
        .unwrap()
        .wait()
        .unwrap()
        .unwrap()
        .record
        .state()
        != peregrine_engine::State::Paused
    {
        assert!(std::time::Instant::now() < deadline, "never paused");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (engine, ended, flows)
}

/// Runs the counter with `properties`; its `c` task run.
fn count(engine: &Engine, ended: &Ended, flows: &MapFlows, properties: &str) -> Value {
    let before = ended.0.lock().unwrap().len();
    let rev = flows.add(&counter(properties));
    submit(engine, &rev, json!({}));
    let all = ended.wait_for(before + 1);
    let execution = all.iter().find(|e| e["flowId"] == "counter").unwrap();
    ended.0.lock().unwrap().retain(|e| e["flowId"] != "counter");
    task_run(execution, "c").clone()
}

fn outputs(task_run: &Value) -> &Value {
    assert_eq!(task_run["state"]["current"], "SUCCESS", "{task_run:#}");
    &task_run["outputs"]
}

#[test]
fn each_listed_flow_is_counted_and_kept_where_the_expression_holds() {
    let (engine, ended, flows) = populated();
    let listed = "    flows:\n      - {namespace: tests, flowId: first}\n      - {namespace: tests, flowId: second}\n      - {namespace: tests, flowId: third}\n      - {namespace: tests, flowId: missing}\n";

    let c = count(
        &engine,
        &ended,
        &flows,
        &format!("{listed}    expression: \"{{{{ count >= 3 }}}}\"\n"),
    );
    assert_eq!(
        outputs(&c),
        &json!({
            "results": [
                {"namespace": "tests", "flowId": "second", "count": 3},
                {"namespace": "tests", "flowId": "third", "count": 5},
            ],
            "total": 8,
        })
    );

    // Kestra's "no execution in the window" check: the missing flow, at 0.
    let c = count(
        &engine,
        &ended,
        &flows,
        &format!("{listed}    expression: \"{{{{ count == 0 }}}}\"\n"),
    );
    assert_eq!(
        outputs(&c),
        &json!({"results": [{"namespace": "tests", "flowId": "missing", "count": 0}], "total": 0})
    );

    // Only the FAILED ones.
    let c = count(
        &engine,
        &ended,
        &flows,
        &format!("{listed}    states: [FAILED]\n    expression: \"{{{{ count > 0 }}}}\"\n"),
    );
    assert_eq!(
        outputs(&c)["results"],
        json!([{"namespace": "tests", "flowId": "second", "count": 1}])
    );

    // A window that ended before any of them started counts none.
    let c = count(
        &engine,
        &ended,
        &flows,
        &format!(
            "{listed}    endDate: \"{{{{ now() | dateAdd(-30, 'MINUTES') }}}}\"\n    expression: \"{{{{ count > 0 }}}}\"\n"
        ),
    );
    assert_eq!(outputs(&c), &json!({"results": [], "total": 0}));
    engine.shutdown();
}

#[test]
fn namespaces_count_their_executions_running_ones_and_the_counter_too() {
    let (engine, ended, flows) = populated();
    // `tests` exactly (not `tests.other`), and `watch`, where the counter
    // itself runs while it counts, as Kestra's repository sees it.
    let c = count(
        &engine,
        &ended,
        &flows,
        "    namespaces: [tests, watch]\n    expression: \"{{ count > 0 }}\"\n",
    );
    assert_eq!(
        outputs(&c),
        &json!({
            "results": [
                {"namespace": "tests", "count": 9},
                {"namespace": "watch", "count": 1},
            ],
            "total": 10,
        })
    );

    // A paused execution is counted in its state; states may be a template.
    let c = count(
        &engine,
        &ended,
        &flows,
        "    namespaces: \"{{ ['tests.other'] | json }}\"\n    states: [PAUSED, RUNNING]\n    expression: \"{{ count == 1 }}\"\n",
    );
    assert_eq!(
        outputs(&c)["results"],
        json!([{"namespace": "tests.other", "count": 1}])
    );
    engine.shutdown();
}

#[test]
fn a_count_without_flows_or_namespaces_or_with_a_bad_date_fails_saying_why() {
    let (engine, ended, flows) = populated();
    let c = count(
        &engine,
        &ended,
        &flows,
        "    expression: \"{{ count > 0 }}\"\n",
    );
    assert_eq!(c["state"]["current"], "FAILED", "{c:#}");

    let before = ended.0.lock().unwrap().len();
    let rev = flows.add(
        "id: counter\nnamespace: watch\ntasks:\n  - id: c\n    type: io.kestra.plugin.core.execution.Count\n    namespaces: [tests]\n    startDate: yesterday\n    expression: \"{{ count > 0 }}\"\n",
    );
    submit(&engine, &rev, json!({}));
    let all = ended.wait_for(before + 1);
    let execution = all.iter().find(|e| e["flowId"] == "counter").unwrap();
    assert_eq!(execution["state"]["current"], "FAILED");
    let logs = ended.1.lock().unwrap();
    assert!(
        logs.iter()
            .any(|(_, line)| line.contains("'yesterday' could not be parsed")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|(_, line)| line.contains("You must provide a list of flows or namespaces")),
        "{logs:?}"
    );
    drop(logs);
    engine.shutdown();
}
