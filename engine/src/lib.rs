//! Peregrine's engine: Kestra flows, Pebble expressions, core tasks and the
//! sharded executor.

pub mod execution;
pub mod executor;
pub mod expression;
pub mod flow;
pub mod jsonata;
