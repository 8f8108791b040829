//! Kafka realtime triggers against a real broker (tansu, on loopback): one
//! execution per message with Kestra's trigger variables; offsets committed
//! once executions are durable; `kill -9` of a node loses no message and
//! starts none twice on that node; two nodes in one consumer group share the
//! partitions and, when one dies, the other takes its partitions over with
//! no message lost and duplicates only where the dead node had not yet
//! committed.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::*;
use hyper::StatusCode;
use peregrine_engine::{ExecutionId, MessageOrigin};
use peregrine_testkit::{Broker, create_topic, unique_name};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

const NAMESPACE: &str = "kafka.test";
const TRIGGER: &str = "consume";

/// One test's topic, group and flow.
struct Setup {
    topic: String,
    group: String,
    flow_id: String,
}

impl Setup {
    fn new(name: &str, partitions: i32) -> Setup {
        let setup = Setup {
            topic: unique_name(name),
            group: unique_name("group"),
            flow_id: unique_name(name),
        };
        create_topic(Broker::shared().bootstrap(), &setup.topic, partitions).unwrap();
        setup
    }

    /// The flow: `tasks` after the trigger, the message's `n` and
    /// coordinates as flow outputs.
    fn flow(&self, tasks: &str) -> String {
        format!(
            r#"
id: {flow}
namespace: {NAMESPACE}
triggers:
  - id: {TRIGGER}
    type: io.kestra.plugin.kafka.RealtimeTrigger
    topic: {topic}
    properties:
      bootstrap.servers: {brokers}
      session.timeout.ms: 6000
      heartbeat.interval.ms: 500
    groupId: {group}
    valueDeserializer: JSON
tasks:
{tasks}
outputs:
  - id: n
    type: INT
    value: "{{{{ trigger.value.n }}}}"
  - id: key
    type: STRING
    value: "{{{{ trigger.key }}}}"
  - id: where
    type: STRING
    value: "{{{{ trigger.topic }}}}/{{{{ trigger.partition }}}}@{{{{ trigger.offset }}}}"
  - id: timestamp
    type: STRING
    value: "{{{{ trigger.timestamp }}}}"
  - id: trace
    type: STRING
    value: "{{{{ trigger.headers[0].value }}}}"
"#,
            flow = self.flow_id,
            topic = self.topic,
            brokers = Broker::shared().bootstrap(),
            group = self.group,
        )
    }

    /// The flow with Peregrine's own consumer settings (no session timeout
    /// or heartbeat interval of its own).
    fn flow_with_defaults(&self, tasks: &str) -> String {
        let flow = self.flow(tasks);
        let own = "      session.timeout.ms: 6000\n      heartbeat.interval.ms: 500\n";
        assert!(flow.contains(own));
        flow.replace(own, "")
    }

    /// The execution a message at `partition`/`offset` starts.
    fn id_of(&self, partition: i32, offset: i64) -> String {
        ExecutionId::for_message(&MessageOrigin {
            namespace: NAMESPACE,
            flow_id: &self.flow_id,
            trigger_id: TRIGGER,
            group_id: &self.group,
            topic: &self.topic,
            partition,
            offset,
        })
        .to_string()
    }

    /// The group's committed offset of each partition (the next offset to
    /// read), as the broker has it.
    fn committed(&self, partitions: i32) -> BTreeMap<i32, i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", Broker::shared().bootstrap())
            .set("group.id", &self.group)
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition(&self.topic, p);
        }
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .unwrap();
        committed
            .elements()
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                };
                (e.partition(), offset)
            })
            .collect()
    }
}

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", Broker::shared().bootstrap())
        .set("linger.ms", "0")
        .set("acks", "all")
        .create()
        .unwrap()
}

/// A published message: its `n` and where it landed.
#[derive(Debug, Clone, Copy)]
struct Sent {
    n: u64,
    partition: i32,
    offset: i64,
}

async fn publish(producer: &FutureProducer, topic: &str, n: u64, value: &[u8]) -> Sent {
    let key = format!("k{n}");
    let headers = OwnedHeaders::new().insert(Header {
        key: "trace",
        value: Some(&format!("t{n}")),
    });
    let record = FutureRecord::to(topic)
        .key(&key)
        .payload(value)
        .headers(headers);
    deliver(producer, record, n).await
}

/// Sends `record`, message `n`, and waits for the broker's answer.
async fn deliver<K, P>(producer: &FutureProducer, record: FutureRecord<'_, K, P>, n: u64) -> Sent
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    let delivery = producer
        .send(record, Duration::from_secs(10))
        .await
        .unwrap_or_else(|(e, _)| panic!("publish {n}: {e}"));
    Sent {
        n,
        partition: delivery.partition,
        offset: delivery.offset,
    }
}

/// Publishes `count` orders from `first` at `rate` per second.
async fn publish_at(topic: String, first: u64, count: u64, rate: f64) -> Vec<Sent> {
    let producer = producer();
    let start = tokio::time::Instant::now();
    let mut sent = Vec::with_capacity(count as usize);
    for i in 0..count {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        let n = first + i;
        let value = json!({"n": n}).to_string();
        sent.push(publish(&producer, &topic, n, value.as_bytes()).await);
    }
    sent
}

/// Publishes `count` orders from `first` at once, through a producer that
/// lingers so that they land in a few record batches: a consumer that
/// stops within a batch must resume inside it.
async fn publish_batched(topic: &str, first: u64, count: u64) -> Vec<Sent> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", Broker::shared().bootstrap())
        .set("linger.ms", "100")
        .set("acks", "all")
        .create()
        .unwrap();
    let mut deliveries = Vec::with_capacity(count as usize);
    for n in first..first + count {
        let key = format!("k{n}");
        let value = json!({"n": n}).to_string();
        let headers = OwnedHeaders::new().insert(Header {
            key: "trace",
            value: Some(&format!("t{n}")),
        });
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload(&value)
            .headers(headers);
        let delivery = producer
            .send_result(record)
            .unwrap_or_else(|(e, _)| panic!("publish {n}: {e}"));
        deliveries.push((n, delivery));
    }
    let mut sent = Vec::with_capacity(deliveries.len());
    for (n, delivery) in deliveries {
        let (partition, offset) = match delivery.await {
            Ok(Ok(d)) => (d.partition, d.offset),
            Ok(Err((e, _))) => panic!("publish {n}: {e}"),
            Err(_) => panic!("publish {n}: the producer went away"),
        };
        sent.push(Sent {
            n,
            partition,
            offset,
        });
    }
    sent
}

/// A counter of the server's `/metrics`.
async fn metric(server: &Server, name: &str) -> u64 {
    let text = String::from_utf8_lossy(&server.get("/metrics").await.body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// The flow's executions on `server`, by id.
async fn executions(server: &Server, flow_id: &str) -> HashMap<String, Value> {
    let reply = server
        .get(&format!(
            "/api/v1/main/executions/search?namespace={NAMESPACE}&flowId={flow_id}&size=1000"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let json = reply.json();
    assert!(json["total"].as_u64().unwrap() <= 1000, "more than a page");
    json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

/// Waits until `ids` have all ended SUCCESS on one of `servers`.
async fn wait_all_succeeded(servers: &[&Server], flow_id: &str, ids: &BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut done = BTreeSet::new();
        for server in servers {
            for (id, e) in executions(server, flow_id).await {
                if e["state"]["current"] == "SUCCESS" {
                    done.insert(id);
                }
            }
        }
        let missing: Vec<_> = ids.difference(&done).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} executions never succeeded, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deploy(server: &Server, yaml: &str) {
    let reply = server.create_flow(yaml).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

const RETURN: &str = r#"  - id: got
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.value.n }}"
"#;

const NAP: &str = r#"  - id: got
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.value.n }}"
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_starts_one_execution_with_the_trigger_variables() {
    let setup = Setup::new("vars", 2);
    let server = Server::start(&[]).await;
    deploy(&server, &setup.flow(RETURN)).await;

    let producer = producer();
    let before = chrono::Utc::now();
    let mut sent = Vec::new();
    let mut bad = None;
    for n in 0..20u64 {
        if n == 10 {
            // Not JSON: it cannot start an execution; it is skipped, counted,
            // and does not hold back the messages after it.
            bad = Some(publish(&producer, &setup.topic, 999, b"{not json").await);
        }
        let value = json!({"n": n}).to_string();
        sent.push(publish(&producer, &setup.topic, n, value.as_bytes()).await);
    }
    let after = chrono::Utc::now();

    for s in &sent {
        let id = setup.id_of(s.partition, s.offset);
        let exec = server.wait_for_state(&id, "SUCCESS").await;
        let outputs = &exec["outputs"];
        assert_eq!(outputs["n"], s.n);
        assert_eq!(outputs["key"], format!("k{}", s.n));
        assert_eq!(
            outputs["where"],
            format!("{}/{}@{}", setup.topic, s.partition, s.offset)
        );
        assert_eq!(outputs["trace"], format!("t{}", s.n));
        let stamp: chrono::DateTime<chrono::Utc> =
            outputs["timestamp"].as_str().unwrap().parse().unwrap();
        let slack = chrono::Duration::seconds(1);
        assert!(stamp >= before - slack && stamp <= after + slack, "{stamp}");
        let trigger = &exec["trigger"];
        assert_eq!(trigger["id"], TRIGGER);
        assert_eq!(trigger["type"], "io.kestra.plugin.kafka.RealtimeTrigger");
        assert_eq!(trigger["variables"]["value"], json!({"n": s.n}));
        assert_eq!(trigger["variables"]["offset"], s.offset);
    }
    // Exactly one execution per good message, and no other.
    let all = executions(&server, &setup.flow_id).await;
    assert_eq!(all.len(), sent.len());
    assert_eq!(metric(&server, "peregrine_kafka_consumed_total").await, 21);
    assert_eq!(metric(&server, "peregrine_kafka_started_total").await, 20);
    assert_eq!(
        metric(&server, "peregrine_kafka_undeliverable_total").await,
        1
    );

    // Every offset, the bad message's included, ends up committed.
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for s in sent.iter().chain(&bad) {
        let end = ends.entry(s.partition).or_default();
        *end = (*end).max(s.offset + 1);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let committed = setup.committed(2);
        let caught_up = (0..2)
            .all(|p| committed.get(&p).copied().unwrap_or(0) >= ends.get(&p).copied().unwrap_or(0));
        if caught_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "offsets never committed: {committed:?}, published up to {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_update_restarts_its_consumer_and_a_delete_stops_it() {
    let setup = Setup::new("update", 1);
    let server = Server::start(&[]).await;
    deploy(&server, &setup.flow(RETURN)).await;
    let producer = producer();
    let first = publish(&producer, &setup.topic, 1, br#"{"n": 1}"#).await;
    server
        .wait_for_state(&setup.id_of(first.partition, first.offset), "SUCCESS")
        .await;

    // A new revision: the consumer restarts on it, from the committed
    // offset: the first message does not start again.
    let updated = setup
        .flow(RETURN)
        .replace("tasks:\n", "description: v2\ntasks:\n");
    let reply = server
        .send(
            hyper::Method::PUT,
            &format!("/api/v1/main/flows/{NAMESPACE}/{}", setup.flow_id),
            &[("content-type", "application/x-yaml")],
            updated,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let second = publish(&producer, &setup.topic, 2, br#"{"n": 2}"#).await;
    let exec = server
        .wait_for_state(&setup.id_of(second.partition, second.offset), "SUCCESS")
        .await;
    assert_eq!(exec["flowRevision"], 2);
    assert_eq!(executions(&server, &setup.flow_id).await.len(), 2);

    // Deleted: nothing consumes any more.
    let reply = server
        .send(
            hyper::Method::DELETE,
            &format!("/api/v1/main/flows/{NAMESPACE}/{}", setup.flow_id),
            &[],
            "",
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let consumed = metric(&server, "peregrine_kafka_consumed_total").await;
    publish(&producer, &setup.topic, 3, br#"{"n": 3}"#).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        metric(&server, "peregrine_kafka_consumed_total").await,
        consumed
    );
}

/// `kill -9` while executions sleep and offsets wait for their commit (a
/// long commit interval keeps them all uncommitted): after a restart on the
/// same data folder, every message has exactly one execution, and the
/// redelivered messages found theirs instead of starting again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_no_message_and_starts_none_twice() {
    let setup = Setup::new("crash", 2);
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    // No commit for 10 s: everything started before the kill is still
    // uncommitted, so it all comes again after the restart.
    let env = [("PEREGRINE_KAFKA_COMMIT_INTERVAL", "10s")];
    let mut server = Server::start_in(&dir, &env).await;
    deploy(&server, &setup.flow(NAP)).await;

    let total = 300;
    let publishing = tokio::spawn(publish_at(setup.topic.clone(), 0, total, 100.0));
    // Kill once about 100 executions are started (most still asleep),
    // watching what the node started.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut started_before = 0;
    while started_before < 100 {
        assert!(Instant::now() < deadline, "the trigger never consumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
        started_before = metric(&server, "peregrine_kafka_started_total").await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.kill9();
    let server = Server::start_in(&dir, &env).await;
    let sent = publishing.await.unwrap();

    let ids: BTreeSet<String> = sent
        .iter()
        .map(|s| setup.id_of(s.partition, s.offset))
        .collect();
    wait_all_succeeded(&[&server], &setup.flow_id, &ids).await;
    let all = executions(&server, &setup.flow_id).await;
    let extra: Vec<_> = all.keys().filter(|id| !ids.contains(*id)).collect();
    assert!(extra.is_empty(), "executions of no message: {extra:?}");
    for s in &sent {
        let exec = &all[&setup.id_of(s.partition, s.offset)];
        assert_eq!(exec["outputs"]["n"], s.n);
    }
    let started_after = metric(&server, "peregrine_kafka_started_total").await;
    let redelivered = metric(&server, "peregrine_kafka_redelivered_total").await;
    println!(
        "crash: {total} messages, {started_before}+ started before the kill, \
         {started_after} after, {redelivered} redelivered and skipped"
    );
    assert!(
        redelivered > 0,
        "the messages started but not committed before the kill came again"
    );
    assert!(
        started_before + started_after <= total,
        "a message started twice: {started_before} + {started_after} > {total}"
    );
}

/// Two nodes, one consumer group, a topic of 4 partitions. In steady state
/// each message starts exactly one execution across both; `kill -9` of one
/// under load: the other takes its partitions over and no message is lost;
/// restarted on its data folder, the dead node finishes its own in-flight
/// executions. A message can start on both nodes only if the dead node had
/// durably started it and not yet committed its offset: the duplicates are
/// counted, printed, and checked against those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_partitions_and_survive_a_kill() {
    const PARTITIONS: i32 = 4;
    let setup = Setup::new("nodes", PARTITIONS);
    let data_a = tempfile::tempdir().unwrap();
    let dir_a = data_a.path().join("data");
    // Commits every 500 ms: a window of uncommitted messages at the kill
    // wide enough for duplicates to be possible, and checked.
    let env = [("PEREGRINE_KAFKA_COMMIT_INTERVAL", "500ms")];
    let mut a = Server::start_in(&dir_a, &env).await;
    let b = Server::start(&env).await;
    let yaml = setup.flow(NAP);
    deploy(&a, &yaml).await;
    deploy(&b, &yaml).await;

    // Steady state: both nodes consume, each message runs once.
    let warm = publish_at(setup.topic.clone(), 0, 200, 100.0).await;
    let warm_ids: BTreeSet<String> = warm
        .iter()
        .map(|s| setup.id_of(s.partition, s.offset))
        .collect();
    wait_all_succeeded(&[&a, &b], &setup.flow_id, &warm_ids).await;
    let on_a: BTreeSet<String> = executions(&a, &setup.flow_id).await.into_keys().collect();
    let on_b: BTreeSet<String> = executions(&b, &setup.flow_id).await.into_keys().collect();
    assert!(
        on_a.intersection(&on_b).next().is_none(),
        "steady state ran a message on both nodes"
    );
    assert_eq!(
        on_a.union(&on_b).cloned().collect::<BTreeSet<_>>(),
        warm_ids
    );
    println!(
        "steady state: {} messages, {} on A, {} on B",
        warm.len(),
        on_a.len(),
        on_b.len()
    );

    // Under load, kill A.
    let publishing = tokio::spawn(publish_at(setup.topic.clone(), 200, 600, 100.0));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.kill9();
    let killed_at = chrono::Utc::now();
    let committed_at_kill = setup.committed(PARTITIONS);
    let sent = publishing.await.unwrap();
    let all: Vec<Sent> = warm.iter().chain(&sent).copied().collect();
    let ids: BTreeMap<String, Sent> = all
        .iter()
        .map(|s| (setup.id_of(s.partition, s.offset), *s))
        .collect();
    let committed_before =
        |s: &Sent| s.offset < committed_at_kill.get(&s.partition).copied().unwrap_or(0);

    // B takes A's partitions over (after A's session times out): every
    // message but those A had committed runs on B, A still dead.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let on_b = executions(&b, &setup.flow_id).await;
        let missing = all
            .iter()
            .filter(|s| !committed_before(s))
            .filter(|s| {
                on_b.get(&setup.id_of(s.partition, s.offset))
                    .is_none_or(|e| e["state"]["current"] != "SUCCESS")
            })
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never took A's partitions over: {missing} messages not run"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A comes back on its data folder: its own in-flight executions finish.
    let a = Server::start_in(&dir_a, &env).await;
    let wanted: BTreeSet<String> = ids.keys().cloned().collect();
    wait_all_succeeded(&[&a, &b], &setup.flow_id, &wanted).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let on_a = loop {
        let on_a = executions(&a, &setup.flow_id).await;
        if on_a.values().all(|e| e["state"]["current"] == "SUCCESS") {
            break on_a;
        }
        assert!(Instant::now() < deadline, "A's executions never all ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let on_b = executions(&b, &setup.flow_id).await;
    for (node, execs) in [("A", &on_a), ("B", &on_b)] {
        for (id, e) in execs {
            assert!(ids.contains_key(id), "{node} ran {id}, no message's");
            assert_eq!(e["state"]["current"], "SUCCESS", "{node}: {id}");
        }
    }
    let lost: Vec<&String> = wanted
        .iter()
        .filter(|id| !on_a.contains_key(*id) && !on_b.contains_key(*id))
        .collect();
    let duplicates: Vec<&String> = on_a.keys().filter(|id| on_b.contains_key(*id)).collect();
    // What A had durably started before it died (it is in A's WAL, so A has
    // it again) and the group had not committed.
    let created = |e: &Value| -> chrono::DateTime<chrono::Utc> {
        e["state"]["histories"][0]["date"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let uncommitted: BTreeSet<&String> = on_a
        .iter()
        .filter(|(id, e)| created(e) < killed_at && !committed_before(&ids[*id]))
        .map(|(id, _)| id)
        .collect();
    println!(
        "failover: {} messages, lost {}, duplicates {}, uncommitted on A at the kill {} \
         (committed offsets then {committed_at_kill:?})",
        all.len(),
        lost.len(),
        duplicates.len(),
        uncommitted.len()
    );
    assert!(lost.is_empty(), "lost: {lost:?}");
    for d in &duplicates {
        assert!(
            uncommitted.contains(d),
            "{:?} ran on both nodes, but A had not started it uncommitted before the kill",
            ids[*d]
        );
    }
}

/// With room for 4 running executions, 30 messages on 3 partitions whose
/// executions sleep, published in a few record batches before the flow is
/// deployed: the consumer fetches ahead, pauses instead of buffering (which
/// drops what it fetched ahead), resumes inside a batch as executions end,
/// and every message starts exactly one execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_engine_pauses_consumption_and_loses_nothing() {
    let setup = Setup::new("pressure", 3);
    let server = Server::start(&[("PEREGRINE_EXECUTOR_MAX_RUNNING", "4")]).await;
    let sent = publish_batched(&setup.topic, 0, 30).await;
    let nap = NAP.replace("PT1S", "PT0.2S");
    deploy(&server, &setup.flow(&nap)).await;
    let ids: BTreeSet<String> = sent
        .iter()
        .map(|s| setup.id_of(s.partition, s.offset))
        .collect();
    wait_all_succeeded(&[&server], &setup.flow_id, &ids).await;
    assert_eq!(executions(&server, &setup.flow_id).await.len(), 30);
    assert_eq!(metric(&server, "peregrine_kafka_started_total").await, 30);
    assert!(metric(&server, "peregrine_kafka_paused_total").await > 0);
}

/// A graceful stop (SIGTERM) commits the offset of every message whose
/// execution is durable, however long the commit interval: a restart then
/// redelivers nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_commits_what_is_durable() {
    let setup = Setup::new("stop", 2);
    let mut server = Server::start(&[("PEREGRINE_KAFKA_COMMIT_INTERVAL", "1h")]).await;
    deploy(&server, &setup.flow(RETURN)).await;
    let sent = publish_at(setup.topic.clone(), 0, 20, 200.0).await;
    for s in &sent {
        server
            .wait_for_state(&setup.id_of(s.partition, s.offset), "SUCCESS")
            .await;
    }
    assert!(
        setup.committed(2).values().all(|&o| o <= 0),
        "nothing is committed before the stop"
    );
    assert!(server.terminate().success());
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for s in &sent {
        let end = ends.entry(s.partition).or_default();
        *end = (*end).max(s.offset + 1);
    }
    let committed = setup.committed(2);
    for (partition, end) in ends {
        assert_eq!(committed.get(&partition), Some(&end), "{committed:?}");
    }
}

/// Publishes `n` to `partition` of `topic`.
async fn publish_to(producer: &FutureProducer, topic: &str, partition: i32, n: u64) -> Sent {
    let value = json!({"n": n}).to_string();
    let record = FutureRecord::<str, str>::to(topic)
        .partition(partition)
        .key("k")
        .payload(&value);
    deliver(producer, record, n).await
}

/// Whether `server` has the execution `id`.
async fn has(server: &Server, id: &str) -> bool {
    server
        .get(&format!("/api/v1/main/executions/{id}"))
        .await
        .status
        == StatusCode::OK
}

/// `kill -9` of a node, then a restart on its data folder at once: the dead
/// consumer is still a member of the group (until its session times out,
/// 45 s with librdkafka's default), and the new one removes it before
/// joining. Within 5 s of the new process's start, a message on each
/// partition has started its execution. Peregrine's default consumer
/// settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_takes_its_partitions_back_within_5_s() {
    const PARTITIONS: i32 = 2;
    let setup = Setup::new("restart", PARTITIONS);
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let mut server = Server::start_in(&dir, &[]).await;
    deploy(&server, &setup.flow_with_defaults(RETURN)).await;
    let producer = producer();
    let deadline = Instant::now() + Duration::from_secs(30);
    for partition in 0..PARTITIONS {
        let s = publish_to(&producer, &setup.topic, partition, 0).await;
        let id = setup.id_of(s.partition, s.offset);
        while !has(&server, &id).await {
            assert!(Instant::now() < deadline, "the trigger never consumed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    server.kill9();

    let started = Instant::now();
    let server = Server::start_in(&dir, &[]).await;
    let mut waiting = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let s = publish_to(&producer, &setup.topic, partition, 1).await;
        waiting.insert(partition, setup.id_of(s.partition, s.offset));
    }
    let bound = Duration::from_secs(5);
    while !waiting.is_empty() && started.elapsed() < bound {
        let mut started_now = Vec::new();
        for (partition, id) in &waiting {
            if has(&server, id).await {
                started_now.push(*partition);
            }
        }
        for partition in started_now {
            waiting.remove(&partition);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    assert!(
        waiting.is_empty(),
        "{took:?} after the restart, partitions {:?} still not consumed",
        waiting.keys().collect::<Vec<_>>()
    );
    println!("restart: every partition consumed {took:?} after the process started");
}

/// Two nodes in one group (Peregrine's default consumer settings), `kill -9`
/// of one: the other consumes messages published after the kill on each of
/// the dead node's partitions. The default's target, 10 s, is measured in
/// BENCHMARKS.md (median 9.0 s against tansu, whose hold of a follower's
/// rejoin takes 3 s of it); asserted here is a takeover well within two
/// default session timeouts plus the watchdog, which librdkafka's own
/// defaults (45 s, then the old watchdog's 90 s) never met.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_takes_over_a_dead_nodes_partitions() {
    const PARTITIONS: i32 = 4;
    let setup = Setup::new("survivor", PARTITIONS);
    let mut a = Server::start(&[]).await;
    let b = Server::start(&[]).await;
    let yaml = setup.flow_with_defaults(RETURN);
    deploy(&a, &yaml).await;
    deploy(&b, &yaml).await;
    let producer = producer();

    // Until the group is formed with both: a message on each partition,
    // and which node ran it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    let on_a = loop {
        let mut on_a = BTreeSet::new();
        let mut on_b = BTreeSet::new();
        for partition in 0..PARTITIONS {
            n += 1;
            let s = publish_to(&producer, &setup.topic, partition, n).await;
            let id = setup.id_of(s.partition, s.offset);
            let wait = Instant::now() + Duration::from_secs(3);
            while Instant::now() < wait {
                if has(&a, &id).await {
                    on_a.insert(partition);
                    break;
                }
                if has(&b, &id).await {
                    on_b.insert(partition);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if on_a.len() + on_b.len() == PARTITIONS as usize && !on_a.is_empty() && !on_b.is_empty() {
            break on_a;
        }
        assert!(
            Instant::now() < deadline,
            "the group never spread over both nodes: A {on_a:?}, B {on_b:?}"
        );
    };

    a.kill9();
    let killed = Instant::now();
    let first_after = n + 1;
    // Under CI's load, beside the other tests: twice the target.
    let bound = Duration::from_secs(20);
    let mut taken = BTreeMap::new();
    while taken.len() < on_a.len() && killed.elapsed() < bound {
        for &partition in &on_a {
            if !taken.contains_key(&partition) {
                n += 1;
                publish_to(&producer, &setup.topic, partition, n).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for e in executions(&b, &setup.flow_id).await.values() {
            let variables = &e["trigger"]["variables"];
            let partition = i32::try_from(variables["partition"].as_i64().unwrap()).unwrap();
            if on_a.contains(&partition) && variables["value"]["n"].as_u64().unwrap() >= first_after
            {
                taken.entry(partition).or_insert_with(|| killed.elapsed());
            }
        }
    }
    assert_eq!(
        taken.len(),
        on_a.len(),
        "{:?} after the kill, B consumes only {taken:?} of A's partitions {on_a:?}",
        killed.elapsed()
    );
    let took = taken.values().max().unwrap();
    println!("survivor: A's partitions {on_a:?} consumed by B {took:?} after the kill");
}
