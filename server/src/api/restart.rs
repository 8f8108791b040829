//! Restarting and replaying an ended execution, as Kestra does:
//! `POST /executions/{id}/restart` runs its failed task runs again under the
//! same id (with `?revision=` other than its own, a new execution on that
//! revision); `POST /executions/{id}/replay` starts a new execution from the
//! start or from `?taskRunId=`, keeping what came before it. Both answer
//! with the execution (200), Kestra 2.0's `/actions/` paths too; 404 for an
//! unknown execution or revision, 409 for one that has not ended, 422 when
//! nothing of it can be restarted.

use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Response};
use peregrine_engine::{ExecutionId, Record, ReplayError, ReplayFrom, RestartOutcome, TaskRunId};
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::executions::{self, execution_response, parse_id};
use super::extract::{Body, Pairs, Params};
use super::labels::{MAX_BULK, invalid, read};
use crate::state::{AppState, Executions, Refused};

/// `POST /executions/{id}/actions/restart`.
pub async fn restart(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
) -> ApiResult<Response> {
    restart_one(&state, &id, &query).await
}

/// `POST /executions/{id}/restart`, 0.2x's path, which is also that of
/// `POST /executions/{namespace}/{flowId}`: a flow named `restart` in
/// namespace `{id}` is triggered, as Kestra's router would.
pub async fn restart_or_trigger(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
    request: axum::extract::Request,
) -> Response {
    if state.flows().get(&id, "restart").is_some() {
        let pair = Params((id, "restart".to_owned()));
        return executions::trigger(State(state), pair, query, request)
            .await
            .into_response();
    }
    restart_one(&state, &id, &query).await.into_response()
}

/// `POST /executions/restart/by-ids`: a JSON list of execution ids, each
/// FAILED (else 400 with each reason, and none is restarted); each is
/// restarted as one alone is: `{count}`.
pub async fn restart_by_ids(
    State(executions): State<Executions>,
    Body(body): Body,
) -> ApiResult<Response> {
    let ids: Vec<String> = read(&body, "a list of execution ids")?;
    if ids.len() > MAX_BULK {
        return Err(ApiError::bad_request(format!(
            "{} executions; at most {MAX_BULK} are restarted at once",
            ids.len()
        )));
    }
    let mut invalids = Vec::new();
    let mut valid: Vec<ExecutionId> = Vec::with_capacity(ids.len());
    for text in &ids {
        let found = match text.parse::<ExecutionId>() {
            Ok(id) => executions.get(id).await?.map(|s| (id, s.record.state())),
            Err(_) => None,
        };
        match found {
            None => invalids.push(invalid(text, "execution not found".to_owned())),
            // Kestra's check: only a FAILED execution is restarted in bulk.
            Some((_, state)) if state != peregrine_engine::State::Failed => {
                invalids.push(invalid(text, "execution not in state FAILED".to_owned()));
            }
            Some((id, _)) if !valid.contains(&id) => valid.push(id),
            Some(_) => {}
        }
    }
    if !invalids.is_empty() {
        return Err(ApiError::bad_request("invalid bulk restart")
            .with_details(serde_json::json!({ "invalids": invalids })));
    }
    let mut count = 0;
    for id in valid {
        match executions.restart(id).await? {
            RestartOutcome::Restarted(_) => count += 1,
            RestartOutcome::Refused(why) => {
                return Err(ApiError::unprocessable(
                    format!("execution {id}: {why}"),
                    Value::Null,
                ));
            }
            // Gone, or running again, since it was checked: not counted.
            RestartOutcome::NotFound | RestartOutcome::NotEnded(_) | RestartOutcome::Stale => {}
        }
    }
    let body = serde_json::json!({ "count": count });
    Ok((axum::http::StatusCode::OK, axum::Json(body)).into_response())
}

/// `POST /executions/{id}/actions/replay`.
pub async fn replay(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
) -> ApiResult<Response> {
    replay_one(&state, &id, &query).await
}

/// `POST /executions/{id}/replay`, 0.2x's path (see
/// [`restart_or_trigger`]).
pub async fn replay_or_trigger(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
    request: axum::extract::Request,
) -> Response {
    if state.flows().get(&id, "replay").is_some() {
        let pair = Params((id, "replay".to_owned()));
        return executions::trigger(State(state), pair, query, request)
            .await
            .into_response();
    }
    replay_one(&state, &id, &query).await.into_response()
}

async fn restart_one(state: &AppState, id: &str, query: &Pairs) -> ApiResult<Response> {
    let executions = Executions::from_ref(state);
    let parsed = parse_id(id)?;
    let revision = revision(query)?;
    let old = ended(&executions, parsed).await?;
    if let Some(revision) = revision.filter(|r| *r != old.flow_revision()) {
        // Kestra restarts on another revision into a new execution.
        return start_replay(&executions, &old, ReplayFrom::Failed, Some(revision)).await;
    }
    match executions.restart(parsed).await? {
        RestartOutcome::Restarted(snapshot) => Ok(execution_response(&snapshot.record)),
        RestartOutcome::NotEnded(state) => Err(not_ended("restarted", state)),
        RestartOutcome::Refused(why) => Err(ApiError::unprocessable(why, Value::Null)),
        RestartOutcome::NotFound => Err(ApiError::not_found(format!("execution {id} not found"))),
        RestartOutcome::Stale => Err(Refused::Overloaded(format!(
            "execution {id} changed while it was being restarted; retry"
        ))
        .into()),
    }
}

async fn replay_one(state: &AppState, id: &str, query: &Pairs) -> ApiResult<Response> {
    let executions = Executions::from_ref(state);
    let parsed = parse_id(id)?;
    let revision = revision(query)?;
    let from = match query.get("taskRunId").filter(|t| !t.is_empty()) {
        None => ReplayFrom::Start,
        Some(text) => ReplayFrom::TaskRun(text.parse::<TaskRunId>().map_err(|_| {
            ApiError::unprocessable(format!("Invalid task run id '{text}'"), Value::Null)
        })?),
    };
    let old = ended(&executions, parsed).await?;
    start_replay(&executions, &old, from, revision).await
}

async fn start_replay(
    executions: &Executions,
    old: &Record,
    from: ReplayFrom,
    revision: Option<u32>,
) -> ApiResult<Response> {
    match executions.replay(old, from, revision).await? {
        Ok(snapshot) => Ok(execution_response(&snapshot.record)),
        Err(ReplayError::NotEnded(state)) => Err(not_ended("replayed", state)),
        Err(ReplayError::Invalid(why)) if why.starts_with("Unable to find") => {
            Err(ApiError::not_found(why))
        }
        Err(ReplayError::Invalid(why)) => Err(ApiError::unprocessable(why, Value::Null)),
        Err(ReplayError::Refused(refused)) => Err(Refused::from(refused.refusal).into()),
    }
}

/// Execution `id`, which must exist.
async fn ended(executions: &Executions, id: ExecutionId) -> ApiResult<Record> {
    executions
        .get(id)
        .await?
        .map(|snapshot| snapshot.record)
        .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))
}

fn revision(query: &Pairs) -> ApiResult<Option<u32>> {
    match query.get("revision").filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!("Invalid revision '{text}': a positive integer"))
        }),
    }
}

/// Kestra's answer (an `IllegalStateException`: 409) for an execution that
/// has not ended.
fn not_ended(what: &str, state: peregrine_engine::State) -> ApiError {
    ApiError::conflict(format!(
        "Execution must be terminated to be {what}, current state is '{state}' !"
    ))
}
