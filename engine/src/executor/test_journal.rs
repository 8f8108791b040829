//! A journal for tests: it keeps records in memory and can be told to
//! fail, as a full or broken disk would.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::execution::{ExecutionId, Record};
use crate::journal::{Entry, Journal, Receipt};

type Kept = Vec<(ExecutionId, Option<Entry>)>;

/// A journal that keeps what it is given, in order, and fails every append
/// past `capacity`, as a disk that fills or breaks would: what it kept is
/// all that survives a crash.
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultyJournal {
    /// Every record kept: a cause, or `None` for an execution's end.
    pub kept: Arc<Mutex<Kept>>,
    capacity: Option<usize>,
    /// While set, every append is refused, as a full disk would.
    pub full: Arc<AtomicBool>,
}

impl FaultyJournal {
    pub fn failing_after(capacity: usize) -> Self {
        Self {
            capacity: Some(capacity),
            ..Self::default()
        }
    }

    fn keep(&self, id: ExecutionId, entry: Option<Entry>) -> Receipt {
        let mut kept = self.kept.lock().expect("no panic holds it");
        if self.capacity.is_some_and(|c| kept.len() >= c) || self.full.load(Ordering::SeqCst) {
            return Receipt::failed("injected: the disk is full");
        }
        kept.push((id, entry));
        Receipt::ready()
    }

    /// The causes journaled for `id` (its end is not a cause).
    pub fn causes(&self, id: ExecutionId) -> Vec<Entry> {
        self.kept
            .lock()
            .expect("no panic holds it")
            .iter()
            .filter(|(i, _)| *i == id)
            .filter_map(|(_, e)| e.clone())
            .collect()
    }

    /// How many final records were journaled for `id`.
    pub fn ends(&self, id: ExecutionId) -> usize {
        self.kept
            .lock()
            .expect("no panic holds it")
            .iter()
            .filter(|(i, e)| *i == id && e.is_none())
            .count()
    }

    pub fn len(&self) -> usize {
        self.kept.lock().expect("no panic holds it").len()
    }
}

impl Journal for FaultyJournal {
    fn append(&mut self, id: ExecutionId, entry: &Entry) -> Receipt {
        self.keep(id, Some(entry.clone()))
    }

    fn append_ended(&mut self, id: ExecutionId, _: &Record) -> Receipt {
        self.keep(id, None)
    }

    fn append_deleted(&mut self, id: ExecutionId) -> Receipt {
        self.keep(id, None)
    }
}
