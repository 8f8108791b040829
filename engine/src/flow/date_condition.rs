//! A Schedule's `conditions` (Kestra's `ScheduleCondition`s): which of its
//! cron's dates it fires. Each reads a date, by default `{{ trigger.date
//! }}` (rendered for the candidate date), and a Schedule fires a date only
//! when all hold (its `next` and `previous` skip the others too).

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, Weekday};
use serde_json::Value;

use crate::expression::{JsonContext, Property};

/// One condition on a Schedule's date.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DateCondition {
    /// `DayWeek`: on this day of the week.
    DayWeek { date: Property, day: Weekday },
    /// `DayWeekInMonth`: on the first (…fourth, last) such day of its month.
    DayWeekInMonth {
        date: Property,
        day: Weekday,
        nth: InMonth,
    },
    /// `Weekend` (Saturday, Sunday), or `NotWeekend`.
    Weekend { date: Property, weekend: bool },
    /// `DateTimeBetween`: strictly after `after`, strictly before `before`.
    Between {
        date: Property,
        after: Option<DateTime<FixedOffset>>,
        before: Option<DateTime<FixedOffset>>,
    },
    /// `TimeBetween`: its time of day (with its offset) strictly between.
    TimeBetween {
        date: Property,
        after: Option<(NaiveTime, i32)>,
        before: Option<(NaiveTime, i32)>,
    },
    /// `Expression`: renders true.
    Expression(Property),
}

/// `DayWeekInMonth`'s `dayInMonth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InMonth {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

impl DateCondition {
    /// Whether it holds; `vars` hold `trigger` (`date`, `next`,
    /// `previous`) for the candidate date.
    pub fn holds(&self, vars: &Value) -> Result<bool, String> {
        Ok(match self {
            DateCondition::DayWeek { date, day } => local_date(date, vars)?.weekday() == *day,
            DateCondition::DayWeekInMonth { date, day, nth } => {
                let d = local_date(date, vars)?;
                d.weekday() == *day && in_month(d) == *nth
                    || (*nth == InMonth::Last
                        && d.weekday() == *day
                        && d.checked_add_days(chrono::Days::new(7))
                            .is_none_or(|later| later.month() != d.month()))
            }
            DateCondition::Weekend { date, weekend } => {
                let day = local_date(date, vars)?.weekday();
                matches!(day, Weekday::Sat | Weekday::Sun) == *weekend
            }
            DateCondition::Between {
                date,
                after,
                before,
            } => {
                let d = zoned(&text(date, vars)?)?;
                after.is_none_or(|a| d > a) && before.is_none_or(|b| d < b)
            }
            DateCondition::TimeBetween {
                date,
                after,
                before,
            } => {
                let d = zoned(&text(date, vars)?)?;
                // Kestra's `OffsetTime` comparison: the instants of the times
                // on one day.
                let secs = |t: NaiveTime, offset: i32| {
                    i64::from(t.num_seconds_from_midnight()) - i64::from(offset)
                };
                let at = secs(d.time(), d.offset().local_minus_utc());
                after.is_none_or(|(t, o)| at > secs(t, o))
                    && before.is_none_or(|(t, o)| at < secs(t, o))
            }
            DateCondition::Expression(p) => {
                let t = text(p, vars)?;
                !(t.trim().is_empty() || t.trim() == "false")
            }
        })
    }
}

use chrono::Timelike as _;

/// Which of its month's such weekdays `d` is (the fifth counts as none of
/// the first four: only `Last` can hold it).
fn in_month(d: NaiveDate) -> InMonth {
    match (d.day() - 1) / 7 {
        0 => InMonth::First,
        1 => InMonth::Second,
        2 => InMonth::Third,
        3 => InMonth::Fourth,
        _ => InMonth::Last,
    }
}

fn text(p: &Property, vars: &Value) -> Result<String, String> {
    let value = p
        .render(&JsonContext::new(vars))
        .map_err(|e| e.to_string())?;
    Ok(crate::executor::into_text(value))
}

/// Kestra's `DateUtils.parseZonedDateTime`, for ISO 8601 with an offset.
fn zoned(text: &str) -> Result<DateTime<FixedOffset>, String> {
    let bare = text.trim();
    let bare = match bare.find('[') {
        Some(at) if bare.ends_with(']') => &bare[..at],
        _ => bare,
    };
    DateTime::parse_from_rfc3339(bare)
        .map_err(|_| format!("`{text}` is not an ISO 8601 date-time with an offset"))
}

/// Kestra's `DateUtils.parseLocalDate`: a date, or a date-time's date.
fn local_date(p: &Property, vars: &Value) -> Result<NaiveDate, String> {
    let t = text(p, vars)?;
    NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d").or_else(|_| zoned(&t).map(|d| d.date_naive()))
}

/// Reads a Schedule's `conditions` (as JSON); problems as (path, message).
pub(crate) fn read(
    value: &Value,
    path: &str,
    problems: &mut Vec<(String, String)>,
) -> Vec<DateCondition> {
    let Value::Array(items) = value else {
        problems.push((path.to_owned(), "expected a list of conditions".into()));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        match one(item, &at) {
            Ok(c) => out.push(c),
            Err((p, m)) => problems.push((p, m)),
        }
    }
    out
}

fn one(item: &Value, at: &str) -> Result<DateCondition, (String, String)> {
    let fail = |path: String, message: String| Err((path, message));
    let Some(type_name) = item.get("type").and_then(Value::as_str) else {
        return fail(
            format!("{at}.type"),
            "missing required property `type`".into(),
        );
    };
    let short = type_name.rsplit('.').next().unwrap_or(type_name);
    let short = short.strip_suffix("Condition").unwrap_or(short);
    let known = type_name.starts_with("io.kestra.") || !type_name.contains('.');
    let (name, keys): (&str, &[&str]) = match short {
        "DayWeek" if known => ("DayWeek", &["date", "dayOfWeek"]),
        "DayWeekInMonth" if known => ("DayWeekInMonth", &["date", "dayOfWeek", "dayInMonth"]),
        "Weekend" if known => ("Weekend", &["date"]),
        "NotWeekend" if known => ("NotWeekend", &["date"]),
        "DateTimeBetween" if known => ("DateTimeBetween", &["date", "after", "before"]),
        "TimeBetween" if known => ("TimeBetween", &["date", "after", "before"]),
        "Expression" if known => ("Expression", &["expression"]),
        "PublicHoliday" | "Not" | "Or" if known => {
            return fail(
                format!("{at}.type"),
                format!("condition type `{type_name}` is not supported yet"),
            );
        }
        _ => {
            return fail(
                format!("{at}.type"),
                format!("`{type_name}` is not a Schedule condition"),
            );
        }
    };
    if let Some(map) = item.as_object() {
        for key in map.keys() {
            if key != "type" && key != "description" && !keys.contains(&key.as_str()) {
                return fail(format!("{at}.{key}"), format!("unknown property `{key}`"));
            }
        }
    }
    let template = |key: &str, default: &str| -> Result<Property, (String, String)> {
        let text = item.get(key).and_then(Value::as_str).unwrap_or(default);
        Property::compile(&Value::String(text.to_owned()))
            .map_err(|e| (format!("{at}.{key}"), format!("invalid expression: {e}")))
    };
    let date = || template("date", "{{ trigger.date }}");
    let day = || -> Result<Weekday, (String, String)> {
        let text = item
            .get("dayOfWeek")
            .and_then(Value::as_str)
            .unwrap_or_default();
        text.parse::<Weekday>()
            .ok()
            .filter(|_| text.chars().all(|c| c.is_ascii_uppercase()))
            .ok_or_else(|| {
                (
                    format!("{at}.dayOfWeek"),
                    format!("`{text}`: expected MONDAY ... SUNDAY"),
                )
            })
    };
    let instant = |key: &str| -> Result<Option<DateTime<FixedOffset>>, (String, String)> {
        item.get(key)
            .and_then(Value::as_str)
            .map(|t| zoned(t).map_err(|e| (format!("{at}.{key}"), e)))
            .transpose()
    };
    let time = |key: &str| -> Result<Option<(NaiveTime, i32)>, (String, String)> {
        item.get(key)
            .and_then(Value::as_str)
            .map(|t| {
                offset_time(t).ok_or_else(|| {
                    (
                        format!("{at}.{key}"),
                        format!("`{t}` is not a time with an offset (e.g. 09:00:00+01:00)"),
                    )
                })
            })
            .transpose()
    };
    Ok(match name {
        "DayWeek" => DateCondition::DayWeek {
            date: date()?,
            day: day()?,
        },
        "DayWeekInMonth" => {
            let nth = match item.get("dayInMonth").and_then(Value::as_str) {
                Some("FIRST") => InMonth::First,
                Some("SECOND") => InMonth::Second,
                Some("THIRD") => InMonth::Third,
                Some("FOURTH") => InMonth::Fourth,
                Some("LAST") => InMonth::Last,
                other => {
                    return fail(
                        format!("{at}.dayInMonth"),
                        format!("{other:?}: expected FIRST, SECOND, THIRD, FOURTH or LAST"),
                    );
                }
            };
            DateCondition::DayWeekInMonth {
                date: date()?,
                day: day()?,
                nth,
            }
        }
        "Weekend" | "NotWeekend" => DateCondition::Weekend {
            date: date()?,
            weekend: name == "Weekend",
        },
        "DateTimeBetween" => DateCondition::Between {
            date: date()?,
            after: instant("after")?,
            before: instant("before")?,
        },
        "TimeBetween" => DateCondition::TimeBetween {
            date: date()?,
            after: time("after")?,
            before: time("before")?,
        },
        _ => {
            if item.get("expression").and_then(Value::as_str).is_none() {
                return fail(
                    at.to_owned(),
                    "missing required property `expression`".into(),
                );
            }
            DateCondition::Expression(template("expression", "")?)
        }
    })
}

/// `HH:mm[:ss]` with an offset (`Z`, `+01:00`).
fn offset_time(text: &str) -> Option<(NaiveTime, i32)> {
    let (time, offset) = match text.find(['+', '-', 'Z']) {
        Some(at) => text.split_at(at),
        None => return None,
    };
    let time = NaiveTime::parse_from_str(time, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M"))
        .ok()?;
    let offset = if offset == "Z" {
        0
    } else {
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (h, m) = offset[1..].split_once(':')?;
        sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60)
    };
    Some((time, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conditions(value: Value) -> Vec<DateCondition> {
        let mut problems = Vec::new();
        let c = read(&value, "c", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        c
    }

    fn holds(c: &[DateCondition], date: &str) -> bool {
        let vars = json!({"trigger": {"date": date}});
        c.iter().all(|c| c.holds(&vars).unwrap())
    }

    #[test]
    fn day_conditions_read_the_trigger_date() {
        // 2026-12-07 is the first Monday of December 2026.
        let first_monday = conditions(json!([{
            "type": "io.kestra.plugin.core.condition.DayWeekInMonth",
            "dayOfWeek": "MONDAY", "dayInMonth": "FIRST"
        }]));
        assert!(holds(&first_monday, "2026-12-07T11:00:00+01:00"));
        assert!(!holds(&first_monday, "2026-12-14T11:00:00+01:00"));
        let last_thursday = conditions(json!([{
            "type": "io.kestra.core.models.conditions.types.DayWeekInMonthCondition",
            "dayOfWeek": "THURSDAY", "dayInMonth": "LAST"
        }]));
        assert!(holds(&last_thursday, "2026-12-31T00:00:00Z"));
        assert!(!holds(&last_thursday, "2026-12-24T00:00:00Z"));
        let weekend = conditions(json!([{"type": "io.kestra.plugin.core.condition.Weekend"}]));
        assert!(holds(&weekend, "2026-12-05T10:00:00Z"));
        assert!(!holds(&weekend, "2026-12-07T10:00:00Z"));
        let monday = conditions(
            json!([{"type": "io.kestra.plugin.core.condition.DayWeek", "dayOfWeek": "MONDAY", "date": "{{ trigger.date }}"}]),
        );
        assert!(holds(&monday, "2026-12-07"));
    }

    #[test]
    fn between_conditions_compare_instants_and_times() {
        let between = conditions(json!([{
            "type": "io.kestra.plugin.core.condition.DateTimeBetween",
            "after": "2026-12-01T00:00:00Z", "before": "2026-12-31T00:00:00+01:00"
        }]));
        assert!(holds(&between, "2026-12-15T12:00:00Z"));
        assert!(!holds(&between, "2026-11-30T23:00:00Z"));
        let office = conditions(json!([{
            "type": "io.kestra.plugin.core.condition.TimeBetween",
            "after": "09:00:00+01:00", "before": "17:00:00+01:00"
        }]));
        assert!(holds(&office, "2026-12-15T09:30:00+01:00"));
        assert!(holds(&office, "2026-12-15T08:30:00Z"), "09:30 in Paris");
        assert!(!holds(&office, "2026-12-15T17:30:00+01:00"));
    }

    #[test]
    fn what_a_schedule_does_not_run_is_refused_with_its_path() {
        let mut problems = Vec::new();
        read(
            &json!([
                {"type": "io.kestra.plugin.core.condition.PublicHoliday", "country": "FR"},
                {"type": "io.kestra.plugin.core.condition.DayWeek", "dayOfWeek": "Monday"},
                {"type": "io.kestra.plugin.core.condition.ExecutionStatus"},
            ]),
            "c",
            &mut problems,
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].1.contains("not supported yet"), "{problems:?}");
        assert_eq!(problems[1].0, "c[1].dayOfWeek");
        assert!(
            problems[2].1.contains("not a Schedule condition"),
            "{problems:?}"
        );
    }
}
