//! Fuzz targets of the HTTP bodies: JSON and multipart inputs to an
//! execution, a flow's YAML, a webhook's payload. Whatever the bytes, the
//! API answers with a status below 500 (the catch-panic layer would turn a
//! panic into a 500), in-process through the router. Seeds and
//! regressions are in `server/fuzz/`; the runner is
//! `peregrine_testkit::fuzz` (`PEREGRINE_FUZZ_SECS`).

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use peregrine_server::{AppState, Config, app};
use tower::ServiceExt;

const TYPED: &str = r#"
id: typed
namespace: fuzz.http
inputs:
  - id: s
    type: STRING
    required: false
  - id: n
    type: INT
    required: false
  - id: f
    type: FLOAT
    required: false
  - id: b
    type: BOOLEAN
    required: false
  - id: j
    type: JSON
    required: false
  - id: d
    type: DATETIME
    required: false
  - id: pick
    type: SELECT
    values: [a, b]
    required: false
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: k
"#;

const BOUNDARY: &str = "fuzz-boundary-1x";

fn corpus(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(name)
}

struct Api {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _state: AppState,
}

impl Api {
    fn start() -> Api {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut config = Config::default();
        config.executor.threads = std::num::NonZeroUsize::new(1);
        let state = runtime
            .block_on(async { AppState::start(config) })
            .expect("starts");
        let router = app(state.clone());
        let api = Api {
            runtime,
            router,
            _state: state,
        };
        let status = api.send(
            "POST",
            "/api/v1/main/flows",
            "application/x-yaml",
            TYPED.as_bytes(),
        );
        assert_eq!(status, StatusCode::OK);
        api
    }

    fn send(&self, method: &str, uri: &str, content_type: &str, body: &[u8]) -> StatusCode {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_vec()))
            .expect("a request");
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.expect("answers");
            let status = response.status();
            let _ = response.into_body().collect().await;
            status
        })
    }

    /// The API's answer must be one it chose: never a 500.
    fn check(&self, method: &str, uri: &str, content_type: &str, body: &[u8]) {
        let status = self.send(method, uri, content_type, body);
        assert!(
            status.as_u16() < 500 || status == StatusCode::SERVICE_UNAVAILABLE,
            "{method} {uri} ({content_type}) answered {status} to {:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn fuzz_json_bodies() {
    let api = Api::start();
    // The target reaches the handler: a seed starts an execution.
    let seed = std::fs::read(corpus("json").join("all.json")).expect("seed");
    let path = "/api/v1/main/executions/fuzz.http/typed";
    assert_eq!(
        api.send("POST", path, "application/json", &seed),
        StatusCode::OK
    );
    let dictionary: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b":",
        b",",
        b"null",
        b"true",
        b"1e400",
        b"-0",
        b"\\u0000",
        b"\\ud800",
        b"\"s\"",
        b"\"n\"",
        b"\"j\"",
        b"\"d\"",
        b"\"pick\"",
        b"2026-12-02T00:00:00Z",
    ];
    peregrine_testkit::fuzz::run(
        "http-json",
        &corpus("json"),
        Vec::new(),
        dictionary,
        |body| {
            api.check(
                "POST",
                "/api/v1/main/executions/fuzz.http/typed",
                "application/json",
                body,
            );
            api.check(
                "POST",
                "/api/v1/main/executions/webhook/fuzz.http/typed/k",
                "application/json",
                body,
            );
        },
    );
}

#[test]
fn fuzz_multipart_bodies() {
    let api = Api::start();
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let seed = std::fs::read(corpus("multipart").join("fields.txt")).expect("seed");
    let path = "/api/v1/main/executions/fuzz.http/typed";
    assert_eq!(api.send("POST", path, &content_type, &seed), StatusCode::OK);
    let dictionary: &[&[u8]] = &[
        b"--fuzz-boundary-1x\r\n",
        b"--fuzz-boundary-1x--\r\n",
        b"Content-Disposition: form-data; name=\"n\"\r\n\r\n",
        b"Content-Disposition: form-data; name=\"s\"; filename=\"a.txt\"\r\n",
        b"Content-Type: text/plain\r\n",
        b"\r\n",
        b"\xff\xfe",
        b"name=\"\"",
    ];
    peregrine_testkit::fuzz::run(
        "http-multipart",
        &corpus("multipart"),
        Vec::new(),
        dictionary,
        |body| {
            api.check(
                "POST",
                "/api/v1/main/executions/fuzz.http/typed",
                &content_type,
                body,
            )
        },
    );
}

#[test]
fn fuzz_flow_bodies() {
    let api = Api::start();
    let flows = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("engine")
        .join("fuzz")
        .join("flows");
    let seed = std::fs::read(flows.join("seed.yaml")).expect("seed");
    assert_eq!(
        api.send("POST", "/api/v1/main/flows", "application/x-yaml", &seed),
        StatusCode::OK
    );
    let dictionary: &[&[u8]] = &[
        b"id: ",
        b"namespace: ",
        b"tasks:",
        b"\n  - ",
        b"{{",
        b": [",
        b"&x",
        b"*x",
    ];
    peregrine_testkit::fuzz::run("http-flows", &flows, Vec::new(), dictionary, |body| {
        api.check("POST", "/api/v1/main/flows", "application/x-yaml", body);
    });
}
