//! Unit tests of `curve` (kept apart so the module file shows the code).

//! Handshake and traffic tests: the ZMTP.md §12.3 transcript (scripted
//! RNG), a seeded client↔server pair, and the failure matrix.
use super::keys::PrecomputedBox;
use super::nonce::{INITIATE_PREFIX, VOUCH_PREFIX, WELCOME_PREFIX, long_nonce, short_nonce};
use super::wire;
use super::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};

/// An RNG that hands out a fixed script of bytes, in order.
struct ScriptedRng {
    bytes: Vec<u8>,
    pos: usize,
}

impl ScriptedRng {
    fn new(hex_parts: &[&str]) -> Self {
        let bytes = hex_parts.iter().flat_map(|h| hex::decode(h).unwrap()).collect();
        ScriptedRng { bytes, pos: 0 }
    }
    fn exhausted(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

impl RngCore for ScriptedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_be_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_be_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let end = self.pos + dest.len();
        assert!(end <= self.bytes.len(), "scripted RNG exhausted");
        dest.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for ScriptedRng {}

const SERVER_SECRET_Z85: &[u8] = b"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
const CLIENT_SECRET_Z85: &[u8] = b"D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs";
const CLIENT_PUBLIC_Z85: &[u8] = b"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";

const CLIENT_MD: &str = "0b536f636b65742d54797065000000064445414c4552084964656e74697479000000066167656e7431";
const SERVER_MD: &str = "0b536f636b65742d5479706500000006524f55544552084964656e7469747900000000";

const T_HELLO: &str = concat!(
    "04c80548454c4c4f010000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000000007a37cbc142093c8b755dc1b10e8",
    "6cb426374ad16aa853ed0bdfc0b2b86d1c7c00000000000000016e3f26f72fe2",
    "f05db20de7881ee6a08fc432afe73b138226f5930879c93bdd4d8586425a3a8d",
    "6bc5d83598a3017e0f1792ff0381360d168b6fe1c5e0bb752b0d365e13ea8e8a",
    "29ce1c5052c8c63eced7"
);
const T_WELCOME: &str = concat!(
    "04a80757454c434f4d456162636465666768696a6b6c6d6e6f706cc92d80f045",
    "8217b04adc0f59f81231095679b381464e689ed440a6bbaecb81b06d718f2baf",
    "02529a21ae09ba17930cf72cbfb4c9087933765ba8722182a6ac3a2cd138528b",
    "88870f3252877b3488d88ba8338d0b5ff71d9211ddc028a64d3ed236891968ef",
    "6d54f4b00601efdd18775c6db5f7f4a7e8e1bf98927b2540053488fc76bb01d3",
    "6e8fd9e7f17a4cab1ecd"
);
const T_INITIATE: &str = concat!(
    "06000000000000012a08494e4954494154457172737475767778797a7b7c7d7e",
    "7f80009f4503d6481bf10d12fd9db13577f424d81bc43a2dceb44a75655a8d1c",
    "62e3120cf7d5947263616e1f60247ddb1e109850b438d5c6b2a5450398fb4efc",
    "40ff99bfa1b1e1db408a1ae535f3e66fc00300000000000000026d7789a2ace9",
    "e05f7982b7a19b5716d8f4b83c445dabfe76b764205b74eeced08560918c380f",
    "e1f6615aa96926bbfd8b9cb3e60a229a0ba7b735062b4216b2602e2f9879b84e",
    "4d56b689b7e33bac080f0411f7708020190d2daa919b1e040ed749ada8ded2d0",
    "4826a1451cd3567e89f4407c8f921617ec2e54b7683afa98108358897b3ccdfa",
    "4d45bb4a4a1e7a7568b77523cdb6612d1dcd2e3c1025f1b8642572653b809633",
    "9e6dfabca005b814c15e89d3e448ef080f23d8"
);
const T_READY: &str = concat!(
    "04410552454144590000000000000001640086d1ab154a21cf6b4b63c8994a57",
    "e5b976c483ec0654f901c19a18bef5ba8a058356adbb7f4fd971d3a3f9629bff",
    "74d79f"
);
const T_MSG_C3: &str = "0026074d4553534147450000000000000003fa0a681cc7dcd8d8d0b244a4adaa4735232731a3f5fd";
const T_MSG_C4: &str = "0026074d45535341474500000000000000041c668bec4e63b9f2889a9e25c4b7f22168fad96ac923";
const T_MSG_C5: &str = "0028074d45535341474500000000000000054b8d03ba1ffb4e17aa053d64d2956b610dd6b89cb215dda4";
const T_MSG_S2: &str = "0023074d45535341474500000000000000028f3a79d46285b549661a50f17b3ff548204eef";
const PING_TTL0: &[u8] = b"\x04PING\x00\x00";

/// The "random" inputs of ZMTP.md §12.3, in the order this module draws
/// them: CookieKeys::new (K, epoch = Kn[0..4]), CurveClient::new (c'),
/// server HELLO (s', Wn, Kn[4..16]), client WELCOME (Vn).
fn transcript_rng() -> ScriptedRng {
    ScriptedRng::new(&[
        "4142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60",
        "71727374",
        "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
        "2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40",
        "6162636465666768696a6b6c6d6e6f70",
        "75767778797a7b7c7d7e7f80",
        "8182838485868788898a8b8c8d8e8f90",
    ])
}

fn server_keys() -> KeyPair {
    KeyPair::from_secret(SecretKey::from_z85(SERVER_SECRET_Z85).unwrap())
}

fn client_keys() -> KeyPair {
    KeyPair::from_secret(SecretKey::from_z85(CLIENT_SECRET_Z85).unwrap())
}

/// The body of one complete ZMTP frame (short or long header).
fn body_of(frame: &[u8]) -> Vec<u8> {
    let (hdr, len) = if frame[0] & crate::zmtp::frame::FLAG_LONG != 0 {
        (9, u64::from_be_bytes(frame[1..9].try_into().unwrap()) as usize)
    } else {
        (2, usize::from(frame[1]))
    };
    assert_eq!(frame.len(), hdr + len, "exactly one frame");
    frame[hdr..].to_vec()
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// ZMTP.md §12.3 (1) and (2): client emits HELLO and INITIATE, server
/// emits WELCOME and READY, byte-identical to the transcript; each side
/// accepts the other's transcript bytes.
#[test]
fn transcript_handshake_byte_exact() {
    let mut rng = transcript_rng();
    let cookies = CookieKeys::new(&mut rng);
    let skeys = server_keys();
    let mut client = CurveClient::new(skeys.public, client_keys(), &mut rng).unwrap();
    let mut server = CurveServer::new();

    let mut out = Vec::new();
    client.start(&mut out).unwrap();
    assert_eq!(hex::encode(&out), T_HELLO);

    // Server fed the transcript bytes (not our client's output).
    let mut body = body_of(&h(T_HELLO));
    out.clear();
    let step = server.handle_command(&mut body, &skeys, &cookies, &mut out, &mut rng);
    assert_eq!(step, Ok(ServerStep::WelcomeSent));
    assert_eq!(hex::encode(&out), T_WELCOME);

    let mut body = body_of(&h(T_WELCOME));
    out.clear();
    let step = client.handle_command(&mut body, &h(CLIENT_MD), &mut out, &mut rng);
    assert_eq!(step, Ok(ClientStep::InitiateSent));
    assert_eq!(hex::encode(&out), T_INITIATE);
    assert!(rng.exhausted(), "every scripted byte used exactly once");

    let mut body = body_of(&h(T_INITIATE));
    out.clear();
    let step = server.handle_command(&mut body, &skeys, &cookies, &mut out, &mut rng).unwrap();
    let ServerStep::Initiated { client_key, metadata } = step else { panic!("expected Initiated, got {step:?}") };
    assert!(out.is_empty());
    assert_eq!(client_key, PublicKey::from_z85(CLIENT_PUBLIC_Z85).unwrap());
    assert_eq!(hex::encode(&body[metadata]), CLIENT_MD);

    server.send_ready(&h(SERVER_MD), &mut out).unwrap();
    assert_eq!(hex::encode(&out), T_READY);
    assert_eq!(out.len(), CurveServer::ready_frame_len(h(SERVER_MD).len()));

    let mut body = body_of(&h(T_READY));
    out.clear();
    let step = client.handle_command(&mut body, &[], &mut out, &mut rng).unwrap();
    let ClientStep::Ready { metadata } = step else { panic!("{step:?}") };
    assert_eq!(hex::encode(&body[metadata]), SERVER_MD);
    assert!(client.is_ready() && server.is_ready());

    // Traffic, client → server: nonces 3, 4, 5.
    for (flags, payload, want) in
        [(0x01, &b"hello"[..], T_MSG_C3), (0x00, &b"world"[..], T_MSG_C4), (0x02, PING_TTL0, T_MSG_C5)]
    {
        out.clear();
        client.seal_frame(flags, payload, &mut out).unwrap();
        assert_eq!(hex::encode(&out), want);
        assert_eq!(out.len(), CurveClient::sealed_frame_len(payload.len()));
    }
    out.clear();
    server.seal_frame(0x00, b"ok", &mut out).unwrap();
    assert_eq!(hex::encode(&out), T_MSG_S2);
}

/// A server and client mid-transcript (READY exchanged), built from the
/// transcript vectors.
fn transcript_pair() -> (CurveServer, CurveClient) {
    let mut rng = transcript_rng();
    let cookies = CookieKeys::new(&mut rng);
    let skeys = server_keys();
    let mut client = CurveClient::new(skeys.public, client_keys(), &mut rng).unwrap();
    let mut server = CurveServer::new();
    let mut out = Vec::new();
    client.start(&mut out).unwrap();
    let mut b = body_of(&out);
    out.clear();
    server.handle_command(&mut b, &skeys, &cookies, &mut out, &mut rng).unwrap();
    let mut b = body_of(&out);
    out.clear();
    client.handle_command(&mut b, &h(CLIENT_MD), &mut out, &mut rng).unwrap();
    let mut b = body_of(&out);
    out.clear();
    server.handle_command(&mut b, &skeys, &cookies, &mut out, &mut rng).unwrap();
    server.send_ready(&h(SERVER_MD), &mut out).unwrap();
    let mut b = body_of(&out);
    client.handle_command(&mut b, &[], &mut Vec::new(), &mut rng).unwrap();
    (server, client)
}

/// ZMTP.md §12.3 (3), (4): the MESSAGE vectors decrypt in place to the
/// stated flags and payloads; nonce 3 after nonce 4 fails.
#[test]
fn transcript_messages_open_in_place() {
    let (mut server, mut client) = transcript_pair();
    let mut m3 = body_of(&h(T_MSG_C3));
    let ptr = m3.as_ptr();
    let (flags, range) = server.open_message(&mut m3).unwrap();
    assert_eq!((flags, &m3[range.clone()]), (0x01, &b"hello"[..]));
    assert_eq!(m3.as_ptr(), ptr);
    assert_eq!(range, 33..m3.len());
    let mut m4 = body_of(&h(T_MSG_C4));
    let (flags, range) = server.open_message(&mut m4).unwrap();
    assert_eq!((flags, &m4[range]), (0x00, &b"world"[..]));
    let mut m3_again = body_of(&h(T_MSG_C3));
    assert_eq!(server.open_message(&mut m3_again), Err(CurveError::NonceNotIncreasing));
    let mut m5 = body_of(&h(T_MSG_C5));
    let (flags, range) = server.open_message(&mut m5).unwrap();
    assert_eq!((flags, &m5[range]), (0x02, PING_TTL0));
    let mut s2 = body_of(&h(T_MSG_S2));
    let (flags, range) = client.open_message(&mut s2).unwrap();
    assert_eq!((flags, &s2[range]), (0x00, &b"ok"[..]));
}

// ---- seeded pair harness -------------------------------------------

const MD: &[u8] = b"\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x06agent1";

/// Everything one handshake needs, with seeded RNGs so that a run can be
/// repeated byte for byte.
struct Pair {
    skeys: KeyPair,
    ckeys: KeyPair,
    cookies: CookieKeys,
    server: CurveServer,
    client: CurveClient,
    srng: ChaCha20Rng,
    crng: ChaCha20Rng,
}

impl Pair {
    fn new() -> Self {
        Self::with_server_key(None)
    }

    /// `claimed`: the server key the client believes in (default: the
    /// real one).
    fn with_server_key(claimed: Option<PublicKey>) -> Self {
        let mut srng = ChaCha20Rng::seed_from_u64(100);
        let mut crng = ChaCha20Rng::seed_from_u64(200);
        let skeys = KeyPair::generate(&mut srng);
        let ckeys = KeyPair::generate(&mut crng);
        let cookies = CookieKeys::new(&mut srng);
        let client = CurveClient::new(claimed.unwrap_or(skeys.public), ckeys.clone(), &mut crng).unwrap();
        Pair { skeys, ckeys, cookies, server: CurveServer::new(), client, srng, crng }
    }

    fn hello(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.client.start(&mut out).unwrap();
        assert_eq!(out.len(), client::HELLO_FRAME_LEN);
        body_of(&out)
    }

    fn server_cmd(&mut self, body: &mut [u8]) -> (Result<ServerStep, CurveError>, Vec<u8>) {
        let mut out = Vec::new();
        let r = self.server.handle_command(body, &self.skeys, &self.cookies, &mut out, &mut self.srng);
        (r, out)
    }

    fn client_cmd(&mut self, body: &mut [u8]) -> (Result<ClientStep, CurveError>, Vec<u8>) {
        let mut out = Vec::new();
        let r = self.client.handle_command(body, MD, &mut out, &mut self.crng);
        (r, out)
    }

    fn welcome(&mut self) -> Vec<u8> {
        let mut hello = self.hello();
        let (r, out) = self.server_cmd(&mut hello);
        assert_eq!(r, Ok(ServerStep::WelcomeSent));
        body_of(&out)
    }

    /// The INITIATE body the client sent.
    fn initiate(&mut self) -> Vec<u8> {
        let mut welcome = self.welcome();
        let (r, out) = self.client_cmd(&mut welcome);
        assert_eq!(r, Ok(ClientStep::InitiateSent));
        assert_eq!(out.len(), CurveClient::initiate_frame_len(MD.len()));
        body_of(&out)
    }

    fn ready(&mut self) -> Vec<u8> {
        let mut initiate = self.initiate();
        let (r, _) = self.server_cmd(&mut initiate);
        let Ok(ServerStep::Initiated { client_key, metadata }) = r else { panic!("{r:?}") };
        assert_eq!(client_key, self.ckeys.public);
        assert_eq!(&initiate[metadata], MD);
        let mut out = Vec::new();
        self.server.send_ready(b"\x0bSocket-Type\x00\x00\x00\x06ROUTER", &mut out).unwrap();
        body_of(&out)
    }

    fn established() -> Self {
        let mut p = Pair::new();
        let mut ready = p.ready();
        let (r, _) = p.client_cmd(&mut ready);
        let Ok(ClientStep::Ready { metadata }) = r else { panic!("{r:?}") };
        assert_eq!(&ready[metadata], b"\x0bSocket-Type\x00\x00\x00\x06ROUTER");
        p
    }
}

fn client_seal(p: &mut Pair, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    p.client.seal_frame(flags, payload, &mut out).unwrap();
    out
}

#[test]
fn round_trip_seeded_pair() {
    let mut p = Pair::established();
    let big = vec![0x5a; 300];
    let parts: [(u8, &[u8]); 4] = [(0x01, b""), (0x01, b"VIP1"), (0x00, &big), (0x02, PING_TTL0)];
    for (flags, payload) in parts {
        let frame = client_seal(&mut p, flags, payload);
        assert_eq!(frame[0], if payload.len() + 33 > 255 { 0x02 } else { 0x00 });
        let mut body = body_of(&frame);
        let (f, r) = p.server.open_message(&mut body).unwrap();
        assert_eq!((f, &body[r]), (flags, payload));
    }
    for i in 0..3u8 {
        let mut out = Vec::new();
        p.server.seal_frame(i & 1, &[i; 10], &mut out).unwrap();
        let mut body = body_of(&out);
        let (f, r) = p.client.open_message(&mut body).unwrap();
        assert_eq!((f, &body[r]), (i & 1, &[i; 10][..]));
    }
    // Reserved inner flag bits are masked on send and on receive.
    let frame = client_seal(&mut p, 0xF1, b"x");
    let mut body = body_of(&frame);
    assert_eq!(p.server.open_message(&mut body).unwrap().0, 0x01);
}

/// Rule 1: HELLO must be exactly 200 bytes.
#[test]
fn hello_199_and_201_bytes_wrong_size() {
    for len in [199usize, 201] {
        let mut p = Pair::new();
        let mut hello = p.hello();
        hello.resize(len, 0);
        let (r, out) = p.server_cmd(&mut hello);
        assert_eq!(r, Err(CurveError::WrongSize), "len {len}");
        assert!(out.is_empty());
    }
}

/// Rule 2: anti-amplification on the wire.
#[test]
fn welcome_smaller_than_hello_on_the_wire() {
    let mut p = Pair::new();
    let mut hello = p.hello();
    let (_, out) = p.server_cmd(&mut hello);
    assert_eq!(out.len(), server::WELCOME_FRAME_LEN);
    assert!(out.len() < client::HELLO_FRAME_LEN);
}

#[test]
fn wrong_server_key_bad_box() {
    let other = KeyPair::generate(&mut ChaCha20Rng::seed_from_u64(9)).public;
    let mut p = Pair::with_server_key(Some(other));
    let mut hello = p.hello();
    let (r, out) = p.server_cmd(&mut hello);
    assert_eq!(r, Err(CurveError::BadBox));
    assert!(out.is_empty(), "nothing sent to a HELLO that did not open");
    assert_eq!(p.server_cmd(&mut hello).0, Err(CurveError::Failed));
}

#[test]
fn low_order_client_transient_weak_key() {
    let mut p = Pair::new();
    let mut hello = p.hello();
    hello[wire::HELLO_CLIENT_KEY_AT..wire::HELLO_CLIENT_KEY_AT + 32].fill(0);
    assert_eq!(p.server_cmd(&mut hello).0, Err(CurveError::WeakKey));
}

/// Expected error for a command whose byte 0 (name length) was XORed
/// with 0xFF.
fn name_len_flip_error(body: &[u8]) -> CurveError {
    if 1 + usize::from(body[0] ^ 0xFF) > body.len() { CurveError::BadCommand } else { CurveError::UnexpectedCommand }
}

#[test]
fn flipped_byte_in_hello_specific_errors() {
    let hello = Pair::new().hello();
    for i in 0..hello.len() {
        let mut p = Pair::new();
        let mut bad = hello.clone();
        bad[i] ^= 0xFF;
        let want = match i {
            0 => name_len_flip_error(&hello),
            1..=5 => CurveError::UnexpectedCommand,
            6..=7 => CurveError::BadVersion,
            8..=79 => CurveError::BadCommand,
            _ => CurveError::BadBox,
        };
        let (r, out) = p.server_cmd(&mut bad);
        assert_eq!(r, Err(want), "HELLO byte {i}");
        assert!(out.is_empty());
    }
}

#[test]
fn flipped_byte_in_welcome_specific_errors() {
    let welcome = Pair::new().welcome();
    for i in 0..welcome.len() {
        let mut p = Pair::new();
        p.hello();
        let mut bad = welcome.clone();
        bad[i] ^= 0xFF;
        let want = match i {
            0 => name_len_flip_error(&welcome),
            1..=7 => CurveError::UnexpectedCommand,
            _ => CurveError::BadBox,
        };
        let (r, out) = p.client_cmd(&mut bad);
        assert_eq!(r, Err(want), "WELCOME byte {i}");
        assert!(out.is_empty());
    }
    for len in [167usize, 169] {
        let mut p = Pair::new();
        p.hello();
        let mut bad = welcome.clone();
        bad.resize(len, 0);
        assert_eq!(p.client_cmd(&mut bad).0, Err(CurveError::WrongSize));
    }
}

#[test]
fn flipped_byte_in_initiate_specific_errors() {
    let initiate = Pair::new().initiate();
    for i in 0..initiate.len() {
        let mut p = Pair::new();
        p.welcome(); // same seeds → same cookie as `initiate` carries
        let mut bad = initiate.clone();
        bad[i] ^= 0xFF;
        let want = match i {
            0 => name_len_flip_error(&initiate),
            1..=8 => CurveError::UnexpectedCommand,
            9..=104 => CurveError::BadCookie,
            _ => CurveError::BadBox,
        };
        let (r, _) = p.server_cmd(&mut bad);
        assert_eq!(r, Err(want), "INITIATE byte {i}");
    }
    let mut p = Pair::new();
    p.welcome();
    let mut short = initiate[..wire::INITIATE_MIN_LEN - 1].to_vec();
    assert_eq!(p.server_cmd(&mut short).0, Err(CurveError::WrongSize));
    // The unmodified INITIATE is accepted by an identically seeded server.
    let mut p = Pair::new();
    p.welcome();
    let mut ok = initiate.clone();
    assert!(matches!(p.server_cmd(&mut ok).0, Ok(ServerStep::Initiated { .. })));
}

#[test]
fn flipped_byte_in_ready_specific_errors() {
    let ready = Pair::new().ready();
    for i in 0..ready.len() {
        let mut p = Pair::new();
        p.initiate();
        let mut bad = ready.clone();
        bad[i] ^= 0xFF;
        let want = match i {
            0 => name_len_flip_error(&ready),
            1..=5 => CurveError::UnexpectedCommand,
            _ => CurveError::BadBox,
        };
        assert_eq!(p.client_cmd(&mut bad).0, Err(want), "READY byte {i}");
        assert!(!p.client.is_ready());
    }
    let mut p = Pair::new();
    p.initiate();
    let mut short = ready[..wire::READY_MIN_LEN - 1].to_vec();
    assert_eq!(p.client_cmd(&mut short).0, Err(CurveError::WrongSize));
}

#[test]
fn flipped_byte_in_message_specific_errors() {
    let mut p = Pair::established();
    let frame = client_seal(&mut p, 0x01, b"payload");
    let msg = body_of(&frame);
    for i in 0..msg.len() {
        let mut bad = msg.clone();
        bad[i] ^= 0xFF;
        let want = match i {
            0 => name_len_flip_error(&msg),
            1..=7 => CurveError::UnexpectedCommand,
            _ => CurveError::BadBox,
        };
        assert_eq!(p.server.open_message(&mut bad), Err(want), "MESSAGE byte {i}");
    }
    let mut short = msg[..wire::MESSAGE_MIN_LEN - 1].to_vec();
    assert_eq!(p.server.open_message(&mut short), Err(CurveError::WrongSize));
    // Failed attempts did not advance the receive counter.
    let mut ok = msg.clone();
    assert_eq!(p.server.open_message(&mut ok).map(|r| r.0), Ok(0x01));
}

/// Rule 5: strictly increasing nonces; gaps allowed.
#[test]
fn message_nonce_not_increasing() {
    let mut p = Pair::established();
    let m3 = body_of(&client_seal(&mut p, 0, b"a"));
    let m4 = body_of(&client_seal(&mut p, 0, b"b"));
    assert!(p.server.open_message(&mut m4.clone()).is_ok());
    assert_eq!(p.server.open_message(&mut m3.clone()), Err(CurveError::NonceNotIncreasing));
    assert_eq!(p.server.open_message(&mut m4.clone()), Err(CurveError::NonceNotIncreasing));
    p.client.channel_mut().unwrap().send_counter().set_next(1000);
    let m1000 = body_of(&client_seal(&mut p, 0, b"c"));
    assert!(p.server.open_message(&mut m1000.clone()).is_ok(), "gap accepted");
}

/// Rule 5: a MESSAGE reflected back to its sender fails (prefixes differ).
#[test]
fn reflected_message_bad_box() {
    let mut p = Pair::established();
    let mut m = body_of(&client_seal(&mut p, 0, b"echo"));
    assert_eq!(p.client.open_message(&mut m), Err(CurveError::BadBox));
}

#[test]
fn nonce_exhaustion_refuses_to_wrap() {
    let mut p = Pair::established();
    p.client.channel_mut().unwrap().send_counter().set_next(u64::MAX);
    let last = client_seal(&mut p, 0, b"last");
    let mut out = b"keep".to_vec();
    assert_eq!(p.client.seal_frame(0, b"x", &mut out), Err(CurveError::NonceExhausted));
    assert_eq!(out, b"keep", "out untouched on error");
    assert!(p.server.open_message(&mut body_of(&last)).is_ok());
}

/// Rule 5 (handshake): replays on the same connection are unexpected.
#[test]
fn replayed_hello_and_initiate() {
    let mut p = Pair::new();
    let hello = p.hello();
    let (r, welcome1) = p.server_cmd(&mut hello.clone());
    assert_eq!(r, Ok(ServerStep::WelcomeSent));
    assert_eq!(p.server_cmd(&mut hello.clone()).0, Err(CurveError::UnexpectedCommand));

    // A replayed HELLO on a fresh connection gets a fresh WELCOME
    // (new S', cookie): harmless, the replayer cannot open it.
    let mut p2 = Pair::new();
    let mut srng = ChaCha20Rng::seed_from_u64(555);
    let mut out = Vec::new();
    let r = p2.server.handle_command(&mut hello.clone(), &p2.skeys, &p2.cookies, &mut out, &mut srng);
    assert_eq!(r, Ok(ServerStep::WelcomeSent));
    assert_ne!(out, welcome1);

    let mut p = Pair::new();
    let mut initiate = p.initiate();
    let saved = initiate.clone();
    assert!(matches!(p.server_cmd(&mut initiate).0, Ok(ServerStep::Initiated { .. })));
    assert_eq!(p.server_cmd(&mut saved.clone()).0, Err(CurveError::UnexpectedCommand));
}

/// Rule 3: a captured HELLO + INITIATE replayed on a new connection
/// while the cookie key is still valid fails: the new connection issued
/// another cookie.
#[test]
fn replayed_initiate_on_new_connection_bad_cookie() {
    let mut p = Pair::new();
    let hello = p.hello();
    let (_, welcome) = p.server_cmd(&mut hello.clone());
    let (_, initiate) = p.client_cmd(&mut body_of(&welcome));
    let initiate = body_of(&initiate);

    let mut replay = CurveServer::new();
    let mut srng = ChaCha20Rng::seed_from_u64(777);
    let mut out = Vec::new();
    let r = replay.handle_command(&mut hello.clone(), &p.skeys, &p.cookies, &mut out, &mut srng);
    assert_eq!(r, Ok(ServerStep::WelcomeSent));
    let r = replay.handle_command(&mut initiate.clone(), &p.skeys, &p.cookies, &mut out, &mut srng);
    assert_eq!(r, Err(CurveError::BadCookie));
    // Without a HELLO first, INITIATE is simply unexpected.
    let r = CurveServer::new().handle_command(&mut initiate.clone(), &p.skeys, &p.cookies, &mut out, &mut srng);
    assert_eq!(r, Err(CurveError::UnexpectedCommand));
}

/// Rule 4.
#[test]
fn initiate_after_two_rotations_cookie_expired() {
    let mut p = Pair::new();
    let mut initiate = p.initiate();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    p.cookies.rotate(&mut rng);
    p.cookies.rotate(&mut rng);
    assert_eq!(p.server_cmd(&mut initiate).0, Err(CurveError::CookieExpired));
}

#[test]
fn initiate_after_one_rotation_ok() {
    let mut p = Pair::new();
    let mut initiate = p.initiate();
    p.cookies.rotate(&mut ChaCha20Rng::seed_from_u64(1));
    assert!(matches!(p.server_cmd(&mut initiate).0, Ok(ServerStep::Initiated { .. })));
}

/// Builds an INITIATE body by hand from a WELCOME body, with a chosen
/// vouch content and signer (the client long-term key `C` in the box
/// stays `client.public`).
fn craft_initiate(
    welcome: &[u8],
    server_long: &PublicKey,
    c_prime: &SecretKey,
    client: &KeyPair,
    vouch_transient: &PublicKey,
    vouch_server: &PublicKey,
    vouch_signer: &SecretKey,
) -> Vec<u8> {
    let mut w = welcome.to_vec();
    let wn: [u8; 16] = w[8..24].try_into().unwrap();
    PrecomputedBox::new(server_long, c_prime)
        .unwrap()
        .open_box_in_place(&long_nonce(WELCOME_PREFIX, &wn), &mut w[24..])
        .unwrap();
    let s_prime = PublicKey(w[40..72].try_into().unwrap());
    let cookie = &w[72..168];
    let vn = [0x42u8; 16];
    let mut vouch = vec![0u8; 16];
    vouch.extend_from_slice(&vouch_transient.0);
    vouch.extend_from_slice(&vouch_server.0);
    PrecomputedBox::new(&s_prime, vouch_signer)
        .unwrap()
        .seal_box_in_place(&long_nonce(VOUCH_PREFIX, &vn), &mut vouch)
        .unwrap();
    let mut body = b"\x08INITIATE".to_vec();
    body.extend_from_slice(cookie);
    body.extend_from_slice(&2u64.to_be_bytes());
    let box_at = body.len();
    body.extend_from_slice(&[0; 16]);
    body.extend_from_slice(&client.public.0);
    body.extend_from_slice(&vn);
    body.extend_from_slice(&vouch);
    body.extend_from_slice(MD);
    PrecomputedBox::new(&s_prime, c_prime)
        .unwrap()
        .seal_box_in_place(&short_nonce(INITIATE_PREFIX, 2), &mut body[box_at..])
        .unwrap();
    body
}

/// Runs the vouch scenario: `f` picks (vouched C', vouched S, signer).
fn vouch_case(
    f: impl Fn(&PublicKey, &PublicKey, &KeyPair, &KeyPair) -> (PublicKey, PublicKey, SecretKey),
) -> Result<ServerStep, CurveError> {
    let mut p = Pair::new();
    let welcome = p.welcome();
    // Pair::new seeds the client RNG with 200, draws C (32 B), then c'.
    let mut crng = ChaCha20Rng::seed_from_u64(200);
    let _ = KeyPair::generate(&mut crng);
    let c_prime = SecretKey::generate(&mut crng);
    let other = KeyPair::generate(&mut ChaCha20Rng::seed_from_u64(4242));
    let (vt, vs, signer) = f(&c_prime.public_key(), &p.skeys.public, &p.ckeys, &other);
    let mut body = craft_initiate(&welcome, &p.skeys.public, &c_prime, &p.ckeys, &vt, &vs, &signer);
    p.server_cmd(&mut body).0
}

#[test]
fn vouch_crafting_helper_is_sound() {
    let r = vouch_case(|cp, s, c, _| (*cp, *s, c.secret.clone()));
    assert!(matches!(r, Ok(ServerStep::Initiated { .. })), "{r:?}");
}

/// Rule 6: the vouch must name this connection's C'.
#[test]
fn vouch_for_other_transient_bad_vouch() {
    let r = vouch_case(|_, s, c, o| (o.public, *s, c.secret.clone()));
    assert_eq!(r, Err(CurveError::BadVouch));
}

/// Rule 6: the vouch must name our S (libzmq skips this check).
#[test]
fn vouch_for_other_server_bad_vouch() {
    let r = vouch_case(|cp, _, c, o| (*cp, o.public, c.secret.clone()));
    assert_eq!(r, Err(CurveError::BadVouch));
}

/// Rule 6: the vouch must be made with the secret of the C in the box.
#[test]
fn vouch_signed_by_other_key_bad_vouch() {
    let r = vouch_case(|cp, s, _, o| (*cp, *s, o.secret.clone()));
    assert_eq!(r, Err(CurveError::BadVouch));
}

/// Rule 7: seal appends within reserved capacity (no reallocation) and
/// open decrypts inside the caller's buffer.
#[test]
fn seal_and_open_do_not_reallocate() {
    let mut p = Pair::established();
    let payload = [7u8; 1000];
    let mut out = Vec::with_capacity(CurveClient::sealed_frame_len(payload.len()));
    let (ptr, cap) = (out.as_ptr(), out.capacity());
    p.client.seal_frame(0x01, &payload, &mut out).unwrap();
    assert_eq!((out.as_ptr(), out.capacity()), (ptr, cap));
    assert_eq!(out.len(), CurveClient::sealed_frame_len(payload.len()));
    let mut body = out.split_off(9);
    let ptr = body.as_ptr();
    let (_, r) = p.server.open_message(&mut body).unwrap();
    assert_eq!(body.as_ptr(), ptr);
    assert_eq!(&body[r], &payload[..]);
    // Server READY and WELCOME sizes are announced up front too.
    assert_eq!(CurveServer::sealed_frame_len(0), 35);
    assert_eq!(CurveServer::sealed_frame_len(222), 257);
    assert_eq!(CurveServer::sealed_frame_len(223), 265);
}

#[test]
fn error_command_is_error_received() {
    let mut p = Pair::new();
    p.hello();
    let mut out = Vec::new();
    CurveServer::send_error(b"400", &mut out);
    let mut body = body_of(&out);
    assert_eq!(p.client_cmd(&mut body).0, Err(CurveError::ErrorReceived));
    assert_eq!(crate::zmtp::command::error_body_reason(&body), Some(&b"400"[..]));
    assert_eq!(p.client_cmd(&mut body).0, Err(CurveError::Failed));

    let mut p = Pair::new();
    p.initiate();
    assert_eq!(p.client_cmd(&mut body.clone()).0, Err(CurveError::ErrorReceived));
}

#[test]
fn api_misuse_is_wrong_state() {
    let mut p = Pair::new();
    let mut out = Vec::new();
    assert_eq!(p.client.seal_frame(0, b"x", &mut out), Err(CurveError::WrongState));
    assert_eq!(p.server.seal_frame(0, b"x", &mut out), Err(CurveError::WrongState));
    assert_eq!(p.server.send_ready(b"", &mut out), Err(CurveError::WrongState));
    assert_eq!(p.server.open_message(&mut [0u8; 40]), Err(CurveError::WrongState));
    p.hello();
    assert_eq!(p.client.start(&mut out), Err(CurveError::WrongState));
    assert!(out.is_empty());

    let mut p = Pair::new();
    let mut initiate = p.initiate();
    p.server_cmd(&mut initiate).0.unwrap();
    // Before READY is sent, no traffic.
    assert_eq!(p.server.seal_frame(0, b"x", &mut out), Err(CurveError::WrongState));
    p.server.send_ready(b"", &mut out).unwrap();
    assert_eq!(p.server.send_ready(b"", &mut out), Err(CurveError::WrongState));
}

#[test]
fn curve_error_display() {
    assert_eq!(CurveError::CookieExpired.to_string(), "CURVE: cookie expired");
    assert_eq!(CurveError::BadVouch.to_string(), "CURVE: invalid vouch");
}
