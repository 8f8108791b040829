//! A Kafka message as a flow sees it: `trigger.key`, `trigger.value`,
//! `trigger.topic`, `trigger.partition`, `trigger.offset`,
//! `trigger.timestamp` and `trigger.headers`, each deserialized as the
//! trigger says.

use chrono::DateTime;
use peregrine_engine::flow::Deserializer;
use peregrine_engine::format_date;
use serde_json::{Map, Value, json};

/// The parts of a message that the trigger variables are made of.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch, when the message carries one.
    pub timestamp_ms: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

/// The `trigger` variable of the execution a message starts, or why the
/// message cannot start one (its key or value does not deserialize).
pub fn variables(
    parts: &Parts<'_>,
    key: Deserializer,
    value: Deserializer,
) -> Result<Value, String> {
    let key = deserialize(parts.key, key).map_err(|e| format!("key: {e}"))?;
    let value = deserialize(parts.value, value).map_err(|e| format!("value: {e}"))?;
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (name, bytes) in parts.headers {
        let text = bytes.map(|b| String::from_utf8_lossy(b).into_owned());
        headers.push(json!({"key": name, "value": text}));
    }
    let timestamp = parts
        .timestamp_ms
        .and_then(DateTime::from_timestamp_millis)
        .map(|t| Value::String(format_date(t)))
        .unwrap_or(Value::Null);
    let mut map = Map::with_capacity(7);
    map.insert("key".into(), key);
    map.insert("value".into(), value);
    map.insert("topic".into(), Value::String(parts.topic.to_owned()));
    map.insert("partition".into(), Value::from(parts.partition));
    map.insert("offset".into(), Value::from(parts.offset));
    map.insert("timestamp".into(), timestamp);
    map.insert("headers".into(), Value::Array(headers));
    Ok(Value::Object(map))
}

/// One key or value. A missing payload (a null key, a tombstone) is null
/// whatever the deserializer.
pub fn deserialize(bytes: Option<&[u8]>, how: Deserializer) -> Result<Value, String> {
    let Some(bytes) = bytes else {
        return Ok(Value::Null);
    };
    let fixed = |n: usize| -> Result<&[u8], String> {
        if bytes.len() == n {
            Ok(bytes)
        } else {
            Err(format!("expected {n} bytes, found {}", bytes.len()))
        }
    };
    Ok(match how {
        Deserializer::String => Value::String(
            std::str::from_utf8(bytes)
                .map_err(|e| format!("not UTF-8: {e}"))?
                .to_owned(),
        ),
        Deserializer::Json => {
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?
        }
        Deserializer::Short => {
            let b = fixed(2)?;
            Value::from(i16::from_be_bytes([b[0], b[1]]))
        }
        Deserializer::Integer => Value::from(i32::from_be_bytes(array(fixed(4)?))),
        Deserializer::Long => Value::from(i64::from_be_bytes(array(fixed(8)?))),
        Deserializer::Float => float(f64::from(f32::from_be_bytes(array(fixed(4)?))))?,
        Deserializer::Double => float(f64::from_be_bytes(array(fixed(8)?)))?,
        // Kafka's UUIDSerializer writes the text form.
        Deserializer::Uuid => {
            let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
            if !is_uuid(text) {
                return Err(format!("`{text}` is not a UUID"));
            }
            Value::String(text.to_owned())
        }
        // Jackson's form of a byte array.
        Deserializer::Bytes => Value::String(crate::state::base64(bytes)),
        Deserializer::Void => Value::Null,
        // A deserializer added to the flow model but not here yet.
        _ => return Err("this deserializer is not supported".into()),
    })
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(bytes);
    out
}

fn float(f: f64) -> Result<Value, String> {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("{f} has no JSON form"))
}

fn is_uuid(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_deserializer_reads_what_kafkas_serializer_writes() {
        let cases: [(&[u8], Deserializer, Value); 10] = [
            (b"hello", Deserializer::String, json!("hello")),
            (br#"{"a":[1,2]}"#, Deserializer::Json, json!({"a": [1, 2]})),
            (&(-2i16).to_be_bytes(), Deserializer::Short, json!(-2)),
            (
                &70_000i32.to_be_bytes(),
                Deserializer::Integer,
                json!(70_000),
            ),
            (
                &(1i64 << 40).to_be_bytes(),
                Deserializer::Long,
                json!(1i64 << 40),
            ),
            (&1.5f32.to_be_bytes(), Deserializer::Float, json!(1.5)),
            (
                &(-0.25f64).to_be_bytes(),
                Deserializer::Double,
                json!(-0.25),
            ),
            (
                b"123e4567-e89b-12d3-a456-426614174000",
                Deserializer::Uuid,
                json!("123e4567-e89b-12d3-a456-426614174000"),
            ),
            (b"foob", Deserializer::Bytes, json!("Zm9vYg==")),
            (b"anything", Deserializer::Void, Value::Null),
        ];
        for (bytes, how, expected) in cases {
            assert_eq!(deserialize(Some(bytes), how), Ok(expected), "{how:?}");
        }
        assert_eq!(deserialize(None, Deserializer::Json), Ok(Value::Null));
    }

    #[test]
    fn bad_payloads_are_named_not_panicked_on() {
        for (bytes, how, why) in [
            (&b"{nope"[..], Deserializer::Json, "not JSON"),
            (&[0xff, 0xfe][..], Deserializer::String, "not UTF-8"),
            (
                &[1, 2, 3][..],
                Deserializer::Integer,
                "expected 4 bytes, found 3",
            ),
            (&b"not-a-uuid"[..], Deserializer::Uuid, "is not a UUID"),
            (
                &f64::NAN.to_be_bytes()[..],
                Deserializer::Double,
                "no JSON form",
            ),
        ] {
            let err = deserialize(Some(bytes), how).unwrap_err();
            assert!(err.contains(why), "{how:?}: {err}");
        }
    }

    #[test]
    fn variables_carry_every_coordinate() {
        let headers = [("trace", Some(&b"abc"[..])), ("empty", None)];
        let parts = Parts {
            topic: "orders",
            partition: 3,
            offset: 42,
            timestamp_ms: Some(1_764_000_000_123),
            key: Some(b"k1"),
            value: Some(br#"{"order_id": 7}"#),
            headers: &headers,
        };
        let v = variables(&parts, Deserializer::String, Deserializer::Json).unwrap();
        assert_eq!(
            v,
            json!({
                "key": "k1",
                "value": {"order_id": 7},
                "topic": "orders",
                "partition": 3,
                "offset": 42,
                "timestamp": "2025-11-24T16:00:00.123Z",
                "headers": [{"key": "trace", "value": "abc"}, {"key": "empty", "value": null}],
            })
        );
        let err = variables(&parts, Deserializer::Json, Deserializer::Json).unwrap_err();
        assert!(err.starts_with("key: not JSON"), "{err}");
    }
}
