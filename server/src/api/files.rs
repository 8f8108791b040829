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
    let files = state.files().clone();
    let opened = {
        let uri = uri.clone();
        tokio::task::spawn_blocking(move || files.storage().open(&uri))
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?
    };
    let reader = opened.map_err(storage_error)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let mut buf = vec![0u8; CHUNK];
        loop {
            match std::io::Read::read(&mut reader, &mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(bytes::Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
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
    let files = state.files().clone();
    let size = {
        let uri = uri.clone();
        tokio::task::spawn_blocking(move || files.storage().size(&uri))
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?
            .map_err(storage_error)?
    };
    match size {
        Some(size) => Ok(axum::Json(json!({ "size": size })).into_response()),
        None => Err(storage_error(storage::Error::NotFound(uri.to_string()))),
    }
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

fn storage_error(e: storage::Error) -> ApiError {
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
