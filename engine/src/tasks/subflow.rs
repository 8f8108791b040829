//! Subflow (and its legacy name `io.kestra.core.tasks.flows.Flow`): starts
//! an execution of another flow, the child, and ends as it does.
//!
//! The task only renders what the child gets and, when the child answers,
//! what its own task run becomes. Starting the child is the executor's
//! business (`executor::courier`): the child is a real execution on the
//! shard its id hashes to, and the answer comes back journaled.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::execution::label_pairs;
use super::{Started, TaskContext, TaskKind, TaskType};
use crate::execution::labels::{LabelError, SYSTEM_PREFIX};
use crate::execution::{ExecutionId, State};
use crate::expression::Property;
use crate::flow::Props;

/// Labels one Subflow may give its child.
const MAX_LABELS: usize = 64;

pub(super) static SUBFLOW: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.Subflow",
    aliases: &[
        "io.kestra.core.tasks.flows.Subflow",
        "io.kestra.core.tasks.flows.Flow",
    ],
    flowable: false,
    own_timeout: false,
    parse: parse_subflow,
};

fn parse_subflow(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    let subflow = parse_call(p);
    if let Some((_, at)) = p.json("outputs") {
        p.problem(
            &at,
            "a Subflow's `outputs` (deprecated since Kestra 0.15) is not supported: declare \
             `outputs` on the flow it calls, and read them as `outputs.<task>.outputs`",
        );
    }
    Some(Arc::new(subflow?))
}

/// The properties of a call to another flow (a Subflow's, a ForEachItem's).
pub(super) fn parse_call(p: &mut Props<'_, '_>) -> Option<Subflow> {
    if let (Some(namespace), Some(flow_id)) = (p.peek_text("namespace"), p.peek_text("flowId")) {
        p.calls_flow(namespace, flow_id);
    }
    let namespace = p.req_string_property("namespace");
    let flow_id = p.req_string_property("flowId");
    let revision = p.property("revision");
    let inputs = p.map_property_or_empty("inputs");
    let labels = p.property("labels");
    let wait = p.bool("wait", true);
    let transmit_failed = p.bool("transmitFailed", true);
    let inherit_labels = p.bool("inheritLabels", false);
    let schedule_date = p.string_property("scheduleDate");
    Some(Subflow {
        namespace: namespace?,
        flow_id: flow_id?,
        revision,
        inputs: inputs?,
        labels,
        wait,
        transmit_failed,
        inherit_labels,
        schedule_date,
    })
}

/// `core.flow.Subflow`.
#[derive(Debug)]
pub(crate) struct Subflow {
    namespace: Property,
    flow_id: Property,
    revision: Option<Property>,
    inputs: Property,
    labels: Option<Property>,
    wait: bool,
    transmit_failed: bool,
    inherit_labels: bool,
    /// When the child starts (an ISO-8601 date-time with its offset).
    schedule_date: Option<Property>,
}

/// The child a Subflow's task run asks for, rendered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SubflowCall {
    pub namespace: String,
    pub flow_id: String,
    /// `None`: the flow's latest revision.
    pub revision: Option<u32>,
    /// As rendered: the child's flow types them.
    pub inputs: Map<String, Value>,
    /// Given by the task, after those inherited.
    pub labels: Vec<(String, String)>,
    /// Every label of the parent goes to the child, not only its system ones.
    pub inherit_labels: bool,
    /// The task run waits for the child to end (else only for it to exist).
    pub wait: bool,
    /// The child waits CREATED until then.
    pub schedule_date: Option<DateTime<Utc>>,
}

/// What a task run's child said.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ChildAnswer {
    /// No child was started: the flow is not found, disabled, or the inputs
    /// do not fit it.
    Refused(String),
    /// The child exists (what a Subflow that does not wait waits for).
    Created,
    /// The child ended, in this state, with its flow's outputs.
    Ended {
        state: State,
        outputs: Option<Value>,
    },
}

impl TaskKind for Subflow {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        match self.call(ctx) {
            Ok(call) => Started::Subflow(Box::new(call)),
            Err(e) => Started::Done(Err(e)),
        }
    }

    fn on_child(
        &self,
        _ctx: &mut TaskContext<'_>,
        child: ExecutionId,
        answer: &ChildAnswer,
    ) -> Started {
        let (state, outputs) = match answer {
            ChildAnswer::Refused(why) => return Started::Done(Err(why.clone())),
            ChildAnswer::Created => (State::Created, None),
            ChildAnswer::Ended { state, outputs } => (*state, outputs.clone()),
        };
        let mut shown = json!({
            "executionId": child.to_string(),
            "state": state.as_str(),
        });
        if let Some(outputs) = outputs {
            shown["outputs"] = outputs;
        }
        Started::Ended(self.own_state(state), shown)
    }
}

impl Subflow {
    fn call(&self, ctx: &TaskContext<'_>) -> Result<SubflowCall, String> {
        self.call_with(ctx, &[])
    }

    /// The child this call asks for, its properties rendered with the
    /// template variables `vars` on top (a ForEachItem batch's `taskrun`).
    pub(super) fn call_with(
        &self,
        ctx: &TaskContext<'_>,
        vars: &[(&str, &Value)],
    ) -> Result<SubflowCall, String> {
        let render = |p: &Property| ctx.render_with_vars(p, vars);
        let text = |p: &Property| render(p).map(crate::executor::into_text);
        let namespace = text(&self.namespace)?;
        let flow_id = text(&self.flow_id)?;
        let revision = match &self.revision {
            None => None,
            Some(p) => Some(revision(render(p)?)?),
        };
        let inputs = match render(&self.inputs)? {
            Value::Object(map) => map,
            other => return Err(format!("`inputs` rendered to {other}, not a map")),
        };
        let labels = match &self.labels {
            None => Vec::new(),
            Some(p) => render(p).and_then(label_pairs)?,
        };
        if labels.len() > MAX_LABELS {
            return Err(format!(
                "{} labels; a Subflow gives at most {MAX_LABELS}",
                labels.len()
            ));
        }
        if let Some((key, value)) = labels.iter().find(|(k, _)| k.starts_with(SYSTEM_PREFIX)) {
            let refused = LabelError::System {
                key: key.clone(),
                value: value.clone(),
            };
            return Err(refused.to_string());
        }
        let schedule_date = match &self.schedule_date {
            None => None,
            Some(p) => Some(schedule_date(&text(p)?)?),
        };
        Ok(SubflowCall {
            schedule_date,
            namespace,
            flow_id,
            revision,
            inputs,
            labels,
            inherit_labels: self.inherit_labels,
            wait: self.wait,
        })
    }

    /// The task run's state for a child that ended `child` (Kestra's
    /// `ExecutableUtils.guessState`, before `allowFailure` and
    /// `allowWarning`, which the task run applies as for any task): the
    /// child's failure, kill, pause or warning is the task run's own when
    /// `transmitFailed`; anything else is a success.
    /// The task run waits for its child's end (`wait`).
    pub(super) fn waits(&self) -> bool {
        self.wait
    }

    /// A child's failure is the task run's own: it waits for the child's
    /// end and `transmitFailed`.
    pub(super) fn transmits_failures(&self) -> bool {
        self.wait && self.transmit_failed
    }

    pub(super) fn own_state(&self, child: State) -> State {
        let transmitted = matches!(
            child,
            State::Failed | State::Killed | State::Warning | State::Paused
        );
        if self.wait && self.transmit_failed && transmitted {
            child
        } else {
            State::Success
        }
    }
}

/// A rendered `scheduleDate`: an ISO-8601 date-time with its offset.
fn schedule_date(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            format!(
                "`scheduleDate` is `{text}`: expected an ISO-8601 date-time with its offset, \
                 e.g. 2030-01-01T09:00:00Z"
            )
        })
}

/// A rendered `revision`: a whole number from 1.
fn revision(rendered: Value) -> Result<u32, String> {
    let n = match &rendered {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n >= 1)
        .ok_or_else(|| format!("`revision` is {rendered}: expected a whole number from 1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::testing::{kind, problems};

    #[test]
    fn properties_are_read_with_kestras_defaults() {
        let flow = crate::tasks::testing::flow(
            r#"
  - id: call
    type: io.kestra.core.tasks.flows.Flow
    namespace: company.team
    flowId: child
"#,
        );
        let call: &Subflow = kind(&flow, "call");
        assert!(call.wait && call.transmit_failed && !call.inherit_labels);
        assert!(call.revision.is_none() && call.labels.is_none());
    }

    #[test]
    fn what_is_not_honoured_is_refused_with_its_path() {
        let found = problems(
            r#"
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.team
    flowId: child
    outputs:
      extracted: "{{ outputs.t.value }}"
"#,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("tasks[0].outputs at") && found[0].contains("not supported"),
            "{found:?}"
        );
        let missing = problems(
            r#"
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    flowId: child
"#,
        );
        assert!(
            missing.iter().any(|p| p.contains("namespace")),
            "{missing:?}"
        );
    }

    #[test]
    fn a_flow_calling_itself_is_refused_as_kestra_does() {
        let found = problems(
            r#"
  - id: again
    type: io.kestra.plugin.core.flow.Subflow
    namespace: tests
    flowId: t
"#,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("tasks[0] at")
                && found[0].contains("Recursive call to flow [tests.t]"),
            "{found:?}"
        );
        assert!(problems("  - id: other\n    type: io.kestra.plugin.core.flow.Subflow\n    namespace: tests\n    flowId: u\n").is_empty());
    }

    #[test]
    fn a_transmitted_failure_is_the_task_runs_own_only_when_waited_for() {
        let null = || Property::compile(&Value::Null).expect("null compiles");
        let subflow = |wait, transmit_failed| Subflow {
            namespace: null(),
            flow_id: null(),
            revision: None,
            inputs: null(),
            labels: None,
            wait,
            transmit_failed,
            inherit_labels: false,
            schedule_date: None,
        };
        for child in [State::Failed, State::Killed, State::Warning] {
            assert_eq!(subflow(true, true).own_state(child), child);
            assert_eq!(subflow(true, false).own_state(child), State::Success);
            assert_eq!(subflow(false, true).own_state(child), State::Success);
        }
        assert_eq!(
            subflow(true, true).own_state(State::Success),
            State::Success
        );
    }

    #[test]
    fn a_schedule_date_is_a_date_time_with_its_offset() {
        let at = schedule_date("2030-01-01T10:00:00+01:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2030-01-01T09:00:00+00:00");
        assert!(schedule_date("2030-01-01").is_err());
        assert!(schedule_date("tomorrow").is_err());
    }

    #[test]
    fn a_revision_is_a_whole_number_from_one() {
        assert_eq!(revision(json!(3)), Ok(3));
        assert_eq!(revision(json!(" 12 ")), Ok(12));
        for bad in [json!(0), json!(-1), json!("x"), json!(1.5), json!(null)] {
            assert!(revision(bad.clone()).is_err(), "{bad}");
        }
    }
}
