use crate::execution::State;
use crate::tasks::testing::{logs_of, only, problems, run_with_variables, stored, surroundings};

/// Items as Kestra's FileSerde writes them, and one of another shape.
const ITEMS: &str = r#"{id:1,name:"a",amount:5,at:2024-01-02T03:04:05Z}
{id:2,name:'b',amount:50}
{id:1,name:"c",amount:7.5e0}
{id:3,name:"d"}
{id:2,name:"e",amount:500}
"#;

/// A flow writing ITEMS then running `tasks` (YAML under `tasks:`) on them.
fn with_items(tasks: &str) -> String {
    let items = serde_json::to_string(ITEMS).unwrap();
    format!(
        "  - id: items\n    type: io.kestra.plugin.core.storage.Write\n    extension: .ion\n    content: {items}\n{tasks}"
    )
}

#[test]
fn deduplicate_keeps_the_last_item_of_each_key_where_it_stands() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, files) = surroundings(dir.path());
    let exec = run_with_variables(
        &with_items(
            r#"
  - id: dedup
    type: io.kestra.plugin.core.storage.DeduplicateItems
    from: "{{ outputs.items.uri }}"
    expr: "{{ id }}-{{ flow.id }}"
"#,
        ),
        variables,
    );
    assert_eq!(exec.state(), State::Success, "{:?}", exec.logs());
    let outputs = only(&exec, "dedup").outputs().unwrap();
    assert_eq!(outputs["numKeys"], 3);
    assert_eq!(outputs["processedItemsTotal"], 5);
    assert_eq!(outputs["droppedItemsTotal"], 2);
    // The lines as they were, the last of each id, in file order.
    assert_eq!(
        stored(&files, &outputs["uri"]),
        "{id:1,name:\"c\",amount:7.5e0}\n{id:3,name:\"d\"}\n{id:2,name:\"e\",amount:500}\n"
    );
    assert!(outputs["uri"].as_str().unwrap().ends_with(".ion"));
}

#[test]
fn filter_includes_or_excludes_what_its_condition_holds_for() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, files) = surroundings(dir.path());
    let exec = run_with_variables(
        &with_items(
            r#"
  - id: big
    type: io.kestra.plugin.core.storage.FilterItems
    from: "{{ outputs.items.uri }}"
    filterCondition: "{{ amount > 10 }}"
    errorOrNullBehavior: EXCLUDE
  - id: small
    type: io.kestra.core.tasks.storages.FilterItems
    from: "{{ outputs.items.uri }}"
    filterCondition: " {{ amount > 10 }} "
    filterType: EXCLUDE
    errorOrNullBehavior: INCLUDE
  - id: strict
    type: io.kestra.plugin.core.storage.FilterItems
    from: "{{ outputs.items.uri }}"
    filterCondition: "{{ amount > 10 }}"
"#,
        ),
        variables,
    );
    let big = only(&exec, "big").outputs().unwrap();
    assert_eq!(big["processedItemsTotal"], 5);
    assert_eq!(big["droppedItemsTotal"], 3);
    assert_eq!(
        stored(&files, &big["uri"]),
        "{id:2,name:'b',amount:50}\n{id:2,name:\"e\",amount:500}\n"
    );
    let small = only(&exec, "small").outputs().unwrap();
    assert_eq!(small["droppedItemsTotal"], 2);
    assert_eq!(
        stored(&files, &small["uri"]),
        "{id:1,name:\"a\",amount:5,at:2024-01-02T03:04:05Z}\n{id:1,name:\"c\",amount:7.5e0}\n{id:3,name:\"d\"}\n"
    );
    // FAIL, the default: the null amount fails the task.
    assert_eq!(only(&exec, "strict").state(), State::Failed);
    assert!(!logs_of(&exec, "strict").is_empty());
}

#[test]
fn what_is_not_an_item_fails_the_task_whatever_it_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let (variables, _files) = surroundings(dir.path());
    let exec = run_with_variables(
        r#"
  - id: items
    type: io.kestra.plugin.core.storage.Write
    content: "{a:1}\n[1,2]\n"
  - id: filter
    type: io.kestra.plugin.core.storage.FilterItems
    from: "{{ outputs.items.uri }}"
    filterCondition: "{{ a == 1 }}"
    errorOrNullBehavior: INCLUDE
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: never
"#,
        variables,
    );
    assert_eq!(only(&exec, "filter").state(), State::Failed);
    assert!(
        logs_of(&exec, "filter")
            .iter()
            .any(|(_, m)| m.contains("item 2 of") && m.contains("not an Ion struct")),
        "{:?}",
        logs_of(&exec, "filter")
    );
    assert_eq!(exec.task_runs_of("never").count(), 0);
}

#[test]
fn bad_choices_are_refused_at_validation() {
    let found = problems(
        r#"
  - id: f
    type: io.kestra.plugin.core.storage.FilterItems
    from: kestra:///a
    filterCondition: "{{ true }}"
    filterType: SOME
    errorOrNullBehavior: MAYBE
  - id: d
    type: io.kestra.plugin.core.storage.DeduplicateItems
    from: kestra:///a
"#,
    );
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found.iter().any(|p| p.contains("filterType")), "{found:?}");
    assert!(
        found.iter().any(|p| p.contains("errorOrNullBehavior")),
        "{found:?}"
    );
    assert!(found.iter().any(|p| p.contains("expr")), "{found:?}");
}
