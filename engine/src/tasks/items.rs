//! Tasks over item files (Ion, one value per line, as Kestra's
//! `FileSerde` writes them): `storage.DeduplicateItems` and
//! `storage.FilterItems`.
//!
//! Each renders its template once per item, on a worker: the item's fields
//! over the variables its task run saw when it started (taken whole at the
//! start: `inputs`, `outputs`, `vars`, `flow`, `execution`, `labels`,
//! `taskrun`, ...), with the instant of that start as `now()` and each
//! render within the execution's expression budget. Functions that read
//! the execution or the engine (`kv()`, `secret()`, `read()`,
//! `errorLogs()`) are not available per item. The lines kept are written
//! as they were read, into a file of the task run.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Answer, Job, Place, Started, TaskContext, TaskKind, TaskType, WorkerEnv, work};
use crate::executor::{into_text, is_truthy};
use crate::expression::{Budget, Context, Property, Scope};
use crate::flow::Props;
use crate::storage::{Files, Uri};

pub(super) static DEDUPLICATE_ITEMS: TaskType = TaskType {
    name: "io.kestra.plugin.core.storage.DeduplicateItems",
    aliases: &["io.kestra.core.tasks.storages.DeduplicateItems"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let from = p.req_string_property("from");
        let expr = p.req_string_property("expr");
        Some(Arc::new(Deduplicate {
            from: from?,
            expr: expr?,
        }))
    },
};

pub(super) static FILTER_ITEMS: TaskType = TaskType {
    name: "io.kestra.plugin.core.storage.FilterItems",
    aliases: &["io.kestra.core.tasks.storages.FilterItems"],
    flowable: false,
    own_timeout: false,
    parse: parse_filter,
};

/// The longest line (item) read.
const MAX_LINE_BYTES: u64 = 16 << 20;
/// The most bytes DeduplicateItems' index of distinct keys holds.
const MAX_KEY_BYTES: usize = 64 << 20;
/// What one key costs the index beyond its text (its entry, its offset).
const KEY_OVERHEAD: usize = 64;

/// `storage.DeduplicateItems`: of the items with the same key (`expr`),
/// the last one is kept, where it stands.
#[derive(Debug)]
pub(crate) struct Deduplicate {
    from: Property,
    expr: Property,
}

/// `storage.FilterItems`: the items `filterCondition` holds for are kept
/// (INCLUDE) or dropped (EXCLUDE).
#[derive(Debug)]
pub(crate) struct Filter {
    from: Property,
    condition: Property,
    include: bool,
    on_error: OnError,
}

/// `errorOrNullBehavior`: what an item whose condition fails to render
/// gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnError {
    Fail,
    Include,
    Exclude,
}

fn parse_filter(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let from = p.req_string_property("from");
    let condition = p.req_string_property("filterCondition");
    let include = match p.json("filterType") {
        None => true,
        Some((v, at)) => match v.as_str() {
            Some("INCLUDE") => true,
            Some("EXCLUDE") => false,
            _ => {
                p.problem(&at, "`filterType` is INCLUDE or EXCLUDE");
                true
            }
        },
    };
    let on_error = match p.json("errorOrNullBehavior") {
        None => OnError::Fail,
        Some((v, at)) => match v.as_str() {
            Some("FAIL") => OnError::Fail,
            Some("INCLUDE") => OnError::Include,
            Some("EXCLUDE") => OnError::Exclude,
            _ => {
                p.problem(&at, "`errorOrNullBehavior` is FAIL, INCLUDE or EXCLUDE");
                OnError::Fail
            }
        },
    };
    Some(Arc::new(Filter {
        from: from?,
        condition: condition?,
        include,
        on_error,
    }))
}

/// What an items job does per item.
#[derive(Debug)]
enum Op {
    Deduplicate(Property),
    Filter {
        condition: Property,
        include: bool,
        on_error: OnError,
    },
}

/// One items task run, rendered.
#[derive(Debug)]
struct ItemsJob {
    place: Place,
    from: Uri,
    /// The variables the task run saw at its start.
    base: Value,
    now: chrono::DateTime<chrono::Utc>,
    budget: Budget,
    op: Op,
}

fn items_job(ctx: &TaskContext<'_>, from: &Property, op: Op) -> Started {
    let job = (|| {
        Ok(ItemsJob {
            place: ctx.place(),
            from: ctx.readable_uri(&ctx.render_text(from)?, "from")?,
            base: ctx.variables_snapshot(),
            now: ctx.now(),
            budget: ctx.budget(),
            op,
        })
    })();
    work(job)
}

impl TaskKind for Deduplicate {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        items_job(ctx, &self.from, Op::Deduplicate(self.expr.clone()))
    }
}

impl TaskKind for Filter {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let op = Op::Filter {
            condition: self.condition.clone(),
            include: self.include,
            on_error: self.on_error,
        };
        items_job(ctx, &self.from, op)
    }
}

/// An item's fields over the task run's variables.
struct ItemContext<'a> {
    item: &'a Map<String, Value>,
    base: &'a Value,
    now: chrono::DateTime<chrono::Utc>,
    budget: Budget,
}

impl Context for ItemContext<'_> {
    fn root(&self, name: &str) -> Option<Scope<'_>> {
        self.item
            .get(name)
            .or_else(|| self.base.get(name))
            .map(Scope::Json)
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.now
    }

    fn budget(&self) -> Budget {
        self.budget
    }
}

impl Job for ItemsJob {
    fn run(self: Box<Self>, env: &WorkerEnv, _within: Option<Duration>) -> Answer {
        let Some(files) = &env.files else {
            return Answer::from(Err(
                "this engine has no internal storage: the storage tasks need a server".to_owned(),
            ));
        };
        Answer::from(self.work(files))
    }
}

/// The items of a file, one per line, each read whole (at most
/// [`MAX_LINE_BYTES`]), without its line end.
struct Lines<R> {
    reader: R,
    line: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    fn next_line(&mut self, uri: &Uri) -> Result<Option<&str>, String> {
        self.line.clear();
        let read = (&mut self.reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut self.line)
            .map_err(|e| format!("{uri}: {e}"))?;
        if read == 0 {
            return Ok(None);
        }
        if self.line.len() as u64 > MAX_LINE_BYTES {
            return Err(format!(
                "{uri} has a line longer than {MAX_LINE_BYTES} bytes"
            ));
        }
        while self.line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            self.line.pop();
        }
        std::str::from_utf8(&self.line)
            .map(Some)
            .map_err(|_| format!("{uri} is not UTF-8 text"))
    }
}

impl ItemsJob {
    fn lines(&self, files: &Files) -> Result<Lines<impl BufRead>, String> {
        let file = files
            .storage()
            .open(&self.from)
            .map_err(|e| e.to_string())?;
        Ok(Lines {
            reader: std::io::BufReader::new(file),
            line: Vec::new(),
        })
    }

    /// `line`, item `n` (1-based), read: an Ion struct.
    fn item(&self, line: &str, n: u64) -> Result<Map<String, Value>, String> {
        match crate::ion::parse(line) {
            Ok(Value::Object(item)) => Ok(item),
            Ok(_) => Err(format!("item {n} of {} is not an Ion struct", self.from)),
            Err(e) => Err(format!("item {n} of {}: {e}", self.from)),
        }
    }

    /// `template` rendered for `item`.
    fn render(&self, template: &Property, item: &Map<String, Value>) -> Result<Value, String> {
        let ctx = ItemContext {
            item,
            base: &self.base,
            now: self.now,
            budget: self.budget,
        };
        template.render(&ctx).map_err(|e| e.to_string())
    }

    fn work(&self, files: &Files) -> Result<Value, String> {
        let temp = files
            .work_root()
            .join(self.place.execution.to_string())
            .join(format!(
                "{}-{}-items",
                self.place.task_run, self.place.attempt
            ));
        let io = |e: std::io::Error| format!("{}: {e}", temp.display());
        if let Some(parent) = temp.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let written = (|| {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&temp).map_err(io)?);
            let (name, mut outputs) = match &self.op {
                Op::Deduplicate(expr) => ("deduplicate", self.deduplicate(files, expr, &mut out)?),
                Op::Filter {
                    condition,
                    include,
                    on_error,
                } => (
                    "filter",
                    self.filter(files, condition, *include, *on_error, &mut out)?,
                ),
            };
            out.flush().map_err(io)?;
            drop(out);
            let p = &self.place;
            let uri = p.file(&format!("{}-{name}.ion", p.attempt))?;
            let mut file = std::fs::File::open(&temp).map_err(io)?;
            files
                .storage()
                .put(&uri, &mut file, files.max_file_bytes())
                .map_err(|e| e.to_string())?;
            outputs["uri"] = Value::String(uri.to_string());
            Ok(outputs)
        })();
        let _ = std::fs::remove_file(&temp);
        written
    }

    fn deduplicate(
        &self,
        files: &Files,
        expr: &Property,
        out: &mut impl Write,
    ) -> Result<Value, String> {
        // First pass: each key's last item.
        let mut last: HashMap<String, u64> = HashMap::new();
        let mut key_bytes = 0usize;
        let mut lines = self.lines(files)?;
        let mut n = 0u64;
        while let Some(line) = lines.next_line(&self.from)? {
            n += 1;
            let key = into_text(self.render(expr, &self.item(line, n)?)?);
            if !last.contains_key(&key) {
                // What the index holds per key beside its text.
                key_bytes += key.len() + KEY_OVERHEAD;
                if key_bytes > MAX_KEY_BYTES {
                    return Err(format!(
                        "the index of the distinct keys of {} passes {MAX_KEY_BYTES} bytes ({KEY_OVERHEAD} bytes a key beside its text)",
                        self.from
                    ));
                }
            }
            last.insert(key, n);
        }
        // Second pass: the last of each key written, where it stands.
        let mut lines = self.lines(files)?;
        let (mut m, mut dropped) = (0u64, 0u64);
        let io = |e: std::io::Error| e.to_string();
        while let Some(line) = lines.next_line(&self.from)? {
            m += 1;
            let key = into_text(self.render(expr, &self.item(line, m)?)?);
            if last.get(&key) == Some(&m) {
                out.write_all(line.as_bytes()).map_err(io)?;
                out.write_all(b"\n").map_err(io)?;
            } else {
                dropped += 1;
            }
        }
        Ok(json!({
            "numKeys": last.len(),
            "processedItemsTotal": m,
            "droppedItemsTotal": dropped,
        }))
    }

    fn filter(
        &self,
        files: &Files,
        condition: &Property,
        include: bool,
        on_error: OnError,
        out: &mut impl Write,
    ) -> Result<Value, String> {
        let mut lines = self.lines(files)?;
        let (mut n, mut dropped) = (0u64, 0u64);
        let io = |e: std::io::Error| e.to_string();
        while let Some(line) = lines.next_line(&self.from)? {
            n += 1;
            // What is not an item fails the task, whatever
            // `errorOrNullBehavior` says: it is about a condition that
            // fails to render.
            let item = self.item(line, n)?;
            let keep = match self.render(condition, &item) {
                Ok(v) => is_truthy(&Value::String(into_text(v).trim().to_owned())) == include,
                Err(e) => match on_error {
                    OnError::Fail => return Err(e),
                    OnError::Include => true,
                    OnError::Exclude => false,
                },
            };
            if keep {
                out.write_all(line.as_bytes()).map_err(io)?;
                out.write_all(b"\n").map_err(io)?;
            } else {
                dropped += 1;
            }
        }
        Ok(json!({
            "processedItemsTotal": n,
            "droppedItemsTotal": dropped,
        }))
    }
}

#[cfg(test)]
mod tests;
