use serde_json::json;

use crate::execution::State;
use crate::storage::Files;
use crate::tasks::testing::{logs_of, only, problems, run_with_variables, stored, surroundings};

/// What the work root's execution folders hold (relative paths of
/// everything in them; an emptied execution folder waits for the sweep).
fn work_root_entries(files: &Files) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![files.work_root().to_path_buf()];
    while let Some(at) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if at == files.work_root() {
                stack.push(path);
                continue;
            }
            found.push(
                path.strip_prefix(files.work_root())
                    .unwrap()
                    .display()
                    .to_string(),
            );
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    found
}

#[test]
fn its_tasks_share_one_folder_with_its_input_files_and_it_stores_its_output_files() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, files) = surroundings(dir.path());
    let exec = run_with_variables(
        r#"
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    inputFiles:
      query.sql: "SELECT {{ flow.id }}"
    outputFiles:
      - "*.txt"
    tasks:
      - id: first
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - 'echo "{{ taskrun.id }}" > {{ workingDir }}/stay.txt'
          - cat query.sql > copy.txt
      - id: log
        type: io.kestra.plugin.core.log.Log
        message: between
      - id: second
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - 'echo ''::{"outputs": {"stay":"''$(cat {{ workingDir }}/stay.txt)''","sql":"''$(cat copy.txt)''"}}::'''
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(outputs.wd.outputFiles['copy.txt']) }}"
"#,
        variables,
    );
    assert_eq!(exec.state(), State::Success, "{:?}", exec.logs());
    let first = only(&exec, "first");
    let second = only(&exec, "second").outputs().unwrap();
    assert_eq!(second["vars"]["stay"], json!(first.id.to_string()));
    assert_eq!(second["vars"]["sql"], json!("SELECT t"));
    // Its tasks are task runs of their own, under it.
    let wd = only(&exec, "wd");
    let wd_index = exec.task_runs.iter().position(|t| t.task_id() == "wd");
    assert_eq!(first.parent(), wd_index);
    let stored = &wd.outputs().unwrap()["outputFiles"];
    let names: Vec<&String> = stored.as_object().unwrap().keys().collect();
    assert_eq!(names, ["copy.txt", "stay.txt"]);
    let uri = &stored["copy.txt"];
    assert!(uri.as_str().unwrap().contains("/tasks/wd/"), "{uri}");
    assert_eq!(self::stored(&files, uri), "SELECT t");
    assert_eq!(
        only(&exec, "after").outputs().unwrap()["value"],
        json!("SELECT t")
    );
    // The folder went with it.
    assert_eq!(work_root_entries(&files), Vec::<String>::new());
}

#[test]
fn a_failed_task_stops_the_ones_after_its_files_are_still_stored_and_its_errors_run() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, files) = surroundings(dir.path());
    let exec = run_with_variables(
        r#"
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    outputFiles:
      - partial.txt
    tasks:
      - id: writes
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo half > partial.txt
          - exit 4
      - id: never
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo never
    errors:
      - id: handler
        type: io.kestra.plugin.core.log.Log
        message: "handled {{ errorLogs()[0].message }}"
"#,
        variables,
    );
    assert_eq!(exec.state(), State::Failed, "{:?}", exec.logs());
    assert_eq!(only(&exec, "writes").state(), State::Failed);
    assert_eq!(exec.task_runs_of("never").count(), 0);
    assert_eq!(only(&exec, "handler").state(), State::Success);
    let wd = only(&exec, "wd");
    assert_eq!(wd.state(), State::Failed);
    let uri = &wd.outputs().unwrap()["outputFiles"]["partial.txt"];
    assert_eq!(stored(&files, uri), "half\n");
    assert_eq!(work_root_entries(&files), Vec::<String>::new());
}

#[test]
fn closing_work_that_fails_fails_it_and_no_match_means_no_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, files) = surroundings(dir.path());
    let exec = run_with_variables(
        r#"
  - id: none
    type: io.kestra.plugin.core.flow.WorkingDirectory
    outputFiles:
      - "*.csv"
    tasks:
      - id: quiet
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo x > a.txt
  - id: bad
    type: io.kestra.plugin.core.flow.WorkingDirectory
    outputFiles:
      - "a[.txt"
    tasks:
      - id: ok
        type: io.kestra.plugin.core.log.Log
        message: fine
"#,
        variables,
    );
    assert_eq!(only(&exec, "none").state(), State::Success);
    assert_eq!(only(&exec, "none").outputs().unwrap(), &json!({}));
    assert_eq!(only(&exec, "ok").state(), State::Success);
    assert_eq!(only(&exec, "bad").state(), State::Failed);
    assert!(
        logs_of(&exec, "bad")
            .iter()
            .any(|(_, m)| m.contains("`outputFiles` `a[.txt`")),
        "{:?}",
        logs_of(&exec, "bad")
    );
    assert_eq!(exec.state(), State::Failed);
    assert_eq!(work_root_entries(&files), Vec::<String>::new());
}

#[test]
fn an_input_file_it_may_not_read_fails_it_before_its_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, files) = surroundings(dir.path());
    let exec = run_with_variables(
        r#"
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    inputFiles:
      stolen.txt: "kestra:///other/flow/executions/1aBcDeFgHiJkLmNoPqRsTu/inputs/file/z.txt"
    tasks:
      - id: never
        type: io.kestra.plugin.core.log.Log
        message: never
"#,
        variables,
    );
    assert_eq!(exec.state(), State::Failed);
    assert_eq!(exec.task_runs_of("never").count(), 0);
    assert!(
        logs_of(&exec, "wd")
            .iter()
            .any(|(_, m)| m.contains("didn't belong to the current execution")),
        "{:?}",
        logs_of(&exec, "wd")
    );
    assert_eq!(work_root_entries(&files), Vec::<String>::new());
}

#[test]
fn local_files_write_into_the_shared_folder_and_store_what_their_globs_match() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, files) = surroundings(dir.path());
    let exec = run_with_variables(
        r#"
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: inputs
        type: io.kestra.plugin.core.storage.LocalFiles
        inputs:
          data/hello.txt: "hello {{ flow.id }}"
          empty.txt: ""
      - id: script
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - tr a-z A-Z < data/hello.txt > data/upper.txt
      - id: outputs
        type: io.kestra.core.tasks.storages.LocalFiles
        outputs:
          - data/**
  - id: alone
    type: io.kestra.plugin.core.storage.LocalFiles
    inputs:
      copy.txt: "{{ outputs.outputs.uris['data/upper.txt'] }}"
    outputs:
      - copy.txt
"#,
        variables,
    );
    assert_eq!(exec.state(), State::Success, "{:?}", exec.logs());
    assert_eq!(
        only(&exec, "inputs").outputs().unwrap(),
        &json!({"uris": {}})
    );
    let uris = &only(&exec, "outputs").outputs().unwrap()["uris"];
    let names: Vec<&String> = uris.as_object().unwrap().keys().collect();
    assert_eq!(names, ["data/hello.txt", "data/upper.txt"]);
    let copy = &only(&exec, "alone").outputs().unwrap()["uris"]["copy.txt"];
    assert!(copy.as_str().unwrap().contains("/tasks/alone/"), "{copy}");
    assert_eq!(stored(&files, copy), "HELLO T");
    assert_eq!(work_root_entries(&files), Vec::<String>::new());
}

#[test]
fn only_runnable_tasks_and_supported_properties_are_accepted() {
    let found = problems(
        r#"
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    cache:
      patterns: [node_modules/**]
      ttl: PT1H
    namespaceFiles:
      namespaces: [other]
    tasks:
      - id: ok
        type: io.kestra.plugin.core.log.Log
        message: fine
      - id: nested
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: inner
            type: io.kestra.plugin.core.log.Log
            message: x
"#,
    );
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found.iter().any(|p| p.contains("tasks[1]")
            && p.contains(
                "Only runnable tasks are allowed as children of a WorkingDirectory task"
            )),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("cache") && p.contains("not supported yet")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("namespaceFiles.namespaces") && p.contains("not supported yet")),
        "{found:?}"
    );
    assert!(
        !problems(
            r#"
  - id: wd
    type: io.kestra.core.tasks.flows.WorkingDirectory
    namespaceFiles:
      enabled: false
    tasks:
      - id: ok
        type: io.kestra.plugin.core.log.Log
        message: fine
"#
        )
        .iter()
        .any(|p| !p.is_empty())
    );
}

#[test]
fn closing_work_asked_again_after_its_folder_went_answers_what_it_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, files) = surroundings(dir.path());
    let env = crate::tasks::WorkerEnv::new(None, &variables, None, 2);
    let place = crate::tasks::Place {
        namespace: "tests".into(),
        flow_id: "t".into(),
        execution: crate::execution::ExecutionId::generate(),
        task_id: "wd".into(),
        task_run: "tr1".into(),
        attempt: 0,
    };
    let folder = super::Folder {
        path: dir.path().join("work/gone/wd-tr1"),
        shared: true,
    };
    // What the first closing stored before the crash.
    let uri = place.file("out.txt").unwrap();
    files.storage().put(&uri, &mut &b"x"[..], 10).unwrap();
    let closing = Box::new(super::Closing {
        folder,
        place,
        globs: Ok(vec!["*.txt".to_owned()]),
    });
    let answer = crate::tasks::Job::run(closing, &env, None);
    assert_eq!(
        answer.result.unwrap(),
        json!({"outputFiles": {"out.txt": uri.to_string()}})
    );
}

#[test]
fn a_subflow_or_an_exit_is_no_task_of_a_working_directory() {
    for child in [
        "type: io.kestra.plugin.core.flow.Subflow\n        namespace: a\n        flowId: b",
        "type: io.kestra.plugin.core.execution.Exit",
    ] {
        let found = problems(&format!(
            "  - id: wd\n    type: io.kestra.plugin.core.flow.WorkingDirectory\n    tasks:\n      - id: c\n        {child}\n"
        ));
        assert!(
            found
                .iter()
                .any(|p| p.contains("tasks[0]") && p.contains("Only runnable tasks are allowed")),
            "{child}: {found:?}"
        );
    }
}
