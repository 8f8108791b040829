//! A flow's `concurrency`, as Kestra's `checkConcurrencyLimit` and the
//! executor's queue handle it: past `limit` running (or paused) executions
//! one more waits QUEUED and starts when one ends, oldest first; or ends
//! CANCELLED, or FAILED. Executions of a flow hash to every shard: the
//! limit holds across them, and across a restart.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use peregrine_engine::flow::Flow;
use peregrine_engine::{Engine, ExecutionId, KillOutcome};
use serde_json::{Value, json};

mod common;

use common::{Ended, MapFlows, durable, engine, submit};

fn napping(limit: u32, behavior: &str, nap: &str) -> String {
    format!(
        r#"
id: limited
namespace: tests
concurrency:
  limit: {limit}
  behavior: {behavior}
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: {nap}
"#
    )
}

fn wait_all(ended: &Ended, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = ended.0.lock().unwrap().clone();
        if all.len() >= n {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} ended: {:#?}",
            all.len(),
            all.iter()
                .map(|e| (e["id"].clone(), states(e)))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn states(execution: &Value) -> Vec<&str> {
    execution["state"]["histories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect()
}

fn date_of(execution: &Value, state: &str) -> DateTime<Utc> {
    let history = execution["state"]["histories"].as_array().unwrap();
    let date = history
        .iter()
        .find(|h| h["state"] == state)
        .and_then(|h| h["date"].as_str())
        .unwrap_or_else(|| panic!("no {state} in {execution:#}"));
    DateTime::parse_from_rfc3339(date)
        .unwrap()
        .with_timezone(&Utc)
}

/// Runs never overlap more than `limit` at once: checked from the RUNNING
/// and end dates each execution shows.
fn most_at_once(executions: &[Value]) -> usize {
    let mut events: Vec<(DateTime<Utc>, i32)> = Vec::new();
    for e in executions {
        if states(e).contains(&"RUNNING") {
            events.push((date_of(e, "RUNNING"), 1));
            let end = e["state"]["endDate"].as_str().unwrap();
            let end = DateTime::parse_from_rfc3339(end)
                .unwrap()
                .with_timezone(&Utc);
            events.push((end, -1));
        }
    }
    // An end and a start at the same millisecond: the end came first.
    events.sort_by_key(|&(at, delta)| (at, delta));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, delta) in events {
        now += delta;
        most = most.max(now);
    }
    most as usize
}

fn read(engine: &Engine, id: ExecutionId) -> Value {
    let snapshot = engine.read(id).unwrap().wait().unwrap().unwrap();
    snapshot.record.to_json(Utc::now())
}

fn wait_state(engine: &Engine, id: ExecutionId, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let json = read(engine, id);
        if json["state"]["current"] == state {
            return json;
        }
        assert!(Instant::now() < deadline, "{id} never {state}: {json:#}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn past_the_limit_executions_queue_and_start_one_at_a_time_oldest_first() {
    let flows = Arc::new(MapFlows::default());
    let rev = flows.add(&napping(1, "QUEUE", "PT0.5S"));
    let (engine, ended) = engine(&flows);
    // The first runs; the others, created one after the other, wait.
    let mut ids = vec![submit(&engine, &rev, json!({}))];
    wait_state(&engine, ids[0], "RUNNING");
    ids.extend((0..3).map(|_| submit(&engine, &rev, json!({}))));
    for id in &ids[1..] {
        let queued = wait_state(&engine, *id, "QUEUED");
        assert_eq!(states(&queued), ["CREATED", "QUEUED"]);
    }
    let all = wait_all(&ended, 4);
    assert_eq!(most_at_once(&all), 1, "{all:#?}");
    let by_id = |id: ExecutionId| {
        all.iter()
            .find(|e| e["id"] == id.to_string())
            .unwrap()
            .clone()
    };
    for id in &ids[1..] {
        let e = by_id(*id);
        assert_eq!(states(&e), ["CREATED", "QUEUED", "RUNNING", "SUCCESS"]);
    }
    // Oldest first: each started after the one submitted before it.
    for pair in ids.windows(2) {
        assert!(date_of(&by_id(pair[0]), "RUNNING") <= date_of(&by_id(pair[1]), "RUNNING"));
    }
    let logs = ended.1.lock().unwrap().clone();
    assert!(
        logs.iter().any(|(id, line)| *id == ids[1]
            && line == "Flow is queued due to concurrency limit exceeded, 1 running(s)"),
        "{logs:?}"
    );
    engine.shutdown();
}

#[test]
fn a_limit_of_two_runs_two_at_once() {
    let flows = Arc::new(MapFlows::default());
    let rev = flows.add(&napping(2, "QUEUE", "PT0.5S"));
    let (engine, ended) = engine(&flows);
    for _ in 0..6 {
        submit(&engine, &rev, json!({}));
    }
    let all = wait_all(&ended, 6);
    assert_eq!(most_at_once(&all), 2, "{all:#?}");
    assert!(all.iter().all(|e| e["state"]["current"] == "SUCCESS"));
    engine.shutdown();
}

#[test]
fn past_the_limit_cancel_and_fail_end_the_newcomer_at_once() {
    for (behavior, state) in [("CANCEL", "CANCELLED"), ("FAIL", "FAILED")] {
        let flows = Arc::new(MapFlows::default());
        let rev = flows.add(&napping(1, behavior, "PT1S"));
        let (engine, ended) = engine(&flows);
        let first = submit(&engine, &rev, json!({}));
        wait_state(&engine, first, "RUNNING");
        let second = submit(&engine, &rev, json!({}));
        let refused = wait_state(&engine, second, state);
        assert_eq!(states(&refused), ["CREATED", state]);
        assert!(refused["taskRunList"].as_array().is_none_or(Vec::is_empty));
        wait_state(&engine, first, "SUCCESS");
        // Room again: the next one runs.
        let third = submit(&engine, &rev, json!({}));
        wait_state(&engine, third, "SUCCESS");
        if behavior == "FAIL" {
            let logs = ended.1.lock().unwrap().clone();
            assert!(
                logs.iter().any(|(id, line)| *id == second
                    && line == "Flow is FAILED due to concurrency limit exceeded"),
                "{logs:?}"
            );
        }
        engine.shutdown();
    }
}

#[test]
fn a_queued_execution_killed_leaves_the_queue() {
    let flows = Arc::new(MapFlows::default());
    let rev = flows.add(&napping(1, "QUEUE", "PT1S"));
    let (engine, ended) = engine(&flows);
    let first = submit(&engine, &rev, json!({}));
    wait_state(&engine, first, "RUNNING");
    let second = submit(&engine, &rev, json!({}));
    let third = submit(&engine, &rev, json!({}));
    wait_state(&engine, second, "QUEUED");
    let killed = engine.kill_with(second, true).unwrap().wait().unwrap();
    assert!(matches!(killed, KillOutcome::Killed(_)), "{killed:?}");
    wait_state(&engine, second, "KILLED");
    wait_state(&engine, first, "SUCCESS");
    let last = wait_state(&engine, third, "SUCCESS");
    assert_eq!(states(&last), ["CREATED", "QUEUED", "RUNNING", "SUCCESS"]);
    assert_eq!(wait_all(&ended, 3).len(), 3);
    engine.shutdown();
}

#[test]
fn the_queue_and_the_limit_survive_a_restart() {
    let flows = Arc::new(MapFlows::default());
    let rev = flows.add(&napping(1, "QUEUE", "PT0.4S"));
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = durable(dir.path(), &flows);
    let mut ids = vec![submit(&engine, &rev, json!({}))];
    wait_state(&engine, ids[0], "RUNNING");
    ids.extend((0..3).map(|_| submit(&engine, &rev, json!({}))));
    wait_state(&engine, ids[3], "QUEUED");
    engine.shutdown();

    // Each ends, read back whether it ended before the stop or after.
    let (engine, _) = durable(dir.path(), &flows);
    let all: Vec<Value> = ids
        .iter()
        .map(|id| wait_state(&engine, *id, "SUCCESS"))
        .collect();
    assert_eq!(most_at_once(&all), 1, "{all:#?}");
    let started: Vec<DateTime<Utc>> = all.iter().map(|e| date_of(e, "RUNNING")).collect();
    assert!(started.windows(2).all(|w| w[0] <= w[1]), "{started:?}");
    engine.shutdown();
}

#[test]
fn a_bad_concurrency_is_refused_with_its_path() {
    let bad = |concurrency: &str| {
        let yaml = format!(
            "id: f\nnamespace: tests\nconcurrency:\n{concurrency}\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n"
        );
        Flow::parse(&yaml).unwrap_err().to_string()
    };
    assert!(
        bad("  limit: 0").contains("concurrency.limit"),
        "{}",
        bad("  limit: 0")
    );
    let e = bad("  limit: 1\n  behavior: LATER");
    assert!(e.contains("`LATER` is not a concurrency behavior"), "{e}");
    let e = bad("  behavior: QUEUE");
    assert!(e.contains("concurrency.limit"), "{e}");
    let e = bad("  limit: 1\n  every: day");
    assert!(e.contains("concurrency.every"), "{e}");
}
