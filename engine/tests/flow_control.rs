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

/// A task that outlives its `timeout` fails (Kestra:
/// `TimeoutExceededException`, "Timeout after 00:00:00.200"), attempt
/// included, and the execution with it.
#[test]
fn a_task_past_its_timeout_fails() {
    let started = std::time::Instant::now();
    let e = common::run_source(
        r#"
id: slow
namespace: tests
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
    timeout: PT0.2S
  - id: never
    type: io.kestra.plugin.core.debug.Return
    format: x
"#,
        serde_json::Value::Null,
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(e.state(), State::Failed);
    let nap = e.task_runs_of("nap").next().unwrap();
    assert_eq!(nap.state(), State::Failed);
    assert_eq!(nap.attempts().len(), 1);
    assert_eq!(nap.attempts()[0].state().current(), State::Failed);
    assert!(e.task_runs_of("never").next().is_none());
    let messages: Vec<&str> = e
        .logs()
        .entries()
        .iter()
        .map(|l| l.message.as_str())
        .collect();
    assert!(
        messages.contains(&"Timeout after 00:00:00.200"),
        "{messages:?}"
    );
}

/// A timed-out attempt is retried like any failed one, and the timer of the
/// attempt it replaced cannot end the new one: the first attempt's sleep is
/// due at 0.3 s, inside the second attempt, which must still time out.
#[test]
fn a_timed_out_attempt_is_retried_and_its_old_timer_is_stale() {
    let e = common::run_source(
        r#"
id: retried
namespace: tests
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.3S
    timeout: PT0.2S
    retry:
      type: constant
      interval: PT0.05S
      maxAttempt: 2
"#,
        serde_json::Value::Null,
    );
    assert_eq!(e.state(), State::Failed);
    let nap = e.task_runs_of("nap").next().unwrap();
    let states: Vec<State> = nap.attempts().iter().map(|a| a.state().current()).collect();
    assert_eq!(states, [State::Failed, State::Failed]);

    // Within its timeout, a task ends as it would without one.
    let e = common::run_source(
        r#"
id: quick
namespace: tests
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.05S
    timeout: PT5S
"#,
        serde_json::Value::Null,
    );
    assert_eq!(e.state(), State::Success);
}

/// A Pause with a timeout and no delay fails when no one resumes it; with
/// `pauseDuration` (the newer name of `delay`) it goes on by itself, its
/// `tasks` after it.
#[test]
fn a_pause_times_out_or_goes_on_after_its_duration() {
    let e = common::run_source(
        r#"
id: waits
namespace: tests
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    timeout: PT0.1S
"#,
        serde_json::Value::Null,
    );
    assert_eq!(e.state(), State::Failed);
    let wait = e.task_runs_of("wait").next().unwrap();
    let states: Vec<State> = wait.history().histories().iter().map(|h| h.state).collect();
    assert_eq!(
        states,
        [
            State::Created,
            State::Running,
            State::Paused,
            State::Running,
            State::Failed
        ]
    );
    let messages: Vec<&str> = e
        .logs()
        .entries()
        .iter()
        .map(|l| l.message.as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("timed out after PT0.1S")),
        "{messages:?}"
    );

    let e = common::run_source(
        r#"
id: waits
namespace: tests
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: PT0.1S
    behavior: RESUME
    tasks:
      - id: inside
        type: io.kestra.plugin.core.debug.Return
        format: x
"#,
        serde_json::Value::Null,
    );
    assert_eq!(e.state(), State::Success);
    assert_eq!(e.task_runs().len(), 2);
    let execution: Vec<State> = e.history().histories().iter().map(|h| h.state).collect();
    assert_eq!(
        execution,
        [
            State::Created,
            State::Running,
            State::Paused,
            State::Running,
            State::Success
        ]
    );
}

/// Kestra's `Pause.behavior`, applied when `pauseDuration` passes (a resume
/// through the API always just resumes): RESUME goes on, WARN ends the
/// Pause WARNING and goes on, FAIL fails it, CANCEL cancels the execution.
#[test]
fn a_pause_behavior_decides_what_its_duration_passing_does() {
    let flow = |behavior: &str| {
        format!(
            r#"
id: paused
namespace: tests
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: PT0.05S
    behavior: {behavior}
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: after
"#
        )
    };
    let state_of = |e: &peregrine_engine::Execution, id: &str| {
        e.task_runs()
            .iter()
            .find(|t| t.task_id() == id)
            .map(|t| t.state())
    };
    for (behavior, execution, pause, after) in [
        (
            "RESUME",
            State::Success,
            Some(State::Success),
            Some(State::Success),
        ),
        (
            "WARN",
            State::Warning,
            Some(State::Warning),
            Some(State::Success),
        ),
        ("FAIL", State::Failed, Some(State::Failed), None),
        ("CANCEL", State::Cancelled, Some(State::Cancelled), None),
        (
            "\"{{ 'WA' ~ 'RN' }}\"",
            State::Warning,
            Some(State::Warning),
            Some(State::Success),
        ),
    ] {
        let e = common::run_source(&flow(behavior), serde_json::Value::Null);
        assert_eq!(e.state(), execution, "{behavior}");
        assert_eq!(state_of(&e, "wait"), pause, "{behavior}");
        assert_eq!(state_of(&e, "after"), after, "{behavior}");
    }
    let err = peregrine_engine::flow::Flow::parse(
        "id: f\nnamespace: tests\ntasks:\n  - id: wait\n    type: io.kestra.plugin.core.flow.Pause\n    pauseDuration: PT1S\n    behavior: LATER\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("tasks[0].behavior") && err.contains("`LATER` is not a Pause behavior"),
        "{err}"
    );
}
