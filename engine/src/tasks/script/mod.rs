//! Kestra's script tasks on the process runner: `shell.Commands` and
//! `shell.Script`, `python.Script` and `python.Commands`, `node.Script` and
//! `node.Commands`, and the legacy `core.tasks.scripts.Bash`.
//!
//! A task run's start renders its commands (with `{{ workingDir }}` and
//! `{{ outputDir }}`, whose paths the shard decides: a folder per
//! execution, task run and attempt under the engine's work root) and hands
//! a [`ScriptJob`] to the worker pool. The job makes the folder, writes the
//! `inputFiles` (a `kestra://` value copied from the internal storage),
//! downloads the `kestra://` files its commands name, runs the command
//! ([`process`]), stores what its `outputFiles` globs and its output
//! folder match, and removes the folder. Its answer carries the lines the
//! command printed (Kestra's protocol, [`protocol`]).
//!
//! Kestra defaults these tasks to a Docker runner; Peregrine has none, so a
//! `containerImage`, a `docker` block or a Docker `taskRunner` is a warning
//! (`Flow::containers`), and the server decides whether such a flow runs
//! here or is refused.

mod folder;
mod process;
mod protocol;
mod working_dir;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use self::folder::{Folder, download, input_files, matching, walk};
pub(crate) use self::process::{Cancel, Permits, kill_leftovers};
pub(super) use self::working_dir::{LOCAL_FILES, WORKING_DIRECTORY};
use super::{Answer, Job, JobLine, Place, Started, TaskContext, TaskKind, TaskType, WorkerEnv};
use crate::executor::into_text;
use crate::expression::Property;
use crate::flow::{Level, Props};
use crate::storage::{self, Uri};

/// What a script task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Shell,
    Python,
    Node,
}

pub(super) static SHELL_COMMANDS: TaskType = TaskType {
    name: "io.kestra.plugin.scripts.shell.Commands",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| parse(p, Flavor::Shell, Body::Commands),
};

pub(super) static SHELL_SCRIPT: TaskType = TaskType {
    name: "io.kestra.plugin.scripts.shell.Script",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| parse(p, Flavor::Shell, Body::Script),
};

pub(super) static PYTHON_SCRIPT: TaskType = TaskType {
    name: "io.kestra.plugin.scripts.python.Script",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| parse(p, Flavor::Python, Body::Script),
};

pub(super) static PYTHON_COMMANDS: TaskType = TaskType {
    name: "io.kestra.plugin.scripts.python.Commands",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| parse(p, Flavor::Python, Body::Commands),
};

pub(super) static NODE_SCRIPT: TaskType = TaskType {
    name: "io.kestra.plugin.scripts.node.Script",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| parse(p, Flavor::Node, Body::Script),
};

pub(super) static NODE_COMMANDS: TaskType = TaskType {
    name: "io.kestra.plugin.scripts.node.Commands",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| parse(p, Flavor::Node, Body::Commands),
};

/// The deprecated `Bash`: `commands` with `interpreter` and
/// `interpreterArgs`, named output files made for the commands to fill.
pub(super) static BASH: TaskType = TaskType {
    name: "io.kestra.core.tasks.scripts.Bash",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: parse_bash,
};

/// The task runners that are the process runner.
const PROCESS_RUNNERS: &[&str] = &[
    "io.kestra.plugin.core.runner.Process",
    "io.kestra.plugin.scripts.runner.Process",
];
/// The Docker task runners, run on the process runner instead.
const DOCKER_RUNNERS: &[&str] = &[
    "io.kestra.plugin.scripts.runner.docker.Docker",
    "io.kestra.plugin.scripts.runner.docker.DockerTaskRunner",
];

#[derive(Debug, Clone, Copy)]
enum Body {
    Commands,
    Script,
}

/// A script task's properties.
#[derive(Debug)]
pub(crate) struct Script {
    flavor: Flavor,
    /// `commands` (a list) or `script` (one text).
    body: Property,
    is_script: bool,
    interpreter: Interpreter,
    before_commands: Option<Property>,
    env: Option<Property>,
    input_files: Option<Property>,
    output_files: Option<Property>,
    /// Output on stderr ends the task run WARNING (Kestra before 0.23, and
    /// its legacy Bash; off by default as Kestra's script tasks now).
    warning_on_stderr: bool,
    /// `set -e` before the commands.
    fail_fast: bool,
    /// The legacy Bash's named output files and folders.
    legacy: Option<Legacy>,
    /// `namespaceFiles`, when enabled.
    namespace_files: Option<Arc<folder::NamespaceFiles>>,
}

/// What runs the commands.
#[derive(Debug)]
enum Interpreter {
    /// `interpreter`, a list; default `["/bin/sh", "-c"]`.
    List(Option<Property>),
    /// The legacy Bash's `interpreter` (default `/bin/sh`) and
    /// `interpreterArgs` (default `["-c"]`).
    Bash {
        program: Option<Property>,
        args: Option<Property>,
    },
}

/// What only the legacy Bash has.
#[derive(Debug, Default)]
struct Legacy {
    /// `outputFiles` (and `outputsFiles`, `files`): names of files made
    /// for the commands to write, `{{ outputFiles.name }}`.
    files: Vec<String>,
    /// `outputDirs`: names of folders likewise, `{{ outputDirs.name }}`.
    dirs: Vec<String>,
}

fn parse(p: &mut Props<'_, '_>, flavor: Flavor, body: Body) -> Option<Arc<dyn TaskKind>> {
    let (key, is_script) = match body {
        Body::Commands => ("commands", false),
        Body::Script => ("script", true),
    };
    let body = if is_script {
        p.req_string_property(key)
    } else {
        p.list_property(key)
    };
    let interpreter = p.property("interpreter");
    let before_commands = p.property("beforeCommands");
    let env = p.property("env");
    let input_files = p.property("inputFiles");
    let output_files = p.property("outputFiles");
    let warning_on_stderr = p.bool("warningOnStdErr", false);
    let fail_fast = p.bool("failFast", true);
    let namespace_files = folder::NamespaceFiles::parse(p);
    runner_properties(p);
    if matches!(flavor, Flavor::Python)
        && let Some((_, at)) = p.json("dependencies")
    {
        p.problem(
            &at,
            "`dependencies` is not supported yet: install them in `beforeCommands`",
        );
    }
    Some(Arc::new(Script {
        flavor,
        body: body?,
        is_script,
        interpreter: Interpreter::List(interpreter),
        before_commands,
        env,
        input_files,
        output_files,
        warning_on_stderr,
        fail_fast,
        legacy: None,
        namespace_files,
    }))
}

fn parse_bash(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let body = p.list_property("commands");
    let interpreter = p.string_property("interpreter");
    let interpreter_args = p.property("interpreterArgs");
    let env = p.property("env");
    let input_files = p.property("inputFiles");
    let warning_on_stderr = p.bool("warningOnStdErr", true);
    let fail_fast = p.bool("exitOnFailed", true);
    let mut legacy = Legacy::default();
    for key in ["outputFiles", "outputsFiles", "files"] {
        legacy.files.extend(super::name_list(
            p,
            key,
            |s| Some(s.to_owned()),
            "file names",
        ));
    }
    legacy.dirs = super::name_list(p, "outputDirs", |s| Some(s.to_owned()), "folder names");
    for name in legacy.files.iter().chain(&legacy.dirs) {
        if !is_plain_name(name) {
            let at = p.here("outputFiles");
            p.problem(&at, format!("`{name}` is not a plain file name"));
        }
    }
    if let Some((runner, at)) = p.json("runner") {
        match runner.as_str() {
            Some("PROCESS") => {}
            Some("DOCKER") => p.container(&at, container_warning("`runner: DOCKER`")),
            _ => p.problem(&at, "`runner` is PROCESS or DOCKER"),
        }
    }
    if let Some((_, at)) = p.json("dockerOptions") {
        p.container(&at, container_warning("`dockerOptions`"));
    }
    let interpreter = Interpreter::Bash {
        program: interpreter,
        args: interpreter_args,
    };
    Some(Arc::new(Script {
        flavor: Flavor::Shell,
        body: body?,
        is_script: false,
        interpreter,
        before_commands: None,
        env,
        input_files,
        output_files: None,
        warning_on_stderr,
        fail_fast,
        legacy: Some(legacy),
        namespace_files: None,
    }))
}

fn container_warning(what: &str) -> String {
    format!(
        "{what}: Peregrine has no Docker; this task runs on the process runner, on the server's own system"
    )
}

/// `containerImage`, `taskRunner`, `docker`, `runner`, `targetOS`,
/// `outputDirectory`: honoured, warned about, or refused.
/// (`namespaceFiles` is `folder::NamespaceFiles::parse`'s.)
fn runner_properties(p: &mut Props<'_, '_>) {
    if let Some((image, at)) = p.json("containerImage") {
        let image = into_text(image);
        p.container(
            &at,
            container_warning(&format!("`containerImage: {image}`")),
        );
    }
    if let Some((_, at)) = p.json("docker") {
        p.container(&at, container_warning("`docker`"));
    }
    if let Some((runner, at)) = p.json("runner") {
        match runner.as_str() {
            Some("PROCESS") => {}
            Some("DOCKER") => p.container(&at, container_warning("`runner: DOCKER`")),
            _ => p.problem(&at, "`runner` is PROCESS or DOCKER"),
        }
    }
    if let Some((runner, at)) = p.json("taskRunner") {
        let kind = runner.get("type").and_then(Value::as_str).unwrap_or("");
        let others = runner
            .as_object()
            .map(|m| {
                m.keys()
                    .filter(|k| *k != "type")
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if PROCESS_RUNNERS.contains(&kind) {
            if let Some(key) = others.first() {
                p.problem(
                    &at.child(key),
                    format!("the process runner's `{key}` is not supported yet"),
                );
            }
        } else if DOCKER_RUNNERS.contains(&kind) {
            p.container(&at, container_warning("the Docker task runner"));
        } else if kind.is_empty() {
            p.problem(&at, "`taskRunner` is a map with a `type`");
        } else {
            p.problem(
                &at.child("type"),
                format!(
                    "task runner `{kind}` is not supported yet: Peregrine runs scripts on io.kestra.plugin.core.runner.Process"
                ),
            );
        }
    }
    if let Some((os, at)) = p.json("targetOS") {
        match os.as_str() {
            Some("LINUX" | "AUTO") => {}
            _ => p.problem(&at, "`targetOS` other than LINUX or AUTO is not supported"),
        }
    }
    // Always on in Peregrine: `{{ outputDir }}` is always there.
    let _ = p.bool("outputDirectory", false);
}

/// A file name with no folder in it.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".."
}

impl TaskKind for Script {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        super::work(self.job(ctx))
    }
}

impl Script {
    /// The job with every property rendered now.
    fn job(&self, ctx: &TaskContext<'_>) -> Result<ScriptJob, String> {
        let place = ctx.place();
        let folder = Folder::of(ctx, &place);
        let dir = folder.path.clone();
        let output_dir = dir.join(&place.task_run);
        let dir_text = Value::String(dir.display().to_string());
        let output_text = Value::String(output_dir.display().to_string());
        let mut legacy_files = BTreeMap::new();
        let mut legacy_dirs = BTreeMap::new();
        if let Some(legacy) = &self.legacy {
            for name in &legacy.files {
                legacy_files.insert(name.clone(), dir.join(format!("{name}_{}", place.attempt)));
            }
            for name in &legacy.dirs {
                legacy_dirs.insert(
                    name.clone(),
                    dir.join(format!("{name}_dir_{}", place.attempt)),
                );
            }
        }
        let paths = |m: &BTreeMap<String, PathBuf>| {
            Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.display().to_string())))
                    .collect(),
            )
        };
        let (files_var, dirs_var) = (paths(&legacy_files), paths(&legacy_dirs));
        let mut vars = vec![("workingDir", &dir_text), ("outputDir", &output_text)];
        if self.legacy.is_some() {
            vars.extend([
                ("outputFiles", &files_var),
                ("temp", &files_var),
                ("outputDirs", &dirs_var),
            ]);
        }
        let render = |p: &Property| ctx.render_with_vars(p, &vars);
        let list = |p: &Option<Property>, what: &str| -> Result<Vec<String>, String> {
            match p {
                None => Ok(Vec::new()),
                Some(p) => texts(render(p)?, what),
            }
        };
        let body = if self.is_script {
            vec![into_text(render(&self.body)?)]
        } else {
            texts(render(&self.body)?, "commands")?
        };
        let interpreter = match &self.interpreter {
            Interpreter::List(Some(p)) => texts(render(p)?, "interpreter")?,
            Interpreter::List(None) => vec!["/bin/sh".to_owned(), "-c".to_owned()],
            Interpreter::Bash { program, args } => {
                let mut argv = vec![match program {
                    Some(p) => into_text(render(p)?),
                    None => "/bin/sh".to_owned(),
                }];
                match args {
                    Some(p) => argv.extend(texts(render(p)?, "interpreterArgs")?),
                    None => argv.push("-c".to_owned()),
                }
                argv
            }
        };
        if interpreter.is_empty() {
            return Err("`interpreter` is empty".to_owned());
        }
        let before = list(&self.before_commands, "beforeCommands")?;
        // Kestra renders `env` without `workingDir`.
        let env = match &self.env {
            None => Vec::new(),
            Some(p) => match ctx.render(p)? {
                Value::Object(map) => map.into_iter().map(|(k, v)| (k, into_text(v))).collect(),
                Value::Null => Vec::new(),
                other => return Err(format!("`env` `{other}` is not a map")),
            },
        };
        // What the job will copy from the storage: only files this
        // execution may read.
        let input_files = match &self.input_files {
            None => Vec::new(),
            Some(p) => input_files(ctx, render(p)?, "inputFiles")?,
        };
        let scanned = if self.is_script && self.flavor != Flavor::Shell {
            before.iter().collect::<Vec<_>>()
        } else {
            before.iter().chain(&body).collect()
        };
        for text in scanned {
            for span in uri_spans(text) {
                ctx.readable_uri(&text[span], "commands")?;
            }
        }
        let output_globs = list(&self.output_files, "outputFiles")?;
        let limits = ctx.limits();
        let namespace_files = self
            .namespace_files
            .clone()
            .map(|f| (place.namespace.clone(), f));
        Ok(ScriptJob {
            place,
            flavor: self.flavor,
            is_script: self.is_script,
            body,
            interpreter,
            before,
            env,
            input_files,
            output_globs,
            namespace_files,
            dir,
            shared: folder.shared,
            output_dir,
            legacy_files,
            legacy_dirs,
            warning_on_stderr: self.warning_on_stderr,
            fail_fast: self.fail_fast,
            legacy: self.legacy.is_some(),
            max_log_bytes: limits.max_job_log_bytes,
            live: ctx.live_target(),
        })
    }
}

/// A rendered list of texts (a JSON text of one, or one text).
fn texts(value: Value, what: &str) -> Result<Vec<String>, String> {
    match value {
        Value::Array(items) => Ok(items.into_iter().map(into_text).collect()),
        Value::String(s) if s.trim_start().starts_with('[') => {
            match serde_json::from_str::<Vec<Value>>(&s) {
                Ok(items) => Ok(items.into_iter().map(into_text).collect()),
                Err(e) => Err(format!("`{what}` is not a JSON list: {e}")),
            }
        }
        Value::Null => Ok(Vec::new()),
        other => Ok(vec![into_text(other)]),
    }
}

/// Where `kestra://` URIs are in `text` (Kestra's
/// `kestra:\/\/[-a-zA-Z0-9%._\+~#=/]*`).
fn uri_spans(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find(storage::SCHEME) {
        let start = from + found;
        let tail = &text[start + storage::SCHEME.len()..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-%._+~#=/".contains(c)))
            .unwrap_or(tail.len());
        let end = start + storage::SCHEME.len() + len;
        spans.push(start..end);
        from = end;
    }
    spans
}

/// One attempt of a script, rendered: what the worker runs.
#[derive(Debug)]
struct ScriptJob {
    place: Place,
    flavor: Flavor,
    is_script: bool,
    body: Vec<String>,
    interpreter: Vec<String>,
    before: Vec<String>,
    env: Vec<(String, String)>,
    /// Relative path, then content (none: an empty file).
    input_files: Vec<(String, Option<String>)>,
    output_globs: Vec<String>,
    /// The namespace files to copy in first, and their namespace.
    namespace_files: Option<(String, Arc<folder::NamespaceFiles>)>,
    dir: PathBuf,
    /// `dir` is its WorkingDirectory's: neither emptied nor removed.
    shared: bool,
    output_dir: PathBuf,
    legacy_files: BTreeMap<String, PathBuf>,
    legacy_dirs: BTreeMap<String, PathBuf>,
    warning_on_stderr: bool,
    fail_fast: bool,
    legacy: bool,
    max_log_bytes: usize,
    /// Where its lines are shown as it prints them.
    live: crate::logs::LiveTarget,
}

impl Job for ScriptJob {
    fn run(self: Box<Self>, env: &WorkerEnv, within: Option<Duration>) -> Answer {
        let folder = Folder {
            path: self.dir.clone(),
            shared: self.shared,
        };
        let script = self.script_file();
        let group = self.group_file();
        let answer = self.work(env, within);
        // The folder goes whatever happened (a retry gets a new one); a
        // shared one stays for the tasks after, without the script's file.
        if folder.shared {
            let _ = std::fs::remove_file(script);
            let _ = std::fs::remove_file(group);
        } else {
            folder.remove();
        }
        answer
    }
}

impl ScriptJob {
    fn work(self: Box<Self>, env: &WorkerEnv, within: Option<Duration>) -> Answer {
        let fail = |message: String| Answer::from(Err(message));
        if let Err(e) = self.prepare(env) {
            return fail(e);
        }
        let argv = match self.command(env) {
            Ok(argv) => argv,
            Err(e) => return fail(e),
        };
        let mut vars = self.env.clone();
        vars.push(("WORKING_DIR".into(), self.dir.display().to_string()));
        vars.push(("OUTPUT_DIR".into(), self.output_dir.display().to_string()));
        if self.flavor != Flavor::Shell {
            // As Kestra's python and node tasks.
            vars.push(("PYTHONUNBUFFERED".into(), "true".into()));
            vars.push(("PIP_ROOT_USER_ACTION".into(), "ignore".into()));
            vars.push(("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into()));
        }
        let group_file = self.group_file();
        let spec = process::Spec {
            argv: &argv,
            dir: &self.dir,
            env: &vars,
            within,
            stderr_level: Level::Error,
            max_log_bytes: self.max_log_bytes,
            group_file: Some(&group_file),
            live: env
                .logs
                .clone()
                .map(|store| crate::logs::Live::new(store, self.live.clone())),
        };
        let ended = match process::run(&spec, &env.processes, &env.cancel) {
            Ok(ended) => ended,
            Err(process::NotRun::Spawn(why)) => return fail(why),
            Err(process::NotRun::NoPermit { interrupted }) => {
                return fail(if interrupted {
                    "the script was stopped before it started".to_owned()
                } else {
                    "the script's time was up while it waited for a free process slot (`scripts.max-processes`)".to_owned()
                });
            }
        };
        let keeper = ended.logs;
        let logs = keeper.finish();
        let mut failed_outputs = None;
        let result = if ended.interrupted {
            Err("the script was killed: its attempt was stopped".to_owned())
        } else if ended.timed_out {
            Err("the script was killed: its time was up".to_owned())
        } else if let Some(refused) = ended.said.refused {
            Err(refused)
        } else {
            match ended.exit_code {
                Some(0) => self.outputs(env, 0, ended.said.vars, &logs),
                Some(code) => {
                    // Kestra keeps a failed command's exit code, vars and
                    // output files on its task run.
                    failed_outputs = self.outputs(env, code, ended.said.vars, &logs).ok();
                    Err(format!("Command failed with exit code {code}"))
                }
                None => Err("the script was killed by a signal".to_owned()),
            }
        };
        let warning = result.is_ok() && self.warning_on_stderr && ended.wrote_stderr;
        Answer {
            result,
            logs,
            metrics: ended.said.metrics,
            failed_outputs,
            warning,
        }
    }

    /// Makes the working folder and writes the input files into it.
    fn prepare(&self, env: &WorkerEnv) -> Result<(), String> {
        let io = |e: std::io::Error| format!("the working directory {}: {e}", self.dir.display());
        if self.dir.exists() && !self.shared {
            // A crash's leftover of this same attempt.
            std::fs::remove_dir_all(&self.dir).map_err(io)?;
        }
        std::fs::create_dir_all(&self.output_dir).map_err(io)?;
        for dir in self.legacy_dirs.values() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        for file in self.legacy_files.values() {
            std::fs::write(file, b"").map_err(io)?;
        }
        if let Some((namespace, files)) = &self.namespace_files {
            files.copy(env, namespace, &self.dir)?;
        }
        folder::write_inputs(env, &self.dir, &self.input_files)
    }

    /// The file a python or node `script` is written to, one per attempt
    /// (a late attempt's cleanup leaves the next one's).
    fn script_file(&self) -> PathBuf {
        let ext = if self.flavor == Flavor::Python {
            "py"
        } else {
            "js"
        };
        let p = &self.place;
        self.dir.join(format!("{}-{}.{ext}", p.task_run, p.attempt))
    }

    /// Where the attempt's process group is recorded, beside its folder
    /// (`Files::clear_work_root` reads it): one per attempt, also when the
    /// folder is shared.
    fn group_file(&self) -> PathBuf {
        if !self.shared {
            return self.dir.with_extension("pgid");
        }
        let name = self
            .dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("wd");
        let p = &self.place;
        self.dir
            .with_file_name(format!("{name}-{}-{}.pgid", p.task_run, p.attempt))
    }

    /// The program and its arguments: the interpreter, then the commands
    /// as one text (Kestra's `ScriptService.scriptCommands`), each
    /// `kestra://` URI in them replaced by the file downloaded for it.
    fn command(&self, env: &WorkerEnv) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        if self.fail_fast {
            lines.push(
                if self.legacy {
                    "set -o errexit"
                } else {
                    "set -e"
                }
                .to_owned(),
            );
        }
        lines.extend(self.before.iter().cloned());
        if self.is_script && self.flavor != Flavor::Shell {
            let program = match self.flavor {
                Flavor::Python => python(),
                _ => "node",
            };
            let file = self.script_file();
            std::fs::write(&file, self.body.concat())
                .map_err(|e| format!("{}: {e}", file.display()))?;
            lines.push(format!("{program} {}", file.display()));
        } else {
            lines.extend(self.body.iter().cloned());
        }
        let mut text = lines.join("\n");
        if text.contains(storage::SCHEME) {
            text = self.replace_uris(env, &text)?;
        }
        let mut argv = self.interpreter.clone();
        argv.push(text);
        Ok(argv)
    }

    /// `text` with each `kestra://` URI downloaded into the working folder
    /// and replaced by its path.
    fn replace_uris(&self, env: &WorkerEnv, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (n, span) in uri_spans(text).into_iter().enumerate() {
            out.push_str(&text[at..span.start]);
            let uri = &text[span.clone()];
            let name = Uri::parse(uri)
                .map(|u| u.file_name().to_owned())
                .map_err(|e| e.to_string())?;
            let path = self.dir.join(format!(".input-{}-{name}", n + 1));
            download(env, uri, &path)?;
            out.push_str(&path.display().to_string());
            at = span.end;
        }
        out.push_str(&text[at..]);
        Ok(out)
    }

    /// The task run's outputs once the command succeeded: its `vars`, exit
    /// code, and the files its globs and its output folder matched, stored.
    fn outputs(
        &self,
        env: &WorkerEnv,
        exit_code: i32,
        vars: Map<String, Value>,
        logs: &[JobLine],
    ) -> Result<Value, String> {
        let mut wanted = matching(&self.dir, &self.output_globs, "outputFiles")?;
        for (rel, path) in walk(&self.output_dir)? {
            wanted.push((rel, path));
        }
        for (name, path) in &self.legacy_files {
            if !std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file()) {
                return Err(format!(
                    "output file `{name}` is not a file of the working directory (a link, or gone)"
                ));
            }
            wanted.push((name.clone(), path.clone()));
        }
        for (name, dir) in &self.legacy_dirs {
            for (rel, path) in walk(dir)? {
                wanted.push((format!("{name}/{rel}"), path));
            }
        }
        let stored = folder::store(env, &self.place, wanted)?;
        let mut outputs = json!({
            "exitCode": exit_code,
            "vars": vars,
            "outputFiles": stored,
        });
        if self.legacy {
            let count = |level: Level| logs.iter().filter(|l| l.level == level).count();
            outputs["stdOutLineCount"] = count(Level::Info).into();
            outputs["stdErrLineCount"] = count(Level::Error).into();
            outputs["files"] = outputs["outputFiles"].clone();
        }
        Ok(outputs)
    }
}

/// `python`, or `python3` where only it is installed (Debian's).
fn python() -> &'static str {
    static FOUND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        let on_path = |name: &str| {
            std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join(name).is_file())
            })
        };
        if !on_path("python") && on_path("python3") {
            "python3"
        } else {
            "python"
        }
    })
}

#[cfg(test)]
mod tests;
