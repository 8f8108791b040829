//! Peregrine's write-ahead log: segmented, mmap-backed, group-committed,
//! truncated per execution, and recovered with every checksum verified.
//!
//! # How the engine uses it
//!
//! - **Open and recover.** `Wal::open(dir, config)` recovers the directory
//!   and returns the WAL with a [`Recovered`]: per [`Key`], its live records
//!   in LSN order (a finished execution's terminal record, within its
//!   retention; a running execution's records since its start). Payloads are
//!   read in place from the segment maps; drop the `Recovered` once the
//!   shard has rebuilt its state (until then, its segments are not recycled).
//! - **Append.** One shard thread owns the WAL and appends every state
//!   change: [`Wal::append`], [`Wal::append_terminal`] for the record that
//!   ends an execution (all its earlier records die), or [`Wal::append_batch`]
//!   for several records that must survive a crash together. An append
//!   copies into the mapped segment and returns an [`Lsn`]; it never waits
//!   for the disk. `Wal` is `Clone + Send + Sync`; clones share one writer
//!   lock, so other threads may append too (the benchmarks use 1–4).
//! - **Commit before externalizing.** Before a reply or event that depends
//!   on a record leaves the process, wait for it: [`Wal::durable`] blocks,
//!   [`Wal::wait_durable`] is a runtime-agnostic future. A flusher thread
//!   group-commits: appends made while one sync runs share the next.
//! - **Kinds and keys.** The engine numbers its record kinds ([`Kind`],
//!   below `0xFF00`) and names the high-volume ones (logs) in
//!   [`Config::log_kinds`]. Executions use `Key::execution(id)`; flows,
//!   trigger offsets and other non-execution records use other key spaces
//!   (`Key::new(space, id)`), where a terminal record likewise replaces the
//!   key's earlier ones.
//! - **Payloads** are opaque bytes; [`encode`] and [`access`] archive and
//!   read rkyv types (derive them through the re-exported [`rkyv`]).
//! - **Damage.** Recovery cuts a torn tail (the unsynced end of the log at a
//!   crash) and reports it; any other damage (bytes that had been synced
//!   and went bad, a missing or cut-short segment) fails the open with
//!   [`Error::Damaged`], naming the file, the offset and the LSNs lost,
//!   unless [`Config::skip_damaged`] says to drop it: then
//!   [`RecoveryReport::damage`] lists what was dropped, with the keys it
//!   belonged to. [`check`] reads a WAL without changing anything on disk
//!   and reports the same.
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
//! The byte layout is in `FORMAT.md` and `format.rs`; `unsafe` code lives
//! only in `mmap.rs`.

mod archive;
mod blackbox;
mod config;
mod error;
mod format;
mod io;
mod manifest;
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
pub use blackbox::{Blackbox, Strikes};
pub use config::{Config, SyncMode, Writes};
pub use error::{Error, Result};
pub use mmap::free_space;
pub use record::{Batch, Key, Kind, Lsn, Record};
pub use recovery::{Damage, LiveRecords, Recovered, RecoveryReport};
pub use wal::{
    Durable, SYNC_BUCKETS_MICROS, Terminal, Ticket, Wal, WalStats, check, segment_bytes_of,
};

/// The on-disk format this build writes (`FORMAT.md`); `check` also reads
/// format 1, which `Wal::open` refuses.
pub const FORMAT: u16 = format::VERSION;

/// Helpers for benchmarks; not part of the stable API.
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::mmap::evict_from_page_cache;
}
