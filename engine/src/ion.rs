//! Amazon Ion text: Kestra's item files (`.ion`, one value per line, as its
//! `FileSerde`), written from JSON values ([`line`]) and read into them
//! ([`parse`]).

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

/// Nesting deeper than this is refused (a hostile line cannot exhaust
/// the stack).
const MAX_DEPTH: usize = 128;

/// One Ion value (a line of an item file) as JSON, as Kestra's Jackson
/// reads it: structs are objects, lists and s-expressions arrays, symbols
/// and strings text, timestamps their ISO-8601 text, decimals and floats
/// numbers (`nan` and infinities, which JSON lacks, are refused), blobs
/// and clobs their text; annotations and comments are dropped.
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    let mut reader = Reader { text, at: 0 };
    reader.space()?;
    let value = reader.value(0)?;
    reader.space()?;
    if reader.at < text.len() {
        return Err(reader.error("more than one value"));
    }
    Ok(value)
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

const LONG_QUOTE: &str = "'''";

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn error(&self, what: &str) -> String {
        format!("not an Ion value: {what} at character {}", self.at + 1)
    }

    /// Skips white space and comments.
    fn space(&mut self) -> Result<(), String> {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.at += rest.len() - trimmed.len();
            if trimmed.starts_with("//") {
                self.at += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if let Some(body) = trimmed.strip_prefix("/*") {
                let end = body
                    .find("*/")
                    .ok_or_else(|| self.error("an unclosed comment"))?;
                self.at += end + 4;
            } else {
                return Ok(());
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        let Some(c) = self.peek() else {
            return Err(self.error("nothing"));
        };
        let value = match c {
            '{' if self.rest().starts_with("{{") => self.lob()?,
            '{' => self.structure(depth)?,
            '[' => Value::Array(self.sequence(']', depth)?),
            '(' => Value::Array(self.sequence(')', depth)?),
            '"' => Value::String(self.quoted('"')?),
            '\'' if self.rest().starts_with(LONG_QUOTE) => Value::String(self.long_strings()?),
            '\'' => {
                let symbol = self.quoted('\'')?;
                return self.after_symbol(Value::String(symbol), depth);
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
                let word = self.word();
                match word {
                    "null" => {
                        // `null.int` and the like: typed nulls.
                        if self.rest().starts_with('.') {
                            self.at += 1;
                            self.word();
                        }
                        Value::Null
                    }
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "nan" => return Err(self.error("nan, which JSON cannot hold")),
                    _ => {
                        let symbol = Value::String(word.to_owned());
                        return self.after_symbol(symbol, depth);
                    }
                }
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => self.number()?,
            _ => return Err(self.error(&format!("`{c}`"))),
        };
        Ok(value)
    }

    /// A symbol just read: an annotation when `::` follows (the value after
    /// it is the one), else the symbol's text.
    fn after_symbol(&mut self, symbol: Value, depth: usize) -> Result<Value, String> {
        let before = self.at;
        self.space()?;
        if self.rest().starts_with("::") {
            self.at += 2;
            self.space()?;
            return self.value(depth + 1);
        }
        self.at = before;
        Ok(symbol)
    }

    fn word(&mut self) -> &'a str {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(rest.len());
        self.at += len;
        &self.text[self.at - len..self.at]
    }

    fn structure(&mut self, depth: usize) -> Result<Value, String> {
        self.at += 1;
        let mut map = serde_json::Map::new();
        loop {
            self.space()?;
            if self.rest().starts_with('}') {
                self.at += 1;
                return Ok(Value::Object(map));
            }
            let key = match self.peek() {
                Some('"') => self.quoted('"')?,
                Some('\'') if self.rest().starts_with(LONG_QUOTE) => self.long_strings()?,
                Some('\'') => self.quoted('\'')?,
                Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
                    self.word().to_owned()
                }
                _ => return Err(self.error("a field name")),
            };
            self.space()?;
            if !self.rest().starts_with(':') {
                return Err(self.error("`:` after a field name"));
            }
            self.at += 1;
            self.space()?;
            let value = self.value(depth + 1)?;
            map.insert(key, value);
            self.space()?;
            match self.peek() {
                Some(',') => self.at += 1,
                Some('}') => {}
                _ => return Err(self.error("`,` or `}` in a struct")),
            }
        }
    }

    fn sequence(&mut self, close: char, depth: usize) -> Result<Vec<Value>, String> {
        self.at += 1;
        let mut items = Vec::new();
        loop {
            self.space()?;
            if self.rest().starts_with(close) {
                self.at += 1;
                return Ok(items);
            }
            items.push(self.value(depth + 1)?);
            self.space()?;
            match self.peek() {
                Some(',') => self.at += 1,
                Some(c) if c == close => {}
                // An s-expression's values are separated by spaces.
                Some(_) if close == ')' => {}
                _ => return Err(self.error("`,` or the end of a list")),
            }
        }
    }

    /// A string or a quoted symbol, its escapes read.
    fn quoted(&mut self, quote: char) -> Result<String, String> {
        self.at += 1;
        let mut end = [0u8; 4];
        self.escaped(quote.encode_utf8(&mut end))
    }

    /// Text up to `end`, its escapes read; past `end`.
    fn escaped(&mut self, end: &str) -> Result<String, String> {
        let rest = self.rest();
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                _ if rest[i..].starts_with(end) => {
                    self.at += i + end.len();
                    return Ok(out);
                }
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    let mut hex = |n: usize| -> Result<char, String> {
                        let digits: String = (0..n)
                            .filter_map(|_| chars.next().map(|(_, c)| c))
                            .collect();
                        u32::from_str_radix(&digits, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| {
                                format!("not an Ion value: a bad escape `\\{e}{digits}`")
                            })
                    };
                    out.push(match e {
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        '0' => '\0',
                        'a' => '\u{7}',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'v' => '\u{b}',
                        'x' => hex(2)?,
                        'u' => hex(4)?,
                        'U' => hex(8)?,
                        // An escaped line end continues the string.
                        '\n' => continue,
                        other => other,
                    });
                }
                c => out.push(c),
            }
        }
        Err(self.error("an unclosed string"))
    }

    /// Long strings one after another: one string, the parts joined.
    fn long_strings(&mut self) -> Result<String, String> {
        let mut out = String::new();
        while self.rest().starts_with(LONG_QUOTE) {
            self.at += LONG_QUOTE.len();
            out.push_str(&self.escaped(LONG_QUOTE)?);
            let before = self.at;
            self.space()?;
            if !self.rest().starts_with(LONG_QUOTE) {
                self.at = before;
            }
        }
        Ok(out)
    }

    /// `{{ base64 }}` or `{{ "text" }}`: the text inside.
    fn lob(&mut self) -> Result<Value, String> {
        self.at += 2;
        let end = self
            .rest()
            .find("}}")
            .ok_or_else(|| self.error("an unclosed blob"))?;
        let inside = self.rest()[..end].trim();
        let text = match inside.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(clob) => clob.to_owned(),
            None => inside.to_owned(),
        };
        self.at += end + 2;
        Ok(Value::String(text))
    }

    /// An int, a decimal, a float or a timestamp.
    fn number(&mut self) -> Result<Value, String> {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-+._:".contains(c)))
            .unwrap_or(rest.len());
        let token = &rest[..len];
        self.at += len;
        let bad = |r: &Self| r.error(&format!("`{token}`"));
        if token == "+inf" || token == "-inf" {
            return Err(self.error("an infinity, which JSON cannot hold"));
        }
        // A timestamp: `2024-01-02`, `2024-01-02T03:04Z`, `2024T`.
        let after_year = token.trim_start_matches(|c: char| c.is_ascii_digit());
        if token.len() - after_year.len() == 4 && after_year.starts_with(['-', 'T']) {
            return Ok(Value::String(token.to_owned()));
        }
        let plain = token.replace('_', "");
        let (negative, magnitude) = match plain.strip_prefix('-') {
            Some(m) => (true, m),
            None => (false, plain.as_str()),
        };
        let radix = [("0x", 16), ("0X", 16), ("0b", 2), ("0B", 2)]
            .iter()
            .find_map(|(prefix, radix)| magnitude.strip_prefix(prefix).map(|d| (d, *radix)));
        let whole = match radix {
            Some((digits, radix)) => {
                Some(i128::from_str_radix(digits, radix).map_err(|_| bad(self))?)
            }
            None => magnitude.parse::<i128>().ok(),
        };
        if let Some(n) = whole {
            let n = if negative { -n } else { n };
            return int(n).ok_or_else(|| self.error(&format!("`{token}` out of range")));
        }
        // A decimal's exponent is `d`; a float's `e`.
        let float = plain.replace(['d', 'D'], "e");
        float
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| bad(self))
    }
}

/// `n` as a JSON number, if it fits one.
fn int(n: i128) -> Option<Value> {
    if let Ok(i) = i64::try_from(n) {
        return Some(Value::from(i));
    }
    u64::try_from(n).ok().map(Value::from)
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

    #[test]
    fn what_is_written_reads_back() {
        let value = json!({
            "namespace": "a.b",
            "n": -3,
            "big": 18_000_000_000_000_000_000u64,
            "f": 1.5,
            "ok": true,
            "none": null,
            "list": [1, "x", {"deep": [[]]}],
            "two words": "say \"hi\"\n\t\u{1}é",
            "null": 1,
        });
        assert_eq!(parse(&line(&value, &[])).unwrap(), value);
    }

    #[test]
    fn ion_text_reads_as_json_as_kestra_does() {
        let text = r#" /* items */ {id:1, name:'quoted symbol', "str":"a\x41\u00e9", date:2024-01-02T03:04:05Z,
            day:2024-01-02, dec:1.50, exp:1.5d2, flt:-2.5e-1, hex:0x1F, under:1_000, t:null.int,
            ann:units::kg::3, blob:{{aGk=}}, clob:{{"hi"}}, sexp:(a b 1), long:'''one ''' '''two''', sym:abc} // end"#;
        assert_eq!(
            parse(text).unwrap(),
            json!({
                "id": 1, "name": "quoted symbol", "str": "aAé", "date": "2024-01-02T03:04:05Z",
                "day": "2024-01-02", "dec": 1.5, "exp": 150.0, "flt": -0.25, "hex": 31,
                "under": 1000, "t": null, "ann": 3, "blob": "aGk=", "clob": "hi",
                "sexp": ["a", "b", 1], "long": "one two", "sym": "abc"
            })
        );
        assert_eq!(parse("[]").unwrap(), json!([]));
        assert_eq!(parse("  42 ").unwrap(), json!(42));
        assert_eq!(parse("-0x10").unwrap(), json!(-16));
        // Escapes in long strings, quotes among them.
        assert_eq!(
            parse(r#"'''a\"b"c\'d''' '''\x41'''"#).unwrap(),
            json!("a\"b\"c'dA")
        );
    }

    #[test]
    fn what_is_not_ion_is_refused_with_where() {
        for bad in [
            "",
            "{a:1",
            "{a 1}",
            "[1 2]",
            "\"open",
            "{a:1} {b:2}",
            "nan",
            "+inf",
            "{a:@}",
            "0x",
            "{{open",
            "1.2.3",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.starts_with("not an Ion value"), "{bad}: {err}");
        }
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert!(parse(&deep).unwrap_err().contains("too deep"));
        // Annotations count as nesting: a long chain cannot exhaust the
        // stack.
        let annotated = format!("{{a:{}1}}", "x::".repeat(3_000_000));
        assert!(parse(&annotated).unwrap_err().contains("too deep"));
        assert_eq!(parse("{a:x::y::1}").unwrap(), serde_json::json!({"a": 1}));
    }
}
