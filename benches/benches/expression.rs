//! Rendering precompiled Pebble templates.
//!
//! The context holds N task-run outputs behind a lazy object (as the
//! executor's does), for N = 1k, 10k and 100k: a lookup must cost the same
//! whatever N, because nothing is cloned or merged per render.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use peregrine_engine::expression::{Context, LazyObject, Scope, Template};
use serde_json::{Value, json};

/// Outputs by task id, resolved on demand.
#[derive(Debug)]
struct Outputs(HashMap<String, Value>);

impl LazyObject for Outputs {
    fn get(&self, key: &str) -> Option<Scope<'_>> {
        self.0.get(key).map(Scope::Json)
    }

    fn to_json(&self) -> Value {
        Value::Object(self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

#[derive(Debug)]
struct Execution {
    outputs: Outputs,
    inputs: Value,
    taskrun: Value,
}

impl Context for Execution {
    fn root(&self, name: &str) -> Option<Scope<'_>> {
        match name {
            "outputs" => Some(Scope::Lazy(&self.outputs)),
            "inputs" => Some(Scope::Json(&self.inputs)),
            "taskrun" => Some(Scope::Json(&self.taskrun)),
            _ => None,
        }
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::UNIX_EPOCH
    }
}

/// `n` task outputs, plus one ForEach task `each` with `n` iteration values.
fn execution(n: usize) -> Execution {
    let mut by_task: HashMap<String, Value> = (0..n)
        .map(|i| {
            (
                format!("task{i}"),
                json!({"value": i, "uri": format!("kestra:///out/{i}.ion")}),
            )
        })
        .collect();
    by_task.insert(
        "transform".to_owned(),
        json!({"value": {"total": 42, "items": [1, 2, 3]}}),
    );
    let each: serde_json::Map<String, Value> = (0..n)
        .map(|i| (format!("v{i}"), json!({"value": format!("result {i}")})))
        .collect();
    by_task.insert("each".to_owned(), Value::Object(each));
    Execution {
        outputs: Outputs(by_task),
        inputs: json!({"name": "  Ada Lovelace  ", "count": 3}),
        taskrun: json!({"value": format!("v{}", n / 2), "id": "tr"}),
    }
}

fn compile(source: &str) -> Template {
    Template::compile(source).expect("benchmark templates compile")
}

fn lookups(c: &mut Criterion) {
    let typed = compile("{{ outputs.transform.value }}");
    let by_task = compile("{{ outputs.task500.uri }}");
    let foreach = compile("{{ outputs.each[taskrun.value].value }}");
    let mut group = c.benchmark_group("expression/outputs");
    for n in [1_000usize, 10_000, 100_000] {
        let ctx = execution(n);
        group.bench_with_input(BenchmarkId::new("typed_map", n), &ctx, |b, ctx| {
            b.iter(|| typed.render(black_box(ctx)).expect("renders"))
        });
        group.bench_with_input(BenchmarkId::new("task_attribute", n), &ctx, |b, ctx| {
            b.iter(|| by_task.render(black_box(ctx)).expect("renders"))
        });
        group.bench_with_input(BenchmarkId::new("foreach_value", n), &ctx, |b, ctx| {
            b.iter(|| foreach.render(black_box(ctx)).expect("renders"))
        });
    }
    group.finish();
}

fn text_and_filters(c: &mut Criterion) {
    let ctx = execution(1_000);
    let plain = compile("just a static string, no tags");
    let hello = compile("hello {{ inputs.name | upper }}");
    let chain = compile(
        "{{ inputs.name | trim | lower | replace({'ada': 'countess'}) | slugify | upper }}",
    );
    let logic = compile(
        "{% if inputs.count > 2 %}{{ outputs.missing ?? 'none' }}-{{ inputs.count * 2 }}{% endif %}",
    );
    let mut group = c.benchmark_group("expression/render");
    group.bench_function("static_text", |b| {
        b.iter(|| plain.render(black_box(&ctx)).expect("renders"))
    });
    group.bench_function("hello_upper", |b| {
        b.iter(|| hello.render(black_box(&ctx)).expect("renders"))
    });
    group.bench_function("filter_chain", |b| {
        b.iter(|| chain.render(black_box(&ctx)).expect("renders"))
    });
    group.bench_function("if_coalesce_arithmetic", |b| {
        b.iter(|| logic.render(black_box(&ctx)).expect("renders"))
    });
    group.bench_function("compile_hello_upper", |b| {
        b.iter(|| {
            Template::compile(black_box("hello {{ inputs.name | upper }}")).expect("compiles")
        })
    });
    group.finish();
}

criterion_group!(benches, lookups, text_and_filters);
criterion_main!(benches);
