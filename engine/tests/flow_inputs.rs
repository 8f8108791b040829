//! Execution inputs: typed conversion, defaults, and errors naming the input.

use peregrine_engine::flow::{Error, Flow, InputProblem, validate_inputs, validate_text_inputs};
use serde_json::{Map, Value, json};

fn flow() -> Flow {
    Flow::parse(
        "id: inputs
namespace: company.team
inputs:
  - id: name
    type: STRING
  - id: count
    type: INT
    min: 1
    max: 100
    defaults: 5
  - id: ratio
    type: FLOAT
    required: false
  - id: flag
    type: BOOLEAN
    required: false
  - id: order
    type: JSON
    required: false
  - id: wait
    type: DURATION
    required: false
  - id: at
    type: DATETIME
    required: false
  - id: color
    type: SELECT
    values: [red, green]
    required: false
  - id: ids
    type: ARRAY
    itemType: INT
    required: false
  - name: legacy
    type: STRING
    defaults: old
tasks:
  - id: r
    type: io.kestra.plugin.core.debug.Return
    format: '{{ inputs.name }}'
",
    )
    .expect("valid flow")
}

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn problems(result: Result<Map<String, Value>, Error>) -> Vec<InputProblem> {
    match result {
        Err(Error::Inputs(p)) => p,
        other => panic!("expected input problems, got {other:?}"),
    }
}

#[test]
fn text_values_are_typed_and_defaults_applied() {
    let inputs = validate_text_inputs(
        &flow(),
        [
            ("name", "Ada"),
            ("count", "42"),
            ("ratio", "0.5"),
            ("flag", "true"),
            ("order", r#"{"id": 7, "items": [1, 2]}"#),
            ("wait", "PT1M30S"),
            ("at", "2024-01-31T10:00:00+01:00"),
            ("color", "green"),
            ("ids", "[1, \"2\", 3]"),
            ("undeclared", "ignored"),
        ],
    )
    .expect("valid inputs");
    assert_eq!(
        Value::Object(inputs),
        json!({
            "name": "Ada",
            "count": 42,
            "ratio": 0.5,
            "flag": true,
            "order": {"id": 7, "items": [1, 2]},
            "wait": "PT1M30S",
            "at": "2024-01-31T09:00:00Z",
            "color": "green",
            "ids": [1, 2, 3],
            "legacy": "old",
        })
    );
}

#[test]
fn typed_values_pass_and_optional_ones_are_null() {
    let inputs = validate_inputs(
        &flow(),
        &map(json!({"name": "x", "count": 7, "order": [1]})),
    )
    .expect("valid");
    assert_eq!(
        Value::Object(inputs),
        json!({
            "name": "x", "count": 7, "ratio": null, "flag": null, "order": [1], "wait": null,
            "at": null, "color": null, "ids": null, "legacy": "old"
        })
    );
    // `null` counts as not given: the default applies.
    let inputs =
        validate_inputs(&flow(), &map(json!({"name": "x", "count": null}))).expect("valid");
    assert_eq!(inputs["count"], json!(5));
}

#[test]
fn missing_required_input_is_named() {
    let p = problems(validate_inputs(&flow(), &Map::new()));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].id, "name");
    assert_eq!(p[0].expected, None);
    assert_eq!(
        p[0].to_string(),
        "input `name`: missing required input of type STRING"
    );
}

#[test]
fn wrong_types_name_the_input_and_the_type() {
    let p = problems(validate_text_inputs(
        &flow(),
        [
            ("name", "x"),
            ("count", "forty"),
            ("flag", "yes"),
            ("order", "{not json"),
            ("wait", "90s"),
            ("at", "yesterday"),
            ("color", "blue"),
            ("ids", "[1, \"two\"]"),
        ],
    ));
    let got: Vec<(&str, Option<&str>)> = p.iter().map(|p| (p.id.as_str(), p.expected)).collect();
    assert_eq!(
        got,
        [
            ("count", Some("INT")),
            ("flag", Some("BOOLEAN")),
            ("order", Some("JSON")),
            ("wait", Some("DURATION")),
            ("at", Some("DATETIME")),
            ("color", Some("SELECT")),
            ("ids", Some("ARRAY")),
        ]
    );
    assert!(p[0].message.contains("\"forty\""), "{}", p[0].message);
    assert!(
        p[5].message.contains("`blue` is not one of"),
        "{}",
        p[5].message
    );
    assert!(p[6].message.contains("item 1"), "{}", p[6].message);
}

#[test]
fn bounds_are_checked() {
    let p = problems(validate_text_inputs(
        &flow(),
        [("name", "x"), ("count", "0")],
    ));
    assert_eq!(p[0].id, "count");
    assert!(p[0].message.contains("minimum 1"), "{}", p[0].message);
    let p = problems(validate_inputs(
        &flow(),
        &map(json!({"name": "x", "count": 101})),
    ));
    assert!(p[0].message.contains("maximum 100"), "{}", p[0].message);
    let p = problems(validate_inputs(
        &flow(),
        &map(json!({"name": "x", "count": 1.5})),
    ));
    assert!(
        p[0].message.contains("expected an integer"),
        "{}",
        p[0].message
    );
}

#[test]
fn seed_flow_takes_its_order_as_json_text() {
    let flow = Flow::parse(include_str!("../../loadtest/flows/seed.yaml")).expect("seed parses");
    let inputs = validate_text_inputs(&flow, [("order", r#"{"order_id": 1}"#)]).expect("valid");
    assert_eq!(inputs["order"], json!({"order_id": 1}));
}

#[test]
fn dotted_ids_nest() {
    let flow = Flow::parse(
        "id: nested
namespace: company.team
inputs:
  - id: db.host
    type: STRING
  - id: db.port
    type: INT
    defaults: 5432
tasks:
  - id: r
    type: io.kestra.plugin.core.debug.Return
    format: x
",
    )
    .expect("valid flow");
    let inputs = validate_text_inputs(&flow, [("db.host", "localhost")]).expect("valid");
    assert_eq!(
        Value::Object(inputs),
        json!({"db": {"host": "localhost", "port": 5432}})
    );
}
