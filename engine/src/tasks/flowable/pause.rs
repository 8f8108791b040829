//! Pause: the task run and its execution wait PAUSED, until resumed through
//! the API (with its `onResume` inputs) or, after `delay`, by themselves; a
//! `timeout` with no delay fails the pause when no one resumed it. Its
//! (deprecated) `tasks` run once it resumes.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::expression::Property;
use crate::flow::{InputDef, Props, Task, check_inputs};
use crate::tasks::{FramePlan, Groups, Started, TaskContext, TaskKind, TaskType};

pub(crate) static PAUSE: TaskType = TaskType {
    name: "io.kestra.plugin.core.flow.Pause",
    aliases: &["io.kestra.core.tasks.flows.Pause"],
    flowable: true,
    own_timeout: true,
    parse: parse_pause,
};

fn parse_pause(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    // `pauseDuration` is the newer name of `delay`.
    let delay = p.opt_duration_property("delay");
    let pause_duration = p.opt_duration_property("pauseDuration");
    let timeout = p.opt_duration_property("timeout");
    let on_resume = p.inputs("onResume");
    // What happens when `pauseDuration` ends: it resumes (the only
    // behavior served yet).
    if let Some((behavior, at)) = p.json("behavior")
        && behavior != "RESUME"
    {
        p.problem(
            &at,
            "a Pause `behavior` other than RESUME is not supported yet",
        );
    }
    let tasks = p.opt_task_list("tasks");
    Some(Arc::new(Pause {
        delay: delay.or(pause_duration),
        timeout,
        on_resume,
        tasks,
    }))
}

/// `core.flow.Pause`.
#[derive(Debug)]
pub(crate) struct Pause {
    delay: Option<Property>,
    timeout: Option<Property>,
    on_resume: Vec<InputDef>,
    tasks: Vec<Task>,
}

impl Pause {
    /// Once resumed: its tasks, or done.
    fn go_on(&self) -> Started {
        if self.tasks.is_empty() {
            Started::Done(Ok(None))
        } else {
            Started::Frame(FramePlan::new(Groups::Sequence(0)))
        }
    }
}

impl TaskKind for Pause {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        let wait = match self.delay.as_ref().or(self.timeout.as_ref()) {
            Some(duration) => match ctx.render_duration(duration) {
                Ok(d) => Some(d),
                Err(e) => return Started::Done(Err(e)),
            },
            None => None,
        };
        Started::Pause(wait)
    }

    fn child_lists(&self) -> Vec<&[Task]> {
        vec![&self.tasks]
    }

    /// Its delay passed: it resumes; or its timeout, with no delay: it fails
    /// (Kestra's `ExecutionDelay` to FAILED).
    fn on_timer(&self, ctx: &mut TaskContext<'_>) -> Started {
        if self.delay.is_some() {
            return self.go_on();
        }
        let timeout = self
            .timeout
            .as_ref()
            .and_then(|t| ctx.render_text(t).ok())
            .unwrap_or_default();
        Started::Done(Err(format!(
            "the pause timed out after {timeout}: no one resumed it"
        )))
    }

    fn resume_inputs(&self, provided: &Map<String, Value>) -> Result<Value, String> {
        let inputs = check_inputs(&self.on_resume, provided).map_err(|e| e.to_string())?;
        Ok(json!({ "onResume": inputs }))
    }

    fn on_resume(&self, _ctx: &mut TaskContext<'_>) -> Started {
        self.go_on()
    }
}
