//! A parent → child Subflow round trip on an embedded engine with the
//! `sync` WAL, beside the same work with no subflow: one execution at a
//! time, from submission to the parent's durable end. The child is a real
//! execution on the shard its id hashes to; the round trip pays its
//! creation, the courier's two hops and the journal's syncs.
//!
//! `cargo bench -p peregrine-benches --bench subflow` prints, for each of
//! `ROUNDS` rounds (the two cases side by side in each), the median and
//! p99 of each case and their ratio, then the medians over the rounds.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peregrine_engine::flow::Flow;
use peregrine_engine::{
    Ack, Change, Engine, EngineConfig, ExecutionId, FlowRevision, Flows, NewExecution, Observer,
    Receipt,
};

/// Round trips per case and round.
const N: usize = 2_000;
/// Rounds; the figures are the medians over them.
const ROUNDS: usize = 5;

const CHILD: &str = r#"
id: child
namespace: bench
outputs:
  - id: value
    type: STRING
    value: "{{ outputs.work.value }}"
tasks:
  - id: work
    type: io.kestra.plugin.core.debug.Return
    format: "done"
"#;

const PARENT: &str = r#"
id: parent
namespace: bench
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: bench
    flowId: child
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.call.outputs.value }}"
"#;

/// The same two Returns, in one execution.
const FLAT: &str = r#"
id: flat
namespace: bench
tasks:
  - id: work
    type: io.kestra.plugin.core.debug.Return
    format: "done"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.work.value }}"
"#;

#[derive(Debug, Default)]
struct Catalog(HashMap<String, Arc<FlowRevision>>);

impl Flows for Catalog {
    fn find(
        &self,
        _namespace: &str,
        flow_id: &str,
        _revision: Option<u32>,
    ) -> Result<Arc<FlowRevision>, String> {
        self.0
            .get(flow_id)
            .cloned()
            .ok_or_else(|| format!("no flow {flow_id}"))
    }
}

/// Hands each ended execution's id and receipt to the waiting bench.
struct Ends(Mutex<Option<flume::Sender<(ExecutionId, Receipt)>>>);

impl Observer for Ends {
    fn on_change(&self, change: &Change<'_>) {
        if change.ended.is_some()
            && let Some(tx) = self.0.lock().expect("not poisoned").as_ref()
        {
            let _ = tx.send((change.execution.id(), change.receipt.clone()));
        }
    }
}

fn revision(yaml: &str) -> Arc<FlowRevision> {
    let flow = Flow::parse(yaml).expect("the bench's flows parse");
    Arc::new(FlowRevision::new(Arc::new(flow)))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// `N` round trips of `flow`, one at a time: median and p99.
fn measure(
    engine: &Engine,
    ends: &flume::Receiver<(ExecutionId, Receipt)>,
    flow: &Arc<FlowRevision>,
) -> (Duration, Duration) {
    let mut took = Vec::with_capacity(N);
    for _ in 0..N {
        let new = NewExecution::new(Arc::clone(flow), Default::default());
        let id = new.id;
        let began = Instant::now();
        engine
            .submit(new, Ack::Receipt)
            .expect("accepted")
            .wait()
            .expect("answered");
        loop {
            let (ended, receipt) = ends.recv().expect("the engine runs");
            if ended == id {
                receipt.wait().expect("durable");
                break;
            }
        }
        took.push(began.elapsed());
    }
    took.sort();
    (percentile(&took, 0.5), percentile(&took, 0.99))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter naming another bench skips it.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"subflow".contains(a.as_str()))
    {
        return;
    }
    let mut catalog = Catalog::default();
    for yaml in [CHILD, PARENT, FLAT] {
        let rev = revision(yaml);
        catalog.0.insert(rev.flow().id.clone(), rev);
    }
    let (parent, flat) = (catalog.0["parent"].clone(), catalog.0["flat"].clone());
    let catalog = Arc::new(catalog);
    let dir = tempfile::tempdir().expect("a temp dir");
    let (tx, rx) = flume::unbounded();
    let observer = Arc::new(Ends(Mutex::new(Some(tx))));
    let config = EngineConfig {
        threads: NonZeroUsize::new(2).expect("2"),
        flows: Some(Arc::clone(&catalog) as Arc<dyn Flows>),
        ..EngineConfig::default()
    };
    let resolve = |_: &str, id: &str, _: u32| catalog.0.get(id).cloned();
    let (engine, _) = Engine::start_durable(
        config,
        observer.clone(),
        dir.path(),
        peregrine_wal::Config::default(),
        &resolve,
    )
    .expect("the engine starts");
    // Warm up both paths.
    let _ = (measure(&engine, &rx, &flat), measure(&engine, &rx, &parent));
    println!("round  flat p50   flat p99   subflow p50  subflow p99  ratio p50  ratio p99 (µs)");
    let mut rows = Vec::new();
    for round in 1..=ROUNDS {
        let (f50, f99) = measure(&engine, &rx, &flat);
        let (s50, s99) = measure(&engine, &rx, &parent);
        let row = [
            micros(f50),
            micros(f99),
            micros(s50),
            micros(s99),
            micros(s50) / micros(f50),
            micros(s99) / micros(f99),
        ];
        println!(
            "{round:>5}  {:>8.0}   {:>8.0}   {:>11.0}  {:>11.0}  {:>9.2}  {:>9.2}",
            row[0], row[1], row[2], row[3], row[4], row[5]
        );
        rows.push(row);
    }
    let col = |i: usize| median(rows.iter().map(|r| r[i]).collect());
    println!(
        "median {:>8.0}   {:>8.0}   {:>11.0}  {:>11.0}  {:>9.2}  {:>9.2}",
        col(0),
        col(1),
        col(2),
        col(3),
        col(4),
        col(5)
    );
    *observer.0.lock().expect("not poisoned") = None;
    engine.shutdown();
}
