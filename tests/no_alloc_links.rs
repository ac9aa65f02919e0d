//! Zero allocation on the multi-platform paths at the VIP level (issue #14 deliverable 5): a
//! counting global allocator proves that, after a warm-up, the router allocates nothing while it
//! handles 50 000 rounds of
//!
//! * a local publish fanned out to 8 local subscribers **and** forwarded as `external_publish`
//!   on the link to a remote that subscribed (the delivery body built once for both),
//! * a `send_platform` rewritten (`from_platform`/`from_peer`) onto the link as `send_peer`,
//!   with a 2 KiB argument,
//! * a remote's `external_publish` from its link delivered to the 8 local subscribers,
//! * a remote's `send_peer` delivered to a local callee with its `<platform>.<peer>` user.
//!
//! The sink is a test double that copies every message into a buffer reserved up front (what a
//! transmit queue does), so the count is the router's own. The server side of links (a real
//! CURVE link between two `Server`s over TCP) is `tests/no_alloc_links_server.rs`.

use viprouter::limits::Limits;
use viprouter::time::Instant;
use viprouter::vip::discovery::parse_entry_json;
use viprouter::vip::links::{LinkAction, LinkId};
use viprouter::vip::peers::PeerId;
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::{Full, OnFull, Outcome, Sink};
use viprouter::zmtp::{Message, Part, Parts};

mod common;
use common::router::TestRouter as Router;

#[path = "common/alloc_counter.rs"]
mod alloc_counter;
use alloc_counter::{allocations, count_here, first};

const SUBSCRIBERS: u16 = 8;
const PUBLISHER: u16 = 20;
const CALLEE: u16 = 21;
const LINK_PEER: u16 = 22;
const ROUNDS: u64 = 50_000;
const WARM_UP: u64 = 1_000;

/// Copies each message into a reserved buffer and counts it.
struct CopySink {
    buf: Vec<u8>,
    to_peers: u64,
    to_links: u64,
    bytes: u64,
}

impl CopySink {
    fn copy(&mut self, frames: &[&[u8]]) {
        self.buf.clear();
        for f in frames {
            assert!(self.buf.len() + f.len() <= self.buf.capacity(), "the test sink would allocate");
            self.buf.extend_from_slice(f);
        }
        self.bytes += self.buf.len() as u64;
    }
}

impl Sink for CopySink {
    fn deliver(&mut self, _to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        self.copy(frames);
        self.to_peers += 1;
        Ok(())
    }

    fn deliver_link(&mut self, _link: LinkId, frames: &[&[u8]]) -> Result<(), Full> {
        self.copy(frames);
        self.to_links += 1;
        Ok(())
    }
}

/// One prepared message: its bytes and frame ranges.
struct Prepared {
    buf: Vec<u8>,
    parts: Parts,
}

fn prepare(frames: &[&[u8]]) -> Prepared {
    let mut buf = Vec::new();
    let mut parts = Parts::new();
    for f in frames {
        parts.push(Part { start: buf.len() as u32, len: f.len() as u32 }).unwrap();
        buf.extend_from_slice(f);
    }
    Prepared { buf, parts }
}

fn handle(r: &mut Router, s: &mut CopySink, from: u16, m: &Prepared) {
    let outcome = r.handle(PeerId(from), Message::new(&m.buf, &m.parts), s, OnFull::Pause);
    assert_eq!(outcome, Outcome::Done);
}

#[test]
fn external_publish_and_rpc_paths_allocate_nothing() {
    let mut info = PlatformInfo::with_router_id(b"rid");
    info.instance_name = b"p1".to_vec();
    let limits = Limits { max_connections: 64, max_links: 4, ..Limits::COMPILED };
    let mut r = Router::new(&limits, info, 3);
    let mut s = CopySink { buf: Vec::with_capacity(1 << 20), to_peers: 0, to_links: 0, bytes: 0 };

    // Peers: 8 subscribers, a publisher/caller, a callee, p2's link to us.
    let idents: Vec<(u16, Vec<u8>)> = (0..SUBSCRIBERS)
        .map(|i| (i, format!("sub.{i}").into_bytes()))
        .chain([(PUBLISHER, b"publisher".to_vec()), (CALLEE, b"callee".to_vec())])
        .chain([(LINK_PEER, b"instance.p1.0.4242424242424242".to_vec())])
        .collect();
    let hello = prepare(&[b"", b"VIP1", b"", b"h", b"hello", b"hello"]);
    for (p, id) in &idents {
        r.attach(PeerId(*p), id).unwrap();
        handle(&mut r, &mut s, *p, &hello);
    }
    let subscribe =
        prepare(&[b"", b"VIP1", b"", b"s", b"pubsub", b"subscribe", br#"{"prefix": "devices", "bus": ""}"#]);
    for p in 0..SUBSCRIBERS {
        handle(&mut r, &mut s, p, &subscribe);
    }
    // The link to p2, up, and p2's subscription list.
    let entry = br#"{"instance-name": "p2", "vip-address": "tcp://127.0.0.1:23917", "serverkey": "wSdbLxSEa3DNUtqHbM6nFX1gCh4ksbvjD98ChP8dsSQ"}"#;
    r.configure_link(parse_entry_json(entry).unwrap());
    let Some(LinkAction::Dial(link)) = r.poll_link(Instant(0), &mut s) else { panic!("no dial") };
    r.link_up(link, &mut s);
    let list = prepare(&[b"", b"VIP1", b"", b"", b"pubsub", b"external_list", br#"{"p2": ["devices/"]}"#]);
    handle(&mut r, &mut s, LINK_PEER, &list);

    let arg = format!("\"{}\"", "x".repeat(2 * 1024));
    let publish = prepare(&[
        b"",
        b"VIP1",
        b"",
        b"m.1",
        b"pubsub",
        b"publish",
        b"devices/hvac/1",
        br#"{"bus": "", "headers": {"min_compatible_version": "3.0", "max_compatible_version": ""}, "message": {"temp": 21.5}}"#,
    ]);
    let call_body = format!(
        r#"{{"to_platform": "p2", "to_peer": "callee2", "from_platform": "", "from_peer": "", "args": [{arg}]}}"#
    );
    let call = prepare(&[b"", b"VIP1", b"", b"17.8766", b"external_rpc", b"send_platform", call_body.as_bytes()]);
    let ext_publish = prepare(&[
        b"",
        b"VIP1",
        b"",
        b"m.2",
        b"pubsub",
        b"external_publish",
        b"devices/p2/x",
        br#"{"sender": "pub2", "bus": "", "headers": {}, "message": [1, 2, 3]}"#,
    ]);
    let peer_body = format!(
        r#"{{"to_platform": "p1", "to_peer": "callee", "from_platform": "p2", "from_peer": "caller2", "args": [{arg}]}}"#
    );
    let send_peer = prepare(&[b"", b"VIP1", b"", b"9.1", b"external_rpc", b"send_peer", peer_body.as_bytes()]);

    let round = |r: &mut Router, s: &mut CopySink| {
        handle(r, s, PUBLISHER, &publish);
        handle(r, s, PUBLISHER, &call);
        handle(r, s, LINK_PEER, &ext_publish);
        handle(r, s, LINK_PEER, &send_peer);
    };
    for _ in 0..WARM_UP {
        round(&mut r, &mut s);
    }
    let (peers0, links0) = (s.to_peers, s.to_links);
    let before = allocations();
    count_here(true);
    for _ in 0..ROUNDS {
        round(&mut r, &mut s);
    }
    count_here(false);
    let counted = allocations() - before;
    // Per round: 8 local deliveries + the count reply, 8 external deliveries, the callee's
    // send_peer; on the link: the external publish and the send_peer.
    assert_eq!(s.to_peers - peers0, ROUNDS * (2 * u64::from(SUBSCRIBERS) + 2));
    assert_eq!(s.to_links - links0, ROUNDS * 2);
    assert_eq!(r.stats.external_publish_dropped_down + r.stats.external_publish_dropped_full, 0);
    assert_eq!(counted, 0, "{counted} allocations in {ROUNDS} rounds; first (old size, new size) = {:?}", first());
    assert!(s.bytes > ROUNDS * 2 * 2 * 1024);
}
