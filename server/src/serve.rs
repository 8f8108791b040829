//! Serving the API on a socket, and the graceful shutdown: stop accepting,
//! end follow streams and waits, let in-flight requests finish (up to
//! `server.shutdown-timeout`), stop the shards, then sync.

use std::future::{Future, IntoFuture};

use tokio::net::TcpListener;

use crate::api::app;
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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = Limited::new(listener, state.config().server.max_connections.get());
    let server = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        })
        .into_future();
    let mut server = tokio::spawn(server);
    let early = tokio::select! {
        result = &mut server => Some(result),
        () = shutdown => None,
    };
    let served = match early {
        Some(result) => result.map_err(std::io::Error::other).and_then(|r| r),
        None => {
            tracing::info!("shutting down: no new connections; ending follow streams");
            state.begin_shutdown();
            let _ = stop.send(());
            let grace = state.config().server.shutdown_timeout.0;
            match tokio::time::timeout(grace, &mut server).await {
                Ok(result) => result.map_err(std::io::Error::other).and_then(|r| r),
                Err(_) => {
                    tracing::warn!(
                        ?grace,
                        "requests still open after the grace period; closing them"
                    );
                    server.abort();
                    Ok(())
                }
            }
        }
    };
    let stopping = state.clone();
    tokio::task::spawn_blocking(move || stopping.shutdown())
        .await
        .map_err(std::io::Error::other)??;
    tracing::info!("stopped");
    served
}
