//! Zero allocation on the RabbitMQ bridge's message path (issue #15): after the handshake and
//! a warm-up, 100 000 publishes (VOLTTRON's properties and headers, mapped from a VIP RPC by
//! `amqp::mapping`), 100 000 deliveries parsed in place and mapped back (routing key, the
//! properties, the body, the inbound-RPC body written into a reused buffer), their acks and the
//! broker's confirms allocate nothing. Sans-IO: the broker's bytes are built here, so no
//! broker is needed; `tests/amqp_broker.rs` runs the same client against RabbitMQ.
#![cfg(feature = "rabbitmq")]

#[path = "common/alloc_counter.rs"]
mod alloc_counter;
use alloc_counter::{allocations_in, first};

use viprouter::amqp::client::{Client, Credentials, EXCHANGE, Event, Publish, Settings};
use viprouter::amqp::mapping::pubsub::InboundPublish;
use viprouter::amqp::mapping::rpc::{InboundRpc, OutboundRpc};
use viprouter::amqp::mapping::{self, vip_headers};
use viprouter::amqp::properties::put_content_header;
use viprouter::amqp::{content, frame, wire};
use viprouter::fuzzing::amqp_handshake;
use viprouter::limits::Limits;
use viprouter::time::Instant;

const N: u64 = 100_000;

fn method(out: &mut Vec<u8>, class: u16, id: u16, args: &[u8]) {
    let at = frame::begin(out, frame::METHOD, 1);
    wire::put_u16(out, class);
    wire::put_u16(out, id);
    out.extend_from_slice(args);
    frame::end(out, at).unwrap();
}

/// basic.deliver (tag 1) + header (VOLTTRON's RPC properties) + body, and a basic.ack confirm.
fn broker_message(rpc_body: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut d = Vec::new();
    let mut args = vec![4];
    args.extend_from_slice(b"ctag");
    args.extend_from_slice(&1u64.to_be_bytes());
    args.push(0);
    wire::put_shortstr(&mut args, EXCHANGE).unwrap();
    wire::put_shortstr(&mut args, b"n.callee").unwrap();
    method(&mut d, 60, 60, &args);
    let hdrs = vip_headers(b"n.callee", b"v1.agent_b");
    let props = mapping::vip_properties(b"v1.agent_b", b"RPC", b"1.123", &hdrs);
    put_content_header(&mut d, 1, rpc_body.len() as u64, &props).unwrap();
    content::put_body(&mut d, 1, rpc_body, 131_072).unwrap();
    let mut c = Vec::new();
    let mut a = 1u64.to_be_bytes().to_vec();
    a.push(1); // multiple
    method(&mut c, 60, 80, &a);
    (d, c)
}

#[test]
fn publish_deliver_ack_confirm_allocate_nothing() {
    let creds = Credentials::Plain { user: "guest".into(), password: "guest".into() };
    let mut c = Client::new(Settings::new(creds, "/", "n", &Limits::COMPILED));
    c.bind(b"n.a").unwrap();
    c.begin(Instant(0));
    let hs = amqp_handshake();
    let mut off = 0;
    let mut ready = false;
    while off < hs.len() {
        let i = c.handle_input(&hs[off..], Instant(0)).unwrap();
        ready |= i.event == Some(Event::Ready);
        off += i.consumed;
    }
    assert!(ready && c.is_ready());
    let n = c.transmit().len();
    c.written(n, Instant(0));

    let vip = br#"{"to_platform": "v1", "to_peer": "agent_b", "from_platform": "", "from_peer": "", "args": ["{\"jsonrpc\": \"2.0\", \"method\": \"echo\", \"params\": [1], \"id\": \"7\"}"]}"#;
    let rpc_body = br#"["{\"jsonrpc\": \"2.0\", \"result\": 1, \"id\": \"7\"}"]"#;
    let (delivery, mut confirm) = broker_message(rpc_body);
    let mut vip_out: Vec<u8> = Vec::with_capacity(4096);
    let mut one = |c: &mut Client, now: Instant| {
        // Outbound RPC: VIP → AMQP publish.
        let r = OutboundRpc::from_vip(b"n", b"caller", b"m-1", vip).unwrap();
        let h = r.headers();
        let p = Publish {
            exchange: EXCHANGE,
            routing_key: &r.routing_key,
            mandatory: true,
            properties: r.properties(&h),
            body: r.body,
        };
        let seq = c.publish(&p).unwrap();
        // The broker's delivery, parsed in place, mapped to VIP, acked.
        let i = c.handle_input(&delivery, now).unwrap();
        assert_eq!(i.consumed, delivery.len());
        let Some(Event::Delivery(d)) = i.event else { panic!("{:?}", i.event) };
        let body = d.body.contiguous().unwrap();
        let m = InboundRpc::from_delivery(b"n", &d, body).unwrap();
        vip_out.clear();
        m.write_body(b"n", &mut vip_out).unwrap();
        assert!(InboundPublish::from_delivery(b"n", &d, body).is_err());
        c.ack(d.delivery_tag, false);
        // The broker's confirm of that publish (its tag is the publish's sequence number).
        confirm[11..19].copy_from_slice(&seq.to_be_bytes());
        let i = c.handle_input(&confirm, now).unwrap();
        assert!(matches!(i.event, Some(Event::Confirmed { .. })));
        let n = c.transmit().len();
        c.written(n, now);
    };
    for k in 0..1000 {
        one(&mut c, Instant(k));
    }
    let n = allocations_in(|| {
        for k in 0..N {
            one(&mut c, Instant(1000 + k));
        }
    });
    assert_eq!(n, 0, "allocations on the AMQP message path; first at {:?}", first());
    assert_eq!(c.unconfirmed(), 0);
}

/// The bridge's whole plain path, router included: a local agent's `send_platform` and an
/// exported publish through the router into the real broker connection
/// (`server::broker::BrokerProtocol` as the router's `Bus`), its output taken for the socket,
/// then the broker's bytes — an RPC delivery for the agent, a remote publish for a local
/// `all_platforms` subscriber, a remote publish split over two body frames (copied
/// into one slice), our own export coming back (self-echo: dropped and acked), the
/// confirm of both publishes — through the connection's `handle_input`, the held VIP messages
/// through `Router::bridge_input` to the local peers, and the acks out. 20 000 rounds after a
/// warm-up allocate nothing.
mod bridge_path {
    use super::*;
    use viprouter::server::broker::{BrokerConfig, BrokerProtocol};
    use viprouter::server::protocol::{Context, Protocol};
    use viprouter::stats::Stats;
    use viprouter::vip::bridge::Bus;
    use viprouter::vip::peers::PeerId;
    use viprouter::vip::platform::PlatformInfo;
    use viprouter::vip::router::{Full, OnFull, Outcome, Router, Sink};
    use viprouter::zmtp::session::{Input, SessionConfig};
    use viprouter::zmtp::{Message, Part, Parts};

    const ROUNDS: u64 = 20_000;

    /// Local peers (deliveries counted, not kept) and, while routing local messages, the bus.
    struct TestSink<'a> {
        bus: Option<&'a mut BrokerProtocol>,
        delivered: [u64; 4],
    }

    impl Sink for TestSink<'_> {
        fn deliver(&mut self, to: PeerId, _frames: &[&[u8]]) -> Result<(), Full> {
            self.delivered[usize::from(to.0)] += 1;
            Ok(())
        }

        fn bus(&mut self) -> Option<&mut dyn Bus> {
            self.bus.as_deref_mut().map(|b| b as &mut dyn Bus)
        }
    }

    fn handshake(binds: usize) -> Vec<u8> {
        let full = amqp_handshake();
        // amqp_handshake() ends with one bind-ok (12 bytes) and consume-ok; repeat the bind-ok.
        let consume_ok = 8 + 4 + 5 + 1;
        let (head, consume) = full.split_at(full.len() - consume_ok);
        let (head, bind_ok) = head.split_at(head.len() - 12);
        let mut out = head.to_vec();
        for _ in 0..binds {
            out.extend_from_slice(bind_ok);
        }
        out.extend_from_slice(consume);
        out
    }

    /// basic.deliver + header + `body` in body frames of at most `frame` bytes (a broker may
    /// send smaller frames than frame-max: the client reassembles them).
    fn deliver(out: &mut Vec<u8>, rk: &[u8], kind: &[u8], app_id: &[u8], body: &[u8], frame: u32) {
        deliver_with_id(out, rk, kind, app_id, b"9.5", body, frame);
    }

    /// [`deliver`] with the message id `id`.
    fn deliver_with_id(out: &mut Vec<u8>, rk: &[u8], kind: &[u8], app_id: &[u8], id: &[u8], body: &[u8], frame: u32) {
        let mut args = vec![4];
        args.extend_from_slice(b"ctag");
        args.extend_from_slice(&7u64.to_be_bytes());
        args.push(0);
        wire::put_shortstr(&mut args, EXCHANGE).unwrap();
        wire::put_shortstr(&mut args, rk).unwrap();
        method(out, 60, 60, &args);
        let hdrs = vip_headers(rk, app_id);
        let props = mapping::vip_properties(app_id, kind, id, &hdrs);
        put_content_header(out, 1, body.len() as u64, &props).unwrap();
        content::put_body(out, 1, body, frame).unwrap();
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

    /// Feed `rx` to the connection until it needs more; held messages go to the router.
    /// `wire`: what the connection writes for the socket (acks), kept between calls.
    fn feed(
        p: &mut BrokerProtocol,
        r: &mut Router,
        st: &mut Stats,
        rx: &mut Vec<u8>,
        wire: &mut Vec<u8>,
        now: Instant,
    ) -> [u64; 4] {
        let limits = Limits::COMPILED;
        let mut rng = rand_core::OsRng;
        let mut sink = TestSink { bus: None, delivered: [0; 4] };
        wire.clear();
        loop {
            let mut cx = Context {
                session: SessionConfig { identity: b"rid", limits: &limits, curve: None },
                rng: &mut rng,
                now,
                stats: st,
            };
            match p.handle_input(&mut cx, &mut rx[..], wire).unwrap() {
                Input::NeedMore { consumed, .. } => {
                    rx.drain(..consumed);
                    break;
                }
                Input::Ready { consumed } => {
                    rx.drain(..consumed);
                    r.bridge_up(st);
                }
                Input::Message => {
                    let (m, _) = p.split(&[]);
                    r.bridge_input(st, m, &mut sink);
                    let n = p.release();
                    rx.drain(..n);
                }
                Input::Verify { .. } => unreachable!(),
            }
        }
        sink.delivered
    }

    /// A router with peers `a` and `b` (`b` an `all_platforms` subscriber to `devices`) and its
    /// bridge up over `BrokerProtocol` after the broker's side of the handshake.
    fn bridge_up() -> (Router, Stats, BrokerProtocol, Vec<u8>, Vec<u8>) {
        let limits = Limits::COMPILED;
        let mut info = PlatformInfo::with_router_id(b"rid");
        info.instance_name = b"gw".to_vec();
        let mut r = Router::new(&limits, info, 1);
        let mut st = Stats::default();
        r.set_bridge("amqp://test", vec![b"devices/".to_vec()]);
        let creds = Credentials::Plain { user: "guest".into(), password: "guest".into() };
        let config = BrokerConfig {
            host: "127.0.0.1".into(),
            port: 5672,
            settings: Settings::new(creds, "/", "gw", &limits),
            #[cfg(feature = "rabbitmq-tls")]
            tls: None,
            label: "amqp://test".into(),
            export: vec![b"devices/".to_vec()],
        };
        let mut p = BrokerProtocol::new(&config).unwrap();
        let mut none = TestSink { bus: None, delivered: [0; 4] };
        for (peer, id) in [(1u16, &b"a"[..]), (2, b"b")] {
            r.attach(&mut st, PeerId(peer), id).unwrap();
            route(&mut r, &mut st, &mut none, peer, &[b"", b"VIP1", b"", b"h", b"hello", b"hello"]);
        }
        let sub = br#"{"prefix": "devices", "bus": "", "all_platforms": true}"#;
        route(&mut r, &mut st, &mut none, 2, &[b"", b"VIP1", b"", b"s", b"pubsub", b"subscribe", sub]);
        assert!(r.poll_bridge(Instant(0)));
        r.bridge_dialled(&mut st, &mut TestSink { bus: Some(&mut p), delivered: [0; 4] });
        {
            let mut rng = rand_core::OsRng;
            let mut cx = Context {
                session: SessionConfig { identity: b"rid", limits: &limits, curve: None },
                rng: &mut rng,
                now: Instant(0),
                stats: &mut st,
            };
            p.connected(&mut cx, &mut Vec::new()).unwrap();
        }
        let mut rx = handshake(3); // a, b, __pubsub__.*.devices.#
        let mut wire = Vec::with_capacity(1 << 16);
        feed(&mut p, &mut r, &mut st, &mut rx, &mut wire, Instant(0));
        assert_eq!(r.bridge.state(), viprouter::vip::bridge::BridgeState::Up);
        assert_eq!(st.amqp_ups, 1);
        (r, st, p, rx, wire)
    }

    /// Route the VIP message `f` from local peer `from`.
    fn route(r: &mut Router, st: &mut Stats, sink: &mut TestSink<'_>, from: u16, f: &[&[u8]]) {
        let (buf, parts) = msg(f);
        assert_eq!(r.handle(st, PeerId(from), Message::new(&buf, &parts), sink, OnFull::Pause), Outcome::Done);
    }

    /// The first delivery on a fresh connection (the held message's buffer not grown yet) is an
    /// RPC with the longest message id AMQP carries (a short string, 255 bytes) and one-letter
    /// names: the reserve for its VIP frames counts the message id, so it is mapped, not
    /// dropped as "output buffer full".
    #[test]
    fn a_first_rpc_with_the_longest_message_id_and_short_names_is_mapped() {
        let (mut r, mut st, mut p, mut rx, mut wire) = bridge_up();
        let id = [b'7'; 255];
        deliver_with_id(&mut rx, b"gw.a", b"RPC", b"v1.p", &id, b"[1]", 131_072);
        let delivered = feed(&mut p, &mut r, &mut st, &mut rx, &mut wire, Instant(1));
        assert_eq!(st.amqp_dropped_in, 0, "dropped");
        assert_eq!((delivered[1], st.amqp_rpc_in), (1, 1), "the RPC reached a");
    }

    #[test]
    fn the_bridge_through_the_router_allocates_nothing() {
        let (mut r, mut st, mut p, mut rx, mut wire) = bridge_up();
        let call = br#"{"to_platform": "v1", "to_peer": "p", "from_platform": "", "from_peer": "", "args": ["{\"jsonrpc\": \"2.0\", \"method\": \"m\", \"params\": [], \"id\": \"1\"}"]}"#;
        let publish = br#"{"bus": "", "headers": {"h": 1}, "message": {"v": 42}}"#;
        let mut broker = Vec::new();
        deliver(
            &mut broker,
            b"gw.a",
            b"RPC",
            b"v1.p",
            br#"["{\"jsonrpc\": \"2.0\", \"result\": 1, \"id\": \"1\"}"]"#,
            131_072,
        );
        let remote = br#"{"sender": "p", "bus": "", "headers": {}, "message": 7}"#;
        deliver(&mut broker, b"__pubsub__.v1.devices.y.#", b"pubsub", b"v1.p", remote, 131_072);
        let split = format!(r#"{{"sender": "p", "bus": "", "headers": {{}}, "message": "{}"}}"#, "x".repeat(5000));
        deliver(&mut broker, b"__pubsub__.v1.devices.big.#", b"pubsub", b"v1.p", split.as_bytes(), 4096);
        let echo = br#"{"sender": "a", "bus": "", "headers": {}, "message": 1}"#;
        deliver(&mut broker, b"__pubsub__.gw.devices.x.#", b"pubsub", b"gw.a", echo, 131_072);
        let confirm_at = broker.len();
        method(&mut broker, 60, 80, &[0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let mut out: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut seq = 0u64;
        let call_msg = msg(&[b"", b"VIP1", b"", b"3.5", b"external_rpc", b"send_platform", call]);
        let pub_msg = msg(&[b"", b"VIP1", b"", b"m9", b"pubsub", b"publish", b"devices/x", publish]);
        let mut round = |p: &mut BrokerProtocol, r: &mut Router, st: &mut Stats, rx: &mut Vec<u8>, k: u64| {
            let now = Instant(k);
            let mut sink = TestSink { bus: Some(p), delivered: [0; 4] };
            for (buf, parts) in [&call_msg, &pub_msg] {
                let m = Message::new(buf, parts);
                assert_eq!(r.handle(st, PeerId(1), m, &mut sink, OnFull::Pause), Outcome::Done);
            }
            assert_eq!(sink.delivered[2], 1, "the local subscriber");
            seq += 2;
            out.clear();
            p.take_output(now, &mut out).unwrap();
            assert!(out.len() > 200, "both publishes went out");
            broker[confirm_at + 11..confirm_at + 19].copy_from_slice(&seq.to_be_bytes());
            rx.extend_from_slice(&broker);
            let delivered = feed(p, r, st, rx, &mut wire, now);
            assert_eq!(delivered[1..3], [1, 2], "the RPC answer to a, the remote publishes to b, no self-echo");
            assert!(rx.is_empty());
            out.clear();
            p.take_output(now, &mut out).unwrap(); // the two acks
        };
        rx.reserve(2 * confirm_at + 64);
        for k in 0..1000 {
            round(&mut p, &mut r, &mut st, &mut rx, 1 + k);
        }
        let n = allocations_in(|| {
            for k in 0..ROUNDS {
                round(&mut p, &mut r, &mut st, &mut rx, 2000 + k);
            }
        });
        assert_eq!(n, 0, "allocations on the bridge's path (20 000 rounds); first at {:?}", first());
        assert_eq!((st.amqp_rpc_out, st.amqp_export_out), (1000 + ROUNDS, 1000 + ROUNDS));
        assert_eq!((st.amqp_rpc_in, st.amqp_publish_in), (1000 + ROUNDS, 2 * (1000 + ROUNDS)));
        assert_eq!(st.amqp_self_echo, 1000 + ROUNDS);
        assert_eq!(p.unconfirmed(), 0, "every publish confirmed");
    }
}
