#![allow(clippy::unwrap_used)]

//! Expression budgets at the engine level: a runaway expression fails its
//! own task run, with the reason in the execution, and the shard it runs on
//! goes on serving every other execution.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peregrine_engine::expression::Budget;
use peregrine_engine::flow::{Flow, Level};
use peregrine_engine::{
    Ack, Change, Engine, EngineConfig, ExecutionId, FlowRevision, Limits, NewExecution, Observer,
    State,
};

/// Each ended execution: its state and its ERROR log lines.
#[derive(Default)]
struct Ended(Mutex<Vec<(ExecutionId, State, Vec<String>)>>);

impl Observer for Ended {
    fn on_change(&self, change: &Change<'_>) {
        if change.ended.is_some() {
            let execution = change.execution;
            let errors = execution
                .logs()
                .entries()
                .iter()
                .filter(|l| l.level == Level::Error)
                .map(|l| l.message.clone())
                .collect();
            self.0
                .lock()
                .unwrap()
                .push((execution.id(), execution.state(), errors));
        }
    }
}

fn revision(yaml: &str) -> Arc<FlowRevision> {
    Arc::new(FlowRevision::new(Arc::new(Flow::parse(yaml).unwrap())))
}

fn flow(id: &str, format: &str) -> Arc<FlowRevision> {
    revision(&format!(
        "id: {id}\nnamespace: tests\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.debug.Return\n    format: \"{format}\"\n"
    ))
}

fn wait_for(ended: &Ended, n: usize) -> Vec<(ExecutionId, State, Vec<String>)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = ended.0.lock().unwrap().clone();
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "{} of {n} ended", got.len());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_runaway_expression_fails_its_task_run_and_the_shard_goes_on() {
    let ended = Arc::new(Ended::default());
    let config = EngineConfig {
        threads: NonZeroUsize::new(1).unwrap(),
        limits: Limits {
            expression: Budget {
                steps: 200_000,
                ..Budget::default()
            },
            ..Limits::default()
        },
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, ended.clone()).unwrap();
    let runaways = [
        flow("recurse", "{{ 1 | jq('[recurse(. + 1)] | length') }}"),
        flow(
            "repeat",
            "{{ 1 | jq('[limit(100000000; repeat(1))] | length') }}",
        ),
        flow(
            "loops",
            "{% for i in range(0, 99999) %}{% set x = range(0, 99999) | length %}{% endfor %}",
        ),
    ];
    let honest = flow("honest", "{{ [1, 2, 3] | jq('map(. * 2) | add') | first }}");
    let mut runaway_ids = Vec::new();
    for rev in &runaways {
        let new = NewExecution::new(rev.clone(), Default::default());
        runaway_ids.push(new.id);
        engine.submit(new, Ack::Receipt).unwrap();
    }
    for _ in 0..50 {
        engine
            .submit(
                NewExecution::new(honest.clone(), Default::default()),
                Ack::Receipt,
            )
            .unwrap();
    }
    let all = wait_for(&ended, 53);
    for (id, state, errors) in &all {
        if runaway_ids.contains(id) {
            assert_eq!(*state, State::Failed);
            assert!(
                errors
                    .iter()
                    .any(|m| m.contains("budget of 200000 evaluation steps")),
                "the reason is in the execution: {errors:?}"
            );
        } else {
            assert_eq!(*state, State::Success, "{errors:?}");
        }
    }
    engine.shutdown();
}
