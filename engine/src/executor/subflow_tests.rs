//! The subflow protocol between two shards, driven by hand with no
//! threads: what the courier would carry is taken from one shard's
//! effects and stepped into the other's, in any order and as often as a
//! restart would send it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::FlowRevision;
use super::courier::{ChildNews, Parcel, SpawnOrder, child_id};
use super::finished::Finished;
use super::run::NewExecution;
use super::shard::{Effect, Message, Shard};
use super::test_journal::FaultyJournal;
use crate::execution::{ExecutionId, Id, Record, State};
use crate::flow::Flow;
use crate::journal::Entry;
use crate::tasks::ChildAnswer;

const CHILD: &str = r#"
id: child
namespace: tests
inputs:
  - id: n
    type: INT
outputs:
  - id: doubled
    type: INT
    value: "{{ inputs.n * 2 }}"
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
"#;

fn parent_flow(extra: &str) -> String {
    format!(
        r#"
id: parent
namespace: tests
labels:
  team: core
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: tests
    flowId: child
    inputs:
      n: "{{{{ 20 + 1 }}}}"
    labels:
      given: yes
{extra}
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.call.outputs.doubled ?? 'none' }}}} from {{{{ outputs.call.state }}}}"
"#
    )
}

fn t(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
}

fn revision(yaml: &str) -> Arc<FlowRevision> {
    let flow = Flow::parse(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    Arc::new(FlowRevision::new(Arc::new(flow)))
}

fn shard(journal: &FaultyJournal) -> Shard {
    let finished = Arc::new(Finished::new(Duration::from_secs(3600), 1000));
    Shard::with_journal(t(0), Box::new(journal.clone()), finished)
}

/// What a drain hands out: the parcels, and each final record.
#[derive(Default)]
struct Out {
    parcels: Vec<Parcel>,
    ended: Vec<Record>,
}

fn drain(shard: &mut Shard) -> Out {
    let mut out = Out::default();
    shard.drain(|effect, _| match effect {
        Effect::Send { parcel, .. } => out.parcels.push(parcel),
        Effect::Changed {
            ended: Some(record),
            ..
        } => out.ended.push(record),
        _ => {}
    });
    out
}

fn start(shard: &mut Shard, new: NewExecution, now: DateTime<Utc>) {
    let request = 1;
    let new = Box::new(new);
    shard.step(
        Message::Start {
            new,
            request,
            snapshot: false,
        },
        now,
    );
}

/// The courier's start of the child an order asks for.
fn child_of(order: &SpawnOrder) -> NewExecution {
    let flow = revision(CHILD);
    let inputs = crate::flow::validate_inputs(flow.flow(), &order.inputs).unwrap();
    NewExecution {
        id: order.link.child(),
        flow,
        inputs,
        labels: order.labels.clone(),
        trigger: Some(order.trigger.clone()),
        parent: Some(order.link),
        schedule_date: order.schedule_date,
        replays: None,
        lineage: None,
    }
}

fn only_spawn(parcels: Vec<Parcel>) -> SpawnOrder {
    match <[Parcel; 1]>::try_from(parcels) {
        Ok([Parcel::Spawn(order)]) => *order,
        Ok(other) => panic!("expected one spawn, got {other:?}"),
        Err(parcels) => panic!("expected one spawn, got {parcels:?}"),
    }
}

fn only_news(parcels: Vec<Parcel>) -> ChildNews {
    match <[Parcel; 1]>::try_from(parcels) {
        Ok([Parcel::Tell(news)]) => *news,
        Ok(other) => panic!("expected one answer, got {other:?}"),
        Err(parcels) => panic!("expected one answer, got {parcels:?}"),
    }
}

fn task_run<'r>(json: &'r Value, task: &str) -> &'r Value {
    json["taskRunList"]
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["taskId"] == task))
        .unwrap_or_else(|| panic!("a task run of {task} in {json}"))
}

fn parent_execution(yaml: &str, raw: u128) -> NewExecution {
    let mut new = NewExecution::new(revision(yaml), Map::new());
    new.id = Id::from_u128(raw);
    new.labels = vec![("caller".into(), "api".into())];
    new
}

#[test]
fn a_waited_child_ends_and_its_parent_goes_on_with_its_state_and_outputs() {
    let (pj, cj) = (FaultyJournal::default(), FaultyJournal::default());
    let (mut parents, mut children) = (shard(&pj), shard(&cj));
    let parent = parent_execution(&parent_flow(""), 7);
    let parent_id = parent.id;
    start(&mut parents, parent, t(0));
    let order = only_spawn(drain(&mut parents).parcels);
    assert_eq!(
        order.link.child(),
        child_id(parent_id, 0, 1, 0),
        "attempt 1 of task run 0"
    );
    assert_eq!(
        (order.namespace.as_str(), order.flow_id.as_str()),
        ("tests", "child")
    );
    assert_eq!(order.inputs["n"], json!(21), "inputs go as rendered");
    assert_eq!(
        order.labels,
        [
            ("system.correlationId".to_owned(), parent_id.to_string()),
            ("given".to_owned(), "yes".to_owned())
        ],
        "the parent's system labels and the task's, not its others"
    );
    assert_eq!(
        order.trigger,
        json!({"id": "call", "type": "io.kestra.plugin.core.flow.Subflow", "variables": {
            "executionId": parent_id.to_string(), "namespace": "tests",
            "flowId": "parent", "flowRevision": 1}})
    );
    assert!(order.link.wait && order.link.depth == 1);

    start(&mut children, child_of(&order), t(10));
    assert!(
        drain(&mut children).parcels.is_empty(),
        "a waited child answers when it ends"
    );
    let child = children
        .get(order.link.child())
        .expect("the child runs")
        .clone();
    assert_eq!(
        child
            .labels()
            .iter()
            .find(|(k, _)| k == "system.correlationId"),
        Some(&("system.correlationId".to_owned(), parent_id.to_string())),
        "the correlation id is the parent's"
    );
    assert!(
        !child
            .labels()
            .iter()
            .any(|(k, _)| k == "caller" || k == "team"),
        "labels are not inherited by default"
    );

    children.step(Message::Tick, t(1_010));
    let out = drain(&mut children);
    assert_eq!(out.ended.len(), 1, "the child ended");
    let news = only_news(out.parcels);
    assert_eq!(news.link, order.link);
    assert_eq!(
        news.answer,
        ChildAnswer::Ended {
            state: State::Success,
            outputs: Some(json!({"doubled": 42}))
        }
    );

    parents.step(Message::Child(Box::new(news.clone())), t(1_020));
    let out = drain(&mut parents);
    assert_eq!(out.ended.len(), 1, "the parent went on to its end");
    let json = out.ended[0].to_json(t(2_000));
    assert_eq!(json["state"]["current"], "SUCCESS");
    let call = task_run(&json, "call");
    assert_eq!(call["state"]["current"], "SUCCESS");
    assert_eq!(
        call["outputs"],
        json!({"executionId": order.link.child().to_string(), "state": "SUCCESS",
               "outputs": {"doubled": 42}})
    );
    assert_eq!(
        task_run(&json, "after")["outputs"]["value"],
        "42 from SUCCESS"
    );
    let answers = |j: &FaultyJournal| {
        j.causes(parent_id)
            .iter()
            .filter(|e| matches!(e, Entry::Child { .. }))
            .count()
    };
    assert_eq!(answers(&pj), 1, "the answer is journaled");

    // Told again (a restart of the child's shard), it is not journaled twice.
    parents.step(Message::Child(Box::new(news)), t(1_030));
    assert!(drain(&mut parents).ended.is_empty());
    assert_eq!(answers(&pj), 1);

    // Asked again (a restart of the parent's shard), the ended child
    // answers from its final record and does not run again.
    start(&mut children, child_of(&order), t(1_040));
    let again = only_news(drain(&mut children).parcels);
    assert!(matches!(
        again.answer,
        ChildAnswer::Ended {
            state: State::Success,
            ..
        }
    ));
    assert_eq!(cj.ends(order.link.child()), 1, "the child ended once");
}

#[test]
fn a_failed_child_fails_its_task_run_unless_told_not_to() {
    let failing = CHILD.replace(
        "type: io.kestra.plugin.core.flow.Sleep\n    duration: PT1S",
        "type: io.kestra.plugin.core.execution.Fail",
    );
    for (extra, call_state, parent_state) in [
        ("", "FAILED", "FAILED"),
        ("    transmitFailed: false", "SUCCESS", "SUCCESS"),
        ("    allowFailure: true", "WARNING", "WARNING"),
    ] {
        let journal = FaultyJournal::default();
        let (mut parents, mut children) = (shard(&journal), shard(&journal));
        start(&mut parents, parent_execution(&parent_flow(extra), 9), t(0));
        let order = only_spawn(drain(&mut parents).parcels);
        let mut child = child_of(&order);
        child.flow = revision(&failing);
        start(&mut children, child, t(1));
        let news = only_news(drain(&mut children).parcels);
        assert!(matches!(
            news.answer,
            ChildAnswer::Ended {
                state: State::Failed,
                ..
            }
        ));
        parents.step(Message::Child(Box::new(news)), t(2));
        let out = drain(&mut parents);
        let json = out.ended[0].to_json(t(3));
        assert_eq!(
            task_run(&json, "call")["state"]["current"],
            call_state,
            "{extra}"
        );
        assert_eq!(
            task_run(&json, "call")["outputs"]["state"],
            "FAILED",
            "{extra}"
        );
        assert_eq!(json["state"]["current"], parent_state, "{extra}");
    }
}

#[test]
fn a_child_not_waited_for_answers_once_it_exists() {
    let journal = FaultyJournal::default();
    let (mut parents, mut children) = (shard(&journal), shard(&journal));
    start(
        &mut parents,
        parent_execution(&parent_flow("    wait: false\n    inheritLabels: true"), 11),
        t(0),
    );
    let order = only_spawn(drain(&mut parents).parcels);
    assert!(!order.link.wait);
    assert!(
        order
            .labels
            .iter()
            .any(|(k, v)| k == "caller" && v == "api")
            && order.labels.iter().any(|(k, v)| k == "team" && v == "core"),
        "inheritLabels gives the child every label: {:?}",
        order.labels
    );
    start(&mut children, child_of(&order), t(1));
    let news = only_news(drain(&mut children).parcels);
    assert_eq!(news.answer, ChildAnswer::Created);
    parents.step(Message::Child(Box::new(news)), t(2));
    let out = drain(&mut parents);
    let json = out.ended[0].to_json(t(3));
    assert_eq!(json["state"]["current"], "SUCCESS");
    assert_eq!(
        task_run(&json, "call")["outputs"],
        json!({"executionId": order.link.child().to_string(), "state": "CREATED"})
    );
    assert_eq!(
        task_run(&json, "after")["outputs"]["value"],
        "none from CREATED"
    );
    children.step(Message::Tick, t(1_001));
    let out = drain(&mut children);
    assert_eq!(out.ended.len(), 1, "the child runs on to its end");
    assert!(out.parcels.is_empty(), "and tells nobody");
}

#[test]
fn a_flow_that_cannot_start_fails_the_task_run_with_the_reason() {
    let journal = FaultyJournal::default();
    let mut parents = shard(&journal);
    start(&mut parents, parent_execution(&parent_flow(""), 13), t(0));
    let order = only_spawn(drain(&mut parents).parcels);
    let why = "Unable to find flow 'tests'.'child' with revision '0'";
    let news = ChildNews {
        link: order.link,
        answer: ChildAnswer::Refused(why.into()),
    };
    parents.step(Message::Child(Box::new(news)), t(1));
    let out = drain(&mut parents);
    let json = out.ended[0].to_json(t(2));
    assert_eq!(json["state"]["current"], "FAILED");
    assert_eq!(task_run(&json, "call")["state"]["current"], "FAILED");
}

#[test]
fn a_child_its_disk_cannot_take_is_a_refusal_its_parent_hears_of() {
    let (pj, cj) = (FaultyJournal::default(), FaultyJournal::default());
    let (mut parents, mut children) = (shard(&pj), shard(&cj));
    start(&mut parents, parent_execution(&parent_flow(""), 14), t(0));
    let order = only_spawn(drain(&mut parents).parcels);
    cj.full.store(true, std::sync::atomic::Ordering::SeqCst);
    start(&mut children, child_of(&order), t(1));
    let news = only_news(drain(&mut children).parcels);
    assert!(
        matches!(&news.answer, ChildAnswer::Refused(why) if why.contains("out of disk space")),
        "{news:?}"
    );
    assert!(
        children.get(order.link.child()).is_none(),
        "the child does not run"
    );
    parents.step(Message::Child(Box::new(news)), t(2));
    let json = drain(&mut parents).ended[0].to_json(t(3));
    assert_eq!(task_run(&json, "call")["state"]["current"], "FAILED");
}

#[test]
fn killing_a_parent_kills_the_child_it_waits_for() {
    let journal = FaultyJournal::default();
    let mut parents = shard(&journal);
    start(&mut parents, parent_execution(&parent_flow(""), 15), t(0));
    let order = only_spawn(drain(&mut parents).parcels);
    parents.step(
        Message::Kill {
            id: order.link.execution,
            cascade: true,
            request: 2,
        },
        t(5),
    );
    let out = drain(&mut parents);
    assert_eq!(out.ended[0].state(), State::Killed);
    match out.parcels.as_slice() {
        [Parcel::Kill(id)] => assert_eq!(*id, order.link.child()),
        other => panic!("expected the child's kill, got {other:?}"),
    }
}

#[test]
fn a_kill_that_does_not_cascade_spares_the_child() {
    let journal = FaultyJournal::default();
    let mut parents = shard(&journal);
    start(&mut parents, parent_execution(&parent_flow(""), 16), t(0));
    let order = only_spawn(drain(&mut parents).parcels);
    let id = order.link.execution;
    parents.step(
        Message::Kill {
            id,
            cascade: false,
            request: 2,
        },
        t(5),
    );
    let out = drain(&mut parents);
    assert_eq!(out.ended[0].state(), State::Killed);
    assert!(out.parcels.is_empty(), "{:?}", out.parcels);
    // Rebuilt, it is killed the same way.
    let (mut parents, _) = restart(&journal, id, &parent_flow(""));
    let out = drain(&mut parents);
    assert_eq!(out.ended[0].state(), State::Killed);
    assert!(out.parcels.is_empty(), "{:?}", out.parcels);
}

#[test]
fn a_child_killed_on_its_own_is_a_killed_task_run() {
    let journal = FaultyJournal::default();
    let (mut parents, mut children) = (shard(&journal), shard(&journal));
    start(&mut parents, parent_execution(&parent_flow(""), 17), t(0));
    let order = only_spawn(drain(&mut parents).parcels);
    start(&mut children, child_of(&order), t(1));
    drain(&mut children);
    children.step(
        Message::Kill {
            id: order.link.child(),
            cascade: true,
            request: 3,
        },
        t(2),
    );
    let news = only_news(drain(&mut children).parcels);
    parents.step(Message::Child(Box::new(news)), t(3));
    let json = drain(&mut parents).ended[0].to_json(t(4));
    assert_eq!(task_run(&json, "call")["state"]["current"], "KILLED");
    assert_eq!(json["state"]["current"], "KILLED");
}

/// Rebuilds `id` from what `journal` kept, on a new shard.
fn restart(journal: &FaultyJournal, id: ExecutionId, yaml: &str) -> (Shard, FaultyJournal) {
    let fresh = FaultyJournal::default();
    let mut shard = shard(&fresh);
    let flow = revision(yaml);
    let resolve = |_: &str, _: &str, _: u32| Some(Arc::clone(&flow));
    shard
        .restore(id, journal.causes(id), &resolve, t(100_000))
        .expect("the journal rebuilds it");
    (shard, fresh)
}

#[test]
fn after_a_restart_each_side_asks_or_answers_again() {
    let (pj, cj) = (FaultyJournal::default(), FaultyJournal::default());
    let (mut parents, mut children) = (shard(&pj), shard(&cj));
    let yaml = parent_flow("");
    start(&mut parents, parent_execution(&yaml, 19), t(0));
    let order = only_spawn(drain(&mut parents).parcels);
    start(&mut children, child_of(&order), t(1));
    drain(&mut children);

    // The parent's shard dies: rebuilt, it asks for the same child again.
    let (mut parents, later) = restart(&pj, order.link.execution, &yaml);
    let again = only_spawn(drain(&mut parents).parcels);
    assert_eq!(again.link.child(), order.link.child());
    assert!(again.resend, "marked as sent again");

    // The child's shard dies too: rebuilt, it still knows its parent and
    // tells it when it ends.
    let (mut children, _) = restart(&cj, order.link.child(), CHILD);
    start(&mut children, child_of(&again), t(100_001));
    assert!(
        drain(&mut children).parcels.is_empty(),
        "a running child is not started twice"
    );
    children.step(Message::Tick, t(100_002));
    let news = only_news(drain(&mut children).parcels);
    assert_eq!(news.link, order.link);
    parents.step(Message::Child(Box::new(news)), t(100_003));
    let out = drain(&mut parents);
    assert_eq!(out.ended[0].state(), State::Success);

    // Rebuilt from both journals, the parent has its answer: it asks
    // nothing and ends as it did.
    let both = FaultyJournal::default();
    for cause in pj
        .causes(order.link.execution)
        .into_iter()
        .chain(later.causes(order.link.execution))
    {
        let _ = crate::journal::Journal::append(&mut both.clone(), order.link.execution, &cause);
    }
    let (mut parents, _) = restart(&both, order.link.execution, &yaml);
    let out = drain(&mut parents);
    assert!(out.parcels.is_empty(), "nothing is asked again");
    assert_eq!(out.ended[0].state(), State::Success);
}

#[test]
fn a_scheduled_child_waits_created_until_its_date_even_across_a_restart() {
    let (pj, cj) = (FaultyJournal::default(), FaultyJournal::default());
    let (mut parents, mut children) = (shard(&pj), shard(&cj));
    let at = t(5_000).to_rfc3339();
    let yaml = parent_flow(&format!("    scheduleDate: \"{at}\""));
    start(&mut parents, parent_execution(&yaml, 21), t(0));
    let order = only_spawn(drain(&mut parents).parcels);
    assert_eq!(order.schedule_date, Some(t(5_000)));
    start(&mut children, child_of(&order), t(10));
    drain(&mut children);
    let child = children.get(order.link.child()).expect("created");
    assert_eq!(child.state(), State::Created, "it waits for its date");
    assert!(child.task_runs().is_empty());
    children.step(Message::Tick, t(4_999));
    assert_eq!(
        children.get(order.link.child()).unwrap().state(),
        State::Created
    );

    // Its shard restarts before the date: it still waits for it.
    let (mut children, _) = restart(&cj, order.link.child(), CHILD);
    drain(&mut children);
    assert_eq!(
        children.get(order.link.child()).unwrap().state(),
        State::Created
    );
    children.step(Message::Tick, t(5_000));
    drain(&mut children);
    let child = children.get(order.link.child()).expect("running");
    assert_eq!(child.state(), State::Running, "begun at its date");
    let began = child.history().histories()[1].date;
    assert_eq!(began, t(5_000));
    // Its Sleep ends a second after it began, and the parent hears.
    children.step(Message::Tick, t(6_000));
    let news = only_news(drain(&mut children).parcels);
    parents.step(Message::Child(Box::new(news)), t(6_001));
    assert_eq!(drain(&mut parents).ended[0].state(), State::Success);
}

const FAN: &str = r#"
id: parent
namespace: tests
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "kestra:///other/flow/executions/1aBcDeFgHiJkLmNoPqRsTu/tasks/t/r/items.txt"
    namespace: tests
    flowId: child
    inputs:
      n: "{{ taskrun.iteration }}"
      file: "{{ taskrun.items }}"
"#;

/// What a drain of a ForEachItem's parent hands out: its spawns (by batch),
/// kills, work, and its end.
#[derive(Default)]
struct FanOut {
    spawns: Vec<SpawnOrder>,
    kills: Vec<ExecutionId>,
    work: Vec<super::worker::WorkOrder>,
    ended: Vec<Record>,
}

fn drain_fan(shard: &mut Shard) -> FanOut {
    let mut out = FanOut::default();
    shard.drain(|effect, _| match effect {
        Effect::Send {
            parcel: Parcel::Spawn(order),
            ..
        } => out.spawns.push(*order),
        Effect::Send {
            parcel: Parcel::Kill(id),
            ..
        } => out.kills.push(id),
        Effect::Work { order, .. } => out.work.push(order),
        Effect::Changed {
            ended: Some(record),
            ..
        } => out.ended.push(record),
        _ => {}
    });
    out
}

/// Answers `order` (a job of execution `id`) with `outputs`.
fn work_done(shard: &mut Shard, id: ExecutionId, order: &super::worker::WorkOrder, outputs: Value) {
    let done = super::worker::WorkDone {
        id,
        task_run: order.task_run,
        run_id: order.run_id,
        attempt: order.attempt,
        answer: Ok(outputs).into(),
    };
    shard.step(Message::WorkDone(Box::new(done)), t(5));
}

/// Batch `order`'s child ended `state`.
fn batch_ended(shard: &mut Shard, order: &SpawnOrder, state: State, at: i64) {
    let news = ChildNews {
        link: order.link,
        answer: ChildAnswer::Ended {
            state,
            outputs: Some(json!({"doubled": order.link.batch * 2})),
        },
    };
    shard.step(Message::Child(Box::new(news)), t(at));
}

/// Starts a FAN execution (id `raw`) whose split, answered here, made
/// `batches` batches: its id, and what it did then.
fn start_fan(parents: &mut Shard, raw: u128, batches: u32) -> (ExecutionId, FanOut) {
    let parent = parent_execution(FAN, raw);
    let parent_id = parent.id;
    start(parents, parent, t(0));
    // The split is work for the pool.
    let split = drain_fan(parents).work.pop().expect("the split's job");
    let splits =
        format!("kestra:///tests/parent/executions/{parent_id}/tasks/each_split/x/splits.txt");
    work_done(
        parents,
        parent_id,
        &split,
        json!({"splits": splits, "numberOfBatches": batches}),
    );
    (parent_id, drain_fan(parents))
}

#[test]
fn batches_start_a_few_at_a_time_and_a_recovered_parent_asks_again_only_for_those_running() {
    let pj = FaultyJournal::default();
    let mut parents = shard(&pj);
    let (parent_id, out) = start_fan(&mut parents, 23, 150);
    let batches: Vec<u32> = out.spawns.iter().map(|s| s.link.batch).collect();
    let running = crate::tasks::MAX_BATCHES_RUNNING as u32;
    assert_eq!(
        batches,
        (1..=running).collect::<Vec<_>>(),
        "the first ones only"
    );
    let first = &out.spawns[0];
    assert_eq!(first.inputs["n"], json!(1));
    assert_eq!(
        first.inputs["file"],
        json!(format!(
            "kestra:///tests/parent/executions/{parent_id}/tasks/each_split/x/batch-1"
        ))
    );
    assert_eq!(first.trigger["id"], "each_items");
    let ids: std::collections::BTreeSet<ExecutionId> =
        out.spawns.iter().map(|s| s.link.child()).collect();
    assert_eq!(ids.len(), running as usize, "one child id per batch");
    assert!(
        !ids.contains(&child_id(parent_id, 1, 1, 0)),
        "not a Subflow's id"
    );

    // Each end lets the next batch start.
    let mut orders: Vec<SpawnOrder> = out.spawns;
    for (i, order) in orders.clone().iter().take(10).enumerate() {
        batch_ended(&mut parents, order, State::Success, 10 + i as i64);
        let next = drain_fan(&mut parents).spawns;
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].link.batch, running + 1 + i as u32);
        orders.extend(next);
    }
    let json = Record::of(parents.get(parent_id).unwrap()).to_json(t(50));
    assert_eq!(
        task_run(&json, "each_items")["outputs"],
        json!({"numberOfBatches": 150, "iterations": {
            "CREATED": 150 - running - 10, "RUNNING": running, "SUCCESS": 10}})
    );

    // Recovered from its journal: it asks again for the batches it waits
    // for, and no others.
    let (mut again, _) = restart(&pj, parent_id, FAN);
    let out = drain_fan(&mut again);
    let mut asked: Vec<u32> = out.spawns.iter().map(|s| s.link.batch).collect();
    asked.sort_unstable();
    assert_eq!(asked, (11..=running + 10).collect::<Vec<_>>());
    assert!(out.spawns.iter().all(|s| s.resend));

    // The rest end, batch 13 FAILED: the task run ends FAILED once they
    // all did, and so does its parent, its merge not run (a failed task
    // stops its ForEachItem's, as Kestra's).
    let mut pending: std::collections::VecDeque<SpawnOrder> = out.spawns.into();
    let mut at = 1_000;
    let mut ended = Vec::new();
    while let Some(order) = pending.pop_front() {
        at += 1;
        assert!(ended.is_empty(), "it ends after its last batch only");
        let state = if order.link.batch == 13 {
            State::Failed
        } else {
            State::Success
        };
        batch_ended(&mut again, &order, state, at);
        let out = drain_fan(&mut again);
        assert!(out.work.is_empty(), "no merge after a failure");
        pending.extend(out.spawns);
        ended.extend(out.ended);
    }
    let json = ended[0].to_json(t(5_000));
    assert_eq!(json["state"]["current"], "FAILED", "{json}");
    assert_eq!(
        task_run(&json, "each_items")["outputs"],
        json!({"numberOfBatches": 150, "iterations": {"SUCCESS": 149, "FAILED": 1}})
    );
    assert_eq!(task_run(&json, "each_items")["state"]["current"], "FAILED");
    assert!(
        !json["taskRunList"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["taskId"] == "each_merge")
    );
}

#[test]
fn a_killed_parent_kills_the_batches_it_runs() {
    let pj = FaultyJournal::default();
    let mut parents = shard(&pj);
    let (parent_id, out) = start_fan(&mut parents, 29, 3);
    let spawns = out.spawns;
    assert_eq!(spawns.len(), 3);
    batch_ended(&mut parents, &spawns[0], State::Success, 10);
    let _ = drain_fan(&mut parents);
    parents.step(
        Message::Kill {
            id: parent_id,
            cascade: true,
            request: 2,
        },
        t(20),
    );
    let out = drain_fan(&mut parents);
    let mut killed = out.kills.clone();
    killed.sort_unstable();
    let mut running = vec![spawns[1].link.child(), spawns[2].link.child()];
    running.sort_unstable();
    assert_eq!(killed, running, "the two still running");
    assert_eq!(out.ended[0].to_json(t(30))["state"]["current"], "KILLED");
}
