//! A flight recorder for crash loops: the key a thread is working on,
//! kept in a small shared mapping so that it survives the process dying
//! (the page cache keeps it; a machine crash may lose it, and a machine
//! crash is not a crash loop). At the next open, a key found there was
//! being worked on when the process died; the file counts how many deaths
//! in a row found the same key, so that the caller can stop replaying what
//! keeps killing it.
//!
//! Layout (little-endian): magic `PGBB`, version 1, the key being worked
//! on (0: none), the key of the current strike run, its count.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

use memmap2::MmapMut;

const MAGIC: &[u8; 4] = b"PGBB";
const VERSION: u32 = 1;
const LEN: usize = 48;
const AT_CURRENT: usize = 8;
const AT_STRUCK: usize = 24;
const AT_STRIKES: usize = 40;

/// The key being worked on, in a file that outlives the process.
#[derive(Debug)]
pub struct Blackbox {
    map: MmapMut,
}

/// What the last deaths left: the key that was being worked on, and how
/// many deaths in a row found that key (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strikes {
    pub key: u128,
    pub count: u32,
}

impl Blackbox {
    /// Opens the recorder at `path` (creating it), counts a death if the
    /// last process died while working on a key, and clears the key. A
    /// clean stop, or a death while working on nothing, ends a strike run.
    pub fn open(path: &Path) -> io::Result<(Blackbox, Option<Strikes>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() != LEN as u64 {
            file.set_len(0)?;
            file.set_len(LEN as u64)?;
        }
        // SAFETY: the file is this recorder's own (in a folder the WAL's
        // lock guards), nothing else maps or resizes it while we hold it,
        // and its length was set to `LEN` above; all accesses go through
        // the slice, within bounds.
        let map = unsafe { MmapMut::map_mut(&file)? };
        let mut this = Blackbox { map };
        if &this.map[..4] != MAGIC || this.u32_at(4) != VERSION {
            this.map.fill(0);
            this.map[..4].copy_from_slice(MAGIC);
            this.map[4..8].copy_from_slice(&VERSION.to_le_bytes());
        }
        let current = this.u128_at(AT_CURRENT);
        let strikes = if current == 0 {
            None
        } else if this.u128_at(AT_STRUCK) == current {
            Some(Strikes {
                key: current,
                count: this.u32_at(AT_STRIKES).saturating_add(1),
            })
        } else {
            Some(Strikes {
                key: current,
                count: 1,
            })
        };
        let (key, count) = strikes.map_or((0, 0), |s| (s.key, s.count));
        this.map[AT_STRUCK..AT_STRUCK + 16].copy_from_slice(&key.to_le_bytes());
        this.map[AT_STRIKES..AT_STRIKES + 4].copy_from_slice(&count.to_le_bytes());
        this.clear();
        Ok((this, strikes))
    }

    /// Working on `key` (not 0) from now on.
    pub fn set(&mut self, key: u128) {
        self.map[AT_CURRENT..AT_CURRENT + 16].copy_from_slice(&key.to_le_bytes());
    }

    /// Working on nothing.
    pub fn clear(&mut self) {
        self.set(0);
    }

    fn u128_at(&self, at: usize) -> u128 {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&self.map[at..at + 16]);
        u128::from_le_bytes(bytes)
    }

    fn u32_at(&self, at: usize) -> u32 {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(&self.map[at..at + 4]);
        u32::from_le_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reopen(path: &Path) -> (Blackbox, Option<Strikes>) {
        Blackbox::open(path).expect("opens")
    }

    #[test]
    fn deaths_on_the_same_key_are_counted_in_a_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stepping");
        let (mut b, none) = reopen(&path);
        assert_eq!(none, None);
        // A death while working on 7 (the process is gone: the map stays).
        b.set(7);
        drop(b);
        let (mut b, one) = reopen(&path);
        assert_eq!(one, Some(Strikes { key: 7, count: 1 }));
        b.set(7);
        drop(b);
        let (mut b, two) = reopen(&path);
        assert_eq!(two, Some(Strikes { key: 7, count: 2 }));
        // Another key starts a new run.
        b.set(9);
        drop(b);
        let (mut b, other) = reopen(&path);
        assert_eq!(other, Some(Strikes { key: 9, count: 1 }));
        // Working on 9, done with it, then a clean stop: the run ends.
        b.set(9);
        b.clear();
        drop(b);
        let (mut b, clean) = reopen(&path);
        assert_eq!(clean, None);
        b.set(9);
        drop(b);
        assert_eq!(reopen(&path).1, Some(Strikes { key: 9, count: 1 }));
    }

    #[test]
    fn a_damaged_file_starts_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stepping");
        std::fs::write(&path, b"garbage").expect("write");
        assert_eq!(reopen(&path).1, None);
        std::fs::write(&path, [0xFFu8; LEN]).expect("write");
        assert_eq!(reopen(&path).1, None);
    }
}
