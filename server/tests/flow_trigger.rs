//! Flow triggers on a real server: a chain A → B → C, each started by the
//! end of the one before, with inputs from its flow outputs and Kestra's
//! `trigger` variables; a `kill -9` just after a link's upstream ended, or
//! while a link runs, still runs every link exactly once; a trigger whose
//! states or conditions the end does not meet starts nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Server, id_of};
use hyper::StatusCode;
use serde_json::{Value, json};

const A: &str = r#"id: a
namespace: chain
tasks:
  - id: make
    type: io.kestra.plugin.core.debug.Return
    format: "{{ execution.id }}"
outputs:
  - id: made
    type: STRING
    value: "{{ outputs.make.value }}"
"#;

const B: &str = r#"id: b
namespace: chain
inputs:
  - id: made
    type: STRING
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
  - id: seen
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.made }} {{ trigger.executionId }} {{ trigger.state }}"
triggers:
  - id: after_a
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      made: "{{ trigger.outputs.made }}"
    labels:
      link: b
    preconditions:
      id: a_done
      flows:
        - namespace: chain
          flowId: a
          states: [SUCCESS]
"#;

const C: &str = r#"id: c
namespace: chain
tasks:
  - id: seen
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.flowId }} {{ trigger.executionId }}"
triggers:
  - id: after_b
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: chain
        flowId: b
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
"#;

/// Listens for A's failures, and for its successes with a label A has not.
const NEVER: &str = r#"id: never
namespace: chain
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: x
triggers:
  - id: on_failure
    type: io.kestra.plugin.core.trigger.Flow
    states: [FAILED]
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: chain
        flowId: a
  - id: labelled
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionLabels
        labels:
          team: nobody
"#;

async fn executions(server: &Server, flow_id: &str) -> Vec<Value> {
    let reply = server
        .get(&format!(
            "/api/v1/main/executions/search?namespace=chain&flowId={flow_id}&size=100"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json()["results"].as_array().unwrap().clone()
}

/// Waits until flow `flow_id` has `n` executions, all SUCCESS; them.
async fn succeeded(server: &Server, flow_id: &str, n: usize) -> Vec<Value> {
    for _ in 0..400 {
        let all = executions(server, flow_id).await;
        assert!(all.len() <= n, "{flow_id}: more than {n}: {all:#?}");
        if all.len() == n && all.iter().all(|e| e["state"]["current"] == "SUCCESS") {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{flow_id} never had {n} successful executions");
}

fn value_of<'v>(execution: &'v Value, task: &str) -> &'v str {
    execution["taskRunList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["taskId"] == task)
        .and_then(|t| t["outputs"]["value"].as_str())
        .unwrap()
}

#[tokio::test]
async fn a_chain_of_flow_triggers_runs_each_link_once_across_kill_9s() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let mut server = Server::start_in(&dir, &[]).await;
    for flow in [A, B, C, NEVER] {
        let reply = server.create_flow(flow).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }

    // Round 1: kill -9 as soon as A ended, B perhaps not started yet.
    let started = server
        .trigger("/api/v1/main/executions/chain/a", json!({}))
        .await;
    let a1 = id_of(&started);
    server.wait_for_state(&a1, "SUCCESS").await;
    server.kill9();
    server = Server::start_in(&dir, &[]).await;
    let b = succeeded(&server, "b", 1).await;
    let c = succeeded(&server, "c", 1).await;
    let b1 = &b[0];
    assert_eq!(b1["trigger"]["id"], "after_a");
    assert_eq!(b1["trigger"]["type"], "io.kestra.plugin.core.trigger.Flow");
    assert_eq!(b1["trigger"]["variables"]["executionId"], a1.as_str());
    assert_eq!(b1["trigger"]["variables"]["flowId"], "a");
    assert_eq!(b1["trigger"]["variables"]["state"], "SUCCESS");
    assert_eq!(b1["inputs"]["made"], a1.as_str());
    assert!(
        b1["labels"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "link", "value": "b"})),
        "{b1:#}"
    );
    let b1_id = b1["id"].as_str().unwrap();
    let b1 = server.wait_for_state(b1_id, "SUCCESS").await;
    assert_eq!(value_of(&b1, "seen"), format!("{a1} {a1} SUCCESS"));
    let c1 = server
        .wait_for_state(c[0]["id"].as_str().unwrap(), "SUCCESS")
        .await;
    assert_eq!(value_of(&c1, "seen"), format!("b {b1_id}"));

    // Round 2: kill -9 while B runs (it sleeps).
    let started = server
        .trigger("/api/v1/main/executions/chain/a", json!({}))
        .await;
    let a2 = id_of(&started);
    server.wait_for_state(&a2, "SUCCESS").await;
    let mut running = None;
    for _ in 0..200 {
        let b = executions(&server, "b").await;
        if let Some(found) = b
            .iter()
            .find(|e| e["trigger"]["variables"]["executionId"] == a2.as_str())
        {
            running = Some(found["id"].as_str().unwrap().to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b2 = running.expect("B started for the second A");
    server.kill9();
    let server = Server::start_in(&dir, &[]).await;
    server.wait_for_state(&b2, "SUCCESS").await;
    succeeded(&server, "b", 2).await;
    let c = succeeded(&server, "c", 2).await;
    assert!(
        c.iter()
            .any(|e| e["trigger"]["variables"]["executionId"] == b2.as_str()),
        "{c:#?}"
    );
    // Nothing met `never`'s triggers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(executions(&server, "never").await.is_empty());
    succeeded(&server, "a", 2).await;
}

const LEFT: &str = "id: left\nnamespace: chain\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: l\n";
const RIGHT: &str = "id: right\nnamespace: chain\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: r\n";

/// Starts once both `left` and `right` succeeded within an hour (a sliding
/// window: no boundary for the test to straddle).
const JOIN: &str = r#"id: join
namespace: chain
tasks:
  - id: seen
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.flowId }}"
triggers:
  - id: both
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: both_done
      timeWindow:
        type: SLIDING_WINDOW
        window: PT1H
      flows:
        - namespace: chain
          flowId: left
          states: [SUCCESS]
        - namespace: chain
          flowId: right
          states: [SUCCESS]
"#;

async fn run(server: &Server, flow_id: &str) {
    let reply = server
        .trigger(
            &format!("/api/v1/main/executions/chain/{flow_id}?wait=true"),
            json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

#[tokio::test]
async fn preconditions_over_two_flows_fire_once_both_ended_in_the_window_across_a_kill() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_path_buf();
    let mut server = Server::start_in(&dir, &[]).await;
    for flow in [LEFT, RIGHT, JOIN] {
        assert_eq!(server.create_flow(flow).await.status, StatusCode::OK);
    }
    run(&server, "left").await;
    run(&server, "left").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        executions(&server, "join").await.is_empty(),
        "only left so far"
    );
    // The window, with left met, survives a kill -9.
    server.kill9();
    let server = Server::start_in(&dir, &[]).await;
    run(&server, "right").await;
    let joined = succeeded(&server, "join", 1).await;
    assert_eq!(
        value_of(&joined[0], "seen"),
        "right",
        "the end that completed it"
    );
    assert_eq!(
        joined[0]["trigger"]["type"],
        "io.kestra.plugin.core.trigger.Flow"
    );
    // Reset on success: right again is not enough, left then is.
    run(&server, "right").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(executions(&server, "join").await.len(), 1);
    run(&server, "left").await;
    let joined = succeeded(&server, "join", 2).await;
    assert!(joined.iter().any(|e| value_of(e, "seen") == "left"));
}

const PAUSER: &str = "id: pauser\nnamespace: chain\ntasks:\n  - id: wait\n    type: io.kestra.plugin.core.flow.Pause\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: done\n";

/// Starts when `pauser` pauses, not when it ends.
const ON_PAUSE: &str = r#"id: on-pause
namespace: chain
tasks:
  - id: seen
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.state }} {{ trigger.executionId }}"
triggers:
  - id: paused
    type: io.kestra.plugin.core.trigger.Flow
    states: [PAUSED]
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: chain
        flowId: pauser
"#;

#[tokio::test]
async fn a_flow_trigger_on_a_state_that_is_not_an_end_fires_once_when_it_is_entered() {
    let server = Server::start(&[]).await;
    for flow in [PAUSER, ON_PAUSE] {
        assert_eq!(server.create_flow(flow).await.status, StatusCode::OK);
    }
    let started = server
        .trigger("/api/v1/main/executions/chain/pauser", json!({}))
        .await;
    let id = id_of(&started);
    server.wait_for_state(&id, "PAUSED").await;
    let fired = succeeded(&server, "on-pause", 1).await;
    assert_eq!(value_of(&fired[0], "seen"), format!("PAUSED {id}"));
    // Its end, and the changes while paused, fire nothing more.
    let resumed = server
        .send(
            hyper::Method::POST,
            &format!("/api/v1/main/executions/{id}/actions/resume"),
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    assert_eq!(resumed.status, StatusCode::OK, "{:?}", resumed.body);
    server.wait_for_state(&id, "SUCCESS").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(executions(&server, "on-pause").await.len(), 1);
}
