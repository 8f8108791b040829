//! Corruption: flip bits and tear writes at every offset of a small WAL.
//! Recovery must never panic or read out of bounds. Damage to bytes that a
//! later commit marker or the manifest vouches for is reported as an error
//! naming the segment and the damaged batch's offset (or skipped, when the
//! operator says so); damage at the unvouched end is cut off as a torn
//! write.

use super::*;
use crate::Error;
use crate::format::{self, Frame};
use crate::manifest::MANIFEST;

/// `batches` single-record batches in one or more segments, each append
/// synced before the next so every marker vouches for the previous one.
/// `closed`: the WAL was closed (its manifest vouches for everything);
/// otherwise the process died after the last append (every written byte is
/// there, but nothing vouches for the last batch).
fn build(batches: u64, len: usize, closed: bool) -> (Arc<MemStorage>, Vec<(u64, Vec<u8>)>) {
    let storage = MemStorage::new();
    let (wal, _) = open(&storage, &small_config());
    let mut recs = Vec::new();
    for i in 0..batches {
        let p = payload(u128::from(i % 3), i, len);
        let lsn = wal
            .append(K, Key::execution(u128::from(i % 3)), &p)
            .expect("append");
        wal.durable(lsn).expect("durable");
        recs.push((lsn.get(), p));
    }
    if closed {
        wal.close().expect("close");
        (storage, recs)
    } else {
        let crashed = storage.crash(|_, _, hi| hi);
        drop(wal);
        (crashed, recs)
    }
}

/// Offsets of each batch's first byte and the end of its marker.
pub(crate) fn batch_spans(bytes: &[u8], base: u64) -> Vec<(u64, u64)> {
    let seed = format::seed(base);
    let mut at = format::HEADER_LEN as usize;
    let mut start = at;
    let mut spans = Vec::new();
    loop {
        match format::parse_frame(bytes, at, seed) {
            Frame::Record { header, .. } => at += format::frame_len(header.len as usize) as usize,
            Frame::Marker(_) => {
                at += format::MARKER_LEN as usize;
                spans.push((start as u64, at as u64));
                start = at;
            }
            _ => return spans,
        }
    }
}

fn recovered_lsns(storage: &Arc<MemStorage>, config: &Config) -> Result<Vec<u64>, Error> {
    let (wal, rec) = Wal::open_on(storage.clone(), config.clone())?;
    let mut lsns: Vec<u64> = collect(&rec)
        .into_iter()
        .flat_map(|(_, v)| v.into_iter().map(|r| r.lsn))
        .collect();
    lsns.sort_unstable();
    drop(wal);
    Ok(lsns)
}

fn first_segment(storage: &MemStorage) -> (String, Vec<u8>) {
    let name = format::segment_name(1);
    let bytes = storage.get(&name).expect("the first segment");
    (name, bytes)
}

/// A storage holding `storage`'s manifest and segment `name` as `bytes`.
fn with_segment(storage: &MemStorage, name: &str, bytes: Vec<u8>) -> Arc<MemStorage> {
    let s = MemStorage::new();
    s.put(name, bytes);
    s.put_small(MANIFEST, storage.get_small(MANIFEST).expect("a manifest"));
    s
}

fn flip_every_bit(closed: bool) {
    let (storage, recs) = build(6, 40, closed);
    let (name, bytes) = first_segment(&storage);
    let spans = batch_spans(&bytes, 1);
    assert_eq!(spans.len(), 6);
    let end = spans.last().expect("spans").1 as usize + format::MARKER_LEN as usize;
    let all: Vec<u64> = recs.iter().map(|r| r.0).collect();
    let strict = small_config();
    let skip = Config {
        skip_damaged: true,
        ..small_config()
    };
    let (mut errors, mut cuts, mut harmless) = (0, 0, 0);
    for at in 0..end {
        for bit in [0u8, 5] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << bit;
            let batch = spans
                .iter()
                .position(|(a, b)| (*a..*b).contains(&(at as u64)));
            match recovered_lsns(&with_segment(&storage, &name, damaged.clone()), &strict) {
                Err(Error::Damaged { path, offset, .. }) => {
                    errors += 1;
                    assert_eq!(path, std::path::PathBuf::from(&name));
                    match batch {
                        Some(i) => {
                            assert_eq!(offset, spans[i].0, "flip at {at}");
                            assert!(
                                closed || i + 1 < spans.len(),
                                "nothing vouches for the last batch after a crash"
                            );
                        }
                        None => assert_eq!(offset, 0, "a header flip at {at} names offset 0"),
                    }
                    // Skipped: everything but the damaged batch comes back.
                    let s = with_segment(&storage, &name, damaged);
                    let lsns = recovered_lsns(&s, &skip).expect("skipped");
                    let mut want = all.clone();
                    if let Some(i) = batch {
                        want.remove(i);
                    }
                    assert_eq!(lsns, want, "skipped flip at {at}");
                    // The loss is accepted from then on, without the option.
                    assert_eq!(recovered_lsns(&s, &strict).expect("accepted"), want);
                }
                Err(e) => panic!("flip at {at}: unexpected error {e}"),
                Ok(lsns) if lsns == all => harmless += 1,
                Ok(lsns) => {
                    cuts += 1;
                    // Only the last batch of a crashed log can be torn.
                    assert!(!closed, "flip at {at} cut a closed log: {lsns:?}");
                    assert_eq!(batch, Some(spans.len() - 1), "flip at {at} cut {lsns:?}");
                    assert_eq!(lsns, all[..all.len() - 1]);
                }
            }
        }
    }
    assert!(errors > 0 && harmless > 0, "{errors} {cuts} {harmless}");
    assert_eq!(cuts > 0, !closed, "{errors} {cuts} {harmless}");
}

#[test]
fn every_bit_flip_in_a_closed_log_is_reported_or_harmless() {
    flip_every_bit(true);
}

#[test]
fn every_bit_flip_after_a_crash_is_reported_cut_or_harmless() {
    flip_every_bit(false);
}

#[test]
fn a_write_torn_at_every_offset_keeps_exactly_the_whole_batches() {
    // A torn write leaves the file its preallocated size: what was not
    // written is zero (or a recycled file's old bytes).
    let (storage, recs) = build(5, 50, false);
    let (name, bytes) = first_segment(&storage);
    let spans = batch_spans(&bytes, 1);
    let all: Vec<u64> = recs.iter().map(|r| r.0).collect();
    for len in format::HEADER_LEN as usize..spans.last().expect("spans").1 as usize + 64 {
        let mut torn = bytes.clone();
        torn[len..].fill(0);
        // The batches the zeros left as they were (a frame's last bytes may
        // be zero already).
        let whole = spans
            .iter()
            .take_while(|(a, b)| torn[*a as usize..*b as usize] == bytes[*a as usize..*b as usize])
            .count();
        let s = with_segment(&storage, &name, torn);
        // Only the last batch is torn if anything is: the ones before it
        // are vouched for by the markers after them.
        let lsns = match recovered_lsns(&s, &small_config()) {
            Ok(lsns) => lsns,
            Err(e) => {
                assert!(whole + 1 < spans.len(), "torn at {len}: {e}");
                continue;
            }
        };
        assert_eq!(lsns, all[..whole], "torn at {len}");
        // The repaired log recovers the same way a second time and accepts
        // appends at the next LSN.
        let (wal, rec) = Wal::open_on(s.clone(), small_config()).expect("second open");
        assert!(
            rec.report().torn_tail.is_none(),
            "repair is stable (torn at {len})"
        );
        let next = wal.append(K, Key::execution(9), b"after").expect("append");
        assert_eq!(next.get(), whole as u64 + 1);
    }
}

#[test]
fn a_segment_cut_short_is_damage_whatever_vouches_for_it() {
    let (storage, _) = build(5, 50, false);
    let (name, bytes) = first_segment(&storage);
    let spans = batch_spans(&bytes, 1);
    let (last_start, last_end) = *spans.last().expect("spans");
    for len in [last_start + 7, last_end, last_end + 100, 4096] {
        let s = with_segment(&storage, &name, bytes[..len as usize].to_vec());
        match recovered_lsns(&s, &small_config()) {
            Err(Error::Damaged { offset, what, .. }) => {
                let at = if len >= last_end {
                    last_end
                } else {
                    last_start
                };
                assert_eq!(offset, at, "cut at {len}: {what}");
                assert!(what.contains("cut short"), "{what}");
            }
            other => panic!("cut at {len}: {other:?}"),
        }
    }
}

#[test]
fn damage_in_an_older_segment_is_damage_not_a_torn_tail() {
    let (storage, recs) = build(60, 300, false);
    let mut names: Vec<String> = storage
        .names()
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "{names:?}");
    let first = &names[0];
    let bytes = storage.get(first).expect("bytes");
    let spans = batch_spans(&bytes, 1);
    let (last_start, _) = *spans.last().expect("spans");
    // Damage the last batch of the first segment: later segments' markers
    // claim it was durable, so it cannot be a torn write.
    let mut flipped = bytes.clone();
    flipped[last_start as usize + 40] ^= 0x10;
    let damaged = storage.crash(|_, _, hi| hi);
    damaged.put(first, flipped);
    match recovered_lsns(&damaged, &small_config()) {
        Err(Error::Damaged { path, offset, .. }) => {
            assert_eq!(path, std::path::PathBuf::from(first));
            assert_eq!(offset, last_start);
        }
        other => panic!("expected damage, got {other:?}"),
    }
    let skip = Config {
        skip_damaged: true,
        ..small_config()
    };
    let (_wal, rec) = Wal::open_on(damaged.clone(), skip).expect("skipped");
    assert_eq!(rec.report().damage.len(), 1);
    assert_eq!(rec.report().live_records, recs.len() as u64 - 1);
    // Cutting the first segment short is damage too.
    let cut = storage.crash(|_, _, hi| hi);
    cut.put(first, bytes[..last_start as usize].to_vec());
    assert!(matches!(
        recovered_lsns(&cut, &small_config()),
        Err(Error::Damaged { .. })
    ));
}

#[test]
fn garbage_files_never_panic() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..200 {
        let s = MemStorage::new();
        let len = (round * 37) % 9000;
        let mut bytes = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(seed as u8);
        }
        if round % 2 == 0 && len >= 64 {
            // A valid header followed by garbage.
            let h = format::SegmentHeader {
                version: format::VERSION,
                base_lsn: 1,
                capacity: 8192,
                created_ms: 0,
                segment_bytes: 8192,
            };
            bytes[..64].copy_from_slice(&h.encode());
        }
        if round % 3 == 0 {
            s.put_small(MANIFEST, crate::manifest::Manifest::default().encode());
        } else if round % 3 == 1 {
            s.put_small(MANIFEST, bytes.iter().take(100).copied().collect());
        }
        s.put(&format::segment_name(1), bytes);
        let _ = recovered_lsns(&s, &small_config());
        let skip = Config {
            skip_damaged: true,
            ..small_config()
        };
        let _ = recovered_lsns(&s, &skip);
    }
}
