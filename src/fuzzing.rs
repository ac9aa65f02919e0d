//! Fuzz harnesses (DESIGN.md §2.7 "fuzz" row, §2.9 item 8).
//!
//! Each `fuzz_*` function takes arbitrary bytes and must never panic: a panic is the bug the
//! fuzzer reports. Invariants whose failure would be a real bug are checked with `assert!`.
//! The cargo-fuzz targets in `tests/fuzz/fuzz_targets/` are one-line calls into these
//! functions, and `tests/fuzz_replay.rs` runs every committed corpus file through them on the
//! stable toolchain, so `cargo test` covers the corpus without libFuzzer.
//!
//! This module is test support, not API: it is hidden from the docs and may change at will.
//! It allocates freely; the code under test must not.

use crate::limits::{Limits, MAX_COMMAND_BYTES, MAX_HANDSHAKE_FRAME_BYTES, MAX_IDENTITY_BYTES};
use crate::vip::SIGNATURE;
use crate::vip::envelope::Envelope;
use crate::vip::peers::{AttachError, PeerId};
use crate::vip::platform::PlatformInfo;
use crate::vip::router::{CONTROL, Full, OnFull, Outcome, Router, Sink};
use crate::zmtp::command::{self, Command};
use crate::zmtp::frame::FrameHeader;
use crate::zmtp::greeting::{self, GREETING_LEN};
use crate::zmtp::mechanism::Mechanism;
use crate::zmtp::session::{Input, Session, SessionConfig};
use crate::zmtp::{DecodeError, Message, Part, Parts, metadata};

// ---------------------------------------------------------------------------------------------
// greeting

/// `zmtp::greeting::parse` on every prefix of `data`, against a model of the four checks.
///
/// Invariants: `Ok(Some)` only once 64 bytes are present, and then the same value for every
/// longer prefix; an error is the one of the earliest offending byte and stays the same as
/// more bytes arrive; the parsed fields are the bytes at their offsets.
pub fn fuzz_greeting(data: &[u8]) {
    // Nothing past byte 64 is ever looked at; a few more prefixes show that.
    let data = data.get(..GREETING_LEN + 8).unwrap_or(data);
    let mut seen: Option<Result<Option<greeting::Greeting>, DecodeError>> = None;
    for n in 0..=data.len() {
        let prefix = data.get(..n).unwrap_or(data);
        let r = greeting::parse(prefix);
        assert_eq!(r, greeting_model(prefix), "prefix {n}");
        match (&seen, &r) {
            (Some(Err(e0)), _) => assert_eq!(r, Err(*e0), "errors are stable (prefix {n})"),
            (Some(Ok(Some(g0))), _) => assert_eq!(r, Ok(Some(*g0)), "a complete greeting stays (prefix {n})"),
            _ => {}
        }
        if let Ok(Some(g)) = r {
            assert!(n >= GREETING_LEN);
            assert!(g.major >= 3);
            if let Some(m) = Mechanism::from_wire(&g.mechanism) {
                assert_eq!(m.wire_name(), g.mechanism);
            }
        }
        if r.is_err() || matches!(r, Ok(Some(_))) {
            seen = Some(r);
        }
    }
    // What we send is what we accept.
    for m in [Mechanism::Null, Mechanism::Plain, Mechanism::Curve] {
        let ours = greeting::emit(m, data.first().is_some_and(|b| b & 1 == 1));
        let g = greeting::parse(&ours);
        assert!(matches!(g, Ok(Some(g)) if g.mechanism == m.wire_name() && (g.major, g.minor) == (3, 1)));
    }
}

/// The greeting checks, restated: the earliest offending byte decides.
fn greeting_model(p: &[u8]) -> Result<Option<greeting::Greeting>, DecodeError> {
    if p.first().is_some_and(|&b| b != 0xFF) {
        return Err(DecodeError::BadSignature);
    }
    if p.get(9).is_some_and(|&b| b & 1 == 0) {
        return Err(DecodeError::BadSignature);
    }
    if let Some(&major) = p.get(10)
        && major < 3
    {
        return Err(DecodeError::UnsupportedVersion { major });
    }
    if p.len() < GREETING_LEN {
        return Ok(None);
    }
    let mut mechanism = [0u8; 20];
    for (d, s) in mechanism.iter_mut().zip(p.iter().skip(12)) {
        *d = *s;
    }
    Ok(Some(greeting::Greeting {
        major: p.get(10).copied().unwrap_or(0),
        minor: p.get(11).copied().unwrap_or(0),
        mechanism,
    }))
}

// ---------------------------------------------------------------------------------------------
// frame stream (the session)

/// A libzmq 4.3 NULL client greeting (ZMTP.md §2.3; padding byte 8 = identity length + 1).
pub const LIBZMQ_NULL_GREETING: [u8; 64] = {
    let mut g = [0u8; 64];
    g[0] = 0xff;
    g[8] = 0x01;
    g[9] = 0x7f;
    g[10] = 3;
    g[11] = 1;
    g[12] = b'N';
    g[13] = b'U';
    g[14] = b'L';
    g[15] = b'L';
    g
};

/// READY of a libzmq DEALER with identity `agent1` (ZMTP.md §12.4).
pub const DEALER_READY_AGENT1: &[u8] =
    b"\x04\x2f\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x06agent1";
/// READY of a libzmq REQ without an identity.
pub const REQ_READY: &[u8] = b"\x04\x26\x05READY\x0bSocket-Type\x00\x00\x00\x03REQ\x08Identity\x00\x00\x00\x00";
/// READY of a ROUTER (VIP `via`) with identity `rtr`.
pub const ROUTER_READY_RTR: &[u8] =
    b"\x04\x2c\x05READY\x0bSocket-Type\x00\x00\x00\x06ROUTER\x08Identity\x00\x00\x00\x03rtr";
/// READY of a DEALER that sends no `Identity` property.
pub const DEALER_READY_NO_ID: &[u8] = b"\x04\x1c\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER";

/// Byte 0 of a `frame_stream` input: top bit set = the rest is the raw stream (no preamble).
pub const FRAME_STREAM_RAW: u8 = 0x80;

/// Hard cap on the simulated receive buffer for `limits`: the largest message the limits allow
/// with its frame headers, plus the largest handshake frame and a header of slack. The session
/// must never ask the server to hold more (`need`), whatever the peer sends.
fn rx_cap(limits: &Limits) -> usize {
    let msg = limits.max_msg_bytes as usize + limits.max_msg_parts * 9 + 9;
    let one = 9 + MAX_HANDSHAKE_FRAME_BYTES.max(MAX_COMMAND_BYTES) as usize;
    msg.max(one).max(GREETING_LEN) + 9
}

/// The limits a `frame_stream` input runs under (bits 0..2 of byte 0): tiny ones so limits are
/// reached with small inputs, and the "1 MiB" profile.
fn stream_limits(profile: u8) -> Limits {
    let (frame, msg, parts): (u64, u64, u64) = match profile & 7 {
        0 => (256, 256, 8),
        1 => (256, 1024, 8),
        2 => (1024, 256, 64),
        3 => (4096, 4096, 16),
        4 => (1 << 20, 1 << 20, 64),
        5 => (256, 1 << 20, 64),
        6 => (1 << 20, 1 << 20, 8),
        _ => (65_536, 65_536, 64),
    };
    let mut l = Limits::COMPILED;
    // Every value is within [floor, ceiling] (limits.rs), so lowering cannot fail.
    assert_eq!(l.lower("max-frame-bytes", frame), Ok(()));
    assert_eq!(l.lower("max-msg-bytes", msg), Ok(()));
    assert_eq!(l.lower("max-msg-parts", parts), Ok(()));
    l
}

/// How the stream is cut into reads: a deterministic sequence of chunk sizes.
#[derive(Clone, Copy, Debug)]
enum Chunks {
    /// One read with everything.
    Whole,
    /// Reads of this size.
    Fixed(usize),
    /// xorshift sizes in `1..=max`.
    Random { state: u32, max: usize },
}

impl Chunks {
    fn next(&mut self) -> usize {
        match self {
            Chunks::Whole => usize::MAX,
            Chunks::Fixed(n) => *n,
            Chunks::Random { state, max } => {
                *state ^= *state << 13;
                *state ^= *state >> 17;
                *state ^= *state << 5;
                1 + (*state as usize % *max)
            }
        }
    }
}

/// Everything observable from driving one session over a stream.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    /// `ready <socket type> <identity>` and each message's frames.
    events: Vec<Vec<Vec<u8>>>,
    /// Everything the session wrote (greeting, READY, PONGs).
    out: Vec<u8>,
    /// How it ended: an error, or the unconsumed bytes once the input ran out.
    end: Result<Vec<u8>, DecodeError>,
}

/// Where the first incomplete frame starts in `rx` and how many bytes `rx` must hold to
/// complete it (9 when even its header is partial). `from` is a frame boundary up to which
/// every frame is known to be complete (the walk is resumed there, so that reads of one byte
/// stay linear).
fn first_incomplete_frame(rx: &[u8], from: usize) -> (usize, usize) {
    let mut off = from;
    loop {
        let rest = rx.get(off..).unwrap_or(&[]);
        match FrameHeader::parse(rest) {
            Ok(Some(h)) => {
                let total = (h.header_len as u64).saturating_add(h.size);
                if (rest.len() as u64) < total {
                    return (off, off.saturating_add(usize::try_from(total).unwrap_or(usize::MAX)));
                }
                off += total as usize;
            }
            Ok(None) | Err(_) => return (off, off.saturating_add(9)),
        }
    }
}

/// Drive a session over `stream` the way `server::event_loop` does: the unconsumed bytes are
/// handed in, `consumed` is dropped, the buffer grows to `need` (never past a fixed cap), and
/// each read takes at most what the buffer has room for.
fn drive_session(stream: &[u8], limits: &Limits, mut chunks: Chunks) -> Run {
    let cfg = SessionConfig { mechanism: Mechanism::Null, identity: b"fuzz-router-id", limits, curve: None };
    let cap = rx_cap(limits);
    let msg_held_cap = limits.max_msg_bytes as usize + limits.max_msg_parts * 9;
    let mut out = Vec::new();
    let mut s = Session::new(Mechanism::Null, &mut out);
    assert_eq!(out, greeting::emit(Mechanism::Null, true), "our greeting goes out at once");
    let mut rx: Vec<u8> = Vec::new();
    let mut room = 64usize;
    let mut pos = 0usize;
    let mut parts = Parts::new();
    let mut events: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut ready = false;
    // Offset in `rx` of the first frame not known to be complete (once greeted).
    let mut walk = 0usize;
    loop {
        // Process everything at hand.
        loop {
            let held = rx.len();
            let r = s.handle_input(&cfg, &mut rx, &mut out, &mut parts, &mut rand_core::OsRng);
            match r {
                Err(e) => return Run { events, out, end: Err(e) },
                Ok(Input::NeedMore { consumed, need }) => {
                    assert!(consumed <= held, "consumed {consumed} > held {held}");
                    rx.drain(..consumed);
                    walk = walk.saturating_sub(consumed);
                    assert!(need > rx.len(), "need {need} must exceed held {}", rx.len());
                    assert!(need <= cap, "need {need} over the receive-buffer cap {cap}");
                    // The session answers the greeting with READY: more than 64 bytes out.
                    let greeted = out.len() > GREETING_LEN;
                    if !greeted {
                        assert_eq!(need, GREETING_LEN);
                    } else {
                        assert_eq!(s.is_traffic(), ready);
                        let (scan, want) = first_incomplete_frame(&rx, walk);
                        walk = scan;
                        assert!(need <= want, "need {need} beyond the next frame's end {want}");
                        if ready {
                            // Bytes held for the message being assembled (frames and any
                            // commands between them) stay within the message limits.
                            assert!(scan <= msg_held_cap, "{scan} bytes held for one message (cap {msg_held_cap})");
                        } else {
                            assert_eq!(scan, 0, "the handshake keeps nothing before READY");
                        }
                    }
                    room = room.max(need);
                    break;
                }
                Ok(Input::Verify { .. }) => panic!("the NULL mechanism has no verify step"),
                Ok(Input::Ready { consumed }) => {
                    assert!(!ready, "Ready twice");
                    assert!(consumed > 0 && consumed <= held, "consumed {consumed}, held {held}");
                    assert!(s.is_traffic());
                    assert!(s.identity().len() <= MAX_IDENTITY_BYTES);
                    ready = true;
                    let t = format!("{:?}", s.socket_type()).into_bytes();
                    events.push(vec![b"ready".to_vec(), t, s.identity().to_vec()]);
                    rx.drain(..consumed);
                    walk = 0;
                }
                Ok(Input::Message { consumed }) => {
                    assert!(ready, "a message before the handshake completed");
                    assert!(consumed > 0 && consumed <= held, "consumed {consumed}, held {held}");
                    assert!(parts.len() <= limits.max_msg_parts);
                    let mut last_end = 0usize;
                    let mut total = 0u64;
                    for p in parts.iter() {
                        let (start, len) = (p.start as usize, p.len as usize);
                        assert!(start >= last_end, "parts overlap or go backwards: {parts:?}");
                        assert!(start + len <= consumed, "part {p:?} outside the {consumed} consumed bytes");
                        assert!(len as u64 <= limits.max_frame_bytes);
                        last_end = start + len;
                        total += len as u64;
                    }
                    assert!(total <= limits.max_msg_bytes);
                    let m = Message::new(&rx, &parts);
                    assert_eq!(m.body_bytes() as u64, total);
                    let frames: Vec<Vec<u8>> = (0..m.len())
                        .map(|i| {
                            let f = m.get(i);
                            assert!(f.is_some(), "part {i} is not inside the buffer");
                            f.unwrap_or(&[]).to_vec()
                        })
                        .collect();
                    events.push(frames);
                    rx.drain(..consumed);
                    walk = walk.saturating_sub(consumed);
                }
            }
        }
        if pos >= stream.len() {
            return Run { events, out, end: Ok(rx) };
        }
        // Read: at most the chunk, at most the free room, at most what is left.
        let free = room - rx.len();
        let n = chunks.next().min(free).min(stream.len() - pos);
        assert!(n > 0, "no room to read into (room {room}, held {})", rx.len());
        rx.extend_from_slice(stream.get(pos..pos + n).unwrap_or(&[]));
        pos += n;
    }
}

/// Feed a ZMTP byte stream to a [`Session`] whole and in chunks; both must agree exactly.
///
/// Layout: byte 0 = `raw:1 preamble:2 chunk_mode:2 limits:3`, byte 1 = chunk parameter, then
/// the stream. Unless `raw`, the stream is prefixed with a libzmq NULL greeting and a READY
/// (DEALER `agent1`, REQ, ROUTER `rtr`, or DEALER without identity).
pub fn fuzz_frame_stream(data: &[u8]) {
    let (b0, b1) = (data.first().copied().unwrap_or(0), data.get(1).copied().unwrap_or(0));
    let body = data.get(2..).unwrap_or(&[]);
    let mut stream = Vec::with_capacity(body.len() + 128);
    if b0 & FRAME_STREAM_RAW == 0 {
        stream.extend_from_slice(&LIBZMQ_NULL_GREETING);
        stream.extend_from_slice(match (b0 >> 5) & 3 {
            0 => DEALER_READY_AGENT1,
            1 => REQ_READY,
            2 => ROUTER_READY_RTR,
            _ => DEALER_READY_NO_ID,
        });
    }
    stream.extend_from_slice(body);
    let limits = stream_limits(b0 & 7);
    let chunks = match (b0 >> 3) & 3 {
        0 => Chunks::Fixed(usize::from(b1) + 1),
        1 => Chunks::Fixed(1),
        2 => Chunks::Random { state: u32::from(b1) | 0x100, max: 16 },
        _ => Chunks::Random { state: u32::from(b1) | 0x100, max: 4096 },
    };
    let whole = drive_session(&stream, &limits, Chunks::Whole);
    let cut = drive_session(&stream, &limits, chunks);
    match (&whole.end, &cut.end) {
        (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
        _ => panic!("whole {:?} but in chunks {:?} ({chunks:?})", whole.end, cut.end),
    }
    assert_eq!(whole, cut, "chunks {chunks:?} differ from a single read");
}

// ---------------------------------------------------------------------------------------------
// commands and metadata

/// `Command::parse`, `parse_ping` and the metadata parsers on `data` (and on the command's
/// data), checked against each other and against the emitters.
pub fn fuzz_command_metadata(data: &[u8]) {
    match Command::parse(data) {
        Ok(c) => {
            let n = usize::from(data.first().copied().unwrap_or(0));
            assert!(n > 0 && c.name.len() == n);
            assert_eq!(1 + c.name.len() + c.data.len(), data.len());
            assert_eq!([c.name, c.data].concat(), data.get(1..).unwrap_or(&[]));
            check_metadata(c.data);
            if c.is(command::PING) {
                check_ping(c.data);
            }
        }
        Err(e) => {
            assert_eq!(e, DecodeError::MalformedCommand);
            let n = usize::from(data.first().copied().unwrap_or(0));
            assert!(data.is_empty() || n == 0 || n > data.len() - 1);
        }
    }
    check_ping(data);
    check_metadata(data);
}

fn check_ping(data: &[u8]) {
    match command::parse_ping(data) {
        Ok((ttl, ctx)) => {
            assert!(data.len() >= 2);
            assert_eq!(ttl.to_be_bytes(), [data[0], data[1]]);
            assert_eq!(ctx, &data[2..]);
            // The PONG we answer parses back to the (truncated) context.
            let mut out = Vec::new();
            command::emit_pong(ctx, &mut out);
            let h = FrameHeader::parse(&out);
            assert!(
                matches!(h, Ok(Some(h)) if h.command() && !h.more() && h.header_len + h.size as usize == out.len())
            );
            let c = Command::parse(out.get(2..).unwrap_or(&[]));
            let keep = ctx.len().min(crate::limits::MAX_PING_CONTEXT_BYTES);
            assert_eq!(c, Ok(Command { name: command::PONG, data: &ctx[..keep] }));
            out.clear();
            command::emit_ping(ttl, &mut out);
            let c = Command::parse(out.get(2..).unwrap_or(&[]));
            assert!(matches!(c, Ok(c) if c.is(command::PING) && command::parse_ping(c.data) == Ok((ttl, &[][..]))));
        }
        Err(e) => {
            assert_eq!(e, DecodeError::MalformedPing);
            assert!(data.len() < 2);
        }
    }
}

fn check_metadata(buf: &[u8]) {
    let items: Vec<_> = metadata::Properties::new(buf).collect();
    let errors = items.iter().filter(|i| i.is_err()).count();
    assert!(errors <= 1, "the iterator stops after its first error");
    if errors == 1 {
        assert_eq!(items.last(), Some(&Err(DecodeError::TruncatedProperty)));
    }
    let valid = errors == 0;
    assert_eq!(metadata::validate(buf).is_ok(), valid, "validate agrees with the iterator");
    // The iterator is fused once it is done or failed.
    let mut it = metadata::Properties::new(buf);
    for _ in it.by_ref() {}
    assert!(it.next().is_none());
    let pairs: Vec<(&[u8], &[u8])> = items.iter().filter_map(|i| i.ok()).collect();
    if valid {
        // A valid list re-encodes to the same bytes.
        let mut again = Vec::with_capacity(buf.len());
        let mut len = 0;
        for (n, v) in &pairs {
            metadata::emit(n, v, &mut again);
            len += metadata::encoded_len(n, v);
        }
        assert_eq!(again, buf);
        assert_eq!(len, buf.len());
    }
    // find = the first case-insensitive match, after validating the whole list.
    let mut names: Vec<Vec<u8>> = vec![b"Socket-Type".to_vec(), b"identity".to_vec(), b"X".to_vec()];
    for (n, _) in pairs.iter().take(4) {
        names.push(n.to_vec());
        names.push(n.to_ascii_uppercase());
    }
    for name in &names {
        let expect = if valid {
            Ok(pairs.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v))
        } else {
            Err(DecodeError::TruncatedProperty)
        };
        assert_eq!(metadata::find(buf, name), expect);
    }
}

// ---------------------------------------------------------------------------------------------
// VIP routing

/// Peer slots of the `vip_route` router (PeerId 4 is outside the table on purpose).
const ROUTE_CAPACITY: usize = 4;

/// Frame-length bytes at or above this are tokens (a name the router acts on), so the fuzzer
/// reaches the subsystems without guessing them.
const TOKEN_BASE: u8 = 0xF0;
const TOKENS: [&[u8]; 12] = [
    b"VIP1",
    b"hello",
    b"ping",
    b"peerlist",
    b"list",
    b"query",
    b"stats",
    b"agentstop",
    b"quit",
    b"error",
    b"external_rpc",
    CONTROL,
];

/// A cursor over the fuzz input: reads past the end give zeros / empty slices.
struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        b
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// One delivery attempt seen by the sink.
struct Attempt {
    to: PeerId,
    frames: Vec<Vec<u8>>,
    ok: bool,
}

/// A [`Sink`] that records every attempt and refuses deliveries to the peers in `full`.
struct RecordingSink {
    /// Bit `p` set: peer `p`'s queue is full.
    full: u8,
    /// Which peers are attached (deliveries to others are a router bug).
    attached: [bool; ROUTE_CAPACITY],
    attempts: Vec<Attempt>,
}

impl Sink for RecordingSink {
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        assert!(self.attached.get(to.index()).copied().unwrap_or(false), "delivery to {to:?}, which is not attached");
        assert!(frames.len() >= 5, "a VIP message has at least five frames: {frames:?}");
        assert_eq!(frames.get(1).copied(), Some(SIGNATURE), "frame 1 of every VIP message is VIP1");
        let ok = self.full & (1 << to.0) == 0;
        self.attempts.push(Attempt { to, frames: frames.iter().map(|f| f.to_vec()).collect(), ok });
        if ok { Ok(()) } else { Err(Full) }
    }
}

/// The harness's view of the peer table: the identity attached to each slot.
type Model = [Option<Vec<u8>>; ROUTE_CAPACITY];

fn check_table(router: &Router, model: &Model) {
    let t = &router.peers;
    assert_eq!(t.attached_len(), model.iter().filter(|m| m.is_some()).count());
    for (i, m) in model.iter().enumerate() {
        let p = PeerId(i as u16);
        match m {
            Some(id) => {
                assert!(t.is_attached(p));
                assert_eq!(t.identity(p), &id[..]);
                assert_eq!(t.lookup(id), Some(p), "lookup(identity(p)) == p");
            }
            None => {
                assert!(!t.is_attached(p));
                assert!(!t.is_registered(p));
            }
        }
    }
    let reg: Vec<PeerId> = t.registered().collect();
    assert_eq!(reg.len(), t.registered_len());
    for (i, p) in reg.iter().enumerate() {
        assert!(t.is_attached(*p) && t.is_registered(*p), "registered ⊆ attached");
        assert!(!reg.get(..i).unwrap_or(&[]).contains(p), "registered twice: {p:?}");
    }
}

fn attached_mask(model: &Model) -> [bool; ROUTE_CAPACITY] {
    let mut a = [false; ROUTE_CAPACITY];
    for (d, m) in a.iter_mut().zip(model) {
        *d = m.is_some();
    }
    a
}

fn is_notification(a: &Attempt, op: &[u8]) -> bool {
    a.frames.len() == 7
        && a.frames.first().is_some_and(|f| f.is_empty())
        && a.frames.get(4).is_some_and(|f| f == b"peerlist")
        && a.frames.get(5).is_some_and(|f| f == op)
}

/// Attach `identity` to `peer` and check the result against the model.
fn route_attach(router: &mut Router, model: &mut Model, peer: u8, identity: &[u8]) {
    let p = PeerId(u16::from(peer));
    let r = router.attach(p, identity);
    let slot = model.get(p.index());
    let holder = if identity.is_empty() { None } else { model.iter().position(|m| m.as_deref() == Some(identity)) };
    match (slot, holder) {
        (None | Some(Some(_)), _) => assert_eq!(r, Err(AttachError::Invalid), "peer {p:?}"),
        (Some(None), Some(h)) => assert_eq!(r, Err(AttachError::Duplicate(PeerId(h as u16)))),
        (Some(None), None) => {
            assert_eq!(r, Ok(()));
            let got = router.peers.identity(p).to_vec();
            if identity.is_empty() {
                assert!(got.len() == 5 && got.first() == Some(&0), "generated identity {got:?}");
            } else {
                assert_eq!(got, identity);
            }
            if let Some(m) = model.get_mut(p.index()) {
                *m = Some(got);
            }
        }
    }
    check_table(router, model);
}

fn route_detach(router: &mut Router, model: &mut Model, peer: u8, full: u8) {
    let p = PeerId(u16::from(peer));
    let me = router.peers.identity(p).to_vec();
    let mut sink = RecordingSink { full, attached: attached_mask(model), attempts: Vec::new() };
    if let Some(a) = sink.attached.get_mut(p.index()) {
        *a = false; // nothing may be sent to the peer that is leaving
    }
    router.detach(p, &mut sink);
    for a in &sink.attempts {
        assert!(is_notification(a, b"drop") && a.frames.get(6) == Some(&me), "detach sent {:?}", a.frames);
    }
    if let Some(m) = model.get_mut(p.index()) {
        *m = None;
    }
    check_table(router, model);
}

/// Route one message from `from` with the given full masks: Pause, retried while blocked,
/// then Again (the server's stall timeout).
fn route_message(
    router: &mut Router,
    model: &Model,
    from: PeerId,
    msg: Message<'_>,
    masks: [u8; 3],
    again_first: bool,
) {
    let me = router.peers.identity(from).to_vec();
    let env = Envelope::parse(msg).ok();
    let modes = if again_first { [OnFull::Again; 3] } else { [OnFull::Pause, OnFull::Pause, OnFull::Again] };
    for (mode, full) in modes.into_iter().zip(masks) {
        let mut sink = RecordingSink { full, attached: attached_mask(model), attempts: Vec::new() };
        let outcome = router.handle(from, msg, &mut sink, mode);
        // Forwarded messages carry the sender as frame 0 and USER_ID; router messages start
        // with an empty frame.
        for a in &sink.attempts {
            let f0 = a.frames.first().map(Vec::as_slice).unwrap_or(&[]);
            if !f0.is_empty() {
                assert_eq!(f0, &me[..], "frame 0 of a forwarded message is the sender");
                assert_eq!(a.frames.get(2), Some(&me), "USER_ID of a forwarded message is the sender");
            }
        }
        match outcome {
            Outcome::Blocked(p) => {
                assert!(sink.attempts.iter().any(|a| a.to == p && !a.ok), "Blocked({p:?}) without a full queue");
                for a in sink.attempts.iter().filter(|a| a.ok) {
                    assert!(is_notification(a, b"add"), "Blocked after a side effect: {:?}", a.frames);
                }
            }
            Outcome::Quit => {
                assert_eq!(me, CONTROL, "quit honoured from {me:?}");
                assert!(sink.attempts.iter().all(|a| is_notification(a, b"add")));
            }
            Outcome::Done => {}
        }
        if let Some(env) = &env {
            check_forward(router, &me, env, &sink, outcome, mode);
            if !(env.recipient.is_empty() && env.subsystem == b"agentstop") {
                assert!(router.peers.is_registered(from), "a valid message registers its sender");
            }
        }
        check_table(router, model);
        if !matches!(outcome, Outcome::Blocked(_)) {
            break;
        }
    }
}

/// VIP.md §4 step 5/7 for a message addressed to another peer.
fn check_forward(router: &Router, me: &[u8], env: &Envelope<'_>, sink: &RecordingSink, outcome: Outcome, mode: OnFull) {
    if env.recipient.is_empty() {
        return;
    }
    // Skip the `peerlist add` notifications of the sender's registration.
    let rest: Vec<&Attempt> = sink.attempts.iter().filter(|a| !is_notification(a, b"add")).collect();
    match router.peers.lookup(env.recipient) {
        Some(to) => {
            let mut expect: Vec<Vec<u8>> =
                vec![me.to_vec(), SIGNATURE.to_vec(), me.to_vec(), env.msg_id.to_vec(), env.subsystem.to_vec()];
            expect.extend(env.frames_from(5).map(<[u8]>::to_vec));
            let first = rest.first();
            assert!(first.is_some_and(|a| a.to == to && a.frames == expect), "forward to {to:?} not attempted first");
            let delivered = first.is_some_and(|a| a.ok);
            match (delivered, mode) {
                (true, _) => assert_eq!(outcome, Outcome::Done),
                (false, OnFull::Pause) => assert_eq!(outcome, Outcome::Blocked(to)),
                (false, OnFull::Again) => {
                    assert_eq!(outcome, Outcome::Done);
                    let e = rest.get(1);
                    assert!(
                        e.is_some_and(|a| a.frames.get(4).is_some_and(|f| f == b"error")
                            && a.frames.get(5).is_some_and(|f| f == b"11")),
                        "no error 11 after a full destination"
                    );
                }
            }
        }
        None => {
            let first = rest.first();
            assert!(
                first.is_some_and(
                    |a| a.frames.get(5).is_some_and(|f| f == b"113") && a.frames.get(2).is_some_and(|f| f == me)
                ),
                "no error 113 for an unknown recipient"
            );
        }
    }
}

/// Arbitrary messages from 2–4 peers into a 4-peer [`Router`] whose sink is sometimes full.
///
/// Layout: byte 0 = peer count and router seed; per peer a slot byte (`% 5`, slot 4 is outside
/// the table) and an identity (length byte `& 0x3f`, 0 = generated); then operations until the
/// input runs out. An operation byte `≥ 0xF0` detaches slot `& 3`, `0xE0..=0xEF` attaches it
/// again with a new identity, anything else is a message from the attached peer chosen by its
/// low 2 bits (bit 2: start with `OnFull::Again`), followed by three full-queue masks, a frame
/// count (`% 65`) and the frames (length byte + bytes; a length byte `0xF0..=0xFB` is one of
/// the `TOKENS`, `0xFC..=0xFF` the identity attached to slot `& 3`).
pub fn fuzz_vip_route(data: &[u8]) {
    let mut c = Cursor { data };
    let b0 = c.byte();
    let n_peers = 2 + usize::from(b0 % 3);
    // Small pubsub tables: a router is built per input.
    let limits = Limits { max_connections: ROUTE_CAPACITY, max_subscriptions: 64, max_subs_per_peer: 16, ..Limits::COMPILED };
    let mut router = Router::new(&limits, PlatformInfo::with_router_id(b"fuzz-router"), u32::from(b0) << 24);
    let mut model: Model = Default::default();
    for _ in 0..n_peers {
        let slot = c.byte() % 5;
        let len = usize::from(c.byte() & 0x3f);
        let id = c.take(len);
        route_attach(&mut router, &mut model, slot, id);
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut ops = 0;
    while !c.is_empty() && ops < 256 {
        ops += 1;
        let op = c.byte();
        if op >= 0xF0 {
            route_detach(&mut router, &mut model, op & 3, c.byte());
            continue;
        }
        if op >= 0xE0 {
            let len = usize::from(c.byte() & 0x3f);
            let id = c.take(len);
            route_attach(&mut router, &mut model, op & 3, id);
            continue;
        }
        let masks = [c.byte(), c.byte(), c.byte()];
        let n_frames = usize::from(c.byte()) % 65;
        buf.clear();
        let mut parts = Parts::new();
        for _ in 0..n_frames {
            let l = c.byte();
            let start = buf.len();
            if l >= TOKEN_BASE {
                let t = usize::from(l - TOKEN_BASE);
                match TOKENS.get(t) {
                    Some(tok) => buf.extend_from_slice(tok),
                    None => buf.extend_from_slice(router.peers.identity(PeerId(u16::from(l & 3)))),
                }
            } else {
                buf.extend_from_slice(c.take(usize::from(l)));
            }
            let part = Part { start: start as u32, len: (buf.len() - start) as u32 };
            assert!(parts.push(part).is_ok());
        }
        let attached: Vec<PeerId> =
            (0..ROUTE_CAPACITY as u16).map(PeerId).filter(|p| router.peers.is_attached(*p)).collect();
        let Some(&from) = attached.get(usize::from(op & 3) % attached.len().max(1)) else { continue };
        route_message(&mut router, &model, from, Message::new(&buf, &parts), masks, op & 4 != 0);
    }
    for p in 0..ROUTE_CAPACITY as u8 {
        route_detach(&mut router, &mut model, p, data.last().copied().unwrap_or(0));
    }
    assert_eq!(router.peers.attached_len(), 0);
    assert_eq!(router.peers.registered_len(), 0);
}
