//! Peregrine's engine: Kestra flows, Pebble expressions, the tasks and the
//! sharded executor that runs them, with every execution journaled.
//!
//! ```text
//! flow::Flow::parse(yaml) -> FlowRevision::new(flow) -> NewExecution
//! Engine::start[_durable](config, observer) -> Engine::submit(new, ack) -> Pending<Started>
//! Engine::read(id) / Engine::search(filter, page, size) / Engine::kill(id)
//! ```
//!
//! The flow model (`flow`) and the expression language (`expression`) are
//! modules of their own, each with its `Error`; the rest is below. What the
//! benchmarks and the load generator measure directly is in `internals`
//! (feature `internals`), not part of this API.

mod error;
mod execution;
mod executor;
pub mod expression;
pub mod flow;
mod ion;
mod journal;
mod jsonata;
mod kept;
pub mod kv;
mod lazy_log;
pub mod logs;
pub mod memory;
pub mod metric_store;
pub mod storage;
mod tasks;

// The unit tests run under the counting allocator, as the server does, so
// that the memory budget of evaluations is exercised.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: memory::Counting<std::alloc::System> = memory::Counting(std::alloc::System);

pub use error::{Error, Result};
pub use execution::labels;
pub use execution::{
    Attempt, Brief, Execution, ExecutionId, Id, LogEntry, Logs, MessageOrigin, Metric, MetricKind,
    Metrics, ParseIdError, Record, RecordError, State, StateChange, StateHistory, TaskRun,
    TaskRunId, execution_trigger, format_date, iso_duration,
};
pub use executor::{
    Ack, Bounds, Change, ConfigVariables, Damaged, Deleted, Engine, EngineConfig, Filter,
    FlowLookup, FlowRevision, Flows, KillOutcome, Left, Limits, MAX_SUBFLOW_DEPTH, NewExecution,
    Observer, Page, Pending, Recovery, Refusal, Relabelled, ReplayError, ReplayFrom,
    RestartOutcome, RestoreError, ResumeOutcome, Search, Snapshot, Started, Stopped, SubmitError,
    Text, TriggerSwitch, Unrecoverable, VariablesTooLarge, run_to_end, run_to_end_observed,
};
pub use journal::{DurabilityError, JournalError, Receipt};

/// What benchmarks and the load generator measure directly; not a stable API.
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::executor::{OutputLookup, PushError, Receiver, Sender, inbox};
}
