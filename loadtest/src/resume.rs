//! Resume mode (`--mode http --resume`): how fast a server resumes paused
//! executions through the API.
//!
//! 1. `--executions` executions of the flow (default `flows/pause.yaml`: a
//!    Pause with an `onResume` input, then a Return) are started without
//!    waiting (`POST /executions/{namespace}/{flowId}`), each with this
//!    run's label, over `--connections` keep-alive connections;
//! 2. the search (`state=PAUSED` and the run's label) is polled until all
//!    of them are PAUSED;
//! 3. each is resumed once with `{"approved": true}`, through a fresh pool
//!    of `--connections` connections opened before the clock starts, as
//!    fast as the server answers (closed loop: a connection sends its next
//!    resume once its last one is answered): `POST
//!    /executions/{id}/actions/resume` (200 with the execution) or, with
//!    `--resume-path legacy`, Kestra 0.22's `POST /executions/{id}/resume`
//!    (204). An answer means the resume is durable;
//! 4. the search (`state=SUCCESS`) is polled until every resumed one has
//!    ended.
//!
//! Each wait is bounded by `--drain-secs`, each request by
//! [`REQUEST_TIMEOUT`]. With `--server-pid` (the server runs on this
//! machine), its RSS before the starts and with all of them paused, and
//! its CPU time over the resumes, are read from `/proc`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::{Connection, Http, body, content_type, escape, retry_pause};
use crate::latency::{Outcome, Tally};
use crate::options::{HttpSettings, ResumePath, ResumeSettings};
use crate::report::format_ms;

/// A request not answered within this fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the search is asked how many have reached a state.
const POLL: Duration = Duration::from_millis(20);
/// The label every execution of a run carries, with the run's tag.
const LABEL: &str = "loadtest-run";
/// `/proc/PID/stat` counts CPU time in clock ticks of `USER_HZ`, which
/// Linux fixes at 100 for user space on every architecture.
const USER_HZ: f64 = 100.0;

/// What a resume run measured. Times in seconds, latencies in ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeReport {
    pub executions: u64,
    pub connections: usize,
    /// The resume path, `/executions/{id}/actions/resume` or
    /// `/executions/{id}/resume`.
    pub path: String,
    /// Executions started (answered with an id).
    pub started: u64,
    /// From the first start sent to the last one answered.
    pub start_secs: f64,
    /// From the last start answered until the search counted every started
    /// one PAUSED; `None` if it did not within `--drain-secs`.
    pub paused_secs: Option<f64>,
    /// Resumes acknowledged (200 or 204).
    pub resumed: u64,
    /// Resumes answered otherwise, or not at all.
    pub refused: u64,
    /// 429/503 answers to starts or resumes that were retried.
    pub retried: u64,
    /// From the first resume sent to the last one acknowledged.
    pub resume_secs: f64,
    /// `resumed / resume_secs`.
    pub resume_rate: f64,
    /// One resume call, from its send to its answer read whole.
    pub resume_p50_ms: Option<f64>,
    pub resume_p99_ms: Option<f64>,
    pub resume_max_ms: Option<f64>,
    /// From the first resume sent until the search counted every resumed
    /// one SUCCESS; `None` if it did not within `--drain-secs`.
    pub ended_secs: Option<f64>,
    /// SUCCESS, as last counted.
    pub succeeded: u64,
    /// With `--server-pid`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub server: Option<ServerUsage>,
}

/// What the server process used, from `/proc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerUsage {
    /// VmRSS before the first start.
    pub rss_before_mib: Option<f64>,
    /// VmRSS once every started execution was PAUSED.
    pub rss_paused_mib: Option<f64>,
    /// Its anonymous part (`RssAnon`: the heap, not the WAL's mapped
    /// segments).
    pub rss_anon_paused_mib: Option<f64>,
    /// User and system CPU time from the first resume sent to the last
    /// acknowledged, per resume acknowledged.
    pub cpu_us_per_resume: Option<f64>,
    /// The same until every resumed execution had ended (its Return and
    /// final record, and the search polls that watched for it).
    pub cpu_us_per_resume_to_end: Option<f64>,
}

/// The server's resident set (`VmRSS`, or another field of
/// `/proc/PID/status` in kB), MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmRSS:")
}

fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((kib / 1024.0 * 10.0).round() / 10.0)
}

/// User plus system ticks of a `/proc/PID/stat` line (fields 14 and 15,
/// counted after the command name, which may hold spaces and parentheses).
fn cpu_ticks_of(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    cpu_ticks_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU µs per `count` between two tick readings.
fn per(before: Option<u64>, after: Option<u64>, count: u64) -> Option<f64> {
    let ticks = after?.checked_sub(before?)?;
    (count > 0).then(|| (ticks as f64 / USER_HZ * 1e6 / count as f64 * 10.0).round() / 10.0)
}

/// A request's body: its content type and bytes.
type Body = (&'static str, Bytes);

/// One request, read whole; a 429 or 503 is retried after its
/// `Retry-After` (capped), up to `--max-retries`, each counted in
/// `retried`.
async fn call(
    connection: &mut Connection,
    settings: &HttpSettings,
    method: Method,
    path: &str,
    body: Option<&Body>,
    retried: &mut u64,
) -> std::result::Result<(StatusCode, Bytes), String> {
    let mut tries = 0;
    loop {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, settings.target.authority.as_str());
        if let Some(auth) = &settings.authorization {
            builder = builder.header(AUTHORIZATION, auth.as_str());
        }
        let payload = match body {
            Some((kind, bytes)) => {
                builder = builder.header(CONTENT_TYPE, *kind);
                bytes.clone()
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .map_err(|e| e.to_string())?;
        let (status, headers, bytes) =
            tokio::time::timeout(REQUEST_TIMEOUT, connection.exchange(request))
                .await
                .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))??;
        let busy = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        if busy && tries < settings.max_retries {
            tries += 1;
            *retried += 1;
            tokio::time::sleep(retry_pause(&headers)).await;
            continue;
        }
        return Ok((status, bytes));
    }
}

/// `status: body`, short, for an error message.
fn describe(status: StatusCode, bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    format!("{status}: {}", text.chars().take(300).collect::<String>())
}

/// What one connection's task of a phase did.
struct Part {
    tally: Tally,
    /// Started execution ids (start phase).
    ids: Vec<String>,
    /// The first failure seen, for the error message.
    failure: Option<String>,
    /// 429/503 answers retried.
    retried: u64,
}

impl Part {
    fn new() -> Self {
        Self {
            tally: Tally::new(),
            ids: Vec::new(),
            failure: None,
            retried: 0,
        }
    }
}

/// Runs `each` on every item of `items` over `connections` connections,
/// opened before the returned instant; returns that instant and the
/// merged parts.
async fn fan_out<T, F, Fut>(settings: &HttpSettings, items: Vec<T>, each: F) -> (Instant, Vec<Part>)
where
    T: Send + 'static,
    F: Fn(Connection, flume::Receiver<T>) -> Fut,
    Fut: std::future::Future<Output = Part> + Send + 'static,
{
    let (jobs, queue) = flume::bounded(items.len().max(1));
    for item in items {
        // The channel holds them all.
        let _ = jobs.try_send(item);
    }
    drop(jobs);
    let mut connections = Vec::with_capacity(settings.connections.get());
    for _ in 0..settings.connections.get() {
        let mut connection = Connection::new(&settings.target.authority);
        connection.open().await;
        connections.push(connection);
    }
    let start = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|connection| tokio::spawn(each(connection, queue.clone())))
        .collect();
    let mut parts = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(part) = task.await {
            parts.push(part);
        }
    }
    (start, parts)
}

/// How many of the run's executions the search counts in `state`.
async fn count(
    connection: &mut Connection,
    settings: &HttpSettings,
    tag: &str,
    state: &str,
) -> Result<u64> {
    let path = format!(
        "{}/api/v1/main/executions/search?labels={}&state={state}&size=1",
        settings.target.prefix,
        escape(&format!("{LABEL}:{tag}")),
    );
    let (status, bytes) = call(connection, settings, Method::GET, &path, None, &mut 0)
        .await
        .map_err(|e| Error::Server(format!("searching {state}: {e}")))?;
    if status != StatusCode::OK {
        return Err(Error::Server(format!(
            "searching {state}: {}",
            describe(status, &bytes)
        )));
    }
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("total").and_then(Value::as_u64))
        .ok_or_else(|| Error::Server(format!("searching {state}: no total")))
}

/// Polls the search until `target` of the run's executions are in
/// `state`, or `deadline`: when it got there (`None` if it did not), and
/// the last count.
async fn wait_for(
    settings: &HttpSettings,
    tag: &str,
    state: &str,
    target: u64,
    deadline: Instant,
) -> Result<(Option<Instant>, u64)> {
    let mut connection = Connection::new(&settings.target.authority);
    loop {
        let n = count(&mut connection, settings, tag, state).await?;
        let now = Instant::now();
        if n >= target {
            return Ok((Some(now), n));
        }
        if now >= deadline {
            return Ok((None, n));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Runs the four phases on `http`'s server (the flow is deployed).
pub fn run(
    http: &Http,
    resume: &ResumeSettings,
    executions: u64,
    drain: Duration,
) -> Result<ResumeReport> {
    let settings = Arc::new(http.settings.clone());
    let flow = &http.flow;
    let tag = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let pid = resume.server_pid;
    let rss_before = pid.and_then(rss_mib);
    http.runtime.block_on(async {
        // 1. Starts.
        let start_path = Arc::new(format!(
            "{}/api/v1/main/executions/{}/{}?labels={}",
            settings.target.prefix,
            escape(&flow.namespace),
            escape(&flow.id),
            escape(&format!("{LABEL}:{tag}")),
        ));
        let kind = settings.body;
        let (began, parts) = fan_out(&settings, (0..executions).collect(), |mut conn, queue| {
            let settings = Arc::clone(&settings);
            let path = Arc::clone(&start_path);
            async move {
                let mut part = Part::new();
                while let Ok(n) = queue.recv_async().await {
                    let payload = (content_type(kind), body(kind, n));
                    let answer = call(
                        &mut conn,
                        &settings,
                        Method::POST,
                        &path,
                        Some(&payload),
                        &mut part.retried,
                    )
                    .await;
                    let id = match &answer {
                        Ok((StatusCode::OK, bytes)) => serde_json::from_slice::<Value>(bytes)
                            .ok()
                            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned)),
                        _ => None,
                    };
                    match id {
                        Some(id) => part.ids.push(id),
                        None => {
                            part.failure.get_or_insert_with(|| match answer {
                                Ok((status, bytes)) => describe(status, &bytes),
                                Err(e) => e,
                            });
                        }
                    }
                }
                part
            }
        })
        .await;
        let started_at = Instant::now();
        let mut retried: u64 = parts.iter().map(|p| p.retried).sum();
        if let Some(failure) = parts.iter().find_map(|p| p.failure.clone()) {
            return Err(Error::Server(format!(
                "starting an execution of {}.{}: {failure}",
                flow.namespace, flow.id
            )));
        }
        let ids: Vec<String> = parts.into_iter().flat_map(|p| p.ids).collect();
        let started = ids.len() as u64;

        // 2. All PAUSED.
        let (paused_at, paused) =
            wait_for(&settings, &tag, "PAUSED", started, started_at + drain).await?;
        let Some(paused_at) = paused_at else {
            return Err(Error::Server(format!(
                "{paused} of {started} executions were PAUSED after {drain:?}: does the flow pause?"
            )));
        };
        let rss_paused = pid.and_then(rss_mib);
        let rss_anon_paused = pid.and_then(|pid| status_mib(pid, "RssAnon:"));

        // 3. The resumes.
        let resume_body: Body = (
            "application/json",
            Bytes::from_static(br#"{"approved":true}"#),
        );
        let (suffix, acknowledged) = match resume.path {
            ResumePath::Actions => ("actions/resume", StatusCode::OK),
            ResumePath::Legacy => ("resume", StatusCode::NO_CONTENT),
        };
        let prefix = Arc::new(format!("{}/api/v1/main/executions", settings.target.prefix));
        let cpu_before = pid.and_then(cpu_ticks);
        let (resume_start, parts) = fan_out(&settings, ids, |mut conn, queue| {
            let settings = Arc::clone(&settings);
            let prefix = Arc::clone(&prefix);
            let resume_body = resume_body.clone();
            async move {
                let mut part = Part::new();
                while let Ok(id) = queue.recv_async().await {
                    let path = format!("{prefix}/{}/{suffix}", escape(&id));
                    let sent = Instant::now();
                    let answer = call(
                        &mut conn,
                        &settings,
                        Method::POST,
                        &path,
                        Some(&resume_body),
                        &mut part.retried,
                    )
                    .await;
                    let at = Instant::now();
                    match answer {
                        Ok((status, _)) if status == acknowledged => {
                            part.tally.record(Outcome::Completed, at - sent, false, at);
                        }
                        other => {
                            part.tally.record(Outcome::Failed, at - sent, false, at);
                            part.failure.get_or_insert_with(|| match other {
                                Ok((status, bytes)) => describe(status, &bytes),
                                Err(e) => e,
                            });
                        }
                    }
                }
                part
            }
        })
        .await;
        let cpu_acked = pid.and_then(cpu_ticks);
        let mut tally = Tally::new();
        for part in &parts {
            tally.merge(&part.tally);
        }
        if let Some(failure) = parts.iter().find_map(|p| p.failure.as_ref()) {
            eprintln!("peregrine-loadtest: a resume was refused: {failure}");
        }
        retried += parts.iter().map(|p| p.retried).sum::<u64>();
        let resumed = tally.completed();
        let resume_secs = tally
            .finished_at()
            .map_or(0.0, |t| secs(t.saturating_duration_since(resume_start)));

        // 4. All SUCCESS.
        let (ended_at, succeeded) = wait_for(
            &settings,
            &tag,
            "SUCCESS",
            resumed,
            Instant::now().max(resume_start) + drain,
        )
        .await?;
        let cpu_ended = pid.and_then(cpu_ticks);
        Ok(ResumeReport {
            executions,
            connections: settings.connections.get(),
            path: format!("/executions/{{id}}/{suffix}"),
            started,
            start_secs: secs(started_at.saturating_duration_since(began)),
            paused_secs: Some(secs(paused_at.saturating_duration_since(started_at))),
            resumed,
            refused: tally.failed(),
            retried,
            resume_secs,
            resume_rate: if resume_secs > 0.0 {
                (resumed as f64 / resume_secs).round()
            } else {
                0.0
            },
            resume_p50_ms: tally.quantile_ms(0.5),
            resume_p99_ms: tally.quantile_ms(0.99),
            resume_max_ms: tally.max_ms(),
            ended_secs: ended_at.map(|t| secs(t.saturating_duration_since(resume_start))),
            succeeded,
            server: pid.map(|_| ServerUsage {
                rss_before_mib: rss_before,
                rss_paused_mib: rss_paused,
                rss_anon_paused_mib: rss_anon_paused,
                cpu_us_per_resume: per(cpu_before, cpu_acked, resumed),
                cpu_us_per_resume_to_end: per(cpu_before, cpu_ended, resumed),
            }),
        })
    })
}

/// One markdown row per run.
pub fn resume_table(runs: &[ResumeReport]) -> String {
    let mut out = String::from(
        "| executions | connections | started in | to all PAUSED | resumes /s | resume p50 | resume p99 | resume max | first resume to all SUCCESS | SUCCESS | RSS before / paused MiB | server CPU µs per resume (to ack / to end) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let opt = |v: Option<f64>, unit: &str| v.map_or("—".to_owned(), |v| format!("{v}{unit}"));
    for run in runs {
        let (rss, cpu) = match &run.server {
            Some(s) => (
                format!(
                    "{} / {}",
                    opt(s.rss_before_mib, ""),
                    opt(s.rss_paused_mib, "")
                ),
                format!(
                    "{} / {}",
                    opt(s.cpu_us_per_resume, ""),
                    opt(s.cpu_us_per_resume_to_end, "")
                ),
            ),
            None => ("—".to_owned(), "—".to_owned()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} s | {} | {} | {} | {} | {} | {} | {}/{} | {} | {} |",
            run.executions,
            run.connections,
            run.start_secs,
            opt(run.paused_secs, " s"),
            run.resume_rate,
            format_ms(run.resume_p50_ms),
            format_ms(run.resume_p99_ms),
            format_ms(run.resume_max_ms),
            opt(run.ended_secs, " s"),
            run.succeeded,
            run.resumed,
            rss,
            cpu,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime ...
        let stat = "4242 (peregrine (x) y) S 1 2 3 4 5 6 7 8 9 10 123 45 0 0 20 0 9";
        assert_eq!(cpu_ticks_of(stat), Some(168));
        assert_eq!(cpu_ticks_of("garbage"), None);
        assert_eq!(cpu_ticks_of("1 (a) S 1 2"), None);
        assert_eq!(per(Some(100), Some(300), 10_000), Some(2000.0 / 10.0));
        assert_eq!(per(Some(300), Some(100), 10), None);
        assert_eq!(per(Some(1), Some(2), 0), None);
        assert_eq!(per(None, Some(2), 1), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        let rss = rss_mib(std::process::id()).unwrap();
        assert!(rss > 0.0, "{rss}");
        let anon = status_mib(std::process::id(), "RssAnon:").unwrap();
        assert!(anon > 0.0 && anon <= rss, "{anon} of {rss}");
        assert!(cpu_ticks(std::process::id()).is_some());
    }

    #[test]
    fn the_table_has_one_row_per_run() {
        let run = ResumeReport {
            executions: 10_000,
            connections: 16,
            path: "/executions/{id}/actions/resume".into(),
            started: 10_000,
            start_secs: 2.5,
            paused_secs: Some(0.02),
            resumed: 10_000,
            refused: 0,
            retried: 0,
            resume_secs: 2.0,
            resume_rate: 5000.0,
            resume_p50_ms: Some(3.0),
            resume_p99_ms: Some(9.5),
            resume_max_ms: Some(20.0),
            ended_secs: Some(2.1),
            succeeded: 10_000,
            server: Some(ServerUsage {
                rss_before_mib: Some(30.0),
                rss_paused_mib: Some(80.5),
                rss_anon_paused_mib: Some(60.0),
                cpu_us_per_resume: Some(150.0),
                cpu_us_per_resume_to_end: None,
            }),
        };
        let table = resume_table(std::slice::from_ref(&run));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[2],
            "| 10000 | 16 | 2.5 s | 0.02 s | 5000 | 3.00 ms | 9.50 ms | 20.0 ms | 2.1 s | 10000/10000 | 30 / 80.5 | 150 / — |"
        );
        let back: ResumeReport =
            serde_json::from_value(serde_json::to_value(&run).unwrap()).unwrap();
        assert_eq!(back, run);
    }
}
