//! Execution and task-run ids: 128 bits, rendered as Kestra renders its ids
//! (22 base62 characters).

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ENCODED_LEN: usize = 22;

/// A 128-bit id, shown as 22 base62 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(u128);

/// The id of one execution.
pub type ExecutionId = Id;
/// The id of one task run.
pub type TaskRunId = Id;

impl Id {
    pub const fn from_u128(raw: u128) -> Self {
        Self(raw)
    }

    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// A fresh id, unique within this process and very likely across processes.
    pub fn generate() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed = *SEED.get_or_init(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            splitmix64(nanos ^ u64::from(std::process::id()).rotate_left(32))
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let hi = splitmix64(seed ^ n);
        let lo = splitmix64(hi ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Self((u128::from(hi) << 64) | u128::from(lo))
    }

    /// An id derived from bytes (for instance a Kafka (topic, partition,
    /// offset)), so that the same source always yields the same id.
    pub fn derive(bytes: &[u8]) -> Self {
        let mut hi = 0x243F_6A88_85A3_08D3u64;
        let mut lo = 0x1319_8A2E_0370_7344u64;
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            let w = u64::from_le_bytes(word);
            hi = splitmix64(hi ^ w);
            lo = splitmix64(lo.wrapping_add(w) ^ hi);
        }
        hi = splitmix64(hi ^ bytes.len() as u64);
        Self((u128::from(hi) << 64) | u128::from(lo))
    }

    /// The id of the execution that a Kafka message starts: derived from
    /// the trigger that consumed it and the message's coordinates, so that a
    /// message delivered twice (after a crash, or to another node of the
    /// consumer group) names the same execution.
    pub fn for_message(origin: &MessageOrigin<'_>) -> Self {
        let mut bytes = fields(&[
            origin.namespace,
            origin.flow_id,
            origin.trigger_id,
            origin.group_id,
            origin.topic,
        ]);
        bytes.extend_from_slice(&origin.partition.to_le_bytes());
        bytes.extend_from_slice(&origin.offset.to_le_bytes());
        Self::derive(&bytes)
    }

    /// The execution Schedule trigger `trigger_id` of flow
    /// `namespace.flow_id` starts for its date `date`: the same whenever
    /// that date is fired again (after a restart), so it starts once.
    pub fn for_schedule(
        namespace: &str,
        flow_id: &str,
        trigger_id: &str,
        date: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let mut bytes = fields(&["schedule", namespace, flow_id, trigger_id]);
        bytes.extend_from_slice(&date.timestamp_micros().to_le_bytes());
        Self::derive(&bytes)
    }

    /// The execution Flow trigger `trigger_id` of flow `namespace.flow_id`
    /// starts when execution `upstream` ends: the same however often that
    /// end is looked at (again after a restart), so it starts once.
    pub fn for_upstream(namespace: &str, flow_id: &str, trigger_id: &str, upstream: Id) -> Self {
        let mut bytes = fields(&["flow-trigger", namespace, flow_id, trigger_id]);
        bytes.extend_from_slice(&upstream.as_u128().to_le_bytes());
        Self::derive(&bytes)
    }

    /// The execution Flow trigger `trigger_id` of flow `namespace.flow_id`
    /// starts when execution `upstream` enters `state` (one that is not an
    /// end) for the `nth` time: one per entry, however often it is looked at.
    pub fn for_upstream_state(
        namespace: &str,
        flow_id: &str,
        trigger_id: &str,
        upstream: Id,
        state: &str,
        nth: u32,
    ) -> Self {
        let mut bytes = fields(&["flow-trigger-state", namespace, flow_id, trigger_id, state]);
        bytes.extend_from_slice(&upstream.as_u128().to_le_bytes());
        bytes.extend_from_slice(&nth.to_le_bytes());
        Self::derive(&bytes)
    }

    fn encode(self) -> [u8; ENCODED_LEN] {
        let mut out = [b'0'; ENCODED_LEN];
        let mut n = self.0;
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(n % 62) as usize];
            n /= 62;
        }
        out
    }
}

/// Where a message came from: the trigger that consumed it (flow, trigger
/// id, consumer group) and its place in the topic.
#[derive(Debug, Clone, Copy)]
pub struct MessageOrigin<'a> {
    pub namespace: &'a str,
    pub flow_id: &'a str,
    pub trigger_id: &'a str,
    pub group_id: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// Texts, each length-prefixed, so that no two tuples share an encoding.
fn fields(texts: &[&str]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(texts.iter().map(|t| t.len() + 8).sum::<usize>() + 16);
    for text in texts {
        bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
    }
    bytes
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = self.encode();
        // The alphabet is ASCII, so the bytes are valid UTF-8.
        f.write_str(std::str::from_utf8(&encoded).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text is not a 22-character base62 id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an execution id (22 base62 characters)")]
pub struct ParseIdError(pub String);

impl FromStr for Id {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != ENCODED_LEN {
            return Err(ParseIdError(s.to_owned()));
        }
        let mut n: u128 = 0;
        for b in s.bytes() {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'A'..=b'Z' => b - b'A' + 10,
                b'a'..=b'z' => b - b'a' + 36,
                _ => return Err(ParseIdError(s.to_owned())),
            };
            n = n
                .checked_mul(62)
                .and_then(|n| n.checked_add(u128::from(digit)))
                .ok_or_else(|| ParseIdError(s.to_owned()))?;
        }
        Ok(Self(n))
    }
}

impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        for raw in [0u128, 1, 61, 62, u128::MAX, 0xDEAD_BEEF << 64] {
            let id = Id::from_u128(raw);
            let text = id.to_string();
            assert_eq!(text.len(), 22);
            assert_eq!(text.parse::<Id>().unwrap(), id);
        }
        assert_eq!(Id::from_u128(61).to_string(), "000000000000000000000z");
    }

    #[test]
    fn rejects_bad_text() {
        assert!("short".parse::<Id>().is_err());
        assert!("0000000000000000000000!".parse::<Id>().is_err());
        assert!(
            "zzzzzzzzzzzzzzzzzzzzzz".parse::<Id>().is_err(),
            "overflows 128 bits"
        );
    }

    #[test]
    fn generated_ids_are_unique_and_derived_ids_stable() {
        let ids: std::collections::HashSet<Id> = (0..10_000).map(|_| Id::generate()).collect();
        assert_eq!(ids.len(), 10_000);
        assert_eq!(Id::derive(b"topic/0/42"), Id::derive(b"topic/0/42"));
        assert_ne!(Id::derive(b"topic/0/42"), Id::derive(b"topic/0/43"));
    }

    #[test]
    fn message_ids_depend_on_every_coordinate() {
        let base = MessageOrigin {
            namespace: "ns",
            flow_id: "f",
            trigger_id: "t",
            group_id: "g",
            topic: "orders",
            partition: 1,
            offset: 42,
        };
        let id = Id::for_message(&base);
        assert_eq!(id, Id::for_message(&base));
        let variants = [
            MessageOrigin {
                namespace: "ns2",
                ..base
            },
            MessageOrigin {
                flow_id: "f2",
                ..base
            },
            MessageOrigin {
                trigger_id: "t2",
                ..base
            },
            MessageOrigin {
                group_id: "g2",
                ..base
            },
            MessageOrigin {
                topic: "orders2",
                ..base
            },
            MessageOrigin {
                partition: 2,
                ..base
            },
            MessageOrigin { offset: 43, ..base },
            // Same bytes concatenated, different fields.
            MessageOrigin {
                namespace: "n",
                flow_id: "sf",
                ..base
            },
        ];
        for variant in variants {
            assert_ne!(Id::for_message(&variant), id, "{variant:?}");
        }
    }
}
