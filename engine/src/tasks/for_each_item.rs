//! `flow.ForEachItem`: a file of items split into batches, one execution
//! of another flow per batch.
//!
//! As Kestra does, the task is a flowable one over three tasks it makes for
//! itself, each a task run of its own: `<id>_split` splits `items` into
//! batch files (`batch`: `rows`, 1 by default, `bytes` or `partitions`) and
//! writes their list (`splits`); `<id>_items` starts one execution of
//! `namespace.flowId` per batch, its `inputs` rendered with `taskrun.items`
//! (the batch's file) and `taskrun.iteration` (its number, from 1), at
//! most [`MAX_RUNNING`] at once, and ends once they all have, as
//! `transmitFailed` says (`wait: false`: once they all exist); its outputs
//! say how many batches there are and how many are in each state. Last,
//! `<id>_merge` gathers the outputs of the executions that had some into
//! one Ion file, a line each (`subflowOutputs`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::storage::{MAX_SPLIT_PARTS, SplitBy, split, split_by};
use super::subflow::{Subflow, SubflowCall, parse_call};
use super::{
    Answer, Batches, FramePlan, Groups, Job, Place, Started, TaskContext, TaskKind, TaskType,
    WorkerEnv, work,
};
use crate::execution::{ExecutionId, State};
use crate::expression::Property;
use crate::flow::{Props, Task};
use crate::storage::Uri;

pub(super) static FOR_EACH_ITEM: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.ForEachItem",
    aliases: &["io.kestra.core.tasks.flows.ForEachItem"],
    flowable: true,
    own_timeout: false,
    parse,
};

/// The task that splits the items (never written in a flow).
static SPLIT: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.ForEachItem$ForEachItemSplit",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |_| None,
};

/// The task that starts an execution per batch.
static ITEMS: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.ForEachItem$ForEachItemExecutable",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |_| None,
};

/// The task that merges the batches' outputs.
static MERGE: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.ForEachItem$ForEachItemMergeOutputs",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |_| None,
};

/// The executions of one ForEachItem running at once, at most: a file of
/// 100,000 items in batches of 100 runs 64 of its 1,000 executions at a
/// time, the others not yet created.
pub(crate) const MAX_RUNNING: usize = 64;

/// The largest outputs file the merge writes.
const MAX_MERGED_BYTES: usize = 64 << 20;

/// `flow.ForEachItem`: its three tasks, made at parse.
#[derive(Debug)]
pub(crate) struct ForEachItem {
    tasks: Vec<Task>,
}

fn parse(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let id = p.task_id().map(str::to_owned);
    let items = p.req_string_property("items");
    let batch = parse_batch(p);
    let call = parse_call(p)?;
    let wait = call.waits();
    let id = id?;
    let split = SplitItems {
        items: items?,
        batch: batch?,
    };
    let tasks = vec![
        Task::internal(format!("{id}_split"), &SPLIT, Arc::new(split)),
        Task::internal(
            format!("{id}_items"),
            &ITEMS,
            Arc::new(StartBatches {
                split: format!("{id}_split"),
                call,
            }),
        ),
        Task::internal(
            format!("{id}_merge"),
            &MERGE,
            Arc::new(MergeOutputs {
                items: format!("{id}_items"),
                wait,
            }),
        ),
    ];
    Some(Arc::new(ForEachItem { tasks }))
}

/// `batch`: how the items are split.
#[derive(Debug)]
struct Batch {
    rows: Option<Property>,
    bytes: Option<Property>,
    partitions: Option<Property>,
    separator: Option<Property>,
}

fn parse_batch(p: &mut Props<'_, '_>) -> Option<Batch> {
    let Some((value, at)) = p.json("batch") else {
        return Some(Batch {
            rows: Some(Property::compile(&json!(1)).ok()?),
            bytes: None,
            partitions: None,
            separator: None,
        });
    };
    let Some(map) = value.as_object() else {
        p.problem(
            &at,
            "`batch` is a map of `rows`, `bytes`, `partitions`, `separator`",
        );
        return None;
    };
    let mut fields = Batch {
        rows: None,
        bytes: None,
        partitions: None,
        separator: None,
    };
    for (key, value) in map {
        let slot = match key.as_str() {
            "rows" => &mut fields.rows,
            "bytes" => &mut fields.bytes,
            "partitions" => &mut fields.partitions,
            "separator" => &mut fields.separator,
            other => {
                p.problem(
                    &at.child(other),
                    format!("`batch.{other}` is not a property of a ForEachItem's batch"),
                );
                continue;
            }
        };
        match Property::compile(value) {
            Ok(property) => *slot = Some(property),
            Err(e) => p.problem(&at.child(key), e.to_string()),
        }
    }
    if fields.rows.is_none() && fields.bytes.is_none() && fields.partitions.is_none() {
        fields.rows = Some(Property::compile(&json!(1)).ok()?);
    }
    Some(fields)
}

impl TaskKind for ForEachItem {
    fn start(&self, _ctx: &mut TaskContext<'_>) -> Started {
        Started::Frame(FramePlan::new(Groups::Sequence(0)))
    }

    fn restarts_whole(&self) -> bool {
        true
    }

    fn child_lists(&self) -> Vec<&[Task]> {
        vec![&self.tasks]
    }
}

/// `<id>_split`.
#[derive(Debug)]
struct SplitItems {
    items: Property,
    batch: Batch,
}

impl TaskKind for SplitItems {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let job = (|| {
            let from = ctx.render_text(&self.items)?;
            if !from.trim().starts_with(crate::storage::SCHEME) {
                return Err(format!(
                    "Unable to split the items from {from}, this is not an internal storage URI!"
                ));
            }
            let b = &self.batch;
            Ok(SplitJob {
                place: ctx.place(),
                from: ctx.readable_uri(&from, "items")?,
                by: split_by(ctx, &b.bytes, &b.partitions, &b.rows)?,
                separator: match &b.separator {
                    Some(p) => ctx.render_text(p)?,
                    None => "\n".to_owned(),
                },
            })
        })();
        work(job)
    }
}

/// Splits the items into batch files, `batch-<n>` in the task run's
/// folder, and lists them in `splits.txt`.
#[derive(Debug)]
struct SplitJob {
    place: Place,
    from: Uri,
    by: SplitBy,
    separator: String,
}

/// Batch `n`'s file (from 1), beside the list of batches `splits`.
fn batch_uri(splits: &str, n: u32) -> Option<String> {
    let (folder, _) = splits.rsplit_once('/')?;
    Some(format!("{folder}/batch-{n}"))
}

impl Job for SplitJob {
    fn run(self: Box<Self>, env: &WorkerEnv, _within: Option<Duration>) -> Answer {
        let Some(files) = &env.files else {
            return Answer::from(Err(
                "this engine has no internal storage: ForEachItem needs a server".to_owned(),
            ));
        };
        let done = (|| {
            let name = |_: usize, k: usize| format!("batch-{}", k + 1);
            let batches = split(
                files,
                &self.place,
                &self.from,
                self.by,
                &self.separator,
                &name,
            )?;
            let list: Vec<String> = batches.iter().map(ToString::to_string).collect();
            let p = &self.place;
            let splits = p.file("splits.txt")?;
            files
                .storage()
                .put(
                    &splits,
                    &mut list.join("\n").as_bytes(),
                    files.max_file_bytes(),
                )
                .map_err(|e| e.to_string())?;
            Ok(json!({
                "splits": splits.to_string(),
                "numberOfBatches": list.len(),
            }))
        })();
        Answer::from(done)
    }
}

/// `<id>_items`.
#[derive(Debug)]
struct StartBatches {
    /// The id of the split task beside it.
    split: String,
    call: Subflow,
}

impl TaskKind for StartBatches {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let split = ctx.sibling_outputs(&self.split);
        let split = split.as_deref().unwrap_or(&Value::Null);
        let (Some(splits), Some(count)) = (
            split.get("splits").and_then(Value::as_str),
            split.get("numberOfBatches").and_then(Value::as_u64),
        ) else {
            return Started::Done(Err(format!(
                "`{}` has no batches to start executions for",
                self.split
            )));
        };
        if count > MAX_SPLIT_PARTS as u64 {
            return Started::Done(Err(format!(
                "{count} batches: a ForEachItem runs at most {MAX_SPLIT_PARTS}"
            )));
        }
        let items: Option<Vec<String>> = (1..=count as u32).map(|n| batch_uri(splits, n)).collect();
        let Some(items) = items else {
            return Started::Done(Err(format!("`{splits}` is not a file's URI")));
        };
        Started::Batches(Box::new(Batches {
            items,
            limit: MAX_RUNNING,
        }))
    }

    fn batch_call(
        &self,
        ctx: &mut TaskContext<'_>,
        batch: u32,
        item: &str,
    ) -> Result<SubflowCall, String> {
        let taskrun = json!({ "items": item, "iteration": batch });
        self.call.call_with(ctx, &[("taskrun", &taskrun)])
    }

    fn after_batches(&self, ctx: &mut TaskContext<'_>, ended: &[(State, u32)]) -> Started {
        let outputs = ctx
            .own_outputs()
            .map_or_else(|| json!({}), |o| (*o).clone());
        // Kestra's `findTerminalState`: a failure first, then a kill, then
        // a warning; `allowFailure` and `allowWarning` apply as to any task.
        let count = |s: State| ended.iter().find(|(e, _)| *e == s).map_or(0, |(_, n)| *n);
        let state = if !self.call.transmits_failures() {
            State::Success
        } else if count(State::Failed) > 0 {
            State::Failed
        } else if count(State::Killed) > 0 {
            State::Killed
        } else if count(State::Warning) > 0 {
            State::Warning
        } else {
            State::Success
        };
        if state != State::Success {
            let total: u32 = ended.iter().map(|(_, n)| n).sum();
            let not_ok = total - count(State::Success);
            ctx.log(
                crate::flow::Level::Error,
                format!("{not_ok} of {total} batches' executions did not succeed"),
            );
        }
        Started::Ended(state, outputs)
    }
}

/// `<id>_merge`.
#[derive(Debug)]
struct MergeOutputs {
    /// The id of the task beside it that started the batches.
    items: String,
    /// The batches were waited for: each has ended.
    wait: bool,
}

impl TaskKind for MergeOutputs {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let count = ctx
            .sibling_outputs(&self.items)
            .and_then(|o| o.get("numberOfBatches").and_then(Value::as_u64))
            .unwrap_or(0);
        if count == 0 {
            // There were no executions (Kestra's null outputs).
            return Started::Done(Ok(None));
        }
        let children = ctx.sibling_batches(&self.items, count as u32);
        work(Ok(MergeJob {
            place: ctx.place(),
            children,
            wait: self.wait,
        }))
    }
}

/// Reads the batches' executions' outputs and writes them as Ion lines.
#[derive(Debug)]
struct MergeJob {
    place: Place,
    children: Vec<ExecutionId>,
    /// Every batch has ended: one whose record is gone is an error (else
    /// one not ended yet has no outputs to merge).
    wait: bool,
}

impl Job for MergeJob {
    fn run(self: Box<Self>, env: &WorkerEnv, _within: Option<Duration>) -> Answer {
        let (Some(files), Some(holdings)) = (&env.files, &env.holdings) else {
            return Answer::from(Err(
                "this engine has no internal storage: ForEachItem needs a server".to_owned(),
            ));
        };
        let done = (|| {
            let mut merged = String::new();
            for (n, child) in self.children.iter().enumerate() {
                let Some(record) = holdings.ended_record(*child)? else {
                    if self.wait {
                        return Err(format!(
                            "the execution {child} of batch {} is gone: its outputs cannot be merged",
                            n + 1
                        ));
                    }
                    continue;
                };
                let Some(outputs) = record.outputs().filter(|o| !is_empty(o)) else {
                    continue;
                };
                merged.push_str(&crate::ion::line(&outputs, &[]));
                merged.push('\n');
                if merged.len() > MAX_MERGED_BYTES {
                    return Err(format!(
                        "the batches' outputs pass {MAX_MERGED_BYTES} bytes: they are not merged"
                    ));
                }
            }
            if merged.is_empty() {
                return Ok(Value::Object(Map::new()));
            }
            let p = &self.place;
            let uri = p.file("outputs.ion")?;
            files
                .storage()
                .put(&uri, &mut merged.as_bytes(), files.max_file_bytes())
                .map_err(|e| e.to_string())?;
            Ok(json!({ "subflowOutputs": uri.to_string() }))
        })();
        Answer::from(done)
    }
}

fn is_empty(value: &Value) -> bool {
    value.as_object().is_some_and(Map::is_empty)
}

#[cfg(test)]
mod tests;
