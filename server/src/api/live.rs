//! `GET /api/peregrine/executions/follow`: every execution's changes, in
//! brief, as Server-Sent Events, for a list that shows many executions at
//! once (Kestra's API follows one execution at a time). The query takes
//! the executions search's filters (`namespace=`, `flowId=`, `state=`,
//! `labels=`, `filters[...]`...).
//!
//! Changes are gathered for [`WINDOW`] and sent as one `changes` event, a
//! JSON array holding each execution's latest brief, so a page watching a
//! thousand running executions gets a few frames a second, not thousands.
//! A watcher that falls behind the hub's ring is not cut off: it gets a
//! `missed` event with the count skipped, and a list reads its page again.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::response::sse::Event;
use chrono::Utc;
use futures_util::stream::{self, Stream};
use peregrine_engine::{ExecutionId, Filter};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, timeout};

use super::error::{ApiError, ApiResult};
use super::extract::Pairs;
use super::filters::{Conditions, Resource};
use super::follow::{room_for_a_follower, stream};
use crate::hub::{BriefChange, Watch};
use crate::state::AppState;

/// How long changes are gathered into one event.
const WINDOW: Duration = Duration::from_millis(200);
/// The most executions one event carries; more go in the next.
const MAX_PER_EVENT: usize = 1_000;
/// How often a quiet stream looks whether the server is shutting down.
const QUIET_CHECK: Duration = Duration::from_secs(1);

pub async fn follow(State(state): State<AppState>, query: Pairs) -> ApiResult<Response> {
    let conditions = Conditions::read(&query, Resource::Execution)?;
    let filter = (!conditions.nothing).then(|| conditions.into_filter(false));
    room_for_a_follower(&state)?;
    let watch = state
        .hub()
        .watch()
        .map_err(|closed| ApiError::unavailable(closed.to_string()))?;
    let watcher = Watcher {
        state: state.clone(),
        watch,
        filter,
    };
    Ok(stream(&state, events(watcher)))
}

struct Watcher {
    state: AppState,
    watch: Watch,
    /// `None`: the filters match nothing.
    filter: Option<Filter>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.state.metrics().follower_left();
    }
}

/// What one window gathered.
#[derive(Default)]
struct Gathered {
    /// The latest change of each execution, in the order first seen.
    latest: Vec<BriefChange>,
    at: HashMap<ExecutionId, usize>,
    missed: u64,
}

impl Gathered {
    fn add(&mut self, change: BriefChange) {
        let id = change.brief().id();
        match self.at.get(&id) {
            Some(&i) => self.latest[i] = change,
            None => {
                self.at.insert(id, self.latest.len());
                self.latest.push(change);
            }
        }
    }

    fn is_full(&self) -> bool {
        self.latest.len() >= MAX_PER_EVENT
    }
}

enum Next {
    Change(BriefChange),
    Missed(u64),
    Quiet,
    Closed,
}

async fn next(watch: &mut Watch, wait: Duration) -> Next {
    match timeout(wait, watch.recv()).await {
        Ok(Ok(change)) => Next::Change(change),
        Ok(Err(RecvError::Lagged(n))) => Next::Missed(n),
        Ok(Err(RecvError::Closed)) => Next::Closed,
        Err(_) => Next::Quiet,
    }
}

fn events(watcher: Watcher) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    stream::unfold(Some(watcher), |watcher| async move {
        let mut w = watcher?;
        loop {
            let mut gathered = Gathered::default();
            // The window opens with the first change.
            match next(&mut w.watch, QUIET_CHECK).await {
                Next::Change(change) => gathered.add(change),
                Next::Missed(n) => gathered.missed += n,
                Next::Quiet if !w.state.hub().is_closed() => continue,
                Next::Quiet | Next::Closed => return None,
            }
            let end = Instant::now() + WINDOW;
            while !gathered.is_full() {
                match next(&mut w.watch, end.saturating_duration_since(Instant::now())).await {
                    Next::Change(change) => gathered.add(change),
                    Next::Missed(n) => gathered.missed += n,
                    Next::Quiet | Next::Closed => break,
                }
            }
            match frame(&w, gathered).await {
                Ok(Some(event)) => return Some((Ok(event), Some(w))),
                Ok(None) => continue,
                Err(()) => return None,
            }
        }
    })
}

/// The event for what a window gathered; `None` when none of it matches.
/// Commit before externalize: each change's receipt is waited on first.
async fn frame(w: &Watcher, gathered: Gathered) -> Result<Option<Event>, ()> {
    if gathered.missed > 0 {
        return Ok(Some(
            Event::default()
                .event("missed")
                .data(gathered.missed.to_string()),
        ));
    }
    let Some(filter) = &w.filter else {
        return Ok(None);
    };
    let mut matching = Vec::new();
    for change in &gathered.latest {
        if !filter.matches_brief(change.brief()) {
            continue;
        }
        if let Err(e) = change.receipt().durable().await {
            tracing::error!("a watched change is not durable: {e}");
            return Err(());
        }
        matching.push(change);
    }
    if matching.is_empty() {
        return Ok(None);
    }
    let now = Utc::now();
    let briefs: Vec<_> = matching.iter().map(|c| c.brief().json(now)).collect();
    let data = serde_json::to_string(&briefs).map_err(|e| {
        tracing::error!("a brief does not serialize: {e}");
    })?;
    Ok(Some(Event::default().event("changes").data(data)))
}
