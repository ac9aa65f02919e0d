//! Input: accept (handshake limits, eviction), read and decode a connection within the read
//! budget, attach a peer after its handshake, route each complete message, protocol errors.

use super::*;

impl Server {
    pub(super) fn accept(&mut self, li: usize, now: Instant) {
        loop {
            let Some(l) = self.listeners.get(li) else { return };
            let mechanism = l.mechanism;
            let accepted = match &l.socket {
                ListenSocket::Tcp(s) => s.accept().map(|(st, addr)| {
                    let _ = st.set_nodelay(true);
                    crate::server::sockopt::keepalive(&st);
                    (Stream::Tcp(st), addr.to_string(), addr.ip().to_string())
                }),
                ListenSocket::Unix(s) => s.accept().map(|(st, _)| {
                    let label = crate::server::sockopt::peer_cred_label(&st);
                    (Stream::Unix(st), label.clone(), label)
                }),
            };
            let (stream, peer, auth_addr) = match accepted {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if accept_error_is_per_connection(&e) => continue,
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog and retry on each tick.
                    // The listener is edge-triggered: the connections already queued raise no
                    // new event, so without the retry they wait for the next client to connect.
                    self.accept_retry |= 1u32.checked_shl(li as u32).unwrap_or(0);
                    if stats::bump(&mut self.router.stats.accept_errors) {
                        log::warn!("accept on {}: {e}", self.listeners.get(li).map_or("?", |l| &l.endpoint));
                    }
                    return;
                }
            };
            if self.slots.is_full() || !self.budget.take(Conn::INITIAL_BYTES) {
                if stats::bump(&mut self.router.stats.rejected_conn_full) {
                    log::warn!(
                        "connection from {peer} refused: {} connections (or the buffer budget) in use",
                        self.slots.live()
                    );
                }
                drop(stream);
                continue;
            }
            if self.handshaking >= self.limits.handshake_cap() {
                self.evict_half_open();
            }
            let mut conn = Box::new(Conn::new(stream, mechanism, li as u8, now, &peer, &auth_addr));
            if self.verify_null {
                conn.session.verify_null();
            }
            let id = match self.slots.insert(conn) {
                Ok(id) => id,
                Err(_) => {
                    self.budget.give(Conn::INITIAL_BYTES);
                    continue;
                }
            };
            self.router.stats.accepted += 1;
            self.handshaking += 1;
            let live = self.slots.live() as u64;
            if live > self.router.stats.connections_hwm {
                self.router.stats.connections_hwm = live;
            }
            let registry = self.poll.registry();
            let Some(conn) = self.slots.get_mut(id) else { continue };
            if let Err(e) = conn.stream.register(registry, id.token(), Interest::READABLE) {
                log::warn!("register {peer}: {e}");
                self.close(id, "register failed");
                continue;
            }
            log::debug!("accepted {peer} on slot {}", id.index);
            self.flush(id);
        }
    }

    /// Retry the listeners an `accept` error left with connections in their backlog.
    pub(super) fn retry_accepts(&mut self, now: Instant) {
        let retry = std::mem::take(&mut self.accept_retry);
        for li in 0..self.listeners.len().min(u32::BITS as usize) {
            if retry & (1 << li) != 0 {
                self.accept(li, now);
            }
        }
    }

    /// At the handshake limit: close the half-open connection that has shown the least, oldest
    /// first, if `handshake_cap` of them are open (README "Limits", `max-handshakes`).
    ///
    /// Half-open means the handshake is unfinished **and** our side of it is not done. A NULL
    /// connection whose READY we sent is not half-open: its libzmq peer may already have sent
    /// its READY and its first messages (the `hello` it queued before connecting), which
    /// closing it would lose — libzmq reconnects but does not send them again. Such connections
    /// are bounded by `max-connections` and `handshake-timeout-ms` like established ones; on a
    /// NULL endpoint without authentication the same peer could complete the handshake with one
    /// more frame anyway. The victim is the connection with the least progress (no byte of its
    /// greeting, then part of it, then a mechanism handshake under way), the oldest among equals:
    /// a slowloris cannot refresh its age, and a peer that finished its greeting outranks one
    /// that did not.
    pub(super) fn evict_half_open(&mut self) {
        let mut half_open = 0usize;
        let mut victim: Option<((Progress, bool, Instant), SlotId)> = None;
        for id in self.slots.ids() {
            let Some(c) = self.slots.peek(id.index) else { continue };
            let progress = c.session.progress();
            if c.handshake_done || progress == Progress::OurSideDone {
                continue;
            }
            half_open += 1;
            let key = (progress, !c.rx.is_empty(), c.accepted_at);
            if victim.is_none_or(|(k, _)| key < k) {
                victim = Some((key, id));
            }
        }
        let Some((_, id)) = victim else { return };
        if half_open < self.limits.handshake_cap() {
            return;
        }
        if stats::bump(&mut self.router.stats.rejected_handshake_evicted) {
            log::warn!("{half_open} unfinished handshakes: closing the one with the least progress to make room");
        }
        self.close(id, "handshake evicted");
    }

    /// Read and process one connection (see the module doc).
    ///
    /// `short_read_drains`: a read that returned less than the free space means the socket is
    /// drained, so the final read that would only return `WouldBlock` is skipped (edge-triggered
    /// epoll reports every later arrival). Only for a readable event without hang-up; the ready
    /// list and hang-ups read until `WouldBlock`.
    pub(super) fn service(&mut self, id: SlotId, now: Instant, short_read_drains: bool) {
        let mut read_total = 0usize;
        let mut drained = false;
        loop {
            if let Step::Stop = self.drain_input(id, now) {
                return;
            }
            if drained {
                return;
            }
            let Some(conn) = self.slots.get_mut(id) else { return };
            if conn.eof {
                // Half-closed (or gone): what was queued for it — replies to its last
                // requests, READY — goes out first, best effort, as before a protocol error.
                if let Ok(n) = conn.flush() {
                    self.router.stats.bytes_out += n as u64;
                }
                self.close(id, "closed by peer");
                return;
            }
            if read_total >= READ_BUDGET_BYTES {
                // Once per connection: a connection already queued (its event and the ready
                // list both serviced it this turn) is serviced again from that one entry.
                if !conn.in_ready {
                    conn.in_ready = true;
                    self.ready_next.push(id);
                }
                return;
            }
            let need = conn.rx.len() + 1;
            if let Err(extra) = conn.rx.make_room(need, &mut self.budget) {
                self.pause_on_budget(id, extra);
                return;
            }
            let tail_before = conn.rx.buf.len() - conn.rx.end;
            match conn.read() {
                Ok(0) => conn.eof = true,
                Ok(n) => {
                    read_total += n;
                    conn.last_active = now;
                    self.router.stats.bytes_in += n as u64;
                    if n == tail_before {
                        conn.rx.grow_if_busy(&mut self.budget);
                    } else if short_read_drains {
                        drained = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("read from {}: {e}", conn.peer);
                    self.close(id, "read error");
                    return;
                }
            }
        }
    }

    /// Process every complete message in the receive buffer.
    pub(super) fn drain_input(&mut self, id: SlotId, now: Instant) -> Step {
        loop {
            let Some(conn) = self.slots.get_mut(id) else { return Step::Stop };
            if conn.paused.is_some() {
                return Step::Stop;
            }
            if conn.pending_consumed > 0 {
                // A message that was blocked on a full recipient: try it again.
                let consumed = conn.pending_consumed;
                self.parts = conn.pending_parts.clone();
                match self.route(id, now) {
                    Step::Continue => {
                        if let Some(conn) = self.slots.get_mut(id) {
                            conn.pending_consumed = 0;
                            conn.rx.consume(consumed);
                        }
                        continue;
                    }
                    Step::Stop => return Step::Stop,
                }
            }
            if conn.handshake_done && conn.tx.pending() > self.limits.tx_queue_bytes {
                // Its own queue is full (a peer that sends PINGs or requests and never reads
                // the answers): stop reading it until the queue drains below half, as for a
                // reply that does not fit. Only this peer waits; no stall, no error 11.
                conn.paused = Some(Pause::Recipient { on: id.index, since: now });
                self.paused.push(id);
                self.router.stats.paused_sender += 1;
                return Step::Stop;
            }
            let mechanism = conn.session.mechanism();
            let cfg = SessionConfig {
                mechanism,
                identity: &self.router_id,
                limits: &self.limits,
                curve: self.curve.as_ref(),
            };
            let tx_before = conn.tx.buf.len();
            let cap_before = conn.tx.capacity();
            let data = conn.rx.buf.get_mut(conn.rx.start..conn.rx.end).unwrap_or(&mut []);
            let r = conn.session.handle_input(&cfg, data, &mut conn.tx.buf, &mut self.parts, &mut rand_core::OsRng);
            // Session output (READY, WELCOME, PONGs) is appended without a reservation: account
            // any growth, or closing the connection would give back bytes never taken.
            self.budget.charge(conn.tx.capacity().saturating_sub(cap_before));
            if conn.tx.buf.len() != tx_before && !conn.dirty {
                conn.dirty = true;
                self.dirty.push(id);
            }
            match r {
                Err(e) => {
                    self.protocol_error(id, e);
                    return Step::Stop;
                }
                Ok(Input::NeedMore { consumed, need }) => {
                    conn.rx.consume(consumed);
                    if need > crate::limits::RX_BUF_MAX_BYTES {
                        // The session checks every size against the limits; this is a second
                        // safeguard so that no input can grow a buffer past its ceiling.
                        self.protocol_error(id, DecodeError::MessageTooLarge);
                        return Step::Stop;
                    }
                    if need > conn.rx.buf.len()
                        && let Err(extra) = conn.rx.make_room(need, &mut self.budget)
                    {
                        self.pause_on_budget(id, extra);
                        return Step::Stop;
                    }
                    return Step::Continue;
                }
                Ok(Input::Verify { consumed }) => {
                    conn.rx.consume(consumed);
                    let endpoint = self.listeners.get(usize::from(conn.listener)).map_or("", |l| l.endpoint.as_str());
                    let query = AuthQuery {
                        listener: usize::from(conn.listener),
                        endpoint,
                        mechanism,
                        address: &conn.auth_addr,
                        credentials: conn.session.credentials(),
                        identity: conn.session.identity(),
                    };
                    let allow = (self.authorize)(&query);
                    let tx_before = conn.tx.buf.len();
                    let cap_before = conn.tx.capacity();
                    let r = conn.session.authorize(&cfg, allow, &mut conn.tx.buf);
                    self.budget.charge(conn.tx.capacity().saturating_sub(cap_before));
                    if conn.tx.buf.len() != tx_before && !conn.dirty {
                        conn.dirty = true;
                        self.dirty.push(id);
                    }
                    if let Err(e) = r {
                        self.protocol_error(id, e);
                        return Step::Stop;
                    }
                }
                Ok(Input::Ready { consumed }) => {
                    conn.rx.consume(consumed);
                    conn.handshake_done = true;
                    self.handshaking = self.handshaking.saturating_sub(1);
                    self.router.stats.handshakes_completed += 1;
                    self.attach(id);
                }
                Ok(Input::Message { consumed }) => {
                    if !conn.attached {
                        // First wins: a duplicate's messages are dropped (VIP.md §2.4) until the
                        // identity is freed; then this message attaches the connection and is
                        // routed, as libzmq delivers once it attaches the pipe.
                        self.attach(id);
                        let Some(conn) = self.slots.get_mut(id) else { return Step::Stop };
                        if !conn.attached {
                            conn.rx.consume(consumed);
                            if stats::bump(&mut self.router.stats.dropped_duplicate_identity) {
                                log::info!("dropped a message from a duplicate-identity connection");
                            }
                            continue;
                        }
                    }
                    match self.route(id, now) {
                        Step::Continue => {
                            if let Some(conn) = self.slots.get_mut(id) {
                                conn.rx.consume(consumed);
                            }
                        }
                        Step::Stop => {
                            if let Some(conn) = self.slots.get_mut(id) {
                                if conn.paused.is_some() {
                                    conn.pending_parts = self.parts.clone();
                                    conn.pending_consumed = consumed;
                                } else {
                                    conn.rx.consume(consumed);
                                }
                            }
                            return Step::Stop;
                        }
                    }
                }
            }
        }
    }

    /// The receive buffer of `id` cannot grow by `extra` bytes now: pause it until they fit,
    /// or, when they could never fit (the budget minus what it holds itself, e.g. a message
    /// larger than a lowered `buffer-budget-bytes`), close it as for a message too large.
    pub(super) fn pause_on_budget(&mut self, id: SlotId, extra: usize) {
        let Some(conn) = self.slots.get_mut(id) else { return };
        if extra == 0 || conn.buffer_bytes().saturating_add(extra) > self.limits.buffer_budget_bytes {
            self.protocol_error(id, DecodeError::MessageTooLarge);
            return;
        }
        conn.paused = Some(Pause::Budget { extra });
        self.paused.push(id);
        if stats::bump(&mut self.router.stats.paused_budget) {
            log::warn!("buffer budget exhausted: pausing reads from {}", conn.peer);
        }
    }

    pub(super) fn attach(&mut self, id: SlotId) {
        let Some(conn) = self.slots.get_mut(id) else { return };
        let identity: heapless::Vec<u8, 255> = heapless::Vec::from_slice(conn.session.identity()).unwrap_or_default();
        match self.router.attach(PeerId(id.index), &identity) {
            Ok(()) => {
                conn.attached = true;
                log::debug!("peer {:?} attached from {}", String::from_utf8_lossy(&identity), conn.peer);
            }
            Err(_) => conn.attached = false,
        }
    }

    /// Route the message in `self.parts` from connection `id`.
    pub(super) fn route(&mut self, id: SlotId, now: Instant) -> Step {
        let Some(conn) = self.slots.get_mut(id) else { return Step::Stop };
        let on_full = if conn.stall_expired { OnFull::Again } else { OnFull::Pause };
        conn.stall_expired = false;
        // Borrow the sender's receive buffer while the sink writes into other connections
        // (and possibly the sender's own transmit queue): move it out, no copy.
        let rx = std::mem::take(&mut conn.rx);
        let data = rx.buf.get(rx.start..rx.end).unwrap_or(&[]);
        let msg = Message::new(data, &self.parts);
        let mut sink = conn_sink!(self);
        let outcome = self.router.handle(PeerId(id.index), msg, &mut sink, on_full);
        let (delivered, refused, lost) = (sink.q.delivered, sink.q.refused_budget, sink.lost_notifications);
        self.close_broken();
        self.router.stats.msgs_out += delivered;
        self.count_lost_notifications(lost);
        if refused > 0 && stats::bump(&mut self.router.stats.dropped_budget) {
            log::warn!("buffer budget exhausted: a transmit queue could not grow");
        }
        let Some(conn) = self.slots.get_mut(id) else { return Step::Stop };
        conn.rx = rx;
        match outcome {
            Outcome::Done => Step::Continue,
            Outcome::Blocked(to) => {
                conn.paused = Some(Pause::Recipient { on: to.0, since: now });
                self.paused.push(id);
                Step::Stop
            }
            Outcome::Quit => {
                log::info!("quit from control: shutting down");
                self.exit = Some(Exit::Quit);
                Step::Continue
            }
        }
    }

    pub(super) fn protocol_error(&mut self, id: SlotId, e: DecodeError) {
        let s = &mut self.router.stats;
        let counter = match e {
            DecodeError::BadSignature | DecodeError::UnsupportedVersion { .. } => &mut s.rejected_greeting,
            DecodeError::MechanismMismatch => &mut s.rejected_mechanism,
            DecodeError::FrameTooLarge { .. } => &mut s.rejected_frame_too_large,
            DecodeError::MessageTooLarge => &mut s.rejected_msg_too_large,
            DecodeError::TooManyParts => &mut s.rejected_too_many_parts,
            DecodeError::AuthDenied => &mut s.rejected_auth,
            DecodeError::Curve(_) | DecodeError::NotConfigured => &mut s.rejected_handshake,
            DecodeError::UnexpectedCommand
            | DecodeError::IncompatibleSocketType
            | DecodeError::IdentityTooLong
            | DecodeError::TruncatedProperty
            | DecodeError::MalformedCommand
            | DecodeError::PeerError
            | DecodeError::MalformedPing => &mut s.rejected_handshake,
        };
        let first = stats::bump(counter);
        if let Some(conn) = self.slots.get_mut(id) {
            if first {
                log::warn!("closing {}: {e}", conn.peer);
            } else {
                log::debug!("closing {}: {e}", conn.peer);
            }
            // Best effort: anything already queued for it (our greeting) goes out first.
            let _ = conn.flush();
        }
        self.close(id, "protocol error");
    }
}

/// Errors `accept` reports for one pending connection only (it was reset or aborted before it
/// was taken, or Linux passed on a network error pending on it — accept(2)): the next
/// connection in the backlog may be accepted at once.
fn accept_error_is_per_connection(e: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset)
        || e.raw_os_error().is_some_and(|code| {
            [
                Errno::EPROTO,
                Errno::ENOPROTOOPT,
                Errno::EHOSTDOWN,
                Errno::ENONET,
                Errno::EHOSTUNREACH,
                Errno::EOPNOTSUPP,
                Errno::ENETUNREACH,
                Errno::ENETDOWN,
                Errno::EPERM,
            ]
            .iter()
            .any(|&errno| errno as i32 == code)
        })
}
