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
    /// Size of an execution's final record: the journal's largest terminal
    /// record (past the WAL's record limit it spans several frames). A
    /// final state past it is cut down to fit (see `Run::cut_to_fit`), so
    /// that an end can always be journaled. `Engine::start_durable` lowers
    /// it to what one WAL segment holds. Default: 32 MiB.
    pub max_final_bytes: usize,
    /// What one step of an execution may read of the KV store through
    /// `kv()`: its reads are one journal record. `Engine::start_durable`
    /// lowers it to half of what one WAL record holds. Default: 513 KiB,
    /// one value of the KV store's default largest, with its names.
    pub max_step_reads_bytes: usize,
    /// The log lines one job (a script) keeps for its task run: the first
    /// and the last, half of it each (they are one journal record with its
    /// answer). `Engine::start_durable` lowers it to a quarter of what one
    /// WAL record holds. Default: 256 KiB.
    pub max_job_log_bytes: usize,
}

impl Limits {
    pub const DEFAULT_MAX_TASK_RUNS: u32 = 10_000;
    pub const DEFAULT_MAX_OUTPUTS_BYTES: usize = 1 << 20;
    pub const DEFAULT_MAX_FINAL_BYTES: usize = 32 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            expression: Budget::default(),
            max_task_runs: Self::DEFAULT_MAX_TASK_RUNS,
            max_outputs_bytes: Self::DEFAULT_MAX_OUTPUTS_BYTES,
            max_final_bytes: Self::DEFAULT_MAX_FINAL_BYTES,
            max_step_reads_bytes: crate::kv::KvLimits::DEFAULT_MAX_VALUE_BYTES + (1 << 10),
            max_job_log_bytes: 256 << 10,
        }
    }
}

/// Why a task run's outputs were refused.
pub(crate) fn outputs_too_large(size: usize, max: usize) -> String {
    format!(
        "The task run's outputs are larger than the limit of {max} bytes \
         (at least {size} bytes; engine setting `executions.max-outputs-size`)"
    )
}

/// Why a flowable task run did not start its children.
pub(crate) fn too_many_task_runs(planned: usize, existing: usize, max: u32) -> String {
    format!(
        "Starting {planned} more task runs would take the execution past its \
         limit of {max} task runs (it has {existing}; engine setting \
         `executions.max-task-runs`)"
    )
}
