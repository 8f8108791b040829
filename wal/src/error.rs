//! The crate's one error type.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in the WAL. Callers write `wal::Error`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O call failed. `context` names the file or the operation.
    #[error("WAL I/O error ({context}): {source}")]
    Io {
        context: String,
        #[source]
        source: Arc<io::Error>,
    },
    /// The disk (or the test backend's quota) has no room for a new segment.
    /// Nothing was written; the append may be retried once space is freed.
    #[error("WAL disk full ({context})")]
    DiskFull { context: String },
    /// A record's payload is larger than `Config::max_record_bytes`.
    #[error("record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { len: usize, max: usize },
    /// A batch does not fit into one segment.
    #[error("batch of {len} bytes does not fit into a segment of {max} usable bytes")]
    BatchTooLarge { len: u64, max: u64 },
    /// An empty batch was appended.
    #[error("empty batch")]
    EmptyBatch,
    /// A record kind from the range the WAL reserves for itself.
    #[error("record kind {0:#x} is reserved by the WAL")]
    ReservedKind(u16),
    /// Recovery found damage that cannot be a torn tail (bytes that had
    /// been synced went bad, a segment is missing or cut short...), and
    /// `Config::skip_damaged` is off. `path` is the file (for a missing
    /// segment, the name it would have), `offset` the byte where the damage
    /// starts, `what` what is wrong and which LSNs (how many records) it
    /// makes unreadable; the first of several damaged spots is named, and
    /// how many more there are.
    #[error("WAL damaged: {}, offset {offset}: {what}", path.display())]
    Damaged {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    /// A segment was written by a format version this build does not read.
    #[error(
        "WAL segment {} was written in WAL format {found} (by an earlier Peregrine); this build reads format {supported} only",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u16,
        supported: u16,
    },
    /// The configuration contradicts itself.
    #[error("invalid WAL config: {0}")]
    Config(String),
    /// An earlier write or sync failed, so what is on disk is unknown. The
    /// WAL accepts no more appends; reopen it to recover what is durable.
    #[error("WAL failed earlier and accepts no more writes: {0}")]
    Poisoned(Arc<Error>),
    /// `durable` was asked about an LSN that was never appended.
    #[error("LSN {lsn} was never appended (last appended: {last})")]
    UnknownLsn { lsn: u64, last: u64 },
    /// The WAL was closed.
    #[error("WAL is closed")]
    Closed,
    /// An rkyv payload could not be encoded or failed validation.
    #[error("record payload: {0}")]
    Payload(String),
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        let context = context.into();
        if is_disk_full(&source) {
            Error::DiskFull { context }
        } else {
            Error::Io {
                context,
                source: Arc::new(source),
            }
        }
    }

    pub(crate) fn damaged(path: PathBuf, offset: u64, what: impl Into<String>) -> Self {
        Error::Damaged {
            path,
            offset,
            what: what.into(),
        }
    }

    /// True when the error means "no space left"; the WAL is still usable.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::DiskFull { .. } => true,
            Error::Poisoned(inner) => inner.is_disk_full(),
            _ => false,
        }
    }
}

pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(libc::ENOSPC)
}
