//! Terminal records larger than `max_record_bytes` span frames: written in
//! one batch, read back, recovered and copied forward whole.

use super::*;
use crate::Error;

/// The records recovery hands back for `key`.
fn recovered(rec: &Recovered, key: Key) -> Vec<Rec> {
    collect(rec)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

#[test]
fn the_largest_terminal_record_is_what_one_segment_holds() {
    let config = small_config();
    // 8 KiB segments less header, commit marker and seal: 8064 bytes. 1 KiB
    // parts framed in 1056 bytes: seven, and a last one of the 672 bytes
    // left less its frame header.
    assert_eq!(config.max_terminal_bytes(), 7 * 1024 + 640);
    let storage = MemStorage::new();
    let (wal, _) = open(&storage, &config);
    let max = config.max_terminal_bytes();
    let lsn = wal
        .append_terminal(DONE, Key::execution(1), &payload(1, 0, max))
        .expect("the largest fits");
    wal.durable(lsn).expect("durable");
    match wal.append_terminal(DONE, Key::execution(2), &payload(2, 0, max + 1)) {
        Err(Error::RecordTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("{other:?}"),
    }
    // Records that are not terminal do not span.
    match wal.append(K, Key::execution(3), &payload(3, 0, 1025)) {
        Err(Error::RecordTooLarge { max: 1024, .. }) => {}
        other => panic!("{other:?}"),
    }
    let t = wal
        .read_terminal(Key::execution(1))
        .expect("read")
        .expect("kept");
    assert_eq!(t.payload.as_bytes(), payload(1, 0, max));
    wal.close().expect("close");
    let (_wal, rec) = open(&storage, &config);
    let got = recovered(&rec, Key::execution(1));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, payload(1, 0, max));
}

#[test]
fn a_terminal_record_spanning_frames_is_read_recovered_and_copied_whole() {
    let storage = MemStorage::new();
    let config = small_config();
    let (wal, _) = open(&storage, &config);
    let big = Key::execution(7);
    // Its running records, which the terminal record kills.
    for step in 0..3 {
        wal.append(K, big, &payload(7, step, 500)).expect("append");
    }
    wal.append(K, Key::execution(8), b"other").expect("append");
    // Four frames: three of 1024 bytes and one of 428.
    let whole = payload(7, 4, 3500);
    let lsn = wal.append_terminal(DONE, big, &whole).expect("append");
    let after = wal.append(K, Key::execution(8), b"after").expect("append");
    // Each frame takes an LSN; the record's is its last frame's.
    assert_eq!(after.get(), lsn.get() + 1);
    wal.durable(after).expect("durable");
    let read = |wal: &Wal| {
        let t = wal.read_terminal(big).expect("read").expect("kept");
        assert_eq!(t.kind, DONE);
        assert_eq!(t.payload.as_bytes(), whole);
        t.lsn
    };
    assert_eq!(read(&wal), lsn);
    wal.close().expect("close");

    let (wal, rec) = open(&storage, &config);
    let got = recovered(&rec, big);
    assert_eq!(got.len(), 1, "the terminal record alone: {got:?}");
    assert_eq!(
        (got[0].lsn, got[0].terminal, got[0].copy),
        (lsn.get(), true, false)
    );
    assert_eq!(got[0].payload, whole);
    assert_eq!(recovered(&rec, Key::execution(8)).len(), 2);
    drop(rec);
    assert_eq!(read(&wal), lsn);

    // Other executions fill segments; once the first one holds little
    // that lives, the span is copied forward, joined and split again.
    wal.append_terminal(DONE, Key::execution(8), b"done")
        .expect("append");
    for id in 100..140u128 {
        let p = payload(id, 0, 900);
        wal.append(K, Key::execution(id), &p).expect("append");
        wal.append_terminal(DONE, Key::execution(id), b"x")
            .expect("append");
    }
    settle(&wal);
    let copied = read(&wal);
    assert!(copied > lsn, "copied forward: {copied:?} after {lsn:?}");
    wal.close().expect("close");
    let (wal, rec) = open(&storage, &config);
    let got = recovered(&rec, big);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].lsn, got[0].copy), (copied.get(), true));
    assert_eq!(got[0].payload, whole);
    drop(rec);
    assert_eq!(read(&wal), copied);
}

#[test]
fn a_damaged_part_of_a_spanning_terminal_record_is_reported_not_returned() {
    let (storage, wal, name) = one_terminal_record(3000);
    // A byte of the second frame's payload.
    let second = (crate::format::HEADER_LEN
        + crate::format::frame_len(1024)
        + crate::format::FRAME_HEADER_LEN) as usize;
    storage.flip_byte(&name, second + 10);
    match wal.read_terminal(Key::execution(1)) {
        Err(Error::Damaged { what, .. }) => assert!(what.contains("no longer verifies"), "{what}"),
        other => panic!("{other:?}"),
    }
}

/// Rewrites the version of `storage`'s segment headers and manifest to 2,
/// with their checksums: the folder as a build of format 2 left it.
fn as_format_2(storage: &MemStorage) {
    for name in storage.names().into_iter().filter(|n| n.ends_with(".wal")) {
        let mut b = storage.get(&name).expect("segment");
        b[8..10].copy_from_slice(&2u16.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        storage.put(&name, b);
    }
    let name = crate::manifest::MANIFEST;
    let mut m = storage.get_small(name).expect("manifest");
    m[8..10].copy_from_slice(&2u16.to_le_bytes());
    let body = m.len() - 4;
    let crc = crc32c::crc32c(&m[..body]);
    m[body..].copy_from_slice(&crc.to_le_bytes());
    storage.put_small(name, m);
}

fn version_of(bytes: &[u8]) -> u16 {
    u16::from_le_bytes([bytes[8], bytes[9]])
}

#[test]
fn a_format_2_folder_is_read_and_carried_on_in_format_3() {
    let storage = MemStorage::new();
    let config = small_config();
    let (wal, _) = open(&storage, &config);
    wal.append(K, Key::execution(1), b"running")
        .expect("append");
    let lsn = wal
        .append_terminal(DONE, Key::execution(2), b"ended")
        .expect("append");
    wal.durable(lsn).expect("durable");
    wal.close().expect("close");
    let (wal, rec) = open(&storage, &config);
    let before = collect(&rec);
    drop(rec);
    wal.close().expect("close");
    as_format_2(&storage);
    let old: Vec<String> = storage.names();
    assert!(
        old.iter()
            .filter(|n| n.ends_with(".wal"))
            .all(|n| version_of(&storage.get(n).expect("segment")) == 2)
    );

    let (wal, rec) = open(&storage, &config);
    assert_eq!(collect(&rec), before);
    drop(rec);
    // Carried on: a span, in the segment this open started.
    let whole = payload(3, 0, 2500);
    let lsn = wal
        .append_terminal(DONE, Key::execution(3), &whole)
        .expect("append");
    wal.durable(lsn).expect("durable");
    wal.close().expect("close");
    let manifest = storage
        .get_small(crate::manifest::MANIFEST)
        .expect("manifest");
    assert_eq!(version_of(&manifest), 3);
    let (_wal, rec) = open(&storage, &config);
    let after = collect(&rec);
    assert_eq!(after.len(), 3);
    assert_eq!(recovered(&rec, Key::execution(3))[0].payload, whole);
    assert_eq!(
        recovered(&rec, Key::execution(2))[0].payload,
        b"ended".to_vec()
    );
}
