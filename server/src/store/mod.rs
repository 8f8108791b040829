//! What the server remembers: flows and their revisions, behind small types
//! so that the handlers never see how they are made durable ([`Persistence`]
//! is that seam). Executions are the engine's: it keeps the only copy.

mod flows;
mod persistence;
mod shape;
mod wal;

pub use flows::{FlowError, FlowKey, FlowRepository, StoredFlow};
pub use persistence::{Durable, FlowChange, InMemory, Persistence};
pub use wal::{WalFlows, read_flows};
