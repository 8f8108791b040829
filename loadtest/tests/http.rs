//! Runs the real binary in http mode against a small fake of the Kestra
//! API on loopback: it creates the flow (409, then PUT), sends each order as
//! multipart or JSON with `wait=true`, retries a 429, and counts a wrong
//! output as failed.

// Helpers outside #[test] functions unwrap too: a broken fixture is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// How the fake behaves, and what it saw.
#[derive(Default)]
struct Fake {
    /// Answer the first POST of the flow with 409, as if it existed.
    flow_exists: bool,
    /// Answer this execution request (counted from 1) with a 429.
    throttle_request: Option<u64>,
    /// Return a wrong total for this order.
    corrupt_order: Option<u64>,
    requests: AtomicU64,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// `METHOD path` of every flow request.
    flow_calls: Vec<String>,
    /// Content types of execution requests.
    content_types: HashMap<String, u64>,
    orders: Vec<u64>,
    connections: u64,
}

fn response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

/// The order sent: a multipart part named `order`, or `{"order": ...}`.
fn order_of(content_type: &str, body: &[u8]) -> Value {
    let text = std::str::from_utf8(body).unwrap();
    if let Some(boundary) = content_type.strip_prefix("multipart/form-data; boundary=") {
        let part = text
            .split(&format!("--{boundary}"))
            .find(|p| p.contains("name=\"order\""))
            .expect("a part named order");
        let (_, value) = part.split_once("\r\n\r\n").expect("part headers end");
        serde_json::from_str(value.trim_end_matches("\r\n")).expect("the part is JSON")
    } else {
        assert_eq!(content_type, "application/json");
        let body: Value = serde_json::from_str(text).unwrap();
        body["order"].clone()
    }
}

/// What the seed flow's JSONata transform makes of an order.
fn transform(order: &Value) -> Value {
    let total: f64 = order["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["quantity"].as_f64().unwrap() * i["price_per_unit"].as_f64().unwrap())
        .sum();
    json!({
        "order_id": order["order_id"],
        "customer_name": format!("{} {}", order["first_name"].as_str().unwrap(), order["last_name"].as_str().unwrap()),
        "address": format!("{}, {}", order["address"]["city"].as_str().unwrap(), order["address"]["country"].as_str().unwrap()),
        "total_price": total,
    })
}

async fn handle(fake: Arc<Fake>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(request.headers().contains_key("host"));
    let body = request.into_body().collect().await.unwrap().to_bytes();
    if path.starts_with("/api/v1/main/flows") {
        assert_eq!(content_type, "application/x-yaml");
        assert!(
            std::str::from_utf8(&body)
                .unwrap()
                .contains("id: seed-jsonata")
        );
        let first = {
            let mut seen = fake.seen.lock().unwrap();
            seen.flow_calls.push(format!("{method} {path}"));
            seen.flow_calls.len() == 1
        };
        if method == hyper::Method::POST && fake.flow_exists && first {
            return response(StatusCode::CONFLICT, json!({"message": "exists"}));
        }
        return response(StatusCode::OK, json!({"id": "seed-jsonata"}));
    }
    assert_eq!(path, "/api/v1/main/executions/company.team/seed-jsonata");
    assert_eq!(query, "wait=true");
    let count = fake.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if fake.throttle_request == Some(count) {
        let mut r = response(StatusCode::TOO_MANY_REQUESTS, json!({"message": "busy"}));
        r.headers_mut().insert("retry-after", "0".parse().unwrap());
        return r;
    }
    let order = order_of(&content_type, &body);
    let n = order["order_id"].as_u64().unwrap();
    {
        let mut seen = fake.seen.lock().unwrap();
        *seen
            .content_types
            .entry(content_type.split(';').next().unwrap().to_owned())
            .or_default() += 1;
        seen.orders.push(n);
    }
    let mut value = transform(&order);
    if fake.corrupt_order == Some(n) {
        value["total_price"] = json!(-1.0);
    }
    response(
        StatusCode::OK,
        json!({
            "id": format!("exec{n}"),
            "namespace": "company.team",
            "flowId": "seed-jsonata",
            "state": {"current": "SUCCESS", "histories": []},
            "taskRunList": [
                {"taskId": "transform", "state": {"current": "SUCCESS"}, "outputs": {"value": value}},
                {"taskId": "hello", "state": {"current": "SUCCESS"}, "outputs": {"values": {"log": value.to_string()}}}
            ]
        }),
    )
}

/// Serves `fake` on a loopback port until the returned runtime is dropped.
fn serve(fake: Arc<Fake>) -> (tokio::runtime::Runtime, SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            fake.seen.lock().unwrap().connections += 1;
            let fake = Arc::clone(&fake);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let fake = Arc::clone(&fake);
                    async move { Ok::<_, Infallible>(handle(fake, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (runtime, addr)
}

fn loadtest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peregrine-loadtest"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn run_against(fake: &Arc<Fake>, extra: &[&str]) -> Value {
    let (_runtime, addr) = serve(Arc::clone(fake));
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("http.json");
    let url = format!("http://{addr}");
    let mut args = vec![
        "--mode",
        "http",
        "--url",
        &url,
        "--rates",
        "200,400",
        "--executions",
        "40",
        "--connections",
        "4",
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let out = loadtest(&args);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn multipart_run_updates_the_flow_retries_backpressure_and_completes() {
    let fake = Arc::new(Fake {
        flow_exists: true,
        throttle_request: Some(5),
        ..Fake::default()
    });
    let report = run_against(&fake, &[]);
    let seen = fake.seen.lock().unwrap();
    assert_eq!(
        seen.flow_calls,
        vec![
            "POST /api/v1/main/flows".to_owned(),
            "PUT /api/v1/main/flows/company.team/seed-jsonata".to_owned()
        ],
        "409 on create, then an update"
    );
    assert_eq!(seen.content_types.get("multipart/form-data"), Some(&80));
    let mut orders = seen.orders.clone();
    orders.sort_unstable();
    let expected: Vec<u64> = (0..40).chain(0..40).collect::<Vec<_>>();
    let mut expected = expected;
    expected.sort_unstable();
    assert_eq!(orders, expected, "every order of both runs, once each");
    assert!(
        seen.connections <= 1 + 2 * 4,
        "keep-alive: at most one setup connection and the pool per run, saw {}",
        seen.connections
    );

    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["completed"], 40, "{run}");
        assert_eq!(run["failed"], 0, "{run}");
        for field in ["last_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"] {
            assert!(
                run[field].as_f64().is_some_and(|v| v > 0.0),
                "{field}: {run}"
            );
        }
    }
    assert_eq!(runs[0]["retried"], 1, "the 429 was retried once");
    assert_eq!(runs[1]["retried"], 0);
    assert_eq!(report["config"]["mode"], "http");
}

#[test]
fn json_bodies_and_a_wrong_output_counts_as_failed() {
    let fake = Arc::new(Fake {
        corrupt_order: Some(7),
        ..Fake::default()
    });
    let report = run_against(&fake, &["--body", "json"]);
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.flow_calls, vec!["POST /api/v1/main/flows".to_owned()]);
    assert_eq!(seen.content_types.get("application/json"), Some(&80));
    for run in report["runs"].as_array().unwrap() {
        assert_eq!(run["completed"], 39, "{run}");
        assert_eq!(run["failed"], 1, "order 7's total is wrong: {run}");
    }
}

#[test]
fn an_unreachable_server_fails_the_setup_clearly() {
    // Bind then drop: the port is very likely closed.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}");
    let out = loadtest(&[
        "--mode",
        "http",
        "--url",
        &url,
        "--rates",
        "10",
        "--executions",
        "1",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server"), "{stderr}");
}
