//! A log made at its first write (the KV store's, the log store's, the metric
//! store's): a store that is never written costs no file, no mapping and no
//! thread.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use peregrine_wal::Wal;

/// A WAL that exists, or is to be made in a folder, or is not kept at all.
pub(crate) struct LazyLog {
    wal: OnceLock<Wal>,
    /// Where to make it, when it does not exist yet.
    deferred: Option<(PathBuf, peregrine_wal::Config)>,
    /// Making it failed, for [`LazyLog::or_memory`]: not tried again.
    unmade: AtomicBool,
}

impl LazyLog {
    /// Nothing kept on disk.
    pub(crate) fn none() -> Self {
        Self {
            wal: OnceLock::new(),
            deferred: None,
            unmade: AtomicBool::new(false),
        }
    }

    /// A log already open.
    pub(crate) fn open(wal: Wal) -> Self {
        let log = Self::none();
        let _ = log.wal.set(wal);
        log
    }

    /// A log to make in `dir`, with `config`, at the first write.
    pub(crate) fn deferred(dir: PathBuf, config: peregrine_wal::Config) -> Self {
        Self {
            wal: OnceLock::new(),
            deferred: Some((dir, config)),
            unmade: AtomicBool::new(false),
        }
    }

    /// Whether what is written is kept on disk.
    pub(crate) fn is_durable(&self) -> bool {
        self.wal.get().is_some() || self.deferred.is_some()
    }

    /// The log, if it exists.
    pub(crate) fn get(&self) -> Option<&Wal> {
        self.wal.get()
    }

    /// The log to write to (none: nothing is kept), made now if it is
    /// deferred. Its callers write under a lock of their own, so it is
    /// made once.
    pub(crate) fn for_writing(&self) -> Result<Option<&Wal>, String> {
        if let Some(wal) = self.wal.get() {
            return Ok(Some(wal));
        }
        let Some((dir, config)) = &self.deferred else {
            return Ok(None);
        };
        let (wal, _) = Wal::open(dir, config.clone())
            .map_err(|e| format!("the log cannot be made in {}: {e}", dir.display()))?;
        Ok(Some(self.wal.get_or_init(|| wal)))
    }

    /// The log to write to, as [`LazyLog::for_writing`], for a store that
    /// keeps `what` in memory when its log cannot be made: that is logged
    /// once, and not tried again (rather than at every write).
    pub(crate) fn or_memory(&self, what: &str) -> Option<&Wal> {
        if self.unmade.load(Ordering::Relaxed) {
            return None;
        }
        match self.for_writing() {
            Ok(wal) => wal,
            Err(e) => {
                self.unmade.store(true, Ordering::Relaxed);
                tracing::error!("{what} are kept in memory only: {e}");
                None
            }
        }
    }
}

/// The WAL settings of a store's log over `base`: records of `kind`
/// expire after `retention`, and none is terminal for long.
pub(crate) fn expiring(
    base: peregrine_wal::Config,
    kind: peregrine_wal::Kind,
    retention: std::time::Duration,
) -> peregrine_wal::Config {
    peregrine_wal::Config {
        log_kinds: vec![kind],
        log_retention: retention,
        terminal_retention: None,
        ..base
    }
}
