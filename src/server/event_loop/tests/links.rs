//! Two routers linked to each other in the test thread (multi-platform routing, VIP.md §11.3):
//! each dials the other's CURVE endpoint with its platform key pair, as a DEALER under
//! `instance.<remote>.0.<digits>`; agents (the library's client session, NULL) on both sides.
//! The link comes up after its handshake, carries external RPC and pubsub both ways, goes down
//! when the remote goes away (an RPC then gets 113 at once, a publish counts no remote), and
//! comes back when the remote does.

use std::time::{Duration, Instant as StdInstant};

use mio::Events;

use super::peer::Peer;
use crate::limits::Limits;
use crate::server::event_loop::Server;
use crate::server::listener;
use crate::vip::discovery::Discovery;
use crate::vip::links::{LinkConfig, LinkState};
use crate::vip::platform::PlatformInfo;
use crate::vip::router::Router;
use crate::zmtp::mechanism::Mechanism;
use crate::zmtp::mechanism::curve::{CookieKeys, KeyPair};
use crate::zmtp::session::CurveContext;

/// One platform: a router with a NULL endpoint for its agents and a CURVE endpoint for links.
struct Platform {
    server: Server,
    events: Events,
    agents_port: u16,
    link_port: u16,
    keys: KeyPair,
}

fn port(endpoint: &str) -> u16 {
    endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

impl Platform {
    /// Platform `name`, its link endpoint on `link_port` (0: any).
    fn new(name: &str, link_port: u16, keys: KeyPair) -> Platform {
        let mut listeners = listener::bind("tcp://127.0.0.1:0", Mechanism::Null).unwrap();
        listeners.extend(listener::bind(&format!("tcp://127.0.0.1:{link_port}"), Mechanism::Curve).unwrap());
        let (agents_port, link_port) = (port(&listeners[0].endpoint), port(&listeners[1].endpoint));
        let mut info = PlatformInfo::with_router_id(name.as_bytes());
        info.instance_name = name.as_bytes().to_vec();
        info.addresses_json = format!(r#"["tcp://127.0.0.1:{link_port}"]"#).into_bytes();
        let limits = Limits { max_links: 4, ..Limits::COMPILED };
        let router = Router::new(&limits, info, 5);
        let mut server = Server::new(listeners, router, limits, name.as_bytes().to_vec()).unwrap();
        server.set_curve(CurveContext { keys: keys.clone(), cookies: CookieKeys::new(&mut rand_core::OsRng) });
        server.set_authorize(Box::new(|_| true));
        server.set_link_keys(keys.clone());
        Platform { server, events: Events::with_capacity(64), agents_port, link_port, keys }
    }

    /// Link to `name` at `port` with server key `key`.
    fn link_to(&mut self, name: &str, port: u16, key: &KeyPair) {
        let entry = LinkConfig {
            instance_name: name.as_bytes().to_vec(),
            vip_address: format!("tcp://127.0.0.1:{port}"),
            serverkey: key.public.0,
        };
        self.server.set_file_links(&Discovery { entries: vec![entry], skipped: Vec::new() });
    }

    fn turn(&mut self) {
        self.server.poll(&mut self.events, Some(Duration::from_millis(1))).unwrap();
        let now = self.server.now();
        assert_eq!(self.server.turn(&self.events, now), None);
    }

    fn link_state(&self, name: &[u8]) -> LinkState {
        self.server.router.links.by_name(name).unwrap().state()
    }
}

/// Turn every platform and pump every agent until `done` (or fail after 10 s).
fn until(
    ps: &mut [&mut Platform],
    agents: &mut [&mut Peer],
    what: &str,
    mut done: impl FnMut(&[&mut Platform], &[&mut Peer]) -> bool,
) {
    let end = StdInstant::now() + Duration::from_secs(10);
    while !done(ps, agents) {
        assert!(StdInstant::now() < end, "timed out: {what}");
        for p in ps.iter_mut() {
            p.turn();
        }
        for a in agents.iter_mut() {
            a.pump();
        }
    }
}

fn has(inbox: &[Vec<Vec<u8>>], f: impl Fn(&Vec<Vec<u8>>) -> bool) -> bool {
    inbox.iter().any(f)
}

const RPC_TO_P2: &[u8] =
    br#"{"to_platform": "p2", "to_peer": "callee", "from_platform": "", "from_peer": "", "args": ["{\"id\": 1}"]}"#;

#[test]
fn two_routers_link_carry_rpc_and_pubsub_and_relink_after_an_outage() {
    let (k1, k2) = (KeyPair::generate(&mut rand_core::OsRng), KeyPair::generate(&mut rand_core::OsRng));
    let mut p1 = Platform::new("p1", 0, k1.clone());
    let mut p2 = Platform::new("p2", 0, k2.clone());
    p1.link_to("p2", p2.link_port, &p2.keys);
    p2.link_to("p1", p1.link_port, &p1.keys);
    let mut caller = Peer::connect(p1.agents_port, b"caller");
    let mut publisher = Peer::connect(p1.agents_port, b"pub");
    let mut callee = Peer::connect(p2.agents_port, b"callee");
    let mut sub = Peer::connect(p2.agents_port, b"sub");
    until(&mut [&mut p1, &mut p2], &mut [&mut caller, &mut publisher, &mut callee, &mut sub], "links up", |ps, a| {
        ps[0].link_state(b"p2") == LinkState::Up
            && ps[1].link_state(b"p1") == LinkState::Up
            && a.iter().all(|a| a.is_ready())
    });
    for a in [&mut caller, &mut publisher, &mut callee, &mut sub] {
        a.send(&[b"", b"VIP1", b"", b"h", b"hello", b"hello"]);
    }

    // External RPC p1 → p2: the callee sees the caller's platform and identity as its user.
    caller.send(&[b"", b"VIP1", b"", b"m1", b"external_rpc", b"send_platform", RPC_TO_P2]);
    until(&mut [&mut p1, &mut p2], &mut [&mut caller, &mut callee], "send_peer at the callee", |_, a| {
        has(&a[1].inbox, |m| m.get(5).is_some_and(|f| f == b"send_peer"))
    });
    let got = callee.inbox.iter().find(|m| m[5] == b"send_peer").unwrap().clone();
    assert_eq!(
        &got[..5],
        &[b"".to_vec(), b"VIP1".to_vec(), b"p1.caller".to_vec(), b"m1".to_vec(), b"external_rpc".to_vec()]
    );
    let body = String::from_utf8(got[6].clone()).unwrap();
    assert!(body.contains(r#""from_platform": "p1", "from_peer": "caller""#), "{body}");
    // …and back.
    let back = br#"{"to_platform": "p1", "to_peer": "caller", "from_platform": "", "from_peer": "", "args": ["{\"result\": 2}"]}"#;
    callee.send(&[b"", b"VIP1", b"", b"m1", b"external_rpc", b"send_platform", back]);
    until(&mut [&mut p1, &mut p2], &mut [&mut caller, &mut callee], "the answer at the caller", |_, a| {
        has(&a[0].inbox, |m| m.get(5).is_some_and(|f| f == b"send_peer"))
    });

    // Pubsub p1 → p2: sub's all_platforms subscription travels as p2's external_list.
    sub.send(&[
        b"",
        b"VIP1",
        b"",
        b"s1",
        b"pubsub",
        b"subscribe",
        br#"{"prefix": "devices", "bus": "", "all_platforms": true}"#,
    ]);
    until(&mut [&mut p1, &mut p2], &mut [&mut sub], "p2's list at p1", |ps, _| {
        let links = &ps[0].server.router.links;
        links.by_name(b"p2").and_then(|l| links.ext_subs(l.id())).is_some_and(|e| e.matches(b"devices/x"))
    });
    publisher.send(&[
        b"",
        b"VIP1",
        b"",
        b"p1",
        b"pubsub",
        b"publish",
        b"devices/x",
        br#"{"bus": "", "headers": {}, "message": 42}"#,
    ]);
    until(&mut [&mut p1, &mut p2], &mut [&mut publisher, &mut sub], "the publish at p2's subscriber", |_, a| {
        has(&a[1].inbox, |m| m.get(5).is_some_and(|f| f == b"publish"))
    });
    let count = publisher.inbox.iter().find(|m| m[5] == b"request_response").unwrap();
    assert_eq!(count[6], 1u32.to_le_bytes(), "no local subscriber, one remote platform");
    let delivered = sub.inbox.iter().find(|m| m[5] == b"publish").unwrap();
    assert_eq!(delivered[7], br#"{"sender": "pub", "bus": "", "headers": {}, "message": 42}"#);

    // p2 goes away: p1's link goes down, an RPC gets 113 naming p2 at once, a publish counts 0.
    let p2_link_port = p2.link_port;
    drop(p2);
    drop(callee);
    drop(sub);
    until(&mut [&mut p1], &mut [&mut caller], "p1's link down", |ps, _| ps[0].link_state(b"p2") != LinkState::Up);
    caller.inbox.clear();
    caller.send(&[b"", b"VIP1", b"", b"m2", b"external_rpc", b"send_platform", RPC_TO_P2]);
    let is_error = |m: &Vec<Vec<u8>>| m.get(4).is_some_and(|f| f == b"error");
    until(&mut [&mut p1], &mut [&mut caller], "113 to the caller", |_, a| has(&a[0].inbox, is_error));
    let error = caller.inbox.iter().find(|m| is_error(m)).unwrap();
    assert_eq!(&error[4..8], &[b"error".to_vec(), b"113".to_vec(), b"No route to host".to_vec(), b"p2".to_vec()]);
    publisher.inbox.clear();
    publisher.send(&[
        b"",
        b"VIP1",
        b"",
        b"p2",
        b"pubsub",
        b"publish",
        b"devices/x",
        br#"{"bus": "", "headers": {}, "message": 43}"#,
    ]);
    let is_count = |m: &Vec<Vec<u8>>| m.get(5).is_some_and(|f| f == b"request_response");
    until(&mut [&mut p1], &mut [&mut publisher], "the count", |_, a| has(&a[0].inbox, is_count));
    let count = publisher.inbox.iter().find(|m| is_count(m)).unwrap();
    assert_eq!(count[6], 0u32.to_le_bytes(), "the remote is not counted while its link is down");

    // p2 comes back on the same address: the link comes up again by itself (backoff ≤ 5 s).
    let mut p2 = Platform::new("p2", p2_link_port, k2);
    p2.link_to("p1", p1.link_port, &p1.keys);
    until(&mut [&mut p1, &mut p2], &mut [], "p1's link up again", |ps, _| {
        ps[0].link_state(b"p2") == LinkState::Up && ps[1].link_state(b"p1") == LinkState::Up
    });
    let l = p1.server.router.links.by_name(b"p2").unwrap();
    assert_eq!(l.counters.ups, 2);
    assert!(l.counters.downs >= 1);
    let stats = p1.server.stats();
    assert_eq!(stats.link_ups, 2);
    assert_eq!((stats.external_rpc_out, stats.external_rpc_in, stats.external_rpc_unreachable), (1, 1, 1));
    assert_eq!((stats.external_publish_out, stats.external_publish_dropped_down), (1, 0));
    super::assert_budget_balanced(&p1.server);
}
