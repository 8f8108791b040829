//! The durability seam.
//!
//! Handlers call [`crate::store::FlowRepository`] and
//! [`crate::store::ExecutionStore`]; those call a [`Persistence`] before
//! anything is acknowledged (commit-before-externalize). [`InMemory`]
//! acknowledges at once: nothing survives a restart. The WAL-backed
//! implementation plugs in here without a handler changing.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;

use peregrine_engine::execution::ExecutionId;

/// Resolves once a change is durable (or failed to become so).
pub type Durable = Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'static>>;

/// One change to the set of flows, as it would be logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowChange {
    /// A flow was created or updated to `revision`; `source` is its YAML.
    Saved {
        namespace: String,
        id: String,
        revision: u32,
        source: String,
    },
    /// A flow was deleted; its next creation continues from `revision`.
    Deleted {
        namespace: String,
        id: String,
        revision: u32,
    },
}

/// Where flow changes and execution creations become durable.
pub trait Persistence: Send + Sync + fmt::Debug + 'static {
    /// Logs a flow change; the future resolves when it is durable.
    fn flow_changed(&self, change: FlowChange) -> Durable;

    /// Resolves when the creation record of `id` is durable; in `sync` mode
    /// the HTTP answer that acknowledges the execution waits for it.
    fn execution_created(&self, id: ExecutionId) -> Durable;

    /// Flow changes logged before this start, oldest first (recovery).
    fn recovered_flows(&self) -> io::Result<Vec<FlowChange>>;

    /// Makes everything appended so far durable (graceful shutdown).
    fn sync(&self) -> io::Result<()>;
}

/// Keeps nothing: every change is "durable" at once.
#[derive(Debug, Default)]
pub struct InMemory;

fn ready() -> Durable {
    Box::pin(std::future::ready(Ok(())))
}

impl Persistence for InMemory {
    fn flow_changed(&self, _change: FlowChange) -> Durable {
        ready()
    }

    fn execution_created(&self, _id: ExecutionId) -> Durable {
        ready()
    }

    fn recovered_flows(&self) -> io::Result<Vec<FlowChange>> {
        Ok(Vec::new())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}
