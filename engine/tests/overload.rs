#![allow(clippy::unwrap_used)]

//! Load shedding: while a shard's work waits past the queueing budget, new
//! starts on it are refused at once; every start that was accepted ends,
//! is readable, and the running count returns to zero.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::flow::Flow;
use peregrine_engine::{
    Ack, Change, Engine, EngineConfig, ExecutionId, FlowRevision, NewExecution, Observer, Refusal,
};

struct Nobody;

impl Observer for Nobody {
    fn on_change(&self, _: &Change<'_>) {}
}

fn revision(id: &str, format: &str) -> Arc<FlowRevision> {
    let yaml = format!(
        "id: {id}\nnamespace: tests\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.debug.Return\n    format: \"{format}\"\n"
    );
    Arc::new(FlowRevision::new(Arc::new(Flow::parse(&yaml).unwrap())))
}

#[test]
fn starts_past_the_queueing_budget_are_refused_and_every_accepted_one_ends() {
    let config = EngineConfig {
        threads: NonZeroUsize::new(1).unwrap(),
        queueing_budget: Some(Duration::from_millis(50)),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, Arc::new(Nobody)).unwrap();
    // Each takes the shard a while: a loop of a few hundred thousand turns.
    let slow = revision("slow", "{% for i in range(1, 100000) %}{% endfor %}done");
    let cheap = revision("cheap", "ok");
    let mut accepted: Vec<ExecutionId> = Vec::new();
    for _ in 0..6 {
        let new = NewExecution::new(slow.clone(), Default::default());
        accepted.push(new.id);
        engine.submit(new, Ack::Receipt).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let refusal = loop {
        assert!(Instant::now() < deadline, "no start was ever shed");
        let new = NewExecution::new(cheap.clone(), Default::default());
        let id = new.id;
        match engine.submit(new, Ack::Receipt) {
            Ok(_) => accepted.push(id),
            Err(e) => break e.refusal,
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let Refusal::Overloaded { waited, budget } = refusal else {
        panic!("refused for another reason: {refusal}");
    };
    assert!(waited > budget, "{waited:?} <= {budget:?}");
    assert!(refusal.to_string().contains("overloaded"));

    // Every accepted start ends and stays readable; nothing is left counted.
    while engine.running() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} still running",
            engine.running()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for id in &accepted {
        let snapshot = engine.read(*id).unwrap().wait().unwrap();
        let state = snapshot
            .expect("an accepted execution is readable")
            .record
            .state();
        assert!(state.is_terminal(), "{id}: {state:?}");
    }
    // Once the queue has drained, starts are taken again.
    let mut new = NewExecution::new(cheap.clone(), Default::default());
    while let Err(e) = engine.submit(new, Ack::Receipt) {
        assert!(Instant::now() < deadline, "still refused: {e}");
        std::thread::sleep(Duration::from_millis(10));
        new = *e.execution;
    }
    engine.shutdown();
}
