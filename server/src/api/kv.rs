//! The KV store's API (Kestra's `KVController`), under
//! `/namespaces/{namespace}/kv`: list a namespace's keys (and its parents',
//! `/inheritance`), read a key's typed value, set one (the body as Kestra
//! reads it: JSON, a bare word, an instant; headers `ttl` and
//! `description`), delete one or many.
//!
//! A write answers once it is durable; it runs off the runtime, as it
//! waits for the KV log's sync.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use peregrine_engine::kv::{self, KvMeta, KvValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Pairs, Params};
use super::filters;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct Namespace {
    namespace: String,
}

#[derive(Deserialize)]
pub struct NamespaceKey {
    namespace: String,
    key: String,
}

/// The API's answer to a store's refusal.
fn refused(e: kv::Error) -> ApiError {
    let status = match &e {
        kv::Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        kv::Error::Full { .. } => StatusCode::INSUFFICIENT_STORAGE,
        kv::Error::Durability(_) => StatusCode::SERVICE_UNAVAILABLE,
        kv::Error::Exists(_) => StatusCode::CONFLICT,
        kv::Error::BadKey { .. } | kv::Error::BadNamespace(_) | kv::Error::BadValue(_) => {
            StatusCode::BAD_REQUEST
        }
    };
    ApiError::new(status, e.to_string())
}

/// A namespace's keys, as Kestra's `KVEntry` list (expired ones left out).
fn listing(state: &AppState, namespace: &str) -> Value {
    let now = Utc::now();
    Value::Array(
        state
            .kv()
            .list(namespace, now, false)
            .iter()
            .map(|(key, entry)| entry.listing(namespace, key))
            .collect(),
    )
}

/// `GET /namespaces/{namespace}/kv`.
pub async fn list(
    State(state): State<AppState>,
    Params(p): Params<Namespace>,
) -> ApiResult<Json<Value>> {
    Ok(Json(listing(&state, &p.namespace)))
}

/// `GET /namespaces/{namespace}/kv/inheritance`: the namespace's keys, then
/// each parent's (Kestra 2.0: one list, each entry with its namespace).
pub async fn inheritance(
    State(state): State<AppState>,
    Params(p): Params<Namespace>,
) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    let mut ns = p.namespace.as_str();
    loop {
        if let Value::Array(entries) = listing(&state, ns) {
            out.extend(entries);
        }
        match ns.rfind('.') {
            Some(dot) => ns = &ns[..dot],
            None => break,
        }
    }
    Ok(Json(Value::Array(out)))
}

/// Keys one page of `GET /kv` may hold.
const MAX_PAGE_SIZE: usize = 10_000;

/// `GET /kv`: every namespace's keys, `{results, total}`, filtered by
/// `filters[namespace][OP]` and `filters[q][EQUALS]` (a part of the key
/// or namespace), by namespace then key; `page`, `size`.
pub async fn search(State(state): State<AppState>, query: Pairs) -> ApiResult<Json<Value>> {
    let conditions = filters::Conditions::read(&query, filters::Resource::Kv)?;
    let (page, size) = filters::page(&query, MAX_PAGE_SIZE)?;
    let now = Utc::now();
    let kv = state.kv();
    let mut found = Vec::new();
    if !conditions.nothing {
        for ns in kv.namespaces() {
            for (key, entry) in kv.list(&ns, now, false) {
                if conditions.filter.matches_flow(&ns, &key, &[]) {
                    found.push(entry.listing(&ns, &key));
                }
            }
        }
    }
    let total = found.len();
    let results: Vec<Value> = found
        .into_iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .collect();
    Ok(Json(json!({ "results": results, "total": total })))
}

/// `GET /namespaces/{namespace}/kv/{key}`: Kestra's `TypedValue`, with the
/// revision and update date Kestra 2.0 adds (`KvDetail`).
pub async fn get(
    State(state): State<AppState>,
    Params(p): Params<NamespaceKey>,
) -> ApiResult<Json<Value>> {
    match state
        .kv()
        .get(&p.namespace, &p.key, Utc::now())
        .map_err(refused)?
    {
        Some(entry) => Ok(Json(entry.detail())),
        None => Err(ApiError::not_found(format!(
            "No value found for key '{}' in namespace '{}'",
            p.key, p.namespace
        ))),
    }
}

/// `PUT /namespaces/{namespace}/kv/{key}`: sets the value, with the headers
/// `ttl` (an ISO-8601 duration) and `description`.
pub async fn put(
    State(state): State<AppState>,
    Params(p): Params<NamespaceKey>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let header = |name: &str| -> ApiResult<Option<String>> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.to_owned()))
                .map_err(|_| ApiError::bad_request(format!("the `{name}` header is not text"))),
        }
    };
    let ttl = match header("ttl")? {
        None => None,
        Some(text) => Some(
            peregrine_engine::flow::parse_duration(&text).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "the `ttl` header `{text}` is not an ISO-8601 duration (e.g. PT1H)"
                ))
            })?,
        ),
    };
    let meta = KvMeta {
        description: header("description")?,
        ttl,
    };
    let value = KvValue::parse_api_body(body.text()?).map_err(refused)?;
    let done = tokio::task::spawn_blocking(move || {
        state
            .kv()
            .put(&p.namespace, &p.key, value, meta, true, Utc::now())
    })
    .await
    .map_err(|e| ApiError::internal("setting a KV value", e))?;
    done.map_err(refused)?;
    Ok(StatusCode::OK)
}

/// `DELETE /namespaces/{namespace}/kv/{key}`: whether it held a value.
pub async fn delete(
    State(state): State<AppState>,
    Params(p): Params<NamespaceKey>,
) -> ApiResult<Json<Value>> {
    kv::validate_key(&p.key).map_err(refused)?;
    let done =
        tokio::task::spawn_blocking(move || state.kv().delete(&p.namespace, &p.key, Utc::now()))
            .await
            .map_err(|e| ApiError::internal("deleting a KV value", e))?;
    Ok(Json(Value::Bool(done.map_err(refused)?)))
}

#[derive(Deserialize)]
struct Keys {
    #[serde(default)]
    keys: Option<Vec<String>>,
}

/// Keys one bulk delete may name.
const MAX_BULK_KEYS: usize = 10_000;

/// `DELETE /namespaces/{namespace}/kv` with `{keys}`: `{keys}` deleted.
pub async fn delete_many(
    State(state): State<AppState>,
    Params(p): Params<Namespace>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let Keys { keys } = serde_json::from_slice(&body.0).map_err(|e| {
        ApiError::bad_request(format!("the body is not `{{\"keys\": [...]}}`: {e}"))
    })?;
    let keys = keys.unwrap_or_default();
    if keys.len() > MAX_BULK_KEYS {
        return Err(ApiError::bad_request(format!(
            "{} keys, more than the {MAX_BULK_KEYS} one call may delete",
            keys.len()
        )));
    }
    // Kestra skips what it cannot delete; so does this, keys that are not
    // keys included.
    let keys: Vec<String> = keys
        .into_iter()
        .filter(|k| kv::validate_key(k).is_ok())
        .collect();
    let done =
        tokio::task::spawn_blocking(move || state.kv().remove(&p.namespace, &keys, Utc::now()))
            .await
            .map_err(|e| ApiError::internal("deleting KV values", e))?;
    Ok(Json(json!({ "keys": done.map_err(refused)? })))
}
