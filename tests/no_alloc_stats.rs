//! Zero allocation for the router's health: a counting global allocator proves that the server
//! thread allocates nothing while it publishes its counters 500 times on `stats-topic` to 3
//! subscribers (the `query stats` object, the headers with the wall-clock time, the delivery
//! body, the fan-out) and answers 500 `query stats` requests, with messages routed between two
//! peers all along (the per-peer counters of the top talkers), after a warm-up.
//!
//! The server runs in the test thread and is driven by the test's clock ([`Server::turn`]):
//! every publish turn is one interval after the last. The peers are blocking sockets speaking
//! raw ZMTP in helper threads (their allocations are not counted). Pacing keeps every queue
//! near empty: the next interval starts only once every subscriber has read every publish and
//! the querier its reply, so no buffer grows after the warm-up.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use mio::Events;
use viprouter::limits::Limits;
use viprouter::server::event_loop::{Server, StatsPublish};
use viprouter::time::Instant;
use viprouter::zmtp::mechanism::Mechanism;

mod common;
use common::server::{connect, frames, take_messages};

#[path = "common/alloc_counter.rs"]
mod alloc_counter;
use alloc_counter::{allocations, count_here, first};

const SUBSCRIBERS: usize = 3;
const WARM_UP: u64 = 100;
const MEASURED: u64 = 500;
const INTERVAL_MS: u64 = 1000;
const TOPIC: &str = "analysis/viprouter/noalloc";

/// Readers: `SUBSCRIBERS` subscribers, then the querier, then the routing pair's receiver.
struct Shared {
    /// Publishes (subscribers) or `query` replies (querier) or routed messages read.
    read: [AtomicU64; SUBSCRIBERS + 2],
    /// `query stats` requests the querier may send in all.
    queries: AtomicU64,
    done: AtomicBool,
}

/// [`connect`], reading with a short timeout (the readers also watch the shared flags).
fn connect_polling(port: u16, identity: &[u8], then: &[u8]) -> TcpStream {
    let s = connect(port, identity, then);
    s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    s
}

/// Read until done, counting into `read[me]` the messages whose frame 4 is `subsystem` (and,
/// for the querier, send the next `query stats` once the last one was answered).
fn reader(mut s: TcpStream, shared: Arc<Shared>, me: usize, subsystem: &'static [u8], query: bool) {
    let mut buf = vec![0u8; 1 << 16];
    let mut pending = Vec::new();
    let mut greeting_left = 64;
    let mut asked = 0u64;
    while !shared.done.load(Ordering::Relaxed) {
        let answered = shared.read[me].load(Ordering::Relaxed);
        if query && asked == answered && asked < shared.queries.load(Ordering::Relaxed) {
            asked += 1;
            s.write_all(&frames(&[b"", b"VIP1", b"", format!("q{asked}").as_bytes(), b"query", b"stats"])).unwrap();
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                let n = take_messages(&mut pending, &mut greeting_left)
                    .iter()
                    .filter(|m| m.len() > 4 && m[4] == subsystem)
                    .count();
                shared.read[me].fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }
}

/// Turn at `now` until every reader has caught up: the subscribers with `published`
/// publishes, the querier with every query allowed so far.
fn settle(server: &mut Server, events: &mut Events, now: u64, shared: &Shared, published: u64) {
    let deadline = StdInstant::now() + Duration::from_secs(60);
    loop {
        server.poll(events, Some(Duration::from_millis(2))).unwrap();
        assert_eq!(server.turn(events, Instant(now)), None);
        let subscribers = (0..SUBSCRIBERS).all(|i| shared.read[i].load(Ordering::Relaxed) >= published);
        let querier = shared.read[SUBSCRIBERS].load(Ordering::Relaxed) >= shared.queries.load(Ordering::Relaxed);
        if subscribers && querier {
            return;
        }
        assert!(StdInstant::now() < deadline, "readers did not catch up at {now} ms");
    }
}

#[test]
fn publishing_and_answering_the_counters_allocates_nothing() {
    let (mut server, port) = common::server::server(Limits::COMPILED, Mechanism::Null);
    server.set_stats_publish(StatsPublish {
        topic: TOPIC.as_bytes().to_vec(),
        sender: b"viprouter".to_vec(),
        interval_ms: INTERVAL_MS,
    });
    let shared =
        Arc::new(Shared { read: Default::default(), queries: AtomicU64::new(0), done: AtomicBool::new(false) });
    let mut threads = Vec::new();
    let subscribe = format!("{{\"prefix\": \"{TOPIC}\", \"bus\": \"\"}}");
    for i in 0..SUBSCRIBERS {
        let sub = frames(&[b"", b"VIP1", b"", b"s", b"pubsub", b"subscribe", subscribe.as_bytes()]);
        let s = connect_polling(port, format!("historian{i}").as_bytes(), &sub);
        let sh = shared.clone();
        threads.push(thread::spawn(move || reader(s, sh, i, b"pubsub", false)));
    }
    let querier = connect_polling(port, b"operator", &[]);
    let sh = shared.clone();
    threads.push(thread::spawn(move || reader(querier, sh, SUBSCRIBERS, b"query", true)));
    // A routing pair: `talker` sends 20 messages to `listener` per interval.
    let mut talker = connect_polling(port, b"talker", &[]);
    let listener = connect_polling(port, b"listener", &[]);
    let sh = shared.clone();
    threads.push(thread::spawn(move || reader(listener, sh, SUBSCRIBERS + 1, b"RPC", false)));
    let burst: Vec<u8> = frames(&[b"listener", b"VIP1", b"", b"m", b"RPC", &[b'x'; 200]]).repeat(20);

    let mut events = Events::with_capacity(1024);
    let deadline = StdInstant::now() + Duration::from_secs(60);
    while server.router.pubsub.subscriptions().len() < SUBSCRIBERS || server.router.peers.registered_len() < 6 {
        server.poll(&mut events, Some(Duration::from_millis(5))).unwrap();
        assert_eq!(server.turn(&events, Instant(0)), None);
        assert!(StdInstant::now() < deadline, "subscriptions did not arrive");
    }
    let mut now = 0;
    let mut interval = |server: &mut Server, events: &mut Events, n: u64| {
        now += INTERVAL_MS;
        shared.queries.store(n, Ordering::Relaxed);
        talker.write_all(&burst).unwrap();
        settle(server, events, now, &shared, n);
        while shared.read[SUBSCRIBERS + 1].load(Ordering::Relaxed) < 20 * n {
            settle(server, events, now, &shared, n);
        }
    };
    for n in 1..=WARM_UP {
        interval(&mut server, &mut events, n);
    }
    let warm = server.stats().clone();
    count_here(true);
    for n in WARM_UP + 1..=WARM_UP + MEASURED {
        interval(&mut server, &mut events, n);
    }
    count_here(false);
    let allocations = allocations();
    let st = server.stats().clone();
    shared.done.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(st.router_publishes - warm.router_publishes, MEASURED);
    assert_eq!(st.pubsub_deliveries - warm.pubsub_deliveries, MEASURED * SUBSCRIBERS as u64);
    assert_eq!(st.routed - warm.routed, MEASURED * 20);
    assert_eq!(st.dropped_slow_subscriber, 0);
    assert_eq!(
        allocations,
        0,
        "the router thread allocated {allocations} times while publishing and answering its counters \
         (first: {:?} = (old size, new size))",
        first()
    );
}
