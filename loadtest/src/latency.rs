//! What one measuring thread saw: an HDR histogram of the latencies of the
//! executions it completed, and its counts. Each thread keeps its own, with
//! no sharing on the hot path; the run merges them at the end.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, up to an hour, to three
/// significant digits (0.1% resolution at every scale).
const LOWEST_US: u64 = 1;
const HIGHEST_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// How one execution ended, as the generator judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Terminal in SUCCESS with the expected outputs, and durable.
    Completed,
    /// Terminal in another state, wrong outputs, not durable, or refused.
    Failed,
}

/// One thread's measurements.
#[derive(Debug, Clone)]
pub struct Tally {
    histogram: Histogram<u64>,
    completed: u64,
    failed: u64,
    /// Backpressure answers (a full inbox, 429, 503) that were retried.
    retried: u64,
    /// Latency of the run's last execution, if this thread saw it end.
    last: Option<Duration>,
    /// When the latest completion this thread saw happened.
    finished_at: Option<Instant>,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    pub fn new() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
                .expect("constant bounds are valid"),
            completed: 0,
            failed: 0,
            retried: 0,
            last: None,
            finished_at: None,
        }
    }

    /// Execution ended at `at` with `latency` from its intended start.
    /// `is_last`: it is the last execution of the run's schedule.
    pub fn record(&mut self, outcome: Outcome, latency: Duration, is_last: bool, at: Instant) {
        match outcome {
            Outcome::Completed => {
                let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.histogram.saturating_record(us.max(LOWEST_US));
                self.completed += 1;
                self.finished_at = Some(self.finished_at.map_or(at, |t| t.max(at)));
            }
            Outcome::Failed => self.failed += 1,
        }
        if is_last {
            self.last = Some(latency);
        }
    }

    /// An execution that never ended (or was never accepted).
    pub fn record_lost(&mut self) {
        self.failed += 1;
    }

    pub fn record_retry(&mut self) {
        self.retried += 1;
    }

    /// Adds another thread's measurements to these.
    pub fn merge(&mut self, other: &Tally) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms with the same bounds always add");
        self.completed += other.completed;
        self.failed += other.failed;
        self.retried += other.retried;
        self.last = self.last.or(other.last);
        self.finished_at = match (self.finished_at, other.finished_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    pub fn completed(&self) -> u64 {
        self.completed
    }

    pub fn failed(&self) -> u64 {
        self.failed
    }

    pub fn retried(&self) -> u64 {
        self.retried
    }

    pub fn last(&self) -> Option<Duration> {
        self.last
    }

    pub fn finished_at(&self) -> Option<Instant> {
        self.finished_at
    }

    /// The latency at `quantile` (0..=1) in milliseconds; `None` before any
    /// completion.
    pub fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        (self.completed > 0).then(|| self.histogram.value_at_quantile(quantile) as f64 / 1000.0)
    }

    pub fn max_ms(&self) -> Option<f64> {
        (self.completed > 0).then(|| self.histogram.max() as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_come_from_completed_executions_only() {
        let now = Instant::now();
        let mut t = Tally::new();
        for n in 1..=100 {
            t.record(Outcome::Completed, ms(n), false, now);
        }
        t.record(Outcome::Failed, ms(10_000), false, now);
        assert_eq!(t.completed(), 100);
        assert_eq!(t.failed(), 1);
        let p50 = t.quantile_ms(0.5).unwrap();
        assert!((p50 - 50.0).abs() < 0.1, "p50 {p50}");
        let p99 = t.quantile_ms(0.99).unwrap();
        assert!((p99 - 99.0).abs() < 0.1, "p99 {p99}");
        let max = t.max_ms().unwrap();
        assert!(
            (max - 100.0).abs() < 0.1,
            "the failed one is not a latency: {max}"
        );
    }

    #[test]
    fn merged_threads_equal_one_thread_that_saw_everything() {
        let now = Instant::now();
        let mut all = Tally::new();
        let mut a = Tally::new();
        let mut b = Tally::new();
        for n in 0..1000u64 {
            let latency = Duration::from_micros(137 * n + 5);
            all.record(Outcome::Completed, latency, n == 999, now);
            let part = if n % 3 == 0 { &mut a } else { &mut b };
            part.record(Outcome::Completed, latency, n == 999, now);
        }
        a.record_retry();
        b.record_lost();
        let mut merged = Tally::new();
        merged.merge(&a);
        merged.merge(&b);
        assert_eq!(merged.completed(), 1000);
        assert_eq!(merged.failed(), 1);
        assert_eq!(merged.retried(), 1);
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(merged.quantile_ms(q), all.quantile_ms(q), "q {q}");
        }
        assert_eq!(merged.max_ms(), all.max_ms());
        assert_eq!(merged.last(), Some(Duration::from_micros(137 * 999 + 5)));
    }

    #[test]
    fn empty_tally_has_no_percentiles() {
        let t = Tally::new();
        assert_eq!(t.quantile_ms(0.5), None);
        assert_eq!(t.max_ms(), None);
        assert_eq!(t.last(), None);
    }

    #[test]
    fn huge_latencies_saturate_instead_of_failing() {
        let mut t = Tally::new();
        t.record(
            Outcome::Completed,
            Duration::from_secs(10 * 3600),
            true,
            Instant::now(),
        );
        assert_eq!(t.completed(), 1);
        assert!(t.max_ms().unwrap() >= 3_599_000.0);
        assert_eq!(t.last(), Some(Duration::from_secs(10 * 3600)));
    }

    #[test]
    fn latest_completion_is_kept() {
        let early = Instant::now();
        let late = early + ms(5);
        let mut a = Tally::new();
        a.record(Outcome::Completed, ms(1), false, late);
        let mut b = Tally::new();
        b.record(Outcome::Completed, ms(1), false, early);
        b.merge(&a);
        assert_eq!(b.finished_at(), Some(late));
    }
}
