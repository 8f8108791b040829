//! What the calling thread holds on the heap, so that an evaluation can be
//! stopped when it holds too much (`Budget::memory_bytes`). A binary opts
//! in by wrapping its global allocator in [`Counting`]; without it,
//! [`held_here`] stays 0 and nothing is enforced.
//!
//! The count is per thread and net: bytes allocated on this thread, less
//! bytes freed on it. An evaluation reads it before it starts and at each
//! of its steps; what it built and still holds is the difference. Memory
//! freed on another thread (values handed over) makes the count drift, but
//! not within one evaluation, which runs on one thread.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

thread_local! {
    // Const-initialised and without a destructor: reading it never
    // allocates and never fails, not even while the thread exits.
    static HELD: Cell<i64> = const { Cell::new(0) };
}

fn add(bytes: i64) {
    let _ = HELD.try_with(|held| held.set(held.get().wrapping_add(bytes)));
}

fn size(layout: Layout) -> i64 {
    i64::try_from(layout.size()).unwrap_or(i64::MAX)
}

/// Net bytes the calling thread allocated (and did not free) since it
/// started, under a [`Counting`] allocator.
pub fn held_here() -> i64 {
    HELD.try_with(Cell::get).unwrap_or(0)
}

/// A global allocator that counts, per thread, what it hands out and takes
/// back: `#[global_allocator] static A: Counting<System> = Counting(System);`
#[derive(Debug, Default)]
pub struct Counting<A>(pub A);

// SAFETY: every method forwards to the wrapped allocator with the caller's
// arguments unchanged, so it keeps that allocator's guarantees; the count
// is a thread-local integer, which neither allocates nor unwinds.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            add(size(layout));
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            add(size(layout));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { self.0.dealloc(ptr, layout) };
        add(-size(layout));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(i64::try_from(new_size).unwrap_or(i64::MAX) - size(layout));
        }
        p
    }
}
