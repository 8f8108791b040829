//! Runs the real binary in embedded mode on short schedules and reads back
//! what it wrote.

// Helpers outside #[test] functions unwrap too: a broken fixture is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{RUN_FIELDS, assert_complete_run};

fn loadtest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peregrine-loadtest"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("the JSON was written");
    serde_json::from_str(&text).expect("the JSON is well-formed")
}

#[test]
fn short_schedule_at_two_rates_writes_a_complete_report() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let plot = dir.path().join("plot.svg");
    let data = dir.path().join("data");
    let out = loadtest(&[
        "--rates",
        "100,200",
        "--executions",
        "50",
        "--durability",
        "sync",
        "--data-dir",
        data.to_str().unwrap(),
        "--wal-segment-mib",
        "4",
        "--compare-seed",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
        "--quiet",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");

    let report = read_json(&json);
    assert_eq!(
        report["machine"]["cpus"].as_u64().map(|n| n > 0),
        Some(true)
    );
    assert!(report["machine"]["date"].is_string());
    assert_eq!(report["config"]["mode"], "embedded");
    assert_eq!(report["config"]["executions"], 50);
    let runs = report["runs"].as_array().expect("runs is a list");
    assert_eq!(runs.len(), 2);
    assert_complete_run(&runs[0], 100.0, 50);
    assert_complete_run(&runs[1], 200.0, 50);
    assert!(report.get("find_max").is_none());

    let table: Vec<&str> = stdout.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(table.len(), 4, "{stdout}");
    assert!(table[0].starts_with(
        "| Throughput (exec/s) | Latency (last) | p50 | p99 | max | completed | Kestra 0.22 JDBC |"
    ));
    assert!(table[2].starts_with("| 100 |") && table[2].contains("| 50/50 | 12 s | 300 ms |"));
    assert!(table[3].starts_with("| 200 |") && table[3].contains("| — | 1.9 s |"));

    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("<svg") && svg.contains("Peregrine p99"));
    // Each run's WAL folder is removed after it; the data folder stays.
    assert!(data.is_dir());
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
}

#[test]
fn find_max_reports_its_probes_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("max.json");
    let started = std::time::Instant::now();
    let out = loadtest(&[
        "--find-max",
        "--slo-p99-ms",
        "2000",
        "--start-rate",
        "1000",
        "--probe-secs",
        "0.5",
        "--max-secs",
        "6",
        "--durability",
        "none",
        "--wal-segment-mib",
        "4",
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the budget bounds the search"
    );
    let report = read_json(&json);
    assert_eq!(report["runs"].as_array().map(Vec::len), Some(0));
    let search = &report["find_max"];
    assert_eq!(search["slo_p99_ms"].as_f64(), Some(2000.0));
    let probes = search["probes"].as_array().expect("probes");
    assert!(!probes.is_empty());
    assert_eq!(probes[0]["rate"].as_f64(), Some(1000.0));
    for probe in probes {
        for field in RUN_FIELDS {
            assert!(probe.get(field).is_some(), "no `{field}` in {probe}");
        }
    }
    // What the search concluded agrees with its probes (which rates pass
    // depends on the machine, so no particular rate is asserted).
    let passed = |p: &&Value| {
        p["failed"] == 0
            && p["completed"] == p["executions"]
            && p["p99_ms"].as_f64().is_some_and(|ms| ms <= 2000.0)
    };
    let best_passing = probes
        .iter()
        .filter(passed)
        .filter_map(|p| p["rate"].as_f64())
        .fold(None, |best: Option<f64>, r| {
            Some(best.map_or(r, |b| b.max(r)))
        });
    assert_eq!(search["max_rate"].as_f64(), best_passing, "{search}");
    if let Some(fail) = search["lowest_failing_rate"].as_f64() {
        assert!(
            probes
                .iter()
                .any(|p| p["rate"].as_f64() == Some(fail) && !passed(&p)),
            "{search}"
        );
    }
    match best_passing {
        Some(_) => assert!(stdout.contains("Max sustainable rate"), "{stdout}"),
        None => assert!(stdout.contains("No rate sustained"), "{stdout}"),
    }
    assert!(search["seconds"].as_f64().is_some_and(|s| s <= 6.0 + 5.0));
}

#[test]
fn bad_options_stop_before_anything_runs() {
    for (args, says) in [
        (&["--mode", "http"][..], "--url"),
        (&["--rates", "10,0"][..], "positive"),
        (&["--executions", "0"][..], "--executions"),
    ] {
        let out = loadtest(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing ran");
    }
}
