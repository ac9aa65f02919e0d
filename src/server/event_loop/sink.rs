//! The router's [`Sink`]: messages appended to the destination connections' transmit queues,
//! all or nothing, within the per-connection queue limit and the process buffer budget.
//!
//! The sender of the message being routed is checked out of the slot table while the router
//! reads its message; messages to it (the router's replies) go to its own side of the delivery,
//! lent along with the message ([`Conn::route_view`]). A pubsub fan-out is encoded once per
//! [`Fanout`] into the server's [`FanoutCache`] and copied to every recipient that takes frames
//! verbatim; the others encode it themselves (CURVE seals per connection).

use super::*;
use crate::server::conn::{Delivery, Queued, TxBuf};
use crate::server::protocol::Outbound;
use crate::vip::pubsub::SCRATCH_KEEP_BYTES;
use crate::vip::router::{Fanout, Full, Sink};
use crate::zmtp::traffic::encode_verbatim;

/// The verbatim encoding of the last fan-out: encoded at its first verbatim recipient, copied to
/// the others. Grows to the largest delivery once; a huge one is released after its route.
#[derive(Debug, Default)]
pub(super) struct FanoutCache {
    id: Option<u64>,
    wire: Vec<u8>,
}

impl FanoutCache {
    /// Give back the room of a huge delivery.
    pub(super) fn trim(&mut self) {
        if self.wire.capacity() > SCRATCH_KEEP_BYTES {
            *self = FanoutCache::default();
        }
    }

    /// The encoding of `fanout`, made now unless it is the cached one.
    #[inline]
    fn encode(&mut self, fanout: &Fanout<'_>) -> &[u8] {
        if self.id != Some(fanout.id()) {
            self.wire.clear();
            encode_verbatim(fanout.frames, &mut self.wire);
            self.id = Some(fanout.id());
        }
        &self.wire
    }
}

/// What to append: frames the connection encodes itself, or an encoding made once.
enum Payload<'p, 'e> {
    Frames(&'p [&'p [u8]], &'p mut Outbound<'e>),
    Encoded(&'p [u8]),
}

/// The checked-out sender's own side of a delivery.
pub(super) struct Sender<'a> {
    pub(super) id: SlotId,
    pub(super) delivery: Option<Delivery<'a>>,
    pub(super) stalled: bool,
}

/// Where deliveries land: the slot table, and the checked-out sender.
struct Conns<'a> {
    slots: &'a mut Slots,
    sender: Option<Sender<'a>>,
}

/// The accounting of deliveries.
struct Out<'a> {
    dirty: &'a mut Vec<SlotId>,
    broken: &'a mut Vec<SlotId>,
    budget: &'a mut Budget,
    tx_queue_bytes: usize,
    delivered: u64,
    refused_budget: u64,
}

/// The [`Sink`] the router writes into: the destination connections' transmit queues.
pub(super) struct ConnSink<'a> {
    conns: Conns<'a>,
    out: Out<'a>,
    fanout: &'a mut FanoutCache,
}

impl<'a> ConnSink<'a> {
    #[inline]
    pub(super) fn new(
        slots: &'a mut Slots,
        sched: &'a mut Sched,
        budget: &'a mut Budget,
        fanout: &'a mut FanoutCache,
        limits: &Limits,
        sender: Option<Sender<'a>>,
    ) -> Self {
        ConnSink {
            conns: Conns { slots, sender },
            out: Out {
                dirty: &mut sched.dirty,
                broken: &mut sched.broken,
                budget,
                tx_queue_bytes: limits.tx_queue_bytes,
                delivered: 0,
                refused_budget: 0,
            },
            fanout,
        }
    }

    /// Messages queued, and transmit-queue growths the budget refused.
    #[inline]
    pub(super) fn counts(&self) -> (u64, u64) {
        (self.out.delivered, self.out.refused_budget)
    }
}

impl Conns<'_> {
    /// Queue `frames` to `to`, all or nothing, encoded by its own encoder.
    #[inline]
    fn queue(&mut self, out: &mut Out<'_>, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        if let Some(s) = self.sender.as_mut().filter(|s| s.id.index == to.0) {
            let d = s.delivery.as_mut().ok_or(Full)?;
            return out.put(s.id, d.tx, d.queued, Payload::Frames(frames, &mut d.outbound));
        }
        let id = self.slots.id_of(to.0).ok_or(Full)?;
        let d = self.slots.get_mut(id).and_then(Conn::delivery).ok_or(Full)?;
        let Delivery { tx, mut outbound, queued } = d;
        out.put(id, tx, queued, Payload::Frames(frames, &mut outbound))
    }

    /// Queue the verbatim encoding `wire` to `to` (which [`Conns::verbatim`] said takes it).
    #[inline]
    fn queue_encoded(&mut self, out: &mut Out<'_>, to: PeerId, wire: &[u8]) -> Result<(), Full> {
        if let Some(s) = self.sender.as_mut().filter(|s| s.id.index == to.0) {
            let d = s.delivery.as_mut().ok_or(Full)?;
            return out.put(s.id, d.tx, d.queued, Payload::Encoded(wire));
        }
        let id = self.slots.id_of(to.0).ok_or(Full)?;
        let (tx, queued) = self.slots.get_mut(id).map(Conn::queues).ok_or(Full)?;
        out.put(id, tx, queued, Payload::Encoded(wire))
    }

    /// Does `to` take frames verbatim (one encoding serves it)?
    #[inline]
    fn verbatim(&self, to: PeerId) -> bool {
        match self.sender.as_ref().filter(|s| s.id.index == to.0) {
            Some(s) => s.delivery.as_ref().is_some_and(|d| d.outbound.verbatim()),
            None => self.slots.peek(to.0).is_some_and(|c| c.driver().frames_verbatim()),
        }
    }

    #[inline]
    fn is_stalled(&self, to: PeerId) -> bool {
        match self.sender.as_ref().filter(|s| s.id.index == to.0) {
            Some(s) => s.stalled,
            None => self.slots.peek(to.0).is_some_and(Conn::is_stalled),
        }
    }
}

impl Out<'_> {
    /// Append `payload` to `tx` if it fits the queue limit and the budget.
    #[inline]
    fn put(&mut self, id: SlotId, tx: &mut TxBuf, queued: &mut Queued, payload: Payload<'_, '_>) -> Result<(), Full> {
        let len = match &payload {
            Payload::Frames(frames, outbound) => outbound.encoded_len(frames),
            Payload::Encoded(bytes) => bytes.len(),
        };
        let pending = tx.pending();
        if pending > 0 && pending + len > self.tx_queue_bytes {
            return Err(Full);
        }
        // No slack for frame::append's inline copies is reserved: it would let a queue at its
        // limit double its buffer for 32 bytes. Near the end of the capacity it uses memcpy.
        if !tx.reserve(len, self.budget) {
            self.refused_budget += 1;
            return Err(Full);
        }
        let written = match payload {
            Payload::Frames(frames, outbound) => outbound.encode(frames, &mut tx.buf),
            Payload::Encoded(bytes) => {
                tx.buf.extend_from_slice(bytes);
                Ok(())
            }
        };
        if written.is_err() {
            // CURVE nonce exhausted (after 2^64 messages): nothing sane can follow.
            self.broken.push(id);
            return Err(Full);
        }
        queued.mark_dirty(id, self.dirty);
        self.delivered += 1;
        Ok(())
    }
}

impl Sink for ConnSink<'_> {
    #[inline]
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        self.conns.queue(&mut self.out, to, frames)
    }

    #[inline]
    fn deliver_fanout(&mut self, to: PeerId, fanout: &Fanout<'_>) -> Result<(), Full> {
        if !self.conns.verbatim(to) {
            return self.deliver(to, fanout.frames);
        }
        let wire = self.fanout.encode(fanout);
        self.conns.queue_encoded(&mut self.out, to, wire)
    }

    #[inline]
    fn is_stalled(&self, to: PeerId) -> bool {
        self.conns.is_stalled(to)
    }
}
