//! `/flows`: create, update, get, list, delete.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use peregrine_engine::flow::{self, Flow};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Pairs, Params};
use super::filters::{self, Conditions, FlowSort, Resource};
use crate::state::AppState;

/// Parses a flow's YAML; every problem found, with where, as 422 details.
fn parse(body: &Body) -> ApiResult<Flow> {
    let source = body.text()?;
    if source.trim().is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty: send the flow's YAML (application/x-yaml)",
        ));
    }
    Flow::parse(source).map_err(|e| match e {
        flow::Error::Invalid(problems) => {
            let details = problems
                .iter()
                .map(|p| {
                    json!({"path": p.path, "line": p.line, "column": p.column, "message": p.message})
                })
                .collect();
            ApiError::unprocessable(flow::Error::Invalid(problems).to_string(), Value::Array(details))
        }
        other => ApiError::unprocessable(other.to_string(), Value::Null),
    })
}

/// Restarts the flow's realtime triggers on its new revision (or stops
/// them), off the runtime: a consumer commits before it stops.
async fn reconcile_triggers(state: &AppState, namespace: &str, id: &str) {
    let (state, namespace, id) = (state.clone(), namespace.to_owned(), id.to_owned());
    let done = tokio::task::spawn_blocking(move || {
        state.triggers().reconcile(&state, &namespace, &id);
    })
    .await;
    if let Err(e) = done {
        tracing::error!("restarting a flow's triggers: {e}");
    }
}

/// Refuses a flow whose Kafka triggers carry settings librdkafka rejects.
fn check_triggers(state: &AppState, flow: &Flow) -> ApiResult<()> {
    let problems = crate::kafka::config_problems(flow, &state.config().kafka);
    if problems.is_empty() {
        return Ok(());
    }
    let message = problems
        .iter()
        .map(|(path, why)| format!("{path}: {why}"))
        .collect::<Vec<_>>()
        .join("; ");
    let details = problems
        .iter()
        .map(|(path, why)| json!({"path": path, "message": why}))
        .collect();
    Err(ApiError::unprocessable(message, Value::Array(details)))
}

/// `POST /flows`: 409 when the flow exists.
pub async fn create(State(state): State<AppState>, body: Body) -> ApiResult<Response> {
    let flow = parse(&body)?;
    check_triggers(&state, &flow)?;
    let stored = state.flows().create(flow).await?;
    reconcile_triggers(&state, &stored.flow().namespace, &stored.flow().id).await;
    tracing::info!(
        namespace = stored.flow().namespace,
        id = stored.flow().id,
        "flow created"
    );
    Ok(Json(stored.to_json(true)).into_response())
}

/// `PUT /flows/{namespace}/{id}`: a new revision.
pub async fn update(
    State(state): State<AppState>,
    Params((namespace, id)): Params<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let flow = parse(&body)?;
    check_triggers(&state, &flow)?;
    if flow.namespace != namespace || flow.id != id {
        return Err(ApiError::unprocessable(
            format!(
                "the body is flow {}.{}, the path names {namespace}.{id}",
                flow.namespace, flow.id
            ),
            json!([{"path": "id", "message": "namespace and id cannot change on update"}]),
        ));
    }
    let stored = state.flows().update(flow).await?;
    reconcile_triggers(&state, &namespace, &id).await;
    Ok(Json(stored.to_json(true)).into_response())
}

/// `GET /flows/{namespace}/{id}`, `?source=true` for the YAML,
/// `?revision=N` for an earlier revision.
pub async fn get(
    State(state): State<AppState>,
    Params((namespace, id)): Params<(String, String)>,
    query: Pairs,
) -> ApiResult<Response> {
    let with_source = query.flag("source")?;
    let not_found = || ApiError::not_found(format!("flow {namespace}.{id} not found"));
    let current = state.flows().get(&namespace, &id).ok_or_else(not_found)?;
    let stored = match query.get("revision").filter(|r| !r.is_empty()) {
        None => current,
        Some(raw) => {
            let revision = raw
                .parse::<u32>()
                .map_err(|_| ApiError::bad_request(format!("revision `{raw}` is not a number")))?;
            state
                .flows()
                .revision(&namespace, &id, revision)
                .ok_or_else(|| {
                    ApiError::not_found(format!("flow {namespace}.{id} has no revision {revision}"))
                })?
        }
    };
    Ok(Json(stored.to_json(with_source)).into_response())
}

/// `DELETE /flows/{namespace}/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    Params((namespace, id)): Params<(String, String)>,
) -> ApiResult<StatusCode> {
    state.flows().delete(&namespace, &id).await?;
    reconcile_triggers(&state, &namespace, &id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /flows/{namespace}`: the namespace's flows.
pub async fn list(State(state): State<AppState>, Params(namespace): Params<String>) -> Json<Value> {
    Json(Value::Array(
        state
            .flows()
            .list(&namespace)
            .iter()
            .map(|f| f.to_json(false))
            .collect(),
    ))
}

/// Flows one search page may hold, at most.
const MAX_PAGE_SIZE: usize = 1000;

/// `GET /flows/search`: Kestra's `filters[...]` on `namespace`, `flowId`,
/// `labels`, `q` and `scope` (and the older `namespace=`, `labels=`, `q=`),
/// `sort=id:asc` or `namespace:desc`..., `page` and `size`: `{results,
/// total}`, the latest revision of each flow, by namespace and id unless
/// sorted otherwise.
pub async fn search(State(state): State<AppState>, query: Pairs) -> ApiResult<Json<Value>> {
    let (page, size) = filters::page(&query, MAX_PAGE_SIZE)?;
    let sorts = filters::flow_sort(&query)?;
    let conditions = Conditions::read(&query, Resource::Flow)?;
    let mut found: Vec<_> = state
        .flows()
        .all()
        .into_iter()
        .filter(|stored| {
            let flow = stored.flow();
            let labels = flow.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            conditions.flow_matches(&flow.namespace, &flow.id, labels)
        })
        .collect();
    found.sort_by(|a, b| {
        let (a, b) = (a.flow(), b.flow());
        let by = |field: FlowSort| match field {
            FlowSort::Id => a.id.cmp(&b.id),
            FlowSort::Namespace => a.namespace.cmp(&b.namespace),
        };
        sorts
            .iter()
            .map(|(field, ascending)| match ascending {
                true => by(*field),
                false => by(*field).reverse(),
            })
            .chain([by(FlowSort::Namespace), by(FlowSort::Id)])
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let total = found.len();
    let results: Vec<Value> = found
        .iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|stored| stored.to_json(false))
        .collect();
    Ok(Json(json!({ "results": results, "total": total })))
}
