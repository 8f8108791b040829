//! Resuming a paused execution: `POST /executions/{id}/actions/resume`
//! (Kestra 2.0: 200 with the execution) and `POST /executions/{id}/resume`
//! (0.2x: 204). The inputs (multipart parts or a JSON object) are checked
//! against the paused task's `onResume` like flow inputs (422 when they do
//! not fit); 409 when nothing of the execution is paused.

use axum::extract::{FromRef, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use peregrine_engine::{ExecutionId, ResumeOutcome};
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::executions::{self, execution_response, parse_id, read_inputs};
use super::extract::{Pairs, Params};
use crate::state::{AppState, Executions};

/// `POST /executions/{id}/actions/resume`: 200 with the execution.
pub async fn action(
    State(executions): State<Executions>,
    Params(id): Params<String>,
    request: Request,
) -> ApiResult<Response> {
    let parsed = resume(&executions, &id, request).await?;
    let snapshot = executions
        .get(parsed)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))?;
    Ok(execution_response(&snapshot.record))
}

/// `POST /executions/{id}/resume`, 0.2x's path, which is also that of
/// `POST /executions/{namespace}/{flowId}`: a flow named `resume` in
/// namespace `{id}` is triggered, as Kestra's router would.
pub async fn resume_or_trigger(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
    request: Request,
) -> Response {
    if state.flows().get(&id, "resume").is_some() {
        let pair = Params((id, "resume".to_owned()));
        return executions::trigger(State(state), pair, query, request)
            .await
            .into_response();
    }
    let executions = Executions::from_ref(&state);
    match resume(&executions, &id, request).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn resume(executions: &Executions, id: &str, request: Request) -> ApiResult<ExecutionId> {
    let parsed = parse_id(id)?;
    // Uploads are not served yet: a FILE part is read as text, and a FILE
    // `onResume` input refuses it.
    let inputs = read_inputs(|_| false, request, None).await?;
    match executions.resume(parsed, inputs).await? {
        ResumeOutcome::Resumed(_) => Ok(parsed),
        ResumeOutcome::NotPaused(state) => Err(ApiError::conflict(format!(
            "execution {id} is not paused (it is {state})"
        ))),
        ResumeOutcome::Invalid(why) => Err(ApiError::unprocessable(why, Value::Null)),
        ResumeOutcome::NotFound => Err(ApiError::not_found(format!("execution {id} not found"))),
    }
}
