//! A connection's transmit queue: its own bytes (what its session and encoder appended) and,
//! among them, references to ranges of the shared transmit pool (`shared.rs`: one encoding of a
//! pubsub delivery for every verbatim recipient), written in order with one `writev`.
//!
//! Order: a reference taken when the own bytes were `at` long goes out after `buf[..at]` and
//! before `buf[at..]`. A write that stops anywhere (inside the own bytes, inside a shared range)
//! resumes there: `sent` counts the own bytes written, each reference's `start` its own.
//! `pending` counts both, so the queue limit (`tx-queue-bytes`) and back-pressure see a shared
//! delivery exactly as a copied one.

use std::io::{self, IoSlice, Write};

use super::Budget;
use super::shared::SharedRef;
use crate::limits::{TX_BUF_MIN_BYTES, TX_SHARED_REFS};

/// Transmit queue: `buf[sent..]` and the shared ranges are still to be written (module doc).
#[derive(Debug, Default)]
pub struct TxBuf {
    /// Own bytes (some already sent).
    pub buf: Vec<u8>,
    /// Bytes of `buf` already written to the socket.
    pub sent: usize,
    /// Shared ranges still (partly) to be written, in order; `at` never below `sent`.
    shared: heapless::Deque<SharedRef, TX_SHARED_REFS>,
    /// Bytes of `shared` still to be written.
    shared_pending: usize,
}

/// Slices one `writev` takes at most: each reference and the own bytes before it, and the rest.
const IOV: usize = 2 * TX_SHARED_REFS + 1;

/// Put `s` in the next free slot of `iov`.
#[inline]
fn add<'a>(iov: &mut [IoSlice<'a>], n: &mut usize, s: &'a [u8]) {
    if let Some(slot) = iov.get_mut(*n) {
        *slot = IoSlice::new(s);
        *n += 1;
    }
}

impl TxBuf {
    /// An empty queue with room for `bytes` own bytes.
    pub fn with_capacity(bytes: usize) -> TxBuf {
        TxBuf { buf: Vec::with_capacity(bytes), ..TxBuf::default() }
    }

    /// Bytes waiting to be written.
    #[inline]
    pub fn pending(&self) -> usize {
        self.buf.len() - self.sent + self.shared_pending
    }

    /// May the queue take a message of `len` bytes under the per-peer limit `limit`
    /// (`tx-queue-bytes`)? When it fits, or — a message larger than what is left, even larger
    /// than the limit itself — when the queue is at most half full: so a large message reaches
    /// an idle or draining peer instead of being refused behind a 40-byte `peerlist add`, and a
    /// sender paused behind a full peer, resumed once that peer drains below half, always gets
    /// its message in. One queue thus holds at most half the limit plus one message
    /// (`max-msg-bytes`); the buffer budget bounds the total.
    #[inline]
    pub fn admits(&self, len: usize, limit: usize) -> bool {
        let pending = self.pending();
        // The common case first: a queue at most half full takes anything. `pending` is at most
        // `limit / 2` plus one message, so the sum cannot overflow.
        pending <= limit / 2 || pending + len <= limit
    }

    /// Ensure `extra` more bytes can be appended without reallocating beyond the budget:
    /// compact first, then grow.
    ///
    /// # Errors
    /// The budget refused: the growth it would have had to grant.
    pub fn reserve(&mut self, extra: usize, budget: &mut Budget) -> Result<(), usize> {
        if self.buf.capacity() - self.buf.len() >= extra {
            return Ok(());
        }
        if self.sent > 0 {
            self.buf.drain(..self.sent);
            for r in self.shared.iter_mut() {
                r.at -= self.sent;
            }
            self.sent = 0;
            if self.buf.capacity() - self.buf.len() >= extra {
                return Ok(());
            }
        }
        let cap = self.buf.capacity();
        // An idle connection's buffer was given back whole (`Conn::shrink_if_idle`): it comes
        // back at its initial size at least, in one allocation.
        let target = (self.buf.len() + extra).next_power_of_two().max(cap * 2).max(TX_BUF_MIN_BYTES);
        if !budget.take(target - cap) {
            return Err(target - cap);
        }
        self.buf.reserve_exact(target - self.buf.len());
        Ok(())
    }

    /// Capacity of the own bytes (for budget accounting; shared chunks are the pool's).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Queue the shared range `r` after everything queued so far: joined to the last reference
    /// when it continues it in the same chunk with no own bytes between. `false` (nothing
    /// queued) when the queue already holds `TX_SHARED_REFS` references.
    #[inline]
    pub fn push_shared(&mut self, r: &SharedRef) -> bool {
        let at = self.buf.len();
        let len = r.len();
        if let Some(last) = self.shared.back_mut()
            && last.at == at
            && last.end == r.start
            && std::rc::Rc::ptr_eq(&last.chunk, &r.chunk)
        {
            last.end = r.end;
            self.shared_pending += len;
            return true;
        }
        let r = SharedRef { at, ..r.clone() };
        if self.shared.push_back(r).is_err() {
            return false;
        }
        self.shared_pending += len;
        true
    }

    /// Write what the writer takes in one call (`write`, or `writev` when shared ranges are
    /// queued) and account it. Returns the bytes written.
    ///
    /// # Errors
    /// The writer's.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<usize> {
        let n = if self.shared.is_empty() {
            w.write(self.buf.get(self.sent..).unwrap_or(&[]))?
        } else {
            self.write_vectored(w)?
        };
        self.advance(n);
        if self.pending() == 0 {
            self.buf.clear();
            self.sent = 0;
        }
        Ok(n)
    }

    /// One `writev` of the own bytes and the shared ranges, in order.
    fn write_vectored<W: Write>(&self, w: &mut W) -> io::Result<usize> {
        let mut guards: heapless::Vec<_, TX_SHARED_REFS> = heapless::Vec::new();
        for r in &self.shared {
            let g = r.chunk.try_borrow().map_err(|_| io::Error::other("shared chunk being written"))?;
            guards.push(g).map_err(|_| io::Error::other("too many shared ranges"))?;
        }
        let mut iov = [IoSlice::new(&[]); IOV];
        let mut n = 0;
        let mut pos = self.sent;
        for (r, g) in self.shared.iter().zip(guards.iter()) {
            if r.at > pos {
                add(&mut iov, &mut n, self.buf.get(pos..r.at).unwrap_or(&[]));
                pos = r.at;
            }
            add(&mut iov, &mut n, g.get(r.start as usize..r.end as usize).unwrap_or(&[]));
        }
        if self.buf.len() > pos {
            add(&mut iov, &mut n, self.buf.get(pos..).unwrap_or(&[]));
        }
        w.write_vectored(iov.get(..n).unwrap_or(&[]))
    }

    /// `n` bytes were written: move past them, own bytes and shared ranges in queue order.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let own_end = self.shared.front().map_or(self.buf.len(), |r| r.at);
            let own = own_end.saturating_sub(self.sent).min(n);
            self.sent += own;
            n -= own;
            if n == 0 {
                break;
            }
            let Some(front) = self.shared.front_mut() else { break };
            let k = front.len().min(n);
            // k <= front.len(), a u32 difference.
            front.start += u32::try_from(k).unwrap_or(0);
            n -= k;
            self.shared_pending -= k;
            if front.is_empty() {
                self.shared.pop_front();
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn queue(pending: usize) -> TxBuf {
        TxBuf { buf: vec![0; pending], ..TxBuf::default() }
    }

    #[test]
    fn a_message_larger_than_the_queue_limit_reaches_an_idle_or_half_empty_queue() {
        let limit = 1 << 20;
        assert!(queue(0).admits(16 << 20, limit), "an idle queue takes any message");
        assert!(queue(40).admits(limit + 1, limit), "a peerlist add in front of it must not refuse it");
        assert!(queue(limit / 2).admits(4 * limit, limit), "a queue drained to half (a paused sender resumes)");
        assert!(!queue(limit / 2 + 1).admits(limit, limit), "more than half full: it does not fit");
        assert!(queue(limit - 100).admits(100, limit), "small messages fill the queue exactly");
        assert!(!queue(limit - 100).admits(101, limit));
    }

    #[test]
    fn a_refused_growth_says_how_much_it_needed() {
        let mut budget = Budget::new(8192);
        let mut q = TxBuf::default();
        assert_eq!(q.reserve(4096, &mut budget), Ok(()));
        assert_eq!(budget.used(), 4096);
        q.buf.resize(4096, 0);
        assert_eq!(q.reserve(8192, &mut budget), Err(16384 - 4096), "doubling to the next power of two");
        budget.give(4096);
        assert_eq!(budget.used(), 0);
    }
}

#[cfg(test)]
mod writev_tests {
    //! Property: whatever lengths the writer accepts, the bytes come out in queue order, once.
    use super::*;
    use crate::server::conn::shared::SharedPool;
    use proptest::prelude::*;

    /// A writer that takes at most the next of `accept` bytes per call, across slices.
    struct Mock {
        out: Vec<u8>,
        accept: Vec<usize>,
        calls: usize,
    }

    impl Write for Mock {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut room = self.accept.get(self.calls % self.accept.len()).copied().unwrap_or(1);
            self.calls += 1;
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                let k = b.len().min(room);
                self.out.extend_from_slice(&b[..k]);
                room -= k;
                n += k;
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Append own bytes (`Own`), queue a shared delivery (`Shared`), or write once (`Write`).
    #[derive(Debug, Clone)]
    enum Op {
        Own(Vec<u8>),
        Shared(u8, usize),
        Write,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 1..40).prop_map(Op::Own),
            (any::<u8>(), 1usize..300).prop_map(|(b, n)| Op::Shared(b, n)),
            Just(Op::Write),
        ]
    }

    proptest! {
        #[test]
        fn writes_resume_at_the_right_offset(
            ops in prop::collection::vec(op(), 1..80),
            // At least one non-zero length: a writer that never accepts a byte cannot be drained
            // (all zeros, ~8% of runs, failed the final drain).
            accept in prop::collection::vec(0usize..200, 1..16).prop_filter("accepts something", |a| a.iter().any(|&n| n > 0)),
        ) {
            let mut budget = Budget::new(usize::MAX);
            let mut pool = SharedPool::new();
            let mut q = TxBuf::default();
            let mut w = Mock { out: Vec::new(), accept, calls: 0 };
            let mut expected = Vec::new();
            for (key, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Own(bytes) => {
                        q.reserve(bytes.len(), &mut budget).unwrap();
                        q.buf.extend_from_slice(&bytes);
                        expected.extend_from_slice(&bytes);
                    }
                    Op::Shared(b, n) => {
                        let bytes: Vec<u8> = (0..n).map(|i| b.wrapping_add(i as u8)).collect();
                        let fill = |v: &mut [u8]| v.copy_from_slice(&bytes);
                        let r = pool.encode(key as u64, n, &mut budget, fill);
                        if !r.is_some_and(|r| q.push_shared(r)) {
                            // The copy fallback, as the sink does.
                            q.reserve(n, &mut budget).unwrap();
                            q.buf.extend_from_slice(&bytes);
                        }
                        expected.extend_from_slice(&bytes);
                    }
                    Op::Write => {
                        let _ = q.write_to(&mut w);
                    }
                }
                prop_assert_eq!(q.pending(), expected.len() - w.out.len());
            }
            let mut guard = 0;
            while q.pending() > 0 && guard < 100_000 {
                let _ = q.write_to(&mut w);
                guard += 1;
            }
            prop_assert_eq!(q.pending(), 0);
            prop_assert_eq!(&w.out, &expected);
            prop_assert!(q.buf.is_empty() && q.sent == 0 && q.shared.is_empty());
        }
    }

    #[test]
    fn consecutive_deliveries_in_one_chunk_are_one_reference() {
        let mut budget = Budget::new(usize::MAX);
        let mut pool = SharedPool::new();
        let mut q = TxBuf::default();
        for key in 0..100 {
            let r = pool.encode(key, 10, &mut budget, |v| v.fill(key as u8)).unwrap();
            assert!(q.push_shared(r));
        }
        assert_eq!(q.shared.len(), 1);
        assert_eq!(q.pending(), 1000);
        q.buf.extend_from_slice(b"own");
        let r = pool.encode(100, 1, &mut budget, |v| v.fill(1)).unwrap();
        assert!(q.push_shared(r), "own bytes between: a second reference");
        assert_eq!(q.shared.len(), 2);
    }
}
