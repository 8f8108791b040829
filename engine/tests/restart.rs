//! Restart and replay of ended executions, as Kestra's `ExecutionService`
//! does them (its `RestartCaseTest` flows): a restart runs the failed task
//! runs again under the same id, keeping what succeeded; a replay starts a
//! new execution from one task run, keeping what came before it. Both
//! survive a restart of the engine.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::{
    Engine, ExecutionId, ReplayError, ReplayFrom, RestartOutcome, State, TaskRunId,
};
use serde_json::{Value, json};

mod common;

use common::{Ended, MapFlows, durable, engine, submit, task_run};

/// Kestra's `restart_last_failed`: `c` fails on its first attempt only.
const LAST_FAILED: &str = r#"
id: restart_last_failed
namespace: tests
tasks:
- id: a
  type: io.kestra.plugin.core.log.Log
  message: "{{ task.id }}"
- id: b
  type: io.kestra.plugin.core.log.Log
  message: "{{ task.id }}"
- id: c
  type: io.kestra.plugin.core.log.Log
  message: "{{taskrun.attemptsCount == 1 ? 'ok' : ko}}"
- id: d
  type: io.kestra.plugin.core.log.Log
  message: "{{ task.id }}"
"#;

/// Kestra's `restart_local_errors`.
const LOCAL_ERRORS: &str = r#"
id: restart_local_errors
namespace: tests
tasks:
  - id: before
    type: io.kestra.plugin.core.log.Log
    message: I'm before
  - id: sequential
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
    - id: close
      type: io.kestra.plugin.core.log.Log
      message: I'm close to fail
    - id: failStep
      type: io.kestra.plugin.core.execution.Fail
    errors:
    - id: errorHandler
      type: io.kestra.plugin.core.log.Log
      message: I'm failing {{task.id}}
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: I'm after
"#;

/// A loop whose second value fails until it is restarted, then a last
/// task that shows what the loop made.
const LOOP: &str = r#"
id: loop
namespace: tests
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["x", "y", "z"]
    tasks:
      - id: item
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value == 'y' and taskrun.attemptsCount == 0 ? ko : taskrun.value }}"
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.item.x.value }}{{ outputs.item.y.value }}{{ outputs.item.z.value }}"
"#;

fn wait_ended(ended: &Ended, id: ExecutionId, times: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<Value> = ended
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["id"] == id.to_string())
            .cloned()
            .collect();
        if found.len() >= times {
            return found[times - 1].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{id} ended {} times",
            found.len()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn restart(engine: &Engine, id: ExecutionId) -> RestartOutcome {
    loop {
        match engine.restart(id).unwrap().wait().unwrap() {
            RestartOutcome::Stale => std::thread::sleep(Duration::from_millis(2)),
            other => return other,
        }
    }
}

fn record(engine: &Engine, id: ExecutionId) -> peregrine_engine::Record {
    engine.read(id).unwrap().wait().unwrap().unwrap().record
}

fn states(execution: &Value) -> Vec<String> {
    execution["state"]["histories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap().to_owned())
        .collect()
}

fn task_states(execution: &Value) -> Vec<(String, String)> {
    execution["taskRunList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["taskId"].as_str().unwrap().to_owned(),
                t["state"]["current"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_restart_runs_the_failed_task_again_under_the_same_id_and_keeps_the_rest() {
    let flows = Arc::new(MapFlows::default());
    let rev = flows.add(LAST_FAILED);
    let (engine, ended) = engine(&flows);
    let id = submit(&engine, &rev, json!({}));
    let first = wait_ended(&ended, id, 1);
    assert_eq!(first["state"]["current"], "FAILED");
    assert_eq!(task_states(&first).len(), 3);
    let RestartOutcome::Restarted(restarted) = restart(&engine, id) else {
        panic!("not restarted");
    };
    assert_eq!(restarted.record.id(), id);
    let done = wait_ended(&ended, id, 2);
    assert_eq!(done["state"]["current"], "SUCCESS", "{done:#}");
    assert_eq!(
        states(&done),
        [
            "CREATED",
            "RUNNING",
            "FAILED",
            "RESTARTED",
            "RUNNING",
            "SUCCESS"
        ]
    );
    assert_eq!(done["metadata"]["attemptNumber"], 2);
    let runs = task_states(&done);
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|(_, s)| s == "SUCCESS"), "{runs:?}");
    // The kept task runs are the ones that ran, untouched; the failed one
    // carries its history and first attempt on.
    for (i, task) in ["a", "b", "c"].into_iter().enumerate() {
        assert_eq!(done["taskRunList"][i]["id"], first["taskRunList"][i]["id"]);
        assert_eq!(done["taskRunList"][i]["taskId"], task);
    }
    assert_eq!(
        done["taskRunList"][0]["state"],
        first["taskRunList"][0]["state"]
    );
    let c = task_run(&done, "c");
    assert_eq!(c["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(
        states(c),
        [
            "CREATED",
            "RUNNING",
            "FAILED",
            "RESTARTED",
            "RUNNING",
            "SUCCESS"
        ]
    );
    // Restarting what succeeded finds nothing to restart.
    assert!(matches!(
        restart(&engine, id),
        RestartOutcome::Refused(why) if why == "No task found to restart execution from!"
    ));
}

#[test]
fn a_restart_drops_the_errors_branch_and_fails_again_when_the_task_does() {
    let flows = Arc::new(MapFlows::default());
    let rev = flows.add(LOCAL_ERRORS);
    let (engine, ended) = engine(&flows);
    let id = submit(&engine, &rev, json!({}));
    let first = wait_ended(&ended, id, 1);
    assert_eq!(first["state"]["current"], "FAILED");
    assert_eq!(task_states(&first).len(), 5, "{first:#}");
    let RestartOutcome::Restarted(restarted) = restart(&engine, id) else {
        panic!("not restarted");
    };
    assert_eq!(restarted.record.id(), id);
    // Kestra's restarted execution holds 4 task runs: the errors branch is
    // gone; the failed task and its Sequential run again (the handler then
    // runs again, once).
    let done = wait_ended(&ended, id, 2);
    assert_eq!(done["state"]["current"], "FAILED");
    assert_eq!(task_states(&done).len(), 5, "{done:#}");
    let fail = task_run(&done, "failStep");
    assert_eq!(fail["attempts"].as_array().unwrap().len(), 2);
    let seq = task_run(&done, "sequential");
    assert_eq!(
        states(seq),
        ["CREATED", "RUNNING", "FAILED", "RUNNING", "FAILED"]
    );
    // The handler ran again, once: the old run of it is gone.
    let handlers: Vec<_> = task_states(&done)
        .into_iter()
        .filter(|(t, _)| t == "errorHandler")
        .collect();
    assert_eq!(handlers.len(), 1);
    assert_eq!(
        task_run(&done, "before")["id"],
        task_run(&first, "before")["id"]
    );
}

#[test]
fn a_restart_inside_a_loop_reruns_only_the_failed_value() {
    let flows = Arc::new(MapFlows::default());
    let rev = flows.add(LOOP);
    let (engine, ended) = engine(&flows);
    let id = submit(&engine, &rev, json!({}));
    let first = wait_ended(&ended, id, 1);
    assert_eq!(first["state"]["current"], "FAILED");
    assert!(matches!(restart(&engine, id), RestartOutcome::Restarted(_)));
    let done = wait_ended(&ended, id, 2);
    assert_eq!(done["state"]["current"], "SUCCESS", "{done:#}");
    assert_eq!(task_run(&done, "last")["outputs"]["value"], "xyz");
    let items: Vec<&Value> = done["taskRunList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["taskId"] == "item")
        .collect();
    assert_eq!(items.len(), 3);
    for item in items {
        let attempts = item["attempts"].as_array().unwrap().len();
        let expected = if item["value"] == "y" { 2 } else { 1 };
        assert_eq!(attempts, expected, "{item:#}");
    }
}

#[test]
fn a_running_or_unknown_execution_is_not_restarted() {
    let flows = Arc::new(MapFlows::default());
    let rev = flows.add(
        r#"
id: slow
namespace: tests
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
"#,
    );
    let (engine, _ended) = engine(&flows);
    let id = submit(&engine, &rev, json!({}));
    assert!(matches!(
        restart(&engine, id),
        RestartOutcome::NotEnded(State::Running)
    ));
    assert!(matches!(
        restart(&engine, ExecutionId::generate()),
        RestartOutcome::NotFound
    ));
}

#[test]
fn a_replay_from_a_task_run_is_a_new_execution_that_keeps_what_came_before() {
    let flows = Arc::new(MapFlows::default());
    let rev = flows.add(
        LAST_FAILED
            .replace("taskrun.attemptsCount == 1 ? 'ok' : ko", "'ok'")
            .as_str(),
    );
    let (engine, ended) = engine(&flows);
    let id = submit(&engine, &rev, json!({}));
    let first = wait_ended(&ended, id, 1);
    assert_eq!(first["state"]["current"], "SUCCESS");
    let b: TaskRunId = task_run(&first, "b")["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let old = record(&engine, id);
    let started = engine
        .replay(&old, ReplayFrom::TaskRun(b), None)
        .unwrap()
        .wait()
        .unwrap();
    assert_ne!(started.id, id);
    let done = wait_ended(&ended, started.id, 1);
    assert_eq!(done["state"]["current"], "SUCCESS");
    assert_eq!(
        states(&done),
        [
            "CREATED",
            "RUNNING",
            "SUCCESS",
            "RESTARTED",
            "RUNNING",
            "SUCCESS"
        ]
    );
    let runs = task_states(&done);
    assert_eq!(runs.len(), 4);
    // `a` is kept as it was (a copy, with an id of its own); `b` runs again
    // and what followed it runs anew.
    let a = task_run(&done, "a");
    assert_ne!(a["id"], task_run(&first, "a")["id"]);
    assert_eq!(a["state"], task_run(&first, "a")["state"]);
    assert_eq!(
        states(task_run(&done, "b")),
        [
            "CREATED",
            "RUNNING",
            "SUCCESS",
            "RESTARTED",
            "RUNNING",
            "SUCCESS"
        ]
    );
    assert_eq!(
        states(task_run(&done, "c")),
        ["CREATED", "RUNNING", "SUCCESS"]
    );
    // The original is untouched.
    assert_eq!(
        record(&engine, id).to_json(chrono::Utc::now())["state"],
        first["state"]
    );
    // A replay from the start is a fresh run of the same inputs.
    let fresh = engine
        .replay(&old, ReplayFrom::Start, None)
        .unwrap()
        .wait()
        .unwrap();
    let fresh = wait_ended(&ended, fresh.id, 1);
    assert_eq!(states(&fresh), ["CREATED", "RUNNING", "SUCCESS"]);
    // Kestra's `childExecution`: the replayed one is its parent, of the
    // same original, an attempt more.
    assert_eq!(fresh["parentId"], id.to_string());
    assert_eq!(fresh["originalId"], first["originalId"]);
    assert_eq!(
        fresh["metadata"]["attemptNumber"],
        first["metadata"]["attemptNumber"].as_u64().unwrap() + 1
    );
    // An unknown task run, or a running execution, is refused.
    assert!(matches!(
        engine.replay(&old, ReplayFrom::TaskRun(TaskRunId::generate()), None),
        Err(ReplayError::Invalid(_))
    ));
}

#[test]
fn a_restarted_execution_stopped_midway_ends_once_after_the_engine_restarts() {
    let flows = Arc::new(MapFlows::default());
    // `c` fails first, then, restarted, sleeps: the engine stops meanwhile.
    let rev = flows.add(
        r#"
id: restart_then_sleep
namespace: tests
tasks:
- id: a
  type: io.kestra.plugin.core.log.Log
  message: a
- id: c
  type: io.kestra.plugin.core.debug.Return
  format: "{{taskrun.attemptsCount == 1 ? 'ok' : ko}}"
- id: nap
  type: io.kestra.plugin.core.flow.Sleep
  duration: PT0.5S
- id: d
  type: io.kestra.plugin.core.debug.Return
  format: "{{ outputs.c.value }}"
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let (engine, ended) = durable(dir.path(), &flows);
    let id = submit(&engine, &rev, json!({}));
    let first = wait_ended(&ended, id, 1);
    assert_eq!(first["state"]["current"], "FAILED");
    let RestartOutcome::Restarted(snapshot) = restart(&engine, id) else {
        panic!("not restarted");
    };
    snapshot.receipt.wait().unwrap();
    engine.shutdown();

    let (engine, ended) = durable(dir.path(), &flows);
    let done = wait_ended(&ended, id, 1);
    assert_eq!(done["state"]["current"], "SUCCESS", "{done:#}");
    assert_eq!(task_run(&done, "d")["outputs"]["value"], "ok");
    assert_eq!(
        task_run(&done, "c")["attempts"].as_array().unwrap().len(),
        2
    );
    assert_eq!(task_run(&done, "a")["id"], task_run(&first, "a")["id"]);
    engine.shutdown();

    // Ended, it is read back as it ended, and is not run a third time.
    let (engine, ended) = durable(dir.path(), &flows);
    let again = record(&engine, id).to_json(chrono::Utc::now());
    assert_eq!(again["state"], done["state"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(ended.0.lock().unwrap().is_empty());
    engine.shutdown();
}

#[test]
fn a_restarted_subflow_task_starts_a_new_child_of_its_own() {
    let flows = Arc::new(MapFlows::default());
    flows.add(
        r#"
id: child
namespace: tests
inputs:
  - id: n
    type: INT
tasks:
  - id: check
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.n > 0 ? 'fine' : ko }}"
"#,
    );
    let parent = flows.add(
        r#"
id: parent
namespace: tests
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: tests
    flowId: child
    inputs:
      n: "{{ taskrun.attemptsCount }}"
"#,
    );
    let (engine, ended) = engine(&flows);
    let id = submit(&engine, &parent, json!({}));
    let first = wait_ended(&ended, id, 1);
    assert_eq!(first["state"]["current"], "FAILED", "{first:#}");
    let first_child = task_run(&first, "call")["outputs"]["executionId"].clone();
    assert!(matches!(restart(&engine, id), RestartOutcome::Restarted(_)));
    let done = wait_ended(&ended, id, 2);
    assert_eq!(done["state"]["current"], "SUCCESS", "{done:#}");
    let call = task_run(&done, "call");
    assert_eq!(call["attempts"].as_array().unwrap().len(), 2);
    let second_child = call["outputs"]["executionId"].clone();
    assert_ne!(second_child, first_child);
    let child: ExecutionId = second_child.as_str().unwrap().parse().unwrap();
    let child = wait_ended(&ended, child, 1);
    assert_eq!(child["state"]["current"], "SUCCESS");
    assert_eq!(child["inputs"]["n"], 1);
    engine.shutdown();
}

/// WaitFor across a stop of the engine: the wait between two iterations
/// is a journaled timer, so the iterations go on after it, each once.
#[test]
fn a_wait_for_goes_on_after_the_engine_restarts_between_iterations() {
    let flows = Arc::new(MapFlows::default());
    let rev = flows.add(
        r#"
id: poll
namespace: tests
tasks:
  - id: until
    type: io.kestra.plugin.core.flow.WaitFor
    condition: "{{ outputs.probe.value == '3' }}"
    checkFrequency:
      interval: PT0.4S
    tasks:
      - id: probe
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.until.iterationCount + 1 }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.until.iterationCount }}"
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let (engine, _ended) = durable(dir.path(), &flows);
    let id = submit(&engine, &rev, json!({}));
    std::thread::sleep(Duration::from_millis(150));
    let midway = record(&engine, id).to_json(chrono::Utc::now());
    assert_eq!(midway["state"]["current"], "RUNNING", "{midway:#}");
    engine.shutdown();

    let (engine, ended) = durable(dir.path(), &flows);
    let done = wait_ended(&ended, id, 1);
    assert_eq!(done["state"]["current"], "SUCCESS", "{done:#}");
    assert_eq!(task_run(&done, "after")["outputs"]["value"], "3");
    let probes: Vec<&Value> = done["taskRunList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["taskId"] == "probe")
        .map(|t| &t["outputs"]["value"])
        .collect();
    assert_eq!(probes, ["1", "2", "3"]);
    engine.shutdown();
}

/// Kestra's `retry` with `behavior: CREATE_NEW_EXECUTION`: each failed
/// execution ends RETRIED and a new one (an attempt more of the original,
/// the failed one its parent, the same inputs and labels) runs the flow
/// after the delay, until `maxAttempt` executions have run; the last one
/// fails.
#[test]
fn a_retry_that_creates_a_new_execution_runs_the_flow_again_until_its_last_attempt() {
    let flows = Arc::new(MapFlows::default());
    let rev = flows.add(
        r#"
id: retried
namespace: tests
labels:
  team: core
retry:
  type: constant
  interval: PT0.1S
  maxAttempt: 3
  behavior: CREATE_NEW_EXECUTION
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.who ?? 'nobody' }}"
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
"#,
    );
    let (engine, ended) = engine(&flows);
    let id = submit(&engine, &rev, json!({"who": "me"}));
    let all = ended.wait_for(3);
    let by_attempt = |n: u64| {
        all.iter()
            .find(|e| e["metadata"]["attemptNumber"] == n)
            .unwrap_or_else(|| panic!("no attempt {n} in {all:#?}"))
            .clone()
    };
    let (one, two, three) = (by_attempt(1), by_attempt(2), by_attempt(3));
    assert_eq!(one["id"], id.to_string());
    for (e, state) in [(&one, "RETRIED"), (&two, "RETRIED"), (&three, "FAILED")] {
        assert_eq!(e["state"]["current"], state, "{e:#}");
        assert_eq!(e["originalId"], id.to_string());
        assert_eq!(e["inputs"]["who"], "me");
        assert_eq!(task_run(e, "first")["outputs"]["value"], "me");
        assert_eq!(
            common::label(e, "system.correlationId"),
            Some(id.to_string().as_str()),
            "one correlation for every attempt"
        );
        assert_eq!(common::label(e, "team"), Some("core"));
    }
    assert_eq!(task_run(&one, "boom")["state"]["current"], "RETRIED");
    assert_eq!(two["parentId"], one["id"]);
    assert_eq!(three["parentId"], two["id"]);
    assert_eq!(states(&two)[..2], ["CREATED", "RUNNING"]);
    // Each waited its delay after the one before it ended.
    let date = |e: &Value, state: &str| {
        let history = e["state"]["histories"].as_array().unwrap();
        let at = history
            .iter()
            .find(|h| h["state"] == state)
            .and_then(|h| h["date"].as_str())
            .unwrap();
        chrono::DateTime::parse_from_rfc3339(at).unwrap()
    };
    assert!(date(&two, "RUNNING") - date(&one, "RETRIED") >= chrono::Duration::milliseconds(90));
    assert_eq!(all.len(), 3, "no fourth attempt");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ended.0.lock().unwrap().len(), 3, "no fourth attempt");
    engine.shutdown();
}

/// A restart on another revision (`?revision=` in the API) is a new
/// execution that restarts the failed task runs and keeps the rest, with
/// ids of its own, the old one its parent; the old one is left as it was.
#[test]
fn a_restart_into_a_new_execution_keeps_what_succeeded_and_reruns_what_failed() {
    let flows = Arc::new(MapFlows::default());
    let rev = flows.add(LAST_FAILED);
    let (engine, ended) = engine(&flows);
    let id = submit(&engine, &rev, json!({}));
    let first = wait_ended(&ended, id, 1);
    assert_eq!(first["state"]["current"], "FAILED");
    let old = record(&engine, id);
    let started = engine
        .replay(&old, ReplayFrom::Failed, None)
        .unwrap()
        .wait()
        .unwrap();
    assert_ne!(started.id, id);
    let done = wait_ended(&ended, started.id, 1);
    assert_eq!(done["state"]["current"], "SUCCESS", "{done:#}");
    assert_eq!(done["parentId"], id.to_string());
    assert_eq!(done["metadata"]["attemptNumber"], 2);
    assert_eq!(task_states(&done).len(), 4);
    for task in ["a", "b"] {
        assert_ne!(task_run(&done, task)["id"], task_run(&first, task)["id"]);
        assert_eq!(
            task_run(&done, task)["state"],
            task_run(&first, task)["state"]
        );
    }
    assert_eq!(
        task_run(&done, "c")["attempts"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        record(&engine, id).state(),
        State::Failed,
        "the old one is untouched"
    );
    engine.shutdown();
}
