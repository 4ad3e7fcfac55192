//! A counting global allocator that notes every thread on its first
//! allocation, so a thread that comes and goes between two looks at
//! `/proc/self/task` is still seen (ureq's resolver thread allocates the
//! address list it returns; any real thread allocates its name or stack
//! guard bookkeeping).
//!
//! Only for test binaries that install it: `#[path =
//! "common/thread_counter.rs"] mod thread_counter;` (it is not part of
//! `common`, which every test binary includes).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads that have allocated at least once.
static THREADS_SEEN: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// How many threads of this process have allocated so far.
pub fn threads_seen() -> usize {
    THREADS_SEEN.load(Ordering::SeqCst)
}

fn note_thread() {
    let _ = COUNTED.try_with(|c| {
        if !c.get() {
            c.set(true);
            THREADS_SEEN.fetch_add(1, Ordering::Relaxed);
        }
    });
}

struct CountingAlloc;

// SAFETY: every call is forwarded unchanged to the system allocator; the
// bookkeeping touches only a const thread-local `Cell` and an atomic, which
// never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_thread();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_thread();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_thread();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;
