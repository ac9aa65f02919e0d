//! The publisher-confirm window (RabbitMQ's `confirm.select` extension,
//! `rabbitmq.com/docs/confirms`): after `confirm.select-ok` the broker numbers the channel's
//! publishes 1, 2, 3… and answers each with `basic.ack` or `basic.nack`, possibly several at
//! once (`multiple`), possibly out of order across queues.
//!
//! [`Window`] holds one bit per unconfirmed sequence number in a fixed ring of
//! [`crate::limits::AMQP_UNCONFIRMED_WINDOW`] slots: [`Window::reserve`] refuses a publish when
//! the ring is full (the bridge's back-pressure signal), [`Window::settle`] clears what a
//! confirm covers and says how many publishes it settled, so counts stay true even when the
//! broker repeats or skips a tag. Nothing allocates after [`Window::new`].

use crate::limits::AMQP_UNCONFIRMED_WINDOW;

const WORDS: usize = AMQP_UNCONFIRMED_WINDOW.div_ceil(64);

/// Unconfirmed publishes of one channel.
#[derive(Clone, Debug)]
pub struct Window {
    bits: Box<[u64; WORDS]>,
    /// Lowest sequence number that may still be unconfirmed.
    base: u64,
    /// The number the next publish gets.
    next: u64,
    /// Unconfirmed publishes.
    outstanding: usize,
    /// Capacity in force (at most `AMQP_UNCONFIRMED_WINDOW`).
    cap: usize,
}

impl Window {
    /// Bytes of the ring: one bit per slot of the compiled [`AMQP_UNCONFIRMED_WINDOW`] (a lower
    /// `amqp-unconfirmed` only stops publishes earlier), allocated at [`Window::new`].
    pub const fn table_bytes() -> usize {
        core::mem::size_of::<[u64; WORDS]>()
    }

    /// An empty window of `cap` slots (clamped to 1..=`AMQP_UNCONFIRMED_WINDOW`).
    pub fn new(cap: usize) -> Window {
        Window {
            bits: Box::new([0; WORDS]),
            base: 1,
            next: 1,
            outstanding: 0,
            cap: cap.clamp(1, AMQP_UNCONFIRMED_WINDOW),
        }
    }

    /// Forget everything (a new channel numbers from 1 again). Returns how many publishes were
    /// still unconfirmed: their fate is unknown.
    pub fn reset(&mut self) -> usize {
        let lost = self.outstanding;
        self.bits.fill(0);
        self.base = 1;
        self.next = 1;
        self.outstanding = 0;
        lost
    }

    /// Unconfirmed publishes.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Whether another publish fits. A publish also needs its number to stay within one ring
    /// turn of the oldest unconfirmed one.
    pub fn has_room(&self) -> bool {
        self.outstanding < self.cap && self.next - self.base < AMQP_UNCONFIRMED_WINDOW as u64
    }

    fn slot(seq: u64) -> (usize, u64) {
        let i = (seq % AMQP_UNCONFIRMED_WINDOW as u64) as usize;
        (i / 64, 1u64 << (i % 64))
    }

    fn test_and_clear(&mut self, seq: u64) -> bool {
        let (w, m) = Self::slot(seq);
        match self.bits.get_mut(w) {
            Some(word) if *word & m != 0 => {
                *word &= !m;
                true
            }
            _ => false,
        }
    }

    /// Take the next sequence number, or `None` when the window is full.
    pub fn reserve(&mut self) -> Option<u64> {
        if !self.has_room() {
            return None;
        }
        let seq = self.next;
        let (w, m) = Self::slot(seq);
        *self.bits.get_mut(w)? |= m;
        self.next += 1;
        self.outstanding += 1;
        Some(seq)
    }

    /// Apply a broker confirm for `tag` (`multiple`: every number up to it). Returns how many
    /// outstanding publishes it settled (0 for a repeated, stale or future tag).
    pub fn settle(&mut self, tag: u64, multiple: bool) -> usize {
        let mut n = 0;
        if multiple {
            let end = tag.min(self.next.saturating_sub(1));
            let mut s = self.base;
            while s <= end {
                n += usize::from(self.test_and_clear(s));
                s += 1;
            }
        } else if tag >= self.base && tag < self.next {
            n = usize::from(self.test_and_clear(tag));
        }
        self.outstanding -= n;
        while self.base < self.next && !self.is_set(self.base) {
            self.base += 1;
        }
        n
    }

    fn is_set(&self, seq: u64) -> bool {
        let (w, m) = Self::slot(seq);
        self.bits.get(w).is_some_and(|word| word & m != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_stay_true() {
        let mut w = Window::new(4);
        assert_eq!((w.reserve(), w.reserve(), w.reserve(), w.reserve()), (Some(1), Some(2), Some(3), Some(4)));
        assert_eq!(w.reserve(), None, "full");
        assert_eq!(w.settle(3, false), 1);
        assert_eq!(w.settle(3, false), 0, "repeated");
        assert_eq!(w.settle(9, false), 0, "future");
        assert_eq!(w.outstanding(), 3);
        assert_eq!(w.settle(2, true), 2);
        assert_eq!(w.reserve(), Some(5));
        assert_eq!(w.settle(100, true), 2, "multiple stops at the last number given");
        assert_eq!(w.outstanding(), 0);
        assert_eq!(w.reserve(), Some(6));
        assert_eq!(w.reset(), 1);
        assert_eq!(w.reserve(), Some(1));
    }

    #[test]
    fn a_stuck_oldest_publish_bounds_the_ring() {
        let mut w = Window::new(AMQP_UNCONFIRMED_WINDOW);
        let first = w.reserve().unwrap();
        for _ in 1..AMQP_UNCONFIRMED_WINDOW {
            let s = w.reserve().unwrap();
            assert_eq!(w.settle(s, false), 1);
        }
        assert_eq!(w.reserve(), None, "the oldest is a ring turn behind");
        assert_eq!(w.settle(first, false), 1);
        assert!(w.reserve().is_some());
    }
}
