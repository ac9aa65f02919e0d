//! The RabbitMQ bridge at the VIP level, without sockets or a broker (issue #15): the router
//! driven through the bridge contract (`poll_bridge`, `bridge_dialled`, `bridge_up`,
//! `bridge_down`, `bridge_input`, `Sink::bus`) with a recording bus — bindings of peers and
//! `all_platforms` prefixes, `send_platform` over a ZMTP link when one is up and else over the
//! broker (11 while it cannot take it), exported publishes dropped and counted, what the broker
//! delivers. `tests/rabbitmq/` runs the same against RabbitMQ.

use viprouter::limits::Limits;
use viprouter::time::Instant;
use viprouter::vip::bridge::{BridgeDown, BridgeState, Bus, BusError, BusStatus};
use viprouter::vip::discovery::parse_discovery;
use viprouter::vip::links::{LinkAction, LinkId};
use viprouter::vip::peers::PeerId;
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::{Full, OnFull, Outcome, Sink};
use viprouter::zmtp::{Message, Part, Parts};

mod common;
use common::router::TestRouter as Router;

const A: u16 = 1; // agent a
const B: u16 = 2; // agent b
const L: u16 = 3; // a remote platform's link to us

type Frames = Vec<Vec<u8>>;

/// What the router asked of the broker connection.
#[derive(Debug, PartialEq)]
enum Call {
    Bind(Vec<u8>, bool),
    Prefixes(Vec<Vec<u8>>),
    Rpc(Vec<u8>, Vec<u8>, Vec<u8>),
    Publish(Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>),
}

#[derive(Default)]
struct FakeBus {
    calls: Vec<Call>,
    refuse: Option<BusError>,
}

impl Bus for FakeBus {
    fn bind_peer(&mut self, identity: &[u8], on: bool) -> Result<(), BusError> {
        self.calls.push(Call::Bind(identity.to_vec(), on));
        if identity == b"full" { Err(BusError::BindingsFull) } else { Ok(()) }
    }

    fn set_prefixes(&mut self, prefixes: &[Vec<u8>]) -> (usize, usize) {
        self.calls.push(Call::Prefixes(prefixes.to_vec()));
        (0, 0)
    }

    fn send_rpc(&mut self, caller: &[u8], msg_id: &[u8], body: &[u8]) -> Result<(), BusError> {
        if let Some(e) = self.refuse {
            return Err(e);
        }
        self.calls.push(Call::Rpc(caller.to_vec(), msg_id.to_vec(), body.to_vec()));
        Ok(())
    }

    fn publish(&mut self, publisher: &[u8], msg_id: &[u8], topic: &[u8], body: &[u8]) -> Result<(), BusError> {
        if let Some(e) = self.refuse {
            return Err(e);
        }
        self.calls.push(Call::Publish(publisher.to_vec(), msg_id.to_vec(), topic.to_vec(), body.to_vec()));
        Ok(())
    }

    fn status(&self) -> BusStatus {
        BusStatus { unconfirmed: 3, bindings: 5, bound: 4, blocked: false }
    }
}

/// Records deliveries to peers and links; lends the bus while `connected`.
#[derive(Default)]
struct TestSink {
    peers: Vec<(u16, Frames)>,
    links: Vec<(LinkId, Frames)>,
    bus: FakeBus,
    connected: bool,
}

impl Sink for TestSink {
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        self.peers.push((to.0, frames.iter().map(|f| f.to_vec()).collect()));
        Ok(())
    }

    fn deliver_link(&mut self, link: LinkId, frames: &[&[u8]]) -> Result<(), Full> {
        self.links.push((link, frames.iter().map(|f| f.to_vec()).collect()));
        Ok(())
    }

    fn bus(&mut self) -> Option<&mut dyn Bus> {
        if self.connected { Some(&mut self.bus) } else { None }
    }
}

impl TestSink {
    fn take_calls(&mut self) -> Vec<Call> {
        std::mem::take(&mut self.bus.calls)
    }

    fn take_peers(&mut self) -> Vec<(u16, Frames)> {
        std::mem::take(&mut self.peers)
    }
}

fn msg(f: &[&[u8]]) -> (Vec<u8>, Parts) {
    let mut buf = Vec::new();
    let mut parts = Parts::new();
    for x in f {
        parts.push(Part { start: buf.len() as u32, len: x.len() as u32 }).unwrap();
        buf.extend_from_slice(x);
    }
    (buf, parts)
}

fn send(r: &mut Router, s: &mut TestSink, from: u16, f: &[&[u8]]) {
    let (buf, parts) = msg(f);
    assert_eq!(r.handle(PeerId(from), Message::new(&buf, &parts), s, OnFull::Pause), Outcome::Done);
}

fn input(r: &mut Router, s: &mut TestSink, f: &[&[u8]]) {
    let (buf, parts) = msg(f);
    r.bridge_input(Message::new(&buf, &parts), s);
}

fn frames(v: &[&[u8]]) -> Frames {
    v.iter().map(|f| f.to_vec()).collect()
}

const CALL: &[u8] =
    br#"{"to_platform": "v1", "to_peer": "callee", "from_platform": "", "from_peer": "", "args": ["{}"]}"#;
const PUBLISH: &[u8] = br#"{"bus": "", "headers": {}, "message": 1}"#;

/// Instance `gw` with agents a and b and a remote link peer attached and registered, the bridge
/// configured (exporting `devices/`) and, if `dial`, dialled and up.
fn gateway(dial: bool) -> (Router, TestSink) {
    let mut info = PlatformInfo::with_router_id(b"rid");
    info.instance_name = b"gw".to_vec();
    let limits = Limits { max_connections: 16, max_links: 4, ..Limits::COMPILED };
    let mut r = Router::new(&limits, info, 7);
    let mut s = TestSink::default();
    r.set_bridge("amqp://127.0.0.1:5672/volttron", vec![b"devices/".to_vec()]);
    for (p, id) in [(A, &b"a"[..]), (B, b"b"), (L, b"instance.gw.0.1")] {
        r.attach(PeerId(p), id).unwrap();
        send(&mut r, &mut s, p, &[b"", b"VIP1", b"", b"h", b"hello", b"hello"]);
    }
    s.take_peers();
    if dial {
        assert!(r.poll_bridge(Instant(0)));
        s.connected = true;
        r.bridge_dialled(&mut s);
        r.bridge_up();
        assert_eq!(r.bridge.state(), BridgeState::Up);
    }
    (r, s)
}

#[test]
fn a_new_connection_gets_every_peer_and_prefix_and_follows_the_changes() {
    let (mut r, mut s) = gateway(false);
    let sub = br#"{"prefix": "devices/", "bus": "", "all_platforms": true}"#;
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"s", b"pubsub", b"subscribe", sub]);
    assert!(s.take_calls().is_empty(), "no connection: nothing sent");
    assert!(r.poll_bridge(Instant(0)));
    s.connected = true;
    r.bridge_dialled(&mut s);
    // The link peer is not an agent: not bound.
    assert_eq!(
        s.take_calls(),
        vec![
            Call::Bind(b"a".to_vec(), true),
            Call::Bind(b"b".to_vec(), true),
            Call::Prefixes(vec![b"devices/".to_vec()])
        ]
    );
    r.attach(PeerId(4), b"c").unwrap();
    send(&mut r, &mut s, 4, &[b"", b"VIP1", b"", b"h", b"hello", b"hello"]);
    assert_eq!(s.take_calls(), vec![Call::Bind(b"c".to_vec(), true)]);
    // A second subscriber to the same prefix, or an internal one, changes nothing.
    send(&mut r, &mut s, B, &[b"", b"VIP1", b"", b"s", b"pubsub", b"subscribe", sub]);
    let internal = br#"{"prefix": "x", "bus": "", "all_platforms": false}"#;
    send(&mut r, &mut s, B, &[b"", b"VIP1", b"", b"s", b"pubsub", b"subscribe", internal]);
    assert!(s.take_calls().is_empty());
    send(&mut r, &mut s, 4, &[b"", b"VIP1", b"", b"a", b"agentstop", b"c"]);
    assert_eq!(s.take_calls(), vec![Call::Bind(b"c".to_vec(), false)]);
    // a leaves: unbound; b still holds the prefix. Then b leaves: the prefix goes.
    r.detach(PeerId(A), &mut s);
    assert_eq!(s.take_calls(), vec![Call::Bind(b"a".to_vec(), false)]);
    r.detach(PeerId(B), &mut s);
    assert_eq!(s.take_calls(), vec![Call::Bind(b"b".to_vec(), false), Call::Prefixes(vec![])]);
    // A refused binding is counted.
    r.attach(PeerId(5), b"full").unwrap();
    send(&mut r, &mut s, 5, &[b"", b"VIP1", b"", b"h", b"hello", b"hello"]);
    assert_eq!(r.stats.amqp_rejected_binding_full, 1);
}

#[test]
fn send_platform_goes_to_the_broker_and_waits_for_nothing() {
    let (mut r, mut s) = gateway(true);
    s.take_calls();
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"12.5", b"external_rpc", b"send_platform", CALL]);
    assert_eq!(s.take_calls(), vec![Call::Rpc(b"a".to_vec(), b"12.5".to_vec(), CALL.to_vec())]);
    assert!(s.take_peers().is_empty(), "no reply: the answer comes from the broker");
    // Refused by the connection (window full): error 11 at once, MSG_ID agent-readable.
    s.bus.refuse = Some(BusError::WindowFull);
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"12.6", b"external_rpc", b"send_platform", CALL]);
    let e = frames(&[b"", b"VIP1", b"a", b"\"12.6\"", b"error", b"11", b"Resource temporarily unavailable", b"v1"]);
    assert_eq!(s.take_peers()[0].1[..8], e[..]);
    // Not something the broker can carry: 113.
    s.bus.refuse = Some(BusError::BadBody);
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"12.7", b"external_rpc", b"send_platform", CALL]);
    assert_eq!(s.take_peers()[0].1[5], b"113");
    // The broker is down: 11.
    s.bus.refuse = None;
    r.bridge_down(Instant(10), BridgeDown::Closed);
    s.connected = false;
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"12.8", b"external_rpc", b"send_platform", CALL]);
    assert_eq!(s.take_peers()[0].1[5], b"11");
    assert_eq!((r.stats.amqp_rpc_out, r.stats.amqp_rpc_refused, r.stats.amqp_rpc_unmapped), (1, 2, 1));
}

#[test]
fn a_zmtp_link_that_is_up_wins_over_the_broker() {
    let (mut r, mut s) = gateway(true);
    let d = br#"{"v1": {"vip-address": "tcp://127.0.0.1:1", "instance-name": "v1", "serverkey": "wSdbLxSEa3DNUtqHbM6nFX1gCh4ksbvjD98ChP8dsSQ"}}"#;
    r.set_file_links(&parse_discovery(d).unwrap());
    let Some(LinkAction::Dial(id)) = r.poll_link(Instant(0), &mut s) else { panic!("no dial") };
    s.take_calls();
    // Configured but not up yet: the broker carries it.
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"1", b"external_rpc", b"send_platform", CALL]);
    assert!(matches!(s.take_calls()[..], [Call::Rpc(..)]));
    r.link_up(id, &mut s);
    s.links.clear();
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"2", b"external_rpc", b"send_platform", CALL]);
    assert!(s.take_calls().is_empty());
    assert_eq!(s.links.len(), 1);
    assert_eq!(s.links[0].1[5], b"send_peer");
}

#[test]
fn exports_are_published_after_local_delivery_or_dropped_and_counted() {
    let (mut r, mut s) = gateway(true);
    s.take_calls();
    let sub = br#"{"prefix": "devices", "bus": "", "all_platforms": false}"#;
    send(&mut r, &mut s, B, &[b"", b"VIP1", b"", b"s", b"pubsub", b"subscribe", sub]);
    s.take_peers();
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"p1", b"pubsub", b"publish", b"devices/x", PUBLISH]);
    let delivery = br#"{"sender": "a", "bus": "", "headers": {}, "message": 1}"#;
    assert_eq!(
        s.take_calls(),
        vec![Call::Publish(b"a".to_vec(), b"p1".to_vec(), b"devices/x".to_vec(), delivery.to_vec())]
    );
    let out = s.take_peers();
    assert_eq!(out[0].0, B, "the local subscriber first");
    assert_eq!(out[1].1[6], 1u32.to_le_bytes(), "the count is the local subscribers");
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"p2", b"pubsub", b"publish", b"devicesX", PUBLISH]);
    assert!(s.take_calls().is_empty(), "not exported");
    s.bus.refuse = Some(BusError::TxFull);
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"p3", b"pubsub", b"publish", b"devices/y", PUBLISH]);
    s.connected = false;
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"p4", b"pubsub", b"publish", b"devices/z", PUBLISH]);
    let st = &r.stats;
    assert_eq!((st.amqp_export_out, st.amqp_dropped_tx_full, st.amqp_dropped_down), (1, 1, 1));
}

#[test]
fn what_the_broker_delivers_reaches_local_peers() {
    let (mut r, mut s) = gateway(true);
    let body = br#"{"to_platform": "gw", "to_peer": "b", "from_platform": "v1", "from_peer": "p", "args": ["{}"]}"#;
    input(&mut r, &mut s, &[b"", b"VIP1", b"", b"m1", b"external_rpc", b"send_peer", body]);
    assert_eq!(s.take_peers(), vec![(B, frames(&[b"", b"VIP1", b"v1.p", b"m1", b"external_rpc", b"send_peer", body]))]);
    let gone = br#"{"to_platform": "gw", "to_peer": "nobody", "from_platform": "v1", "from_peer": "p", "args": []}"#;
    input(&mut r, &mut s, &[b"", b"VIP1", b"", b"m2", b"external_rpc", b"send_peer", gone]);
    assert!(s.take_peers().is_empty());
    let sub = br#"{"prefix": "devices", "bus": "", "all_platforms": true}"#;
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"s", b"pubsub", b"subscribe", sub]);
    s.take_peers();
    let remote = br#"{"sender": "p", "bus": "", "headers": {}, "message": 5}"#;
    input(&mut r, &mut s, &[b"", b"VIP1", b"", b"m3", b"pubsub", b"external_publish", b"devices/r", remote]);
    assert_eq!(
        s.take_peers(),
        vec![(A, frames(&[b"", b"VIP1", b"", b"m3", b"pubsub", b"publish", b"devices/r", remote]))]
    );
    input(
        &mut r,
        &mut s,
        &[b"a", b"VIP1", b"", b"7.5", b"error", b"113", b"No route to host", b"v1.x", b"external_rpc"],
    );
    assert_eq!(
        s.take_peers(),
        vec![(
            A,
            frames(&[b"", b"VIP1", b"a", b"\"7.5\"", b"error", b"113", b"No route to host", b"v1.x", b"external_rpc"])
        )]
    );
    input(&mut r, &mut s, &[b"", b"VIP1", b"", b"m4", b"hello", b"hello"]);
    let st = &r.stats;
    assert_eq!(
        (st.amqp_rpc_in, st.amqp_rpc_undeliverable, st.amqp_publish_in, st.amqp_errors_in, st.amqp_dropped_in),
        (1, 1, 1, 1, 1)
    );
}

#[test]
fn query_stats_shows_the_bridge() {
    let (mut r, mut s) = gateway(true);
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"q", b"query", b"stats"]);
    let out = s.take_peers();
    let v = String::from_utf8(out[0].1[6].clone()).unwrap();
    assert!(
        v.contains(r#""rabbitmq": {"state": "up", "broker": "amqp://127.0.0.1:5672/volttron", "last_down": null, "blocked": false, "ups": 1, "downs": 0, "unconfirmed": 3, "bindings": 5, "bound": 4"#),
        "{v}"
    );
    assert!(v.contains(r#""amqp_ups": 1"#), "{v}");
}
