//! `flow.WorkingDirectory`, whose tasks share one folder, and
//! `storage.LocalFiles`, which writes files into the folder it works in and
//! stores some of them.
//!
//! A WorkingDirectory task run first hands the worker pool a [`Setup`]:
//! its folder (`<work root>/<execution>/wd-<task run>`) made, its
//! `inputFiles` written. Its tasks then run one after another as a
//! Sequential's do, each task run of its own, and a script or a LocalFiles
//! among them works in that folder rather than one of its own
//! ([`Folder::of`]). Once they ended, whatever their states, a [`Closing`]
//! stores what its `outputFiles` match and removes the folder; the task
//! run ends as its tasks did, or FAILED if that work failed. Kestra runs
//! the whole of it on one worker; here its tasks run one at a time on the
//! node's workers, which all see the folder. The folder outlives a crash
//! (see `Files::clear_work_root`): the task a crash stopped runs again, as
//! a new attempt, in what the tasks before it left.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::folder::{self, Folder};
use super::texts;
use crate::execution::State;
use crate::expression::Property;
use crate::flow::{Props, Task};
use crate::tasks::{
    Answer, FramePlan, Groups, Job, Place, Started, TaskContext, TaskKind, TaskType, WorkerEnv,
};

pub(in crate::tasks) static WORKING_DIRECTORY: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.WorkingDirectory",
    aliases: &[
        "io.kestra.core.tasks.flows.WorkingDirectory",
        "io.kestra.core.tasks.flows.Worker",
    ],
    flowable: true,
    own_timeout: false,
    parse: parse_working_dir,
};

pub(in crate::tasks) static LOCAL_FILES: TaskType = TaskType {
    name: "io.kestra.plugin.core.storage.LocalFiles",
    aliases: &["io.kestra.core.tasks.storages.LocalFiles"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        Some(Arc::new(LocalFiles {
            inputs: p.property("inputs"),
            outputs: p.property("outputs"),
        }))
    },
};

/// `flow.WorkingDirectory`'s properties.
#[derive(Debug)]
pub(crate) struct WorkingDirectory {
    tasks: Vec<Task>,
    input_files: Option<Property>,
    output_files: Option<Property>,
    namespace_files: Option<Arc<folder::NamespaceFiles>>,
}

fn parse_working_dir(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let tasks = p.req_task_list("tasks");
    let at = p.here("tasks");
    // Kestra's `RunnableTask`s only: a Subflow starts an execution, an
    // Exit ends one, and neither runs on its worker.
    const NOT_RUNNABLE: &[&str] = &[
        "io.kestra.plugin.core.flow.Subflow",
        "io.kestra.plugin.core.execution.Exit",
    ];
    for (i, task) in tasks.iter().enumerate() {
        if task.is_flowable() || NOT_RUNNABLE.contains(&task.type_name.as_str()) {
            p.problem(
                &at.item(i),
                "Only runnable tasks are allowed as children of a WorkingDirectory task",
            );
        }
    }
    let input_files = p.property("inputFiles");
    let output_files = p.property("outputFiles");
    let namespace_files = folder::NamespaceFiles::parse(p);
    if let Some((_, at)) = p.json("cache") {
        p.problem(&at, "`cache` is not supported yet");
    }
    Some(Arc::new(WorkingDirectory {
        tasks,
        input_files,
        output_files,
        namespace_files,
    }))
}

impl TaskKind for WorkingDirectory {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let place = ctx.place();
        let folder = Folder::shared_by(ctx, &place);
        let inputs = match &self.input_files {
            None => Ok(Vec::new()),
            Some(p) => ctx
                .render(p)
                .and_then(|v| folder::input_files(ctx, v, "inputFiles")),
        };
        let namespace_files = self
            .namespace_files
            .clone()
            .map(|f| (place.namespace.clone(), f));
        super::super::work(inputs.map(|inputs| Setup {
            folder,
            inputs,
            namespace_files,
        }))
    }

    fn on_work(&self, _ctx: &mut TaskContext<'_>, _outputs: Value) -> Started {
        Started::Frame(FramePlan::new(Groups::Sequence(0)))
    }

    fn closing(&self, ctx: &mut TaskContext<'_>, _state: State) -> Option<Box<dyn Job>> {
        let place = ctx.place();
        let globs = match &self.output_files {
            None => Ok(Vec::new()),
            Some(p) => ctx.render(p).and_then(|v| texts(v, "outputFiles")),
        };
        Some(Box::new(Closing {
            folder: Folder::shared_by(ctx, &place),
            place,
            globs,
        }))
    }

    fn shares_folder(&self) -> bool {
        true
    }

    fn restarts_whole(&self) -> bool {
        true
    }

    fn child_lists(&self) -> Vec<&[Task]> {
        vec![&self.tasks]
    }
}

/// A WorkingDirectory's first work: its folder, with its input files.
#[derive(Debug)]
struct Setup {
    folder: Folder,
    inputs: Vec<(String, Option<String>)>,
    /// The namespace files to copy in first, and their namespace.
    namespace_files: Option<(String, Arc<folder::NamespaceFiles>)>,
}

impl Job for Setup {
    fn run(self: Box<Self>, env: &WorkerEnv, _within: Option<Duration>) -> Answer {
        let dir = &self.folder.path;
        // A setup asked again after a crash starts over: no task of it ran.
        self.folder.remove();
        let made = std::fs::create_dir_all(dir)
            .map_err(|e| format!("the working directory {}: {e}", dir.display()))
            .and_then(|()| match &self.namespace_files {
                Some((namespace, files)) => files.copy(env, namespace, dir),
                None => Ok(()),
            })
            .and_then(|()| folder::write_inputs(env, dir, &self.inputs));
        if made.is_err() {
            self.folder.remove();
        }
        Answer::from(made.map(|()| Value::Object(Map::new())))
    }
}

/// A WorkingDirectory's last work: its output files stored, its folder
/// removed.
#[derive(Debug)]
struct Closing {
    folder: Folder,
    place: Place,
    /// Rendered `outputFiles`, or why they did not render.
    globs: Result<Vec<String>, String>,
}

impl Job for Closing {
    fn run(self: Box<Self>, env: &WorkerEnv, _within: Option<Duration>) -> Answer {
        let stored = if self.folder.path.exists() {
            self.globs.clone().and_then(|globs| {
                let wanted = folder::matching(&self.folder.path, &globs, "outputFiles")?;
                folder::store(env, &self.place, wanted)
            })
        } else {
            // Asked again after a crash that followed the folder's removal:
            // what it stored then is its outputs.
            self.stored_before(env)
        };
        self.folder.remove();
        // As Kestra: no outputs unless a file matched.
        Answer::from(stored.map(|stored| {
            let mut outputs = Map::new();
            if !stored.is_empty() {
                outputs.insert("outputFiles".to_owned(), Value::Object(stored));
            }
            Value::Object(outputs)
        }))
    }
}

impl Closing {
    /// The files this task run stored, by name.
    fn stored_before(&self, env: &WorkerEnv) -> Result<Map<String, Value>, String> {
        let files = folder::files(env)?;
        let p = &self.place;
        let prefix = format!(
            "{}/tasks/{}/{}",
            crate::storage::Uri::execution_prefix(&p.namespace, &p.flow_id, p.execution),
            p.task_id,
            p.task_run
        );
        let uris = files
            .storage()
            .list_under(&prefix)
            .map_err(|e| e.to_string())?;
        Ok(uris
            .iter()
            .filter_map(|uri| {
                let name = uri
                    .path()
                    .strip_prefix(prefix.as_str())?
                    .trim_start_matches('/');
                Some((name.to_owned(), Value::String(uri.to_string())))
            })
            .collect())
    }
}

/// `storage.LocalFiles`'s properties.
#[derive(Debug)]
pub(crate) struct LocalFiles {
    /// Files to write into the folder: names to contents (a `kestra://`
    /// URI is copied from the storage).
    inputs: Option<Property>,
    /// Globs of the folder's files to store.
    outputs: Option<Property>,
}

impl TaskKind for LocalFiles {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let job = || -> Result<LocalFilesJob, String> {
            let place = ctx.place();
            let inputs = match &self.inputs {
                None => Vec::new(),
                Some(p) => folder::input_files(ctx, ctx.render(p)?, "inputs")?,
            };
            let globs = match &self.outputs {
                None => Vec::new(),
                Some(p) => texts(ctx.render(p)?, "outputs")?,
            };
            Ok(LocalFilesJob {
                folder: Folder::of(ctx, &place),
                place,
                inputs,
                globs,
            })
        };
        super::super::work(job())
    }
}

/// A LocalFiles task run, rendered.
#[derive(Debug)]
struct LocalFilesJob {
    folder: Folder,
    place: Place,
    inputs: Vec<(String, Option<String>)>,
    globs: Vec<String>,
}

impl Job for LocalFilesJob {
    fn run(self: Box<Self>, env: &WorkerEnv, _within: Option<Duration>) -> Answer {
        let dir = &self.folder.path;
        if !self.folder.shared {
            self.folder.remove();
        }
        let stored = std::fs::create_dir_all(dir)
            .map_err(|e| format!("the working directory {}: {e}", dir.display()))
            .and_then(|()| folder::write_inputs(env, dir, &self.inputs))
            .and_then(|()| folder::matching(dir, &self.globs, "outputs"))
            .and_then(|wanted| folder::store(env, &self.place, wanted));
        if !self.folder.shared {
            self.folder.remove();
        }
        Answer::from(stored.map(|uris| {
            let mut outputs = Map::new();
            outputs.insert("uris".to_owned(), Value::Object(uris));
            Value::Object(outputs)
        }))
    }
}

#[cfg(test)]
mod tests;
