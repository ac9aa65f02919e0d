//! Zero allocation on a real link (issue #14 deliverable 5): the router p1 runs in the test
//! thread, counted by a global allocator; it dials the router p2 (another `Server`, in its own
//! thread, not counted) over TCP as a CURVE DEALER, and p2 dials it back, exactly as two
//! platforms link. Agents are raw NULL ZMTP peers on blocking sockets in helper threads.
//!
//! Each round, in lock step (every message waits for its answer, so no read ever fills a
//! receive buffer and nothing can grow by chance):
//!
//! * p1's agent publishes on `devices/…`; p2's subscriber holds an `all_platforms` subscription,
//!   so p1 answers the count and forwards an `external_publish` on its link (CURVE-sealed into
//!   the link's transmit queue), which p2 delivers;
//! * p1's agent calls `send_platform` to p2 with a 1 KiB argument; p1 rewrites it onto the link as
//!   `send_peer`; p2's callee answers with its own `send_platform`, which arrives at p1 from p2's
//!   link (an accepted CURVE peer) as `send_peer` and is delivered to the caller.
//!
//! After a warm-up, p1's thread must allocate nothing over the measured rounds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mio::Events;
use viprouter::limits::Limits;
use viprouter::server::event_loop::Server;
use viprouter::server::listener::{self, Listener};
use viprouter::vip::discovery::Discovery;
use viprouter::vip::links::{LinkConfig, LinkState};
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::Router;
use viprouter::zmtp::mechanism::Mechanism;
use viprouter::zmtp::mechanism::curve::{CookieKeys, KeyPair, PublicKey};
use viprouter::zmtp::session::CurveContext;

mod common;
use common::server::{frames, handshake, port_of, read_frame};

#[path = "common/alloc_counter.rs"]
mod alloc_counter;
use alloc_counter::{allocations, count_here, first};

const WARM_UP: u64 = 1_000;
const ROUNDS: u64 = 10_000;

/// A platform's router: a NULL endpoint for its agents, a CURVE endpoint for links.
fn platform(name: &str, keys: &KeyPair) -> (Server, u16, u16) {
    let mut listeners: Vec<Listener> = listener::bind("tcp://127.0.0.1:0", Mechanism::Null).unwrap();
    listeners.extend(listener::bind("tcp://127.0.0.1:0", Mechanism::Curve).unwrap());
    let (agents, links) = (port_of(&listeners[..1]), port_of(&listeners[1..]));
    let mut info = PlatformInfo::with_router_id(name.as_bytes());
    info.instance_name = name.as_bytes().to_vec();
    let limits = Limits { max_connections: 64, max_links: 4, ..Limits::COMPILED };
    let router = Router::new(&limits, info, 9);
    let mut server = Server::new(listeners, router, limits, name.as_bytes().to_vec()).unwrap();
    server.set_curve(CurveContext { keys: keys.clone(), cookies: CookieKeys::new(&mut rand_core::OsRng) });
    server.set_authorize(Box::new(|_| true));
    server.set_link_keys(keys.clone());
    (server, agents, links)
}

/// Link `server` to platform `name` at `port` (server key `key`).
fn link(server: &mut Server, name: &str, port: u16, key: &PublicKey) {
    let entry = LinkConfig {
        instance_name: name.as_bytes().to_vec(),
        vip_address: format!("tcp://127.0.0.1:{port}"),
        serverkey: key.0,
    };
    server.set_file_links(&Discovery { entries: vec![entry], skipped: Vec::new() });
}

/// A raw NULL agent on a blocking socket.
struct Agent {
    s: TcpStream,
}

impl Agent {
    fn connect(port: u16, identity: &[u8]) -> Agent {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(&handshake(identity)).unwrap();
        let mut greeting = [0u8; 64];
        s.read_exact(&mut greeting).unwrap();
        let _ready = read_frame(&mut s);
        let mut a = Agent { s };
        a.send(&[b"", b"VIP1", b"", b"h", b"hello", b"hello"]);
        a.recv_until(|m| m[4] == b"hello");
        a
    }

    fn send(&mut self, parts: &[&[u8]]) {
        self.s.write_all(&frames(parts)).unwrap();
    }

    /// One message (command frames skipped).
    fn recv(&mut self) -> Vec<Vec<u8>> {
        let mut msg = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.s.read_exact(&mut h).unwrap();
            let size = if h[0] & 0x02 != 0 {
                let mut rest = [0u8; 7];
                self.s.read_exact(&mut rest).unwrap();
                let mut be = [0u8; 8];
                be[0] = h[1];
                be[1..].copy_from_slice(&rest);
                u64::from_be_bytes(be) as usize
            } else {
                usize::from(h[1])
            };
            let mut body = vec![0u8; size];
            self.s.read_exact(&mut body).unwrap();
            if h[0] & 0x04 != 0 {
                continue;
            }
            msg.push(body);
            if h[0] & 0x01 == 0 {
                return msg;
            }
        }
    }

    /// Hand every message to `on` until `stop` is set or the router closes the connection.
    fn serve(&mut self, stop: &AtomicBool, mut on: impl FnMut(&mut Agent, Vec<Vec<u8>>)) {
        self.s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        while !stop.load(Ordering::Relaxed) {
            match self.s.peek(&mut [0u8; 1]) {
                Ok(0) => break,     // p2 closed at the end of the test
                Ok(_) => {}         // a message is coming
                Err(_) => continue, // read timeout: look at the stop flag again
            }
            let m = self.recv();
            on(self, m);
        }
    }

    /// Messages until one satisfies `pred` (peerlist notices and the like are skipped).
    fn recv_until(&mut self, pred: impl Fn(&Vec<Vec<u8>>) -> bool) -> Vec<Vec<u8>> {
        loop {
            let m = self.recv();
            if m.len() > 4 && pred(&m) {
                return m;
            }
        }
    }
}

fn turn(server: &mut Server, events: &mut Events) {
    server.poll(events, Some(Duration::from_millis(1))).unwrap();
    let now = server.now();
    assert!(server.turn(events, now).is_none());
}

#[test]
fn a_real_link_carries_external_publish_and_rpc_without_allocating() {
    let (k1, k2) = (KeyPair::generate(&mut rand_core::OsRng), KeyPair::generate(&mut rand_core::OsRng));
    let (mut p1, p1_agents, p1_links) = platform("p1", &k1);
    let mut events = Events::with_capacity(256);
    let stop = Arc::new(AtomicBool::new(false));

    // p2 in its own thread: it links back to p1 and serves the subscriber and the callee.
    let (to_test, from_p2) = mpsc::channel();
    let (stop2, k1_pub, k2c) = (stop.clone(), k1.public, k2.clone());
    let p2_thread = thread::spawn(move || {
        let (mut p2, agents, links) = platform("p2", &k2c);
        link(&mut p2, "p1", p1_links, &k1_pub);
        to_test.send((agents, links)).unwrap();
        let mut events = Events::with_capacity(256);
        while !stop2.load(Ordering::Relaxed) {
            turn(&mut p2, &mut events);
        }
    });
    let (p2_agents, p2_links) = from_p2.recv().unwrap();
    link(&mut p1, "p2", p2_links, &k2.public);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p1.router.links.by_name(b"p2").map(|l| l.state()) != Some(LinkState::Up) {
        turn(&mut p1, &mut events);
        assert!(Instant::now() < deadline, "p1's link to p2 did not come up");
    }

    // p2's agents: a subscriber to every platform's devices/, a callee answering over the link.
    let delivered = Arc::new(AtomicU64::new(0));
    let (sub_stop, sub_count) = (stop.clone(), delivered.clone());
    let subscriber = thread::spawn(move || {
        let mut a = Agent::connect(p2_agents, b"sub2");
        let sub = br#"{"prefix": "devices/", "bus": "", "all_platforms": true}"#;
        a.send(&[b"", b"VIP1", b"", b"s", b"pubsub", b"subscribe", sub]);
        a.serve(&sub_stop, |_, m| {
            if m.get(5).is_some_and(|f| f == b"publish") {
                sub_count.fetch_add(1, Ordering::Relaxed);
            }
        });
    });
    let callee_stop = stop.clone();
    let callee = thread::spawn(move || {
        let mut a = Agent::connect(p2_agents, b"callee2");
        let back = format!(
            r#"{{"to_platform": "p1", "to_peer": "caller1", "from_platform": "", "from_peer": "", "args": ["{}"]}}"#,
            "y".repeat(1024)
        );
        a.serve(&callee_stop, |a, m| {
            if m.get(5).is_some_and(|f| f == b"send_peer") {
                a.send(&[b"", b"VIP1", b"", &m[3], b"external_rpc", b"send_platform", back.as_bytes()]);
            }
        });
    });

    // p1's agent: publish (wait for the count), call (wait for the answer), WARM_UP + ROUNDS times.
    let warm = Arc::new(AtomicBool::new(false));
    let (warm_c, rounds_done) = (warm.clone(), Arc::new(AtomicBool::new(false)));
    let done_c = rounds_done.clone();
    let client = thread::spawn(move || {
        let mut a = Agent::connect(p1_agents, b"caller1");
        let body = br#"{"bus": "", "headers": {"min_compatible_version": "3.0"}, "message": {"temp": 21.5}}"#;
        let call = format!(
            r#"{{"to_platform": "p2", "to_peer": "callee2", "from_platform": "", "from_peer": "", "args": ["{}"]}}"#,
            "x".repeat(1024)
        );
        // Wait until p2's subscription reached p1 (a publish counts the remote platform).
        loop {
            a.send(&[b"", b"VIP1", b"", b"p", b"pubsub", b"publish", b"devices/x", body]);
            let c = a.recv_until(|m| m[5] == b"request_response");
            if c[6] == 1u32.to_le_bytes() {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let mut counts = [0u64; 2];
        for i in 0..WARM_UP + ROUNDS {
            if i == WARM_UP {
                warm_c.store(true, Ordering::SeqCst);
            }
            a.send(&[b"", b"VIP1", b"", b"p", b"pubsub", b"publish", b"devices/x", body]);
            let c = a.recv_until(|m| m[5] == b"request_response");
            counts[usize::from(c[6] == 1u32.to_le_bytes())] += 1;
            a.send(&[b"", b"VIP1", b"", b"17.1", b"external_rpc", b"send_platform", call.as_bytes()]);
            let answer = a.recv_until(|m| m[4] == b"external_rpc" || m[4] == b"error");
            assert_eq!(answer[5], b"send_peer", "{:?}", String::from_utf8_lossy(&answer.concat()));
            assert_eq!(answer[2], b"p2.callee2", "the caller's router names the remote user");
        }
        done_c.store(true, Ordering::SeqCst);
        counts
    });

    let deadline = Instant::now() + Duration::from_secs(120);
    while !warm.load(Ordering::SeqCst) {
        turn(&mut p1, &mut events);
        assert!(Instant::now() < deadline, "warm-up did not finish");
    }
    let before = allocations();
    count_here(true);
    while !rounds_done.load(Ordering::SeqCst) {
        turn(&mut p1, &mut events);
        assert!(Instant::now() < deadline, "the rounds did not finish");
    }
    count_here(false);
    let counted = allocations() - before;
    let counts = client.join().unwrap();
    // Every publish p1 forwarded reaches p2's subscriber (the last ones may still be on their way).
    let forwarded = p1.stats().external_publish_out;
    while delivered.load(Ordering::Relaxed) < forwarded && Instant::now() < deadline {
        turn(&mut p1, &mut events);
    }
    stop.store(true, Ordering::Relaxed);
    for t in [subscriber, callee, p2_thread] {
        t.join().unwrap();
    }
    assert_eq!(counts, [0, WARM_UP + ROUNDS], "every publish counted the remote platform, none else");
    let stats = p1.stats();
    assert!(stats.external_publish_out > WARM_UP + ROUNDS && stats.external_rpc_out >= WARM_UP + ROUNDS);
    assert!(stats.external_rpc_in >= WARM_UP + ROUNDS, "every answer came in from p2's link");
    assert_eq!(stats.external_publish_dropped_full + stats.external_publish_dropped_down, 0);
    assert_eq!(delivered.load(Ordering::Relaxed), forwarded, "p2's subscriber got every forwarded publish once");
    assert_eq!(
        counted,
        0,
        "{counted} allocations in {ROUNDS} rounds over a real link; first (old size, new size) = {:?}",
        first()
    );
}
