//! The labels of finished executions: `POST /executions/{id}/actions/labels`
//! (Kestra 2.0), `POST /executions/{id}/labels` (0.2x), and in bulk,
//! `POST /executions/labels/by-ids` and `POST /executions/labels/by-query`.
//!
//! As in Kestra: only an execution that has ended takes labels (400
//! otherwise); the labels sent are merged by key into its own; a `system.`
//! label may only be sent back as the execution has it (422). A bulk call
//! checks every execution first and changes none if one fails (400 with
//! the reasons), then answers `{"count"}`.

use axum::extract::{FromRef, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use peregrine_engine::{ExecutionId, Record, Relabelled, labels};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::executions::{self, MAX_LABELS, execution_response, parse_id};
use super::extract::{Body, Pairs, Params};
use super::filters::{Conditions, Resource};
use crate::state::{AppState, Executions};

/// Executions one bulk call may label.
pub(super) const MAX_BULK: usize = 10_000;

/// A label as Kestra's API sends it; both parts are required.
#[derive(Deserialize)]
struct Label {
    key: String,
    value: String,
}

/// `POST /executions/labels/by-ids`'s body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ByIds {
    executions_id: Vec<String>,
    execution_labels: Vec<Label>,
}

fn pairs(list: Vec<Label>) -> ApiResult<Vec<(String, String)>> {
    if list.len() > MAX_LABELS {
        return Err(ApiError::bad_request(format!(
            "{} labels; at most {MAX_LABELS}",
            list.len()
        )));
    }
    Ok(list.into_iter().map(|l| (l.key, l.value)).collect())
}

pub(super) fn read<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not {what}: {e}")))
}

fn read_labels(body: &[u8]) -> ApiResult<Vec<(String, String)>> {
    pairs(read(body, "a list of labels ({\"key\", \"value\"})")?)
}

/// `POST /executions/{id}/actions/labels`: 200 with the execution.
pub async fn set(
    State(executions): State<Executions>,
    Params(id): Params<String>,
    Body(body): Body,
) -> ApiResult<Response> {
    let labels = read_labels(&body)?;
    set_one(&executions, &id, labels).await
}

/// `POST /executions/{id}/labels`, 0.2x's path, which is also that of
/// `POST /executions/{namespace}/{flowId}`: a flow named `labels` in
/// namespace `{id}` is triggered, as Kestra's router would.
pub async fn set_or_trigger(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
    request: Request,
) -> Response {
    if state.flows().get(&id, "labels").is_some() {
        let pair = Params((id, "labels".to_owned()));
        return executions::trigger(State(state), pair, query, request)
            .await
            .into_response();
    }
    let executions = Executions::from_ref(&state);
    let set = async {
        let Body(body) = Body::from_request(request, &()).await?;
        set_one(&executions, &id, read_labels(&body)?).await
    };
    set.await.into_response()
}

async fn set_one(
    executions: &Executions,
    id: &str,
    labels: Vec<(String, String)>,
) -> ApiResult<Response> {
    match executions.set_labels(parse_id(id)?, labels).await? {
        Relabelled::Done(done) => Ok(execution_response(&done.record)),
        other => Err(refusal(id, other)),
    }
}

/// The error for an answer that set nothing.
fn refusal(id: &str, outcome: Relabelled) -> ApiError {
    match outcome {
        Relabelled::Running(state) => ApiError::bad_request(format!(
            "The execution is not terminated: execution {id} is {state}"
        )),
        Relabelled::Refused(why) => ApiError::unprocessable(why.to_string(), Value::Null),
        Relabelled::NotFound => ApiError::not_found(format!("execution {id} not found")),
        Relabelled::Done(_) | Relabelled::Stale => {
            ApiError::internal("setting labels", "an answer that set labels is no refusal")
        }
    }
}

/// `POST /executions/labels/by-ids`: `{executionsId, executionLabels}`.
pub async fn by_ids(State(executions): State<Executions>, Body(body): Body) -> ApiResult<Response> {
    let request: ByIds = read(&body, "{\"executionsId\", \"executionLabels\"}")?;
    let labels = pairs(request.execution_labels)?;
    set_many(&executions, request.executions_id, labels).await
}

/// `POST /executions/labels/by-query`: the executions a search with the
/// same filters finds (those memory keeps, as search does).
pub async fn by_query(
    State(executions): State<Executions>,
    query: Pairs,
    Body(body): Body,
) -> ApiResult<Response> {
    let labels = read_labels(&body)?;
    let conditions = Conditions::read(&query, Resource::Execution)?;
    let ids = if conditions.nothing {
        Vec::new()
    } else {
        let filter = conditions.into_filter(false);
        let (found, total) = executions.search(filter, 1, MAX_BULK).await?;
        if total > MAX_BULK {
            return Err(too_many(total));
        }
        found.iter().map(|s| s.record.id().to_string()).collect()
    };
    set_many(&executions, ids, labels).await
}

fn too_many(n: usize) -> ApiError {
    ApiError::bad_request(format!(
        "{n} executions; at most {MAX_BULK} are labelled at once"
    ))
}

/// Checks every execution, then labels them all: 200 `{"count"}`, or 400
/// with each one that cannot be labelled, and none labelled.
async fn set_many(
    executions: &Executions,
    ids: Vec<String>,
    labels: Vec<(String, String)>,
) -> ApiResult<Response> {
    if ids.len() > MAX_BULK {
        return Err(too_many(ids.len()));
    }
    let mut invalids = Vec::new();
    let mut valid: Vec<ExecutionId> = Vec::with_capacity(ids.len());
    for text in &ids {
        let found = match text.parse::<ExecutionId>() {
            Ok(id) => executions.get(id).await?.map(|s| (id, s.record)),
            Err(_) => None,
        };
        match found.map(|(id, record)| (id, why_not(&record, &labels))) {
            None => invalids.push(invalid(text, "execution not found".to_owned())),
            Some((_, Some(why))) => invalids.push(invalid(text, why)),
            Some((id, None)) => {
                if !valid.contains(&id) {
                    valid.push(id);
                }
            }
        }
    }
    if !invalids.is_empty() {
        return Err(ApiError::bad_request("invalid bulk set labels")
            .with_details(json!({ "invalids": invalids })));
    }
    let mut count = 0;
    for id in valid {
        match executions.set_labels(id, labels.clone()).await? {
            Relabelled::Done(_) => count += 1,
            // Gone since it was checked (past its retention): not counted.
            Relabelled::NotFound => {}
            other => return Err(refusal(&id.to_string(), other)),
        }
    }
    let body = json!({ "count": count });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// Why `record` cannot take `labels`, if it cannot.
fn why_not(record: &Record, given: &[(String, String)]) -> Option<String> {
    if !record.is_terminal() {
        return Some("execution is not terminated".to_owned());
    }
    let own: Vec<(String, String)> = record
        .labels()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    labels::merge(&own, given.to_vec())
        .err()
        .map(|e| e.to_string())
}

pub(super) fn invalid(id: &str, message: String) -> Value {
    json!({ "message": message, "invalidValue": id, "path": "execution" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_list_is_read_strictly() {
        assert_eq!(
            read_labels(br#"[{"key":"a","value":"1"},{"key":"b","value":""}]"#).unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "".into())]
        );
        for bad in [
            &br#"{"key":"a","value":"1"}"#[..],
            br#"[{"key":"a"}]"#,
            br#"[{"key":"a","value":1}]"#,
            b"not json",
        ] {
            assert!(
                read_labels(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let many: Vec<Value> = (0..=MAX_LABELS)
            .map(|n| json!({"key": format!("k{n}"), "value": "v"}))
            .collect();
        assert!(read_labels(&serde_json::to_vec(&many).unwrap()).is_err());
    }
}
