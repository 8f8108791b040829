//! What one execution may spend: evaluation budgets, task runs, the size of
//! what its task runs produce. Each limit fails the task run (or the
//! execution) that meets it with a message naming the setting, so that the
//! user sees why in the execution itself; nothing a flow does can take more
//! of a shard than these allow.

use crate::expression::Budget;

/// The limits every execution of an engine runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Each render of a template (Pebble, and the jq it calls) and each
    /// JSONata evaluation.
    pub expression: Budget,
    /// Task runs one execution may create (a ForEach over a million values
    /// would otherwise hold the node's memory). Default: 10,000.
    pub max_task_runs: u32,
    /// Size of one task run's outputs, as JSON. Default: 1 MiB.
    pub max_outputs_bytes: usize,
}

impl Limits {
    pub const DEFAULT_MAX_TASK_RUNS: u32 = 10_000;
    pub const DEFAULT_MAX_OUTPUTS_BYTES: usize = 1 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            expression: Budget::default(),
            max_task_runs: Self::DEFAULT_MAX_TASK_RUNS,
            max_outputs_bytes: Self::DEFAULT_MAX_OUTPUTS_BYTES,
        }
    }
}
