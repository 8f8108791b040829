//! Shared by the engine's integration tests: run a conformance flow to its end.

#![allow(dead_code)]
// A broken fixture is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use peregrine_engine::Execution;
use peregrine_engine::flow::{Flow, validate_inputs};
use peregrine_engine::{Ack, Change, Engine, EngineConfig, ExecutionId, Flows, Observer};
use peregrine_engine::{FlowRevision, NewExecution, run_to_end};
use serde_json::Value;

/// The folder of Kestra's own test flows.
pub fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/kestra/flows")
}

/// Parses `file` (a name inside [`conformance_dir`]) and runs one execution
/// of it with `inputs` (a JSON object) to a terminal state.
pub fn run_flow(file: &str, inputs: serde_json::Value) -> Execution {
    run_source(&corpus_source(file), inputs)
}

/// The YAML of corpus flow `file`.
pub fn corpus_source(file: &str) -> String {
    let path = conformance_dir().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Runs a flow given as YAML text.
pub fn run_source(source: &str, inputs: serde_json::Value) -> Execution {
    let flow = Flow::parse(source).unwrap_or_else(|e| panic!("flow does not parse: {e}"));
    let inputs = harness_inputs(&flow, inputs);
    let revision = Arc::new(FlowRevision::new(Arc::new(flow)));
    run_to_end(NewExecution::new(revision, inputs))
}

/// Like [`run_flow`], through an engine (its shard threads) whose
/// configuration `tweak` changed first: for what only an engine's
/// configuration gives an execution, such as `envs` and `globals`.
pub fn run_flow_with(
    file: &str,
    inputs: serde_json::Value,
    tweak: impl FnOnce(&mut EngineConfig),
) -> Execution {
    let flow =
        Flow::parse(&corpus_source(file)).unwrap_or_else(|e| panic!("{file} does not parse: {e}"));
    let inputs = harness_inputs(&flow, inputs);
    let revision = Arc::new(FlowRevision::new(Arc::new(flow)));
    let mut config = EngineConfig {
        threads: NonZeroUsize::MIN,
        ..EngineConfig::default()
    };
    tweak(&mut config);
    let ended = Arc::new(EndedExecution::default());
    let engine = Engine::start(config, ended.clone()).unwrap();
    let new = NewExecution::new(revision, inputs);
    let id = new.id;
    engine.submit(new, Ack::Receipt).unwrap().wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let execution = loop {
        if let Some(execution) = ended.0.lock().unwrap().take() {
            break execution;
        }
        assert!(Instant::now() < deadline, "{file} did not end within 20 s");
        std::thread::sleep(Duration::from_millis(2));
    };
    engine.shutdown();
    assert_eq!(execution.id(), id);
    execution
}

/// The one execution that ended, as it ended.
#[derive(Default)]
struct EndedExecution(Mutex<Option<Execution>>);

impl Observer for EndedExecution {
    fn on_change(&self, change: &Change<'_>) {
        if change.ended.is_some() {
            *self.0.lock().unwrap() = Some(change.execution.clone());
        }
    }
}

/// The inputs as Kestra's test helper hands them to an execution.
fn harness_inputs(flow: &Flow, inputs: serde_json::Value) -> serde_json::Map<String, Value> {
    let provided = match inputs {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => serde_json::Map::new(),
        other => panic!("inputs must be a JSON object, not {other}"),
    };
    // Kestra's own test helper passes inputs raw (no type coercion, no
    // required check) with the declared defaults filled in; do the same when
    // strict validation refuses them, so its flows run as its tests run them.
    validate_inputs(flow, &provided).unwrap_or_else(|_| {
        let mut raw = provided.clone();
        for input in &flow.inputs {
            if let (false, Some(default)) = (raw.contains_key(&input.id), &input.defaults) {
                raw.insert(input.id.clone(), default.clone());
            }
        }
        raw
    })
}

// ---------------------------------------------------------------------------
// An engine with flows to call, for subflows.

/// Flows by namespace and id, latest revision only.
#[derive(Debug, Default)]
pub struct MapFlows(Mutex<HashMap<(String, String), Arc<FlowRevision>>>);

impl MapFlows {
    pub fn add(&self, yaml: &str) -> Arc<FlowRevision> {
        let flow = Flow::parse(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let rev = Arc::new(FlowRevision::new(Arc::new(flow)));
        let key = (rev.flow().namespace.clone(), rev.flow().id.clone());
        self.0.lock().unwrap().insert(key, Arc::clone(&rev));
        rev
    }

    pub fn get(&self, namespace: &str, id: &str) -> Option<Arc<FlowRevision>> {
        let key = (namespace.to_owned(), id.to_owned());
        self.0.lock().unwrap().get(&key).cloned()
    }
}

impl Flows for MapFlows {
    fn find(
        &self,
        namespace: &str,
        flow_id: &str,
        revision: Option<u32>,
    ) -> Result<Arc<FlowRevision>, String> {
        self.get(namespace, flow_id)
            .filter(|rev| revision.is_none_or(|r| r == rev.revision()))
            .ok_or_else(|| {
                format!(
                    "Unable to find flow '{namespace}'.'{flow_id}' with revision '{}'",
                    revision.unwrap_or(0)
                )
            })
    }
}

/// Every execution that ended, as it ended, and each line it logged.
#[derive(Default)]
pub struct Ended(pub Mutex<Vec<Value>>, pub Mutex<Vec<(ExecutionId, String)>>);

impl Observer for Ended {
    fn on_change(&self, change: &Change<'_>) {
        if change.ended.is_some() {
            let execution = change.execution;
            // Its lines first: whoever sees it ended (`wait_for`) reads
            // them whole.
            let mut logs = self.1.lock().unwrap();
            for line in execution.logs().entries() {
                logs.push((execution.id(), line.message.clone()));
            }
            drop(logs);
            self.0
                .lock()
                .unwrap()
                .push(execution.to_json(chrono::Utc::now()));
        }
    }
}

impl Ended {
    /// Waits until `n` executions have ended; all of them, sorted by flow.
    pub fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ended = self.0.lock().unwrap().clone();
            if ended.len() >= n {
                let mut ended = ended;
                ended.sort_by_key(|e| e["flowId"].as_str().unwrap_or_default().to_owned());
                return ended;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} ended: {ended:#?}",
                ended.len()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The one execution of flow `flow_id` that ended.
    pub fn of(&self, flow_id: &str) -> Value {
        let ended = self.0.lock().unwrap();
        let found: Vec<_> = ended.iter().filter(|e| e["flowId"] == flow_id).collect();
        assert_eq!(found.len(), 1, "executions of {flow_id}: {found:#?}");
        found[0].clone()
    }
}

pub fn config(flows: &Arc<MapFlows>) -> EngineConfig {
    EngineConfig {
        threads: NonZeroUsize::new(4).unwrap(),
        flows: Some(Arc::clone(flows) as Arc<dyn Flows>),
        ..EngineConfig::default()
    }
}

pub fn engine(flows: &Arc<MapFlows>) -> (Engine, Arc<Ended>) {
    let ended = Arc::new(Ended::default());
    (Engine::start(config(flows), ended.clone()).unwrap(), ended)
}

pub fn submit(engine: &Engine, rev: &Arc<FlowRevision>, inputs: Value) -> ExecutionId {
    let new = NewExecution::new(
        Arc::clone(rev),
        inputs.as_object().cloned().unwrap_or_default(),
    );
    let id = new.id;
    engine.submit(new, Ack::Receipt).unwrap().wait().unwrap();
    id
}

pub fn task_run<'v>(execution: &'v Value, task: &str) -> &'v Value {
    execution["taskRunList"]
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["taskId"] == task))
        .unwrap_or_else(|| panic!("no task run of {task} in {execution:#}"))
}

pub fn label<'v>(execution: &'v Value, key: &str) -> Option<&'v str> {
    execution["labels"]
        .as_array()?
        .iter()
        .find(|l| l["key"] == key)
        .and_then(|l| l["value"].as_str())
}

/// A WAL small enough for tests: 4 MiB segments, 256 KiB records.
pub fn wal_config() -> peregrine_wal::Config {
    peregrine_wal::Config {
        segment_bytes: std::num::NonZeroU64::new(4 << 20).unwrap(),
        max_record_bytes: std::num::NonZeroU32::new(256 << 10).unwrap(),
        ..peregrine_wal::Config::default()
    }
}

/// A durable engine in `dir` with `flows`, every execution it finds there
/// recovered (else the test fails).
pub fn durable(dir: &std::path::Path, flows: &Arc<MapFlows>) -> (Engine, Arc<Ended>) {
    let ended = Arc::new(Ended::default());
    let resolve = |ns: &str, id: &str, _: u32| flows.get(ns, id);
    let (engine, recovery) =
        Engine::start_durable(config(flows), ended.clone(), dir, wal_config(), &resolve).unwrap();
    assert!(recovery.failed.is_empty(), "{:?}", recovery.failed);
    (engine, ended)
}
