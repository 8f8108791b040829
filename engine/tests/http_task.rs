//! `io.kestra.plugin.core.http.Request` runs on the worker pool: the call
//! reaches a real socket, the shard keeps running other executions while it
//! waits, and a call lost in a restart runs again as a new attempt.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peregrine_engine::flow::Flow;
use peregrine_engine::{
    Ack, Change, Engine, EngineConfig, FlowRevision, NewExecution, Observer, run_to_end,
};
use peregrine_engine::{Execution, ExecutionId, State};

/// One request as the test server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body: String,
    header: Option<String>,
}

/// A loopback HTTP server answering `status` and `body` after `delay`.
fn serve(status: u16, body: &'static str, delay: Duration) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_owned();
                let path = parts.next().unwrap_or_default().to_owned();
                let mut length = 0;
                let mut header = None;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (name, value) = h.split_once(':').unwrap();
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                    if name.eq_ignore_ascii_case("x-peregrine") {
                        header = Some(value.trim().to_owned());
                    }
                }
                let mut buf = vec![0; length];
                reader.read_exact(&mut buf).unwrap();
                log.lock().unwrap().push(Seen {
                    method,
                    path,
                    body: String::from_utf8(buf).unwrap(),
                    header,
                });
                std::thread::sleep(delay);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn flow(uri: &str, extra: &str) -> Arc<FlowRevision> {
    let yaml = format!(
        r#"
id: call
namespace: tests
tasks:
  - id: call
    type: io.kestra.plugin.core.http.Request
    uri: "{uri}/orders/{{{{ execution.id }}}}"
    method: POST
    body: '{{"n": 1}}'
    contentType: application/json
    headers:
      x-peregrine: "{{{{ flow.id }}}}"
{extra}
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.call.code }}}} {{{{ outputs.call.body }}}}"
"#
    );
    Arc::new(FlowRevision::new(Arc::new(Flow::parse(&yaml).unwrap())))
}

#[derive(Default)]
struct Ended(Mutex<Vec<(ExecutionId, Execution, Instant)>>);

impl Observer for Ended {
    fn on_change(&self, change: &Change<'_>) {
        let execution = change.execution;
        if change.ended.is_some() {
            self.0
                .lock()
                .unwrap()
                .push((execution.id(), execution.clone(), Instant::now()));
        }
    }
}

fn wait_for(ended: &Ended, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ended.0.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "executions did not end");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_call_reaches_the_server_and_its_answer_is_the_output() {
    let (base, seen) = serve(200, "accepted", Duration::ZERO);
    let exec = run_to_end(NewExecution::new(flow(&base, ""), Default::default()));
    assert_eq!(exec.state(), State::Success, "{:?}", exec.logs().entries());
    let call = exec.task_runs_of("call").next().unwrap();
    assert_eq!(call.outputs().unwrap()["code"], 200);
    assert_eq!(call.outputs().unwrap()["body"], "accepted");
    assert_eq!(
        exec.task_runs_of("after")
            .next()
            .unwrap()
            .outputs()
            .unwrap()["value"],
        "200 accepted"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, format!("/orders/{}", exec.id()));
    assert_eq!(seen[0].body, r#"{"n": 1}"#);
    assert_eq!(seen[0].header.as_deref(), Some("call"));
}

#[test]
fn an_error_status_fails_the_task_unless_allowed() {
    let (base, _) = serve(503, "busy", Duration::ZERO);
    let exec = run_to_end(NewExecution::new(flow(&base, ""), Default::default()));
    assert_eq!(exec.state(), State::Failed);
    let message = &exec.logs().entries()[0].message;
    assert!(message.contains("503"), "{message}");

    let allowed = flow(&base, "    options:\n      allowFailed: true");
    let exec = run_to_end(NewExecution::new(allowed, Default::default()));
    assert_eq!(exec.state(), State::Success);
    assert_eq!(
        exec.task_runs_of("call").next().unwrap().outputs().unwrap()["code"],
        503
    );
}

#[test]
fn a_slow_call_does_not_hold_up_its_shard() {
    let (base, _) = serve(200, "slow", Duration::from_millis(600));
    let ended = Arc::new(Ended::default());
    let config = EngineConfig {
        threads: NonZeroUsize::new(1).unwrap(),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, ended.clone()).unwrap();
    let new = NewExecution::new(flow(&base, ""), Default::default());
    let slow = new.id;
    engine.submit(new, Ack::Receipt).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let quick_flow = Arc::new(FlowRevision::new(Arc::new(
        Flow::parse(
            "id: quick\nnamespace: tests\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: hi\n",
        )
        .unwrap(),
    )));
    let submitted = Instant::now();
    let new = NewExecution::new(quick_flow, Default::default());
    let quick = new.id;
    engine.submit(new, Ack::Receipt).unwrap();
    wait_for(&ended, 2);
    let ended = ended.0.lock().unwrap();
    let quick_end = ended.iter().find(|e| e.0 == quick).unwrap();
    let slow_end = ended.iter().find(|e| e.0 == slow).unwrap();
    assert!(
        quick_end.2 < slow_end.2,
        "the quick execution ended while the call was in flight"
    );
    assert!(quick_end.2 - submitted < Duration::from_millis(400));
    assert_eq!(slow_end.1.state(), State::Success);
    drop(ended);
    engine.shutdown();
}

#[test]
fn a_call_lost_in_a_restart_runs_again_as_a_new_attempt() {
    // The server answers the first call after the engine has stopped: the
    // answer is lost, and after the restart the call runs again.
    let (base, seen) = serve(200, "late", Duration::from_millis(1_000));
    let revision = flow(&base, "    options:\n      readTimeout: PT5S");
    let dir = tempfile::tempdir().unwrap();
    let wal = peregrine_wal::Config {
        segment_bytes: std::num::NonZeroU64::new(4 << 20).unwrap(),
        max_record_bytes: std::num::NonZeroU32::new(256 << 10).unwrap(),
        ..peregrine_wal::Config::default()
    };
    let resolve = {
        let revision = revision.clone();
        move |_: &str, _: &str, _: u32| Some(revision.clone())
    };
    let ended = Arc::new(Ended::default());
    let (engine, _) = Engine::start_durable(
        EngineConfig::default(),
        ended.clone(),
        dir.path(),
        wal.clone(),
        &resolve,
    )
    .unwrap();
    let new = NewExecution::new(revision.clone(), Default::default());
    let id = new.id;
    let started = engine.submit(new, Ack::Receipt).unwrap().wait().unwrap();
    started.receipt.wait().unwrap();
    // Wait until the call is in flight, then stop: the answer comes too late.
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    engine.shutdown();
    assert!(
        ended.0.lock().unwrap().is_empty(),
        "nothing ended before the stop"
    );

    let ended = Arc::new(Ended::default());
    let (engine, recovery) = Engine::start_durable(
        EngineConfig::default(),
        ended.clone(),
        dir.path(),
        wal,
        &resolve,
    )
    .unwrap();
    assert_eq!(recovery.resumed, 1);
    wait_for(&ended, 1);
    let exec = ended.0.lock().unwrap()[0].1.clone();
    assert_eq!(exec.id(), id);
    assert_eq!(exec.state(), State::Success, "{:?}", exec.logs().entries());
    let call = exec.task_runs_of("call").next().unwrap();
    assert_eq!(
        call.attempts().len(),
        2,
        "the lost attempt is followed by another"
    );
    assert_eq!(call.attempts()[0].state().current(), State::Failed);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "at least once: the call ran twice"
    );
    engine.shutdown();
}

/// A call past its task's `timeout` fails the attempt with Kestra's message
/// (`Timeout after HH:mm:ss.SSS`), and the worker gives the call up then,
/// rather than being held until the server answers: with one worker, the
/// next call runs at once.
#[test]
fn a_call_past_its_timeout_fails_and_frees_its_worker() {
    let (slow, _) = serve(200, "late", Duration::from_secs(20));
    let (fast, _) = serve(200, "fast", Duration::ZERO);
    let ended = Arc::new(Ended::default());
    let config = EngineConfig {
        threads: NonZeroUsize::new(1).unwrap(),
        workers: NonZeroUsize::new(1).unwrap(),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, ended.clone()).unwrap();
    let started = Instant::now();
    let new = NewExecution::new(flow(&slow, "    timeout: PT0.3S"), Default::default());
    let timed_out = new.id;
    engine.submit(new, Ack::Receipt).unwrap();
    wait_for(&ended, 1);
    let new = NewExecution::new(flow(&fast, ""), Default::default());
    engine.submit(new, Ack::Receipt).unwrap();
    wait_for(&ended, 2);
    let elapsed = started.elapsed();
    let ended = ended.0.lock().unwrap();
    let exec = &ended.iter().find(|e| e.0 == timed_out).unwrap().1;
    assert_eq!(exec.state(), State::Failed);
    let call = exec.task_runs_of("call").next().unwrap();
    assert_eq!(call.state(), State::Failed);
    assert_eq!(call.attempts().len(), 1);
    assert_eq!(call.attempts()[0].state().current(), State::Failed);
    assert!(
        exec.logs()
            .entries()
            .iter()
            .any(|l| l.message == "Timeout after 00:00:00.300"),
        "{:?}",
        exec.logs().entries()
    );
    let other = ended.iter().find(|e| e.0 != timed_out).unwrap();
    assert_eq!(other.1.state(), State::Success, "the worker was free again");
    // The slow server would have held the worker for 20 s.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    engine.shutdown();
}
