//! Output and housekeeping: flush transmit queues (the dirty list), finish dialled connects,
//! resume blocked connections and expire stalls, the tick (connect and handshake deadlines),
//! idle-buffer shrinking, closing connections.
//!
//! The back-pressure rule, in one place (`resume_blocked`): a sender blocked behind a full
//! recipient is read again once that queue drains below half; if it does not within
//! `send-stall-ms`, the recipient is marked stalled (messages to it are answered with error 11
//! at once until it drains below half, see `flush`) and the sender's held message is answered
//! with error 11 ([`Blocked::StallExpired`]). A sender whose message a queue could not take
//! because the buffer budget could not grow it waits until that growth fits, with the same stall
//! time and error 11 ([`Blocked::QueueBudget`]). A sender blocked behind its own queue only waits.
//!
//! Bytes still queued to a connection when it closes, or when the router stops, are accepted
//! messages that were lost: counted in `lost_queued_bytes`.

use super::sink::conn_sink;
use super::*;

impl Server {
    /// Queue the admission reports the policy holds to `platform.auth` (`server::auth_report`).
    fn deliver_auth_reports(&mut self) {
        let Some(reports) = self.hooks.policy.reports() else { return };
        let mut sink = conn_sink!(self, None);
        let _ = reports.deliver(&self.router.peers, &mut self.stats, &mut sink);
        let totals = sink.totals();
        self.account(totals);
    }

    pub(super) fn close_broken(&mut self) {
        while let Some(b) = self.sched.broken.pop() {
            self.close(b, CloseReason::TransmitFailure);
        }
    }

    /// A writable event: finish a dialled connect, else flush.
    pub(super) fn on_writable(&mut self, id: SlotId, now: Instant) {
        let Some(conn) = self.slots.get_mut(id) else { return };
        if !matches!(conn.phase(), Phase::Connecting { .. }) {
            self.flush(id);
            return;
        }
        let mut rng = rand_core::OsRng;
        let mut cx = Context {
            session: SessionConfig { identity: &self.router_id, limits: &self.limits, curve: self.curve.as_ref() },
            rng: &mut rng,
            now: self.now,
            stats: &mut self.stats,
        };
        let cap = conn.tx().capacity();
        let connected = conn.finish_connect(&mut cx, now);
        self.budget.charge(conn.tx().capacity().saturating_sub(cap));
        match connected {
            Ok(false) => {}
            Ok(true) => {
                log::debug!("connected to {}", conn.label());
                self.slots.set_phase(id, Phase::Handshaking { since: now });
                self.flush(id);
            }
            Err(reason) => self.close(id, reason),
        }
    }

    pub(super) fn flush(&mut self, id: SlotId) {
        let Some(conn) = self.slots.get_mut(id) else { return };
        conn.queued().clear_dirty();
        // A protocol with its own transmit buffer (the RabbitMQ bridge) gives its output a
        // chunk at a time: take more as long as the socket takes it.
        let own_output = matches!(conn.driver(), crate::server::protocol::Driver::Other(_));
        loop {
            if own_output && let Err(reason) = conn.take_output(self.now, &mut self.budget) {
                self.close(id, reason);
                return;
            }
            let before = conn.tx().pending();
            match conn.flush() {
                Ok(n) => {
                    self.stats.bytes_out += n as u64;
                    if n > 0 {
                        conn.touch(self.now);
                    }
                }
                Err(e) => {
                    log::debug!("write to {}: {e}", conn.label());
                    self.close(id, CloseReason::WriteError);
                    return;
                }
            }
            if !own_output || before == 0 || conn.tx().pending() > 0 {
                break;
            }
        }
        if conn.is_stalled() && conn.tx().pending() <= self.limits.tx_queue_bytes / 2 {
            conn.set_stalled(false);
            log::info!("peer at {} drains its queue again", conn.label());
        }
        if let Err(e) = conn.update_interest(self.poll.registry(), id.token()) {
            log::warn!("reregister {}: {e}", conn.label());
            self.close(id, CloseReason::RegisterFailed);
        }
    }

    pub(super) fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.sched.dirty);
        for &id in &dirty {
            self.flush(id);
        }
        let mut dirty = dirty;
        dirty.clear();
        // Flushing can close connections, which can queue `peerlist drop`s: keep those.
        let more = std::mem::replace(&mut self.sched.dirty, dirty);
        for id in more {
            self.flush(id);
        }
    }

    /// At exit: one last flush of every queue; what does not go out is counted as lost.
    pub(super) fn flush_all(&mut self) {
        let ids: Vec<SlotId> = self.slots.ids().collect();
        for id in ids {
            self.flush(id);
            if let Some(c) = self.slots.get_mut(id) {
                self.stats.lost_queued_bytes += c.tx().pending() as u64;
            }
        }
    }

    /// Resume blocked connections whose reason went away; expire stalls (the module doc).
    pub(super) fn resume_blocked(&mut self, now: Instant) {
        let mut i = 0;
        while let Some(&id) = self.sched.blocked.get(i) {
            let resume = match self.slots.get_mut(id).and_then(|c| c.blocked()) {
                None | Some(Blocked::StallExpired) => {
                    self.sched.blocked.swap_remove(i);
                    continue;
                }
                Some(Blocked::Budget { extra }) => {
                    self.budget.used().saturating_add(extra) <= self.limits.buffer_budget_bytes
                }
                Some(Blocked::OwnQueue) => self.drained(id),
                Some(Blocked::Recipient { on, since }) => self.recipient_ready(id, on, since, now),
                Some(Blocked::QueueBudget { extra, since }) => self.budget_ready(id, extra, since, now),
            };
            if resume {
                self.sched.blocked.swap_remove(i);
                if let Some(c) = self.slots.get_mut(id) {
                    if c.blocked() != Some(Blocked::StallExpired) {
                        c.set_blocked(None);
                    }
                    c.queued().queue_ready(id, &mut self.sched.ready);
                }
            } else {
                i += 1;
            }
        }
    }

    /// `id`'s queue (or a closed one) is below half the limit.
    fn drained(&mut self, id: SlotId) -> bool {
        self.slots.get_mut(id).is_none_or(|c| c.tx().pending() <= self.limits.tx_queue_bytes / 2)
    }

    /// May `id`, blocked since `since` behind `on`, try again? Yes once `on` drained; after
    /// `send-stall-ms` (or at once if `on` is already stalled) `on` is marked stalled and `id`
    /// tries again with error 11 ([`Blocked::StallExpired`]).
    fn recipient_ready(&mut self, id: SlotId, on: SlotId, since: Instant, now: Instant) -> bool {
        if self.drained(on) {
            return true;
        }
        let stalled = self.slots.get_mut(on).is_some_and(|c| c.is_stalled());
        if !stalled && now.since(since) < self.limits.send_stall_ms {
            return false;
        }
        // The recipient is stuck: this message, and every later one to it until it drains, is
        // answered with error 11 (VIP.md §4 step 7).
        if let Some(c) = self.slots.get_mut(on)
            && !c.is_stalled()
        {
            c.set_stalled(true);
            log::warn!(
                "peer at {} has not drained its queue for {} ms: answering error 11 to its senders",
                c.label(),
                self.limits.send_stall_ms
            );
        }
        if let Some(c) = self.slots.get_mut(id) {
            c.set_blocked(Some(Blocked::StallExpired));
        }
        true
    }

    /// May `id`, blocked since `since` because a queue could not grow by `extra` bytes, try
    /// again? Yes once they fit the budget; after `send-stall-ms` it tries again with error 11
    /// ([`Blocked::StallExpired`]), without marking the recipient stalled.
    fn budget_ready(&mut self, id: SlotId, extra: usize, since: Instant, now: Instant) -> bool {
        if self.budget.used().saturating_add(extra) <= self.limits.buffer_budget_bytes {
            return true;
        }
        if now.since(since) < self.limits.send_stall_ms {
            return false;
        }
        if let Some(c) = self.slots.get_mut(id) {
            log::debug!("{}: no buffer budget for its message within the stall time: error 11", c.label());
            c.set_blocked(Some(Blocked::StallExpired));
        }
        true
    }

    pub(super) fn tick(&mut self, now: Instant) {
        if let Some(f) = self.hooks.on_tick.as_mut() {
            f(now);
        }
        if let Some(c) = self.curve.as_mut() {
            c.cookies.rotate_if_due(now.0, &mut rand_core::OsRng);
        }
        // Shrink first: the gauge then shows what was given back.
        self.shrink_idle(now);
        self.sync_stats();
        self.deliver_auth_reports();
        if self.accept_retry != 0 {
            self.retry_accepts(now);
        }
        self.expire_handshakes(now);
        self.bridge_timers(now);
    }

    /// Close connections whose connect or handshake did not finish in time.
    fn expire_handshakes(&mut self, now: Instant) {
        let ms = self.limits.handshake_timeout_ms;
        let expired: Vec<SlotId> = self
            .slots
            .ids()
            .filter(|id| {
                let started = self.slots.peek(id.index).and_then(|c| c.phase().started());
                started.is_some_and(|t| now.since(t) >= ms)
            })
            .collect();
        for id in expired {
            self.close(id, CloseReason::HandshakeTimeout { ms });
        }
    }

    /// Once a second, give idle connections' grown buffers and the shared pool's idle chunks
    /// back (`IDLE_SHRINK_MS`).
    pub(super) fn shrink_idle(&mut self, now: Instant) {
        if now.0 / 1000 == self.last_shrink.0 / 1000 {
            return;
        }
        self.last_shrink = now;
        let mut freed = 0;
        for index in 0..u16::try_from(self.limits.max_connections).unwrap_or(u16::MAX) {
            if let Some(c) = self.slots.by_index(index)
                && c.phase().is_open()
                && c.blocked().is_none()
            {
                freed += c.shrink_if_idle(now);
            }
        }
        freed += self.shared.release_idle(now);
        self.budget.give(freed);
    }

    /// Close connection `id`: send what is queued if the reason asks for it, deregister, count
    /// and log the reason, leave the peer set (notifying the others), return its buffers to the
    /// budget, free the slot.
    pub(super) fn close(&mut self, id: SlotId, reason: CloseReason) {
        let Some(mut conn) = self.slots.remove(id) else { return };
        self.broadcasts.leave(id.index);
        self.stats.connections = self.slots.live() as u64;
        if reason.flush_first()
            && let Ok(n) = conn.flush()
        {
            self.stats.bytes_out += n as u64;
        }
        self.stats.lost_queued_bytes += conn.tx().pending() as u64;
        conn.deregister(self.poll.registry());
        self.budget.give(conn.buffer_bytes());
        if matches!(conn.origin(), super::super::conn::Origin::Broker) {
            // The bridge counts and logs its ups and downs; no rejected_* counter.
            let phase = conn.phase();
            self.on_bridge_closed(id, &mut conn, reason, phase);
            return;
        }
        if let Some(link) = conn.link() {
            // The link table counts and logs the link's ups and downs; no rejected_* counter.
            self.stats.closed += 1;
            log::debug!("closed link connection to {} ({reason})", conn.label());
            self.on_link_closed(id, link, reason, conn.phase());
            return;
        }
        if reason.count(&mut self.stats) {
            log::warn!("closing {}: {reason}", conn.label());
        } else {
            log::debug!("closed {} ({reason})", conn.label());
        }
        if matches!(conn.origin(), super::super::conn::Origin::Dialled) {
            self.dial_events.push(DialEvent::Closed(id, reason));
        }
        if conn.phase() == Phase::Attached {
            let mut sink = conn_sink!(self, None);
            self.router.detach(&mut self.stats, PeerId(id.index), &mut sink);
            let totals = sink.totals();
            self.account(totals);
        }
        self.traffic.reset(id.index);
    }
}
