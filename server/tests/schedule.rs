//! Schedule triggers on a real server: a `withSeconds` schedule fires each
//! of its dates once, with Kestra's `trigger` variables; a `kill -9` and a
//! restart inside a schedule's window fire every missed date once under
//! `recoverMissedSchedules: ALL`, and only the last under `LAST`; a
//! disabled flow stops firing.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::Server;
use hyper::StatusCode;
use serde_json::Value;

fn every_two_seconds(id: &str, recover: &str) -> String {
    format!(
        r#"id: {id}
namespace: schedules
labels:
  team: core
inputs:
  - id: day
    type: STRING
tasks:
  - id: when
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.date }}}} {{{{ schedule.next }}}} {{{{ inputs.day }}}}"
triggers:
  - id: tick
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "*/2 * * * * *"
    withSeconds: true
    recoverMissedSchedules: {recover}
    labels:
      from: schedule
    inputs:
      day: "{{{{ trigger.date | date('yyyy-MM-dd') }}}}"
"#
    )
}

fn date(text: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// Every execution of flow `flow_id`, as JSON.
async fn executions(server: &Server, flow_id: &str) -> Vec<Value> {
    let reply = server
        .get(&format!(
            "/api/v1/main/executions/search?namespace=schedules&flowId={flow_id}&size=500"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json()["results"].as_array().unwrap().clone()
}

/// The schedule dates of `flow_id`'s executions, each once (a date fired
/// twice fails the test), oldest first.
async fn fired(server: &Server, flow_id: &str) -> Vec<DateTime<Utc>> {
    let all = executions(server, flow_id).await;
    let dates: Vec<DateTime<Utc>> = all
        .iter()
        .map(|e| date(&e["trigger"]["variables"]["date"]))
        .collect();
    let unique: BTreeSet<_> = dates.iter().copied().collect();
    assert_eq!(unique.len(), dates.len(), "a date fired twice: {dates:?}");
    unique.into_iter().collect()
}

async fn wait_fired(server: &Server, flow_id: &str, n: usize) -> Vec<DateTime<Utc>> {
    for _ in 0..300 {
        let dates = fired(server, flow_id).await;
        if dates.len() >= n {
            return dates;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{flow_id} never fired {n} dates");
}

/// The gaps between consecutive dates, in seconds.
fn gaps(dates: &[DateTime<Utc>]) -> Vec<i64> {
    dates
        .windows(2)
        .map(|w| (w[1] - w[0]).num_seconds())
        .collect()
}

#[tokio::test]
async fn a_schedule_with_seconds_fires_each_date_once_with_its_variables() {
    let server = Server::start(&[]).await;
    let created = Utc::now();
    let reply = server
        .create_flow(&every_two_seconds("ticking", "ALL"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let dates = wait_fired(&server, "ticking", 3).await;
    assert!(dates[0] > created, "no date before the flow existed");
    assert!(dates.iter().all(|d| d.timestamp() % 2 == 0), "{dates:?}");
    assert!(gaps(&dates).iter().all(|&g| g == 2), "{dates:?}");

    let all = executions(&server, "ticking").await;
    let first = all
        .iter()
        .find(|e| date(&e["trigger"]["variables"]["date"]) == dates[0])
        .unwrap();
    let id = first["id"].as_str().unwrap();
    let ended = server.wait_for_state(id, "SUCCESS").await;
    let trigger = &ended["trigger"];
    assert_eq!(trigger["id"], "tick");
    assert_eq!(trigger["type"], "io.kestra.plugin.core.trigger.Schedule");
    let vars = &trigger["variables"];
    assert_eq!(date(&vars["next"]) - dates[0], chrono::Duration::seconds(2));
    assert_eq!(
        dates[0] - date(&vars["previous"]),
        chrono::Duration::seconds(2)
    );
    let value = ended["taskRunList"][0]["outputs"]["value"]
        .as_str()
        .unwrap();
    let day = dates[0].format("%Y-%m-%d").to_string();
    assert_eq!(
        value,
        format!(
            "{} {} {day}",
            vars["date"].as_str().unwrap(),
            vars["next"].as_str().unwrap()
        )
    );
    let labels: Vec<(String, String)> = ended["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap().to_owned(),
                l["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        labels.contains(&("from".into(), "schedule".into())),
        "{labels:?}"
    );
    assert!(
        labels.contains(&("team".into(), "core".into())),
        "{labels:?}"
    );

    // Disabled, it fires no more.
    let disabled = every_two_seconds("ticking", "ALL")
        .replace("labels:\n  team", "disabled: true\nlabels:\n  team");
    let reply = server
        .send(
            hyper::Method::PUT,
            "/api/v1/main/flows/schedules/ticking",
            &[("content-type", "application/x-yaml")],
            disabled,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = fired(&server, "ticking").await.len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        fired(&server, "ticking").await.len(),
        before,
        "a disabled flow fires nothing"
    );
}

#[tokio::test]
async fn after_a_kill_9_all_fires_every_missed_date_once_and_last_only_the_last() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let mut server = Server::start_in(&dir, &[]).await;
    for (id, recover) in [("all", "ALL"), ("last", "LAST")] {
        let reply = server.create_flow(&every_two_seconds(id, recover)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    wait_fired(&server, "all", 2).await;
    wait_fired(&server, "last", 2).await;
    server.kill9();
    let killed = Utc::now();
    // About four dates pass while it is down.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let server = Server::start_in(&dir, &[]).await;
    let restarted = Utc::now();
    // Dates after the restart fire too.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let all = fired(&server, "all").await;
    assert!(all.iter().any(|d| *d > restarted), "{all:?}");
    assert!(
        gaps(&all).iter().all(|&g| g == 2),
        "ALL: every date, none missed, none twice: {all:?}"
    );
    let down: Vec<_> = all
        .iter()
        .filter(|d| **d > killed && **d < restarted)
        .collect();
    assert!(
        down.len() >= 3,
        "dates missed while down were fired: {all:?}"
    );

    // LAST: one gap, where the dates missed but the last were; the last
    // fired as the server came back.
    let last = fired(&server, "last").await;
    let jumps: Vec<usize> = (1..last.len())
        .filter(|&i| (last[i] - last[i - 1]).num_seconds() != 2)
        .collect();
    assert_eq!(jumps.len(), 1, "LAST: {last:?}");
    let (before, after) = (last[jumps[0] - 1], last[jumps[0]]);
    assert!(
        before <= killed,
        "{before} fired before the kill at {killed}"
    );
    assert!(
        after >= killed + chrono::Duration::seconds(6) && after <= restarted,
        "the last date missed ({after}) fired on the restart ({killed} .. {restarted})"
    );
}

async fn put_trigger(server: &Server, body: Value) -> common::Reply {
    server
        .send(
            hyper::Method::PUT,
            "/api/v1/main/triggers",
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
}

#[tokio::test]
async fn the_triggers_api_lists_a_schedule_and_disables_it_durably() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let mut server = Server::start_in(&dir, &[]).await;
    let reply = server
        .create_flow(&every_two_seconds("listed", "ALL"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    wait_fired(&server, "listed", 1).await;

    let found = server
        .get("/api/v1/main/triggers/search?namespace=schedules&q=list")
        .await;
    assert_eq!(found.status, StatusCode::OK);
    let found = found.json();
    assert_eq!(found["total"], 1, "{found:#}");
    let entry = &found["results"][0];
    assert_eq!(entry["abstractTrigger"]["cron"], "*/2 * * * * *");
    let context = &entry["triggerContext"];
    assert_eq!(context["triggerId"], "tick");
    assert_eq!(context["disabled"], false);
    let next = date(&context["nextExecutionDate"]);
    assert!(
        next > Utc::now() - chrono::Duration::seconds(3),
        "{context:#}"
    );
    let of_flow = server
        .get("/api/v1/main/triggers/schedules/listed")
        .await
        .json();
    assert_eq!(of_flow["results"][0]["flowId"], "listed");
    let unlock = server
        .send(
            hyper::Method::POST,
            "/api/v1/main/triggers/schedules/listed/tick/unlock",
            &[],
            "",
        )
        .await;
    assert_eq!(unlock.status, StatusCode::CONFLICT);
    let unlock = server
        .send(
            hyper::Method::POST,
            "/api/v1/main/triggers/unlock/by-triggers",
            &[("content-type", "application/json")],
            r#"[{"namespace": "schedules", "flowId": "listed", "triggerId": "tick"}]"#,
        )
        .await;
    assert_eq!(
        unlock.json(),
        serde_json::json!({"count": 0}),
        "nothing is ever locked"
    );
    let restarted = server
        .send(
            hyper::Method::POST,
            "/api/v1/main/triggers/schedules/listed/tick/restart",
            &[],
            "",
        )
        .await;
    assert_eq!(restarted.status, StatusCode::OK, "{:?}", restarted.body);
    assert_eq!(restarted.json()["triggerId"], "tick");
    let missing = server
        .send(
            hyper::Method::POST,
            "/api/v1/main/triggers/schedules/listed/nope/restart",
            &[],
            "",
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Its context deleted: it starts afresh, still listed.
    let deleted = server
        .send(
            hyper::Method::DELETE,
            "/api/v1/main/triggers/schedules/listed/tick",
            &[],
            "",
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.body);
    let again = server
        .get("/api/v1/main/triggers/schedules/listed")
        .await
        .json();
    assert_eq!(again["results"][0]["triggerId"], "tick", "{again:#}");
    let deleted = server
        .send(
            hyper::Method::DELETE,
            "/api/v1/main/triggers/delete/by-query",
            &[("content-type", "application/json")],
            r#"{"filters": [{"field": "NAMESPACE", "operation": "EQUALS", "value": "elsewhere"}]}"#,
        )
        .await;
    assert_eq!(deleted.json(), serde_json::json!({"count": 0}));
    let csv = server
        .get("/api/v1/main/triggers/export/by-query/csv?filters[namespace][EQUALS]=schedules&filters[flowId][EQUALS]=listed")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    let csv = String::from_utf8_lossy(&csv.body).into_owned();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "namespace,flowId,triggerId,date,nextExecutionDate,disabled"
    );
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[1].starts_with("schedules,listed,tick,"), "{csv}");
    let enabled = server
        .send(
            hyper::Method::PUT,
            "/api/v1/main/triggers/set-disabled",
            &[("content-type", "application/json")],
            r#"{"namespace": "schedules", "flowId": "listed", "triggerId": "tick", "disabled": false}"#,
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{:?}", enabled.body);
    assert_eq!(enabled.json()["disabled"], false);

    let named =
        serde_json::json!({"namespace": "schedules", "flowId": "listed", "triggerId": "tick"});
    let mut off = named.clone();
    off["disabled"] = true.into();
    let reply = put_trigger(&server, off).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json()["disabled"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = fired(&server, "listed").await;
    // Disabled across a kill -9: nothing fires.
    server.kill9();
    let server = Server::start_in(&dir, &[]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        fired(&server, "listed").await,
        before,
        "a disabled schedule fires nothing"
    );
    let context = server
        .get("/api/v1/main/triggers/schedules/listed")
        .await
        .json();
    assert_eq!(context["results"][0]["disabled"], true, "{context:#}");

    // Enabled again under ALL: the dates missed meanwhile fire, in order.
    let mut on = named.clone();
    on["disabled"] = false.into();
    let reply = put_trigger(&server, on).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let dates = wait_fired(&server, "listed", before.len() + 3).await;
    assert!(gaps(&dates).iter().all(|&g| g == 2), "{dates:?}");

    let missing = put_trigger(
        &server,
        serde_json::json!({"namespace": "schedules", "flowId": "listed", "triggerId": "nope", "disabled": true}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_schedule_stops_after_an_execution_ends_in_a_state_it_names() {
    let server = Server::start(&[]).await;
    let flow = r#"id: failing
namespace: schedules
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: no
triggers:
  - id: tick
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "*/2 * * * * *"
    withSeconds: true
    stopAfter: [FAILED]
"#;
    let reply = server.create_flow(flow).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let first = wait_fired(&server, "failing", 1).await;
    let mut disabled = false;
    for _ in 0..100 {
        let context = server
            .get("/api/v1/main/triggers/schedules/failing")
            .await
            .json();
        if context["results"][0]["disabled"] == true {
            disabled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(disabled, "the trigger is disabled once an execution FAILED");
    let stopped = fired(&server, "failing").await;
    assert!(stopped.len() <= first.len() + 1, "{stopped:?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        fired(&server, "failing").await,
        stopped,
        "nothing fires after it stopped"
    );
    let all = executions(&server, "failing").await;
    assert!(
        all.iter().all(|e| e["state"]["current"] == "FAILED"),
        "{all:#?}"
    );
}

#[tokio::test]
async fn a_schedule_fires_only_the_dates_its_conditions_meet() {
    let server = Server::start(&[]).await;
    let flow = r#"id: every_fourth
namespace: schedules
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.date }} {{ trigger.next }}"
triggers:
  - id: tick
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "*/2 * * * * *"
    withSeconds: true
    conditions:
      - type: io.kestra.plugin.core.condition.Expression
        expression: "{{ (trigger.date | date('s') | number) % 4 == 0 }}"
      - type: io.kestra.plugin.core.condition.DateTimeBetween
        after: "2020-01-01T00:00:00Z"
"#;
    let reply = server.create_flow(flow).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let dates = wait_fired(&server, "every_fourth", 3).await;
    assert!(dates.iter().all(|d| d.timestamp() % 4 == 0), "{dates:?}");
    assert!(gaps(&dates).iter().all(|&g| g == 4), "{dates:?}");
    let all = executions(&server, "every_fourth").await;
    let next = date(&all[0]["trigger"]["variables"]["next"]);
    let this = date(&all[0]["trigger"]["variables"]["date"]);
    assert_eq!(
        (next - this).num_seconds(),
        4,
        "next skips the date turned down"
    );
}

#[tokio::test]
async fn a_backfill_fires_its_past_dates_once_with_its_labels_then_the_schedule_goes_on() {
    let server = Server::start(&[]).await;
    let flow = r#"id: backfilled
namespace: schedules
inputs:
  - id: day
    type: STRING
    defaults: scheduled
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.day }} {{ trigger.date }}"
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@hourly"
"#;
    let reply = server.create_flow(flow).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let named = serde_json::json!({"namespace": "schedules", "flowId": "backfilled", "triggerId": "hourly"});
    let send = |method: hyper::Method, path: &'static str, body: Value| {
        let server = &server;
        async move {
            server
                .send(
                    method,
                    path,
                    &[("content-type", "application/json")],
                    body.to_string(),
                )
                .await
        }
    };

    // Held while disabled: started, paused, let go on, dropped.
    let mut off = named.clone();
    off["disabled"] = true.into();
    assert_eq!(put_trigger(&server, off).await.status, StatusCode::OK);
    let now = Utc::now();
    let start = now - chrono::Duration::hours(5);
    let end = now - chrono::Duration::minutes(30);
    let mut request = named.clone();
    request["backfill"] = serde_json::json!({
        "start": start.to_rfc3339(),
        "end": end.to_rfc3339(),
        "inputs": {"day": "backfilled"},
        "labels": [{"key": "backfill", "value": "yes"}],
    });
    let reply = put_trigger(&server, request.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let context = reply.json();
    assert_eq!(context["backfill"]["paused"], false, "{context:#}");
    let paused = send(
        hyper::Method::PUT,
        "/api/v1/main/triggers/backfill/pause",
        named.clone(),
    )
    .await;
    assert_eq!(paused.json()["backfill"]["paused"], true);
    let unpaused = send(
        hyper::Method::PUT,
        "/api/v1/main/triggers/backfill/unpause",
        named.clone(),
    )
    .await;
    assert_eq!(unpaused.json()["backfill"]["paused"], false);
    // In bulk: by the triggers named (one with no such flow is skipped),
    // then by a query.
    let stranger =
        serde_json::json!({"namespace": "schedules", "flowId": "nope", "triggerId": "t"});
    let bulk = send(
        hyper::Method::POST,
        "/api/v1/main/triggers/backfill/pause/by-triggers",
        serde_json::json!([named.clone(), stranger]),
    )
    .await;
    assert_eq!(
        bulk.json(),
        serde_json::json!({"count": 1}),
        "{:?}",
        bulk.body
    );
    let listed = server
        .get("/api/v1/main/triggers/schedules/backfilled")
        .await
        .json();
    assert_eq!(
        listed["results"][0]["backfill"]["paused"], true,
        "{listed:#}"
    );
    let bulk = send(
        hyper::Method::POST,
        "/api/v1/main/triggers/backfill/unpause/by-query?namespace=schedules&q=backfilled",
        Value::Null,
    )
    .await;
    assert_eq!(
        bulk.json(),
        serde_json::json!({"count": 1}),
        "{:?}",
        bulk.body
    );
    let listed = server
        .get("/api/v1/main/triggers/schedules/backfilled")
        .await
        .json();
    assert_eq!(
        listed["results"][0]["backfill"]["paused"], false,
        "{listed:#}"
    );
    let dropped = send(
        hyper::Method::POST,
        "/api/v1/main/triggers/backfill/delete",
        named.clone(),
    )
    .await;
    assert_eq!(dropped.status, StatusCode::OK, "{:?}", dropped.body);
    assert!(dropped.json().get("backfill").is_none());
    assert!(
        executions(&server, "backfilled").await.is_empty(),
        "nothing fired while disabled"
    );

    // Enabled, then backfilled: each full hour from start to end, once.
    let mut on = named.clone();
    on["disabled"] = false.into();
    assert_eq!(put_trigger(&server, on).await.status, StatusCode::OK);
    // Kestra 2.0's route for it.
    let reply = send(
        hyper::Method::PUT,
        "/api/v1/main/triggers/backfill/create",
        request,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let hours: Vec<DateTime<Utc>> = (0..7)
        .map(|h| {
            let t = start + chrono::Duration::hours(h);
            DateTime::from_timestamp(t.timestamp() - t.timestamp() % 3600 + 3600, 0).unwrap()
        })
        .filter(|d| *d >= start && *d <= end)
        .collect();
    let dates = wait_fired(&server, "backfilled", hours.len()).await;
    assert_eq!(dates, hours);
    let all = executions(&server, "backfilled").await;
    for e in &all {
        assert_eq!(e["inputs"]["day"], "backfilled", "{e:#}");
        assert!(
            e["labels"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!({"key": "backfill", "value": "yes"})),
            "{e:#}"
        );
    }
    // Done: the context has no backfill, the schedule's next date comes.
    let mut context = Value::Null;
    for _ in 0..100 {
        context = server
            .get("/api/v1/main/triggers/schedules/backfilled")
            .await
            .json()["results"][0]
            .clone();
        if context.get("backfill").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(context.get("backfill").is_none(), "{context:#}");
    assert!(date(&context["nextExecutionDate"]) > now, "{context:#}");
    assert_eq!(
        fired(&server, "backfilled").await.len(),
        hours.len(),
        "no date twice"
    );
}

#[tokio::test]
async fn a_toggle_task_disables_and_enables_a_schedule() {
    let server = Server::start(&[]).await;
    let reply = server
        .create_flow(&every_two_seconds("toggled", "NONE"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let toggler = r#"id: toggler
namespace: schedules
inputs:
  - id: on
    type: BOOLEAN
  - id: which
    type: STRING
    defaults: tick
tasks:
  - id: "off"
    type: io.kestra.plugin.core.trigger.Toggle
    flowId: toggled
    trigger: "{{ inputs.which }}"
    enabled: false
    runIf: "{{ not inputs.on }}"
  - id: "on"
    type: io.kestra.plugin.core.trigger.Toggle
    flowId: toggled
    trigger: "{{ inputs.which }}"
    enabled: true
    runIf: "{{ inputs.on }}"
"#;
    let reply = server.create_flow(toggler).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    for (on, expected) in [(false, true), (true, false)] {
        let started = server
            .trigger(
                "/api/v1/main/executions/schedules/toggler?wait=true",
                serde_json::json!({"on": on}),
            )
            .await;
        let id = common::id_of(&started);
        server.wait_for_state(&id, "SUCCESS").await;
        let context = server
            .get("/api/v1/main/triggers/schedules/toggled")
            .await
            .json();
        assert_eq!(context["results"][0]["disabled"], expected, "on: {on}");
    }
    let started = server
        .trigger(
            "/api/v1/main/executions/schedules/toggler?wait=true",
            serde_json::json!({"on": true, "which": "nope"}),
        )
        .await;
    let id = common::id_of(&started);
    // An unknown trigger fails the task run (its log says "Unable to find
    // trigger nope for the flow schedules.toggled").
    let failed = server.wait_for_state(&id, "FAILED").await;
    let on = failed["taskRunList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["taskId"] == "on")
        .unwrap();
    assert_eq!(on["state"]["current"], "FAILED", "{failed:#}");
    let context = server
        .get("/api/v1/main/triggers/schedules/toggled")
        .await
        .json();
    assert_eq!(context["results"][0]["disabled"], false);
}
