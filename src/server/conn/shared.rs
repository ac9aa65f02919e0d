//! The shared transmit pool: one encoding of a pubsub delivery for all its verbatim recipients.
//!
//! A fan-out to NULL and PLAIN subscribers puts the same bytes on every wire (ZMTP 3.x frames,
//! ZMTP.md §2.3, unencrypted): they are encoded once into a [`Chunk`] of this pool and each
//! recipient's transmit queue ([`super::TxBuf`]) holds a reference-counted [`SharedRef`] to that
//! range, written with `writev` between the queue's own bytes. CURVE recipients seal every
//! message per connection (ZMTP.md §5: the nonce and the key are theirs) and keep their own copy.
//!
//! A chunk is filled front to back, in the order deliveries are made (one event-loop turn of a
//! publisher's messages lands in one or two chunks, and consecutive deliveries to one recipient
//! become one reference); it is started again from the front once no queue refers to it (its
//! `Rc` count is back to one). Starting again only moves its fill mark (`filled`): the bytes
//! already there are written over, and the vector is zero-filled only where it grows past its
//! longest fill so far (measured: a `memset` per fan-out less, 3 instructions per delivery).
//! Capacity is fixed at start-up: `limits::SHARED_CHUNKS` chunks of
//! `limits::SHARED_CHUNK_BYTES`, each taken from the buffer budget when it is first used. Once
//! nothing has been written to the pool for `limits::IDLE_SHRINK_MS` (the idle period of the
//! connections' buffers), every chunk no queue refers to is freed and its bytes given back
//! ([`SharedPool::release_idle`]): the next fan-out takes a chunk again, one allocation per idle
//! period, none in the steady state. The pool is idle as a whole, not chunk by chunk: a slow
//! fan-out cycles through the chunks in turn (8 × 256 KiB at a few hundred KB/s is a cycle of
//! several seconds), and freeing a chunk between two of its turns would allocate in the steady
//! state. Its
//! allocation is `SHARED_CHUNK_BYTES` ≥ `pages::LARGE`, a mapping of its own, so a freed chunk's
//! pages go back to the kernel.
//! When no chunk has room, [`SharedPool::encode`] says so and the caller copies the delivery into
//! the queue as before (`fanout_copied`): nothing is lost and no queue's limit changes, since a
//! reference counts its length against the queue's `tx-queue-bytes` like a copy.

use std::cell::RefCell;
use std::rc::Rc;

use super::Budget;
use crate::limits::{IDLE_SHRINK_MS, SHARED_CHUNK_BYTES, SHARED_CHUNKS};
use crate::time::Instant;

// A chunk is one block of `SHARED_CHUNK_BYTES` (`reserve_exact` on an empty vector): the
// binary's allocator maps it on its own, and unmaps it when an idle chunk is released.
const _: () = assert!(SHARED_CHUNK_BYTES >= crate::pages::LARGE);

/// One chunk of the pool: bytes written front to back, never changed while referred to. Its
/// length is the longest fill it has had, not its fill now ([`SharedPool`]'s `filled`).
pub type Chunk = Rc<RefCell<Vec<u8>>>;

/// A range of a chunk queued to one connection; `at` is where it sits among the queue's own
/// bytes (it goes out after `buf[..at]` and before `buf[at..]`).
#[derive(Debug, Clone)]
pub struct SharedRef {
    pub(super) chunk: Chunk,
    pub(super) at: usize,
    pub(super) start: u32,
    pub(super) end: u32,
}

impl SharedRef {
    /// Bytes of the range still to be written.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// True when all of it was written.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Append a copy of the range to `out` (a recipient that cannot hold another reference);
    /// `false` if the chunk could not be read.
    pub fn copy_into(&self, out: &mut Vec<u8>) -> bool {
        let Ok(bytes) = self.chunk.try_borrow() else { return false };
        let Some(range) = bytes.get(self.start as usize..self.end as usize) else { return false };
        out.extend_from_slice(range);
        true
    }
}

/// The pool (module doc).
#[derive(Debug)]
pub struct SharedPool {
    chunks: Vec<Chunk>,
    /// The chunk being filled.
    current: usize,
    /// Chunks in use: `SHARED_CHUNKS`, fewer in tests of the fallback ([`SharedPool::limit`]).
    usable: usize,
    /// Bytes of each chunk in use: `SHARED_CHUNK_BYTES`, fewer in tests of the fallback.
    fill_bytes: usize,
    /// The chunk's capacity has been taken from the budget.
    taken: [bool; SHARED_CHUNKS],
    /// Bytes of each chunk in use (its next encoding goes there).
    filled: [usize; SHARED_CHUNKS],
    /// When the pool was last written to (for `IDLE_SHRINK_MS`).
    used_at: Instant,
    /// The time of the event-loop turn ([`SharedPool::set_now`]).
    now: Instant,
    /// The last encoding: its key and where it is.
    last: Option<(u64, SharedRef)>,
}

impl Default for SharedPool {
    fn default() -> Self {
        SharedPool::new()
    }
}

impl SharedPool {
    /// `SHARED_CHUNKS` empty chunks (their bytes are taken on first use).
    pub fn new() -> SharedPool {
        let chunks = (0..SHARED_CHUNKS).map(|_| Rc::new(RefCell::new(Vec::new()))).collect();
        let (usable, fill_bytes) = (SHARED_CHUNKS, SHARED_CHUNK_BYTES);
        let (taken, used_at) = ([false; SHARED_CHUNKS], Instant(0));
        let filled = [0; SHARED_CHUNKS];
        SharedPool { chunks, current: 0, usable, fill_bytes, taken, filled, used_at, now: Instant(0), last: None }
    }

    /// The time of the current event-loop turn: chunks written from now on were used at `now`.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// Use only the first `chunks` chunks (at least one), and `bytes` of each (at most
    /// `SHARED_CHUNK_BYTES`; a chunk still takes all of them from the budget): for tests of the
    /// copy fallback.
    pub fn limit(&mut self, chunks: usize, bytes: usize) {
        self.usable = chunks.clamp(1, SHARED_CHUNKS);
        self.fill_bytes = bytes.clamp(1, SHARED_CHUNK_BYTES);
        self.current = 0;
        self.last = None;
    }

    /// Take every usable chunk's bytes now, as a fan-out whose recipients lag far enough behind
    /// would: for the zero-allocation tests, whose warm-up must leave the pool at its ceiling
    /// (how many chunks a flow takes depends on how far its slowest reader lags, which the
    /// machine's scheduling decides). False if the budget could not hold them.
    pub fn take_all(&mut self, budget: &mut Budget) -> bool {
        (0..self.usable).all(|i| self.taken.get(i) == Some(&true) || self.take_chunk(i, budget))
    }

    /// Take chunk `i`'s bytes from the budget and reserve them, unless it has them already.
    /// False if the budget refused, or if a queue still refers to it (it cannot be grown).
    fn take_chunk(&mut self, i: usize, budget: &mut Budget) -> bool {
        let (Some(chunk), Some(taken)) = (self.chunks.get_mut(i), self.taken.get_mut(i)) else { return false };
        if *taken {
            return true;
        }
        let Some(bytes) = Rc::get_mut(chunk) else { return false };
        if !budget.take(SHARED_CHUNK_BYTES) {
            return false;
        }
        bytes.get_mut().reserve_exact(SHARED_CHUNK_BYTES);
        *taken = true;
        true
    }

    /// Bytes of the budget the pool holds (chunks referred to, or all it took while the pool
    /// was written to within `IDLE_SHRINK_MS`).
    pub fn bytes(&self) -> usize {
        self.taken.iter().filter(|t| **t).count() * SHARED_CHUNK_BYTES
    }

    /// Once the pool has not been written to for `IDLE_SHRINK_MS`, free every chunk no queue
    /// refers to (the last encoding is forgotten). Returns the bytes to give back to the budget.
    pub fn release_idle(&mut self, now: Instant) -> usize {
        if now.since(self.used_at) < IDLE_SHRINK_MS {
            return 0;
        }
        let mut freed = 0;
        for i in 0..SHARED_CHUNKS {
            if self.taken.get(i) != Some(&true) || !self.unpin_if_free(i) {
                continue;
            }
            let (Some(chunk), Some(taken), Some(filled)) =
                (self.chunks.get_mut(i), self.taken.get_mut(i), self.filled.get_mut(i))
            else {
                continue;
            };
            let Some(free) = Rc::get_mut(chunk) else { continue };
            *free.get_mut() = Vec::new();
            *taken = false;
            *filled = 0;
            freed += SHARED_CHUNK_BYTES;
        }
        freed
    }

    /// The range encoded for `key`, if `key` is the last one encoded.
    #[inline]
    pub fn cached(&self, key: u64) -> Option<&SharedRef> {
        self.last.as_ref().filter(|(k, _)| *k == key).map(|(_, r)| r)
    }

    /// A reference to `len` bytes that `fill` writes (into a room of exactly `len` bytes, which
    /// holds stale bytes: it must write all of them), encoded now unless `key` is the last one
    /// encoded (then the same range). `None` when no chunk has room (the caller copies).
    pub fn encode(
        &mut self,
        key: u64,
        len: usize,
        budget: &mut Budget,
        fill: impl FnOnce(&mut [u8]),
    ) -> Option<&SharedRef> {
        if self.cached(key).is_some() {
            return self.cached(key);
        }
        self.last = None;
        if len == 0 || len > self.fill_bytes {
            return None;
        }
        let index = self.room_for(len, budget)?;
        let chunk = self.chunks.get(index)?;
        let filled = self.filled.get_mut(index)?;
        let (start, end) = (*filled, *filled + len);
        let mut bytes = chunk.try_borrow_mut().ok()?;
        if bytes.len() < end {
            // Past the longest fill so far: zero-filled once (within the reserved capacity).
            bytes.resize(end, 0);
        }
        fill(bytes.get_mut(start..end)?);
        drop(bytes);
        *filled = end;
        self.used_at = self.now;
        // Both below SHARED_CHUNK_BYTES (checked above), which fits u32.
        let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(end)) else { return None };
        let r = SharedRef { chunk: Rc::clone(chunk), at: 0, start, end };
        self.last = Some((key, r));
        self.last.as_ref().map(|(_, r)| r)
    }

    /// The index of a chunk with `len` bytes free: the current one, else the next one no queue
    /// refers to (started again from the front), taking its bytes from the budget on first use.
    fn room_for(&mut self, len: usize, budget: &mut Budget) -> Option<usize> {
        if self.taken.get(self.current) == Some(&true)
            && self.unpin_if_free(self.current)
            && let Some(filled) = self.filled.get_mut(self.current)
        {
            // No queue refers to it any more: start it again from the front.
            *filled = 0;
        }
        let fits = self.filled.get(self.current).is_some_and(|f| f + len <= self.fill_bytes);
        if fits && self.taken.get(self.current) == Some(&true) {
            return Some(self.current);
        }
        for step in 1..=self.usable {
            let i = (self.current + step) % self.usable;
            if !self.unpin_if_free(i) {
                continue;
            }
            if let Some(filled) = self.filled.get_mut(i) {
                *filled = 0;
            }
            if !self.take_chunk(i, budget) {
                return None; // the budget refused (no queue refers to it: see above)
            }
            self.current = i;
            return Some(i);
        }
        None
    }

    /// True if no queue refers to chunk `i`; then the cached last encoding, if it lies in it, is
    /// forgotten (a cache alone must not keep a chunk from being reused or freed).
    fn unpin_if_free(&mut self, i: usize) -> bool {
        let Some(chunk) = self.chunks.get(i) else { return false };
        let pinned = self.last.as_ref().is_some_and(|(_, r)| Rc::ptr_eq(&r.chunk, chunk));
        if Rc::strong_count(chunk) != 1 + usize::from(pinned) {
            return false;
        }
        if pinned {
            self.last = None;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_encoding_per_key_and_chunks_reused_once_free() {
        let mut budget = Budget::new(usize::MAX);
        let mut pool = SharedPool::new();
        let a = pool.encode(1, 3, &mut budget, |v| v.copy_from_slice(b"abc")).cloned().unwrap();
        let again = pool.encode(1, 3, &mut budget, |_| panic!("encoded twice")).cloned().unwrap();
        assert!(Rc::ptr_eq(&a.chunk, &again.chunk) && a.start == again.start);
        let b = pool.encode(2, 2, &mut budget, |v| v.copy_from_slice(b"de")).cloned().unwrap();
        assert!(Rc::ptr_eq(&a.chunk, &b.chunk), "filled front to back");
        assert_eq!((b.start, b.end), (3, 5));
        assert_eq!(budget.used(), SHARED_CHUNK_BYTES);
        // A delivery that does not fit the current chunk moves on to a free one.
        let big = pool.encode(3, SHARED_CHUNK_BYTES, &mut budget, |v| v.fill(7));
        let big = big.cloned().unwrap();
        assert!(!Rc::ptr_eq(&a.chunk, &big.chunk));
        assert!(pool.encode(4, SHARED_CHUNK_BYTES + 1, &mut budget, |_| {}).is_none(), "larger than a chunk");
        assert!(pool.encode(5, 0, &mut budget, |_| {}).is_none());
    }

    #[test]
    fn a_full_pool_refuses_and_a_freed_chunk_is_written_over() {
        let mut budget = Budget::new(usize::MAX);
        let mut pool = SharedPool::new();
        let held: Vec<SharedRef> = (0..SHARED_CHUNKS as u64)
            .map(|k| pool.encode(k, SHARED_CHUNK_BYTES, &mut budget, |v| v.fill(1)).cloned().unwrap())
            .collect();
        assert!(pool.encode(99, 1, &mut budget, |v| v.fill(1)).is_none(), "every chunk referred to");
        drop(held);
        assert!(pool.last.is_none(), "a refusal forgets the last encoding");
        // Started again from the front: the room holds the earlier bytes, the encoder writes over
        // them, and the range is what it wrote.
        let again = pool.encode(101, 3, &mut budget, |v| {
            assert_eq!(v, [1, 1, 1], "the earlier bytes, not zeros");
            v.copy_from_slice(b"xyz");
        });
        let again = again.cloned().expect("free again");
        assert_eq!(again.start, 0);
        let mut out = Vec::new();
        assert!(again.copy_into(&mut out));
        assert_eq!(out, b"xyz");
        assert_eq!(pool.bytes(), SHARED_CHUNKS * SHARED_CHUNK_BYTES);
    }

    #[test]
    fn a_limited_pool_uses_only_its_first_chunks() {
        let mut budget = Budget::new(usize::MAX);
        let mut pool = SharedPool::new();
        pool.limit(1, SHARED_CHUNK_BYTES);
        let held = pool.encode(1, SHARED_CHUNK_BYTES, &mut budget, |v| v.fill(1)).cloned().unwrap();
        assert!(pool.encode(2, 1, &mut budget, |v| v.fill(1)).is_none(), "its one chunk is full and held");
        drop(held);
        assert!(pool.encode(3, 1, &mut budget, |v| v.fill(1)).is_some());
        assert_eq!(pool.bytes(), SHARED_CHUNK_BYTES);
    }

    #[test]
    fn an_idle_unreferenced_chunk_is_freed_and_taken_again_on_the_next_fan_out() {
        let mut budget = Budget::new(usize::MAX);
        let mut pool = SharedPool::new();
        pool.set_now(Instant(1_000));
        let held = pool.encode(1, 3, &mut budget, |v| v.copy_from_slice(b"abc")).cloned().unwrap();
        let idle = Instant(1_000 + IDLE_SHRINK_MS);
        assert_eq!(pool.release_idle(Instant(1_000 + IDLE_SHRINK_MS - 1)), 0, "not idle long enough");
        assert_eq!(pool.release_idle(idle), 0, "a queue still refers to it");
        assert_eq!(pool.bytes(), SHARED_CHUNK_BYTES);
        drop(held);
        // Written again later: its idle period starts again.
        pool.set_now(Instant(3_000));
        let again = pool.encode(2, 2, &mut budget, |v| v.copy_from_slice(b"de")).cloned().unwrap();
        drop(again);
        assert_eq!(pool.release_idle(idle), 0, "used 3 s ago");
        let later = Instant(3_000 + IDLE_SHRINK_MS);
        assert_eq!(pool.release_idle(later), SHARED_CHUNK_BYTES, "the cached last encoding does not keep it");
        budget.give(SHARED_CHUNK_BYTES);
        assert_eq!((pool.bytes(), budget.used()), (0, 0));
        assert_eq!(pool.chunks.iter().map(|c| c.borrow().capacity()).sum::<usize>(), 0, "its memory is freed");
        // The next fan-out takes a chunk again, and encodes again (nothing is served from a
        // freed chunk).
        pool.set_now(later);
        let next = pool.encode(2, 2, &mut budget, |v| v.copy_from_slice(b"fg")).cloned().unwrap();
        assert!(next.copy_into(&mut Vec::new()));
        assert_eq!((next.start, next.end), (0, 2));
        assert_eq!((pool.bytes(), budget.used()), (SHARED_CHUNK_BYTES, SHARED_CHUNK_BYTES));
        assert_eq!(next.chunk.borrow().capacity(), SHARED_CHUNK_BYTES);
    }

    #[test]
    fn no_chunk_is_freed_while_the_pool_is_written_to() {
        // A slow fan-out: chunk 0 filled at 0 s, chunk 1 written at 4 s and 8 s. Chunk 0 has not
        // been written to for 8 s but the pool has (freeing it would allocate when the fan-out
        // comes round to it again).
        let mut budget = Budget::new(usize::MAX);
        let mut pool = SharedPool::new();
        let full = |v: &mut [u8]| v.fill(1);
        let first = pool.encode(1, SHARED_CHUNK_BYTES, &mut budget, full).cloned().unwrap();
        for (key, at) in [(2, 4_000), (3, 8_000)] {
            pool.set_now(Instant(at));
            pool.encode(key, 1, &mut budget, |v| v.fill(1)).cloned().unwrap();
        }
        drop(first); // read by its subscriber after chunk 1 was started
        assert_eq!(pool.bytes(), 2 * SHARED_CHUNK_BYTES);
        assert_eq!(pool.release_idle(Instant(8_000 + IDLE_SHRINK_MS - 1)), 0);
        assert_eq!(pool.release_idle(Instant(8_000 + IDLE_SHRINK_MS)), 2 * SHARED_CHUNK_BYTES);
    }

    #[test]
    fn a_refused_budget_refuses_the_chunk() {
        let mut budget = Budget::new(SHARED_CHUNK_BYTES - 1);
        let mut pool = SharedPool::new();
        assert!(pool.encode(1, 1, &mut budget, |v| v.fill(1)).is_none());
        assert_eq!(pool.bytes(), 0);
    }
}
