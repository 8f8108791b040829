//! Executions, task runs, their states and their JSON.

mod brief;
mod id;
pub mod labels;
mod model;
mod record;
mod state;

pub use brief::Brief;
pub use id::{ExecutionId, Id, MessageOrigin, ParseIdError, TaskRunId};
pub use model::{
    Attempt, Execution, Lineage, LogEntry, Logs, Metric, MetricKind, Metrics, TaskRun,
    execution_trigger,
};
pub(crate) use record::Format;
pub use record::{Record, RecordError};
pub use state::{State, StateChange, StateHistory, format_date, iso_duration};
