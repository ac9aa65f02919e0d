//! One ZMTP connection, server side: Greeting → Handshake(mechanism) → Traffic
//! (ZMTP.md §1, §3.2, §5; DESIGN.md §2.2 rule 2).
//!
//! Contract with the caller (`server/conn.rs`):
//! * The caller keeps the received bytes in one buffer and passes the **unconsumed** part to
//!   [`Session::handle_input`] as `buf`. The session answers [`Input`] with `consumed`, the
//!   number of leading bytes the caller must drop before the next call. Bytes of a message
//!   still being assembled are not consumed; the session remembers how far it has scanned,
//!   so every frame header is parsed once and every command is acted on once.
//! * On [`Input::Message`], `parts` holds the frame ranges of the complete message,
//!   relative to `buf`'s start — valid until the caller consumes. Nothing is copied.
//! * On [`Input::NeedMore`], `need` is the number of bytes `buf` must hold (after dropping
//!   `consumed`) for the next step; the caller grows its buffer up to its limits.
//! * Output (our greeting, READY, PONG) is appended to `out`, the connection's transmit queue.
//!
//! Rules from ZMTP.md §3.2 and §15 implemented here: sizes are checked against limits in u64
//! at the header before buffering; commands may sit between the frames of a multipart message
//! and neither end nor join it; PING is answered with PONG at once (even mid-message and with
//! 3.0 peers); unknown or malformed commands after the handshake are ignored, as libzmq does;
//! a data frame during the handshake is a protocol error; bytes that follow a handshake step
//! in the same read are kept.

use core::ops::Range;

use rand_core::CryptoRngCore;

use super::command::{self, Command};
use super::frame::{FLAG_MORE, FrameHeader};
use super::greeting::{self, GREETING_LEN};
use super::mechanism::curve::{CookieKeys, CurveServer, KeyPair, ServerStep};
use super::mechanism::{Credentials, Mechanism, plain};
use super::{DecodeError, Part, Parts, metadata};
use crate::limits::{Limits, MAX_COMMAND_BYTES, MAX_HANDSHAKE_FRAME_BYTES, MAX_IDENTITY_BYTES};

mod progress;
pub use progress::Progress;

/// Inner-flag bits of a CURVE MESSAGE (ZMTP.md §7.9).
const INNER_MORE: u8 = 0x01;
const INNER_COMMAND: u8 = 0x02;

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
    /// The endpoint's mechanism.
    pub mechanism: Mechanism,
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
    /// A complete message; its frames are in `parts`, relative to the `buf` passed in.
    Message {
        /// Leading bytes the caller must drop once it is done with the message.
        consumed: usize,
    },
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
    /// Frames of the message being assembled (offsets relative to the caller's `buf`).
    parts: Parts,
    /// Body bytes of the message being assembled, plus the whole frames of any commands that
    /// arrived between its frames (they stay in the caller's buffer until the message is
    /// complete, so they count against `max_msg_bytes`).
    msg_bytes: u64,
    /// Bytes before this offset are fully processed and not part of an unfinished message.
    msg_start: usize,
    /// Offset of the next unparsed frame header.
    scan: usize,
}

impl Session {
    /// A new session for an accepted connection. Appends our greeting to `out`: it must go
    /// out at once, whole (ZMTP.md §15 item 1).
    pub fn new(mechanism: Mechanism, out: &mut Vec<u8>) -> Session {
        out.extend_from_slice(&greeting::emit(mechanism, true));
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
            parts: Parts::new(),
            msg_bytes: 0,
            msg_start: 0,
            scan: 0,
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
    /// Any [`DecodeError`]: the connection must be closed (after flushing `out`).
    pub fn handle_input(
        &mut self,
        cfg: &SessionConfig<'_>,
        buf: &mut [u8],
        out: &mut Vec<u8>,
        parts: &mut Parts,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Input, DecodeError> {
        if self.ready_pending {
            self.ready_pending = false;
            return Ok(Input::Ready { consumed: 0 });
        }
        loop {
            match self.state {
                State::Greeting => {
                    let Some(g) = greeting::parse(buf)? else {
                        return Ok(Input::NeedMore { consumed: 0, need: GREETING_LEN });
                    };
                    if g.mechanism != self.mechanism.wire_name() {
                        return Err(DecodeError::MechanismMismatch);
                    }
                    self.peer_minor = g.minor;
                    self.scan = GREETING_LEN;
                    self.msg_start = GREETING_LEN;
                    self.state = match self.mechanism {
                        Mechanism::Null => {
                            // NULL: the server sends READY right after the greeting (ZMTP.md §5),
                            // or, when it must verify, once allowed (libzmq waits for ZAP).
                            if !self.null_verify {
                                command::emit_ready(b"ROUTER", cfg.identity, out);
                            }
                            State::NullHandshake
                        }
                        Mechanism::Plain => State::PlainHello,
                        Mechanism::Curve if cfg.curve.is_some() => State::CurveHandshake,
                        Mechanism::Curve => return Err(DecodeError::NotConfigured),
                    };
                }
                State::NullHandshake | State::PlainHello | State::PlainInitiate | State::CurveHandshake => {
                    let Some((hdr, range)) = self.next_frame(buf, MAX_HANDSHAKE_FRAME_BYTES)? else {
                        return Ok(self.need_more(buf));
                    };
                    if !hdr.command() {
                        // Data before the handshake completed (ZMTP.md §3.2).
                        return Err(DecodeError::UnexpectedCommand);
                    }
                    let body = buf.get_mut(range).unwrap_or(&mut []);
                    if let Some(done) = self.handshake_command(cfg, body, out, rng)? {
                        let consumed = self.scan;
                        self.msg_start = self.scan;
                        self.rebase(consumed);
                        return Ok(match done {
                            HandshakeDone::Verify => Input::Verify { consumed },
                            HandshakeDone::Ready => Input::Ready { consumed },
                        });
                    }
                    self.msg_start = self.scan;
                }
                State::Verify => return Ok(Input::Verify { consumed: 0 }),
                State::Failed => return Err(DecodeError::AuthDenied),
                State::Traffic => {
                    let Some((hdr, range)) = self.next_frame_checked(cfg, buf)? else {
                        return Ok(self.need_more(buf));
                    };
                    if hdr.command() {
                        // CURVE: libzmq never sends commands outside MESSAGE; ignore them too.
                        let held = (hdr.header_len + (range.end - range.start)) as u64;
                        if let (Mech::Null | Mech::Plain(_), Some(body)) = (&self.mech, buf.get(range)) {
                            Self::traffic_command(body, out);
                        }
                        if self.parts.is_empty() {
                            self.msg_start = self.scan;
                        } else {
                            // Held in `buf` until the message completes (see `msg_bytes`).
                            self.msg_bytes += held;
                        }
                        continue;
                    }
                    let (more, payload) = match &mut self.mech {
                        Mech::Curve { server, .. } => {
                            let body = buf.get_mut(range.clone()).unwrap_or(&mut []);
                            let (flags, inner) = server.open_message(body).map_err(DecodeError::Curve)?;
                            let payload = range.start + inner.start..range.start + inner.end;
                            if flags & INNER_COMMAND != 0 {
                                let held = (hdr.header_len + (range.end - range.start)) as u64;
                                if let Some(cmd) = buf.get(payload) {
                                    Self::curve_command(server, cmd, out)?;
                                }
                                if self.parts.is_empty() {
                                    self.msg_start = self.scan;
                                } else {
                                    self.msg_bytes += held;
                                }
                                continue;
                            }
                            (flags & INNER_MORE != 0, payload)
                        }
                        _ => (hdr.more(), range),
                    };
                    let len = payload.end - payload.start;
                    if self.parts.len() >= cfg.limits.max_msg_parts {
                        return Err(DecodeError::TooManyParts);
                    }
                    if self.msg_bytes + len as u64 > cfg.limits.max_msg_bytes {
                        return Err(DecodeError::MessageTooLarge);
                    }
                    let part = Part { start: payload.start as u32, len: len as u32 };
                    self.parts.push(part).map_err(|_| DecodeError::TooManyParts)?;
                    self.msg_bytes += len as u64;
                    if !more {
                        return Ok(self.complete_message(parts));
                    }
                }
            }
        }
    }

    /// One complete handshake command. Returns `Some` when the caller must be told.
    fn handshake_command(
        &mut self,
        cfg: &SessionConfig<'_>,
        body: &mut [u8],
        out: &mut Vec<u8>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Option<HandshakeDone>, DecodeError> {
        if self.state == State::CurveHandshake {
            let (Mech::Curve { server, client_key }, Some(ctx)) = (&mut self.mech, cfg.curve) else {
                return Err(DecodeError::NotConfigured);
            };
            let step = server.handle_command(body, &ctx.keys, &ctx.cookies, out, &mut &mut *rng);
            return match step.map_err(DecodeError::Curve)? {
                ServerStep::WelcomeSent => Ok(None),
                ServerStep::Initiated { client_key: key, metadata } => {
                    *client_key = key.0;
                    let props = body.get(metadata).unwrap_or(&[]);
                    self.accept_peer_metadata(props)?;
                    self.state = State::Verify;
                    Ok(Some(HandshakeDone::Verify))
                }
            };
        }
        let cmd = Command::parse(body)?;
        if cmd.is(command::ERROR) {
            return Err(DecodeError::PeerError);
        }
        match self.state {
            State::NullHandshake if cmd.is(command::READY) => {
                self.accept_peer_metadata(cmd.data)?;
                if self.null_verify {
                    self.state = State::Verify;
                    return Ok(Some(HandshakeDone::Verify));
                }
                self.state = State::Traffic;
                Ok(Some(HandshakeDone::Ready))
            }
            State::PlainHello if cmd.is(plain::HELLO) => {
                let (u, p) = plain::parse_hello(cmd.data)?;
                if let Mech::Plain(c) = &mut self.mech {
                    // Both are at most 255 bytes (one length byte each).
                    c.user = heapless::Vec::from_slice(u).unwrap_or_default();
                    c.password = heapless::Vec::from_slice(p).unwrap_or_default();
                }
                self.state = State::Verify;
                Ok(Some(HandshakeDone::Verify))
            }
            State::PlainInitiate if cmd.is(plain::INITIATE) => {
                plain::check_initiate(cmd.data)?;
                self.accept_peer_metadata(cmd.data)?;
                let mut props = Vec::with_capacity(64 + cfg.identity.len());
                command::socket_metadata(b"ROUTER", cfg.identity, &mut props);
                plain::emit_ready(&props, out);
                self.state = State::Traffic;
                Ok(Some(HandshakeDone::Ready))
            }
            _ => Err(DecodeError::UnexpectedCommand),
        }
    }

    /// The caller's authorisation decision after [`Input::Verify`]. Allowed: PLAIN sends
    /// WELCOME and waits for INITIATE; CURVE (and NULL with [`Session::verify_null`]) sends
    /// READY and the next
    /// [`Session::handle_input`] reports [`Input::Ready`]. Refused: an ERROR "400" is queued
    /// (ZMTP.md §8.3: permanent, the libzmq client will not retry) and the session fails.
    ///
    /// # Errors
    /// [`DecodeError::AuthDenied`] when refused; a CURVE error if READY cannot be sealed.
    pub fn authorize(&mut self, cfg: &SessionConfig<'_>, allow: bool, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        if self.state != State::Verify {
            return Err(DecodeError::UnexpectedCommand);
        }
        if !allow {
            self.state = State::Failed;
            command::emit_error(b"400", out);
            return Err(DecodeError::AuthDenied);
        }
        match &mut self.mech {
            Mech::Null => {
                // Only reached with `verify_null`: our READY was held back until now.
                command::emit_ready(b"ROUTER", cfg.identity, out);
                self.state = State::Traffic;
                self.ready_pending = true;
            }
            Mech::Plain(_) => {
                plain::emit_welcome(out);
                self.state = State::PlainInitiate;
            }
            Mech::Curve { server, .. } => {
                let mut props = Vec::with_capacity(64 + cfg.identity.len());
                command::socket_metadata(b"ROUTER", cfg.identity, &mut props);
                server.send_ready(&props, out).map_err(DecodeError::Curve)?;
                self.state = State::Traffic;
                self.ready_pending = true;
            }
        }
        Ok(())
    }

    /// A PING inside a CURVE MESSAGE: answer with a sealed PONG (ZMTP.md §4.6).
    fn curve_command(server: &mut CurveServer, body: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let Ok(cmd) = Command::parse(body) else { return Ok(()) };
        if !cmd.is(command::PING) {
            return Ok(());
        }
        let Ok((_ttl, ctx)) = command::parse_ping(cmd.data) else { return Ok(()) };
        let ctx = ctx.get(..crate::limits::MAX_PING_CONTEXT_BYTES).unwrap_or(ctx);
        let mut pong: heapless::Vec<u8, 32> = heapless::Vec::new();
        let _ = pong.push(4);
        let _ = pong.extend_from_slice(command::PONG);
        let _ = pong.extend_from_slice(ctx);
        out.reserve(CurveServer::sealed_frame_len(pong.len()));
        server.seal_frame(INNER_COMMAND, &pong, out).map_err(DecodeError::Curve)
    }

    /// Parse the frame at `scan`, checking the handshake-phase size limit. On success the scan
    /// position moves past it and the body's range is returned.
    fn next_frame(&mut self, buf: &[u8], limit: u64) -> Result<Option<(FrameHeader, Range<usize>)>, DecodeError> {
        let rest = buf.get(self.scan..).unwrap_or(&[]);
        let Some(hdr) = FrameHeader::parse(rest)? else { return Ok(None) };
        if hdr.size > limit {
            return Err(DecodeError::FrameTooLarge { declared: hdr.size, limit });
        }
        Ok(self.take_frame(hdr, rest.len()))
    }

    /// Like [`Self::next_frame`], with the traffic-phase checks at the header, before the body
    /// is waited for: command size, frame size, message size and part count.
    fn next_frame_checked(
        &mut self,
        cfg: &SessionConfig<'_>,
        buf: &[u8],
    ) -> Result<Option<(FrameHeader, Range<usize>)>, DecodeError> {
        let rest = buf.get(self.scan..).unwrap_or(&[]);
        let Some(hdr) = FrameHeader::parse(rest)? else { return Ok(None) };
        if hdr.command() {
            if hdr.size > MAX_COMMAND_BYTES {
                return Err(DecodeError::FrameTooLarge { declared: hdr.size, limit: MAX_COMMAND_BYTES });
            }
            // A command between the frames of a message cannot be dropped from the buffer
            // before the message completes: without this, a peer that sends one MORE frame and
            // then commands forever makes `need` (and the receive buffer) grow without bound.
            // (Found by the `frame_stream` fuzz target.)
            if !self.parts.is_empty() && self.msg_bytes + hdr.header_len as u64 + hdr.size > cfg.limits.max_msg_bytes {
                return Err(DecodeError::MessageTooLarge);
            }
        } else {
            // Under CURVE the wrapper adds 33 bytes to each frame; the payload limits are
            // checked again on the decrypted size.
            let overhead = if matches!(self.mech, Mech::Curve { .. }) { 33 } else { 0 };
            let limit = cfg.limits.max_frame_bytes + overhead;
            if hdr.size > limit {
                return Err(DecodeError::FrameTooLarge { declared: hdr.size, limit });
            }
            if self.msg_bytes + hdr.size > cfg.limits.max_msg_bytes + overhead {
                return Err(DecodeError::MessageTooLarge);
            }
            if self.parts.len() >= cfg.limits.max_msg_parts {
                return Err(DecodeError::TooManyParts);
            }
        }
        Ok(self.take_frame(hdr, rest.len()))
    }

    /// The body range of a frame whose header was checked, if all of it is buffered.
    fn take_frame(&mut self, hdr: FrameHeader, available: usize) -> Option<(FrameHeader, Range<usize>)> {
        // size ≤ a limit ≤ u32::MAX (limits.rs), so this cannot truncate on 32-bit targets.
        let total = hdr.header_len + hdr.size as usize;
        if available < total {
            return None;
        }
        let start = self.scan + hdr.header_len;
        self.scan += total;
        Some((hdr, start..start + hdr.size as usize))
    }

    /// How many bytes the caller must hold for the next step, and what it may drop now.
    fn need_more(&mut self, buf: &[u8]) -> Input {
        let rest = buf.get(self.scan..).unwrap_or(&[]);
        let wanted = match FrameHeader::parse(rest) {
            Ok(Some(h)) => h.header_len as u64 + h.size,
            _ => 9,
        };
        let consumed = self.msg_start;
        self.rebase(consumed);
        let need = (self.scan as u64).saturating_add(wanted);
        Input::NeedMore { consumed, need: usize::try_from(need).unwrap_or(usize::MAX) }
    }

    /// The caller drops `consumed` leading bytes: shift every remembered offset.
    fn rebase(&mut self, consumed: usize) {
        self.scan -= consumed;
        self.msg_start -= consumed;
        for p in self.parts.iter_mut() {
            p.start -= consumed as u32;
        }
    }

    fn complete_message(&mut self, parts: &mut Parts) -> Input {
        parts.clear();
        let mut frames = self.parts.iter();
        if self.socket_type == SocketType::Req {
            // REQ prepends an empty delimiter (ZMTP.md §4.3); VIP starts after it.
            if let Some(first) = self.parts.first()
                && first.len == 0
            {
                frames.next();
            }
        }
        for p in frames {
            // Cannot fail: both vectors have the same capacity.
            let _ = parts.push(*p);
        }
        self.parts.clear();
        self.msg_bytes = 0;
        let consumed = self.scan;
        self.scan = 0;
        self.msg_start = 0;
        Input::Message { consumed }
    }

    /// A command after the handshake: PING is answered, everything else is ignored
    /// (SUBSCRIBE/CANCEL, PONG, unknown or malformed commands — libzmq ignores them too).
    fn traffic_command(body: &[u8], out: &mut Vec<u8>) {
        let Ok(cmd) = Command::parse(body) else { return };
        if cmd.is(command::PING)
            && let Ok((_ttl, ctx)) = command::parse_ping(cmd.data)
        {
            command::emit_pong(ctx, out);
        }
    }

    /// Check the peer's READY/INITIATE metadata: Socket-Type (if present) must be one a
    /// ROUTER accepts; Identity ≤ 255 bytes becomes the routing id.
    fn accept_peer_metadata(&mut self, props: &[u8]) -> Result<(), DecodeError> {
        metadata::validate(props)?;
        if let Some(t) = metadata::find(props, b"Socket-Type")? {
            self.socket_type = SocketType::from_wire(t).ok_or(DecodeError::IncompatibleSocketType)?;
        }
        let id = metadata::find(props, b"Identity")?.unwrap_or(&[]);
        self.identity = heapless::Vec::from_slice(id).map_err(|_| DecodeError::IdentityTooLong)?;
        Ok(())
    }

    /// Does [`Session::encode_message`] write frames verbatim (no CURVE boxes, no REQ
    /// delimiter)? Then one encoding of a message serves every such session.
    pub fn frames_verbatim(&self) -> bool {
        !matches!(self.mech, Mech::Curve { .. }) && self.socket_type != SocketType::Req
    }

    /// Append `frames` as [`Session::encode_message`] does for a session that writes them
    /// verbatim ([`Session::frames_verbatim`]).
    pub fn encode_verbatim(frames: &[&[u8]], out: &mut Vec<u8>) {
        let last = frames.len().saturating_sub(1);
        for (i, f) in frames.iter().enumerate() {
            FrameHeader::emit_frame(if i != last { FLAG_MORE } else { 0 }, f, out);
        }
    }

    /// Bytes [`Session::encode_message`] appends for `frames`.
    pub fn encoded_len(&self, frames: &[&[u8]]) -> usize {
        let curve = matches!(self.mech, Mech::Curve { .. });
        let one =
            |len: usize| if curve { CurveServer::sealed_frame_len(len) } else { FrameHeader::encoded_len(len) + len };
        let delimiter = if self.socket_type == SocketType::Req { one(0) } else { 0 };
        delimiter + frames.iter().map(|f| one(f.len())).sum::<usize>()
    }

    /// Append `frames` as one multipart message (MORE on all but the last); under CURVE each
    /// frame is sealed into a MESSAGE. REQ peers get the empty delimiter back in front. The
    /// caller reserved [`Session::encoded_len`] bytes, so nothing allocates.
    ///
    /// # Errors
    /// A CURVE sealing error (nonce exhausted): close the connection.
    pub fn encode_message(&mut self, frames: &[&[u8]], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        if self.frames_verbatim() {
            Self::encode_verbatim(frames, out);
            return Ok(());
        }
        let req = self.socket_type == SocketType::Req;
        let last = frames.len().saturating_sub(1);
        let delimiter: &[&[u8]] = if req { &[&[]] } else { &[] };
        for (i, f) in delimiter.iter().chain(frames.iter()).enumerate() {
            let i = if req { i.wrapping_sub(1) } else { i };
            let more = i != last;
            match &mut self.mech {
                Mech::Curve { server, .. } => {
                    server.seal_frame(if more { INNER_MORE } else { 0 }, f, out).map_err(DecodeError::Curve)?;
                }
                _ => FrameHeader::emit_frame(if more { FLAG_MORE } else { 0 }, f, out),
            }
        }
        Ok(())
    }
}

/// What a handshake step tells the caller.
enum HandshakeDone {
    Verify,
    Ready,
}

#[cfg(test)]
mod tests;
