use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use super::*;
use crate::{Batch, Error, Lsn};

#[test]
fn records_come_back_per_key_in_order_and_lsns_continue() {
    let storage = MemStorage::new();
    let config = small_config();
    let (wal, rec) = open(&storage, &config);
    assert!(rec.is_empty());
    let a = Key::execution(1);
    let b = Key::execution(2);
    let l1 = wal.append(K, a, b"a1").expect("append");
    let l2 = wal.append(K, b, b"b1").expect("append");
    let l3 = wal.append(K, a, b"a2").expect("append");
    assert_eq!((l1.get(), l2.get(), l3.get()), (1, 2, 3));
    wal.close().expect("close");

    let (wal, rec) = open(&storage, &config);
    let got = collect(&rec);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, a);
    let a_payloads: Vec<_> = got[0]
        .1
        .iter()
        .map(|r| (r.lsn, r.payload.clone()))
        .collect();
    assert_eq!(a_payloads, vec![(1, b"a1".to_vec()), (3, b"a2".to_vec())]);
    assert_eq!(got[1].1[0].payload, b"b1");
    assert_eq!(rec.report().next_lsn, Lsn::new(4));
    assert!(
        rec.report().torn_tail.is_none(),
        "clean close leaves no torn tail"
    );
    assert_eq!(wal.append(K, b, b"b2").expect("append").get(), 4);
}

#[test]
fn a_terminal_record_replaces_the_earlier_ones() {
    let storage = MemStorage::new();
    let config = small_config();
    let (wal, _) = open(&storage, &config);
    let a = Key::execution(7);
    wal.append(K, a, b"created").expect("append");
    wal.append(K, a, b"running").expect("append");
    let t = wal.append_terminal(DONE, a, b"success").expect("append");
    let other = Key::new(3, 7); // same id, other key space: unaffected
    wal.append(K, other, b"flow").expect("append");
    wal.close().expect("close");
    let (_wal, rec) = open(&storage, &config);
    let got = collect(&rec);
    let a_recs = &got.iter().find(|(k, _)| *k == a).expect("a").1;
    assert_eq!(a_recs.len(), 1);
    assert_eq!(a_recs[0].lsn, t.get());
    assert!(a_recs[0].terminal);
    assert_eq!(a_recs[0].kind, DONE.get());
    assert_eq!(a_recs[0].payload, b"success");
    assert_eq!(
        got.iter()
            .find(|(k, _)| *k == other)
            .expect("other")
            .1
            .len(),
        1
    );
}

#[test]
fn records_after_a_terminal_reopen_the_key() {
    let storage = MemStorage::new();
    let config = small_config();
    let (wal, _) = open(&storage, &config);
    let a = Key::execution(9);
    wal.append(K, a, b"x").expect("append");
    wal.append_terminal(DONE, a, b"failed").expect("append");
    wal.append(K, a, b"restarted").expect("append");
    wal.close().expect("close");
    let (_wal, rec) = open(&storage, &config);
    let got = collect(&rec);
    let p: Vec<_> = got[0].1.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(p, vec![b"failed".to_vec(), b"restarted".to_vec()]);
}

#[test]
fn appends_roll_over_many_segments_and_all_come_back() {
    let storage = MemStorage::new();
    let config = small_config();
    let (wal, _) = open(&storage, &config);
    let mut expected = Vec::new();
    for i in 0..400u64 {
        let key = Key::execution(u128::from(i % 13));
        let p = payload(key.id(), i, (i as usize * 37) % 300);
        let lsn = wal.append(K, key, &p).expect("append");
        expected.push((key, lsn.get(), p));
    }
    let segments = storage
        .names()
        .iter()
        .filter(|n| n.ends_with(".wal"))
        .count();
    assert!(segments > 5, "8 KiB segments must roll: {segments}");
    wal.close().expect("close");
    let (_wal, rec) = open(&storage, &config);
    let got = collect(&rec);
    assert_eq!(rec.report().live_records, 400);
    for (key, recs) in got {
        let want: Vec<_> = expected
            .iter()
            .filter(|(k, _, _)| *k == key)
            .map(|(_, l, p)| (*l, p.clone()))
            .collect();
        let have: Vec<_> = recs.iter().map(|r| (r.lsn, r.payload.clone())).collect();
        assert_eq!(have, want);
    }
}

#[test]
fn a_batch_gets_consecutive_lsns_and_limits_are_errors() {
    let storage = MemStorage::new();
    let config = small_config();
    let (wal, _) = open(&storage, &config);
    let mut batch = Batch::new();
    batch
        .push(K, Key::execution(1), b"one")
        .push(K, Key::execution(2), b"two")
        .push_terminal(DONE, Key::execution(1), b"end");
    assert_eq!(wal.append_batch(&batch).expect("batch").get(), 3);
    let big = vec![0u8; 1025];
    assert!(matches!(
        wal.append(K, Key::execution(1), &big),
        Err(Error::RecordTooLarge {
            len: 1025,
            max: 1024
        })
    ));
    assert!(matches!(
        wal.append(Kind::new(0xFF01), Key::execution(1), b""),
        Err(Error::ReservedKind(0xFF01))
    ));
    assert!(matches!(
        wal.append_batch(&Batch::new()),
        Err(Error::EmptyBatch)
    ));
    let mut huge = Batch::new();
    for _ in 0..10 {
        huge.push(K, Key::execution(1), &[1u8; 1000]);
    }
    assert!(matches!(
        wal.append_batch(&huge),
        Err(Error::BatchTooLarge { .. })
    ));
    // The refusals left the WAL usable.
    assert_eq!(
        wal.append(K, Key::execution(3), b"ok")
            .expect("append")
            .get(),
        4
    );
}

struct Flag(AtomicBool, std::thread::Thread);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
        self.1.unpark();
    }
}

fn block_on<F: std::future::Future>(f: F) -> (F::Output, bool) {
    let flag = Arc::new(Flag(AtomicBool::new(false), std::thread::current()));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let mut pending_once = false;
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return (v, pending_once);
        }
        pending_once = true;
        while !flag.0.swap(false, Ordering::SeqCst) {
            std::thread::park();
        }
    }
}

#[test]
fn durable_waits_block_and_resolve_as_futures_on_the_mmap_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let (wal, _) = Wal::open(dir.path(), config.clone()).expect("open");
    let mut last = Lsn::ZERO;
    for i in 0..50u64 {
        last = wal
            .append(K, Key::execution(1), &payload(1, i, 100))
            .expect("append");
    }
    block_on(wal.wait_durable(last)).0.expect("durable future");
    assert!(wal.durable_lsn() >= last);
    let l = wal.append(K, Key::execution(2), b"x").expect("append");
    wal.durable(l).expect("durable");
    assert!(matches!(
        wal.durable(Lsn::new(l.get() + 1)),
        Err(Error::UnknownLsn { .. })
    ));
    assert!(wal.stats().syncs >= 1);
    // Producers on several threads share the WAL and its group commit.
    let threads: Vec<_> = (0..4u128)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                for i in 0..100u64 {
                    let lsn = wal
                        .append(K, Key::execution(10 + t), &payload(t, i, 64))
                        .expect("append");
                    wal.durable(lsn).expect("durable");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("producer");
    }
    let stats = wal.stats();
    assert_eq!(stats.written_lsn.get(), 451);
    assert_eq!(stats.synced_lsn.get(), 451);
    wal.close().expect("close");
    let (_wal, rec) = Wal::open(dir.path(), config).expect("reopen");
    assert_eq!(rec.report().live_records, 451);
    assert_eq!(rec.report().next_lsn.get(), 452);
}

#[test]
fn a_wal_written_with_pwrite_reads_back_whole_with_either_kind_of_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        writes: crate::Writes::Pwrite,
        ..small_config()
    };
    let (wal, _) = Wal::open(dir.path(), config.clone()).expect("open");
    let mut last = Lsn::ZERO;
    // Enough to roll over segments: sealed ones are read back too.
    for i in 0..400u64 {
        last = wal
            .append(K, Key::execution(u128::from(i % 7)), &payload(1, i, 900))
            .expect("append");
        if i % 50 == 0 {
            wal.durable(last).expect("durable");
        }
    }
    wal.durable(last).expect("durable");
    drop(wal);
    let (wal, rec) = Wal::open(dir.path(), small_config()).expect("reopen mapped");
    assert_eq!(rec.report().live_records, 400);
    let lsn = wal.append(K, Key::execution(99), b"after").expect("append");
    wal.durable(lsn).expect("durable");
    drop(wal);
    let (_wal, rec) = Wal::open(dir.path(), config).expect("reopen pwrite");
    assert_eq!(rec.report().live_records, 401);
    let got: Vec<Vec<u8>> = rec
        .iter()
        .filter(|(key, _)| *key == Key::execution(99))
        .flat_map(|(_, records)| records.map(|r| r.payload().to_vec()))
        .collect();
    assert_eq!(got, [b"after".to_vec()]);
}

#[test]
fn segments_grow_from_the_first_size_and_fit_the_largest_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        segment_bytes: NonZeroU64::new(64 << 10).expect("non-zero"),
        first_segment_bytes: NonZeroU64::new(8 << 10).expect("non-zero"),
        spare_segments: 1,
        ..small_config()
    };
    // Segment files by base LSN: (base, length).
    let segments = || {
        let mut files: Vec<(u64, u64)> = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let base = crate::format::parse_segment_name(&name)?;
                Some((base, e.metadata().expect("metadata").len()))
            })
            .collect();
        files.sort_unstable();
        files
    };
    let (wal, _) = Wal::open(dir.path(), config.clone()).expect("open");
    assert_eq!(
        segments().iter().map(|s| s.1).collect::<Vec<_>>(),
        [8 << 10]
    );
    // Small records: each segment doubles the one before, up to 64 KiB.
    let mut lsn = wal.append(K, Key::execution(1), &[1; 10]).expect("append");
    for i in 0..300u64 {
        lsn = wal
            .append(K, Key::execution(1), &payload(1, i, 600))
            .expect("append");
    }
    wal.durable(lsn).expect("durable");
    let sizes: Vec<u64> = segments().iter().map(|s| s.1).collect();
    // (A spare the truncator made for the size before may still be taken,
    // rather than allocating on the append path: growth then lags a step,
    // but never goes back.)
    assert_eq!(sizes[0], 8 << 10, "{sizes:?}");
    for pair in sizes.windows(2) {
        assert!(pair[0] <= pair[1] && pair[1] <= 2 * pair[0], "{sizes:?}");
    }
    assert_eq!(sizes.last(), Some(&(64 << 10)), "{sizes:?}");
    assert_eq!(crate::segment_bytes_of(dir.path()), Some(64 << 10));
    drop(wal);

    // Reopened, it starts small again (its spare, if the truncator made
    // one, is taken first); a terminal record larger than the next
    // doubling rolls straight to a segment that holds it.
    let (wal, recovered) = Wal::open(dir.path(), config.clone()).expect("reopen");
    assert_eq!(
        recovered.get(Key::execution(1)).map(Iterator::count),
        Some(301)
    );
    drop(recovered);
    let spare_taken = segments().last().expect("a segment").1;
    let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let lsn = wal
        .append_terminal(K, Key::execution(2), &big)
        .expect("a terminal record of 40 KB");
    wal.durable(lsn).expect("durable");
    let last = *segments().last().expect("a segment");
    assert!(
        last.1 == 64 << 10 || spare_taken == 64 << 10,
        "the record's segment holds it: {:?}",
        segments()
    );
    drop(wal);
    let (_wal, recovered) = Wal::open(dir.path(), config).expect("reopen");
    let terminal = recovered
        .get(Key::execution(2))
        .and_then(|r| r.last())
        .expect("the terminal record");
    assert_eq!(terminal.payload(), &big[..]);
}

#[test]
fn spares_are_made_once_the_wal_works_not_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        spare_segments: 2,
        ..small_config()
    };
    let spares = || {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("spare-"))
            .collect();
        names.sort();
        names
    };
    let (wal, _) = Wal::open(dir.path(), config.clone()).expect("open");
    let lsn = wal
        .append(K, Key::execution(1), b"a little")
        .expect("append");
    wal.durable(lsn).expect("durable");
    // The truncator's first pass has run by now (it starts with one).
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        spares(),
        [] as [String; 0],
        "a WAL hardly used holds its one segment"
    );
    // A quarter of its segment (8 KiB) written: it makes its spares.
    for i in 0..4u64 {
        let lsn = wal
            .append(K, Key::execution(2), &payload(2, i, 600))
            .expect("append");
        wal.durable(lsn).expect("durable");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while spares().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(spares().len(), 2, "{:?}", spares());
    drop(wal);
    // Reopened, it starts its new segment in one and, warm, makes another.
    let (_wal, _) = Wal::open(dir.path(), config).expect("reopen");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while spares().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(spares().len(), 2, "{:?}", spares());
}

#[test]
fn a_ticket_outlives_its_wal_without_holding_it_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let (wal, _) = Wal::open(dir.path(), config.clone()).expect("open");
    let lsn = wal.append(K, Key::execution(1), b"x").expect("append");
    let ticket = wal.ticket(lsn);
    let later = wal.ticket(Lsn::new(lsn.get() + 1));
    ticket.durable().expect("durable");
    assert!(matches!(
        later.poll_durable(),
        Some(Err(Error::UnknownLsn { .. }))
    ));
    drop(wal);
    // The directory is free again although the tickets still live, and
    // they still answer.
    let (wal, rec) = Wal::open(dir.path(), config).expect("reopen while tickets live");
    assert_eq!(rec.report().live_records, 1);
    assert!(matches!(ticket.poll_durable(), Some(Ok(()))));
    assert_eq!(block_on(ticket.wait_durable()).0.ok(), Some(()));
    drop(wal);
}

#[test]
fn rkyv_payloads_are_read_in_place_after_recovery() {
    #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, PartialEq)]
    struct TaskRunDone {
        attempt: u32,
        outputs: Vec<String>,
        id: u128,
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), small_config()).expect("open");
    let v = TaskRunDone {
        attempt: 2,
        outputs: vec!["a".into(), "bc".into()],
        id: u128::MAX - 5,
    };
    let bytes = crate::encode(&v).expect("encode");
    wal.append(K, Key::execution(5), &bytes).expect("append");
    wal.append(K, Key::execution(5), b"\x01").expect("append");
    wal.close().expect("close");
    let (_wal, rec) = Wal::open(dir.path(), small_config()).expect("reopen");
    let (_, mut recs) = rec.iter().next().expect("one key");
    let r = recs.next().expect("record");
    assert_eq!(
        r.payload().as_ptr() as usize % 16,
        0,
        "payload is 16-byte aligned in the map"
    );
    let archived = crate::access::<TaskRunDone>(r.payload()).expect("valid archive");
    assert_eq!(archived.attempt, 2);
    assert_eq!(archived.outputs[1].as_str(), "bc");
    assert_eq!(archived.id, u128::MAX - 5);
    let junk = recs.next().expect("record");
    assert!(
        crate::access::<TaskRunDone>(junk.payload()).is_err(),
        "garbage fails validation"
    );
}

#[test]
fn appends_after_close_fail() {
    let storage = MemStorage::new();
    let (wal, _) = open(&storage, &small_config());
    let other = wal.clone();
    wal.close().expect("close");
    assert!(matches!(
        other.append(K, Key::execution(1), b"x"),
        Err(Error::Closed)
    ));
}

#[test]
fn interval_mode_acknowledges_at_once_and_syncs_in_the_background() {
    let storage = MemStorage::new();
    let config = Config {
        sync: SyncMode::Interval(std::time::Duration::from_millis(20)),
        ..small_config()
    };
    let (wal, _) = open(&storage, &config);
    let lsn = wal.append(K, Key::execution(1), b"x").expect("append");
    wal.durable(lsn).expect("acknowledged at once");
    assert_eq!(wal.durable_lsn(), lsn);
    let mut synced = false;
    for _ in 0..200 {
        if wal.stats().synced_lsn >= lsn {
            synced = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(synced, "the interval flusher synced without being asked");
    // Synced means it survives a crash that keeps only durable bytes.
    let crashed = storage.crash(|_, lo, _| lo);
    let (_wal, rec) = open(&crashed, &config);
    assert_eq!(rec.report().live_records, 1);
}

#[test]
fn short_or_stray_files_on_the_mmap_backend_do_not_stop_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let (wal, _) = Wal::open(dir.path(), config.clone()).expect("open");
    for i in 0..30u64 {
        wal.append(K, Key::execution(1), &payload(1, i, 200))
            .expect("append");
    }
    wal.close().expect("close");
    // A crash right after creating files: an empty segment after the last
    // one (named, as every new segment is, for the next LSN), a spare cut
    // short, and an unrelated file.
    std::fs::write(dir.path().join(crate::format::segment_name(31)), b"").expect("write");
    std::fs::write(dir.path().join(crate::format::spare_name(99)), b"junk").expect("write");
    std::fs::write(dir.path().join("notes.txt"), b"hello").expect("write");
    let (wal, rec) = Wal::open(dir.path(), config.clone()).expect("recover");
    assert_eq!(rec.report().live_records, 30);
    assert!(
        rec.report().torn_tail.is_some(),
        "the empty segment is a torn tail"
    );
    assert!(!dir.path().join(crate::format::spare_name(99)).exists());
    assert!(
        dir.path().join("notes.txt").exists(),
        "files that are not the WAL's are left alone"
    );
    assert_eq!(rec.report().next_lsn.get(), 31);
    assert_eq!(
        wal.append(K, Key::execution(1), b"more")
            .expect("append")
            .get(),
        31
    );
    drop(rec);
    wal.close().expect("close");
    let (_wal, rec) = Wal::open(dir.path(), config).expect("recover again");
    assert_eq!(rec.report().live_records, 31);
}

#[test]
fn a_directory_opens_as_one_wal_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), small_config()).expect("open");
    let err = Wal::open(dir.path(), small_config()).expect_err("in use");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(wal);
    let (_wal, _) = Wal::open(dir.path(), small_config()).expect("free again");
}

#[test]
fn appends_while_syncs_are_held_share_one_sync_made_on_release() {
    let storage = MemStorage::new();
    let (wal, _) = open(&storage, &small_config());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !wal.kick_state().1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the flusher never slept"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let syncs = wal.stats().syncs;
    wal.hold_syncs();
    let mut last = None;
    for i in 0..3u64 {
        last = Some(
            wal.append(K, Key::execution(1), &payload(1, i, 100))
                .expect("append"),
        );
    }
    let last = last.expect("appended");
    // (The flusher also looks every 100 ms; these few microseconds fall
    // between its looks.)
    assert_eq!(
        wal.kick_state(),
        (true, true),
        "the appends noted that a sync is due and let the flusher sleep"
    );
    assert_eq!(wal.stats().syncs, syncs);
    wal.release_syncs();
    // No sync was under way: the release synced them itself, on this
    // thread, and left the flusher asleep.
    assert!(!wal.kick_state().0);
    assert!(
        matches!(wal.poll_durable(last), Some(Ok(()))),
        "durable when the release returns"
    );
    assert_eq!(wal.stats().syncs, syncs + 1, "one sync for the three");
    // Released, an append wakes the flusher itself, as before.
    let lsn = wal.append(K, Key::execution(1), b"after").expect("append");
    assert!(!wal.kick_state().0);
    wal.durable(lsn).expect("durable");
}

#[test]
fn stats_count_syncs_their_bytes_and_their_latency() {
    let storage = MemStorage::new();
    let config = Config {
        sync: crate::SyncMode::Sync,
        ..small_config()
    };
    let (wal, _) = open(&storage, &config);
    let before = wal.stats();
    let lsn = wal
        .append(K, Key::execution(9), &[7u8; 300])
        .expect("append");
    wal.durable(lsn).expect("durable");
    let after = wal.stats();
    assert!(after.syncs > before.syncs);
    assert!(
        after.synced_bytes >= before.synced_bytes + 300,
        "the record's bytes were synced"
    );
    let buckets = after.sync_buckets;
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "cumulative");
    assert!(buckets[buckets.len() - 1] <= after.syncs);
    assert!(buckets[buckets.len() - 1] > 0, "an in-memory sync is fast");
}

/// Resident KiB of this process's mappings of `file` (Linux `smaps`).
fn resident_kib(file: &std::path::Path) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let name = file.to_str()?;
    let is_header = |line: &str| {
        line.split_whitespace().next().is_some_and(|range| {
            range.contains('-') && range.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        })
    };
    let mut total = None;
    let mut inside = false;
    for line in smaps.lines() {
        if is_header(line) {
            inside = line.ends_with(name);
        } else if inside && let Some(kib) = line.strip_prefix("Rss:") {
            let kib: u64 = kib.trim().trim_end_matches("kB").trim().parse().ok()?;
            *total.get_or_insert(0) += kib;
        }
    }
    total
}

#[test]
fn a_sealed_segment_leaves_memory_once_it_is_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        segment_bytes: NonZeroU64::new(1 << 20).expect("non-zero"),
        max_record_bytes: NonZeroU32::new(64 << 10).expect("non-zero"),
        ..small_config()
    };
    let (wal, _) = Wal::open(dir.path(), config).expect("open");
    let first = dir.path().join(crate::format::segment_name(1));
    let mut last = Lsn::ZERO;
    // Fill the first segment with ~1 MiB, then roll into a second one.
    for i in 0..40u64 {
        last = wal
            .append(K, Key::execution(u128::from(i)), &vec![7u8; 40 << 10])
            .expect("append");
    }
    wal.durable(last).expect("durable");
    assert!(wal.stats().segments >= 2, "rolled: {:?}", wal.stats());
    // The next sync after the roll covers the sealed segment's tail.
    let lsn = wal.append(K, Key::execution(99), b"x").expect("append");
    wal.durable(lsn).expect("durable");
    let resident = resident_kib(&first).expect("the sealed segment is still mapped");
    assert!(
        resident < 64,
        "{resident} KiB of the sealed segment stay resident"
    );
    drop(wal);
}
