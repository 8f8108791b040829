//! An execution's files in the internal storage: `GET
//! /executions/{id}/file?path=kestra:///...` streams one (as an
//! attachment), `GET /executions/{id}/file/metas?path=` gives its size. A
//! path outside the execution is refused (422), as Kestra refuses it; one
//! of another execution is redirected to that execution's own call.

use axum::body::Body as ResponseBody;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use peregrine_engine::storage::{self, Uri};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::executions::parse_id;
use super::extract::{Pairs, Params};
use crate::state::AppState;

/// How much of a file one read hands the socket.
const CHUNK: usize = 64 << 10;
/// Uploads and downloads in flight at once: each holds a blocking thread
/// while it reads or writes a chunk, and the server's other blocking work
/// shares those threads.
const MAX_TRANSFERS: usize = 64;

static TRANSFERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_TRANSFERS);

/// A place among the transfers in flight, waited for.
pub(super) async fn transfer() -> ApiResult<tokio::sync::SemaphorePermit<'static>> {
    TRANSFERS
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("the server is stopping"))
}

/// `GET /executions/{id}/file?path=`.
pub async fn download(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
) -> ApiResult<Response> {
    let uri = match owned_uri(&state, &id, &query).await? {
        Owned::Here(uri) => uri,
        Owned::Elsewhere(to) => return Ok(to),
    };
    stream_file(&state, &uri).await
}

/// File `uri` of the storage, streamed as an attachment.
pub(super) async fn stream_file(state: &AppState, uri: &Uri) -> ApiResult<Response> {
    let permit = transfer().await?;
    let reader = blocking(state, {
        let uri = uri.clone();
        move |storage| storage.open(&uri)
    })
    .await?;
    // One blocking read per chunk, the reader handed back and forth: a
    // slow client holds no thread between chunks.
    let stream = futures_util::stream::unfold(Some((reader, permit)), |state| async move {
        let (mut reader, permit) = state?;
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; CHUNK];
            let n = std::io::Read::read(&mut reader, &mut buf);
            (reader, buf, n)
        })
        .await;
        match read {
            Ok((_, _, Ok(0))) => None,
            Ok((reader, mut buf, Ok(n))) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some((reader, permit))))
            }
            Ok((_, _, Err(e))) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    });
    let name = uri.file_name().replace(['"', '\\', '\r', '\n'], "_");
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        ResponseBody::from_stream(stream),
    )
        .into_response())
}

/// `GET /executions/{id}/file/metas?path=`: `{"size": n}`.
pub async fn metas(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
) -> ApiResult<Response> {
    let uri = match owned_uri(&state, &id, &query).await? {
        Owned::Here(uri) => uri,
        Owned::Elsewhere(to) => return Ok(to),
    };
    let size = blocking(&state, {
        let uri = uri.clone();
        move |storage| storage.size(&uri)
    })
    .await?;
    match size {
        Some(size) => Ok(axum::Json(json!({ "size": size })).into_response()),
        None => Err(storage_error(storage::Error::NotFound(uri.to_string()))),
    }
}

/// `call` on the storage, off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&dyn storage::Storage) -> storage::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let files = state.files().clone();
    tokio::task::spawn_blocking(move || call(files.storage()))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(storage_error)
}

/// Where a `path` points, as its execution sees it.
enum Owned {
    /// One of the execution's own files.
    Here(Uri),
    /// Another execution's: the answer redirecting there.
    Elsewhere(Response),
}

async fn owned_uri(state: &AppState, id: &str, query: &Pairs) -> ApiResult<Owned> {
    let execution = parse_id(id)?;
    let Some(path) = query.get("path").filter(|p| !p.is_empty()) else {
        return Err(ApiError::bad_request(
            "`path` is required: a kestra:/// URI",
        ));
    };
    let uri = Uri::parse(path).map_err(|e| ApiError::unprocessable(e.to_string(), json!(null)))?;
    let snapshot = state
        .executions()
        .get(execution)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))?;
    let record = &snapshot.record;
    let prefix = Uri::execution_prefix(record.namespace(), record.flow_id(), execution);
    if uri.is_under(&prefix) {
        return Ok(Owned::Here(uri));
    }
    // Another execution's file: Kestra redirects to its own call.
    if let Some(other) = uri
        .path()
        .split_once("/executions/")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|other| other.parse::<peregrine_engine::ExecutionId>().ok())
        .filter(|other| *other != execution)
    {
        let location = format!(
            "/api/v1/main/executions/{other}/file?path={}",
            encode(&uri.to_string())
        );
        let location =
            HeaderValue::from_str(&location).map_err(|e| ApiError::bad_request(e.to_string()))?;
        return Ok(Owned::Elsewhere(
            (
                StatusCode::MOVED_PERMANENTLY,
                [(header::LOCATION, location)],
            )
                .into_response(),
        ));
    }
    Err(ApiError::unprocessable(
        "Illegal argument: Invalid prefix path",
        json!(null),
    ))
}

pub(super) fn storage_error(e: storage::Error) -> ApiError {
    match e {
        storage::Error::NotFound(_) => ApiError::not_found(e.to_string()),
        storage::Error::InvalidUri { .. } => ApiError::unprocessable(e.to_string(), json!(null)),
        other => ApiError::unavailable(other.to_string()),
    }
}

/// `text` percent-encoded for a query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char);
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
