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

use std::collections::VecDeque;
use std::sync::OnceLock;

use crate::auth::store::{AllowEntry, Field, Pattern};
use crate::auth::{
    AuthMode, AuthRequest, AuthStore, Authenticator, Decision, KeyError, KeyText, Location, UserId, decode_key,
    encode_key,
};
use crate::json::{self, DeliveryBody, JsonError, JsonErrorKind, JsonStr, Kind, Number, NumberKind, SliceWriter, Value};
use crate::limits::{
    Limits, MAX_BUS_BYTES, MAX_COMMAND_BYTES, MAX_HANDSHAKE_FRAME_BYTES, MAX_IDENTITY_BYTES, MAX_PREFIX_BYTES,
};
use crate::vip::SIGNATURE;
use crate::vip::envelope::Envelope;
use crate::vip::peers::{AttachError, PeerId};
use crate::vip::platform::PlatformInfo;
use crate::vip::pubsub::AUTH_IDENTITY;
use crate::vip::router::{CONTROL, Full, OnFull, Outcome, Router, Sink};
use crate::zmtp::command::{self, Command};
use crate::zmtp::frame::{FLAG_COMMAND, FrameHeader};
use crate::zmtp::greeting::{self, GREETING_LEN};
use crate::zmtp::mechanism::curve::{ClientStep, CookieKeys, CurveClient, CurveError, KeyPair, SecretKey};
use crate::zmtp::mechanism::{Credentials, Mechanism, plain};
use crate::zmtp::session::{CurveContext, Input, Session, SessionConfig};
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

/// The routing id our sessions announce in READY.
const ROUTER_ID: &[u8] = b"fuzz-router-id";

/// Hard cap on the simulated receive buffer: the largest message the limits allow with its
/// frame headers (and, under CURVE, the 33-byte MESSAGE wrapper of each frame), plus the
/// largest handshake frame and a header of slack. The session must never ask the server to
/// hold more (`need`), whatever the peer sends.
fn rx_cap(limits: &Limits, overhead: usize) -> usize {
    let msg = limits.max_msg_bytes as usize + overhead + limits.max_msg_parts * (9 + overhead) + 9;
    let one = 9 + MAX_HANDSHAKE_FRAME_BYTES.max(MAX_COMMAND_BYTES) as usize;
    msg.max(one).max(GREETING_LEN) + 9
}

/// Bytes held for the message being assembled (its complete frames and any commands between
/// them): the payload limit plus each frame's header (and CURVE wrapper).
fn msg_held_cap(limits: &Limits, overhead: usize) -> usize {
    // Under CURVE a command MESSAGE is checked like a data frame (+33) before its whole frame
    // is added to the held bytes: one header and wrapper of slack.
    let slack = if overhead > 0 { overhead + 9 } else { 0 };
    limits.max_msg_bytes as usize + limits.max_msg_parts * (9 + overhead) + slack
}

/// The limits a session input runs under (bits 0..2 of byte 0): tiny ones so limits are
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

    /// Bits 3..4 of byte 0 and byte 1 of a session input.
    fn from_input(b0: u8, b1: u8) -> Chunks {
        match (b0 >> 3) & 3 {
            0 => Chunks::Fixed(usize::from(b1) + 1),
            1 => Chunks::Fixed(1),
            2 => Chunks::Random { state: u32::from(b1) | 0x100, max: 16 },
            _ => Chunks::Random { state: u32::from(b1) | 0x100, max: 4096 },
        }
    }
}

/// Everything observable from driving one session over a stream.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    /// `ready <socket type> <identity>`, `verify <allow>` and each message's frames.
    events: Vec<Vec<Vec<u8>>>,
    /// Everything the session wrote (greeting, handshake replies, PONGs).
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

/// A deterministic RNG for the harnesses (splitmix64), so that two runs over the same input
/// make the same CURVE keys and nonces and can be compared byte for byte. It is marked
/// `CryptoRng` only because the CURVE code asks for one; it is not fit for real keys.
#[derive(Clone, Debug)]
struct FuzzRng(u64);

impl rand_core::RngCore for FuzzRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand_core::impls::fill_bytes_via_next(self, dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for FuzzRng {}

/// What the peer sends, produced on demand.
trait Feed {
    /// The next bytes, given everything the server has written so far; empty when the peer has
    /// nothing more to send (the run ends).
    fn more(&mut self, server_out: &[u8]) -> Vec<u8>;
}

/// A fixed stream, handed over at the first request.
struct FixedFeed<'a>(Option<&'a [u8]>);

impl Feed for FixedFeed<'_> {
    fn more(&mut self, _server_out: &[u8]) -> Vec<u8> {
        self.0.take().map(<[u8]>::to_vec).unwrap_or_default()
    }
}

/// The server end of a simulated connection.
struct Endpoint<'a> {
    mechanism: Mechanism,
    limits: &'a Limits,
    /// Seed of the server's RNG (CURVE cookie key, transient keys, nonces): every run starts
    /// from it, so runs over the same bytes are comparable.
    seed: u64,
}

/// The authorisation hook: called on [`Input::Verify`] with the session, returns the decision.
type Verify<'v> = &'v mut dyn FnMut(&Session) -> bool;

/// Drive a session the way `server::event_loop` does: the unconsumed bytes are handed in,
/// `consumed` is dropped, the buffer grows to `need` (never past a fixed cap), each read takes
/// at most what the buffer has room for, and [`Session::authorize`] follows every
/// [`Input::Verify`] with the hook's decision.
fn drive_session(ep: &Endpoint<'_>, feed: &mut dyn Feed, mut chunks: Chunks, verify: Verify<'_>) -> Run {
    let limits = ep.limits;
    let mut rng = FuzzRng(ep.seed);
    let curve = (ep.mechanism == Mechanism::Curve)
        .then(|| CurveContext { keys: curve_server_keys().clone(), cookies: CookieKeys::new(&mut rng) });
    let cfg = SessionConfig { mechanism: ep.mechanism, identity: ROUTER_ID, limits, curve: curve.as_ref() };
    let overhead = if ep.mechanism == Mechanism::Curve { 33 } else { 0 };
    let cap = rx_cap(limits, overhead);
    let held_cap = msg_held_cap(limits, overhead);
    let mut out = Vec::new();
    let mut s = Session::new(ep.mechanism, &mut out);
    assert_eq!(out, greeting::emit(ep.mechanism, true), "our greeting goes out at once");
    let mut input: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    let mut rx: Vec<u8> = Vec::new();
    let mut room = 64usize;
    let mut parts = Parts::new();
    let mut events: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut ready = false;
    let mut verified = false;
    // Bytes consumed so far: the greeting has been read once this reaches 64.
    let mut total_consumed = 0usize;
    // Offset in `rx` of the first frame not known to be complete (once greeted).
    let mut walk = 0usize;
    loop {
        // Process everything at hand.
        loop {
            let held = rx.len();
            let r = s.handle_input(&cfg, &mut rx, &mut out, &mut parts, &mut rng);
            match r {
                Err(e) => return Run { events, out, end: Err(e) },
                Ok(Input::NeedMore { consumed, need }) => {
                    assert!(consumed <= held, "consumed {consumed} > held {held}");
                    rx.drain(..consumed);
                    total_consumed += consumed;
                    walk = walk.saturating_sub(consumed);
                    assert!(need > rx.len(), "need {need} must exceed held {}", rx.len());
                    assert!(need <= cap, "need {need} over the receive-buffer cap {cap}");
                    if total_consumed < GREETING_LEN {
                        assert_eq!((total_consumed, need), (0, GREETING_LEN), "before the greeting");
                    } else {
                        assert_eq!(s.is_traffic(), ready);
                        let (scan, want) = first_incomplete_frame(&rx, walk);
                        walk = scan;
                        assert!(need <= want, "need {need} beyond the next frame's end {want}");
                        if ready {
                            // Bytes held for the message being assembled (frames and any
                            // commands between them) stay within the message limits.
                            assert!(scan <= held_cap, "{scan} bytes held for one message (cap {held_cap})");
                        } else {
                            assert_eq!(scan, 0, "the handshake keeps nothing before READY");
                        }
                    }
                    room = room.max(need);
                    break;
                }
                Ok(Input::Verify { consumed }) => {
                    assert_ne!(ep.mechanism, Mechanism::Null, "the NULL mechanism has no verify step");
                    assert!(!ready && !verified, "Verify twice or after Ready");
                    assert!(consumed > 0 && consumed <= held, "consumed {consumed}, held {held}");
                    rx.drain(..consumed);
                    total_consumed += consumed;
                    walk = 0;
                    verified = true;
                    let allow = verify(&s);
                    events.push(vec![b"verify".to_vec(), vec![u8::from(allow)]]);
                    let before = out.len();
                    let r = s.authorize(&cfg, allow, &mut out);
                    if allow {
                        assert_eq!(r, Ok(()), "an allowed peer is answered");
                    } else {
                        assert_eq!(r, Err(DecodeError::AuthDenied));
                        let mut error = Vec::new();
                        command::emit_error(b"400", &mut error);
                        assert_eq!(out.get(before..), Some(&error[..]), "a refusal is ERROR 400");
                    }
                    // A second decision is refused and writes nothing.
                    let mut scratch = Vec::new();
                    assert_eq!(s.authorize(&cfg, true, &mut scratch), Err(DecodeError::UnexpectedCommand));
                    assert!(scratch.is_empty());
                    if let Err(e) = r {
                        return Run { events, out, end: Err(e) };
                    }
                }
                Ok(Input::Ready { consumed }) => {
                    assert!(!ready, "Ready twice");
                    assert!(consumed <= held, "consumed {consumed}, held {held}");
                    // CURVE reports Ready on the call after `authorize`, having consumed the
                    // INITIATE already; NULL and PLAIN report it on their last command.
                    assert!(consumed > 0 || ep.mechanism == Mechanism::Curve, "Ready consumed nothing");
                    assert_eq!(verified, ep.mechanism != Mechanism::Null, "Ready without the verify step");
                    assert!(s.is_traffic());
                    assert!(s.identity().len() <= MAX_IDENTITY_BYTES);
                    ready = true;
                    let t = format!("{:?}", s.socket_type()).into_bytes();
                    events.push(vec![b"ready".to_vec(), t, s.identity().to_vec()]);
                    rx.drain(..consumed);
                    total_consumed += consumed;
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
                    total_consumed += consumed;
                    walk = walk.saturating_sub(consumed);
                }
            }
        }
        if pos >= input.len() {
            input = feed.more(&out);
            pos = 0;
            if input.is_empty() {
                return Run { events, out, end: Ok(rx) };
            }
        }
        // Read: at most the chunk, at most the free room, at most what is left.
        let free = room - rx.len();
        let n = chunks.next().min(free).min(input.len() - pos);
        assert!(n > 0, "no room to read into (room {room}, held {})", rx.len());
        rx.extend_from_slice(input.get(pos..pos + n).unwrap_or(&[]));
        pos += n;
    }
}

/// Compare a run with a reference run of the same bytes.
fn same_run(whole: &Run, cut: &Run, chunks: Chunks) {
    match (&whole.end, &cut.end) {
        (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
        _ => panic!("whole {:?} but in chunks {:?} ({chunks:?})", whole.end, cut.end),
    }
    assert_eq!(whole, cut, "chunks {chunks:?} differ from a single read");
}

fn no_verify(_: &Session) -> bool {
    panic!("the NULL mechanism has no verify step")
}

/// Feed a ZMTP byte stream to a NULL [`Session`] whole and in chunks; both must agree exactly.
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
    let chunks = Chunks::from_input(b0, b1);
    let ep = Endpoint { mechanism: Mechanism::Null, limits: &limits, seed: 0 };
    let whole = drive_session(&ep, &mut FixedFeed(Some(&stream)), Chunks::Whole, &mut no_verify);
    let cut = drive_session(&ep, &mut FixedFeed(Some(&stream)), chunks, &mut no_verify);
    same_run(&whole, &cut, chunks);
}

// ---------------------------------------------------------------------------------------------
// the authorisation decision the CURVE and PLAIN sessions are put through

/// The server's long-term CURVE keys (fixed; computing a public key costs a scalar product,
/// so the pairs are made once).
fn curve_server_keys() -> &'static KeyPair {
    static KEYS: OnceLock<KeyPair> = OnceLock::new();
    KEYS.get_or_init(|| KeyPair::from_secret(SecretKey::from_bytes([0x5e; 32])))
}

/// Client key pairs: 0 is admitted everywhere, 1 only from 10.0.0.1 (the harness connects
/// from 127.0.0.1), 2 and 3 are unknown.
fn curve_client_keys(i: u8) -> &'static KeyPair {
    static KEYS: OnceLock<[KeyPair; 4]> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        [0xc0u8, 0xc1, 0xc2, 0xc3].map(|b| KeyPair::from_secret(SecretKey::from_bytes([b; 32])))
    });
    &keys[usize::from(i & 3)]
}

/// The `auth.json` the session harnesses decide with (see [`curve_client_keys`]).
fn session_auth_json() -> String {
    let k0 = KeyText::new(&curve_client_keys(0).public.0);
    let k1 = KeyText::new(&curve_client_keys(1).public.0);
    format!(
        r#"{{"allow": [
  {{"credentials": "{k0}", "user_id": "agent.a", "identity": "agent1"}},
  {{"credentials": "{k1}", "user_id": "remote", "address": "10.0.0.1"}},
  {{"mechanism": "PLAIN", "credentials": "admin:secret", "user_id": "plain"}},
  {{"mechanism": "PLAIN", "credentials": "/guest:.*/", "user_id": "guest"}},
  {{"mechanism": "NULL", "address": "/localhost:.*/"}}
], "version": {{"major": 1, "minor": 4}}}}"#
    )
}

/// An authenticator over [`session_auth_json`] (built once: the store is only read).
fn session_authenticator() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let store = AuthStore::parse(session_auth_json().as_bytes(), &mut FuzzRng(1));
        assert!(store.as_ref().is_ok_and(|s| s.len() == 5), "the harness auth.json loads: {store:?}");
        Authenticator::new(store.unwrap_or_default(), AuthMode::Enforced)
    })
}

fn auth_request<'a>(
    domain: &'a [u8],
    address: &'a str,
    mechanism: Mechanism,
    credentials: Credentials<'a>,
) -> AuthRequest<'a> {
    AuthRequest { domain, address, mechanism, credentials }
}

/// The decision the server makes on Verify (VIP.md §9.6), for a TCP peer at 127.0.0.1.
fn session_decide(s: &Session) -> bool {
    let auth = session_authenticator();
    let req = auth_request(b"vip", "127.0.0.1", s.mechanism(), s.credentials());
    match auth.decide(&req) {
        Decision::Allow { entry, user_id } => {
            let e = entry.and_then(|e| auth.entry(e));
            assert!(e.is_some_and(|e| e.mechanism() == s.mechanism()), "allowed by an entry of the mechanism");
            assert!(!user_id.to_string().is_empty());
            true
        }
        Decision::Deny(_) => false,
    }
}

// ---------------------------------------------------------------------------------------------
// CURVE sessions

/// Byte 0 of a `session_curve` input: top bit set = the rest follows a CURVE greeting as is.
pub const SESSION_CURVE_RAW: u8 = 0x80;

/// INITIATE metadata a client may send (index = byte 3 of a `session_curve` input `% 8`).
fn client_metadata(choice: u8, extra: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut m = Vec::new();
    let identity: Option<&[u8]> = match choice & 7 {
        0 => {
            command::socket_metadata(b"DEALER", b"agent1", &mut m);
            Some(b"agent1")
        }
        1 => {
            command::socket_metadata(b"REQ", b"", &mut m);
            Some(b"")
        }
        2 => {
            command::socket_metadata(b"ROUTER", b"rtr", &mut m);
            Some(b"rtr")
        }
        3 => {
            metadata::emit(b"Socket-Type", b"DEALER", &mut m);
            Some(b"")
        }
        4 => {
            command::socket_metadata(b"PUB", b"x", &mut m);
            None
        }
        5 => {
            command::socket_metadata(b"DEALER", &[b'i'; 256], &mut m);
            None
        }
        6 => {
            m.extend_from_slice(b"\x0bSocket-Type\x00\x00\x00\x09DEAL");
            None
        }
        _ => {
            m.extend_from_slice(extra);
            None
        }
    };
    (m, identity.map(<[u8]>::to_vec))
}

/// Where a `session_curve` client corrupts its own output (byte 4 `% 4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tamper {
    None,
    Hello,
    Initiate,
    /// The n-th traffic frame (byte 4 `>> 2`).
    Traffic(u8),
}

/// A real [`CurveClient`] talking to the session: it reads the server's WELCOME and READY
/// from the session's output, answers them, then sends traffic chosen by the input. Every
/// byte it sends is kept in `transcript` so that the same stream can be replayed.
struct CurvePeer<'a> {
    client: CurveClient,
    rng: FuzzRng,
    metadata: Vec<u8>,
    tamper: Tamper,
    tamper_at: usize,
    tamper_xor: u8,
    /// Traffic operations (see [`fuzz_session_curve`]).
    ctl: Cursor<'a>,
    stage: PeerStage,
    /// Offset of the next unread frame in the server's output.
    seen: usize,
    transcript: Vec<u8>,
    /// Traffic frames sent so far (for `Tamper::Traffic` and replays).
    sent_frames: u8,
    last_frame: Vec<u8>,
    /// PONG payloads still expected, in order.
    pongs: VecDeque<Vec<u8>>,
    /// Complete messages sent, and the frames of the one being sent.
    messages: Vec<Vec<Vec<u8>>>,
    partial: Vec<Vec<u8>>,
    /// Nothing was sent that the session may legitimately choke on or hold back.
    clean: bool,
    /// Bytes sent after the client stopped making sense of the server (once).
    junk_sent: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerStage {
    Start,
    Welcome,
    Ready,
    Traffic,
    Done,
}

impl CurvePeer<'_> {
    fn corrupt(&mut self, what: Tamper, bytes: &mut [u8]) {
        if self.tamper == what && !bytes.is_empty() {
            let i = self.tamper_at % bytes.len();
            if let Some(b) = bytes.get_mut(i) {
                *b ^= self.tamper_xor;
            }
            self.clean = false;
        }
    }

    /// One traffic operation from `ctl` (empty when there are none left).
    fn traffic(&mut self) -> Vec<u8> {
        let mut bytes = Vec::new();
        if self.ctl.is_empty() {
            return bytes;
        }
        let op = self.ctl.byte();
        let mut frame = Vec::new();
        let sealed = match op % 8 {
            // A data frame; bit 4 = MORE; length 0xFF = 300 bytes, to reach the tiny limits.
            0..=3 => {
                let more = op & 0x10 != 0;
                let len = self.ctl.byte();
                let payload = if len == 0xFF { vec![op; 300] } else { self.ctl.take(usize::from(len)).to_vec() };
                let r = self.client.seal_frame(if more { 1 } else { 0 }, &payload, &mut frame);
                self.partial.push(payload);
                if !more {
                    self.messages.push(core::mem::take(&mut self.partial));
                }
                r
            }
            // PING with a context: the server answers with a sealed PONG.
            4 => {
                let len = usize::from(self.ctl.byte() % 24);
                let ctx = self.ctl.take(len).to_vec();
                let mut ping = b"\x04PING\x00\x0a".to_vec();
                ping.extend_from_slice(&ctx);
                let mut pong = b"\x04PONG".to_vec();
                pong.extend_from_slice(ctx.get(..crate::limits::MAX_PING_CONTEXT_BYTES).unwrap_or(&ctx));
                self.pongs.push_back(pong);
                self.client.seal_frame(2, &ping, &mut frame)
            }
            // Another command inside a MESSAGE (never a PING): ignored.
            5 => {
                let body: Vec<u8> = match self.ctl.byte() % 4 {
                    0 => b"\x04PONGxy".to_vec(),
                    1 => b"\x09SUBSCRIBEtopic".to_vec(),
                    2 => Vec::new(),
                    _ => b"\x20short".to_vec(),
                };
                self.client.seal_frame(2, &body, &mut frame)
            }
            // The previous frame again: its nonce does not increase.
            6 => {
                frame = self.last_frame.clone();
                self.clean = false;
                Ok(())
            }
            // Unencrypted bytes.
            _ => {
                let len = usize::from(self.ctl.byte());
                frame = self.ctl.take(len).to_vec();
                self.clean = false;
                Ok(())
            }
        };
        if sealed.is_err() {
            self.clean = false;
            return bytes;
        }
        if matches!(op % 8, 0..=5) {
            self.corrupt(Tamper::Traffic(self.sent_frames), &mut frame);
            self.sent_frames = self.sent_frames.wrapping_add(1);
            self.last_frame.clone_from(&frame);
        }
        bytes.extend_from_slice(&frame);
        bytes
    }

    /// Read the server's frames that arrived since the last call.
    fn read_server(&mut self, server_out: &[u8], bytes: &mut Vec<u8>) {
        loop {
            let rest = server_out.get(self.seen..).unwrap_or(&[]);
            let Ok(Some(h)) = FrameHeader::parse(rest) else { return };
            let total = h.header_len + h.size as usize;
            let Some(body) = rest.get(h.header_len..total) else { return };
            self.seen += total;
            let mut body = body.to_vec();
            match self.stage {
                PeerStage::Welcome | PeerStage::Ready => {
                    assert!(h.command(), "the server's handshake frames are commands");
                    let step = self.client.handle_command(&mut body, &self.metadata, bytes, &mut self.rng);
                    match (self.stage, step) {
                        (PeerStage::Welcome, Ok(ClientStep::InitiateSent)) => {
                            let mut initiate = core::mem::take(bytes);
                            self.corrupt(Tamper::Initiate, &mut initiate);
                            *bytes = initiate;
                            self.stage = PeerStage::Ready;
                        }
                        (PeerStage::Ready, Ok(ClientStep::Ready { metadata: m })) => {
                            let props = body.get(m).unwrap_or(&[]);
                            assert_eq!(metadata::find(props, b"Socket-Type"), Ok(Some(&b"ROUTER"[..])));
                            assert_eq!(metadata::find(props, b"Identity"), Ok(Some(ROUTER_ID)));
                            self.stage = PeerStage::Traffic;
                        }
                        (_, r) => {
                            // Only a corrupted handshake or a refusal (ERROR) gets here.
                            assert!(!self.clean || r == Err(CurveError::ErrorReceived), "client: {r:?}");
                            self.stage = PeerStage::Done;
                        }
                    }
                }
                PeerStage::Traffic => {
                    assert!(!h.command(), "CURVE traffic is MESSAGE frames");
                    let opened = self.client.open_message(&mut body);
                    assert!(opened.is_ok(), "the server's MESSAGE does not open: {opened:?}");
                    let Ok((flags, range)) = opened else { return };
                    assert_eq!(flags, 2, "the server sends only PONG commands");
                    let payload = body.get(range).unwrap_or(&[]);
                    if self.clean {
                        assert_eq!(self.pongs.pop_front().as_deref(), Some(payload), "an unexpected PONG");
                    } else {
                        // A corrupted PING may have been dropped or taken for something else.
                        assert!(payload.starts_with(b"\x04PONG") && payload.len() <= 5 + 16, "not a PONG: {payload:?}");
                    }
                }
                PeerStage::Start | PeerStage::Done => {}
            }
        }
    }
}

impl Feed for CurvePeer<'_> {
    fn more(&mut self, server_out: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        if self.stage == PeerStage::Start {
            bytes.extend_from_slice(&greeting::emit(Mechanism::Curve, false));
            let mut hello = Vec::new();
            assert_eq!(self.client.start(&mut hello), Ok(()));
            self.corrupt(Tamper::Hello, &mut hello);
            bytes.extend_from_slice(&hello);
            self.seen = GREETING_LEN;
            self.stage = PeerStage::Welcome;
        } else {
            self.read_server(server_out, &mut bytes);
            if self.stage == PeerStage::Traffic && bytes.is_empty() {
                bytes = self.traffic();
            }
        }
        if bytes.is_empty() && !self.junk_sent {
            // Stuck (or done): whatever is left of the input goes out raw, once.
            self.junk_sent = true;
            bytes = self.ctl.take(usize::MAX).to_vec();
            if !bytes.is_empty() {
                self.clean = false;
            }
        }
        if bytes.is_empty() && self.clean && self.stage == PeerStage::Traffic {
            assert!(self.pongs.is_empty(), "PINGs left unanswered: {:?}", self.pongs);
        }
        self.transcript.extend_from_slice(&bytes);
        bytes
    }
}

/// A CURVE server [`Session`] against arbitrary bytes or a real [`CurveClient`]; `authorize`
/// follows every Verify with the decision of [`session_auth_json`]. The stream is replayed in
/// chunks and must give identical events, output and end.
///
/// Layout: byte 0 = `raw:1 client_key:2 chunk_mode:2 limits:3`, byte 1 = chunk parameter,
/// byte 2 = RNG seed (bit 7: the client has a wrong server key). Raw: the rest follows a
/// CURVE client greeting. Otherwise byte 3 = INITIATE metadata (`% 8`, see
/// [`client_metadata`]; 7 = the bytes up to the next 0xFF, which is skipped), byte 4 = tamper
/// (`% 4`: none, HELLO, INITIATE, traffic frame `>> 2`), byte 5 = tamper offset, byte 6 =
/// tamper xor (`| 1`), then traffic operations: `op % 8` 0–3 = data frame (bit 4 MORE,
/// length byte, 0xFF = 300 bytes), 4 = PING (context length `% 24`), 5 = another command,
/// 6 = the previous frame again, 7 = unencrypted bytes (length byte). Input left when the
/// client is stuck is sent raw.
pub fn fuzz_session_curve(data: &[u8]) {
    let mut c = Cursor { data };
    let (b0, b1, b2) = (c.byte(), c.byte(), c.byte());
    let limits = stream_limits(b0 & 7);
    let chunks = Chunks::from_input(b0, b1);
    let ep = Endpoint { mechanism: Mechanism::Curve, limits: &limits, seed: u64::from(b2) };
    let keys = curve_client_keys((b0 >> 5) & 3);
    if b0 & SESSION_CURVE_RAW != 0 {
        let mut stream = greeting::emit(Mechanism::Curve, false).to_vec();
        stream.extend_from_slice(c.data);
        let mut verify = |s: &Session| {
            assert!(matches!(s.credentials(), Credentials::Curve(_)));
            session_decide(s)
        };
        let whole = drive_session(&ep, &mut FixedFeed(Some(&stream)), Chunks::Whole, &mut verify);
        let cut = drive_session(&ep, &mut FixedFeed(Some(&stream)), chunks, &mut verify);
        same_run(&whole, &cut, chunks);
        return;
    }
    let (meta, tamper, at, xor) = (c.byte(), c.byte(), c.byte(), c.byte() | 1);
    let mut extra: &[u8] = &[];
    if meta % 8 == 7 {
        let n = c.data.iter().position(|&b| b == 0xFF).unwrap_or(c.data.len());
        extra = c.take(n);
        let _ = c.byte();
    }
    let (metadata, identity) = client_metadata(meta, extra);
    let server_key = if b2 & 0x80 == 0 { curve_server_keys().public } else { curve_client_keys(3).public };
    let mut rng = FuzzRng(u64::from(b2) << 8 | 0x77);
    let client = CurveClient::new(server_key, keys.clone(), &mut rng);
    assert!(client.is_ok(), "client keys are not weak");
    let Ok(client) = client else { return };
    let mut peer = CurvePeer {
        client,
        rng,
        metadata,
        tamper: match tamper % 4 {
            0 => Tamper::None,
            1 => Tamper::Hello,
            2 => Tamper::Initiate,
            _ => Tamper::Traffic(tamper >> 2),
        },
        tamper_at: usize::from(at),
        tamper_xor: xor,
        ctl: c,
        stage: PeerStage::Start,
        seen: 0,
        transcript: Vec::new(),
        sent_frames: 0,
        last_frame: Vec::new(),
        pongs: VecDeque::new(),
        messages: Vec::new(),
        partial: Vec::new(),
        clean: b2 & 0x80 == 0,
        junk_sent: false,
    };
    let mut verify = |s: &Session| {
        // Only a client that completed INITIATE gets here: the key is the one it vouched for.
        assert_eq!(s.credentials(), Credentials::Curve(&keys.public.0), "credentials of the vouched key");
        if let Some(id) = &identity {
            assert_eq!(s.identity(), &id[..]);
        }
        session_decide(s)
    };
    let live = drive_session(&ep, &mut peer, Chunks::Whole, &mut verify);
    let replay = drive_session(&ep, &mut FixedFeed(Some(&peer.transcript)), chunks, &mut verify);
    same_run(&live, &replay, chunks);
    // A clean exchange delivers exactly the messages the client sealed.
    let ready = live.events.iter().any(|e| e.first().is_some_and(|f| f == b"ready"));
    if peer.clean && ready && live.end.is_ok() && meta % 8 != 1 {
        let handshake = |e: &&Vec<Vec<u8>>| matches!(e.first().map(Vec::as_slice), Some(b"ready" | b"verify"));
        let got: Vec<&Vec<Vec<u8>>> = live.events.iter().filter(|e| !handshake(e)).collect();
        let want: Vec<&Vec<Vec<u8>>> = peer.messages.iter().collect();
        assert_eq!(got, want, "messages differ from what the client sealed");
    }
}

// ---------------------------------------------------------------------------------------------
// PLAIN sessions

/// Byte 0 of a `session_plain` input: top bit set = the rest follows a PLAIN greeting as is.
pub const SESSION_PLAIN_RAW: u8 = 0x80;

/// A PLAIN server [`Session`]: greeting, HELLO (user and password from the input), the
/// decision of [`session_auth_json`] on Verify, INITIATE, then arbitrary traffic; whole and in
/// chunks, both must agree exactly.
///
/// Layout: byte 0 = `raw:1 metadata:2 chunk_mode:2 limits:3`, byte 1 = chunk parameter. Raw:
/// the rest follows a PLAIN client greeting. Otherwise a user and a password (length byte +
/// bytes; a length byte `≥ 0xF0` is `admin`/`secret`/`guest`/`x` by its low 2 bits), then the
/// traffic bytes, sent after an INITIATE whose metadata is DEALER `agent1`, REQ, PUB (refused)
/// or a truncated list.
pub fn fuzz_session_plain(data: &[u8]) {
    let mut c = Cursor { data };
    let (b0, b1) = (c.byte(), c.byte());
    let limits = stream_limits(b0 & 7);
    let chunks = Chunks::from_input(b0, b1);
    let ep = Endpoint { mechanism: Mechanism::Plain, limits: &limits, seed: 0 };
    let mut stream = greeting::emit(Mechanism::Plain, false).to_vec();
    let mut expect: Option<(Vec<u8>, Vec<u8>)> = None;
    if b0 & SESSION_PLAIN_RAW == 0 {
        let mut field = || -> Vec<u8> {
            let l = c.byte();
            if l >= 0xF0 {
                [&b"admin"[..], b"secret", b"guest", b"x"][usize::from(l & 3)].to_vec()
            } else {
                c.take(usize::from(l)).to_vec()
            }
        };
        let (user, password) = (field(), field());
        let mut hello = vec![5];
        hello.extend_from_slice(plain::HELLO);
        hello.push(user.len() as u8);
        hello.extend_from_slice(&user);
        hello.push(password.len() as u8);
        hello.extend_from_slice(&password);
        FrameHeader::emit_frame(FLAG_COMMAND, &hello, &mut stream);
        let mut initiate = vec![8];
        initiate.extend_from_slice(plain::INITIATE);
        match (b0 >> 5) & 3 {
            0 => command::socket_metadata(b"DEALER", b"agent1", &mut initiate),
            1 => command::socket_metadata(b"REQ", b"", &mut initiate),
            2 => command::socket_metadata(b"PUB", b"p", &mut initiate),
            _ => initiate.extend_from_slice(b"\x0bSocket-Type\x00\x00"),
        }
        FrameHeader::emit_frame(FLAG_COMMAND, &initiate, &mut stream);
        expect = Some((user, password));
    }
    stream.extend_from_slice(c.data);
    let mut verify = |s: &Session| {
        let creds = s.credentials();
        assert!(matches!(creds, Credentials::Plain { .. }));
        if let Some((u, p)) = &expect {
            assert_eq!(creds, Credentials::Plain { user: u, password: p }, "credentials as sent");
        }
        session_decide(s)
    };
    let whole = drive_session(&ep, &mut FixedFeed(Some(&stream)), Chunks::Whole, &mut verify);
    let cut = drive_session(&ep, &mut FixedFeed(Some(&stream)), chunks, &mut verify);
    same_run(&whole, &cut, chunks);
    if let Some((u, p)) = &expect {
        // `admin:secret` and `/guest:.*/` are admitted (`.` is not a newline); everyone else
        // gets ERROR 400.
        let text = [&u[..], b":", &p[..]].concat();
        let utf8 = core::str::from_utf8(&text).ok();
        let admitted = text == b"admin:secret" || utf8.is_some_and(|t| t.starts_with("guest:") && !t.contains('\n'));
        let verdict = whole.events.iter().find(|e| e.first().is_some_and(|f| f == b"verify"));
        if let Some(v) = verdict {
            assert_eq!(v.get(1), Some(&vec![u8::from(admitted)]), "decision for {u:?}:{p:?}");
        }
    }
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
/// Small pubsub tables, so that the limits are reached.
const ROUTE_MAX_SUBSCRIPTIONS: usize = 64;
const ROUTE_MAX_SUBS_PER_PEER: usize = 16;

/// Frame-length bytes at or above this are tokens (a name or body the router acts on), so the
/// fuzzer reaches the subsystems and the pubsub operations without guessing them. A raw frame
/// is therefore at most `TOKEN_BASE - 1` bytes long.
const TOKEN_BASE: u8 = 0xC0;
/// `TOKEN_BASE + i` is `TOKENS[i]`; `0xFC..=0xFF` is the identity attached to slot `& 3`. The
/// last twelve (`0xF0..=0xFB`) are the tokens of the first corpus, at their old bytes.
const TOKENS: [&[u8]; 60] = [
    // 0xC0: pubsub names (VIP.md §7).
    b"pubsub",
    b"subscribe",
    b"unsubscribe",
    b"synchronize",
    b"publish",
    b"auth_update",
    b"protected_update",
    b"connected",
    // 0xC8
    b"platform.auth",
    b"request_response",
    b"external_publish",
    b"agent.a",
    // 0xCC: subscribe bodies (§7.3, E3.1).
    br#"{"prefix": "devices/campus", "bus": "", "all_platforms": false}"#,
    br#"{"prefix": ["devices", "secret", ""], "bus": "", "all_platforms": true}"#,
    br#"{"prefix": "se", "bus": "b\u00e9"}"#,
    br#"{"prefix": ["a", 1], "bus": ""}"#,
    // 0xD0: unsubscribe bodies (§7.4).
    br#"{"internal": {"prefix": ["devices/campus"], "bus": ""}}"#,
    br#"{"all": {"prefix": null, "bus": ""}, "internal": {"prefix": [], "bus": ""}}"#,
    br#"{"prefix": "devices/campus", "bus": ""}"#,
    br#"{"internal": {"prefix": "x"}}"#,
    // 0xD4: synchronize bodies (§7.5).
    br#"{"subscriptions": {"internal": {"": [""]}}}"#,
    br#"{"subscriptions": {"internal": {"": ["devices", "secret/"], "b\u00e9": ["x"]}, "all": {"": ["regex"]}}}"#,
    br#"{"subscriptions": {}}"#,
    br#"{"subscriptions": {"internal": {"": "devices"}}}"#,
    // 0xD8: publish topics and bodies (§7.6, E3.3).
    b"devices/campus/b1/all",
    b"secret/x",
    b"regexaz",
    br#"{"bus": "", "headers": {"h": 1, "min_compatible_version": "3.0", "max_compatible_version": ""}, "message": {"v": [1, 2.5, "\u00e9"]}}"#,
    // 0xDC
    br#"{"bus": "", "headers": {}, "message": ["\ud83d\ude00", "\u00e9\u0000\ud800", NaN, -Infinity, -0, 1e400, 1.5e-7, 12345678901234567890123], "extra": 1}"#,
    br#"{"bus": "b\u00e9", "headers": null, "message": {"a": {"b": [true, false, null]}, "a": 2}, "bus": "b\u00e9"}"#,
    br#"{"bus": "", "headers": {}}"#,
    b"b\xe9",
    // 0xE0: list bodies (§7.7).
    br#"{"prefix": "", "all_platforms": false, "subscribed": true, "reverse": false, "bus": ""}"#,
    br#"{"prefix": "devices/campus/b1", "bus": null, "subscribed": false, "reverse": true, "all_platforms": true}"#,
    br#"{"prefix": "", "bus": "b\u00e9", "subscribed": 0, "reverse": [], "all_platforms": "yes"}"#,
    b"{}",
    // 0xE4: auth_update and protected_update bodies (§7.8, §7.9).
    br#"{"capabilities": {"agent.a": {"can_publish": null}, "agent.b": ["edit_config_store"], "platform.auth": {}}}"#,
    br#"{"capabilities": {"agent.a": {}, "agent.b": {"can_publish": {"x": 1}}}}"#,
    br#"{"write-protect": [{"topic": "secret", "capabilities": ["can_publish"]}, {"topic": "/regex.*z/", "capabilities": "can_publish"}]}"#,
    br#"{"write-protect": [{"topic": "devices", "capabilities": ["edit_config_store", "can_publish"]}, {"topic": "/(/"}]}"#,
    // 0xE8: more names.
    b"agent.b",
    b"devices",
    br#"{"prefix": "", "bus": "b\u00e9", "all_platforms": true}"#,
    b"routing_table",
    // 0xEC
    b"external_list",
    b"all",
    b"internal",
    b"secret",
    // 0xF0: the tokens of the first corpus.
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

/// An identity length byte at or above this names one of these identities (low 2 bits).
const NAMED_IDENTITY: u8 = 0xC0;
const NAMED_IDENTITIES: [&[u8]; 4] = [AUTH_IDENTITY, b"agent.a", b"agent.b", CONTROL];

/// An identity from the input: a length byte (`& 0x3f`, 0 = generated) and the bytes, or a
/// byte `≥ NAMED_IDENTITY` for one of [`NAMED_IDENTITIES`].
fn route_identity<'a>(c: &mut Cursor<'a>) -> &'a [u8] {
    let l = c.byte();
    if l >= NAMED_IDENTITY {
        NAMED_IDENTITIES.get(usize::from(l & 3)).copied().unwrap_or_default()
    } else {
        c.take(usize::from(l & 0x3f))
    }
}

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
        if frames.first().is_some_and(|f| f.is_empty()) {
            check_router_message(frames);
        }
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
    // Subscribers are registered peers, within the index limits.
    let subs = router.pubsub.subscriptions();
    let mut per_peer = [0usize; ROUTE_CAPACITY];
    let mut n = 0;
    subs.for_each_entry(|p, bus, prefix, _all| {
        n += 1;
        assert!(t.is_registered(PeerId(p)), "peer {p} holds subscriptions but is not registered");
        assert!(bus.len() <= MAX_BUS_BYTES && prefix.len() <= MAX_PREFIX_BYTES);
        if let Some(c) = per_peer.get_mut(usize::from(p)) {
            *c += 1;
        }
    });
    assert_eq!(n, subs.len());
    assert!(n <= ROUTE_MAX_SUBSCRIPTIONS && per_peer.iter().all(|&c| c <= ROUTE_MAX_SUBS_PER_PEER), "{per_peer:?}");
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
            if env.recipient.is_empty() && env.subsystem == b"pubsub" {
                check_pubsub(router, from, &me, env, &sink, outcome);
            }
            if env.recipient.is_empty() && env.subsystem == b"query" && env.arg(0) == b"stats" {
                for a in sink.attempts.iter().filter(|a| a.frames.get(4).is_some_and(|f| f == b"query")) {
                    let v = a.frames.get(6).map(|b| json::parse(b));
                    assert!(matches!(v, Some(Ok(v)) if v.kind() == Kind::Object), "query stats is not a JSON object");
                }
            }
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

/// Checks on every message the router itself sends (frame 0 empty), whoever it goes to.
fn check_router_message(frames: &[&[u8]]) {
    let at = |i: usize| frames.get(i).copied().unwrap_or(&[]);
    match (at(4), at(5)) {
        (b"pubsub", b"publish") => {
            assert_eq!(frames.len(), 8, "a pubsub delivery has 8 frames");
            check_delivery_body(at(7));
        }
        (b"pubsub", b"request_response") => {
            assert_eq!(frames.len(), 7);
            assert!(matches!(at(6).len(), 1 | 4), "request_response result {:?}", at(6));
        }
        (b"pubsub", b"list_response") => {
            assert_eq!(frames.len(), 7);
            let body = at(6);
            assert!(body.iter().all(|b| (0x20..0x7f).contains(b)), "list_response is not printable ASCII");
            let v = json::parse(body);
            assert!(v.is_ok_and(|v| v.kind() == Kind::Array), "list_response is not a JSON array: {body:?}");
            for row in v.iter().flat_map(|v| v.items()) {
                let cells: Vec<Kind> = row.items().map(|c| c.kind()).collect();
                assert_eq!(cells, [Kind::String, Kind::String, Kind::Bool], "list row {:?}", row.raw());
            }
        }
        _ => {}
    }
}

/// A publish delivery body (VIP.md §7.6): printable ASCII JSON, exactly the four keys in order.
fn check_delivery_body(body: &[u8]) {
    assert!(body.iter().all(|b| (0x20..0x7f).contains(b)), "delivery body is not printable ASCII: {body:?}");
    let v = json::parse(body);
    assert!(v.is_ok_and(|v| v.kind() == Kind::Object), "delivery body does not parse back: {v:?}");
    let keys: Vec<&[u8]> = v.iter().flat_map(|v| v.members()).map(|(k, _)| k.raw()).collect();
    assert_eq!(keys, [&b"sender"[..], b"bus", b"headers", b"message"], "delivery body keys");
}

/// The delivery body a publish of `body` by `me` must produce, if any (VIP.md §7.6).
fn expected_delivery(me: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let v = json::parse(body).ok().filter(|v| v.kind() == Kind::Object)?;
    let d = DeliveryBody::from_publish(me, v)?;
    let mut out = Vec::with_capacity(d.emitted_len());
    assert!(d.emit(&mut out).is_ok());
    assert_eq!(out.len(), d.emitted_len(), "DeliveryBody::emitted_len is exact");
    // Independently: the sender is `me`, the rest are the publish body's values (last
    // duplicate wins) as they were.
    let back = json::parse(&out);
    assert!(back.is_ok());
    if let Ok(back) = back {
        assert!(back.get(b"sender").and_then(|s| s.as_str()).is_some_and(|s| s.eq_latin1(me)), "sender");
        for key in [&b"bus"[..], b"headers", b"message"] {
            let (a, b) = (v.get(key), back.get(key));
            assert!(a.zip(b).is_some_and(|(a, b)| same_json(a, b)), "{} differs", key.escape_ascii());
        }
    }
    Some(out)
}

/// The latin-1 bytes of a JSON string value, if it is one and every character fits.
fn latin1_of(v: Value<'_>) -> Option<Vec<u8>> {
    v.as_str()?.chars().map(|c| u8::try_from(c).ok()).collect()
}

/// The peers subscribed to a prefix of `topic` on `bus` (VIP.md §7.2), from the index's entries.
fn subscribers_of(router: &Router, bus: &[u8], topic: &[u8]) -> Vec<PeerId> {
    let mut peers = Vec::new();
    router.pubsub.subscriptions().for_each_entry(|p, b, prefix, _all| {
        if b == bus && topic.starts_with(prefix) && !peers.contains(&PeerId(p)) {
            peers.push(PeerId(p));
        }
    });
    peers.sort_by_key(|p| p.0);
    peers
}

/// VIP.md §7 for one `pubsub` request to the router: who is answered, with what, in which
/// order, and who gets a publish.
fn check_pubsub(router: &Router, from: PeerId, me: &[u8], env: &Envelope<'_>, sink: &RecordingSink, outcome: Outcome) {
    let rest: Vec<&Attempt> = sink.attempts.iter().filter(|a| !is_notification(a, b"add")).collect();
    let f = |a: &Attempt, i: usize| a.frames.get(i).cloned().unwrap_or_default();
    let reply_head = |a: &Attempt, kind: &[u8]| {
        a.to == from
            && f(a, 0).is_empty()
            && f(a, 2) == me
            && f(a, 3) == env.msg_id
            && f(a, 4) == b"pubsub"
            && f(a, 5) == kind
    };
    if let Outcome::Blocked(p) = outcome {
        assert_eq!(p, from, "pubsub pauses only on the requester's own queue");
        assert!(rest.iter().all(|a| a.to == from), "pubsub blocked after a delivery");
    }
    match env.get_arg(0) {
        Some(b"subscribe" | b"unsubscribe") => {
            assert_eq!(rest.len(), 1, "one request_response");
            let a = rest.first().copied();
            assert!(a.is_some_and(|a| reply_head(a, b"request_response") && matches!(&f(a, 6)[..], [0] | [1])));
        }
        Some(b"list") => {
            assert_eq!(rest.len(), 1, "one list_response");
            assert!(rest.first().is_some_and(|a| reply_head(a, b"list_response")));
        }
        Some(b"publish") if env.arg_count() >= 3 => {
            let topic = env.arg(1);
            let refused = rest.iter().any(|a| f(a, 4) == b"error");
            let expected = expected_delivery(me, env.arg(2));
            if let Outcome::Blocked(_) = outcome {
                // Only before anything went out: the -32001 error, or the count 0 of a body
                // that cannot be delivered.
                let zero = rest.first().is_some_and(|a| reply_head(a, b"request_response") && f(a, 6) == [0; 4]);
                assert!(rest.len() == 1 && (refused || (zero && expected.is_none())), "publish blocked late");
                return;
            }
            let deliveries: Vec<&Attempt> =
                rest.iter().copied().filter(|a| f(a, 4) == b"pubsub" && f(a, 5) == b"publish").collect();
            let last = rest.last().copied();
            assert!(last.is_some_and(|a| reply_head(a, b"request_response")), "the count comes last");
            let count = last.map(|a| f(a, 6)).unwrap_or_default();
            assert_eq!(count.len(), 4, "a publish count is 4 bytes");
            let count = u32::from_le_bytes(count.try_into().unwrap_or([0xFF; 4]));
            assert_eq!(count as usize, deliveries.len(), "count = matching subscribers");
            assert_eq!(rest.len(), deliveries.len() + 1 + usize::from(refused));
            if refused {
                let e = rest.first().copied();
                assert!(e.is_some_and(|e| e.to == from
                    && e.frames.len() == 9
                    && f(e, 2) == me
                    && f(e, 3) == env.msg_id
                    && f(e, 5) == b"-32001"
                    && f(e, 8) == b"pubsub"));
                assert!(deliveries.is_empty() && expected.is_some());
                return;
            }
            let mut to: Vec<PeerId> = deliveries.iter().map(|a| a.to).collect();
            to.sort_by_key(|p| p.0);
            let want = match &expected {
                Some(_) => {
                    let body = json::parse(env.arg(2)).ok();
                    let bus = body.and_then(|b| b.get(b"bus")).and_then(latin1_of);
                    bus.map(|bus| subscribers_of(router, &bus, topic)).unwrap_or_default()
                }
                None => Vec::new(),
            };
            assert_eq!(to, want, "publish recipients");
            for d in deliveries {
                assert!(router.peers.is_registered(d.to), "a delivery to an unregistered peer");
                let head: [&[u8]; 7] = [b"", SIGNATURE, env.user_id, env.msg_id, b"pubsub", b"publish", topic];
                assert!(d.frames.iter().zip(head).all(|(a, b)| a == b), "delivery frames {:?}", d.frames);
                assert_eq!(d.frames.get(7), expected.as_ref(), "delivery body");
            }
        }
        // synchronize, auth_update, protected_update, publish with too few frames, error,
        // request_response, unknown operations and no operation at all: no reply.
        _ => assert!(rest.is_empty(), "pubsub {:?} answered", env.get_arg(0)),
    }
}

/// Arbitrary messages from 2–4 peers into a 4-peer [`Router`] whose sink is sometimes full,
/// with the pubsub service behind it (VIP.md §7).
///
/// Layout: byte 0 = peer count and router seed; per peer a slot byte (`% 5`, slot 4 is outside
/// the table) and an identity (length byte `& 0x3f`, 0 = generated; a byte `≥ 0xC0` is
/// `platform.auth`, `agent.a`, `agent.b` or `control` by its low 2 bits); then operations
/// until the input runs out. An operation byte `≥ 0xF0` detaches slot `& 3`, `0xE0..=0xEF`
/// attaches it again with a new identity, anything else is a message from the attached peer
/// chosen by its low 2 bits (bit 2: start with `OnFull::Again`), followed by three full-queue
/// masks, a frame count (`% 65`) and the frames (length byte + bytes; a length byte
/// `0xC0..=0xFB` is one of the `TOKENS` — names, pubsub operations and JSON bodies —,
/// `0xFC..=0xFF` the identity attached to slot `& 3`).
///
/// Besides the routing checks: every message the router sends itself is checked by
/// [`check_router_message`] (a publish delivery body is printable-ASCII JSON with the four keys
/// of VIP.md §7.6, a `request_response` result is 1 or 4 bytes, a `list_response` is an array
/// of `[bus, prefix, member]`), every `pubsub` request by [`check_pubsub`] (replies, the publish
/// count of 4 bytes equal to the deliveries, which go to exactly the subscribers of a prefix of
/// the topic on the bus, each with the body rebuilt from the request), `query stats` is a JSON
/// object, and subscribers are always registered peers within the index limits.
pub fn fuzz_vip_route(data: &[u8]) {
    let mut c = Cursor { data };
    let b0 = c.byte();
    let n_peers = 2 + usize::from(b0 % 3);
    // Small pubsub tables: a router is built per input.
    let limits = Limits {
        max_connections: ROUTE_CAPACITY,
        max_subscriptions: ROUTE_MAX_SUBSCRIPTIONS,
        max_subs_per_peer: ROUTE_MAX_SUBS_PER_PEER,
        ..Limits::COMPILED
    };
    let mut router = Router::new(&limits, PlatformInfo::with_router_id(b"fuzz-router"), u32::from(b0) << 24);
    let mut model: Model = Default::default();
    for _ in 0..n_peers {
        let slot = c.byte() % 5;
        let id = route_identity(&mut c);
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
            let id = route_identity(&mut c);
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

// ---------------------------------------------------------------------------------------------
// JSON

/// Same JSON value, as Python's `json.loads` would see it: same kinds, same decoded strings
/// and keys in the same order, numbers equal (integers by text with `-0` = `0`, floats by
/// value and sign, a float that overflows equal to the infinity it becomes).
fn same_json(a: Value<'_>, b: Value<'_>) -> bool {
    match (a.kind(), b.kind()) {
        (Kind::Null, Kind::Null) => true,
        (Kind::Bool, Kind::Bool) => a.as_bool() == b.as_bool(),
        (Kind::String, Kind::String) => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x.chars().eq(y.chars()),
            _ => false,
        },
        (Kind::Number, Kind::Number) => match (a.as_number(), b.as_number()) {
            (Some(x), Some(y)) => same_number(x, y),
            _ => false,
        },
        (Kind::Array, Kind::Array) => {
            let (mut x, mut y) = (a.items(), b.items());
            loop {
                match (x.next(), y.next()) {
                    (None, None) => return true,
                    (Some(p), Some(q)) if same_json(p, q) => {}
                    _ => return false,
                }
            }
        }
        (Kind::Object, Kind::Object) => {
            let (mut x, mut y) = (a.members(), b.members());
            loop {
                match (x.next(), y.next()) {
                    (None, None) => return true,
                    (Some((k, p)), Some((l, q))) if k.chars().eq(l.chars()) && same_json(p, q) => {}
                    _ => return false,
                }
            }
        }
        _ => false,
    }
}

fn same_number(x: Number<'_>, y: Number<'_>) -> bool {
    fn int_text<'a>(n: Number<'a>) -> &'a [u8] {
        if n.raw() == b"-0" { b"0" } else { n.raw() }
    }
    match (x.kind(), y.kind()) {
        (NumberKind::Integer, NumberKind::Integer) => int_text(x) == int_text(y),
        (NumberKind::NaN, NumberKind::NaN) => true,
        (NumberKind::Integer, _) | (_, NumberKind::Integer) => false,
        // Float, Infinity, -Infinity: by value (an overflowing float is an infinity).
        _ => x.as_f64().to_bits() == y.as_f64().to_bits(),
    }
}

/// Emit `v` canonically; checks that the measure is exact and that a slice one byte short
/// fails without writing past what fits.
fn emit_checked(v: Value<'_>) -> Vec<u8> {
    let n = json::emit::emitted_len(v);
    let mut out = Vec::with_capacity(n);
    assert!(json::emit::emit_value(&mut out, v).is_ok());
    assert_eq!(out.len(), n, "emitted_len is exact");
    let mut exact = vec![0u8; n];
    let mut w = SliceWriter::new(&mut exact);
    assert!(json::emit::emit_value(&mut w, v).is_ok());
    assert_eq!(w.written(), &out[..]);
    if n > 0 {
        let mut short = vec![0u8; n - 1];
        let mut w = SliceWriter::new(&mut short);
        assert!(json::emit::emit_value(&mut w, v).is_err(), "one byte short must fail");
        assert!(out.starts_with(w.written()), "a failed emit wrote something else");
    }
    out
}

/// String views agree with each other: `latin1_len`, `to_latin1`, `eq_latin1`, `as_plain`.
fn check_json_str(s: JsonStr<'_>) {
    let chars: Vec<u32> = s.chars().collect();
    let latin1: Option<Vec<u8>> = chars.iter().map(|&c| u8::try_from(c).ok()).collect();
    assert_eq!(s.latin1_len(), latin1.as_ref().map(Vec::len));
    let mut scratch = [0u8; 64];
    match (&latin1, s.to_latin1(&mut scratch)) {
        (Some(l), Ok(got)) => assert_eq!(got, &l[..]),
        (Some(l), Err(e)) => assert!(l.len() > 64 && e == json::Latin1Error::TooLong),
        (None, r) => assert!(r.is_err() && (s.has_escapes())),
    }
    if let Some(l) = &latin1 {
        assert!(s.eq_latin1(l));
        let mut other = l.clone();
        other.push(b'x');
        assert!(!s.eq_latin1(&other));
    }
    if let Some(p) = s.as_plain() {
        assert!(!s.has_escapes());
        assert_eq!(latin1.as_deref(), Some(p), "a plain string is its raw bytes");
    }
}

/// Walk every value: navigation and views agree; returns the number of values visited.
fn walk_json(v: Value<'_>, depth: usize) -> usize {
    assert!(depth <= json::MAX_DEPTH + 1);
    let mut n = 1;
    assert_eq!(v.raw().len(), v.range().len());
    match v.kind() {
        Kind::String => {
            if let Some(s) = v.as_str() {
                check_json_str(s);
            }
        }
        Kind::Number => {
            let num = v.as_number();
            assert!(num.is_some());
            if let Some(num) = num
                && let Some(u) = num.as_u64()
            {
                assert_eq!(num.kind(), NumberKind::Integer);
                assert_eq!(u.to_string().as_bytes(), num.raw(), "as_u64 of non-canonical text");
            }
        }
        Kind::Array => {
            for item in v.items() {
                assert!(item.range().start > v.range().start && item.range().end < v.range().end);
                n += walk_json(item, depth + 1);
            }
        }
        Kind::Object => {
            let members: Vec<_> = v.members().collect();
            for (i, (k, val)) in members.iter().enumerate() {
                check_json_str(*k);
                n += walk_json(*val, depth + 1);
                // `get` is the last member with that key.
                if i < 8
                    && let Some(l) = latin1_of_str(*k)
                {
                    let last = members.iter().rev().find(|(k2, _)| k2.eq_latin1(&l)).map(|(_, v)| v.range());
                    assert_eq!(v.get(&l).map(|g| g.range()), last, "get returns the last duplicate");
                }
            }
        }
        Kind::Null | Kind::Bool => {}
    }
    n
}

fn latin1_of_str(s: JsonStr<'_>) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(c).ok()).collect()
}

/// `json::parse` on arbitrary bytes. A valid document is re-emitted (`json::emit`): the
/// output is printable ASCII, measured exactly, parses back to the same structure and
/// re-emits to itself. Errors come with a position inside the input; the strict prefixes of a
/// valid container or string fail with `UnexpectedEnd`. Navigation (`get`, `members`,
/// `items`) and the string views agree with each other.
pub fn fuzz_json_scan(data: &[u8]) {
    let v = match json::parse(data) {
        Err(e) => {
            assert!(e.pos <= data.len(), "error position {} past the end {}", e.pos, data.len());
            if e.kind == JsonErrorKind::UnexpectedEnd {
                assert_eq!(e.pos, data.len(), "UnexpectedEnd is at the end");
            }
            return;
        }
        Ok(v) => v,
    };
    let r = v.range();
    assert!(r.end <= data.len());
    assert!(data.get(..r.start).unwrap_or(&[]).iter().all(|b| b" \t\r\n".contains(b)));
    assert!(data.get(r.end..).unwrap_or(&[]).iter().all(|b| b" \t\r\n".contains(b)));
    assert_eq!(data.get(r.clone()), Some(v.raw()));
    walk_json(v, 1);
    if matches!(v.kind(), Kind::Array | Kind::Object | Kind::String) {
        let len = r.end;
        for cut in [r.start, r.start + 1, (r.start + len) / 2, len.saturating_sub(2), len - 1] {
            if cut < len && cut > 0 {
                let e = json::parse(data.get(..cut).unwrap_or(&[]));
                assert!(
                    matches!(e, Err(JsonError { kind: JsonErrorKind::UnexpectedEnd, .. })),
                    "prefix {cut} of a valid document: {e:?}"
                );
            }
        }
    }
    let out = emit_checked(v);
    assert!(out.iter().all(|b| (0x20..0x7f).contains(b)), "emitted JSON is not printable ASCII");
    let back = json::parse(&out);
    assert!(back.is_ok(), "emitted JSON does not parse: {back:?}");
    if let Ok(back) = back {
        assert_eq!(back.range(), 0..out.len(), "no whitespace around emitted JSON");
        assert!(same_json(v, back), "re-parsed structure differs");
        assert_eq!(emit_checked(back), out, "emitting is idempotent");
    }
    if v.kind() == Kind::Object
        && let Some(d) = DeliveryBody::from_publish(b"agent.\xe9", v)
    {
        let mut body = Vec::with_capacity(d.emitted_len());
        assert!(d.emit(&mut body).is_ok());
        assert_eq!(body.len(), d.emitted_len());
        check_delivery_body(&body);
    }
}

// ---------------------------------------------------------------------------------------------
// auth.json and the decision

/// A pattern's literal text, if it is one (regex patterns are only matched, not guessed).
fn exact_text(f: &Field) -> Option<Option<&str>> {
    match f {
        Field::Any => Some(None),
        Field::One(Pattern::Exact(s)) => Some(Some(s)),
        Field::AnyOf(ps) => match ps.first() {
            Some(Pattern::Exact(s)) => Some(Some(s)),
            _ => None,
        },
        Field::One(Pattern::Regex { .. }) => None,
    }
}

/// Check one decision against the store it came from; returns whether it allowed.
fn check_decision(auth: &Authenticator, req: &AuthRequest<'_>) -> bool {
    match auth.decide(req) {
        Decision::Allow { user_id, entry } => {
            let _ = user_id.to_string();
            match entry {
                Some(id) => {
                    let e = auth.entry(id);
                    assert!(e.is_some(), "an allow names an entry of the current store");
                    if let Some(e) = e {
                        assert_eq!(e.mechanism(), req.mechanism);
                        match user_id {
                            UserId::Entry(u) => assert_eq!(u, e.user_id()),
                            UserId::Composed { .. } => assert!(e.user_id().is_empty()),
                            UserId::Anonymous => panic!("an entry gave no user id"),
                        }
                        let _ = auth.check_identity(id, b"agent1");
                    }
                }
                None => assert!(
                    auth.mode() == AuthMode::Open || req.mechanism == Mechanism::Null,
                    "an allow without an entry is the open mode or the local-uid branch"
                ),
            }
            true
        }
        Decision::Deny(reason) => {
            let _ = reason.to_string();
            false
        }
    }
}

/// `AuthStore::parse` on arbitrary bytes, then decisions. Parsing is deterministic for a given
/// RNG; an error's text position is consistent with the text; every entry's own credentials,
/// domain and address (when they are literal) are allowed, by an entry of the mechanism;
/// capabilities are found for every entry's `user_id`; entry ids die with their store.
pub fn fuzz_auth_json(data: &[u8]) {
    let store = match AuthStore::parse(data, &mut FuzzRng(7)) {
        Err(e) => {
            let _ = e.to_string();
            if let Location::Text { offset, line, column } = e.location {
                assert!(offset <= data.len(), "error offset {offset} past the end");
                let before = data.get(..offset).unwrap_or(data);
                let nl = before.iter().filter(|&&b| b == b'\n').count();
                let col = before.iter().rev().take_while(|&&b| b != b'\n').count();
                assert_eq!((line, column), (nl + 1, col + 1), "line/column of offset {offset}");
            }
            return;
        }
        Ok(s) => s,
    };
    let again = AuthStore::parse(data, &mut FuzzRng(7));
    assert!(again.as_ref().is_ok_and(|a| a.len() == store.len()
        && a.entries().zip(store.entries()).all(|(x, y)| x.user_id() == y.user_id())));
    assert!(store.len() <= crate::auth::MAX_AUTH_ENTRIES);
    for s in store.skipped() {
        let _ = s.to_string();
    }
    let mut auth = Authenticator::new(store, AuthMode::Enforced);
    // Every entry admits its own literal credentials (first 16 entries).
    let entries: Vec<AllowEntry> = auth.store().entries().take(16).cloned().collect();
    for e in &entries {
        let user = e.user_id().as_bytes().to_vec();
        assert!(auth.capabilities(&user).is_some(), "no capabilities for user_id {:?}", e.user_id());
        let (Some(domain), Some(address), Some(creds)) =
            (exact_text(&e.domain), exact_text(&e.address), exact_text(&e.credentials))
        else {
            continue;
        };
        let domain = domain.unwrap_or("vip");
        let address = address.unwrap_or("127.0.0.1");
        let key;
        let credentials = match (e.mechanism(), creds) {
            (Mechanism::Null, _) => Credentials::Null,
            (Mechanism::Curve, Some(text)) => {
                match decode_key(text) {
                    Ok(raw) if KeyText::new(&raw).as_str() == text => key = raw,
                    _ => continue, // not a canonical key text: nothing can present it
                }
                Credentials::Curve(&key)
            }
            (Mechanism::Plain, Some(text)) => {
                let Some((u, p)) = text.split_once(':') else { continue };
                if u.len() > 255 || p.len() > 255 {
                    continue;
                }
                Credentials::Plain { user: u.as_bytes(), password: p.as_bytes() }
            }
            _ => continue,
        };
        let req = auth_request(domain.as_bytes(), address, e.mechanism(), credentials);
        assert!(check_decision(&auth, &req), "entry {:?} does not admit its own credentials", e.source());
    }
    // Fixed requests: a key nobody has, NULL over ipc, PLAIN that is not UTF-8, a mismatch.
    let stranger = [0x42u8; 32];
    let requests = [
        auth_request(b"vip", "127.0.0.1", Mechanism::Curve, Credentials::Curve(&stranger)),
        auth_request(b"vip", "localhost:1000:1000:42", Mechanism::Null, Credentials::Null),
        auth_request(b"\xff", "", Mechanism::Plain, Credentials::Plain { user: b"\xff", password: b"" }),
        auth_request(b"vip", "10.0.0.1", Mechanism::Curve, Credentials::Null),
    ];
    for req in &requests {
        check_decision(&auth, req);
    }
    assert_eq!(auth.decide(&requests[2]), Decision::Deny(crate::auth::DenyReason::PlainUnsupported));
    assert_eq!(auth.decide(&requests[3]), Decision::Deny(crate::auth::DenyReason::MalformedRequest));
    auth.set_local_uid(Some(1000));
    auth.set_identity_binding(true);
    assert!(check_decision(&auth, &requests[1]), "the local-uid branch admits its uid");
    // The platform's own entries (VIP.md §9.7) go in; old entry ids die with a replaced store.
    let platform = curve_client_keys(0).public;
    for auto in crate::auth::auto_entries(&platform, &[("control", curve_client_keys(1).public)]) {
        let full = auth.store().len() >= crate::auth::MAX_AUTH_ENTRIES;
        assert!(auth.store_mut().upsert(&auto).is_ok() || full);
    }
    let own = Credentials::Curve(&platform.0);
    let req = auth_request(b"vip", "127.0.0.1", Mechanism::Curve, own);
    if let Decision::Allow { entry: Some(id), .. } = auth.decide(&req) {
        auth.replace_store(AuthStore::empty());
        assert!(auth.entry(id).is_none(), "an entry id outlived its store");
        assert!(!auth.check_identity(id, b"x"));
    }
}

// ---------------------------------------------------------------------------------------------
// CURVE key text

/// Every text form VOLTTRON's `decode_key` accepts, for `raw` (VIP.md §9.2).
fn key_forms(raw: &[u8; 32]) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let z85 = crate::zmtp::z85::encode_key(raw);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>().into_bytes();
    let b64 = base64::engine::general_purpose::URL_SAFE;
    let b64n = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    vec![
        z85.to_vec(),
        encode_key(raw).into_bytes(),
        b64.encode(raw).into_bytes(),
        b64n.encode(z85).into_bytes(),
        b64.encode(z85).into_bytes(),
        hex(raw),
        hex(raw).to_ascii_uppercase(),
        hex(&z85),
    ]
}

/// `decode_key` on arbitrary bytes: only the seven lengths decode; hex is any-case hex and
/// URL-safe base64 uses only its alphabet; a decoded key re-encodes to the input (up to hex
/// case and the unused bits of the last base64 character) and decodes from every other form.
/// A 32-byte input is also taken as a raw key: all its forms decode to it.
pub fn fuzz_decode_key(data: &[u8]) {
    const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let r = decode_key(data);
    let b64ok = |t: &[u8]| t.iter().all(|b| URL_SAFE.contains(b));
    match data.len() {
        40 | 54 | 56 | 80 => {}
        43 => assert_eq!(r.is_ok(), b64ok(data), "43: {r:?}"),
        44 => assert_eq!(r.is_ok(), b64ok(&data[..43]) && data.get(43) == Some(&b'='), "44: {r:?}"),
        64 => assert_eq!(r.is_ok(), data.iter().all(u8::is_ascii_hexdigit), "64: {r:?}"),
        n => assert_eq!(r, Err(KeyError::UnknownEncoding { len: n })),
    }
    if let Ok(raw) = r {
        let forms = key_forms(&raw);
        for f in &forms {
            assert_eq!(decode_key(f), Ok(raw), "form {:?}", String::from_utf8_lossy(f));
        }
        let canonical = match data.len() {
            40 => Some(&forms[0]),
            64 => Some(&forms[5]),
            80 => Some(&forms[7]),
            _ => None,
        };
        if let Some(c) = canonical {
            assert!(data.eq_ignore_ascii_case(c), "non-canonical {} accepted", String::from_utf8_lossy(data));
        }
        if matches!(data.len(), 43 | 44) {
            assert_eq!(data.get(..42), forms[1].get(..42), "base64 text differs beyond the unused bits");
        }
        assert_eq!(KeyText::new(&raw).as_str().as_bytes(), &forms[1][..]);
    }
    if let Ok(raw) = <[u8; 32]>::try_from(data) {
        for f in key_forms(&raw) {
            assert_eq!(decode_key(&f), Ok(raw), "form {:?}", String::from_utf8_lossy(&f));
        }
    }
}
