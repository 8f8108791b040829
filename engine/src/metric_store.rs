//! Task metrics as Kestra's metric API serves them: every metric a task run
//! recorded (a script's `::{"metrics":[...]}::`), kept for a retention
//! window (the executions' own, a day by default) from the execution's
//! first metric (a long-running execution's may go before it does), in a log of their own (`data/metrics`, records of a log
//! kind the WAL drops once past the retention) and in memory, bounded, for
//! reading by execution and across a flow's executions.
//!
//! A metric comes with its job's answer, journaled with it
//! (`Entry::WorkedMeasured`), so a replay records the same metrics again.
//! The shards hand each changed execution over (`MetricStore::record`, on
//! the shard's thread): the metrics it recorded since the last change are
//! appended to the log and the index. They are numbered in the order
//! recorded, and those a replay records again are skipped, as the log
//! store skips its lines (a restart of the execution through the API
//! numbers them anew, after those of its earlier runs).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use peregrine_wal::{Key, Kind, Wal};
use serde_json::{Map, Value, json};

use crate::execution::{Execution, ExecutionId, Metric, MetricKind, State, format_date};
use crate::kept::{Kept, Numbering};
use crate::lazy_log::LazyLog;

/// The key space of metric records in their log.
const SPACE: u8 = 2;
/// Metrics of one execution (a log kind: it expires after the retention).
pub const METRICS: Kind = Kind::new(3);
/// The execution's metrics were deleted: what came before is dead.
const GONE: Kind = Kind::new(4);
/// Most bytes of metrics one record holds.
const MAX_RECORD_BYTES: usize = 256 << 10;

/// How much the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricLimits {
    /// How long an execution's metrics are kept after its first. Default:
    /// a day, as executions.
    pub retention: Duration,
    /// Most bytes of metrics held in memory; past it, the oldest
    /// executions' go first. Default: 64 MiB.
    pub max_bytes: usize,
}

impl Default for MetricLimits {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(24 * 3600),
            max_bytes: 64 << 20,
        }
    }
}

/// One metric of an execution, as Kestra's `MetricEntry`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricEntry {
    pub execution: ExecutionId,
    pub namespace: Arc<str>,
    pub flow_id: Arc<str>,
    pub metric: Metric,
}

impl MetricEntry {
    /// Kestra's `MetricEntry` JSON.
    pub fn json(&self) -> Value {
        let m = &self.metric;
        let tags: Map<String, Value> = m
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        json!({
            "namespace": &*self.namespace,
            "flowId": &*self.flow_id,
            "taskId": &*m.task_id,
            "executionId": self.execution.to_string(),
            "taskRunId": m.task_run.to_string(),
            "type": m.kind.as_str(),
            "name": m.name,
            "value": m.value,
            "timestamp": format_date(m.date),
            "tags": tags,
            "executionKind": "NORMAL",
        })
    }

    fn bytes(&self) -> usize {
        self.metric.bytes() + 32
    }
}

/// The metric store; cloning is a reference count.
#[derive(Clone)]
pub struct MetricStore(Arc<Inner>);

struct Inner {
    log: LazyLog,
    limits: MetricLimits,
    held: Mutex<Held>,
}

type Held = crate::kept::Held<Series>;

/// One execution's metrics.
struct Series {
    namespace: Arc<str>,
    flow_id: Arc<str>,
    numbering: Numbering,
    entries: Vec<Arc<MetricEntry>>,
    bytes: usize,
    ended: bool,
    /// It has a place in `Held::order` (a running execution whose
    /// metrics were let go keeps its series, so that they are not kept
    /// again, but has none until it records more).
    in_order: bool,
}

impl Series {
    fn new(namespace: Arc<str>, flow_id: Arc<str>) -> Self {
        Self {
            namespace,
            flow_id,
            numbering: Numbering::default(),
            entries: Vec::new(),
            bytes: 0,
            ended: false,
            in_order: true,
        }
    }
}

impl Kept for Series {
    fn bytes(&self) -> usize {
        self.bytes
    }

    fn ended(&self) -> bool {
        self.ended
    }

    fn let_go(&mut self) -> usize {
        self.entries = Vec::new();
        std::mem::take(&mut self.bytes)
    }
}

impl std::fmt::Debug for MetricStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricStore")
            .field("durable", &self.0.log.is_durable())
            .field("limits", &self.0.limits)
            .finish_non_exhaustive()
    }
}

impl PartialEq for MetricStore {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The WAL settings the store's log needs over `base`: its record kind
/// expires after the retention.
pub fn wal_config(base: peregrine_wal::Config, limits: &MetricLimits) -> peregrine_wal::Config {
    crate::lazy_log::expiring(base, METRICS, limits.retention)
}

impl MetricStore {
    /// A store kept in memory only.
    pub fn in_memory(limits: MetricLimits) -> Self {
        Self::with(LazyLog::none(), limits, Held::default())
    }

    /// An empty store whose log is made in `dir` (with `config`, from
    /// [`wal_config`]) when the first metric comes.
    pub fn deferred(dir: PathBuf, config: peregrine_wal::Config, limits: MetricLimits) -> Self {
        Self::with(LazyLog::deferred(dir, config), limits, Held::default())
    }

    /// The store kept in `wal` (opened with [`wal_config`]), with the
    /// metrics its recovery read back (those within the retention).
    pub fn from_log(wal: Wal, recovered: &peregrine_wal::Recovered, limits: MetricLimits) -> Self {
        let mut held = Held::default();
        for (key, records) in recovered.iter() {
            if key.space() != SPACE {
                continue;
            }
            let execution = crate::execution::Id::from_u128(key.id());
            for record in records.filter(|r| r.kind() == METRICS) {
                match decode(execution, record.payload()) {
                    Some(decoded) => held.add(decoded),
                    None => tracing::error!(%execution, "an unreadable metric record is skipped"),
                }
            }
        }
        Self::with(LazyLog::open(wal), limits, held)
    }

    fn with(log: LazyLog, limits: MetricLimits, held: Held) -> Self {
        Self(Arc::new(Inner {
            log,
            limits,
            held: Mutex::new(held),
        }))
    }

    /// The log to append to, made now if it is deferred (under the lock,
    /// so once); none in memory, or when it cannot be made.
    fn log(&self) -> Option<&Wal> {
        self.0.log.or_memory("the metric store's metrics")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // Every change under the lock leaves the index whole.
        self.0.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the metrics `execution` recorded since it was last recorded;
    /// `ended`: it ended.
    pub fn record(&self, execution: &Execution, ended: bool, now: DateTime<Utc>) {
        let metrics = execution.metrics().entries();
        if metrics.is_empty() && !ended {
            // Nothing to keep: the lock, which every shard takes, is not
            // taken at each change of an execution that records none.
            return;
        }
        let id = execution.id();
        let mut held = self.lock();
        if !held.streams.contains_key(&id) {
            if metrics.is_empty() {
                return;
            }
            held.order.push_back((now, id));
        }
        let restarts =
            u32::try_from(execution.history().count(State::Restarted)).unwrap_or(u32::MAX);
        let series = held.streams.entry(id).or_insert_with(|| {
            Series::new(
                Arc::clone(&execution.namespace),
                Arc::clone(&execution.flow_id),
            )
        });
        let fresh: Vec<Arc<MetricEntry>> = series
            .numbering
            .fresh(restarts, metrics)
            .iter()
            .map(|m| {
                Arc::new(MetricEntry {
                    execution: id,
                    namespace: Arc::clone(&series.namespace),
                    flow_id: Arc::clone(&series.flow_id),
                    metric: m.clone(),
                })
            })
            .collect();
        series.ended = ended;
        let reorder = !fresh.is_empty() && !series.in_order;
        if !fresh.is_empty() {
            if let Some(wal) = self.log() {
                append(wal, id, series, &fresh);
            }
            let added: usize = fresh.iter().map(|m| m.bytes()).sum();
            series.bytes += added;
            series.in_order = true;
            series.entries.extend(fresh);
            held.bytes += added;
        }
        if reorder {
            held.order.push_back((now, id));
        }
        if ended && held.streams.get(&id).is_some_and(|s| !s.in_order) {
            // Its metrics were let go while it ran: nothing is left of it.
            held.streams.remove(&id);
        }
        self.evict(&mut held, now);
    }

    /// Lets go of the oldest executions' metrics: past the retention, or
    /// past the memory budget.
    fn evict(&self, held: &mut Held, now: DateTime<Utc>) {
        let limits = &self.0.limits;
        held.evict(now, limits.retention, limits.max_bytes, |s| {
            s.in_order = false;
        });
    }

    /// The metrics of execution `id`, in the order recorded.
    pub fn of_execution(&self, id: ExecutionId) -> Vec<Arc<MetricEntry>> {
        self.lock()
            .streams
            .get(&id)
            .map(|s| s.entries.clone())
            .unwrap_or_default()
    }

    /// Every metric `keep` takes, of every execution (oldest execution
    /// first, each in the order recorded).
    pub fn search(&self, keep: impl Fn(&MetricEntry) -> bool) -> Vec<Arc<MetricEntry>> {
        // Take the pointers under the lock, which the shards' threads
        // also take, and filter after.
        let all: Vec<Arc<MetricEntry>> = {
            let held = self.lock();
            held.order
                .iter()
                .filter_map(|(_, id)| held.streams.get(id))
                .flat_map(|s| s.entries.iter().cloned())
                .collect()
        };
        all.into_iter().filter(|m| keep(m)).collect()
    }

    /// Deletes the metrics of execution `id`, in memory and on disk; how
    /// many were held. Its later metrics are kept as they come.
    pub fn delete(&self, id: ExecutionId) -> usize {
        let mut held = self.lock();
        let (freed, removed) = match held.streams.get_mut(&id) {
            Some(series) => (
                std::mem::take(&mut series.bytes),
                std::mem::take(&mut series.entries).len(),
            ),
            None => (0, 0),
        };
        held.bytes -= freed;
        if let Some(wal) = self.0.log.get() {
            let key = Key::new(SPACE, id.as_u128());
            if let Err(e) = wal.append_terminal(GONE, key, b"") {
                tracing::error!(execution = %id, "deleting metrics: {e}");
            }
            wal.forget(key);
        }
        removed
    }

    /// Bytes of metrics held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

impl Held {
    /// A record read back at start.
    fn add(&mut self, decoded: Decoded) {
        let Decoded {
            execution,
            namespace,
            flow_id,
            numbering,
            metrics,
        } = decoded;
        if !self.streams.contains_key(&execution) {
            let first = metrics.first().map_or_else(Utc::now, |m| m.date);
            self.order.push_back((first, execution));
        }
        let series = self
            .streams
            .entry(execution)
            .or_insert_with(|| Series::new(Arc::clone(&namespace), Arc::clone(&flow_id)));
        series.numbering.merge(numbering);
        // Whether it ended is not known here: one still running says so
        // at its next change (its replay); until then it is let go, if it
        // must be, as a running one (its numbering stays, so that its
        // replay keeps nothing twice).
        for metric in metrics {
            let entry = MetricEntry {
                execution,
                namespace: Arc::clone(&namespace),
                flow_id: Arc::clone(&flow_id),
                metric,
            };
            series.bytes += entry.bytes();
            self.bytes += entry.bytes();
            series.entries.push(Arc::new(entry));
        }
    }
}

/// Appends `metrics` of execution `id` to `wal`, in records of a bounded
/// size. The log syncs them with its next group commit.
fn append(wal: &Wal, id: ExecutionId, series: &Series, metrics: &[Arc<MetricEntry>]) {
    let key = Key::new(SPACE, id.as_u128());
    for chunk in chunks(metrics) {
        let payload = json!({
            "namespace": &*series.namespace,
            "flowId": &*series.flow_id,
            "restarts": series.numbering.restarts,
            "seen": series.numbering.seen,
            "metrics": chunk.iter().map(|m| encode(&m.metric)).collect::<Vec<_>>(),
        });
        if let Err(e) = wal.append(METRICS, key, payload.to_string().as_bytes()) {
            tracing::error!(execution = %id, "metrics not kept: {e}");
        }
    }
}

/// `metrics` in runs of at most [`MAX_RECORD_BYTES`] (one at least).
fn chunks(metrics: &[Arc<MetricEntry>]) -> impl Iterator<Item = &[Arc<MetricEntry>]> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= metrics.len() {
            return None;
        }
        let (mut end, mut bytes) = (start, 0);
        while end < metrics.len()
            && (end == start || bytes + metrics[end].bytes() <= MAX_RECORD_BYTES)
        {
            bytes += metrics[end].bytes();
            end += 1;
        }
        let chunk = &metrics[start..end];
        start = end;
        Some(chunk)
    })
}

fn encode(m: &Metric) -> Value {
    json!({
        "t": m.date.timestamp_micros(),
        "task": &*m.task_id,
        "run": m.task_run.as_u128().to_string(),
        "k": m.kind.as_str(),
        "n": m.name,
        "v": m.value,
        "g": m.tags,
    })
}

struct Decoded {
    execution: ExecutionId,
    namespace: Arc<str>,
    flow_id: Arc<str>,
    numbering: Numbering,
    metrics: Vec<Metric>,
}

fn decode(execution: ExecutionId, payload: &[u8]) -> Option<Decoded> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let mut metrics = Vec::new();
    for m in v.get("metrics")?.as_array()? {
        let run: u128 = m.get("run")?.as_str()?.parse().ok()?;
        let tags = m
            .get("g")?
            .as_array()?
            .iter()
            .map(|t| {
                Some((
                    t.get(0)?.as_str()?.to_owned(),
                    t.get(1)?.as_str()?.to_owned(),
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        metrics.push(Metric {
            date: DateTime::from_timestamp_micros(m.get("t")?.as_i64()?)?,
            task_id: Arc::from(m.get("task")?.as_str()?),
            task_run: crate::execution::Id::from_u128(run),
            kind: MetricKind::parse(m.get("k")?.as_str()?)?,
            name: m.get("n")?.as_str()?.to_owned(),
            value: m.get("v")?.as_f64()?,
            tags,
        });
    }
    Some(Decoded {
        execution,
        namespace: Arc::from(v.get("namespace")?.as_str()?),
        flow_id: Arc::from(v.get("flowId")?.as_str()?),
        numbering: Numbering {
            restarts: u32::try_from(v.get("restarts")?.as_u64()?).ok()?,
            seen: usize::try_from(v.get("seen")?.as_u64()?).ok()?,
        },
        metrics,
    })
}

#[cfg(test)]
mod tests;
