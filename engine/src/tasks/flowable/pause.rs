//! Pause: the task run and its execution wait PAUSED, until resumed through
//! the API (with its `onResume` inputs) or, after `delay`, by themselves; a
//! `timeout` with no delay fails the pause when no one resumed it. Its
//! (deprecated) `tasks` run once it resumes.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::execution::State;
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
    // What happens when `pauseDuration` ends.
    let written = p.peek_text("behavior");
    let at = p.here("behavior");
    let behavior = p.string_property_or("behavior", "RESUME");
    let tasks = p.opt_task_list("tasks");
    if let Some(text) = written.filter(|t| !t.contains("{{")) {
        match Behavior::parse(&text) {
            None => p.problem(&at, Behavior::unknown(&text)),
            Some(Behavior::Warn) if !tasks.is_empty() => p.problem(
                &at,
                "a Pause `behavior: WARN` with (deprecated) `tasks` is not supported yet",
            ),
            Some(_) => {}
        }
    }
    Some(Arc::new(Pause {
        delay: delay.or(pause_duration),
        timeout,
        on_resume,
        behavior: behavior?,
        tasks,
    }))
}

/// `core.flow.Pause`.
#[derive(Debug)]
pub(crate) struct Pause {
    delay: Option<Property>,
    timeout: Option<Property>,
    on_resume: Vec<InputDef>,
    /// What its `pauseDuration` passing does (RESUME, WARN, FAIL, CANCEL);
    /// a resume through the API always just resumes.
    behavior: Property,
    tasks: Vec<Task>,
}

/// Kestra's `Pause.Behavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behavior {
    Resume,
    Warn,
    Fail,
    Cancel,
}

impl Behavior {
    fn parse(text: &str) -> Option<Behavior> {
        Some(match text.trim() {
            "RESUME" => Behavior::Resume,
            "WARN" => Behavior::Warn,
            "FAIL" => Behavior::Fail,
            "CANCEL" => Behavior::Cancel,
            _ => return None,
        })
    }

    fn unknown(text: &str) -> String {
        format!("`{text}` is not a Pause behavior: RESUME, WARN, FAIL or CANCEL")
    }
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

    /// Its delay passed: as its `behavior` says, it resumes, ends WARNING,
    /// fails, or cancels the execution; or its timeout, with no delay: it
    /// fails (Kestra's `ExecutionDelay` to FAILED).
    fn on_timer(&self, ctx: &mut TaskContext<'_>) -> Started {
        if self.delay.is_some() {
            let behavior = match ctx.render_text(&self.behavior) {
                Ok(text) => match Behavior::parse(&text) {
                    Some(behavior) => behavior,
                    None => return Started::Done(Err(Behavior::unknown(&text))),
                },
                Err(e) => return Started::Done(Err(e)),
            };
            return match behavior {
                Behavior::Resume => self.go_on(),
                Behavior::Warn if self.tasks.is_empty() => {
                    Started::Ended(State::Warning, json!({}))
                }
                Behavior::Warn => Started::Done(Err(
                    "a Pause `behavior: WARN` with `tasks` is not supported yet".to_owned(),
                )),
                Behavior::Fail => Started::Done(Err(
                    "the pause ended after its pauseDuration, with behavior FAIL".to_owned(),
                )),
                Behavior::Cancel => Started::Exit(State::Cancelled),
            };
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
