//! `GET /executions/{id}/follow`: Server-Sent Events, as Kestra sends them.
//! Each change is a frame `id: progress` with the execution JSON; the last
//! frame is `id: end`. Every follower of an execution reads the same shared
//! fan-out ([`crate::hub`]); a follower that falls behind is cut off.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use futures_util::stream::{self, Stream};
use peregrine_engine::ExecutionId;
use tokio::sync::broadcast::error::RecvError;

use super::error::{ApiError, ApiResult};
use super::executions::parse_id;
use super::extract::Params;
use crate::hub::Subscription;
use crate::state::AppState;

/// `GET /executions/{a}/{b}`: only `/executions/{id}/follow` exists.
pub async fn get_pair(
    State(state): State<AppState>,
    Params((a, b)): Params<(String, String)>,
) -> ApiResult<Response> {
    if b != "follow" {
        return Err(ApiError::not_found(format!(
            "no route for GET /executions/{a}/{b}"
        )));
    }
    follow(&state, &a).await
}

/// 503 once `server.max-followers` streams are open (execution and log
/// follows together).
pub(super) fn room_for_a_follower(state: &AppState) -> ApiResult<()> {
    if state.metrics().followers() >= state.config().server.max_followers.get() as i64 {
        return Err(ApiError::unavailable("too many follow streams open"));
    }
    Ok(())
}

/// A follow stream of `events`, with the server's keep-alive; counted in
/// the followers gauge from here (its state's drop counts it out).
pub(super) fn stream(
    state: &AppState,
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    state.metrics().follower_joined();
    let keep_alive = KeepAlive::new().interval(
        state
            .config()
            .server
            .sse_keep_alive
            .0
            .max(Duration::from_secs(1)),
    );
    Sse::new(events).keep_alive(keep_alive).into_response()
}

async fn follow(state: &AppState, id: &str) -> ApiResult<Response> {
    let parsed: ExecutionId = parse_id(id)?;
    room_for_a_follower(state)?;
    // Subscribe, then read the snapshot: a change in between is seen twice
    // at worst, never missed.
    let subscription = state
        .hub()
        .subscribe(parsed, true)
        .map_err(|closed| ApiError::unavailable(closed.to_string()))?;
    let record = state
        .executions()
        .get(parsed)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))?
        .record;
    let first = Bytes::from(record.to_json_bytes(Utc::now()));
    let follower = Follower {
        state: state.clone(),
        subscription,
        pending: vec![first.clone()],
        ended: false,
    };
    let follower = if record.is_terminal() {
        follower.finish_with(first)
    } else {
        follower
    };
    Ok(stream(state, frames(follower)))
}

/// One follow stream's state; leaving it updates the followers gauge.
struct Follower {
    state: AppState,
    subscription: Subscription,
    /// Frames to send before reading the hub again, in reverse order.
    pending: Vec<Bytes>,
    /// The `end` frame is queued: nothing follows it.
    ended: bool,
}

impl Follower {
    /// Queues the last `progress` and the `end` frame.
    fn finish_with(mut self, json: Bytes) -> Self {
        self.pending.clear();
        self.pending.push(json.clone());
        self.pending.push(json);
        self.ended = true;
        self
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.state.metrics().follower_left();
    }
}

fn event(id: &str, json: &Bytes) -> Event {
    Event::default().id(id).data(String::from_utf8_lossy(json))
}

fn frames(follower: Follower) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    stream::unfold(Some(follower), |follower| async move {
        let mut f = follower?;
        loop {
            if let Some(json) = f.pending.pop() {
                let last = f.ended && f.pending.is_empty();
                let frame = event(if last { "end" } else { "progress" }, &json);
                return Some((Ok(frame), (!last).then_some(f)));
            }
            if f.ended {
                return None;
            }
            match f.subscription.recv().await {
                Ok(update) => {
                    // Commit before externalize; a change that could not be
                    // made durable ends the stream (the server logs it).
                    if let Err(e) = update.receipt().durable().await {
                        tracing::error!("a followed change is not durable: {e}");
                        return None;
                    }
                    if update.is_terminal() {
                        f = f.finish_with(update.json());
                    } else {
                        f.pending.push(update.json());
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "a follower fell behind; dropping it");
                    f.state.metrics().follower_dropped();
                    return None;
                }
                // Shutting down.
                Err(RecvError::Closed) => return None,
            }
        }
    })
}
