//! HTTP mode: a running `peregrine server`, through the Kestra-compatible
//! API.
//!
//! The flow is created (`POST /api/v1/main/flows`, YAML) or updated (`PUT`
//! on a 409). Each execution is one `POST
//! /api/v1/main/executions/{namespace}/{flowId}?wait=true`, which answers
//! with the execution's JSON once it has ended. The calling thread drives
//! the schedule and only queues each execution's number: a fixed pool of
//! keep-alive connections, one task each, takes them, so the schedule never
//! waits for a response. Each task keeps its own histogram. A 429 or 503
//! (backpressure) is retried after its `Retry-After` (capped), up to
//! `--max-retries`, and counted in `retried`; past that the execution fails.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use peregrine_engine::flow::Flow;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::latency::{Outcome, Tally};
use crate::options::{BodyKind, HttpSettings, Target};
use crate::orders::{Expected, order};
use crate::report::RunReport;
use crate::schedule::Schedule;

/// A response larger than this is refused rather than buffered.
const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// A `Retry-After` longer than this is shortened: the run has a schedule.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The pause after a 429/503 without `Retry-After`.
const DEFAULT_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Setting up the flow gives up after this.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Opening the pool before a run gives up after this (the run goes on;
/// connections that failed are retried on their first request).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BOUNDARY: &str = "peregrine-loadtest-8f3a1c5e";

/// The server under test.
#[derive(Debug)]
pub struct Http {
    pub(crate) settings: HttpSettings,
    pub(crate) flow: Arc<Flow>,
    pub(crate) runtime: tokio::runtime::Runtime,
}

/// What every connection task of a run shares, read-only.
struct RunShared {
    settings: HttpSettings,
    path: String,
    content_type: &'static str,
    bodies: Vec<Bytes>,
    expected: Option<Vec<Expected>>,
    schedule: Schedule,
    /// The schedule's start and the run's deadline, set once every
    /// connection is open (before the first execution is queued).
    clock: OnceLock<(Instant, tokio::time::Instant)>,
    /// Connections that have tried to open.
    opened: AtomicUsize,
}

impl RunShared {
    fn start(&self) -> Instant {
        self.clock.get().map_or_else(Instant::now, |c| c.0)
    }

    fn deadline(&self) -> tokio::time::Instant {
        self.clock
            .get()
            .map_or_else(tokio::time::Instant::now, |c| c.1)
    }
}

/// `text` with everything but RFC 3986's unreserved characters escaped.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The request body that carries `order(n)`.
pub(crate) fn body(kind: BodyKind, n: u64) -> Bytes {
    let order = order(n).to_string();
    match kind {
        BodyKind::Multipart => Bytes::from(format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"order\"\r\n\r\n{order}\r\n--{BOUNDARY}--\r\n"
        )),
        BodyKind::Json => Bytes::from(format!("{{\"order\":{order}}}")),
    }
}

pub(crate) fn content_type(kind: BodyKind) -> &'static str {
    match kind {
        BodyKind::Multipart => "multipart/form-data; boundary=peregrine-loadtest-8f3a1c5e",
        BodyKind::Json => "application/json",
    }
}

/// Whether the execution JSON the server answered is a SUCCESS whose
/// `transform` output is `expected` (any SUCCESS when `None`).
pub(crate) fn check_execution(json: &Value, expected: Option<&Expected>) -> bool {
    if json.pointer("/state/current").and_then(Value::as_str) != Some("SUCCESS") {
        return false;
    }
    let Some(expected) = expected else {
        return true;
    };
    json.get("taskRunList")
        .and_then(Value::as_array)
        .and_then(|runs| {
            runs.iter()
                .find(|run| run.get("taskId").and_then(Value::as_str) == Some("transform"))
        })
        .and_then(|run| run.pointer("/outputs/value"))
        .is_some_and(|value| expected.matches(value))
}

async fn connect(authority: &str) -> std::io::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        // Ends when the server closes or the sender is dropped; an error
        // here surfaces on the next request.
        let _ = connection.await;
    });
    Ok(sender)
}

/// The pause a 429/503 asks for, capped.
pub(crate) fn retry_pause(headers: &hyper::HeaderMap) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(DEFAULT_RETRY_PAUSE, |s| {
            Duration::from_secs_f64(s).min(MAX_RETRY_PAUSE)
        })
}

/// One keep-alive connection, reopened when it breaks.
pub(crate) struct Connection {
    authority: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// A connection to `authority`, opened on its first request.
    pub(crate) fn new(authority: &str) -> Self {
        Self {
            authority: authority.to_owned(),
            sender: None,
        }
    }

    /// Opens the connection now rather than on the first request (which
    /// tries again if this failed).
    pub(crate) async fn open(&mut self) {
        self.sender = connect(&self.authority).await.ok();
    }

    /// Sends `request` and reads the whole answer; a broken connection is
    /// dropped so the next call opens another.
    pub(crate) async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> std::result::Result<(StatusCode, hyper::HeaderMap, Bytes), String> {
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            self.sender = Some(connect(&self.authority).await.map_err(|e| e.to_string())?);
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err("no connection".to_owned());
        };
        let outcome = async {
            sender.ready().await.map_err(|e| e.to_string())?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let (parts, body) = response.into_parts();
            let bytes = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((parts.status, parts.headers, bytes))
        }
        .await;
        if outcome.is_err() {
            self.sender = None;
        }
        outcome
    }
}

/// Runs execution `n` to its end; `tally` counts the retries.
async fn execute(
    shared: &RunShared,
    connection: &mut Connection,
    n: u64,
    tally: &mut Tally,
) -> Outcome {
    let Some(body) = usize::try_from(n).ok().and_then(|i| shared.bodies.get(i)) else {
        return Outcome::Failed;
    };
    let mut tries = 0;
    loop {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(shared.path.as_str())
            .header(HOST, shared.settings.target.authority.as_str())
            .header(CONTENT_TYPE, shared.content_type);
        if let Some(auth) = &shared.settings.authorization {
            builder = builder.header(AUTHORIZATION, auth.as_str());
        }
        let Ok(request) = builder.body(Full::new(body.clone())) else {
            return Outcome::Failed;
        };
        let answer =
            match tokio::time::timeout_at(shared.deadline(), connection.exchange(request)).await {
                Ok(answer) => answer,
                Err(_elapsed) => return Outcome::Failed,
            };
        let (status, headers, bytes) = match answer {
            Ok(answer) => answer,
            // A keep-alive connection the server closed meanwhile: the
            // request may not have been read; try once more on a new one.
            Err(_) if tries == 0 => {
                tries += 1;
                continue;
            }
            Err(_) => return Outcome::Failed,
        };
        match status {
            StatusCode::OK | StatusCode::CREATED => {
                let expected = shared
                    .expected
                    .as_ref()
                    .and_then(|e| usize::try_from(n).ok().and_then(|i| e.get(i)));
                if shared.expected.is_some() && expected.is_none() {
                    return Outcome::Failed;
                }
                return match serde_json::from_slice::<Value>(&bytes) {
                    Ok(json) if check_execution(&json, expected) => Outcome::Completed,
                    _ => Outcome::Failed,
                };
            }
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                if tries < shared.settings.max_retries =>
            {
                tries += 1;
                tally.record_retry();
                let pause = retry_pause(&headers);
                if tokio::time::Instant::now() + pause >= shared.deadline() {
                    return Outcome::Failed;
                }
                tokio::time::sleep(pause).await;
            }
            _ => return Outcome::Failed,
        }
    }
}

/// Sends the flow's YAML to `path`.
async fn send_yaml(
    connection: &mut Connection,
    target: &Target,
    authorization: Option<&str>,
    method: Method,
    path: &str,
    yaml: &Bytes,
) -> Result<(StatusCode, Bytes)> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, target.authority.as_str())
        .header(CONTENT_TYPE, "application/x-yaml");
    if let Some(auth) = authorization {
        builder = builder.header(AUTHORIZATION, auth);
    }
    let request = builder
        .body(Full::new(yaml.clone()))
        .map_err(|e| Error::Server(format!("building a request: {e}")))?;
    let (status, _, body) = tokio::time::timeout(SETUP_TIMEOUT, connection.exchange(request))
        .await
        .map_err(|_| Error::Server(format!("no answer within {SETUP_TIMEOUT:?}")))?
        .map_err(|e| Error::Server(format!("{}: {e}", target.authority)))?;
    Ok((status, body))
}

/// Creates the flow `namespace.id` from `yaml` on the server (`POST
/// /flows`), or updates it (`PUT`) when it exists (409).
pub(crate) async fn deploy_flow(
    target: &Target,
    authorization: Option<&str>,
    namespace: &str,
    id: &str,
    yaml: Bytes,
) -> Result<()> {
    let create = format!("{}/api/v1/main/flows", target.prefix);
    let update = format!(
        "{}/api/v1/main/flows/{}/{}",
        target.prefix,
        escape(namespace),
        escape(id)
    );
    let mut connection = Connection::new(&target.authority);
    let (status, body) = send_yaml(
        &mut connection,
        target,
        authorization,
        Method::POST,
        &create,
        &yaml,
    )
    .await?;
    let (status, body) = if status == StatusCode::CONFLICT {
        send_yaml(
            &mut connection,
            target,
            authorization,
            Method::PUT,
            &update,
            &yaml,
        )
        .await?
    } else {
        (status, body)
    };
    if status.is_success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&body);
        Err(Error::Server(format!(
            "the flow was refused ({status}): {}",
            text.chars().take(500).collect::<String>()
        )))
    }
}

/// One connection's task: takes executions off the queue until it closes.
async fn connection_task(
    shared: Arc<RunShared>,
    jobs: flume::Receiver<u64>,
    finished: Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::new();
    let mut connection = Connection::new(&shared.settings.target.authority);
    // Opened before the clock starts; a failure here is retried on the
    // first request.
    connection.open().await;
    shared.opened.fetch_add(1, Ordering::Release);
    let last = shared.schedule.executions().saturating_sub(1);
    while let Ok(n) = jobs.recv_async().await {
        let outcome = execute(&shared, &mut connection, n, &mut tally).await;
        let at = Instant::now();
        let latency = at.saturating_duration_since(shared.start() + shared.schedule.offset(n));
        tally.record(outcome, latency, n == last, at);
        finished.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

impl Http {
    pub fn new(settings: HttpSettings, flow: Arc<Flow>) -> Result<Self> {
        // One thread: the client's work per request is small, and the
        // server under test needs the cores.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("http-client")
            .enable_all()
            .build()
            .map_err(|e| Error::Setup(format!("starting the HTTP client: {e}")))?;
        Ok(Self {
            settings,
            flow,
            runtime,
        })
    }

    fn api(&self, rest: &str) -> String {
        format!("{}/api/v1/main{rest}", self.settings.target.prefix)
    }

    /// Creates the flow on the server, or updates it if it exists.
    pub fn prepare(&self) -> Result<()> {
        self.runtime.block_on(deploy_flow(
            &self.settings.target,
            self.settings.authorization.as_deref(),
            &self.flow.namespace,
            &self.flow.id,
            Bytes::from(self.flow.source.clone()),
        ))
    }

    /// Runs one schedule; `finished` counts executions as they end.
    pub fn run(
        &mut self,
        schedule: Schedule,
        drain: Duration,
        finished: &Arc<AtomicU64>,
    ) -> Result<RunReport> {
        let executions = schedule.executions();
        let bodies: Vec<Bytes> = (0..executions)
            .map(|n| body(self.settings.body, n))
            .collect();
        let expected = self
            .flow
            .find_task("transform")
            .is_some()
            .then(|| (0..executions).map(Expected::of).collect());
        let path = self.api(&format!(
            "/executions/{}/{}?wait=true",
            escape(&self.flow.namespace),
            escape(&self.flow.id)
        ));
        let shared = Arc::new(RunShared {
            settings: self.settings.clone(),
            path,
            content_type: content_type(self.settings.body),
            bodies,
            expected,
            schedule,
            clock: OnceLock::new(),
            opened: AtomicUsize::new(0),
        });
        // Holds the whole run, so queueing never blocks the schedule.
        let (jobs, queue) = flume::bounded(usize::try_from(executions).unwrap_or(usize::MAX));
        let tasks: Vec<_> = (0..self.settings.connections.get())
            .map(|_| {
                self.runtime.spawn(connection_task(
                    Arc::clone(&shared),
                    queue.clone(),
                    Arc::clone(finished),
                ))
            })
            .collect();
        drop(queue);
        let connections = self.settings.connections.get();
        let opening = Instant::now() + CONNECT_TIMEOUT;
        while shared.opened.load(Ordering::Acquire) < connections && Instant::now() < opening {
            std::thread::sleep(Duration::from_millis(1));
        }
        let start = Instant::now() + Duration::from_millis(5);
        let deadline = start + schedule.span() + drain;
        shared
            .clock
            .set((start, tokio::time::Instant::from_std(deadline)))
            .map_err(|_| Error::Setup("the run's start was set twice".into()))?;
        let mut generator = Tally::new();
        schedule.drive(start, |n| {
            if jobs.try_send(n).is_err() {
                generator.record_lost();
                finished.fetch_add(1, Ordering::Relaxed);
            }
        });
        drop(jobs);
        let mut merged = generator;
        self.runtime.block_on(async {
            for task in tasks {
                match task.await {
                    Ok(tally) => merged.merge(&tally),
                    Err(e) => return Err(Error::Setup(format!("a connection task failed: {e}"))),
                }
            }
            Ok(())
        })?;
        Ok(RunReport::close(
            schedule.rate(),
            executions,
            &mut merged,
            start,
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn multipart_carries_the_order_as_one_json_part() {
        let body = body(BodyKind::Multipart, 3);
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.starts_with(&format!("--{BOUNDARY}\r\n")));
        assert!(text.ends_with(&format!("\r\n--{BOUNDARY}--\r\n")));
        assert!(content_type(BodyKind::Multipart).ends_with(BOUNDARY));
        let part = text
            .split("\r\n\r\n")
            .nth(1)
            .and_then(|p| p.strip_suffix(&format!("\r\n--{BOUNDARY}--\r\n")))
            .unwrap();
        assert_eq!(serde_json::from_str::<Value>(part).unwrap(), order(3));
        let json: Value = serde_json::from_slice(&super::body(BodyKind::Json, 3)).unwrap();
        assert_eq!(json, json!({ "order": order(3) }));
    }

    #[test]
    fn only_a_success_with_the_right_output_counts() {
        let expected = Expected::of(4);
        let o = order(4);
        let value = json!({
            "order_id": 4,
            "customer_name": format!("{} {}", o["first_name"].as_str().unwrap(), o["last_name"].as_str().unwrap()),
            "address": format!("{}, {}", o["address"]["city"].as_str().unwrap(), o["address"]["country"].as_str().unwrap()),
            "total_price": crate::orders::expected_total_price(&o),
        });
        let exec = |state: &str, value: Value| {
            json!({
                "id": "x",
                "state": {"current": state},
                "taskRunList": [
                    {"taskId": "transform", "outputs": {"value": value}},
                    {"taskId": "hello", "outputs": {"values": {}}}
                ]
            })
        };
        assert!(check_execution(
            &exec("SUCCESS", value.clone()),
            Some(&expected)
        ));
        assert!(!check_execution(
            &exec("FAILED", value.clone()),
            Some(&expected)
        ));
        assert!(!check_execution(&exec("RUNNING", value.clone()), None));
        assert!(check_execution(&exec("SUCCESS", json!(1)), None));
        assert!(!check_execution(
            &exec("SUCCESS", json!({"order_id": 4})),
            Some(&expected)
        ));
        assert!(!check_execution(
            &json!({"state": {"current": "SUCCESS"}}),
            Some(&expected)
        ));
    }

    #[test]
    fn retry_after_is_honoured_within_a_cap() {
        let mut headers = hyper::HeaderMap::new();
        assert_eq!(retry_pause(&headers), DEFAULT_RETRY_PAUSE);
        headers.insert(RETRY_AFTER, "0".parse().unwrap());
        assert_eq!(retry_pause(&headers), Duration::ZERO);
        headers.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_pause(&headers), MAX_RETRY_PAUSE);
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_pause(&headers), DEFAULT_RETRY_PAUSE);
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(escape("company.team"), "company.team");
        assert_eq!(escape("a b/c"), "a%20b%2Fc");
    }
}
