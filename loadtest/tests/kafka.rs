//! Runs the real binary in kafka mode against a real `peregrine server`
//! (built through cargo, with this test's profile) and a real broker
//! (`peregrine_testkit`: tansu on loopback, or `TEST_KAFKA_BROKERS`), and
//! reads back what it wrote.

// Helpers outside #[test] functions unwrap too: a broken fixture is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::time::{Duration, Instant};

use peregrine_testkit::Broker;
use serde_json::Value;

mod common;
use common::{Server, assert_complete_run, loadtest};

impl Server {
    /// The value of a Prometheus counter on `/metrics`.
    fn metric(&self, name: &str) -> f64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    }

    /// The executions' and the Kafka trigger's counters, for a failure's
    /// message.
    fn counters(&self) -> String {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with("peregrine_kafka_") || l.starts_with("peregrine_executions_"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `/metrics`, as text.
    fn metrics(&self) -> String {
        let authority = self.url.strip_prefix("http://").unwrap();
        let mut stream = std::net::TcpStream::connect(authority).unwrap();
        std::io::Write::write_all(
            &mut stream,
            format!("GET /metrics HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }
}

/// A whole run, with every stage measured (the stamps were found on the
/// executions).
fn assert_complete_kafka_run(run: &Value, rate: f64, executions: u64) {
    assert_complete_run(run, rate, executions);
    let stages = &run["stages"];
    for stage in ["acked", "created", "ended"] {
        for q in ["p50", "p99"] {
            let key = format!("{stage}_{q}_ms");
            assert!(stages[&key].as_f64().is_some(), "{key} missing: {run}");
        }
    }
}

#[test]
fn kafka_mode_runs_the_seed_through_a_broker_and_a_real_server() {
    let brokers = Broker::shared().bootstrap().to_owned();
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("kafka.json");
    let plot = dir.path().join("kafka.svg");
    let out = loadtest(&[
        "--mode",
        "kafka",
        "--brokers",
        &brokers,
        "--url",
        &server.url,
        "--rates",
        "20,40",
        "--executions",
        "40",
        "--partitions",
        "3",
        "--producer-property",
        "acks=1",
        "--drain-secs",
        "20",
        "--compare-seed",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
        "--quiet",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}\nthe server's counters:\n{}",
        server.counters()
    );

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let config = &report["config"];
    assert_eq!(config["mode"], "kafka");
    assert_eq!(config["brokers"], brokers.as_str());
    assert_eq!(config["partitions"], 3);
    assert_eq!(config["producer_properties"]["acks"], "1");
    assert_eq!(config["producer_properties"]["linger.ms"], "0");
    assert_eq!(config["flow_source"], "loadtest/flows/seed-kafka.yaml");
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_complete_kafka_run(&runs[0], 20.0, 40);
    assert_complete_kafka_run(&runs[1], 40.0, 40);

    // The table compares with Kestra's Kafka column alone.
    let table: Vec<&str> = stdout.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(table.len(), 4, "{stdout}");
    assert!(
        table[0].ends_with("| completed | Kestra 0.22 Kafka | faster than Kafka |"),
        "{}",
        table[0]
    );
    assert!(table[2].starts_with("| 20 |") && table[2].contains("| 40/40 | — |"));
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("Peregrine p99") && !svg.contains("JDBC"));

    // Every measured message, and the warm-ups, started an execution on
    // the server, through its consumer.
    let started = server.metric("peregrine_kafka_started_total");
    assert!(started >= 2.0 * (40.0 + 50.0), "started {started}");
    assert_eq!(server.metric("peregrine_kafka_undeliverable_total"), 0.0);
}

#[test]
fn kafka_mode_without_a_broker_fails_its_setup_clearly() {
    // Bind then drop: the port is very likely closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let out = loadtest(&[
        "--mode",
        "kafka",
        "--brokers",
        &closed,
        "--url",
        "http://127.0.0.1:9",
        "--rates",
        "10",
        "--executions",
        "1",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("no Kafka broker at {closed} answered")),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}
