//! The listener against clients that misbehave: sockets that send nothing
//! or half a head, heads too large, bodies that stall, keep-alive
//! connections left idle. Raw sockets on loopback against the real binary,
//! each wait bounded.

mod common;

use common::{Server, id_of};

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SLEEPY: &str = r#"
id: sleepy
namespace: conn
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
"#;

async fn connect(server: &Server) -> TcpStream {
    let addr = server.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connects")
}

/// How a connection ended, as its client saw it.
#[derive(Debug, PartialEq)]
enum End {
    /// The server closed it cleanly (a read returned 0).
    Closed,
    /// The server reset it.
    Reset,
    /// Still open when the wait was over.
    Open,
}

/// Everything the server sends until it closes the connection or `within`
/// passes.
async fn read_to_end(stream: &mut (impl AsyncRead + Unpin), within: Duration) -> (Vec<u8>, End) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (got, End::Open),
            Ok(Ok(0)) => return (got, End::Closed),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (got, End::Reset);
            }
            Ok(Err(e)) => panic!("read fails: {e}"),
        }
    }
}

/// One whole response (its head and a `content-length` body) read off a
/// connection that stays open: its status and its text.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .expect("a content-length");
            if got.len() >= end + 4 + length {
                return (status_of(&got), text);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("the response arrives")
            .expect("reads");
        assert!(n > 0, "closed mid-response: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

fn status_of(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 response: {text:?}"))
}

async fn health_within(server: &Server, within: Duration) -> StatusCode {
    tokio::time::timeout(
        within,
        server.try_send(Method::GET, "/health", &[], Bytes::new()),
    )
    .await
    .unwrap_or_else(|_| panic!("/health did not answer within {within:?}"))
    .unwrap_or_else(|e| panic!("/health: {e}"))
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_nothing_or_half_a_head_are_closed_and_free_their_slots() {
    let server = Server::start(&[
        ("PEREGRINE_SERVER_MAX_CONNECTIONS", "4"),
        ("PEREGRINE_SERVER_MAX_FOLLOWERS", "4"),
        ("PEREGRINE_SERVER_HEADER_TIMEOUT", "500ms"),
    ])
    .await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(connect(&server).await);
    }
    let mut half_line = connect(&server).await;
    half_line.write_all(b"GET /hea").await.expect("writes");
    let mut half_head = connect(&server).await;
    half_head
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .await
        .expect("writes");

    // All four slots are held by sockets that send nothing; /health waits
    // in the backlog until the header timeout frees them.
    assert_eq!(
        health_within(&server, Duration::from_secs(5)).await,
        StatusCode::OK
    );
    for (i, stream) in silent
        .iter_mut()
        .chain([&mut half_line, &mut half_head])
        .enumerate()
    {
        let (sent, end) = read_to_end(stream, Duration::from_secs(5)).await;
        assert_eq!(end, End::Closed, "socket {i} is closed by the server");
        assert!(
            sent.is_empty(),
            "socket {i}: {:?}",
            String::from_utf8_lossy(&sent)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_trickled_byte_by_byte_is_cut_at_the_header_timeout() {
    let server = Server::start(&[("PEREGRINE_SERVER_HEADER_TIMEOUT", "1s")]).await;
    let stream = connect(&server).await;
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    // A byte every 50ms keeps every single read short of any per-read
    // timeout; only a deadline on the whole head stops it.
    let trickle = tokio::spawn(async move {
        let _ = write.write_all(b"GET /health HTTP/1.1\r\nX-Slow: ").await;
        while write.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let (_, end) = read_to_end(&mut read, Duration::from_secs(5)).await;
    trickle.abort();
    assert_ne!(end, End::Open, "the trickling head is cut");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(
        health_within(&server, Duration::from_secs(5)).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_the_limit_gets_431_and_the_server_goes_on() {
    let server = Server::start(&[]).await;

    // 100 KiB of header against the default 64 KiB.
    let big = "a".repeat(100 << 10);
    let request = format!("GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n");
    let (mut read, mut write) = connect(&server).await.into_split();
    // The server may answer and close before it has read it all, so the
    // write runs on its own and may fail.
    let writer = tokio::spawn(async move {
        let _ = write.write_all(request.as_bytes()).await;
        write
    });
    let (sent, end) = read_to_end(&mut read, Duration::from_secs(5)).await;
    assert_ne!(end, End::Open, "the connection is closed after the 431");
    assert_eq!(status_of(&sent), 431, "{}", String::from_utf8_lossy(&sent));
    drop(writer.await);

    // A head of many small fields is refused the same way.
    let mut request = String::from("GET /health HTTP/1.1\r\nHost: t\r\n");
    for i in 0..200 {
        request.push_str(&format!("X-Field-{i}: {i}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = connect(&server).await;
    stream.write_all(request.as_bytes()).await.expect("writes");
    let (sent, _) = read_to_end(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status_of(&sent), 431, "{}", String::from_utf8_lossy(&sent));

    // Just under the limit is fine.
    let fits = "a".repeat(60 << 10);
    let mut stream = connect(&server).await;
    stream
        .write_all(format!("GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {fits}\r\n\r\n").as_bytes())
        .await
        .expect("writes");
    assert_eq!(read_response(&mut stream).await.0, 200);

    assert_eq!(
        health_within(&server, Duration::from_secs(5)).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_and_its_connection_closed() {
    let server = Server::start(&[("PEREGRINE_SERVER_BODY_TIMEOUT", "1s")]).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(
            b"POST /api/v1/main/flows HTTP/1.1\r\nHost: t\r\n\
              Content-Type: application/x-yaml\r\nContent-Length: 1000\r\n\r\n\
              id: stall\n",
        )
        .await
        .expect("writes");
    let started = Instant::now();

    // Others are served while it stalls.
    assert_eq!(
        health_within(&server, Duration::from_millis(900)).await,
        StatusCode::OK
    );

    let (sent, end) = read_to_end(&mut stream, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert_eq!(end, End::Closed, "{}", String::from_utf8_lossy(&sent));
    assert_eq!(status_of(&sent), 408, "{}", String::from_utf8_lossy(&sent));
    let text = String::from_utf8_lossy(&sent).to_ascii_lowercase();
    assert!(text.contains("connection: close"), "{text}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(
        health_within(&server, Duration::from_secs(5)).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start(&[
        ("PEREGRINE_SERVER_HEADER_TIMEOUT", "500ms"),
        ("PEREGRINE_SERVER_IDLE_TIMEOUT", "2s"),
    ])
    .await;
    let mut stream = connect(&server).await;
    let request = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    stream.write_all(request).await.expect("writes");
    assert_eq!(read_response(&mut stream).await.0, 200);

    // Idle longer than the header timeout but within the idle timeout:
    // the connection is kept for the next request.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stream.write_all(request).await.expect("writes");
    assert_eq!(read_response(&mut stream).await.0, 200);

    let idle = Instant::now();
    let (sent, end) = read_to_end(&mut stream, Duration::from_secs(6)).await;
    let took = idle.elapsed();
    assert_eq!(end, End::Closed, "{}", String::from_utf8_lossy(&sent));
    assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_answer_outlives_the_idle_and_body_timeouts() {
    let server = Server::start(&[
        ("PEREGRINE_SERVER_HEADER_TIMEOUT", "500ms"),
        ("PEREGRINE_SERVER_IDLE_TIMEOUT", "1s"),
        ("PEREGRINE_SERVER_BODY_TIMEOUT", "1s"),
        ("PEREGRINE_SERVER_SSE_KEEP_ALIVE", "1s"),
    ])
    .await;
    server.create_flow(SLEEPY).await;
    let id = id_of(
        &server
            .trigger("/api/v1/main/executions/conn/sleepy", json!({}))
            .await,
    );
    let mut stream = connect(&server).await;
    stream
        .write_all(
            format!("GET /api/v1/main/executions/{id}/follow HTTP/1.1\r\nHost: t\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("writes");
    // A follow stream of a sleeping execution: nothing but keep-alive
    // comments for as long as the execution sleeps.
    let (sent, end) = read_to_end(&mut stream, Duration::from_secs(3)).await;
    assert_eq!(end, End::Open, "{}", String::from_utf8_lossy(&sent));
    assert_eq!(status_of(&sent), 200, "{}", String::from_utf8_lossy(&sent));
}
