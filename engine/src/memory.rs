//! What the calling thread holds on the heap, so that an evaluation can be
//! stopped when it holds too much (`Budget::memory_bytes`), and a watch that
//! stops an evaluation after so many allocations (`Budget::steps`). A binary
//! opts in by wrapping its global allocator in [`Counting`]; without it,
//! [`held_here`] stays 0, a [`watch`] sees no allocation and never trips,
//! and nothing is enforced.
//!
//! The count is per thread and net: bytes allocated on this thread, less
//! bytes freed on it. An evaluation reads it before it starts and at each
//! of its steps; what it built and still holds is the difference. Memory
//! freed on another thread (values handed over) makes the count drift, but
//! not within one evaluation, which runs on one thread.
//!
//! A [`watch`] is for an evaluator that cannot be metered from outside:
//! jsonata-core has no step hook, only a cancel flag it polls at every node
//! and every loop pass. While a watch runs on a thread, each allocation on
//! that thread spends one unit of its fuel, and the allocator itself trips
//! the watch once the fuel is gone or the count has grown past the watch's
//! limit: it records why and calls the watch's [`Tripwire`], which raises
//! the evaluator's flag. An evaluation does its work by allocating (values,
//! scopes, call frames), and the same evaluation allocates the same (but
//! for caches the code it runs fills on first use: see `crate::jsonata`),
//! so allocations are steps that a replay counts again, as it would not
//! count a clock.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// The calling thread's count and its watch, if one runs.
struct Here {
    held: Cell<i64>,
    /// Allocations spend fuel: a watch runs and has not tripped. The only
    /// field the allocator reads when no watch runs.
    watching: Cell<bool>,
    /// Allocations the watch may still make.
    fuel: Cell<u64>,
    /// The count past which the watch trips.
    ceiling: Cell<i64>,
    /// What the watch trips: `target` is a `&T` and `trip` is
    /// `trip_as::<T>`, set together by [`watch`], which clears both before
    /// it returns. `Some` while a watch runs, tripped or not.
    target: Cell<*const ()>,
    trip: Cell<Option<unsafe fn(*const ())>>,
    tripped: Cell<Option<Tripped>>,
}

thread_local! {
    // Const-initialised and without a destructor: reading it never
    // allocates and never fails, not even while the thread exits.
    static HERE: Here = const {
        Here {
            held: Cell::new(0),
            watching: Cell::new(false),
            fuel: Cell::new(0),
            ceiling: Cell::new(i64::MAX),
            target: Cell::new(std::ptr::null()),
            trip: Cell::new(None),
            tripped: Cell::new(None),
        }
    };
}

/// An allocation (or a reallocation) of `bytes` more than before: counted,
/// and, while a watch runs, paid for.
#[inline]
fn grew(bytes: i64) {
    let _ = HERE.try_with(|here| {
        let held = here.held.get().wrapping_add(bytes);
        here.held.set(held);
        if here.watching.get() {
            spend(here, held);
        }
    });
}

fn freed(bytes: i64) {
    let _ = HERE.try_with(|here| here.held.set(here.held.get().wrapping_sub(bytes)));
}

/// One allocation under a watch, the count now at `held`.
#[inline]
fn spend(here: &Here, held: i64) {
    match here.fuel.get().checked_sub(1) {
        Some(left) => {
            here.fuel.set(left);
            if held > here.ceiling.get() {
                trip(here, Tripped::OutOfMemory);
            }
        }
        None => trip(here, Tripped::OutOfFuel),
    }
}

/// Runs inside the allocator: it must neither allocate nor unwind.
#[cold]
fn trip(here: &Here, why: Tripped) {
    // Once: what the evaluation allocates as it stops is not counted.
    here.watching.set(false);
    here.tripped.set(Some(why));
    if let Some(trip) = here.trip.get() {
        // SAFETY: `watch` set `trip` to `trip_as::<T>` and `target` to a
        // `&T` borrowed for the whole of its call, and clears both before it
        // returns or unwinds; this runs on the watch's own thread, within
        // that call. `Tripwire`'s contract: `trip` neither allocates nor
        // unwinds.
        unsafe { trip(here.target.get()) };
    }
}

/// Calls `T::trip` on `target`.
///
/// # Safety
///
/// `target` points to a live `T`.
unsafe fn trip_as<T: Tripwire>(target: *const ()) {
    // SAFETY: the caller's contract.
    unsafe { (*target.cast::<T>()).trip() }
}

fn size(layout: Layout) -> i64 {
    i64::try_from(layout.size()).unwrap_or(i64::MAX)
}

/// Net bytes the calling thread allocated (and did not free) since it
/// started, under a [`Counting`] allocator.
pub fn held_here() -> i64 {
    HERE.try_with(|here| here.held.get()).unwrap_or(0)
}

/// What a [`watch`] raises when it trips, from inside the global allocator.
///
/// # Safety
///
/// `trip` is called from inside an allocation: it must not allocate, must
/// not unwind, and must not start a watch. A relaxed store to a flag is the
/// intended use.
pub unsafe trait Tripwire {
    fn trip(&self);
}

// SAFETY: one atomic store: it neither allocates nor unwinds.
unsafe impl Tripwire for AtomicBool {
    fn trip(&self) {
        self.store(true, Ordering::Relaxed);
    }
}

/// Why a watch tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tripped {
    /// It allocated once more than its fuel.
    OutOfFuel,
    /// The thread's count grew more than the watch's memory limit above
    /// where it was when the watch started.
    OutOfMemory,
}

/// What a watch saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    /// Allocations made before it ended or tripped: all of its fuel when
    /// it ran out.
    pub spent: u64,
    pub tripped: Option<Tripped>,
}

/// Runs `f` under a watch on the calling thread: each allocation spends one
/// unit of `fuel`, and the allocation past the last unit, or the one that
/// takes the thread's count more than `memory_bytes` above where it was,
/// trips `target` (once). Frees spend nothing. `f` runs to its end whatever
/// happens: stopping is up to what `target` tells.
///
/// `None`, with `f` not run, when a watch already runs on this thread:
/// watches do not nest.
///
/// A closure rather than a guard returned to the caller: the thread keeps a
/// pointer to `target` while the watch runs, and a guard could be leaked
/// (`mem::forget`), leaving that pointer behind `target`'s lifetime. The
/// guard here is private, and ends the watch when `f` returns or unwinds.
pub fn watch<T: Tripwire, R>(
    fuel: u64,
    memory_bytes: usize,
    target: &T,
    f: impl FnOnce() -> R,
) -> Option<(R, Watched)> {
    let started = HERE.try_with(|here| {
        if here.trip.get().is_some() {
            return false;
        }
        here.target.set(std::ptr::from_ref(target).cast());
        here.trip.set(Some(trip_as::<T>));
        here.fuel.set(fuel);
        let limit = i64::try_from(memory_bytes).unwrap_or(i64::MAX);
        here.ceiling.set(here.held.get().saturating_add(limit));
        here.tripped.set(None);
        here.watching.set(true);
        true
    });
    if !matches!(started, Ok(true)) {
        return None;
    }
    let running = Running { fuel };
    let out = f();
    Some((out, running.seen()))
}

/// Ends the watch of this thread when dropped.
struct Running {
    fuel: u64,
}

impl Running {
    fn seen(&self) -> Watched {
        HERE.try_with(|here| Watched {
            spent: self.fuel.saturating_sub(here.fuel.get()),
            tripped: here.tripped.get(),
        })
        .unwrap_or(Watched {
            spent: 0,
            tripped: None,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = HERE.try_with(|here| {
            here.watching.set(false);
            here.trip.set(None);
            here.target.set(std::ptr::null());
        });
    }
}

/// A global allocator that counts, per thread, what it hands out and takes
/// back: `#[global_allocator] static A: Counting<System> = Counting(System);`
/// It also spends and checks the thread's [`watch`], if one runs.
#[derive(Debug, Default)]
pub struct Counting<A>(pub A);

// SAFETY: every method forwards to the wrapped allocator with the caller's
// arguments unchanged, so it keeps that allocator's guarantees; the count
// is a thread-local integer, which neither allocates nor unwinds, and so is
// a watch's trip (see `Tripwire`).
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            grew(size(layout));
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(size(layout));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { self.0.dealloc(ptr, layout) };
        freed(size(layout));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            grew(i64::try_from(new_size).unwrap_or(i64::MAX) - size(layout));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    //! These run under the crate's test allocator, a `Counting<System>`.

    use super::*;

    /// `n` allocations of a few bytes each, each freed at once.
    fn allocate(n: usize) {
        for i in 0..n {
            std::hint::black_box(Box::new(i));
        }
    }

    #[test]
    fn allocations_spend_fuel_and_the_one_past_the_last_trips() {
        let flag = AtomicBool::new(false);
        let (_, seen) = watch(1_000, usize::MAX, &flag, || allocate(100)).expect("watched");
        assert_eq!(seen.tripped, None);
        assert!(seen.spent >= 100, "spent {}", seen.spent);
        assert!(!flag.load(Ordering::Relaxed));

        let (_, seen) = watch(50, usize::MAX, &flag, || allocate(100)).expect("watched");
        assert_eq!(
            seen,
            Watched {
                spent: 50,
                tripped: Some(Tripped::OutOfFuel)
            }
        );
        assert!(flag.load(Ordering::Relaxed));
    }

    #[test]
    fn holding_more_than_the_limit_trips() {
        let flag = AtomicBool::new(false);
        let (kept, seen) = watch(1_000, 64 << 10, &flag, || vec![0u8; 1 << 20]).expect("watched");
        assert_eq!(seen.tripped, Some(Tripped::OutOfMemory));
        assert!(flag.load(Ordering::Relaxed));
        drop(kept);
        // What was held before the watch started does not count, and what
        // is freed as it goes does not either.
        let before = vec![0u8; 1 << 20];
        let flag = AtomicBool::new(false);
        let (_, seen) = watch(1_000_000, 64 << 10, &flag, || {
            for _ in 0..100 {
                std::hint::black_box(vec![0u8; 32 << 10]);
            }
        })
        .expect("watched");
        assert_eq!(seen.tripped, None);
        assert!(!flag.load(Ordering::Relaxed));
        drop(before);
    }

    #[test]
    fn watches_do_not_nest_and_end_even_on_unwind() {
        let outer = AtomicBool::new(false);
        let inner = AtomicBool::new(false);
        let (nested, _) = watch(1_000, usize::MAX, &outer, || {
            watch(1_000, usize::MAX, &inner, || ())
        })
        .expect("watched");
        assert!(nested.is_none(), "a second watch on the thread is refused");

        let unwound = std::panic::catch_unwind(|| {
            watch(1_000, usize::MAX, &outer, || {
                std::panic::resume_unwind(Box::new(()))
            })
        });
        assert!(unwound.is_err());
        // The watch ended: nothing spends, a new one starts.
        allocate(10_000);
        assert!(watch(1_000, usize::MAX, &outer, || ()).is_some());
        assert!(!outer.load(Ordering::Relaxed));
    }

    #[test]
    fn a_watch_sees_only_its_own_thread() {
        let flag = AtomicBool::new(false);
        let (_, seen) = watch(1_000, usize::MAX, &flag, || {
            std::thread::scope(|s| {
                s.spawn(|| allocate(10_000));
            });
        })
        .expect("watched");
        // Spawning allocates a little here; the other thread's work does not.
        assert_eq!(seen.tripped, None);
        assert!(seen.spent < 1_000, "{seen:?}");
    }
}
