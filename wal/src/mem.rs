//! In-memory storage for tests, after redb's crash tests: each file keeps the
//! bytes written and, separately, the bytes made durable by `sync`. A crash
//! keeps the durable bytes plus a torn prefix of what was written since.
//! Faults (failing writes, failing syncs, a full disk) can be switched on.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::io::{EmptyFile, SegmentFile, Storage, in_bounds, out_of_bounds};
use crate::mmap::Image;

/// Switches for injected faults, shared by a storage and its files.
#[derive(Debug)]
pub(crate) struct Faults {
    /// Bytes that may still be written; below zero every write fails (EIO).
    pub write_budget: AtomicI64,
    /// Every sync fails (EIO) while set.
    pub fail_sync: AtomicBool,
    /// Total bytes all files may occupy; `create` beyond it fails (ENOSPC).
    pub capacity: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            write_budget: AtomicI64::new(i64::MAX),
            fail_sync: AtomicBool::new(false),
            capacity: AtomicU64::new(u64::MAX),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct MemStorage {
    files: Mutex<BTreeMap<String, Arc<MemFile>>>,
    /// Small files written whole (`Storage::replace`): durable at once.
    small: Mutex<BTreeMap<String, Vec<u8>>>,
    pub faults: Arc<Faults>,
}

#[derive(Debug)]
struct MemFile {
    data: Mutex<MemData>,
    faults: Arc<Faults>,
}

#[derive(Debug, Clone)]
struct MemData {
    written: Vec<u8>,
    durable: Vec<u8>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, name.to_owned())
}

impl MemStorage {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(MemStorage::default())
    }

    /// The storage as a crash would leave it. For each file, `cut` picks how
    /// many bytes of the not-yet-durable range `[lo, hi)` reached the disk:
    /// it returns a position in `[lo, hi]`; bytes before it are as written,
    /// bytes from it on are as last synced.
    pub(crate) fn crash(&self, mut cut: impl FnMut(&str, u64, u64) -> u64) -> Arc<MemStorage> {
        // One instant for the small files and the segments: a manifest newer
        // than the segments beside it is a state no crash leaves (the WAL
        // writes it before it removes files).
        let small = lock(&self.small);
        let files = lock(&self.files);
        let mut out = BTreeMap::new();
        for (name, f) in files.iter() {
            let d = lock(&f.data);
            let first = d.written.iter().zip(&d.durable).position(|(a, b)| a != b);
            let mut bytes = d.durable.clone();
            if let Some(lo) = first {
                let hi = d
                    .written
                    .iter()
                    .zip(&d.durable)
                    .rposition(|(a, b)| a != b)
                    .map_or(lo, |p| p + 1);
                let c = (cut(name, lo as u64, hi as u64) as usize).clamp(lo, hi);
                bytes[..c].copy_from_slice(&d.written[..c]);
            }
            out.insert(name.clone(), bytes);
        }
        drop(files);
        let storage = MemStorage::new();
        for (name, bytes) in out {
            storage.put(&name, bytes);
        }
        *lock(&storage.small) = small.clone();
        storage
    }

    /// The bytes of a small file (the manifest).
    pub(crate) fn get_small(&self, name: &str) -> Option<Vec<u8>> {
        lock(&self.small).get(name).cloned()
    }

    pub(crate) fn put_small(&self, name: &str, bytes: Vec<u8>) {
        lock(&self.small).insert(name.to_owned(), bytes);
    }

    /// Installs a file whose written and durable bytes are both `bytes`.
    pub(crate) fn put(&self, name: &str, bytes: Vec<u8>) {
        let file = Arc::new(MemFile {
            data: Mutex::new(MemData {
                written: bytes.clone(),
                durable: bytes,
            }),
            faults: self.faults.clone(),
        });
        lock(&self.files).insert(name.to_owned(), file);
    }

    /// The written bytes of a file.
    pub(crate) fn get(&self, name: &str) -> Option<Vec<u8>> {
        let files = lock(&self.files);
        files.get(name).map(|f| lock(&f.data).written.clone())
    }

    /// Flips one written byte of an open file, as a disk going bad would.
    pub(crate) fn flip_byte(&self, name: &str, offset: usize) {
        let files = lock(&self.files);
        let file = files.get(name).expect("the file exists");
        lock(&file.data).written[offset] ^= 0x20;
    }

    pub(crate) fn names(&self) -> Vec<String> {
        lock(&self.files).keys().cloned().collect()
    }
}

impl Storage for MemStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = self.names();
        names.extend(lock(&self.small).keys().cloned());
        Ok(names)
    }

    fn create(&self, name: &str, len: u64, _fill: bool) -> io::Result<Arc<dyn SegmentFile>> {
        let mut files = lock(&self.files);
        if files.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                name.to_owned(),
            ));
        }
        let used: u64 = files
            .values()
            .map(|f| lock(&f.data).written.len() as u64)
            .sum();
        if used.saturating_add(len) > self.faults.capacity.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let file = Arc::new(MemFile {
            data: Mutex::new(MemData {
                written: vec![0; len as usize],
                durable: vec![0; len as usize],
            }),
            faults: self.faults.clone(),
        });
        files.insert(name.to_owned(), file.clone());
        Ok(file)
    }

    fn open(&self, name: &str, min_len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        let files = lock(&self.files);
        let file = files.get(name).ok_or_else(|| not_found(name))?.clone();
        {
            let mut d = lock(&file.data);
            if (d.written.len() as u64) < min_len {
                d.written.resize(min_len as usize, 0);
                d.durable.resize(min_len as usize, 0);
            }
            if d.written.is_empty() {
                return Ok(Arc::new(EmptyFile));
            }
        }
        Ok(file)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut files = lock(&self.files);
        let f = files.remove(from).ok_or_else(|| not_found(from))?;
        files.insert(to.to_owned(), f);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        if lock(&self.small).remove(name).is_some() {
            return Ok(());
        }
        lock(&self.files)
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| not_found(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }

    fn read_file(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.get_small(name))
    }

    fn replace(&self, name: &str, _tmp: &str, bytes: &[u8]) -> io::Result<()> {
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected sync error"));
        }
        self.put_small(name, bytes.to_vec());
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(name)
    }
}

impl SegmentFile for MemFile {
    fn len(&self) -> u64 {
        lock(&self.data).written.len() as u64
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let left = self
            .faults
            .write_budget
            .fetch_sub(data.len() as i64, Ordering::SeqCst);
        if left < data.len() as i64 {
            return Err(io::Error::other("injected write error"));
        }
        let mut d = lock(&self.data);
        if !in_bounds(offset, data.len(), d.written.len() as u64) {
            return Err(out_of_bounds(offset, data.len(), d.written.len() as u64));
        }
        let o = offset as usize;
        d.written[o..o + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn sync(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected sync error"));
        }
        let mut d = lock(&self.data);
        let n = d.written.len() as u64;
        if !in_bounds(offset, len as usize, n) {
            return Err(out_of_bounds(offset, len as usize, n));
        }
        let (o, e) = (offset as usize, (offset + len) as usize);
        let MemData { written, durable } = &mut *d;
        durable[o..e].copy_from_slice(&written[o..e]);
        Ok(())
    }

    fn image(self: Arc<Self>) -> io::Result<Image> {
        Ok(Image::owned(&lock(&self.data).written))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let d = lock(&self.data);
        if !in_bounds(offset, buf.len(), d.written.len() as u64) {
            return Err(out_of_bounds(offset, buf.len(), d.written.len() as u64));
        }
        let o = offset as usize;
        buf.copy_from_slice(&d.written[o..o + buf.len()]);
        Ok(())
    }

    fn prefault(&self) {}
}
