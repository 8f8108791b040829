//! The web UI as the server serves it, and the endpoints made for it, over
//! a real socket against the real binary. The pages themselves are driven
//! in a browser by `server/ui/tests/e2e.mjs`.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::Server;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

const AUTH_ENV: [(&str, &str); 2] = [
    ("PEREGRINE_SERVER_BASIC_AUTH_USERNAME", "admin"),
    ("PEREGRINE_SERVER_BASIC_AUTH_PASSWORD", "s3cret"),
];
/// `admin:s3cret`.
const CREDENTIALS: &str = "Basic YWRtaW46czNjcmV0";

fn header_of(reply: &common::Reply, name: header::HeaderName) -> &str {
    reply
        .headers
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The script the index page loads, as its `src`.
fn script_of(index: &str) -> String {
    let start = index.find("src=\"/ui/assets/").expect("a bundled script") + 5;
    let end = start + index[start..].find('"').expect("a closing quote");
    index[start..end].to_owned()
}

#[tokio::test]
async fn the_ui_is_served_from_the_binary_with_pages_assets_and_gzip() {
    let server = Server::start(&[]).await;

    let root = server.get("/").await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    assert_eq!(header_of(&root, header::LOCATION), "/ui/");

    let index = server.get("/ui/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(header_of(&index, header::CONTENT_TYPE).starts_with("text/html"));
    assert_eq!(header_of(&index, header::CACHE_CONTROL), "no-cache");
    let html = String::from_utf8_lossy(&index.body).into_owned();
    assert!(html.contains("<div id=\"app\">"), "{html}");

    // A page of the app, however deep and whatever dots its names hold.
    for page in [
        "/ui/main/executions",
        "/ui/main/flows/edit/company.team/my.flow",
        "/ui/main/executions/company.team/hello/5vJ3gQ0n6LWvxmKH0v5oYl/gantt",
    ] {
        let reply = server.get(page).await;
        assert_eq!(reply.status, StatusCode::OK, "{page}");
        assert_eq!(reply.body, index.body, "{page} is the app");
    }

    let script = script_of(&html);
    let plain = server.get(&script).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(header_of(&plain, header::CONTENT_TYPE).starts_with("text/javascript"));
    assert!(header_of(&plain, header::CACHE_CONTROL).contains("immutable"));
    assert_eq!(header_of(&plain, header::CONTENT_ENCODING), "");
    let zipped = server
        .send(
            Method::GET,
            &script,
            &[("accept-encoding", "gzip, br")],
            Bytes::new(),
        )
        .await;
    assert_eq!(header_of(&zipped, header::CONTENT_ENCODING), "gzip");
    assert_eq!(&zipped.body[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(zipped.body.len() * 2 < plain.body.len(), "gzip pays");

    let missing = server.get("/ui/assets/index-gone.js").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "not the app");
    assert_eq!(
        server.get(&format!("{script}.gz")).await.status,
        StatusCode::NOT_FOUND,
        "the gzip copies are not files of their own"
    );
}

#[tokio::test]
async fn the_ui_is_behind_the_apis_auth() {
    let server = Server::start(&AUTH_ENV).await;
    for path in ["/ui", "/ui/", "/ui/main/flows"] {
        let bare = server.get(path).await;
        assert_eq!(bare.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(header_of(&bare, header::WWW_AUTHENTICATE).starts_with("Basic "));
    }
    let with = server
        .send(
            Method::GET,
            "/ui/main/flows",
            &[("authorization", CREDENTIALS)],
            Bytes::new(),
        )
        .await;
    assert_eq!(with.status, StatusCode::OK);
    let live = server.get("/api/peregrine/executions/follow").await;
    assert_eq!(live.status, StatusCode::UNAUTHORIZED, "the UI's stream too");
    // The redirect names no page and gives nothing away.
    assert_eq!(server.get("/").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn validation_says_where_each_problem_is() {
    let server = Server::start(&[]).await;
    let reply = server
        .send(
            Method::POST,
            "/api/v1/main/flows/validate",
            &[("content-type", "application/x-yaml")],
            "id: f\nnamespace: t\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n  - id: b\n    type: io.kestra.nowhere.Thing\n",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let problems = &reply.json()[0]["problems"];
    assert_eq!(problems.as_array().map(Vec::len), Some(1), "{problems}");
    assert_eq!(problems[0]["path"], "tasks[1].type");
    assert_eq!(problems[0]["line"], 8);
    assert_eq!(problems[0]["column"], 11);
    assert!(
        problems[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("io.kestra.nowhere.Thing")),
        "{problems}"
    );
}

/// Reads `changes` events from a live stream until `done` holds of the
/// briefs seen so far (at most 20 s); every brief seen, in order.
async fn watch_until(
    server: &Server,
    query: &str,
    started: impl AsyncFnOnce(),
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let request = Request::builder()
        .uri(format!(
            "{}/api/peregrine/executions/follow?{query}",
            server.base
        ))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = server.client.request(request).await.expect("connects");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/event-stream"))
    );
    started().await;
    let mut body = response.into_body();
    let mut text = String::new();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done(&seen) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("not done within 20 s; seen {seen:?}"))
            .expect("the stream goes on")
            .expect("reads");
        let Ok(data) = frame.into_data() else {
            continue;
        };
        text.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            let name = event.lines().find_map(|l| l.strip_prefix("event:"));
            let data = event.lines().find_map(|l| l.strip_prefix("data:"));
            match (name.map(str::trim), data) {
                (Some("changes"), Some(data)) => {
                    let briefs: Vec<Value> = serde_json::from_str(data.trim()).expect("JSON");
                    assert!(!briefs.is_empty(), "no empty event");
                    seen.extend(briefs);
                }
                (None, None) => {} // a keep-alive comment
                other => panic!("unexpected event {other:?}"),
            }
        }
    }
    seen
}

#[tokio::test]
async fn the_live_stream_sends_each_matching_change_in_brief() {
    let server = Server::start(&[]).await;
    for id in ["shown", "hidden"] {
        let created = server
            .create_flow(&format!(
                "id: {id}\nnamespace: tests.live\ntasks:\n  - id: nap\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT0.3S\n"
            ))
            .await;
        assert_eq!(created.status, StatusCode::OK);
    }
    let ids = std::sync::Mutex::new(Vec::new());
    let seen = watch_until(
        &server,
        "namespace=tests.live&flowId=shown&labels=team:blue",
        async || {
            for (flow, label) in [("hidden", "blue"), ("shown", "red"), ("shown", "blue")] {
                let reply = server
                    .send(
                        Method::POST,
                        &format!("/api/v1/main/executions/tests.live/{flow}?labels=team:{label}"),
                        &[("content-type", "application/json")],
                        json!({}).to_string(),
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::OK);
                ids.lock().expect("ids").push(common::id_of(&reply));
            }
        },
        |seen| seen.iter().any(|b| b["state"]["current"] == "SUCCESS"),
    )
    .await;
    let wanted = ids.lock().expect("ids")[2].clone();
    assert!(
        seen.iter().all(|b| b["id"] == wanted.as_str()),
        "only the matching execution: {seen:?}"
    );
    let last = seen.last().expect("a brief");
    assert_eq!(last["namespace"], "tests.live");
    assert_eq!(last["flowId"], "shown");
    assert!(
        last["labels"]
            .as_array()
            .is_some_and(|l| l.contains(&json!({"key": "team", "value": "blue"}))),
        "{last}"
    );
    let states: Vec<&str> = last["state"]["histories"]
        .as_array()
        .expect("histories")
        .iter()
        .filter_map(|h| h["state"].as_str())
        .collect();
    assert_eq!(states, ["CREATED", "RUNNING", "SUCCESS"]);
    assert!(last["state"]["endDate"].is_string());
    assert!(
        last.get("taskRunList").is_none(),
        "a brief has no task runs"
    );
    // What the stream showed is what the API answers.
    let read = server
        .get(&format!("/api/v1/main/executions/{wanted}"))
        .await
        .json();
    assert_eq!(read["state"]["current"], "SUCCESS");
    assert_eq!(read["state"]["endDate"], last["state"]["endDate"]);
}
