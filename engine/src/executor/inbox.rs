//! A shard's inbox: a bounded lock-free ring, and a parker so that an idle
//! shard sleeps instead of spinning.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::sync::{Parker, Unparker};

/// Why a message was not accepted. The message comes back to the caller:
/// a full inbox is backpressure, never a silent drop.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError<T> {
    #[error("the shard's inbox is full")]
    Full(T),
    #[error("the shard has stopped")]
    Closed(T),
}

struct Shared<T> {
    queue: ArrayQueue<T>,
    closed: AtomicBool,
    /// High-water mark, for metrics.
    peak: AtomicUsize,
    unparker: Unparker,
}

/// The sending side, cloned freely across threads.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("len", &self.shared.queue.len())
            .finish()
    }
}

/// The receiving side, owned by the shard thread.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    parker: Parker,
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("len", &self.shared.queue.len())
            .finish()
    }
}

/// An inbox holding at most `capacity` messages.
pub fn inbox<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let parker = Parker::new();
    let shared = Arc::new(Shared {
        queue: ArrayQueue::new(capacity.max(1)),
        closed: AtomicBool::new(false),
        peak: AtomicUsize::new(0),
        unparker: parker.unparker().clone(),
    });
    (
        Sender {
            shared: Arc::clone(&shared),
        },
        Receiver { shared, parker },
    )
}

impl<T> Sender<T> {
    pub fn push(&self, msg: T) -> Result<(), PushError<T>> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(PushError::Closed(msg));
        }
        self.shared.queue.push(msg).map_err(PushError::Full)?;
        let len = self.shared.queue.len();
        if len > self.shared.peak.load(Ordering::Relaxed) {
            self.shared.peak.fetch_max(len, Ordering::Relaxed);
        }
        // Cheap when the shard is awake: the parker only makes a syscall if
        // the shard is actually parked.
        self.shared.unparker.unpark();
        Ok(())
    }

    /// Pushes `msg`, waiting while the inbox is full (backing off from 50 µs
    /// to 20 ms): nothing is dropped while the inbox is open. Dropped once
    /// it is closed.
    pub fn push_waiting(&self, mut msg: T) {
        let mut pause = std::time::Duration::from_micros(50);
        loop {
            match self.push(msg) {
                Ok(()) | Err(PushError::Closed(_)) => return,
                Err(PushError::Full(back)) => {
                    msg = back;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(20));
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shared.queue.len()
    }

    #[cfg(feature = "internals")]
    pub fn is_empty(&self) -> bool {
        self.shared.queue.is_empty()
    }

    /// Stops accepting messages and wakes the shard so it can notice.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.unparker.unpark();
    }
}

impl<T> Receiver<T> {
    pub fn pop(&self) -> Option<T> {
        self.shared.queue.pop()
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Sleeps until a push, a wake, or `timeout` (forever when `None`).
    pub fn park(&self, timeout: Option<Duration>) {
        if !self.shared.queue.is_empty() || self.is_closed() {
            return;
        }
        match timeout {
            Some(t) => self.parker.park_timeout(t),
            None => self.parker.park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_inbox_hands_the_message_back() {
        let (tx, rx) = inbox::<u32>(2);
        tx.push(1).unwrap();
        tx.push(2).unwrap();
        assert_eq!(tx.push(3), Err(PushError::Full(3)));
        assert_eq!(rx.pop(), Some(1));
        tx.push(3).unwrap();
        assert_eq!(rx.pop(), Some(2));
        assert_eq!(rx.pop(), Some(3));
        assert_eq!(rx.pop(), None);
    }

    #[test]
    fn closed_inbox_refuses_and_returns_the_message() {
        let (tx, rx) = inbox::<&str>(4);
        tx.close();
        assert!(rx.is_closed());
        assert_eq!(tx.push("late"), Err(PushError::Closed("late")));
    }

    #[test]
    fn push_wakes_a_parked_receiver() {
        let (tx, rx) = inbox::<u64>(4);
        let handle = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            loop {
                if let Some(v) = rx.pop() {
                    return (v, start.elapsed());
                }
                rx.park(Some(Duration::from_secs(10)));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        tx.push(42).unwrap();
        let (v, waited) = handle.join().unwrap();
        assert_eq!(v, 42);
        assert!(
            waited < Duration::from_secs(5),
            "woken by the push, not the timeout"
        );
    }
}
