//! Kestra's flow control beyond its own test flows: which retry applies to
//! a failed task, and task timeouts. The rules and their sources are in
//! `KESTRA_SEMANTICS.md`.

mod common;

use peregrine_engine::{Execution, State};

fn attempts(e: &Execution, task_id: &str) -> usize {
    e.task_runs_of(task_id)
        .next()
        .unwrap_or_else(|| panic!("no task run of {task_id}"))
        .attempts()
        .len()
}

/// A failed runnable task runs again under its own retry, else its nearest
/// flowable ancestor's, else the flow's (Kestra's
/// `ExecutorService.handleChildWorkerTaskResult`).
#[test]
fn the_nearest_retry_applies_own_then_flowable_ancestor_then_flow() {
    let e = common::run_source(
        r#"
id: retries
namespace: tests
retry:
  type: constant
  interval: PT0.01S
  maxAttempt: 2
tasks:
  - id: top
    type: io.kestra.plugin.core.execution.Fail
    allowFailure: true
  - id: outer
    type: io.kestra.plugin.core.flow.Sequential
    allowFailure: true
    retry:
      type: constant
      interval: PT0.01S
      maxAttempt: 3
    tasks:
      - id: own
        type: io.kestra.plugin.core.execution.Fail
        allowFailure: true
        retry:
          type: constant
          interval: PT0.01S
          maxAttempt: 5
      - id: inner
        type: io.kestra.plugin.core.flow.Parallel
        tasks:
          - id: deep
            type: io.kestra.plugin.core.execution.Fail
  - id: noop
    type: io.kestra.plugin.core.debug.Return
    format: x
  - id: handled
    type: io.kestra.plugin.core.flow.Sequential
    allowFailure: true
    tasks:
      - id: boom
        type: io.kestra.plugin.core.execution.Fail
    errors:
      - id: in-errors
        type: io.kestra.plugin.core.execution.Fail
        allowFailure: true
"#,
        serde_json::Value::Null,
    );
    assert_eq!(attempts(&e, "top"), 2, "the flow's retry");
    assert_eq!(attempts(&e, "deep"), 3, "the nearest flowable ancestor's");
    assert_eq!(attempts(&e, "own"), 5, "its own");
    assert_eq!(attempts(&e, "noop"), 1, "a success runs once");
    assert_eq!(
        attempts(&e, "boom"),
        2,
        "no flowable retry above: the flow's"
    );
    assert_eq!(attempts(&e, "in-errors"), 2, "in `errors` too");
    for id in ["top", "deep", "own", "boom", "in-errors"] {
        let run = e.task_runs_of(id).next().unwrap();
        assert!(
            run.attempts()
                .iter()
                .all(|a| a.state().current() == State::Failed),
            "{id}: every attempt failed"
        );
    }
    // The flowables themselves have no attempts to retry.
    assert_eq!(attempts(&e, "outer"), 0);
    assert_eq!(e.state(), State::Warning);
}
