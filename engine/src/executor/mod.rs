//! The sharded executor.

mod config_vars;
mod courier;
mod engine;
mod finished;
#[cfg(feature = "internals")]
mod fixtures;
mod gate;
mod guide;
mod inbox;
mod limits;
mod outputs;
mod plan;
mod reads;
mod render;
#[cfg(test)]
mod replay;
mod run;
mod search;
mod shard;
#[cfg(test)]
mod subflow_tests;
#[cfg(test)]
mod test_journal;
mod timer;
mod worker;

pub use config_vars::{ConfigVariables, VariablesTooLarge};
pub(crate) use config_vars::{MASK, mask_with};
pub use courier::{Flows, MAX_SUBFLOW_DEPTH};
pub use engine::{
    Ack, Change, Damaged, Engine, EngineConfig, Left, Observer, Page, Pending, Recovery, Refusal,
    ReplayError, ReplayFrom, Search, Stopped, SubmitError, Unrecoverable, run_to_end,
    run_to_end_observed,
};
#[cfg(test)]
pub(crate) use engine::{run_to_end_limited, run_to_end_with_variables};
#[cfg(test)]
pub(crate) use finished::Finished;
#[cfg(feature = "internals")]
pub use fixtures::OutputLookup;
#[cfg(feature = "internals")]
pub use inbox::{PushError, Receiver, Sender, inbox};
pub use limits::Limits;
pub use plan::{FlowLookup, FlowRevision};
pub(crate) use render::{RenderContext, into_text, is_truthy};
pub use run::NewExecution;
pub(crate) use run::deep_merge;
pub(crate) use search::Tally;
pub use search::{Bounds, Filter, Text};
pub use shard::{
    Deleted, KillOutcome, Relabelled, RestartOutcome, RestoreError, ResumeOutcome, Snapshot,
    Started,
};
pub(crate) use worker::Holdings;
pub use worker::TriggerSwitch;
