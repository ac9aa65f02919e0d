//! Zero allocation means zero: a counting global allocator proves that the server thread
//! allocates nothing while 100 000 messages are routed between two connected peers, after a
//! warm-up (buffers grow once to their working size, then never again).
//!
//! The router runs in the test thread, driven turn by turn; the two peers are plain blocking
//! sockets in helper threads speaking raw ZMTP (their allocations are not counted: only the
//! router thread's are).
//!
//! The result must not depend on how the machine schedules the three threads:
//!
//! * The warm-up does not end after a fixed number of messages but when every buffer on the path
//!   is at its ceiling for this traffic (`stats.buffer_bytes`): b's transmit queue at
//!   `tx-queue-bytes` (b stops reading until a is paused), a's receive buffer at
//!   `RX_BUF_BUSY_BYTES` (the router stops turning now and then, so a backlog builds up in a's
//!   socket and reads fill the buffer). Nothing on the path can grow after that.
//! * What a loaded machine does by chance — a receiver that falls behind until the sender is
//!   paused, a router thread that is descheduled while input piles up — the measured phase does
//!   on purpose, on every run, so those paths are proven allocation-free rather than hoped
//!   absent.
//! * `send-stall-ms` is set beyond the test's deadline: whether a starved receiver thread drains
//!   its queue within 2 s is a matter of machine load, and the error-11 path it would take (a
//!   reply queued to a sender that never reads) is not the steady state this test is about.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mio::Events;
use viprouter::limits::{Limits, RX_BUF_BUSY_BYTES, RX_BUF_MIN_BYTES, TX_BUF_MIN_BYTES};
use viprouter::server::event_loop::Server;
use viprouter::zmtp::command;
use viprouter::zmtp::greeting;
use viprouter::zmtp::mechanism::Mechanism;
use viprouter::zmtp::mechanism::curve::{CookieKeys, CurveClient, KeyPair, PublicKey, Traffic};
use viprouter::zmtp::session::CurveContext;

mod common;
use common::server::{frames, read_frame};

#[path = "common/alloc_counter.rs"]
mod alloc_counter;
use alloc_counter::{allocations, count_here, first, reset};
#[path = "common/warm_up.rs"]
mod warm_up;
use warm_up::NAP;

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

/// Turn the loop until `done(server)`; fail with `what` at `deadline`.
fn turn_until(
    server: &mut Server,
    events: &mut Events,
    deadline: Instant,
    what: &str,
    mut done: impl FnMut(&Server) -> bool,
) {
    while !done(server) {
        server.run_once(events).unwrap();
        assert!(Instant::now() < deadline, "{what} ({:?})", server.stats());
    }
}

fn route_and_count(mechanism: Mechanism) {
    const WARMUP: u64 = 20_000;
    const MEASURED: u64 = 100_000;
    // More than the router routes in this test: the phases where b does not read take however
    // many messages fill b's queue and socket buffers.
    let total = 8 * (WARMUP + MEASURED);
    reset();

    let mut limits = Limits::COMPILED;
    // Never answer error 11 because a thread was starved (see the module doc).
    limits.send_stall_ms = 24 * 3600 * 1000;
    let tx_queue_bytes = limits.tx_queue_bytes;
    let (mut server, port) = common::server::server(limits, mechanism);
    let mut server_key = None;
    if mechanism == Mechanism::Curve {
        let keys = KeyPair::generate(&mut rand_core::OsRng);
        server_key = Some(keys.public);
        server.set_curve(CurveContext { keys, cookies: CookieKeys::new(&mut rand_core::OsRng) });
        server.set_authorize(Box::new(|_| true));
    }
    let key_b = server_key;

    let done = Arc::new(AtomicBool::new(false));
    // Receiver b reads and discards everything until told to stop, except while `hold` is set
    // (at the start, and once in the measured phase): then its queue fills and a is paused.
    let hold = Arc::new(AtomicBool::new(true));
    let done_b = done.clone();
    let hold_b = hold.clone();
    let receiver = thread::spawn(move || {
        let mut p = connect(port, b"b", key_b);
        let mut s = p.stream.try_clone().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
        let _keep = &mut p;
        while !done_b.load(Ordering::Relaxed) {
            if hold_b.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(1));
                continue;
            }
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
        thread::sleep(Duration::from_millis(200));
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
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let _ = s.read(&mut drain);
        s
    });

    let mut events = Events::with_capacity(1024);
    let deadline = Instant::now() + Duration::from_secs(300);
    let paused = |server: &Server| server.stats().paused_sender;
    let routed = |server: &Server| server.stats().routed;
    // Warm-up 1: b does not read until its queue is full and a is paused: b's transmit queue is
    // at its ceiling.
    turn_until(&mut server, &mut events, deadline, "b's queue never filled", |s| paused(s) > 0);
    hold.store(false, Ordering::Relaxed);
    // Warm-up 2: steady flow until WARMUP more messages are routed and every buffer on the path
    // is at its ceiling for this traffic: a's receive buffer at RX_BUF_BUSY_BYTES (grown by
    // reads that fill it), b's queue at tx-queue-bytes, the other two at their initial size.
    let ceiling = (RX_BUF_BUSY_BYTES + TX_BUF_MIN_BYTES + RX_BUF_MIN_BYTES + tx_queue_bytes) as u64;
    let resumed_at = routed(&server);
    let warm = |s: &Server| routed(s) >= resumed_at + WARMUP;
    warm_up::to_ceiling(&mut server, &mut events, deadline, ceiling, warm, |_| {});

    let start = routed(&server);
    let paused_before = paused(&server);
    count_here(true);
    // A third of the messages in steady flow; then b falls behind until a is paused, and
    // catches up again.
    turn_until(&mut server, &mut events, deadline, "measured phase", |s| routed(s) >= start + MEASURED / 3);
    hold.store(true, Ordering::Relaxed);
    turn_until(&mut server, &mut events, deadline, "b's queue did not fill", |s| paused(s) > paused_before);
    hold.store(false, Ordering::Relaxed);
    // Another third; then the router thread is "descheduled" while a keeps sending.
    turn_until(&mut server, &mut events, deadline, "measured phase", |s| routed(s) >= start + 2 * MEASURED / 3);
    thread::sleep(NAP);
    turn_until(&mut server, &mut events, deadline, "measured phase", |s| routed(s) >= start + MEASURED);
    count_here(false);
    let routed = routed(&server) - start;
    let allocations = allocations();
    let stats = server.stats().clone();

    // Stop: closing the router's sockets ends the sender's writes and the receiver's reads.
    done.store(true, Ordering::Relaxed);
    drop(server);
    let _ = sender.join();
    let received = receiver.join().unwrap();

    assert!(routed >= MEASURED, "every message routed ({routed} of {MEASURED}; {stats:?})");
    assert_eq!(stats.errors_again, 0, "no message was refused");
    assert!(received > 0);
    assert_eq!(
        allocations,
        0,
        "allocations while routing {MEASURED} {mechanism:?} messages (the first: {:?} bytes, old → new)",
        first()
    );

    // The counter itself works: an allocation in this thread is seen.
    count_here(true);
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
    count_here(false);
    drop(v);
    assert_eq!(alloc_counter::allocations(), 1, "the counting allocator counts");
    reset();
}
