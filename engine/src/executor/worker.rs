//! The worker pool: threads for tasks that block (an HTTP call), so that a
//! shard never waits on the outside world. A result goes back to the shard
//! that owns the execution, through its inbox, as a message like any other.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::engine::Command;
use super::inbox::{PushError, Sender};
use crate::execution::ExecutionId;

/// The largest response body an HTTP task reads; a larger one fails it.
const MAX_BODY_BYTES: u64 = 10 << 20;
/// The longest an HTTP task waits when its flow sets no `readTimeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Blocking work, with its inputs already rendered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Job {
    Http(Box<HttpCall>),
}

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

/// A job for one attempt of one task run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorkOrder {
    pub task_run: u32,
    /// 1-based attempt number the result belongs to.
    pub attempt: u32,
    pub job: Job,
}

/// What a worker sends back.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkDone {
    pub(crate) id: ExecutionId,
    pub(crate) task_run: u32,
    pub(crate) attempt: u32,
    pub(crate) result: Result<Value, String>,
}

struct Dispatch {
    id: ExecutionId,
    shard: usize,
    order: WorkOrder,
}

/// Threads that run jobs and answer the owning shard.
pub(crate) struct WorkerPool {
    tx: flume::Sender<Dispatch>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("threads", &self.threads.len())
            .field("queued", &self.tx.len())
            .finish()
    }
}

/// A shard's handle to hand work to the pool.
#[derive(Clone)]
pub(crate) struct WorkerHandle {
    tx: flume::Sender<Dispatch>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle").finish_non_exhaustive()
    }
}

impl WorkerHandle {
    /// Queues `order`; hands it back when the pool's queue is full.
    pub fn try_dispatch(
        &self,
        id: ExecutionId,
        shard: usize,
        order: WorkOrder,
    ) -> Result<(), WorkOrder> {
        self.tx
            .try_send(Dispatch { id, shard, order })
            .map_err(|e| e.into_inner().order)
    }
}

impl WorkerPool {
    /// `threads` workers, a queue of `capacity` jobs, answering into `inboxes`.
    pub fn start(
        threads: usize,
        capacity: usize,
        inboxes: Vec<Sender<Command>>,
    ) -> std::io::Result<(Self, WorkerHandle)> {
        let (tx, rx) = flume::bounded::<Dispatch>(capacity.max(1));
        let inboxes = Arc::new(inboxes);
        let agent = agent();
        let mut handles = Vec::with_capacity(threads);
        for n in 0..threads.max(1) {
            let rx = rx.clone();
            let inboxes = Arc::clone(&inboxes);
            let agent = agent.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("worker-{n}"))
                    .spawn(move || {
                        while let Ok(Dispatch { id, shard, order }) = rx.recv() {
                            let result = run(&agent, order.job);
                            let done = WorkDone {
                                id,
                                task_run: order.task_run,
                                attempt: order.attempt,
                                result,
                            };
                            deliver(&inboxes[shard], done);
                        }
                    })?,
            );
        }
        let handle = WorkerHandle { tx: tx.clone() };
        Ok((
            Self {
                tx,
                threads: handles,
            },
            handle,
        ))
    }

    /// Stops taking jobs and joins the workers once the queue is drained.
    pub fn shutdown(self) {
        drop(self.tx);
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

/// Hands a result to its shard, waiting while the inbox is full: a result
/// is never dropped while the engine runs. Once the engine stops, the result
/// is lost and recovery runs the task again (at least once).
fn deliver(inbox: &Sender<Command>, done: WorkDone) {
    let mut message = Command::WorkDone(Box::new(done));
    let mut pause = Duration::from_micros(50);
    loop {
        match inbox.push(message) {
            Ok(()) => return,
            Err(PushError::Closed(_)) => return,
            Err(PushError::Full(back)) => {
                message = back;
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
}

/// The agent every worker shares (pooled connections, default timeout).
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(DEFAULT_TIMEOUT))
        .build()
        .into()
}

/// Runs a job on the calling thread (the one-shot driver has no pool).
pub(crate) fn run_now(job: Job) -> Result<Value, String> {
    run(&agent(), job)
}

fn run(agent: &ureq::Agent, job: Job) -> Result<Value, String> {
    match job {
        Job::Http(call) => http(agent, *call),
    }
}

fn http(agent: &ureq::Agent, call: HttpCall) -> Result<Value, String> {
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
