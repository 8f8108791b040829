//! Kestra flows: the typed model, the YAML parser and validator, and input
//! validation.

mod model;

pub use model::{
    DagTask, Flow, FlowOutput, InputDef, InputType, Level, Retry, RetryBehavior, RetryPolicy, Task,
    TaskKind, Trigger, TriggerKind,
};
