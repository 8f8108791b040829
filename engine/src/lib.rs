//! Peregrine's engine: Kestra flows, Pebble expressions, core tasks and the
//! sharded executor.

mod error;
pub mod execution;
pub mod executor;
pub mod expression;
pub mod flow;
mod journal;
pub mod jsonata;
mod tasks;

pub use error::{Error, Result};
pub use journal::{DurabilityError, Receipt};
