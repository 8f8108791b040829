//! Counters the shards and handlers bump with relaxed atomics, and their
//! Prometheus text exposition, written out on scrape.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use peregrine_engine::State;

/// Upper bounds of the execution latency histogram, in seconds: from the
/// sub-millisecond inline flows to long-sleeping ones.
const LATENCY_BOUNDS_S: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
    300.0,
];

/// Everything `/metrics` reports, except what is read at scrape time.
#[derive(Debug)]
pub struct Metrics {
    created: AtomicU64,
    rejected: AtomicU64,
    finished: [AtomicU64; State::ALL.len()],
    latency_buckets: [AtomicU64; LATENCY_BOUNDS_S.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    followers: AtomicI64,
    followers_dropped: AtomicU64,
    kafka: KafkaMetrics,
}

/// What the Kafka triggers count.
#[derive(Debug, Default)]
pub struct KafkaMetrics {
    consumed: AtomicU64,
    started: AtomicU64,
    redelivered: AtomicU64,
    undeliverable: AtomicU64,
    paused: AtomicU64,
}

impl KafkaMetrics {
    /// A message was read.
    pub fn consumed(&self) {
        self.consumed.fetch_add(1, Ordering::Relaxed);
    }

    /// A message started its execution.
    pub fn started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    /// A message came again whose execution exists: skipped.
    pub fn redelivered(&self) {
        self.redelivered.fetch_add(1, Ordering::Relaxed);
    }

    /// A message could not start an execution (its key or value does not
    /// deserialize): skipped.
    pub fn undeliverable(&self) {
        self.undeliverable.fetch_add(1, Ordering::Relaxed);
    }

    /// Consumption paused because the engine pushed back.
    pub fn paused(&self) {
        self.paused.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        for (name, help, counter) in [
            (
                "consumed",
                "Kafka messages read by realtime triggers.",
                &self.consumed,
            ),
            (
                "started",
                "Executions started by Kafka messages.",
                &self.started,
            ),
            (
                "redelivered",
                "Kafka messages whose execution existed already (redeliveries), skipped.",
                &self.redelivered,
            ),
            (
                "undeliverable",
                "Kafka messages that could not be deserialized, skipped.",
                &self.undeliverable,
            ),
            (
                "paused",
                "Times a Kafka trigger paused consuming because the engine pushed back.",
                &self.paused,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP peregrine_kafka_{name}_total {help}\n\
                 # TYPE peregrine_kafka_{name}_total counter\n\
                 peregrine_kafka_{name}_total {}",
                counter.load(Ordering::Relaxed)
            );
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            created: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            finished: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_count: AtomicU64::new(0),
            latency_sum_us: AtomicU64::new(0),
            followers: AtomicI64::new(0),
            followers_dropped: AtomicU64::new(0),
            kafka: KafkaMetrics::default(),
        }
    }
}

/// What is read at scrape time rather than counted.
#[derive(Debug, Default)]
pub struct Gauges {
    pub inbox_depths: Vec<usize>,
    pub running: usize,
    /// Finished executions kept readable (the retention window).
    pub finished: usize,
    /// Each shard's WAL, when executions are journaled.
    pub wals: Vec<peregrine_wal::WalStats>,
}

impl Metrics {
    pub fn created(&self) {
        self.created.fetch_add(1, Ordering::Relaxed);
    }

    /// An execution refused for backpressure (429/503).
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// An execution ended in `state`, `took` after the API accepted it.
    pub fn finished(&self, state: State, took: Duration) {
        if let Some(i) = State::ALL.iter().position(|s| *s == state) {
            self.finished[i].fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let secs = us as f64 / 1e6;
        if let Some(i) = LATENCY_BOUNDS_S.iter().position(|b| secs <= *b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn follower_joined(&self) {
        self.followers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn follower_left(&self) {
        self.followers.fetch_sub(1, Ordering::Relaxed);
    }

    /// A follower fell too far behind and was cut off.
    pub fn follower_dropped(&self) {
        self.followers_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn kafka(&self) -> &KafkaMetrics {
        &self.kafka
    }

    pub fn followers(&self) -> i64 {
        self.followers.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP peregrine_executions_created_total Executions accepted (API calls, webhooks, Kafka messages).\n\
             # TYPE peregrine_executions_created_total counter\n\
             peregrine_executions_created_total {}",
            load(&self.created)
        );
        let _ = writeln!(
            out,
            "# HELP peregrine_executions_rejected_total Executions refused for backpressure (429/503).\n\
             # TYPE peregrine_executions_rejected_total counter\n\
             peregrine_executions_rejected_total {}",
            load(&self.rejected)
        );
        out.push_str(
            "# HELP peregrine_executions_finished_total Executions ended, by final state.\n\
             # TYPE peregrine_executions_finished_total counter\n",
        );
        for (state, n) in State::ALL.iter().zip(&self.finished) {
            if state.is_terminal() {
                let _ = writeln!(
                    out,
                    "peregrine_executions_finished_total{{state=\"{state}\"}} {}",
                    load(n)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP peregrine_executions_running Executions accepted and not ended.\n\
             # TYPE peregrine_executions_running gauge\n\
             peregrine_executions_running {}",
            gauges.running
        );
        let _ = writeln!(
            out,
            "# HELP peregrine_executions_kept Finished executions kept readable for the retention window.\n\
             # TYPE peregrine_executions_kept gauge\n\
             peregrine_executions_kept {}",
            gauges.finished
        );
        out.push_str(
            "# HELP peregrine_execution_duration_seconds Time from an execution's start to its end.\n\
             # TYPE peregrine_execution_duration_seconds histogram\n",
        );
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BOUNDS_S.iter().zip(&self.latency_buckets) {
            cumulative += load(n);
            let _ = writeln!(
                out,
                "peregrine_execution_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(
            out,
            "peregrine_execution_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             peregrine_execution_duration_seconds_sum {}\n\
             peregrine_execution_duration_seconds_count {count}",
            load(&self.latency_sum_us) as f64 / 1e6
        );
        out.push_str(
            "# HELP peregrine_shard_inbox_depth Messages waiting in each shard's inbox.\n\
             # TYPE peregrine_shard_inbox_depth gauge\n",
        );
        for (shard, depth) in gauges.inbox_depths.iter().enumerate() {
            let _ = writeln!(
                out,
                "peregrine_shard_inbox_depth{{shard=\"{shard}\"}} {depth}"
            );
        }
        render_wal(&mut out, &gauges.wals);
        let _ = writeln!(
            out,
            "# HELP peregrine_sse_followers Open execution follow streams.\n\
             # TYPE peregrine_sse_followers gauge\n\
             peregrine_sse_followers {}",
            self.followers().max(0)
        );
        let _ = writeln!(
            out,
            "# HELP peregrine_sse_followers_dropped_total Follow streams cut off for falling behind.\n\
             # TYPE peregrine_sse_followers_dropped_total counter\n\
             peregrine_sse_followers_dropped_total {}",
            load(&self.followers_dropped)
        );
        self.kafka.render(&mut out);
        out
    }
}

/// The shards' WAL fsyncs: a latency histogram summed over shards, the
/// bytes they covered, and the segments in use per shard.
fn render_wal(out: &mut String, wals: &[peregrine_wal::WalStats]) {
    if wals.is_empty() {
        return;
    }
    out.push_str(
        "# HELP peregrine_wal_fsync_seconds Time of each WAL sync (all shards).\n\
         # TYPE peregrine_wal_fsync_seconds histogram\n",
    );
    for (i, le) in peregrine_wal::SYNC_BUCKETS_MICROS.iter().enumerate() {
        let count: u64 = wals.iter().map(|w| w.sync_buckets[i]).sum();
        let _ = writeln!(
            out,
            "peregrine_wal_fsync_seconds_bucket{{le=\"{}\"}} {count}",
            *le as f64 / 1e6
        );
    }
    let syncs: u64 = wals.iter().map(|w| w.syncs).sum();
    let seconds: f64 = wals.iter().map(|w| w.sync_time.as_secs_f64()).sum();
    let _ = writeln!(
        out,
        "peregrine_wal_fsync_seconds_bucket{{le=\"+Inf\"}} {syncs}\n\
         peregrine_wal_fsync_seconds_sum {seconds}\n\
         peregrine_wal_fsync_seconds_count {syncs}"
    );
    let _ = writeln!(
        out,
        "# HELP peregrine_wal_synced_bytes_total Bytes made durable by WAL syncs.\n\
         # TYPE peregrine_wal_synced_bytes_total counter\n\
         peregrine_wal_synced_bytes_total {}",
        wals.iter().map(|w| w.synced_bytes).sum::<u64>()
    );
    out.push_str(
        "# HELP peregrine_wal_segments Segment files in use per shard.\n\
         # TYPE peregrine_wal_segments gauge\n",
    );
    for (shard, w) in wals.iter().enumerate() {
        let _ = writeln!(
            out,
            "peregrine_wal_segments{{shard=\"{shard}\"}} {}",
            w.segments
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_states_are_labelled() {
        let m = Metrics::default();
        m.created();
        m.finished(State::Success, Duration::from_micros(700));
        m.finished(State::Failed, Duration::from_secs(2));
        let text = m.render(&Gauges {
            inbox_depths: vec![0, 3],
            running: 1,
            finished: 4,
            wals: Vec::new(),
        });
        assert!(
            text.contains("peregrine_executions_created_total 1\n"),
            "{text}"
        );
        assert!(text.contains("peregrine_executions_finished_total{state=\"SUCCESS\"} 1\n"));
        assert!(text.contains("peregrine_executions_finished_total{state=\"FAILED\"} 1\n"));
        assert!(!text.contains("state=\"RUNNING\""));
        assert!(text.contains("peregrine_execution_duration_seconds_bucket{le=\"0.0005\"} 0\n"));
        assert!(text.contains("peregrine_execution_duration_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("peregrine_execution_duration_seconds_bucket{le=\"2.5\"} 2\n"));
        assert!(text.contains("peregrine_execution_duration_seconds_count 2\n"));
        assert!(text.contains("peregrine_shard_inbox_depth{shard=\"1\"} 3\n"));
        assert!(text.contains("peregrine_executions_running 1\n"));
        assert!(text.contains("peregrine_executions_kept 4\n"));
    }
}
