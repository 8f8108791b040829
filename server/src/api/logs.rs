//! The log API (Kestra's `LogController`): an execution's lines (`minLevel`,
//! `taskRunId`, `taskId`, `attempt`), deleting them, following them as
//! Server-Sent Events until the execution ends, and searching every
//! execution's. Lines are kept for `wal.log-retention` (see
//! `peregrine_engine::logs`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::stream::{self, Stream};
use peregrine_engine::flow::Level;
use peregrine_engine::logs::{Following, LogLine, LogQuery};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::executions::parse_id;
use super::extract::{Pairs, Params};
use super::filters;
use crate::state::AppState;

/// Lines one page of a search may hold.
const MAX_PAGE_SIZE: usize = 10_000;

fn level(text: &str) -> ApiResult<Level> {
    Level::parse(&text.to_ascii_uppercase()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "`{text}` is not a level (TRACE, DEBUG, INFO, WARN, ERROR)"
        ))
    })
}

/// `minLevel`, `taskRunId`, `taskId`, `attempt`.
fn query_of(query: &Pairs) -> ApiResult<LogQuery> {
    let text = |k: &str| query.get(k).filter(|v| !v.is_empty()).map(str::to_owned);
    Ok(LogQuery {
        min_level: text("minLevel").map(|l| level(&l)).transpose()?,
        task_run_id: text("taskRunId"),
        task_id: text("taskId"),
        attempt: text("attempt")
            .map(|a| {
                a.parse::<u32>()
                    .map_err(|_| ApiError::bad_request(format!("`attempt` `{a}` is not a number")))
            })
            .transpose()?,
    })
}

fn lines_json(lines: &[Arc<LogLine>]) -> Value {
    Value::Array(lines.iter().map(|l| l.json()).collect())
}

/// `GET /logs/{executionId}`: its lines the query takes, oldest first (none
/// past the retention, or for an execution that logged nothing).
pub async fn of_execution(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let query = query_of(&query)?;
    let lines = state.logs().lines(id, &query).unwrap_or_default();
    Ok(Json(lines_json(&lines)))
}

/// `DELETE /logs/{executionId}`: deletes the lines the query takes; 204.
pub async fn delete(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    let query = query_of(&query)?;
    let logs = state.logs().clone();
    tokio::task::spawn_blocking(move || logs.delete(id, &query))
        .await
        .map_err(|e| ApiError::internal("deleting log lines", e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /logs/search`: every kept line, newest first, `{results, total,
/// type: OFFSET}`; `filters[namespace|flowId][OP]`, `filters[q][EQUALS]`
/// (in the message), `filters[startDate|endDate][OP]` (on the line's
/// timestamp), `filters[level][EQUALS]` or `minLevel` (that level and
/// above), `page`, `size`; Kestra 0.22's `namespace` (a prefix), `flowId`,
/// `q`, `startDate`, `endDate` too.
pub async fn search(State(state): State<AppState>, query: Pairs) -> ApiResult<Json<Value>> {
    let (page, size) = filters::page(&query, MAX_PAGE_SIZE)?;
    let mut min_level = query
        .get("minLevel")
        .filter(|l| !l.is_empty())
        .map(level)
        .transpose()?;
    let mut rest = Vec::new();
    for (k, v) in &query.0 {
        if k.starts_with("filters[level]") || k.starts_with("filters[minLevel]") {
            min_level = Some(level(v)?);
        } else {
            rest.push((k.clone(), v.clone()));
        }
    }
    let mut conditions = filters::Conditions::read(&Pairs(rest), filters::Resource::Log)?;
    let text = conditions.filter.query.take();
    let filter = conditions.filter;
    let nothing = conditions.nothing;
    let (found, total) = state.logs().search(
        |l| {
            !nothing
                && filter.namespace.iter().all(|c| c.holds(&l.namespace))
                && filter.flow_id.iter().all(|c| c.holds(&l.flow_id))
                && min_level.is_none_or(|min| l.level >= min)
                && text
                    .as_deref()
                    .is_none_or(|q| l.message.to_lowercase().contains(q))
                && filter.started.holds_at(l.timestamp)
                && filter.ended.holds_at(l.timestamp)
        },
        (page - 1).saturating_mul(size),
        size,
    );
    Ok(Json(json!({
        "results": lines_json(&found),
        "total": total,
        "type": "OFFSET",
    })))
}

/// `GET /logs/{executionId}/follow`: the lines kept so far, then each new
/// one (`minLevel` and above) as a `progress` event, until the execution
/// ends.
pub async fn follow(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
) -> ApiResult<Response> {
    let parsed = parse_id(&id)?;
    let min_level = query
        .get("minLevel")
        .filter(|l| !l.is_empty())
        .map(level)
        .transpose()?;
    super::follow::room_for_a_follower(&state)?;
    let record = state
        .executions()
        .get(parsed)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))?
        .record;
    // An ended execution has nothing more to follow: its lines, and the end.
    let (kept, following) = if record.is_terminal() {
        let lines = state.logs().lines(parsed, &LogQuery::default());
        (lines.unwrap_or_default(), None)
    } else {
        state
            .logs()
            .follow(parsed, record.namespace(), record.flow_id(), Utc::now())
    };
    // Subscribed, then read again: an end in between closes nothing, so
    // the stream ends here, with what was kept.
    let ended = match &following {
        None => true,
        Some(_) => state
            .executions()
            .get(parsed)
            .await?
            .is_none_or(|s| s.record.is_terminal()),
    };
    let following = if ended { None } else { following };
    let keep = move |l: &LogLine| min_level.is_none_or(|min| l.level >= min);
    let pending: Vec<Arc<LogLine>> = kept.into_iter().filter(|l| keep(l)).rev().collect();
    let follower = LogFollower {
        state: state.clone(),
        pending,
        following,
        min_level,
    };
    Ok(super::follow::stream(&state, frames(follower)))
}

/// One log follow stream; leaving it updates the followers gauge.
struct LogFollower {
    state: AppState,
    /// Lines to send before waiting for more, in reverse order.
    pending: Vec<Arc<LogLine>>,
    /// None: nothing more comes.
    following: Option<Following>,
    min_level: Option<Level>,
}

impl Drop for LogFollower {
    fn drop(&mut self) {
        self.state.metrics().follower_left();
    }
}

fn frames(follower: LogFollower) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    stream::unfold(follower, |mut f| async move {
        loop {
            if let Some(line) = f.pending.pop() {
                let frame = Event::default()
                    .id("progress")
                    .data(line.json().to_string());
                return Some((Ok(frame), f));
            }
            let following = f.following.as_ref()?;
            match following.recv_async().await {
                Ok(line) => {
                    if f.min_level.is_none_or(|min| line.level >= min) {
                        f.pending.push(line);
                    }
                }
                // The execution ended, or the follower fell behind.
                Err(_) => return None,
            }
        }
    })
}

/// `GET /logs/{executionId}/download`: its lines the query takes, as text,
/// one per line (Kestra's `timestamp LEVEL message`).
pub async fn download(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
) -> ApiResult<Response> {
    let parsed = parse_id(&id)?;
    let query = query_of(&query)?;
    let lines = state.logs().lines(parsed, &query).unwrap_or_default();
    let mut text = String::new();
    for l in &lines {
        text.push_str(&peregrine_engine::format_date(l.timestamp));
        text.push(' ');
        text.push_str(l.level.as_str());
        text.push(' ');
        text.push_str(&l.message);
        text.push('\n');
    }
    let disposition = format!("attachment; filename=\"{id}.log\"");
    Ok((
        StatusCode::OK,
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_owned(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        text,
    )
        .into_response())
}

/// `DELETE /logs/{namespace}/{flowId}`: the lines of every execution of
/// the flow; with `triggerId`, a trigger's own lines, which Peregrine does
/// not keep (nothing to delete). 204.
pub async fn delete_of_flow(
    State(state): State<AppState>,
    Params((namespace, flow_id)): Params<(String, String)>,
    query: Pairs,
) -> ApiResult<StatusCode> {
    if query.get("triggerId").is_some_and(|t| !t.is_empty()) {
        return Ok(StatusCode::NO_CONTENT);
    }
    let logs = state.logs().clone();
    tokio::task::spawn_blocking(move || {
        logs.purge(|l| *l.namespace == *namespace && *l.flow_id == *flow_id)
    })
    .await
    .map_err(|e| ApiError::internal("deleting a flow's log lines", e))?;
    Ok(StatusCode::NO_CONTENT)
}
