//! What the tests of the binary share: the fields of a run, and what makes
//! a run whole.

#![allow(dead_code)]

use serde_json::Value;

pub const RUN_FIELDS: [&str; 11] = [
    "rate",
    "executions",
    "completed",
    "failed",
    "last_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "achieved_rate",
];

/// Every documented field is there, and the run is whole and plausible.
pub fn assert_complete_run(run: &Value, rate: f64, executions: u64) {
    for field in RUN_FIELDS {
        assert!(run.get(field).is_some(), "no `{field}` in {run}");
    }
    assert_eq!(run["rate"].as_f64(), Some(rate));
    assert_eq!(run["executions"].as_u64(), Some(executions));
    assert_eq!(run["completed"].as_u64(), Some(executions), "{run}");
    assert_eq!(run["failed"].as_u64(), Some(0), "{run}");
    assert_eq!(run["retried"].as_u64(), Some(0), "{run}");
    let ms = |field: &str| {
        run[field]
            .as_f64()
            .unwrap_or_else(|| panic!("`{field}` is a number: {run}"))
    };
    assert!(ms("last_ms") > 0.0 && ms("last_ms") < 30_000.0, "{run}");
    assert!(ms("p50_ms") > 0.0);
    assert!(ms("p50_ms") <= ms("p90_ms"));
    assert!(ms("p90_ms") <= ms("p99_ms"));
    assert!(ms("p99_ms") <= ms("p999_ms"));
    assert!(ms("p999_ms") <= ms("max_ms"));
    assert!(ms("last_ms") <= ms("max_ms") * 1.01);
    let achieved = ms("achieved_rate");
    assert!(
        achieved > 0.0 && achieved <= rate * 1.5,
        "achieved {achieved} at {rate}/s"
    );
}
