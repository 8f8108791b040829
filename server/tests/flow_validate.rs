//! `peregrine flow validate` on the built binary.

use std::process::{Command, Output};

fn validate(files: &[&std::path::Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["flow", "validate"])
        .args(files)
        .output()
        .expect("peregrine runs")
}

fn write(dir: &tempfile::TempDir, name: &str, yaml: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, yaml).expect("write flow");
    path
}

const GOOD: &str = "id: hello
namespace: company.team
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
";

#[test]
fn valid_files_print_ok_and_exit_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(&dir, "good.yaml", GOOD);
    let out = validate(&[&good]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout.trim(),
        format!("{}: OK (company.team.hello, 1 tasks)", good.display())
    );
}

#[test]
fn each_problem_is_printed_with_file_position_and_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(&dir, "good.yaml", GOOD);
    let bad = write(
        &dir,
        "bad.yaml",
        "id: bad
namespace: company.team
tasks:
  - id: a
    type: Nope
  - id: b
    type: io.kestra.plugin.core.log.Log
",
    );
    let out = validate(&[&good, &bad]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let bad = bad.display();
    assert_eq!(
        lines[1..],
        [
            format!("{bad}:5:11: tasks[0].type: unknown task type `Nope`"),
            format!("{bad}:6:5: tasks[1].message: missing required property `message`"),
        ]
    );
    assert!(
        lines[0].ends_with("good.yaml: OK (company.team.hello, 1 tasks)"),
        "{stdout}"
    );
}

#[test]
fn unreadable_file_fails() {
    let out = validate(&[std::path::Path::new("/nonexistent/flow.yaml")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot read"));
}

/// Template syntax errors are warnings (Kestra fails the task at run time);
/// `--strict` fails the file. Checked once the expression engine rejects
/// the template (the placeholder accepts everything).
#[test]
fn template_errors_warn_and_strict_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        &dir,
        "warn.yaml",
        "id: warn
namespace: company.team
tasks:
  - id: r
    type: io.kestra.plugin.core.debug.Return
    format: '{{ (oops }}'
",
    );
    let out = validate(&[&file]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    let strict = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["flow", "validate", "--strict"])
        .arg(&file)
        .output()
        .expect("peregrine runs");
    if stdout.contains("warning:") {
        let first = stdout.lines().next().unwrap_or_default();
        let prefix = format!(
            "{}:6:13: tasks[0].format: warning: invalid expression",
            file.display()
        );
        assert!(first.starts_with(&prefix), "{stdout}");
        assert!(
            stdout.contains("OK (company.team.warn, 1 tasks, 1 warnings)"),
            "{stdout}"
        );
        assert_eq!(strict.status.code(), Some(1));
    } else {
        assert!(strict.status.success());
    }
}

#[test]
fn kafka_settings_librdkafka_refuses_fail_validation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = |property: &str| {
        format!(
            "id: k\nnamespace: t\ntriggers:\n  - id: t\n    \
             type: io.kestra.plugin.kafka.RealtimeTrigger\n    topic: orders\n    \
             groupId: g\n    properties:\n      bootstrap.servers: 127.0.0.1:1\n      \
             {property}\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    \
             format: x\n"
        )
    };
    let bad = write(&dir, "bad.yaml", &flow("no.such.setting: 1"));
    let out = validate(&[&bad]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("triggers[0].properties") && stdout.contains("no.such.setting"),
        "{stdout}"
    );
    let good = write(&dir, "good.yaml", &flow("fetch.wait.max.ms: 5"));
    let out = validate(&[&good]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
