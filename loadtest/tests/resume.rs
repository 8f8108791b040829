//! Runs the real binary in resume mode against a real `peregrine server`
//! (built through cargo, with this test's profile): a few executions of
//! `flows/pause.yaml` paused, resumed through both paths, and ended.

// Helpers outside #[test] functions unwrap too: a broken fixture is a failed test.
#![allow(clippy::unwrap_used)]

use serde_json::Value;

mod common;
use common::{Server, loadtest};

#[test]
fn resume_mode_pauses_resumes_and_ends_every_execution() {
    let server = Server::start();
    let pid = server.child.id().to_string();
    let dir = tempfile::tempdir().unwrap();
    for (path, expected) in [
        ("actions", "/executions/{id}/actions/resume"),
        ("legacy", "/executions/{id}/resume"),
    ] {
        let json = dir.path().join(format!("{path}.json"));
        let out = loadtest(&[
            "--mode",
            "http",
            "--url",
            &server.url,
            "--resume",
            "--resume-path",
            path,
            "--executions",
            "60",
            "--connections",
            "4",
            "--server-pid",
            &pid,
            "--drain-secs",
            "30",
            "--json",
            json.to_str().unwrap(),
            "--quiet",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(stdout.contains("| 60 | 4 |"), "the table: {stdout}");

        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(report["config"]["resume_path"], path);
        assert_eq!(report["runs"], serde_json::json!([]));
        let r = &report["resume"];
        assert_eq!(r["path"], expected);
        // The second run's executions are told from the first's by label.
        for field in ["started", "resumed", "succeeded"] {
            assert_eq!(r[field], 60, "{field}: {r}");
        }
        assert_eq!(r["refused"], 0, "{r}");
        assert!(r["resume_rate"].as_f64().unwrap() > 0.0, "{r}");
        let p50 = r["resume_p50_ms"].as_f64().unwrap();
        assert!(p50 > 0.0 && p50 <= r["resume_p99_ms"].as_f64().unwrap());
        assert!(r["paused_secs"].as_f64().is_some(), "{r}");
        assert!(
            r["ended_secs"].as_f64().unwrap() >= r["resume_secs"].as_f64().unwrap(),
            "{r}"
        );
        let usage = &r["server"];
        assert!(usage["rss_paused_mib"].as_f64().unwrap() > 0.0, "{r}");
        assert!(usage["cpu_us_per_resume_to_end"].as_f64().is_some(), "{r}");
    }
}
