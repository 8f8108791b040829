//! Kestra's log tasks (`io.kestra.plugin.core.log`): `PurgeLogs`, which
//! deletes kept log lines, on the worker pool against the engine's
//! [`LogStore`](crate::logs::LogStore). (`Log` itself is in `core.rs`;
//! `Fetch`, which writes the lines to a file of the internal storage, waits
//! for that storage.)

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Answer, Job, Started, TaskContext, TaskKind, TaskType, WorkerEnv, name_list, work};
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
