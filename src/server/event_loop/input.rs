//! Input: read a connection within the read budget, feed its protocol, and act on each
//! [`Input`] in its own function — `on_need_more` (keep bytes, grow the buffer), `on_verify`
//! (the authorisation decision), `on_ready` (attach the peer), `on_message` (route the held
//! message, or drop a duplicate's).

use super::*;

impl Server {
    /// Read and process one connection (see the module doc).
    ///
    /// `trust_short_read`: a read that returned less than the free space means the socket is
    /// drained, so the final read that would only return `WouldBlock` is skipped (edge-triggered
    /// epoll reports every later arrival). Only for a readable event without hang-up; the ready
    /// list and hang-ups read until `WouldBlock`.
    pub(super) fn service(&mut self, id: SlotId, now: Instant, trust_short_read: bool) {
        if self.slots.get_mut(id).is_some_and(|c| matches!(c.phase(), Phase::Connecting { .. })) {
            // A hang-up before the connect completed: it failed.
            self.on_writable(id, now);
            return;
        }
        let mut read_total = 0usize;
        let mut drained = false;
        loop {
            if let Next::Stop = self.drain_input(id, now) {
                return;
            }
            let Some(conn) = self.slots.get_mut(id) else { return };
            if conn.is_eof() {
                // Half-closed (or gone): what was queued for it — replies to its last
                // requests, READY — goes out first, best effort (`CloseReason::flush_first`).
                self.close(id, CloseReason::PeerClosed);
                return;
            }
            if drained {
                return;
            }
            if read_total >= READ_BUDGET_BYTES {
                // Once per connection: a connection already queued (its event and the ready
                // list both serviced it this turn) is serviced again from that one entry.
                conn.queued().queue_ready(id, &mut self.sched.ready_next);
                return;
            }
            let need = conn.rx().len() + 1;
            if let Err(extra) = conn.rx_mut().make_room(need, &mut self.budget) {
                self.block_on_budget(id, extra);
                return;
            }
            let tail_before = conn.rx().buf.len() - conn.rx().end;
            match conn.read() {
                Ok(0) => {} // end of stream: closed above, once the input is processed
                Ok(n) => {
                    read_total += n;
                    conn.touch(now);
                    self.stats.bytes_in += n as u64;
                    if n == tail_before {
                        conn.rx_mut().grow_if_busy(&mut self.budget);
                    } else if trust_short_read {
                        drained = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("read from {}: {e}", conn.label());
                    self.close(id, CloseReason::ReadError);
                    return;
                }
            }
        }
    }

    /// Process everything the receive buffer holds, one [`Input`] at a time.
    pub(super) fn drain_input(&mut self, id: SlotId, now: Instant) -> Next {
        loop {
            let Some(conn) = self.slots.get_mut(id) else { return Next::Stop };
            let on_full = match conn.blocked() {
                None => OnFull::Pause,
                Some(Blocked::StallExpired) => OnFull::Again,
                Some(_) => return Next::Stop,
            };
            if on_full == OnFull::Pause && conn.phase().is_open() && conn.tx().pending() > self.limits.tx_queue_bytes {
                // Its own queue is full (a peer that sends PINGs or requests and never reads
                // the answers): stop reading it until the queue drains below half, as for a
                // reply that does not fit. Only this peer waits; no stall, no error 11.
                self.block(id, Blocked::OwnQueue);
                self.stats.paused_sender += 1;
                return Next::Stop;
            }
            let step = match self.feed(id) {
                Err(reason) => {
                    self.close(id, reason);
                    return Next::Stop;
                }
                Ok(Input::NeedMore { consumed, need }) => return self.on_need_more(id, consumed, need),
                Ok(Input::Verify { consumed }) => self.on_verify(id, consumed),
                Ok(Input::Ready { consumed }) => self.on_ready(id, consumed),
                Ok(Input::Message) => self.on_message(id, now, on_full),
            };
            if let Next::Stop = step {
                return Next::Stop;
            }
        }
    }

    /// Feed `id`'s unconsumed bytes to its protocol; its output marks it dirty.
    fn feed(&mut self, id: SlotId) -> Result<Input, CloseReason> {
        let mut rng = rand_core::OsRng;
        let mut cx = Context {
            session: SessionConfig { identity: &self.router_id, limits: &self.limits, curve: self.curve.as_ref() },
            rng: &mut rng,
            now: self.now,
            stats: &mut self.stats,
        };
        let Some(conn) = self.slots.get_mut(id) else { return Err(CloseReason::ReadError) };
        let (input, wrote) = conn.feed(&mut cx, &mut self.budget);
        if wrote {
            conn.queued().mark_dirty(id, &mut self.sched.dirty);
            // Our NULL READY went out: the connection is no longer half-open.
            self.slots.note_handshake_progress(id);
        }
        input
    }

    /// Nothing more to do with the bytes at hand: drop what is done, and make room for `need`.
    fn on_need_more(&mut self, id: SlotId, consumed: usize, need: usize) -> Next {
        let Some(conn) = self.slots.get_mut(id) else { return Next::Stop };
        conn.rx_mut().consume(consumed);
        if need > crate::limits::RX_BUF_MAX_BYTES {
            // The session checks every size against the limits; this is a second safeguard so
            // that no input can grow a buffer past its ceiling.
            self.close(id, CloseReason::Protocol(SessionError::MessageTooLarge));
            return Next::Stop;
        }
        if need > conn.rx().buf.len()
            && let Err(extra) = conn.rx_mut().make_room(need, &mut self.budget)
        {
            self.block_on_budget(id, extra);
            return Next::Stop;
        }
        Next::ReadMore
    }

    /// The peer presented its credentials: ask the authorisation hook, answer as it decides.
    fn on_verify(&mut self, id: SlotId, consumed: usize) -> Next {
        let Some(conn) = self.slots.get_mut(id) else { return Next::Stop };
        conn.rx_mut().consume(consumed);
        let (super::super::conn::Origin::Accepted { listener, auth_addr }, Some((mechanism, credentials, identity))) =
            (conn.origin(), conn.driver().credentials())
        else {
            // Only an accepted ZMTP session asks; anything else has nobody to ask.
            self.close(id, CloseReason::Protocol(SessionError::UnexpectedCommand));
            return Next::Stop;
        };
        let domain = self
            .listeners
            .get(usize::from(*listener))
            .map_or(crate::server::listener::DEFAULT_DOMAIN, |l| l.domain.as_str());
        let query = AuthQuery {
            request: AuthRequest { domain: domain.as_bytes(), address: auth_addr, mechanism, credentials },
            identity,
            now: self.now,
        };
        let allow = self.hooks.policy.authorize(&query);
        let mut rng = rand_core::OsRng;
        let cx = Context {
            session: SessionConfig { identity: &self.router_id, limits: &self.limits, curve: self.curve.as_ref() },
            rng: &mut rng,
            now: self.now,
            stats: &mut self.stats,
        };
        let (r, wrote) = conn.authorize(&cx, allow, &mut self.budget);
        if wrote {
            conn.queued().mark_dirty(id, &mut self.sched.dirty);
        }
        match r {
            Ok(()) => Next::ReadMore,
            Err(reason) => {
                self.close(id, reason);
                Next::Stop
            }
        }
    }

    /// The handshake completed: the connection becomes a VIP peer (or a duplicate).
    fn on_ready(&mut self, id: SlotId, consumed: usize) -> Next {
        let Some(conn) = self.slots.get_mut(id) else { return Next::Stop };
        conn.rx_mut().consume(consumed);
        let dialled = matches!(conn.origin(), super::super::conn::Origin::Dialled);
        let link = conn.link();
        self.stats.handshakes_completed += 1;
        if let Some(link) = link {
            self.on_link_ready(id, link);
            return Next::ReadMore;
        }
        if self.bridge.slot == Some(id) {
            self.on_bridge_ready(id);
            return Next::ReadMore;
        }
        self.attach(id);
        if dialled {
            self.dial_events.push(DialEvent::Ready(id));
        }
        Next::ReadMore
    }

    /// A complete message is held: route it, drop it while the identity is a duplicate's, or
    /// hand it to the router's link input when it arrived on a link.
    fn on_message(&mut self, id: SlotId, now: Instant, on_full: OnFull) -> Next {
        if let Some(link) = self.slots.get_mut(id).and_then(|c| c.link()) {
            return self.on_link_message(id, link);
        }
        if self.bridge.slot == Some(id) {
            return self.on_bridge_message(id);
        }
        if on_full == OnFull::Again
            && let Some(conn) = self.slots.get_mut(id)
        {
            conn.set_blocked(None); // this try answers error 11 instead of waiting
        }
        if self.slots.get_mut(id).is_some_and(|c| c.phase() == Phase::Duplicate) {
            // First wins: a duplicate's messages are dropped (VIP.md §2.4) until the identity
            // is freed; then this message attaches the connection and is routed, as libzmq
            // delivers once it attaches the pipe.
            self.attach(id);
            let Some(conn) = self.slots.get_mut(id) else { return Next::Stop };
            if conn.phase() == Phase::Duplicate {
                conn.release_message();
                if stats::bump_and_should_log(&mut self.stats.dropped_duplicate_identity) {
                    log::info!("dropped a message from a duplicate-identity connection");
                }
                return Next::ReadMore;
            }
        }
        let (outcome, budget_wait) = self.route(id, on_full);
        let Some(conn) = self.slots.get_mut(id) else { return Next::Stop };
        match (outcome, budget_wait) {
            (Outcome::Done, _) => {
                conn.release_message();
                Next::ReadMore
            }
            (Outcome::Blocked(_), Some(extra)) => {
                // The destination's queue had room but could not grow: wait for the budget (not
                // for the recipient, whose queue is not what is short).
                self.block(id, Blocked::QueueBudget { extra, since: now });
                Next::Stop
            }
            (Outcome::Blocked(to), None) if to == PeerId(id.index) => {
                // A reply to the sender itself does not fit its own queue.
                self.block(id, Blocked::OwnQueue);
                Next::Stop
            }
            (Outcome::Blocked(to), None) => {
                // The message stays held by the session: it is asked for again on the resume.
                let on = self.slots.id_of(to.0).unwrap_or(id);
                self.block(id, Blocked::Recipient { on, since: now });
                Next::Stop
            }
            (Outcome::Quit, _) => {
                conn.release_message();
                log::info!("quit from control: shutting down");
                self.exit = Some(Exit::Quit);
                Next::ReadMore
            }
        }
    }

    /// Attach `id` under its identity: `Attached`, or `Duplicate` while another holds it.
    pub(super) fn attach(&mut self, id: SlotId) {
        let Some(conn) = self.slots.get_mut(id) else { return };
        let identity: heapless::Vec<u8, 255> = heapless::Vec::from_slice(conn.driver().identity()).unwrap_or_default();
        let phase = match self.router.attach(&mut self.stats, PeerId(id.index), &identity) {
            Ok(()) => {
                log::debug!("peer {:?} attached from {}", String::from_utf8_lossy(&identity), conn.label());
                Phase::Attached
            }
            Err(_) => Phase::Duplicate,
        };
        self.slots.set_phase(id, phase);
    }

    /// Block `id` (not read until the reason goes away; see `resume_blocked`).
    pub(super) fn block(&mut self, id: SlotId, why: Blocked) {
        let Some(conn) = self.slots.get_mut(id) else { return };
        if conn.blocked().is_none() || conn.blocked() == Some(Blocked::StallExpired) {
            self.sched.blocked.push(id);
        }
        conn.set_blocked(Some(why));
    }

    /// The receive buffer of `id` cannot grow by `extra` bytes now: block it until they fit,
    /// or, when they could never fit (the budget minus what it holds itself, e.g. a message
    /// larger than a lowered `buffer-budget-bytes`), close it as for a message too large.
    pub(super) fn block_on_budget(&mut self, id: SlotId, extra: usize) {
        let Some(conn) = self.slots.get_mut(id) else { return };
        if extra == 0 || conn.buffer_bytes().saturating_add(extra) > self.limits.buffer_budget_bytes {
            self.close(id, CloseReason::Protocol(SessionError::MessageTooLarge));
            return;
        }
        if stats::bump_and_should_log(&mut self.stats.paused_budget) {
            log::warn!("buffer budget exhausted: pausing reads from {}", conn.label());
        }
        self.block(id, Blocked::Budget { extra });
    }
}
