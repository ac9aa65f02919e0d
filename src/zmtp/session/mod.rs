//! One ZMTP connection, server side: Greeting → Handshake(mechanism) → Traffic
//! (ZMTP.md §1, §3.2, §5; DESIGN.md §2.2 rule 2). The client side is [`client`].
//!
//! Contract with the caller (`server/`):
//! * The caller keeps the received bytes in one buffer and passes the **unconsumed** part to
//!   [`Session::handle_input`] as `buf`. The session answers [`Input`]; `consumed` is the
//!   number of leading bytes the caller must drop before the next call. Bytes of a message
//!   still being assembled are not consumed; the session remembers how far it has scanned,
//!   so every frame header is parsed once and every command is acted on once ([`Deframer`]).
//! * On [`Input::Message`] the session **holds** the complete message: [`Session::message`]
//!   is a view of its frames in `buf` (nothing is copied), valid until the caller calls
//!   [`Session::release`], which says how many bytes to drop. A caller that cannot deliver the
//!   message now keeps it there: every later [`Session::handle_input`] answers
//!   [`Input::Message`] again, for the same message, until it is released.
//! * On [`Input::NeedMore`], `need` is the number of bytes `buf` must hold (after dropping
//!   `consumed`) for the next step; the caller grows its buffer up to its limits.
//! * Output (our greeting, READY, PONG) is appended to `out`, the connection's transmit queue;
//!   messages to the peer are encoded by the session's [`Encoder`] ([`Session::encoder`],
//!   [`Session::split`]).
//!
//! Layout: this file holds the types and the dispatch; `handshake.rs` the greeting, NULL,
//! PLAIN and CURVE handshakes and the authorisation step; `progress.rs` how far a handshake has
//! come ([`HandshakeProgress`], for the server's eviction choice); the traffic phase is
//! [`crate::zmtp::traffic`], shared with the client.
//!
//! A data frame during the handshake is a protocol error; bytes that follow a handshake step
//! in the same read are kept. The traffic rules are in [`crate::zmtp::traffic`].

use rand_core::CryptoRngCore;

use super::deframer::{Deframer, FrameLimits};
use super::mechanism::curve::{CookieKeys, CurveServer, KeyPair, Traffic};
use super::mechanism::{Credentials, Mechanism};
use super::traffic::{self, Encoder, OnError, Progress};
use super::{Message, Part, SessionError};
use crate::limits::{Limits, MAX_IDENTITY_BYTES};

pub mod client;
mod handshake;
mod progress;

pub use progress::HandshakeProgress;

/// The server's long-term CURVE keys and the process-wide cookie keys.
#[derive(Debug)]
pub struct CurveContext {
    /// Long-term key pair (`$VOLTTRON_HOME/keystore`).
    pub keys: KeyPair,
    /// Cookie keys, rotated by the server layer.
    pub cookies: CookieKeys,
}

/// Peer socket types a ROUTER accepts (ZMTP.md §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketType {
    /// DEALER: frames arrive as the application sent them (every VOLTTRON agent).
    Dealer,
    /// REQ: a leading empty delimiter frame on input, which replies must carry back.
    Req,
    /// ROUTER: behaves like a DEALER on the wire (VIP.md §3.6 `via`).
    Router,
}

impl SocketType {
    fn from_wire(name: &[u8]) -> Option<SocketType> {
        match name {
            b"DEALER" => Some(SocketType::Dealer),
            b"REQ" => Some(SocketType::Req),
            b"ROUTER" => Some(SocketType::Router),
            _ => None,
        }
    }
}

/// What the session needs from its endpoint.
#[derive(Clone, Copy, Debug)]
pub struct SessionConfig<'a> {
    /// Our routing id, sent as the READY `Identity` property (VOLTTRON: a uuid4 string).
    pub identity: &'a [u8],
    /// Effective limits.
    pub limits: &'a Limits,
    /// CURVE keys (required on CURVE endpoints).
    pub curve: Option<&'a CurveContext>,
}

/// Progress reported by [`Session::handle_input`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Input {
    /// Nothing more can be done with the bytes at hand.
    NeedMore {
        /// Leading bytes the caller must drop.
        consumed: usize,
        /// Bytes the (remaining) buffer must hold for the next step.
        need: usize,
    },
    /// The handshake completed; [`Session::identity`] and [`Session::socket_type`] are set.
    Ready {
        /// Leading bytes the caller must drop.
        consumed: usize,
    },
    /// The peer presented credentials ([`Session::credentials`]): decide, then call
    /// [`Session::authorize`] before feeding more input.
    Verify {
        /// Leading bytes the caller must drop.
        consumed: usize,
    },
    /// A complete message, held by the session until [`Session::release`]:
    /// [`Session::message`] shows its frames in the `buf` passed in.
    Message,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Greeting,
    NullHandshake,
    PlainHello,
    PlainInitiate,
    CurveHandshake,
    /// Credentials presented; waiting for [`Session::authorize`].
    Verify,
    Traffic,
    Failed,
}

/// What a PLAIN client sent in HELLO.
#[derive(Debug, Default)]
struct PlainCredentials {
    user: heapless::Vec<u8, 255>,
    password: heapless::Vec<u8, 255>,
}

/// Per-mechanism state.
#[derive(Debug)]
enum Mech {
    Null,
    /// Boxed: 510 bytes that only PLAIN connections need, taken at accept.
    Plain(Box<PlainCredentials>),
    Curve {
        server: CurveServer,
        client_key: [u8; 32],
    },
}

/// Server-side state of one ZMTP connection.
#[derive(Debug)]
pub struct Session {
    state: State,
    mechanism: Mechanism,
    mech: Mech,
    /// The handshake just completed inside [`Session::authorize`]; report it on the next call.
    ready_pending: bool,
    /// NULL only: ask the caller ([`Input::Verify`]) after the client's READY and send ours
    /// only if allowed ([`Session::verify_null`]).
    null_verify: bool,
    peer_minor: u8,
    socket_type: SocketType,
    identity: heapless::Vec<u8, MAX_IDENTITY_BYTES>,
    /// Frames scanned in the caller's buffer; the message being assembled or held.
    deframer: Deframer,
}

impl Session {
    /// A new session for an accepted connection. Appends our greeting to `out`: it must go
    /// out at once, whole (ZMTP.md §15 item 1).
    pub fn new(mechanism: Mechanism, out: &mut Vec<u8>) -> Session {
        out.extend_from_slice(&super::greeting::emit(mechanism, true));
        Session {
            state: State::Greeting,
            mechanism,
            mech: match mechanism {
                Mechanism::Null => Mech::Null,
                Mechanism::Plain => Mech::Plain(Box::default()),
                Mechanism::Curve => Mech::Curve { server: CurveServer::new(), client_key: [0; 32] },
            },
            ready_pending: false,
            null_verify: false,
            peer_minor: 0,
            socket_type: SocketType::Dealer,
            identity: heapless::Vec::new(),
            deframer: Deframer::new(),
        }
    }

    /// NULL endpoints with authentication (VOLTTRON binds every endpoint with ZAP domain
    /// `vip` while auth is on, and libzmq then asks ZAP about NULL peers too, ZMTP.md §8): the
    /// client's READY yields [`Input::Verify`] and our READY goes out from
    /// [`Session::authorize`], or an ERROR `400`. Call before the first input; no effect on
    /// PLAIN and CURVE, which always verify.
    pub fn verify_null(&mut self) {
        self.null_verify = self.mechanism == Mechanism::Null;
    }

    /// True once the handshake completed.
    pub fn is_traffic(&self) -> bool {
        self.state == State::Traffic
    }

    /// The peer's `Identity` property (empty if it sent none). Valid after [`Input::Ready`].
    pub fn identity(&self) -> &[u8] {
        &self.identity
    }

    /// The peer's socket type. Valid after [`Input::Ready`].
    pub fn socket_type(&self) -> SocketType {
        self.socket_type
    }

    /// The minor version the peer announced (0 = ZMTP 3.0).
    pub fn peer_minor(&self) -> u8 {
        self.peer_minor
    }

    /// The endpoint's mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// What the peer presented in the handshake (valid after [`Input::Verify`]).
    pub fn credentials(&self) -> Credentials<'_> {
        match &self.mech {
            Mech::Null => Credentials::Null,
            Mech::Plain(c) => Credentials::Plain { user: &c.user, password: &c.password },
            Mech::Curve { client_key, .. } => Credentials::Curve(client_key),
        }
    }

    /// Process the unconsumed received bytes `buf` (see the module contract). `rng` supplies
    /// the CURVE server's transient keys and nonces.
    ///
    /// # Errors
    /// Any [`SessionError`]: the connection must be closed (after flushing `out`).
    pub fn handle_input(
        &mut self,
        cfg: &SessionConfig<'_>,
        buf: &mut [u8],
        out: &mut Vec<u8>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Input, SessionError> {
        if self.ready_pending {
            self.ready_pending = false;
            return Ok(Input::Ready { consumed: 0 });
        }
        if self.deframer.is_complete() {
            return Ok(Input::Message);
        }
        match self.state {
            State::Traffic => self.traffic_step(cfg, buf, out),
            State::Verify => Ok(Input::Verify { consumed: 0 }),
            State::Failed => Err(SessionError::AuthDenied),
            State::Greeting
            | State::NullHandshake
            | State::PlainHello
            | State::PlainInitiate
            | State::CurveHandshake => self.handshake_step(cfg, buf, out, rng),
        }
    }

    /// Frames after the handshake, until a message is complete or the bytes run out.
    fn traffic_step(
        &mut self,
        cfg: &SessionConfig<'_>,
        buf: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<Input, SessionError> {
        let limits = FrameLimits::new(cfg.limits, matches!(self.mech, Mech::Curve { .. }));
        let channel = match &mut self.mech {
            Mech::Curve { server, .. } => Some(server.channel().map_err(SessionError::Curve)?),
            Mech::Null | Mech::Plain(_) => None,
        };
        match traffic::step(&mut self.deframer, channel, &limits, OnError::Ignore, buf, out)? {
            Progress::Message => Ok(Input::Message),
            Progress::NeedMore | Progress::PeerError(_) => Ok(need_more(&mut self.deframer, buf)),
        }
    }

    /// The held message ([`Input::Message`]): its frames in `buf`, the unconsumed bytes the
    /// message was found in. A REQ peer's leading empty delimiter is left out (VIP starts after
    /// it, ZMTP.md §4.3). No frames while no message is held.
    #[inline]
    pub fn message<'a>(&'a self, buf: &'a [u8]) -> Message<'a> {
        Message::new(buf, message_parts(&self.deframer, self.socket_type))
    }

    /// Done with the held message: the bytes the caller must drop now (0 if none is held).
    #[inline]
    pub fn release(&mut self) -> usize {
        self.deframer.release()
    }

    /// How messages to this peer are encoded; `None` until the handshake completed.
    #[inline]
    pub fn encoder(&mut self) -> Option<Encoder<'_>> {
        encoder(&mut self.mech, self.socket_type, self.state)
    }

    /// The held message and the encoder at once, for a message whose replies go back to its
    /// own sender while it is being read (the router answering `hello`, errors, counts).
    #[inline]
    pub fn split<'a>(&'a mut self, buf: &'a [u8]) -> (Message<'a>, Option<Encoder<'a>>) {
        let msg = Message::new(buf, message_parts(&self.deframer, self.socket_type));
        (msg, encoder(&mut self.mech, self.socket_type, self.state))
    }

    /// Does the [`Encoder`] write frames verbatim (no CURVE boxes, no REQ delimiter)? Then one
    /// encoding of a message serves every such session.
    #[inline]
    pub fn frames_verbatim(&self) -> bool {
        !matches!(self.mech, Mech::Curve { .. }) && self.socket_type != SocketType::Req
    }
}

/// Nothing more can be done with the bytes at hand: what to drop and what to wait for.
fn need_more(deframer: &mut Deframer, buf: &[u8]) -> Input {
    let (consumed, need) = deframer.need_more(buf);
    Input::NeedMore { consumed, need }
}

/// The frames of the held message, without a REQ peer's leading empty delimiter.
#[inline]
fn message_parts(deframer: &Deframer, socket_type: SocketType) -> &[Part] {
    let parts = deframer.parts();
    match parts.split_first() {
        Some((first, rest)) if socket_type == SocketType::Req && first.len == 0 => rest,
        _ => parts,
    }
}

/// The encoder of a session in traffic: sealed under CURVE, with the delimiter for REQ.
#[inline]
fn encoder(mech: &mut Mech, socket_type: SocketType, state: State) -> Option<Encoder<'_>> {
    if state != State::Traffic {
        return None;
    }
    let channel = match mech {
        Mech::Curve { server, .. } => Some(server.channel().ok()?),
        Mech::Null | Mech::Plain(_) => None,
    };
    Some(Encoder::new(channel, socket_type == SocketType::Req))
}

#[cfg(test)]
mod tests;
