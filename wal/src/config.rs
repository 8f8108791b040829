//! WAL configuration. Every default is documented on its field; `validate`
//! rejects contradictions before anything touches the disk.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format;
use crate::record::Kind;

/// When an appended record counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Acknowledge a record only after a sync covered it. Appends that arrive
    /// while one sync is in flight share the next one (group commit).
    Sync,
    /// Sync every `period` and acknowledge at once, like Kafka's commit
    /// interval: a crash may lose up to one period of acknowledged records.
    Interval(Duration),
    /// Never sync. For tests only: nothing survives a machine crash.
    None,
}

/// Configuration of one WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Size of the largest preallocated segment file. Default 64 MiB. Must be
    /// a multiple of 4 KiB and hold at least one record of `max_record_bytes`.
    pub segment_bytes: NonZeroU64,
    /// Size of a WAL's first segment (after each open). Each later segment
    /// doubles the one before, up to `segment_bytes`, and is at least as
    /// large as the batch that starts it: a WAL hardly used holds one small
    /// file, a busy one rolls full-sized segments. Default 1 MiB. Must be a
    /// multiple of 4 KiB; above `segment_bytes`, `segment_bytes` is used.
    pub first_segment_bytes: NonZeroU64,
    /// Largest payload of one record. Default 1 MiB. Larger appends fail
    /// with `Error::RecordTooLarge`, but for terminal records, which span
    /// frames of this size up to [`Config::max_terminal_bytes`].
    pub max_record_bytes: NonZeroU32,
    /// Durability mode. Default `SyncMode::Sync`.
    pub sync: SyncMode,
    /// Group commit: how long the flusher waits, once it sees a first unsynced
    /// record, for more records before it syncs. This is the latency versus
    /// throughput knob. Default 0: the flusher syncs at once, and records
    /// appended while that sync runs share the next sync, so batches grow
    /// with load without adding latency at low load.
    pub group_commit_delay: Duration,
    /// How long a terminal record is kept (copied forward when its segment
    /// is reclaimed) after it was first appended, so that a finished
    /// execution can still be read back. `None` keeps it until a later
    /// terminal record of the same key replaces it. Default 24 hours.
    pub terminal_retention: Option<Duration>,
    /// Budgets on the terminal records kept: at most this many, taking at
    /// most this many bytes (framed). Past either, the truncator (and
    /// recovery, on open) lets the oldest go, by append second (within one
    /// second, in segment order), as if their retention had ended: they
    /// are no longer read back, and their space is reclaimed with their
    /// segments. Checked once per truncation pass, so appends may run
    /// over for up to `truncate_interval`. Default: none.
    pub terminal_max_count: Option<u64>,
    pub terminal_max_bytes: Option<u64>,
    /// High-volume record kinds (logs) with their own short retention: such
    /// a record dies when its key's terminal record is appended or when it is
    /// older than `log_retention`, whichever comes first. Default: none.
    pub log_kinds: Vec<Kind>,
    /// Retention of `log_kinds` records. Default 1 hour.
    pub log_retention: Duration,
    /// How often the background truncator looks for reclaimable segments
    /// (it also runs whenever a segment fills up). Default 1 second.
    pub truncate_interval: Duration,
    /// How many empty segment files to keep ready (recycled or preallocated)
    /// so that rolling to a new segment never allocates on the append path,
    /// once the WAL works (a segment filled up, or the active one is a
    /// quarter full): a WAL hardly used keeps none. Default 2.
    pub spare_segments: usize,
    /// Recovery option for an operator who accepts losing what is damaged:
    /// instead of failing with `Error::Damaged`, recovery drops the damaged
    /// spots, keeps everything readable around them, and reports what it
    /// dropped (`RecoveryReport::damage`, with the keys it could read). The
    /// dropped LSN ranges are written to the manifest, so later opens accept
    /// that loss without the option. Default false.
    pub skip_damaged: bool,
    /// How appends reach the segment files. Default `Writes::Mapped`.
    pub writes: Writes,
}

/// The sizes segments are made with: the first, then doubling up to the
/// largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentSizes {
    pub first: u64,
    pub max: u64,
}

impl SegmentSizes {
    /// The size of a segment that follows one of `previous` bytes (0: the
    /// first) and must hold `needed` bytes: the previous doubled (or the
    /// first size), doubled again until `needed` fits, at most `max`. A
    /// batch that even the largest segment cannot hold is refused before
    /// it comes to this.
    pub(crate) fn next(&self, previous: u64, needed: u64) -> u64 {
        let mut size = if previous == 0 {
            self.first
        } else {
            previous.saturating_mul(2)
        };
        while size < needed && size < self.max {
            size = size.saturating_mul(2);
        }
        size.min(self.max)
    }
}

/// How appends reach the segment files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Writes {
    /// Copied into a shared mapping of the segment, made durable with
    /// `msync`.
    #[default]
    Mapped,
    /// Written with `pwrite`, made durable with `fdatasync`: the pages are
    /// never written through the process's mapping, so a sync does not
    /// write-protect them (no fault at the next append).
    Pwrite,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            segment_bytes: NonZeroU64::new(64 << 20).expect("non-zero constant"),
            first_segment_bytes: NonZeroU64::new(1 << 20).expect("non-zero constant"),
            max_record_bytes: NonZeroU32::new(1 << 20).expect("non-zero constant"),
            sync: SyncMode::Sync,
            group_commit_delay: Duration::ZERO,
            terminal_retention: Some(Duration::from_secs(24 * 3600)),
            terminal_max_count: None,
            terminal_max_bytes: None,
            log_kinds: Vec::new(),
            log_retention: Duration::from_secs(3600),
            truncate_interval: Duration::from_secs(1),
            spare_segments: 2,
            skip_damaged: false,
            writes: Writes::Mapped,
        }
    }
}

impl Config {
    /// Whether `count` terminal records of `bytes` framed bytes are over
    /// `terminal_max_count` or `terminal_max_bytes`.
    pub(crate) fn over_terminal_budgets(&self, count: u64, bytes: u64) -> bool {
        self.terminal_max_count.is_some_and(|max| count > max)
            || self.terminal_max_bytes.is_some_and(|max| bytes > max)
    }

    /// The largest terminal record: past `max_record_bytes` it spans
    /// frames of that size, all in one segment, so at most what one
    /// segment holds beside its header, a commit marker and its seal.
    pub fn max_terminal_bytes(&self) -> usize {
        let part = u64::from(self.max_record_bytes.get());
        let usable = self
            .segment_bytes
            .get()
            // Its batch's commit marker, and the seal's reserved room.
            .saturating_sub(format::HEADER_LEN + 2 * format::MARKER_LEN);
        // Whole parts of `part` bytes, each framed, then what is left of
        // the room for a last, shorter part.
        let framed_part = format::frame_len(part as usize);
        let whole = usable / framed_part;
        let rest = (usable - whole * framed_part).saturating_sub(format::FRAME_HEADER_LEN);
        usize::try_from(whole * part + rest.min(part.saturating_sub(1))).unwrap_or(usize::MAX)
    }

    /// How large the segments are made.
    pub(crate) fn segment_sizes(&self) -> SegmentSizes {
        let max = self.segment_bytes.get();
        SegmentSizes {
            first: self.first_segment_bytes.get().min(max),
            max,
        }
    }

    /// Rejects settings that contradict each other or the format.
    pub fn validate(&self) -> Result<()> {
        let seg = self.segment_bytes.get();
        if !seg.is_multiple_of(4096) {
            return Err(Error::Config(format!(
                "segment-bytes ({seg}) must be a multiple of 4096"
            )));
        }
        let first = self.first_segment_bytes.get();
        if !first.is_multiple_of(4096) {
            return Err(Error::Config(format!(
                "first-segment-bytes ({first}) must be a multiple of 4096"
            )));
        }
        let max = self.max_record_bytes.get();
        if max > format::MAX_PAYLOAD {
            return Err(Error::Config(format!(
                "max-record-bytes ({max}) exceeds the format limit {}",
                format::MAX_PAYLOAD
            )));
        }
        let need = format::HEADER_LEN + format::frame_len(max as usize) + 2 * format::MARKER_LEN;
        if need > seg {
            return Err(Error::Config(format!(
                "segment-bytes ({seg}) cannot hold one record of max-record-bytes ({max}); need {need}"
            )));
        }
        if let SyncMode::Interval(p) = self.sync
            && p.is_zero()
        {
            return Err(Error::Config("sync interval must be positive".into()));
        }
        if self.sync != SyncMode::Sync && !self.group_commit_delay.is_zero() {
            return Err(Error::Config(
                "group-commit-delay only applies to sync mode `sync`".into(),
            ));
        }
        if self.group_commit_delay > Duration::from_secs(1) {
            return Err(Error::Config(
                "group-commit-delay above 1 s would stall every durable wait".into(),
            ));
        }
        if self.truncate_interval.is_zero() {
            return Err(Error::Config("truncate-interval must be positive".into()));
        }
        if let Some(k) = self.log_kinds.iter().find(|k| k.is_reserved()) {
            return Err(Error::Config(format!(
                "log kind {:#x} is reserved by the WAL",
                k.get()
            )));
        }
        Ok(())
    }

    pub(crate) fn is_log_kind(&self, kind: Kind) -> bool {
        self.log_kinds.contains(&kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        Config::default()
            .validate()
            .expect("default config is valid");
    }

    #[test]
    fn contradictions_are_rejected() {
        let mut c = Config {
            segment_bytes: NonZeroU64::new(4096).expect("non-zero"),
            ..Config::default()
        };
        assert!(
            matches!(c.validate(), Err(Error::Config(_))),
            "record larger than segment"
        );
        c.max_record_bytes = NonZeroU32::new(1024).expect("non-zero");
        c.validate().expect("small record fits");
        c.segment_bytes = NonZeroU64::new(5000).expect("non-zero");
        assert!(c.validate().is_err(), "not page-aligned");
        let c = Config {
            sync: SyncMode::Interval(Duration::ZERO),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            sync: SyncMode::None,
            group_commit_delay: Duration::from_millis(1),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            log_kinds: vec![Kind::new(0xFFF0)],
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
