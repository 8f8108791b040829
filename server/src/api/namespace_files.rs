//! A namespace's files, as Kestra's `/namespaces/{namespace}/files` serves
//! them: kept in the internal storage under the namespace's `_files`
//! folder (`kestra:///{namespace as folders}/_files/{path}`), read by
//! scripts' `namespaceFiles` and by `read('path')`.
//!
//! `GET files?path=` streams one; `GET files/stats?path=` and `GET
//! files/directory?path=` give Kestra's file attributes (the root when no
//! path); `POST files?path=` uploads one (multipart `fileContent`, within
//! `storage.max-file-size`); `PUT files?from=&to=` moves a file or a
//! folder; `DELETE files?path=` deletes one; `GET files/search?q=` lists
//! the paths holding `q`. Folders exist while a file is in them: an empty
//! one (`POST files/directory`), revisions, a zip import and the zip
//! export are refused as not supported yet (`unsupported.rs`, and here).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use peregrine_engine::storage::{Storage, Uri};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::executions::{Streamed, stream_field};
use super::extract::{Pairs, Params};
use super::files::{blocking, storage_error, stream_file};
use crate::state::AppState;

/// The paths one search or listing looks at, at most.
const MAX_LISTED: usize = 100_000;

/// `path` (Kestra's `/a/b.txt`) as a path under the namespace's files:
/// without its leading `/`, empty for the root.
fn relative(path: Option<&str>) -> ApiResult<String> {
    let path = path
        .unwrap_or("")
        .trim_start_matches('/')
        .trim_end_matches('/');
    if path.split('/').any(|s| s == ".." || s == ".") {
        return Err(ApiError::unprocessable(
            format!("Path must not contain '.' or '..' segments: {path}"),
            Value::Null,
        ));
    }
    Ok(path.to_owned())
}

/// The file at `path` of `namespace`.
fn file_uri(namespace: &str, path: &str) -> ApiResult<Uri> {
    if path.is_empty() {
        return Err(ApiError::bad_request("`path` is required"));
    }
    Uri::namespace_file(namespace, path)
        .map_err(|e| ApiError::unprocessable(e.to_string(), Value::Null))
}

/// The storage prefix of folder `path` of `namespace` (its root when
/// empty).
fn folder_prefix(namespace: &str, path: &str) -> String {
    let root = Uri::namespace_prefix(namespace);
    if path.is_empty() {
        root
    } else {
        format!("{root}/{path}")
    }
}

fn millis(at: Option<SystemTime>) -> u64 {
    at.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// Kestra's `FileAttributes` of a file or a folder.
fn attributes(name: &str, directory: bool, size: u64, modified: Option<SystemTime>) -> Value {
    let at = millis(modified);
    json!({
        "fileName": name,
        "lastModifiedTime": at,
        "creationTime": at,
        "type": if directory { "Directory" } else { "File" },
        "size": size,
        "metadata": {},
    })
}

/// What is under folder `path` of `namespace`: each file's path below the
/// folder, at most [`MAX_LISTED`].
fn files_under(storage: &dyn Storage, namespace: &str, path: &str) -> ApiResult<Vec<Uri>> {
    let mut found = storage
        .list_under(&folder_prefix(namespace, path))
        .map_err(storage_error)?;
    if found.len() > MAX_LISTED {
        found.truncate(MAX_LISTED);
    }
    Ok(found)
}

/// `call` with the server's files, off the async threads.
async fn with_files<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(peregrine_engine::storage::Files) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let files = state.files().clone();
    tokio::task::spawn_blocking(move || call(files))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
}

/// `GET /namespaces/{namespace}/files?path=`.
pub async fn get(
    State(state): State<AppState>,
    Params(namespace): Params<String>,
    query: Pairs,
) -> ApiResult<Response> {
    let uri = file_uri(&namespace, &relative(query.get("path"))?)?;
    stream_file(&state, &uri).await
}

/// `GET /namespaces/{namespace}/files/stats?path=`.
pub async fn stats(
    State(state): State<AppState>,
    Params(namespace): Params<String>,
    query: Pairs,
) -> ApiResult<Response> {
    let path = relative(query.get("path"))?;
    let found = with_files(&state, move |files| -> ApiResult<Value> {
        let storage = files.storage();
        let name = path.rsplit('/').next().unwrap_or("").to_owned();
        if !path.is_empty() {
            let uri = file_uri(&namespace, &path)?;
            if let Some(size) = storage.size(&uri).map_err(storage_error)? {
                let modified = storage.modified(&uri).map_err(storage_error)?;
                return Ok(attributes(&name, false, size, modified));
            }
        }
        let under = files_under(storage, &namespace, &path)?;
        // The root always is (Kestra makes it when first asked).
        if under.is_empty() && !path.is_empty() {
            return Err(ApiError::not_found(format!(
                "namespace file `/{path}` of {namespace} not found"
            )));
        }
        let mut newest = None;
        for uri in &under {
            newest = newest.max(storage.modified(uri).map_err(storage_error)?);
        }
        Ok(attributes(&name, true, 0, newest))
    })
    .await?;
    Ok(axum::Json(found).into_response())
}

/// `GET /namespaces/{namespace}/files/directory?path=`: what the folder
/// holds, files and folders, by name.
pub async fn directory(
    State(state): State<AppState>,
    Params(namespace): Params<String>,
    query: Pairs,
) -> ApiResult<Response> {
    let path = relative(query.get("path"))?;
    let listed = with_files(&state, move |files| -> ApiResult<Vec<Value>> {
        let storage = files.storage();
        if !path.is_empty() {
            let uri = file_uri(&namespace, &path)?;
            if storage.size(&uri).map_err(storage_error)?.is_some() {
                return Err(ApiError::unprocessable(
                    format!("`/{path}` is a file, not a folder"),
                    Value::Null,
                ));
            }
        }
        let under = files_under(storage, &namespace, &path)?;
        if under.is_empty() && !path.is_empty() {
            return Err(ApiError::not_found(format!(
                "namespace folder `/{path}` of {namespace} not found"
            )));
        }
        let prefix = folder_prefix(&namespace, &path);
        // name -> (is a folder, size, newest change)
        let mut entries: BTreeMap<String, (bool, u64, Option<SystemTime>)> = BTreeMap::new();
        for uri in &under {
            let Some(below) = uri
                .path()
                .strip_prefix(prefix.as_str())
                .map(|r| r.trim_start_matches('/'))
            else {
                continue;
            };
            let modified = storage.modified(uri).map_err(storage_error)?;
            let (name, folder) = match below.split_once('/') {
                Some((first, _)) => (first.to_owned(), true),
                None => (below.to_owned(), false),
            };
            let size = if folder {
                0
            } else {
                storage.size(uri).map_err(storage_error)?.unwrap_or(0)
            };
            let entry = entries.entry(name).or_insert((folder, size, modified));
            entry.2 = entry.2.max(modified);
        }
        Ok(entries
            .into_iter()
            .map(|(name, (folder, size, modified))| attributes(&name, folder, size, modified))
            .collect())
    })
    .await?;
    Ok(axum::Json(listed).into_response())
}

/// `POST /namespaces/{namespace}/files?path=`: the part `fileContent`
/// stored at `path`.
pub async fn upload(
    State(state): State<AppState>,
    Params(namespace): Params<String>,
    query: Pairs,
    mut multipart: Multipart,
) -> ApiResult<Response> {
    let path = relative(query.get("path"))?;
    if path == "_flows" || path.starts_with("_flows/") {
        return Err(ApiError::unprocessable(
            "importing flows through namespace files is not supported yet: create them through /flows",
            Value::Null,
        ));
    }
    let uri = file_uri(&namespace, &path)?;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| super::error::rejection(e.status(), e.body_text()))?;
        let Some(mut field) = field else {
            return Err(ApiError::bad_request(
                "the request has no `fileContent` part",
            ));
        };
        if field.name() != Some("fileContent") {
            continue;
        }
        if field
            .file_name()
            .is_some_and(|n| n.to_ascii_lowercase().ends_with(".zip"))
        {
            return Err(ApiError::unprocessable(
                "importing a zip of namespace files is not supported yet: upload each file",
                Value::Null,
            ));
        }
        let files = state.files().clone();
        return match stream_field(&files, &uri, &mut field).await {
            Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
            Err(Streamed::TooLarge) => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the file is larger than {} bytes (storage.max-file-size)",
                    files.max_file_bytes()
                ),
            )),
            Err(Streamed::Request(refused)) => Err(refused),
            Err(Streamed::Storage(e)) => Err(storage_error(e)),
        };
    }
}

/// `PUT /namespaces/{namespace}/files?from=&to=`: a file, or every file of
/// a folder, moved.
pub async fn move_to(
    State(state): State<AppState>,
    Params(namespace): Params<String>,
    query: Pairs,
) -> ApiResult<Response> {
    let from = relative(query.get("from"))?;
    let to = relative(query.get("to"))?;
    if from.is_empty() || to.is_empty() {
        return Err(ApiError::bad_request("`from` and `to` are required"));
    }
    with_files(&state, move |files| -> ApiResult<()> {
        let storage = files.storage();
        let limit = files.max_file_bytes();
        let source = file_uri(&namespace, &from)?;
        let moves: Vec<(Uri, Uri)> = if storage.size(&source).map_err(storage_error)?.is_some() {
            vec![(source, file_uri(&namespace, &to)?)]
        } else {
            let prefix = folder_prefix(&namespace, &from);
            let under = files_under(storage, &namespace, &from)?;
            if under.is_empty() {
                return Err(ApiError::not_found(format!(
                    "namespace file `/{from}` of {namespace} not found"
                )));
            }
            under
                .into_iter()
                .map(|uri| {
                    let below = uri.path()[prefix.len()..]
                        .trim_start_matches('/')
                        .to_owned();
                    let target = file_uri(&namespace, &format!("{to}/{below}"))?;
                    Ok((uri, target))
                })
                .collect::<ApiResult<_>>()?
        };
        for (from, to) in moves {
            let mut reader = storage.open(&from).map_err(storage_error)?;
            storage
                .put(&to, &mut reader, limit)
                .map_err(storage_error)?;
            storage.delete(&from).map_err(storage_error)?;
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /namespaces/{namespace}/files?path=`: a file, or a folder and
/// all it holds.
pub async fn delete(
    State(state): State<AppState>,
    Params(namespace): Params<String>,
    query: Pairs,
) -> ApiResult<Response> {
    let path = relative(query.get("path"))?;
    let uri = file_uri(&namespace, &path)?;
    let prefix = folder_prefix(&namespace, &path);
    let deleted = blocking(&state, move |storage| {
        if storage.delete(&uri)? {
            return Ok(true);
        }
        Ok(!storage.delete_under(&prefix)?.is_empty())
    })
    .await?;
    if !deleted {
        return Err(ApiError::not_found(format!(
            "namespace file `/{path}` not found"
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /namespaces/{namespace}/files/search?q=`: the files whose path
/// holds `q`, as `/paths`.
pub async fn search(
    State(state): State<AppState>,
    Params(namespace): Params<String>,
    query: Pairs,
) -> ApiResult<Response> {
    let wanted = query.get("q").unwrap_or("").to_owned();
    let found = with_files(&state, move |files| -> ApiResult<Vec<String>> {
        let prefix = Uri::namespace_prefix(&namespace);
        Ok(files_under(files.storage(), &namespace, "")?
            .iter()
            .filter_map(|uri| uri.path().strip_prefix(prefix.as_str()).map(str::to_owned))
            .filter(|path| path.contains(&wanted))
            .collect())
    })
    .await?;
    Ok(axum::Json(found).into_response())
}
