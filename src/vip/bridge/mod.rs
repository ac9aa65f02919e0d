//! The message-bus bridge as the router sees it (issue #15; research memo `multiplatform.md`
//! §6): this gateway is VOLTTRON instance `N` on a shared RabbitMQ vhost, and its local agents
//! reach the instances there (and are reached by them) through one broker connection.
//!
//! The router knows nothing of AMQP. It talks to the bridge's connection through [`Bus`]
//! (lent by the server's sink, [`super::router::Sink::bus`], while such a connection exists),
//! in VIP terms: bind a local peer or an `all_platforms` prefix, publish a local agent's
//! `external_rpc send_platform`, export a local publish. The server's broker protocol
//! (`server::broker`, cargo feature `rabbitmq`) maps those to AMQP with [`crate::amqp::mapping`]
//! and hands what arrives from the broker back to the router as VIP messages in the form a
//! remote platform's link sends them ([`Router::bridge_input`](super::router::Router::bridge_input)):
//!
//! | from the broker | to the router (DEALER view) |
//! |---|---|
//! | RPC for `N.C` from `X.P` | `['', 'VIP1', '', M, 'external_rpc', 'send_peer', {"to_platform": N, "to_peer": C, "from_platform": X, "from_peer": P, "args": A}]` |
//! | publish `__pubsub__.X.<topic>.#` | `['', 'VIP1', '', M, 'pubsub', 'external_publish', TOPIC, BODY]` |
//! | `basic.return` of our RPC, a VOLTTRON router's `error` | `[C, 'VIP1', '', M, 'error', ERRNUM, ERRTEXT, RECIPIENT, SUBSYSTEM]` |
//!
//! # Contract with the server
//!
//! The state here is pure (no sockets, no clock: time comes in as [`Instant`]); the server drives
//! it as it drives the link table ([`super::links`]):
//!
//! * [`Router::poll_bridge`](super::router::Router::poll_bridge) every turn: `true` asks the
//!   server to dial the broker (then [`Router::bridge_dialled`](super::router::Router::bridge_dialled)
//!   with a sink that lends the new connection's [`Bus`]: every wanted binding is handed over,
//!   so that the connection declares them with the topology);
//! * [`Router::bridge_up`](super::router::Router::bridge_up) once the topology is declared and
//!   the consumer runs; [`Router::bridge_down`](super::router::Router::bridge_down) when the
//!   connection failed or closed: it is dialled again after a jittered backoff
//!   ([`BRIDGE_RETRY_MIN_MS`]…[`BRIDGE_RETRY_MAX_MS`]).
//!
//! # What the router does with it (`routing.rs`, `input.rs`)
//!
//! * **Bindings.** A local peer is bound as `N.<identity>` from its first message (when it
//!   joins the peer set and `peerlist add` goes out) until it leaves; each local
//!   `all_platforms` prefix is bound as `__pubsub__.*.<prefix>.#` while any agent holds it.
//!   While the broker is unreachable nothing is sent; the next connection binds the set as it
//!   is then. Identities that would be AMQP wildcards (`*`, `#` words) or too long for a routing
//!   key are not bound (`amqp_rejected_binding_name`), nor is a binding over
//!   `amqp-max-bindings` (`amqp_rejected_binding_full`); remote senders get 113 for such a peer.
//! * **External RPC.** `send_platform` to platform X goes over a ZMTP link to X when one is up
//!   (`super::external_rpc`), else to the broker (routing key `X.P`, mandatory); the broker
//!   down, blocked, or its unconfirmed window or transmit buffer full: VIP error 11 to the
//!   caller at once; nobody bound `X.P`: the broker returns it and the caller gets 113.
//! * **Pubsub.** A local publish on a topic under a `rabbitmq-export` prefix is published to
//!   the broker after the local deliveries ([`super::pubsub`]); when it cannot be it is dropped
//!   and counted, never queued and never waited for; it does not add to the publisher's count
//!   (the broker says nothing about its subscribers). Remote publishes are delivered to the
//!   local subscribers of the topic (`internal` and `all_platforms`), as an external publish.
//!
//! Nothing here blocks local routing: every refusal is immediate.

use super::links::{next_random, retry_delay_ms};
use crate::limits::{BRIDGE_RETRY_MAX_MS, BRIDGE_RETRY_MIN_MS};
use crate::stats::{self, Stats};
use crate::time::Instant;

mod input;
mod routing;
mod stats_json;

pub(crate) use routing::export_publish;

/// Why the bridge did not take a message or a binding. Nothing was queued in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    /// Not connected, or the topology is not declared yet.
    Down,
    /// The broker blocked publishing (`connection.blocked`, memory or disk alarm).
    Blocked,
    /// `amqp-unconfirmed` publishes await the broker's confirm.
    WindowFull,
    /// `amqp-tx-bytes` wait for the socket.
    TxFull,
    /// Over the message limit, or a name over an AMQP short string.
    TooLarge,
    /// The body is not what the mapping needs (e.g. `send_platform` without `args`).
    BadBody,
    /// `amqp-max-bindings` bindings are held.
    BindingsFull,
    /// The identity or prefix cannot be a binding (an AMQP wildcard word, too long).
    BadName,
}

impl BusError {
    /// A short text for logs.
    pub fn text(self) -> &'static str {
        match self {
            BusError::Down => "the broker is not connected",
            BusError::Blocked => "the broker blocks publishing",
            BusError::WindowFull => "too many publishes await the broker's confirm",
            BusError::TxFull => "the broker connection's transmit buffer is full",
            BusError::TooLarge => "message or name too large for AMQP",
            BusError::BadBody => "body is not what the mapping needs",
            BusError::BindingsFull => "binding table full",
            BusError::BadName => "not a valid binding",
        }
    }
}

/// What `query stats` shows of the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusStatus {
    /// Publishes awaiting the broker's confirm.
    pub unconfirmed: usize,
    /// Bindings wanted.
    pub bindings: usize,
    /// Bindings the broker confirmed.
    pub bound: usize,
    /// The broker blocks publishing.
    pub blocked: bool,
}

/// The bridge's connection, as the router uses it (implemented by the server's broker
/// protocol; see the module doc). Every call returns at once.
pub trait Bus {
    /// Want local peer `identity` bound as `N.<identity>` (`on`) or unbound. Takes effect now
    /// when connected, else with the topology of the next connection.
    ///
    /// # Errors
    /// [`BusError::BindingsFull`], [`BusError::BadName`]: the peer is not bound.
    fn bind_peer(&mut self, identity: &[u8], on: bool) -> Result<(), BusError>;

    /// The local `all_platforms` subscription prefixes are now `prefixes`: bind what is new
    /// (`__pubsub__.*.<prefix>.#`), unbind what is gone. Returns how many could not be bound
    /// for lack of room, and how many are not valid bindings.
    fn set_prefixes(&mut self, prefixes: &[Vec<u8>]) -> (usize, usize);

    /// Publish local agent `caller`'s `external_rpc send_platform` with MSG_ID `msg_id` and
    /// JSON body `body` (`{"to_platform", "to_peer", …, "args"}`), mandatory.
    ///
    /// # Errors
    /// [`BusError`]: nothing was published (the caller answers error 11).
    fn send_rpc(&mut self, caller: &[u8], msg_id: &[u8], body: &[u8]) -> Result<(), BusError>;

    /// Publish local agent `publisher`'s publish on `topic` (delivery body `body`).
    ///
    /// # Errors
    /// [`BusError`]: nothing was published (the router drops and counts it).
    fn publish(&mut self, publisher: &[u8], msg_id: &[u8], topic: &[u8], body: &[u8]) -> Result<(), BusError>;

    /// The connection's state, for `query stats`.
    fn status(&self) -> BusStatus;
}

/// Where the bridge stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BridgeState {
    /// Not configured (no `rabbitmq-url`, or a build without the bridge).
    Off,
    /// Not connected; dialled again at its retry time.
    Down,
    /// Dialled; the handshake and topology are not done yet.
    Connecting,
    /// Topology declared, consumer running.
    Up,
}

impl BridgeState {
    /// For logs and `query stats`.
    pub fn name(self) -> &'static str {
        match self {
            BridgeState::Off => "off",
            BridgeState::Down => "down",
            BridgeState::Connecting => "connecting",
            BridgeState::Up => "up",
        }
    }
}

/// Why the server reports the bridge down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BridgeDown {
    /// The broker's address did not resolve or the TCP connect failed.
    ConnectFailed,
    /// The TLS or AMQP handshake, or the topology, failed (refused credentials, a 406 on
    /// redeclare, a timeout…).
    HandshakeFailed,
    /// An established connection closed (broker restart, `close_connection`, heartbeat
    /// timeout, malformed input).
    Closed,
}

impl BridgeDown {
    fn text(self) -> &'static str {
        match self {
            BridgeDown::ConnectFailed => "connect failed",
            BridgeDown::HandshakeFailed => "handshake or topology failed",
            BridgeDown::Closed => "closed",
        }
    }
}

/// The bridge's configuration and state (see the module doc).
#[derive(Debug)]
pub struct Bridge {
    state: BridgeState,
    /// For logs and `query stats`: `host:port/vhost`.
    address: String,
    failures: u32,
    retry_at: Instant,
    rng: u64,
    last_down: Option<BridgeDown>,
    /// The `all_platforms` prefixes wanted as bindings, as of [`Bridge::generation`].
    prefixes: Vec<Vec<u8>>,
    /// [`crate::vip::subscriptions::Subscriptions::all_generation`] of `prefixes`.
    generation: Option<u64>,
    /// Connections that came up, and went down (or failed).
    ups: u64,
    downs: u64,
}

impl Bridge {
    /// Bytes of the `all_platforms` prefix list ([`Bridge`]'s `prefixes`): one copy of each
    /// distinct prefix, at most `max-subscriptions` of at most [`crate::limits::MAX_PREFIX_BYTES`]
    /// (with its `Vec` and the C library's 16 bytes of header and rounding), and while the list
    /// is recomputed the new one and the old one. Reached with every subscription an
    /// `all_platforms` one of its own longest prefix.
    #[cfg(feature = "rabbitmq")]
    pub fn prefix_bytes(limits: &crate::limits::Limits) -> usize {
        // A `Vec`'s own 24 bytes on a 64-bit target, an upper bound on any (the printed bound is
        // the same on every build).
        const VEC_BYTES: usize = 24;
        const _: () = assert!(core::mem::size_of::<Vec<u8>>() <= VEC_BYTES);
        let each = VEC_BYTES + crate::limits::MAX_PREFIX_BYTES + 16;
        limits.max_subscriptions.saturating_mul(2 * each)
    }

    /// A bridge that is off (`seed`: the jitter's randomness).
    pub fn new(seed: u32) -> Bridge {
        Bridge {
            state: BridgeState::Off,
            address: String::new(),
            failures: 0,
            retry_at: Instant(0),
            rng: u64::from(seed),
            last_down: None,
            prefixes: Vec::new(),
            generation: None,
            ups: 0,
            downs: 0,
        }
    }

    /// Turn the bridge on: the broker at `address` (for logs) is dialled from the next poll.
    pub fn configure(&mut self, address: &str) {
        self.state = BridgeState::Down;
        self.address = address.to_string();
        self.retry_at = Instant(0);
    }

    /// Where it stands.
    pub fn state(&self) -> BridgeState {
        self.state
    }

    /// Configured (whatever its state).
    pub fn is_on(&self) -> bool {
        self.state != BridgeState::Off
    }

    /// When the bridge is due to be dialled, while it is down.
    pub fn next_deadline(&self) -> Option<Instant> {
        (self.state == BridgeState::Down).then_some(self.retry_at)
    }

    /// Down and due: it is connecting now (the caller dials).
    fn take_dial(&mut self, now: Instant) -> bool {
        if self.state != BridgeState::Down || now < self.retry_at {
            return false;
        }
        self.state = BridgeState::Connecting;
        log::debug!("RabbitMQ bridge: dialling {}", self.address);
        true
    }

    /// The connection came up.
    fn mark_up(&mut self, stats: &mut Stats) {
        if self.state != BridgeState::Connecting {
            return;
        }
        self.state = BridgeState::Up;
        self.failures = 0;
        self.ups += 1;
        stats.amqp_ups += 1;
        log::info!("RabbitMQ bridge to {} is up", self.address);
    }

    /// The connection failed or closed: dial again after the backoff.
    fn mark_down(&mut self, stats: &mut Stats, now: Instant, reason: BridgeDown) {
        if !matches!(self.state, BridgeState::Connecting | BridgeState::Up) {
            return;
        }
        let was_up = self.state == BridgeState::Up;
        self.state = BridgeState::Down;
        self.last_down = Some(reason);
        self.downs += 1;
        stats.amqp_downs += 1;
        let random = next_random(&mut self.rng);
        let wait = retry_delay_ms(self.failures, random, BRIDGE_RETRY_MIN_MS, BRIDGE_RETRY_MAX_MS);
        self.retry_at = now.plus(wait);
        self.failures = self.failures.saturating_add(1);
        if was_up {
            log::warn!("RabbitMQ bridge to {} is down ({}); retrying in {wait} ms", self.address, reason.text());
        } else if stats::is_log_point(self.failures.into()) {
            log::warn!(
                "RabbitMQ bridge to {}: {} (attempt {}); retrying in {wait} ms",
                self.address,
                reason.text(),
                self.failures
            );
        }
    }
}

#[cfg(test)]
mod tests;
