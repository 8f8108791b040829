//! `pluginDefaults` fill in or override task properties before validation.

use peregrine_engine::flow::{Flow, Level, TaskKind};

fn level(flow: &Flow, id: &str) -> Level {
    match &flow.find_task(id).expect("task").kind {
        TaskKind::Log { level, .. } => *level,
        other => panic!("not a Log: {other:?}"),
    }
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
    assert_eq!(level(&flow, "bare"), Level::Debug);
    assert_eq!(level(&flow, "own"), Level::Trace, "the task wins");
    assert_eq!(flow.plugin_defaults.len(), 1);
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
    assert_eq!(level(&flow, "bare"), Level::Error);
    assert_eq!(
        level(&flow, "own"),
        Level::Error,
        "forced wins, alias or not"
    );
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
    assert_eq!(level(&flow, "bare"), Level::Info);
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
