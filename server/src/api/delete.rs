//! Deleting ended executions (Kestra's `DELETE /executions/{id}`,
//! `/executions/by-ids` and `/executions/by-query`), with their log lines
//! unless `deleteLogs=false` and their metrics unless `deleteMetrics=false`;
//! their files go with them (the server's sweep removes those of
//! executions that are gone). A running execution is not deleted: kill it
//! first. A deletion is journaled (it supersedes the final record, on disk
//! too) and answered once durable.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use peregrine_engine::ExecutionId;
use peregrine_engine::logs::LogQuery;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::executions::parse_id;
use super::extract::{Body, Pairs, Params};
use super::filters::{Conditions, Resource};
use super::labels::read;
use crate::state::AppState;

/// Executions one bulk deletion takes, at most.
const MAX_BULK: usize = 10_000;

/// What goes with a deleted execution: Kestra's `deleteLogs` and
/// `deleteMetrics` (true by default); `deleteStorage=false` is refused (its
/// files go with it).
#[derive(Debug, Clone, Copy)]
struct Along {
    logs: bool,
    metrics: bool,
}

fn along(query: &Pairs) -> ApiResult<Along> {
    let flag = |key: &str| match query.get(key) {
        None | Some("") => Ok(true),
        Some(_) => query.flag(key),
    };
    if !flag("deleteStorage")? {
        return Err(ApiError::bad_request(
            "deleteStorage=false is not supported yet: an execution's files go with it",
        ));
    }
    Ok(Along {
        logs: flag("deleteLogs")?,
        metrics: flag("deleteMetrics")?,
    })
}

/// Kestra 2.0's `includeNonTerminated` (false): executions that have not
/// ended are left out of a bulk deletion; true would delete them too,
/// which Peregrine does not (its shard still runs them): refused.
fn leave_running(query: &Pairs) -> ApiResult<()> {
    match query.get("includeNonTerminated") {
        None | Some("") => Ok(()),
        Some(_) if !query.flag("includeNonTerminated")? => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "includeNonTerminated=true is not supported yet: an execution that has not ended \
             is not deleted (kill it first)",
        )),
    }
}

/// Deletes `ids` (each known and ended: checked by the caller), and
/// what goes `along`; how many were deleted.
async fn delete(state: &AppState, ids: Vec<ExecutionId>, along: Along) -> ApiResult<usize> {
    let (deleted, _running) = state.executions().delete(ids).await?;
    let (logs, metrics) = (state.logs().clone(), state.task_metrics().clone());
    let gone = deleted.clone();
    tokio::task::spawn_blocking(move || {
        for id in gone {
            if along.logs {
                logs.delete(id, &LogQuery::default());
            }
            if along.metrics {
                metrics.delete(id);
            }
        }
    })
    .await
    .map_err(|e| ApiError::internal("deleting an execution's lines and metrics", e))?;
    Ok(deleted.len())
}

/// `DELETE /executions/{id}`: 204; 404 when it is not found, 409 while it
/// runs.
pub async fn one(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
) -> ApiResult<StatusCode> {
    let along = along(&query)?;
    let parsed = parse_id(&id)?;
    let Some(found) = state.executions().get(parsed).await? else {
        return Err(ApiError::not_found(format!("execution {id} not found")));
    };
    if !found.record.is_terminal() {
        return Err(ApiError::conflict(format!(
            "execution {id} is {}: kill it before deleting it",
            found.record.state().as_str()
        )));
    }
    if delete(&state, vec![parsed], along).await? == 0 {
        return Err(ApiError::conflict(format!(
            "execution {id} runs again: kill it before deleting it"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

fn invalid(id: &str, message: &str) -> Value {
    json!({"invalidValue": id, "message": message, "path": "executionId"})
}

/// `DELETE /executions/by-ids`, a JSON list of ids: every one checked
/// first (400 naming each not found, none deleted), then those that ended
/// deleted (the others left, as Kestra 2.0 leaves them by default):
/// `{count}`.
pub async fn by_ids(
    State(state): State<AppState>,
    query: Pairs,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let along = along(&query)?;
    leave_running(&query)?;
    let ids: Vec<String> = read(&body, "a list of execution ids")?;
    if ids.len() > MAX_BULK {
        return Err(ApiError::bad_request(format!(
            "{} executions; at most {MAX_BULK} are deleted at once",
            ids.len()
        )));
    }
    let mut invalids = Vec::new();
    let mut valid = Vec::with_capacity(ids.len());
    for text in &ids {
        let found = match text.parse::<ExecutionId>() {
            Ok(id) => state.executions().get(id).await?.map(|s| (id, s.record)),
            Err(_) => None,
        };
        match found {
            None => invalids.push(invalid(text, "execution not found")),
            Some((_, record)) if !record.is_terminal() => {}
            Some((id, _)) if !valid.contains(&id) => valid.push(id),
            Some(_) => {}
        }
    }
    if !invalids.is_empty() {
        return Err(ApiError::bad_request("invalid bulk deletion")
            .with_details(json!({ "invalids": invalids })));
    }
    let count = delete(&state, valid, along).await?;
    Ok(Json(json!({ "count": count })))
}

/// `DELETE /executions/by-query`: the ended executions a search with the
/// same filters finds (at most 10,000); `{count}`.
pub async fn by_query(State(state): State<AppState>, query: Pairs) -> ApiResult<Json<Value>> {
    let along = along(&query)?;
    leave_running(&query)?;
    let conditions = Conditions::read(&query, Resource::Execution)?;
    if conditions.nothing {
        return Ok(Json(json!({ "count": 0 })));
    }
    let filter = conditions.into_filter(false);
    let (found, total) = state.executions().search(filter, 1, MAX_BULK).await?;
    if total > MAX_BULK {
        return Err(ApiError::bad_request(format!(
            "{total} executions; at most {MAX_BULK} are deleted at once"
        )));
    }
    let ids = found
        .iter()
        .filter(|s| s.record.is_terminal())
        .map(|s| s.record.id())
        .collect();
    let count = delete(&state, ids, along).await?;
    Ok(Json(json!({ "count": count })))
}
