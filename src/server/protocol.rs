//! What drives a connection's bytes, as the event loop sees it: bytes in, [`Input`] events and
//! bytes out, a held message to route, an encoder for the messages routed to it.
//!
//! Every connection has a [`Driver`]. An accepted agent's is the ZMTP server session, held
//! inline and called directly (the hot path). Any other protocol — the ZMTP client of a link to
//! another platform, an AMQP connection to a broker, a test double — implements [`Protocol`]
//! and is called through [`Driver::Other`]; the event loop treats both alike:
//!
//! 1. a dialled connection is told when its TCP connect completed ([`Protocol::connected`]) and
//!    queues its opening bytes;
//! 2. received bytes go to [`Protocol::handle_input`]: `NeedMore` (keep `need` bytes),
//!    `Ready` (the handshake is done: the connection becomes a VIP peer under
//!    [`Protocol::identity`]), `Message` (a complete message is held until
//!    [`Protocol::release`]); `Verify` only comes from ZMTP server sessions;
//! 3. the router reads the held message through [`Protocol::split`], which also lends the
//!    connection's [`Outbound`] encoder, so that replies to the sender can be queued while its
//!    message is read;
//! 4. messages routed to the connection are encoded by its [`Outbound`] (None until ready).
//!
//! A protocol that keeps its own transmit buffer, runs its own timers or is a message bus (the
//! RabbitMQ bridge's AMQP client) also has:
//!
//! 5. [`Protocol::take_output`]: bytes it queued outside `handle_input` (publishes, acks) are
//!    moved into the connection's transmit queue when the server flushes it, a bounded chunk at
//!    a time, so that its own buffer — and its own limit — hold the backlog;
//! 6. [`Protocol::next_timer`] / [`Protocol::on_timer`]: the server calls it when its time came
//!    (heartbeats, its own deadlines), at the time of the turn ([`Context::now`]);
//! 7. [`Protocol::bus`]: the router's view of a message bus ([`crate::vip::bridge::Bus`]), lent
//!    through the server's sink while the router routes.
//!
//! An error is a [`CloseReason`]: the connection is closed, counted and logged from it.

use rand_core::CryptoRngCore;

use super::close::CloseReason;
use crate::stats::Stats;
use crate::time::Instant;
use crate::vip::bridge::Bus;
use crate::zmtp::Message;
use crate::zmtp::mechanism::{Credentials, Mechanism};
use crate::zmtp::session::{HandshakeProgress, Input, Session, SessionConfig};
use crate::zmtp::traffic::Encoder;

/// What a protocol may use while it handles input.
pub struct Context<'a> {
    /// Our routing id, the limits in force and the CURVE keys.
    pub session: SessionConfig<'a>,
    /// Randomness (CURVE transient keys, nonces).
    pub rng: &'a mut dyn CryptoRngCore,
    /// The time of the turn (the caller's clock, [`crate::server::event_loop::Server::turn`]).
    pub now: Instant,
    /// The server's counters.
    pub stats: &'a mut Stats,
}

/// How messages to a peer are encoded, for protocols other than ZMTP.
pub trait Encode {
    /// Bytes [`Encode::encode`] appends for `frames`.
    fn encoded_len(&self, frames: &[&[u8]]) -> usize;

    /// Append `frames` (one VIP message) to `out`, which has [`Encode::encoded_len`] bytes
    /// reserved.
    ///
    /// # Errors
    /// The connection cannot send any more: it is closed.
    fn encode(&mut self, frames: &[&[u8]], out: &mut Vec<u8>) -> Result<(), CloseReason>;
}

/// The encoder of one connection, lent for the messages routed to it.
pub enum Outbound<'a> {
    /// A ZMTP session's (sealed under CURVE, with the REQ delimiter, or verbatim).
    Zmtp(Encoder<'a>),
    /// Another protocol's.
    Other(&'a mut dyn Encode),
}

impl Outbound<'_> {
    /// One encoding of a message serves every connection for which this holds
    /// ([`crate::zmtp::traffic::encode_verbatim`]).
    #[inline]
    pub fn verbatim(&self) -> bool {
        match self {
            Outbound::Zmtp(e) => e.verbatim(),
            Outbound::Other(_) => false,
        }
    }

    /// Bytes [`Outbound::encode`] appends.
    #[inline]
    pub fn encoded_len(&self, frames: &[&[u8]]) -> usize {
        match self {
            Outbound::Zmtp(e) => e.encoded_len(frames),
            Outbound::Other(e) => e.encoded_len(frames),
        }
    }

    /// Append `frames` as one message.
    ///
    /// # Errors
    /// The connection cannot send any more (CURVE nonce exhausted): close it.
    #[inline]
    pub fn encode(&mut self, frames: &[&[u8]], out: &mut Vec<u8>) -> Result<(), CloseReason> {
        match self {
            Outbound::Zmtp(e) => e.encode(frames, out).map_err(CloseReason::Protocol),
            Outbound::Other(e) => e.encode(frames, out),
        }
    }

    /// [`Outbound::encode`] with `len` = [`Outbound::encoded_len`]`(frames)` already known.
    ///
    /// # Errors
    /// As [`Outbound::encode`].
    #[inline]
    pub fn encode_sized(&mut self, frames: &[&[u8]], len: usize, out: &mut Vec<u8>) -> Result<(), CloseReason> {
        match self {
            Outbound::Zmtp(e) => e.encode_sized(frames, len, out).map_err(CloseReason::Protocol),
            Outbound::Other(e) => e.encode(frames, out),
        }
    }
}

/// A connection protocol other than the ZMTP server session (see the module doc).
pub trait Protocol {
    /// A dialled connection's TCP connect completed: queue the opening bytes.
    ///
    /// # Errors
    /// The protocol cannot start: the connection is closed.
    fn connected(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Result<(), CloseReason>;

    /// Process the unconsumed received bytes `buf`, appending output to `out` (the
    /// [`crate::zmtp::session::Session::handle_input`] contract).
    ///
    /// # Errors
    /// The connection must be closed (after what `out` holds is flushed).
    fn handle_input(&mut self, cx: &mut Context<'_>, buf: &mut [u8], out: &mut Vec<u8>) -> Result<Input, CloseReason>;

    /// The identity the connection is a VIP peer under, once `Ready`.
    fn identity(&self) -> &[u8];

    /// The held message (frames in `buf`) and the encoder for replies to this connection.
    fn split<'a>(&'a mut self, buf: &'a [u8]) -> (Message<'a>, Option<Outbound<'a>>);

    /// Done with the held message: the bytes to drop.
    fn release(&mut self) -> usize;

    /// The encoder for messages routed to this connection; `None` until `Ready`.
    fn outbound(&mut self) -> Option<Outbound<'_>>;

    /// Move output queued outside [`Protocol::handle_input`] into `out` (the connection's
    /// transmit queue, called before each flush): at most a bounded chunk while `out` already
    /// holds bytes. The default has none.
    ///
    /// # Errors
    /// The connection must be closed (after what `out` holds is flushed).
    fn take_output(&mut self, now: Instant, out: &mut Vec<u8>) -> Result<(), CloseReason> {
        let _ = (now, out);
        Ok(())
    }

    /// When [`Protocol::on_timer`] is next due (`None`: no timer).
    fn next_timer(&self) -> Option<Instant> {
        None
    }

    /// The time given by [`Protocol::next_timer`] came: queue what is due into `out`.
    ///
    /// # Errors
    /// The connection must be closed (a heartbeat timeout, a deadline missed).
    fn on_timer(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Result<(), CloseReason> {
        let _ = (cx, out);
        Ok(())
    }

    /// The message bus this connection carries (the RabbitMQ bridge), as the router uses it.
    fn bus(&mut self) -> Option<&mut dyn Bus> {
        None
    }
}

/// The protocol of one connection: the ZMTP server session inline, anything else boxed.
// The session inline is the point: one less pointer to chase per message and per delivery;
// every `Conn` is boxed in its slot anyway.
#[allow(clippy::large_enum_variant)]
pub enum Driver {
    /// An accepted agent: the server side of a ZMTP session.
    Zmtp(Session),
    /// A dialled connection or any other protocol.
    Other(Box<dyn Protocol>),
}

impl core::fmt::Debug for Driver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Driver::Zmtp(s) => f.debug_tuple("Zmtp").field(s).finish(),
            Driver::Other(_) => f.write_str("Other"),
        }
    }
}

impl Driver {
    /// See [`Protocol::connected`]; a ZMTP server session is never dialled.
    pub fn connected(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Result<(), CloseReason> {
        match self {
            Driver::Zmtp(_) => Ok(()),
            Driver::Other(p) => p.connected(cx, out),
        }
    }

    /// See [`Protocol::handle_input`].
    pub fn handle_input(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<Input, CloseReason> {
        match self {
            Driver::Zmtp(s) => s.handle_input(&cx.session, buf, out, cx.rng).map_err(CloseReason::Protocol),
            Driver::Other(p) => p.handle_input(cx, buf, out),
        }
    }

    /// What an accepted ZMTP peer presented, for the authorisation decision after
    /// `Input::Verify`; `None` for other protocols (they never ask).
    pub fn credentials(&self) -> Option<(Mechanism, Credentials<'_>, &[u8])> {
        match self {
            Driver::Zmtp(s) => Some((s.mechanism(), s.credentials(), s.identity())),
            Driver::Other(_) => None,
        }
    }

    /// How far an accepted ZMTP peer's handshake has come (for the handshake eviction); `None`
    /// for other protocols (dialled: never evicted).
    pub fn handshake_progress(&self) -> Option<HandshakeProgress> {
        match self {
            Driver::Zmtp(s) => Some(s.handshake_progress()),
            Driver::Other(_) => None,
        }
    }

    /// The decision after `Input::Verify`.
    ///
    /// # Errors
    /// Refused, or the reply could not be sealed: close the connection.
    pub fn authorize(&mut self, cx: &Context<'_>, allow: bool, out: &mut Vec<u8>) -> Result<(), CloseReason> {
        match self {
            Driver::Zmtp(s) => s.authorize(&cx.session, allow, out).map_err(CloseReason::Protocol),
            Driver::Other(_) => Err(CloseReason::Protocol(crate::zmtp::SessionError::UnexpectedCommand)),
        }
    }

    /// See [`Protocol::identity`].
    pub fn identity(&self) -> &[u8] {
        match self {
            Driver::Zmtp(s) => s.identity(),
            Driver::Other(p) => p.identity(),
        }
    }

    /// See [`Protocol::split`].
    #[inline]
    pub fn split<'a>(&'a mut self, buf: &'a [u8]) -> (Message<'a>, Option<Outbound<'a>>) {
        match self {
            Driver::Zmtp(s) => {
                let (msg, enc) = s.split(buf);
                (msg, enc.map(Outbound::Zmtp))
            }
            Driver::Other(p) => p.split(buf),
        }
    }

    /// See [`Protocol::release`].
    #[inline]
    pub fn release(&mut self) -> usize {
        match self {
            Driver::Zmtp(s) => s.release(),
            Driver::Other(p) => p.release(),
        }
    }

    /// See [`Protocol::outbound`].
    #[inline]
    pub fn outbound(&mut self) -> Option<Outbound<'_>> {
        match self {
            Driver::Zmtp(s) => s.encoder().map(Outbound::Zmtp),
            Driver::Other(p) => p.outbound(),
        }
    }

    /// See [`Protocol::take_output`].
    pub fn take_output(&mut self, now: Instant, out: &mut Vec<u8>) -> Result<(), CloseReason> {
        match self {
            Driver::Zmtp(_) => Ok(()),
            Driver::Other(p) => p.take_output(now, out),
        }
    }

    /// See [`Protocol::next_timer`].
    pub fn next_timer(&self) -> Option<Instant> {
        match self {
            Driver::Zmtp(_) => None,
            Driver::Other(p) => p.next_timer(),
        }
    }

    /// See [`Protocol::on_timer`].
    pub fn on_timer(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Result<(), CloseReason> {
        match self {
            Driver::Zmtp(_) => Ok(()),
            Driver::Other(p) => p.on_timer(cx, out),
        }
    }

    /// See [`Protocol::bus`].
    pub fn bus(&mut self) -> Option<&mut dyn Bus> {
        match self {
            Driver::Zmtp(_) => None,
            Driver::Other(p) => p.bus(),
        }
    }

    /// One encoding of a message serves this connection and every other for which this holds.
    #[inline]
    pub fn frames_verbatim(&self) -> bool {
        match self {
            Driver::Zmtp(s) => s.is_traffic() && s.frames_verbatim(),
            Driver::Other(_) => false,
        }
    }
}
