//! Connection buffers and the process-wide budget they are taken from (`limits::BUFFER_BUDGET_BYTES`).

use crate::limits::{RX_BUF_BUSY_BYTES, RX_BUF_MAX_BYTES, RX_BUF_MIN_BYTES, TX_BUF_MIN_BYTES};

/// The process-wide buffer budget (`limits::BUFFER_BUDGET_BYTES`).
#[derive(Debug)]
pub struct Budget {
    used: usize,
    limit: usize,
    hwm: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Budget {
        Budget { used: 0, limit, hwm: 0 }
    }

    /// Take `bytes` if they fit.
    pub fn take(&mut self, bytes: usize) -> bool {
        match self.used.checked_add(bytes) {
            Some(n) if n <= self.limit => {
                self.used = n;
                self.hwm = self.hwm.max(n);
                true
            }
            _ => false,
        }
    }

    /// Account `bytes` that are already allocated (output a session appended to a transmit
    /// queue beyond its reserved capacity: handshake replies, PONGs). Unlike [`Budget::take`]
    /// this cannot refuse; past the limit, every `take` fails until enough is given back.
    pub fn charge(&mut self, bytes: usize) {
        self.used = self.used.saturating_add(bytes);
        self.hwm = self.hwm.max(self.used);
    }

    /// Return `bytes`.
    pub fn give(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
    }

    /// Bytes in use.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Highest use seen.
    pub fn hwm(&self) -> usize {
        self.hwm
    }
}

/// Receive buffer: `buf[start..end]` holds unconsumed bytes; `buf.len()` is the capacity
/// (zero-filled when taken).
#[derive(Debug, Default)]
pub struct RxBuf {
    /// Storage.
    pub buf: Vec<u8>,
    /// First unconsumed byte.
    pub start: usize,
    /// One past the last received byte.
    pub end: usize,
}

impl RxBuf {
    /// Drop `n` consumed bytes.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Unconsumed bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Make room so that `need` unconsumed bytes fit and some tail space is free; grows within
    /// the budget.
    ///
    /// # Errors
    /// The budget refused: the bytes the growth needs (0 when the buffer is at its ceiling and
    /// cannot grow at all).
    pub fn make_room(&mut self, need: usize, budget: &mut Budget) -> Result<(), usize> {
        let need = need.max(self.len() + 1);
        if (self.end == self.buf.len() || need > self.buf.len() - self.start) && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if need <= self.buf.len() && self.end < self.buf.len() {
            return Ok(());
        }
        // An idle connection's buffer was given back whole (`Conn::shrink_if_idle`): it comes
        // back at its initial size at least.
        let target = need.max(self.buf.len() * 2).clamp(RX_BUF_MIN_BYTES, RX_BUF_MAX_BYTES).max(need);
        if self.grow_to(target, budget) { Ok(()) } else { Err(target.saturating_sub(self.buf.len())) }
    }

    /// A busy connection (its last read filled the buffer) doubles its buffer up to
    /// `RX_BUF_BUSY_BYTES`, budget permitting: fewer, larger reads.
    pub fn grow_if_busy(&mut self, budget: &mut Budget) {
        if self.buf.len() < RX_BUF_BUSY_BYTES {
            let _ = self.grow_to(self.buf.len() * 2, budget);
        }
    }

    fn grow_to(&mut self, target: usize, budget: &mut Budget) -> bool {
        let extra = target.saturating_sub(self.buf.len());
        if extra == 0 {
            return false;
        }
        if !budget.take(extra) {
            return false;
        }
        self.buf.resize(target, 0);
        true
    }
}

/// Transmit queue: `buf[sent..]` is still to be written.
#[derive(Debug, Default)]
pub struct TxBuf {
    /// Queued bytes (some already sent).
    pub buf: Vec<u8>,
    /// Bytes of `buf` already written to the socket.
    pub sent: usize,
}

impl TxBuf {
    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.sent
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

    /// Capacity (for budget accounting).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(pending: usize) -> TxBuf {
        TxBuf { buf: vec![0; pending], sent: 0 }
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
