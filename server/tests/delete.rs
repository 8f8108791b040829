//! Deleting executions on a real server: one, by ids, by query, and by a
//! `PurgeExecutions` task; each with its log lines; a running one is not
//! deleted; and a deletion outlives a `kill -9`.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, id_of};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

const LOGGED: &str = r#"
id: logged
namespace: purge.team
inputs:
  - id: nap
    type: DURATION
    defaults: PT0S
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: "{{ inputs.nap }}"
"#;

/// Records a metric and writes a file.
const MEASURED: &str = r#"
id: measured
namespace: purge.team
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - 'echo ''::{"metrics":[{"name":"rows","type":"counter","value":3}]}::'''
  - id: write
    type: io.kestra.plugin.core.storage.Write
    content: kept
"#;

const PURGER: &str = r#"
id: purger
namespace: ops
tasks:
  - id: purge
    type: io.kestra.plugin.core.execution.PurgeExecutions
    namespace: purge
    endDate: "{{ now() }}"
    states: [SUCCESS]
"#;

async fn run(server: &Server, nap: &str) -> String {
    let reply = server
        .trigger(
            "/api/v1/main/executions/purge.team/logged?wait=true",
            json!({ "nap": nap }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    id_of(&reply)
}

async fn status(server: &Server, id: &str) -> StatusCode {
    server
        .get(&format!("/api/v1/main/executions/{id}"))
        .await
        .status
}

async fn lines(server: &Server, id: &str) -> usize {
    let reply = server.get(&format!("/api/v1/main/logs/{id}")).await;
    reply.json().as_array().unwrap().len()
}

async fn delete(server: &Server, path: &str, body: &str) -> (StatusCode, Value) {
    let reply = server
        .send(
            Method::DELETE,
            &format!("/api/v1/main{path}"),
            &[("content-type", "application/json")],
            body.to_owned(),
        )
        .await;
    let json = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (reply.status, json)
}

#[tokio::test]
async fn executions_are_deleted_with_their_lines_and_stay_deleted_after_a_kill() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_path_buf();
    let mut server = Server::start_in(&dir, &[]).await;
    assert_eq!(server.create_flow(LOGGED).await.status, StatusCode::OK);
    let one = run(&server, "PT0S").await;
    assert_eq!(lines(&server, &one).await, 1);

    // Running: not deleted.
    let started = server
        .trigger(
            "/api/v1/main/executions/purge.team/logged",
            json!({ "nap": "PT2S" }),
        )
        .await;
    let asleep = id_of(&started);
    server.wait_for_state(&asleep, "RUNNING").await;
    let (code, _) = delete(&server, &format!("/executions/{asleep}"), "").await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, body) = delete(&server, "/executions/by-ids", &json!([asleep]).to_string()).await;
    assert_eq!(
        (code, body),
        (StatusCode::OK, json!({"count": 0})),
        "left running"
    );
    let (code, body) = delete(
        &server,
        "/executions/by-ids?includeNonTerminated=true",
        &json!([asleep]).to_string(),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let (code, body) = delete(&server, "/executions/by-ids", &json!(["nope"]).to_string()).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");

    // One, by id.
    let (code, _) = delete(&server, &format!("/executions/{one}"), "").await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert_eq!(status(&server, &one).await, StatusCode::NOT_FOUND);
    assert_eq!(lines(&server, &one).await, 0, "its lines went with it");
    let (code, _) = delete(&server, &format!("/executions/{one}"), "").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "already gone");

    // Two, by ids (their lines kept); one by a query.
    let (a, b, c) = (
        run(&server, "PT0S").await,
        run(&server, "PT0S").await,
        run(&server, "PT0S").await,
    );
    let (code, body) = delete(
        &server,
        "/executions/by-ids?deleteLogs=false",
        &json!([a, b]).to_string(),
    )
    .await;
    assert_eq!((code, body), (StatusCode::OK, json!({"count": 2})));
    assert_eq!(lines(&server, &a).await, 1, "deleteLogs=false keeps them");
    let (code, body) = delete(
        &server,
        &format!("/executions/by-query?filters[q][EQUALS]={c}"),
        "",
    )
    .await;
    assert_eq!((code, body), (StatusCode::OK, json!({"count": 1})));
    assert_eq!(status(&server, &c).await, StatusCode::NOT_FOUND);

    // Acknowledged deletions are durable.
    server.wait_for_state(&asleep, "SUCCESS").await;
    server.kill9();
    let server = Server::start_in(&dir, &[]).await;
    for id in [&one, &a, &b, &c] {
        assert_eq!(status(&server, id).await, StatusCode::NOT_FOUND, "{id}");
    }
    assert_eq!(status(&server, &asleep).await, StatusCode::OK);
}

async fn metrics(server: &Server, id: &str) -> usize {
    let reply = server.get(&format!("/api/v1/main/metrics/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json()["total"].as_u64().unwrap() as usize
}

#[tokio::test]
async fn a_purge_task_deletes_the_ended_executions_its_filters_take() {
    let server = Server::start(&[]).await;
    assert_eq!(server.create_flow(LOGGED).await.status, StatusCode::OK);
    assert_eq!(server.create_flow(MEASURED).await.status, StatusCode::OK);
    assert_eq!(server.create_flow(PURGER).await.status, StatusCode::OK);
    let measured = server
        .trigger(
            "/api/v1/main/executions/purge.team/measured?wait=true",
            json!({}),
        )
        .await
        .json();
    assert_eq!(measured["state"]["current"], "SUCCESS", "{measured}");
    let measured_id = measured["id"].as_str().unwrap().to_owned();
    let file = measured["taskRunList"][1]["outputs"]["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let file_path = |uri: &str| {
        format!(
            "/api/v1/main/executions/{measured_id}/file?path={}",
            uri.replace(':', "%3A").replace('/', "%2F")
        )
    };
    assert_eq!(server.get(&file_path(&file)).await.status, StatusCode::OK);
    assert_eq!(metrics(&server, &measured_id).await, 1);
    let ids = [run(&server, "PT0S").await, run(&server, "PT0S").await];
    let purged = server
        .trigger("/api/v1/main/executions/ops/purger?wait=true", json!({}))
        .await
        .json();
    assert_eq!(purged["state"]["current"], "SUCCESS", "{purged}");
    let outputs = &purged["taskRunList"][0]["outputs"];
    assert_eq!(outputs["executionsCount"], 3, "{outputs}");
    assert_eq!(outputs["logsCount"], 2);
    assert_eq!(outputs["metricsCount"], 1);
    assert_eq!(outputs["storagesCount"], 1, "the file Write stored");
    for id in ids.iter().chain([&measured_id]) {
        assert_eq!(status(&server, id).await, StatusCode::NOT_FOUND);
    }
    assert_eq!(metrics(&server, &measured_id).await, 0, "purged");
    let bad = server
        .create_flow(
            "id: p\nnamespace: ops\ntasks:\n  - id: purge\n    type: io.kestra.plugin.core.execution.PurgeExecutions\n    endDate: \"{{ now() }}\"\n    purgeStorage: false\n",
        )
        .await;
    let text = String::from_utf8_lossy(&bad.body).into_owned();
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(text.contains("purgeStorage: false"), "{text}");
    // Its own execution, of namespace ops, is not taken.
    let own = purged["id"].as_str().unwrap();
    assert_eq!(status(&server, own).await, StatusCode::OK);
}
