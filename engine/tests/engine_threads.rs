#![allow(clippy::unwrap_used)]

//! The sharded runtime: executions spread over shard threads, observed to
//! their end, with backpressure when an inbox is full.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peregrine_engine::execution::{Execution, ExecutionId, State};
use peregrine_engine::executor::{
    Engine, EngineConfig, FlowRevision, NewExecution, Observer, PushError,
};
use peregrine_engine::flow::Flow;

#[derive(Default)]
struct Collect {
    ended: Mutex<Vec<(ExecutionId, State, String)>>,
}

impl Observer for Collect {
    fn on_change(&self, execution: &Execution, terminal: bool) {
        if terminal {
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
        let id = engine
            .submit(NewExecution::new(flow.clone(), Default::default()))
            .unwrap();
        ids.push(id);
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
        match engine.submit(new) {
            Ok(_) => accepted += 1,
            Err(PushError::Full(back)) => {
                assert_eq!(back.id, id, "the refused execution comes back whole");
                refused = Some(id);
                break;
            }
            Err(PushError::Closed(_)) => panic!("the engine is running"),
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
    let id = engine
        .submit(NewExecution::new(flow, Default::default()))
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    engine.kill(id).unwrap();
    wait_for(&collect, 1);
    assert_eq!(collect.ended.lock().unwrap()[0].1, State::Killed);
}
