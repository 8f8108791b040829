//! `/flows`: create, update, get, list, delete, revisions, validate.

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

/// Plans the flow's schedules and Flow triggers again, and restarts its
/// realtime triggers on its new revision (or stops them), off the runtime:
/// a consumer commits before it stops.
async fn reconcile_triggers(state: &AppState, namespace: &str, id: &str) {
    let (state, namespace, id) = (state.clone(), namespace.to_owned(), id.to_owned());
    state.schedules().reconcile(&namespace, &id);
    state.flow_triggers().reconcile(&state);
    let done = tokio::task::spawn_blocking(move || {
        state.triggers().reconcile(&state, &namespace, &id);
    })
    .await;
    if let Err(e) = done {
        tracing::error!("restarting a flow's triggers: {e}");
    }
}

/// Refuses a flow whose Kafka triggers carry settings librdkafka rejects,
/// or whose scripts name containers when `scripts.containers` refuses them.
fn check_triggers(state: &AppState, flow: &Flow) -> ApiResult<()> {
    let mut problems = crate::kafka::config_problems(flow, &state.config().kafka);
    problems.extend(container_problems(state, flow));
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

/// The tasks that name a container, when the server refuses them.
fn container_problems(state: &AppState, flow: &Flow) -> Vec<(String, String)> {
    if state.config().scripts.containers != crate::config::Containers::Refuse {
        return Vec::new();
    }
    flow.containers
        .iter()
        .map(|p| {
            (
                p.path.clone(),
                format!(
                    "{}; this server refuses such tasks (scripts.containers: refuse)",
                    p.message
                ),
            )
        })
        .collect()
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
            conditions.flow_matches(&flow.namespace, &flow.id, &flow.labels)
        })
        .collect();
    found.sort_by(|a, b| {
        let (a, b) = (a.flow(), b.flow());
        let by = |field: FlowSort| match field {
            FlowSort::Id => a.id.cmp(&b.id),
            FlowSort::Namespace => a.namespace.cmp(&b.namespace),
        };
        filters::orderings(&sorts, by)
            .chain([by(FlowSort::Namespace), by(FlowSort::Id)])
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(Json(filters::paged(&found, page, size, |stored| {
        stored.to_json(false)
    })))
}

/// `GET /flows/{namespace}/{id}/revisions`: every revision, oldest first,
/// each with its own source.
pub async fn revisions(
    State(state): State<AppState>,
    Params((namespace, id)): Params<(String, String)>,
) -> ApiResult<Json<Value>> {
    let revisions = state
        .flows()
        .revisions(&namespace, &id)
        .ok_or_else(|| ApiError::not_found(format!("flow {namespace}.{id} not found")))?;
    Ok(Json(Value::Array(
        revisions.iter().map(|f| f.to_json(true)).collect(),
    )))
}

/// `POST /flows/validate`: the body's YAML documents (separated by `---`
/// lines) checked as creating them would check them, nothing stored. One
/// Kestra `ValidateConstraintViolation` per document, in order (after
/// Kestra's `FlowController.validateFlows`): `constraints` is null for a
/// valid flow, else every problem on a line of its own, with its path, and
/// its line and column within that document.
pub async fn validate(State(state): State<AppState>, body: Body) -> ApiResult<Json<Value>> {
    let source = body.text()?;
    Ok(Json(Value::Array(
        documents(source)
            .into_iter()
            .enumerate()
            .map(|(index, document)| validate_document(&state, index, document))
            .collect(),
    )))
}

/// The YAML documents of a stream: the text between lines that are `---`.
/// As in Kestra, a `---` on the first line starts the first document rather
/// than ending an empty one, blank documents at the end are dropped, and an
/// empty body is one empty document (which is not a valid flow).
fn documents(source: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let end = offset + line.len();
        if line.trim_end() == "---" {
            if offset > 0 {
                documents.push(&source[start..offset]);
            }
            start = end;
        }
        offset = end;
    }
    documents.push(&source[start..]);
    while documents.len() > 1 && documents.last().is_some_and(|d| d.trim().is_empty()) {
        documents.pop();
    }
    documents
}

fn validate_document(state: &AppState, index: usize, source: &str) -> Value {
    let mut result = json!({
        "index": index,
        "constraints": null,
        "outdated": false,
        "deprecationPaths": [],
        "warnings": [],
        "infos": [],
    });
    let (id, namespace) = match Flow::parse(source) {
        Ok(flow) => {
            let mut problems = crate::kafka::config_problems(&flow, &state.config().kafka);
            problems.extend(container_problems(state, &flow));
            if !problems.is_empty() {
                let lines: Vec<_> = problems
                    .iter()
                    .map(|(path, why)| format!("{path}: {why}"))
                    .collect();
                result["constraints"] = lines.join("\n").into();
            }
            result["warnings"] = flow.warnings.iter().map(ToString::to_string).collect();
            (Some(flow.id), Some(flow.namespace))
        }
        Err(e) => {
            result["constraints"] = match &e {
                flow::Error::Invalid(problems) => problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
                other => other.to_string(),
            }
            .into();
            // Peregrine's own, beside Kestra's text: where each problem is,
            // for an editor to mark (line and column 1-based, 0 unknown).
            if let flow::Error::Invalid(problems) = &e {
                result["problems"] = problems
                    .iter()
                    .map(|p| {
                        json!({
                            "path": p.path,
                            "line": p.line,
                            "column": p.column,
                            "message": p.message,
                        })
                    })
                    .collect();
            }
            identity(source)
        }
    };
    if let Some(id) = id {
        result["flow"] = id.into();
    }
    if let Some(namespace) = namespace {
        result["namespace"] = namespace.into();
    }
    result
}

/// The `id` and `namespace` of a document that is not a valid flow, when it
/// is a mapping that has them as strings.
fn identity(source: &str) -> (Option<String>, Option<String>) {
    let options = serde_saphyr::options! { strict_booleans: true, with_snippet: false };
    let Ok(Value::Object(map)) = serde_saphyr::from_str_with_options::<Value>(source, options)
    else {
        return (None, None);
    };
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
    (text("id"), text("namespace"))
}

#[cfg(test)]
mod tests {
    use super::documents;

    #[test]
    fn documents_are_split_on_lines_that_are_three_dashes() {
        assert_eq!(documents(""), [""]);
        assert_eq!(documents("a: 1\n"), ["a: 1\n"]);
        assert_eq!(
            documents("a: 1\n---\nb: 2\n--- \r\nc: 3"),
            ["a: 1\n", "b: 2\n", "c: 3"]
        );
        assert_eq!(documents("---\na: 1\n"), ["a: 1\n"], "a leading marker");
        assert_eq!(
            documents("a: 1\n---\n \n---\n"),
            ["a: 1\n"],
            "trailing ones"
        );
        assert_eq!(documents("a: 1\n---\n---\nb: 2"), ["a: 1\n", "", "b: 2"]);
        assert_eq!(
            documents("s: |\n  ---\n  x\n---x\n"),
            ["s: |\n  ---\n  x\n---x\n"],
            "indented or followed by text, it is content"
        );
    }
}
