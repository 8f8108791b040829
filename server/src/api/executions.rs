//! `/executions`: trigger (inputs as multipart or JSON, `wait=true`), get,
//! search, kill, and webhooks.

use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use peregrine_engine::flow::{self, InputType};
use peregrine_engine::{Ack, KillOutcome};
use peregrine_engine::{ExecutionId, Record, execution_trigger, labels};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::error::{ApiError, ApiResult, rejection};
use super::extract::{Body, Pairs, Params};
use super::filters::{self, Conditions, Resource};
use crate::state::{AppState, Executions, Launch, LaunchError, Refused};
use crate::store::StoredFlow;

/// Inputs one request may carry (multipart parts).
const MAX_INPUT_PARTS: usize = 1024;
/// Labels one request may set.
pub(super) const MAX_LABELS: usize = 64;
/// Page size of a search, at most.
const MAX_PAGE_SIZE: usize = 1000;

/// Parses an execution id; an id that cannot exist is simply not found.
pub(super) fn parse_id(text: &str) -> ApiResult<ExecutionId> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("execution {text} not found")))
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// An execution's JSON as Kestra shows it.
pub(super) fn execution_response(record: &Record) -> Response {
    json_response(
        StatusCode::OK,
        Bytes::from(record.to_json_bytes(Utc::now())),
    )
}

fn find_flow(state: &AppState, namespace: &str, flow_id: &str) -> ApiResult<Arc<StoredFlow>> {
    state
        .flows()
        .get(namespace, flow_id)
        .ok_or_else(|| ApiError::not_found(format!("flow {namespace}.{flow_id} not found")))
}

/// `POST /executions/{namespace}/{flowId}`.
pub async fn trigger(
    State(state): State<AppState>,
    Params((namespace, flow_id)): Params<(String, String)>,
    query: Pairs,
    request: Request,
) -> ApiResult<Response> {
    let stored = find_flow(&state, &namespace, &flow_id)?;
    let wait = query.flag("wait")?;
    let labels = parse_labels(&query)?;
    let schedule_date = parse_schedule_date(&query)?;
    let is_file = |name: &str| {
        stored
            .flow()
            .input(name)
            .is_some_and(|i| matches!(i.type_, InputType::File))
    };
    let id = ExecutionId::generate();
    let uploads = Uploads {
        files: state.files().clone(),
        namespace: stored.flow().namespace.clone(),
        flow_id: stored.flow().id.clone(),
        id,
        text_limit: usize::try_from(state.config().server.request_body_limit.0)
            .unwrap_or(usize::MAX),
    };
    let mut stored_files = Vec::new();
    let provided = read_inputs(is_file, request, Some((&uploads, &mut stored_files))).await;
    let how = How {
        wait,
        schedule_date,
        id: Some(id),
    };
    let inputs = provided.and_then(|provided| check_inputs(&stored, &provided));
    if inputs.is_err() && !stored_files.is_empty() {
        // Nothing will read them: the execution is not created. (Once it
        // is handed to the engine they stay: a launch refused leaves them
        // to the storage's sweep, which finds no execution.)
        let files = uploads.files.clone();
        let prefix = peregrine_engine::storage::Uri::execution_prefix(
            &uploads.namespace,
            &uploads.flow_id,
            id,
        );
        tokio::task::spawn_blocking(move || {
            if let Err(e) = files.storage().delete_under(&prefix) {
                tracing::warn!("removing the uploads of an execution not created: {e}");
            }
        });
    }
    start(&state, &stored, inputs?, labels, None, how).await
}

/// Where a trigger's FILE inputs are uploaded: the execution's inputs
/// folder in the internal storage.
pub(super) struct Uploads {
    files: peregrine_engine::storage::Files,
    namespace: String,
    flow_id: String,
    id: ExecutionId,
    /// The largest text part.
    text_limit: usize,
}

impl Uploads {
    /// Streams `field`, FILE input `input`'s upload named `file_name`, into
    /// the storage: its URI once durable.
    async fn store(
        &self,
        input: &str,
        file_name: &str,
        mut field: axum::extract::multipart::Field<'_>,
    ) -> ApiResult<String> {
        use peregrine_engine::storage::Uri;
        let name = std::path::Path::new(file_name)
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && !n.starts_with('.'))
            .unwrap_or(input)
            .to_owned();
        let uri = Uri::input_file(&self.namespace, &self.flow_id, self.id, input, &name)
            .map_err(|e| ApiError::unprocessable(e.to_string(), Value::Null))?;
        let limit = self.files.max_file_bytes();
        match stream_field(&self.files, &uri, &mut field).await {
            Ok(0) => {
                let _ = self.files.storage().delete(&uri);
                Err(ApiError::unprocessable(
                    format!("Can't upload file: {name} (input `{input}`): it is empty"),
                    json!([{"input": input, "expected": "FILE", "message": "the upload is empty"}]),
                ))
            }
            Ok(_) => Ok(uri.to_string()),
            Err(Streamed::TooLarge) => Err(too_large(input, limit)),
            Err(Streamed::Request(refused)) => Err(refused),
            Err(Streamed::Storage(e)) => {
                Err(ApiError::unavailable(format!("input `{input}`: {e}")))
            }
        }
    }
}

/// Why an upload was not stored (nothing of it is left).
pub(super) enum Streamed {
    /// It passed `storage.max-file-size`.
    TooLarge,
    /// The request broke off.
    Request(ApiError),
    Storage(peregrine_engine::storage::Error),
}

/// Streams multipart `field` into the storage at `uri`, within the
/// storage's file limit: the bytes written, durable.
pub(super) async fn stream_field(
    files: &peregrine_engine::storage::Files,
    uri: &peregrine_engine::storage::Uri,
    field: &mut axum::extract::multipart::Field<'_>,
) -> Result<u64, Streamed> {
    use peregrine_engine::storage::Error;
    // Uploads and downloads at once are bounded: each holds a blocking
    // thread while it writes.
    let _transfer = super::files::transfer().await.map_err(Streamed::Request)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let writer_files = files.clone();
    let limit = files.max_file_bytes();
    let target = uri.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut reader = ChunkReader {
            rx,
            chunk: Bytes::new(),
        };
        writer_files.storage().put(&target, &mut reader, limit)
    });
    let mut sent = 0u64;
    let mut failed = None;
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                sent += chunk.len() as u64;
                if sent > limit {
                    break;
                }
                // The writer takes chunks as the disk does.
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                failed = Some(rejection(e.status(), e.body_text()));
                break;
            }
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| Streamed::Request(ApiError::unavailable(e.to_string())))?;
    if let Some(failed) = failed {
        let _ = files.storage().delete(uri);
        return Err(Streamed::Request(failed));
    }
    if sent > limit {
        let _ = files.storage().delete(uri);
        return Err(Streamed::TooLarge);
    }
    match written {
        Ok(n) => Ok(n),
        Err(Error::TooLarge { .. }) => Err(Streamed::TooLarge),
        Err(e) => Err(Streamed::Storage(e)),
    }
}

fn too_large(input: &str, limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("input `{input}`: the file is larger than {limit} bytes (storage.max-file-size)"),
    )
}

/// Reads the chunks an upload's task sends, as a file's bytes.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// How an execution is started through the API.
#[derive(Debug, Clone, Copy, Default)]
struct How {
    /// Answer once it ended.
    wait: bool,
    /// Start it then, not now.
    schedule_date: Option<chrono::DateTime<chrono::Utc>>,
    /// Its id, when chosen already (its uploads are filed under it).
    id: Option<ExecutionId>,
}

/// Kestra's `scheduleDate`: an ISO-8601 date-time with its offset.
fn parse_schedule_date(query: &Pairs) -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
    let Some(text) = query.get("scheduleDate").filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|at| Some(at.with_timezone(&chrono::Utc)))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "`scheduleDate` is `{text}`: expected an ISO-8601 date-time with its offset, e.g. 2030-01-01T09:00:00Z"
            ))
        })
}

/// Kestra labels, `labels=key:value`, repeatable.
fn parse_labels(query: &Pairs) -> ApiResult<Vec<(String, String)>> {
    let mut given = Vec::new();
    for raw in query.all("labels") {
        let Some((key, value)) = raw.split_once(':').filter(|(k, _)| !k.is_empty()) else {
            return Err(ApiError::bad_request(format!(
                "label `{raw}` is not key:value"
            )));
        };
        // As in Kestra: of the engine's own labels, a caller may set only
        // the correlation id (to tie executions together).
        if key.starts_with(labels::SYSTEM_PREFIX) && key != labels::CORRELATION_ID {
            let refused = labels::LabelError::System {
                key: key.to_owned(),
                value: value.to_owned(),
            };
            return Err(ApiError::unprocessable(refused.to_string(), Value::Null));
        }
        given.push((key.to_owned(), value.to_owned()));
    }
    if given.len() > MAX_LABELS {
        return Err(ApiError::bad_request(format!(
            "{} labels; at most {MAX_LABELS}",
            given.len()
        )));
    }
    Ok(given)
}

/// The inputs as sent: one multipart part per input, or a JSON object.
/// A part for an input `is_file` says is a FILE is uploaded to `uploads`
/// (its URI is the input's value, and goes into the list), or refused
/// without it. A FILE part is named after its input (its file name is
/// the upload's), or, in Kestra's older form, named `files` with its input
/// as its file name.
pub(super) async fn read_inputs(
    is_file: impl Fn(&str) -> bool,
    request: Request,
    mut uploads: Option<(&Uploads, &mut Vec<String>)>,
) -> ApiResult<Map<String, Value>> {
    let text_limit = uploads.as_ref().map_or(usize::MAX, |(u, _)| u.text_limit);
    let mut text_bytes = 0usize;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|r| rejection(r.status(), r.body_text()))?;
        let mut inputs = Map::new();
        let mut parts = 0;
        while let Some(mut field) = multipart
            .next_field()
            .await
            .map_err(|e| rejection(e.status(), e.body_text()))?
        {
            parts += 1;
            if parts > MAX_INPUT_PARTS {
                return Err(ApiError::bad_request(format!(
                    "more than {MAX_INPUT_PARTS} parts"
                )));
            }
            let Some(name) = field.name().filter(|n| !n.is_empty()).map(str::to_owned) else {
                return Err(ApiError::bad_request("a multipart part has no name"));
            };
            let file_name = field.file_name().map(str::to_owned);
            let file_input = if is_file(&name) {
                Some((
                    name.clone(),
                    file_name.clone().unwrap_or_else(|| name.clone()),
                ))
            } else if name == "files"
                && let Some(input) = file_name.as_deref().filter(|f| is_file(f))
            {
                Some((input.to_owned(), input.to_owned()))
            } else {
                None
            };
            if let Some((input, file_name)) = file_input {
                let Some((uploads, stored)) = uploads.as_mut() else {
                    return Err(ApiError::unprocessable(
                        format!("input `{input}`: a file cannot be given here"),
                        json!([{"input": input, "expected": "FILE", "message": "files are uploaded when an execution starts"}]),
                    ));
                };
                if inputs.contains_key(&input) {
                    return Err(ApiError::bad_request(format!(
                        "input `{input}`: one file per FILE input"
                    )));
                }
                let uri = uploads.store(&input, &file_name, field).await?;
                stored.push(uri.clone());
                inputs.insert(input, Value::String(uri));
                continue;
            }
            // Text parts together within the body limit, read as they
            // come (the route's limit is raised for files).
            let mut bytes = Vec::new();
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| rejection(e.status(), e.body_text()))?
            {
                text_bytes += chunk.len();
                if text_bytes > text_limit {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "the inputs other than files are larger than {text_limit} bytes (server.request-body-limit)"
                        ),
                    ));
                }
                bytes.extend_from_slice(&chunk);
            }
            let text = String::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request(format!("input `{name}` is not UTF-8 text")))?;
            // A repeated part (a multi-select) becomes a list.
            match inputs.get_mut(&name) {
                Some(Value::Array(items)) => items.push(Value::String(text)),
                Some(previous) => {
                    let first = previous.take();
                    *previous = Value::Array(vec![first, Value::String(text)]);
                }
                None => {
                    inputs.insert(name, Value::String(text));
                }
            }
        }
        return Ok(inputs);
    }
    let is_json = content_type.starts_with("application/json") || content_type.contains("+json");
    let bytes = if text_limit == usize::MAX {
        Body::from_request(request, &()).await?.0
    } else {
        // Read within the body limit, not the route's (raised for files).
        axum::body::to_bytes(request.into_body(), text_limit)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the inputs are larger than {text_limit} bytes (server.request-body-limit)"
                    ),
                )
            })?
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    if !is_json && !content_type.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("inputs come as multipart/form-data or a JSON object, not `{content_type}`"),
        ));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "the JSON body must be an object of inputs",
        )),
        Err(e) => Err(ApiError::bad_request(format!("the body is not JSON: {e}"))),
    }
}

/// Types the inputs; every bad one is named.
fn check_inputs(
    stored: &StoredFlow,
    provided: &Map<String, Value>,
) -> ApiResult<Map<String, Value>> {
    flow::validate_inputs(stored.flow(), provided).map_err(|e| match e {
        flow::Error::Inputs(problems) => {
            let details = problems
                .iter()
                .map(|p| json!({"input": p.id, "expected": p.expected, "message": p.message}))
                .collect();
            ApiError::unprocessable(
                flow::Error::Inputs(problems).to_string(),
                Value::Array(details),
            )
        }
        other => ApiError::unprocessable(other.to_string(), Value::Null),
    })
}

/// Creates an execution and answers: once it is durably created, or once it
/// has ended with `wait`.
async fn start(
    state: &AppState,
    stored: &StoredFlow,
    inputs: Map<String, Value>,
    labels: Vec<(String, String)>,
    trigger: Option<Value>,
    how: How,
) -> ApiResult<Response> {
    Ok(
        match started(state, stored, inputs, labels, trigger, how).await? {
            Answer::Ended(update) => json_response(StatusCode::OK, update.json()),
            Answer::Created(record) => execution_response(&record),
        },
    )
}

/// What a start answers with: the execution once it ended (when waited
/// for), or as it was created.
enum Answer {
    Ended(crate::hub::Update),
    Created(Record),
}

async fn started(
    state: &AppState,
    stored: &StoredFlow,
    inputs: Map<String, Value>,
    labels: Vec<(String, String)>,
    trigger: Option<Value>,
    how: How,
) -> ApiResult<Answer> {
    let How {
        wait,
        schedule_date,
        id,
    } = how;
    let id = id.unwrap_or_else(ExecutionId::generate);
    // Subscribed before submitting: the end cannot slip by unseen.
    let mut waiter = if wait {
        Some(
            state
                .hub()
                .subscribe(id, false)
                .map_err(|closed| ApiError::unavailable(closed.to_string()))?,
        )
    } else {
        None
    };
    let started = state
        .launcher()
        .launch(Launch {
            flow: stored,
            inputs,
            labels,
            trigger,
            id,
            ack: if wait { Ack::Receipt } else { Ack::Snapshot },
            schedule_date,
        })
        .map_err(|e| match e {
            LaunchError::Disabled => {
                let flow = stored.flow();
                ApiError::unprocessable(
                    format!("flow {}.{} is disabled", flow.namespace, flow.id),
                    Value::Null,
                )
            }
            LaunchError::Refused(refused) => refused.into(),
        })?
        .answer()
        .await
        .map_err(|_| ApiError::unavailable("the executor stopped before starting the execution"))?;
    // Commit before externalize: the answer that acknowledges the execution
    // waits for its records (durable in `sync` mode).
    started
        .receipt
        .durable()
        .await
        .map_err(|e| ApiError::from(Refused::from(e)))?;
    if let Some(waiter) = &mut waiter {
        loop {
            match waiter.recv().await {
                Ok(update) if update.is_terminal() => {
                    update
                        .receipt()
                        .durable()
                        .await
                        .map_err(|e| ApiError::from(Refused::from(e)))?;
                    return Ok(Answer::Ended(update));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                // Shutting down: answer with what is known.
                Err(RecvError::Closed) => break,
            }
        }
    }
    match started.snapshot {
        Some(record) => Ok(Answer::Created(record)),
        None => {
            let snapshot = state
                .executions()
                .get(id)
                .await?
                .ok_or_else(|| ApiError::internal("reading a new execution", "it is gone"))?;
            Ok(Answer::Created(snapshot.record))
        }
    }
}

/// `GET /executions/{id}`.
pub async fn get(
    State(executions): State<Executions>,
    Params(id): Params<String>,
) -> ApiResult<Response> {
    let snapshot = executions
        .get(parse_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))?;
    Ok(execution_response(&snapshot.record))
}

/// A page of executions, `{results, total}`, each as Kestra shows it.
#[derive(Serialize)]
struct SearchPage<R> {
    results: Vec<R>,
    total: usize,
}

/// `GET /executions/search`: Kestra's `filters[field][OP]=value` (and the
/// older `namespace=&flowId=&state=&labels=`), `sort=state.startDate:desc`
/// (the default) or `:asc`, `page` and `size`: `{results, total}`.
pub async fn search(State(executions): State<Executions>, query: Pairs) -> ApiResult<Response> {
    let (page, size) = filters::page(&query, MAX_PAGE_SIZE)?;
    let oldest_first = filters::execution_sort(&query)?;
    let conditions = Conditions::read(&query, Resource::Execution)?;
    let now = Utc::now();
    let body = if conditions.nothing {
        SearchPage {
            results: Vec::new(),
            total: 0,
        }
    } else {
        let filter = conditions.into_filter(oldest_first);
        let (results, total) = executions.search(filter, page, size).await?;
        SearchPage {
            results: results.iter().map(|s| s.record.to_json(now)).collect(),
            total,
        }
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::internal("a search page", e))?;
    Ok(json_response(StatusCode::OK, Bytes::from(bytes)))
}

/// Kestra's `isOnKillCascade` (default true): the subflow executions it
/// waits for are killed with it.
fn cascade(query: &Pairs) -> ApiResult<bool> {
    match query.get("isOnKillCascade") {
        None => Ok(true),
        Some(_) => query.flag("isOnKillCascade"),
    }
}

/// `DELETE /executions/{id}/kill`: 202, 409 when it has already ended.
pub async fn kill(executions: &Executions, id: &str, cascade: bool) -> ApiResult<Response> {
    match executions.kill(parse_id(id)?, cascade).await? {
        KillOutcome::Killed(_) => Ok(StatusCode::ACCEPTED.into_response()),
        KillOutcome::Ended(state) => Err(ApiError::conflict(format!(
            "execution {id} has already ended ({state})"
        ))),
        KillOutcome::NotFound => Err(ApiError::not_found(format!("execution {id} not found"))),
    }
}

/// `DELETE /executions/{id}/actions/kill` (Kestra 2.0's path): 200 with
/// the execution, now KILLING or KILLED; 409 when it has already ended.
/// With `isOnKillCascade` (default true), the subflow executions it waits
/// for are killed too.
pub async fn kill_action(
    State(executions): State<Executions>,
    Params(id): Params<String>,
    query: Pairs,
) -> ApiResult<Response> {
    let cascade = cascade(&query)?;
    let parsed = parse_id(&id)?;
    match executions.kill(parsed, cascade).await? {
        KillOutcome::Killed(_) => {}
        KillOutcome::Ended(state) => {
            return Err(ApiError::conflict(format!(
                "execution {id} has already ended ({state})"
            )));
        }
        KillOutcome::NotFound => {
            return Err(ApiError::not_found(format!("execution {id} not found")));
        }
    }
    let snapshot = executions
        .get(parsed)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))?;
    Ok(execution_response(&snapshot.record))
}

/// `DELETE /executions/{a}/{b}`: only `/executions/{id}/kill` exists.
pub async fn delete_pair(
    State(executions): State<Executions>,
    Params((a, b)): Params<(String, String)>,
    query: Pairs,
) -> ApiResult<Response> {
    if b != "kill" {
        return Err(ApiError::not_found(format!(
            "no route for DELETE /executions/{a}/{b}"
        )));
    }
    kill(&executions, &a, cascade(&query)?).await
}

/// A webhook call's body as its flow reads it (Kestra's `Webhook.evaluate`):
/// a JSON object or array as JSON, anything else (a JSON scalar included)
/// as its text, and no body as null.
fn webhook_body(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(json @ (Value::Object(_) | Value::Array(_))) => json,
        _ => Value::String(String::from_utf8_lossy(body).into_owned()),
    }
}

/// `GET|POST|PUT /executions/webhook/{namespace}/{flowId}/{key}`: starts
/// the flow whose Webhook trigger has this key, with `trigger.body`,
/// `trigger.headers` and `trigger.parameters`.
pub async fn webhook(
    State(state): State<AppState>,
    Params((namespace, flow_id, key)): Params<(String, String, String)>,
    query: Pairs,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let stored = state.flows().get(&namespace, &flow_id);
    let trigger_id = stored
        .as_ref()
        .and_then(|f| f.webhook(&key, state.variables()))
        .map(str::to_owned);
    let (Some(stored), Some(trigger_id)) = (stored, trigger_id) else {
        return Err(ApiError::not_found(format!(
            "no webhook {key} on flow {namespace}.{flow_id}"
        )));
    };
    let body = webhook_body(&body);
    let mut header_map = Map::new();
    for (name, value) in &headers {
        // Credentials are not the flow's business, and would be stored with
        // the execution.
        if name == header::AUTHORIZATION || name == header::COOKIE {
            continue;
        }
        let value = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match header_map.get_mut(name.as_str()) {
            Some(Value::Array(values)) => values.push(value),
            _ => {
                header_map.insert(name.as_str().to_owned(), Value::Array(vec![value]));
            }
        }
    }
    let mut parameters = Map::new();
    for (k, v) in &query.0 {
        match parameters.get_mut(k) {
            Some(Value::Array(values)) => values.push(Value::String(v.clone())),
            _ => {
                parameters.insert(k.clone(), Value::Array(vec![Value::String(v.clone())]));
            }
        }
    }
    let trigger = execution_trigger(
        &trigger_id,
        "io.kestra.plugin.core.trigger.Webhook",
        json!({
            "body": body,
            "headers": header_map,
            "parameters": parameters,
        }),
    );
    let inputs = check_inputs(&stored, &Map::new())?;
    let Some(peregrine_engine::flow::TriggerKind::Webhook {
        conditions,
        wait,
        return_outputs,
        response_content_type,
        response_code,
        ..
    }) = stored
        .flow()
        .triggers
        .iter()
        .find(|t| t.id == trigger_id)
        .map(|t| &t.kind)
    else {
        return Err(ApiError::internal("finding a webhook", "it is gone"));
    };
    if !conditions.is_empty() {
        // Over the call, as its execution would see it.
        let flow = stored.flow();
        let vars = json!({
            "trigger": trigger["variables"],
            "flow": {"id": flow.id, "namespace": flow.namespace, "revision": stored.revision().revision()},
        });
        for condition in conditions {
            let text = state
                .variables()
                .render_text(condition, &vars)
                .map_err(|e| {
                    ApiError::unprocessable(format!("a webhook condition: {e}"), Value::Null)
                })?;
            if text.trim().is_empty() || text.trim() == "false" {
                // Kestra's: conditions not met, nothing starts.
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
        }
    }
    let how = How {
        wait: *wait,
        schedule_date: None,
        id: None,
    };
    let update = match started(&state, &stored, inputs, Vec::new(), Some(trigger), how).await? {
        Answer::Created(record) => return Ok(execution_response(&record)),
        Answer::Ended(update) => update,
    };
    // Kestra's: the code given, else 500 for a FAILED execution, else 200.
    let failed = update.record().state() == peregrine_engine::State::Failed;
    let status = response_code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(if failed {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        });
    if !*return_outputs {
        return Ok(json_response(status, update.json()));
    }
    // The outputs map as JSON, whatever the content type (Kestra's
    // `buildOutputResponse` writes a map as JSON text under `text/plain`).
    let body = update
        .record()
        .outputs()
        .unwrap_or_else(|| json!({}))
        .to_string();
    Ok(match response_content_type.as_deref() {
        Some("text/plain") => {
            (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
        }
        _ => json_response(status, Bytes::from(body)),
    })
}
