//! `fuzz_session_curve`: CURVE server sessions driven by a real CurveClient (ZMTP.md §7).

use super::*;

/// Byte 0 of a `session_curve` input: top bit set = the rest follows a CURVE greeting as is.
pub const SESSION_CURVE_RAW: u8 = 0x80;

/// INITIATE metadata a client may send (index = byte 3 of a `session_curve` input `% 8`).
pub(super) fn client_metadata(choice: u8, extra: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut m = Vec::new();
    // (socket type, identity, whether the router admits it) for the well-formed choices.
    let socket: Option<(&[u8], &[u8], bool)> = match choice & 7 {
        0 => Some((b"DEALER", b"agent1", true)),
        1 => Some((b"REQ", b"", true)),
        2 => Some((b"ROUTER", b"rtr", true)),
        4 => Some((b"PUB", b"x", false)),
        5 => Some((b"DEALER", &[b'i'; 256], false)),
        _ => None,
    };
    let identity: Option<&[u8]> = match (choice & 7, socket) {
        (_, Some((t, id, ok))) => {
            command::socket_metadata(t, id, &mut m);
            ok.then_some(id)
        }
        (3, None) => {
            metadata::emit(b"Socket-Type", b"DEALER", &mut m);
            Some(b"")
        }
        (6, None) => {
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
pub(super) enum Tamper {
    None,
    Hello,
    Initiate,
    /// The n-th traffic frame (byte 4 `>> 2`).
    Traffic(u8),
}

/// A real [`CurveClient`] talking to the session: it reads the server's WELCOME and READY
/// from the session's output, answers them, then sends traffic chosen by the input. Every
/// byte it sends is kept in `transcript` so that the same stream can be replayed.
pub(super) struct CurvePeer<'a> {
    pub(super) client: CurveClient,
    pub(super) rng: FuzzRng,
    pub(super) metadata: Vec<u8>,
    pub(super) tamper: Tamper,
    pub(super) tamper_at: usize,
    pub(super) tamper_xor: u8,
    /// Traffic operations (see [`fuzz_session_curve`]).
    pub(super) ctl: Cursor<'a>,
    pub(super) stage: PeerStage,
    /// Offset of the next unread frame in the server's output.
    pub(super) seen: usize,
    pub(super) transcript: Vec<u8>,
    /// Traffic frames sent so far (for `Tamper::Traffic` and replays).
    pub(super) sent_frames: u8,
    pub(super) last_frame: Vec<u8>,
    /// PONG payloads still expected, in order.
    pub(super) pongs: VecDeque<Vec<u8>>,
    /// Complete messages sent, and the frames of the one being sent.
    pub(super) messages: Vec<Vec<Vec<u8>>>,
    pub(super) partial: Vec<Vec<u8>>,
    /// Nothing was sent that the session may legitimately choke on or hold back.
    pub(super) clean: bool,
    /// Bytes sent after the client stopped making sense of the server (once).
    pub(super) junk_sent: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PeerStage {
    Start,
    Welcome,
    Ready,
    Traffic,
    Done,
}

impl CurvePeer<'_> {
    pub(super) fn corrupt(&mut self, what: Tamper, bytes: &mut [u8]) {
        if self.tamper == what && !bytes.is_empty() {
            let i = self.tamper_at % bytes.len();
            if let Some(b) = bytes.get_mut(i) {
                *b ^= self.tamper_xor;
            }
            self.clean = false;
        }
    }

    /// One traffic operation from `ctl` (empty when there are none left).
    pub(super) fn traffic(&mut self) -> Vec<u8> {
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
    pub(super) fn read_server(&mut self, server_out: &[u8], bytes: &mut Vec<u8>) {
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
/// follows every Verify with the decision of `session_auth_json`. The stream is replayed in
/// chunks and must give identical events, output and end.
///
/// Layout: byte 0 = `raw:1 client_key:2 chunk_mode:2 limits:3`, byte 1 = chunk parameter,
/// byte 2 = RNG seed (bit 7: the client has a wrong server key). Raw: the rest follows a
/// CURVE client greeting. Otherwise byte 3 = INITIATE metadata (`% 8`, see
/// `client_metadata`; 7 = the bytes up to the next 0xFF, which is skipped), byte 4 = tamper
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
