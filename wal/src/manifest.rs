//! The manifest: what a WAL directory's segment files cannot say about
//! themselves. `wal/FORMAT.md` describes the same layout; keep the two in
//! step. All integers are little-endian.
//!
//! ```text
//! manifest = magic "PRGNMAN\0" (8) | version u16 (=2) | reserved u16
//!          | truncated count u32 | skipped count u32 | reserved u32
//!          | durable_lsn u64
//!          | (from u64, to u64) * truncated | (from u64, to u64) * skipped
//!          | crc32c(everything before) u32
//! ```
//!
//! Segment names jump wherever truncation deleted a segment, so a missing
//! segment looks like a truncated one unless something outside the segments
//! remembers which ranges truncation removed: the truncated ranges, written
//! (and synced) before the files go. An operator's `skip_damaged` adds the
//! ranges it dropped to the skipped ranges, so that later opens accept that
//! loss instead of asking again. The durable LSN is a claim like a commit
//! marker's: everything up to it had been synced when the manifest was
//! written (at open, at close, and by truncation), so damage at or below it
//! is never mistaken for a torn write, even where no later batch vouches.
//!
//! The file is replaced whole (`Storage::replace`: a temporary file, synced,
//! renamed over the old one): after a crash it is the old one or the new one.

/// The manifest's file name in the WAL directory.
pub(crate) const MANIFEST: &str = "MANIFEST";
/// Where `Storage::replace` writes a new manifest before renaming it.
pub(crate) const MANIFEST_TMP: &str = "MANIFEST.tmp";

const MAGIC: [u8; 8] = *b"PRGNMAN\0";
const FIXED_LEN: usize = 32;
/// More ranges than any directory of segments can need (each range lies
/// between two segments); a count above it means the file is damaged.
const MAX_RANGES: u32 = 1 << 20;

/// Sorted, disjoint, non-adjacent half-open LSN ranges `[from, to)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    /// Adds `[from, to)`, merging it with the ranges it touches.
    pub(crate) fn insert(&mut self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        let (mut from, mut to) = (from, to);
        let mut kept = Vec::with_capacity(self.0.len() + 1);
        for &(a, b) in &self.0 {
            if b < from || a > to {
                kept.push((a, b));
            } else {
                from = from.min(a);
                to = to.max(b);
            }
        }
        kept.push((from, to));
        kept.sort_unstable();
        self.0 = kept;
    }

    /// Whether `lsn` lies in one of the ranges.
    pub(crate) fn contains(&self, lsn: u64) -> bool {
        self.0.iter().any(|&(a, b)| a <= lsn && lsn < b)
    }

    /// The end of the last range (0 when there is none).
    pub(crate) fn end(&self) -> u64 {
        self.0.last().map_or(0, |&(_, b)| b)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Whether every LSN of `[from, to)` lies in `a` or `b`.
pub(crate) fn covered(a: &Ranges, b: &Ranges, from: u64, to: u64) -> bool {
    let mut both = a.clone();
    for (x, y) in b.iter() {
        both.insert(x, y);
    }
    from >= to || both.iter().any(|(x, y)| x <= from && to <= y)
}

/// What the manifest says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// Every LSN up to this one had been synced when the manifest was written.
    pub durable_lsn: u64,
    /// Ranges whose segments truncation removed.
    pub truncated: Ranges,
    /// Ranges lost to damage that an open with `skip_damaged` dropped.
    pub skipped: Ranges,
}

impl Manifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let ranges = self.truncated.len() + self.skipped.len();
        let mut b = Vec::with_capacity(FIXED_LEN + 16 * ranges + 4);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&crate::format::VERSION.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&(self.truncated.len() as u32).to_le_bytes());
        b.extend_from_slice(&(self.skipped.len() as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&self.durable_lsn.to_le_bytes());
        for (from, to) in self.truncated.iter().chain(self.skipped.iter()) {
            b.extend_from_slice(&from.to_le_bytes());
            b.extend_from_slice(&to.to_le_bytes());
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses a manifest; the error says what is wrong with the bytes.
    pub(crate) fn decode(b: &[u8]) -> Result<Manifest, String> {
        let word = |at: usize, n: usize| -> u64 {
            let mut w = [0u8; 8];
            w[..n].copy_from_slice(&b[at..at + n]);
            u64::from_le_bytes(w)
        };
        if b.len() < FIXED_LEN + 4 {
            return Err(format!("{} bytes is too short for a manifest", b.len()));
        }
        if b[0..8] != MAGIC {
            return Err("not a WAL manifest (bad magic)".into());
        }
        let body = &b[..b.len() - 4];
        if u64::from(crc32c::crc32c(body)) != word(b.len() - 4, 4) {
            return Err("manifest checksum mismatch".into());
        }
        let version = word(8, 2) as u16;
        if version != crate::format::VERSION && version != crate::format::VERSION_2 {
            return Err(format!("manifest format version {version}"));
        }
        let (truncated, skipped) = (word(12, 4) as u32, word(16, 4) as u32);
        if truncated > MAX_RANGES || skipped > MAX_RANGES {
            return Err("manifest range count out of range".into());
        }
        let ranges = truncated as usize + skipped as usize;
        if b.len() != FIXED_LEN + 16 * ranges + 4 {
            return Err("manifest length does not match its range counts".into());
        }
        let mut m = Manifest {
            durable_lsn: word(24, 8),
            ..Manifest::default()
        };
        for i in 0..ranges {
            let at = FIXED_LEN + 16 * i;
            let (from, to) = (word(at, 8), word(at + 8, 8));
            if from >= to {
                return Err(format!("manifest range {from}..{to} is empty"));
            }
            if i < truncated as usize {
                m.truncated.insert(from, to);
            } else {
                m.skipped.insert(from, to);
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_cover() {
        let mut r = Ranges::default();
        r.insert(10, 20);
        r.insert(30, 40);
        r.insert(20, 25); // touches [10, 20): merged
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(10, 25), (30, 40)]);
        assert!(r.contains(24) && !r.contains(25) && !r.contains(9));
        let mut s = Ranges::default();
        s.insert(25, 30);
        assert!(covered(&r, &s, 12, 38), "the union covers it");
        assert!(!covered(&r, &Ranges::default(), 12, 38), "25..30 is not");
        assert!(covered(&r, &s, 7, 7), "an empty range is covered");
        assert_eq!(r.end(), 40);
    }

    #[test]
    fn manifest_round_trips_and_refuses_damage() {
        let mut m = Manifest {
            durable_lsn: 77,
            ..Manifest::default()
        };
        m.truncated.insert(1, 10);
        m.truncated.insert(20, 30);
        m.skipped.insert(40, 41);
        let mut b = m.encode();
        assert_eq!(Manifest::decode(&b), Ok(m));
        b[25] ^= 1;
        assert!(Manifest::decode(&b).is_err(), "a flipped bit");
        assert!(Manifest::decode(&b[..20]).is_err(), "cut short");
    }
}
