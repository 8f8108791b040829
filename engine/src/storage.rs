//! Kestra's internal storage: the files executions read and write, named by
//! `kestra:///` URIs, behind a small trait ([`Storage`]); the server's
//! backend is local files under the data folder ([`LocalStorage`]).
//!
//! A URI's path is laid out as Kestra lays it out: the flow's namespace as
//! folders, the flow id, then the execution's files
//! (`kestra:///company/team/flow/executions/<id>/tasks/<taskId>/<taskRunId>/out.txt`,
//! `.../executions/<id>/inputs/<input>/<file name>`). A file is written
//! once, whole: [`Storage::put`] writes it aside, syncs it and renames it
//! into place, so that a reader sees all of it or nothing, and a URI an
//! execution's record names is on disk before the record is durable.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::execution::ExecutionId;

/// The scheme of internal storage URIs.
pub const SCHEME: &str = "kestra://";

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{uri}` is not a valid internal storage URI: {why}")]
    InvalidUri { uri: String, why: &'static str },
    #[error("File '{0}' does not exist")]
    NotFound(String),
    #[error("`{uri}` is larger than {limit} bytes, the most a file may hold")]
    TooLarge { uri: String, limit: u64 },
    #[error("internal storage, `{uri}`: {source}")]
    Io {
        uri: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    fn io(uri: &Uri, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            return Self::NotFound(uri.to_string());
        }
        Self::Io {
            uri: uri.to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A file's place in the internal storage: `kestra:///` and a relative
/// path of plain names (no `.`, `..`, empty or hidden temporary names).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uri {
    /// The path after `kestra:///`, e.g. `company/team/flow/executions/x/...`.
    path: String,
}

impl Uri {
    /// Reads `kestra:///a/b` (and `kestra://a/b`, as Kestra accepts).
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |why| Error::InvalidUri {
            uri: text.to_owned(),
            why,
        };
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| invalid("it does not start with kestra://"))?;
        Self::from_path(rest.trim_start_matches('/')).map_err(|e| match e {
            Error::InvalidUri { why, .. } => invalid(why),
            other => other,
        })
    }

    /// The URI of `path`, relative, `/`-separated.
    pub fn from_path(path: &str) -> Result<Self> {
        let invalid = |why| Error::InvalidUri {
            uri: format!("{SCHEME}/{path}"),
            why,
        };
        if path.is_empty() {
            return Err(invalid("its path is empty"));
        }
        if path.len() > 4096 {
            return Err(invalid("its path is longer than 4096 bytes"));
        }
        for segment in path.split('/') {
            match segment {
                "" => return Err(invalid("its path has an empty segment")),
                "." | ".." => return Err(invalid("its path has a `.` or `..` segment")),
                s if s.starts_with(TEMP_PREFIX) => {
                    return Err(invalid("its path names a file being written"));
                }
                s if s.contains(['\\', '\0']) => {
                    return Err(invalid("its path holds a backslash or a NUL"));
                }
                _ => {}
            }
        }
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// Where `namespace.flow_id`'s execution `id` keeps its files.
    pub fn execution_prefix(namespace: &str, flow_id: &str, id: ExecutionId) -> String {
        format!("{}/{flow_id}/executions/{id}", namespace.replace('.', "/"))
    }

    /// A file task run `task_run_id` of task `task_id` writes.
    pub fn task_file(
        namespace: &str,
        flow_id: &str,
        id: ExecutionId,
        task_id: &str,
        task_run_id: &str,
        name: &str,
    ) -> Result<Self> {
        Self::from_path(&format!(
            "{}/tasks/{task_id}/{task_run_id}/{name}",
            Self::execution_prefix(namespace, flow_id, id)
        ))
    }

    /// Where namespace `namespace`'s files are (`{namespace as folders}/_files`).
    pub fn namespace_prefix(namespace: &str) -> String {
        format!("{}/{NAMESPACE_FILES}", namespace.replace('.', "/"))
    }

    /// Namespace file `path` of `namespace` (`path` relative to the
    /// namespace's files; a leading `/` is dropped).
    pub fn namespace_file(namespace: &str, path: &str) -> Result<Self> {
        Self::from_path(&format!(
            "{}/{}",
            Self::namespace_prefix(namespace),
            path.trim_start_matches('/')
        ))
    }

    /// The path of this namespace file under its namespace's files, if it
    /// is one of `namespace`'s.
    pub fn namespace_path(&self, namespace: &str) -> Option<&str> {
        let prefix = Self::namespace_prefix(namespace);
        self.path
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
    }

    /// The file given for FILE input `input` of execution `id`.
    pub fn input_file(
        namespace: &str,
        flow_id: &str,
        id: ExecutionId,
        input: &str,
        file_name: &str,
    ) -> Result<Self> {
        Self::from_path(&format!(
            "{}/inputs/{input}/{file_name}",
            Self::execution_prefix(namespace, flow_id, id)
        ))
    }

    /// The path after `kestra:///`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file's name: the path's last segment.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// Whether the file is one of execution `id`'s (under its prefix).
    pub fn is_of_execution(&self, id: ExecutionId) -> bool {
        let marker = format!("/executions/{id}/");
        self.path.contains(&marker)
    }

    /// Whether the file is under `prefix` (a path, as
    /// [`Uri::execution_prefix`] gives).
    pub fn is_under(&self, prefix: &str) -> bool {
        self.path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}/{}", self.path)
    }
}

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where executions' files are kept. Every call is blocking I/O: it runs on
/// a worker or an API thread, never on a shard.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Writes the file at `uri` from `from`, whole, replacing any: at most
    /// `limit` bytes (past them nothing is written, [`Error::TooLarge`]).
    /// Once it returns the file is durable. The bytes written.
    fn put(&self, uri: &Uri, from: &mut dyn Read, limit: u64) -> Result<u64>;

    /// Reads the file at `uri` ([`Error::NotFound`] if there is none).
    fn open(&self, uri: &Uri) -> Result<Box<dyn Read + Send>>;

    /// The size of the file at `uri`, if there is one.
    fn size(&self, uri: &Uri) -> Result<Option<u64>>;

    /// When the file at `uri` was last written, if there is one.
    fn modified(&self, uri: &Uri) -> Result<Option<std::time::SystemTime>>;

    /// Deletes the file at `uri`: whether there was one.
    fn delete(&self, uri: &Uri) -> Result<bool>;

    /// Deletes every file under `prefix` (a path, as
    /// [`Uri::execution_prefix`] gives): the URIs deleted.
    fn delete_under(&self, prefix: &str) -> Result<Vec<Uri>>;

    /// The files under `prefix`, in path order.
    fn list_under(&self, prefix: &str) -> Result<Vec<Uri>>;
}

/// The folder of a namespace's files, under the namespace's: no flow id
/// or namespace segment begins with `_`, so it is never an execution's.
pub const NAMESPACE_FILES: &str = "_files";

/// How the work root's folders that a WorkingDirectory's tasks share
/// begin (`<work root>/<execution>/wd-<task run>`).
pub const SHARED_FOLDER_PREFIX: &str = "wd-";

/// What an engine's executions have of files: the internal storage, and
/// the folder scripts work in.
#[derive(Clone, Debug)]
pub struct Files {
    storage: Arc<dyn Storage>,
    work_root: PathBuf,
    max_file_bytes: u64,
}

impl Files {
    /// `storage`, with scripts working under `work_root`, no file larger
    /// than `max_file_bytes`.
    pub fn new(storage: Arc<dyn Storage>, work_root: PathBuf, max_file_bytes: u64) -> Self {
        Self {
            storage,
            work_root,
            max_file_bytes,
        }
    }

    pub fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    /// Where scripts make their working directories.
    pub fn work_root(&self) -> &Path {
        &self.work_root
    }

    /// Empties the work root of what a killed server left: the process
    /// groups of the scripts it ran are killed (they run again, as new
    /// attempts), their folders removed. The folders WorkingDirectory
    /// tasks share ([`SHARED_FOLDER_PREFIX`]) stay: the task a crash
    /// stopped runs again in what the tasks before it left (the sweep
    /// removes them once their execution ended). How many groups were
    /// named.
    pub fn clear_work_root(&self) -> io::Result<usize> {
        if !self.work_root.is_dir() {
            return Ok(0);
        }
        let killed = crate::tasks::script::kill_leftovers(&self.work_root);
        for execution in fs::read_dir(&self.work_root)? {
            let execution = execution?;
            if !execution.file_type()?.is_dir() {
                fs::remove_file(execution.path())?;
                continue;
            }
            let mut kept = false;
            for entry in fs::read_dir(execution.path())? {
                let entry = entry?;
                let shared = entry.file_type()?.is_dir()
                    && entry
                        .file_name()
                        .to_str()
                        .is_some_and(|n| n.starts_with(SHARED_FOLDER_PREFIX));
                if shared {
                    kept = true;
                } else if entry.file_type()?.is_dir() {
                    fs::remove_dir_all(entry.path())?;
                } else {
                    fs::remove_file(entry.path())?;
                }
            }
            if !kept {
                fs::remove_dir(execution.path())?;
            }
        }
        Ok(killed)
    }

    /// The largest file a task may store.
    pub fn max_file_bytes(&self) -> u64 {
        self.max_file_bytes
    }
}

impl PartialEq for Files {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage) && self.work_root == other.work_root
    }
}

/// The largest file [`read_to_string`] reads in one call unless told.
pub const DEFAULT_READ_LIMIT: u64 = 16 << 20;

/// The text of the file at `uri`, at most `limit` bytes.
pub fn read_to_string(storage: &dyn Storage, uri: &Uri, limit: u64) -> Result<String> {
    let mut text = String::new();
    let read = storage
        .open(uri)?
        .take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(uri, e))?;
    if read as u64 > limit {
        return Err(Error::TooLarge {
            uri: uri.to_string(),
            limit,
        });
    }
    Ok(text)
}

/// Names of files being written; never a URI's.
const TEMP_PREFIX: &str = ".peregrine-tmp-";

/// Files under a folder: `<root>/<uri path>`.
#[derive(Debug)]
pub struct LocalStorage {
    root: PathBuf,
    /// Numbers the temporary files of writes in flight.
    next: AtomicU64,
}

impl LocalStorage {
    /// The storage under `root`, made at the first write. Files a crash
    /// left half written are removed.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Arc<Self>> {
        let root = root.into();
        if root.is_dir() {
            remove_temporaries(&root)?;
        }
        Ok(Arc::new(Self {
            root,
            next: AtomicU64::new(0),
        }))
    }

    /// Where the file at `uri` is on disk.
    pub fn path_of(&self, uri: &Uri) -> PathBuf {
        self.root.join(uri.path())
    }

    /// Makes `dir` and its missing parents under the root, each made one
    /// synced into its parent.
    fn make_dirs(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if !self.root.is_dir() {
            fs::create_dir_all(&self.root)?;
        }
        let mut missing = Vec::new();
        let mut at = dir;
        while !at.is_dir() && at.starts_with(&self.root) && at != self.root {
            missing.push(at.to_path_buf());
            match at.parent() {
                Some(parent) => at = parent,
                None => break,
            }
        }
        for made in missing.iter().rev() {
            match fs::create_dir(made) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
            if let Some(parent) = made.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }
}

impl Storage for LocalStorage {
    fn put(&self, uri: &Uri, from: &mut dyn Read, limit: u64) -> Result<u64> {
        let path = self.path_of(uri);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        self.make_dirs(&dir).map_err(|e| Error::io(uri, e))?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
        let written = (|| -> io::Result<Option<u64>> {
            let mut file = File::create(&temp)?;
            let written = io::copy(&mut from.take(limit + 1), &mut file)?;
            if written > limit {
                return Ok(None);
            }
            file.flush()?;
            file.sync_all()?;
            Ok(Some(written))
        })();
        let written = match written {
            Ok(Some(written)) => written,
            Ok(None) => {
                let _ = fs::remove_file(&temp);
                return Err(Error::TooLarge {
                    uri: uri.to_string(),
                    limit,
                });
            }
            Err(e) => {
                let _ = fs::remove_file(&temp);
                return Err(Error::io(uri, e));
            }
        };
        fs::rename(&temp, &path)
            .and_then(|()| sync_dir(&dir))
            .map_err(|e| {
                let _ = fs::remove_file(&temp);
                Error::io(uri, e)
            })?;
        Ok(written)
    }

    fn open(&self, uri: &Uri) -> Result<Box<dyn Read + Send>> {
        let path = self.path_of(uri);
        if path.is_dir() {
            return Err(Error::NotFound(uri.to_string()));
        }
        let file = File::open(path).map_err(|e| Error::io(uri, e))?;
        Ok(Box::new(io::BufReader::new(file)))
    }

    fn size(&self, uri: &Uri) -> Result<Option<u64>> {
        match fs::metadata(self.path_of(uri)) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(uri, e)),
        }
    }

    fn modified(&self, uri: &Uri) -> Result<Option<std::time::SystemTime>> {
        match fs::metadata(self.path_of(uri)) {
            Ok(m) if m.is_file() => m.modified().map(Some).map_err(|e| Error::io(uri, e)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(uri, e)),
        }
    }

    fn delete(&self, uri: &Uri) -> Result<bool> {
        let path = self.path_of(uri);
        if path.is_dir() {
            return Ok(false);
        }
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    remove_empty_dirs(&self.root, dir);
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(uri, e)),
        }
    }

    fn delete_under(&self, prefix: &str) -> Result<Vec<Uri>> {
        let deleted = self.list_under(prefix)?;
        let dir = self.root.join(prefix);
        if dir.is_dir() {
            let uri = Uri::from_path(prefix)?;
            fs::remove_dir_all(&dir).map_err(|e| Error::io(&uri, e))?;
            if let Some(parent) = dir.parent() {
                remove_empty_dirs(&self.root, parent);
            }
        }
        Ok(deleted)
    }

    fn list_under(&self, prefix: &str) -> Result<Vec<Uri>> {
        let base = Uri::from_path(prefix)?;
        let dir = self.root.join(prefix);
        let mut found = Vec::new();
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&base, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&base, e))?;
                let path = entry.path();
                let kind = entry.file_type().map_err(|e| Error::io(&base, e))?;
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file()
                    && let Some(uri) = relative_uri(&self.root, &path)
                {
                    found.push(uri);
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

/// The URI of `path` under `root`, if it is a plain file's.
fn relative_uri(root: &Path, path: &Path) -> Option<Uri> {
    let rest = path.strip_prefix(root).ok()?;
    let mut parts = Vec::new();
    for c in rest.components() {
        match c {
            Component::Normal(name) => parts.push(name.to_str()?),
            _ => return None,
        }
    }
    Uri::from_path(&parts.join("/")).ok()
}

/// Removes `dir` and its parents up to `root` while they are empty.
fn remove_empty_dirs(root: &Path, dir: &Path) {
    let mut at = dir;
    while at != root && at.starts_with(root) {
        if fs::remove_dir(at).is_err() {
            break;
        }
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
}

/// Removes the temporary files writes a crash cut left under `root`.
fn remove_temporaries(root: &Path) -> io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

/// Makes a folder's entries durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ExecutionId {
        ExecutionId::generate()
    }

    #[test]
    fn uris_are_laid_out_as_kestra_lays_them_out() {
        let id = id();
        let uri = Uri::task_file("company.team", "f", id, "t", "run1", "out.txt").unwrap();
        assert_eq!(
            uri.to_string(),
            format!("kestra:///company/team/f/executions/{id}/tasks/t/run1/out.txt")
        );
        assert_eq!(Uri::parse(&uri.to_string()).unwrap(), uri);
        assert_eq!(uri.file_name(), "out.txt");
        assert!(uri.is_of_execution(id));
        assert!(!uri.is_of_execution(ExecutionId::generate()));
        let input = Uri::input_file("a", "f", id, "file", "data.csv").unwrap();
        assert!(input.path().ends_with("/inputs/file/data.csv"));
        assert!(input.is_under(&Uri::execution_prefix("a", "f", id)));
        assert!(!input.is_under("a/f/exec"));
        assert!(!input.is_under(&Uri::execution_prefix("a", "f", ExecutionId::generate())));
    }

    #[test]
    fn uris_that_would_leave_the_storage_are_refused() {
        for bad in [
            "kestra:///a/../b",
            "kestra:///a//b",
            "kestra:///./a",
            "kestra:///",
            "file:///etc/passwd",
            "kestra:///a/.peregrine-tmp-1",
            "kestra:///a\\b",
        ] {
            assert!(
                matches!(Uri::parse(bad), Err(Error::InvalidUri { .. })),
                "{bad}"
            );
        }
        assert_eq!(Uri::parse("kestra://a/b").unwrap().path(), "a/b");
    }

    #[test]
    fn a_file_is_written_whole_read_back_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::open(dir.path().join("storage")).unwrap();
        let uri = Uri::from_path("ns/f/executions/x/tasks/t/r/a.txt").unwrap();
        assert_eq!(storage.size(&uri).unwrap(), None);
        assert!(matches!(storage.open(&uri), Err(Error::NotFound(_))));
        let written = storage.put(&uri, &mut &b"hello"[..], 100).unwrap();
        assert_eq!(written, 5);
        assert_eq!(storage.size(&uri).unwrap(), Some(5));
        assert_eq!(read_to_string(&*storage, &uri, 100).unwrap(), "hello");
        assert!(matches!(
            read_to_string(&*storage, &uri, 4),
            Err(Error::TooLarge { .. })
        ));
        let other = Uri::from_path("ns/f/executions/x/inputs/i/b.txt").unwrap();
        storage.put(&other, &mut &b""[..], 100).unwrap();
        assert_eq!(
            storage.list_under("ns/f/executions/x").unwrap(),
            vec![other.clone(), uri.clone()]
        );
        assert!(storage.delete(&uri).unwrap());
        assert!(!storage.delete(&uri).unwrap());
        assert_eq!(storage.delete_under("ns/f/executions/x").unwrap(), [other]);
        assert!(storage.list_under("ns").unwrap().is_empty());
        // Emptied folders go, up to the root.
        assert!(!dir.path().join("storage/ns").exists());
    }

    #[test]
    fn a_file_past_the_limit_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::open(dir.path()).unwrap();
        let uri = Uri::from_path("a/b.bin").unwrap();
        let err = storage.put(&uri, &mut &[0u8; 11][..], 10).unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 10, .. }), "{err}");
        assert_eq!(storage.size(&uri).unwrap(), None);
        // Nor is anything left beside it.
        assert_eq!(fs::read_dir(dir.path().join("a")).unwrap().count(), 0);
    }

    #[test]
    fn what_a_crash_left_half_written_goes_at_open() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        let half = dir.path().join(format!("a/b/{TEMP_PREFIX}9-0"));
        fs::write(&half, b"half").unwrap();
        fs::write(dir.path().join("a/b/kept"), b"kept").unwrap();
        let storage = LocalStorage::open(dir.path()).unwrap();
        assert!(!half.exists());
        assert_eq!(storage.list_under("a").unwrap().len(), 1);
    }
}
