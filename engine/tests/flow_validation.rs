//! Each kind of validation problem names the path, the line and the column.

use peregrine_engine::flow::{Deserializer, Error, Flow, Problem, TriggerKind};

fn problems(yaml: &str) -> Vec<Problem> {
    match Flow::parse(yaml) {
        Ok(_) => panic!("expected the flow to be invalid"),
        Err(Error::Invalid(p)) => p,
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// The single problem, as `(path, line, column)` and its message.
fn only(yaml: &str) -> ((String, u32, u32), String) {
    let p = problems(yaml);
    assert_eq!(p.len(), 1, "{p:#?}");
    let p = p.into_iter().next().expect("one problem");
    ((p.path, p.line, p.column), p.message)
}

fn at(path: &str, line: u32, column: u32) -> (String, u32, u32) {
    (path.to_owned(), line, column)
}

const HEAD: &str = "id: f\nnamespace: company.team\n";

#[test]
fn unknown_task_type_nested() {
    let yaml = format!(
        "{HEAD}tasks:
  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: a
        type: io.kestra.plugin.core.debug.Return
        format: x
      - id: b
        type: io.kestra.plugin.core.debug.Nope
"
    );
    let (where_, msg) = only(&yaml);
    assert_eq!(where_, at("tasks[0].tasks[1].type", 11, 15));
    assert!(
        msg.contains("unknown task type `io.kestra.plugin.core.debug.Nope`"),
        "{msg}"
    );
}

#[test]
fn duplicate_task_ids_across_errors_and_nesting() {
    let yaml = format!(
        "{HEAD}tasks:
  - id: seq
    type: Sequential
    tasks:
      - id: same
        type: Return
errors:
  - id: same
    type: io.kestra.plugin.core.log.Log
    message: hi
"
    );
    let (where_, msg) = only(&yaml);
    assert_eq!(where_, at("errors[0].id", 10, 9));
    assert!(msg.contains("duplicate task id `same`"), "{msg}");
    assert!(msg.contains("tasks[0].tasks[0]"), "{msg}");
}

#[test]
fn missing_required_property() {
    let yaml = format!(
        "{HEAD}tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
"
    );
    let (where_, msg) = only(&yaml);
    assert_eq!(where_, at("tasks[0].message", 4, 5));
    assert!(msg.contains("missing required property `message`"), "{msg}");
}

#[test]
fn wrong_property_types() {
    let yaml = format!(
        "{HEAD}tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2]
    concurrencyLimit: many
    disabled: yes
    tasks:
      - id: r
        type: io.kestra.plugin.core.debug.Return
        format: [not, a, string]
"
    );
    let p = problems(&yaml);
    let got: Vec<_> = p
        .iter()
        .map(|p| (p.path.as_str(), p.line, p.column))
        .collect();
    assert_eq!(
        got,
        [
            ("tasks[0].concurrencyLimit", 7, 23),
            // YAML 1.1's `yes` is a string, as in Kestra (Jackson).
            ("tasks[0].disabled", 8, 15),
            ("tasks[0].tasks[0].format", 12, 17),
        ]
    );
    assert!(
        p[0].message.contains("expected an integer"),
        "{}",
        p[0].message
    );
    assert!(
        p[1].message.contains("expected a boolean"),
        "{}",
        p[1].message
    );
    assert!(p[1].message.contains("`yes`"), "{}", p[1].message);
    assert!(
        p[2].message.contains("expected a string, found a list"),
        "{}",
        p[2].message
    );
}

#[test]
fn unknown_properties_are_rejected() {
    let yaml = format!(
        "{HEAD}tasks:
  - id: r
    type: io.kestra.plugin.core.debug.Return
    format: x
    fromat: y
owner: me
"
    );
    let p = problems(&yaml);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert_eq!(
        (p[0].path.as_str(), p[0].line, p[0].column),
        ("tasks[0].fromat", 7, 5)
    );
    assert!(
        p[0].message.contains("unknown property `fromat`"),
        "{}",
        p[0].message
    );
    assert_eq!(
        (p[1].path.as_str(), p[1].line, p[1].column),
        ("owner", 8, 1)
    );
}

#[test]
fn runnable_tasks_have_no_error_handlers() {
    let yaml = format!(
        "{HEAD}tasks:
  - id: r
    type: Return
    errors:
      - id: e
        type: Return
"
    );
    let (where_, msg) = only(&yaml);
    assert_eq!(where_, at("tasks[0].errors", 6, 5));
    assert!(msg.contains("unknown property `errors`"), "{msg}");
}

#[test]
fn empty_and_missing_tasks() {
    let (where_, msg) = only(&format!("{HEAD}tasks: []\n"));
    assert_eq!(where_, at("tasks", 3, 8));
    assert!(msg.contains("at least one task"), "{msg}");

    let (where_, msg) = only(HEAD);
    assert_eq!(where_, at("tasks", 1, 1));
    assert!(msg.contains("missing required property `tasks`"), "{msg}");

    let yaml = format!(
        "{HEAD}tasks:
  - id: p
    type: io.kestra.plugin.core.flow.Parallel
    tasks: []
"
    );
    let (where_, _) = only(&yaml);
    assert_eq!(where_, at("tasks[0].tasks", 6, 12));
}

#[test]
fn invalid_ids() {
    let yaml = "id: -bad
namespace: Company
tasks:
  - id: has.dot
    type: Return
";
    let p = problems(yaml);
    let got: Vec<_> = p
        .iter()
        .map(|p| (p.path.as_str(), p.line, p.column))
        .collect();
    assert_eq!(
        got,
        [("id", 1, 5), ("namespace", 2, 12), ("tasks[0].id", 4, 9)]
    );
    assert!(
        p[2].message.contains("invalid task id `has.dot`"),
        "{}",
        p[2].message
    );
}

#[test]
fn several_problems_are_reported_together_in_source_order() {
    let yaml = format!(
        "{HEAD}tasks:
  - id: a
    type: Nope
  - id: b
    type: io.kestra.plugin.core.flow.Sleep
    duration: 5 seconds
  - id: c
    type: io.kestra.plugin.transform.jsonata.TransformValue
    from: '{{{{ inputs.x }}}}'
    expression: 'a +'
"
    );
    let p = problems(&yaml);
    let got: Vec<_> = p
        .iter()
        .map(|p| (p.path.as_str(), p.line, p.column))
        .collect();
    assert_eq!(
        got,
        [
            ("tasks[0].type", 5, 11),
            ("tasks[1].duration", 8, 15),
            ("tasks[2].expression", 12, 17),
        ]
    );
    assert!(p[1].message.contains("ISO-8601"), "{}", p[1].message);
    assert!(p[2].message.contains("JSONata"), "{}", p[2].message);
}

#[test]
fn dag_dependencies() {
    let yaml = format!(
        "{HEAD}tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {{id: a, type: Return}}
        dependsOn: [b]
      - task: {{id: b, type: Return}}
        dependsOn: [a]
      - task: {{id: c, type: Return}}
        dependsOn: [zz]
"
    );
    let (where_, msg) = only(&yaml);
    assert_eq!(where_, at("tasks[0].tasks[2].dependsOn", 12, 20));
    assert!(msg.contains("`zz`"), "{msg}");

    let cyclic = yaml.replace("[zz]", "[a]");
    let (where_, msg) = only(&cyclic);
    assert_eq!(where_, at("tasks[0].tasks[0].dependsOn", 8, 20));
    assert!(msg.contains("cyclic dependency between a, b"), "{msg}");
}

#[test]
fn yaml_syntax_errors_and_duplicate_keys() {
    let (where_, msg) = only(&format!(
        "{HEAD}tasks:\n  - id: a\n    type: Return\n    format: [unclosed\n"
    ));
    assert_eq!(where_.0, "");
    assert!(where_.1 >= 6, "{where_:?}");
    assert!(msg.starts_with("invalid YAML"), "{msg}");

    let (where_, msg) = only(&format!(
        "{HEAD}tasks:\n  - id: a\n    id: b\n    type: Return\n"
    ));
    assert_eq!((where_.1, where_.2), (5, 5));
    assert!(msg.to_lowercase().contains("duplicate"), "{msg}");
}

#[test]
fn inputs_are_checked_at_parse_time() {
    let yaml = format!(
        "{HEAD}inputs:
  - id: n
    type: INT
    defaults: ten
  - id: s
    type: SELECT
  - id: n
    type: STRING
  - id: w
    type: WHATEVER
tasks:
  - id: r
    type: Return
"
    );
    let p = problems(&yaml);
    let got: Vec<_> = p
        .iter()
        .map(|p| (p.path.as_str(), p.line, p.column))
        .collect();
    assert_eq!(
        got,
        [
            ("inputs[0].defaults", 6, 15),
            ("inputs[1].values", 7, 5),
            ("inputs[2].id", 9, 5),
            ("inputs[3].type", 12, 11),
        ]
    );
    assert!(p[0].message.contains("INT"), "{}", p[0].message);
    assert!(
        p[3].message.contains("unknown input type `WHATEVER`"),
        "{}",
        p[3].message
    );
}

#[test]
fn problem_display_names_path_and_position() {
    let p = problems(&format!("{HEAD}tasks:\n  - id: a\n    type: Nope\n"));
    assert_eq!(
        p[0].to_string(),
        "tasks[0].type at 5:11: unknown task type `Nope`"
    );
}

#[test]
fn unsupported_task_types_and_bad_cron() {
    let yaml = format!(
        "{HEAD}tasks:
  - id: again
    type: io.kestra.plugin.core.flow.Template
    namespace: company.team
    templateId: f
  - id: wait
    type: io.kestra.core.tasks.flows.Template
    delay: PT1S
    tasks:
      - id: inner
        type: Nope
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: '0 * * *'
"
    );
    let p = problems(&yaml);
    let got: Vec<_> = p
        .iter()
        .map(|p| (p.path.as_str(), p.line, p.column))
        .collect();
    assert_eq!(
        got,
        [
            ("tasks[0].type", 5, 11),
            ("tasks[1].type", 9, 11),
            ("tasks[1].tasks[0].type", 13, 15),
            ("triggers[0].cron", 17, 11)
        ]
    );
    assert_eq!(
        p[0].message,
        "task type `io.kestra.plugin.core.flow.Template` is not supported yet"
    );
    assert_eq!(
        p[1].message, "task type `io.kestra.plugin.core.flow.Template` is not supported yet",
        "named by its canonical name, whatever the alias"
    );
    assert_eq!(
        p[2].message, "unknown task type `Nope`",
        "children are still checked"
    );
    assert!(
        p[3].message.contains("expected 5 fields, found 4"),
        "{}",
        p[3].message
    );
    for spelling in [
        "io.kestra.core.tasks.flows.Template",
        "Template",
        "core.flow.Template",
    ] {
        let p = problems(&format!("{HEAD}tasks:\n  - id: a\n    type: {spelling}\n"));
        assert!(
            p[0].message.ends_with("is not supported yet"),
            "{spelling}: {}",
            p[0]
        );
    }
}

#[test]
fn empty_document_and_wrong_root() {
    let (where_, msg) = only("");
    assert_eq!(where_.0, "");
    assert_eq!(msg, "the flow is empty");
    let (_, msg) = only("- a\n- b\n");
    assert_eq!(msg, "expected a map, found a list");
}

/// A template syntax error in a task property does not reject the flow (as
/// in Kestra, which fails the task at run time): it marks the task and is
/// kept as a warning with its path and position. Meaningful once the
/// expression engine rejects the template; the placeholder accepts all.
#[test]
fn template_syntax_errors_are_deferred_to_the_task() {
    let bad = "{{ (inputs.x }}";
    let yaml = format!(
        "{HEAD}tasks:
  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: broken
        type: io.kestra.plugin.core.debug.Return
        format: '{bad}'
      - id: fine
        type: io.kestra.plugin.core.debug.Return
        format: ok
outputs:
  - id: out
    type: STRING
    value: '{{{{ outputs.fine.value }}}}'
"
    );
    let flow = Flow::parse(&yaml).expect("a template error does not reject the flow");
    if peregrine_engine::expression::Property::compile(&serde_json::json!(bad)).is_ok() {
        assert!(flow.warnings.is_empty());
        return;
    }
    let warnings: Vec<_> = flow
        .warnings
        .iter()
        .map(|p| (p.path.as_str(), p.line, p.column))
        .collect();
    assert_eq!(warnings, [("tasks[0].tasks[0].format", 9, 17)]);
    let broken = flow.find_task("broken").expect("task");
    let error = broken.expression_error.as_deref().expect("marked");
    assert!(
        error.starts_with("tasks[0].tasks[0].format at 9:17: invalid expression"),
        "{error}"
    );
    assert!(
        flow.find_task("seq")
            .expect("seq")
            .expression_error
            .is_none()
    );
    assert!(
        flow.find_task("fine")
            .expect("fine")
            .expression_error
            .is_none()
    );
}

#[test]
fn kafka_realtime_trigger_is_typed_and_checked() {
    let flow = Flow::parse(
        r#"
id: k
namespace: ns
triggers:
  - id: orders
    type: io.kestra.plugin.kafka.RealtimeTrigger
    topic: [a, b]
    properties:
      bootstrap.servers: 127.0.0.1:9092
      fetch.wait.max.ms: 5
    groupId: g
    valueDeserializer: JSON
tasks:
  - id: r
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.value }}"
"#,
    )
    .unwrap();
    match &flow.triggers[0].kind {
        TriggerKind::KafkaRealtime {
            topic,
            group_id,
            key_deserializer,
            value_deserializer,
            properties,
            ..
        } => {
            assert_eq!(topic, &["a", "b"]);
            assert_eq!(group_id, "g");
            assert_eq!(*key_deserializer, Deserializer::String);
            assert_eq!(*value_deserializer, Deserializer::Json);
            assert_eq!(properties["fetch.wait.max.ms"], 5);
        }
        other => panic!("not a Kafka trigger: {other:?}"),
    }

    let bad = problems(
        r#"
id: k
namespace: ns
triggers:
  - id: orders
    type: io.kestra.plugin.kafka.RealtimeTrigger
    properties:
      group.id: x
    valueDeserializer: AVRO
    keyDeserializer: NOPE
tasks:
  - id: r
    type: io.kestra.plugin.core.debug.Return
    format: x
"#,
    );
    let messages: Vec<String> = bad
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    let joined = messages.join("\n");
    for expected in [
        "triggers[0].topic: missing required property `topic`",
        "triggers[0].groupId: missing required property `groupId`",
        "triggers[0].properties: missing required property `bootstrap.servers`",
        "triggers[0].valueDeserializer: `AVRO`: AVRO needs a schema registry",
        "triggers[0].keyDeserializer: `NOPE`: expected one of STRING",
    ] {
        assert!(joined.contains(expected), "{expected}\nnot in\n{joined}");
    }
}

/// What Peregrine does not honour is refused where it is written, never
/// parsed and ignored: `timeout` on a flowable task (which runs no attempt
/// of its own; Kestra's worker applies it to runnable tasks only). A
/// flow-level or flowable `retry` is honoured (the default of the runnable
/// tasks below it, a new execution with CREATE_NEW_EXECUTION), and so are
/// a runnable task's `timeout` and the flow's `concurrency`.
#[test]
fn flowable_timeouts_are_refused() {
    let yaml = format!(
        "{HEAD}retry:
  type: constant
  interval: PT1S
  maxAttempt: 2
  behavior: CREATE_NEW_EXECUTION
concurrency:
  limit: 1
tasks:
  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    timeout: PT1M
    retry:
      type: constant
      interval: PT1S
      maxAttempt: 2
    tasks:
      - id: ok
        type: io.kestra.plugin.core.debug.Return
        format: x
        timeout: PT1M
        retry:
          type: constant
          interval: PT1S
          maxAttempt: 2
          behavior: RETRY_FAILED_TASK
"
    );
    let p = problems(&yaml);
    let got: Vec<_> = p
        .iter()
        .map(|p| (p.path.as_str(), p.line, p.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [(
            "tasks[0].timeout",
            13,
            "`timeout` on a flowable task is not supported yet"
        ),]
    );
}

#[test]
fn a_schedule_reads_its_properties_and_refuses_what_it_does_not_run() {
    let flow = Flow::parse(&format!(
        "{HEAD}tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: x
triggers:
  - id: nightly
    type: io.kestra.core.models.triggers.types.Schedule
    cron: '0 2 * * *'
    timezone: Europe/Paris
    recoverMissedSchedules: LAST
    lateMaximumDelay: PT1H
    labels:
      team: data
    inputs:
      day: \"{{{{ trigger.date }}}}\"
    backfill: {{}}
"
    ))
    .unwrap();
    let trigger = &flow.triggers[0];
    assert_eq!(trigger.type_name, "io.kestra.plugin.core.trigger.Schedule");
    let peregrine_engine::flow::TriggerKind::Schedule {
        dates,
        recover,
        late_maximum_delay,
        labels,
        inputs,
        ..
    } = &trigger.kind
    else {
        panic!("{:?}", trigger.kind);
    };
    assert_eq!(dates.zone(), chrono_tz::Europe::Paris);
    assert_eq!(*recover, Some(peregrine_engine::flow::RecoverMissed::Last));
    assert_eq!(
        *late_maximum_delay,
        Some(std::time::Duration::from_secs(3600))
    );
    assert_eq!(labels, &[("team".to_owned(), "data".to_owned())]);
    assert_eq!(inputs["day"], "{{ trigger.date }}");

    let p = problems(&format!(
        "{HEAD}tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: x
triggers:
  - id: a
    type: io.kestra.plugin.core.trigger.Schedule
    cron: '*/5 * * * * *'
    timezone: Mars/Olympus
    recoverMissedSchedules: SOME
    interval: PT1M
    backfill:
      start: 2024-01-01T00:00:00Z
    stopAfter: [FAILED]
    conditions:
      - type: io.kestra.plugin.core.condition.PublicHoliday
  - id: b
    type: io.kestra.plugin.core.trigger.Webhook
    key: k
    labels:
      team: data
"
    ));
    let got: Vec<_> = p
        .iter()
        .map(|p| (p.path.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "triggers[0].timezone",
                "`Mars/Olympus` is not an IANA time zone (e.g. Europe/Paris)"
            ),
            (
                "triggers[0].recoverMissedSchedules",
                "`SOME`: expected one of ALL, LAST, NONE"
            ),
            (
                "triggers[0].interval",
                "a Schedule has no `interval` (use `cron`)"
            ),
            (
                "triggers[0].backfill",
                "a Schedule's `backfill` property does nothing (in Kestra either): backfill \
                 through `PUT /api/v1/main/triggers` with `backfill: {start, end}`"
            ),
            (
                "triggers[0].conditions[0].type",
                "condition type `io.kestra.plugin.core.condition.PublicHoliday` is not supported yet"
            ),
            (
                "triggers[1].labels",
                "trigger `labels` (but on a Schedule or a Flow trigger) is not supported yet"
            ),
        ]
    );
}
