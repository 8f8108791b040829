//! Peregrine's server: the Kestra-compatible HTTP API over the engine.
//!
//! ```text
//! Config::load(file, env, flags) -> AppState::start(config) -> app(state) -> serve(listener, state, signal)
//! ```
//!
//! - [`app`] is the whole HTTP service as a `Router`; tests drive it with
//!   `oneshot`, without a socket.
//! - [`AppState`] owns the engine and what the API remembers: flows
//!   ([`store::FlowRepository`], with revisions) and executions
//!   ([`store::ExecutionStore`]: running ones as their latest snapshot,
//!   finished ones for `executions.retention`).
//! - Durability plugs in behind [`store::Persistence`]: handlers never see
//!   it. [`AppState::with_persistence`] takes the implementation;
//!   [`AppState::start`] uses [`store::InMemory`].
//! - Changes reach followers and waiters through one fan-out per watched
//!   execution, fed by the engine's observer on the shard thread.

mod api;
pub mod config;
mod connection;
pub mod data;
mod flow_trigger;
mod hub;
pub mod kafka;
mod listener;
mod metrics;
mod schedule;
mod serve;
mod state;
pub mod store;
mod sweep;
mod ui;

pub use api::app;
pub use config::Config;
pub use serve::serve;
pub use state::{AppState, Refused};
