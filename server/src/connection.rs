//! One accepted connection, served as HTTP/1.1 within the `server.*`
//! limits: how long a client may take over a request's head
//! (`header-timeout`) and its body (`body-timeout`), how large the head may
//! be (`max-header-size`), and how long a keep-alive connection may wait
//! for its next request (`idle-timeout`).
//!
//! hyper enforces the head's size (431). The timeouts are ours: hyper's
//! `header_read_timeout` also runs while a keep-alive connection waits for
//! its next request, which would make the idle timeout the header timeout,
//! and hyper has no body timeout. A connection that misses its head or idle
//! deadline is closed without an answer, which frees its slot; a body that
//! misses its deadline gets 408.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::api::ApiError;
use crate::config::{ServerConfig, TimeSpan};
use crate::listener::Connection;

/// The limits every connection is served with.
#[derive(Debug, Clone)]
pub struct Limits {
    header_timeout: Duration,
    max_header_size: usize,
    body_timeout: Duration,
    idle_timeout: Duration,
}

impl Limits {
    pub fn of(config: &ServerConfig) -> Self {
        // `Config::check` keeps these within an hour; the cap only keeps
        // `Instant + timeout` from overflowing on a config never checked.
        let capped = |span: TimeSpan| span.0.min(Duration::from_secs(365 * 86_400));
        Self {
            header_timeout: capped(config.header_timeout),
            max_header_size: usize::try_from(config.max_header_size.0).unwrap_or(usize::MAX),
            body_timeout: capped(config.body_timeout),
            idle_timeout: capped(config.idle_timeout),
        }
    }
}

/// Serves `connection` until the client closes it, a deadline closes it,
/// or `closing` turns true: then the request in flight, if any, is
/// finished and the connection closed.
pub async fn serve(
    connection: Connection,
    app: Router,
    limits: Limits,
    mut closing: watch::Receiver<bool>,
) {
    let cycle = Arc::new(Mutex::new(Cycle::accepted(Instant::now())));
    let io = TokioIo::new(Deadlines::new(connection, Arc::clone(&cycle), &limits));
    let exchange = Exchange {
        app,
        cycle,
        body_timeout: limits.body_timeout,
    };
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        // Off: `Deadlines` keeps the head and idle deadlines (see the top).
        // hyper's default would need a timer anyway.
        .header_read_timeout(None)
        .max_header_size(limits.max_header_size);
    let connection = builder.serve_connection(io, exchange);
    let mut connection = std::pin::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = async {
            // A dropped sender means the server is going away as well.
            let _ = closing.wait_for(|closing| *closing).await;
        } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        tracing::debug!("connection ended: {e}");
    }
}

/// Where a connection stands between its requests, which decides the
/// deadline its reads and writes are held to.
#[derive(Debug)]
struct Cycle {
    /// Requests handed to the app whose answer is not yet sent: while one
    /// is, only its body has a deadline (answers such as follow streams
    /// may rightly take hours).
    in_flight: usize,
    /// With none in flight, whether bytes of the next head have arrived
    /// (or the connection is new): the header deadline runs, not the idle
    /// one.
    in_head: bool,
    /// When the current wait, idle or head, began.
    since: Instant,
    /// The connection's task, as last seen waiting on the socket. The
    /// answer's end is a change of deadline that no socket event reports:
    /// the task is woken to arm it.
    waker: Option<Waker>,
}

impl Cycle {
    fn accepted(now: Instant) -> Self {
        // A new connection owes its first head from the start: the idle
        // timeout is for connections that have answered something.
        Self {
            in_flight: 0,
            in_head: true,
            since: now,
            waker: None,
        }
    }

    fn deadline(&self, limits: &IoLimits) -> Option<(Instant, &'static str)> {
        match (self.in_flight, self.in_head) {
            (0, true) => Some((self.since + limits.header_timeout, "header-timeout")),
            (0, false) => Some((self.since + limits.idle_timeout, "idle-timeout")),
            _ => None,
        }
    }

    fn read_some(&mut self) {
        // Bytes read while a request is in flight are its body (or, from a
        // client that pipelines, the next head, which then waits out the
        // idle deadline instead of the header one).
        if self.in_flight == 0 && !self.in_head {
            self.in_head = true;
            self.since = Instant::now();
        }
    }
}

fn lock(cycle: &Mutex<Cycle>) -> std::sync::MutexGuard<'_, Cycle> {
    // The state stays consistent whatever panicked while holding it: every
    // change is a single assignment.
    cycle
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One request in flight, from its head until its answer is sent or
/// dropped; then the connection is idle.
#[derive(Debug)]
struct InFlight(Arc<Mutex<Cycle>>);

impl InFlight {
    fn begin(cycle: &Arc<Mutex<Cycle>>) -> Self {
        lock(cycle).in_flight += 1;
        Self(Arc::clone(cycle))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let waker = {
            let mut cycle = lock(&self.0);
            cycle.in_flight = cycle.in_flight.saturating_sub(1);
            if cycle.in_flight > 0 {
                return;
            }
            cycle.in_head = false;
            cycle.since = Instant::now();
            cycle.waker.take()
        };
        // Without this, a task that last waited on the socket while the
        // request was in flight (no deadline) would wait past the idle one.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct IoLimits {
    header_timeout: Duration,
    idle_timeout: Duration,
}

/// The socket, failing a read or write that waits past the connection's
/// deadline with `TimedOut`, which makes hyper drop the connection.
#[derive(Debug)]
struct Deadlines {
    stream: Connection,
    cycle: Arc<Mutex<Cycle>>,
    limits: IoLimits,
    timer: Pin<Box<Sleep>>,
    /// The deadline `timer` is set to.
    armed: Option<Instant>,
}

impl Deadlines {
    fn new(stream: Connection, cycle: Arc<Mutex<Cycle>>, limits: &Limits) -> Self {
        let limits = IoLimits {
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
        };
        let now = Instant::now();
        Self {
            stream,
            cycle,
            limits,
            timer: Box::pin(tokio::time::sleep_until(now)),
            armed: None,
        }
    }

    /// After the socket said "not yet": whether the deadline has passed;
    /// if not, the task is woken when it does.
    fn expired(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let deadline = {
            let mut cycle = lock(&self.cycle);
            if !cycle
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                cycle.waker = Some(cx.waker().clone());
            }
            cycle.deadline(&self.limits)
        };
        let Some((deadline, limit)) = deadline else {
            return Ok(());
        };
        if self.armed != Some(deadline) {
            self.timer.as_mut().reset(deadline);
            self.armed = Some(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::debug!("closing a connection past server.{limit}");
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("past server.{limit}"),
                ))
            }
            Poll::Pending => Ok(()),
        }
    }

    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.expired(cx) {
            Ok(()) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncRead for Deadlines {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Pending => this.pending(cx),
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    lock(&this.cycle).read_some();
                }
                Poll::Ready(Ok(()))
            }
            ready => ready,
        }
    }
}

impl AsyncWrite for Deadlines {
    // A client that does not read its answer is held to the same
    // deadlines: once the answer has left the app, the connection counts
    // as idle.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Pending => this.pending(cx),
            ready => ready,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.pending(cx),
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Pending => this.pending(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_shutdown(cx) {
            Poll::Pending => this.pending(cx),
            ready => ready,
        }
    }
}

/// The app behind one connection: each request counted in flight until
/// its answer is sent, its body held to `body-timeout`.
#[derive(Debug, Clone)]
struct Exchange {
    app: Router,
    cycle: Arc<Mutex<Cycle>>,
    body_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for Exchange {
    type Response = Response<Answer>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::begin(&self.cycle);
        let stalled = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + self.body_timeout;
        let request = request.map(|body| TimedBody {
            body,
            deadline,
            timer: None,
            stalled: Arc::clone(&stalled),
        });
        let app = self.app.clone();
        let body_timeout = self.body_timeout;
        Box::pin(async move {
            let response = match app.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            // Whatever the handler made of a body cut short, the client
            // is told that it was too slow.
            let response = if stalled.load(Ordering::Relaxed) {
                body_timed_out(body_timeout)
            } else {
                response
            };
            Ok(response.map(|body| Answer {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// 408, and the connection closed: the rest of the body may still come.
fn body_timed_out(limit: Duration) -> Response<Body> {
    tracing::debug!("a request body stalled past server.body-timeout; 408");
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request body did not arrive within {} (server.body-timeout)",
            TimeSpan(limit)
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The request body cut off at its deadline.
#[derive(Debug)]
struct TimedBody {
    body: Incoming,
    deadline: Instant,
    /// Made on the first wait: most bodies are in by the time they are read.
    timer: Option<Pin<Box<Sleep>>>,
    stalled: Arc<AtomicBool>,
}

/// What a handler reading a stalled body sees.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within server.body-timeout")]
struct BodyTimedOut;

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.stalled.store(true, Ordering::Relaxed);
                        Poll::Ready(Some(Err(BodyTimedOut.into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The answer's body; when hyper is done with it (sent or dropped) the
/// request is no longer in flight.
#[derive(Debug)]
struct Answer {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_deadline_follows_the_request_cycle() {
        let limits = IoLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        };
        let accepted = Instant::now();
        let cycle = Arc::new(Mutex::new(Cycle::accepted(accepted)));
        let deadline = || lock(&cycle).deadline(&limits);
        let head = Some((accepted + limits.header_timeout, "header-timeout"));
        assert_eq!(deadline(), head);
        lock(&cycle).read_some();
        assert_eq!(deadline(), head, "the first head's bytes do not restart it");

        let count = Arc::new(Count(AtomicUsize::new(0)));
        lock(&cycle).waker = Some(Waker::from(Arc::clone(&count)));
        let in_flight = InFlight::begin(&cycle);
        lock(&cycle).read_some();
        assert_eq!(deadline(), None, "a request in flight, reading its body");

        drop(in_flight);
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            1,
            "the task is woken to arm the idle deadline"
        );
        let (idle, limit) = deadline().expect("idle");
        assert_eq!(limit, "idle-timeout");
        assert!(idle >= accepted + limits.idle_timeout);

        lock(&cycle).read_some();
        let (head, limit) = deadline().expect("the next head");
        assert_eq!(limit, "header-timeout");
        assert!(
            head < idle,
            "the next head's deadline runs from its first byte"
        );
    }
}
