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
//! 6. on each tick, handshake deadlines are enforced and listeners whose `accept` failed
//!    (out of descriptors) are retried.
//!
//! Interest is recomputed from state (rustls `tlsserver-mio` style): READABLE always,
//! WRITABLE only while a flush left bytes behind.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};

use super::auth_report::AuthReports;
use super::conn::{Budget, Conn, Pause, Stream};
use super::listener::{ListenSocket, Listener};
use super::signals::{SignalEvent, Signals};
use super::slots::{SlotId, Slots};
use super::watch::Watch;
use crate::limits::{Limits, MAX_EVENTS, READ_BUDGET_BYTES, TICK_MS};
use crate::stats::{self, FixedWriter};
use crate::time::Instant;
use crate::vip::peers::PeerId;
use crate::vip::router::{Full, OnFull, Outcome, Router, Shared, Sink};
use crate::zmtp::mechanism::{Credentials, Mechanism};
use crate::zmtp::session::{CurveContext, Input, Session, SessionConfig};
use crate::zmtp::{DecodeError, Message, Parts};

mod input;
mod output;
mod sink;

use sink::ConnSink;

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
    /// Listeners (bit = index) whose last `accept` failed with connections left in the backlog.
    accept_retry: u32,
    ready: Vec<SlotId>,
    ready_next: Vec<SlotId>,
    dirty: Vec<SlotId>,
    paused: Vec<SlotId>,
    parts: Parts,
    /// Connections whose transmit side failed while the router wrote to them (closed after).
    broken: Vec<SlotId>,
    curve: Option<CurveContext>,
    authorize: Authorize,
    /// Ask `authorize` about NULL peers too (set with it).
    verify_null: bool,
    clock: std::time::Instant,
    exit: Option<Exit>,
    last_tick: Instant,
    /// The clock read at the start of the current loop turn (what `flush` stamps `last_active` with).
    turn_now: Instant,
    last_shrink: Instant,
    /// Called once per loop turn with the time (sd_notify watchdog, reloads).
    on_tick: Option<Box<dyn FnMut(Instant)>>,
    on_reload: Option<OnReload>,
    /// Admission reports for `platform.auth`, delivered on each tick (`server::auth_report`).
    auth_reports: Option<Rc<RefCell<AuthReports>>>,
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
            accept_retry: 0,
            ready: Vec::with_capacity(max),
            ready_next: Vec::with_capacity(max),
            dirty: Vec::with_capacity(max),
            paused: Vec::with_capacity(max),
            parts: Parts::new(),
            broken: Vec::with_capacity(max),
            curve: None,
            // Until an authoriser is installed, nobody passes a CURVE/PLAIN handshake.
            authorize: Box::new(|_| false),
            verify_null: false,
            clock: std::time::Instant::now(),
            exit: None,
            last_tick: Instant(0),
            turn_now: Instant(0),
            last_shrink: Instant(0),
            on_tick: None,
            on_reload: None,
            auth_reports: None,
        })
    }

    /// Serve CURVE with these keys.
    pub fn set_curve(&mut self, ctx: CurveContext) {
        self.curve = Some(ctx);
    }

    /// Install the authorisation hook. CURVE and PLAIN endpoints always ask it; from now on
    /// NULL endpoints ask it too (before sending READY), as libzmq does for a NULL socket with a
    /// ZAP domain while a ZAP handler runs — VOLTTRON's sockets with auth on (VIP.md §9.4).
    /// Without a hook NULL endpoints admit everyone (`allow-auth = False`).
    pub fn set_authorize(&mut self, f: Authorize) {
        self.authorize = f;
        self.verify_null = true;
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

    /// Deliver the reports the authorisation hook queues in `reports` to `platform.auth`, once
    /// per tick (`--auth-reports`, `server::auth_report`).
    pub fn set_auth_reports(&mut self, reports: Rc<RefCell<AuthReports>>) {
        self.auth_reports = Some(reports);
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
        // Output queued by the last flush pass itself (a close there queues `peerlist drop`s)
        // counts as work pending, like input left over: it goes out now, not at the next tick.
        let timeout = if !self.ready.is_empty() || !self.dirty.is_empty() {
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
        self.turn_now = now;
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
            if let Some(c) = self.slots.get_mut(id) {
                c.in_ready = false; // may queue itself again (read budget)
            }
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

#[cfg(test)]
mod tests;
