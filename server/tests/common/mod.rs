//! Shared by the end-to-end tests: the real `peregrine server` binary on a
//! loopback port, and a small HTTP client for it.

#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A running `peregrine server`, stopped (SIGKILL) if the test fails.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub client: Client<HttpConnector, Full<Bytes>>,
    _data: Option<tempfile::TempDir>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Server {
    /// A server on a fresh data folder of its own.
    pub async fn start(env: &[(&str, &str)]) -> Server {
        let data = tempfile::tempdir().expect("temp dir");
        let dir = data.path().join("data");
        let mut server = Server::start_in(&dir, env).await;
        server._data = Some(data);
        server
    }

    /// A server on `data_dir`, which the caller keeps (restarts reuse it).
    pub async fn start_in(data_dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
        Server::start_with(data_dir, env, &[], Stdio::inherit()).await
    }

    /// A server on `data_dir` with more arguments, its stderr (the log)
    /// going to `stderr`.
    pub async fn start_with(
        data_dir: &std::path::Path,
        env: &[(&str, &str)],
        args: &[&str],
        stderr: Stdio,
    ) -> Server {
        let mut command = server_command(data_dir);
        command.args(args).stderr(stderr);
        for (k, v) in env {
            command.env(k, v);
        }
        let (child, addr) = peregrine_testkit::spawn_server(command);
        let server = Server {
            child,
            base: addr,
            client: client(),
            _data: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(reply) = tokio::time::timeout(
                Duration::from_secs(2),
                server.try_send(Method::GET, "/health", &[], Bytes::new()),
            )
            .await
                && let Ok(reply) = reply
                && reply.status == StatusCode::OK
            {
                break;
            }
            assert!(Instant::now() < deadline, "the server never became healthy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }

    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        tokio::time::timeout(
            Duration::from_secs(30),
            self.try_send(method, path, headers, body.into()),
        )
        .await
        .unwrap_or_else(|_| panic!("{path} answers in time"))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn create_flow(&self, yaml: &str) -> Reply {
        self.send(
            Method::POST,
            "/api/v1/main/flows",
            &[("content-type", "application/x-yaml")],
            yaml.to_owned(),
        )
        .await
    }

    pub async fn trigger(&self, path: &str, inputs: Value) -> Reply {
        self.send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            inputs.to_string(),
        )
        .await
    }

    pub async fn wait_for_state(&self, id: &str, wanted: &str) -> Value {
        for _ in 0..500 {
            let reply = self.get(&format!("/api/v1/main/executions/{id}")).await;
            if reply.status == StatusCode::OK && reply.json()["state"]["current"] == wanted {
                return reply.json();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("execution {id} never reached {wanted}");
    }

    /// Follows an execution to the end of the stream: its frames, as
    /// (id, JSON) pairs.
    pub async fn follow(&self, id: &str) -> Vec<(String, Value)> {
        let request = Request::builder()
            .uri(format!("{}/api/v1/main/executions/{id}/follow", self.base))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .expect("follow answers")
            .expect("follow connects");
        assert_eq!(response.status(), StatusCode::OK);
        let body = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
            .await
            .expect("the stream ends with the execution")
            .expect("the stream reads")
            .to_bytes();
        parse_sse(&String::from_utf8_lossy(&body))
    }

    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`: no chance to flush or sync anything.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `peregrine server` on `data_dir` and a free loopback port, as the tests
/// run it.
pub fn server_command(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_peregrine"));
    command
        .args(["server", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("PEREGRINE_EXECUTOR_THREADS", "2")
        .env("RUST_LOG", "warn");
    command
}

/// Runs `peregrine ARGS...` to its end (at most 30 s): its status, stdout
/// and stderr.
pub fn run_peregrine(command: &mut Command) -> (ExitStatus, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("peregrine runs");
    // Read both pipes while it runs: a full pipe would stall it.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("peregrine did not end within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        stdout.join().expect("stdout read"),
        stderr.join().expect("stderr read"),
    )
}

/// `peregrine ARGS...`.
pub fn peregrine(args: &[&std::ffi::OsStr]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_peregrine"));
    command.args(args).env("RUST_LOG", "warn");
    command
}

/// A client that closes each connection after its request, so that tests
/// count connections exactly.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

pub fn parse_sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|frame| {
            let mut id = None;
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            Some((id?, serde_json::from_str(&data).ok()?))
        })
        .collect()
}

pub fn multipart(parts: &[(&str, &str)]) -> (String, String) {
    let boundary = "e2e-boundary-7MA4YWxkTrZu0gW";
    let mut body = String::new();
    for (name, value) in parts {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub fn id_of(reply: &Reply) -> String {
    reply.json()["id"]
        .as_str()
        .expect("an execution id")
        .to_owned()
}
