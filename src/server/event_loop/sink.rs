//! The router's [`Sink`]: messages appended to the destination connections' transmit queues,
//! all or nothing, within the per-connection queue limit and the process buffer budget.
//!
//! Admission (`tx-queue-bytes`, README "Limits"): a message is queued when it fits under the
//! limit, or — a message too large to fit — when the queue is at most half full. So a message
//! larger than the limit itself still reaches an idle or draining peer (it is not dropped
//! because a 40-byte `peerlist add` happens to sit in front of it), and a sender paused behind
//! a full peer, resumed when that peer drains below half, always gets its message in. One
//! queue can thus hold up to half the limit plus one message (at most `max-msg-bytes`); the
//! buffer budget bounds the total. A refusal records its cause ([`Sink::refusal`]).

use super::broadcast::Broadcasts;
use super::*;

/// The destination connections' transmit queues, as the sink writes them.
pub(super) struct Queues<'a> {
    pub(super) slots: &'a mut Slots,
    dirty: &'a mut Vec<SlotId>,
    broken: &'a mut Vec<SlotId>,
    budget: &'a mut Budget,
    tx_queue_bytes: usize,
    /// Messages queued.
    pub(super) delivered: u64,
    /// Messages refused because the buffer budget could not grow a queue.
    pub(super) refused_budget: u64,
    /// Why the last refused delivery was refused.
    last_refusal: Refusal,
}

/// The [`Sink`] the router writes into: the destination connections' transmit queues, and the
/// deferred broadcasts ([`super::broadcast`]).
pub(super) struct ConnSink<'a> {
    pub(super) q: Queues<'a>,
    pub(super) broadcasts: &'a mut Broadcasts,
    /// Broadcast entries lost for members that lagged past the ring (`dropped_notify_full`).
    pub(super) lost_notifications: u64,
}

impl<'a> ConnSink<'a> {
    pub(super) fn new(
        slots: &'a mut Slots,
        dirty: &'a mut Vec<SlotId>,
        broken: &'a mut Vec<SlotId>,
        budget: &'a mut Budget,
        broadcasts: &'a mut Broadcasts,
        limits: &Limits,
    ) -> Self {
        ConnSink {
            q: Queues {
                slots,
                dirty,
                broken,
                budget,
                tx_queue_bytes: limits.tx_queue_bytes,
                delivered: 0,
                refused_budget: 0,
                last_refusal: Refusal::QueueFull,
            },
            broadcasts,
            lost_notifications: 0,
        }
    }

    /// Queue a message to `to` after the broadcast entries it has not received yet (they go
    /// first, or the message does not go either: its queue is full).
    fn queue(
        &mut self,
        to: PeerId,
        len: impl FnOnce(&Session) -> usize,
        write: impl FnOnce(&mut Session, &mut Vec<u8>) -> Result<(), DecodeError>,
    ) -> Result<(), Full> {
        let Some(id) = self.q.slots.id_of(to.0) else {
            self.q.last_refusal = Refusal::QueueFull;
            return Err(Full);
        };
        self.catch_up(id)?;
        self.q.write(id, len, write)
    }
}

impl Queues<'_> {
    /// Queue `len` bytes that `write` appends to `id`'s transmit queue, all or nothing.
    pub(super) fn write(
        &mut self,
        id: SlotId,
        len: impl FnOnce(&Session) -> usize,
        write: impl FnOnce(&mut Session, &mut Vec<u8>) -> Result<(), DecodeError>,
    ) -> Result<(), Full> {
        self.last_refusal = Refusal::QueueFull;
        let Some(conn) = self.slots.get_mut(id) else { return Err(Full) };
        if !conn.session.is_traffic() {
            return Err(Full);
        }
        let len = len(&conn.session);
        if !admits(conn.tx.pending(), len, self.tx_queue_bytes) {
            return Err(Full);
        }
        let before = conn.tx.capacity();
        // No slack for frame::append's inline copies is reserved: it would let a queue at its
        // limit double its buffer for 32 bytes. Near the end of the capacity it uses memcpy.
        if !conn.tx.reserve(len, self.budget) {
            self.refused_budget += 1;
            self.last_refusal = Refusal::Budget;
            return Err(Full);
        }
        debug_assert!(conn.tx.capacity() >= before);
        if write(&mut conn.session, &mut conn.tx.buf).is_err() {
            // CURVE nonce exhausted (after 2^64 messages): nothing sane can follow.
            self.broken.push(id);
            return Err(Full);
        }
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(id);
        }
        self.delivered += 1;
        Ok(())
    }
}

/// May a queue holding `pending` bytes take a message of `len` bytes (see the module doc)?
pub(super) fn admits(pending: usize, len: usize, limit: usize) -> bool {
    pending.saturating_add(len) <= limit || pending <= limit / 2
}

impl Sink for ConnSink<'_> {
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        self.queue(to, |s| s.encoded_len(frames), |s, out| s.encode_message(frames, out))
    }

    fn deliver_shared(&mut self, to: PeerId, shared: &mut Shared<'_>) -> Result<(), Full> {
        let verbatim = self.q.slots.peek(to.0).is_some_and(|c| c.session.frames_verbatim());
        if !verbatim {
            return self.deliver(to, shared.frames);
        }
        if !shared.encoded {
            shared.wire.clear();
            Session::encode_verbatim(shared.frames, shared.wire);
            shared.encoded = true;
        }
        let wire: &[u8] = shared.wire;
        self.queue(
            to,
            |_| wire.len(),
            |_, out| {
                out.extend_from_slice(wire);
                Ok(())
            },
        )
    }

    fn is_stalled(&self, to: PeerId) -> bool {
        self.q.slots.peek(to.0).is_some_and(|c| c.stalled)
    }

    fn refusal(&self) -> Refusal {
        self.q.last_refusal
    }

    fn broadcast(&mut self, frames: &[&[u8]], members: &mut dyn Iterator<Item = PeerId>) -> u64 {
        if self.broadcasts.push(frames) {
            return 0;
        }
        // Too large for a ring entry: write it to each member now, after what it has pending.
        members.filter(|&p| self.deliver(p, frames).is_err()).count() as u64
    }

    fn joined(&mut self, peer: PeerId) {
        self.broadcasts.join(peer.0);
    }

    fn leaving(&mut self, peer: PeerId) {
        // What was broadcast while it was a member reaches it first (best effort: what its
        // full queue cannot take now is lost, as a notification to a full queue always was).
        if let Some(id) = self.q.slots.id_of(peer.0) {
            while self.catch_up(id).is_err() && self.broadcasts.give_up_one(peer.0) {
                self.lost_notifications += 1;
            }
        }
        self.broadcasts.leave(peer.0);
    }
}

#[cfg(test)]
mod tests {
    use super::admits;

    #[test]
    fn a_message_larger_than_the_queue_limit_reaches_an_idle_or_half_empty_queue() {
        let limit = 1 << 20;
        assert!(admits(0, 16 << 20, limit), "an idle queue takes any message");
        assert!(admits(40, limit + 1, limit), "a peerlist add in front of it must not drop it");
        assert!(admits(limit / 2, 4 * limit, limit), "a queue drained to half (a paused sender resumes)");
        assert!(!admits(limit / 2 + 1, limit, limit), "more than half full: it does not fit");
        assert!(admits(limit - 100, 100, limit), "small messages fill the queue exactly");
        assert!(!admits(limit - 100, 101, limit));
    }
}
