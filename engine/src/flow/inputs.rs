//! Execution inputs: typed, checked against the flow's declarations, with
//! defaults applied, before an execution starts.
//!
//! Values may come typed (JSON API) or as text (multipart forms, `--input
//! key=value`): `"42"` is accepted for an INT and becomes 42, a JSON input
//! given as text is parsed, and so on. Semantics after Kestra:
//! - `required` defaults to true; a missing required input without
//!   `defaults` is an error, a missing optional one is `null`;
//! - an input id with dots is nested: `a.b` is read as `inputs.a.b`;
//! - an explicit `null` counts as missing;
//! - inputs the flow does not declare are ignored;
//! - DURATION, DATE and TIME stay strings, checked for ISO-8601; DATETIME
//!   becomes UTC (`2024-01-31T09:00:00Z`), as Kestra's `Instant` prints;
//! - BOOLEAN takes `true`/`false` only: Kestra's `Boolean.valueOf` turns any
//!   other text into false, which hides typos, so we reject it instead.

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use serde_json::{Map, Number, Value};

use super::duration::parse_duration;
use super::error::{Error, InputProblem, Result};
use super::model::{Flow, InputDef, InputType};

/// Checks and types `provided` against `flow`'s inputs. Returns the inputs
/// of the execution, in declaration order; reports every bad input at once.
pub fn validate_inputs(flow: &Flow, provided: &Map<String, Value>) -> Result<Map<String, Value>> {
    check_inputs(&flow.inputs, provided)
}

/// Checks and types `provided` against `inputs` (a flow's, or a Pause's
/// `onResume`).
pub(crate) fn check_inputs(
    inputs: &[InputDef],
    provided: &Map<String, Value>,
) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    let mut problems = Vec::new();
    for input in inputs {
        let given = provided.get(&input.id).filter(|v| !v.is_null());
        match given {
            Some(raw) => match coerce(&input.type_, raw) {
                Ok(v) => insert_nested(&mut out, &input.id, v),
                Err(message) => problems.push(InputProblem {
                    id: input.id.clone(),
                    expected: Some(input.type_.name()),
                    message,
                }),
            },
            None => match &input.defaults {
                Some(d) => insert_nested(&mut out, &input.id, d.clone()),
                None if input.required => problems.push(InputProblem {
                    id: input.id.clone(),
                    expected: None,
                    message: format!("missing required input of type {}", input.type_.name()),
                }),
                None => insert_nested(&mut out, &input.id, Value::Null),
            },
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::Inputs(problems))
    }
}

/// `a.b` = v becomes `{"a": {"b": v}}` (Kestra's `flattenToNestedMap`).
fn insert_nested(out: &mut Map<String, Value>, id: &str, v: Value) {
    match id.split_once('.') {
        Some((head, rest)) if !head.is_empty() && !rest.is_empty() => {
            let slot = out
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                insert_nested(inner, rest, v);
            }
        }
        _ => {
            out.insert(id.to_owned(), v);
        }
    }
}

/// Like [`validate_inputs`], for inputs given as text (`key=value`).
pub fn validate_text_inputs<'a>(
    flow: &Flow,
    provided: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Map<String, Value>> {
    let map = provided
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    validate_inputs(flow, &map)
}

fn shown(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 60 {
        let cut = (0..=57)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}...", &text[..cut])
    } else {
        text
    }
}

/// Converts one value to the type, or says why it does not fit.
pub(crate) fn coerce(t: &InputType, v: &Value) -> Result<Value, String> {
    match t {
        InputType::File => match v {
            Value::String(s) if crate::storage::Uri::parse(s).is_ok() => Ok(v.clone()),
            _ => Err(format!(
                "expected a file: an upload, or the kestra:/// URI of one, got {}",
                shown(v)
            )),
        },
        InputType::String { .. } | InputType::Secret => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(_) | Value::Bool(_) => Ok(Value::String(v.to_string())),
            _ => Err(format!("expected a string, got {}", shown(v))),
        },
        InputType::Int { min, max } => {
            let n = match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| format!("expected an integer, got {}", shown(v)))?;
            if let Some(min) = min.filter(|m| n < *m) {
                return Err(format!("{n} is less than the minimum {min}"));
            }
            if let Some(max) = max.filter(|m| n > *m) {
                return Err(format!("{n} is more than the maximum {max}"));
            }
            Ok(Value::from(n))
        }
        InputType::Float { min, max } => {
            let x = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
                _ => None,
            }
            .ok_or_else(|| format!("expected a number, got {}", shown(v)))?;
            if let Some(min) = min.filter(|m| x < *m) {
                return Err(format!("{x} is less than the minimum {min}"));
            }
            if let Some(max) = max.filter(|m| x > *m) {
                return Err(format!("{x} is more than the maximum {max}"));
            }
            Number::from_f64(x)
                .map(Value::Number)
                .ok_or_else(|| format!("expected a finite number, got {}", shown(v)))
        }
        InputType::Boolean => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(format!("expected true or false, got {}", shown(v))),
        },
        InputType::Json => match v {
            Value::String(s) => {
                serde_json::from_str(s).map_err(|e| format!("not valid JSON ({e}): {}", shown(v)))
            }
            _ => Ok(v.clone()),
        },
        InputType::Yaml => match v {
            Value::String(s) => super::yaml::parse(s)
                .map(|node| node.to_json())
                .map_err(|e| format!("not valid YAML: {}", e.message)),
            _ => Ok(v.clone()),
        },
        InputType::Duration => text(
            v,
            |s| parse_duration(s).is_some(),
            "an ISO-8601 duration (e.g. PT1M30S)",
        ),
        InputType::DateTime => match v {
            Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
                .map(|d| {
                    Value::String(d.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true))
                })
                .map_err(|_| {
                    format!(
                        "expected an ISO-8601 date-time with offset (e.g. 2024-01-31T10:00:00Z), got {}",
                        shown(v)
                    )
                }),
            _ => Err(format!("expected an ISO-8601 date-time, got {}", shown(v))),
        },
        InputType::Date => text(
            v,
            |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
            "an ISO-8601 date (e.g. 2024-01-31)",
        ),
        InputType::Time => text(
            v,
            |s| {
                NaiveTime::parse_from_str(s, "%H:%M:%S%.f").is_ok()
                    || NaiveTime::parse_from_str(s, "%H:%M").is_ok()
            },
            "an ISO-8601 time (e.g. 10:15:30)",
        ),
        InputType::Uri => text(v, is_uri, "a URI (e.g. https://example.com/x)"),
        InputType::Email => text(v, is_email, "an email address"),
        InputType::Select {
            values,
            allow_custom_value,
        } => one_of(v, values, *allow_custom_value),
        InputType::Enum { values } => one_of(v, values, false),
        InputType::MultiSelect {
            values,
            allow_custom_value,
        } => {
            let items = list(v)?;
            let checked = items
                .iter()
                .map(|item| one_of(item, values, *allow_custom_value))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Array(checked))
        }
        InputType::Array { item_type } => {
            let items = list(v)?;
            let checked = items
                .iter()
                .enumerate()
                .map(|(i, item)| coerce(item_type, item).map_err(|e| format!("item {i}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Array(checked))
        }
    }
}

/// A list, or text holding a JSON list (as multipart forms send it).
fn list(v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::Array(items) => Ok(items.clone()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(items)) => Ok(items),
            _ => Err(format!(
                "expected a list (or a JSON list), got {}",
                shown(v)
            )),
        },
        _ => Err(format!("expected a list, got {}", shown(v))),
    }
}

fn one_of(v: &Value, values: &[String], allow_custom_value: bool) -> Result<Value, String> {
    let Value::String(s) = v else {
        return Err(format!("expected one of {values:?}, got {}", shown(v)));
    };
    if allow_custom_value || values.iter().any(|x| x == s) {
        Ok(v.clone())
    } else {
        Err(format!("`{s}` is not one of {values:?}"))
    }
}

fn text(v: &Value, valid: impl Fn(&str) -> bool, expected: &str) -> Result<Value, String> {
    match v {
        Value::String(s) if valid(s.trim()) => Ok(Value::String(s.trim().to_owned())),
        _ => Err(format!("expected {expected}, got {}", shown(v))),
    }
}

/// `scheme:rest`, with scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !rest.is_empty()
        && !s.contains(char::is_whitespace)
}

fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}
