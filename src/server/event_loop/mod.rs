//! The single-threaded mio event loop: accept and dial, read, route, flush, block/resume, timers.
//!
//! One turn ([`Server::turn`], at the time its caller read from the clock):
//! 1. [`Server::poll`] waits for events (not at all when work is pending, else until the next
//!    tick);
//! 2. listeners accept until `WouldBlock`; readable connections are serviced (read until
//!    `WouldBlock` or the per-turn read budget, routing every complete message at once);
//!    writable connections flush, or finish their connect if we dialled them;
//! 3. the ready list (connections with bytes left to read, or just resumed) is serviced —
//!    edge-triggered epoll will not wake them again (mio "draining readiness");
//! 4. pending `peerlist` broadcasts are written into the members' queues, within a per-turn
//!    budget, held back during a storm of connections (`broadcast.rs`); every connection that
//!    got output this turn is flushed once (the dirty list: many messages per `write`);
//! 5. blocked connections whose reason went away (or whose recipient stalled) are resumed;
//! 6. on each tick, connect and handshake deadlines are enforced, idle buffers shrink and
//!    listeners whose `accept` failed (out of descriptors) are retried.
//!
//! One message from socket to socket: `service` reads into the connection's receive buffer;
//! `drain_input` feeds it to the connection's protocol ([`super::protocol::Driver`]) and acts on
//! each [`Input`] in its own function (`input.rs`); a complete message stays held by the session
//! while `route` checks the sender out of its slot, lends the router the message, the counters
//! and a `ConnSink` (`sink.rs`) over the other connections, and checks it back in; the sink encodes
//! into the recipients' transmit queues; `flush_dirty` writes them (`output.rs`). When the
//! router says a recipient is full, the sender is [`Blocked`] and its message simply stays held:
//! the next `drain_input` after the resume asks the session again and gets the same message.
//!
//! Interest is recomputed from state (rustls `tlsserver-mio` style): READABLE always,
//! WRITABLE only while a flush left bytes behind (or a dialled connect is in flight).
//!
//! Every listener listens with the largest backlog the system allows
//! ([`Listener::raise_backlog`]): a reconnect storm must not wait in SYN retransmissions.

use std::io;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};

use super::auth_report::AuthReports;
use super::close::CloseReason;
use super::conn::slots::{SlotId, Slots};
use super::conn::{Blocked, Budget, Conn, Origin, Phase, Stream};
use super::listener::{ListenSocket, Listener};
use super::protocol::{Context, Protocol};
use super::signals::{SignalEvent, Signals};
use super::watch::Watch;
use crate::auth::AuthRequest;
use crate::json::SliceWriter;
use crate::limits::{Limits, MAX_EVENTS, READ_BUDGET_BYTES, TICK_MS};
use crate::stats::{self, PeerTraffic, Stats};
use crate::time::Instant;
use crate::vip::peers::PeerId;
use crate::vip::router::{OnFull, Outcome, Router};
use crate::zmtp::SessionError;
use crate::zmtp::mechanism::Mechanism;
use crate::zmtp::session::{CurveContext, Input, SessionConfig};

mod accept;
mod bridge;
mod broadcast;
mod health;
mod input;
mod links;
mod output;
mod route;
mod sink;

pub(in crate::server) use broadcast::Broadcasts;

/// What the policy is asked about a peer (VIP.md §9.6; the ZAP request of ZMTP.md §8.2).
#[derive(Clone, Copy, Debug)]
pub struct AuthQuery<'a> {
    /// The request the authorisation decides: the listener's ZAP domain, the peer's address
    /// (TCP: IP without port; ipc: `localhost:uid:gid:pid`), mechanism and credentials.
    pub request: AuthRequest<'a>,
    /// The routing identity from its READY/INITIATE metadata.
    pub identity: &'a [u8],
    /// The time of the decision.
    pub now: Instant,
}

/// The platform's rules, as the loop asks them: who may connect (the in-process ZAP handler),
/// and what to do on SIGHUP or when a watched file changes.
pub trait Policy {
    /// Does the policy decide NULL peers too? True with authentication on: VOLTTRON binds every
    /// endpoint with a ZAP domain, and libzmq then asks ZAP about NULL peers (VIP.md §9.4).
    /// CURVE and PLAIN peers are always decided.
    fn decides_null(&self) -> bool {
        true
    }

    /// May the peer of `q` connect?
    fn authorize(&mut self, q: &AuthQuery<'_>) -> bool;

    /// Load the rules again (into themselves and into `router`); a file that cannot be loaded
    /// is counted in `stats` (`config_load_errors`, link problems in their own counters).
    fn reload(&mut self, router: &mut Router, stats: &mut Stats) {
        let _ = (router, stats);
    }

    /// Admission reports waiting for `platform.auth` (`--auth-reports`, `server::auth_report`):
    /// the loop delivers them once per tick.
    fn reports(&mut self) -> Option<&mut AuthReports> {
        None
    }
}

/// A closure is a policy that only decides (nothing to reload).
impl<F: FnMut(&AuthQuery<'_>) -> bool> Policy for F {
    fn authorize(&mut self, q: &AuthQuery<'_>) -> bool {
        self(q)
    }
}

/// Until a policy is installed, nobody passes a CURVE/PLAIN handshake and NULL peers are not
/// asked (`allow-auth = False`).
struct NoPolicy;

impl Policy for NoPolicy {
    fn decides_null(&self) -> bool {
        false
    }

    fn authorize(&mut self, _: &AuthQuery<'_>) -> bool {
        false
    }
}

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

/// What happened to a connection this router dialled ([`Server::dial`]), for its owner (which
/// reconnects with backoff, for instance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialEvent {
    /// Its handshake completed: it is a VIP peer now.
    Ready(SlotId),
    /// It was closed (or never connected).
    Closed(SlotId, CloseReason),
}

/// Per-turn work lists. A connection is on `dirty`/`ready` at most once (its
/// [`super::conn::Queued`] flags), on `blocked` while its [`Blocked`] is set.
#[derive(Debug, Default)]
struct Sched {
    /// Serviced this turn without an event (input left over, or resumed).
    ready: Vec<SlotId>,
    /// Serviced next turn (read budget used up this turn).
    ready_next: Vec<SlotId>,
    /// Output queued this turn: flushed at its end.
    dirty: Vec<SlotId>,
    /// Blocked connections, checked each turn for a resume.
    blocked: Vec<SlotId>,
    /// Connections whose transmit side failed while the router wrote to them (closed after).
    broken: Vec<SlotId>,
}

pub use health::StatsPublish;

/// What start-up installs: the rules and the watchdog.
struct Hooks {
    policy: Box<dyn Policy>,
    /// Called once per tick with the time (sd_notify watchdog).
    on_tick: Option<Box<dyn FnMut(Instant)>>,
}

/// The server: sockets, slots, the router and the counters.
pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    signals: Signals,
    watch: Option<Watch>,
    slots: Slots,
    /// The VIP core.
    pub router: Router,
    stats: Stats,
    /// Messages per peer, by slot (the top talkers of `query stats`).
    traffic: PeerTraffic,
    /// The router's own periodic publish of its counters, if configured.
    health: Option<health::Health>,
    limits: Limits,
    budget: Budget,
    router_id: Vec<u8>,
    curve: Option<CurveContext>,
    hooks: Hooks,
    sched: Sched,
    /// The verbatim encoding of the current pubsub fan-out (see `sink.rs`).
    fanout: sink::FanoutCache,
    /// The shared transmit pool: verbatim fan-out deliveries, referred to by the queues
    /// (`conn/shared.rs`).
    shared: crate::server::conn::shared::SharedPool,
    /// The connections of the links to remote platforms (see `links.rs`).
    links: links::LinkConns,
    /// The RabbitMQ bridge's connection (see `bridge.rs`).
    bridge: bridge::BridgeConn,
    /// `peerlist` notifications not yet written to every registered peer (`broadcast.rs`).
    broadcasts: Broadcasts,
    /// Listeners (bit = index) whose last `accept` failed with connections left in the backlog.
    accept_retry: u32,
    dial_events: Vec<DialEvent>,
    clock: std::time::Instant,
    exit: Option<Exit>,
    /// The time of the current turn (what `flush` stamps `last_active` with).
    now: Instant,
    last_tick: Instant,
    last_shrink: Instant,
}

/// What to do with a connection after its buffered input was processed, in this turn.
enum Next {
    /// Read more from its socket (within the read budget).
    ReadMore,
    /// Leave it for now: it is blocked, closed, or its read budget is used up.
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
            if let Err(e) = l.raise_backlog() {
                log::warn!("{}: cannot raise the listen backlog: {e}", l.endpoint);
            }
            match &mut l.socket {
                ListenSocket::Tcp(s) => poll.registry().register(s, Token(i), Interest::READABLE)?,
                ListenSocket::Unix(s) => poll.registry().register(s, Token(i), Interest::READABLE)?,
            }
        }
        log_backlog(&limits);
        let max = limits.max_connections;
        let link_conns = links::LinkConns::new(limits.max_links);
        let list = || Vec::with_capacity(max);
        Ok(Server {
            poll,
            listeners,
            signals,
            watch: None,
            slots: Slots::new(max),
            router,
            stats: Stats::default(),
            traffic: PeerTraffic::new(max),
            health: None,
            budget: Budget::new(limits.buffer_budget_bytes),
            limits,
            router_id,
            curve: None,
            hooks: Hooks { policy: Box::new(NoPolicy), on_tick: None },
            sched: Sched { ready: list(), ready_next: list(), dirty: list(), blocked: list(), broken: list() },
            fanout: sink::FanoutCache::default(),
            shared: crate::server::conn::shared::SharedPool::new(),
            links: link_conns,
            bridge: bridge::BridgeConn::default(),
            broadcasts: Broadcasts::new(max),
            accept_retry: 0,
            dial_events: Vec::new(),
            clock: std::time::Instant::now(),
            exit: None,
            now: Instant(0),
            last_tick: Instant(0),
            last_shrink: Instant(0),
        })
    }

    /// Serve CURVE with these keys.
    pub fn set_curve(&mut self, ctx: CurveContext) {
        self.curve = Some(ctx);
    }

    /// Install the platform's rules. CURVE and PLAIN endpoints always ask them; NULL
    /// endpoints ask them too (before sending READY) if [`Policy::decides_null`], as libzmq does
    /// for a NULL socket with a ZAP domain while a ZAP handler runs — VOLTTRON's sockets with
    /// auth on (VIP.md §9.4). SIGHUP and file changes call [`Policy::reload`].
    pub fn set_policy(&mut self, policy: Box<dyn Policy>) {
        self.hooks.policy = policy;
    }

    /// Decide every peer, NULL ones included, with `f` (a policy with nothing to reload).
    pub fn set_authorize(&mut self, f: Box<dyn FnMut(&AuthQuery<'_>) -> bool>) {
        self.set_policy(Box::new(f));
    }

    /// Run `f` once per tick (e.g. the systemd watchdog).
    pub fn set_on_tick(&mut self, f: Box<dyn FnMut(Instant)>) {
        self.hooks.on_tick = Some(f);
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

    /// The server's clock: milliseconds since it was created.
    pub fn now(&self) -> Instant {
        Instant(u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Use only `chunks` chunks of the shared transmit pool (`limits::SHARED_CHUNKS`), and
    /// `bytes` of each: for the tests of its copy fallback (`tests/no_alloc_pubsub.rs`).
    #[doc(hidden)]
    pub fn limit_shared_pool(&mut self, chunks: usize, bytes: usize) {
        self.shared.limit(chunks, bytes);
    }

    /// Take every usable chunk of the shared transmit pool now
    /// ([`crate::server::conn::shared::SharedPool::take_all`]): the
    /// warm-up of `tests/no_alloc_pubsub.rs` leaves the pool at its ceiling.
    #[doc(hidden)]
    pub fn take_shared_pool(&mut self) -> bool {
        self.shared.take_all(&mut self.budget)
    }

    /// The counters, to count what start-up found (e.g. `config_load_errors`).
    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Run until a stop signal or `quit`.
    ///
    /// # Errors
    /// Only a failing `poll` stops the loop with an error.
    pub fn run(&mut self) -> io::Result<Exit> {
        let mut events = Events::with_capacity(MAX_EVENTS);
        loop {
            if let Some(exit) = self.run_once(&mut events)? {
                return Ok(exit);
            }
        }
    }

    /// [`Server::poll`], then [`Server::turn`] at the time the clock says.
    ///
    /// # Errors
    /// Only a failing `poll`.
    pub fn run_once(&mut self, events: &mut Events) -> io::Result<Option<Exit>> {
        self.poll(events, None)?;
        Ok(self.turn(events, self.now()))
    }

    /// How long `poll` may wait: not at all while work is pending, a little while connections
    /// are blocked (their resume is checked once per turn), else until the next tick.
    pub fn timeout(&self) -> Duration {
        // Output queued by the last flush pass itself (a close there queues `peerlist drop`s)
        // counts as work pending, like input left over: it goes out now, not at the next tick.
        if !self.sched.ready.is_empty() || !self.sched.dirty.is_empty() || self.broadcasts.more_now() {
            Duration::ZERO
        } else if !self.sched.blocked.is_empty() {
            Duration::from_millis(10)
        } else {
            // A down link or bridge due for its next dial wakes the loop then, not at the next
            // tick.
            let wait = match (self.link_wait_ms(), self.bridge_wait_ms()) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(TICK_MS),
            };
            Duration::from_millis(wait.min(TICK_MS))
        }
    }

    /// Wait for events: at most [`Server::timeout`], and at most `cap` (tests that drive the
    /// time themselves). An interrupted wait returns no events.
    ///
    /// # Errors
    /// A failing `poll`.
    pub fn poll(&mut self, events: &mut Events, cap: Option<Duration>) -> io::Result<()> {
        let timeout = cap.map_or(self.timeout(), |c| c.min(self.timeout()));
        match self.poll.poll(events, Some(timeout)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                events.clear();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// One turn of the loop at time `now` over the `events` of the last [`Server::poll`] (see
    /// the module doc). Returns `Some` when the router must stop.
    pub fn turn(&mut self, events: &Events, now: Instant) -> Option<Exit> {
        self.now = now;
        self.shared.set_now(now);
        // Handshakes under way (a storm of connections): notifications may wait (broadcast.rs).
        let storm = self.slots.handshaking() > 0;
        self.stats.uptime_ms = now.0;
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
                    self.on_writable(id, now);
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    let hangup = ev.is_read_closed() || ev.is_error();
                    self.service(id, now, !hangup);
                }
            } else if token.0 < self.listeners.len() {
                self.accept(token.0, now);
            }
        }
        self.service_ready(now);
        self.drive_links(now);
        self.drive_bridge(now);
        self.write_broadcasts(storm, now);
        self.publish_stats_if_due(now);
        self.flush_dirty();
        self.resume_blocked(now);
        if now.since(self.last_tick) >= TICK_MS {
            self.last_tick = now;
            self.tick(now);
        }
        if let Some(exit) = self.exit {
            self.flush_all();
            return Some(exit);
        }
        None
    }

    /// Connections with input left over from earlier turns (read budget, resumed).
    fn service_ready(&mut self, now: Instant) {
        let mut ready = std::mem::take(&mut self.sched.ready);
        for &id in &ready {
            if let Some(c) = self.slots.get_mut(id) {
                c.queued().clear_ready(); // may queue itself again (read budget)
            }
            self.service(id, now, false);
        }
        ready.clear();
        self.sched.ready = ready;
        std::mem::swap(&mut self.sched.ready, &mut self.sched.ready_next);
    }

    /// Dial `addr` (TCP, non-blocking): once the connect completes, `protocol` speaks
    /// ([`Protocol::connected`]); once its handshake completes, the connection is a VIP peer
    /// under [`Protocol::identity`]. Its end is reported in [`Server::take_dial_events`]; the
    /// connect and the handshake together must finish within `handshake-timeout-ms`.
    ///
    /// # Errors
    /// The socket could not be created or registered, every slot is taken, or the buffer budget
    /// has no room for its initial buffers.
    pub fn dial(&mut self, addr: std::net::SocketAddr, protocol: Box<dyn Protocol>) -> io::Result<SlotId> {
        let label = addr.to_string();
        self.dial_as(crate::server::link::DialTarget::Tcp(addr), protocol, Origin::Dialled, &label)
    }

    /// What happened to dialled connections since the last call.
    pub fn take_dial_events(&mut self) -> Vec<DialEvent> {
        std::mem::take(&mut self.dial_events)
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
        self.hooks.policy.reload(&mut self.router, &mut self.stats);
    }

    /// Log every counter (and the pubsub fields) as one JSON line: the `query stats` object.
    pub fn log_stats(&mut self) {
        self.sync_stats();
        let mut buf = [0u8; crate::vip::router::STATS_JSON_BYTES];
        let mut w = SliceWriter::new(&mut buf);
        let bus = self.bus_status();
        if self.router.write_stats_json(&self.stats, bus, Some(&self.traffic), &mut w).is_ok() {
            log::info!("stats {}", String::from_utf8_lossy(w.written()));
        }
    }

    fn sync_stats(&mut self) {
        self.stats.connections = self.slots.live() as u64;
        self.stats.buffer_bytes = self.budget.used() as u64;
        self.stats.buffer_bytes_hwm = self.budget.hwm() as u64;
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

/// Say what the listen backlog is, and warn when the system keeps it below `max-connections`
/// (a reconnect storm would then wait in SYN retransmissions: 1 s, 3 s, 7 s …).
fn log_backlog(limits: &Limits) {
    match super::listener::somaxconn() {
        Some(n) if (n as usize) < limits.max_connections => log::warn!(
            "listen backlog {n} (net.core.somaxconn) is below max-connections {}: raise it \
             (sysctl net.core.somaxconn={}) so that a reconnect storm is not held back",
            limits.max_connections,
            limits.max_connections
        ),
        Some(n) => log::info!("listen backlog {n} (net.core.somaxconn)"),
        None => log::info!("listen backlog: the system maximum (net.core.somaxconn unreadable)"),
    }
}

#[cfg(test)]
mod tests;
