//! `execution.Count` (Kestra's `Count`, alias `executions.Counts`): how many
//! executions listed flows or namespaces have, kept where an expression
//! over each `count` holds. An execution task like those of `execution.rs`,
//! kept apart because it asks the whole engine: its task run asks the
//! courier (see `executor::courier`), which has every shard count its
//! running and finished executions, and the counts come back as the
//! answer, journaled, so that a replay of the journal filters the same
//! counts again.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{ChildAnswer, Started, TaskContext, TaskKind, TaskType};
use crate::execution::{ExecutionId, State};
use crate::executor::Tally;
use crate::expression::{EmptyContext, Property};
use crate::flow::Props;

/// Flows and namespaces one task may list.
const MAX_LISTED: usize = 1_000;

pub(super) static COUNT: TaskType = TaskType {
    name: "io.kestra.plugin.core.execution.Count",
    aliases: &["io.kestra.core.tasks.executions.Counts"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let flows = flows(p);
        let namespaces = listed(p, "namespaces", |_| Ok(()));
        let states = listed(p, "states", |s| state(s).map(drop));
        let start_date = p.req_string_property("startDate");
        let end_date = p.string_property("endDate");
        let expression = p.req_string_property("expression");
        Some(Arc::new(Count {
            flows: flows?,
            namespaces: namespaces?,
            states: states?,
            start_date: start_date?,
            end_date,
            expression: expression?,
        }))
    },
};

/// `execution.Count`: the executions started from `startDate` to `endDate`
/// (the step's instant when absent), in one of `states` (any when absent),
/// of each of `flows` (`{namespace, flowId}`) and in each of `namespaces`,
/// counted; a row is kept when `expression`, rendered with `count`, is
/// `true`. Outputs `results` (`{namespace, flowId, count}`, a namespace's
/// without `flowId`) and `total`, the sum of the kept counts.
#[derive(Debug)]
pub(crate) struct Count {
    /// `None`: not given (then `namespaces` must be).
    flows: Option<Vec<(String, String)>>,
    namespaces: Option<Property>,
    states: Option<Property>,
    start_date: Property,
    end_date: Option<Property>,
    expression: Property,
}

impl TaskKind for Count {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        match self.tally(ctx) {
            Ok(tally) => Started::Count(Box::new(tally)),
            Err(e) => Started::Done(Err(e)),
        }
    }

    fn on_child(&self, ctx: &mut TaskContext<'_>, _: ExecutionId, answer: &ChildAnswer) -> Started {
        let rows = match answer {
            ChildAnswer::Refused(why) => return Started::Done(Err(why.clone())),
            ChildAnswer::Ended {
                outputs: Some(Value::Array(rows)),
                ..
            } => rows,
            _ => return Started::Done(Err("the engine gave no counts".to_owned())),
        };
        let mut results = Vec::new();
        let mut total = 0u64;
        for row in rows {
            let count = row["count"].as_u64().unwrap_or(0);
            match ctx.render_text_with(&self.expression, "count", &Value::from(count)) {
                Ok(text) if text == "true" => {
                    total += count;
                    results.push(row.clone());
                }
                Ok(_) => {}
                Err(e) => return Started::Done(Err(e)),
            }
        }
        Started::Done(Ok(Some(json!({ "results": results, "total": total }))))
    }
}

impl Count {
    /// What to count, rendered.
    fn tally(&self, ctx: &TaskContext<'_>) -> Result<Tally, String> {
        if self.flows.is_none() && self.namespaces.is_none() {
            return Err("You must provide a list of flows or namespaces.".to_owned());
        }
        let rendered = |p: &Option<Property>| -> Result<Vec<String>, String> {
            match p {
                None => Ok(Vec::new()),
                Some(p) => strings(ctx.render(p)?),
            }
        };
        let states = rendered(&self.states)?
            .iter()
            .map(|s| state(s))
            .collect::<Result<_, _>>()?;
        let from = date(&ctx.render_text(&self.start_date)?)?;
        let to = match &self.end_date {
            Some(p) => date(&ctx.render_text(p)?)?,
            None => ctx.now(),
        };
        Ok(Tally {
            flows: self.flows.clone().unwrap_or_default(),
            namespaces: rendered(&self.namespaces)?,
            states,
            from,
            to,
        })
    }
}

/// `flows`: a list of `{namespace, flowId}`, as written (Kestra's are not
/// templates).
fn flows(p: &mut Props<'_, '_>) -> Option<Option<Vec<(String, String)>>> {
    let Some((value, at)) = p.json("flows") else {
        return Some(None);
    };
    let Value::Array(items) = value else {
        p.problem(&at, "expected a list of {namespace, flowId}");
        return None;
    };
    if items.len() > MAX_LISTED {
        p.problem(&at, format!("more than {MAX_LISTED} flows"));
        return None;
    }
    let mut flows = Vec::with_capacity(items.len());
    let mut valid = true;
    for (i, item) in items.iter().enumerate() {
        let at = at.item(i);
        let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
        let unknown = item
            .as_object()
            .into_iter()
            .flat_map(Map::keys)
            .find(|k| *k != "namespace" && *k != "flowId");
        match (text("namespace"), text("flowId"), unknown) {
            (_, _, Some(key)) => {
                p.problem(&at.child(key), format!("unknown property `{key}`"));
                valid = false;
            }
            (Some(namespace), Some(flow_id), None) => flows.push((namespace, flow_id)),
            _ => {
                p.problem(&at, "a flow is `{namespace, flowId}`, both strings");
                valid = false;
            }
        }
    }
    valid.then_some(Some(flows))
}

/// An optional list of strings (or a template of one), each checked now
/// when written as is.
fn listed(
    p: &mut Props<'_, '_>,
    key: &str,
    check: impl Fn(&str) -> Result<(), String>,
) -> Option<Option<Property>> {
    let Some(property) = p.property(key) else {
        return Some(None);
    };
    if property.is_static() {
        let checked = property
            .render(&EmptyContext)
            .map_err(|e| e.to_string())
            .and_then(strings)
            .and_then(|items| items.iter().try_for_each(|s| check(s)));
        if let Err(e) = checked {
            let at = p.here(key);
            p.problem(&at, e);
            return None;
        }
    }
    Some(Some(property))
}

/// A list of strings, or a JSON text of one (a rendered template).
fn strings(value: Value) -> Result<Vec<String>, String> {
    let value = match value {
        Value::String(text) => {
            serde_json::from_str(&text).map_err(|_| format!("`{text}` is not a list of strings"))?
        }
        other => other,
    };
    let Value::Array(items) = value else {
        return Err(format!("`{value}` is not a list of strings"));
    };
    if items.len() > MAX_LISTED {
        return Err(format!("more than {MAX_LISTED} items"));
    }
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Ok(s),
            other => Err(format!("`{other}` is not a string")),
        })
        .collect()
}

fn state(name: &str) -> Result<State, String> {
    State::parse(name).ok_or_else(|| format!("`{name}` is not an execution state"))
}

/// A date as Kestra's `ZonedDateTime.parse` reads it: ISO-8601 with an
/// offset, and maybe a zone in brackets after it.
fn date(text: &str) -> Result<DateTime<Utc>, String> {
    let trimmed = text.trim();
    let bare = match trimmed.find('[') {
        Some(at) if trimmed.ends_with(']') => &trimmed[..at],
        _ => trimmed,
    };
    DateTime::parse_from_rfc3339(bare)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| format!("Text '{text}' could not be parsed as a date with an offset"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::testing::{flow, kind, problems};

    #[test]
    fn flows_namespaces_and_states_are_read_and_checked() {
        let f = flow(
            r#"
  - id: c
    type: io.kestra.core.tasks.executions.Counts
    flows:
      - namespace: company.team
        flowId: a
    states: [SUCCESS, FAILED]
    startDate: "{{ now() | dateAdd(-1, 'DAYS') }}"
    expression: "{{ count == 0 }}"
"#,
        );
        let c: &Count = kind(&f, "c");
        assert_eq!(
            c.flows.as_deref(),
            Some(&[("company.team".to_owned(), "a".to_owned())][..])
        );
        assert!(c.namespaces.is_none() && c.end_date.is_none());

        let p = problems(
            r#"
  - id: c
    type: io.kestra.plugin.core.execution.Count
    flows:
      - namespace: company.team
        flow: a
    states: [DONE]
    expression: "{{ count == 0 }}"
"#,
        );
        let all = p.join("\n");
        assert!(
            all.contains("tasks[0].flows[0].flow") && all.contains("unknown"),
            "{all}"
        );
        assert!(
            all.contains("tasks[0].states") && all.contains("`DONE`"),
            "{all}"
        );
        assert!(all.contains("startDate"), "{all}");
    }

    #[test]
    fn dates_are_read_with_an_offset_and_maybe_a_zone() {
        let utc = date("2024-12-20T10:00:00Z").unwrap();
        assert_eq!(
            date("2024-12-20T11:00:00+01:00[Europe/Paris]").unwrap(),
            utc
        );
        assert_eq!(date("2024-12-20T10:00:00.000Z").unwrap(), utc);
        assert!(date("2024-12-20T10:00:00").is_err(), "no offset");
        assert!(date("yesterday").is_err());
    }

    #[test]
    fn strings_read_a_list_or_its_json() {
        assert_eq!(strings(json!(["a", "b"])).unwrap(), ["a", "b"]);
        assert_eq!(strings(json!(r#"["a"]"#)).unwrap(), ["a"]);
        assert!(strings(json!([1])).is_err());
        assert!(strings(json!("a")).is_err());
    }
}
