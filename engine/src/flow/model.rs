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

use super::condition::Condition;
use super::cron::CronSchedule;
use super::error::Problem;
use crate::expression::Property;
use crate::tasks::{TaskKind, TaskType};

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
    /// `pluginDefaults` / deprecated `taskDefaults`, raw. They are already
    /// applied to `tasks` and `triggers`; kept for display.
    /// Flow-level retry: the default of every runnable task that has no
    /// `retry` of its own nor a flowable ancestor with one (Kestra's
    /// `ExecutorService.handleChildWorkerTaskResult`).
    pub retry: Option<Retry>,
    /// `concurrency`: how many of its executions run at once, and what
    /// becomes of one more.
    pub concurrency: Option<Concurrency>,
    pub plugin_defaults: Vec<Value>,
    /// The YAML this flow was parsed from.
    pub source: String,
    /// Problems that do not make the flow invalid, in source order: template
    /// syntax errors in task properties (see [`Task::expression_error`]).
    pub warnings: Vec<Problem>,
    /// Script tasks that name a container image or a Docker task runner:
    /// Peregrine runs them on the process runner, with these warnings
    /// (also in `warnings`); a server may refuse such flows instead.
    pub containers: Vec<Problem>,
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
    pub(crate) task_type: &'static TaskType,
    /// Its own properties, and what it does when it runs.
    pub(crate) kind: Arc<dyn TaskKind>,
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
        self.task_type.flowable
    }

    /// A task a flowable task makes for itself (ForEachItem's three), with
    /// Kestra's defaults for everything but its id, type and kind.
    pub(crate) fn internal(
        id: String,
        task_type: &'static TaskType,
        kind: Arc<dyn TaskKind>,
    ) -> Task {
        Task {
            id,
            type_name: task_type.name.to_owned(),
            task_type,
            kind,
            description: None,
            run_if: None,
            disabled: false,
            allow_failure: false,
            allow_warning: false,
            timeout: None,
            retry: None,
            log_level: None,
            log_to_file: false,
            errors: Vec::new(),
            finally: Vec::new(),
            expression_error: None,
        }
    }

    /// This task without its `errors` and `finally`, which the executor's
    /// plan holds as task lists of their own; the kind is shared.
    pub(crate) fn without_handlers(&self) -> Task {
        Task {
            id: self.id.clone(),
            type_name: self.type_name.clone(),
            task_type: self.task_type,
            kind: Arc::clone(&self.kind),
            description: self.description.clone(),
            run_if: self.run_if.clone(),
            disabled: self.disabled,
            allow_failure: self.allow_failure,
            allow_warning: self.allow_warning,
            timeout: self.timeout,
            retry: self.retry.clone(),
            log_level: self.log_level,
            log_to_file: self.log_to_file,
            errors: Vec::new(),
            finally: Vec::new(),
            expression_error: self.expression_error.clone(),
        }
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
        self.errors.iter().for_each(&mut *f);
        self.finally.iter().for_each(&mut *f);
    }
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

/// A flow's `concurrency`: at most `limit` of its executions run (or are
/// paused) at once; one more is queued, cancelled or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    pub limit: u32,
    pub behavior: ConcurrencyBehavior,
}

/// What becomes of an execution past a flow's concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcurrencyBehavior {
    /// It waits QUEUED, and starts when a running one ends (oldest first).
    Queue,
    /// It ends CANCELLED at once.
    Cancel,
    /// It ends FAILED at once.
    Fail,
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
    /// `behavior: CREATE_NEW_EXECUTION`: the execution ends RETRIED and a
    /// new one runs the flow again, counted in executions (attempts of
    /// the original), not in task-run attempts.
    pub new_execution: bool,
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
    pub kind: TriggerKind,
}

#[derive(Debug)]
#[non_exhaustive]
pub enum TriggerKind {
    /// `io.kestra.plugin.core.trigger.Schedule`.
    Schedule {
        cron: String,
        with_seconds: bool,
        /// IANA zone; `None` = UTC.
        timezone: Option<String>,
        /// Its dates, parsed from the three above.
        dates: Box<CronSchedule>,
        /// Raw; strings in it are templates, rendered at each fire.
        inputs: Map<String, Value>,
        /// Labels of the executions it starts (over the flow's).
        labels: Vec<(String, String)>,
        /// What a restart does with the dates missed meanwhile; `None`:
        /// the server's default (Kestra's: `ALL`).
        recover: Option<RecoverMissed>,
        /// A date later than this when it comes to fire is skipped.
        late_maximum_delay: Option<Duration>,
        /// Once an execution it started ends in one of these states, it
        /// is disabled (Kestra's `stopAfter`).
        stop_after: Vec<crate::execution::State>,
        /// It fires only the dates that meet all of these.
        conditions: Vec<super::DateCondition>,
    },
    Webhook {
        /// As written.
        key: String,
        /// When the key is a template (Kestra's is dynamic: `{{
        /// secret('HOOK_KEY') }}`), rendered at each call.
        template: Option<Property>,
        /// `Expression` conditions over the call (`trigger.body`,
        /// `headers`, `parameters`): one that does not hold answers 204
        /// and starts nothing.
        conditions: Vec<Property>,
        /// The call waits for the execution's end (`wait`).
        wait: bool,
        /// Answered with the flow's outputs rather than the execution
        /// (`returnOutputs`, with `wait`).
        return_outputs: bool,
        /// `responseContentType`: `text/plain` answers a text output as is.
        response_content_type: Option<String>,
        /// `responseCode`, instead of 200 (500 for a FAILED execution).
        response_code: Option<u16>,
    },
    /// `io.kestra.plugin.core.trigger.Flow`: fires when another flow's
    /// execution ends in one of `states` and meets every condition (its
    /// `conditions` and `preconditions`).
    Flow {
        /// Raw; strings in it are templates, rendered over the upstream
        /// execution (`trigger.outputs`).
        inputs: Map<String, Value>,
        states: Vec<crate::execution::State>,
        conditions: Vec<Condition>,
        labels: Vec<(String, String)>,
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

/// Kestra's `recoverMissedSchedules`: which of the dates a Schedule
/// missed (the server was down, the trigger disabled) fire once it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoverMissed {
    /// Every one, in order.
    All,
    /// The last one only.
    Last,
    /// None: the next date to come.
    None,
}

impl RecoverMissed {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ALL" => Some(Self::All),
            "LAST" => Some(Self::Last),
            "NONE" => Some(Self::None),
            _ => None,
        }
    }
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
