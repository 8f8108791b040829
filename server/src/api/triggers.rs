//! The triggers API (Kestra's `TriggerController`): the trigger contexts of
//! the Schedule triggers (where each stands: its next date, the last it
//! fired, whether the API disabled it) and of the Kafka realtime
//! triggers; disabling and enabling a Schedule; `unlock`, which has
//! nothing to do (a Peregrine trigger is never locked).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use peregrine_engine::flow::TriggerKind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Pairs, Params};
use super::filters;
use super::labels::read;
use crate::schedule::{TriggerKey, TriggerView};
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
            .is_none_or(|n| namespace == n || namespace.starts_with(&format!("{n}.")))
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

/// `PUT /triggers`: updates a trigger's context (its `disabled`); a
/// backfill is refused for now.
pub async fn update(State(state): State<AppState>, Body(body): Body) -> ApiResult<Json<Value>> {
    let named: Named = read(&body, "a trigger {namespace, flowId, triggerId, disabled}")?;
    if named.backfill.as_ref().is_some_and(|b| !b.is_null()) {
        return Err(ApiError::unprocessable(
            "a backfill is not supported yet",
            Value::Null,
        ));
    }
    let disabled = match named.disabled {
        Some(disabled) => disabled,
        None => return Err(ApiError::bad_request("`disabled` is required")),
    };
    Ok(Json(set_disabled(&state, &named, disabled).await?))
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
    let mut count = 0;
    for view in state.schedules().list().await {
        if !matches(&query, &view.trigger) {
            continue;
        }
        let (namespace, flow_id, trigger_id) = view.trigger;
        let named = Named {
            namespace,
            flow_id,
            trigger_id,
            disabled: Some(disabled),
            backfill: None,
        };
        set_disabled(&state, &named, disabled).await?;
        count += 1;
    }
    Ok(Json(json!({"count": count})))
}

/// `POST /triggers/{namespace}/{flowId}/{triggerId}/unlock`: Kestra
/// unlocks a trigger an evaluation holds; Peregrine's are never held, so
/// this is always Kestra's 409 "Trigger is not locked".
pub async fn unlock(
    State(state): State<AppState>,
    Params((namespace, flow_id, trigger_id)): Params<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let named = Named {
        namespace,
        flow_id,
        trigger_id,
        disabled: None,
        backfill: None,
    };
    kind_of(&state, &named)?;
    Err(ApiError::conflict("Trigger is not locked"))
}
