//! Kestra's storage tasks (`io.kestra.plugin.core.storage`) over the
//! internal storage, on the worker pool: `Write`, `Concat`, `Split`,
//! `Size`, `Delete`, `Reverse` and `PurgeCurrentExecutionFiles`. Each reads
//! files its execution may read (checked when it starts) and writes its
//! own under its task run's place.

use std::io::{BufRead, BufReader, Read, Write as _};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Answer, Job, Place, Started, TaskContext, TaskKind, TaskType, WorkerEnv, work};
use crate::executor::into_text;
use crate::expression::Property;
use crate::flow::Props;
use crate::storage::{Files, Uri};

pub(super) static WRITE: TaskType = TaskType {
    name: "io.kestra.plugin.core.storage.Write",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let content = p.req_string_property("content");
        let extension = p.string_property("extension");
        Some(Arc::new(Write {
            content: content?,
            extension,
        }))
    },
};

pub(super) static CONCAT: TaskType = TaskType {
    name: "io.kestra.plugin.core.storage.Concat",
    aliases: &["io.kestra.core.tasks.storages.Concat"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let files = p.list_property("files");
        let separator = p.string_property("separator");
        let extension = p.string_property("extension");
        Some(Arc::new(Concat {
            files: files?,
            separator,
            extension,
        }))
    },
};

pub(super) static SPLIT: TaskType = TaskType {
    name: "io.kestra.plugin.core.storage.Split",
    aliases: &["io.kestra.core.tasks.storages.Split"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let from = p.req_string_property("from");
        let bytes = p.string_property("bytes");
        let partitions = p.string_property("partitions");
        let rows = p.string_property("rows");
        let separator = p.string_property("separator");
        if bytes.is_none() && partitions.is_none() && rows.is_none() {
            let at = p.here("rows");
            p.problem(&at, "Invalid configuration with no size, count, nor rows");
        }
        Some(Arc::new(Split {
            from: from?,
            bytes,
            partitions,
            rows,
            separator,
        }))
    },
};

pub(super) static SIZE: TaskType = TaskType {
    name: "io.kestra.plugin.core.storage.Size",
    aliases: &["io.kestra.core.tasks.storages.Size"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        Some(Arc::new(Size {
            uri: p.req_string_property("uri")?,
        }))
    },
};

pub(super) static DELETE: TaskType = TaskType {
    name: "io.kestra.plugin.core.storage.Delete",
    aliases: &["io.kestra.core.tasks.storages.Delete"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let uri = p.req_string_property("uri");
        let error_on_missing = p.bool("errorOnMissing", false);
        Some(Arc::new(Delete {
            uri: uri?,
            error_on_missing,
        }))
    },
};

pub(super) static REVERSE: TaskType = TaskType {
    name: "io.kestra.plugin.core.storage.Reverse",
    aliases: &["io.kestra.core.tasks.storages.Reverse"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let from = p.req_string_property("from");
        let separator = p.string_property("separator");
        if let Some((charset, at)) = p.json("charset") {
            let charset = into_text(charset);
            if !charset.eq_ignore_ascii_case("UTF-8") && !charset.eq_ignore_ascii_case("UTF8") {
                p.problem(
                    &at,
                    format!("charset `{charset}` is not supported yet: files are read as UTF-8"),
                );
            }
        }
        Some(Arc::new(Reverse {
            from: from?,
            separator,
        }))
    },
};

pub(super) static PURGE_CURRENT_EXECUTION_FILES: TaskType = TaskType {
    name: "io.kestra.plugin.core.storage.PurgeCurrentExecutionFiles",
    aliases: &["io.kestra.core.tasks.storages.PurgeCurrentExecutionFiles"],
    flowable: false,
    own_timeout: false,
    parse: |_: &mut Props<'_, '_>| Some(Arc::new(PurgeFiles)),
};

/// `Write`: `content` into a new file (`extension`, default `.tmp`).
#[derive(Debug)]
pub(crate) struct Write {
    content: Property,
    extension: Option<Property>,
}

/// `Concat`: `files` (a list of URIs or a JSON text of one) one after
/// another, `separator` after each, into a new file.
#[derive(Debug)]
pub(crate) struct Concat {
    files: Property,
    separator: Option<Property>,
    extension: Option<Property>,
}

/// `Split`: `from` into files of `bytes` (`10MB`...), `rows` lines, or
/// `partitions` files round-robin; lines end with `separator` (`\n`).
#[derive(Debug)]
pub(crate) struct Split {
    from: Property,
    bytes: Option<Property>,
    partitions: Option<Property>,
    rows: Option<Property>,
    separator: Option<Property>,
}

/// `Size`: the size of `uri`.
#[derive(Debug)]
pub(crate) struct Size {
    uri: Property,
}

/// `Delete`: deletes `uri`; `errorOnMissing` fails when there is none.
#[derive(Debug)]
pub(crate) struct Delete {
    uri: Property,
    error_on_missing: bool,
}

/// `Reverse`: `from`'s lines in reverse order, each ended by `separator`.
#[derive(Debug)]
pub(crate) struct Reverse {
    from: Property,
    separator: Option<Property>,
}

/// `PurgeCurrentExecutionFiles`: deletes every file of the execution.
#[derive(Debug)]
pub(crate) struct PurgeFiles;

/// The largest file Reverse turns around (it holds the file in memory).
const MAX_REVERSE_BYTES: u64 = 64 << 20;
/// The longest line Split reads.
const MAX_LINE_BYTES: u64 = 16 << 20;
/// The most partitions Split writes at once (each an open file).
const MAX_PARTITIONS: u64 = 1_000;
/// The most files one split writes.
pub(super) const MAX_SPLIT_PARTS: usize = 10_000;

/// One storage task's call, rendered.
#[derive(Debug)]
enum Call {
    Write {
        content: String,
        extension: String,
    },
    Concat {
        files: Vec<Uri>,
        separator: Option<String>,
        extension: String,
    },
    Split {
        from: Uri,
        by: SplitBy,
        separator: String,
    },
    Size(Uri),
    Delete {
        uri: Uri,
        error_on_missing: bool,
    },
    Reverse {
        from: Uri,
        separator: String,
    },
    Purge,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum SplitBy {
    Bytes(u64),
    Rows(u64),
    Partitions(usize),
}

#[derive(Debug)]
struct StorageJob {
    place: Place,
    call: Call,
}

fn text(ctx: &TaskContext<'_>, p: &Option<Property>) -> Result<Option<String>, String> {
    p.as_ref().map(|p| ctx.render_text(p)).transpose()
}

/// `.ext` as Kestra takes it: a dot added when missing.
fn extension(given: Option<String>, default: &str) -> String {
    match given.filter(|e| !e.is_empty()) {
        Some(e) if e.starts_with('.') => e,
        Some(e) => format!(".{e}"),
        None => default.to_owned(),
    }
}

fn job(ctx: &TaskContext<'_>, call: Result<Call, String>) -> Started {
    work(call.map(|call| StorageJob {
        place: ctx.place(),
        call,
    }))
}

impl TaskKind for Write {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let call = (|| {
            Ok(Call::Write {
                content: ctx.render_text(&self.content)?,
                extension: extension(text(ctx, &self.extension)?, ".tmp"),
            })
        })();
        job(ctx, call)
    }
}

impl TaskKind for Concat {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let call = (|| {
            let listed = match ctx.render(&self.files)? {
                Value::Array(items) => items,
                Value::String(s) => serde_json::from_str::<Vec<Value>>(&s).map_err(|_| {
                    format!("Invalid `files` properties with type '{s}': expected a list of URIs")
                })?,
                other => {
                    return Err(format!(
                        "Invalid `files` properties with type '{other}': expected a list of URIs"
                    ));
                }
            };
            let files = listed
                .into_iter()
                .map(|v| ctx.readable_uri(&into_text(v), "files"))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Call::Concat {
                files,
                separator: text(ctx, &self.separator)?,
                extension: extension(text(ctx, &self.extension)?, ".tmp"),
            })
        })();
        job(ctx, call)
    }
}

/// Kestra's `DataSize`: `10MB`, `512KB`, `1GB`, or bytes.
fn data_size(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_uppercase();
    let (number, unit) = t
        .find(|c: char| !c.is_ascii_digit())
        .map_or((t.as_str(), ""), |i| t.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`bytes` `{text}` is not a size (e.g. 10MB)"))?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return Err(format!("`bytes` `{text}` is not a size (e.g. 10MB)")),
    };
    Ok(n.saturating_mul(factor))
}

impl TaskKind for Split {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let call = (|| {
            let by = split_by(ctx, &self.bytes, &self.partitions, &self.rows)?;
            Ok(Call::Split {
                from: ctx.readable_uri(&ctx.render_text(&self.from)?, "from")?,
                by,
                separator: text(ctx, &self.separator)?.unwrap_or_else(|| "\n".to_owned()),
            })
        })();
        job(ctx, call)
    }
}

/// How to split, from the rendered `bytes` (first), `partitions` or
/// `rows`.
pub(super) fn split_by(
    ctx: &TaskContext<'_>,
    bytes: &Option<Property>,
    partitions: &Option<Property>,
    rows: &Option<Property>,
) -> Result<SplitBy, String> {
    let number = |p: &Option<Property>, what: &str| -> Result<Option<u64>, String> {
        text(ctx, p)?
            .map(|t| {
                t.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("`{what}` `{t}` is not a positive number"))
            })
            .transpose()
    };
    if let Some(bytes) = text(ctx, bytes)? {
        Ok(SplitBy::Bytes(data_size(&bytes)?.max(1)))
    } else if let Some(n) = number(partitions, "partitions")? {
        if n > MAX_PARTITIONS {
            return Err(format!("`partitions` is at most {MAX_PARTITIONS}"));
        }
        Ok(SplitBy::Partitions(usize::try_from(n).unwrap_or(1)))
    } else if let Some(n) = number(rows, "rows")? {
        Ok(SplitBy::Rows(n))
    } else {
        Err("Invalid configuration with no size, count, nor rows".to_owned())
    }
}

impl TaskKind for Size {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let call = (|| {
            Ok(Call::Size(
                ctx.readable_uri(&ctx.render_text(&self.uri)?, "uri")?,
            ))
        })();
        job(ctx, call)
    }
}

impl TaskKind for Delete {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let call = (|| {
            let text = ctx.render_text(&self.uri)?;
            let uri = Uri::parse(text.trim()).map_err(|e| format!("`uri`: {e}"))?;
            // Reading other executions' task files is allowed; deleting
            // them is not.
            let place = ctx.place();
            let own = Uri::execution_prefix(&place.namespace, &place.flow_id, place.execution);
            if !uri.is_under(&own) {
                return Err(format!(
                    "Unable to delete the file '{uri}' as it didn't belong to the current execution"
                ));
            }
            Ok(Call::Delete {
                uri,
                error_on_missing: self.error_on_missing,
            })
        })();
        job(ctx, call)
    }
}

impl TaskKind for Reverse {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let call = (|| {
            Ok(Call::Reverse {
                from: ctx.readable_uri(&ctx.render_text(&self.from)?, "from")?,
                separator: text(ctx, &self.separator)?.unwrap_or_else(|| "\n".to_owned()),
            })
        })();
        job(ctx, call)
    }
}

impl TaskKind for PurgeFiles {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        job(ctx, Ok(Call::Purge))
    }
}

impl Job for StorageJob {
    fn run(self: Box<Self>, env: &WorkerEnv, _within: Option<Duration>) -> Answer {
        let Some(files) = &env.files else {
            return Answer::from(Err(
                "this engine has no internal storage: the storage tasks need a server".to_owned(),
            ));
        };
        Answer::from(self.work(files))
    }
}

/// The extension of `uri`'s file name (`.tmp` when it has none).
fn extension_of(uri: &Uri) -> String {
    match uri.file_name().rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => format!(".{ext}"),
        _ => ".tmp".to_owned(),
    }
}

impl StorageJob {
    /// A new file of this task run, named `{n}{ext}`.
    fn target(&self, name: &str) -> Result<Uri, String> {
        let p = &self.place;
        p.file(name)
    }

    fn work(self, files: &Files) -> Result<Value, String> {
        let storage = files.storage();
        let limit = files.max_file_bytes();
        let err = |e: crate::storage::Error| e.to_string();
        let prefix = format!("{}-", self.place.attempt);
        match &self.call {
            Call::Write { content, extension } => {
                let uri = self.target(&format!("{prefix}write{extension}"))?;
                storage
                    .put(&uri, &mut content.as_bytes(), limit)
                    .map_err(err)?;
                Ok(json!({ "uri": uri.to_string() }))
            }
            Call::Concat {
                files: sources,
                separator,
                extension,
            } => {
                let uri = self.target(&format!("{prefix}concat{extension}"))?;
                let mut parts = std::collections::VecDeque::new();
                for source in sources {
                    parts.push_back(Part::File(source.clone()));
                    if let Some(sep) = separator {
                        parts.push_back(Part::Text(sep.clone().into_bytes()));
                    }
                }
                // Each source opened when its turn comes: one descriptor
                // at a time, however long the list.
                let mut all = Chain {
                    storage,
                    parts,
                    current: None,
                };
                storage.put(&uri, &mut all, limit).map_err(err)?;
                Ok(json!({ "uri": uri.to_string() }))
            }
            Call::Size(uri) => match storage.size(uri).map_err(err)? {
                Some(size) => Ok(json!({ "size": size })),
                None => Err(format!("File '{uri}' does not exist")),
            },
            Call::Delete {
                uri,
                error_on_missing,
            } => {
                let deleted = storage.delete(uri).map_err(err)?;
                if !deleted && *error_on_missing {
                    return Err(format!("Unable to find file '{uri}'"));
                }
                Ok(json!({ "uri": uri.to_string(), "deleted": deleted }))
            }
            Call::Reverse { from, separator } => {
                // Reversed in memory: bounded below the file limit.
                let text =
                    crate::storage::read_to_string(storage, from, limit.min(MAX_REVERSE_BYTES))
                        .map_err(err)?;
                let mut out = String::with_capacity(text.len());
                for line in text.lines().rev() {
                    out.push_str(line);
                    out.push_str(separator);
                }
                let uri = self.target(&format!("{prefix}reverse{}", extension_of(from)))?;
                storage.put(&uri, &mut out.as_bytes(), limit).map_err(err)?;
                Ok(json!({ "uri": uri.to_string() }))
            }
            Call::Split {
                from,
                by,
                separator,
            } => {
                let attempt = self.place.attempt;
                let ext = extension_of(from);
                let name = |n: usize, _: usize| format!("{attempt}-split-{n}{ext}");
                let uris = split(files, &self.place, from, *by, separator, &name)?;
                let uris: Vec<String> = uris.iter().map(ToString::to_string).collect();
                Ok(json!({ "uris": uris }))
            }
            Call::Purge => {
                let p = &self.place;
                let deleted = storage
                    .delete_under(&Uri::execution_prefix(
                        &p.namespace,
                        &p.flow_id,
                        p.execution,
                    ))
                    .map_err(err)?;
                Ok(json!({
                    "uris": deleted.iter().map(ToString::to_string).collect::<Vec<_>>()
                }))
            }
        }
    }
}

/// Kestra's `StorageService.split`: lines (`\n`, `\r\n` or `\r`) of
/// `from` into files of task run `place`, each line ended by `separator`;
/// empty partitions dropped. `name(n, k)` names part `n` (from 0), the
/// `k`-th stored (from 0). The files stored, in order.
pub(super) fn split(
    files: &Files,
    place: &Place,
    from: &Uri,
    by: SplitBy,
    separator: &str,
    name: &dyn Fn(usize, usize) -> String,
) -> Result<Vec<Uri>, String> {
    {
        let target = |name: &str| place.file(name);
        let storage = files.storage();
        let limit = files.max_file_bytes();
        let err = |e: crate::storage::Error| e.to_string();
        let work = files
            .work_root()
            .join(place.execution.to_string())
            .join(format!("{}-{}-split", place.task_run, place.attempt));
        let io = |e: std::io::Error| format!("splitting {from}: {e}");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(io)?;
        let result = (|| {
            // A part's file (closed once the next begins, by bytes or
            // rows), its bytes and rows.
            type Open = Option<std::io::BufWriter<std::fs::File>>;
            let mut parts: Vec<(Open, u64, u64)> = Vec::new();
            let mut paths = Vec::new();
            let close_last = matches!(by, SplitBy::Bytes(_) | SplitBy::Rows(_));
            let mut new_part = |parts: &mut Vec<(Open, u64, u64)>| -> Result<(), String> {
                if parts.len() >= MAX_SPLIT_PARTS {
                    return Err(format!(
                        "Split would write more than {MAX_SPLIT_PARTS} files"
                    ));
                }
                if close_last
                    && let Some((open, _, _)) = parts.last_mut()
                    && let Some(mut w) = open.take()
                {
                    w.flush().map_err(io)?;
                }
                let path = work.join(format!("{}", parts.len()));
                let file = std::fs::File::create(&path).map_err(io)?;
                paths.push(path);
                parts.push((Some(std::io::BufWriter::new(file)), 0u64, 0u64));
                Ok(())
            };
            if let SplitBy::Partitions(n) = by {
                for _ in 0..n.max(1) {
                    new_part(&mut parts)?;
                }
            }
            let mut reader = BufReader::new(storage.open(from).map_err(err)?);
            let mut line = Vec::new();
            let mut index = 0usize;
            loop {
                line.clear();
                let read = (&mut reader)
                    .take(MAX_LINE_BYTES + 1)
                    .read_until(b'\n', &mut line)
                    .map_err(io)?;
                if read == 0 {
                    break;
                }
                if line.len() as u64 > MAX_LINE_BYTES {
                    return Err(format!(
                        "{from} has a line longer than {MAX_LINE_BYTES} bytes: it is not split by lines"
                    ));
                }
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                let target = match by {
                    SplitBy::Partitions(n) => index % n.max(1),
                    SplitBy::Bytes(max) => {
                        if parts.last().is_none_or(|p| p.1 >= max) {
                            new_part(&mut parts)?;
                        }
                        parts.len() - 1
                    }
                    SplitBy::Rows(max) => {
                        if parts.last().is_none_or(|p| p.2 >= max) {
                            new_part(&mut parts)?;
                        }
                        parts.len() - 1
                    }
                };
                let part = &mut parts[target];
                let writer = part.0.as_mut().ok_or("a closed part of the split")?;
                writer.write_all(&line).map_err(io)?;
                writer.write_all(separator.as_bytes()).map_err(io)?;
                part.1 += (line.len() + separator.len()) as u64;
                part.2 += 1;
                index += 1;
            }
            let mut uris = Vec::new();
            for (n, ((writer, bytes, _), path)) in parts.into_iter().zip(&paths).enumerate() {
                if let Some(mut writer) = writer {
                    writer.flush().map_err(io)?;
                }
                if bytes == 0 {
                    continue;
                }
                let uri = target(&name(n, uris.len()))?;
                let mut file = std::fs::File::open(path).map_err(io)?;
                storage.put(&uri, &mut file, limit).map_err(err)?;
                uris.push(uri);
            }
            Ok(uris)
        })();
        let _ = std::fs::remove_dir_all(&work);
        result
    }
}

/// What Concat writes, in order.
enum Part {
    File(Uri),
    Text(Vec<u8>),
}

/// Parts one after another, each file opened when its turn comes.
struct Chain<'a> {
    storage: &'a dyn crate::storage::Storage,
    parts: std::collections::VecDeque<Part>,
    current: Option<Box<dyn Read + Send>>,
}

impl Read for Chain<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(current) = &mut self.current {
                let n = current.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.current = None;
            }
            self.current = Some(match self.parts.pop_front() {
                None => return Ok(0),
                Some(Part::Text(text)) => Box::new(std::io::Cursor::new(text)),
                Some(Part::File(uri)) => self
                    .storage
                    .open(&uri)
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::execution::State;
    use crate::executor::ConfigVariables;
    use crate::storage::{self, Files, LocalStorage, Storage, Uri};
    use crate::tasks::testing::{only, problems, run_with_variables};

    #[test]
    fn files_are_written_concatenated_split_reversed_sized_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStorage::open(dir.path().join("storage")).unwrap();
        let files = Files::new(store.clone(), dir.path().join("work"), 1 << 20);
        let variables = ConfigVariables::default().with_files(files);
        let exec = run_with_variables(
            r#"
  - id: a
    type: io.kestra.plugin.core.storage.Write
    content: "1\n2\n3\n"
    extension: csv
  - id: b
    type: io.kestra.plugin.core.storage.Write
    content: "4\n5\n"
  - id: both
    type: io.kestra.plugin.core.storage.Concat
    files:
      - "{{ outputs.a.uri }}"
      - "{{ outputs.b.uri }}"
  - id: rows
    type: io.kestra.plugin.core.storage.Split
    from: "{{ outputs.both.uri }}"
    rows: 2
  - id: parts
    type: io.kestra.plugin.core.storage.Split
    from: "{{ outputs.both.uri }}"
    partitions: 2
  - id: back
    type: io.kestra.plugin.core.storage.Reverse
    from: "{{ outputs.a.uri }}"
  - id: size
    type: io.kestra.plugin.core.storage.Size
    uri: "{{ outputs.both.uri }}"
  - id: gone
    type: io.kestra.plugin.core.storage.Delete
    uri: "{{ outputs.b.uri }}"
  - id: again
    type: io.kestra.plugin.core.storage.Delete
    uri: "{{ outputs.b.uri }}"
"#,
            variables,
        );
        assert_eq!(exec.state(), State::Success, "{:?}", exec.logs());
        let read = |uri: &serde_json::Value| {
            storage::read_to_string(&*store, &Uri::parse(uri.as_str().unwrap()).unwrap(), 1000)
                .unwrap()
        };
        let out = |id: &str| only(&exec, id).outputs().unwrap().clone();
        assert!(out("a")["uri"].as_str().unwrap().ends_with(".csv"));
        assert_eq!(read(&out("both")["uri"]), "1\n2\n3\n4\n5\n");
        let rows: Vec<String> = out("rows")["uris"]
            .as_array()
            .unwrap()
            .iter()
            .map(read)
            .collect();
        assert_eq!(rows, ["1\n2\n", "3\n4\n", "5\n"]);
        let parts: Vec<String> = out("parts")["uris"]
            .as_array()
            .unwrap()
            .iter()
            .map(read)
            .collect();
        assert_eq!(parts, ["1\n3\n5\n", "2\n4\n"]);
        assert_eq!(read(&out("back")["uri"]), "3\n2\n1\n");
        assert_eq!(out("size"), json!({"size": 10}));
        assert_eq!(out("gone")["deleted"], json!(true));
        assert_eq!(out("again")["deleted"], json!(false));
    }

    #[test]
    fn purging_the_execution_files_and_a_missing_file_that_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStorage::open(dir.path().join("storage")).unwrap();
        let files = Files::new(store.clone(), dir.path().join("work"), 1 << 20);
        let variables = ConfigVariables::default().with_files(files);
        let exec = run_with_variables(
            r#"
  - id: a
    type: io.kestra.plugin.core.storage.Write
    content: x
  - id: purge
    type: io.kestra.plugin.core.storage.PurgeCurrentExecutionFiles
  - id: theirs
    type: io.kestra.plugin.core.storage.Delete
    allowFailure: true
    uri: kestra:///other/flow/executions/2Rj1mZ2pR5cXbYv3wq0rTk/tasks/t/r/x.txt
  - id: strict
    type: io.kestra.plugin.core.storage.Delete
    uri: "{{ outputs.a.uri }}"
    errorOnMissing: true
"#,
            variables,
        );
        assert_eq!(exec.state(), State::Failed);
        let purged = &only(&exec, "purge").outputs().unwrap()["uris"];
        assert_eq!(purged.as_array().unwrap().len(), 1, "{purged}");
        assert!(store.list_under("tests").unwrap().is_empty());
        assert_eq!(only(&exec, "strict").state(), State::Failed);
        let theirs = crate::tasks::testing::logs_of(&exec, "theirs");
        assert!(
            theirs
                .iter()
                .any(|(_, m)| m.contains("didn't belong to the current execution")),
            "{theirs:?}"
        );
    }

    #[test]
    fn a_split_without_a_size_is_refused() {
        let found = problems(
            "  - id: s\n    type: io.kestra.plugin.core.storage.Split\n    from: kestra:///a/b\n",
        );
        assert!(
            found.iter().any(|p| p.contains("no size, count, nor rows")),
            "{found:?}"
        );
    }
}
