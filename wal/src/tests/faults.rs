//! Injected faults: a failing write, a failing sync and a full disk make
//! `append` or `durable` return an error, and what was acknowledged before
//! stays readable.

use std::sync::atomic::Ordering;

use super::*;
use crate::{Error, Lsn};

fn acked_lsns(storage: &Arc<MemStorage>, config: &Config) -> Vec<u64> {
    // Recover from durable bytes only: the harshest crash.
    let crashed = storage.crash(|_, lo, _| lo);
    let (_wal, rec) = open(&crashed, config);
    let mut lsns: Vec<u64> = collect(&rec)
        .into_iter()
        .flat_map(|(_, v)| v.into_iter().map(|r| r.lsn))
        .collect();
    lsns.sort_unstable();
    lsns
}

#[test]
fn a_write_error_fails_the_append_and_poisons_the_wal() {
    let storage = MemStorage::new();
    let config = small_config();
    let (wal, _) = open(&storage, &config);
    let mut last = Lsn::ZERO;
    for i in 0..10 {
        last = wal
            .append(K, Key::execution(1), &payload(1, i, 100))
            .expect("append");
    }
    wal.durable(last).expect("durable");
    storage.faults.write_budget.store(50, Ordering::SeqCst);
    let err = wal
        .append(K, Key::execution(1), &[7u8; 200])
        .expect_err("write fails");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(matches!(
        wal.append(K, Key::execution(1), b"x"),
        Err(Error::Poisoned(_))
    ));
    assert!(matches!(wal.durable(Lsn::new(11)), Err(Error::Poisoned(_))));
    // Earlier acknowledgements still hold.
    wal.durable(last).expect("still durable");
    storage
        .faults
        .write_budget
        .store(i64::MAX, Ordering::SeqCst);
    drop(wal);
    assert_eq!(acked_lsns(&storage, &config), (1..=10).collect::<Vec<_>>());
}

#[test]
fn a_sync_error_fails_durable_waits_and_keeps_earlier_records() {
    let storage = MemStorage::new();
    let config = small_config();
    let (wal, _) = open(&storage, &config);
    let first = wal.append(K, Key::execution(1), b"before").expect("append");
    wal.durable(first).expect("durable");
    storage.faults.fail_sync.store(true, Ordering::SeqCst);
    let second = wal
        .append(K, Key::execution(1), b"after")
        .expect("append never waits");
    let err = wal.durable(second).expect_err("sync fails");
    assert!(matches!(err, Error::Poisoned(_)), "{err}");
    assert!(wal.append(K, Key::execution(2), b"x").is_err());
    storage.faults.fail_sync.store(false, Ordering::SeqCst);
    drop(wal);
    assert_eq!(acked_lsns(&storage, &config), vec![1]);
}

#[test]
fn a_full_disk_refuses_the_append_and_the_wal_recovers_when_space_returns() {
    let storage = MemStorage::new();
    let config = Config {
        spare_segments: 0,
        ..small_config()
    };
    let (wal, _) = open(&storage, &config);
    storage
        .faults
        .capacity
        .store(config.segment_bytes.get(), Ordering::SeqCst);
    let mut acked = Vec::new();
    let err = loop {
        match wal.append(K, Key::execution(1), &[3u8; 500]) {
            Ok(lsn) => {
                wal.durable(lsn).expect("durable");
                acked.push(lsn.get());
            }
            Err(e) => break e,
        }
    };
    assert!(err.is_disk_full(), "{err}");
    assert!(wal.out_of_space(), "the WAL says it is out of space");
    assert!(acked.len() > 5, "the first segment filled: {}", acked.len());
    // Refused, not failed: once there is room again, appends go on.
    assert!(wal.append(K, Key::execution(1), &[3u8; 500]).is_err());
    storage.faults.capacity.store(u64::MAX, Ordering::SeqCst);
    let lsn = wal
        .append(K, Key::execution(1), &[4u8; 500])
        .expect("room again");
    assert_eq!(lsn.get(), *acked.last().expect("acked") + 1);
    wal.durable(lsn).expect("durable");
    acked.push(lsn.get());
    drop(wal);
    assert_eq!(acked_lsns(&storage, &config), acked);
}

#[test]
fn out_of_space_is_raised_before_appends_fail_and_clears_when_space_returns() {
    // With spares: the disk refusing a spare is the warning, while the
    // active segment and the spares left still take appends.
    let storage = MemStorage::new();
    let config = Config {
        spare_segments: 1,
        ..small_config()
    };
    let (wal, _) = open(&storage, &config);
    wal.truncate_now().expect("pass");
    assert_eq!(wal.stats().spares, 0, "none before the WAL works");
    // A quarter of a segment written: it is warm, its spare made.
    for i in 0..4u32 {
        wal.append(K, Key::execution(u128::from(i)), &[5u8; 500])
            .expect("append");
    }
    wal.truncate_now().expect("pass");
    assert_eq!(wal.stats().spares, 1);
    assert!(!wal.out_of_space());
    // Room for what exists now and nothing more.
    let used: u64 = storage
        .names()
        .iter()
        .filter_map(|n| storage.get(n))
        .map(|bytes| bytes.len() as u64)
        .sum();
    storage.faults.capacity.store(used, Ordering::SeqCst);
    let mut rolled_into_spare = false;
    let mut refused = None;
    for i in 0..10_000u32 {
        match wal.append(K, Key::execution(u128::from(i)), &[5u8; 500]) {
            Ok(_) => {
                // The truncator would refill the spare it gave; it cannot.
                wal.truncate_now().expect("pass");
                rolled_into_spare |= wal.stats().spares == 0;
                if rolled_into_spare {
                    assert!(wal.out_of_space(), "raised once no spare is left");
                }
            }
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(rolled_into_spare, "the spare was used");
    let refused = refused.expect("the disk filled up");
    assert!(refused.is_disk_full(), "{refused}");
    assert!(wal.out_of_space());
    storage.faults.capacity.store(u64::MAX, Ordering::SeqCst);
    wal.truncate_now().expect("pass");
    assert!(!wal.out_of_space(), "cleared once a spare is made again");
    let lsn = wal
        .append(K, Key::execution(1), &[5u8; 500])
        .expect("appends go on");
    wal.durable(lsn).expect("durable");
}

#[test]
fn a_full_disk_on_the_mmap_backend_is_an_error_not_a_crash() {
    // A segment larger than any disk: preallocation fails with ENOSPC (or
    // EFBIG) at open, before anything is mapped.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        segment_bytes: std::num::NonZeroU64::new(1 << 50).expect("non-zero"),
        first_segment_bytes: std::num::NonZeroU64::new(1 << 50).expect("non-zero"),
        ..small_config()
    };
    let err = Wal::open(dir.path(), config).expect_err("no room");
    assert!(
        matches!(err, Error::DiskFull { .. } | Error::Io { .. }),
        "{err}"
    );
}
