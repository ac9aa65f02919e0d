//! Accepting: new connections within the connection and handshake limits (the half-open
//! handshake with the least progress is evicted to make room), listeners retried after `accept`
//! ran out of descriptors.

use super::*;

impl Server {
    /// Accept on listener `li` until `WouldBlock`.
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
                    self.accept_retry |= u32::try_from(li).ok().and_then(|b| 1u32.checked_shl(b)).unwrap_or(0);
                    if stats::bump_and_should_log(&mut self.stats.accept_errors) {
                        log::warn!("accept on {}: {e}", self.listeners.get(li).map_or("?", |l| &l.endpoint));
                    }
                    return;
                }
            };
            self.admit(li, mechanism, stream, &peer, &auth_addr, now);
        }
    }

    /// Give an accepted socket a slot, within the limits, and send our greeting.
    fn admit(&mut self, li: usize, mechanism: Mechanism, stream: Stream, peer: &str, auth_addr: &str, now: Instant) {
        if self.slots.is_full() || !self.budget.take(Conn::INITIAL_BYTES) {
            if stats::bump_and_should_log(&mut self.stats.rejected_conn_full) {
                log::warn!(
                    "connection from {peer} refused: {} connections (or the buffer budget) in use",
                    self.slots.live()
                );
            }
            return;
        }
        if self.slots.half_open() >= self.limits.handshake_cap() {
            self.evict_half_open();
        }
        // At most MAX_LISTENERS (16) listeners: the index fits a u8.
        let listener = u8::try_from(li).unwrap_or(u8::MAX);
        let verify_null = self.hooks.policy.decides_null();
        let conn = Conn::accepted(stream, mechanism, verify_null, listener, now, peer, auth_addr);
        let Ok(id) = self.slots.insert(Box::new(conn)) else {
            self.budget.give(Conn::INITIAL_BYTES);
            return;
        };
        self.stats.accepted += 1;
        self.stats.connections = self.slots.live() as u64;
        self.stats.connections_hwm = self.stats.connections_hwm.max(self.stats.connections);
        let registry = self.poll.registry();
        let Some(conn) = self.slots.get_mut(id) else { return };
        if let Err(e) = conn.register(registry, id.token()) {
            log::warn!("register {peer}: {e}");
            self.close(id, CloseReason::RegisterFailed);
            return;
        }
        log::debug!("accepted {peer} on slot {}", id.index);
        self.flush(id);
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

    /// At the handshake limit: close the half-open connection with the least progress, the
    /// oldest among equals ([`super::super::conn::slots::Slots::eviction_victim`]).
    ///
    /// Half-open means the handshake is unfinished **and** our side of it is not done. A NULL
    /// connection whose READY we sent is not half-open ([`Phase::AwaitingPeer`]): its libzmq peer
    /// may already have sent its READY and its first messages (the `hello` it queued before
    /// connecting), which closing it would lose — libzmq reconnects but does not send them
    /// again. On a NULL endpoint without authentication the same peer could complete the
    /// handshake with one more frame anyway. A slowloris cannot refresh its age, and a peer that
    /// finished its greeting outranks one that did not.
    pub(super) fn evict_half_open(&mut self) {
        if let Some(id) = self.slots.eviction_victim() {
            self.close(id, CloseReason::HandshakeEvicted { unfinished: self.slots.half_open() });
        }
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
