//! What the tests of the binary share: the fields of a run, and what makes
//! a run whole.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const RUN_FIELDS: [&str; 11] = [
    "rate",
    "executions",
    "completed",
    "failed",
    "last_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "achieved_rate",
];

/// Every documented field is there, and the run is whole and plausible.
pub fn assert_complete_run(run: &Value, rate: f64, executions: u64) {
    for field in RUN_FIELDS {
        assert!(run.get(field).is_some(), "no `{field}` in {run}");
    }
    assert_eq!(run["rate"].as_f64(), Some(rate));
    assert_eq!(run["executions"].as_u64(), Some(executions));
    assert_eq!(run["completed"].as_u64(), Some(executions), "{run}");
    assert_eq!(run["failed"].as_u64(), Some(0), "{run}");
    assert_eq!(run["retried"].as_u64(), Some(0), "{run}");
    let ms = |field: &str| {
        run[field]
            .as_f64()
            .unwrap_or_else(|| panic!("`{field}` is a number: {run}"))
    };
    assert!(ms("last_ms") > 0.0 && ms("last_ms") < 30_000.0, "{run}");
    assert!(ms("p50_ms") > 0.0);
    assert!(ms("p50_ms") <= ms("p90_ms"));
    assert!(ms("p90_ms") <= ms("p99_ms"));
    assert!(ms("p99_ms") <= ms("p999_ms"));
    assert!(ms("p999_ms") <= ms("max_ms"));
    assert!(ms("last_ms") <= ms("max_ms") * 1.01);
    let achieved = ms("achieved_rate");
    assert!(
        achieved > 0.0 && achieved <= rate * 1.5,
        "achieved {achieved} at {rate}/s"
    );
}

/// A loadtest run of these tests (in kafka mode: two rates of a few
/// seconds, each with a fresh topic, a consumer joining its group and a
/// warm-up) ends well within this.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(240);

/// `peregrine`, built by cargo for the profile and target folder this test
/// was built for: cargo builds only the loadtest's own binaries for its
/// tests, and a binary found lying in the target folder may be stale.
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/<profile>/deps/<test>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let profile = profile_dir.file_name().unwrap().to_str().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "-p", "peregrine-server", "--bin", "peregrine"])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit());
    if profile != "debug" {
        cargo.args(["--profile", profile]);
    }
    let out = cargo.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build -p peregrine-server failed"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "peregrine")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the peregrine binary")
}

/// A running `peregrine server`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    _data: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut command = Command::new(server_binary());
        command
            .args(["server", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data.path().join("data"))
            .env("PEREGRINE_EXECUTOR_THREADS", "2")
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit());
        let (child, url) = peregrine_testkit::spawn_server(command);
        Server {
            child,
            url,
            _data: data,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the loadtest binary, killed if it outlives [`RUN_TIMEOUT`].
pub fn loadtest(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peregrine-loadtest"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the loadtest ran past {RUN_TIMEOUT:?}:\n{}",
                String::from_utf8_lossy(&err.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}
