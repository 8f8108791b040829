//! Kestra's routes that Peregrine does not serve yet: each answers 501 Not
//! Implemented, naming the feature and Kestra's route, instead of a 404 or
//! a match on a served route of the same shape.
//!
//! The list is the flows, executions, namespaces and namespace-files calls
//! of Kestra OSS as kestrapy 2.0.3 makes them (its logs, KV and triggers
//! calls are all served now), and
//! their Kestra 0.2x spellings (`/executions/{executionId}/resume` for 2.0's
//! `.../actions/resume`...). Enterprise-only calls (users, roles, tenants,
//! secrets management, promotions, policies...) are left out.
//!
//! A static segment wins over a parameter in the router, so a route here
//! can take a path that a served route of the same shape also matches; the
//! methods that served route answers are handed on to it:
//! - on the two-segment paths under `/executions/` (`{executionId}/resume`,
//!   `resume/by-ids`...), POST is `POST /executions/{namespace}/{flowId}`
//!   when that flow exists (2.0's meaning), and 501 only otherwise;
//! - on `/flows/bulk`, `/flows/graph`, `/flows/import` and the served
//!   `/flows/validate`, which Kestra has for POST only, GET still lists the
//!   namespace of that name. (`GET /flows/source` and the like are Kestra's
//!   own, as in Kestra.)

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get};
use serde_json::json;
use tower_http::classify::ServerErrorsFailureClass;

use super::error::ApiError;
use super::extract::{Pairs, Params};
use super::{executions, flows};
use crate::state::AppState;

/// (method, Kestra's path, what Peregrine does not do yet). Parameters are
/// named as Kestra names them, except where a served route has the same
/// path (`/flows/{namespace}`, `/executions/{id}`).
const ROUTES: &[(&str, &str, &str)] = &[
    // Flows
    (
        "POST",
        "/flows/{namespace}",
        "replacing a namespace's flows",
    ),
    ("POST", "/flows/bulk", "updating flows in bulk"),
    ("POST", "/flows/import", "importing flows"),
    ("GET", "/flows/export/by-query", "exporting flows"),
    ("GET", "/flows/export/by-query/csv", "exporting flows"),
    ("POST", "/flows/export/by-ids", "exporting flows"),
    ("DELETE", "/flows/delete/by-query", "deleting flows in bulk"),
    ("DELETE", "/flows/delete/by-ids", "deleting flows in bulk"),
    ("POST", "/flows/disable/by-query", "disabling flows in bulk"),
    ("POST", "/flows/disable/by-ids", "disabling flows in bulk"),
    ("POST", "/flows/enable/by-query", "enabling flows in bulk"),
    ("POST", "/flows/enable/by-ids", "enabling flows in bulk"),
    ("GET", "/flows/source", "searching flow sources"),
    ("GET", "/flows/distinct-namespaces", "listing namespaces"),
    (
        "GET",
        "/flows/deprecated",
        "listing deprecated flow properties",
    ),
    ("POST", "/flows/graph", "drawing flow graphs"),
    (
        "GET",
        "/flows/{namespace}/{id}/graph",
        "drawing flow graphs",
    ),
    (
        "GET",
        "/flows/{namespace}/{id}/dependencies",
        "listing flow dependencies",
    ),
    (
        "GET",
        "/flows/{namespace}/{id}/tasks/{taskId}",
        "reading one task of a flow",
    ),
    (
        "DELETE",
        "/flows/{namespace}/{id}/revisions",
        "deleting flow revisions",
    ),
    ("POST", "/flows/validate/task", "validating a task"),
    ("POST", "/flows/validate/trigger", "validating a trigger"),
    (
        "GET",
        "/concurrency-limit/search",
        "managing concurrency limits",
    ),
    (
        "PUT",
        "/concurrency-limit/{namespace}/{flowId}",
        "managing concurrency limits",
    ),
    // Executions, 2.0 paths (kill is served elsewhere)
    (
        "POST",
        "/executions/latest",
        "listing the latest executions",
    ),
    (
        "GET",
        "/executions/namespaces",
        "listing executable namespaces",
    ),
    (
        "GET",
        "/executions/namespaces/{namespace}/flows",
        "listing executable flows",
    ),
    (
        "GET",
        "/executions/namespaces/{namespace}/flows/{flowId}/average-duration",
        "averaging execution durations",
    ),
    (
        "GET",
        "/executions/distinct-field-values",
        "listing distinct execution field values",
    ),
    (
        "GET",
        "/executions/export/by-query/csv",
        "exporting executions",
    ),
    (
        "GET",
        "/executions/flows/{namespace}/{flowId}",
        "reading the flow of an execution",
    ),
    (
        "GET",
        "/executions/{executionId}/flow",
        "reading the flow of an execution",
    ),
    (
        "GET",
        "/executions/{executionId}/graph",
        "drawing execution graphs",
    ),
    (
        "GET",
        "/executions/{executionId}/file/preview",
        "previewing execution files",
    ),
    (
        "GET",
        "/executions/{executionId}/follow-dependencies",
        "following dependent executions",
    ),
    (
        "POST",
        "/executions/{namespace}/{id}/validate",
        "validating execution inputs",
    ),
    (
        "POST",
        "/executions/{executionId}/actions/eval",
        "evaluating expressions",
    ),
    (
        "POST",
        "/executions/{executionId}/actions/eval/{taskRunId}",
        "evaluating expressions",
    ),
    (
        "POST",
        "/executions/{executionId}/actions/pause",
        "pausing an execution",
    ),
    (
        "POST",
        "/executions/{executionId}/actions/resume/validate",
        "validating resume inputs without resuming",
    ),
    (
        "POST",
        "/executions/{executionId}/actions/resume-from-breakpoint",
        "resuming from a breakpoint",
    ),
    (
        "POST",
        "/executions/{executionId}/actions/replay-with-inputs",
        "replaying an execution",
    ),
    (
        "POST",
        "/executions/{executionId}/actions/force-run",
        "force-running an execution",
    ),
    (
        "POST",
        "/executions/{executionId}/actions/unqueue",
        "unqueueing an execution",
    ),
    (
        "POST",
        "/executions/{executionId}/actions/change-status",
        "changing an execution's state",
    ),
    (
        "POST",
        "/executions/{executionId}/actions/state",
        "changing a task run's state",
    ),
    (
        "DELETE",
        "/executions/kill/by-ids",
        "killing executions in bulk",
    ),
    (
        "DELETE",
        "/executions/kill/by-query",
        "killing executions in bulk",
    ),
    (
        "POST",
        "/executions/pause/by-ids",
        "pausing executions in bulk",
    ),
    (
        "POST",
        "/executions/pause/by-query",
        "pausing executions in bulk",
    ),
    (
        "POST",
        "/executions/resume/by-ids",
        "resuming executions in bulk",
    ),
    (
        "POST",
        "/executions/resume/by-query",
        "resuming executions in bulk",
    ),
    (
        "POST",
        "/executions/restart/by-query",
        "restarting executions in bulk",
    ),
    (
        "POST",
        "/executions/replay/by-ids",
        "replaying executions in bulk",
    ),
    (
        "POST",
        "/executions/replay/by-query",
        "replaying executions in bulk",
    ),
    (
        "POST",
        "/executions/force-run/by-ids",
        "force-running executions in bulk",
    ),
    (
        "POST",
        "/executions/force-run/by-query",
        "force-running executions in bulk",
    ),
    (
        "POST",
        "/executions/unqueue/by-ids",
        "unqueueing executions in bulk",
    ),
    (
        "POST",
        "/executions/unqueue/by-query",
        "unqueueing executions in bulk",
    ),
    (
        "POST",
        "/executions/change-status/by-ids",
        "changing executions' state in bulk",
    ),
    (
        "POST",
        "/executions/change-status/by-query",
        "changing executions' state in bulk",
    ),
    // Executions, Kestra 0.2x paths
    (
        "POST",
        "/executions/{executionId}/pause",
        "pausing an execution",
    ),
    (
        "POST",
        "/executions/{executionId}/resume/validate",
        "validating resume inputs without resuming",
    ),
    (
        "POST",
        "/executions/{executionId}/force-run",
        "force-running an execution",
    ),
    (
        "POST",
        "/executions/{executionId}/unqueue",
        "unqueueing an execution",
    ),
    (
        "POST",
        "/executions/{executionId}/change-status",
        "changing an execution's state",
    ),
    (
        "POST",
        "/executions/{executionId}/state",
        "changing a task run's state",
    ),
    (
        "POST",
        "/executions/{executionId}/eval/{taskRunId}",
        "evaluating expressions",
    ),
    // Namespaces
    ("GET", "/namespaces/search", "searching namespaces"),
    ("POST", "/namespaces/autocomplete", "listing namespaces"),
    ("GET", "/namespaces/{namespace}", "reading a namespace"),
    (
        "GET",
        "/namespaces/{namespace}/dependencies",
        "listing flow dependencies",
    ),
    // Namespace files (the others are served, `namespace_files.rs`)
    (
        "POST",
        "/namespaces/{namespace}/files/directory",
        "empty namespace folders",
    ),
    (
        "GET",
        "/namespaces/{namespace}/files/revisions",
        "namespace file revisions",
    ),
    (
        "GET",
        "/namespaces/{namespace}/files/export",
        "exporting namespace files as a zip",
    ),
];

/// `/flows/{name}` paths the API serves for POST only, where GET must still
/// list namespace `name`.
const SERVED_FLOWS_STATICS: &[&str] = &["validate"];

/// Every route of [`ROUTES`], for the API router to merge.
pub fn routes() -> Router<AppState> {
    let mut by_path: BTreeMap<&'static str, Vec<(Method, &'static str)>> = BTreeMap::new();
    for &(method, path, what) in ROUTES {
        let method = Method::from_bytes(method.as_bytes()).expect("a method name");
        by_path.entry(path).or_default().push((method, what));
    }
    let mut router = Router::new();
    for (path, methods) in by_path {
        let pair = is_execution_pair(path);
        let mut route = MethodRouter::new();
        let mut post = None;
        for (method, what) in &methods {
            if pair && method == Method::POST {
                post = Some(*what);
                continue;
            }
            let filter = MethodFilter::try_from(method.clone()).expect("a routable method");
            let (method, what) = (method.clone(), *what);
            route = route.on(filter, move || async move {
                not_implemented(&method, path, what)
            });
        }
        if pair {
            route = route.post(
                move |state: State<AppState>,
                      params: Params<Vec<String>>,
                      query: Pairs,
                      request: Request| {
                    post_pair(state, params, query, request, path, post)
                },
            );
        }
        if let Some(name) = flows_static(path)
            && !methods.iter().any(|(m, _)| m == Method::GET)
        {
            route = route.get(move |state: State<AppState>| list_namespace(state, name));
        }
        router = router.route(path, route);
    }
    for &name in SERVED_FLOWS_STATICS {
        let path = format!("/flows/{name}");
        router = router.route(
            &path,
            get(move |state: State<AppState>| list_namespace(state, name)),
        );
    }
    router
}

/// The 501 answer: `{"message", "details": {"route"}}`.
fn not_implemented(method: &Method, path: &str, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!("{what} is not supported yet (Kestra's {method} {path})"),
    )
    .with_details(json!({"route": format!("{method} {path}")}))
}

/// The trace layer's failure log: a 501 is an answer, not a server fault,
/// so it is logged at debug level; every other 5xx stays an error.
pub fn log_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    let latency = format!("{} ms", latency.as_millis());
    match class {
        ServerErrorsFailureClass::StatusCode(StatusCode::NOT_IMPLEMENTED) => {
            tracing::debug!(%latency, "answered 501: not supported yet");
        }
        class => tracing::error!(classification = %class, %latency, "response failed"),
    }
}

/// Whether `path` has the shape of `POST /executions/{namespace}/{flowId}`.
fn is_execution_pair(path: &str) -> bool {
    path.strip_prefix("/executions/")
        .is_some_and(|rest| rest.split('/').count() == 2)
}

/// `name` of a `/flows/{name}` path whose name is static.
fn flows_static(path: &'static str) -> Option<&'static str> {
    path.strip_prefix("/flows/")
        .filter(|name| !name.contains('/') && !name.starts_with('{'))
}

/// POST on a two-segment `/executions/` path: the flow it names is
/// triggered when it exists, or when Kestra has no POST there; else 501.
async fn post_pair(
    State(state): State<AppState>,
    Params(values): Params<Vec<String>>,
    query: Pairs,
    request: Request,
    path: &'static str,
    unsupported: Option<&'static str>,
) -> Response {
    let mut values = values.into_iter();
    let mut segments = path.trim_start_matches("/executions/").split('/').map(|s| {
        if s.starts_with('{') {
            values.next().unwrap_or_default()
        } else {
            s.to_owned()
        }
    });
    let namespace = segments.next().unwrap_or_default();
    let flow_id = segments.next().unwrap_or_default();
    if let Some(what) = unsupported
        && state.flows().get(&namespace, &flow_id).is_none()
    {
        return not_implemented(&Method::POST, path, what).into_response();
    }
    executions::trigger(State(state), Params((namespace, flow_id)), query, request)
        .await
        .into_response()
}

async fn list_namespace(state: State<AppState>, name: &'static str) -> Response {
    flows::list(state, Params(name.to_owned()))
        .await
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shapes_that_share_a_served_route_are_recognised() {
        assert!(is_execution_pair("/executions/{executionId}/resume"));
        assert!(is_execution_pair("/executions/resume/by-ids"));
        assert!(!is_execution_pair(
            "/executions/{executionId}/actions/resume"
        ));
        assert!(!is_execution_pair("/executions/latest"));
        assert_eq!(flows_static("/flows/import"), Some("import"));
        assert_eq!(flows_static("/flows/{namespace}"), None);
        assert_eq!(flows_static("/flows/export/by-ids"), None);
    }

    #[test]
    fn no_route_is_listed_twice() {
        let mut seen = std::collections::HashSet::new();
        for (method, path, _) in ROUTES {
            assert!(seen.insert((method, path)), "{method} {path}");
        }
    }
}
