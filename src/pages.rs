//! The binary's global allocator: the C library's `malloc`, except that blocks of [`LARGE`]
//! bytes or more are anonymous mappings of their own, straight from the kernel.
//!
//! Why: the fixed-capacity tables are allocated whole at start-up and zeroed (the subscription
//! index's key table alone is 16384 × 1088 B = 17 MiB, `limits.rs`). Fresh anonymous pages read
//! as zero and become resident only when written, so a table costs memory only for the part in
//! use — but only if the allocator does not write the zeros itself. musl's `calloc` (rustc's
//! self-contained musl, Debian's musl-gcc) and glibc's know that fresh mappings are zero; the
//! libc zig links into the ARM builds and the Debian packages (`cross/cross.mk`, cargo-zigbuild)
//! writes them, which made those builds idle at 22 MB resident instead of 2.3 MB. Mapping large
//! blocks here makes the lazy table the same on every libc, and gives a block's pages back to the
//! kernel the moment it is freed (a receive buffer grown for one 16 MiB message, an idle
//! connection's buffers).
//!
//! Contract: the same as [`std::alloc::System`] for every layout; large blocks are page-aligned
//! (so any alignment up to 4096 is honoured; a larger one goes to `System`), grow and shrink with
//! `mremap`, and cross the threshold by copy. Nothing on the message path allocates
//! (`tests/no_alloc*.rs`), so this is start-up, buffer growth and idle release only.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

use nix::libc;

/// Blocks from this size up are mappings of their own (glibc's default mmap threshold is 128 KiB;
/// above a quarter MiB the per-block system call is negligible next to the block's own cost).
pub const LARGE: usize = 256 * 1024;

/// The alignment every mapping has (the smallest page size of the targets).
const PAGE: usize = 4096;

/// See the module doc.
#[derive(Debug, Default, Clone, Copy)]
pub struct PageAlloc;

fn is_large(size: usize, align: usize) -> bool {
    size >= LARGE && align <= PAGE
}

/// A fresh anonymous private mapping of `size` bytes (zero-filled by the kernel), or null.
fn map(size: usize) -> *mut u8 {
    // SAFETY: a new anonymous mapping at an address the kernel chooses: no existing memory is
    // touched; failure is MAP_FAILED, turned into null (the allocator's out-of-memory answer).
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED { ptr::null_mut() } else { p.cast() }
}

// SAFETY: every method keeps GlobalAlloc's contract. A layout is large (mapped) exactly when
// `is_large(size, align)`; `dealloc` and `realloc` receive the layout the block was allocated or
// last reallocated with, so they take the same branch as its allocation did.
unsafe impl GlobalAlloc for PageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size(), layout.align()) {
            map(layout.size())
        } else {
            // SAFETY: forwarded with the caller's (non-zero-size) layout.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size(), layout.align()) {
            // A fresh anonymous mapping is already zero: nothing is written, nothing resident.
            map(layout.size())
        } else {
            // SAFETY: forwarded with the caller's layout.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if is_large(layout.size(), layout.align()) {
            // SAFETY: `block` is a mapping of exactly `layout.size()` bytes made by `map` or
            // `mremap` here (see the impl's SAFETY note), unmapped once.
            unsafe { libc::munmap(block.cast(), layout.size()) };
        } else {
            // SAFETY: `block` came from System with this layout.
            unsafe { System.dealloc(block, layout) }
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (old_large, new_large) = (is_large(layout.size(), layout.align()), is_large(new_size, layout.align()));
        match (old_large, new_large) {
            // SAFETY: a System block with its layout; new_size is valid per the caller.
            (false, false) => unsafe { System.realloc(block, layout, new_size) },
            (true, true) => {
                // SAFETY: `block` is our mapping of `layout.size()` bytes; MREMAP_MAYMOVE keeps
                // its content, and on failure leaves it mapped (the caller keeps it).
                let p = unsafe { libc::mremap(block.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE) };
                if p == libc::MAP_FAILED { ptr::null_mut() } else { p.cast() }
            }
            _ => {
                // SAFETY: the alignment is the block's, already valid; new_size is non-zero and
                // does not overflow when rounded (the caller's guarantee).
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                // SAFETY: as `alloc`.
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks are live, distinct, and at least the copied length.
                    unsafe {
                        ptr::copy_nonoverlapping(block, new, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 8).unwrap()
    }

    /// Resident kilobytes of this process.
    fn rss_kb() -> usize {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn a_large_zeroed_block_is_zero_and_not_resident_until_written() {
        let a = PageAlloc;
        let size = 64 << 20;
        let before = rss_kb();
        // SAFETY (test): non-zero layout; freed below with the same layout.
        let p = unsafe { a.alloc_zeroed(layout(size)) };
        assert!(!p.is_null());
        assert_eq!(p as usize % PAGE, 0);
        // SAFETY (test): the block is `size` bytes.
        let s = unsafe { std::slice::from_raw_parts_mut(p, size) };
        assert!(s.iter().step_by(4096).all(|&b| b == 0));
        // Reading the zero pages maps the shared zero page: far below the block's 64 MiB.
        assert!(rss_kb() < before + 8 * 1024, "{} kB resident after a 64 MiB zeroed block", rss_kb() - before);
        s[size - 1] = 7;
        // SAFETY (test): allocated above with this layout.
        unsafe { a.dealloc(p, layout(size)) };
    }

    #[test]
    fn realloc_keeps_the_content_across_the_threshold_both_ways() {
        let a = PageAlloc;
        for (from, to) in [(1000, LARGE + 5000), (LARGE + 5000, 3 * LARGE), (3 * LARGE, LARGE + 1), (LARGE + 1, 100)] {
            // SAFETY (test): non-zero layouts, each block freed once.
            unsafe {
                let p = a.alloc(layout(from));
                assert!(!p.is_null());
                for i in 0..from {
                    *p.add(i) = (i % 251) as u8;
                }
                let q = a.realloc(p, layout(from), to);
                assert!(!q.is_null());
                for i in 0..from.min(to) {
                    assert_eq!(*q.add(i), (i % 251) as u8, "{from} -> {to} at {i}");
                }
                a.dealloc(q, layout(to));
            }
        }
    }

    #[test]
    fn alignments_above_a_page_go_to_the_c_library() {
        assert!(!is_large(LARGE, 8192));
        assert!(is_large(LARGE, 4096));
        assert!(!is_large(LARGE - 1, 8));
    }
}
