//! One connection: its stream, its protocol ([`Driver`]: the ZMTP session of an accepted
//! agent, or any other protocol), its receive and transmit buffers and its state, all in one
//! struct (one slot, one owner — DESIGN.md §2.10).
//!
//! State is a few small enums instead of flags:
//! * [`Origin`]: accepted on a listener (with what the authorisation sees), dialled by us, or
//!   dialled by us as the link to a remote platform or the RabbitMQ bridge;
//! * [`Phase`]: connecting (dialled), handshaking (half-open: our side of the handshake not
//!   done), awaiting the peer (our side done: a NULL READY went out), attached as a VIP peer, a
//!   duplicate whose identity another connection holds, or a link whose handshake completed (no
//!   VIP peer: what arrives on it goes to the router's link or bridge input). The slot table
//!   changes it ([`slots::Slots::set_phase`]), so that its counts of unfinished and half-open
//!   handshakes cannot drift, and picks the half-open connection to evict at the handshake limit
//!   ([`slots::Slots::eviction_victim`], [`Conn::eviction_rank`]);
//! * [`Blocked`]: why the connection is not read now, if it is not — its held message waits for
//!   a full recipient, for its own queue or for the budget to let a queue grow, its buffer for
//!   the budget, or it has waited so long that its message is answered with error 11. The
//!   message itself stays in the session.
//!
//! Buffers start at `RX_BUF_MIN_BYTES`/`TX_BUF_MIN_BYTES` and grow only when needed (a large
//! message, or a busy connection whose reads fill the buffer), and only while the process-wide
//! [`Budget`] allows. Only after `IDLE_SHRINK_MS` without traffic are they given back, whole
//! ([`Conn::shrink_if_idle`]; the next read or message takes the initial size again), so a
//! warmed-up, busy connection allocates nothing and an idle one holds no buffer.

use std::io;

use mio::{Interest, Registry, Token};

use super::close::CloseReason;
use super::protocol::{Context, Driver, Outbound};
use crate::limits::{IDLE_SHRINK_MS, RX_BUF_MIN_BYTES, TX_BUF_MIN_BYTES};
use crate::time::Instant;
use crate::vip::links::LinkId;
use crate::zmtp::Message;
use crate::zmtp::session::{HandshakeProgress, Input};

mod buffers;
pub mod shared;
pub mod slots;
mod stream;
mod txqueue;

pub use buffers::{Budget, RxBuf};
use slots::SlotId;
pub use stream::Stream;
pub use txqueue::TxBuf;

/// How the connection came to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Accepted on a listener.
    Accepted {
        /// Index of the listener (bind order).
        listener: u8,
        /// The address the authorisation sees: TCP peer IP without port, or
        /// `localhost:uid:gid:pid` for ipc (VIP.md §9.6).
        auth_addr: heapless::String<64>,
    },
    /// Dialled by this router (a broker, a test double): a VIP peer once its handshake is done,
    /// its end reported as a [`crate::server::event_loop::DialEvent`].
    Dialled,
    /// Dialled by this router as its link to a remote platform (VIP.md §11.3,
    /// [`crate::vip::links`]): never a VIP peer; its handshake and its end are reported to the
    /// router's link table, what arrives on it to the router's link input.
    Link(LinkId),
    /// Dialled by this router as the RabbitMQ bridge's connection to its broker
    /// ([`crate::vip::bridge`]): never a VIP peer; its handshake and its end are reported to the
    /// router's bridge state, what arrives on it to the router's bridge input.
    Broker,
}

/// Where the connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Dialled: the TCP connect is in flight.
    Connecting {
        /// When it was started.
        since: Instant,
    },
    /// Greeting and security handshake, our side of it not done: half-open, evictable at the
    /// handshake limit (`max-handshakes`).
    Handshaking {
        /// When it was accepted (or its connect completed).
        since: Instant,
    },
    /// Handshake unfinished, but our side of it is done: our NULL READY went out right after
    /// the greeting (ZMTP.md §5), so a libzmq peer that read it considers the connection up and
    /// may already have sent its READY and its first messages (a VOLTTRON agent's `hello`, which
    /// libzmq does not send again on a new connection). Never evicted for a newer connection:
    /// bounded by `max-connections` and `handshake-timeout-ms` like an attached peer.
    AwaitingPeer {
        /// When it was accepted.
        since: Instant,
    },
    /// Handshake done: a VIP peer under its identity.
    Attached,
    /// Handshake done, but a live connection holds its identity (first wins, VIP.md §2.4): its
    /// messages are dropped until that identity is free, then it attaches.
    Duplicate,
    /// Handshake done on a link ([`Origin::Link`]): traffic flows both ways, but it is no VIP
    /// peer.
    Linked,
}

impl Phase {
    /// The handshake completed (attached or not).
    pub fn is_open(self) -> bool {
        matches!(self, Phase::Attached | Phase::Duplicate | Phase::Linked)
    }

    /// When the connect or handshake started, while one is unfinished.
    pub fn started(self) -> Option<Instant> {
        match self {
            Phase::Connecting { since } | Phase::Handshaking { since } | Phase::AwaitingPeer { since } => Some(since),
            Phase::Attached | Phase::Duplicate | Phase::Linked => None,
        }
    }
}

/// Why a connection is not read now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// Its held message waits for room in another connection's queue.
    Recipient {
        /// The full connection.
        on: SlotId,
        /// When the wait began.
        since: Instant,
    },
    /// Its own queue is over `tx-queue-bytes` (it sends and does not read the answers): it
    /// waits until the queue drains below half. TCP pushes back on it; no stall, no error 11.
    OwnQueue,
    /// Its receive buffer may not grow: the buffer budget is exhausted. Resumed once `extra`
    /// more bytes fit (resuming sooner would only fail again, every turn).
    Budget {
        /// The growth it waits for.
        extra: usize,
    },
    /// Its held message (or the reply to it) was refused because the destination's queue could
    /// not grow: the buffer budget is exhausted, though the queue is under `tx-queue-bytes`.
    /// Resumed once `extra` more bytes fit (resuming sooner would only fail again, every turn);
    /// if they do not within `send-stall-ms`, its held message is answered with VIP error 11
    /// ([`Blocked::StallExpired`]; the recipient is not to blame and is not marked stalled).
    QueueBudget {
        /// The growth the refused delivery needed.
        extra: usize,
        /// When the wait began.
        since: Instant,
    },
    /// Its recipient stayed full (or the budget short) past `send-stall-ms`: it is read again,
    /// and its held message is answered with VIP error 11 (VIP.md §4 step 7) instead of waiting
    /// once more.
    StallExpired,
}

/// Membership of the event loop's per-turn lists, so that a connection is queued once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Queued {
    dirty: bool,
    ready: bool,
}

/// Push `id` on `list` unless `on` says it is there already.
#[inline]
fn push_once(on: &mut bool, id: SlotId, list: &mut Vec<SlotId>) {
    if !*on {
        *on = true;
        list.push(id);
    }
}

impl Queued {
    /// Output was queued: flush `id` at the end of the turn (once).
    #[inline]
    pub fn mark_dirty(&mut self, id: SlotId, dirty: &mut Vec<SlotId>) {
        push_once(&mut self.dirty, id, dirty);
    }

    /// Flushed.
    pub fn clear_dirty(&mut self) {
        self.dirty = false;
    }

    /// Input is left: service `id` again without an event (once per list).
    pub fn queue_ready(&mut self, id: SlotId, ready: &mut Vec<SlotId>) {
        push_once(&mut self.ready, id, ready);
    }

    /// Taken off the ready list.
    pub fn clear_ready(&mut self) {
        self.ready = false;
    }
}

/// One connection's side of a delivery: its transmit queue, its encoder and its list flags.
pub struct Delivery<'a> {
    /// The transmit queue.
    pub tx: &'a mut TxBuf,
    /// The encoder.
    pub outbound: Outbound<'a>,
    /// Its list membership (to mark it dirty).
    pub queued: &'a mut Queued,
}

/// A bounded label for logs.
fn bounded(s: &str) -> heapless::String<64> {
    let mut out = heapless::String::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// Everything the server keeps per connection.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    driver: Driver,
    rx: RxBuf,
    tx: TxBuf,
    origin: Origin,
    phase: Phase,
    blocked: Option<Blocked>,
    /// Its queue stayed full for longer than the stall time: messages to it are answered with
    /// error 11 at once until the queue drains below half.
    stalled: bool,
    /// WRITABLE interest is registered.
    want_write: bool,
    /// The peer closed its side (EOF read).
    eof: bool,
    queued: Queued,
    /// Last time bytes moved in or out (for `IDLE_SHRINK_MS`).
    last_active: Instant,
    /// For logs: the peer's address.
    label: heapless::String<64>,
}

impl Conn {
    /// Bytes a new connection takes from the budget.
    pub const INITIAL_BYTES: usize = RX_BUF_MIN_BYTES + TX_BUF_MIN_BYTES;

    /// A connection just accepted (whose `driver` already queued its first bytes into `tx`, e.g.
    /// our greeting), or dialled. Takes its initial buffers from the budget (the caller checked
    /// it has room).
    fn with(
        stream: Stream,
        driver: Driver,
        tx: TxBuf,
        origin: Origin,
        phase: Phase,
        now: Instant,
        label: &str,
    ) -> Conn {
        Conn {
            stream,
            driver,
            rx: RxBuf { buf: vec![0u8; RX_BUF_MIN_BYTES], start: 0, end: 0 },
            tx,
            origin,
            phase,
            blocked: None,
            stalled: false,
            want_write: false,
            eof: false,
            queued: Queued::default(),
            last_active: now,
            label: bounded(label),
        }
    }

    /// A ZMTP agent accepted on listener `listener`: its session greets at once.
    pub fn accepted(
        stream: Stream,
        mechanism: crate::zmtp::mechanism::Mechanism,
        verify_null: bool,
        listener: u8,
        now: Instant,
        peer: &str,
        auth_addr: &str,
    ) -> Conn {
        let mut tx = TxBuf::with_capacity(TX_BUF_MIN_BYTES);
        let mut session = crate::zmtp::session::Session::new(mechanism, &mut tx.buf);
        if verify_null {
            session.verify_null();
        }
        let origin = Origin::Accepted { listener, auth_addr: bounded(auth_addr) };
        Conn::with(stream, Driver::Zmtp(session), tx, origin, Phase::Handshaking { since: now }, now, peer)
    }

    /// A connection we dialled (`origin` [`Origin::Dialled`] or [`Origin::Link`]), its connect in
    /// flight; `protocol` speaks once it completes.
    pub fn dialled(
        stream: Stream,
        protocol: Box<dyn super::protocol::Protocol>,
        origin: Origin,
        now: Instant,
        peer: &str,
    ) -> Conn {
        let tx = TxBuf::with_capacity(TX_BUF_MIN_BYTES);
        Conn::with(stream, Driver::Other(protocol), tx, origin, Phase::Connecting { since: now }, now, peer)
    }
    /// Buffer bytes this connection holds (returned to the budget on close).
    pub fn buffer_bytes(&self) -> usize {
        self.rx.buf.len() + self.tx.capacity()
    }

    /// After `IDLE_SHRINK_MS` without traffic, give both buffers back whole (both are empty: an
    /// idle peer holds no buffer, which keeps 1000 idle peers under 8 KiB each with VOLTTRON's
    /// peerlist broadcast on; the connection's next read or message allocates its buffer again,
    /// at the initial size: one allocation per idle period, none in the steady state). Returns
    /// the bytes given back to the budget.
    pub fn shrink_if_idle(&mut self, now: Instant) -> usize {
        if now.since(self.last_active) < IDLE_SHRINK_MS || self.tx.pending() > 0 || !self.rx.is_empty() {
            return 0;
        }
        let mut freed = 0;
        if !self.rx.buf.is_empty() {
            freed += self.rx.buf.len();
            self.rx = RxBuf { buf: Vec::new(), start: 0, end: 0 };
        }
        if self.tx.buf.capacity() > 0 {
            freed += self.tx.buf.capacity();
            self.tx = TxBuf::default();
        }
        freed
    }

    /// Read into the free tail of the receive buffer; 0 is the end of the stream (remembered:
    /// [`Conn::is_eof`]).
    ///
    /// # Errors
    /// The socket's error (`WouldBlock` included).
    pub fn read(&mut self) -> io::Result<usize> {
        let tail = self.rx.buf.get_mut(self.rx.end..).unwrap_or(&mut []);
        let room = !tail.is_empty();
        let n = self.stream.read(tail)?;
        self.rx.end += n;
        self.eof |= n == 0 && room;
        Ok(n)
    }

    /// Write queued bytes until the queue is empty or the socket would block. Returns the
    /// bytes written.
    ///
    /// # Errors
    /// A socket error other than `WouldBlock`/`Interrupted`.
    pub fn flush(&mut self) -> io::Result<usize> {
        let mut total = 0;
        while self.tx.pending() > 0 {
            match self.tx.write_to(&mut self.stream) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// How it came to be.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The link it is the connection of, if it is one ([`Origin::Link`]).
    #[inline]
    pub fn link(&self) -> Option<LinkId> {
        match self.origin {
            Origin::Link(link) => Some(link),
            Origin::Accepted { .. } | Origin::Dialled | Origin::Broker => None,
        }
    }

    /// The message bus it carries (the RabbitMQ bridge's connection). What the router
    /// publishes or binds through it goes to the socket with the next flush: mark it dirty.
    pub fn bus(&mut self) -> Option<&mut dyn crate::vip::bridge::Bus> {
        self.driver.bus()
    }

    /// The protocol's next timer ([`crate::server::protocol::Protocol::next_timer`]).
    pub fn next_timer(&self) -> Option<Instant> {
        self.driver.next_timer()
    }

    /// Run the protocol's timer; its output is charged to `budget` as in [`Conn::feed`].
    /// Returns whether output was queued.
    ///
    /// # Errors
    /// The protocol's: close the connection.
    pub fn on_timer(&mut self, cx: &mut Context<'_>, budget: &mut Budget) -> Result<bool, CloseReason> {
        let (len, cap) = (self.tx.buf.len(), self.tx.capacity());
        let r = self.driver.on_timer(cx, &mut self.tx.buf);
        budget.charge(self.tx.capacity().saturating_sub(cap));
        r.map(|()| self.tx.buf.len() != len)
    }

    /// Move what the protocol queued itself into the transmit queue (before a flush), charged
    /// to `budget` as in [`Conn::feed`].
    ///
    /// # Errors
    /// The protocol's: close the connection.
    pub fn take_output(&mut self, now: Instant, budget: &mut Budget) -> Result<(), CloseReason> {
        let cap = self.tx.capacity();
        let r = self.driver.take_output(now, &mut self.tx.buf);
        budget.charge(self.tx.capacity().saturating_sub(cap));
        r
    }

    /// Where it is in its life.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Why it is not read now, if it is not.
    pub fn blocked(&self) -> Option<Blocked> {
        self.blocked
    }

    /// Block it (`Some`) or read it again (`None`).
    pub fn set_blocked(&mut self, blocked: Option<Blocked>) {
        self.blocked = blocked;
    }

    /// Its queue stayed full past the stall time (see the field).
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Mark it stalled (true) or draining again (false).
    pub fn set_stalled(&mut self, stalled: bool) {
        self.stalled = stalled;
    }

    /// Where a half-open connection stands for the handshake eviction, least first: no byte of
    /// its greeting, then part of it, then a mechanism handshake under way — and the oldest
    /// among equals (a slowloris cannot refresh its age). `None` unless it is half-open: an
    /// accepted connection in [`Phase::Handshaking`] whose side of the handshake is not done.
    pub fn eviction_rank(&self) -> Option<(HandshakeProgress, bool, Instant)> {
        let (Origin::Accepted { .. }, Phase::Handshaking { since }) = (&self.origin, self.phase) else { return None };
        let progress = self.driver.handshake_progress()?;
        (progress != HandshakeProgress::OurSideDone).then_some((progress, !self.rx.is_empty(), since))
    }

    /// The peer's address, for logs.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The protocol.
    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    /// The receive buffer.
    pub fn rx(&self) -> &RxBuf {
        &self.rx
    }

    /// The receive buffer, to make room or consume.
    pub fn rx_mut(&mut self) -> &mut RxBuf {
        &mut self.rx
    }

    /// The transmit queue.
    pub fn tx(&self) -> &TxBuf {
        &self.tx
    }

    /// Its list membership.
    pub fn queued(&mut self) -> &mut Queued {
        &mut self.queued
    }

    /// The peer closed its side.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Bytes moved now.
    pub fn touch(&mut self, now: Instant) {
        self.last_active = now;
    }

    /// Register with mio (readable; writable too while connecting, to learn when the connect
    /// completes).
    ///
    /// # Errors
    /// The registry's error.
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let connecting = matches!(self.phase, Phase::Connecting { .. });
        self.want_write = connecting;
        let interest = if connecting { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        self.stream.register(registry, token, interest)
    }

    /// Register WRITABLE interest while bytes wait, and only then (recomputed after each flush).
    ///
    /// # Errors
    /// The registry's error.
    pub fn update_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let want = self.tx.pending() > 0 || matches!(self.phase, Phase::Connecting { .. });
        if want == self.want_write {
            return Ok(());
        }
        self.want_write = want;
        let interest = if want { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        self.stream.reregister(registry, token, interest)
    }

    /// Deregister (before drop, as mio requires).
    pub fn deregister(&mut self, registry: &Registry) {
        self.stream.deregister(registry);
    }

    /// A dialled connection's socket became writable while connecting: `Ok(true)` once the
    /// connect completed (its protocol then queued its opening bytes; the caller moves it to
    /// `Handshaking`), `Ok(false)` if it is still in flight.
    ///
    /// # Errors
    /// The connect failed, or the protocol could not start.
    pub fn finish_connect(&mut self, cx: &mut Context<'_>, now: Instant) -> Result<bool, CloseReason> {
        match self.stream.connect_result() {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => {
                log::debug!("connect to {}: {e}", self.label);
                return Err(CloseReason::ConnectFailed);
            }
        }
        self.last_active = now;
        self.driver.connected(cx, &mut self.tx.buf)?;
        Ok(true)
    }

    /// Feed the unconsumed received bytes to the protocol. Its output (READY, WELCOME, PONGs) is
    /// appended without a reservation: any growth is charged to `budget`, or closing the
    /// connection would give back bytes never taken. Returns the input event and whether
    /// output was queued.
    pub fn feed(&mut self, cx: &mut Context<'_>, budget: &mut Budget) -> (Result<Input, CloseReason>, bool) {
        let (len, cap) = (self.tx.buf.len(), self.tx.capacity());
        let data = self.rx.buf.get_mut(self.rx.start..self.rx.end).unwrap_or(&mut []);
        let r = self.driver.handle_input(cx, data, &mut self.tx.buf);
        budget.charge(self.tx.capacity().saturating_sub(cap));
        (r, self.tx.buf.len() != len)
    }

    /// The authorisation decision after `Input::Verify` (output charged as in [`Conn::feed`]).
    pub fn authorize(&mut self, cx: &Context<'_>, allow: bool, budget: &mut Budget) -> (Result<(), CloseReason>, bool) {
        let (len, cap) = (self.tx.buf.len(), self.tx.capacity());
        let r = self.driver.authorize(cx, allow, &mut self.tx.buf);
        budget.charge(self.tx.capacity().saturating_sub(cap));
        (r, self.tx.buf.len() != len)
    }

    /// Done with the held message: drop its bytes.
    pub fn release_message(&mut self) {
        let consumed = self.driver.release();
        self.rx.consume(consumed);
    }

    /// Where messages routed to it go; `None` until its handshake completed.
    #[inline]
    pub fn delivery(&mut self) -> Option<Delivery<'_>> {
        let outbound = self.driver.outbound()?;
        Some(Delivery { tx: &mut self.tx, outbound, queued: &mut self.queued })
    }

    /// Its transmit queue and list flags (for an encoding made once, see `event_loop/sink.rs`).
    #[inline]
    pub fn queues(&mut self) -> (&mut TxBuf, &mut Queued) {
        (&mut self.tx, &mut self.queued)
    }

    /// Its held message and, for the replies to it, its own side of a delivery.
    #[inline]
    pub fn route_view(&mut self) -> (Message<'_>, Option<Delivery<'_>>) {
        let data = self.rx.buf.get(self.rx.start..self.rx.end).unwrap_or(&[]);
        let (msg, outbound) = self.driver.split(data);
        let delivery = outbound.map(|outbound| Delivery { tx: &mut self.tx, outbound, queued: &mut self.queued });
        (msg, delivery)
    }
}
