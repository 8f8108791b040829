//! What a run reports: the JSON that bars and plots read (keep the field
//! names), and the markdown table in the seed's form.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::latency::Tally;

/// One rate's run. Latencies are in milliseconds from each execution's
/// intended start; `None` (JSON `null`) when nothing completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Asked rate, executions per second.
    pub rate: f64,
    pub executions: u64,
    /// Ended in SUCCESS with the expected outputs (and durable).
    pub completed: u64,
    /// Ended otherwise, with wrong outputs, never ended, or refused after
    /// the retries. `completed + failed == executions`.
    pub failed: u64,
    /// Backpressure answers (full inbox, 429, 503) that were retried; the
    /// retried execution then counts once, as completed or failed.
    pub retried: u64,
    /// The seed's metric: latency of the last execution of the schedule.
    pub last_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Completions per second, from the first intended start to the last
    /// completion.
    pub achieved_rate: f64,
    /// Kafka mode only: where the time went.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stages: Option<KafkaStages>,
}

/// Kafka mode: the stages of a message's way to its execution's end, from
/// the stamps the producer, the broker and the server leave on it, in
/// milliseconds (the server stamps to the millisecond). `None` when nothing
/// was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KafkaStages {
    /// From the producer's send to the broker's acknowledgement.
    pub acked_p50_ms: Option<f64>,
    pub acked_p99_ms: Option<f64>,
    /// From the message's timestamp (set by the producer when it sent it)
    /// to the execution's creation (`state.startDate`): the broker, then
    /// the server's consumer.
    pub created_p50_ms: Option<f64>,
    pub created_p99_ms: Option<f64>,
    /// From the creation to `state.endDate`: the engine.
    pub ended_p50_ms: Option<f64>,
    pub ended_p99_ms: Option<f64>,
}

impl RunReport {
    /// Ends a run that began at `start`: every scheduled execution neither
    /// completed nor failed counts as lost, then the tally is summarized.
    pub fn close(rate: f64, executions: u64, tally: &mut Tally, start: std::time::Instant) -> Self {
        let seen = tally.completed() + tally.failed();
        for _ in seen..executions {
            tally.record_lost();
        }
        let elapsed = tally
            .finished_at()
            .map(|t| t.saturating_duration_since(start));
        Self::from_tally(rate, executions, tally, elapsed)
    }

    /// Summarizes the merged tally of a run whose schedule began at
    /// `elapsed_to_last_completion` before its last completion.
    pub fn from_tally(
        rate: f64,
        executions: u64,
        tally: &Tally,
        elapsed_to_last_completion: Option<std::time::Duration>,
    ) -> Self {
        let achieved_rate = match elapsed_to_last_completion {
            Some(d) if d.as_secs_f64() > 0.0 => tally.completed() as f64 / d.as_secs_f64(),
            _ => 0.0,
        };
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        Self {
            rate,
            executions,
            completed: tally.completed(),
            failed: tally.failed(),
            retried: tally.retried(),
            last_ms: tally.last().map(|d| round(d.as_secs_f64() * 1000.0)),
            p50_ms: tally.quantile_ms(0.5),
            p90_ms: tally.quantile_ms(0.9),
            p99_ms: tally.quantile_ms(0.99),
            p999_ms: tally.quantile_ms(0.999),
            max_ms: tally.max_ms(),
            achieved_rate: round(achieved_rate),
            stages: None,
        }
    }
}

/// What `--find-max` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindMaxReport {
    pub slo_p99_ms: f64,
    /// The highest rate that passed; `None` if none did.
    pub max_rate: Option<f64>,
    /// The lowest rate that failed, if one did.
    pub lowest_failing_rate: Option<f64>,
    /// The search stopped on its time budget before it converged.
    pub budget_exhausted: bool,
    pub seconds: f64,
    /// Every probe, in the order run.
    pub probes: Vec<RunReport>,
}

/// The whole JSON file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub machine: Value,
    pub config: Value,
    pub runs: Vec<RunReport>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub find_max: Option<FindMaxReport>,
    /// `--resume`'s run.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resume: Option<crate::resume::ResumeReport>,
}

/// Kestra 0.22's latency of the last of 1000 executions at `rate`, in ms:
/// (JDBC, Kafka), from the seed's tables.
pub fn kestra_seed(rate: f64) -> (Option<f64>, Option<f64>) {
    const JDBC: [(f64, f64); 5] = [
        (10.0, 150.0),
        (25.0, 200.0),
        (50.0, 5_000.0),
        (75.0, 10_000.0),
        (100.0, 12_000.0),
    ];
    const KAFKA: [(f64, f64); 7] = [
        (10.0, 200.0),
        (25.0, 225.0),
        (50.0, 225.0),
        (75.0, 300.0),
        (100.0, 300.0),
        (150.0, 750.0),
        (200.0, 1_900.0),
    ];
    let find = |table: &[(f64, f64)]| {
        table
            .iter()
            .find(|(r, _)| (r - rate).abs() < 1e-9)
            .map(|(_, ms)| *ms)
    };
    (find(&JDBC), find(&KAFKA))
}

/// Which of Kestra 0.22's figures a table or a plot sets beside ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedColumns {
    Off,
    /// JDBC and Kafka: the embedded and http modes.
    JdbcAndKafka,
    /// Kafka alone: the kafka mode, where a broker sits on the path as in
    /// Kestra's Kafka figures.
    Kafka,
}

impl SeedColumns {
    pub(crate) fn jdbc(self) -> bool {
        self == SeedColumns::JdbcAndKafka
    }

    pub(crate) fn kafka(self) -> bool {
        self != SeedColumns::Off
    }
}

/// A latency as people read it: `0.84 ms`, `12.3 ms`, `150 ms`, `1.9 s`.
pub fn format_ms(ms: Option<f64>) -> String {
    match ms {
        None => "—".to_owned(),
        Some(ms) if ms >= 1_000.0 => {
            let s = ms / 1000.0;
            if s >= 10.0 {
                format!("{s:.0} s")
            } else {
                format!("{s:.1} s")
            }
        }
        Some(ms) if ms >= 100.0 => format!("{ms:.0} ms"),
        Some(ms) if ms >= 10.0 => format!("{ms:.1} ms"),
        Some(ms) => format!("{ms:.2} ms"),
    }
}

fn format_rate(rate: f64) -> String {
    if rate.fract() == 0.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

/// How many times faster than Kestra: `×1,234`.
fn format_factor(kestra_ms: Option<f64>, ours_ms: Option<f64>) -> String {
    match (kestra_ms, ours_ms) {
        (Some(k), Some(o)) if o > 0.0 => {
            let factor = k / o;
            if factor >= 10.0 {
                format!("×{}", thousands(factor.round() as u64))
            } else {
                format!("×{factor:.1}")
            }
        }
        _ => "—".to_owned(),
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The seed's table: `| Throughput (exec/s) | Latency (last) | p50 | p99 |
/// max | completed |`, then Kestra 0.22's figures that `seed` names beside
/// ours, each with the factor by which our last latency is lower.
pub fn markdown_table(runs: &[RunReport], seed: SeedColumns) -> String {
    let mut out = String::new();
    out.push_str("| Throughput (exec/s) | Latency (last) | p50 | p99 | max | completed |");
    match seed {
        SeedColumns::Off => {}
        SeedColumns::JdbcAndKafka => out.push_str(
            " Kestra 0.22 JDBC | Kestra 0.22 Kafka | faster than JDBC | faster than Kafka |",
        ),
        SeedColumns::Kafka => out.push_str(" Kestra 0.22 Kafka | faster than Kafka |"),
    }
    out.push('\n');
    out.push_str("|---|---|---|---|---|---|");
    match seed {
        SeedColumns::Off => {}
        SeedColumns::JdbcAndKafka => out.push_str("---|---|---|---|"),
        SeedColumns::Kafka => out.push_str("---|---|"),
    }
    out.push('\n');
    for run in runs {
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {}/{} |",
            format_rate(run.rate),
            format_ms(run.last_ms),
            format_ms(run.p50_ms),
            format_ms(run.p99_ms),
            format_ms(run.max_ms),
            run.completed,
            run.executions,
        );
        let (jdbc, kafka) = kestra_seed(run.rate);
        match seed {
            SeedColumns::Off => {}
            SeedColumns::JdbcAndKafka => {
                let _ = write!(
                    out,
                    " {} | {} | {} | {} |",
                    format_ms(jdbc),
                    format_ms(kafka),
                    format_factor(jdbc, run.last_ms),
                    format_factor(kafka, run.last_ms),
                );
            }
            SeedColumns::Kafka => {
                let _ = write!(
                    out,
                    " {} | {} |",
                    format_ms(kafka),
                    format_factor(kafka, run.last_ms),
                );
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::latency::Outcome;

    fn sample(rate: f64, last_ms: f64) -> RunReport {
        RunReport {
            rate,
            executions: 1000,
            completed: 1000,
            failed: 0,
            retried: 0,
            last_ms: Some(last_ms),
            p50_ms: Some(0.5),
            p90_ms: Some(0.8),
            p99_ms: Some(1.25),
            p999_ms: Some(2.0),
            max_ms: Some(3.0),
            achieved_rate: rate,
            stages: None,
        }
    }

    #[test]
    fn table_has_the_seed_header_and_one_row_per_run() {
        let table = markdown_table(&[sample(10.0, 0.75), sample(100.0, 1.5)], SeedColumns::Off);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "| Throughput (exec/s) | Latency (last) | p50 | p99 | max | completed |"
        );
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[2],
            "| 10 | 0.75 ms | 0.50 ms | 1.25 ms | 3.00 ms | 1000/1000 |"
        );
    }

    #[test]
    fn compare_seed_adds_kestra_and_the_factor() {
        let table = markdown_table(
            &[sample(100.0, 1.5), sample(200.0, 2.0), sample(300.0, 2.0)],
            SeedColumns::JdbcAndKafka,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with(
            "| Kestra 0.22 JDBC | Kestra 0.22 Kafka | faster than JDBC | faster than Kafka |"
        ));
        assert_eq!(
            lines[2],
            "| 100 | 1.50 ms | 0.50 ms | 1.25 ms | 3.00 ms | 1000/1000 | 12 s | 300 ms | ×8,000 | ×200 |"
        );
        assert!(
            lines[3].contains("| — | 1.9 s | — | ×950 |"),
            "{}",
            lines[3]
        );
        assert!(lines[4].contains("| — | — | — | — |"), "{}", lines[4]);
    }

    #[test]
    fn kafka_mode_compares_with_kestras_kafka_column_only() {
        let table = markdown_table(
            &[sample(10.0, 20.0), sample(100.0, 30.0), sample(300.0, 2.0)],
            SeedColumns::Kafka,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "| Throughput (exec/s) | Latency (last) | p50 | p99 | max | completed | Kestra 0.22 Kafka | faster than Kafka |"
        );
        assert_eq!(lines[1], "|---|---|---|---|---|---|---|---|");
        assert_eq!(
            lines[2],
            "| 10 | 20.0 ms | 0.50 ms | 1.25 ms | 3.00 ms | 1000/1000 | 200 ms | ×10 |"
        );
        assert!(lines[3].ends_with("| 300 ms | ×10 |"), "{}", lines[3]);
        assert!(lines[4].ends_with("| — | — |"), "{}", lines[4]);
        assert!(!table.contains("JDBC"));
    }

    #[test]
    fn seed_figures_are_the_posts() {
        assert_eq!(kestra_seed(10.0), (Some(150.0), Some(200.0)));
        assert_eq!(kestra_seed(50.0), (Some(5_000.0), Some(225.0)));
        assert_eq!(kestra_seed(100.0), (Some(12_000.0), Some(300.0)));
        assert_eq!(kestra_seed(150.0), (None, Some(750.0)));
        assert_eq!(kestra_seed(200.0), (None, Some(1_900.0)));
        assert_eq!(kestra_seed(42.0), (None, None));
    }

    #[test]
    fn latencies_read_naturally() {
        assert_eq!(format_ms(Some(0.842)), "0.84 ms");
        assert_eq!(format_ms(Some(12.34)), "12.3 ms");
        assert_eq!(format_ms(Some(150.0)), "150 ms");
        assert_eq!(format_ms(Some(1_900.0)), "1.9 s");
        assert_eq!(format_ms(Some(12_000.0)), "12 s");
        assert_eq!(format_ms(None), "—");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn json_keeps_the_documented_field_names() {
        let value = serde_json::to_value(sample(10.0, 1.0)).unwrap();
        for key in [
            "rate",
            "executions",
            "completed",
            "failed",
            "last_ms",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "p999_ms",
            "max_ms",
            "achieved_rate",
        ] {
            assert!(value.get(key).is_some(), "missing {key}");
        }
        let back: RunReport = serde_json::from_value(value).unwrap();
        assert_eq!(back, sample(10.0, 1.0));
    }

    #[test]
    fn summary_of_a_tally() {
        let start = Instant::now();
        let mut t = Tally::new();
        for n in 0..10u64 {
            t.record(Outcome::Completed, Duration::from_millis(2), n == 9, start);
        }
        let r = RunReport::from_tally(10.0, 10, &t, Some(Duration::from_secs(1)));
        assert_eq!(r.completed, 10);
        assert_eq!(r.achieved_rate, 10.0);
        assert_eq!(r.last_ms, Some(2.0));
        assert!((r.p99_ms.unwrap() - 2.0).abs() < 0.01);
        let none = RunReport::from_tally(10.0, 10, &Tally::new(), None);
        assert_eq!(
            (none.achieved_rate, none.p50_ms, none.last_ms),
            (0.0, None, None)
        );
    }
}
