//! The durability seam for flows.
//!
//! Handlers call [`crate::store::FlowRepository`], which calls a
//! [`Persistence`] before a flow change is acknowledged
//! (commit-before-externalize). [`InMemory`] acknowledges at once: nothing
//! survives a restart. The WAL-backed implementation plugs in here without a
//! handler changing.
//!
//! Executions are made durable by the engine's own journal: the API waits
//! on the engine's [`peregrine_engine::Receipt`] of an execution's creation
//! before acknowledging it, and on the receipt of each change before a
//! waiter or a follower sees it.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;

use chrono::{DateTime, Utc};

/// Resolves once a change is durable (or failed to become so).
pub type Durable = Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'static>>;

/// One change to the set of flows, as it would be logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowChange {
    /// A flow was created or updated to `revision`; `source` is its YAML,
    /// `updated` when (`None` in logs written before dates were kept).
    Saved {
        namespace: String,
        id: String,
        revision: u32,
        source: String,
        updated: Option<DateTime<Utc>>,
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

    fn recovered_flows(&self) -> io::Result<Vec<FlowChange>> {
        Ok(Vec::new())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}
