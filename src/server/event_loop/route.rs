//! Routing one held message: the sender is checked out of its slot, the router reads its
//! message with the counters and a [`ConnSink`] over every connection (the sender's own queue
//! included, for the replies), and the sender is checked back in. Nothing is copied: the
//! frames are read where the session parsed them, and written once, into each destination's
//! transmit queue.

use super::sink::{Sender, conn_sink};
use super::*;

impl Server {
    /// Route the message `id`'s session holds. `on_full`: what the router does when a
    /// recipient's queue is full (pause the sender, or answer error 11 after a stall).
    pub(super) fn route(&mut self, id: SlotId, on_full: OnFull) -> Outcome {
        let Some(mut conn) = self.slots.check_out(id) else { return Outcome::Done };
        let stalled = conn.is_stalled();
        let (outcome, delivered, refused) = {
            let (msg, delivery) = conn.route_view();
            let sender = Sender { id, delivery, stalled };
            let mut sink = conn_sink!(self, Some(sender));
            let outcome = self.router.handle(&mut self.stats, PeerId(id.index), msg, &mut sink, on_full);
            let (delivered, refused) = sink.counts();
            (outcome, delivered, refused)
        };
        self.slots.check_in(id, conn);
        if !matches!(outcome, Outcome::Blocked(_)) {
            self.traffic.count_in(id.index); // once per message: a blocked one is routed again
        }
        self.fanout.trim();
        self.close_broken();
        self.stats.msgs_out += delivered;
        if refused > 0 && stats::bump_and_should_log(&mut self.stats.dropped_budget) {
            log::warn!("buffer budget exhausted: a transmit queue could not grow");
        }
        outcome
    }
}
