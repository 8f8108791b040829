//! The writer: the active segment, rolling to the next one, and the liveness
//! index that truncation reads. It lives behind the WAL's writer lock, which
//! the shard's thread (and, in benchmarks, several producers) take for the
//! few hundred nanoseconds an append needs.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::config::SegmentSizes;
use crate::error::{Error, Result};
use crate::format::{self, FrameHeader, Marker, SegmentHeader};
use crate::io::{SegmentFile, Storage};
use crate::record::{BatchEntry, Key, now_ms};

/// Where a key's newest terminal record sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TerminalLoc {
    pub base: u64,
    pub offset: u64,
    pub lsn: u64,
    pub time_secs: u32,
    /// Payload length.
    pub len: u32,
}

/// The append time of a terminal record that [`Writer::forget`] marked:
/// expired whatever the retention.
pub(crate) const FORGOTTEN: u32 = 0;

/// Live records of one key. Most keys of a long retention are finished
/// executions: their terminal record and at most one segment holding
/// records it killed (the one a copy forward came from), kept inline (72
/// bytes a key in the index); the others are boxed.
#[derive(Debug)]
pub(crate) enum KeyLive {
    /// A terminal record alone: no live record.
    Ended {
        terminal: TerminalLoc,
        /// The segment holding records it killed, if any (as in `Open`).
        killed: Option<NonZeroU64>,
    },
    Open(Box<Open>),
}

/// A key with live records, or one whose terminal record killed records in
/// more than one segment still on disk.
#[derive(Debug, Default)]
pub(crate) struct Open {
    /// Per segment (by base LSN, in order): live records, live log records.
    pub segs: Small<(u64, u32, u32)>,
    pub terminal: Option<TerminalLoc>,
    /// Segments still holding records that `terminal` killed. Until they
    /// are gone, the terminal record must stay (copied forward even past its
    /// retention), or those records would look live again after a restart.
    pub killed: Small<u64>,
}

impl Default for KeyLive {
    fn default() -> Self {
        KeyLive::Open(Box::default())
    }
}

impl KeyLive {
    pub(crate) fn terminal(&self) -> Option<TerminalLoc> {
        match self {
            KeyLive::Ended { terminal, .. } => Some(*terminal),
            KeyLive::Open(open) => open.terminal,
        }
    }

    fn terminal_mut(&mut self) -> Option<&mut TerminalLoc> {
        match self {
            KeyLive::Ended { terminal, .. } => Some(terminal),
            KeyLive::Open(open) => open.terminal.as_mut(),
        }
    }

    /// Whether the key has live records besides its terminal record.
    pub(crate) fn has_records(&self) -> bool {
        matches!(self, KeyLive::Open(open) if !open.segs.is_empty())
    }

    /// The full bookkeeping, to change it; call [`KeyLive::settle`] after.
    pub(crate) fn open(&mut self) -> &mut Open {
        if let KeyLive::Ended { terminal, killed } = *self {
            let mut open = Open {
                terminal: Some(terminal),
                ..Open::default()
            };
            open.killed.extend(killed.map(NonZeroU64::get));
            *self = KeyLive::Open(Box::new(open));
        }
        match self {
            KeyLive::Open(open) => open,
            KeyLive::Ended { .. } => unreachable!("opened above"),
        }
    }

    /// Back to the inline form if a terminal record is left alone (with at
    /// most one segment of killed records).
    pub(crate) fn settle(&mut self) {
        let KeyLive::Open(open) = self else {
            return;
        };
        let Some(terminal) = open.terminal else {
            return;
        };
        let (first, more) = {
            let mut killed = open.killed.iter();
            (killed.next(), killed.next())
        };
        if open.segs.is_empty() && more.is_none() {
            *self = KeyLive::Ended {
                terminal,
                killed: first.and_then(NonZeroU64::new),
            };
        }
    }
}

/// A list that keeps its first element inline and the rest behind one
/// pointer: most keys touch one segment, and the index must neither allocate
/// nor carry an empty `Vec` for each of a million executions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Small<T> {
    head: Option<T>,
    #[allow(
        clippy::box_collection,
        reason = "one pointer (8 bytes) rather than an empty Vec (24) per key of a million"
    )]
    rest: Option<Box<Vec<T>>>,
}

impl<T: Copy + PartialEq> Small<T> {
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    pub fn push(&mut self, x: T) {
        if self.head.is_none() {
            self.head = Some(x);
        } else {
            self.rest.get_or_insert_default().push(x);
        }
    }

    pub fn extend(&mut self, xs: impl IntoIterator<Item = T>) {
        for x in xs {
            self.push(x);
        }
    }

    /// Pushes `x` unless it is already there.
    pub fn push_distinct(&mut self, x: T) {
        if !self.iter().any(|y| y == x) {
            self.push(x);
        }
    }

    pub fn push_front(&mut self, x: T) {
        if let Some(h) = self.head.replace(x) {
            self.rest.get_or_insert_default().insert(0, h);
        }
    }

    pub fn last_mut(&mut self) -> Option<&mut T> {
        match self.rest.as_mut().and_then(|r| r.last_mut()) {
            Some(x) => Some(x),
            None => self.head.as_mut(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.head
            .iter()
            .copied()
            .chain(self.rest.iter().flat_map(|r| r.iter().copied()))
    }

    pub fn take(&mut self) -> impl Iterator<Item = T> + use<T> {
        let head = self.head.take();
        let rest = self.rest.take().map(|r| *r).unwrap_or_default();
        head.into_iter().chain(rest)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(T) -> bool) {
        let all: Vec<T> = self.take().filter(|x| keep(*x)).collect();
        for x in all {
            self.push(x);
        }
    }
}

/// A byte range `[from, to)` of a segment file that needs a sync.
pub(crate) type SyncRange = (Arc<dyn SegmentFile>, u64, u64);

/// What the writer and the truncator know about one segment.
#[derive(Debug)]
pub(crate) struct SegmentMeta {
    pub name: String,
    pub file: Arc<dyn SegmentFile>,
    /// One past the last LSN; `None` while the segment is active.
    pub end_lsn: Option<u64>,
    pub live_records: u64,
    pub live_logs: u64,
    pub log_max_time: u32,
    pub live_terminals: u64,
    /// Framed bytes of the live terminal records.
    pub live_terminal_bytes: u64,
    /// Keys whose terminal record was appended here (maybe replaced since).
    pub terminal_keys: Vec<Key>,
    /// The newest terminal record that killed records here: the segment may
    /// only go once that record is durable.
    pub max_kill_lsn: u64,
    /// Set once live terminals were copied forward: drop when this is durable.
    pub drop_after: Option<u64>,
    /// The oldest append second of a terminal record noted here (not raised
    /// when it goes): the budgets look only where records that old may be.
    pub min_terminal_time: u32,
}

impl SegmentMeta {
    pub(crate) fn new(name: String, file: Arc<dyn SegmentFile>) -> Self {
        SegmentMeta {
            name,
            file,
            end_lsn: None,
            live_records: 0,
            live_logs: 0,
            log_max_time: 0,
            live_terminals: 0,
            live_terminal_bytes: 0,
            terminal_keys: Vec::new(),
            max_kill_lsn: 0,
            drop_after: None,
            min_terminal_time: u32::MAX,
        }
    }
}

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct Active {
    pub base: u64,
    pub seed: u32,
    pub file: Arc<dyn SegmentFile>,
    /// The file's size (segments grow: see `Config::first_segment_bytes`).
    pub capacity: u64,
    /// Next write offset.
    pub offset: u64,
    /// Bytes before this offset were handed to the flusher.
    pub flushed: u64,
}

#[derive(Debug)]
pub(crate) struct Writer {
    pub next_lsn: u64,
    pub active: Active,
    pub sizes: SegmentSizes,
    /// The largest frame payload (`Config::max_record_bytes`): terminal
    /// records past it span frames.
    pub part_bytes: usize,
    /// Sealed ranges the flusher has not synced yet.
    pub unsynced: Vec<SyncRange>,
    pub dir_dirty: bool,
    /// False in `SyncMode::None`: no flusher takes `unsynced`, and holding
    /// sealed files there would keep them from being recycled.
    pub track_unsynced: bool,
    pub segments: BTreeMap<u64, SegmentMeta>,
    pub index: HashMap<Key, KeyLive, FxBuildHasher>,
    pub retained: Retained,
    pub spares: Vec<(String, Arc<dyn SegmentFile>)>,
    pub next_spare_id: u64,
    /// Set when a segment filled up: the truncator should look.
    pub rolled: bool,
    /// The WAL works enough for spares to pay: a segment filled up, or the
    /// active one is a quarter full (or spares were left from before).
    /// Until then none is made: a WAL that is hardly used holds one file.
    pub warm: bool,
}

/// One record to write, with its metadata.
pub(crate) struct Pending<'a> {
    pub entry: BatchEntry,
    pub payload: &'a [u8],
    pub flags: u8,
    pub time_secs: u32,
    pub is_log: bool,
}

impl Writer {
    /// Whether the last batch made the WAL warm (see [`Writer::warm`]):
    /// the truncator is then to make the spares.
    pub(crate) fn warmed(&mut self) -> bool {
        if self.warm || (!self.rolled && self.active.offset < self.active.capacity / 4) {
            return false;
        }
        self.warm = true;
        true
    }

    /// Bytes a batch needs in the active segment, marker included. The seal
    /// always keeps its place at the end.
    fn room_left(&self) -> u64 {
        self.active
            .capacity
            .saturating_sub(self.active.offset)
            .saturating_sub(format::MARKER_LEN)
    }

    /// Writes one batch (records, then its commit marker) and updates the
    /// index. Returns the batch's last LSN. On a write error nothing is
    /// published and the caller must poison the WAL.
    pub(crate) fn write_batch(
        &mut self,
        storage: &dyn Storage,
        records: &[Pending<'_>],
        durable_lsn: u64,
    ) -> Result<u64, WriteError> {
        let part = self.part_bytes;
        // A terminal record over `part` spans frames (`FLAG_CONTINUES`).
        let frames_of = |r: &Pending<'_>| {
            if r.entry.terminal {
                r.payload.len().div_ceil(part).max(1)
            } else {
                1
            }
        };
        let bytes: u64 = records
            .iter()
            .map(|r| {
                if r.entry.terminal {
                    format::span_len(r.payload.len(), part)
                } else {
                    format::frame_len(r.payload.len())
                }
            })
            .sum::<u64>()
            + format::MARKER_LEN;
        let count: usize = records.iter().map(frames_of).sum();
        let usable = self.sizes.max - format::HEADER_LEN - format::MARKER_LEN;
        if bytes > usable {
            return Err(WriteError::Refused(Error::BatchTooLarge {
                len: bytes,
                max: usable,
            }));
        }
        if bytes > self.room_left() {
            self.roll(storage, format::HEADER_LEN + bytes + format::MARKER_LEN)?;
        }
        let first_lsn = self.next_lsn;
        let seed = self.active.seed;
        let base = self.active.base;
        let file = self.active.file.clone();
        let mut at = self.active.offset;
        let mut records_crc = seed;
        // Per record: where its (first) frame starts, and its LSN (its last
        // frame's).
        let mut offsets = [(0u64, 0u64); 1];
        let mut many = Vec::new();
        let mut lsn = first_lsn;
        for r in records {
            let frames = frames_of(r);
            let start = at;
            for (i, chunk) in r
                .payload
                .chunks(part)
                .chain(
                    // An empty payload is one empty frame.
                    r.payload.is_empty().then_some(&[][..]),
                )
                .enumerate()
            {
                let continues = i + 1 < frames;
                let header = FrameHeader {
                    len: chunk.len() as u32,
                    kind: r.entry.kind.get(),
                    flags: r.flags | if continues { format::FLAG_CONTINUES } else { 0 },
                    space: r.entry.key.space(),
                    time_secs: r.time_secs,
                    id: r.entry.key.id(),
                };
                let (h, crc) = header.encode(seed, chunk);
                file.write_at(at, &h).map_err(WriteError::io)?;
                file.write_at(at + format::FRAME_HEADER_LEN, chunk)
                    .map_err(WriteError::io)?;
                records_crc = crc32c::crc32c_append(records_crc, &crc.to_le_bytes());
                at += format::frame_len(chunk.len());
            }
            lsn += frames as u64;
            if records.len() == 1 {
                offsets[0] = (start, lsn - 1);
            } else {
                many.push((start, lsn - 1));
            }
        }
        let marker = Marker {
            first_lsn,
            count: count as u32,
            records_crc,
            durable_lsn,
        };
        file.write_at(at, &marker.encode(seed))
            .map_err(WriteError::io)?;
        at += format::MARKER_LEN;

        // Published: account for liveness.
        self.active.offset = at;
        self.next_lsn += count as u64;
        let offs: &[(u64, u64)] = if records.len() == 1 { &offsets } else { &many };
        for (r, &(off, lsn)) in records.iter().zip(offs) {
            if r.entry.terminal {
                self.note_terminal(
                    r.entry.key,
                    TerminalLoc {
                        base,
                        offset: off,
                        lsn,
                        time_secs: r.time_secs,
                        len: r.payload.len() as u32,
                    },
                );
            } else {
                self.note_record(base, r.entry.key, r.is_log, r.time_secs);
            }
        }
        Ok(self.next_lsn - 1)
    }

    pub(crate) fn note_record(&mut self, base: u64, key: Key, is_log: bool, time_secs: u32) {
        let live = self.index.entry(key).or_default();
        let at = Liveness {
            segments: &mut self.segments,
            retained: &mut self.retained,
        };
        note_record_in(live, at, base, is_log, time_secs);
    }

    /// A terminal record kills every earlier record of its key.
    pub(crate) fn note_terminal(&mut self, key: Key, loc: TerminalLoc) {
        let live = self.index.entry(key).or_default();
        let at = Liveness {
            segments: &mut self.segments,
            retained: &mut self.retained,
        };
        note_terminal_in(live, at, key, loc);
    }

    /// Whether the terminal record of `key` may go once expired: no segment
    /// holding a record it killed is left.
    pub(crate) fn may_expire(&mut self, key: Key) -> bool {
        let segments = &self.segments;
        // Killed records in the terminal record's own segment go with it.
        let left = |b: u64, own: Option<u64>| Some(b) != own && segments.contains_key(&b);
        match self.index.get_mut(&key) {
            None => true,
            Some(KeyLive::Ended { terminal, killed }) => {
                if killed.is_some_and(|b| !left(b.get(), Some(terminal.base))) {
                    *killed = None;
                }
                killed.is_none()
            }
            Some(live @ KeyLive::Open(_)) => {
                let open = live.open();
                let own = open.terminal.map(|t| t.base);
                open.killed.retain(|b| left(b, own));
                let free = open.killed.is_empty();
                live.settle();
                free
            }
        }
    }

    /// Marks `key`'s terminal record as expired whatever the retention: the
    /// truncator drops it (rather than copying it forward) once nothing it
    /// killed is left. A key without a terminal record is left alone.
    pub(crate) fn forget(&mut self, key: Key) {
        if let Some(terminal) = self.index.get_mut(&key).and_then(|l| l.terminal_mut()) {
            self.retained.remove(terminal);
            terminal.time_secs = FORGOTTEN;
        }
    }

    /// Forgets an expired terminal record.
    pub(crate) fn expire_terminal(&mut self, key: Key) {
        let mut at = Liveness {
            segments: &mut self.segments,
            retained: &mut self.retained,
        };
        match self.index.get_mut(&key) {
            None => {}
            Some(KeyLive::Ended { terminal, .. }) => {
                at.terminal_gone(terminal);
                self.index.remove(&key);
            }
            Some(KeyLive::Open(open)) => {
                if let Some(old) = open.terminal.take() {
                    at.terminal_gone(&old);
                }
                if open.segs.is_empty() {
                    self.index.remove(&key);
                }
            }
        }
    }

    /// Seals the active segment and starts the next one at `next_lsn`, of
    /// at least `needed` bytes. Takes the new file first, so that a full
    /// disk changes nothing.
    pub(crate) fn roll(&mut self, storage: &dyn Storage, needed: u64) -> Result<(), WriteError> {
        let base = self.next_lsn;
        let (name, file) = self
            .take_segment_file(storage, base, needed)
            .map_err(WriteError::Refused)?;
        // Seal the old segment; its room was reserved.
        let seal = format::encode_seal(self.active.seed, base);
        self.active
            .file
            .write_at(self.active.offset, &seal)
            .map_err(WriteError::io)?;
        self.active.offset += format::MARKER_LEN;
        self.start_segment(name, file, base)?;
        Ok(())
    }

    /// Writes the header of a fresh segment and makes it the active one.
    pub(crate) fn start_segment(
        &mut self,
        name: String,
        file: Arc<dyn SegmentFile>,
        base: u64,
    ) -> Result<(), WriteError> {
        let header = SegmentHeader {
            version: format::VERSION,
            base_lsn: base,
            capacity: file.len(),
            created_ms: now_ms(),
            segment_bytes: self.sizes.max,
        };
        file.write_at(0, &header.encode()).map_err(WriteError::io)?;
        let old = std::mem::replace(
            &mut self.active,
            Active {
                base,
                seed: format::seed(base),
                capacity: file.len(),
                file: file.clone(),
                offset: format::HEADER_LEN,
                flushed: 0,
            },
        );
        if self.track_unsynced && old.offset > old.flushed {
            self.unsynced.push((old.file, old.flushed, old.offset));
        } else if !self.track_unsynced {
            // Nothing syncs in this mode: the sealed segment is released now.
            old.file.release();
        }
        if let Some(m) = self.segments.get_mut(&old.base) {
            m.end_lsn = Some(base);
            // Sealed: its list of keys grows no more (up to half of it was
            // room to grow, kept for as long as the segment).
            m.terminal_keys.shrink_to_fit();
        }
        self.segments.insert(base, SegmentMeta::new(name, file));
        self.dir_dirty = true;
        self.rolled = true;
        Ok(())
    }

    /// The size the next segment is made with, holding `needed` bytes.
    pub(crate) fn next_capacity(&self, needed: u64) -> u64 {
        self.sizes.next(self.active.capacity, needed)
    }

    /// A file of at least `needed` bytes for the segment starting at
    /// `base`: a spare renamed (the smallest of the next segment's size or
    /// larger, else the largest that holds `needed` and is no smaller than
    /// the active segment: growth may lag a step, never go back), or a new
    /// preallocated file of the next segment's size if no spare is.
    pub(crate) fn take_segment_file(
        &mut self,
        storage: &dyn Storage,
        base: u64,
        needed: u64,
    ) -> Result<(String, Arc<dyn SegmentFile>)> {
        let name = format::segment_name(base);
        let want = self.next_capacity(needed);
        let len = |i: &usize| self.spares[*i].1.len();
        let pick = (0..self.spares.len())
            .filter(|i| len(i) >= want)
            .min_by_key(len)
            .or_else(|| {
                (0..self.spares.len())
                    .filter(|i| len(i) >= needed.max(self.active.capacity))
                    .max_by_key(len)
            });
        if let Some((spare, file)) = pick.map(|i| self.spares.swap_remove(i)) {
            if let Err(e) = storage.rename(&spare, &name) {
                self.spares.push((spare, file));
                let path = storage.path(&name);
                return Err(Error::io(
                    format!("renaming a spare to {}", path.display()),
                    e,
                ));
            }
            return Ok((name, file));
        }
        let file = storage
            // On the append path: reserve only, do not fill.
            .create(&name, want, false)
            .map_err(|e| Error::io(format!("creating {}", storage.path(&name).display()), e))?;
        Ok((name, file))
    }

    /// Ranges to sync (those of sealed segments first: `.1` of them), whether
    /// the directory must be synced too, and the LSN they make durable.
    pub(crate) fn take_unsynced(&mut self) -> (Vec<SyncRange>, usize, bool, u64) {
        let mut ranges = std::mem::take(&mut self.unsynced);
        let sealed = ranges.len();
        if self.active.offset > self.active.flushed {
            ranges.push((
                self.active.file.clone(),
                self.active.flushed,
                self.active.offset,
            ));
            self.active.flushed = self.active.offset;
        }
        let dir = std::mem::take(&mut self.dir_dirty);
        (ranges, sealed, dir, self.next_lsn - 1)
    }

    /// Writes a seal at the end of the active segment (on close).
    pub(crate) fn seal_active(&mut self) -> Result<(), WriteError> {
        let seal = format::encode_seal(self.active.seed, self.next_lsn);
        self.active
            .file
            .write_at(self.active.offset, &seal)
            .map_err(WriteError::io)?;
        self.active.offset += format::MARKER_LEN;
        Ok(())
    }
}

/// Why a write did not happen.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// Nothing was written (full disk, oversized batch): the WAL is fine.
    Refused(Error),
    /// Bytes may be half-written: the WAL must be poisoned.
    Failed(Error),
}

impl WriteError {
    fn io(e: std::io::Error) -> WriteError {
        WriteError::Failed(Error::io("writing a segment", e))
    }
}

/// What liveness accounting updates besides a key's own entry: the
/// segments' counts and the kept terminal records.
pub(crate) struct Liveness<'a> {
    pub segments: &'a mut BTreeMap<u64, SegmentMeta>,
    pub retained: &'a mut Retained,
}

impl Liveness<'_> {
    /// A key's terminal record at `old` is no longer its terminal record.
    fn terminal_gone(&mut self, old: &TerminalLoc) {
        if let Some(m) = self.segments.get_mut(&old.base) {
            m.live_terminals = m.live_terminals.saturating_sub(1);
            m.live_terminal_bytes = m
                .live_terminal_bytes
                .saturating_sub(format::frame_len(old.len as usize));
        }
        self.retained.remove(old);
    }
}

/// The terminal records kept (neither forgotten nor expired), by append
/// second: what the retention budgets count, and cut from the oldest end.
#[derive(Debug, Default)]
pub(crate) struct Retained {
    /// Per append second: records, framed bytes.
    by_time: BTreeMap<u32, (u64, u64)>,
    pub count: u64,
    pub bytes: u64,
}

impl Retained {
    fn add(&mut self, loc: &TerminalLoc) {
        if loc.time_secs == FORGOTTEN {
            return;
        }
        let bytes = format::frame_len(loc.len as usize);
        let at = self.by_time.entry(loc.time_secs).or_default();
        at.0 += 1;
        at.1 += bytes;
        self.count += 1;
        self.bytes += bytes;
    }

    fn remove(&mut self, loc: &TerminalLoc) {
        if loc.time_secs == FORGOTTEN {
            return;
        }
        let bytes = format::frame_len(loc.len as usize);
        if let Some(at) = self.by_time.get_mut(&loc.time_secs) {
            at.0 = at.0.saturating_sub(1);
            at.1 = at.1.saturating_sub(bytes);
            if at.0 == 0 {
                self.by_time.remove(&loc.time_secs);
            }
        }
        self.count = self.count.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }

    /// While `over` the budgets, the second that cuts the kept records:
    /// every one appended before it must go, and of those appended in it,
    /// as many as it takes to get under.
    pub(crate) fn cutoff(&self, over: impl Fn(u64, u64) -> bool) -> Option<u32> {
        if !over(self.count, self.bytes) {
            return None;
        }
        let (mut count, mut bytes) = (self.count, self.bytes);
        for (&time, &(n, b)) in &self.by_time {
            count -= n;
            bytes -= b;
            if !over(count, bytes) {
                return Some(time);
            }
        }
        self.by_time.keys().next_back().copied()
    }
}

/// Accounts for a live record of a key (see `Writer::note_record`).
pub(crate) fn note_record_in(
    live: &mut KeyLive,
    mut at: Liveness<'_>,
    base: u64,
    is_log: bool,
    time_secs: u32,
) {
    let live = live.open();
    // A record after a terminal one reopens the key: the terminal record
    // becomes an ordinary live record (it is never copied forward past the
    // records that follow it).
    if let Some(t) = live.terminal.take() {
        live.segs.push_front((t.base, 1, 0));
        at.terminal_gone(&t);
        if let Some(m) = at.segments.get_mut(&t.base) {
            m.live_records += 1;
        }
    }
    match live.segs.last_mut() {
        Some((b, n, l)) if *b == base => {
            if is_log {
                *l += 1;
            } else {
                *n += 1;
            }
        }
        _ => live
            .segs
            .push((base, u32::from(!is_log), u32::from(is_log))),
    }
    if let Some(m) = at.segments.get_mut(&base) {
        if is_log {
            m.live_logs += 1;
            m.log_max_time = m.log_max_time.max(time_secs);
        } else {
            m.live_records += 1;
        }
    }
}

/// Accounts for a terminal record (see `Writer::note_terminal`).
pub(crate) fn note_terminal_in(
    live: &mut KeyLive,
    mut at: Liveness<'_>,
    key: Key,
    loc: TerminalLoc,
) {
    note_terminal_open(live.open(), &mut at, key, loc);
    live.settle();
}

fn note_terminal_open(live: &mut Open, at: &mut Liveness<'_>, key: Key, loc: TerminalLoc) {
    // Segments gone since hold nothing this record must keep dead (a copy
    // forward of a copy would otherwise list every segment it passed).
    live.killed.retain(|b| at.segments.contains_key(&b));
    for (b, n, l) in live.segs.take() {
        // Killed records in the terminal record's own segment go with it.
        if b != loc.base {
            live.killed.push_distinct(b);
        }
        if let Some(m) = at.segments.get_mut(&b) {
            m.live_records = m.live_records.saturating_sub(u64::from(n));
            m.live_logs = m.live_logs.saturating_sub(u64::from(l));
            m.max_kill_lsn = m.max_kill_lsn.max(loc.lsn);
        }
    }
    if let Some(old) = live.terminal.replace(loc) {
        if old.base != loc.base {
            live.killed.push_distinct(old.base);
        }
        if let Some(m) = at.segments.get_mut(&old.base) {
            m.max_kill_lsn = m.max_kill_lsn.max(loc.lsn);
        }
        at.terminal_gone(&old);
    }
    at.retained.add(&loc);
    if let Some(m) = at.segments.get_mut(&loc.base) {
        m.live_terminals += 1;
        m.live_terminal_bytes += format::frame_len(loc.len as usize);
        m.terminal_keys.push(key);
        if loc.time_secs != FORGOTTEN {
            m.min_terminal_time = m.min_terminal_time.min(loc.time_secs);
        }
    }
}
