//! The API driven in-process with `oneshot`, no socket; the Kestra API
//! shape tests at the end go through the real binary on a loopback socket.

mod common;

use common::{multipart, parse_sse};

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use peregrine_server::config::{BasicAuth, ByteSize};
use peregrine_server::{AppState, Config, app};
use serde_json::{Value, json};
use tower::ServiceExt;

const HELLO: &str = r#"
id: hello
namespace: tests.api
labels:
  team: core
inputs:
  - id: name
    type: STRING
  - id: times
    type: INT
    defaults: 2
tasks:
  - id: greet
    type: io.kestra.plugin.core.debug.Return
    format: "hello {{ inputs.name }} x{{ inputs.times }}"
outputs:
  - id: greeting
    type: STRING
    value: "{{ outputs.greet.value }}"
"#;

const SLEEPY: &str = r#"
id: sleepy
namespace: tests.api
tasks:
  - id: before
    type: io.kestra.plugin.core.debug.Return
    format: one
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: two
"#;

const SHORT_NAP: &str = r#"
id: nap
namespace: tests.api
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.3S
  - id: done
    type: io.kestra.plugin.core.debug.Return
    format: done
"#;

const HOOK: &str = r#"
id: hook
namespace: tests.api
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.body.order }}/{{ trigger.parameters.p[0] }}/{{ trigger.headers['x-source'][0] }}"
triggers:
  - id: web
    type: io.kestra.plugin.core.trigger.Webhook
    key: s3cret
"#;

fn test_config() -> Config {
    let mut config = Config::default();
    config.executor.threads = std::num::NonZeroUsize::new(1);
    config
}

fn start(config: Config) -> (AppState, Router) {
    let state = AppState::start(config).expect("engine starts");
    (state.clone(), app(state))
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn call(app: &Router, request: Request<Body>) -> Reply {
    let response = tokio::time::timeout(Duration::from_secs(20), app.clone().oneshot(request))
        .await
        .expect("answers in time")
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(20), response.into_body().collect())
        .await
        .expect("body in time")
        .expect("body reads")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

fn req(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(uri)
}

async fn create_flow(app: &Router, yaml: &str) -> Reply {
    call(
        app,
        req("POST", "/api/v1/main/flows")
            .header(header::CONTENT_TYPE, "application/x-yaml")
            .body(Body::from(yaml.to_owned()))
            .expect("request"),
    )
    .await
}

async fn trigger_json(app: &Router, path: &str, inputs: Value) -> Reply {
    call(
        app,
        req("POST", path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(inputs.to_string()))
            .expect("request"),
    )
    .await
}

async fn wait_for_state(app: &Router, id: &str, wanted: &str) -> Value {
    for _ in 0..200 {
        let reply = call(
            app,
            req("GET", &format!("/api/v1/executions/{id}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
        if reply.status == StatusCode::OK && reply.json()["state"]["current"] == wanted {
            return reply.json();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("execution {id} never reached {wanted}");
}

#[tokio::test]
async fn flows_are_created_updated_read_listed_and_deleted() {
    let (_state, app) = start(test_config());
    let created = create_flow(&app, HELLO).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let flow = created.json();
    assert_eq!(flow["id"], "hello");
    assert_eq!(flow["namespace"], "tests.api");
    assert_eq!(flow["revision"], 1);
    assert_eq!(flow["tasks"][0]["id"], "greet");
    assert!(
        flow["source"]
            .as_str()
            .is_some_and(|s| s.contains("hello {{ inputs.name }}"))
    );

    let again = create_flow(&app, HELLO).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("already exists"))
    );

    let updated_yaml = HELLO.replace("hello {{", "hi {{");
    let updated = call(
        &app,
        req("PUT", "/api/v1/flows/tests.api/hello")
            .header(header::CONTENT_TYPE, "application/x-yaml")
            .body(Body::from(updated_yaml.clone()))
            .expect("request"),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text());
    assert_eq!(updated.json()["revision"], 2);

    let got = call(
        &app,
        req("GET", "/api/v1/main/flows/tests.api/hello")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["revision"], 2);
    assert!(got.json().get("source").is_none(), "no source unless asked");
    let with_source = call(
        &app,
        req("GET", "/api/v1/flows/tests.api/hello?source=true")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(with_source.json()["source"], updated_yaml.as_str());
    let first = call(
        &app,
        req(
            "GET",
            "/api/v1/flows/tests.api/hello?revision=1&source=true",
        )
        .body(Body::empty())
        .expect("request"),
    )
    .await;
    assert_eq!(first.json()["revision"], 1);
    assert_eq!(
        first.json()["source"],
        HELLO,
        "earlier revisions stay readable"
    );
    let never = call(
        &app,
        req("GET", "/api/v1/flows/tests.api/hello?revision=9")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(never.status, StatusCode::NOT_FOUND);

    let renamed = call(
        &app,
        req("PUT", "/api/v1/flows/tests.api/other")
            .body(Body::from(HELLO.to_owned()))
            .expect("request"),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::UNPROCESSABLE_ENTITY);
    let missing = call(
        &app,
        req("PUT", "/api/v1/flows/tests.api/hello2")
            .body(Body::from(HELLO.replace("id: hello", "id: hello2")))
            .expect("request"),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    create_flow(&app, SLEEPY).await;
    let list = call(
        &app,
        req("GET", "/api/v1/main/flows/tests.api")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    let ids: Vec<_> = list
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|f| f["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("hello"), json!("sleepy")]);

    let deleted = call(
        &app,
        req("DELETE", "/api/v1/main/flows/tests.api/hello")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = call(
        &app,
        req("GET", "/api/v1/main/flows/tests.api/hello")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.json()["message"].is_string());
    let deleted_twice = call(
        &app,
        req("DELETE", "/api/v1/main/flows/tests.api/hello")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(deleted_twice.status, StatusCode::NOT_FOUND);
    let recreated = create_flow(&app, HELLO).await;
    assert_eq!(
        recreated.json()["revision"],
        3,
        "revisions go on after a delete"
    );
}

#[tokio::test]
async fn invalid_flows_report_every_problem_with_its_position() {
    let (_state, app) = start(test_config());
    let reply = create_flow(
        &app,
        "id: broken\nnamespace: tests.api\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.debug.Nope\n",
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text()
    );
    let body = reply.json();
    let problem = &body["details"][0];
    assert_eq!(problem["path"], "tasks[0].type");
    assert_eq!(problem["line"], 5);
    assert!(problem["column"].as_u64().is_some_and(|c| c > 0));
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid flow"))
    );

    let syntax = create_flow(&app, "id: [unclosed\n").await;
    assert_eq!(syntax.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(syntax.json()["details"][0]["line"].as_u64().is_some());

    let empty = create_flow(&app, "").await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let not_utf8 = call(
        &app,
        req("POST", "/api/v1/flows")
            .body(Body::from(vec![0xff, 0xfe]))
            .expect("request"),
    )
    .await;
    assert_eq!(not_utf8.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn kafka_settings_librdkafka_refuses_are_refused_with_the_flow() {
    let (state, app) = start(test_config());
    let flow = |property: &str| {
        format!(
            "id: k\nnamespace: tests.api\ntriggers:\n  - id: t\n    \
             type: io.kestra.plugin.kafka.RealtimeTrigger\n    topic: orders\n    \
             groupId: g\n    properties:\n      bootstrap.servers: 127.0.0.1:1\n      \
             {property}\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    \
             format: x\n"
        )
    };
    for bad in ["no.such.setting: 1", "fetch.wait.max.ms: lots"] {
        let reply = create_flow(&app, &flow(bad)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            reply.text()
        );
        let body = reply.json();
        assert_eq!(
            body["details"][0]["path"], "triggers[0].properties",
            "{bad}"
        );
        let key = bad.split(':').next().unwrap();
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(key)),
            "{body}"
        );
        assert!(state.flows().get("tests.api", "k").is_none());
    }
    let good = create_flow(&app, &flow("fetch.wait.max.ms: 5")).await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.text());
}

#[tokio::test]
async fn executions_run_with_json_and_multipart_inputs_and_wait() {
    let (_state, app) = start(test_config());
    create_flow(&app, HELLO).await;

    let done = trigger_json(
        &app,
        "/api/v1/main/executions/tests.api/hello?wait=true&labels=env:test&labels=team:edge",
        json!({"name": "Ada"}),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let exec = done.json();
    assert_eq!(exec["state"]["current"], "SUCCESS");
    assert_eq!(exec["namespace"], "tests.api");
    assert_eq!(exec["flowId"], "hello");
    assert_eq!(exec["inputs"], json!({"name": "Ada", "times": 2}));
    assert_eq!(exec["outputs"]["greeting"], "hello Ada x2");
    assert_eq!(exec["taskRunList"][0]["outputs"]["value"], "hello Ada x2");
    assert!(exec["state"]["endDate"].is_string());
    let labels = exec["labels"].as_array().expect("labels");
    assert!(labels.contains(&json!({"key": "env", "value": "test"})));
    assert!(
        labels.contains(&json!({"key": "team", "value": "edge"})),
        "request labels override the flow's"
    );

    let (content_type, body) = multipart(&[("name", "Grace"), ("times", "3")]);
    let done = call(
        &app,
        req("POST", "/api/v1/executions/tests.api/hello?wait=true")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .expect("request"),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(done.json()["outputs"]["greeting"], "hello Grace x3");
    assert_eq!(done.json()["inputs"]["times"], 3, "multipart text is typed");

    // Without wait: the execution is answered as soon as it is created, and
    // can be read back at once.
    let created = trigger_json(
        &app,
        "/api/v1/executions/tests.api/hello",
        json!({"name": "Edsger"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let id = created.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 22);
    let ended = wait_for_state(&app, &id, "SUCCESS").await;
    assert_eq!(ended["outputs"]["greeting"], "hello Edsger x2");
}

#[tokio::test]
async fn bad_inputs_and_unknown_things_are_named() {
    let (_state, app) = start(test_config());
    create_flow(&app, HELLO).await;

    let missing = trigger_json(&app, "/api/v1/executions/tests.api/hello", json!({})).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.json()["details"][0]["input"], "name");

    let wrong = trigger_json(
        &app,
        "/api/v1/executions/tests.api/hello",
        json!({"name": "x", "times": "many"}),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong.json()["details"][0]["input"], "times");
    assert_eq!(wrong.json()["details"][0]["expected"], "INT");

    let not_object = trigger_json(&app, "/api/v1/executions/tests.api/hello", json!([1])).await;
    assert_eq!(not_object.status, StatusCode::BAD_REQUEST);
    let not_json = call(
        &app,
        req("POST", "/api/v1/executions/tests.api/hello")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{nope"))
            .expect("request"),
    )
    .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert!(not_json.json()["message"].is_string());

    let bad_label = trigger_json(
        &app,
        "/api/v1/executions/tests.api/hello?labels=nocolon",
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(bad_label.status, StatusCode::BAD_REQUEST);
    // Of the system labels, only the correlation id may be given.
    let system_label = trigger_json(
        &app,
        "/api/v1/executions/tests.api/hello?labels=system.readOnly:true",
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(system_label.status, StatusCode::UNPROCESSABLE_ENTITY);
    let correlated = trigger_json(
        &app,
        "/api/v1/executions/tests.api/hello?wait=true&labels=system.correlationId:batch-7",
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(correlated.status, StatusCode::OK, "{}", correlated.text());
    assert!(
        correlated.json()["labels"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "system.correlationId", "value": "batch-7"}))
    );
    let bad_wait = trigger_json(
        &app,
        "/api/v1/executions/tests.api/hello?wait=soon",
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(bad_wait.status, StatusCode::BAD_REQUEST);

    let unknown_flow = trigger_json(&app, "/api/v1/executions/tests.api/nope", json!({})).await;
    assert_eq!(unknown_flow.status, StatusCode::NOT_FOUND);
    assert!(
        unknown_flow.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("tests.api.nope"))
    );

    for path in [
        "/api/v1/executions/0000000000000000000000",
        "/api/v1/executions/not-an-id",
        "/api/v1/executions/0000000000000000000000/follow",
    ] {
        let reply = call(&app, req("GET", path).body(Body::empty()).expect("request")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert!(reply.json()["message"].is_string());
    }
    let no_route = call(
        &app,
        req("GET", "/api/v1/nothing/here")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(no_route.status, StatusCode::NOT_FOUND);
    assert!(no_route.json()["message"].is_string());
    let wrong_method = call(
        &app,
        req("PATCH", "/api/v1/flows")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.json()["message"].is_string());
    let bad_search = call(
        &app,
        req("GET", "/api/v1/executions/search?state=SLEEPY")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(bad_search.status, StatusCode::BAD_REQUEST);
    let bad_size = call(
        &app,
        req("GET", "/api/v1/executions/search?size=0")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(bad_size.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn search_filters_pages_and_counts() {
    let (_state, app) = start(test_config());
    create_flow(&app, HELLO).await;
    create_flow(
        &app,
        &HELLO.replace("namespace: tests.api", "namespace: tests.api.sub"),
    )
    .await;
    for n in 0..5 {
        let reply = trigger_json(
            &app,
            &format!("/api/v1/executions/tests.api/hello?wait=true&labels=n:{n}"),
            json!({"name": format!("n{n}")}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    trigger_json(
        &app,
        "/api/v1/executions/tests.api.sub/hello?wait=true",
        json!({"name": "sub"}),
    )
    .await;

    let search = |query: &'static str| {
        let app = app.clone();
        async move {
            let reply = call(
                &app,
                req("GET", &format!("/api/v1/main/executions/search?{query}"))
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            reply.json()
        }
    };
    let all = search("namespace=tests.api&flowId=hello").await;
    assert_eq!(all["total"], 6, "a namespace includes the ones below it");
    assert_eq!(all["results"].as_array().map(Vec::len), Some(6));
    let exact = search("namespace=tests.api.sub").await;
    assert_eq!(exact["total"], 1);
    let page = search("namespace=tests.api&size=2&page=3").await;
    assert_eq!(page["total"], 6);
    assert_eq!(page["results"].as_array().map(Vec::len), Some(2));
    let failed = search("state=FAILED").await;
    assert_eq!(failed["total"], 0);
    let success = search("state=SUCCESS&state=KILLED").await;
    assert_eq!(success["total"], 6);
    let labelled = search("labels=n:3").await;
    assert_eq!(labelled["total"], 1);
    assert_eq!(labelled["results"][0]["inputs"]["name"], "n3");
    let newest_first = search("namespace=tests.api&size=10").await;
    let dates: Vec<String> = newest_first["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            r["state"]["startDate"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted);
}

#[tokio::test]
async fn a_sleeping_execution_is_killed_once() {
    let (_state, app) = start(test_config());
    create_flow(&app, SLEEPY).await;
    let created = trigger_json(&app, "/api/v1/executions/tests.api/sleepy", json!({})).await;
    let id = created.json()["id"].as_str().expect("id").to_owned();
    wait_for_state(&app, &id, "RUNNING").await;

    let kill = call(
        &app,
        req("DELETE", &format!("/api/v1/main/executions/{id}/kill"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(kill.status, StatusCode::ACCEPTED);
    let killed = wait_for_state(&app, &id, "KILLED").await;
    let runs = killed["taskRunList"].as_array().expect("task runs");
    assert_eq!(runs[0]["state"]["current"], "SUCCESS");
    assert_eq!(runs[1]["state"]["current"], "KILLED", "the sleep stops");
    assert_eq!(runs.len(), 2, "nothing runs after the kill");

    let again = call(
        &app,
        req("DELETE", &format!("/api/v1/executions/{id}/kill"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let unknown = call(
        &app,
        req("DELETE", "/api/v1/executions/0000000000000000000000/kill")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

/// Reads SSE frames until the stream ends: (id, data) pairs.
async fn sse_frames(app: &Router, id: &str) -> Vec<(String, Value)> {
    let response = app
        .clone()
        .oneshot(
            req("GET", &format!("/api/v1/executions/{id}/follow"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/event-stream"))
    );
    let body = tokio::time::timeout(Duration::from_secs(20), response.into_body().collect())
        .await
        .expect("the stream ends after the execution")
        .expect("reads")
        .to_bytes();
    parse_sse(&String::from_utf8_lossy(&body))
}

#[tokio::test]
async fn followers_share_one_feed_and_end_with_an_end_frame() {
    let (state, app) = start(test_config());
    create_flow(&app, SHORT_NAP).await;
    let created = trigger_json(&app, "/api/v1/executions/tests.api/nap", json!({})).await;
    let id = created.json()["id"].as_str().expect("id").to_owned();

    let (a, b) = tokio::join!(sse_frames(&app, &id), sse_frames(&app, &id));
    for frames in [&a, &b] {
        let ids: Vec<&str> = frames.iter().map(|(id, _)| id.as_str()).collect();
        assert!(ids.len() >= 2, "{ids:?}");
        assert_eq!(ids.last(), Some(&"end"));
        assert!(
            ids[..ids.len() - 1].iter().all(|i| *i == "progress"),
            "{ids:?}"
        );
        assert_eq!(
            frames.last().map(|(_, d)| d["state"]["current"].clone()),
            Some(json!("SUCCESS"))
        );
        assert_eq!(frames[0].1["id"], id.as_str());
    }
    assert_eq!(state.metrics().followers(), 0, "both streams left");

    // Following an ended execution answers at once.
    let late = sse_frames(&app, &id).await;
    let ids: Vec<&str> = late.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, vec!["progress", "end"]);
}

#[tokio::test]
async fn webhooks_pass_body_headers_and_parameters() {
    let (_state, app) = start(test_config());
    let created = create_flow(&app, HOOK).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let reply = call(
        &app,
        req(
            "POST",
            "/api/v1/main/executions/webhook/tests.api/hook/s3cret?p=param",
        )
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-source", "unit")
        .body(Body::from(r#"{"order": 42}"#))
        .expect("request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let id = reply.json()["id"].as_str().expect("id").to_owned();
    let ended = wait_for_state(&app, &id, "SUCCESS").await;
    assert_eq!(ended["taskRunList"][0]["outputs"]["value"], "42/param/unit");
    // As Kestra shows it: which trigger, its type, and what flows read.
    let trigger = &ended["trigger"];
    assert_eq!(trigger["id"], "web");
    assert_eq!(trigger["type"], "io.kestra.plugin.core.trigger.Webhook");
    assert_eq!(trigger["variables"]["body"]["order"], 42);

    let get = call(
        &app,
        req("GET", "/api/v1/executions/webhook/tests.api/hook/s3cret")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(get.status, StatusCode::OK);
    let wrong_key = call(
        &app,
        req("POST", "/api/v1/executions/webhook/tests.api/hook/guess")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(wrong_key.status, StatusCode::NOT_FOUND);
    let no_flow = call(
        &app,
        req("PUT", "/api/v1/executions/webhook/tests.api/none/s3cret")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(no_flow.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn basic_auth_guards_the_api_but_not_health() {
    let mut config = test_config();
    config.server.basic_auth = Some(BasicAuth {
        username: "admin".into(),
        password: "pw".into(),
    });
    let (_state, app) = start(config);
    let anonymous = call(
        &app,
        req("GET", "/api/v1/flows/tests.api")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers.contains_key(header::WWW_AUTHENTICATE));
    assert!(anonymous.json()["message"].is_string());
    let wrong = call(
        &app,
        req("GET", "/api/v1/flows/tests.api")
            .header(header::AUTHORIZATION, "Basic YWRtaW46bm9wZQ==")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    // admin:pw
    let right = call(
        &app,
        req("GET", "/api/v1/flows/tests.api")
            .header(header::AUTHORIZATION, "Basic YWRtaW46cHc=")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(right.status, StatusCode::OK);
    let health = call(
        &app,
        req("GET", "/health").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(health.status, StatusCode::OK);
}

#[tokio::test]
async fn the_basic_scheme_is_case_insensitive_and_unknown_api_paths_need_auth_first() {
    let mut config = test_config();
    config.server.basic_auth = Some(BasicAuth {
        username: "admin".into(),
        password: "pw".into(),
    });
    let (_state, app) = start(config);
    // admin:pw, with the scheme as clients spell it, and without padding.
    for value in [
        "basic YWRtaW46cHc=",
        "BASIC YWRtaW46cHc=",
        "Basic  YWRtaW46cHc",
    ] {
        let reply = call(
            &app,
            req("GET", "/api/v1/flows/tests.api")
                .header(header::AUTHORIZATION, value)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{value}");
    }
    // A path or a method the API does not have says nothing before the
    // client is authenticated.
    for (method, path) in [
        ("GET", "/api/v1/nothing/here"),
        ("PATCH", "/api/v1/main/flows"),
    ] {
        let anonymous = call(
            &app,
            req(method, path).body(Body::empty()).expect("request"),
        )
        .await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let known = call(
            &app,
            req(method, path)
                .header(header::AUTHORIZATION, "Basic YWRtaW46cHc=")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
        assert!(
            matches!(
                known.status,
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ),
            "{method} {path}: {}",
            known.status
        );
    }
    let outside = call(
        &app,
        req("GET", "/nowhere").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(
        outside.status,
        StatusCode::NOT_FOUND,
        "only /api needs auth"
    );
}

#[tokio::test]
async fn a_text_input_that_is_not_utf8_is_a_400() {
    let (_state, app) = start(test_config());
    assert_eq!(create_flow(&app, HELLO).await.status, StatusCode::OK);
    let boundary = "utf8-boundary";
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n")
        .into_bytes();
    body.extend_from_slice(&[0xff, 0xfe, 0x41]);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let reply = call(
        &app,
        req("POST", "/api/v1/main/executions/tests.api/hello")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert!(
        reply.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("UTF-8")),
        "{}",
        reply.text()
    );
}

#[tokio::test]
async fn limits_answer_413_and_429_with_retry_after() {
    let mut config = test_config();
    config.server.request_body_limit = ByteSize(4096);
    config.executor.max_running = std::num::NonZeroUsize::new(2).expect("non-zero");
    let (_state, app) = start(config);
    let huge = format!("{HELLO}\n#{}\n", "x".repeat(8192));
    let too_big = create_flow(&app, &huge).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(too_big.json()["message"].is_string());

    create_flow(&app, SLEEPY).await;
    for _ in 0..2 {
        let ok = trigger_json(&app, "/api/v1/executions/tests.api/sleepy", json!({})).await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    let refused = trigger_json(&app, "/api/v1/executions/tests.api/sleepy", json!({})).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers[header::RETRY_AFTER], "1");
    assert!(refused.json()["message"].is_string());
}

#[tokio::test]
async fn health_and_metrics() {
    let (state, app) = start(test_config());
    create_flow(&app, HELLO).await;
    trigger_json(
        &app,
        "/api/v1/executions/tests.api/hello?wait=true",
        json!({"name": "m"}),
    )
    .await;
    let metrics = call(
        &app,
        req("GET", "/metrics").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text();
    assert!(
        text.contains("peregrine_executions_created_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("peregrine_executions_finished_total{state=\"SUCCESS\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("peregrine_execution_duration_seconds_count 1\n"),
        "{text}"
    );
    assert!(
        text.contains("peregrine_shard_inbox_depth{shard=\"0\"} 0\n"),
        "{text}"
    );
    assert!(text.contains("peregrine_sse_followers 0\n"), "{text}");

    let health = call(
        &app,
        req("GET", "/health").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(health.json()["status"], "UP");
    state.begin_shutdown();
    let down = call(
        &app,
        req("GET", "/health").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    let refused = trigger_json(
        &app,
        "/api/v1/executions/tests.api/hello",
        json!({"name": "late"}),
    )
    .await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn shutdown_answers_waiters_with_what_is_known() {
    let (state, app) = start(test_config());
    create_flow(&app, SLEEPY).await;
    let waiting = tokio::spawn({
        let app = app.clone();
        async move {
            trigger_json(
                &app,
                "/api/v1/executions/tests.api/sleepy?wait=true",
                json!({}),
            )
            .await
        }
    });
    let search = || {
        req("GET", "/api/v1/executions/search?state=RUNNING")
            .body(Body::empty())
            .expect("request")
    };
    for _ in 0..200 {
        if call(&app, search()).await.json()["total"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    state.begin_shutdown();
    let reply = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiter answers at shutdown")
        .expect("the task ran");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["state"]["current"], "RUNNING");
    tokio::task::spawn_blocking(move || state.shutdown())
        .await
        .expect("joined")
        .expect("engine stops and syncs");
}

// ---------------------------------------------------------------------------
// Kestra's API shapes, through the real server on a socket
// ---------------------------------------------------------------------------

const YAML: (&str, &str) = ("content-type", "application/x-yaml");

/// A flow of `namespace` whose Return task says `said`.
fn saying(namespace: &str, id: &str, said: &str) -> String {
    format!(
        "id: {id}\nnamespace: {namespace}\ntasks:\n  - id: say\n    type: io.kestra.plugin.core.debug.Return\n    format: {said}\n"
    )
}

async fn send_yaml(server: &common::Server, method: &str, path: &str, yaml: &str) -> common::Reply {
    let method = axum::http::Method::from_bytes(method.as_bytes()).expect("method");
    server.send(method, path, &[YAML], yaml.to_owned()).await
}

#[tokio::test]
async fn validate_answers_one_result_per_document_and_stores_nothing() {
    let server = common::Server::start(&[]).await;
    let valid = saying("tests.validate", "fine", "ok");
    let invalid = "id: bad\nnamespace: tests.validate\ntasks:\n  - id: a\n    type: Nope\n  - id: b\n    type: io.kestra.plugin.core.log.Log\n";
    let body = format!(
        "{valid}---\n{invalid}---\n- not\n- a map\n---\n\n---\nid: empty\nnamespace: tests.validate\ntasks: []\n"
    );
    for prefix in ["/api/v1/main", "/api/v1"] {
        let reply = send_yaml(&server, "POST", &format!("{prefix}/flows/validate"), &body).await;
        assert_eq!(reply.status, StatusCode::OK, "{prefix}: {:?}", reply.body);
        let results = reply.json();
        let results = results.as_array().expect("a JSON array");
        assert_eq!(results.len(), 5, "{results:?}");
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r["index"], i, "{r}");
            assert_eq!(r["outdated"], false, "{r}");
            assert_eq!(r["deprecationPaths"], json!([]), "{r}");
            assert_eq!(r["infos"], json!([]), "{r}");
            assert!(r["warnings"].is_array(), "{r}");
        }
        let valid = &results[0];
        assert_eq!(valid["constraints"], Value::Null, "{valid}");
        assert_eq!(
            (&valid["flow"], &valid["namespace"]),
            (&json!("fine"), &json!("tests.validate"))
        );
        let bad = &results[1];
        assert_eq!(
            bad["constraints"],
            "tasks[0].type at 5:11: unknown task type `Nope`\n\
             tasks[1].message at 6:5: missing required property `message`",
            "every problem, with its path and its place in that document"
        );
        assert_eq!(
            (&bad["flow"], &bad["namespace"]),
            (&json!("bad"), &json!("tests.validate"))
        );
        assert_eq!(
            results[2]["constraints"],
            "(flow) at 1:1: expected a map, found a list"
        );
        assert!(results[2].get("flow").is_none(), "{}", results[2]);
        assert!(
            results[3]["constraints"]
                .as_str()
                .is_some_and(|c| c.contains("the flow is empty")),
            "{}",
            results[3]
        );
        assert_eq!(
            results[4]["constraints"],
            "tasks at 3:8: must contain at least one task"
        );
        assert_eq!(results[4]["flow"], "empty");
    }
    let empty = send_yaml(&server, "POST", "/api/v1/main/flows/validate", "").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json().as_array().map(Vec::len), Some(1));
    assert!(empty.json()[0]["constraints"].is_string());

    // Nothing was stored, and GET on the same path still lists namespace
    // `validate`.
    let listed = server.get("/api/v1/main/flows/tests.validate").await;
    assert_eq!((listed.status, listed.json()), (StatusCode::OK, json!([])));
    let created = server.create_flow(&saying("validate", "f", "x")).await;
    assert_eq!(created.status, StatusCode::OK);
    let listed = server.get("/api/v1/main/flows/validate").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json()[0]["id"], "f", "{}", listed.json());
}

fn assert_flow_shape(flow: &Value, what: &str) {
    assert_eq!(flow["draft"], false, "{what}: {flow}");
    assert_eq!(flow["deleted"], false, "{what}: {flow}");
    assert_eq!(flow["disabled"], false, "{what}: {flow}");
    let updated = flow["updated"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no updated: {flow}"));
    assert!(
        chrono::DateTime::parse_from_rfc3339(updated).is_ok(),
        "{what}: updated `{updated}` is not RFC 3339"
    );
}

#[tokio::test]
async fn revisions_list_every_revision_oldest_first_each_with_its_source() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().join("data");
    let sources: Vec<String> = (1..=3)
        .map(|n| saying("tests.revisions", "hello", &format!("revision-{n}")))
        .collect();
    let mut server = common::Server::start_in(&dir, &[]).await;
    let created = server.create_flow(&sources[0]).await;
    assert_eq!(created.status, StatusCode::OK);
    assert_flow_shape(&created.json(), "create");
    for source in &sources[1..] {
        let updated = send_yaml(
            &server,
            "PUT",
            "/api/v1/main/flows/tests.revisions/hello",
            source,
        )
        .await;
        assert_eq!(updated.status, StatusCode::OK);
        assert_flow_shape(&updated.json(), "update");
    }
    for path in [
        "/api/v1/main/flows/tests.revisions/hello",
        "/api/v1/main/flows/tests.revisions/hello?source=true",
        "/api/v1/main/flows/tests.revisions/hello?revision=1",
    ] {
        let got = server.get(path).await;
        assert_eq!(got.status, StatusCode::OK, "{path}");
        assert_flow_shape(&got.json(), path);
    }
    let listed = server.get("/api/v1/main/flows/tests.revisions").await;
    assert_flow_shape(&listed.json()[0], "list");
    // Kestra answers labels as a list, whatever the YAML's form.
    let labelled = server
        .create_flow(&format!(
            "{}labels:\n  team: core\n  tier: 1\n",
            saying("tests.revisions", "labelled", "x")
        ))
        .await;
    assert_eq!(labelled.status, StatusCode::OK, "{:?}", labelled.body);
    let labelled = labelled.json();
    assert_eq!(
        labelled["labels"],
        json!([{"key": "team", "value": "core"}, {"key": "tier", "value": "1"}])
    );
    // A concurrency limit is kept with the flow; one below 1 is refused.
    let limited = server
        .create_flow(&format!(
            "{}concurrency:\n  limit: 2\n",
            saying("tests.revisions", "limited", "x")
        ))
        .await;
    assert_eq!(limited.status, StatusCode::OK, "{:?}", limited.body);
    assert_eq!(
        limited.json()["concurrency"]["limit"],
        2,
        "{:?}",
        limited.body
    );
    let refused = server
        .create_flow(&format!(
            "{}concurrency:\n  limit: 0\n",
            saying("tests.revisions", "unlimited", "x")
        ))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        refused.body
    );
    assert!(
        refused.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("concurrency.limit")),
        "{:?}",
        refused.body
    );

    let revisions = |reply: common::Reply| -> Vec<Value> {
        assert_eq!(reply.status, StatusCode::OK);
        reply.json().as_array().expect("a JSON array").clone()
    };
    let before = revisions(
        server
            .get("/api/v1/main/flows/tests.revisions/hello/revisions")
            .await,
    );
    assert_eq!(before.len(), 3, "{before:?}");
    for (n, revision) in before.iter().enumerate() {
        assert_eq!(revision["revision"], n + 1, "oldest first");
        assert_eq!(revision["source"], sources[n].as_str(), "its own source");
        assert_eq!(
            revision["tasks"][0]["format"],
            format!("revision-{}", n + 1)
        );
        assert_flow_shape(revision, "revisions");
    }
    let dates: Vec<&str> = before
        .iter()
        .map(|r| r["updated"].as_str().expect("date"))
        .collect();
    let parsed: Vec<_> = dates
        .iter()
        .map(|d| chrono::DateTime::parse_from_rfc3339(d).expect("RFC 3339"))
        .collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");
    let alias = revisions(
        server
            .get("/api/v1/flows/tests.revisions/hello/revisions")
            .await,
    );
    assert_eq!(alias, before);

    let unknown = server
        .get("/api/v1/main/flows/tests.revisions/nobody/revisions")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("nobody"))
    );

    // Each revision keeps its date across a restart.
    server.terminate();
    let server = common::Server::start_in(&dir, &[]).await;
    let after = revisions(
        server
            .get("/api/v1/main/flows/tests.revisions/hello/revisions")
            .await,
    );
    assert_eq!(
        after, before,
        "the same revisions, dates included, after a restart"
    );
}

/// (method, path under the API, the feature, Kestra's route) of a sample of
/// the routes Kestra has and Peregrine does not.
const NOT_YET: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/executions/e1/resume/validate",
        "validating resume inputs without resuming",
        "POST /executions/{executionId}/resume/validate",
    ),
    (
        "POST",
        "/executions/restart/by-query",
        "restarting executions in bulk",
        "POST /executions/restart/by-query",
    ),
    (
        "POST",
        "/executions/e1/actions/replay-with-inputs",
        "replaying an execution",
        "POST /executions/{executionId}/actions/replay-with-inputs",
    ),
    (
        "POST",
        "/executions/e1/pause",
        "pausing an execution",
        "POST /executions/{executionId}/pause",
    ),
    (
        "POST",
        "/executions/resume/by-ids",
        "resuming executions in bulk",
        "POST /executions/resume/by-ids",
    ),
    (
        "POST",
        "/executions/ns/flow/validate",
        "validating execution inputs",
        "POST /executions/{namespace}/{id}/validate",
    ),
    (
        "GET",
        "/namespaces/ns/files/export",
        "exporting namespace files as a zip",
        "GET /namespaces/{namespace}/files/export",
    ),
    (
        "POST",
        "/namespaces/ns/files/directory?path=/a",
        "empty namespace folders",
        "POST /namespaces/{namespace}/files/directory",
    ),
    (
        "GET",
        "/flows/ns/f/dependencies",
        "listing flow dependencies",
        "GET /flows/{namespace}/{id}/dependencies",
    ),
    (
        "POST",
        "/flows/import",
        "importing flows",
        "POST /flows/import",
    ),
    (
        "GET",
        "/flows/export/by-query",
        "exporting flows",
        "GET /flows/export/by-query",
    ),
    (
        "POST",
        "/flows/ns",
        "replacing a namespace's flows",
        "POST /flows/{namespace}",
    ),
];

#[tokio::test]
async fn kestra_routes_peregrine_lacks_answer_501_naming_them() {
    let server = common::Server::start(&[]).await;
    for prefix in ["/api/v1/main", "/api/v1"] {
        for (method, path, feature, route) in NOT_YET {
            let reply = send_yaml(&server, method, &format!("{prefix}{path}"), "").await;
            let what = format!("{method} {prefix}{path}");
            assert_eq!(
                reply.status,
                StatusCode::NOT_IMPLEMENTED,
                "{what}: {:?}",
                reply.body
            );
            let body = reply.json();
            assert_eq!(
                body["message"],
                format!("{feature} is not supported yet (Kestra's {route})"),
                "{what}"
            );
            assert_eq!(body["details"]["route"], *route, "{what}");
        }
    }

    // Served routes of the same shapes still answer as before.
    let resume = server
        .create_flow(&saying("tests.shapes", "resume", "triggered"))
        .await;
    assert_eq!(resume.status, StatusCode::OK);
    let triggered = server
        .trigger(
            "/api/v1/main/executions/tests.shapes/resume?wait=true",
            json!({}),
        )
        .await;
    assert_eq!(triggered.status, StatusCode::OK, "{:?}", triggered.body);
    assert_eq!(
        triggered.json()["flowId"],
        "resume",
        "a flow named `resume` still runs"
    );
    assert_eq!(triggered.json()["state"]["current"], "SUCCESS");
    let missing = server
        .trigger("/api/v1/main/executions/tests.shapes/graph", json!({}))
        .await;
    assert_eq!(
        missing.status,
        StatusCode::NOT_FOUND,
        "no such flow: {:?}",
        missing.body
    );
    let id = common::id_of(&triggered);
    let frames = server.follow(&id).await;
    assert_eq!(frames.last().map(|f| f.0.as_str()), Some("end"));
    let kill = server
        .send(
            axum::http::Method::DELETE,
            &format!("/api/v1/main/executions/{id}/kill"),
            &[],
            "",
        )
        .await;
    assert!(
        ![StatusCode::NOT_FOUND, StatusCode::NOT_IMPLEMENTED].contains(&kill.status),
        "kill is served: {} {:?}",
        kill.status,
        kill.body
    );
    let get = server.get(&format!("/api/v1/main/executions/{id}")).await;
    assert_eq!(get.status, StatusCode::OK);
    let resume_get = server.get("/api/v1/main/executions/e1/resume").await;
    assert_eq!(resume_get.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn unsupported_routes_ask_for_credentials_first() {
    let server = common::Server::start(&[
        ("PEREGRINE_SERVER_BASIC_AUTH_USERNAME", "admin"),
        ("PEREGRINE_SERVER_BASIC_AUTH_PASSWORD", "pw"),
    ])
    .await;
    // admin:pw
    let auth = ("authorization", "Basic YWRtaW46cHc=");
    for (method, path, _, _) in &NOT_YET[..6] {
        let method = axum::http::Method::from_bytes(method.as_bytes()).expect("method");
        let path = format!("/api/v1/main{path}");
        let anonymous = server.send(method.clone(), &path, &[], "").await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let known = server.send(method.clone(), &path, &[auth], "").await;
        assert_eq!(known.status, StatusCode::NOT_IMPLEMENTED, "{method} {path}");
    }
    let validate = server
        .send(
            axum::http::Method::POST,
            "/api/v1/main/flows/validate",
            &[YAML],
            "id: x",
        )
        .await;
    assert_eq!(validate.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn labels_set_on_a_finished_execution_survive_a_kill_9_and_a_flow_named_labels_still_runs() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().join("data");
    let mut server = common::Server::start_in(&dir, &[]).await;
    let created = server
        .create_flow(&saying("tests.labels", "hello", "hi"))
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let done = server
        .trigger(
            "/api/v1/main/executions/tests.labels/hello?wait=true",
            json!({}),
        )
        .await;
    let id = common::id_of(&done);
    let post = |path: String, body: &'static str| {
        let server = &server;
        async move {
            server
                .send(
                    axum::http::Method::POST,
                    &path,
                    &[("content-type", "application/json")],
                    body,
                )
                .await
        }
    };
    // 0.2x's path and 2.0's, merged by key.
    let old_path = post(
        format!("/api/v1/executions/{id}/labels"),
        r#"[{"key":"team","value":"data"},{"key":"env","value":"dev"}]"#,
    )
    .await;
    assert_eq!(old_path.status, StatusCode::OK, "{:?}", old_path.body);
    let new_path = post(
        format!("/api/v1/main/executions/{id}/actions/labels"),
        r#"[{"key":"env","value":"prod"}]"#,
    )
    .await;
    assert_eq!(new_path.status, StatusCode::OK, "{:?}", new_path.body);
    let labelled = new_path.json();
    let expected = json!([
        {"key": "system.correlationId", "value": id},
        {"key": "team", "value": "data"},
        {"key": "env", "value": "prod"},
    ]);
    assert_eq!(labelled["labels"], expected);
    assert_eq!(
        labelled["state"],
        done.json()["state"],
        "only labels change"
    );
    // Searches see the new labels.
    let found = server
        .get("/api/v1/main/executions/search?labels=env:prod")
        .await;
    assert_eq!(found.json()["total"], 1, "{:?}", found.body);

    for (body, status) in [
        ("not json", StatusCode::BAD_REQUEST),
        (r#"[{"key":"a"}]"#, StatusCode::BAD_REQUEST),
        (
            r#"[{"key":"system.correlationId","value":"forged"}]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"[{"key":"a","value":"1"},{"key":"a","value":"2"}]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let reply = post(format!("/api/v1/main/executions/{id}/actions/labels"), body).await;
        assert_eq!(reply.status, status, "{body}: {:?}", reply.body);
    }
    let unknown = post(
        "/api/v1/main/executions/nosuchexecution/actions/labels".to_owned(),
        "[]",
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // A flow named `labels` is still triggered on the shared path.
    let labels_flow = server
        .create_flow(&saying("tests.labels", "labels", "triggered"))
        .await;
    assert_eq!(labels_flow.status, StatusCode::OK);
    let triggered = post("/api/v1/executions/tests.labels/labels".to_owned(), "{}").await;
    assert_eq!(triggered.status, StatusCode::OK, "{:?}", triggered.body);
    assert_eq!(triggered.json()["flowId"], "labels");

    // Answered means durable.
    server.kill9();
    let server = common::Server::start_in(&dir, &[]).await;
    let after = server.get(&format!("/api/v1/main/executions/{id}")).await;
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(after.json()["labels"], expected);
}

const APPROVAL: &str = r#"
id: approval
namespace: tests.resume
tasks:
  - id: ask
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
  - id: said
    type: io.kestra.plugin.core.debug.Return
    format: "approved: {{ outputs.ask.onResume.approved }}"
"#;

#[tokio::test]
async fn a_paused_execution_is_resumed_through_both_paths_with_checked_inputs() {
    let server = common::Server::start(&[]).await;
    assert_eq!(server.create_flow(APPROVAL).await.status, StatusCode::OK);
    let start = || async {
        let started = server
            .trigger("/api/v1/main/executions/tests.resume/approval", json!({}))
            .await;
        let id = common::id_of(&started);
        server.wait_for_state(&id, "PAUSED").await;
        id
    };
    let json_post = |path: String, body: &'static str| {
        let server = &server;
        async move {
            server
                .send(
                    axum::http::Method::POST,
                    &path,
                    &[("content-type", "application/json")],
                    body,
                )
                .await
        }
    };

    // 0.2x: 204, inputs checked like a flow's.
    let id = start().await;
    let bad = json_post(
        format!("/api/v1/executions/{id}/resume"),
        r#"{"approved": "maybe"}"#,
    )
    .await;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        bad.body
    );
    let ok = json_post(
        format!("/api/v1/executions/{id}/resume"),
        r#"{"approved": true}"#,
    )
    .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{:?}", ok.body);
    let done = server.wait_for_state(&id, "SUCCESS").await;
    assert_eq!(done["taskRunList"][1]["outputs"]["value"], "approved: true");
    let again = json_post(
        format!("/api/v1/executions/{id}/resume"),
        r#"{"approved": true}"#,
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "not paused any more");

    // 2.0: multipart, 200 with the execution.
    let id = start().await;
    let (content_type, body) = common::multipart(&[("approved", "false")]);
    let resumed = server
        .send(
            axum::http::Method::POST,
            &format!("/api/v1/main/executions/{id}/actions/resume"),
            &[("content-type", content_type.as_str())],
            body,
        )
        .await;
    assert_eq!(resumed.status, StatusCode::OK, "{:?}", resumed.body);
    assert_eq!(resumed.json()["id"], id.as_str());
    assert_ne!(resumed.json()["state"]["current"], "PAUSED");
    let done = server.wait_for_state(&id, "SUCCESS").await;
    assert_eq!(
        done["taskRunList"][1]["outputs"]["value"],
        "approved: false"
    );
    let unknown = json_post(
        "/api/v1/main/executions/nosuchexecution/actions/resume".to_owned(),
        "{}",
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

const CHILD_NAP: &str = r#"
id: nap
namespace: tests.subflow
inputs:
  - id: ms
    type: INT
outputs:
  - id: slept
    type: STRING
    value: "{{ inputs.ms }} ms"
tasks:
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: "PT{{ inputs.ms / 1000 }}S"
"#;

const PARENT_CALL: &str = r#"
id: call
namespace: tests.subflow
tasks:
  - id: child
    type: io.kestra.plugin.core.flow.Subflow
    namespace: tests.subflow
    flowId: nap
    inputs:
      ms: 2000
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.child.outputs.slept }}"
"#;

/// The executions of a search, by flow id.
async fn search_ids(server: &common::Server, query: &str) -> Vec<(String, String)> {
    let found = server
        .get(&format!("/api/v1/main/executions/search?{query}"))
        .await;
    assert_eq!(found.status, StatusCode::OK, "{:?}", found.body);
    let mut ids: Vec<(String, String)> = found.json()["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("flowId"), s("id"))
        })
        .collect();
    ids.sort();
    ids
}

/// The id of the one execution `parent` started, once it exists.
async fn child_of(server: &common::Server, parent: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let query = format!("filters[triggerExecutionId][EQUALS]={parent}");
        if let [(_, id)] = search_ids(server, &query).await.as_slice() {
            return id.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no child started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_parent_and_its_subflow_survive_a_kill_9_and_each_ends_once() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().join("data");
    let mut server = common::Server::start_in(&dir, &[]).await;
    for yaml in [CHILD_NAP, PARENT_CALL] {
        let created = server.create_flow(yaml).await;
        assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    }
    let started = server
        .trigger("/api/v1/main/executions/tests.subflow/call", json!({}))
        .await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    let parent = common::id_of(&started);
    // Wait until the child runs, then kill the server mid-sleep.
    let child = child_of(&server, &parent).await;
    let children = search_ids(&server, "filters[childFilter][EQUALS]=CHILD").await;
    assert_eq!(children, [("nap".to_owned(), child.clone())]);
    let main = search_ids(&server, "filters[childFilter][EQUALS]=MAIN").await;
    assert_eq!(main, [("call".to_owned(), parent.clone())]);
    server.kill9();

    let server = common::Server::start_in(&dir, &[]).await;
    let ended = server.wait_for_state(&parent, "SUCCESS").await;
    let run = ended["taskRunList"]
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["taskId"] == "child"))
        .expect("the Subflow's task run")
        .clone();
    assert_eq!(run["outputs"]["executionId"], child);
    assert_eq!(run["outputs"]["state"], "SUCCESS");
    assert_eq!(run["outputs"]["outputs"]["slept"], "2000 ms");
    let child_execution = server.wait_for_state(&child, "SUCCESS").await;
    assert_eq!(
        child_execution["trigger"]["variables"]["executionId"],
        parent
    );
    assert_eq!(
        child_execution["trigger"]["type"],
        "io.kestra.plugin.core.flow.Subflow"
    );
    let all = search_ids(&server, "namespace=tests.subflow").await;
    assert_eq!(all.len(), 2, "no execution ran twice: {all:?}");
}

#[tokio::test]
async fn killing_a_parent_through_the_api_cascades_unless_told_not_to() {
    let server = common::Server::start(&[]).await;
    for yaml in [CHILD_NAP, &PARENT_CALL.replace("ms: 2000", "ms: 60000")] {
        let created = server.create_flow(yaml).await;
        assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    }
    for (query, child_state) in [("", "KILLED"), ("?isOnKillCascade=false", "RUNNING")] {
        let started = server
            .trigger("/api/v1/main/executions/tests.subflow/call", json!({}))
            .await;
        let parent = common::id_of(&started);
        let child = child_of(&server, &parent).await;
        let killed = server
            .send(
                axum::http::Method::DELETE,
                &format!("/api/v1/main/executions/{parent}/kill{query}"),
                &[],
                "",
            )
            .await;
        assert_eq!(killed.status, StatusCode::ACCEPTED, "{:?}", killed.body);
        server.wait_for_state(&parent, "KILLED").await;
        if child_state == "KILLED" {
            server.wait_for_state(&child, "KILLED").await;
        } else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let read = server
                .get(&format!("/api/v1/main/executions/{child}"))
                .await;
            assert_eq!(read.json()["state"]["current"], "RUNNING", "spared");
        }
    }
}

#[tokio::test]
async fn an_execution_given_a_schedule_date_waits_created_until_then() {
    let server = common::Server::start(&[]).await;
    let created = server
        .create_flow(&saying("tests.scheduled", "later", "hi"))
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let bad = server
        .trigger(
            "/api/v1/main/executions/tests.scheduled/later?scheduleDate=tomorrow",
            json!({}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{:?}", bad.body);
    let when = chrono::Utc::now() + chrono::Duration::milliseconds(1_500);
    let at = when.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let started = server
        .trigger(
            &format!("/api/v1/main/executions/tests.scheduled/later?scheduleDate={at}"),
            json!({}),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    assert_eq!(started.json()["state"]["current"], "CREATED");
    assert_eq!(started.json()["scheduleDate"], at.as_str());
    let id = common::id_of(&started);
    let ended = server.wait_for_state(&id, "SUCCESS").await;
    let history = ended["state"]["histories"].as_array().expect("histories");
    let running = history
        .iter()
        .find(|h| h["state"] == "RUNNING")
        .and_then(|h| h["date"].as_str())
        .expect("it ran");
    let running = chrono::DateTime::parse_from_rfc3339(running).expect("a date");
    let due = chrono::DateTime::parse_from_rfc3339(&at).expect("a date");
    assert!(running >= due, "began at {running}, not before {at}");
    assert!(when.timestamp_millis() == due.timestamp_millis());
}

#[tokio::test]
async fn a_failed_execution_is_restarted_and_replayed_through_the_api() {
    let server = common::Server::start(&[]).await;
    let flow = r#"
id: flaky
namespace: tests.restart
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: one
  - id: second
    type: io.kestra.plugin.core.debug.Return
    format: "{{ taskrun.attemptsCount >= 1 ? 'two' : ko }}"
"#;
    assert_eq!(server.create_flow(flow).await.status, StatusCode::OK);
    let started = server
        .trigger(
            "/api/v1/main/executions/tests.restart/flaky?wait=true",
            json!({}),
        )
        .await;
    assert_eq!(started.json()["state"]["current"], "FAILED");
    let id = common::id_of(&started);
    let first = started.json();
    let post = |path: String| {
        let server = &server;
        async move { server.send(axum::http::Method::POST, &path, &[], "").await }
    };
    // 0.2x's path: the same execution, RESTARTED, then SUCCESS.
    let restarted = post(format!("/api/v1/main/executions/{id}/restart")).await;
    assert_eq!(restarted.status, StatusCode::OK, "{:?}", restarted.body);
    assert_eq!(restarted.json()["id"], id.as_str());
    let done = server.wait_for_state(&id, "SUCCESS").await;
    assert_eq!(done["metadata"]["attemptNumber"], 2);
    assert_eq!(done["taskRunList"][0]["id"], first["taskRunList"][0]["id"]);
    assert_eq!(done["taskRunList"][1]["outputs"]["value"], "two");
    assert_eq!(
        done["taskRunList"][1]["attempts"].as_array().map(Vec::len),
        Some(2)
    );
    // Nothing failed any more: 422 with Kestra's message; unknown: 404.
    let again = post(format!("/api/v1/main/executions/{id}/actions/restart")).await;
    assert_eq!(
        again.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        again.body
    );
    assert_eq!(
        again.json()["message"],
        "No task found to restart execution from!"
    );
    let unknown = post("/api/v1/main/executions/5VuyF1ntMUCXbCpLfeULmx/restart".into()).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // A replay from the second task run: a new execution that keeps the
    // first task run's outputs.
    let second = done["taskRunList"][1]["id"].as_str().unwrap().to_owned();
    let replayed = post(format!(
        "/api/v1/main/executions/{id}/replay?taskRunId={second}"
    ))
    .await;
    assert_eq!(replayed.status, StatusCode::OK, "{:?}", replayed.body);
    let new_id = common::id_of(&replayed);
    assert_ne!(new_id, id);
    let replay = server.wait_for_state(&new_id, "SUCCESS").await;
    assert_eq!(replay["taskRunList"][0]["outputs"]["value"], "one");
    assert_eq!(replay["taskRunList"][1]["outputs"]["value"], "two");
    // Its lineage, as Kestra shows it: the restart was attempt 2.
    assert_eq!(replay["parentId"], id.as_str());
    assert_eq!(replay["originalId"], id.as_str());
    assert_eq!(replay["metadata"]["attemptNumber"], 3);
    assert_eq!(
        replay["metadata"]["originalCreatedDate"],
        first["metadata"]["originalCreatedDate"]
    );
    assert!(done.get("parentId").is_none(), "a restart has no parent");
    let bad = post(format!(
        "/api/v1/main/executions/{id}/actions/replay?taskRunId=5VuyF1ntMUCXbCpLfeULmx"
    ))
    .await;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        bad.body
    );
    // A running execution is not restarted: 409.
    let slow = r#"
id: slow
namespace: tests.restart
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
"#;
    assert_eq!(server.create_flow(slow).await.status, StatusCode::OK);
    let running = server
        .trigger("/api/v1/main/executions/tests.restart/slow", json!({}))
        .await;
    let running = common::id_of(&running);
    let refused = post(format!("/api/v1/main/executions/{running}/restart")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
}

#[tokio::test]
async fn a_restarted_execution_survives_a_kill_9_and_a_replay_reads_one_from_disk() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().join("data");
    let mut server = common::Server::start_in(&dir, &[]).await;
    let flow = r#"
id: flaky-nap
namespace: tests.restart
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: one
  - id: second
    type: io.kestra.plugin.core.debug.Return
    format: "{{ taskrun.attemptsCount >= 1 ? 'two' : ko }}"
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1.5S
"#;
    assert_eq!(server.create_flow(flow).await.status, StatusCode::OK);
    let started = server
        .trigger(
            "/api/v1/main/executions/tests.restart/flaky-nap?wait=true",
            json!({}),
        )
        .await;
    assert_eq!(started.json()["state"]["current"], "FAILED");
    let id = common::id_of(&started);
    let restarted = server
        .send(
            axum::http::Method::POST,
            &format!("/api/v1/main/executions/{id}/restart"),
            &[],
            "",
        )
        .await;
    assert_eq!(restarted.status, StatusCode::OK, "{:?}", restarted.body);
    // Killed while the restarted run sleeps.
    server.kill9();

    let server = common::Server::start_in(&dir, &[]).await;
    let done = server.wait_for_state(&id, "SUCCESS").await;
    let states: Vec<&str> = done["state"]["histories"]
        .as_array()
        .expect("histories")
        .iter()
        .filter_map(|h| h["state"].as_str())
        .collect();
    assert_eq!(
        states,
        [
            "CREATED",
            "RUNNING",
            "FAILED",
            "RESTARTED",
            "RUNNING",
            "SUCCESS"
        ]
    );
    assert_eq!(done["taskRunList"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        done["taskRunList"][0]["id"],
        started.json()["taskRunList"][0]["id"]
    );
    // Replayed from its nap after the restart of the server: a new one.
    let nap = done["taskRunList"][2]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let replayed = server
        .send(
            axum::http::Method::POST,
            &format!("/api/v1/main/executions/{id}/actions/replay?taskRunId={nap}"),
            &[],
            "",
        )
        .await;
    assert_eq!(replayed.status, StatusCode::OK, "{:?}", replayed.body);
    let new_id = common::id_of(&replayed);
    let replay = server.wait_for_state(&new_id, "SUCCESS").await;
    assert_eq!(replay["taskRunList"][1]["outputs"]["value"], "two");
    let all = search_ids(&server, "namespace=tests.restart").await;
    assert_eq!(all.len(), 2, "{all:?}");
}

#[tokio::test]
async fn failed_executions_are_restarted_in_bulk_by_id_and_others_named() {
    let server = common::Server::start(&[]).await;
    let flow = r#"
id: flaky-bulk
namespace: tests.restart
inputs:
  - id: fail
    type: BOOLEAN
tasks:
  - id: maybe
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.fail and taskrun.attemptsCount == 0 ? ko : 'fine' }}"
"#;
    assert_eq!(server.create_flow(flow).await.status, StatusCode::OK);
    let run = |fail: bool| {
        let server = &server;
        async move {
            let reply = server
                .trigger(
                    "/api/v1/main/executions/tests.restart/flaky-bulk?wait=true",
                    json!({ "fail": fail }),
                )
                .await;
            common::id_of(&reply)
        }
    };
    let (failed, fine) = (run(true).await, run(false).await);
    server.wait_for_state(&failed, "FAILED").await;
    let bulk = |ids: Value| {
        let server = &server;
        async move {
            server
                .send(
                    axum::http::Method::POST,
                    "/api/v1/main/executions/restart/by-ids",
                    &[("content-type", "application/json")],
                    ids.to_string(),
                )
                .await
        }
    };
    let refused = bulk(json!([failed, fine, "5VuyF1ntMUCXbCpLfeULmx"])).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        refused.body
    );
    let body = refused.json();
    assert_eq!(body["message"], "invalid bulk restart");
    let reasons: Vec<(String, String)> = body["details"]["invalids"]
        .as_array()
        .expect("invalids")
        .iter()
        .map(|i| {
            (
                i["invalidValue"].as_str().unwrap_or_default().to_owned(),
                i["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (fine.clone(), "execution not in state FAILED".to_owned()),
            (
                "5VuyF1ntMUCXbCpLfeULmx".to_owned(),
                "execution not found".to_owned()
            ),
        ]
    );
    // Refused as a whole: the failed one was not restarted.
    let still = server
        .get(&format!("/api/v1/main/executions/{failed}"))
        .await;
    assert_eq!(still.json()["state"]["current"], "FAILED");
    let done = bulk(json!([failed])).await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    assert_eq!(done.json()["count"], 1);
    let restarted = server.wait_for_state(&failed, "SUCCESS").await;
    assert_eq!(restarted["metadata"]["attemptNumber"], 2);
}
