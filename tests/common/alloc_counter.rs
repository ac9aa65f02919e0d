//! A counting global allocator for the zero-allocation tests: it counts `alloc` and `realloc`
//! calls made by threads that switched counting on (the router's thread), and nothing else.
//! Include it with `#[path = "common/alloc_counter.rs"] mod alloc_counter;` — each test binary
//! gets its own `#[global_allocator]`. [`allocations_in`] counts what one closure allocates on
//! the calling thread (the scanner and index tests).

#![allow(dead_code)] // each test binary uses some of the helpers

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

struct Counting;

/// Allocations counted so far.
pub static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// The first counted allocation: the old size (0 for `alloc`) and the requested size.
static FIRST: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

thread_local! {
    static COUNT_HERE: Cell<bool> = const { Cell::new(false) };
    /// Allocations counted on this thread.
    static HERE: Cell<u64> = const { Cell::new(0) };
}

/// Count this thread's allocations from now on (`true`) or stop (`false`).
pub fn count_here(on: bool) {
    COUNT_HERE.with(|c| c.set(on));
}

/// Allocations counted so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// The first counted allocation as `(old size, new size)` (`old` is 0 for a fresh
/// allocation, non-zero for a buffer that grew): what a failing test reports.
pub fn first() -> (usize, usize) {
    (FIRST[0].load(Ordering::Relaxed), FIRST[1].load(Ordering::Relaxed))
}

/// Allocations `f` makes on this thread (tests running on other threads do not add to it).
pub fn allocations_in(f: impl FnOnce()) -> u64 {
    let was = COUNT_HERE.with(Cell::get);
    let before = HERE.with(Cell::get);
    count_here(true);
    f();
    count_here(was);
    HERE.with(Cell::get) - before
}

/// Start counting from zero.
pub fn reset() {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    FIRST[0].store(0, Ordering::Relaxed);
    FIRST[1].store(0, Ordering::Relaxed);
}

/// Count one allocation (no allocation here: atomics and a thread-local cell only).
fn count(old: usize, new: usize) {
    let _ = HERE.try_with(|h| h.set(h.get() + 1));
    if ALLOCATIONS.fetch_add(1, Ordering::Relaxed) == 0 {
        FIRST[0].store(old, Ordering::Relaxed);
        FIRST[1].store(new, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNT_HERE.with(Cell::get) {
            count(0, layout.size());
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNT_HERE.with(Cell::get) {
            count(layout.size(), new_size);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;
