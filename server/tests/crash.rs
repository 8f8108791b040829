//! `kill -9` under load: every execution the API acknowledged survives a
//! crash and ends SUCCESS exactly once after a restart on the same data
//! folder; nothing that was not acknowledged appears.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use hyper::StatusCode;
use serde_json::{Value, json};

const EXECUTIONS: usize = 400;

const NAP: &str = r#"
id: nap
namespace: crash
inputs:
  - id: n
    type: INT
tasks:
  - id: before
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.n }}"
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT2S
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "after {{ outputs.before.value }}"
"#;

/// A pseudo-random number from the clock: a kill moment that differs from
/// run to run (the test prints it, so a failure can be reproduced).
fn jitter(range_ms: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) % range_ms.max(1)
}

/// Every execution of the flow the server knows, by id: (state, JSON).
async fn all_executions(server: &Server) -> Vec<Value> {
    let reply = server
        .get(&format!(
            "/api/v1/main/executions/search?namespace=crash&flowId=nap&size={}",
            EXECUTIONS * 2
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json()["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn one_crash(round: usize) {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().join("data");
    let mut server = Server::start_in(&dir, &[]).await;
    assert_eq!(server.create_flow(NAP).await.status, StatusCode::OK);

    // Trigger from 16 concurrent clients; keep every acknowledged id.
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let client = server.client.clone();
        let base = server.base.clone();
        clients.spawn(async move {
            let mut acked = Vec::new();
            for n in (worker..EXECUTIONS as i64).step_by(16) {
                let request = hyper::Request::builder()
                    .method(hyper::Method::POST)
                    .uri(format!("{base}/api/v1/main/executions/crash/nap"))
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(
                        json!({ "n": n }).to_string(),
                    )))
                    .expect("request");
                let response = client.request(request).await.expect("the server answers");
                assert_eq!(response.status(), StatusCode::OK);
                let body = http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .expect("body")
                    .to_bytes();
                let reply: Value = serde_json::from_slice(&body).expect("JSON");
                acked.push((reply["id"].as_str().expect("id").to_owned(), n));
            }
            acked
        });
    }
    let mut acknowledged: BTreeSet<(String, i64)> = BTreeSet::new();
    while let Some(acked) = clients.join_next().await {
        acknowledged.extend(acked.expect("a client task"));
    }
    let submitted = started.elapsed();
    assert_eq!(acknowledged.len(), EXECUTIONS);

    // Kill while the executions sleep, at a moment that varies per run.
    let wait = jitter(1_200);
    eprintln!(
        "round {round}: {EXECUTIONS} acknowledged in {submitted:?}; kill -9 after {wait} ms more"
    );
    tokio::time::sleep(Duration::from_millis(wait)).await;
    server.kill9();

    let server = Server::start_in(&dir, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let executions = loop {
        let all = all_executions(&server).await;
        let ended = all
            .iter()
            .filter(|e| e["state"]["current"] != "RUNNING" && e["state"]["current"] != "CREATED")
            .count();
        if ended == all.len() && all.len() >= EXECUTIONS {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "round {round}: {ended} of {} executions ended after the restart",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let ids: Vec<String> = executions
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "round {round}: an execution appears twice"
    );
    let expected: BTreeSet<String> = acknowledged.iter().map(|(id, _)| id.clone()).collect();
    let found: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(
        found, expected,
        "round {round}: the executions are exactly the acknowledged ones"
    );
    for (id, n) in &acknowledged {
        let exec = server
            .get(&format!("/api/v1/main/executions/{id}"))
            .await
            .json();
        assert_eq!(exec["state"]["current"], "SUCCESS", "round {round}: {exec}");
        let runs = exec["taskRunList"].as_array().cloned().unwrap_or_default();
        assert_eq!(runs.len(), 3, "round {round}: {exec}");
        assert_eq!(runs[0]["outputs"]["value"], n.to_string());
        assert_eq!(runs[2]["outputs"]["value"], format!("after {n}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_executions_survive_kill_9_three_times() {
    for round in 0..3 {
        one_crash(round).await;
    }
}
