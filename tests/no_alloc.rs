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

/// Connect, greet, READY with `identity`, say hello.
fn connect(port: u16, identity: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut hello = greeting::emit(Mechanism::Null, false).to_vec();
    command::emit_ready(b"DEALER", identity, &mut hello);
    hello.extend_from_slice(&frames(&[b"", b"VIP1", b"", b"h", b"hello", b"hello"]));
    s.write_all(&hello).unwrap();
    s
}

#[test]
fn routing_allocates_nothing_in_steady_state() {
    const WARMUP: u64 = 20_000;
    const MEASURED: u64 = 100_000;
    let total = WARMUP + MEASURED;

    let listeners = listener::bind("tcp://127.0.0.1:0", Mechanism::Null).unwrap();
    let port: u16 = listeners[0].endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let limits = Limits::COMPILED;
    let router = Router::new(&limits, PlatformInfo::with_router_id(b"rid"), 1);
    let mut server = Server::new(listeners, router, limits, b"rid".to_vec()).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    // Receiver b: reads and discards everything until told to stop.
    let done_b = done.clone();
    let receiver = thread::spawn(move || {
        let mut s = connect(port, b"b");
        s.set_read_timeout(Some(std::time::Duration::from_millis(50))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
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
        let mut s = connect(port, b"a");
        thread::sleep(std::time::Duration::from_millis(200));
        let payload = [b'B'; 256];
        let one = frames(&[b"b", b"VIP1", b"", b"m00000001", b"RPC", &payload]);
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 100).collect();
        let mut drain = [0u8; 4096];
        s.set_nonblocking(false).unwrap();
        for _ in 0..total / 100 {
            s.write_all(&batch).unwrap();
        }
        // keep the connection open until the router has routed everything
        s.set_read_timeout(Some(std::time::Duration::from_millis(50))).unwrap();
        let _ = s.read(&mut drain);
        s
    });

    let mut events = Events::with_capacity(1024);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while server.router.stats.routed < WARMUP {
        server.turn(&mut events).unwrap();
        assert!(std::time::Instant::now() < deadline, "warm-up did not finish");
    }
    COUNT_HERE.with(|c| c.set(true));
    while server.router.stats.routed < total {
        server.turn(&mut events).unwrap();
        if std::time::Instant::now() > deadline {
            break;
        }
    }
    COUNT_HERE.with(|c| c.set(false));
    let routed = server.router.stats.routed;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);

    done.store(true, Ordering::Relaxed);
    let _keep = sender.join().unwrap();
    // Let the receiver finish reading, then stop it.
    for _ in 0..20 {
        server.turn(&mut events).unwrap();
    }
    let received = receiver.join().unwrap();

    assert_eq!(routed, total, "every message routed (errors: {:?})", server.router.stats);
    assert_eq!(server.router.stats.errors_again, 0);
    assert!(received > 0);
    assert_eq!(allocations, 0, "allocations while routing {MEASURED} messages");

    // The counter itself works: an allocation in this thread is seen.
    COUNT_HERE.with(|c| c.set(true));
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
    COUNT_HERE.with(|c| c.set(false));
    drop(v);
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 1, "the counting allocator counts");
}
