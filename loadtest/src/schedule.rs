//! The open loop: when each execution is meant to start.
//!
//! Execution `n` of a run at `rate` per second is due at `n / rate` seconds
//! after the run's start, whatever happened to the ones before it. Its
//! latency is measured from that instant, not from when it was actually
//! sent, so a stall (in the engine or in the generator) shows up in every
//! execution it delayed instead of hiding behind a slower send rate.

use std::time::{Duration, Instant};

/// `executions` starts at a fixed `rate` per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    executions: u64,
}

/// Sleeping less than this is left to a yield: the kernel's timer slack
/// would overshoot it anyway.
const MIN_SLEEP: Duration = Duration::from_micros(20);

impl Schedule {
    /// `rate` must be finite and positive (options are checked before a run).
    pub fn new(rate: f64, executions: u64) -> Self {
        debug_assert!(rate.is_finite() && rate > 0.0, "rate {rate}");
        Self { rate, executions }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn executions(&self) -> u64 {
        self.executions
    }

    /// When execution `n` is due, after the start.
    pub fn offset(&self, n: u64) -> Duration {
        Duration::from_secs_f64(n as f64 / self.rate)
    }

    /// When the last execution is due.
    pub fn span(&self) -> Duration {
        self.offset(self.executions.saturating_sub(1))
    }

    /// How many executions are due once `elapsed` has passed: all those with
    /// `offset(n) <= elapsed`.
    pub fn due(&self, elapsed: Duration) -> u64 {
        let due = (elapsed.as_secs_f64() * self.rate).floor() as u64;
        // f64 rounding may put `offset(due)` a hair past `elapsed`, or the
        // next one a hair before: settle on the definition.
        let mut count = due.saturating_add(1).min(self.executions);
        while count > 0 && self.offset(count - 1) > elapsed {
            count -= 1;
        }
        while count < self.executions && self.offset(count) <= elapsed {
            count += 1;
        }
        count
    }

    /// Runs the open loop from `start`: calls `send(n)` for every execution
    /// once it is due, in order, bursting to catch up when behind and
    /// sleeping when ahead. Never waits for anything `send` started.
    pub fn drive(&self, start: Instant, mut send: impl FnMut(u64)) {
        let mut next = 0;
        while next < self.executions {
            let due = self.due(start.elapsed());
            while next < due {
                send(next);
                next += 1;
            }
            if next >= self.executions {
                break;
            }
            let wake = start + self.offset(next);
            let wait = wake.saturating_duration_since(Instant::now());
            if wait >= MIN_SLEEP {
                std::thread::sleep(wait);
            } else if !wait.is_zero() {
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_the_rate() {
        let s = Schedule::new(100.0, 1000);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(10));
        assert_eq!(s.offset(100), Duration::from_secs(1));
        assert_eq!(s.span(), Duration::from_millis(9990));
    }

    #[test]
    fn due_counts_every_execution_whose_time_has_come() {
        let s = Schedule::new(10.0, 5);
        assert_eq!(s.due(Duration::ZERO), 1, "the first is due at once");
        assert_eq!(s.due(Duration::from_millis(99)), 1);
        assert_eq!(s.due(Duration::from_millis(100)), 2);
        assert_eq!(s.due(Duration::from_millis(250)), 3);
        assert_eq!(s.due(Duration::from_secs(60)), 5, "never more than the run");
    }

    #[test]
    fn due_agrees_with_offset_at_awkward_rates() {
        for rate in [3.0, 7.0, 33.3, 1234.5, 99_999.0] {
            let s = Schedule::new(rate, 10_000);
            for n in [0u64, 1, 2, 17, 999, 9_998, 9_999] {
                let at = s.offset(n);
                assert!(s.due(at) > n, "rate {rate}: n {n} is due at its offset");
                if let Some(before) = at.checked_sub(Duration::from_nanos(1))
                    && n > 0
                {
                    assert!(s.due(before) <= n, "rate {rate}: n {n} is not due early");
                }
            }
        }
    }

    #[test]
    fn drive_sends_each_execution_once_in_order_and_not_early() {
        let s = Schedule::new(2_000.0, 100);
        let start = Instant::now();
        let mut sent = Vec::new();
        s.drive(start, |n| sent.push((n, start.elapsed())));
        assert_eq!(
            sent.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            (0..100).collect::<Vec<_>>()
        );
        for (n, at) in &sent {
            assert!(
                *at >= s.offset(*n),
                "{n} sent at {at:?}, due {:?}",
                s.offset(*n)
            );
        }
        // 100 at 2,000/s span 49.5 ms; a loaded machine may take longer but
        // the loop must not wait for anything but the clock.
        assert!(start.elapsed() >= s.span());
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn drive_catches_up_in_a_burst_when_late() {
        let s = Schedule::new(1_000.0, 50);
        // Started 1 s ago: all 50 are overdue and go out at once.
        let start = Instant::now() - Duration::from_secs(1);
        let begun = Instant::now();
        let mut count = 0;
        s.drive(start, |_| count += 1);
        assert_eq!(count, 50);
        assert!(begun.elapsed() < Duration::from_millis(500), "no sleeping");
    }
}
