//! The triggers API (Kestra's `TriggerController`): the trigger contexts of
//! the Schedule triggers (where each stands: its next date, the last it
//! fired, whether the API disabled it) and of the Kafka realtime
//! triggers; disabling and enabling a Schedule; its backfill (start,
//! pause, go on, drop); `unlock`, which has nothing to do (a Peregrine
//! trigger is never locked).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use peregrine_engine::flow::TriggerKind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Pairs, Params};
use super::filters;
use super::labels::read;
use crate::schedule::{BackfillChange, TriggerKey, TriggerView};
use crate::state::AppState;
use crate::store::StoredFlow;

const MAX_PAGE_SIZE: usize = 10_000;

/// One trigger as the API lists it: its flow and id, where it stands.
struct Listed {
    trigger: TriggerKey,
    /// The trigger as the flow declares it.
    declared: Option<Value>,
    context: Value,
}

fn date(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Kestra's trigger context.
fn context(view: &TriggerView) -> Value {
    let (namespace, flow_id, trigger_id) = &view.trigger;
    let mut v = json!({
        "namespace": namespace,
        "flowId": flow_id,
        "triggerId": trigger_id,
        "nextExecutionDate": date(view.next),
        "disabled": view.disabled,
    });
    if let Some((fired, _)) = view.fired {
        v["date"] = date(fired).into();
    }
    if let Some(b) = &view.backfill {
        let labels: Vec<Value> = b
            .labels
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        v["backfill"] = json!({
            "start": date(b.start),
            "end": date(b.end),
            "currentDate": date(b.current),
            "previousNextExecutionDate": date(b.resume),
            "paused": b.paused,
            "inputs": b.inputs,
            "labels": labels,
        });
    }
    v
}

/// The trigger `id` of `stored`, as its YAML declares it.
fn declared(stored: &StoredFlow, id: &str) -> Option<Value> {
    stored.to_json(false)["triggers"]
        .as_array()?
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
}

/// Every trigger with a context: the schedules the scheduler plans, and
/// the Kafka triggers of the enabled flows.
async fn listed(state: &AppState) -> Vec<Listed> {
    let mut out = Vec::new();
    for view in state.schedules().list().await {
        let stored = state.flows().get(&view.trigger.0, &view.trigger.1);
        out.push(Listed {
            declared: stored.and_then(|s| declared(&s, &view.trigger.2)),
            context: context(&view),
            trigger: view.trigger,
        });
    }
    for stored in state.flows().all() {
        let flow = stored.flow();
        if flow.disabled {
            continue;
        }
        for t in &flow.triggers {
            if matches!(t.kind, TriggerKind::KafkaRealtime { .. }) && !t.disabled {
                out.push(Listed {
                    trigger: (flow.namespace.clone(), flow.id.clone(), t.id.clone()),
                    declared: declared(&stored, &t.id),
                    context: json!({
                        "namespace": flow.namespace,
                        "flowId": flow.id,
                        "triggerId": t.id,
                        "disabled": false,
                    }),
                });
            }
        }
    }
    out.sort_by(|a, b| a.trigger.cmp(&b.trigger));
    out
}

/// `q` in the namespace, the flow id or the trigger id; `namespace` as a
/// prefix (`company` holds `company.team`); `flowId` exactly.
fn matches(query: &Pairs, (namespace, flow_id, trigger_id): &TriggerKey) -> bool {
    let q = query
        .get("q")
        .filter(|q| !q.is_empty())
        .map(str::to_lowercase);
    let holds = |s: &str| q.as_deref().is_none_or(|q| s.to_lowercase().contains(q));
    (holds(namespace) || holds(flow_id) || holds(trigger_id))
        && query
            .get("namespace")
            .filter(|n| !n.is_empty())
            .is_none_or(|n| peregrine_engine::flow::is_within_namespace(namespace, n))
        && query
            .get("flowId")
            .filter(|f| !f.is_empty())
            .is_none_or(|f| flow_id == f)
}

fn paged(items: Vec<Value>, page: usize, size: usize) -> Json<Value> {
    let total = items.len();
    let results: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .collect();
    Json(json!({"results": results, "total": total}))
}

/// `GET /triggers/search`: `{results: [{abstractTrigger, triggerContext}],
/// total}`.
pub async fn search(State(state): State<AppState>, query: Pairs) -> ApiResult<Json<Value>> {
    let (page, size) = filters::page(&query, MAX_PAGE_SIZE)?;
    let found = listed(&state)
        .await
        .into_iter()
        .filter(|l| matches(&query, &l.trigger))
        .map(|l| json!({"abstractTrigger": l.declared, "triggerContext": l.context}))
        .collect();
    Ok(paged(found, page, size))
}

/// `GET /triggers/{namespace}/{flowId}`: the flow's trigger contexts.
pub async fn of_flow(
    State(state): State<AppState>,
    Params((namespace, flow_id)): Params<(String, String)>,
    query: Pairs,
) -> ApiResult<Json<Value>> {
    let (page, size) = filters::page(&query, MAX_PAGE_SIZE)?;
    let found = listed(&state)
        .await
        .into_iter()
        .filter(|l| l.trigger.0 == namespace && l.trigger.1 == flow_id)
        .filter(|l| matches(&query, &l.trigger))
        .map(|l| l.context)
        .collect();
    Ok(paged(found, page, size))
}

/// A trigger as a request names it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Named {
    namespace: String,
    flow_id: String,
    trigger_id: String,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    backfill: Option<Value>,
}

impl Named {
    /// The trigger `key` names, with nothing to change yet.
    fn of((namespace, flow_id, trigger_id): TriggerKey) -> Self {
        Self {
            namespace,
            flow_id,
            trigger_id,
            disabled: None,
            backfill: None,
        }
    }

    fn key(&self) -> TriggerKey {
        (
            self.namespace.clone(),
            self.flow_id.clone(),
            self.trigger_id.clone(),
        )
    }
}

/// What kind of trigger `named` is, or 404 as Kestra words it.
fn kind_of(state: &AppState, named: &Named) -> ApiResult<&'static str> {
    let Some(stored) = state.flows().get(&named.namespace, &named.flow_id) else {
        return Err(ApiError::not_found(format!(
            "Flow of trigger {} not found",
            named.trigger_id
        )));
    };
    let found = stored
        .flow()
        .triggers
        .iter()
        .find(|t| t.id == named.trigger_id);
    match found.map(|t| &t.kind) {
        Some(TriggerKind::Schedule { .. }) => Ok("schedule"),
        Some(TriggerKind::KafkaRealtime { .. }) => Ok("realtime"),
        Some(_) => Ok("other"),
        None => Err(ApiError::not_found(format!(
            "Flow {} has no trigger {}",
            named.flow_id, named.trigger_id
        ))),
    }
}

/// Disables or enables a Schedule through the scheduler; its context.
async fn set_disabled(state: &AppState, named: &Named, disabled: bool) -> ApiResult<Value> {
    match kind_of(state, named)? {
        "schedule" => {}
        "realtime" => {
            return Err(ApiError::unprocessable(
                "Realtime triggers can not be disabled through the API, please edit the trigger \
                 from the flow.",
                Value::Null,
            ));
        }
        _ => {
            return Err(ApiError::not_found(format!(
                "trigger {} has no state to change (only a Schedule's can be)",
                named.trigger_id
            )));
        }
    }
    match state.schedules().set_disabled(named.key(), disabled).await {
        Some(view) => Ok(context(&view)),
        None => Err(ApiError::not_found(format!(
            "trigger {} of {}.{} is not scheduled (is its flow or the trigger disabled?)",
            named.trigger_id, named.namespace, named.flow_id
        ))),
    }
}

/// `PUT /triggers`: updates a trigger's context: its `disabled`, and a
/// `backfill` to start (`{start, end, inputs, labels}`).
pub async fn update(State(state): State<AppState>, Body(body): Body) -> ApiResult<Json<Value>> {
    let named: Named = read(&body, "a trigger {namespace, flowId, triggerId, disabled}")?;
    let mut answer = None;
    if let Some(disabled) = named.disabled {
        answer = Some(set_disabled(&state, &named, disabled).await?);
    }
    if let Some(backfill) = named.backfill.as_ref().filter(|b| !b.is_null()) {
        let change = backfill_start(backfill)?;
        answer = Some(change_backfill(&state, &named, change).await?);
    }
    answer
        .map(Json)
        .ok_or_else(|| ApiError::bad_request("`disabled` or `backfill` is required"))
}

/// A backfill as a request writes it.
fn backfill_start(v: &Value) -> ApiResult<BackfillChange> {
    let when = |key: &str| -> ApiResult<Option<DateTime<Utc>>> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(t)) => {
                DateTime::parse_from_rfc3339(t.split('[').next().unwrap_or(t))
                    .map(|d| Some(d.with_timezone(&Utc)))
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "backfill `{key}`: `{t}` is not an ISO 8601 date-time"
                        ))
                    })
            }
            Some(other) => Err(ApiError::bad_request(format!(
                "backfill `{key}`: `{other}` is not a date-time"
            ))),
        }
    };
    let Some(start) = when("start")? else {
        return Err(ApiError::bad_request("a backfill needs its `start`"));
    };
    let inputs = match v.get("inputs") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(ApiError::bad_request("backfill `inputs` must be a map")),
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let labels = match v.get("labels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|l| Some((l.get("key")?.as_str()?.to_owned(), text(l.get("value")?))))
            .collect(),
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "backfill `labels` must be a list of {key, value}",
            ));
        }
    };
    Ok(BackfillChange::Start {
        start,
        end: when("end")?,
        inputs,
        labels,
    })
}

/// Changes a Schedule's backfill through the scheduler; its context.
async fn change_backfill(
    state: &AppState,
    named: &Named,
    change: BackfillChange,
) -> ApiResult<Value> {
    if kind_of(state, named)? != "schedule" {
        return Err(ApiError::bad_request(format!(
            "trigger {} is not a Schedule: it has no backfill",
            named.trigger_id
        )));
    }
    state
        .schedules()
        .backfill(named.key(), change)
        .await
        .map(|view| context(&view))
        .map_err(ApiError::bad_request)
}

/// `PUT /triggers/backfill/pause`: the trigger's backfill waits.
pub async fn pause_backfill(
    State(state): State<AppState>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let named: Named = read(&body, "a trigger {namespace, flowId, triggerId}")?;
    Ok(Json(
        change_backfill(&state, &named, BackfillChange::Pause(true)).await?,
    ))
}

/// `PUT /triggers/backfill/unpause`: it goes on.
pub async fn unpause_backfill(
    State(state): State<AppState>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let named: Named = read(&body, "a trigger {namespace, flowId, triggerId}")?;
    Ok(Json(
        change_backfill(&state, &named, BackfillChange::Pause(false)).await?,
    ))
}

/// `POST /triggers/backfill/delete`: it is dropped; the schedule goes on
/// where it stood before it.
pub async fn delete_backfill(
    State(state): State<AppState>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let named: Named = read(&body, "a trigger {namespace, flowId, triggerId}")?;
    Ok(Json(
        change_backfill(&state, &named, BackfillChange::Delete).await?,
    ))
}

/// `{triggers, disabled}` of `POST /triggers/set-disabled/by-triggers`.
#[derive(Debug, Deserialize)]
struct SetDisabled {
    triggers: Vec<Named>,
    disabled: bool,
}

/// `POST /triggers/set-disabled/by-triggers`: `{count}`.
pub async fn set_disabled_by_triggers(
    State(state): State<AppState>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let request: SetDisabled = read(&body, "{triggers: [...], disabled}")?;
    for named in &request.triggers {
        set_disabled(&state, named, request.disabled).await?;
    }
    Ok(Json(json!({"count": request.triggers.len()})))
}

/// `POST /triggers/set-disabled/by-query?q&namespace&disabled` (default
/// true): every Schedule the query finds; `{count}`.
pub async fn set_disabled_by_query(
    State(state): State<AppState>,
    query: Pairs,
) -> ApiResult<Json<Value>> {
    let disabled = match query.get("disabled") {
        None | Some("") => true,
        Some(_) => query.flag("disabled")?,
    };
    let triggers = found(&state, &query).await;
    for named in &triggers {
        set_disabled(&state, named, disabled).await?;
    }
    Ok(Json(json!({"count": triggers.len()})))
}

/// `POST /triggers/{namespace}/{flowId}/{triggerId}/unlock`: Kestra
/// unlocks a trigger an evaluation holds; Peregrine's are never held, so
/// this is always Kestra's 409 "Trigger is not locked".
pub async fn unlock(
    State(state): State<AppState>,
    Params((namespace, flow_id, trigger_id)): Params<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let named = Named::of((namespace, flow_id, trigger_id));
    kind_of(&state, &named)?;
    Err(ApiError::conflict("Trigger is not locked"))
}

/// `POST /triggers/unlock/by-triggers` and `/unlock/by-query`: Kestra
/// unlocks the triggers an evaluation holds and counts them; none is
/// ever held here, so `{count: 0}` (the body and query are read, and bad
/// ones refused, all the same).
pub async fn unlock_by_triggers(
    State(state): State<AppState>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let triggers: Vec<Named> = read(&body, "a list of triggers {namespace, flowId, triggerId}")?;
    // Kestra counts a trigger no flow has (its unlock answers 404 without
    // failing); it has nothing to unlock either.
    let _ = (state, triggers);
    Ok(Json(json!({"count": 0})))
}

/// `POST /triggers/unlock/by-query?q&namespace`: `{count: 0}` (above).
pub async fn unlock_by_query(query: Pairs) -> ApiResult<Json<Value>> {
    let _ = query;
    Ok(Json(json!({"count": 0})))
}

/// A change to many backfills: each trigger's, counted; a trigger with no
/// backfill, that is no Schedule or that no flow has is skipped (Kestra
/// skips the first two, and counts the last though it changes nothing).
async fn backfills(
    state: &AppState,
    triggers: Vec<Named>,
    change: BackfillChange,
) -> ApiResult<Json<Value>> {
    let mut count = 0;
    for named in &triggers {
        match change_backfill(state, named, change.clone()).await {
            Ok(_) => count += 1,
            // No backfill, no Schedule, no such trigger: nothing to change.
            Err(e)
                if matches!(
                    e.status(),
                    axum::http::StatusCode::BAD_REQUEST | axum::http::StatusCode::NOT_FOUND
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Json(json!({"count": count})))
}

/// The Schedules a `?q&namespace` query finds, as named triggers.
async fn found(state: &AppState, query: &Pairs) -> Vec<Named> {
    state
        .schedules()
        .list()
        .await
        .into_iter()
        .filter(|view| matches(query, &view.trigger))
        .map(|view| Named::of(view.trigger))
        .collect()
}

/// `POST /triggers/backfill/{pause,unpause,delete}/by-triggers`, a list of
/// triggers: `{count}` of the backfills changed.
pub async fn backfill_by_triggers(
    State(state): State<AppState>,
    Params(action): Params<String>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let change = backfill_action(&action)?;
    let triggers: Vec<Named> = read(&body, "a list of triggers {namespace, flowId, triggerId}")?;
    backfills(&state, triggers, change).await
}

/// `POST /triggers/backfill/{pause,unpause,delete}/by-query?q&namespace`:
/// every Schedule the query finds; `{count}` of the backfills changed.
pub async fn backfill_by_query(
    State(state): State<AppState>,
    Params(action): Params<String>,
    query: Pairs,
) -> ApiResult<Json<Value>> {
    let change = backfill_action(&action)?;
    let triggers = found(&state, &query).await;
    backfills(&state, triggers, change).await
}

fn backfill_action(action: &str) -> ApiResult<BackfillChange> {
    match action {
        "pause" => Ok(BackfillChange::Pause(true)),
        "unpause" => Ok(BackfillChange::Pause(false)),
        "delete" => Ok(BackfillChange::Delete),
        other => Err(ApiError::not_found(format!(
            "no backfill action `{other}` (pause, unpause, delete)"
        ))),
    }
}

/// `POST /triggers/{namespace}/{flowId}/{triggerId}/restart`: Kestra
/// resets a trigger's evaluation and kills what runs it. A Kafka trigger's
/// consumers stop (committing what is durable) and start again; a
/// Schedule holds nothing to reset and answers its context as it stands.
/// Other triggers have no context: 404.
pub async fn restart(
    State(state): State<AppState>,
    Params((namespace, flow_id, trigger_id)): Params<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let named = Named::of((namespace, flow_id, trigger_id));
    let key = named.key();
    match kind_of(&state, &named)? {
        "realtime" => {
            let (state, ns, id) = (
                state.clone(),
                named.namespace.clone(),
                named.flow_id.clone(),
            );
            tokio::task::spawn_blocking(move || state.triggers().reconcile(&state, &ns, &id))
                .await
                .map_err(|e| ApiError::internal("restarting a Kafka trigger", e))?;
        }
        "schedule" => {}
        _ => {
            return Err(ApiError::not_found(format!(
                "trigger {} has no state to restart (a Schedule's or a Kafka trigger's)",
                named.trigger_id
            )));
        }
    }
    listed(&state)
        .await
        .into_iter()
        .find(|l| l.trigger == key)
        .map(|l| Json(l.context))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "trigger {} of {}.{} is not running (is its flow or the trigger disabled?)",
                named.trigger_id, named.namespace, named.flow_id
            ))
        })
}

/// Forgets where a trigger stands (Kestra deletes its context, and the
/// scheduler makes it again): a Schedule starts afresh from its next date,
/// enabled, with no backfill; a Kafka trigger's consumers start again.
async fn reset(state: &AppState, named: &Named) -> ApiResult<()> {
    match kind_of(state, named)? {
        "schedule" => state
            .schedules()
            .reset(named.key())
            .await
            .map(drop)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "trigger {} of {}.{} is not scheduled (is its flow disabled?)",
                    named.trigger_id, named.namespace, named.flow_id
                ))
            }),
        "realtime" => {
            let (state, ns, id) = (
                state.clone(),
                named.namespace.clone(),
                named.flow_id.clone(),
            );
            tokio::task::spawn_blocking(move || state.triggers().reconcile(&state, &ns, &id))
                .await
                .map_err(|e| ApiError::internal("restarting a Kafka trigger", e))
        }
        _ => Err(ApiError::not_found(format!(
            "trigger {} has no state to delete (a Schedule's or a Kafka trigger's)",
            named.trigger_id
        ))),
    }
}

/// `DELETE /triggers/{namespace}/{flowId}/{triggerId}`: its context goes
/// (see [`reset`]); 204.
pub async fn delete(
    State(state): State<AppState>,
    Params((namespace, flow_id, trigger_id)): Params<(String, String, String)>,
) -> ApiResult<axum::http::StatusCode> {
    let named = Named::of((namespace, flow_id, trigger_id));
    reset(&state, &named).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Resets each of `triggers`; how many (one no flow has, or with no state,
/// is skipped).
async fn reset_many(state: &AppState, triggers: &[Named]) -> ApiResult<Json<Value>> {
    let mut count = 0;
    for named in triggers {
        match reset(state, named).await {
            Ok(()) => count += 1,
            Err(e) if e.status() == axum::http::StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Json(json!({"count": count})))
}

/// `DELETE /triggers/delete/by-triggers`, a list of triggers: `{count}`.
pub async fn delete_by_triggers(
    State(state): State<AppState>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let triggers: Vec<Named> = read(&body, "a list of triggers {namespace, flowId, triggerId}")?;
    reset_many(&state, &triggers).await
}

/// `{filters: [{field, operation, value}]}` of `DELETE
/// /triggers/delete/by-query`.
#[derive(Debug, Deserialize)]
struct ByQuery {
    #[serde(default)]
    filters: Vec<QueryFilter>,
}

#[derive(Debug, Deserialize)]
struct QueryFilter {
    field: String,
    #[serde(default)]
    operation: Option<String>,
    value: Value,
}

/// `DELETE /triggers/delete/by-query`: the Schedules the body's filters
/// (`NAMESPACE`, `FLOW_ID`, `TRIGGER_ID`, `QUERY`, EQUALS or a prefix with
/// STARTS_WITH) find; `{count}`.
pub async fn delete_by_query(
    State(state): State<AppState>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let query: ByQuery = read(&body, "{filters: [{field, operation, value}]}")?;
    let mut tests: Vec<(usize, bool, String)> = Vec::new();
    for f in &query.filters {
        let at = match f.field.to_ascii_uppercase().as_str() {
            "NAMESPACE" => 0,
            "FLOW_ID" => 1,
            "TRIGGER_ID" => 2,
            "QUERY" => 3,
            other => {
                return Err(ApiError::bad_request(format!(
                    "triggers are not deleted by `{other}` (NAMESPACE, FLOW_ID, TRIGGER_ID, QUERY)"
                )));
            }
        };
        let prefix = match f.operation.as_deref().unwrap_or("EQUALS") {
            "EQUALS" => false,
            "STARTS_WITH" | "PREFIX" => true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "`{}` has no {other} operation here (EQUALS, STARTS_WITH)",
                    f.field
                )));
            }
        };
        let value = match &f.value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        tests.push((at, prefix, value));
    }
    let holds = |(ns, flow, trigger): &TriggerKey| {
        tests.iter().all(|(at, prefix, value)| {
            let fields = [ns.as_str(), flow.as_str(), trigger.as_str()];
            match at {
                3 => fields
                    .iter()
                    .any(|f| f.to_lowercase().contains(&value.to_lowercase())),
                _ if *prefix => fields[*at].starts_with(value.as_str()),
                _ => fields[*at] == value.as_str(),
            }
        })
    };
    let triggers: Vec<Named> = state
        .schedules()
        .list()
        .await
        .into_iter()
        .filter(|view| holds(&view.trigger))
        .map(|view| Named::of(view.trigger))
        .collect();
    reset_many(&state, &triggers).await
}

/// `PUT /triggers/set-disabled` (Kestra 2.0's): `{namespace, flowId,
/// triggerId, disabled}`, as `PUT /triggers` does it; the context.
pub async fn set_disabled_one(
    State(state): State<AppState>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let named: Named = read(&body, "a trigger {namespace, flowId, triggerId, disabled}")?;
    let disabled = named
        .disabled
        .ok_or_else(|| ApiError::bad_request("`disabled` is required"))?;
    Ok(Json(set_disabled(&state, &named, disabled).await?))
}

/// `PUT /triggers/backfill/create` (Kestra 2.0's): a trigger with its
/// `backfill`, as `PUT /triggers` starts one; the context.
pub async fn create_backfill(
    State(state): State<AppState>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let named: Named = read(&body, "a trigger {namespace, flowId, triggerId, backfill}")?;
    let Some(backfill) = named.backfill.as_ref().filter(|b| !b.is_null()) else {
        return Err(ApiError::bad_request("`backfill` is required"));
    };
    let change = backfill_start(backfill)?;
    Ok(Json(change_backfill(&state, &named, change).await?))
}

/// One CSV field, quoted when it must be.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// `GET /triggers/export/by-query/csv`: every trigger context a search
/// with the same filters finds (`filters[namespace|flowId][OP]`, `q`), as
/// CSV: `namespace,flowId,triggerId,date,nextExecutionDate,disabled`.
pub async fn export_csv(State(state): State<AppState>, query: Pairs) -> ApiResult<Response> {
    let conditions = filters::Conditions::read(&query, filters::Resource::Trigger)?;
    let mut out = String::from("namespace,flowId,triggerId,date,nextExecutionDate,disabled\n");
    if !conditions.nothing {
        for l in listed(&state).await {
            let (namespace, flow_id, _) = &l.trigger;
            if !conditions.filter.matches_flow(namespace, flow_id, &[]) {
                continue;
            }
            let field = |k: &str| match l.context.get(k) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => csv_field(s),
                Some(other) => csv_field(&other.to_string()),
            };
            let row = [
                field("namespace"),
                field("flowId"),
                field("triggerId"),
                field("date"),
                field("nextExecutionDate"),
                field("disabled"),
            ];
            out.push_str(&row.join(","));
            out.push('\n');
        }
    }
    Ok((
        axum::http::StatusCode::OK,
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=triggers.csv",
            ),
        ],
        out,
    )
        .into_response())
}
