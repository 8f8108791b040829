//! What a Flow trigger (`io.kestra.plugin.core.trigger.Flow`) asks of an
//! execution that ended before it fires: its `states`, its `conditions`
//! (Kestra's `ExecutionStatus`, `ExecutionFlow`, `ExecutionNamespace`,
//! `ExecutionLabels`, `ExecutionOutputs`, `Expression`) and its
//! `preconditions` when they name one upstream flow or one filter group
//! (the ones one execution can meet alone; several, which Kestra tracks in
//! a window across executions, are refused for now). Read from the
//! trigger's YAML, checked with their paths, and evaluated on the upstream
//! execution.

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
];

/// Kestra's other core conditions, refused as not supported yet.
const NOT_YET: &[&str] = &[
    "Multiple",
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
        if map.get("id").and_then(Value::as_str).is_none() {
            self.problem(path, "missing required property `id`");
        }
        if map.contains_key("timeWindow") {
            self.problem(
                &format!("{path}.timeWindow"),
                "a precondition's `timeWindow` is not supported yet",
            );
        }
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
        if out.len() > 1 {
            self.problem(
                path,
                "preconditions over several upstream flows or filter groups (met across \
                 executions within a window) are not supported yet",
            );
        }
        out
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

    /// A trigger's `states` (default: the terminal ones). A Flow trigger
    /// hears of executions as they end: a state that is not terminal is
    /// refused for now.
    pub fn trigger_states(&mut self, value: Option<&Value>, path: &str) -> Vec<State> {
        let Some(value) = value else {
            return State::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        };
        let states = self.states(value, path);
        for s in &states {
            if !s.is_terminal() {
                self.problem(
                    path,
                    format!(
                        "a Flow trigger on the {} state (not an end) is not supported yet",
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
        r.preconditions(
            &json!({"id": "p", "flows": [{"namespace": "a"}, {"namespace": "b"}], "timeWindow": {"type": "SLIDING_WINDOW"}}),
            "p",
        );
        let messages: Vec<&str> = r.problems.iter().map(|(_, m)| m.as_str()).collect();
        assert!(
            messages.iter().any(|m| m.contains("timeWindow")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("several upstream flows")),
            "{messages:?}"
        );
    }

    #[test]
    fn conditions_kestra_has_but_peregrine_does_not_run_are_refused_with_their_path() {
        let (_, problems) = read(json!([
            {"type": "io.kestra.plugin.core.condition.MultipleCondition", "conditions": {}},
            {"type": "io.kestra.plugin.core.condition.ExecutionStatus", "in": ["DONE"]},
            {"type": "com.example.Mine"},
        ]));
        assert_eq!(
            problems,
            [
                (
                    "triggers[0].conditions[0].type".to_owned(),
                    "condition type `io.kestra.plugin.core.condition.MultipleCondition` is not supported yet".to_owned()
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
        r.trigger_states(Some(&json!(["PAUSED"])), "s");
        assert!(r.problems[0].1.contains("PAUSED"), "{:?}", r.problems);
    }
}
