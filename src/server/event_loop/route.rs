//! Routing one held message: the sender is checked out of its slot, the router reads its
//! message with the counters and a [`ConnSink`](super::sink::ConnSink) over every connection
//! (the sender's own queue included, for the replies), and the sender is checked back in.
//! Nothing is copied: the frames are read where the session parsed them, and written once, into
//! each destination's transmit queue.

use super::sink::{Sender, conn_sink};
use super::*;

impl Server {
    /// Route the message `id`'s session holds. `on_full`: what the router does when a
    /// recipient's queue is full (pause the sender, or answer error 11 after a stall). Also
    /// returns, when the last refused delivery was refused by the buffer budget (not by a full
    /// queue), the growth it needed: a blocked sender then waits for the budget.
    pub(super) fn route(&mut self, id: SlotId, on_full: OnFull) -> (Outcome, Option<usize>) {
        let Some(mut conn) = self.slots.check_out(id) else { return (Outcome::Done, None) };
        let stalled = conn.is_stalled();
        let (outcome, budget_wait, totals) = {
            let (msg, delivery) = conn.route_view();
            let sender = Sender { id, delivery, stalled };
            // Built in place (not through `Server::routing`, whose returned tuple costs the
            // per-message path a copy of the sink).
            let mut sink = conn_sink!(self, Some(sender));
            let outcome = self.router.handle(&mut self.stats, PeerId(id.index), msg, &mut sink, on_full);
            (outcome, sink.budget_wait(), sink.totals())
        };
        self.slots.check_in(id, conn);
        if !matches!(outcome, Outcome::Blocked(_)) {
            self.traffic.count_in(id.index); // once per message: a blocked one is routed again
        }
        self.fanout.trim();
        self.account(totals);
        (outcome, budget_wait)
    }
}
