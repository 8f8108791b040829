//! `--find-max`: the highest rate the target sustains within a p99 SLO.
//!
//! Rates double from a start until one fails, then the interval between the
//! highest passing and the lowest failing rate is bisected until it is
//! narrower than a relative precision. If the start itself fails, rates halve
//! until one passes. The search is pure: the caller runs each probe and says
//! whether it passed, so the logic is tested without running anything.

use crate::report::RunReport;

/// The state of the search.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxSearch {
    start: f64,
    /// Highest rate seen passing.
    passed: Option<f64>,
    /// Lowest rate seen failing.
    failed: Option<f64>,
    /// Stop when `failed - passed <= precision * passed`.
    precision: f64,
    /// Never probe above this (a bound on the generator's own memory).
    ceiling: f64,
    /// Never probe below this: nothing sustainable was found.
    floor: f64,
}

impl MaxSearch {
    /// `start`, `precision` and `ceiling` must be positive, `start <= ceiling`.
    pub fn new(start: f64, precision: f64, ceiling: f64) -> Self {
        Self {
            start,
            passed: None,
            failed: None,
            precision,
            ceiling,
            floor: 1.0,
        }
    }

    /// The next rate to probe, or `None` when the search is over.
    pub fn next_rate(&self) -> Option<f64> {
        match (self.passed, self.failed) {
            (None, None) => Some(self.start),
            (Some(pass), None) => {
                if pass >= self.ceiling {
                    None
                } else {
                    Some((pass * 2.0).min(self.ceiling))
                }
            }
            (None, Some(fail)) => {
                let next = (fail / 2.0).round();
                (next >= self.floor && next < fail).then_some(next)
            }
            (Some(pass), Some(fail)) => {
                let gap = fail - pass;
                if gap <= self.precision * pass || gap <= 1.0 {
                    None
                } else {
                    let mid = ((pass + fail) / 2.0).round();
                    (mid > pass && mid < fail).then_some(mid)
                }
            }
        }
    }

    /// The probe at `rate` passed or not.
    pub fn record(&mut self, rate: f64, passed: bool) {
        if passed {
            if self.passed.is_none_or(|p| rate > p) {
                self.passed = Some(rate);
            }
            // A pass above a failure (noise): the failure no longer bounds.
            if self.failed.is_some_and(|f| f <= rate) {
                self.failed = None;
            }
        } else if self.failed.is_none_or(|f| rate < f) {
            self.failed = Some(rate);
            if self.passed.is_some_and(|p| p >= rate) {
                self.passed = None;
            }
        }
    }

    /// The highest sustainable rate found so far.
    pub fn best(&self) -> Option<f64> {
        self.passed
    }

    /// The lowest rate found unsustainable so far.
    pub fn lowest_failure(&self) -> Option<f64> {
        self.failed
    }
}

/// Whether a probe counts as sustained: every execution completed with the
/// right result, and p99 within the SLO. Latency runs from each intended
/// start, so a target (or generator) that falls behind the schedule fails
/// the SLO: the achieved rate needs no separate check.
pub fn sustainable(run: &RunReport, slo_p99_ms: f64) -> bool {
    run.failed == 0
        && run.completed == run.executions
        && run.p99_ms.is_some_and(|p99| p99 <= slo_p99_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a target that sustains anything up to
    /// `capacity`; returns what it found and the rates it probed.
    fn search(start: f64, capacity: f64) -> (Option<f64>, Vec<f64>) {
        let mut s = MaxSearch::new(start, 0.05, 1_000_000.0);
        let mut probed = Vec::new();
        while let Some(rate) = s.next_rate() {
            probed.push(rate);
            s.record(rate, rate <= capacity);
            assert!(probed.len() < 100, "the search ends");
        }
        (s.best(), probed)
    }

    #[test]
    fn doubles_then_bisects_to_within_the_precision() {
        let (best, probed) = search(100.0, 13_000.0);
        assert_eq!(
            &probed[..8],
            &[100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0, 12800.0]
        );
        assert_eq!(probed[8], 25_600.0, "the first failure");
        let best = best.unwrap();
        assert!(best <= 13_000.0, "never reports a failing rate: {best}");
        assert!(best >= 13_000.0 * 0.95, "within 5%: {best}");
        assert!(probed.len() <= 16, "{probed:?}");
    }

    #[test]
    fn halves_when_the_start_fails() {
        let (best, probed) = search(1000.0, 130.0);
        assert_eq!(&probed[..5], &[1000.0, 500.0, 250.0, 125.0, 250.0 - 62.0]);
        let best = best.unwrap();
        assert!((123.0..=130.0).contains(&best), "{best}");
    }

    #[test]
    fn nothing_sustainable_ends_without_a_rate() {
        let (best, probed) = search(100.0, 0.5);
        assert_eq!(best, None);
        assert_eq!(*probed.last().unwrap(), 1.0, "down to the floor");
    }

    #[test]
    fn stops_at_the_ceiling() {
        let mut s = MaxSearch::new(100.0, 0.05, 500.0);
        let mut probed = Vec::new();
        while let Some(rate) = s.next_rate() {
            probed.push(rate);
            s.record(rate, true);
        }
        assert_eq!(probed, vec![100.0, 200.0, 400.0, 500.0]);
        assert_eq!(s.best(), Some(500.0));
    }

    #[test]
    fn a_noisy_pass_above_a_failure_moves_the_bounds() {
        let mut s = MaxSearch::new(100.0, 0.05, 1e6);
        s.record(100.0, true);
        s.record(200.0, false);
        s.record(150.0, true);
        s.record(175.0, false);
        assert_eq!(s.best(), Some(150.0));
        assert_eq!(s.lowest_failure(), Some(175.0));
        s.record(180.0, true);
        assert_eq!(s.best(), Some(180.0));
        assert_eq!(s.lowest_failure(), None, "doubling resumes");
        assert_eq!(s.next_rate(), Some(360.0));
    }

    fn run(rate: f64, completed: u64, failed: u64, p99: Option<f64>, achieved: f64) -> RunReport {
        RunReport {
            rate,
            executions: 1000,
            completed,
            failed,
            retried: 0,
            last_ms: Some(1.0),
            p50_ms: p99,
            p90_ms: p99,
            p99_ms: p99,
            p999_ms: p99,
            max_ms: p99,
            achieved_rate: achieved,
            stages: None,
        }
    }

    #[test]
    fn sustained_means_complete_correct_and_fast() {
        assert!(sustainable(&run(100.0, 1000, 0, Some(19.9), 99.0), 20.0));
        assert!(!sustainable(&run(100.0, 1000, 0, Some(20.1), 99.0), 20.0));
        assert!(!sustainable(&run(100.0, 999, 1, Some(1.0), 99.0), 20.0));
        assert!(!sustainable(&run(100.0, 999, 0, Some(1.0), 99.0), 20.0));
        assert!(
            sustainable(&run(100.0, 1000, 0, Some(1.0), 50.0), 20.0),
            "a short probe's achieved rate lags by its tail latency"
        );
        assert!(!sustainable(&run(100.0, 0, 0, None, 0.0), 20.0));
    }
}
