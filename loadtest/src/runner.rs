//! A whole invocation: the rate table, the search for the ceiling, and the
//! reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use peregrine_engine::FlowRevision;

use crate::embedded::Embedded;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::kafka::Kafka;
use crate::options::{Durability, FindMax, ModeSettings, Settings};
use crate::report::{FindMaxReport, Report, RunReport, SeedColumns, format_ms, markdown_table};
use crate::schedule::Schedule;
use crate::search::{MaxSearch, sustainable};

/// A probe of the search runs this many executions at least (a p99 of
/// fewer means little) and at most this many (memory for pre-built inputs).
const PROBE_EXECUTIONS_MIN: u64 = 500;
const PROBE_EXECUTIONS_MAX: u64 = 2_000_000;
/// The search never probes above this rate.
const SEARCH_CEILING: f64 = 1_000_000.0;
/// A probe whose executions have not ended this long after its last start
/// has failed the SLO anyway: waiting longer only spends the budget.
const PROBE_DRAIN_MAX: Duration = Duration::from_secs(5);

enum Target {
    Embedded(Embedded),
    Http(Http),
    Kafka(Kafka),
}

impl Target {
    fn run(
        &mut self,
        schedule: Schedule,
        drain: Duration,
        finished: &Arc<AtomicU64>,
    ) -> Result<RunReport> {
        match self {
            Target::Embedded(e) => e.run(schedule, drain, finished),
            Target::Http(h) => h.run(schedule, drain, finished),
            Target::Kafka(k) => k.run(schedule, drain, finished),
        }
    }
}

/// Shows a run's progress on stderr, from a counter the run bumps.
fn with_progress<T>(
    quiet: bool,
    label: String,
    executions: u64,
    work: impl FnOnce(&Arc<AtomicU64>) -> T,
) -> T {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(executions), ProgressDrawTarget::stderr())
    };
    let style = ProgressStyle::with_template(
        "{prefix:>14} [{elapsed_precise}] {wide_bar} {pos}/{len} ended",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(label);
    let finished = Arc::new(AtomicU64::new(0));
    let stop = AtomicBool::new(false);
    let out = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                bar.set_position(finished.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let out = work(&finished);
        stop.store(true, Ordering::Relaxed);
        out
    });
    bar.set_position(finished.load(Ordering::Relaxed));
    bar.finish_and_clear();
    out
}

fn one_line(run: &RunReport) -> String {
    let stages = match &run.stages {
        Some(s) => format!(
            "\n  stages (p50/p99): broker ack {}/{}, message to execution created {}/{}, created to ended {}/{}",
            format_ms(s.acked_p50_ms),
            format_ms(s.acked_p99_ms),
            format_ms(s.created_p50_ms),
            format_ms(s.created_p99_ms),
            format_ms(s.ended_p50_ms),
            format_ms(s.ended_p99_ms),
        ),
        None => String::new(),
    };
    format!(
        "rate {:>9.1}/s: {}/{} completed, {} failed, {} retried, last {}, p50 {}, p99 {}, max {}, achieved {:.1}/s",
        run.rate,
        run.completed,
        run.executions,
        run.failed,
        run.retried,
        format_ms(run.last_ms),
        format_ms(run.p50_ms),
        format_ms(run.p99_ms),
        format_ms(run.max_ms),
        run.achieved_rate,
    ) + &stages
}

fn find_max(
    target: &mut Target,
    search: &FindMax,
    drain: Duration,
    quiet: bool,
) -> Result<FindMaxReport> {
    let began = Instant::now();
    let mut state = MaxSearch::new(
        search.start_rate,
        search.precision,
        SEARCH_CEILING.max(search.start_rate),
    );
    let mut probes = Vec::new();
    let mut budget_exhausted = false;
    let drain = drain.min(PROBE_DRAIN_MAX);
    while let Some(rate) = state.next_rate() {
        let executions = ((rate * search.probe.as_secs_f64()).ceil() as u64)
            .clamp(PROBE_EXECUTIONS_MIN, PROBE_EXECUTIONS_MAX);
        let schedule = Schedule::new(rate, executions);
        // Its schedule, plus roughly as long again to set up and drain.
        let expected = schedule.span() * 2 + Duration::from_secs(1);
        if began.elapsed() + expected > search.budget {
            budget_exhausted = true;
            break;
        }
        let run = with_progress(quiet, format!("probe {rate}/s"), executions, |finished| {
            target.run(schedule, drain, finished)
        })?;
        let passed = sustainable(&run, search.slo_p99_ms);
        eprintln!(
            "{} => {}",
            one_line(&run),
            if passed { "sustained" } else { "not sustained" }
        );
        state.record(rate, passed);
        probes.push(run);
    }
    Ok(FindMaxReport {
        slo_p99_ms: search.slo_p99_ms,
        max_rate: state.best(),
        lowest_failing_rate: state.lowest_failure(),
        budget_exhausted,
        seconds: (began.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        probes,
    })
}

/// Runs what the settings ask, prints the table, writes the JSON and the
/// plot, and returns the report.
pub fn run(settings: Settings) -> Result<Report> {
    let machine = crate::machine::describe();
    let (mut target, mode_label) = match &settings.mode {
        ModeSettings::Embedded(e) => {
            let label = format!(
                "embedded, {} WAL, {} shards",
                match e.durability {
                    Durability::Sync => "sync",
                    Durability::Interval => "interval",
                    Durability::None => "unsynced",
                    Durability::Memory => "no",
                },
                e.threads
            );
            let flow = Arc::new(FlowRevision::new(Arc::clone(&settings.flow)));
            (Target::Embedded(Embedded::new(e.clone(), flow)?), label)
        }
        ModeSettings::Http(h) => {
            let http = Http::new(h.clone(), Arc::clone(&settings.flow))?;
            http.prepare()?;
            (
                Target::Http(http),
                format!("http://{}{}", h.target.authority, h.target.prefix),
            )
        }
        ModeSettings::Kafka(k) => (
            Target::Kafka(Kafka::new(k.clone(), Arc::clone(&settings.flow))?),
            format!(
                "kafka {}, {} partitions, server http://{}{}",
                k.brokers, k.partitions, k.target.authority, k.target.prefix
            ),
        ),
    };
    // In kafka mode a broker sits on the path, as in Kestra's Kafka
    // figures: those are the ones to compare with.
    let seed = match (&settings.mode, settings.compare_seed) {
        (_, false) => SeedColumns::Off,
        (ModeSettings::Kafka(_), true) => SeedColumns::Kafka,
        (_, true) => SeedColumns::JdbcAndKafka,
    };
    eprintln!(
        "peregrine-loadtest: {} of flow {}.{} ({mode_label})",
        if settings.resume.is_some() {
            format!("{} paused executions resumed", settings.executions)
        } else if settings.rates.is_empty() {
            "search".to_owned()
        } else if let Some(secs) = settings.run_secs {
            format!("{secs} s per rate")
        } else {
            format!("{} executions per rate", settings.executions)
        },
        settings.flow.namespace,
        settings.flow.id,
    );
    let mut runs = Vec::with_capacity(settings.rates.len());
    for &rate in &settings.rates {
        let schedule = Schedule::new(rate, settings.executions_at(rate));
        let run = with_progress(
            settings.quiet,
            format!("{rate}/s"),
            schedule.executions(),
            |finished| target.run(schedule, settings.drain, finished),
        )?;
        eprintln!("{}", one_line(&run));
        runs.push(run);
    }
    let search = match &settings.find_max {
        Some(search) => Some(find_max(
            &mut target,
            search,
            settings.drain,
            settings.quiet,
        )?),
        None => None,
    };
    let resume = match (&settings.resume, &target) {
        (Some(resume), Target::Http(http)) => Some(crate::resume::run(
            http,
            resume,
            settings.executions.get(),
            settings.drain,
        )?),
        _ => None,
    };
    drop(target);

    if !runs.is_empty() {
        println!("{}", markdown_table(&runs, seed));
    }
    if let Some(search) = &search {
        println!("{}", markdown_table(&search.probes, SeedColumns::Off));
        match search.max_rate {
            Some(rate) => println!(
                "Max sustainable rate (p99 <= {} ms, every execution completed): {rate} exec/s{}",
                search.slo_p99_ms,
                match search.lowest_failing_rate {
                    Some(fail) => format!(" (not sustained at {fail} exec/s)"),
                    None => String::new(),
                }
            ),
            None => println!(
                "No rate sustained p99 <= {} ms with every execution completed",
                search.slo_p99_ms
            ),
        }
        if search.budget_exhausted {
            println!("(the search ran out of its time budget before it converged)");
        }
    }

    if let Some(resume) = &resume {
        println!(
            "{}",
            crate::resume::resume_table(std::slice::from_ref(resume))
        );
    }

    let mut config = settings.echo.clone();
    if let Some(map) = config.as_object_mut() {
        map.insert("target".into(), mode_label.clone().into());
        map.insert("flow_source".into(), settings.flow_source.clone().into());
    }
    let report = Report {
        machine,
        config,
        runs,
        find_max: search,
        resume,
    };
    if let Some(path) = &settings.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Report(format!("encoding the JSON: {e}")))?;
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))?;
    }
    if let Some(path) = &settings.plot {
        let runs = if report.runs.is_empty() {
            report.find_max.as_ref().map_or(&[][..], |f| &f.probes[..])
        } else {
            &report.runs[..]
        };
        crate::plot::draw(
            path,
            runs,
            seed,
            &format!("Peregrine latency by rate ({mode_label})"),
        )?;
    }
    Ok(report)
}
