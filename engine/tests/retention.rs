//! Finished executions past what memory keeps (`max_finished`) stay
//! readable by id from their shards' WALs, before and after a restart,
//! within the disk budgets (`max_retained`, `retention_size`).

#![allow(clippy::unwrap_used)]

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::flow::Flow;
use peregrine_engine::{Ack, Engine, EngineConfig, FlowRevision, NewExecution, Observer};
use peregrine_engine::{Change, ExecutionId, Relabelled, State};

const QUICK: &str = r#"
id: quick
namespace: tests
inputs:
  - id: n
    type: INT
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: "n is {{ inputs.n }}"
"#;

struct Quiet;
impl Observer for Quiet {
    fn on_change(&self, _: &Change<'_>) {}
}

fn revision() -> Arc<FlowRevision> {
    Arc::new(FlowRevision::new(Arc::new(Flow::parse(QUICK).unwrap())))
}

fn start(
    dir: &std::path::Path,
    flow: &Arc<FlowRevision>,
    max_retained: Option<u64>,
) -> (Engine, peregrine_engine::Recovery) {
    let config = EngineConfig {
        threads: NonZeroUsize::new(1).unwrap(),
        // Memory keeps at least one per lock stripe: 16 here.
        max_finished: NonZeroUsize::new(1).unwrap(),
        max_retained,
        ..EngineConfig::default()
    };
    let wal = peregrine_wal::Config {
        segment_bytes: std::num::NonZeroU64::new(64 << 10).unwrap(),
        max_record_bytes: std::num::NonZeroU32::new(16 << 10).unwrap(),
        truncate_interval: Duration::from_millis(50),
        ..peregrine_wal::Config::default()
    };
    let flow = Arc::clone(flow);
    let resolve = move |ns: &str, id: &str, rev: u32| {
        (ns == "tests" && id == "quick" && rev == flow.revision()).then(|| Arc::clone(&flow))
    };
    Engine::start_durable(config, Arc::new(Quiet), dir, wal, &resolve).unwrap()
}

/// Runs `n` executions one after the other, each to its durable end.
fn run(engine: &Engine, flow: &Arc<FlowRevision>, n: usize) -> Vec<ExecutionId> {
    (0..n)
        .map(|i| {
            let new = NewExecution::new(
                Arc::clone(flow),
                serde_json::json!({ "n": i }).as_object().cloned().unwrap(),
            );
            let id = new.id;
            engine.submit(new, Ack::Receipt).unwrap().wait().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let seen = engine.read(id).unwrap().wait().unwrap();
                if let Some(s) = seen.filter(|s| s.record.state() == State::Success) {
                    s.receipt.wait().unwrap();
                    break;
                }
                assert!(Instant::now() < deadline, "execution {i} did not end");
                std::thread::sleep(Duration::from_millis(1));
            }
            id
        })
        .collect()
}

/// Where execution `id` is read from: memory, disk, or nowhere.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Memory,
    Disk,
    Nowhere,
}

/// Checks that `record` is execution `id`, run with input `n`, ended.
fn check(record: &peregrine_engine::Record, id: ExecutionId, n: usize) {
    assert_eq!(record.id(), id);
    assert_eq!(record.state(), State::Success);
    let json = serde_json::to_value(record.json(chrono::Utc::now())).unwrap();
    assert_eq!(json["inputs"]["n"], n, "{json}");
    assert_eq!(
        json["taskRunList"][0]["outputs"]["value"],
        format!("n is {n}")
    );
}

/// Whether execution `id` is read back from its WAL (memory aside).
fn on_disk(engine: &Engine, id: ExecutionId, n: usize) -> bool {
    match engine.read_retained(id).unwrap() {
        Some(s) => {
            s.receipt.wait().unwrap();
            check(&s.record, id, n);
            true
        }
        None => false,
    }
}

fn find(engine: &Engine, id: ExecutionId, n: usize) -> Found {
    if let Some(s) = engine.read(id).unwrap().wait().unwrap() {
        check(&s.record, id, n);
        return Found::Memory;
    }
    if on_disk(engine, id, n) {
        Found::Disk
    } else {
        Found::Nowhere
    }
}

#[test]
fn finished_executions_memory_no_longer_keeps_are_read_from_disk_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let flow = revision();
    let (engine, _) = start(dir.path(), &flow, None);
    let ids = run(&engine, &flow, 200);
    let tally = |engine: &Engine| {
        let found: Vec<Found> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| find(engine, *id, n))
            .collect();
        let memory = found.iter().filter(|f| **f == Found::Memory).count();
        assert!(
            !found.contains(&Found::Nowhere),
            "every finished execution is readable: {found:?}"
        );
        assert!(memory <= 16, "{memory} in memory");
        assert_eq!(
            found.last(),
            Some(&Found::Memory),
            "the newest is in memory"
        );
        assert_eq!(found[0], Found::Disk, "the oldest is on disk only");
    };
    tally(&engine);
    engine.shutdown();

    let (engine, recovery) = start(dir.path(), &flow, None);
    assert_eq!(recovery.finished, 200);
    tally(&engine);
    engine.shutdown();
}

#[test]
fn past_the_count_budget_the_oldest_finished_executions_leave_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let flow = revision();
    let (engine, _) = start(dir.path(), &flow, Some(60));
    // The budget orders by the second a record was appended: the newest 60
    // end in a later second than the 340 before them.
    let mut ids = run(&engine, &flow, 340);
    std::thread::sleep(Duration::from_millis(1100));
    ids.extend(run(&engine, &flow, 60));
    // On disk, whatever memory keeps besides (one per lock stripe).
    let kept = |engine: &Engine| -> Vec<usize> {
        (0..400)
            .filter(|n| on_disk(engine, ids[*n], n % 340))
            .collect()
    };
    // The truncator runs every 50 ms.
    let deadline = Instant::now() + Duration::from_secs(20);
    let left = loop {
        let left = kept(&engine);
        if left.len() <= 60 || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(left, (340..400).collect::<Vec<_>>());
    engine.shutdown();
    // What went is not recovered; the newest are, and read back.
    let (engine, recovery) = start(dir.path(), &flow, Some(60));
    assert_eq!(recovery.finished, 60);
    assert_eq!(kept(&engine), (340..400).collect::<Vec<_>>());
}

/// Sets `labels` on `id`, asking again while the answer is stale.
fn set_labels(engine: &Engine, id: ExecutionId, labels: &[(&str, &str)]) -> Relabelled {
    let labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for _ in 0..100 {
        match engine
            .set_labels(id, labels.clone())
            .unwrap()
            .wait()
            .unwrap()
        {
            Relabelled::Stale => continue,
            Relabelled::Done(done) => {
                done.receipt.wait().unwrap();
                return Relabelled::Done(done);
            }
            other => return other,
        }
    }
    panic!("stale 100 times in a row");
}

fn label(record: &peregrine_engine::Record, key: &str) -> Option<String> {
    record
        .labels()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
}

#[test]
fn labels_set_on_finished_executions_in_memory_or_on_disk_only_last_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let flow = revision();
    let (engine, _) = start(dir.path(), &flow, None);
    let ids = run(&engine, &flow, 100);
    let (old, new) = (ids[0], ids[99]);
    assert_eq!(find(&engine, old, 0), Found::Disk);
    assert_eq!(find(&engine, new, 99), Found::Memory);

    assert!(matches!(
        set_labels(&engine, new, &[("team", "data")]),
        Relabelled::Done(_)
    ));
    // Eight writers at once on the one only on disk, each its own key: a
    // writer that read the disk before another's rewrite is told to read
    // again, so none of the eight is lost.
    std::thread::scope(|scope| {
        for n in 0..8 {
            let engine = &engine;
            scope.spawn(move || {
                let key = format!("k{n}");
                assert!(matches!(
                    set_labels(engine, old, &[(&key, "v")]),
                    Relabelled::Done(_)
                ));
            });
        }
    });
    assert_eq!(find(&engine, old, 0), Found::Disk, "still on disk only");
    assert_eq!(find(&engine, new, 99), Found::Memory);
    // Wherever each is kept (a restart keeps in memory the newest final
    // records, and a rewritten one is new).
    let record = |engine: &Engine, id| match engine.read(id).unwrap().wait().unwrap() {
        Some(s) => s.record,
        None => engine.read_retained(id).unwrap().unwrap().record,
    };
    let check_labels = |engine: &Engine| {
        let new_record = record(engine, new);
        check(&new_record, new, 99);
        assert_eq!(label(&new_record, "team").as_deref(), Some("data"));
        let old_record = record(engine, old);
        check(&old_record, old, 0);
        for n in 0..8 {
            assert_eq!(label(&old_record, &format!("k{n}")).as_deref(), Some("v"));
        }
        assert_eq!(
            label(&old_record, "system.correlationId"),
            Some(old.to_string())
        );
    };
    check_labels(&engine);
    engine.shutdown();

    let (engine, recovery) = start(dir.path(), &flow, None);
    assert_eq!(recovery.finished, 100, "no execution more, none less");
    check_labels(&engine);
    assert!(matches!(
        set_labels(&engine, ExecutionId::from_u128(7), &[("a", "b")]),
        Relabelled::NotFound
    ));
    engine.shutdown();
}
