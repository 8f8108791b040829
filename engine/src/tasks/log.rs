//! Kestra's log tasks (`io.kestra.plugin.core.log`): `PurgeLogs`, which
//! deletes kept log lines, on the worker pool against the engine's
//! [`LogStore`](crate::logs::LogStore), and `Fetch`, which writes an
//! execution's lines to an Ion file of the internal storage. (`Log` itself
//! is in `core.rs`.)

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Answer, Job, Started, TaskContext, TaskKind, TaskType, WorkerEnv, name_list, work};
use crate::executor::into_text;
use crate::expression::Property;
use crate::flow::Level;

pub(super) static PURGE_LOGS: TaskType = TaskType {
    name: "io.kestra.plugin.core.log.PurgeLogs",
    aliases: &["io.kestra.core.tasks.log.PurgeLogs"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let namespace = p.string_property("namespace");
        let flow_id = p.string_property("flowId");
        let execution_id = p.string_property("executionId");
        let levels = name_list(
            p,
            "logLevels",
            Level::parse,
            "TRACE, DEBUG, INFO, WARN, ERROR",
        );
        let start_date = p.string_property("startDate");
        let end_date = p.req_string_property("endDate");
        Some(Arc::new(PurgeLogs {
            namespace,
            flow_id,
            execution_id,
            levels,
            start_date,
            end_date: end_date?,
        }))
    },
};

/// `log.PurgeLogs`: deletes the kept lines logged between `startDate` (if
/// given) and `endDate`, at `logLevels` (any by default), of flow
/// `namespace.flowId`, or of every flow of namespace `namespace` and below
/// (no `flowId`), or of execution `executionId`, or of all; `count` is how
/// many.
#[derive(Debug)]
pub(crate) struct PurgeLogs {
    namespace: Option<Property>,
    flow_id: Option<Property>,
    execution_id: Option<Property>,
    levels: Vec<Level>,
    start_date: Option<Property>,
    end_date: Property,
}

impl TaskKind for PurgeLogs {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let job = (|| {
            let text = |p: &Option<Property>| p.as_ref().map(|p| ctx.render_text(p)).transpose();
            Ok::<_, String>(PurgeJob {
                namespace: text(&self.namespace)?,
                flow_id: text(&self.flow_id)?,
                execution_id: text(&self.execution_id)?,
                levels: self.levels.clone(),
                start: self
                    .start_date
                    .as_ref()
                    .map(|p| ctx.render_date(p, "startDate"))
                    .transpose()?,
                end: ctx.render_date(&self.end_date, "endDate")?,
            })
        })();
        work(job)
    }
}

#[derive(Debug)]
struct PurgeJob {
    namespace: Option<String>,
    flow_id: Option<String>,
    execution_id: Option<String>,
    levels: Vec<Level>,
    start: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
}

impl Job for PurgeJob {
    fn run(self: Box<Self>, env: &WorkerEnv, within: Option<Duration>) -> Answer {
        (*self).work(env, within).into()
    }
}

impl PurgeJob {
    fn work(self, env: &WorkerEnv, _within: Option<Duration>) -> Result<Value, String> {
        let Some(logs) = &env.logs else {
            return Err("this engine keeps no logs to purge (PurgeLogs needs a server)".into());
        };
        let count = logs.purge(|l| {
            let namespace_ok = match (&self.namespace, &self.flow_id) {
                (Some(ns), Some(_)) => &*l.namespace == ns,
                (Some(ns), None) => crate::flow::is_within_namespace(&l.namespace, ns),
                (None, _) => true,
            };
            namespace_ok
                && self.flow_id.as_deref().is_none_or(|f| &*l.flow_id == f)
                && self
                    .execution_id
                    .as_deref()
                    .is_none_or(|e| l.execution.to_string() == e)
                && (self.levels.is_empty() || self.levels.contains(&l.level))
                && self.start.is_none_or(|s| l.timestamp >= s)
                && l.timestamp <= self.end
        });
        Ok(json!({ "count": count }))
    }
}

/// `log.Fetch`: the lines of execution `executionId` (this one by
/// default), at `level` or above (INFO), of the tasks `tasksId` (all by
/// default), written as Ion to a file of this task run: `uri`, and `size`,
/// the number of lines.
pub(super) static FETCH: TaskType = TaskType {
    name: "io.kestra.plugin.core.log.Fetch",
    aliases: &["io.kestra.core.tasks.log.Fetch"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let namespace = p.string_property("namespace");
        let flow_id = p.string_property("flowId");
        let execution_id = p.string_property("executionId");
        let tasks_id = p.property("tasksId");
        let level = p.level("level", Level::Info);
        match (&namespace, &flow_id, &execution_id) {
            (Some(_), None, _) | (None, Some(_), _) => {
                let at = p.here("namespace");
                p.problem(
                    &at,
                    "Both `namespace` and `flowId` must be set when `executionId` is set.",
                );
            }
            (Some(_), Some(_), None) => {
                let at = p.here("namespace");
                p.problem(
                    &at,
                    "`namespace` and `flowId` should only be set when `executionId` is set.",
                );
            }
            _ => {}
        }
        Some(Arc::new(Fetch {
            namespace,
            flow_id,
            execution_id,
            tasks_id,
            level: level?,
        }))
    },
};

#[derive(Debug)]
pub(crate) struct Fetch {
    namespace: Option<Property>,
    flow_id: Option<Property>,
    execution_id: Option<Property>,
    tasks_id: Option<Property>,
    level: Level,
}

impl TaskKind for Fetch {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let job = (|| {
            let text = |p: &Option<Property>| p.as_ref().map(|p| ctx.render_text(p)).transpose();
            let place = ctx.place();
            let execution = match text(&self.execution_id)? {
                Some(id) => id
                    .trim()
                    .parse()
                    .map_err(|_| format!("`executionId` `{id}` is not an execution id"))?,
                None => place.execution,
            };
            let tasks = match &self.tasks_id {
                None => Vec::new(),
                Some(p) => match ctx.render(p)? {
                    Value::Array(items) => items.into_iter().map(into_text).collect(),
                    Value::Null => Vec::new(),
                    other => vec![into_text(other)],
                },
            };
            Ok::<_, String>(FetchJob {
                place,
                execution,
                flow: match (text(&self.namespace)?, text(&self.flow_id)?) {
                    (Some(ns), Some(flow)) => Some((ns, flow)),
                    _ => None,
                },
                tasks,
                level: self.level,
            })
        })();
        work(job)
    }
}

#[derive(Debug)]
struct FetchJob {
    place: super::Place,
    execution: crate::execution::ExecutionId,
    /// The execution's flow, when named: its lines must be that flow's.
    flow: Option<(String, String)>,
    tasks: Vec<String>,
    level: Level,
}

impl Job for FetchJob {
    fn run(self: Box<Self>, env: &WorkerEnv, _within: Option<Duration>) -> Answer {
        Answer::from(self.work(env))
    }
}

/// Log lines read as Ion text, one line each, made as they are read.
struct IonLines<I> {
    lines: I,
    /// The line being read, and how much of it was.
    line: Vec<u8>,
    at: usize,
}

impl<I: Iterator<Item = std::sync::Arc<crate::logs::LogLine>>> std::io::Read for IonLines<I> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.line.len() {
            let Some(next) = self.lines.next() else {
                return Ok(0);
            };
            self.line = crate::ion::line(&next.json(), &["timestamp"]).into_bytes();
            self.line.push(b'\n');
            self.at = 0;
        }
        let n = buf.len().min(self.line.len() - self.at);
        buf[..n].copy_from_slice(&self.line[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl FetchJob {
    fn work(&self, env: &WorkerEnv) -> Result<Value, String> {
        let Some(logs) = &env.logs else {
            return Err("this engine keeps no logs to fetch (Fetch needs a server)".into());
        };
        let Some(files) = &env.files else {
            return Err("this engine has no internal storage: Fetch needs a server".into());
        };
        let query = crate::logs::LogQuery {
            min_level: Some(self.level),
            ..Default::default()
        };
        let lines: Vec<_> = logs
            .lines(self.execution, &query)
            .unwrap_or_default()
            .into_iter()
            .filter(|l| {
                self.flow
                    .as_ref()
                    .is_none_or(|(ns, f)| &*l.namespace == ns && &*l.flow_id == f)
                    && (self.tasks.is_empty()
                        || l.task_id
                            .as_deref()
                            .is_some_and(|t| self.tasks.iter().any(|x| x == t)))
            })
            .collect();
        let size = lines.len();
        // Written a line at a time: the file is never whole in memory.
        let mut text = IonLines {
            lines: lines.into_iter(),
            line: Vec::new(),
            at: 0,
        };
        let p = &self.place;
        let uri = p.file(&format!("{}-logs.ion", p.attempt))?;
        files
            .storage()
            .put(&uri, &mut text, files.max_file_bytes())
            .map_err(|e| e.to_string())?;
        Ok(json!({ "uri": uri.to_string(), "size": size }))
    }
}
