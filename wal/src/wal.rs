//! The WAL handle: appending, group commit and durable waits.
//!
//! Threads: the caller appends under the writer lock (a memcpy into the
//! mapped segment plus an index update; it never waits for the disk). A
//! flusher thread syncs what was appended and advances the durable LSN. A
//! truncator thread reclaims segments whose records are all dead.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::{Config, SyncMode};
use crate::error::{Error, Result};
use crate::format;
use crate::io::Storage;
use crate::manifest::{self, Manifest};
use crate::mmap::FsStorage;
use crate::record::{Batch, BatchEntry, Key, Kind, Lsn, now_secs};
use crate::recovery::{Mode, Recovered, RecoveryReport, recover, repair};
use crate::writer::{
    Active, FORGOTTEN, KeyLive, Liveness, Pending, SegmentMeta, TerminalLoc, WriteError, Writer,
    note_record_in, note_terminal_in,
};

/// A write-ahead log. Cloning gives another handle to the same log; the
/// clones share one writer lock, so several producer threads may append (the
/// engine's shard appends from its own thread). Background threads stop when
/// the last handle is dropped or `close` is called.
#[derive(Debug, Clone)]
pub struct Wal {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub storage: Arc<dyn Storage>,
    pub writer: Mutex<Writer>,
    /// Serializes truncation passes (background and `truncate_now`).
    pub truncating: Mutex<()>,
    /// What the directory's manifest says; changed only together with the
    /// file (`Shared::update_manifest`).
    manifest: Mutex<Manifest>,
    /// Where durability stands: shared with every [`Ticket`].
    mark: Arc<Watermark>,
    flusher_idle: AtomicBool,
    /// No spare segment is ready and the disk refused the last one asked
    /// for: what is appended now may be the last that fits. Cleared once a
    /// segment file is made again (the truncator retries every pass).
    pub out_of_space: AtomicBool,
    /// Set (under `wake`) by `Wal::flush` and `close`: sync without waiting.
    flush_requested: AtomicBool,
    /// While set (`Wal::hold_syncs`), appends do not wake the flusher:
    /// `held_kick` says one came, and `release_syncs` wakes it once.
    holding: AtomicBool,
    held_kick: AtomicBool,
    /// Held through each sync, by the flusher or by `release_syncs` on its
    /// caller's thread: a later sync must not claim durability for ranges
    /// an earlier one is still syncing.
    syncing: Mutex<()>,
    wake: Mutex<()>,
    flusher_cv: Condvar,
    truncator_cv: Condvar,
    syncs: AtomicU64,
    synced_bytes: AtomicU64,
    sync_nanos: AtomicU64,
    /// Per bucket of [`SYNC_BUCKETS_MICROS`], not cumulative.
    sync_buckets: [AtomicU64; SYNC_BUCKETS_MICROS.len()],
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave our state half-updated in a
    // way later code relies on; failures poison the WAL explicitly instead.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counters for benchmarks and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Last appended LSN.
    pub written_lsn: Lsn,
    /// Last LSN covered by a sync.
    pub synced_lsn: Lsn,
    /// Syncs the flusher ran.
    pub syncs: u64,
    /// Segment files in use (not counting spares).
    pub segments: usize,
    /// Spare files ready for the next segments.
    pub spares: usize,
    /// Keys with live records.
    pub live_keys: usize,
    /// Bytes the syncs covered.
    pub synced_bytes: u64,
    /// Time spent in syncs, in all.
    pub sync_time: std::time::Duration,
    /// Sync latencies: how many took at most each of
    /// [`SYNC_BUCKETS_MICROS`] (cumulative, as Prometheus buckets).
    pub sync_buckets: [u64; SYNC_BUCKETS_MICROS.len()],
}

/// Upper bounds of the sync-latency buckets, in microseconds.
pub const SYNC_BUCKETS_MICROS: [u64; 10] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000,
];

impl Wal {
    /// Opens (creating if needed) the WAL in `dir` and recovers it. The WAL
    /// must own `dir`: no other process may write, truncate or delete its
    /// files while it is open (the mapped files rely on it).
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<(Wal, Recovered)> {
        let dir = dir.as_ref();
        let storage = FsStorage::new(dir, config.writes)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Wal::open_on(Arc::new(storage), config)
    }

    pub(crate) fn open_on(storage: Arc<dyn Storage>, config: Config) -> Result<(Wal, Recovered)> {
        config.validate()?;
        // Fails on damage (unless `skip_damaged`) before anything changes.
        let mut recovery = recover(storage.as_ref(), &config, Mode::Open)?;
        repair(storage.as_ref(), &mut recovery)?;
        let next_lsn = recovery.recovered.report().next_lsn.get();

        // What recovery read may sit only in the page cache (the process
        // died, not the machine). Make it durable before new markers claim
        // it is: a later recovery trusts those claims.
        for s in &recovery.segments {
            s.file.sync(0, s.file.len()).map_err(|e| {
                Error::io(format!("syncing {}", storage.path(&s.name).display()), e)
            })?;
        }
        storage
            .sync_dir()
            .map_err(|e| Error::io("syncing the WAL directory", e))?;
        // Now all of it is durable, and the manifest says so (with what
        // `skip_damaged` dropped) before the first new segment exists.
        let mut manifest = std::mem::take(&mut recovery.manifest);
        manifest.durable_lsn = manifest.durable_lsn.max(next_lsn - 1);
        write_manifest(storage.as_ref(), &manifest)?;
        log_recovery(recovery.recovered.report());

        let mut segments = std::collections::BTreeMap::new();
        for s in &recovery.segments {
            let mut meta = SegmentMeta::new(s.name.clone(), s.file.clone());
            meta.end_lsn = Some(s.end_lsn);
            segments.insert(s.base, meta);
        }
        let spares = recovery
            .spares
            .iter()
            .map(|(id, f)| (format::spare_name(*id), f.clone()))
            .collect();
        let mut writer = Writer {
            next_lsn,
            active: Active {
                base: 0,
                seed: 0,
                // A placeholder until the first segment is started below.
                file: Arc::new(crate::io::EmptyFile),
                capacity: 0,
                offset: 0,
                flushed: 0,
            },
            sizes: config.segment_sizes(),
            part_bytes: config.max_record_bytes.get() as usize,
            unsynced: Vec::new(),
            dir_dirty: false,
            track_unsynced: config.sync != SyncMode::None,
            segments,
            index: Default::default(),
            retained: Default::default(),
            spares,
            next_spare_id: recovery.max_spare_id + 1,
            rolled: false,
            warm: false,
        };
        writer.warm = !writer.spares.is_empty();
        // Rebuild the liveness index from what recovery found live, one
        // index insertion per key.
        writer.index.reserve(recovery.recovered.len());
        for (key, refs) in recovery.live_keys() {
            let mut live = KeyLive::default();
            for r in &refs {
                let base = recovery.base_of(r.seg);
                if r.flags & format::FLAG_TERMINAL != 0 {
                    let loc = TerminalLoc {
                        base,
                        offset: r.offset,
                        lsn: r.lsn,
                        time_secs: r.time_secs,
                        len: r.len,
                    };
                    let at = Liveness {
                        segments: &mut writer.segments,
                        retained: &mut writer.retained,
                    };
                    note_terminal_in(&mut live, at, key, loc);
                    for b in recovery.killed(key) {
                        live.open().killed.push_distinct(*b);
                    }
                    live.settle();
                } else {
                    let is_log = config.is_log_kind(Kind::new(r.kind));
                    let at = Liveness {
                        segments: &mut writer.segments,
                        retained: &mut writer.retained,
                    };
                    note_record_in(&mut live, at, base, is_log, r.time_secs);
                }
            }
            writer.index.insert(key, live);
        }
        // Recovered terminal records were durable: nothing waits on them.
        for m in writer.segments.values_mut() {
            m.max_kill_lsn = 0;
        }
        let (name, file) = writer.take_segment_file(
            storage.as_ref(),
            next_lsn,
            format::HEADER_LEN + 2 * format::MARKER_LEN,
        )?;
        file.prefault();
        writer
            .start_segment(name, file, next_lsn)
            .map_err(|e| match e {
                WriteError::Refused(e) | WriteError::Failed(e) => e,
            })?;
        // The placeholder "old active" must not reach the flusher, and
        // starting the first segment is no roll (see `Writer::warm`).
        writer.unsynced.clear();
        writer.rolled = false;

        let last = next_lsn - 1;
        let shared = Arc::new(Shared {
            config: config.clone(),
            storage,
            writer: Mutex::new(writer),
            truncating: Mutex::new(()),
            manifest: Mutex::new(manifest),
            mark: Arc::new(Watermark {
                sync: config.sync,
                written: AtomicU64::new(last),
                synced: AtomicU64::new(last),
                failure: OnceLock::new(),
                closed: AtomicBool::new(false),
                waiters: Mutex::new(Vec::new()),
                waiters_cv: Condvar::new(),
            }),
            flusher_idle: AtomicBool::new(false),
            out_of_space: AtomicBool::new(false),
            flush_requested: AtomicBool::new(false),
            holding: AtomicBool::new(false),
            held_kick: AtomicBool::new(false),
            syncing: Mutex::new(()),
            wake: Mutex::new(()),
            flusher_cv: Condvar::new(),
            truncator_cv: Condvar::new(),
            syncs: AtomicU64::new(0),
            synced_bytes: AtomicU64::new(0),
            sync_nanos: AtomicU64::new(0),
            sync_buckets: Default::default(),
        });
        let mut threads = Vec::new();
        if shared.config.sync != SyncMode::None {
            let s = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("wal-flusher".into())
                    .spawn(move || flusher(&s))
                    .map_err(|e| Error::io("spawning the flusher", e))?,
            );
        }
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("wal-truncator".into())
                .spawn(move || crate::truncate::truncator(&s))
                .map_err(|e| Error::io("spawning the truncator", e))?,
        );
        let wal = Wal {
            inner: Arc::new(Inner {
                shared,
                threads: Mutex::new(threads),
            }),
        };
        Ok((wal, recovery.recovered))
    }

    /// Appends one record. Returns its LSN at once; see `durable` to wait
    /// for it to reach the disk.
    pub fn append(&self, kind: Kind, key: Key, payload: &[u8]) -> Result<Lsn> {
        self.append_one(kind, key, false, payload)
    }

    /// Appends a terminal record: every earlier record of `key` becomes dead,
    /// and this one is kept for `Config::terminal_retention`.
    pub fn append_terminal(&self, kind: Kind, key: Key, payload: &[u8]) -> Result<Lsn> {
        self.append_one(kind, key, true, payload)
    }

    fn append_one(&self, kind: Kind, key: Key, terminal: bool, payload: &[u8]) -> Result<Lsn> {
        let entry = BatchEntry {
            kind,
            key,
            terminal,
            start: 0,
            len: payload.len(),
        };
        let shared = &self.inner.shared;
        let pending = [shared.pending(entry, payload, now_secs())?];
        shared.write(&pending)
    }

    /// Appends a batch atomically: after a crash, all of its records are
    /// recovered or none. Returns the LSN of its last record.
    pub fn append_batch(&self, batch: &Batch) -> Result<Lsn> {
        if batch.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let shared = &self.inner.shared;
        let now = now_secs();
        let pending = batch
            .entries
            .iter()
            .map(|e| shared.pending(*e, &batch.payloads[e.start..e.start + e.len], now))
            .collect::<Result<Vec<_>>>()?;
        shared.write(&pending)
    }

    /// Lets `key`'s terminal record go before its retention ends: it is no
    /// longer read back, and truncation drops it instead of copying it
    /// forward (a restart before that may still recover it).
    pub fn forget(&self, key: Key) {
        lock(&self.inner.shared.writer).forget(key);
    }

    /// `key`'s terminal record, read back from its segment (a point read
    /// through the file, which maps nothing into the process), or `None`
    /// if the key has none: it never ended, or its record expired, was
    /// forgotten, or fell outside the retention budgets. Checked against its
    /// checksum and key.
    pub fn read_terminal(&self, key: Key) -> Result<Option<Terminal>> {
        let shared = &self.inner.shared;
        let (loc, file, name) = {
            let w = lock(&shared.writer);
            let Some(loc) = w.index.get(&key).and_then(|l| l.terminal()) else {
                return Ok(None);
            };
            if loc.time_secs == FORGOTTEN {
                return Ok(None);
            }
            // Holding the file keeps a segment dropped meanwhile from being
            // recycled (and written) under this read: it is deleted instead.
            let Some(m) = w.segments.get(&loc.base) else {
                return Ok(None);
            };
            (loc, Arc::clone(&m.file), m.name.clone())
        };
        let path = || shared.storage.path(&name);
        let damaged = |what: &str| {
            Error::damaged(
                path(),
                loc.offset,
                format!("a terminal record read back no longer verifies: {what}"),
            )
        };
        let read = |at: u64, buf: &mut [u8]| {
            file.read_at(at, buf)
                .map_err(|e| Error::io(format!("reading {}", path().display()), e))
        };
        // Its first frame's header says how long its parts are.
        let mut first = [0u8; format::FRAME_HEADER_LEN as usize];
        read(loc.offset, &mut first)?;
        let part = u32::from_le_bytes([first[0], first[1], first[2], first[3]]) as usize;
        let extent = if first[10] & format::FLAG_CONTINUES != 0 && part > 0 {
            format::span_len(loc.len as usize, part)
        } else {
            format::frame_len(loc.len as usize)
        };
        let mut bytes = vec![0u8; usize::try_from(extent).map_err(|_| damaged("too long"))?];
        read(loc.offset, &mut bytes)?;
        let (header, payload) =
            format::read_span(&bytes, format::seed(loc.base), key.space(), key.id())
                .map_err(damaged)?;
        if header.len != loc.len {
            return Err(damaged("its length changed"));
        }
        Ok(Some(Terminal {
            kind: Kind::new(header.kind),
            lsn: Lsn::new(loc.lsn),
            payload: crate::Aligned::from_vec(payload),
        }))
    }

    /// Blocks until `lsn` is durable (in `SyncMode::Sync`; in the other modes
    /// it returns at once). Fails if the WAL failed before `lsn` was synced.
    pub fn durable(&self, lsn: Lsn) -> Result<()> {
        self.ticket(lsn).durable()
    }

    /// Whether `lsn` is durable, without waiting: `None` while it is not
    /// yet, an error if the WAL failed before syncing it.
    pub fn poll_durable(&self, lsn: Lsn) -> Option<Result<()>> {
        self.inner.shared.mark.check_durable(lsn.get())
    }

    /// A future that resolves when `lsn` is durable. It needs no runtime:
    /// the flusher wakes it.
    pub fn wait_durable(&self, lsn: Lsn) -> Durable {
        self.ticket(lsn).wait_durable()
    }

    /// A handle on `lsn`'s durability that keeps nothing else of the WAL
    /// alive: hold it as long as needed, after the WAL closed too.
    pub fn ticket(&self, lsn: Lsn) -> Ticket {
        Ticket {
            mark: Arc::clone(&self.inner.shared.mark),
            lsn: lsn.get(),
        }
    }

    /// The last LSN that is acknowledged as durable under the sync mode.
    pub fn durable_lsn(&self) -> Lsn {
        Lsn::new(self.inner.shared.mark.acknowledged())
    }

    /// Until `release_syncs`, appends do not wake an idle flusher: the
    /// records of several appends (one pass of the appender over its work)
    /// then share one sync instead of the first going alone, at the cost of
    /// starting that sync when the pass ends. A flusher already syncing
    /// goes on to the next sync as before. Meant for a single appender that
    /// releases soon; nothing waiting on durability may block in between
    /// (the flusher still looks every 100 ms).
    pub fn hold_syncs(&self) {
        self.inner.shared.holding.store(true, Ordering::SeqCst);
    }

    /// Ends `hold_syncs`. If an append came meanwhile, syncs it here, on the
    /// caller's thread, when no sync is under way (what the flusher would
    /// have done, without waking it: the caller waits for the disk instead,
    /// and what it then tells others is durable already); otherwise wakes
    /// the flusher. A failed sync fails the WAL as the flusher's would (every
    /// durable wait reports it). Only in `SyncMode::Sync`.
    pub fn release_syncs(&self) {
        let shared = &self.inner.shared;
        shared.holding.store(false, Ordering::SeqCst);
        if !shared.held_kick.swap(false, Ordering::SeqCst) {
            return;
        }
        let _syncing = match shared.syncing.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return shared.kick_flusher(false),
        };
        let _ = shared.sync_locked();
    }

    /// For tests: whether an append is waiting for `release_syncs` to wake
    /// the flusher, and whether the flusher sleeps.
    #[cfg(test)]
    pub(crate) fn kick_state(&self) -> (bool, bool) {
        let shared = &self.inner.shared;
        (
            shared.held_kick.load(Ordering::SeqCst),
            shared.flusher_idle.load(Ordering::SeqCst),
        )
    }

    /// Asks the flusher to sync now (useful in `Interval` mode).
    pub fn flush(&self) {
        self.inner.shared.kick_flusher(true);
    }

    /// Runs one truncation pass now, on the calling thread.
    pub fn truncate_now(&self) -> Result<()> {
        crate::truncate::run_once(&self.inner.shared)
    }

    /// True while the disk is full for this WAL: no spare segment is ready
    /// and making one failed. Appends still go into the room left; callers
    /// should stop taking new work until it clears, which it does by itself
    /// once space returns.
    pub fn out_of_space(&self) -> bool {
        self.inner.shared.out_of_space.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> WalStats {
        let s = &self.inner.shared;
        let w = lock(&s.writer);
        WalStats {
            written_lsn: Lsn::new(s.mark.written.load(Ordering::Acquire)),
            synced_lsn: Lsn::new(s.mark.synced.load(Ordering::Acquire)),
            syncs: s.syncs.load(Ordering::Relaxed),
            segments: w.segments.len(),
            spares: w.spares.len(),
            live_keys: w.index.len(),
            synced_bytes: s.synced_bytes.load(Ordering::Relaxed),
            sync_time: std::time::Duration::from_nanos(s.sync_nanos.load(Ordering::Relaxed)),
            sync_buckets: {
                let mut cumulative = [0u64; SYNC_BUCKETS_MICROS.len()];
                let mut total = 0;
                for (i, bucket) in s.sync_buckets.iter().enumerate() {
                    total += bucket.load(Ordering::Relaxed);
                    cumulative[i] = total;
                }
                cumulative
            },
        }
    }

    /// Syncs everything, seals the active segment and stops the background
    /// threads. Other handles fail with `Error::Closed` afterwards.
    pub fn close(self) -> Result<()> {
        self.inner.shutdown()
    }
}

/// A terminal record read back by [`Wal::read_terminal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    pub kind: Kind,
    pub lsn: Lsn,
    /// Aligned, so that an rkyv payload can be accessed in place.
    pub payload: crate::Aligned,
}

impl Inner {
    fn shutdown(&self) -> Result<()> {
        let shared = &self.shared;
        if shared.mark.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        shared.kick_flusher(true);
        {
            let _g = lock(&shared.wake);
            shared.truncator_cv.notify_all();
        }
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
        // Seal and sync whatever is left, unless the WAL already failed.
        if let Some(e) = shared.mark.failure.get() {
            return Err(Error::Poisoned(Arc::new(e.clone())));
        }
        {
            let mut w = lock(&shared.writer);
            if let Err(WriteError::Refused(e) | WriteError::Failed(e)) = w.seal_active() {
                shared.poison(e.clone());
                return Err(e);
            }
        }
        if shared.config.sync != SyncMode::None {
            shared.sync_once()?;
        }
        // Everything is synced: the manifest vouches for it, so that damage
        // to the last batches is not taken for a torn tail later.
        let synced = shared.mark.synced.load(Ordering::Acquire);
        shared.update_manifest(|m| m.durable_lsn = m.durable_lsn.max(synced))?;
        shared.mark.wake_waiters();
        Ok(())
    }
}

/// Replaces the directory's manifest with `manifest`, durably.
fn write_manifest(storage: &dyn Storage, manifest: &Manifest) -> Result<()> {
    storage
        .replace(
            manifest::MANIFEST,
            manifest::MANIFEST_TMP,
            &manifest.encode(),
        )
        .map_err(|e| {
            let path = storage.path(manifest::MANIFEST);
            Error::io(format!("writing {}", path.display()), e)
        })
}

/// Tells the operator what recovery cut and dropped.
fn log_recovery(report: &RecoveryReport) {
    if let Some(tail) = &report.torn_tail {
        tracing::warn!(
            path = %tail.path.display(),
            offset = tail.offset,
            partial_records = tail.records(),
            "cut a torn tail (the unsynced end of the log when it stopped): {}",
            tail.what
        );
    }
    for d in &report.damage {
        let keys = if d.keys_complete {
            format!("the keys of all {} are known", d.records())
        } else {
            format!(
                "{} keys are known, not all (the bytes are gone or unreadable)",
                d.keys.len()
            )
        };
        tracing::error!(
            path = %d.path.display(),
            offset = d.offset,
            "dropped damaged WAL records (skip-damaged): {}; {keys}",
            d.what
        );
    }
    for d in &report.skipped_before {
        tracing::warn!(
            path = %d.path.display(),
            offset = d.offset,
            "records an earlier start dropped as damaged stay dropped: {}",
            d.what
        );
    }
}

/// Reads the WAL in `dir` without changing anything on disk: no file is
/// created, grown, written, renamed or removed, not even the lock file, and
/// damage does not stop it. The report says what `Wal::open` would find:
/// the torn tail it would cut, the damage it would refuse (or drop, with
/// `skip_damaged`). The records are those `Wal::open` would hand back with
/// `skip_damaged`. Fails while a WAL has `dir` open, on I/O errors, and on
/// segments of a format this build cannot read (format 1 it reads).
pub fn check(dir: impl AsRef<Path>, config: &Config) -> Result<Recovered> {
    let dir = dir.as_ref();
    let storage: Arc<dyn Storage> = Arc::new(
        FsStorage::read_only(dir)
            .map_err(|e| Error::io(format!("opening {}", dir.display()), e))?,
    );
    let mut recovery = recover(storage.as_ref(), config, Mode::Check)?;
    recovery.recovered.hold(storage);
    Ok(recovery.recovered)
}

/// The largest segment size (`Config::segment_bytes`) the WAL in `dir` was
/// written with, read from its segment headers without opening it; `None`
/// when it has no readable segment. Segments grow up to that size, so the
/// files' own lengths may be smaller.
pub fn segment_bytes_of(dir: impl AsRef<Path>) -> Option<u64> {
    use std::io::Read;
    std::fs::read_dir(dir.as_ref())
        .ok()?
        .filter_map(std::result::Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| format::parse_segment_name(n).is_some())
        })
        .filter_map(|e| {
            let mut header = [0u8; format::HEADER_LEN as usize];
            std::fs::File::open(e.path())
                .and_then(|mut f| f.read_exact(&mut header))
                .ok()?;
            format::SegmentHeader::decode(&header).ok()
        })
        .map(|h| h.largest())
        .max()
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "closing the WAL failed");
        }
    }
}

impl Shared {
    fn pending<'a>(&self, entry: BatchEntry, payload: &'a [u8], now: u32) -> Result<Pending<'a>> {
        let max = if entry.terminal {
            self.config.max_terminal_bytes()
        } else {
            self.config.max_record_bytes.get() as usize
        };
        if payload.len() > max {
            return Err(Error::RecordTooLarge {
                len: payload.len(),
                max,
            });
        }
        if entry.kind.is_reserved() {
            return Err(Error::ReservedKind(entry.kind.get()));
        }
        Ok(Pending {
            entry,
            payload,
            flags: if entry.terminal {
                format::FLAG_TERMINAL
            } else {
                0
            },
            time_secs: now,
            is_log: self.config.is_log_kind(entry.kind),
        })
    }

    pub(crate) fn write(&self, records: &[Pending<'_>]) -> Result<Lsn> {
        let mut w = lock(&self.writer);
        let last = self.append_locked(&mut w, records)?;
        let warmed = w.warmed();
        let rolled = std::mem::take(&mut w.rolled);
        drop(w);
        self.after_append(rolled || warmed);
        Ok(Lsn::new(last))
    }

    /// Appends under a held writer lock; returns the last LSN.
    pub(crate) fn append_locked(&self, w: &mut Writer, records: &[Pending<'_>]) -> Result<u64> {
        if let Some(e) = self.mark.failure.get() {
            return Err(Error::Poisoned(Arc::new(e.clone())));
        }
        if self.mark.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let durable = self.mark.synced.load(Ordering::Acquire);
        let last = match w.write_batch(self.storage.as_ref(), records, durable) {
            Ok(last) => last,
            Err(WriteError::Refused(e)) => {
                if e.is_disk_full() && !self.out_of_space.swap(true, Ordering::AcqRel) {
                    tracing::error!(error = %e, "the WAL is out of disk space");
                    // The truncator retries making room at its next pass.
                    let _g = lock(&self.wake);
                    self.truncator_cv.notify_all();
                }
                return Err(e);
            }
            Err(WriteError::Failed(e)) => {
                self.poison(e.clone());
                return Err(e);
            }
        };
        self.mark.written.store(last, Ordering::Release);
        Ok(last)
    }

    /// Wakes the flusher, and the truncator when a segment filled up (or
    /// the WAL became warm: it makes the spares).
    pub(crate) fn after_append(&self, rolled: bool) {
        if rolled {
            let _g = lock(&self.wake);
            self.truncator_cv.notify_all();
        }
        if self.config.sync == SyncMode::Sync {
            if self.holding.load(Ordering::SeqCst) {
                self.held_kick.store(true, Ordering::SeqCst);
                // Released meanwhile: its `release_syncs` may have looked
                // before the store above, so wake the flusher here.
                if self.holding.load(Ordering::SeqCst) {
                    return;
                }
            }
            self.kick_flusher(false);
        }
    }

    pub(crate) fn has_failed(&self) -> bool {
        self.mark.failure.get().is_some()
    }

    /// Sleeps until the next truncation pass is due; false when closing.
    pub(crate) fn wait_truncator(&self) -> bool {
        let g = lock(&self.wake);
        if self.mark.closed.load(Ordering::Acquire) || self.has_failed() {
            return false;
        }
        let _ = self
            .truncator_cv
            .wait_timeout(g, self.config.truncate_interval)
            .unwrap_or_else(|p| p.into_inner());
        !self.mark.closed.load(Ordering::Acquire) && !self.has_failed()
    }

    /// Wakes the flusher if it sleeps (or always, when `force`).
    fn kick_flusher(&self, force: bool) {
        if force || self.flusher_idle.load(Ordering::Acquire) {
            let _g = lock(&self.wake);
            if force {
                self.flush_requested.store(true, Ordering::Release);
            }
            self.flusher_idle.store(false, Ordering::Release);
            self.flusher_cv.notify_all();
        }
    }

    /// Changes the manifest and writes it (durably) before anything relies
    /// on the change.
    pub(crate) fn update_manifest(&self, change: impl FnOnce(&mut Manifest)) -> Result<()> {
        let mut m = lock(&self.manifest);
        let mut next = m.clone();
        change(&mut next);
        if next != *m {
            write_manifest(self.storage.as_ref(), &next)?;
            *m = next;
        }
        Ok(())
    }

    /// The last LSN a sync covered (whatever the mode).
    pub(crate) fn synced_lsn(&self) -> u64 {
        self.mark.synced.load(Ordering::Acquire)
    }

    pub(crate) fn poison(&self, e: Error) {
        tracing::error!(error = %e, "WAL failed; no more appends");
        let _ = self.mark.failure.set(e);
        self.mark.wake_waiters();
    }

    /// The last LSN actually on disk; truncation never deletes records that
    /// a not-yet-durable terminal record killed. In `None` mode nothing is
    /// ever synced, so everything written counts.
    pub(crate) fn stable(&self) -> u64 {
        match self.config.sync {
            SyncMode::None => self.mark.written.load(Ordering::Acquire),
            _ => self.mark.synced.load(Ordering::Acquire),
        }
    }

    /// Syncs everything appended so far; advances the synced LSN.
    pub(crate) fn sync_once(&self) -> Result<()> {
        let _syncing = lock(&self.syncing);
        self.sync_locked()
    }

    /// `sync_once` with `syncing` held.
    fn sync_locked(&self) -> Result<()> {
        let (ranges, sealed, dir, target) = lock(&self.writer).take_unsynced();
        if target <= self.mark.synced.load(Ordering::Acquire) && ranges.is_empty() && !dir {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let bytes: u64 = ranges.iter().map(|(_, from, to)| to - from).sum();
        let mut result = Ok(());
        if dir {
            result = self
                .storage
                .sync_dir()
                .map_err(|e| Error::io("syncing the WAL directory", e));
        }
        for (file, from, to) in &ranges {
            if result.is_err() {
                break;
            }
            result = file
                .sync(*from, to - from)
                .map_err(|e| Error::io("syncing a segment", e));
        }
        if result.is_ok() {
            // A sealed segment, now durable, is never written again: its
            // pages need not stay in this process's memory.
            for (file, _, _) in &ranges[..sealed] {
                file.release();
            }
        }
        if let Err(e) = result {
            // fsync failures are not retryable: the page cache may have
            // dropped the dirty pages. Stop accepting writes.
            self.poison(e.clone());
            return Err(e);
        }
        self.mark.synced.fetch_max(target, Ordering::AcqRel);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let took = started.elapsed();
        self.synced_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.sync_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = SYNC_BUCKETS_MICROS.iter().position(|&le| micros <= le) {
            self.sync_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.mark.wake_waiters();
        Ok(())
    }
}

/// The flusher thread: group commit.
fn flusher(shared: &Shared) {
    let interval = match shared.config.sync {
        SyncMode::Interval(p) => Some(p),
        _ => None,
    };
    loop {
        if shared.mark.failure.get().is_some() {
            return;
        }
        let closing = shared.mark.closed.load(Ordering::Acquire);
        let behind = shared.mark.written.load(Ordering::Acquire)
            > shared.mark.synced.load(Ordering::Acquire);
        if closing {
            let _ = shared.sync_once();
            return;
        }
        match interval {
            Some(period) => {
                let g = lock(&shared.wake);
                if !shared.flush_requested.swap(false, Ordering::AcqRel) {
                    let _g = shared
                        .flusher_cv
                        .wait_timeout(g, period)
                        .unwrap_or_else(|p| p.into_inner());
                    shared.flush_requested.store(false, Ordering::Release);
                }
                if shared.mark.closed.load(Ordering::Acquire) {
                    continue;
                }
                let _ = shared.sync_once();
            }
            None if behind => {
                let delay = shared.config.group_commit_delay;
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                let _ = shared.sync_once();
            }
            None => {
                let g = lock(&shared.wake);
                shared.flusher_idle.store(true, Ordering::Release);
                // Re-check under the lock: an append may have slipped in.
                if shared.mark.written.load(Ordering::Acquire)
                    > shared.mark.synced.load(Ordering::Acquire)
                    || shared.mark.closed.load(Ordering::Acquire)
                {
                    shared.flusher_idle.store(false, Ordering::Release);
                    continue;
                }
                let _ = shared
                    .flusher_cv
                    .wait_timeout(g, Duration::from_millis(100))
                    .unwrap_or_else(|p| p.into_inner());
                shared.flusher_idle.store(false, Ordering::Release);
            }
        }
    }
}

/// Where durability stands, apart from the rest of the WAL so that
/// [`Ticket`]s can outlive it.
#[derive(Debug)]
struct Watermark {
    sync: SyncMode,
    /// Last LSN whose batch is complete in the map.
    written: AtomicU64,
    /// Last LSN a sync covered.
    synced: AtomicU64,
    failure: OnceLock<Error>,
    closed: AtomicBool,
    waiters: Mutex<Vec<(u64, Waker)>>,
    waiters_cv: Condvar,
}

impl Watermark {
    /// The last LSN callers may treat as durable under the sync mode.
    fn acknowledged(&self) -> u64 {
        match self.sync {
            SyncMode::Sync => self.synced.load(Ordering::Acquire),
            SyncMode::Interval(_) | SyncMode::None => self.written.load(Ordering::Acquire),
        }
    }

    fn check_durable(&self, lsn: u64) -> Option<Result<()>> {
        if self.acknowledged() >= lsn {
            return Some(Ok(()));
        }
        if let Some(e) = self.failure.get() {
            return Some(Err(Error::Poisoned(Arc::new(e.clone()))));
        }
        let last = self.written.load(Ordering::Acquire);
        if lsn > last {
            return Some(Err(Error::UnknownLsn { lsn, last }));
        }
        if self.closed.load(Ordering::Acquire) {
            return Some(Err(Error::Closed));
        }
        None
    }

    fn wake_waiters(&self) {
        let ready: Vec<Waker> = {
            let mut waiters = lock(&self.waiters);
            let done = self.acknowledged();
            let failed = self.failure.get().is_some() || self.closed.load(Ordering::Acquire);
            let mut ready = Vec::new();
            waiters.retain(|(lsn, w)| {
                if *lsn <= done || failed {
                    ready.push(w.clone());
                    false
                } else {
                    true
                }
            });
            self.waiters_cv.notify_all();
            ready
        };
        for w in ready {
            w.wake();
        }
    }
}

/// One LSN's durability: wait for it, poll it, or await it. Cheap to clone,
/// and it keeps none of the WAL's files or threads alive.
#[derive(Debug, Clone)]
pub struct Ticket {
    mark: Arc<Watermark>,
    lsn: u64,
}

impl Ticket {
    pub fn lsn(&self) -> Lsn {
        Lsn::new(self.lsn)
    }

    /// Blocks until the LSN is durable; see [`Wal::durable`].
    pub fn durable(&self) -> Result<()> {
        if let Some(r) = self.mark.check_durable(self.lsn) {
            return r;
        }
        let mut guard = lock(&self.mark.waiters);
        loop {
            if let Some(r) = self.mark.check_durable(self.lsn) {
                return r;
            }
            guard = self
                .mark
                .waiters_cv
                .wait(guard)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Whether the LSN is durable, without waiting; see [`Wal::poll_durable`].
    pub fn poll_durable(&self) -> Option<Result<()>> {
        self.mark.check_durable(self.lsn)
    }

    /// Resolves when the LSN is durable; see [`Wal::wait_durable`].
    pub fn wait_durable(&self) -> Durable {
        Durable {
            mark: Arc::clone(&self.mark),
            lsn: self.lsn,
        }
    }
}

/// Resolves when its LSN is durable; see `Wal::wait_durable`.
#[derive(Debug)]
pub struct Durable {
    mark: Arc<Watermark>,
    lsn: u64,
}

impl Future for Durable {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let Some(r) = self.mark.check_durable(self.lsn) {
            return Poll::Ready(r);
        }
        let mut waiters = lock(&self.mark.waiters);
        // Re-check under the lock the flusher takes to wake us.
        if let Some(r) = self.mark.check_durable(self.lsn) {
            return Poll::Ready(r);
        }
        if let Some(slot) = waiters
            .iter_mut()
            .find(|(l, w)| *l == self.lsn && w.will_wake(cx.waker()))
        {
            slot.1 = cx.waker().clone();
        } else {
            waiters.push((self.lsn, cx.waker().clone()));
        }
        Poll::Pending
    }
}
