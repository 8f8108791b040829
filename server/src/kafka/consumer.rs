//! One consumer per Kafka trigger, on its own thread: each message starts
//! one execution, whose id derives from the message's origin, and the
//! message's offset is committed only once that execution's creation is
//! durable in the WAL.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use peregrine_engine::Receipt;
use peregrine_engine::flow::{self, Deserializer, Flow, TriggerKind};
use peregrine_engine::{Ack, Pending, Started};
use peregrine_engine::{ExecutionId, MessageOrigin, execution_trigger};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::{Map, Value};

use super::incarnation;
use super::ledger::{Ledger, Partition, Progress, Step};
use super::message::{self, Parts};
use super::watchdog;
use crate::config::KafkaConfig;
use crate::metrics::Metrics;
use crate::state::{AppState, Launch, LaunchError, Launcher, Refused};
use crate::store::StoredFlow;

/// Consumer settings Peregrine chooses unless the flow's `properties` say
/// otherwise: tuned for latency, as the seed's Kafka benchmark was.
const DEFAULTS: [(&str, &str); 7] = [
    // The broker answers a fetch as soon as one message is there, or after
    // 10 ms (librdkafka's default is 500 ms).
    ("fetch.wait.max.ms", "10"),
    ("fetch.min.bytes", "1"),
    // Kestra's RealtimeTrigger reads a new group's topic from the start.
    ("auto.offset.reset", "earliest"),
    ("socket.nagle.disable", "true"),
    // What librdkafka prefetches per partition: all that can pile up while
    // the consumer is paused for backpressure (its default is 64 MiB).
    ("queued.max.messages.kbytes", "8192"),
    // How long the group waits for a silent member (a node that died)
    // before it hands that member's partitions to the others: librdkafka's
    // default is 45 s. 6 s is the least a Kafka broker accepts by default
    // (its `group.min.session.timeout.ms`); lower makes a takeover faster
    // and a member that merely paused (a stalled host, a slow broker) more
    // likely to lose its partitions for nothing.
    ("session.timeout.ms", "6000"),
    // Well under a third of that, as Kafka advises: how soon a live member
    // hears that the group rebalances, and how soon a broker that expires
    // members only when another one calls (tansu 0.6) notices a dead one.
    ("heartbeat.interval.ms", "500"),
];

/// Settings the delivery guarantee depends on: never the flow's to change.
const FORCED: [(&str, &str); 2] = [
    // Offsets are committed by the ledger, after durability.
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
];

/// How long a poll waits when nothing is pending.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a poll waits while creations are on their way to the disk or
/// messages are held back: this is how soon offsets are committed.
const BUSY_POLL: Duration = Duration::from_millis(2);
/// How long a revoked partition or a stopping consumer waits for its
/// pending creations before giving them up to redelivery.
const DRAIN: Duration = Duration::from_secs(5);
/// At most one broker error logged per this period per consumer.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// What one `RealtimeTrigger` of one flow revision consumes, and how.
#[derive(Debug, Clone)]
pub struct Spec {
    pub namespace: String,
    pub flow_id: String,
    pub trigger_id: String,
    pub group_id: String,
    /// Topic names, and `^regex` for a `topicPattern`.
    pub subscription: Vec<String>,
    pub key: Deserializer,
    pub value: Deserializer,
    pub config: Vec<(String, String)>,
    /// How long durable offsets may wait before a commit.
    pub commit_interval: Duration,
}

impl Spec {
    /// The Kafka triggers of a flow, enabled ones only.
    pub fn of_flow(stored: &StoredFlow, server: &KafkaConfig) -> Vec<Spec> {
        let flow = stored.flow();
        if flow.disabled {
            return Vec::new();
        }
        flow.triggers
            .iter()
            .filter(|t| !t.disabled)
            .filter_map(|t| match &t.kind {
                TriggerKind::KafkaRealtime {
                    topic,
                    topic_pattern,
                    properties,
                    group_id,
                    key_deserializer,
                    value_deserializer,
                    extra,
                } => {
                    if !extra.is_empty() {
                        let ignored: Vec<&str> = extra.keys().map(String::as_str).collect();
                        tracing::warn!(
                            flow = %format!("{}.{}", flow.namespace, flow.id),
                            trigger = t.id,
                            ?ignored,
                            "Kafka trigger properties not supported, ignored"
                        );
                    }
                    let mut subscription = topic.clone();
                    if let Some(pattern) = topic_pattern {
                        // librdkafka subscribes by regex to names starting with `^`.
                        let pattern = pattern.strip_prefix('^').unwrap_or(pattern);
                        subscription.push(format!("^{pattern}"));
                    }
                    Some(Spec {
                        namespace: flow.namespace.clone(),
                        flow_id: flow.id.clone(),
                        trigger_id: t.id.clone(),
                        group_id: group_id.clone(),
                        subscription,
                        key: *key_deserializer,
                        value: *value_deserializer,
                        config: client_config(&server.properties, properties, group_id),
                        commit_interval: server.commit_interval.0,
                    })
                }
                _ => None,
            })
            .collect()
    }

    fn name(&self) -> String {
        format!("{}.{}/{}", self.namespace, self.flow_id, self.trigger_id)
    }
}

/// The librdkafka settings of each Kafka trigger of `flow` that librdkafka
/// refuses (an unknown property, a value out of range), as (path, why):
/// refused when the flow is saved rather than found when it runs.
pub fn config_problems(flow: &Flow, server: &KafkaConfig) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (i, trigger) in flow.triggers.iter().enumerate() {
        let TriggerKind::KafkaRealtime {
            properties,
            group_id,
            ..
        } = &trigger.kind
        else {
            continue;
        };
        let mut config = ClientConfig::new();
        for (key, value) in client_config(&server.properties, properties, group_id) {
            config.set(key, value);
        }
        if let Err(e) = config.create_native_config() {
            problems.push((format!("triggers[{i}].properties"), e.to_string()));
        }
    }
    problems
}

/// The consumer's settings: Peregrine's defaults, then the server's, then
/// the flow's, then the forced ones.
fn client_config(
    server: &BTreeMap<String, String>,
    properties: &Map<String, Value>,
    group_id: &str,
) -> Vec<(String, String)> {
    let mut config: Vec<(String, String)> = DEFAULTS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut set = |key: &str, value: &str| match config.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_owned(),
        None => config.push((key.to_owned(), value.to_owned())),
    };
    let server = server.iter().map(|(k, v)| (k, Value::String(v.clone())));
    for (key, value) in server.chain(properties.iter().map(|(k, v)| (k, v.clone()))) {
        let text = match value {
            Value::String(s) => s,
            Value::Null => continue,
            other => other.to_string(),
        };
        if FORCED.iter().any(|(k, _)| k == key) {
            tracing::warn!(
                property = key,
                "ignored: Peregrine commits offsets itself, once executions are durable"
            );
            continue;
        }
        set(key, &text);
    }
    set("group.id", group_id);
    for (key, value) in FORCED {
        set(key, value);
    }
    config
}

/// A running consumer; stopping it commits what is durable and leaves the
/// group.
#[derive(Debug)]
pub struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn start(spec: Spec, flow: Arc<StoredFlow>, state: AppState) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name(format!("kafka-{}", spec.trigger_id))
            .spawn({
                let stop = Arc::clone(&stop);
                move || {
                    let name = spec.name();
                    if let Err(e) = consume(spec, &flow, &state, &stop) {
                        tracing::error!(trigger = name, "Kafka trigger stopped: {e}");
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the consumer to stop, without waiting.
    pub fn signal(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Stops the consumer and waits until it has committed and left.
    pub fn stop(mut self) {
        self.signal();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("a Kafka consumer thread panicked");
        }
    }
}

/// A message's start on its way: the shard's answer, then its receipt.
struct Created {
    answer: Pending<Started>,
    receipt: OnceLock<Result<Receipt, String>>,
    metrics: Arc<Metrics>,
}

fn progress(created: &Created) -> Progress {
    if created.receipt.get().is_none() {
        let got = match created.answer.try_take() {
            None => return Progress::NotYet,
            Some(Ok(started)) => {
                if started.existed {
                    // A redelivery: its execution exists (running, or ended
                    // within the retention), and nothing started again.
                    created.metrics.kafka().redelivered();
                } else {
                    created.metrics.kafka().started();
                }
                Ok(started.receipt)
            }
            Some(Err(stopped)) => Err(stopped.to_string()),
        };
        let _ = created.receipt.set(got);
    }
    match created.receipt.get() {
        None => Progress::NotYet,
        Some(Err(why)) => Progress::Failed(why.clone()),
        Some(Ok(receipt)) => match receipt.poll_durable() {
            None => Progress::NotYet,
            Some(Ok(())) => Progress::Durable,
            Some(Err(e)) => Progress::Failed(e.to_string()),
        },
    }
}

/// What the consumer thread and its rebalance callbacks share (both run on
/// the consumer's thread: the lock is never contended).
#[derive(Default)]
struct Book {
    ledger: Ledger<Created>,
    /// Messages the engine could not take yet (backpressure), in order.
    held: std::collections::VecDeque<Incoming>,
    /// Set when the WAL failed: stop, commit nothing more.
    failed: Option<String>,
}

struct Context {
    name: String,
    book: Arc<Mutex<Book>>,
    watch: Arc<watchdog::Shared>,
    last_error: Mutex<Option<Instant>>,
    /// Where this consumer's member id is kept for the next one, and the
    /// id last written there.
    member_file: std::path::PathBuf,
    member_written: Mutex<Option<String>>,
}

impl Context {
    /// Keeps the consumer's current member id in the data folder, so that
    /// the next consumer of this trigger there can remove this one from the
    /// group should it die (`incarnation`).
    fn keep_member_id(&self, consumer: &BaseConsumer<Self>) {
        let Some(id) = member_id(consumer) else {
            return;
        };
        let mut written = self
            .member_written
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if written.as_deref() == Some(id.as_str()) {
            return;
        }
        match incarnation::write(&self.member_file, &id) {
            Ok(()) => *written = Some(id),
            Err(e) => tracing::warn!(
                trigger = self.name,
                path = %self.member_file.display(),
                "cannot keep the group member id (a restart after a crash will \
                 wait for the session timeout to take its partitions back): {e}"
            ),
        }
    }
}

/// The member id the group gave `consumer`, if it has one.
fn member_id(consumer: &BaseConsumer<Context>) -> Option<String> {
    let rk = consumer.client().native_ptr();
    // SAFETY: `rk` is the handle of `consumer`, alive for this call.
    // rd_kafka_memberid returns NULL or a NUL-terminated string allocated
    // for the caller, read once here and then freed with rd_kafka_mem_free
    // on the same handle.
    unsafe {
        let ptr = rdkafka::bindings::rd_kafka_memberid(rk);
        if ptr.is_null() {
            return None;
        }
        let id = std::ffi::CStr::from_ptr(ptr).to_string_lossy().into_owned();
        rdkafka::bindings::rd_kafka_mem_free(rk, ptr.cast());
        (!id.is_empty()).then_some(id)
    }
}

impl ClientContext for Context {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= ERROR_LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(trigger = self.name, "Kafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for Context {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        {
            let mut revoked_at = self
                .watch
                .revoked_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match rebalance {
                Rebalance::Revoke(_) => *revoked_at = Some(Instant::now()),
                Rebalance::Assign(_) => *revoked_at = None,
                Rebalance::Error(_) => {}
            }
        }
        let assigned = consumer
            .assignment()
            .map(|list| {
                list.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect()
            })
            .unwrap_or_default();
        *self
            .watch
            .assigned
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = assigned;
        self.keep_member_id(consumer);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        // Before the partitions go to another consumer: commit what is
        // durable of them, waiting a little for what is on its way, so that
        // the next owner redelivers as little as possible.
        let partitions: Vec<Partition> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        book.held
            .retain(|m| !partitions.contains(&(m.topic.clone(), m.partition)));
        let deadline = Instant::now() + DRAIN;
        loop {
            if let Err(e) = book.ledger.advance(progress) {
                book.failed = Some(e);
                break;
            }
            if book.ledger.waiting() == 0 || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        commit(consumer, &mut book.ledger, CommitMode::Sync, &self.name);
        let mut dropped = 0;
        for partition in &partitions {
            dropped += book.ledger.forget(partition);
        }
        if dropped > 0 {
            tracing::warn!(
                trigger = self.name,
                dropped,
                "partitions revoked with creations not yet durable: they will be redelivered"
            );
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            tracing::warn!(trigger = self.name, "offset commit failed: {e}");
        }
    }
}

/// A message turned into what starting its execution needs.
struct Incoming {
    topic: String,
    partition: i32,
    offset: i64,
    /// Its execution's id and `trigger` variable, or why it has none.
    start: Result<(ExecutionId, Value), String>,
}

fn consume(
    spec: Spec,
    flow: &StoredFlow,
    state: &AppState,
    stop: &AtomicBool,
) -> Result<(), String> {
    let name = spec.name();
    let inputs = flow::validate_inputs(flow.flow(), &Map::new())
        .map_err(|e| format!("the flow's inputs need values a message cannot give: {e}"))?;
    let book = Arc::new(Mutex::new(Book::default()));
    let mut config = ClientConfig::new();
    for (key, value) in &spec.config {
        config.set(key, value);
    }
    let watch = Arc::new(watchdog::Shared::default());
    let member_file = incarnation::path(
        &state.config().data_dir,
        &[
            &spec.namespace,
            &spec.flow_id,
            &spec.trigger_id,
            &spec.group_id,
        ],
    );
    leave_previous(&spec, &name, &member_file);
    let context = Context {
        name: name.clone(),
        book: Arc::clone(&book),
        watch: Arc::clone(&watch),
        last_error: Mutex::new(None),
        member_file,
        member_written: Mutex::new(None),
    };
    let consumer: BaseConsumer<Context> = config
        .create_with_context(context)
        .map_err(|e| format!("cannot create the consumer: {e}"))?;
    let topics: Vec<&str> = spec.subscription.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))?;
    tracing::info!(
        trigger = name,
        ?topics,
        group = spec.group_id,
        "Kafka trigger consuming"
    );
    let watcher = std::thread::Builder::new()
        .name(format!("kafka-watch-{}", spec.trigger_id))
        .spawn({
            let (name, watch) = (name.clone(), Arc::clone(&watch));
            let exact: Vec<String> = spec
                .subscription
                .iter()
                .filter(|t| !t.starts_with('^'))
                .cloned()
                .collect();
            let limit = stall_limit(&spec);
            move || watchdog::watch(&name, &config, &exact, limit, &watch)
        })
        .map_err(|e| format!("cannot start the partition watcher: {e}"))?;
    let metrics = state.metrics();
    let mut paused = false;
    let mut last_commit = Instant::now();
    let mut outcome = Ok(());
    while !stop.load(Ordering::Acquire) {
        if watch.take_rejoin() {
            // Leaving commits what is durable (the revoke callback), and
            // joining again makes the group rebalance among live members.
            consumer.unsubscribe();
            if let Err(e) = consumer.subscribe(&topics) {
                outcome = Err(format!("cannot subscribe again to {topics:?}: {e}"));
                break;
            }
        }
        let busy = {
            let b = book.lock().unwrap_or_else(|p| p.into_inner());
            b.ledger.waiting() > 0 || !b.held.is_empty()
        };
        let polled = consumer.poll(if busy { BUSY_POLL } else { IDLE_POLL });
        let mut b = book.lock().unwrap_or_else(|p| p.into_inner());
        // Errors are logged by the context's `error`, rate-limited.
        if let Some(Ok(msg)) = polled {
            metrics.kafka().consumed();
            let m = incoming(&spec, &msg);
            if let Err(why) = &m.start {
                // It cannot start an execution, now or ever: say so, and
                // go past it (in its turn) rather than block the partition.
                metrics.kafka().undeliverable();
                tracing::error!(
                    trigger = name,
                    topic = m.topic,
                    partition = m.partition,
                    offset = m.offset,
                    "message skipped: {why}"
                );
            }
            b.held.push_back(m);
        }
        // Start what the engine will take, in order.
        let mut refused = None;
        while let Some(m) = b.held.pop_front() {
            match start(
                state.launcher(),
                state.metrics_handle(),
                &spec,
                flow,
                &inputs,
                &m,
            ) {
                Ok(step) => {
                    let partition = (m.topic, m.partition);
                    b.ledger.push(&partition, m.offset, step);
                }
                Err(why) => {
                    b.held.push_front(m);
                    refused = Some(why);
                    break;
                }
            }
        }
        match refused {
            Some(Refused::Stopped) => {
                // The server is shutting down: stop like a stop request,
                // committing what is durable.
                break;
            }
            Some(Refused::Full) if !paused => {
                // Backpressure: stop fetching instead of buffering.
                if let Ok(assignment) = consumer.assignment() {
                    let _ = consumer.pause(&assignment);
                }
                paused = true;
                metrics.kafka().paused();
            }
            None if paused => {
                if let Ok(assignment) = consumer.assignment() {
                    let _ = consumer.resume(&assignment);
                }
                paused = false;
            }
            _ => {}
        }
        if let Err(e) = b.ledger.advance(progress) {
            b.failed = Some(e);
        }
        if let Some(e) = &b.failed {
            outcome = Err(format!(
                "an execution's creation could not be made durable: {e}"
            ));
            break;
        }
        if last_commit.elapsed() >= spec.commit_interval {
            commit(&consumer, &mut b.ledger, CommitMode::Async, &name);
            last_commit = Instant::now();
        }
    }
    // Stopping: commit what is durable (waiting a little for what is on its
    // way), then leave the group.
    {
        let mut b = book.lock().unwrap_or_else(|p| p.into_inner());
        if b.failed.is_none() {
            let deadline = Instant::now() + DRAIN;
            while b.ledger.waiting() > 0 && Instant::now() < deadline {
                if b.ledger.advance(progress).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            commit(&consumer, &mut b.ledger, CommitMode::Sync, &name);
        }
    }
    consumer.unsubscribe();
    watch.stop.store(true, Ordering::Release);
    if watcher.join().is_err() {
        tracing::error!(trigger = name, "the partition watcher panicked");
    }
    tracing::info!(trigger = name, "Kafka trigger stopped consuming");
    outcome
}

/// A setting's value in a consumer's `config`, if it is set.
pub(super) fn setting<'a>(config: &'a [(String, String)], key: &str) -> Option<&'a str> {
    config
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Before joining: if this data folder's previous consumer of the trigger
/// may still be a member of the group (a `kill -9` leaves it there until
/// its session times out), removes it, so that the group rebalances now.
fn leave_previous(spec: &Spec, name: &str, member_file: &std::path::Path) {
    if !incarnation::can_leave(&spec.config) {
        return;
    }
    let Some(previous) = incarnation::read(member_file) else {
        return;
    };
    let get = |key| setting(&spec.config, key);
    let Some(bootstrap) = get("bootstrap.servers").or_else(|| get("metadata.broker.list")) else {
        return;
    };
    let client_id = get("client.id").unwrap_or("peregrine");
    match incarnation::leave(bootstrap, client_id, &spec.group_id, &previous) {
        Ok(true) => tracing::info!(
            trigger = name,
            member = previous,
            "removed this node's previous consumer from the group"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            trigger = name,
            member = previous,
            "cannot remove this node's previous consumer from the group (its \
             partitions come back after its session timeout): {e}"
        ),
    }
}

/// How long a partition of the group may go unconsumed before the watcher
/// asks for a rejoin: a dead owner is dropped from the group once the
/// broker has not heard from it for its session timeout (noticed at a live
/// member's next heartbeat, so up to a heartbeat interval later), and a
/// live one commits at least every commit interval. A rejoin before the
/// dead member is dropped would rebalance with it still in the group.
fn stall_limit(spec: &Spec) -> Duration {
    let millis = |key, default| {
        setting(&spec.config, key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    // librdkafka's defaults.
    let session = millis("session.timeout.ms", 45_000);
    let heartbeat = millis("heartbeat.interval.ms", 3_000);
    Duration::from_millis(session.saturating_add(heartbeat)) + spec.commit_interval
}

/// Starts a message's execution; a redelivered message finds its execution
/// and starts nothing (the shard answers that it existed).
fn start(
    launcher: &Launcher,
    metrics: &Arc<Metrics>,
    spec: &Spec,
    flow: &StoredFlow,
    inputs: &Map<String, Value>,
    m: &Incoming,
) -> Result<Step<Created>, Refused> {
    let Ok((id, trigger)) = &m.start else {
        return Ok(Step::Done);
    };
    let launched = launcher.launch(Launch {
        flow,
        inputs: inputs.clone(),
        labels: Vec::new(),
        trigger: Some(execution_trigger(
            &spec.trigger_id,
            "io.kestra.plugin.kafka.RealtimeTrigger",
            trigger.clone(),
        )),
        id: *id,
        ack: Ack::Receipt,
        schedule_date: None,
    });
    match launched {
        Ok(answer) => Ok(Step::Pending(Created {
            answer,
            receipt: OnceLock::new(),
            metrics: Arc::clone(metrics),
        })),
        Err(LaunchError::Refused(
            Refused::TooMany(_) | Refused::Overloaded(_) | Refused::NoSpace,
        )) => Err(Refused::Full),
        Err(LaunchError::Refused(refused)) => Err(refused),
        // The flow was disabled since: its consumer is being stopped.
        Err(LaunchError::Disabled) => Err(Refused::Stopped),
    }
}

fn incoming<M: Message>(spec: &Spec, msg: &M) -> Incoming {
    let headers: Vec<(&str, Option<&[u8]>)> = msg
        .headers()
        .map(|h| {
            (0..h.count())
                .filter_map(|i| h.try_get(i))
                .map(|h| (h.key, h.value))
                .collect()
        })
        .unwrap_or_default();
    let parts = Parts {
        topic: msg.topic(),
        partition: msg.partition(),
        offset: msg.offset(),
        timestamp_ms: msg.timestamp().to_millis(),
        key: msg.key(),
        value: msg.payload(),
        headers: &headers,
    };
    let start = message::variables(&parts, spec.key, spec.value).map(|trigger| {
        let id = ExecutionId::for_message(&MessageOrigin {
            namespace: &spec.namespace,
            flow_id: &spec.flow_id,
            trigger_id: &spec.trigger_id,
            group_id: &spec.group_id,
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
        });
        (id, trigger)
    });
    Incoming {
        topic: msg.topic().to_owned(),
        partition: msg.partition(),
        offset: msg.offset(),
        start,
    }
}

/// Commits every partition's offset that moved.
fn commit(
    consumer: &BaseConsumer<Context>,
    ledger: &mut Ledger<Created>,
    mode: CommitMode,
    name: &str,
) {
    let commits = ledger.take_commits();
    if commits.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::with_capacity(commits.len());
    for ((topic, partition), next) in &commits {
        if let Err(e) = list.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
            tracing::error!(trigger = name, "bad offset {topic}/{partition}@{next}: {e}");
        }
    }
    if let Err(e) = consumer.commit(&list, mode) {
        tracing::warn!(trigger = name, "offset commit failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_go_defaults_then_server_then_flow_then_forced() {
        let server: BTreeMap<String, String> = [
            ("fetch.wait.max.ms".to_owned(), "50".to_owned()),
            ("client.id".to_owned(), "node-a".to_owned()),
        ]
        .into();
        let flow: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "bootstrap.servers": "127.0.0.1:9092",
            "fetch.wait.max.ms": 5,
            "enable.auto.commit": "true",
            "group.id": "not-this-one",
        }))
        .unwrap();
        let config: BTreeMap<String, String> = client_config(&server, &flow, "orders")
            .into_iter()
            .collect();
        assert_eq!(config["fetch.wait.max.ms"], "5");
        assert_eq!(config["client.id"], "node-a");
        assert_eq!(config["bootstrap.servers"], "127.0.0.1:9092");
        assert_eq!(config["auto.offset.reset"], "earliest");
        assert_eq!(config["session.timeout.ms"], "6000");
        assert_eq!(config["heartbeat.interval.ms"], "500");
        assert_eq!(config["group.id"], "orders");
        assert_eq!(config["enable.auto.commit"], "false");
        assert_eq!(config["enable.auto.offset.store"], "false");
    }

    #[test]
    fn the_stall_limit_covers_a_session_a_heartbeat_and_a_commit_interval() {
        let spec = |config: &[(&str, &str)]| Spec {
            namespace: "ns".into(),
            flow_id: "f".into(),
            trigger_id: "t".into(),
            group_id: "g".into(),
            subscription: vec!["orders".into()],
            key: Deserializer::String,
            value: Deserializer::Json,
            config: config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            commit_interval: Duration::from_millis(500),
        };
        let defaults = client_config(&BTreeMap::new(), &Map::new(), "g");
        let mut with_defaults = spec(&[]);
        with_defaults.config = defaults;
        assert_eq!(stall_limit(&with_defaults), Duration::from_millis(7_000));
        assert_eq!(
            stall_limit(&spec(&[
                ("session.timeout.ms", "10000"),
                ("heartbeat.interval.ms", "2000")
            ])),
            Duration::from_millis(12_500)
        );
        // librdkafka's own defaults when nothing is set.
        assert_eq!(stall_limit(&spec(&[])), Duration::from_millis(48_500));
    }
}
