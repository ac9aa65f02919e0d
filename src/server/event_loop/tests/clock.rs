//! Timers driven by the caller's clock: the tests say what time it is ([`Server::turn`]) instead
//! of sleeping through handshake timeouts and stalls.

use std::net::TcpStream;
use std::time::Duration;

use mio::Events;

use super::peer::Peer;
use super::server;
use crate::limits::{Limits, TICK_MS};
use crate::server::event_loop::Server;
use crate::time::Instant;

/// One turn at time `t` (ms), after waiting at most 20 ms of wall time for events.
fn at(server: &mut Server, events: &mut Events, t: u64) {
    server.poll(events, Some(Duration::from_millis(20))).unwrap();
    assert_eq!(server.turn(events, Instant(t)), None);
}

#[test]
fn a_silent_connection_is_closed_when_the_callers_clock_says_the_handshake_is_late() {
    let limits = Limits::COMPILED;
    let timeout = limits.handshake_timeout_ms;
    let (mut server, port) = server(limits);
    let mut events = Events::with_capacity(64);
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for _ in 0..10 {
        at(&mut server, &mut events, 0);
    }
    assert_eq!(server.slots.live(), 1);
    at(&mut server, &mut events, timeout - 1);
    assert_eq!(server.slots.live(), 1, "not yet: one millisecond to go");
    at(&mut server, &mut events, timeout - 1 + TICK_MS);
    assert_eq!(server.slots.live(), 0);
    assert_eq!(server.stats().rejected_handshake_timeout, 1);
    assert_eq!(server.slots.handshaking(), 0);
}

#[test]
fn a_sender_blocked_behind_a_reader_that_never_reads_gets_error_11_after_the_stall_time() {
    let mut limits = Limits::COMPILED;
    limits.tx_queue_bytes = 4096;
    let stall = limits.send_stall_ms;
    let (mut server, port) = server(limits);
    let mut events = Events::with_capacity(64);
    let mut a = Peer::connect(port, b"a");
    let mut b = Peer::connect(port, b"b");
    while !(a.is_ready() && b.is_ready() && server.router.peers.lookup(b"b").is_some()) {
        at(&mut server, &mut events, 0);
        a.pump();
        b.pump();
    }
    // b stops reading. a sends to b until the router keeps a blocked: b's socket buffers and
    // its queue are full.
    let body = vec![b'x'; 16 * 1024];
    let mut sent = 0u32;
    let blocked = |s: &Server| !s.sched.blocked.is_empty();
    while !blocked(&server) {
        assert!(sent < 20_000, "a was never blocked for good");
        for _ in 0..16 {
            a.send(&[b"b", b"VIP1", b"", format!("m{sent}").as_bytes(), b"RPC", &body]);
            sent += 1;
        }
        for _ in 0..4 {
            a.pump();
            at(&mut server, &mut events, 1);
        }
    }
    for _ in 0..5 {
        a.pump();
        at(&mut server, &mut events, 2);
    }
    assert!(blocked(&server), "a stays blocked while the clock stands still");
    let errors = |a: &Peer| a.inbox.iter().filter(|m| m[4] == b"error" && m[5] == b"11").count();
    assert_eq!(errors(&a), 0, "no error before the stall time");
    at(&mut server, &mut events, 1 + stall);
    for t in 0..20 {
        a.pump();
        at(&mut server, &mut events, 2 + stall + t);
    }
    assert!(errors(&a) >= 1, "no error 11 once b stalled");
    assert!(server.stats().errors_again >= 1);
}

#[test]
fn buffers_grown_by_a_large_message_shrink_back_once_the_callers_clock_says_the_peer_is_idle() {
    let (mut server, port) = server(Limits::COMPILED);
    let mut events = Events::with_capacity(64);
    let mut a = Peer::connect(port, b"a");
    while !(a.is_ready() && server.router.peers.lookup(b"a").is_some()) {
        at(&mut server, &mut events, 0);
        a.pump();
    }
    let initial = server.budget.used();
    // A 256 KiB message to a peer that does not exist: a's receive buffer grows to hold it.
    let body = vec![b'x'; 256 * 1024];
    a.send(&[b"nobody", b"VIP1", b"", b"m1", b"RPC", &body]);
    for t in 0..200 {
        a.pump();
        at(&mut server, &mut events, 1 + t);
        if a.inbox.iter().any(|m| m[4] == b"error") {
            break;
        }
    }
    assert!(a.inbox.iter().any(|m| m[4] == b"error" && m[5] == b"113"), "the message was routed (error 113)");
    assert!(server.budget.used() > initial, "the receive buffer grew for the message");
    at(&mut server, &mut events, 1000 + crate::limits::IDLE_SHRINK_MS / 2);
    assert!(server.budget.used() > initial, "not idle long enough yet");
    at(&mut server, &mut events, 2000 + crate::limits::IDLE_SHRINK_MS);
    assert_eq!(
        server.budget.used(),
        initial - crate::server::conn::Conn::INITIAL_BYTES,
        "the grown buffers, and the idle connection's initial ones, went back to the budget"
    );
    // The idle connection takes its buffers again with its next message, and works as before.
    a.send(&[b"nobody", b"VIP1", b"", b"m2", b"RPC", b"small"]);
    for t in 0..200 {
        a.pump();
        at(&mut server, &mut events, 3000 + crate::limits::IDLE_SHRINK_MS + t);
        if a.inbox.iter().any(|m| m[3] == b"m2") {
            break;
        }
    }
    assert!(
        a.inbox.iter().any(|m| m[3] == b"m2" && m[4] == b"error" && m[5] == b"113"),
        "answered after the idle period"
    );
    assert_eq!(server.budget.used(), initial, "its buffers are back at their initial size");
}

/// `a` and `b` attached, and a `hog` holding most of a 1 MiB buffer budget in its receive
/// buffer (an 850 KiB message it never finishes); then `a` sends `b` 100 KiB: `a`'s receive
/// buffer still grows to hold it, `b`'s transmit queue — empty, far under `tx-queue-bytes` —
/// cannot grow for it. Returns once that was refused, at time 1.
fn starve_a_routed_message_of_budget(server: &mut Server, events: &mut Events, port: u16) -> (Peer, Peer, TcpStream) {
    let (mut a, mut b) = (Peer::connect(port, b"a"), Peer::connect(port, b"b"));
    while !(a.is_ready() && b.is_ready() && server.router.peers.lookup(b"b").is_some()) {
        at(server, events, 0);
        a.pump();
        b.pump();
    }
    let hog = super::start_big_message(port, b"hog", 850 * 1024, 1000);
    for _ in 0..5 {
        at(server, events, 0);
    }
    a.send(&[b"b", b"VIP1", b"", b"m1", b"RPC", &vec![b'x'; 100 * 1024]]);
    for _ in 0..200 {
        if server.stats().dropped_budget > 0 {
            break;
        }
        a.pump();
        at(server, events, 1);
    }
    assert!(server.stats().dropped_budget > 0, "b's queue could always grow");
    (a, b, hog)
}

#[test]
fn a_sender_refused_by_the_buffer_budget_waits_for_it_without_spinning() {
    let mut limits = Limits::COMPILED;
    limits.buffer_budget_bytes = 1 << 20;
    let (mut server, port) = server(limits);
    let mut events = Events::with_capacity(64);
    let (_a, mut b, hog) = starve_a_routed_message_of_budget(&mut server, &mut events, port);
    let paused = server.stats().paused_sender;
    for _ in 0..20 {
        at(&mut server, &mut events, 2);
        assert!(server.timeout() > Duration::ZERO, "the blocked sender is retried at once: the loop spins");
        assert!(!server.sched.blocked.is_empty(), "a was resumed while nothing could change");
    }
    assert_eq!(server.stats().paused_sender, paused, "the message was retried while nothing could change");
    // The hog leaves: its bytes go back, b's queue can grow, a's message goes through.
    drop(hog);
    for t in 0..50 {
        at(&mut server, &mut events, 3 + t);
        b.pump();
        if !b.inbox.is_empty() {
            break;
        }
    }
    assert!(server.sched.blocked.is_empty(), "a still blocked once the budget freed up");
    assert!(b.inbox.iter().any(|m| m[3] == b"m1" && m[5].len() == 100 * 1024), "the message never reached b");
    assert_eq!(server.stats().errors_again, 0);
}

#[test]
fn a_sender_refused_by_the_buffer_budget_gets_error_11_after_the_stall_time() {
    let mut limits = Limits::COMPILED;
    limits.buffer_budget_bytes = 1 << 20;
    let stall = limits.send_stall_ms;
    let (mut server, port) = server(limits);
    let mut events = Events::with_capacity(64);
    let (mut a, _b, _hog) = starve_a_routed_message_of_budget(&mut server, &mut events, port);
    at(&mut server, &mut events, stall);
    a.pump();
    assert!(!server.sched.blocked.is_empty(), "not yet: one millisecond to go");
    let errors = |a: &Peer| a.inbox.iter().filter(|m| m[4] == b"error" && m[5] == b"11" && m[3] == b"m1").count();
    assert_eq!(errors(&a), 0);
    for t in 0..20 {
        at(&mut server, &mut events, 1 + stall + t);
        a.pump();
    }
    assert_eq!(errors(&a), 1, "no error 11 after the stall time");
    assert_eq!(server.stats().errors_again, 1);
    assert!(server.sched.blocked.is_empty());
    let b = server.router.peers.lookup(b"b").unwrap();
    assert!(!server.slots.peek(b.0).unwrap().is_stalled(), "b is not to blame: its queue is empty");
}
