//! Kestra's protocol on a script's output: a line that is exactly
//! `::{...}::` is a JSON object whose `outputs` are merged into the task's
//! `vars`, whose `metrics` are recorded and whose `logs` are logged at their
//! own levels; every other line is a log entry (INFO from stdout, ERROR from
//! stderr, as Kestra's `PluginUtilsService.parseOut`).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::execution::MetricKind;
use crate::flow::Level;
use crate::tasks::{JobLine, JobMetric, LogKeeper};

/// The most a script may set through `outputs`, as JSON text, across its
/// lines: what a task run's outputs may hold is checked later, this bounds
/// what is held while it runs.
const MAX_VARS_BYTES: usize = 4 << 20;
/// The metrics one script may record.
const MAX_METRICS: usize = 10_000;
/// The most bytes of metrics one script may record, as journaled with its
/// answer (names, tags and what frames them).
const MAX_METRICS_BYTES: usize = 256 << 10;

/// What a script said through the protocol.
#[derive(Debug, Default)]
pub(crate) struct Said {
    /// Its `outputs`, merged in order.
    pub vars: Map<String, Value>,
    vars_bytes: usize,
    /// Its `metrics`, checked: `{name, type, value, tags}`.
    pub metrics: Vec<JobMetric>,
    metrics_bytes: usize,
    /// Why something it said was refused (told once the script ends).
    pub refused: Option<String>,
}

/// Reads one line of output: a protocol line into `said`, any other into
/// `logs` at `level`.
pub(crate) fn read_line(
    line: &str,
    level: Level,
    at: DateTime<Utc>,
    said: &mut Said,
    logs: &mut LogKeeper,
) {
    let Some(json) = line
        .strip_prefix("::")
        .and_then(|l| l.strip_suffix("::"))
        .filter(|l| l.starts_with('{') && l.ends_with('}'))
    else {
        logs.push(JobLine {
            level,
            at,
            message: line.to_owned(),
        });
        return;
    };
    let command = match serde_json::from_str::<Map<String, Value>>(json) {
        Ok(command) => command,
        Err(e) => {
            logs.push(JobLine {
                level: Level::Warn,
                at,
                message: format!("Invalid outputs '{e}'"),
            });
            return;
        }
    };
    for (key, value) in command {
        match (key.as_str(), value) {
            (_, Value::Null) => {}
            ("outputs", Value::Object(outputs)) => {
                for (name, value) in outputs {
                    said.vars_bytes += name.len() + value.to_string().len();
                    if said.vars_bytes > MAX_VARS_BYTES {
                        said.refused.get_or_insert_with(|| {
                            format!("the script's outputs are larger than {MAX_VARS_BYTES} bytes")
                        });
                        return;
                    }
                    said.vars.insert(name, value);
                }
            }
            ("metrics", Value::Array(metrics)) => {
                for metric in metrics {
                    match self::metric(metric, at) {
                        Ok(_) if said.metrics.len() >= MAX_METRICS => {
                            said.refused.get_or_insert_with(|| {
                                format!("the script recorded more than {MAX_METRICS} metrics")
                            });
                            return;
                        }
                        Ok(metric) => {
                            // As journaled: its text and what frames it.
                            said.metrics_bytes += 48
                                + metric.name.len()
                                + metric
                                    .tags
                                    .iter()
                                    .map(|(k, v)| 16 + k.len() + v.len())
                                    .sum::<usize>();
                            if said.metrics_bytes > MAX_METRICS_BYTES {
                                said.refused.get_or_insert_with(|| {
                                    format!(
                                        "the script's metrics are larger than {MAX_METRICS_BYTES} bytes"
                                    )
                                });
                                return;
                            }
                            said.metrics.push(metric);
                        }
                        Err(why) => logs.push(JobLine {
                            level: Level::Warn,
                            at,
                            message: format!("Invalid metric '{why}'"),
                        }),
                    }
                }
            }
            ("logs", Value::Array(lines)) => {
                for line in lines {
                    let level = line
                        .get("level")
                        .and_then(Value::as_str)
                        .and_then(Level::parse);
                    let message = line.get("message").map(|m| match m {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                    match (level, message) {
                        (Some(level), Some(message)) => logs.push(JobLine { level, at, message }),
                        _ => logs.push(JobLine {
                            level: Level::Warn,
                            at,
                            message: format!("Invalid log '{json}'"),
                        }),
                    }
                }
            }
            (other, _) => logs.push(JobLine {
                level: Level::Warn,
                at,
                message: format!(
                    "Invalid outputs '`{other}` is not one of outputs, metrics or logs, each of its type'"
                ),
            }),
        }
    }
}

/// One metric of a protocol line, recorded at `at`: a timer's value is
/// seconds (or an ISO-8601 duration), kept as milliseconds as Kestra's
/// `MetricEntry`; tags are strings (another value is kept as its JSON).
fn metric(value: Value, at: DateTime<Utc>) -> Result<JobMetric, String> {
    let Value::Object(mut m) = value else {
        return Err("a metric is an object".to_owned());
    };
    let name = match m.remove("name") {
        Some(Value::String(name)) if !name.is_empty() => name,
        _ => return Err("a metric has a `name`".to_owned()),
    };
    let Some(kind) = m
        .remove("type")
        .as_ref()
        .and_then(Value::as_str)
        .and_then(MetricKind::parse)
    else {
        return Err(format!("metric `{name}`'s `type` is counter or timer"));
    };
    let value = match m.remove("value") {
        // Whole milliseconds, as Kestra's `Duration.toMillis()`.
        Some(Value::Number(n)) if kind == MetricKind::Timer => {
            (n.as_f64().unwrap_or(0.0) * 1000.0).trunc()
        }
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        // A timer's value may be an ISO-8601 duration, as Kestra's.
        Some(Value::String(s)) if kind == MetricKind::Timer => crate::flow::parse_duration(&s)
            .map(|d| d.as_millis() as f64)
            .ok_or_else(|| format!("metric `{name}`'s value `{s}` is not a duration"))?,
        _ => return Err(format!("metric `{name}` has a numeric `value`")),
    };
    if !value.is_finite() {
        return Err(format!("metric `{name}`'s value is not a finite number"));
    }
    let tags = match m.remove("tags") {
        Some(Value::Object(tags)) => tags
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(format!("metric `{name}`'s `tags` is a map")),
    };
    Ok(JobMetric {
        kind,
        name,
        value,
        tags,
        at,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(lines: &[(&str, Level)]) -> (Said, Vec<(Level, String)>) {
        let mut said = Said::default();
        let mut keeper = LogKeeper::new(1 << 20);
        for (line, level) in lines {
            read_line(line, *level, Utc::now(), &mut said, &mut keeper);
        }
        let logs = keeper
            .finish()
            .into_iter()
            .map(|l| (l.level, l.message))
            .collect();
        (said, logs)
    }

    #[test]
    fn protocol_lines_set_outputs_metrics_and_logs() {
        let (said, logs) = read(&[
            (r#"::{"outputs":{"a":1,"b":{"c":"x"}}}::"#, Level::Info),
            (r#"::{"outputs":{"a":2}}::"#, Level::Error),
            (
                r#"::{"metrics":[{"name":"rows","type":"counter","value":5,"tags":{"t":"1"}},{"name":"took","type":"timer","value":"PT2S"}]}::"#,
                Level::Info,
            ),
            (
                r#"::{"logs":[{"level":"WARN","message":"careful"}]}::"#,
                Level::Info,
            ),
            ("plain", Level::Info),
            ("broken", Level::Error),
        ]);
        assert_eq!(Value::Object(said.vars), json!({"a": 2, "b": {"c": "x"}}));
        assert_eq!(said.metrics.len(), 2);
        assert_eq!(said.metrics[0].name, "rows");
        assert_eq!(said.metrics[0].value, 5.0);
        assert_eq!(said.metrics[0].kind, MetricKind::Counter);
        assert_eq!(said.metrics[0].tags, vec![("t".to_owned(), "1".to_owned())]);
        // A timer is kept in milliseconds, as Kestra's MetricEntry.
        assert_eq!(said.metrics[1].value, 2000.0);
        assert_eq!(said.metrics[1].kind, MetricKind::Timer);
        assert_eq!(
            logs,
            [
                (Level::Warn, "careful".to_owned()),
                (Level::Info, "plain".to_owned()),
                (Level::Error, "broken".to_owned()),
            ]
        );
    }

    #[test]
    fn a_line_that_only_looks_like_the_protocol_is_logged() {
        let (said, logs) = read(&[
            (" ::{\"outputs\":{\"a\":1}}::", Level::Info),
            ("::{not json}::", Level::Info),
            (
                r#"::{"metrics":[{"name":"m","type":"gauge","value":1}]}::"#,
                Level::Info,
            ),
        ]);
        assert!(said.vars.is_empty());
        assert!(said.metrics.is_empty());
        assert_eq!(
            logs[0],
            (Level::Info, " ::{\"outputs\":{\"a\":1}}::".to_owned())
        );
        assert!(logs[1].1.starts_with("Invalid outputs"), "{:?}", logs[1]);
        assert!(logs[2].1.contains("counter or timer"), "{:?}", logs[2]);
    }

    #[test]
    fn a_timers_seconds_are_kept_in_milliseconds_and_metrics_are_bounded() {
        let (said, _) = read(&[(
            r#"::{"metrics":[{"name":"t","type":"timer","value":0.25},{"name":"c","type":"counter","value":1e400}]}::"#,
            Level::Info,
        )]);
        // 1e400 does not parse as JSON's finite double: the line is refused
        // whole, logged as invalid.
        assert!(said.metrics.is_empty(), "{:?}", said.metrics);
        let (said, _) = read(&[(
            r#"::{"metrics":[{"name":"t","type":"timer","value":0.25},{"name":"u","type":"timer","value":2.0005}]}::"#,
            Level::Info,
        )]);
        assert_eq!(said.metrics[0].value, 250.0);
        assert_eq!(
            said.metrics[1].value, 2000.0,
            "whole milliseconds, as Kestra's"
        );
        let big = "x".repeat(100 << 10);
        let line = format!(
            r#"::{{"metrics":[{{"name":"a","type":"counter","value":1,"tags":{{"k":"{big}"}}}},{{"name":"b","type":"counter","value":1,"tags":{{"k":"{big}"}}}},{{"name":"c","type":"counter","value":1,"tags":{{"k":"{big}"}}}}]}}::"#
        );
        let (said, _) = read(&[(&line, Level::Info)]);
        assert_eq!(said.metrics.len(), 2, "the third is past the budget");
        assert!(
            said.refused
                .as_deref()
                .is_some_and(|r| r.contains("larger than")),
            "{:?}",
            said.refused
        );
    }
}
