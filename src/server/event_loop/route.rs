//! Routing one held message: the sender is checked out of its slot, the router reads its
//! message with the counters and a [`ConnSink`](super::sink::ConnSink) over every connection
//! (the sender's own queue included, for the replies), and the sender is checked back in.
//! Nothing is copied: the frames are read where the session parsed them, and written once, into
//! each destination's transmit queue.

use super::sink::Sender;
use super::*;

impl Server {
    /// Route the message `id`'s session holds. `on_full`: what the router does when a
    /// recipient's queue is full (pause the sender, or answer error 11 after a stall).
    pub(super) fn route(&mut self, id: SlotId, on_full: OnFull) -> Outcome {
        let Some(mut conn) = self.slots.check_out(id) else { return Outcome::Done };
        let stalled = conn.is_stalled();
        let (outcome, totals) = {
            let (msg, delivery) = conn.route_view();
            let sender = Sender { id, delivery, stalled };
            let (router, stats, mut sink) = self.routing(Some(sender));
            let outcome = router.handle(stats, PeerId(id.index), msg, &mut sink, on_full);
            (outcome, sink.totals())
        };
        self.slots.check_in(id, conn);
        self.fanout.trim();
        self.account(totals);
        outcome
    }
}
