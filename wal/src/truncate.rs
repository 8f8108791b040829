//! Background truncation. A sealed segment goes once nothing in it is live:
//! its records were all killed by durable terminal records, its log records
//! are dead or past `log_retention`, and its terminal records have expired
//! or were copied forward (and the copies are durable). A gone segment's
//! file is recycled as a spare or deleted, once the manifest says that its
//! LSNs were truncated (so that recovery never takes the gap it leaves for
//! a missing segment). The pass takes the writer lock
//! only for short bookkeeping steps and for appending at most
//! `COPY_CHUNK` copies at a time, so appends never wait long.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::format::{self, Frame};
use crate::io::SegmentFile;
use crate::record::{BatchEntry, Key, Kind, expired, now_secs};
use crate::wal::Shared;
use crate::writer::{FORGOTTEN, Pending, SegmentMeta, TerminalLoc, Writer};

/// Copies appended per writer-lock hold, at most.
const COPY_CHUNK: usize = 256;
/// Bytes of copies appended per writer-lock hold, at most (or one copy).
const COPY_BYTES: u64 = 1 << 20;
/// Terminal records examined per writer-lock hold.
const KEYS_PER_LOCK: usize = 1024;

fn lock(shared: &Shared) -> MutexGuard<'_, Writer> {
    shared.writer.lock().unwrap_or_else(|p| p.into_inner())
}

/// The truncator thread.
pub(crate) fn truncator(shared: &Shared) {
    refill_spares(shared);
    loop {
        if !shared.wait_truncator() {
            return;
        }
        match run_once(shared) {
            Ok(()) => {}
            Err(e @ Error::Damaged { .. }) => {
                tracing::error!(error = %e, "WAL truncation found damage");
            }
            Err(e) => {
                tracing::warn!(error = %e, "WAL truncation pass failed");
                // A full disk fails the pass early: spares are still asked
                // for, so that `out_of_space` is raised, and cleared once
                // space returns.
                refill_spares(shared);
            }
        }
    }
}

type Copies = Vec<(Key, TerminalLoc)>;

/// A segment is compacted (its live terminal records copied forward) only
/// while they fill at most this fraction of it; fuller segments wait for
/// their terminal records to expire or be replaced, so that copies of copies
/// do not churn.
const COPY_MAX_LIVE_PERCENT: u64 = 50;

/// One truncation pass.
pub(crate) fn run_once(shared: &Shared) -> Result<()> {
    let _pass = shared.truncating.lock().unwrap_or_else(|p| p.into_inner());
    if shared.has_failed() {
        return Ok(());
    }
    let config = &shared.config;
    let now = now_secs();
    let stable = shared.stable();
    keep_to_budgets(shared);
    // Base, end LSN and bookkeeping of each segment to drop.
    let mut to_drop: Vec<(u64, u64, SegmentMeta)> = Vec::new();
    let mut to_copy: Vec<(u64, Arc<dyn SegmentFile>, Copies)> = Vec::new();
    let bases: Vec<u64> = {
        let w = lock(shared);
        let active = w.active.base;
        w.segments
            .keys()
            .copied()
            .filter(|b| *b != active)
            .collect()
    };
    // In LSN order, so that a segment holding records killed by a terminal
    // record is gone before that record's expiry is decided.
    for base in bases {
        let mut w = lock(shared);
        let Some(m) = w.segments.get(&base) else {
            continue;
        };
        let Some(end) = m.end_lsn else { continue };
        if end.saturating_sub(1) > stable || m.max_kill_lsn > stable {
            continue;
        }
        if let Some(after) = m.drop_after {
            if m.live_records > 0 || m.live_terminals > 0 {
                // A key was reopened, or a copy was skipped: look again.
                if let Some(m) = w.segments.get_mut(&base) {
                    m.drop_after = None;
                }
            } else if after <= stable {
                to_drop.extend(w.segments.remove(&base).map(|m| (base, end, m)));
            }
            continue;
        }
        let logs_dead = m.live_logs == 0 || expired(m.log_max_time, config.log_retention, now);
        if m.live_records > 0 || !logs_dead {
            continue;
        }
        let file = m.file.clone();
        let keys = w
            .segments
            .get_mut(&base)
            .map(|m| std::mem::take(&mut m.terminal_keys))
            .unwrap_or_default();
        drop(w);
        let mut copies = Vec::new();
        // Bounded lock holds: a segment may hold many thousand terminals.
        for chunk in keys.chunks(KEYS_PER_LOCK) {
            let mut w = lock(shared);
            for &key in chunk {
                let Some(loc) = w.index.get(&key).and_then(|l| l.terminal()) else {
                    continue;
                };
                if loc.base != base {
                    continue;
                }
                let expires = loc.time_secs == FORGOTTEN
                    || config
                        .terminal_retention
                        .is_some_and(|r| expired(loc.time_secs, r, now));
                if expires && w.may_expire(key) {
                    w.expire_terminal(key);
                } else {
                    copies.push((key, loc));
                }
            }
        }
        let mut w = lock(shared);
        let Some(m) = w.segments.get_mut(&base) else {
            continue;
        };
        let capacity = m.file.len();
        // No terminal record is appended to a sealed segment, but while the
        // lock was released a key may have been reopened, turning its
        // terminal record here into a live record: then the segment stays.
        // Some of `copies` may also have been replaced meanwhile; the copy
        // step checks again under the lock.
        m.terminal_keys = copies.iter().map(|(k, _)| *k).collect();
        if m.live_records > 0 {
            continue;
        }
        if copies.is_empty() {
            to_drop.extend(w.segments.remove(&base).map(|m| (base, end, m)));
        } else if m.live_terminal_bytes * 100 <= capacity * COPY_MAX_LIVE_PERCENT {
            to_copy.push((base, file, copies));
        }
    }

    // Drop first: dropping can let terminal records of later segments
    // expire on the next pass instead of being copied.
    drop_segments(shared, to_drop)?;
    for (base, file, copies) in to_copy {
        let last = copy_forward(shared, base, file, &copies)?;
        if let Some(m) = lock(shared).segments.get_mut(&base) {
            m.drop_after = Some(last);
        }
    }
    refill_spares(shared);
    Ok(())
}

/// While the terminal records kept are over `terminal_max_count` or
/// `terminal_max_bytes`, lets the oldest go ([`Writer::forget`]), by append
/// second: every one older than the cutting second, then of that second as
/// many as it takes, in segment order. The pass that follows drops them
/// rather than copying them forward, as if their retention had ended.
fn keep_to_budgets(shared: &Shared) {
    let config = &shared.config;
    if config.terminal_max_count.is_none() && config.terminal_max_bytes.is_none() {
        return;
    }
    let over = |w: &Writer| config.over_terminal_budgets(w.retained.count, w.retained.bytes);
    let (cutoff, bases) = {
        let w = lock(shared);
        let Some(cutoff) = w
            .retained
            .cutoff(|count, bytes| config.over_terminal_budgets(count, bytes))
        else {
            return;
        };
        let bases: Vec<u64> = w
            .segments
            .iter()
            .filter(|(_, m)| m.min_terminal_time <= cutoff)
            .map(|(base, _)| *base)
            .collect();
        (cutoff, bases)
    };
    for older in [true, false] {
        for &base in &bases {
            let mut at = 0;
            loop {
                // Bounded lock holds: a segment may hold many thousand
                // terminal records. Only this pass replaces a segment's
                // keys; appends only add to the active one's.
                let mut w = lock(shared);
                if !older && !over(&w) {
                    return;
                }
                let Some(m) = w.segments.get(&base) else {
                    break;
                };
                let chunk: Vec<Key> = m
                    .terminal_keys
                    .iter()
                    .skip(at)
                    .take(KEYS_PER_LOCK)
                    .copied()
                    .collect();
                if chunk.is_empty() {
                    break;
                }
                at += chunk.len();
                for key in chunk {
                    let Some(loc) = w.index.get(&key).and_then(|l| l.terminal()) else {
                        continue;
                    };
                    if loc.base != base || loc.time_secs == FORGOTTEN {
                        continue;
                    }
                    let goes = if older {
                        loc.time_secs < cutoff
                    } else {
                        loc.time_secs == cutoff && over(&w)
                    };
                    if goes {
                        w.forget(key);
                    }
                }
            }
        }
    }
}

/// Re-appends the still-current terminal records among `copies` from the
/// segment at `base`. Returns the last LSN written (or the current one).
fn copy_forward(
    shared: &Shared,
    base: u64,
    file: Arc<dyn SegmentFile>,
    copies: &Copies,
) -> Result<u64> {
    let image = file
        .image()
        .map_err(|e| Error::io("reading a segment to copy forward", e))?;
    let bytes = image.as_slice();
    let seed = format::seed(base);
    let damaged = |loc: &TerminalLoc| {
        Error::damaged(
            shared.storage.path(&format::segment_name(base)),
            loc.offset,
            "a terminal record to copy forward no longer verifies",
        )
    };
    let mut last = 0;
    let mut left = &copies[..];
    while !left.is_empty() {
        // Verify and slice outside the lock; a terminal record spanning
        // frames is joined (and split again by the append). A batch holds
        // at most `COPY_CHUNK` records of `COPY_BYTES` (or one larger).
        let mut found = Vec::new();
        let mut size = 0u64;
        while let Some(((key, loc), rest)) = left.split_first() {
            if found.len() == COPY_CHUNK || (size >= COPY_BYTES && !found.is_empty()) {
                break;
            }
            left = rest;
            let Frame::Record { header, .. } =
                format::parse_frame(bytes, loc.offset as usize, seed)
            else {
                return Err(damaged(loc));
            };
            let start = (loc.offset + format::FRAME_HEADER_LEN) as usize;
            let payload: Cow<'_, [u8]> = if header.flags & format::FLAG_CONTINUES == 0 {
                Cow::Borrowed(&bytes[start..start + header.len as usize])
            } else {
                let at = bytes.get(loc.offset as usize..).unwrap_or(&[]);
                let (_, joined) =
                    format::read_span(at, seed, key.space(), key.id()).map_err(|_| damaged(loc))?;
                Cow::Owned(joined.to_vec())
            };
            size += format::frame_len(payload.len());
            found.push((*key, *loc, header, payload));
        }
        let mut w = lock(shared);
        // Copy only what is still the key's newest record.
        let pending: Vec<Pending<'_>> = found
            .iter()
            .filter(|(key, loc, _, _)| {
                w.index
                    .get(key)
                    .is_some_and(|l| l.terminal() == Some(*loc) && !l.has_records())
            })
            .map(|(key, loc, header, payload)| Pending {
                entry: BatchEntry {
                    kind: Kind::new(header.kind),
                    key: *key,
                    terminal: true,
                    start: 0,
                    len: payload.len(),
                },
                payload: payload.as_ref(),
                flags: format::FLAG_TERMINAL | format::FLAG_COPIED,
                // A forgotten record that must still be copied (records it
                // killed are left) stays forgotten in its copy.
                time_secs: if loc.time_secs == FORGOTTEN {
                    FORGOTTEN
                } else {
                    header.time_secs
                },
                is_log: false,
            })
            .collect();
        if pending.is_empty() {
            last = last.max(w.next_lsn - 1);
            continue;
        }
        last = shared.append_locked(&mut w, &pending)?;
        drop(w);
        shared.after_append(false);
    }
    Ok(last)
}

/// Recycles or deletes the files of dropped segments. The manifest first
/// records their LSNs as truncated: from then on recovery reads none of
/// them (a file a crash leaves behind is removed unread), so an older
/// segment holding records that a dropped terminal record killed can never
/// come back to life, and the gaps they leave are never taken for damage.
fn drop_segments(shared: &Shared, metas: Vec<(u64, u64, SegmentMeta)>) -> Result<()> {
    if metas.is_empty() {
        return Ok(());
    }
    let config = &shared.config;
    let synced = shared.synced_lsn();
    let recorded = shared.update_manifest(|m| {
        for (base, end, _) in &metas {
            m.truncated.insert(*base, *end);
        }
        m.durable_lsn = m.durable_lsn.max(synced);
    });
    if let Err(e) = recorded {
        // Nothing was removed: the segments go back, for a later pass.
        let mut w = lock(shared);
        for (base, _, meta) in metas {
            w.segments.insert(base, meta);
        }
        return Err(e);
    }
    for (_, _, meta) in metas {
        let spare = {
            let mut w = lock(shared);
            // Only a file at least the size the next segment is made with:
            // a smaller one, of a WAL still growing, would never be taken.
            let recycle = Arc::strong_count(&meta.file) == 1
                && meta.file.len() >= w.next_capacity(0)
                && w.spares.len() < config.spare_segments;
            recycle.then(|| {
                let id = w.next_spare_id;
                w.next_spare_id += 1;
                format::spare_name(id)
            })
        };
        match spare {
            Some(spare) => {
                shared.storage.rename(&meta.name, &spare).map_err(|e| {
                    let path = shared.storage.path(&meta.name);
                    Error::io(format!("recycling {}", path.display()), e)
                })?;
                meta.file.prefault();
                lock(shared).spares.push((spare, meta.file));
            }
            None => {
                let name = meta.name.clone();
                drop(meta);
                shared.storage.remove(&name).map_err(|e| {
                    let path = shared.storage.path(&name);
                    Error::io(format!("removing {}", path.display()), e)
                })?;
            }
        }
    }
    shared
        .storage
        .sync_dir()
        .map_err(|e| Error::io("syncing the WAL directory", e))
}

/// Preallocates spares, of the size the next segment is made with, so that
/// rolling never creates a file on the append path; spares smaller than
/// that, which the writer would no longer take, are removed. A full disk
/// here is only logged: the writer reports it if it ever needs a file and
/// none is ready. While the WAL is out of space, one spare is made even if
/// none are configured: only a file made says that there is room again.
fn refill_spares(shared: &Shared) {
    remove_small_spares(shared);
    loop {
        let (id, size) = {
            let mut w = lock(shared);
            let out = shared.out_of_space.load(Ordering::Acquire);
            // A WAL hardly used has none (see `Writer::warm`).
            let configured = if w.warm {
                shared.config.spare_segments
            } else {
                0
            };
            let wanted = configured.max(usize::from(out));
            if w.spares.len() >= wanted {
                shared.out_of_space.store(false, Ordering::Release);
                return;
            }
            let id = w.next_spare_id;
            w.next_spare_id += 1;
            (id, w.next_capacity(0))
        };
        let name = format::spare_name(id);
        match shared.storage.create(&name, size, true) {
            Ok(file) => {
                file.prefault();
                lock(shared).spares.push((name, file));
                shared.out_of_space.store(false, Ordering::Release);
            }
            Err(e) => {
                let full = crate::error::is_disk_full(&e);
                if full && lock(shared).spares.is_empty() {
                    if !shared.out_of_space.swap(true, Ordering::AcqRel) {
                        tracing::error!(error = %e, "the WAL is out of disk space");
                    }
                } else {
                    tracing::warn!(error = %e, "cannot preallocate a spare WAL segment");
                }
                return;
            }
        }
    }
}

/// Removes the spares smaller than the next segment's size (made while the
/// WAL was growing). A failed removal leaves the file for the next open.
fn remove_small_spares(shared: &Shared) {
    let small: Vec<_> = {
        let mut w = lock(shared);
        let size = w.next_capacity(0);
        let (small, kept) = std::mem::take(&mut w.spares)
            .into_iter()
            .partition(|(_, file)| file.len() < size);
        w.spares = kept;
        small
    };
    for (name, file) in small {
        drop(file);
        if let Err(e) = shared.storage.remove(&name) {
            tracing::warn!(error = %e, spare = %name, "cannot remove a spare WAL segment");
        }
    }
}
