//! One ZMTP connection, client side (a DEALER talking to a ROUTER): greeting, NULL or CURVE
//! handshake as the client, then traffic through the same deframer and traffic step as the
//! server ([`crate::zmtp::deframer`], [`crate::zmtp::traffic`]). Sans-IO: bytes in, events and
//! bytes out; the caller owns the socket, the buffers and the clock.
//!
//! For every connection viprouter *opens*: `viprouter bench`'s clients today, links to other
//! platforms and a `viprouter stats` client later.
//!
//! Contract — the server session's ([`super`]), with these differences:
//! * [`ClientSession::new`] queues our greeting and, unless the greeting is staged, the first
//!   handshake command (NULL READY, CURVE HELLO). A staged greeting goes out as libzmq sends
//!   it (ZMTP.md §2.2): the 10-byte signature at once, the major version once the peer's
//!   signature arrived, the rest (and READY/HELLO) once its major did.
//! * [`Input::Ready`] once traffic may flow; there is no `Verify` step. The server must announce
//!   a socket type a DEALER may talk to (ROUTER, DEALER, REP; ZMTP.md §4.3).
//! * An ERROR from the server, in the handshake or after it, is [`SessionError::PeerError`];
//!   its reason is [`ClientSession::error_reason`] (ZMTP.md §4.5: `400` for an auth refusal).

use rand_core::CryptoRngCore;

use super::Input;
use crate::limits::{Limits, MAX_IDENTITY_BYTES};
use crate::zmtp::command::{self, Command};
use crate::zmtp::deframer::{Deframer, FrameLimits};
use crate::zmtp::greeting::{self, GREETING_LEN};
use crate::zmtp::mechanism::Mechanism;
use crate::zmtp::mechanism::curve::{ClientStep, CurveClient, CurveError, KeyPair, PublicKey, Traffic};
use crate::zmtp::traffic::{self, Encoder, OnError, Progress};
use crate::zmtp::{Message, SessionError, metadata};

/// How the client authenticates.
#[derive(Clone, Debug)]
pub enum ClientSecurity {
    /// NULL mechanism.
    Null,
    /// CURVE with the server's long-term public key and our key pair.
    Curve {
        /// The server's public key.
        server_key: PublicKey,
        /// Our long-term key pair.
        keys: KeyPair,
    },
}

impl ClientSecurity {
    /// The mechanism the greeting names.
    pub fn mechanism(&self) -> Mechanism {
        match self {
            ClientSecurity::Null => Mechanism::Null,
            ClientSecurity::Curve { .. } => Mechanism::Curve,
        }
    }
}

/// What a client session is.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Mechanism and keys.
    pub security: ClientSecurity,
    /// Our routing identity (the READY/INITIATE `Identity` property).
    pub identity: heapless::Vec<u8, MAX_IDENTITY_BYTES>,
    /// Sizes accepted from the server.
    pub limits: Limits,
    /// Send the greeting in libzmq's three stages (see the module doc).
    pub staged_greeting: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Greeting,
    Handshake,
    Traffic,
}

/// Client-side state of one ZMTP connection.
#[derive(Debug)]
pub struct ClientSession {
    state: State,
    mechanism: Mechanism,
    curve: Option<CurveClient>,
    identity: heapless::Vec<u8, MAX_IDENTITY_BYTES>,
    limits: Limits,
    /// Bytes of our greeting queued so far (staged: 10, 11, then 64).
    greeting_sent: usize,
    peer_minor: u8,
    deframer: Deframer,
    /// The reason of the ERROR the server sent, if any.
    error: heapless::Vec<u8, 255>,
}

impl ClientSession {
    /// A session that greets the server at once: appends our greeting (or its first 10 bytes,
    /// staged) to `out`. `rng` supplies CURVE's transient key.
    ///
    /// # Errors
    /// [`SessionError::Curve`] ([`CurveError::WeakKey`]) for a low-order server key.
    pub fn new(config: &ClientConfig, out: &mut Vec<u8>, rng: &mut dyn CryptoRngCore) -> Result<Self, SessionError> {
        let curve = match &config.security {
            ClientSecurity::Null => None,
            ClientSecurity::Curve { server_key, keys } => {
                Some(CurveClient::new(*server_key, keys.clone(), &mut &mut *rng).map_err(SessionError::Curve)?)
            }
        };
        let mut s = ClientSession {
            state: State::Greeting,
            mechanism: config.security.mechanism(),
            curve,
            identity: config.identity.clone(),
            limits: config.limits.clone(),
            greeting_sent: 0,
            peer_minor: 0,
            deframer: Deframer::new(),
            error: heapless::Vec::new(),
        };
        s.send_greeting(if config.staged_greeting { 10 } else { GREETING_LEN }, out)?;
        Ok(s)
    }

    /// Queue our greeting up to byte `upto`; once all of it is queued, the first handshake
    /// command follows.
    fn send_greeting(&mut self, upto: usize, out: &mut Vec<u8>) -> Result<(), SessionError> {
        let upto = upto.min(GREETING_LEN);
        if upto <= self.greeting_sent {
            return Ok(());
        }
        let g = greeting::emit(self.mechanism, false);
        out.extend_from_slice(g.get(self.greeting_sent..upto).unwrap_or(&[]));
        self.greeting_sent = upto;
        if upto == GREETING_LEN {
            match self.curve.as_mut() {
                None => command::emit_ready(b"DEALER", &self.identity, out),
                Some(curve) => curve.start(out).map_err(SessionError::Curve)?,
            }
        }
        Ok(())
    }

    /// True once the handshake completed.
    pub fn is_traffic(&self) -> bool {
        self.state == State::Traffic
    }

    /// Our routing identity.
    pub fn identity(&self) -> &[u8] {
        &self.identity
    }

    /// The minor version the server announced (0 = ZMTP 3.0).
    pub fn peer_minor(&self) -> u8 {
        self.peer_minor
    }

    /// The reason of the ERROR the server sent (after [`SessionError::PeerError`]).
    pub fn error_reason(&self) -> &[u8] {
        &self.error
    }

    /// Process the unconsumed received bytes `buf` (the module contract). `rng` supplies
    /// CURVE's vouch nonce.
    ///
    /// # Errors
    /// Any [`SessionError`]: the connection is unusable; close it.
    pub fn handle_input(
        &mut self,
        buf: &mut [u8],
        out: &mut Vec<u8>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Input, SessionError> {
        if self.deframer.is_complete() {
            return Ok(Input::Message);
        }
        match self.state {
            State::Traffic => self.traffic_step(buf, out),
            State::Greeting | State::Handshake => self.handshake_step(buf, out, rng),
        }
    }

    fn traffic_step(&mut self, buf: &mut [u8], out: &mut Vec<u8>) -> Result<Input, SessionError> {
        let limits = FrameLimits::new(&self.limits, self.curve.is_some());
        let channel = match self.curve.as_mut() {
            Some(c) => Some(c.channel().map_err(SessionError::Curve)?),
            None => None,
        };
        match traffic::step(&mut self.deframer, channel, &limits, OnError::Report, buf, out)? {
            Progress::Message => Ok(Input::Message),
            Progress::NeedMore => Ok(super::need_more(&mut self.deframer, buf)),
            Progress::PeerError(reason) => Err(self.refused(buf.get(reason).unwrap_or(&[]))),
        }
    }

    /// The greeting (staged or not) and the handshake commands.
    fn handshake_step(
        &mut self,
        buf: &mut [u8],
        out: &mut Vec<u8>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Input, SessionError> {
        if self.state == State::Greeting {
            // libzmq's staging: our major after the peer's signature, the rest after its major.
            if buf.len() >= 11 {
                self.send_greeting(GREETING_LEN, out)?;
            } else if buf.len() >= 10 {
                self.send_greeting(11, out)?;
            }
            let Some(g) = greeting::parse(buf)? else {
                return Ok(Input::NeedMore { consumed: 0, need: GREETING_LEN });
            };
            if Mechanism::from_wire(&g.mechanism) != Some(self.mechanism) {
                return Err(SessionError::MechanismMismatch);
            }
            self.send_greeting(GREETING_LEN, out)?;
            self.peer_minor = g.minor;
            self.deframer.skip(GREETING_LEN);
            self.state = State::Handshake;
        }
        loop {
            let Some(body) = self.deframer.next_handshake_command(buf)? else {
                return Ok(super::need_more(&mut self.deframer, buf));
            };
            let body = buf.get_mut(body).unwrap_or(&mut []);
            let ready = self.handshake_command(body, out, rng)?;
            self.deframer.command_done();
            if ready {
                self.state = State::Traffic;
                return Ok(Input::Ready { consumed: self.deframer.consume_scanned() });
            }
        }
    }

    /// One handshake command from the server; true once traffic may flow.
    fn handshake_command(
        &mut self,
        body: &mut [u8],
        out: &mut Vec<u8>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<bool, SessionError> {
        let Some(curve) = self.curve.as_mut() else {
            let cmd = Command::parse(body)?;
            if cmd.is(command::READY) {
                check_server_socket_type(cmd.data)?;
                return Ok(true);
            }
            if cmd.is(command::ERROR) {
                return Err(self.refused(command::error_reason(cmd.data).unwrap_or(&[])));
            }
            return Err(SessionError::UnexpectedCommand);
        };
        let mut props = Vec::with_capacity(64 + self.identity.len());
        command::socket_metadata(b"DEALER", &self.identity, &mut props);
        match curve.handle_command(body, &props, out, &mut &mut *rng) {
            Ok(ClientStep::InitiateSent) => Ok(false),
            Ok(ClientStep::Ready { metadata }) => {
                check_server_socket_type(body.get(metadata).unwrap_or(&[]))?;
                Ok(true)
            }
            Err(CurveError::ErrorReceived) => Err(self.refused(command::error_body_reason(body).unwrap_or(&[]))),
            Err(e) => Err(SessionError::Curve(e)),
        }
    }

    /// Remember the server's ERROR reason.
    fn refused(&mut self, reason: &[u8]) -> SessionError {
        self.error = heapless::Vec::from_slice(reason.get(..255).unwrap_or(reason)).unwrap_or_default();
        SessionError::PeerError
    }

    /// The held message ([`Input::Message`]), its frames in `buf`.
    pub fn message<'a>(&'a self, buf: &'a [u8]) -> Message<'a> {
        Message::new(buf, self.deframer.parts())
    }

    /// Done with the held message: the bytes the caller must drop now (0 if none is held).
    pub fn release(&mut self) -> usize {
        self.deframer.release()
    }

    /// How messages to the server are encoded; `None` until the handshake completed.
    pub fn encoder(&mut self) -> Option<Encoder<'_>> {
        encoder(&mut self.curve, self.state)
    }

    /// The held message and the encoder at once (a connection whose messages are read while
    /// others are queued to it, as the server session's `split`).
    #[inline]
    pub fn split<'a>(&'a mut self, buf: &'a [u8]) -> (Message<'a>, Option<Encoder<'a>>) {
        (Message::new(buf, self.deframer.parts()), encoder(&mut self.curve, self.state))
    }
}

/// The encoder of a client session in `state`; `None` until the handshake completed.
#[inline]
fn encoder(curve: &mut Option<CurveClient>, state: State) -> Option<Encoder<'_>> {
    if state != State::Traffic {
        return None;
    }
    let channel = match curve.as_mut() {
        Some(c) => Some(c.channel().ok()?),
        None => None,
    };
    Some(Encoder::new(channel, false))
}

/// A DEALER talks to ROUTER, DEALER or REP (ZMTP.md §4.3, §7.7).
fn check_server_socket_type(props: &[u8]) -> Result<(), SessionError> {
    match metadata::find(props, b"Socket-Type")? {
        Some(b"ROUTER" | b"DEALER" | b"REP") => Ok(()),
        _ => Err(SessionError::IncompatibleSocketType),
    }
}
