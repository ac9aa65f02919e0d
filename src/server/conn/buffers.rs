//! Connection buffers and the process-wide budget they are taken from (`limits::BUFFER_BUDGET_BYTES`).

use crate::limits::{RX_BUF_BUSY_BYTES, RX_BUF_MAX_BYTES, RX_BUF_MIN_BYTES};

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
