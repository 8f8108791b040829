//! Filters, tests and functions: Pebble's core set and Kestra's additions.

use std::borrow::Cow;

use serde_json::Value;

use super::Scope;
use super::ast::{Args, Pos};
use super::builtins::{Filter, Function, Test};
use super::date;
use super::eval::{
    Key, MAX_ITEMS, Num, R, Renderer, failed, get_key, java_string, scope_type_name, type_name,
};
use super::jq::{JqProgram, Limits};

type Slots<'s, 'a> = &'s [Option<Scope<'a>>];

/// Kestra's cap on recursive rendering passes.
const MAX_RENDERING_AMOUNT: usize = 100;
/// Nested `render()` calls allowed (a variable that renders itself).
const MAX_RENDER_DEPTH: usize = 3;

fn arg<'s, 'a>(args: Slots<'s, 'a>, i: usize) -> Option<&'s Scope<'a>> {
    args.get(i).and_then(Option::as_ref)
}

/// A string argument; `None` when absent or null.
fn str_arg<'s>(args: Slots<'s, '_>, i: usize, what: &str, pos: Pos) -> R<Option<Cow<'s, str>>> {
    match arg(args, i) {
        None => Ok(None),
        Some(v) => match v.as_value() {
            Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(Cow::Borrowed(s))),
            Some(other) => failed(
                pos,
                format!(
                    "Argument \"{what}\" must be a string, not {}",
                    type_name(other)
                ),
            ),
            None => failed(
                pos,
                format!("Argument \"{what}\" must be a string, not map"),
            ),
        },
    }
}

fn int_arg(args: Slots<'_, '_>, i: usize, what: &str, pos: Pos) -> R<Option<i64>> {
    match arg(args, i) {
        None => Ok(None),
        Some(v) => match v.as_value().and_then(Num::of) {
            Some(Num::Int(n)) => Ok(Some(n)),
            Some(Num::Float(f)) => Ok(Some(f as i64)),
            None if v.is_null() => Ok(None),
            None => failed(pos, format!("Argument \"{what}\" must be a number")),
        },
    }
}

fn owned(v: Value) -> R<Scope<'static>> {
    Ok(Scope::Owned(v))
}

/// Pebble's `empty` test, also behind the `default` filter.
fn is_empty(v: &Scope<'_>) -> bool {
    match v {
        Scope::Lazy(l) => l.len() == 0,
        _ => match v.as_value() {
            Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(Value::Array(items)) => items.is_empty(),
            Some(Value::Object(map)) => map.is_empty(),
            _ => false,
        },
    }
}

/// Java's `String.trim`: strips code points up to U+0020.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Java's `String.split` with a literal delimiter: `limit > 0` caps the
/// parts, `limit == 0` drops trailing empty parts, `limit < 0` keeps them.
fn java_split(s: &str, delimiter: &str, limit: i64) -> Vec<Value> {
    if delimiter.is_empty() {
        return s.chars().map(|c| Value::String(c.to_string())).collect();
    }
    if !s.contains(delimiter) {
        return vec![Value::String(s.to_owned())];
    }
    let mut parts: Vec<&str> = if limit > 0 {
        s.splitn(usize::try_from(limit).unwrap_or(usize::MAX), delimiter)
            .collect()
    } else {
        s.split(delimiter).collect()
    };
    if limit == 0 {
        while parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
    }
    parts
        .into_iter()
        .map(|p| Value::String(p.to_owned()))
        .collect()
}

/// Kestra's slug: whitespace to `-`, accents dropped, anything but
/// `[A-Za-z0-9_-]` removed, `_` to `-`, dashes collapsed and trimmed, lower case.
fn slugify(input: &str) -> String {
    let mut slug = String::with_capacity(input.len());
    for c in input.chars() {
        if c.is_whitespace() {
            slug.push('-');
        } else if c.is_ascii_alphanumeric() || c == '-' {
            slug.push(c);
        } else if c == '_' {
            slug.push('-');
        } else if let Some(base) = fold_accent(c) {
            slug.push(base);
        }
    }
    let mut collapsed = String::with_capacity(slug.len());
    for c in slug.chars() {
        if c == '-' && collapsed.ends_with('-') {
            continue;
        }
        collapsed.push(c);
    }
    collapsed.trim_matches('-').to_ascii_lowercase()
}

/// The base letter of a Latin letter with diacritics (what NFD and
/// dropping combining marks leave), for the common Latin-1 and Latin
/// Extended-A letters.
fn fold_accent(c: char) -> Option<char> {
    const TABLE: &[(&str, char)] = &[
        ("ÀÁÂÃÄÅĀĂĄ", 'A'),
        ("àáâãäåāăą", 'a'),
        ("ÇĆĈĊČ", 'C'),
        ("çćĉċč", 'c'),
        ("ĎḐ", 'D'),
        ("ďḑ", 'd'),
        ("ÈÉÊËĒĔĖĘĚ", 'E'),
        ("èéêëēĕėęě", 'e'),
        ("ĜĞĠĢ", 'G'),
        ("ĝğġģ", 'g'),
        ("ĤȞ", 'H'),
        ("ĥȟ", 'h'),
        ("ÌÍÎÏĨĪĬĮİ", 'I'),
        ("ìíîïĩīĭį", 'i'),
        ("Ĵ", 'J'),
        ("ĵ", 'j'),
        ("Ķ", 'K'),
        ("ķ", 'k'),
        ("ĹĻĽ", 'L'),
        ("ĺļľ", 'l'),
        ("ÑŃŅŇ", 'N'),
        ("ñńņň", 'n'),
        ("ÒÓÔÕÖŌŎŐ", 'O'),
        ("òóôõöōŏő", 'o'),
        ("ŔŖŘ", 'R'),
        ("ŕŗř", 'r'),
        ("ŚŜŞŠ", 'S'),
        ("śŝşš", 's'),
        ("ŢŤ", 'T'),
        ("ţť", 't'),
        ("ÙÚÛÜŨŪŬŮŰŲ", 'U'),
        ("ùúûüũūŭůűų", 'u'),
        ("Ŵ", 'W'),
        ("ŵ", 'w'),
        ("ÝŶŸ", 'Y'),
        ("ýÿŷ", 'y'),
        ("ŹŻŽ", 'Z'),
        ("źżž", 'z'),
    ];
    TABLE
        .iter()
        .find(|(letters, _)| letters.contains(c))
        .map(|(_, base)| *base)
}

/// `range(start, end, increment)`: inclusive, over integers or single characters.
pub(crate) fn range(
    start: Option<&Scope<'_>>,
    end: Option<&Scope<'_>>,
    increment: Option<&Scope<'_>>,
    pos: Pos,
) -> R<Value> {
    let step = match increment.filter(|v| !v.is_null()) {
        None => 1,
        Some(v) => match v.as_value().and_then(Num::of) {
            Some(Num::Int(n)) => n,
            Some(Num::Float(f)) => f as i64,
            None => return failed(pos, "The increment of the range function must be a number"),
        },
    };
    if step == 0 {
        return failed(
            pos,
            "The increment of the range function must be different than 0",
        );
    }
    let bound = |v: Option<&Scope<'_>>| -> Option<(i64, bool)> {
        let v = v?.as_value()?;
        match v {
            Value::Number(_) => Num::of(v).map(|n| match n {
                Num::Int(i) => (i, false),
                Num::Float(f) => (f as i64, false),
            }),
            Value::String(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some((i64::from(u32::from(c)), true)),
                    _ => None,
                }
            }
            _ => None,
        }
    };
    let (Some((from, from_char)), Some((to, to_char))) = (bound(start), bound(end)) else {
        return failed(
            pos,
            "Arguments of range function must be of type Number or String with a length of 1",
        );
    };
    if from_char != to_char {
        return failed(
            pos,
            "Arguments of range function must be of type Number or String with a length of 1",
        );
    }
    let count = if (step > 0 && from > to) || (step < 0 && from < to) {
        0
    } else {
        (i128::from(to) - i128::from(from)) / i128::from(step) + 1
    };
    if count > MAX_ITEMS as i128 {
        return failed(
            pos,
            format!("range would hold {count} items, more than {MAX_ITEMS}"),
        );
    }
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut i = i128::from(from);
    for _ in 0..count {
        let n = i64::try_from(i).unwrap_or(0);
        if from_char {
            let c = u32::try_from(n)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            out.push(Value::String(c.to_string()));
        } else {
            out.push(Value::from(n));
        }
        i += i128::from(step);
    }
    Ok(Value::Array(out))
}

fn sort_key_cmp(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (Num::of(a), Num::of(b)) {
        (Some(x), Some(y)) => x.as_f64().total_cmp(&y.as_f64()),
        _ => java_string(a).cmp(&java_string(b)),
    }
}

fn round_half_up(f: f64, precision: i64, method: &str) -> f64 {
    let factor = 10f64.powi(i32::try_from(precision.clamp(-15, 15)).unwrap_or(0));
    let scaled = f * factor;
    let rounded = match method {
        "ceil" => scaled.ceil(),
        "floor" => scaled.floor(),
        _ => scaled.round(),
    };
    rounded / factor
}

impl<'a> Renderer<'a> {
    pub(crate) fn apply_filter(
        &self,
        filter: &Filter,
        input: Scope<'a>,
        args: Slots<'_, 'a>,
        decl: &'a Args,
        pos: Pos,
    ) -> R<Scope<'a>> {
        let null_in = input.is_null();
        // Most filters pass null through (Pebble returns null for null input).
        let passes_null = !matches!(
            filter,
            Filter::ToJson
                | Filter::Json
                | Filter::Default
                | Filter::Length
                | Filter::Abs
                | Filter::StartsWith
                | Filter::EndsWith
                | Filter::Unknown(_)
        );
        if null_in && passes_null {
            return Ok(input);
        }
        match filter {
            Filter::ToJson | Filter::Json => owned(Value::String(input.json().to_string())),
            Filter::Default => {
                if is_empty(&input) {
                    Ok(arg(args, 0).map_or(Scope::Owned(Value::Null), |d| match d {
                        Scope::Json(v) => Scope::Json(v),
                        Scope::Lazy(l) => Scope::Lazy(*l),
                        Scope::Owned(v) => Scope::Owned(v.clone()),
                    }))
                } else {
                    Ok(input)
                }
            }
            Filter::Upper => owned(Value::String(match input.as_str() {
                Some(s) => s.to_uppercase(),
                None => java_string(&input.json()).to_uppercase(),
            })),
            Filter::Lower => owned(Value::String(match input.as_str() {
                Some(s) => s.to_lowercase(),
                None => java_string(&input.json()).to_lowercase(),
            })),
            Filter::Capitalize | Filter::Title => {
                let Some(s) = input.as_str() else {
                    return failed(pos, format!("\"{}\" expects a string", filter.name()));
                };
                let mut out = String::with_capacity(s.len());
                let mut at_word_start = true;
                let mut done = false;
                for c in s.chars() {
                    if c.is_whitespace() {
                        at_word_start = true;
                        out.push(c);
                    } else if at_word_start && !done {
                        out.extend(c.to_uppercase());
                        at_word_start = false;
                        done = *filter == Filter::Capitalize;
                    } else {
                        at_word_start = false;
                        out.push(c);
                    }
                }
                owned(Value::String(out))
            }
            Filter::Trim => match input.as_str() {
                Some(s) => owned(Value::String(java_trim(s).to_owned())),
                None => failed(pos, "\"trim\" expects a string"),
            },
            Filter::Length => {
                let n = match &input {
                    Scope::Lazy(l) => l.len(),
                    _ => match input.as_value() {
                        Some(Value::String(s)) => s.encode_utf16().count(),
                        Some(Value::Array(items)) => items.len(),
                        Some(Value::Object(map)) => map.len(),
                        _ => 0,
                    },
                };
                owned(Value::from(n))
            }
            Filter::First | Filter::Last => {
                let first = *filter == Filter::First;
                match input {
                    Scope::Json(Value::Array(items)) => {
                        let item = if first { items.first() } else { items.last() };
                        Ok(item.map_or(Scope::Owned(Value::Null), Scope::Json))
                    }
                    Scope::Owned(Value::Array(mut items)) => {
                        let item = if first {
                            items.into_iter().next()
                        } else {
                            items.pop()
                        };
                        owned(item.unwrap_or(Value::Null))
                    }
                    ref other => match other.as_value() {
                        Some(Value::String(s)) => {
                            let c = if first {
                                s.chars().next()
                            } else {
                                s.chars().last()
                            };
                            match c {
                                Some(c) => owned(Value::String(c.to_string())),
                                None => failed(pos, "String index out of range: 0"),
                            }
                        }
                        _ => failed(
                            pos,
                            format!(
                                "\"{}\" expects a list or a string, not {}",
                                filter.name(),
                                scope_type_name(other)
                            ),
                        ),
                    },
                }
            }
            Filter::Join => {
                let json = input.json();
                let Value::Array(items) = &*json else {
                    return failed(
                        pos,
                        "The 'join' filter expects that the input is either a collection or an array.",
                    );
                };
                let separator = arg(args, 0)
                    .filter(|s| !s.is_null())
                    .map(|s| java_string(&s.json()));
                let mut out = String::new();
                for (i, item) in items.iter().enumerate() {
                    if i > 0
                        && let Some(sep) = &separator
                    {
                        out.push_str(sep);
                    }
                    super::eval::push_java_string(&mut out, item);
                    self.check_len(out.len(), pos)?;
                }
                owned(Value::String(out))
            }
            Filter::Split => {
                let Some(s) = input.as_str() else {
                    return failed(pos, "\"split\" expects a string");
                };
                let Some(delimiter) = str_arg(args, 0, "delimiter", pos)? else {
                    return failed(pos, "missing delimiter parameter in split filter");
                };
                let limit = int_arg(args, 1, "limit", pos)?.unwrap_or(0);
                let parts = java_split(s, &delimiter, limit);
                self.check_items(parts.len(), pos)?;
                owned(Value::Array(parts))
            }
            Filter::Replace => {
                let mut data = java_string(&input.json());
                match (arg(args, 0), arg(args, 1)) {
                    (Some(pairs), None) if matches!(pairs.as_value(), Some(Value::Object(_))) => {
                        let pairs = pairs.json();
                        if let Value::Object(map) = &*pairs {
                            for (from, to) in map {
                                if !from.is_empty() {
                                    data = data.replace(from.as_str(), &java_string(to));
                                    self.check_len(data.len(), pos)?;
                                }
                            }
                        }
                    }
                    (Some(from), Some(to)) => {
                        let from = java_string(&from.json());
                        if !from.is_empty() {
                            data = data.replace(from.as_str(), &java_string(&to.json()));
                            self.check_len(data.len(), pos)?;
                        }
                    }
                    _ => return failed(pos, "The argument 'replace_pairs' is required."),
                }
                owned(Value::String(data))
            }
            Filter::Slice => self.slice(input, args, pos),
            Filter::Keys => match &input {
                Scope::Lazy(l) => owned(Value::Array(
                    l.keys().into_iter().map(Value::String).collect(),
                )),
                _ => match input.as_value() {
                    Some(Value::Object(map)) => owned(Value::Array(
                        map.keys().map(|k| Value::String(k.clone())).collect(),
                    )),
                    Some(Value::Array(items)) => {
                        owned(Value::Array((0..items.len()).map(Value::from).collect()))
                    }
                    _ => failed(
                        pos,
                        format!(
                            "'keys' filter can only be applied to List, Map, Array. Actual type was: {}",
                            scope_type_name(&input)
                        ),
                    ),
                },
            },
            Filter::Values => match input.json().into_owned() {
                Value::Object(map) => {
                    owned(Value::Array(map.into_iter().map(|(_, v)| v).collect()))
                }
                other => failed(
                    pos,
                    format!(
                        "'values' filter can only be applied to Map. Actual type was: {}",
                        type_name(&other)
                    ),
                ),
            },
            Filter::Number => {
                let Some(s) = input.as_str() else {
                    return failed(
                        pos,
                        format!(
                            "'number' filter can only be applied to String. Actual type was: {}",
                            scope_type_name(&input)
                        ),
                    );
                };
                let kind = str_arg(args, 0, "type", pos)?.unwrap_or(Cow::Borrowed(""));
                let text = s.trim();
                let bad = || failed(pos, format!("\"{s}\" is not a valid number"));
                let as_int = || -> Option<i64> {
                    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                        i64::from_str_radix(hex, 16).ok()
                    } else {
                        text.parse::<i64>().ok()
                    }
                };
                let as_float = || {
                    text.trim_end_matches(['f', 'F', 'd', 'D'])
                        .parse::<f64>()
                        .ok()
                };
                let n = match kind.as_ref() {
                    "INT" | "LONG" | "BIGINTEGER" => match as_int() {
                        Some(i) => Num::Int(i),
                        None => return bad(),
                    },
                    "FLOAT" | "DOUBLE" | "BIGDECIMAL" => match as_float() {
                        Some(f) => Num::Float(f),
                        None => return bad(),
                    },
                    _ => match (as_int(), as_float()) {
                        (Some(i), _) => Num::Int(i),
                        (None, Some(f)) => Num::Float(f),
                        _ => return bad(),
                    },
                };
                owned(n.into_value(pos)?)
            }
            Filter::Abs => match input.as_value().and_then(Num::of) {
                Some(Num::Int(i)) => owned(Value::from(i.wrapping_abs())),
                Some(Num::Float(f)) => owned(Num::Float(f.abs()).into_value(pos)?),
                None if null_in => failed(pos, "Can not pass null value to \"abs\" filter."),
                None => failed(pos, "The 'abs' filter does require as input a number."),
            },
            Filter::Round => {
                let precision = int_arg(args, 0, "precision", pos)?.unwrap_or(0);
                let method = str_arg(args, 1, "method", pos)?.unwrap_or(Cow::Borrowed("common"));
                match input.as_value().and_then(Num::of) {
                    Some(Num::Int(i)) => owned(Value::from(i)),
                    Some(Num::Float(f)) => {
                        let r = round_half_up(f, precision, &method);
                        if precision <= 0 && r.abs() < 9.0e15 {
                            owned(Value::from(r as i64))
                        } else {
                            owned(Num::Float(r).into_value(pos)?)
                        }
                    }
                    None => failed(pos, "The 'round' filter requires a number"),
                }
            }
            Filter::Slugify => owned(Value::String(slugify(&java_string(&input.json())))),
            Filter::StartsWith | Filter::EndsWith => {
                if null_in {
                    return failed(
                        pos,
                        format!("Can not pass null value to \"{}\" filter.", filter.name()),
                    );
                }
                let Some(value) = arg(args, 0) else {
                    return failed(
                        pos,
                        format!(
                            "The '{}' filter expects an argument 'value'.",
                            filter.name()
                        ),
                    );
                };
                let data = java_string(&input.json());
                let value = java_string(&value.json());
                let result = if *filter == Filter::StartsWith {
                    data.starts_with(&value)
                } else {
                    data.ends_with(&value)
                };
                owned(Value::Bool(result))
            }
            Filter::Date => {
                let format = str_arg(args, 0, "format", pos)?;
                let zone = str_arg(args, 1, "timeZone", pos)?;
                let existing = str_arg(args, 2, "existingFormat", pos)?;
                date::format_value(
                    &input.json(),
                    format.as_deref(),
                    zone.as_deref(),
                    existing.as_deref(),
                )
                .map(|s| Scope::Owned(Value::String(s)))
                .or_else(|m| failed(pos, m))
            }
            Filter::DateAdd => {
                let Some(amount) = int_arg(args, 0, "amount", pos)? else {
                    return failed(pos, "The 'dateAdd' filter expects an argument 'amount'.");
                };
                let Some(unit) = str_arg(args, 1, "unit", pos)? else {
                    return failed(pos, "The 'dateAdd' filter expects an argument 'unit'.");
                };
                let format = str_arg(args, 2, "format", pos)?;
                let zone = str_arg(args, 3, "timeZone", pos)?;
                let existing = str_arg(args, 4, "existingFormat", pos)?;
                date::add(
                    &input.json(),
                    amount,
                    &unit,
                    format.as_deref(),
                    zone.as_deref(),
                    existing.as_deref(),
                )
                .map(|s| Scope::Owned(Value::String(s)))
                .or_else(|m| failed(pos, m))
            }
            Filter::Timestamp => {
                let zone = str_arg(args, 0, "timeZone", pos)?;
                let existing = str_arg(args, 1, "existingFormat", pos)?;
                date::timestamp(&input.json(), zone.as_deref(), existing.as_deref())
                    .map(|s| Scope::Owned(Value::from(s)))
                    .or_else(|m| failed(pos, m))
            }
            Filter::Jq => self.jq(input, args, decl, pos),
            Filter::Reverse => match input.json().into_owned() {
                Value::Array(mut items) => {
                    items.reverse();
                    owned(Value::Array(items))
                }
                Value::String(s) => owned(Value::String(s.chars().rev().collect())),
                other => failed(
                    pos,
                    format!("\"reverse\" expects a list, not {}", type_name(&other)),
                ),
            },
            Filter::Sort | Filter::Rsort => match input.json().into_owned() {
                Value::Array(mut items) => {
                    items.sort_by(sort_key_cmp);
                    if *filter == Filter::Rsort {
                        items.reverse();
                    }
                    owned(Value::Array(items))
                }
                other => failed(
                    pos,
                    format!(
                        "\"{}\" expects a list, not {}",
                        filter.name(),
                        type_name(&other)
                    ),
                ),
            },
            Filter::Merge => {
                let Some(other) = arg(args, 0) else {
                    return failed(pos, "The 'merge' filter expects an argument 'items'.");
                };
                match (input.json().into_owned(), other.json().into_owned()) {
                    (Value::Array(mut a), Value::Array(b)) => {
                        a.extend(b);
                        self.check_items(a.len(), pos)?;
                        owned(Value::Array(a))
                    }
                    (Value::Object(mut a), Value::Object(b)) => {
                        a.extend(b);
                        owned(Value::Object(a))
                    }
                    _ => failed(pos, "\"merge\" expects two lists or two maps"),
                }
            }
            Filter::SubstringBefore
            | Filter::SubstringBeforeLast
            | Filter::SubstringAfter
            | Filter::SubstringAfterLast => {
                let s = java_string(&input.json());
                let Some(sep) = str_arg(args, 0, "separator", pos)? else {
                    return owned(Value::String(match filter {
                        Filter::SubstringBefore | Filter::SubstringBeforeLast => s,
                        _ => String::new(),
                    }));
                };
                let found = match filter {
                    Filter::SubstringBefore | Filter::SubstringAfter => s.find(sep.as_ref()),
                    _ => s.rfind(sep.as_ref()),
                };
                let out = match (filter, found) {
                    (Filter::SubstringBefore | Filter::SubstringBeforeLast, Some(i)) => {
                        s[..i].to_owned()
                    }
                    (Filter::SubstringBefore | Filter::SubstringBeforeLast, None) => s,
                    (_, Some(i)) => s[i + sep.len()..].to_owned(),
                    (_, None) => String::new(),
                };
                owned(Value::String(out))
            }
            Filter::Abbreviate => {
                let s = java_string(&input.json());
                let Some(max) = int_arg(args, 0, "length", pos)? else {
                    return failed(pos, "The 'abbreviate' filter expects an argument 'length'.");
                };
                let max = usize::try_from(max).unwrap_or(0);
                let count = s.chars().count();
                if count <= max {
                    return owned(Value::String(s));
                }
                if max < 3 {
                    return failed(pos, "Minimum abbreviation width is 3");
                }
                let mut out: String = s.chars().take(max - 3).collect();
                out.push_str("...");
                owned(Value::String(out))
            }
            Filter::Flatten => match input.json().into_owned() {
                Value::Array(items) => {
                    let mut out = Vec::new();
                    for item in items {
                        match item {
                            Value::Array(inner) => out.extend(inner),
                            other => out.push(other),
                        }
                    }
                    owned(Value::Array(out))
                }
                other => failed(
                    pos,
                    format!("\"flatten\" expects a list, not {}", type_name(&other)),
                ),
            },
            Filter::Chunk => {
                let size = int_arg(args, 0, "size", pos)?.unwrap_or(0);
                let Ok(size @ 1..) = usize::try_from(size) else {
                    return failed(pos, "The 'chunk' filter expects a positive 'size'.");
                };
                match input.json().into_owned() {
                    Value::Array(items) => owned(Value::Array(
                        items
                            .chunks(size)
                            .map(|c| Value::Array(c.to_vec()))
                            .collect(),
                    )),
                    other => failed(
                        pos,
                        format!("\"chunk\" expects a list, not {}", type_name(&other)),
                    ),
                }
            }
            Filter::Unknown(name) => failed(pos, format!("Filter [{name}] does not exist.")),
        }
    }

    fn slice(&self, input: Scope<'a>, args: Slots<'_, 'a>, pos: Pos) -> R<Scope<'a>> {
        let from = int_arg(args, 0, "fromIndex", pos)?.unwrap_or(0);
        if from < 0 {
            return failed(pos, "fromIndex must be greater than 0");
        }
        let to = int_arg(args, 1, "toIndex", pos)?;
        let json = input.json();
        let length = match &*json {
            Value::Array(items) => items.len(),
            Value::String(s) => s.chars().count(),
            other => {
                return failed(
                    pos,
                    format!(
                        "Slice filter can only be applied to String, List and array inputs. Actual type was: {}",
                        type_name(other)
                    ),
                );
            }
        };
        let from = usize::try_from(from).unwrap_or(usize::MAX);
        let to = match to {
            Some(to) => {
                let to = usize::try_from(to).unwrap_or(0);
                if to > length {
                    return failed(
                        pos,
                        format!("toIndex must be smaller than input size: {length}"),
                    );
                }
                if from >= to {
                    return failed(pos, "toIndex must be greater than fromIndex");
                }
                to
            }
            None => length,
        };
        if from > to {
            return failed(pos, format!("fromIndex {from} is past the end {to}"));
        }
        match &*json {
            Value::Array(items) => owned(Value::Array(items[from..to].to_vec())),
            Value::String(s) => owned(Value::String(
                s.chars().skip(from).take(to - from).collect(),
            )),
            _ => failed(
                pos,
                "Slice filter can only be applied to String, List and array inputs.",
            ),
        }
    }

    fn jq(&self, input: Scope<'a>, args: Slots<'_, 'a>, decl: &'a Args, pos: Pos) -> R<Scope<'a>> {
        let compiled;
        let program: &JqProgram = match &decl.jq {
            Some(p) => p,
            None => {
                let Some(code) = str_arg(args, 0, "expression", pos)? else {
                    return failed(pos, "The 'jq' filter expects an argument 'expression'.");
                };
                compiled = JqProgram::compile(&code).or_else(|m| failed(pos, m))?;
                &compiled
            }
        };
        let json = input.json();
        let parsed;
        let value: &Value = match &*json {
            Value::String(s) => {
                parsed = serde_json::from_str::<Value>(s)
                    .or_else(|e| failed(pos, format!("Unable to parse jq value '{s}': {e}")))?;
                &parsed
            }
            other => other,
        };
        let budget = self.meter.budget();
        let limits = Limits {
            steps: self.meter.left(),
            output_bytes: budget.output_bytes,
            memory_bytes: budget.memory_bytes,
            budget_steps: budget.steps,
        };
        let ran = program.run(value, limits);
        self.meter.spent(ran.steps);
        ran.outputs
            .map(|out| Scope::Owned(Value::Array(out)))
            .or_else(|m| failed(pos, m))
    }

    pub(crate) fn apply_test(
        &self,
        test: &Test,
        input: Option<&Scope<'a>>,
        _args: Slots<'_, 'a>,
        pos: Pos,
    ) -> R<bool> {
        let is_null = input.is_none_or(Scope::is_null);
        match test {
            Test::Null => Ok(is_null),
            Test::Defined => Ok(!is_null),
            Test::Empty => Ok(input.is_none_or(is_empty)),
            Test::Json => match input.and_then(Scope::as_str) {
                Some(s) => Ok(serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()),
                None => failed(pos, "The 'json' test expects a string"),
            },
            Test::Even | Test::Odd => {
                let Some(v) = input.filter(|v| !v.is_null()) else {
                    return failed(
                        pos,
                        format!("Can not pass null value to \"{}\" test.", test.name()),
                    );
                };
                match v.as_value().and_then(Num::of) {
                    Some(Num::Int(i)) => Ok((i % 2 == 0) == (*test == Test::Even)),
                    _ => failed(
                        pos,
                        format!("The \"{}\" test expects an integer", test.name()),
                    ),
                }
            }
            Test::Iterable => Ok(matches!(
                input.and_then(Scope::as_value),
                Some(Value::Array(_))
            )),
            Test::Map => Ok(match input {
                Some(Scope::Lazy(_)) => true,
                Some(v) => matches!(v.as_value(), Some(Value::Object(_))),
                None => false,
            }),
            Test::Unknown(name) => failed(pos, format!("Test [{name}] does not exist.")),
        }
    }

    pub(crate) fn call(
        &self,
        function: &Function,
        args: Slots<'_, 'a>,
        rest: Vec<Scope<'a>>,
        pos: Pos,
    ) -> R<Scope<'a>> {
        match function {
            Function::FromJson | Function::Json => {
                let Some(json) = arg(args, 0) else {
                    return failed(pos, "The 'fromJson' function expects an argument 'json'.");
                };
                match json.as_value() {
                    Some(Value::Null) => owned(Value::Null),
                    Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                        .map(Scope::Owned)
                        .or_else(|e| failed(pos, format!("Invalid json: {e}"))),
                    _ => failed(
                        pos,
                        "The 'fromJson' function expects an argument 'json' with type string.",
                    ),
                }
            }
            Function::Now => {
                let format = str_arg(args, 0, "format", pos)?;
                let zone = str_arg(args, 1, "timeZone", pos)?;
                date::now(self.context().now(), format.as_deref(), zone.as_deref())
                    .map(|s| Scope::Owned(Value::String(s)))
                    .or_else(|m| failed(pos, m))
            }
            Function::Range => {
                let list = range(arg(args, 0), arg(args, 1), arg(args, 2), pos)?;
                self.meter
                    .charge(list.as_array().map_or(0, Vec::len) as u64, pos)?;
                owned(list)
            }
            Function::Max | Function::Min => {
                let mut best: Option<Scope<'a>> = None;
                for candidate in rest {
                    let Some(current) = &best else {
                        best = Some(candidate);
                        continue;
                    };
                    let (Some(c), Some(b)) = (
                        candidate.as_value().and_then(Num::of),
                        current.as_value().and_then(Num::of),
                    ) else {
                        if candidate.is_null() || current.is_null() {
                            continue;
                        }
                        return failed(pos, "invalid operands for mathematical comparison");
                    };
                    let better = if *function == Function::Max {
                        c.as_f64() > b.as_f64()
                    } else {
                        c.as_f64() < b.as_f64()
                    };
                    if better {
                        best = Some(candidate);
                    }
                }
                Ok(best.unwrap_or(Scope::Owned(Value::Null)))
            }
            Function::CurrentEachOutput => self.current_each_output(arg(args, 0), pos),
            Function::Render | Function::RenderOnce => {
                let Some(input) = arg(args, 0) else {
                    return failed(pos, "The 'render' function expects an argument 'toRender'.");
                };
                let recursive = *function == Function::Render
                    && arg(args, 1)
                        .and_then(|r| r.as_value().and_then(Value::as_bool))
                        .unwrap_or(true);
                owned(self.render_value(input.json().into_owned(), recursive, pos)?)
            }
            Function::Kv
            | Function::Secret
            | Function::Read
            | Function::FileSize
            | Function::FileExists
            | Function::IsFileEmpty => {
                let values: Vec<Value> = (0..function.params().len())
                    .map(|i| arg(args, i).map_or(Value::Null, |v| v.json().into_owned()))
                    .collect();
                match self.context().function(function.name(), &values) {
                    Some(Ok(value)) => Ok(Scope::Owned(value)),
                    Some(Err(message)) => failed(pos, message),
                    None => failed(
                        pos,
                        format!("Function or Macro [{}] does not exist.", function.name()),
                    ),
                }
            }
            Function::Unknown(name) => {
                let values: Vec<Value> = rest.iter().map(|v| v.json().into_owned()).collect();
                match self.context().function(name, &values) {
                    Some(Ok(value)) => Ok(Scope::Owned(value)),
                    Some(Err(message)) => failed(pos, message),
                    None => failed(pos, format!("Function or Macro [{name}] does not exist.")),
                }
            }
        }
    }

    /// Kestra's `render()`: strings are rendered as templates against the
    /// same context (again and again when `recursive`, until nothing changes);
    /// lists and maps have their strings rendered.
    fn render_value(&self, value: Value, recursive: bool, pos: Pos) -> R<Value> {
        Ok(match value {
            Value::String(s) => Value::String(self.render_text(s, recursive, pos)?),
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|v| self.render_value(v, recursive, pos))
                    .collect::<R<Vec<_>>>()?,
            ),
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (k, v) in map {
                    let key = self.render_text(k, recursive, pos)?;
                    let value = self.render_value(v, recursive, pos)?;
                    out.entry(key).or_insert(value);
                }
                Value::Object(out)
            }
            other => other,
        })
    }

    fn render_text(&self, mut text: String, recursive: bool, pos: Pos) -> R<String> {
        if self.depth >= MAX_RENDER_DEPTH {
            return failed(pos, "Too many rendering attempts");
        }
        for _ in 0..MAX_RENDERING_AMOUNT {
            if !super::has_tags(&text) {
                return Ok(text);
            }
            let nodes = super::parser::parse_template(&text)
                .or_else(|e| failed(pos, format!("{} in rendered `{text}`", e.message)))?;
            let mut out = String::new();
            let mut inner = self.nested();
            inner
                .render_nodes(&nodes, &mut out)
                .map_err(|fault| match fault {
                    super::eval::Fault::Undefined { name, .. } => {
                        super::eval::Fault::Undefined { name, pos }
                    }
                    super::eval::Fault::Failed { message, .. } => super::eval::Fault::Failed {
                        message: format!("{message} in rendered `{text}`"),
                        pos,
                    },
                })?;
            if !recursive || out == text {
                return Ok(out);
            }
            text = out;
        }
        failed(pos, "Too many rendering attempts")
    }

    /// Kestra's `currentEachOutput(outputs.t)`: `outputs.t[outermost value]...[taskrun.value]`.
    fn current_each_output(&self, outputs: Option<&Scope<'a>>, pos: Pos) -> R<Scope<'a>> {
        let Some(outputs) = outputs else {
            return failed(
                pos,
                "The 'currentEachOutput' function expects an argument 'outputs'.",
            );
        };
        let mut current = match outputs {
            Scope::Json(v) => Scope::Json(v),
            Scope::Lazy(l) => Scope::Lazy(*l),
            Scope::Owned(v) => Scope::Owned(v.clone()),
        };
        if !matches!(current, Scope::Lazy(_))
            && !matches!(current.as_value(), Some(Value::Object(_)))
        {
            return failed(
                pos,
                "The 'currentEachOutput' function expects an argument 'outputs' with type map.",
            );
        }
        let mut values: Vec<Scope<'a>> = Vec::new();
        if let Some(parents) = self.variable("parents") {
            let count = match &parents {
                Scope::Lazy(l) => l.len(),
                _ => match parents.as_value() {
                    Some(Value::Array(items)) => items.len(),
                    _ => 0,
                },
            };
            for i in 0..count {
                let parent = match &parents {
                    Scope::Json(v) => v.get(i).map(Scope::Json),
                    Scope::Lazy(l) => l.get(&i.to_string()),
                    Scope::Owned(v) => v.get(i).cloned().map(Scope::Owned),
                };
                let value = parent
                    .and_then(|p| get_key(p, &Key::Str(Cow::Borrowed("taskrun"))))
                    .filter(|t| !t.is_null())
                    .and_then(|t| get_key(t, &Key::Str(Cow::Borrowed("value"))));
                if let Some(value) = value {
                    values.push(value);
                }
            }
        }
        // Parents run from the innermost to the outermost: read outermost first.
        values.reverse();
        let own = self
            .variable("taskrun")
            .and_then(|t| get_key(t, &Key::Str(Cow::Borrowed("value"))));
        let Some(own) = own else {
            return failed(
                pos,
                "currentEachOutput needs taskrun.value (call it inside a ForEach)",
            );
        };
        for value in &values {
            let key = Key::from_scope(value);
            let name = key.text().into_owned();
            current = match get_key(current, &key) {
                Some(next) => next,
                None => {
                    return Err(super::eval::Fault::Undefined { name, pos });
                }
            };
        }
        let key = Key::from_scope(&own);
        Ok(get_key(current, &key).unwrap_or(Scope::Owned(Value::Null)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_follows_java() {
        let s = |v: Vec<Value>| {
            v.into_iter()
                .map(|x| x.as_str().unwrap_or("?").to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(s(java_split("a,b,,", ",", 0)), ["a", "b"]);
        assert_eq!(s(java_split(",a", ",", 0)), ["", "a"]);
        assert_eq!(s(java_split("a,b,c", ",", 2)), ["a", "b,c"]);
        assert_eq!(s(java_split("a,b,,", ",", -1)), ["a", "b", "", ""]);
        assert_eq!(s(java_split("", ",", 0)), [""]);
        assert_eq!(s(java_split("a.b", ".", 0)), ["a", "b"]);
    }

    #[test]
    fn slugify_like_kestra() {
        assert_eq!(slugify("Test\t\t\ntest*"), "test-test");
        assert_eq!(slugify("  Hello World__Été! "), "hello-world-ete");
        assert_eq!(slugify("a_b--c"), "a-b-c");
    }

    #[test]
    fn rounding() {
        assert_eq!(round_half_up(2.5, 0, "common"), 3.0);
        assert_eq!(round_half_up(2.345, 2, "floor"), 2.34);
        assert_eq!(round_half_up(2.341, 2, "ceil"), 2.35);
    }
}
