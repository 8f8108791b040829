//! Kestra's search filters, `filters[field][OPERATION]=value` (its
//! `QueryFilter`), and the older parameters (`namespace=`, `flowId=`,
//! `state=`, `labels=`, `q=`, `startDate=`, `endDate=`) they replaced, read
//! into one set of conditions for executions and flows.
//!
//! A field or an operation Kestra does not accept on the resource is a 400
//! with Kestra's message. Fields about things Peregrine does not have yet
//! are honoured for what they mean here: every flow is a user flow (`scope`
//! USER) and every execution a normal one (`kind` NORMAL); a filter that
//! asks for the others matches nothing. `childFilter` and
//! `triggerExecutionId` tell a subflow's execution by the parent that
//! started it.

use chrono::{DateTime, Utc};
use peregrine_engine::{Filter, State as ExecState, Text};

use super::error::{ApiError, ApiResult};
use super::extract::Pairs;

/// What a search is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Execution,
    Flow,
    Kv,
    Log,
    Trigger,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Execution => "EXECUTION",
            Resource::Flow => "FLOW",
            Resource::Kv => "KV",
            Resource::Log => "LOG",
            Resource::Trigger => "TRIGGER",
        }
    }

    /// Kestra's `QueryFilter.Resource.supportedField` (an execution's are
    /// every field read here).
    fn fields(self) -> &'static [Field] {
        use Field::*;
        match self {
            Resource::Execution => &[
                Query,
                Scope,
                FlowId,
                StartDate,
                EndDate,
                State,
                Labels,
                TriggerExecutionId,
                ChildFilter,
                Namespace,
                Kind,
            ],
            Resource::Flow => &[Labels, Namespace, Query, Scope, FlowId],
            Resource::Kv => &[Namespace, Query],
            Resource::Log => &[Namespace, FlowId, Query, StartDate, EndDate],
            Resource::Trigger => &[Namespace, FlowId, Query],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Query,
    Scope,
    Namespace,
    Kind,
    Labels,
    FlowId,
    StartDate,
    EndDate,
    State,
    TriggerExecutionId,
    ChildFilter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    NotEquals,
    GreaterThan,
    LessThan,
    GreaterThanOrEqualTo,
    LessThanOrEqualTo,
    In,
    NotIn,
    StartsWith,
    EndsWith,
    Contains,
    Regex,
    Prefix,
}

const OPS: &[(&str, Op)] = &[
    ("EQUALS", Op::Equals),
    ("NOT_EQUALS", Op::NotEquals),
    ("GREATER_THAN", Op::GreaterThan),
    ("LESS_THAN", Op::LessThan),
    ("GREATER_THAN_OR_EQUAL_TO", Op::GreaterThanOrEqualTo),
    ("LESS_THAN_OR_EQUAL_TO", Op::LessThanOrEqualTo),
    ("IN", Op::In),
    ("NOT_IN", Op::NotIn),
    ("STARTS_WITH", Op::StartsWith),
    ("ENDS_WITH", Op::EndsWith),
    ("CONTAINS", Op::Contains),
    ("REGEX", Op::Regex),
    ("PREFIX", Op::Prefix),
];

impl Op {
    fn name(self) -> &'static str {
        OPS.iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(name, _)| name)
    }
}

impl Field {
    /// `(name in the query, Kestra's enum name)`.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Field::Query => ("q", "QUERY"),
            Field::Scope => ("scope", "SCOPE"),
            Field::Namespace => ("namespace", "NAMESPACE"),
            Field::Kind => ("kind", "KIND"),
            Field::Labels => ("labels", "LABELS"),
            Field::FlowId => ("flowId", "FLOW_ID"),
            Field::StartDate => ("startDate", "START_DATE"),
            Field::EndDate => ("endDate", "END_DATE"),
            Field::State => ("state", "STATE"),
            Field::TriggerExecutionId => ("triggerExecutionId", "TRIGGER_EXECUTION_ID"),
            Field::ChildFilter => ("childFilter", "CHILD_FILTER"),
        }
    }

    fn parse(name: &str) -> Option<Field> {
        Resource::Execution
            .fields()
            .iter()
            .copied()
            .find(|f| f.names().0 == name || f.names().1.eq_ignore_ascii_case(name))
    }

    /// Kestra's `QueryFilter.Field.supportedOp`.
    fn ops(self) -> &'static [Op] {
        use Op::*;
        match self {
            Field::Query | Field::Scope | Field::ChildFilter => &[Equals, NotEquals],
            Field::Namespace | Field::FlowId => &[
                Equals, NotEquals, Contains, StartsWith, EndsWith, Regex, In, NotIn, Prefix,
            ],
            Field::Kind | Field::State => &[Equals, NotEquals, In, NotIn],
            Field::Labels => &[Equals, NotEquals, In, NotIn, Contains],
            Field::StartDate | Field::EndDate => &[
                GreaterThanOrEqualTo,
                GreaterThan,
                LessThanOrEqualTo,
                LessThan,
                Equals,
                NotEquals,
            ],
            Field::TriggerExecutionId => {
                &[Equals, NotEquals, Contains, StartsWith, EndsWith, In, NotIn]
            }
        }
    }
}

/// The conditions of a search, read from its query: the engine's filter
/// (flows are matched on its namespace, flow id, label and text parts).
#[derive(Debug, Default)]
pub struct Conditions {
    pub filter: Filter,
    /// A condition nothing here can meet (`scope` SYSTEM, `kind` TEST...).
    pub nothing: bool,
}

/// Splits `filters[field][OP]` or `filters[field][OP][key]` into its parts.
fn bracketed(key: &str) -> Option<(&str, &str, Option<&str>)> {
    let rest = key.strip_prefix("filters[")?;
    let (field, rest) = rest.split_once("][")?;
    let (op, rest) = rest.split_once(']')?;
    let sub = match rest {
        "" => None,
        more => Some(more.strip_prefix('[')?.strip_suffix(']')?),
    };
    Some((field, op, sub))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

fn label(raw: &str) -> ApiResult<(String, String)> {
    raw.split_once(':')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| bad(format!("label `{raw}` is not key:value")))
}

fn state(name: &str) -> ApiResult<ExecState> {
    ExecState::parse(name).ok_or_else(|| bad(format!("`{name}` is not a state")))
}

/// A date parameter as Kestra's `yyyy-MM-dd'T'HH:mm[:ss][.SSS][XXX]`:
/// seconds and the offset may be left out (then UTC, the server's zone).
pub fn zoned_date(field: &str, raw: &str) -> ApiResult<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(raw) {
        return Ok(d.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M%:z", "%Y-%m-%dT%H:%M%#z"] {
        if let Ok(d) = DateTime::parse_from_str(raw, format) {
            return Ok(d.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(raw, format) {
            return Ok(d.and_utc());
        }
    }
    Err(bad(format!(
        "`{field}` must be a date and time as yyyy-MM-dd'T'HH:mm[:ss][.SSS][XXX], not `{raw}`"
    )))
}

fn date(field: &str, raw: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            bad(format!(
                "`{field}` must be an ISO 8601 date and time, not `{raw}`: {e}"
            ))
        })
}

/// Kestra's `IN` values: a comma-separated list, or the parameter repeated.
fn list(values: &[&str]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Conditions {
    /// Reads `query` for `resource`.
    pub fn read(query: &Pairs, resource: Resource) -> ApiResult<Conditions> {
        let mut c = Conditions::default();
        let mut errors = Vec::new();
        // Grouped by field, operation and label key, in order: IN takes
        // every value given.
        let mut seen: Vec<(Field, Op, Option<String>, Vec<&str>)> = Vec::new();
        for (key, value) in &query.0 {
            let Some((field, op, sub)) = bracketed(key) else {
                continue;
            };
            let Some(field) = Field::parse(field) else {
                return Err(bad(format!("`{field}` is not a filter field")));
            };
            let Some(op) = OPS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(op))
                .map(|(_, op)| *op)
            else {
                return Err(bad(format!("`{op}` is not a filter operation")));
            };
            if !field.ops().contains(&op) {
                errors.push(format!(
                    "Operation {} is not supported for field {}. Supported operations are {}",
                    op.name(),
                    field.names().1,
                    field
                        .ops()
                        .iter()
                        .map(|o| o.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if !resource.fields().contains(&field) {
                errors.push(format!(
                    "Field {} is not supported for resource {}. Supported fields are {}",
                    field.names().1,
                    resource.name(),
                    resource
                        .fields()
                        .iter()
                        .map(|f| f.names().1)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let sub = sub.map(str::to_owned);
            match seen
                .iter_mut()
                .find(|(f, o, s, _)| *f == field && *o == op && *s == sub)
            {
                Some((_, _, _, values)) => values.push(value),
                None => seen.push((field, op, sub, vec![value])),
            }
        }
        if !errors.is_empty() {
            return Err(bad(errors.join("; ")));
        }
        for (field, op, sub, values) in &seen {
            c.add(*field, *op, sub.as_deref(), values)?;
        }
        c.read_legacy(query, resource)?;
        Ok(c)
    }

    fn add(&mut self, field: Field, op: Op, sub: Option<&str>, values: &[&str]) -> ApiResult<()> {
        let one = values.last().copied().unwrap_or_default();
        let name = field.names().0;
        match field {
            Field::Namespace => self.filter.namespace.push(text(name, op, values)?),
            Field::FlowId => self.filter.flow_id.push(text(name, op, values)?),
            // The engine looks for it lower-cased.
            Field::Query if one.is_empty() => {}
            Field::Query if op == Op::Equals => self.filter.query = Some(one.to_lowercase()),
            Field::Query => self.filter.not_query.push(one.to_lowercase()),
            Field::State => {
                let states = list(values)
                    .iter()
                    .map(|s| state(s))
                    .collect::<ApiResult<Vec<_>>>()?;
                match op {
                    Op::Equals | Op::In => {
                        // Two positive conditions: both must hold.
                        if self.filter.states.is_empty() {
                            self.filter.states = states;
                        } else {
                            self.filter.states.retain(|s| states.contains(s));
                            self.nothing |= self.filter.states.is_empty();
                        }
                    }
                    _ => self.filter.not_states.extend(states),
                }
            }
            Field::Labels => {
                let labels: Vec<(String, String)> = match sub {
                    // `filters[labels][EQUALS][key]=value`
                    Some(key) => values
                        .iter()
                        .map(|v| (key.to_owned(), (*v).to_owned()))
                        .collect(),
                    None if op == Op::Contains => {
                        self.filter
                            .label_contains
                            .extend(values.iter().map(|v| (*v).to_owned()));
                        return Ok(());
                    }
                    None => list(values)
                        .iter()
                        .map(|l| label(l))
                        .collect::<ApiResult<_>>()?,
                };
                match op {
                    Op::Equals => self.filter.labels.extend(labels),
                    Op::In => self.filter.any_labels.push(labels),
                    Op::Contains => self
                        .filter
                        .label_contains
                        .extend(labels.into_iter().map(|(k, v)| format!("{k}:{v}"))),
                    _ => self.filter.not_labels.extend(labels),
                }
            }
            Field::StartDate | Field::EndDate => {
                let at = date(name, one)?;
                let bounds = if field == Field::StartDate {
                    &mut self.filter.started
                } else {
                    &mut self.filter.ended
                };
                match op {
                    Op::GreaterThan => bounds.after = Some((at, false)),
                    Op::GreaterThanOrEqualTo => bounds.after = Some((at, true)),
                    Op::LessThan => bounds.before = Some((at, false)),
                    Op::LessThanOrEqualTo => bounds.before = Some((at, true)),
                    Op::Equals => {
                        bounds.after = Some((at, true));
                        bounds.before = Some((at, true));
                    }
                    _ => bounds.not_at = Some(at),
                }
            }
            // Every flow is a user flow: no system flows here.
            Field::Scope => self.nothing |= !holds_for(op, values, "USER"),
            // Every execution is a normal one (no tests, no playground).
            Field::Kind => self.nothing |= !holds_for(op, values, "NORMAL"),
            // CHILD: started by another execution (a subflow); MAIN: not.
            Field::ChildFilter => {
                let child = match one.to_ascii_uppercase().as_str() {
                    "CHILD" => true,
                    "MAIN" => false,
                    other => {
                        return Err(bad(format!(
                            "`childFilter` is CHILD or MAIN, not `{other}`"
                        )));
                    }
                };
                let child = if op == Op::Equals { child } else { !child };
                self.nothing |= self.filter.child.is_some_and(|c| c != child);
                self.filter.child = Some(child);
            }
            // The execution that started it (a subflow's parent); one no
            // execution started holds only the negative conditions.
            Field::TriggerExecutionId => {
                self.filter.trigger_execution.push(text(name, op, values)?)
            }
        }
        Ok(())
    }

    /// The parameters before `filters[...]`, still sent by 0.22's clients:
    /// `namespace`, `labels` and `q` for both, the others for executions.
    fn read_legacy(&mut self, query: &Pairs, resource: Resource) -> ApiResult<()> {
        if let Some(ns) = query.get("namespace").filter(|s| !s.is_empty()) {
            self.filter.namespace.push(Text::Prefix(ns.to_owned()));
        }
        for raw in query.all("labels") {
            self.filter.labels.push(label(raw)?);
        }
        if let Some(q) = query.get("q").filter(|s| !s.is_empty()) {
            self.filter.query = Some(q.to_lowercase());
        }
        if resource == Resource::Trigger {
            if let Some(id) = query.get("flowId").filter(|s| !s.is_empty()) {
                self.filter.flow_id.push(Text::Equals(id.to_owned()));
            }
            return Ok(());
        }
        if resource == Resource::Log {
            if let Some(id) = query.get("flowId").filter(|s| !s.is_empty()) {
                self.filter.flow_id.push(Text::Equals(id.to_owned()));
            }
            for (key, bounds) in [("startDate", 0), ("endDate", 1)] {
                if let Some(raw) = query.get(key).filter(|s| !s.is_empty()) {
                    let at = date(key, raw)?;
                    if bounds == 0 {
                        self.filter.started.after = Some((at, true));
                    } else {
                        self.filter.started.before = Some((at, true));
                    }
                }
            }
            return Ok(());
        }
        if resource != Resource::Execution {
            for key in ["flowId", "state", "startDate", "endDate"] {
                if query.get(key).is_some() {
                    let what = if resource == Resource::Flow {
                        "flows"
                    } else {
                        "keys"
                    };
                    return Err(bad(format!("{what} are not searched by `{key}`")));
                }
            }
            return Ok(());
        }
        if let Some(id) = query.get("flowId").filter(|s| !s.is_empty()) {
            self.filter.flow_id.push(Text::Equals(id.to_owned()));
        }
        if let Some(id) = query.get("triggerExecutionId").filter(|s| !s.is_empty()) {
            self.add(Field::TriggerExecutionId, Op::Equals, None, &[id])?;
        }
        if let Some(which) = query.get("childFilter").filter(|s| !s.is_empty()) {
            self.add(Field::ChildFilter, Op::Equals, None, &[which])?;
        }
        let states: Vec<&str> = query.all("state").collect();
        if !states.is_empty() {
            self.add(Field::State, Op::In, None, &states)?;
        }
        if let Some(raw) = query.get("startDate").filter(|s| !s.is_empty()) {
            self.filter.started.after = Some((date("startDate", raw)?, true));
        }
        if let Some(raw) = query.get("endDate").filter(|s| !s.is_empty()) {
            self.filter.started.before = Some((date("endDate", raw)?, true));
        }
        Ok(())
    }

    /// The conditions as the engine's execution filter; `oldest_first` for
    /// the sort.
    pub fn into_filter(self, oldest_first: bool) -> Filter {
        Filter {
            oldest_first,
            ..self.filter
        }
    }

    /// Whether a flow meets the conditions (only flows' fields are read
    /// for a flow search).
    pub fn flow_matches(&self, namespace: &str, id: &str, labels: &[(String, String)]) -> bool {
        !self.nothing && self.filter.matches_flow(namespace, id, labels)
    }
}

/// Whether `op values` holds of a field whose value is always `always`.
fn holds_for(op: Op, values: &[&str], always: &str) -> bool {
    let listed = list(values).iter().any(|v| v.eq_ignore_ascii_case(always));
    match op {
        Op::Equals | Op::In => listed,
        _ => !listed,
    }
}

/// A text condition.
fn text(field: &str, op: Op, values: &[&str]) -> ApiResult<Text> {
    let one = values.last().copied().unwrap_or_default().to_owned();
    Ok(match op {
        Op::Equals => Text::Equals(one),
        Op::NotEquals => Text::NotEquals(one),
        Op::Contains => Text::Contains(one),
        Op::StartsWith => Text::StartsWith(one),
        Op::EndsWith => Text::EndsWith(one),
        Op::Prefix => Text::Prefix(one),
        Op::In => Text::In(list(values)),
        Op::NotIn => Text::NotIn(list(values)),
        Op::Regex => Text::regex(&one).map_err(|e| {
            bad(format!(
                "`{field}` REGEX `{one}` is not a regular expression: {e}"
            ))
        })?,
        // Refused by `Field::ops` before this.
        _ => return Err(bad(format!("`{field}` has no {} operation", op.name()))),
    })
}

/// `sort=field:asc|desc` of an execution search: only the start date, the
/// order Peregrine keeps. Whether the oldest come first.
pub fn execution_sort(query: &Pairs) -> ApiResult<bool> {
    let mut oldest_first = false;
    for raw in query.all("sort").filter(|s| !s.is_empty()) {
        let (field, order) = raw.split_once(':').unwrap_or((raw, "desc"));
        if field != "state.startDate" && field != "startDate" {
            return Err(bad(format!(
                "sorting executions by `{field}` is not supported yet: only by `state.startDate`"
            )));
        }
        oldest_first = order_is_ascending(raw, order)?;
    }
    Ok(oldest_first)
}

/// `sort=field:asc|desc` of a flow search: by `id` or `namespace`.
/// `(field, ascending)`s, in order.
pub fn flow_sort(query: &Pairs) -> ApiResult<Vec<(FlowSort, bool)>> {
    sorts(
        query,
        |field| match field {
            "id" => Some(FlowSort::Id),
            "namespace" => Some(FlowSort::Namespace),
            _ => None,
        },
        "flows",
        "`id` or `namespace`",
    )
}

/// How two items compare on `sorts` (each field by `by`, reversed when
/// descending), one ordering per sort, in order: chain tie-breakers after,
/// then take the first unequal.
pub fn orderings<F: Copy>(
    sorts: &[(F, bool)],
    by: impl Fn(F) -> std::cmp::Ordering,
) -> impl Iterator<Item = std::cmp::Ordering> {
    sorts.iter().map(move |&(field, ascending)| {
        let order = by(field);
        if ascending { order } else { order.reverse() }
    })
}

/// Page `page` (from 1) of `size` of `found`, each as `json` shows it,
/// with the total: Kestra's `{results, total}`.
pub fn paged<T>(
    found: &[T],
    page: usize,
    size: usize,
    json: impl Fn(&T) -> serde_json::Value,
) -> serde_json::Value {
    let results: Vec<serde_json::Value> = found
        .iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(json)
        .collect();
    serde_json::json!({ "results": results, "total": found.len() })
}

/// The `sort=field:asc|desc` parameters (ascending when no order is
/// given) of a search of `what`, each field read by `field`, refused
/// naming the `known` ones when it reads none. `(field, ascending)`s, in
/// order.
pub fn sorts<F>(
    query: &Pairs,
    field: impl Fn(&str) -> Option<F>,
    what: &str,
    known: &str,
) -> ApiResult<Vec<(F, bool)>> {
    query
        .all("sort")
        .filter(|s| !s.is_empty())
        .map(|raw| {
            let (name, order) = raw.split_once(':').unwrap_or((raw, "asc"));
            let Some(read) = field(name) else {
                return Err(bad(format!(
                    "sorting {what} by `{name}` is not supported yet: only by {known}"
                )));
            };
            Ok((read, order_is_ascending(raw, order)?))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowSort {
    Id,
    Namespace,
}

fn order_is_ascending(raw: &str, order: &str) -> ApiResult<bool> {
    match order.to_ascii_lowercase().as_str() {
        "asc" => Ok(true),
        "desc" => Ok(false),
        _ => Err(bad(format!("sort `{raw}`: the order must be asc or desc"))),
    }
}

/// `page` (from 1) and `size` of a search.
pub fn page(query: &Pairs, max_size: usize) -> ApiResult<(usize, usize)> {
    let number = |key: &str, default: usize, max: usize| -> ApiResult<usize> {
        match query.get(key) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| bad(format!("`{key}` must be a number within 1..={max}"))),
        }
    };
    Ok((
        number("page", 1, usize::MAX)?,
        number("size", 10, max_size)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &[(&str, &str)]) -> Pairs {
        Pairs(
            query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn read(query: &[(&str, &str)]) -> ApiResult<Conditions> {
        Conditions::read(&pairs(query), Resource::Execution)
    }

    #[test]
    fn kestras_filters_are_read() {
        let c = read(&[
            ("filters[namespace][EQUALS]", "company.team"),
            ("filters[flowId][STARTS_WITH]", "hel"),
            ("filters[state][IN]", "SUCCESS,FAILED"),
            ("filters[state][NOT_EQUALS]", "FAILED"),
            ("filters[labels][EQUALS][team]", "core"),
            ("filters[labels][NOT_EQUALS]", "env:dev"),
            (
                "filters[startDate][GREATER_THAN_OR_EQUAL_TO]",
                "2026-12-01T00:00:00Z",
            ),
            ("filters[q][EQUALS]", "Hello"),
            ("filters[q][NOT_EQUALS]", "Bye"),
        ])
        .expect("valid");
        assert!(matches!(&c.filter.namespace[..], [Text::Equals(ns)] if ns == "company.team"));
        assert!(matches!(&c.filter.flow_id[..], [Text::StartsWith(f)] if f == "hel"));
        assert_eq!(c.filter.states, [ExecState::Success, ExecState::Failed]);
        assert_eq!(c.filter.not_states, [ExecState::Failed]);
        assert_eq!(c.filter.labels, [("team".to_owned(), "core".to_owned())]);
        assert_eq!(c.filter.not_labels, [("env".to_owned(), "dev".to_owned())]);
        assert!(
            c.filter
                .started
                .after
                .is_some_and(|(_, inclusive)| inclusive)
        );
        // Lower-cased, as the engine looks for it.
        assert_eq!(c.filter.query.as_deref(), Some("hello"));
        assert_eq!(c.filter.not_query, ["bye"]);
        assert!(!c.nothing);
    }

    #[test]
    fn unsupported_fields_and_operations_are_refused_as_kestra_does() {
        for (query, says) in [
            (
                ("filters[state][CONTAINS]", "SUCC"),
                "Operation CONTAINS is not supported for field STATE",
            ),
            (("filters[timeRange][EQUALS]", "PT1H"), "not a filter field"),
            (("filters[namespace][LIKE]", "x"), "not a filter operation"),
            (("filters[state][EQUALS]", "DONE"), "not a state"),
            (
                ("filters[startDate][GREATER_THAN]", "yesterday"),
                "ISO 8601",
            ),
            (
                ("filters[namespace][REGEX]", "("),
                "not a regular expression",
            ),
        ] {
            let err = read(&[query]).expect_err(query.0);
            assert!(err.to_string().contains(says), "{query:?}: {err}");
        }
        let err = Conditions::read(
            &pairs(&[("filters[state][EQUALS]", "SUCCESS")]),
            Resource::Flow,
        )
        .expect_err("flows have no state");
        assert!(
            err.to_string()
                .contains("Field STATE is not supported for resource FLOW"),
            "{err}"
        );
    }

    #[test]
    fn what_nothing_here_can_be_matches_nothing() {
        for query in [
            ("filters[scope][EQUALS]", "SYSTEM"),
            ("filters[kind][EQUALS]", "TEST"),
        ] {
            assert!(read(&[query]).expect("valid").nothing, "{query:?}");
        }
        for query in [
            ("filters[scope][EQUALS]", "USER"),
            ("filters[kind][IN]", "NORMAL,TEST"),
        ] {
            assert!(!read(&[query]).expect("valid").nothing, "{query:?}");
        }
    }

    #[test]
    fn children_are_asked_for_by_their_parent_or_as_children() {
        let c = read(&[("filters[childFilter][EQUALS]", "CHILD")]).expect("valid");
        assert_eq!(c.filter.child, Some(true));
        let c = read(&[("filters[childFilter][NOT_EQUALS]", "CHILD")]).expect("valid");
        assert_eq!(c.filter.child, Some(false));
        let c = read(&[("childFilter", "MAIN")]).expect("0.22's parameter");
        assert_eq!(c.filter.child, Some(false));
        let both = read(&[
            ("filters[childFilter][EQUALS]", "CHILD"),
            ("filters[childFilter][NOT_EQUALS]", "CHILD"),
        ]);
        assert!(both.expect("valid").nothing, "a child and not one");
        assert!(read(&[("filters[childFilter][EQUALS]", "OTHER")]).is_err());
        let c = read(&[("filters[triggerExecutionId][EQUALS]", "abc")]).expect("valid");
        assert!(matches!(&c.filter.trigger_execution[..], [Text::Equals(id)] if id == "abc"));
    }

    #[test]
    fn the_older_parameters_still_work() {
        let c = read(&[
            ("namespace", "company"),
            ("flowId", "hello"),
            ("state", "SUCCESS"),
            ("labels", "team:core"),
        ])
        .expect("valid");
        assert!(matches!(&c.filter.namespace[..], [Text::Prefix(ns)] if ns == "company"));
        assert!(matches!(&c.filter.flow_id[..], [Text::Equals(f)] if f == "hello"));
        assert_eq!(c.filter.states, [ExecState::Success]);
        assert_eq!(c.filter.labels, [("team".to_owned(), "core".to_owned())]);
    }

    #[test]
    fn sorts_are_read_and_others_refused() {
        assert!(!execution_sort(&pairs(&[])).expect("default"));
        assert!(execution_sort(&pairs(&[("sort", "state.startDate:asc")])).expect("asc"));
        assert!(!execution_sort(&pairs(&[("sort", "state.startDate:desc")])).expect("desc"));
        assert!(execution_sort(&pairs(&[("sort", "state.duration:asc")])).is_err());
        assert!(execution_sort(&pairs(&[("sort", "state.startDate:up")])).is_err());
        assert_eq!(
            flow_sort(&pairs(&[("sort", "namespace:desc"), ("sort", "id:asc")])).expect("valid"),
            [(FlowSort::Namespace, false), (FlowSort::Id, true)]
        );
    }
}
