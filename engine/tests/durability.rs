//! A durable engine journals every execution in its shards' WALs; a new
//! engine on the same folder resumes what was in flight and hands back what
//! had ended.

#![allow(clippy::unwrap_used)]

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peregrine_engine::flow::Flow;
use peregrine_engine::{
    Ack, Change, Engine, EngineConfig, Filter, FlowRevision, NewExecution, Observer,
};
use peregrine_engine::{ExecutionId, State};

const NAP: &str = r#"
id: nap
namespace: tests
tasks:
  - id: before
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.n }}"
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1.5S
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "after {{ outputs.before.value }}"
inputs:
  - id: n
    type: INT
"#;

#[derive(Default)]
struct Ended(Mutex<Vec<(ExecutionId, State, serde_json::Value)>>);

impl Observer for Ended {
    fn on_change(&self, change: &Change<'_>) {
        let execution = change.execution;
        if change.ended.is_some() {
            self.0.lock().unwrap().push((
                execution.id(),
                execution.state(),
                execution.to_json(chrono::Utc::now()),
            ));
        }
    }
}

fn revision() -> Arc<FlowRevision> {
    Arc::new(FlowRevision::new(Arc::new(Flow::parse(NAP).unwrap())))
}

fn config() -> EngineConfig {
    EngineConfig {
        threads: NonZeroUsize::new(2).unwrap(),
        ..EngineConfig::default()
    }
}

fn wal_config() -> peregrine_wal::Config {
    peregrine_wal::Config {
        segment_bytes: std::num::NonZeroU64::new(4 << 20).unwrap(),
        max_record_bytes: std::num::NonZeroU32::new(256 << 10).unwrap(),
        ..peregrine_wal::Config::default()
    }
}

fn start(
    dir: &std::path::Path,
    flow: &Arc<FlowRevision>,
) -> (Engine, Arc<Ended>, peregrine_engine::Recovery) {
    let ended = Arc::new(Ended::default());
    let flow = Arc::clone(flow);
    let resolve = move |ns: &str, id: &str, rev: u32| {
        (ns == "tests" && id == "nap" && rev == flow.revision()).then(|| Arc::clone(&flow))
    };
    let (engine, recovery) =
        Engine::start_durable(config(), ended.clone(), dir, wal_config(), &resolve).unwrap();
    (engine, ended, recovery)
}

#[test]
fn in_flight_executions_resume_with_their_deadlines_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let flow = revision();
    let (engine, _, recovery) = start(dir.path(), &flow);
    assert_eq!(recovery.resumed, 0);

    // Submit, and wait for every creation to be durable, as the API does
    // before it acknowledges.
    let mut ids = Vec::new();
    let mut pending = Vec::new();
    for n in 0..20 {
        let new = NewExecution::new(
            Arc::clone(&flow),
            serde_json::json!({ "n": n }).as_object().cloned().unwrap(),
        );
        ids.push(new.id);
        pending.push(engine.submit(new, Ack::Receipt).unwrap());
    }
    let submitted = Instant::now();
    for started in pending {
        started.wait().unwrap().receipt.wait().unwrap();
    }
    // Stop while every execution sleeps; nothing has ended.
    engine.shutdown();
    assert!(
        submitted.elapsed() < Duration::from_millis(1_400),
        "stopped mid-sleep"
    );

    let (engine, ended, recovery) = start(dir.path(), &flow);
    assert_eq!(recovery.resumed, 20, "{:?}", recovery.failed);
    assert!(recovery.failed.is_empty());
    let deadline = Instant::now() + Duration::from_secs(20);
    while ended.0.lock().unwrap().len() < 20 {
        assert!(Instant::now() < deadline, "resumed executions did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
    let results = ended.0.lock().unwrap().clone();
    let mut seen: Vec<_> = results.iter().map(|r| r.0).collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids, "each acknowledged execution ends exactly once");
    for (_, state, json) in &results {
        assert_eq!(*state, State::Success);
        let runs = json["taskRunList"].as_array().unwrap();
        assert_eq!(runs.len(), 3);
        let n = json["inputs"]["n"].as_i64().unwrap();
        assert_eq!(runs[2]["outputs"]["value"], format!("after {n}"));
        // The Sleep kept its original deadline: the resumed execution ended
        // about 1.5 s after it started, not 1.5 s after the restart.
        let start =
            chrono::DateTime::parse_from_rfc3339(json["state"]["startDate"].as_str().unwrap())
                .unwrap();
        let end = chrono::DateTime::parse_from_rfc3339(json["state"]["endDate"].as_str().unwrap())
            .unwrap();
        let took = (end - start).num_milliseconds();
        assert!((1_500..3_000).contains(&took), "took {took} ms");
    }
    engine.shutdown();

    // A third start finds them all ended, readable from their final records
    // exactly as they were when they ended.
    let (engine, _, recovery) = start(dir.path(), &flow);
    assert_eq!(recovery.resumed, 0);
    assert_eq!(recovery.finished, 20);
    let page = engine
        .search(Filter::default(), 1, 100)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(page.total, 20);
    for (id, _, json) in &results {
        let read = engine.read(*id).unwrap().wait().unwrap().expect("kept");
        assert_eq!(&read.record.to_json(chrono::Utc::now()), json);
    }
    engine.shutdown();
}

#[test]
fn a_kill_is_journaled_and_stays_killed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let flow = revision();
    let (engine, ended, _) = start(dir.path(), &flow);
    let new = NewExecution::new(
        Arc::clone(&flow),
        serde_json::json!({ "n": 1 }).as_object().cloned().unwrap(),
    );
    let id = new.id;
    engine.submit(new, Ack::Receipt).unwrap().wait().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    engine.kill(id).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ended.0.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    engine.shutdown();
    let (engine, _, recovery) = start(dir.path(), &flow);
    assert_eq!(recovery.resumed, 0);
    assert_eq!(recovery.finished, 1);
    let read = engine.read(id).unwrap().wait().unwrap().expect("kept");
    assert_eq!(read.record.state(), State::Killed);
    engine.shutdown();
}

#[test]
fn an_execution_whose_flow_is_gone_is_reported_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let flow = revision();
    let (engine, _, _) = start(dir.path(), &flow);
    let new = NewExecution::new(
        Arc::clone(&flow),
        serde_json::json!({ "n": 1 }).as_object().cloned().unwrap(),
    );
    let started = engine.submit(new, Ack::Receipt).unwrap().wait().unwrap();
    started.receipt.wait().unwrap();
    engine.shutdown();
    let ended = Arc::new(Ended::default());
    let (engine, recovery) = Engine::start_durable(
        config(),
        ended,
        dir.path(),
        wal_config(),
        &|_: &str, _: &str, _: u32| None,
    )
    .unwrap();
    assert_eq!(recovery.resumed, 0);
    assert_eq!(recovery.failed.len(), 1);
    let why = recovery.failed[0].1.to_string();
    assert!(why.contains("is gone"), "{why}");
    engine.shutdown();
}

/// The flight recorder of the shard that owns `id`, as two deaths of the
/// process while it worked on `id` would leave it.
fn die_twice_working_on(dir: &std::path::Path, shard: usize, id: ExecutionId) {
    let raw = id.as_u128();
    let path = dir.join(format!("shard-{shard}")).join("stepping");
    for _ in 0..2 {
        let (mut recorder, _) = peregrine_wal::Blackbox::open(&path).unwrap();
        recorder.set(raw);
        // The process dies here: the mapping keeps what it was doing.
        drop(recorder);
    }
}

#[test]
fn an_execution_the_process_died_on_twice_in_a_row_is_failed_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let flow = revision();
    let (engine, _, _) = start(dir.path(), &flow);
    let mut ids = Vec::new();
    for n in 0..4 {
        let new = NewExecution::new(
            Arc::clone(&flow),
            serde_json::json!({ "n": n }).as_object().cloned().unwrap(),
        );
        ids.push(new.id);
        let started = engine.submit(new, Ack::Receipt).unwrap();
        started.wait().unwrap().receipt.wait().unwrap();
    }
    let poison = ids[0];
    let shard = engine.shard_of(poison);
    engine.shutdown();
    die_twice_working_on(dir.path(), shard, poison);

    let (engine, ended, recovery) = start(dir.path(), &flow);
    assert_eq!(recovery.quarantined, vec![poison]);
    assert_eq!(recovery.resumed, 3, "the others resume");
    let deadline = Instant::now() + Duration::from_secs(20);
    while ended.0.lock().unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "not all ended");
        std::thread::sleep(Duration::from_millis(10));
    }
    for (id, state, json) in ended.0.lock().unwrap().iter() {
        if *id == poison {
            assert_eq!(*state, State::Failed);
            let logs = json["logs"].to_string() + &json.to_string();
            assert!(logs.contains("died twice in a row"), "{json}");
            // Nothing of it ran again: no task run.
            assert_eq!(json["taskRunList"].as_array().map_or(0, Vec::len), 0);
        } else {
            assert_eq!(*state, State::Success);
        }
    }
    while engine.running() > 0 {
        assert!(Instant::now() < deadline, "still counted running");
        std::thread::sleep(Duration::from_millis(10));
    }
    engine.shutdown();
    // It stays failed, and a clean stop ends the strike run.
    let (engine, _, recovery) = start(dir.path(), &flow);
    assert!(recovery.quarantined.is_empty());
    let read = engine.read(poison).unwrap().wait().unwrap().unwrap();
    assert_eq!(read.record.state(), State::Failed);
    engine.shutdown();
}

const NAPS: &str = r#"
id: naps
namespace: tests
tasks:
  - id: short
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.1S
  - id: long
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1H
"#;

/// The record frames of a WAL segment file (`wal/FORMAT.md`): (offset, key id).
fn records(segment: &std::path::Path) -> Vec<(u64, u128)> {
    let bytes = std::fs::read(segment).unwrap();
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut out = Vec::new();
    let mut at = 64;
    while at + 32 <= bytes.len() {
        match word(at) {
            0xFFFF_FFFF => at += 32,
            0xFFFF_FFFE | 0 => break,
            len => {
                out.push((
                    at as u64,
                    u128::from_le_bytes(bytes[at + 16..at + 32].try_into().unwrap()),
                ));
                at += (32 + len as usize).div_ceil(16) * 16;
            }
        }
    }
    out
}

#[test]
fn executions_that_lost_records_to_skipped_damage_are_reported_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let flow = Arc::new(FlowRevision::new(Arc::new(Flow::parse(NAPS).unwrap())));
    let start = |wal: peregrine_wal::Config| {
        let flow = Arc::clone(&flow);
        let resolve = move |ns: &str, id: &str, _: u32| {
            (ns == "tests" && id == "naps").then(|| Arc::clone(&flow))
        };
        Engine::start_durable(
            config(),
            Arc::new(Ended::default()),
            dir.path(),
            wal,
            &resolve,
        )
    };
    let (engine, _) = start(wal_config()).unwrap();
    let mut pending = Vec::new();
    for _ in 0..12 {
        let new = NewExecution::new(Arc::clone(&flow), serde_json::Map::new());
        pending.push((new.id, engine.submit(new, Ack::Receipt).unwrap()));
    }
    // The short sleep ends and its timer is journaled (durably); the long
    // one holds.
    for (id, started) in pending {
        started.wait().unwrap().receipt.wait().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let seen = engine.read(id).unwrap().wait().unwrap().unwrap();
            let json = seen.record.to_json(chrono::Utc::now());
            if json["taskRunList"].as_array().is_some_and(|t| t.len() == 2) {
                seen.receipt.wait().unwrap();
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the short sleep never ended"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    engine.shutdown();

    // In one shard, two executions with two records each (creation, timer):
    // damage the creation of one and the timer of the other.
    let segment = dir.path().join("shard-0/00000000000000000001.wal");
    let recs = records(&segment);
    let mut twice: Vec<u128> = Vec::new();
    for (_, id) in &recs {
        if recs.iter().filter(|(_, i)| i == id).count() == 2 && !twice.contains(id) {
            twice.push(*id);
        }
    }
    assert!(twice.len() >= 2, "{recs:?}");
    let (no_start, no_timer) = (twice[0], twice[1]);
    let first_of = |id: u128| recs.iter().find(|(_, i)| *i == id).unwrap().0;
    let last_of = |id: u128| recs.iter().rev().find(|(_, i)| *i == id).unwrap().0;
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[first_of(no_start) as usize + 40] ^= 1;
    bytes[last_of(no_timer) as usize + 40] ^= 1;
    std::fs::write(&segment, bytes).unwrap();

    let Err(peregrine_engine::Error::Wal(peregrine_wal::Error::Damaged { path, .. })) =
        start(wal_config())
    else {
        panic!("damage must stop the start");
    };
    assert!(
        path.ends_with("shard-0/00000000000000000001.wal"),
        "{path:?}"
    );

    let skip = peregrine_wal::Config {
        skip_damaged: true,
        ..wal_config()
    };
    let (engine, recovery) = start(skip).unwrap();
    let mut damaged: Vec<(ExecutionId, String)> = recovery
        .damaged
        .iter()
        .map(|d| {
            assert!(d.path.ends_with("shard-0/00000000000000000001.wal"));
            (d.id, format!("{:?}", d.left))
        })
        .collect();
    damaged.sort();
    let mut want = vec![
        (
            ExecutionId::from_u128(no_start),
            format!(
                "{:?}",
                peregrine_engine::Left::Unrecoverable(peregrine_engine::Unrecoverable::Restore(
                    peregrine_engine::RestoreError::NoCreation
                ))
            ),
        ),
        (
            ExecutionId::from_u128(no_timer),
            format!("{:?}", peregrine_engine::Left::Resumed),
        ),
    ];
    want.sort();
    assert_eq!(damaged, want);
    assert!(recovery.failed.is_empty(), "{:?}", recovery.failed);
    assert_eq!(recovery.resumed, 11, "every other execution resumes");
    engine.shutdown();
}

/// A task's timeout is counted from its attempt's start, across a restart:
/// the replayed attempt keeps its deadline, and the journal says it timed
/// out, so a second restart shows the same end.
#[test]
fn a_timeout_keeps_its_deadline_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let flow = Arc::new(FlowRevision::new(Arc::new(
        Flow::parse(
            "id: nap\nnamespace: tests\ntasks:\n  - id: long\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT1H\n    timeout: PT1.5S\n",
        )
        .unwrap(),
    )));
    let (engine, _, _) = start(dir.path(), &flow);
    let new = NewExecution::new(Arc::clone(&flow), serde_json::Map::new());
    let id = new.id;
    let submitted = Instant::now();
    engine
        .submit(new, Ack::Receipt)
        .unwrap()
        .wait()
        .unwrap()
        .receipt
        .wait()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_000));
    engine.shutdown();

    let (engine, ended, recovery) = start(dir.path(), &flow);
    assert_eq!(recovery.resumed, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while ended.0.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "it never timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = submitted.elapsed();
    assert!(
        took >= Duration::from_millis(1_500) && took < Duration::from_secs(10),
        "timed out {took:?} after it started"
    );
    let (_, state, json) = ended.0.lock().unwrap()[0].clone();
    assert_eq!(state, State::Failed);
    let end_date = json["state"]["endDate"].as_str().unwrap().to_owned();
    // Timed out 1.5 s into its attempt, not 1.5 s after the restart (which
    // came a second in).
    let date =
        |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let attempt = &json["taskRunList"][0]["attempts"][0]["state"];
    let ran = date(&attempt["endDate"]) - date(&attempt["startDate"]);
    assert!(
        ran >= chrono::Duration::milliseconds(1_500) && ran < chrono::Duration::milliseconds(2_200),
        "the attempt ran {ran:?}"
    );
    engine
        .read(id)
        .unwrap()
        .wait()
        .unwrap()
        .unwrap()
        .receipt
        .wait()
        .unwrap();
    engine.shutdown();

    let (engine, _, recovery) = start(dir.path(), &flow);
    assert_eq!((recovery.resumed, recovery.finished), (0, 1));
    let read = engine.read(id).unwrap().wait().unwrap().unwrap();
    let again = read.record.to_json(chrono::Utc::now());
    assert_eq!(again["state"]["current"], "FAILED");
    assert_eq!(again["state"]["endDate"], end_date.as_str());
    engine.shutdown();
}

const APPROVAL: &str = r#"
id: nap
namespace: tests
tasks:
  - id: before
    type: io.kestra.plugin.core.debug.Return
    format: asked
  - id: approval
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
      - id: reason
        type: STRING
        defaults: none given
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.approval.onResume.approved }} {{ outputs.approval.onResume.reason }}"
"#;

/// A paused execution stays PAUSED across a restart, is resumed there with
/// its `onResume` inputs checked like flow inputs, and goes on; the resume
/// is journaled, so a second restart shows the same end.
#[test]
fn a_paused_execution_survives_a_restart_and_is_resumed_with_checked_inputs() {
    use peregrine_engine::ResumeOutcome;
    let dir = tempfile::tempdir().unwrap();
    let flow = Arc::new(FlowRevision::new(Arc::new(Flow::parse(APPROVAL).unwrap())));
    let (engine, _, _) = start(dir.path(), &flow);
    let new = NewExecution::new(Arc::clone(&flow), serde_json::Map::new());
    let id = new.id;
    let started = engine.submit(new, Ack::Snapshot).unwrap().wait().unwrap();
    started.receipt.wait().unwrap();
    assert_eq!(started.snapshot.unwrap().state(), State::Paused);
    engine.shutdown();

    let (engine, ended, recovery) = start(dir.path(), &flow);
    assert_eq!(recovery.resumed, 1);
    let read = engine.read(id).unwrap().wait().unwrap().unwrap();
    assert_eq!(read.record.state(), State::Paused, "still paused");
    let resume = |inputs: serde_json::Value| {
        engine
            .resume(id, inputs.as_object().cloned().unwrap())
            .unwrap()
            .wait()
            .unwrap()
    };
    match resume(serde_json::json!({"approved": "perhaps"})) {
        ResumeOutcome::Invalid(why) => assert!(why.contains("approved"), "{why}"),
        other => panic!("not checked: {other:?}"),
    }
    match resume(serde_json::json!({"approved": true})) {
        ResumeOutcome::Resumed(receipt) => receipt.wait().unwrap(),
        other => panic!("not resumed: {other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while ended.0.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "it never ended");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (_, state, json) = ended.0.lock().unwrap()[0].clone();
    assert_eq!(state, State::Success, "{json:#}");
    let runs = json["taskRunList"].as_array().unwrap();
    assert_eq!(runs[1]["outputs"]["onResume"]["approved"], true);
    assert_eq!(runs[2]["outputs"]["value"], "true none given");
    let pause_states: Vec<&str> = runs[1]["state"]["histories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        pause_states,
        ["CREATED", "RUNNING", "PAUSED", "RUNNING", "SUCCESS"]
    );
    // Once ended, there is nothing to resume.
    engine
        .read(id)
        .unwrap()
        .wait()
        .unwrap()
        .unwrap()
        .receipt
        .wait()
        .unwrap();
    assert!(matches!(
        resume(serde_json::json!({"approved": true})),
        ResumeOutcome::NotPaused(State::Success)
    ));
    engine.shutdown();

    let (engine, _, recovery) = start(dir.path(), &flow);
    assert_eq!((recovery.resumed, recovery.finished), (0, 1));
    let again = engine.read(id).unwrap().wait().unwrap().unwrap();
    assert_eq!(
        again.record.to_json(chrono::Utc::now())["taskRunList"],
        json["taskRunList"]
    );
    engine.shutdown();
}

#[test]
fn a_deleted_execution_is_gone_and_stays_gone_after_a_restart_and_a_running_one_is_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let flow = revision();
    let (engine, ended, _) = start(dir.path(), &flow);
    let mut ids = Vec::new();
    for n in 0..2 {
        let new = NewExecution::new(
            Arc::clone(&flow),
            serde_json::json!({ "n": n }).as_object().cloned().unwrap(),
        );
        ids.push(new.id);
        let started = engine.submit(new, Ack::Receipt).unwrap().wait().unwrap();
        started.receipt.wait().unwrap();
    }
    let delete = |engine: &Engine, id: ExecutionId| {
        let mut outcome = (Vec::new(), Vec::new());
        for pending in engine.delete(vec![id]).unwrap() {
            let d = pending.wait().unwrap();
            d.receipt.wait().unwrap();
            outcome.0.extend(d.deleted);
            outcome.1.extend(d.running);
        }
        outcome
    };
    // Asleep: not deleted.
    assert_eq!(delete(&engine, ids[0]), (vec![], vec![ids[0]]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while ended.0.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "they did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(delete(&engine, ids[0]), (vec![ids[0]], vec![]));
    assert!(engine.read(ids[0]).unwrap().wait().unwrap().is_none());
    assert!(
        engine.read_retained(ids[0]).unwrap().is_none(),
        "nor on disk"
    );
    assert!(engine.read(ids[1]).unwrap().wait().unwrap().is_some());
    engine.shutdown();

    let (engine, _, recovery) = start(dir.path(), &flow);
    assert_eq!(recovery.finished, 1, "only the other comes back");
    assert!(engine.read(ids[0]).unwrap().wait().unwrap().is_none());
    assert!(engine.read_retained(ids[0]).unwrap().is_none());
    let page = engine
        .search(Filter::default(), 1, 100)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(page.total, 1);
    engine.shutdown();
}
