//! The KV store on a real server: the API sets, reads, lists and deletes
//! typed values; a flow's `kv.Set` and `kv()` share them with the API and
//! with each other, with namespace inheritance; everything survives a
//! `kill -9`, and an execution asleep across it replays onto the branch it
//! took even though the value it read has changed since.

#![allow(clippy::unwrap_used)]

mod common;

use common::Server;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

const KV: &str = "/api/v1/main/namespaces";

async fn put(
    server: &Server,
    ns: &str,
    key: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> StatusCode {
    let mut all = vec![("content-type", "text/plain")];
    all.extend_from_slice(headers);
    server
        .send(
            Method::PUT,
            &format!("{KV}/{ns}/kv/{key}"),
            &all,
            body.to_owned(),
        )
        .await
        .status
}

async fn value(server: &Server, ns: &str, key: &str) -> (StatusCode, Value) {
    let reply = server.get(&format!("{KV}/{ns}/kv/{key}")).await;
    let json = if reply.status == StatusCode::OK {
        reply.json()
    } else {
        Value::Null
    };
    (reply.status, json)
}

fn output(execution: &Value, task: &str) -> Value {
    execution["taskRunList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["taskId"] == task)
        .map(|r| r["outputs"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn the_api_keeps_typed_values_with_their_metadata() {
    let server = Server::start(&[]).await;
    assert_eq!(
        put(&server, "company.team", "plain", "hello", &[]).await,
        StatusCode::OK
    );
    assert_eq!(
        put(&server, "company.team", "quoted", "\"hi there\"", &[]).await,
        StatusCode::OK
    );
    assert_eq!(
        put(&server, "company.team", "n", "42.5", &[]).await,
        StatusCode::OK
    );
    assert_eq!(
        put(
            &server,
            "company.team",
            "map",
            r#"{"a": [1, true]}"#,
            &[("description", "a map")]
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        put(&server, "company.team", "when", "2025-03-04T05:06:07Z", &[]).await,
        StatusCode::OK
    );
    assert_eq!(
        put(&server, "company", "wait", "\"PT5M\"", &[("ttl", "PT1H")]).await,
        StatusCode::OK
    );

    let (status, plain) = value(&server, "company.team", "plain").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (plain["type"].clone(), plain["value"].clone()),
        (json!("STRING"), json!("hello"))
    );
    assert_eq!(plain["revision"], 1);
    let typed = |v: Value| (v["type"].clone(), v["value"].clone());
    assert_eq!(
        typed(value(&server, "company.team", "quoted").await.1),
        (json!("STRING"), json!("hi there"))
    );
    assert_eq!(
        typed(value(&server, "company.team", "n").await.1),
        (json!("NUMBER"), json!(42.5))
    );
    assert_eq!(
        typed(value(&server, "company.team", "map").await.1),
        (json!("JSON"), json!({"a": [1, true]}))
    );
    assert_eq!(
        typed(value(&server, "company.team", "when").await.1),
        (json!("DATETIME"), json!("2025-03-04T05:06:07.000Z"))
    );
    assert_eq!(
        typed(value(&server, "company", "wait").await.1),
        (json!("DURATION"), json!("PT5M"))
    );

    // A second write is revision 2.
    assert_eq!(
        put(&server, "company.team", "n", "43", &[]).await,
        StatusCode::OK
    );
    assert_eq!(value(&server, "company.team", "n").await.1["revision"], 2);

    // Listing: one namespace, with its parents, and across all.
    let listed = server.get(&format!("{KV}/company.team/kv")).await.json();
    let keys: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["map", "n", "plain", "quoted", "when"]);
    let map = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "map")
        .unwrap();
    assert_eq!(map["description"], "a map");
    assert_eq!(map["namespace"], "company.team");
    let inherited = server
        .get(&format!("{KV}/company.team/kv/inheritance"))
        .await
        .json();
    assert_eq!(inherited.as_array().unwrap().len(), 6);
    let wait = inherited
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "wait")
        .unwrap();
    assert_eq!(wait["namespace"], "company");
    assert!(wait["expirationDate"].is_string(), "{wait}");
    let all = server
        .get("/api/v1/main/kv?filters[namespace][EQUALS]=company&size=10")
        .await
        .json();
    assert_eq!(all["total"], 1, "{all}");
    let all = server.get("/api/v1/main/kv?page=2&size=4").await.json();
    assert_eq!(
        (
            all["total"].clone(),
            all["results"].as_array().unwrap().len()
        ),
        (json!(6), 2)
    );

    // Bad input is refused, saying why.
    assert_eq!(
        put(&server, "company", "bad%20key", "1", &[]).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        put(&server, "company", "k", "{not json", &[]).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        put(&server, "company", "k", "1", &[("ttl", "soon")]).await,
        StatusCode::BAD_REQUEST
    );
    let big = format!("\"{}\"", "x".repeat(600 << 10));
    assert_eq!(
        put(&server, "company", "k", &big, &[]).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        value(&server, "company", "missing").await.0,
        StatusCode::NOT_FOUND
    );

    // Deleting one, then many.
    let deleted = server
        .send(
            Method::DELETE,
            &format!("{KV}/company.team/kv/plain"),
            &[],
            "",
        )
        .await;
    assert_eq!(
        (deleted.status, deleted.json()),
        (StatusCode::OK, json!(true))
    );
    let again = server
        .send(
            Method::DELETE,
            &format!("{KV}/company.team/kv/plain"),
            &[],
            "",
        )
        .await;
    assert_eq!(again.json(), json!(false));
    let bulk = server
        .send(
            Method::DELETE,
            &format!("{KV}/company.team/kv"),
            &[("content-type", "application/json")],
            r#"{"keys": ["n", "nope", "map"]}"#,
        )
        .await;
    assert_eq!(bulk.json(), json!({"keys": ["n", "map"]}));
    assert_eq!(
        value(&server, "company.team", "n").await.0,
        StatusCode::NOT_FOUND
    );
}

const WRITER: &str = r#"
id: writer
namespace: company.team
tasks:
  - id: set
    type: io.kestra.plugin.core.kv.Set
    key: "run_{{ inputs.n }}"
    value: "{{ {'n': inputs.n, 'tags': ['a', 'b']} }}"
  - id: get
    type: io.kestra.plugin.core.kv.Get
    key: "run_{{ inputs.n }}"
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{ kv('run_' ~ inputs.n).tags | join(',') }} {{ kv('shared') }}"
inputs:
  - id: n
    type: INT
"#;

/// Sleeps between two reads of `mode`: the branch follows the first.
const SLEEPER: &str = r#"
id: sleeper
namespace: company.team
tasks:
  - id: pick
    type: io.kestra.plugin.core.flow.If
    condition: "{{ kv('mode') == 'fast' }}"
    then:
      - id: fast
        type: io.kestra.plugin.core.debug.Return
        format: "fast"
    else:
      - id: slow
        type: io.kestra.plugin.core.debug.Return
        format: "slow"
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT3S
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ kv('mode') }}"
"#;

#[tokio::test]
async fn flows_and_the_api_share_the_store_and_it_survives_a_kill() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_path_buf();
    let mut server = Server::start_in(&dir, &[]).await;
    // A parent namespace's key, read by a flow of a child namespace.
    assert_eq!(
        put(&server, "company", "shared", "\"from the top\"", &[]).await,
        StatusCode::OK
    );
    assert_eq!(server.create_flow(WRITER).await.status, StatusCode::OK);
    assert_eq!(server.create_flow(SLEEPER).await.status, StatusCode::OK);
    let ran = server
        .trigger(
            "/api/v1/main/executions/company.team/writer?wait=true",
            json!({"n": 7}),
        )
        .await;
    assert_eq!(ran.status, StatusCode::OK);
    let ran = ran.json();
    assert_eq!(ran["state"]["current"], "SUCCESS", "{ran}");
    assert_eq!(
        output(&ran, "get")["value"],
        json!({"n": 7, "tags": ["a", "b"]})
    );
    assert_eq!(output(&ran, "read")["value"], "a,b from the top");
    let (_, set) = value(&server, "company.team", "run_7").await;
    assert_eq!(set["type"], "JSON");

    assert_eq!(
        put(&server, "company.team", "mode", "fast", &[]).await,
        StatusCode::OK
    );
    let started = server
        .trigger("/api/v1/main/executions/company.team/sleeper", json!({}))
        .await;
    let id = common::id_of(&started);
    // Asleep on the fast branch; the value changes, then the server dies.
    let asleep = loop {
        let e = server
            .get(&format!("/api/v1/main/executions/{id}"))
            .await
            .json();
        if e["taskRunList"]
            .as_array()
            .is_some_and(|runs| runs.iter().any(|r| r["taskId"] == "nap"))
        {
            break e;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(output(&asleep, "fast")["value"], "fast");
    assert_eq!(
        put(&server, "company.team", "mode", "slow", &[]).await,
        StatusCode::OK
    );
    server.kill9();

    let server = Server::start_in(&dir, &[]).await;
    // What the API and the flow wrote is there.
    assert_eq!(
        value(&server, "company.team", "mode").await.1["value"],
        "slow"
    );
    assert_eq!(
        value(&server, "company", "shared").await.1["value"],
        "from the top"
    );
    assert_eq!(
        value(&server, "company.team", "run_7").await.1["value"]["n"],
        7
    );
    // The execution replayed its first step with what it read then, and
    // reads anew after its sleep.
    let ended = server.wait_for_state(&id, "SUCCESS").await;
    assert_eq!(output(&ended, "fast")["value"], "fast", "{ended}");
    assert!(output(&ended, "slow").is_null());
    assert_eq!(output(&ended, "after")["value"], "slow");
}

#[tokio::test]
async fn a_value_expires_after_its_ttl_on_the_api_and_for_flows() {
    let server = Server::start(&[]).await;
    assert_eq!(
        put(
            &server,
            "ttl.team",
            "brief",
            "\"soon gone\"",
            &[("ttl", "PT1S")]
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(value(&server, "ttl.team", "brief").await.0, StatusCode::OK);
    let listed = server.get(&format!("{KV}/ttl.team/kv")).await.json();
    assert!(listed[0]["expirationDate"].is_string(), "{listed}");
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    assert_eq!(
        value(&server, "ttl.team", "brief").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.get(&format!("{KV}/ttl.team/kv")).await.json(),
        json!([])
    );
    // A flow reads it as missing.
    let flow = "id: reader\nnamespace: ttl.team\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: \"{{ kv('brief', errorOnMissing=false) is null }}\"\n";
    assert_eq!(server.create_flow(flow).await.status, StatusCode::OK);
    let ran = server
        .trigger(
            "/api/v1/main/executions/ttl.team/reader?wait=true",
            json!({}),
        )
        .await
        .json();
    assert_eq!(output(&ran, "r")["value"], "true", "{ran}");
}
