use super::*;
use crate::execution::{StateHistory, TaskRunId};

/// `s` seconds from now: the metrics of a run are recorded now.
fn at(s: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(s)
}

/// An execution whose script recorded a counter and a timer, and whose
/// second task recorded another counter.
fn measured() -> Execution {
    let exec = crate::tasks::testing::run(
        r#"
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - 'echo ''::{"metrics":[{"name":"rows","type":"counter","value":5,"tags":{"table":"t1","n":2}},{"name":"took","type":"timer","value":1.5}]}::'''
  - id: again
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - 'echo ''::{"metrics":[{"name":"rows","type":"counter","value":7}]}::'''
"#,
    );
    assert_eq!(exec.state(), State::Success, "{:?}", exec.logs());
    exec
}

fn names(metrics: &[Arc<MetricEntry>]) -> Vec<(&str, &str, f64)> {
    metrics
        .iter()
        .map(|m| (&*m.metric.task_id, m.metric.name.as_str(), m.metric.value))
        .collect()
}

fn open(dir: &std::path::Path, limits: MetricLimits) -> MetricStore {
    let base = peregrine_wal::Config {
        segment_bytes: std::num::NonZeroU64::new(4 << 20).expect("non-zero"),
        spare_segments: 0,
        ..peregrine_wal::Config::default()
    };
    let (wal, recovered) = Wal::open(dir, wal_config(base, &limits)).expect("opens");
    MetricStore::from_log(wal, &recovered, limits)
}

/// A metric of `task`, recorded at `date`, for the tests that build
/// executions by hand.
fn metric(task: &str, name: &str, value: f64, date: DateTime<Utc>) -> Metric {
    Metric {
        date,
        task_id: Arc::from(task),
        task_run: TaskRunId::from_u128(7),
        kind: MetricKind::Counter,
        name: name.to_owned(),
        value,
        tags: Vec::new(),
    }
}

#[test]
fn a_scripts_metrics_are_kept_once_as_kestra_shows_them_and_come_back_after_a_reopen() {
    let dir = tempfile::tempdir().expect("a dir");
    let mut exec = measured();
    let id = exec.id();
    let sh_run = exec.task_runs_of("sh").next().expect("sh ran").id;
    let first_json;
    {
        let store = open(dir.path(), MetricLimits::default());
        store.record(&exec, false, at(0));
        // Recorded again (a replay, another change): nothing doubles.
        store.record(&exec, true, at(0));
        let all = store.of_execution(id);
        assert_eq!(
            names(&all),
            [
                ("sh", "rows", 5.0),
                ("sh", "took", 1500.0),
                ("again", "rows", 7.0)
            ]
        );
        let json = all[0].json();
        assert_eq!(json["executionId"], id.to_string());
        assert_eq!(json["taskRunId"], sh_run.to_string());
        assert_eq!(json["namespace"], "tests");
        assert_eq!(json["flowId"], "t");
        assert_eq!(json["type"], "counter");
        assert_eq!(json["value"], 5.0);
        assert_eq!(json["tags"], json!({"table": "t1", "n": "2"}));
        assert_eq!(all[1].json()["type"], "timer");
        first_json = json;
        // A restart numbers its metrics anew: its first is kept.
        exec.state.transition(State::Restarted, at(1));
        exec.metrics = crate::execution::Metrics::default();
        exec.metrics.push(metric("sh", "after", 1.0, at(1)));
        store.record(&exec, false, at(1));
        assert_eq!(store.of_execution(id).len(), 4);
    }
    let store = open(dir.path(), MetricLimits::default());
    let back = store.of_execution(id);
    assert_eq!(
        names(&back),
        [
            ("sh", "rows", 5.0),
            ("sh", "took", 1500.0),
            ("again", "rows", 7.0),
            ("sh", "after", 1.0)
        ]
    );
    assert_eq!(back[0].json(), first_json, "read back as it was kept");
    assert_eq!(
        back[0].metric.tags,
        [("table".into(), "t1".into()), ("n".into(), "2".into())]
    );
    // The replay after the restart records the same metric: none doubles.
    store.record(&exec, false, at(2));
    assert_eq!(store.of_execution(id).len(), 4);
    assert_eq!(
        store.search(|m| m.metric.name == "rows").len(),
        2,
        "a search across executions finds them"
    );
}

#[test]
fn deleted_metrics_stay_deleted_after_a_reopen_and_later_ones_are_kept() {
    let dir = tempfile::tempdir().expect("a dir");
    let mut exec = measured();
    let id = exec.id();
    {
        let store = open(dir.path(), MetricLimits::default());
        store.record(&exec, false, at(0));
        assert_eq!(store.delete(id), 3);
        assert!(store.of_execution(id).is_empty());
        exec.metrics.push(metric("sh", "later", 2.0, at(1)));
        store.record(&exec, true, at(1));
        assert_eq!(names(&store.of_execution(id)), [("sh", "later", 2.0)]);
    }
    let store = open(dir.path(), MetricLimits::default());
    assert_eq!(names(&store.of_execution(id)), [("sh", "later", 2.0)]);
    assert_eq!(store.delete(id), 1);
    drop(store);
    let store = open(dir.path(), MetricLimits::default());
    assert!(store.of_execution(id).is_empty(), "deleted on disk too");
}

#[test]
fn old_and_over_budget_metrics_go_first() {
    let one = Arc::new(MetricEntry {
        execution: ExecutionId::from_u128(1),
        namespace: Arc::from("tests"),
        flow_id: Arc::from("t"),
        metric: metric("sh", "m", 1.0, at(0)),
    })
    .bytes();
    let limits = MetricLimits {
        retention: Duration::from_secs(60),
        max_bytes: 4 * one,
    };
    let store = MetricStore::in_memory(limits);
    let a = measured();
    store.record(&a, true, at(0));
    assert_eq!(store.of_execution(a.id()).len(), 3);
    let b = measured();
    // Past the retention of the first.
    store.record(&b, true, at(61));
    assert!(store.of_execution(a.id()).is_empty(), "past its retention");
    assert_eq!(store.of_execution(b.id()).len(), 3);
    // Past the budget: the oldest goes.
    let c = measured();
    store.record(&c, true, at(62));
    assert!(store.of_execution(b.id()).is_empty(), "over the budget");
    assert_eq!(store.of_execution(c.id()).len(), 3);
    let held: usize = store.of_execution(c.id()).iter().map(|m| m.bytes()).sum();
    assert_eq!(store.bytes(), held, "what went is no longer counted");
}

#[test]
fn a_running_executions_metrics_let_go_are_not_kept_again_at_its_next_change() {
    let limits = MetricLimits {
        retention: Duration::from_secs(60),
        max_bytes: usize::MAX,
    };
    let store = MetricStore::in_memory(limits);
    let mut exec = measured();
    exec.state = StateHistory::new(State::Running, at(0));
    store.record(&exec, false, at(0));
    assert_eq!(store.of_execution(exec.id()).len(), 3);
    // Past its retention while it runs: its metrics go, its place stays.
    exec.metrics.push(metric("sh", "later", 1.0, at(61)));
    store.record(&exec, false, at(61));
    assert!(store.of_execution(exec.id()).is_empty());
    store.record(&exec, false, at(62));
    assert!(store.of_execution(exec.id()).is_empty(), "not kept again");
    exec.metrics.push(metric("sh", "last", 1.0, at(63)));
    store.record(&exec, true, at(63));
    assert_eq!(names(&store.of_execution(exec.id())), [("sh", "last", 1.0)]);
}
