//! Crash consistency, after redb's crash tests: random appends, syncs,
//! truncation passes and crashes on the in-memory backend, where a crash
//! keeps the durable bytes plus a torn prefix of the rest of each file.
//! After each crash, recovery must hand back exactly the live records of a
//! prefix of the appended log that contains everything acknowledged.

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::Batch;

#[derive(Debug, Clone)]
enum Op {
    Append { key: u8, terminal: bool, len: u16 },
    Batch { key: u8, n: u8, terminal: bool },
    Wait,
    Truncate,
    Crash { cuts: Vec<u16> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6, prop::bool::weighted(0.2), 0u16..700)
            .prop_map(|(key, terminal, len)| Op::Append { key, terminal, len }),
        2 => (0u8..6, 1u8..5, any::<bool>()).prop_map(|(key, n, terminal)| Op::Batch { key, n, terminal }),
        2 => Just(Op::Wait),
        1 => Just(Op::Truncate),
        1 => vec(any::<u16>(), 1..4).prop_map(|cuts| Op::Crash { cuts }),
    ]
}

#[derive(Debug, Clone)]
struct Appended {
    lsn: u64,
    key: Key,
    kind: u16,
    terminal: bool,
    payload: Vec<u8>,
}

/// The live records, per key, of the appended records with LSN <= `upto`.
/// With `expire`, terminal records are past their retention: a key whose
/// newest record is terminal has nothing left.
fn expected(log: &[Appended], upto: u64, expire: bool) -> Vec<(Key, Vec<Appended>)> {
    let mut per_key: std::collections::BTreeMap<Key, Vec<Appended>> = Default::default();
    for a in log.iter().filter(|a| a.lsn <= upto) {
        let v = per_key.entry(a.key).or_default();
        if a.terminal {
            v.clear();
        }
        v.push(a.clone());
    }
    per_key
        .into_iter()
        .filter(|(_, v)| !(expire && v.last().is_some_and(|a| a.terminal)))
        .collect()
}

fn crash_and_check(
    storage: &Arc<MemStorage>,
    config: &Config,
    cuts: &[u16],
    log: &mut Vec<Appended>,
    acked: &mut u64,
) -> (Arc<MemStorage>, Wal) {
    let mut i = 0;
    let crashed = storage.crash(|_, lo, hi| {
        i += 1;
        lo + u64::from(cuts[i % cuts.len()]) % (hi - lo + 1)
    });
    let (wal, rec) = open(&crashed, config);
    let upto = rec.report().next_lsn.get() - 1;
    assert!(
        upto >= *acked,
        "acknowledged LSN {acked} lost: recovered up to {upto}"
    );
    let last_appended = log.last().map_or(0, |a| a.lsn);
    let expire = config.terminal_retention == Some(Duration::ZERO);
    let mut got = collect(&rec);
    let mut want = expected(log, upto, expire);
    if expire {
        // Expired terminal records may go as soon as a truncation pass or a
        // recovery sees them as their key's newest record, even if records
        // follow later. What must hold: every non-terminal live record is
        // there, and dead ones never come back.
        for (_, v) in got.iter_mut() {
            v.retain(|r| !r.terminal);
        }
        for (_, v) in want.iter_mut() {
            v.retain(|a| !a.terminal);
        }
        got.retain(|(_, v)| !v.is_empty());
        want.retain(|(_, v)| !v.is_empty());
    }
    assert_eq!(
        got.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        want.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        "recovered keys (upto {upto}, appended {last_appended})"
    );
    for ((key, have), (_, want)) in got.iter().zip(&want) {
        assert_eq!(
            have.len(),
            want.len(),
            "records of {key:?} (upto {upto}): have {:?}, want {:?}",
            have.iter()
                .map(|r| (r.lsn, r.terminal, r.copy))
                .collect::<Vec<_>>(),
            want.iter().map(|a| (a.lsn, a.terminal)).collect::<Vec<_>>()
        );
        for (h, w) in have.iter().zip(want) {
            assert_eq!(h.payload, w.payload, "payload of {key:?}");
            assert_eq!(h.kind, w.kind);
            assert_eq!(h.terminal, w.terminal);
            if h.copy {
                assert!(h.lsn > w.lsn, "a copy comes after its original");
            } else {
                assert_eq!(h.lsn, w.lsn);
            }
        }
    }
    log.retain(|a| a.lsn <= upto);
    *acked = upto;
    (crashed, wal)
}

fn run(ops: Vec<Op>, config: Config) {
    let mut storage = MemStorage::new();
    let (mut wal, _) = open(&storage, &config);
    let mut log: Vec<Appended> = Vec::new();
    let mut acked = 0u64;
    let mut n = 0u64;
    for op in ops {
        n += 1;
        match op {
            Op::Append { key, terminal, len } => {
                let key = Key::execution(u128::from(key));
                let p = payload(key.id(), n, usize::from(len));
                let (kind, lsn) = if terminal {
                    (DONE, wal.append_terminal(DONE, key, &p))
                } else {
                    (K, wal.append(K, key, &p))
                };
                let lsn = lsn.expect("append").get();
                log.push(Appended {
                    lsn,
                    key,
                    kind: kind.get(),
                    terminal,
                    payload: p,
                });
            }
            Op::Batch {
                key,
                n: count,
                terminal,
            } => {
                let mut batch = Batch::new();
                let mut items = Vec::new();
                for j in 0..count {
                    let key = Key::execution(u128::from((key + j) % 6));
                    let term = terminal && j + 1 == count;
                    let p = payload(key.id(), n * 10 + u64::from(j), 40 + usize::from(j) * 30);
                    if term {
                        batch.push_terminal(DONE, key, &p);
                    } else {
                        batch.push(K, key, &p);
                    }
                    items.push((key, term, p));
                }
                let last = wal.append_batch(&batch).expect("batch").get();
                let first = last + 1 - u64::from(count);
                for (j, (key, term, p)) in items.into_iter().enumerate() {
                    log.push(Appended {
                        lsn: first + j as u64,
                        key,
                        kind: if term { DONE.get() } else { K.get() },
                        terminal: term,
                        payload: p,
                    });
                }
            }
            Op::Wait => {
                if let Some(last) = log.last() {
                    let lsn = crate::Lsn::new(last.lsn);
                    if config.sync == SyncMode::Sync {
                        wal.durable(lsn).expect("durable");
                    } else {
                        // Interval mode acknowledges at once; wait for the
                        // sync that a flush asks for.
                        while wal.stats().synced_lsn < lsn {
                            wal.flush();
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                    acked = acked.max(last.lsn);
                }
            }
            Op::Truncate => wal.truncate_now().expect("truncate"),
            Op::Crash { cuts } => {
                let (s, w) = crash_and_check(&storage, &config, &cuts, &mut log, &mut acked);
                drop(std::mem::replace(&mut wal, w));
                storage = s;
            }
        }
    }
    let (_s, _w) = crash_and_check(&storage, &config, &[7, 3000], &mut log, &mut acked);
    drop(wal);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn acknowledged_records_survive_crashes_and_nothing_else_appears(ops in vec(op(), 1..60)) {
        run(ops, small_config());
    }

    #[test]
    fn truncation_waits_for_the_terminal_records_to_be_synced(ops in vec(op(), 1..60)) {
        let config = Config {
            sync: SyncMode::Interval(Duration::from_secs(3600)),
            terminal_retention: Some(Duration::ZERO),
            ..small_config()
        };
        run(ops, config);
    }

    #[test]
    fn expiring_terminal_records_never_resurrect_dead_ones(ops in vec(op(), 1..60)) {
        run(ops, Config { terminal_retention: Some(Duration::ZERO), ..small_config() });
    }
}

#[test]
fn a_crash_before_any_sync_recovers_an_empty_log() {
    let config = Config {
        sync: SyncMode::None,
        ..small_config()
    };
    let storage = MemStorage::new();
    let (wal, _) = open(&storage, &config);
    for i in 0..20 {
        wal.append(K, Key::execution(1), &payload(1, i, 100))
            .expect("append");
    }
    // Nothing was synced: a crash that keeps none of the written bytes.
    let crashed = storage.crash(|_, lo, _| lo);
    drop(wal);
    let (_wal, rec) = open(&crashed, &config);
    assert!(rec.is_empty());
    assert!(rec.report().torn_tail.is_some());
}

#[test]
fn a_process_crash_then_a_power_loss_is_not_mistaken_for_corruption() {
    // Session 1 never syncs: its bytes live only in the "page cache".
    let storage = MemStorage::new();
    let none = Config {
        sync: SyncMode::None,
        ..small_config()
    };
    let (wal, _) = open(&storage, &none);
    for i in 0..40 {
        wal.append(K, Key::execution(1), &payload(1, i, 300))
            .expect("append");
    }
    drop(wal);
    // The process restarts on the same page cache and goes on durably.
    let config = small_config();
    let (wal, rec) = open(&storage, &config);
    assert_eq!(rec.report().live_records, 40);
    let lsn = wal
        .append(K, Key::execution(2), b"after restart")
        .expect("append");
    wal.durable(lsn).expect("durable");
    // Then the machine loses power: only durable bytes remain. What the
    // restart recovered was made durable before new markers vouched for it.
    let crashed = storage.crash(|_, lo, _| lo);
    drop(wal);
    let (_wal, rec) = open(&crashed, &config);
    assert_eq!(rec.report().live_records, 41);
}
