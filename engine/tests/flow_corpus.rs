//! Every flow of the conformance corpus parses and validates (except those
//! using a task type Peregrine does not run yet), and a few of them parse
//! into the structures Kestra gives them. What each task type reads from its
//! properties is tested next to it, in `src/tasks/`.

mod common;

use std::path::{Path, PathBuf};

use peregrine_engine::flow::{Error, Flow, InputType, Level, RetryPolicy, TriggerKind};

/// The corpus lives in the shared folder next to the repository; the
/// `PEREGRINE_CONFORMANCE` variable overrides it.
fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PEREGRINE_CONFORMANCE") {
        return PathBuf::from(dir).join("kestra/flows");
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for ancestor in manifest.ancestors() {
        let candidate = ancestor.join("shared/conformance/kestra/flows");
        if candidate.is_dir() {
            return candidate;
        }
    }
    panic!("conformance corpus not found above {}", manifest.display());
}

fn load(name: &str) -> Flow {
    let path = corpus_dir().join(name);
    let source = std::fs::read_to_string(&path).expect("corpus file readable");
    Flow::parse(&source).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_corpus_flow_is_valid() {
    let mut names: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("corpus dir readable")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    names.sort();
    assert_eq!(names.len(), 53, "the corpus holds 53 flows");
    let mut failures = Vec::new();
    let mut refused = Vec::new();
    for path in &names {
        let name = path.file_name().and_then(|n| n.to_str()).expect("a name");
        let source = std::fs::read_to_string(path).expect("corpus file readable");
        match Flow::parse(&source) {
            Ok(_) => {}
            Err(Error::Invalid(problems))
                if problems.iter().all(|p| {
                    p.path.ends_with(".type") && p.message.ends_with("is not supported yet")
                }) =>
            {
                let types: Vec<&str> = problems
                    .iter()
                    .filter_map(|p| p.message.split('`').nth(1))
                    .collect();
                refused.push((name.to_owned(), types.join(", ")));
            }
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        refused.is_empty(),
        "refused for a task or trigger type that does not run yet: {refused:?}"
    );
}

/// A Kestra task type Peregrine does not run is refused where the flow
/// names it, by its deprecated name too.
#[test]
fn a_task_type_not_run_yet_is_refused_where_it_is_named() {
    let source = "id: t\nnamespace: tests\ntasks:\n  - id: tpl\n    type: io.kestra.core.tasks.flows.Template\n    namespace: tests\n    templateId: x\n";
    let Err(Error::Invalid(problems)) = Flow::parse(source) else {
        panic!("a Template is refused");
    };
    assert_eq!(
        problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "tasks[0].type at 5:11: task type `io.kestra.plugin.core.flow.Template` is not supported yet"
        ]
    );
}

/// The labels, inputs and Schedule trigger of `switch.yaml` (its cases are
/// read in `src/tasks/flowable/branch.rs`).
#[test]
fn switch_flow_labels_inputs_and_schedule() {
    let flow = load("switch.yaml");
    assert_eq!(flow.triggers.len(), 1);
    let TriggerKind::Schedule { cron, recover, .. } = &flow.triggers[0].kind else {
        panic!("a Schedule: {:?}", flow.triggers[0].kind);
    };
    assert_eq!((cron.as_str(), *recover), ("0 * * * *", None));
    assert_eq!(
        flow.labels,
        [("switchFlowLabel".to_owned(), "switchFoo".to_owned())]
    );
    assert_eq!(flow.inputs[1].defaults, Some(serde_json::json!("amazing")));
    let t3 = flow.find_task("t3").expect("t3");
    assert!(t3.is_flowable());
    assert_eq!(t3.type_name, "io.kestra.plugin.core.flow.Sequential");
    assert_eq!(t3.errors[0].id, "error-t1");
}

#[test]
fn error_handlers_at_flow_and_task_level() {
    let flow = load("all-flowable.yaml");
    let ids: Vec<&str> = flow.errors.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["error-1st", "error-2nd"]);
    let each = &flow.tasks[0];
    assert_eq!(each.errors[0].id, "1-each-seq-error");
    assert_eq!(
        each.errors[0].type_name,
        "io.kestra.plugin.core.flow.Sequential"
    );
    assert!(flow.find_task("1-each-seq-error-1").is_some());

    let flow = load("disable-error.yaml");
    assert!(flow.errors[1].disabled);
    assert!(!flow.errors[0].disabled);
}

#[test]
fn task_properties() {
    let flow = load("full.yaml");
    let t3 = flow.find_task("t3").expect("t3");
    assert_eq!(t3.timeout, Some(std::time::Duration::from_secs(3600)));
    let retry = t3.retry.as_ref().expect("retry");
    assert_eq!(retry.max_attempt, Some(5));
    assert_eq!(
        retry.policy,
        RetryPolicy::Constant {
            interval: std::time::Duration::from_secs(900)
        }
    );
    assert_eq!(
        flow.find_task("t5").expect("t5").type_name,
        "io.kestra.plugin.core.flow.Parallel"
    );

    let flow = load("retry-success.yaml");
    let retry = flow.tasks[0].retry.as_ref().expect("retry");
    assert!(retry.warning_on_retry);
    assert_eq!(retry.max_duration, Some(std::time::Duration::from_secs(15)));

    let flow = load("task-allow-warning-runnable.yml");
    assert!(flow.tasks[0].allow_failure && flow.tasks[0].allow_warning);

    let flow = load("task-runif.yml");
    assert!(flow.tasks[0].run_if.is_none());
    assert!(flow.tasks[1].run_if.is_some());

    let flow = load("logs.yaml");
    assert_eq!(flow.tasks[3].log_level, Some(Level::Info));
    assert_eq!(flow.plugin_defaults.len(), 1);

    let flow = load("minimal.yaml");
    assert_eq!(flow.revision, 2);
    assert_eq!(
        (flow.id.as_str(), flow.namespace.as_str()),
        ("minimal", "io.kestra.tests")
    );
}

#[test]
fn dag_and_inputs() {
    let flow = load("dag.yaml");
    assert_eq!(flow.tasks[0].description.as_deref(), Some("my task"));
    let ids: Vec<&str> = flow.all_tasks().iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        ["dag", "task1", "task2", "task3", "task4", "task5", "task6"],
        "a Dag's tasks are its children"
    );

    let flow = load("if.yaml");
    assert_eq!(flow.inputs.len(), 3);
    assert!(
        flow.inputs
            .iter()
            .all(|i| i.type_ == InputType::Boolean && i.required)
    );

    let flow = load("webhook.yaml");
    assert!(
        matches!(&flow.triggers[0].kind, TriggerKind::Webhook { key, template: None, .. } if key == "a-secret-key")
    );

    let flow = load("flow-with-array-outputs.yml");
    assert_eq!(flow.outputs[0].id, "myout");
    assert!(matches!(flow.outputs[0].type_, InputType::Array { .. }));

    let flow = load("variables.yaml");
    assert_eq!(flow.variables["second"], "{{vars.first}} > 2");
}

#[test]
fn flows_can_be_shared_across_shard_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Flow>();
    let flow = std::sync::Arc::new(load("return.yaml"));
    let other = std::sync::Arc::clone(&flow);
    let ids = std::thread::spawn(move || other.all_tasks().len())
        .join()
        .expect("thread");
    assert_eq!(ids, 3);
}

/// Kestra saves this flow although its `if` condition is not valid Pebble,
/// and fails the `if` task runs; the error waits on the task.
#[test]
fn invalid_template_waits_on_its_task() {
    let flow = load("flowable-with-parent-fail.yaml");
    let task = flow.find_task("if").expect("if");
    let rejected = peregrine_engine::expression::Property::compile(&serde_json::json!(
        "{{ a and {% for e in b %}{{ e }}{% endfor %} }}"
    ))
    .is_err();
    assert_eq!(task.expression_error.is_some(), rejected);
    assert_eq!(flow.warnings.len(), usize::from(rejected));
    assert!(
        flow.find_task("vision")
            .expect("vision")
            .expression_error
            .is_none()
    );
}
