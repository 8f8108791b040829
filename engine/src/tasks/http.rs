//! `core.http.Request`: one HTTP call, run on the worker pool so that a
//! shard never waits on the outside world. Outputs `uri`, `code`, `headers`
//! and `body` (text).

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Job, WorkerEnv};

/// The largest response body an HTTP task reads; a larger one fails it.
const MAX_BODY_BYTES: u64 = 10 << 20;
/// The longest an HTTP task waits when its flow sets no `readTimeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One rendered HTTP call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpCall {
    pub method: String,
    pub uri: String,
    pub body: Option<String>,
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub allow_failed: bool,
}

/// The agent every worker shares (pooled connections, default timeout).
pub(super) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(DEFAULT_TIMEOUT))
        .build()
        .into()
}

impl Job for HttpCall {
    fn run(self: Box<Self>, env: &WorkerEnv) -> Result<Value, String> {
        let call = *self;
        let agent = &env.http;
        let method = ureq::http::Method::from_bytes(call.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("`{}` is not an HTTP method", call.method))?;
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(call.uri.as_str());
        for (name, value) in &call.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(content_type) = &call.content_type {
            builder = builder.header("content-type", content_type.as_str());
        }
        let body = call.body.unwrap_or_default().into_bytes();
        let request = builder
            .body(body)
            .map_err(|e| format!("invalid request to `{}`: {e}", call.uri))?;
        let mut config = agent.configure_request(request);
        if let Some(timeout) = call.timeout {
            config = config.timeout_global(Some(timeout));
        }
        let mut response = agent
            .run(config.build())
            .map_err(|e| format!("HTTP request to `{}` failed: {e}", call.uri))?;
        let code = response.status().as_u16();
        let mut headers = Map::new();
        for (name, value) in response.headers() {
            let value = Value::from(value.to_str().unwrap_or_default());
            match headers
                .entry(name.as_str().to_owned())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(values) => values.push(value),
                other => *other = Value::Array(vec![value]),
            }
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_string()
            .map_err(|e| format!("reading the answer of `{}`: {e}", call.uri))?;
        if code >= 400 && !call.allow_failed {
            return Err(format!(
                "Failed http request with response code '{code}' from `{}`",
                call.uri
            ));
        }
        Ok(json!({
            "uri": call.uri,
            "code": code,
            "headers": headers,
            "body": text,
        }))
    }
}
