//! Corruption: flip bits and cut files at every offset of a small WAL.
//! Recovery must never panic or read out of bounds. Damage followed by
//! batches that were written after it was synced is reported as an error
//! naming the segment and the damaged batch's offset (or skipped, when
//! tolerated); damage at the tail is cut off as a torn write.

use super::*;
use crate::Error;
use crate::format::{self, Frame};

/// A closed WAL of `batches` single-record batches in one or more segments,
/// each append synced before the next so every marker claims the previous.
fn build(batches: u64, len: usize) -> (Arc<MemStorage>, Vec<(u64, Vec<u8>)>) {
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
    wal.close().expect("close");
    (storage, recs)
}

/// Offsets of each batch's first byte and the end of its marker.
fn batch_spans(bytes: &[u8], base: u64) -> Vec<(u64, u64)> {
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

fn only_segment(storage: &MemStorage) -> (String, Vec<u8>) {
    let name = storage
        .names()
        .into_iter()
        .find(|n| n.ends_with(".wal"))
        .expect("a segment");
    let bytes = storage.get(&name).expect("bytes");
    (name, bytes)
}

#[test]
fn every_bit_flip_is_reported_cut_or_harmless() {
    let (storage, recs) = build(6, 40);
    let (name, bytes) = only_segment(&storage);
    let spans = batch_spans(&bytes, 1);
    assert_eq!(spans.len(), 6);
    let end = spans.last().expect("spans").1 as usize;
    let all: Vec<u64> = recs.iter().map(|r| r.0).collect();
    let strict = small_config();
    let tolerant = Config {
        tolerate_corruption: true,
        ..small_config()
    };
    let (mut errors, mut cuts, mut harmless) = (0, 0, 0);
    for at in 0..end {
        for bit in [0u8, 5] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << bit;
            let s = MemStorage::new();
            s.put(&name, damaged.clone());
            let batch = spans
                .iter()
                .position(|(a, b)| (*a..*b).contains(&(at as u64)));
            match recovered_lsns(&s, &strict) {
                Err(Error::Corrupt {
                    segment, offset, ..
                }) => {
                    errors += 1;
                    assert_eq!(segment, name);
                    match batch {
                        Some(i) => {
                            assert_eq!(offset, spans[i].0, "flip at {at}");
                            assert!(i + 1 < spans.len(), "the last batch has no later evidence");
                        }
                        None => assert_eq!(offset, 0, "a header flip at {at} names offset 0"),
                    }
                    // Tolerated: everything but the damaged batch comes back.
                    let s = MemStorage::new();
                    s.put(&name, damaged);
                    let lsns = recovered_lsns(&s, &tolerant).expect("tolerated");
                    let mut want = all.clone();
                    if let Some(i) = batch {
                        want.remove(i);
                    }
                    assert_eq!(lsns, want, "tolerated flip at {at}");
                }
                Err(e) => panic!("flip at {at}: unexpected error {e}"),
                Ok(lsns) if lsns == all => harmless += 1,
                Ok(lsns) => {
                    cuts += 1;
                    // Only the last batch can be cut as a torn tail.
                    assert_eq!(batch, Some(spans.len() - 1), "flip at {at} cut {lsns:?}");
                    assert_eq!(lsns, all[..all.len() - 1]);
                }
            }
        }
    }
    assert!(
        errors > 0 && cuts > 0 && harmless > 0,
        "{errors} {cuts} {harmless}"
    );
}

#[test]
fn cutting_the_file_at_every_offset_keeps_exactly_the_whole_batches() {
    let (storage, recs) = build(5, 50);
    let (name, bytes) = only_segment(&storage);
    let spans = batch_spans(&bytes, 1);
    let all: Vec<u64> = recs.iter().map(|r| r.0).collect();
    for len in 0..bytes
        .len()
        .min(spans.last().expect("spans").1 as usize + 64)
    {
        let s = MemStorage::new();
        s.put(&name, bytes[..len].to_vec());
        let lsns =
            recovered_lsns(&s, &small_config()).unwrap_or_else(|e| panic!("cut at {len}: {e}"));
        let whole = spans.iter().filter(|(_, end)| *end as usize <= len).count();
        assert_eq!(lsns, all[..whole], "cut at {len}");
        // The repaired log recovers the same way a second time and accepts
        // appends at the next LSN.
        let (wal, rec) = Wal::open_on(s.clone(), small_config()).expect("second open");
        assert!(
            rec.report().torn_tail.is_none(),
            "repair is stable (cut at {len})"
        );
        let next = wal.append(K, Key::execution(9), b"after").expect("append");
        assert_eq!(next.get(), whole as u64 + 1);
    }
}

#[test]
fn damage_in_an_older_segment_is_corruption_not_a_torn_tail() {
    let (storage, recs) = build(60, 300);
    let mut names: Vec<String> = storage
        .names()
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "{names:?}");
    let first = &names[0];
    let mut bytes = storage.get(first).expect("bytes");
    let spans = batch_spans(&bytes, 1);
    let (last_start, _) = *spans.last().expect("spans");
    // Damage the last batch of the first segment: later segments' markers
    // claim it was durable, so it cannot be a torn write.
    bytes[last_start as usize + 40] ^= 0x10;
    storage.put(first, bytes.clone());
    match recovered_lsns(&storage, &small_config()) {
        Err(Error::Corrupt {
            segment, offset, ..
        }) => {
            assert_eq!(&segment, first);
            assert_eq!(offset, last_start);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let tolerant = Config {
        tolerate_corruption: true,
        ..small_config()
    };
    let (_wal, rec) = Wal::open_on(storage.clone(), tolerant).expect("tolerated");
    assert_eq!(rec.report().skipped.len(), 1);
    assert_eq!(rec.report().live_records, recs.len() as u64 - 1);
    // Cutting the first segment short is corruption too.
    storage.put(first, bytes[..last_start as usize].to_vec());
    assert!(matches!(
        recovered_lsns(&storage, &small_config()),
        Err(Error::Corrupt { .. })
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
                base_lsn: 1,
                capacity: 8192,
                created_ms: 0,
            };
            bytes[..64].copy_from_slice(&h.encode());
        }
        s.put(&format::segment_name(1), bytes);
        let _ = recovered_lsns(&s, &small_config());
    }
}
