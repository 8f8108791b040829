//! Behaviour tests. They run the WAL on the in-memory backend (`mem.rs`) to
//! crash it and inject faults, and on the real mmap backend in a tempdir.

mod basic;
mod corruption;
mod crash;
mod damage;
mod faults;
mod spans;
mod truncation;

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::time::Duration;

use crate::mem::MemStorage;
use crate::{Config, Key, Kind, Recovered, SyncMode, Wal};

/// Small segments so that tests roll often; truncation only on demand.
pub(crate) fn small_config() -> Config {
    Config {
        segment_bytes: NonZeroU64::new(8192).expect("non-zero"),
        max_record_bytes: NonZeroU32::new(1024).expect("non-zero"),
        sync: SyncMode::Sync,
        truncate_interval: Duration::from_secs(3600),
        spare_segments: 1,
        terminal_retention: None,
        ..Config::default()
    }
}

pub(crate) fn open(storage: &Arc<MemStorage>, config: &Config) -> (Wal, Recovered) {
    Wal::open_on(storage.clone(), config.clone()).expect("open")
}

/// One recovered record, owned, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rec {
    pub lsn: u64,
    pub kind: u16,
    pub terminal: bool,
    pub copy: bool,
    pub payload: Vec<u8>,
}

pub(crate) fn collect(r: &Recovered) -> Vec<(Key, Vec<Rec>)> {
    let mut out: Vec<(Key, Vec<Rec>)> = r
        .iter()
        .map(|(k, recs)| {
            let v = recs
                .map(|x| {
                    assert_eq!(x.key(), k);
                    Rec {
                        lsn: x.lsn().get(),
                        kind: x.kind().get(),
                        terminal: x.is_terminal(),
                        copy: x.is_copy(),
                        payload: x.payload().to_vec(),
                    }
                })
                .collect();
            (k, v)
        })
        .collect();
    out.sort_by_key(|(k, _)| *k);
    out
}

pub(crate) fn payload(key: u128, n: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (key as u64).wrapping_mul(31).wrapping_add(n * 7 + i as u64) as u8)
        .collect()
}

pub(crate) const K: Kind = Kind::new(1);
pub(crate) const DONE: Kind = Kind::new(2);

/// Runs truncation passes until what they copied forward is durable.
pub(crate) fn settle(wal: &Wal) {
    for _ in 0..3 {
        wal.truncate_now().expect("truncate");
        wal.durable(wal.stats().written_lsn).expect("durable");
    }
}

/// A WAL holding one durable terminal record of execution 1, `len` bytes
/// (`payload(1, 0, len)`), and the name of its segment file.
pub(crate) fn one_terminal_record(len: usize) -> (Arc<MemStorage>, Wal, String) {
    let storage = MemStorage::new();
    let (wal, _) = open(&storage, &small_config());
    let lsn = wal
        .append_terminal(DONE, Key::execution(1), &payload(1, 0, len))
        .expect("append");
    wal.durable(lsn).expect("durable");
    let name = storage
        .names()
        .into_iter()
        .find(|n| n.ends_with(".wal"))
        .expect("a segment");
    (storage, wal, name)
}
