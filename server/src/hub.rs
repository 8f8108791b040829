//! One fan-out per watched execution.
//!
//! A topic is created when the first follower (SSE) or waiter (`wait=true`)
//! arrives, fed by the engine's observer, and removed when the execution ends
//! or its last subscriber leaves. However many followers an execution has,
//! each change is serialized once and sent once: the shard thread never does
//! per-connection work. Updates go through a bounded broadcast ring: a
//! subscriber that falls `sse-buffer` updates behind sees `Lagged` and is
//! dropped, so a slow client can never stall a shard or hold unbounded memory.
//!
//! Beside the topics, one stream of every change in brief ([`Brief`]: no
//! task runs), for the lists that watch many executions at once: taken only
//! while somebody watches it, through a ring of its own that a watcher
//! falling behind skips ahead in (it is told how much it missed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use chrono::Utc;
use peregrine_engine::{Brief, Change, ExecutionId, Receipt, Record};
use tokio::sync::broadcast;

const STRIPES: usize = 64;

/// Changes in brief a watcher may fall behind before it skips ahead.
const BRIEF_BUFFER: usize = 16_384;

/// One change of an execution: its record, and its JSON rendered once, off
/// the shard's thread, by the first subscriber that needs it.
#[derive(Debug, Clone)]
pub struct Update(Arc<Changed>);

#[derive(Debug)]
struct Changed {
    record: Record,
    terminal: bool,
    receipt: Receipt,
    json: OnceLock<Bytes>,
}

impl Update {
    fn new(record: Record, terminal: bool, receipt: Receipt) -> Self {
        Self(Arc::new(Changed {
            record,
            terminal,
            receipt,
            json: OnceLock::new(),
        }))
    }

    /// Kestra's execution JSON.
    pub fn json(&self) -> Bytes {
        self.0
            .json
            .get_or_init(|| Bytes::from(self.0.record.to_json_bytes(Utc::now())))
            .clone()
    }

    pub fn is_terminal(&self) -> bool {
        self.0.terminal
    }

    /// The execution as this change left it.
    pub fn record(&self) -> &peregrine_engine::Record {
        &self.0.record
    }

    /// Where the change stands on its way to the journal: wait on it before
    /// showing the change to anyone.
    pub fn receipt(&self) -> &Receipt {
        &self.0.receipt
    }
}

#[derive(Debug)]
struct Topic {
    tx: broadcast::Sender<Update>,
    /// Subscribers that want every change; waiters only want the last.
    followers: usize,
    /// Tells this topic from a later one of the same execution.
    generation: u64,
}

/// The server is shutting down: no new subscriptions.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the server is shutting down")]
pub struct Closed;

/// Every watched execution's fan-out.
#[derive(Debug)]
pub struct Hub {
    stripes: Box<[Mutex<HashMap<ExecutionId, Topic>>]>,
    buffer: usize,
    closed: AtomicBool,
    generations: AtomicU64,
    /// Every change in brief, while `watchers` is not zero.
    briefs: broadcast::Sender<BriefChange>,
    watchers: AtomicUsize,
}

/// One change of some execution, in brief.
#[derive(Debug, Clone)]
pub struct BriefChange(Arc<(Brief, Receipt)>);

impl BriefChange {
    pub fn brief(&self) -> &Brief {
        &self.0.0
    }

    /// Wait on it before showing the change to anyone.
    pub fn receipt(&self) -> &Receipt {
        &self.0.1
    }
}

impl Hub {
    /// `buffer`: updates a subscriber may fall behind before it is dropped.
    pub fn new(buffer: usize) -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            buffer: buffer.max(2),
            closed: AtomicBool::new(false),
            generations: AtomicU64::new(0),
            briefs: broadcast::channel(BRIEF_BUFFER).0,
            watchers: AtomicUsize::new(0),
        }
    }

    /// Watches every execution's changes, in brief; refused once the
    /// server is shutting down.
    pub fn watch(self: &Arc<Self>) -> Result<Watch, Closed> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Closed);
        }
        self.watchers.fetch_add(1, Ordering::AcqRel);
        Ok(Watch {
            hub: Arc::clone(self),
            rx: self.briefs.subscribe(),
        })
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn stripe(&self, id: ExecutionId) -> MutexGuard<'_, HashMap<ExecutionId, Topic>> {
        let raw = id.as_u128();
        let n = ((raw >> 64) as u64 ^ raw as u64) as usize % STRIPES;
        // Each change under the lock is one map operation; a poisoned lock
        // holds a consistent map.
        self.stripes[n]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Subscribes to `id`'s changes: every change for a follower, only the
    /// last one otherwise. Subscribe before the execution can end (for a
    /// waiter, before submitting it), or read its state after subscribing.
    pub fn subscribe(
        self: &Arc<Self>,
        id: ExecutionId,
        follower: bool,
    ) -> Result<Subscription, Closed> {
        let mut stripe = self.stripe(id);
        // Checked under the stripe lock, which `close` also takes: no topic
        // can be created after `close` has emptied the stripes.
        if self.closed.load(Ordering::Acquire) {
            return Err(Closed);
        }
        let topic = stripe.entry(id).or_insert_with(|| Topic {
            tx: broadcast::channel(self.buffer).0,
            followers: 0,
            generation: self.generations.fetch_add(1, Ordering::Relaxed),
        });
        topic.followers += usize::from(follower);
        let rx = topic.tx.subscribe();
        Ok(Subscription {
            hub: Arc::clone(self),
            id,
            generation: topic.generation,
            rx: Some(rx),
            follower,
        })
    }

    /// Publishes a change to its subscribers, if there are any. Called on the
    /// shard thread: one map lookup when nobody watches, and at most one
    /// record built (none at the end: the engine's final record is shared).
    pub fn publish(&self, change: &Change<'_>) {
        if self.watchers.load(Ordering::Acquire) > 0 {
            // No receiver left is fine: the last watcher is leaving.
            let _ = self.briefs.send(BriefChange(Arc::new((
                Brief::of(change.execution),
                change.receipt.clone(),
            ))));
        }
        let id = change.execution.id();
        let terminal = change.ended.is_some();
        let mut stripe = self.stripe(id);
        let Some(topic) = stripe.get(&id) else { return };
        if !terminal && topic.followers == 0 {
            return;
        }
        let record = match change.ended {
            Some(record) => record.clone(),
            None => Record::of(change.execution),
        };
        // No receiver left is fine: the last one is leaving and will remove
        // the topic.
        let _ = topic
            .tx
            .send(Update::new(record, terminal, change.receipt.clone()));
        if terminal {
            // Receivers still get what was sent, then `Closed`.
            stripe.remove(&id);
        }
    }

    /// Ends every subscription (shutdown): followers' streams end and
    /// waiters answer with what is known.
    pub fn close(&self) {
        for stripe in self.stripes.iter() {
            let mut stripe = stripe
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.closed.store(true, Ordering::Release);
            stripe.clear();
        }
    }

    /// Executions with at least one subscriber.
    pub fn topics(&self) -> usize {
        self.stripes
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len()
            })
            .sum()
    }
}

/// A subscription to one execution's changes; leaving it removes the topic
/// when it was the last.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    id: ExecutionId,
    generation: u64,
    rx: Option<broadcast::Receiver<Update>>,
    follower: bool,
}

impl Subscription {
    /// The next update. `Err(Lagged)` when this subscriber fell too far
    /// behind; `Err(Closed)` after the last update.
    pub async fn recv(&mut self) -> Result<Update, broadcast::error::RecvError> {
        match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => Err(broadcast::error::RecvError::Closed),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut stripe = self.hub.stripe(self.id);
        // Drop the receiver under the lock so the count below is exact.
        drop(self.rx.take());
        if let Some(topic) = stripe
            .get_mut(&self.id)
            .filter(|t| t.generation == self.generation)
        {
            topic.followers -= usize::from(self.follower);
            if topic.tx.receiver_count() == 0 {
                stripe.remove(&self.id);
            }
        }
    }
}

/// A watch of every change in brief; leaving it stops the briefs when it
/// was the last.
#[derive(Debug)]
pub struct Watch {
    hub: Arc<Hub>,
    rx: broadcast::Receiver<BriefChange>,
}

impl Watch {
    /// The next change. `Err(Lagged(n))` when `n` changes were skipped
    /// because this watcher fell behind; the next call goes on after them.
    pub async fn recv(&mut self) -> Result<BriefChange, broadcast::error::RecvError> {
        self.rx.recv().await
    }

    /// A change already waiting, if any.
    pub fn try_recv(&mut self) -> Result<BriefChange, broadcast::error::TryRecvError> {
        self.rx.try_recv()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.hub.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use peregrine_engine::Execution;
    use peregrine_engine::flow::Flow;
    use peregrine_engine::{FlowRevision, NewExecution, run_to_end};
    use tokio::sync::broadcast::error::RecvError;

    use super::*;

    fn an_execution() -> (Execution, Record) {
        let flow = Flow::parse(
            "id: f\nnamespace: t\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n",
        )
        .expect("parses");
        let revision = Arc::new(FlowRevision::new(Arc::new(flow)));
        let exec = run_to_end(NewExecution::new(revision, serde_json::Map::new()));
        let record = Record::of(&exec);
        (exec, record)
    }

    fn change<'a>(
        exec: &'a Execution,
        ended: Option<&'a Record>,
        receipt: &'a Receipt,
    ) -> Change<'a> {
        Change {
            execution: exec,
            receipt,
            ended,
        }
    }

    #[tokio::test]
    async fn a_follower_that_falls_behind_is_told_so_and_the_rest_keep_up() {
        let hub = Arc::new(Hub::new(4));
        let (exec, record) = an_execution();
        let ready = Receipt::ready();
        let mut slow = hub.subscribe(exec.id(), true).expect("open");
        let mut fast = hub.subscribe(exec.id(), true).expect("open");
        for _ in 0..3 {
            hub.publish(&change(&exec, None, &ready));
            assert!(!fast.recv().await.expect("an update").is_terminal());
        }
        for _ in 0..10 {
            hub.publish(&change(&exec, None, &ready));
            fast.recv().await.expect("an update");
        }
        assert!(matches!(slow.recv().await, Err(RecvError::Lagged(_))));
        hub.publish(&change(&exec, Some(&record), &ready));
        assert!(fast.recv().await.expect("the end").is_terminal());
        assert!(matches!(fast.recv().await, Err(RecvError::Closed)));
        assert_eq!(hub.topics(), 0, "the end removes the topic");
    }

    #[tokio::test]
    async fn briefs_are_taken_only_while_watched_and_a_slow_watcher_skips_ahead() {
        let hub = Arc::new(Hub::new(4));
        let (exec, record) = an_execution();
        let ready = Receipt::ready();
        hub.publish(&change(&exec, None, &ready));
        let mut watch = hub.watch().expect("open");
        assert!(
            matches!(watch.try_recv(), Err(broadcast::error::TryRecvError::Empty)),
            "nothing from before the watch"
        );
        hub.publish(&change(&exec, Some(&record), &ready));
        let brief = watch.recv().await.expect("a brief");
        assert_eq!(brief.brief().id(), exec.id());
        assert_eq!(brief.brief().state(), peregrine_engine::State::Success);

        for _ in 0..BRIEF_BUFFER + 10 {
            hub.publish(&change(&exec, None, &ready));
        }
        assert!(matches!(watch.recv().await, Err(RecvError::Lagged(10))));
        assert!(
            watch.recv().await.is_ok(),
            "it goes on after what it missed"
        );

        drop(watch);
        assert_eq!(hub.watchers.load(Ordering::Acquire), 0);
        hub.close();
        assert!(hub.watch().is_err(), "closed for good");
    }

    #[tokio::test]
    async fn waiters_get_only_the_end_and_leaving_cleans_up() {
        let hub = Arc::new(Hub::new(4));
        let (exec, record) = an_execution();
        let ready = Receipt::ready();
        let mut waiter = hub.subscribe(exec.id(), false).expect("open");
        for _ in 0..100 {
            hub.publish(&change(&exec, None, &ready));
        }
        hub.publish(&change(&exec, Some(&record), &ready));
        let update = waiter.recv().await.expect("the end, not lagged");
        assert!(update.is_terminal());
        let json: serde_json::Value = serde_json::from_slice(&update.json()).expect("JSON");
        assert_eq!(json["id"], exec.id().to_string());
        assert_eq!(json["state"]["current"], "SUCCESS");

        let follower = hub.subscribe(exec.id(), true).expect("open");
        assert_eq!(hub.topics(), 1);
        drop(follower);
        assert_eq!(
            hub.topics(),
            0,
            "the last subscriber leaving removes the topic"
        );

        hub.close();
        assert!(hub.subscribe(exec.id(), true).is_err(), "closed for good");
    }
}
