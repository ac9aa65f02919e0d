//! The bridge's AMQP client connection: one connection, one channel (1), sans-IO (memo §6.3,
//! §6.4).
//!
//! Life of one transport connection, driven by the caller:
//!
//! 1. [`Client::begin`] when TCP (and TLS) is up: queues the protocol header.
//! 2. Feed every received byte to [`Client::handle_input`] (the unconsumed bytes, from the
//!    start); drop `consumed`; keep at least `need` bytes of room; act on the [`Event`].
//!    The handshake runs by itself: `connection.start` → `start-ok` (PLAIN or EXTERNAL, client
//!    properties with capabilities), `tune` → `tune-ok` + `open`, `channel.open`, then the
//!    topology of memo §6.1 (exchange `volttron` topic durable with `alternate-exchange:
//!    undeliverable`, exchange `undeliverable` fanout durable, the exclusive auto-delete queue
//!    `N.viprouter`, `basic.qos`, `confirm.select`, every wanted binding, `basic.consume`),
//!    one synchronous request at a time, and ends in [`Event::Ready`].
//! 3. Write [`Client::transmit`] to the socket; report what went with [`Client::written`].
//! 4. Call [`Client::poll_timers`] at [`Client::next_timer`] (heartbeats, handshake and close
//!    timeouts).
//! 5. [`Event::Closed`] or an `Err`: flush what is queued (a `close`/`close-ok`), close the
//!    socket, reconnect later with [`Client::begin`] — the bindings are redone, unconfirmed
//!    publishes are reported lost.
//!
//! Publishing ([`Client::publish`]) and acknowledging ([`Client::ack`]) append frames to the
//! transmit buffer, reserved once at [`Client::new`]: the message path allocates nothing.

mod input;

use super::bindings::{BindError, Bindings, Op};
use super::confirm::Window;
use super::content::{self, Body};
use super::frame;
use super::method::{self, ExchangeFlags, QueueFlags, Sasl};
use super::properties::{self, Properties};
use super::table::Value;
use super::{EncodeError, reply};
use crate::limits::{AMQP_HANDSHAKE_TIMEOUT_MS, AMQP_HEARTBEAT_S, AMQP_PREFETCH, Limits};
use crate::time::Instant;

pub use self::input::Input;

/// The channel the client uses.
pub const CHANNEL: u16 = 1;
/// VOLTTRON's exchange (memo §5.1).
pub const EXCHANGE: &[u8] = b"volttron";
/// VOLTTRON's alternate exchange for unroutable messages.
pub const UNDELIVERABLE: &[u8] = b"undeliverable";

/// Bytes of a `basic.ack` frame (frame header 7, class and method 4, delivery tag 8, bits 1,
/// frame end 1).
const ACK_FRAME_BYTES: usize = 21;

/// Control frames the transmit buffer may hold beyond its publishes: an ack for every delivery
/// the broker may have outstanding (`basic.qos` prefetch), and 4 KiB for the rest — one binding
/// request, a close or close-ok, flow-ok, cancel-ok and a heartbeat, each at most a few hundred
/// bytes (names are short strings).
const CONTROL_BYTES: usize = AMQP_PREFETCH as usize * ACK_FRAME_BYTES + 4096;

/// The largest body the bridge takes in or publishes for `limits`: `max-msg-bytes` less two
/// frames, so that a delivery still fits the receive buffer with its method, header and body
/// frames (larger deliveries are skipped and counted without being buffered).
pub fn max_body(limits: &Limits) -> u64 {
    limits.max_msg_bytes.saturating_sub(2 * u64::from(limits.amqp_frame_max_bytes))
}

/// Bytes of the largest message in frames of frame-max, as the client publishes and RabbitMQ
/// delivers it: the method and the content header (at most a frame each) and the body frames of
/// a [`max_body`] body.
pub fn message_frames_bytes(limits: &Limits) -> usize {
    let body = usize::try_from(max_body(limits)).unwrap_or(usize::MAX);
    let body_frames = content::body_frames_len(body, limits.amqp_frame_max_bytes);
    (limits.amqp_frame_max_bytes as usize).saturating_mul(2).saturating_add(body_frames)
}

/// How the client authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// SASL PLAIN (VOLTTRON's `ssl: false` set-up).
    Plain {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// SASL EXTERNAL: the TLS client certificate names the user (VOLTTRON's default).
    External,
}

/// What a client needs to know, fixed for its life.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Authentication.
    pub credentials: Credentials,
    /// Virtual host.
    pub vhost: String,
    /// This gateway's VOLTTRON instance name `N`.
    pub instance: String,
    /// Heartbeat seconds to propose (0: none).
    pub heartbeat_s: u16,
    /// `basic.qos` prefetch count.
    pub prefetch: u16,
    /// Handshake and close timeout.
    pub handshake_timeout_ms: u64,
    /// frame-max to propose.
    pub frame_max: u32,
    /// Largest body accepted or published.
    pub max_body: u64,
    /// Binding capacity.
    pub max_bindings: usize,
    /// Unconfirmed publishes allowed.
    pub unconfirmed_window: usize,
    /// Transmit buffer bytes beyond which publishes are refused.
    pub tx_bytes: usize,
}

impl Settings {
    /// Settings for instance `instance` with the limits in force and the defaults of
    /// [`crate::limits`].
    pub fn new(credentials: Credentials, vhost: &str, instance: &str, limits: &Limits) -> Settings {
        Settings {
            credentials,
            vhost: vhost.to_string(),
            instance: instance.to_string(),
            heartbeat_s: AMQP_HEARTBEAT_S,
            prefetch: AMQP_PREFETCH,
            handshake_timeout_ms: AMQP_HANDSHAKE_TIMEOUT_MS,
            frame_max: limits.amqp_frame_max_bytes,
            max_body: limits.max_msg_bytes,
            max_bindings: limits.amqp_max_bindings,
            unconfirmed_window: limits.amqp_unconfirmed_window,
            tx_bytes: limits.amqp_tx_bytes,
        }
    }
}

/// Who ended (or is ending) the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closer {
    /// The broker sent `connection.close`.
    Broker,
    /// The broker closed our channel (`channel.close`: 403, 404, 406…); the client answered and
    /// closes the connection to start afresh.
    BrokerChannel,
    /// The broker cancelled our consumer (`basic.cancel`: the queue was deleted); the client
    /// closes the connection to start afresh.
    ConsumerCancelled,
    /// The client closed ([`Client::close`] or a protocol error).
    Client,
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseInfo<'a> {
    /// Who.
    pub by: Closer,
    /// Reply code.
    pub code: u16,
    /// Reply text.
    pub text: &'a [u8],
    /// (class, method) that caused it, when the broker says.
    pub cause: (u16, u16),
}

/// A message delivered to the bridge's queue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Delivery<'a> {
    /// Tag for [`Client::ack`].
    pub delivery_tag: u64,
    /// Delivered before (to a connection that did not ack it).
    pub redelivered: bool,
    /// Exchange it was published to.
    pub exchange: &'a [u8],
    /// Routing key it was published with.
    pub routing_key: &'a [u8],
    /// Its properties.
    pub properties: Properties<'a>,
    /// Its body, in place.
    pub body: Body<'a>,
}

/// A mandatory publish the broker could not route.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Returned<'a> {
    /// Reply code (312 NO_ROUTE).
    pub code: u16,
    /// Reply text.
    pub text: &'a [u8],
    /// Exchange.
    pub exchange: &'a [u8],
    /// Routing key.
    pub routing_key: &'a [u8],
    /// The publish's properties (app_id, message_id… of the original).
    pub properties: Properties<'a>,
    /// The publish's body.
    pub body: Body<'a>,
}

/// What one input step means to the caller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event<'a> {
    /// The connection is open, the topology declared, the wanted bindings bound, the consumer
    /// started: publishing is possible.
    Ready,
    /// A message for the bridge: ack it ([`Client::ack`]) once it is handed on.
    Delivery(Delivery<'a>),
    /// A mandatory publish came back unroutable.
    Returned(Returned<'a>),
    /// A publisher confirm: `settled` publishes are now acknowledged (`ack`) or refused.
    Confirmed {
        /// The broker's tag.
        tag: u64,
        /// Covers every tag up to `tag`.
        multiple: bool,
        /// `basic.ack` (true) or `basic.nack`.
        ack: bool,
        /// Outstanding publishes this settled.
        settled: usize,
    },
    /// The broker stopped accepting publishes (`connection.blocked`, or `channel.flow` off).
    Blocked {
        /// Why.
        reason: &'a [u8],
    },
    /// Publishing is possible again.
    Unblocked,
    /// A delivery over the size limit was skipped (consumed without buffering) and acked.
    Dropped {
        /// Its tag.
        delivery_tag: u64,
        /// Its announced size.
        body_size: u64,
    },
    /// The broker closed the channel or cancelled the consumer; the client answered and asked
    /// to close the connection. [`Event::Closed`] follows.
    Closing(CloseInfo<'a>),
    /// The connection is over: flush [`Client::transmit`], close the socket, reconnect.
    Closed(CloseInfo<'a>),
}

/// Why [`Client::publish`] did not queue a message. Nothing was queued in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// Not connected, or the topology is not declared yet.
    NotReady,
    /// The broker blocked publishing.
    Blocked,
    /// [`crate::limits::AMQP_UNCONFIRMED_WINDOW`] publishes are unconfirmed.
    WindowFull,
    /// The transmit buffer holds [`crate::limits::AMQP_TX_BYTES`].
    TxFull,
    /// Body over the message limit, or properties over one frame.
    TooLarge,
    /// A name or property over its AMQP type.
    Encode,
}

/// One message to publish.
#[derive(Clone, Copy, Debug)]
pub struct Publish<'a> {
    /// Exchange (`volttron`).
    pub exchange: &'a [u8],
    /// Routing key.
    pub routing_key: &'a [u8],
    /// Return it (`basic.return`) when no queue matches.
    pub mandatory: bool,
    /// Properties.
    pub properties: Properties<'a>,
    /// Body.
    pub body: &'a [u8],
}

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No transport ([`Client::begin`] not called, or the connection ended).
    Idle,
    AwaitStart,
    AwaitTune,
    AwaitOpenOk,
    AwaitChannelOpenOk,
    Declare(Step),
    Ready,
    /// We sent connection.close; close-ok awaited.
    Closing,
}

/// Topology steps, in order (memo §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    ExchangeVolttron,
    ExchangeUndeliverable,
    Queue,
    Qos,
    Select,
    Binds,
    Consume,
}

/// A delivery or return whose body is being skipped.
#[derive(Clone, Copy, Debug)]
struct Skip {
    remaining: u64,
    body_size: u64,
    /// Delivery tag to ack when done (`None` for a return).
    ack: Option<u64>,
}

/// The client connection (see the module docs).
pub struct Client {
    settings: Settings,
    queue: String,
    phase: Phase,
    tx: Vec<u8>,
    /// frame-max in force (ours until tune).
    frame_max: u32,
    heartbeat_ms: u64,
    last_rx: Instant,
    last_tx: Instant,
    /// Handshake or close deadline.
    deadline: Instant,
    blocked: bool,
    window: Window,
    bindings: Bindings,
    skip: Option<Skip>,
}

impl Client {
    /// A client for `settings`: buffers and tables are reserved here, once.
    pub fn new(settings: Settings) -> Client {
        let queue = format!("{}.viprouter", settings.instance);
        let tx_cap = settings.tx_bytes + settings.frame_max as usize;
        Client {
            queue,
            phase: Phase::Idle,
            tx: Vec::with_capacity(tx_cap),
            frame_max: settings.frame_max,
            heartbeat_ms: 0,
            last_rx: Instant(0),
            last_tx: Instant(0),
            deadline: Instant(0),
            blocked: false,
            window: Window::new(settings.unconfirmed_window),
            bindings: Bindings::new(settings.max_bindings),
            skip: None,
            settings,
        }
    }

    /// Bytes the transmit buffer holds at most for `limits` (resident once written: the buffer
    /// never shrinks while the connection lasts). Publishes are admitted up to `amqp-tx-bytes`,
    /// except that one publish of any size up to [`max_body`] is admitted into an empty buffer
    /// ([`message_frames_bytes`]); control frames (`CONTROL_BYTES`: acks for the prefetch
    /// window, and 4 KiB) may follow either. Reached by a local agent exporting (or calling over
    /// the broker) a message of `max-msg-bytes` while the socket is drained: the buffer reserved
    /// at [`Client::new`], `amqp-tx-bytes` + frame-max, then grows to its size.
    pub fn tx_buffer_bytes(limits: &Limits) -> usize {
        limits.amqp_tx_bytes.max(message_frames_bytes(limits)).saturating_add(CONTROL_BYTES)
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The bridge's queue name, `N.viprouter`.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// A transport connection is up: start the handshake. Returns how many publishes of the
    /// previous connection were never confirmed (their fate is unknown; count them lost).
    pub fn begin(&mut self, now: Instant) -> usize {
        let lost = self.window.reset();
        self.tx.clear();
        self.tx.extend_from_slice(&frame::PROTOCOL_HEADER);
        self.phase = Phase::AwaitStart;
        self.frame_max = self.settings.frame_max;
        self.heartbeat_ms = 0;
        self.last_rx = now;
        self.last_tx = now;
        self.deadline = now.plus(self.settings.handshake_timeout_ms);
        self.blocked = false;
        self.skip = None;
        self.bindings.reconnect();
        lost
    }

    /// The transport is gone without a close (socket error, EOF). Returns the publishes that
    /// were never confirmed.
    pub fn disconnected(&mut self) -> usize {
        self.phase = Phase::Idle;
        self.tx.clear();
        self.skip = None;
        self.window.reset()
    }

    /// Ready to publish (topology declared, consumer running, not blocked).
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready && !self.blocked
    }

    /// Whether the connection is open past the handshake (Ready) — blocked or not.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Whether the broker blocked publishing.
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// Publishes sent and not yet confirmed.
    pub fn unconfirmed(&self) -> usize {
        self.window.outstanding()
    }

    /// Bindings wanted and bound.
    pub fn bindings(&self) -> (usize, usize) {
        (self.bindings.wanted(), self.bindings.bound())
    }

    /// Bytes waiting for the socket.
    pub fn transmit(&self) -> &[u8] {
        &self.tx
    }

    /// `n` bytes of [`Client::transmit`] went to the socket at `now`.
    pub fn written(&mut self, n: usize, now: Instant) {
        if n == 0 {
            return;
        }
        if n >= self.tx.len() {
            self.tx.clear();
        } else {
            self.tx.drain(..n);
        }
        self.last_tx = now;
    }

    /// Want `key` bound to the bridge's queue (now if connected, and after every reconnect).
    ///
    /// # Errors
    /// [`BindError`] when the table is full or the key over 255 bytes.
    pub fn bind(&mut self, key: &[u8]) -> Result<(), BindError> {
        self.bindings.add(key)?;
        self.pump_bindings();
        Ok(())
    }

    /// Want `key` unbound.
    pub fn unbind(&mut self, key: &[u8]) {
        self.bindings.remove(key);
        self.pump_bindings();
    }

    /// Send the next binding request when the topology is up and none is in flight.
    fn pump_bindings(&mut self) {
        if !matches!(self.phase, Phase::Ready | Phase::Declare(Step::Binds)) {
            return;
        }
        if let Some(op) = self.bindings.next_op() {
            let (bind, key) = match op {
                Op::Bind(k) => (true, k),
                Op::Unbind(k) => (false, k),
            };
            // Keys are checked at `add`, names at `new`: encoding cannot fail.
            let _ = method::put_queue_bind(&mut self.tx, CHANNEL, bind, self.queue.as_bytes(), EXCHANGE, key);
        } else if self.phase == Phase::Declare(Step::Binds) && !self.bindings.busy() {
            let _ = method::put_consume(&mut self.tx, CHANNEL, self.queue.as_bytes(), false);
            self.phase = Phase::Declare(Step::Consume);
        }
    }

    /// Queue one message. Returns its confirm sequence number.
    ///
    /// # Errors
    /// [`PublishError`]; nothing is queued then.
    pub fn publish(&mut self, p: &Publish<'_>) -> Result<u64, PublishError> {
        if self.phase != Phase::Ready {
            return Err(PublishError::NotReady);
        }
        if self.blocked {
            return Err(PublishError::Blocked);
        }
        if p.body.len() as u64 > self.settings.max_body {
            return Err(PublishError::TooLarge);
        }
        if !self.window.has_room() {
            return Err(PublishError::WindowFull);
        }
        let start = self.tx.len();
        let body_len = content::body_frames_len(p.body.len(), self.frame_max);
        // Method and header first (small; the buffer's reserve covers them), then the check
        // that the body fits too, so a refused publish leaves nothing behind.
        let head = method::put_publish(&mut self.tx, CHANNEL, p.exchange, p.routing_key, p.mandatory);
        let mid = self.tx.len();
        let head = head
            .and_then(|()| properties::put_content_header(&mut self.tx, CHANNEL, p.body.len() as u64, &p.properties));
        let err = match head {
            Err(EncodeError) => Some(PublishError::Encode),
            // The content header must fit one frame.
            Ok(()) if self.tx.len() - mid > self.frame_max as usize => Some(PublishError::TooLarge),
            // A message is admitted into an empty buffer whatever its size (as the router's
            // own queues do), else only under the limit.
            Ok(()) if start > 0 && self.tx.len() + body_len > self.settings.tx_bytes => Some(PublishError::TxFull),
            Ok(()) => None,
        };
        if let Some(e) = err {
            self.tx.truncate(start);
            return Err(e);
        }
        if content::put_body(&mut self.tx, CHANNEL, p.body, self.frame_max).is_err() {
            self.tx.truncate(start);
            return Err(PublishError::Encode);
        }
        self.window.reserve().ok_or(PublishError::WindowFull)
    }

    /// Acknowledge a delivery (`multiple`: every one up to it).
    pub fn ack(&mut self, delivery_tag: u64, multiple: bool) {
        if matches!(self.phase, Phase::Ready | Phase::Declare(_)) {
            method::put_ack(&mut self.tx, CHANNEL, delivery_tag, multiple);
        }
    }

    /// Close the connection (`connection.close` 200). Returns false when there is nothing to
    /// close gracefully (before `tune`, or already closing): drop the socket at once.
    pub fn close(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Idle | Phase::AwaitStart | Phase::AwaitTune | Phase::Closing => false,
            _ => {
                self.start_close(now, reply::SUCCESS, b"viprouter closing", (0, 0));
                true
            }
        }
    }

    fn start_close(&mut self, now: Instant, code: u16, text: &[u8], cause: (u16, u16)) {
        method::put_close(&mut self.tx, 0, code, text, cause);
        self.phase = Phase::Closing;
        self.deadline = now.plus(self.settings.handshake_timeout_ms);
    }

    /// When [`Client::poll_timers`] must next run (`None`: no timer).
    pub fn next_timer(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle => None,
            Phase::Ready => self.heartbeat_due(),
            _ => Some(self.heartbeat_due().map_or(self.deadline, |h| h.min(self.deadline))),
        }
    }

    fn heartbeat_due(&self) -> Option<Instant> {
        if self.heartbeat_ms == 0 {
            return None;
        }
        let send = self.last_tx.plus(self.heartbeat_ms / 2);
        let dead = self.last_rx.plus(self.heartbeat_ms * 2);
        Some(send.min(dead))
    }

    /// Run the timers at `now`: queue a heartbeat when the link has been quiet for half an
    /// interval.
    ///
    /// # Errors
    /// [`super::Error::HeartbeatTimeout`] (nothing from the broker for two intervals) or
    /// [`super::Error::Timeout`] (handshake or close too slow): drop the socket and reconnect.
    pub fn poll_timers(&mut self, now: Instant) -> Result<(), super::Error> {
        if self.phase == Phase::Idle {
            return Ok(());
        }
        if self.phase != Phase::Ready && now >= self.deadline {
            self.phase = Phase::Idle;
            return Err(super::Error::Timeout);
        }
        if self.heartbeat_ms > 0 {
            if now.since(self.last_rx) > self.heartbeat_ms * 2 {
                self.phase = Phase::Idle;
                return Err(super::Error::HeartbeatTimeout);
            }
            if now.since(self.last_tx) >= self.heartbeat_ms / 2 && self.tx.is_empty() {
                frame::put_heartbeat(&mut self.tx);
            }
        }
        Ok(())
    }

    /// Send the request of topology step `step`.
    fn declare(&mut self, step: Step) {
        let tx = &mut self.tx;
        let durable = ExchangeFlags { durable: true, ..ExchangeFlags::default() };
        // Names are checked at construction (instance name, config): encoding cannot fail.
        let _ = match step {
            Step::ExchangeVolttron => method::put_exchange_declare(
                tx,
                CHANNEL,
                EXCHANGE,
                b"topic",
                durable,
                &[(b"alternate-exchange", Value::LongStr(UNDELIVERABLE))],
            ),
            Step::ExchangeUndeliverable => {
                method::put_exchange_declare(tx, CHANNEL, UNDELIVERABLE, b"fanout", durable, &[])
            }
            Step::Queue => {
                let f = QueueFlags { exclusive: true, auto_delete: true, ..QueueFlags::default() };
                method::put_queue_declare(tx, CHANNEL, self.queue.as_bytes(), f, &[])
            }
            Step::Qos => {
                method::put_qos(tx, CHANNEL, self.settings.prefetch);
                Ok(())
            }
            Step::Select => {
                method::put_confirm_select(tx, CHANNEL);
                Ok(())
            }
            Step::Binds | Step::Consume => Ok(()),
        };
        self.phase = Phase::Declare(step);
        if step == Step::Binds {
            self.pump_bindings();
        }
    }
}

/// The SASL mechanism and response of `c`.
fn sasl(c: &Credentials) -> Sasl<'_> {
    match c {
        Credentials::Plain { user, password } => Sasl::Plain { user: user.as_bytes(), password: password.as_bytes() },
        Credentials::External => Sasl::External,
    }
}

#[cfg(test)]
mod tests;
