//! What the server remembers: flows and their revisions, and executions
//! (running ones as their latest snapshot, finished ones for the retention
//! window). Both sit behind small types so that the handlers never see how
//! they are made durable; [`Persistence`] is that seam.

mod executions;
mod flows;
mod persistence;
mod wal;

pub use executions::{ExecutionStore, Filter, Pending, Record, Restored, RunningLimit};
pub use flows::{FlowError, FlowKey, FlowRepository, StoredFlow};
pub use persistence::{Durable, FlowChange, InMemory, Persistence};
pub use wal::WalFlows;
