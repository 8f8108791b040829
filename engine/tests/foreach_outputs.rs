//! The shape of ForEach outputs, three loops deep: `outputs.t[a][b][c]`,
//! exactly as Kestra's merge of task-run outputs would build it, without the
//! engine ever merging anything.

#![allow(clippy::unwrap_used)]

mod common;

use peregrine_engine::State;
use serde_json::json;

const NESTED: &str = r#"
id: nested
namespace: tests
tasks:
  - id: l1
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a1", "a2"]
    tasks:
      - id: l2
        type: io.kestra.plugin.core.flow.ForEach
        values: ["b1", "b2"]
        tasks:
          - id: l3
            type: io.kestra.plugin.core.flow.ForEach
            values: ["c1", "c2"]
            concurrencyLimit: 0
            tasks:
              - id: ret
                type: io.kestra.plugin.core.debug.Return
                format: "{{ parents[1].taskrun.value }}-{{ parent.taskrun.value }}-{{ taskrun.value }}"
  - id: whole
    type: io.kestra.plugin.core.output.OutputValues
    values:
      tree: "{{ outputs.ret }}"
      one: "{{ outputs.ret['a2']['b1']['c2'].value }}"
      current: "{{ outputs.ret.a1.b2 | keys }}"
"#;

#[test]
fn three_loops_deep_outputs_nest_by_value() {
    let exec = common::run_source(NESTED, json!({}));
    assert_eq!(exec.state(), State::Success, "{:?}", exec.logs().entries());
    assert_eq!(exec.task_runs_of("ret").count(), 8);
    let values = &exec
        .task_runs_of("whole")
        .next()
        .unwrap()
        .outputs()
        .unwrap()["values"];
    let leaf = |a: &str, b: &str, c: &str| json!({ "value": format!("{a}-{b}-{c}") });
    // OutputValues renders each template as text, as Kestra does: a map
    // comes back as its JSON.
    let json = |v: &serde_json::Value| -> serde_json::Value {
        serde_json::from_str(v.as_str().expect("rendered as text")).expect("JSON text")
    };
    assert_eq!(
        json(&values["tree"]),
        json!({
            "a1": {"b1": {"c1": leaf("a1", "b1", "c1"), "c2": leaf("a1", "b1", "c2")},
                   "b2": {"c1": leaf("a1", "b2", "c1"), "c2": leaf("a1", "b2", "c2")}},
            "a2": {"b1": {"c1": leaf("a2", "b1", "c1"), "c2": leaf("a2", "b1", "c2")},
                   "b2": {"c1": leaf("a2", "b2", "c1"), "c2": leaf("a2", "b2", "c2")}},
        })
    );
    assert_eq!(values["one"], "a2-b1-c2");
    assert_eq!(json(&values["current"]), json!(["c1", "c2"]));
    // Each Return carries its own loop value; its parents carry theirs.
    let first = exec.task_runs_of("ret").next().unwrap();
    assert_eq!(first.value(), Some("c1"));
    let parent = &exec.task_runs()[first.parent().unwrap()];
    assert_eq!(parent.task_id(), "l3");
    assert_eq!(parent.value(), Some("b1"));
}
