//! The server's settings: a kebab-case YAML file, then `PEREGRINE_*`
//! environment variables, then command-line flags, each overriding the one
//! before. Every default is documented on its field; [`Config::check`]
//! rejects settings that contradict each other before anything starts.
//!
//! ```yaml
//! data-dir: ./data
//! server:
//!   bind: 127.0.0.1:8080
//!   request-body-limit: 10MiB
//!   basic-auth: { username: admin, password: secret }
//! executor:
//!   threads: 4
//! wal:
//!   durability: sync
//!   group-commit-delay: 2ms
//!   skip-damaged: false
//! executions:
//!   retention: 24h
//! kafka:
//!   commit-interval: 0ms
//!   properties: { fetch.wait.max.ms: "10" }
//! variables:
//!   env-vars-prefix: KESTRA_
//!   globals: { region: eu-west, limits: { retries: 3 } }
//! ```
//!
//! An environment variable names a key by its path in upper case with `_`
//! for both `.` and `-`: `PEREGRINE_WAL_GROUP_COMMIT_DELAY=2ms`,
//! `PEREGRINE_SERVER_BASIC_AUTH_PASSWORD=...`. `variables.globals` is read
//! from the file only.
//!
//! The environment variables whose name starts with
//! `variables.env-vars-prefix` are read once, by [`Config::load`], into
//! [`Config::envs`]: what flows read as `{{ envs.x }}`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A setting that cannot be used, with the key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config `{key}`: {message}")]
    Invalid { key: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything `peregrine server` reads at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Config {
    /// Where the WAL and stored flows live. Default: `./data`.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub executor: ExecutorConfig,
    pub wal: WalConfig,
    pub executions: ExecutionsConfig,
    pub expression: ExpressionConfig,
    pub kafka: KafkaConfig,
    pub variables: VariablesConfig,
    pub secrets: SecretsConfig,
    pub kv: KvConfig,
    pub logs: LogsConfig,
    pub storage: StorageConfig,
    pub scripts: ScriptsConfig,
    /// The environment variables flows read as `envs`, collected at load
    /// (`variables.env-vars-prefix`): not a setting, never printed.
    #[serde(skip)]
    pub envs: Envs,
    /// What `secret('NAME')` reads, collected at load: not a setting,
    /// never printed.
    #[serde(skip)]
    pub secret_values: Secrets,
}

/// Where `secret('NAME')` finds its values: as Kestra's open-source
/// edition, the environment variable `SECRET_NAME` (its value base64),
/// and, when set, a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// A YAML (or JSON) file mapping each secret's name to its value, as
    /// text (not base64); read at start. Its names win over the
    /// environment's. Default: none.
    pub file: Option<PathBuf>,
}

/// Kestra's KV store (`kv()`, the `kv.*` tasks, `/namespaces/{ns}/kv`):
/// held in memory, kept in `data/kv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct KvConfig {
    /// Size of one value, as JSON; at most 512KiB, what one step of an
    /// execution may read through `kv()`. Default: 512KiB.
    pub max_value_size: ByteSize,
    /// Size of everything the store holds (keys, values, descriptions).
    /// Default: 256MiB.
    pub max_size: ByteSize,
}

impl Default for KvConfig {
    fn default() -> Self {
        let limits = peregrine_engine::kv::KvLimits::default();
        Self {
            max_value_size: ByteSize(limits.max_value_bytes as u64),
            max_size: ByteSize(limits.max_bytes as u64),
        }
    }
}

impl KvConfig {
    pub fn limits(&self) -> peregrine_engine::kv::KvLimits {
        peregrine_engine::kv::KvLimits {
            max_value_bytes: usize::try_from(self.max_value_size.0).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(self.max_size.0).unwrap_or(usize::MAX),
        }
    }
}

/// The lines executions log, as the log API serves them: kept for
/// `wal.log-retention` in `data/logs`, and in memory for reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Memory the kept lines may take; past it the oldest executions'
    /// lines go first (they are no longer served). Default: 128MiB.
    pub max_memory: ByteSize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            max_memory: ByteSize(peregrine_engine::logs::LogLimits::default().max_bytes as u64),
        }
    }
}

/// The internal storage: executions' files under `data/storage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Size of one file: a FILE input's upload, a script's output file.
    /// Default: 1GiB.
    pub max_file_size: ByteSize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            max_file_size: ByteSize(1 << 30),
        }
    }
}

/// Script tasks (`scripts.*.Commands`, `Script`), on the process runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ScriptsConfig {
    /// Processes running at once, at most; a script past it waits, within
    /// its timeout, for one to end. Default: one per CPU, at least 2.
    pub max_processes: NonZeroUsize,
    /// What a script task that names a container image (or a Docker task
    /// runner) gets: `process` runs it on the process runner, with a
    /// warning at validation; `refuse` refuses the flow. Default: process.
    pub containers: Containers,
}

impl Default for ScriptsConfig {
    fn default() -> Self {
        Self {
            max_processes: std::thread::available_parallelism()
                .unwrap_or(NonZeroUsize::MIN)
                .max(nz(2)),
            containers: Containers::Process,
        }
    }
}

/// `scripts.containers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Containers {
    Process,
    Refuse,
}

/// Secrets by name (upper case).
#[derive(Clone, Default, PartialEq)]
pub struct Secrets(BTreeMap<String, String>);

/// Names only.
impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    /// `SECRET_*` of `env` (base64, line breaks ignored), then `file`'s.
    fn collect(config: &SecretsConfig, env: &[(OsString, OsString)]) -> Result<Secrets> {
        let mut out = BTreeMap::new();
        for (name, value) in env {
            let Some(name) = name.to_str().filter(|n| n.starts_with("SECRET_")) else {
                continue;
            };
            let decoded = value
                .to_str()
                .and_then(|v| decode_base64(&v.replace(['\n', '\r'], "")))
                .and_then(|bytes| String::from_utf8(bytes).ok());
            let Some(decoded) = decoded else {
                return Err(Error::Invalid {
                    key: "secrets".into(),
                    message: format!(
                        "the environment variable `{name}` is not base64 of UTF-8 text, as \
                         a secret's value must be (e.g. `echo -n value | base64`)"
                    ),
                });
            };
            out.insert(name["SECRET_".len()..].to_uppercase(), decoded);
        }
        if let Some(path) = &config.file {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            let doc = parse_yaml(&text).map_err(|message| Error::Syntax {
                path: path.clone(),
                message,
            })?;
            let Value::Object(map) = doc else {
                return Err(Error::Invalid {
                    key: "secrets.file".into(),
                    message: format!(
                        "{} must map each secret's name to its value",
                        path.display()
                    ),
                });
            };
            for (name, value) in map {
                let value = match value {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                out.insert(name.to_uppercase(), value);
            }
        }
        Ok(Secrets(out))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Standard base64 (padding optional); `None` if it is not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let text = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    Some(out)
}

/// The HTTP side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default: `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// Largest request body accepted (flows, inputs, webhook payloads);
    /// larger ones get 413. Default: 10 MiB.
    pub request_body_limit: ByteSize,
    /// How long SIGTERM waits for in-flight requests before closing them.
    /// Default: 30s.
    pub shutdown_timeout: TimeSpan,
    /// Interval of SSE keep-alive comments on `follow`. Default: 15s.
    pub sse_keep_alive: TimeSpan,
    /// Updates buffered per followed execution; a follower that falls this
    /// far behind is dropped rather than allowed to hold memory. Default: 64.
    pub sse_buffer: NonZeroUsize,
    /// Open connections; more wait in the kernel's backlog until one
    /// closes. Default: 10000.
    pub max_connections: NonZeroUsize,
    /// Longest a client may take to send a request's head (request line
    /// and headers): from its connection's accept, or on a keep-alive
    /// connection from the first byte of the next request. A slower one is
    /// closed without an answer, so that sockets which send nothing cannot
    /// hold every connection slot. Default: 10s.
    pub header_timeout: TimeSpan,
    /// Largest request head (request line and headers) accepted; a larger
    /// one, or one of more than 100 header fields, gets 431 and its
    /// connection is closed. Default: 64 KiB.
    pub max_header_size: ByteSize,
    /// Longest a client may take to send a request's whole body once its
    /// head is in; a body that stalls gets 408 and its connection is
    /// closed. Large bodies over slow links need more. Default: 60s.
    pub body_timeout: TimeSpan,
    /// How long a keep-alive connection with no request in flight waits
    /// for the next request before it is closed. Default: 60s.
    pub idle_timeout: TimeSpan,
    /// Concurrent `follow` streams; more get 503. Default: 10000.
    pub max_followers: NonZeroUsize,
    /// Kestra-style basic auth on every `/api` route. Default: none.
    pub basic_auth: Option<BasicAuth>,
}

/// One user allowed in with HTTP basic auth.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// The sharded executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// Shard threads. Default: one per CPU.
    pub threads: Option<NonZeroUsize>,
    /// Messages each shard's inbox holds; a full inbox answers 429.
    /// Default: 4096.
    pub inbox_capacity: NonZeroUsize,
    /// Messages a shard handles between publishing changes. Default: 256.
    pub batch: NonZeroUsize,
    /// Threads for blocking tasks (HTTP calls). Default: 8.
    pub workers: NonZeroUsize,
    /// Blocking jobs queued for the workers before shards hold them back.
    /// Default: 4096.
    pub work_queue: NonZeroUsize,
    /// Executions created but not ended, across all shards. Past it, new
    /// executions get 429: sleeping executions hold memory, and the inbox
    /// bound alone does not limit them. Default: 100000.
    pub max_running: NonZeroUsize,
    /// Longest a new execution may wait in its shard's queue: while work
    /// there waits longer, new executions get 429 at once (load shedding)
    /// instead of joining the queue. Default: 1s.
    pub queueing_budget: TimeSpan,
}

/// How the write-ahead log makes changes durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct WalConfig {
    /// `sync` (fsync before acknowledging), `interval` (fsync every
    /// `fsync-interval`, acknowledging before) or `none` (tests only).
    /// Default: `sync`.
    pub durability: Durability,
    /// Longest the flusher waits for more appends to share an fsync: the
    /// latency/throughput knob. Default: 0ms (sync at once; appends that
    /// arrive during a sync share the next, so batches still grow with load).
    pub group_commit_delay: TimeSpan,
    /// Only with `durability: interval`: how often to fsync. Default (in that
    /// mode): 100ms.
    pub fsync_interval: Option<TimeSpan>,
    /// Size of the largest preallocated segment file. Default: 64 MiB.
    pub segment_size: ByteSize,
    /// Size of a log's first segment after each start; each later segment
    /// doubles the one before (and holds the record that starts it) up to
    /// `segment-size`, so a log hardly used holds one small file. Default:
    /// 1 MiB; `segment-size` or more preallocates full segments from the
    /// start.
    pub first_segment_size: ByteSize,
    /// Largest record (a flow's source, an execution's state). Default:
    /// 16 MiB: room for a request body at its limit, and at most half a
    /// segment.
    pub max_record_size: ByteSize,
    /// How long high-volume log records are kept. Default: 1h.
    pub log_retention: TimeSpan,
    /// Start even though a log (a shard's WAL, the flows log) is damaged:
    /// drop what is unreadable, keep the rest, and log at ERROR every
    /// execution lost or left incomplete (`--skip-damaged-wal` sets it for
    /// one start). The loss is recorded in the log's manifest, so later
    /// starts need no flag. Without it, damage refuses the start, naming
    /// the file and the offset. A torn tail (the unsynced end of the last
    /// segment after a crash) is never damage. Default: false.
    pub skip_damaged: bool,
    /// How appends reach the segment files: `mapped` (copied into a shared
    /// map, synced with msync) or `pwrite` (written with pwrite, synced
    /// with fdatasync). Default: `mapped`.
    pub writes: Writes,
}

/// `wal.writes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Writes {
    #[default]
    Mapped,
    Pwrite,
}

/// `wal.durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    Sync,
    Interval,
    None,
}

/// Finished executions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ExecutionsConfig {
    /// How long a finished execution stays readable (GET, search).
    /// Default: 24h.
    pub retention: TimeSpan,
    /// Finished executions kept in memory at most (what search sees),
    /// oldest first out, whatever their age; the others are read from disk
    /// by id. Default: 100000.
    pub max_finished: NonZeroUsize,
    /// Finished executions kept on disk at most, oldest dropped first,
    /// whatever their age; each costs about 230 bytes of memory in the
    /// WAL's index. Default: 800000.
    pub max_retained: NonZeroU64,
    /// Disk the final states of finished executions may take, oldest
    /// dropped first, whatever their age. Default: 1 GiB (less on a small
    /// disk).
    pub retention_size: ByteSize,
    /// Task runs one execution may create; a flowable task that would go
    /// past it fails before it starts its children. Default: 10000.
    pub max_task_runs: NonZeroU32,
    /// Size of one task run's outputs, as JSON; larger outputs fail the
    /// task run that made them. Default: 1 MiB.
    pub max_outputs_size: ByteSize,
    /// Size of an execution's final state (its journal record, which spans
    /// several WAL records past `wal.max-record-size`); a larger one is cut
    /// down and the execution fails, saying so. At most half of
    /// `wal.segment-size`, which is the default (32 MiB).
    pub max_final_size: Option<ByteSize>,
}

/// What one evaluation of an expression may spend (Pebble with the jq it
/// calls, JSONata). Past a budget the task run fails, saying which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ExpressionConfig {
    /// Evaluation steps of one render (a runaway jq program used 10
    /// million in 0.3 to 0.4 s here), and of one JSONata evaluation, one
    /// per allocation (10 million in about 1 s). Default: 10000000.
    pub max_steps: u64,
    /// Size of one rendered value, of a jq program's outputs or of a
    /// JSONata result, as JSON. Default: 16 MiB.
    pub max_output_size: ByteSize,
    /// Heap a jq program or a JSONata evaluation may hold while it runs.
    /// Default: 256 MiB.
    pub max_memory: ByteSize,
    /// Wall-clock time of one JSONata evaluation: a backstop to its steps,
    /// well above what they take. Default: 10s.
    pub max_time: TimeSpan,
}

impl Default for ExpressionConfig {
    fn default() -> Self {
        let budget = peregrine_engine::expression::Budget::default();
        Self {
            max_steps: budget.steps,
            max_output_size: ByteSize(budget.output_bytes as u64),
            max_memory: ByteSize(budget.memory_bytes as u64),
            max_time: TimeSpan(budget.time),
        }
    }
}

/// Kafka realtime triggers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// How long a consumer may wait before committing the offsets of
    /// messages whose executions are durably created: 0 commits at once
    /// (the smallest redelivery after a node dies); longer batches commits
    /// and lightens the broker's load. Default: 0ms.
    pub commit_interval: TimeSpan,
    /// librdkafka properties for every trigger's consumer, under the
    /// flow's own `properties`. Default: none (Peregrine's latency
    /// defaults apply: `fetch.wait.max.ms` 10).
    pub properties: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            commit_interval: TimeSpan::millis(0),
            properties: std::collections::BTreeMap::new(),
        }
    }
}

/// What flows read besides their own values: Kestra's `kestra.variables`
/// (`{{ envs.x }}`, `{{ globals.x }}`). Both are read at start and are not
/// journaled: an execution in flight across a restart renders with those
/// of the process that resumes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct VariablesConfig {
    /// The server's environment variables whose name starts with this are
    /// `envs` in flows, named without it and in lower case (`KESTRA_MY_VAR`
    /// is `{{ envs.my_var }}`), their values as text. It may be neither
    /// empty (every variable would reach every flow) nor overlap
    /// `PEREGRINE_` (the server's own settings, a password among them).
    /// Default: `KESTRA_`, Kestra's (until its 0.23, which took `ENV_`).
    pub env_vars_prefix: String,
    /// Environment variables never shown as `envs`, prefix or not.
    /// Default: Kestra's, its own configuration: `KESTRA_PLUGINS_PATH`,
    /// `KESTRA_CONFIGURATION_PATH`, `KESTRA_CONFIGURATION`.
    pub redacted_env_vars: Vec<String>,
    /// `globals` in flows: a mapping, nested as deep as wanted (lists
    /// too), from the config file only. Keys are written as flows read
    /// them: Kestra changes a key with capitals (`myVar` is read as
    /// `my-var`) and nests a dotted one, so both are refused. With the
    /// envs, at most 256 KiB as JSON. Default: none.
    pub globals: serde_json::Map<String, Value>,
}

impl Default for VariablesConfig {
    fn default() -> Self {
        Self {
            env_vars_prefix: "KESTRA_".into(),
            redacted_env_vars: [
                "KESTRA_PLUGINS_PATH",
                "KESTRA_CONFIGURATION_PATH",
                "KESTRA_CONFIGURATION",
            ]
            .map(String::from)
            .to_vec(),
            globals: serde_json::Map::new(),
        }
    }
}

/// Environment variables as flows read them (`envs`): by name without the
/// prefix, in lower case.
#[derive(Clone, Default, PartialEq)]
pub struct Envs(BTreeMap<String, String>);

impl Envs {
    /// Those of `env` that `variables` shows to flows. Refuses what
    /// cannot be shown faithfully: a variable with the prefix that is not
    /// UTF-8 text, and two that lower-case to the same name (where Kestra
    /// fails its start too).
    fn collect(variables: &VariablesConfig, env: &[(OsString, OsString)]) -> Result<Envs> {
        let prefix = variables.env_vars_prefix.as_str();
        let mut by_key: BTreeMap<String, (&str, String)> = BTreeMap::new();
        for (name, value) in env {
            if !name.as_encoded_bytes().starts_with(prefix.as_bytes()) {
                continue;
            }
            let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
                return Err(Error::Invalid {
                    key: "variables.env-vars-prefix".into(),
                    message: format!(
                        "the environment variable `{}` has the prefix `{prefix}` but is not \
                         UTF-8 text, which flows read `envs` as; rename or unset it",
                        name.to_string_lossy()
                    ),
                });
            };
            if variables.redacted_env_vars.iter().any(|r| r == name) {
                continue;
            }
            // `name` starts with `prefix`, a whole UTF-8 string: a boundary.
            let key = name[prefix.len()..].to_lowercase();
            if let Some((other, _)) = by_key.get(&key) {
                return Err(Error::Invalid {
                    key: "variables.env-vars-prefix".into(),
                    message: format!(
                        "the environment variables `{other}` and `{name}` would both be \
                         `envs.{key}`; unset one"
                    ),
                });
            }
            by_key.insert(key, (name, value.to_owned()));
        }
        Ok(Envs(by_key.into_iter().map(|(k, (_, v))| (k, v)).collect()))
    }

    /// By name as flows read it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Names only: environment variables often carry secrets.
impl fmt::Debug for Envs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// The first key inside `value` (a part of `variables.globals` at `path`)
/// that flows could not read as written, with why.
fn unreadable_global_key(path: &str, value: &Value) -> Option<(String, &'static str)> {
    match value {
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let at = format!("{path}.{k}");
            if k.chars().any(char::is_uppercase) {
                Some((
                    at,
                    "Kestra reads a key with capitals hyphenated (`myVar` as `my-var`); \
                     write it in lower case, as flows will read it",
                ))
            } else if k.contains('.') {
                Some((
                    at,
                    "Kestra reads a dotted key as nested mappings; write them nested",
                ))
            } else {
                unreadable_global_key(&at, v)
            }
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| unreadable_global_key(&format!("{path}[{i}]"), v)),
        _ => None,
    }
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            server: ServerConfig::default(),
            executor: ExecutorConfig::default(),
            wal: WalConfig::default(),
            executions: ExecutionsConfig::default(),
            expression: ExpressionConfig::default(),
            kafka: KafkaConfig::default(),
            variables: VariablesConfig::default(),
            secrets: SecretsConfig::default(),
            kv: KvConfig::default(),
            logs: LogsConfig::default(),
            storage: StorageConfig::default(),
            scripts: ScriptsConfig::default(),
            envs: Envs::default(),
            secret_values: Secrets::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_body_limit: ByteSize(10 << 20),
            shutdown_timeout: TimeSpan::secs(30),
            sse_keep_alive: TimeSpan::secs(15),
            sse_buffer: nz(64),
            max_connections: nz(10_000),
            header_timeout: TimeSpan::secs(10),
            max_header_size: ByteSize(64 << 10),
            body_timeout: TimeSpan::secs(60),
            idle_timeout: TimeSpan::secs(60),
            max_followers: nz(10_000),
            basic_auth: None,
        }
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            threads: None,
            inbox_capacity: nz(4096),
            batch: nz(256),
            workers: nz(8),
            work_queue: nz(4096),
            max_running: nz(100_000),
            queueing_budget: TimeSpan::secs(1),
        }
    }
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Sync,
            group_commit_delay: TimeSpan::millis(0),
            fsync_interval: None,
            segment_size: ByteSize(64 << 20),
            first_segment_size: ByteSize(1 << 20),
            max_record_size: ByteSize(16 << 20),
            log_retention: TimeSpan::secs(3600),
            skip_damaged: false,
            writes: Writes::Mapped,
        }
    }
}

impl Default for ExecutionsConfig {
    fn default() -> Self {
        Self {
            retention: TimeSpan::secs(24 * 3600),
            max_finished: nz(100_000),
            max_retained: NonZeroU64::new(800_000).unwrap_or(NonZeroU64::MIN),
            retention_size: ByteSize(1 << 30),
            max_task_runs: NonZeroU32::new(peregrine_engine::Limits::DEFAULT_MAX_TASK_RUNS)
                .unwrap_or(NonZeroU32::MIN),
            max_outputs_size: ByteSize(peregrine_engine::Limits::DEFAULT_MAX_OUTPUTS_BYTES as u64),
            max_final_size: None,
        }
    }
}

/// The largest segment size the WAL in `dir` was written with, if it has
/// segments (their files may be smaller: segments grow up to it).
fn existing_segment_size(dir: &Path) -> Option<u64> {
    peregrine_wal::segment_bytes_of(dir)
}

/// Every key a `PEREGRINE_*` variable can set, and whether its value is
/// taken as text as is (names, passwords) rather than read as a YAML scalar.
const KEYS: &[(&str, bool)] = &[
    ("data-dir", true),
    ("server.bind", true),
    ("server.request-body-limit", false),
    ("server.shutdown-timeout", false),
    ("server.sse-keep-alive", false),
    ("server.sse-buffer", false),
    ("server.max-connections", false),
    ("server.header-timeout", false),
    ("server.max-header-size", false),
    ("server.body-timeout", false),
    ("server.idle-timeout", false),
    ("server.max-followers", false),
    ("server.basic-auth.username", true),
    ("server.basic-auth.password", true),
    ("executor.threads", false),
    ("executor.inbox-capacity", false),
    ("executor.batch", false),
    ("executor.workers", false),
    ("executor.work-queue", false),
    ("executor.max-running", false),
    ("executor.queueing-budget", false),
    ("wal.durability", true),
    ("wal.group-commit-delay", false),
    ("wal.fsync-interval", false),
    ("wal.segment-size", false),
    ("wal.first-segment-size", false),
    ("wal.max-record-size", false),
    ("wal.log-retention", false),
    ("wal.skip-damaged", false),
    ("wal.writes", false),
    ("executions.retention", false),
    ("executions.max-finished", false),
    ("executions.max-retained", false),
    ("executions.retention-size", false),
    ("executions.max-task-runs", false),
    ("executions.max-outputs-size", false),
    ("executions.max-final-size", false),
    ("expression.max-steps", false),
    ("expression.max-output-size", false),
    ("expression.max-memory", false),
    ("expression.max-time", false),
    ("kafka.commit-interval", false),
    ("variables.env-vars-prefix", true),
    ("variables.redacted-env-vars", false),
    ("secrets.file", true),
    ("kv.max-value-size", false),
    ("kv.max-size", false),
    ("logs.max-memory", false),
    ("storage.max-file-size", false),
    ("scripts.max-processes", false),
    ("scripts.containers", true),
];

/// The environment variable that sets `key`.
pub fn env_name(key: &str) -> String {
    let mut name = String::from("PEREGRINE_");
    name.extend(key.chars().map(|c| match c {
        '.' | '-' => '_',
        c => c.to_ascii_uppercase(),
    }));
    name
}

/// Values set on the command line; they win over the file and the
/// environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub bind: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    /// `--skip-damaged-wal`: sets `wal.skip-damaged`.
    pub skip_damaged_wal: bool,
}

impl Config {
    /// Defaults, then `file`, then the `PEREGRINE_*` variables of `env`
    /// (the process's environment), then `overrides`; checked. The
    /// variables of `env` with `variables.env-vars-prefix` become
    /// [`Config::envs`].
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (OsString, OsString)>,
        overrides: &Overrides,
    ) -> Result<Config> {
        let env: Vec<(OsString, OsString)> = env.into_iter().collect();
        let mut tree = serde_json::to_value(Config::default()).map_err(|e| Error::Invalid {
            key: String::new(),
            message: e.to_string(),
        })?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.to_owned(),
                source,
            })?;
            let doc = parse_yaml(&text).map_err(|message| Error::Syntax {
                path: path.to_owned(),
                message,
            })?;
            match doc {
                Value::Null => {}
                Value::Object(_) => merge(&mut tree, doc),
                _ => {
                    return Err(Error::Syntax {
                        path: path.to_owned(),
                        message: "the config must be a mapping".into(),
                    });
                }
            }
        }
        for (name, value) in &env {
            let Some(name) = name.to_str().filter(|n| n.starts_with("PEREGRINE_")) else {
                continue;
            };
            if name.starts_with(&env_name("variables.globals")) {
                return Err(Error::Invalid {
                    key: "variables.globals".into(),
                    message: format!(
                        "is read from the config file only ({name} cannot say how its name nests)"
                    ),
                });
            }
            let Some((key, verbatim)) = KEYS.iter().find(|(k, _)| env_name(k) == name) else {
                if name != "PEREGRINE_CONFIG" {
                    tracing::warn!("{name} is not a peregrine setting; ignored");
                }
                continue;
            };
            let Some(value) = value.to_str().map(str::to_owned) else {
                return Err(Error::Invalid {
                    key: (*key).into(),
                    message: format!("{name} is not UTF-8 text"),
                });
            };
            let value = if *verbatim {
                Value::String(value)
            } else {
                parse_yaml(&value).unwrap_or(Value::String(value))
            };
            set(&mut tree, key, value);
        }
        if let Some(bind) = overrides.bind {
            set(&mut tree, "server.bind", Value::String(bind.to_string()));
        }
        if let Some(dir) = &overrides.data_dir {
            set(
                &mut tree,
                "data-dir",
                Value::String(dir.to_string_lossy().into_owned()),
            );
        }
        if overrides.skip_damaged_wal {
            set(&mut tree, "wal.skip-damaged", Value::Bool(true));
        }
        let mut config: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            Error::Invalid {
                key: if key == "." { String::new() } else { key },
                message: e.into_inner().to_string(),
            }
        })?;
        config.check()?;
        config.envs = Envs::collect(&config.variables, &env)?;
        config.secret_values = Secrets::collect(&config.secrets, &env)?;
        config.engine_variables()?;
        Ok(config)
    }

    /// What the engine's templates read as `envs` and `globals`; refused
    /// when too large together.
    pub fn engine_variables(&self) -> Result<peregrine_engine::ConfigVariables> {
        peregrine_engine::ConfigVariables::new(self.envs.0.clone(), self.variables.globals.clone())
            .map(|v| v.with_secrets(self.secret_values.0.clone()))
            .map_err(|e| Error::Invalid {
                key: "variables".into(),
                message: format!(
                    "{e}: {} envs (variables.env-vars-prefix `{}`) and variables.globals",
                    self.envs.len(),
                    self.variables.env_vars_prefix
                ),
            })
    }

    /// What the metric store keeps: an execution's metrics as long as the
    /// execution.
    pub fn metric_limits(&self) -> peregrine_engine::metric_store::MetricLimits {
        peregrine_engine::metric_store::MetricLimits {
            retention: self.executions.retention.0,
            ..Default::default()
        }
    }

    /// What the log store keeps.
    pub fn log_limits(&self) -> peregrine_engine::logs::LogLimits {
        peregrine_engine::logs::LogLimits {
            retention: self.wal.log_retention.0,
            max_bytes: usize::try_from(self.logs.max_memory.0).unwrap_or(usize::MAX),
            follow_buffer: self.server.sse_buffer.get(),
        }
    }

    /// Shard threads, resolving the per-CPU default.
    pub fn threads(&self) -> NonZeroUsize {
        self.executor
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN))
    }

    /// The WAL settings of the engine's shards and of the flows' log.
    pub fn wal_config(&self) -> peregrine_wal::Config {
        let defaults = peregrine_wal::Config::default();
        peregrine_wal::Config {
            segment_bytes: std::num::NonZeroU64::new(self.wal.segment_size.0)
                .unwrap_or(defaults.segment_bytes),
            first_segment_bytes: std::num::NonZeroU64::new(self.wal.first_segment_size.0)
                .unwrap_or(defaults.first_segment_bytes),
            max_record_bytes: u32::try_from(self.wal.max_record_size.0)
                .ok()
                .and_then(std::num::NonZeroU32::new)
                .unwrap_or(defaults.max_record_bytes),
            sync: match self.wal.durability {
                Durability::Sync => peregrine_wal::SyncMode::Sync,
                Durability::Interval => peregrine_wal::SyncMode::Interval(
                    self.fsync_interval().unwrap_or(Duration::from_millis(100)),
                ),
                Durability::None => peregrine_wal::SyncMode::None,
            },
            group_commit_delay: match self.wal.durability {
                Durability::Sync => self.wal.group_commit_delay.0,
                Durability::Interval | Durability::None => Duration::ZERO,
            },
            terminal_retention: Some(self.executions.retention.0),
            log_retention: self.wal.log_retention.0,
            skip_damaged: self.wal.skip_damaged,
            writes: match self.wal.writes {
                Writes::Mapped => peregrine_wal::Writes::Mapped,
                Writes::Pwrite => peregrine_wal::Writes::Pwrite,
            },
            ..defaults
        }
    }

    /// On a fresh data folder whose disk cannot hold the WAL's preallocated
    /// segments at the default size (each shard's active one and its
    /// spares, and the flows log's) with half the disk to spare, smaller
    /// segments, and records and bodies that fit them; on a data folder
    /// made that way, the size its segments have. Returns what changed, to
    /// be logged; `None` when nothing did. A segment size set by the
    /// operator is kept (a start that cannot preallocate it fails, saying
    /// so).
    pub fn fit_to_disk(&mut self, free: u64) -> Option<String> {
        // Finished executions may take a quarter of what is free at most,
        // unless the operator said otherwise.
        let mut notes = Vec::new();
        if self.executions.retention_size == ExecutionsConfig::default().retention_size
            && self.executions.retention_size.0 > free / 4
        {
            self.executions.retention_size = ByteSize(free / 4);
            notes.push(format!(
                "finished executions keep up to {} on disk (not {}): the disk has {} free",
                self.executions.retention_size,
                ExecutionsConfig::default().retention_size,
                ByteSize(free)
            ));
        }
        let segments = self.fit_segments_to_disk(free);
        notes.extend(segments);
        (!notes.is_empty()).then(|| notes.join("; "))
    }

    /// Why a fresh data folder cannot start on a disk with `free` bytes: the
    /// operator's segment size is more than the disk holds, so the logs,
    /// whose segments grow up to it, would fill it before their first full
    /// segment. A data folder that has logs starts whatever is free (a full
    /// disk then refuses new work, and what was accepted still runs).
    pub fn refuse_disk(&self, free: u64) -> Option<String> {
        let segment = self.wal.segment_size.0;
        (segment > free && existing_segment_size(&self.data_dir.join("flows")).is_none()).then(
            || {
                format!(
                    "disk full: wal.segment-size ({}) is more than the disk has free ({}); the logs' segments grow up to it",
                    self.wal.segment_size,
                    ByteSize(free)
                )
            },
        )
    }

    fn fit_segments_to_disk(&mut self, free: u64) -> Option<String> {
        let default = WalConfig::default().segment_size;
        if self.wal.segment_size != default {
            return None;
        }
        let (segment, why) = match existing_segment_size(&self.data_dir.join("flows")) {
            Some(size) if size == default.0 => return None,
            Some(size) => (size, "the data folder's segments have that size".to_owned()),
            None => {
                let spares = peregrine_wal::Config::default().spare_segments as u64;
                let files = self.threads().get() as u64 * (1 + spares) + 1;
                let budget = free / 2;
                if default.0.saturating_mul(files) <= budget {
                    return None;
                }
                let fits = budget / files;
                if fits < 1 << 20 {
                    // Not even 1 MiB segments fit: the start fails, saying so.
                    return None;
                }
                let why = format!("the disk has {} free", ByteSize(free));
                (1u64 << (63 - fits.leading_zeros()), why)
            }
        };
        let before = (
            self.wal.segment_size,
            self.wal.max_record_size,
            self.server.request_body_limit,
            self.max_final_size(),
        );
        self.wal.segment_size = ByteSize(segment);
        self.wal.max_record_size = ByteSize(self.wal.max_record_size.0.min(segment / 2));
        self.server.request_body_limit = ByteSize(
            self.server
                .request_body_limit
                .0
                .min(self.wal.max_record_size.0),
        );
        self.executions.max_outputs_size = ByteSize(
            self.executions
                .max_outputs_size
                .0
                .min(self.wal.max_record_size.0),
        );
        Some(format!(
            "WAL segments of {} (not {}), records up to {} (not {}), request bodies up to {} \
             (not {}), final states up to {} (not {}): {why}",
            self.wal.segment_size,
            before.0,
            self.wal.max_record_size,
            before.1,
            self.server.request_body_limit,
            before.2,
            self.max_final_size(),
            before.3
        ))
    }

    /// The largest final state: as set, or half a WAL segment.
    pub fn max_final_size(&self) -> ByteSize {
        self.executions
            .max_final_size
            .unwrap_or(ByteSize(self.wal.segment_size.0 / 2))
    }

    /// What each of the engine's executions may spend.
    pub fn limits(&self) -> peregrine_engine::Limits {
        peregrine_engine::Limits {
            expression: self.budget(),
            max_task_runs: self.executions.max_task_runs.get(),
            max_outputs_bytes: usize::try_from(self.executions.max_outputs_size.0)
                .unwrap_or(usize::MAX),
            max_final_bytes: usize::try_from(self.max_final_size().0).unwrap_or(usize::MAX),
            // A step may read through `kv()` one value of the largest size
            // (with its key and namespace).
            max_step_reads_bytes: usize::try_from(self.kv.max_value_size.0)
                .unwrap_or(usize::MAX)
                .saturating_add(1 << 10),
            max_job_log_bytes: peregrine_engine::Limits::default().max_job_log_bytes,
        }
    }

    /// The expression budgets of the engine's executions.
    pub fn budget(&self) -> peregrine_engine::expression::Budget {
        peregrine_engine::expression::Budget {
            steps: self.expression.max_steps,
            output_bytes: usize::try_from(self.expression.max_output_size.0).unwrap_or(usize::MAX),
            memory_bytes: usize::try_from(self.expression.max_memory.0).unwrap_or(usize::MAX),
            time: self.expression.max_time.0,
        }
    }

    /// The fsync interval in force: `Some` only in `interval` mode.
    pub fn fsync_interval(&self) -> Option<Duration> {
        match self.wal.durability {
            Durability::Interval => Some(
                self.wal
                    .fsync_interval
                    .map_or(Duration::from_millis(100), |s| s.0),
            ),
            Durability::Sync | Durability::None => None,
        }
    }

    /// Rejects settings that cannot work, or that contradict each other.
    pub fn check(&self) -> Result<()> {
        fn invalid(key: &str, message: impl Into<String>) -> Result<()> {
            Err(Error::Invalid {
                key: key.into(),
                message: message.into(),
            })
        }
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data-dir", "must not be empty");
        }
        let body = self.server.request_body_limit.0;
        if !(1024..=1 << 30).contains(&body) {
            return invalid(
                "server.request-body-limit",
                format!("{body} bytes is outside 1KiB..=1GiB"),
            );
        }
        let budget = self.executor.queueing_budget.0;
        if budget < Duration::from_millis(1) || budget > Duration::from_secs(600) {
            return invalid("executor.queueing-budget", "outside 1ms..=10m");
        }
        if self.executions.max_task_runs.get() > 10_000_000 {
            return invalid("executions.max-task-runs", "at most 10000000");
        }
        let outputs = self.executions.max_outputs_size.0;
        if outputs < 1024 || outputs > self.wal.max_record_size.0 {
            return invalid(
                "executions.max-outputs-size",
                format!(
                    "{outputs} bytes is outside 1KiB..={} (wal.max-record-size)",
                    self.wal.max_record_size
                ),
            );
        }
        if !(1_000..=1_000_000_000_000).contains(&self.expression.max_steps) {
            return invalid("expression.max-steps", "outside 1000..=1000000000000");
        }
        let output = self.expression.max_output_size.0;
        if !(1024..=1 << 30).contains(&output) {
            return invalid(
                "expression.max-output-size",
                format!("{output} bytes is outside 1KiB..=1GiB"),
            );
        }
        let memory = self.expression.max_memory.0;
        if !(1 << 20..=1 << 36).contains(&memory) {
            return invalid(
                "expression.max-memory",
                format!("{memory} bytes is outside 1MiB..=64GiB"),
            );
        }
        let time = self.expression.max_time.0;
        if time < Duration::from_millis(1) || time > Duration::from_secs(600) {
            return invalid("expression.max-time", "outside 1ms..=10m");
        }
        if self.server.shutdown_timeout.0 > Duration::from_secs(600) {
            return invalid("server.shutdown-timeout", "at most 10m");
        }
        if self.server.sse_keep_alive.0 < Duration::from_secs(1) {
            return invalid("server.sse-keep-alive", "at least 1s");
        }
        if self.server.sse_buffer.get() > 65_536 {
            return invalid("server.sse-buffer", "at most 65536 updates");
        }
        if self.server.max_connections.get() > 1_000_000 {
            return invalid("server.max-connections", "at most 1000000");
        }
        // A zero timeout would close every connection at once; the upper
        // bounds catch a unit slip (`10h` for `10s`) that would let idle
        // sockets hold their slots all day.
        let server = &self.server;
        for (key, span, max_secs) in [
            ("server.header-timeout", server.header_timeout, 600),
            ("server.body-timeout", server.body_timeout, 3600),
            ("server.idle-timeout", server.idle_timeout, 3600),
        ] {
            let max = TimeSpan::secs(max_secs);
            if span < TimeSpan::millis(1) || span > max {
                return invalid(key, format!("{span} is outside 1ms..={max}"));
            }
        }
        // hyper's read buffer holds at most ~408 KiB, which would cut a
        // head before a larger limit did.
        let head = self.server.max_header_size.0;
        if !(1 << 10..=256 << 10).contains(&head) {
            return invalid(
                "server.max-header-size",
                format!("{head} bytes is outside 1KiB..=256KiB"),
            );
        }
        if self.server.max_followers > self.server.max_connections {
            return invalid(
                "server.max-followers",
                format!(
                    "{} follow streams cannot be open over {} connections (server.max-connections)",
                    self.server.max_followers, self.server.max_connections
                ),
            );
        }
        if let Some(auth) = &self.server.basic_auth {
            if auth.username.is_empty() || auth.username.contains(':') {
                return invalid(
                    "server.basic-auth.username",
                    "must be non-empty and without `:`",
                );
            }
            if auth.password.is_empty() {
                return invalid(
                    "server.basic-auth.password",
                    "must be non-empty when basic auth is on",
                );
            }
        }
        if self.executor.threads.is_some_and(|t| t.get() > 1024) {
            return invalid("executor.threads", "at most 1024");
        }
        if self.executor.inbox_capacity.get() > 1 << 24 {
            return invalid("executor.inbox-capacity", "at most 16777216");
        }
        if self.executor.workers.get() > 1024 {
            return invalid("executor.workers", "at most 1024");
        }
        if self.executor.work_queue.get() > 1 << 24 {
            return invalid("executor.work-queue", "at most 16777216");
        }
        if self.executor.batch > self.executor.inbox_capacity {
            return invalid(
                "executor.batch",
                format!(
                    "{} is larger than executor.inbox-capacity ({})",
                    self.executor.batch, self.executor.inbox_capacity
                ),
            );
        }
        if self.wal.group_commit_delay.0 > Duration::from_secs(1) {
            return invalid("wal.group-commit-delay", "at most 1s");
        }
        match (self.wal.durability, self.wal.fsync_interval) {
            (Durability::Interval, Some(i)) if i.0.is_zero() || i.0 > Duration::from_secs(60) => {
                return invalid("wal.fsync-interval", "must be within 1ms..=60s");
            }
            (Durability::Sync | Durability::None, Some(_)) => {
                return invalid(
                    "wal.fsync-interval",
                    format!(
                        "applies only to `durability: interval`, but durability is `{}`",
                        self.wal.durability.as_str()
                    ),
                );
            }
            _ => {}
        }
        let segment = self.wal.segment_size.0;
        if !(1 << 20..=1 << 32).contains(&segment) || !segment.is_multiple_of(4096) {
            return invalid(
                "wal.segment-size",
                format!("{segment} bytes: must be a multiple of 4KiB within 1MiB..=4GiB"),
            );
        }
        let first = self.wal.first_segment_size.0;
        if first < 64 << 10 || !first.is_multiple_of(4096) {
            return invalid(
                "wal.first-segment-size",
                format!("{first} bytes: must be a multiple of 4KiB, at least 64KiB"),
            );
        }
        let record = self.wal.max_record_size.0;
        if record < 4096 || record > segment / 2 {
            return invalid(
                "wal.max-record-size",
                format!(
                    "{} must be within 4KiB..=half of wal.segment-size ({})",
                    self.wal.max_record_size, self.wal.segment_size
                ),
            );
        }
        if self.server.request_body_limit.0 > record {
            return invalid(
                "server.request-body-limit",
                format!(
                    "{} would accept flows and inputs larger than a WAL record (wal.max-record-size is {})",
                    self.server.request_body_limit, self.wal.max_record_size
                ),
            );
        }
        if let Some(last) = self.executions.max_final_size
            && (last.0 < 64 << 10 || last.0 > segment / 2)
        {
            return invalid(
                "executions.max-final-size",
                format!(
                    "{last} must be within 64KiB..=half of wal.segment-size ({})",
                    self.wal.segment_size
                ),
            );
        }
        let most = peregrine_engine::kv::KvLimits::DEFAULT_MAX_VALUE_BYTES as u64;
        if self.kv.max_value_size.0 == 0 || self.kv.max_value_size.0 > most {
            return invalid(
                "kv.max-value-size",
                format!("{} must be within 1B..=512KiB", self.kv.max_value_size),
            );
        }
        if self.kv.max_size.0 < self.kv.max_value_size.0 {
            return invalid("kv.max-size", "must be at least kv.max-value-size");
        }
        if self.executions.retention_size.0 == 0 {
            return invalid("executions.retention-size", "must be more than 0 bytes");
        }
        if self.executions.retention.0.is_zero() {
            return invalid("executions.retention", "must be longer than 0s");
        }
        let prefix = self.variables.env_vars_prefix.as_str();
        if prefix.is_empty() {
            return invalid(
                "variables.env-vars-prefix",
                "must not be empty: every environment variable would reach every flow",
            );
        }
        if prefix.starts_with("PEREGRINE_") || "PEREGRINE_".starts_with(prefix) {
            return invalid(
                "variables.env-vars-prefix",
                format!(
                    "`{prefix}` would show the server's own settings (PEREGRINE_*, the \
                     basic-auth password among them) to every flow"
                ),
            );
        }
        let globals = Value::Object(self.variables.globals.clone());
        if let Some((key, why)) = unreadable_global_key("variables.globals", &globals) {
            return invalid(&key, why);
        }
        if self.wal.log_retention.0 > self.executions.retention.0 {
            return invalid(
                "wal.log-retention",
                format!(
                    "{} outlives the executions it belongs to (executions.retention is {})",
                    self.wal.log_retention, self.executions.retention
                ),
            );
        }
        Ok(())
    }

    /// The settings in force, as YAML (`--print-config`).
    pub fn to_yaml(&self) -> String {
        let mut shown = self.clone();
        if let Some(auth) = &mut shown.server.basic_auth {
            auth.password = "***".into();
        }
        serde_saphyr::to_string(&shown).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Sync => "sync",
            Durability::Interval => "interval",
            Durability::None => "none",
        }
    }
}

fn parse_yaml(text: &str) -> std::result::Result<Value, String> {
    let options = serde_saphyr::options! { strict_booleans: true, with_snippet: false };
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|e| e.to_string())
}

/// Overlays `top` on `base`: mappings merge key by key, anything else replaces.
fn merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(base), Value::Object(top)) => {
            for (k, v) in top {
                match base.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, top) => *base = top,
    }
}

/// Sets the value at a dotted `key`, creating mappings on the way.
fn set(tree: &mut Value, key: &str, value: Value) {
    let mut node = tree;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if !node.is_object() {
            *node = Value::Object(serde_json::Map::new());
        }
        let Value::Object(map) = node else { return };
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return;
        }
        node = map
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
}

/// A length of time, written with its unit: `250ms`, `30s`, `5m`, `1h`,
/// `7d`, or ISO-8601 as in flows (`PT1M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeSpan(pub Duration);

impl TimeSpan {
    pub const fn secs(n: u64) -> Self {
        Self(Duration::from_secs(n))
    }

    pub const fn millis(n: u64) -> Self {
        Self(Duration::from_millis(n))
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.starts_with('P') || text.starts_with('p') {
            return peregrine_engine::flow::parse_duration(text).map(Self);
        }
        let split = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().ok()?;
        let scale = match unit.trim() {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return None,
        };
        Duration::try_from_secs_f64(number * scale).ok().map(Self)
    }
}

impl fmt::Display for TimeSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
        ] {
            if ms >= size && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for TimeSpan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeSpan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(text) => text,
        };
        TimeSpan::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration (write it with a unit: 250ms, 30s, 5m, 1h, 7d)"
            ))
        })
    }
}

/// A number of bytes: `4096`, `512KiB`, `64MiB`, `1GiB` (also `KB`, `MB`, `GB`
/// as powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().ok()?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return None,
        };
        number.checked_mul(scale).map(Self)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(text) => ByteSize::parse(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a size (write 4096, 512KiB, 64MiB or 1GiB)"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str, env: &[(&str, &str)]) -> Result<Config> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("peregrine.yaml");
        std::fs::write(&path, yaml).expect("write config");
        Config::load(
            Some(&path),
            env.iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
            &Overrides::default(),
        )
    }

    fn message(result: Result<Config>) -> String {
        result.expect_err("rejected").to_string()
    }

    #[test]
    fn secrets_come_from_secret_variables_in_base64_and_from_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("secrets.yaml");
        std::fs::write(&file, "db_password: from-file\nAPI_KEY: 42\n").expect("written");
        let yaml = format!("secrets:\n  file: {}\n", file.display());
        let config = load(
            &yaml,
            &[
                ("SECRET_TOKEN", "czNjcjN0LXZhbHVl\n"),
                ("SECRET_DB_PASSWORD", "b3ZlcnJpZGRlbg=="),
                ("NOT_A_SECRET", "x"),
            ],
        )
        .expect("loads");
        let variables = config.engine_variables().expect("small");
        assert_eq!(variables.secret("token"), Some("s3cr3t-value"));
        assert_eq!(
            variables.secret("DB_PASSWORD"),
            Some("from-file"),
            "the file wins"
        );
        assert_eq!(variables.secret("api_key"), Some("42"));
        assert_eq!(config.secret_values.len(), 3);
        assert!(!format!("{config:?}").contains("s3cr3t"), "never printed");
        let bad = message(load("", &[("SECRET_BAD", "not base64!")]));
        assert!(
            bad.contains("SECRET_BAD") && bad.contains("base64"),
            "{bad}"
        );
        assert_eq!(decode_base64("Zm9vYmFy"), Some(b"foobar".to_vec()));
        assert_eq!(decode_base64("Zm9vYg"), Some(b"foob".to_vec()));
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let config = Config::load(None, [], &Overrides::default()).expect("defaults load");
        assert_eq!(config, Config::default());
        assert_eq!(config.wal.durability, Durability::Sync);
        assert_eq!(config.server.request_body_limit, ByteSize(10 << 20));
        assert_eq!(
            config.threads(),
            std::thread::available_parallelism().unwrap()
        );
        let yaml = config.to_yaml();
        assert!(yaml.contains("group-commit-delay: 0ms"), "{yaml}");
    }

    #[test]
    fn file_then_env_then_flags() {
        let config = Config::load(
            None,
            [("PEREGRINE_EXECUTOR_THREADS".into(), "3".into())],
            &Overrides::default(),
        )
        .expect("loads");
        assert_eq!(config.threads().get(), 3);

        let config = load(
            "executor:\n  threads: 2\nwal:\n  group-commit-delay: 5ms\nserver:\n  request-body-limit: 1MiB\n",
            &[
                ("PEREGRINE_WAL_GROUP_COMMIT_DELAY", "7ms"),
                ("PEREGRINE_SERVER_BASIC_AUTH_USERNAME", "admin"),
                ("PEREGRINE_SERVER_BASIC_AUTH_PASSWORD", "1234"),
            ],
        )
        .expect("loads");
        assert_eq!(config.threads().get(), 2);
        assert_eq!(config.wal.group_commit_delay, TimeSpan::millis(7));
        assert_eq!(config.server.request_body_limit, ByteSize(1 << 20));
        let auth = config.server.basic_auth.expect("auth set from env");
        assert_eq!(
            (auth.username.as_str(), auth.password.as_str()),
            ("admin", "1234")
        );

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "server:\n  bind: 127.0.0.1:1\n").expect("write");
        let config = Config::load(
            Some(&path),
            [("PEREGRINE_SERVER_BIND".into(), "127.0.0.1:2".into())],
            &Overrides {
                bind: Some("127.0.0.1:3".parse().expect("addr")),
                data_dir: Some("/tmp/x".into()),
                skip_damaged_wal: false,
            },
        )
        .expect("loads");
        assert_eq!(config.server.bind.port(), 3);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert!(!config.wal_config().skip_damaged, "off unless asked");
    }

    #[test]
    fn the_first_segment_size_is_a_setting_checked_and_passed_to_the_wal() {
        let default = load("", &[]).expect("loads");
        assert_eq!(default.wal_config().first_segment_bytes.get(), 1 << 20);
        let file = load("wal:\n  first-segment-size: 64MiB\n", &[]).expect("loads");
        assert_eq!(file.wal_config().first_segment_bytes.get(), 64 << 20);
        let env = load("", &[("PEREGRINE_WAL_FIRST_SEGMENT_SIZE", "256KiB")]).expect("loads");
        assert_eq!(env.wal_config().first_segment_bytes.get(), 256 << 10);
        let m = message(load("wal:\n  first-segment-size: 4KiB\n", &[]));
        assert!(m.contains("wal.first-segment-size"), "{m}");
        let m = message(load("wal:\n  first-segment-size: 100000\n", &[]));
        assert!(m.contains("multiple of 4KiB"), "{m}");
    }

    #[test]
    fn how_the_wal_writes_is_a_setting_mapped_by_default() {
        let default = load("", &[]).expect("loads");
        assert_eq!(default.wal_config().writes, peregrine_wal::Writes::Mapped);
        let file = load("wal:\n  writes: pwrite\n", &[]).expect("loads");
        assert_eq!(file.wal_config().writes, peregrine_wal::Writes::Pwrite);
        let env = load("", &[("PEREGRINE_WAL_WRITES", "pwrite")]).expect("loads");
        assert_eq!(env.wal_config().writes, peregrine_wal::Writes::Pwrite);
        assert!(load("wal:\n  writes: mmap\n", &[]).is_err(), "only the two");
    }

    #[test]
    fn skipping_damage_is_asked_for_by_key_env_or_flag() {
        let file = load("wal:\n  skip-damaged: true\n", &[]).expect("loads");
        assert!(file.wal.skip_damaged && file.wal_config().skip_damaged);
        let env = load("", &[("PEREGRINE_WAL_SKIP_DAMAGED", "true")]).expect("loads");
        assert!(env.wal_config().skip_damaged);
        let flag = Config::load(
            None,
            [],
            &Overrides {
                skip_damaged_wal: true,
                ..Overrides::default()
            },
        )
        .expect("loads");
        assert!(flag.wal_config().skip_damaged);
        let m = message(load("wal:\n  skip-damaged: sometimes\n", &[]));
        assert!(m.contains("wal.skip-damaged"), "{m}");
    }

    #[test]
    fn units_parse() {
        assert_eq!(TimeSpan::parse("250ms"), Some(TimeSpan::millis(250)));
        assert_eq!(TimeSpan::parse("1.5s"), Some(TimeSpan::millis(1500)));
        assert_eq!(TimeSpan::parse("7d"), Some(TimeSpan::secs(7 * 86_400)));
        assert_eq!(TimeSpan::parse("PT1M"), Some(TimeSpan::secs(60)));
        assert_eq!(TimeSpan::parse("10"), None, "a unit is required");
        assert_eq!(ByteSize::parse("64MiB"), Some(ByteSize(64 << 20)));
        assert_eq!(ByteSize::parse("10MB"), Some(ByteSize(10_000_000)));
        assert_eq!(ByteSize::parse("12 parsecs"), None);
        assert_eq!(TimeSpan::secs(3600).to_string(), "1h");
        assert_eq!(ByteSize(64 << 20).to_string(), "64MiB");
    }

    #[test]
    fn a_small_disk_gets_smaller_segments_on_a_fresh_data_folder() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = load("executor:\n  threads: 2\n", &[]).unwrap();
        config.data_dir = dir.path().join("data");
        // Plenty of room: nothing changes.
        assert_eq!(config.fit_to_disk(100 << 30), None);
        // 64 MiB: 7 files (2 shards x 3, and the flows log) in half of it.
        let note = config.fit_to_disk(64 << 20).expect("adapted");
        assert_eq!(config.wal.segment_size, ByteSize(4 << 20));
        assert_eq!(config.wal.max_record_size, ByteSize(2 << 20));
        assert_eq!(config.server.request_body_limit, ByteSize(2 << 20));
        assert_eq!(config.executions.max_outputs_size, ByteSize(1 << 20));
        assert_eq!(config.max_final_size(), ByteSize(2 << 20));
        assert!(
            note.contains("4MiB") && note.contains("64MiB free"),
            "{note}"
        );
        // Finished executions get a quarter of the free space.
        assert_eq!(config.executions.retention_size, ByteSize(16 << 20));
        assert!(note.contains("keep up to 16MiB on disk"), "{note}");
        config.check().expect("still valid");
        // Sizes the operator chose are kept.
        let mut chosen = load(
            "wal:\n  segment-size: 1GiB\nexecutions:\n  retention-size: 2GiB\n",
            &[],
        )
        .unwrap();
        chosen.data_dir = dir.path().join("data");
        assert_eq!(chosen.fit_to_disk(64 << 20), None);
        let refused = chosen
            .refuse_disk(64 << 20)
            .expect("1GiB segments on 64MiB");
        assert!(refused.contains("disk full"), "{refused}");
        assert_eq!(chosen.refuse_disk(2 << 30), None);
        assert_eq!(chosen.executions.retention_size, ByteSize(2 << 30));
        // A data folder made that way keeps its segments' largest size,
        // whatever the disk has now, though its files are smaller (they
        // grow up to it).
        let flows = dir.path().join("data").join("flows");
        let (wal, _) = peregrine_wal::Wal::open(&flows, config.wal_config()).unwrap();
        drop(wal);
        let files: Vec<u64> = std::fs::read_dir(&flows)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
            .map(|e| e.metadata().unwrap().len())
            .collect();
        assert_eq!(files, [1 << 20], "one first segment, smaller");
        assert_eq!(
            chosen.refuse_disk(64 << 20),
            None,
            "a folder with logs starts"
        );
        let mut existing = load("", &[]).unwrap();
        existing.data_dir = dir.path().join("data");
        assert!(existing.fit_to_disk(100 << 30).is_some());
        assert_eq!(existing.wal.segment_size, ByteSize(4 << 20));
        assert_eq!(existing.wal.max_record_size, ByteSize(2 << 20));
    }

    #[test]
    fn expression_budgets_are_read_and_checked() {
        let config = load(
            "expression:\n  max-steps: 5000\n  max-output-size: 1MiB\n  max-memory: 64MiB\n  max-time: 250ms\n",
            &[],
        )
        .unwrap();
        let budget = config.budget();
        assert_eq!(budget.steps, 5000);
        assert_eq!(budget.output_bytes, 1 << 20);
        assert_eq!(budget.memory_bytes, 64 << 20);
        assert_eq!(budget.time, Duration::from_millis(250));
        let env = load("", &[("PEREGRINE_EXPRESSION_MAX_STEPS", "20000")]).unwrap();
        assert_eq!(env.budget().steps, 20_000);
        let limits = load(
            "executions:\n  max-task-runs: 50\n  max-outputs-size: 4KiB\n  max-final-size: 8MiB\n",
            &[],
        )
        .unwrap()
        .limits();
        assert_eq!(limits.max_task_runs, 50);
        assert_eq!(limits.max_outputs_bytes, 4096);
        assert_eq!(limits.max_final_bytes, 8 << 20);
        assert_eq!(
            Config::default().limits().max_final_bytes,
            peregrine_engine::Limits::DEFAULT_MAX_FINAL_BYTES
        );
        assert_eq!(limits.expression, Config::default().budget());
        for (yaml, key) in [
            ("expression:\n  max-steps: 10\n", "expression.max-steps"),
            (
                "expression:\n  max-output-size: 10\n",
                "expression.max-output-size",
            ),
            ("expression:\n  max-memory: 1KiB\n", "expression.max-memory"),
            ("expression:\n  max-time: 1h\n", "expression.max-time"),
            ("expression:\n  max-fuel: 1\n", "max-fuel"),
            (
                "executions:\n  max-task-runs: 0\n",
                "executions.max-task-runs",
            ),
            (
                "executions:\n  max-outputs-size: 1GiB\n",
                "executions.max-outputs-size",
            ),
            (
                "executions:\n  max-final-size: 33MiB\n",
                "executions.max-final-size",
            ),
            (
                "executions:\n  max-final-size: 1KiB\n",
                "executions.max-final-size",
            ),
        ] {
            let m = message(load(yaml, &[]));
            assert!(m.contains(key), "{yaml}: {m}");
        }
    }

    #[test]
    fn connection_limits_take_units_and_stay_within_bounds() {
        let defaults = Config::default().server;
        assert_eq!(defaults.header_timeout, TimeSpan::secs(10));
        assert_eq!(defaults.max_header_size, ByteSize(64 << 10));
        assert_eq!(defaults.body_timeout, TimeSpan::secs(60));
        assert_eq!(defaults.idle_timeout, TimeSpan::secs(60));

        let config = load(
            "server:\n  header-timeout: 500ms\n  max-header-size: 16KiB\n  body-timeout: 2m\n",
            &[("PEREGRINE_SERVER_IDLE_TIMEOUT", "90s")],
        )
        .expect("loads");
        assert_eq!(config.server.header_timeout, TimeSpan::millis(500));
        assert_eq!(config.server.max_header_size, ByteSize(16 << 10));
        assert_eq!(config.server.body_timeout, TimeSpan::secs(120));
        assert_eq!(config.server.idle_timeout, TimeSpan::secs(90));

        for (line, says) in [
            ("header-timeout: 10", "unit"),
            ("header-timeout: 0s", "outside 1ms..=10m"),
            ("header-timeout: 11m", "outside 1ms..=10m"),
            ("body-timeout: soon", "not a duration"),
            ("body-timeout: 0ms", "outside 1ms..=1h"),
            ("body-timeout: 2h", "outside 1ms..=1h"),
            ("idle-timeout: 60", "unit"),
            ("idle-timeout: 0.1ms", "outside 1ms..=1h"),
            ("idle-timeout: 1d", "outside 1ms..=1h"),
            ("max-header-size: 64 KiBs", "not a size"),
            ("max-header-size: 0", "outside 1KiB..=256KiB"),
            ("max-header-size: 512", "outside 1KiB..=256KiB"),
            ("max-header-size: 1MiB", "outside 1KiB..=256KiB"),
        ] {
            let key = format!("server.{}", line.split(':').next().unwrap_or_default());
            let m = message(load(&format!("server:\n  {line}\n"), &[]));
            assert!(m.contains(&key) && m.contains(says), "{line}: {m}");
        }
        let m = message(load("", &[("PEREGRINE_SERVER_MAX_HEADER_SIZE", "huge")]));
        assert!(m.contains("server.max-header-size"), "{m}");
    }

    /// Kestra's VariablesTest.recursiveVars: KESTRA_TEST1, KESTRA_TEST2 and
    /// the globals of its application-test.yml.
    #[test]
    fn envs_with_the_prefix_and_globals_reach_the_engine() {
        let defaults = Config::default().variables;
        assert_eq!(defaults.env_vars_prefix, "KESTRA_");
        assert_eq!(
            defaults.redacted_env_vars,
            [
                "KESTRA_PLUGINS_PATH",
                "KESTRA_CONFIGURATION_PATH",
                "KESTRA_CONFIGURATION"
            ]
        );
        let config = load(
            "variables:\n  globals:\n    string: string\n    int: 1\n    bool: true\n    nested:\n      int: 2\n      list: [a, {b-c: 3}]\n",
            &[
                ("KESTRA_TEST1", "true"),
                ("KESTRA_TEST2", "Pass by env"),
                ("KESTRA_Mixed_Case", "m"),
                ("KESTRA_CONFIGURATION", "kestra: {secret: 1}"),
                ("kestra_lower", "not the prefix"),
                ("PATH", "/bin"),
                ("PEREGRINE_EXECUTOR_THREADS", "2"),
            ],
        )
        .expect("loads");
        assert_eq!(config.threads().get(), 2);
        assert_eq!(config.envs.len(), 3, "{:?}", config.envs);
        assert_eq!(config.envs.get("test1"), Some("true"));
        assert_eq!(config.envs.get("test2"), Some("Pass by env"));
        assert_eq!(config.envs.get("mixed_case"), Some("m"));
        let variables = config.engine_variables().expect("small");
        assert_eq!(
            variables.envs(),
            &serde_json::json!({"test1": "true", "test2": "Pass by env", "mixed_case": "m"})
        );
        assert_eq!(
            variables.globals(),
            &serde_json::json!({"string": "string", "int": 1, "bool": true,
                                "nested": {"int": 2, "list": ["a", {"b-c": 3}]}})
        );
        // Neither the printed config nor its Debug shows a value.
        let shown = format!("{} {config:?}", config.to_yaml());
        assert!(shown.contains("test1"), "{shown}");
        assert!(!shown.contains("Pass by env"), "{shown}");

        let other = load(
            "variables:\n  env-vars-prefix: ENV_\n  redacted-env-vars: [ENV_SECRET]\n",
            &[
                ("ENV_REGION", "eu"),
                ("ENV_SECRET", "s"),
                ("KESTRA_TEST1", "true"),
            ],
        )
        .expect("loads");
        assert_eq!(other.envs.len(), 1, "{:?}", other.envs);
        assert_eq!(other.envs.get("region"), Some("eu"));
        let env = load(
            "",
            &[
                ("PEREGRINE_VARIABLES_ENV_VARS_PREFIX", "MY_"),
                ("PEREGRINE_VARIABLES_REDACTED_ENV_VARS", "[MY_B]"),
                ("MY_A", "1"),
                ("MY_B", "2"),
            ],
        )
        .expect("loads");
        assert_eq!(env.variables.env_vars_prefix, "MY_");
        assert_eq!(env.envs.len(), 1, "{:?}", env.envs);
        assert_eq!(env.envs.get("a"), Some("1"), "a value stays text");
    }

    #[test]
    fn envs_and_globals_that_flows_could_not_read_as_written_are_refused() {
        for (yaml, env, key, says) in [
            (
                "variables:\n  env-vars-prefix: ''\n",
                &[][..],
                "variables.env-vars-prefix",
                "every environment variable",
            ),
            (
                "variables:\n  env-vars-prefix: PEREGRINE_\n",
                &[],
                "variables.env-vars-prefix",
                "own settings",
            ),
            (
                "variables:\n  env-vars-prefix: PER\n",
                &[],
                "variables.env-vars-prefix",
                "own settings",
            ),
            (
                "variables:\n  env-vars-prefix: PEREGRINE_FLOW_\n",
                &[],
                "variables.env-vars-prefix",
                "own settings",
            ),
            (
                "variables:\n  globals:\n    nested:\n      myVar: 1\n",
                &[],
                "variables.globals.nested.myVar",
                "my-var",
            ),
            (
                "variables:\n  globals:\n    list: [{Up: 1}]\n",
                &[],
                "variables.globals.list[0].Up",
                "lower case",
            ),
            (
                "variables:\n  globals:\n    a.b: 1\n",
                &[],
                "variables.globals.a.b",
                "nested",
            ),
            (
                "variables:\n  globals: [1, 2]\n",
                &[],
                "variables.globals",
                "map",
            ),
            (
                "variables:\n  cache-enabled: true\n",
                &[],
                "cache-enabled",
                "unknown field",
            ),
            (
                "",
                &[("PEREGRINE_VARIABLES_GLOBALS_REGION", "eu")],
                "variables.globals",
                "config file only",
            ),
            (
                "",
                &[("KESTRA_REGION", "eu"), ("KESTRA_region", "us")],
                "variables.env-vars-prefix",
                "`envs.region`",
            ),
        ] {
            let m = message(load(yaml, env));
            assert!(m.contains(key) && m.contains(says), "{yaml} {env:?}: {m}");
        }
        let big = "x".repeat(peregrine_engine::ConfigVariables::MAX_BYTES);
        let m = message(load("", &[("KESTRA_BIG", &big)]));
        assert!(
            m.contains("config `variables`") && m.contains("1 envs") && m.contains("globals"),
            "{m}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn an_env_var_with_the_prefix_that_is_not_text_is_refused() {
        use std::os::unix::ffi::OsStringExt;
        let bytes = |b: &[u8]| OsString::from_vec(b.to_vec());
        let env = [
            (bytes(b"KESTRA_BAD"), bytes(b"\xff\xfe")),
            (bytes(b"OTHER_\xff"), bytes(b"fine: not the prefix")),
        ];
        let m = message(Config::load(None, env, &Overrides::default()));
        assert!(
            m.contains("variables.env-vars-prefix") && m.contains("KESTRA_BAD"),
            "{m}"
        );
        let config = Config::load(
            None,
            [(bytes(b"OTHER_\xff"), bytes(b"\xff"))],
            &Overrides::default(),
        )
        .expect("only variables with the prefix are read");
        assert!(config.envs.is_empty());
    }

    #[test]
    fn nonsense_and_contradictions_are_rejected_with_the_key() {
        let m = message(load("wal:\n  fsync-interval: 10ms\n", &[]));
        assert!(
            m.contains("wal.fsync-interval") && m.contains("sync"),
            "{m}"
        );
        assert!(
            load(
                "wal:\n  durability: interval\n  fsync-interval: 10ms\n",
                &[]
            )
            .is_ok()
        );
        let m = message(load("wal:\n  log-retention: 2d\n", &[]));
        assert!(m.contains("wal.log-retention"), "{m}");
        let m = message(load(
            "server:\n  basic-auth:\n    username: a\n    password: ''\n",
            &[],
        ));
        assert!(m.contains("server.basic-auth.password"), "{m}");
        let m = message(load(
            "server:\n  max-connections: 10\n  max-followers: 11\n",
            &[],
        ));
        assert!(m.contains("server.max-followers"), "{m}");
        let m = message(load("executor:\n  threads: 0\n", &[]));
        assert!(m.contains("executor.threads"), "{m}");
        let m = message(load("executor:\n  thread: 2\n", &[]));
        assert!(m.contains("thread"), "{m}");
        let m = message(load("wal:\n  segment-size: 1000\n", &[]));
        assert!(m.contains("wal.segment-size"), "{m}");
        let m = message(load("server:\n  request-body-limit: 32MiB\n", &[]));
        assert!(m.contains("wal.max-record-size"), "{m}");
        let m = message(load("wal:\n  max-record-size: 40MiB\n", &[]));
        assert!(m.contains("wal.max-record-size"), "{m}");
        let m = message(load("wal:\n  durability: sometimes\n", &[]));
        assert!(m.contains("wal.durability"), "{m}");
        let m = message(load("server:\n  shutdown-timeout: 30\n", &[]));
        assert!(
            m.contains("server.shutdown-timeout") && m.contains("unit"),
            "{m}"
        );
        let m = message(load("executor: [1\n", &[]));
        assert!(m.contains("peregrine.yaml"), "{m}");
        let m = message(load("", &[("PEREGRINE_SERVER_REQUEST_BODY_LIMIT", "huge")]));
        assert!(m.contains("server.request-body-limit"), "{m}");
    }
}
