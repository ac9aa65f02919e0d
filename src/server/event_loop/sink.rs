//! The router's [`Sink`]: messages appended to the destination connections' transmit queues,
//! all or nothing, within the per-connection queue limit and the process buffer budget.
//!
//! The sender of the message being routed is checked out of the slot table while the router
//! reads its message; messages to it (the router's replies) go to its own side of the delivery,
//! lent along with the message ([`Conn::route_view`]). A pubsub fan-out is encoded once per
//! [`Fanout`] into the server's shared transmit pool ([`SharedPool`]) and every recipient that
//! takes frames verbatim (NULL, PLAIN) queues a reference to it, written with `writev`; when the
//! pool or the recipient's references are full it is copied instead, from the pool or from the
//! [`FanoutCache`] (`fanout_copied`). The others encode it themselves (CURVE seals per
//! connection). Messages for a link
//! to a remote platform ([`Sink::deliver_link`]) go to the connection dialled for it, under the
//! same queue limit: a full link refuses and the router drops and counts (it never pauses a local
//! sender behind a remote).
//!
//! Admission (`tx-queue-bytes`, README "Limits"): a message is queued when it fits under the
//! limit, or — a message too large to fit — when the queue is at most half full
//! ([`TxBuf::admits`]). A refusal records its cause ([`Sink::refusal`]) and, for the buffer
//! budget, the growth it needed ([`ConnSink::budget_wait`]: the sender waits for it).
//!
//! `peerlist add/drop` broadcasts are not written here but pushed into the server's ring
//! ([`super::broadcast`]); every message queued to a peer is preceded by the entries that peer
//! has not received yet ([`ConnSink::catch_up`]): if they do not all fit, the message does not
//! go either.

use super::broadcast::Broadcasts;
use super::links::LinkConns;
use super::*;
use crate::server::conn::shared::{SharedPool, SharedRef};
use crate::server::conn::{Delivery, Queued, TxBuf};
use crate::server::protocol::Outbound;
use crate::vip::links::LinkId;
use crate::vip::pubsub::SCRATCH_KEEP_BYTES;
use crate::vip::router::{Fanout, Full, Refusal, Sink};
use crate::zmtp::traffic::{encode_verbatim, verbatim_len, write_verbatim};

/// A [`ConnSink`] over `$server`'s connections and no checked-out sender (`None`) or one
/// (`Some(Sender)`). The server's fields are borrowed one by one, so that its router and its
/// counters stay free to lend alongside.
macro_rules! conn_sink {
    ($server:ident, $sender:expr) => {
        $crate::server::event_loop::sink::ConnSink::new(
            &mut $server.slots,
            &mut $server.sched,
            &mut $server.budget,
            &mut $server.fanout,
            &mut $server.shared,
            &mut $server.broadcasts,
            &mut $server.traffic,
            &$server.limits,
            &$server.links,
            $server.bridge.slot,
            $sender,
        )
    };
}
pub(super) use conn_sink;

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

/// What to append: frames the connection encodes itself, an encoding made once (copied), or a
/// range of the shared pool (referred to).
enum Payload<'p, 'e> {
    Frames(&'p [&'p [u8]], &'p mut Outbound<'e>),
    Encoded(&'p [u8]),
    Shared(&'p SharedRef),
}

/// The checked-out sender's own side of a delivery.
pub(super) struct Sender<'a> {
    pub(super) id: SlotId,
    pub(super) delivery: Option<Delivery<'a>>,
    pub(super) stalled: bool,
}

/// Where deliveries land: the slot table, the checked-out sender, the links' connections, the
/// RabbitMQ bridge's connection.
struct Conns<'a> {
    slots: &'a mut Slots,
    sender: Option<Sender<'a>>,
    links: &'a LinkConns,
    bus: Option<SlotId>,
}

/// The accounting of deliveries.
struct Out<'a> {
    dirty: &'a mut Vec<SlotId>,
    broken: &'a mut Vec<SlotId>,
    budget: &'a mut Budget,
    traffic: &'a mut PeerTraffic,
    tx_queue_bytes: usize,
    delivered: u64,
    refused_budget: u64,
    /// Verbatim fan-out deliveries queued by reference, and copied (`fanout_shared`,
    /// `fanout_copied`).
    shared: u64,
    copied: u64,
    /// Why the last refused delivery was refused, and for the budget, the growth it needed.
    last_refusal: Refusal,
    budget_wait: usize,
}

/// What a [`ConnSink`] did: messages queued, transmit-queue growths the budget refused,
/// broadcast entries lost for members that lagged past the ring.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SinkTotals {
    delivered: u64,
    refused_budget: u64,
    shared: u64,
    copied: u64,
    lost_notifications: u64,
}

impl Server {
    /// The router, the counters and a [`ConnSink`] over every connection (with the checked-out
    /// `sender`, if a message is being routed), borrowed at once.
    pub(super) fn routing<'a>(
        &'a mut self,
        sender: Option<Sender<'a>>,
    ) -> (&'a mut Router, &'a mut Stats, ConnSink<'a>) {
        let sink = conn_sink!(self, sender);
        (&mut self.router, &mut self.stats, sink)
    }

    /// Account what a sink did: close the connections whose transmit side failed, count the
    /// messages out, the budget refusals and the lost notifications (logged rate-limited).
    #[inline(always)]
    pub(super) fn account(&mut self, t: SinkTotals) {
        self.stats.msgs_out += t.delivered;
        self.stats.fanout_shared += t.shared;
        self.stats.fanout_copied += t.copied;
        if t.refused_budget > 0 || t.lost_notifications > 0 || !self.sched.broken.is_empty() {
            self.account_trouble(t);
        }
    }

    /// The rest of [`Server::account`], when anything went wrong.
    #[inline(never)]
    fn account_trouble(&mut self, t: SinkTotals) {
        self.close_broken();
        if t.refused_budget > 0 && stats::bump_and_should_log(&mut self.stats.dropped_budget) {
            log::warn!("buffer budget exhausted: a transmit queue could not grow");
        }
        for _ in 0..t.lost_notifications {
            if stats::bump_and_should_log(&mut self.stats.dropped_notify_full) {
                log::warn!("peerlist notifications dropped: a peer did not read them before the ring wrapped");
            }
        }
    }
}

/// The [`Sink`] the router writes into: the destination connections' transmit queues, and the
/// ring of deferred broadcasts.
pub(super) struct ConnSink<'a> {
    conns: Conns<'a>,
    out: Out<'a>,
    fanout: &'a mut FanoutCache,
    shared: &'a mut SharedPool,
    pub(super) broadcasts: &'a mut Broadcasts,
    /// Broadcast entries lost for members that lagged past the ring (`dropped_notify_full`).
    pub(super) lost_notifications: u64,
}

impl<'a> ConnSink<'a> {
    /// Built by [`conn_sink!`] from the server's fields, borrowed one by one (a struct of them
    /// would borrow the whole server and leave no router or counters to lend alongside).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn new(
        slots: &'a mut Slots,
        sched: &'a mut Sched,
        budget: &'a mut Budget,
        fanout: &'a mut FanoutCache,
        shared: &'a mut SharedPool,
        broadcasts: &'a mut Broadcasts,
        traffic: &'a mut PeerTraffic,
        limits: &Limits,
        links: &'a LinkConns,
        bus: Option<SlotId>,
        sender: Option<Sender<'a>>,
    ) -> Self {
        ConnSink {
            conns: Conns { slots, sender, links, bus },
            out: Out {
                dirty: &mut sched.dirty,
                broken: &mut sched.broken,
                budget,
                traffic,
                tx_queue_bytes: limits.tx_queue_bytes,
                delivered: 0,
                refused_budget: 0,
                shared: 0,
                copied: 0,
                last_refusal: Refusal::QueueFull,
                budget_wait: 0,
            },
            fanout,
            shared,
            broadcasts,
            lost_notifications: 0,
        }
    }

    /// What it did, for [`Server::account`] once the sink is dropped.
    #[inline]
    pub(super) fn totals(&self) -> SinkTotals {
        SinkTotals {
            delivered: self.out.delivered,
            refused_budget: self.out.refused_budget,
            shared: self.out.shared,
            copied: self.out.copied,
            lost_notifications: self.lost_notifications,
        }
    }

    /// The growth the buffer budget refused to the last refused delivery, if that was the
    /// cause: its sender waits until that much fits (`Blocked::QueueBudget`) instead of
    /// retrying at once.
    #[inline]
    pub(super) fn budget_wait(&self) -> Option<usize> {
        (self.out.last_refusal == Refusal::Budget).then_some(self.out.budget_wait)
    }

    /// Is `to` a live connection (the sender of the message being routed included)?
    pub(super) fn is_connected(&self, to: PeerId) -> bool {
        self.conns.sender.as_ref().is_some_and(|s| s.id.index == to.0) || self.conns.slots.id_of(to.0).is_some()
    }

    /// Write every broadcast entry `to` has not received yet into its queue, in order. Fails,
    /// leaving the rest for later, when its queue does not admit the next one.
    #[inline]
    fn catch_up(&mut self, to: PeerId) -> Result<(), Full> {
        if !self.broadcasts.is_behind(to.0) {
            return Ok(());
        }
        match self.catch_up_at_most(to, usize::MAX) {
            (_, true) => Err(Full),
            (_, false) => Ok(()),
        }
    }

    /// The shared pool had no room for `fanout`: copy its verbatim encoding to `to`.
    #[cold]
    fn copy_fanout(&mut self, to: PeerId, fanout: &Fanout<'_>) -> Result<(), Full> {
        let wire = self.fanout.encode(fanout);
        let r = self.conns.queue_encoded(&mut self.out, to, Payload::Encoded(wire));
        self.out.copied += u64::from(r.is_ok());
        r
    }

    /// As [`ConnSink::catch_up`], at most `max` entries: how many were written, and whether
    /// its queue refused the next one. Out of line: the per-message path only checks
    /// [`Broadcasts::is_behind`].
    #[inline(never)]
    pub(super) fn catch_up_at_most(&mut self, to: PeerId, max: usize) -> (usize, bool) {
        let mut written = 0;
        while written < max {
            self.lost_notifications += self.broadcasts.skip_lost(to.0);
            let Some(seq) = self.broadcasts.pending(to.0) else { break };
            {
                let mut frames = heapless::Vec::new();
                if !self.broadcasts.get(seq, &mut frames) {
                    self.lost_notifications += 1;
                } else if self.conns.queue(&mut self.out, to, &frames).is_err() {
                    return (written, true);
                } else {
                    written += 1;
                }
            }
            self.broadcasts.advance(to.0, seq);
        }
        (written, false)
    }
}

impl Conns<'_> {
    /// Queue `frames` to `to`, all or nothing, encoded by its own encoder.
    #[inline]
    fn queue(&mut self, out: &mut Out<'_>, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        if let Some(s) = self.sender.as_mut().filter(|s| s.id.index == to.0) {
            let d = s.delivery.as_mut().ok_or_else(|| out.gone())?;
            return out.put(s.id, d.tx, d.queued, Payload::Frames(frames, &mut d.outbound));
        }
        let id = self.slots.id_of(to.0).ok_or_else(|| out.gone())?;
        let d = self.slots.get_mut(id).and_then(Conn::delivery).ok_or_else(|| out.gone())?;
        let Delivery { tx, mut outbound, queued } = d;
        out.put(id, tx, queued, Payload::Frames(frames, &mut outbound))
    }

    /// Queue `frames` on the connection of `link` (never the checked-out sender: a link's
    /// messages are not routed), all or nothing.
    #[inline]
    fn queue_link(&mut self, out: &mut Out<'_>, link: LinkId, frames: &[&[u8]]) -> Result<(), Full> {
        let id = self.links.slot(link).ok_or_else(|| out.gone())?;
        let d = self.slots.get_mut(id).and_then(Conn::delivery).ok_or_else(|| out.gone())?;
        let Delivery { tx, mut outbound, queued } = d;
        out.put(id, tx, queued, Payload::Frames(frames, &mut outbound))
    }

    /// Queue a verbatim encoding (`Payload::Encoded` or `Payload::Shared`) to `to` (which
    /// [`Conns::verbatim`] said takes it).
    #[inline]
    fn queue_encoded(&mut self, out: &mut Out<'_>, to: PeerId, wire: Payload<'_, '_>) -> Result<(), Full> {
        if let Some(s) = self.sender.as_mut().filter(|s| s.id.index == to.0) {
            let d = s.delivery.as_mut().ok_or_else(|| out.gone())?;
            return out.put(s.id, d.tx, d.queued, wire);
        }
        let id = self.slots.id_of(to.0).ok_or_else(|| out.gone())?;
        let (tx, queued) = self.slots.get_mut(id).map(Conn::queues).ok_or_else(|| out.gone())?;
        out.put(id, tx, queued, wire)
    }

    /// `to`'s slot and queues if it takes frames verbatim (one encoding serves it): the check of
    /// [`Conns::verbatim`] and the look-up of [`Conns::queue_encoded`] in one. `None` if it does
    /// not, or is gone.
    #[inline]
    fn verbatim_queues(&mut self, to: PeerId) -> Option<(SlotId, &mut TxBuf, &mut Queued)> {
        if let Some(s) = self.sender.as_mut().filter(|s| s.id.index == to.0) {
            let d = s.delivery.as_mut().filter(|d| d.outbound.verbatim())?;
            return Some((s.id, &mut *d.tx, &mut *d.queued));
        }
        let (id, conn) = self.slots.live_mut(to.0)?;
        if !conn.driver().frames_verbatim() {
            return None;
        }
        let (tx, queued) = conn.queues();
        Some((id, tx, queued))
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
    /// A refusal for want of room in the queue (or of the peer itself). Every refusal path
    /// records its cause, so that the per-message path stores nothing when all is well.
    #[cold]
    fn gone(&mut self) -> Full {
        self.last_refusal = Refusal::QueueFull;
        Full
    }

    /// Append `payload` to `tx` if it fits the queue limit and the budget.
    #[inline]
    fn put(&mut self, id: SlotId, tx: &mut TxBuf, queued: &mut Queued, payload: Payload<'_, '_>) -> Result<(), Full> {
        let len = match &payload {
            Payload::Frames(frames, outbound) => outbound.encoded_len(frames),
            Payload::Encoded(bytes) => bytes.len(),
            Payload::Shared(r) => return self.put_shared(id, tx, queued, r),
        };
        if !tx.admits(len, self.tx_queue_bytes) {
            return Err(self.gone());
        }
        // No slack for frame::append's inline copies is reserved: it would let a queue at its
        // limit double its buffer for 32 bytes. Near the end of the capacity it uses memcpy.
        if let Err(growth) = tx.reserve(len, self.budget) {
            self.refused_budget += 1;
            self.last_refusal = Refusal::Budget;
            self.budget_wait = growth;
            return Err(Full);
        }
        let written = match payload {
            Payload::Frames(frames, outbound) => outbound.encode_sized(frames, len, &mut tx.buf),
            Payload::Encoded(bytes) => {
                tx.buf.extend_from_slice(bytes);
                Ok(())
            }
            Payload::Shared(_) => Ok(()),
        };
        if written.is_err() {
            // CURVE nonce exhausted (after 2^64 messages): nothing sane can follow.
            self.broken.push(id);
            return Err(self.gone());
        }
        self.queued(id, queued);
        Ok(())
    }

    /// [`put`](Self::put) of a shared range: the fan-out's per-subscriber step, kept apart so
    /// that it pays none of the encoding path's set-up (measured: `tests/bench/instr.sh`).
    #[inline(always)]
    fn put_shared(&mut self, id: SlotId, tx: &mut TxBuf, queued: &mut Queued, r: &SharedRef) -> Result<(), Full> {
        if !tx.admits(r.len(), self.tx_queue_bytes) {
            return Err(self.gone());
        }
        if tx.push_shared(r) {
            self.shared += 1;
            self.queued(id, queued);
            return Ok(());
        }
        self.copy_shared(id, tx, queued, r)
    }

    /// A message was queued to `id`.
    #[inline]
    fn queued(&mut self, id: SlotId, queued: &mut Queued) {
        queued.mark_dirty(id, self.dirty);
        self.delivered += 1;
        self.traffic.count_out(id.index);
    }

    /// The recipient holds `TX_SHARED_REFS` references already: copy the range instead.
    #[cold]
    fn copy_shared(&mut self, id: SlotId, tx: &mut TxBuf, queued: &mut Queued, r: &SharedRef) -> Result<(), Full> {
        if let Err(growth) = tx.reserve(r.len(), self.budget) {
            self.refused_budget += 1;
            self.last_refusal = Refusal::Budget;
            self.budget_wait = growth;
            return Err(Full);
        }
        if !r.copy_into(&mut tx.buf) {
            return Err(self.gone());
        }
        self.copied += 1;
        self.queued(id, queued);
        Ok(())
    }
}

impl Sink for ConnSink<'_> {
    #[inline]
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        self.catch_up(to)?;
        self.conns.queue(&mut self.out, to, frames)
    }

    #[inline]
    fn deliver_encoded(&mut self, to: PeerId, frames: &[&[u8]], encoded: &[u8]) -> Result<(), Full> {
        debug_assert_eq!(encoded.len(), verbatim_len(frames));
        self.catch_up(to)?;
        match self.conns.verbatim_queues(to) {
            Some((id, tx, queued)) => self.out.put(id, tx, queued, Payload::Encoded(encoded)),
            None => self.conns.queue(&mut self.out, to, frames),
        }
    }

    #[inline]
    fn deliver_fanout(&mut self, to: PeerId, fanout: &Fanout<'_>) -> Result<(), Full> {
        // The common case, every subscriber after the first: the range is encoded, `to` has no
        // broadcast to catch up on and takes it verbatim. One look-up of its slot.
        if !self.broadcasts.is_behind(to.0)
            && let Some(r) = self.shared.cached(fanout.id())
            && let Some((id, tx, queued)) = self.conns.verbatim_queues(to)
        {
            return self.out.put_shared(id, tx, queued, r);
        }
        if !self.conns.verbatim(to) {
            return self.deliver(to, fanout.frames);
        }
        self.catch_up(to)?;
        // Caught up now: the range already encoded serves it, with no length to sum.
        if let Some(r) = self.shared.cached(fanout.id()) {
            return self.conns.queue_encoded(&mut self.out, to, Payload::Shared(r));
        }
        let len = verbatim_len(fanout.frames);
        let frames = fanout.frames;
        match self.shared.encode(fanout.id(), len, self.out.budget, |room| write_verbatim(frames, room)) {
            Some(r) => self.conns.queue_encoded(&mut self.out, to, Payload::Shared(r)),
            None => self.copy_fanout(to, fanout),
        }
    }

    #[inline]
    fn is_stalled(&self, to: PeerId) -> bool {
        self.conns.is_stalled(to)
    }

    #[inline]
    fn deliver_link(&mut self, link: LinkId, frames: &[&[u8]]) -> Result<(), Full> {
        self.conns.queue_link(&mut self.out, link, frames)
    }

    #[inline]
    fn bus(&mut self) -> Option<&mut dyn crate::vip::bridge::Bus> {
        let id = self.conns.bus?;
        let conn = self.conns.slots.get_mut(id)?;
        conn.queued().mark_dirty(id, self.out.dirty);
        conn.bus()
    }

    fn refusal(&self) -> Refusal {
        self.out.last_refusal
    }

    fn broadcast(&mut self, frames: &[&[u8]], members: &mut dyn Iterator<Item = PeerId>) -> u64 {
        if self.broadcasts.push(frames) {
            return 0;
        }
        // Too large for a ring entry: write it to each member now, after what it has pending.
        members.map(|p| u64::from(self.deliver(p, frames).is_err())).sum()
    }

    fn joined(&mut self, peer: PeerId) {
        self.broadcasts.join(peer.0);
    }

    fn leaving(&mut self, peer: PeerId) {
        // What was broadcast while it was a member reaches it first (best effort: what its full
        // queue cannot take now is lost, as a notification to a full queue always was).
        if self.is_connected(peer) {
            while self.catch_up(peer).is_err() && self.broadcasts.give_up_one(peer.0) {
                self.lost_notifications += 1;
            }
        }
        self.broadcasts.leave(peer.0);
    }

    fn traffic(&self) -> Option<&PeerTraffic> {
        Some(self.out.traffic)
    }
}
