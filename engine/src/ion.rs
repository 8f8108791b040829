//! Amazon Ion text, written: Kestra's item files (`.ion`, one value per
//! line, as its `FileSerde.write`) from JSON values. Reading Ion is not
//! here yet.

use std::fmt::Write as _;

use serde_json::Value;

/// `value` as one Ion line (no newline). Top-level fields named in
/// `timestamps` whose value is an ISO-8601 date-time are written as Ion
/// timestamps, as Kestra writes its dates.
pub(crate) fn line(value: &Value, timestamps: &[&str]) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) => {
            out.push('{');
            for (i, (key, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                symbol(&mut out, key);
                out.push(':');
                match v {
                    Value::String(s)
                        if timestamps.contains(&key.as_str())
                            && chrono::DateTime::parse_from_rfc3339(s).is_ok() =>
                    {
                        out.push_str(s);
                    }
                    other => write(&mut out, other),
                }
            }
            out.push('}');
        }
        other => write(&mut out, other),
    }
    out
}

fn write(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                // An Ion float (a decimal would be another type).
                let f = n.as_f64().unwrap_or(0.0);
                let _ = write!(out, "{f:e}");
            } else {
                let _ = write!(out, "{n}");
            }
        }
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                symbol(out, key);
                out.push(':');
                write(out, v);
            }
            out.push('}');
        }
    }
}

/// A field name: bare when it may be, quoted otherwise.
fn symbol(out: &mut String, name: &str) {
    const KEYWORDS: &[&str] = &["null", "true", "false", "nan"];
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && !KEYWORDS.contains(&name);
    if bare {
        out.push_str(name);
    } else {
        quoted(out, name, '\'');
    }
}

fn string(out: &mut String, s: &str) {
    quoted(out, s, '"');
}

fn quoted(out: &mut String, s: &str, quote: char) {
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_are_written_as_ion_text() {
        let value = json!({
            "namespace": "a.b",
            "n": 3,
            "f": 1.5,
            "ok": true,
            "none": null,
            "list": [1, "x"],
            "two words": "say \"hi\"\n",
            "null": 1,
            "timestamp": "2024-01-02T03:04:05.678Z",
            "other": "2024-01-02T03:04:05.678Z",
        });
        assert_eq!(
            line(&value, &["timestamp"]),
            r#"{namespace:"a.b",n:3,f:1.5e0,ok:true,none:null,list:[1,"x"],'two words':"say \"hi\"\n",'null':1,timestamp:2024-01-02T03:04:05.678Z,other:"2024-01-02T03:04:05.678Z"}"#
        );
    }
}
