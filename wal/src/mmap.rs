//! The only module with `unsafe` code: the memory-mapped segment files.
//!
//! Soundness rests on three invariants, which the rest of the crate keeps:
//! 1. We own the WAL directory: no other process writes, truncates or
//!    shrinks our files while they are mapped (documented on `Wal::open`).
//! 2. We never shrink a mapped file; `MappedFile` never calls `set_len`
//!    after mapping, and `Storage::open` grows a file before mapping it.
//! 3. No byte range is read while it is being written (`io::SegmentFile`):
//!    the single writer writes only past the published end of the active
//!    segment, and readers only read published bytes, which are immutable
//!    until the file is recycled; a file is recycled only when no `Image`
//!    of it is alive (`Arc::strong_count == 1`, checked by the truncator).
//!
//! A read-only storage (`FsStorage::read_only`, for `check`) maps files only
//! while it holds a shared lock on `LOCK`, which no open WAL lets it take:
//! then nobody writes the files (invariants 1 and 3), and it maps them
//! read-only and refuses every write, so it never writes through a map it
//! may not write. Without a `LOCK` file to lock it copies the files instead.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::MmapRaw;

use crate::io::{EmptyFile, SegmentFile, Storage, in_bounds, out_of_bounds, read_only};

/// Segment files in a directory on a real file system.
#[derive(Debug)]
pub(crate) struct FsStorage {
    dir: PathBuf,
    /// False for `read_only`: nothing on disk may change.
    writable: bool,
    /// Files may be mapped: we hold a lock on `LOCK` (exclusive when
    /// writable, shared when not), so no open WAL writes them.
    map: bool,
    /// Appends are written with `pwrite` and synced with `fdatasync`, not
    /// through the map (`Writes::Pwrite`).
    pwrite: bool,
    // Holds the lock on `LOCK` while the storage lives, so that a second
    // WAL on the same directory (invariant 1) fails to open.
    _lock: Option<File>,
}

/// The file that locks a WAL directory.
const LOCK: &str = "LOCK";
/// How long a locked directory is waited for before it is refused as in
/// use.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// `dir` as an absolute path, for messages that must say which folder
/// (every shard has the same file names); as given if that fails.
fn absolute(dir: &Path) -> PathBuf {
    fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

fn in_use(dir: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("the WAL directory {} is in use ({e})", dir.display()),
    )
}

impl FsStorage {
    pub(crate) fn new(dir: &Path, writes: crate::Writes) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))?;
        // A process forked meanwhile (a script's, by another thread) holds
        // the lock too until it execs, and its copy of the descriptor
        // closes: a moment, waited for. A WAL really in use stays refused.
        let since = std::time::Instant::now();
        while let Err(e) = lock.try_lock() {
            match e {
                fs::TryLockError::WouldBlock if since.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                e => return Err(in_use(dir, e)),
            }
        }
        Ok(FsStorage {
            dir: absolute(dir),
            writable: true,
            map: true,
            pwrite: writes == crate::Writes::Pwrite,
            _lock: Some(lock),
        })
    }

    /// The directory as it is, for reading only: nothing is created, grown,
    /// written, renamed or removed. Fails while a WAL has it open.
    pub(crate) fn read_only(dir: &Path) -> io::Result<Self> {
        if !fs::metadata(dir)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        let lock = match File::open(dir.join(LOCK)) {
            Ok(lock) => {
                if let Err(e) = lock.try_lock_shared() {
                    return Err(in_use(dir, e));
                }
                Some(lock)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(FsStorage {
            dir: absolute(dir),
            writable: false,
            map: lock.is_some(),
            pwrite: false,
            _lock: lock,
        })
    }

    fn refuse_if_read_only(&self, what: &str) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(read_only(what))
        }
    }
}

impl Storage for FsStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create(&self, name: &str, len: u64, fill: bool) -> io::Result<Arc<dyn SegmentFile>> {
        self.refuse_if_read_only("creating a file")?;
        let path = self.dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let filled = |()| if fill { zero_fill(&file, len) } else { Ok(()) };
        if let Err(e) = allocate(&file, len).and_then(filled) {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(Arc::new(MappedFile::map(file, len, true, self.pwrite)?))
    }

    fn open(&self, name: &str, min_len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(self.writable)
            .open(self.dir.join(name))?;
        let mut len = file.metadata()?.len();
        if len < min_len && self.writable {
            allocate(&file, min_len)?;
            len = min_len;
        }
        if len == 0 {
            return Ok(Arc::new(EmptyFile));
        }
        if !self.map {
            return Ok(Arc::new(CopiedFile { file, len }));
        }
        Ok(Arc::new(MappedFile::map(
            file,
            len,
            self.writable,
            self.pwrite,
        )?))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.refuse_if_read_only("renaming a file")?;
        fs::rename(self.dir.join(from), self.dir.join(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.refuse_if_read_only("removing a file")?;
        fs::remove_file(self.dir.join(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.refuse_if_read_only("syncing the directory")?;
        File::open(&self.dir)?.sync_all()
    }

    fn read_file(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        /// Far more than a manifest needs; a larger file is not one.
        const MAX_LEN: u64 = 64 << 20;
        let file = match File::open(self.dir.join(name)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len > MAX_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name} has {len} bytes, more than {MAX_LEN}"),
            ));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        io::Read::read_to_end(&mut io::Read::take(&file, MAX_LEN), &mut bytes)?;
        Ok(Some(bytes))
    }

    fn replace(&self, name: &str, tmp: &str, bytes: &[u8]) -> io::Result<()> {
        self.refuse_if_read_only("replacing a file")?;
        let tmp_path = self.dir.join(tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp_path)?;
        io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp_path, self.dir.join(name))?;
        self.sync_dir()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A file read by copying it (read-only storage without a lock to hold):
/// another process may be writing it, so it is never mapped.
#[derive(Debug)]
struct CopiedFile {
    file: File,
    len: u64,
}

impl SegmentFile for CopiedFile {
    fn len(&self) -> u64 {
        self.len
    }
    fn write_at(&self, _: u64, _: &[u8]) -> io::Result<()> {
        Err(read_only("writing a segment"))
    }
    fn sync(&self, _: u64, _: u64) -> io::Result<()> {
        Err(read_only("syncing a segment"))
    }
    fn image(self: Arc<Self>) -> io::Result<Image> {
        let mut bytes = Vec::with_capacity(self.len as usize);
        io::Read::read_to_end(&mut io::Read::take(&self.file, self.len), &mut bytes)?;
        Ok(Image::owned(&bytes))
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        read_file_at(&self.file, self.len, offset, buf)
    }
    fn prefault(&self) {}
}

/// Bytes an unprivileged process may still allocate on the file system
/// holding `path`.
pub fn free_space(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call,
    // and `stat` points to writable memory the size of a `statvfs`, which
    // the call fills in when it returns 0 (only then is it read).
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `statvfs` returned 0, so it initialised `stat`.
    let stat = unsafe { stat.assume_init() };
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Reserves disk blocks for `[0, len)`, so that writes into the map can
/// never hit a full disk (which would be a SIGBUS, not an error).
fn allocate(file: &File, len: u64) -> io::Result<()> {
    let Ok(len) = libc::off_t::try_from(len) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "file too large",
        ));
    };
    // SAFETY: `posix_fallocate` only reads its integer arguments; the file
    // descriptor is valid because `file` is borrowed for the call.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    match rc {
        0 => Ok(()),
        // File systems without fallocate: fall back to a sparse file.
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len as u64),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Writes zeros over `[0, len)` and syncs them. Blocks that were only
/// reserved (`fallocate` leaves them "unwritten") would make every later
/// sync also commit the file system's journal to convert them; written
/// blocks make a sync a pure data write. PostgreSQL zero-fills its WAL
/// segments for the same reason. Recycled files skip this.
///
/// The zeros go to the disk a chunk at a time, each written back before
/// the next is written (`sync_file_range`): written whole and synced at the
/// end, a 64 MiB spare put the active segment's syncs, on the same disk,
/// behind up to 64 MiB of write-back.
fn zero_fill(file: &File, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    const CHUNK: usize = 256 << 10;
    let zeros = vec![0u8; CHUNK];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        write_back(file, at, n as u64);
        at += n as u64;
    }
    file.sync_all()
}

/// Writes `[offset, offset + len)` of `file` back and waits for it. Best
/// effort: a file system without `sync_file_range` leaves the range to the
/// final sync, which reports any failed write-back.
fn write_back(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: `sync_file_range` touches no memory of this process; the
    // descriptor stays open for the call (`file` is borrowed).
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
}

/// `pread` of `[offset, offset + buf.len())`, within a file of `len` bytes.
fn read_file_at(file: &File, len: u64, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    if !in_bounds(offset, buf.len(), len) {
        return Err(out_of_bounds(offset, buf.len(), len));
    }
    file.read_exact_at(buf, offset)
}

/// A file mapped for its whole length: read-write, or read-only (and then
/// every write is refused before it could touch the map).
#[derive(Debug)]
struct MappedFile {
    map: MmapRaw,
    len: u64,
    writable: bool,
    /// Writes go through the file (`pwrite`), syncs are `fdatasync`: the
    /// map is only read.
    pwrite: bool,
    /// Point reads go through the file (the page cache), not the map.
    file: File,
}

impl MappedFile {
    fn map(file: File, len: u64, writable: bool, pwrite: bool) -> io::Result<Self> {
        if len == 0 || usize::try_from(len).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cannot map a file of {len} bytes"),
            ));
        }
        let map = if writable {
            MmapRaw::map_raw(&file)?
        } else {
            memmap2::MmapOptions::new().map_raw_read_only(&file)?
        };
        let len = map.len() as u64;
        Ok(MappedFile {
            map,
            len,
            writable,
            pwrite,
            file,
        })
    }
}

impl SegmentFile for MappedFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.writable {
            // The map is read-only: a write through it would fault.
            return Err(read_only("writing a segment"));
        }
        if !in_bounds(offset, data.len(), self.len) {
            return Err(out_of_bounds(offset, data.len(), self.len));
        }
        if self.pwrite {
            // Into the page cache, which the (shared) map reads too.
            return std::os::unix::fs::FileExt::write_all_at(&self.file, data, offset);
        }
        // SAFETY: bounds checked above; the mapping is writable (checked
        // above) and stays mapped while `self` lives (invariants 1 and 2);
        // only the single writer writes, and never a range anyone reads concurrently
        // (invariant 3). `data` cannot alias the map: the WAL never passes
        // slices of a map to `write_at`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.map.as_mut_ptr().add(offset as usize),
                data.len(),
            );
        }
        Ok(())
    }

    fn sync(&self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        if !self.writable {
            return Err(read_only("syncing a segment"));
        }
        if !in_bounds(offset, len as usize, self.len) {
            return Err(out_of_bounds(offset, len as usize, self.len));
        }
        if self.pwrite {
            // The whole file's dirty pages: only the unsynced tail is.
            return self.file.sync_data();
        }
        self.map.flush_range(offset as usize, len as usize)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        // Through the file, so that a point read of a sealed segment does
        // not make its pages resident in the process. The map is shared, so
        // the file reads what was written through it.
        read_file_at(&self.file, self.len, offset, buf)
    }

    fn prefault(&self) {
        // Reads the file into the page cache without mapping it: appends
        // then take only minor faults (a cached page mapped in), and a
        // spare that waits costs the process no resident memory. Populating
        // the map instead made every spare resident: 128 MiB per shard.
        if let Err(e) = self.map.advise(memmap2::Advice::WillNeed) {
            tracing::debug!(error = %e, "prefaulting a WAL segment failed");
        }
    }

    fn release(&self) {
        // SAFETY: the mapping is a shared mapping of a regular file
        // (`MmapRaw::map_raw` or `map_raw_read_only`, both MAP_SHARED), for which MADV_DONTNEED only drops this
        // process's page table entries: dirty pages stay dirty in the page
        // cache and are written back as usual, and any later access (an
        // `Image` read by the truncator) faults the file's current contents
        // back in. So no byte anyone reads or syncs changes, and no
        // reference into the map becomes invalid.
        let released = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
        if let Err(e) = released {
            tracing::debug!(error = %e, "releasing a sealed WAL segment's pages failed");
        }
    }

    fn image(self: Arc<Self>) -> io::Result<Image> {
        // Recovery reads images front to back: ask for readahead of the
        // whole file now, so the disk streams while earlier files parse.
        for advice in [memmap2::Advice::Sequential, memmap2::Advice::WillNeed] {
            if let Err(e) = self.map.advise(advice) {
                tracing::debug!(error = %e, "madvise on a WAL segment failed");
            }
        }
        let ptr = self.map.as_ptr();
        let len = self.len as usize;
        Ok(Image {
            bytes: ImageBytes::Mapped { ptr, len },
            _keep: Some(self),
        })
    }
}

/// A read-only view of a whole segment file, for recovery and for copying
/// records forward. Mapped files are viewed in place; other backends copy
/// into a 16-byte-aligned buffer so that rkyv payloads stay aligned.
pub(crate) struct Image {
    bytes: ImageBytes,
    // Keeps the mapping alive as long as `bytes` points into it.
    _keep: Option<Arc<dyn SegmentFile>>,
}

enum ImageBytes {
    Mapped { ptr: *const u8, len: usize },
    Owned { words: Vec<u128>, len: usize },
}

// SAFETY: `Mapped` points into a mapping owned by `_keep`, which is Send +
// Sync; the bytes are only read, and invariant 3 guarantees nobody writes
// them while an `Image` exists. `Owned` is plain owned memory.
unsafe impl Send for Image {}
// SAFETY: as for `Send`: shared access only ever reads immutable bytes.
unsafe impl Sync for Image {}

impl Drop for Image {
    fn drop(&mut self) {
        // Recovery and truncation read whole segments once; what they read
        // need not stay in this process's memory afterwards.
        if let Some(file) = &self._keep {
            file.release();
        }
    }
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image").field("len", &self.len()).finish()
    }
}

impl Image {
    /// Copies `bytes` into an aligned buffer.
    pub(crate) fn owned(bytes: &[u8]) -> Image {
        let mut words = vec![0u128; bytes.len().div_ceil(16)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(16)) {
            let mut b = [0u8; 16];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u128::from_ne_bytes(b);
        }
        Image {
            bytes: ImageBytes::Owned {
                words,
                len: bytes.len(),
            },
            _keep: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self.bytes {
            ImageBytes::Mapped { len, .. } | ImageBytes::Owned { len, .. } => len,
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match &self.bytes {
            // SAFETY: `ptr..ptr+len` is the whole mapping held alive by
            // `_keep` (invariants 1 and 2); its bytes are not written while
            // this image exists (invariant 3), so a shared slice is sound for
            // the lifetime of `&self`.
            ImageBytes::Mapped { ptr, len } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
            // SAFETY: `words` owns `len.div_ceil(16) * 16 >= len` initialised
            // bytes; u128 has no padding and any byte pattern is a valid u8.
            ImageBytes::Owned { words, len } => unsafe {
                std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), *len)
            },
        }
    }
}

/// Syncs `path` and asks the kernel to drop its cached pages, so that the
/// next read comes from the disk (for the recovery benchmark).
#[cfg(feature = "internals")]
pub fn evict_from_page_cache(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    file.sync_all()?;
    // SAFETY: `posix_fadvise` only reads its integer arguments; the file
    // descriptor is valid because `file` is borrowed for the call.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}
