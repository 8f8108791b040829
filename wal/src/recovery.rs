//! Recovery: scan every segment in LSN order, verify every checksum, tell a
//! torn tail from corruption, and hand back each key's live records.
//!
//! A damaged spot (a frame that does not verify, a batch without its commit
//! marker, a non-final segment without its seal) at the point where LSN `X`
//! was expected is either
//! - a torn tail: the crash hit before the bytes at `X` were synced; or
//! - corruption: the bytes at `X` had been synced and then went bad.
//!
//! Every commit marker carries the LSN that was durable when it was written.
//! If any batch after the damaged spot claims `durable >= X`, the bytes at
//! `X` were synced before, so they are corrupt: recovery fails with
//! `Error::Corrupt` naming segment and offset, or, with
//! `Config::tolerate_corruption`, skips to the next good batch and reports
//! it. Otherwise the spot is a torn tail: the log is cut there, later
//! segments are deleted and the cut segment gets a seal, so that the next
//! recovery reads the same log.

use std::collections::HashMap;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::{self, Frame, HeaderError, SegmentHeader};
use crate::io::{SegmentFile, Storage};
use crate::mmap::Image;
use crate::record::{Key, Kind, Lsn, Record, expired, now_secs};
use crate::writer::FORGOTTEN;

/// A damaged spot found by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// File name of the segment.
    pub segment: String,
    /// Byte offset in the segment file.
    pub offset: u64,
    pub reason: String,
}

/// What recovery found.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// Segment files read.
    pub segments: usize,
    /// Bytes of segment files read.
    pub bytes_scanned: u64,
    /// Valid records read (live or not).
    pub records: u64,
    /// Records handed back.
    pub live_records: u64,
    /// The LSN the next append gets.
    pub next_lsn: Lsn,
    /// Where a torn tail was cut off, if there was one.
    pub torn_tail: Option<Damage>,
    /// Corrupt spots skipped under `Config::tolerate_corruption`.
    pub skipped: Vec<Damage>,
}

/// The outcome of recovery: per key, its live records in LSN order. For a
/// key whose last record is terminal, that record is the only one.
#[derive(Debug)]
pub struct Recovered {
    images: Vec<Image>,
    arena: Arena,
    /// Per key: the first of its live records in `arena` and how many.
    keys: Vec<(Key, u32, u32)>,
    report: RecoveryReport,
}

/// Every valid record, linked per key in LSN order: one allocation for the
/// whole log instead of one per key.
#[derive(Debug, Default)]
struct Arena {
    recs: Vec<RecRef>,
    next: Vec<u32>,
}

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
pub(crate) struct RecRef {
    pub offset: u64,
    pub lsn: u64,
    pub seg: u32,
    pub len: u32,
    pub time_secs: u32,
    pub kind: u16,
    pub flags: u8,
}

impl RecRef {
    fn is_terminal(&self) -> bool {
        self.flags & format::FLAG_TERMINAL != 0
    }
}

/// A key's chain in the arena while recovery walks the log.
#[derive(Debug, Clone, Copy)]
struct Chain {
    head: u32,
    tail: u32,
    len: u32,
}

impl Recovered {
    pub fn report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Number of keys with live records.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys with their live records, ordered by each key's first live LSN.
    pub fn iter(&self) -> impl Iterator<Item = (Key, LiveRecords<'_>)> + '_ {
        self.keys
            .iter()
            .map(move |&(key, head, len)| (key, self.records(key, head, len)))
    }

    fn records(&self, key: Key, head: u32, len: u32) -> LiveRecords<'_> {
        LiveRecords {
            images: &self.images,
            arena: &self.arena,
            key,
            at: head,
            left: len as usize,
        }
    }

    /// The live records of one key (a linear search; meant for tests and
    /// tools, the engine iterates with `iter`).
    pub fn get(&self, key: Key) -> Option<LiveRecords<'_>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, r)| r)
    }
}

/// The live records of one key, in LSN order.
#[derive(Debug, Clone)]
pub struct LiveRecords<'a> {
    images: &'a [Image],
    arena: &'a Arena,
    key: Key,
    at: u32,
    left: usize,
}

impl<'a> LiveRecords<'a> {
    fn next_ref(&mut self) -> Option<&'a RecRef> {
        if self.left == 0 {
            return None;
        }
        let r = self.arena.recs.get(self.at as usize)?;
        self.at = self
            .arena
            .next
            .get(self.at as usize)
            .copied()
            .unwrap_or(NIL);
        self.left -= 1;
        Some(r)
    }
}

impl<'a> Iterator for LiveRecords<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        let r = self.next_ref()?;
        let start = (r.offset + format::FRAME_HEADER_LEN) as usize;
        // Recovery verified the range when it read the frame.
        let payload = self.images[r.seg as usize]
            .as_slice()
            .get(start..start + r.len as usize)
            .unwrap_or(&[]);
        Some(Record {
            lsn: Lsn::new(r.lsn),
            kind: Kind::new(r.kind),
            key: self.key,
            flags: r.flags,
            time_secs: r.time_secs,
            payload,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for LiveRecords<'_> {}

/// One recovered segment, for the writer to take over.
#[derive(Debug)]
pub(crate) struct RecoveredSegment {
    pub base: u64,
    pub name: String,
    pub file: Arc<dyn SegmentFile>,
    /// One past the last LSN the segment holds.
    pub end_lsn: u64,
}

/// Everything `Wal::open` needs besides the records.
#[derive(Debug)]
pub(crate) struct Recovery {
    pub recovered: Recovered,
    pub segments: Vec<RecoveredSegment>,
    pub spares: Vec<(u64, Arc<dyn SegmentFile>)>,
    pub max_spare_id: u64,
    /// Base LSN of every scanned segment; `RecRef::seg` indexes it.
    scan_bases: Vec<u64>,
    /// Per key whose terminal records killed records still on disk: the
    /// bases of the segments holding them.
    killed: HashMap<Key, Vec<u64>, FxBuildHasher>,
    /// Terminal records past their retention: not handed back, but the
    /// index must know them (they still keep the records they killed dead).
    expired_terminals: Vec<(Key, RecRef)>,
}

impl Recovery {
    pub(crate) fn base_of(&self, seg: u32) -> u64 {
        self.scan_bases.get(seg as usize).copied().unwrap_or(0)
    }

    /// Per key, the records the index must account for: the live ones
    /// handed back, and the expired terminal ones.
    pub(crate) fn live_keys(&self) -> impl Iterator<Item = (Key, Vec<RecRef>)> + '_ {
        let r = &self.recovered;
        r.keys
            .iter()
            .map(move |&(key, head, len)| {
                let mut it = r.records(key, head, len);
                let mut refs = Vec::with_capacity(len as usize);
                while let Some(x) = it.next_ref() {
                    refs.push(*x);
                }
                (key, refs)
            })
            .chain(self.expired_terminals.iter().map(|(k, r)| (*k, vec![*r])))
    }

    pub(crate) fn killed(&self, key: Key) -> &[u64] {
        self.killed.get(&key).map_or(&[], |v| v.as_slice())
    }
}

/// A verified batch.
#[derive(Debug)]
struct GoodBatch {
    first_lsn: u64,
    durable_lsn: u64,
    /// Range into `SegScan::records`.
    records: std::ops::Range<usize>,
}

#[derive(Debug)]
struct ScannedRecord {
    offset: u64,
    header: format::FrameHeader,
}

/// One item of a segment scan, in file order.
#[derive(Debug)]
enum Item {
    Batch(GoodBatch),
    /// Damaged bytes at `offset`, where LSN `expected` should have started.
    Damage {
        offset: u64,
        expected: u64,
        reason: String,
    },
    /// Past damage, the next batch that verifies: its durable claim and its
    /// first LSN.
    Resync {
        durable_lsn: u64,
        next_lsn: u64,
    },
    /// The seal: the segment ends here.
    Sealed,
}

#[derive(Debug)]
struct SegScan {
    base: u64,
    name: String,
    file: Arc<dyn SegmentFile>,
    image: Image,
    records: Vec<ScannedRecord>,
    items: Vec<Item>,
}

pub(crate) fn recover(storage: &dyn Storage, config: &Config) -> Result<Recovery> {
    let names = storage
        .list()
        .map_err(|e| Error::io("listing the WAL directory", e))?;
    let mut segment_names: Vec<(u64, String)> = names
        .iter()
        .filter_map(|n| format::parse_segment_name(n).map(|b| (b, n.clone())))
        .collect();
    segment_names.sort();
    let mut spares = Vec::new();
    let mut max_spare_id = 0;
    for name in &names {
        if let Some(id) = format::parse_spare_name(name) {
            max_spare_id = max_spare_id.max(id);
            let file = storage
                .open(name, format::HEADER_LEN)
                .map_err(|e| Error::io(format!("opening {name}"), e))?;
            if file.len() == config.segment_bytes.get() {
                spares.push((id, file));
            } else {
                drop(file);
                storage
                    .remove(name)
                    .map_err(|e| Error::io(format!("removing {name}"), e))?;
            }
        }
    }

    let mut report = RecoveryReport::default();
    // Open (and start reading ahead) every segment first, then parse.
    let mut opened = Vec::with_capacity(segment_names.len());
    for (base, name) in segment_names {
        // A file cut below its header (a crash right after creating it) is
        // grown to a zero header, which reads as damage at offset 0.
        let file = storage
            .open(&name, format::HEADER_LEN)
            .map_err(|e| Error::io(format!("opening {name}"), e))?;
        let image = file
            .clone()
            .image()
            .map_err(|e| Error::io(format!("reading {name}"), e))?;
        report.segments += 1;
        report.bytes_scanned += image.len() as u64;
        opened.push((base, name, file, image));
    }
    let mut scans = Vec::with_capacity(opened.len());
    for (base, name, file, image) in opened {
        scans.push(scan_segment(base, name, file, image)?);
    }

    // The largest durable claim from each item on: evidence for damage.
    let mut claims: Vec<Vec<u64>> = scans.iter().map(|s| vec![0; s.items.len()]).collect();
    let mut running = 0u64;
    for (si, s) in scans.iter().enumerate().rev() {
        for (ii, item) in s.items.iter().enumerate().rev() {
            claims[si][ii] = running;
            match item {
                Item::Batch(b) => running = running.max(b.durable_lsn),
                Item::Resync { durable_lsn, .. } => running = running.max(*durable_lsn),
                _ => {}
            }
        }
    }

    // Walk the items, deciding about each damaged spot.
    let now = now_secs();
    let total_records: usize = scans.iter().map(|s| s.records.len()).sum();
    let mut arena = Arena {
        recs: Vec::with_capacity(total_records),
        next: Vec::with_capacity(total_records),
    };
    let mut live: HashMap<Key, Chain, FxBuildHasher> = HashMap::default();
    let mut killed: HashMap<Key, Vec<u64>, FxBuildHasher> = HashMap::default();
    let mut next_lsn = 1u64;
    let mut cut: Option<(usize, u64)> = None;
    let mut kept_segments = 0;
    let mut consumed = vec![0usize; scans.len()];
    'segments: for (si, s) in scans.iter().enumerate() {
        if s.base < next_lsn {
            return Err(Error::corrupt(
                &s.name,
                0,
                format!(
                    "segment starts at LSN {} but LSN {} was already read",
                    s.base,
                    next_lsn - 1
                ),
            ));
        }
        next_lsn = s.base;
        kept_segments = si + 1;
        for (ii, item) in s.items.iter().enumerate() {
            match item {
                Item::Batch(b) => {
                    if b.first_lsn < next_lsn {
                        return Err(Error::corrupt(
                            &s.name,
                            s.records.get(b.records.start).map_or(0, |r| r.offset),
                            "batch repeats LSNs already read",
                        ));
                    }
                    consumed[si] += b.records.len();
                    for (i, r) in s.records[b.records.clone()].iter().enumerate() {
                        report.records += 1;
                        let rr = RecRef {
                            seg: si as u32,
                            offset: r.offset,
                            lsn: b.first_lsn + i as u64,
                            len: r.header.len,
                            kind: r.header.kind,
                            flags: r.header.flags,
                            time_secs: r.header.time_secs,
                        };
                        let Ok(at) = u32::try_from(arena.recs.len()) else {
                            return Err(Error::corrupt(&s.name, r.offset, "more than 4G records"));
                        };
                        arena.recs.push(rr);
                        arena.next.push(NIL);
                        let key = Key::new(r.header.space, r.header.id);
                        match live.get_mut(&key) {
                            Some(chain) if rr.is_terminal() => {
                                // Everything before it dies; remember where
                                // those records sit.
                                let k = killed.entry(key).or_default();
                                let mut x = chain.head;
                                while x != NIL {
                                    let base = scans[arena.recs[x as usize].seg as usize].base;
                                    if k.last() != Some(&base) {
                                        k.push(base);
                                    }
                                    x = arena.next[x as usize];
                                }
                                *chain = Chain {
                                    head: at,
                                    tail: at,
                                    len: 1,
                                };
                            }
                            Some(chain) => {
                                arena.next[chain.tail as usize] = at;
                                chain.tail = at;
                                chain.len += 1;
                            }
                            None => {
                                live.insert(
                                    key,
                                    Chain {
                                        head: at,
                                        tail: at,
                                        len: 1,
                                    },
                                );
                            }
                        }
                    }
                    next_lsn = b.first_lsn + b.records.len() as u64;
                }
                Item::Resync { next_lsn: n, .. } => next_lsn = next_lsn.max(*n),
                Item::Sealed => {}
                Item::Damage {
                    offset,
                    expected,
                    reason,
                } => {
                    let evidence = claims[si][ii] >= *expected;
                    if !evidence {
                        cut = Some((si, *offset));
                        report.torn_tail = Some(Damage {
                            segment: s.name.clone(),
                            offset: *offset,
                            reason: reason.clone(),
                        });
                        next_lsn = next_lsn.max(*expected);
                        break 'segments;
                    }
                    if !config.tolerate_corruption {
                        return Err(Error::corrupt(&s.name, *offset, reason.clone()));
                    }
                    tracing::warn!(segment = %s.name, offset, reason = %reason, "skipping corrupt WAL batch");
                    report.skipped.push(Damage {
                        segment: s.name.clone(),
                        offset: *offset,
                        reason: reason.clone(),
                    });
                }
            }
        }
    }

    // Repair a torn tail so that the next recovery reads the same log, and
    // drop segments that hold no record (the writer may reuse their names).
    let mut dir_changed = false;
    if let Some((si, offset)) = cut {
        for s in &scans[si + 1..] {
            storage
                .remove(&s.name)
                .map_err(|e| Error::io(format!("removing {}", s.name), e))?;
            dir_changed = true;
        }
        let s = &scans[si];
        if offset >= format::HEADER_LEN && consumed[si] > 0 {
            let file = if s.file.len() < offset + format::MARKER_LEN {
                storage
                    .open(&s.name, offset + format::MARKER_LEN)
                    .map_err(|e| Error::io(format!("opening {}", s.name), e))?
            } else {
                s.file.clone()
            };
            let seal = format::encode_seal(format::seed(s.base), next_lsn);
            file.write_at(offset, &seal)
                .and_then(|()| file.sync(offset, format::MARKER_LEN))
                .map_err(|e| Error::io(format!("sealing {}", s.name), e))?;
        }
    }
    let mut segments = Vec::new();
    for (si, s) in scans.iter().enumerate().take(kept_segments) {
        if consumed[si] == 0 {
            storage
                .remove(&s.name)
                .map_err(|e| Error::io(format!("removing {}", s.name), e))?;
            dir_changed = true;
            continue;
        }
        segments.push(RecoveredSegment {
            base: s.base,
            name: s.name.clone(),
            file: s.file.clone(),
            end_lsn: s.base,
        });
    }
    if dir_changed {
        storage
            .sync_dir()
            .map_err(|e| Error::io("syncing the WAL directory", e))?;
    }

    // Segment ends: the start of the next kept segment, or the next LSN.
    let mut ends: Vec<u64> = segments.iter().skip(1).map(|s| s.base).collect();
    ends.push(next_lsn);
    for (s, end) in segments.iter_mut().zip(ends) {
        s.end_lsn = end;
    }

    // Expire what retention no longer keeps, then order keys by first LSN.
    // A terminal record expires only while it is its key's newest record
    // (then it is its key's only record).
    let mut expired_terminals = Vec::new();
    let mut keys: Vec<(Key, u32, u32)> = Vec::with_capacity(live.len());
    let has_logs = !config.log_kinds.is_empty();
    for (key, chain) in live {
        let last = arena.recs[chain.tail as usize];
        if last.is_terminal()
            && (last.time_secs == FORGOTTEN
                || config
                    .terminal_retention
                    .is_some_and(|ret| expired(last.time_secs, ret, now)))
        {
            expired_terminals.push((key, last));
            continue;
        }
        let (mut head, mut len) = (chain.head, chain.len);
        if has_logs {
            // Unlink expired log records.
            let dead = |r: &RecRef| {
                config.is_log_kind(Kind::new(r.kind))
                    && expired(r.time_secs, config.log_retention, now)
            };
            let mut prev = NIL;
            let mut x = head;
            for _ in 0..chain.len {
                let nx = arena.next[x as usize];
                if dead(&arena.recs[x as usize]) {
                    len -= 1;
                    if prev == NIL {
                        head = nx;
                    } else {
                        arena.next[prev as usize] = nx;
                    }
                } else {
                    prev = x;
                }
                x = nx;
            }
        }
        if len > 0 {
            keys.push((key, head, len));
        }
    }
    keys.sort_unstable_by_key(|&(_, head, _)| arena.recs[head as usize].lsn);
    report.live_records = keys.iter().map(|&(_, _, len)| u64::from(len)).sum();
    report.next_lsn = Lsn::new(next_lsn.max(1));

    let scan_bases = scans.iter().map(|s| s.base).collect();
    let images = scans.into_iter().map(|s| s.image).collect();
    Ok(Recovery {
        recovered: Recovered {
            images,
            arena,
            keys,
            report,
        },
        segments,
        spares,
        max_spare_id,
        scan_bases,
        killed,
        expired_terminals,
    })
}

/// Reads one segment image into items. Never reads outside the image.
fn scan_segment(
    base: u64,
    name: String,
    file: Arc<dyn SegmentFile>,
    image: Image,
) -> Result<SegScan> {
    let bytes = image.as_slice();
    let seed = format::seed(base);
    let mut records = Vec::new();
    let mut items = Vec::new();
    let mut pos = format::HEADER_LEN as usize;
    let mut expected = base;
    match SegmentHeader::decode(bytes) {
        Ok(h) if h.base_lsn == base => {}
        Ok(h) => {
            items.push(Item::Damage {
                offset: 0,
                expected,
                reason: format!(
                    "header says base LSN {} but the file name says {base}",
                    h.base_lsn
                ),
            });
            pos = resync(bytes, 16, seed, expected, &mut items);
        }
        Err(HeaderError::Version(found)) => {
            return Err(Error::UnsupportedVersion {
                segment: name,
                found,
                supported: format::VERSION,
            });
        }
        Err(e) => {
            items.push(Item::Damage {
                offset: 0,
                expected,
                reason: format!("bad segment header ({e:?})"),
            });
            pos = resync(bytes, 16, seed, expected, &mut items);
        }
    }

    if let Some(Item::Resync { next_lsn, .. }) = items.last() {
        expected = *next_lsn;
    }
    let mut batch_start = pos;
    let mut pending_from = records.len();
    let mut batch_crc = seed;
    while pos < bytes.len() {
        let damage = match format::parse_frame(bytes, pos, seed) {
            Frame::Record { header, crc } => {
                records.push(ScannedRecord {
                    offset: pos as u64,
                    header,
                });
                batch_crc = crc32c::crc32c_append(batch_crc, &crc.to_le_bytes());
                pos += format::frame_len(header.len as usize) as usize;
                continue;
            }
            Frame::Marker(m) => {
                let count = records.len() - pending_from;
                if count == 0 || m.count as usize != count {
                    Some("commit marker does not match its batch's record count")
                } else if m.records_crc != batch_crc {
                    Some("commit marker checksum does not match its batch")
                } else if m.first_lsn != expected {
                    Some("batch LSN does not follow the previous batch")
                } else {
                    items.push(Item::Batch(GoodBatch {
                        first_lsn: m.first_lsn,
                        durable_lsn: m.durable_lsn,
                        records: pending_from..records.len(),
                    }));
                    expected += count as u64;
                    pos += format::MARKER_LEN as usize;
                    batch_start = pos;
                    pending_from = records.len();
                    batch_crc = seed;
                    None
                }
            }
            Frame::Seal { next_lsn } => {
                if records.len() == pending_from && next_lsn == expected {
                    items.push(Item::Sealed);
                    break;
                }
                Some("seal inside a batch or at the wrong LSN")
            }
            Frame::Zero => Some(if records.len() == pending_from {
                "segment ends without a seal"
            } else {
                "batch without a commit marker"
            }),
            Frame::Bad(reason) => Some(reason),
        };
        if let Some(reason) = damage {
            records.truncate(pending_from);
            items.push(Item::Damage {
                offset: batch_start as u64,
                expected,
                reason: reason.to_owned(),
            });
            pos = resync(bytes, batch_start + 16, seed, expected, &mut items);
            if let Some(Item::Resync { next_lsn, .. }) = items.last() {
                expected = *next_lsn;
            }
            batch_start = pos;
            pending_from = records.len();
            batch_crc = seed;
        }
    }
    if !matches!(items.last(), Some(Item::Sealed) | Some(Item::Damage { .. })) {
        // Ran off the end of the file: the segment is unsealed.
        items.push(Item::Damage {
            offset: batch_start.min(bytes.len()) as u64,
            expected,
            reason: "segment ends without a seal".into(),
        });
    }
    Ok(SegScan {
        base,
        name,
        file,
        image,
        records,
        items,
    })
}

/// Looks for the next offset at or after `from` (rounded up to the frame
/// alignment) where a whole batch verifies: its records, its commit marker,
/// and an LSN not before `expected`. Pushes `Item::Resync` and returns that
/// offset, or returns the end of the image if there is none.
fn resync(bytes: &[u8], from: usize, seed: u32, expected: u64, items: &mut Vec<Item>) -> usize {
    let align = format::ALIGN as usize;
    let mut at = from.div_ceil(align) * align;
    while at + format::MARKER_LEN as usize <= bytes.len() {
        if let Some(m) = try_batch(bytes, at, seed)
            && m.first_lsn >= expected
        {
            items.push(Item::Resync {
                durable_lsn: m.durable_lsn,
                next_lsn: m.first_lsn,
            });
            return at;
        }
        at += align;
    }
    bytes.len()
}

/// The marker of the batch starting at `at`, if the whole batch verifies.
fn try_batch(bytes: &[u8], mut at: usize, seed: u32) -> Option<format::Marker> {
    let mut count = 0u32;
    let mut crc = seed;
    loop {
        match format::parse_frame(bytes, at, seed) {
            Frame::Record { header, crc: c } => {
                count += 1;
                crc = crc32c::crc32c_append(crc, &c.to_le_bytes());
                at += format::frame_len(header.len as usize) as usize;
            }
            Frame::Marker(m) if count > 0 && m.count == count && m.records_crc == crc => {
                return Some(m);
            }
            _ => return None,
        }
    }
}
