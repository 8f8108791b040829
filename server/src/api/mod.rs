//! The HTTP API: Kestra's paths under `/api/v1/main/`, with `/api/v1/` as
//! an alias, Peregrine's own under `/api/peregrine/`, plus `/health`,
//! `/metrics` and the web UI (`/ui`, [`crate::ui`]).

mod delete;
mod error;
mod executions;
mod extract;
mod files;
mod filters;
mod flows;
mod follow;
mod kv;
mod labels;
mod live;
mod logs;
mod namespace_files;
mod outputs;
mod restart;
mod resume;
mod task_metrics;
mod triggers;
mod unsupported;

use std::any::Any;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::state::AppState;

/// The whole HTTP service.
pub fn app(state: AppState) -> Router {
    let body_limit =
        usize::try_from(state.config().server.request_body_limit.0).unwrap_or(usize::MAX);
    let upload_limit = usize::try_from(state.config().storage.max_file_size.0)
        .unwrap_or(usize::MAX)
        .saturating_mul(4)
        .saturating_add(body_limit);
    let api = Router::new()
        .route("/flows", post(flows::create))
        .route("/flows/search", get(flows::search))
        .route("/flows/validate", post(flows::validate))
        .route("/flows/{namespace}", get(flows::list))
        .route(
            "/flows/{namespace}/{id}",
            get(flows::get).put(flows::update).delete(flows::delete),
        )
        .route("/flows/{namespace}/{id}/revisions", get(flows::revisions))
        .route("/executions", get(executions::search))
        .route("/executions/search", get(executions::search))
        .route("/executions/{id}", get(executions::get).delete(delete::one))
        .route("/executions/by-ids", axum::routing::delete(delete::by_ids))
        .route(
            "/executions/by-query",
            axum::routing::delete(delete::by_query),
        )
        // One route for three shapes whose segments would clash:
        // GET {id}/follow, DELETE {id}/kill, POST {namespace}/{flowId}.
        .route(
            "/executions/{a}/{b}",
            get(follow::get_pair)
                .post(executions::trigger)
                .delete(executions::delete_pair)
                // FILE inputs are uploaded here: each up to
                // storage.max-file-size (the other inputs are held to the
                // body limit by the trigger itself).
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/executions/{id}/actions/kill",
            axum::routing::delete(executions::kill_action),
        )
        .route("/executions/{id}/actions/labels", post(labels::set))
        .route("/executions/{id}/actions/resume", post(resume::action))
        .route("/executions/{id}/resume", post(resume::resume_or_trigger))
        .route("/executions/{id}/actions/restart", post(restart::restart))
        .route("/executions/restart/by-ids", post(restart::restart_by_ids))
        .route(
            "/executions/{id}/restart",
            post(restart::restart_or_trigger),
        )
        .route("/executions/{id}/actions/replay", post(restart::replay))
        .route("/executions/{id}/replay", post(restart::replay_or_trigger))
        .route("/executions/{id}/labels", post(labels::set_or_trigger))
        .route("/executions/{id}/file", get(files::download))
        .route("/executions/{id}/file/metas", get(files::metas))
        .route("/executions/labels/by-ids", post(labels::by_ids))
        .route("/executions/labels/by-query", post(labels::by_query))
        .route(
            "/namespaces/{namespace}/files",
            get(namespace_files::get)
                .post(namespace_files::upload)
                .put(namespace_files::move_to)
                .delete(namespace_files::delete)
                // Each file up to storage.max-file-size.
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/namespaces/{namespace}/files/stats",
            get(namespace_files::stats),
        )
        .route(
            "/namespaces/{namespace}/files/directory",
            get(namespace_files::directory),
        )
        .route(
            "/namespaces/{namespace}/files/search",
            get(namespace_files::search),
        )
        .route("/kv", get(kv::search))
        .route(
            "/namespaces/{namespace}/kv",
            get(kv::list).delete(kv::delete_many),
        )
        .route(
            "/namespaces/{namespace}/kv/inheritance",
            get(kv::inheritance),
        )
        .route(
            "/namespaces/{namespace}/kv/{key}",
            get(kv::get).put(kv::put).delete(kv::delete),
        )
        .route("/logs/search", get(logs::search))
        .route(
            "/logs/{executionId}",
            get(logs::of_execution).delete(logs::delete),
        )
        .route("/logs/{executionId}/follow", get(logs::follow))
        .route("/logs/{executionId}/download", get(logs::download))
        .route(
            "/logs/{namespace}/{flowId}",
            axum::routing::delete(logs::delete_of_flow),
        )
        .route("/triggers", axum::routing::put(triggers::update))
        .route("/triggers/search", get(triggers::search))
        .route(
            "/triggers/backfill/pause",
            axum::routing::put(triggers::pause_backfill),
        )
        .route(
            "/triggers/backfill/unpause",
            axum::routing::put(triggers::unpause_backfill),
        )
        .route("/triggers/backfill/delete", post(triggers::delete_backfill))
        .route(
            "/triggers/backfill/{action}/by-triggers",
            post(triggers::backfill_by_triggers),
        )
        .route(
            "/triggers/backfill/{action}/by-query",
            post(triggers::backfill_by_query),
        )
        .route(
            "/triggers/unlock/by-triggers",
            post(triggers::unlock_by_triggers),
        )
        .route("/triggers/unlock/by-query", post(triggers::unlock_by_query))
        .route(
            "/triggers/{namespace}/{flowId}/{triggerId}/restart",
            post(triggers::restart),
        )
        .route(
            "/triggers/{namespace}/{flowId}/{triggerId}",
            axum::routing::delete(triggers::delete),
        )
        .route(
            "/triggers/delete/by-triggers",
            axum::routing::delete(triggers::delete_by_triggers),
        )
        .route(
            "/triggers/delete/by-query",
            axum::routing::delete(triggers::delete_by_query),
        )
        .route(
            "/triggers/set-disabled",
            axum::routing::put(triggers::set_disabled_one),
        )
        .route("/triggers/export/by-query/csv", get(triggers::export_csv))
        .route(
            "/triggers/backfill/create",
            axum::routing::put(triggers::create_backfill),
        )
        .route(
            "/triggers/set-disabled/by-triggers",
            post(triggers::set_disabled_by_triggers),
        )
        .route(
            "/triggers/set-disabled/by-query",
            post(triggers::set_disabled_by_query),
        )
        .route("/triggers/{namespace}/{flowId}", get(triggers::of_flow))
        .route(
            "/triggers/{namespace}/{flowId}/{triggerId}/unlock",
            post(triggers::unlock),
        )
        .route("/metrics/{id}", get(task_metrics::of_execution))
        .route(
            "/metrics/names/{namespace}/{flowId}",
            get(task_metrics::flow_names),
        )
        .route(
            "/metrics/names/{namespace}/{flowId}/{taskId}",
            get(task_metrics::task_names),
        )
        .route(
            "/metrics/tasks/{namespace}/{flowId}",
            get(task_metrics::tasks),
        )
        .route(
            "/metrics/aggregates/{namespace}/{flowId}/{metric}",
            get(task_metrics::aggregate_flow),
        )
        .route(
            "/metrics/aggregates/{namespace}/{flowId}/{taskId}/{metric}",
            get(task_metrics::aggregate_task),
        )
        .route("/outputs/executions/{id}", get(outputs::execution))
        .route("/outputs/tasks/{id}", get(outputs::tasks))
        .route("/outputs/tasks/{id}/{task_run_id}", get(outputs::task_run))
        .route("/outputs/{id}", get(outputs::execution))
        .route("/outputs/{id}/{task_run_id}", get(outputs::task_run))
        .route(
            "/executions/trigger/{namespace}/{flow_id}",
            post(executions::trigger),
        )
        .route(
            "/executions/webhook/{namespace}/{flow_id}/{key}",
            get(executions::webhook)
                .post(executions::webhook)
                .put(executions::webhook),
        )
        // Kestra's routes that are not served yet: 501.
        .merge(unsupported::routes());
    Router::new()
        .nest("/api/v1/main", api.clone())
        .nest("/api/v1", api)
        .route("/api/peregrine/executions/follow", get(live::follow))
        .merge(crate::ui::routes())
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        // A layer, not a route layer: a path or method the API does not
        // have is not told apart from one it has before authentication.
        .layer(middleware::from_fn_with_state(state.clone(), require_auth))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http().on_failure(unsupported::log_failure))
        .layer(CatchPanicLayer::custom(panicked))
        .with_state(state)
}

/// Basic auth, when configured, on every path under `/api` and `/ui`,
/// whether the server has it or not.
async fn require_auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let guarded = ["/api", "/ui"].iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    let Some(expected) = state.authorization().filter(|_| guarded) else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| basic_credentials(v.as_bytes()));
    if given.is_some_and(|token| constant_time_eq(token, expected.as_bytes())) {
        return next.run(request).await;
    }
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "authentication required").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"peregrine\""),
    );
    response
}

/// The base64 credentials of a `Basic` authorization, without padding:
/// the scheme is case-insensitive (RFC 9110) and padding optional.
fn basic_credentials(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let token = rest.trim_ascii();
    let unpadded = token.len() - token.iter().rev().take_while(|b| **b == b'=').count();
    Some(&token[..unpadded])
}

/// Compares without an early exit, so timing does not reveal the prefix
/// that matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /health`: 200 while serving, 503 once shutdown has begun.
async fn health(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        axum::Json(json!({"status": "UP"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "DOWN"})),
        )
            .into_response()
    }
}

/// `GET /metrics`: Prometheus text.
async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics().render(&state.gauges());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    ApiError::internal("a request handler panicked", what).into_response()
}
