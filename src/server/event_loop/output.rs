//! Output and housekeeping: flush transmit queues (the dirty list), resume paused senders and
//! expire stalls, the tick (handshake deadlines), idle-buffer shrinking, closing connections.

use super::*;

impl Server {
    /// Queue the waiting admission reports to `platform.auth` (`server::auth_report`).
    fn deliver_auth_reports(&mut self) {
        let Some(reports) = self.auth_reports.clone() else { return };
        let mut sink =
            ConnSink::new(&mut self.slots, &mut self.dirty, &mut self.broken, &mut self.budget, &self.limits);
        let _ = reports.borrow_mut().deliver(&mut self.router, &mut sink);
        self.router.stats.msgs_out += sink.delivered;
        self.close_broken();
    }

    pub(super) fn close_broken(&mut self) {
        while let Some(b) = self.broken.pop() {
            self.close(b, "transmit failure");
        }
    }

    pub(super) fn flush(&mut self, id: SlotId) {
        let Some(conn) = self.slots.get_mut(id) else { return };
        conn.dirty = false;
        match conn.flush() {
            Ok(n) => {
                self.router.stats.bytes_out += n as u64;
                if n > 0 {
                    conn.last_active = self.turn_now;
                }
            }
            Err(e) => {
                log::debug!("write to {}: {e}", conn.peer);
                self.close(id, "write error");
                return;
            }
        }
        let Some(conn) = self.slots.get_mut(id) else { return };
        if conn.stalled && conn.tx.pending() <= self.limits.tx_queue_bytes / 2 {
            conn.stalled = false;
            log::info!("peer at {} drains its queue again", conn.peer);
        }
        let want = conn.tx.pending() > 0;
        if want != conn.want_write {
            conn.want_write = want;
            let interest = if want { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            if let Err(e) = conn.stream.reregister(self.poll.registry(), id.token(), interest) {
                log::warn!("reregister {}: {e}", conn.peer);
                self.close(id, "reregister failed");
            }
        }
    }

    pub(super) fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &id in &dirty {
            self.flush(id);
        }
        let mut dirty = dirty;
        dirty.clear();
        // Flushing can close connections, which can queue `peerlist drop`s: keep those.
        let more = std::mem::replace(&mut self.dirty, dirty);
        for id in more {
            self.flush(id);
        }
    }

    pub(super) fn flush_all(&mut self) {
        let ids: Vec<SlotId> = self.slots.ids().collect();
        for id in ids {
            self.flush(id);
        }
    }

    /// Resume paused connections whose reason went away; expire stalls.
    pub(super) fn resume_paused(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.paused.len() {
            let id = self.paused.get(i).copied().unwrap_or(SlotId { index: 0, generation: 0 });
            let resume = match self.slots.get_mut(id).and_then(|c| c.paused) {
                None => {
                    self.paused.swap_remove(i);
                    continue;
                }
                Some(Pause::Budget { extra }) => {
                    self.budget.used().saturating_add(extra) <= self.limits.buffer_budget_bytes
                }
                Some(Pause::Recipient { on, since }) => {
                    let half = self.limits.tx_queue_bytes / 2;
                    let (room, stalled) = match self.slots.peek(on) {
                        None => (true, false),
                        Some(c) => (c.tx.pending() <= half, c.stalled),
                    };
                    if room {
                        true
                    } else if on != id.index && (stalled || now.since(since) >= self.limits.send_stall_ms) {
                        // The recipient is stuck: this message, and every later one to it until
                        // it drains, is answered with error 11 (VIP.md §4 step 7).
                        if let Some(c) = self.slots.by_index(on)
                            && !c.stalled
                        {
                            c.stalled = true;
                            log::warn!(
                                "peer at {} has not drained its queue for {} ms: answering error 11 to its senders",
                                c.peer,
                                self.limits.send_stall_ms
                            );
                        }
                        if let Some(c) = self.slots.get_mut(id) {
                            c.stall_expired = true;
                        }
                        true
                    } else {
                        false
                    }
                }
            };
            if resume {
                let mut queue = false;
                if let Some(c) = self.slots.get_mut(id) {
                    c.paused = None;
                    queue = !c.in_ready;
                    c.in_ready = true;
                }
                self.paused.swap_remove(i);
                if queue {
                    self.ready.push(id);
                }
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn tick(&mut self, now: Instant) {
        if let Some(f) = self.on_tick.as_mut() {
            f(now);
        }
        if let Some(c) = self.curve.as_mut() {
            c.cookies.rotate_if_due(now.0, &mut rand_core::OsRng);
        }
        self.sync_stats();
        self.deliver_auth_reports();
        self.shrink_idle(now);
        if self.accept_retry != 0 {
            self.retry_accepts(now);
        }
        if self.handshaking == 0 {
            return;
        }
        let timeout = self.limits.handshake_timeout_ms;
        let expired: Vec<SlotId> = self
            .slots
            .ids()
            .filter(|id| {
                self.slots.peek(id.index).is_some_and(|c| !c.handshake_done && now.since(c.accepted_at) >= timeout)
            })
            .collect();
        for id in expired {
            if stats::bump(&mut self.router.stats.rejected_handshake_timeout) {
                log::warn!("handshake not completed within {timeout} ms: closing");
            }
            self.close(id, "handshake timeout");
        }
    }

    /// Once a second, give idle connections' grown buffers back (`IDLE_SHRINK_MS`).
    pub(super) fn shrink_idle(&mut self, now: Instant) {
        if now.0 / 1000 == self.last_shrink.0 / 1000 {
            return;
        }
        self.last_shrink = now;
        let mut freed = 0;
        for index in 0..u16::try_from(self.limits.max_connections).unwrap_or(u16::MAX) {
            if let Some(c) = self.slots.by_index(index)
                && c.handshake_done
                && c.paused.is_none()
                && c.pending_consumed == 0
            {
                freed += c.shrink_if_idle(now);
            }
        }
        self.budget.give(freed);
    }

    /// Close connection `id`: deregister, leave the peer set (notifying the others), return its
    /// buffers to the budget, free the slot.
    pub(super) fn close(&mut self, id: SlotId, why: &str) {
        let Some(mut conn) = self.slots.remove(id) else { return };
        conn.stream.deregister(self.poll.registry());
        self.budget.give(conn.buffer_bytes());
        if !conn.handshake_done {
            self.handshaking = self.handshaking.saturating_sub(1);
        }
        self.router.stats.closed += 1;
        if why == "closed by peer" || why == "read error" || why == "write error" {
            self.router.stats.closed_by_peer += 1;
        }
        log::debug!("closed {} ({why})", conn.peer);
        if conn.attached {
            let mut sink =
                ConnSink::new(&mut self.slots, &mut self.dirty, &mut self.broken, &mut self.budget, &self.limits);
            self.router.detach(PeerId(id.index), &mut sink);
            self.router.stats.msgs_out += sink.delivered;
            self.close_broken();
        }
    }
}
