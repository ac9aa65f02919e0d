//! `fuzz_frame_stream` and the session driver the session targets share: a NULL session fed
//! in arbitrary chunks must behave as when fed whole (ZMTP.md §3, §5).

use super::*;

pub use crate::zmtp::greeting::LIBZMQ_NULL_GREETING;

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
pub(super) const ROUTER_ID: &[u8] = b"fuzz-router-id";

/// Hard cap on the simulated receive buffer: the largest message the limits allow with its
/// frame headers (and, under CURVE, the 33-byte MESSAGE wrapper of each frame), plus the
/// largest handshake frame and a header of slack. The session must never ask the server to
/// hold more (`need`), whatever the peer sends.
pub(super) fn rx_cap(limits: &Limits, overhead: usize) -> usize {
    let msg = limits.max_msg_bytes as usize + overhead + limits.max_msg_parts * (9 + overhead) + 9;
    let one = 9 + MAX_HANDSHAKE_FRAME_BYTES.max(MAX_COMMAND_BYTES) as usize;
    msg.max(one).max(GREETING_LEN) + 9
}

/// Bytes held for the message being assembled (its complete frames and any commands between
/// them): the payload limit plus each frame's header (and CURVE wrapper).
pub(super) fn msg_held_cap(limits: &Limits, overhead: usize) -> usize {
    // Under CURVE a command MESSAGE is checked like a data frame (+33) before its whole frame
    // is added to the held bytes: one header and wrapper of slack.
    let slack = if overhead > 0 { overhead + 9 } else { 0 };
    limits.max_msg_bytes as usize + limits.max_msg_parts * (9 + overhead) + slack
}

/// The limits a session input runs under (bits 0..2 of byte 0): tiny ones so limits are
/// reached with small inputs, and the "1 MiB" profile.
pub(super) fn stream_limits(profile: u8) -> Limits {
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
pub(super) enum Chunks {
    /// One read with everything.
    Whole,
    /// Reads of this size.
    Fixed(usize),
    /// xorshift sizes in `1..=max`.
    Random { state: u32, max: usize },
}

impl Chunks {
    pub(super) fn next(&mut self) -> usize {
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
    pub(super) fn from_input(b0: u8, b1: u8) -> Chunks {
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
pub(super) struct Run {
    /// `ready <socket type> <identity>`, `verify <allow>` and each message's frames.
    pub(super) events: Vec<Vec<Vec<u8>>>,
    /// Everything the session wrote (greeting, handshake replies, PONGs).
    pub(super) out: Vec<u8>,
    /// How it ended: an error, or the unconsumed bytes once the input ran out.
    pub(super) end: Result<Vec<u8>, SessionError>,
}

/// Where the first incomplete frame starts in `rx` and how many bytes `rx` must hold to
/// complete it (9 when even its header is partial). `from` is a frame boundary up to which
/// every frame is known to be complete (the walk is resumed there, so that reads of one byte
/// stay linear).
pub(super) fn first_incomplete_frame(rx: &[u8], from: usize) -> (usize, usize) {
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
pub(super) struct FuzzRng(pub(super) u64);

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
pub(super) trait Feed {
    /// The next bytes, given everything the server has written so far; empty when the peer has
    /// nothing more to send (the run ends).
    fn more(&mut self, server_out: &[u8]) -> Vec<u8>;
}

/// A fixed stream, handed over at the first request.
pub(super) struct FixedFeed<'a>(pub(super) Option<&'a [u8]>);

impl Feed for FixedFeed<'_> {
    fn more(&mut self, _server_out: &[u8]) -> Vec<u8> {
        self.0.take().map(<[u8]>::to_vec).unwrap_or_default()
    }
}

/// The server end of a simulated connection.
pub(super) struct Endpoint<'a> {
    pub(super) mechanism: Mechanism,
    pub(super) limits: &'a Limits,
    /// Seed of the server's RNG (CURVE cookie key, transient keys, nonces): every run starts
    /// from it, so runs over the same bytes are comparable.
    pub(super) seed: u64,
}

/// The authorisation hook: called on [`Input::Verify`] with the session, returns the decision.
pub(super) type Verify<'v> = &'v mut dyn FnMut(&Session) -> bool;

/// Drive a session the way `server::event_loop` does: the unconsumed bytes are handed in,
/// `consumed` is dropped, the buffer grows to `need` (never past a fixed cap), each read takes
/// at most what the buffer has room for, [`Session::authorize`] follows every
/// [`Input::Verify`] with the hook's decision, and each held message is read and released.
pub(super) fn drive_session(ep: &Endpoint<'_>, feed: &mut dyn Feed, mut chunks: Chunks, verify: Verify<'_>) -> Run {
    let mut rng = FuzzRng(ep.seed);
    let curve = (ep.mechanism == Mechanism::Curve)
        .then(|| CurveContext { keys: curve_server_keys().clone(), cookies: CookieKeys::new(&mut rng) });
    let cfg = SessionConfig { identity: ROUTER_ID, limits: ep.limits, curve: curve.as_ref() };
    let mut d = Driver::new(ep, cfg, rng);
    let mut input: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    loop {
        if let Err(e) = d.process(verify) {
            return Run { events: d.events, out: d.out, end: Err(e) };
        }
        if pos >= input.len() {
            input = feed.more(&d.out);
            pos = 0;
            if input.is_empty() {
                return Run { events: d.events, out: d.out, end: Ok(d.rx) };
            }
        }
        // Read: at most the chunk, at most the free room, at most what is left.
        let free = d.room - d.rx.len();
        let n = chunks.next().min(free).min(input.len() - pos);
        assert!(n > 0, "no room to read into (room {}, held {})", d.room, d.rx.len());
        d.rx.extend_from_slice(input.get(pos..pos + n).unwrap_or(&[]));
        pos += n;
    }
}

/// The server's side of [`drive_session`]: the session, its buffers and what was observed.
struct Driver<'c> {
    mechanism: Mechanism,
    limits: &'c Limits,
    cfg: SessionConfig<'c>,
    rng: FuzzRng,
    s: Session,
    rx: Vec<u8>,
    out: Vec<u8>,
    /// The receive buffer's size: grown to every `need`.
    room: usize,
    cap: usize,
    held_cap: usize,
    events: Vec<Vec<Vec<u8>>>,
    ready: bool,
    verified: bool,
    /// Bytes consumed so far: the greeting has been read once this reaches 64.
    total_consumed: usize,
    /// Offset in `rx` of the first frame not known to be complete (once greeted).
    walk: usize,
}

impl<'c> Driver<'c> {
    fn new(ep: &Endpoint<'c>, cfg: SessionConfig<'c>, rng: FuzzRng) -> Self {
        let overhead = if ep.mechanism == Mechanism::Curve { 33 } else { 0 };
        let mut out = Vec::new();
        let s = Session::new(ep.mechanism, &mut out);
        assert_eq!(out, greeting::emit(ep.mechanism, true), "our greeting goes out at once");
        Driver {
            mechanism: ep.mechanism,
            limits: ep.limits,
            cfg,
            rng,
            s,
            rx: Vec::new(),
            out,
            room: 64,
            cap: rx_cap(ep.limits, overhead),
            held_cap: msg_held_cap(ep.limits, overhead),
            events: Vec::new(),
            ready: false,
            verified: false,
            total_consumed: 0,
            walk: 0,
        }
    }

    /// Drop `n` consumed bytes.
    fn consume(&mut self, n: usize) {
        self.rx.drain(..n);
        self.total_consumed += n;
    }

    /// Process everything at hand.
    fn process(&mut self, verify: Verify<'_>) -> Result<(), SessionError> {
        loop {
            let held = self.rx.len();
            match self.s.handle_input(&self.cfg, &mut self.rx, &mut self.out, &mut self.rng)? {
                Input::NeedMore { consumed, need } => {
                    self.on_need_more(held, consumed, need);
                    return Ok(());
                }
                Input::Verify { consumed } => self.on_verify(held, consumed, verify)?,
                Input::Ready { consumed } => self.on_ready(held, consumed),
                Input::Message => self.on_message(held),
            }
        }
    }

    fn on_need_more(&mut self, held: usize, consumed: usize, need: usize) {
        assert!(consumed <= held, "consumed {consumed} > held {held}");
        self.consume(consumed);
        self.walk = self.walk.saturating_sub(consumed);
        assert!(need > self.rx.len(), "need {need} must exceed held {}", self.rx.len());
        assert!(need <= self.cap, "need {need} over the receive-buffer cap {}", self.cap);
        if self.total_consumed < GREETING_LEN {
            assert_eq!((self.total_consumed, need), (0, GREETING_LEN), "before the greeting");
        } else {
            assert_eq!(self.s.is_traffic(), self.ready);
            let (scan, want) = first_incomplete_frame(&self.rx, self.walk);
            self.walk = scan;
            assert!(need <= want, "need {need} beyond the next frame's end {want}");
            if self.ready {
                // Bytes held for the message being assembled (frames and any commands between
                // them) stay within the message limits.
                assert!(scan <= self.held_cap, "{scan} bytes held for one message (cap {})", self.held_cap);
            } else {
                assert_eq!(scan, 0, "the handshake keeps nothing before READY");
            }
        }
        self.room = self.room.max(need);
    }

    fn on_verify(&mut self, held: usize, consumed: usize, verify: Verify<'_>) -> Result<(), SessionError> {
        assert_ne!(self.mechanism, Mechanism::Null, "the NULL mechanism has no verify step");
        assert!(!self.ready && !self.verified, "Verify twice or after Ready");
        assert!(consumed > 0 && consumed <= held, "consumed {consumed}, held {held}");
        self.consume(consumed);
        self.walk = 0;
        self.verified = true;
        let allow = verify(&self.s);
        self.events.push(vec![b"verify".to_vec(), vec![u8::from(allow)]]);
        let before = self.out.len();
        let r = self.s.authorize(&self.cfg, allow, &mut self.out);
        if allow {
            assert_eq!(r, Ok(()), "an allowed peer is answered");
        } else {
            assert_eq!(r, Err(SessionError::AuthDenied));
            let mut error = Vec::new();
            command::emit_error(b"400", &mut error);
            assert_eq!(self.out.get(before..), Some(&error[..]), "a refusal is ERROR 400");
        }
        // A second decision is refused and writes nothing.
        let mut scratch = Vec::new();
        assert_eq!(self.s.authorize(&self.cfg, true, &mut scratch), Err(SessionError::UnexpectedCommand));
        assert!(scratch.is_empty());
        r
    }

    fn on_ready(&mut self, held: usize, consumed: usize) {
        assert!(!self.ready, "Ready twice");
        assert!(consumed <= held, "consumed {consumed}, held {held}");
        // CURVE reports Ready on the call after `authorize`, having consumed the INITIATE
        // already; NULL and PLAIN report it on their last command.
        assert!(consumed > 0 || self.mechanism == Mechanism::Curve, "Ready consumed nothing");
        assert_eq!(self.verified, self.mechanism != Mechanism::Null, "Ready without the verify step");
        assert!(self.s.is_traffic());
        assert!(self.s.identity().len() <= MAX_IDENTITY_BYTES);
        self.ready = true;
        let t = format!("{:?}", self.s.socket_type()).into_bytes();
        self.events.push(vec![b"ready".to_vec(), t, self.s.identity().to_vec()]);
        self.consume(consumed);
        self.walk = 0;
    }

    fn on_message(&mut self, held: usize) {
        assert!(self.ready, "a message before the handshake completed");
        let m = self.s.message(&self.rx);
        let parts = m.parts();
        assert!(parts.len() <= self.limits.max_msg_parts);
        let mut last_end = 0usize;
        let mut total = 0u64;
        for p in parts {
            let (start, len) = (p.start as usize, p.len as usize);
            assert!(start >= last_end, "parts overlap or go backwards: {parts:?}");
            assert!(start + len <= held, "part {p:?} outside the {held} held bytes");
            assert!(len as u64 <= self.limits.max_frame_bytes);
            last_end = start + len;
            total += len as u64;
        }
        assert!(total <= self.limits.max_msg_bytes);
        assert_eq!(m.body_bytes() as u64, total);
        let frames: Vec<Vec<u8>> = (0..m.len())
            .map(|i| {
                let f = m.get(i);
                assert!(f.is_some(), "part {i} is not inside the buffer");
                f.unwrap_or(&[]).to_vec()
            })
            .collect();
        // Held until released: asking again answers the same message.
        let again = self.s.handle_input(&self.cfg, &mut self.rx, &mut self.out, &mut self.rng);
        assert_eq!(again, Ok(Input::Message), "a held message is answered again");
        let consumed = self.s.release();
        assert!(consumed > 0 && consumed <= held, "consumed {consumed}, held {held}");
        assert!(last_end <= consumed, "a part ends after the {consumed} consumed bytes");
        self.events.push(frames);
        self.consume(consumed);
        self.walk = self.walk.saturating_sub(consumed);
    }
}

/// Compare a run with a reference run of the same bytes.
pub(super) fn same_run(whole: &Run, cut: &Run, chunks: Chunks) {
    match (&whole.end, &cut.end) {
        (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
        _ => panic!("whole {:?} but in chunks {:?} ({chunks:?})", whole.end, cut.end),
    }
    assert_eq!(whole, cut, "chunks {chunks:?} differ from a single read");
}

pub(super) fn no_verify(_: &Session) -> bool {
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
