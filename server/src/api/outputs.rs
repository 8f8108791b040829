//! `/outputs`: what Kestra 2.0's clients read outputs from, since its
//! execution answer no longer carries them.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use peregrine_engine::Record;
use serde_json::{Map, Value, json};

use super::error::{ApiError, ApiResult};
use super::executions::parse_id;
use super::extract::Params;
use crate::state::Executions;

async fn record(executions: &Executions, id: &str) -> ApiResult<Record> {
    Ok(executions
        .get(parse_id(id)?)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))?
        .record)
}

fn task_runs(execution: &Value) -> impl Iterator<Item = &Map<String, Value>> {
    execution["taskRunList"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// `GET /outputs/executions/{id}` (and `/outputs/{id}`): the flow's
/// outputs, `{}` when it declares none or has not ended.
pub async fn execution(
    State(executions): State<Executions>,
    Params(id): Params<String>,
) -> ApiResult<Json<Value>> {
    let execution = record(&executions, &id).await?.to_json(Utc::now());
    Ok(Json(match execution.get("outputs") {
        Some(outputs @ Value::Object(_)) => outputs.clone(),
        _ => json!({}),
    }))
}

/// `GET /outputs/tasks/{id}`: the task runs that have outputs, in the order
/// they were created.
pub async fn tasks(
    State(executions): State<Executions>,
    Params(id): Params<String>,
) -> ApiResult<Json<Value>> {
    let execution = record(&executions, &id).await?.to_json(Utc::now());
    let listed = task_runs(&execution)
        .filter(|run| {
            run.get("outputs")
                .and_then(Value::as_object)
                .is_some_and(|o| !o.is_empty())
        })
        .map(|run| {
            let mut info = Map::new();
            info.insert("taskId".into(), run["taskId"].clone());
            info.insert("taskRunId".into(), run["id"].clone());
            for key in ["value", "iteration"] {
                if let Some(v) = run.get(key) {
                    info.insert(key.into(), v.clone());
                }
            }
            // Outputs are kept in the execution, never in storage.
            info.insert("inline".into(), true.into());
            Value::Object(info)
        })
        .collect();
    Ok(Json(Value::Array(listed)))
}

/// `GET /outputs/tasks/{id}/{taskRunId}` (and `/outputs/{id}/{taskRunId}`):
/// one task run's outputs, `{}` when it has none.
pub async fn task_run(
    State(executions): State<Executions>,
    Params((id, task_run_id)): Params<(String, String)>,
) -> ApiResult<Json<Value>> {
    let execution = record(&executions, &id).await?.to_json(Utc::now());
    let run = task_runs(&execution)
        .find(|run| run.get("id").and_then(Value::as_str) == Some(task_run_id.as_str()))
        .ok_or_else(|| {
            ApiError::not_found(format!("execution {id} has no task run {task_run_id}"))
        })?;
    Ok(Json(match run.get("outputs") {
        Some(outputs @ Value::Object(_)) => outputs.clone(),
        _ => json!({}),
    }))
}
