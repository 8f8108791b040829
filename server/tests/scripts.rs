//! Script tasks on a real server, on the process runner: a shell command's
//! outputs, metrics and logs (through the log API); a failing command ends
//! FAILED with its exit code; a timeout kills a `sleep 60` and what it
//! started; files a script writes are stored and read back by the next;
//! a container image is a warning at validation, or a refusal when the
//! server says so; and a `kill -9` during a running script: the script
//! runs again once, what it had started is killed, the execution ends once.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Server;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

fn task<'a>(execution: &'a Value, id: &str) -> &'a Value {
    execution["taskRunList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["taskId"] == id)
        .unwrap_or_else(|| panic!("no task run {id} in {execution}"))
}

async fn run(server: &Server, namespace: &str, flow: &str) -> Value {
    let reply = server
        .trigger(
            &format!("/api/v1/main/executions/{namespace}/{flow}?wait=true"),
            json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.json()
}

/// `GET /api/v1/main/metrics{path}`, answered 200.
async fn metrics(server: &Server, path: String) -> Value {
    let path = format!("/api/v1/main/metrics{path}");
    let reply = server.get(&path).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.body);
    reply.json()
}

async fn log_lines(server: &Server, id: &str) -> Vec<(String, String, String)> {
    let reply = server
        .get(&format!("/api/v1/main/logs/{id}?minLevel=TRACE"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["taskId"].as_str().unwrap_or("").to_owned(),
                l["level"].as_str().unwrap().to_owned(),
                l["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const SHELL: &str = r#"
id: shell
namespace: scripts.team
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    outputFiles:
      - "*.txt"
    commands:
      - echo "working in {{ workingDir }}"
      - 'echo ''::{"outputs":{"answer":42},"metrics":[{"name":"rows","type":"counter","value":3,"tags":{"table":"t1"}},{"name":"took","type":"timer","value":1.5}]}::'''
      - echo "a file" > out.txt
      - echo "a warning of sorts" >&2
  - id: read
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      back.txt: "{{ outputs.sh.outputFiles['out.txt'] }}"
    commands:
      - cat back.txt
      - echo "answer {{ outputs.sh.vars.answer }}"
"#;

#[tokio::test]
async fn a_shell_command_sets_outputs_metrics_logs_and_files() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(data.path(), &[]).await;
    assert_eq!(server.create_flow(SHELL).await.status, StatusCode::OK);
    let ended = run(&server, "scripts.team", "shell").await;
    assert_eq!(ended["state"]["current"], "SUCCESS", "{ended}");
    let sh = task(&ended, "sh");
    assert_eq!(sh["outputs"]["exitCode"], 0);
    assert_eq!(sh["outputs"]["vars"], json!({"answer": 42}));
    let uri = sh["outputs"]["outputFiles"]["out.txt"].as_str().unwrap();
    let id = ended["id"].as_str().unwrap();
    assert!(
        uri.starts_with(&format!(
            "kestra:///scripts/team/shell/executions/{id}/tasks/sh/"
        )),
        "{uri}"
    );
    // The file is served through the execution's file API.
    let path = format!("/api/v1/main/executions/{id}/file?path={}", encode(uri));
    let file = server.get(&path).await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(&file.body[..], b"a file\n");
    let metas = server
        .get(&format!(
            "/api/v1/main/executions/{id}/file/metas?path={}",
            encode(uri)
        ))
        .await;
    assert_eq!(metas.json(), json!({"size": 7}));
    let outside = server
        .get(&format!(
            "/api/v1/main/executions/{id}/file?path={}",
            encode("kestra:///elsewhere/f/x.txt")
        ))
        .await;
    assert_eq!(outside.status, StatusCode::UNPROCESSABLE_ENTITY);
    let missing = server
        .get(&format!(
            "/api/v1/main/executions/{id}/file?path={}",
            encode(&uri.replace("out.txt", "nope.txt"))
        ))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let lines = log_lines(&server, id).await;
    let has = |task: &str, level: &str, text: &str| {
        lines
            .iter()
            .any(|(t, l, m)| t == task && l == level && m.contains(text))
    };
    assert!(has("sh", "INFO", "working in /"), "{lines:?}");
    assert!(has("sh", "ERROR", "a warning of sorts"), "{lines:?}");
    assert!(has("read", "INFO", "a file"), "{lines:?}");
    assert!(has("read", "INFO", "answer 42"), "{lines:?}");
    // No protocol line is logged as such.
    assert!(
        !lines.iter().any(|(_, _, m)| m.contains("::{")),
        "{lines:?}"
    );

    // Its metrics, through the metric API, and again after a kill -9.
    let sh_run = sh["id"].as_str().unwrap().to_owned();
    let check = |page: Value| {
        assert_eq!(page["total"], 2, "{page}");
        let rows = &page["results"][0];
        assert_eq!(
            (&rows["name"], &rows["type"], &rows["value"], &rows["tags"]),
            (
                &json!("rows"),
                &json!("counter"),
                &json!(3.0),
                &json!({"table": "t1"})
            ),
            "{page}"
        );
        assert_eq!(rows["executionId"], id);
        assert_eq!(rows["taskId"], "sh");
        assert_eq!(rows["taskRunId"], sh_run.as_str());
        assert_eq!(rows["namespace"], "scripts.team");
        assert_eq!(rows["flowId"], "shell");
        let took = &page["results"][1];
        // A timer's seconds, kept in milliseconds as Kestra's.
        assert_eq!(
            (&took["type"], &took["value"]),
            (&json!("timer"), &json!(1500.0))
        );
    };
    check(metrics(&server, format!("/{id}")).await);
    let by_value = metrics(&server, format!("/{id}?sort=value:desc&size=1")).await;
    assert_eq!(
        (&by_value["total"], &by_value["results"][0]["name"]),
        (&json!(2), &json!("took"))
    );
    let of_read = metrics(&server, format!("/{id}?taskId=read")).await;
    assert_eq!(of_read["total"], 0, "{of_read}");
    assert_eq!(
        metrics(&server, "/names/scripts.team/shell".into()).await,
        json!(["rows", "took"])
    );
    assert_eq!(
        metrics(&server, "/tasks/scripts.team/shell".into()).await,
        json!(["sh"])
    );
    let summed = metrics(&server, "/aggregates/scripts.team/shell/rows".into()).await;
    assert_eq!(summed["groupBy"], "day", "{summed}");
    let days = summed["aggregations"].as_array().unwrap();
    // From 30 days ago to today, both partly.
    assert_eq!(days.len(), 31, "{summed}");
    let recorded = metrics(&server, format!("/{id}")).await;
    let day = &recorded["results"][0]["timestamp"].as_str().unwrap()[..10];
    let today = format!("{day}T00:00:00.000Z");
    assert_eq!(days[30]["date"], today.as_str(), "{summed}");
    assert_eq!(days[30]["value"], 3.0, "{summed}");
    let total: f64 = days.iter().map(|d| d["value"].as_f64().unwrap()).sum();
    assert_eq!(total, 3.0, "{summed}");
    let bad = server
        .get("/api/v1/main/metrics/aggregates/scripts.team/shell/rows?aggregation=median")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    server.kill9();
    let server = Server::start_in(data.path(), &[]).await;
    check(metrics(&server, format!("/{id}")).await);
    // Deleted with its execution (unless deleteMetrics=false).
    let deleted = server
        .send(
            Method::DELETE,
            &format!("/api/v1/main/executions/{id}"),
            &[],
            String::new(),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = metrics(&server, format!("/{id}")).await;
    assert_eq!(gone["total"], 0, "{gone}");
}

#[tokio::test]
async fn a_failing_command_ends_failed_with_its_exit_code() {
    let server = Server::start(&[]).await;
    let flow = r#"
id: failing
namespace: scripts.team
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Script
    script: |
      echo before
      exit 7
"#;
    assert_eq!(server.create_flow(flow).await.status, StatusCode::OK);
    let ended = run(&server, "scripts.team", "failing").await;
    assert_eq!(ended["state"]["current"], "FAILED", "{ended}");
    assert_eq!(task(&ended, "sh")["state"]["current"], "FAILED");
    // Its exit code stays in its outputs, as Kestra's.
    assert_eq!(task(&ended, "sh")["outputs"]["exitCode"], 7, "{ended}");
    let lines = log_lines(&server, ended["id"].as_str().unwrap()).await;
    assert!(
        lines
            .iter()
            .any(|(t, l, m)| t == "sh" && l == "ERROR" && m == "Command failed with exit code 7"),
        "{lines:?}"
    );
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether process `pid` is running (a zombie is not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[tokio::test]
async fn a_timeout_kills_the_command_and_what_it_started() {
    let marks = tempfile::tempdir().unwrap();
    let pids = marks.path().join("pids");
    let server = Server::start(&[]).await;
    let flow = format!(
        r#"
id: slow
namespace: scripts.team
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    timeout: PT1S
    commands:
      - sleep 60 &
      - echo $! >> {pids}
      - echo $$ >> {pids}
      - echo "before the timeout"
      - sleep 60
"#,
        pids = pids.display()
    );
    assert_eq!(server.create_flow(&flow).await.status, StatusCode::OK);
    let started = std::time::Instant::now();
    let ended = run(&server, "scripts.team", "slow").await;
    assert_eq!(ended["state"]["current"], "FAILED", "{ended}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let written = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<u32> = written.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{written}");
    // The kill reaches them within moments of the timeout.
    for _ in 0..100 {
        if !pids.iter().any(|p| running(*p)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in pids {
        assert!(!running(pid), "process {pid} outlived its task's timeout");
    }
    // What it printed before its time was up is kept, once.
    let lines = log_lines(&server, ended["id"].as_str().unwrap()).await;
    let printed = lines
        .iter()
        .filter(|(t, _, m)| t == "sh" && m == "before the timeout")
        .count();
    assert_eq!(printed, 1, "{lines:?}");
}

#[tokio::test]
async fn a_container_image_is_a_warning_or_a_refusal_as_the_server_says() {
    let flow = r#"
id: boxed
namespace: scripts.team
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    containerImage: ubuntu:22.04
    commands:
      - echo "on the host"
"#;
    let server = Server::start(&[]).await;
    let validated = server
        .send(
            Method::POST,
            "/api/v1/main/flows/validate",
            &[("content-type", "application/x-yaml")],
            flow.to_owned(),
        )
        .await
        .json();
    let warnings = validated[0]["warnings"].to_string();
    assert!(warnings.contains("process runner"), "{validated}");
    assert!(validated[0]["constraints"].is_null(), "{validated}");
    assert_eq!(server.create_flow(flow).await.status, StatusCode::OK);
    let ended = run(&server, "scripts.team", "boxed").await;
    assert_eq!(ended["state"]["current"], "SUCCESS", "{ended}");

    let strict = Server::start(&[("PEREGRINE_SCRIPTS_CONTAINERS", "refuse")]).await;
    let refused = strict.create_flow(flow).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        String::from_utf8_lossy(&refused.body).contains("scripts.containers"),
        "{:?}",
        refused.body
    );
}

#[tokio::test]
async fn a_script_a_kill_interrupted_runs_again_once_and_its_execution_ends_once() {
    let data = tempfile::tempdir().unwrap();
    let marks = tempfile::tempdir().unwrap();
    let runs = marks.path().join("runs");
    let pids = marks.path().join("pids");
    let mut server = Server::start_in(data.path(), &[]).await;
    let flow = format!(
        r#"
id: long
namespace: scripts.team
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo ran >> {runs}
      - sleep 30 &
      - echo $! >> {pids}
      - n=$(wc -l < {runs}); if [ "$n" -lt 2 ]; then sleep 30; fi
      - 'echo ''::{{"outputs":{{"runs":''$n''}}}}::'''
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.sh.vars.runs }}}}"
"#,
        runs = runs.display(),
        pids = pids.display()
    );
    assert_eq!(server.create_flow(&flow).await.status, StatusCode::OK);
    let started = server
        .trigger("/api/v1/main/executions/scripts.team/long", json!({}))
        .await;
    let id = common::id_of(&started);
    // The script is running (it wrote its mark).
    for _ in 0..200 {
        if std::fs::read_to_string(&pids).is_ok_and(|p| !p.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let first: u32 = std::fs::read_to_string(&pids)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(running(first));
    server.kill9();

    let server = Server::start_in(data.path(), &[]).await;
    // What the interrupted script started is gone at the restart.
    assert!(!running(first), "process {first} outlived the server");
    let ended = server.wait_for_state(&id, "SUCCESS").await;
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "ran\nran\n");
    let sh = task(&ended, "sh");
    assert_eq!(sh["outputs"]["vars"]["runs"], 2, "{ended}");
    assert_eq!(sh["attempts"].as_array().unwrap().len(), 2, "{ended}");
    assert_eq!(task(&ended, "after")["outputs"]["value"], "2");
    // Ended once: a search finds it once, SUCCESS.
    let found = server
        .get("/api/v1/main/executions/search?namespace=scripts.team&flowId=long")
        .await
        .json();
    assert_eq!(found["total"], 1, "{found}");
}

#[tokio::test]
async fn a_working_directory_shares_files_between_its_tasks_across_a_kill() {
    let data = tempfile::tempdir().unwrap();
    let marks = tempfile::tempdir().unwrap();
    let runs = marks.path().join("runs");
    let mut server = Server::start_in(data.path(), &[]).await;
    let flow = format!(
        r#"
id: shared
namespace: scripts.team
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    inputFiles:
      greeting.txt: hello
    outputFiles:
      - "*.txt"
    tasks:
      - id: first
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - 'echo "{{{{ taskrun.id }}}}" > {{{{ workingDir }}}}/stay.txt'
      - id: second
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo ran >> {runs}
          - n=$(wc -l < {runs}); if [ "$n" -lt 2 ]; then sleep 30; fi
          - 'echo ''::{{"outputs":{{"stay":"''$(cat stay.txt)''","greeting":"''$(cat greeting.txt)''"}}}}::'''
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(outputs.wd.outputFiles['stay.txt']) | trim }}}}"
"#,
        runs = runs.display(),
    );
    assert_eq!(server.create_flow(&flow).await.status, StatusCode::OK);
    let started = server
        .trigger("/api/v1/main/executions/scripts.team/shared", json!({}))
        .await;
    let id = common::id_of(&started);
    // The second task is running (it wrote its mark): kill the server.
    for _ in 0..200 {
        if std::fs::read_to_string(&runs).is_ok_and(|r| !r.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "ran\n");
    server.kill9();

    let server = Server::start_in(data.path(), &[]).await;
    let ended = server.wait_for_state(&id, "SUCCESS").await;
    // The second task ran again, once, in the folder the first had
    // written to; the first did not run again.
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "ran\nran\n");
    let first = task(&ended, "first");
    assert_eq!(first["attempts"].as_array().unwrap().len(), 1, "{ended}");
    let second = task(&ended, "second");
    assert_eq!(second["attempts"].as_array().unwrap().len(), 2, "{ended}");
    assert_eq!(second["outputs"]["vars"]["stay"], first["id"], "{ended}");
    assert_eq!(second["outputs"]["vars"]["greeting"], "hello", "{ended}");
    assert_eq!(second["parentTaskRunId"], task(&ended, "wd")["id"]);
    // Its output files are stored, the folder is gone.
    let stored = &task(&ended, "wd")["outputs"]["outputFiles"];
    let greeting = stored["greeting.txt"].as_str().unwrap_or_default();
    assert!(
        greeting.starts_with("kestra:///scripts/team/shared/executions/"),
        "{ended}"
    );
    assert_eq!(task(&ended, "after")["outputs"]["value"], first["id"]);
    let work = data.path().join("work").join(&id);
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?} left in {}", work.display());
}

#[tokio::test]
async fn a_restarted_working_directory_runs_all_its_tasks_again_in_a_new_folder() {
    let server = Server::start(&[]).await;
    let marks = tempfile::tempdir().unwrap();
    let runs = marks.path().join("runs");
    let failed_once = marks.path().join("failed-once");
    let flow = format!(
        r#"
id: again
namespace: scripts.team
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: first
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo ran >> {runs}
          - echo kept > stay.txt
      - id: second
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - if [ ! -e {failed_once} ]; then touch {failed_once}; exit 1; fi
          - 'echo ''::{{"outputs":{{"stay":"''$(cat stay.txt)''"}}}}::'''
    errors:
      - id: handler
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - test ! -e stay.txt
"#,
        runs = runs.display(),
        failed_once = failed_once.display(),
    );
    assert_eq!(server.create_flow(&flow).await.status, StatusCode::OK);
    let first = run(&server, "scripts.team", "again").await;
    assert_eq!(first["state"]["current"], "FAILED", "{first}");
    // Its `errors` task worked in a folder of its own.
    assert_eq!(
        task(&first, "handler")["state"]["current"],
        "SUCCESS",
        "{first}"
    );
    let id = first["id"].as_str().unwrap().to_owned();
    let restarted = server
        .send(
            Method::POST,
            &format!("/api/v1/main/executions/{id}/restart"),
            &[],
            "",
        )
        .await;
    assert_eq!(restarted.status, StatusCode::OK, "{:?}", restarted.body);
    let done = server.wait_for_state(&id, "SUCCESS").await;
    // The task that had succeeded ran again: the folder it wrote to is a
    // new one, and the one after it finds its file there.
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "ran\nran\n");
    assert_eq!(
        task(&done, "second")["outputs"]["vars"]["stay"],
        "kept",
        "{done}"
    );
}

/// A multipart body with text parts and file parts (`name`, `file name`,
/// content).
fn multipart(texts: &[(&str, &str)], files: &[(&str, &str, &str)]) -> (String, String) {
    let boundary = "scripts-boundary-Zq3h9dK2";
    let mut body = String::new();
    for (name, value) in texts {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    for (name, file, content) in files {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: text/csv\r\n\r\n{content}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

const CSV: &str = r#"
id: csv
namespace: scripts.team
inputs:
  - id: data
    type: FILE
  - id: label
    type: STRING
    defaults: total
tasks:
  - id: sum
    type: io.kestra.plugin.scripts.python.Script
    inputFiles:
      data.csv: "{{ inputs.data }}"
    outputFiles:
      - result.txt
    script: |
      total = 0
      with open("data.csv") as f:
          for line in f:
              total += int(line.strip() or 0)
      with open("result.txt", "w") as out:
          out.write("{{ inputs.label }}=" + str(total))
      print("summed", total)
  - id: back
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(outputs.sum.outputFiles['result.txt']) }} of {{ fileSize(inputs.data) }} bytes"
"#;

#[tokio::test]
async fn a_python_script_reads_a_file_input_and_its_file_is_read_back() {
    let server = Server::start(&[]).await;
    assert_eq!(server.create_flow(CSV).await.status, StatusCode::OK);
    let (content_type, body) = multipart(
        &[("label", "sum")],
        &[("data", "numbers.csv", "1\n2\n39\n")],
    );
    let reply = server
        .send(
            Method::POST,
            "/api/v1/main/executions/scripts.team/csv?wait=true",
            &[("content-type", &content_type)],
            body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let ended = reply.json();
    assert_eq!(ended["state"]["current"], "SUCCESS", "{ended}");
    let id = ended["id"].as_str().unwrap();
    let input = ended["inputs"]["data"].as_str().unwrap();
    assert_eq!(
        input,
        format!("kestra:///scripts/team/csv/executions/{id}/inputs/data/numbers.csv")
    );
    assert_eq!(
        task(&ended, "back")["outputs"]["value"],
        "sum=42 of 7 bytes"
    );
    // The upload is served back as it came.
    let file = server
        .get(&format!(
            "/api/v1/main/executions/{id}/file?path={}",
            encode(input)
        ))
        .await;
    assert_eq!(&file.body[..], b"1\n2\n39\n");

    // Kestra's older form: the part is `files`, its file name the input.
    let (content_type, body) = multipart(&[], &[("files", "data", "5\n")]);
    let reply = server
        .send(
            Method::POST,
            "/api/v1/main/executions/scripts.team/csv?wait=true",
            &[("content-type", &content_type)],
            body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        task(&reply.json(), "back")["outputs"]["value"],
        "total=5 of 2 bytes"
    );

    // A FILE input given as text that is not an upload's URI is refused.
    let refused = server
        .trigger(
            "/api/v1/main/executions/scripts.team/csv",
            json!({"data": "/etc/passwd"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    // So is an empty upload, and nothing of it is kept.
    let (content_type, body) = multipart(&[], &[("data", "empty.csv", "")]);
    let refused = server
        .send(
            Method::POST,
            "/api/v1/main/executions/scripts.team/csv",
            &[("content-type", &content_type)],
            body,
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        refused.body
    );
}

#[tokio::test]
async fn an_upload_past_the_file_limit_is_refused() {
    let server = Server::start(&[("PEREGRINE_STORAGE_MAX_FILE_SIZE", "1KiB")]).await;
    assert_eq!(server.create_flow(CSV).await.status, StatusCode::OK);
    let big = "1\n".repeat(1000);
    let (content_type, body) = multipart(&[], &[("data", "big.csv", &big)]);
    let reply = server
        .send(
            Method::POST,
            "/api/v1/main/executions/scripts.team/csv",
            &[("content-type", &content_type)],
            body,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        reply.body
    );
}

#[tokio::test]
async fn log_fetch_writes_the_lines_as_ion_to_a_file() {
    let server = Server::start(&[]).await;
    let flow = r#"
id: fetch
namespace: scripts.team
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
  - id: careful
    type: io.kestra.plugin.core.log.Log
    level: WARN
    message: "careful \"now\""
  - id: fetch
    type: io.kestra.plugin.core.log.Fetch
    level: WARN
  - id: only
    type: io.kestra.plugin.core.log.Fetch
    tasksId: [hello]
  - id: back
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(outputs.fetch.uri) }}"
"#;
    assert_eq!(server.create_flow(flow).await.status, StatusCode::OK);
    let ended = run(&server, "scripts.team", "fetch").await;
    assert_eq!(ended["state"]["current"], "SUCCESS", "{ended}");
    assert_eq!(task(&ended, "fetch")["outputs"]["size"], 1, "{ended}");
    assert_eq!(task(&ended, "only")["outputs"]["size"], 1, "{ended}");
    let ion = task(&ended, "back")["outputs"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        ion.starts_with("{namespace:\"scripts.team\",flowId:\"fetch\""),
        "{ion}"
    );
    assert!(ion.contains("level:\"WARN\""), "{ion}");
    assert!(ion.contains(r#"message:"careful \"now\"""#), "{ion}");
    assert!(ion.contains("taskId:\"careful\""), "{ion}");
    assert!(!ion.contains("hello"), "{ion}");
    // An Ion timestamp, unquoted.
    assert!(ion.contains(",timestamp:20"), "{ion}");
}

#[tokio::test]
async fn a_long_scripts_lines_are_shown_while_it_runs_and_kept_once() {
    let server = Server::start(&[("SECRET_TOKEN", "czNjcjN0LXZhbHVl")]).await;
    let flow = r#"
id: slow
namespace: scripts.team
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo "early {{ secret('TOKEN') }}"
      - sleep 3
      - echo late
"#;
    assert_eq!(server.create_flow(flow).await.status, StatusCode::OK);
    let started = server
        .trigger("/api/v1/main/executions/scripts.team/slow", json!({}))
        .await;
    let id = common::id_of(&started);
    let mut seen = None;
    for _ in 0..250 {
        let lines = log_lines(&server, &id).await;
        if lines.iter().any(|(_, _, m)| m.starts_with("early")) {
            seen = Some(lines);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.expect("the first line shows while the script sleeps");
    let state = server
        .get(&format!("/api/v1/main/executions/{id}"))
        .await
        .json();
    assert_eq!(state["state"]["current"], "RUNNING", "{state}");
    assert!(
        seen.contains(&("sh".into(), "INFO".into(), "early ********".into())),
        "masked as it will be kept: {seen:?}"
    );
    assert!(!seen.iter().any(|(_, _, m)| m == "late"), "{seen:?}");
    server.wait_for_state(&id, "SUCCESS").await;
    let lines = log_lines(&server, &id).await;
    let count = |text: &str| lines.iter().filter(|(_, _, m)| m == text).count();
    assert_eq!(
        (count("early ********"), count("late")),
        (1, 1),
        "{lines:?}"
    );
}
