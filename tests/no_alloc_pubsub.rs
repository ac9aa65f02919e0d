//! Zero allocation on the publish path: a counting global allocator proves that the server
//! thread allocates nothing while 100 000 publishes fan out to 8 subscribers, after a warm-up;
//! three times: without protected topics, with modular VOLTTRON's `authz.json` protecting the
//! published topic (the check runs on every publish), and with a shared transmit pool of one
//! chunk (deliveries are shared, and copied whenever the pool is full: both paths measured).
//! Two publish bodies alternate: one whose delivery body is re-emitted (a `\u` escape, `NaN`)
//! and one already in Python's form, whose delivery body is copied piece by piece.
//!
//! Same technique as `tests/no_alloc.rs`: the server runs in the test thread, driven turn by
//! turn; the peers are blocking sockets speaking raw ZMTP in helper threads (their allocations
//! are not counted).
//!
//! Warm-up: every reader stalls until the router has dropped something for it (its transmit
//! queue reached `tx-queue-bytes`), so every buffer has grown to the largest size it can ever
//! need and the slow-subscriber and dropped-count paths have run. Measured phase: the publisher
//! keeps at most `WINDOW` publishes ahead of the slowest reader (messages read + messages the
//! router dropped for it), so no queue comes near its limit and every publish is delivered to
//! all 8 subscribers.
//!
//! The result must not depend on how the machine schedules the threads: the warm-up goes on
//! until every buffer is at its ceiling for this traffic (`stats.buffer_bytes`: every transmit
//! queue at `tx-queue-bytes`, the publisher's receive buffer at `RX_BUF_BUSY_BYTES` — the router
//! stops turning now and then until a backlog in the publisher's socket has made reads fill
//! it), not merely for a number of publishes; and the measured phase stops turning the router
//! once on purpose (as a loaded machine would deschedule it) while the publisher runs a window
//! ahead.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mio::Events;
use viprouter::auth::authz::Authz;
use viprouter::limits::{Limits, RX_BUF_BUSY_BYTES, RX_BUF_MIN_BYTES, SHARED_CHUNK_BYTES, SHARED_CHUNKS};
use viprouter::server::event_loop::Server;
use viprouter::vip::pubsub::DeliveryBody;
use viprouter::zmtp::mechanism::Mechanism;

mod common;
use common::server::{connect, frames};

#[path = "common/alloc_counter.rs"]
mod alloc_counter;
use alloc_counter::{allocations, count_here, first};
#[path = "common/warm_up.rs"]
mod warm_up;
use warm_up::NAP;

const SUBSCRIBERS: usize = 8;
/// Bytes of the one chunk of the pool in the fallback test (and in every test's warm-up part 1).
const SMALL_CHUNK: usize = 4096;
/// Publishes the publisher may be ahead of the slowest reader in the measured phase.
const WINDOW: u64 = 1000;
const MEASURED: u64 = 100_000;
/// Publishes after the readers are released and before counting starts.
const SETTLE: u64 = 20_000;

/// What the helper threads and the test thread tell each other. Index `SUBSCRIBERS` is the
/// publisher's own reader (count replies).
struct Shared {
    /// Complete messages read by each reader.
    read: [AtomicU64; SUBSCRIBERS + 1],
    /// Messages the router dropped for each reader (slow-subscriber drops; dropped counts).
    dropped: [AtomicU64; SUBSCRIBERS + 1],
    /// Readers do not read while set (warm-up).
    stall: AtomicBool,
    /// The publisher may start (every subscription is in).
    go: AtomicBool,
    /// Stop everything.
    done: AtomicBool,
}

/// Count complete ZMTP messages (not commands) in `buf`, after skipping the greeting; consumed
/// bytes are removed.
fn count_messages(buf: &mut Vec<u8>, greeting_left: &mut usize) -> u64 {
    let mut pos = (*greeting_left).min(buf.len());
    *greeting_left -= pos;
    let mut msgs = 0;
    loop {
        let rest = &buf[pos..];
        if rest.len() < 2 {
            break;
        }
        let flags = rest[0];
        let (size, header) = if flags & 0x02 != 0 {
            if rest.len() < 9 {
                break;
            }
            (u64::from_be_bytes(rest[1..9].try_into().unwrap()) as usize, 9)
        } else {
            (usize::from(rest[1]), 2)
        };
        if rest.len() < header + size {
            break;
        }
        pos += header + size;
        if flags & 0x05 == 0 {
            msgs += 1; // last frame of a message (no MORE), not a command
        }
    }
    buf.drain(..pos);
    msgs
}

/// Read until `done`, counting messages into `shared.read[me]`; no reading while stalled.
fn drain(mut s: TcpStream, shared: Arc<Shared>, me: usize) -> u64 {
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut pending = Vec::new();
    let mut greeting_left = 64;
    let mut got = 0u64;
    while !shared.done.load(Ordering::Relaxed) {
        if shared.stall.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got += n as u64;
                pending.extend_from_slice(&buf[..n]);
                let m = count_messages(&mut pending, &mut greeting_left);
                shared.read[me].fetch_add(m, Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }
    got
}

/// modular VOLTTRON's `authz.json` for the second run: the published topic is protected (by a
/// prefix entry, and a regex entry is tried first), the publisher holds a `/regex/` publish
/// capability after one that does not match, so every publish runs the whole check and passes.
const AUTHZ: &str = r#"{"protected_topics": ["/^alerts\//", "devices/campus"],
  "agents": {"pub": {"pubsub_capabilities": {"other/": "pubsub", "/devices\/campus\/.*/": "publish"}}}}"#;

#[test]
fn publish_fan_out_allocates_nothing_in_steady_state() {
    fan_out(None, SHARED_CHUNKS);
    // The same with modular's protected-topic check on every publish (`crate::auth::authz`).
    fan_out(Some(AUTHZ), SHARED_CHUNKS);
    // The same with a shared transmit pool of one chunk of 4 KiB: full whenever a turn routes
    // more than ten publishes (after the nap at least), so deliveries are copied instead
    // (`fanout_copied`).
    fan_out(None, 1);

    // The counter itself works: an allocation in this thread is seen.
    count_here(true);
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
    count_here(false);
    drop(v);
    assert_eq!(alloc_counter::allocations(), 1, "the counting allocator counts");
}

fn fan_out(authz: Option<&str>, pool_chunks: usize) {
    let limits = Limits::COMPILED;
    let tx_queue_bytes = limits.tx_queue_bytes;
    let (mut server, port) = common::server::server(limits, Mechanism::Null);
    // Part 1 of the warm-up runs with a one-chunk pool: deliveries are mostly copied, so every
    // subscriber's own transmit buffer grows to its ceiling (with the whole pool its queue could
    // fill up with shared ranges alone, and a copy later, in the measured phase, could grow it).
    server.limit_shared_pool(1, SMALL_CHUNK);
    server.router.pubsub.set_authz(authz.map(|t| Authz::parse(t.as_bytes()).unwrap()));

    let shared = Arc::new(Shared {
        read: Default::default(),
        dropped: Default::default(),
        stall: AtomicBool::new(true),
        go: AtomicBool::new(false),
        done: AtomicBool::new(false),
    });

    let mut readers = Vec::new();
    for i in 0..SUBSCRIBERS {
        let prefix = if i % 2 == 0 { "" } else { "devices" };
        let body = format!("{{\"prefix\": \"{prefix}\", \"bus\": \"\", \"all_platforms\": false}}");
        let sub = frames(&[b"", b"VIP1", b"", b"s", b"pubsub", b"subscribe", body.as_bytes()]);
        let shared = shared.clone();
        readers.push(thread::spawn(move || {
            let s = connect(port, format!("sub{i}").as_bytes(), &sub);
            drain(s, shared, i)
        }));
    }

    // The publisher: waits for every subscription, then publishes in batches of 100 until told
    // to stop, paced by the slowest reader once the readers are released. A second thread
    // reads its count replies.
    let sh = shared.clone();
    let publisher = thread::spawn(move || {
        let s = connect(port, b"pub", &[]);
        let reader = {
            let r = s.try_clone().unwrap();
            let sh = sh.clone();
            thread::spawn(move || drain(r, sh, SUBSCRIBERS))
        };
        while !sh.go.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(5));
        }
        let body = format!(
            "{{\"bus\": \"\", \"headers\": {{\"Date\": \"2026-01-01T00:00:00.000000+00:00\", \"min_compatible_version\": \"3.0\", \"max_compatible_version\": \"\"}}, \"message\": [{{\"temp\": 71.5, \"rh\": 40, \"note\": \"{}\", \"caf\\u00e9\": NaN}}, {{\"temp\": {{\"units\": \"F\", \"tz\": \"UTC\"}}}}]}}",
            "n".repeat(120)
        );
        // A second body already in Python's form (what a Python agent sends): its delivery body
        // is copied piece by piece, where the first one's is re-emitted. Both paths are measured.
        let python_form = format!(
            "{{\"bus\": \"\", \"headers\": {{\"Date\": \"2026-01-01T00:00:00.000000+00:00\"}}, \"message\": [{{\"temp\": 71.5, \"rh\": 40, \"note\": \"{}\"}}]}}",
            "n".repeat(120)
        );
        for (b, copied) in [(&body, false), (&python_form, true)] {
            let d = DeliveryBody::parse(b"pub", b.as_bytes()).expect("a publish body");
            assert_eq!(d.verbatim_pieces().is_some(), copied, "{b}");
        }
        let publish = |body: &str| {
            frames(&[
                b"",
                b"VIP1",
                b"",
                b"m00000001",
                b"pubsub",
                b"publish",
                b"devices/campus/building1/all",
                body.as_bytes(),
            ])
        };
        let (one, two) = (publish(&body), publish(&python_form));
        let batch: Vec<u8> = [one, two].concat().repeat(50);
        let mut s = s;
        let mut sent = 0u64;
        'publishing: while !sh.done.load(Ordering::Relaxed) {
            while !sh.stall.load(Ordering::Relaxed)
                && (0..=SUBSCRIBERS).any(|i| {
                    sh.read[i].load(Ordering::Relaxed) + sh.dropped[i].load(Ordering::Relaxed) + WINDOW < sent + 100
                })
            {
                if sh.done.load(Ordering::Relaxed) {
                    break 'publishing;
                }
                thread::sleep(Duration::from_micros(100));
            }
            s.write_all(&batch).unwrap();
            sent += 100;
        }
        (s, reader.join().unwrap(), sent)
    });

    let mut events = Events::with_capacity(1024);
    let deadline = Instant::now() + Duration::from_secs(300);
    while server.router.pubsub.subscriptions().len() < SUBSCRIBERS {
        server.run_once(&mut events).unwrap();
        assert!(Instant::now() < deadline, "subscriptions did not arrive");
    }
    let peers: Vec<_> =
        (0..SUBSCRIBERS).map(|i| server.router.peers.lookup(format!("sub{i}").as_bytes()).unwrap()).collect();
    shared.go.store(true, Ordering::Relaxed);

    // Tell the publisher what the router dropped for whom (no allocation: atomics and lookups).
    let publish_drops = |server: &Server| {
        for (i, &p) in peers.iter().enumerate() {
            shared.dropped[i].store(server.router.pubsub.slow_drops(p), Ordering::Relaxed);
        }
        shared.dropped[SUBSCRIBERS].store(server.stats().dropped_reply_full, Ordering::Relaxed);
    };
    // Warm-up, part 1: readers stalled until every queue has overflowed once.
    while shared.stall.load(Ordering::Relaxed) {
        server.run_once(&mut events).unwrap();
        let full =
            server.stats().dropped_reply_full > 0 && peers.iter().all(|&p| server.router.pubsub.slow_drops(p) > 0);
        if full {
            publish_drops(&server);
            shared.stall.store(false, Ordering::Relaxed);
        }
        assert!(Instant::now() < deadline, "warm-up: queues did not fill ({:?})", server.stats());
    }
    let stalled = server.stats().pubsub_publishes;
    if pool_chunks > 1 {
        server.limit_shared_pool(pool_chunks, SHARED_CHUNK_BYTES);
    }
    // The pool's chunks are taken now: how many this flow would take on its own depends on how
    // far its slowest reader lags behind (a reader that keeps up has one chunk started again and
    // again), which the machine's scheduling decides; the measured phase must not take one.
    assert!(server.take_shared_pool(), "the budget holds the shared pool");
    // Warm-up, part 2: readers catch up, the publisher is paced; until SETTLE more publishes
    // and every buffer at its ceiling: every transmit queue at tx-queue-bytes (part 1 overflowed
    // them), the publisher's receive buffer at RX_BUF_BUSY_BYTES (grown by reads that fill it),
    // the subscribers' receive buffers at their initial size, every chunk of the shared
    // transmit pool taken.
    let ceiling = ((SUBSCRIBERS + 1) * (RX_BUF_MIN_BYTES + tx_queue_bytes) + RX_BUF_BUSY_BYTES - RX_BUF_MIN_BYTES
        + pool_chunks * SHARED_CHUNK_BYTES) as u64;
    warm_up::to_ceiling(
        &mut server,
        &mut events,
        deadline,
        ceiling,
        |s| s.stats().pubsub_publishes >= stalled + SETTLE,
        &publish_drops,
    );
    assert_eq!(server.router.pubsub.authz().is_some(), authz.is_some());
    let warm = server.stats().clone();
    let t0 = Instant::now();
    let mut napped = false;
    count_here(true);
    while server.stats().pubsub_publishes < warm.pubsub_publishes + MEASURED {
        server.run_once(&mut events).unwrap();
        publish_drops(&server);
        if !napped && server.stats().pubsub_publishes >= warm.pubsub_publishes + MEASURED / 2 {
            // The router is "descheduled" while the publisher runs ahead (up to the window).
            napped = true;
            thread::sleep(NAP);
        }
        if Instant::now() > deadline {
            break;
        }
    }
    count_here(false);
    let elapsed = t0.elapsed();
    let allocations = allocations();
    let st = server.stats().clone();

    shared.done.store(true, Ordering::Relaxed);
    while !publisher.is_finished() {
        server.run_once(&mut events).unwrap();
    }
    let (_keep, publisher_read, sent) = publisher.join().unwrap();
    let received: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();

    let publishes = st.pubsub_publishes - warm.pubsub_publishes;
    let deliveries = st.pubsub_deliveries - warm.pubsub_deliveries;
    let drops = st.dropped_slow_subscriber - warm.dropped_slow_subscriber;
    let (shared_out, copied) = (st.fanout_shared - warm.fanout_shared, st.fanout_copied - warm.fanout_copied);
    eprintln!(
        "{publishes} publishes x {SUBSCRIBERS} subscribers in {elapsed:?} ({:.0} publishes/s, {:.0} deliveries/s); \
         warm-up: {stalled} publishes with stalled readers, {} slow-subscriber drops, {} counts dropped; \
         publisher sent {sent}; {shared_out} deliveries shared, {copied} copied ({pool_chunks}-chunk pool)",
        publishes as f64 / elapsed.as_secs_f64(),
        deliveries as f64 / elapsed.as_secs_f64(),
        warm.dropped_slow_subscriber,
        warm.dropped_reply_full,
    );
    assert!(publishes >= MEASURED, "every publish handled ({st:?})");
    assert!(warm.dropped_slow_subscriber > 0 && warm.dropped_reply_full > 0, "the warm-up exercised the drop paths");
    assert_eq!(drops, 0, "paced: no subscriber fell behind in the measured phase");
    assert_eq!(deliveries, publishes * SUBSCRIBERS as u64, "every publish reached all {SUBSCRIBERS} subscribers");
    assert_eq!(st.dropped_reply_full, warm.dropped_reply_full, "every count reached the publisher");
    assert!(received.iter().all(|&n| n > 0) && publisher_read > 0);
    assert_eq!(st.rejected_protected_topic, 0, "the publisher may publish to the protected topic");
    assert!(shared_out > 0, "deliveries went out shared in the measured phase");
    assert_eq!(shared_out + copied, deliveries, "every delivery to these NULL subscribers was shared or copied");
    if pool_chunks == 1 {
        assert!(copied > 0, "the one-chunk pool was full and deliveries were copied in the measured phase");
    }
    assert_eq!(
        allocations,
        0,
        "allocations while fanning out {publishes} publishes (the first: {:?} bytes, old → new; authz {})",
        first(),
        authz.is_some()
    );
}
