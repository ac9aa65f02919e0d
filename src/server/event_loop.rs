//! The single-threaded mio event loop: accept, read, route, flush, pause/resume, timers.
//!
//! One turn:
//! 1. `poll` (timeout 0 when work is pending, else until the next tick);
//! 2. listeners accept until `WouldBlock`; readable connections are serviced (read until
//!    `WouldBlock` or the per-turn read budget, routing every complete message at once);
//!    writable connections flush;
//! 3. the ready list (connections with bytes left to read or just resumed) is serviced —
//!    edge-triggered epoll will not wake them again (mio "draining readiness");
//! 4. every connection that got output this turn is flushed once (the dirty list: many
//!    messages per `write`);
//! 5. paused senders whose recipient drained (or whose stall expired) are resumed;
//! 6. on each tick, handshake deadlines are enforced.
//!
//! Interest is recomputed from state (rustls `tlsserver-mio` style): READABLE always,
//! WRITABLE only while a flush left bytes behind.

use std::io;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};

use super::conn::{Budget, Conn, Pause, Stream};
use super::listener::{ListenSocket, Listener};
use super::signals::{SignalEvent, Signals};
use super::watch::Watch;
use super::slots::{SlotId, Slots};
use crate::limits::{Limits, MAX_EVENTS, READ_BUDGET_BYTES, TICK_MS};
use crate::stats::{self, FixedWriter};
use crate::time::Instant;
use crate::vip::peers::PeerId;
use crate::vip::router::{Full, OnFull, Outcome, Router, Shared, Sink};
use crate::zmtp::mechanism::{Credentials, Mechanism};
use crate::zmtp::frame::APPEND_SLACK;
use crate::zmtp::session::{CurveContext, Input, Session, SessionConfig};
use crate::zmtp::{DecodeError, Message, Parts};

/// What the authorisation hook is asked (VIP.md §9.6; the ZAP request of ZMTP.md §8.2).
#[derive(Clone, Copy, Debug)]
pub struct AuthQuery<'a> {
    /// Index of the listener the peer connected to (in bind order).
    pub listener: usize,
    /// The endpoint the peer connected to, as reported in `query addresses`.
    pub endpoint: &'a str,
    /// Its mechanism.
    pub mechanism: Mechanism,
    /// TCP: the peer's IP without port; ipc: `localhost:uid:gid:pid` (SO_PEERCRED).
    pub address: &'a str,
    /// What the peer proved.
    pub credentials: Credentials<'a>,
    /// The routing identity from its READY/INITIATE metadata.
    pub identity: &'a [u8],
}

/// Runs on SIGHUP with the router (reload auth, protected topics).
pub type OnReload = Box<dyn FnMut(&mut Router)>;

/// Decides whether a peer may connect (the in-process ZAP handler).
pub type Authorize = Box<dyn FnMut(&AuthQuery<'_>) -> bool>;

const SIGNAL_TOKEN: Token = Token(0xFFFF);
const WATCH_TOKEN: Token = Token(0xFFFE);

/// Why the loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM/SIGINT.
    Signal,
    /// `quit` from `control`.
    Quit,
}

/// The server: sockets, slots and the router.
pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    signals: Signals,
    watch: Option<Watch>,
    slots: Slots,
    /// The VIP core.
    pub router: Router,
    limits: Limits,
    budget: Budget,
    router_id: Vec<u8>,
    handshaking: usize,
    ready: Vec<SlotId>,
    ready_next: Vec<SlotId>,
    dirty: Vec<SlotId>,
    paused: Vec<SlotId>,
    parts: Parts,
    /// Connections whose transmit side failed while the router wrote to them (closed after).
    broken: Vec<SlotId>,
    curve: Option<CurveContext>,
    authorize: Authorize,
    clock: std::time::Instant,
    exit: Option<Exit>,
    last_tick: Instant,
    last_shrink: Instant,
    /// Called once per loop turn with the time (sd_notify watchdog, reloads).
    on_tick: Option<Box<dyn FnMut(Instant)>>,
    on_reload: Option<OnReload>,
}

/// The [`Sink`] the router writes into: the destination connections' transmit queues.
struct ConnSink<'a> {
    slots: &'a mut Slots,
    dirty: &'a mut Vec<SlotId>,
    broken: &'a mut Vec<SlotId>,
    budget: &'a mut Budget,
    tx_queue_bytes: usize,
    delivered: u64,
    refused_budget: u64,
}

impl<'a> ConnSink<'a> {
    fn new(
        slots: &'a mut Slots,
        dirty: &'a mut Vec<SlotId>,
        broken: &'a mut Vec<SlotId>,
        budget: &'a mut Budget,
        limits: &Limits,
    ) -> Self {
        ConnSink { slots, dirty, broken, budget, tx_queue_bytes: limits.tx_queue_bytes, delivered: 0, refused_budget: 0 }
    }
}

impl ConnSink<'_> {
    /// Queue `len` bytes that `write` appends to `to`'s transmit queue, all or nothing.
    fn queue(
        &mut self,
        to: PeerId,
        len: impl FnOnce(&Session) -> usize,
        write: impl FnOnce(&mut Session, &mut Vec<u8>) -> Result<(), DecodeError>,
    ) -> Result<(), Full> {
        let Some(id) = self.slots.id_of(to.0) else { return Err(Full) };
        let Some(conn) = self.slots.get_mut(id) else { return Err(Full) };
        if !conn.session.is_traffic() {
            return Err(Full);
        }
        let len = len(&conn.session);
        let pending = conn.tx.pending();
        if pending > 0 && pending + len > self.tx_queue_bytes {
            return Err(Full);
        }
        let before = conn.tx.capacity();
        // The slack lets frame::append copy small frames inline (no memcpy call).
        if !conn.tx.reserve(len + APPEND_SLACK, self.budget) {
            self.refused_budget += 1;
            return Err(Full);
        }
        debug_assert!(conn.tx.capacity() >= before);
        if write(&mut conn.session, &mut conn.tx.buf).is_err() {
            // CURVE nonce exhausted (after 2^64 messages): nothing sane can follow.
            self.broken.push(id);
            return Err(Full);
        }
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(id);
        }
        self.delivered += 1;
        Ok(())
    }
}

impl Sink for ConnSink<'_> {
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        self.queue(to, |s| s.encoded_len(frames), |s, out| s.encode_message(frames, out))
    }

    fn deliver_shared(&mut self, to: PeerId, shared: &mut Shared<'_>) -> Result<(), Full> {
        let verbatim = self.slots.peek(to.0).is_some_and(|c| c.session.frames_verbatim());
        if !verbatim {
            return self.deliver(to, shared.frames);
        }
        if !shared.encoded {
            shared.wire.clear();
            Session::encode_verbatim(shared.frames, shared.wire);
            shared.encoded = true;
        }
        let wire: &[u8] = shared.wire;
        self.queue(
            to,
            |_| wire.len(),
            |_, out| {
                out.extend_from_slice(wire);
                Ok(())
            },
        )
    }

    fn is_stalled(&self, to: PeerId) -> bool {
        self.slots.peek(to.0).is_some_and(|c| c.stalled)
    }
}

enum Step {
    /// Keep servicing this connection.
    Continue,
    /// Stop servicing it this turn (paused, closed, or read budget used).
    Stop,
}

impl Server {
    /// A server over bound `listeners`.
    ///
    /// # Errors
    /// Poll or signalfd creation and registration errors.
    pub fn new(listeners: Vec<Listener>, router: Router, limits: Limits, router_id: Vec<u8>) -> io::Result<Server> {
        let poll = Poll::new()?;
        let signals = Signals::new()?;
        signals.register(poll.registry(), SIGNAL_TOKEN)?;
        let mut listeners = listeners;
        for (i, l) in listeners.iter_mut().enumerate() {
            match &mut l.socket {
                ListenSocket::Tcp(s) => poll.registry().register(s, Token(i), Interest::READABLE)?,
                ListenSocket::Unix(s) => poll.registry().register(s, Token(i), Interest::READABLE)?,
            }
        }
        let max = limits.max_connections;
        Ok(Server {
            poll,
            listeners,
            signals,
            watch: None,
            slots: Slots::new(max),
            router,
            budget: Budget::new(limits.buffer_budget_bytes),
            limits,
            router_id,
            handshaking: 0,
            ready: Vec::with_capacity(max),
            ready_next: Vec::with_capacity(max),
            dirty: Vec::with_capacity(max),
            paused: Vec::with_capacity(max),
            parts: Parts::new(),
            broken: Vec::with_capacity(max),
            curve: None,
            // Until an authoriser is installed, nobody passes a CURVE/PLAIN handshake.
            authorize: Box::new(|_| false),
            clock: std::time::Instant::now(),
            exit: None,
            last_tick: Instant(0),
            last_shrink: Instant(0),
            on_tick: None,
            on_reload: None,
        })
    }

    /// Serve CURVE with these keys.
    pub fn set_curve(&mut self, ctx: CurveContext) {
        self.curve = Some(ctx);
    }

    /// Install the authorisation hook used by CURVE and PLAIN endpoints.
    pub fn set_authorize(&mut self, f: Authorize) {
        self.authorize = f;
    }

    /// Run `f` once per loop turn (e.g. the systemd watchdog).
    pub fn set_on_tick(&mut self, f: Box<dyn FnMut(Instant)>) {
        self.on_tick = Some(f);
    }

    /// Reload (as on SIGHUP) whenever `watch` reports a change.
    ///
    /// # Errors
    /// Registration errors.
    pub fn set_watch(&mut self, watch: Watch) -> io::Result<()> {
        watch.register(self.poll.registry(), WATCH_TOKEN)?;
        self.watch = Some(watch);
        Ok(())
    }

    /// Run `f` on SIGHUP.
    pub fn set_on_reload(&mut self, f: OnReload) {
        self.on_reload = Some(f);
    }

    fn now(&self) -> Instant {
        Instant(self.clock.elapsed().as_millis() as u64)
    }

    /// Run until a stop signal or `quit`.
    ///
    /// # Errors
    /// Only a failing `poll` stops the loop with an error.
    pub fn run(&mut self) -> io::Result<Exit> {
        let mut events = Events::with_capacity(MAX_EVENTS);
        loop {
            if let Some(exit) = self.turn(&mut events)? {
                return Ok(exit);
            }
        }
    }

    /// One turn of the loop (see the module doc). Returns `Some` when the router must stop.
    /// Public so that tests can drive the server in their own thread.
    ///
    /// # Errors
    /// Only a failing `poll`.
    pub fn turn(&mut self, events: &mut Events) -> io::Result<Option<Exit>> {
        let timeout = if !self.ready.is_empty() {
            Duration::ZERO
        } else if !self.paused.is_empty() {
            Duration::from_millis(10)
        } else {
            Duration::from_millis(TICK_MS)
        };
        match self.poll.poll(events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(e),
        }
        let now = self.now();
        for ev in events.iter() {
            let token = ev.token();
            if token == SIGNAL_TOKEN {
                self.handle_signals();
            } else if token == WATCH_TOKEN {
                if self.watch.as_ref().is_some_and(Watch::changed) {
                    log::info!("configuration file changed: reloading");
                    self.reload();
                }
            } else if let Some(id) = SlotId::from_token(token) {
                if ev.is_writable() {
                    self.flush(id);
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    let hangup = ev.is_read_closed() || ev.is_error();
                    self.service(id, now, !hangup);
                }
            } else if token.0 < self.listeners.len() {
                self.accept(token.0, now);
            }
        }
        // Connections with input left over from earlier turns (read budget, resumed).
        let mut ready = std::mem::take(&mut self.ready);
        for &id in &ready {
            self.service(id, now, false);
        }
        ready.clear();
        self.ready = ready;
        std::mem::swap(&mut self.ready, &mut self.ready_next);
        self.flush_dirty();
        self.resume_paused(now);
        if now.since(self.last_tick) >= TICK_MS {
            self.last_tick = now;
            self.tick(now);
        }
        if let Some(exit) = self.exit {
            self.flush_all();
            return Ok(Some(exit));
        }
        Ok(None)
    }

    fn handle_signals(&mut self) {
        while let Some(sig) = self.signals.pending() {
            match sig {
                SignalEvent::Stop => {
                    log::info!("stop signal received: shutting down");
                    self.exit = Some(Exit::Signal);
                }
                SignalEvent::Reload => {
                    log::info!("SIGHUP: reloading");
                    self.reload();
                }
                SignalEvent::DumpStats => self.log_stats(),
            }
        }
    }

    fn reload(&mut self) {
        if let Some(f) = self.on_reload.as_mut() {
            f(&mut self.router);
        }
    }

    /// Log every counter as one JSON line.
    pub fn log_stats(&mut self) {
        self.sync_stats();
        let mut buf = [0u8; 8192];
        let mut w = FixedWriter::new(&mut buf);
        if self.router.stats.write_json(&mut w).is_ok() {
            log::info!("stats {}", String::from_utf8_lossy(w.written()));
        }
    }

    fn sync_stats(&mut self) {
        let s = &mut self.router.stats;
        s.buffer_bytes = self.budget.used() as u64;
        s.buffer_bytes_hwm = self.budget.hwm() as u64;
    }

    fn accept(&mut self, li: usize, now: Instant) {
        loop {
            let Some(l) = self.listeners.get(li) else { return };
            let mechanism = l.mechanism;
            let accepted = match &l.socket {
                ListenSocket::Tcp(s) => s.accept().map(|(st, addr)| {
                    let _ = st.set_nodelay(true);
                    super::sockopt::keepalive(&st);
                    (Stream::Tcp(st), addr.to_string(), addr.ip().to_string())
                }),
                ListenSocket::Unix(s) => s.accept().map(|(st, _)| {
                    let label = super::sockopt::peer_cred_label(&st);
                    (Stream::Unix(st), label.clone(), label)
                }),
            };
            let (stream, peer, auth_addr) = match accepted {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog until a slot frees.
                    log::warn!("accept on {}: {e}", self.listeners.get(li).map_or("?", |l| &l.endpoint));
                    return;
                }
            };
            if self.slots.is_full() || !self.budget.take(Conn::INITIAL_BYTES) {
                if stats::bump(&mut self.router.stats.rejected_conn_full) {
                    log::warn!("connection from {peer} refused: {} connections (or the buffer budget) in use", self.slots.live());
                }
                drop(stream);
                continue;
            }
            if self.handshaking >= self.limits.max_handshakes {
                self.evict_oldest_handshake();
            }
            let conn = Box::new(Conn::new(stream, mechanism, li as u8, now, &peer, &auth_addr));
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

    fn evict_oldest_handshake(&mut self) {
        let oldest = self
            .slots
            .ids()
            .filter_map(|id| {
                let index = id.index;
                let accepted = self.slots_peek_handshake(index)?;
                Some((accepted, id))
            })
            .min_by_key(|(t, _)| *t)
            .map(|(_, id)| id);
        if let Some(id) = oldest {
            if stats::bump(&mut self.router.stats.rejected_handshake_evicted) {
                log::warn!("{} unfinished handshakes: closing the oldest to make room", self.handshaking);
            }
            self.close(id, "handshake evicted");
        }
    }

    fn slots_peek_handshake(&self, index: u16) -> Option<Instant> {
        // Read-only peek through a shared borrow of the slot table.
        let slots: &Slots = &self.slots;
        slots.peek(index).filter(|c| !c.handshake_done).map(|c| c.accepted_at)
    }

    /// Read and process one connection (see the module doc).
    ///
    /// `short_read_drains`: a read that returned less than the free space means the socket is
    /// drained, so the final read that would only return `WouldBlock` is skipped (edge-triggered
    /// epoll reports every later arrival). Only for a readable event without hang-up; the ready
    /// list and hang-ups read until `WouldBlock`.
    fn service(&mut self, id: SlotId, now: Instant, short_read_drains: bool) {
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
                self.close(id, "closed by peer");
                return;
            }
            if read_total >= READ_BUDGET_BYTES {
                self.ready_next.push(id);
                return;
            }
            let need = conn.rx.len() + 1;
            if !conn.rx.make_room(need, &mut self.budget) {
                conn.paused = Some(Pause::Budget);
                self.paused.push(id);
                if stats::bump(&mut self.router.stats.paused_budget) {
                    log::warn!("buffer budget exhausted: pausing reads from {}", conn.peer);
                }
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
    fn drain_input(&mut self, id: SlotId, now: Instant) -> Step {
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
            let mechanism = conn.session.mechanism();
            let cfg = SessionConfig {
                mechanism,
                identity: &self.router_id,
                limits: &self.limits,
                curve: self.curve.as_ref(),
            };
            let tx_before = conn.tx.buf.len();
            let data = conn.rx.buf.get_mut(conn.rx.start..conn.rx.end).unwrap_or(&mut []);
            let r = conn.session.handle_input(&cfg, data, &mut conn.tx.buf, &mut self.parts, &mut rand_core::OsRng);
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
                    if need > conn.rx.buf.len() && !conn.rx.make_room(need, &mut self.budget) {
                        conn.paused = Some(Pause::Budget);
                        self.paused.push(id);
                        if stats::bump(&mut self.router.stats.paused_budget) {
                            log::warn!("buffer budget exhausted: pausing reads from {}", conn.peer);
                        }
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
                    let r = conn.session.authorize(&cfg, allow, &mut conn.tx.buf);
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
                        conn.rx.consume(consumed);
                        // First wins: a duplicate's messages are dropped (VIP.md §2.4) unless
                        // the identity has been freed meanwhile.
                        self.attach(id);
                        if stats::bump(&mut self.router.stats.dropped_duplicate_identity) {
                            log::info!("dropped a message from a duplicate-identity connection");
                        }
                        continue;
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

    fn attach(&mut self, id: SlotId) {
        let Some(conn) = self.slots.get_mut(id) else { return };
        let identity: heapless::Vec<u8, 255> =
            heapless::Vec::from_slice(conn.session.identity()).unwrap_or_default();
        match self.router.attach(PeerId(id.index), &identity) {
            Ok(()) => {
                conn.attached = true;
                log::debug!("peer {:?} attached from {}", String::from_utf8_lossy(&identity), conn.peer);
            }
            Err(_) => conn.attached = false,
        }
    }

    /// Route the message in `self.parts` from connection `id`.
    fn route(&mut self, id: SlotId, now: Instant) -> Step {
        let Some(conn) = self.slots.get_mut(id) else { return Step::Stop };
        let on_full = if conn.stall_expired { OnFull::Again } else { OnFull::Pause };
        conn.stall_expired = false;
        // Borrow the sender's receive buffer while the sink writes into other connections
        // (and possibly the sender's own transmit queue): move it out, no copy.
        let rx = std::mem::take(&mut conn.rx);
        let data = rx.buf.get(rx.start..rx.end).unwrap_or(&[]);
        let msg = Message::new(data, &self.parts);
        let mut sink = ConnSink::new(&mut self.slots, &mut self.dirty, &mut self.broken, &mut self.budget, &self.limits);
        let outcome = self.router.handle(PeerId(id.index), msg, &mut sink, on_full);
        let (delivered, refused) = (sink.delivered, sink.refused_budget);
        self.close_broken();
        self.router.stats.msgs_out += delivered;
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

    fn close_broken(&mut self) {
        while let Some(b) = self.broken.pop() {
            self.close(b, "transmit failure");
        }
    }

    fn protocol_error(&mut self, id: SlotId, e: DecodeError) {
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

    fn flush(&mut self, id: SlotId) {
        let Some(conn) = self.slots.get_mut(id) else { return };
        conn.dirty = false;
        match conn.flush() {
            Ok(n) => {
                self.router.stats.bytes_out += n as u64;
                if n > 0 {
                    conn.last_active = self.last_tick;
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

    fn flush_dirty(&mut self) {
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

    fn flush_all(&mut self) {
        let ids: Vec<SlotId> = self.slots.ids().collect();
        for id in ids {
            self.flush(id);
        }
    }

    /// Resume paused connections whose reason went away; expire stalls.
    fn resume_paused(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.paused.len() {
            let id = self.paused.get(i).copied().unwrap_or(SlotId { index: 0, generation: 0 });
            let resume = match self.slots.get_mut(id).and_then(|c| c.paused) {
                None => {
                    self.paused.swap_remove(i);
                    continue;
                }
                Some(Pause::Budget) => {
                    self.budget.used() + crate::limits::RX_BUF_MIN_BYTES <= self.limits.buffer_budget_bytes
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
                        if let Some(c) = self.slots.by_index(on) {
                            if !c.stalled {
                                c.stalled = true;
                                log::warn!("peer at {} has not drained its queue for {} ms: answering error 11 to its senders", c.peer, self.limits.send_stall_ms);
                            }
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
                if let Some(c) = self.slots.get_mut(id) {
                    c.paused = None;
                }
                self.paused.swap_remove(i);
                self.ready.push(id);
            } else {
                i += 1;
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        if let Some(f) = self.on_tick.as_mut() {
            f(now);
        }
        if let Some(c) = self.curve.as_mut() {
            c.cookies.rotate_if_due(now.0, &mut rand_core::OsRng);
        }
        self.sync_stats();
        self.shrink_idle(now);
        if self.handshaking == 0 {
            return;
        }
        let timeout = self.limits.handshake_timeout_ms;
        let expired: Vec<SlotId> = self
            .slots
            .ids()
            .filter(|id| {
                self.slots
                    .peek(id.index)
                    .is_some_and(|c| !c.handshake_done && now.since(c.accepted_at) >= timeout)
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
    fn shrink_idle(&mut self, now: Instant) {
        if now.0 / 1000 == self.last_shrink.0 / 1000 {
            return;
        }
        self.last_shrink = now;
        let mut freed = 0;
        for index in 0..u16::try_from(self.limits.max_connections).unwrap_or(u16::MAX) {
            if let Some(c) = self.slots.by_index(index) {
                if c.handshake_done && c.paused.is_none() && c.pending_consumed == 0 {
                    freed += c.shrink_if_idle(now);
                }
            }
        }
        self.budget.give(freed);
    }

    /// Close connection `id`: deregister, leave the peer set (notifying the others), return its
    /// buffers to the budget, free the slot.
    fn close(&mut self, id: SlotId, why: &str) {
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

    /// Bound endpoints, as reported to peers.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.listeners.iter().map(|l| l.endpoint.as_str())
    }

    /// Remove ipc socket files (on exit).
    pub fn cleanup(&mut self) {
        for l in &self.listeners {
            if let Some(p) = &l.path {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}
