//! Load shedding over a real socket: past the queueing budget new
//! executions get 429 with Retry-After at once, and every execution that
//! was acknowledged ends, is found through the API, and leaves the running
//! gauge at zero.

mod common;

use common::*;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode, header};

const SLOW: &str = r#"
id: slow
namespace: load
tasks:
  - id: spin
    type: io.kestra.plugin.core.debug.Return
    format: "{% for i in range(1, 20000) %}{% endfor %}done"
"#;

fn running(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("peregrine_executions_running "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_and_every_acknowledged_execution_ends() {
    let server = Arc::new(
        Server::start(&[
            ("PEREGRINE_EXECUTOR_THREADS", "1"),
            ("PEREGRINE_EXECUTOR_QUEUEING_BUDGET", "20ms"),
        ])
        .await,
    );
    assert_eq!(server.create_flow(SLOW).await.status, StatusCode::OK);

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..400 {
        let server = Arc::clone(&server);
        tasks.spawn(async move {
            let reply = server
                .try_send(
                    Method::POST,
                    "/api/v1/main/executions/load/slow",
                    &[("content-type", "application/json")],
                    Bytes::from_static(b"{}"),
                )
                .await;
            reply.map(|r| {
                let retry = r.headers.get(header::RETRY_AFTER).cloned();
                (r.status, retry, r.body)
            })
        });
    }
    let mut acknowledged = Vec::new();
    let mut shed = 0;
    while let Some(joined) = tasks.join_next().await {
        let (status, retry, body) = joined.expect("task").expect("answered");
        match status {
            StatusCode::OK => {
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                acknowledged.push(json["id"].as_str().expect("an id").to_owned());
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(retry.is_some(), "a 429 says when to come back");
                let text = String::from_utf8_lossy(&body);
                assert!(text.contains("queueing-budget"), "{text}");
                shed += 1;
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    assert!(shed > 0, "nothing was shed");
    assert!(!acknowledged.is_empty(), "nothing was accepted");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = server.get("/metrics").await;
        let text = String::from_utf8_lossy(&metrics.body).into_owned();
        if running(&text) == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running: {:?}",
            running(&text)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in &acknowledged {
        let reply = server.get(&format!("/api/v1/main/executions/{id}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{id} is found");
        assert_eq!(reply.json()["state"]["current"], "SUCCESS", "{id}");
    }
}
