//! One shard's inbox hop: a message pushed on one thread and popped on
//! another, through `peregrine_engine::internals::inbox` (a bounded ring and a
//! parker).
//!
//! - `inbox_hop/stream`: a producer pushes as fast as it can while the shard
//!   thread pops; the cost per message when the shard is awake.
//! - `inbox_hop/ping_pong`: one message at a time, there and back through
//!   two inboxes; the receiving thread parks between messages, so each hop
//!   includes waking it. Half a round trip is one hop at low load, which is
//!   what the latency of a lone execution pays twice (in and out).

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use peregrine_engine::internals::{PushError, Receiver, inbox};

/// The engine's default inbox capacity.
const CAPACITY: usize = 4096;

/// Pops one message, parking while the inbox is empty; `None` once closed
/// and drained.
fn pop_parked<T>(rx: &Receiver<T>) -> Option<T> {
    loop {
        if let Some(msg) = rx.pop() {
            return Some(msg);
        }
        if rx.is_closed() {
            return None;
        }
        rx.park(None);
    }
}

fn bench_stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("inbox_hop");
    group.throughput(Throughput::Elements(1));
    group.bench_function("stream", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = inbox::<u64>(CAPACITY);
            let shard = thread::spawn(move || {
                let mut sum = 0u64;
                while let Some(v) = pop_parked(&rx) {
                    sum = sum.wrapping_add(v);
                }
                sum
            });
            let start = Instant::now();
            for i in 0..iters {
                let mut msg = i;
                // A full ring is backpressure: hand back, retry.
                while let Err(PushError::Full(back)) = tx.push(msg) {
                    msg = back;
                    thread::yield_now();
                }
            }
            tx.close();
            let sum = shard.join().expect("the shard thread ends");
            let elapsed = start.elapsed();
            assert_eq!(sum, (0..iters).fold(0u64, u64::wrapping_add));
            elapsed
        });
    });
    group.finish();
}

fn bench_ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("inbox_hop");
    group.bench_function("ping_pong", |b| {
        let (to_shard, shard_rx) = inbox::<u64>(CAPACITY);
        let (to_caller, caller_rx) = inbox::<u64>(CAPACITY);
        let echo = thread::spawn(move || {
            while let Some(v) = pop_parked(&shard_rx) {
                if to_caller.push(v + 1).is_err() {
                    return;
                }
            }
        });
        b.iter(|| {
            to_shard
                .push(black_box(41))
                .expect("the echo thread keeps up: one message in flight");
            let back = pop_parked(&caller_rx).expect("the echo answers");
            assert_eq!(back, 42);
        });
        to_shard.close();
        echo.join().expect("the echo thread ends");
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench_stream, bench_ping_pong
}
criterion_main!(benches);
