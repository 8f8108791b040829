//! What the tasks that work in a folder share (scripts, WorkingDirectory,
//! LocalFiles): where the folder is, writing input files into it, matching
//! its files against `outputFiles` globs and storing those.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::super::{Place, TaskContext, WorkerEnv};
use crate::executor::into_text;
use crate::storage::{self, Uri};

/// The files a folder's globs may look at, at most.
const MAX_WALKED_FILES: usize = 10_000;
/// The files one task may store from its folder.
const MAX_OUTPUT_FILES: usize = 1_000;

/// Where a task works: its own folder under the engine's work root (or
/// the system's temporary folder), per execution, task run and attempt,
/// or the folder of the WorkingDirectory it is in (then `shared`).
#[derive(Debug, Clone)]
pub(super) struct Folder {
    pub path: PathBuf,
    pub shared: bool,
}

impl Folder {
    /// The folder of the attempt of `place` that `ctx` starts.
    pub(super) fn of(ctx: &TaskContext<'_>, place: &Place) -> Self {
        let execution = work_root(ctx).join(place.execution.to_string());
        match ctx.shared_folder() {
            Some(owner) => Self {
                path: execution.join(shared_name(&owner)),
                shared: true,
            },
            None => Self {
                path: execution.join(format!("{}-{}", place.task_run, place.attempt)),
                shared: false,
            },
        }
    }

    /// The folder a WorkingDirectory task run `place` shares with its tasks.
    pub(super) fn shared_by(ctx: &TaskContext<'_>, place: &Place) -> Self {
        Self {
            path: work_root(ctx)
                .join(place.execution.to_string())
                .join(shared_name(&place.task_run)),
            shared: true,
        }
    }

    /// Removes the folder and the process group record beside it.
    pub(super) fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(self.path.with_extension("pgid"));
    }
}

/// The name of a shared folder: kept across a restart (see
/// `Files::clear_work_root`), so the tasks after the one a crash stopped
/// find what the ones before left.
fn shared_name(task_run: &str) -> String {
    format!("{}{task_run}", crate::storage::SHARED_FOLDER_PREFIX)
}

fn work_root(ctx: &TaskContext<'_>) -> PathBuf {
    ctx.files().map_or_else(
        || std::env::temp_dir().join("peregrine-work"),
        |f| f.work_root().to_path_buf(),
    )
}

/// The namespace files a task copies into its folder (`namespaceFiles`,
/// enabled): those of its flow's namespace its `include` globs match (all
/// when none) and its `exclude` globs do not, as Kestra's
/// `PathMatcherPredicate` matches them: against the file's path from the
/// namespace's root (`/sql/a.sql`), a pattern that begins with a word
/// character matching at any depth.
#[derive(Debug)]
pub(crate) struct NamespaceFiles {
    include: Option<globset::GlobSet>,
    exclude: Option<globset::GlobSet>,
}

/// The namespace files one task copies, at most.
const MAX_NAMESPACE_FILES: usize = 10_000;

impl NamespaceFiles {
    /// `namespaceFiles`, if present and enabled; what it does not honour
    /// is reported.
    pub(crate) fn parse(p: &mut crate::flow::Props<'_, '_>) -> Option<std::sync::Arc<Self>> {
        let (value, at) = p.json("namespaceFiles")?;
        let Value::Object(map) = value else {
            if !value.is_null() {
                p.problem(
                    &at,
                    "`namespaceFiles` is a map of `enabled`, `include`, `exclude`",
                );
            }
            return None;
        };
        let mut enabled = true;
        let mut include = None;
        let mut exclude = None;
        for (key, value) in &map {
            let here = at.child(key);
            match (key.as_str(), value) {
                ("enabled", Value::Bool(b)) => enabled = *b,
                ("enabled", _) => p.problem(&here, "`enabled` is true or false"),
                ("include" | "exclude", Value::Array(items)) => {
                    let patterns: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                    let Some(patterns) = patterns else {
                        p.problem(&here, format!("`{key}` is a list of glob patterns"));
                        continue;
                    };
                    match glob_set(&patterns) {
                        Ok(set) if key == "include" => include = Some(set),
                        Ok(set) => exclude = Some(set),
                        Err(e) => p.problem(&here, e),
                    }
                }
                ("include" | "exclude", _) => {
                    p.problem(&here, format!("`{key}` is a list of glob patterns"));
                }
                (other, _) => p.problem(
                    &here,
                    format!("`namespaceFiles.{other}` is not supported yet"),
                ),
            }
        }
        enabled.then(|| std::sync::Arc::new(Self { include, exclude }))
    }

    /// Whether the namespace file at `path` (from the namespace's root,
    /// without a leading `/`) is copied.
    fn takes(&self, path: &str) -> bool {
        let rooted = format!("/{path}");
        self.include.as_ref().is_none_or(|s| s.is_match(&rooted))
            && !self.exclude.as_ref().is_some_and(|s| s.is_match(&rooted))
    }

    /// Copies the files of `namespace` this takes into `dir`, at their
    /// paths.
    pub(super) fn copy(&self, env: &WorkerEnv, namespace: &str, dir: &Path) -> Result<(), String> {
        let files = files(env)?;
        let prefix = Uri::namespace_prefix(namespace);
        let all = files
            .storage()
            .list_under(&prefix)
            .map_err(|e| e.to_string())?;
        let mut copied = 0;
        for uri in &all {
            let Some(path) = uri.namespace_path(namespace) else {
                continue;
            };
            if !self.takes(path) {
                continue;
            }
            copied += 1;
            if copied > MAX_NAMESPACE_FILES {
                return Err(format!(
                    "more than {MAX_NAMESPACE_FILES} namespace files match: narrow `namespaceFiles.include`"
                ));
            }
            let target = dir.join(relative(path)?);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("the working directory {}: {e}", dir.display()))?;
            }
            download(env, &uri.to_string(), &target)?;
        }
        Ok(())
    }
}

/// Kestra's glob patterns (`glob:` dropped; one that begins with a word
/// character matches at any depth), or why one is not.
fn glob_set(patterns: &[&str]) -> Result<globset::GlobSet, String> {
    let mut set = globset::GlobSetBuilder::new();
    for &pattern in patterns {
        if pattern.starts_with("regex:") {
            return Err(format!("`{pattern}`: regex patterns are not supported yet"));
        }
        let pattern = pattern.strip_prefix("glob:").unwrap_or(pattern);
        let anywhere = pattern
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let full = if anywhere {
            format!("**/{pattern}")
        } else {
            pattern.to_owned()
        };
        let glob = globset::GlobBuilder::new(&full)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("`{pattern}`: {e}"))?;
        set.add(glob);
    }
    set.build().map_err(|e| e.to_string())
}

/// Input files rendered: a map (or a JSON text of one) of relative paths
/// to contents (a `kestra://` URI is copied from the storage), each URI
/// one this execution may read (property `what`, for the messages).
pub(super) fn input_files(
    ctx: &TaskContext<'_>,
    value: Value,
    what: &str,
) -> Result<Vec<(String, Option<String>)>, String> {
    let map = match value {
        Value::Object(map) => map,
        Value::String(s) => match serde_json::from_str::<Map<String, Value>>(&s) {
            Ok(map) => map,
            Err(e) => return Err(format!("`{what}` is not a map: {e}")),
        },
        Value::Null => Map::new(),
        other => return Err(format!("`{what}` `{other}` is not a map")),
    };
    let files = map
        .into_iter()
        .map(|(name, content)| {
            relative(&name)?;
            Ok((name, (!content.is_null()).then(|| into_text(content))))
        })
        .collect::<Result<Vec<_>, String>>()?;
    for (_, content) in &files {
        if let Some(uri) = content
            .as_deref()
            .filter(|c| c.starts_with(storage::SCHEME))
        {
            ctx.readable_uri(uri, what)?;
        }
    }
    Ok(files)
}

/// Writes `files` (see [`input_files`]) into `dir`.
pub(super) fn write_inputs(
    env: &WorkerEnv,
    dir: &Path,
    files: &[(String, Option<String>)],
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("the working directory {}: {e}", dir.display());
    for (name, content) in files {
        let path = dir.join(relative(name)?);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        match content {
            Some(uri) if uri.starts_with(storage::SCHEME) => download(env, uri, &path)?,
            Some(text) => std::fs::write(&path, text).map_err(io)?,
            None => std::fs::write(&path, b"").map_err(io)?,
        }
    }
    Ok(())
}

/// Copies `uri` of the internal storage to `path`.
pub(super) fn download(env: &WorkerEnv, uri: &str, path: &Path) -> Result<(), String> {
    let files = files(env)?;
    let uri = Uri::parse(uri).map_err(|e| e.to_string())?;
    let mut from = files.storage().open(&uri).map_err(|e| e.to_string())?;
    let mut to = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::copy(&mut from, &mut to).map_err(|e| format!("{uri}: {e}"))?;
    Ok(())
}

/// The internal storage, or why a task that needs it cannot run here.
pub(super) fn files(env: &WorkerEnv) -> Result<&storage::Files, String> {
    env.files
        .as_ref()
        .ok_or_else(|| "this engine has no internal storage: script files need a server".to_owned())
}

/// `name` as a path inside a working directory, or why it is not one.
pub(super) fn relative(name: &str) -> Result<&Path, String> {
    let path = Path::new(name);
    let inside = !name.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if inside {
        Ok(path)
    } else {
        Err(format!(
            "input file `{name}` is not a relative path inside the working directory"
        ))
    }
}

/// The files of `dir` one of `globs` matches (`/` not matched by `*`), as
/// paths relative to it; `what` names the property in messages.
pub(super) fn matching(
    dir: &Path,
    globs: &[String],
    what: &str,
) -> Result<Vec<(String, PathBuf)>, String> {
    if globs.is_empty() {
        return Ok(Vec::new());
    }
    let mut set = globset::GlobSetBuilder::new();
    for pattern in globs {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("`{what}` `{pattern}`: {e}"))?;
        set.add(glob);
    }
    let set = set.build().map_err(|e| e.to_string())?;
    Ok(walk(dir)?
        .into_iter()
        .filter(|(rel, _)| set.is_match(rel))
        .collect())
}

/// Stores `wanted` (relative name, local path) as files of task run
/// `place`, in name order, each name once: their URIs by name.
pub(super) fn store(
    env: &WorkerEnv,
    place: &Place,
    mut wanted: Vec<(String, PathBuf)>,
) -> Result<Map<String, Value>, String> {
    wanted.sort();
    wanted.dedup_by(|a, b| a.0 == b.0);
    if wanted.len() > MAX_OUTPUT_FILES {
        return Err(format!(
            "the outputs match {} files; at most {MAX_OUTPUT_FILES} are stored",
            wanted.len()
        ));
    }
    let mut stored = Map::new();
    if wanted.is_empty() {
        return Ok(stored);
    }
    let files = files(env)?;
    for (rel, path) in wanted {
        let uri = place.file(&rel)?;
        let mut file =
            std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        files
            .storage()
            .put(&uri, &mut file, files.max_file_bytes())
            .map_err(|e| format!("output file `{rel}`: {e}"))?;
        stored.insert(rel, Value::String(uri.to_string()));
    }
    Ok(stored)
}

/// The regular files under `dir`, as paths relative to it (`/`-separated),
/// sorted; at most [`MAX_WALKED_FILES`] looked at.
pub(super) fn walk(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    // Links are not followed, the folder's own included: a script that
    // replaced its output folder by a link to elsewhere stores nothing
    // from there.
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(format!(
            "{} is a link: output files are not followed out of the working directory",
            dir.display()
        ));
    }
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(at) = stack.pop() {
        let entries = match std::fs::read_dir(&at) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", at.display())),
        };
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", at.display()))?;
            seen += 1;
            if seen > MAX_WALKED_FILES {
                return Err(format!(
                    "the working directory holds more than {MAX_WALKED_FILES} files to match `outputFiles` against"
                ));
            }
            let kind = entry.file_type().map_err(|e| e.to_string())?;
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && let Ok(rel) = path.strip_prefix(dir)
                && let Some(rel) = rel.to_str()
            {
                found.push((rel.replace('\\', "/"), path.clone()));
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(include: &[&str], exclude: &[&str]) -> NamespaceFiles {
        let set = |p: &[&str]| (!p.is_empty()).then(|| glob_set(p).expect("valid globs"));
        NamespaceFiles {
            include: set(include),
            exclude: set(exclude),
        }
    }

    #[test]
    fn namespace_file_globs_match_as_kestras_path_matcher() {
        // A pattern that begins with a word character matches at any depth;
        // one that begins with `/` from the root; `*` stays in a folder.
        let f = files(
            &["main.py", "/sql/**", "glob:/conf/*.yml"],
            &["/sql/old/**"],
        );
        assert!(f.takes("main.py") && f.takes("deep/er/main.py"));
        assert!(f.takes("sql/a.sql") && f.takes("sql/x/b.sql"));
        assert!(!f.takes("sql/old/c.sql"), "excluded");
        assert!(f.takes("conf/app.yml") && !f.takes("conf/deep/app.yml"));
        assert!(!f.takes("other.py"));
        // No include: everything not excluded.
        let all = files(&[], &["*.tmp", "**/*.log"]);
        assert!(all.takes("a.txt") && all.takes("x/a.tmp"));
        assert!(!all.takes("x/a.log"));
        assert!(glob_set(&["regex:.*"]).is_err());
        assert!(glob_set(&["a[b"]).is_err());
    }
}
