//! The command line, and its check: every option is validated, and
//! contradictions refused, before anything runs.

use std::num::{NonZeroU16, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use peregrine_engine::flow::Flow;

/// The seed's rates, executions per second.
pub const SEED_RATES: [f64; 7] = [10.0, 25.0, 50.0, 75.0, 100.0, 150.0, 200.0];

/// The seed benchmark's flow, shipped with the generator.
pub const SEED_FLOW: &str = include_str!("../flows/seed.yaml");

/// Resume mode's flow: a Pause with an `onResume` input, then a Return.
pub const PAUSE_FLOW: &str = include_str!("../flows/pause.yaml");

/// The seed's Kafka flow; kafka mode deploys it with its own topic, brokers
/// and consumer group in place of the placeholders.
pub const SEED_KAFKA_FLOW: &str = include_str!("../flows/seed-kafka.yaml");

/// Partitions of each run's topic, in kafka mode, unless `--partitions`.
pub const DEFAULT_PARTITIONS: u16 = 4;
/// Above this, a typo is more likely than intent.
const MAX_PARTITIONS: u16 = 1024;
/// Bounds on `--producer-property`: each key and value, and how many.
const MAX_PRODUCER_PROPERTIES: usize = 64;
const MAX_PROPERTY_LEN: usize = 4096;

/// What the Kafka producer is set to unless `--producer-property` says
/// otherwise: tuned for latency (no batching delay, no Nagle), and every
/// message acknowledged by all in-sync replicas before it counts as sent
/// (with one broker, the same as `acks=1`).
pub const PRODUCER_DEFAULTS: [(&str, &str); 4] = [
    ("linger.ms", "0"),
    ("acks", "all"),
    ("socket.nagle.disable", "true"),
    ("client.id", "peregrine-loadtest"),
];

/// Upper bounds: beyond them a run would hold more than a few GiB of
/// pre-built inputs, or a typo is more likely than intent.
const MAX_EXECUTIONS: u64 = 10_000_000;
const MAX_RATE: f64 = 1_000_000.0;
const MAX_CONNECTIONS: usize = 4096;
const MAX_THREADS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The engine in this process, with a real WAL.
    Embedded,
    /// A running `peregrine server`, over HTTP.
    Http,
    /// A running `peregrine server` whose Kafka trigger consumes the
    /// messages this generator publishes.
    Kafka,
}

/// How the embedded WAL's appends reach its files (the server's
/// `wal.writes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WalWrites {
    /// Copied into a shared map, synced with msync.
    #[default]
    Mapped,
    /// Written with pwrite, synced with fdatasync.
    Pwrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// fsync before an execution counts as complete (group commit).
    Sync,
    /// fsync every `--sync-interval-ms`, complete before durable (Kafka-like).
    Interval,
    /// WAL written, never synced.
    None,
    /// No WAL at all: the engine alone.
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BodyKind {
    /// `multipart/form-data`, one part per input, as Kestra's UI sends.
    Multipart,
    /// A JSON object of inputs.
    Json,
}

/// How resume mode resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResumePath {
    /// `POST /executions/{id}/actions/resume`: 200 with the execution.
    Actions,
    /// Kestra 0.22's `POST /executions/{id}/resume`: 204.
    Legacy,
}

/// Open-loop load generator for Peregrine: the seed's 1000-execution latency
/// benchmark at fixed rates, and the highest rate within a p99 SLO.
#[derive(Debug, Clone, Parser)]
#[command(name = "peregrine-loadtest", version)]
pub struct Options {
    /// Where executions run.
    #[arg(long, value_enum, default_value_t = Mode::Embedded)]
    pub mode: Mode,
    /// The server, in http and kafka modes: `http://host:port`.
    #[arg(long)]
    pub url: Option<String>,
    /// The Kafka brokers, in kafka mode: `host:port[,host:port...]`, for
    /// the generator's producer and the flow's `bootstrap.servers`.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Partitions of each run's fresh topic, in kafka mode. Default: 4.
    #[arg(long)]
    pub partitions: Option<u16>,
    /// A librdkafka producer property, `key=value`, in kafka mode;
    /// repeatable. Defaults: linger.ms=0, acks=all, socket.nagle.disable=true.
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    pub producer_properties: Vec<String>,
    /// Basic auth for the server, `user:password`.
    #[arg(long, env = "PEREGRINE_LOADTEST_AUTH", hide_env_values = true)]
    pub auth: Option<String>,
    /// The flow to run (YAML). It gets a JSON input `order`; when it has a
    /// task `transform`, that task's output is checked. Default: the seed's.
    /// Not in kafka mode, which runs `flows/seed-kafka.yaml`.
    #[arg(long)]
    pub flow: Option<PathBuf>,
    /// Rates to run, executions per second. Default: the seed's
    /// 10,25,50,75,100,150,200 (none with `--find-max`, unless given).
    #[arg(long, value_delimiter = ',')]
    pub rates: Option<Vec<f64>>,
    /// Executions per rate.
    #[arg(long, default_value_t = 1000)]
    pub executions: u64,
    /// Instead of `--executions`: run each rate this long, rate × secs
    /// executions (at least one), so that a curve from 100/s to past the
    /// ceiling spends the same time at every rate.
    #[arg(long)]
    pub run_secs: Option<f64>,
    /// Write every run to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw latency percentiles against rate into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Add Kestra 0.22's JDBC and Kafka figures to the table.
    #[arg(long)]
    pub compare_seed: bool,
    /// Search the highest rate whose p99 stays within `--slo-p99-ms`.
    #[arg(long)]
    pub find_max: bool,
    /// The p99 latency a rate must keep to count as sustainable.
    #[arg(long, default_value_t = 20.0)]
    pub slo_p99_ms: f64,
    /// The search's first rate.
    #[arg(long, default_value_t = 250.0)]
    pub start_rate: f64,
    /// How long each probe of the search runs at its rate.
    #[arg(long, default_value_t = 3.0)]
    pub probe_secs: f64,
    /// The search's time budget; it reports its best rate when it runs out.
    #[arg(long, default_value_t = 240.0)]
    pub max_secs: f64,
    /// The search stops when its bounds are this close (relative).
    #[arg(long, default_value_t = 0.05)]
    pub precision: f64,
    /// WAL durability, in embedded mode. Default: sync.
    #[arg(long, value_enum)]
    pub durability: Option<Durability>,
    /// The fsync period of `--durability interval`.
    #[arg(long)]
    pub sync_interval_ms: Option<u64>,
    /// Where the WALs go, in embedded mode (one folder per run, removed
    /// after it). Default: a temporary folder.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Keep each run's WAL folder.
    #[arg(long)]
    pub keep_data: bool,
    /// WAL segment size in MiB, in embedded mode.
    #[arg(long, default_value_t = 64)]
    pub wal_segment_mib: u64,
    /// How the WAL writes, in embedded mode. Default: mapped.
    #[arg(long, value_enum)]
    pub wal_writes: Option<WalWrites>,
    /// Engine shard threads, in embedded mode. Default: one per CPU.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Each shard's inbox capacity, in embedded mode.
    #[arg(long, default_value_t = 4096)]
    pub inbox_capacity: usize,
    /// Keep-alive connections to the server, in http mode.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// How inputs are sent, in http mode.
    #[arg(long, value_enum, default_value_t = BodyKind::Multipart)]
    pub body: BodyKind,
    /// Tries after a 429 or 503 before the execution counts as failed.
    #[arg(long, default_value_t = 5)]
    pub max_retries: u32,
    /// How long to wait, after the last start, for executions to end;
    /// those still running then count as failed. In kafka mode, also how
    /// long the producer may take to have every message acknowledged.
    #[arg(long, default_value_t = 30.0)]
    pub drain_secs: f64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// In http mode, instead of rates: start `--executions` executions of a
    /// flow that pauses (default `flows/pause.yaml`), wait until all are
    /// PAUSED, resume them all as fast as `--connections` connections get
    /// answers, and wait until all have ended.
    #[arg(long)]
    pub resume: bool,
    /// The API path `--resume` uses. Default: actions.
    #[arg(long, value_enum)]
    pub resume_path: Option<ResumePath>,
    /// The server's process id, with `--resume`: its RSS and CPU time are
    /// read from /proc (the server must run on this machine).
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// A rejected command line.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read the flow {path}: {source}")]
    ReadFlow {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the flow does not parse: {0}")]
    Flow(String),
}

fn invalid(message: impl Into<String>) -> OptionsError {
    OptionsError::Invalid(message.into())
}

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`, to connect to and to send as `Host`.
    pub authority: String,
    /// Path prefix before `/api/...`, without a trailing slash.
    pub prefix: String,
}

/// The search's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FindMax {
    pub slo_p99_ms: f64,
    pub start_rate: f64,
    pub probe: Duration,
    pub budget: Duration,
    pub precision: f64,
}

/// What the embedded mode needs.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedSettings {
    pub durability: Durability,
    pub sync_interval: Duration,
    /// `None`: a temporary folder.
    pub data_dir: Option<PathBuf>,
    pub keep_data: bool,
    pub segment_bytes: NonZeroU64,
    pub writes: WalWrites,
    pub threads: NonZeroUsize,
    pub inbox_capacity: NonZeroUsize,
}

/// What the http mode needs.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub target: Target,
    /// `Basic ...`, ready to send.
    pub authorization: Option<String>,
    pub connections: NonZeroUsize,
    pub body: BodyKind,
    pub max_retries: u32,
}

/// What the kafka mode needs.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSettings {
    /// The server, whose Kafka trigger runs the flow.
    pub target: Target,
    /// `Basic ...`, ready to send.
    pub authorization: Option<String>,
    /// `host:port,...`, checked.
    pub brokers: String,
    /// Partitions of each run's topic.
    pub partitions: NonZeroU16,
    /// The producer's properties: the defaults, then `--producer-property`.
    pub producer: Vec<(String, String)>,
}

/// What `--resume` needs besides the http mode's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeSettings {
    pub path: ResumePath,
    pub server_pid: Option<u32>,
}

#[derive(Debug, Clone)]
pub enum ModeSettings {
    Embedded(EmbeddedSettings),
    Http(HttpSettings),
    Kafka(KafkaSettings),
}

/// Options once checked: typed, complete, consistent.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: ModeSettings,
    pub flow: Arc<Flow>,
    /// Where the flow came from, for the report.
    pub flow_source: String,
    pub rates: Vec<f64>,
    pub executions: NonZeroU64,
    /// `--run-secs`: each rate's executions are rate × this, not
    /// `executions`.
    pub run_secs: Option<f64>,
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub compare_seed: bool,
    pub find_max: Option<FindMax>,
    pub drain: Duration,
    pub quiet: bool,
    /// `--resume`: the resume run instead of rates (http mode).
    pub resume: Option<ResumeSettings>,
    /// The options as given, for the report.
    pub echo: serde_json::Value,
}

fn positive(name: &str, value: f64) -> Result<f64, OptionsError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(invalid(format!(
            "--{name} must be a positive number, not {value}"
        )))
    }
}

fn seconds(name: &str, value: f64, max: f64) -> Result<Duration, OptionsError> {
    let value = positive(name, value)?;
    if value > max {
        return Err(invalid(format!("--{name} must be at most {max}")));
    }
    Ok(Duration::from_secs_f64(value))
}

/// `http://host[:port][/prefix]`; TLS is not spoken.
fn parse_url(url: &str) -> Result<Target, OptionsError> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| invalid(format!("--url {url:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(invalid(format!(
                "--url: only http:// is supported, not {other}://"
            )));
        }
        None => return Err(invalid(format!("--url {url:?} needs http://"))),
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid(format!("--url {url:?} has no host")))?;
    if uri.query().is_some() {
        return Err(invalid(format!("--url {url:?} must not have a query")));
    }
    let port = uri.port_u16().unwrap_or(80);
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Ok(Target {
        authority: format!("{host}:{port}"),
        prefix: uri.path().trim_end_matches('/').to_owned(),
    })
}

/// Base64 of `user:password`, for `Authorization: Basic`.
fn basic_auth(credentials: &str) -> Result<String, OptionsError> {
    if !credentials.contains(':') {
        return Err(invalid("--auth must be user:password"));
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = credentials.as_bytes();
    let mut out = String::from("Basic ");
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    Ok(out)
}

/// Refuses every option of `given` that was given: `NAME {why}`.
fn refuse(given: &[(bool, &str)], why: &str) -> Result<(), OptionsError> {
    match given.iter().find(|(given, _)| *given) {
        Some((_, name)) => Err(invalid(format!("{name} {why}"))),
        None => Ok(()),
    }
}

/// `host:port[,host:port...]`, as librdkafka's `bootstrap.servers` takes
/// it; returned without spaces.
fn parse_brokers(brokers: &str) -> Result<String, OptionsError> {
    let mut checked = Vec::new();
    for broker in brokers.split(',').map(str::trim) {
        let port = broker
            .rsplit_once(':')
            .filter(|(host, _)| !host.is_empty() && !host.contains('/'))
            .and_then(|(_, port)| port.parse::<u16>().ok())
            .filter(|port| *port > 0);
        if port.is_none() {
            return Err(invalid(format!(
                "--brokers {brokers:?}: each broker must be host:port, not {broker:?}"
            )));
        }
        checked.push(broker);
    }
    Ok(checked.join(","))
}

/// The producer's properties: [`PRODUCER_DEFAULTS`], each overridden or
/// extended by a `key=value` of `--producer-property`. `bootstrap.servers`
/// is `--brokers`'. Property names are librdkafka's to check: an unknown
/// one fails the setup, before the first run.
fn producer_properties(given: &[String]) -> Result<Vec<(String, String)>, OptionsError> {
    if given.len() > MAX_PRODUCER_PROPERTIES {
        return Err(invalid(format!(
            "--producer-property: at most {MAX_PRODUCER_PROPERTIES}"
        )));
    }
    let mut properties: Vec<(String, String)> = PRODUCER_DEFAULTS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for property in given {
        let (key, value) = property
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| {
                invalid(format!(
                    "--producer-property {property:?} must be key=value"
                ))
            })?;
        if key.len() > MAX_PROPERTY_LEN || value.len() > MAX_PROPERTY_LEN {
            return Err(invalid(format!(
                "--producer-property {key}: longer than {MAX_PROPERTY_LEN} bytes"
            )));
        }
        if key == "bootstrap.servers" {
            return Err(invalid(
                "--producer-property bootstrap.servers: give the brokers with --brokers",
            ));
        }
        match properties.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_owned(),
            None => properties.push((key.to_owned(), value.to_owned())),
        }
    }
    Ok(properties)
}

impl Settings {
    /// How many executions the run at `rate` starts.
    pub fn executions_at(&self, rate: f64) -> u64 {
        match self.run_secs {
            // At most MAX_EXECUTIONS: `validate` checked every rate.
            Some(secs) => ((rate * secs).round() as u64).max(1),
            None => self.executions.get(),
        }
    }
}

impl Options {
    /// Checks everything, reads and parses the flow; nothing runs yet.
    pub fn validate(self) -> Result<Settings, OptionsError> {
        let echo = self.echo();
        let executions = NonZeroU64::new(self.executions)
            .filter(|n| n.get() <= MAX_EXECUTIONS)
            .ok_or_else(|| invalid(format!("--executions must be within 1..={MAX_EXECUTIONS}")))?;
        let rates = match &self.rates {
            Some(rates) => {
                if rates.is_empty() {
                    return Err(invalid("--rates needs at least one rate"));
                }
                for &rate in rates {
                    positive("rates", rate)?;
                    if rate > MAX_RATE {
                        return Err(invalid(format!("--rates: {rate} is above {MAX_RATE}")));
                    }
                }
                rates.clone()
            }
            None if self.find_max || self.resume => Vec::new(),
            None => SEED_RATES.to_vec(),
        };
        let run_secs = match self.run_secs {
            Some(secs) => {
                let secs = positive("run-secs", secs)?;
                if let Some(rate) = rates.iter().find(|&&r| r * secs > MAX_EXECUTIONS as f64) {
                    return Err(invalid(format!(
                        "--run-secs: {rate}/s for {secs} s is above {MAX_EXECUTIONS} executions"
                    )));
                }
                Some(secs)
            }
            None => None,
        };
        let find_max = if self.find_max {
            let start_rate = positive("start-rate", self.start_rate)?;
            if start_rate > MAX_RATE {
                return Err(invalid(format!("--start-rate must be at most {MAX_RATE}")));
            }
            let precision = positive("precision", self.precision)?;
            if precision >= 1.0 {
                return Err(invalid("--precision must be below 1"));
            }
            Some(FindMax {
                slo_p99_ms: positive("slo-p99-ms", self.slo_p99_ms)?,
                start_rate,
                probe: seconds("probe-secs", self.probe_secs, 3600.0)?,
                budget: seconds("max-secs", self.max_secs, 24.0 * 3600.0)?,
                precision,
            })
        } else {
            None
        };
        let drain = seconds("drain-secs", self.drain_secs, 3600.0)?;
        if let Some(plot) = &self.plot
            && plot.extension().and_then(|e| e.to_str()) != Some("svg")
        {
            return Err(invalid(format!(
                "--plot {} must name an .svg file",
                plot.display()
            )));
        }
        let resume = if self.resume {
            if self.mode != Mode::Http {
                return Err(invalid("--resume only applies to --mode http"));
            }
            refuse(
                &[
                    (self.rates.is_some(), "--rates"),
                    (self.find_max, "--find-max"),
                    (self.compare_seed, "--compare-seed"),
                    (self.plot.is_some(), "--plot"),
                    (self.run_secs.is_some(), "--run-secs"),
                ],
                "does not apply to --resume, which runs no rates",
            )?;
            Some(ResumeSettings {
                path: self.resume_path.unwrap_or(ResumePath::Actions),
                server_pid: self.server_pid,
            })
        } else {
            refuse(
                &[
                    (self.resume_path.is_some(), "--resume-path"),
                    (self.server_pid.is_some(), "--server-pid"),
                ],
                "only applies to --resume",
            )?;
            None
        };
        if self.mode != Mode::Kafka {
            refuse(
                &[
                    (self.brokers.is_some(), "--brokers"),
                    (self.partitions.is_some(), "--partitions"),
                    (!self.producer_properties.is_empty(), "--producer-property"),
                ],
                "only applies to --mode kafka",
            )?;
        }
        if self.mode != Mode::Embedded {
            refuse(
                &[
                    (self.durability.is_some(), "--durability"),
                    (self.sync_interval_ms.is_some(), "--sync-interval-ms"),
                    (self.data_dir.is_some(), "--data-dir"),
                    (self.keep_data, "--keep-data"),
                    (self.threads.is_some(), "--threads"),
                    (self.wal_writes.is_some(), "--wal-writes"),
                ],
                "only applies to --mode embedded (the server has its own)",
            )?;
        }
        let mode = match self.mode {
            Mode::Embedded => {
                refuse(
                    &[
                        (self.url.is_some(), "--url"),
                        (self.auth.is_some(), "--auth"),
                    ],
                    "only applies to --mode http or kafka",
                )?;
                let durability = self.durability.unwrap_or(Durability::Sync);
                let sync_interval = match (durability, self.sync_interval_ms) {
                    (Durability::Interval, ms) => {
                        let ms = ms.unwrap_or(25);
                        if ms == 0 || ms > 60_000 {
                            return Err(invalid("--sync-interval-ms must be within 1..=60000"));
                        }
                        Duration::from_millis(ms)
                    }
                    (_, Some(_)) => {
                        return Err(invalid(
                            "--sync-interval-ms only applies to --durability interval",
                        ));
                    }
                    (_, None) => Duration::ZERO,
                };
                if durability == Durability::Memory && self.data_dir.is_some() {
                    return Err(invalid("--durability memory keeps no WAL: drop --data-dir"));
                }
                if !(1..=4096).contains(&self.wal_segment_mib) {
                    return Err(invalid("--wal-segment-mib must be within 1..=4096"));
                }
                let segment_bytes = NonZeroU64::new(self.wal_segment_mib << 20)
                    .ok_or_else(|| invalid("--wal-segment-mib must be positive"))?;
                let threads = match self.threads {
                    Some(n) => NonZeroUsize::new(n)
                        .filter(|n| n.get() <= MAX_THREADS)
                        .ok_or_else(|| {
                            invalid(format!("--threads must be within 1..={MAX_THREADS}"))
                        })?,
                    None => std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
                };
                let inbox_capacity = NonZeroUsize::new(self.inbox_capacity)
                    .filter(|n| n.get() <= 1 << 24)
                    .ok_or_else(|| invalid("--inbox-capacity must be within 1..=16777216"))?;
                ModeSettings::Embedded(EmbeddedSettings {
                    durability,
                    sync_interval,
                    data_dir: self.data_dir.clone(),
                    keep_data: self.keep_data,
                    segment_bytes,
                    writes: self.wal_writes.unwrap_or_default(),
                    threads,
                    inbox_capacity,
                })
            }
            Mode::Http => {
                let url = self.url.as_deref().ok_or_else(|| {
                    invalid("--mode http needs --url, e.g. http://127.0.0.1:8080")
                })?;
                let connections = NonZeroUsize::new(self.connections)
                    .filter(|n| n.get() <= MAX_CONNECTIONS)
                    .ok_or_else(|| {
                        invalid(format!(
                            "--connections must be within 1..={MAX_CONNECTIONS}"
                        ))
                    })?;
                if self.max_retries > 100 {
                    return Err(invalid("--max-retries must be at most 100"));
                }
                ModeSettings::Http(HttpSettings {
                    target: parse_url(url)?,
                    authorization: self.auth.as_deref().map(basic_auth).transpose()?,
                    connections,
                    body: self.body,
                    max_retries: self.max_retries,
                })
            }
            Mode::Kafka => {
                refuse(
                    &[(self.flow.is_some(), "--flow")],
                    "does not apply to --mode kafka, which runs flows/seed-kafka.yaml",
                )?;
                let url = self.url.as_deref().ok_or_else(|| {
                    invalid(
                        "--mode kafka needs --url, the server whose Kafka trigger runs the flow, \
                         e.g. http://127.0.0.1:8080",
                    )
                })?;
                let brokers = self
                    .brokers
                    .as_deref()
                    .ok_or_else(|| invalid("--mode kafka needs --brokers, e.g. 127.0.0.1:9092"))?;
                let partitions = match self.partitions {
                    None => NonZeroU16::new(DEFAULT_PARTITIONS),
                    Some(n) => NonZeroU16::new(n).filter(|n| n.get() <= MAX_PARTITIONS),
                }
                .ok_or_else(|| {
                    invalid(format!("--partitions must be within 1..={MAX_PARTITIONS}"))
                })?;
                ModeSettings::Kafka(KafkaSettings {
                    target: parse_url(url)?,
                    authorization: self.auth.as_deref().map(basic_auth).transpose()?,
                    brokers: parse_brokers(brokers)?,
                    partitions,
                    producer: producer_properties(&self.producer_properties)?,
                })
            }
        };
        let (source, flow_source) = match &self.flow {
            None if self.mode == Mode::Kafka => (
                SEED_KAFKA_FLOW.to_owned(),
                "loadtest/flows/seed-kafka.yaml".to_owned(),
            ),
            Some(path) => (
                std::fs::read_to_string(path).map_err(|source| OptionsError::ReadFlow {
                    path: path.clone(),
                    source,
                })?,
                path.display().to_string(),
            ),
            None if self.resume => (
                PAUSE_FLOW.to_owned(),
                "loadtest/flows/pause.yaml".to_owned(),
            ),
            None => (SEED_FLOW.to_owned(), "loadtest/flows/seed.yaml".to_owned()),
        };
        let flow = Flow::parse(&source).map_err(|e| OptionsError::Flow(e.to_string()))?;
        if self.mode == Mode::Kafka {
            crate::kafka::trigger_id(&flow).map_err(OptionsError::Flow)?;
        } else if flow.input("order").is_none() {
            return Err(OptionsError::Flow(format!(
                "{}.{} declares no input `order`: the generator sends one",
                flow.namespace, flow.id
            )));
        }
        Ok(Settings {
            mode,
            flow: Arc::new(flow),
            flow_source,
            rates,
            executions,
            run_secs,
            json: self.json,
            plot: self.plot,
            compare_seed: self.compare_seed,
            find_max,
            drain,
            quiet: self.quiet,
            resume,
            echo,
        })
    }

    /// The options, as the report's `config` (credentials left out).
    fn echo(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": self.mode,
            "url": self.url,
            "brokers": self.brokers,
            "partitions": match self.mode {
                Mode::Kafka => Some(self.partitions.unwrap_or(DEFAULT_PARTITIONS)),
                _ => self.partitions,
            },
            "producer_properties": match self.mode {
                Mode::Kafka => producer_properties(&self.producer_properties)
                    .ok()
                    .map(|p| {
                        p.into_iter()
                            .map(|(k, v)| (k, serde_json::Value::String(v)))
                            .collect::<serde_json::Map<_, _>>()
                    }),
                _ => None,
            },
            "flow": self.flow.as_ref().map(|p| p.display().to_string()),
            "rates": self.rates,
            "executions": self.executions,
            "run_secs": self.run_secs,
            "compare_seed": self.compare_seed,
            "find_max": self.find_max,
            "slo_p99_ms": self.slo_p99_ms,
            "start_rate": self.start_rate,
            "probe_secs": self.probe_secs,
            "max_secs": self.max_secs,
            "precision": self.precision,
            "durability": self.durability,
            "sync_interval_ms": self.sync_interval_ms,
            "data_dir": self.data_dir.as_ref().map(|p| p.display().to_string()),
            "wal_segment_mib": self.wal_segment_mib,
            "wal_writes": self.wal_writes,
            "threads": self.threads,
            "inbox_capacity": self.inbox_capacity,
            "connections": self.connections,
            "body": self.body,
            "max_retries": self.max_retries,
            "drain_secs": self.drain_secs,
            "resume": self.resume,
            "resume_path": self
                .resume
                .then(|| self.resume_path.unwrap_or(ResumePath::Actions)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let mut argv = vec!["peregrine-loadtest"];
        argv.extend_from_slice(args);
        let options = Options::try_parse_from(argv).map_err(|e| e.to_string())?;
        options.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_seed_benchmark_embedded_with_sync() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.rates, SEED_RATES.to_vec());
        assert_eq!(s.executions.get(), 1000);
        assert_eq!(s.flow.id, "seed-jsonata");
        let ModeSettings::Embedded(e) = s.mode else {
            panic!("embedded by default")
        };
        assert_eq!(e.durability, Durability::Sync);
        assert!(s.find_max.is_none());
        assert_eq!(s.echo["executions"], 1000);
    }

    #[test]
    fn run_secs_makes_each_rate_run_as_long() {
        let s = parse(&["--rates", "100,2500,0.5", "--run-secs", "4"]).unwrap();
        assert_eq!(s.executions_at(100.0), 400);
        assert_eq!(s.executions_at(2500.0), 10_000);
        assert_eq!(s.executions_at(0.5), 2);
        assert_eq!(s.executions_at(0.01), 1, "at least one execution");
        assert_eq!(s.echo["run_secs"], 4.0);
        let s = parse(&["--rates", "100", "--executions", "7"]).unwrap();
        assert_eq!(s.executions_at(100.0), 7, "without it, --executions");
    }

    #[test]
    fn nonsense_is_refused_before_the_run() {
        for (args, says) in [
            (&["--run-secs", "0"][..], "positive"),
            (
                &["--rates", "1000000", "--run-secs", "11"][..],
                "above 10000000 executions",
            ),
            (&["--rates", "10,0"][..], "positive"),
            (&["--rates=-5"][..], "positive"),
            (&["--rates", "NaN"][..], "positive"),
            (&["--rates", "2000000"][..], "above"),
            (&["--executions", "0"][..], "--executions"),
            (&["--mode", "http"][..], "needs --url"),
            (&["--url", "http://x:1"][..], "only applies to --mode http"),
            (
                &["--mode", "http", "--url", "https://x"][..],
                "only http://",
            ),
            (
                &["--mode", "http", "--url", "localhost:8080"][..],
                "http://",
            ),
            (
                &[
                    "--mode",
                    "http",
                    "--url",
                    "http://h",
                    "--durability",
                    "sync",
                ][..],
                "only applies to --mode embedded",
            ),
            (
                &["--mode", "http", "--url", "http://h", "--connections", "0"][..],
                "--connections",
            ),
            (
                &[
                    "--mode",
                    "http",
                    "--url",
                    "http://h",
                    "--auth",
                    "nopassword",
                ][..],
                "user:password",
            ),
            (&["--find-max", "--slo-p99-ms", "0"][..], "slo-p99-ms"),
            (&["--find-max", "--probe-secs=-1"][..], "probe-secs"),
            (&["--find-max", "--precision", "2"][..], "precision"),
            (
                &["--sync-interval-ms", "5"][..],
                "only applies to --durability interval",
            ),
            (
                &["--durability", "interval", "--sync-interval-ms", "0"][..],
                "sync-interval-ms",
            ),
            (
                &["--durability", "memory", "--data-dir", "/tmp/x"][..],
                "memory",
            ),
            (&["--threads", "0"][..], "--threads"),
            (&["--plot", "out.png"][..], ".svg"),
            (&["--drain-secs", "0"][..], "drain-secs"),
            (
                &["--flow", "/nonexistent/flow.yaml"][..],
                "cannot read the flow",
            ),
            (&["--brokers", "h:1"][..], "only applies to --mode kafka"),
            (
                &["--mode", "http", "--url", "http://h", "--partitions", "2"][..],
                "--partitions only applies to --mode kafka",
            ),
            (
                &["--producer-property", "acks=1"][..],
                "--producer-property only applies to --mode kafka",
            ),
        ] {
            match parse(args) {
                Ok(_) => panic!("{args:?} was accepted"),
                Err(e) => assert!(e.contains(says), "{args:?}: {e}"),
            }
        }
    }

    /// `--mode kafka --url http://h:8080 --brokers h:9092` with `extra`,
    /// which may give its own `--url` or `--brokers`.
    fn kafka(extra: &[&str]) -> Result<Settings, String> {
        let mut args = vec!["--mode", "kafka"];
        for (name, value) in [("--url", "http://h:8080"), ("--brokers", "h:9092")] {
            if !extra.contains(&name) {
                args.extend_from_slice(&[name, value]);
            }
        }
        args.extend_from_slice(extra);
        parse(&args)
    }

    #[test]
    fn kafka_nonsense_is_refused_before_the_run() {
        for (args, says) in [
            (
                &["--mode", "kafka", "--url", "http://h"][..],
                "needs --brokers",
            ),
            (&["--mode", "kafka", "--brokers", "h:1"][..], "needs --url"),
        ] {
            let e = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} was accepted"));
            assert!(e.contains(says), "{args:?}: {e}");
        }
        for (extra, says) in [
            (&["--brokers", "h"][..], "host:port"),
            (&["--brokers", "h:1,"][..], "host:port"),
            (&["--brokers", ":9092"][..], "host:port"),
            (&["--brokers", "h:0"][..], "host:port"),
            (&["--brokers", "h:port"][..], "host:port"),
            (&["--brokers", "kafka://h:1"][..], "host:port"),
            (&["--partitions", "0"][..], "--partitions must be within"),
            (&["--partitions", "5000"][..], "--partitions must be within"),
            (&["--producer-property", "acks"][..], "key=value"),
            (&["--producer-property", "=1"][..], "key=value"),
            (
                &["--producer-property", "bootstrap.servers=x:1"][..],
                "--brokers",
            ),
            (
                &["--durability", "sync"][..],
                "only applies to --mode embedded",
            ),
            (&["--threads", "2"][..], "only applies to --mode embedded"),
            (&["--flow", "f.yaml"][..], "does not apply to --mode kafka"),
            (&["--url", "https://h"][..], "only http://"),
            (&["--auth", "nopassword"][..], "user:password"),
        ] {
            match kafka(extra) {
                Ok(_) => panic!("{extra:?} was accepted"),
                Err(e) => assert!(e.contains(says), "{extra:?}: {e}"),
            }
        }
    }

    #[test]
    fn kafka_settings_are_typed_with_a_latency_producer_by_default() {
        let s = kafka(&[]).unwrap();
        assert_eq!(s.flow.id, "seed-kafka");
        assert_eq!(s.flow_source, "loadtest/flows/seed-kafka.yaml");
        let ModeSettings::Kafka(k) = &s.mode else {
            panic!("kafka")
        };
        assert_eq!(k.target.authority, "h:8080");
        assert_eq!(k.brokers, "h:9092");
        assert_eq!(k.partitions.get(), DEFAULT_PARTITIONS);
        let get = |k: &KafkaSettings, key: &str| {
            k.producer
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get(k, "linger.ms").as_deref(), Some("0"));
        assert_eq!(get(k, "acks").as_deref(), Some("all"));
        assert_eq!(s.echo["mode"], "kafka");
        assert_eq!(s.echo["brokers"], "h:9092");
        assert_eq!(s.echo["partitions"], 4);
        assert_eq!(s.echo["producer_properties"]["acks"], "all");

        let s = kafka(&[
            "--brokers",
            "a:1, b:2",
            "--partitions",
            "8",
            "--producer-property",
            "acks=1",
            "--producer-property",
            "compression.type = lz4",
        ])
        .unwrap();
        let ModeSettings::Kafka(k) = &s.mode else {
            panic!("kafka")
        };
        assert_eq!(k.brokers, "a:1,b:2");
        assert_eq!(k.partitions.get(), 8);
        assert_eq!(get(k, "acks").as_deref(), Some("1"), "overridden in place");
        assert_eq!(get(k, "compression.type").as_deref(), Some("lz4"));
        assert_eq!(get(k, "linger.ms").as_deref(), Some("0"));
        assert_eq!(s.echo["partitions"], 8);
        assert_eq!(s.echo["producer_properties"]["acks"], "1");
        // Other modes record no Kafka settings.
        let e = parse(&[]).unwrap();
        assert!(e.echo["partitions"].is_null() && e.echo["producer_properties"].is_null());
    }

    #[test]
    fn a_flow_without_the_order_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.yaml");
        std::fs::write(
            &path,
            "id: f\nnamespace: n\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n",
        )
        .unwrap();
        let e = parse(&["--flow", path.to_str().unwrap()]).unwrap_err();
        assert!(e.contains("no input `order`"), "{e}");
        std::fs::write(&path, "not: [a flow").unwrap();
        let e = parse(&["--flow", path.to_str().unwrap()]).unwrap_err();
        assert!(e.contains("does not parse"), "{e}");
    }

    #[test]
    fn http_settings_are_typed() {
        let s = parse(&[
            "--mode",
            "http",
            "--url",
            "http://127.0.0.1:8080/",
            "--auth",
            "admin:s3cret",
            "--connections",
            "8",
        ])
        .unwrap();
        let ModeSettings::Http(h) = s.mode else {
            panic!("http")
        };
        assert_eq!(h.target.authority, "127.0.0.1:8080");
        assert_eq!(h.target.prefix, "");
        assert_eq!(h.authorization.as_deref(), Some("Basic YWRtaW46czNjcmV0"));
        assert_eq!(h.connections.get(), 8);
        assert!(s.echo.get("auth").is_none(), "no credentials in the report");
        let t = parse_url("http://example:9000/base/").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.prefix.as_str()),
            ("example:9000", "/base")
        );
        assert_eq!(parse_url("http://h").unwrap().authority, "h:80");
    }

    #[test]
    fn resume_runs_the_pause_flow_over_http_and_nothing_else() {
        let http = ["--mode", "http", "--url", "http://h:1", "--resume"];
        let s = parse(&http).unwrap();
        assert!(s.rates.is_empty());
        assert_eq!(s.flow.id, "pause");
        assert_eq!(s.flow_source, "loadtest/flows/pause.yaml");
        assert_eq!(
            s.resume,
            Some(ResumeSettings {
                path: ResumePath::Actions,
                server_pid: None
            })
        );
        assert_eq!(s.echo["resume_path"], "actions");
        let mut args = http.to_vec();
        args.extend(["--resume-path", "legacy", "--server-pid", "42"]);
        let s = parse(&args).unwrap();
        assert_eq!(
            s.resume,
            Some(ResumeSettings {
                path: ResumePath::Legacy,
                server_pid: Some(42)
            })
        );
        assert!(parse(&[]).unwrap().resume.is_none());
        for (extra, says) in [
            (&["--rates", "10"][..], "--rates does not apply to --resume"),
            (&["--find-max"][..], "--find-max does not apply"),
            (&["--compare-seed"][..], "--compare-seed does not apply"),
            (&["--plot", "p.svg"][..], "--plot does not apply"),
            (&["--run-secs", "5"][..], "--run-secs does not apply"),
        ] {
            let mut args = http.to_vec();
            args.extend_from_slice(extra);
            let e = parse(&args).expect_err("refused");
            assert!(e.contains(says), "{extra:?}: {e}");
        }
        for (args, says) in [
            (&["--resume"][..], "only applies to --mode http"),
            (
                &["--server-pid", "1"][..],
                "--server-pid only applies to --resume",
            ),
            (
                &[
                    "--mode",
                    "http",
                    "--url",
                    "http://h",
                    "--resume-path",
                    "legacy",
                ][..],
                "--resume-path only applies to --resume",
            ),
        ] {
            let e = parse(args).expect_err("refused");
            assert!(e.contains(says), "{args:?}: {e}");
        }
    }

    #[test]
    fn find_max_runs_no_table_unless_rates_are_given() {
        let s = parse(&["--find-max", "--slo-p99-ms", "20"]).unwrap();
        assert!(s.rates.is_empty());
        assert_eq!(s.find_max.unwrap().slo_p99_ms, 20.0);
        let s = parse(&["--find-max", "--rates", "10"]).unwrap();
        assert_eq!(s.rates, vec![10.0]);
    }

    #[test]
    fn base64_pads() {
        assert_eq!(basic_auth("a:").unwrap(), "Basic YTo=");
        assert_eq!(basic_auth("ab:").unwrap(), "Basic YWI6");
        assert_eq!(basic_auth("a:bcd").unwrap(), "Basic YTpiY2Q=");
    }
}
