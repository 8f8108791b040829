//! The internal storage's sweep: an execution's files go once the
//! execution does (its retention ended, or it was deleted). Every few
//! minutes a task walks `data/storage` for execution folders
//! (`{namespace...}/{flow}/executions/{id}`) and deletes those whose
//! execution this node can no longer read, once they are older than a
//! grace period (an upload waits for its execution's creation). The same
//! sweep empties the scripts' work root (`data/work/{id}`) of the folders
//! of executions that ended or are gone: a WorkingDirectory a kill
//! stopped, or one a crash left behind, never got to remove its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use peregrine_engine::ExecutionId;

use crate::state::AppState;

/// How often the storage is swept.
const EVERY: Duration = Duration::from_secs(300);
/// How old an execution's folder must be before it may go.
const GRACE: Duration = Duration::from_secs(600);
/// Folders looked at per sweep, at most (the rest wait for the next).
const MAX_PER_SWEEP: usize = 100_000;

/// Sweeps `state`'s storage every [`EVERY`], until the server stops.
pub fn start(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            match sweep(&state, GRACE).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("removed the files of {n} executions that are gone"),
                Err(e) => tracing::warn!("sweeping the internal storage: {e}"),
            }
            match sweep_work(&state, GRACE).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("removed the work folders of {n} ended executions"),
                Err(e) => tracing::warn!("sweeping the work root: {e}"),
            }
        }
    });
}

/// One sweep: the execution folders older than `grace` whose execution is
/// gone are deleted; how many.
pub async fn sweep(state: &AppState, grace: Duration) -> std::io::Result<usize> {
    let root = crate::data::storage(&state.config().data_dir);
    let found = tokio::task::spawn_blocking(move || execution_dirs(&root, grace))
        .await
        .map_err(std::io::Error::other)??;
    let mut removed = 0;
    for (prefix, id) in found {
        match state.executions().get(id).await {
            Ok(None) => {}
            // Still there, or unknown for now: kept.
            Ok(Some(_)) | Err(_) => continue,
        }
        let files = state.files().clone();
        let done = tokio::task::spawn_blocking(move || files.storage().delete_under(&prefix))
            .await
            .map_err(std::io::Error::other)?;
        match done {
            Ok(_) => removed += 1,
            Err(e) => tracing::warn!("removing a gone execution's files: {e}"),
        }
    }
    Ok(removed)
}

/// One sweep of the work root: the folders (`data/work/{id}`) older than
/// `grace` whose execution ended or is gone are removed; how many. Only
/// what a folder held when it was looked at goes: a restart of the
/// execution in between works in folders of new names, which stay (and
/// the execution's folder with them).
pub async fn sweep_work(state: &AppState, grace: Duration) -> std::io::Result<usize> {
    let root = crate::data::work(&state.config().data_dir);
    let found = tokio::task::spawn_blocking(move || work_dirs(&root, grace))
        .await
        .map_err(std::io::Error::other)??;
    let mut removed = 0;
    for (path, id, held) in found {
        match state.executions().get(id).await {
            Ok(None) => {}
            Ok(Some(found)) if found.record.state().is_terminal() => {}
            // Still running, or unknown for now: kept.
            Ok(Some(_)) | Err(_) => continue,
        }
        let done = tokio::task::spawn_blocking(move || remove_held(&path, held))
            .await
            .map_err(std::io::Error::other)?;
        match done {
            Ok(()) => removed += 1,
            Err(e) => tracing::warn!("removing an ended execution's work folder: {e}"),
        }
    }
    Ok(removed)
}

/// Removes what folder `path` `held` when it was looked at, then the
/// folder if nothing new was made in it since.
fn remove_held(path: &Path, held: Vec<PathBuf>) -> std::io::Result<()> {
    for entry in held {
        match std::fs::symlink_metadata(&entry) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&entry)?,
            Ok(_) => std::fs::remove_file(&entry)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    match std::fs::remove_dir(path) {
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(()),
        done => done,
    }
}

/// The execution folders of the work root whose newest file is older
/// than `grace`, with their executions and what each holds.
type WorkDir = (PathBuf, ExecutionId, Vec<PathBuf>);

fn work_dirs(root: &Path, grace: Duration) -> std::io::Result<Vec<WorkDir>> {
    let now = SystemTime::now();
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let id = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<ExecutionId>().ok());
        let Some(id) = id.filter(|_| entry.file_type().is_ok_and(|t| t.is_dir())) else {
            continue;
        };
        let path = entry.path();
        if newest(&path).is_some_and(|at| now.duration_since(at).unwrap_or_default() < grace) {
            continue;
        }
        // Gone since it was listed (a WorkingDirectory removed itself).
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        let held = entries.flatten().map(|e| e.path()).collect();
        found.push((path, id, held));
        if found.len() >= MAX_PER_SWEEP {
            break;
        }
    }
    Ok(found)
}

/// The execution folders under `root` (`{namespace...}/{flow}/executions/{id}`),
/// as storage prefixes with their execution, whose newest file is older
/// than `grace`.
fn execution_dirs(root: &Path, grace: Duration) -> std::io::Result<Vec<(String, ExecutionId)>> {
    let mut found = Vec::new();
    let now = SystemTime::now();
    let mut stack: Vec<(PathBuf, usize)> = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let in_executions = dir.file_name().is_some_and(|n| n == "executions") && depth >= 3;
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            // A namespace's files are no execution's, whatever their names.
            if entry.file_name() == peregrine_engine::storage::NAMESPACE_FILES {
                continue;
            }
            let id = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<ExecutionId>().ok())
                .filter(|_| in_executions);
            let Some(id) = id else {
                // A namespace or flow folder (one may be named
                // `executions`, or look like an id): deeper.
                if depth < 64 {
                    stack.push((path, depth + 1));
                }
                continue;
            };
            if newest(&path).is_some_and(|at| now.duration_since(at).unwrap_or_default() < grace) {
                continue;
            }
            let Some(prefix) = path
                .strip_prefix(root)
                .ok()
                .and_then(|p| p.to_str())
                .map(str::to_owned)
            else {
                continue;
            };
            found.push((prefix, id));
            if found.len() >= MAX_PER_SWEEP {
                return Ok(found);
            }
        }
    }
    Ok(found)
}

/// When anything under `dir` last changed (a long upload writes deep
/// inside it, not in the folder itself).
fn newest(dir: &Path) -> Option<SystemTime> {
    let mut newest = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(m) = entry.metadata() {
                if m.is_dir() {
                    stack.push(entry.path());
                }
                if let Ok(t) = m.modified() {
                    newest = newest.max(Some(t));
                }
            }
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use peregrine_engine::storage::Uri;

    use super::*;

    #[tokio::test]
    async fn the_files_of_an_execution_that_is_gone_go_after_the_grace() {
        let dir = tempfile::tempdir().expect("a dir");
        let config = crate::config::Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let state = AppState::start(config).expect("a server");
        let gone = ExecutionId::generate();
        let uri = Uri::input_file("company.team", "f", gone, "data", "x.csv").expect("a uri");
        state
            .files()
            .storage()
            .put(&uri, &mut &b"1\n"[..], 100)
            .expect("put");
        // Younger than the grace: kept (an upload waits for its creation).
        assert_eq!(
            sweep(&state, Duration::from_secs(3600))
                .await
                .expect("a sweep"),
            0
        );
        assert_eq!(state.files().storage().size(&uri).expect("size"), Some(2));
        // A flow named `executions` is a flow like any other.
        let odd = Uri::input_file("a.executions", "executions", gone, "d", "y.csv").expect("a uri");
        state
            .files()
            .storage()
            .put(&odd, &mut &b"2\n"[..], 100)
            .expect("put");
        assert_eq!(sweep(&state, Duration::ZERO).await.expect("a sweep"), 2);
        assert_eq!(state.files().storage().size(&uri).expect("size"), None);
        assert_eq!(state.files().storage().size(&odd).expect("size"), None);
        assert!(!dir.path().join("storage/company").exists());
        // A namespace file laid out as an execution's is no execution's.
        let kept = Uri::namespace_file(
            "company.team",
            &format!("f/executions/{gone}/inputs/data/x.csv"),
        )
        .expect("a uri");
        state
            .files()
            .storage()
            .put(&kept, &mut &b"3\n"[..], 100)
            .expect("put");
        assert_eq!(sweep(&state, Duration::ZERO).await.expect("a sweep"), 0);
        assert_eq!(state.files().storage().size(&kept).expect("size"), Some(2));
    }

    #[tokio::test]
    async fn the_work_folders_of_gone_executions_go_after_the_grace() {
        let dir = tempfile::tempdir().expect("a dir");
        let config = crate::config::Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let state = AppState::start(config).expect("a server");
        let gone = ExecutionId::generate();
        let work = crate::data::work(dir.path());
        for name in [gone.to_string(), "not-an-execution".to_owned()] {
            let shared = work.join(name).join("wd-x");
            std::fs::create_dir_all(&shared).expect("a folder");
            std::fs::write(shared.join("f.txt"), b"x").expect("a file");
        }
        // Younger than the grace: kept.
        assert_eq!(
            sweep_work(&state, Duration::from_secs(3600))
                .await
                .expect("a sweep"),
            0
        );
        assert!(work.join(gone.to_string()).join("wd-x/f.txt").exists());
        assert_eq!(
            sweep_work(&state, Duration::ZERO).await.expect("a sweep"),
            1
        );
        assert!(!work.join(gone.to_string()).exists());
        // What is not an execution's folder is not the sweep's.
        assert!(work.join("not-an-execution/wd-x/f.txt").exists());
    }

    #[test]
    fn what_a_restart_makes_after_the_look_stays() {
        let dir = tempfile::tempdir().expect("a dir");
        let id = ExecutionId::generate();
        let folder = dir.path().join(id.to_string());
        std::fs::create_dir_all(folder.join("wd-old")).expect("a folder");
        std::fs::write(folder.join("wd-old/f.txt"), b"x").expect("a file");
        let found = work_dirs(dir.path(), Duration::ZERO).expect("a look");
        assert_eq!(found.len(), 1);
        let (path, seen, held) = found.into_iter().next().expect("one");
        assert_eq!(seen, id);
        // The execution is restarted between the look and the removal.
        std::fs::create_dir_all(folder.join("wd-new")).expect("a folder");
        remove_held(&path, held).expect("removed");
        assert!(!folder.join("wd-old").exists(), "what it held went");
        assert!(folder.join("wd-new").exists(), "what came since stays");
        let found = work_dirs(dir.path(), Duration::ZERO).expect("a look");
        remove_held(&found[0].0, found[0].2.clone()).expect("removed");
        assert!(!folder.exists(), "once empty, the folder goes too");
    }
}
