//! ForEachItem on a real server: a file of 10,000 lines split into batches
//! of 100, one execution of another flow per batch, each reading its batch
//! file; the batches' outputs merged into one file; a failed batch fails
//! the task run unless `transmitFailed: false`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Server;
use hyper::StatusCode;
use serde_json::{Value, json};

fn task<'a>(execution: &'a Value, id: &str) -> &'a Value {
    execution["taskRunList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["taskId"] == id)
        .unwrap_or_else(|| panic!("no task run {id} in {execution}"))
}

/// Waits (up to a minute) for execution `id` to end; its JSON.
async fn ended(server: &Server, id: &str) -> Value {
    for _ in 0..1200 {
        let reply = server.get(&format!("/api/v1/main/executions/{id}")).await;
        let json = reply.json();
        let state = json["state"]["current"].as_str().unwrap_or("");
        if ["SUCCESS", "FAILED", "WARNING", "KILLED"].contains(&state) {
            return json;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("execution {id} did not end");
}

async fn file_text(server: &Server, execution: &str, uri: &str) -> String {
    let reply = server
        .get(&format!(
            "/api/v1/main/executions/{execution}/file?path={}",
            uri.replace('/', "%2F").replace(':', "%3A")
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{uri}");
    String::from_utf8(reply.body.to_vec()).unwrap()
}

const CHILD: &str = r#"
id: batch
namespace: company.team
inputs:
  - id: file
    type: FILE
  - id: n
    type: INT
tasks:
  - id: size
    type: io.kestra.plugin.core.debug.Return
    format: "{{ fileSize(inputs.file) }}"
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    runIf: "{{ inputs.n == 3 and (read(inputs.file) | trim | startsWith('fail')) }}"
outputs:
  - id: bytes
    type: INT
    value: "{{ outputs.size.value }}"
  - id: n
    type: INT
    value: "{{ inputs.n }}"
"#;

#[tokio::test]
async fn a_ten_thousand_line_file_runs_one_execution_per_batch_and_merges_their_outputs() {
    let server = Server::start(&[]).await;
    assert_eq!(server.create_flow(CHILD).await.status, StatusCode::OK);
    let parent = r#"
id: fan
namespace: company.team
tasks:
  - id: gen
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: [items.txt]
    commands:
      - seq 1 10000 > items.txt
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ outputs.gen.outputFiles['items.txt'] }}"
    batch:
      rows: 100
    namespace: company.team
    flowId: batch
    inputs:
      file: "{{ taskrun.items }}"
      n: "{{ taskrun.iteration }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.each_items.numberOfBatches }} {{ outputs.each_items.iterations.SUCCESS }}"
"#;
    assert_eq!(server.create_flow(parent).await.status, StatusCode::OK);
    let started = server
        .trigger("/api/v1/main/executions/company.team/fan", json!({}))
        .await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    let id = common::id_of(&started);
    let done = ended(&server, &id).await;
    assert_eq!(done["state"]["current"], "SUCCESS", "{done}");

    // Kestra's three task runs under the ForEachItem's.
    let each = task(&done, "each");
    for part in ["each_split", "each_items", "each_merge"] {
        assert_eq!(task(&done, part)["parentTaskRunId"], each["id"], "{part}");
        assert_eq!(task(&done, part)["state"]["current"], "SUCCESS", "{part}");
    }
    let items = &task(&done, "each_items")["outputs"];
    assert_eq!(items["numberOfBatches"], 100, "{items}");
    assert_eq!(items["iterations"], json!({"SUCCESS": 100}), "{items}");
    assert_eq!(task(&done, "after")["outputs"]["value"], "100 100");

    // The list of batches, each a file of 100 lines.
    let split = &task(&done, "each_split")["outputs"];
    let splits = file_text(&server, &id, split["splits"].as_str().unwrap()).await;
    let batches: Vec<&str> = splits.lines().collect();
    assert_eq!(batches.len(), 100);
    let third = file_text(&server, &id, batches[2]).await;
    assert_eq!(third.lines().count(), 100);
    assert_eq!(third.lines().next(), Some("201"));

    // One line of outputs per batch: its number and its file's size, which
    // add up to the whole file's.
    let merged = task(&done, "each_merge")["outputs"]["subflowOutputs"]
        .as_str()
        .unwrap()
        .to_owned();
    let merged = file_text(&server, &id, &merged).await;
    assert_eq!(merged.lines().count(), 100, "{merged}");
    let mut total = 0u64;
    let mut numbers = Vec::new();
    for line in merged.lines() {
        // `{bytes:NNN,n:NNN}`
        let fields: std::collections::BTreeMap<&str, u64> = line
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .map(|f| {
                let (k, v) = f.split_once(':').unwrap();
                (k, v.parse().unwrap())
            })
            .collect();
        total += fields["bytes"];
        numbers.push(fields["n"]);
    }
    let whole: u64 = (1..=10_000u64)
        .map(|n| n.to_string().len() as u64 + 1)
        .sum();
    assert_eq!(total, whole);
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=100).collect::<Vec<u64>>());

    // A hundred executions of the child flow, each naming its parent.
    let found = server
        .get("/api/v1/main/executions/search?namespace=company.team&flowId=batch&size=200")
        .await
        .json();
    assert_eq!(found["total"], 100, "{found}");
    for child in found["results"].as_array().unwrap() {
        assert_eq!(child["state"]["current"], "SUCCESS");
        assert_eq!(child["trigger"]["variables"]["executionId"], id.as_str());
        assert_eq!(child["trigger"]["id"], "each_items");
    }
}

#[tokio::test]
async fn a_failed_batch_fails_the_task_run_unless_failures_are_not_transmitted() {
    let server = Server::start(&[]).await;
    assert_eq!(server.create_flow(CHILD).await.status, StatusCode::OK);
    let flow = |id: &str, transmit: bool| {
        format!(
            r#"
id: {id}
namespace: company.team
tasks:
  - id: items
    type: io.kestra.plugin.core.storage.Write
    content: "ok\nok\nfail\nok\n"
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{{{ outputs.items.uri }}}}"
    transmitFailed: {transmit}
    namespace: company.team
    flowId: batch
    inputs:
      file: "{{{{ taskrun.items }}}}"
      n: "{{{{ taskrun.iteration }}}}"
"#
        )
    };
    for (name, transmit, state) in [("strict", true, "FAILED"), ("lenient", false, "SUCCESS")] {
        assert_eq!(
            server.create_flow(&flow(name, transmit)).await.status,
            StatusCode::OK
        );
        let started = server
            .trigger(
                &format!("/api/v1/main/executions/company.team/{name}"),
                json!({}),
            )
            .await;
        let id = common::id_of(&started);
        let done = ended(&server, &id).await;
        assert_eq!(done["state"]["current"], state, "{done}");
        let items = &task(&done, "each_items")["outputs"];
        assert_eq!(items["numberOfBatches"], 4, "{items}");
        assert_eq!(
            items["iterations"],
            json!({"SUCCESS": 3, "FAILED": 1}),
            "{items}"
        );
        assert_eq!(task(&done, "each_items")["state"]["current"], state);
    }
}
