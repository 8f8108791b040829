use std::sync::Arc;

use serde_json::json;

use crate::execution::State;
use crate::executor::ConfigVariables;
use crate::flow::Level;
use crate::storage::{self, Files, LocalStorage, Storage, Uri};
use crate::tasks::testing::{flow, logs_of, only, problems, run, run_with_variables};

/// An engine's surroundings with an internal storage under `dir`.
fn with_storage(dir: &std::path::Path) -> (ConfigVariables, Arc<LocalStorage>) {
    let storage = LocalStorage::open(dir.join("storage")).unwrap();
    let files = Files::new(storage.clone(), dir.join("work"), 1 << 20);
    (ConfigVariables::default().with_files(files), storage)
}

#[test]
fn a_command_sets_outputs_through_its_output_and_logs_the_rest() {
    let exec = run(r#"
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    env:
      WHO: "{{ flow.id }}"
    beforeCommands:
      - echo before
    commands:
      - echo "hello $WHO"
      - 'echo ''::{"outputs":{"n":3,"list":[1,2]}}::'''
      - echo to stderr >&2
      - test "$PWD" = "{{ workingDir }}"
      - test -d "{{ outputDir }}"
      - test "$WORKING_DIR" = "{{ workingDir }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.sh.vars.n }} {{ outputs.sh.exitCode }}"
"#);
    assert_eq!(exec.state(), State::Success, "{:?}", exec.logs());
    let sh = only(&exec, "sh");
    assert_eq!(
        sh.outputs().unwrap(),
        &json!({"exitCode": 0, "vars": {"n": 3, "list": [1, 2]}, "outputFiles": {}})
    );
    let mut logs = logs_of(&exec, "sh");
    logs.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        logs,
        [
            (Level::Info, "before".to_owned()),
            (Level::Info, "hello t".to_owned()),
            (Level::Error, "to stderr".to_owned()),
        ]
    );
    assert_eq!(
        only(&exec, "after").outputs().unwrap()["value"],
        json!("3 0")
    );
}

#[test]
fn a_failing_command_fails_its_task_run_with_the_exit_code_and_stops_the_rest() {
    let exec = run(r#"
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo one
      - 'echo ''::{"outputs":{"stage":"load"}}::'''
      - exit 3
      - echo never
errors:
  - id: report
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.sh.exitCode }} at {{ outputs.sh.vars.stage }}"
"#);
    assert_eq!(exec.state(), State::Failed);
    let logs = logs_of(&exec, "sh");
    assert!(
        logs.contains(&(Level::Error, "Command failed with exit code 3".to_owned())),
        "{logs:?}"
    );
    assert!(!logs.iter().any(|(_, m)| m == "never"), "{logs:?}");
    // As Kestra, the failed task run keeps its exit code and vars.
    let sh = only(&exec, "sh");
    assert_eq!(
        sh.outputs().expect("outputs"),
        &json!({"exitCode": 3, "vars": {"stage": "load"}, "outputFiles": {}})
    );
    assert_eq!(
        only(&exec, "report").outputs().expect("outputs")["value"],
        json!("3 at load")
    );

    // failFast: false runs every line; the last one's status is the
    // command's.
    let exec = run(r#"
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    failFast: false
    commands:
      - "false"
      - echo went on
"#);
    assert_eq!(exec.state(), State::Success);
    assert!(logs_of(&exec, "sh").contains(&(Level::Info, "went on".to_owned())));
}

#[test]
fn stderr_ends_the_task_run_warning_only_when_asked() {
    let tasks = |warn: bool| {
        format!(
            r#"
  - id: sh
    type: io.kestra.plugin.scripts.shell.Script
    warningOnStdErr: {warn}
    script: |
      echo careful >&2
"#
        )
    };
    assert_eq!(run(&tasks(true)).state(), State::Warning);
    assert_eq!(run(&tasks(false)).state(), State::Success);
    // The legacy Bash warns by default, as it did.
    let exec = run(r#"
  - id: bash
    type: io.kestra.core.tasks.scripts.Bash
    commands:
      - echo careful >&2
"#);
    assert_eq!(exec.state(), State::Warning);
}

#[test]
fn output_files_are_stored_and_input_files_written() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, storage) = with_storage(dir.path());
    let exec = run_with_variables(
        r#"
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      in/data.txt: "from the flow {{ flow.id }}\n"
      empty.txt: null
    outputFiles:
      - "*.csv"
      - "sub/**"
    commands:
      - test -f empty.txt
      - cat in/data.txt > copy.csv
      - mkdir -p sub/deep && echo deep > sub/deep/x.txt
      - echo skipped > not-matched.txt
      - echo auto > "{{ outputDir }}/auto.txt"
  - id: use
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      again.csv: "{{ outputs.make.outputFiles['copy.csv'] }}"
    commands:
      - cat again.csv
      - cat {{ outputs.make.outputFiles['sub/deep/x.txt'] }}
"#,
        variables,
    );
    assert_eq!(exec.state(), State::Success, "{:?}", exec.logs());
    let files = &only(&exec, "make").outputs().unwrap()["outputFiles"];
    let keys: Vec<&String> = files.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["auto.txt", "copy.csv", "sub/deep/x.txt"]);
    let uri = Uri::parse(files["copy.csv"].as_str().unwrap()).unwrap();
    assert!(uri.is_of_execution(exec.id()), "{uri}");
    assert!(uri.path().contains("/tasks/make/"), "{uri}");
    assert_eq!(
        storage::read_to_string(&*storage, &uri, 100).unwrap(),
        "from the flow t\n"
    );
    let logs = logs_of(&exec, "use");
    assert!(
        logs.contains(&(Level::Info, "from the flow t".to_owned())),
        "{logs:?}"
    );
    assert!(logs.contains(&(Level::Info, "deep".to_owned())), "{logs:?}");
    // The working directories went with their attempts.
    let work = dir.path().join("work");
    let left: Vec<_> = walkdir(&work);
    assert!(left.is_empty(), "{left:?}");
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    super::walk(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

#[test]
fn output_files_without_a_storage_fail_saying_so() {
    let exec = run(r#"
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["a.txt"]
    commands:
      - echo a > a.txt
"#);
    assert_eq!(exec.state(), State::Failed);
    assert!(
        logs_of(&exec, "sh")
            .iter()
            .any(|(_, m)| m.contains("no internal storage")),
        "{:?}",
        logs_of(&exec, "sh")
    );
}

#[test]
fn a_python_script_runs_from_a_file_with_the_protocol() {
    let exec = run(r#"
  - id: py
    type: io.kestra.plugin.scripts.python.Script
    script: |
      import os, json
      print("::" + json.dumps({"outputs": {"unbuffered": os.environ["PYTHONUNBUFFERED"]}}) + "::")
      print("from {{ flow.namespace }}")
"#);
    assert_eq!(exec.state(), State::Success, "{:?}", exec.logs());
    let py = only(&exec, "py");
    assert_eq!(py.outputs().unwrap()["vars"], json!({"unbuffered": "true"}));
    assert!(logs_of(&exec, "py").contains(&(Level::Info, "from tests".to_owned())));
}

#[test]
fn the_legacy_bash_makes_named_output_files_for_its_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, storage) = with_storage(dir.path());
    let exec = run_with_variables(
        r#"
  - id: bash
    type: io.kestra.core.tasks.scripts.Bash
    outputFiles:
      - first
    commands:
      - echo one > {{ outputFiles.first }}
      - echo lines
"#,
        variables,
    );
    assert_eq!(exec.state(), State::Success, "{:?}", exec.logs());
    let outputs = only(&exec, "bash").outputs().unwrap();
    let uri = Uri::parse(outputs["outputFiles"]["first"].as_str().unwrap()).unwrap();
    assert_eq!(
        storage::read_to_string(&*storage, &uri, 100).unwrap(),
        "one\n"
    );
    assert_eq!(outputs["stdOutLineCount"], json!(1));
    assert_eq!(outputs["files"], outputs["outputFiles"]);
}

#[test]
fn a_timeout_kills_the_script() {
    let started = std::time::Instant::now();
    let exec = run(r#"
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    timeout: PT0.5S
    commands:
      - sleep 60
"#);
    assert_eq!(exec.state(), State::Failed);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn containers_are_warned_about_and_other_runners_refused() {
    let flow = flow(
        r#"
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    containerImage: ubuntu:22.04
    taskRunner:
      type: io.kestra.plugin.scripts.runner.docker.Docker
    commands: ["true"]
"#,
    );
    assert_eq!(flow.containers.len(), 2, "{:?}", flow.containers);
    assert!(flow.containers[0].message.contains("process runner"));
    assert_eq!(flow.warnings.len(), 2);

    let process = flow_ok(
        r#"
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    commands: ["true"]
"#,
    );
    assert!(process.containers.is_empty());

    for (tasks, expected) in [
        (
            "    taskRunner:\n      type: io.kestra.plugin.ee.kubernetes.runner.Kubernetes\n",
            "task runner `io.kestra.plugin.ee.kubernetes.runner.Kubernetes` is not supported yet",
        ),
        (
            "    namespaceFiles:\n      folderPerNamespace: true\n",
            "`namespaceFiles.folderPerNamespace` is not supported yet",
        ),
        (
            "    namespaceFiles:\n      include: [\"regex:.*\"]\n",
            "regex patterns are not supported yet",
        ),
        ("    targetOS: WINDOWS\n", "`targetOS`"),
        ("    unknownThing: 1\n", "unknownThing"),
    ] {
        let found = problems(&format!(
            "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Commands\n    commands: [\"true\"]\n{tasks}"
        ));
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{expected}: {found:?}"
        );
    }
}

fn flow_ok(tasks: &str) -> crate::flow::Flow {
    flow(tasks)
}

#[test]
fn a_node_script_runs_from_a_file() {
    let exec = run(r#"
  - id: js
    type: io.kestra.plugin.scripts.node.Script
    beforeCommands:
      - node --version
    script: |
      const n = [1, 2, 3].reduce((a, b) => a + b, 0);
      console.log("::" + JSON.stringify({outputs: {sum: n}}) + "::");
      console.error("from node");
"#);
    assert_eq!(exec.state(), State::Success, "{:?}", exec.logs());
    assert_eq!(
        only(&exec, "js").outputs().unwrap()["vars"],
        json!({"sum": 6})
    );
    assert!(logs_of(&exec, "js").contains(&(Level::Error, "from node".to_owned())));
}

#[test]
fn templates_read_the_files_scripts_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, _storage) = with_storage(dir.path());
    let exec = run_with_variables(
        r#"
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["*.txt"]
    commands:
      - printf 'hello file' > a.txt
      - touch empty.txt
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{ read(outputs.sh.outputFiles['a.txt']) }}
      {{ fileSize(outputs.sh.outputFiles['a.txt']) }}
      {{ fileExists(outputs.sh.outputFiles['a.txt']) }}
      {{ isFileEmpty(outputs.sh.outputFiles['empty.txt']) }}
      {{ fileExists(outputs.sh.outputFiles['a.txt'] ~ '.gone') }}
  - id: missing
    type: io.kestra.plugin.core.debug.Return
    allowFailure: true
    format: "{{ read(outputs.sh.outputFiles['a.txt'] ~ '.gone') }}"
  - id: elsewhere
    type: io.kestra.plugin.core.debug.Return
    allowFailure: true
    format: "{{ read('kestra:///other/flow/executions/x/inputs/i/f.txt') }}"
  - id: nsfile
    type: io.kestra.plugin.core.debug.Return
    allowFailure: true
    format: "{{ read('scripts/a.sh') }}"
"#,
        variables,
    );
    assert_eq!(
        only(&exec, "read").outputs().unwrap()["value"],
        json!("hello file 10 true true false")
    );
    let failed = |id: &str| {
        logs_of(&exec, id)
            .into_iter()
            .filter(|(l, _)| *l == Level::Error)
            .map(|(_, m)| m)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        failed("missing").contains("does not exist"),
        "{}",
        failed("missing")
    );
    assert!(
        failed("elsewhere").contains("didn't belong to the current execution"),
        "{}",
        failed("elsewhere")
    );
    // A path is a namespace file (none here).
    assert!(
        failed("nsfile").contains("does not exist")
            && failed("nsfile").contains("/_files/scripts/a.sh"),
        "{}",
        failed("nsfile")
    );
}

#[test]
fn a_script_copies_only_files_its_execution_may_read() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, storage) = with_storage(dir.path());
    let other =
        Uri::from_path("other/flow/executions/2Rj1mZ2pR5cXbYv3wq0rTk/inputs/secret/s.txt").unwrap();
    storage.put(&other, &mut &b"theirs"[..], 100).unwrap();
    let exec = run_with_variables(
        &format!(
            r#"
  - id: files
    type: io.kestra.plugin.scripts.shell.Commands
    allowFailure: true
    inputFiles:
      got.txt: "{other}"
    commands:
      - cat got.txt
  - id: inline
    type: io.kestra.plugin.scripts.shell.Commands
    allowFailure: true
    commands:
      - cat {other}
"#
        ),
        variables,
    );
    for id in ["files", "inline"] {
        let logs = logs_of(&exec, id);
        assert!(
            logs.iter()
                .any(|(_, m)| m.contains("didn't belong to the current execution")),
            "{id}: {logs:?}"
        );
        assert!(!logs.iter().any(|(_, m)| m == "theirs"), "{id}: {logs:?}");
    }
}

#[test]
fn output_files_are_not_followed_out_of_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, _storage) = with_storage(dir.path());
    let exec = run_with_variables(
        r#"
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - rmdir "{{ outputDir }}" && ln -s /etc "{{ outputDir }}"
"#,
        variables,
    );
    assert_eq!(exec.state(), State::Failed);
    assert!(
        logs_of(&exec, "sh")
            .iter()
            .any(|(_, m)| m.contains("is a link")),
        "{:?}",
        logs_of(&exec, "sh")
    );
}
