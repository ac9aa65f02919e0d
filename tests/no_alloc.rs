//! Zero allocation means zero: a counting global allocator proves that the server thread
//! allocates nothing while 100 000 messages are routed between two connected peers, after a
//! warm-up (buffers grow once to their working size, then never again).
//!
//! The router runs in the test thread, driven turn by turn; the two peers are plain blocking
//! sockets in helper threads speaking raw ZMTP (their allocations are not counted: only the
//! router thread's are).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use mio::Events;
use viprouter::limits::Limits;
use viprouter::server::event_loop::Server;
use viprouter::server::listener;
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::Router;
use viprouter::zmtp::command;
use viprouter::zmtp::frame::{FLAG_MORE, FrameHeader};
use viprouter::zmtp::greeting;
use viprouter::zmtp::mechanism::Mechanism;
use viprouter::zmtp::mechanism::curve::{CookieKeys, CurveClient, KeyPair, PublicKey};
use viprouter::zmtp::session::CurveContext;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNT_HERE: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNT_HERE.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNT_HERE.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn frames(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        FrameHeader::emit_frame(if i + 1 < parts.len() { FLAG_MORE } else { 0 }, p, &mut out);
    }
    out
}

/// One whole frame body from a blocking stream (test peer side; allocates freely).
fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let size = if h[0] & 0x02 != 0 {
        let mut rest = [0u8; 7];
        s.read_exact(&mut rest).unwrap();
        let mut be = [0u8; 8];
        be[0] = h[1];
        be[1..].copy_from_slice(&rest);
        u64::from_be_bytes(be) as usize
    } else {
        h[1] as usize
    };
    let mut body = vec![0u8; size];
    s.read_exact(&mut body).unwrap();
    body
}

/// A connected test peer: the stream and, under CURVE, its client channel.
struct Peer {
    stream: TcpStream,
    curve: Option<CurveClient>,
}

impl Peer {
    /// Encode one multipart message (sealed under CURVE).
    fn encode(&mut self, parts: &[&[u8]]) -> Vec<u8> {
        match &mut self.curve {
            None => frames(parts),
            Some(c) => {
                let mut out = Vec::new();
                for (i, p) in parts.iter().enumerate() {
                    c.seal_frame(if i + 1 < parts.len() { 1 } else { 0 }, p, &mut out).unwrap();
                }
                out
            }
        }
    }
}

/// Connect, greet, handshake (NULL READY, or CURVE as a libzmq client would), say hello.
fn connect(port: u16, identity: &[u8], server_key: Option<PublicKey>) -> Peer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut props = Vec::new();
    command::socket_metadata(b"DEALER", identity, &mut props);
    let curve = match server_key {
        None => {
            let mut hello = greeting::emit(Mechanism::Null, false).to_vec();
            command::emit_ready(b"DEALER", identity, &mut hello);
            s.write_all(&hello).unwrap();
            None
        }
        Some(key) => {
            let mut rng = rand_core::OsRng;
            let mut c = CurveClient::new(key, KeyPair::generate(&mut rng), &mut rng).unwrap();
            let mut out = greeting::emit(Mechanism::Curve, false).to_vec();
            c.start(&mut out).unwrap();
            s.write_all(&out).unwrap();
            let mut g = [0u8; 64];
            s.read_exact(&mut g).unwrap();
            loop {
                let mut body = read_frame(&mut s);
                let mut out = Vec::new();
                match c.handle_command(&mut body, &props, &mut out, &mut rng).unwrap() {
                    viprouter::zmtp::mechanism::curve::ClientStep::InitiateSent => s.write_all(&out).unwrap(),
                    viprouter::zmtp::mechanism::curve::ClientStep::Ready { .. } => break,
                }
            }
            Some(c)
        }
    };
    let mut p = Peer { stream: s, curve };
    let hello = p.encode(&[b"", b"VIP1", b"", b"h", b"hello", b"hello"]);
    p.stream.write_all(&hello).unwrap();
    p
}

/// Both tests count allocations in a process-wide counter: run them one after the other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn routing_allocates_nothing_in_steady_state() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    route_and_count(Mechanism::Null);
}

#[test]
fn curve_routing_allocates_nothing_in_steady_state() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    route_and_count(Mechanism::Curve);
}

fn route_and_count(mechanism: Mechanism) {
    const WARMUP: u64 = 20_000;
    const MEASURED: u64 = 100_000;
    // More than the router routes in this test: the first phase (b not reading) takes however
    // many messages fill b's queue and socket buffers.
    let total = 4 * (WARMUP + MEASURED);
    ALLOCATIONS.store(0, Ordering::Relaxed);

    let listeners = listener::bind("tcp://127.0.0.1:0", mechanism).unwrap();
    let port: u16 = listeners[0].endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let limits = Limits::COMPILED;
    let router = Router::new(&limits, PlatformInfo::with_router_id(b"rid"), 1);
    let mut server = Server::new(listeners, router, limits, b"rid".to_vec()).unwrap();
    let mut server_key = None;
    if mechanism == Mechanism::Curve {
        let keys = KeyPair::generate(&mut rand_core::OsRng);
        server_key = Some(keys.public.clone());
        server.set_curve(CurveContext { keys, cookies: CookieKeys::new(&mut rand_core::OsRng) });
        server.set_authorize(Box::new(|_| true));
    }
    let key_b = server_key.clone();

    let done = Arc::new(AtomicBool::new(false));
    let go = Arc::new(AtomicBool::new(false));
    // Receiver b: does not read until told to (so that its queue fills once during warm-up and
    // every buffer reaches its working size), then reads and discards everything until told
    // to stop.
    let done_b = done.clone();
    let go_b = go.clone();
    let receiver = thread::spawn(move || {
        let mut p = connect(port, b"b", key_b);
        let mut s = p.stream.try_clone().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_millis(50))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
        let _keep = &mut p;
        while !go_b.load(Ordering::Relaxed) && !done_b.load(Ordering::Relaxed) {
            thread::sleep(std::time::Duration::from_millis(1));
        }
        while !done_b.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n as u64,
                Err(_) => {}
            }
        }
        got
    });
    // Sender a: waits a moment for b's hello, then streams `total` messages to b.
    let sender = thread::spawn(move || {
        let mut p = connect(port, b"a", server_key);
        thread::sleep(std::time::Duration::from_millis(200));
        let payload = [b'B'; 256];
        let mut drain = [0u8; 4096];
        for _ in 0..total / 100 {
            // CURVE nonces must increase, so every message is sealed anew.
            let mut batch = Vec::new();
            for _ in 0..100 {
                batch.extend(p.encode(&[b"b", b"VIP1", b"", b"m00000001", b"RPC", &payload]));
            }
            if p.stream.write_all(&batch).is_err() {
                break; // the test is over and the router gone
            }
        }
        let mut s = p.stream;
        // keep the connection open until the router has routed everything
        s.set_read_timeout(Some(std::time::Duration::from_millis(50))).unwrap();
        let _ = s.read(&mut drain);
        s
    });

    let mut events = Events::with_capacity(1024);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    // Warm-up 1: b does not read until its queue is full and a is paused (well within the
    // stall time): every buffer on the path has then grown to its largest size.
    while server.router.stats.paused_sender == 0 {
        server.turn(&mut events).unwrap();
        assert!(std::time::Instant::now() < deadline, "b's queue never filled");
    }
    go.store(true, Ordering::Relaxed);
    // Warm-up 2: steady flow.
    let resumed_at = server.router.stats.routed;
    while server.router.stats.routed < resumed_at + WARMUP {
        server.turn(&mut events).unwrap();
        assert!(std::time::Instant::now() < deadline, "warm-up did not finish");
    }
    let start = server.router.stats.routed;
    COUNT_HERE.with(|c| c.set(true));
    while server.router.stats.routed < start + MEASURED {
        server.turn(&mut events).unwrap();
        if std::time::Instant::now() > deadline {
            break;
        }
    }
    COUNT_HERE.with(|c| c.set(false));
    let routed = server.router.stats.routed - start;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let stats = server.router.stats.clone();

    // Stop: closing the router's sockets ends the sender's writes and the receiver's reads.
    done.store(true, Ordering::Relaxed);
    drop(server);
    let _ = sender.join();
    let received = receiver.join().unwrap();

    assert!(routed >= MEASURED, "every message routed ({routed} of {MEASURED}; {stats:?})");
    assert_eq!(stats.errors_again, 0, "no message was refused");
    assert!(received > 0);
    assert_eq!(allocations, 0, "allocations while routing {MEASURED} {mechanism:?} messages");

    // The counter itself works: an allocation in this thread is seen.
    COUNT_HERE.with(|c| c.set(true));
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
    COUNT_HERE.with(|c| c.set(false));
    drop(v);
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 1, "the counting allocator counts");
    ALLOCATIONS.store(0, Ordering::Relaxed);
}
