//! Routing one held message: the sender is checked out of its slot, the router reads its
//! message with the counters and a [`ConnSink`] over every connection (the sender's own queue
//! included, for the replies), and the sender is checked back in. Nothing is copied: the
//! frames are read where the session parsed them, and written once, into each destination's
//! transmit queue.

use super::sink::{ConnSink, Sender};
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
            let mut sink = ConnSink::new(
                &mut self.slots,
                &mut self.sched,
                &mut self.budget,
                &mut self.fanout,
                &self.limits,
                Some(sender),
            );
            let outcome = self.router.handle(&mut self.stats, PeerId(id.index), msg, &mut sink, on_full);
            let (delivered, refused) = sink.counts();
            (outcome, delivered, refused)
        };
        self.slots.check_in(id, conn);
        self.fanout.trim();
        self.close_broken();
        self.stats.msgs_out += delivered;
        if refused > 0 && stats::bump_and_should_log(&mut self.stats.dropped_budget) {
            log::warn!("buffer budget exhausted: a transmit queue could not grow");
        }
        outcome
    }
}
