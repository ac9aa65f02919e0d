//! CURVE interop with libzmq through pyzmq (ZMTP.md §2.3, §7.11).
//!
//! * `pyzmq_router_accepts_our_curve_client`: a pyzmq ROUTER (CURVE server)
//!   and our `CurveClient` over a std `TcpStream`: greeting, handshake, a
//!   2-frame message and a 2-frame reply. A client with the wrong server key
//!   is dropped by libzmq without WELCOME.
//! * `pyzmq_dealer_handshakes_with_our_curve_server`: a pyzmq DEALER (CURVE
//!   client) against our `CurveServer` over a std `TcpListener`, 3-frame VIP
//!   style message and reply.
//!
//! Skipped, with a printed reason, when python3 cannot `import zmq` with
//! CURVE support — unless `VIPROUTER_REQUIRE_PYZMQ=1` (the Makefile sets it, after
//! `make venv`): then a missing pyzmq fails the test instead of passing it unseen.
//! The interpreter is `$VIPROUTER_PYTHON`, else `.venv/bin/python` in the package
//! root, else `python3`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use viprouter::zmtp::mechanism::curve::{
    ClientStep, CookieKeys, CurveClient, CurveError, CurveServer, KeyPair, PublicKey, SecretKey, ServerStep, Traffic,
};

const SERVER_SECRET: &str = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
const SERVER_PUBLIC: &str = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
const CLIENT_SECRET: &str = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs";
const CLIENT_PUBLIC: &str = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
const TIMEOUT: Duration = Duration::from_secs(10);

fn python() -> Option<String> {
    let candidates = [
        std::env::var("VIPROUTER_PYTHON").ok(),
        Some(format!("{}/.venv/bin/python", env!("CARGO_MANIFEST_DIR"))).filter(|p| Path::new(p).exists()),
        Some("python3".to_string()),
    ];
    for py in candidates.into_iter().flatten() {
        let ok = Command::new(&py)
            .args(["-c", "import zmq, sys; sys.exit(0 if zmq.has('curve') else 1)"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Some(py);
        }
    }
    None
}

/// The interpreter with pyzmq, or `None` to skip; a failure when pyzmq is required.
fn python_or_skip() -> Option<String> {
    let py = python();
    let required = std::env::var("VIPROUTER_REQUIRE_PYZMQ").is_ok_and(|v| v == "1");
    assert!(
        py.is_some() || !required,
        "VIPROUTER_REQUIRE_PYZMQ=1 but no python3 with pyzmq (CURVE) was found: run `make venv`"
    );
    if py.is_none() {
        println!("skipping pyzmq interop: python3 with pyzmq (CURVE) not available");
    }
    py
}

/// Kills the child if the test panics.
struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn greeting(as_server: bool) -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[11] = 1;
    g[12..17].copy_from_slice(b"CURVE");
    g[32] = u8::from(as_server);
    g
}

/// Checks only what ZMTP.md §15 item 2 allows: libzmq sends as-server = 0
/// even as a CURVE server, and pads with identity length + 1.
fn check_peer_greeting(g: &[u8; 64]) {
    assert_eq!(g[0], 0xff);
    assert_eq!(g[9] & 1, 1);
    assert!(g[10] >= 3);
    assert_eq!(&g[12..32], b"CURVE\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
}

/// Reads one ZMTP frame: (flags, body).
fn read_frame(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut flags = [0u8; 1];
    s.read_exact(&mut flags)?;
    let len = if flags[0] & 0x02 != 0 {
        let mut l = [0u8; 8];
        s.read_exact(&mut l)?;
        u64::from_be_bytes(l)
    } else {
        let mut l = [0u8; 1];
        s.read_exact(&mut l)?;
        u64::from(l[0])
    };
    assert!(len < 1 << 20, "frame too large for this test");
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body)?;
    Ok((flags[0], body))
}

fn prop(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

/// Reads MESSAGE frames until one without MORE; skips inner commands.
fn read_message(
    s: &mut TcpStream,
    mut open: impl FnMut(&mut [u8]) -> Result<(u8, std::ops::Range<usize>), CurveError>,
) -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    loop {
        let (flags, mut body) = read_frame(s).unwrap();
        assert_eq!(flags & 0x05, 0, "outer frame never MORE/COMMAND under CURVE");
        let (inner, range) = open(&mut body).unwrap();
        if inner & 0x02 != 0 {
            continue; // PING/PONG etc.
        }
        parts.push(body[range].to_vec());
        if inner & 0x01 == 0 {
            return parts;
        }
    }
}

const ROUTER_PY: &str = r#"
import sys, zmq
ctx = zmq.Context()
r = ctx.socket(zmq.ROUTER)
r.curve_server = True
r.curve_secretkey = sys.argv[1].encode()
r.rcvtimeo = 10000
r.linger = 0
port = r.bind_to_random_port("tcp://127.0.0.1")
print("PORT", port, flush=True)
frames = r.recv_multipart()
print("GOT", " ".join(f.hex() for f in frames), flush=True)
r.send_multipart([frames[0], b"ok", b"reply-" + frames[2]])
import time; time.sleep(0.5)
"#;

#[test]
fn pyzmq_router_accepts_our_curve_client() {
    let Some(py) = python_or_skip() else { return };
    let child = Command::new(&py).args(["-c", ROUTER_PY, SERVER_SECRET]).stdout(Stdio::piped()).spawn().unwrap();
    let mut child = Reaper(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port: u16 = first.strip_prefix("PORT ").unwrap().parse().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let client_keys = KeyPair::from_secret(SecretKey::from_z85(CLIENT_SECRET.as_bytes()).unwrap());

    // 1. Wrong server key: libzmq cannot open HELLO and drops the connection.
    {
        let wrong = KeyPair::generate(&mut rng).public;
        let mut client = CurveClient::new(wrong, client_keys.clone(), &mut rng).unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(&greeting(false)).unwrap();
        let mut g = [0u8; 64];
        s.read_exact(&mut g).unwrap();
        check_peer_greeting(&g);
        let mut out = Vec::new();
        client.start(&mut out).unwrap();
        s.write_all(&out).unwrap();
        let mut buf = [0u8; 1];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("expected close after bad HELLO, got {other:?}"),
        }
    }

    // 2. Correct key: full handshake and a 2-frame message each way.
    let server_key = PublicKey::from_z85(SERVER_PUBLIC.as_bytes()).unwrap();
    let mut client = CurveClient::new(server_key, client_keys, &mut rng).unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(&greeting(false)).unwrap();
    let mut g = [0u8; 64];
    s.read_exact(&mut g).unwrap();
    check_peer_greeting(&g);

    let mut out = Vec::new();
    client.start(&mut out).unwrap();
    s.write_all(&out).unwrap();
    let (flags, mut welcome) = read_frame(&mut s).unwrap();
    assert_eq!((flags, welcome.len()), (0x04, 168));
    let mut md = Vec::new();
    prop(&mut md, "Socket-Type", b"DEALER");
    prop(&mut md, "Identity", b"agent1");
    out.clear();
    let step = client.handle_command(&mut welcome, &md, &mut out, &mut rng);
    assert_eq!(step, Ok(ClientStep::InitiateSent));
    s.write_all(&out).unwrap();
    let (flags, mut ready) = read_frame(&mut s).unwrap();
    assert_eq!(flags, 0x04);
    let step = client.handle_command(&mut ready, &[], &mut Vec::new(), &mut rng).unwrap();
    let ClientStep::Ready { metadata } = step else { panic!("{step:?}") };
    let mut router_md = Vec::new();
    prop(&mut router_md, "Socket-Type", b"ROUTER");
    assert!(ready[metadata].starts_with(&router_md), "Socket-Type=ROUTER first in READY");

    out.clear();
    client.seal_frame(0x01, b"hello", &mut out).unwrap();
    client.seal_frame(0x00, b"world", &mut out).unwrap();
    s.write_all(&out).unwrap();

    let got = lines.next().unwrap().unwrap();
    assert_eq!(got, format!("GOT {} {} {}", hex::encode("agent1"), hex::encode("hello"), hex::encode("world")));
    let reply = read_message(&mut s, |b| client.open_message(b));
    assert_eq!(reply, vec![b"ok".to_vec(), b"reply-world".to_vec()]);
}

const DEALER_PY: &str = r#"
import sys, zmq
ctx = zmq.Context()
d = ctx.socket(zmq.DEALER)
d.curve_serverkey = sys.argv[2].encode()
d.curve_secretkey = sys.argv[3].encode()
d.curve_publickey = sys.argv[4].encode()
d.identity = b"agent1"
d.rcvtimeo = 10000
d.linger = 0
d.connect("tcp://127.0.0.1:" + sys.argv[1])
d.send_multipart([b"", b"VIP1", b"x" * 300])
frames = d.recv_multipart()
print("GOT", " ".join(f.hex() for f in frames), flush=True)
"#;

#[test]
fn pyzmq_dealer_handshakes_with_our_curve_server() {
    let Some(py) = python_or_skip() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let child = Command::new(&py)
        .args(["-c", DEALER_PY, &port, SERVER_PUBLIC, CLIENT_SECRET, CLIENT_PUBLIC])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaper(child);
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(&greeting(true)).unwrap();
    let mut g = [0u8; 64];
    s.read_exact(&mut g).unwrap();
    check_peer_greeting(&g);

    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let keys = KeyPair::from_secret(SecretKey::from_z85(SERVER_SECRET.as_bytes()).unwrap());
    let cookies = CookieKeys::new(&mut rng);
    let mut server = CurveServer::new();
    let mut out = Vec::new();

    let (flags, mut hello) = read_frame(&mut s).unwrap();
    assert_eq!((flags, hello.len()), (0x04, 200));
    let step = server.handle_command(&mut hello, &keys, &cookies, &mut out, &mut rng);
    assert_eq!(step, Ok(ServerStep::WelcomeSent));
    s.write_all(&out).unwrap();

    let (flags, mut initiate) = read_frame(&mut s).unwrap();
    assert_eq!(flags & 0x04, 0x04);
    out.clear();
    let step = server.handle_command(&mut initiate, &keys, &cookies, &mut out, &mut rng).unwrap();
    let ServerStep::Initiated { client_key, metadata } = step else { panic!("{step:?}") };
    assert_eq!(client_key, PublicKey::from_z85(CLIENT_PUBLIC.as_bytes()).unwrap());
    let mut want_md = Vec::new();
    prop(&mut want_md, "Socket-Type", b"DEALER");
    prop(&mut want_md, "Identity", b"agent1");
    assert_eq!(&initiate[metadata], &want_md[..]);

    let mut md = Vec::new();
    prop(&mut md, "Socket-Type", b"ROUTER");
    prop(&mut md, "Identity", b"");
    server.send_ready(&md, &mut out).unwrap();
    s.write_all(&out).unwrap();

    let msg = read_message(&mut s, |b| server.open_message(b));
    assert_eq!(msg, vec![b"".to_vec(), b"VIP1".to_vec(), vec![b'x'; 300]]);

    out.clear();
    server.seal_frame(0x01, b"", &mut out).unwrap();
    server.seal_frame(0x01, b"VIP1", &mut out).unwrap();
    server.seal_frame(0x00, &[b'y'; 300], &mut out).unwrap();
    s.write_all(&out).unwrap();

    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let got = lines.next().unwrap().unwrap();
    assert_eq!(got, format!("GOT  {} {}", hex::encode("VIP1"), hex::encode([b'y'; 300])));
    assert!(child.0.wait().unwrap().success());
}
