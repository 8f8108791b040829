//! Kafka mode: a running `peregrine server` whose Kafka trigger
//! (`io.kestra.plugin.kafka.RealtimeTrigger`) starts one execution per
//! message this generator publishes, as in the seed's Kafka benchmark.
//!
//! Each run gets a fresh topic (`--partitions`, created through Kafka's
//! admin API) and deploys `flows/seed-kafka.yaml` with that topic, the
//! brokers and a fresh consumer group in place of its placeholders. It then
//! publishes probes until the server has started an execution for one (its
//! consumer has joined the group and got the partitions), then 50 warm-up
//! messages, whose executions must all end before the clock starts.
//!
//! The calling thread publishes the orders open-loop at the rate through
//! one producer, and never waits for an acknowledgement. A message's
//! delivery report names its partition and offset, from which the server
//! derives the id of the execution it starts ([`ExecutionId::for_message`]).
//! The reports go to lanes (a partition always to the same one), each
//! watched by one task on one keep-alive connection, which reads each
//! message's execution (`GET /executions/{id}`) until it has ended, in
//! delivery order: the next message is looked at only once the one before
//! has ended. A consumer reads a partition in order, so this keeps one
//! request in flight per lane whatever the backlog, and the figures do not
//! depend on it: a latency is the execution's own `state.endDate` (the
//! server's clock, which is this machine's) minus its message's intended
//! publish time, not the moment a watcher saw the end.
//!
//! What `endDate` is: the server stamps it to the millisecond (truncated),
//! with the time its shard began the step that ended the execution, and
//! before the end is journaled. So a kafka-mode latency does not include
//! the fsync of the end (http mode's answer waits for it), and reads low by
//! up to one shard step when the shard is busy or descheduled mid-step.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, HOST};
use hyper::{Method, Request, StatusCode};
use peregrine_engine::flow::{Flow, TriggerKind};
use peregrine_engine::{ExecutionId, MessageOrigin};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::{Connection, check_execution, deploy_flow};
use crate::latency::{Outcome, Tally};
use crate::options::{KafkaSettings, Target};
use crate::orders::{Expected, order};
use crate::report::{KafkaStages, RunReport};
use crate::schedule::Schedule;

/// Watcher connections at most, whatever the partitions: each is a
/// connection to the server and a request in flight.
const MAX_LANES: usize = 8;
/// Messages whose executions must end before the measured schedule starts;
/// not measured.
const WARMUP_MESSAGES: u64 = 50;
/// How long the server's consumer may take to start executions from a
/// fresh topic and group: reading the flow, joining the group, being
/// assigned the partitions.
const CONSUMER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Until then, a probe is published this often.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// Meanwhile, the latest probes are looked at this often.
const PROBE_LOOK_EVERY: Duration = Duration::from_millis(50);
/// Only the latest probes are looked at: a consumer that starts at the end
/// of the topic never reads the earlier ones.
const PROBES_LOOKED_AT: usize = 8;
/// How long the warm-up messages' executions may take to end, once the
/// consumer runs.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause after a look that found the execution missing or running,
/// doubling with each such look up to the second constant.
const FIRST_LOOK_PAUSE: Duration = Duration::from_millis(2);
const MAX_LOOK_PAUSE: Duration = Duration::from_millis(64);
/// One look gives up after this (the watcher tries again).
const LOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// After the deadline, the executions of the messages not yet seen ended
/// get one last look each, within this time; the rest count as failed.
const LAST_LOOKS_BUDGET: Duration = Duration::from_secs(10);
/// How long the brokers may take to answer the first metadata request.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Creating a topic and seeing every partition with a leader.
const TOPIC_TIMEOUT: Duration = Duration::from_secs(30);
/// A full producer queue is retried after this pause.
const QUEUE_FULL_PAUSE: Duration = Duration::from_micros(100);

/// The flow's Kafka trigger's id, which goes into its executions' ids; the
/// flow must have exactly one such trigger.
pub(crate) fn trigger_id(flow: &Flow) -> std::result::Result<&str, String> {
    let mut kafka = flow
        .triggers
        .iter()
        .filter(|t| matches!(t.kind, TriggerKind::KafkaRealtime { .. }));
    match (kafka.next(), kafka.next()) {
        (Some(trigger), None) => Ok(&trigger.id),
        _ => Err(format!(
            "{}.{} must have exactly one io.kestra.plugin.kafka.RealtimeTrigger",
            flow.namespace, flow.id
        )),
    }
}

/// `text` as a YAML double-quoted scalar (JSON's escapes are YAML's).
fn yaml_quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

/// The flow `template` with the value of its `topic`, `bootstrap.servers`
/// and `groupId` lines replaced, everything else as written. Each key must
/// be on exactly one line, and the result must parse into a Kafka trigger
/// with exactly these values.
pub(crate) fn flow_yaml(
    template: &str,
    topic: &str,
    brokers: &str,
    group: &str,
) -> std::result::Result<String, String> {
    let mut lines: Vec<String> = template.lines().map(str::to_owned).collect();
    for (key, value) in [
        ("topic", topic),
        ("bootstrap.servers", brokers),
        ("groupId", group),
    ] {
        let prefix = format!("{key}:");
        let mut found = lines
            .iter_mut()
            .filter(|line| line.trim_start().starts_with(&prefix));
        let (Some(line), None) = (found.next(), found.next()) else {
            return Err(format!(
                "the Kafka flow must have exactly one line `{key}: ...`"
            ));
        };
        let indent = line.len() - line.trim_start().len();
        *line = format!("{}{key}: {}", &line[..indent], yaml_quoted(value));
    }
    let mut yaml = lines.join("\n");
    yaml.push('\n');
    let flow = Flow::parse(&yaml).map_err(|e| format!("the Kafka flow does not parse: {e}"))?;
    let id = trigger_id(&flow)?;
    let kind = flow.triggers.iter().find(|t| t.id == id).map(|t| &t.kind);
    let Some(TriggerKind::KafkaRealtime {
        topic: topics,
        properties,
        group_id,
        ..
    }) = kind
    else {
        return Err("the Kafka flow lost its trigger".to_owned());
    };
    let bootstrap = properties.get("bootstrap.servers").and_then(Value::as_str);
    if topics.as_slice() != [topic] || bootstrap != Some(brokers) || group_id != group {
        return Err(format!(
            "the Kafka flow reads {topics:?}, {bootstrap:?}, {group_id:?} after the \
             substitution, not {topic:?}, {brokers:?}, {group:?}"
        ));
    }
    Ok(yaml)
}

/// Whether `json` is the seed flow's execution of an order: SUCCESS, the
/// `transform` output as for [`check_execution`], and `hello`'s `log` the
/// same value (as an object, or as the JSON text a template renders it to).
pub(crate) fn check_seed_execution(json: &Value, expected: Option<&Expected>) -> bool {
    if !check_execution(json, expected) {
        return false;
    }
    let Some(expected) = expected else {
        return true;
    };
    let log = json
        .get("taskRunList")
        .and_then(Value::as_array)
        .and_then(|runs| {
            runs.iter()
                .find(|run| run.get("taskId").and_then(Value::as_str) == Some("hello"))
        })
        .and_then(|run| run.pointer("/outputs/values/log"));
    match log {
        Some(Value::String(text)) => {
            serde_json::from_str::<Value>(text).is_ok_and(|value| expected.matches(&value))
        }
        Some(value) => expected.matches(value),
        None => false,
    }
}

/// The date at `pointer` in `json`, as the server writes dates.
fn date_at(json: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    json.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|date| date.with_timezone(&Utc))
}

/// When the execution ended (`state.endDate`), if it has.
fn end_date(json: &Value) -> Option<DateTime<Utc>> {
    date_at(json, "/state/endDate")
}

/// The consumer that starts a run's executions, as it names them.
#[derive(Debug, Clone)]
struct Origin {
    namespace: String,
    flow_id: String,
    trigger_id: String,
    group: String,
    topic: String,
}

impl Origin {
    /// The id of the execution that the message at `offset` of `partition`
    /// starts.
    fn execution(&self, partition: i32, offset: i64) -> ExecutionId {
        ExecutionId::for_message(&MessageOrigin {
            namespace: &self.namespace,
            flow_id: &self.flow_id,
            trigger_id: &self.trigger_id,
            group_id: &self.group,
            topic: &self.topic,
            partition,
            offset,
        })
    }
}

/// A message the broker acknowledged.
#[derive(Debug, Clone, Copy)]
struct Delivered {
    n: u64,
    partition: i32,
    offset: i64,
}

/// Where the delivery reports of a run's (or a warm-up's) messages go.
struct Route {
    /// Never empty; a partition's reports always go to the same lane.
    lanes: Vec<flume::Sender<Delivered>>,
    /// Messages the broker did not take (or whose lane had closed).
    failed: Arc<AtomicU64>,
    finished: Arc<AtomicU64>,
    /// Send to acknowledgement; only the producer's polling thread records.
    acked: Arc<Mutex<Stage>>,
}

impl Route {
    fn new(lanes: Vec<flume::Sender<Delivered>>, finished: Arc<AtomicU64>) -> Self {
        Self {
            lanes,
            failed: Arc::new(AtomicU64::new(0)),
            finished,
            acked: Arc::new(Mutex::new(Stage::new())),
        }
    }
}

/// What each message carries to its delivery report.
struct Ticket {
    n: u64,
    sent: Instant,
    route: Arc<Route>,
}

/// The durations of one stage of the messages' way, to three significant
/// digits, up to an hour.
#[derive(Debug, Clone)]
struct Stage(Histogram<u64>);

impl Stage {
    fn new() -> Self {
        Self(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid"))
    }

    fn record(&mut self, duration: Duration) {
        let us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(us.max(1));
    }

    /// Between two server stamps; one before the other (a clock step, or
    /// a stamp taken at the start of a step) counts as 0.
    fn record_between(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) {
        self.record((to - from).to_std().unwrap_or(Duration::ZERO));
    }

    fn merge(&mut self, other: &Stage) {
        self.0
            .add(&other.0)
            .expect("histograms with the same bounds always add");
    }

    fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        (!self.0.is_empty()).then(|| self.0.value_at_quantile(quantile) as f64 / 1000.0)
    }
}

/// What a watcher saw of the stages after the acknowledgement.
#[derive(Debug, Clone)]
struct Stages {
    created: Stage,
    ended: Stage,
}

impl Stages {
    fn new() -> Self {
        Self {
            created: Stage::new(),
            ended: Stage::new(),
        }
    }

    fn report(&self, acked: &Stage) -> KafkaStages {
        KafkaStages {
            acked_p50_ms: acked.quantile_ms(0.5),
            acked_p99_ms: acked.quantile_ms(0.99),
            created_p50_ms: self.created.quantile_ms(0.5),
            created_p99_ms: self.created.quantile_ms(0.99),
            ended_p50_ms: self.ended.quantile_ms(0.5),
            ended_p99_ms: self.ended.quantile_ms(0.99),
        }
    }
}

/// The producer's context: hands delivery reports to their lanes, and
/// keeps the client's last error for the messages that explain a failure.
#[derive(Default)]
struct Reports {
    last_error: Mutex<Option<String>>,
}

impl Reports {
    /// `: <the last client error>`, or nothing.
    fn last_error(&self) -> String {
        self.last_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .map_or_else(String::new, |e| format!(" (last client error: {e})"))
    }
}

impl ClientContext for Reports {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(format!("{error}: {reason}"));
        }
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Box<Ticket>) {
        let Ticket { n, sent, route } = *ticket;
        if let Ok(message) = result {
            if let Ok(mut acked) = route.acked.lock() {
                acked.record(sent.elapsed());
            }
            let delivered = Delivered {
                n,
                partition: message.partition(),
                offset: message.offset(),
            };
            let lane = usize::try_from(message.partition()).unwrap_or(0) % route.lanes.len();
            if route
                .lanes
                .get(lane)
                .is_some_and(|lane| lane.try_send(delivered).is_ok())
            {
                return;
            }
        }
        route.failed.fetch_add(1, Ordering::Relaxed);
        route.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// The server's API, as the watchers reach it.
#[derive(Debug, Clone)]
struct Api {
    target: Target,
    authorization: Option<String>,
}

/// What a look at an execution found.
enum Look {
    /// 404: the consumer has not started it (yet).
    Missing,
    Running,
    Ended(Value),
    /// No usable answer; the reason.
    Unanswered(String),
}

impl Api {
    async fn look(&self, connection: &mut Connection, id: ExecutionId) -> Look {
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri(format!(
                "{}/api/v1/main/executions/{id}",
                self.target.prefix
            ))
            .header(HOST, self.target.authority.as_str());
        if let Some(auth) = &self.authorization {
            builder = builder.header(AUTHORIZATION, auth.as_str());
        }
        let Ok(request) = builder.body(Full::new(Bytes::new())) else {
            return Look::Unanswered("building a request".to_owned());
        };
        let (status, _, body) =
            match tokio::time::timeout(LOOK_TIMEOUT, connection.exchange(request)).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => return Look::Unanswered(e),
                Err(_) => return Look::Unanswered(format!("no answer within {LOOK_TIMEOUT:?}")),
            };
        match status {
            StatusCode::NOT_FOUND => Look::Missing,
            StatusCode::OK => match serde_json::from_slice::<Value>(&body) {
                Ok(json) if end_date(&json).is_some() => Look::Ended(json),
                Ok(_) => Look::Running,
                Err(e) => Look::Unanswered(format!("the execution is not JSON: {e}")),
            },
            other => Look::Unanswered(format!("GET an execution: {other}")),
        }
    }
}

/// The clock of one run: its start and deadline on this process's
/// monotonic clock and on the wall clock the server stamps `endDate` with.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    start_wall: DateTime<Utc>,
    deadline: Instant,
    deadline_wall: DateTime<Utc>,
}

/// What every watcher of a run shares, read-only.
struct Watch {
    api: Api,
    origin: Origin,
    expected: Vec<Expected>,
    schedule: Schedule,
    clock: Clock,
    finished: Arc<AtomicU64>,
}

impl Watch {
    /// Records the ended execution `json` of message `n`: its latency from
    /// the message's intended publish time to its `endDate`, and the stages
    /// its stamps tell.
    fn record(&self, tally: &mut Tally, stages: &mut Stages, n: u64, json: &Value) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        let Some(end) = end_date(json) else {
            tally.record_lost();
            return;
        };
        if let Some(created) = date_at(json, "/state/startDate") {
            stages.ended.record_between(created, end);
            if let Some(published) = date_at(json, "/trigger/variables/timestamp") {
                stages.created.record_between(published, created);
            }
        }
        // An end before the start would be a clock step: then 0.
        let since_start = (end - self.clock.start_wall)
            .to_std()
            .unwrap_or(Duration::ZERO);
        let latency = since_start.saturating_sub(self.schedule.offset(n));
        let expected = usize::try_from(n).ok().and_then(|i| self.expected.get(i));
        let correct = expected.is_some()
            && end <= self.clock.deadline_wall
            && check_seed_execution(json, expected);
        let outcome = if correct {
            Outcome::Completed
        } else {
            Outcome::Failed
        };
        let last = n + 1 == self.schedule.executions();
        tally.record(outcome, latency, last, self.clock.start + since_start);
    }
}

/// One lane's watcher: follows each delivered message's execution to its
/// end, in delivery order, until the lane closes or the deadline passes;
/// then gives each message left one last look.
async fn watch_lane(watch: Arc<Watch>, lane: flume::Receiver<Delivered>) -> (Tally, Stages) {
    let mut tally = Tally::new();
    let mut stages = Stages::new();
    let mut connection = Connection::new(&watch.api.target.authority);
    let deadline = tokio::time::Instant::from_std(watch.clock.deadline);
    let mut left = Vec::new();
    'lane: while let Ok(Ok(delivered)) = tokio::time::timeout_at(deadline, lane.recv_async()).await
    {
        let id = watch
            .origin
            .execution(delivered.partition, delivered.offset);
        let mut pause = FIRST_LOOK_PAUSE;
        loop {
            if let Look::Ended(json) = watch.api.look(&mut connection, id).await {
                watch.record(&mut tally, &mut stages, delivered.n, &json);
                continue 'lane;
            }
            if tokio::time::Instant::now() + pause >= deadline {
                left.push(delivered);
                break 'lane;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_LOOK_PAUSE);
        }
    }
    left.extend(lane.drain());
    let budget = tokio::time::Instant::now() + LAST_LOOKS_BUDGET;
    for delivered in left {
        let id = watch
            .origin
            .execution(delivered.partition, delivered.offset);
        let look = if tokio::time::Instant::now() < budget {
            watch.api.look(&mut connection, id).await
        } else {
            Look::Unanswered("out of time".to_owned())
        };
        match look {
            Look::Ended(json) => watch.record(&mut tally, &mut stages, delivered.n, &json),
            _ => {
                tally.record_lost();
                watch.finished.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    (tally, stages)
}

/// The server under test, fed through Kafka.
pub struct Kafka {
    settings: KafkaSettings,
    flow: Arc<Flow>,
    trigger_id: String,
    runtime: tokio::runtime::Runtime,
    producer: ThreadedProducer<Reports>,
    admin: AdminClient<DefaultClientContext>,
    /// Sets this process's topics and groups apart from any other's.
    stamp: String,
    runs: u64,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka")
            .field("settings", &self.settings)
            .field("flow", &self.flow.id)
            .field("runs", &self.runs)
            .finish_non_exhaustive()
    }
}

impl Kafka {
    /// The producer and the admin client, once the brokers answer; nothing
    /// is sent yet. An unknown `--producer-property` fails here.
    pub fn new(settings: KafkaSettings, flow: Arc<Flow>) -> Result<Self> {
        let trigger_id = trigger_id(&flow).map_err(Error::Setup)?.to_owned();
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &settings.brokers);
        for (key, value) in &settings.producer {
            config.set(key, value);
        }
        let producer: ThreadedProducer<Reports> = config
            .create_with_context(Reports::default())
            .map_err(|e| Error::Setup(format!("the Kafka producer: {e}")))?;
        if let Err(e) = producer.client().fetch_metadata(None, BROKER_TIMEOUT) {
            return Err(Error::Setup(format!(
                "no Kafka broker at {} answered within {BROKER_TIMEOUT:?}: {e}{}",
                settings.brokers,
                producer.context().last_error()
            )));
        }
        let admin = ClientConfig::new()
            .set("bootstrap.servers", &settings.brokers)
            .create()
            .map_err(|e| Error::Setup(format!("the Kafka admin client: {e}")))?;
        // One thread: the watchers mostly wait, and the server under test
        // needs the cores.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kafka-watch")
            .enable_all()
            .build()
            .map_err(|e| Error::Setup(format!("starting the HTTP client: {e}")))?;
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Ok(Self {
            settings,
            flow,
            trigger_id,
            runtime,
            producer,
            admin,
            stamp: format!("{}-{millis}", std::process::id()),
            runs: 0,
        })
    }

    fn api(&self) -> Api {
        Api {
            target: self.settings.target.clone(),
            authorization: self.settings.authorization.clone(),
        }
    }

    /// Runs one schedule on a fresh topic and consumer group; `finished`
    /// counts messages as their executions end (for the progress bar).
    pub fn run(
        &mut self,
        schedule: Schedule,
        drain: Duration,
        finished: &Arc<AtomicU64>,
    ) -> Result<RunReport> {
        self.runs += 1;
        let name = format!("peregrine-loadtest-{}-run{}", self.stamp, self.runs);
        let origin = Origin {
            namespace: self.flow.namespace.clone(),
            flow_id: self.flow.id.clone(),
            trigger_id: self.trigger_id.clone(),
            group: name.clone(),
            topic: name,
        };
        self.create_topic(&origin.topic)?;
        let yaml = flow_yaml(
            &self.flow.source,
            &origin.topic,
            &self.settings.brokers,
            &origin.group,
        )
        .map_err(Error::Setup)?;
        self.runtime.block_on(deploy_flow(
            &self.settings.target,
            self.settings.authorization.as_deref(),
            &self.flow.namespace,
            &self.flow.id,
            Bytes::from(yaml),
        ))?;
        let deployed = Instant::now();
        let consuming = self.warm_up(&origin)?;
        eprintln!(
            "peregrine-loadtest: topic {}: the server consumed it {:.1} s after the deploy; \
             {WARMUP_MESSAGES} warm-up executions ended {:.1} s later",
            origin.topic,
            consuming.saturating_duration_since(deployed).as_secs_f64(),
            consuming.elapsed().as_secs_f64()
        );
        self.measure(schedule, drain, finished, origin)
    }

    /// Creates `topic` and waits until each of its partitions has a leader,
    /// so that no measured message waits for the topic's metadata.
    fn create_topic(&self, topic: &str) -> Result<()> {
        let brokers = &self.settings.brokers;
        let partitions = i32::from(self.settings.partitions.get());
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new()
            .operation_timeout(Some(TOPIC_TIMEOUT))
            .request_timeout(Some(TOPIC_TIMEOUT));
        let failed = |why: String| {
            Error::Setup(format!(
                "creating the topic {topic} on {brokers}: {why}{}",
                self.producer.context().last_error()
            ))
        };
        let results = self
            .runtime
            .block_on(async {
                tokio::time::timeout(
                    TOPIC_TIMEOUT + Duration::from_secs(1),
                    self.admin.create_topics([&new], &options),
                )
                .await
            })
            .map_err(|_| failed(format!("no answer within {TOPIC_TIMEOUT:?}")))?
            .map_err(|e| failed(e.to_string()))?;
        for result in results {
            match result {
                // The name is this process's, and a clash changes nothing.
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(failed(code.to_string())),
            }
        }
        let deadline = Instant::now() + TOPIC_TIMEOUT;
        let mut seen = String::from("not listed");
        while Instant::now() < deadline {
            match self
                .producer
                .client()
                .fetch_metadata(Some(topic), Duration::from_secs(2))
            {
                Ok(metadata) => {
                    let listed = metadata.topics().iter().find(|t| t.name() == topic);
                    let ready = listed.is_some_and(|t| {
                        t.error().is_none()
                            && t.partitions().len() == self.settings.partitions.get() as usize
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    });
                    if ready {
                        return Ok(());
                    }
                    seen = format!(
                        "{} of {partitions} partitions listed",
                        listed.map_or(0, |t| t.partitions().len())
                    );
                }
                Err(e) => seen = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(failed(format!(
            "its partitions had no leader within {TOPIC_TIMEOUT:?} ({seen})"
        )))
    }

    /// Waits until the server's consumer starts executions from the run's
    /// topic, then until the executions of [`WARMUP_MESSAGES`] messages have
    /// ended in SUCCESS. Returns when the consumer was first seen at work.
    fn warm_up(&self, origin: &Origin) -> Result<Instant> {
        let api = self.api();
        let (sender, lane) = flume::bounded(1024);
        let route = Arc::new(Route::new(vec![sender], Arc::new(AtomicU64::new(0))));
        let payload = order(0).to_string().into_bytes();
        let send = |n: u64| -> Result<()> {
            let key = n.to_string();
            let record = BaseRecord::with_opaque_to(
                &origin.topic,
                Box::new(Ticket {
                    n,
                    sent: Instant::now(),
                    route: Arc::clone(&route),
                }),
            )
            .payload(payload.as_slice())
            .key(key.as_bytes());
            self.producer
                .send(record)
                .map_err(|(e, _)| Error::Setup(format!("publishing to {}: {e}", origin.topic)))
        };
        self.runtime.block_on(async {
            let mut connection = Connection::new(&api.target.authority);
            // Until the consumer runs: a probe every PROBE_EVERY, the latest
            // ones looked at.
            let began = Instant::now();
            let mut probes: VecDeque<ExecutionId> = VecDeque::new();
            let mut sent = 0u64;
            let mut trouble = String::new();
            'consumer: loop {
                if began.elapsed() > CONSUMER_START_TIMEOUT {
                    let unacknowledged = route.failed.load(Ordering::Relaxed);
                    return Err(Error::Server(format!(
                        "no execution started from any of {sent} messages published to topic \
                         {topic} within {CONSUMER_START_TIMEOUT:?} ({unacknowledged} not \
                         acknowledged by the broker){trouble}: is the server's Kafka trigger \
                         consuming? (flow {namespace}.{flow}, trigger {trigger}, \
                         bootstrap.servers {brokers}, groupId {group}){client}",
                        topic = origin.topic,
                        namespace = origin.namespace,
                        flow = origin.flow_id,
                        trigger = origin.trigger_id,
                        brokers = self.settings.brokers,
                        group = origin.group,
                        client = self.producer.context().last_error(),
                    )));
                }
                send(sent)?;
                sent += 1;
                let until = Instant::now() + PROBE_EVERY;
                while Instant::now() < until {
                    while let Ok(d) = lane.try_recv() {
                        probes.push_back(origin.execution(d.partition, d.offset));
                        if probes.len() > PROBES_LOOKED_AT {
                            probes.pop_front();
                        }
                    }
                    for &id in &probes {
                        match api.look(&mut connection, id).await {
                            Look::Missing => {}
                            Look::Unanswered(why) => trouble = format!("; the server: {why}"),
                            Look::Running | Look::Ended(_) => break 'consumer,
                        }
                    }
                    tokio::time::sleep(PROBE_LOOK_EVERY).await;
                }
            }
            // The consumer runs: the warm-up proper, waited for to the end.
            let consuming = Instant::now();
            for n in 0..WARMUP_MESSAGES {
                send(sent + n)?;
            }
            let deadline = Instant::now() + WARMUP_TIMEOUT;
            let timed_out = |what: String| {
                Error::Server(format!(
                    "the warm-up on topic {}: {what} within {WARMUP_TIMEOUT:?}",
                    origin.topic
                ))
            };
            let mut ended = 0;
            while ended < WARMUP_MESSAGES {
                let delivered = match tokio::time::timeout_at(
                    tokio::time::Instant::from_std(deadline),
                    lane.recv_async(),
                )
                .await
                {
                    Ok(Ok(d)) => d,
                    _ => {
                        return Err(timed_out(format!(
                            "{ended} of {WARMUP_MESSAGES} executions ended, {} messages not \
                             acknowledged{}",
                            route.failed.load(Ordering::Relaxed),
                            self.producer.context().last_error()
                        )));
                    }
                };
                // Probes still in flight when the consumer showed up.
                if delivered.n < sent {
                    continue;
                }
                let id = origin.execution(delivered.partition, delivered.offset);
                let mut pause = FIRST_LOOK_PAUSE;
                loop {
                    let look = api.look(&mut connection, id).await;
                    let seen = match &look {
                        Look::Missing => "the server has no such execution".to_owned(),
                        Look::Running => "it is still running".to_owned(),
                        Look::Unanswered(why) => format!("the last look went unanswered: {why}"),
                        Look::Ended(_) => String::new(),
                    };
                    match look {
                        Look::Ended(json) => {
                            if !check_execution(&json, None) {
                                return Err(Error::Server(format!(
                                    "warm-up execution {id} ended in {}, not SUCCESS: the \
                                     measured runs would fail the same way",
                                    json.pointer("/state/current").unwrap_or(&Value::Null)
                                )));
                            }
                            ended += 1;
                            break;
                        }
                        Look::Missing | Look::Running | Look::Unanswered(_)
                            if Instant::now() + pause < deadline =>
                        {
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(MAX_LOOK_PAUSE);
                        }
                        _ => {
                            return Err(timed_out(format!(
                                "execution {id} (partition {}, offset {}) did not end \
                                 ({seen}); {ended} of {WARMUP_MESSAGES} did",
                                delivered.partition, delivered.offset
                            )));
                        }
                    }
                }
            }
            Ok(consuming)
        })
    }

    /// The measured schedule, on a topic whose consumer runs.
    fn measure(
        &self,
        schedule: Schedule,
        drain: Duration,
        finished: &Arc<AtomicU64>,
        origin: Origin,
    ) -> Result<RunReport> {
        let executions = schedule.executions();
        // Built before the clock starts.
        let payloads: Vec<Vec<u8>> = (0..executions)
            .map(|n| order(n).to_string().into_bytes())
            .collect();
        let keys: Vec<String> = (0..executions).map(|n| n.to_string()).collect();
        let lanes = usize::from(self.settings.partitions.get()).min(MAX_LANES);
        let capacity = usize::try_from(executions).unwrap_or(usize::MAX);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..lanes).map(|_| flume::bounded(capacity)).unzip();
        let route = Arc::new(Route::new(senders, Arc::clone(finished)));
        let unacknowledged = Arc::clone(&route.failed);
        let acked = Arc::clone(&route.acked);

        let start = Instant::now() + Duration::from_millis(5);
        let start_wall = Utc::now() + chrono::Duration::milliseconds(5);
        let deadline = start + schedule.span() + drain;
        let clock = Clock {
            start,
            start_wall,
            deadline,
            deadline_wall: start_wall
                + chrono::Duration::from_std(schedule.span() + drain)
                    .map_err(|e| Error::Setup(format!("the run's span: {e}")))?,
        };
        let watch = Arc::new(Watch {
            api: self.api(),
            origin,
            expected: (0..executions).map(Expected::of).collect(),
            schedule,
            clock,
            finished: Arc::clone(finished),
        });
        let watchers: Vec<_> = receivers
            .into_iter()
            .map(|lane| self.runtime.spawn(watch_lane(Arc::clone(&watch), lane)))
            .collect();

        let mut generator = Tally::new();
        let topic = watch.origin.topic.as_str();
        schedule.drive(start, |n| {
            let (Some(payload), Some(key)) = (
                usize::try_from(n).ok().and_then(|i| payloads.get(i)),
                usize::try_from(n).ok().and_then(|i| keys.get(i)),
            ) else {
                generator.record_lost();
                finished.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let mut record = BaseRecord::with_opaque_to(
                topic,
                Box::new(Ticket {
                    n,
                    sent: Instant::now(),
                    route: Arc::clone(&route),
                }),
            )
            .payload(payload.as_slice())
            .key(key.as_bytes());
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if Instant::now() < deadline =>
                    {
                        generator.record_retry();
                        std::thread::sleep(QUEUE_FULL_PAUSE);
                        record = back;
                    }
                    Err(_) => {
                        generator.record_lost();
                        finished.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        });
        // The lanes close once the last report is in: then the watchers
        // stop without waiting for the deadline.
        drop(route);
        // Every message acknowledged by the deadline, or purged: a purged
        // message's report counts it as failed.
        if self
            .producer
            .flush(deadline.saturating_duration_since(Instant::now()))
            .is_err()
        {
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
        }
        let mut merged = generator;
        let mut stages = Stages::new();
        self.runtime.block_on(async {
            for watcher in watchers {
                match watcher.await {
                    Ok((tally, seen)) => {
                        merged.merge(&tally);
                        stages.created.merge(&seen.created);
                        stages.ended.merge(&seen.ended);
                    }
                    Err(e) => return Err(Error::Setup(format!("a watcher failed: {e}"))),
                }
            }
            Ok(())
        })?;
        for _ in 0..unacknowledged.load(Ordering::Relaxed) {
            merged.record_lost();
        }
        let mut report = RunReport::close(schedule.rate(), executions, &mut merged, start);
        let acked = acked
            .lock()
            .map_err(|_| Error::Setup("the producer's thread panicked".into()))?
            .clone();
        report.stages = Some(stages.report(&acked));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_seed_flow_gets_its_topic_brokers_and_group_and_nothing_else() {
        let template = crate::options::SEED_KAFKA_FLOW;
        let yaml = flow_yaml(template, "t-1", "127.0.0.1:9092,h:9093", "g-1").unwrap();
        let changed: Vec<(&str, &str)> = template
            .lines()
            .zip(yaml.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            vec![
                ("    topic: test_kestra", "    topic: \"t-1\""),
                (
                    "      bootstrap.servers: localhost:9092",
                    "      bootstrap.servers: \"127.0.0.1:9092,h:9093\""
                ),
                ("    groupId: myGroup", "    groupId: \"g-1\""),
            ]
        );
        assert_eq!(template.lines().count(), yaml.lines().count());
        let flow = Flow::parse(&yaml).unwrap();
        assert_eq!(
            (flow.namespace.as_str(), flow.id.as_str()),
            ("company.team", "seed-kafka")
        );
        assert_eq!(trigger_id(&flow).unwrap(), "kafka-logs");
    }

    #[test]
    fn awkward_values_are_quoted_not_injected() {
        let template = crate::options::SEED_KAFKA_FLOW;
        let yaml = flow_yaml(template, "a: b #c", "h:1", "g\"\\ \n x").unwrap();
        let flow = Flow::parse(&yaml).unwrap();
        let Some(TriggerKind::KafkaRealtime {
            topic, group_id, ..
        }) = flow.triggers.first().map(|t| &t.kind)
        else {
            panic!("a Kafka trigger")
        };
        assert_eq!(topic, &vec!["a: b #c".to_owned()]);
        assert_eq!(group_id, "g\"\\ \n x");
    }

    #[test]
    fn a_template_without_exactly_one_placeholder_line_is_refused() {
        let template = crate::options::SEED_KAFKA_FLOW;
        let without = template.replace("    groupId: myGroup\n", "");
        let e = flow_yaml(&without, "t", "h:1", "g").unwrap_err();
        assert!(e.contains("`groupId: ...`"), "{e}");
        let twice = template.replace(
            "    groupId: myGroup\n",
            "    groupId: myGroup\n    # groupId: old\n    groupId: again\n",
        );
        let e = flow_yaml(&twice, "t", "h:1", "g").unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
        let e = flow_yaml("id: x\nnamespace: n\ntasks: []\n", "t", "h:1", "g").unwrap_err();
        assert!(e.contains("`topic: ...`"), "{e}");
    }

    #[test]
    fn a_flow_needs_exactly_one_kafka_trigger() {
        let seed = Flow::parse(crate::options::SEED_FLOW).unwrap();
        let e = trigger_id(&seed).unwrap_err();
        assert!(
            e.contains("exactly one io.kestra.plugin.kafka.RealtimeTrigger"),
            "{e}"
        );
    }

    fn execution(state: &str, transform: Value, log: Value) -> Value {
        json!({
            "id": "x",
            "state": {"current": state, "endDate": "2026-11-25T18:00:00.123Z"},
            "taskRunList": [
                {"taskId": "transform", "outputs": {"value": transform}},
                {"taskId": "hello", "outputs": {"values": {"log": log}}}
            ]
        })
    }

    #[test]
    fn the_transform_and_the_log_must_both_be_the_order() {
        let o = order(4);
        let value = json!({
            "order_id": 4,
            "customer_name": format!("{} {}", o["first_name"].as_str().unwrap(), o["last_name"].as_str().unwrap()),
            "address": format!("{}, {}", o["address"]["city"].as_str().unwrap(), o["address"]["country"].as_str().unwrap()),
            "total_price": crate::orders::expected_total_price(&o),
        });
        let expected = Expected::of(4);
        let as_text = Value::String(value.to_string());
        assert!(check_seed_execution(
            &execution("SUCCESS", value.clone(), as_text.clone()),
            Some(&expected)
        ));
        assert!(check_seed_execution(
            &execution("SUCCESS", value.clone(), value.clone()),
            Some(&expected)
        ));
        assert!(!check_seed_execution(
            &execution("FAILED", value.clone(), as_text.clone()),
            Some(&expected)
        ));
        assert!(!check_seed_execution(
            &execution("SUCCESS", value.clone(), json!("{\"order_id\": 4}")),
            Some(&expected)
        ));
        assert!(!check_seed_execution(
            &execution("SUCCESS", value.clone(), json!("not json")),
            Some(&expected)
        ));
        assert!(!check_seed_execution(
            &execution("SUCCESS", json!({}), as_text),
            Some(&expected)
        ));
        assert!(check_seed_execution(
            &execution("SUCCESS", json!(1), json!(null)),
            None
        ));
    }

    #[test]
    fn end_dates_are_read_as_the_server_writes_them() {
        let json = execution("SUCCESS", json!(1), json!(1));
        let end = end_date(&json).unwrap();
        assert_eq!(end.timestamp_subsec_millis(), 123);
        assert_eq!(end_date(&json!({"state": {"current": "RUNNING"}})), None);
        assert_eq!(end_date(&json!({"state": {"endDate": "yesterday"}})), None);
    }

    #[test]
    fn latency_runs_from_the_intended_publish_time_to_the_end_date() {
        let schedule = Schedule::new(10.0, 3);
        let start_wall = DateTime::parse_from_rfc3339("2026-11-25T18:00:00.000Z")
            .unwrap()
            .with_timezone(&Utc);
        let start = Instant::now();
        let watch = Watch {
            api: Api {
                target: Target {
                    authority: "h:1".into(),
                    prefix: String::new(),
                },
                authorization: None,
            },
            origin: Origin {
                namespace: "company.team".into(),
                flow_id: "seed-kafka".into(),
                trigger_id: "kafka-logs".into(),
                group: "g".into(),
                topic: "t".into(),
            },
            expected: (0..3).map(Expected::of).collect(),
            schedule,
            clock: Clock {
                start,
                start_wall,
                deadline: start + Duration::from_secs(1),
                deadline_wall: start_wall + chrono::Duration::seconds(1),
            },
            finished: Arc::new(AtomicU64::new(0)),
        };
        // Message 2 is due at 200 ms, was sent at 201 ms; its execution was
        // created at 209 ms and ended at 212 ms, in FAILED: a failure, whose
        // latency still names the last execution.
        let mut tally = Tally::new();
        let mut stages = Stages::new();
        watch.record(
            &mut tally,
            &mut stages,
            2,
            &json!({
                "state": {
                    "current": "FAILED",
                    "startDate": "2026-11-25T18:00:00.209Z",
                    "endDate": "2026-11-25T18:00:00.212Z"
                },
                "trigger": {"variables": {"timestamp": "2026-11-25T18:00:00.201Z"}}
            }),
        );
        assert_eq!(tally.failed(), 1);
        assert_eq!(tally.last(), Some(Duration::from_millis(12)));
        let seen = stages.report(&Stage::new());
        let near = |ms: Option<f64>, want: f64| ms.is_some_and(|ms| (ms - want).abs() < 0.01);
        assert!(near(seen.created_p50_ms, 8.0), "{seen:?}");
        assert!(near(seen.ended_p50_ms, 3.0), "{seen:?}");
        assert_eq!(seen.acked_p50_ms, None);
        // Ended after the deadline: failed, however correct; without its
        // stamps, no stage.
        let mut late = Tally::new();
        watch.record(
            &mut late,
            &mut stages,
            0,
            &json!({"state": {"current": "SUCCESS", "endDate": "2026-11-25T18:00:01.500Z"}}),
        );
        assert_eq!((late.completed(), late.failed()), (0, 1));
        assert_eq!(watch.finished.load(Ordering::Relaxed), 2);
        assert_eq!(stages.ended.0.len(), 1);
        // A creation stamped before the message's own timestamp reads 0.
        let mut early = Stages::new();
        watch.record(
            &mut Tally::new(),
            &mut early,
            1,
            &json!({
                "state": {
                    "current": "SUCCESS",
                    "startDate": "2026-11-25T18:00:00.100Z",
                    "endDate": "2026-11-25T18:00:00.100Z"
                },
                "trigger": {"variables": {"timestamp": "2026-11-25T18:00:00.104Z"}}
            }),
        );
        assert_eq!(early.report(&Stage::new()).created_p50_ms, Some(0.001));
    }

    #[test]
    fn message_ids_are_the_servers() {
        let origin = Origin {
            namespace: "company.team".into(),
            flow_id: "seed-kafka".into(),
            trigger_id: "kafka-logs".into(),
            group: "g".into(),
            topic: "t".into(),
        };
        let id = ExecutionId::for_message(&MessageOrigin {
            namespace: "company.team",
            flow_id: "seed-kafka",
            trigger_id: "kafka-logs",
            group_id: "g",
            topic: "t",
            partition: 3,
            offset: 17,
        });
        assert_eq!(origin.execution(3, 17), id);
        assert_ne!(origin.execution(3, 18), id);
    }
}
