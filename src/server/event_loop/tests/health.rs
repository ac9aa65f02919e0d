//! The router's own publish of its counters (`health.rs`), driven by the test's clock: due at
//! each interval and not before, delivered to a subscriber as VOLTTRON's pubsub delivers a
//! publish (USER_ID = the sender, headers, the `query stats` object with the top talkers), and
//! refused on a protected topic like an agent's publish.

use std::time::Duration;

use mio::Events;

use super::peer::Peer;
use super::server;
use crate::json::{self, Value};
use crate::limits::Limits;
use crate::server::event_loop::{Server, StatsPublish};
use crate::time::Instant;

const TOPIC: &[u8] = b"analysis/viprouter/test";

fn at(server: &mut Server, events: &mut Events, t: u64, peers: &mut [&mut Peer]) {
    for p in peers.iter_mut() {
        p.pump();
    }
    server.poll(events, Some(Duration::from_millis(5))).unwrap();
    assert_eq!(server.turn(events, Instant(t)), None);
    for p in peers.iter_mut() {
        p.pump();
    }
}

fn num(v: Value<'_>, key: &[u8]) -> u64 {
    v.get(key).and_then(|n| n.as_number()).and_then(|n| n.as_u64()).unwrap_or_else(|| panic!("{key:?}"))
}

fn publishes(p: &Peer) -> Vec<&Vec<Vec<u8>>> {
    p.inbox.iter().filter(|m| m.len() == 8 && m[4] == b"pubsub" && m[5] == b"publish").collect()
}

/// A server publishing every second as `viprouter`, a subscriber to `analysis/viprouter`, and
/// an agent that sent 5 pings; at time 10.
fn set_up() -> (Server, Events, Peer, Peer) {
    let (mut server, port) = server(Limits::COMPILED);
    server.set_stats_publish(StatsPublish { topic: TOPIC.to_vec(), sender: b"viprouter".to_vec(), interval_ms: 1000 });
    let mut events = Events::with_capacity(64);
    let mut sub = Peer::connect(port, b"historian");
    let mut talker = Peer::connect(port, b"talker");
    while !(sub.is_ready() && talker.is_ready()) {
        at(&mut server, &mut events, 0, &mut [&mut sub, &mut talker]);
    }
    sub.send(&[b"", b"VIP1", b"", b"s1", b"pubsub", b"subscribe", br#"{"prefix": "analysis/viprouter", "bus": ""}"#]);
    for i in 0..5u8 {
        talker.send(&[b"", b"VIP1", b"", &[b'p', b'0' + i], b"ping", b"x"]);
    }
    let pongs = |t: &Peer| t.inbox.iter().filter(|m| m[4] == b"ping").count();
    let subscribed = |s: &Peer| s.inbox.iter().any(|m| m[5] == b"request_response");
    for _ in 0..200 {
        at(&mut server, &mut events, 10, &mut [&mut sub, &mut talker]);
        if subscribed(&sub) && pongs(&talker) == 5 {
            return (server, events, sub, talker);
        }
    }
    panic!("not subscribed or not answered");
}

#[test]
fn counters_are_published_each_interval_as_volttron_delivers_a_publish() {
    let (mut server, mut events, mut sub, mut talker) = set_up();
    at(&mut server, &mut events, 999, &mut [&mut sub, &mut talker]);
    assert!(publishes(&sub).is_empty(), "not before the interval");
    for _ in 0..20 {
        at(&mut server, &mut events, 1000, &mut [&mut sub, &mut talker]);
    }
    let got = publishes(&sub);
    assert_eq!(got.len(), 1, "one publish at the interval, however many turns");
    let m = got[0];
    assert_eq!(m[0], b"");
    assert_eq!(m[1], b"VIP1");
    assert_eq!(m[2], b"viprouter", "USER_ID is the sender");
    assert_eq!(m[6], TOPIC);
    let body = json::parse(&m[7]).unwrap();
    assert!(body.get(b"sender").unwrap().as_str().unwrap().eq_latin1(b"viprouter"));
    assert!(body.get(b"bus").unwrap().as_str().unwrap().eq_latin1(b""));
    let headers = body.get(b"headers").unwrap();
    let date = headers.get(b"Date").unwrap().as_str().unwrap().as_plain().unwrap();
    let re = regex_lite::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$").unwrap();
    assert!(re.is_match(std::str::from_utf8(date).unwrap()), "{date:?}");
    assert!(headers.get(b"TimeStamp").unwrap().as_str().unwrap().eq_latin1(date));
    assert!(headers.get(b"min_compatible_version").unwrap().as_str().unwrap().eq_latin1(b"3.0"));
    assert!(headers.get(b"max_compatible_version").unwrap().as_str().unwrap().eq_latin1(b""));
    let message = body.get(b"message").unwrap();
    assert_eq!(num(message, b"uptime_ms"), 1000);
    assert_eq!(num(message, b"router_publishes"), 1);
    assert_eq!(num(message, b"peers"), 2);
    assert_eq!(num(message, b"connections"), 2);
    let top: Vec<Value<'_>> = message.get(b"top_talkers").unwrap().items().collect();
    assert!(top[0].get(b"identity").unwrap().as_str().unwrap().eq_latin1(b"talker"), "{:?}", message.raw());
    assert_eq!(num(top[0], b"msgs_in"), 5);
    // 5 pongs, and a `peerlist add` if the subscriber joined the peer set after it
    assert_eq!(num(top[0], b"msgs_out"), talker.inbox.len() as u64);
    assert_eq!(server.stats().router_publishes, 1);
    assert_eq!(server.stats().pubsub_deliveries, 1);

    at(&mut server, &mut events, 1999, &mut [&mut sub, &mut talker]);
    assert_eq!(publishes(&sub).len(), 1);
    at(&mut server, &mut events, 2000, &mut [&mut sub, &mut talker]);
    assert_eq!(publishes(&sub).len(), 2, "the next one an interval later");
}

#[test]
fn a_protected_topic_refuses_the_routers_publish_as_any_publish() {
    let (mut server, mut events, mut sub, mut talker) = set_up();
    let pubsub = &mut server.router.pubsub;
    pubsub
        .set_protected_topics_json(
            br#"{"write-protect": [{"topic": "analysis/viprouter", "capabilities": ["health"]}]}"#,
        )
        .unwrap();
    pubsub.set_user_capabilities_json(br#"{"capabilities": {"viprouter": {"other": null}}}"#).unwrap();
    for _ in 0..5 {
        at(&mut server, &mut events, 1000, &mut [&mut sub, &mut talker]);
    }
    assert!(publishes(&sub).is_empty());
    assert_eq!(server.stats().rejected_protected_topic, 1);
    assert_eq!(server.stats().router_publishes, 1);
    // With the capability, the next interval's publish is delivered.
    server.router.pubsub.set_user_capabilities_json(br#"{"capabilities": {"viprouter": {"health": null}}}"#).unwrap();
    for _ in 0..5 {
        at(&mut server, &mut events, 2000, &mut [&mut sub, &mut talker]);
    }
    assert_eq!(publishes(&sub).len(), 1);
}
