//! `execution.PurgeExecutions` (Kestra's `PurgeExecutions`): deletes the
//! ended executions the engine holds that ended between `startDate` and
//! `endDate` (of namespace `namespace` and below, of flow `flowId`, in
//! `states`), with their log lines (`purgeLog`), metrics (`purgeMetric`)
//! and files in the internal storage (`purgeStorage`). It runs on the worker
//! pool, its shards deleting their own; its answer is journaled like any
//! work's, and a purge a crash interrupted runs again (deleting what is
//! left). Executions past what memory keeps are not seen: their retention
//! lets them go.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Answer, Job, Started, TaskContext, TaskKind, TaskType, WorkerEnv, name_list, work};
use crate::execution::State;
use crate::expression::Property;
use crate::logs::LogQuery;

pub(super) static PURGE_EXECUTIONS: TaskType = TaskType {
    name: "io.kestra.plugin.core.execution.PurgeExecutions",
    aliases: &["io.kestra.core.tasks.storages.PurgeExecution"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let namespace = p.string_property("namespace");
        let flow_id = p.string_property("flowId");
        let start_date = p.string_property("startDate");
        let end_date = p.req_string_property("endDate");
        let states = name_list(p, "states", State::parse, "execution states");
        let purge_execution = p.bool("purgeExecution", true);
        let purge_log = p.bool("purgeLog", true);
        let purge_metric = p.bool("purgeMetric", true);
        let purge_storage = p.bool("purgeStorage", true);
        if purge_execution && !purge_storage {
            // The server's sweep removes the files of executions that are
            // gone: they cannot be kept past their execution.
            let at = p.here("purgeStorage");
            p.problem(
                &at,
                "`purgeStorage: false` with `purgeExecution: true` is not supported yet: \
                 an execution's files go with it",
            );
        }
        Some(Arc::new(PurgeExecutions {
            namespace,
            flow_id,
            start_date,
            end_date: end_date?,
            states,
            purge_execution,
            purge_log,
            purge_metric,
            purge_storage,
        }))
    },
};

#[derive(Debug)]
pub(crate) struct PurgeExecutions {
    namespace: Option<Property>,
    flow_id: Option<Property>,
    start_date: Option<Property>,
    end_date: Property,
    states: Vec<State>,
    purge_execution: bool,
    purge_log: bool,
    purge_metric: bool,
    purge_storage: bool,
}

impl TaskKind for PurgeExecutions {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let job = (|| {
            let text = |p: &Option<Property>| p.as_ref().map(|p| ctx.render_text(p)).transpose();
            Ok::<_, String>(PurgeJob {
                namespace: text(&self.namespace)?,
                flow_id: text(&self.flow_id)?,
                start: self
                    .start_date
                    .as_ref()
                    .map(|p| ctx.render_date(p, "startDate"))
                    .transpose()?,
                end: ctx.render_date(&self.end_date, "endDate")?,
                states: self.states.clone(),
                purge_execution: self.purge_execution,
                purge_log: self.purge_log,
                purge_metric: self.purge_metric,
                purge_storage: self.purge_storage,
            })
        })();
        work(job)
    }
}

#[derive(Debug)]
struct PurgeJob {
    namespace: Option<String>,
    flow_id: Option<String>,
    start: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
    states: Vec<State>,
    purge_execution: bool,
    purge_log: bool,
    purge_metric: bool,
    purge_storage: bool,
}

impl Job for PurgeJob {
    fn run(self: Box<Self>, env: &WorkerEnv, within: Option<Duration>) -> Answer {
        (*self).work(env, within).into()
    }
}

impl PurgeJob {
    fn work(self, env: &WorkerEnv, _within: Option<Duration>) -> Result<Value, String> {
        let Some(holdings) = &env.holdings else {
            return Err("PurgeExecutions runs only in an engine that holds executions".into());
        };
        // Kestra's search: the namespace and below, the start and end
        // within the bounds (an execution that has not ended is not one).
        let flows = std::cell::RefCell::new(Vec::new());
        let ids = holdings.ended(|r| {
            let ns = r.namespace();
            let taken = self
                .namespace
                .as_deref()
                .is_none_or(|want| crate::flow::is_within_namespace(ns, want))
                && self.flow_id.as_deref().is_none_or(|f| r.flow_id() == f)
                && self.start.is_none_or(|s| r.start_date() >= s)
                && r.end_date().is_some_and(|e| e <= self.end)
                && (self.states.is_empty() || self.states.contains(&r.state()));
            if taken {
                flows
                    .borrow_mut()
                    .push((r.id(), ns.to_owned(), r.flow_id().to_owned()));
            }
            taken
        });
        // The executions go first: one restarted meanwhile is not
        // deleted, and keeps its lines, metrics and files.
        let (ids, executions) = if self.purge_execution {
            let deleted = holdings.delete(ids)?;
            let count = deleted.len();
            (deleted, count)
        } else {
            (ids, 0)
        };
        let mut storages = 0;
        if self.purge_storage
            && let Some(files) = &env.files
        {
            let gone: rustc_hash::FxHashSet<_> = ids.iter().copied().collect();
            for (id, namespace, flow_id) in flows.into_inner() {
                if !gone.contains(&id) {
                    continue;
                }
                let prefix = crate::storage::Uri::execution_prefix(&namespace, &flow_id, id);
                storages += files
                    .storage()
                    .delete_under(&prefix)
                    .map_err(|e| format!("deleting the files of execution {id}: {e}"))?
                    .len();
            }
        }
        let mut logs = 0;
        if self.purge_log
            && let Some(store) = &env.logs
        {
            for id in &ids {
                logs += store.delete(*id, &LogQuery::default());
            }
        }
        let mut metrics = 0;
        if self.purge_metric
            && let Some(store) = &env.metrics
        {
            for id in &ids {
                metrics += store.delete(*id);
            }
        }
        Ok(json!({
            "executionsCount": executions,
            "logsCount": logs,
            "storagesCount": storages,
            "metricsCount": metrics,
        }))
    }
}
