//! Truncation per execution: dead segments go (recycled or deleted),
//! terminal records in the retention window are copied forward, live
//! executions pin their segments, and log kinds have their own retention.

use std::time::Duration;

use super::*;
use crate::Lsn;

fn segment_files(storage: &MemStorage) -> usize {
    storage
        .names()
        .iter()
        .filter(|n| n.ends_with(".wal"))
        .count()
}

/// `n` executions of 5 records each (4 + a terminal), interleaved 8 at a time.
fn run_executions(wal: &Wal, n: u128, len: usize) -> Lsn {
    run_range(wal, 0..n, len)
}

/// Executions `ids`, as [`run_executions`] runs them.
fn run_range(wal: &Wal, ids: std::ops::Range<u128>, len: usize) -> Lsn {
    let mut last = Lsn::ZERO;
    let all: Vec<u128> = ids.collect();
    for chunk in all.chunks(8) {
        for step in 0..5u64 {
            for &id in chunk {
                let p = payload(id, step, len);
                last = if step == 4 {
                    wal.append_terminal(DONE, Key::execution(id), &p)
                } else {
                    wal.append(K, Key::execution(id), &p)
                }
                .expect("append");
            }
        }
    }
    last
}

#[test]
fn finished_executions_free_their_segments_and_keep_their_terminal_record() {
    let storage = MemStorage::new();
    let config = small_config(); // terminal retention: forever
    let (wal, _) = open(&storage, &config);
    let last = run_executions(&wal, 300, 100);
    wal.durable(last).expect("durable");
    // 1500 records of 176 framed bytes would fill 32 segments of 8 KiB.
    let before = (last.get() * 176).div_ceil(8192 - 64);
    assert!(before >= 32, "{before}");
    // Copies are appended, then their old segments go once they are durable.
    for _ in 0..3 {
        wal.truncate_now().expect("truncate");
        wal.durable(wal.stats().written_lsn).expect("durable");
    }
    wal.truncate_now().expect("truncate");
    let after = segment_files(&storage);
    // 300 terminal records of 100 bytes (144 bytes framed, plus markers)
    // fit in about 7 segments of 8 KiB.
    assert!(after <= 10, "{before} segments before, {after} after");
    assert!(wal.stats().spares >= 1, "a freed file is kept as a spare");
    wal.close().expect("close");

    let (_wal, rec) = open(&storage, &config);
    let got = collect(&rec);
    assert_eq!(got.len(), 300);
    for (key, recs) in got {
        assert_eq!(recs.len(), 1, "{key:?}");
        assert!(recs[0].terminal);
        assert_eq!(recs[0].payload, payload(key.id(), 4, 100));
    }
}

#[test]
fn forgotten_terminal_records_are_dropped_before_their_retention_ends() {
    let storage = MemStorage::new();
    let config = small_config(); // terminal retention: forever
    let (wal, _) = open(&storage, &config);
    let last = run_executions(&wal, 300, 100);
    wal.durable(last).expect("durable");
    let before = segment_files(&storage);
    // The engine keeps none of them any more: their ends need not stay,
    // although the retention would keep them for ever.
    for id in 0..300u128 {
        wal.forget(Key::execution(id));
    }
    // A forgotten end goes once the segments holding what it killed are
    // gone; one still pinned by them is copied forward, forgotten still.
    // Later appends (ends nobody keeps either) seal the segments the
    // copies went to.
    let mut passes = 0;
    while wal.stats().live_keys > 20 {
        passes += 1;
        assert!(passes <= 50, "still {} keys", wal.stats().live_keys);
        for n in 0..20u64 {
            let id = 1_000_000 + u128::from(passes * 20 + n);
            let filler = Key::execution(id);
            wal.append_terminal(DONE, filler, &payload(id, n, 100))
                .expect("append");
            wal.forget(filler);
        }
        settle(&wal);
    }
    settle(&wal);
    let after = segment_files(&storage);
    assert!(
        after < before / 2,
        "{before} segments before, {after} after"
    );
    wal.close().expect("close");

    let (_wal, rec) = open(&storage, &config);
    let got = collect(&rec);
    assert!(
        got.iter().all(|(key, _)| key.id() >= 300),
        "forgotten ends came back: {:?}",
        got.iter().map(|(k, _)| k.id()).collect::<Vec<_>>()
    );
}

#[test]
fn expired_terminal_records_are_dropped_entirely() {
    let storage = MemStorage::new();
    let config = Config {
        terminal_retention: Some(Duration::ZERO),
        ..small_config()
    };
    let (wal, _) = open(&storage, &config);
    let last = run_executions(&wal, 300, 100);
    wal.durable(last).expect("durable");
    wal.truncate_now().expect("truncate");
    // Only the active segment is left (plus the spare); only keys whose
    // terminal record sits in it are still known.
    assert_eq!(segment_files(&storage), 1, "{:?}", storage.names());
    assert!(wal.stats().live_keys < 50, "{}", wal.stats().live_keys);
    wal.close().expect("close");
    let (_wal, rec) = open(&storage, &config);
    assert!(rec.is_empty());
}

#[test]
fn a_running_execution_pins_its_segment_and_survives_truncation() {
    let storage = MemStorage::new();
    let config = Config {
        terminal_retention: Some(Duration::ZERO),
        ..small_config()
    };
    let (wal, _) = open(&storage, &config);
    let running = Key::execution(u128::MAX);
    wal.append(K, running, b"started").expect("append");
    run_executions(&wal, 300, 100);
    wal.append(K, running, b"still going").expect("append");
    wal.durable(wal.stats().written_lsn).expect("durable");
    settle(&wal);
    // The first segment (holding "started") and the active one remain, and
    // the copies of the terminal records of the executions that had records
    // in the first segment: they keep those records dead.
    let names = storage.names();
    assert!(names.contains(&crate::format::segment_name(1)), "{names:?}");
    assert!(segment_files(&storage) <= 4, "{names:?}");
    wal.close().expect("close");
    let (_wal, rec) = open(&storage, &config);
    let got = collect(&rec);
    assert_eq!(got.len(), 1);
    let p: Vec<_> = got[0].1.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(p, vec![b"started".to_vec(), b"still going".to_vec()]);
}

fn log_run(log_retention: Duration) -> (Arc<MemStorage>, Config, usize) {
    let storage = MemStorage::new();
    let log = Kind::new(9);
    let config = Config {
        log_kinds: vec![log],
        log_retention,
        ..small_config()
    };
    let (wal, _) = open(&storage, &config);
    let running = Key::execution(1);
    wal.append(K, running, b"state").expect("append");
    for i in 0..200 {
        wal.append(log, running, &payload(1, i, 200))
            .expect("append");
    }
    wal.append(K, running, b"state 2").expect("append");
    settle(&wal);
    let segments = segment_files(&storage);
    wal.close().expect("close");
    (storage, config, segments)
}

#[test]
fn log_records_expire_by_their_own_retention() {
    // 200 log records of 200 bytes fill about 6 segments of 8 KiB.
    let (_, _, kept) = log_run(Duration::from_secs(3600));
    assert!(kept >= 6, "logs within their retention stay: {kept}");
    let (storage, config, after) = log_run(Duration::ZERO);
    // Segments holding only expired logs go, though the execution runs on:
    // left are the first (with "state") and the last (with "state 2").
    assert!(after <= 2, "{after}");
    let (_wal, rec) = open(&storage, &config);
    let got = collect(&rec);
    let kinds: Vec<_> = got[0].1.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        vec![K.get(), K.get()],
        "expired logs are not handed back"
    );
}

#[test]
fn truncation_never_deletes_what_an_unsynced_terminal_killed() {
    let storage = MemStorage::new();
    let config = Config {
        sync: SyncMode::Interval(Duration::from_secs(3600)),
        terminal_retention: Some(Duration::ZERO),
        ..small_config()
    };
    let (wal, _) = open(&storage, &config);
    run_executions(&wal, 100, 100);
    let before = segment_files(&storage);
    wal.truncate_now().expect("truncate");
    assert_eq!(
        segment_files(&storage),
        before,
        "nothing synced, nothing dropped"
    );
    wal.flush();
    for _ in 0..200 {
        if wal.stats().synced_lsn == wal.stats().written_lsn {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = wal.stats();
    assert_eq!(stats.synced_lsn, stats.written_lsn, "{stats:?}");
    wal.truncate_now().expect("truncate");
    assert!(
        segment_files(&storage) < before,
        "{before} {:?}",
        storage.names()
    );
}

#[test]
fn the_background_truncator_reclaims_without_being_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        truncate_interval: Duration::from_millis(20),
        terminal_retention: Some(Duration::ZERO),
        spare_segments: 2,
        ..small_config()
    };
    let (wal, _) = Wal::open(dir.path(), config).expect("open");
    let last = run_executions(&wal, 300, 100);
    wal.durable(last).expect("durable");
    let count = || {
        std::fs::read_dir(dir.path())
            .expect("read dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".wal"))
            })
            .count()
    };
    let mut n = count();
    for _ in 0..200 {
        if n <= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        n = count();
    }
    assert!(n <= 2, "{n} segment files left");
    assert_eq!(wal.stats().spares, 2, "spares are kept ready");
}

#[test]
fn segments_truncation_removed_are_no_damage_and_one_a_crash_left_is_removed_unread() {
    let storage = MemStorage::new();
    let config = Config {
        terminal_retention: Some(Duration::ZERO),
        ..small_config()
    };
    let (wal, _) = open(&storage, &config);
    let running = Key::execution(u128::MAX);
    wal.append(K, running, b"started").expect("append");
    run_executions(&wal, 300, 100);
    wal.append(K, running, b"still going").expect("append");
    wal.durable(wal.stats().written_lsn).expect("durable");
    // The truncator runs meanwhile: a file listed may be gone when read.
    let before: Vec<(String, Vec<u8>)> = storage
        .names()
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .filter_map(|n| storage.get(&n).map(|bytes| (n, bytes)))
        .collect();
    settle(&wal);
    wal.close().expect("close");
    let names = storage.names();
    let (gone, bytes) = before
        .iter()
        .find(|(n, _)| !names.contains(n))
        .expect("truncation removed a segment");
    // The segments left have gaps between them: the manifest says why.
    let (wal, rec) = open(&storage, &config);
    assert!(rec.report().damage.is_empty(), "{:?}", rec.report());
    assert_eq!(collect(&rec).len(), 1);
    drop(rec);
    wal.close().expect("close");
    // A crash between writing the manifest and removing the file leaves it:
    // it must not be read (the finished executions in it have no terminal
    // record left to keep them dead), and open removes it.
    storage.put(gone, bytes.clone());
    let (_wal, rec) = open(&storage, &config);
    assert_eq!(rec.report().removing, 1);
    assert!(rec.report().damage.is_empty(), "{:?}", rec.report());
    let got = collect(&rec);
    assert_eq!(got.len(), 1, "only the running execution is live");
    assert_eq!(got[0].0, running);
    assert!(!storage.names().contains(gone), "removed");
}

#[test]
fn a_terminal_record_is_read_back_from_its_segment_after_copies_and_a_reopen() {
    let storage = MemStorage::new();
    let config = small_config();
    let (wal, _) = open(&storage, &config);
    let last = run_executions(&wal, 120, 100);
    wal.durable(last).expect("durable");
    // Running: no terminal record yet.
    wal.append(K, Key::execution(999), b"running")
        .expect("append");
    assert_eq!(wal.read_terminal(Key::execution(999)).expect("read"), None);
    assert_eq!(wal.read_terminal(Key::new(7, 1)).expect("read"), None);
    let check = |wal: &Wal| {
        for id in 0..120u128 {
            let t = wal
                .read_terminal(Key::execution(id))
                .expect("read")
                .unwrap_or_else(|| panic!("execution {id} has no terminal record"));
            assert_eq!(t.kind, DONE);
            assert_eq!(t.payload.as_bytes(), payload(id, 4, 100), "execution {id}");
        }
    };
    check(&wal);
    // Copied forward into later segments: read from where they are now.
    settle(&wal);
    check(&wal);
    // A later terminal record of the same key replaces the first.
    let lsn = wal
        .append_terminal(DONE, Key::execution(5), b"again")
        .expect("append");
    let t = wal
        .read_terminal(Key::execution(5))
        .expect("read")
        .expect("kept");
    assert_eq!((t.payload.as_bytes(), t.lsn), (&b"again"[..], lsn));
    wal.close().expect("close");
    let (wal, rec) = open(&storage, &config);
    drop(rec);
    assert_eq!(
        wal.read_terminal(Key::execution(5))
            .expect("read")
            .expect("kept")
            .payload
            .as_bytes(),
        b"again"
    );
    assert_eq!(
        wal.read_terminal(Key::execution(6))
            .expect("read")
            .expect("kept")
            .payload
            .as_bytes(),
        payload(6, 4, 100)
    );
}

#[test]
fn a_terminal_record_whose_bytes_went_bad_is_reported_not_returned() {
    let (storage, wal, name) = one_terminal_record(200);
    // The payload's last byte: past the segment header and frame header.
    let header = (crate::format::HEADER_LEN + crate::format::FRAME_HEADER_LEN) as usize;
    storage.flip_byte(&name, header + 199);
    match wal.read_terminal(Key::execution(1)) {
        Err(crate::Error::Damaged { what, .. }) => assert!(what.contains("no longer verifies")),
        other => panic!("{other:?}"),
    }
}

/// Terminal records kept by `wal`, of executions `0..n`.
fn kept(wal: &Wal, n: u128) -> Vec<u128> {
    (0..n)
        .filter(|id| {
            wal.read_terminal(Key::execution(*id))
                .expect("read")
                .is_some()
        })
        .collect()
}

/// 400 executions run to their end under `config`'s budgets, in four
/// groups of 100 that end in four different seconds (the budgets order
/// terminal records by append second), and settled: the storage, the WAL,
/// and the executions whose terminal records are kept.
fn run_under_budget(config: &Config) -> (Arc<MemStorage>, Wal, Vec<u128>) {
    let storage = MemStorage::new();
    let (wal, _) = open(&storage, config);
    let mut last = Lsn::ZERO;
    for group in 0..4u128 {
        if group > 0 {
            std::thread::sleep(Duration::from_millis(1100));
        }
        last = run_range(&wal, group * 100..(group + 1) * 100, 100);
        // Copies forward land among the next group's records.
        wal.truncate_now().expect("truncate");
    }
    wal.durable(last).expect("durable");
    settle(&wal);
    let left = kept(&wal, 400);
    (storage, wal, left)
}

#[test]
fn past_the_count_budget_the_oldest_terminal_records_go_first() {
    let config = Config {
        terminal_max_count: Some(100),
        ..small_config()
    };
    let (storage, wal, left) = run_under_budget(&config);
    // Exactly the newest 100, although copies forward put older terminal
    // records into newer segments.
    assert_eq!(left, (300..400).collect::<Vec<_>>());
    // The same after a restart: recovery applies the budget too.
    wal.close().expect("close");
    let (wal, rec) = open(&storage, &config);
    assert_eq!(collect(&rec).len(), left.len());
    drop(rec);
    assert_eq!(kept(&wal, 400), left);
    // A tighter budget on the next open: recovery cuts the oldest.
    wal.close().expect("close");
    let tighter = Config {
        terminal_max_count: Some(30),
        ..config
    };
    let (wal, rec) = open(&storage, &tighter);
    assert_eq!(collect(&rec).len(), 30);
    drop(rec);
    let left = kept(&wal, 400);
    assert_eq!(left.len(), 30);
    assert!(left.iter().all(|id| *id >= 300), "{left:?}");
}

#[test]
fn past_the_byte_budget_the_oldest_terminal_records_go_and_their_segments_with_them() {
    // 144 framed bytes per terminal record: 69 of them fit.
    let config = Config {
        terminal_max_bytes: Some(10_000),
        ..small_config()
    };
    let (storage, _wal, left) = run_under_budget(&config);
    assert_eq!(left.len(), 69, "{left:?}");
    // All of the newest second's: which of them, in segment order.
    assert!(left.iter().all(|id| *id >= 300), "{left:?}");
    // 400 terminal records would need about 8 segments once compacted;
    // the budget leaves two or three, the active one and the spare.
    let files = segment_files(&storage);
    assert!(files <= 5, "{files} segment files");
}

#[test]
fn a_finished_key_takes_72_bytes_of_the_index() {
    // Its key and its terminal record's place, inline: a million finished
    // executions kept on disk cost the index tens of megabytes, not
    // hundreds (a boxed entry took 120 bytes and an allocation).
    assert_eq!(std::mem::size_of::<(Key, crate::writer::KeyLive)>(), 72);
}
