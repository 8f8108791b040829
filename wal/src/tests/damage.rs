//! Damage on real files, one kind per test: a flipped byte in the last
//! record of a sealed segment, a flipped byte in a middle record of the last
//! segment, a sealed segment cut mid-record, a segment cut to nothing, a
//! missing segment, and (the one that is not damage) a torn tail. For each:
//! `Wal::open` fails with `Error::Damaged` naming the full path and the
//! offset and changes nothing on disk; with `skip_damaged` it opens, keeps
//! every other record and reports the lost LSNs with their keys; `check`
//! reports the same and changes nothing either.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::corruption::batch_spans;
use super::*;
use crate::format;
use crate::{Damage, Error};

/// A closed WAL on disk: `n` records, one per key (key `1000 + lsn`), in
/// segments of 8 KiB. Each is synced before the next, or, with `burst`,
/// they are appended at once and synced together at the end: then the
/// commit markers' durable claims lag behind (group commit), and only the
/// manifest written at close vouches for the last ones; that is where the
/// first builds took damage for a torn tail and dropped acknowledged
/// records.
struct Log {
    dir: tempfile::TempDir,
    /// LSN, key and payload of every record.
    records: Vec<(u64, Key, Vec<u8>)>,
}

fn key_of(lsn: u64) -> Key {
    Key::execution(1000 + u128::from(lsn))
}

impl Log {
    fn build(n: u64, burst: bool) -> Log {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = Wal::open(dir.path(), small_config()).expect("open");
        let mut records = Vec::new();
        for i in 1..=n {
            let p = payload(u128::from(i), i, 200);
            let lsn = wal.append(K, key_of(i), &p).expect("append");
            assert_eq!(lsn.get(), i);
            if !burst || i == n {
                wal.durable(lsn).expect("durable");
            }
            records.push((i, key_of(i), p));
        }
        wal.close().expect("close");
        let log = Log { dir, records };
        assert!(log.segments().len() >= 4, "{:?}", log.segments());
        log
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Segment files holding records, by base LSN (not the empty one the
    /// last open started).
    fn segments(&self) -> Vec<(u64, PathBuf)> {
        let mut segs: Vec<(u64, PathBuf)> = std::fs::read_dir(self.path())
            .expect("read dir")
            .filter_map(|e| {
                let e = e.ok()?;
                let base = format::parse_segment_name(e.file_name().to_str()?)?;
                Some((base, e.path()))
            })
            .filter(|(base, _)| *base <= self.records.len() as u64)
            .collect();
        segs.sort();
        segs
    }

    /// (first byte, end) of each batch of the segment at `base`.
    fn spans(&self, base: u64) -> Vec<(u64, u64)> {
        let path = self.path().join(format::segment_name(base));
        batch_spans(&std::fs::read(path).expect("read"), base)
    }

    /// LSNs of the segment at `base`: `base..next segment's base`.
    fn lsns_of(&self, base: u64) -> std::ops::Range<u64> {
        let segs = self.segments();
        let at = segs.iter().position(|(b, _)| *b == base).expect("segment");
        let end = segs
            .get(at + 1)
            .map_or(self.records.len() as u64 + 1, |s| s.0);
        base..end
    }
}

/// Every file of a directory with its bytes and modification time.
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            let meta = e.metadata().expect("metadata");
            let bytes = std::fs::read(e.path()).expect("read");
            (
                e.file_name().to_string_lossy().into_owned(),
                (bytes, meta.modified().expect("mtime")),
            )
        })
        .collect()
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at as usize] ^= 0x20;
    std::fs::write(path, bytes).expect("write");
}

fn cut(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .set_len(len)
        .expect("set_len");
}

fn skip() -> Config {
    Config {
        skip_damaged: true,
        ..small_config()
    }
}

/// What a damaged log must do: `check` and a strict open report the damage
/// at `path`:`offset` and change nothing; an open with `skip_damaged` drops
/// `lost`, keeps every other record, and names `keys` (all the lost
/// records' keys when `keys_complete`); later opens accept the loss.
fn assert_damage(
    log: &Log,
    path: &Path,
    offset: u64,
    lost: std::ops::Range<u64>,
    keys: &[Key],
    keys_complete: bool,
) {
    let before = snapshot(log.path());
    let checked = crate::check(log.path(), &small_config()).expect("check");
    let report = checked.report().clone();
    drop(checked);
    assert_eq!(snapshot(log.path()), before, "check changed nothing");
    assert!(report.torn_tail.is_none(), "{report:?}");
    let [found]: [Damage; 1] = report.damage.clone().try_into().expect("one damaged spot");
    assert_eq!((found.path.as_path(), found.offset), (path, offset));
    assert_eq!(found.lsns, lost);
    assert_eq!(found.keys, keys);
    assert_eq!(found.keys_complete, keys_complete);

    let err = Wal::open(log.path(), small_config()).expect_err("damage refuses the open");
    match &err {
        Error::Damaged {
            path: p, offset: o, ..
        } => assert_eq!((p.as_path(), *o), (path, offset)),
        other => panic!("expected Error::Damaged, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(&format!("offset {offset}")), "{message}");
    assert!(message.contains("unreadable"), "{message}");
    assert_eq!(
        snapshot(log.path()),
        before,
        "a refused open changed nothing"
    );

    let (wal, rec) = Wal::open(log.path(), skip()).expect("skip_damaged opens");
    assert_eq!(rec.report().damage.len(), 1);
    assert_eq!(rec.report().damage[0], found, "open reports what check did");
    let got = collect(&rec);
    let want: Vec<(Key, Vec<u8>)> = log
        .records
        .iter()
        .filter(|(lsn, _, _)| !lost.contains(lsn))
        .map(|(_, k, p)| (*k, p.clone()))
        .collect();
    let have: Vec<(Key, Vec<u8>)> = got
        .iter()
        .map(|(k, recs)| (*k, recs[0].payload.clone()))
        .collect();
    assert_eq!(have, want, "every other record is kept");
    drop(rec);
    let lsn = wal.append(K, Key::execution(1), b"after").expect("append");
    assert!(lsn.get() > log.records.len() as u64);
    wal.close().expect("close");

    // The loss was recorded: no option needed from now on.
    let (_wal, rec) = Wal::open(log.path(), small_config()).expect("accepted since");
    assert!(rec.report().damage.is_empty(), "{:?}", rec.report());
    assert_eq!(rec.report().live_records, want.len() as u64 + 1);
}

#[test]
fn a_flipped_byte_in_the_last_record_of_a_sealed_segment() {
    for burst in [false, true] {
        let log = Log::build(100, burst);
        let (base, path) = log.segments()[1].clone();
        let (start, _) = *log.spans(base).last().expect("batches");
        let lsn = log.lsns_of(base).end - 1;
        flip(&path, start + 40); // in the payload
        assert_damage(&log, &path, start, lsn..lsn + 1, &[key_of(lsn)], true);
    }
}

#[test]
fn a_flipped_byte_in_a_middle_record_of_the_last_segment() {
    for burst in [false, true] {
        let log = Log::build(100, burst);
        let (base, path) = log.segments().last().expect("segments").clone();
        let spans = log.spans(base);
        assert!(spans.len() >= 3, "valid records follow the damaged one");
        let (start, _) = spans[spans.len() / 2];
        let lsn = base + (spans.len() / 2) as u64;
        flip(&path, start + 50);
        assert_damage(&log, &path, start, lsn..lsn + 1, &[key_of(lsn)], true);
    }
}

#[test]
fn a_sealed_segment_cut_mid_record() {
    for burst in [false, true] {
        let log = Log::build(100, burst);
        let (base, path) = log.segments()[1].clone();
        let spans = log.spans(base);
        let (start, _) = spans[5];
        let lsn = base + 5;
        cut(&path, start + 100);
        // The cut record's header is still there; the records after it are gone.
        let lost = lsn..log.lsns_of(base).end;
        assert_damage(&log, &path, start, lost, &[key_of(lsn)], false);
    }
}

#[test]
fn a_sealed_segment_cut_to_nothing() {
    for burst in [false, true] {
        let log = Log::build(100, burst);
        let (base, path) = log.segments()[1].clone();
        let lost = log.lsns_of(base);
        cut(&path, 0);
        assert_damage(&log, &path, 0, lost, &[], false);
    }
}

#[test]
fn a_missing_middle_segment() {
    for burst in [false, true] {
        let log = Log::build(100, burst);
        let (base, path) = log.segments()[1].clone();
        let lost = log.lsns_of(base);
        std::fs::remove_file(&path).expect("remove");
        assert_damage(&log, &path, 0, lost, &[], false);
    }
}

#[test]
fn a_missing_last_segment_of_a_closed_log() {
    for burst in [false, true] {
        let log = Log::build(100, burst);
        let (base, path) = log.segments().last().expect("segments").clone();
        let lost = log.lsns_of(base);
        std::fs::remove_file(&path).expect("remove");
        assert_damage(&log, &path, 0, lost, &[], false);
    }
}

#[test]
fn a_torn_tail_is_cut_and_the_records_before_it_kept() {
    // What `kill -9` leaves: the WAL's files as the page cache has them,
    // copied while it is open; the last append was never waited for, and
    // its commit marker never made it (as if the machine had lost that page).
    let live = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(live.path(), small_config()).expect("open");
    let n = 60u64;
    for i in 1..=n {
        let lsn = wal
            .append(K, key_of(i), &payload(u128::from(i), i, 200))
            .expect("append");
        if i < n {
            wal.durable(lsn).expect("durable");
        }
    }
    let crashed = tempfile::tempdir().expect("tempdir");
    for e in std::fs::read_dir(live.path()).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), crashed.path().join(e.file_name())).expect("copy");
    }
    drop(wal);
    let mut segs: Vec<(u64, PathBuf)> = std::fs::read_dir(crashed.path())
        .expect("read dir")
        .filter_map(|e| {
            let e = e.ok()?;
            Some((
                format::parse_segment_name(e.file_name().to_str()?)?,
                e.path(),
            ))
        })
        .collect();
    segs.sort();
    let (base, path) = segs.last().expect("segments").clone();
    let (start, end) = *batch_spans(&std::fs::read(&path).expect("read"), base)
        .last()
        .expect("batches");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[(end - format::MARKER_LEN) as usize..end as usize].fill(0);
    std::fs::write(&path, bytes).expect("write");

    let before = snapshot(crashed.path());
    let checked = crate::check(crashed.path(), &small_config()).expect("check");
    let report = checked.report().clone();
    drop(checked);
    assert_eq!(snapshot(crashed.path()), before, "check changed nothing");
    assert!(
        report.damage.is_empty(),
        "a torn tail is not damage: {report:?}"
    );
    let tail = report.torn_tail.expect("a torn tail");
    assert_eq!((tail.path.as_path(), tail.offset), (path.as_path(), start));
    assert_eq!(tail.keys, vec![key_of(n)]);

    let (_wal, rec) = Wal::open(crashed.path(), small_config()).expect("a torn tail opens");
    let tail = rec.report().torn_tail.clone().expect("cut");
    assert_eq!((tail.path.as_path(), tail.offset), (path.as_path(), start));
    let lsns: Vec<u64> = collect(&rec)
        .iter()
        .flat_map(|(_, v)| v.iter().map(|r| r.lsn))
        .collect();
    assert_eq!(
        lsns,
        (1..n).collect::<Vec<_>>(),
        "everything before the tail"
    );
    assert_eq!(rec.report().next_lsn.get(), n);
}

#[test]
fn check_refuses_a_directory_in_use_and_reads_format_1() {
    let log = Log::build(100, false);
    let (wal, _) = Wal::open(log.path(), small_config()).expect("open");
    let err = crate::check(log.path(), &small_config()).expect_err("in use");
    assert!(err.to_string().contains("in use"), "{err}");
    wal.close().expect("close");

    // An earlier build's folder: format 1 headers, markers and seals, no
    // manifest. Open refuses it, naming the segment; check reads it (for an
    // export of what it holds).
    for (base, path) in log.segments() {
        let mut bytes = std::fs::read(&path).expect("read");
        to_format_1(&mut bytes, base);
        std::fs::write(&path, bytes).expect("write");
    }
    std::fs::remove_file(log.path().join(crate::manifest::MANIFEST)).expect("no manifest");
    let first = log.segments()[0].1.clone();
    let err = Wal::open(log.path(), small_config()).expect_err("format 1");
    assert!(
        matches!(&err, Error::UnsupportedVersion { path: p, found: 1, .. } if *p == first),
        "{err}"
    );
    let checked = crate::check(log.path(), &small_config()).expect("check reads format 1");
    assert_eq!(checked.report().format, format::VERSION_1);
    assert!(checked.report().damage.is_empty(), "{:?}", checked.report());
    assert_eq!(checked.report().live_records, 100);
}

/// Rewrites a segment as format 1 wrote it: version 1 in the header, and
/// marker and seal checksums without their tag.
fn to_format_1(bytes: &mut [u8], base: u64) {
    bytes[8..10].copy_from_slice(&format::VERSION_1.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[0..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    let seed = format::seed(base);
    let mut at = format::HEADER_LEN as usize;
    loop {
        match format::parse_frame(bytes, at, seed) {
            crate::format::Frame::Record { header, .. } => {
                at += format::frame_len(header.len as usize) as usize;
            }
            frame @ (crate::format::Frame::Marker(_) | crate::format::Frame::Seal { .. }) => {
                let crc = crc32c::crc32c_append(seed, &bytes[at + 8..at + 32]);
                bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
                if matches!(frame, crate::format::Frame::Seal { .. }) {
                    return;
                }
                at += format::MARKER_LEN as usize;
            }
            _ => return,
        }
    }
}

#[test]
fn a_missing_manifest_is_damage() {
    let log = Log::build(100, false);
    let manifest = log.path().join(crate::manifest::MANIFEST);
    std::fs::remove_file(&manifest).expect("remove");
    let err = Wal::open(log.path(), small_config()).expect_err("refused");
    assert!(
        matches!(&err, Error::Damaged { path, .. } if *path == manifest),
        "{err}"
    );
    assert!(err.to_string().contains("manifest is missing"), "{err}");
    let checked = crate::check(log.path(), &small_config()).expect("check");
    assert_eq!(checked.report().damage.len(), 1);
    drop(checked);
    let (wal, rec) = Wal::open(log.path(), skip()).expect("skipped");
    assert_eq!(rec.report().live_records, 100, "no record was lost");
    drop(rec);
    wal.close().expect("close");
    let (_wal, rec) = Wal::open(log.path(), small_config()).expect("a new manifest");
    assert!(rec.report().damage.is_empty());
}
