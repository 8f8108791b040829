#![allow(clippy::unwrap_used)]

//! The sharded runtime: executions spread over shard threads, observed to
//! their end, with backpressure when an inbox is full.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peregrine_engine::flow::Flow;
use peregrine_engine::{
    Ack, Change, Engine, EngineConfig, Filter, FlowRevision, KillOutcome, NewExecution, Observer,
    Refusal,
};
use peregrine_engine::{ExecutionId, State};

#[derive(Default)]
struct Collect {
    ended: Mutex<Vec<(ExecutionId, State, String)>>,
}

impl Observer for Collect {
    fn on_change(&self, change: &Change<'_>) {
        let execution = change.execution;
        if change.ended.is_some() {
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            self.ended
                .lock()
                .unwrap()
                .push((execution.id(), execution.state(), thread));
        }
    }
}

fn revision(yaml: &str) -> Arc<FlowRevision> {
    Arc::new(FlowRevision::new(Arc::new(Flow::parse(yaml).unwrap())))
}

const TWO_STEPS: &str = r#"
id: two-steps
namespace: tests
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: a
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.05S
"#;

fn wait_for(collect: &Collect, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while collect.ended.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "executions did not end in time");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn executions_spread_over_shards_and_all_end() {
    let collect = Arc::new(Collect::default());
    let config = EngineConfig {
        threads: NonZeroUsize::new(3).unwrap(),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, collect.clone()).unwrap();
    let flow = revision(TWO_STEPS);
    let mut ids = Vec::new();
    for _ in 0..300 {
        let new = NewExecution::new(flow.clone(), Default::default());
        ids.push(new.id);
        engine.submit(new, Ack::Receipt).unwrap();
    }
    wait_for(&collect, 300);
    let ended = collect.ended.lock().unwrap().clone();
    let mut seen: Vec<ExecutionId> = ended.iter().map(|e| e.0).collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids, "every submitted execution ends exactly once");
    assert!(ended.iter().all(|e| e.1 == State::Success));
    for (id, _, thread) in &ended {
        assert_eq!(
            thread,
            &format!("shard-{}", engine.shard_of(*id)),
            "an execution runs on the shard its id hashes to"
        );
    }
    let threads: std::collections::HashSet<_> = ended.iter().map(|e| e.2.clone()).collect();
    assert_eq!(threads.len(), 3, "all shards took work");
    engine.shutdown();
}

#[test]
fn a_full_inbox_hands_the_execution_back() {
    let collect = Arc::new(Collect::default());
    let config = EngineConfig {
        threads: NonZeroUsize::new(1).unwrap(),
        inbox_capacity: NonZeroUsize::new(4).unwrap(),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, collect.clone()).unwrap();
    let flow = revision(TWO_STEPS);
    let mut accepted = 0;
    let mut refused = None;
    // The shard drains as we push, so push until one is refused.
    for _ in 0..100_000 {
        let new = NewExecution::new(flow.clone(), Default::default());
        let id = new.id;
        match engine.submit(new, Ack::Receipt) {
            Ok(_) => accepted += 1,
            Err(e) if e.refusal == Refusal::Full => {
                assert_eq!(e.execution.id, id, "the refused execution comes back whole");
                refused = Some(id);
                break;
            }
            Err(e) => panic!("the engine is running: {e}"),
        }
    }
    assert!(refused.is_some(), "a 4-slot inbox must push back");
    wait_for(&collect, accepted);
    assert_eq!(collect.ended.lock().unwrap().len(), accepted);
    engine.shutdown();
}

#[test]
fn kill_through_the_engine_ends_a_sleeping_execution() {
    let collect = Arc::new(Collect::default());
    let engine = Engine::start(EngineConfig::default(), collect.clone()).unwrap();
    let flow = revision(
        r#"
id: long-nap
namespace: tests
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"#,
    );
    let new = NewExecution::new(flow, Default::default());
    let id = new.id;
    engine.submit(new, Ack::Receipt).unwrap().wait().unwrap();
    let KillOutcome::Killed(receipt) = engine.kill(id).unwrap().wait().unwrap() else {
        panic!("a sleeping execution is killed");
    };
    receipt.wait().unwrap();
    wait_for(&collect, 1);
    assert_eq!(collect.ended.lock().unwrap()[0].1, State::Killed);
    assert!(matches!(
        engine.kill(id).unwrap().wait().unwrap(),
        KillOutcome::Ended(State::Killed)
    ));
    assert!(matches!(
        engine
            .kill(ExecutionId::generate())
            .unwrap()
            .wait()
            .unwrap(),
        KillOutcome::NotFound
    ));
}

/// A loopback server that reads each request's head and never answers;
/// it reports, for each connection, when its client closed it.
fn silent_server() -> (String, std::sync::mpsc::Receiver<Instant>) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/slow", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                // Until the client closes its end (0) or resets it (an error).
                while let Ok(1..) = stream.read(&mut buf) {}
                let _ = tx.send(Instant::now());
            });
        }
    });
    (url, rx)
}

#[test]
fn a_kill_interrupts_the_http_call_its_task_runs_and_frees_the_worker() {
    let (silent, closed) = silent_server();
    let collect = Arc::new(Collect::default());
    // One worker: a call held after the kill would hold the next one up.
    let config = EngineConfig {
        workers: NonZeroUsize::new(1).unwrap(),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, collect.clone()).unwrap();
    let call = |uri: &str| {
        revision(&format!(
            "id: call\nnamespace: tests\ntasks:\n  - id: get\n    type: io.kestra.plugin.core.http.Request\n    uri: {uri}\n"
        ))
    };
    let new = NewExecution::new(call(&silent), Default::default());
    let id = new.id;
    engine.submit(new, Ack::Receipt).unwrap().wait().unwrap();
    // The call is in flight once the server holds its connection.
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine
        .read(id)
        .unwrap()
        .wait()
        .unwrap()
        .is_none_or(|s| s.record.state() != State::Running)
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    let killed_at = Instant::now();
    let KillOutcome::Killed(receipt) = engine.kill(id).unwrap().wait().unwrap() else {
        panic!("a running execution is killed");
    };
    receipt.wait().unwrap();
    // The connection is closed at once, not when the call's 60 s timeout
    // would have given it up.
    let at = closed.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        at - killed_at < Duration::from_secs(10),
        "{:?}",
        at - killed_at
    );

    // The one worker is free: a call to a server that answers runs.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    });
    let next = NewExecution::new(call(&url), Default::default());
    engine.submit(next, Ack::Receipt).unwrap().wait().unwrap();
    wait_for(&collect, 2);
    let ended = collect.ended.lock().unwrap().clone();
    assert_eq!(ended[0], (id, State::Killed, ended[0].2.clone()));
    assert_eq!(ended[1].1, State::Success, "{ended:?}");
    drop(ended);
    engine.shutdown();
}

const SLEEPY: &str = r#"
id: sleepy
namespace: company.team
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
"#;

#[test]
fn a_repeated_start_finds_the_execution_and_runs_nothing_twice() {
    let collect = Arc::new(Collect::default());
    let engine = Engine::start(EngineConfig::default(), collect.clone()).unwrap();
    let flow = revision(TWO_STEPS);
    let new = NewExecution::new(flow.clone(), Default::default());
    let id = new.id;
    let first = engine.submit(new, Ack::Snapshot).unwrap().wait().unwrap();
    assert!(!first.existed);
    assert_eq!(first.snapshot.unwrap().id(), id);
    let mut again = NewExecution::new(flow.clone(), Default::default());
    again.id = id;
    let second = engine.submit(again, Ack::Receipt).unwrap().wait().unwrap();
    assert!(second.existed, "the same id is not started twice");
    wait_for(&collect, 1);
    // Once it has ended, a start of the same id still finds it.
    let mut late = NewExecution::new(flow, Default::default());
    late.id = id;
    let third = engine.submit(late, Ack::Snapshot).unwrap().wait().unwrap();
    assert!(third.existed);
    assert_eq!(third.snapshot.unwrap().state(), State::Success);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(collect.ended.lock().unwrap().len(), 1, "it ran once");
    assert_eq!(engine.running(), 0, "repeats are not counted as running");
}

#[test]
fn max_running_refuses_starts_past_the_limit_until_one_ends() {
    let collect = Arc::new(Collect::default());
    let config = EngineConfig {
        max_running: NonZeroUsize::new(2),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, collect.clone()).unwrap();
    let flow = revision(SLEEPY);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let new = NewExecution::new(flow.clone(), Default::default());
        ids.push(new.id);
        engine.submit(new, Ack::Receipt).unwrap().wait().unwrap();
    }
    let refused = engine
        .submit(
            NewExecution::new(flow.clone(), Default::default()),
            Ack::Receipt,
        )
        .unwrap_err();
    assert_eq!(refused.refusal, Refusal::TooMany(2));
    engine.kill(ids[0]).unwrap().wait().unwrap();
    wait_for(&collect, 1);
    engine
        .submit(NewExecution::new(flow, Default::default()), Ack::Receipt)
        .expect("room again once one ended");
    assert_eq!(engine.running(), 2);
}

#[test]
fn reads_and_searches_see_running_and_finished_executions() {
    let collect = Arc::new(Collect::default());
    let config = EngineConfig {
        threads: NonZeroUsize::new(2).unwrap(),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, collect.clone()).unwrap();
    let sleepy = revision(SLEEPY);
    let quick = revision(TWO_STEPS);
    let mut sleeping = Vec::new();
    for _ in 0..5 {
        let new = NewExecution::new(sleepy.clone(), Default::default());
        sleeping.push(new.id);
        engine.submit(new, Ack::Receipt).unwrap().wait().unwrap();
    }
    let mut quick_ids = Vec::new();
    for _ in 0..3 {
        let new = NewExecution::new(quick.clone(), Default::default());
        quick_ids.push(new.id);
        engine.submit(new, Ack::Receipt).unwrap();
    }
    wait_for(&collect, 3);

    let running = engine.read(sleeping[0]).unwrap().wait().unwrap().unwrap();
    assert_eq!(running.record.state(), State::Running);
    let done = engine.read(quick_ids[0]).unwrap().wait().unwrap().unwrap();
    assert_eq!(done.record.state(), State::Success);
    assert!(
        engine
            .read(ExecutionId::generate())
            .unwrap()
            .wait()
            .unwrap()
            .is_none()
    );

    let all = engine
        .search(Filter::default(), 1, 100)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(all.total, 8);
    let starts: Vec<_> = all.results.iter().map(|s| s.record.start_date()).collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let page = engine
        .search(Filter::default(), 2, 3)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(page.total, 8);
    let ids: Vec<_> = page.results.iter().map(|s| s.record.id()).collect();
    let expected: Vec<_> = all.results[3..6].iter().map(|s| s.record.id()).collect();
    assert_eq!(ids, expected, "page 2 of 3 is the 4th to 6th newest");
    let in_team = Filter {
        namespace: vec![peregrine_engine::Text::Prefix("company".into())],
        states: vec![State::Running],
        ..Filter::default()
    };
    let found = engine.search(in_team, 1, 10).unwrap().wait().unwrap();
    let mut found: Vec<_> = found.results.iter().map(|s| s.record.id()).collect();
    found.sort();
    sleeping.sort();
    assert_eq!(found, sleeping);
}
