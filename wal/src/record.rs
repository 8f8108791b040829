//! The WAL's vocabulary: log sequence numbers, record kinds, keys, batches
//! and recovered records.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Log sequence number: the position of a record in its WAL. The first
/// record gets 1; each record gets the next number. `Lsn::ZERO` means "no
/// record".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(u64);

impl Lsn {
    /// Before the first record.
    pub const ZERO: Lsn = Lsn(0);

    pub const fn new(n: u64) -> Lsn {
        Lsn(n)
    }

    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A record kind. The engine defines its kinds; the WAL only distinguishes
/// the high-volume ones named in `Config::log_kinds`, and keeps
/// `0xFF00..=0xFFFF` for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kind(u16);

impl Kind {
    /// First kind reserved for the WAL.
    pub const RESERVED_START: u16 = 0xFF00;

    pub const fn new(kind: u16) -> Kind {
        Kind(kind)
    }

    pub const fn get(self) -> u16 {
        self.0
    }

    pub const fn is_reserved(self) -> bool {
        self.0 >= Self::RESERVED_START
    }
}

/// Whom a record belongs to: an id inside a key space. Space 0 holds
/// executions (`Key::execution`); the engine may use the other spaces for
/// records that are not executions (flow revisions, trigger offsets). Every
/// space follows the same rule: a terminal record replaces all earlier
/// records of its key.
///
/// The id is held as two 64-bit halves (high first, so that keys order as
/// `(space, id)`): 24 bytes instead of a `u128`'s 32, in an index that holds
/// one key per retained execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    space: u8,
    id_high: u64,
    id_low: u64,
}

impl Key {
    /// The key space of executions.
    pub const EXECUTIONS: u8 = 0;

    pub const fn new(space: u8, id: u128) -> Key {
        Key {
            space,
            id_high: (id >> 64) as u64,
            id_low: id as u64,
        }
    }

    /// The key of an execution.
    pub const fn execution(id: u128) -> Key {
        Key::new(Self::EXECUTIONS, id)
    }

    pub const fn space(self) -> u8 {
        self.space
    }

    pub const fn id(self) -> u128 {
        ((self.id_high as u128) << 64) | self.id_low as u128
    }
}

/// Several records appended atomically: after a crash either all of them
/// are recovered or none. Reuse one batch with `clear` to avoid allocating.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub(crate) entries: Vec<BatchEntry>,
    pub(crate) payloads: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchEntry {
    pub kind: Kind,
    pub key: Key,
    pub terminal: bool,
    pub start: usize,
    pub len: usize,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds a record.
    pub fn push(&mut self, kind: Kind, key: Key, payload: &[u8]) -> &mut Self {
        self.push_inner(kind, key, false, payload)
    }

    /// Adds a terminal record: once it is appended, every earlier record of
    /// `key` is dead and only this one is kept (within the retention).
    pub fn push_terminal(&mut self, kind: Kind, key: Key, payload: &[u8]) -> &mut Self {
        self.push_inner(kind, key, true, payload)
    }

    fn push_inner(&mut self, kind: Kind, key: Key, terminal: bool, payload: &[u8]) -> &mut Self {
        let start = self.payloads.len();
        self.payloads.extend_from_slice(payload);
        self.entries.push(BatchEntry {
            kind,
            key,
            terminal,
            start,
            len: payload.len(),
        });
        self
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.payloads.clear();
    }
}

/// A record handed back by recovery. The payload is read in place from the
/// segment (16-byte aligned), so an rkyv payload can be accessed without a
/// copy with [`crate::access`].
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub(crate) lsn: Lsn,
    pub(crate) kind: Kind,
    pub(crate) key: Key,
    pub(crate) flags: u8,
    pub(crate) time_secs: u32,
    pub(crate) payload: &'a [u8],
}

impl<'a> Record<'a> {
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn key(&self) -> Key {
        self.key
    }

    /// Whether it was appended as a terminal record.
    pub fn is_terminal(&self) -> bool {
        self.flags & crate::format::FLAG_TERMINAL != 0
    }

    /// Whether truncation copied it forward from an older segment (its LSN is
    /// then the copy's, and `appended_at` the original's).
    pub fn is_copy(&self) -> bool {
        self.flags & crate::format::FLAG_COPIED != 0
    }

    /// When the record was first appended (second precision).
    pub fn appended_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::from(self.time_secs))
    }

    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// Seconds since the Unix epoch, as stored in frames.
pub(crate) fn now_secs() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// True if a record stamped `time_secs` is older than `retention` at `now`.
pub(crate) fn expired(time_secs: u32, retention: Duration, now: u32) -> bool {
    u64::from(now) >= u64::from(time_secs).saturating_add(retention.as_secs())
}
