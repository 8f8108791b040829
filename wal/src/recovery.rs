//! Recovery: scan every segment in LSN order, verify every checksum, tell a
//! torn tail from damage, and hand back each key's live records.
//!
//! Reading changes nothing on disk: [`recover`] scans, classifies and plans
//! the repairs, and only `Wal::open` carries the plan out ([`repair`]), after
//! deciding that it may. `check` runs the same scan on a read-only storage.
//!
//! A damaged spot is where the log does not go on as it should: a frame that
//! does not verify, a batch without its commit marker, a segment that ends
//! without its seal, a bad segment header, a file shorter than its header
//! says, LSNs that no segment holds, a segment that repeats LSNs. At the spot
//! LSN `X` was expected. Each spot is one of
//! - a **torn tail**: the unsynced end of the log when the process or the
//!   machine stopped. Unsynced pages reach the disk in any order, so valid
//!   bytes may follow a torn spot; but nothing after it can say that `X` had
//!   been synced. Recovery cuts the log there, as a crash would have if the
//!   pages had been written in order.
//! - **damage**: anything else. Bytes at `X` had been synced, because a
//!   later commit marker or the manifest claims a durable LSN `>= X` (a
//!   claim is only ever written after the sync it reports); or the spot is
//!   one no crash makes (a file cut short, LSNs missing between segments that
//!   truncation did not remove, overlapping segments), and then every spot
//!   before it is damage too. Recovery fails with `Error::Damaged`, naming
//!   the full path, the offset and the LSNs lost; with
//!   `Config::skip_damaged` it drops the spot, reads on (at the next batch
//!   that verifies, or the next segment) and reports what it dropped.
//!
//! A torn tail is the first spot that is neither: everything from it on is
//! cut. Later segments are deleted and the cut segment gets a seal, so that
//! the next recovery reads the same log.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::{self, Frame, HeaderError, SegmentHeader};
use crate::io::{SegmentFile, Storage};
use crate::manifest::{self, Manifest, Ranges};
use crate::mmap::Image;
use crate::record::{Key, Kind, Lsn, Record, expired, now_secs};
use crate::writer::FORGOTTEN;

/// A damaged spot, or a torn tail, found by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The full path of the segment file (for a missing segment, the name it
    /// would have; for a missing or unreadable manifest, the manifest's).
    pub path: PathBuf,
    /// Byte offset in that file where the damage starts.
    pub offset: u64,
    /// What is wrong, why it cannot be a torn tail, and what it costs.
    pub what: String,
    /// The LSNs it makes unreadable, `first..end` (empty when no record is
    /// lost). For a torn tail: the partial records found at the cut.
    pub lsns: std::ops::Range<u64>,
    /// The keys of those records, as their frame headers name them. The
    /// headers cannot be verified (the damage may be in them), and a missing
    /// or cut-short file names none: see `keys_complete`.
    pub keys: Vec<Key>,
    /// Whether `keys` accounts for every record of `lsns`.
    pub keys_complete: bool,
}

impl Damage {
    /// How many records (LSNs) it makes unreadable.
    pub fn records(&self) -> u64 {
        self.lsns.end - self.lsns.start
    }
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
    /// The lowest LSN of a record read, if any.
    pub first_lsn: Option<Lsn>,
    /// The LSN the next append gets.
    pub next_lsn: Lsn,
    /// Format version of the segments read: 2, or 1 (an earlier build's,
    /// which only `check` reads).
    pub format: u16,
    /// Where a torn tail was cut off (by `check`: would be), if there was one.
    pub torn_tail: Option<Damage>,
    /// Damage found: dropped under `Config::skip_damaged`, or reported by
    /// `check`. `Wal::open` without `skip_damaged` fails instead.
    pub damage: Vec<Damage>,
    /// Damage an earlier open dropped under `Config::skip_damaged` (its LSNs
    /// are in the manifest): not reported as damage again.
    pub skipped_before: Vec<Damage>,
    /// Segment files that truncation had decided to remove (their LSNs are
    /// in the manifest) but had not removed yet: not read, removed by open.
    pub removing: usize,
}

/// The outcome of recovery: per key, its live records in LSN order. For a
/// key whose last record is terminal, that record is the only one.
#[derive(Debug)]
pub struct Recovered {
    images: Vec<Image>,
    /// For `check`: the read-only storage, whose lock on the directory must
    /// last as long as the maps of its files are read.
    _storage: Option<Arc<dyn Storage>>,
    arena: Arena,
    /// Per key: the first of its live records in `arena` and how many.
    keys: Vec<(Key, u32, u32)>,
    /// The payloads of live terminal records that span frames, joined, by
    /// their place in `arena`.
    joined: HashMap<u32, rkyv::util::AlignedVec, FxBuildHasher>,
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
            joined: &self.joined,
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
    joined: &'a HashMap<u32, rkyv::util::AlignedVec, FxBuildHasher>,
    arena: &'a Arena,
    key: Key,
    at: u32,
    left: usize,
}

impl<'a> LiveRecords<'a> {
    /// The next record and its place in the arena.
    fn next_at(&mut self) -> Option<(u32, &'a RecRef)> {
        if self.left == 0 {
            return None;
        }
        let at = self.at;
        let r = self.arena.recs.get(at as usize)?;
        self.at = self.arena.next.get(at as usize).copied().unwrap_or(NIL);
        self.left -= 1;
        Some((at, r))
    }

    fn next_ref(&mut self) -> Option<&'a RecRef> {
        self.next_at().map(|(_, r)| r)
    }
}

impl<'a> Iterator for LiveRecords<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        let (at, r) = self.next_at()?;
        let start = (r.offset + format::FRAME_HEADER_LEN) as usize;
        // Recovery verified the range when it read the frame.
        let payload = if r.flags & format::FLAG_CONTINUES != 0 {
            self.joined.get(&at).map_or(&[][..], |p| p.as_slice())
        } else {
            self.images[r.seg as usize]
                .as_slice()
                .get(start..start + r.len as usize)
                .unwrap_or(&[])
        };
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

/// Whether recovery plans repairs (`Wal::open`) or only reads (`check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Open,
    Check,
}

/// What [`repair`] changes on disk before the WAL takes over: nothing until
/// recovery decided that the WAL may open. Empty for `check`.
#[derive(Debug, Default)]
struct Repair {
    /// Files to delete: spares of the wrong size, a leftover manifest
    /// temporary, segments truncation was removing, segments after a torn
    /// tail, segments without a readable record.
    remove: Vec<String>,
    /// Segments that repeat LSNs, dropped under `skip_damaged`: renamed to
    /// `NAME.skipped`, out of the log but kept for whoever looks into it.
    set_aside: Vec<String>,
    /// Seals to write, `(scan index, offset, next LSN)`: at a torn tail's
    /// cut, and over a damaged seal that `skip_damaged` dropped.
    seals: Vec<(usize, u64, u64)>,
    /// Damaged headers of segments whose records are intact, dropped under
    /// `skip_damaged`: rewritten (scan index).
    headers: Vec<usize>,
}

/// Everything `Wal::open` needs besides the records.
#[derive(Debug)]
pub(crate) struct Recovery {
    pub recovered: Recovered,
    pub segments: Vec<RecoveredSegment>,
    pub spares: Vec<(u64, Arc<dyn SegmentFile>)>,
    pub max_spare_id: u64,
    /// The manifest as read (empty when there was none), with the ranges
    /// this open dropped under `skip_damaged` added; `Wal::open` writes it
    /// back with its new durable LSN.
    pub manifest: Manifest,
    repair: Repair,
    /// Name and file of every scanned segment; `RecRef::seg` indexes it.
    scan_files: Vec<(u64, String, Arc<dyn SegmentFile>)>,
    /// Per key whose terminal records killed records still on disk: the
    /// bases of the segments holding them.
    killed: HashMap<Key, Vec<u64>, FxBuildHasher>,
    /// Terminal records past their retention: not handed back, but the
    /// index must know them (they still keep the records they killed dead).
    expired_terminals: Vec<(Key, RecRef)>,
}

impl Recovery {
    pub(crate) fn base_of(&self, seg: u32) -> u64 {
        self.scan_files.get(seg as usize).map_or(0, |f| f.0)
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
    /// Past damage, the next batch that verifies (its durable claim and its
    /// first LSN), or the segment's seal (no claim; the LSN after the
    /// segment), at `offset`.
    Resync {
        durable_lsn: u64,
        next_lsn: u64,
        offset: u64,
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
    /// The header's format version, when the header verified.
    version: Option<u16>,
    /// The capacity the header gives, when the file is shorter than that.
    short_of: Option<u64>,
    records: Vec<ScannedRecord>,
    items: Vec<Item>,
}

/// What skipping a damaged spot that lost no record repairs, so that the
/// next open does not find it again (a spot that lost records is found
/// again, and accepted through the manifest's skipped ranges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fix {
    None,
    /// Write a seal where the damage starts (a damaged seal).
    Seal,
    /// Rewrite the segment's header.
    Header,
    /// Rename the segment out of the log (it repeats LSNs).
    SetAside,
}

/// A damaged spot, before it is judged.
#[derive(Debug)]
struct Spot {
    /// The scanned segment it is in (`None`: between segments, or the
    /// manifest), and its item there (`None`: the whole segment).
    seg: Option<usize>,
    item: Option<usize>,
    /// File name, for the report.
    name: String,
    offset: u64,
    /// The LSNs it makes unreadable: `from..to`; `to` unknown while nothing
    /// after the spot says where the log goes on (a torn tail's).
    from: u64,
    to: Option<u64>,
    reason: String,
    /// No crash leaves a spot like it: damage whatever the claims say.
    hard: bool,
    /// The largest durable claim of the batches after it.
    claim: u64,
    /// Where its bytes end in its segment's image (for reading keys).
    bytes_end: u64,
    fix: Fix,
}

pub(crate) fn recover(storage: &dyn Storage, config: &Config, mode: Mode) -> Result<Recovery> {
    let names = storage
        .list()
        .map_err(|e| Error::io("listing the WAL directory", e))?;
    let io_error = |what: &str, name: &str, e| {
        Error::io(format!("{what} {}", storage.path(name).display()), e)
    };
    let mut repair = Repair::default();
    let mut spares = Vec::new();
    let mut max_spare_id = 0;
    for name in &names {
        if name == manifest::MANIFEST_TMP {
            repair.remove.push(name.clone());
        }
        let Some(id) = format::parse_spare_name(name) else {
            continue;
        };
        max_spare_id = max_spare_id.max(id);
        if mode == Mode::Check {
            continue;
        }
        let file = storage
            .open(name, 0)
            .map_err(|e| io_error("opening", name, e))?;
        // Segments grow (`Config::first_segment_bytes`): a spare of any
        // size up to the largest serves.
        let len = file.len();
        if len.is_multiple_of(4096) && len > 0 && len <= config.segment_bytes.get() {
            spares.push((id, file));
        } else {
            repair.remove.push(name.clone());
        }
    }

    let manifest_bytes = storage
        .read_file(manifest::MANIFEST)
        .map_err(|e| io_error("reading", manifest::MANIFEST, e))?;
    let (mut manifest, manifest_problem) = match &manifest_bytes {
        Some(bytes) => match Manifest::decode(bytes) {
            Ok(m) => (m, None),
            Err(why) => (Manifest::default(), Some(format!("unreadable ({why})"))),
        },
        None => (Manifest::default(), Some("missing".to_owned())),
    };

    let mut report = RecoveryReport {
        format: format::VERSION,
        ..RecoveryReport::default()
    };
    let mut segment_names: Vec<(u64, String)> = Vec::new();
    for name in &names {
        let Some(base) = format::parse_segment_name(name) else {
            continue;
        };
        if manifest.truncated.contains(base) {
            // Truncation wrote its decision and crashed before the file was
            // gone: its records are all dead.
            report.removing += 1;
            repair.remove.push(name.clone());
        } else {
            segment_names.push((base, name.clone()));
        }
    }
    segment_names.sort();
    // Open (and start reading ahead) every segment first, then parse.
    let mut opened = Vec::with_capacity(segment_names.len());
    for (base, name) in segment_names {
        let file = storage
            .open(&name, 0)
            .map_err(|e| io_error("opening", &name, e))?;
        let image = file
            .clone()
            .image()
            .map_err(|e| io_error("reading", &name, e))?;
        report.segments += 1;
        report.bytes_scanned += image.len() as u64;
        opened.push((base, name, file, image));
    }
    let mut scans = Vec::with_capacity(opened.len());
    for (base, name, file, image) in opened {
        let path = storage.path(&name);
        scans.push(scan_segment(base, name, path, file, image, mode)?);
    }
    // Format 1 kept no manifest: its truncation gaps cannot be told from
    // missing segments, and are taken on trust, as that build did.
    let format_1 = scans.iter().any(|s| s.version == Some(format::VERSION_1));
    if format_1 {
        report.format = format::VERSION_1;
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

    // Pass 1: every damaged spot, in log order.
    let no_ranges = Ranges::default();
    let mut spots: Vec<Spot> = Vec::new();
    let manifest_matters = manifest_bytes.is_some() || !scans.is_empty();
    if let Some(problem) = manifest_problem.filter(|_| manifest_matters && !format_1) {
        spots.push(Spot {
            seg: None,
            item: None,
            name: manifest::MANIFEST.to_owned(),
            offset: 0,
            from: 0,
            to: Some(0),
            reason: format!(
                "the manifest is {problem}, so LSNs missing between segments cannot be told from ones truncation removed"
            ),
            hard: true,
            claim: 0,
            bytes_end: 0,
            fix: Fix::None,
        });
    }
    let hole = |from: u64, to: u64, reason: String| Spot {
        seg: None,
        item: None,
        name: format::segment_name(from),
        offset: 0,
        from,
        to: Some(to),
        reason,
        hard: true,
        claim: 0,
        bytes_end: 0,
        fix: Fix::None,
    };
    let mut excluded = vec![false; scans.len()];
    let mut expected = 1u64;
    // Whether the log so far says where it goes on: at its start, and after
    // a seal. Then LSNs missing before the next segment are a missing
    // segment; otherwise they are the end of the damaged segment before.
    let mut declared = true;
    for (si, s) in scans.iter().enumerate() {
        if s.base < expected {
            spots.push(Spot {
                seg: Some(si),
                item: None,
                name: s.name.clone(),
                offset: 0,
                from: s.base,
                to: Some(s.base),
                reason: format!(
                    "the segment starts at LSN {}, but LSNs up to {} were read before it",
                    s.base,
                    expected - 1
                ),
                hard: true,
                claim: 0,
                bytes_end: 0,
                fix: Fix::SetAside,
            });
            excluded[si] = true;
            continue;
        }
        if s.base > expected {
            if !declared {
                if let Some(last) = spots.last_mut()
                    && last.to.is_none()
                {
                    last.to = Some(s.base);
                }
            } else if !format_1
                && !manifest::covered(&manifest.truncated, &no_ranges, expected, s.base)
            {
                spots.push(hole(
                    expected,
                    s.base,
                    format!(
                        "no segment holds LSNs {expected}..={}, and truncation did not remove them: a segment is missing",
                        s.base - 1
                    ),
                ));
            }
            expected = s.base;
        }
        declared = false;
        for (ii, item) in s.items.iter().enumerate() {
            match item {
                Item::Batch(b) => expected = b.first_lsn + b.records.len() as u64,
                Item::Resync {
                    next_lsn, offset, ..
                } => {
                    if let Some(last) = spots.last_mut()
                        && last.seg == Some(si)
                        && last.to.is_none()
                    {
                        last.to = Some(*next_lsn);
                        last.bytes_end = *offset;
                    }
                    expected = *next_lsn;
                }
                Item::Sealed => declared = true,
                Item::Damage {
                    offset,
                    expected: at,
                    reason,
                } => spots.push(Spot {
                    seg: Some(si),
                    item: Some(ii),
                    name: s.name.clone(),
                    offset: *offset,
                    from: *at,
                    to: None,
                    reason: reason.clone(),
                    hard: false,
                    claim: claims[si][ii],
                    bytes_end: s.image.len() as u64,
                    fix: if *offset == 0 { Fix::Header } else { Fix::Seal },
                }),
            }
        }
        if let Some(capacity) = s.short_of
            && !declared
            && let Some(last) = spots.last_mut()
            && last.seg == Some(si)
        {
            last.hard = true;
            last.reason = format!(
                "{}: the file has {} bytes but its header says {capacity}, it was cut short",
                last.reason,
                s.image.len()
            );
        }
    }
    // The log's end: the manifest vouches for every LSN up to its durable one.
    let vouched_end = manifest.durable_lsn.saturating_add(1);
    if !declared {
        // The last segment ends in a damaged spot: it lost at least up to
        // there.
        if let Some(last) = spots.last_mut()
            && last.to.is_none()
            && vouched_end > last.from
        {
            last.to = Some(vouched_end);
        }
    } else if vouched_end > expected
        && !format_1
        && !manifest::covered(&manifest.truncated, &no_ranges, expected, vouched_end)
    {
        spots.push(hole(
            expected,
            vouched_end,
            format!(
                "the log ends at LSN {}, but the manifest says LSNs up to {} had been synced: the end of the log is missing",
                expected - 1,
                manifest.durable_lsn
            ),
        ));
    }

    // Judge the spots. One that lost records an earlier open skipped (in the
    // manifest) is accepted. A torn tail is the first spot no claim vouches
    // for and no crash-proof damage follows; everything from it on is cut.
    let skipped_before = |s: &Spot| {
        s.to.is_some_and(|to| {
            to > s.from && manifest::covered(&manifest.truncated, &manifest.skipped, s.from, to)
        })
    };
    let vouched = |s: &Spot| s.claim.max(manifest.durable_lsn) >= s.from;
    let last_hard = spots.iter().rposition(|s| s.hard && !skipped_before(s));
    let torn = spots.iter().enumerate().position(|(i, s)| {
        last_hard.is_none_or(|h| i > h) && !s.hard && !skipped_before(s) && !vouched(s)
    });
    let judged = torn.map_or(spots.len(), |t| t);
    let damaged: Vec<usize> = (0..judged)
        .filter(|&i| !skipped_before(&spots[i]))
        .collect();
    let describe = |s: &Spot| {
        let why = if s.hard || s.seg.is_none() {
            String::new()
        } else if s.claim >= s.from {
            " (later commit markers say it had been synced)".to_owned()
        } else if manifest.durable_lsn >= s.from {
            format!(
                " (the manifest says LSNs up to {} had been synced)",
                manifest.durable_lsn
            )
        } else {
            " (damage no crash leaves follows it)".to_owned()
        };
        let lost = match s.to.map(|to| (to, to - s.from)) {
            None => format!(
                "LSNs from {} on unreadable (nothing after the damage says how many)",
                s.from
            ),
            Some((_, 0)) => "no record lost".to_owned(),
            Some((_, 1)) => format!("LSN {} (1 record) unreadable", s.from),
            Some((to, n)) => format!("LSNs {}..={} ({n} records) unreadable", s.from, to - 1),
        };
        format!("{}{why}; {lost}", s.reason)
    };
    // The keys are read from the frames in the spot's bytes: as many as it
    // lost LSNs, or, where that is unknown, those of the first batch.
    let damage_of = |s: &Spot, what: String| {
        let (keys, walked) = match s.seg {
            Some(si) if s.item.is_some() => keys_in(
                scans[si].image.as_slice(),
                // A damaged header is no frame: frames start after it.
                s.offset.max(format::HEADER_LEN) as usize,
                s.bytes_end as usize,
                s.to.map(|to| to - s.from),
            ),
            _ => (Vec::new(), 0),
        };
        let to = s.to.unwrap_or(s.from + walked);
        Damage {
            path: storage.path(&s.name),
            offset: s.offset,
            what,
            lsns: s.from..to,
            keys,
            keys_complete: s.to.is_some() && walked == to - s.from,
        }
    };
    report.damage = damaged
        .iter()
        .map(|&i| damage_of(&spots[i], describe(&spots[i])))
        .collect();
    report.skipped_before = spots
        .iter()
        .filter(|s| skipped_before(s))
        .map(|s| damage_of(s, describe(s)))
        .collect();
    report.torn_tail = torn.map(|t| damage_of(&spots[t], spots[t].reason.clone()));
    if mode == Mode::Open
        && !config.skip_damaged
        && let Some(first) = report.damage.first()
    {
        let more = match report.damage.len() - 1 {
            0 => String::new(),
            1 => "; and 1 more damaged spot".to_owned(),
            n => format!("; and {n} more damaged spots"),
        };
        return Err(Error::damaged(
            first.path.clone(),
            first.offset,
            format!("{}{more}", first.what),
        ));
    }
    let cut = torn.and_then(|t| Some((spots[t].seg?, spots[t].item?)));

    // Pass 2: the records, up to the cut, linked per key.
    let now = now_secs();
    let total_records: usize = scans.iter().map(|s| s.records.len()).sum();
    let mut arena = Arena {
        recs: Vec::with_capacity(total_records),
        next: Vec::with_capacity(total_records),
    };
    let mut live: HashMap<Key, Chain, FxBuildHasher> = HashMap::default();
    let mut killed: HashMap<Key, Vec<u64>, FxBuildHasher> = HashMap::default();
    let mut next_lsn = 1u64;
    let mut kept_segments = scans.len();
    let mut consumed = vec![0usize; scans.len()];
    'segments: for (si, s) in scans.iter().enumerate() {
        if excluded[si] {
            continue;
        }
        next_lsn = next_lsn.max(s.base);
        for (ii, item) in s.items.iter().enumerate() {
            if cut == Some((si, ii)) {
                kept_segments = si + 1;
                break 'segments;
            }
            match item {
                Item::Batch(b) => {
                    consumed[si] += b.records.len();
                    // The first frame of a terminal record spanning frames,
                    // while its parts are read.
                    let mut span: Option<RecRef> = None;
                    let batch = &s.records[b.records.clone()];
                    for (i, r) in batch.iter().enumerate() {
                        let part = RecRef {
                            seg: si as u32,
                            offset: r.offset,
                            lsn: b.first_lsn + i as u64,
                            len: r.header.len,
                            kind: r.header.kind,
                            flags: r.header.flags,
                            time_secs: r.header.time_secs,
                        };
                        let continues = part.flags & format::FLAG_CONTINUES != 0;
                        let broken = || {
                            Error::damaged(
                                storage.path(&s.name),
                                r.offset,
                                "a terminal record spanning frames is incomplete",
                            )
                        };
                        let rr = match span.take() {
                            None if !continues => part,
                            None => {
                                if !part.is_terminal() || i + 1 == batch.len() {
                                    return Err(broken());
                                }
                                span = Some(part);
                                continue;
                            }
                            Some(first) => {
                                let prev = &batch[i - 1].header;
                                if !part.is_terminal()
                                    || (r.header.space, r.header.id, part.kind)
                                        != (prev.space, prev.id, first.kind)
                                {
                                    return Err(broken());
                                }
                                let joined = RecRef {
                                    len: first.len.saturating_add(part.len),
                                    lsn: part.lsn,
                                    ..first
                                };
                                if continues {
                                    if i + 1 == batch.len() {
                                        return Err(broken());
                                    }
                                    span = Some(joined);
                                    continue;
                                }
                                joined
                            }
                        };
                        report.records += 1;
                        let Ok(at) = u32::try_from(arena.recs.len()) else {
                            return Err(Error::damaged(
                                storage.path(&s.name),
                                r.offset,
                                "more than 4G records in one WAL",
                            ));
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
                Item::Sealed | Item::Damage { .. } => {}
            }
        }
    }
    report.first_lsn = arena.recs.iter().map(|r| r.lsn).min().map(Lsn::new);
    // LSNs only grow: past every LSN the manifest knows of, and past what
    // skipped damage lost.
    let skipped_to = report.damage.iter().map(|d| d.lsns.end).max().unwrap_or(0);
    let next_lsn = next_lsn
        .max(vouched_end)
        .max(manifest.truncated.end())
        .max(manifest.skipped.end())
        .max(skipped_to);

    // Plan the repairs: the cut, and what skipping damage needs so that the
    // next open does not find it again.
    if mode == Mode::Open {
        if let Some((si, ii)) = cut {
            for s in &scans[si + 1..] {
                repair.remove.push(s.name.clone());
            }
            let offset = match &scans[si].items[ii] {
                Item::Damage { offset, .. } => *offset,
                _ => 0,
            };
            if offset >= format::HEADER_LEN && consumed[si] > 0 {
                repair.seals.push((si, offset, next_lsn));
            }
        }
        for &i in &damaged {
            let s = &spots[i];
            // Where nothing said how far the damage reaches, it reaches the
            // first LSN the WAL appends next.
            let to = s.to.unwrap_or(next_lsn);
            manifest.skipped.insert(s.from, to);
            // A spot whose lost range is recorded is found again and
            // accepted; one that lost no known range must be repaired.
            let unrecorded = s.to.is_none_or(|to| to == s.from);
            match (s.fix, s.seg) {
                (Fix::SetAside, Some(si)) => repair.set_aside.push(scans[si].name.clone()),
                (Fix::Seal, Some(si)) if unrecorded && consumed[si] > 0 => {
                    let ii = s.item.unwrap_or(0);
                    let batches_after = scans[si].items[ii..]
                        .iter()
                        .any(|it| matches!(it, Item::Batch(_)));
                    if !batches_after {
                        repair.seals.push((si, s.offset, to));
                    }
                }
                (Fix::Header, Some(si)) if unrecorded && consumed[si] > 0 => {
                    repair.headers.push(si);
                }
                _ => {}
            }
        }
    }
    let mut segments = Vec::new();
    for (si, s) in scans.iter().enumerate().take(kept_segments) {
        if excluded[si] {
            continue;
        }
        if consumed[si] == 0 {
            if mode == Mode::Open {
                repair.remove.push(s.name.clone());
            }
            continue;
        }
        segments.push(RecoveredSegment {
            base: s.base,
            name: s.name.clone(),
            file: s.file.clone(),
            end_lsn: s.base,
        });
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
    let budgets = config.terminal_max_count.is_some() || config.terminal_max_bytes.is_some();
    let mut kept_terminals: Vec<(Key, Chain, RecRef)> = Vec::new();
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
        if last.is_terminal() && budgets {
            kept_terminals.push((key, chain, last));
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
    // The retention budgets, as the truncator applies them: the oldest
    // terminal records go first (here by append second, then LSN).
    kept_terminals.sort_unstable_by_key(|(_, _, r)| (r.time_secs, r.lsn));
    let mut count = kept_terminals.len() as u64;
    let mut bytes: u64 = kept_terminals
        .iter()
        .map(|(_, _, r)| format::frame_len(r.len as usize))
        .sum();
    for (key, chain, mut r) in kept_terminals {
        if config.over_terminal_budgets(count, bytes) {
            count -= 1;
            bytes -= format::frame_len(r.len as usize);
            r.time_secs = FORGOTTEN;
            expired_terminals.push((key, r));
        } else {
            keys.push((key, chain.head, chain.len));
        }
    }
    keys.sort_unstable_by_key(|&(_, head, _)| arena.recs[head as usize].lsn);
    report.live_records = keys.iter().map(|&(_, _, len)| u64::from(len)).sum();
    report.next_lsn = Lsn::new(next_lsn);

    let scan_files = scans
        .iter()
        .map(|s| (s.base, s.name.clone(), s.file.clone()))
        .collect();
    // Live terminal records that span frames are handed back joined.
    let mut joined: HashMap<u32, rkyv::util::AlignedVec, FxBuildHasher> = HashMap::default();
    for &(key, head, len) in &keys {
        let mut x = head;
        for _ in 0..len {
            let r = &arena.recs[x as usize];
            if r.flags & format::FLAG_CONTINUES != 0 {
                let s = &scans[r.seg as usize];
                let bytes = s.image.as_slice().get(r.offset as usize..).unwrap_or(&[]);
                let (_, payload) =
                    format::read_span(bytes, format::seed(s.base), key.space(), key.id())
                        .map_err(|what| Error::damaged(storage.path(&s.name), r.offset, what))?;
                joined.insert(x, payload);
            }
            x = arena.next[x as usize];
        }
    }
    let images = scans.into_iter().map(|s| s.image).collect();
    Ok(Recovery {
        recovered: Recovered {
            images,
            _storage: None,
            arena,
            keys,
            joined,
            report,
        },
        segments,
        spares,
        max_spare_id,
        manifest,
        repair,
        scan_files,
        killed,
        expired_terminals,
    })
}

impl Recovered {
    /// Keeps `storage` (a read-only one, and its lock) as long as the
    /// records read from its files.
    pub(crate) fn hold(&mut self, storage: Arc<dyn Storage>) {
        self._storage = Some(storage);
    }
}

/// Carries out what recovery planned, before anything is appended: the
/// files it drops go first (and the directory is synced), then the seals
/// and headers are written and synced. In that order, a seal never claims
/// that the log ends where a segment it cut away could still reappear.
pub(crate) fn repair(storage: &dyn Storage, recovery: &mut Recovery) -> Result<()> {
    let plan = std::mem::take(&mut recovery.repair);
    let path = |name: &str| storage.path(name).display().to_string();
    let mut dir_changed = false;
    for name in &plan.remove {
        storage
            .remove(name)
            .map_err(|e| Error::io(format!("removing {}", path(name)), e))?;
        dir_changed = true;
    }
    for name in &plan.set_aside {
        let aside = format!("{name}.skipped");
        storage
            .rename(name, &aside)
            .map_err(|e| Error::io(format!("renaming {} to {aside}", path(name)), e))?;
        dir_changed = true;
    }
    if dir_changed {
        storage
            .sync_dir()
            .map_err(|e| Error::io("syncing the WAL directory", e))?;
    }
    let files = &recovery.scan_files;
    for (si, offset, next_lsn) in plan.seals {
        let Some((base, name, file)) = files.get(si) else {
            continue;
        };
        let file = if file.len() < offset + format::MARKER_LEN {
            storage
                .open(name, offset + format::MARKER_LEN)
                .map_err(|e| Error::io(format!("opening {}", path(name)), e))?
        } else {
            file.clone()
        };
        let seal = format::encode_seal(format::seed(*base), next_lsn);
        file.write_at(offset, &seal)
            .and_then(|()| file.sync(offset, format::MARKER_LEN))
            .map_err(|e| Error::io(format!("sealing {}", path(name)), e))?;
    }
    for si in plan.headers {
        let Some((base, name, file)) = files.get(si) else {
            continue;
        };
        let header = SegmentHeader {
            version: format::VERSION,
            base_lsn: *base,
            capacity: file.len(),
            created_ms: crate::record::now_ms(),
            // Unknown: the header it replaces was unreadable.
            segment_bytes: 0,
        };
        file.write_at(0, &header.encode())
            .and_then(|()| file.sync(0, format::HEADER_LEN))
            .map_err(|e| Error::io(format!("rewriting the header of {}", path(name)), e))?;
    }
    Ok(())
}

/// The keys of the record frames in `bytes[from..to]`, walked by their
/// length fields without trusting their checksums (the damage may be in
/// them), and how many frames were walked: at most `limit`, or, without
/// one, up to the first commit marker (a torn tail's first batch).
fn keys_in(bytes: &[u8], from: usize, to: usize, limit: Option<u64>) -> (Vec<Key>, u64) {
    let to = to.min(bytes.len());
    let mut keys: Vec<Key> = Vec::new();
    let mut walked = 0u64;
    let mut at = from;
    while limit.is_none_or(|l| walked < l) {
        let Some(h) = bytes.get(at..at + format::FRAME_HEADER_LEN as usize) else {
            break;
        };
        if at + h.len() > to {
            break;
        }
        let mut word = [0u8; 4];
        word.copy_from_slice(&h[0..4]);
        match u32::from_le_bytes(word) {
            format::MARKER_TAG | format::SEAL_TAG if limit.is_some() => {
                at += format::MARKER_LEN as usize;
            }
            0 if h.iter().all(|&b| b == 0) => break,
            len if len <= format::MAX_PAYLOAD => {
                let mut id = [0u8; 16];
                id.copy_from_slice(&h[16..32]);
                let key = Key::new(h[11], u128::from_le_bytes(id));
                if !keys.contains(&key) {
                    keys.push(key);
                }
                walked += 1;
                at += format::frame_len(len as usize) as usize;
            }
            _ => break,
        }
    }
    (keys, walked)
}

/// Reads one segment image into items. Never reads outside the image.
fn scan_segment(
    base: u64,
    name: String,
    path: PathBuf,
    file: Arc<dyn SegmentFile>,
    image: Image,
    mode: Mode,
) -> Result<SegScan> {
    let bytes = image.as_slice();
    let seed = format::seed(base);
    let mut records = Vec::new();
    let mut items = Vec::new();
    let mut pos = format::HEADER_LEN as usize;
    let mut expected = base;
    let mut version = None;
    let mut short_of = None;
    match SegmentHeader::decode(bytes) {
        Ok(h) if h.version == format::VERSION_1 && mode == Mode::Open => {
            return Err(Error::UnsupportedVersion {
                path,
                found: h.version,
                supported: format::VERSION,
            });
        }
        Ok(h) if h.base_lsn == base => {
            version = Some(h.version);
            if (bytes.len() as u64) < h.capacity {
                short_of = Some(h.capacity);
            }
        }
        Ok(h) => {
            items.push(Item::Damage {
                offset: 0,
                expected,
                reason: format!(
                    "the header says base LSN {} but the file name says {base}",
                    h.base_lsn
                ),
            });
            pos = resync(bytes, 16, (seed, format::VERSION), expected, &mut items);
        }
        Err(HeaderError::Version(found)) => {
            return Err(Error::UnsupportedVersion {
                path,
                found,
                supported: format::VERSION,
            });
        }
        Err(e) => {
            let reason = match e {
                HeaderError::Short if bytes.is_empty() => "the file is empty".to_owned(),
                HeaderError::Short => format!("the file has {} bytes, no header", bytes.len()),
                HeaderError::Magic => "bad segment header (not a segment)".to_owned(),
                HeaderError::Checksum | HeaderError::Version(_) => {
                    "bad segment header (checksum mismatch)".to_owned()
                }
            };
            items.push(Item::Damage {
                offset: 0,
                expected,
                reason,
            });
            pos = resync(bytes, 16, (seed, format::VERSION), expected, &mut items);
        }
    }

    if let Some(Item::Resync { next_lsn, .. }) = items.last() {
        expected = *next_lsn;
    }
    let v = version.unwrap_or(format::VERSION);
    let mut batch_start = pos;
    let mut pending_from = records.len();
    let mut batch_crc = seed;
    while pos < bytes.len() {
        let damage = match format::parse_frame_of(bytes, pos, seed, v) {
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
            pos = resync(bytes, batch_start + 16, (seed, v), expected, &mut items);
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
        version,
        short_of,
        records,
        items,
    })
}

/// Looks for the next offset at or after `from` (rounded up to the frame
/// alignment) where a whole batch verifies (its records, its commit marker,
/// and an LSN not before `expected`), or the segment's seal. Pushes
/// `Item::Resync` and returns that offset, or returns the end of the image
/// if there is none.
/// `seed` is the segment's checksum seed and format version.
fn resync(
    bytes: &[u8],
    from: usize,
    seed: (u32, u16),
    expected: u64,
    items: &mut Vec<Item>,
) -> usize {
    let align = format::ALIGN as usize;
    let mut at = from.div_ceil(align) * align;
    while at + format::MARKER_LEN as usize <= bytes.len() {
        if let Some(m) = try_batch(bytes, at, seed)
            && m.first_lsn >= expected
        {
            items.push(Item::Resync {
                durable_lsn: m.durable_lsn,
                next_lsn: m.first_lsn,
                offset: at as u64,
            });
            return at;
        }
        if let Frame::Seal { next_lsn } = format::parse_frame_of(bytes, at, seed.0, seed.1)
            && next_lsn >= expected
        {
            items.push(Item::Resync {
                durable_lsn: 0,
                next_lsn,
                offset: at as u64,
            });
            return at;
        }
        at += align;
    }
    bytes.len()
}

/// The marker of the batch starting at `at`, if the whole batch verifies.
fn try_batch(bytes: &[u8], mut at: usize, (seed, version): (u32, u16)) -> Option<format::Marker> {
    let mut count = 0u32;
    let mut crc = seed;
    loop {
        match format::parse_frame_of(bytes, at, seed, version) {
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
