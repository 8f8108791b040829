#![allow(clippy::unwrap_used)]

//! Budgets and limits at the engine level: a runaway expression, outputs
//! over their limit, a ForEach over too many values and a final state over
//! the journal's record limit each fail what caused them, with the reason
//! in the execution, and the shard goes on serving every other execution.

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

#[test]
fn a_value_nested_200000_deep_neither_overflows_the_shard_nor_leaves_it() {
    let (engine, ended) = start_one(Limits::default());
    // Built and dropped inside jq: the drop recurses once per level, on the
    // shard's large stack.
    let dropped = flow(
        "dropped",
        "{{ 1 | jq('reduce range(200000) as $i (null; [.]) | length') | first }}",
    );
    assert_eq!(run_one(&engine, &ended, &dropped), (State::Success, vec![]));
    // Given back: refused, deeper than a JSON reader takes.
    let kept = flow(
        "kept",
        "{{ 1 | jq('reduce range(200000) as $i (null; [.])') }}",
    );
    let (state, errors) = run_one(&engine, &ended, &kept);
    assert_eq!(state, State::Failed);
    assert!(
        errors
            .iter()
            .any(|m| m.contains("nests deeper than 128 levels")),
        "{errors:?}"
    );
    let honest = flow("honest", "{{ [1, 2, 3] | jq('map(. * 2) | add') | first }}");
    assert_eq!(run_one(&engine, &ended, &honest).0, State::Success);
    engine.shutdown();
}

fn start_one(limits: Limits) -> (Engine, Arc<Ended>) {
    let ended = Arc::new(Ended::default());
    let config = EngineConfig {
        threads: NonZeroUsize::new(1).unwrap(),
        limits,
        ..EngineConfig::default()
    };
    (Engine::start(config, ended.clone()).unwrap(), ended)
}

fn run_one(engine: &Engine, ended: &Ended, rev: &Arc<FlowRevision>) -> (State, Vec<String>) {
    let before = ended.0.lock().unwrap().len();
    let new = NewExecution::new(rev.clone(), Default::default());
    let id = new.id;
    engine.submit(new, Ack::Receipt).unwrap();
    let all = wait_for(ended, before + 1);
    let (_, state, errors) = all.into_iter().find(|e| e.0 == id).unwrap();
    (state, errors)
}

#[test]
fn outputs_over_their_limit_fail_the_task_run_that_made_them() {
    let (engine, ended) = start_one(Limits {
        max_outputs_bytes: 10_000,
        ..Limits::default()
    });
    let big = flow("big", "{{ range(0, 5000) | join(',') }}");
    let (state, errors) = run_one(&engine, &ended, &big);
    assert_eq!(state, State::Failed);
    assert!(
        errors
            .iter()
            .any(|m| m.contains("limit of 10000 bytes") && m.contains("max-outputs-size")),
        "{errors:?}"
    );
    let small = flow("small", "{{ range(0, 100) | join(',') }}");
    assert_eq!(run_one(&engine, &ended, &small).0, State::Success);
    engine.shutdown();
}

#[test]
fn a_foreach_over_too_many_values_fails_before_it_starts_them() {
    let (engine, ended) = start_one(Limits::default());
    let huge = revision(
        r#"
id: huge
namespace: tests
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ range(1, 1000000) }}"
    tasks:
      - id: one
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
"#,
    );
    let (state, errors) = run_one(&engine, &ended, &huge);
    assert_eq!(state, State::Failed);
    assert!(
        errors
            .iter()
            .any(|m| m.contains("limit of 10000 task runs") && m.contains("1000000 more")),
        "{errors:?}"
    );
    let fits = revision(
        r#"
id: fits
namespace: tests
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ range(1, 100) }}"
    tasks:
      - id: one
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
"#,
    );
    assert_eq!(run_one(&engine, &ended, &fits).0, State::Success);
    engine.shutdown();
}

const WIDE: &str = r#"
id: wide
namespace: tests
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ range(1, 200) }}"
    tasks:
      - id: one
        type: io.kestra.plugin.core.debug.Return
        format: "{% for i in range(1, 100) %}{{ taskrun.value }}-{% endfor %}"
"#;

/// Runs [`WIDE`] once on a durable engine with WAL records of at most 64
/// KiB in segments of `segment` bytes, under `max_final_bytes`; then
/// restarts. Its state, its errors, its final record's size, and that
/// record as JSON before and after the restart.
fn wide_on_disk(
    segment: u64,
    max_final_bytes: usize,
) -> (
    State,
    Vec<String>,
    usize,
    (serde_json::Value, serde_json::Value),
) {
    let json = |record: &peregrine_engine::Record| {
        let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        serde_json::to_value(record.json(at)).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let rev = revision(WIDE);
    let wal = peregrine_wal::Config {
        segment_bytes: std::num::NonZeroU64::new(segment).unwrap(),
        max_record_bytes: std::num::NonZeroU32::new(64 << 10).unwrap(),
        ..peregrine_wal::Config::default()
    };
    let start = |dir: &std::path::Path| {
        let ended = Arc::new(Ended::default());
        let flow = Arc::clone(&rev);
        let resolve = move |_: &str, id: &str, _: u32| (id == "wide").then(|| Arc::clone(&flow));
        let config = EngineConfig {
            threads: NonZeroUsize::new(1).unwrap(),
            limits: Limits {
                max_final_bytes,
                ..Limits::default()
            },
            ..EngineConfig::default()
        };
        let (engine, recovery) =
            Engine::start_durable(config, ended.clone(), dir, wal.clone(), &resolve).unwrap();
        (engine, ended, recovery)
    };
    let (engine, ended, _) = start(dir.path());
    let new = NewExecution::new(Arc::clone(&rev), Default::default());
    let id = new.id;
    let started = engine.submit(new, Ack::Receipt).unwrap();
    started.wait().unwrap().receipt.wait().unwrap();
    let (_, state, errors) = wait_for(&ended, 1).remove(0);
    // The end was journaled: it is read back, not run again.
    let read = engine.read(id).unwrap().wait().unwrap().unwrap();
    read.receipt.wait().unwrap();
    let size = read.record.byte_len();
    let before = json(&read.record);
    engine.shutdown();
    let (engine, _, recovery) = start(dir.path());
    assert_eq!(recovery.resumed, 0, "{:?}", recovery.failed);
    assert_eq!(recovery.finished, 1);
    let again = engine.read(id).unwrap().wait().unwrap().unwrap();
    let after = json(&again.record);
    engine.shutdown();
    (state, errors, size, (before, after))
}

#[test]
fn a_final_state_over_the_record_limit_is_journaled_whole_across_records() {
    // Over 64 KiB of task run values, records of 64 KiB: it spans two.
    let (state, errors, size, (before, after)) =
        wide_on_disk(4 << 20, Limits::DEFAULT_MAX_FINAL_BYTES);
    assert_eq!(state, State::Success, "{errors:?}");
    assert!(size > 64 << 10, "{size} bytes");
    // The ForEach's task run and one per value (Pebble's range is inclusive).
    assert_eq!(before["taskRunList"].as_array().unwrap().len(), 201);
    assert_eq!(after, before, "recovered as it ended");
}

#[test]
fn a_final_state_over_its_limit_is_cut_down_failed_and_durable() {
    // The engine's limit...
    let (state, errors, size, (before, after)) = wide_on_disk(4 << 20, 64 << 10);
    assert_eq!(state, State::Failed);
    assert!(
        errors
            .iter()
            .any(|m| m.contains("over the limit of 65536 bytes")
                && m.contains("executions.max-final-size")),
        "{errors:?}"
    );
    assert!(size <= 64 << 10);
    assert_eq!(after, before);
    // ... and what one WAL segment holds (72 KiB here, holding 73,536
    // bytes of one terminal record), whatever the engine's limit.
    let (state, errors, size, _) = wide_on_disk(72 << 10, Limits::DEFAULT_MAX_FINAL_BYTES);
    assert_eq!(state, State::Failed);
    assert!(
        errors
            .iter()
            .any(|m| m.contains("over the limit of 73536 bytes")),
        "{errors:?}"
    );
    assert!(size <= 73536);
}

/// What an ended execution left: its state, its final record's size, and
/// its task runs' values.
type Final = (State, usize, Vec<Option<String>>);

#[derive(Default)]
struct Finals(Mutex<Vec<Final>>);

impl Observer for Finals {
    fn on_change(&self, change: &Change<'_>) {
        if let Some(record) = change.ended {
            let values = change
                .execution
                .task_runs()
                .iter()
                .map(|t| t.value().map(str::to_owned))
                .collect();
            self.0
                .lock()
                .unwrap()
                .push((change.execution.state(), record.byte_len(), values));
        }
    }
}

fn foreach_over(values: &[String]) -> Arc<FlowRevision> {
    let list = values
        .iter()
        .map(|v| format!("      - {v}\n"))
        .collect::<String>();
    revision(&format!(
        "id: wide\nnamespace: tests\ntasks:\n  - id: each\n    type: io.kestra.plugin.core.flow.ForEach\n    values:\n{list}    tasks:\n      - id: one\n        type: io.kestra.plugin.core.debug.Return\n        format: x\n"
    ))
}

fn final_of(
    rev: &Arc<FlowRevision>,
    max_final_bytes: usize,
) -> (State, usize, Vec<Option<String>>) {
    let finals = Arc::new(Finals::default());
    let config = EngineConfig {
        threads: NonZeroUsize::new(1).unwrap(),
        limits: Limits {
            max_final_bytes,
            ..Limits::default()
        },
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, finals.clone()).unwrap();
    engine
        .submit(
            NewExecution::new(rev.clone(), Default::default()),
            Ack::Receipt,
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(last) = finals.0.lock().unwrap().first().cloned() {
            engine.shutdown();
            return last;
        }
        assert!(Instant::now() < deadline, "never ended");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_final_state_is_cut_step_by_step_until_it_fits() {
    // Long values: dropping outputs is not enough, cutting the values is.
    let long: Vec<String> = (0..10)
        .map(|i| format!("{i}{}", "v".repeat(5000)))
        .collect();
    let (state, size, values) = final_of(&foreach_over(&long), 8 << 10);
    assert_eq!(state, State::Failed);
    assert!(size <= 8 << 10, "{size} bytes");
    assert_eq!(values.len(), 11, "the task runs stay");
    assert!(
        values
            .iter()
            .flatten()
            .all(|v| v == "(dropped: the final state was too large)"),
        "{values:?}"
    );
    // Many task runs: only dropping them makes the record fit.
    let many: Vec<String> = (0..2000).map(|i| format!("v{i}")).collect();
    let (state, size, values) = final_of(&foreach_over(&many), 8 << 10);
    assert_eq!(state, State::Failed);
    assert!(size <= 8 << 10, "{size} bytes");
    assert!(values.is_empty(), "{} task runs left", values.len());
}
