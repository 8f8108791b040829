//! Deterministic replay, tested: a shard journals causes only, so replaying
//! a journal must rebuild each execution byte for byte, whatever the
//! journal holds and wherever a crash cut it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use rustc_hash::FxHashMap;
use serde_json::{Value, json};

use super::finished::Finished;
use super::plan::FlowRevision;
use super::run::NewExecution;
use super::shard::{Effect, Message, Shard};
use super::test_journal::FaultyJournal;
use super::worker::WorkDone;
use crate::execution::{ExecutionId, Id, Record, State};
use crate::flow::Flow;
use crate::journal::Entry;

fn t(us: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(1_700_000_000_000_000 + us).expect("in range")
}

fn finished() -> Arc<Finished> {
    Arc::new(Finished::new(Duration::from_secs(3600), 10_000))
}

fn revision(yaml: &str) -> Arc<FlowRevision> {
    Arc::new(FlowRevision::new(Arc::new(
        Flow::parse(yaml).expect("the test flow is valid"),
    )))
}

/// The branch depends on the instant the `If` runs at and on an output
/// made one step earlier: a replay that read the clock, or that did not
/// rebuild the earlier output exactly, would go another way.
const BRANCHY: &str = r#"
id: branchy
namespace: tests
tasks:
  - id: stamp
    type: io.kestra.plugin.core.debug.Return
    format: "{{ now() }}"
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
  - id: pick
    type: io.kestra.plugin.core.flow.If
    condition: "{{ (now(format='SSSSSS') | number) is even and outputs.stamp.value != now() }}"
    then:
      - id: even
        type: io.kestra.plugin.core.debug.Return
        format: "even at {{ now() }} after {{ outputs.stamp.value }}"
    else:
      - id: odd
        type: io.kestra.plugin.core.debug.Return
        format: "odd at {{ now() }} after {{ outputs.stamp.value }}"
  - id: second-nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{ now() }}"
"#;

fn start(shard: &mut Shard, flow: &Arc<FlowRevision>, raw: u128, at: DateTime<Utc>) -> ExecutionId {
    let mut new = NewExecution::new(Arc::clone(flow), serde_json::Map::new());
    new.id = Id::from_u128(raw);
    let id = new.id;
    let message = Message::Start {
        new: Box::new(new),
        request: 0,
        snapshot: false,
    };
    shard.step(message, at);
    id
}

/// Runs BRANCHY with its steps at `steps`, journaling into `journal`;
/// the execution's record after each step.
fn run_branchy(journal: FaultyJournal, steps: [DateTime<Utc>; 3]) -> (ExecutionId, Vec<Record>) {
    let flow = revision(BRANCHY);
    let mut shard = Shard::with_journal(steps[0], Box::new(journal), finished());
    let id = start(&mut shard, &flow, 42, steps[0]);
    let mut records = vec![Record::of(shard.get(id).expect("running"))];
    for at in &steps[1..] {
        shard.step(Message::Tick, *at);
        let ended = ended_record(&mut shard);
        records.push(ended.unwrap_or_else(|| Record::of(shard.get(id).expect("running"))));
    }
    (id, records)
}

/// The final record of the execution the shard's last steps ended, if any.
fn ended_record(shard: &mut Shard) -> Option<Record> {
    let mut ended = None;
    shard.drain(|effect, _| {
        if let Effect::Changed {
            ended: Some(record),
            ..
        } = effect
        {
            ended = Some(record);
        }
    });
    ended
}

fn restore(causes: Vec<Entry>, flow: &Arc<FlowRevision>, id: ExecutionId) -> Shard {
    let mut shard = Shard::new(t(0), finished());
    let resolve = |_: &str, _: &str, _: u32| Some(Arc::clone(flow));
    shard
        .restore(id, causes, &resolve, t(10_000_000))
        .expect("the journal rebuilds the execution");
    shard
}

fn task_value(record: &Record, task: &str) -> Option<Value> {
    let json = record.to_json(t(0));
    json["taskRunList"]
        .as_array()?
        .iter()
        .find(|r| r["taskId"] == task)
        .map(|r| r["outputs"]["value"].clone())
}

#[test]
fn a_crash_between_steps_recovers_onto_the_same_branch_with_the_same_ids_and_outputs() {
    // The If runs at the second step: at an even then at an odd microsecond.
    for (second, branch) in [(1_000_002, "even"), (1_000_001, "odd")] {
        let steps = [t(0), t(second), t(2_100_000)];
        let journal = FaultyJournal::default();
        let (id, records) = run_branchy(journal.clone(), steps);
        assert_eq!(
            records[2].state(),
            State::Success,
            "the live run ends: {:?}",
            records[2].to_json(t(0))
        );
        let chosen = task_value(&records[2], branch).expect("the branch ran");
        assert!(chosen.as_str().is_some_and(|v| v.starts_with(branch)));

        // A crash after each durable record: the journal that survived
        // rebuilds the execution exactly as the live shard had it then.
        let flow = revision(BRANCHY);
        let causes = journal.causes(id);
        assert_eq!(causes.len(), 3, "created, then two timers");
        for (k, live) in records.iter().enumerate().take(2) {
            let shard = restore(causes[..=k].to_vec(), &flow, id);
            let rebuilt = Record::of(shard.get(id).expect("resumed"));
            assert_eq!(
                rebuilt.as_bytes(),
                live.as_bytes(),
                "crash after record {k}: {:?} vs {:?}",
                rebuilt.to_json(t(0)),
                live.to_json(t(0))
            );
        }
        // Replaying the whole journal ends it on the same branch, with the
        // same task-run ids and outputs.
        let mut shard = restore(causes, &flow, id);
        let replayed = ended_record(&mut shard).expect("the replay ends the execution");
        assert_eq!(replayed.as_bytes(), records[2].as_bytes());
    }
}

#[test]
fn a_journal_that_fails_mid_run_rebuilds_what_it_kept() {
    // The disk fails after the creation and the first timer: the live
    // shard goes on in memory, but only the kept prefix survives a crash.
    let steps = [t(0), t(1_000_002), t(2_100_000)];
    let journal = FaultyJournal::failing_after(2);
    let (id, records) = run_branchy(journal.clone(), steps);
    assert_eq!(journal.len(), 2, "the third append was refused");
    let flow = revision(BRANCHY);
    let shard = restore(journal.causes(id), &flow, id);
    let rebuilt = Record::of(shard.get(id).expect("resumed"));
    assert_eq!(rebuilt.as_bytes(), records[1].as_bytes());
    assert_eq!(
        task_value(&rebuilt, "even"),
        task_value(&records[1], "even"),
        "the branch taken before the failure is the one rebuilt"
    );
}

/// Fails on its first attempt at `flaky`; restarted, it sleeps, then
/// renders the instant and what the kept task made.
const FLAKY: &str = r#"
id: flaky
namespace: tests
tasks:
  - id: stamp
    type: io.kestra.plugin.core.debug.Return
    format: "{{ now() }}"
  - id: flaky
    type: io.kestra.plugin.core.debug.Return
    format: "{{ taskrun.attemptsCount == 1 ? now() : ko }}"
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{ now() }} after {{ outputs.stamp.value }}"
"#;

#[test]
fn a_restart_replays_from_its_journal_byte_for_byte_after_any_record() {
    use super::shard::{RestartOutcome, Stored};
    let flow = revision(FLAKY);
    let journal = FaultyJournal::default();
    let mut shard = Shard::with_journal(t(0), Box::new(journal.clone()), finished());
    let id = start(&mut shard, &flow, 7, t(0));
    let failed = ended_record(&mut shard).expect("it fails at once");
    assert_eq!(failed.state(), State::Failed);
    let message = Message::Restart {
        id,
        rev: Some(Arc::clone(&flow)),
        stored: Stored::InMemory,
        request: 1,
    };
    shard.step(message, t(500_000));
    let mut records = vec![Record::of(shard.get(id).expect("running again"))];
    let mut restarted = false;
    shard.drain(|effect, _| {
        if let Effect::Reply { reply, .. } = effect {
            restarted = matches!(
                reply,
                super::shard::Reply::Restart(RestartOutcome::Restarted(_))
            );
        }
    });
    assert!(restarted);
    shard.step(Message::Tick, t(1_600_007));
    let done = ended_record(&mut shard).expect("the restarted run ends");
    assert_eq!(done.state(), State::Success, "{:?}", done.to_json(t(0)));
    records.push(done.clone());
    let json = done.to_json(t(0));
    assert_eq!(json["taskRunList"].as_array().map(Vec::len), Some(4));

    // What a recovery reads: the final record superseded the creation, so
    // the journal starts again at the restart, which holds that record.
    let causes = journal.causes(id);
    let at = causes
        .iter()
        .position(|c| matches!(c, Entry::Restarted { .. }))
        .expect("the restart is journaled");
    let causes = causes[at..].to_vec();
    assert_eq!(causes.len(), 2, "the restart, then the nap's timer");
    let shard = restore(causes[..1].to_vec(), &flow, id);
    let rebuilt = Record::of(shard.get(id).expect("resumed"));
    assert_eq!(
        rebuilt.as_bytes(),
        records[0].as_bytes(),
        "{:?} vs {:?}",
        rebuilt.to_json(t(0)),
        records[0].to_json(t(0))
    );
    let mut shard = restore(causes, &flow, id);
    let replayed = ended_record(&mut shard).expect("the replay ends it");
    assert_eq!(replayed.as_bytes(), done.as_bytes());
}

/// Flows the property test draws from: timers, retries, timeouts, loops,
/// parallel branches, worker tasks whose answers the test makes up, and
/// `now()`.
const FLOWS: [&str; 4] = [
    BRANCHY,
    r#"
id: calls
namespace: tests
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", "c"]
    concurrencyLimit: 2
    tasks:
      - id: call
        type: io.kestra.plugin.core.http.Request
        uri: "http://127.0.0.1:9/{{ taskrun.value }}"
        timeout: PT0.7S
        retry:
          type: constant
          interval: PT0.5S
          maxAttempt: 3
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.call['b'].code ?? 'none' }} {{ now() }}"
"#,
    r#"
id: fan
namespace: tests
tasks:
  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: wait
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT0.3S
        # Due with the Sleep's own timer: whichever fires first, the
        # journal says which.
        timeout: PT0.3S
      - id: flaky
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ (now(format='SSSSSS') | number) is odd }}"
        retry:
          type: constant
          interval: PT0.2S
          maxAttempt: 4
errors:
  - id: handle
    type: io.kestra.plugin.core.debug.Return
    format: "failed at {{ now() }}"
"#,
    r#"
id: poll
namespace: tests
tasks:
  - id: until
    type: io.kestra.plugin.core.flow.WaitFor
    condition: "{{ (now(format='SSSSSS') | number) % 3 == 0 or outputs.until.iterationCount > 3 }}"
    checkFrequency:
      interval: PT0.25S
      maxDuration: PT2S
    failOnMaxReached: true
    tasks:
      - id: probe
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.until.iterationCount }} at {{ now() }}"
"#,
];

/// One event of a random history.
#[derive(Debug, Clone)]
enum Event {
    Start {
        flow: usize,
    },
    /// Time passes by this many microseconds, then the shard ticks.
    Tick {
        us: i64,
    },
    Kill {
        pick: usize,
    },
    /// A worker answers the oldest outstanding work order, with a code or
    /// (None) a failure.
    Answer {
        code: Option<u16>,
    },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        2 => (0..FLOWS.len()).prop_map(|flow| Event::Start { flow }),
        4 => (1i64..900_000).prop_map(|us| Event::Tick { us }),
        1 => (0usize..8).prop_map(|pick| Event::Kill { pick }),
        3 => prop::option::of(200u16..600).prop_map(|code| Event::Answer { code }),
    ]
}

/// Drives a journaled shard through `events`; the live executions (by id)
/// and, for those that ended, their final records.
fn drive(events: &[Event], journal: FaultyJournal) -> (Shard, FxHashMap<ExecutionId, Record>) {
    let flows: Vec<_> = FLOWS.iter().map(|f| revision(f)).collect();
    let mut now = t(0);
    let mut shard = Shard::with_journal(now, Box::new(journal), finished());
    let mut started = Vec::new();
    let mut work = std::collections::VecDeque::new();
    let mut ended = FxHashMap::default();
    for (n, event) in events.iter().enumerate() {
        now += chrono::Duration::microseconds(7);
        match event {
            Event::Start { flow } => {
                started.push(start(&mut shard, &flows[*flow], 1_000 + n as u128, now));
            }
            Event::Tick { us } => {
                now += chrono::Duration::microseconds(*us);
                shard.step(Message::Tick, now);
            }
            Event::Kill { pick } => {
                if let Some(&id) = started.get(pick % started.len().max(1)) {
                    shard.step(
                        Message::Kill {
                            id,
                            cascade: true,
                            request: 0,
                        },
                        now,
                    );
                }
            }
            Event::Answer { code } => {
                if let Some((id, order)) = work.pop_front() {
                    let order: super::worker::WorkOrder = order;
                    let result = match code {
                        Some(code) => Ok(json!({"code": code, "body": "x", "headers": {}})),
                        None => Err("connection refused".to_owned()),
                    };
                    let done = WorkDone {
                        id,
                        task_run: order.task_run,
                        run_id: order.run_id,
                        attempt: order.attempt,
                        answer: result.into(),
                    };
                    shard.step(Message::WorkDone(Box::new(done)), now);
                }
            }
        }
        shard.drain(|effect, _| match effect {
            Effect::Work { id, order } => work.push_back((id, order)),
            Effect::Changed {
                id,
                ended: Some(record),
                ..
            } => {
                ended.insert(id, record);
            }
            _ => {}
        });
    }
    (shard, ended)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replaying_a_random_journal_twice_gives_byte_identical_executions(
        events in prop::collection::vec(event(), 1..60)
    ) {
        let journal = FaultyJournal::default();
        let (live, ended) = drive(&events, journal.clone());
        let flows: Vec<_> = FLOWS.iter().map(|f| revision(f)).collect();
        let resolve = |_: &str, id: &str, _: u32| {
            flows.iter().find(|f| &*f.flow_id == id).cloned()
        };
        let ids: Vec<ExecutionId> = {
            let kept = journal.kept.lock().expect("no panic holds it");
            let mut ids: Vec<_> = kept.iter().map(|(id, _)| *id).collect();
            ids.dedup();
            ids
        };
        for id in ids {
            let causes = journal.causes(id);
            let replay = |causes: Vec<Entry>| {
                let mut shard = Shard::new(t(0), finished());
                shard.restore(id, causes, &resolve, t(100_000_000)).expect("rebuilds");
                ended_record(&mut shard)
                    .unwrap_or_else(|| Record::of(shard.get(id).expect("resumed")))
            };
            let first = replay(causes.clone());
            let second = replay(causes);
            prop_assert_eq!(
                first.as_bytes(),
                second.as_bytes(),
                "replays differ: {:?} vs {:?}",
                first.to_json(t(0)),
                second.to_json(t(0))
            );
            // And the replay is the execution the live shard had, unless
            // work was in flight (a replay runs that again as a new attempt).
            let live_record = match (ended.get(&id), live.get(id)) {
                (Some(record), _) => Some(record.clone()),
                (None, Some(exec)) if exec.task_runs().iter().all(|t| {
                    t.state() != State::Running || t.task_id() != "call"
                }) => Some(Record::of(exec)),
                _ => None,
            };
            if let Some(live_record) = live_record {
                prop_assert_eq!(
                    first.as_bytes(),
                    live_record.as_bytes(),
                    "{:?} vs {:?}",
                    first.to_json(t(0)),
                    live_record.to_json(t(0))
                );
            }
        }
    }
}

/// Branches on a KV value read before a sleep, and reads it again after.
const KV_BRANCH: &str = r#"
id: kv-branch
namespace: tests.kv
tasks:
  - id: pick
    type: io.kestra.plugin.core.flow.If
    condition: "{{ kv('mode') == 'fast' }}"
    then:
      - id: fast
        type: io.kestra.plugin.core.debug.Return
        format: "fast {{ kv('mode') }}"
    else:
      - id: slow
        type: io.kestra.plugin.core.debug.Return
        format: "slow {{ kv('mode') }}"
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{ kv('mode') }}"
"#;

#[test]
fn a_replay_reads_what_the_run_read_of_the_kv_store_not_what_it_holds_now() {
    use crate::kv::{KvLimits, KvMeta, KvStore, KvValue};
    let store = KvStore::in_memory(KvLimits::default());
    let set = |mode: &str| {
        store
            .put(
                "tests",
                "mode",
                KvValue::untyped(json!(mode)),
                KvMeta::default(),
                true,
                t(0),
            )
            .expect("put");
    };
    set("fast");
    let variables = crate::executor::ConfigVariables::default().with_kv(store.clone());
    let flow = revision(KV_BRANCH);
    let journal = FaultyJournal::default();
    let mut shard = Shard::with_journal(t(0), Box::new(journal.clone()), finished())
        .with_variables(variables.clone());
    let id = start(&mut shard, &flow, 7, t(0));
    let before = Record::of(shard.get(id).expect("running"));
    assert_eq!(
        task_value(&before, "fast"),
        Some(json!("fast fast")),
        "read from tests"
    );
    // The value changes while the execution sleeps.
    set("slow");
    shard.step(Message::Tick, t(1_100_000));
    let live = ended_record(&mut shard).expect("it ends");
    assert_eq!(task_value(&live, "fast"), Some(json!("fast fast")));
    assert_eq!(
        task_value(&live, "last"),
        Some(json!("slow")),
        "the next step reads anew"
    );
    let causes = journal.causes(id);
    let reads = causes
        .iter()
        .filter(|e| matches!(e, Entry::Read { .. }))
        .count();
    // The first step's reads; the second ended the execution, and its
    // final record stands in for everything before it.
    assert_eq!(reads, 1, "{causes:?}");

    // The store holds something else again; the replay reads the journal.
    set("other");
    let replay = |causes: Vec<Entry>| {
        let mut shard = Shard::new(t(0), finished()).with_variables(variables.clone());
        let resolve = |_: &str, _: &str, _: u32| Some(Arc::clone(&flow));
        shard
            .restore(id, causes, &resolve, t(10_000_000))
            .expect("the journal rebuilds the execution");
        shard
    };
    // (Its end is its final record, which recovery reads instead of the
    // causes: a crash after the first step is the one to replay.)
    let shard = replay(causes[..2].to_vec());
    let rebuilt = Record::of(shard.get(id).expect("resumed, asleep"));
    assert_eq!(rebuilt.as_bytes(), before.as_bytes());

    // A crash that cut the first step's reads off (nothing it decided was
    // seen outside): that step reads the store again.
    let cut: Vec<Entry> = causes[..1].to_vec();
    assert!(matches!(cut[0], Entry::Created { .. }));
    let shard = replay(cut);
    let rebuilt = Record::of(shard.get(id).expect("resumed, asleep"));
    assert_eq!(task_value(&rebuilt, "slow"), Some(json!("slow other")));
}

/// A WorkingDirectory hands the workers its setup, its task's work, then
/// its closing work; the answers here stand for the workers'.
const FOLDER: &str = r#"
id: folder
namespace: tests
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    outputFiles: ["*.txt"]
    tasks:
      - id: write
        type: io.kestra.plugin.core.storage.LocalFiles
        inputs:
          a.txt: "{{ now() }}"
      - id: note
        type: io.kestra.plugin.core.log.Log
        message: between
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.wd.outputFiles['a.txt'] }} {{ outputs.write.uris | length }}"
"#;

/// Answers the work `shard` asks for, stage by stage (the setup, the
/// LocalFiles, the closing work, told apart by task run and whether the
/// frame opened), until its execution ends: the task runs asked, in order,
/// and the final record.
fn answer_folder_work(
    shard: &mut Shard,
    of: ExecutionId,
    mut now: DateTime<Utc>,
) -> (Vec<u32>, Record) {
    let mut asked = Vec::new();
    loop {
        let mut work = Vec::new();
        let mut ended = None;
        // Its frame opened once it has task runs under it.
        let frame_open = shard.get(of).is_some_and(|e| e.task_runs.len() > 1);
        shard.drain(|effect, _| match effect {
            Effect::Work { id, order } => work.push((id, order, frame_open)),
            Effect::Changed {
                ended: Some(record),
                ..
            } => ended = Some(record),
            _ => {}
        });
        if let Some(record) = ended {
            return (asked, record);
        }
        assert_eq!(work.len(), 1, "one piece of work at a time");
        let (id, order, frame_open) = work.pop().expect("work");
        let order: super::worker::WorkOrder = order;
        asked.push(order.task_run);
        let result = match order.task_run {
            0 if !frame_open => Ok(json!({})),
            0 => Ok(
                json!({"outputFiles": {"a.txt": "kestra:///tests/folder/executions/x/tasks/wd/y/a.txt"}}),
            ),
            _ => Ok(json!({"uris": {}})),
        };
        now += chrono::Duration::milliseconds(5);
        let done = WorkDone {
            id,
            task_run: order.task_run,
            run_id: order.run_id,
            attempt: order.attempt,
            answer: result.into(),
        };
        shard.step(Message::WorkDone(Box::new(done)), now);
    }
}

#[test]
fn a_working_directory_recovered_after_any_record_asks_again_for_the_work_it_waited_on() {
    let flow = revision(FOLDER);
    let journal = FaultyJournal::default();
    let mut shard = Shard::with_journal(t(0), Box::new(journal.clone()), finished());
    let id = start(&mut shard, &flow, 9, t(0));
    let (asked, done) = answer_folder_work(&mut shard, id, t(0));
    // Setup, the LocalFiles, the closing work.
    assert_eq!(asked, [0, 1, 0]);
    assert_eq!(done.state(), State::Success, "{:?}", done.to_json(t(0)));
    let value = task_value(&done, "last").expect("last ran");
    assert_eq!(
        value,
        json!("kestra:///tests/folder/executions/x/tasks/wd/y/a.txt 0")
    );
    let causes = journal.causes(id);
    assert_eq!(causes.len(), 4, "its creation, then the three answers");
    // Cut before each answer: what the recovered run asks for is the work
    // that had no durable answer, and it ends as the run did.
    for cut in 1..causes.len() {
        let mut shard = restore(causes[..cut].to_vec(), &flow, id);
        let (asked_after, rebuilt) = answer_folder_work(&mut shard, id, t(20_000_000));
        assert_eq!(asked_after[..], asked[cut - 1..], "cut at {cut}");
        assert_eq!(rebuilt.state(), State::Success);
        assert_eq!(task_value(&rebuilt, "last"), Some(value.clone()));
        // The WorkingDirectory's task run was asked again, not retried:
        // a flowable task run has no attempts.
        let json = rebuilt.to_json(t(0));
        assert_eq!(json["taskRunList"][0]["attempts"], json!([]), "{json}");
    }
}

/// The one piece of work `shard` asks for now.
fn only_work(shard: &mut Shard) -> super::worker::WorkOrder {
    let mut work = Vec::new();
    shard.drain(|effect, _| {
        if let Effect::Work { order, .. } = effect {
            work.push(order);
        }
    });
    assert_eq!(work.len(), 1, "one piece of work");
    work.pop().expect("one")
}

/// `answer` to `order` of execution `id`, at `at`.
fn answer_work(
    shard: &mut Shard,
    id: ExecutionId,
    order: &super::worker::WorkOrder,
    answer: crate::tasks::Answer,
    at: DateTime<Utc>,
) {
    let done = WorkDone {
        id,
        task_run: order.task_run,
        run_id: order.run_id,
        attempt: order.attempt,
        answer,
    };
    shard.step(Message::WorkDone(Box::new(done)), at);
}

#[test]
fn a_jobs_metrics_are_journaled_with_its_answer_and_replayed_the_same() {
    let flow = revision(
        r#"
id: measured
namespace: tests
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["true"]
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
"#,
    );
    let journal = FaultyJournal::default();
    let mut shard = Shard::with_journal(t(0), Box::new(journal.clone()), finished());
    let id = start(&mut shard, &flow, 11, t(0));
    let order = only_work(&mut shard);
    let mut answer: crate::tasks::Answer = Ok(json!({"exitCode": 0, "vars": {}})).into();
    answer.metrics = vec![crate::tasks::JobMetric {
        kind: crate::execution::MetricKind::Timer,
        name: "took".into(),
        value: 1500.0,
        tags: vec![("table".into(), "t1".into())],
        at: t(7),
    }];
    answer_work(&mut shard, id, &order, answer, t(10));
    let kept = shard
        .get(id)
        .expect("it sleeps")
        .metrics()
        .entries()
        .to_vec();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].name.as_str(), kept[0].value, &*kept[0].task_id),
        ("took", 1500.0, "sh")
    );
    let causes = journal.causes(id);
    assert!(
        causes
            .iter()
            .any(|c| matches!(c, Entry::WorkedMeasured { metrics, .. } if metrics.len() == 1)),
        "{causes:?}"
    );
    let rebuilt = restore(causes, &flow, id);
    let replayed = rebuilt.get(id).expect("it sleeps").metrics().entries();
    assert_eq!(
        replayed,
        &kept[..],
        "the same metrics, at the same instants"
    );
}

#[test]
fn an_answer_for_the_same_place_of_another_run_of_the_execution_is_not_taken() {
    let flow = revision(FOLDER);
    let journal = FaultyJournal::default();
    let mut shard = Shard::with_journal(t(0), Box::new(journal.clone()), finished());
    let id = start(&mut shard, &flow, 12, t(0));
    let setup = only_work(&mut shard);
    // The same task run index and attempt (0: a flowable's work has
    // none), but another task run's id: what a run of the execution
    // before a restart would answer.
    let stale = WorkDone {
        id,
        task_run: setup.task_run,
        run_id: crate::execution::TaskRunId::from_u128(setup.run_id.as_u128() ^ 1),
        attempt: setup.attempt,
        answer: Ok(json!({})).into(),
    };
    shard.step(Message::WorkDone(Box::new(stale)), t(30));
    assert_eq!(
        journal.causes(id).len(),
        1,
        "nothing journaled but its creation"
    );
    assert_eq!(
        shard.get(id).expect("running").task_runs.len(),
        1,
        "the stale answer opened nothing: the setup is still awaited"
    );
    answer_work(&mut shard, id, &setup, Ok(json!({})).into(), t(40));
    assert_eq!(journal.causes(id).len(), 2, "its own answer is journaled");
    let (asked, done) = answer_folder_work(&mut shard, id, t(50));
    assert_eq!(asked, [1, 0], "the LocalFiles, the closing");
    assert_eq!(done.state(), State::Success, "{:?}", done.to_json(t(0)));
}

#[test]
fn a_failed_jobs_outputs_are_journaled_beside_its_error_and_replayed() {
    let flow = revision(
        r#"
id: failing
namespace: tests
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["exit 3"]
errors:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
"#,
    );
    let journal = FaultyJournal::default();
    let mut shard = Shard::with_journal(t(0), Box::new(journal.clone()), finished());
    let id = start(&mut shard, &flow, 13, t(0));
    let order = only_work(&mut shard);
    let mut answer: crate::tasks::Answer = Err("Command failed with exit code 3".to_owned()).into();
    answer.failed_outputs = Some(json!({"exitCode": 3, "vars": {}, "outputFiles": {}}));
    answer_work(&mut shard, id, &order, answer, t(10));
    let before = Record::of(shard.get(id).expect("its errors branch sleeps"));
    let json = before.to_json(t(0));
    assert_eq!(
        json["taskRunList"][0]["state"]["current"], "FAILED",
        "{json}"
    );
    assert_eq!(json["taskRunList"][0]["outputs"]["exitCode"], 3, "{json}");
    let rebuilt = restore(journal.causes(id), &flow, id);
    let after = Record::of(rebuilt.get(id).expect("its errors branch sleeps"));
    assert_eq!(
        after.as_bytes(),
        before.as_bytes(),
        "replayed byte for byte"
    );
}

#[test]
fn outputs_too_large_for_the_run_are_journaled_as_the_refusal_not_whole() {
    let flow = revision(
        r#"
id: big
namespace: tests
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["true"]
"#,
    );
    let journal = FaultyJournal::default();
    let mut shard = Shard::with_journal(t(0), Box::new(journal.clone()), finished());
    let id = start(&mut shard, &flow, 14, t(0));
    let order = only_work(&mut shard);
    let huge = "x".repeat(2 << 20);
    let mut answer: crate::tasks::Answer = Err("Command failed with exit code 1".to_owned()).into();
    answer.failed_outputs = Some(json!({ "vars": { "v": huge } }));
    answer_work(&mut shard, id, &order, answer, t(10));
    let worked = journal
        .causes(id)
        .into_iter()
        .find_map(|c| match c {
            Entry::Worked { outputs, error, .. } => Some((outputs, error)),
            _ => None,
        })
        .expect("the answer is journaled");
    assert_eq!(
        worked,
        (None, Some("Command failed with exit code 1".to_owned())),
        "a failure's outputs past the limit are dropped"
    );
}
