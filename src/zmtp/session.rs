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

use super::command::{self, Command};
use super::frame::{FLAG_MORE, FrameHeader};
use super::greeting::{self, GREETING_LEN};
use super::mechanism::Mechanism;
use super::{DecodeError, Part, Parts, metadata};
use crate::limits::{Limits, MAX_COMMAND_BYTES, MAX_HANDSHAKE_FRAME_BYTES, MAX_IDENTITY_BYTES};

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
    Traffic,
}

/// Server-side state of one ZMTP connection.
#[derive(Debug)]
pub struct Session {
    state: State,
    mechanism: Mechanism,
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
            peer_minor: 0,
            socket_type: SocketType::Dealer,
            identity: heapless::Vec::new(),
            parts: Parts::new(),
            msg_bytes: 0,
            msg_start: 0,
            scan: 0,
        }
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

    /// Process the unconsumed received bytes `buf` (see the module contract).
    ///
    /// # Errors
    /// Any [`DecodeError`]: the connection must be closed (after flushing `out`).
    pub fn handle_input(
        &mut self,
        cfg: &SessionConfig<'_>,
        buf: &mut [u8],
        out: &mut Vec<u8>,
        parts: &mut Parts,
    ) -> Result<Input, DecodeError> {
        loop {
            match self.state {
                State::Greeting => {
                    let Some(g) = greeting::parse(buf)? else {
                        return Ok(Input::NeedMore { consumed: 0, need: GREETING_LEN });
                    };
                    if g.mechanism != cfg.mechanism.wire_name() {
                        return Err(DecodeError::MechanismMismatch);
                    }
                    self.peer_minor = g.minor;
                    self.scan = GREETING_LEN;
                    self.msg_start = GREETING_LEN;
                    // NULL: the server sends READY right after the greeting (ZMTP.md §5).
                    command::emit_ready(b"ROUTER", cfg.identity, out);
                    self.state = State::NullHandshake;
                }
                State::NullHandshake => {
                    let Some((hdr, body)) = self.next_frame(buf, MAX_HANDSHAKE_FRAME_BYTES)? else {
                        return Ok(self.need_more(buf));
                    };
                    if !hdr.command() {
                        return Err(DecodeError::UnexpectedCommand);
                    }
                    let cmd = Command::parse(body)?;
                    if cmd.is(command::ERROR) {
                        return Err(DecodeError::PeerError);
                    }
                    if !cmd.is(command::READY) {
                        return Err(DecodeError::UnexpectedCommand);
                    }
                    self.accept_peer_metadata(cmd.data)?;
                    self.state = State::Traffic;
                    self.msg_start = self.scan;
                    let consumed = self.scan;
                    self.rebase(consumed);
                    return Ok(Input::Ready { consumed });
                }
                State::Traffic => {
                    let limit = cfg.limits.max_frame_bytes;
                    let Some((hdr, body)) = self.next_frame_checked(cfg, buf, limit)? else {
                        return Ok(self.need_more(buf));
                    };
                    if hdr.command() {
                        Self::traffic_command(body, out);
                        if self.parts.is_empty() {
                            self.msg_start = self.scan;
                        } else {
                            // Held in `buf` until the message completes (see `msg_bytes`).
                            self.msg_bytes += (hdr.header_len + body.len()) as u64;
                        }
                        continue;
                    }
                    let start = self.scan - body.len();
                    let part = Part { start: start as u32, len: body.len() as u32 };
                    self.parts.push(part).map_err(|_| DecodeError::TooManyParts)?;
                    self.msg_bytes += body.len() as u64;
                    if !hdr.more() {
                        return Ok(self.complete_message(parts));
                    }
                }
            }
        }
    }

    /// Parse the frame at `scan`, checking the handshake-phase size limit. On success the scan
    /// position moves past it.
    fn next_frame<'b>(
        &mut self,
        buf: &'b [u8],
        limit: u64,
    ) -> Result<Option<(FrameHeader, &'b [u8])>, DecodeError> {
        let rest = buf.get(self.scan..).unwrap_or(&[]);
        let Some(hdr) = FrameHeader::parse(rest)? else { return Ok(None) };
        if hdr.size > limit {
            return Err(DecodeError::FrameTooLarge { declared: hdr.size, limit });
        }
        // size ≤ limit ≤ u32::MAX (limits.rs), so this cannot truncate on 32-bit targets.
        let total = hdr.header_len + hdr.size as usize;
        let Some(body) = rest.get(hdr.header_len..total) else { return Ok(None) };
        self.scan += total;
        Ok(Some((hdr, body)))
    }

    /// Like [`Self::next_frame`], with the traffic-phase checks: command size, message size and
    /// part count — all at the header, before the body is waited for.
    fn next_frame_checked<'b>(
        &mut self,
        cfg: &SessionConfig<'_>,
        buf: &'b [u8],
        frame_limit: u64,
    ) -> Result<Option<(FrameHeader, &'b [u8])>, DecodeError> {
        let rest = buf.get(self.scan..).unwrap_or(&[]);
        let Some(hdr) = FrameHeader::parse(rest)? else { return Ok(None) };
        if hdr.command() {
            if hdr.size > MAX_COMMAND_BYTES {
                return Err(DecodeError::FrameTooLarge { declared: hdr.size, limit: MAX_COMMAND_BYTES });
            }
            // A command between the frames of a message cannot be dropped from the buffer
            // before the message completes: without this, a peer that sends one MORE frame and
            // then commands forever makes `need` (and the receive buffer) grow without bound.
            if !self.parts.is_empty() && self.msg_bytes + hdr.header_len as u64 + hdr.size > cfg.limits.max_msg_bytes {
                return Err(DecodeError::MessageTooLarge);
            }
        } else {
            if hdr.size > frame_limit {
                return Err(DecodeError::FrameTooLarge { declared: hdr.size, limit: frame_limit });
            }
            if self.msg_bytes + hdr.size > cfg.limits.max_msg_bytes {
                return Err(DecodeError::MessageTooLarge);
            }
            if self.parts.len() >= cfg.limits.max_msg_parts {
                return Err(DecodeError::TooManyParts);
            }
        }
        let total = hdr.header_len + hdr.size as usize;
        let Some(body) = rest.get(hdr.header_len..total) else { return Ok(None) };
        self.scan += total;
        Ok(Some((hdr, body)))
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
            if let Some(first) = self.parts.first() {
                if first.len == 0 {
                    frames.next();
                }
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
        if cmd.is(command::PING) {
            if let Ok((_ttl, ctx)) = command::parse_ping(cmd.data) {
                command::emit_pong(ctx, out);
            }
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

    /// Bytes [`Session::encode_message`] appends for `frames`.
    pub fn encoded_len(&self, frames: &[&[u8]]) -> usize {
        let delimiter = if self.socket_type == SocketType::Req { 2 } else { 0 };
        delimiter + frames.iter().map(|f| FrameHeader::encoded_len(f.len()) + f.len()).sum::<usize>()
    }

    /// Append `frames` as one multipart message (MORE on all but the last). REQ peers get the
    /// empty delimiter back in front.
    pub fn encode_message(&mut self, frames: &[&[u8]], out: &mut Vec<u8>) {
        if self.socket_type == SocketType::Req {
            FrameHeader::emit_frame(FLAG_MORE, &[], out);
        }
        let last = frames.len().saturating_sub(1);
        for (i, f) in frames.iter().enumerate() {
            let flags = if i < last { FLAG_MORE } else { 0 };
            FrameHeader::emit_frame(flags, f, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zmtp::Message;

    pub(crate) const DEALER_READY_AGENT1: &[u8] = b"\x04\x2f\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x06agent1";

    fn client_greeting() -> [u8; 64] {
        greeting::emit(Mechanism::Null, false)
    }

    /// Drive a session the way the server does, feeding `stream` in chunks of `chunk` bytes;
    /// return the events as strings and everything the session wrote.
    fn drive(stream: &[u8], chunk: usize) -> Result<(Vec<String>, Vec<u8>), DecodeError> {
        drive_with(stream, chunk, &Limits::COMPILED)
    }

    fn drive_with(stream: &[u8], chunk: usize, limits: &Limits) -> Result<(Vec<String>, Vec<u8>), DecodeError> {
        let cfg = SessionConfig { mechanism: Mechanism::Null, identity: b"rid", limits };
        let mut out = Vec::new();
        let mut s = Session::new(Mechanism::Null, &mut out);
        let mut rx: Vec<u8> = Vec::new();
        let mut events = Vec::new();
        let mut parts = Parts::new();
        for piece in stream.chunks(chunk.max(1)) {
            rx.extend_from_slice(piece);
            loop {
                match s.handle_input(&cfg, &mut rx, &mut out, &mut parts)? {
                    Input::NeedMore { consumed, need } => {
                        rx.drain(..consumed);
                        assert!(need > rx.len(), "need {need} must exceed held {}", rx.len());
                        break;
                    }
                    Input::Ready { consumed } => {
                        events.push(format!("ready {}", String::from_utf8_lossy(s.identity())));
                        rx.drain(..consumed);
                    }
                    Input::Message { consumed } => {
                        let m = Message::new(&rx, &parts);
                        let frames: Vec<String> =
                            (0..m.len()).map(|i| String::from_utf8_lossy(m.frame(i)).into_owned()).collect();
                        events.push(format!("msg {}", frames.join("|")));
                        rx.drain(..consumed);
                    }
                }
            }
        }
        Ok((events, out))
    }

    fn stream_with(extra: &[u8]) -> Vec<u8> {
        let mut s = client_greeting().to_vec();
        s.extend_from_slice(DEALER_READY_AGENT1);
        s.extend_from_slice(extra);
        s
    }

    #[test]
    fn handshake_then_messages_with_a_ping_between_frames() {
        // [ "", "VIP1" ] with a PING (ctx "hi") between the two frames, then a 300-byte frame.
        let mut extra = vec![0x01, 0x00];
        extra.extend_from_slice(b"\x04\x09\x04PING\x00\x00hi");
        extra.extend_from_slice(b"\x00\x04VIP1");
        extra.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 0, 1, 0x2c]);
        extra.extend_from_slice(&[b'z'; 300]);
        let stream = stream_with(&extra);
        let (events, out) = drive(&stream, usize::MAX).unwrap();
        assert_eq!(events[0], "ready agent1");
        assert_eq!(events[1], "msg |VIP1");
        assert_eq!(events[2], format!("msg {}", "z".repeat(300)));
        // greeting, READY(ROUTER, rid), PONG "hi" — once.
        let mut expect = greeting::emit(Mechanism::Null, true).to_vec();
        command::emit_ready(b"ROUTER", b"rid", &mut expect);
        command::emit_pong(b"hi", &mut expect);
        assert_eq!(out, expect);
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let mut extra = Vec::new();
        for i in 0..20u8 {
            extra.extend_from_slice(&[0x01, 1, i, 0x04, 0x07, 0x04, b'P', b'I', b'N', b'G', 0, 0, 0x00, 0]);
        }
        let stream = stream_with(&extra);
        let whole = drive(&stream, usize::MAX).unwrap();
        for chunk in [1, 2, 3, 7, 64, 65, 100] {
            assert_eq!(drive(&stream, chunk).unwrap(), whole, "chunk {chunk}");
        }
        assert_eq!(whole.0.len(), 21);
    }

    #[test]
    fn every_prefix_is_need_more() {
        let stream = stream_with(b"\x01\x00\x00\x04VIP1");
        for n in 0..stream.len() {
            let r = drive(&stream[..n], usize::MAX);
            assert!(r.is_ok(), "prefix {n}: {r:?}");
        }
    }

    #[test]
    fn hostile_sizes_are_refused_at_the_header() {
        let huge = stream_with(&[0x02, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(drive(&huge, usize::MAX), Err(DecodeError::FrameTooLarge { .. })));
        let top = stream_with(&[0x02, 0x80, 0, 0, 0, 0, 0, 0, 1]);
        assert!(matches!(drive(&top, usize::MAX), Err(DecodeError::FrameTooLarge { .. })));
        // message limit: two frames of 9 MiB each (each under the 16 MiB frame limit)
        let mut two = Vec::new();
        two.extend_from_slice(&[0x03, 0, 0, 0, 0, 0, 0x90, 0, 0]);
        let mut s = stream_with(&two);
        s.extend_from_slice(&vec![0u8; 0x90_0000]);
        s.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 0x90, 0, 0]);
        assert_eq!(drive(&s, usize::MAX), Err(DecodeError::MessageTooLarge));
        // a big command after the handshake
        let cmd = stream_with(&[0x06, 0, 0, 0, 0, 0, 0, 0x20, 0]);
        assert!(matches!(drive(&cmd, usize::MAX), Err(DecodeError::FrameTooLarge { .. })));
    }

    /// Found by the `frame_stream` fuzz target: commands between the frames of a message are
    /// kept in the receive buffer until the message completes, so they must count against the
    /// message limit, or `need` grows forever (here: 2-byte empty commands after a MORE frame).
    #[test]
    fn commands_between_frames_count_against_the_message_limit() {
        let mut limits = Limits::COMPILED;
        limits.lower("max-msg-bytes", 256).unwrap();
        let held = |commands: usize| {
            let mut extra = vec![0x01, 0x00];
            for _ in 0..commands {
                extra.extend_from_slice(&[0x04, 0x00]);
            }
            extra.extend_from_slice(b"\x00\x04VIP1");
            drive_with(&stream_with(&extra), usize::MAX, &limits)
        };
        let (events, _) = held(126).unwrap();
        assert_eq!(events, vec!["ready agent1".to_string(), "msg |VIP1".to_string()], "252 + 4 bytes fit");
        assert_eq!(held(127), Err(DecodeError::MessageTooLarge), "254 + 4 bytes do not");
        let mut extra = vec![0x01, 0x00];
        for _ in 0..5000 {
            extra.extend_from_slice(&[0x04, 0x00]);
        }
        for chunk in [1, 7, usize::MAX] {
            assert_eq!(drive_with(&stream_with(&extra), chunk, &limits), Err(DecodeError::MessageTooLarge));
        }
        // Between messages, commands are consumed at once and cost nothing.
        let mut extra = Vec::new();
        for _ in 0..5000 {
            extra.extend_from_slice(&[0x04, 0x00]);
        }
        extra.extend_from_slice(b"\x00\x04VIP1");
        assert_eq!(drive_with(&stream_with(&extra), 64, &limits).unwrap().0.len(), 2);
    }

    #[test]
    fn too_many_parts() {
        let mut extra = Vec::new();
        for _ in 0..65 {
            extra.extend_from_slice(&[0x01, 0x00]);
        }
        assert_eq!(drive(&stream_with(&extra), usize::MAX), Err(DecodeError::TooManyParts));
    }

    #[test]
    fn handshake_failures() {
        let mut s = client_greeting().to_vec();
        s.extend_from_slice(b"\x00\x01x");
        assert_eq!(drive(&s, usize::MAX), Err(DecodeError::UnexpectedCommand), "data before READY");
        let mut s = client_greeting().to_vec();
        s.extend_from_slice(b"\x04\x0a\x05ERROR\x03400");
        assert_eq!(drive(&s, usize::MAX), Err(DecodeError::PeerError));
        let mut s = client_greeting().to_vec();
        s.extend_from_slice(b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03PUB");
        assert_eq!(drive(&s, usize::MAX), Err(DecodeError::IncompatibleSocketType));
        let mut s = client_greeting().to_vec();
        s.extend_from_slice(b"\x04\x0a\x05READY\x0bSock");
        assert_eq!(drive(&s, usize::MAX), Err(DecodeError::TruncatedProperty));
        let mut g = client_greeting();
        g[12..17].copy_from_slice(b"CURVE");
        assert_eq!(drive(&g, usize::MAX), Err(DecodeError::MechanismMismatch));
    }

    #[test]
    fn req_delimiter_is_stripped_and_restored() {
        let mut s = client_greeting().to_vec();
        s.extend_from_slice(b"\x04\x26\x05READY\x0bSocket-Type\x00\x00\x00\x03REQ\x08Identity\x00\x00\x00\x00");
        s.extend_from_slice(&[0x01, 0x00, 0x00, 0x04, b'r', b'e', b'q', b'1']);
        let (events, _) = drive(&s, usize::MAX).unwrap();
        assert_eq!(events, vec!["ready ".to_string(), "msg req1".to_string()]);
    }
}
