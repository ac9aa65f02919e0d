//! Event-loop tests that need the server's private state (slots, budget, pause lists): a real
//! server on 127.0.0.1 driven turn by turn in the test thread, raw ZMTP peers on blocking
//! sockets. `clock`: timers driven by the test's clock; `dialled`: a connection the router
//! dials, speaking another protocol; `peer`: a ZMTP agent on the library's client session.

mod clock;
mod dialled;
mod health;
mod links;
mod peer;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant as StdInstant};

use mio::Events;

use super::Server;
use crate::limits::Limits;
use crate::server::listener;
use crate::vip::platform::PlatformInfo;
use crate::vip::router::Router;
use crate::zmtp::command;
use crate::zmtp::frame::{FLAG_MORE, FrameHeader};
use crate::zmtp::greeting;
use crate::zmtp::mechanism::Mechanism;

fn server(limits: Limits) -> (Server, u16) {
    let listeners = listener::bind("tcp://127.0.0.1:0", Mechanism::Null).unwrap();
    let port: u16 = listeners[0].endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let router = Router::new(&limits, PlatformInfo::with_router_id(b"rid"), 1);
    (Server::new(listeners, router, limits, b"rid".to_vec()).unwrap(), port)
}

/// Owned copies of `v`.
fn frames_of(v: &[&[u8]]) -> Vec<Vec<u8>> {
    v.iter().map(|f| f.to_vec()).collect()
}

fn frames(parts: &[&[u8]], out: &mut Vec<u8>) {
    for (i, p) in parts.iter().enumerate() {
        FrameHeader::emit_frame(if i + 1 < parts.len() { FLAG_MORE } else { 0 }, p, out);
    }
}

/// Greeting and NULL READY with `identity`, not yet sent.
fn handshake(identity: &[u8]) -> Vec<u8> {
    let mut out = greeting::emit(Mechanism::Null, false).to_vec();
    command::emit_ready(b"DEALER", identity, &mut out);
    out
}

fn turn_for(server: &mut Server, events: &mut Events, d: Duration) {
    let end = StdInstant::now() + d;
    while StdInstant::now() < end {
        server.run_once(events).unwrap();
    }
}

/// Every byte a live connection or the shared transmit pool holds was taken from the budget, and
/// nothing else was.
fn assert_budget_balanced(server: &Server) {
    let held: usize = server.slots.ids().filter_map(|id| server.slots.peek(id.index)).map(|c| c.buffer_bytes()).sum();
    let held = held + server.shared.bytes();
    assert_eq!(server.budget.used(), held, "budget out of step with the buffers held");
}

#[test]
fn ping_flood_from_a_peer_that_never_reads_is_bounded_and_budgeted() {
    let mut limits = Limits::COMPILED;
    limits.tx_queue_bytes = 64 * 1024;
    let tx_queue = limits.tx_queue_bytes;
    let (mut server, port) = server(limits);
    let mut events = Events::with_capacity(64);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&handshake(b"pinger")).unwrap();
    turn_for(&mut server, &mut events, Duration::from_millis(50));
    // 32 MiB of PINGs (each answered by a PONG of nearly the same size); the peer never reads.
    let mut chunk = Vec::new();
    while chunk.len() < 64 * 1024 {
        command::emit_ping(100, &mut chunk);
    }
    s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
    let writer = std::thread::spawn(move || {
        for _ in 0..512 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
        s
    });
    let deadline = StdInstant::now() + Duration::from_secs(20);
    while !writer.is_finished() {
        server.run_once(&mut events).unwrap();
        assert!(StdInstant::now() < deadline, "the writer never finished");
    }
    turn_for(&mut server, &mut events, Duration::from_millis(100));
    let id = server.slots.ids().next().expect("the pinger is still connected");
    let c = server.slots.peek(id.index).unwrap();
    // One read's worth of PONGs may overshoot the queue limit, never more.
    let bound = tx_queue + crate::limits::READ_BUDGET_BYTES;
    assert!(c.tx().pending() <= bound, "{} bytes of PONGs queued (bound {bound})", c.tx().pending());
    assert!(c.tx().capacity() <= 2 * bound, "transmit queue grew to {} bytes", c.tx().capacity());
    assert_budget_balanced(&server);
    drop(writer.join().unwrap());
}

#[test]
fn replies_queued_before_a_half_close_are_sent() {
    let (mut server, port) = server(Limits::COMPILED);
    let mut events = Events::with_capacity(64);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut out = handshake(b"halfclose");
    frames(&[b"", b"VIP1", b"", b"m1", b"hello", b"hello"], &mut out);
    s.write_all(&out).unwrap();
    // The request and the end of the peer's sending side are both in before the router looks.
    s.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    turn_for(&mut server, &mut events, Duration::from_millis(200));
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.len() > 64, "only {} bytes (the greeting) came back: READY and the hello reply were lost", got.len());
    assert!(got.windows(7).any(|w| w == b"welcome"), "no hello reply in {got:?}");
    assert_eq!(server.slots.live(), 0);
    assert_budget_balanced(&server);
}

/// Connect, handshake, and send the header of a single-frame message of `size` bytes with
/// `body` bytes of it.
fn start_big_message(port: u16, identity: &[u8], size: usize, body: usize) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut out = handshake(identity);
    FrameHeader::emit(0, size, &mut out);
    out.resize(out.len() + body, b'x');
    s.write_all(&out).unwrap();
    s
}

#[test]
fn a_budget_pause_waits_without_spinning_and_resumes_when_bytes_are_freed() {
    let mut limits = Limits::COMPILED;
    limits.buffer_budget_bytes = 1 << 20;
    let (mut server, port) = server(limits);
    let mut events = Events::with_capacity(64);
    // a's receive buffer grows to 700 KiB for its message; b's 400 KiB message then does not fit.
    let a = start_big_message(port, b"a", 700 * 1024, 1000);
    turn_for(&mut server, &mut events, Duration::from_millis(50));
    let _b = start_big_message(port, b"b", 400 * 1024, 1000);
    turn_for(&mut server, &mut events, Duration::from_millis(50));
    assert_eq!(server.stats().paused_budget, 1, "b is paused on the budget");
    let mut turns = 0u64;
    let end = StdInstant::now() + Duration::from_millis(300);
    while StdInstant::now() < end {
        server.run_once(&mut events).unwrap();
        turns += 1;
    }
    assert!(server.stats().paused_budget <= 2, "retried {} times", server.stats().paused_budget);
    assert!(turns < 100, "{turns} loop turns in 300 ms while nothing could change: the loop spins");
    assert_budget_balanced(&server);
    // a leaves: its bytes go back, b's buffer can grow, b is no longer paused.
    drop(a);
    turn_for(&mut server, &mut events, Duration::from_millis(100));
    assert!(server.sched.blocked.is_empty(), "b still paused after the budget freed up");
    let grown = server.slots.ids().filter_map(|id| server.slots.peek(id.index)).any(|c| c.rx().buf.len() >= 400 * 1024);
    assert!(grown, "b's receive buffer did not grow for its message");
    assert_budget_balanced(&server);
}

#[test]
fn a_message_that_can_never_fit_the_budget_is_refused_instead_of_waiting_forever() {
    let mut limits = Limits::COMPILED;
    limits.buffer_budget_bytes = 1 << 20;
    let (mut server, port) = server(limits);
    let mut events = Events::with_capacity(64);
    let mut s = start_big_message(port, b"big", 2 << 20, 1000);
    turn_for(&mut server, &mut events, Duration::from_millis(200));
    assert_eq!(server.slots.live(), 0, "a peer whose message cannot ever fit the budget is left waiting");
    assert_eq!(server.stats().rejected_msg_too_large, 1);
    assert!(server.sched.blocked.is_empty());
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert_budget_balanced(&server);
}

#[test]
fn half_open_connections_cannot_fill_a_lowered_max_connections() {
    // max-connections below max-handshakes: the handshake cap (half the slots) still evicts.
    let mut limits = Limits::COMPILED;
    limits.max_connections = 8;
    assert_eq!(limits.handshake_cap(), 4);
    let (mut server, port) = server(limits);
    let mut events = Events::with_capacity(64);
    // 12 connections that never send a byte, one after the other.
    let mut silent = Vec::new();
    for _ in 0..12 {
        silent.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
        turn_for(&mut server, &mut events, Duration::from_millis(10));
    }
    assert!(server.slots.handshaking() <= 4, "{} unfinished handshakes", server.slots.handshaking());
    assert_eq!(server.stats().rejected_conn_full, 0, "slots filled up with half-open connections");
    assert!(server.stats().rejected_handshake_evicted >= 8);
    // A real peer still gets in and is answered.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut out = handshake(b"real");
    frames(&[b"", b"VIP1", b"", b"m1", b"hello", b"hello"], &mut out);
    s.write_all(&out).unwrap();
    turn_for(&mut server, &mut events, Duration::from_millis(200));
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut got = vec![0u8; 4096];
    let mut n = 0;
    while let Ok(k) = s.read(&mut got[n..]) {
        if k == 0 || got[..n + k].windows(7).any(|w| w == b"welcome") {
            n += k;
            break;
        }
        n += k;
    }
    assert!(got[..n].windows(7).any(|w| w == b"welcome"), "the real peer was not welcomed");
    assert_budget_balanced(&server);
}

/// Turn the server for `d` while reading `s`, and split what came into messages (frames), after
/// the 64-byte greeting if `first` (the first read of the connection); commands are left out.
fn read_messages(
    s: &mut TcpStream,
    first: bool,
    server: &mut Server,
    events: &mut Events,
    d: Duration,
) -> Vec<Vec<Vec<u8>>> {
    s.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let end = StdInstant::now() + d;
    while StdInstant::now() < end {
        server.run_once(events).unwrap();
        let mut buf = [0u8; 65536];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }
    s.set_nonblocking(false).unwrap();
    let mut msgs = Vec::new();
    let mut cur = Vec::new();
    let mut at = if first { 64 } else { 0 };
    while at + 2 <= got.len() {
        let flags = got[at];
        let (len, head) = if flags & 0x02 != 0 {
            (u64::from_be_bytes(got[at + 1..at + 9].try_into().unwrap()) as usize, 9)
        } else {
            (usize::from(got[at + 1]), 2)
        };
        let body = got[at + head..at + head + len].to_vec();
        at += head + len;
        if flags & 0x04 != 0 {
            continue;
        }
        cur.push(body);
        if flags & FLAG_MORE == 0 {
            msgs.push(std::mem::take(&mut cur));
        }
    }
    msgs
}

#[test]
fn a_deferred_peerlist_add_still_reaches_a_peer_before_a_message_from_the_newcomer() {
    let (mut server, port) = server(Limits::COMPILED);
    let mut events = Events::with_capacity(64);
    let mut p = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut out = handshake(b"p");
    frames(&[b"", b"VIP1", b"", b"h", b"hello", b"hello"], &mut out);
    p.write_all(&out).unwrap();
    let got = read_messages(&mut p, true, &mut server, &mut events, Duration::from_millis(100));
    assert_eq!(got.len(), 1, "the welcome: {got:?}");
    // x's hello registers it (a `peerlist add x` for p, written at the end of the turn at the
    // earliest), and in the same read its message to p is routed at once.
    let mut x = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut out = handshake(b"x");
    frames(&[b"", b"VIP1", b"", b"h", b"hello", b"hello"], &mut out);
    frames(&[b"p", b"VIP1", b"", b"m1", b"RPC", b"call"], &mut out);
    x.write_all(&out).unwrap();
    let got = read_messages(&mut p, false, &mut server, &mut events, Duration::from_millis(200));
    let expected = vec![
        frames_of(&[b"", b"VIP1", b"", b"", b"peerlist", b"add", b"x"]),
        frames_of(&[b"x", b"VIP1", b"x", b"m1", b"RPC", b"call"]),
    ];
    assert_eq!(got, expected, "p must be told about x before x's message reaches it");
    assert_eq!(server.stats().dropped_notify_full, 0);
    assert_budget_balanced(&server);
}

#[test]
fn a_null_peer_whose_ready_was_sent_is_not_evicted_by_newer_half_open_connections() {
    let mut limits = Limits::COMPILED;
    limits.max_handshakes = 4;
    let (mut server, port) = server(limits);
    let mut events = Events::with_capacity(64);
    // The router's READY goes out right after this greeting; the client's READY is still to come.
    let mut first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    first.write_all(&greeting::emit(Mechanism::Null, false)).unwrap();
    turn_for(&mut server, &mut events, Duration::from_millis(50));
    let mut silent = Vec::new();
    for _ in 0..12 {
        silent.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
        turn_for(&mut server, &mut events, Duration::from_millis(10));
    }
    assert!(server.stats().rejected_handshake_evicted >= 8, "the silent ones are evicted");
    let mut out = Vec::new();
    command::emit_ready(b"DEALER", b"first", &mut out);
    frames(&[b"", b"VIP1", b"", b"h1", b"hello", b"hello"], &mut out);
    first.write_all(&out).unwrap();
    let got = read_messages(&mut first, true, &mut server, &mut events, Duration::from_millis(200));
    assert!(got.iter().any(|m| m.len() == 9 && m[5] == b"welcome"), "not welcomed: {got:?}");
    assert_budget_balanced(&server);
}
