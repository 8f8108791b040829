use super::*;
use crate::tasks::testing::{flow, problems};

#[test]
fn it_runs_its_three_tasks_named_after_it_as_kestra_does() {
    let flow = flow(
        r#"
  - id: each
    type: io.kestra.core.tasks.flows.ForEachItem
    items: "{{ inputs.file }}"
    namespace: company.team
    flowId: child
"#,
    );
    let each = flow.find_task("each").expect("the task");
    let ids: Vec<&str> = each
        .kind
        .child_lists()
        .into_iter()
        .flatten()
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(ids, ["each_split", "each_items", "each_merge"]);
    let types: Vec<&str> = each.kind.child_lists()[0]
        .iter()
        .map(|t| t.type_name.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "io.kestra.plugin.core.flow.ForEachItem$ForEachItemSplit",
            "io.kestra.plugin.core.flow.ForEachItem$ForEachItemExecutable",
            "io.kestra.plugin.core.flow.ForEachItem$ForEachItemMergeOutputs"
        ]
    );
    // `batch` defaults to one row per batch.
    let split: &SplitItems = crate::tasks::testing::kind_of(&each.kind.child_lists()[0][0]);
    assert!(split.batch.rows.is_some() && split.batch.bytes.is_none());
}

#[test]
fn what_it_does_not_honour_is_refused_with_its_path() {
    let found = problems(
        r#"
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.file }}"
    batch:
      rows: 10
      size: 3
    flowId: child
"#,
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|p| p.contains("batch.size") && p.contains("not a property")),
        "{found:?}"
    );
    assert!(found.iter().any(|p| p.contains("namespace")), "{found:?}");
    let found = problems(
        r#"
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    batch: 10
    namespace: a
    flowId: child
"#,
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().any(|p| p.contains("items")), "{found:?}");
    assert!(
        found.iter().any(|p| p.contains("`batch` is a map")),
        "{found:?}"
    );
}

#[test]
fn a_batch_file_lies_beside_the_list_of_batches() {
    assert_eq!(
        batch_uri("kestra:///a/f/executions/x/tasks/e_split/y/splits.txt", 12).as_deref(),
        Some("kestra:///a/f/executions/x/tasks/e_split/y/batch-12")
    );
    assert_eq!(batch_uri("splits.txt", 1), None);
}

#[test]
fn a_batch_whose_execution_is_gone_fails_the_merge_when_every_batch_was_waited_for() {
    let dir = tempfile::tempdir().expect("a dir");
    let (variables, _files) = crate::tasks::testing::surroundings(dir.path());
    let holdings = crate::executor::Holdings::new(
        Vec::new(),
        vec![Arc::new(crate::executor::Finished::new(
            Duration::from_secs(60),
            10,
        ))],
        Vec::new(),
    );
    let env = WorkerEnv::new(None, &variables, None, 2).holding(Arc::new(holdings), None);
    let place = Place {
        namespace: "tests".into(),
        flow_id: "t".into(),
        execution: ExecutionId::generate(),
        task_id: "each_merge".into(),
        task_run: "r".into(),
        attempt: 1,
    };
    let gone = ExecutionId::generate();
    let merge = |wait: bool| MergeJob {
        place: place.clone(),
        children: vec![gone],
        wait,
    };
    let failed = Box::new(merge(true)).run(&env, None).result;
    let message = failed.expect_err("its record is gone");
    assert!(
        message.contains(&format!("the execution {gone} of batch 1 is gone")),
        "{message}"
    );
    // Not waited for: a batch not ended (or gone) has nothing to merge.
    let merged = Box::new(merge(false)).run(&env, None).result;
    assert_eq!(merged, Ok(json!({})));
}
