//! All file I/O goes through these two traits, so that tests can run the WAL
//! on an in-memory backend that injects torn writes, I/O errors and a full
//! disk (`mem.rs`). The real backend maps files with memmap2 (`mmap.rs`); its
//! read-only variant serves `check`, which must change nothing on disk.

use std::fmt::Debug;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::mmap::Image;

/// A directory of segment files.
pub(crate) trait Storage: Send + Sync + Debug {
    /// Names of all files in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Creates `name` with `len` bytes allocated up front (so that a full
    /// disk shows here and never as a failed write into the map). With
    /// `fill`, the blocks are also written once (slow; for spares made in
    /// the background), so that later syncs are pure data writes. Fails if
    /// the file exists.
    fn create(&self, name: &str, len: u64, fill: bool) -> io::Result<Arc<dyn SegmentFile>>;
    /// Opens an existing file for reading and writing, growing it to at
    /// least `min_len` bytes first. A read-only storage never grows a file
    /// (and refuses writes to it). An empty file that is not grown opens as
    /// an [`EmptyFile`].
    fn open(&self, name: &str, min_len: u64) -> io::Result<Arc<dyn SegmentFile>>;
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations, renames and removals durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// The whole contents of a small file (the manifest), or `None` if it
    /// does not exist.
    fn read_file(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Replaces `name` with `bytes` durably and atomically: written to `tmp`,
    /// synced, renamed over `name`, and the directory synced. After a crash
    /// `name` holds the old bytes or the new ones.
    fn replace(&self, name: &str, tmp: &str, bytes: &[u8]) -> io::Result<()>;
    /// The full path of `name`, for messages: every shard has a segment
    /// `00000000000000000001.wal`, so a bare name says nothing.
    fn path(&self, name: &str) -> PathBuf;
}

/// One open segment file. Offsets are bytes from the start of the file;
/// every access must lie within `len()`.
///
/// The WAL upholds, for every file, that a byte range is never read while it
/// is being written: the single writer (under the writer lock) only writes
/// past the range it has published, and readers only read published ranges
/// of sealed segments or the ranges recovery found. `mmap.rs` relies on this.
pub(crate) trait SegmentFile: Send + Sync + Debug {
    fn len(&self) -> u64;
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes `[offset, offset + len)` durable.
    fn sync(&self, offset: u64, len: u64) -> io::Result<()>;
    /// A read-only view of the whole file that stays valid while it lives.
    fn image(self: Arc<Self>) -> io::Result<Image>;
    /// Copies `[offset, offset + buf.len())` into `buf`: one record read
    /// back, without mapping the file's pages into the process.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Brings the file's pages into the page cache ahead of the writer
    /// (called off the append path, on spares), so that appends do not wait
    /// for the disk, without making them resident in the process. Best
    /// effort.
    fn prefault(&self);
    /// Drops the file's pages from this process's memory (they stay in the
    /// file and the page cache, and come back when read): a sealed segment
    /// is read again only by recovery and truncation. Best effort.
    fn release(&self) {}
}

/// A file of no bytes (a segment created just before a crash, or cut to
/// nothing): nothing can be mapped, nothing read or written.
#[derive(Debug)]
pub(crate) struct EmptyFile;

impl SegmentFile for EmptyFile {
    fn len(&self) -> u64 {
        0
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        Err(out_of_bounds(offset, data.len(), 0))
    }
    fn sync(&self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            Ok(())
        } else {
            Err(out_of_bounds(offset, len as usize, 0))
        }
    }
    fn image(self: Arc<Self>) -> io::Result<Image> {
        Ok(Image::owned(&[]))
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if buf.is_empty() {
            Ok(())
        } else {
            Err(out_of_bounds(offset, buf.len(), 0))
        }
    }
    fn prefault(&self) {}
}

/// The error a read-only storage gives for anything that would write.
pub(crate) fn read_only(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{what}: the WAL was opened read-only"),
    )
}

pub(crate) fn out_of_bounds(offset: u64, len: usize, file_len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("access [{offset}, +{len}) outside file of {file_len} bytes"),
    )
}

/// True if `[offset, offset + len)` lies inside a file of `file_len` bytes.
pub(crate) fn in_bounds(offset: u64, len: usize, file_len: u64) -> bool {
    offset
        .checked_add(len as u64)
        .is_some_and(|end| end <= file_len)
}
