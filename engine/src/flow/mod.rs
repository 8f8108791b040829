//! Kestra flows: the typed model, the YAML parser and validator, and input
//! validation.
//!
//! ```text
//! Flow::parse(yaml)            -> flow::Result<Flow>   (every problem, with path and line:column)
//! validate_inputs(&flow, map)  -> flow::Result<Map>    (typed inputs, defaults applied)
//! ```

mod condition;
mod cron;
mod date_condition;
mod defaults;
mod duration;
mod error;
mod inputs;
mod model;
mod parse;
mod types;
mod yaml;

pub use condition::{Comparison, Condition, Filter, Multiple, TimeWindow, Upstream};
pub use cron::CronSchedule;
pub use date_condition::{DateCondition, InMonth};
pub use duration::parse_duration;
pub use error::{Error, InputProblem, Problem, Result};
pub(crate) use inputs::check_inputs;
pub use inputs::{validate_inputs, validate_text_inputs};
pub use model::{
    Concurrency, ConcurrencyBehavior, Deserializer, Flow, FlowOutput, InputDef, InputType, Level,
    RecoverMissed, Retry, RetryPolicy, Task, Trigger, TriggerKind,
};
pub(crate) use parse::{DagEntry, Props};
pub use parse::{is_valid_namespace, is_within_namespace};
pub use types::SCHEDULE;

impl Flow {
    /// Parses and validates a flow's YAML source.
    pub fn parse(source: &str) -> Result<Flow> {
        parse::parse_flow(source)
    }
}
