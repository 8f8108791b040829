//! Task types: what their task runs do. So far, the blocking work the
//! worker pool runs for them.

mod http;

use std::fmt;

use serde_json::Value;

pub(crate) use http::HttpCall;

/// Blocking work with its properties rendered; runs on a worker thread.
pub(crate) trait Job: fmt::Debug + Send {
    fn run(self: Box<Self>, env: &WorkerEnv) -> Result<Value, String>;
}

/// What every worker thread shares with the jobs it runs.
#[derive(Debug, Clone)]
pub(crate) struct WorkerEnv {
    /// Pooled connections for HTTP calls.
    pub http: ureq::Agent,
}

impl WorkerEnv {
    pub(crate) fn new() -> Self {
        Self {
            http: http::agent(),
        }
    }
}
