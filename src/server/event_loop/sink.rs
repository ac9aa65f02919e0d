//! The router's [`Sink`]: messages appended to the destination connections' transmit queues,
//! all or nothing, within the per-connection queue limit and the process buffer budget.

use super::*;

/// The [`Sink`] the router writes into: the destination connections' transmit queues.
pub(super) struct ConnSink<'a> {
    pub(super) slots: &'a mut Slots,
    pub(super) dirty: &'a mut Vec<SlotId>,
    pub(super) broken: &'a mut Vec<SlotId>,
    pub(super) budget: &'a mut Budget,
    pub(super) tx_queue_bytes: usize,
    pub(super) delivered: u64,
    pub(super) refused_budget: u64,
}

impl<'a> ConnSink<'a> {
    pub(super) fn new(
        slots: &'a mut Slots,
        dirty: &'a mut Vec<SlotId>,
        broken: &'a mut Vec<SlotId>,
        budget: &'a mut Budget,
        limits: &Limits,
    ) -> Self {
        ConnSink {
            slots,
            dirty,
            broken,
            budget,
            tx_queue_bytes: limits.tx_queue_bytes,
            delivered: 0,
            refused_budget: 0,
        }
    }
}

impl ConnSink<'_> {
    /// Queue `len` bytes that `write` appends to `to`'s transmit queue, all or nothing.
    fn queue(
        &mut self,
        to: PeerId,
        len: impl FnOnce(&Session) -> usize,
        write: impl FnOnce(&mut Session, &mut Vec<u8>) -> Result<(), SessionError>,
    ) -> Result<(), Full> {
        let Some(id) = self.slots.id_of(to.0) else { return Err(Full) };
        let Some(conn) = self.slots.get_mut(id) else { return Err(Full) };
        if !conn.session.is_traffic() {
            return Err(Full);
        }
        let len = len(&conn.session);
        let pending = conn.tx.pending();
        if pending > 0 && pending + len > self.tx_queue_bytes {
            return Err(Full);
        }
        let before = conn.tx.capacity();
        // No slack for frame::append's inline copies is reserved: it would let a queue at its
        // limit double its buffer for 32 bytes. Near the end of the capacity it uses memcpy.
        if !conn.tx.reserve(len, self.budget) {
            self.refused_budget += 1;
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

impl Sink for ConnSink<'_> {
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        self.queue(to, |s| s.encoded_len(frames), |s, out| s.encode_message(frames, out))
    }

    fn deliver_shared(&mut self, to: PeerId, shared: &mut Shared<'_>) -> Result<(), Full> {
        let verbatim = self.slots.peek(to.0).is_some_and(|c| c.session.frames_verbatim());
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
        self.slots.peek(to.0).is_some_and(|c| c.stalled)
    }
}
