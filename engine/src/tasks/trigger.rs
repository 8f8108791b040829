//! `trigger.Toggle` (Kestra's `Toggle`): enables or disables a trigger of
//! a flow (this one by default), as the triggers API does. The change is
//! the server's (its scheduler keeps it), so it runs on the worker pool,
//! its answer journaled like any work's: a replay does not toggle again,
//! and a toggle a restart lost is made again (the same change).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Answer, Job, Started, TaskContext, TaskKind, TaskType, WorkerEnv, work};
use crate::expression::Property;

pub(super) static TOGGLE: TaskType = TaskType {
    name: "io.kestra.plugin.core.trigger.Toggle",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let namespace = p.string_property("namespace");
        let flow_id = p.string_property("flowId");
        let trigger = p.req_string_property("trigger");
        let enabled = p.bool("enabled", false);
        Some(Arc::new(Toggle {
            namespace,
            flow_id,
            trigger: trigger?,
            enabled,
        }))
    },
};

/// `trigger.Toggle`: `trigger` of flow `namespace.flowId` (this flow's by
/// default) enabled, or disabled (`enabled: false`, the default).
#[derive(Debug)]
pub(crate) struct Toggle {
    namespace: Option<Property>,
    flow_id: Option<Property>,
    trigger: Property,
    enabled: bool,
}

impl TaskKind for Toggle {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let flow = ctx.flow_name();
        let text = |p: &Option<Property>, default: &str| -> Result<String, String> {
            match p {
                Some(p) => ctx.render_text(p),
                None => Ok(default.to_owned()),
            }
        };
        let job = (|| {
            Ok(ToggleJob {
                namespace: text(&self.namespace, &flow.0)?,
                flow_id: text(&self.flow_id, &flow.1)?,
                trigger: ctx.render_text(&self.trigger)?,
                enabled: self.enabled,
            })
        })();
        work(job)
    }
}

/// One toggle, rendered.
#[derive(Debug)]
struct ToggleJob {
    namespace: String,
    flow_id: String,
    trigger: String,
    enabled: bool,
}

impl Job for ToggleJob {
    fn run(self: Box<Self>, env: &WorkerEnv, within: Option<Duration>) -> Answer {
        (*self).work(env, within).into()
    }
}

impl ToggleJob {
    fn work(self, env: &WorkerEnv, _within: Option<Duration>) -> Result<Value, String> {
        let Some(triggers) = &env.triggers else {
            return Err("a Toggle runs only in an engine that holds triggers (a server)".into());
        };
        triggers.set_enabled(&self.namespace, &self.flow_id, &self.trigger, self.enabled)?;
        Ok(json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::State;
    use crate::tasks::testing::{flow, kind, only, run};

    #[test]
    fn a_toggle_is_read_and_fails_saying_why_without_a_server() {
        let f = flow(
            "  - id: off\n    type: io.kestra.plugin.core.trigger.Toggle\n    trigger: nightly\n",
        );
        let toggle: &Toggle = kind(&f, "off");
        assert!(!toggle.enabled && toggle.namespace.is_none());
        let e = run(
            "  - id: off\n    type: io.kestra.plugin.core.trigger.Toggle\n    trigger: nightly\n    enabled: true\n",
        );
        assert_eq!(only(&e, "off").state(), State::Failed);
    }
}
