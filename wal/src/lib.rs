//! Peregrine's write-ahead log: segmented, mmap-backed, group-committed,
//! truncated per execution, and recovered with every checksum verified.
//!
//! ```no_run
//! use peregrine_wal::{Config, Key, Kind, Wal};
//! # fn main() -> peregrine_wal::Result<()> {
//! let (wal, recovered) = Wal::open("/var/lib/peregrine/shard-0", Config::default())?;
//! for (key, records) in recovered.iter() {
//!     for record in records { /* rebuild the execution `key` */ let _ = (key, record); }
//! }
//! drop(recovered);
//! let lsn = wal.append(Kind::new(1), Key::execution(42), b"state change")?;
//! wal.durable(lsn)?; // or `wal.wait_durable(lsn).await`
//! wal.append_terminal(Kind::new(2), Key::execution(42), b"SUCCESS")?;
//! # Ok(()) }
//! ```
//!
//! The byte layout is in `FORMAT.md` and `format.rs`.

mod archive;
mod config;
mod error;
mod format;
mod io;
#[cfg(test)]
mod mem;
mod mmap;
mod record;
mod recovery;
mod truncate;
mod wal;
mod writer;

#[cfg(test)]
mod tests;

pub use archive::{Aligned, access, encode, rkyv};
pub use config::{Config, SyncMode};
pub use error::{Error, Result};
pub use record::{Batch, Key, Kind, Lsn, Record};
pub use recovery::{Damage, LiveRecords, Recovered, RecoveryReport};
pub use wal::{Durable, Wal, WalStats};

/// Helpers for benchmarks; not part of the stable API.
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::mmap::evict_from_page_cache;
}
