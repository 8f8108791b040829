//! The real `peregrine server` binary on a loopback port, driven over HTTP.

mod common;

use common::*;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use serde_json::json;

const HELLO: &str = r#"
id: hello
namespace: e2e
inputs:
  - id: name
    type: STRING
tasks:
  - id: greet
    type: io.kestra.plugin.core.debug.Return
    format: "hello {{ inputs.name }}"
outputs:
  - id: greeting
    type: STRING
    value: "{{ outputs.greet.value }}"
"#;

const SLEEPY: &str = r#"
id: sleepy
namespace: e2e
inputs:
  - id: nap
    type: DURATION
    defaults: PT30S
tasks:
  - id: before
    type: io.kestra.plugin.core.debug.Return
    format: one
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: "{{ inputs.nap }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: two
"#;

const HOOK: &str = r#"
id: hook
namespace: e2e
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.body.name }} via {{ trigger.parameters.via[0] }}"
triggers:
  - id: web
    type: io.kestra.plugin.core.trigger.Webhook
    key: k3y
"#;

#[tokio::test]
async fn the_api_over_a_real_socket() {
    let mut server = Server::start(&[]).await;

    // Flows.
    let created = server.create_flow(HELLO).await;
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(created.json()["revision"], 1);
    assert_eq!(server.create_flow(HELLO).await.status, StatusCode::CONFLICT);
    let invalid = server
        .create_flow(
            "id: x\nnamespace: e2e\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.Unknown\n",
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.json()["details"][0]["line"], 5);
    let updated = server
        .send(
            Method::PUT,
            "/api/v1/flows/e2e/hello",
            &[("content-type", "application/x-yaml")],
            HELLO.replace("hello {{", "hi {{"),
        )
        .await;
    assert_eq!(updated.json()["revision"], 2);
    let source = server.get("/api/v1/flows/e2e/hello?source=true").await;
    assert!(
        source.json()["source"]
            .as_str()
            .is_some_and(|s| s.contains("hi {{"))
    );
    for flow in [SLEEPY, HOOK] {
        assert_eq!(server.create_flow(flow).await.status, StatusCode::OK);
    }
    let listed = server.get("/api/v1/main/flows/e2e").await;
    assert_eq!(listed.json().as_array().map(Vec::len), Some(3));

    // Trigger with multipart and wait.
    let (content_type, body) = multipart(&[("name", "Ada")]);
    let done = server
        .send(
            Method::POST,
            "/api/v1/main/executions/e2e/hello?wait=true&labels=via:multipart",
            &[("content-type", &content_type)],
            body,
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    let exec = done.json();
    assert_eq!(exec["state"]["current"], "SUCCESS");
    assert_eq!(exec["outputs"]["greeting"], "hi Ada");
    assert_eq!(exec["flowRevision"], 2);
    let labels = exec["labels"].as_array().expect("labels");
    assert!(
        labels.contains(&json!({"key": "via", "value": "multipart"})),
        "{labels:?}"
    );

    // Trigger with JSON, no wait: read back until it ends.
    let created = server
        .trigger("/api/v1/executions/e2e/hello", json!({"name": "Grace"}))
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let ended = server.wait_for_state(&id_of(&created), "SUCCESS").await;
    assert_eq!(ended["outputs"]["greeting"], "hi Grace");

    // Bad input, unknown flow, unknown execution.
    let bad = server
        .trigger("/api/v1/executions/e2e/hello", json!({}))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["details"][0]["input"], "name");
    let nope = server
        .trigger("/api/v1/executions/e2e/nope", json!({}))
        .await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND);
    assert_eq!(
        server
            .get("/api/v1/executions/0000000000000000000000")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let malformed = server
        .send(
            Method::POST,
            "/api/v1/executions/e2e/hello",
            &[("content-type", "application/json")],
            "{",
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(malformed.json()["message"].is_string());

    // Search.
    let search = server
        .get("/api/v1/main/executions/search?namespace=e2e&flowId=hello&state=SUCCESS")
        .await;
    assert_eq!(search.status, StatusCode::OK);
    assert_eq!(search.json()["total"], 2);

    // Two followers at once on a short sleep, fed by one fan-out.
    let short = server
        .trigger("/api/v1/executions/e2e/sleepy", json!({"nap": "PT0.5S"}))
        .await;
    let short_id = id_of(&short);
    let (a, b) = tokio::join!(server.follow(&short_id), server.follow(&short_id));
    for frames in [&a, &b] {
        let ids: Vec<&str> = frames.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids.last(), Some(&"end"), "{ids:?}");
        assert!(
            ids.len() >= 2 && ids[..ids.len() - 1].iter().all(|i| *i == "progress"),
            "{ids:?}"
        );
        let last = &frames.last().expect("frames").1;
        assert_eq!(last["state"]["current"], "SUCCESS");
        assert_eq!(last["taskRunList"][2]["outputs"]["value"], "two");
    }

    // Kill a sleeping execution: 202, KILLED, then 409.
    let sleeping = server
        .trigger("/api/v1/executions/e2e/sleepy", json!({}))
        .await;
    let sleeping_id = id_of(&sleeping);
    server.wait_for_state(&sleeping_id, "RUNNING").await;
    let follower = {
        let id = sleeping_id.clone();
        let server = &server;
        async move { server.follow(&id).await }
    };
    let kill_path = format!("/api/v1/main/executions/{sleeping_id}/kill");
    let killer = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        server
            .send(Method::DELETE, &kill_path, &[], Bytes::new())
            .await
    };
    let (frames, kill) = tokio::join!(follower, killer);
    assert_eq!(kill.status, StatusCode::ACCEPTED);
    assert_eq!(
        frames
            .last()
            .map(|(id, d)| (id.as_str(), d["state"]["current"].clone())),
        Some(("end", json!("KILLED")))
    );
    let killed = server.wait_for_state(&sleeping_id, "KILLED").await;
    assert_eq!(killed["taskRunList"][1]["state"]["current"], "KILLED");
    assert_eq!(killed["taskRunList"].as_array().map(Vec::len), Some(2));
    let again = server
        .send(Method::DELETE, &kill_path, &[], Bytes::new())
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    // Webhook.
    let hooked = server
        .send(
            Method::POST,
            "/api/v1/executions/webhook/e2e/hook/k3y?via=curl",
            &[("content-type", "application/json")],
            r#"{"name": "Barbara"}"#,
        )
        .await;
    assert_eq!(hooked.status, StatusCode::OK);
    let ended = server.wait_for_state(&id_of(&hooked), "SUCCESS").await;
    assert_eq!(
        ended["taskRunList"][0]["outputs"]["value"],
        "Barbara via curl"
    );
    let wrong = server
        .send(
            Method::POST,
            "/api/v1/executions/webhook/e2e/hook/nope",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND);

    // Metrics.
    let metrics = server.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        text.contains("peregrine_executions_created_total 5\n"),
        "{text}"
    );
    assert!(
        text.contains("peregrine_executions_finished_total{state=\"SUCCESS\"} 4\n"),
        "{text}"
    );
    assert!(
        text.contains("peregrine_executions_finished_total{state=\"KILLED\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("peregrine_shard_inbox_depth{shard=\"1\"}"),
        "{text}"
    );
    assert!(text.contains("peregrine_sse_followers 0\n"), "{text}");
    // The executions were journaled: the WAL synced, and says so.
    let syncs: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("peregrine_wal_fsync_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no WAL sync count in {text}"));
    assert!(syncs > 0, "{text}");
    let bytes: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("peregrine_wal_synced_bytes_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(bytes > 0, "{text}");
    assert!(
        text.contains("peregrine_execution_duration_seconds_bucket{le=\"+Inf\"} 5\n"),
        "{text}"
    );

    // Delete, then the flow is gone.
    let deleted = server
        .send(Method::DELETE, "/api/v1/flows/e2e/hello", &[], Bytes::new())
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.get("/api/v1/flows/e2e/hello").await.status,
        StatusCode::NOT_FOUND
    );

    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
}

#[tokio::test]
async fn limits_and_auth_over_a_real_socket() {
    let mut server = Server::start(&[
        ("PEREGRINE_SERVER_REQUEST_BODY_LIMIT", "64KiB"),
        ("PEREGRINE_EXECUTOR_MAX_RUNNING", "1"),
        ("PEREGRINE_SERVER_BASIC_AUTH_USERNAME", "kestra"),
        ("PEREGRINE_SERVER_BASIC_AUTH_PASSWORD", "s3cret"),
    ])
    .await;
    // kestra:s3cret
    let auth = [
        ("authorization", "Basic a2VzdHJhOnMzY3JldA=="),
        ("content-type", "application/x-yaml"),
    ];

    let anonymous = server.create_flow(SLEEPY).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.json()["message"].is_string());
    assert_eq!(
        server.get("/api/v1/flows/e2e").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.get("/health").await.status, StatusCode::OK);

    let created = server
        .send(Method::POST, "/api/v1/flows", &auth, SLEEPY)
        .await;
    assert_eq!(created.status, StatusCode::OK);

    let too_big = server
        .send(
            Method::POST,
            "/api/v1/flows",
            &auth,
            format!("{SLEEPY}\n#{}\n", "x".repeat(100 << 10)),
        )
        .await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(too_big.json()["message"].is_string());

    let first = server
        .send(
            Method::POST,
            "/api/v1/executions/e2e/sleepy",
            &auth,
            Bytes::new(),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let second = server
        .send(
            Method::POST,
            "/api/v1/executions/e2e/sleepy",
            &auth,
            Bytes::new(),
        )
        .await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers[header::RETRY_AFTER], "1");

    // Once the first is killed, there is room again.
    let kill = server
        .send(
            Method::DELETE,
            &format!("/api/v1/executions/{}/kill", id_of(&first)),
            &auth,
            Bytes::new(),
        )
        .await;
    assert_eq!(kill.status, StatusCode::ACCEPTED);
    let mut admitted = false;
    for _ in 0..100 {
        let reply = server
            .send(
                Method::POST,
                "/api/v1/executions/e2e/sleepy",
                &auth,
                Bytes::new(),
            )
            .await;
        if reply.status == StatusCode::OK {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted);

    let status = server.terminate();
    assert!(status.success(), "{status}");
}

/// A request: method, path, headers, body.
type Attempt<'a> = (Method, &'a str, Vec<(&'a str, &'a str)>, Bytes);

#[tokio::test]
async fn no_request_can_take_the_server_down() {
    let mut server = Server::start(&[]).await;
    server.create_flow(HELLO).await;
    let (content_type, _) = multipart(&[]);
    let nasty: Vec<Attempt<'_>> = vec![
        (
            Method::POST,
            "/api/v1/flows",
            vec![],
            Bytes::from_static(b"\xff\xfe\x00"),
        ),
        (
            Method::POST,
            "/api/v1/flows",
            vec![],
            Bytes::from_static(b"- just\n- a list\n"),
        ),
        (
            Method::POST,
            "/api/v1/flows",
            vec![],
            Bytes::from_static(b"id: &a [*a]\n"),
        ),
        (
            Method::POST,
            "/api/v1/executions/e2e/hello",
            vec![("content-type", content_type.as_str())],
            Bytes::from_static(b"garbage"),
        ),
        (
            Method::POST,
            "/api/v1/executions/e2e/hello",
            vec![("content-type", "multipart/form-data")],
            Bytes::from_static(b"x"),
        ),
        (
            Method::POST,
            "/api/v1/executions/e2e/hello",
            vec![("content-type", "text/plain")],
            Bytes::from_static(b"name=x"),
        ),
        (
            Method::POST,
            "/api/v1/executions/e2e/hello?labels=%ZZ",
            vec![],
            Bytes::new(),
        ),
        (
            Method::GET,
            "/api/v1/executions/search?page=-1",
            vec![],
            Bytes::new(),
        ),
        (
            Method::GET,
            "/api/v1/executions/search?size=99999999999999999999999",
            vec![],
            Bytes::new(),
        ),
        (
            Method::GET,
            "/api/v1/executions/%F0%9F%92%A5/follow",
            vec![],
            Bytes::new(),
        ),
        (
            Method::DELETE,
            "/api/v1/executions/zzzzzzzzzzzzzzzzzzzzzz/kill",
            vec![],
            Bytes::new(),
        ),
        (Method::GET, "/api/v1/flows/%00/%00", vec![], Bytes::new()),
        (
            Method::PUT,
            "/api/v1/flows/e2e/hello",
            vec![],
            Bytes::from_static(b"{}"),
        ),
        (
            Method::GET,
            "/api/v1/executions/webhook/e2e/hello/x",
            vec![],
            Bytes::new(),
        ),
    ];
    for (method, path, headers, body) in nasty {
        let reply = server.send(method.clone(), path, &headers, body).await;
        assert!(
            reply.status.is_client_error(),
            "{method} {path}: {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        assert!(reply.json()["message"].is_string(), "{method} {path}");
    }
    assert!(server.is_running());
    assert_eq!(server.get("/health").await.status, StatusCode::OK);
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_follow_streams_and_exits_cleanly() {
    let mut server = Server::start(&[("PEREGRINE_SERVER_SHUTDOWN_TIMEOUT", "5s")]).await;
    server.create_flow(SLEEPY).await;
    let sleeping = server
        .trigger("/api/v1/executions/e2e/sleepy", json!({}))
        .await;
    let id = id_of(&sleeping);
    let request = Request::builder()
        .uri(format!("{}/api/v1/executions/{id}/follow", server.base))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = server
        .client
        .request(request)
        .await
        .expect("follow connects");
    assert_eq!(response.status(), StatusCode::OK);
    let started = Instant::now();
    let status = tokio::task::block_in_place(|| server.terminate());
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no need to wait out the grace period"
    );
    let rest = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect()).await;
    assert!(rest.is_ok(), "the follow stream ended with the server");
}

#[test]
fn contradictory_settings_are_refused_at_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["server", "--bind", "127.0.0.1:0"])
        .env("PEREGRINE_WAL_FSYNC_INTERVAL", "10ms")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("wal.fsync-interval") && stderr.contains("interval"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("peregrine.yaml");
    std::fs::write(
        &file,
        "executor:\n  threads: 3\nwal:\n  durability: interval\n",
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["server", "--print-config", "--config"])
        .arg(&file)
        .env("PEREGRINE_EXECUTIONS_RETENTION", "2h")
        .output()
        .expect("runs");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("threads: 3"), "{stdout}");
    assert!(stdout.contains("durability: interval"), "{stdout}");
    assert!(stdout.contains("retention: 2h"), "{stdout}");
}

#[tokio::test]
async fn connections_past_the_limit_wait_for_a_free_one() {
    let server = Server::start(&[
        ("PEREGRINE_SERVER_MAX_CONNECTIONS", "1"),
        ("PEREGRINE_SERVER_MAX_FOLLOWERS", "1"),
    ])
    .await;
    server.create_flow(SLEEPY).await;
    let id = id_of(
        &server
            .trigger("/api/v1/executions/e2e/sleepy", json!({}))
            .await,
    );
    let holder = client();
    let request = Request::builder()
        .uri(format!("{}/api/v1/executions/{id}/follow", server.base))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let stream = tokio::time::timeout(Duration::from_secs(10), holder.request(request))
        .await
        .expect("follow answers")
        .expect("follow connects");
    assert_eq!(stream.status(), StatusCode::OK);

    let other = client();
    let health = || {
        Request::builder()
            .uri(format!("{}/health", server.base))
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    let blocked = tokio::time::timeout(Duration::from_millis(500), other.request(health())).await;
    assert!(
        blocked.is_err(),
        "a second connection waits while the first is open"
    );

    drop(stream);
    drop(holder);
    let answered = tokio::time::timeout(Duration::from_secs(10), other.request(health()))
        .await
        .expect("answered once the first connection closed")
        .expect("connects");
    assert_eq!(answered.status(), StatusCode::OK);
}

/// With memory keeping few finished executions, the others are answered
/// from their final records on disk, the same JSON, also after a restart.
#[tokio::test]
async fn finished_executions_past_memory_are_read_from_disk() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().join("data");
    let env = [
        ("PEREGRINE_EXECUTIONS_MAX_FINISHED", "1"),
        ("PEREGRINE_EXECUTOR_THREADS", "1"),
    ];
    let mut server = Server::start_in(&dir, &env).await;
    assert_eq!(server.create_flow(HELLO).await.status, StatusCode::OK);
    let mut ended = Vec::new();
    for n in 0..60 {
        let done = server
            .trigger(
                "/api/v1/main/executions/e2e/hello?wait=true",
                json!({ "name": format!("n{n}") }),
            )
            .await;
        assert_eq!(done.status, StatusCode::OK);
        ended.push(done.json());
    }
    let metrics = String::from_utf8_lossy(&server.get("/metrics").await.body).into_owned();
    let kept: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("peregrine_executions_kept ")?.parse().ok())
        .expect("the kept gauge");
    assert!(kept <= 16, "{kept} kept in memory");
    read_all(&server, &ended).await;
    // The oldest is on disk only: it has ended (409), and takes labels.
    let oldest = ended[0]["id"].as_str().expect("an id").to_owned();
    let kill = server
        .send(
            Method::DELETE,
            &format!("/api/v1/main/executions/{oldest}/actions/kill"),
            &[],
            "",
        )
        .await;
    assert_eq!(kill.status, StatusCode::CONFLICT, "{:?}", kill.body);
    let labelled = server
        .send(
            Method::POST,
            &format!("/api/v1/main/executions/{oldest}/actions/labels"),
            &[("content-type", "application/json")],
            r#"[{"key":"archived","value":"yes"}]"#,
        )
        .await;
    assert_eq!(labelled.status, StatusCode::OK, "{:?}", labelled.body);
    let archived = json!({"key": "archived", "value": "yes"});
    assert!(
        labelled.json()["labels"]
            .as_array()
            .unwrap()
            .contains(&archived)
    );
    assert!(server.terminate().success());
    let server = Server::start_in(&dir, &env).await;
    read_all(&server, &ended).await;
    let oldest = server
        .get(&format!("/api/v1/main/executions/{oldest}"))
        .await;
    assert!(
        oldest.json()["labels"]
            .as_array()
            .unwrap()
            .contains(&archived)
    );
}

/// Each of `ended` (executions as their `wait=true` answers showed them)
/// reads back the same.
async fn read_all(server: &Server, ended: &[serde_json::Value]) {
    for (n, exec) in ended.iter().enumerate() {
        let id = exec["id"].as_str().expect("an id");
        let got = server.get(&format!("/api/v1/main/executions/{id}")).await;
        assert_eq!(got.status, StatusCode::OK, "execution {n}");
        let got = got.json();
        assert_eq!(got["outputs"]["greeting"], format!("hello n{n}"));
        assert_eq!(got["state"], exec["state"], "execution {n}");
        assert_eq!(got["taskRunList"], exec["taskRunList"], "execution {n}");
    }
}

/// Expressions that once took the process down: a jq program that doubles a
/// string forty times (a terabyte in forty steps) and one that recurses
/// without end (the thread's stack).
const RUNAWAY: &str = r#"
id: runaway
namespace: e2e
inputs:
  - id: program
    type: STRING
tasks:
  - id: run
    type: io.kestra.plugin.core.debug.Return
    format: "{{ 1 | jq(inputs.program) }}"
"#;

#[tokio::test]
async fn no_expression_can_take_the_server_down() {
    let data = tempfile::tempdir().expect("temp dir");
    let log_path = data.path().join("server.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let env = [("PEREGRINE_EXPRESSION_MAX_MEMORY", "32MiB")];
    let mut server =
        Server::start_with(&data.path().join("data"), &env, &[], Stdio::from(log_file)).await;
    assert_eq!(server.create_flow(RUNAWAY).await.status, StatusCode::OK);
    for (program, says) in [
        (
            r#"reduce range(40) as $i ("a"; . + .) | length"#,
            "budget of 33554432 bytes of memory",
        ),
        ("def f: [f]; f", "recursed too deeply"),
        // One allocation of a terabyte would abort the process.
        (r#""x" * 1000000000000 | length"#, "bytes of memory"),
        // A trillion leaves in forty steps, printed.
        (
            "reduce range(40) as $i (1; [., .]) | tojson | length",
            "evaluation steps",
        ),
    ] {
        let done = server
            .trigger(
                "/api/v1/main/executions/e2e/runaway?wait=true",
                json!({ "program": program }),
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{program}");
        let done = done.json();
        assert_eq!(done["state"]["current"], "FAILED", "{done}");
        // Why is in the task run's logs, which the server logs too.
        let id = done["id"].as_str().expect("an id");
        let log = std::fs::read_to_string(&log_path).expect("the log");
        assert!(
            log.lines().any(|l| l.contains(id) && l.contains(says)),
            "{program}: {log}"
        );
        assert!(server.is_running());
    }
    assert_eq!(server.get("/health").await.status, StatusCode::OK);
    assert!(server.terminate().success());
}

const VARIABLES: &str = r#"
id: variables
namespace: e2e
inputs:
  - id: nap
    type: DURATION
tasks:
  - id: before
    type: io.kestra.plugin.core.debug.Return
    format: "{{ envs.greeting }} {{ globals.team }} {{ globals.limits.retries }}"
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: "{{ inputs.nap }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ envs.greeting }} {{ globals.team }}"
  - id: redacted
    type: io.kestra.plugin.core.debug.Return
    format: "{{ envs.configuration ?? 'not shown' }}"
outputs:
  - id: greeting
    type: STRING
    value: "{{ envs.greeting }}"
"#;

fn output_of(execution: &serde_json::Value, task: &str) -> serde_json::Value {
    execution["taskRunList"]
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["taskId"] == task))
        .unwrap_or_else(|| panic!("no task run of {task}: {execution:#}"))["outputs"]["value"]
        .clone()
}

/// `{{ envs.x }}` is the server's environment variable `KESTRA_X` (Kestra's
/// prefix, redacting Kestra's own configuration), `{{ globals.x }}` its
/// config file's `variables.globals`. Both belong to the process: an
/// execution in flight across a restart with other values renders with
/// the new ones, also in the tasks its replay runs again.
#[tokio::test]
async fn envs_and_globals_come_from_the_server_process() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().join("data");
    let file = data.path().join("peregrine.yaml");
    let write_config = |team: &str| {
        std::fs::write(
            &file,
            format!("variables:\n  globals:\n    team: {team}\n    limits: {{ retries: 3 }}\n"),
        )
        .expect("write config")
    };
    write_config("blue");
    let path = file.to_str().expect("a UTF-8 temp path");
    let env = |greeting: &'static str| {
        [
            ("PEREGRINE_CONFIG", path),
            ("KESTRA_GREETING", greeting),
            ("KESTRA_CONFIGURATION", "kestra: {secret: 1}"),
        ]
    };
    let mut server = Server::start_in(&dir, &env("hello")).await;
    assert_eq!(server.create_flow(VARIABLES).await.status, StatusCode::OK);

    let done = server
        .trigger(
            "/api/v1/main/executions/e2e/variables?wait=true",
            json!({"nap": "PT0S"}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    let execution = done.json();
    assert_eq!(execution["state"]["current"], "SUCCESS", "{execution:#}");
    assert_eq!(output_of(&execution, "before"), "hello blue 3");
    assert_eq!(output_of(&execution, "after"), "hello blue");
    assert_eq!(output_of(&execution, "redacted"), "not shown");
    assert_eq!(execution["outputs"]["greeting"], "hello");

    // In flight across a restart with other values.
    let started = server
        .trigger(
            "/api/v1/main/executions/e2e/variables",
            json!({"nap": "PT3S"}),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    let id = id_of(&started);
    let running = server.wait_for_state(&id, "RUNNING").await;
    assert_eq!(output_of(&running, "before"), "hello blue 3");
    server.kill9();
    write_config("green");
    let server = Server::start_in(&dir, &env("bonjour")).await;
    let ended = server.wait_for_state(&id, "SUCCESS").await;
    assert_eq!(output_of(&ended, "after"), "bonjour green");
    assert_eq!(
        output_of(&ended, "before"),
        "bonjour green 3",
        "the replay ran the task again, with the new process's values"
    );
    assert_eq!(ended["outputs"]["greeting"], "bonjour");
}

/// Kestra's corpus flow `file` (`shared/conformance/kestra/flows`).
fn conformance_flow(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance/kestra/flows")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Kestra: ExecutionControllerTest.webhook, on the corpus's webhook.yaml
/// (the engine's conformance suite names this test for it). A webhook call
/// answers with the execution it created: its labels are the flow's, then
/// `system.correlationId`; its trigger is the Webhook's id and type with
/// `variables` `{body, headers, parameters}`, each header and parameter a
/// list of its values; the body is JSON when it is a JSON object or array,
/// else its text, and null when there is none. The flow's Return renders
/// `{{ trigger | json }}`: those variables.
#[tokio::test]
async fn kestra_webhook_calls_give_their_execution_the_trigger_variables() {
    let server = Server::start(&[]).await;
    let created = server.create_flow(&conformance_flow("webhook.yaml")).await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let hook = "/api/v1/executions/webhook/io.kestra.tests/webhook/a-secret-key";
    let json_body = [("content-type", "application/json")];

    let reply = server
        .send(
            Method::POST,
            &format!("{hook}?name=john&age=12&age=13"),
            &json_body,
            r#"{"a": 1, "b": true}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let execution = reply.json();
    let id = execution["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        execution["labels"],
        json!([
            {"key": "flow-label-1", "value": "flow-label-1"},
            {"key": "flow-label-2", "value": "flow-label-2"},
            {"key": "system.correlationId", "value": id},
        ])
    );
    let trigger = &execution["trigger"];
    assert_eq!(trigger["id"], "webhook");
    assert_eq!(trigger["type"], "io.kestra.plugin.core.trigger.Webhook");
    let variables = trigger["variables"].as_object().expect("variables");
    let keys: Vec<&str> = variables.keys().map(String::as_str).collect();
    assert_eq!(keys, ["body", "headers", "parameters"]);
    assert_eq!(variables["body"], json!({"a": 1, "b": true}));
    assert_eq!(
        variables["parameters"],
        json!({"name": ["john"], "age": ["12", "13"]})
    );
    assert_eq!(
        variables["headers"]["content-type"],
        json!(["application/json"])
    );
    assert!(
        variables["headers"]
            .as_object()
            .expect("headers")
            .values()
            .all(|v| v
                .as_array()
                .is_some_and(|l| l.iter().all(|x| x.is_string()))),
        "{variables:#?}"
    );
    let ended = server.wait_for_state(&id, "SUCCESS").await;
    assert_eq!(ended["trigger"], *trigger);
    let rendered = output_of(&ended, "out");
    let rendered: serde_json::Value =
        serde_json::from_str(rendered.as_str().expect("a text")).expect("JSON");
    assert_eq!(rendered, trigger["variables"]);

    // A JSON array is JSON too.
    let reply = server
        .send(Method::PUT, hook, &json_body, r#"[{"a": 1, "b": true}]"#)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        reply.json()["trigger"]["variables"]["body"],
        json!([{"a": 1, "b": true}])
    );
    assert_eq!(
        reply.json()["trigger"]["variables"]["parameters"],
        json!({})
    );

    // Anything else is its text: not JSON, a JSON scalar, or JSON-like text.
    let escaped = r#"{\"a\":\"\",\"b\":{\"c\":{\"d\":{\"e\":\"\",\"f\":\"1\"}}}}"#;
    for body in ["bla", "42", "true", r#""quoted""#, escaped] {
        let reply = server.send(Method::POST, hook, &json_body, body).await;
        assert_eq!(reply.status, StatusCode::OK, "{body}: {:?}", reply.body);
        assert_eq!(reply.json()["trigger"]["variables"]["body"], body, "{body}");
    }

    // No body: null.
    let reply = server.get(hook).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        reply.json()["trigger"]["variables"]["body"],
        serde_json::Value::Null
    );

    // Kestra: webhookFlowNotFound.
    let missing = server
        .send(
            Method::POST,
            "/api/v1/executions/webhook/not-found/webhook/not-found?name=john",
            &json_body,
            r#"{"a": 1}"#,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// `secret('NAME')` reads `SECRET_NAME` (base64) from the server's
/// environment; its value reaches the task, never a log line, an output or
/// an API answer.
#[tokio::test]
async fn a_secret_is_used_by_a_task_and_never_shown_by_the_api() {
    let server = Server::start(&[("SECRET_TOKEN", "czNjcjN0LXZhbHVl")]).await;
    let flow = r#"id: secretive
namespace: e2e
tasks:
  - id: used
    type: io.kestra.plugin.core.debug.Return
    format: "{{ secret('TOKEN') | length }} {{ secret('TOKEN') | upper }}"
  - id: logged
    type: io.kestra.plugin.core.log.Log
    message: "the token is {{ secret('TOKEN') }}"
outputs:
  - id: leaked
    type: STRING
    value: "{{ secret('TOKEN') }}"
"#;
    let reply = server.create_flow(flow).await;
    assert_eq!(reply.status, hyper::StatusCode::OK, "{:?}", reply.body);
    let started = server
        .trigger(
            "/api/v1/main/executions/e2e/secretive?wait=true",
            serde_json::json!({}),
        )
        .await;
    let id = common::id_of(&started);
    let ended = server.wait_for_state(&id, "SUCCESS").await;
    let used = ended["taskRunList"][0]["outputs"]["value"]
        .as_str()
        .unwrap();
    assert_eq!(used, "12 S3CR3T-VALUE", "the task saw the secret");
    for path in [
        format!("/api/v1/main/executions/{id}"),
        "/api/v1/main/executions/search?namespace=e2e".to_owned(),
        format!("/api/v1/main/outputs/executions/{id}"),
    ] {
        let body = server.get(&path).await.body;
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("s3cr3t-value"), "{path}: {text}");
    }
    assert_eq!(ended["outputs"]["leaked"], "********");
}

#[tokio::test]
async fn a_secret_input_is_used_and_masked_in_the_execution_its_outputs_and_its_logs() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(data.path(), &[]).await;
    let flow = r#"id: secret-input
namespace: e2e
inputs:
  - id: token
    type: SECRET
  - id: who
    type: STRING
tasks:
  - id: used
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.token | length }} {{ inputs.token }} {{ inputs.who }}"
  - id: logged
    type: io.kestra.plugin.core.log.Log
    message: "the token is {{ inputs.token }}"
"#;
    let reply = server.create_flow(flow).await;
    assert_eq!(reply.status, hyper::StatusCode::OK, "{:?}", reply.body);
    let started = server
        .trigger(
            "/api/v1/main/executions/e2e/secret-input?wait=true",
            serde_json::json!({"token": "tok-123456", "who": "ada"}),
        )
        .await;
    let id = common::id_of(&started);
    let ended = server.wait_for_state(&id, "SUCCESS").await;
    assert_eq!(
        ended["inputs"],
        serde_json::json!({"token": "********", "who": "ada"})
    );
    assert_eq!(
        ended["taskRunList"][0]["outputs"]["value"], "10 ******** ada",
        "the task saw its value; the output keeps it masked"
    );
    masked_everywhere(&server, &id).await;
    // Read back from disk after a restart, the same.
    assert!(server.terminate().success());
    let server = Server::start_in(data.path(), &[]).await;
    masked_everywhere(&server, &id).await;
}

/// No answer about execution `id` shows its token; each masks it.
async fn masked_everywhere(server: &Server, id: &str) {
    for path in [
        format!("/api/v1/main/executions/{id}"),
        "/api/v1/main/executions/search?namespace=e2e".to_owned(),
        format!("/api/v1/main/logs/{id}"),
    ] {
        let body = server.get(&path).await.body;
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("tok-123456"), "{path}: {text}");
        assert!(text.contains("********"), "{path}: {text}");
    }
}

/// A webhook's `key` is a template (Kestra's is dynamic): rendered at each
/// call, here from a secret.
#[tokio::test]
async fn a_webhook_key_rendered_from_a_secret_answers_and_another_does_not() {
    let server = Server::start(&[("SECRET_HOOK", "azN5LXMzY3JldA==")]).await;
    let flow = r#"id: hooked
namespace: e2e
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.body.n }}"
triggers:
  - id: web
    type: io.kestra.plugin.core.trigger.Webhook
    key: "{{ secret('HOOK') }}"
"#;
    let reply = server.create_flow(flow).await;
    assert_eq!(reply.status, hyper::StatusCode::OK, "{:?}", reply.body);
    let hit = server
        .trigger(
            "/api/v1/main/executions/webhook/e2e/hooked/k3y-s3cret",
            serde_json::json!({"n": 7}),
        )
        .await;
    assert_eq!(hit.status, hyper::StatusCode::OK, "{:?}", hit.body);
    assert_eq!(hit.json()["trigger"]["id"], "web");
    for key in ["%7B%7B%20secret('HOOK')%20%7D%7D", "wrong"] {
        let miss = server
            .trigger(
                &format!("/api/v1/main/executions/webhook/e2e/hooked/{key}"),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(miss.status, hyper::StatusCode::NOT_FOUND, "{key}");
    }
}

/// A webhook that waits (Kestra 1.x's `wait`, `returnOutputs`,
/// `responseContentType`, `responseCode`) answers once the execution
/// ended: its outputs as text, or the execution (500 when it FAILED).
#[tokio::test]
async fn a_waiting_webhook_answers_with_the_outputs_or_the_ended_execution() {
    let server = Server::start(&[]).await;
    let echo = r#"id: echo
namespace: e2e
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: "token {{ trigger.parameters.validationToken[0] }}"
outputs:
  - id: response
    type: STRING
    value: "{{ outputs.t.value }}"
triggers:
  - id: web
    type: io.kestra.plugin.core.trigger.Webhook
    key: echo-key
    wait: true
    returnOutputs: true
    responseContentType: text/plain
"#;
    let failing = r#"id: failing
namespace: e2e
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
triggers:
  - id: web
    type: io.kestra.plugin.core.trigger.Webhook
    key: fail-key
    wait: true
"#;
    let accepted = r#"id: accepted
namespace: e2e
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: ok
triggers:
  - id: web
    type: io.kestra.plugin.core.trigger.Webhook
    key: acc-key
    wait: true
    returnOutputs: true
    responseCode: 202
"#;
    for flow in [echo, failing, accepted] {
        let reply = server.create_flow(flow).await;
        assert_eq!(reply.status, hyper::StatusCode::OK, "{:?}", reply.body);
    }
    let reply = server
        .get("/api/v1/main/executions/webhook/e2e/echo/echo-key?validationToken=abc")
        .await;
    assert_eq!(reply.status, hyper::StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "text/plain");
    // Kestra's `buildOutputResponse`: the outputs map, written as JSON text.
    assert_eq!(
        String::from_utf8_lossy(&reply.body),
        r#"{"response":"token abc"}"#
    );

    let reply = server
        .trigger(
            "/api/v1/main/executions/webhook/e2e/failing/fail-key",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(reply.status, hyper::StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.json()["state"]["current"], "FAILED");

    let reply = server
        .trigger(
            "/api/v1/main/executions/webhook/e2e/accepted/acc-key",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(reply.status, hyper::StatusCode::ACCEPTED);
    assert_eq!(
        reply.json(),
        serde_json::json!({}),
        "no flow outputs: an empty map"
    );

    // A condition over the call: not met, 204 and nothing starts.
    let picky = r#"id: picky
namespace: e2e
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.body.kind }}"
triggers:
  - id: web
    type: io.kestra.plugin.core.trigger.Webhook
    key: picky-key
    conditions:
      - type: io.kestra.plugin.core.condition.Expression
        expression: "{{ trigger.body.kind == 'push' }}"
"#;
    let reply = server.create_flow(picky).await;
    assert_eq!(reply.status, hyper::StatusCode::OK, "{:?}", reply.body);
    let miss = server
        .trigger(
            "/api/v1/main/executions/webhook/e2e/picky/picky-key",
            serde_json::json!({"kind": "pull"}),
        )
        .await;
    assert_eq!(miss.status, hyper::StatusCode::NO_CONTENT);
    let hit = server
        .trigger(
            "/api/v1/main/executions/webhook/e2e/picky/picky-key",
            serde_json::json!({"kind": "push"}),
        )
        .await;
    assert_eq!(hit.status, hyper::StatusCode::OK, "{:?}", hit.body);
    let all = server
        .get("/api/v1/main/executions/search?namespace=e2e&flowId=picky")
        .await
        .json();
    assert_eq!(
        all["total"], 1,
        "only the call that met the condition started: {all:#}"
    );

    let invalid = server
        .create_flow("id: bad\nnamespace: e2e\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.debug.Return\n    format: x\ntriggers:\n  - id: web\n    type: io.kestra.plugin.core.trigger.Webhook\n    key: k\n    returnOutputs: true\n")
        .await;
    assert_eq!(invalid.status, hyper::StatusCode::UNPROCESSABLE_ENTITY);
    assert!(String::from_utf8_lossy(&invalid.body).contains("needs `wait: true`"));
}
