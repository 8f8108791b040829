//! Peregrine's server: the Kestra-compatible HTTP API over the engine.
//!
//! ```text
//! Config::load(file, env, flags) -> AppState::start(config) -> app(state) -> serve(...)
//! ```

mod api;
pub mod config;
mod hub;
mod listener;
mod metrics;
mod serve;
mod state;
pub mod store;

pub use api::app;
pub use config::Config;
pub use serve::serve;
pub use state::AppState;
