//! Kestra's `date`, `dateAdd`, `timestamp` and `now`: dates as ISO-8601
//! strings or epoch seconds, formatted with Java `DateTimeFormatter`
//! patterns (`yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX`) or Kestra's named formats
//! (`iso`, `iso_sec`, `sql`, `iso_local_date`, ...).
//!
//! Time zones: `UTC` (the default, as on a Kestra server running in UTC),
//! fixed offsets such as `+02:00`, and IANA names such as `Europe/Paris`
//! (from the tz database bundled with jiff), with daylight saving applied.

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, Months, NaiveDate, NaiveDateTime, NaiveTime,
    TimeZone, Timelike, Utc,
};
use serde_json::Value;

type Dt = DateTime<FixedOffset>;

fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).expect("zero is a valid offset")
}

/// A `timeZone` argument: a fixed offset or an IANA zone.
#[derive(Clone)]
enum Zone {
    Fixed(FixedOffset),
    Named(jiff::tz::TimeZone, String),
}

impl Zone {
    /// The zone's offset at an instant (epoch seconds).
    fn offset_at(&self, epoch_seconds: i64) -> FixedOffset {
        match self {
            Zone::Fixed(offset) => *offset,
            Zone::Named(tz, _) => jiff::Timestamp::from_second(epoch_seconds)
                .ok()
                .and_then(|ts| FixedOffset::east_opt(tz.to_offset(ts).seconds()))
                .unwrap_or_else(utc),
        }
    }

    /// The same instant, seen in this zone.
    fn convert(&self, dt: &Dt) -> Dt {
        dt.with_timezone(&self.offset_at(dt.timestamp()))
    }

    /// A wall-clock time in this zone (the earlier offset in a DST overlap,
    /// shifted forward in a gap, as Java's `ZonedDateTime.of` does).
    fn local(&self, naive: NaiveDateTime, value: &str) -> Result<Dt, String> {
        let invalid = || format!("Invalid local date '{value}'");
        let offset = match self {
            Zone::Fixed(offset) => *offset,
            Zone::Named(tz, _) => {
                let civil = jiff::civil::DateTime::new(
                    i16::try_from(naive.year()).map_err(|_| invalid())?,
                    i8::try_from(naive.month()).map_err(|_| invalid())?,
                    i8::try_from(naive.day()).map_err(|_| invalid())?,
                    i8::try_from(naive.hour()).map_err(|_| invalid())?,
                    i8::try_from(naive.minute()).map_err(|_| invalid())?,
                    i8::try_from(naive.second()).map_err(|_| invalid())?,
                    i32::try_from(naive.nanosecond() % 1_000_000_000).map_err(|_| invalid())?,
                )
                .map_err(|_| invalid())?;
                let ts = tz
                    .to_ambiguous_timestamp(civil)
                    .compatible()
                    .map_err(|_| invalid())?;
                let dt = Utc
                    .timestamp_opt(ts.as_second(), ts.subsec_nanosecond().unsigned_abs())
                    .single()
                    .ok_or_else(invalid)?;
                return Ok(self.convert(&dt.fixed_offset()));
            }
        };
        offset
            .from_local_datetime(&naive)
            .single()
            .ok_or_else(invalid)
    }

    /// What `z` / `VV` print: the IANA name, or the offset.
    fn id(&self, dt: &Dt) -> String {
        match self {
            Zone::Named(_, name) => name.clone(),
            Zone::Fixed(_) => offset_id(dt.offset(), "UTC"),
        }
    }
}

fn zone(name: Option<&str>) -> Result<Zone, String> {
    let Some(name) = name else {
        return Ok(Zone::Fixed(utc()));
    };
    let trimmed = name.trim();
    if matches!(trimmed, "UTC" | "Z" | "GMT" | "UT" | "Zulu") {
        return Ok(Zone::Fixed(utc()));
    }
    let offset = trimmed
        .strip_prefix("UTC")
        .or_else(|| trimmed.strip_prefix("GMT"))
        .unwrap_or(trimmed);
    if let Some(fixed) = parse_offset(offset) {
        return Ok(Zone::Fixed(fixed));
    }
    jiff::tz::TimeZone::get(trimmed)
        .map(|tz| Zone::Named(tz, trimmed.to_owned()))
        .map_err(|_| format!("Unknown time zone '{name}'"))
}

/// `+2`, `+02`, `+0200`, `+02:00`, `-05:30`.
fn parse_offset(s: &str) -> Option<FixedOffset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m, sec) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok()?, 0, 0),
        4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?, 0),
        6 => (
            digits[..2].parse().ok()?,
            digits[2..4].parse().ok()?,
            digits[4..].parse().ok()?,
        ),
        _ => return None,
    };
    if h > 18 || m > 59 || sec > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60 + sec))
}

/// A Java pattern for Kestra's named formats, or `None` for built-ins
/// handled in code.
fn named_pattern(format: &str) -> Option<&'static str> {
    Some(match format {
        "iso" => "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
        "iso_sec" => "yyyy-MM-dd'T'HH:mm:ssXXX",
        "sql" => "yyyy-MM-dd HH:mm:ss.SSSSSS",
        "sql_seq" => "yyyy-MM-dd HH:mm:ss",
        "iso_local_date" => "yyyy-MM-dd",
        "iso_ordinal_date" => "yyyy-DDDXXX",
        "short" => "M/d/yy, h:mm a",
        "medium" => "MMM d, yyyy, h:mm:ss a",
        "long" => "MMMM d, yyyy 'at' h:mm:ss a z",
        "full" => "EEEE, MMMM d, yyyy 'at' h:mm:ss a z",
        _ => return None,
    })
}

/// Java's `ISO_LOCAL_TIME`: seconds always, the fraction only as long as needed.
fn iso_local_time(dt: &Dt) -> String {
    let mut out = format!("{:02}:{:02}:{:02}", dt.hour(), dt.minute(), dt.second());
    let nanos = dt.nanosecond() % 1_000_000_000;
    if nanos > 0 {
        let digits = format!("{nanos:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

fn offset_id(offset: &FixedOffset, zero: &str) -> String {
    let secs = offset.local_minus_utc();
    if secs == 0 {
        return zero.to_owned();
    }
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    let mut out = format!("{sign}{:02}:{:02}", abs / 3600, (abs / 60) % 60);
    if !abs.is_multiple_of(60) {
        out.push_str(&format!(":{:02}", abs % 60));
    }
    out
}

fn format_named(dt: &Dt, format: &str) -> Option<String> {
    let date = || format!("{:04}-{:02}-{:02}", dt.year(), dt.month(), dt.day());
    let off = || offset_id(dt.offset(), "Z");
    Some(match format {
        "iso_date_time" | "iso_zoned_date_time" | "iso_offset_date_time" => {
            format!("{}T{}{}", date(), iso_local_time(dt), off())
        }
        "iso_local_date_time" => format!("{}T{}", date(), iso_local_time(dt)),
        "iso_date" | "iso_offset_date" => format!("{}{}", date(), off()),
        "iso_time" | "iso_offset_time" => format!("{}{}", iso_local_time(dt), off()),
        "iso_local_time" => iso_local_time(dt),
        "iso_instant" => {
            let u = dt.with_timezone(&Utc);
            let nanos = u.nanosecond() % 1_000_000_000;
            let fraction = if nanos == 0 {
                String::new()
            } else if nanos.is_multiple_of(1_000_000) {
                format!(".{:03}", nanos / 1_000_000)
            } else if nanos.is_multiple_of(1_000) {
                format!(".{:06}", nanos / 1_000)
            } else {
                format!(".{nanos:09}")
            };
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}Z",
                u.year(),
                u.month(),
                u.day(),
                u.hour(),
                u.minute(),
                u.second()
            )
        }
        "iso_week_date" => {
            let w = dt.iso_week();
            format!(
                "{:04}-W{:02}-{}{}",
                w.year(),
                w.week(),
                dt.weekday().number_from_monday(),
                off()
            )
        }
        "rfc_1123_date_time" => {
            let secs = dt.offset().local_minus_utc();
            let zone = if secs == 0 {
                "GMT".to_owned()
            } else {
                offset_id(dt.offset(), "GMT").replace(':', "")
            };
            format!(
                "{}, {} {} {:04} {:02}:{:02}:{:02} {zone}",
                short_day(dt),
                dt.day(),
                month_name(dt.month())[..3].to_owned(),
                dt.year(),
                dt.hour(),
                dt.minute(),
                dt.second()
            )
        }
        _ => return None,
    })
}

fn month_name(m: u32) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    NAMES[(m.clamp(1, 12) - 1) as usize]
}

fn day_name(dt: &Dt) -> &'static str {
    const NAMES: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    NAMES[dt.weekday().num_days_from_monday() as usize]
}

fn short_day(dt: &Dt) -> &'static str {
    &day_name(dt)[..3]
}

/// One piece of a Java pattern.
enum Item {
    Letter(char, usize),
    Literal(String),
}

fn pattern_items(pattern: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() {
            let mut n = 1;
            while chars.get(i + n) == Some(&c) {
                n += 1;
            }
            items.push(Item::Letter(c, n));
            i += n;
        } else if c == '\'' {
            let mut lit = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("Unclosed quote in date pattern '{pattern}'")),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        lit.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        lit.push(other);
                        i += 1;
                    }
                }
            }
            if lit.is_empty() {
                lit.push('\'');
            }
            items.push(Item::Literal(lit));
        } else if c == '[' || c == ']' {
            // Optional sections: everything prints when formatting.
            i += 1;
        } else {
            items.push(Item::Literal(c.to_string()));
            i += 1;
        }
    }
    Ok(items)
}

fn pad(out: &mut String, value: i64, width: usize) {
    if value < 0 {
        out.push('-');
    }
    let digits = value.unsigned_abs().to_string();
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(&digits);
}

fn push_offset(out: &mut String, secs: i32, colon: bool, with_minutes: bool, with_seconds: bool) {
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    let (h, m, s) = (abs / 3600, (abs / 60) % 60, abs % 60);
    out.push(sign);
    out.push_str(&format!("{h:02}"));
    if with_minutes || m != 0 || s != 0 {
        if colon {
            out.push(':');
        }
        out.push_str(&format!("{m:02}"));
    }
    if with_seconds && s != 0 {
        if colon {
            out.push(':');
        }
        out.push_str(&format!("{s:02}"));
    }
}

/// Formats with a Java `DateTimeFormatter` pattern.
fn format_pattern(dt: &Dt, pattern: &str, zone: &Zone) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 8);
    let offset = dt.offset().local_minus_utc();
    for item in pattern_items(pattern)? {
        let (c, n) = match item {
            Item::Literal(s) => {
                out.push_str(&s);
                continue;
            }
            Item::Letter(c, n) => (c, n),
        };
        match c {
            'y' | 'u' | 'Y' => {
                let year = if c == 'Y' {
                    i64::from(dt.iso_week().year())
                } else {
                    i64::from(dt.year())
                };
                if n == 2 {
                    pad(&mut out, year.rem_euclid(100), 2);
                } else {
                    pad(&mut out, year, n);
                }
            }
            'M' | 'L' => match n {
                1 | 2 => pad(&mut out, i64::from(dt.month()), n),
                3 => out.push_str(&month_name(dt.month())[..3]),
                4 => out.push_str(month_name(dt.month())),
                _ => out.push_str(&month_name(dt.month())[..1]),
            },
            'd' => pad(&mut out, i64::from(dt.day()), n),
            'D' => pad(&mut out, i64::from(dt.ordinal()), n),
            'Q' | 'q' => {
                let q = i64::from((dt.month() - 1) / 3 + 1);
                if n <= 2 {
                    pad(&mut out, q, n);
                } else {
                    out.push_str(&format!("Q{q}"));
                }
            }
            'w' => pad(&mut out, i64::from(dt.iso_week().week()), n),
            'E' => match n {
                1..=3 => out.push_str(short_day(dt)),
                4 => out.push_str(day_name(dt)),
                _ => out.push_str(&day_name(dt)[..1]),
            },
            'e' | 'c' => pad(&mut out, i64::from(dt.weekday().number_from_sunday()), n),
            'a' => out.push_str(if dt.hour() < 12 { "AM" } else { "PM" }),
            'H' => pad(&mut out, i64::from(dt.hour()), n),
            'k' => pad(
                &mut out,
                i64::from(if dt.hour() == 0 { 24 } else { dt.hour() }),
                n,
            ),
            'K' => pad(&mut out, i64::from(dt.hour() % 12), n),
            'h' => {
                let h = dt.hour() % 12;
                pad(&mut out, i64::from(if h == 0 { 12 } else { h }), n);
            }
            'm' => pad(&mut out, i64::from(dt.minute()), n),
            's' => pad(&mut out, i64::from(dt.second()), n),
            'S' => {
                let digits = format!("{:09}", dt.nanosecond() % 1_000_000_000);
                if n <= 9 {
                    out.push_str(&digits[..n]);
                } else {
                    out.push_str(&digits);
                    out.push_str(&"0".repeat(n - 9));
                }
            }
            'n' => pad(&mut out, i64::from(dt.nanosecond() % 1_000_000_000), n),
            'A' => pad(
                &mut out,
                i64::from(dt.num_seconds_from_midnight()) * 1000
                    + i64::from(dt.nanosecond() % 1_000_000_000 / 1_000_000),
                n,
            ),
            'N' => pad(
                &mut out,
                i64::from(dt.num_seconds_from_midnight()) * 1_000_000_000
                    + i64::from(dt.nanosecond() % 1_000_000_000),
                n,
            ),
            'G' => out.push_str(if n == 4 { "Anno Domini" } else { "AD" }),
            'X' | 'x' => {
                if c == 'X' && offset == 0 {
                    out.push('Z');
                } else {
                    match n {
                        1 => push_offset(&mut out, offset, false, false, false),
                        2 => push_offset(&mut out, offset, false, true, false),
                        3 => push_offset(&mut out, offset, true, true, false),
                        4 => push_offset(&mut out, offset, false, true, true),
                        _ => push_offset(&mut out, offset, true, true, true),
                    }
                }
            }
            'Z' => match n {
                1..=3 => push_offset(&mut out, offset, false, true, false),
                4 => {
                    out.push_str("GMT");
                    if offset != 0 {
                        push_offset(&mut out, offset, true, true, true);
                    }
                }
                _ => {
                    if offset == 0 {
                        out.push('Z');
                    } else {
                        push_offset(&mut out, offset, true, true, true);
                    }
                }
            },
            'O' => {
                out.push_str("GMT");
                if offset != 0 {
                    if n == 4 {
                        push_offset(&mut out, offset, true, true, true);
                    } else {
                        let abs = offset.unsigned_abs();
                        out.push(if offset < 0 { '-' } else { '+' });
                        out.push_str(&(abs / 3600).to_string());
                        if !(abs / 60).is_multiple_of(60) {
                            out.push_str(&format!(":{:02}", (abs / 60) % 60));
                        }
                    }
                }
            }
            'z' | 'V' | 'v' => out.push_str(&zone.id(dt)),
            other => return Err(format!("Unknown pattern letter: {other}")),
        }
    }
    Ok(out)
}

fn format_dt(dt: &Dt, format: &str, zone: &Zone) -> Result<String, String> {
    if let Some(mut s) = format_named(dt, format) {
        if format == "iso_zoned_date_time"
            && let Zone::Named(_, name) = zone
        {
            s.push('[');
            s.push_str(name);
            s.push(']');
        }
        return Ok(s);
    }
    let pattern = named_pattern(format).unwrap_or(format);
    format_pattern(dt, pattern, zone)
}

/// A Java pattern translated to chrono's parser syntax (for `existingFormat`).
fn chrono_parse_pattern(pattern: &str) -> Result<String, String> {
    let mut out = String::new();
    for item in pattern_items(pattern)? {
        match item {
            Item::Literal(s) => out.push_str(&s.replace('%', "%%")),
            Item::Letter(c, n) => out.push_str(match (c, n) {
                ('y' | 'u', 2) => "%y",
                ('y' | 'u', _) => "%Y",
                ('M' | 'L', 1 | 2) => "%m",
                ('M' | 'L', 3) => "%b",
                ('M' | 'L', _) => "%B",
                ('d', _) => "%d",
                ('D', _) => "%j",
                ('H' | 'k', _) => "%H",
                ('h' | 'K', _) => "%I",
                ('m', _) => "%M",
                ('s', _) => "%S",
                ('S', 3) => "%3f",
                ('S', 6) => "%6f",
                ('S', 9) => "%9f",
                ('S', _) => "%f",
                ('a', _) => "%p",
                ('E', 4) => "%A",
                ('E', _) => "%a",
                ('X' | 'x', 3) | ('Z', 5) => "%:z",
                ('X' | 'x' | 'Z', _) => "%z",
                ('z' | 'V', _) => "%Z",
                (other, _) => {
                    return Err(format!(
                        "Unsupported pattern letter in existingFormat: {other}"
                    ));
                }
            }),
        }
    }
    Ok(out)
}

fn parse_with(value: &str, existing: &str, tz: &Zone) -> Result<Dt, String> {
    if existing == "rfc_1123_date_time" {
        return DateTime::parse_from_rfc2822(value)
            .map_err(|e| format!("Unable to parse date '{value}' as {existing}: {e}"));
    }
    let pattern = named_pattern(existing).unwrap_or(existing);
    let fmt = chrono_parse_pattern(pattern)?;
    if let Ok(dt) = DateTime::parse_from_str(value, &fmt) {
        return Ok(dt);
    }
    if let Ok(naive) = NaiveDateTime::parse_from_str(value, &fmt) {
        return local(naive, tz, value);
    }
    match NaiveDate::parse_from_str(value, &fmt) {
        Ok(date) => local(date.and_time(NaiveTime::MIN), tz, value),
        Err(e) => Err(format!(
            "Text '{value}' could not be parsed with pattern '{existing}': {e}"
        )),
    }
}

fn local(naive: NaiveDateTime, tz: &Zone, value: &str) -> Result<Dt, String> {
    tz.local(naive, value)
}

/// Java's `ZonedDateTime.parse`, then `LocalDateTime.parse`, then `LocalDate.parse`.
fn parse_iso(value: &str, tz: &Zone) -> Result<Dt, String> {
    let text = value.trim();
    // `2013-09-08T17:19:12+02:00[Europe/Paris]`: the offset is what counts.
    let text = match text.find('[') {
        Some(i) if text.ends_with(']') => &text[..i],
        _ => text,
    };
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Ok(dt);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(text, fmt) {
            return Ok(dt);
        }
    }
    if let Some(naive_text) = text.strip_suffix('Z') {
        for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(naive_text, fmt) {
                return local(naive, &Zone::Fixed(utc()), value);
            }
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, fmt) {
            return local(naive, tz, value);
        }
    }
    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => local(date.and_time(NaiveTime::MIN), tz, value),
        Err(_) => Err(format!("Text '{value}' could not be parsed as a date")),
    }
}

/// The date a value stands for: epoch seconds or an ISO-8601 string.
fn convert(input: &Value, tz: &Zone, existing: Option<&str>) -> Result<Dt, String> {
    match input {
        Value::Number(n) => {
            let secs = n.as_i64().ok_or_else(|| {
                format!("Unable to convert '{n}' to a date: epoch seconds must be an integer")
            })?;
            match Utc.timestamp_opt(secs, 0).single() {
                Some(dt) => Ok(tz.convert(&dt.fixed_offset())),
                None => Err(format!("Epoch seconds {secs} are out of range")),
            }
        }
        Value::String(s) => match existing {
            Some(existing) => parse_with(s, existing, tz),
            None => parse_iso(s, tz),
        },
        other => Err(format!(
            "Unable to convert a {} to a date",
            super::eval::type_name(other)
        )),
    }
}

pub(crate) fn format_value(
    input: &Value,
    format: Option<&str>,
    zone_name: Option<&str>,
    existing: Option<&str>,
) -> Result<String, String> {
    let tz = zone(zone_name)?;
    let dt = convert(input, &tz, existing)?;
    format_dt(&tz.convert(&dt), format.unwrap_or("iso"), &tz)
}

pub(crate) fn add(
    input: &Value,
    amount: i64,
    unit: &str,
    format: Option<&str>,
    zone_name: Option<&str>,
    existing: Option<&str>,
) -> Result<String, String> {
    let tz = zone(zone_name)?;
    let dt = tz.convert(&convert(input, &tz, existing)?);
    let overflow = || format!("Adding {amount} {unit} overflows");
    // Time-based units move the instant; date-based units move the wall
    // clock and resolve it in the zone again (Java's `ZonedDateTime.plus`).
    let by = |d: Option<Duration>| -> Result<Dt, String> {
        d.and_then(|d| dt.checked_add_signed(d))
            .map(|r| tz.convert(&r))
            .ok_or_else(overflow)
    };
    let naive = dt.naive_local();
    let days = |d: Option<i64>| -> Result<Dt, String> {
        let shifted = d
            .and_then(Duration::try_days)
            .and_then(|d| naive.checked_add_signed(d))
            .ok_or_else(overflow)?;
        tz.local(shifted, &shifted.to_string())
    };
    let months = |m: Option<i64>| -> Result<Dt, String> {
        let m = m.ok_or_else(overflow)?;
        let count = Months::new(u32::try_from(m.unsigned_abs()).map_err(|_| overflow())?);
        let shifted = if m >= 0 {
            naive.checked_add_months(count)
        } else {
            naive.checked_sub_months(count)
        }
        .ok_or_else(overflow)?;
        tz.local(shifted, &shifted.to_string())
    };
    let result = match unit {
        "NANOS" => by(Some(Duration::nanoseconds(amount))),
        "MICROS" => by(Some(Duration::microseconds(amount))),
        "MILLIS" => by(Some(Duration::milliseconds(amount))),
        "SECONDS" => by(Duration::try_seconds(amount)),
        "MINUTES" => by(Duration::try_minutes(amount)),
        "HOURS" => by(Duration::try_hours(amount)),
        "HALF_DAYS" => by(amount.checked_mul(12).and_then(Duration::try_hours)),
        "DAYS" => days(Some(amount)),
        "WEEKS" => days(amount.checked_mul(7)),
        "MONTHS" => months(Some(amount)),
        "YEARS" => months(amount.checked_mul(12)),
        "DECADES" => months(amount.checked_mul(120)),
        "CENTURIES" => months(amount.checked_mul(1200)),
        "MILLENNIA" => months(amount.checked_mul(12000)),
        other => Err(format!(
            "Unknown unit '{other}': use NANOS, MICROS, MILLIS, SECONDS, MINUTES, HOURS, HALF_DAYS, DAYS, WEEKS, MONTHS, YEARS, DECADES, CENTURIES or MILLENNIA"
        )),
    }?;
    format_dt(&result, format.unwrap_or("iso"), &tz)
}

pub(crate) fn timestamp(
    input: &Value,
    zone_name: Option<&str>,
    existing: Option<&str>,
) -> Result<i64, String> {
    let tz = zone(zone_name)?;
    Ok(convert(input, &tz, existing)?.timestamp())
}

pub(crate) fn now(
    now: DateTime<Utc>,
    format: Option<&str>,
    zone_name: Option<&str>,
) -> Result<String, String> {
    let tz = zone(zone_name)?;
    format_dt(
        &tz.convert(&now.fixed_offset()),
        format.unwrap_or("iso"),
        &tz,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fmt(input: Value, format: Option<&str>, zone: Option<&str>) -> String {
        format_value(&input, format, zone, None).expect("formats")
    }

    #[test]
    fn kestra_named_formats() {
        let v = json!("2013-09-08T16:19:12.123456+01:00");
        assert_eq!(
            fmt(v.clone(), None, Some("+02:00")),
            "2013-09-08T17:19:12.123456+02:00"
        );
        assert_eq!(
            fmt(v.clone(), Some("iso_sec"), Some("+02:00")),
            "2013-09-08T17:19:12+02:00"
        );
        assert_eq!(fmt(v.clone(), None, None), "2013-09-08T15:19:12.123456Z");
        assert_eq!(fmt(v.clone(), Some("sql_seq"), None), "2013-09-08 15:19:12");
        assert_eq!(fmt(v.clone(), Some("iso_local_date"), None), "2013-09-08");
        assert_eq!(
            fmt(v.clone(), Some("iso_instant"), None),
            "2013-09-08T15:19:12.123456Z"
        );
        assert_eq!(
            fmt(v.clone(), Some("iso_date_time"), None),
            "2013-09-08T15:19:12.123456Z"
        );
        assert_eq!(
            fmt(
                json!("2022-02-08T19:38:26Z"),
                Some("rfc_1123_date_time"),
                None
            ),
            "Tue, 8 Feb 2022 19:38:26 GMT"
        );
    }

    #[test]
    fn java_patterns() {
        let v = json!("2013-09-08T16:19:12.123456+01:00");
        assert_eq!(
            fmt(v.clone(), Some("yyyy-MM-dd HH:mm:ss.SSSSSSXXX"), None),
            "2013-09-08 15:19:12.123456Z"
        );
        assert_eq!(
            fmt(v.clone(), Some("EEE, d MMM yy h:mm a"), None),
            "Sun, 8 Sep 13 3:19 PM"
        );
        assert_eq!(
            fmt(v.clone(), Some("EEEE MMMM dd 'at' HH'h'"), None),
            "Sunday September 08 at 15h"
        );
        assert_eq!(
            fmt(v.clone(), Some("yyyyMMdd'T'HHmmssZ"), Some("-05:30")),
            "20130908T094912-0530"
        );
        assert!(format_value(&v, Some("yyyy-MM-dd bb"), None, None).is_err());
    }

    #[test]
    fn inputs_iso_epoch_and_existing_format() {
        assert_eq!(
            fmt(json!("2013-09-08T17:19:12"), None, Some("+02:00")),
            "2013-09-08T17:19:12.000000+02:00"
        );
        assert_eq!(
            fmt(json!("2013-09-08"), None, Some("+02:00")),
            "2013-09-08T00:00:00.000000+02:00"
        );
        assert_eq!(
            fmt(json!(1378653552), Some("iso_sec"), None),
            "2013-09-08T15:19:12Z"
        );
        assert_eq!(
            format_value(
                &json!("July 24, 2001"),
                Some("yyyy-MM-dd"),
                None,
                Some("MMMM dd, yyyy")
            )
            .expect("parses"),
            "2001-07-24"
        );
        assert_eq!(
            format_value(
                &json!("Tue, 08 Feb 2022 19:38:26 GMT"),
                None,
                Some("+01:00"),
                Some("rfc_1123_date_time")
            )
            .expect("parses"),
            "2022-02-08T20:38:26.000000+01:00"
        );
        assert!(format_value(&json!("nope"), None, None, None).is_err());
        assert!(format_value(&json!(true), None, None, None).is_err());
        assert!(format_value(&json!("2013-09-08"), None, Some("Mars/Olympus"), None).is_err());
    }

    #[test]
    fn named_zones_follow_daylight_saving() {
        // Kestra's own DateFilterTest expectations.
        let v = json!("2013-09-08T16:19:12.123456+01:00");
        assert_eq!(
            fmt(v.clone(), Some("iso"), Some("Europe/Paris")),
            "2013-09-08T17:19:12.123456+02:00"
        );
        assert_eq!(
            fmt(json!("2013-09-08T17:19:12"), None, Some("Europe/Paris")),
            "2013-09-08T17:19:12.000000+02:00"
        );
        assert_eq!(
            fmt(
                json!("2013-01-08T12:00:00Z"),
                Some("HH:mmXXX VV"),
                Some("Europe/Paris")
            ),
            "13:00+01:00 Europe/Paris"
        );
        assert_eq!(
            format_value(
                &json!("Tue, 08 Feb 2022 19:38:26 GMT"),
                None,
                Some("Europe/Paris"),
                Some("rfc_1123_date_time")
            )
            .expect("parses"),
            "2022-02-08T20:38:26.000000+01:00"
        );
        // One day after the night DST starts keeps the wall-clock time.
        assert_eq!(
            add(
                &json!("2024-03-30T12:00:00+01:00"),
                1,
                "DAYS",
                None,
                Some("Europe/Paris"),
                None
            )
            .expect("adds"),
            "2024-03-31T12:00:00.000000+02:00"
        );
        assert_eq!(
            add(
                &json!("2024-03-30T12:00:00+01:00"),
                24,
                "HOURS",
                None,
                Some("Europe/Paris"),
                None
            )
            .expect("adds"),
            "2024-03-31T13:00:00.000000+02:00"
        );
    }

    #[test]
    fn adding_units() {
        let v = json!("2013-09-08T16:19:12.123456+02:00");
        assert_eq!(
            add(&v, -1, "DAYS", None, Some("+02:00"), None).expect("adds"),
            "2013-09-07T16:19:12.123456+02:00"
        );
        assert_eq!(
            add(
                &json!("2024-01-31T00:00:00Z"),
                1,
                "MONTHS",
                Some("iso_local_date"),
                None,
                None
            )
            .expect("adds"),
            "2024-02-29"
        );
        assert!(add(&v, 1, "FORTNIGHTS", None, None, None).is_err());
        assert!(add(&v, i64::MAX, "DAYS", None, None, None).is_err());
        assert_eq!(
            timestamp(&json!("2013-09-08T16:19:12+01:00"), None, None).expect("ts"),
            1378653552
        );
    }
}
