//! Serving the API on a socket, and the graceful shutdown: stop accepting,
//! end follow streams and waits, let in-flight requests finish (up to
//! `server.shutdown-timeout`), stop the shards, then sync.
//!
//! HTTP/1.1 only, as `axum::serve` with axum's `http1` feature was before:
//! each connection is served by `connection::serve` within the limits of
//! `server.*`.

use std::future::Future;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::app;
use crate::connection::{self, Limits};
use crate::listener::Limited;
use crate::state::AppState;

/// Serves `state` on `listener` until `shutdown` resolves, then shuts down
/// gracefully.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Kafka triggers consume from here on: their consumers block, so they
    // start off the runtime.
    tokio::task::spawn_blocking({
        let state = state.clone();
        move || state.triggers().start_all(&state)
    })
    .await
    .map_err(std::io::Error::other)?;
    // Schedules and Flow triggers fire from here on, each on a thread of
    // its own.
    state.schedules().start(&state)?;
    state.flow_triggers().start(&state)?;
    // Files of executions that are gone go too.
    crate::sweep::start(&state);
    let server = &state.config().server;
    let limits = Limits::of(server);
    let router = app(state.clone());
    let mut listener = Limited::new(listener, server.max_connections.get());
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                connections.spawn(connection::serve(
                    accepted,
                    router.clone(),
                    limits.clone(),
                    closed.clone(),
                ));
            }
            // Reaps the tasks of closed connections as they end, so the set
            // holds only open ones.
            Some(ended) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = ended {
                    tracing::error!("a connection's task failed: {e}");
                }
            }
        }
    }
    tracing::info!("shutting down: no new connections; ending follow streams");
    drop(listener);
    state.begin_shutdown();
    let _ = closing.send(true);
    let grace = server.shutdown_timeout.0;
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            ?grace,
            open = connections.len(),
            "requests still open after the grace period; closing them"
        );
        connections.shutdown().await;
    }
    let stopping = state.clone();
    tokio::task::spawn_blocking(move || stopping.shutdown())
        .await
        .map_err(std::io::Error::other)??;
    tracing::info!("stopped");
    Ok(())
}
