//! The executor's costs: reading one output among many (must stay flat as
//! outputs grow), the seed's output-merge case (a 3-level ForEach of 2,100
//! task runs), and one execution of the seed flow, in-process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use peregrine_engine::State;
use peregrine_engine::flow::{Flow, validate_inputs};
use peregrine_engine::internals::OutputLookup;
use peregrine_engine::{
    Ack, Change, Engine, EngineConfig, FlowRevision, NewExecution, Observer, run_to_end,
};

/// Counts allocations so the report can show them beside wall time.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the counters
// are plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which
        // is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (above).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Three nested ForEach loops (10 × 10 × 20) around one Return: 2,111 task
/// runs, as in the seed's output-merge benchmark; a last task reads one
/// output deep inside.
fn foreach_flow() -> String {
    let list = |n: usize, p: &str| {
        (0..n)
            .map(|i| format!("\"{p}{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
id: foreach-2100
namespace: bench
tasks:
  - id: l1
    type: io.kestra.plugin.core.flow.ForEach
    values: [{l1}]
    tasks:
      - id: l2
        type: io.kestra.plugin.core.flow.ForEach
        values: [{l2}]
        tasks:
          - id: l3
            type: io.kestra.plugin.core.flow.ForEach
            values: [{l3}]
            tasks:
              - id: ret
                type: io.kestra.plugin.core.debug.Return
                format: "{{{{ parents[1].taskrun.value }}}}/{{{{ parent.taskrun.value }}}}/{{{{ taskrun.value }}}}"
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.ret['a9']['b9']['c19'].value }}}}"
"#,
        l1 = list(10, "a"),
        l2 = list(10, "b"),
        l3 = list(20, "c"),
    )
}

fn revision(yaml: &str) -> Arc<FlowRevision> {
    Arc::new(FlowRevision::new(Arc::new(
        Flow::parse(yaml).expect("bench flow parses"),
    )))
}

fn bench_output_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("output_lookup");
    for n in [1_000usize, 10_000, 100_000] {
        let fixture = OutputLookup::new(n);
        assert!(fixture.render().is_string(), "the lookup finds its output");
        group.bench_with_input(BenchmarkId::from_parameter(n), &fixture, |b, f| {
            b.iter(|| f.render())
        });
    }
    group.finish();
}

fn bench_foreach(c: &mut Criterion) {
    let flow = revision(&foreach_flow());
    let run = || run_to_end(NewExecution::new(Arc::clone(&flow), Default::default()));
    let exec = run();
    assert_eq!(exec.state(), State::Success, "{:?}", exec.logs().entries());
    assert_eq!(exec.task_runs().len(), 2_112);
    let (a0, b0) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    let rounds = 20;
    for _ in 0..rounds {
        run();
    }
    eprintln!(
        "foreach_2100: {} allocations, {} KiB allocated per execution ({} task runs)",
        (ALLOCATIONS.load(Ordering::Relaxed) - a0) / rounds,
        (BYTES.load(Ordering::Relaxed) - b0) / rounds / 1024,
        exec.task_runs().len()
    );
    c.bench_function("foreach_2100", |b| b.iter(run));
}

fn bench_seed_flow(c: &mut Criterion) {
    let yaml = include_str!("../../loadtest/flows/seed.yaml");
    let flow = revision(yaml);
    let order = peregrine_loadtest::order(7);
    let inputs = validate_inputs(
        flow.flow(),
        &serde_json::json!({ "order": order })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
    .expect("the seed's inputs are valid");
    let run = || run_to_end(NewExecution::new(Arc::clone(&flow), inputs.clone()));
    assert_eq!(run().state(), State::Success);
    c.bench_function("seed_flow_in_process", |b| b.iter(run));
}

/// Sends each ended execution's receipt to the bench loop.
struct Ended(std::sync::Mutex<std::sync::mpsc::Sender<peregrine_engine::Receipt>>);

impl Observer for Ended {
    fn on_change(&self, change: &Change<'_>) {
        if change.ended.is_some()
            && let Ok(tx) = self.0.lock()
        {
            let _ = tx.send(change.receipt.clone());
        }
    }
}

/// One execution of the seed flow through a running engine with a `sync`
/// WAL: submit, then wait until it has ended and its records are durable.
fn bench_seed_flow_sync(c: &mut Criterion) {
    let yaml = include_str!("../../loadtest/flows/seed.yaml");
    let flow = revision(yaml);
    let inputs = validate_inputs(
        flow.flow(),
        &serde_json::json!({ "order": peregrine_loadtest::order(7) })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
    .expect("the seed's inputs are valid");
    let dir = tempfile::tempdir().expect("a temp dir");
    let (tx, rx) = std::sync::mpsc::channel();
    let config = EngineConfig {
        threads: std::num::NonZeroUsize::MIN,
        ..EngineConfig::default()
    };
    let resolve = |_: &str, _: &str, _: u32| Some(Arc::clone(&flow));
    let (engine, _) = Engine::start_durable(
        config,
        Arc::new(Ended(std::sync::Mutex::new(tx))),
        dir.path(),
        peregrine_wal::Config::default(),
        &resolve,
    )
    .expect("the engine starts");
    c.bench_function("seed_flow_engine_sync_wal", |b| {
        b.iter(|| {
            engine
                .submit(
                    NewExecution::new(Arc::clone(&flow), inputs.clone()),
                    Ack::Receipt,
                )
                .expect("accepted");
            let receipt = rx.recv().expect("the execution ends");
            receipt.wait().expect("durable");
        })
    });
    engine.shutdown();
}

criterion_group!(
    benches,
    bench_output_lookup,
    bench_foreach,
    bench_seed_flow,
    bench_seed_flow_sync
);
criterion_main!(benches);
