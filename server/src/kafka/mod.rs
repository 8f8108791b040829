//! Kafka realtime triggers (`io.kestra.plugin.kafka.RealtimeTrigger`): one
//! consumer per trigger of every enabled flow, started with the server and
//! restarted when its flow changes.
//!
//! Delivery: a message's execution id derives from (flow, trigger, group,
//! topic, partition, offset), so a redelivered message names an execution
//! that exists already, and is skipped; its offset is committed only once
//! the execution's creation is durable. A crash therefore loses no message
//! and starts none twice on the same node. Across nodes of one consumer
//! group, a message can start twice only if its node died after the
//! creation was durable and before the offset commit reached the broker
//! (README.md, "Scale-out with Kafka").

mod consumer;
mod incarnation;
mod ledger;
mod message;
mod watchdog;

use std::collections::HashMap;
use std::sync::Mutex;

pub use consumer::config_problems;
use consumer::{Running, Spec};

use crate::state::AppState;

/// Each flow's (namespace, id) consumers.
type ByFlow = HashMap<(String, String), Vec<Running>>;

/// The consumers of every flow's Kafka triggers, by flow.
#[derive(Debug, Default)]
pub(crate) struct Triggers {
    /// `None` until the server starts serving (tests of the router alone
    /// consume nothing), and again once it stops.
    running: Mutex<Option<ByFlow>>,
}

impl Triggers {
    /// Starts the consumers of every flow.
    pub fn start_all(&self, state: &AppState) {
        let mut running = self.lock();
        let map = running.get_or_insert_with(HashMap::new);
        for stored in state.flows().all() {
            let key = (stored.flow().namespace.clone(), stored.flow().id.clone());
            let started = start_flow(state, &key);
            if !started.is_empty() {
                map.insert(key, started);
            }
        }
    }

    /// After a flow was created, updated or deleted: stops its consumers
    /// (they commit what is durable) and starts those of its current
    /// revision. Blocks while the old ones stop.
    pub fn reconcile(&self, state: &AppState, namespace: &str, id: &str) {
        let mut running = self.lock();
        let Some(map) = running.as_mut() else {
            return;
        };
        let key = (namespace.to_owned(), id.to_owned());
        for consumer in map.remove(&key).unwrap_or_default() {
            consumer.stop();
        }
        let started = start_flow(state, &key);
        if !started.is_empty() {
            map.insert(key, started);
        }
    }

    /// Stops every consumer: each commits what is durable and leaves its
    /// group. Blocks.
    pub fn stop_all(&self) {
        let taken = self.lock().take();
        let consumers: Vec<Running> = taken
            .into_iter()
            .flat_map(|m| m.into_values())
            .flatten()
            .collect();
        for consumer in &consumers {
            consumer.signal();
        }
        for consumer in consumers {
            consumer.stop();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ByFlow>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn start_flow(state: &AppState, (namespace, id): &(String, String)) -> Vec<Running> {
    let Some(stored) = state.flows().get(namespace, id) else {
        return Vec::new();
    };
    let mut started = Vec::new();
    for spec in Spec::of_flow(&stored, &state.config().kafka) {
        match Running::start(spec, std::sync::Arc::clone(&stored), state.clone()) {
            Ok(consumer) => started.push(consumer),
            Err(e) => {
                tracing::error!(flow = %format!("{namespace}.{id}"), "cannot start a Kafka consumer: {e}")
            }
        }
    }
    started
}
