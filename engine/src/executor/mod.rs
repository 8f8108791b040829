//! The sharded executor.

mod engine;
#[cfg(feature = "internals")]
mod fixtures;
mod inbox;
mod outputs;
mod plan;
mod render;
mod run;
mod shard;
mod timer;
mod worker;

pub use engine::{
    Engine, EngineConfig, Observer, Recovery, SubmitError, run_to_end, run_to_end_observed,
};
#[cfg(feature = "internals")]
pub use fixtures::OutputLookup;
pub use inbox::{PushError, Receiver, Sender, inbox};
pub use plan::{FlowLookup, FlowRevision};
pub(crate) use render::{RenderContext, into_text, is_truthy};
pub use run::{NewExecution, OnCreated};
pub use shard::{Effect, Message, Shard};
pub use timer::TimerWheel;
