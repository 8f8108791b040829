//! The metric API (Kestra's `MetricController`): the metrics an execution's
//! task runs recorded, a page at a time; the names of a flow's metrics and
//! the tasks that recorded some; and one metric aggregated across a flow's
//! executions in buckets of time. Metrics are kept as long as executions
//! are (see `peregrine_engine::metric_store`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Datelike, Duration, DurationRound, Months, TimeDelta, Utc};
use peregrine_engine::format_date;
use peregrine_engine::metric_store::MetricEntry;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::executions::parse_id;
use super::extract::{Pairs, Params};
use super::filters;
use crate::state::AppState;

/// Metrics one page may hold.
const MAX_PAGE_SIZE: usize = 10_000;
/// Buckets one aggregation may answer.
const MAX_BUCKETS: usize = 10_000;

/// What a page of an execution's metrics may be sorted by (Kestra's
/// `sortMapping`).
#[derive(Debug, Clone, Copy)]
enum SortBy {
    Namespace,
    FlowId,
    TaskId,
    ExecutionId,
    TaskRunId,
    Name,
    Timestamp,
    Value,
}

impl SortBy {
    fn read(field: &str) -> Option<Self> {
        Some(match field {
            "namespace" => SortBy::Namespace,
            "flowId" => SortBy::FlowId,
            "taskId" => SortBy::TaskId,
            "executionId" => SortBy::ExecutionId,
            "taskrunId" | "taskRunId" => SortBy::TaskRunId,
            "name" => SortBy::Name,
            "timestamp" => SortBy::Timestamp,
            "value" => SortBy::Value,
            _ => return None,
        })
    }

    fn compare(self, a: &MetricEntry, b: &MetricEntry) -> std::cmp::Ordering {
        let (x, y) = (&a.metric, &b.metric);
        match self {
            SortBy::Namespace => a.namespace.cmp(&b.namespace),
            SortBy::FlowId => a.flow_id.cmp(&b.flow_id),
            SortBy::TaskId => x.task_id.cmp(&y.task_id),
            SortBy::ExecutionId => a.execution.to_string().cmp(&b.execution.to_string()),
            SortBy::TaskRunId => x.task_run.to_string().cmp(&y.task_run.to_string()),
            SortBy::Name => x.name.cmp(&y.name),
            SortBy::Timestamp => x.date.cmp(&y.date),
            SortBy::Value => x.value.total_cmp(&y.value),
        }
    }
}

/// `GET /metrics/{executionId}`: its metrics, in the order recorded
/// unless `sort`ed, `{results, total}`; `taskId` (first) or `taskRunId`
/// narrow them; `page`, `size`. An execution that recorded none, or is
/// unknown, has an empty page, as Kestra's.
pub async fn of_execution(
    State(state): State<AppState>,
    Params(id): Params<String>,
    query: Pairs,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let (page, size) = filters::page(&query, MAX_PAGE_SIZE)?;
    let sorts = filters::sorts(
        &query,
        SortBy::read,
        "metrics",
        "namespace, flowId, taskId, executionId, taskrunId, name, timestamp or value",
    )?;
    let text = |k: &str| query.get(k).filter(|v| !v.is_empty()).map(str::to_owned);
    let (task_id, task_run_id) = (text("taskId"), text("taskRunId"));
    let mut found: Vec<Arc<MetricEntry>> = state
        .task_metrics()
        .of_execution(id)
        .into_iter()
        .filter(|m| match (&task_id, &task_run_id) {
            (Some(task), _) => &*m.metric.task_id == task,
            (None, Some(run)) => m.metric.task_run.to_string() == *run,
            (None, None) => true,
        })
        .collect();
    found.sort_by(|a, b| {
        filters::orderings(&sorts, |by: SortBy| by.compare(a, b))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(Json(filters::paged(&found, page, size, |m| m.json())))
}

/// The metrics of flow `namespace.flow_id` (of task `task_id`, if given).
fn of_flow(
    state: &AppState,
    namespace: &str,
    flow_id: &str,
    task_id: Option<&str>,
) -> Vec<Arc<MetricEntry>> {
    state.task_metrics().search(|m| {
        &*m.namespace == namespace
            && &*m.flow_id == flow_id
            && task_id.is_none_or(|t| &*m.metric.task_id == t)
    })
}

/// Each distinct value `key` gives, sorted.
fn distinct(metrics: &[Arc<MetricEntry>], key: impl Fn(&MetricEntry) -> &str) -> Vec<String> {
    let set: std::collections::BTreeSet<&str> = metrics.iter().map(|m| key(m)).collect();
    set.into_iter().map(str::to_owned).collect()
}

/// `GET /metrics/names/{namespace}/{flowId}`: the names of the metrics
/// its executions recorded, sorted.
pub async fn flow_names(
    State(state): State<AppState>,
    Params((namespace, flow_id)): Params<(String, String)>,
) -> Json<Vec<String>> {
    let metrics = of_flow(&state, &namespace, &flow_id, None);
    Json(distinct(&metrics, |m| &m.metric.name))
}

/// `GET /metrics/names/{namespace}/{flowId}/{taskId}`: the names of the
/// metrics one of its tasks recorded, sorted.
pub async fn task_names(
    State(state): State<AppState>,
    Params((namespace, flow_id, task_id)): Params<(String, String, String)>,
) -> Json<Vec<String>> {
    let metrics = of_flow(&state, &namespace, &flow_id, Some(&task_id));
    Json(distinct(&metrics, |m| &m.metric.name))
}

/// `GET /metrics/tasks/{namespace}/{flowId}`: the ids of its tasks that
/// recorded metrics (renamed or deleted ones too), sorted.
pub async fn tasks(
    State(state): State<AppState>,
    Params((namespace, flow_id)): Params<(String, String)>,
) -> Json<Vec<String>> {
    let metrics = of_flow(&state, &namespace, &flow_id, None);
    Json(distinct(&metrics, |m| &m.metric.task_id))
}

/// `GET /metrics/aggregates/{namespace}/{flowId}/{metric}`.
pub async fn aggregate_flow(
    State(state): State<AppState>,
    Params((namespace, flow_id, metric)): Params<(String, String, String)>,
    query: Pairs,
) -> ApiResult<Json<Value>> {
    aggregate(&state, &namespace, &flow_id, None, &metric, &query).map(Json)
}

/// `GET /metrics/aggregates/{namespace}/{flowId}/{taskId}/{metric}`.
pub async fn aggregate_task(
    State(state): State<AppState>,
    Params((namespace, flow_id, task_id, metric)): Params<(String, String, String, String)>,
    query: Pairs,
) -> ApiResult<Json<Value>> {
    aggregate(
        &state,
        &namespace,
        &flow_id,
        Some(&task_id),
        &metric,
        &query,
    )
    .map(Json)
}

/// How one bucket's metrics are folded into its value.
#[derive(Debug, Clone, Copy)]
enum Fold {
    Sum,
    Avg,
    Min,
    Max,
}

impl Fold {
    fn read(text: &str) -> ApiResult<Self> {
        Ok(match text {
            "sum" => Fold::Sum,
            "avg" => Fold::Avg,
            "min" => Fold::Min,
            "max" => Fold::Max,
            other => {
                return Err(ApiError::bad_request(format!(
                    "Invalid aggregation: {other} (avg, sum, min or max)"
                )));
            }
        })
    }

    fn apply(self, values: &[f64]) -> f64 {
        match self {
            Fold::Sum => values.iter().sum(),
            Fold::Avg => values.iter().sum::<f64>() / values.len() as f64,
            Fold::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            Fold::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// The buckets of time an aggregation is grouped by, by the length of
/// its range as Kestra's `DateUtils.groupByType`: minutes up to 6 hours,
/// hours up to a day, days up to 180, weeks up to 365, months past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl Bucket {
    fn of(range: Duration) -> Self {
        if range.num_days() > 365 {
            Bucket::Month
        } else if range.num_days() > 180 {
            Bucket::Week
        } else if range.num_days() > 1 {
            Bucket::Day
        } else if range.num_hours() > 6 {
            Bucket::Hour
        } else {
            Bucket::Minute
        }
    }

    fn name(self) -> &'static str {
        match self {
            Bucket::Minute => "minute",
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
        }
    }

    /// The start of the bucket `at` falls in (in UTC; weeks start on
    /// Monday); `at` itself at the ends of time.
    fn start(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let day = at.duration_trunc(TimeDelta::days(1)).unwrap_or(at);
        let back = |days: u32| day.checked_sub_signed(TimeDelta::days(i64::from(days)));
        match self {
            Bucket::Minute => at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at),
            Bucket::Hour => at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at),
            Bucket::Day => day,
            Bucket::Week => back(day.weekday().num_days_from_monday()).unwrap_or(day),
            Bucket::Month => back(day.day0()).unwrap_or(day),
        }
    }

    /// The start of the next bucket; none past the end of time.
    fn next(self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Bucket::Minute => at.checked_add_signed(TimeDelta::minutes(1)),
            Bucket::Hour => at.checked_add_signed(TimeDelta::hours(1)),
            Bucket::Day => at.checked_add_signed(TimeDelta::days(1)),
            Bucket::Week => at.checked_add_signed(TimeDelta::weeks(1)),
            Bucket::Month => at.checked_add_months(Months::new(1)),
        }
    }
}

/// Metric `metric` of flow `namespace.flow_id` (of task `task_id`) from
/// `startDate` (30 days ago by default) to `endDate` (now), folded by
/// `aggregation` (`sum` by default) in buckets, each dated at its start:
/// `{groupBy, aggregations: [{name, value, date}]}`, a bucket with no
/// metric at 0.
fn aggregate(
    state: &AppState,
    namespace: &str,
    flow_id: &str,
    task_id: Option<&str>,
    metric: &str,
    query: &Pairs,
) -> ApiResult<Value> {
    let date = |key: &str| {
        query
            .get(key)
            .filter(|v| !v.is_empty())
            .map(|v| filters::zoned_date(key, v))
            .transpose()
    };
    let now = Utc::now();
    let end = date("endDate")?.unwrap_or(now);
    let start = date("startDate")?.unwrap_or(now - Duration::days(30));
    if start > end {
        return Err(ApiError::bad_request("Start date must be before End Date"));
    }
    let fold = Fold::read(
        query
            .get("aggregation")
            .filter(|v| !v.is_empty())
            .unwrap_or("sum"),
    )?;
    let bucket = Bucket::of(end - start);
    let mut values: std::collections::BTreeMap<DateTime<Utc>, Vec<f64>> = Default::default();
    for m in of_flow(state, namespace, flow_id, task_id) {
        let m = &m.metric;
        if m.name == metric && m.date >= start && m.date <= end {
            values
                .entry(bucket.start(m.date))
                .or_default()
                .push(m.value);
        }
    }
    // Every bucket the range touches, the partial first and last ones too.
    let mut aggregations = Vec::new();
    let mut key = bucket.start(start);
    while key <= end {
        if aggregations.len() == MAX_BUCKETS {
            return Err(ApiError::bad_request(format!(
                "from {} to {} by {} is more than {MAX_BUCKETS} buckets",
                format_date(start),
                format_date(end),
                bucket.name()
            )));
        }
        let value = values.get(&key).map_or(0.0, |v| fold.apply(v));
        aggregations.push(json!({ "name": metric, "value": value, "date": format_date(key) }));
        match bucket.next(key) {
            Some(next) => key = next,
            None => break,
        }
    }
    Ok(json!({ "groupBy": bucket.name(), "aggregations": aggregations }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a date")
            .with_timezone(&Utc)
    }

    #[test]
    fn buckets_are_chosen_by_the_range_and_start_where_kestra_groups() {
        assert_eq!(Bucket::of(Duration::hours(6)), Bucket::Minute);
        assert_eq!(Bucket::of(Duration::hours(7)), Bucket::Hour);
        assert_eq!(Bucket::of(Duration::days(2)), Bucket::Day);
        assert_eq!(Bucket::of(Duration::days(30)), Bucket::Day);
        assert_eq!(Bucket::of(Duration::days(181)), Bucket::Week);
        assert_eq!(Bucket::of(Duration::days(366)), Bucket::Month);
        let t = at("2026-12-03T10:42:17Z");
        assert_eq!(Bucket::Minute.start(t), at("2026-12-03T10:42:00Z"));
        assert_eq!(Bucket::Hour.start(t), at("2026-12-03T10:00:00Z"));
        assert_eq!(Bucket::Day.start(t), at("2026-12-03T00:00:00Z"));
        // 2026-12-03 is a Thursday.
        assert_eq!(Bucket::Week.start(t), at("2026-11-30T00:00:00Z"));
        assert_eq!(Bucket::Month.start(t), at("2026-12-01T00:00:00Z"));
        assert_eq!(
            Bucket::Month.next(at("2026-01-31T00:00:00Z")),
            Some(at("2026-02-28T00:00:00Z"))
        );
        assert_eq!(Bucket::Day.next(DateTime::<Utc>::MAX_UTC), None);
        assert_eq!(
            Bucket::Month.start(DateTime::<Utc>::MIN_UTC),
            DateTime::<Utc>::MIN_UTC
        );
    }

    #[test]
    fn folds_are_kestras_four() {
        let v = [3.0, 1.0, 2.0];
        assert_eq!(Fold::read("sum").expect("sum").apply(&v), 6.0);
        assert_eq!(Fold::read("avg").expect("avg").apply(&v), 2.0);
        assert_eq!(Fold::read("min").expect("min").apply(&v), 1.0);
        assert_eq!(Fold::read("max").expect("max").apply(&v), 3.0);
        assert!(Fold::read("median").is_err());
    }
}
