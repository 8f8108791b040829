//! `pluginDefaults` fill in or override task properties before validation.

use std::collections::HashMap;
use std::sync::Arc;

use peregrine_engine::flow::{Flow, Level};
use peregrine_engine::{FlowRevision, NewExecution, run_to_end};

/// The level each Log task of `flow` logs at, read from a run of it.
fn levels(flow: Flow) -> HashMap<String, Level> {
    let revision = Arc::new(FlowRevision::new(Arc::new(flow)));
    let exec = run_to_end(NewExecution::new(revision, Default::default()));
    exec.logs()
        .entries()
        .iter()
        .filter_map(|l| Some((l.task_id.as_deref()?.to_owned(), l.level)))
        .collect()
}

const TASKS: &str = "tasks:
  - id: bare
    type: io.kestra.plugin.core.log.Log
  - id: own
    type: io.kestra.core.tasks.log.Log
    message: mine
    level: TRACE
";

#[test]
fn soft_defaults_fill_in_what_the_task_leaves_out() {
    let flow = Flow::parse(&format!(
        "id: defaults
namespace: company.team
pluginDefaults:
  - type: io.kestra.plugin.core.log.Log
    values:
      message: from defaults
      level: DEBUG
{TASKS}"
    ))
    .expect("the default message makes `bare` valid");
    assert_eq!(flow.plugin_defaults.len(), 1);
    let levels = levels(flow);
    assert_eq!(levels["bare"], Level::Debug);
    assert_eq!(levels["own"], Level::Trace, "the task wins");
}

#[test]
fn forced_defaults_override_and_match_by_prefix() {
    let flow = Flow::parse(&format!(
        "id: defaults
namespace: company.team
pluginDefaults:
  - type: io.kestra.plugin.core.log.Log
    values:
      message: from defaults
  - type: io.kestra.plugin.core
    forced: true
    values:
      level: ERROR
{TASKS}"
    ))
    .expect("valid");
    let levels = levels(flow);
    assert_eq!(levels["bare"], Level::Error);
    assert_eq!(levels["own"], Level::Error, "forced wins, alias or not");
}

#[test]
fn deprecated_task_defaults_apply_through_aliases() {
    let flow = Flow::parse(
        "id: defaults
namespace: company.team
taskDefaults:
  - type: io.kestra.core.tasks.log.Log
    values:
      message: hello
tasks:
  - id: bare
    type: io.kestra.plugin.core.log.Log
",
    )
    .expect("valid");
    assert_eq!(levels(flow)["bare"], Level::Info);
}

#[test]
fn bad_defaults_are_reported() {
    let err = Flow::parse(
        "id: defaults
namespace: company.team
pluginDefaults:
  - type: io.kestra.plugin.core.log.Log
    value: {message: typo}
tasks:
  - id: bare
    type: io.kestra.plugin.core.log.Log
",
    )
    .expect_err("invalid");
    let text = err.to_string();
    assert!(
        text.contains("pluginDefaults[0].values at 4:5: missing required property `values`"),
        "{text}"
    );
    assert!(
        text.contains("pluginDefaults[0].value at 5:5: unknown property `value`"),
        "{text}"
    );
    assert!(
        text.contains("tasks[0].message at 7:5: missing required property `message`"),
        "{text}"
    );
}
