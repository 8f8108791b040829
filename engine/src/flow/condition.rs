//! What a Flow trigger (`io.kestra.plugin.core.trigger.Flow`) asks of an
//! execution that ended before it fires: its `states`, its `conditions`
//! (Kestra's `ExecutionStatus`, `ExecutionFlow`, `ExecutionNamespace`,
//! `ExecutionLabels`, `ExecutionOutputs`, `Expression`) and its
//! `preconditions` (upstream flows and filter groups). Read from the
//! trigger's YAML, checked with their paths, and evaluated on the upstream
//! execution. Conditions met across executions within a window (Kestra's
//! `MultipleCondition`, and `preconditions` of several parts or with a
//! `timeWindow`) are read into a [`Multiple`], whose windows the server
//! keeps.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::execution::{ExecutionId, State};
use crate::expression::{JsonContext, Property};

/// One condition on the upstream execution.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Condition {
    /// `ExecutionStatus`: its state is one of `within` (when given) and
    /// none of `not_within`.
    Status {
        within: Option<Vec<State>>,
        not_within: Vec<State>,
    },
    /// `ExecutionFlow`: of this flow.
    Flow { namespace: String, flow_id: String },
    /// `ExecutionNamespace`: in a namespace equal to, starting or ending
    /// with `namespace`.
    Namespace {
        namespace: String,
        comparison: Comparison,
    },
    /// `ExecutionLabels`: it carries every one of these labels.
    Labels(Vec<(String, String)>),
    /// `ExecutionOutputs`: it has flow outputs, and this renders true over
    /// them (`trigger.outputs`).
    Outputs(Property),
    /// `Expression`: this renders true.
    Expression(Property),
    /// A precondition's upstream flow: in `namespace`, of `flow_id` when
    /// given, in one of `states` when given, with these labels.
    Upstream {
        namespace: String,
        flow_id: Option<String>,
        states: Option<Vec<State>>,
        labels: Vec<(String, String)>,
    },
    /// A precondition's `where` group: all its filters hold (`AND`), or
    /// one (`OR`).
    Filters { any: bool, filters: Vec<Filter> },
    /// Kestra's `MultipleCondition`, and `preconditions` of several parts
    /// or with a `timeWindow`: each of its conditions met by some execution
    /// (not necessarily the same) within one window. Evaluated by whoever
    /// keeps the windows (the server's Flow triggers), not by `holds`.
    Multiple(Box<Multiple>),
}

/// Conditions met across executions within a window (Kestra's
/// `MultipleCondition`).
#[derive(Debug, Clone)]
pub struct Multiple {
    /// Its id: the trigger's windows are kept under it.
    pub id: String,
    /// Each condition with its id (`condition_1`... for `preconditions`).
    pub conditions: Vec<(String, Condition)>,
    pub window: TimeWindow,
    /// Once all are met and the trigger fired, the window starts afresh
    /// (true by default); false: each later end meeting the trigger fires
    /// it again within the window.
    pub reset_on_success: bool,
}

/// Kestra's `TimeWindow`: where the window an end counts in lies.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeWindow {
    /// `DURATION_WINDOW` (the default, a day): windows of `window` from
    /// midnight (as Kestra computes them), shifted by `advance`.
    Duration {
        window: chrono::Duration,
        advance: Option<chrono::Duration>,
    },
    /// `SLIDING_WINDOW`: `window` from the first end counted.
    Sliding { window: chrono::Duration },
    /// `DAILY_TIME_WINDOW`: from `start` to `end` each day.
    DailyWindow {
        start: chrono::NaiveTime,
        end: chrono::NaiveTime,
    },
    /// `DAILY_TIME_DEADLINE`: from midnight to `deadline` each day.
    DailyDeadline { deadline: chrono::NaiveTime },
}

impl TimeWindow {
    /// The window a new count opens at `now` (UTC, as the server's zone):
    /// its start and its end (Kestra's `getOrCreate`, with its arithmetic).
    pub fn open_at(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        use chrono::{DurationRound, Timelike};
        let now = now.with_nanosecond(0).unwrap_or(now);
        let midnight = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or(now, |d| d.and_utc());
        let ms = chrono::Duration::milliseconds(1);
        let at = |t: chrono::NaiveTime| {
            midnight + chrono::Duration::seconds(i64::from(t.num_seconds_from_midnight()))
        };
        match self {
            TimeWindow::Duration { window, advance } => {
                let mut start = now;
                if window.num_days() > 0 {
                    start = start.with_hour(0).unwrap_or(start);
                }
                if window.num_hours() > 0 {
                    start = start.with_minute(0).unwrap_or(start);
                }
                let minutes = window.num_minutes();
                if minutes > 0 {
                    let minute = i64::from(start.minute());
                    let base = start
                        .with_second(0)
                        .and_then(|s| s.with_minute(0))
                        .unwrap_or(start);
                    start = base + chrono::Duration::minutes(minutes * (minute / minutes));
                }
                if let Some(advance) = advance {
                    start += *advance;
                }
                let start = start.duration_trunc(ms).unwrap_or(start);
                (start, start + *window - ms)
            }
            TimeWindow::Sliding { window } => {
                let start = now.duration_trunc(ms).unwrap_or(now);
                (start, start + *window)
            }
            TimeWindow::DailyWindow { start, end } => (at(*start), at(*end)),
            TimeWindow::DailyDeadline { deadline } => (midnight, at(*deadline)),
        }
    }
}

/// `ExecutionNamespace`'s `comparison`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Comparison {
    Equals,
    Prefix,
    Suffix,
}

/// One filter of a precondition's `where` group.
#[derive(Debug, Clone)]
pub struct Filter {
    field: Field,
    test: Test,
    /// `value`: for `EXPRESSION`, the template the field renders from.
    value: Option<String>,
    compiled: Option<Property>,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    FlowId,
    Namespace,
    State,
    Expression,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    EqualTo,
    NotEqualTo,
    In,
    NotIn,
    IsTrue,
    IsFalse,
    IsNull,
    IsNotNull,
    StartsWith,
    EndsWith,
    Regex,
    Contains,
}

/// What a condition reads of the upstream execution.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub id: ExecutionId,
    pub namespace: String,
    pub flow_id: String,
    pub flow_revision: u32,
    pub state: State,
    pub start_date: DateTime<Utc>,
    pub labels: Vec<(String, String)>,
    /// Its flow's outputs, if any.
    pub outputs: Option<Value>,
}

impl Upstream {
    /// Kestra's Flow trigger output: what the downstream execution sees as
    /// `trigger` (its flow outputs as `trigger.outputs`, when it has some).
    pub fn trigger_variables(&self) -> Value {
        let mut v = json!({
            "executionId": self.id.to_string(),
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "flowRevision": self.flow_revision,
            "state": self.state.as_str(),
        });
        if let Some(outputs) = &self.outputs {
            v["outputs"] = outputs.clone();
        }
        v
    }

    /// The variables a condition's expression (and the trigger's `inputs`)
    /// renders with: `trigger` (as above), the upstream `execution` and its
    /// `labels`, and `flow`, the downstream flow.
    pub fn variables(&self, flow_namespace: &str, flow_id: &str, flow_revision: u32) -> Value {
        let mut labels = Map::new();
        for (k, v) in &self.labels {
            labels
                .entry(k.clone())
                .or_insert_with(|| Value::from(v.as_str()));
        }
        json!({
            "trigger": self.trigger_variables(),
            "execution": {
                "id": self.id.to_string(),
                "namespace": self.namespace,
                "flowId": self.flow_id,
                "flowRevision": self.flow_revision,
                "state": self.state.as_str(),
                "startDate": crate::execution::format_date(self.start_date),
            },
            "labels": labels,
            "flow": {"namespace": flow_namespace, "id": flow_id, "revision": flow_revision},
        })
    }
}

impl Condition {
    /// Whether `up` meets it; `vars` are [`Upstream::variables`]. An
    /// expression that does not render is an error, saying why.
    pub fn holds(&self, up: &Upstream, vars: &Value, now: DateTime<Utc>) -> Result<bool, String> {
        let truthy = |p: &Property, vars: &Value| -> Result<bool, String> {
            let text = rendered(p, vars, now)?;
            Ok(!(text.trim().is_empty() || text.trim() == "false"))
        };
        Ok(match self {
            Condition::Status { within, not_within } => {
                within.as_ref().is_none_or(|w| w.contains(&up.state))
                    && !not_within.contains(&up.state)
            }
            Condition::Flow { namespace, flow_id } => {
                up.namespace == *namespace && up.flow_id == *flow_id
            }
            Condition::Namespace {
                namespace,
                comparison,
            } => match comparison {
                Comparison::Equals => up.namespace == *namespace,
                Comparison::Prefix => up.namespace.starts_with(namespace.as_str()),
                Comparison::Suffix => up.namespace.ends_with(namespace.as_str()),
            },
            Condition::Labels(labels) => labels.iter().all(|l| up.labels.contains(l)),
            Condition::Outputs(p) => match &up.outputs {
                Some(Value::Object(o)) if !o.is_empty() => truthy(p, vars)?,
                _ => false,
            },
            Condition::Expression(p) => truthy(p, vars)?,
            Condition::Upstream {
                namespace,
                flow_id,
                states,
                labels,
            } => {
                up.namespace == *namespace
                    && flow_id.as_ref().is_none_or(|f| *f == up.flow_id)
                    && states.as_ref().is_none_or(|s| s.contains(&up.state))
                    && labels.iter().all(|l| up.labels.contains(l))
            }
            Condition::Filters { any, filters } => {
                let mut results = filters.iter().map(|f| f.holds(up, vars, now));
                if *any {
                    results.try_fold(false, |acc, r| r.map(|b| acc || b))?
                } else {
                    results.try_fold(true, |acc, r| r.map(|b| acc && b))?
                }
            }
            Condition::Multiple(m) => {
                return Err(format!(
                    "the multiple condition `{}` is met across executions, in a window: \
                     it is not evaluated on one",
                    m.id
                ));
            }
        })
    }
}

impl Filter {
    fn holds(&self, up: &Upstream, vars: &Value, now: DateTime<Utc>) -> Result<bool, String> {
        let field = match self.field {
            Field::FlowId => Some(up.flow_id.clone()),
            Field::Namespace => Some(up.namespace.clone()),
            Field::State => Some(up.state.as_str().to_owned()),
            Field::Expression => match &self.compiled {
                Some(p) => Some(rendered(p, vars, now)?),
                None => None,
            },
        };
        let value = self.value.as_deref().unwrap_or_default();
        let truthy = |s: &str| !matches!(s, "" | "false" | "0" | "-0");
        Ok(match self.test {
            Test::EqualTo => field.as_deref() == Some(value),
            Test::NotEqualTo => field.as_deref() != Some(value),
            Test::In => field.is_some_and(|f| self.values.contains(&f)),
            Test::NotIn => !field.is_some_and(|f| self.values.contains(&f)),
            Test::IsTrue => field.as_deref().is_some_and(truthy),
            Test::IsFalse => !field.as_deref().is_some_and(truthy),
            Test::IsNull => field.is_none(),
            Test::IsNotNull => field.is_some(),
            Test::StartsWith => field.is_some_and(|f| f.starts_with(value)),
            Test::EndsWith => field.is_some_and(|f| f.ends_with(value)),
            Test::Contains => field.is_some_and(|f| f.contains(value)),
            Test::Regex => match field {
                // Java's `matches`: the whole text.
                Some(f) => regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("`{value}` is not a regular expression: {e}"))?
                    .is_match(&f),
                None => false,
            },
        })
    }
}

fn rendered(p: &Property, vars: &Value, now: DateTime<Utc>) -> Result<String, String> {
    let value = p
        .render(&JsonContext::at(vars, now))
        .map_err(|e| e.to_string())?;
    Ok(crate::executor::into_text(value))
}

/// Reads conditions, preconditions and states from a trigger's YAML (as
/// JSON); problems come back as (path under `path`, message).
pub(crate) struct Reader {
    pub problems: Vec<(String, String)>,
}

const CONDITIONS: &[(&str, &str)] = &[
    ("ExecutionStatus", "ExecutionStatusCondition"),
    ("ExecutionFlow", "ExecutionFlowCondition"),
    ("ExecutionNamespace", "ExecutionNamespaceCondition"),
    ("ExecutionLabels", "ExecutionLabelsCondition"),
    ("ExecutionOutputs", "ExecutionOutputsCondition"),
    ("Expression", "ExpressionCondition"),
    ("MultipleCondition", "MultipleCondition"),
];

/// Kestra's other core conditions, refused as not supported yet.
const NOT_YET: &[&str] = &[
    "DayWeek",
    "DayWeekInMonth",
    "Weekend",
    "NotWeekend",
    "PublicHoliday",
    "DateTimeBetween",
    "TimeBetween",
    "FlowNamespace",
    "Flow",
];

/// The short name of a condition type (`ExecutionStatus`), if Kestra
/// knows it by `name` (its class, or an alias).
fn condition_name(name: &str) -> Result<&'static str, String> {
    for (canonical, legacy) in CONDITIONS {
        let names = [
            format!("io.kestra.plugin.core.condition.{canonical}"),
            format!("io.kestra.plugin.core.condition.{legacy}"),
            format!("io.kestra.core.models.conditions.types.{legacy}"),
            (*canonical).to_owned(),
        ];
        if names.iter().any(|n| n == name) {
            return Ok(canonical);
        }
    }
    let short = name.rsplit('.').next().unwrap_or(name);
    let short = short.strip_suffix("Condition").unwrap_or(short);
    if NOT_YET.contains(&short) {
        return Err(format!("condition type `{name}` is not supported yet"));
    }
    Err(format!("unknown condition type `{name}`"))
}

impl Reader {
    pub fn new() -> Self {
        Self {
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push((path.to_owned(), message.into()));
    }

    /// A trigger's `conditions`.
    pub fn conditions(&mut self, value: &Value, path: &str) -> Vec<Condition> {
        let Value::Array(items) = value else {
            self.problem(path, "expected a list of conditions");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("{path}[{i}]");
            if let Some(c) = self.condition(item, &at) {
                out.push(c);
            }
        }
        out
    }

    fn condition(&mut self, item: &Value, at: &str) -> Option<Condition> {
        let Value::Object(map) = item else {
            self.problem(at, "expected a condition (a map with a `type`)");
            return None;
        };
        let Some(type_name) = map.get("type").and_then(Value::as_str) else {
            self.problem(&format!("{at}.type"), "missing required property `type`");
            return None;
        };
        let name = match condition_name(type_name) {
            Ok(name) => name,
            Err(e) => {
                self.problem(&format!("{at}.type"), e);
                return None;
            }
        };
        if name == "MultipleCondition" {
            return self.multiple_condition(map, at);
        }
        let known: &[&str] = match name {
            "ExecutionStatus" => &["in", "notIn"],
            "ExecutionFlow" => &["namespace", "flowId"],
            "ExecutionNamespace" => &["namespace", "comparison", "prefix"],
            "ExecutionLabels" => &["labels"],
            _ => &["expression"],
        };
        for key in map.keys() {
            if key != "type" && key != "description" && !known.contains(&key.as_str()) {
                self.problem(&format!("{at}.{key}"), format!("unknown property `{key}`"));
            }
        }
        let text = |this: &mut Self, key: &str| -> Option<String> {
            match map.get(key) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    this.problem(&format!("{at}.{key}"), "expected a string");
                    None
                }
                None => {
                    this.problem(at, format!("missing required property `{key}`"));
                    None
                }
            }
        };
        match name {
            "ExecutionStatus" => {
                let within = map.get("in").map(|v| self.states(v, &format!("{at}.in")));
                let not_within = map
                    .get("notIn")
                    .map(|v| self.states(v, &format!("{at}.notIn")))
                    .unwrap_or_default();
                Some(Condition::Status { within, not_within })
            }
            "ExecutionFlow" => {
                let namespace = text(self, "namespace");
                let flow_id = text(self, "flowId");
                Some(Condition::Flow {
                    namespace: namespace?,
                    flow_id: flow_id?,
                })
            }
            "ExecutionNamespace" => {
                let namespace = text(self, "namespace")?;
                let prefix = map.get("prefix").and_then(Value::as_bool).unwrap_or(false);
                let comparison = match map.get("comparison").and_then(Value::as_str) {
                    None if prefix => Comparison::Prefix,
                    None => Comparison::Equals,
                    Some("EQUALS") => Comparison::Equals,
                    Some("PREFIX") => Comparison::Prefix,
                    Some("SUFFIX") => Comparison::Suffix,
                    Some(other) => {
                        self.problem(
                            &format!("{at}.comparison"),
                            format!("`{other}`: expected one of EQUALS, PREFIX, SUFFIX"),
                        );
                        return None;
                    }
                };
                Some(Condition::Namespace {
                    namespace,
                    comparison,
                })
            }
            "ExecutionLabels" => {
                let labels = self.labels(map.get("labels"), &format!("{at}.labels"));
                if labels.is_empty() {
                    self.problem(at, "missing required property `labels`");
                    return None;
                }
                Some(Condition::Labels(labels))
            }
            _ => {
                let expression = text(self, "expression")?;
                let compiled = self.template(&expression, &format!("{at}.expression"))?;
                Some(if name == "ExecutionOutputs" {
                    Condition::Outputs(compiled)
                } else {
                    Condition::Expression(compiled)
                })
            }
        }
    }

    /// A trigger's `preconditions`: the conditions one execution meets.
    pub fn preconditions(&mut self, value: &Value, path: &str) -> Vec<Condition> {
        let Value::Object(map) = value else {
            self.problem(path, "expected a map with `flows` or `where`");
            return Vec::new();
        };
        for key in map.keys() {
            if !["id", "flows", "where", "resetOnSuccess", "timeWindow"].contains(&key.as_str()) {
                self.problem(
                    &format!("{path}.{key}"),
                    format!("unknown property `{key}`"),
                );
            }
        }
        let id = map.get("id").and_then(Value::as_str).map(str::to_owned);
        if id.is_none() {
            self.problem(path, "missing required property `id`");
        }
        let window = map
            .get("timeWindow")
            .map(|w| self.time_window(w, &format!("{path}.timeWindow")));
        let reset_on_success = self.reset_on_success(map, path);
        let mut out = Vec::new();
        if let Some(flows) = map.get("flows") {
            let at = format!("{path}.flows");
            match flows {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(c) = self.upstream(item, &format!("{at}[{i}]")) {
                            out.push(c);
                        }
                    }
                }
                _ => self.problem(&at, "expected a list of {namespace, flowId, states}"),
            }
        }
        if let Some(groups) = map.get("where") {
            let at = format!("{path}.where");
            match groups {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(c) = self.filters(item, &format!("{at}[{i}]")) {
                            out.push(c);
                        }
                    }
                }
                _ => self.problem(&at, "expected a list of filter groups"),
            }
        }
        // One part and no window: the one execution that meets it fires
        // the trigger, as it would once its window counted it.
        if out.len() == 1 && window.is_none() {
            return out;
        }
        if out.is_empty() {
            self.problem(path, "expected `flows` or `where`");
            return Vec::new();
        }
        // Kestra's ids: `condition_N` for each upstream flow, then
        // `condition_N_<id>` for each `where` group, N counting all.
        let where_ids: Vec<Option<String>> = match map.get("where") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let flows = out.len()
            - out
                .iter()
                .filter(|c| matches!(c, Condition::Filters { .. }))
                .count();
        let conditions = out
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let n = i + 1;
                let id = match &c {
                    Condition::Filters { .. } => {
                        let own = where_ids
                            .get(i - flows)
                            .cloned()
                            .flatten()
                            .unwrap_or_default();
                        format!("condition_{n}_{own}")
                    }
                    _ => format!("condition_{n}"),
                };
                (id, c)
            })
            .collect();
        vec![Condition::Multiple(Box::new(Multiple {
            id: id.unwrap_or_default(),
            conditions,
            window: window.flatten().unwrap_or_else(|| TimeWindow::Duration {
                window: chrono::Duration::days(1),
                advance: None,
            }),
            reset_on_success,
        }))]
    }

    fn reset_on_success(&mut self, map: &Map<String, Value>, path: &str) -> bool {
        match map.get("resetOnSuccess") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.problem(&format!("{path}.resetOnSuccess"), "expected true or false");
                true
            }
        }
    }

    /// Kestra's deprecated `MultipleCondition` among a trigger's
    /// `conditions`: `id`, `conditions` (a map of id to condition),
    /// `timeWindow` or the older `window` and `windowAdvance`,
    /// `resetOnSuccess`.
    fn multiple_condition(&mut self, map: &Map<String, Value>, at: &str) -> Option<Condition> {
        for key in map.keys() {
            if ![
                "type",
                "description",
                "id",
                "conditions",
                "timeWindow",
                "window",
                "windowAdvance",
                "resetOnSuccess",
            ]
            .contains(&key.as_str())
            {
                self.problem(&format!("{at}.{key}"), format!("unknown property `{key}`"));
            }
        }
        let id = match map.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => {
                self.problem(at, "missing required property `id`");
                return None;
            }
        };
        let mut window = match map.get("timeWindow") {
            Some(w) => self.time_window(w, &format!("{at}.timeWindow"))?,
            None => TimeWindow::Duration {
                window: chrono::Duration::days(1),
                advance: None,
            },
        };
        for key in ["window", "windowAdvance"] {
            let Some(v) = map.get(key) else { continue };
            let Some(d) = self.duration(v, &format!("{at}.{key}"), key == "windowAdvance") else {
                continue;
            };
            match &mut window {
                TimeWindow::Duration { window, advance } => {
                    if key == "window" {
                        *window = d;
                    } else {
                        *advance = Some(d);
                    }
                }
                _ => self.problem(
                    &format!("{at}.{key}"),
                    format!("`{key}` applies to a DURATION_WINDOW only"),
                ),
            }
        }
        let reset_on_success = self.reset_on_success(map, at);
        let Some(Value::Object(parts)) = map.get("conditions") else {
            self.problem(
                at,
                "missing required property `conditions` (a map of conditions)",
            );
            return None;
        };
        if parts.is_empty() {
            self.problem(
                &format!("{at}.conditions"),
                "expected at least one condition",
            );
            return None;
        }
        let mut conditions = Vec::new();
        for (name, part) in parts {
            let path = format!("{at}.conditions.{name}");
            match self.condition(part, &path) {
                Some(Condition::Multiple(_)) => {
                    self.problem(&path, "a multiple condition cannot hold another one");
                }
                Some(c) => conditions.push((name.clone(), c)),
                None => {}
            }
        }
        Some(Condition::Multiple(Box::new(Multiple {
            id,
            conditions,
            window,
            reset_on_success,
        })))
    }

    /// An ISO-8601 duration; zero only with `zero` (a `windowAdvance`).
    fn duration(&mut self, value: &Value, path: &str, zero: bool) -> Option<chrono::Duration> {
        let parsed = value
            .as_str()
            .and_then(crate::flow::parse_duration)
            .and_then(|d| chrono::Duration::from_std(d).ok());
        match parsed {
            Some(d) if d.is_zero() && !zero => {
                self.problem(path, "a window lasts longer than nothing (PT0S)");
                None
            }
            Some(d) => Some(d),
            None => {
                self.problem(
                    path,
                    format!("`{value}` is not an ISO-8601 duration (e.g. PT1H)"),
                );
                None
            }
        }
    }

    fn time_of_day(&mut self, value: &Value, path: &str) -> Option<chrono::NaiveTime> {
        let parsed = value.as_str().and_then(|t| {
            chrono::NaiveTime::parse_from_str(t, "%H:%M:%S")
                .or_else(|_| chrono::NaiveTime::parse_from_str(t, "%H:%M"))
                .ok()
        });
        if parsed.is_none() {
            self.problem(path, format!("`{value}` is not a time of day (HH:mm:ss)"));
        }
        parsed
    }

    /// A `timeWindow`, checked as Kestra's `TimeWindowValidation` checks it.
    fn time_window(&mut self, value: &Value, path: &str) -> Option<TimeWindow> {
        let Value::Object(map) = value else {
            self.problem(path, "expected a map with a `type`");
            return None;
        };
        for key in map.keys() {
            if ![
                "type",
                "window",
                "windowAdvance",
                "deadline",
                "startTime",
                "endTime",
            ]
            .contains(&key.as_str())
            {
                self.problem(
                    &format!("{path}.{key}"),
                    format!("unknown property `{key}`"),
                );
            }
        }
        let kind = map
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("DURATION_WINDOW");
        let allowed: &[&str] = match kind {
            "DURATION_WINDOW" => &["window", "windowAdvance"],
            "SLIDING_WINDOW" => &["window"],
            "DAILY_TIME_WINDOW" => &["startTime", "endTime"],
            "DAILY_TIME_DEADLINE" => &["deadline"],
            other => {
                self.problem(
                    &format!("{path}.type"),
                    format!(
                        "`{other}`: expected DURATION_WINDOW, SLIDING_WINDOW, DAILY_TIME_WINDOW or DAILY_TIME_DEADLINE"
                    ),
                );
                return None;
            }
        };
        for key in [
            "window",
            "windowAdvance",
            "deadline",
            "startTime",
            "endTime",
        ] {
            if map.contains_key(key) && !allowed.contains(&key) {
                self.problem(
                    &format!("{path}.{key}"),
                    format!("`{key}` does not apply to a {kind}"),
                );
            }
        }
        let duration = |this: &mut Self, key: &str| match map.get(key) {
            None => None,
            Some(v) => this.duration(v, &format!("{path}.{key}"), key == "windowAdvance"),
        };
        let time = |this: &mut Self, key: &str| match map.get(key) {
            None => {
                this.problem(path, format!("a {kind} needs its `{key}`"));
                None
            }
            Some(v) => this.time_of_day(v, &format!("{path}.{key}")),
        };
        let day = chrono::Duration::days(1);
        Some(match kind {
            "DURATION_WINDOW" => TimeWindow::Duration {
                window: duration(self, "window").unwrap_or(day),
                advance: duration(self, "windowAdvance"),
            },
            "SLIDING_WINDOW" => TimeWindow::Sliding {
                window: duration(self, "window").unwrap_or(day),
            },
            "DAILY_TIME_WINDOW" => {
                let start = time(self, "startTime");
                let end = time(self, "endTime");
                TimeWindow::DailyWindow {
                    start: start?,
                    end: end?,
                }
            }
            _ => TimeWindow::DailyDeadline {
                deadline: time(self, "deadline")?,
            },
        })
    }

    fn upstream(&mut self, item: &Value, at: &str) -> Option<Condition> {
        let Value::Object(map) = item else {
            self.problem(at, "expected a map with `namespace`");
            return None;
        };
        for key in map.keys() {
            if !["namespace", "flowId", "states", "labels"].contains(&key.as_str()) {
                self.problem(&format!("{at}.{key}"), format!("unknown property `{key}`"));
            }
        }
        let Some(namespace) = map.get("namespace").and_then(Value::as_str) else {
            self.problem(at, "missing required property `namespace`");
            return None;
        };
        let states = map
            .get("states")
            .map(|v| self.states(v, &format!("{at}.states")));
        Some(Condition::Upstream {
            namespace: namespace.to_owned(),
            flow_id: map.get("flowId").and_then(Value::as_str).map(str::to_owned),
            states,
            labels: self.labels(map.get("labels"), &format!("{at}.labels")),
        })
    }

    fn filters(&mut self, item: &Value, at: &str) -> Option<Condition> {
        let Value::Object(map) = item else {
            self.problem(at, "expected a map with `id` and `filters`");
            return None;
        };
        for key in map.keys() {
            if !["id", "operand", "filters"].contains(&key.as_str()) {
                self.problem(&format!("{at}.{key}"), format!("unknown property `{key}`"));
            }
        }
        let any = match map.get("operand").and_then(Value::as_str) {
            None | Some("AND") => false,
            Some("OR") => true,
            Some(other) => {
                self.problem(
                    &format!("{at}.operand"),
                    format!("`{other}`: expected AND or OR"),
                );
                return None;
            }
        };
        let Some(Value::Array(items)) = map.get("filters") else {
            self.problem(at, "missing required property `filters`");
            return None;
        };
        let mut filters = Vec::new();
        for (i, f) in items.iter().enumerate() {
            if let Some(f) = self.filter(f, &format!("{at}.filters[{i}]")) {
                filters.push(f);
            }
        }
        Some(Condition::Filters { any, filters })
    }

    fn filter(&mut self, item: &Value, at: &str) -> Option<Filter> {
        let field = match item.get("field").and_then(Value::as_str) {
            Some("FLOW_ID") => Field::FlowId,
            Some("NAMESPACE") => Field::Namespace,
            Some("STATE") => Field::State,
            Some("EXPRESSION") => Field::Expression,
            other => {
                self.problem(
                    &format!("{at}.field"),
                    format!("{other:?}: expected one of FLOW_ID, NAMESPACE, STATE, EXPRESSION"),
                );
                return None;
            }
        };
        let test = match item.get("type").and_then(Value::as_str) {
            Some("EQUAL_TO") => Test::EqualTo,
            Some("NOT_EQUAL_TO") => Test::NotEqualTo,
            Some("IN") => Test::In,
            Some("NOT_IN") => Test::NotIn,
            Some("IS_TRUE") => Test::IsTrue,
            Some("IS_FALSE") => Test::IsFalse,
            Some("IS_NULL") => Test::IsNull,
            Some("IS_NOT_NULL") => Test::IsNotNull,
            Some("STARTS_WITH") => Test::StartsWith,
            Some("ENDS_WITH") => Test::EndsWith,
            Some("REGEX") => Test::Regex,
            Some("CONTAINS") => Test::Contains,
            other => {
                self.problem(
                    &format!("{at}.type"),
                    format!("{other:?}: not a filter type"),
                );
                return None;
            }
        };
        let value = item.get("value").and_then(Value::as_str).map(str::to_owned);
        let values: Vec<String> = item
            .get("values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let compiled = match (field, &value) {
            (Field::Expression, Some(v)) => Some(self.template(v, &format!("{at}.value"))?),
            (Field::Expression, None) => {
                self.problem(at, "an EXPRESSION filter needs its `value`");
                return None;
            }
            _ => None,
        };
        Some(Filter {
            field,
            test,
            value,
            compiled,
            values,
        })
    }

    /// A trigger's `states` (default: the terminal ones): an upstream
    /// execution that enters one (an end, or `RUNNING`, `PAUSED`...) is
    /// looked at.
    pub fn trigger_states(&mut self, value: Option<&Value>, path: &str) -> Vec<State> {
        let Some(value) = value else {
            return State::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        };
        let states = self.states(value, path);
        for s in &states {
            // An execution here never rests in these between two steps (a
            // restart runs at once; a kill ends it; only task runs retry).
            if matches!(s, State::Restarted | State::Killing | State::Retrying) {
                self.problem(
                    path,
                    format!(
                        "a Flow trigger on the {} state would never fire: an execution is never \
                         seen in it (not supported yet)",
                        s.as_str()
                    ),
                );
            }
        }
        states
    }

    fn states(&mut self, value: &Value, path: &str) -> Vec<State> {
        let Value::Array(items) = value else {
            self.problem(path, "expected a list of states");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str().and_then(State::parse) {
                Some(s) => out.push(s),
                None => self.problem(&format!("{path}[{i}]"), format!("`{item}` is not a state")),
            }
        }
        out
    }

    fn labels(&mut self, value: Option<&Value>, path: &str) -> Vec<(String, String)> {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match value {
            None => Vec::new(),
            Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|l| Some((l.get("key")?.as_str()?.to_owned(), text(l.get("value")?))))
                .collect(),
            Some(_) => {
                self.problem(path, "expected labels as a map or a list of {key, value}");
                Vec::new()
            }
        }
    }

    fn template(&mut self, text: &str, path: &str) -> Option<Property> {
        match Property::compile(&Value::String(text.to_owned())) {
            Ok(p) => Some(p),
            Err(e) => {
                self.problem(path, format!("invalid expression: {e}"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(state: State) -> Upstream {
        Upstream {
            id: ExecutionId::derive(b"up"),
            namespace: "company.team".into(),
            flow_id: "extract".into(),
            flow_revision: 3,
            state,
            start_date: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            labels: vec![("env".into(), "prod".into())],
            outputs: Some(json!({"date": "2026-12-01"})),
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn windows_open_where_kestra_opens_them() {
        let now = utc("2026-12-07T13:47:12.345Z");
        let duration = |w: &str, a: Option<&str>| TimeWindow::Duration {
            window: chrono::Duration::from_std(crate::flow::parse_duration(w).unwrap()).unwrap(),
            advance: a.map(|a| {
                chrono::Duration::from_std(crate::flow::parse_duration(a).unwrap()).unwrap()
            }),
        };
        let open = |w: TimeWindow| {
            let (s, e) = w.open_at(now);
            (s.to_rfc3339(), e.to_rfc3339())
        };
        // A day from midnight, to the millisecond before the next.
        assert_eq!(
            open(duration("P1D", None)),
            (
                "2026-12-07T00:00:00+00:00".into(),
                "2026-12-07T23:59:59.999+00:00".into()
            )
        );
        // Ten minutes: aligned on the tens of minutes.
        assert_eq!(open(duration("PT10M", None)).0, "2026-12-07T13:40:00+00:00");
        // Six hours: Kestra aligns the hour no further than the hour.
        assert_eq!(open(duration("PT6H", None)).0, "2026-12-07T13:00:00+00:00");
        assert_eq!(
            open(duration("P1D", Some("PT6H"))).0,
            "2026-12-07T06:00:00+00:00"
        );
        assert_eq!(
            open(TimeWindow::Sliding {
                window: chrono::Duration::hours(1)
            }),
            (
                "2026-12-07T13:47:12+00:00".into(),
                "2026-12-07T14:47:12+00:00".into()
            )
        );
        let t = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert_eq!(
            open(TimeWindow::DailyWindow {
                start: t(6, 0),
                end: t(9, 30)
            }),
            (
                "2026-12-07T06:00:00+00:00".into(),
                "2026-12-07T09:30:00+00:00".into()
            )
        );
        assert_eq!(
            open(TimeWindow::DailyDeadline { deadline: t(9, 0) }).1,
            "2026-12-07T09:00:00+00:00"
        );
    }

    #[test]
    fn preconditions_of_several_parts_and_multiple_conditions_are_read_with_their_ids() {
        let mut r = Reader::new();
        let both = r.preconditions(
            &json!({
                "id": "both",
                "resetOnSuccess": false,
                "timeWindow": {"type": "DAILY_TIME_WINDOW", "startTime": "06:00", "endTime": "09:00:00"},
                "flows": [{"namespace": "a", "flowId": "x"}, {"namespace": "a", "flowId": "y"}],
                "where": [{"id": "prod", "filters": [{"field": "NAMESPACE", "type": "EQUAL_TO", "value": "a"}]}]
            }),
            "triggers[0].preconditions",
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let [Condition::Multiple(m)] = both.as_slice() else {
            panic!("{both:?}")
        };
        let ids: Vec<&str> = m.conditions.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["condition_1", "condition_2", "condition_3_prod"]);
        assert!(!m.reset_on_success);
        assert!(matches!(m.window, TimeWindow::DailyWindow { .. }));
        // One part, no window: met by one end alone.
        let mut r = Reader::new();
        let one = r.preconditions(&json!({"id": "p", "flows": [{"namespace": "a"}]}), "p");
        assert!(matches!(one.as_slice(), [Condition::Upstream { .. }]));

        let (conditions, problems) = read(json!([{
            "type": "io.kestra.core.models.conditions.types.MultipleCondition",
            "id": "legacy",
            "window": "PT1H",
            "windowAdvance": "PT0S",
            "conditions": {
                "a": {"type": "io.kestra.plugin.core.condition.ExecutionFlow", "namespace": "a", "flowId": "x"},
                "b": {"type": "io.kestra.plugin.core.condition.ExecutionStatus", "in": ["SUCCESS"]}
            }
        }]));
        assert!(
            problems.is_empty(),
            "windowAdvance PT0S is the default's: {problems:?}"
        );
        let [Condition::Multiple(m)] = conditions.as_slice() else {
            panic!("{conditions:?}")
        };
        assert_eq!(m.id, "legacy");
        assert_eq!(m.conditions.len(), 2);

        // Kestra's TimeWindowValidation.
        for (window, needle) in [
            (
                json!({"type": "DAILY_TIME_DEADLINE"}),
                "needs its `deadline`",
            ),
            (
                json!({"type": "SLIDING_WINDOW", "windowAdvance": "PT1H"}),
                "does not apply",
            ),
            (json!({"type": "WEEKLY"}), "expected DURATION_WINDOW"),
            (
                json!({"type": "DAILY_TIME_WINDOW", "startTime": "6am", "endTime": "09:00"}),
                "not a time of day",
            ),
        ] {
            let mut r = Reader::new();
            r.preconditions(
                &json!({"id": "p", "timeWindow": window, "flows": [{"namespace": "a"}]}),
                "p",
            );
            assert!(
                r.problems.iter().any(|(_, m)| m.contains(needle)),
                "{window}: {:?}",
                r.problems
            );
        }
    }

    fn read(yaml_json: Value) -> (Vec<Condition>, Vec<(String, String)>) {
        let mut r = Reader::new();
        let c = r.conditions(&yaml_json, "triggers[0].conditions");
        (c, r.problems)
    }

    fn all_hold(conditions: &[Condition], up: &Upstream) -> bool {
        let vars = up.variables("company.team", "transform", 1);
        let now = DateTime::from_timestamp(1_800_000_100, 0).unwrap();
        conditions.iter().all(|c| c.holds(up, &vars, now).unwrap())
    }

    #[test]
    fn each_condition_reads_the_upstream_execution_as_kestra_does() {
        let (conditions, problems) = read(json!([
            {"type": "io.kestra.plugin.core.condition.ExecutionStatus", "in": ["SUCCESS", "WARNING"]},
            {"type": "io.kestra.core.models.conditions.types.ExecutionFlowCondition", "namespace": "company.team", "flowId": "extract"},
            {"type": "io.kestra.plugin.core.condition.ExecutionNamespace", "namespace": "company", "comparison": "PREFIX"},
            {"type": "io.kestra.plugin.core.condition.ExecutionLabels", "labels": {"env": "prod"}},
            {"type": "io.kestra.plugin.core.condition.ExecutionOutputs", "expression": "{{ trigger.outputs.date == '2026-12-01' }}"},
            {"type": "io.kestra.plugin.core.condition.Expression", "expression": "{{ execution.flowId == 'extract' and flow.id == 'transform' }}"},
        ]));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(conditions.len(), 6);
        assert!(all_hold(&conditions, &up(State::Success)));
        assert!(
            !all_hold(&conditions, &up(State::Failed)),
            "ExecutionStatus"
        );
        let mut other = up(State::Success);
        other.labels.clear();
        assert!(!all_hold(&conditions[3..4], &other), "ExecutionLabels");
        other.outputs = None;
        assert!(!all_hold(&conditions[4..5], &other), "no outputs: false");
        other.namespace = "elsewhere".into();
        assert!(!all_hold(&conditions[2..3], &other), "namespace prefix");
    }

    #[test]
    fn one_upstream_flow_or_one_filter_group_is_a_precondition_one_execution_meets() {
        let mut r = Reader::new();
        let c = r.preconditions(
            &json!({"id": "p", "flows": [{"namespace": "company.team", "flowId": "extract", "states": ["SUCCESS"]}]}),
            "p",
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(all_hold(&c, &up(State::Success)));
        assert!(!all_hold(&c, &up(State::Failed)));
        let c = r.preconditions(
            &json!({"id": "p", "where": [{"id": "w", "filters": [
                {"field": "NAMESPACE", "type": "STARTS_WITH", "value": "company"},
                {"field": "STATE", "type": "IN", "values": ["FAILED", "WARNING"]},
                {"field": "EXPRESSION", "type": "IS_TRUE", "value": "{{ labels.env == 'prod' }}"},
            ]}]}),
            "p",
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(all_hold(&c, &up(State::Failed)));
        assert!(!all_hold(&c, &up(State::Success)));
        let several = r.preconditions(
            &json!({"id": "p", "flows": [{"namespace": "a"}, {"namespace": "b"}], "timeWindow": {"type": "SLIDING_WINDOW"}}),
            "p",
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let [Condition::Multiple(m)] = several.as_slice() else {
            panic!("{several:?}")
        };
        // Not met by one end: across ends, in a window.
        assert!(
            m.conditions[0]
                .1
                .holds(&up(State::Success), &json!({}), Utc::now())
                .is_ok()
        );
        assert!(
            several[0]
                .holds(&up(State::Success), &json!({}), Utc::now())
                .is_err()
        );
    }

    #[test]
    fn conditions_kestra_has_but_peregrine_does_not_run_are_refused_with_their_path() {
        let (_, problems) = read(json!([
            {"type": "io.kestra.plugin.core.condition.PublicHoliday"},
            {"type": "io.kestra.plugin.core.condition.ExecutionStatus", "in": ["DONE"]},
            {"type": "com.example.Mine"},
        ]));
        assert_eq!(
            problems,
            [
                (
                    "triggers[0].conditions[0].type".to_owned(),
                    "condition type `io.kestra.plugin.core.condition.PublicHoliday` is not supported yet".to_owned()
                ),
                ("triggers[0].conditions[1].in[0]".to_owned(), "`\"DONE\"` is not a state".to_owned()),
                (
                    "triggers[0].conditions[2].type".to_owned(),
                    "unknown condition type `com.example.Mine`".to_owned()
                ),
            ]
        );
        let mut r = Reader::new();
        let states = r.trigger_states(None, "s");
        assert!(states.contains(&State::Success) && !states.contains(&State::Running));
        assert_eq!(
            r.trigger_states(Some(&json!(["PAUSED"])), "s"),
            [State::Paused]
        );
        r.trigger_states(Some(&json!(["SLEEPING"])), "s");
        assert!(r.problems[0].1.contains("SLEEPING"), "{:?}", r.problems);
    }
}
