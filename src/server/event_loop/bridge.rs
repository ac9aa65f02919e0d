//! The RabbitMQ bridge in the event loop: the server side of the contract in
//! [`crate::vip::bridge`] (the state and its backoff live there, the connection's protocol in
//! [`crate::server::broker`]), shaped like the links to remote platforms (`links.rs`).
//!
//! * Every turn, [`Server::drive_bridge`] asks the router whether to dial
//!   ([`Router::poll_bridge`](crate::vip::router::Router::poll_bridge)); a dial resolves the
//!   broker's host (the system resolver, blocking the loop for the lookup: give an address on
//!   gateways whose resolver may be slow), opens the connection ([`Origin::Broker`]) and lends
//!   its bus to the router, which hands it every binding it wants. A dial that fails at once is
//!   the bridge down at once.
//! * The AMQP handshake and topology completing is the bridge up; every message the connection
//!   holds goes to [`Router::bridge_input`](crate::vip::router::Router::bridge_input) with the
//!   connection checked out of its slot (the router delivers to local peers only) and is then
//!   acknowledged; its close, whatever the reason, is the bridge down (with the publishes it
//!   left unconfirmed counted as `amqp_unconfirmed_lost`).
//! * Its timers (heartbeats, the client's deadlines) run on the tick; the earlier of the
//!   redial time and the next timer bounds the poll timeout.
//! * What the router publishes or binds goes into the client's own buffer, which
//!   [`Server::flush`] moves to the socket ([`crate::server::protocol::Protocol::take_output`]).
//!
//! The connection is never a VIP peer and can never block a local sender: a local peer's full
//! queue costs the broker's delivery, not the loop.

use super::sink::ConnSink;
use super::*;

/// The bridge's connection, and what it is made from.
#[derive(Debug, Default)]
pub(super) struct BridgeConn {
    /// The broker connection, while one is open or opening.
    pub(super) slot: Option<SlotId>,
    #[cfg(feature = "rabbitmq")]
    config: Option<crate::server::broker::BrokerConfig>,
}

impl Server {
    /// Bridge the router to the RabbitMQ broker of `config` (at start-up): dialled from the next
    /// turn, redialled after every failure with a backoff.
    #[cfg(feature = "rabbitmq")]
    pub fn set_bridge(&mut self, config: crate::server::broker::BrokerConfig) {
        self.router.set_bridge(&config.label, config.export.clone());
        self.bridge.config = Some(config);
    }

    /// The status of the bridge's connection while one exists (for the `query stats` object).
    pub(super) fn bus_status(&mut self) -> Option<crate::vip::bridge::BusStatus> {
        self.bridge.slot.and_then(|id| self.slots.get_mut(id)).and_then(Conn::bus).map(|b| b.status())
    }

    /// Dial the broker when the router says it is time.
    pub(super) fn drive_bridge(&mut self, now: Instant) {
        #[cfg(feature = "rabbitmq")]
        if self.router.poll_bridge(now) {
            self.dial_bridge(now);
        }
        #[cfg(not(feature = "rabbitmq"))]
        let _ = now;
    }

    /// Open the broker connection; a failure at once is the bridge down at once.
    #[cfg(feature = "rabbitmq")]
    fn dial_bridge(&mut self, now: Instant) {
        use std::net::ToSocketAddrs;
        let Some(config) = self.bridge.config.as_ref() else { return };
        let label = config.label.clone();
        let made = crate::server::broker::BrokerProtocol::new(config).map_err(io::Error::other);
        let addr = (config.host.as_str(), config.port)
            .to_socket_addrs()
            .and_then(|mut a| a.next().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound)));
        let dialled = made.and_then(|p| addr.map(|a| (a, p))).and_then(|(a, p)| {
            self.dial_as(crate::server::link::DialTarget::Tcp(a), Box::new(p), Origin::Broker, &label)
        });
        match dialled {
            Ok(slot) => {
                self.bridge.slot = Some(slot);
                let (router, stats, mut sink) = self.routing(None);
                router.bridge_dialled(stats, &mut sink);
                let totals = sink.totals();
                self.account(totals);
            }
            Err(e) => {
                log::debug!("RabbitMQ bridge: dial {label}: {e}");
                self.router.bridge_down(&mut self.stats, now, crate::vip::bridge::BridgeDown::ConnectFailed);
            }
        }
    }

    /// The broker connection `id` declared the topology: the bridge is up.
    pub(super) fn on_bridge_ready(&mut self, id: SlotId) {
        self.slots.set_phase(id, Phase::Linked);
        self.router.bridge_up(&mut self.stats);
    }

    /// The broker connection `id` holds a message: the router's bridge input, then the ack.
    pub(super) fn on_bridge_message(&mut self, id: SlotId) -> Next {
        let Some(mut conn) = self.slots.check_out(id) else { return Next::Stop };
        let delivered = {
            let (msg, _) = conn.route_view();
            let mut sink = ConnSink::new(
                &mut self.slots,
                &mut self.sched,
                &mut self.budget,
                &mut self.fanout,
                &mut self.shared,
                &mut self.broadcasts,
                &mut self.traffic,
                &self.limits,
                &self.links,
                None, // checked out: the router answers nothing to the broker from here
                None,
            );
            self.router.bridge_input(&mut self.stats, msg, &mut sink);
            sink.totals()
        };
        self.slots.check_in(id, conn);
        self.account(delivered);
        self.fanout.trim();
        let Some(conn) = self.slots.get_mut(id) else { return Next::Stop };
        conn.release_message();
        conn.queued().mark_dirty(id, &mut self.sched.dirty); // the ack goes out with the flush
        Next::ReadMore
    }

    /// The broker connection `conn` (slot `id`) closed in `phase` for `reason`: the bridge is
    /// down.
    pub(super) fn on_bridge_closed(&mut self, id: SlotId, conn: &mut Conn, reason: CloseReason, phase: Phase) {
        use crate::vip::bridge::BridgeDown;
        if self.bridge.slot == Some(id) {
            self.bridge.slot = None;
        }
        self.stats.closed += 1;
        if let CloseReason::Protocol(_) = reason {
            // The router's own limits refused the broker's input (a frame or a content larger
            // than any message, on `amqp` or `amqps`): the broker's fault, counted with its
            // other protocol errors and said at `warn`, with the reason. (The client's own
            // errors are `Foreign`, counted and logged where they are found: `broker/pump.rs`.)
            if stats::bump_and_should_log(&mut self.stats.amqp_protocol_errors) {
                log::warn!("RabbitMQ bridge: closing the connection to {}: {reason}", conn.label());
            }
        } else {
            log::debug!("closed the RabbitMQ bridge's connection to {} ({reason})", conn.label());
        }
        let lost = conn.bus().map_or(0, |b| b.status().unconfirmed);
        self.stats.amqp_unconfirmed_lost += lost as u64;
        let why = match (phase, reason) {
            (Phase::Linked | Phase::Attached | Phase::Duplicate, _) => BridgeDown::Closed,
            (Phase::Connecting { .. }, _) | (_, CloseReason::ConnectFailed) => BridgeDown::ConnectFailed,
            _ => BridgeDown::HandshakeFailed,
        };
        if why == BridgeDown::HandshakeFailed {
            log::debug!("RabbitMQ bridge: handshake with {} failed: {reason}", conn.label());
        }
        self.router.bridge_down(&mut self.stats, self.now, why);
    }

    /// Run the broker connection's timers when due (on the tick).
    pub(super) fn bridge_timers(&mut self, now: Instant) {
        let Some(id) = self.bridge.slot else { return };
        let mut rng = rand_core::OsRng;
        let mut cx = Context {
            session: SessionConfig { identity: &self.router_id, limits: &self.limits, curve: self.curve.as_ref() },
            rng: &mut rng,
            now,
            stats: &mut self.stats,
        };
        let Some(conn) = self.slots.get_mut(id) else { return };
        if conn.next_timer().is_none_or(|t| t > now) {
            return;
        }
        match conn.on_timer(&mut cx, &mut self.budget) {
            Ok(true) => conn.queued().mark_dirty(id, &mut self.sched.dirty),
            Ok(false) => {}
            Err(reason) => self.close(id, reason),
        }
    }

    /// Milliseconds until the bridge is due to be dialled again or its connection's timer is
    /// due, if either is.
    pub(super) fn bridge_wait_ms(&self) -> Option<u64> {
        let timer = self.bridge.slot.and_then(|id| self.slots.peek(id.index)).and_then(Conn::next_timer);
        let redial = self.router.next_bridge_deadline();
        let at = match (timer, redial) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        at.map(|t| t.0.saturating_sub(self.now.0))
    }
}
