//! The typed flow: what the executor walks.
//!
//! Everything here is built by [`crate::flow::parse`] only, after validation.
//! Structs are `#[non_exhaustive]`: fields are public to read, but a value can
//! only come out of the parser, so the invariants it checked (unique task ids,
//! non-empty task lists, known types, compiled expressions) hold for every
//! `Flow` in the program.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::error::Problem;
use crate::expression::Property;
use crate::jsonata::Jsonata;

/// A parsed and validated flow revision.
///
/// Cheap to share: wrap it in an `Arc` and hand it to every shard.
#[derive(Debug)]
#[non_exhaustive]
pub struct Flow {
    pub id: String,
    pub namespace: String,
    /// `revision:` from the YAML; 1 when absent (the repository assigns later ones).
    pub revision: u32,
    pub description: Option<String>,
    /// In source order. Kestra accepts a map or a list of `{key, value}`.
    pub labels: Vec<(String, String)>,
    pub inputs: Vec<InputDef>,
    /// Raw values: strings in them are rendered on use (`render(vars.x)`).
    pub variables: Map<String, Value>,
    /// Never empty.
    pub tasks: Vec<Task>,
    pub errors: Vec<Task>,
    pub finally: Vec<Task>,
    pub outputs: Vec<FlowOutput>,
    pub triggers: Vec<Trigger>,
    pub disabled: bool,
    /// Flow-level retry (Kestra: applies when the execution fails).
    pub retry: Option<Retry>,
    /// `pluginDefaults` / deprecated `taskDefaults`, raw. They are already
    /// applied to `tasks` and `triggers`; kept for display.
    pub plugin_defaults: Vec<Value>,
    /// `concurrency:` kept raw (limit/behavior), not enforced yet.
    pub concurrency: Option<Value>,
    /// The YAML this flow was parsed from.
    pub source: String,
    /// Problems that do not make the flow invalid, in source order: template
    /// syntax errors in task properties (see [`Task::expression_error`]).
    pub warnings: Vec<Problem>,
}

impl Flow {
    /// The task with this id anywhere in the flow (nested, errors, finally).
    /// Ids are unique across the flow, so there is at most one.
    pub fn find_task(&self, id: &str) -> Option<&Task> {
        fn find<'a>(tasks: &'a [Task], id: &str) -> Option<&'a Task> {
            tasks.iter().find_map(|t| t.find(id))
        }
        find(&self.tasks, id)
            .or_else(|| find(&self.errors, id))
            .or_else(|| find(&self.finally, id))
    }

    /// Every task of the flow, depth first, parents before children.
    pub fn all_tasks(&self) -> Vec<&Task> {
        let mut out = Vec::new();
        for t in self.tasks.iter().chain(&self.errors).chain(&self.finally) {
            t.walk(&mut |t| out.push(t));
        }
        out
    }

    pub fn input(&self, id: &str) -> Option<&InputDef> {
        self.inputs.iter().find(|i| i.id == id)
    }
}

/// One task of the flow, with the properties every Kestra task has.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Task {
    pub id: String,
    /// Canonical long name, e.g. `io.kestra.plugin.core.debug.Return`,
    /// whatever alias the YAML used.
    pub type_name: String,
    pub kind: TaskKind,
    pub description: Option<String>,
    /// `runIf`; `None` when absent (Kestra's default is `"true"`).
    pub run_if: Option<Property>,
    pub disabled: bool,
    pub allow_failure: bool,
    pub allow_warning: bool,
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    /// `logLevel`: the minimum level of the logs this task emits.
    pub log_level: Option<Level>,
    pub log_to_file: bool,
    /// Error handlers of a flowable task (always empty on runnable tasks).
    pub errors: Vec<Task>,
    /// `finally` tasks of a flowable task (always empty on runnable tasks).
    pub finally: Vec<Task>,
    /// A template syntax error in one of this task's properties (`runIf`
    /// included), with its path and position. Kestra accepts such a flow
    /// and fails the task when it renders the property; the executor must
    /// fail this task's run with this message instead of running it. The
    /// faulty properties hold a `null` stand-in.
    pub expression_error: Option<String>,
}

impl Task {
    /// True for tasks that only schedule children (If, Switch, ForEach...).
    pub fn is_flowable(&self) -> bool {
        self.kind.is_flowable()
    }

    /// This task or a descendant (children, errors, finally) with this id.
    pub fn find(&self, id: &str) -> Option<&Task> {
        if self.id == id {
            return Some(self);
        }
        let mut found = None;
        self.for_each_child(&mut |t| {
            if found.is_none() {
                found = t.find(id);
            }
        });
        found
    }

    /// Visits this task and all its descendants, parents first.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Task)) {
        f(self);
        self.for_each_child(&mut |t| t.walk(f));
    }

    /// Direct children: the kind's task lists, then `errors`, then `finally`.
    pub fn for_each_child<'a>(&'a self, f: &mut dyn FnMut(&'a Task)) {
        for list in self.kind.child_lists() {
            list.iter().for_each(&mut *f);
        }
        if let TaskKind::Dag { tasks, .. } = &self.kind {
            tasks.iter().for_each(|d| f(&d.task));
        }
        self.errors.iter().for_each(&mut *f);
        self.finally.iter().for_each(&mut *f);
    }
}

/// What a task does, with its own properties.
///
/// Dynamic properties are [`Property`] (a JSON tree whose strings are
/// templates, compiled once at parse time) and rendered by the executor.
#[derive(Debug, Clone)]
#[non_exhaustive]
// HttpRequest is the large one; built once per task at parse time, never moved
// around per run.
#[allow(clippy::large_enum_variant)]
pub enum TaskKind {
    // ---- runnable ----
    /// `core.debug.Return`: output `value` = rendered `format`.
    Return {
        format: Option<Property>,
    },
    /// `core.log.Log`: `message` is a string or a list of strings.
    Log {
        message: Property,
        level: Level,
    },
    /// `core.output.OutputValues`: output `values` = rendered `values`.
    OutputValues {
        values: Property,
    },
    /// `core.execution.Fail`: fails when `condition` is absent or truthy.
    Fail {
        condition: Option<Property>,
        /// Default: `"Task failure"`.
        error_message: Property,
    },
    /// `core.flow.Sleep`: `duration` renders to an ISO-8601 duration.
    Sleep {
        duration: Property,
    },
    /// `plugin.transform.jsonata.TransformValue`: `from` is rendered (a JSON
    /// string is parsed first), the expression runs on it, output `value`.
    TransformValue {
        from: Property,
        expression: Arc<Jsonata>,
    },
    /// `core.http.Request`: one HTTP call, run on the worker pool. Outputs
    /// `code`, `headers`, `body` (text) and `uri`.
    HttpRequest {
        uri: Property,
        /// Default `GET`.
        method: Property,
        body: Option<Property>,
        content_type: Option<Property>,
        /// A map of header name to value.
        headers: Option<Property>,
        /// `options.readTimeout`; the worker's default when absent.
        read_timeout: Option<Duration>,
        /// `options.allowFailed`: a 4xx/5xx answer does not fail the task.
        allow_failed: bool,
    },

    // ---- flowable ----
    /// `core.flow.If`: `then` when `condition` is truthy, else `else_`.
    If {
        condition: Property,
        then: Vec<Task>,
        else_: Vec<Task>,
    },
    /// `core.flow.Switch`: the case whose key equals the rendered `value`.
    Switch {
        value: Property,
        /// In source order; keys as strings (`1:` in YAML is `"1"`).
        cases: Vec<(String, Vec<Task>)>,
        defaults: Vec<Task>,
    },
    Sequential {
        tasks: Vec<Task>,
    },
    /// `concurrent`: 0 = unlimited (Kestra's default).
    Parallel {
        tasks: Vec<Task>,
        concurrent: u32,
    },
    /// `values`: a list, or a JSON string of a list (rendered first).
    /// `concurrency_limit`: default 1, 0 = unlimited.
    ForEach {
        values: Property,
        concurrency_limit: u32,
        tasks: Vec<Task>,
    },
    /// Deprecated `EachSequential`: like ForEach with limit 1.
    EachSequential {
        value: Property,
        tasks: Vec<Task>,
    },
    /// Deprecated `EachParallel`: every value × task in parallel;
    /// `concurrent` 0 = unlimited.
    EachParallel {
        value: Property,
        concurrent: u32,
        tasks: Vec<Task>,
    },
    /// `core.flow.Dag`: dependencies checked at parse time (exist, acyclic).
    Dag {
        tasks: Vec<DagTask>,
        concurrent: u32,
    },
    /// `core.flow.AllowFailure`: children's failure ends the task WARNING.
    AllowFailure {
        tasks: Vec<Task>,
    },
}

impl TaskKind {
    pub fn is_flowable(&self) -> bool {
        !matches!(
            self,
            TaskKind::Return { .. }
                | TaskKind::Log { .. }
                | TaskKind::OutputValues { .. }
                | TaskKind::Fail { .. }
                | TaskKind::Sleep { .. }
                | TaskKind::TransformValue { .. }
                | TaskKind::HttpRequest { .. }
        )
    }

    /// The task lists this kind owns, in order (Dag tasks excluded: see
    /// [`TaskKind::Dag`]; Switch cases in source order, then defaults).
    pub fn child_lists(&self) -> Vec<&[Task]> {
        match self {
            TaskKind::If { then, else_, .. } => vec![then, else_],
            TaskKind::Switch {
                cases, defaults, ..
            } => cases
                .iter()
                .map(|(_, t)| t.as_slice())
                .chain(std::iter::once(defaults.as_slice()))
                .collect(),
            TaskKind::Sequential { tasks }
            | TaskKind::Parallel { tasks, .. }
            | TaskKind::ForEach { tasks, .. }
            | TaskKind::EachSequential { tasks, .. }
            | TaskKind::EachParallel { tasks, .. }
            | TaskKind::AllowFailure { tasks } => vec![tasks],
            _ => Vec::new(),
        }
    }
}

/// One node of a Dag.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DagTask {
    pub task: Task,
    /// Ids of sibling Dag tasks that must end first.
    pub depends_on: Vec<String>,
}

/// Log levels, as Kestra spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "TRACE" => Level::Trace,
            "DEBUG" => Level::Debug,
            "INFO" => Level::Info,
            "WARN" => Level::Warn,
            "ERROR" => Level::Error,
            _ => return None,
        })
    }
}

/// Kestra's `retry:` (task or flow level).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Retry {
    pub policy: RetryPolicy,
    /// `maxAttempt`: total attempts, including the first. `None` = unbounded
    /// (then `max_duration` bounds it).
    pub max_attempt: Option<u32>,
    pub max_duration: Option<Duration>,
    /// Default false: a task that succeeds after retries ends WARNING when true.
    pub warning_on_retry: bool,
    pub behavior: RetryBehavior,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RetryPolicy {
    Constant {
        interval: Duration,
    },
    Exponential {
        interval: Duration,
        max_interval: Duration,
        delay_factor: Option<f64>,
    },
    Random {
        min_interval: Duration,
        max_interval: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetryBehavior {
    #[default]
    RetryFailedTask,
    CreateNewExecution,
}

/// `outputs:` of the flow.
#[derive(Debug)]
#[non_exhaustive]
pub struct FlowOutput {
    pub id: String,
    pub description: Option<String>,
    /// The declared type (same names as inputs: STRING, INT, ARRAY...).
    pub type_: InputType,
    pub value: Property,
}

/// A trigger: parsed and kept; running it belongs to later issues.
#[derive(Debug)]
#[non_exhaustive]
pub struct Trigger {
    pub id: String,
    /// Canonical long name.
    pub type_name: String,
    pub description: Option<String>,
    pub disabled: bool,
    /// `conditions:`, raw.
    pub conditions: Vec<Value>,
    pub kind: TriggerKind,
}

#[derive(Debug)]
#[non_exhaustive]
pub enum TriggerKind {
    Schedule {
        cron: String,
        with_seconds: bool,
        /// IANA zone; `None` = the server's zone.
        timezone: Option<String>,
        inputs: Map<String, Value>,
    },
    Webhook {
        key: String,
    },
    /// Flow trigger: fires on other executions (conditions/preconditions raw).
    Flow {
        inputs: Map<String, Value>,
        preconditions: Option<Value>,
    },
    /// `io.kestra.plugin.kafka.RealtimeTrigger`.
    KafkaRealtime {
        /// Topics to subscribe to; at least one unless `topic_pattern`.
        topic: Vec<String>,
        /// A regular expression of topics to subscribe to (`topicPattern`).
        topic_pattern: Option<String>,
        /// Consumer properties (`bootstrap.servers`, ...), as strings.
        properties: Map<String, Value>,
        group_id: String,
        key_deserializer: Deserializer,
        value_deserializer: Deserializer,
        /// Any other property, raw.
        extra: Map<String, Value>,
    },
}

/// How a Kafka key or value is turned into the `trigger.key` or
/// `trigger.value` a flow sees (Kestra's `SerdeType`, minus AVRO, which
/// needs a schema registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Deserializer {
    /// UTF-8 text (Kestra's default).
    #[default]
    String,
    /// A JSON document, parsed.
    Json,
    /// Big-endian integers and floats, as Kafka's serializers write them.
    Short,
    Integer,
    Long,
    Float,
    Double,
    /// A UUID, as Kafka's `UUIDSerializer` writes it (its text form).
    Uuid,
    /// Raw bytes, shown as base64 (Kestra: BYTE_ARRAY, BYTE_BUFFER, BYTES).
    Bytes,
    /// Always null.
    Void,
}

impl Deserializer {
    /// Kestra's name for it, as a flow writes it.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "STRING" => Self::String,
            "JSON" => Self::Json,
            "SHORT" => Self::Short,
            "INTEGER" => Self::Integer,
            "LONG" => Self::Long,
            "FLOAT" => Self::Float,
            "DOUBLE" => Self::Double,
            "UUID" => Self::Uuid,
            "BYTE_ARRAY" | "BYTE_BUFFER" | "BYTES" => Self::Bytes,
            "VOID" => Self::Void,
            _ => return None,
        })
    }
}

/// A flow input declaration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InputDef {
    pub id: String,
    pub type_: InputType,
    pub description: Option<String>,
    pub display_name: Option<String>,
    /// Kestra's default is true.
    pub required: bool,
    /// Applied when no value is given; already checked against the type.
    pub defaults: Option<Value>,
}

/// The type of an input (and of a flow output), with its constraints.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum InputType {
    String {
        /// Regex the value must fully match (recorded, not enforced yet).
        validator: Option<String>,
    },
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Float {
        min: Option<f64>,
        max: Option<f64>,
    },
    /// `BOOLEAN` (and `BOOL`, the newer name).
    Boolean,
    Json,
    Yaml,
    /// ISO-8601 duration, e.g. `PT1M30S`; stays a string.
    Duration,
    /// ISO-8601 date-time with offset; stays a string.
    DateTime,
    /// `YYYY-MM-DD`.
    Date,
    /// `HH:MM[:SS[.fff]]`.
    Time,
    Select {
        values: Vec<String>,
        allow_custom_value: bool,
    },
    /// Deprecated Kestra name for SELECT.
    Enum {
        values: Vec<String>,
    },
    MultiSelect {
        values: Vec<String>,
        allow_custom_value: bool,
    },
    Array {
        item_type: Box<InputType>,
    },
    Uri,
    Email,
    Secret,
    /// A file upload (`kestra://` URI after upload).
    File,
}

impl InputType {
    /// Kestra's name: `STRING`, `INT`...
    pub fn name(&self) -> &'static str {
        match self {
            InputType::String { .. } => "STRING",
            InputType::Int { .. } => "INT",
            InputType::Float { .. } => "FLOAT",
            InputType::Boolean => "BOOLEAN",
            InputType::Json => "JSON",
            InputType::Yaml => "YAML",
            InputType::Duration => "DURATION",
            InputType::DateTime => "DATETIME",
            InputType::Date => "DATE",
            InputType::Time => "TIME",
            InputType::Select { .. } => "SELECT",
            InputType::Enum { .. } => "ENUM",
            InputType::MultiSelect { .. } => "MULTISELECT",
            InputType::Array { .. } => "ARRAY",
            InputType::Uri => "URI",
            InputType::Email => "EMAIL",
            InputType::Secret => "SECRET",
            InputType::File => "FILE",
        }
    }
}
