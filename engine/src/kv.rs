//! Kestra's KV store: typed values by namespace and key, which flows read
//! with `kv('key')` and write with the `kv.*` tasks, and the API serves.
//!
//! Everything is held in memory (bounded: [`KvLimits`]) and, in a server,
//! made durable in a log of its own (`data/kv`): one terminal record per
//! key and change, each superseding the one before, a deletion's record
//! forgotten once it is durable. A write returns once its record is
//! durable; readers see it from the moment it is appended (a crash before
//! the sync loses a value some execution may have read: that execution
//! journaled what it read, so its replay does not change).
//!
//! Reads from templates run on the shards' threads, under a read lock held
//! for one map lookup; writes take the write lock for the lookup, the
//! append (a copy into the mapped segment) and the insert, then wait for
//! the sync outside it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use peregrine_wal::{Key, Kind, Wal};
use serde_json::{Value, json};

use crate::execution::{ExecutionId, format_date};
use crate::lazy_log::LazyLog;

/// The key space of KV records in their log.
const SPACE: u8 = 1;
/// A key's value and metadata.
const STANDS: Kind = Kind::new(1);
/// The key was deleted: what stood before is dead.
const GONE: Kind = Kind::new(2);

/// Why the KV store refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "Key must start with an alphanumeric character (uppercase or lowercase) and can contain \
         alphanumeric characters (uppercase or lowercase), dots (.), underscores (_), and hyphens (-) only \
         (at most {max} bytes): '{key}'"
    )]
    BadKey { key: String, max: usize },
    #[error("the namespace '{0}' is not a valid namespace")]
    BadNamespace(String),
    #[error(
        "Cannot set value for key '{0}'. Key already exists and `overwrite` is set to `false`."
    )]
    Exists(String),
    #[error("the value of key '{key}' takes {bytes} bytes, more than the limit of {max}")]
    TooLarge {
        key: String,
        bytes: usize,
        max: usize,
    },
    #[error("the KV store holds {held} bytes; {bytes} more would pass its limit of {max}")]
    Full {
        held: usize,
        bytes: usize,
        max: usize,
    },
    #[error("the KV store could not make the change durable: {0}")]
    Durability(String),
    #[error("{0}")]
    BadValue(String),
}

/// Kestra's `KVType`: what a value is. `DATE` values are kept as
/// `DATETIME`, as Kestra's `kv.Set` parses them into an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvType {
    String,
    Number,
    Boolean,
    DateTime,
    Duration,
    Json,
}

impl KvType {
    pub fn as_str(self) -> &'static str {
        match self {
            KvType::String => "STRING",
            KvType::Number => "NUMBER",
            KvType::Boolean => "BOOLEAN",
            KvType::DateTime => "DATETIME",
            KvType::Duration => "DURATION",
            KvType::Json => "JSON",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "STRING" => KvType::String,
            "NUMBER" => KvType::Number,
            "BOOLEAN" => KvType::Boolean,
            "DATETIME" | "DATE" => KvType::DateTime,
            "DURATION" => KvType::Duration,
            "JSON" => KvType::Json,
            _ => return None,
        })
    }

    /// The type Kestra reads back for `value` (`KVType.from` after
    /// `InternalKVStore.getValue`): a text that is an ISO duration reads as
    /// a `DURATION`.
    fn of(value: &Value) -> Self {
        match value {
            Value::Null => KvType::String,
            Value::String(s) if is_duration(s) => KvType::Duration,
            Value::String(_) => KvType::String,
            Value::Number(_) => KvType::Number,
            Value::Bool(_) => KvType::Boolean,
            Value::Array(_) | Value::Object(_) => KvType::Json,
        }
    }
}

/// A typed value: dates and durations are their ISO text.
#[derive(Debug, Clone, PartialEq)]
pub struct KvValue {
    pub kind: KvType,
    pub value: Value,
}

impl KvValue {
    /// `value` as Kestra keeps a task's rendered value: with no `kv_type`,
    /// as it is (its type read from it); with one, a text is converted to
    /// it (`kv.Set`'s `kvType`), and anything else kept as it is.
    pub fn typed(value: Value, kv_type: Option<&str>) -> Result<Self, Error> {
        let Some(name) = kv_type else {
            return Ok(Self::untyped(value));
        };
        let kind = KvType::from_name(name).ok_or_else(|| {
            Error::BadValue(format!(
                "kvType must be one of STRING, NUMBER, BOOLEAN, DATETIME, DATE, DURATION, JSON, not '{name}'"
            ))
        })?;
        let Value::String(text) = value else {
            return Ok(Self::untyped(value));
        };
        let bad = |what: &str| Error::BadValue(format!("'{text}' is not {what}"));
        let value = match kind {
            KvType::String => Value::String(text.clone()),
            KvType::Number => match serde_json::from_str::<Value>(text.trim()) {
                Ok(n @ Value::Number(_)) => n,
                _ => return Err(bad("a number")),
            },
            KvType::Boolean => Value::Bool(text.trim().eq_ignore_ascii_case("true")),
            KvType::DateTime => match parse_instant(&text) {
                Some(at) => return Ok(Self::date(at)),
                None => return Err(bad("an ISO-8601 instant")),
            },
            KvType::Duration => match crate::flow::parse_duration(&text) {
                Some(_) => Value::String(text.trim().to_ascii_uppercase()),
                None => return Err(bad("an ISO-8601 duration")),
            },
            KvType::Json => serde_json::from_str(&text).map_err(|_| bad("JSON"))?,
        };
        Ok(Self { kind, value })
    }

    /// A value whose type is read from it.
    pub fn untyped(value: Value) -> Self {
        Self {
            kind: KvType::of(&value),
            value,
        }
    }

    /// An instant (`DATETIME`).
    pub fn date(at: DateTime<Utc>) -> Self {
        Self {
            kind: KvType::DateTime,
            value: Value::String(format_date(at)),
        }
    }

    /// The body of the API's `PUT`, read as Kestra reads it (Amazon Ion, a
    /// superset of JSON): JSON, a bare word (a text), or an instant.
    pub fn parse_api_body(body: &str) -> Result<Self, Error> {
        let text = body.trim();
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            return Ok(Self::untyped(value));
        }
        if let Some(at) = parse_instant(text) {
            return Ok(Self::date(at));
        }
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
        if !text.is_empty()
            && !text.starts_with(|c: char| c.is_ascii_digit())
            && text.chars().all(word)
        {
            return Ok(Self::untyped(Value::String(text.to_owned())));
        }
        Err(Error::BadValue(format!("Invalid JSON value for: {body}")))
    }

    /// Kestra's `TypedValue`: `{type, value}`.
    pub fn json(&self) -> Value {
        json!({ "type": self.kind.as_str(), "value": self.value })
    }
}

/// One key's value and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct KvEntry {
    pub value: KvValue,
    pub description: Option<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub expires: Option<DateTime<Utc>>,
    /// 1 when set first, one more at each write since (Kestra 2.0's).
    pub revision: u32,
}

impl KvEntry {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }

    /// Kestra's `KVEntry`, as the API lists it.
    pub fn listing(&self, namespace: &str, key: &str) -> Value {
        json!({
            "namespace": namespace,
            "key": key,
            "revision": self.revision,
            "description": self.description,
            "creationDate": format_date(self.created),
            "updateDate": format_date(self.updated),
            "expirationDate": self.expires.map(format_date),
        })
    }

    /// Kestra 2.0's `KvDetail`: the typed value with its revision.
    pub fn detail(&self) -> Value {
        json!({
            "type": self.value.kind.as_str(),
            "value": self.value.value,
            "revision": self.revision,
            "updated": format_date(self.updated),
        })
    }
}

/// What a write sets besides the value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KvMeta {
    pub description: Option<String>,
    /// From the write: the value expires then.
    pub ttl: Option<Duration>,
}

/// How much the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// Most bytes one value takes, as JSON.
    pub max_value_bytes: usize,
    /// Most bytes every key, namespace, value and description take together.
    pub max_bytes: usize,
}

impl KvLimits {
    /// 512 KiB. (One step of an execution may read about that much through
    /// `kv()`, its reads journaled as one record: `Limits::max_step_reads_bytes`.)
    pub const DEFAULT_MAX_VALUE_BYTES: usize = 512 << 10;
}

impl Default for KvLimits {
    fn default() -> Self {
        Self {
            max_value_bytes: Self::DEFAULT_MAX_VALUE_BYTES,
            max_bytes: 256 << 20,
        }
    }
}

/// Most bytes a key takes (Kestra keeps a key as a file name).
pub const MAX_KEY_BYTES: usize = 255;

/// The KV store; cloning is a reference count.
#[derive(Clone)]
pub struct KvStore(Arc<Inner>);

struct Inner {
    log: LazyLog,
    limits: KvLimits,
    state: RwLock<Held>,
}

#[derive(Default)]
struct Held {
    /// By namespace, then key: a namespace's keys are a range.
    entries: BTreeMap<(String, String), Arc<KvEntry>>,
    bytes: usize,
}

impl fmt::Debug for KvStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvStore")
            .field("durable", &self.0.log.is_durable())
            .field("limits", &self.0.limits)
            .finish_non_exhaustive()
    }
}

/// Two handles are equal when they are the same store.
impl PartialEq for KvStore {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl KvStore {
    /// A store kept in memory only (an engine with no WAL, tests).
    pub fn in_memory(limits: KvLimits) -> Self {
        Self::with(LazyLog::none(), limits, Held::default())
    }

    /// An empty store whose log is made in `dir` at its first write (`dir`
    /// holds no log yet).
    pub fn deferred(dir: PathBuf, config: peregrine_wal::Config, limits: KvLimits) -> Self {
        Self::with(LazyLog::deferred(dir, config), limits, Held::default())
    }

    /// The store kept in `wal`, with what its recovery read back: each
    /// key's last record. An unreadable record is skipped (logged).
    pub fn from_log(wal: Wal, recovered: &peregrine_wal::Recovered, limits: KvLimits) -> Self {
        let mut held = Held::default();
        for (key, records) in recovered.iter() {
            if key.space() != SPACE {
                continue;
            }
            let Some(last) = records.last() else { continue };
            if last.kind() == GONE {
                continue;
            }
            match decode(last.payload()) {
                Some((namespace, key, entry)) => {
                    held.bytes += size(&namespace, &key, &entry);
                    held.entries.insert((namespace, key), Arc::new(entry));
                }
                None => tracing::error!("an unreadable KV record is skipped"),
            }
        }
        Self::with(LazyLog::open(wal), limits, held)
    }

    fn with(log: LazyLog, limits: KvLimits, held: Held) -> Self {
        Self(Arc::new(Inner {
            log,
            limits,
            state: RwLock::new(held),
        }))
    }

    /// The log to append to (none: in memory), made now if it is deferred.
    /// Called under the write lock, so that it is made once.
    fn log(&self) -> Result<Option<&Wal>, Error> {
        self.0.log.for_writing().map_err(Error::Durability)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Held> {
        // A writer that panicked left the map whole: every change to it is
        // one insert or one remove.
        self.0.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Held> {
        self.0.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry of `key` in `namespace`, unless it is missing or expired
    /// at `now`.
    pub fn get(
        &self,
        namespace: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<KvEntry>>, Error> {
        validate_key(key)?;
        let held = self.read();
        Ok(held
            .entries
            .get(&(namespace.to_owned(), key.to_owned()))
            .filter(|e| !e.is_expired(now))
            .cloned())
    }

    /// `key` looked up in `namespace`, then in each of its parents
    /// (`a.b.c`, `a.b`, `a`), as Kestra's `kv()` with no namespace does:
    /// the first found, with the namespace it was found in.
    pub fn get_inherited(
        &self,
        namespace: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, Arc<KvEntry>)>, Error> {
        validate_key(key)?;
        let held = self.read();
        let mut ns = namespace;
        loop {
            let found = held
                .entries
                .get(&(ns.to_owned(), key.to_owned()))
                .filter(|e| !e.is_expired(now));
            if let Some(entry) = found {
                return Ok(Some((ns.to_owned(), Arc::clone(entry))));
            }
            match ns.rfind('.') {
                Some(dot) => ns = &ns[..dot],
                None => return Ok(None),
            }
        }
    }

    /// Sets `key` in `namespace` to `value`; with `overwrite` false, a key
    /// that holds a value (not expired) is refused. Returns once durable.
    pub fn put(
        &self,
        namespace: &str,
        key: &str,
        value: KvValue,
        meta: KvMeta,
        overwrite: bool,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        validate_key(key)?;
        validate_namespace(namespace)?;
        let value_bytes = value.value.to_string().len();
        if value_bytes > self.0.limits.max_value_bytes {
            return Err(Error::TooLarge {
                key: key.to_owned(),
                bytes: value_bytes,
                max: self.0.limits.max_value_bytes,
            });
        }
        let expires = match meta.ttl {
            Some(ttl) => Some(
                chrono::Duration::from_std(ttl)
                    .ok()
                    .and_then(|ttl| now.checked_add_signed(ttl))
                    .ok_or_else(|| Error::BadValue(format!("the ttl {ttl:?} is too long")))?,
            ),
            None => None,
        };
        let name = (namespace.to_owned(), key.to_owned());
        let lsn = {
            let mut held = self.write();
            let before = held.entries.get(&name).filter(|e| !e.is_expired(now));
            if !overwrite && before.is_some() {
                return Err(Error::Exists(key.to_owned()));
            }
            let entry = KvEntry {
                value,
                description: meta.description,
                created: before.map_or(now, |e| e.created),
                updated: now,
                expires,
                revision: before.map_or(1, |e| e.revision.saturating_add(1)),
            };
            let old = held
                .entries
                .get(&name)
                .map_or(0, |e| size(namespace, key, e));
            let new = size(namespace, key, &entry);
            let mut held_after = held.bytes - old + new;
            if new > old && held_after > self.0.limits.max_bytes {
                // Room the expired values hold first.
                let reclaimed = self.drop_expired(&mut held, now)?;
                held_after -= reclaimed;
            }
            if new > old && held_after > self.0.limits.max_bytes {
                return Err(Error::Full {
                    held: held.bytes,
                    bytes: new - old,
                    max: self.0.limits.max_bytes,
                });
            }
            let lsn = match self.log()? {
                Some(wal) => {
                    let payload = encode(namespace, key, &entry).to_string();
                    Some(
                        wal.append_terminal(STANDS, wal_key(namespace, key), payload.as_bytes())
                            .map_err(|e| Error::Durability(e.to_string()))?,
                    )
                }
                None => None,
            };
            held.bytes = held_after;
            held.entries.insert(name, Arc::new(entry));
            lsn
        };
        self.durable(lsn)
    }

    /// Deletes `key` of `namespace`: whether it held a value (not
    /// expired). Returns once durable.
    pub fn delete(&self, namespace: &str, key: &str, now: DateTime<Utc>) -> Result<bool, Error> {
        validate_key(key)?;
        Ok(!self.remove(namespace, &[key.to_owned()], now)?.is_empty())
    }

    /// Deletes `keys` of `namespace` (expired ones too): those that held a
    /// value not expired at `now`. Returns once durable.
    pub fn remove(
        &self,
        namespace: &str,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, Error> {
        let mut deleted = Vec::new();
        let mut gone = Vec::new();
        let mut lsn = None;
        {
            let mut held = self.write();
            for key in keys {
                let name = (namespace.to_owned(), key.clone());
                let Some(entry) = held.entries.get(&name) else {
                    continue;
                };
                if let Some(wal) = self.log()? {
                    let at = wal
                        .append_terminal(GONE, wal_key(namespace, key), b"")
                        .map_err(|e| Error::Durability(e.to_string()))?;
                    lsn = Some(at);
                }
                if !entry.is_expired(now) {
                    deleted.push(key.clone());
                }
                let freed = size(namespace, key, entry);
                held.bytes -= freed;
                held.entries.remove(&name);
                gone.push(key.clone());
            }
        }
        self.durable(lsn)?;
        if let Some(wal) = self.0.log.get() {
            // Durable: a restart finds them gone, and the log may let their
            // records go.
            for key in &gone {
                wal.forget(wal_key(namespace, key));
            }
        }
        Ok(deleted)
    }

    /// Deletes every expired value (under the write lock); the bytes that
    /// frees. Their deletions become durable with the write that follows.
    fn drop_expired(&self, held: &mut Held, now: DateTime<Utc>) -> Result<usize, Error> {
        let expired: Vec<(String, String)> = held
            .entries
            .iter()
            .filter(|(_, e)| e.is_expired(now))
            .map(|(k, _)| k.clone())
            .collect();
        let mut freed = 0;
        for name in expired {
            if let Some(wal) = self.log()? {
                wal.append_terminal(GONE, wal_key(&name.0, &name.1), b"")
                    .map_err(|e| Error::Durability(e.to_string()))?;
            }
            if let Some(entry) = held.entries.remove(&name) {
                let bytes = size(&name.0, &name.1, &entry);
                held.bytes -= bytes;
                freed += bytes;
            }
        }
        Ok(freed)
    }

    fn durable(&self, lsn: Option<peregrine_wal::Lsn>) -> Result<(), Error> {
        match (self.0.log.get(), lsn) {
            (Some(wal), Some(lsn)) => wal
                .durable(lsn)
                .map_err(|e| Error::Durability(e.to_string())),
            _ => Ok(()),
        }
    }

    /// The keys of `namespace` with their entries, in key order; expired
    /// ones only with `expired`.
    pub fn list(
        &self,
        namespace: &str,
        now: DateTime<Utc>,
        expired: bool,
    ) -> Vec<(String, Arc<KvEntry>)> {
        let held = self.read();
        let from = (namespace.to_owned(), String::new());
        held.entries
            .range(from..)
            .take_while(|((ns, _), _)| ns == namespace)
            .filter(|(_, e)| expired || !e.is_expired(now))
            .map(|((_, k), e)| (k.clone(), Arc::clone(e)))
            .collect()
    }

    /// Every namespace that holds a key, in order.
    pub fn namespaces(&self) -> Vec<String> {
        let held = self.read();
        let mut out: Vec<String> = Vec::new();
        for (ns, _) in held.entries.keys() {
            if out.last() != Some(ns) {
                out.push(ns.clone());
            }
        }
        out
    }

    /// Bytes held (keys, namespaces, values and descriptions).
    pub fn bytes(&self) -> usize {
        self.read().bytes
    }
}

/// Kestra's `KVStore.validateKey`, with a length limit.
pub fn validate_key(key: &str) -> Result<(), Error> {
    let ok = key.len() <= MAX_KEY_BYTES
        && key.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadKey {
            key: key.chars().take(MAX_KEY_BYTES).collect(),
            max: MAX_KEY_BYTES,
        })
    }
}

fn validate_namespace(namespace: &str) -> Result<(), Error> {
    if crate::flow::is_valid_namespace(namespace) {
        Ok(())
    } else {
        Err(Error::BadNamespace(namespace.chars().take(200).collect()))
    }
}

/// Java's `Duration` pattern as Kestra's store matches it on read.
fn is_duration(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('P') else {
        return false;
    };
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    if days.is_empty() && time.is_none_or(str::is_empty) {
        return false;
    }
    let days_ok = days.is_empty()
        || days
            .strip_suffix('D')
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
    let time_ok = time.is_none_or(|t| {
        let mut rest = t;
        if rest.is_empty() {
            return false;
        }
        for unit in ['H', 'M', 'S'] {
            if let Some(at) = rest.find(unit) {
                if !rest[..at].chars().all(|c| c.is_ascii_digit()) {
                    return false;
                }
                rest = &rest[at + 1..];
            }
        }
        rest.is_empty()
    });
    days_ok && time_ok
}

/// An instant in ISO-8601 (with an offset, or a date alone at midnight UTC).
fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// What an entry counts against [`KvLimits::max_bytes`].
fn size(namespace: &str, key: &str, entry: &KvEntry) -> usize {
    // The value as JSON, the names, the description, and the entry itself.
    namespace.len()
        + key.len()
        + entry.value.value.to_string().len()
        + entry.description.as_ref().map_or(0, String::len)
        + std::mem::size_of::<KvEntry>()
}

fn wal_key(namespace: &str, key: &str) -> Key {
    let mut bytes = Vec::with_capacity(namespace.len() + key.len() + 24);
    for text in ["kv", namespace, key] {
        bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
    }
    Key::new(SPACE, ExecutionId::derive(&bytes).as_u128())
}

fn encode(namespace: &str, key: &str, e: &KvEntry) -> Value {
    json!({
        "namespace": namespace,
        "key": key,
        "type": e.value.kind.as_str(),
        "value": e.value.value,
        "description": e.description,
        "created": e.created.timestamp_micros(),
        "updated": e.updated.timestamp_micros(),
        "expires": e.expires.map(|at| at.timestamp_micros()),
        "revision": e.revision,
    })
}

fn decode(payload: &[u8]) -> Option<(String, String, KvEntry)> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let date = |k: &str| v.get(k)?.as_i64().and_then(DateTime::from_timestamp_micros);
    let entry = KvEntry {
        value: KvValue {
            kind: KvType::from_name(v.get("type")?.as_str()?)?,
            value: v.get("value")?.clone(),
        },
        description: text("description"),
        created: date("created")?,
        updated: date("updated")?,
        expires: date("expires"),
        revision: u32::try_from(v.get("revision")?.as_u64()?).ok()?,
    };
    Some((text("namespace")?, text("key")?, entry))
}

/// Kestra's glob (`*` any run, `?` one character), for `PurgeKV`'s
/// patterns.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // The classic two-pointer match with one backtrack point.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("a date")
    }

    fn wal_config() -> peregrine_wal::Config {
        peregrine_wal::Config {
            segment_bytes: std::num::NonZeroU64::new(4 << 20).expect("non-zero"),
            spare_segments: 0,
            terminal_retention: None,
            ..peregrine_wal::Config::default()
        }
    }

    fn open(dir: &std::path::Path) -> KvStore {
        let (wal, recovered) = Wal::open(dir, wal_config()).expect("opens");
        KvStore::from_log(wal, &recovered, KvLimits::default())
    }

    fn text(s: &str) -> KvValue {
        KvValue::untyped(json!(s))
    }

    #[test]
    fn values_writes_and_deletions_come_back_after_a_reopen() {
        let dir = tempfile::tempdir().expect("a dir");
        {
            let kv = open(dir.path());
            let meta = KvMeta {
                description: Some("the count".into()),
                ttl: None,
            };
            kv.put("a.b", "n", KvValue::untyped(json!(1)), meta, true, at(0))
                .expect("put");
            kv.put(
                "a.b",
                "n",
                KvValue::untyped(json!(2)),
                KvMeta::default(),
                true,
                at(5),
            )
            .expect("put again");
            kv.put("a.b", "gone", text("x"), KvMeta::default(), true, at(0))
                .expect("put");
            assert!(kv.delete("a.b", "gone", at(1)).expect("deleted"));
            assert!(!kv.delete("a.b", "gone", at(1)).expect("nothing left"));
            let ttl = KvMeta {
                description: None,
                ttl: Some(Duration::from_secs(60)),
            };
            kv.put("a", "brief", text("y"), ttl, true, at(0))
                .expect("put");
        }
        let kv = open(dir.path());
        let n = kv.get("a.b", "n", at(10)).expect("a key").expect("kept");
        assert_eq!(n.value, KvValue::untyped(json!(2)));
        // An overwrite keeps the creation date, not the description.
        assert_eq!(
            (n.created, n.updated, n.description.as_deref(), n.revision),
            (at(0), at(5), None, 2)
        );
        assert_eq!(kv.get("a.b", "gone", at(10)).expect("a key"), None);
        assert!(kv.get("a", "brief", at(59)).expect("a key").is_some());
        assert_eq!(
            kv.get("a", "brief", at(60)).expect("a key"),
            None,
            "expired"
        );
        assert_eq!(kv.namespaces(), ["a", "a.b"]);
        let listed: Vec<String> = kv
            .list("a.b", at(0), false)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(listed, ["n"]);
        assert_eq!(kv.list("a", at(61), false).len(), 0);
        assert_eq!(kv.list("a", at(61), true).len(), 1, "kept until purged");
    }

    #[test]
    fn a_deferred_log_is_made_at_the_first_write_and_read_back() {
        let dir = tempfile::tempdir().expect("a dir");
        let log = dir.path().join("kv");
        let kv = KvStore::deferred(log.clone(), wal_config(), KvLimits::default());
        assert!(kv.get("ns", "k", at(0)).expect("a key").is_none());
        assert!(!log.exists(), "nothing on disk before a write");
        kv.put("ns", "k", text("v"), KvMeta::default(), true, at(0))
            .expect("put");
        drop(kv);
        let kv = open(&log);
        assert_eq!(
            kv.get("ns", "k", at(0))
                .expect("a key")
                .expect("kept")
                .value,
            text("v")
        );
    }

    #[test]
    fn overwrite_false_refuses_a_held_key_but_not_an_expired_one() {
        let kv = KvStore::in_memory(KvLimits::default());
        let ttl = KvMeta {
            description: None,
            ttl: Some(Duration::from_secs(1)),
        };
        kv.put("ns", "k", text("a"), ttl, true, at(0)).expect("put");
        assert_eq!(
            kv.put("ns", "k", text("b"), KvMeta::default(), false, at(0)),
            Err(Error::Exists("k".into()))
        );
        kv.put("ns", "k", text("b"), KvMeta::default(), false, at(2))
            .expect("the old one expired");
        assert_eq!(
            kv.get("ns", "k", at(3)).expect("a key").expect("set").value,
            text("b")
        );
    }

    #[test]
    fn a_lookup_with_no_namespace_climbs_to_the_parents() {
        let kv = KvStore::in_memory(KvLimits::default());
        kv.put("company", "k", text("top"), KvMeta::default(), true, at(0))
            .expect("put");
        kv.put(
            "company.team",
            "k",
            text("team"),
            KvMeta::default(),
            true,
            at(0),
        )
        .expect("put");
        let found = |ns: &str| {
            kv.get_inherited(ns, "k", at(0))
                .expect("a key")
                .map(|(ns, e)| (ns, e.value.value.clone()))
        };
        assert_eq!(
            found("company.team.x"),
            Some(("company.team".into(), json!("team")))
        );
        assert_eq!(
            found("company.other"),
            Some(("company".into(), json!("top")))
        );
        assert_eq!(found("elsewhere"), None);
        // `companyx` is not a child of `company`.
        assert_eq!(found("companyx"), None);
    }

    #[test]
    fn keys_values_and_the_store_are_bounded() {
        let limits = KvLimits {
            max_value_bytes: 10,
            max_bytes: 2 * std::mem::size_of::<KvEntry>() + 40,
        };
        let kv = KvStore::in_memory(limits);
        for bad in ["", "-x", "a b", "ü", &"k".repeat(MAX_KEY_BYTES + 1)] {
            assert!(
                matches!(kv.get("ns", bad, at(0)), Err(Error::BadKey { .. })),
                "{bad:?} is refused"
            );
        }
        assert!(matches!(
            kv.put(
                "ns",
                "k",
                text("0123456789"),
                KvMeta::default(),
                true,
                at(0)
            ),
            Err(Error::TooLarge {
                bytes: 12,
                max: 10,
                ..
            })
        ));
        assert!(matches!(
            kv.put("bad ns", "k", text("x"), KvMeta::default(), true, at(0)),
            Err(Error::BadNamespace(_))
        ));
        kv.put("ns", "a", text("x"), KvMeta::default(), true, at(0))
            .expect("fits");
        kv.put("ns", "b", text("x"), KvMeta::default(), true, at(0))
            .expect("fits");
        assert!(matches!(
            kv.put("ns", "c", text("x"), KvMeta::default(), true, at(0)),
            Err(Error::Full { .. })
        ));
        // Replacing a value with one no larger always fits.
        kv.put("ns", "a", text("y"), KvMeta::default(), true, at(0))
            .expect("fits");
        kv.remove("ns", &["a".into(), "b".into()], at(0))
            .expect("removed");
        assert_eq!(kv.bytes(), 0);
    }

    #[test]
    fn values_are_typed_as_kestra_types_them() {
        let typed = |v: Value, t: Option<&str>| KvValue::typed(v, t).map(|v| v.json());
        assert_eq!(
            typed(json!("x"), None),
            Ok(json!({"type": "STRING", "value": "x"}))
        );
        assert_eq!(
            typed(json!("PT5M"), None),
            Ok(json!({"type": "DURATION", "value": "PT5M"}))
        );
        assert_eq!(
            typed(json!({"a": 1}), None),
            Ok(json!({"type": "JSON", "value": {"a": 1}}))
        );
        assert_eq!(
            typed(json!("12.5"), Some("NUMBER")),
            Ok(json!({"type": "NUMBER", "value": 12.5}))
        );
        assert_eq!(
            typed(json!("TRUE"), Some("BOOLEAN")),
            Ok(json!({"type": "BOOLEAN", "value": true}))
        );
        assert_eq!(
            typed(json!("2025-01-02T03:04:05+01:00"), Some("DATETIME")),
            Ok(json!({"type": "DATETIME", "value": "2025-01-02T02:04:05.000Z"}))
        );
        assert_eq!(
            typed(json!("[1,2]"), Some("JSON")),
            Ok(json!({"type": "JSON", "value": [1, 2]}))
        );
        assert!(typed(json!("x"), Some("NUMBER")).is_err());
        assert!(typed(json!("x"), Some("LIST")).is_err());
        // Not a text: kept as it is.
        assert_eq!(
            typed(json!(3), Some("STRING")),
            Ok(json!({"type": "NUMBER", "value": 3}))
        );
        let body = |b: &str| KvValue::parse_api_body(b).map(|v| v.json());
        assert_eq!(body("\"hi\""), Ok(json!({"type": "STRING", "value": "hi"})));
        assert_eq!(body("hi"), Ok(json!({"type": "STRING", "value": "hi"})));
        assert_eq!(body("42"), Ok(json!({"type": "NUMBER", "value": 42})));
        assert_eq!(
            body("2025-01-02T03:04:05Z"),
            Ok(json!({"type": "DATETIME", "value": "2025-01-02T03:04:05.000Z"}))
        );
        assert!(body("{not json").is_err());
        assert!(body("two words").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_matches("AI_*", "AI_key"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a?c*", "abcdef"));
        assert!(!glob_matches("AI_*", "xAI_"));
        assert!(glob_matches("*.team", "company.team"));
        assert!(!glob_matches("a*b", "acbx"));
    }
}
