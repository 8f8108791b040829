//! The log API on a real server: an execution's lines with their task runs
//! and attempts, filtered as Kestra filters them; followed as they come;
//! searched across executions; deleted through the API and by a
//! `PurgeLogs` task; and, across a `kill -9`, an ended execution's lines
//! read back from the log store's own log, and a running one's each kept
//! once though its replay logs them again.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::Server;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

const CHATTY: &str = r#"
id: chatty
namespace: logs.team
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ execution.id }}"
  - id: careful
    type: io.kestra.plugin.core.log.Log
    level: WARN
    message:
      - first warning
      - second warning
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: "{{ inputs.nap }}"
  - id: bye
    type: io.kestra.plugin.core.log.Log
    level: ERROR
    message: bye
inputs:
  - id: nap
    type: DURATION
    defaults: PT0S
"#;

const PURGER: &str = r#"
id: purger
namespace: ops
tasks:
  - id: purge
    type: io.kestra.plugin.core.log.PurgeLogs
    namespace: logs
    logLevels: [WARN]
    endDate: "{{ now() }}"
"#;

async fn lines(server: &Server, id: &str, query: &str) -> Vec<Value> {
    let reply = server.get(&format!("/api/v1/main/logs/{id}{query}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.json().as_array().unwrap().clone()
}

fn messages(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_owned())
        .collect()
}

async fn run(server: &Server, nap: &str) -> Value {
    let reply = server
        .trigger(
            "/api/v1/main/executions/logs.team/chatty?wait=true",
            json!({ "nap": nap }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.json()
}

#[tokio::test]
async fn an_executions_lines_are_read_filtered_searched_and_deleted() {
    let server = Server::start(&[]).await;
    assert_eq!(server.create_flow(CHATTY).await.status, StatusCode::OK);
    assert_eq!(server.create_flow(PURGER).await.status, StatusCode::OK);
    let ended = run(&server, "PT0S").await;
    let id = ended["id"].as_str().unwrap().to_owned();
    let all = lines(&server, &id, "").await;
    assert_eq!(
        messages(&all),
        [
            format!("hello {id}"),
            "first warning".into(),
            "second warning".into(),
            "bye".into()
        ]
    );
    let hello = &all[0];
    assert_eq!(
        (hello["namespace"].clone(), hello["flowId"].clone()),
        (json!("logs.team"), json!("chatty"))
    );
    assert_eq!(hello["taskId"], "hello");
    assert_eq!(hello["executionId"], id.as_str());
    assert_eq!(hello["attemptNumber"], 0);
    let run_id = ended["taskRunList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["taskId"] == "hello")
        .unwrap()["id"]
        .clone();
    assert_eq!(hello["taskRunId"], run_id);
    assert!(hello["timestamp"].as_str().unwrap().ends_with('Z'));

    assert_eq!(
        messages(&lines(&server, &id, "?minLevel=ERROR").await),
        ["bye"]
    );
    assert_eq!(lines(&server, &id, "?minLevel=WARN").await.len(), 3);
    assert_eq!(lines(&server, &id, "?taskId=careful").await.len(), 2);
    let of_run = lines(
        &server,
        &id,
        &format!("?taskRunId={}&attempt=0", run_id.as_str().unwrap()),
    )
    .await;
    assert_eq!(messages(&of_run), [format!("hello {id}")]);
    let bad = server
        .get(&format!("/api/v1/main/logs/{id}?minLevel=LOUD"))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // A second execution; a search across both.
    let other = run(&server, "PT0S").await;
    let other_id = other["id"].as_str().unwrap().to_owned();
    let found = server
        .get("/api/v1/main/logs/search?filters[namespace][STARTS_WITH]=logs&filters[q][EQUALS]=warning&size=3")
        .await
        .json();
    assert_eq!(
        (found["total"].clone(), found["type"].clone()),
        (json!(4), json!("OFFSET")),
        "{found}"
    );
    assert_eq!(found["results"].as_array().unwrap().len(), 3);
    let errors = server
        .get("/api/v1/main/logs/search?filters[flowId][EQUALS]=chatty&filters[level][EQUALS]=ERROR")
        .await
        .json();
    assert_eq!(errors["total"], 2, "{errors}");
    let none = server
        .get("/api/v1/main/logs/search?namespace=elsewhere")
        .await
        .json();
    assert_eq!(none["total"], 0);

    // Downloaded as text.
    let text = server
        .get(&format!("/api/v1/main/logs/{id}/download?minLevel=WARN"))
        .await;
    assert_eq!(text.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&text.body).into_owned();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[0].ends_with(" WARN first warning"), "{text}");

    // Deleted through the API: only the lines the query takes.
    let deleted = server
        .send(
            Method::DELETE,
            &format!("/api/v1/main/logs/{id}?minLevel=ERROR"),
            &[],
            "",
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(lines(&server, &id, "").await.len(), 3);

    // PurgeLogs deletes the WARN lines of namespace `logs` and below.
    let purged = server
        .trigger("/api/v1/main/executions/ops/purger?wait=true", json!({}))
        .await
        .json();
    assert_eq!(purged["state"]["current"], "SUCCESS", "{purged}");
    let count = purged["taskRunList"][0]["outputs"]["count"].clone();
    assert_eq!(count, 4, "two warnings of each execution");
    assert_eq!(
        messages(&lines(&server, &id, "").await),
        [format!("hello {id}")]
    );
    assert_eq!(lines(&server, &other_id, "").await.len(), 2);

    // A flow's lines, all at once.
    let gone = server
        .send(
            Method::DELETE,
            "/api/v1/main/logs/logs.team/chatty",
            &[],
            "",
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert!(lines(&server, &id, "").await.is_empty());
    assert!(lines(&server, &other_id, "").await.is_empty());
}

#[tokio::test]
async fn a_follower_gets_each_line_as_it_comes_until_the_execution_ends() {
    let server = Server::start(&[]).await;
    assert_eq!(server.create_flow(CHATTY).await.status, StatusCode::OK);
    let started = server
        .trigger(
            "/api/v1/main/executions/logs.team/chatty",
            json!({"nap": "PT1S"}),
        )
        .await;
    let id = common::id_of(&started);
    let request = Request::builder()
        .uri(format!(
            "{}/api/v1/main/logs/{id}/follow?minLevel=WARN",
            server.base
        ))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), common::client().request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
        .await
        .expect("the stream ends with the execution")
        .unwrap()
        .to_bytes();
    let frames = common::parse_sse(&String::from_utf8_lossy(&body));
    let got: Vec<&str> = frames
        .iter()
        .map(|(_, l)| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ["first warning", "second warning", "bye"],
        "the last one came after the sleep"
    );
    assert!(frames.iter().all(|(event, _)| event == "progress"));
}

#[tokio::test]
async fn lines_survive_a_kill_and_none_is_kept_twice() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_path_buf();
    let mut server = Server::start_in(&dir, &[]).await;
    assert_eq!(server.create_flow(CHATTY).await.status, StatusCode::OK);
    // One ended before the kill: its lines are only in the log store.
    let done = run(&server, "PT0S").await;
    let done_id = done["id"].as_str().unwrap().to_owned();
    let started = server
        .trigger(
            "/api/v1/main/executions/logs.team/chatty",
            json!({"nap": "PT2S"}),
        )
        .await;
    let id = common::id_of(&started);
    // Asleep, three lines logged; the server dies.
    for _ in 0..250 {
        if lines(&server, &id, "").await.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lines(&server, &id, "").await.len(), 3);
    // Give the log's group commit its sync.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill9();
    let server = Server::start_in(&dir, &[]).await;
    assert_eq!(
        messages(&lines(&server, &done_id, "").await),
        [
            format!("hello {done_id}"),
            "first warning".into(),
            "second warning".into(),
            "bye".into()
        ],
        "an ended execution's lines are read back from the log store's log"
    );
    server.wait_for_state(&id, "SUCCESS").await;
    let after = lines(&server, &id, "").await;
    assert_eq!(
        messages(&after),
        [
            format!("hello {id}"),
            "first warning".into(),
            "second warning".into(),
            "bye".into()
        ],
        "the replay logged the first three again: each is kept once"
    );
}
